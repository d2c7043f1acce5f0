"""Metastable states: long Langevin chains, quenched to local minima, near-duplicates merged.

The recipe: many chains run at temperature ``T`` so they
settle into the regions the model makes probable; each end point is then quenched (tau = 0,
here a quasi-Newton descent) to the local minimum below it; minima closer than a
merge radius are one state, represented by its lowest point, and the number of chains
that ended in each state is kept as its ``hits``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from landscape.energy import Energy, rows_where
from landscape.errors import LandscapeError
from landscape.sampling.langevin import sample


@dataclass
class Minima:
    """Local minima of an energy, lowest first.

    Attributes
    ----------
    x : Tensor [N, *shape]
        The minima, in the energy's dtype and on its device, sorted by energy (lowest first).
    energy : Tensor float64 [N]
        On the CPU, as ``hits`` and ``grad_norm`` are.
    hits : Tensor int64 [N]
        How many chains ended in each minimum (after merging near-duplicates).
    grad_norm : Tensor float64 [N]
        ``||dU/dx||`` at each minimum: near zero for a converged quench; callers can
        drop points whose quench did not converge by thresholding it.
    """

    x: torch.Tensor
    energy: torch.Tensor
    hits: torch.Tensor
    grad_norm: torch.Tensor

    def __len__(self) -> int:
        return int(self.energy.shape[0])


class QuenchResult(NamedTuple):
    """What ``quench`` returns, one row per chain (in the input order).

    x : final points, the input's dtype.
    energy, grad_norm : float64, at the final points.
    converged : bool, ``grad_norm < grad_tol`` at the end.
    steps : descent iterations run (the longest-running chain's count).
    stalled : bool, not converged: stopped where its moves no longer changed ``x`` (the
        limit of the energy's precision). A chain neither converged nor stalled ran out of
        iterations.
    """

    x: torch.Tensor
    energy: torch.Tensor
    grad_norm: torch.Tensor
    converged: torch.Tensor
    steps: int
    stalled: torch.Tensor

    def stops(self) -> tuple[int, int, int]:
        """How many chains converged, stalled, and ran out of iterations."""
        converged, stalled = int(self.converged.sum()), int(self.stalled.sum())
        return converged, stalled, int(self.converged.numel()) - converged - stalled


def describe_stops(stops: tuple[int, int, int] | list[int], limit: int) -> str:
    """``(converged, stalled, out of iterations)`` counts in words, e.g. ``3 converged, 58 at
    the limit of the energy's precision, 3 at the 2,000-iteration limit`` (parts that count
    none left out)."""
    words = ("converged", "at the limit of the energy's precision", f"at the {limit:,}-iteration limit")
    return ", ".join(f"{k:,} {what}" for k, what in zip(stops, words) if k)


def _flat_norm(t: torch.Tensor) -> torch.Tensor:
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def held_by_box(x: torch.Tensor, g: torch.Tensor, box: tuple[float, float], tol: float = 0.0) -> torch.Tensor:
    """Where a descent along ``-g`` would leave ``box``: coordinates on a face with the
    energy still falling beyond it, its gradient pushing out by more than ``tol`` (bool,
    the shape of ``x``). With a tolerance, a minimum that lies on a face (the gradient
    vanishes there but for rounding, of either sign) is not held by it."""
    return ((x <= box[0]) & (g > tol)) | ((x >= box[1]) & (g < -tol))


def _projected(x: torch.Tensor, g: torch.Tensor, box: tuple[float, float] | None) -> torch.Tensor:
    """The gradient with the components that push out of ``box`` at its faces zeroed."""
    if box is None:
        return g
    return torch.where(held_by_box(x, g, box), torch.zeros_like(g), g)


def quench(
    energy: Energy,
    x: torch.Tensor,
    *,
    max_steps: int = 2000,
    grad_tol: float = 1e-3,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
    box: tuple[float, float] | None = None,
    progress: Callable[[int], None] | None = None,
) -> QuenchResult:
    """Descend every point of a batch to the local minimum below it.

    A limited-memory quasi-Newton descent (L-BFGS, each chain with its own last
    ``_MEMORY`` moves) whose moves are checked, not line-searched: a move that raises the
    energy (or makes it non-finite) is rejected and the chain's trust radius, the longest
    move it may take, halved; an accepted move lets the radius grow. A change of energy
    within rounding noise is accepted only if the gradient norm does not grow. Energy
    never increases along a chain (beyond a few rounding units), so a chain cannot climb
    out of the well it is in. The curvature model makes the descent as fast along a soft
    valley as across it: plain gradient descent, its step held under ``2 / curvature`` by
    the stiffest direction, needs about ``curvature ratio`` times more moves.

    A chain stops when its gradient norm falls below ``grad_tol``, or when its moves no
    longer change ``x`` at the energy's precision (a float32 energy whose last digits are
    rounding noise); all stop at ``max_steps``.

    Parameters
    ----------
    energy : Energy
        Its module (if any) is frozen while descending: no parameter gradients.
    x : Tensor [B, *shape]
        Starting points (not modified).
    max_steps : int
        Descent iterations at most (one energy-and-gradient evaluation of the still
        running chains each).
    grad_tol : float
        Convergence threshold on ``||dU/dx||`` (in the energy's own units: an EBM whose
        energy is scaled by ``2/eps^2`` needs a correspondingly larger tolerance).
    step_size : float, optional
        The first move of every chain is ``step_size * dU/dx``. By default it is the
        move along ``-dU/dx`` of length ``0.01 * sqrt(dim) * width`` (``width`` the data
        range's, or 1); the trust radius starts at that first move's length and is kept
        under four times it (or four times ``0.01 * sqrt(dim) * width``, the larger), so a
        quench walks the well it starts in rather than leaping.
    generator : torch.Generator, optional
        Unused (the descent is deterministic); accepted so all mapping stages share a
        signature.
    box : (low, high), optional
        Keep the points in this box (projected descent): an energy that keeps falling
        outside the data (as non-convergent EBMs' do) then has its minima on the box's
        faces, saturated images, instead of running off to infinity. Convergence, the
        curvature model and the reported gradient norm use the projected gradient
        (components pushing out of the box at a face count as zero).
    progress : callable, optional
        Called with the number of iterations just completed, every 100 iterations, and at
        the end with the rest of ``max_steps`` (a descent that stops early completes its
        count: a progress bar over the budget ends full).

    Returns
    -------
    QuenchResult

    Raises
    ------
    NonFiniteEnergyError
        If the energy or gradient at a starting point is NaN or infinite.
    LandscapeError
        On a batch of the wrong shape or invalid settings.

    Examples
    --------
    >>> e = Energy(lambda x: ((x - 1.0) ** 2).sum(1), shape=(2,), dtype=torch.float64)
    >>> quench(e, torch.zeros(3, 2, dtype=torch.float64)).x[0].tolist()
    [1.0, 1.0]

    Cost: at most ``max_steps`` energy-and-gradient evaluations of the running chains,
    plus about ``4 * _MEMORY`` vector operations per running chain and iteration; memory
    ``2 * _MEMORY`` copies of the batch.
    """
    del generator  # deterministic; see docstring
    energy.check_batch(x)
    if max_steps < 0:
        raise LandscapeError(f"max_steps must be >= 0, got {max_steps}")
    if not grad_tol > 0.0:
        raise LandscapeError(f"grad_tol must be > 0, got {grad_tol}")
    if step_size is not None and not (step_size > 0.0 and math.isfinite(step_size)):
        raise LandscapeError(f"step_size must be a positive number, got {step_size}")
    n = x.shape[0]
    tiny = torch.finfo(x.dtype).eps
    # Gradient norms are divided by no less than this: a chain still running has one of at
    # least ``grad_tol`` (a fixed floor such as ``eps`` would cap the moves of an energy
    # whose gradients are all below it, a plateau's or a finely scaled one's, at a crawl).
    gn_floor = max(grad_tol, torch.finfo(x.dtype).tiny)
    with energy.frozen():
        vg = energy.value_and_grad_fn()
        x = x.detach().clone()
        if box is not None:
            x = x.clamp(box[0], box[1])
        u, g = vg(x)
        g = _projected(x, g, box)
        gn = _flat_norm(g)
        bad = ~(torch.isfinite(u) & torch.isfinite(gn))
        if bool(bad.any()):
            raise energy.not_finite("quench starts", x, bad)
        width = energy.data_range[1] - energy.data_range[0] if energy.data_range else 1.0
        move = 0.01 * math.sqrt(energy.dim) * width
        if step_size is not None:
            gamma = torch.full((n,), float(step_size), dtype=x.dtype, device=x.device)
            radius = gamma * gn
        else:
            radius = torch.full((n,), move, dtype=x.dtype, device=x.device)
            gamma = radius / gn.clamp_min(gn_floor)
        radius_max = (4.0 * radius).clamp_min(4.0 * move)
        state = _Descent(x.reshape(n, -1).clone(), u.clone(), g.reshape(n, -1).clone(), gn.clone(), gamma, radius,
                         radius_max, torch.arange(n, device=x.device))
        state = state.keep(gn >= grad_tol)
        flat_x = x.reshape(n, -1)
        stalled = torch.zeros(n, dtype=torch.bool, device=x.device)
        steps = 0
        reported = 0
        while steps < max_steps and state.rows.numel():
            steps += 1
            stop, stuck = state.step(vg, x.shape[1:], box, grad_tol, gn_floor, tiny)
            stopped = int(stop.sum())  # (the step's one host read)
            if stopped:
                # by row numbers found once from that count (a mask reads its count again
                # from the device for every field it selects)
                at = rows_where(stop, stopped)
                r = state.rows[at]
                flat_x[r], u[r], gn[r], stalled[r] = state.x[at], state.u[at], state.gn[at], stuck[at]
                state = state.keep(rows_where(~stop, stop.shape[0] - stopped))
            if progress is not None and steps % 100 == 0:
                progress(steps - reported)
                reported = steps
        r = state.rows
        flat_x[r], u[r], gn[r] = state.x, state.u, state.gn
        if progress is not None and max_steps > reported:
            progress(max_steps - reported)
    gn64 = gn.double()
    converged = gn64 < grad_tol
    return QuenchResult(x=x, energy=u.double(), grad_norm=gn64, converged=converged, steps=steps,
                        stalled=stalled & ~converged)


# Correction pairs (moves and gradient changes) each chain of a quench keeps.
_MEMORY = 8
# Consecutive rejected moves after which a chain forgets its curvature model.
_RESETS_AFTER = 3


class _Descent:
    """The running chains of a quench: flattened points, energies, projected gradients,
    their norms, the curvature model (``_MEMORY`` pairs in a ring shared by all chains,
    ``rho = 0`` marking an empty slot), the trust radii, and ``rows``, each chain's row in
    the batch. Finished chains are dropped with :meth:`keep`."""

    def __init__(self, x, u, g, gn, gamma, radius, radius_max, rows):
        self.x, self.u, self.g, self.gn = x, u, g, gn
        self.gamma, self.radius, self.radius_max, self.rows = gamma, radius, radius_max, rows
        k, d = x.shape
        self.s = x.new_zeros((_MEMORY, k, d))
        self.y = x.new_zeros((_MEMORY, k, d))
        self.rho = x.new_zeros((_MEMORY, k))
        self.fails = torch.zeros(k, dtype=torch.int64, device=x.device)
        self.slot = 0

    def keep(self, mask: torch.Tensor) -> _Descent:
        """The chains ``mask`` only (a mask, or row numbers in order; selected without asking
        the device first whether any is left out: the loop knows it already)."""
        for name in ("x", "u", "g", "gn", "gamma", "radius", "radius_max", "rows", "fails"):
            setattr(self, name, getattr(self, name)[mask])
        self.s, self.y, self.rho = self.s[:, mask], self.y[:, mask], self.rho[:, mask]
        return self

    def direction(self) -> torch.Tensor:
        """``-H g`` by the two-loop recursion over each chain's stored pairs, newest first."""
        q = self.g.clone()
        alphas = []
        order = [(self.slot - 1 - j) % _MEMORY for j in range(_MEMORY)]
        for i in order:
            a = self.rho[i] * (self.s[i] * q).sum(1)
            q.sub_(a[:, None] * self.y[i])
            alphas.append(a)
        q.mul_(self.gamma[:, None])
        for i, a in zip(reversed(order), reversed(alphas)):
            b = self.rho[i] * (self.y[i] * q).sum(1)
            q.add_((a - b)[:, None] * self.s[i])
        return q.neg_()

    def step(self, vg, shape, box, grad_tol: float, gn_floor: float, tiny: float) -> tuple[torch.Tensor, torch.Tensor]:
        """One checked move of every running chain; returns which chains are finished, and
        which of them stalled (moves below the resolution of ``x``). ``gn_floor`` bounds the
        gradient norms divided by, ``tiny`` is the dtype's rounding unit."""
        d = self.direction()
        if box is not None:
            d = torch.where(((self.x <= box[0]) & (d < 0)) | ((self.x >= box[1]) & (d > 0)), torch.zeros_like(d), d)
        # A direction that does not descend (a model spoilt by the box) falls back to the
        # gradient's (for every chain at once: a check first would wait for the device).
        uphill = (d * self.g).sum(1) >= 0
        d = torch.where(uphill[:, None], -self.gamma[:, None] * self.g, d)
        dn = torch.linalg.vector_norm(d, dim=1)
        proposal = self.x + d * (self.radius / dn.clamp_min(tiny)).clamp(max=1.0)[:, None]
        if box is not None:
            proposal = proposal.clamp(box[0], box[1])
        u_new, g_new = vg(proposal.reshape((-1,) + tuple(shape)))
        g_new = _projected(proposal, g_new.reshape(proposal.shape), box)
        gn_new = torch.linalg.vector_norm(g_new, dim=1)
        # A non-finite proposal is a rejection, never a NaN in the chain. Near the minimum
        # the true decrease falls below the energy's rounding noise; there a change within a
        # few rounding units of U counts as a tie, broken by the gradient norm, so the descent
        # neither stalls on noise nor accepts a move that oscillates.
        slack = 4.0 * tiny * self.u.abs()
        tie = (u_new <= self.u + slack) & (gn_new <= self.gn)
        accept = torch.isfinite(u_new) & torch.isfinite(gn_new) & ((u_new < self.u - slack) | tie)
        s = proposal - self.x
        length = torch.linalg.vector_norm(s, dim=1)
        yv = g_new - self.g
        sy = (s * yv).sum(1)
        yy = (yv * yv).sum(1)
        # Keep a pair only where it says the energy curves upward along the move.
        good = accept & (sy > tiny * length * yy.sqrt()) & torch.isfinite(yy)
        # A chain without a new pair keeps the one in this slot (its pairs then stand out of
        # order, which only blunts the model a little: every kept pair still curves upward).
        gv = good[:, None]
        self.s[self.slot] = torch.where(gv, s, self.s[self.slot])
        self.y[self.slot] = torch.where(gv, yv, self.y[self.slot])
        self.rho[self.slot] = torch.where(good, 1.0 / torch.where(good, sy, 1.0), self.rho[self.slot])
        self.slot = (self.slot + 1) % _MEMORY
        # The scale of the model's unexplored directions: the last pair's; where a move went
        # downhill on a concave stretch (no pair), doubled, so a chain does not creep across it
        # at the step a stiff direction once set.
        grown = torch.minimum(2.0 * self.gamma, self.radius_max / gn_new.clamp_min(gn_floor))
        self.gamma = torch.where(good, sy / torch.where(good, yy, 1.0), torch.where(accept, grown, self.gamma))
        av = accept[:, None]
        self.x = torch.where(av, proposal, self.x)
        self.g = torch.where(av, g_new, self.g)
        self.u = torch.where(accept, u_new, self.u)
        self.gn = torch.where(accept, gn_new, self.gn)
        # The radius grows when a move used all of it, and drops below a rejected move.
        self.radius = torch.where(accept, torch.minimum(torch.maximum(self.radius, 2.0 * length), self.radius_max),
                                  0.5 * length)
        self.fails = torch.where(accept, 0, self.fails + 1)
        forget = self.fails >= _RESETS_AFTER
        self.rho.masked_fill_(forget, 0.0)
        self.fails.masked_fill_(forget, 0)
        # Stalled: the move no longer changes x at its resolution (about one rounding unit of
        # its norm), or may no longer (a radius shrunk below it, or underflowed to 0).
        resolution = tiny * torch.linalg.vector_norm(self.x, dim=1)
        stalled = (self.radius <= resolution) | (length <= resolution)
        return ~(self.gn >= grad_tol) | stalled, stalled


def _settle(energy: Energy, q: QuenchResult, radius: float, max_steps: int, grad_tol: float,
            generator: torch.Generator | None, box: tuple[float, float] | None) -> QuenchResult:
    """Nudge and quench again; per point keep the lower end (see :func:`find_minima`)."""
    n = q.x.shape[0]
    length = 0.25 * (radius if radius > 0 else 1e-3)
    scale = length / math.sqrt(energy.dim)
    z = torch.randn(q.x.shape, generator=generator, device=q.x.device, dtype=q.x.dtype)
    nudge = scale * z
    down = _downhill(energy, q)
    bent = torch.zeros(n, dtype=torch.bool, device=q.x.device)
    if down is not None:
        bent = torch.isfinite(down.reshape(n, -1)).all(1)
        # (a random nudge of this length moves a point 1/sqrt(D) of it along the one direction
        # down from a saddle: in 1,024 dimensions too little for a float32 energy to see)
        nudge = torch.where(bent.reshape((n,) + (1,) * (q.x.dim() - 1)), length * torch.nan_to_num(down), nudge)
    # A tighter tolerance than the first quench's: next to a saddle the nudge's own gradient
    # can fall below that one, and the descent must still roll off.
    again = quench(energy, q.x + nudge, max_steps=max_steps, grad_tol=0.01 * grad_tol, box=box)
    # Lower by more than the first quench's gradient could give over the nudge's length: a
    # roll off a saddle or ridge, not rounding (on a flat floor, where every point is a
    # minimum, a strict comparison would move points by rounding units of U).
    lower = again.energy < q.energy - grad_tol * length
    # A point nudged at random (no direction curves down from it) was at a minimum, or on
    # flat ground: a lower end beyond a barrier is the next well over (the nudge can be
    # longer than a well is wide), not a roll off it.
    hopped = torch.nonzero(lower.cpu() & ~bent.cpu()).flatten()
    if hopped.numel():
        walls = barrier_between(energy, q.x[hopped.to(q.x.device)], again.x[hopped.to(q.x.device)],
                                q.energy.cpu()[hopped], again.energy.cpu()[hopped],
                                float(torch.cat([q.energy, again.energy]).abs().max()), energy_tie(grad_tol, radius))
        keep_low = lower.cpu().clone()
        keep_low[hopped[torch.from_numpy(walls)]] = False
        lower = keep_low.to(lower.device)
    view = (n,) + (1,) * (q.x.dim() - 1)
    return QuenchResult(
        x=torch.where(lower.reshape(view), again.x, q.x),
        energy=torch.where(lower, again.energy, q.energy),
        grad_norm=torch.where(lower, again.grad_norm, q.grad_norm),
        converged=torch.where(lower, again.converged, q.converged),
        steps=q.steps + again.steps,
        stalled=torch.where(lower, again.stalled, q.stalled),
    )


#: A quenched point whose lowest curvature is below minus this share of its largest is on
#: a saddle or a ridge: :func:`_settle` nudges it down along that direction.
SADDLE_SHARE = 1e-3
#: Points per batch of :func:`_downhill`'s Hessian-vector products.
DOWNHILL_BATCH = 256


def _downhill(energy: Energy, q: QuenchResult) -> torch.Tensor | None:
    """For the quenched points where the energy curves down (a saddle, a ridge, or a slope a
    float32 energy no longer resolves), the unit direction of lowest curvature, signed
    downhill; NaN rows elsewhere (None where no point qualifies, or the energy has no
    second derivative)."""
    from landscape.mapping.settings import lowest_curvature

    rows = torch.arange(q.x.shape[0], device=q.x.device)
    if rows.numel() == 0 or energy.dim < 2:
        return None
    out = torch.full(q.x.shape, math.nan, dtype=q.x.dtype, device=q.x.device)
    vg = energy.value_and_grad_fn()
    found = False
    for part in rows.split(DOWNHILL_BATCH):
        x = q.x[part]
        try:
            lowest, direction, top = lowest_curvature(energy, x)
        except NotImplementedError:
            return None
        bent = (lowest < -SADDLE_SHARE * top) & torch.isfinite(lowest)
        if not bool(bent.any()):
            continue
        with energy.frozen():
            g = vg(x)[1].reshape(len(part), -1).double()
        sign = torch.where((g * direction).sum(1) > 0, -1.0, 1.0).to(direction)
        out[part[bent]] = (sign[:, None] * direction)[bent].to(out).reshape(-1, *q.x.shape[1:])
        found = True
    return out if found else None


def energy_tie(grad_tol: float, merge_radius: float) -> float:
    """Energies closer than this are equal as far as a map can tell: a point quenched to a
    gradient below ``grad_tol`` may still be that much above a point of its minimum within
    ``merge_radius`` (the ``tie`` of :func:`merge_duplicates` and of the settings' fallbacks)."""
    return grad_tol * merge_radius


def energy_key(energy: torch.Tensor | np.ndarray, tie: float = 0.0) -> np.ndarray:
    """What :func:`energy_order` sorts by, as float64 numpy (for ``lexsort`` with other keys):
    the energy, rounded to a multiple of ``tie`` (see :func:`energy_tie`) when one is given."""
    e = np.asarray(energy.cpu() if isinstance(energy, torch.Tensor) else energy, dtype=np.float64)
    return np.round(e / tie) if tie > 0 else e


def energy_order(energy: torch.Tensor, tie: float = 0.0) -> torch.Tensor:
    """Indices that sort ``energy`` from the lowest, energies that round to the same
    multiple of ``tie`` by index: the one order of minima a map uses, whatever rounding
    did to energies it cannot tell apart (on ``energy``'s device)."""
    order = np.argsort(energy_key(energy, tie), kind="stable")
    return torch.from_numpy(order).to(energy.device)


#: Evenly spaced points (the ends included) on the straight segment between two points
#: :func:`merge_duplicates` would merge, where it looks for a barrier between them (a
#: golden-section search then finds the segment's top, :func:`~landscape.mapping.paths.segment_max`).
MERGE_IMAGES = 16
#: Pairs per batch of :func:`barrier_between`'s segments.
MERGE_BATCH = 256


def merge_duplicates(
    x: torch.Tensor, energy: torch.Tensor, radius: float, *, tie: float = 0.0, chunk: int = 1024,
    apart: Energy | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge points closer than ``radius``, greedily from the lowest energy up.

    Points are visited in order of energy (energies within ``tie`` of each other, by
    index). A point within ``radius`` (Euclidean, flattened) of an already kept point joins
    the nearest such point; otherwise it is kept. Each kept point is thus the lowest of its
    group (up to ``tie``), and kept points are more than ``radius`` apart. With ``apart``,
    the energy the points are minima of, two points are one state only where no barrier
    lies between them: a point joins the nearest kept point within ``radius`` that the
    straight segment to it rises nowhere above by more than the energy resolves
    (:func:`barrier_between`), and is kept where there is none. Two wells closer than the
    radius then stay two minima, while the ends of quenches that stopped a rounding error
    apart in one well, or on one flat floor, are still one.

    Parameters
    ----------
    x : Tensor [N, *shape]
    energy : Tensor [N]
    radius : float
        Merge distance, >= 0 (0 merges exact duplicates only).
    tie : float
        Energies that round to the same multiple of ``tie`` count as equal (0: only equal
        ones). Minima quenched to a gradient ``g`` differ by rounding noise below about
        ``g * radius`` where several lie within ``radius`` on one flat floor; with that
        ``tie`` the point kept does not depend on the noise, nor on the energy's scale.
    chunk : int
        Points per block; memory is O(chunk * (chunk + K)).
    apart : Energy, optional
        The energy, to check every merge for a barrier (without it, distance alone merges).

    Returns
    -------
    keep_idx : LongTensor [K]
        Indices into ``x`` of the kept points, sorted by energy (lowest first; energies
        within ``tie`` by index).
    assignment : LongTensor [N]
        For every point, the position in ``keep_idx`` of the kept point it joined
        (a kept point is assigned to itself).

    Raises
    ------
    LandscapeError
        On mismatched lengths, a negative radius or non-finite energies.

    Examples
    --------
    >>> x = torch.tensor([[0.0], [0.05], [1.0]])
    >>> keep, assign = merge_duplicates(x, torch.tensor([1.0, 0.5, 2.0]), 0.1)
    >>> keep.tolist(), assign.tolist()
    ([1, 2], [0, 0, 1])

    Cost: O(N * K * D) arithmetic for K kept points; a Python loop over the points of
    each block that are not near an earlier kept point. With ``apart``, a segment of
    :data:`MERGE_IMAGES` points and its top per merge, in batches, and the greedy pass
    again for each batch that finds a barrier.
    """
    n = x.shape[0]
    if energy.shape != (n,):
        raise LandscapeError(f"{n} points but energies of shape {list(energy.shape)}")
    if not radius >= 0.0:
        raise LandscapeError(f"merge radius must be >= 0, got {radius}")
    if not bool(torch.isfinite(energy).all()):
        raise LandscapeError("cannot merge minima with non-finite energies")
    if not tie >= 0.0:
        raise LandscapeError(f"energy tie must be >= 0, got {tie}")
    flat = x.reshape(n, -1).double()
    order = energy_order(energy, tie)
    barred: dict[int, set[int]] = {}  # point -> kept points (indices into x) it may not join
    checked: set[tuple[int, int]] = set()
    if apart is not None:  # (the energies the barrier checks compare, read once)
        e = energy.detach().double().cpu()
        magnitude = float(e.abs().max()) if n else 0.0
    while True:
        keep_idx, assignment = _greedy(flat, order, radius, chunk, barred)
        if apart is None:
            return keep_idx, assignment
        joined = torch.nonzero(keep_idx[assignment] != torch.arange(n, device=x.device)).flatten().cpu()
        pairs = [(i, k) for i, k in zip(joined.tolist(), keep_idx.cpu()[assignment.cpu()[joined]].tolist())
                 if (i, k) not in checked]
        if not pairs:
            return keep_idx, assignment
        checked.update(pairs)
        p = torch.tensor(pairs, dtype=torch.int64)
        walls = barrier_between(apart, x[p[:, 0].to(x.device)], x[p[:, 1].to(x.device)], e[p[:, 0]], e[p[:, 1]],
                                magnitude, tie)
        if not walls.any():
            return keep_idx, assignment
        for i, k in p[torch.from_numpy(walls)].tolist():
            barred.setdefault(i, set()).add(k)


def barrier_between(energy: Energy, a: torch.Tensor, b: torch.Tensor, ea: torch.Tensor, eb: torch.Tensor,
                    magnitude: float, tie: float = 0.0) -> np.ndarray:
    """Per pair of points, whether the straight segment between them rises above the higher
    of its ends by more than the energy resolves at ``magnitude``
    (:func:`~landscape.mapping.tree.flat_rtol` of it) and more than ``tie`` (what a point
    quenched to the tolerance may lie above its minimum, :func:`energy_tie`): a barrier,
    so the two are not one state (bool ndarray [P]; the segment's top by
    :func:`~landscape.mapping.paths.segment_max` over :data:`MERGE_IMAGES` points)."""
    from landscape.mapping.paths import segment_max
    from landscape.mapping.tree import flat_rtol, unresolved

    if a.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    with energy.frozen(), torch.no_grad():  # (in batches: an image's segments are many images)
        top = torch.cat([segment_max(energy, a[s : s + MERGE_BATCH], b[s : s + MERGE_BATCH], MERGE_IMAGES).cpu()
                         for s in range(0, a.shape[0], MERGE_BATCH)]).double()
    higher = torch.maximum(ea.double().cpu(), eb.double().cpu())
    return (top > higher + float(unresolved(magnitude, flat_rtol(energy.dtype), tie))).numpy()


def _greedy(flat: torch.Tensor, order: torch.Tensor, radius: float, chunk: int,
            barred: dict[int, set[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`merge_duplicates`' pass over ``flat`` (points in ``order``), a point never
    joining a kept point ``barred`` lists for it."""
    n = flat.shape[0]
    assignment = torch.full((n,), -1, dtype=torch.int64, device=flat.device)
    kept: list[int] = []  # indices into x
    kept_x = flat.new_zeros((0, flat.shape[1]))
    for start in range(0, n, chunk):
        block = order[start : start + chunk]
        bx = flat[block]
        # Nearest point kept before this block.
        d_prev = None
        if kept:
            d_prev = torch.cdist(bx, kept_x)
            prev_d, prev_j = d_prev.min(dim=1)
            prev_d, prev_j = prev_d.cpu().numpy(), prev_j.cpu().numpy()
        else:
            prev_d = np.full(len(block), np.inf)
            prev_j = np.zeros(len(block), dtype=np.int64)
        d_in = torch.cdist(bx, bx).cpu().numpy()
        block_list = block.cpu().tolist()
        first_new = len(kept)
        new_local: list[int] = []  # positions in the block of points kept in this block
        labels = np.empty(len(block), dtype=np.int64)
        for pos in range(len(block)):
            best_d, best_k = prev_d[pos], prev_j[pos]
            no = barred.get(block_list[pos])
            if no and d_prev is not None:  # (the nearest kept point it may join)
                row = d_prev[pos].cpu().numpy().copy()
                row[[j for j, idx in enumerate(kept[:first_new]) if idx in no]] = np.inf
                best_k = int(np.argmin(row))
                best_d = row[best_k]
            if new_local:
                d_new = d_in[pos, new_local].copy()
                if no:
                    d_new[[j for j, q in enumerate(new_local) if block_list[q] in no]] = np.inf
                j = int(np.argmin(d_new))
                if d_new[j] < best_d:
                    best_d, best_k = d_new[j], first_new + j
            if best_d <= radius:
                labels[pos] = best_k
            else:
                labels[pos] = len(kept)
                kept.append(block_list[pos])
                new_local.append(pos)
        if new_local:
            kept_x = torch.cat([kept_x, bx[new_local]])
        assignment[block] = torch.from_numpy(labels).to(flat.device)
    keep_idx = torch.tensor(kept, dtype=torch.int64, device=flat.device)
    return keep_idx, assignment


def find_minima(
    energy: Energy,
    starts: torch.Tensor,
    *,
    temperature: float = 1.0,
    eps: float,
    steps: int,
    quench_steps: int = 2000,
    grad_tol: float = 1e-3,
    merge_radius: float,
    generator: torch.Generator | None = None,
    box: tuple[float, float] | None = None,
    progress: Callable[[int], None] | None = None,
    settle: bool = True,
    on_quench: Callable[[QuenchResult], None] | None = None,
) -> Minima:
    """Metastable states: Langevin at temperature ``T``, quench, merge near-duplicates.

    Parameters
    ----------
    energy : Energy
    starts : Tensor [B, *shape]
        One chain per row (from noise, from data, or both).
    temperature : float
        ``T`` of the exploration chains (``tau = sqrt(T)`` in :func:`landscape.sampling.langevin.sample`).
    eps : float
        Langevin step size.
    steps : int
        Langevin steps before quenching (0 quenches the starts directly).
    quench_steps, grad_tol :
        Passed to :func:`quench`.
    merge_radius : float
        Minima closer than this are one state (see :func:`merge_duplicates`).
    generator : torch.Generator, optional
    box : (low, high), optional
        Keep the exploration chains and the quench in this box (e.g. the data range): an
        energy that grows steeply outside the data cannot throw chains out, and one that
        keeps falling cannot lure them to infinity (see :func:`quench`).
    progress : callable, optional
        Called with the number of Langevin steps, then quench iterations, just completed.
    settle : bool
        Nudge every quenched point by a small random step (a quarter of the merge radius)
        and quench again, keeping the lower of the two: a descent that stopped on a saddle
        or a ridge (where the gradient vanishes too) rolls off it to a minimum; a minimum
        comes back to itself. A point where the energy curves down (its lowest curvature,
        by Lanczos on Hessian-vector products, below -1/1000 of its largest) is nudged the
        same length along that direction, downhill, instead: in many dimensions a random
        step has little of its length there.
    on_quench : callable, optional
        Called with the chains' quench result (after settling), before merging: how each
        chain's descent stopped (:meth:`QuenchResult.stops`).

    Returns
    -------
    Minima
        Sorted by energy. Chains whose quench did not converge still count: their end
        point is kept (or merged) like any other; its ``grad_norm`` tells.

    Raises
    ------
    NonFiniteEnergyError, LandscapeError
        From the sampler or the quench.

    Examples
    --------
    >>> e = Energy(lambda x: ((x**2 - 1) ** 2).sum(1), shape=(1,), data_range=(-2, 2), dtype=torch.float64)
    >>> m = find_minima(e, e.uniform_noise(50), eps=0.1, steps=20, merge_radius=0.1)  # doctest: +SKIP
    >>> sorted(round(v) for v in m.x.flatten().tolist())  # doctest: +SKIP
    [-1, 1]

    Cost: ``B * (steps + quench_steps)`` energy-and-gradient evaluations at most, and as
    many as ``B * quench_steps`` more to settle (``settle``), plus O(B * N * D) for merging.
    """
    if not temperature >= 0.0:
        raise LandscapeError(f"temperature must be >= 0, got {temperature}")
    if steps > 0:
        ends = sample(
            energy, starts, steps, eps, tau=math.sqrt(temperature), generator=generator, box=box, progress=progress
        ).x
    else:
        energy.check_batch(starts)
        ends = starts
    q = quench(energy, ends, max_steps=quench_steps, grad_tol=grad_tol, box=box, progress=progress)
    if settle and q.x.shape[0]:
        q = _settle(energy, q, merge_radius, quench_steps, grad_tol, generator, box)
    if on_quench is not None:
        on_quench(q)
    keep, assignment = merge_duplicates(q.x, q.energy, merge_radius, tie=energy_tie(grad_tol, merge_radius),
                                        apart=energy)
    k = keep.cpu()  # x stays on the energy's device, the rest comes to the CPU (see Minima)
    hits = torch.bincount(assignment.cpu(), minlength=k.numel()).to(torch.int64)
    return Minima(x=q.x[keep], energy=q.energy.cpu()[k], hits=hits, grad_norm=q.grad_norm.cpu()[k])
