"""The map's settings, and the one policy that fills in the settings a user leaves open.

:class:`MapConfig` holds every setting of a map. Those left at ``None`` are chosen from the
energy and its landscape, by the functions here, the same way for ``build_map`` from
Python and for ``landscape map`` (which only passes on the options given). Nothing is a
constant in the energy's units, so the map of ``c * U`` at defaults is ``c`` times the map
of ``U`` (same minima, basins and tree; energies, barriers and temperatures times ``c``).

=======================  ===========================================================  ============================================
setting                  default                                                      why
=======================  ===========================================================  ============================================
``temperature``          the checkpoint's sampling ``tau^2``; else 0                   a checkpoint keeps the temperature it was
                                                                                      trained to sample at; an energy of unknown
                                                                                      scale has none, and quenching uniform starts
                                                                                      finds each minimum in proportion to the
                                                                                      volume it drains
``eps``                  the checkpoint's training step; else stable at the           the model's own sampler; else the largest
                         stiffest quenched start (``eps^2/2 * curvature = 1/2``)       step that cannot blow up
``steps``                10x the checkpoint's L; else 1000 (0 at temperature 0)       long enough to leave the start's own well
``chains``, rounds       256, then doubled while a round finds new minima (up to      until no new minimum turns up, unless
                         ``rounds`` rounds), unless minima hit once outnumber half     nearly every chain finds its own (image space);
                         of the chains; a new minimum that drains with no barrier     points a quench left on flat ground are no
                         into one found before counts as none                         new state
``merge_radius``         1% of the box width x sqrt(dim)                              end points closer than that with no
                                                                                      barrier between are one state
``grad_tol``             1e-8 x the median gradient norm at up to 64 uniform starts   a quench converges relative to the energy's
                                                                                      own gradients, and tightly: the starts'
                                                                                      gradients are set by the stiffest
                                                                                      direction, and a minimum must still be
                                                                                      found to 1/1000 of ``merge_radius``
                                                                                      along a direction 10^4 times softer
``ad_temperature``       the checkpoint's sampling ``tau^2``; else 1/20 of the        what the model's own chains cross is no
                         lowest resolved barrier of the minima's tree (flat merges    boundary between its basins; an energy of
                         left out; chosen again with the ladder where refining the
                         pairs AD connected halves it), at least 1/1000 of its
                         highest; with none,                                          unknown scale loses no barrier to the
                         1/100 of the minima's energy spread; with no spread either   temperature (each is at least 20 T high),
                         (minima of one flat floor), 1/100 of the energy's median     and ripples below 1/1000 of its relief do
                         rise over the box above the lowest minimum; then, where      not split basins; ``c U + b`` gets ``c``
                         the arrival pull (``alpha_unit``, counted up to 2 (D - 1) /  times the temperature of ``U`` even with
                         delta) outweighs the barriers' pull more than 2x, lowered    no barrier to measure; and in ``D``
                         by their ratio (at most 10^4x)
                                                                                      dimensions the pull that brings a chain
                                                                                      to its target at all, ``(D - 1) T /
                                                                                      delta`` in energy, crosses every barrier
                                                                                      below it at once
``alpha_unit``           the tree's median resolved barrier (none resolved: the       at 1 unit the pull over a typical spacing
                         minima's 10-90 % energy spread; no spread the energy's       matches a typical barrier; and it can bring
                         precision resolves: ``T_AD``) over ``T_AD`` times the
                         minima's median spacing (those that drain over a flat
                         merge left out; one minimum: 1); at least the                a chain to its target at all: in ``D``
                         pull that brings half of AD's chains to their target across  dimensions a pull ``alpha`` holds a chain
                         flat ground (``U`` left out, the same minima,                about ``(D - 1) / alpha`` from its target,
                         :func:`arrival_pull`)                                        which barriers far below ``T_AD`` (a
                                                                                      convergent model at its own temperature)
                                                                                      leave far from reached
``ladder``, ``alpha``    0.03, 0.1, 0.3, 1, 3 units, extended by x3 until the         basins from nearly every minimum down to one;
                         strongest pull leaves one basin (``ladder_extend`` rungs      the main partition is the one at 0.1 unit
                         at most, reported); main level 0.1; then up to 4 rungs       (most barriers still resolved); and no step
                         (``ladder_refine``) at the geometric mean of two pulls       of the ladder jumps over the hierarchy (a
                         where the stronger keeps under 1/4 of the basins             convergent model: 64 basins, then 1)
                         (again beside one that split nothing)
``delta``                a quarter of the minima's median spacing (those that drain   a successful trial reached its target and no
                         over a flat merge left out; at least the merge radius); a    other minimum, not even the one it left
                         trial arrives within at most half the distance from its
                         start to its target (``arrival_reach``)
``ad_eps``               the checkpoint's descent step at ``T_AD``                      the model's own sampler; else the largest
                         (``eps_t sqrt(T_AD / T_s)``); else stable at the stiffest    step whose descent cannot blow up, nor
                         minimum or refined saddle; at a pull ``alpha`` at most       overshoot a wall; and the pull moves a
                         ``sqrt(delta / alpha)``                                      chain at most ``delta / 2`` a
                                                                                      step, so it can come to rest at its target
=======================  ===========================================================  ============================================
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import torch

from landscape import checks as checks_module
from landscape.energy import Energy
from landscape.errors import LandscapeError
from landscape.io.files import first_line
from landscape.mapping.neighbors import nearest_distance
from landscape.mapping.tree import flat_rtol, unresolved
from landscape.sampling.langevin import MAX_EPS

#: The ladder of magnetizations, in units of the alpha unit (extended upwards until one basin).
DEFAULT_LADDER = (0.03, 0.1, 0.3, 1.0, 3.0)
#: Factor between the rungs added above the ladder.
LADDER_FACTOR = 3.0
#: A rung is inserted between two neighbouring pulls where the stronger keeps at most
#: 1/LADDER_JUMP of the weaker one's basins (``ladder_refine`` rungs at most).
LADDER_JUMP = 4.0
#: The quench's default tolerance, as a fraction of the median gradient norm at uniform
#: starts (a quasi-Newton quench reaches it in a few steps more than a looser one; a
#: float32 energy stops at its precision before).
GRAD_TOL_FACTOR = 1e-8


@dataclass(frozen=True)
class MapConfig:
    """Settings of a map (plain data: stored as JSON in the map's ``config`` attr).

    ``None`` means "choose from the energy" (see the module docstring for how and why);
    the chosen values are stored in the map beside the settings.

    Attributes
    ----------
    chains : int
        Exploration chains of the first round.
    rounds : int
        Exploration rounds at most: after the first, the chains are doubled while the
        last round found new minima that do not drain with no barrier into one found
        before (1: one round only).
    init : str or None
        Where chains start: ``"noise"`` (uniform in the data box), ``"data"`` or
        ``"both"`` (half each) [default: both when data are given, else noise].
    temperature : float or None
        ``T`` of the exploration chains (noise scale ``sqrt(T)``); 0 quenches the starts.
    eps : float or None
        Langevin step size of the exploration chains.
    steps : int or None
        Exploration steps before quenching.
    quench_steps : int
        Descent iterations at most.
    grad_tol : float or None
        Quench convergence threshold on ``||dU/dx||``.
    merge_radius : float or None
        End points closer than this, with no barrier between them, are one minimum.
    max_minima : int
        Keep at most this many minima (the lowest); 0 keeps all.
    neighbours : int
        Nearest minima per minimum whose barriers are estimated (and representatives
        each minimum is tried against by attraction-diffusion).
    refine : bool
        Refine barriers with the string method.
    refine_slack : float
        Pairs other than neighbours are refined when their estimate is within this share
        of the barrier height above the tree's height joining them.
    refine_images, refine_steps : int
        Images per string and iteration budget of the string phase.
    refine_climb_steps : int
        Iteration budget of the climbing-image phase that follows (0: no climbing). A
        string on a smooth energy converges in a few dozen climbing iterations; on a
        network's piecewise-linear landscape the climb hardly ever converges, and its
        iterations past 100 moved the digits maps' trees by under 0.5 % of their height
        (``docs/benchmarks.md``).
    ad_temperature : float or None
        ``T`` of attraction-diffusion: which barriers count as basin boundaries.
    ad_eps : float or None
        Attraction-diffusion step size.
    delta : float or None
        Attraction-diffusion success radius.
    alpha_unit : float or None
        The unit of ``alpha`` and ``ladder`` (a pull per unit distance, in units of
        ``U / T_AD``).
    alpha : float
        The main level's magnetization (in alpha units; added to the ladder): its basins
        are ``/minima/basin`` and ``/basins``.
    ladder : tuple of float
        Magnetizations of the Hopfield hierarchy (``/levels``), in alpha units.
    ladder_extend : int
        Rungs (each ``x3``) added above the ladder at most while its strongest level has
        more than one basin.
    ladder_refine : int
        Rungs inserted at most (in one batch, after the ladder), each at the geometric mean
        of two neighbouring pulls where the stronger keeps a quarter of the weaker one's
        basins or fewer, the largest drops first (the hierarchy between 64 basins and 1,
        say, instead of nothing); then, within the same count, another beside each inserted
        rung that kept the basins of one of its neighbours (the drop lies whole on its other
        side), until one splits the drop; 0 for the ladder as given.
    max_steps, patience, attempts, average, round_size, batch_size :
        Attraction-diffusion trial settings (see :class:`landscape.mapping.ad.ADConfig`).
    grid : int
        Grid points per axis of ``/grid`` (2-D energies only; 0 for none).
    seed : int
    """

    chains: int = 256
    rounds: int = 4
    init: str | None = None
    temperature: float | None = None
    eps: float | None = None
    steps: int | None = None
    quench_steps: int = 2000
    grad_tol: float | None = None
    merge_radius: float | None = None
    max_minima: int = 0
    neighbours: int = 10
    refine: bool = True
    refine_slack: float = 0.5
    refine_images: int = 24
    refine_steps: int = 400
    refine_climb_steps: int = 100
    ad_temperature: float | None = None
    ad_eps: float | None = None
    delta: float | None = None
    alpha_unit: float | None = None
    alpha: float = 0.1
    ladder: tuple[float, ...] = DEFAULT_LADDER
    ladder_extend: int = 4
    ladder_refine: int = 4
    max_steps: int = 2000
    patience: int = 200
    attempts: int = 3
    average: int = 20
    round_size: int = 256
    batch_size: int = 4096
    grid: int = 160
    seed: int = 0

    def __post_init__(self) -> None:
        checks_module.typed_fields(self, "map config")

        def pos(v: float | None) -> bool:
            return v is None or (v > 0 and math.isfinite(v))

        checks = [
            (self.chains >= 1 and self.rounds >= 1, "chains and rounds must be >= 1"),
            (self.init in (None, "noise", "data", "both"), "init must be noise, data or both"),
            (self.temperature is None or (self.temperature >= 0 and math.isfinite(self.temperature)),
             "temperature must be >= 0"),
            (pos(self.eps) and pos(self.ad_eps) and pos(self.ad_temperature), "eps, ad_eps, ad_temperature must be > 0"),
            (pos(self.grad_tol) and pos(self.delta) and pos(self.alpha_unit), "grad_tol, delta, alpha_unit must be > 0"),
            (all(v is None or v <= MAX_EPS for v in (self.eps, self.ad_eps)),
             f"eps and ad_eps must be at most {MAX_EPS:g}, got {self.eps} and {self.ad_eps}"),
            (all(v is None or v <= MAX_EPS**2 for v in (self.temperature, self.ad_temperature)),
             f"temperature and ad_temperature must be at most {MAX_EPS**2:g}, got {self.temperature} and "
             f"{self.ad_temperature}"),
            (self.steps is None or self.steps >= 0, "steps must be >= 0"),
            (self.quench_steps >= 1, "quench_steps must be >= 1"),
            (self.merge_radius is None or (self.merge_radius >= 0 and math.isfinite(self.merge_radius)),
             "merge_radius must be >= 0"),
            (self.max_minima >= 0 and self.neighbours >= 1, "max_minima must be >= 0 and neighbours >= 1"),
            (self.refine_slack >= 0, "refine_slack must be >= 0"),
            (self.refine_images >= 3 and self.refine_steps >= 1, "refine_images must be >= 3, refine_steps >= 1"),
            (self.refine_climb_steps >= 0, "refine_climb_steps must be >= 0"),
            (self.alpha > 0 and math.isfinite(self.alpha), "alpha must be > 0"),
            (all(a > 0 and math.isfinite(a) for a in self.ladder), "ladder values must be finite and > 0"),
            (self.ladder_extend >= 0, "ladder_extend must be >= 0"),
            (self.ladder_refine >= 0, "ladder_refine must be >= 0"),
            (self.max_steps >= 1 and self.patience >= 1 and self.attempts >= 1, "max_steps, patience, attempts must be >= 1"),
            (self.average >= 0 and self.round_size >= 1 and self.batch_size >= 1,
             "average must be >= 0, round_size and batch_size >= 1"),
            (self.grid == 0 or self.grid >= 8, "grid must be 0 or >= 8"),
        ]
        for ok, message in checks:
            if not ok:
                raise LandscapeError(f"map config: {message}")

    @property
    def multipliers(self) -> list[float]:
        """The ladder with the main level, in alpha units, ascending."""
        return sorted({float(a) for a in self.ladder} | {float(self.alpha)})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ladder"] = list(self.ladder)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MapConfig:
        """From a stored config (keys this version does not know, e.g. timings, are ignored).
        What earlier versions stored and used is taken: a whole number stored as a float
        where a count belongs, a seed outside ``0 .. 2**32 - 1`` (brought into it, as
        torch's generators took it modulo 2**64)."""
        counts = {f.name for f in fields(cls) if checks_module.field_kind(f) == "int"}
        d = {k: v for k, v in d.items() if k in {f.name for f in fields(cls)}}
        for k in counts & d.keys():
            if isinstance(d[k], float) and d[k].is_integer():
                d[k] = int(d[k])
        if isinstance(d.get("seed"), int) and not isinstance(d["seed"], bool):
            d["seed"] %= checks_module.MAX_SEED + 1
        if "ladder" in d:
            d["ladder"] = tuple(d["ladder"])
        return cls(**d)

    def fingerprint(self) -> str:
        """A hash of the settings: a resumed run must have the same."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- measures


def hessian_vector(energy: Energy, x: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``H(x) v`` per row (:func:`hessian_operator` for one product)."""
    return hessian_operator(energy, x)(v)


def hessian_operator(energy: Energy, x: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``v -> H(x) v`` per row, for many products at the same points: ``g = dU/dx`` is
    built once with its graph, each product differentiating ``g . v`` through it (the graph
    kept between them: a product then costs one backward pass, not a forward and two).

    ``H(x) v`` per row: the gradient of ``g . v``, ``g = dU/dx`` differentiated again
    (double backward); where that is not available (an operation with no second
    derivative, a gradient that does not depend on ``x``), forward-mode differentiation of
    the gradient (``torch.func.jvp``). Exact either way (no finite differences).

    Double backward first: ``torch.func``'s forward mode loads torch's compiler machinery on
    its first use on many energies (a second or more, once per process: a third of a
    Mueller-Brown map's time), and on small energies each product costs it 2-3 times as
    much.

    Raises
    ------
    NotImplementedError
        Where the energy allows neither (e.g. a custom ``autograd.Function`` whose backward
        is differentiable once and that has no ``jvp``).
    """
    fn = energy.fn

    def total(z: torch.Tensor) -> torch.Tensor:
        return fn(z).sum()

    def forward_mode(v: torch.Tensor) -> torch.Tensor:
        try:
            with energy.frozen():
                _, hv = torch.func.jvp(torch.func.grad(total), (x,), (v,))
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, NotImplementedError, TypeError) as err:
            raise NotImplementedError(f"no second derivative of this energy: {first_line(err)}") from None
        return hv.detach()

    try:
        with energy.frozen(), torch.enable_grad():
            z = x.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(total(z), z, create_graph=True)
    except torch.OutOfMemoryError:
        raise
    except (RuntimeError, NotImplementedError, TypeError):
        return forward_mode
    if not g.requires_grad:  # (a gradient that does not depend on x: forward mode says what H is)
        return forward_mode
    backward_ok = [True]

    def product(v: torch.Tensor) -> torch.Tensor:
        if backward_ok[0]:
            try:
                with torch.enable_grad():
                    hv = torch.autograd.grad((g * v).sum(), z, allow_unused=True, retain_graph=True)[0]
                return torch.zeros_like(x) if hv is None else hv.detach()
            except torch.OutOfMemoryError:
                raise
            except (RuntimeError, NotImplementedError, TypeError):
                backward_ok[0] = False  # (an operation with no double backward: forward mode from now on)
        return forward_mode(v)

    return product


def _power(apply: Any, x: torch.Tensor, iterations: int) -> torch.Tensor:
    """Per row, the norm power iteration converges to for the operator ``apply``."""
    n = x.shape[0]
    gen = torch.Generator(device=x.device).manual_seed(0)
    v = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    view = (n,) + (1,) * (x.dim() - 1)
    v = v / torch.linalg.vector_norm(v.reshape(n, -1), dim=1).reshape(view)
    lam = torch.zeros(n, dtype=torch.float64, device=x.device)
    for _ in range(iterations):
        hv = apply(v)
        norm = torch.linalg.vector_norm(hv.reshape(n, -1), dim=1)
        lam = norm.double()
        if not bool((norm > 0).any()):
            break
        v = torch.where(norm.reshape(view) > 0, hv / norm.clamp_min(torch.finfo(hv.dtype).tiny).reshape(view), v)
    return lam


def largest_curvature(energy: Energy, x: torch.Tensor, iterations: int = 20) -> float:
    """How fast the gradient of ``U`` can change near the points ``x`` (e.g. minima).

    The largest of three power iterations per point, maximised over points: on exact
    Hessian-vector products (:func:`hessian_vector`), and on the change of the gradient
    over a finite step of 1/50 of the box (or of the point's norm without a box) forward
    and backward. The steps matter for piecewise-linear networks (ReLU, LeakyReLU), whose
    Hessian is zero between kinks while their gradient jumps at each kink: a Langevin step
    feels the jumps. One-sided, a point where the curvature changes (the rim of a flat
    floor, a kink) sees the curvature of its stiffer side whichever side of the change
    the quench left it on (a central difference would see their mean, and the exact
    Hessian the side it sits on, which rounding decides). It sets a stable step: a
    descent step ``h * curvature`` below 2.
    """
    n = x.shape[0]
    if n == 0:
        return 1.0
    try:
        exact = _power(hessian_operator(energy, x), x, iterations)
    except NotImplementedError:  # (the finite steps below still see how the gradient changes)
        exact = torch.zeros(n, dtype=torch.float64, device=x.device)
    vg = energy.value_and_grad_fn()
    if energy.data_range is not None:
        h = 1e-2 * (energy.data_range[1] - energy.data_range[0])
    else:
        h = 1e-2 * (float(torch.linalg.vector_norm(x.reshape(n, -1), dim=1).max()) + 1.0)
    with energy.frozen():
        g = vg(x)[1]
        # (each over 2 h, as the central difference it replaces: a kink inside the span
        # counts its jump over the same distance)
        forward = _power(lambda v: (vg(x + 2 * h * v)[1] - g) / (2 * h), x, iterations)
        backward = _power(lambda v: (g - vg(x - 2 * h * v)[1]) / (2 * h), x, iterations)
    # Estimates that are not finite are left out, not the points: a Hessian product can be
    # NaN where the energy and its gradient are fine (0 * inf in torch's second derivative
    # of logaddexp where one term underflows: a floor beside a well), and one NaN made the whole maximum the fallback below, a step of
    # the same size at every scale of the energy.
    found = torch.stack([exact, forward, backward])
    value = float(torch.where(torch.isfinite(found), found, 0.0).max())
    return value if value > 0 else 1.0


def lowest_curvature(energy: Energy, x: torch.Tensor, iterations: int = 12,
                     project: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per point of ``x`` [m, *shape], the lowest curvature of ``U`` there, its unit
    direction and the largest curvature in magnitude met on the way: Lanczos on exact
    Hessian-vector products (:func:`hessian_vector`), ``iterations`` of them with full
    reorthogonalisation, from one fixed start for every row (the same points give the same
    directions, whatever their batch), in the subspace ``project`` keeps (a function of
    [m, D] rows; None: every direction). Returns float64 ``[m]``, ``[m, D]`` and ``[m]``.

    Raises
    ------
    NotImplementedError
        Where the energy has no second derivative.
    """
    m = x.shape[0]
    d = x[0].numel() if m else 0
    keep = project if project is not None else (lambda v: v)

    apply = hessian_operator(energy, x)

    def hv(v: torch.Tensor) -> torch.Tensor:
        return apply(v.reshape(x.shape)).reshape(m, -1).to(v)

    gen = torch.Generator(device="cpu").manual_seed(20261205)
    v = keep(torch.randn(1, d, generator=gen, dtype=torch.float64).to(x).expand(m, d))
    basis, tri = lanczos(lambda u: keep(hv(u)), v, max(1, min(iterations, d - (project is not None))))
    values, vectors = torch.linalg.eigh(tri)
    direction = torch.einsum("mkd,mk->md", torch.stack(basis, 1).double(), vectors[:, : len(basis), 0])
    return values[:, 0], direction, values.abs().amax(1)


def lanczos(hv: Callable[[torch.Tensor], torch.Tensor], start: torch.Tensor,
            steps: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """``steps`` Lanczos steps per row of ``start`` [m, D] (rows of 0 stay 0) with the
    symmetric operator ``hv`` on [m, D] rows, full reorthogonalisation (a dozen vectors).
    Returns the orthonormal basis (``steps`` rows [m, D]) and the tridiagonal matrix
    float64 [m, steps, steps] whose eigenpairs are the Ritz values and, in that basis,
    vectors."""
    tiny = torch.finfo(start.dtype).tiny
    basis = [start / torch.linalg.vector_norm(start, dim=1, keepdim=True).clamp_min(tiny)]
    alphas, betas = [], []
    for j in range(steps):
        w = hv(basis[-1])
        alphas.append((w * basis[-1]).sum(1))
        for b in basis:
            w = w - b * (w * b).sum(1, keepdim=True)
        if j + 1 < steps:
            beta = torch.linalg.vector_norm(w, dim=1)
            betas.append(beta)
            basis.append(w / beta.clamp_min(tiny)[:, None])
    tri = torch.diag_embed(torch.stack(alphas, 1).double())
    if betas:
        off = torch.stack(betas, 1).double()
        tri = tri + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    return basis, tri


def stable_eps(curvature: float, temperature: float = 1.0, safety: float = 0.5) -> float:
    """The Langevin ``eps`` on ``U / T`` whose descent step ``eps^2/(2T) * curvature`` is ``safety``."""
    return math.sqrt(2.0 * safety * temperature / curvature)


def median_spacing(x: torch.Tensor) -> float:
    """Median distance from each point to its nearest other point (0 for fewer than two)."""
    if x.shape[0] < 2:
        return 0.0
    return float(nearest_distance(x, x, exclude_self=True).median())


# ----------------------------------------------------------------------------- policy


def exploration_settings(energy: Energy, config: MapConfig, data: torch.Tensor | None) -> dict[str, Any]:
    """The exploration settings of ``config`` with the open ones chosen (module docstring).

    Returns a dict with ``init``, ``temperature``, ``eps``, ``steps``, ``grad_tol`` and
    ``merge_radius``.

    Raises
    ------
    LandscapeError
        No data range, or ``init`` needs data that are not given.
    """
    energy.box()
    sampler = energy.sampler or {}
    init = config.init or ("both" if data is not None and len(data) else "noise")
    if init in ("data", "both") and (data is None or len(data) == 0):
        raise LandscapeError(f"init={init} needs data to start chains from: give a data set")
    tau = sampler.get("tau")
    temperature = config.temperature
    if temperature is None:
        temperature = float(tau) ** 2 if isinstance(tau, (int, float)) else 0.0
    steps = config.steps
    if steps is None:
        if temperature == 0:
            steps = 0
        else:
            steps = 10 * int(sampler["steps"]) if sampler.get("steps") else 1000
    low, high = energy.data_range
    merge_radius = config.merge_radius
    if merge_radius is None:
        merge_radius = 0.01 * (high - low) * math.sqrt(energy.dim)
    gen = torch.Generator(device=energy.device).manual_seed(config.seed)
    probe = energy.uniform_noise(min(config.chains, 64), gen)
    grad_tol = config.grad_tol
    eps = config.eps
    if eps is None and sampler.get("epsilon"):
        eps = float(sampler["epsilon"])
    if grad_tol is None or eps is None:
        with energy.frozen():
            u, g = energy.value_and_grad_fn()(probe)
        gnorm = torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1).double()
        _refuse_no_gradient(u, gnorm)
        if grad_tol is None:
            grad_tol = GRAD_TOL_FACTOR * float(gnorm.median())
            if not grad_tol > 0:  # a flat energy at every probe: any tolerance will do
                grad_tol = 1e-12
    if eps is None:  # also at temperature 0: a funnel probe of the map samples with it
        from landscape.mapping.minima import quench

        q = quench(energy, probe[:16], max_steps=300, grad_tol=grad_tol)
        eps = stable_eps(largest_curvature(energy, q.x))
    return {"init": init, "temperature": float(temperature), "eps": float(eps), "steps": int(steps),
            "grad_tol": float(grad_tol), "merge_radius": float(merge_radius)}


def _refuse_no_gradient(u: torch.Tensor, gnorm: torch.Tensor) -> None:
    """LandscapeError where the energy's gradient is 0 at every probe though its values
    differ: an energy piecewise constant in its input (rounded, thresholded, or cut from
    it by ``.detach()``), which no descent can follow: every start would be a "minimum"."""
    if len(gnorm) < 2 or bool((gnorm > 0).any()):
        return
    u = u.detach().double()
    low, high = float(u.min()), float(u.max())
    if high > low:
        raise LandscapeError(
            f"the energy's gradient with respect to its input is 0 at all {len(gnorm)} points drawn across the box, "
            f"though its values there run from {low:.4g} to {high:.4g}: it is piecewise constant in its input "
            "(torch.round, a comparison, argmax or .detach() on the way), and a map descends the gradient")


def resolved_barriers(depths: np.ndarray) -> np.ndarray:
    """The barriers among a tree's ``depths`` (:meth:`BarrierTree.resolved_depth`) that
    set attraction-diffusion's scale: finite and above 0 (no flat merge, no pair left
    unconnected)."""
    d = np.asarray(depths, dtype=np.float64)
    return d[np.isfinite(d) & (d > 0)]


def sampling_temperature(energy: Energy) -> float | None:
    """The model's own sampling temperature ``tau^2`` where its sampler gives a tau above
    0 (a checkpoint's), else None: what decides attraction-diffusion's ``T_AD``."""
    tau = (energy.sampler or {}).get("tau")
    return float(tau) ** 2 if isinstance(tau, (int, float)) and tau > 0 else None


#: ``T_AD`` of our choosing is this share of the lowest resolved barrier. At 1/10 a chain
#: escaped a well 10 T deep by the temperature alone often enough to join two basins at
#: some pulls and not at stronger ones (three narrow Gaussian wells in 2-D, one chain of
#: six at two rungs of five: the entropy of a round well's rim lowers its barrier by a
#: few T); at 1/20 the escape is about e^-10 times rarer.
AD_TEMPERATURE_SHARE = 0.05


def ad_temperature_from(depths: np.ndarray, energies: np.ndarray, relief: Callable[[], float] | None = None,
                        tie: float = 0.0) -> float:
    """``T_AD`` from the barrier depths of the minima's tree (module docstring); with no
    barrier resolved, from the spread of the minima's energies (a spread within ``tie``,
    what the quench's tolerance leaves unresolved, is none); with none either (minima of
    one flat floor), from ``relief()``: how far the energy rises over the box above its
    lowest minimum (:func:`box_relief`), so the walls around a flat floor keep their
    height in units of ``T_AD`` whatever the energy's scale and offset."""
    d = resolved_barriers(depths)
    if d.size:
        return float(max(AD_TEMPERATURE_SHARE * d.min(), 1e-3 * d.max()))
    e = np.asarray(energies, dtype=np.float64)
    spread = float(e.max() - e.min()) if e.size else 0.0
    if spread > tie:
        return 0.01 * spread
    rise = relief() if relief is not None else 0.0
    return 0.01 * rise if rise > 0 else 1.0  # (an energy constant over the box: nothing to resolve)


def box_relief(energy: Energy, seed: int, lowest: float, points: int = 256) -> float:
    """The median rise of the energy above ``lowest`` at ``points`` uniform points of the
    box (0 without a box, or where the energy is not finite)."""
    if energy.data_range is None:
        return 0.0
    gen = torch.Generator(device=energy.device).manual_seed(seed + 7)
    with energy.frozen(), torch.no_grad():
        u = energy(energy.uniform_noise(points, gen)).double()
    u = u[torch.isfinite(u)]
    rise = float(u.median()) - lowest if u.numel() else 0.0
    return rise if math.isfinite(rise) and rise > 0 else 0.0


def ad_settings(
    energy: Energy, config: MapConfig, minima_x: torch.Tensor, minima_energy: np.ndarray, depths: np.ndarray,
    merge_radius: float, tie: float = 0.0, ridges: torch.Tensor | None = None,
    drained: np.ndarray | None = None,
) -> dict[str, Any]:
    """The attraction-diffusion settings of ``config`` with the open ones chosen from the
    minima and the barrier depths of their tree: ``ad_temperature``, ``alpha_unit``,
    ``delta``, ``ad_eps`` (module docstring; stable at the minima and at ``ridges``, the
    barriers' refined saddles where given), and ``alpha_unit_rule``, what set the unit:
    ``"barriers"`` (the typical barrier over the typical spacing), ``"spread"`` (no
    barrier resolved: the minima's 10-90 % energy spread over the spacing),
    ``"temperature"`` (no spread resolved either: T_AD over the spacing), ``"single"``
    (one minimum), ``"arrival"`` (the pull that brings half the chains to their target,
    stronger) or ``"given"``; and ``ad_temperature_lowered``, the factor by which a
    ``T_AD`` of our choosing was lowered so that the arrival pull does not outweigh the
    barriers' (1 where it was not). Differences of the minima's energies within ``tie`` (the
    quench's tolerance times the merge radius), or within the energy's flat share of their
    magnitude (:func:`landscape.mapping.tree.flat_rtol`), count as none. ``drained`` [N]
    marks the minima that drain into a lower one over a flat merge (points a quench left
    on a plateau, a well's tail or along a curved flat valley, as dense as the chains that
    stopped there): the spacing leaves them out, as the typical barrier leaves out their
    merges, and so do ``delta`` and the arrival pull's chains. Points that drain flat
    into the others move none of the settings."""
    t_ad = config.ad_temperature
    if t_ad is None:
        t_ad = sampling_temperature(energy)  # the model's own sampling temperature decides what is metastable
    chosen = t_ad is None  # (ours to choose: neither given nor the model's own)
    # Differences the energy's precision does not resolve are none: within the quench's tie,
    # or the flat share of the minima's magnitude (a float32 well's tail, 1e-12 below its rim
    # at an energy of order 1, is rounding, not a spread to take a scale from).
    e_all = np.asarray(minima_energy, dtype=np.float64)
    magnitude = float(np.abs(e_all).max()) if e_all.size else 0.0
    resolved = float(unresolved(magnitude, flat_rtol(energy.dtype), tie))
    if t_ad is None:
        lowest = float(np.min(minima_energy)) if len(minima_energy) else 0.0
        t_ad = ad_temperature_from(depths, minima_energy, lambda: box_relief(energy, config.seed, lowest), resolved)
    # The spacing of distinct states: minima that drain flat into a lower one (points a
    # quench left on a plateau or along a curved flat valley, as dense as the chains that
    # stopped there) are left out, as the typical barrier leaves out their merges.
    kept = torch.ones(minima_x.shape[0], dtype=torch.bool) if drained is None \
        else torch.from_numpy(~np.asarray(drained, dtype=bool))
    states = minima_x[kept.to(minima_x.device)] if int(kept.sum()) >= 2 else minima_x
    spacing = median_spacing(states)
    delta = config.delta
    if delta is None:
        delta = max(0.25 * spacing, merge_radius, 1e-12) if spacing > 0 else max(merge_radius, 1e-12)
    sampler = energy.sampler or {}
    curvature: list[float] = []

    def eps_at(t: float) -> float:
        if config.ad_eps is not None:
            return float(config.ad_eps)
        if sampler.get("epsilon"):
            # The model's own descent step (eps_t^2 / 2 on U at its temperature T_s), at T_AD.
            tau = sampler.get("tau")
            t_s = float(tau) ** 2 if isinstance(tau, (int, float)) and tau > 0 else 1.0
            return float(sampler["epsilon"]) * math.sqrt(t / t_s)
        if not curvature:
            # Stable at the stiffest minimum and at the barriers' tops found so far (``ridges``,
            # the refined saddles): a chain must not overshoot a steep wall it is to cross.
            points = minima_x if ridges is None or not len(ridges) else torch.cat([minima_x, ridges.to(minima_x)])
            curvature.append(largest_curvature(energy, points))
        return stable_eps(curvature[0], t)

    ad_eps = eps_at(t_ad)
    unit, rule, lowered = config.alpha_unit, "given", 1.0
    outweighed: dict[str, Any] = {}  # (an arrival unit: the pull it outweighed, and what that was matched to)
    if unit is None:
        d = resolved_barriers(depths)
        if d.size:
            typical, rule = float(np.median(d)), "barriers"
        else:
            spread = float(np.quantile(e_all, 0.9) - np.quantile(e_all, 0.1)) if e_all.size > 1 else 0.0
            typical, rule = (spread, "spread") if spread > resolved else (0.0, "temperature")
        if spacing > 0:
            # (no barrier and no spread: a pull that raises U/T_AD by one over a spacing)
            unit = (typical / t_ad if typical > 0 else 1.0) / spacing
        else:
            unit, rule = 1.0, "single"  # (one minimum: nothing to pull towards)
        matched = unit
        unit = arrival_pull(energy, states, spacing, delta, ad_eps, t_ad, config, at_least=unit)
        # The pull that brings a chain to its target at all, about (D - 1) / delta in units
        # of U / T_AD, does not depend on T_AD; the pull matched to the typical barrier grows
        # as T_AD falls. Where the first outweighs the second, every barrier is crossed at
        # the first rung whose chains arrive (D = 1024: from every minimum its own basin to
        # one at once): T_AD falls by their ratio, and the two meet. Only the part of the
        # arrival pull that the dimension explains: beyond it, what holds chains back is
        # their step budget (a stiff valley's small steps), which a lower T_AD, with its
        # smaller steps, does not relieve.
        dimension = ARRIVAL_DIMENSION * (energy.dim - 1) / delta
        if chosen and rule in ("barriers", "spread") and min(unit, dimension) > ARRIVAL_LOWERS * matched:
            lowered = min(min(unit, dimension) / matched, ARRIVAL_LOWEST)
            t_ad /= lowered
            ad_eps = eps_at(t_ad)
            matched *= lowered
            unit = arrival_pull(energy, states, spacing, delta, ad_eps, t_ad, config, at_least=matched)
        if unit > matched:
            outweighed = {"alpha_unit_matched": float(matched), "alpha_unit_matched_rule": rule}
            rule = "arrival"
    return {"ad_temperature": float(t_ad), "alpha_unit": float(unit), "delta": float(delta), "ad_eps": float(ad_eps),
            "alpha_unit_rule": rule, "ad_temperature_lowered": float(lowered), **outweighed}


#: Where the pull that brings attraction-diffusion's chains to their targets outweighs the
#: one matched to the typical barrier by more than this, a ``T_AD`` of our choosing is lowered
#: until they meet (:func:`ad_settings`).
ARRIVAL_LOWERS = 2.0
#: The most ``T_AD`` is lowered by for that.
ARRIVAL_LOWEST = 1e4
#: The arrival pull the dimension explains, times ``(D - 1) / delta``: no more of it lowers
#: ``T_AD``.
ARRIVAL_DIMENSION = 2.0


def capped_eps(eps: float, delta: float, alpha: float) -> float:
    """The attraction-diffusion step at pull ``alpha``: ``eps``, but no longer than the one
    whose pull moves a chain ``delta / 2`` per step (``eps^2 alpha / 2``), so a strongly
    pulled chain can still come to rest within ``delta`` of its target instead of jumping
    back and forth across it (a trial whose reach is less, its start nearer its target than
    ``2 delta``, has its step capped for that reach as it runs:
    :func:`landscape.mapping.ad.arrival_reach`)."""
    return eps if alpha <= 0 else min(eps, math.sqrt(delta / alpha))


#: Pairs (each from a minimum to its nearest other one) in :func:`arrival_pull` at most.
ARRIVAL_PAIRS = 64
#: Chains per pull in :func:`arrival_pull` at least (its pairs repeated). With 16 pairs of
#: one chain each, the unit of the demo's rings model at ``T_AD`` 0.1 ranged 0.35-4.3
#: over five seeds and three maps of it (256, 1,024 and 2,048 chains); with 64 pairs and
#: 256 chains, and the minima that drain flat left out (:func:`ad_settings`), 2.9-3.5.
ARRIVAL_CHAINS = 256
#: Pulls of its grid :func:`arrival_pull` runs together, as one batch of trials (fewer
#: steps one after another; the pulls above the first that arrives cost a few steps each,
#: their chains arriving at once).
ARRIVAL_BATCH = 4
#: The strongest pull :func:`arrival_pull` tries, times the minima's median spacing (in
#: ``D`` dimensions a pull settles a chain about ``(D - 1) / alpha`` from its target).
ARRIVAL_TOP = 3.0**12


def arrival_pull(energy: Energy, minima_x: torch.Tensor, spacing: float, delta: float, ad_eps: float,
                 temperature: float, config: MapConfig, at_least: float = 0.0) -> float:
    """The weakest pull (per unit distance, in units of ``U / T``), ``at_least`` or more,
    that brings at least half of the chains to their target across flat ground
    (``spacing``: the minima's :func:`median_spacing`; ``at_least`` where it is 0).

    The chains are attraction-diffusion's own (its step capped at each pull as at every
    level, ``delta``, ``max_steps``, ``patience``, ``average``, the energy's data box), from
    up to :data:`ARRIVAL_PAIRS` minima to their nearest other minimum (:func:`ad_settings`
    gives the distinct states: no minimum that drains flat into another), each pair
    repeated to :data:`ARRIVAL_CHAINS` chains or more, with ``U`` left out:
    only the pull and the noise. What a pull must overcome where no barrier is in the way:
    a chain pulled by ``alpha`` in ``D`` dimensions settles about ``(D - 1) / alpha`` from
    its target, and it has ``max_steps`` steps to get there. Below this pull a target that
    is not reached says little about a barrier. Pulls are tried on one grid, factors of 3
    from the inverse of the minima's median spacing, from its pull at or below
    ``at_least`` up to :data:`ARRIVAL_TOP` over the spacing, each with noise of its own
    (:data:`ARRIVAL_BATCH` pulls at a time, run together as one batch of trials), then
    once between the last that fails and the first that arrives; the crossing of one
    half is interpolated on the log scale (the largest pull tried if none arrives), and
    ``at_least`` kept where it is larger: the estimate does not depend on where the search
    began. Deterministic for a given ``config.seed``, and the same for ``c * U`` (``T`` and
    the step follow the energy's scale).
    """
    from landscape.mapping.ad import ADConfig, attraction_diffusion
    from landscape.sampling.langevin import RowGroups

    n = minima_x.shape[0]
    if n < 2 or not spacing > 0:
        return at_least
    flat_x = minima_x.reshape(n, -1)
    starts = torch.linspace(0, n - 1, min(n, ARRIVAL_PAIRS)).round().long().unique().to(minima_x.device)
    dist = torch.cdist(flat_x[starts].double(), flat_x.double())
    dist[torch.arange(len(starts), device=dist.device), starts] = math.inf
    ends = dist.argmin(dim=1)
    # Each pair as many times as fills ARRIVAL_CHAINS: the share is a mean over chains.
    times = max(1, math.ceil(ARRIVAL_CHAINS / len(starts)))
    starts, ends = starts.repeat(times), ends.repeat(times)
    flat = Energy(lambda z: (z * 0).flatten(1).sum(1), energy.shape, data_range=energy.data_range,
                  device=energy.device, dtype=minima_x.dtype, name="flat ground")
    ad = ADConfig(temperature=temperature, alpha=1.0, eps=ad_eps, max_steps=config.max_steps,
                  patience=config.patience, delta=delta, average=config.average, record=0)
    anchor = 1.0 / spacing

    def shares_at(grid: list[int]) -> list[float]:
        """The share of chains that arrive at each pull ``anchor * sqrt(3)**step`` of
        ``grid``, run together, each pull's chains with a noise of their own (a generator
        per pull, its rows drawn as in a batch of their own): every pull gives the share it
        gives alone, whichever pulls were tried before it or with it, so the estimate does
        not depend on where the search began."""
        k = len(starts)
        pulls = [anchor * math.sqrt(3.0) ** step for step in grid]
        noise = RowGroups([k] * len(grid), [
            torch.Generator(device=energy.device).manual_seed(config.seed * 1009 + 997 + 7919 * (step + 1000))
            for step in grid])
        alphas = torch.tensor(pulls, dtype=torch.float64).repeat_interleave(k)
        steps = torch.tensor([capped_eps(ad_eps, delta, pull) for pull in pulls], dtype=torch.float64)
        out = attraction_diffusion(flat, minima_x[starts.repeat(len(grid))], minima_x[ends.repeat(len(grid))], ad,
                                   noise, alphas=alphas.to(minima_x.device),
                                   steps=steps.repeat_interleave(k).to(minima_x.device))
        return out.success.double().reshape(len(grid), k).mean(1).tolist()

    # Pulls on one grid (factors of 3 from the inverse spacing, and the points between), from
    # the grid's pull at or below ``at_least`` up: the crossing of one half is then the
    # same whatever ``at_least`` was, as long as it lies above it (the barriers' pull moved
    # the rings demo's unit 4x when the grid started from it).
    first = math.floor(math.log(at_least / anchor, 3.0) + 1e-9) * 2 if at_least > 0 else 0
    last = first + 2 * max(1, math.ceil(math.log(ARRIVAL_TOP / (anchor * math.sqrt(3.0) ** first * spacing), 3.0)))
    # (ARRIVAL_BATCH pulls of the grid at a time: the first that arrives ends the search)
    tried: dict[int, float] = {}
    grid = list(range(first, last + 1, 2))
    for at in range(0, len(grid), ARRIVAL_BATCH):
        tried.update(zip(grid[at:at + ARRIVAL_BATCH], shares_at(grid[at:at + ARRIVAL_BATCH])))
        if any(share >= 0.5 for share in tried.values()):
            break
    arrived = [step for step in grid if tried.get(step, 0.0) >= 0.5]
    if not arrived:
        return max(at_least, anchor * math.sqrt(3.0) ** last)  # (none arrives: the largest pull tried)
    step = arrived[0]
    if step == first:
        return max(at_least, anchor * math.sqrt(3.0) ** first)  # (most energies: the barriers' pull arrives)
    # One pull between the last that fails and the first that arrives, then the share's
    # crossing of one half, interpolated on the log scale between the two around it.
    tried[step - 1] = shares_at([step - 1])[0]
    lo, hi = (step - 2, step - 1) if tried[step - 1] >= 0.5 else (step - 1, step)
    w = (0.5 - tried[lo]) / (tried[hi] - tried[lo])
    return max(at_least, anchor * math.sqrt(3.0) ** (lo + w * (hi - lo)))
