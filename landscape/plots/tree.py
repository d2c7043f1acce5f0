"""The disconnectivity graph: a barrier tree drawn into a matplotlib axes.

- :func:`draw_tree`: any :class:`~landscape.mapping.tree.BarrierTree` (over minima or
  over basins) into an axes, leaves coloured, sized, labelled or marked as asked;
- :func:`draw_map_tree`: a map's tree over its minima (leaves coloured by basin at a
  level) or over the basins of a level, spurious minima in red, titled with the model;
- :func:`plot_tree`: :func:`draw_map_tree` into a new figure, saved to a file.

The tree itself is computed by :mod:`landscape.mapping.tree` (which draws nothing).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landscape.io.records import MapContent
from landscape.io.views import (
    basin_tree_of,
    level_name,
    partition_of,
    short_source,
    spurious_minima,
)
from landscape.mapping.tree import BarrierTree, display_nodes, folded_words, members, one_state
from landscape.plots.common import (
    axes_width,
    FLAGGED,
    basin_palette,
    check_picture_path,
    new_figure,
    save_figure,
    wrap,
)

__all__ = ["draw_map_tree", "draw_tree", "plot_tree"]


def draw_tree(
    tree: BarrierTree,
    ax: Any = None,
    *,
    colors: Sequence[Any] | None = None,
    sizes: Sequence[float] | np.ndarray | None = None,
    labels: Sequence[str] | None = None,
    marked: Sequence[int] | None = None,
    max_leaves: int = 400,
    title: str | None = None,
    name: str = "minimum",
    fold_flat: bool = True,
) -> Any:
    """Draw the tree as a disconnectivity graph into a matplotlib axes.

    The vertical axis is energy. Each leaf is a vertical line from its energy up to the
    merge that joins it; each merge a horizontal connector at its barrier energy with a
    line up to its own parent. Leaves follow scipy's dendrogram order, so no lines cross.
    Merges whose barrier is an estimate (not refined to a saddle) are drawn dashed, those
    with no path found dashed grey at the placeholder height. A dot in the
    leaf's colour marks its foot (a leaf that merges at its own energy has no line). A group
    of minima that drain into their lowest with no barrier (one state: points along a plateau
    or a well's flat tail) is one thicker line from its lowest energy, coloured as its lowest
    minimum (unless ``fold_flat`` is False and they fit), and beyond ``max_leaves`` lines
    the lowest merges are folded too, one line per group.

    Parameters
    ----------
    tree : BarrierTree
    ax : matplotlib Axes, optional
        Drawn into (a new 8 x 5 inch figure with the Agg canvas when None).
    colors : sequence [L], optional
        A colour per leaf (e.g. by basin); black by default.
    sizes : array [L], optional
        Drawn as dot areas at each leaf's bottom.
    labels : sequence of str [L], optional
        Tick labels (shown for up to 60 shown leaves).
    marked : sequence of int, optional
        Leaves drawn in red and thicker, with a red cross at their foot and a legend
        counting them (e.g. flagged spurious).
    max_leaves : int
    title : str, optional
    name : str
        What a leaf is, for the axis label.
    fold_flat : bool
        Draw each group of minima that drain into their lowest with no barrier as one line
        (default); False draws every minimum where they fit in ``max_leaves``.

    Returns
    -------
    matplotlib Axes
    """
    if ax is None:
        ax = new_figure(8.0, 5.0).add_subplot(1, 1, 1)
    n = tree.n_leaves
    shown = sorted(display_nodes(tree, max(1, max_leaves), fold_flat=fold_flat))
    single = one_state(tree)  # (a folded group of one state is drawn as its lowest minimum is)
    marked_set = {int(i) for i in (marked or [])}
    node_pos = {m: p for p, m in enumerate(shown)}
    # Order the shown nodes as a dendrogram of the folded tree would: a walk from the root.
    order: list[int] = []
    inner: list[int] = []  # merges drawn as connectors (above every folded group)
    stack = [tree.root]
    while stack:
        m = stack.pop()
        if m in node_pos:
            order.append(m)
            continue
        inner.append(m)
        a, b = tree.children(m)  # type: ignore[misc]
        # lower side first (left)
        la, lb = tree.lowest[a], tree.lowest[b]
        first, second = (a, b) if (tree.energy[la], la) <= (tree.energy[lb], lb) else (b, a)
        stack.extend([second, first])
    xpos: dict[int, float] = {m: float(p) for p, m in enumerate(order)}
    for m in reversed(inner):  # children before parents
        a, b = tree.children(m)  # type: ignore[misc]
        xpos[m] = 0.5 * (xpos[a] + xpos[b])
    pos = xpos.__getitem__

    lo = float(tree.energy.min())
    hi = float(tree.heights.max()) if n > 1 else float(tree.energy.max())
    stub = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 1.0)
    color_of = (lambda i: colors[i]) if colors is not None else (lambda i: "black")
    for m in order:  # shown leaves and folded groups
        low = int(tree.lowest[m])
        bottom = float(tree.energy[low])
        top = tree.height(tree.parent[m]) if m in tree.parent else bottom + stub
        red = low in marked_set and bool(single[m])
        ax.plot([pos(m)] * 2, [bottom, top], color=FLAGGED if red else color_of(low),
                lw=1.8 if red or m >= n else 1.0)
    if sizes is None:  # a mark at each leaf's foot: a leaf that merges at its own energy has no line to colour
        dot = 14.0 if len(order) <= 60 else (9.0 if len(order) <= 150 else 6.0)
        feet = [(pos(m), float(tree.energy[int(tree.lowest[m])]), int(tree.lowest[m]) in marked_set and bool(single[m]),
                 int(tree.lowest[m])) for m in order]
        plain = [f for f in feet if not f[2]]
        if plain:
            ax.scatter([f[0] for f in plain], [f[1] for f in plain], s=dot, c=[color_of(f[3]) for f in plain],
                       linewidths=0, zorder=3)
        flagged = [f for f in feet if f[2]]
        if flagged:
            ax.scatter([f[0] for f in flagged], [f[1] for f in flagged], s=2.5 * dot, c=FLAGGED, marker="x",
                       linewidths=1.2, zorder=4)
    estimated = 0
    for m in inner:
        a, b = tree.children(m)  # type: ignore[misc]
        h = tree.height(m)
        k = m - n
        plain = bool(tree.connected[k] and tree.refined[k])
        estimated += int(tree.connected[k] and not tree.refined[k])
        ax.plot([pos(a), pos(b)], [h, h], color="grey" if not tree.connected[k] else "black",
                ls="-" if plain else (0, (4, 2)), lw=1.0)
        top = tree.height(tree.parent[m]) if m in tree.parent else h + stub
        ax.plot([pos(m)] * 2, [h, top], color="grey" if not tree.connected[k] else "black", lw=1.0)
    if sizes is not None and all(m < n or single[m] for m in order):  # (a group of one state: its members' total)
        per_leaf = np.asarray(sizes, dtype=np.float64)
        s = np.array([per_leaf[members(tree, m)].sum() if m >= n else per_leaf[m] for m in order])
        area = 8.0 + 60.0 * s / max(float(s.max()), 1.0)
        low = [int(tree.lowest[m]) for m in order]
        ax.scatter([pos(m) for m in order], tree.energy[low], s=area,
                   c=[FLAGGED if i in marked_set else color_of(i) for i in low], zorder=3)
    if not tree.connected.all():
        ax.text(len(order) - 0.5, tree.top, "no path found ", va="bottom", ha="right", fontsize=8, color="grey")
    plural = "minima" if name == "minimum" else name + "s"
    counted = f"{n} {name if n == 1 else plural}"
    from matplotlib.lines import Line2D

    handles = []
    if marked_set:
        handles.append(Line2D([], [], color=FLAGGED, marker="x" if sizes is None else "o", lw=1.8,
                              label=f"flagged spurious ({len(marked_set)} of {n} {plural})"))
    if estimated:  # (of the merges drawn: folded groups hide theirs)
        merges = sum(int(tree.connected[m - n]) for m in inner)
        handles.append(Line2D([], [], color="black", ls=(0, (4, 2)), lw=1.0,
                              label=f"barrier estimated, not refined to a saddle ({estimated} of {merges} merges"
                                    f"{' drawn' if len(order) < n else ''})"))
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best", frameon=False)
    if len(order) <= 60:
        ax.set_xticks([pos(m) for m in order])
        # (a folded group: its lowest leaf and how many more, "[57 +10]", not a bare count
        # that reads as a leaf's number)
        def tick(m: int) -> str:
            low = int(tree.lowest[m])
            name = str(labels[low]) if labels is not None else str(low)
            return name if m < n else f"[{name} +{int(tree.linkage[m - n, 3]) - 1}]"

        ticks = [tick(m) for m in order]
        ax.set_xticklabels(ticks, fontsize=7, rotation=90)
    else:
        ax.set_xticks([])
    ax.set_xlim(-1.0, float(len(order)))
    ax.set_ylim(lo - stub, (tree.top if not tree.connected.all() else hi) + 2 * stub)
    ax.set_ylabel("energy U")
    folded = f", {folded_words(tree, set(order), plural)}" if len(order) < n else ""
    unnumbered = "; too many to number them: the text tree lists them" if len(order) > 60 else ""
    ax.set_xlabel(f"{plural} ({n}{folded}{unnumbered})")
    width = axes_width(ax)
    ax.set_title(wrap(title or f"disconnectivity graph ({counted})", width, 10), fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return ax


def _drawn_tree(content: MapContent, level: int | None, basins: bool) -> BarrierTree:
    """The tree :func:`draw_map_tree` draws: over the basins of ``level`` (``basins``, or a
    map whose minima are basins already), else over the minima."""
    return basin_tree_of(content, level) if basins or not content.over_minima else content.tree


#: The lines a map's tree picture draws at most (the states beyond fold under the lowest merges).
MAP_TREE_LINES = 300


def draw_map_tree(content: MapContent, ax: Any, *, level: int | None = None, basins: bool = False,
                  max_leaves: int = MAP_TREE_LINES, title: str | None = None) -> Any:
    """Draw a map's disconnectivity graph into ``ax`` and return ``ax``.

    Over minima (leaves coloured by their basin at ``level``), or with ``basins`` over the
    basins of that level (dot areas: chains per basin). Spurious minima (or basins whose
    lowest minimum is) in red. The default title names the model
    (:func:`landscape.io.views.short_source`), the leaves and the level.

    Raises
    ------
    LandscapeError
        For a level out of range.
    """
    return _draw_map_tree(content, ax, _drawn_tree(content, level, basins), level=level, basins=basins,
                          max_leaves=max_leaves, title=title)


def _draw_map_tree(content: MapContent, ax: Any, tree: BarrierTree, *, level: int | None, basins: bool,
                   max_leaves: int, title: str | None) -> Any:
    """:func:`draw_map_tree` of ``tree``, the :func:`_drawn_tree` of its arguments."""
    part = partition_of(content, level)
    spurious = spurious_minima(content)
    if basins or not content.over_minima:
        name = "basin"
        sizes = part.hits(content.minima_hits)
        colors = None
        default = (f"{short_source(content)}: disconnectivity graph over {tree.n_leaves} "
                   f"basin{'' if tree.n_leaves == 1 else 's'}, {level_name(content, level)}")
    else:
        name = "minimum"
        sizes = None
        palette, grey = basin_palette(part.basin)
        colors = [palette[int(b)] for b in part.basin]
        greyed = (f" (the {part.n_basins - grey} with most minima in colour, the other {grey} grey)"
                  if grey else "")
        default = (f"{short_source(content)}: disconnectivity graph over {tree.n_leaves} "
                   f"minim{'um' if tree.n_leaves == 1 else 'a'}, coloured by "
                   f"basin at {level_name(content, level)}{greyed}")
    marked = np.flatnonzero(spurious[tree.leaves]).tolist()
    return draw_tree(tree, ax, colors=colors, sizes=sizes, marked=marked, max_leaves=max_leaves,
                     title=title or default, name=name)


def plot_tree(content: MapContent, path: str | Path, *, level: int | None = None, basins: bool = False,
              title: str | None = None) -> Path:
    """:func:`draw_map_tree` into a new figure (wider for more leaves), saved to ``path``.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        A bad level or an unknown picture format (nothing is written).
    """
    path = check_picture_path(path)
    partition_of(content, level)  # (a bad level: the error before anything is drawn)
    tree = _drawn_tree(content, level, basins)
    n = len(display_nodes(tree, MAP_TREE_LINES, fold_flat=True))  # the lines drawn
    fig = new_figure(min(20.0, max(7.0, 0.05 * n + 6.0)), 5.5, layout="constrained")
    _draw_map_tree(content, fig.add_subplot(1, 1, 1), tree, level=level, basins=basins, max_leaves=MAP_TREE_LINES,
                   title=title)
    return save_figure(fig, path)
