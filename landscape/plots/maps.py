"""Pictures of a map's basins: their representatives, a 2-D energy with its minima, the
basin counts over the magnetization ladder.

- :func:`draw_representatives`: each basin's representative (its lowest minimum) as an
  image, or, for vectors of more than two dimensions, as lines / a heat map (one dimension:
  each minimum at its energy);
- :func:`draw_map_2d`: a 2-D energy with its minima, basins, tree edges (refined paths
  where present) and saddles;
- :func:`draw_levels`: the number of basins against alpha (log-log).

Each ``draw_*`` draws into the axes (or, for a grid of images, the figure) it is given
and returns it; each ``plot_*`` is the thin saver that draws into a new figure sized for
the picture and writes it (:func:`landscape.plots.common.save_figure`). Every default
title names the model (:func:`landscape.io.views.short_source`) and what is shown.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from landscape.errors import LandscapeError
from landscape.io.records import MapContent, Partition
from landscape.io.views import (
    ad_temperature,
    alpha_unit_rule,
    data_range,
    level_name,
    map_temperature,
    minima_kind,
    partition_of,
    short_source,
    spurious_minima,
    tree_merges,
)
from landscape.plots.common import (
    OTHER_BASINS,
    axes_width,
    basin_palette,
    check_picture_path,
    fall_slope,
    fmt,
    new_figure,
    renderer_of,
    save_figure,
    show_image,
    size_inches,
    wrap,
)

__all__ = [
    "draw_levels",
    "draw_map_2d",
    "draw_representatives",
    "plot_levels",
    "plot_map_2d",
    "plot_representatives",
]

#: The image grid's cells, in inches: an image's width, the caption above it, the gap
#: between cells (the figure of :func:`plot_representatives` is sized from these).
_IMG_W, _CAPTION, _GAP = 1.2, 0.34, 0.12


def _is_axes(target: Any) -> bool:
    from matplotlib.axes import Axes

    return isinstance(target, Axes)


# ----------------------------------------------------------------- representatives


def _shown_basins(content: MapContent, level: int | None, max_basins: int) -> tuple[Partition, np.ndarray, str]:
    """The level's partition, the basins drawn (lowest first) and the default title."""
    part = partition_of(content, level)
    order = np.argsort(part.energy, kind="stable")[: max(1, int(max_basins))]
    b = part.n_basins
    shown = f"lowest {order.size} of {b} basins" if order.size < b else f"{b} basin{'' if b == 1 else 's'}"
    title = f"{short_source(content)}: basin representatives, {shown}, {level_name(content, level)}"
    return part, order, title


def _grid_shape(n: int) -> tuple[int, int]:
    ncols = int(min(10, max(1, math.ceil(math.sqrt(n * 1.5)))))
    return ncols, math.ceil(n / ncols)


def _head(title: str) -> float:
    """Inches above an image grid for its (wrapped) title."""
    return 0.22 + 0.17 * (title.count("\n") + 1)


def draw_representatives(content: MapContent, target: Any, *, level: int | None = None, max_basins: int = 100,
                         title: str | None = None) -> Any:
    """Draw each basin's representative (its lowest minimum), lowest basins first, into
    ``target``; return ``target``.

    Image minima (C, H, W) with C = 1 or 3, or (H, W): a grid of images, the map's data
    range (:func:`landscape.io.views.data_range`) mapped to [0, 1] and clipped, each
    captioned with basin index, energy, number of minima and chains ending in it (red when
    flagged spurious). ``target`` may be a Figure or SubFigure (the grid fills it, titled
    above) or an Axes (the grid fills the axes' box as inset axes). Vectors of D > 2
    dimensions: one line per representative across the coordinates (parallel
    coordinates, D <= 32 and at most :data:`MAX_LINES` basins, coloured by energy) or a heat
    map (rows basins, columns coordinates), into the Axes (or a new axes filling the figure); of one dimension, every
    minimum at its coordinate and energy, coloured by its basin's.

    Parameters
    ----------
    content : MapContent
    target : matplotlib Axes, Figure or SubFigure
    level : int, optional
        Draw the basins of ``content.levels[level]`` instead of the main level.
    max_basins : int
        Draw at most this many basins (the lowest).
    title : str, optional
        Default: the model, how many basins, the level.

    Raises
    ------
    LandscapeError
        For 2-D minima (use :func:`draw_map_2d`) or shapes that cannot be drawn, or a bad
        level.
    """
    kind = minima_kind(content)
    if kind == "2d":
        raise LandscapeError("the minima are 2-D points: draw them on the energy with plot_map_2d")
    part, order, default = _shown_basins(content, level, max_basins)
    title = title or default
    if kind == "image":
        _image_grid(content, part, order, title, target)
    else:
        ax = target if _is_axes(target) else target.add_subplot(1, 1, 1)
        _vector_lines_or_heat(content, part, order, title, ax)
    return target


def _image_grid(content: MapContent, part: Partition, order: np.ndarray, title: str, target: Any) -> None:
    """The images in a grid of cells that fill ``target`` (a figure, or an axes' box)."""
    low, high = data_range(content)
    spurious = spurious_minima(content)[part.representative]
    sizes, hits = part.sizes(), part.hits(content.minima_hits)
    n = order.size
    ncols, nrows = _grid_shape(n)
    in_axes = _is_axes(target)
    if in_axes:
        box_w = axes_width(target)
        box_h = target.get_position().height * size_inches(target.figure)[1]
        target.set_axis_off()
    else:
        box_w, box_h = size_inches(target)
    fontsize = 9 if not in_axes else 10
    if spurious[order].any():
        title += " (red: flagged spurious)"
    title = wrap(title, box_w, fontsize)
    head = _head(title) if not in_axes else 0.0  # an axes' title sits above its box
    h, w = np.shape(content.minima_x)[-2:]
    aspect = float(np.clip(h / max(w, 1), 0.4 / _IMG_W, 2.4 / _IMG_W))
    img_w = min((box_w - (ncols + 1) * _GAP) / ncols, ((box_h - head) / nrows - _CAPTION - _GAP) / aspect)
    img_w = max(img_w, 0.05)
    img_h = img_w * aspect
    left0 = (box_w - (ncols * (img_w + _GAP) - _GAP)) / 2

    def place(left: float, bottom: float) -> Any:
        rect = (left / box_w, bottom / box_h, img_w / box_w, img_h / box_h)
        return target.inset_axes(rect) if in_axes else target.add_axes(rect)

    for slot, basin in enumerate(order.tolist()):
        r, c = divmod(slot, ncols)
        ax = place(left0 + c * (img_w + _GAP), box_h - head - (r + 1) * (img_h + _CAPTION + _GAP) + _GAP)
        show_image(ax, content.minima_x[int(part.representative[basin])], low, high)
        caption = (  # (flagged minima: red, named in the title; a third word overran the next caption)
            f"#{basin}  E={fmt(part.energy[basin])}\n"
            f"{int(sizes[basin])} min, {int(hits[basin])} hit{'' if int(hits[basin]) == 1 else 's'}"
        )
        ax.set_title(caption, fontsize=7, color="red" if spurious[basin] else "black", pad=2)
        if spurious[basin]:
            for side in ax.spines.values():
                side.set_edgecolor("red")
                side.set_linewidth(1.5)
    if in_axes:
        target.set_title(title, fontsize=fontsize)
    else:
        target.suptitle(title, fontsize=fontsize, y=1 - 0.1 / box_h, va="top")


#: Basins drawn as lines across the coordinates at most; more overlap into one band and
#: their labels into a blot (32 basins of a 5-D map), so they are drawn as a heat map.
MAX_LINES = 12


def _vector_lines_or_heat(content: MapContent, part: Partition, order: np.ndarray, title: str, ax: Any) -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    reps = part.representative[order]
    x = np.asarray(content.minima_x, dtype=np.float64)[reps].reshape(order.size, -1)
    d = x.shape[1]
    energy = part.energy[order]
    top = float(energy.max()) if energy.max() > energy.min() else float(energy.min()) + 1
    norm = Normalize(vmin=float(energy.min()), vmax=top)
    cmap = colormaps["viridis"]
    if d == 1:  # (a line along the one coordinate: every minimum at its energy, the basins' lowest starred)
        basin = np.asarray(part.basin)
        every = np.asarray(content.minima_x, dtype=np.float64).reshape(-1)
        ax.scatter(every, content.minima_energy, s=14, c=[cmap(norm(part.energy[b])) for b in basin],
                   edgecolors="black", linewidths=0.3, zorder=3, label="minimum (colour: its basin's energy)")
        ax.scatter(x[:, 0], energy, marker="*", s=170, c=[cmap(norm(e)) for e in energy], edgecolors="black",
                   linewidths=0.7, zorder=4, label="basin (lowest minimum)")
        for k in range(min(order.size, 40)):
            ax.annotate(f"#{int(order[k])}", (x[k, 0], energy[k]), xytext=(5, 4), textcoords="offset points",
                        fontsize=7)
        ax.set_xlabel("x")
        ax.set_ylabel("energy U")
        ax.legend(fontsize=7, loc="best")
        ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="basin energy")
    elif d <= 32 and order.size <= MAX_LINES:
        coords = np.arange(d)
        for k in range(order.size - 1, -1, -1):  # lowest basins drawn last, on top
            ax.plot(coords, x[k], color=cmap(norm(energy[k])), lw=1.6 if k < 10 else 0.8, alpha=0.9)
            if k < 10:
                ax.annotate(f"#{int(order[k])}", (coords[-1], x[k, -1]), xytext=(3, 0), textcoords="offset points",
                            fontsize=7, va="center", color=cmap(norm(energy[k])))
        for c in coords:
            ax.axvline(c, color="0.85", lw=0.5, zorder=0)
        ax.set_xticks(coords)
        ax.set_xlabel("coordinate")
        ax.set_ylabel("value")
        ax.set_xlim(-0.3, d - 1 + 0.8)
        ax.figure.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="basin energy")
    else:
        low, high = data_range(content)
        im = ax.imshow(x, aspect="auto", cmap="coolwarm", vmin=low, vmax=high, interpolation="nearest")
        if order.size <= 40:
            ax.set_yticks(np.arange(order.size))
            ax.set_yticklabels([f"#{int(b)} E={fmt(e)}" for b, e in zip(order, energy)], fontsize=7)
        else:
            ax.set_ylabel("basins, lowest first")
            ax.set_yticks([])
        ax.set_xlabel("coordinate")
        ax.figure.colorbar(im, ax=ax, label="value")
    ax.set_title(wrap(title, axes_width(ax), 9), fontsize=9)


def plot_representatives(
    content: MapContent,
    path: str | Path,
    *,
    level: int | None = None,
    max_basins: int = 100,
    title: str | None = None,
) -> Path:
    """:func:`draw_representatives` into a new figure sized for it, saved to ``path``.

    Image grids get cells of 1.2 inches; vectors a figure that grows with the number of
    coordinates (lines) or basins (heat map).

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        For 2-D minima (use :func:`plot_map_2d`) or shapes that cannot be drawn, a bad
        level, or an unknown picture format (nothing is written).
    """
    path = check_picture_path(path)
    kind = minima_kind(content)
    if kind == "2d":
        raise LandscapeError("the minima are 2-D points: draw them on the energy with plot_map_2d")
    _, order, default = _shown_basins(content, level, max_basins)
    title = title or default
    if kind == "image":
        ncols, nrows = _grid_shape(order.size)
        h, w = np.shape(content.minima_x)[-2:]
        img_h = float(np.clip(_IMG_W * h / max(w, 1), 0.4, 2.4))
        fig_w = max(5.0, ncols * (_IMG_W + _GAP) + _GAP)
        fig_h = nrows * (img_h + _CAPTION + _GAP) + _head(wrap(title, fig_w, 9))
        fig = new_figure(fig_w, fig_h)
    else:
        d = int(np.prod(np.shape(content.minima_x)[1:]))
        if d <= 32 and order.size <= MAX_LINES:
            fig = new_figure(max(6.0, 0.35 * d + 3.0), 4.5, layout="constrained")
        else:
            fig = new_figure(min(16.0, max(6.0, 0.02 * d + 4.0)), min(16.0, max(3.0, 0.18 * order.size + 1.5)),
                             layout="constrained")
    draw_representatives(content, fig, level=level, max_basins=max_basins, title=title)
    return save_figure(fig, path)


# ------------------------------------------------------------------- a 2-D energy


def _colour_top(finite: np.ndarray, lo: float, barriers: list[float]) -> float:
    """Top of the colour range of a contour picture, so that the wells show.

    Half again the span from the lowest energy to the highest barrier above that barrier;
    without barriers, the grid's 75% quantile. Never above the grid's maximum.
    """
    if finite.size == 0:
        return lo + 1.0
    barriers = [h for h in barriers if math.isfinite(h)]
    if barriers:
        top = max(barriers)
        hi = top + 0.5 * max(top - lo, 1e-12)
    else:
        hi = float(np.quantile(finite, 0.75))
    hi = min(hi, float(finite.max()))
    return hi if hi > lo else lo + 1.0


def draw_map_2d(content: MapContent, ax: Any, *, level: int | None = None, title: str | None = None,
                labelled: int = 12) -> Any:
    """Draw a 2-D energy with its minima, basins, tree edges and saddles into ``ax``;
    return ``ax``.

    Filled contours of ``content.grid`` (colours clipped at half again the span from the
    lowest energy to the highest barrier, so the wells show; a colour bar beside ``ax``);
    every minimum as a dot coloured by its basin at ``level``; each basin's lowest minimum
    as a star with its number; every edge of the tree over minima (the pairs that made its
    merges): the refined path where the map keeps it, else a dashed straight line (faint
    where the edge is flat: a minimum draining into a lower one with no barrier); the
    saddles of the highest ``labelled`` barriers (merges that are not flat) marked and
    labelled with their barrier energy. Without a grid only minima and paths are drawn.

    Raises
    ------
    LandscapeError
        If the minima are not 2-D points, or a bad level.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    if minima_kind(content) != "2d":
        shape = tuple(np.shape(content.minima_x)[1:])
        raise LandscapeError(f"plot_map_2d draws 2-D energies; these minima have shape {shape}")
    part = partition_of(content, level)
    b = part.n_basins
    pts = np.asarray(content.minima_x, dtype=np.float64).reshape(-1, 2)
    reps = pts[part.representative]
    palette, greyed = basin_palette(part.basin)
    basin_color = [palette[int(k)] for k in part.basin]
    merges = [m for m in tree_merges(content, content.tree) if m.pair is not None]
    grid = content.grid

    handles = []
    drawn, straight = [], []  # (xy [P, 2], merge)
    for m in merges:
        xy = None
        if m.refined and content.tree_path is not None:
            xy = np.asarray(content.tree_path[m.row], dtype=np.float64).reshape(-1, 2)
            xy = xy[np.isfinite(xy).all(axis=1)]
        if xy is not None and len(xy) >= 2:
            drawn.append((xy, m))
        else:
            straight.append((np.stack([pts[m.pair[0]], pts[m.pair[1]]]), m))  # type: ignore[index]
    flat = content.tree.flat()  # (no saddle to mark where the higher side drains into the lower)
    top = sorted((m for m in merges if not flat[m.row]), key=lambda m: -m.height)[:labelled]
    saddles = []
    for m in top:
        if m.refined and content.tree_saddle is not None and np.isfinite(content.tree_saddle[m.row]).all():
            sx, sy = (float(v) for v in np.asarray(content.tree_saddle[m.row]).reshape(2))
            saddles.append((sx, sy, m.height))
    if grid is not None:
        e = np.ma.masked_invalid(np.asarray(grid.energy, dtype=np.float64))
        finite = e.compressed()
        lo = float(finite.min()) if finite.size else 0.0
        hi = _colour_top(finite, lo, [m.height for m in merges if not flat[m.row]])  # (flat ones: no scale)
        levels = np.linspace(lo, hi, 25)
        clipped = np.ma.minimum(e, hi)
        cs = ax.contourf(grid.x, grid.y, clipped, levels=levels, cmap="viridis", extend="neither")
        ax.contour(grid.x, grid.y, clipped, levels=levels[::3], colors="white", linewidths=0.3, alpha=0.5)
        clipped_note = f" (clipped at {fmt(hi)})" if finite.size and hi < float(finite.max()) else ""
        ax.figure.colorbar(cs, ax=ax, label=f"energy U{clipped_note}", ticks=MaxNLocator(8))
        ax.set_xlim(float(np.min(grid.x)), float(np.max(grid.x)))
        ax.set_ylim(float(np.min(grid.y)), float(np.max(grid.y)))
    else:
        ax.text(0.01, 0.01, "no energy grid in this map: minima and paths only", transform=ax.transAxes,
                fontsize=8, color="0.3", va="bottom")
    # An edge over which a minimum drains into a lower one with no barrier crosses nothing:
    # drawn faint, so that the paths over barriers stand out (a plateau's points would
    # otherwise cover the picture with wandering paths).
    faint = [xy for xy, m in drawn + straight if flat[m.row]]
    drawn = [(xy, m) for xy, m in drawn if not flat[m.row]]
    straight = [(xy, m) for xy, m in straight if not flat[m.row]]
    if faint:  # (one collection, which the legend's placement does not avoid: faint lines may lie under it)
        from matplotlib.collections import LineCollection

        ax.add_collection(LineCollection(faint, colors="0.55", linewidths=0.7, alpha=0.7, zorder=1.9))
        handles.append(Line2D([], [], color="0.55", lw=0.7, alpha=0.7,
                              label="tree edge with no barrier"))
    for xy, _ in drawn:
        ax.plot(xy[:, 0], xy[:, 1], color="white", lw=2.4, zorder=2)
        ax.plot(xy[:, 0], xy[:, 1], color="crimson", lw=1.2, zorder=2.1)
    if drawn:
        handles.append(Line2D([], [], color="crimson", lw=1.2, label="refined path (tree edge)"))
    for xy, _ in straight:
        ax.plot(xy[:, 0], xy[:, 1], color="0.25", lw=1.0, ls="--", zorder=2)
    if straight:
        handles.append(Line2D([], [], color="0.25", lw=1.0, ls="--", label="tree edge (estimate)"))
    ax.scatter(pts[:, 0], pts[:, 1], s=14, c=basin_color, edgecolors="black", linewidths=0.3, zorder=3)
    handles.append(Line2D([], [], ls="", marker="o", ms=4, mfc="0.6", mec="black", mew=0.3, label="minimum"))
    ax.scatter(reps[:, 0], reps[:, 1], s=170, marker="*", c=palette[:b], edgecolors="black",
               linewidths=0.7, zorder=4)
    numbered = "" if b <= 60 else f"; #0-#59 of {b} numbered"
    handles.append(Line2D([], [], ls="", marker="*", ms=11, mfc="0.6", mec="black",
                          label=f"basin #k (its lowest minimum{numbered})"))
    if greyed:
        handles.append(Line2D([], [], ls="", marker="*", ms=11, mfc=OTHER_BASINS, mec="black",
                              label=f"{greyed} other basins (fewer minima), grey"))
    bounds = (ax.get_xlim(), ax.get_ylim()) if grid is not None else None
    for i in range(min(b, 60)):
        offset = _inward(bounds, reps[i], (5, 4))
        ax.annotate(f"#{i}", reps[i], xytext=offset, textcoords="offset points", fontsize=8, zorder=5, color="black",
                    ha="left" if offset[0] > 0 else "right",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    # (highest first; a saddle within 4 % of the picture's span of one already labelled keeps
    # its cross but not its label, which would overprint the other's)
    span = float(np.ptp(np.concatenate([pts, np.array([(sx, sy) for sx, sy, _ in saddles]).reshape(-1, 2)]), axis=0).max())
    labelled_at: list[tuple[float, float]] = []
    for sx, sy, se in saddles:
        ax.scatter([sx], [sy], marker="x", s=50, c="red", linewidths=1.8, zorder=5)
        if any(math.hypot(sx - lx, sy - ly) < 0.04 * span for lx, ly in labelled_at):
            continue
        labelled_at.append((sx, sy))
        offset = _inward(bounds, (sx, sy), (4, -10))
        ax.annotate(fmt(se), (sx, sy), xytext=offset, textcoords="offset points", fontsize=7, color="red", zorder=5,
                    ha="left" if offset[0] > 0 else "right", va="bottom" if offset[1] > 0 else "baseline",
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    if saddles:
        handles.append(Line2D([], [], ls="", marker="x", ms=6, mec="red", mew=1.8,
                              label=f"saddle of the {len(saddles)} highest barriers"))
    if grid is None:
        ax.margins(0.1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    marks = [reps[: min(b, 60)], np.array([(sx, sy) for sx, sy, _ in saddles]).reshape(-1, 2)]
    _place_map_legend(ax, handles, np.concatenate(marks), pts, [xy for xy, _ in drawn + straight])
    default = (f"{short_source(content)}: {content.n_minima} minim{'um' if content.n_minima == 1 else 'a'}, "
               f"{b} basin{'' if b == 1 else 's'} at {level_name(content, level)}{_ad_temperature_text(content)}")
    ax.set_title(wrap(title or default, axes_width(ax), 9), fontsize=9)
    return ax


#: Where the 2-D picture's legend may go, in the order tried.
_LEGEND_LOCS = ("upper right", "upper left", "lower left", "lower right", "center right", "center left",
                "upper center", "lower center")


def _place_map_legend(ax: Any, handles: list[Any], marks: np.ndarray, dots: np.ndarray,
                      paths: list[np.ndarray]) -> Any:
    """The legend of :func:`draw_map_2d` where it covers the fewest basin stars and labelled
    saddles (``marks``, data coordinates), then the fewest minima (``dots``) and vertices of
    the paths over barriers; the first such place of :data:`_LEGEND_LOCS`. (matplotlib's
    "best" weighs a star like any dot: on a plateau strewn with minima it covered a well.)"""
    legend = ax.legend(handles=handles, loc=_LEGEND_LOCS[0], fontsize=7, framealpha=0.8)
    renderer = renderer_of(ax.figure)
    to_px = ax.transData.transform
    points = [to_px(p) if len(p) else np.zeros((0, 2)) for p in
              (marks, dots, np.concatenate(paths) if paths else np.zeros((0, 2)))]
    best: tuple[tuple[int, float], str] | None = None
    for loc in _LEGEND_LOCS:
        legend.set_loc(loc)
        box = legend.get_window_extent(renderer)
        under = [int(((p[:, 0] >= box.x0) & (p[:, 0] <= box.x1) & (p[:, 1] >= box.y0) & (p[:, 1] <= box.y1)).sum())
                 for p in points]
        cost = (under[0], under[1] + 0.1 * under[2])
        if best is None or cost < best[0]:
            best = (cost, loc)
    legend.set_loc(best[1])  # type: ignore[index]
    return legend


def _inward(bounds: tuple[tuple[float, float], tuple[float, float]] | None, xy: Any,
            offset: tuple[float, float]) -> tuple[float, float]:
    """A label's offset (points) from ``xy``, turned toward the inside of the axes where the
    point lies in the outer sixth of the picture's width or height (a label at the edge
    ran off the axes)."""
    if bounds is None:
        return offset
    (x0, x1), (y0, y1) = bounds
    dx, dy = offset
    if (float(xy[0]) - x0) / max(x1 - x0, 1e-300) > 5 / 6:
        dx = -abs(dx)
    if (float(xy[1]) - y0) / max(y1 - y0, 1e-300) > 5 / 6:
        dy = -abs(dy)
    elif (float(xy[1]) - y0) / max(y1 - y0, 1e-300) < 1 / 6:
        dy = abs(dy)
    return dx, dy


def _ad_temperature_text(content: MapContent) -> str:
    """``", attraction-diffusion at T = 1 (the model's own: what its chains cross joins
    basins)"``: the temperature the basins were found at, which decides what they join
    (at the rings model's own T = 1 its chains cross between rings, so its basins mix
    them); "" where the map does not record it."""
    t_ad = ad_temperature(content)
    if t_ad is None or not math.isfinite(t_ad):
        return ""
    text = f", attraction-diffusion at T = {t_ad:.3g}"
    explored = map_temperature(content)
    if explored is not None and explored > 0 and math.isclose(explored, t_ad, rel_tol=1e-9):
        text += " (the model's own: what its chains cross joins basins)"
    return text


def plot_map_2d(content: MapContent, path: str | Path, *, level: int | None = None, title: str | None = None,
                labelled: int = 12) -> Path:
    """:func:`draw_map_2d` into a new figure, saved to ``path``.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the minima are not 2-D points, a bad level, or an unknown picture format
        (nothing is written).
    """
    path = check_picture_path(path)
    fig = new_figure(7.5, 6.2, layout="constrained")
    draw_map_2d(content, fig.add_subplot(1, 1, 1), level=level, title=title, labelled=labelled)
    return save_figure(fig, path)


# --------------------------------------------------------------------------- levels


def draw_levels(content: MapContent, ax: Any, *, title: str | None = None) -> Any:
    """Draw the number of basins against the magnetization (log-log) over the map's
    levels, with the slope of its fall (:func:`~landscape.plots.common.fall_slope`) and the
    main level marked, into ``ax``; return ``ax``.

    Raises
    ------
    LandscapeError
        If no level has alpha > 0.
    """
    from matplotlib.ticker import LogFormatter

    units = all(p.multiplier is not None for p in content.levels)
    alpha = np.array([p.multiplier if units else p.alpha for p in content.levels], dtype=np.float64)
    count = np.array([p.n_basins for p in content.levels], dtype=np.float64)
    keep = (alpha > 0) & np.isfinite(alpha) & (count > 0)
    if not keep.any():
        raise LandscapeError("no level has alpha > 0: nothing to draw on log axes")
    order = np.argsort(alpha[keep])
    a, n = alpha[keep][order], count[keep][order]
    label = "basins"
    fall = fall_slope(a, n)
    if fall is not None:
        label += f" (log-log slope {fall[0]:.2f} over {fall[1]:.3g}-{fall[2]:.3g}{' units' if units else ''})"
    ax.plot(a, n, "o-", color="tab:blue", label=label)
    for ai, ni in zip(a, n):
        ax.annotate(str(int(ni)), (ai, ni), xytext=(4, 4), textcoords="offset points", fontsize=8)
    main = alpha[content.main]
    if main > 0 and math.isfinite(main):
        ax.scatter([main], [content.n_basins], marker="*", s=200, c="tab:red", zorder=3,
                   label=f"main level: alpha {main:.4g}{' units' if units else ''}, {content.n_basins} basin{'' if content.n_basins == 1 else 's'}")
    ax.set_xscale("log")
    ax.set_yscale("log")

    class Plain(LogFormatter):  # plain numbers (0.1, 4, 100), not 1e-01 or 4x10^0
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(Plain())
        axis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))
    width = axes_width(ax)
    rule = alpha_unit_rule(content)
    unit_text = f" (alpha units: {rule})" if rule else " (in the map's alpha units)"
    ax.set_xlabel(wrap("magnetization alpha" + (unit_text if units else ""), width, 10))
    ax.set_ylabel("number of basins")
    ax.grid(True, which="both", color="0.9", lw=0.5)
    ax.legend(fontsize=8)
    default = f"{short_source(content)}: basins against alpha ({len(content.levels)} levels)"
    ax.set_title(wrap(title or default, width, 9), fontsize=9)
    return ax


def plot_levels(content: MapContent, path: str | Path, *, title: str | None = None) -> Path:
    """:func:`draw_levels` into a new figure, saved to ``path``.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If no level has alpha > 0, or an unknown picture format (nothing is written).
    """
    path = check_picture_path(path)
    fig = new_figure(6.0, 4.5, layout="constrained")
    draw_levels(content, fig.add_subplot(1, 1, 1), title=title)
    return save_figure(fig, path)
