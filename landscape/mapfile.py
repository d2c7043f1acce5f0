"""The landscape map file (HDF5, ``schema = "ebm-landscape/map"``, ``schema_version = 1``).

Layout (DESIGN, "Map file"); every name and dtype here is part of the contract::

    /                       attrs: schema, schema_version, created (ISO 8601, UTC),
                            tool_version, source (JSON), config (JSON)
    /minima/x               float32 [N, *shape]  local minima (quenched metastable states)
    /minima/energy          float64 [N]
    /minima/hits            int64   [N]          chains that ended in each minimum
    /minima/basin           int64   [N]          basin of each minimum
    /basins/representative  int64   [B]          index into /minima of each basin's lowest minimum
    /basins/energy          float64 [B]          sorted ascending
    /barriers/pairs         int64   [E, 2]       basin pairs that were tested
    /barriers/energy        float64 [E]          barrier estimate; +inf where no path was found
    /tree/linkage           float64 [B-1, 4]     scipy linkage over basins (height = absolute
                                                 barrier energy of the merge; may be negative,
                                                 which scipy's checks reject: subtract
                                                 /basins/energy[0] before calling scipy)
    optional:
    /barriers/refined       float64 [E]          path-method (string method) estimates, NaN
                                                 where not refined
    /funnel/noise           float64 [K]          noise levels probed
    /funnel/occupancy       float64 [K, B]       share of chains ending in each basin
    /funnel/entropy         float64 [K]          attr ``score`` summarises the collapse
    /diagnosis/spurious     bool    [N]
    /diagnosis/nn_distance  float64 [N]          attrs: the data's own NN-distance statistics
                                                 used as the bar

Statistics sit as attributes next to the data: the writer sets ``count`` on ``/minima``,
``/basins`` and ``/barriers``; callers add more through :attr:`MapContent.attrs` (e.g.
``/minima``: ``temperature``; ``/barriers``: ``alpha``, ``temperature``).

Additions to schema version 1 (optional; readers that do not know them ignore them):

- ``/levels``: the basins at each magnetization of an attraction-diffusion ladder. Attr
  ``count``; one group per level, named ``0``, ``1``, ... (sort numerically), with attr
  ``alpha`` (plus any level statistics) and the top-level layout restricted to what
  changes with alpha, the minima being shared::

      /levels/<k>/minima/basin            int64   [N]
      /levels/<k>/basins/representative   int64   [B_k]
      /levels/<k>/basins/energy           float64 [B_k]
      /levels/<k>/barriers/pairs          int64   [E_k, 2]
      /levels/<k>/barriers/energy         float64 [E_k]
      /levels/<k>/tree/linkage            float64 [B_k - 1, 4]

  The top-level groups hold the level the map was built for.
- ``/barriers/paths`` float32 [E, P, *shape]: the refined (string-method) path of each
  barrier pair, P points from the first basin's representative to the second's; NaN rows
  where a pair was not refined. Attr ``points`` = P.
- ``/grid`` (2-D energies only): ``x`` float64 [G], ``y`` float64 [G], ``energy`` float64
  [G, G] with ``energy[i, j] = U(x[j], y[i])``, for contour pictures without the model.
- Root attr ``updated`` (ISO 8601, UTC), set by :func:`update_map` and :func:`rewrite_map`.
- ``/funnel`` (:mod:`landscape.funnel`), besides the three datasets above, all optional:
  ``sinks`` int64 [K, S] (per level the basins that gather most chains, fullest first,
  -1 padded), ``occupancy_data`` and ``occupancy_noise`` float64 [K, B] (the same shares
  for the chains from data and from noise alone), ``chain_minimum`` int64 [K, C] (the
  minimum each chain ended in), ``chain_start`` int8 [C] (0: from data, 1: from noise).
- ``/diagnosis`` (:mod:`landscape.diagnosis`), optional besides the two datasets above:
  ``reasons`` uint8 [N] (bit flags: 1 off the data, 2 saturated, 4 funnel sink),
  ``nn_index`` int64 [N] (the nearest training example's index in the data set named by
  the group's attr ``dataset``), ``saturation`` float64 [N] (images: share of pixels at
  the range ends).
- Minima that a funnel probe found and mapped are appended after the map's own
  (``/minima`` attr ``funnel_added`` counts them, hits 0); each part is sorted by energy.

Writes are atomic: a map is written to a hidden temporary file in the same folder and
renamed over the target only once complete, so a killed run never leaves a half-written
map and an existing map is replaced only by a complete one.

A long ``landscape map`` run keeps its progress in ``<map stem>.partial.h5``
(:func:`save_progress`, :func:`load_progress`), also written atomically, so a killed
run can resume.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import h5py
import numpy as np
from scipy.cluster import hierarchy

from landscape.errors import LandscapeError

SCHEMA = "ebm-landscape/map"
SCHEMA_VERSION = 1
PROGRESS_SCHEMA = "ebm-landscape/map-progress"
PROGRESS_VERSION = 1

Attrs = dict[str, Any]

# What h5py raises on damaged files, depending on where the damage is.
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError)


@dataclass
class FunnelData:
    """The noise-level funnel probe: ``/funnel``.

    noise : float64 [K]; occupancy : float64 [K, B]; entropy : float64 [K];
    score : the collapse summary (attr of ``/funnel/entropy``); attrs : ``/funnel`` attrs.
    Optional: sinks : int64 [K, S]; occupancy_data, occupancy_noise : float64 [K, B];
    chain_minimum : int64 [K, C]; chain_start : int8 [C] (see the module docstring).
    """

    noise: np.ndarray
    occupancy: np.ndarray
    entropy: np.ndarray
    score: float
    attrs: Attrs = field(default_factory=dict)
    sinks: np.ndarray | None = None
    occupancy_data: np.ndarray | None = None
    occupancy_noise: np.ndarray | None = None
    chain_minimum: np.ndarray | None = None
    chain_start: np.ndarray | None = None


@dataclass
class DiagnosisData:
    """Spurious-minima diagnosis: ``/diagnosis``.

    spurious : bool [N]; nn_distance : float64 [N];
    bar : attrs of ``/diagnosis/nn_distance`` (the data's own NN-distance quantiles used
    as the bar, e.g. ``{"data_q50": ..., "data_q99": ...}``); attrs : ``/diagnosis`` attrs.
    Optional: reasons : uint8 [N]; nn_index : int64 [N]; saturation : float64 [N].
    """

    spurious: np.ndarray
    nn_distance: np.ndarray
    bar: Attrs = field(default_factory=dict)
    attrs: Attrs = field(default_factory=dict)
    reasons: np.ndarray | None = None
    nn_index: np.ndarray | None = None
    saturation: np.ndarray | None = None


@dataclass
class LevelData:
    """The basins at one magnetization ``alpha`` of a ladder: ``/levels/<k>``."""

    alpha: float
    minima_basin: np.ndarray
    basin_representative: np.ndarray
    basin_energy: np.ndarray
    barrier_pairs: np.ndarray
    barrier_energy: np.ndarray
    linkage: np.ndarray
    attrs: Attrs = field(default_factory=dict)


@dataclass
class GridData:
    """The energy on a regular 2-D grid: ``/grid`` (``energy[i, j] = U(x[j], y[i])``)."""

    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray


@dataclass
class MapMeta:
    """The root attributes of a map as read back (``source`` and ``config`` parsed)."""

    schema_version: int
    created: str
    tool_version: str
    source: Any
    config: Any
    extra: Attrs = field(default_factory=dict)


@dataclass
class MapContent:
    """Everything a map holds, as numpy arrays (torch tensors are accepted on write).

    Field ``a_b`` is dataset ``/a.../b`` of the schema (``linkage`` is ``/tree/linkage``,
    ``barrier_refined`` is ``/barriers/refined``); optional parts are None when absent.
    ``attrs`` maps a group name (``"minima"``, ``"basins"``, ``"barriers"``, ``"tree"``)
    to its statistics. ``meta`` is filled by :func:`read_map`; :func:`write_map` takes
    the root attributes from its own arguments and ignores it.
    """

    minima_x: np.ndarray
    minima_energy: np.ndarray
    minima_hits: np.ndarray
    minima_basin: np.ndarray
    basin_representative: np.ndarray
    basin_energy: np.ndarray
    barrier_pairs: np.ndarray
    barrier_energy: np.ndarray
    linkage: np.ndarray
    barrier_refined: np.ndarray | None = None
    barrier_paths: np.ndarray | None = None
    grid: GridData | None = None
    funnel: FunnelData | None = None
    diagnosis: DiagnosisData | None = None
    levels: list[LevelData] | None = None
    attrs: dict[str, Attrs] = field(default_factory=dict)
    meta: MapMeta | None = None

    @property
    def n_minima(self) -> int:
        return int(np.shape(self.minima_energy)[0])

    @property
    def n_basins(self) -> int:
        return int(np.shape(self.basin_energy)[0])

    @property
    def n_barriers(self) -> int:
        return int(np.shape(self.barrier_energy)[0])


# ----------------------------------------------------------------------------- helpers


def _np(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _pairs(x: Any) -> np.ndarray:
    """Pairs as int64 [E, 2]; an empty list of pairs becomes shape (0, 2)."""
    out = _np(x, np.int64)
    return out.reshape(0, 2) if out.size == 0 else out


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, sort_keys=True)


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any], where: str) -> None:
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (str, bool, int, float)):
            obj.attrs[key] = value
        elif isinstance(value, (list, tuple, np.ndarray)) and np.asarray(value).dtype.kind in "biuf":
            obj.attrs[key] = np.asarray(value)
        else:
            raise TypeError(
                f"attribute {key!r} of {where} must be a string, a number or a list of numbers, "
                f"got {type(value).__name__}"
            )


def _get_attrs(obj: h5py.HLObject, skip: tuple[str, ...] = ()) -> Attrs:
    out: Attrs = {}
    for key, value in obj.attrs.items():
        if key in skip:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        out[key] = value
    return out


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_tree(
    prefix: str,
    n: int,
    basin: np.ndarray,
    rep: np.ndarray,
    energy: np.ndarray,
    pairs: np.ndarray,
    barrier: np.ndarray,
    linkage: np.ndarray,
) -> None:
    """Shapes and index ranges of one basin partition (top level or a ladder level)."""
    _expect(energy.ndim == 1, f"{prefix}basins/energy must be 1-D, got shape {energy.shape}")
    b = energy.shape[0]
    _expect(basin.shape == (n,), f"{prefix}minima/basin has shape {basin.shape}, expected ({n},)")
    _expect(
        rep.shape == (b,),
        f"{prefix}basins/representative has shape {rep.shape}, expected ({b},) like {prefix}basins/energy",
    )
    _expect(b <= n, f"{b} basins but only {n} minima")
    if n:
        _expect(bool(((basin >= 0) & (basin < b)).all()), f"{prefix}minima/basin holds indices outside [0, {b})")
    if b:
        _expect(bool(((rep >= 0) & (rep < n)).all()), f"{prefix}basins/representative holds indices outside [0, {n})")
    _expect(pairs.ndim == 2 and pairs.shape[1] == 2, f"{prefix}barriers/pairs has shape {pairs.shape}, expected (E, 2)")
    _expect(
        barrier.shape == (pairs.shape[0],),
        f"{prefix}barriers/energy has shape {barrier.shape}, expected ({pairs.shape[0]},) like {prefix}barriers/pairs",
    )
    if pairs.size:
        _expect(bool(((pairs >= 0) & (pairs < b)).all()), f"{prefix}barriers/pairs holds indices outside [0, {b})")
    rows = max(b - 1, 0)
    _expect(linkage.shape == (rows, 4), f"{prefix}tree/linkage has shape {linkage.shape}, expected ({rows}, 4)")
    if rows:
        # scipy rejects negative heights; energies (and so heights) may be negative.
        shifted = linkage.copy()
        shifted[:, 2] -= np.nanmin(shifted[:, 2])
        _expect(bool(hierarchy.is_valid_linkage(shifted)), f"{prefix}tree/linkage is not a valid scipy linkage matrix")


def _normalise(content: MapContent) -> MapContent:
    """A copy with every array in its schema dtype, shapes checked (ValueError if not)."""
    c = MapContent(
        minima_x=_np(content.minima_x, np.float32),
        minima_energy=_np(content.minima_energy, np.float64),
        minima_hits=_np(content.minima_hits, np.int64),
        minima_basin=_np(content.minima_basin, np.int64),
        basin_representative=_np(content.basin_representative, np.int64),
        basin_energy=_np(content.basin_energy, np.float64),
        barrier_pairs=_pairs(content.barrier_pairs),
        barrier_energy=_np(content.barrier_energy, np.float64),
        linkage=_np(content.linkage, np.float64),
        attrs={k: dict(v) for k, v in content.attrs.items()},
        meta=content.meta,
    )
    _expect(c.minima_x.ndim >= 2, f"minima/x must be [N, *shape], got shape {c.minima_x.shape}")
    n = c.minima_x.shape[0]
    _expect(c.minima_energy.shape == (n,), f"minima/energy has shape {c.minima_energy.shape}, expected ({n},)")
    _expect(c.minima_hits.shape == (n,), f"minima/hits has shape {c.minima_hits.shape}, expected ({n},)")
    _check_tree(
        "", n, c.minima_basin, c.basin_representative, c.basin_energy, c.barrier_pairs, c.barrier_energy, c.linkage
    )
    unknown = set(c.attrs) - {"minima", "basins", "barriers", "tree"}
    _expect(not unknown, f"attrs given for unknown groups {sorted(unknown)}")
    c.barrier_refined = _refined(content.barrier_refined, c.n_barriers)
    c.barrier_paths = _paths(content.barrier_paths, c.n_barriers, c.minima_x.shape[1:])
    c.grid = _grid(content.grid)
    c.funnel = _funnel(content.funnel, c.n_basins, n)
    c.diagnosis = _diagnosis(content.diagnosis, n)
    c.levels = _levels(content.levels, n)
    return c


def _refined(refined: Any, e: int) -> np.ndarray | None:
    if refined is None:
        return None
    out = _np(refined, np.float64)
    _expect(out.shape == (e,), f"barriers/refined has shape {out.shape}, expected ({e},)")
    return out


def _paths(paths: Any, e: int, shape: tuple[int, ...]) -> np.ndarray | None:
    if paths is None:
        return None
    out = _np(paths, np.float32)
    _expect(
        out.ndim == 2 + len(shape) and out.shape[0] == e and out.shape[2:] == tuple(shape),
        f"barriers/paths has shape {out.shape}, expected ({e}, P, {', '.join(map(str, shape))})",
    )
    return out


def _grid(grid: GridData | None) -> GridData | None:
    if grid is None:
        return None
    out = GridData(x=_np(grid.x, np.float64), y=_np(grid.y, np.float64), energy=_np(grid.energy, np.float64))
    _expect(out.x.ndim == 1 and out.y.ndim == 1, "grid/x and grid/y must be 1-D")
    _expect(
        out.energy.shape == (out.y.shape[0], out.x.shape[0]),
        f"grid/energy has shape {out.energy.shape}, expected ({out.y.shape[0]}, {out.x.shape[0]})",
    )
    return out


def _funnel(funnel: FunnelData | None, b: int, n: int | None = None) -> FunnelData | None:
    if funnel is None:
        return None
    out = FunnelData(
        noise=_np(funnel.noise, np.float64),
        occupancy=_np(funnel.occupancy, np.float64),
        entropy=_np(funnel.entropy, np.float64),
        score=float(funnel.score),
        attrs=dict(funnel.attrs),
    )
    _expect(out.noise.ndim == 1, f"funnel/noise must be 1-D, got shape {out.noise.shape}")
    k = out.noise.shape[0]
    _expect(out.occupancy.shape == (k, b), f"funnel/occupancy has shape {out.occupancy.shape}, expected ({k}, {b})")
    _expect(out.entropy.shape == (k,), f"funnel/entropy has shape {out.entropy.shape}, expected ({k},)")
    if funnel.sinks is not None:
        out.sinks = _np(funnel.sinks, np.int64)
        _expect(out.sinks.ndim == 2 and out.sinks.shape[0] == k, f"funnel/sinks has shape {out.sinks.shape}, expected ({k}, S)")
        _expect(bool(((out.sinks >= -1) & (out.sinks < b)).all()), f"funnel/sinks holds indices outside [-1, {b})")
    for name in ("occupancy_data", "occupancy_noise"):
        value = getattr(funnel, name)
        if value is not None:
            arr = _np(value, np.float64)
            _expect(arr.shape == (k, b), f"funnel/{name} has shape {arr.shape}, expected ({k}, {b})")
            setattr(out, name, arr)
    if funnel.chain_minimum is not None:
        out.chain_minimum = _np(funnel.chain_minimum, np.int64)
        _expect(out.chain_minimum.ndim == 2 and out.chain_minimum.shape[0] == k,
                f"funnel/chain_minimum has shape {out.chain_minimum.shape}, expected ({k}, C)")
        _expect(bool((out.chain_minimum >= 0).all()) and (n is None or bool((out.chain_minimum < n).all())),
                f"funnel/chain_minimum holds indices outside [0, {n})")
    if funnel.chain_start is not None:
        out.chain_start = _np(funnel.chain_start, np.int8)
        c = out.chain_minimum.shape[1] if out.chain_minimum is not None else out.chain_start.shape[0]
        _expect(out.chain_start.shape == (c,), f"funnel/chain_start has shape {out.chain_start.shape}, expected ({c},)")
    return out


def _diagnosis(diagnosis: DiagnosisData | None, n: int) -> DiagnosisData | None:
    if diagnosis is None:
        return None
    out = DiagnosisData(
        spurious=_np(diagnosis.spurious, bool),
        nn_distance=_np(diagnosis.nn_distance, np.float64),
        bar=dict(diagnosis.bar),
        attrs=dict(diagnosis.attrs),
    )
    _expect(out.spurious.shape == (n,), f"diagnosis/spurious has shape {out.spurious.shape}, expected ({n},)")
    _expect(out.nn_distance.shape == (n,), f"diagnosis/nn_distance has shape {out.nn_distance.shape}, expected ({n},)")
    for name, dtype in (("reasons", np.uint8), ("nn_index", np.int64), ("saturation", np.float64)):
        value = getattr(diagnosis, name)
        if value is not None:
            arr = _np(value, dtype)
            _expect(arr.shape == (n,), f"diagnosis/{name} has shape {arr.shape}, expected ({n},)")
            setattr(out, name, arr)
    return out


def _levels(levels: list[LevelData] | None, n: int) -> list[LevelData] | None:
    if levels is None:
        return None
    out = []
    for k, level in enumerate(levels):
        lv = LevelData(
            alpha=float(level.alpha),
            minima_basin=_np(level.minima_basin, np.int64),
            basin_representative=_np(level.basin_representative, np.int64),
            basin_energy=_np(level.basin_energy, np.float64),
            barrier_pairs=_pairs(level.barrier_pairs),
            barrier_energy=_np(level.barrier_energy, np.float64),
            linkage=_np(level.linkage, np.float64),
            attrs=dict(level.attrs),
        )
        _check_tree(
            f"levels/{k}/",
            n,
            lv.minima_basin,
            lv.basin_representative,
            lv.basin_energy,
            lv.barrier_pairs,
            lv.barrier_energy,
            lv.linkage,
        )
        out.append(lv)
    return out


@contextmanager
def _atomic_h5(path: Path) -> Iterator[h5py.File]:
    """Open a temporary HDF5 file next to ``path``; rename it onto ``path`` on success.

    On any exception (KeyboardInterrupt included) the temporary file is removed and the
    previous file at ``path``, if any, is untouched.
    """
    tmp = path.with_name(f".{path.name}.{uuid4().hex[:12]}.tmp")
    try:
        with h5py.File(tmp, "w-") as f:
            yield f
        # Flush the bytes to disk before the rename makes them the map.
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _write_tree_groups(
    root: h5py.Group,
    basin: np.ndarray,
    rep: np.ndarray,
    energy: np.ndarray,
    pairs: np.ndarray,
    barrier: np.ndarray,
    linkage: np.ndarray,
    attrs: Mapping[str, Attrs],
) -> None:
    """minima/basin, basins/*, barriers/*, tree/linkage under ``root`` (creating groups)."""
    minima = root.require_group("minima")
    minima.create_dataset("basin", data=basin)
    basins = root.create_group("basins")
    basins.create_dataset("representative", data=rep)
    basins.create_dataset("energy", data=energy)
    barriers = root.create_group("barriers")
    barriers.create_dataset("pairs", data=pairs)
    barriers.create_dataset("energy", data=barrier)
    tree = root.create_group("tree")
    tree.create_dataset("linkage", data=linkage)
    for name, group in (("basins", basins), ("barriers", barriers), ("tree", tree)):
        _set_attrs(group, attrs.get(name, {}), f"/{name}")
    basins.attrs["count"] = int(energy.shape[0])
    barriers.attrs["count"] = int(pairs.shape[0])


def _write_required(f: h5py.File, c: MapContent) -> None:
    minima = f.create_group("minima")
    minima.create_dataset("x", data=c.minima_x)
    minima.create_dataset("energy", data=c.minima_energy)
    minima.create_dataset("hits", data=c.minima_hits)
    _set_attrs(minima, c.attrs.get("minima", {}), "/minima")
    minima.attrs["count"] = c.n_minima
    _write_tree_groups(
        f, c.minima_basin, c.basin_representative, c.basin_energy, c.barrier_pairs, c.barrier_energy, c.linkage, c.attrs
    )


def _write_refined(f: h5py.File, refined: np.ndarray) -> None:
    f["barriers"].create_dataset("refined", data=refined)


def _write_paths(f: h5py.File, paths: np.ndarray) -> None:
    f["barriers"].create_dataset("paths", data=paths, compression="gzip").attrs["points"] = int(paths.shape[1])


def _write_grid(f: h5py.File, grid: GridData) -> None:
    g = f.create_group("grid")
    g.create_dataset("x", data=grid.x)
    g.create_dataset("y", data=grid.y)
    g.create_dataset("energy", data=grid.energy)


_FUNNEL_OPTIONAL = ("sinks", "occupancy_data", "occupancy_noise", "chain_minimum", "chain_start")
_DIAGNOSIS_OPTIONAL = ("reasons", "nn_index", "saturation")


def _write_funnel(f: h5py.File, funnel: FunnelData) -> None:
    g = f.create_group("funnel")
    g.create_dataset("noise", data=funnel.noise)
    g.create_dataset("occupancy", data=funnel.occupancy)
    g.create_dataset("entropy", data=funnel.entropy).attrs["score"] = funnel.score
    for name in _FUNNEL_OPTIONAL:
        if getattr(funnel, name) is not None:
            g.create_dataset(name, data=getattr(funnel, name))
    _set_attrs(g, funnel.attrs, "/funnel")


def _write_diagnosis(f: h5py.File, diagnosis: DiagnosisData) -> None:
    g = f.create_group("diagnosis")
    g.create_dataset("spurious", data=diagnosis.spurious)
    nn = g.create_dataset("nn_distance", data=diagnosis.nn_distance)
    _set_attrs(nn, diagnosis.bar, "/diagnosis/nn_distance")
    for name in _DIAGNOSIS_OPTIONAL:
        if getattr(diagnosis, name) is not None:
            g.create_dataset(name, data=getattr(diagnosis, name))
    _set_attrs(g, diagnosis.attrs, "/diagnosis")


def _write_levels(f: h5py.File, levels: list[LevelData]) -> None:
    g = f.create_group("levels")
    g.attrs["count"] = len(levels)
    for k, lv in enumerate(levels):
        lg = g.create_group(str(k))
        _set_attrs(lg, lv.attrs, f"/levels/{k}")
        lg.attrs["alpha"] = lv.alpha
        _write_tree_groups(
            lg,
            lv.minima_basin,
            lv.basin_representative,
            lv.basin_energy,
            lv.barrier_pairs,
            lv.barrier_energy,
            lv.linkage,
            {},
        )


def _write_optional(f: h5py.File, c: MapContent) -> None:
    if c.barrier_refined is not None:
        _write_refined(f, c.barrier_refined)
    if c.barrier_paths is not None:
        _write_paths(f, c.barrier_paths)
    if c.grid is not None:
        _write_grid(f, c.grid)
    if c.funnel is not None:
        _write_funnel(f, c.funnel)
    if c.diagnosis is not None:
        _write_diagnosis(f, c.diagnosis)
    if c.levels is not None:
        _write_levels(f, c.levels)


# ------------------------------------------------------------------------------ public


def write_map(
    path: str | Path,
    content: MapContent,
    *,
    config: Mapping[str, Any],
    source: Mapping[str, Any] | str,
    tool_version: str,
) -> Path:
    """Write a map atomically (replacing any file at ``path`` only once complete).

    Parameters
    ----------
    path : str or Path
    content : MapContent
        Arrays are converted to the schema dtypes; ``content.meta`` is ignored.
    config : dict
        The mapping configuration (plain data), stored as JSON in root attr ``config``.
    source : dict or str
        What was mapped (checkpoint path and sha256, or an energy spec), stored as JSON
        (a string becomes a JSON string and reads back as the same string).
    tool_version : str

    Returns
    -------
    Path
        The map written.

    Raises
    ------
    ValueError
        If the content's shapes or indices are inconsistent (nothing is written).
    TypeError
        If the config, the source or an attribute is not plain data (nothing is
        written for the first two; for an attribute, the temporary file is removed).

    Examples
    --------
    >>> write_map("rings.h5", content, config={"temperature": 20.0},
    ...           source={"checkpoint": "rings.pt", "sha256": "..."}, tool_version="0.1.0")  # doctest: +SKIP
    """
    path = Path(path)
    c = _normalise(content)
    config_json, source_json = _dumps(config), _dumps(source)  # fail before touching disk
    with _atomic_h5(path) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created"] = _now()
        f.attrs["tool_version"] = str(tool_version)
        f.attrs["source"] = source_json
        f.attrs["config"] = config_json
        _write_required(f, c)
        _write_optional(f, c)
    return path


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


@contextmanager
def _open_map(path: Path) -> Iterator[h5py.File]:
    """Open a map for reading and check its schema; LandscapeError if it is not one."""
    if not path.exists():
        raise LandscapeError(f"no map file at {path}")
    try:
        f = h5py.File(path, "r")
    except _H5_ERRORS as err:
        raise LandscapeError(f"{path} is not a readable HDF5 file ({_one_line(err)})") from None
    with f:
        try:
            schema = f.attrs.get("schema")
            version = f.attrs.get("schema_version")
        except _H5_ERRORS as err:
            raise LandscapeError(f"{path} is not a valid map: {_one_line(err)}") from None
        if isinstance(schema, bytes):
            schema = schema.decode("utf-8", "replace")
        if schema != SCHEMA:
            raise LandscapeError(f"{path} is not an ebm-landscape map (schema {schema!r}, expected {SCHEMA!r})")
        if not isinstance(version, (int, np.integer)) or version < 1:
            raise LandscapeError(f"{path} has an invalid schema_version {version!r}")
        if version > SCHEMA_VERSION:
            raise LandscapeError(
                f"{path} is a map of schema version {int(version)}; this ebm-landscape reads versions "
                f"up to {SCHEMA_VERSION}: upgrade ebm-landscape to read it"
            )
        yield f


def _read_array(f: h5py.Group, name: str, dtype: Any, kinds: str) -> np.ndarray:
    where = f"{f.name.rstrip('/')}/{name}"
    if name not in f:
        raise ValueError(f"missing dataset {where}")
    ds = f[name]
    if not isinstance(ds, h5py.Dataset):
        raise TypeError(f"{where} is not a dataset")
    if ds.dtype.kind not in kinds:
        raise ValueError(f"{where} has dtype {ds.dtype}, expected {np.dtype(dtype)}")
    return np.asarray(ds[()], dtype=dtype)


def _read_content(f: h5py.File) -> MapContent:
    floats, ints = "fiu", "iu"
    content = MapContent(
        minima_x=_read_array(f, "minima/x", np.float32, floats),
        minima_energy=_read_array(f, "minima/energy", np.float64, floats),
        minima_hits=_read_array(f, "minima/hits", np.int64, ints),
        minima_basin=_read_array(f, "minima/basin", np.int64, ints),
        basin_representative=_read_array(f, "basins/representative", np.int64, ints),
        basin_energy=_read_array(f, "basins/energy", np.float64, floats),
        barrier_pairs=_read_array(f, "barriers/pairs", np.int64, ints),
        barrier_energy=_read_array(f, "barriers/energy", np.float64, floats),
        linkage=_read_array(f, "tree/linkage", np.float64, floats),
        attrs={name: _get_attrs(f[name]) for name in ("minima", "basins", "barriers", "tree")},
    )
    if "barriers/refined" in f:
        content.barrier_refined = _read_array(f, "barriers/refined", np.float64, floats)
    if "barriers/paths" in f:
        content.barrier_paths = _read_array(f, "barriers/paths", np.float32, floats)
    if "grid" in f:
        content.grid = GridData(
            x=_read_array(f, "grid/x", np.float64, floats),
            y=_read_array(f, "grid/y", np.float64, floats),
            energy=_read_array(f, "grid/energy", np.float64, floats),
        )
    if "funnel" in f:
        entropy = _read_array(f, "funnel/entropy", np.float64, floats)
        g = f["funnel"]
        content.funnel = FunnelData(
            noise=_read_array(f, "funnel/noise", np.float64, floats),
            occupancy=_read_array(f, "funnel/occupancy", np.float64, floats),
            entropy=entropy,
            score=float(f["funnel/entropy"].attrs.get("score", np.nan)),
            attrs=_get_attrs(g),
            sinks=_read_array(g, "sinks", np.int64, ints) if "sinks" in g else None,
            occupancy_data=_read_array(g, "occupancy_data", np.float64, floats) if "occupancy_data" in g else None,
            occupancy_noise=_read_array(g, "occupancy_noise", np.float64, floats) if "occupancy_noise" in g else None,
            chain_minimum=_read_array(g, "chain_minimum", np.int64, ints) if "chain_minimum" in g else None,
            chain_start=_read_array(g, "chain_start", np.int8, ints) if "chain_start" in g else None,
        )
    if "diagnosis" in f:
        g = f["diagnosis"]
        content.diagnosis = DiagnosisData(
            spurious=_read_array(f, "diagnosis/spurious", bool, "biu"),
            nn_distance=_read_array(f, "diagnosis/nn_distance", np.float64, floats),
            bar=_get_attrs(f["diagnosis/nn_distance"]),
            attrs=_get_attrs(g),
            reasons=_read_array(g, "reasons", np.uint8, ints) if "reasons" in g else None,
            nn_index=_read_array(g, "nn_index", np.int64, ints) if "nn_index" in g else None,
            saturation=_read_array(g, "saturation", np.float64, floats) if "saturation" in g else None,
        )
    if "levels" in f:
        levels = []
        for name in sorted(f["levels"], key=int):
            lg = f["levels"][name]
            levels.append(
                LevelData(
                    alpha=float(lg.attrs["alpha"]),
                    minima_basin=_read_array(lg, "minima/basin", np.int64, ints),
                    basin_representative=_read_array(lg, "basins/representative", np.int64, ints),
                    basin_energy=_read_array(lg, "basins/energy", np.float64, floats),
                    barrier_pairs=_read_array(lg, "barriers/pairs", np.int64, ints),
                    barrier_energy=_read_array(lg, "barriers/energy", np.float64, floats),
                    linkage=_read_array(lg, "tree/linkage", np.float64, floats),
                    attrs=_get_attrs(lg, skip=("alpha",)),
                )
            )
        content.levels = levels
    return content


def _read_meta(f: h5py.File) -> MapMeta:
    root = _get_attrs(f)
    for key in ("schema_version", "created", "tool_version", "source", "config"):
        if key not in root:
            raise ValueError(f"missing root attribute {key}")
    try:
        source = json.loads(root.pop("source"))
        config = json.loads(root.pop("config"))
    except json.JSONDecodeError as err:
        raise ValueError(f"root attribute source or config is not valid JSON ({err.msg})") from None
    root.pop("schema", None)
    return MapMeta(
        schema_version=int(root.pop("schema_version")),
        created=str(root.pop("created")),
        tool_version=str(root.pop("tool_version")),
        source=source,
        config=config,
        extra=root,
    )


def read_map(path: str | Path) -> MapContent:
    """Read and validate a map.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MapContent
        Arrays in the schema dtypes, group statistics in ``attrs``, root attributes in
        ``meta`` (``source`` and ``config`` parsed from JSON).

    Raises
    ------
    LandscapeError
        With a one-line message if the file is missing, not HDF5 or corrupt, not a map,
        of a newer schema version, or internally inconsistent (shapes of N, B, E).

    Cost: reads the whole file (the minima dominate: N * prod(shape) * 4 bytes).
    """
    path = Path(path)
    with _open_map(path) as f:
        try:
            content = _read_content(f)
            content.meta = _read_meta(f)
            _normalise(content)  # shape and index checks
        except _H5_ERRORS as err:
            raise LandscapeError(f"{path} is not a valid map: {_one_line(err)}") from None
    return content


def _copy_except(src: h5py.Group, dst: h5py.Group, skip: set[str]) -> None:
    """Copy ``src``'s members (and attrs) into ``dst``, leaving out the paths in ``skip``."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for name, item in src.items():
        full = item.name
        if full in skip:
            continue
        if isinstance(item, h5py.Group) and any(s.startswith(full + "/") for s in skip):
            _copy_except(item, dst.create_group(name), skip)
        else:
            src.copy(item, dst, name=name)


def update_map(
    path: str | Path,
    *,
    barrier_refined: np.ndarray | None = None,
    funnel: FunnelData | None = None,
    diagnosis: DiagnosisData | None = None,
    levels: list[LevelData] | None = None,
) -> Path:
    """Add or replace optional groups of an existing map, atomically.

    The map is copied member by member into a temporary file, leaving out what is
    replaced (so no dead space accumulates), the new data written, root attr ``updated``
    set, and the copy renamed over the map. Everything else, including groups this
    version does not know, is kept as it was.

    Parameters
    ----------
    path : str or Path
        An existing map.
    barrier_refined : array float64 [E], optional
        ``/barriers/refined``.
    funnel : FunnelData, optional
        ``/funnel`` (occupancy must have the map's B columns).
    diagnosis : DiagnosisData, optional
        ``/diagnosis`` (N entries).
    levels : list of LevelData, optional
        ``/levels``.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If ``path`` is not a readable map (see :func:`read_map`).
    ValueError
        If the new data's shapes do not fit the map (the map is left unchanged).

    Examples
    --------
    >>> update_map("rings.h5", funnel=FunnelData(noise, occupancy, entropy, score))  # doctest: +SKIP
    """
    path = Path(path)
    with _open_map(path) as f:
        try:
            n = f["minima/energy"].shape[0]
            b = f["basins/energy"].shape[0]
            e = f["barriers/energy"].shape[0]
        except (*_H5_ERRORS, IndexError) as err:
            raise LandscapeError(f"{path} is not a valid map: {_one_line(err)}") from None
    new_refined = _refined(barrier_refined, e)
    new_funnel = _funnel(funnel, b, n)
    new_diagnosis = _diagnosis(diagnosis, n)
    new_levels = _levels(levels, n)
    skip = set()
    if new_refined is not None:
        skip.add("/barriers/refined")
    for name, value in (("/funnel", new_funnel), ("/diagnosis", new_diagnosis), ("/levels", new_levels)):
        if value is not None:
            skip.add(name)
    with _atomic_h5(path) as dst:
        with h5py.File(path, "r") as src:  # closed before the rename replaces it
            _copy_except(src, dst, skip)
        dst.attrs["updated"] = _now()
        if new_refined is not None:
            _write_refined(dst, new_refined)
        if new_funnel is not None:
            _write_funnel(dst, new_funnel)
        if new_diagnosis is not None:
            _write_diagnosis(dst, new_diagnosis)
        if new_levels is not None:
            _write_levels(dst, new_levels)
    return path


_KNOWN_GROUPS = ("minima", "basins", "barriers", "tree", "grid", "funnel", "diagnosis", "levels")


def rewrite_map(path: str | Path, content: MapContent) -> Path:
    """Replace the whole content of an existing map, atomically, keeping its identity.

    For changes that touch the required groups (a funnel probe that maps new minima
    rewrites ``/minima``, ``/basins``, ``/barriers``, ``/tree`` and ``/levels``). The
    root attributes (``created``, ``source``, ``config``, ...) are kept and ``updated``
    set; groups this version does not know are copied as they were; everything the
    schema names comes from ``content`` (its optional parts that are None are dropped).

    Raises
    ------
    LandscapeError
        If ``path`` is not a readable map.
    ValueError
        If ``content`` is inconsistent (the map is left unchanged).
    """
    path = Path(path)
    c = _normalise(content)
    with _open_map(path):
        pass  # a readable map of a known schema, or a one-line error
    with _atomic_h5(path) as dst:
        with h5py.File(path, "r") as src:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                if name not in _KNOWN_GROUPS:
                    src.copy(src[name], dst, name=name)
        dst.attrs["updated"] = _now()
        _write_required(dst, c)
        _write_optional(dst, c)
    return path


# ---------------------------------------------------------------------------- progress


def progress_path(map_path: str | Path, kind: str = "map") -> Path:
    """Where the progress of work on the map at ``map_path`` is kept: for building the map
    (``kind="map"``) ``rings.h5 -> rings.partial.h5``, for other work on it (e.g.
    ``kind="funnel"``) ``rings.h5 -> rings.funnel.partial.h5``."""
    suffix = ".partial.h5" if kind == "map" else f".{kind}.partial.h5"
    return Path(map_path).with_suffix(suffix)


def save_progress(map_path: str | Path, state: Mapping[str, Any], kind: str = "map") -> Path:
    """Save the state of an unfinished map atomically, replacing earlier progress.

    Parameters
    ----------
    map_path : str or Path
        The map being built; progress goes to :func:`progress_path` of it.
    state : dict
        Arrays (numpy arrays or torch tensors, stored as datasets; a key may contain
        ``/`` to group them) and JSON-able values (stored together as one JSON blob).
        Store a fingerprint of the config in it to check on resume that the run is the
        same.

    Returns
    -------
    Path
        The progress file.

    Raises
    ------
    TypeError
        If a value is neither a numeric array nor JSON-able (nothing is written).
    """
    arrays: dict[str, np.ndarray] = {}
    plain: dict[str, Any] = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"progress array {key!r} has unsupported dtype {value.dtype}")
            arrays[key] = value
        else:
            plain[key] = value
    blob = _dumps(plain)
    out = progress_path(map_path, kind)
    with _atomic_h5(out) as f:
        f.attrs["schema"] = PROGRESS_SCHEMA
        f.attrs["schema_version"] = PROGRESS_VERSION
        f.attrs["saved"] = _now()
        f.attrs["state"] = blob
        group = f.create_group("arrays")
        for key, value in arrays.items():
            group.create_dataset(key, data=value)
    return out


def load_progress(map_path: str | Path, kind: str = "map") -> dict[str, Any] | None:
    """Load the progress saved for ``map_path``, or None if there is none.

    Returns
    -------
    dict or None
        The saved state: arrays as numpy arrays, other values as decoded from JSON.

    Raises
    ------
    LandscapeError
        If the progress file exists but is corrupt or not a progress file.
    """
    path = progress_path(map_path, kind)
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("schema") != PROGRESS_SCHEMA:
                raise LandscapeError(f"{path} is not an ebm-landscape progress file")
            version = int(f.attrs.get("schema_version", 0))
            if version != PROGRESS_VERSION:
                raise LandscapeError(f"{path} is a progress file of version {version}, expected {PROGRESS_VERSION}")
            state: dict[str, Any] = json.loads(f.attrs["state"])

            def collect(name: str, item: h5py.HLObject) -> None:
                if isinstance(item, h5py.Dataset):
                    state[name] = item[()]

            f["arrays"].visititems(collect)
    except _H5_ERRORS as err:
        raise LandscapeError(f"{path} is unreadable ({_one_line(err)}); delete it to start the map afresh") from None
    return state


def resume_progress(
    map_path: str | Path | None, fingerprint: str, resume: bool, *, kind: str = "map", what: str = "map",
    afresh: str = "delete its .partial.h5 file",
) -> dict[str, Any]:
    """The saved state of unfinished work on ``map_path`` to continue, or a fresh one.

    Saved progress is only continued with ``resume`` and the same ``fingerprint`` (the
    settings and what they apply to): anything else is an error, so no progress is lost or
    mixed with another run's. The returned state carries ``fingerprint``.

    Raises
    ------
    LandscapeError
        Progress exists without ``resume``, or from other settings; ``afresh`` says how to
        start over.
    """
    state: dict[str, Any] = {}
    if map_path is not None:
        saved = load_progress(map_path, kind)
        if saved is not None:
            if not resume:
                raise LandscapeError(
                    f"an unfinished {what} of {map_path} exists: pass --resume to continue it, or {afresh} to start afresh"
                )
            if saved.get("fingerprint") != fingerprint:
                raise LandscapeError(
                    f"the unfinished {what} was started with other settings or another model: "
                    f"resume with the same ones, or {afresh}"
                )
            state = saved
    state["fingerprint"] = fingerprint
    return state


def clear_progress(map_path: str | Path, kind: str = "map") -> None:
    """Remove the progress file of ``map_path`` (after the work is complete), if any."""
    with suppress(FileNotFoundError):
        progress_path(map_path, kind).unlink()
