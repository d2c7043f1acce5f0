"""The barrier tree (disconnectivity graph) over minima, and over basins of a partition.

A map holds minima ``0..N-1`` and, for the pairs whose barrier was estimated (neighbours
in space, and pairs attraction-diffusion connected), the barrier between them: the
highest energy on the best path found, refined to the saddle by the string method where
it was (``+inf`` where no path was found). The tree answers: at which energy do two
groups of minima become connected? That is single linkage over barriers: two groups
merge at the lowest possible *maximum* barrier along any chain of pairs between them (the
minimax path, which runs along the minimum spanning tree; Kruskal's algorithm with
networkx's ``UnionFind``). Building it from chains of neighbours rather than from direct
estimates between distant minima matters: a direct path between distant minima cuts
across high ground and overestimates badly.

Every minimum is a leaf, so saddles lower than any temperature resolves stay in the
tree (the chemists' disconnectivity graph). The same construction over the basins of an
attraction-diffusion partition (:func:`basin_tree`) gives that partition's coarse tree.

:class:`BarrierTree` stores the tree as a scipy linkage (``scipy.cluster.hierarchy``
format) whose heights are relative to the lowest leaf (``offset``), so scipy's own checks
(``is_valid_linkage``, ``dendrogram``, ``fcluster``) accept it as it is: row ``k`` merges
clusters ``Z[k, 0]`` and ``Z[k, 1]`` (leaves ``0..L-1``, the cluster made by row ``k`` is
``L + k``) at height ``Z[k, 2]``; ``Z[k, 3]`` counts its leaves. Groups with no finite
path between them are joined at the end at a placeholder height above everything and
flagged (``connected`` false).

An EBM's energy has an arbitrary offset, so reports give heights as differences too: the
barrier a leaf must climb to reach a lower one (:meth:`BarrierTree.escape`).

This module computes and prints; the tree is drawn by :func:`landscape.plots.tree.draw_tree`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import networkx as nx
import numpy as np
from networkx.utils import UnionFind
from scipy.cluster import hierarchy

#: Barriers below this share of the energy's magnitude are not resolved in float32 (about
#: 84 units in the last place; see :meth:`BarrierTree.flat`). Other precisions scale it by
#: their machine epsilon (:func:`flat_rtol`).
FLAT_RTOL = 1e-5


def flat_rtol(dtype: Any) -> float:
    """The share of the energy's magnitude below which a barrier is not resolved, for an
    energy computed in ``dtype`` (a torch or numpy floating dtype): :data:`FLAT_RTOL` in
    float32, as many units in the last place in other precisions (1.9e-14 in float64), so
    an energy offset that float64 resolves easily does not flatten its barriers."""
    import torch

    eps = torch.finfo(dtype).eps if isinstance(dtype, torch.dtype) else float(np.finfo(dtype).eps)
    return FLAT_RTOL * eps / float(np.finfo(np.float32).eps)


def unresolved(magnitude: Any, rtol: float, tie: float) -> Any:
    """The largest rise above a minimum that is no barrier: within ``rtol`` (:func:`flat_rtol`)
    of the energy's ``magnitude`` (a number or an array), or within ``tie``, the map's
    energy tie (:func:`~landscape.mapping.minima.energy_tie`), whichever is larger."""
    return np.maximum(rtol * magnitude, tie)


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class BarrierTree:
    """A single-linkage (minimax) tree over leaves: the minima of a map, or the basins of
    a partition.

    Attributes
    ----------
    leaves : ndarray int64 [L]
        Per leaf, its index into the map's minima (the minimum itself, or a basin's
        representative).
    energy : ndarray float64 [L]
        Leaf energies.
    linkage : ndarray float64 [L-1, 4]
        scipy linkage; column 2 is the merge height minus ``offset`` (never negative),
        column 3 the number of leaves in the merged cluster. Heights never decrease.
    offset : float
        The lowest leaf energy.
    barrier : ndarray float64 [L-1]
        Absolute barrier energy of each merge; ``+inf`` where not connected.
    connected : ndarray bool [L-1]
        False where the two sides had no finite path between them (their row sits at a
        placeholder height above everything).
    refined : ndarray bool [L-1]
        The merge's barrier is a refined (string-method) saddle, not an estimate.
    pair : ndarray int64 [L-1]
        Row of the pair table whose barrier made the merge (-1 where not connected).
    edge : ndarray int64 [L-1, 2]
        The two leaves of that pair (lower index first; -1 where not connected).
    flat_rtol : float
        Merges within this share of the energy's magnitude above their higher side are
        :meth:`flat` (:func:`flat_rtol` of the energy's precision; :data:`FLAT_RTOL`, float32's,
        by default).
    flat_atol : float
        Merges no higher than this above their higher side are :meth:`flat` whatever the
        energy's magnitude: the map's energy tie (:func:`~landscape.mapping.minima.energy_tie`,
        what its quenches' gradient tolerance leaves unresolved) [default 0: none].
    """

    leaves: np.ndarray
    energy: np.ndarray
    linkage: np.ndarray
    offset: float
    barrier: np.ndarray
    connected: np.ndarray
    refined: np.ndarray
    pair: np.ndarray
    edge: np.ndarray
    flat_rtol: float = FLAT_RTOL
    flat_atol: float = 0.0

    # ------------------------------------------------------------------ structure

    @property
    def n_leaves(self) -> int:
        return int(self.energy.shape[0])

    @property
    def root(self) -> int:
        """Node id of the root (leaf 0 itself when there is a single leaf)."""
        return 2 * self.n_leaves - 2

    @property
    def heights(self) -> np.ndarray:
        """Absolute height of every merge (the placeholder where not connected)."""
        return self.linkage[:, 2] + self.offset

    @property
    def top(self) -> float:
        """Absolute height of the placeholder rows (the highest row when all connect)."""
        return float(self.heights.max()) if self.n_leaves > 1 else float(self.energy.max())

    def children(self, node: int) -> tuple[int, int] | None:
        """The two children of a merge node, or None for a leaf."""
        n = self.n_leaves
        if node < n:
            return None
        row = self.linkage[node - n]
        return int(row[0]), int(row[1])

    def height(self, node: int) -> float:
        """Absolute energy of a node: a leaf's own energy or a merge's height."""
        n = self.n_leaves
        return float(self.energy[node]) if node < n else float(self.linkage[node - n, 2] + self.offset)

    @cached_property
    def lowest(self) -> np.ndarray:
        """For every node (leaves, then merges), its lowest leaf (energy, then index)."""
        n = self.n_leaves
        low = list(range(n))
        for a, b, _, _ in self.linkage:
            low.append(min(low[int(a)], low[int(b)], key=lambda i: (self.energy[i], i)))
        return np.array(low, dtype=np.int64)

    @cached_property
    def parent(self) -> dict[int, int]:
        n = self.n_leaves
        out: dict[int, int] = {}
        for k, (a, b, _, _) in enumerate(self.linkage):
            out[int(a)] = n + k
            out[int(b)] = n + k
        return out

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The tree as a networkx graph, edges from parent to child. Leaves carry
        ``kind="leaf"``, ``energy`` and ``minimum``; merges ``kind="merge"``, ``height``,
        ``connected``, ``refined``, ``count`` and ``lowest``."""
        g = nx.DiGraph()
        n = self.n_leaves
        for i in range(n):
            g.add_node(i, kind="leaf", energy=float(self.energy[i]), minimum=int(self.leaves[i]))
        for k, (a, b, _, count) in enumerate(self.linkage):
            g.add_node(n + k, kind="merge", height=self.height(n + k), connected=bool(self.connected[k]),
                       refined=bool(self.refined[k]), count=int(count), lowest=int(self.lowest[n + k]))
            g.add_edge(n + k, int(a))
            g.add_edge(n + k, int(b))
        return g

    # ------------------------------------------------------------------- queries

    def cut(self, height: float) -> np.ndarray:
        """Group leaves connected at or below the absolute energy ``height``.

        Returns
        -------
        ndarray int64 [L]
            Group label per leaf, numbered 0.. in order of each group's lowest leaf.
        """
        n = self.n_leaves
        if n == 1:
            return np.zeros(1, dtype=np.int64)
        raw = hierarchy.fcluster(self.linkage, t=height - self.offset, criterion="distance")
        first: dict[int, int] = {}
        for leaf in sorted(range(n), key=lambda i: (self.energy[i], i)):
            first.setdefault(int(raw[leaf]), len(first))
        return np.array([first[int(r)] for r in raw], dtype=np.int64)

    def escape(self) -> np.ndarray:
        """Per leaf, the barrier height it must climb to reach a lower leaf.

        Walking up from the leaf, the first merge that brings a lower leaf (lower energy,
        or equal energy and lower index) into its group sets the escape height; the result
        is that merge's height minus the leaf's own energy. Offset-free, unlike absolute
        barrier energies. ``inf`` for the lowest leaf and where that merge is not
        connected. Only a group's lowest leaf has not escaped yet, so each merge settles
        exactly one leaf: the lowest leaf of its higher side.

        Cost: O(L).
        """
        n = self.n_leaves
        out = np.full(n, np.inf)
        for k, higher in enumerate(self.settled()):
            if self.connected[k]:
                out[higher] = self.height(n + k) - self.energy[higher]
        return out

    def settled(self) -> np.ndarray:
        """Per merge, the leaf it settles (int64 [L-1]): the lowest leaf of its higher side
        (higher energy, or equal energy and higher index), which reaches a lower leaf there."""
        out = np.zeros(max(self.n_leaves - 1, 0), dtype=np.int64)
        for k, (a, b, _, _) in enumerate(self.linkage):
            la, lb = int(self.lowest[int(a)]), int(self.lowest[int(b)])
            out[k] = max(la, lb, key=lambda i: (self.energy[i], i))
        return out

    def flat(self, rtol: float | None = None) -> np.ndarray:
        """Per merge: connected with no barrier above its higher side's lowest leaf beyond
        ``rtol`` (default :attr:`flat_rtol`) of the energy's magnitude: the higher side
        drains into the lower with no barrier the energy's precision resolves (a quench
        that stopped on a gentle slope in float32, or minima of a flat valley). The
        magnitude is the merge's own or the largest of the leaves' energies, whichever is
        larger: the energy is computed to a precision set by its values across the map, so
        a merge near U = 0 resolves no finer than the rest (minima on the exponentially
        flat tails of a well, 1e-22 apart, are not barriers). Nor is a merge within
        :attr:`flat_atol`, the map's energy tie, of its higher side: where every minimum
        lies near U = 0 (a circle of minima at U = 0), the magnitude says nothing of how
        finely the quenches placed them, and string tops a hair off the valley floor would
        each count as a barrier."""
        depth = self.depth()
        with np.errstate(invalid="ignore"):
            return self.connected & (depth <= self.resolution(rtol))

    def resolution(self, rtol: float | None = None) -> np.ndarray:
        """Per merge, the largest rise the energy's precision does not resolve there
        (:func:`unresolved` of the merge's magnitude, as :meth:`flat` counts it)."""
        rtol = self.flat_rtol if rtol is None else rtol
        magnitude = np.abs(self.heights)
        if self.energy.size:
            magnitude = np.maximum(magnitude, float(np.abs(self.energy).max()))
        return unresolved(magnitude, rtol, self.flat_atol)

    def drained(self, rtol: float | None = None) -> np.ndarray:
        """Per leaf: it reaches a lower leaf over a :meth:`flat` merge (no barrier the
        energy's precision resolves): a point a quench left on a plateau or a well's tail."""
        out = np.zeros(self.n_leaves, dtype=bool)
        settled = self.settled()
        out[settled[self.flat(rtol)]] = True
        return out

    def drains_into(self, rtol: float | None = None) -> np.ndarray:
        """Per leaf, the leaf it drains into (int64 [L]; -1 where it does not drain): for a
        :meth:`drained` leaf, the end on the lower side of the pair whose barrier made the
        :meth:`flat` merge that settles it (the neighbour the energy falls to from it, no
        higher than it beyond the energy's precision). Following it from leaf to leaf
        never comes back: it leads into the lower side, and from there only further down
        or into a side merged later."""
        n = self.n_leaves
        out = np.full(n, -1, dtype=np.int64)
        flat, settled = self.flat(rtol), self.settled()
        sides = UnionFind(range(n))
        for k, (a, b, _, _) in enumerate(self.linkage):
            if flat[k]:
                u, v = (int(e) for e in self.edge[k])
                out[settled[k]] = v if sides[u] == sides[int(settled[k])] else u
            sides.union(int(self.lowest[int(a)]), int(self.lowest[int(b)]))
        return out

    def minima_drain_into(self, n: int, rtol: float | None = None) -> np.ndarray:
        """:meth:`drains_into` by minimum, for a tree whose leaves are minima of ``n``
        (int64 [n]: per minimum, the minimum it drains into; -1 where it does not drain, or
        is no leaf)."""
        out = np.full(n, -1, dtype=np.int64)
        into = self.drains_into(rtol)
        out[self.leaves] = np.where(into < 0, -1, self.leaves[np.maximum(into, 0)])
        return out

    def resolved_depth(self, rtol: float | None = None) -> np.ndarray:
        """:meth:`depth`, with 0 for the :meth:`flat` merges (no barrier the energy's
        precision resolves: a float32 rounding residue is no barrier to take a scale from)."""
        depth = self.depth()
        depth[self.flat(rtol)] = 0.0
        return depth

    def depth(self) -> np.ndarray:
        """Per merge, its height above the higher of its two sides' lowest leaves: the
        barrier the shallower side climbs (NaN where not connected)."""
        n = self.n_leaves
        out = np.full(n - 1, np.nan)
        for k, (a, b, _, _) in enumerate(self.linkage):
            if self.connected[k]:
                floor = max(self.energy[self.lowest[int(a)]], self.energy[self.lowest[int(b)]])
                out[k] = self.height(n + k) - floor
        return out


def drainage_ends(drains_into: np.ndarray) -> np.ndarray:
    """Per point, where its drainage ends: ``drains_into`` (per point, the point it drains
    into, -1 where none; :meth:`BarrierTree.drains_into`) followed from point to point to one
    that does not drain (the point itself where it does not). Int64, the same shape."""
    target = np.asarray(drains_into, dtype=np.int64)
    end = np.where(target < 0, np.arange(target.size), target)
    for _ in range(target.size.bit_length() + 1):  # (pointer jumping: drainage never comes back)
        onward = end[end]
        if np.array_equal(onward, end):
            break
        end = onward
    return end


# ---------------------------------------------------------------------- construction


def _check_inputs(
    energy: np.ndarray, pairs: np.ndarray, barrier: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    energy = np.asarray(energy, dtype=np.float64)
    if energy.ndim != 1 or energy.size == 0:
        raise ValueError(f"leaf energies must be a non-empty 1-D array, got shape {energy.shape}")
    if not np.isfinite(energy).all():
        raise ValueError("leaf energies must be finite")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    barrier = np.asarray(barrier, dtype=np.float64).reshape(-1)
    if barrier.shape[0] != pairs.shape[0]:
        raise ValueError(f"{pairs.shape[0]} pairs but {barrier.shape[0]} barriers")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= energy.size):
        raise ValueError(f"pair indices must lie in [0, {energy.size})")
    if np.isneginf(barrier).any():
        raise ValueError("a barrier of -inf is not meaningful")
    return energy, pairs, barrier


def _placeholder(finite_top: float, low: float) -> float:
    """Height of the rows that join groups with no path: above everything by a tenth of
    the energy span (scale-free: a scaled energy gets the scaled placeholder)."""
    span = finite_top - low
    if span > 0:
        return finite_top + 0.1 * span
    return finite_top + (0.1 * abs(finite_top) if finite_top != 0 else 1.0)  # a flat landscape: any height


def minimax_tree(
    energy: np.ndarray,
    pairs: np.ndarray,
    barrier: np.ndarray,
    *,
    refined: np.ndarray | None = None,
    leaves: np.ndarray | None = None,
    flat_rtol: float = FLAT_RTOL,
    flat_atol: float = 0.0,
    prefer: np.ndarray | None = None,
) -> BarrierTree:
    """Single-linkage tree over barriers (Kruskal with networkx's ``UnionFind``).

    Two groups merge at the lowest maximum barrier along any chain of pairs joining them.
    A barrier below the higher of its two leaves' energies is raised to it (any path
    between two minima passes through both). Groups with no finite connection merge
    last, lowest group first, at a placeholder height above everything, flagged not
    connected.

    Parameters
    ----------
    energy : array float64 [L]
        Leaf energies (any order; ties are broken by index).
    pairs : array int64 [E, 2]
        Leaf pairs with a barrier (any order; duplicates and both directions allowed:
        the lowest barrier counts; self-pairs are ignored).
    barrier : array float64 [E]
        ``+inf`` (or NaN) where no path was found.
    refined : array bool [E], optional
        Which barriers are refined saddles (carried to the merges they make).
    leaves : array int64 [L], optional
        The minimum each leaf stands for [default: ``0..L-1``].
    flat_rtol : float
        The tree's :attr:`BarrierTree.flat_rtol` (:func:`flat_rtol` of the energy's
        precision) [default: float32's].
    flat_atol : float
        The tree's :attr:`BarrierTree.flat_atol` (the map's energy tie) [default 0].
    prefer : array float64 [E], optional
        Among barriers tied within what the energy resolves (``flat_rtol`` of their
        magnitude, or ``flat_atol``), the pairs taken first, lowest first: the distance
        between the two minima, say, so that the tree of a symmetric energy (equal passes
        all round a ring of wells) merges neighbours at the passes between them, not two
        wells across the ring at a pass their path crosses on the way. A merge then lies
        at most that tie above one of its group it was taken before (its height never
        below the last merge's).

    Returns
    -------
    BarrierTree

    Raises
    ------
    ValueError
        On inconsistent inputs.

    Examples
    --------
    >>> t = minimax_tree(np.array([0.0, 1.0, 2.0]), np.array([[0, 1], [1, 2]]), np.array([3.0, 4.0]))
    >>> t.heights.tolist(), t.linkage[:, 2].tolist()
    ([3.0, 4.0], [3.0, 4.0])

    Cost: O(E log E) for the sort plus near-linear union-find.
    """
    energy, pairs, barrier = _check_inputs(energy, pairs, barrier)
    n = energy.size
    refined_in = np.zeros(pairs.shape[0], dtype=bool) if refined is None else np.asarray(refined, dtype=bool)
    if refined_in.shape != (pairs.shape[0],):
        raise ValueError(f"{pairs.shape[0]} pairs but {refined_in.shape} refined flags")
    leaves = np.arange(n, dtype=np.int64) if leaves is None else np.asarray(leaves, dtype=np.int64)
    if leaves.shape != (n,):
        raise ValueError(f"{leaves.shape[0]} leaf indices for {n} leaves")

    usable = np.isfinite(barrier) & (pairs[:, 0] != pairs[:, 1])
    rows = np.flatnonzero(usable)
    lo = np.minimum(pairs[rows, 0], pairs[rows, 1])
    hi = np.maximum(pairs[rows, 0], pairs[rows, 1])
    height = np.maximum(barrier[rows], np.maximum(energy[lo], energy[hi]))
    # Ties merge in a reproducible order: height, then the pair, then its row.
    order = np.lexsort((rows, hi, lo, height))
    if prefer is not None:
        rank = np.asarray(prefer, dtype=np.float64)
        if rank.shape != (pairs.shape[0],):
            raise ValueError(f"{pairs.shape[0]} pairs but {rank.shape} preferences")
        order = _preferred_within_ties(order, height, np.nan_to_num(rank[rows], nan=np.inf),
                                       float(np.abs(energy).max(initial=0.0)), flat_rtol, flat_atol)

    uf = UnionFind(range(n))
    cluster = {i: i for i in range(n)}  # union-find root -> linkage cluster id
    count = {i: 1 for i in range(n)}
    low = {i: i for i in range(n)}  # root -> lowest leaf of its group
    z: list[list[float]] = []
    heights: list[float] = []
    flags: list[tuple[bool, bool, int, int, int]] = []  # connected, refined, row, i, j

    def key(i: int) -> tuple[float, int]:
        return (float(energy[i]), i)

    def merge(ri: Any, rj: Any, h: float, flag: tuple[bool, bool, int, int, int]) -> None:
        a, c = sorted((cluster[ri], cluster[rj]))
        size = count[ri] + count[rj]
        lowest = min(low[ri], low[rj], key=key)
        uf.union(ri, rj)
        root = uf[ri]
        cluster[root], count[root], low[root] = n + len(z), size, lowest
        z.append([float(a), float(c), 0.0, float(size)])
        heights.append(h)
        flags.append(flag)

    for e in order.tolist():
        i, j = int(lo[e]), int(hi[e])
        ri, rj = uf[i], uf[j]
        if ri == rj:
            continue
        row = int(rows[e])
        # (a preferred pair taken before a tie a hair lower: the merges' heights stay in order)
        merge(ri, rj, max(float(height[e]), heights[-1] if heights else -math.inf),
              (True, bool(refined_in[row]), row, i, j))

    finite_top = max([float(energy.max())] + heights)
    top = _placeholder(finite_top, float(energy.min()))
    roots = sorted({uf[i] for i in range(n)}, key=lambda r: key(low[r]))
    for r in roots[1:]:
        merge(uf[roots[0]], r, top, (False, False, -1, -1, -1))

    offset = float(energy.min())
    linkage = np.array(z, dtype=np.float64).reshape(-1, 4)
    linkage[:, 2] = np.asarray(heights, dtype=np.float64) - offset
    linkage[:, 2] = np.maximum(linkage[:, 2], 0.0)  # rounding of h - offset
    if n > 1 and not hierarchy.is_valid_linkage(linkage):  # a bug here, not bad input
        raise AssertionError("minimax_tree built an invalid linkage matrix")
    conn = np.array([f[0] for f in flags], dtype=bool)
    return BarrierTree(
        leaves=leaves,
        energy=energy,
        linkage=linkage,
        offset=offset,
        barrier=np.where(conn, np.asarray(heights, dtype=np.float64), np.inf) if n > 1 else np.zeros(0),
        connected=conn,
        refined=np.array([f[1] for f in flags], dtype=bool),
        pair=np.array([f[2] for f in flags], dtype=np.int64),
        edge=np.array([[f[3], f[4]] for f in flags], dtype=np.int64).reshape(-1, 2),
        flat_rtol=float(flat_rtol),
        flat_atol=float(flat_atol),
    )


def _preferred_within_ties(order: np.ndarray, height: np.ndarray, rank: np.ndarray, magnitude: float,
                           rtol: float, atol: float) -> np.ndarray:
    """``order`` (ascending ``height``) with each run of heights that lie within what the
    energy resolves of the run's first (:func:`unresolved` at the larger of its height's
    and ``magnitude``) sorted by ``rank``, lowest first (stable)."""
    h = height[order]
    out = []
    start = 0
    while start < h.size:
        tie = float(unresolved(max(abs(float(h[start])), magnitude), rtol, atol))
        end = int(np.searchsorted(h, h[start] + tie, side="right"))
        run = order[start:end]
        out.append(run[np.argsort(rank[run], kind="stable")] if end - start > 1 else run)
        start = end
    return np.concatenate(out) if out else order


def basin_tree(
    minima_energy: np.ndarray,
    pairs: np.ndarray,
    barrier: np.ndarray,
    basin: np.ndarray,
    representative: np.ndarray,
    *,
    refined: np.ndarray | None = None,
    flat_rtol: float = FLAT_RTOL,
    flat_atol: float = 0.0,
    prefer: np.ndarray | None = None,
) -> BarrierTree:
    """The tree over the basins of a partition, from barriers between minima.

    Leaf ``b`` is basin ``b`` (its energy is its representative's); the barrier between
    two basins is the lowest barrier of any pair of their minima. Barriers inside a basin
    do not enter: a basin is one node, as in a coarse-grained disconnectivity graph.
    ``pair`` rows of the result index the given minima pairs.

    Parameters
    ----------
    minima_energy : array float64 [N]
    pairs : array int64 [E, 2]
        Minima pairs.
    barrier : array float64 [E]
    basin : array int64 [N]
        Basin of each minimum.
    representative : array int64 [B]
        Each basin's lowest minimum.
    refined : array bool [E], optional
    flat_rtol, flat_atol, prefer : float, float, array float64 [E]
        As for :func:`minimax_tree`.

    Returns
    -------
    BarrierTree
        With ``leaves = representative``.
    """
    basin = np.asarray(basin, dtype=np.int64)
    rep = np.asarray(representative, dtype=np.int64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    energy = np.asarray(minima_energy, dtype=np.float64)[rep]
    bp = basin[pairs] if pairs.size else pairs
    return minimax_tree(energy, bp, barrier, refined=refined, leaves=rep, flat_rtol=flat_rtol, flat_atol=flat_atol,
                        prefer=prefer)


def pair_lengths(x: Any, pairs: np.ndarray) -> np.ndarray:
    """The distance between the two minima of each pair (``x`` [N, ...], an array or a
    tensor): the ``prefer`` of :func:`minimax_tree`, so that ties merge the nearest."""
    flat = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=np.float64).reshape(len(x), -1)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    out = np.empty(pairs.shape[0])
    step = max(1, (1 << 22) // max(flat.shape[1], 1))  # (rows of differences at a time: 32 MB)
    for a in range(0, pairs.shape[0], step):
        p = pairs[a:a + step]
        out[a:a + step] = np.linalg.norm(flat[p[:, 0]] - flat[p[:, 1]], axis=1)
    return out


# ---------------------------------------------------------------------------- text


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.6g}"


def one_state(tree: BarrierTree) -> np.ndarray:
    """Per node (leaves, then merges: bool [2L-1]): every merge under it, itself included,
    is :meth:`~BarrierTree.flat`, so each of its leaves drains into a lower one, down to the
    group's lowest, with no barrier the energy's precision resolves: one state (a leaf is)."""
    n = tree.n_leaves
    out = np.ones(2 * n - 1, dtype=bool)
    flat = tree.flat()
    for k, (a, b, _, _) in enumerate(tree.linkage):
        out[n + k] = bool(flat[k]) and out[int(a)] and out[int(b)]
    return out


def state_counts(tree: BarrierTree) -> np.ndarray:
    """Per node (leaves, then merges: int64 [2L-1]): its leaves that are states of their
    own, that do not drain into a lower leaf with no barrier (:meth:`~BarrierTree.drained`).
    A node of none is :func:`one_state`, all of it draining out through its lowest."""
    n = tree.n_leaves
    out = np.zeros(2 * n - 1, dtype=np.int64)
    out[:n] = ~tree.drained()
    for k, (a, b, _, _) in enumerate(tree.linkage):
        out[n + k] = out[int(a)] + out[int(b)]
    return out


def display_nodes(tree: BarrierTree, max_leaves: int, fold_flat: bool = False) -> set[int]:
    """Nodes shown as leaves: every leaf where they fit in ``max_leaves`` (and not
    ``fold_flat``); else a group of minima that is :func:`one_state` stays one node (points a
    quench left along a plateau or a well's tail are not barriers worth a line each), and
    the other merges open, highest first, until ``max_leaves`` of the nodes shown hold a
    state (:func:`state_counts`): a group that only drains into the others costs nothing,
    so a plateau's points joining a well at the top of the tree do not fold the wells."""
    n = tree.n_leaves
    if n <= max_leaves and not fold_flat:
        return set(range(n))
    single = one_state(tree)
    states = state_counts(tree)
    shown = {tree.root}
    held = int(states[tree.root] > 0)  # shown nodes that hold a state
    while held < max_leaves:
        merges = [m for m in shown if m >= n and not single[m]]
        if not merges:
            break
        highest = max(merges, key=lambda m: (tree.linkage[m - n, 2], m))
        shown.remove(highest)
        kids = tree.children(highest)
        shown.update(kids)  # type: ignore[arg-type]
        held += sum(int(states[c] > 0) for c in kids) - int(states[highest] > 0)  # type: ignore[union-attr]
    return shown


def folded_words(tree: BarrierTree, shown: set[int], plural: str = "minima", verb: str = "folded to",
                 lines: int | None = None) -> str:
    """What :func:`display_nodes` folded, in words: "lowest merges folded to 12 groups"
    where no minima that drain with no barrier are folded, else e.g. "folded to 9 lines: 5
    groups of minima that drain with no barrier, 2 under the lowest merges" (``lines``: how
    many lines the shown nodes take, fewer where runs of minima draining into one group
    share one; default one each); "" where nothing is folded."""
    n = tree.n_leaves
    groups = [m for m in shown if m >= n]
    merged = 0 if lines is None else len(shown) - lines
    if not groups and not merged:
        return ""
    count, unit = (len(shown), "group") if not merged else (lines, "line")
    counted = f"{count} {unit}{'s' if count != 1 else ''}"
    single = one_state(tree)
    drained = sum(1 for m in groups if single[m])
    rest = len(groups) - drained
    if not drained and not merged:
        return f"lowest merges {verb} {counted}"
    parts = ([f"{drained} group{'s' if drained != 1 else ''} of {plural} that drain with no barrier"] if drained else
             [f"{plural} that drain with no barrier listed together"])
    parts += [f"{rest} under the lowest merges"] if rest else []
    return f"{verb} {counted}: " + ", ".join(parts)


def members(tree: BarrierTree, node: int) -> list[int]:
    """The leaves under ``node``."""
    stack, out = [node], []
    while stack:
        m = stack.pop()
        kids = tree.children(m)
        if kids is None:
            out.append(m)
        else:
            stack.extend(kids)
    return out


def render_text(
    tree: BarrierTree,
    sizes: Sequence[int] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    *,
    name: str = "minimum",
    max_leaves: int = 50,
) -> str:
    """The tree as text for a terminal, read from the bottom up: a group of leaves is its
    lowest leaf, then, in order of height, each merge that joins something to it and what
    it joins: a leaf on the same line, a group below it, indented, in the same way.

    Landscapes are often one deep funnel that the other minima join one by one; read from
    the bottom up such a tree stays at one indentation however many minima join it, where
    a tree drawn from its root nests each merge one level deeper than the last.

    Each merge line gives its absolute barrier energy and the barrier height above the
    lowest leaf of each side ("flat" where the higher side drains into the lower with no
    barrier the energy's precision resolves; "refined" for a string-method saddle); each leaf line
    its energy, and its size and label when given. Beyond ``max_leaves`` leaves a group of
    minima that drain into their lowest with no barrier (:func:`one_state`) is one line, and
    the lowest of the other merges are folded too: a folded group shows its leaf count, the
    height below which it is all connected, and its lowest leaf; and consecutive merges that
    each join a minimum (or such a group) draining into the group with no barrier are one
    line, listing them. Folded, at most ``max_leaves`` of the lines hold a state of their
    own (:func:`display_nodes`).

    Parameters
    ----------
    tree : BarrierTree
    sizes : array int [L], optional
        E.g. chains per minimum, or minima per basin.
    labels : sequence of str [L], optional
    name : str
        What a leaf is ("minimum", "basin").
    max_leaves : int
        At most this many lines for leaves or folded groups.

    Returns
    -------
    str
        Lines joined by newlines, no trailing newline.

    Examples
    --------
    >>> t = minimax_tree(np.array([0.0, 1.0, 2.0, 3.0]), np.array([[0, 1], [1, 2], [2, 3]]),
    ...                  np.array([5.0, 4.0, 6.0]))
    >>> print(render_text(t))
    barrier tree: 4 minima, energies 0 .. 3; 0 of 3 merges at refined barriers
    minimum 0  E=0
    |-- merge at 5  (+5 above minimum 0, +4 above minimum 1) with 2 minima:
    |   minimum 1  E=1
    |   `-- merge at 4  (+3 above minimum 1, +2 above minimum 2) with minimum 2  E=2
    `-- merge at 6  (+6 above minimum 0, +3 above minimum 3) with minimum 3  E=3
    """
    n = tree.n_leaves
    energy = tree.energy
    size_arr = None if sizes is None else np.asarray(sizes)
    shown = display_nodes(tree, max(1, max_leaves))
    plural = "minima" if name == "minimum" else name + "s"

    def leaf_text(i: int) -> str:
        parts = [f"{name} {i}  E={_fmt(energy[i])}"]
        if size_arr is not None:
            parts.append(f"size {int(size_arr[i])}")
        if labels is not None:
            parts.append(str(labels[i]))
        return "  ".join(parts)

    def ordered(kids: tuple[int, int]) -> list[int]:
        return sorted(kids, key=lambda k: (energy[int(tree.lowest[k])], int(tree.lowest[k])))

    def whole(node: int) -> bool:
        """Shown on one line: a leaf, or a folded group."""
        return node < n or node in shown

    def whole_text(node: int) -> str:
        if node < n:
            return leaf_text(node)
        k = node - n
        low = int(tree.lowest[node])
        reach = (f"connected at or below {_fmt(tree.height(node))}" if tree.connected[k]
                 else "not all connected (no path found between some of them)")
        count = int(tree.linkage[k, 3])
        text = f"[{count} {plural if count != 1 else name} {reach}; lowest: {name} {low} E={_fmt(energy[low])}"
        if single[node]:
            text += ", the others draining into it with no barrier"
        if size_arr is not None:
            text += f", total size {int(size_arr[members(tree, node)].sum())}"
        return text + "]"

    def merge_text(node: int) -> str:
        k = node - n
        height = tree.height(node)
        kids = ordered(tree.children(node))  # type: ignore[arg-type]
        if not tree.connected[k]:
            return f"no path found to the group of {name} {int(tree.lowest[kids[1]])} (drawn at {_fmt(height)}):"
        # (a rise the energy does not resolve is a rounding residue, not a barrier: said so,
        # not printed as +9.5e-07; the higher side's where the merge is flat, the lower's too
        # where its own rise is as small)
        above = [f"flat above {name} {int(tree.lowest[c])}" if flat_above(node, c)
                 else f"+{_fmt(height - energy[int(tree.lowest[c])])} above {name} {int(tree.lowest[c])}" for c in kids]
        return f"merge at {_fmt(height)}{' refined' if tree.refined[k] else ''}  ({', '.join(above)}) with"

    flat, tol = tree.flat(), tree.resolution()
    single = one_state(tree)
    folded = n > max_leaves  # (all may show: the minima that drain cost no line of the budget)

    def flat_above(m: int, side: int) -> bool:
        """Merge ``m`` is flat and no higher than the energy resolves above ``side``'s lowest leaf."""
        k = m - n
        return bool(flat[k]) and tree.height(m) - energy[int(tree.lowest[side])] <= tol[k]

    def drains(m: int) -> bool:
        """Merge ``m`` joins a leaf or folded group of one state that drains into the other side."""
        other = ordered(tree.children(m))[1]  # type: ignore[arg-type]
        return whole(other) and bool(single[other]) and flat_above(m, other)

    def runs(merges: list[int]) -> list[list[int]]:
        """``merges`` (a spine, lowest first) in runs: consecutive draining ones together."""
        out: list[list[int]] = []
        for m in merges:
            if out and drains(m) and drains(out[-1][-1]):
                out[-1].append(m)
            else:
                out.append([m])
        return out

    def run_text(run: list[int]) -> str:
        others = [ordered(tree.children(m))[1] for m in run]  # type: ignore[arg-type]
        count = sum(1 if o < n else int(tree.linkage[o - n, 3]) for o in others)
        named = [str(int(tree.lowest[o])) + (f" (+{int(tree.linkage[o - n, 3]) - 1})" if o >= n else "")
                 for o in others]
        listed = ", ".join(named[:8]) + (f" and {len(named) - 8} more" if len(named) > 8 else "")
        plus = "; +k: as many more draining into the one named" if any(o >= n for o in others[:8]) else ""
        return (f"{len(run)} merges at {_fmt(tree.height(run[0]))} .. {_fmt(tree.height(run[-1]))} with {count} "
                f"{plural} that drain into this group with no barrier: {plural} {listed}{plus}")

    lines: list[str] = []
    merged = 0  # shown leaves and groups written on a run's line with others
    # An explicit stack (a tree may nest deeper than Python recurses): each entry a line
    # to write, or a group to write with its prefix.
    stack: list[tuple[str, int | str, str]] = [("group", tree.root, "")]
    while stack:
        kind, item, prefix = stack.pop()
        if kind == "line":
            lines.append(str(item))
            continue
        node = int(item)
        spine = []  # the merges from the group's top down to its lowest leaf (or folded group)
        while not whole(node):
            spine.append(node)
            node = ordered(tree.children(node))[0]  # type: ignore[arg-type]
        lines.append(prefix + whole_text(node))
        todo: list[tuple[str, int | str, str]] = []
        # Where the tree is folded, a run of merges each joining something that drains into
        # the group with no barrier is one line (points on a shelf above a well, say).
        entries = runs(list(reversed(spine))) if folded else [[m] for m in reversed(spine)]
        for j, run in enumerate(entries):  # lowest merge first
            last = j == len(entries) - 1
            branch, inner = ("`-- ", "    ") if last else ("|-- ", "|   ")
            m = run[0]
            other = ordered(tree.children(m))[1]  # type: ignore[arg-type]
            if len(run) > 1:
                todo.append(("line", f"{prefix}{branch}{run_text(run)}", ""))
                merged += len(run) - 1
            elif whole(other):
                todo.append(("line", f"{prefix}{branch}{merge_text(m)} {whole_text(other)}", ""))
            else:
                count = int(tree.linkage[other - n, 3])
                colon = ":" if tree.connected[m - n] else ""  # (a merge without a path ends in one)
                todo.append(("line", f"{prefix}{branch}{merge_text(m)} {count} {plural}{colon}", ""))
                todo.append(("group", other, prefix + inner))
        stack.extend(reversed(todo))
    n_disc = int((~tree.connected).sum())
    header = f"barrier tree: {n} {plural if n != 1 else name}, energies {_fmt(energy.min())} .. {_fmt(energy.max())}"
    if n > 1:
        header += f"; {int(tree.refined.sum())} of {n - 1} merges at refined barriers"
    if n_disc:
        header += f", {n_disc} not connected (no path found)"
    words = folded_words(tree, shown, plural, verb="folded to show", lines=len(shown) - merged)
    if words:
        header += "; " + words
    return "\n".join([header, *lines])
