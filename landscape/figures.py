"""Pictures of a landscape map, and the per-level view of a map they share.

A map (:mod:`landscape.mapfile`) holds the basins of one chosen magnetization at the top
level and, optionally, the basins of a whole alpha ladder under ``/levels``.
:func:`level_view` picks one of them; :func:`tree_merges` lists the merges of its basin
tree with their barriers (absolute and relative, refined where the map has refined
barriers). The figures:

- :func:`plot_representatives`: each basin's representative (its lowest minimum) as an
  image, or, for vectors of more than two dimensions, as lines / a heat map.
- :func:`plot_map_2d`: a 2-D energy with its minima, basins, tree edges (refined paths
  where present) and saddles.
- :func:`plot_levels`: the number of basins against alpha (log-log).
- :func:`plot_tree`: the disconnectivity graph (:func:`landscape.tree.plot_disconnectivity`).

Every picture is drawn on a matplotlib ``Figure`` with the Agg canvas (no pyplot, no
window, no global state) and written to a temporary file next to the target, then renamed
onto it, so a failed or killed run never leaves half a picture. The format follows the
file's suffix (``.png``, ``.pdf``, ``.svg``, ...).

Energies have an arbitrary offset, so barriers are also given relative: a merge's height
minus the energy of the higher of its two sides' lowest basins, i.e. the depth the
shallower side must climb (as in :func:`landscape.tree.relative_barriers`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any
from uuid import uuid4

import networkx as nx
import numpy as np

from landscape.errors import LandscapeError
from landscape.mapfile import GridData, MapContent
from landscape.tree import BasinTree, minimax_tree, plot_disconnectivity

# ------------------------------------------------------------------------- level view


@dataclass(frozen=True, eq=False)  # arrays: compare fields explicitly
class LevelView:
    """The basins of one level of a map: the top level (``level=None``) or ``/levels/<k>``.

    Attributes
    ----------
    level : int or None
        Index into ``content.levels``; None for the top-level groups.
    alpha : float or None
        The level's magnetization (for the top level, ``/barriers`` attr ``alpha`` or the
        config's ``alpha`` when it is a number; None when unknown).
    minima_basin : ndarray int64 [N]
    basin_representative : ndarray int64 [B]
    basin_energy : ndarray float64 [B]
    barrier_pairs : ndarray int64 [E, 2]
    barrier_energy : ndarray float64 [E]
    linkage : ndarray float64 [B-1, 4]
    barrier_refined : ndarray float64 [E] or None
        Path-method barriers; top level only (None for a ladder level).
    barrier_paths : ndarray float32 [E, P, *shape] or None
        Refined paths; top level only.
    basin_minima : ndarray int64 [B]
        Number of minima in each basin.
    basin_hits : ndarray int64 [B]
        Chains that ended in each basin (sum of its minima's hits).
    """

    level: int | None
    alpha: float | None
    minima_basin: np.ndarray
    basin_representative: np.ndarray
    basin_energy: np.ndarray
    barrier_pairs: np.ndarray
    barrier_energy: np.ndarray
    linkage: np.ndarray
    barrier_refined: np.ndarray | None
    barrier_paths: np.ndarray | None
    basin_minima: np.ndarray
    basin_hits: np.ndarray

    @property
    def n_basins(self) -> int:
        return int(self.basin_energy.shape[0])

    @property
    def name(self) -> str:
        """``"the top level"`` or ``"level k"``, with alpha when known."""
        where = "the top level" if self.level is None else f"level {self.level}"
        return where if self.alpha is None else f"{where} (alpha {self.alpha:.4g})"

    @cached_property
    def tree(self) -> BasinTree:
        """The basin tree of this level, consistent with its stored linkage (:func:`basin_tree`)."""
        return basin_tree(self)


def map_alpha(content: MapContent) -> float | None:
    """The magnetization the top level was built for, if the map says."""
    for value in (content.attrs.get("barriers", {}).get("alpha"), _config(content).get("alpha")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def map_temperature(content: MapContent) -> float | None:
    """The mapping temperature, if the map says (``/minima`` or ``/barriers`` attrs, or the config)."""
    for value in (
        content.attrs.get("minima", {}).get("temperature"),
        content.attrs.get("barriers", {}).get("temperature"),
        _config(content).get("temperature"),
    ):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _config(content: MapContent) -> dict[str, Any]:
    config = content.meta.config if content.meta is not None else None
    return config if isinstance(config, dict) else {}


def level_view(content: MapContent, level: int | None = None) -> LevelView:
    """The basins of the top level (``level=None``) or of ``content.levels[level]``.

    Refined barriers and paths belong to the top level only.

    Raises
    ------
    LandscapeError
        If the map has no basins, has no levels while ``level`` is given, or ``level`` is
        out of range (one-line message).
    """
    if level is None:
        view = {
            "level": None,
            "alpha": map_alpha(content),
            "minima_basin": np.asarray(content.minima_basin, dtype=np.int64),
            "basin_representative": np.asarray(content.basin_representative, dtype=np.int64),
            "basin_energy": np.asarray(content.basin_energy, dtype=np.float64),
            "barrier_pairs": np.asarray(content.barrier_pairs, dtype=np.int64).reshape(-1, 2),
            "barrier_energy": np.asarray(content.barrier_energy, dtype=np.float64),
            "linkage": np.asarray(content.linkage, dtype=np.float64).reshape(-1, 4),
            "barrier_refined": None if content.barrier_refined is None else np.asarray(content.barrier_refined, np.float64),
            "barrier_paths": None if content.barrier_paths is None else np.asarray(content.barrier_paths),
        }
    else:
        levels = content.levels or []
        if not levels:
            raise LandscapeError(f"level {level} asked for, but the map has no levels (it was built for one alpha)")
        if not 0 <= level < len(levels):
            raise LandscapeError(f"level {level} is out of range: the map has {len(levels)} levels, 0..{len(levels) - 1}")
        lv = levels[level]
        view = {
            "level": int(level),
            "alpha": float(lv.alpha),
            "minima_basin": np.asarray(lv.minima_basin, dtype=np.int64),
            "basin_representative": np.asarray(lv.basin_representative, dtype=np.int64),
            "basin_energy": np.asarray(lv.basin_energy, dtype=np.float64),
            "barrier_pairs": np.asarray(lv.barrier_pairs, dtype=np.int64).reshape(-1, 2),
            "barrier_energy": np.asarray(lv.barrier_energy, dtype=np.float64),
            "linkage": np.asarray(lv.linkage, dtype=np.float64).reshape(-1, 4),
            "barrier_refined": None,
            "barrier_paths": None,
        }
    b = view["basin_energy"].shape[0]
    if b == 0:
        raise LandscapeError("the map has no basins")
    basin = view["minima_basin"]
    hits = np.asarray(content.minima_hits, dtype=np.int64)
    return LevelView(
        **view,
        basin_minima=np.bincount(basin, minlength=b).astype(np.int64),
        basin_hits=np.bincount(basin, weights=hits, minlength=b).round().astype(np.int64),
    )


# -------------------------------------------------------------------------- the tree


def basin_tree(view: LevelView) -> BasinTree:
    """The :class:`~landscape.tree.BasinTree` of a level, matching its stored linkage.

    The linkage stored in a map is the authority. The tree is rebuilt with
    :func:`~landscape.tree.minimax_tree` from the level's barrier estimates (or, at the
    top level, from the refined barriers where present); when neither rebuild gives the
    stored linkage, the tree is read from the linkage itself, each merge attributed to the
    tested pair with the lowest barrier between its two sides (none: disconnected).
    """
    energy, pairs, stored = view.basin_energy, view.barrier_pairs, view.linkage
    candidates = [view.barrier_energy]
    if view.barrier_refined is not None:
        refined = view.barrier_refined
        candidates.append(np.where(np.isfinite(refined), refined, view.barrier_energy))
        candidates.append(np.fmin(refined, view.barrier_energy))
    for barrier in candidates:
        tree = minimax_tree(energy, pairs, barrier)
        if _same_linkage(tree.linkage, stored):
            return tree
    return tree_from_linkage(stored, energy, pairs, candidates[-1])


def _same_linkage(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.shape == b.shape
        and bool(np.array_equal(a[:, [0, 1, 3]], b[:, [0, 1, 3]]))
        and bool(np.allclose(a[:, 2], b[:, 2], rtol=1e-9, atol=1e-12))
    )


def tree_from_linkage(linkage: np.ndarray, basin_energy: np.ndarray, pairs: np.ndarray, barrier: np.ndarray) -> BasinTree:
    """A :class:`~landscape.tree.BasinTree` whose structure and heights are ``linkage``'s.

    Each merge is attributed to the tested pair across its two sides with the lowest
    barrier (raised to the higher of the pair's basin energies); a merge with no finite
    pair across is flagged disconnected.

    Cost: O(B * (E + B)) with numpy.
    """
    energy = np.asarray(basin_energy, dtype=np.float64)
    z = np.asarray(linkage, dtype=np.float64).reshape(-1, 4)
    b = energy.size
    if z.shape[0] != b - 1:
        raise LandscapeError(f"the tree has {z.shape[0]} merges for {b} basins (expected {b - 1})")
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    barrier = np.asarray(barrier, dtype=np.float64).reshape(-1)
    ok = np.isfinite(barrier) & (pairs[:, 0] != pairs[:, 1])
    pi, pj = pairs[ok, 0], pairs[ok, 1]
    eff = np.maximum(barrier[ok], np.maximum(energy[pi], energy[pj])) if ok.any() else np.zeros(0)

    def key(i: int) -> tuple[float, int]:
        return (float(energy[i]), i)

    label = np.arange(b)  # cluster id of each basin
    lowest = list(range(b))
    flags: list[bool] = []
    mst: list[tuple[int, int, float]] = []
    merges: list[tuple[int, int]] = []
    graph = nx.DiGraph()
    for i in range(b):
        graph.add_node(i, kind="basin", energy=float(energy[i]))
    for k, row in enumerate(z):
        a, c = int(row[0]), int(row[1])
        la, lc = label[pi], label[pj]
        across = ((la == a) & (lc == c)) | ((la == c) & (lc == a))
        low = min(lowest[a], lowest[c], key=key)
        if across.any():
            idx = np.flatnonzero(across)
            best = idx[np.lexsort((np.minimum(pi[idx], pj[idx]), eff[idx]))[0]]
            i, j = sorted((int(pi[best]), int(pj[best])))
            mst.append((i, j, float(row[2])))
            merges.append((i, j))
            flags.append(False)
        else:
            merges.append(tuple(sorted((lowest[a], lowest[c]), key=key)))  # type: ignore[arg-type]
            flags.append(True)
        node = b + k
        label[(label == a) | (label == c)] = node
        lowest.append(low)
        graph.add_node(node, kind="merge", height=float(row[2]), disconnected=flags[-1], count=int(row[3]), lowest=low)
        graph.add_edge(node, a)
        graph.add_edge(node, c)
    disc = np.array(flags, dtype=bool)
    if disc.any():
        top = float(z[disc, 2].max())
    else:
        finite_top = max([float(energy.max())] + z[:, 2].tolist())
        top = finite_top + max(1.0, 0.1 * (finite_top - float(energy.min())))
    return BasinTree(
        linkage=z.copy(),
        disconnected=disc,
        top=top,
        mst_edges=mst,
        merge_order=merges,
        graph=graph,
        lowest=np.array(lowest, dtype=np.int64),
        offset=float(energy.min()),
    )


@dataclass(frozen=True)
class TreeMerge:
    """One merge of a level's basin tree (one linkage row), with its barriers.

    Attributes
    ----------
    row : int
        Linkage row; the merge's node id is ``B + row``.
    children : (int, int)
        The two merged nodes (basins ``< B``, merges ``>= B``).
    lower, higher : int
        The lowest basin of the lower side and of the higher side.
    count : int
        Basins below the merge.
    height : float
        Absolute barrier energy of the merge (the tree's placeholder ``top`` when
        ``disconnected``).
    relative : float
        ``height - E[higher]``: the depth the shallower side must climb (NaN when
        disconnected).
    above_lowest : float
        ``height - E[lower]`` (NaN when disconnected).
    disconnected : bool
        No path was found between the two sides.
    pair : (int, int) or None
        The tested basin pair whose connection made the merge.
    barrier_row : int or None
        Row of ``/barriers/pairs`` holding that pair (the one refined, else the lowest
        estimate, when the pair was tested more than once).
    estimate : float
        The attraction-diffusion barrier of that row (NaN when none).
    refined : float
        The refined (path-method) barrier of that row; NaN when not refined.
    refined_relative : float
        ``max(refined, E[i], E[j]) - E[higher]`` for the pair (i, j); NaN when not refined.
    has_path : bool
        The map holds a refined path for that row.
    """

    row: int
    children: tuple[int, int]
    lower: int
    higher: int
    count: int
    height: float
    relative: float
    above_lowest: float
    disconnected: bool
    pair: tuple[int, int] | None
    barrier_row: int | None
    estimate: float
    refined: float
    refined_relative: float
    has_path: bool


def _path_ok(paths: np.ndarray | None, e: int) -> bool:
    """Row ``e`` of the paths has at least two finite points (NaN rows: not refined)."""
    if paths is None:
        return False
    p = np.asarray(paths[e])
    return bool(np.isfinite(p.reshape(p.shape[0], -1)).all(axis=1).sum() >= 2)


def _pair_row(view: LevelView, i: int, j: int) -> int | None:
    """The row of barriers/pairs for basins {i, j}: refined with a path, refined, lowest estimate."""
    p = view.barrier_pairs
    rows = np.flatnonzero(((p[:, 0] == i) & (p[:, 1] == j)) | ((p[:, 0] == j) & (p[:, 1] == i)))
    if rows.size == 0:
        return None
    refined = view.barrier_refined

    def rank(e: int) -> tuple[int, int, float]:
        r = float(refined[e]) if refined is not None else math.nan
        has_r = math.isfinite(r)
        return (
            0 if has_r and _path_ok(view.barrier_paths, e) else 1,
            0 if has_r else 1,
            r if has_r else float(view.barrier_energy[e]),
        )

    return int(min(rows.tolist(), key=rank))


def tree_merges(view: LevelView) -> list[TreeMerge]:
    """The merges of the level's basin tree, lowest first (linkage order)."""
    tree = view.tree
    energy = view.basin_energy
    b = view.n_basins
    out = []
    for k, row in enumerate(tree.linkage):
        c0, c1 = int(row[0]), int(row[1])
        lows = sorted((int(tree.lowest[c0]), int(tree.lowest[c1])), key=lambda i: (energy[i], i))
        lower, higher = lows
        disc = bool(tree.disconnected[k])
        height = float(row[2])
        pair = None if disc else tuple(sorted(tree.merge_order[k]))
        e_row = None if pair is None else _pair_row(view, *pair)
        estimate = refined = refined_rel = math.nan
        has_path = False
        if e_row is not None:
            estimate = float(view.barrier_energy[e_row])
            if view.barrier_refined is not None and math.isfinite(view.barrier_refined[e_row]):
                refined = float(view.barrier_refined[e_row])
                refined_rel = max(refined, float(energy[pair[0]]), float(energy[pair[1]])) - float(energy[higher])
            has_path = _path_ok(view.barrier_paths, e_row)
        out.append(
            TreeMerge(
                row=k,
                children=(c0, c1),
                lower=lower,
                higher=higher,
                count=int(row[3]),
                height=height,
                relative=math.nan if disc else height - float(energy[higher]),
                above_lowest=math.nan if disc else height - float(energy[lower]),
                disconnected=disc,
                pair=pair,  # type: ignore[arg-type]
                barrier_row=e_row,
                estimate=estimate,
                refined=refined,
                refined_relative=refined_rel,
                has_path=has_path,
            )
        )
    assert len(out) == b - 1
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


def _spurious_basins(content: MapContent, view: LevelView) -> np.ndarray:
    """Per basin: its representative is flagged spurious (all False without a diagnosis)."""
    if content.diagnosis is None:
        return np.zeros(view.n_basins, dtype=bool)
    return np.asarray(content.diagnosis.spurious, dtype=bool)[view.basin_representative]


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


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (same suffix); rename it onto ``path`` on success.

    Creates the parent folder. On any exception the temporary file is removed and an
    existing file at ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


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


# --------------------------------------------------------------------- the pictures


def plot_tree(content: MapContent, path: str | Path, *, level: int | None = None, title: str | None = None) -> Path:
    """The disconnectivity graph of a level (dot areas: chains per basin; red: spurious).

    Returns the path written.
    """
    path = check_picture_path(path)
    view = level_view(content, level)
    marked = np.flatnonzero(_spurious_basins(content, view)).tolist()
    title = title or f"{_short_source(content)}: disconnectivity graph, {view.n_basins} basins, {view.name}"
    with atomic_output(path) as tmp:
        plot_disconnectivity(view.tree, view.basin_energy, tmp, sizes=view.basin_hits, marked=marked, title=title)
    return path


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
        Draw the basins of ``content.levels[level]`` instead of the top level.
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
    view = level_view(content, level)
    order = np.argsort(view.basin_energy, kind="stable")[: max(1, int(max_basins))]
    shown = f"lowest {order.size} of {view.n_basins} basins" if order.size < view.n_basins else f"{view.n_basins} basins"
    title = title or f"{_short_source(content)}: basin representatives, {shown}, {view.name}"
    if kind == "image":
        fig = _image_grid(content, view, order, title)
    else:
        fig = _vector_figure(content, view, order, title)
    return _save(fig, path)


def _image_grid(content: MapContent, view: LevelView, order: np.ndarray, title: str) -> Any:
    low, high = data_range(content)
    spurious = _spurious_basins(content, view)
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
        show_image(ax, content.minima_x[int(view.basin_representative[basin])], low, high)
        caption = (
            f"#{basin}  E={_g(view.basin_energy[basin])}{'  spurious' if spurious[basin] else ''}\n"
            f"{int(view.basin_minima[basin])} min, {int(view.basin_hits[basin])} hits"
        )
        ax.set_title(caption, fontsize=7, color="red" if spurious[basin] else "black", pad=2)
        if spurious[basin]:
            for side in ax.spines.values():
                side.set_edgecolor("red")
                side.set_linewidth(1.5)
    fig.suptitle(title, fontsize=9, y=1 - 0.12 / fig_h, va="top")
    return fig


def _vector_figure(content: MapContent, view: LevelView, order: np.ndarray, title: str) -> Any:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    reps = view.basin_representative[order]
    x = np.asarray(content.minima_x, dtype=np.float64)[reps].reshape(order.size, -1)
    d = x.shape[1]
    energy = view.basin_energy[order]
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


def _grid_energy(grid: GridData, pts: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of the grid energy at points [M, 2] (clamped to the grid)."""
    x, y, e = np.asarray(grid.x), np.asarray(grid.y), np.asarray(grid.energy)
    if x.size > 1 and x[0] > x[-1]:
        x, e = x[::-1], e[:, ::-1]
    if y.size > 1 and y[0] > y[-1]:
        y, e = y[::-1], e[::-1, :]
    if x.size < 2 or y.size < 2:
        return np.full(pts.shape[0], float(e.ravel()[0]) if e.size else math.nan)
    fx = np.interp(pts[:, 0], x, np.arange(x.size))
    fy = np.interp(pts[:, 1], y, np.arange(y.size))
    i0 = np.clip(np.floor(fx).astype(np.int64), 0, x.size - 2)
    j0 = np.clip(np.floor(fy).astype(np.int64), 0, y.size - 2)
    tx, ty = fx - i0, fy - j0
    return (
        (1 - tx) * (1 - ty) * e[j0, i0]
        + tx * (1 - ty) * e[j0, i0 + 1]
        + (1 - tx) * ty * e[j0 + 1, i0]
        + tx * ty * e[j0 + 1, i0 + 1]
    )


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


def plot_map_2d(content: MapContent, path: str | Path, *, level: int | None = None, title: str | None = None) -> Path:
    """A 2-D energy with its minima, basins, tree edges and saddles.

    Filled contours of ``content.grid`` (colours clipped at half again the span from the
    lowest energy to the highest barrier, so the wells show); every minimum as a dot coloured by basin;
    representatives as stars with their basin numbers; for each edge of the minimax tree
    (the tested pairs that made the merges), the refined path as a line with its saddle
    (highest point on the grid, labelled with the refined barrier energy) as an x, or a
    dashed straight line between the representatives where the pair was not refined
    (always so for a ladder level). Without a grid only minima and paths are drawn.

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
    view = level_view(content, level)
    b = view.n_basins
    pts = np.asarray(content.minima_x, dtype=np.float64).reshape(-1, 2)
    reps = pts[view.basin_representative]
    colors = _basin_colors(b)
    merges = [m for m in tree_merges(view) if m.pair is not None]
    grid = content.grid

    fig = _new_figure(7.5, 6.2)
    ax = fig.add_subplot(1, 1, 1)
    handles = []
    paths_drawn = []  # (xy [P, 2], merge)
    for m in merges:
        # A refined path that peaks above the AD estimate (the string relaxed onto a
        # worse route) is not what the tree used: it is drawn as an unrefined edge.
        worse = math.isfinite(m.estimate) and math.isfinite(m.refined) and m.refined > m.estimate
        if m.has_path and not worse and view.barrier_paths is not None and m.barrier_row is not None:
            xy = np.asarray(view.barrier_paths[m.barrier_row], dtype=np.float64).reshape(-1, 2)
            paths_drawn.append((xy[np.isfinite(xy).all(axis=1)], m))

    saddles = []  # (x, y, energy)
    if grid is not None:
        for xy, m in paths_drawn:
            along = _grid_energy(grid, xy)
            k = int(np.nanargmax(along))
            saddles.append((xy[k, 0], xy[k, 1], m.refined if math.isfinite(m.refined) else float(along[k])))
        e = np.ma.masked_invalid(np.asarray(grid.energy, dtype=np.float64))
        finite = e.compressed()
        lo = float(finite.min()) if finite.size else 0.0
        hi = _colour_top(finite, lo, [m.height for m in merges if not m.disconnected] + [s[2] for s in saddles])
        levels = np.linspace(lo, hi, 25)
        clipped = np.ma.minimum(e, hi)
        cs = ax.contourf(grid.x, grid.y, clipped, levels=levels, cmap="viridis", extend="neither")
        ax.contour(grid.x, grid.y, clipped, levels=levels[::3], colors="white", linewidths=0.3, alpha=0.5)
        clipped_note = f" (clipped at {_g(hi)})" if finite.size and hi < float(finite.max()) else ""
        fig.colorbar(cs, ax=ax, label=f"energy U{clipped_note}", ticks=MaxNLocator(8))
        ax.set_xlim(float(np.min(grid.x)), float(np.max(grid.x)))
        ax.set_ylim(float(np.min(grid.y)), float(np.max(grid.y)))
    else:
        ax.text(
            0.01, 0.01, "no energy grid in this map: minima and paths only",
            transform=ax.transAxes, fontsize=8, color="0.3", va="bottom",
        )

    for xy, m in paths_drawn:
        ax.plot(xy[:, 0], xy[:, 1], color="white", lw=2.6, zorder=2)
        ax.plot(xy[:, 0], xy[:, 1], color="crimson", lw=1.4, zorder=2.1)
    if paths_drawn:
        handles.append(Line2D([], [], color="crimson", lw=1.4, label="refined path (tree edge)"))
    drawn_rows = {m.row for _, m in paths_drawn}
    straight = [m for m in merges if m.row not in drawn_rows]
    for m in straight:
        i, j = m.pair  # type: ignore[misc]
        ax.plot(*np.stack([reps[i], reps[j]]).T, color="0.25", lw=1.0, ls="--", zorder=2)
    if straight:
        handles.append(Line2D([], [], color="0.25", lw=1.0, ls="--", label="tree edge (not refined)"))

    ax.scatter(pts[:, 0], pts[:, 1], s=14, c=colors[view.minima_basin], edgecolors="black", linewidths=0.3, zorder=3)
    handles.append(Line2D([], [], ls="", marker="o", ms=4, mfc="0.6", mec="black", mew=0.3, label="minimum"))
    ax.scatter(reps[:, 0], reps[:, 1], s=170, marker="*", c=colors, edgecolors="black", linewidths=0.7, zorder=4)
    handles.append(Line2D([], [], ls="", marker="*", ms=11, mfc="0.6", mec="black", label="basin representative"))
    for i in range(min(b, 60)):
        ax.annotate(str(i), reps[i], xytext=(5, 4), textcoords="offset points", fontsize=8, zorder=5,
                    color="black", bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    for sx, sy, se in saddles:
        ax.scatter([sx], [sy], marker="x", s=50, c="red", linewidths=1.8, zorder=5)
        ax.annotate(_g(se), (sx, sy), xytext=(4, -10), textcoords="offset points", fontsize=7, color="red", zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    if saddles:
        handles.append(Line2D([], [], ls="", marker="x", ms=6, mec="red", mew=1.8, label="saddle (barrier energy)"))
    if grid is None:
        ax.margins(0.1)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(handles=handles, loc="upper right", fontsize=7, framealpha=0.8)
    ax.set_title(title or f"{_short_source(content)}: {b} basins, {view.name}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def plot_levels(content: MapContent, path: str | Path, *, title: str | None = None) -> Path:
    """Number of basins against alpha (log-log) over the map's levels, with the fitted slope.

    The top level's alpha, when the map says, is marked. Levels with alpha <= 0 cannot
    sit on a log axis and are left out (noted on the picture).

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the map has no levels (or none with alpha > 0), or an unknown picture format.
    """
    from matplotlib.ticker import LogFormatter

    path = check_picture_path(path)
    if not content.levels:
        raise LandscapeError("the map has no levels (it was built for one alpha): nothing to plot against alpha")
    alpha = np.array([lv.alpha for lv in content.levels], dtype=np.float64)
    count = np.array([np.shape(lv.basin_energy)[0] for lv in content.levels], dtype=np.float64)
    keep = (alpha > 0) & np.isfinite(alpha) & (count > 0)
    if not keep.any():
        raise LandscapeError("no level has alpha > 0 and at least one basin: nothing to draw on log axes")
    a, n = alpha[keep], count[keep]
    order = np.argsort(a)
    a, n = a[order], n[order]

    fig = _new_figure(6.0, 4.5)
    ax = fig.add_subplot(1, 1, 1)
    label = "basins"
    if np.unique(a).size >= 2:
        slope, _ = np.polyfit(np.log(a), np.log(n), 1)
        label += f" (log-log slope {slope:.2f})"
    ax.plot(a, n, "o-", color="tab:blue", label=label)
    for ai, ni in zip(a, n):
        ax.annotate(str(int(ni)), (ai, ni), xytext=(4, 4), textcoords="offset points", fontsize=8)
    top = map_alpha(content)
    if top is not None and top > 0:
        ax.scatter([top], [content.n_basins], marker="*", s=200, c="tab:red", zorder=3,
                   label=f"top level: alpha {top:.4g}, {content.n_basins} basins")
    ax.set_xscale("log")
    ax.set_yscale("log")
    class Plain(LogFormatter):  # plain numbers (0.1, 4, 100), not 1e-01 or 4x10^0
        def __call__(self, x: float, pos: int | None = None) -> str:
            return f"{x:g}" if super().__call__(x, pos) else ""

    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(Plain())
        axis.set_minor_formatter(Plain(labelOnlyBase=False, minor_thresholds=(1.2, 0.5)))
    ax.set_xlabel("magnetization alpha")
    ax.set_ylabel("number of basins")
    if (~keep).any():
        ax.text(0.01, 0.01, f"{int((~keep).sum())} level(s) with alpha <= 0 or no basins left out",
                transform=ax.transAxes, fontsize=8, color="0.3")
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
    from landscape.funnel import FUNNEL_SCORE, collapse_level, describe, sinks

    path = check_picture_path(path)
    funnel = content.funnel
    if funnel is None:
        raise LandscapeError("the map has no funnel probe: run landscape funnel first")
    occ = np.asarray(funnel.occupancy, dtype=np.float64)
    k_levels, b = occ.shape
    noise = np.asarray(funnel.noise, dtype=np.float64)
    shown: list[int] = []
    rows = funnel.sinks if funnel.sinks is not None else np.array([sinks(r) + [-1] * 5 for r in occ])[:, :5]
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
        from landscape.funnel import entropy

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
