"""Refine a barrier estimate with a path method: the string method with a climbing image.

An estimate of the barrier between two minima is the highest energy on some path between
them: the straight line, or the chain attraction-diffusion ran. Here a discretised path (a
*string* of K images) between the two minima relaxes to the minimum energy path (MEP), and
its highest point to the saddle.

Simplified string method (W. E, W. Ren and E. Vanden-Eijnden 2007, "Simplified and
improved string method for computing the minimum energy paths in barrier-crossing events",
J. Chem. Phys. 126, 164103): repeat

1. move every interior image downhill, ``x_k <- x_k - dt * dU/dx(x_k)`` (endpoints stay
   at the minima), here with momentum: the move also carries a share of the image's last
   one (below);
2. redistribute the images at equal arc length along the moved path (linear
   interpolation), which removes the component of the motion along the path.

At the fixed point the gradient is parallel to the path: the string is an MEP. Then the
highest image *climbs*: it moves by ``-dt (g - 2 (g.t) t)`` (down across the path, up
along its tangent ``t``) while the images on each side are redistributed separately, so
it converges onto the saddle itself instead of sampling the path near it (the
climbing-image idea of the nudged elastic band: G. Henkelman, B. P. Uberuaga and
H. Jonsson 2000, J. Chem. Phys. 113, 9901).

**Kinks.** A network with (leaky) ReLU units is piecewise linear in its input: its valleys
have kinks, across which a descent step overshoots whatever its size. Each image therefore
has a step of its own, and an image whose move would raise its energy stays put while the
rest of the string moves on; the climbing image halves its step across the path where it
crossed a kink and along the path where it passed the top, each part on its own. Steps
that kinks keep halving leave plain descent crawling in a network's valleys, far above
their passes; so a descending image's move carries :data:`MOMENTUM` of its last one
(heavy-ball descent; B. T. Polyak 1964, USSR Comput. Math. Math. Phys. 4, 1): the parts
of successive gradients that flip across a kink cancel and those along the valley add up.
An image that rose starts again from rest; a climbing string has no momentum.

**Starting paths.** A string relaxes by gradient flow, under which the highest point of
a continuous path never rises; a string of few images can still cut a corner of its
starting path and relax into another, higher pass. A string that starts on a recorded
path (the attraction-diffusion chain) is therefore given that path's points, at least as
many images as the record holds, so it starts where the chain went and descends from
there. :attr:`PathResult.initial_max_energy` keeps the start's highest image, so a
caller can tell a string that ended above its start (see
:func:`landscape.mapping.barriers.refine_pairs`, which retries those with more images).

Many strings step as one batch (:func:`string_method_batch`); a single string
(:func:`string_method`) is a batch of one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from landscape import fused
from landscape.energy import Energy, ValueAndGrad, rows_where
from landscape.errors import LandscapeError, NonFiniteEnergyError


#: The share of an image's last move its next one carries (heavy-ball descent: see
#: ``_iteration``). On the digits model of ``landscape demo`` (leaky ReLU, 64 dimensions)
#: 96 strings' barriers after 400 iterations stood on average 0.72 above their higher
#: minimum without momentum, 0.33 at 0.8 (0.66 without it after 1,600 iterations);
#: Mueller-Brown's strings settle in 102 iterations instead of 118.
MOMENTUM = 0.8

#: Iterations between two checks of a string's progress (see ``_Strings.check_stall``).
STALL = 50

#: Why a string's phase ended (:attr:`PathResult.stop`), by the code ``_Strings`` keeps.
STOPS = ("converged", "stalled", "budget", "stuck")


class PathResult(NamedTuple):
    """What :func:`string_method` returns (one per string for :func:`string_method_batch`).

    path : Tensor [K, *shape]
        The relaxed string, ``path[0] = a`` and ``path[-1] = b`` (the energy's dtype and device).
    energy : ndarray float64 [K]
        Energy of each image.
    saddle_index : int
        Index of the highest image (the climbing image when climbing ran).
    saddle_energy : float
        Its energy: the refined barrier (absolute energy).
    converged : bool
        The string stopped moving (and the climbing image reached a point of vanishing
        gradient) within tolerance before the step budget ran out.
    steps : int
        Iterations run, both phases, rejected trial moves included.
    initial_max_energy : float
        Highest image energy on the starting path (the images, not the continuous
        polyline): what the refinement started from.
    saddle_grad_norm : float
        Gradient norm at the saddle image (near 0 at a true saddle after climbing).
    stationary : bool
        ``saddle_grad_norm`` is within the convergence tolerance (``tol`` times the largest
        gradient norm on the starting path): the highest image sits where the gradient
        vanishes, whether or not the rest of the string settled (a string through an
        intermediate minimum may keep sliding there while its climbing image is exact).
    stop : str
        Why its last phase ended: ``"converged"``, ``"stalled"`` (its top energy stopped
        moving), ``"budget"`` (it ran the phase's whole iteration budget) or ``"stuck"``
        (every step shrank to nothing).
    """

    path: torch.Tensor
    energy: np.ndarray
    saddle_index: int
    saddle_energy: float
    converged: bool
    steps: int
    initial_max_energy: float
    saddle_grad_norm: float
    stationary: bool = False
    stop: str = "converged"


def resample_polyline(points: torch.Tensor, n: int) -> torch.Tensor:
    """``n`` points at equal arc length along the polyline through ``points``.

    Parameters
    ----------
    points : Tensor [M, D]
        Vertices in order (M >= 1; repeated vertices are fine).
    n : int
        Number of output points (>= 2); the first and last are the polyline's ends.

    Returns
    -------
    Tensor [n, D]
    """
    return _resample_at(points[None], _equal_targets(points[None], n))[0]


def _arc(path: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Segments [P, M-1, D] (each vertex to the next), their lengths [P, M-1] and the
    cumulative arc length [P, M] of polylines [P, M, D]."""
    step = path[:, 1:] - path[:, :-1]
    seg = torch.linalg.vector_norm(step, dim=2)
    return step, seg, torch.cat([seg.new_zeros(seg.shape[0], 1), torch.cumsum(seg, 1)], 1)


def _equal_targets(path: torch.Tensor, n: int) -> torch.Tensor:
    s = _arc(path)[2]
    return torch.linspace(0.0, 1.0, n, dtype=path.dtype, device=path.device)[None] * s[:, -1:]


def _resample_at(path: torch.Tensor, targets: torch.Tensor,
                 arc: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Points at arc lengths ``targets [P, K]`` along polylines ``path [P, M, D]`` (whose
    :func:`_arc` is ``arc`` when given); the first and last points of each polyline are
    kept exactly."""
    if path.shape[1] == 1:
        return path.expand(-1, targets.shape[1], -1).clone()
    step, seg, s = _arc(path) if arc is None else arc
    idx = (torch.searchsorted(s.contiguous(), targets.contiguous(), right=True) - 1).clamp(0, path.shape[1] - 2)
    length = torch.gather(seg, 1, idx)
    start = torch.gather(s, 1, idx)
    safe = torch.where(length > 0, length, torch.ones_like(length))
    w = torch.where(length > 0, (targets - start) / safe, torch.zeros_like(targets)).clamp(0.0, 1.0)
    at = idx.unsqueeze(2).expand(-1, -1, path.shape[2])
    out = torch.gather(path, 1, at) + w.unsqueeze(2) * torch.gather(step, 1, at)
    out[:, 0], out[:, -1] = path[:, 0], path[:, -1]
    return out


def _redistribute(path: torch.Tensor, climber: torch.Tensor, at: torch.Tensor | None = None) -> torch.Tensor:
    """Equal arc length along each string; a climbing image (index ``climber`` > 0,
    marked by ``at`` [P, K, 1] among the images; None: no string climbs) stays put and the
    images on each side of it are redistributed separately."""
    p, k, _ = path.shape
    arc = _arc(path)
    s = arc[2]
    total = s[:, -1:]
    grid = torch.arange(k, device=path.device, dtype=path.dtype).expand(p, k)
    targets = grid / (k - 1) * total
    if at is not None:
        c = climber.clamp_min(1).unsqueeze(1)
        sc = torch.gather(s, 1, c)
        cf = c.to(path.dtype)
        left = grid / cf * sc
        right = sc + (grid - cf) / ((k - 1) - cf).clamp_min(1) * (total - sc)
        split = torch.where(grid <= cf, left, right)
        targets = torch.where((climber > 0).unsqueeze(1), split, targets)
    out = _resample_at(path, targets, arc)
    return out if at is None else torch.where(at, path, out)


def _starting_paths(
    a: torch.Tensor,
    b: torch.Tensor,
    init: Sequence[torch.Tensor | None] | None,
    via: torch.Tensor | None,
    k: int,
) -> torch.Tensor:
    """Per string, ``k`` images at equal arc length on ``a -> init... -> b`` (or via a
    point, or straight): [P, K, D] in ``a``'s dtype."""
    n, d = a.shape
    out = a.new_empty((n, k, d))
    # (which via points there are, read from the device once)
    through = torch.isfinite(via.reshape(n, -1)).all(1).tolist() if via is not None else [False] * n
    own = [init is not None and init[i] is not None for i in range(n)]
    # Straight strings, and strings through a via point, are resampled together (as
    # resample_polyline resamples one: the same numbers); starting paths of their own, one
    # by one.
    for middle in (False, True):
        rows = [i for i in range(n) if not own[i] and through[i] == middle]
        if rows:
            at = torch.tensor(rows, device=a.device)
            vertices = torch.stack([a[at], via[at], b[at]] if middle else [a[at], b[at]], 1)
            out[at] = _resample_at(vertices, _equal_targets(vertices, k))
    for i in (i for i in range(n) if own[i]):
        vertices = torch.cat([a[i : i + 1], init[i].reshape(-1, d).to(a), b[i : i + 1]])
        out[i] = resample_polyline(vertices, k)
    return out


def string_method_batch(
    energy: Energy,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    init: Sequence[torch.Tensor | None] | None = None,
    via: torch.Tensor | None = None,
    images: int = 24,
    steps: int = 400,
    tol: float = 1e-4,
    climb: bool = True,
    climb_steps: int | None = None,
    step_size: float | None = None,
    box: tuple[float, float] | None = None,
    on_iteration: Callable[[int, int], None] | None = None,
    on_compile: Callable[[], None] | None = None,
) -> list[PathResult]:
    """Relax many strings at once: every string's interior images are one batched call.

    Parameters
    ----------
    energy : Energy
        Frozen for the duration.
    a, b : Tensor [P, *shape]
        The endpoints (minima) of each string.
    init : sequence of (Tensor [M_p, *shape] or None), optional
        A recorded path per string (e.g. the attraction-diffusion chain, start to end):
        string ``p`` starts on the polyline ``a -> init[p] -> b``, ``images`` points at
        equal arc length. Give at least as many images as the recorded points to keep
        the path's resolution.
    via : Tensor [P, *shape], optional
        A point per string to pass through (rows with a non-finite value, and strings
        with an ``init``, ignore it). Without either, a string starts straight.
    images : int
        Images per string K (>= 3), endpoints included.
    steps : int
        Iteration budget of the string phase.
    tol : float
        Relative tolerance: a string has converged when its largest image displacement
        per unit time falls below ``tol`` times the largest gradient norm on its starting
        path; the climbing image when its gradient norm does.
    climb : bool
        Run the climbing-image phase after the string phase (when the highest image is
        above both endpoints), for an accurate saddle energy.
    climb_steps : int, optional
        Iteration budget of the climbing phase (default ``steps``).
    step_size : float, optional
        Initial time step of every string. By default, per string, the step that moves
        its steepest image by a tenth of the image spacing. It adapts per image: an image
        whose move would raise its energy stays where it was and halves its step (the
        rest of the string moves on), and a step grows by 10% per move until the image
        first rose or hit the limit of half the image spacing per move. A descending
        image's move also carries :data:`MOMENTUM` of its last one (none after a rise,
        which starts the image from rest, nor in the climbing phase).
    box : (low, high), optional
        Clamp images into this box (e.g. the data range the model was trained on).
    on_iteration : callable, optional
        Called as ``on_iteration(done, moving)`` before each iteration: the iterations run
        so far and how many strings are still relaxing (for progress reports).
    on_compile : callable, optional
        Called before an iteration that compiles first (an energy with ``compile`` set:
        :mod:`landscape.fused`; seconds to a minute, once per process and variant).

    Returns
    -------
    list of PathResult, one per string. Each string keeps its own step size, phase,
    climbing image and convergence test, so it gives what it gives alone.

    Raises
    ------
    NonFiniteEnergyError
        If a starting path has a non-finite energy or gradient.
    LandscapeError
        On inconsistent shapes or settings.

    A phase (string or climb) also ends, unconverged, when the string's top energy (the
    climbing image's) moved by at most ``eps^0.8`` of the string's energy range over
    :data:`STALL` iterations (``eps`` the dtype's machine epsilon): on a network's
    piecewise-linear landscape a float32 string would otherwise crawl through its whole
    budget at a saddle that no longer moves.

    Cost: two batched calls of at most ``P * (K - 2)`` images per iteration (the trial
    move, checked for descent, then the redistributed string), at most ``steps +
    climb_steps`` iterations; converged and stalled strings leave the batch.
    """
    energy.check_batch(a)
    energy.check_batch(b)
    n = a.shape[0]
    if b.shape[0] != n or (via is not None and via.shape != a.shape) or (init is not None and len(init) != n):
        raise LandscapeError("the string method needs as many endpoints b (and via points, initial paths) as a")
    if images < 3:
        raise LandscapeError(f"a string needs at least 3 images, got {images}")
    if steps < 0 or (climb_steps is not None and climb_steps < 0) or tol < 0:
        raise LandscapeError("steps, climb_steps and tol must be non-negative")
    if step_size is not None and not step_size > 0:
        raise LandscapeError(f"step size must be positive, got {step_size}")
    climb_steps = steps if climb_steps is None else climb_steps
    shape = tuple(a.shape[1:])
    if n == 0:
        return []
    dev, dt_ = energy.device, energy.dtype
    a = a.to(dev, dt_).reshape(n, -1)
    b = b.to(dev, dt_).reshape(n, -1)
    d = a.shape[1]
    if init is not None:
        init = [None if p is None else torch.as_tensor(p).to(dev, dt_).reshape(-1, d) for p in init]
    path = _starting_paths(a, b, init, None if via is None else via.to(dev, dt_).reshape(n, d), images)

    with energy.frozen():
        strings = _Strings(energy.value_and_grad_fn(), shape, path, tol=tol, step_size=step_size, box=box,
                           energy=energy, on_compile=on_compile)
        strings.relax(steps, climb_steps if climb else None, on_iteration)
    return strings.results()


def _evaluate(vg: ValueAndGrad, shape: tuple[int, ...], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies [P, M] and gradients [P, M, D] of images ``x`` [P, M, D]."""
    p, m, d = x.shape
    u, g = vg(x.reshape(p * m, *shape))
    return u.detach().reshape(p, m), g.detach().reshape(p, m, d)


def _iteration(vg: ValueAndGrad, shape: tuple[int, ...], climbing: bool, path: torch.Tensor, u: torch.Tensor,
               g: torch.Tensor, dt: torch.Tensor, grow: torch.Tensor, velocity: torch.Tensor,
               climb_dt: torch.Tensor, climb_grow: torch.Tensor, climber: torch.Tensor, slack: torch.Tensor,
               threshold: torch.Tensor, min_dt: torch.Tensor, low: torch.Tensor,
               high: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """One move of every string of a batch (the state of :class:`_Strings`, one row per
    string; ``climbing``: whether any string may have a climbing image): trial step (with
    each image's ``velocity``, its last move), descent check per image (an image that
    would rise stays where it was, its step halved), redistribution, then acceptance. A
    string whose redistributed images are not all finite stays put, every step halved.
    The climbing image's move has two parts, up along the path and down across it, each
    with its own step (see below).

    ``g`` holds the gradients of the interior images only [P, K-2, D] (the end images do
    not move). Returns the new ``path, u, g, dt, grow, velocity, climb_dt, climb_grow`` and
    two masks [P]: ``stuck`` (every step fell below ``min_dt``: the string gives up) and
    ``settled`` (its largest image displacement per unit time, and its climbing image's
    gradient, under ``threshold``, no image held back). A function of tensors only: eager, or compiled
    whole (:mod:`landscape.fused`).
    """
    tiny = torch.finfo(path.dtype).tiny
    p, k = path.shape[0], path.shape[1]
    # Heavy-ball descent (see the module's notes on kinks, and MOMENTUM); a climbing
    # string's images hold still for it (the climb is a local refinement onto the saddle,
    # whose tangent its neighbours set), from its first climbing move on.
    if climbing:
        velocity = torch.where((climber > 0).reshape(-1, 1, 1), 0.0, velocity)
    move = dt.unsqueeze(2) * g + MOMENTUM * velocity
    if climbing:
        # The climbing image (image 1 of a string that does not climb: worked out, never
        # used): up along the path on a step of its own, down across it on its image's
        # step. ``inner`` marks it among the interior images.
        rows = torch.arange(p, device=path.device)
        c = climber.clamp_min(1)
        inner = torch.arange(1, k - 1, device=path.device) == climber.unsqueeze(1)
        t = path[rows, c + 1] - path[rows, c - 1]
        t = t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(tiny)
        gc = g[rows, c - 1]
        along = (gc * t).sum(1, keepdim=True)
        across = gc - along * t
        dt_c = dt.gather(1, (c - 1).unsqueeze(1))
        move = torch.where(inner.unsqueeze(2), (dt_c * across - climb_dt.unsqueeze(1) * along * t).unsqueeze(1), move)
    # No image moves by more than half the image spacing in one step: images with steps
    # of their own could otherwise overtake their neighbours and fold the string. An
    # image that would takes the step that moves it that far, and keeps it (it stops
    # growing).
    half = 0.5 * _arc(path)[2][:, -1] / (k - 1)
    length = torch.linalg.vector_norm(move, dim=2)
    cap = (half.unsqueeze(1) / length.clamp_min(tiny)).clamp_max(1.0)
    grow = torch.where(cap < 1.0, 1.0, grow)
    interior = path[:, 1:-1]
    moved = torch.clamp(interior - move * cap.unsqueeze(2), low, high)
    u_trial, g_trial = _evaluate(vg, shape, moved)
    rose = u_trial > u[:, 1:-1] + slack.unsqueeze(1)
    if climbing:
        rose &= ~inner
    rose |= ~torch.isfinite(u_trial)
    trial = torch.cat([path[:, :1], torch.where(rose.unsqueeze(2), interior, moved), path[:, -1:]], 1)
    overshot = torch.zeros_like(slack, dtype=torch.bool)
    at = None
    if climbing:
        # No energy test fits the climbing image. A part of its move that turned its
        # gradient around (along the path: it passed the top; across: it crossed the
        # valley's floor, or a kink of the landscape) overshot: that part is undone and
        # its step halved, the other part stands. (Gradients already below the threshold
        # of convergence do not count: their sign is rounding.)
        gt = g_trial[rows, c - 1]
        along_t = (gt * t).sum(1, keepdim=True)
        across_t = gt - along_t * t
        bad = ~torch.isfinite(u_trial[rows, c - 1]) | ~torch.isfinite(gt).all(1)
        up_bad = bad | (((along_t * along).squeeze(1) < 0) & (along.abs().squeeze(1) > threshold))
        across_bad = bad | (((across_t * across).sum(1) < 0)
                            & (torch.linalg.vector_norm(across, dim=1) > threshold))
        f = cap.gather(1, (c - 1).unsqueeze(1))
        kept = torch.where(across_bad.unsqueeze(1), 0.0, f * dt_c * across)
        kept = kept - torch.where(up_bad.unsqueeze(1), 0.0, f * climb_dt.unsqueeze(1) * along * t)
        climbed = torch.clamp(path[rows, c] - kept, low, high)
        at = torch.nn.functional.pad(inner, (1, 1)).unsqueeze(2)  # among all K images
        trial = torch.where(at, climbed.unsqueeze(1), trial)
        rose = torch.where(inner, across_bad.unsqueeze(1), rose)
        overshot = up_bad & (climber > 0)
        climb_dt = torch.where(overshot, 0.5 * climb_dt, climb_dt)
        climb_grow = torch.where(overshot, 1.0, climb_grow)
    new = _redistribute(trial, climber, at)
    u_new, g_new = _evaluate(vg, shape, new[:, 1:-1])
    # (a row sum is finite exactly when every entry is, or the sum overflows: a gradient
    # near the dtype's largest number, on which no string could move anyway)
    ok = torch.isfinite(u_new).all(1) & torch.isfinite(g_new.sum(2)).all(1)
    # Halve the steps of the images that rose, every step of a string that is not finite
    # (they stop growing); a string whose every step fell below the smallest is stuck.
    halved = rose | ~ok.unsqueeze(1)
    dt = dt * cap
    dt = torch.where(halved, 0.5 * dt, dt)
    grow = torch.where(halved, 1.0, grow)
    largest = dt.max(1).values
    stuck = halved.any(1) & (largest < min_dt)
    # Accept the finite strings' moves. The displacement is per unit of the string's
    # largest step: an image held back still moves with the string when it is
    # redistributed.
    displacement = torch.linalg.vector_norm(new - path, dim=2).max(1).values / largest
    path = torch.where(ok.reshape(-1, 1, 1), new, path)
    u = torch.cat([u[:, :1], torch.where(ok.unsqueeze(1), u_new, u[:, 1:-1]), u[:, -1:]], 1)
    g = torch.where(ok.reshape(-1, 1, 1), g_new, g)
    dt = torch.where(ok.unsqueeze(1), dt * grow, dt)
    # (the climb along the path never outpaces the string's largest step: on a linear
    # stretch nothing would turn it around)
    climb_dt = torch.where(ok, torch.minimum(climb_dt * climb_grow, dt.max(1).values), climb_dt)
    settled = ok & (displacement <= threshold) & ~(rose.any(1) | overshot)
    if climbing:
        gnorm = torch.linalg.vector_norm(g[rows, c - 1], dim=1)
        settled &= (climber == 0) | (gnorm <= threshold)
    # An image that rose, or a string that is not finite, starts again from rest.
    velocity = torch.where((halved | ~ok.unsqueeze(1)).unsqueeze(2), 0.0, move * cap.unsqueeze(2))
    return path, u, g, dt, grow, velocity, climb_dt, climb_grow, stuck, settled


def _compiled_iteration(shape: tuple[int, ...], climbing: bool
                        ) -> Callable[[ValueAndGrad], Callable[..., tuple[torch.Tensor, ...]]]:
    """:func:`_iteration` as a function of the state tensors alone, for
    :func:`landscape.fused.compiled`."""

    def build(vg: ValueAndGrad) -> Callable[..., tuple[torch.Tensor, ...]]:
        def iteration(*state: torch.Tensor) -> tuple[torch.Tensor, ...]:
            return _iteration(vg, shape, climbing, *state)

        return iteration

    return build


class _Strings:
    """A batch of strings under relaxation: one row of every tensor per string still
    relaxing (the *working set*; :meth:`compact` writes the strings that finished into
    :attr:`full` and drops their rows).

    Each string keeps a time step per image (see :meth:`iterate`), phase (string, then
    climbing), iteration count and convergence.

    Steps per image, not one per string: next to a kink of the landscape (a leaky-ReLU
    network is piecewise linear everywhere) an image overshoots the kink on any step and
    would rise. With one step per string, every such rise halved every image's step and
    the string froze far from the minimum energy path; here that image alone is held
    back while the others move on.

    An iteration (:func:`_iteration`) works on every row of the working set at once, the
    climbing images (one per climbing string, or none) picked by masks rather than by
    indexing: about a hundred tensor operations besides the energy's (two hundred once
    strings climb) however many strings do what, and no host sync inside, so that it
    compiles whole. The energy's batches hold the images of the strings still relaxing, in
    their order.
    """

    #: Per-string state: one row per string of the working set.
    _ROWS = ("rows", "path", "u", "g", "dt", "grow", "velocity", "min_dt", "threshold", "slack", "climb_dt",
             "climb_grow", "climber", "phase_iters", "iterations", "converged", "stop", "in_climb", "mark", "active")
    #: What :meth:`results` reads, kept for every string in :attr:`full` (``g`` there with
    #: the end images' gradients, which never change; the working set's ``g`` is of the
    #: interior images only).
    _KEPT = ("path", "u", "g", "threshold", "converged", "iterations", "stop")

    def __init__(
        self,
        vg: ValueAndGrad,
        shape: tuple[int, ...],
        path: torch.Tensor,
        *,
        tol: float,
        step_size: float | None,
        box: tuple[float, float] | None,
        energy: Energy | None = None,
        on_compile: Callable[[], None] | None = None,
    ):
        self.vg, self.shape, self.energy, self.on_compile = vg, shape, energy, on_compile
        self.low, self.high = fused.bounds(box, path)
        n = path.shape[0]
        dev, dt_ = path.device, path.dtype
        self.rows = torch.arange(n, device=dev)  # each row's string
        self.path = path
        self.u, self.g = _evaluate(vg, shape, path)
        if not (bool(torch.isfinite(self.u).all()) and bool(torch.isfinite(self.g).all())):
            raise NonFiniteEnergyError("a starting path of the string method has a non-finite energy or gradient")
        self.initial_max = self.u.max(1).values.double().cpu().numpy()
        scale = torch.linalg.vector_norm(self.g[:, 1:-1], dim=2).max(1).values
        spacing = torch.linalg.vector_norm(path[:, 1] - path[:, 0], dim=1)
        if step_size is None:
            dt0 = 0.1 * spacing / scale.clamp_min(torch.finfo(dt_).tiny)
        else:
            dt0 = torch.full((n,), float(step_size), device=dev, dtype=dt_)
        # one step per interior image (see :meth:`iterate`)
        self.dt = dt0.unsqueeze(1).repeat(1, path.shape[1] - 2)
        self.min_dt = dt0 * 1e-12
        self.threshold = tol * scale
        # Moves may raise an energy by rounding noise alone; only a clear rise rejects a
        # step (relative to the path's energies and their spread: no absolute floor, so a
        # scaled energy relaxes the same way).
        u = self.u
        self.slack = 64.0 * torch.finfo(dt_).eps * (u.abs().max(1).values + u.max(1).values - u.min(1).values)
        self.grow = torch.full_like(self.dt, 1.1)  # per image: 1 once it rose or moved as far as it may
        self.velocity = torch.zeros_like(path[:, 1:-1])  # per image: its last move (heavy-ball descent)
        # the climbing image's step along the path, and its growth
        self.climb_dt = torch.zeros(n, device=dev, dtype=dt_)
        self.climb_grow = torch.full((n,), 1.1, device=dev, dtype=dt_)
        self.climber = torch.zeros(n, dtype=torch.long, device=dev)  # 0: no climbing image
        self.climbing = False  # whether a string of the working set may be climbing
        self.phase_iters = torch.zeros(n, dtype=torch.long, device=dev)
        self.iterations = torch.zeros(n, dtype=torch.long, device=dev)
        # Flat paths (or a == b) have nothing to relax: done, converged.
        flat = (scale == 0) | (spacing == 0)
        self.converged = flat.clone()
        self.stop = torch.zeros(n, dtype=torch.long, device=dev)  # index into STOPS
        self.active = ~flat
        self.in_climb = torch.zeros(n, dtype=torch.bool, device=dev)
        self.climb_steps: int | None = None
        # The host's view of the phases, so that a quiet iteration waits for the device
        # once only (on a GPU every wait drains the queue of launched kernels): the
        # iterations run so far, and when each group of strings began its phase, with
        # that phase's budget (the string phase at 0; a group per iteration at which
        # strings began to climb). A string's phase_iters is ``clock - start`` of its
        # group, so the budget and stall checks can only find strings at the iterations
        # the groups say; and only a phase that ended since the last compaction can have
        # left inactive rows in the working set.
        self.clock = 0
        self.groups: list[tuple[int, int]] = []
        self.ended = True  # (flat strings start inactive)
        # A phase also ends when its energy stalls: the top of the string (the climbing
        # image, when climbing) moved by at most eps^0.8 (eps: the dtype's machine
        # epsilon; 3e-6 in float32, 3e-13 in float64) of the string's energy range over the
        # last STALL iterations. On a piecewise-linear network (leaky ReLU) the gradient
        # never vanishes smoothly: a float32 string crawls on a tiny step for its whole
        # budget without the motion test ever passing, while its saddle no longer moves.
        self.stall_tol = float(torch.finfo(dt_).eps) ** 0.8
        self.mark = torch.full((n,), math.inf, device=dev, dtype=dt_)
        #: Every string's final state (rows in the strings' order), written as they leave.
        self.full = {name: getattr(self, name).clone() for name in self._KEPT}
        self.g = self.g[:, 1:-1].clone()  # (the working set keeps the interior images' gradients)

    def compact(self) -> None:
        """Write the strings no longer active into :attr:`full` and drop their rows."""
        if not self.ended:
            return
        self.ended = False
        # One read from the device: how many strings stay and whether one of them climbs.
        # The rows then go by number (a mask would read its count again for every field).
        kept, climbs = torch.stack([self.active.sum(), (self.active & (self.climber > 0)).any()]).tolist()
        n = self.active.shape[0]
        if kept == n:
            return
        leaving = rows_where(~self.active, n - kept)
        keep = rows_where(self.active, kept)
        at = self.rows[leaving]
        for name in self._KEPT:
            if name == "g":
                self.full[name][at, 1:-1] = self.g[leaving]
            else:
                self.full[name][at] = getattr(self, name)[leaving]
        for name in self._ROWS:
            setattr(self, name, getattr(self, name)[keep])
        self.climbing = self.climbing and bool(climbs)

    def relax(self, steps: int, climb_steps: int | None,
              on_iteration: Callable[[int, int], None] | None = None) -> None:
        """The string phase (``steps`` iterations at most), then, unless ``climb_steps``
        is None, the climbing phase of every string whose top is above both ends."""
        self.climb_steps = climb_steps
        self.groups = [(self.clock, steps)]
        for done in range(steps + (climb_steps or 0)):
            # A phase_iters reaches its budget when its group's does (it grows by one per
            # iteration and is checked at each): only then can a string run out of it.
            if any(self.clock - start == budget for start, budget in self.groups):
                budget = torch.where(self.in_climb, climb_steps or 0, steps)
                out_of_budget = self.active & (self.phase_iters >= budget)
                if bool(out_of_budget.any()):
                    self.end_phase(out_of_budget, torch.zeros_like(out_of_budget), STOPS.index("budget"))
            # (a group past its budget has no string left in it)
            self.groups = [(start, budget) for start, budget in self.groups if self.clock - start <= budget]
            if any((self.clock - start) % STALL == 0 for start, _ in self.groups):
                self.check_stall()
            self.compact()
            moving = self.rows.shape[0]
            if on_iteration is not None:
                on_iteration(done, moving)
            if moving == 0:
                break
            self.iterate()
        if bool(self.active.any()):
            self.end_phase(self.active.clone(), torch.zeros_like(self.active), STOPS.index("budget"))
        self.active = torch.zeros_like(self.active)
        self.ended = True
        self.compact()

    def check_stall(self) -> None:
        """Every :data:`STALL` iterations of a phase: end the phase of the strings whose
        top energy (the climbing image's, when climbing) moved by at most ``stall_tol`` of
        the string's energy range since the last check (unconverged: they stalled)."""
        due = self.active & (self.phase_iters % STALL == 0)
        if not bool(due.any()):
            return
        top = self.top()
        u = self.u
        spread = u.max(1).values - u.min(1).values
        stalled = due & (self.phase_iters > 0) & ((top - self.mark).abs() <= self.stall_tol * spread)
        self.mark = torch.where(due, top, self.mark)
        if bool(stalled.any()):
            self.end_phase(stalled, torch.zeros_like(stalled), STOPS.index("stalled"))
            # a climb that starts here is measured from its own start, as any other
            self.mark = torch.where(stalled, self.top(), self.mark)

    def top(self) -> torch.Tensor:
        """Per string, the energy the stall rule follows: the climbing image's when
        climbing, else the highest image's."""
        u = self.u
        return torch.where(self.in_climb, u.gather(1, self.climber.unsqueeze(1)).squeeze(1), u.max(1).values)

    def end_phase(self, done: torch.Tensor, ok: torch.Tensor, why: int) -> None:
        """Strings whose phase ended: record convergence and why (an index into
        :data:`STOPS`); string phase -> climb or stop."""
        # (by mask, without reading anything from the device: no indexing by a mask)
        self.converged = torch.where(done, ok, self.converged)
        self.stop.masked_fill_(done, why)
        stop = done
        if self.climb_steps:
            u = self.u
            top = torch.argmax(u[:, 1:-1], dim=1) + 1
            higher = torch.gather(u, 1, top.unsqueeze(1)).squeeze(1) > torch.maximum(u[:, 0], u[:, -1])
            start = done & ~self.in_climb & higher
            starting = int(start.sum())  # (this phase's one read from the device)
            if starting:
                rows = rows_where(start, starting)
                self.climber[rows] = top[rows]
                self.in_climb[rows] = True
                self.phase_iters[rows] = 0
                # The climbing image moves by rules of its own: it starts afresh at the
                # string's largest step, whatever its own became as a descending image.
                largest = self.dt[rows].max(1).values
                self.dt[rows, top[rows] - 1] = largest
                self.grow[rows, top[rows] - 1] = 1.1
                self.climb_dt[rows], self.climb_grow[rows] = largest, 1.1
                self.climbing = True
                self.groups.append((self.clock, self.climb_steps))
                stop = done & ~start
        self.active = self.active & ~stop
        self.ended = True

    def iterate(self) -> None:
        """One move of every string of the working set (:func:`_iteration`, compiled
        where the energy asks for it and the batch is not tiny); strings that settled or
        got stuck end their phase."""
        self.iterations += 1
        self.phase_iters += 1
        self.clock += 1
        state = (self.path, self.u, self.g, self.dt, self.grow, self.velocity, self.climb_dt, self.climb_grow,
                 self.climber, self.slack, self.threshold, self.min_dt, self.low, self.high)
        out = None
        p, k = self.path.shape[0], self.path.shape[1]
        if self.energy is not None and p >= 2 and p * (k - 2) >= fused.MIN_ROWS:
            key = ("strings", self.climbing)
            fn = fused.compiled(self.energy, key, _compiled_iteration(self.shape, self.climbing))
            if fn is not None:
                if self.on_compile is not None and fused.cold(self.energy, key):
                    self.on_compile()
                out = fused.call(self.energy, key, fn, *state)
        if out is None:
            out = _iteration(self.vg, self.shape, self.climbing, *state)
        (self.path, self.u, self.g, self.dt, self.grow, self.velocity, self.climb_dt, self.climb_grow, stuck,
         settled) = out
        any_stuck, any_settled = torch.stack([stuck.any(), settled.any()]).tolist()  # (the iteration's one read)
        if any_stuck:
            self.end_phase(stuck, torch.zeros_like(stuck), STOPS.index("stuck"))
            self.in_climb.masked_fill_(stuck, False)
            self.active = self.active & ~stuck
        if any_settled:
            self.end_phase(settled, settled, STOPS.index("converged"))

    def results(self) -> list[PathResult]:
        """One :class:`PathResult` per string, its saddle the highest image."""
        full = self.full
        energies = full["u"].double().cpu().numpy()
        grad_norm = torch.linalg.vector_norm(full["g"], dim=2).double().cpu().numpy()
        threshold = full["threshold"].double().cpu().numpy()
        stops = full["stop"].cpu().numpy()
        converged, iterations = full["converged"].cpu().numpy(), full["iterations"].cpu().numpy()
        k = full["path"].shape[1]
        out = []
        for i, row in enumerate(energies):
            top = int(np.argmax(row))
            out.append(
                PathResult(
                    path=full["path"][i].reshape(k, *self.shape),
                    energy=row,
                    saddle_index=top,
                    saddle_energy=float(row[top]),
                    converged=bool(converged[i]),
                    steps=int(iterations[i]),
                    initial_max_energy=float(self.initial_max[i]),
                    saddle_grad_norm=float(grad_norm[i, top]),
                    stationary=bool(grad_norm[i, top] <= threshold[i]),
                    stop=STOPS[int(stops[i])],
                )
            )
        return out


def segment_max(energy: Energy, a: torch.Tensor, b: torch.Tensor, images: int = 24, iterations: int = 40,
                where: bool = False) -> Any:
    """Per row, the highest energy on the straight segment from ``a`` to ``b``.

    ``images`` evenly spaced points find the highest stretch; a golden-section search
    between the neighbours of the highest point then finds its top, so the result is the
    segment's maximum (not a sample of it, which could lie below a ridge the segment
    crosses).

    Parameters
    ----------
    energy : Energy
    a, b : Tensor [P, *shape]
    images : int
        Evenly spaced points, the ends included (>= 2).
    iterations : int
        Golden-section steps (each shrinks the bracket by 0.618).
    where : bool
        Also return where on the segment the highest energy was found.

    Returns
    -------
    Tensor float64 [P] (on the energy's device); with ``where``, also the fraction of the
    way from ``a`` to ``b`` of each maximum, Tensor [P] in the energy's dtype
    """
    m = a.shape[0]
    dt = energy.dtype
    a = a.to(energy.device, dt)
    b = b.to(energy.device, dt)
    if m == 0:
        none = torch.zeros(0, dtype=torch.float64, device=energy.device)
        return (none, none.to(dt)) if where else none
    t = torch.linspace(0.0, 1.0, max(images, 2), device=energy.device, dtype=dt)
    k = t.numel()
    view = (1, k) + (1,) * (a.dim() - 1)
    pts = a.unsqueeze(1) + t.reshape(view) * (b - a).unsqueeze(1)
    flat = pts.reshape(-1, *energy.shape)
    u = energy(flat).reshape(m, k)
    _finite(energy, u.reshape(-1), flat)
    best, arg = u.max(1)
    best_t = t[arg]
    lo = t[(arg - 1).clamp_min(0)]
    hi = t[(arg + 1).clamp_max(k - 1)]
    pview = (m,) + (1,) * (a.dim() - 1)

    def at(tt: torch.Tensor) -> torch.Tensor:
        x = a + tt.reshape(pview) * (b - a)
        return _finite(energy, energy(x).reshape(m), x)

    golden = (5.0**0.5 - 1.0) / 2.0
    c1, c2 = hi - golden * (hi - lo), lo + golden * (hi - lo)
    u1, u2 = at(c1), at(c2)
    for _ in range(iterations):  # maximise: keep the bracket around the higher point
        right = u1 < u2
        lo = torch.where(right, c1, lo)
        hi = torch.where(right, hi, c2)
        c1_new = torch.where(right, c2, hi - golden * (hi - lo))
        c2_new = torch.where(right, lo + golden * (hi - lo), c1)
        u_new = at(torch.where(right, c2_new, c1_new))
        u1, u2 = torch.where(right, u2, u_new), torch.where(right, u_new, u1)
        c1, c2 = c1_new, c2_new
        higher, c_higher = torch.where(u2 > u1, u2, u1), torch.where(u2 > u1, c2, c1)
        best_t = torch.where(higher > best, c_higher, best_t)
        best = torch.maximum(best, higher)
    return (best.double(), best_t) if where else best.double()


def _finite(energy: Energy, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``u`` (the energies at ``x``), or the error where one is not finite: a straight
    line between two minima crossed a point where the energy is NaN or infinite."""
    bad = ~torch.isfinite(u)
    if bool(bad.any()):
        raise energy.not_finite("points on straight segments between minima", x, bad, grad=False)
    return u


def segment_tops(energy: Energy, paths: Sequence[torch.Tensor], points: int = 8192,
                 images: int = 8) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per path (``[K, *shape]``, its points in order), the highest energy on each of its
    segments (:func:`segment_max`, ``images`` points and 20 golden-section steps each) and
    where, as the fraction of the way along the segment (float64 arrays [K - 1] both; see
    :func:`point_on`), in calls of at most ``points`` energy evaluations."""
    if not paths:
        return [], []
    a = torch.cat([p[:-1] for p in paths]).to(energy.device, energy.dtype)
    b = torch.cat([p[1:] for p in paths]).to(energy.device, energy.dtype)
    chunk = max(1, points // images)
    found = [segment_max(energy, a[s : s + chunk], b[s : s + chunk], images=images, iterations=20, where=True)
             for s in range(0, a.shape[0], chunk)]
    tops = torch.cat([u.cpu() for u, _ in found]).double().numpy() if found else np.zeros(0)
    fraction = torch.cat([f.cpu() for _, f in found]).double().numpy() if found else np.zeros(0)
    ends = np.cumsum([p.shape[0] - 1 for p in paths])
    bounds = list(zip(np.concatenate([[0], ends[:-1]]).astype(int), ends.astype(int)))
    return [tops[lo:hi] for lo, hi in bounds], [fraction[lo:hi] for lo, hi in bounds]


def point_on(path: torch.Tensor, k: int, fraction: float) -> torch.Tensor:
    """The point ``fraction`` of the way along segment ``k`` of ``path`` (on the CPU)."""
    a, b = path[k].detach().cpu(), path[k + 1].detach().cpu()
    return a + torch.tensor(fraction, dtype=a.dtype) * (b - a)


def polyline_max(energy: Energy, paths: Sequence[torch.Tensor], points: int = 8192, images: int = 8,
                 where: bool = False) -> Any:
    """Per path (``[K, *shape]``, its points in order), the highest energy on the polyline
    through its points: :func:`segment_max` of every segment (``images`` points and 20
    golden-section steps each; 8, the precision attraction-diffusion's chains are closed
    with), in calls of at most ``points`` energy evaluations. Float64 [len(paths)]; with
    ``where``, also the point of each path where it is found (a list of Tensors [*shape] on
    the CPU, None for a path of one point) and the segment it lies on (a list of ints, the
    index of the segment's first point; None for a path of one point)."""
    if not paths:
        return (np.zeros(0), [], []) if where else np.zeros(0)
    tops, fractions = segment_tops(energy, paths, points, images)
    values = np.array([float(t.max()) if t.size else -math.inf for t in tops])
    if not where:
        return values
    segment = [int(t.argmax()) if t.size else None for t in tops]
    at = [None if k is None else point_on(p, k, float(f[k])) for k, p, f in zip(segment, paths, fractions)]
    return values, at, segment


class _FunctionEnergy(Energy):
    """An :class:`Energy` over a bare value-and-grad function (for :func:`string_method`)."""

    def __init__(self, vg: ValueAndGrad, like: torch.Tensor):
        super().__init__(lambda x: vg(x)[0], shape=like.shape, device=like.device, dtype=like.dtype, name="energy")
        self._vg = vg

    def value_and_grad_fn(self) -> ValueAndGrad:
        return self._vg


def string_method(
    energy: ValueAndGrad | Energy,
    a: torch.Tensor,
    b: torch.Tensor,
    *,
    init_path: torch.Tensor | None = None,
    via: torch.Tensor | None = None,
    images: int = 32,
    steps: int = 500,
    step_size: float | None = None,
    tol: float = 1e-4,
    climb: bool = True,
    climb_steps: int | None = None,
    box: tuple[float, float] | None = None,
) -> PathResult:
    """Relax one path between two minima to the minimum energy path and find its saddle.

    :func:`string_method_batch` for a single string (see there for the settings).

    Parameters
    ----------
    energy : Energy or callable
        An :class:`Energy`, or ``x [K, *shape] -> (U [K], dU/dx [K, *shape])``.
    a, b : Tensor [*shape]
        The two minima (fixed endpoints).
    init_path : Tensor [M, *shape], optional
        A starting path: the string starts on ``a -> init_path[0] -> ... -> b``.
    via : Tensor [*shape], optional
        A single point to pass through (not with ``init_path``).

    Returns
    -------
    PathResult

    Raises
    ------
    NonFiniteEnergyError
        If the starting path has a non-finite energy or gradient.
    LandscapeError
        On inconsistent shapes or settings.

    Examples
    --------
    Two wells per coordinate, ``U = sum_i (x_i^2 - 1)^2``; the saddle between (-1, 1)
    and (1, 1) is (0, 1), at energy 1:

    >>> vg = lambda x: (((x**2 - 1) ** 2).sum(1), 4 * x * (x**2 - 1))
    >>> r = string_method(vg, torch.tensor([-1.0, 1.0]), torch.tensor([1.0, 1.0]), via=torch.tensor([0.0, 1.5]))
    >>> round(r.saddle_energy, 3), r.converged
    (1.0, True)
    """
    if tuple(b.shape) != tuple(a.shape):
        raise LandscapeError(f"path endpoints differ in shape: {list(a.shape)} and {list(b.shape)}")
    if init_path is not None and via is not None:
        raise LandscapeError("give either an initial path or a point to pass through, not both")
    if init_path is not None and tuple(init_path.shape[1:]) != tuple(a.shape):
        raise LandscapeError(f"initial path must have shape [M, {', '.join(map(str, a.shape))}], got {list(init_path.shape)}")
    if via is not None and tuple(via.shape) != tuple(a.shape):
        raise LandscapeError(f"via point must have shape {list(a.shape)}, got {list(via.shape)}")
    if not isinstance(energy, Energy):
        energy = _FunctionEnergy(energy, a)
    (result,) = string_method_batch(
        energy,
        a.unsqueeze(0),
        b.unsqueeze(0),
        init=None if init_path is None else [init_path],
        via=None if via is None else via.unsqueeze(0),
        images=images,
        steps=steps,
        tol=tol,
        climb=climb,
        climb_steps=climb_steps,
        step_size=step_size,
        box=box,
    )
    return result
