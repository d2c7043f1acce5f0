"""Views of a landscape map: what the pictures, the text reports and the commands read off it.

A map (:mod:`landscape.io.records`) holds a tree over its minima and the attraction-diffusion
basins of a ladder of magnetizations (``content.levels``, the main one
``content.partition``). These functions look at it without drawing anything (no
matplotlib here), so the command line's text output, the comparison of two maps and the
pictures (:mod:`landscape.plots`) all read the same things the same way:

- which level: :func:`partition_of`, :func:`level_name`;
- the trees: :func:`basin_tree_of` (the coarse tree over a level's basins,
  :func:`landscape.mapping.tree.basin_tree`), :func:`leaf_basins`, :func:`tree_merges`
  (each merge with its barrier, absolute and relative, refined or estimated);
- the settings the map records: :func:`map_alpha`, :func:`map_temperature`,
  :func:`ad_temperature`;
- what the minima are and where they came from: :func:`minima_kind`, :func:`data_range`,
  :func:`spurious_minima`, :func:`describe_source` (one line), :func:`map_dataset`,
  :func:`short_source` (a short name for titles: the model and its data set).

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
from landscape.io.records import MapContent, Partition
from landscape.mapping.tree import BarrierTree, basin_tree

__all__ = [
    "TreeMerge",
    "ad_temperature",
    "basin_tree_of",
    "data_range",
    "describe_source",
    "leaf_basins",
    "level_name",
    "map_alpha",
    "map_dataset",
    "map_temperature",
    "minima_kind",
    "partition_of",
    "short_source",
    "spurious_minima",
    "tree_merges",
]

# ----------------------------------------------------------------------------- levels


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


#: What set a map's alpha unit (``/`` attrs ``levels.alpha_unit_rule``), in words.
ALPHA_UNIT_RULES = {
    "barriers": "the typical barrier over the typical spacing",
    "spread": "the minima's energy spread over the typical spacing (no barrier resolved)",
    "temperature": "T_AD over the typical spacing (no barrier and no energy spread resolved)",
    "single": "one minimum: nothing to pull towards",
    "arrival": "the pull that brings half the chains to their target, stronger than the typical barrier's",
    "given": "as given",
}


def alpha_unit_rule(content: MapContent) -> str | None:
    """In words, what set the map's alpha unit; None where the map does not say (maps
    made before it recorded the rule)."""
    return ALPHA_UNIT_RULES.get(str(content.attrs.get("levels", {}).get("alpha_unit_rule", "")))


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
    return basin_tree(e, t.pairs, t.best(e), part.basin, part.representative, refined=t.is_refined(e),
                      flat_rtol=content.tree.flat_rtol)


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


def merges_at_saddle_points(content: MapContent) -> int | None:
    """How many of the tree's refined merges sit at a saddle point (``/barriers/saddle_point``;
    the others at the top of a refined path whose gradient does not vanish there), or None
    where the map does not say (maps of earlier versions, schema-1 maps)."""
    if "saddle_points" not in content.attrs.get("barriers", {}) or content.schema_version < 2:
        return None
    tree, table = content.tree, content.barriers
    rows = tree.pair[tree.refined & (tree.pair >= 0)]
    return int(table.saddle_point[rows].sum())


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
    saddle_point : bool or None
        A refined merge's path top is a saddle point (the gradient vanishes there), or only
        the top of the relaxed path; None where not refined or the map does not say.
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
    saddle_point: bool | None = None


def tree_merges(content: MapContent, tree: BarrierTree | None = None) -> list[TreeMerge]:
    """The merges of ``tree`` (default: the map's tree over minima), lowest first."""
    tree = content.tree if tree is None else tree
    table = content.barriers
    above = table.above_estimate(content.minima_energy)
    points = table.saddle_point if merges_at_saddle_points(content) is not None else None
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
            saddle_point=bool(points[e]) if points is not None and e is not None and tree.refined[k] else None,
        ))
    return out


# ---------------------------------------------------------------------- what to draw


def minima_kind(content: MapContent) -> str:
    """How the minima can be drawn: ``"image"``, ``"2d"`` or ``"vector"``.

    ``image``: shape (C, H, W) with C = 1 or 3, or (H, W). ``2d``: shape (2,).
    ``vector``: shape (D,) with D = 1 or D > 2.

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
        if shape[0] != 2 and shape[0] >= 1:
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


def short_source(content: MapContent) -> str:
    """A short name for titles: the model (the source's label, file stem or energy name)
    and its data set, ``"digits_convergent on digits"`` (either alone where the map names
    only one; ``"map"`` when it says nothing of its source): two models of one data set
    get titles of their own."""
    dataset = map_dataset(content)
    model = _model_name(content)
    if model and dataset and model != dataset:
        return f"{model} on {dataset}"
    return model or dataset or "map"


def _model_name(content: MapContent) -> str | None:
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
    return source if isinstance(source, str) and source else None


#: The name the pictures used before the views had a module of their own.
_short_source = short_source


def spurious_minima(content: MapContent) -> np.ndarray:
    """Per minimum: flagged spurious by the map's own diagnosis (all False without one)."""
    if content.diagnosis is None:
        return np.zeros(content.n_minima, dtype=bool)
    return np.asarray(content.diagnosis.spurious, dtype=bool)
