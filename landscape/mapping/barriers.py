"""Barriers between minima: which pairs, their estimates, and their refinement.

The tree over minima (:mod:`landscape.mapping.tree`) needs a barrier for enough pairs that the
lowest path between any two minima runs along them. Two kinds of pair are estimated:

- **neighbours in space** (:func:`neighbour_pairs`): each minimum's ``k`` nearest others,
  plus the shortest links that join groups the nearest-neighbour graph leaves apart, so
  every minimum is reachable. Their estimate is the highest energy on the straight
  segment between them (:func:`line_estimates`);
- **pairs attraction-diffusion connected** (:func:`add_records`): the highest energy on
  the chain, which followed the landscape and is often far lower than the straight line.

A segment's estimate is the highest point of a real path; a chain's is the highest point
it sampled, which lies below its path where it stepped over a narrow ridge. Each chain's
estimate the tree rests on is therefore checked along the polyline through the chain's
recorded points (:func:`close_estimates`), so the minimax tree over the estimates bounds
the true tree from above. :func:`refine_pairs` relaxes the paths with the string method
(:mod:`landscape.mapping.paths`) to the saddles themselves, whatever the temperature: a string
starts on the chain's recorded path where there is one (resampled to its images: it keeps
the chain's way round the barriers), else on the segment. A string that did not converge gives the top of its polyline, so a
refined barrier, too, is the highest point of a real path. A refined saddle above the estimate it started from (the string
found another pass) is retried with twice the images; if it stays above, the tree keeps
the estimate there and the pair is counted (:meth:`PairTable.above_estimate`). A saddle a
little above its estimate is taken (:meth:`PairTable.is_refined`): a chain's highest
sampled point can lie below the ridge it stepped over.

Which pairs are refined (:func:`refinement_rows`): every neighbour pair, and every other
pair whose estimate could still change the tree: within ``slack`` of the barrier height
above the height at which the current tree joins its two minima.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any
from dataclasses import dataclass

import math

import numpy as np
import torch

from landscape.mapping.ad import PairRecords
from landscape.mapping.neighbors import nearest
from landscape.energy import Energy
from landscape.errors import LandscapeError
from landscape.mapping.paths import STOPS, point_on, polyline_max, segment_max, segment_tops, string_method_batch
from landscape.io.records import ATTRACTION, CHAIN_SLACK, NEIGHBOUR, REFINED_SLACK, PairTable
from landscape.mapping.tree import flat_rtol, minimax_tree


def neighbour_pairs(x: torch.Tensor, k: int, *, chunk: int = 2048) -> np.ndarray:
    """Each point's ``k`` nearest others, plus links that make the graph connected.

    Parameters
    ----------
    x : Tensor [N, *shape]
    k : int
        Nearest neighbours per point (Euclidean, flattened).
    chunk : int
        Rows per distance block (memory O(chunk * N)).

    Returns
    -------
    ndarray int64 [E, 2]
        Pairs ``i < j``, each once, sorted. Where the k-nearest-neighbour graph falls
        apart into groups, the shortest pair between a group and the rest is added until
        it is one group (a spanning forest of the groups, Boruvka's way). Where its pairs
        are already half of all pairs (a few dozen minima at the default ``k``), every
        pair: it costs at most twice as much, and in many dimensions, where the minima's
        distances crowd together (24 wells in 64 dimensions: 4.3 to 6.3 apart), the pair
        of the lowest pass is often not among the nearest (there: each other's 13th and
        16th).

    Cost: O(N^2 * D) arithmetic in blocks, O(N k) memory for the result.
    """
    n = x.shape[0]
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    flat = x.reshape(n, -1).double()
    k = max(1, min(int(k), n - 1))
    nbr = nearest(flat, flat, k, exclude_self=True, chunk=chunk)[1].cpu().numpy()
    i = np.repeat(np.arange(n), k)
    j = nbr.reshape(-1)
    pairs = {(int(a), int(b)) if a < b else (int(b), int(a)) for a, b in zip(i, j)}
    if 2 * len(pairs) >= n * (n - 1) // 2:
        return np.array([(a, b) for a in range(n) for b in range(a + 1, n)], dtype=np.int64).reshape(-1, 2)
    # Join the groups the k-NN graph leaves apart with their shortest links.
    label = _components(n, pairs)
    while label.max() > 0:
        for g in range(int(label.max()) + 1):
            inside = np.flatnonzero(label == g)
            outside = np.flatnonzero(label != g)
            if outside.size == 0:
                break
            best = (float("inf"), -1, -1)
            for s in range(0, inside.size, chunk):
                block = torch.from_numpy(inside[s : s + chunk])
                d = torch.cdist(flat[block.to(flat.device)], flat[torch.from_numpy(outside).to(flat.device)])
                v, idx = d.min(dim=1)
                r = int(torch.argmin(v))
                if float(v[r]) < best[0]:
                    best = (float(v[r]), int(inside[s + r]), int(outside[int(idx[r])]))
            a, b = best[1], best[2]
            pairs.add((min(a, b), max(a, b)))
        label = _components(n, pairs)
    return np.array(sorted(pairs), dtype=np.int64).reshape(-1, 2)


def _components(n: int, pairs: set[tuple[int, int]]) -> np.ndarray:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if not pairs:
        return np.arange(n)
    p = np.array(sorted(pairs), dtype=np.int64)
    graph = coo_matrix((np.ones(len(p)), (p[:, 0], p[:, 1])), shape=(n, n))
    return connected_components(graph, directed=False)[1]


def line_estimates(energy: Energy, x: torch.Tensor, pairs: np.ndarray, images: int, *, batch: int = 256,
                   progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Per pair, the highest energy on the straight segment between the two minima
    (:func:`landscape.mapping.paths.segment_max`); ``progress(n)`` after each batch of
    ``n`` pairs.

    Returns
    -------
    ndarray float64 [E]
        An estimate of the barrier from above: the highest point of a real path.
    """
    e = pairs.shape[0]
    out = np.empty(e, dtype=np.float64)
    for s in range(0, e, batch):
        p = torch.from_numpy(pairs[s : s + batch]).to(x.device)
        out[s : s + batch] = segment_max(energy, x[p[:, 0]], x[p[:, 1]], images).cpu().numpy()
        if progress is not None:
            progress(p.shape[0])
    return out


def neighbour_table(energy: Energy, x: torch.Tensor, pairs: np.ndarray, images: int,
                    progress: Callable[[int], None] | None = None) -> PairTable:
    """The neighbour pairs ``pairs`` (:func:`neighbour_pairs`) of the minima ``x`` with
    their straight-line estimates (``progress`` as in :func:`line_estimates`)."""
    e = pairs.shape[0]
    return PairTable(
        pairs=pairs,
        estimate=line_estimates(energy, x, pairs, images, progress=progress),
        refined=np.full(e, np.nan),
        alpha=np.full(e, np.nan),
        source=np.full(e, NEIGHBOUR, dtype=np.uint8),
    )


def add_records(table: PairTable, records: PairRecords, paths: dict[tuple[int, int], torch.Tensor]) -> PairTable:
    """The table with the pairs attraction-diffusion tried added or improved.

    A pair's estimate becomes the chain's peak where that is lower (and its ``alpha`` the
    chain's pull); its recorded path goes into ``paths`` (pair -> points, minimum ``i``
    first) for the string to start from. A pair whose estimate improves loses its
    refinement (it is refined again from the better start). Pairs no chain connected add
    nothing.
    """
    index = table.index()
    pairs = [tuple(p) for p in table.pairs.tolist()]
    est, ref, alp, src, sad = (list(table.estimate), list(table.refined), list(table.alpha), list(table.source),
                               list(table.saddle_point))
    for r, (i, j) in enumerate(records.pairs.tolist()):
        h = float(records.barrier[r])
        if not np.isfinite(h):
            continue
        key = (int(i), int(j))
        row = index.get(key)
        if row is None:
            index[key] = row = len(pairs)
            pairs.append(key)
            est.append(np.inf), ref.append(np.nan), alp.append(np.nan), src.append(0), sad.append(False)
        src[row] |= ATTRACTION
        if h < est[row]:
            est[row], alp[row] = h, float(records.alpha[r])
            if np.isfinite(ref[row]) and ref[row] > h:
                ref[row], sad[row] = np.nan, False
            if records.paths[r] is not None:
                paths[key] = records.paths[r]
    order = sorted(range(len(pairs)), key=lambda e: pairs[e])
    return PairTable(
        pairs=np.array([pairs[e] for e in order], dtype=np.int64).reshape(-1, 2),
        estimate=np.array([est[e] for e in order], dtype=np.float64),
        refined=np.array([ref[e] for e in order], dtype=np.float64),
        alpha=np.array([alp[e] for e in order], dtype=np.float64),
        source=np.array([src[e] for e in order], dtype=np.uint8),
        saddle_point=np.array([sad[e] for e in order], dtype=bool),
    )


#: Points per segment of a chain's path where :func:`close_estimates` looks for its top
#: (then a golden-section search): 32 find a ridge about 1/60 of the segment wide.
_CHECK_IMAGES = 32


def close_estimates(energy: Energy, minima_energy: np.ndarray, table: PairTable,
                    paths: Mapping[tuple[int, int], torch.Tensor], closed: set[tuple[int, int]]) -> tuple[int, int]:
    """Make every attraction-diffusion estimate the tree rests on the top of a continuous
    path: raise it, in place, to the highest energy on the polyline through the chain's
    recorded points (:func:`~landscape.mapping.paths.polyline_max`), where that is higher.

    A chain's estimate is its highest *sampled* point: a step over a narrow ridge leaves it
    below every path between the two minima, and a tree resting on it joins them too low.
    Only the pairs whose estimate the tree takes at the height where it joins their minima
    are checked (a few per merge, not every pair tried), again as the tree changes, each
    pair once (``closed`` keeps them across calls).

    Returns
    -------
    (checked, raised) : the estimates checked, and those that rose.
    """
    energy_ = np.asarray(minima_energy, dtype=np.float64)
    index = table.index()
    checked = raised = 0
    while True:
        joined = join_heights(energy_, table)
        with np.errstate(invalid="ignore"):
            rests = (~table.is_refined(energy_) & np.isfinite(table.alpha) & np.isfinite(table.estimate)
                     & (table.estimate <= joined + 1e-12 * np.abs(joined)))
        keys = [k for k in (tuple(int(v) for v in table.pairs[e]) for e in np.flatnonzero(rests))
                if k not in closed and k in paths]
        if not keys:
            return checked, raised
        tops = polyline_max(energy, [paths[k] for k in keys], images=_CHECK_IMAGES)
        for k, top in zip(keys, tops):
            closed.add(k)
            row = index[k]
            if top > table.estimate[row]:
                table.estimate[row] = top
                raised += 1
        checked += len(keys)


def join_heights(minima_energy: np.ndarray, table: PairTable) -> np.ndarray:
    """Per pair, the height at which the minimax tree over ``table.best(minima_energy)`` joins its two
    minima (never above the pair's own barrier; ``+inf`` where never joined).

    Cost: O(E log N) (the smaller group's pairs are checked at each merge).
    """
    n = int(np.shape(minima_energy)[0])
    best = table.best(minima_energy)
    tree = minimax_tree(minima_energy, table.pairs, best)
    incident: list[list[int]] = [[] for _ in range(n)]
    for e, (i, j) in enumerate(table.pairs.tolist()):
        incident[i].append(e)
        incident[j].append(e)
    group = np.arange(n)
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    out = np.full(len(table), np.inf)
    for k, (a, b, _, _) in enumerate(tree.linkage):
        a, b = int(a), int(b)
        small, large = (a, b) if len(members[a]) <= len(members[b]) else (b, a)
        h = float(tree.heights[k])
        for m in members[small]:
            for e in incident[m]:
                i, j = table.pairs[e]
                other = j if i == m else i
                if group[other] == large and out[e] == np.inf:
                    out[e] = h
        new = n + k
        merged = members.pop(small) + members.pop(large)
        group[merged] = new
        members[new] = merged
    return out


def refinement_rows(minima_energy: np.ndarray, table: PairTable, slack: float) -> list[int]:
    """Pairs not refined yet that should be: every neighbour pair, and every other pair
    whose estimate is within ``slack`` of the barrier height above the height ``h`` at
    which the current tree joins its minima (``estimate <= h + slack * (h - max(E_i, E_j))``):
    the tree's own edges and the near misses whose estimate may hide a lower saddle."""
    todo = ~np.isfinite(table.refined) & np.isfinite(table.estimate)
    if not todo.any():
        return []
    energy = np.asarray(minima_energy, dtype=np.float64)
    joined = join_heights(energy, table)
    floor = np.maximum(energy[table.pairs[:, 0]], energy[table.pairs[:, 1]])
    with np.errstate(invalid="ignore"):
        near = table.estimate <= joined + slack * np.maximum(joined - floor, 0.0) + 1e-12 * np.abs(joined)
    wanted = todo & (((table.source & NEIGHBOUR) > 0) | near)
    return [int(e) for e in np.flatnonzero(wanted)]


@dataclass
class Refinement:
    """What :func:`refine_pairs` found for the rows it refined."""

    rows: np.ndarray  # int64 [R]
    saddle: np.ndarray  # float64 [R], the refined barrier
    saddle_x: np.ndarray  # [R, *shape] float32, where the barrier is: the highest image, or the polyline's top between images
    paths: np.ndarray  # [R, K, *shape] float32, the relaxed strings
    saddle_point: np.ndarray  # bool [R], the refined barrier is a saddle point (PairTable.saddle_point)
    retried: int  # strings that ended above their start and were run again with more images
    stops: np.ndarray  # str [R], why the string behind each barrier stopped (PathResult.stop)

    def count_stops(self) -> dict[str, int]:
        """How many of the strings behind the barriers stopped for each reason (:data:`STOPS`)."""
        return {k: int(np.sum(self.stops == k)) for k in STOPS}

    def describe_stops(self, budget: str = "") -> str:
        """How the strings behind the barriers stopped, in words (for a progress note):
        e.g. ``"218 strings: 0 converged, 90 stopped moving, 128 at their budget"``."""
        n = len(self.stops)
        if not n:
            return "no strings"
        count = self.count_stops()
        parts = [f"{count['converged']} converged", f"{count['stalled']} stopped moving"]
        if count["budget"]:
            parts.append(f"{count['budget']} at their budget{budget}")
        if count["stuck"]:
            parts.append(f"{count['stuck']} stuck (every step shrank to nothing)")
        return f"{n} string{'' if n == 1 else 's'}: " + ", ".join(parts)


@dataclass
class RefineProgress:
    """:func:`refine_pairs` part-way, after a batch of strings: what its ``on_batch`` hands
    out to save, and what its ``resume_from`` continues from (to the very result of the
    uninterrupted run: the strings of a batch depend on that batch alone).

    ``phase`` 0 runs every row's string, 1 runs again (with twice the images) those of
    ``positions`` (indices into the rows) that ended too far above their estimate;
    ``done``: the positions of the phase run so far. The arrays, one entry per row: the
    barrier so far (NaN: none yet), whether it is a saddle point, the saddle image, the
    higher end's energy, why the string stopped (an index into :data:`STOPS`, -1: not
    run), and the relaxed string (None: not run).
    """

    phase: int
    done: int
    positions: list[int]
    saddle: np.ndarray
    at_saddle: np.ndarray
    saddle_x: np.ndarray
    floor: np.ndarray
    stops: np.ndarray
    paths: list[np.ndarray | None]


def _check_refine_progress(saved: RefineProgress, m: int, shape: tuple[int, ...]) -> None:
    """Refuse (one line) refinement progress that does not fit ``m`` rows of ``shape``."""
    positions = list(saved.positions)
    ok = (saved.phase in (0, 1) and 0 <= saved.done <= (len(positions) if saved.phase else m)
          and all(0 <= q < m for q in positions) and len(set(positions)) == len(positions)
          and (saved.phase == 1) == bool(positions)
          and all(np.shape(a) == (m,) for a in (saved.saddle, saved.at_saddle, saved.floor, saved.stops))
          and np.shape(saved.saddle_x) == (m, *shape) and len(saved.paths) == m
          and all(-1 <= int(k) < len(STOPS) for k in saved.stops)
          and all(p is None or (np.ndim(p) == 1 + len(shape) and np.shape(p)[1:] == shape) for p in saved.paths))
    if not ok:
        raise LandscapeError("the saved progress of the string method does not fit these pairs")


#: Lanczos iterations of :func:`descent_across` (per string top, batched).
ACROSS_ITERATIONS = 12
#: A top is an upper bound, not a saddle, where the energy falls across the path at least
#: this share as fast as along it (curvature across / curvature along).
ACROSS_SHARE = 0.25


def descent_across(energy: Energy, tops: torch.Tensor, tangents: torch.Tensor) -> torch.Tensor:
    """Per string top (``tops`` [m, *shape]; ``tangents`` the path's direction there), the
    unit direction across the path in which the energy falls (NaN rows where it does not).

    A converged string's top is a stationary point where the energy falls along the path
    both ways; at a saddle it rises in every direction across it. Where it falls across the
    path too, at least :data:`ACROSS_SHARE` as fast, the top is a maximum of higher index
    (a hat's top, which a string started on a line of symmetry does not leave), and the
    pass lies to the side: the lowest curvature across the path, by Lanczos on Hessian-vector
    products of the path's normal space (:data:`ACROSS_ITERATIONS`, a fixed start, so the
    same tops give the same directions). Energies without second derivatives (kinks) have
    none: no row is flagged.
    """
    from landscape.mapping.settings import hessian_vector, lowest_curvature

    m = tops.shape[0]
    out = torch.full((m, *tops.shape[1:]), math.nan, dtype=tops.dtype, device=tops.device)
    d = tops[0].numel() if m else 0
    if m == 0 or d < 2:
        return out
    t = tangents.reshape(m, -1).to(tops)
    t = t / torch.linalg.vector_norm(t, dim=1, keepdim=True).clamp_min(torch.finfo(t.dtype).tiny)

    def across(v: torch.Tensor) -> torch.Tensor:
        return v - t * (t * v).sum(1, keepdim=True)

    try:
        along = (hessian_vector(energy, tops, t.reshape(tops.shape)).reshape(m, -1).to(t) * t).sum(1)
        lowest, direction, _ = lowest_curvature(energy, tops, ACROSS_ITERATIONS, project=across)
    except NotImplementedError:
        return out
    flagged = (along.double() < 0) & (lowest < ACROSS_SHARE * along.double()) & torch.isfinite(lowest)
    out[flagged] = direction[flagged].to(out).reshape(-1, *tops.shape[1:])
    return out


#: Lanczos steps from the gradient in :func:`stationary_within` (all of them in fewer dimensions).
NEWTON_ITERATIONS = 8


def stationary_within(energy: Energy, points: torch.Tensor, tolerance: np.ndarray) -> np.ndarray | None:
    """Per point (``points`` [m, *shape]), whether the gradient vanishes there to within
    what moves the energy by at most ``tolerance`` [m] (energy units): the energy a Newton
    step to the nearest stationary point would change, ``g^T |H|^-1 g / 2``, estimated by
    Lanczos on exact Hessian-vector products from ``g`` (:data:`NEWTON_ITERATIONS`; exact in
    as many dimensions or fewer).

    A test in the energy's own terms, whatever its scale and the stiffness of its
    directions: a gradient left by rounding in a stiff direction (curvature 1e4 times the
    soft one's) moves the energy by nothing, where against a gradient scale taken along a
    path it looked large; and a small gradient on an exponentially flat tail, where the
    curvature is as small, is no stationary point. Where the curvature is 0 (a
    piecewise-linear network) only a vanishing gradient passes. None where the energy has
    no second derivatives."""
    from landscape.mapping.settings import hessian_operator, lanczos

    m = points.shape[0]
    if m == 0:
        return np.zeros(0, dtype=bool)
    x = points.detach()
    _, g = energy.value_and_grad_fn()(x)
    g = g.detach().reshape(m, -1).double()
    norm = torch.linalg.vector_norm(g, dim=1)
    try:
        apply = hessian_operator(energy, x)
        _, tri = lanczos(lambda v: apply(v.reshape(x.shape).to(x)).reshape(m, -1).double(), g,
                         min(NEWTON_ITERATIONS, g.shape[1]))
    except NotImplementedError:
        return None
    theta, vectors = (t.cpu().numpy() for t in torch.linalg.eigh(tri))
    weight = vectors[:, 0, :] ** 2  # (the gradient's share along each Ritz direction)
    size = norm.cpu().numpy()
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        share = np.nan_to_num(np.where(weight > 0, weight / np.abs(theta), 0.0), nan=np.inf).sum(1)
        gain = np.where(size == 0, 0.0, 0.5 * size**2 * share)
    return np.nan_to_num(gain, nan=np.inf) <= np.asarray(tolerance, dtype=np.float64)


def _rounding(value: Any, floor: Any) -> Any:
    """How far an energy ``value`` above ``floor`` (a barrier above its higher minimum) may
    be off and count the same: 0.1 % of the barrier's height, and float32's rounding of the
    value (numbers or arrays)."""
    return 1e-3 * np.maximum(np.asarray(value) - floor, 0.0) + 1e-6 * np.abs(value)


#: Descent steps across the path in :func:`_chords`.
CHORD_STEPS = 100


def _chords(energy: Energy, candidates: list[tuple[torch.Tensor, np.ndarray, int, float, torch.Tensor, float]]
            ) -> np.ndarray:
    """Per candidate ``(path, energies, k, top, point, end)``, a segment ``k`` of a string
    (``path`` [K, *shape] and its images' ``energies``) whose top ``top`` at ``point`` rises
    above the string's highest image (``end``: the higher end's energy): whether that rise
    is only the chord of a curved valley, not a ridge narrower than the images' spacing.
    The top descends across the path (gradient descent in the hyperplane normal to its
    segment, :data:`CHORD_STEPS` steps with backtracking, at most the segment's length
    away, in the box): on a valley's chord it falls to the valley's floor, no higher than
    the segment's two images (a ring of equal minima: the chords inside the ring stood
    1e-11 to 6e-9 above it, barriers that set the attraction-diffusion temperature 1e6
    times too low); on a ridge it slides along the crest and stays above them.

    Where it fell, the path from the one image through the point it fell to on to the
    other must then rise above them by at most half as much as the chord did (on a
    valley's floor the two shorter chords rise far less): an oblique ridge lets the top
    fall off the crest into a well on one side, and the way on from there crosses the
    ridge again, as high."""
    out = np.zeros(len(candidates), dtype=bool)
    if not candidates:
        return out
    starts, normals, reach, ceiling, ends_k = [], [], [], [], []
    for path, u_img, k, top, point, end in candidates:
        path = path.detach().reshape(path.shape[0], -1).double().cpu()
        ends_k.append((path[k], path[k + 1]))
        t = path[k + 1] - path[k]
        starts.append(point.reshape(-1).double())
        normals.append(t / torch.linalg.vector_norm(t).clamp_min(torch.finfo(t.dtype).tiny))
        reach.append(float(torch.linalg.vector_norm(t)))
        ceiling.append(max(float(u_img[k]), float(u_img[k + 1])) + _rounding(top, end))
    shape = tuple(energy.shape)
    vg = energy.value_and_grad_fn()
    start = torch.stack(starts).to(energy.device, energy.dtype)
    t = torch.stack(normals).to(start)
    reach_t = torch.tensor(reach, dtype=start.dtype, device=start.device)
    low, high = energy.data_range if energy.data_range is not None else (-math.inf, math.inf)

    def evaluate(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, g = vg(z.reshape(-1, *shape))
        g = g.detach().reshape(z.shape[0], -1)
        return u.detach().reshape(-1), g - t * (g * t).sum(1, keepdim=True)

    x = start.clone()
    u, g = evaluate(x)
    step = 0.25 * reach_t / torch.linalg.vector_norm(g, dim=1).clamp_min(torch.finfo(x.dtype).tiny)
    for _ in range(CHORD_STEPS):
        move = x - step[:, None] * g - start
        move = move - t * (move * t).sum(1, keepdim=True)  # (across the path only)
        size = torch.linalg.vector_norm(move, dim=1, keepdim=True)
        z = (start + move * torch.clamp(reach_t[:, None] / size.clamp_min(torch.finfo(x.dtype).tiny), max=1.0))
        z = z.clamp(low, high)
        u_new, g_new = evaluate(z)
        better = torch.isfinite(u_new) & (u_new < u)
        x = torch.where(better[:, None], z, x)
        u = torch.where(better, u_new, u)
        g = torch.where(better[:, None], g_new, g)
        step = torch.where(better, step * 1.5, step * 0.5)
    fell = u.double().cpu().numpy() <= np.array(ceiling)
    if fell.any():
        at = np.flatnonzero(fell)
        a = torch.stack([ends_k[j][0] for j in at]).to(x).reshape(-1, *shape)
        b = torch.stack([ends_k[j][1] for j in at]).to(x).reshape(-1, *shape)
        via = x[torch.from_numpy(at).to(x.device)].reshape(-1, *shape)
        ways = torch.maximum(segment_max(energy, a, via), segment_max(energy, via, b)).cpu().numpy()
        top = np.array([candidates[j][3] for j in at])
        roof = np.array(ceiling)[at]
        fell[at] = ways - roof <= 0.5 * (top - roof)
    out[fell] = True
    return out


def _string_barriers(energy: Energy, results: list[Any], seg_tops: list[np.ndarray], seg_where: list[np.ndarray],
                     ends: np.ndarray) -> tuple[np.ndarray, list[torch.Tensor]]:
    """Per relaxed string, its barrier and where it is: the top of its polyline, a path
    between the two minima that bounds the barrier from above (``seg_tops``, ``seg_where``
    from :func:`~landscape.mapping.paths.segment_tops`). For a string that did not
    converge that top may lie between its images. For one that converged it is its
    climbing image's saddle, unless the path crosses a higher pass between two images:
    a ridge narrower than their spacing, which only the polyline sees, or, on a string
    across many wells (its images a well apart or more), the passes of the other wells,
    the climbing image having converged on one of them. A segment's top counts beyond
    float32's rounding of the saddle and the minima (on the halves of the two segments beside the
    climbing image nearer to it beyond 0.1 % of the barrier, where a bend of the path
    lifts the polyline a little over it), unless it is the chord of a curved valley
    (:func:`_chords`)."""
    value = np.empty(len(results))
    where: list[torch.Tensor] = []
    candidates, owner = [], []
    for i, res in enumerate(results):
        tops = seg_tops[i]
        if not res.converged or not tops.size:
            continue
        highest = res.saddle_energy
        # (the nearer half of the two segments beside the climbing image)
        beside = np.zeros(tops.size, dtype=bool)
        c = res.saddle_index
        if 0 < c <= tops.size:
            beside[c - 1] = seg_where[i][c - 1] >= 0.5
        if c < tops.size:
            beside[c] = seg_where[i][c] <= 0.5
        slack = np.where(beside, _rounding(highest, ends[i]), 1e-6 * max(abs(highest), abs(ends[i])))
        for k in np.flatnonzero(tops > highest + slack):
            candidates.append((res.path, res.energy, int(k), float(tops[k]),
                               point_on(res.path, int(k), float(seg_where[i][k])), float(ends[i])))
            owner.append(i)
    chord = _chords(energy, candidates)
    passes: dict[int, tuple[float, torch.Tensor]] = {}
    for (_, _, _, top, point, _), i, is_chord in zip(candidates, owner, chord):
        if not is_chord and (i not in passes or top > passes[i][0]):
            passes[i] = (top, point)
    for i, res in enumerate(results):
        tops = seg_tops[i]
        if not res.converged and tops.size and float(tops.max()) > res.saddle_energy:
            k = int(tops.argmax())
            passes[i] = (float(tops[k]), point_on(res.path, k, float(seg_where[i][k])))
        top, point = passes.get(i, (-math.inf, None))
        value[i] = max(res.saddle_energy, top)
        # where the barrier is: the top of the polyline where that set it (between images)
        where.append(point if top > res.saddle_energy else res.path[res.saddle_index])
    return value, where


def _tangent_at(path: torch.Tensor, k: int) -> torch.Tensor:
    """The direction of ``path`` [K, *shape] at its image ``k``."""
    return path[min(k + 1, path.shape[0] - 1)] - path[max(k - 1, 0)]


def _nudged(path: np.ndarray, top: int, direction: np.ndarray,
            box: tuple[float, float] | None = None) -> np.ndarray:
    """``path`` pushed off a higher-index top along ``direction`` by a quarter of its ends'
    distance at the top, tapering to nothing at its ends (a string's start beside it),
    kept in the ``box``."""
    flat = path.reshape(path.shape[0], -1)
    steps = np.linalg.norm(np.diff(flat, axis=0), axis=1)
    s = np.concatenate([[0.0], np.cumsum(steps)])
    s = s / s[-1] if s[-1] > 0 else np.linspace(0.0, 1.0, path.shape[0])
    at = float(np.clip(s[top], 1e-3, 1 - 1e-3))
    bump = np.where(s <= at, np.sin(0.5 * np.pi * s / at), np.sin(0.5 * np.pi * (1 - s) / (1 - at)))
    amplitude = 0.25 * float(np.linalg.norm(flat[-1] - flat[0]))
    out = path + (amplitude * bump).reshape(-1, *([1] * (path.ndim - 1))) * direction[None]
    return out if box is None else np.clip(out, box[0], box[1])


def refine_pairs(
    energy: Energy,
    x: torch.Tensor,
    table: PairTable,
    rows: list[int],
    *,
    paths: Mapping[tuple[int, int], torch.Tensor] | None = None,
    images: int = 24,
    steps: int = 400,
    climb_steps: int | None = None,
    batch: int = 256,
    max_images: int | None = None,
    progress: Callable[[int], None] | None = None,
    detail: Callable[[str], None] | None = None,
    on_batch: Callable[[Callable[[], RefineProgress]], None] | None = None,
    resume_from: RefineProgress | None = None,
) -> Refinement:
    """Refine the barriers of ``rows`` of the table with the string method, in batches.

    Each string starts on the pair's recorded attraction-diffusion path where ``paths``
    has one (resampled to as many images as the record has points, up to ``max_images``
    [default: ``images``]), else on the segment. A string that ends too far above the estimate it started from (see
    :meth:`PairTable.is_refined`) is run again with twice the images; so is one whose top
    is a maximum of higher index, the energy falling across the path too
    (:func:`descent_across`: no saddle, an upper bound), started again beside it; the lower
    of the two barriers counts. A string that converged gives its climbing image's energy (the
    saddle); one that did not (a network's kinks, or its budget ran out) gives the highest
    energy on its polyline (:func:`~landscape.mapping.paths.polyline_max`), which may lie
    between its images: either way the barrier of a real path between the two minima.

    ``progress`` is called with the number of pairs of each batch done (once per pair:
    the strings run again are told by ``detail`` alone), ``detail`` with a line on the
    batch under way (iterations, strings still relaxing) as it relaxes.
    ``on_batch`` is called after each batch with a function returning the
    :class:`RefineProgress` (the caller decides when it is worth saving: a batch of image
    strings can run for a minute), and ``resume_from`` continues from one (the same rows
    and settings) to the uninterrupted result.

    Returns
    -------
    Refinement
        Results in the order of ``rows`` (the caller writes them into the table).

    Raises
    ------
    NonFiniteEnergyError
        From the string method.

    ``steps`` and ``climb_steps`` are the iteration budgets of the string and the
    climbing phase (default: ``steps``; 0: no climbing).

    Cost: per batch of ``batch`` strings, at most ``steps + climb_steps`` iterations of two batched
    calls of ``batch * (images - 2)`` points, and for the strings that did not converge
    about 30 evaluations per segment of their polylines.
    """
    paths = paths or {}
    climb = steps if climb_steps is None else int(climb_steps)
    rows = [int(r) for r in rows]
    m = len(rows)
    shape = tuple(energy.shape)
    saddle = np.full(m, np.nan)
    at_saddle = np.zeros(m, dtype=bool)
    kept = np.float64 if x.dtype == torch.float64 else np.float32  # (points kept as the map keeps them)
    saddle_x = np.full((m, *shape), np.nan, dtype=kept)
    out_paths: list[np.ndarray | None] = [None] * m
    stops = np.full(m, "", dtype=object)
    floor = np.full(m, np.nan)
    retried = 0
    if resume_from is not None:
        _check_refine_progress(resume_from, m, shape)
        if progress is not None:  # (the strings run before)
            progress(m if resume_from.phase else resume_from.done)
        saddle, at_saddle, saddle_x, floor = (np.array(a, dtype=d) for a, d in (
            (resume_from.saddle, np.float64), (resume_from.at_saddle, bool), (resume_from.saddle_x, kept),
            (resume_from.floor, np.float64)))
        stops = np.array([STOPS[k] if k >= 0 else "" for k in resume_from.stops], dtype=object)
        out_paths = [None if p is None else np.asarray(p, dtype=kept) for p in resume_from.paths]

    def run(positions: list[int], k_images: int, phase: int, start: int = 0) -> None:
        n_batches = -(-len(positions) // batch)
        for s in range(start, len(positions), batch):
            chunk = positions[s : s + batch]
            on_iteration = on_compile = None
            if detail is not None:
                head = f"batch {s // batch + 1}/{n_batches}: " if n_batches > 1 else ""
                head += f"again with {k_images} images: " if k_images != images else ""
                total, limit = len(chunk), steps + climb

                def on_iteration(done: int, moving: int) -> None:
                    detail(f"{head}{moving:,}/{total:,} strings relaxing, iteration {done:,}/{limit:,}")

                def on_compile() -> None:
                    detail(f"{head}compiling the string method's step (once: 10-60 s)")
            pr = table.pairs[[rows[q] for q in chunk]]
            a, b = x[torch.from_numpy(pr[:, 0]).to(x.device)], x[torch.from_numpy(pr[:, 1]).to(x.device)]
            init = [starts[q] if q in starts else paths.get((int(i), int(j))) for q, (i, j) in zip(chunk, pr)]
            init = [None if p is None else p[1:-1] for p in init]  # the record holds both ends
            k = min(max([k_images] + [p.shape[0] + 2 for p in init if p is not None]),
                    max(images if max_images is None else max_images, k_images))
            results = string_method_batch(energy, a, b, init=init if any(p is not None for p in init) else None,
                                          images=k, steps=steps, climb=climb > 0, climb_steps=climb,
                                          box=energy.data_range, on_iteration=on_iteration, on_compile=on_compile)
            # (the top of the polyline, a path between the two minima: see _string_barriers)
            seg_tops, seg_where = segment_tops(energy, [res.path for res in results], points=len(chunk) * k)
            ends = np.array([max(float(res.energy[0]), float(res.energy[-1])) for res in results])
            value, where = _string_barriers(energy, results, seg_tops, seg_where, ends)
            # A saddle point: the gradient vanishes where the barrier is, to within what moves
            # the energy by 0.1 % of the barrier's height and float32's rounding
            # (:func:`stationary_within`). Where the energy has no second derivatives: a
            # converged string's top, or a highest image whose gradient is within the
            # string's tolerance, that is also the top of its polyline (within the same).
            # A barrier no higher than its higher end beyond the energy's precision (a flat
            # merge: minima of one floor, or a plateau's) is no saddle point, stationary or not.
            slack = _rounding(value, ends)
            still = stationary_within(energy, torch.stack(where), slack)
            if still is None:
                still = np.array([(res.converged or res.stationary) and value[i] <= res.saddle_energy + slack[i]
                                  for i, res in enumerate(results)], dtype=bool)
            still &= value - ends > flat_rtol(energy.dtype) * np.maximum(np.abs(value), np.abs(ends))
            for i, (q, res) in enumerate(zip(chunk, results)):
                floor[q] = ends[i]
                if np.isnan(saddle[q]) or value[i] < saddle[q]:
                    saddle[q] = value[i]
                    at_saddle[q] = bool(still[i])
                    stops[q] = res.stop
                    saddle_x[q] = where[i].detach().cpu().numpy()
                    out_paths[q] = res.path.detach().cpu().numpy().astype(kept)
            if progress is not None and phase == 0:
                progress(len(chunk))
            if on_batch is not None:
                on_batch(lambda done=s + len(chunk): RefineProgress(
                    phase, done, list(positions) if phase else [], saddle.copy(), at_saddle.copy(), saddle_x.copy(),
                    floor.copy(), np.array([STOPS.index(w) if w else -1 for w in stops], dtype=np.int64),
                    list(out_paths)))

    starts: dict[int, torch.Tensor] = {}  # (strings started again beside a higher-index top)

    def top_of(q: int) -> int:
        """The image of string ``q``'s saved path at its saved top."""
        return int(np.linalg.norm((out_paths[q] - saddle_x[q]).reshape(out_paths[q].shape[0], -1), axis=1).argmin())

    def across(qs: list[int]) -> dict[int, np.ndarray]:
        """Of the strings ``qs``, those whose top (its saddle_x on its path) has the energy
        falling across the path: the direction (:func:`descent_across`). From the saved
        arrays only, so a resumed run finds the same."""
        qs = [q for q in qs if out_paths[q] is not None and np.isfinite(saddle_x[q]).all()]
        if not qs:
            return {}
        found: dict[int, np.ndarray] = {}
        for c in range(0, len(qs), batch):
            part = qs[c : c + batch]
            tops, tangents = [], []
            for q in part:
                path, k = torch.from_numpy(np.asarray(out_paths[q])).to(x.device, x.dtype), top_of(q)
                tops.append(path[k])
                tangents.append(_tangent_at(path, k))
            directions = descent_across(energy, torch.stack(tops), torch.stack(tangents)).cpu().numpy()
            found.update({q: d for q, d in zip(part, directions) if np.isfinite(d).all()})
        return found

    phase, start = (0, 0) if resume_from is None else (resume_from.phase, resume_from.done)
    if phase == 0:
        run(list(range(m)), images, 0, start)
        estimate = table.estimate[rows] if m else np.zeros(0)
        estimate = np.maximum(estimate, floor)  # no barrier is below the higher minimum
        share = np.where(np.isfinite(table.alpha[rows]), CHAIN_SLACK, REFINED_SLACK) if m else np.zeros(0)
        slack = share * (estimate - floor) + 1e-6 * np.abs(estimate)
        above = [q for q in range(m) if saddle[q] > estimate[q] + slack[q]]
        # (a top of higher index is no saddle: an upper bound, tried again beside it; all the
        # strings tried again are looked at, so a resumed run's retries start where these did)
        higher = across(sorted(set(above) | {q for q in range(m) if at_saddle[q]}))
        for q in higher:
            at_saddle[q] = False
        above = sorted(set(above) | set(higher))
        start = 0
    else:
        above = list(resume_from.positions)
        higher = across(above)
    for q, direction in higher.items():
        top = top_of(q)
        sides = [_nudged(out_paths[q], top, sign * direction, energy.data_range) for sign in (1.0, -1.0)]
        with torch.no_grad():  # (towards the side where the energy falls faster: the lower pass, likelier)
            tops = torch.from_numpy(np.stack([p[top] for p in sides])).to(x.device, x.dtype)
            u = energy(tops).double().cpu().numpy()
        starts[q] = torch.from_numpy(sides[int(np.nanargmin(np.where(np.isfinite(u), u, np.inf)))]).to(
            x.device, x.dtype)
    if above:
        retried = len(above)
        run(above, 2 * images, 1, start)
        for q in across([q for q in above if at_saddle[q]]):
            at_saddle[q] = False
    k_max = max([p.shape[0] for p in out_paths if p is not None], default=images)
    stacked = np.full((m, k_max, *shape), np.nan, dtype=kept)
    for q, p in enumerate(out_paths):
        if p is not None:
            stacked[q, : p.shape[0]] = p
    return Refinement(np.asarray(rows, dtype=np.int64), saddle, saddle_x, stacked, at_saddle, retried, stops)
