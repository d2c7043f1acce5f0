"""Pictures of a landscape map, and the views of a map they share.

A map (:mod:`landscape.io.records`) holds a tree over its minima and the attraction-diffusion
basins of a ladder of magnetizations (``content.levels``, the main one
``content.partition``). :func:`partition_of` picks a level; :func:`basin_tree_of` gives the
coarse tree over its basins (:func:`landscape.mapping.tree.basin_tree`); :func:`tree_merges` lists
the merges of a tree with their barriers (absolute and relative, refined or estimated).
The figures:

- :func:`plot_tree`: the disconnectivity graph over minima (leaves coloured by basin), or
  over the basins of a level;
- :func:`plot_representatives`: each basin's representative (its lowest minimum) as an
  image, or, for vectors of more than two dimensions, as lines / a heat map;
- :func:`plot_map_2d`: a 2-D energy with its minima, basins, tree edges (refined paths
  where present) and saddles;
- :func:`plot_levels`: the number of basins against alpha (log-log);
- :func:`plot_funnel`: the funnel probe.

Every picture is drawn on a matplotlib ``Figure`` with the Agg canvas (no pyplot, no
window, no global state) and written to a temporary file next to the target, then renamed
onto it, so a failed or killed run never leaves half a picture. The format follows the
file's suffix (``.png``, ``.pdf``, ``.svg``, ...).

Energies have an arbitrary offset, so barriers are also given relative: a merge's height
minus the energy of the higher of its two sides' lowest leaves, i.e. the depth the
shallower side must climb (:meth:`landscape.mapping.tree.BarrierTree.escape`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landscape.errors import LandscapeError
from landscape.io.files import atomic_path
from landscape.io.records import MapContent, Partition
from landscape.mapping.tree import BarrierTree, basin_tree, plot_tree as draw_tree

# ------------------------------------------------------------------------------ views


def partition_of(content: MapContent, level: int | None = None) -> Partition:
    """The basins of ``content.levels[level]`` (None: the main level).

    Raises
    ------
    LandscapeError
        If ``level`` is out of range (one-line message).
    """
    if level is None:
        return content.partition
    if not 0 <= level < len(content.levels):
        raise LandscapeError(f"level {level} is out of range: the map has {len(content.levels)} levels, "
                             f"0..{len(content.levels) - 1}")
    return content.levels[level]


def level_name(content: MapContent, level: int | None = None) -> str:
    """``"the main level (alpha 0.1 units)"`` or ``"level 3 (alpha 1 units)"``."""
    k = content.main if level is None else level
    part = partition_of(content, k)
    where = "the main level" if k == content.main else f"level {k}"
    alpha = f"{part.multiplier:g} units" if part.multiplier is not None else f"{part.alpha:.4g}"
    return f"{where} (alpha {alpha})"


def basin_tree_of(content: MapContent, level: int | None = None) -> BarrierTree:
    """The tree over the basins of a level (None: the main one), from the map's barriers
    between minima (for a schema-1 map, its stored tree over the main level's basins)."""
    part = partition_of(content, level)
    if not content.over_minima:
        if part is not content.partition:
            raise LandscapeError("a schema-1 map has a tree for its main level only: remap it for the others")
        return content.tree
    t = content.barriers
    e = content.minima_energy
    return basin_tree(e, t.pairs, t.best(e), part.basin, part.representative, refined=t.is_refined(e))


def leaf_basins(content: MapContent, tree: BarrierTree, level: int | None = None) -> np.ndarray:
    """The basin of each leaf of ``tree`` at a level (a leaf is a minimum, or a basin's
    representative)."""
    return partition_of(content, level).basin[tree.leaves]


def map_alpha(content: MapContent) -> float | None:
    """The magnetization of the main level."""
    alpha = content.partition.alpha
    return float(alpha) if math.isfinite(alpha) else None


def map_temperature(content: MapContent) -> float | None:
    """The exploration temperature, if the map says (``/minima`` attr, or the config)."""
    for value in (content.attrs.get("minima", {}).get("temperature"), _config(content).get("temperature")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def ad_temperature(content: MapContent) -> float | None:
    """The attraction-diffusion temperature, if the map says."""
    for value in (content.attrs.get("levels", {}).get("temperature"), content.attrs.get("barriers", {}).get("temperature")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _config(content: MapContent) -> dict[str, Any]:
    config = content.meta.config if content.meta is not None else None
    return config if isinstance(config, dict) else {}


# -------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class TreeMerge:
    """One merge of a tree (one linkage row), with its barrier.

    Attributes
    ----------
    row : int
        Linkage row; the merge's node id is ``L + row``.
    children : (int, int)
        The two merged nodes (leaves ``< L``, merges ``>= L``).
    lower, higher : int
        The lowest leaf of the lower side and of the higher side.
    count : int
        Leaves below the merge.
    height : float
        Absolute barrier energy of the merge (the placeholder when not connected).
    relative : float
        ``height - E[higher]``: the depth the shallower side must climb (NaN when not
        connected).
    above_lowest : float
        ``height - E[lower]`` (NaN when not connected).
    connected : bool
        A path was found between the two sides.
    refined : bool
        The height is a string-method saddle.
    pair : (int, int) or None
        The minima pair whose barrier made the merge.
    barrier_row : int or None
        Its row of ``/barriers``.
    estimate : float
        The pair's estimate (highest point of the best path found; NaN when none).
    saddle : float
        The pair's refined saddle (NaN when not refined).
    above_estimate : bool
        The refined saddle lies too far above the estimate for the tree to take it.
    """

    row: int
    children: tuple[int, int]
    lower: int
    higher: int
    count: int
    height: float
    relative: float
    above_lowest: float
    connected: bool
    refined: bool
    pair: tuple[int, int] | None
    barrier_row: int | None
    estimate: float
    saddle: float
    above_estimate: bool


def tree_merges(content: MapContent, tree: BarrierTree | None = None) -> list[TreeMerge]:
    """The merges of ``tree`` (default: the map's tree over minima), lowest first."""
    tree = content.tree if tree is None else tree
    table = content.barriers
    above = table.above_estimate(content.minima_energy)
    energy = tree.energy
    n = tree.n_leaves
    out = []
    for k, row in enumerate(tree.linkage):
        c0, c1 = int(row[0]), int(row[1])
        lower, higher = sorted((int(tree.lowest[c0]), int(tree.lowest[c1])), key=lambda i: (energy[i], i))
        conn = bool(tree.connected[k])
        height = tree.height(n + k)
        e = int(tree.pair[k]) if conn and tree.pair[k] >= 0 else None
        out.append(TreeMerge(
            row=k, children=(c0, c1), lower=lower, higher=higher, count=int(row[3]), height=height,
            relative=height - float(energy[higher]) if conn else math.nan,
            above_lowest=height - float(energy[lower]) if conn else math.nan,
            connected=conn, refined=bool(tree.refined[k]),
            pair=None if e is None else (int(table.pairs[e, 0]), int(table.pairs[e, 1])),
            barrier_row=e,
            estimate=float(table.estimate[e]) if e is not None else math.nan,
            saddle=float(table.refined[e]) if e is not None else math.nan,
            above_estimate=bool(above[e]) if e is not None else False,
        ))
    return out


# ---------------------------------------------------------------------- what to draw


def minima_kind(content: MapContent) -> str:
    """How the minima can be drawn: ``"image"``, ``"2d"`` or ``"vector"``.

    ``image``: shape (C, H, W) with C = 1 or 3, or (H, W). ``2d``: shape (2,).
    ``vector``: shape (D,) with D > 2.

    Raises
    ------
    LandscapeError
        For shapes none of the pictures can draw.
    """
    shape = tuple(np.shape(content.minima_x)[1:])
    if len(shape) == 3:
        if shape[0] in (1, 3):
            return "image"
        raise LandscapeError(
            f"cannot draw minima of shape {shape} as images: expected 1 (grey) or 3 (RGB) channels"
        )
    if len(shape) == 2:
        return "image"
    if len(shape) == 1:
        if shape[0] == 2:
            return "2d"
        if shape[0] > 2:
            return "vector"
    raise LandscapeError(f"cannot draw minima of shape {shape}: no picture fits them")


def data_range(content: MapContent) -> tuple[float, float]:
    """The data box ``(low, high)``: ``/minima`` attr ``data_range``, else the minima's own range."""
    value = content.attrs.get("minima", {}).get("data_range")
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
        if math.isfinite(low) and math.isfinite(high) and high > low:
            return low, high
    x = np.asarray(content.minima_x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0, 1.0
    low, high = float(x.min()), float(x.max())
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def _spec(value: Any) -> str:
    """A short text for a source entry (an energy spec may be a dict)."""
    if isinstance(value, dict):
        name = value.get("name") or value.get("kind")
        rest = ", ".join(f"{k}={v}" for k, v in sorted(value.items()) if k not in ("name", "kind"))
        return f"{name} ({rest})" if name and rest else str(name) if name else rest
    return str(value)


def describe_source(content: MapContent) -> str:
    """One line saying what was mapped (from the root attribute ``source``).

    Understands ``kind`` with ``path`` / ``checkpoint`` or ``spec`` / ``energy``,
    ``sha256``, ``regime`` and ``dataset``; other sources are listed as they are.
    """
    source = content.meta.source if content.meta is not None else None
    if isinstance(source, dict):
        what = next((source[k] for k in ("path", "checkpoint", "spec", "energy") if source.get(k)), None)
        if what is None:
            return ", ".join(f"{k} {_spec(v)}" for k, v in sorted(source.items())) or "unknown"
        kind = source.get("kind") or next(k for k in ("path", "checkpoint", "spec", "energy") if source.get(k))
        text = f"{kind} {_spec(what)}"
        if source.get("sha256"):
            text += f" (sha256 {str(source['sha256'])[:12]})"
        for key, name in (("regime", "regime"), ("dataset", "data")):
            if source.get(key) and source.get(key) != "unknown":
                text += f", {name} {source[key]}"
        return text
    if source is None or source == "":
        return "unknown"
    return str(source)


def map_dataset(content: MapContent) -> str | None:
    """The data set the mapped model learned, if the map says (``/minima`` attrs or the source)."""
    source = content.meta.source if content.meta is not None else None
    for value in (
        content.attrs.get("minima", {}).get("dataset"),
        source.get("dataset") if isinstance(source, dict) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None


def _short_source(content: MapContent) -> str:
    """A short name for titles: the data set, the source's label, file stem or energy name."""
    name = map_dataset(content)
    if name:
        return name
    source = content.meta.source if content.meta is not None else None
    if isinstance(source, dict):
        if source.get("label"):
            return str(source["label"])
        for key in ("path", "checkpoint"):
            if source.get(key):
                return Path(str(source[key])).stem
        for key in ("spec", "energy"):
            if source.get(key):
                value = source[key]
                if isinstance(value, dict):
                    return str(value.get("name") or value.get("kind") or key)
                return str(value)
    return source if isinstance(source, str) and source else "map"


# ------------------------------------------------------------------------------ saving


def check_picture_path(path: str | Path) -> Path:
    """``path`` as a Path if matplotlib can write its format (by suffix), else LandscapeError."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise LandscapeError(
            f"{path}: cannot tell the picture format from the suffix {path.suffix or '(none)'!r}; "
            "use .png, .pdf or .svg"
        )
    return path


#: Pictures are written through the library's one atomic writer.
atomic_output = atomic_path


def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    path = check_picture_path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


def _g(x: float) -> str:
    return f"{x:.4g}"


def show_image(ax: Any, x: np.ndarray, low: float, high: float, aspect: str = "auto") -> None:
    """Draw one example as an image on ``ax``: the data range ``[low, high]`` mapped to
    [0, 1] and clipped (NaN as ``low``); (H, W) and (1, H, W) in grey, (3, H, W) in RGB;
    no ticks."""
    img = np.clip((np.nan_to_num(np.asarray(x, dtype=np.float64), nan=low) - low) / (high - low), 0.0, 1.0)
    if img.ndim == 2 or img.shape[0] == 1:
        ax.imshow(img.reshape(img.shape[-2:]), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=aspect)
    else:
        ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest", aspect=aspect)
    ax.set_xticks([])
    ax.set_yticks([])


def _spurious_minima(content: MapContent) -> np.ndarray:
    """Per minimum: flagged spurious (all False without a diagnosis)."""
    if content.diagnosis is None:
        return np.zeros(content.n_minima, dtype=bool)
    return np.asarray(content.diagnosis.spurious, dtype=bool)


def _basin_palette(basin: np.ndarray) -> list[Any]:
    """A colour per basin number (cycling), for leaves coloured by basin."""
    colors = _basin_colors(min(int(basin.max()) + 1 if basin.size else 1, 20))
    return [colors[int(b) % len(colors)] for b in range(int(basin.max()) + 1 if basin.size else 1)]


def draw_map_tree(content: MapContent, ax: Any, *, level: int | None = None, basins: bool = False,
                  max_leaves: int = 300, title: str | None = None) -> Any:
    """Draw the map's disconnectivity graph into ``ax``: over minima (leaves coloured by
    their basin at ``level``), or with ``basins`` over the basins of that level (dot
    areas: chains per basin). Spurious minima (or basins whose lowest minimum is) in red."""
    part = partition_of(content, level)
    spurious = _spurious_minima(content)
    if basins or not content.over_minima:
        tree = basin_tree_of(content, level)
        name, plural = "basin", "basins"
        sizes = part.hits(content.minima_hits)
        colors = None
        default = f"{_short_source(content)}: disconnectivity graph over {tree.n_leaves} basins, {level_name(content, level)}"
    else:
        tree = content.tree
        name, plural = "minimum", "minima"
        sizes = None
        palette = _basin_palette(part.basin)
        colors = [palette[int(b)] for b in part.basin]
        default = (f"{_short_source(content)}: disconnectivity graph over {tree.n_leaves} minima, coloured by "
                   f"basin at {level_name(content, level)}")
    del plural
    marked = np.flatnonzero(spurious[tree.leaves]).tolist()
    return draw_tree(tree, ax, colors=colors, sizes=sizes, marked=marked, max_leaves=max_leaves,
                     title=title or default, name=name)


def plot_tree(content: MapContent, path: str | Path, *, level: int | None = None, basins: bool = False,
              title: str | None = None) -> Path:
    """:func:`draw_map_tree` into a new figure, saved to ``path``."""
    path = check_picture_path(path)
    n = content.tree.n_leaves if not basins else partition_of(content, level).n_basins
    fig = _new_figure(min(20.0, max(7.0, 0.05 * min(n, 300) + 6.0)), 5.5)
    draw_map_tree(content, fig.add_subplot(1, 1, 1), level=level, basins=basins, title=title)
    fig.tight_layout()
    return _save(fig, path)


def plot_representatives(
    content: MapContent,
    path: str | Path,
    *,
    level: int | None = None,
    max_basins: int = 100,
    title: str | None = None,
) -> Path:
    """Each basin's representative (its lowest minimum), lowest basins first.

    Image minima (C, H, W) with C = 1 or 3, or (H, W): a grid of images, the map's data
    range (``/minima`` attr ``data_range``, else the minima's own range) mapped to [0, 1]
    and clipped, each captioned with basin index, energy, number of minima and chains
    ending in it (red when flagged spurious). Vectors of D > 2 dimensions: one line per
    representative across the coordinates (parallel coordinates, D <= 32) or a heat map
    (rows basins, columns coordinates), coloured by energy.

    Parameters
    ----------
    content : MapContent
    path : str or Path
        Output picture (format by suffix).
    level : int, optional
        Draw the basins of ``content.levels[level]`` instead of the main level.
    max_basins : int
        Draw at most this many basins (the lowest).
    title : str, optional

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        For 2-D minima (use :func:`plot_map_2d`) or shapes that cannot be drawn, a bad
        level, or an unknown picture format.
    """
    path = check_picture_path(path)
    kind = minima_kind(content)
    if kind == "2d":
        raise LandscapeError("the minima are 2-D points: draw them on the energy with plot_map_2d")
    part = partition_of(content, level)
    order = np.argsort(part.energy, kind="stable")[: max(1, int(max_basins))]
    b = part.n_basins
    shown = f"lowest {order.size} of {b} basins" if order.size < b else f"{b} basins"
    title = title or f"{_short_source(content)}: basin representatives, {shown}, {level_name(content, level)}"
    if kind == "image":
        fig = _image_grid(content, part, order, title)
    else:
        fig = _vector_figure(content, part, order, title)
    return _save(fig, path)


def _image_grid(content: MapContent, part: Partition, order: np.ndarray, title: str) -> Any:
    low, high = data_range(content)
    spurious = _spurious_minima(content)[part.representative]
    sizes, hits = part.sizes(), part.hits(content.minima_hits)
    n = order.size
    ncols = int(min(10, max(1, math.ceil(math.sqrt(n * 1.5)))))
    nrows = math.ceil(n / ncols)
    # Fixed layout in inches: image cells with room above each for a two-line caption.
    h, w = np.shape(content.minima_x)[-2:]
    img_w = 1.2
    img_h = float(np.clip(img_w * h / max(w, 1), 0.4, 2.4))
    cap, gap, head = 0.34, 0.12, 0.45
    fig_w = max(5.0, ncols * (img_w + gap) + gap)
    fig_h = nrows * (img_h + cap + gap) + head
    fig = _new_figure(fig_w, fig_h)
    left0 = (fig_w - (ncols * (img_w + gap) - gap)) / 2
    for slot, basin in enumerate(order.tolist()):
        r, c = divmod(slot, ncols)
        left = left0 + c * (img_w + gap)
        bottom = fig_h - head - (r + 1) * (img_h + cap + gap) + gap
        ax = fig.add_axes((left / fig_w, bottom / fig_h, img_w / fig_w, img_h / fig_h))
        show_image(ax, content.minima_x[int(part.representative[basin])], low, high)
        caption = (
            f"#{basin}  E={_g(part.energy[basin])}{'  spurious' if spurious[basin] else ''}\n"
            f"{int(sizes[basin])} min, {int(hits[basin])} hits"
        )
        ax.set_title(caption, fontsize=7, color="red" if spurious[basin] else "black", pad=2)
        if spurious[basin]:
            for side in ax.spines.values():
                side.set_edgecolor("red")
                side.set_linewidth(1.5)
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / fig_h, va="top")
    return fig


def _vector_figure(content: MapContent, part: Partition, order: np.ndarray, title: str) -> Any:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    reps = part.representative[order]
    x = np.asarray(content.minima_x, dtype=np.float64)[reps].reshape(order.size, -1)
    d = x.shape[1]
    energy = part.energy[order]
    norm = Normalize(vmin=float(energy.min()), vmax=float(energy.max()) if energy.max() > energy.min() else float(energy.min()) + 1)
    cmap = colormaps["viridis"]
    if d <= 32:
        fig = _new_figure(max(6.0, 0.35 * d + 3.0), 4.5)
        ax = fig.add_subplot(1, 1, 1)
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
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="basin energy")
    else:
        low, high = data_range(content)
        fig = _new_figure(min(16.0, max(6.0, 0.02 * d + 4.0)), min(16.0, max(3.0, 0.18 * order.size + 1.5)))
        ax = fig.add_subplot(1, 1, 1)
        im = ax.imshow(x, aspect="auto", cmap="coolwarm", vmin=low, vmax=high, interpolation="nearest")
        if order.size <= 40:
            ax.set_yticks(np.arange(order.size))
            ax.set_yticklabels([f"#{int(b)} E={_g(e)}" for b, e in zip(order, energy)], fontsize=7)
        else:
            ax.set_ylabel("basins, lowest first")
            ax.set_yticks([])
        ax.set_xlabel("coordinate")
        fig.colorbar(im, ax=ax, label="value")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


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


def _basin_colors(b: int) -> np.ndarray:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if b <= 10 else "tab20"]
    return np.array([cmap(i % cmap.N) for i in range(b)])


def plot_map_2d(content: MapContent, path: str | Path, *, level: int | None = None, title: str | None = None,
                labelled: int = 12) -> Path:
    """A 2-D energy with its minima, basins, tree edges and saddles.

    Filled contours of ``content.grid`` (colours clipped at half again the span from the
    lowest energy to the highest barrier, so the wells show); every minimum as a dot
    coloured by its basin at ``level``; each basin's lowest minimum as a star with its
    number; every edge of the tree over minima (the pairs that made its merges): the
    refined path where the map keeps it, else a dashed straight line; the saddles of the
    highest ``labelled`` merges marked and labelled with their barrier energy. Without a
    grid only minima and paths are drawn.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the minima are not 2-D points, a bad level, or an unknown picture format.
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    path = check_picture_path(path)
    if minima_kind(content) != "2d":
        shape = tuple(np.shape(content.minima_x)[1:])
        raise LandscapeError(f"plot_map_2d draws 2-D energies; these minima have shape {shape}")
    part = partition_of(content, level)
    b = part.n_basins
    pts = np.asarray(content.minima_x, dtype=np.float64).reshape(-1, 2)
    reps = pts[part.representative]
    colors = _basin_colors(min(b, 20))
    basin_color = colors[part.basin % len(colors)]
    tree = content.tree
    merges = [m for m in tree_merges(content, tree) if m.pair is not None]
    grid = content.grid

    fig = _new_figure(7.5, 6.2)
    ax = fig.add_subplot(1, 1, 1)
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
    top = sorted(merges, key=lambda m: -m.height)[:labelled]
    saddles = []
    for m in top:
        if m.refined and content.tree_saddle is not None and np.isfinite(content.tree_saddle[m.row]).all():
            sx, sy = (float(v) for v in np.asarray(content.tree_saddle[m.row]).reshape(2))
            saddles.append((sx, sy, m.height))
    if grid is not None:
        e = np.ma.masked_invalid(np.asarray(grid.energy, dtype=np.float64))
        finite = e.compressed()
        lo = float(finite.min()) if finite.size else 0.0
        hi = _colour_top(finite, lo, [m.height for m in merges])
        levels = np.linspace(lo, hi, 25)
        clipped = np.ma.minimum(e, hi)
        cs = ax.contourf(grid.x, grid.y, clipped, levels=levels, cmap="viridis", extend="neither")
        ax.contour(grid.x, grid.y, clipped, levels=levels[::3], colors="white", linewidths=0.3, alpha=0.5)
        clipped_note = f" (clipped at {_g(hi)})" if finite.size and hi < float(finite.max()) else ""
        fig.colorbar(cs, ax=ax, label=f"energy U{clipped_note}", ticks=MaxNLocator(8))
        ax.set_xlim(float(np.min(grid.x)), float(np.max(grid.x)))
        ax.set_ylim(float(np.min(grid.y)), float(np.max(grid.y)))
    else:
        ax.text(0.01, 0.01, "no energy grid in this map: minima and paths only", transform=ax.transAxes,
                fontsize=8, color="0.3", va="bottom")
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
    ax.scatter(reps[:, 0], reps[:, 1], s=170, marker="*", c=colors[np.arange(b) % len(colors)], edgecolors="black",
               linewidths=0.7, zorder=4)
    handles.append(Line2D([], [], ls="", marker="*", ms=11, mfc="0.6", mec="black", label="basin (lowest minimum)"))
    for i in range(min(b, 60)):
        ax.annotate(str(i), reps[i], xytext=(5, 4), textcoords="offset points", fontsize=8, zorder=5,
                    color="black", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    for sx, sy, se in saddles:
        ax.scatter([sx], [sy], marker="x", s=50, c="red", linewidths=1.8, zorder=5)
        ax.annotate(_g(se), (sx, sy), xytext=(4, -10), textcoords="offset points", fontsize=7, color="red", zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    if saddles:
        handles.append(Line2D([], [], ls="", marker="x", ms=6, mec="red", mew=1.8,
                              label=f"saddle of the {len(saddles)} highest merges"))
    if grid is None:
        ax.margins(0.1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    ax.set_title(title or f"{_short_source(content)}: {content.n_minima} minima, {b} basins at "
                 f"{level_name(content, level)}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_levels(content: MapContent, path: str | Path, *, title: str | None = None) -> Path:
    """Number of basins against the magnetization (log-log) over the map's levels, with
    the fitted slope; the main level marked.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If no level has alpha > 0, or an unknown picture format.
    """
    from matplotlib.ticker import LogFormatter

    path = check_picture_path(path)
    units = all(p.multiplier is not None for p in content.levels)
    alpha = np.array([p.multiplier if units else p.alpha for p in content.levels], dtype=np.float64)
    count = np.array([p.n_basins for p in content.levels], dtype=np.float64)
    keep = (alpha > 0) & np.isfinite(alpha) & (count > 0)
    if not keep.any():
        raise LandscapeError("no level has alpha > 0: nothing to draw on log axes")
    order = np.argsort(alpha[keep])
    a, n = alpha[keep][order], count[keep][order]
    fig = _new_figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    label = "basins"
    if np.unique(a).size >= 2:
        slope, _ = np.polyfit(np.log(a), np.log(n), 1)
        label += f" (log-log slope {slope:.2f})"
    ax.plot(a, n, "o-", color="tab:blue", label=label)
    for ai, ni in zip(a, n):
        ax.annotate(str(int(ni)), (ai, ni), xytext=(4, 4), textcoords="offset points", fontsize=8)
    main = alpha[content.main]
    if main > 0 and math.isfinite(main):
        ax.scatter([main], [content.n_basins], marker="*", s=200, c="tab:red", zorder=3,
                   label=f"main level: alpha {main:.4g}{' units' if units else ''}, {content.n_basins} basins")
    ax.set_xscale("log")
    ax.set_yscale("log")

    class Plain(LogFormatter):  # plain numbers (0.1, 4, 100), not 1e-01 or 4x10^0
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(Plain())
        axis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))
    ax.set_xlabel("magnetization alpha" + (" (alpha units: the typical barrier over the typical spacing)" if units else ""))
    ax.set_ylabel("number of basins")
    ax.grid(True, which="both", color="0.9", lw=0.5)
    ax.legend(fontsize=8)
    ax.set_title(title or f"{_short_source(content)}: basins against alpha ({len(content.levels)} levels)", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_funnel(content: MapContent, path: str | Path, *, title: str | None = None, max_basins: int = 8) -> Path:
    """The funnel probe of a map: where the chains end against the noise level.

    Left: per noise level, the share of chains in each of the fullest basins (stacked;
    the basins that are a sink at some level, at most ``max_basins``, the rest as
    "other"). Right: the effective number of occupied basins ``exp(H)`` per level for
    all chains, those from data and those from noise, with the data's own (the score's
    reference) dotted. For image maps a row below shows the sink basins of the collapse
    level (their lowest minima, captioned with their share of the chains there).

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the map has no funnel probe, or an unknown picture format.
    """
    from landscape.mapping.funnel import FUNNEL_SCORE, collapse_level, describe, sinks

    path = check_picture_path(path)
    funnel = content.funnel
    if funnel is None:
        raise LandscapeError("the map has no funnel probe: run landscape funnel first")
    occ = np.asarray(funnel.occupancy, dtype=np.float64)
    k_levels, b = occ.shape
    noise = np.asarray(funnel.noise, dtype=np.float64)
    shown: list[int] = []
    rows = funnel.sinks if funnel.sinks is not None else np.array([(sinks(r) + [-1] * 5)[:5] for r in occ])
    for k in np.argsort(-occ.max(axis=1)):  # the most concentrated levels first
        for s in rows[k]:
            if s >= 0 and int(s) not in shown and len(shown) < max_basins:
                shown.append(int(s))
    shown.sort()
    k_star = collapse_level(funnel)
    star_sinks = [int(s) for s in rows[k_star] if s >= 0]
    pictures = minima_kind(content) == "image" and star_sinks
    fig = _new_figure(11.0, 6.8 if pictures else 4.6)
    top_frac = 0.62 if pictures else 1.0
    ax1 = fig.add_axes((0.07, 1 - top_frac + 0.1 * top_frac, 0.4, 0.78 * top_frac))
    ax2 = fig.add_axes((0.57, 1 - top_frac + 0.1 * top_frac, 0.4, 0.78 * top_frac))
    colors = _basin_colors(max(len(shown), 1))  # by position: basin numbers may be far apart
    xs = np.arange(k_levels)
    bottom = np.zeros(k_levels)
    for j, s in enumerate(shown):
        ax1.bar(xs, occ[:, s], bottom=bottom, color=colors[j], label=f"basin {s}", width=0.7)
        bottom += occ[:, s]
    ax1.bar(xs, np.clip(1.0 - bottom, 0, 1), bottom=bottom, color="0.85", label="other basins", width=0.7)
    ax1.set_xticks(xs)
    ax1.set_xticklabels([f"{t:.3g}" for t in noise], fontsize=8)
    ax1.set_xlabel("noise level tau (x - eps^2/2 dU/dx + tau eps z)")
    ax1.set_ylabel("share of chains")
    ax1.set_ylim(0, 1)
    ax1.legend(fontsize=7, loc="upper left", ncol=2, framealpha=0.8)
    ax1.set_title("where the chains end (quenched)", fontsize=9)

    def neff(o: np.ndarray | None) -> np.ndarray | None:
        if o is None:
            return None
        from landscape.mapping.funnel import entropy

        return np.exp([entropy(r) for r in np.asarray(o)])

    ax2.plot(xs, np.exp(np.asarray(funnel.entropy)), "o-", color="tab:blue", label="all chains")
    for o, style, label in ((funnel.occupancy_data, "s--", "chains from data"),
                            (funnel.occupancy_noise, "^--", "chains from noise")):
        values = neff(o)
        if values is not None:
            ax2.plot(xs, values, style, lw=1, ms=4, label=label)
    ref = funnel.attrs.get("reference_entropy")
    if isinstance(ref, (int, float)) and math.isfinite(ref):
        ax2.axhline(math.exp(ref), color="0.4", ls=":", label="the data's basins (reference)")
    ax2.set_xticks(xs)
    ax2.set_xticklabels([f"{t:.3g}" for t in noise], fontsize=8)
    ax2.set_xlabel("noise level tau")
    ax2.set_ylabel("effective number of basins exp(H)")
    ax2.set_ylim(bottom=0)
    ax2.legend(fontsize=7, framealpha=0.8)
    ax2.set_title(describe(funnel).split(" (")[0], fontsize=9)
    if pictures:
        low, high = data_range(content)
        n = min(len(star_sinks), 8)
        w = 0.9 / 8
        for slot, s in enumerate(star_sinks[:n]):
            ax = fig.add_axes((0.05 + slot * w, 0.03, w * 0.85, 0.24))
            show_image(ax, content.minima_x[int(content.basin_representative[s])], low, high, aspect="equal")
            ax.set_title(f"basin {s}: {100 * occ[k_star, s]:.0f}%", fontsize=7)
        what = "the funnel's sinks" if funnel.score >= FUNNEL_SCORE else "the fullest basins where the chains are most concentrated"
        fig.text(0.05, 0.29, f"{what}, at noise {noise[k_star]:.3g} (each basin's lowest minimum)", fontsize=8)
    fig.suptitle(title or f"{_short_source(content)}: funnel probe, {int(funnel.attrs.get('chains_per_level', 0))} "
                 f"chains per level", fontsize=10)
    return _save(fig, path)
