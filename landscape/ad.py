"""Basins by attraction-diffusion (AD) on the magnetized landscape, and barriers between them.

Two minima ``a`` and ``b`` share a basin at magnetization ``alpha`` if a Langevin chain on
the magnetized energy

    E_b(x) = U(x) / T + alpha * ||x - b||

started at ``a`` comes within ``delta`` of ``b`` in at most ``max_steps`` steps (the ADELM
procedure of Hill, Nijkamp and Zhu 2019, "Building a Telescope to Look Into High-Dimensional
Image Spaces", and its public reference code enijkamp/elm_map). The pull ``alpha`` sets the
resolution: a weak pull only carries the chain over barriers the temperature can cross; a
strong one drags it over anything. The highest raw energy ``U`` along a successful path is
an upper bound on the lowest saddle between the two minima: a barrier estimate.

The chain is the library's one Langevin kernel (:func:`landscape.langevin.langevin_step`)
applied to ``E_b`` with ``tau = 1``: the temperature lives in the ``1/T``. In ``U``'s own
terms a step is ``x - eps^2/(2T) dU/dx - eps^2/2 alpha u + eps z`` (``u`` the unit vector
towards ``b``), so the descent is stable while ``eps^2/(2T) * curvature(U) < 2``, the pull
moves ``eps^2 alpha / 2`` per step, and the noise ``eps`` per coordinate.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import NamedTuple

import torch

from landscape.energy import Energy, ValueAndGrad
from landscape.errors import LandscapeError, NonFiniteEnergyError
from landscape.langevin import ChainState, init, langevin_step
from landscape.minima import Minima


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
        Success radius around the target.
    attempts : int
        Chains per (start, target) pair and direction; the best one counts.
    neighbours : int
        Each minimum is tried against this many nearest basin representatives; each
        representative's barriers are estimated against this many nearest others.
    barrier_factor : float
        When estimating barriers between basins, a pair that no chain connects at
        ``alpha`` is retried at ``alpha * barrier_factor**k``, ``k = 1..barrier_rounds``,
        stopping at its first success (the weakest pull that connects gives the path that
        follows the landscape most closely: the lowest estimate).
    barrier_rounds : int
        Escalation steps at most (0: no escalation). No escalation happens when ``alpha`` is 0.
    round_size : int
        Minima assigned per round of batched trials.
    batch_size : int
        AD chains per batched call at most (bounds memory; large images want fewer).
    average : int
        Judge arrival (and progress, for ``patience``) by an exponential moving average
        of the chain's positions over about this many steps instead of the position
        itself (0: the position, as in ADELM). In many dimensions a chain at temperature
        ``T`` sitting in the target's well still fluctuates far more than ``delta`` around
        it; its running mean does not. The barrier is still the highest ``U`` the chain
        itself visited.
    """

    temperature: float = 1.0
    alpha: float = 1.0
    eps: float = 0.1
    max_steps: int = 5000
    patience: int = 200
    delta: float = 0.35
    attempts: int = 3
    neighbours: int = 10
    barrier_factor: float = 2.0
    barrier_rounds: int = 6
    round_size: int = 256
    batch_size: int = 4096
    average: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.temperature > 0.0 and math.isfinite(self.temperature), "temperature must be > 0"),
            (self.alpha >= 0.0 and math.isfinite(self.alpha), "alpha must be >= 0"),
            (self.eps > 0.0 and math.isfinite(self.eps), "eps must be > 0"),
            (self.max_steps >= 0, "max_steps must be >= 0"),
            (self.patience >= 1, "patience must be >= 1"),
            (self.delta > 0.0, "delta must be > 0"),
            (self.attempts >= 1, "attempts must be >= 1"),
            (self.neighbours >= 1, "neighbours must be >= 1"),
            (self.barrier_factor > 1.0, "barrier_factor must be > 1"),
            (self.barrier_rounds >= 0, "barrier_rounds must be >= 0"),
            (self.round_size >= 1, "round_size must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (self.average >= 0, "average must be >= 0"),
        ]
        for ok, message in checks:
            if not ok:
                raise LandscapeError(f"attraction-diffusion config: {message}")


# Finished trials are dropped from the batch (and non-finite energies reported) every
# this many steps: a host sync per step would stall a GPU.
_SYNC_EVERY = 16


class ADTrials(NamedTuple):
    """Outcome of a batch of AD trials, one row per trial.

    success : bool [P], came within ``delta`` of the target.
    barrier : float64 [P], highest raw energy ``U`` on the path (start included) where
        successful; ``+inf`` where not.
    steps : int64 [P], steps run.
    final_distance : float64 [P], distance to the target when the trial stopped.
    peak_x : [P, *shape], the point of the path where ``U`` was highest (a path method
        can start from it), also for failed trials.
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
    calls: int = 0


class _Magnetized:
    """``x -> (U/T + alpha ||x - b||, its gradient)`` for per-row targets ``b``.

    A value-and-grad function like any other, so the Langevin kernel runs on it
    unchanged. It also keeps the raw ``U`` and the distance of its last evaluation:
    the trial bookkeeping needs both, and recovering ``U`` from the magnetized value
    would lose digits to cancellation.
    """

    def __init__(self, value_and_grad: ValueAndGrad, targets: torch.Tensor, temperature: float, alpha: float):
        self.value_and_grad = value_and_grad
        self.targets = targets
        self.inv_t = 1.0 / temperature
        self.alpha = alpha
        self.raw: torch.Tensor | None = None
        self.distance: torch.Tensor | None = None

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, g = self.value_and_grad(x)
        diff = x - self.targets
        d = torch.linalg.vector_norm(diff.reshape(x.shape[0], -1), dim=1)
        # ||x - b|| has no gradient at x = b; the zero vector there (a subgradient) keeps
        # the chain finite, and a chain that close has succeeded anyway.
        scale = self.alpha / d.clamp_min(torch.finfo(d.dtype).tiny)
        grad = g * self.inv_t + diff * scale.reshape((-1,) + (1,) * (x.dim() - 1))
        self.raw, self.distance = u, d
        return u * self.inv_t + self.alpha * d, grad


def attraction_diffusion(
    energy: Energy,
    starts: torch.Tensor,
    targets: torch.Tensor,
    config: ADConfig,
    generator: torch.Generator | None = None,
) -> ADTrials:
    """Run AD trials ``starts[p] -> targets[p]`` as one batch.

    Each trial is a Langevin chain on ``U/T + alpha ||x - targets[p]||`` (``tau = 1``).
    Per trial it tracks the highest raw energy on the path and where it occurred, and the
    best distance to the target so far. A trial stops when it comes within ``delta`` of
    its target (success), when ``patience`` steps pass without a new best distance, or
    after ``max_steps``. Finished trials leave the batch (checked every few steps), so
    the cost follows the slowest trials, not ``P * max_steps``. Chains stay in the
    energy's data range when it has one (the map covers that box).

    Parameters
    ----------
    energy : Energy
        Its module (if any) is frozen for the duration.
    starts, targets : Tensor [P, *shape]
        Any mix of different starts and targets.
    config : ADConfig
        ``temperature``, ``alpha``, ``eps``, ``max_steps``, ``patience`` and ``delta`` are used.
    generator : torch.Generator, optional
        Source of the chains' noise.

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
    still running trials.
    """
    energy.check_batch(starts)
    energy.check_batch(targets)
    if starts.shape[0] != targets.shape[0]:
        raise LandscapeError(f"{starts.shape[0]} AD starts but {targets.shape[0]} targets")
    p = starts.shape[0]
    device = starts.device
    success = torch.zeros(p, dtype=torch.bool, device=device)
    barrier = torch.full((p,), math.inf, dtype=torch.float64, device=device)
    steps_run = torch.zeros(p, dtype=torch.int64, device=device)
    final = torch.zeros(p, dtype=torch.float64, device=device)
    peak_out = starts.detach().clone()
    if p == 0:
        return ADTrials(success, barrier, steps_run, final, peak_out)
    view = (-1,) + (1,) * (starts.dim() - 1)
    with energy.frozen():
        mag = _Magnetized(
            energy.value_and_grad_fn(), targets.detach().to(starts.dtype).clone(), config.temperature, config.alpha
        )
        state = init(starts.detach().clone(), mag)
        raw, dist = mag.raw.double(), mag.distance.double()
        _check_finite(raw, state.grad, 0)
        smooth = 1.0 / config.average if config.average > 0 else None
        mean_x = state.x.clone() if smooth is not None else None
        rows = torch.arange(p, device=device)
        peak_u = raw.clone()
        peak_x = state.x.clone()
        best = dist.clone()
        stale = torch.zeros(p, dtype=torch.int64, device=device)
        # Trials that finished keep stepping (their results are frozen) until the next
        # compaction: checking every step would stall a GPU on a host sync per step.
        finished = torch.zeros(p, dtype=torch.bool, device=device)
        finite = torch.ones((), dtype=torch.bool, device=device)
        step = 0
        while True:
            reached = (dist < config.delta) & ~finished
            now = reached | ((stale >= config.patience) & ~finished)
            if step >= config.max_steps:
                now = ~finished
            # Record the trials that finish at this step (masked writes: no host sync).
            success[rows] = success[rows] | reached
            barrier[rows] = torch.where(reached, peak_u, barrier[rows])
            steps_run[rows] = torch.where(now, step, steps_run[rows])
            final[rows] = torch.where(now, dist, final[rows])
            peak_out[rows] = torch.where(now.reshape(view), peak_x, peak_out[rows])
            finished = finished | now
            if step % _SYNC_EVERY == 0 or step >= config.max_steps:
                if not bool(finite):
                    _check_finite(raw, state.grad, step)
                keep = ~finished
                if not bool(keep.any()):
                    break
                if not bool(keep.all()):
                    rows, peak_u, peak_x, best, stale = rows[keep], peak_u[keep], peak_x[keep], best[keep], stale[keep]
                    state = ChainState(state.x[keep], state.energy[keep], state.grad[keep])
                    mag.targets = mag.targets[keep]
                    dist, finished = dist[keep], finished[keep]
                    if mean_x is not None:
                        mean_x = mean_x[keep]
            state, _ = langevin_step(state, mag, config.eps, 1.0, generator, box=energy.data_range)
            step += 1
            raw, dist = mag.raw.double(), mag.distance.double()
            finite = finite & torch.isfinite(raw).all() & torch.isfinite(state.grad).all()
            if mean_x is not None:
                mean_x += smooth * (state.x - mean_x)
                dist = torch.linalg.vector_norm((mean_x - mag.targets).reshape(mean_x.shape[0], -1), dim=1).double()
            live = ~finished
            higher = (raw > peak_u) & live
            peak_u = torch.where(higher, raw, peak_u)
            peak_x = torch.where(higher.reshape(view), state.x, peak_x)
            improved = (dist < best) & live
            best = torch.where(improved, dist, best)
            stale = torch.where(improved, 0, stale + 1)
    return ADTrials(success, barrier, steps_run, final, peak_out, calls=step + 1)


def _check_finite(raw: torch.Tensor, grad: torch.Tensor, step: int) -> None:
    ok = torch.isfinite(raw) & torch.isfinite(grad.reshape(grad.shape[0], -1)).all(1)
    if not bool(ok.all()):
        where = "at their start" if step == 0 else f"at step {step}"
        raise NonFiniteEnergyError(
            f"{int((~ok).sum())} of {ok.numel()} attraction-diffusion chains reached a non-finite "
            f"energy or gradient {where}; try a smaller eps (stable while eps^2/(2T) * curvature < 2)"
        )


@dataclass
class Basins:
    """Basins of attraction at one magnetization, and barrier estimates between them.

    Attributes
    ----------
    basin : LongTensor [N]
        Basin of each minimum. Basins are numbered by the energy of their representative,
        lowest first (basin 0 holds the global minimum found).
    representative : LongTensor [B]
        Index into the minima of each basin's lowest minimum.
    energy : Tensor float64 [B]
        Energy of each representative.
    join_barrier : Tensor float64 [N]
        Per minimum, the barrier estimate of the trial by which it joined its basin (the
        highest ``U`` on the best path between it and the representative); a
        representative's own energy for representatives.
    pairs : LongTensor [E, 2]
        Basin pairs tested, ``i < j``.
    barrier : Tensor float64 [E]
        Best (lowest) barrier estimate found for the pair: the highest ``U`` along a
        connecting path between the two representatives; ``+inf`` where no chain connected.
    pair_alpha : Tensor float64 [E]
        Magnetization at which that best estimate was found (NaN where none).
    peak_x : Tensor [E, *shape]
        Where that best path peaked (NaN where none).
    alpha : float
        The magnetization of the assignment.
    trials : int
        Cost: AD chains run, one per (start, target) chain, each attempt and each
        direction counted (assignment and barrier estimation, escalated pulls included).
    chain_steps : int
        Cost: Langevin steps summed over those chains (``sum`` of their ``steps``).
    batches : int
        Cost: batched energy-and-gradient calls (forward plus input-gradient passes) the
        chains made: per call of :func:`attraction_diffusion`, one at the start plus one
        per step until its last chain left (:attr:`ADTrials.calls`). With
        ``batch_size = 1`` it is at least ``trials + chain_steps``; batching makes it
        much smaller.

    All tensors are on the CPU (they are small and go to files and reports).
    """

    basin: torch.Tensor
    representative: torch.Tensor
    energy: torch.Tensor
    join_barrier: torch.Tensor
    pairs: torch.Tensor
    barrier: torch.Tensor
    pair_alpha: torch.Tensor
    peak_x: torch.Tensor
    alpha: float
    trials: int = 0
    chain_steps: int = 0
    batches: int = 0

    @property
    def n_basins(self) -> int:
        return int(self.representative.shape[0])


class _PairRecord(NamedTuple):
    barrier: float  # +inf: tested, never connected
    peak: torch.Tensor | None
    alpha: float


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
        self.records: dict[tuple[int, int], _PairRecord] = {}
        # Per minimum: some chain connected it with a lower minimum (so it will likely
        # join a basin rather than found one).
        self.reached_lower = [False] * x.shape[0]
        # Cost counters (see Basins): chains run, their Langevin steps, batched calls.
        self.n_chains = 0
        self.chain_steps = 0
        self.batches = 0

    def tested(self, i: int, j: int) -> bool:
        return (min(i, j), max(i, j)) in self.records

    def barrier(self, i: int, j: int) -> float:
        return self.records[(min(i, j), max(i, j))].barrier

    def run(self, pairs: Sequence[tuple[int, int]], alpha: float) -> list[float]:
        """Test each pair at magnetization ``alpha``; return its best barrier (+inf: none)."""
        pairs = [(min(i, j), max(i, j)) for i, j in pairs]
        if not pairs:
            return []
        config = replace(self.config, alpha=alpha)
        n_att = config.attempts
        a = torch.tensor([i for i, _ in pairs], dtype=torch.int64).repeat_interleave(n_att)
        b = torch.tensor([j for _, j in pairs], dtype=torch.int64).repeat_interleave(n_att)
        # Rows: for every pair, `attempts` chains i -> j then `attempts` chains j -> i.
        src = torch.stack([a.reshape(-1, n_att), b.reshape(-1, n_att)], dim=1).reshape(-1)
        dst = torch.stack([b.reshape(-1, n_att), a.reshape(-1, n_att)], dim=1).reshape(-1)
        barrier_parts, peak_parts = [], []
        for start in range(0, src.numel(), config.batch_size):
            s, t = src[start : start + config.batch_size], dst[start : start + config.batch_size]
            dev = self.x.device
            trials = attraction_diffusion(self.energy, self.x[s.to(dev)], self.x[t.to(dev)], config, self.generator)
            barrier_parts.append(trials.barrier.cpu())
            peak_parts.append(trials.peak_x.cpu())
            steps = trials.steps.cpu()
            self.n_chains += int(steps.numel())
            self.chain_steps += int(steps.sum())
            self.batches += trials.calls
        per_pair = torch.cat(barrier_parts).reshape(len(pairs), 2 * n_att)
        peaks = torch.cat(peak_parts).reshape((len(pairs), 2 * n_att) + tuple(self.x.shape[1:]))
        best, arg = per_pair.min(dim=1)
        out = []
        for k, (i, j) in enumerate(pairs):
            h = float(best[k])
            old = self.records.get((i, j))
            if old is None or h < old.barrier:
                peak = peaks[k, int(arg[k])].clone() if math.isfinite(h) else None
                self.records[(i, j)] = _PairRecord(h, peak, alpha)
            if math.isfinite(h):
                self.reached_lower[i if self.rank[i] > self.rank[j] else j] = True
            out.append(h)
        return out


def _nearest(flat: torch.Tensor, i: int, candidates: Sequence[int], k: int) -> list[int]:
    """The ``k`` candidates nearest to point ``i`` (Euclidean), nearest first."""
    if not candidates:
        return []
    idx = torch.tensor(list(candidates), dtype=torch.int64, device=flat.device)
    d = torch.cdist(flat[i : i + 1], flat[idx])[0]
    order = torch.argsort(d, stable=True)[:k]
    return [int(c) for c in idx[order].tolist()]


def assign_basins(
    energy: Energy,
    minima: Minima,
    config: ADConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> Basins:
    """Group minima into basins by attraction-diffusion, then estimate barriers between basins.

    **Assignment.** Minima are visited from the lowest energy up; the first founds basin 0.
    Each next minimum ``m`` is tried against the representatives (lowest minima) of its
    ``neighbours`` nearest basins, ``attempts`` chains per direction (``m -> rep`` and
    ``rep -> m``). It joins the basin with the lowest successful barrier, else founds a new
    basin. For batching, minima are taken ``round_size`` at a time: all of a round are
    tried at once against the representatives existing before it; then, in energy order,
    each is also tried against its ``neighbours`` nearest basins founded earlier in the
    same round. Which of those become founders is known only in order, so further batched
    calls guess: they test each pending minimum against the founders known so far and the
    earlier pending minima that no chain has yet connected to a lower one (the likely
    founders); a minimum is resolved only once its nearest actual founders have all been
    tested. The result is that of one-at-a-time processing in which each minimum
    considers its ``neighbours`` nearest basins founded before its round plus its
    ``neighbours`` nearest founded within it (with ``round_size = 1``, exactly the
    sequential procedure).

    **Barriers.** Every tested pair of minima in different basins gives an estimate for
    their basins: the highest energy on the path representative -> minimum -> other
    minimum -> representative (each minimum's own ``join_barrier`` included), so every
    estimate is a true path between the representatives. Then each representative is
    tested against its ``neighbours`` nearest other representatives; a pair no chain
    connects at ``alpha`` (as happens for separate basins) is retried with the pull
    multiplied by ``barrier_factor`` up to ``barrier_rounds`` times. A pair's barrier is
    the lowest estimate found. Distant basins need no direct estimate: the tree connects
    them through chains of neighbours (minimax), which avoids the large overestimates of
    direct trials across high ground.

    Parameters
    ----------
    energy : Energy
    minima : Minima
        From :func:`landscape.minima.find_minima` (any order is accepted).
    config : ADConfig
    generator : torch.Generator, optional
    progress : callable, optional
        Called with the number of minima just assigned, once per round.

    Returns
    -------
    Basins

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
    >>> assign_basins(e, m, ADConfig(temperature=0.05, eps=0.05)).n_basins  # doctest: +SKIP
    2

    Cost: O(N * neighbours * attempts * 2) AD trials for the assignment plus
    O(B * neighbours * attempts * 2 * (1 + barrier_rounds)) for the barriers, each at most
    ``max_steps`` energy-and-gradient evaluations, run ``batch_size`` at a time.
    """
    n = len(minima)
    if n == 0:
        raise LandscapeError("no minima to group into basins")
    energy.check_batch(minima.x)
    x = minima.x.detach().to(device=energy.device, dtype=energy.dtype)
    energies = minima.energy.double().cpu()
    order = torch.argsort(energies, stable=True).tolist()
    state = _State(energy, x, energies, config, generator)
    state.found(order[0])
    if progress is not None:
        progress(1)
    _assign(state, order[1:], progress)
    _rep_barriers(state)
    return _collect(x, energies, state.basin_of, state.reps, state.join, state.join_peak, state.trials, config.alpha)


class _State:
    """The assignment in progress: basin of each minimum, representatives, join barriers."""

    def __init__(self, energy: Energy, x: torch.Tensor, energies: torch.Tensor, config: ADConfig,
                 generator: torch.Generator | None):
        n = x.shape[0]
        self.x = x
        self.flat = x.reshape(n, -1).double()
        self.energies = energies
        self.config = config
        rank = [0] * n
        for pos, i in enumerate(torch.argsort(energies, stable=True).tolist()):
            rank[i] = pos
        self.trials = _Trials(energy, x, rank, config, generator)
        self.basin_of = [-1] * n
        self.reps: list[int] = []
        self.join = [math.nan] * n
        self.join_peak: list[torch.Tensor | None] = [None] * n
        self.settled: set[tuple[int, int]] = set()  # pairs whose pull was escalated already

    def found(self, m: int) -> None:
        """``m`` founds a new basin."""
        self.basin_of[m] = len(self.reps)
        self.reps.append(m)
        self.join[m] = float(self.energies[m])
        self.join_peak[m] = self.x[m].cpu()


def _assign(state: _State, members_in_order: list[int], progress: Callable[[int], None] | None) -> None:
    """Assign ``members_in_order`` (lowest energy first) to the state's basins or found new ones."""
    config, trials, flat = state.config, state.trials, state.flat
    k_near = config.neighbours
    basin_of, reps, join, join_peak = state.basin_of, state.reps, state.join, state.join_peak
    for round_start in range(0, len(members_in_order), config.round_size):
        members = members_in_order[round_start : round_start + config.round_size]
        old_reps = list(reps)
        old_near = {m: _nearest(flat, m, old_reps, k_near) for m in members}
        trials.run([(m, r) for m in members for r in old_near[m] if not trials.tested(m, r)], config.alpha)
        new_founders: list[int] = []  # founded in this round, in energy order
        resolved = 0
        while resolved < len(members):
            # Resolve in energy order as far as every needed pair has been tested.
            for m in members[resolved:]:
                new_near = _nearest(flat, m, new_founders, k_near)
                if any(not trials.tested(m, f) for f in new_near):
                    break
                options = [(trials.barrier(m, r), basin_of[r], r) for r in old_near[m] + new_near]
                best = min(options, default=(math.inf, -1, -1))
                if math.isfinite(best[0]):
                    basin_of[m] = best[1]
                    join[m] = best[0]
                    join_peak[m] = trials.records[(min(m, best[2]), max(m, best[2]))].peak
                else:
                    state.found(m)
                    new_founders.append(m)
                resolved += 1
            if resolved == len(members):
                break
            # Speculative batch: every pending minimum against its nearest possible
            # founders before it (known founders, and pending minima not yet connected).
            # A wrong guess costs trials, not correctness: the loop above resolves a
            # minimum only once its nearest actual founders have all been tested.
            pending = members[resolved:]
            wanted: dict[tuple[int, int], None] = {}  # ordered set
            for pos, m in enumerate(pending):
                possible = new_founders + [q for q in pending[:pos] if not trials.reached_lower[q]]
                for f in _nearest(flat, m, possible, k_near):
                    if not trials.tested(m, f):
                        wanted[(min(m, f), max(m, f))] = None
            trials.run(list(wanted), config.alpha)
        if progress is not None:
            progress(len(members))


def _rep_barriers(state: _State) -> None:
    """Barriers between representatives: nearest neighbours, pull escalated where needed."""
    config, trials, reps = state.config, state.trials, state.reps
    rep_pairs: set[tuple[int, int]] = set()
    for r in reps:
        for s in _nearest(state.flat, r, [q for q in reps if q != r], config.neighbours):
            rep_pairs.add((min(r, s), max(r, s)))
    todo = sorted(p for p in rep_pairs if not trials.tested(*p))
    retry = sorted(
        p for p in rep_pairs if trials.tested(*p) and not math.isfinite(trials.barrier(*p)) and p not in state.settled
    )
    trials.run(todo, config.alpha)
    retry += [p for p in todo if not math.isfinite(trials.barrier(*p))]
    if config.alpha > 0.0:
        alpha = config.alpha
        for _ in range(config.barrier_rounds):
            if not retry:
                break
            alpha *= config.barrier_factor
            trials.run(retry, alpha)
            retry = [p for p in retry if not math.isfinite(trials.barrier(*p))]


def extend_basins(
    energy: Energy,
    minima: Minima,
    prior: Basins,
    config: ADConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[Basins, torch.Tensor]:
    """Add minima to an existing basin assignment, keeping the assignment of the old ones.

    ``minima`` holds the ``n`` minima of ``prior`` first (in the same order), then the new
    ones. The new ones are assigned exactly as :func:`assign_basins` assigns minima, from
    the lowest up, against the nearest existing representatives and the basins founded
    among themselves. A new minimum lower than the representative of the basin it joins
    becomes that basin's representative; the estimates of that basin's pairs are then
    raised to the barrier of the trial that joined it (the path to the old representative
    continues from there, so every estimate stays a true path between representatives).
    Barriers between representatives are then estimated as in :func:`assign_basins` for
    the pairs not estimated before (``prior``'s pairs are kept as they are: their pull was
    escalated already).

    Parameters
    ----------
    energy : Energy
    minima : Minima
        The prior's minima, then the new ones.
    prior : Basins
        The existing assignment of the first ``n`` minima (its ``join_barrier`` may be NaN
        for minima other than representatives: only representatives' are needed).
    config : ADConfig
        The settings the prior was made with (``alpha`` included).
    generator, progress : as for :func:`assign_basins` (progress counts the new minima).

    Returns
    -------
    basins : Basins
        Over all minima, basins renumbered by energy (lowest first).
    old_to_new : LongTensor [B]
        The new number of each of the prior's basins.

    Raises
    ------
    LandscapeError
        If ``minima`` does not start with as many minima as the prior has.

    Cost: as :func:`assign_basins` for the new minima only, plus the barrier trials of
    the representatives' pairs not estimated before.
    """
    n_old = int(prior.basin.shape[0])
    n = len(minima)
    if n < n_old:
        raise LandscapeError(f"{n} minima cannot extend a basin assignment of {n_old}")
    energy.check_batch(minima.x)
    x = minima.x.detach().to(device=energy.device, dtype=energy.dtype)
    energies = minima.energy.double().cpu()
    state = _State(energy, x, energies, config, generator)
    state.basin_of[:n_old] = [int(b) for b in prior.basin.tolist()]
    state.reps = [int(r) for r in prior.representative.tolist()]
    for r in state.reps:
        state.join[r] = float(energies[r])
        state.join_peak[r] = x[r].cpu()
    for e, (bi, bj) in enumerate(prior.pairs.tolist()):
        ri, rj = state.reps[bi], state.reps[bj]
        h = float(prior.barrier[e])
        peak = prior.peak_x[e].cpu() if math.isfinite(h) and bool(torch.isfinite(prior.peak_x[e]).all()) else None
        key = (min(ri, rj), max(ri, rj))
        state.trials.records[key] = _PairRecord(h, peak, float(prior.pair_alpha[e]))
        state.settled.add(key)
    new = sorted(range(n_old, n), key=lambda i: (float(energies[i]), i))
    _assign(state, new, progress)
    # A basin's representative is its lowest minimum: a new minimum below it takes over.
    members: dict[int, list[int]] = {}
    for i, b in enumerate(state.basin_of):
        members.setdefault(b, []).append(i)
    for b, rep in enumerate(list(state.reps)):
        low = min(members[b], key=lambda i: (float(energies[i]), i != rep))
        if low == rep:
            continue
        # Every member's path to the old representative now continues to `low` over the
        # trial that joined it. (Old members other than the representative have no known
        # join barrier, NaN, and appear in no new trial: they need none.)
        climb, peak = state.join[low], state.join_peak[low]
        for i in members[b]:
            if i != low and not math.isnan(state.join[i]) and climb > state.join[i]:
                state.join[i], state.join_peak[i] = climb, peak
        state.reps[b] = low
        state.join[low], state.join_peak[low] = float(energies[low]), x[low].cpu()
    _rep_barriers(state)
    basins = _collect(x, energies, state.basin_of, state.reps, state.join, state.join_peak, state.trials, config.alpha)
    basins, new_of = _renumber(basins)
    return basins, new_of[: prior.n_basins]


def _renumber(basins: Basins) -> tuple[Basins, torch.Tensor]:
    """Basins renumbered by the energy of their representative (ties: old number)."""
    b = basins.n_basins
    order = torch.argsort(basins.energy, stable=True)
    new_of = torch.empty(b, dtype=torch.int64)
    new_of[order] = torch.arange(b)
    pairs = new_of[basins.pairs] if basins.pairs.numel() else basins.pairs.reshape(-1, 2)
    lo, hi = pairs.min(dim=1).values, pairs.max(dim=1).values
    key = lo * max(b, 1) + hi
    rows = torch.argsort(key, stable=True)
    out = replace(
        basins,
        basin=new_of[basins.basin],
        representative=basins.representative[order],
        energy=basins.energy[order],
        pairs=torch.stack([lo, hi], dim=1)[rows] if pairs.numel() else pairs,
        barrier=basins.barrier[rows],
        pair_alpha=basins.pair_alpha[rows],
        peak_x=basins.peak_x[rows],
    )
    return out, new_of


def _collect(
    x: torch.Tensor,
    energies: torch.Tensor,
    basin_of: list[int],
    reps: list[int],
    join: list[float],
    join_peak: list[torch.Tensor | None],
    trials: _Trials,
    alpha: float,
) -> Basins:
    """Turn per-minimum-pair records into per-basin-pair barrier estimates."""
    best: dict[tuple[int, int], tuple[float, torch.Tensor | None, float]] = {}
    for (i, j), rec in trials.records.items():
        bi, bj = basin_of[i], basin_of[j]
        if bi == bj:
            continue
        # A path rep(bi) -> i -> j -> rep(bj) peaks at the highest of its three legs.
        legs = [(rec.barrier, rec.peak), (join[i], join_peak[i]), (join[j], join_peak[j])]
        h, peak = max(legs, key=lambda leg: leg[0])
        key = (min(bi, bj), max(bi, bj))
        old = best.get(key)
        if old is None or h < old[0]:
            best[key] = (h, peak, rec.alpha if math.isfinite(h) else math.nan)
    keys = sorted(best)
    shape = tuple(x.shape[1:])
    peak_x = torch.full((len(keys),) + shape, math.nan, dtype=x.dtype)
    for e, key in enumerate(keys):
        if best[key][1] is not None:
            peak_x[e] = best[key][1]
    return Basins(
        basin=torch.tensor(basin_of, dtype=torch.int64),
        representative=torch.tensor(reps, dtype=torch.int64),
        energy=energies[torch.tensor(reps, dtype=torch.int64)].clone(),
        join_barrier=torch.tensor(join, dtype=torch.float64),
        pairs=torch.tensor(keys, dtype=torch.int64).reshape(-1, 2),
        barrier=torch.tensor([best[k][0] for k in keys], dtype=torch.float64),
        pair_alpha=torch.tensor([best[k][2] for k in keys], dtype=torch.float64),
        peak_x=peak_x,
        alpha=float(alpha),
        trials=trials.n_chains,
        chain_steps=trials.chain_steps,
        batches=trials.batches,
    )


def magnetization_ladder(
    energy: Energy,
    minima: Minima,
    alphas: Sequence[float],
    config: ADConfig,
    generator: torch.Generator | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Basins]:
    """Basins at each magnetization of a ladder (a hierarchy of resolutions).

    A stronger pull (larger ``alpha``) carries chains over higher barriers, so more
    minima join existing basins and the number of basins falls as ``alpha`` grows. On the
    three-well test potential at ``T = 0.1``: 3 basins for ``alpha`` up to 8, one from 16
    on. The public ADELM maps of image models fall with log-log slopes of -2 to -4.

    Parameters
    ----------
    energy, minima, config, generator, progress :
        As for :func:`assign_basins`; ``config.alpha`` is replaced by each ladder value.
    alphas : sequence of float
        Magnetizations, in the order the results are returned.

    Returns
    -------
    list of Basins, one per alpha.

    Cost: the sum of one :func:`assign_basins` per alpha.
    """
    return [assign_basins(energy, minima, replace(config, alpha=float(a)), generator, progress) for a in alphas]
