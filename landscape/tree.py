"""The basin tree (disconnectivity graph) over barrier estimates.

Mapping gives basins ``0..B-1`` (sorted by energy, lowest first) and, for the pairs that
were tested, an estimate of the barrier between them: the highest energy on the best
connecting path found (``+inf`` where none was found). The tree answers: at which
energy do two groups of basins become connected? That is single linkage over barrier
estimates: two groups merge at the lowest possible *maximum* barrier along any chain of
tested pairs between them (the minimax path, which runs along the minimum spanning tree).
Building it from chains of neighbours rather than from raw pairwise estimates matters: a
direct trial between distant minima cuts across high ground and overestimates badly
(see DESIGN, "Basins: attraction-diffusion").

The tree is stored as a scipy linkage matrix (``scipy.cluster.hierarchy`` format): row
``k`` merges clusters ``Z[k, 0]`` and ``Z[k, 1]`` (basins are ``0..B-1``, the cluster made
by row ``k`` is ``B + k``) at the absolute energy ``Z[k, 2]``; ``Z[k, 3]`` counts its
basins. Groups with no finite path between them are joined at the end at a height above
everything and flagged ``disconnected``, because scipy needs finite heights.

Energies, hence heights, may be negative, but scipy's own checks (``fcluster``,
``dendrogram``, ``is_valid_linkage``) reject negative heights; hand them
:attr:`BasinTree.scipy_linkage`, whose heights are relative to the lowest basin
(``offset``), and shift cut heights by the same offset (as :meth:`BasinTree.cut` does).

Because an EBM's energy has an arbitrary offset, reports also give heights as
differences: the barrier a basin must climb to reach a lower one
(:func:`relative_barriers`), and the height of each merge above each side's lowest basin.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.cluster import hierarchy


@dataclass(frozen=True, eq=False)  # arrays and a graph: compare fields explicitly
class BasinTree:
    """A single-linkage (minimax) tree over basins.

    Attributes
    ----------
    linkage : ndarray float64 [B-1, 4]
        scipy linkage matrix; column 2 is the absolute barrier energy of the merge,
        column 3 the number of basins in the merged cluster. Heights never decrease.
    disconnected : ndarray bool [B-1]
        Per row: the two sides had no finite path between them; the row's height is the
        placeholder ``top``, not a barrier.
    top : float
        Height used for disconnected merges: above every basin energy and finite merge.
    mst_edges : list of (i, j, barrier)
        The tested pairs that made the finite merges, in merge order: the minimum spanning
        forest of the barrier graph. ``barrier`` is the merge height used (the estimate,
        raised to the higher of the two basins' energies if it was below it).
    merge_order : list of (i, j)
        Per linkage row, the pair of basins whose connection caused the merge; for a
        disconnected row, the lowest basins of the two sides.
    graph : networkx.DiGraph
        Edges point from parent to child. Leaves ``0..B-1`` carry ``kind="basin"`` and
        ``energy``; merge nodes ``B..2B-2`` carry ``kind="merge"``, ``height``,
        ``disconnected``, ``count`` and ``lowest`` (index of the lowest basin below).
    lowest : ndarray int64 [2B-1]
        For every node (basins, then merges), its lowest basin (energy, then index).
    offset : float
        The lowest basin energy: ``scipy_linkage`` heights are ``linkage`` heights minus it.
    """

    linkage: np.ndarray
    disconnected: np.ndarray
    top: float
    mst_edges: list[tuple[int, int, float]]
    merge_order: list[tuple[int, int]]
    graph: nx.DiGraph
    lowest: np.ndarray
    offset: float

    @property
    def scipy_linkage(self) -> np.ndarray:
        """The linkage with heights relative to the lowest basin (never negative), for scipy."""
        z = self.linkage.copy()
        z[:, 2] -= self.offset
        return z

    @property
    def n_basins(self) -> int:
        return self.linkage.shape[0] + 1

    @property
    def root(self) -> int:
        """Node id of the root (basin 0 itself when there is a single basin)."""
        return 2 * self.n_basins - 2

    def children(self, node: int) -> tuple[int, int] | None:
        """The two children of a merge node, or None for a basin."""
        b = self.n_basins
        if node < b:
            return None
        row = self.linkage[node - b]
        return int(row[0]), int(row[1])

    def height(self, node: int, basin_energy: np.ndarray) -> float:
        """Energy of a node: a basin's own energy or a merge's height."""
        b = self.n_basins
        return float(basin_energy[node]) if node < b else float(self.linkage[node - b, 2])

    def cut(self, height: float) -> np.ndarray:
        """Group basins connected at or below ``height``.

        Returns
        -------
        ndarray int64 [B]
            Group label per basin, numbered 0.. in order of each group's lowest basin.
        """
        b = self.n_basins
        if b == 1:
            return np.zeros(1, dtype=np.int64)
        raw = hierarchy.fcluster(self.scipy_linkage, t=height - self.offset, criterion="distance")
        first: dict[int, int] = {}
        for basin in range(b):  # basins are sorted by energy: first seen = lowest
            first.setdefault(int(raw[basin]), len(first))
        return np.array([first[int(r)] for r in raw], dtype=np.int64)


def _check_inputs(
    basin_energy: np.ndarray, pairs: np.ndarray, barrier: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    energy = np.asarray(basin_energy, dtype=np.float64)
    if energy.ndim != 1 or energy.size == 0:
        raise ValueError(f"basin_energy must be a non-empty 1-D array, got shape {energy.shape}")
    if not np.isfinite(energy).all():
        raise ValueError("basin energies must be finite")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    barrier = np.asarray(barrier, dtype=np.float64).reshape(-1)
    if barrier.shape[0] != pairs.shape[0]:
        raise ValueError(f"{pairs.shape[0]} pairs but {barrier.shape[0]} barrier estimates")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= energy.size):
        raise ValueError(f"pair indices must lie in [0, {energy.size})")
    if np.isneginf(barrier).any():
        raise ValueError("a barrier estimate of -inf is not meaningful")
    return energy, pairs, barrier


def barrier_graph(basin_energy: np.ndarray, pairs: np.ndarray, barrier: np.ndarray) -> nx.Graph:
    """The graph of tested basin pairs with a finite barrier estimate.

    Parameters
    ----------
    basin_energy : array float64 [B]
    pairs : array int64 [E, 2]
        Tested basin pairs (any order; duplicates and both directions allowed).
    barrier : array float64 [E]
        Barrier estimate per pair; ``+inf`` or NaN means no path was found (no edge).

    Returns
    -------
    networkx.Graph
        Nodes ``0..B-1`` with attribute ``energy``; one edge per connected pair with
        attribute ``barrier``, the lowest of its estimates. Self-pairs are ignored.

    Raises
    ------
    ValueError
        On mismatched lengths, indices out of range or non-finite basin energies.

    Examples
    --------
    >>> g = barrier_graph(np.array([0.0, 1.0]), np.array([[0, 1], [1, 0]]), np.array([3.0, 2.5]))
    >>> g.edges[0, 1]["barrier"]
    2.5
    """
    energy, pairs, barrier = _check_inputs(basin_energy, pairs, barrier)
    graph = nx.Graph()
    graph.add_nodes_from((i, {"energy": float(e)}) for i, e in enumerate(energy))
    for (i, j), h in zip(pairs.tolist(), barrier.tolist()):
        if i == j or not math.isfinite(h):
            continue
        if graph.has_edge(i, j):
            graph.edges[i, j]["barrier"] = min(graph.edges[i, j]["barrier"], h)
        else:
            graph.add_edge(i, j, barrier=h)
    return graph


def minimax_tree(basin_energy: np.ndarray, pairs: np.ndarray, barrier: np.ndarray) -> BasinTree:
    """Single-linkage tree over barrier estimates (Kruskal with union-find).

    Two groups merge at the lowest maximum barrier along any chain of tested pairs
    joining them. An estimate below the higher of its two basins' energies is raised to
    it (any path between two basins passes through both). Groups with no finite
    connection merge last, lowest group first, at ``top`` = the highest finite height or
    basin energy plus ``max(1, 10% of the energy span)``, flagged ``disconnected``.

    Parameters
    ----------
    basin_energy : array float64 [B]
        Basin energies, sorted ascending (ties are broken by index).
    pairs : array int64 [E, 2]
    barrier : array float64 [E]
        ``+inf`` (or NaN) where no path was found.

    Returns
    -------
    BasinTree

    Raises
    ------
    ValueError
        On inconsistent inputs (see :func:`barrier_graph`).

    Examples
    --------
    >>> t = minimax_tree(np.array([0.0, 1.0, 2.0]), np.array([[0, 1], [1, 2]]), np.array([3.0, 4.0]))
    >>> t.linkage[:, 2].tolist()
    [3.0, 4.0]

    Cost: O(E log E) for the sort plus near-linear union-find.
    """
    energy, _, _ = _check_inputs(basin_energy, pairs, barrier)
    graph = barrier_graph(energy, pairs, barrier)
    b = energy.size

    # Edges with their effective heights, sorted by (height, i, j) so ties merge in a
    # reproducible order.
    edges = [(i, j) if i < j else (j, i) for i, j in graph.edges()]
    heights = np.array(
        [max(graph.edges[i, j]["barrier"], energy[i], energy[j]) for i, j in edges], dtype=np.float64
    )
    ij = np.array(edges, dtype=np.int64).reshape(-1, 2)
    order = np.lexsort((ij[:, 1], ij[:, 0], heights)) if len(edges) else np.zeros(0, dtype=np.int64)

    parent = list(range(b))
    cluster = list(range(b))  # cluster id (linkage numbering) of each union-find root
    count = [1] * b
    low = list(range(b))  # lowest basin of each root's group

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def key(i: int) -> tuple[float, int]:
        return (float(energy[i]), i)

    rows: list[list[float]] = []
    flags: list[bool] = []
    mst: list[tuple[int, int, float]] = []
    merges: list[tuple[int, int]] = []
    lowest = list(range(b))

    def merge(ri: int, rj: int, h: float, disconnected: bool) -> None:
        a, c = sorted((cluster[ri], cluster[rj]))
        rows.append([float(a), float(c), h, float(count[ri] + count[rj])])
        flags.append(disconnected)
        if count[ri] < count[rj]:
            ri, rj = rj, ri
        parent[rj] = ri
        count[ri] += count[rj]
        low[ri] = min(low[ri], low[rj], key=key)
        cluster[ri] = b + len(rows) - 1
        lowest.append(low[ri])

    for e in order.tolist():
        i, j = int(ij[e, 0]), int(ij[e, 1])
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        h = float(heights[e])
        mst.append((i, j, h))
        merges.append((i, j))
        merge(ri, rj, h, False)

    finite_top = max([float(energy.max())] + [r[2] for r in rows])
    top = finite_top + max(1.0, 0.1 * (finite_top - float(energy.min())))
    roots = sorted({find(i) for i in range(b)}, key=lambda r: key(low[r]))
    for r in roots[1:]:
        base = find(roots[0])
        merges.append((low[base], low[r]))
        merge(base, r, top, True)

    linkage = np.array(rows, dtype=np.float64).reshape(-1, 4)
    offset = float(energy.min())
    shifted = linkage.copy()
    shifted[:, 2] -= offset
    if b > 1 and not hierarchy.is_valid_linkage(shifted):  # a bug here, not bad input
        raise AssertionError("minimax_tree built an invalid linkage matrix")

    tree_graph = nx.DiGraph()
    for i in range(b):
        tree_graph.add_node(i, kind="basin", energy=float(energy[i]))
    for k, row in enumerate(rows):
        node = b + k
        tree_graph.add_node(
            node,
            kind="merge",
            height=row[2],
            disconnected=flags[k],
            count=int(row[3]),
            lowest=int(lowest[node]),
        )
        tree_graph.add_edge(node, int(row[0]))
        tree_graph.add_edge(node, int(row[1]))

    return BasinTree(
        linkage=linkage,
        disconnected=np.array(flags, dtype=bool),
        top=float(top),
        mst_edges=mst,
        merge_order=merges,
        graph=tree_graph,
        lowest=np.array(lowest, dtype=np.int64),
        offset=offset,
    )


def relative_barriers(basin_energy: np.ndarray, tree: BasinTree) -> np.ndarray:
    """Per basin, the barrier height it must climb to reach a lower basin.

    Walking up from the basin, the first merge whose other side holds a lower basin
    (lower energy, or equal energy and lower index) sets the escape height; the result
    is that merge's height minus the basin's own energy. Offset-free, unlike absolute
    barrier energies.

    Parameters
    ----------
    basin_energy : array float64 [B]
    tree : BasinTree

    Returns
    -------
    ndarray float64 [B]
        ``inf`` for the global minimum and where the escape merge is disconnected.

    Cost: O(B * depth), at most O(B^2) for a chain-shaped tree.
    """
    energy = np.asarray(basin_energy, dtype=np.float64)
    b = tree.n_basins
    if energy.shape != (b,):
        raise ValueError(f"basin_energy has shape {energy.shape}, the tree has {b} basins")
    parent = _parents(tree)
    out = np.full(b, np.inf)
    for i in range(b):
        node = i
        while node in parent:
            p = parent[node]
            kids = tree.children(p)
            assert kids is not None  # a parent is always a merge
            left, right = kids
            other = right if left == node else left
            j = int(tree.lowest[other])
            if (energy[j], j) < (energy[i], i):
                if not tree.disconnected[p - b]:
                    out[i] = tree.linkage[p - b, 2] - energy[i]
                break
            node = p
    return out


def _parents(tree: BasinTree) -> dict[int, int]:
    b = tree.n_basins
    parent: dict[int, int] = {}
    for k, row in enumerate(tree.linkage):
        parent[int(row[0])] = b + k
        parent[int(row[1])] = b + k
    return parent


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.6g}"


def _display_nodes(tree: BasinTree, max_leaves: int) -> set[int]:
    """Nodes shown as leaves: open the highest merges first until ``max_leaves`` show."""
    shown = {tree.root}
    while len(shown) < max_leaves:
        merges = [n for n in shown if tree.children(n) is not None]
        if not merges:
            break
        highest = max(merges, key=lambda n: (tree.linkage[n - tree.n_basins, 2], n))
        kids = tree.children(highest)
        assert kids is not None
        shown.remove(highest)
        shown.update(kids)
    return shown


def render_text(
    tree: BasinTree,
    basin_energy: np.ndarray,
    sizes: Sequence[int] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    *,
    max_leaves: int = 50,
) -> str:
    """Render the basin tree as indented text for a terminal.

    Each merge line gives its absolute barrier energy and the barrier height above the
    lowest basin of each side; each basin line its energy, and its size and label when
    given. Beyond ``max_leaves`` basins the lowest merges are folded: a folded group
    shows its basin count, the height below which it is all connected, and its lowest
    basin.

    Parameters
    ----------
    tree : BasinTree
    basin_energy : array float64 [B]
    sizes : array int [B], optional
        E.g. the number of minima or chains per basin.
    labels : sequence of str [B], optional
    max_leaves : int
        At most this many lines for basins or folded groups.

    Returns
    -------
    str
        Lines joined by newlines, no trailing newline.
    """
    energy = np.asarray(basin_energy, dtype=np.float64)
    b = tree.n_basins
    if energy.shape != (b,):
        raise ValueError(f"basin_energy has shape {energy.shape}, the tree has {b} basins")
    size_arr = None if sizes is None else np.asarray(sizes)
    shown = _display_nodes(tree, max(1, max_leaves))

    def members(node: int) -> list[int]:
        stack, out = [node], []
        while stack:
            n = stack.pop()
            kids = tree.children(n)
            if kids is None:
                out.append(n)
            else:
                stack.extend(kids)
        return out

    def basin_text(i: int) -> str:
        parts = [f"basin {i}  E={_fmt(energy[i])}"]
        if size_arr is not None:
            parts.append(f"size {int(size_arr[i])}")
        if labels is not None:
            parts.append(str(labels[i]))
        return "  ".join(parts)

    def node_text(node: int) -> str:
        kids = tree.children(node)
        if kids is None:
            return basin_text(node)
        row = tree.linkage[node - b]
        low = int(tree.lowest[node])
        if node in shown:  # folded group
            if tree.disconnected[node - b]:  # its height is the placeholder, not a barrier
                reach = "not all connected (no path found between some of them)"
            else:
                reach = f"connected below {_fmt(row[2])}"
            text = f"[{int(row[3])} basins {reach}; lowest: basin {low} E={_fmt(energy[low])}"
            if size_arr is not None:
                text += f", total size {int(size_arr[members(node)].sum())}"
            return text + "]"
        if tree.disconnected[node - b]:
            sides = " and ".join(f"basin {int(tree.lowest[k])}" for k in ordered(kids))
            return f"no path found between the groups of {sides} (drawn at {_fmt(row[2])})"
        above = ", ".join(
            f"+{_fmt(row[2] - energy[int(tree.lowest[k])])} above basin {int(tree.lowest[k])}" for k in ordered(kids)
        )
        return f"merge at {_fmt(row[2])}  ({above})"

    def ordered(kids: tuple[int, int]) -> list[int]:
        return sorted(kids, key=lambda k: (energy[int(tree.lowest[k])], int(tree.lowest[k])))

    n_disc = int(tree.disconnected.sum())
    header = f"basin tree: {b} basin{'s' if b != 1 else ''}, energies {_fmt(energy.min())} .. {_fmt(energy.max())}"
    if n_disc:
        header += f", {n_disc} disconnected merge{'s' if n_disc != 1 else ''} (no path found)"
    if len(shown) < b:
        header += f"; lowest merges folded to show {len(shown)} groups"
    lines = [header]
    # Iterative depth-first walk; each entry: node, its line's prefix, its children's prefix.
    stack: list[tuple[int, str, str]] = [(tree.root, "", "")]
    while stack:
        node, line_prefix, child_prefix = stack.pop()
        lines.append(line_prefix + node_text(node))
        kids = tree.children(node)
        if kids is None or node in shown:
            continue
        first, last = ordered(kids)
        # Pushed last-first so the lower child prints first.
        stack.append((last, child_prefix + "`-- ", child_prefix + "    "))
        stack.append((first, child_prefix + "|-- ", child_prefix + "|   "))
    return "\n".join(lines)


def plot_disconnectivity(
    tree: BasinTree,
    basin_energy: np.ndarray,
    path: str | Path,
    sizes: Sequence[int] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    marked: Sequence[int] | None = None,
    *,
    title: str | None = None,
) -> Path:
    """Draw the tree as a disconnectivity graph and save it (PNG, PDF, SVG by suffix).

    The vertical axis is energy. Each basin is a vertical line from its energy up to the
    merge that joins it; each merge is a horizontal connector at its barrier energy with
    a line up to its own parent. Leaves follow scipy's dendrogram order, so no lines
    cross. Disconnected merges are drawn dashed at the placeholder height.

    Parameters
    ----------
    tree : BasinTree
    basin_energy : array float64 [B]
    path : str or Path
        Output file.
    sizes : array int [B], optional
        Drawn as dot areas at each basin's bottom.
    labels : sequence of str [B], optional
        Tick labels (shown for up to 60 basins; basin indices by default).
    marked : sequence of int, optional
        Basins drawn in red (e.g. flagged spurious).
    title : str, optional

    Returns
    -------
    Path
        The file written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    energy = np.asarray(basin_energy, dtype=np.float64)
    b = tree.n_basins
    if energy.shape != (b,):
        raise ValueError(f"basin_energy has shape {energy.shape}, the tree has {b} basins")
    path = Path(path)
    marked_set = {int(i) for i in (marked or [])}

    order = hierarchy.dendrogram(tree.scipy_linkage, no_plot=True)["leaves"] if b > 1 else [0]
    xpos = np.zeros(2 * b - 1)
    xpos[np.asarray(order, dtype=np.int64)] = np.arange(b, dtype=np.float64)
    for k, row in enumerate(tree.linkage):
        xpos[b + k] = 0.5 * (xpos[int(row[0])] + xpos[int(row[1])])
    parent = _parents(tree)
    lo = float(energy.min())
    hi = float(tree.linkage[:, 2].max()) if b > 1 else float(energy.max())
    stub = 0.05 * max(hi - lo, 1e-12) if hi > lo else 1.0

    fig = Figure(figsize=(min(20.0, max(6.0, 0.25 * b)), 5.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for node in range(2 * b - 1):
        bottom = tree.height(node, energy)
        top = float(tree.linkage[parent[node] - b, 2]) if node in parent else bottom + stub
        red = node < b and node in marked_set
        ax.plot([xpos[node]] * 2, [bottom, top], color="red" if red else "black", lw=1.5 if red else 1.0)
        kids = tree.children(node)
        if kids is not None:
            disc = bool(tree.disconnected[node - b])
            ax.plot(
                [xpos[kids[0]], xpos[kids[1]]],
                [bottom, bottom],
                color="grey" if disc else "black",
                ls="--" if disc else "-",
                lw=1.0,
            )
    if tree.disconnected.any():
        ax.text(b - 0.5, tree.top, "no path found ", va="bottom", ha="right", fontsize=8, color="grey")
    if sizes is not None:
        s = np.asarray(sizes, dtype=np.float64)
        area = 10.0 + 90.0 * s / max(float(s.max()), 1.0)
        colors = ["red" if i in marked_set else "black" for i in range(b)]
        ax.scatter(xpos[:b], energy, s=area, c=colors, zorder=3)
    if b <= 60:
        ax.set_xticks(xpos[:b])
        ax.set_xticklabels([str(labels[i]) if labels is not None else str(i) for i in range(b)], fontsize=7, rotation=90)
    else:
        ax.set_xticks([])
    ax.set_xlim(-1.0, float(b))
    ax.set_ylim(lo - stub, (tree.top if tree.disconnected.any() else hi) + 2 * stub)
    ax.set_ylabel("energy U")
    ax.set_xlabel("basin")
    ax.set_title(textwrap.fill(title or f"disconnectivity graph ({b} basins)", 60), fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path
