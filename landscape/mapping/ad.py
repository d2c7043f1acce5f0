"""Basins by attraction-diffusion (AD) on the magnetized landscape.

Two minima ``a`` and ``b`` share a basin at magnetization ``alpha`` if a Langevin chain on
the magnetized energy

    E_b(x) = U(x) / T + alpha * ||x - b||

started at ``a`` comes within ``delta`` of ``b`` (within half their distance at most: nearer ``b``
than ``a``, :func:`arrival_reach`) in at most ``max_steps`` steps (the ADELM procedure of Hill, Nijkamp and Zhu 2019, "Building a Telescope to Look Into High-Dimensional
Image Spaces", and its public reference code enijkamp/elm_map). The pull ``alpha`` sets the
resolution: a weak pull only carries the chain over barriers the temperature can cross; a
strong one drags it over anything. Minima join basins from the lowest up: each is tried
against its nearest basin representatives and joins the one it reaches over the lowest
barrier, or founds a basin of its own where it reaches none (:func:`assign_basins`; the
reference code takes the representative with the most successful chains, then the lowest
barrier); a ladder of pulls gives the Hopfield hierarchy of basins.

The highest raw energy ``U`` along a successful chain is an estimate of the barrier
between the two minima (the highest point of a real path); the chain itself, recorded at
a few dozen points, is where the string method (:mod:`landscape.mapping.paths`) starts refining
it (:mod:`landscape.mapping.barriers`).

The chain is the unadjusted Langevin move of :mod:`landscape.sampling.langevin` applied to
``E_b`` with ``tau = 1`` (the temperature lives in the ``1/T``), its coefficients worked out
once per trial (:class:`_Magnetized`). In ``U``'s own terms a step is
``x - eps^2/(2T) dU/dx - eps^2/2 alpha u + eps z`` (``u`` the unit vector towards ``b``), so
the descent is stable while ``eps^2/(2T) * curvature(U) < 2``, the pull moves
``eps^2 alpha / 2`` per step, and the noise ``eps`` per coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, NamedTuple

import numpy as np
import torch

from landscape import fused
from landscape.energy import Energy, ValueAndGrad, rows_where
from landscape.errors import LandscapeError, NonFiniteEnergyError
from landscape.sampling.langevin import RowGroups, gaussian_noise, window_noise
from landscape.mapping.minima import Minima, energy_key, energy_order
from landscape.mapping.paths import segment_max
from landscape.mapping.tree import drainage_ends
from landscape.io.records import Partition


@dataclass(frozen=True)
class ADConfig:
    """Settings of attraction-diffusion (plain data: round-trips through JSON).

    Attributes
    ----------
    temperature : float
        ``T`` in ``U/T + alpha ||x - b||``: which barriers the chain can cross by itself.
    alpha : float
        Magnetization (pull towards the target per unit distance, in units of ``U/T``).
    eps : float
        Langevin step size on the magnetized energy (see the module docstring).
    max_steps : int
        Steps per trial at most (``M``).
    patience : int
        A trial stops early after this many steps without getting closer to its target.
    delta : float
        Success radius around the target (a trial's own is at most half the distance from
        its start to its target: :func:`arrival_reach`).
    attempts : int
        Chains per (start, target) pair and direction; the best one counts.
    neighbours : int
        Each minimum is tried against this many nearest basin representatives.
    round_size : int
        Minima assigned per round of batched trials.
    batch_size : int
        AD chains per batched call at most (bounds memory; large images want fewer: each
        chain keeps its last 17 positions between two host syncs, about 10 more for its
        peak, gradient and noise, and its recorded path).
    average : int
        Judge arrival (and progress, for ``patience``) by an exponential moving average
        of the chain's positions over about this many steps instead of the position
        itself (0: the position, as in ADELM). In many dimensions a chain at temperature
        ``T`` sitting in the target's well still fluctuates far more than ``delta`` around
        it; its running mean does not. The barrier is still the highest ``U`` the chain
        itself visited.
    record : int
        Points at which each chain's path is kept at most (thinned evenly as the chain
        runs; fewer when the batch's paths would exceed 2^26 numbers; 0: none): where a
        string starts refining the barrier.
    """

    temperature: float = 1.0
    alpha: float = 1.0
    eps: float = 0.1
    max_steps: int = 2000
    patience: int = 200
    delta: float = 0.35
    attempts: int = 3
    neighbours: int = 10
    round_size: int = 256
    batch_size: int = 4096
    average: int = 20
    record: int = 256

    def __post_init__(self) -> None:
        checks = [
            (self.temperature > 0.0 and math.isfinite(self.temperature), "temperature must be > 0"),
            (self.alpha >= 0.0 and math.isfinite(self.alpha), "alpha must be >= 0"),
            (self.eps > 0.0 and math.isfinite(self.eps), "eps must be > 0"),
            (self.max_steps >= 0, "max_steps must be >= 0"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.delta > 0.0 and math.isfinite(self.delta), "delta must be > 0"),
            (self.attempts >= 1, "attempts must be >= 1"),
            (self.neighbours >= 1, "neighbours must be >= 1"),
            (self.round_size >= 1, "round_size must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.average >= 0, "average must be >= 0"),
            (self.record == 0 or self.record >= 2, "record must be 0 or >= 2"),
        ]
        for ok, message in checks:
            if not ok:
                raise LandscapeError(f"attraction-diffusion config: {message}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ADConfig:
        """From a stored config (keys this version does not know are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# Finished trials are dropped from the batch (and non-finite energies reported) every
# this many steps: a host sync per step would stall a GPU.
_SYNC_EVERY = 16


class ADTrials(NamedTuple):
    """Outcome of a batch of AD trials, one row per trial.

    success : bool [P], came within reach of the target (``delta``, or half the start's
        distance to it where that is less).
    barrier : float64 [P], highest raw energy ``U`` on the path (start included) where
        successful; ``+inf`` where not.
    steps : int64 [P], steps run.
    final_distance : float64 [P], distance to the target when the trial stopped.
    peak_x : [P, *shape], the point of the path where ``U`` was highest, also for failed
        trials; ``peak_prev`` and ``peak_next`` [P, *shape]: the chain's positions one step
        before and after it (the highest point of the continuous path lies on one of the two
        segments when the chain stepped over a ridge there).
    path : [P, C, *shape] or None, the chain's positions at up to ``C = config.record``
        evenly spaced steps (thinned by halves as the chain runs); ``path_len`` [P] says
        how many of the ``C`` rows hold points. None when nothing was recorded.
    end_x : [P, *shape], where the chain was when it stopped.
    calls : int, batched energy-and-gradient evaluations the batch made (the start's,
        then one per step until the last trial left; trials that finish between two
        host syncs are stepped, frozen, until the next, so this can exceed
        ``1 + steps.max()``).
    """

    success: torch.Tensor
    barrier: torch.Tensor
    steps: torch.Tensor
    final_distance: torch.Tensor
    peak_x: torch.Tensor
    peak_prev: torch.Tensor
    peak_next: torch.Tensor
    path: torch.Tensor | None
    path_len: torch.Tensor
    end_x: torch.Tensor
    calls: int = 0


@dataclass
class BatchProgress:
    """A batch of :func:`attraction_diffusion` part-way, at a sync point, every trial
    still in it running: what its ``on_sync`` hands out to save, and what its
    ``resume_from`` continues from, to the outcome of the uninterrupted batch, provided
    the generators are in the state they had then (the caller keeps those: a ladder's
    levels save theirs with their :class:`LevelProgress`).

    The tensors are the batch's own, on the CPU: save them before its chains step again.

    Attributes
    ----------
    step : int
        Steps run.
    rows : Tensor int64 [R]
        The rows of the batch still running, increasing.
    running : dict of str to Tensor
        Their state, a row each: position ``x`` and its drift ``h``, and the bookkeeping
        of :class:`_Running` (:attr:`_Running.SAVED`).
    stride, recorded : int
        The paths are recorded every ``stride`` steps; ``recorded`` points so far.
    paths : Tensor [L, K, *shape] or None
        The recorded points (the slots in use) of the trials ``path_rows``.
    outcome : dict of str to Tensor
        What the trials that left finished with (a row per trial of the batch).
    emptied : list of int
        With row groups: the step at which each group's last trial left (-1: not yet).
    path_rows : Tensor int64 [K] or None
        The trials whose paths are kept, increasing: those still running and those that
        arrived (a failed trial's path is of no use to a map, and the paths are most of
        a batch's state); None: every trial's. A batch resumed from here gives the
        uninterrupted outcome but for the paths of the trials that had failed: none
        (``path_len`` 0).
    """

    step: int
    rows: torch.Tensor
    running: dict[str, torch.Tensor]
    stride: int
    recorded: int
    paths: torch.Tensor | None
    outcome: dict[str, torch.Tensor]
    emptied: list[int]
    path_rows: torch.Tensor | None = None


class _Magnetized:
    """Chains on the magnetized energy ``E_b = U/T + alpha ||x - b||`` towards per-row
    targets ``b``, with one pull ``alpha`` and step ``eps`` for all rows or one per row.

    A step is the unadjusted Langevin move on ``E_b`` (``tau = 1``), written in ``U``'s own
    terms with its coefficients worked out once:

        x' = clamp(x - eps^2/(2T) h + eps z),   h = T grad E_b = dU/dx + T alpha (x - b)/||x - b||

    Per-row coefficients are worked out in float64 and rounded once, and applied the way
    a single Python float is (``torch.add(..., alpha=)`` rounds it to the dtype and
    fuses it the same way): a trial takes bit for bit the same steps in a batch of its own
    as among trials with other pulls and steps.
    """

    def __init__(self, value_and_grad: ValueAndGrad, targets: torch.Tensor, temperature: float,
                 alpha: float | torch.Tensor, eps: float | torch.Tensor,
                 generator: torch.Generator | RowGroups | None, box: tuple[float, float] | None):
        p, dtype, view = targets.shape[0], targets.dtype, (-1,) + (1,) * (targets.dim() - 1)
        self.value_and_grad = value_and_grad
        self.targets = targets
        # T alpha per row (a [P] tensor either way: it divides the per-row distance)
        pull = torch.full((p,), float(alpha), dtype=torch.float64) if not isinstance(alpha, torch.Tensor) else alpha
        self.pull = (pull.to(torch.float64) * temperature).to(device=targets.device, dtype=dtype)
        if isinstance(eps, torch.Tensor):
            e = eps.to(device=targets.device, dtype=torch.float64)
            self.drift: float | torch.Tensor = (-0.5 * e * e / temperature).to(dtype).reshape(view)
            self.noise: float | torch.Tensor = e.to(dtype).reshape(view)
        else:
            self.drift, self.noise = -0.5 * eps * eps / temperature, float(eps)
        self.generator, self.box = generator, box
        # The distance the pull is divided by, at least this: at a chain sitting exactly
        # on its target (a box corner both were clamped to) T alpha / tiny would overflow,
        # and 0 * inf is NaN. Below it the pull shrinks with the distance, at most T alpha.
        self.floor = self.pull.abs().clamp_min(1.0).mul(torch.finfo(dtype).tiny)
        self.x: torch.Tensor | None = None
        self.h: torch.Tensor | None = None
        self._fused_args: tuple[torch.Tensor, ...] | None = None
        self._z: torch.Tensor | None = None

    def evaluate(self, x: torch.Tensor, distance: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """At ``x``: the raw ``U``, ``dU/dx``, ``x - b`` and ``||x - b||`` (written into
        ``distance`` when given). ``x`` and its ``h`` become the chains' state."""
        u, g = self.value_and_grad(x)
        diff = torch.sub(x, self.targets)
        d = torch.linalg.vector_norm(diff.reshape(x.shape[0], -1), dim=1, out=distance)
        # ||x - b|| has no gradient at x = b; the zero vector there (a subgradient) keeps
        # the chain finite, and a chain that close has succeeded anyway.
        scale = torch.div(self.pull, torch.maximum(d, self.floor))
        self.x, self.h = x, torch.addcmul(g, diff, scale.reshape((-1,) + (1,) * (x.dim() - 1)))
        return u, g, diff, d

    def draw(self) -> torch.Tensor:
        """The noise of one step, in a buffer of the chains' own that the next step's noise
        overwrites (row groups' draws go straight into their rows: no copy to join them)."""
        t = self.targets
        if self._z is None:
            self._z = torch.empty_like(t)
        return gaussian_noise(t.shape, self.generator, t.device, t.dtype, out=self._z)

    def step(self, out: torch.Tensor, distance: torch.Tensor | None = None, z: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Move every chain once, to ``out`` (with the noise ``z``, drawn when not given);
        what :meth:`evaluate` gives there."""
        x = self.x
        if z is None:
            z = self.draw()
        if isinstance(self.drift, torch.Tensor):
            x = torch.addcmul(x, self.h, self.drift, out=out)
            x.addcmul_(z, self.noise)
        else:
            x = torch.add(x, self.h, alpha=self.drift, out=out)
            x.add_(z, alpha=self.noise)
        if self.box is not None:
            x.clamp_(self.box[0], self.box[1])
        return self.evaluate(x, distance)

    def fused_args(self) -> tuple[torch.Tensor, ...]:
        """What :func:`_fused_window` takes besides the state: the pulls and their floors
        ``[P]``, the step's coefficients ``[P, 1, ...]`` (a float made one per row, rounded
        as ``torch.add(..., alpha=)`` rounds it) and the box's bounds (:func:`fused.bounds`).
        Made once per set of chains (tensors of their own, not views: :func:`fused.call`
        would copy a view at every call)."""
        if self._fused_args is None:
            t = self.targets
            view = (-1,) + (1,) * (t.dim() - 1)
            drift, noise = (v.reshape(view).clone() if isinstance(v, torch.Tensor)
                            else torch.full((t.shape[0],) + (1,) * (t.dim() - 1), v, dtype=t.dtype, device=t.device)
                            for v in (self.drift, self.noise))
            self._fused_args = (self.pull, self.floor, drift, noise, *fused.bounds(self.box, t))
        return self._fused_args

    def select(self, keep: torch.Tensor) -> None:
        """Keep the chains ``keep`` only (row numbers, in order)."""
        for name in ("targets", "pull", "floor", "drift", "noise", "x", "h"):
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                setattr(self, name, value[keep])
        self._fused_args = self._z = None


def _fused_window(averaged: bool) -> Callable[[ValueAndGrad], Callable[..., tuple[Any, ...]]]:
    """``fused.STEPS`` steps of :class:`_Magnetized` and their bookkeeping (:func:`_book`,
    the running mean's with ``averaged``), as one function of tensors for ``torch.compile``.
    It returns the positions ``[STEPS + 1, P, ...]`` (the first the one before), the last
    position and its ``h``, the running mean's offset, the trials' state after the steps
    and where an energy or gradient was not finite. ``step``, ``delta``, ``patience`` and
    ``max_steps`` come as tensors, so that neither the step count nor the settings compile
    the function again."""

    def build(value_and_grad: ValueAndGrad) -> Callable[..., tuple[Any, ...]]:
        def window(x: torch.Tensor, h: torch.Tensor, targets: torch.Tensor, pull: torch.Tensor,
                   floor: torch.Tensor, drift: torch.Tensor, noise: torch.Tensor, low: torch.Tensor,
                   high: torch.Tensor, z: torch.Tensor, offset: torch.Tensor | None, smooth: float,
                   state: tuple[torch.Tensor, ...], step: torch.Tensor, delta: torch.Tensor,
                   patience: torch.Tensor, max_steps: torch.Tensor) -> tuple[Any, ...]:
            p = x.shape[0]
            view = (p,) + (1,) * (x.dim() - 1)
            xs, us, ds, gs = [x], [], [], []
            for k in range(fused.STEPS):
                x = torch.clamp(x + h * drift + z[k] * noise, low, high)
                u, g = value_and_grad(x)
                diff = x - targets
                d = torch.linalg.vector_norm(diff.reshape(p, -1), dim=1)
                h = g + diff * (pull / torch.maximum(d, floor)).reshape(view)
                if averaged:
                    offset = offset + (diff - offset) * smooth
                    d = torch.linalg.vector_norm(offset.reshape(p, -1), dim=1)
                xs.append(x)
                us.append(u)
                ds.append(d)
                gs.append(g.reshape(p, -1).sum(dim=1))
            path = torch.stack(xs)
            state, bad = _book(state, path, torch.stack(us), torch.stack(ds), torch.stack(gs), step, delta,
                               patience, max_steps, masked=True)
            return path, x, h, offset, state, bad

        return window

    return build


#: The fields of :class:`_Running` a window of steps brings up to date (:func:`_book`), in order.
_BOOKED = ("peak_u", "peak_x", "peak_prev", "peak_next", "fresh", "best", "stale", "finished", "reached",
           "stop_step", "final", "end_x")


def _book(state: tuple[torch.Tensor, ...], xs: torch.Tensor, us: torch.Tensor, ds: torch.Tensor, gs: torch.Tensor,
          step: int | torch.Tensor, delta: float | torch.Tensor, patience: int | torch.Tensor,
          max_steps: int | torch.Tensor, masked: bool) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """The trials' bookkeeping over ``m`` steps run from ``step``, on their history: where
    each trial stops, its peak, best distance and steps since it improved.

    ``state`` holds :data:`_BOOKED`'s fields of the trials (:class:`_Running`); ``xs``
    ``[m + 1, P, ...]`` their positions (``xs[0]`` the one before the first step), ``us``
    and ``ds`` ``[m, P]`` each step's raw energy and distance to the target (of the running
    mean, with ``average``), ``gs`` its gradient's row sums (finite exactly when every
    entry is, or overflow). A trial stops at the first step where it arrives (``ds <
    delta``, each trial's reach), runs out of patience or reaches ``max_steps``; what it did
    after that step does not count. ``masked``: trials already finished (a window's later steps) keep their
    state; else every trial is running. Returns the new state and where an energy or
    gradient was not finite ``[m, P]``.

    A function of tensors alone (``step`` and the settings may be tensors, and nothing is
    read to the host), so that the compiled window runs it with its steps."""
    (peak_u, peak_x, peak_prev, peak_next, fresh, best, stale_before, done, reached, stop_step, final,
     end_x) = state
    m, p = us.shape
    view = (-1,) + (1,) * (xs.dim() - 2)
    bad = ~(torch.isfinite(us) & torch.isfinite(gs))
    dist, u = ds.double(), us.double()
    ks = torch.arange(1, m + 1, device=us.device).reshape(m, 1)
    # Steps since the best distance last improved (strictly), after each step.
    low = torch.minimum(torch.cummin(dist, dim=0).values, best)
    before = torch.cat([best[None], low[:-1]])
    last = torch.where(dist < before, ks, 0).cummax(dim=0).values
    stale = torch.where(last > 0, ks - last, stale_before + ks)
    arrived = dist < delta
    stop = arrived | (stale >= patience)
    if isinstance(step, int):
        if step + m >= max_steps:
            stop[m - 1] = True
    else:
        stop = stop | (step + ks >= max_steps)
    finished = stop.any(dim=0)
    first = stop.to(torch.int8).argmax(dim=0)  # index of the first stop (0 where none)
    end = torch.where(finished, first + 1, m)  # the last step that counts, per trial
    rows = torch.arange(p, device=us.device)
    # The peak: the first highest raw energy up to the end, if above the one before.
    top, at = torch.where(ks <= end, u, -math.inf).max(dim=0)
    at = at + 1
    higher = top > peak_u
    # The position after the peak: in these steps, unless the peak is the last that counts.
    after = torch.where(higher, at < end, fresh)
    nxt = torch.where(higher, (at + 1).clamp_max(m), 1)
    new = (torch.where(higher, top, peak_u),
           torch.where(higher.reshape(view), xs[at, rows], peak_x),
           torch.where(higher.reshape(view), xs[at - 1, rows], peak_prev),
           torch.where(after.reshape(view), xs[nxt, rows], peak_next),
           higher & (at == end),
           torch.minimum(low[-1], best),
           stale[-1],
           finished,
           finished & arrived[first, rows],  # what the trials that stopped stopped with
           step + end,
           dist[end - 1, rows],
           xs[end, rows])
    if masked:
        new = tuple(torch.where(done.reshape((-1,) + (1,) * (old.dim() - 1)), old, value)
                    for old, value in zip(state, new))
    return new, bad


def attraction_diffusion(
    energy: Energy,
    starts: torch.Tensor,
    targets: torch.Tensor,
    config: ADConfig,
    generator: torch.Generator | RowGroups | None = None,
    alphas: torch.Tensor | None = None,
    steps: torch.Tensor | None = None,
    paths_for: int | None = None,
    on_window: Callable[[int, int], None] | None = None,
    on_compile: Callable[[], None] | None = None,
    on_sync: Callable[[Callable[[], BatchProgress]], None] | None = None,
    resume_from: BatchProgress | None = None,
) -> ADTrials:
    """Run AD trials ``starts[p] -> targets[p]`` as one batch.

    Each trial is a Langevin chain on ``U/T + alpha ||x - targets[p]||`` (``tau = 1``).
    Per trial it tracks the highest raw energy on the path and where it occurred, the
    best distance to the target so far, and (``config.record``) the path itself at up to
    that many evenly spaced steps. A trial stops when it comes within its reach of its
    target (success), when ``patience`` steps pass without a new best distance, or after
    ``max_steps``. Finished trials leave the batch (checked every few steps), so the cost
    follows the slowest trials, not ``P * max_steps``. Chains stay in the energy's data
    range when it has one (the map covers that box).

    Parameters
    ----------
    energy : Energy
        Its module (if any) is frozen for the duration.
    starts, targets : Tensor [P, *shape]
        Any mix of different starts and targets.
    config : ADConfig
        ``temperature``, ``alpha``, ``eps``, ``max_steps``, ``patience``, ``delta``,
        ``average`` and ``record`` are used.
    generator : torch.Generator or RowGroups, optional
        Source of the chains' noise; :class:`~landscape.sampling.langevin.RowGroups` gives
        consecutive groups of trials (levels of a ladder) the noise of their own generators,
        so each group's outcome is the one it would have in a batch of its own, and records
        when each group's last trial left the batch.
    alphas, steps : Tensor [P], optional
        A pull and a step size per trial instead of ``config.alpha`` and ``config.eps``
        (trials of several levels of a ladder in one batch).
    paths_for : int, optional
        The batch size the recorded paths' memory budget is reckoned for [default: P]
        (a group's own size, so it records what it would alone).
    on_window : callable, optional
        Called as ``on_window(steps, running)`` at each sync point (every few steps): the
        steps run so far and how many trials are still running (for progress reports).
    on_compile : callable, optional
        Called instead of ``on_window`` at the sync point before the steps are first
        compiled (``energy.compile``: seconds to a minute).
    on_sync : callable, optional
        Called at each sync point, once the trials that stopped have left, with a function
        returning the batch's :class:`BatchProgress` (the caller decides when it is worth
        taking and saving: a long batch runs for minutes).
    resume_from : BatchProgress, optional
        Continue the batch (the same arguments) from such a sync point.

    Returns
    -------
    ADTrials

    Raises
    ------
    NonFiniteEnergyError
        If a chain's energy or gradient becomes NaN or infinite (``eps`` too large for
        ``T``, or a broken model).
    LandscapeError
        On batches of the wrong shape.

    Examples
    --------
    >>> e = Energy(lambda x: ((x**2 - 1) ** 2).sum(1), shape=(1,), dtype=torch.float64)
    >>> a, b = torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[-1.0]], dtype=torch.float64)
    >>> attraction_diffusion(e, a, b, ADConfig(alpha=20.0)).success.tolist()  # doctest: +SKIP
    [True]

    Cost: at most ``P * max_steps`` energy-and-gradient evaluations, in batches of the
    still running trials; the recorded paths take ``P * record * dim`` numbers.
    """
    energy.check_batch(starts)
    energy.check_batch(targets)
    if starts.shape[0] != targets.shape[0]:
        raise LandscapeError(f"{starts.shape[0]} AD starts but {targets.shape[0]} targets")
    p = starts.shape[0]
    # Points kept per chain: as many as asked, within a budget of 2^26 numbers for the batch.
    rows = p if paths_for is None else paths_for
    cap = min(int(config.record), max(8, (1 << 26) // max(1, rows * math.prod(starts.shape[1:])))) \
        if config.record else 0
    out = _Outcome(starts.detach(), cap)
    if p == 0:
        return out.trials(calls=0)
    with energy.frozen():
        for name, per_trial in (("pulls", alphas), ("step sizes", steps)):
            if per_trial is not None and per_trial.shape != (p,):
                raise LandscapeError(f"{p} AD starts but {tuple(per_trial.shape)} {name}")
        reach = arrival_reach(starts, targets, config.delta)
        pulls = config.alpha if alphas is None else alphas
        mag = _Magnetized(energy.value_and_grad_fn(), targets.detach().to(starts.dtype).clone(), config.temperature,
                          pulls, _steps_within_reach(config.eps if steps is None else steps, pulls, reach, config.delta),
                          generator, energy.data_range)
        if resume_from is None:
            u, g, diff, d = mag.evaluate(starts.detach().clone())
            _check_start(u, g)
            run = _Running(mag.x, u.double(), d.double(), diff, cap, config.average, config, reach)
            step = 0
        else:
            run, step = _resume_batch(resume_from, mag, out, starts, cap, config, generator, reach), resume_from.step
        window = _Window(mag.x)
        ended: int | None = None  # trials that stopped in the last window (None: count them)

        def progress() -> BatchProgress:
            kept = out.success.clone()
            kept[run.rows] = True
            path_rows = torch.nonzero(kept).reshape(-1)
            return BatchProgress(
                step=step, rows=run.rows.cpu(), running={**run.progress(), "x": mag.x.cpu(), "h": mag.h.cpu()},
                stride=run.stride, recorded=run.recorded, paths=run.paths_in_use(out.path_len, path_rows),
                outcome=out.progress(),
                emptied=[-1 if s is None else s for s in generator.emptied] if isinstance(generator, RowGroups) else [],
                path_rows=path_rows.cpu())

        while True:
            # Trials that stopped leave the batch here, at the end of a window: they were
            # stepped, frozen, since they stopped. Checking every step would stall a GPU
            # on a host sync per step, and cost indexed writes every step.
            keep = ~run.finished
            # (counted by the window's one host sync, in :meth:`_Running.finish`)
            running = int(keep.sum()) if ended is None else keep.shape[0] - ended
            key = ("attraction-diffusion", run.offset is not None)
            compiling = (on_compile is not None and running >= fused.MIN_ROWS
                         and config.max_steps - step >= fused.STEPS and fused.cold(energy, key))
            if compiling:  # (said instead of the window's report: a progress bar may show one a moment)
                on_compile()
            elif on_window is not None:
                on_window(step, running)
            if running < keep.shape[0]:
                # The rows by number, found once from the count already read: a mask would
                # read its count from the device again for every field it selects.
                out.take(run, rows_where(~keep, keep.shape[0] - running))
                if isinstance(generator, RowGroups):
                    generator.select(keep, step)
                if running == 0:
                    break
                kept = rows_where(keep, running)
                run = run.select(kept)
                mag.select(kept)
                window = _Window(mag.x)
            if on_sync is not None:
                on_sync(progress)
            n = min(_SYNC_EVERY, config.max_steps - step)
            window.start(mag.x)
            averaged = run.offset is not None
            k = base = 0  # steps of the window run, and taken in (the rest were eager)
            bads: list[torch.Tensor] = []
            while k < n:
                fn = fused.compiled(energy, key, _fused_window(averaged)) \
                    if n - k >= fused.STEPS and running >= fused.MIN_ROWS else None
                z = window.noise(mag) if fn is not None else None
                done = None if fn is None else fused.call(
                    energy, key, fn, mag.x, mag.h, mag.targets, *mag.fused_args(), z, run.offset, run.smooth or 0.0,
                    run.state(), torch.full((1,), step + k, dtype=torch.int64, device=mag.x.device), *run.rules)
                if done is not None:
                    path, mag.x, mag.h, offset, state, bad = done
                    if run.buf is not None:  # (the positions the paths record)
                        window.x[k + 1 : k + fused.STEPS + 1].copy_(path[1:])
                    if averaged:
                        run.offset = offset
                    run.take(state)
                    bads.append(bad)
                    k = base = k + fused.STEPS
                    continue
                if k == base > 0 and run.buf is None:  # (eager steps after compiled ones start there)
                    window.x[k].copy_(mag.x)
                start = k
                for k in range(start + 1, n + 1 if z is None else start + fused.STEPS + 1):
                    u, g, diff, d = mag.step(window.x[k], None if averaged else window.d[k - 1],
                                             None if z is None else z[k - start - 1])
                    window.note(k, u, g, diff, run.offset, run.smooth)
            if base < n:
                bads.append(run.book(window, base, n, step + base, masked=base > 0))
            ended = run.finish(window, bads, n, step)
            step += n
    return out.trials(calls=step + 1)


class _Outcome:
    """The batch's results, one row per trial, written as trials finish (masked writes:
    no host sync)."""

    def __init__(self, starts: torch.Tensor, cap: int):
        p, device = starts.shape[0], starts.device
        self.success = torch.zeros(p, dtype=torch.bool, device=device)
        self.barrier = torch.full((p,), math.inf, dtype=torch.float64, device=device)
        self.steps = torch.zeros(p, dtype=torch.int64, device=device)
        self.final = torch.zeros(p, dtype=torch.float64, device=device)
        self.peak, self.prev, self.next, self.end = (starts.clone() for _ in range(4))
        # the paths themselves stay where they were recorded (:attr:`_Running.buf`)
        self.path: torch.Tensor | None = None
        self.path_len = torch.zeros(p, dtype=torch.int64, device=device)

    def take(self, run: _Running, leaving: torch.Tensor) -> None:
        """Keep the results of the finished trials about to leave the batch (``leaving``,
        their row numbers in the running batch): what :func:`_book` froze when each stopped."""
        rows = run.rows[leaving]
        view = (-1,) + (1,) * (run.peak_x.dim() - 1)
        self.success[rows] = run.reached[leaving]
        self.barrier[rows] = torch.where(run.reached[leaving], run.peak_u[leaving], math.inf)
        self.steps[rows] = run.stop_step[leaving]
        self.final[rows] = run.final[leaving]
        self.peak[rows] = run.peak_x[leaving]
        self.prev[rows] = run.peak_prev[leaving]
        # (a trial that ends at the step of its peak has no step after it: the peak itself)
        self.next[rows] = torch.where(run.fresh[leaving].reshape(view), run.peak_x[leaving], run.peak_next[leaving])
        self.end[rows] = run.end_x[leaving]
        self.path = run.buf  # (rows of trials that left are never written again)
        self.path_len[rows] = run.buf_len[leaving]

    SAVED = ("success", "barrier", "steps", "final", "peak", "prev", "next", "end", "path_len")

    def progress(self) -> dict[str, torch.Tensor]:
        """The outcome so far (:class:`BatchProgress`)."""
        return {name: getattr(self, name).cpu() for name in self.SAVED}

    def trials(self, calls: int) -> ADTrials:
        return ADTrials(
            self.success, self.barrier, self.steps, self.final, self.peak, self.prev, self.next,
            None if self.path is None else self.path.transpose(0, 1), self.path_len, self.end, calls=calls,
        )


class _Window:
    """What the steps between two host syncs leave for the bookkeeping: the positions
    (``x[0]`` where the window starts, ``x[k]`` after its ``k``-th step), and of the steps
    run eagerly, the raw energies, the distances to the targets (of the running mean, with
    ``average``) and the row sums of the gradients, which are finite exactly when every
    entry is (or overflow). (Compiled steps keep their own books: :func:`_fused_window`.)"""

    def __init__(self, x: torch.Tensor):
        p = x.shape[0]
        self.x = x.new_empty((_SYNC_EVERY + 1,) + tuple(x.shape))
        self.d = x.new_empty((_SYNC_EVERY, p))
        self.g = x.new_empty((_SYNC_EVERY, p))
        self.u: list[torch.Tensor] = []
        self.z: torch.Tensor | None = None  # (the noise of a compiled call's steps)

    def start(self, x: torch.Tensor) -> None:
        self.x[0].copy_(x)
        self.u = []

    def noise(self, mag: _Magnetized) -> torch.Tensor:
        """The noise of a compiled call's steps, in the window's buffer for it."""
        t = mag.targets
        self.z = window_noise(self.z, t.shape, mag.generator, t.device, t.dtype)
        return self.z

    def note(self, k: int, u: torch.Tensor, grad: torch.Tensor, diff: torch.Tensor, offset: torch.Tensor | None,
             smooth: float | None) -> None:
        """Keep eager step ``k``'s raw energy and its gradient's row sums; with a running
        mean (its ``offset`` from the target), bring it up to date from the step's ``diff``
        and keep its distance (without, the step wrote its own distance in place)."""
        self.u.append(u)
        if offset is not None:
            offset.lerp_(diff, smooth)
            torch.linalg.vector_norm(offset.reshape(offset.shape[0], -1), dim=1, out=self.d[k - 1])
        torch.sum(grad.reshape(grad.shape[0], -1), dim=1, out=self.g[k - 1])

    @staticmethod
    def error(bad: torch.Tensor, step: int) -> NonFiniteEnergyError:
        """The error for a window from ``step`` whose ``bad`` (:func:`_book`) has an entry."""
        first = int(torch.nonzero(bad.any(1))[0, 0]) + 1
        return _non_finite(int(bad.any(0).sum()), bad.shape[1], f"at step {step + first}")


def arrival_reach(starts: torch.Tensor, targets: torch.Tensor, delta: float) -> torch.Tensor:
    """Per trial, how near its target a chain has arrived: ``delta``, but at most half the
    distance from its start to its target, so that a chain counted as arrived is nearer
    the target than the minimum it left. Two minima a little more than the merge radius
    apart (within ``delta`` of each other when it is floored at that radius) were joined
    by a chain that had barely moved, whatever the barrier between them. A trial that
    starts at its target keeps ``delta`` (it is there). Float64 [P], on the trials' device."""
    gap = torch.linalg.vector_norm((starts - targets.to(starts)).reshape(starts.shape[0], -1).double(), dim=1)
    return torch.where(gap > 0, torch.clamp(0.5 * gap, max=delta), torch.full_like(gap, delta))


def _steps_within_reach(eps: float | torch.Tensor, alpha: float | torch.Tensor, reach: torch.Tensor,
                        delta: float) -> float | torch.Tensor:
    """The trials' steps, those of trials whose reach is below ``delta`` capped as
    :func:`landscape.mapping.settings.capped_eps` caps a level's for ``delta``: the pull
    moves a chain at most half its reach a step (``eps^2 alpha / 2``), so a strongly pulled
    chain can come to rest within it instead of jumping across it. ``eps`` as given where
    no cap binds (the other trials' steps are unchanged, bit for bit)."""
    short = reach < delta

    def per_trial(value: float | torch.Tensor) -> torch.Tensor:
        if isinstance(value, torch.Tensor):
            return value.to(reach.device, torch.float64)
        return torch.full_like(reach, float(value))

    e, a = per_trial(eps), per_trial(alpha)
    capped = torch.where(short & (a > 0), torch.minimum(e, torch.sqrt(reach / a.clamp_min(1e-300))), e)
    return capped if bool((capped < e).any()) else eps  # (the batch's one host read for it)


class _Running:
    """Per-trial state of the trials still stepping: the highest raw energy so far and
    where (with the positions one step before and after), the best distance to the
    target and steps since it improved, and the recorded path; and, for the trials that
    stopped (``finished``), what they stopped with.

    The bookkeeping runs once per window of steps (:meth:`advance`), on the window's
    history, with the outcome a check after every step would give: a trial stops at the
    first step of the window where it arrives, runs out of patience or of steps, and what
    it did after that step does not count.

    The path is recorded every ``stride`` steps; when full, every other point is dropped
    and the stride doubled. Running trials share the count; a finished trial keeps its
    own (and stops recording). The paths' buffer keeps a row for every trial of the batch
    (row ``rows[i]`` for running trial ``i``) and is never compacted: what a trial that
    left recorded stays where it is, and is the batch's outcome.
    """

    _PER_ROW = ("rows", "reach", "peak_u", "peak_x", "peak_prev", "peak_next", "fresh", "best", "stale",
                "finished", "offset", "buf_len", "reached", "stop_step", "final", "end_x")

    def __init__(self, x: torch.Tensor, raw: torch.Tensor, dist: torch.Tensor, offset: torch.Tensor, cap: int,
                 average: int, config: ADConfig, reach: torch.Tensor):
        p, device = x.shape[0], x.device
        self.config = config
        self.rows = torch.arange(p, device=device)
        self.reach = reach  # (per trial: within it a trial has arrived, :func:`arrival_reach`)
        self.peak_u, self.best = raw.clone(), dist.clone()
        self.peak_x, self.peak_prev, self.peak_next = x.clone(), x.clone(), x.clone()
        self.fresh = torch.ones(p, dtype=torch.bool, device=device)  # the peak's next position is still to come
        self.stale = torch.zeros(p, dtype=torch.int64, device=device)
        # The check before the first step: trials that start within reach stop there.
        self.reached = dist < reach
        self.finished = self.reached | (config.max_steps == 0)
        self.stop_step = torch.zeros(p, dtype=torch.int64, device=device)
        self.final = dist.clone()
        self.end_x = x.clone()
        # With ``average``: the running mean's offset from the target, kept up to date
        # after every step from the offset the pull computes anyway (:meth:`_Window.note`).
        self.smooth = 1.0 / average if average > 0 else None
        self.offset = offset.clone() if self.smooth is not None else None
        self.cap = cap
        # slot-major ([cap, P, *shape]): a run of recorded steps is one contiguous slice
        self.buf = x.new_empty((cap, p) + tuple(x.shape[1:])) if cap else None
        self.buf_len = torch.zeros(p, dtype=torch.int64, device=device)
        self.stride, self.recorded = 1, 0
        self._limits: tuple[torch.Tensor, torch.Tensor] | None = None

    #: What :class:`BatchProgress` keeps of a running trial (the rest is rewritten by the
    #: next window before it is read).
    SAVED = ("peak_u", "best", "peak_x", "peak_prev", "peak_next", "fresh", "stale", "offset", "buf_len")

    def progress(self) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name).cpu() for name in self.SAVED if getattr(self, name) is not None}

    def paths_in_use(self, left: torch.Tensor, rows: torch.Tensor) -> torch.Tensor | None:
        """The path buffer's slots in use, of the trials ``rows``, given the path lengths
        ``left`` of the trials that left (theirs can reach beyond the running trials'
        count, halved since)."""
        if self.buf is None:
            return None
        used = max(self.recorded, int(left[rows].max()) if rows.numel() else 0)
        return self.buf[:used, rows].cpu()

    def select(self, keep: torch.Tensor) -> _Running:
        """The same state for the rows ``keep`` only (row numbers, in order)."""
        for name in self._PER_ROW:
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])
        return self

    @property
    def rules(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The running trials' reach, ``patience`` and ``max_steps`` as tensors on the
        trials' device (what the compiled window takes: numbers would be compiled into it;
        and one element each for the two settings, not 0-d, which torch would read as
        numbers, compiling the window twice)."""
        if self._limits is None:
            device, config = self.rows.device, self.config
            self._limits = (torch.tensor([config.patience], dtype=torch.int64, device=device),
                            torch.tensor([config.max_steps], dtype=torch.int64, device=device))
        return (self.reach, *self._limits)

    def state(self) -> tuple[torch.Tensor, ...]:
        """The fields :func:`_book` brings up to date."""
        return tuple(getattr(self, name) for name in _BOOKED)

    def take(self, state: tuple[torch.Tensor, ...]) -> None:
        """Take in :func:`_book`'s new state."""
        for name, value in zip(_BOOKED, state):
            setattr(self, name, value)

    def book(self, w: _Window, base: int, n: int, step: int, masked: bool) -> torch.Tensor:
        """Take in the window's eager steps ``base + 1 ... n``, run from ``step``
        (``masked``: after compiled steps of the same window, where some trials may have
        stopped); where an energy or gradient was not finite [n - base, P]."""
        config = self.config
        state, bad = _book(self.state(), w.x[base : n + 1], torch.stack(w.u), w.d[base:n], w.g[base:n], step,
                           self.reach, config.patience, config.max_steps, masked)
        self.take(state)
        return bad

    def finish(self, w: _Window, bads: list[torch.Tensor], n: int, step: int) -> int:
        """Close the window of ``n`` steps run from ``step``, booked (``bads``: where each
        part of it met a non-finite energy or gradient): how many trials stopped, read with
        whether any energy or gradient was not finite (raised) in one host sync (the
        window's one); the paths recorded."""
        bad = bads[0] if len(bads) == 1 else torch.cat(bads)
        ended, broken = torch.stack([self.finished.sum(), bad.sum()]).tolist()
        if broken:
            raise w.error(bad, step)
        self._record(w.x, n, step, ended > 0)
        return ended

    def _record(self, x: torch.Tensor, n: int, step: int, stopped: bool) -> None:
        """Add the window's steps on the stride to the paths of the trials still running
        at each (all of them for the whole window unless some trial ``stopped`` in it)."""
        if self.buf is None:
            return
        cap, done = self.cap, 0
        end = self.stop_step - step if stopped else None  # (the last step of the window that counts, per trial)
        whole = self.rows.shape[0] == self.buf.shape[1]  # no trial left yet: plain slices
        while True:
            due = [k for k in range(done + 1, n + 1) if (step + k) % self.stride == 0][: cap - self.recorded]
            if not due:
                return
            lo, hi = self.recorded, self.recorded + len(due)
            points = x[due[0] : due[-1] + 1 : self.stride]  # due steps are a stride apart
            # Every trial's point is written; one that stopped before a step does not
            # count the slot (its length says where its path ends).
            if whole:
                self.buf[lo:hi] = points
            else:
                self.buf[lo:hi, self.rows] = points
            if stopped:  # (every trial here recorded every point before ``lo``)
                self.buf_len = lo + (torch.tensor(due, device=end.device).reshape(-1, 1) <= end).sum(dim=0)
            else:
                self.buf_len.fill_(hi)
            self.recorded, done = hi, due[-1]
            if self.recorded == cap:  # full: keep every other point, record half as often
                # (running trials only: a finished one keeps its path as it ended)
                half = cap // 2
                if stopped:
                    running = end >= done
                    self._halve(half, self.rows[running])
                    self.buf_len = torch.where(running, self.buf_len // 2, self.buf_len)
                else:
                    self._halve(half, None if whole else self.rows)
                    self.buf_len = self.buf_len // 2
                self.recorded, self.stride = half, self.stride * 2

    def _halve(self, half: int, rows: torch.Tensor | None) -> None:
        """Move slot ``2i + 1`` of the path buffer to slot ``i`` (``i < half``), for the
        trials in buffer rows ``rows`` (all with None). Slot by slot, in place: slot ``i``
        takes slot ``2i + 1``, beyond every slot written before it, so each slot is read
        before it is overwritten, and no copy of half the buffer is made (hundreds of MB
        when the levels of a ladder share a batch)."""
        buf = self.buf
        for i in range(half):
            if rows is None:
                buf[i].copy_(buf[2 * i + 1])
            else:
                buf[i].index_copy_(0, rows, buf[2 * i + 1].index_select(0, rows))


def _resume_batch(saved: BatchProgress, mag: _Magnetized, out: _Outcome, starts: torch.Tensor, cap: int,
                  config: ADConfig, generator: torch.Generator | RowGroups | None, reach: torch.Tensor) -> _Running:
    """The batch's state at the sync point ``saved`` (checked against the batch first: it
    comes from a file): the running trials' :class:`_Running`; ``mag``, ``out`` and the row
    groups brought there."""
    p, shape, device, dtype = starts.shape[0], tuple(starts.shape[1:]), starts.device, starts.dtype
    rows = torch.as_tensor(saved.rows).reshape(-1)
    r = rows.numel()
    averaged = config.average > 0
    per_row = {"x": shape, "h": shape, "peak_x": shape, "peak_prev": shape, "peak_next": shape,
               **({"offset": shape} if averaged else {}), "peak_u": (), "best": (), "fresh": (), "stale": (),
               "buf_len": ()}
    per_trial = {"peak": shape, "prev": shape, "next": shape, "end": shape, "success": (), "barrier": (),
                 "steps": (), "final": (), "path_len": ()}
    groups = len(generator.sizes) if isinstance(generator, RowGroups) else 0
    paths = saved.paths
    # (progress saved before the paths of failed trials were left out keeps every trial's)
    kept = torch.arange(p) if saved.path_rows is None else torch.as_tensor(saved.path_rows).reshape(-1)
    ok = (0 < r <= p and not rows.is_floating_point() and bool((rows[1:] > rows[:-1]).all())
          and 0 <= int(rows[0]) and int(rows[-1]) < p and 0 <= saved.step < config.max_steps
          and set(saved.running) == set(per_row) and set(saved.outcome) == set(per_trial)
          and all(tuple(saved.running[k].shape) == (r, *v) for k, v in per_row.items())
          and all(tuple(saved.outcome[k].shape) == (p, *v) for k, v in per_trial.items())
          and 0 <= saved.recorded <= cap and saved.stride >= 1 and len(saved.emptied) == groups
          and (paths is None) == (cap == 0)
          and not kept.is_floating_point() and 0 < kept.numel() <= p and bool((kept[1:] > kept[:-1]).all())
          and 0 <= int(kept[0]) and int(kept[-1]) < p and bool(torch.isin(rows, kept).all())
          and (paths is None or (tuple(paths.shape[1:]) == (kept.numel(), *shape)
                                 and saved.recorded <= paths.shape[0] <= cap)))
    if ok and cap:
        lengths = torch.cat([torch.as_tensor(saved.running["buf_len"]),
                             torch.as_tensor(saved.outcome["path_len"])[kept]])
        ok = bool(((lengths >= 0) & (lengths <= paths.shape[0])).all())
    if not ok:
        raise LandscapeError("the saved attraction-diffusion batch does not fit this batch")
    rows = rows.to(device=device, dtype=torch.int64)
    mag.select(rows)
    mag.x, mag.h = (saved.running[k].to(device=device, dtype=dtype) for k in ("x", "h"))
    for name in _Outcome.SAVED:
        old = getattr(out, name)
        setattr(out, name, saved.outcome[name].to(device=device, dtype=old.dtype))
    if isinstance(generator, RowGroups):
        keep = torch.zeros(p, dtype=torch.bool)
        keep[rows.cpu()] = True
        generator.select(keep, saved.step)
        generator.emptied = [None if s < 0 else int(s) for s in saved.emptied]
    # The next window rewrites what a stopped trial stopped with before reading it.
    run = _Running(mag.x, torch.zeros(r, dtype=torch.float64, device=device),
                   torch.full((r,), math.inf, dtype=torch.float64, device=device), mag.x, 0, config.average, config,
                   reach[rows])
    run.rows = rows
    for name in _Running.SAVED:
        if name in saved.running:
            like = getattr(run, name)
            setattr(run, name, saved.running[name].to(device=device, dtype=like.dtype))
    run.cap, run.stride, run.recorded = cap, int(saved.stride), int(saved.recorded)
    if cap:
        run.buf = starts.new_empty((cap, p, *shape))
        run.buf[: paths.shape[0], kept.to(device)] = paths.to(device=device, dtype=dtype)
        out.path = run.buf if r < p else None
        lost = torch.ones(p, dtype=torch.bool, device=device)
        lost[kept.to(device)] = False
        out.path_len[lost] = 0  # (the trials that had failed: their paths were not kept)
    return run


def _check_start(raw: torch.Tensor, grad: torch.Tensor) -> None:
    """Raise if a chain's energy or gradient is not finite where it starts (later steps:
    :meth:`_Window.check_finite`)."""
    ok = torch.isfinite(raw) & torch.isfinite(grad.reshape(grad.shape[0], -1)).all(1)
    if not bool(ok.all()):
        raise _non_finite(int((~ok).sum()), ok.numel(), "at their start")


def _non_finite(bad: int, total: int, where: str) -> NonFiniteEnergyError:
    return NonFiniteEnergyError(
        f"{bad} of {total} attraction-diffusion chains reached a non-finite energy or gradient {where}: "
        f"the energy must be finite throughout the box; where it is, try a smaller eps (stable while "
        f"eps^2/(2T) * curvature < 2)"
    )


@dataclass
class PairRecords:
    """The best attraction-diffusion chain of each minima pair tried.

    Attributes
    ----------
    pairs : ndarray int64 [R, 2]
        Minima pairs, ``i < j``.
    barrier : ndarray float64 [R]
        Highest ``U`` on the best connecting chain (``+inf``: no chain connected).
    alpha : ndarray float64 [R]
        The pull of that chain.
    paths : list of (Tensor [M, *shape] or None)
        That chain's recorded points from minimum ``i`` to minimum ``j``, both included
        (None where none connected or nothing was recorded).
    """

    pairs: np.ndarray
    barrier: np.ndarray
    alpha: np.ndarray
    paths: list[torch.Tensor | None]

    def __len__(self) -> int:
        return int(self.pairs.shape[0])


@dataclass
class LevelProgress:
    """One level of :func:`assign_ladder` part-way: what its ``on_turn`` hands out to save
    between batches, and what its ``resume_from`` continues from, to the result the
    uninterrupted run gives.

    Attributes
    ----------
    basin_of : ndarray int64 [N]
        Each minimum's basin so far (in order of founding; -1: not placed yet).
    reps : ndarray int64 [B]
        The basins' representatives, in order of founding.
    cursor : (int, list of int, int)
        Where the assignment stands: the first member of the round under way, the minima
        that round has founded so far, and how many of its members are placed; the round's
        last batch of trials has run.
    reached_lower : ndarray bool [N]
        Minima some chain connected with a lower one.
    counters : (int, int, int, int)
        Chains run, their Langevin steps, batched calls, pairs taken as not connected
        because no chain connected them at a stronger pull (absent in older progress).
    generator : ndarray uint8 or None
        The state of the level's generator (None: the level has none).
    records : PairRecords
        The best chain of every pair tried so far.
    """

    basin_of: np.ndarray
    reps: np.ndarray
    cursor: tuple[int, list[int], int]
    reached_lower: np.ndarray
    counters: tuple[int, ...]
    generator: np.ndarray | None
    records: PairRecords


class _Record(NamedTuple):
    barrier: float  # +inf: tested, never connected
    alpha: float
    path: torch.Tensor | None


class _Trials:
    """Runs AD between pairs of minima (both directions, ``attempts`` chains each) and
    keeps the best result per unordered pair."""

    def __init__(
        self, energy: Energy, x: torch.Tensor, rank: list[int], config: ADConfig, generator: torch.Generator | None
    ):
        self.energy = energy
        self.x = x
        self.rank = rank  # position of each minimum in energy order
        self.config = config
        self.generator = generator
        self.records: dict[tuple[int, int], _Record] = {}
        # Per minimum: some chain connected it with a lower minimum (so it will likely
        # join a basin rather than found one).
        self.reached_lower = [False] * x.shape[0]
        # Cost counters: chains run, their Langevin steps, batched calls.
        self.n_chains = 0
        self.chain_steps = 0
        self.batches = 0
        # The levels of the ladder at stronger pulls (:func:`assign_ladder`): a pair none of
        # their chains connected counts as not connected here, without trials.
        self.above: list[_Trials] = []
        self.failed_above = 0  # (pairs placing a minimum took so)

    def _failed_above(self, key: tuple[int, int]) -> bool:
        for t in self.above:
            rec = t.records.get(key)
            if rec is not None and not math.isfinite(rec.barrier):
                return True
        return False

    def tested(self, i: int, j: int) -> bool:
        """The pair's trials have run here, or no chain connected it at a stronger pull."""
        key = (min(i, j), max(i, j))
        return key in self.records or self._failed_above(key)

    def barrier(self, i: int, j: int) -> float:
        """The lowest barrier of the pair's chains (inf: none connected it), for placing a
        minimum (a pair :meth:`tested` at a stronger pull only is counted in ``failed_above``)."""
        key = (min(i, j), max(i, j))
        rec = self.records.get(key)
        if rec is not None:
            return rec.barrier
        if not self._failed_above(key):
            raise KeyError(f"the pair {key} has not been tried")
        self.failed_above += 1
        return math.inf

    def absorb(self, pairs: list[tuple[int, int]], alpha: float, barriers: torch.Tensor,
               chains: list[torch.Tensor | None], steps: torch.Tensor, calls: int) -> None:
        """Keep the outcome of the chains run for ``pairs`` (rows as :func:`_trial_rows` laid
        them out): the lowest barrier per pair, and the cost."""
        n_att = self.config.attempts
        self.n_chains += int(steps.numel())
        self.chain_steps += int(steps.sum())
        self.batches += calls
        per_pair = barriers.reshape(len(pairs), 2 * n_att)
        best, arg = per_pair.min(dim=1)
        for k, (i, j) in enumerate(pairs):
            h = float(best[k])
            old = self.records.get((i, j))
            if old is None or h < old.barrier:
                row = k * 2 * n_att + int(arg[k])
                path = chains[row] if math.isfinite(h) else None
                if path is not None and int(arg[k]) >= n_att:  # that chain ran j -> i
                    path = path.flip(0)
                self.records[(i, j)] = _Record(h, alpha, path)
            if math.isfinite(h):
                self.reached_lower[i if self.rank[i] > self.rank[j] else j] = True

    def export(self) -> PairRecords:
        keys = sorted(self.records)
        return PairRecords(
            pairs=np.array(keys, dtype=np.int64).reshape(-1, 2),
            barrier=np.array([self.records[k].barrier for k in keys], dtype=np.float64),
            alpha=np.array([self.records[k].alpha for k in keys], dtype=np.float64),
            paths=[self.records[k].path for k in keys],
        )


def _trial_rows(pairs: list[tuple[int, int]], attempts: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Starts and targets of the chains for ``pairs``: for every pair, ``attempts`` chains
    i -> j then ``attempts`` chains j -> i."""
    a = torch.tensor([i for i, _ in pairs], dtype=torch.int64).repeat_interleave(attempts)
    b = torch.tensor([j for _, j in pairs], dtype=torch.int64).repeat_interleave(attempts)
    src = torch.stack([a.reshape(-1, attempts), b.reshape(-1, attempts)], dim=1).reshape(-1)
    dst = torch.stack([b.reshape(-1, attempts), a.reshape(-1, attempts)], dim=1).reshape(-1)
    return src, dst


#: What a shared batch's chunks that ran have given one request: its trials' closed
#: barriers, their paths (None where a trial did not connect), their steps, and the
#: batched calls it would have made alone.
ChunksRun = tuple[torch.Tensor, list[torch.Tensor | None], torch.Tensor, int]


def _run_together(requests: Sequence[tuple[_Trials, Sequence[tuple[int, int]], float]],
                  detail: Callable[[str], None] | None = None,
                  on_sync: Callable[[Callable[[], tuple[int, list[ChunksRun | None], BatchProgress]]], None] | None = None,
                  resume_from: tuple[int, Sequence[ChunksRun | None], BatchProgress] | None = None) -> None:
    """Run the chains of several requests ``(trials, pairs, alpha)`` in shared batches and
    hand each its own rows.

    The requests share the minima and the settings but the pull and the step: levels of
    one ladder, each with its own generator. Adding chains to a batch costs far less than
    another batch (each step is one energy call whatever the rows), so the levels step
    together instead of one after another; each request's rows keep its generator's noise
    (:class:`~landscape.sampling.langevin.RowGroups`) and its own chunks of ``batch_size``,
    so its outcome is the one it would have alone (for energies computed row by row).
    ``detail`` receives a line on the batch under way at every sync point (trials still
    running, steps so far).

    ``on_sync`` is called at every sync point of the chains with a function returning
    where the run stands: the first trial row of the chunk under way, what the chunks
    before it gave each request (None for requests without pairs), and the chunk's
    :class:`BatchProgress`; ``resume_from`` continues from there (the requests' generators
    as they were then).
    """
    work = [(q, t, [(min(i, j), max(i, j)) for i, j in pairs], float(alpha))
            for q, (t, pairs, alpha) in enumerate(requests)]
    work = [w for w in work if w[2]]
    if not work:
        return
    energy, x = work[0][1].energy, work[0][1].x
    dev, size = x.device, work[0][1].config.batch_size
    rows = [_trial_rows(pairs, t.config.attempts) for _, t, pairs, _ in work]
    barriers: list[list[torch.Tensor]] = [[] for _ in work]
    chains: list[list[torch.Tensor | None]] = [[] for _ in work]
    steps: list[list[torch.Tensor]] = [[] for _ in work]
    calls = [0] * len(work)
    longest = max(r[0].numel() for r in rows)
    first, batch = 0, None
    if resume_from is not None:
        first, done, batch = resume_from
        _check_chunks(first, size, longest, done, [(q, r[0].numel()) for (q, *_), r in zip(work, rows)], len(requests))
        for k, (q, *_) in enumerate(work):
            if first:
                b, c, st, n = done[q]
                barriers[k].append(torch.as_tensor(b, dtype=torch.float64))
                chains[k].extend(c)
                steps[k].append(torch.as_tensor(st, dtype=torch.int64))
                calls[k] = int(n)

    def so_far() -> list[ChunksRun | None]:
        out: list[ChunksRun | None] = [None] * len(requests)
        for k, (q, *_) in enumerate(work):
            out[q] = (torch.cat(barriers[k]) if barriers[k] else torch.zeros(0, dtype=torch.float64), list(chains[k]),
                      torch.cat(steps[k]) if steps[k] else torch.zeros(0, dtype=torch.int64), calls[k])
        return out

    n_batches = -(-longest // size)
    for start in range(first, longest, size):
        part = [(k, src[start : start + size], dst[start : start + size]) for k, (src, dst) in enumerate(rows)
                if src.numel() > start]
        s = torch.cat([p[1] for p in part]).to(dev)
        t = torch.cat([p[2] for p in part]).to(dev)
        _, lead, _, alpha = work[part[0][0]]
        config = replace(lead.config, alpha=alpha)
        on_window = on_compile = None
        if detail is not None:
            head = f"batch {start // size + 1}/{n_batches}: " if n_batches > 1 else ""
            total, limit = s.numel(), config.max_steps

            def on_window(step: int, running: int) -> None:
                detail(f"{head}{running:,}/{total:,} trials running, step {step:,}/{limit:,}")

            def on_compile() -> None:
                detail(f"{head}compiling the steps (once: 10-60 s)")
        sync = None
        if on_sync is not None:
            def sync(get: Callable[[], BatchProgress], start: int = start) -> None:
                on_sync(lambda: (start, so_far(), get()))
        resume, batch = batch, None
        groups = None
        if len(part) == 1:
            trials = attraction_diffusion(energy, x[s], x[t], config, lead.generator, on_window=on_window,
                                          on_compile=on_compile, on_sync=sync, resume_from=resume)
        else:
            sizes = [p[1].numel() for p in part]
            groups = RowGroups(sizes, [work[k][1].generator for k, _, _ in part])
            per_row = [(work[k][3], work[k][1].config.eps, n) for (k, _, _), n in zip(part, sizes)]
            trials = attraction_diffusion(
                energy, x[s], x[t], config, groups, paths_for=max(sizes), on_window=on_window, on_compile=on_compile,
                alphas=torch.cat([torch.full((n,), a, dtype=torch.float64) for a, _, n in per_row]),
                steps=torch.cat([torch.full((n,), e, dtype=torch.float64) for _, e, n in per_row]),
                on_sync=sync, resume_from=resume)
        barrier = _closed(energy, trials, x[t]).cpu()
        chain = _chains(x[s], trials, x[t])
        step = trials.steps.cpu()
        lo = 0
        for g, (k, src, _) in enumerate(part):
            hi = lo + src.numel()
            barriers[k].append(barrier[lo:hi])
            chains[k].extend(chain[lo:hi])
            steps[k].append(step[lo:hi])
            # batched calls the group would have made alone: up to the sync where its last
            # trial left (every group's last one leaves at the batch's own end, or earlier)
            emptied = groups.emptied[g] if groups is not None else None
            calls[k] += trials.calls if emptied is None else emptied + 1
            lo = hi
    for k, (_, t, pairs, alpha) in enumerate(work):
        t.absorb(pairs, alpha, torch.cat(barriers[k]), chains[k], torch.cat(steps[k]), calls[k])


def _check_chunks(first: int, size: int, longest: int, done: Sequence[ChunksRun | None],
                  rows: list[tuple[int, int]], n_requests: int) -> None:
    """Refuse saved chunks (:func:`_run_together`'s ``resume_from``) that do not fit the
    requests ``rows`` ``(request, trial rows)``: they come from a file."""
    ok = 0 <= first < longest and first % size == 0 and len(done) == n_requests
    for q, n in rows:
        if not ok or not first:
            break
        entry = done[q]
        ran = min(first, n)
        ok = (entry is not None and len(entry) == 4 and tuple(entry[0].shape) == (ran,)
              and len(entry[1]) == ran and tuple(entry[2].shape) == (ran,) and int(entry[3]) >= 0)
    if not ok:
        raise LandscapeError("the saved attraction-diffusion chunks do not fit this batch")


def _closed(energy: Energy, trials: ADTrials, targets: torch.Tensor) -> torch.Tensor:
    """Each successful trial's barrier over its whole, continuous path to its target; +inf
    for the others. The chain's highest sampled point can lie below the path between two
    steps (a step over a ridge): the segments on each side of it count
    (:func:`landscape.mapping.paths.segment_max`). And the chain stops within ``delta`` of the
    target, not on it: the segment from there to the target is part of the path."""
    ok = trials.success
    out = trials.barrier.clone()
    if bool(ok.any()):
        with energy.frozen():
            for a, b in ((trials.peak_prev, trials.peak_x), (trials.peak_x, trials.peak_next),
                         (trials.end_x, targets)):
                out[ok] = torch.maximum(out[ok], segment_max(energy, a[ok], b[ok], images=8, iterations=20).to(out))
    return out


def _chains(starts: torch.Tensor, trials: ADTrials, targets: torch.Tensor) -> list[torch.Tensor | None]:
    """Each successful trial's path, start to target, on the CPU (None for the others)."""
    ok = trials.success.cpu().tolist()
    lengths = trials.path_len.cpu().tolist()
    rows = [p for p, good in enumerate(ok) if good]
    out: list[torch.Tensor | None] = [None] * len(ok)
    if not rows:
        return out
    # The successful trials' rows brought to the CPU at once (from a GPU, one copy each
    # instead of one per trial, every one a wait for the device).
    at = torch.tensor(rows, device=starts.device)
    longest = max(lengths[p] for p in rows)
    first, last, target = (t[at].detach().cpu() for t in (starts, trials.end_x, targets))
    middles = trials.path[at, :longest].detach().cpu() if trials.path is not None else None
    empty = first.new_zeros((0, *starts.shape[1:]))
    for j, p in enumerate(rows):
        middle = middles[j, : lengths[p]] if middles is not None else empty
        out[p] = torch.cat([first[j : j + 1], middle, last[j : j + 1], target[j : j + 1]])
    return out


def _nearest(flat: torch.Tensor, i: int, candidates: Sequence[int], k: int) -> list[int]:
    """The ``k`` candidates nearest to point ``i`` (Euclidean), nearest first."""
    if not candidates:
        return []
    idx = torch.tensor(list(candidates), dtype=torch.int64, device=flat.device)
    d = torch.cdist(flat[i : i + 1], flat[idx])[0]
    order = torch.argsort(d, stable=True)[:k]
    return [int(c) for c in idx[order].tolist()]


class _State:
    """The assignment in progress: basin of each minimum and the representatives."""

    def __init__(self, energy: Energy, x: torch.Tensor, energies: torch.Tensor, config: ADConfig,
                 generator: torch.Generator | None, tie: float = 0.0):
        n = x.shape[0]
        self.flat = x.reshape(n, -1).double()
        self.energies = energies
        self.key = energy_key(energies, tie)  # energies within the tie are one (minima.energy_order)
        self.config = config
        rank = [0] * n
        for pos, i in enumerate(energy_order(energies, tie).tolist()):
            rank[i] = pos
        self.trials = _Trials(energy, x, rank, config, generator)
        self.basin_of = [-1] * n
        self.reps: list[int] = []
        # Minima placed without trials: per minimum, the one its drainage ends at (:func:`_drain_ends`).
        self.drains: dict[int, int] = {}
        # Where :func:`_assign` stands (see :class:`LevelProgress`); ``resumed``: continue
        # inside that round, whose last batch has run.
        self.cursor: tuple[int, list[int], int] = (0, [], 0)
        self.resumed = False

    def snapshot(self) -> LevelProgress:
        t = self.trials
        return LevelProgress(
            basin_of=np.asarray(self.basin_of, dtype=np.int64), reps=np.asarray(self.reps, dtype=np.int64),
            cursor=(self.cursor[0], list(self.cursor[1]), self.cursor[2]),
            reached_lower=np.asarray(t.reached_lower, dtype=bool),
            counters=(t.n_chains, t.chain_steps, t.batches, t.failed_above),
            generator=None if t.generator is None else t.generator.get_state().numpy().copy(), records=t.export())

    def restore(self, saved: LevelProgress) -> None:
        """Continue from ``saved`` (checked against these minima first: it comes from a file)."""
        n = len(self.basin_of)
        basin_of = np.asarray(saved.basin_of, dtype=np.int64).reshape(-1)
        reps = np.asarray(saved.reps, dtype=np.int64).reshape(-1)
        start, founders, placed = saved.cursor
        pairs = np.asarray(saved.records.pairs, dtype=np.int64).reshape(-1, 2)
        ok = (basin_of.shape == (n,) and np.asarray(saved.reached_lower).shape == (n,)
              and 0 < reps.size <= n and ((reps >= 0) & (reps < n)).all()
              and ((basin_of >= -1) & (basin_of < reps.size)).all() and (basin_of[reps] == np.arange(reps.size)).all()
              and 0 <= int(start) <= n and 0 <= int(placed) and len(founders) <= reps.size
              and list(founders) == reps[reps.size - len(founders):].tolist()
              and ((pairs >= 0) & (pairs < n)).all() and len(saved.records.barrier) == pairs.shape[0]
              and len(saved.records.alpha) == pairs.shape[0] and len(saved.records.paths) == pairs.shape[0]
              and len(saved.counters) in (3, 4) and min(saved.counters) >= 0
              and (saved.generator is None) == (self.trials.generator is None))
        if not ok:
            raise LandscapeError("the saved attraction-diffusion progress does not fit these minima")
        t = self.trials
        if t.generator is not None:
            try:
                t.generator.set_state(torch.from_numpy(np.ascontiguousarray(saved.generator, dtype=np.uint8)))
            except (RuntimeError, ValueError, TypeError) as err:
                raise LandscapeError(f"the saved attraction-diffusion generator state is unusable ({err})") from None
        self.basin_of, self.reps = basin_of.tolist(), reps.tolist()
        self.cursor, self.resumed = (int(start), [int(f) for f in founders], int(placed)), True
        t.reached_lower = np.asarray(saved.reached_lower, dtype=bool).tolist()
        t.n_chains, t.chain_steps, t.batches, t.failed_above = (int(c) for c in (*saved.counters, 0)[:4])
        t.records = {(int(i), int(j)): _Record(float(h), float(a), path) for (i, j), h, a, path
                     in zip(pairs.tolist(), saved.records.barrier, saved.records.alpha, saved.records.paths)}

    def found(self, m: int) -> None:
        """``m`` founds a new basin."""
        self.basin_of[m] = len(self.reps)
        self.reps.append(m)

    def partition(self) -> Partition:
        """The assignment, basins numbered by the energy of their representative."""
        reps = np.asarray(self.reps, dtype=np.int64)
        e = self.energies.numpy()
        order = np.lexsort((np.arange(reps.size), self.key[reps]))
        new_of = np.empty(reps.size, dtype=np.int64)
        new_of[order] = np.arange(reps.size)
        t = self.trials
        return Partition(
            alpha=float(self.config.alpha),
            basin=new_of[np.asarray(self.basin_of, dtype=np.int64)],
            representative=reps[order],
            energy=e[reps[order]],
            attrs={"trials": t.n_chains, "chain_steps": t.chain_steps, "batches": t.batches,
                   "drain_placed": sum(self.basin_of[m] >= 0 for m in self.drains), "failed_above": t.failed_above},
        )


def _assign(state: _State, members_in_order: list[int],
            progress: Callable[[int], None] | None) -> Iterator[list[tuple[int, int]]]:
    """Assign ``members_in_order`` (lowest energy first) to the state's basins or found new
    ones. A generator: it yields the pairs whose chains it needs next and goes on once they
    have run (:func:`_drive` runs those of several levels together). A minimum in
    ``state.drains`` runs no trials: it goes where its drainage ends, and founds no basin."""
    config, trials, flat = state.config, state.trials, state.flat
    k_near = config.neighbours
    basin_of, reps, drains = state.basin_of, state.reps, state.drains
    first, founders, placed = state.cursor
    for round_start in range(first, len(members_in_order), config.round_size):
        members = members_in_order[round_start : round_start + config.round_size]
        resuming, state.resumed = state.resumed, False  # (inside this round, its last batch run)
        # founded in this round, in energy order (they joined reps in that order)
        new_founders, resolved = (list(founders), placed) if resuming else ([], 0)
        old_reps = reps[: len(reps) - len(new_founders)]
        old_near = {m: _nearest(flat, m, old_reps, k_near) for m in members if m not in drains}
        if not resuming:
            state.cursor = (round_start, [], 0)
            yield [(m, r) for m in old_near for r in old_near[m] if not trials.tested(m, r)]
        while resolved < len(members):
            # Resolve in energy order as far as every needed pair has been tested.
            before = resolved
            for m in members[resolved:]:
                if m in drains:  # (its drainage ends at a minimum taken before it: placed already)
                    basin_of[m] = basin_of[drains[m]]
                    resolved += 1
                    continue
                new_near = _nearest(flat, m, new_founders, k_near)
                if any(not trials.tested(m, f) for f in old_near[m] + new_near):
                    break
                options = [(trials.barrier(m, r), basin_of[r]) for r in old_near[m] + new_near]
                best = min(options, default=(math.inf, -1))
                if math.isfinite(best[0]):
                    basin_of[m] = best[1]
                else:
                    state.found(m)
                    new_founders.append(m)
                resolved += 1
            if progress is not None and resolved > before:
                progress(resolved - before)  # as minima are placed, not per round: a round can take minutes
            if resolved == len(members):
                break
            pending = members[resolved:]
            state.cursor = (round_start, list(new_founders), resolved)
            # Pairs with the representatives before the round that waited for a stronger
            # level's chains (:func:`_defer`) and are still to run here: those first.
            waited = [(m, r) for m in pending if m not in drains for r in old_near[m] if not trials.tested(m, r)]
            if waited:
                yield waited
                continue
            # Speculative batch: every pending minimum against its nearest possible
            # founders before it (known founders, and pending minima not yet connected).
            # A wrong guess costs trials, not correctness: the loop above resolves a
            # minimum only once its nearest actual founders have all been tested.
            wanted: dict[tuple[int, int], None] = {}  # ordered set
            for pos, m in enumerate(pending):
                if m in drains:
                    continue
                possible = new_founders + [q for q in pending[:pos] if q not in drains and not trials.reached_lower[q]]
                for f in _nearest(flat, m, possible, k_near):
                    if not trials.tested(m, f):
                        wanted[(min(m, f), max(m, f))] = None
            yield list(wanted)
    state.cursor = (len(members_in_order), [], 0)


def _drive(jobs: Sequence[tuple[_State, list[int]]], progress: Callable[[int], None] | None,
           detail: Callable[[str], None] | None, on_turn: Callable[[], None] | None = None,
           on_sync: Callable[[Callable[[], TurnProgress]], None] | None = None,
           resume_turn: TurnProgress | None = None) -> None:
    """Run the assignments ``(state, members_in_order)`` in lockstep: at each turn the
    chains every unfinished one needs run as one batch (:func:`_run_together`, which
    reports on it to ``detail``); ``on_turn`` is called after each, where every state's
    :meth:`_State.snapshot` is one to continue from, and ``on_sync`` inside each, at every
    sync point of its chains, with a function returning the :class:`TurnProgress`.
    ``resume_turn`` (the states restored from its levels) finishes that turn first."""
    states = [state for state, _ in jobs]
    assigning = [_assign(state, members, progress) for state, members in jobs]

    def turn(wanted: list[list[tuple[int, int]] | None], resume: tuple[int, Sequence[ChunksRun | None],
                                                                           BatchProgress] | None = None) -> None:
        sync = None
        if on_sync is not None:
            def sync(get: Callable[[], tuple[int, list[ChunksRun | None], BatchProgress]]) -> None:
                on_sync(lambda: TurnProgress([state.snapshot() for state in states], wanted, *get()))
        _run_together([(state.trials, pairs, state.config.alpha) for state, pairs in zip(states, wanted)
                       if pairs is not None], detail, sync, resume)
        if on_turn is not None:
            on_turn()

    if resume_turn is not None:  # the turn under way when it was saved; its levels go on from after it
        turn(resume_turn.pairs, (resume_turn.start, resume_turn.done, resume_turn.batch))
    # per level, the pairs it asks for next (None once it has finished)
    wants = [next(it, None) for it in assigning]
    while any(pairs is not None for pairs in wants):
        turn(_defer(states, wants))
        wants = [None if pairs is None else next(it, None) for it, pairs in zip(assigning, wants)]


def _defer(states: Sequence[_State], wants: Sequence[list[tuple[int, int]] | None]
           ) -> list[list[tuple[int, int]] | None]:
    """The pairs each level runs this turn: those it asks for (``wants``, None for a level
    that has finished), but those a level at a stronger pull asks for too where no level
    has tried them yet. Those wait a turn for the strongest one's chains: if none of them
    connects the pair, it counts as not connected at the weaker pulls, without trials
    (:meth:`_Trials.tested`; why that holds: :func:`assign_ladder`)."""
    strongest: dict[tuple[int, int], float] = {}
    for state, pairs in zip(states, wants):
        for i, j in pairs or ():
            key = (min(i, j), max(i, j))
            strongest[key] = max(strongest.get(key, -math.inf), state.config.alpha)

    def runs(state: _State, i: int, j: int) -> bool:
        key = (min(i, j), max(i, j))
        return strongest[key] <= state.config.alpha or any(key in s.trials.records for s in states)

    return [None if pairs is None else [(i, j) for i, j in pairs if runs(state, i, j)]
            for state, pairs in zip(states, wants)]


@dataclass
class TurnProgress:
    """A turn of :func:`assign_ladder` part-way, inside its shared batch of trials: what
    its ``on_sync`` hands out to save, and what its ``resume_from`` continues from.

    Attributes
    ----------
    levels : list of LevelProgress
        Every level, as at the turn's start but for its generator's state (where its
        chains' noise stands now).
    pairs : list of (list of (int, int) or None)
        Per level, the pairs of minima whose trials the turn runs (None: the level had
        finished).
    start : int
        The first trial row of the chunk of ``batch_size`` rows under way.
    done : list of ChunksRun
        What the chunks before it gave each level of the turn (those with pairs, in order).
    batch : BatchProgress
        The chunk under way.
    """

    levels: list[LevelProgress]
    pairs: list[list[tuple[int, int]] | None]
    start: int
    done: list[ChunksRun | None]
    batch: BatchProgress


def assign_ladder(
    energy: Energy,
    minima: Minima,
    configs: Sequence[ADConfig],
    generators: Sequence[torch.Generator | None] | None = None,
    progress: Callable[[int], None] | None = None,
    detail: Callable[[str], None] | None = None,
    tie: float = 0.0,
    on_turn: Callable[[Callable[[], list[LevelProgress]]], None] | None = None,
    resume_from: Sequence[LevelProgress] | TurnProgress | None = None,
    on_sync: Callable[[Callable[[], TurnProgress]], None] | None = None,
    drains_into: np.ndarray | None = None,
) -> list[tuple[Partition, PairRecords]]:
    """:func:`assign_basins` at several pulls at once (``configs`` differ in ``alpha``
    and ``eps`` only): the levels' trials share batches, and a ladder costs about as many
    batched energy calls as its slowest level instead of the sum of all.

    The levels share what failed: a pair of minima that no chain connects at a stronger
    pull is not connected at a weaker one (along any path towards its target the
    magnetized energy ``U/T + alpha ||x - x*||`` falls less with a weaker pull, so no
    barrier on the way is lower: :func:`nest_levels`), and a weaker level takes it so
    without trials (``attrs["failed_above"]`` counts the pairs a level's placing took so).
    A pair that several levels ask for in one turn, and none has tried, runs at the
    strongest of them first; the others run it a turn later where that one's chains
    connected it (:func:`_defer`). At the weak pulls of a landscape of many distinct
    states nearly every trial fails, each only after ``patience`` steps or more: those
    levels then cost little more than the strongest of them.

    Returns one ``(partition, records)`` per config, in order. ``generators`` (one per
    config) drive each level's chains: where no level takes a pair from another, each
    level's result is the one :func:`assign_basins` gives it with its generator (for
    energies computed row by row). ``progress`` counts minima assigned, summed over the
    levels; ``detail`` receives a line on the batch of trials under way at every sync
    point of its chains.
    Minima whose energies round to the same multiple of ``tie`` count as equally low
    (:func:`~landscape.mapping.minima.energy_order`): taken, and made representatives,
    by index, so that the order does not follow what rounding did to their energies.

    A long ladder can be saved part-way and continued: ``on_turn`` is called after every
    batch of trials with a function returning each level's :class:`LevelProgress` (a copy
    of its records: the caller decides how often it is worth taking), and ``resume_from``
    (one per config, taken at such a turn) continues from there to the result of the
    uninterrupted run. Inside a turn (a batch can run for minutes), ``on_sync`` is called
    at every sync point of its chains with a function returning the :class:`TurnProgress`,
    and ``resume_from`` continues from one of those too.

    ``drains_into`` (per minimum, the minimum it drains into with no barrier, -1 where
    none: :meth:`~landscape.mapping.tree.BarrierTree.minima_drain_into` of the barriers
    known before) places each minimum that drains where its drainage ends, at every level,
    without trials (``attrs["drain_placed"]`` counts them), where that end is taken before
    it. Such a minimum holds no barrier to any pull: the map places it so in the end
    (:func:`join_drained`), and its trials, and the basins it would found at weak pulls
    for others to try, are work spent on nothing (39 of the 57 minima of the demo's
    non-convergent digits map, 14 of the 32 of a 32x32 one: float32 quenches stop on flat
    ground).
    """
    n = len(minima)
    if n == 0:
        raise LandscapeError("no minima to group into basins")
    _same_but_pull_and_step(configs)
    energy.check_batch(minima.x)
    x = minima.x.detach().to(device=energy.device, dtype=energy.dtype)
    energies = minima.energy.double().cpu()
    order = energy_order(energies, tie).tolist()
    states = [_State(energy, x, energies, config, gen, tie)
              for config, gen in zip(configs, _one_each(generators, configs))]
    drains = _drain_ends(drains_into, states[0].trials.rank, 0)
    for state in states:
        state.drains = drains
        state.found(order[0])
    _ladder([(state, order[1:]) for state in states], 0, progress, detail, on_turn, resume_from, on_sync)
    return [(state.partition(), state.trials.export()) for state in states]


def _ladder(jobs: Sequence[tuple[_State, list[int]]], counted: int, progress: Callable[[int], None] | None,
            detail: Callable[[str], None] | None, on_turn: Callable[[Callable[[], list[LevelProgress]]], None] | None,
            resume_from: Sequence[LevelProgress] | TurnProgress | None,
            on_sync: Callable[[Callable[[], TurnProgress]], None] | None) -> None:
    """Run the levels' assignments ``(state, members in order)`` together (:func:`_drive`),
    each state as it starts unless ``resume_from`` (checked against them first) says
    where it stood; ``progress`` first gets the minima from index ``counted`` on that
    are placed already. ``on_turn`` and ``on_sync`` as for :func:`assign_ladder`."""
    states = [state for state, _ in jobs]
    n = len(states[0].basin_of)
    in_turn = resume_from if isinstance(resume_from, TurnProgress) else None
    levels = in_turn.levels if in_turn is not None else resume_from
    if levels is not None and len(levels) != len(states):
        raise LandscapeError(f"{len(states)} attraction-diffusion levels but progress saved for {len(levels)}")
    if in_turn is not None and not (
            len(in_turn.pairs) == len(states) and any(p is not None for p in in_turn.pairs)
            and all(0 <= i < n and 0 <= j < n for p in in_turn.pairs if p is not None for i, j in p)):
        raise LandscapeError("the saved attraction-diffusion turn does not fit these minima")
    for k, state in enumerate(states):
        state.trials.above = [s.trials for s in states if s.config.alpha > state.config.alpha]
        if levels is not None:
            state.restore(levels[k])
        if progress is not None:
            progress(sum(b >= 0 for b in state.basin_of[counted:]))
    turn = None if on_turn is None else (lambda: on_turn(lambda: [state.snapshot() for state in states]))
    _drive(jobs, progress, detail, turn, on_sync, in_turn)


def _one_each(generators: Sequence[torch.Generator | None] | None,
              configs: Sequence[ADConfig]) -> list[torch.Generator | None]:
    if generators is None:
        return [None] * len(configs)
    if len(generators) != len(configs):
        raise LandscapeError(f"{len(configs)} attraction-diffusion levels but {len(generators)} generators")
    return list(generators)


def _same_but_pull_and_step(configs: Sequence[ADConfig]) -> None:
    if not configs:
        raise LandscapeError("no attraction-diffusion levels to run")
    first = replace(configs[0], alpha=0.0, eps=1.0)
    if any(replace(c, alpha=0.0, eps=1.0) != first for c in configs[1:]):
        raise LandscapeError("levels run together must share every attraction-diffusion setting but alpha and eps")


def assign_basins(
    energy: Energy,
    minima: Minima,
    config: ADConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    detail: Callable[[str], None] | None = None,
) -> tuple[Partition, PairRecords]:
    """Group minima into basins by attraction-diffusion at magnetization ``config.alpha``.

    Minima are taken from the lowest up. Each is tried against its ``neighbours`` nearest
    basin representatives (``attempts`` chains in each direction; the lowest barrier of a
    successful chain counts) and joins the basin of the lowest successful one; with no
    success it founds a new basin and becomes its representative. Minima are assigned in
    rounds of ``round_size`` whose trials run as a few large batches; within a round a
    minimum is also tried against the founders before it, so the result is the one a
    one-by-one assignment would give.

    Parameters
    ----------
    energy : Energy
    minima : Minima
        From :func:`landscape.mapping.minima.find_minima` (any order is accepted).
    config : ADConfig
    generator : torch.Generator, optional
    progress : callable, optional
        Called with the number of minima just assigned, as they are placed.
    detail : callable, optional
        Called with a line on the batch of trials under way (trials still running, steps
        so far) every few steps: what a progress bar shows while a long batch runs.

    Returns
    -------
    partition : Partition
        Basins numbered by energy; ``attrs`` holds the cost (``trials``: chains run,
        ``chain_steps``: their Langevin steps, ``batches``: batched energy calls).
    records : PairRecords
        The best chain of every minima pair tried.

    Raises
    ------
    LandscapeError
        On an empty set of minima or a shape mismatch.
    NonFiniteEnergyError
        From the AD chains.

    Examples
    --------
    >>> e = Energy(lambda x: ((x**2 - 1) ** 2).sum(1), shape=(1,), dtype=torch.float64)
    >>> m = Minima(torch.tensor([[-1.0], [1.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64),
    ...            torch.ones(2, dtype=torch.int64), torch.zeros(2, dtype=torch.float64))
    >>> assign_basins(e, m, ADConfig(temperature=0.05, eps=0.05))[0].n_basins  # doctest: +SKIP
    2

    Cost: O(N * neighbours * attempts * 2) AD trials, each at most ``max_steps``
    energy-and-gradient evaluations, run ``batch_size`` at a time.
    """
    return assign_ladder(energy, minima, [config], [generator], progress, detail)[0]


def extend_basins(
    energy: Energy,
    minima: Minima,
    prior: Partition,
    config: ADConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
    detail: Callable[[str], None] | None = None,
) -> tuple[Partition, PairRecords, np.ndarray]:
    """Add minima to an existing basin assignment, keeping the assignment of the old ones.

    ``minima`` holds the ``n`` minima of ``prior`` first (in the same order), then the new
    ones. The new ones are assigned exactly as :func:`assign_basins` assigns minima, from
    the lowest up, against the nearest existing representatives and the basins founded
    among themselves. A new minimum lower than the representative of the basin it joins
    becomes that basin's representative.

    Parameters
    ----------
    energy : Energy
    minima : Minima
        The prior's minima, then the new ones.
    prior : Partition
        The existing assignment of the first ``n`` minima.
    config : ADConfig
        The settings the prior was made with (``alpha`` included).
    generator, progress, detail : as for :func:`assign_basins` (progress counts the new minima).

    Returns
    -------
    partition : Partition
        Over all minima, basins renumbered by energy (lowest first).
    records : PairRecords
        The chains of the new minima's trials.
    old_to_new : ndarray int64 [B]
        The new number of each of the prior's basins.

    Raises
    ------
    LandscapeError
        If ``minima`` does not start with as many minima as the prior has.

    Cost: as :func:`assign_basins` for the new minima only.
    """
    return extend_ladder(energy, minima, [prior], [config], [generator], progress, detail)[0]


def extend_ladder(
    energy: Energy,
    minima: Minima,
    priors: Sequence[Partition],
    configs: Sequence[ADConfig],
    generators: Sequence[torch.Generator | None] | None = None,
    progress: Callable[[int], None] | None = None,
    detail: Callable[[str], None] | None = None,
    tie: float = 0.0,
    on_turn: Callable[[Callable[[], list[LevelProgress]]], None] | None = None,
    resume_from: Sequence[LevelProgress] | TurnProgress | None = None,
    on_sync: Callable[[Callable[[], TurnProgress]], None] | None = None,
    drains_into: np.ndarray | None = None,
) -> list[tuple[Partition, PairRecords, np.ndarray]]:
    """:func:`extend_basins` for every level of a ladder at once (one prior and one config
    per level, the configs differing in ``alpha`` and ``eps`` only), the levels' trials in shared
    batches, each with its own generator (as :func:`assign_ladder`). ``progress`` counts new
    minima summed over levels; ``detail``, ``tie``, and saving part-way and continuing
    (``on_turn``, ``resume_from``, ``on_sync``) and ``drains_into`` (over all the minima:
    a new one is placed where it drains, into an old minimum or a lower new one) as for
    :func:`assign_ladder`."""
    if len(priors) != len(configs):
        raise LandscapeError(f"{len(priors)} levels but {len(configs)} attraction-diffusion configs")
    _same_but_pull_and_step(configs)
    n = len(minima)
    energy.check_batch(minima.x)
    x = minima.x.detach().to(device=energy.device, dtype=energy.dtype)
    energies = minima.energy.double().cpu()
    jobs = []
    for prior, config, gen in zip(priors, configs, _one_each(generators, configs)):
        n_old = int(prior.basin.shape[0])
        if n < n_old:
            raise LandscapeError(f"{n} minima cannot extend a basin assignment of {n_old}")
        state = _State(energy, x, energies, config, gen, tie)
        state.drains = _drain_ends(drains_into, state.trials.rank, n_old)
        state.basin_of[:n_old] = [int(b) for b in prior.basin.tolist()]
        state.reps = [int(r) for r in prior.representative.tolist()]
        jobs.append((state, sorted(range(n_old, n), key=lambda i: (float(state.key[i]), i))))
    _ladder(jobs, min(int(prior.basin.shape[0]) for prior in priors), progress, detail, on_turn, resume_from, on_sync)
    out = []
    for (state, _), prior in zip(jobs, priors):
        b_old = int(prior.representative.shape[0])
        # A basin's representative is its lowest minimum: a new minimum below it takes over.
        basin_of = np.asarray(state.basin_of, dtype=np.int64)
        for b, rep in enumerate(list(state.reps)):
            members = np.flatnonzero(basin_of == b)
            state.reps[b] = int(members[np.lexsort((members != rep, state.key[members]))[0]])
        partition = state.partition()
        old_to_new = partition.basin[np.asarray(state.reps[:b_old], dtype=np.int64)]
        partition.multiplier = prior.multiplier
        out.append((partition, state.trials.export(), old_to_new))
    return out


def _drain_ends(drains_into: np.ndarray | None, rank: list[int], placed: int) -> dict[int, int]:
    """Per minimum from index ``placed`` on that drains (``drains_into``, as for
    :func:`assign_ladder`), the minimum its drainage ends at, where that one is placed
    before it: one of the first ``placed`` (placed already), or one taken earlier (of a
    lower ``rank``, the minima's places in energy order: :class:`_State`'s)."""
    if drains_into is None:
        return {}
    target = np.asarray(drains_into, dtype=np.int64)
    if target.shape != (len(rank),):
        raise ValueError(f"drains_into has shape {target.shape}, the minima ({len(rank)},)")
    ends = drainage_ends(target)
    return {m: d for m, d in enumerate(ends.tolist()) if m >= placed and d != m and (d < placed or rank[d] < rank[m])}


def join_drained(part: Partition, drains_into: np.ndarray, energy: np.ndarray, tie: float = 0.0) -> Partition:
    """``part`` with every minimum that drains into a lower one with no barrier the
    energy's precision resolves (points a quench left on a plateau, a well's flat tail or
    a valley of equal minima) put in the basin of the minimum its drainage ends at.

    Such a point holds no barrier to any pull, yet attraction-diffusion places it where
    its chains happened to go: a weak pull's chains may not cross a flat stretch in their
    step budget and leave it a basin of its own, and near the pull that crosses a pass
    from some points of a flat valley and not from others, the valley's points part
    between two basins. Following the drainage places each the same way at every pull.

    Parameters
    ----------
    part : Partition
    drains_into : ndarray int64 [N]
        Per minimum, the minimum it drains into, -1 where none
        (:meth:`landscape.mapping.tree.BarrierTree.drains_into`, by minimum: followed from
        minimum to minimum it ends at one that does not drain).
    energy : ndarray float64 [N]
        The minima's energies, for a basin whose representative drained away: its lowest
        remaining minimum represents it, and the basins are numbered by their
        representatives' energies again (energies that round to the same multiple of
        ``tie`` by index, :func:`~landscape.mapping.minima.energy_order`).

    Returns
    -------
    Partition
        The basins left (every one that keeps a minimum) keep their representatives and
        their order (renumbered 0..), but where a representative drained away;
        ``attrs["drained"]`` counts the basins emptied (added to the count ``part`` had:
        a map's level, extended by new minima).
    """
    target = np.asarray(drains_into, dtype=np.int64)
    if target.shape != part.basin.shape:
        raise ValueError(f"drains_into has shape {target.shape}, the partition's basins {part.basin.shape}")
    moved, emptied = _placed(part, part.basin[drainage_ends(target)], energy, tie)
    return replace(moved, attrs={**part.attrs, "drained": _count(part, "drained") + emptied})


def nest_levels(levels: Sequence[Partition], energy: np.ndarray, tie: float = 0.0) -> list[Partition]:
    """``levels`` with every basin of a weaker pull kept whole at every stronger one: each
    minimum goes where its basin's representative (its lowest minimum) went at the stronger
    pull, the levels taken from the weakest up.

    A chain that reached a minimum under one pull reaches it under any stronger one: along
    a path that comes nearer its target, the magnetized energy ``U + alpha * T * |x - x*|``
    falls further with every increase of ``alpha``, so no barrier on the way grows. Yet
    each level's assignment is made on its own, greedily, against the representatives of
    the basins founded at that pull: a minimum joins, of those its chains reach, the one
    over the lowest barrier, so two minima of one basin at a weak pull can join different
    basins at a stronger one, where several lie within reach. Taking each weaker basin
    whole to where its representative went keeps the stronger pull's assignment of the
    representatives (a stronger level has as many basins as its own assignment left the
    weaker representatives in, no more) and makes the levels one hierarchy.

    Parameters
    ----------
    levels : sequence of Partition
        The same minima at several pulls, in any order (nested in order of ``alpha``).
    energy : ndarray float64 [N]
        The minima's energies (with ``tie`` as for :func:`join_drained`).

    Returns
    -------
    list of Partition
        In the order given; ``attrs["nested"]`` counts the minima each level moved (added
        to the count a level had: a map's level, extended by new minima).
    """
    out = list(levels)
    below: Partition | None = None  # the last weaker pull's level, nested
    for k in sorted(range(len(out)), key=lambda k: out[k].alpha):
        part = out[k]
        moves = 0
        if below is not None:
            if below.basin.shape != part.basin.shape:
                raise ValueError(f"levels of {below.basin.size} and {part.basin.size} minima")
            wanted = part.basin[below.representative[below.basin]]
            moves = int((wanted != part.basin).sum())
            if moves:
                part, _ = _placed(part, wanted, energy, tie)
        out[k] = below = replace(part, attrs={**out[k].attrs, "nested": _count(out[k], "nested") + moves})
    return out


def _count(part: Partition, key: str) -> int:
    """A count a level's attrs keep (0 where absent or not a count: a hand-made file)."""
    value = part.attrs.get(key, 0)
    return int(value) if isinstance(value, (int, np.integer)) and value >= 0 else 0


def _placed(part: Partition, basin: np.ndarray, energy: np.ndarray, tie: float) -> tuple[Partition, int]:
    """``part`` with its minima in the basins ``basin`` (its own numbers, int64 [N]), and
    how many of its basins that empties: the rest keep their representatives and their
    order (renumbered 0..), but a basin whose representative left, which its lowest
    remaining minimum represents, the basins then numbered by their representatives'
    energies again (:func:`~landscape.mapping.minima.energy_order` with ``tie``)."""
    kept = np.flatnonzero(np.bincount(basin, minlength=part.n_basins) > 0)
    renumber = np.full(part.n_basins, -1, dtype=np.int64)
    renumber[kept] = np.arange(kept.size)
    reps, energies = part.representative[kept].copy(), part.energy[kept].copy()
    gone = np.flatnonzero(renumber[basin[reps]] != np.arange(kept.size))  # (representatives that left)
    if gone.size:
        energy = np.asarray(energy, dtype=np.float64)
        key = energy_key(energy, tie)
        for b in gone:
            members = np.flatnonzero(basin == kept[b])
            reps[b] = members[np.lexsort((members, key[members]))[0]]
            energies[b] = energy[reps[b]]
        order = np.lexsort((reps, key[reps]))
        renumber[kept[order]] = np.arange(kept.size)
        reps, energies = reps[order], energies[order]
    return replace(part, basin=renumber[basin], representative=reps, energy=energies), int(part.n_basins - kept.size)
