"""The landscape map file: HDF5, ``schema = "ebm-landscape/map"``, ``schema_version = 2``.

What each dataset holds is declared once, in :mod:`landscape.io.schema` (also as
``docs/map-schema.md``); this module writes and reads it:

- :func:`write_map` writes a :class:`~landscape.io.records.MapContent` (every per-item array a
  dataset with its ``description`` and ``units`` attributes; large ones chunked and
  compressed);
- :func:`read_map` reads and validates a map (schema 2, or schema 1, whose tree is over
  basins: its content then has a tree whose leaves are the basins' representatives);
- :func:`update_map` adds or replaces ``/funnel`` and ``/diagnosis``; :func:`rewrite_map`
  replaces the whole content (a funnel probe that added minima);

Writes are atomic: a map is written to a hidden temporary file in the same folder and
renamed over the target only once complete, so a killed run never leaves a half-written
map and an existing map is replaced only by a complete one.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from scipy.cluster import hierarchy

from landscape import checks
from landscape.checks import require
from landscape.errors import LandscapeError
from landscape.io.files import (
    HDF5_SIGNATURE,
    TORCH_LEGACY_SIGNATURE,
    ZIP_SIGNATURE,
    check_regular_file,
    file_path,
    first_line,
    new_hdf5,
    to_json,
)
from landscape.io.progress import PROGRESS_SCHEMA, progress_path
from landscape.io.records import (
    ATTRACTION,
    DiagnosisData,
    FunnelData,
    GridData,
    MapContent,
    MapMeta,
    PairTable,
    Partition,
    rule_json,
)
from landscape.io.schema import COORDINATES, SCHEMA, SCHEMA_VERSION, dataset
from landscape.mapping.tree import FLAT_RTOL, BarrierTree

__all__ = [
    "SCHEMA", "SCHEMA_VERSION", "DiagnosisData", "FunnelData", "GridData", "MapContent", "MapMeta",
    "read_map", "write_map", "update_map", "rewrite_map", "dataset_listing", "is_map_file",
]

Attrs = dict[str, Any]

# What h5py raises on damaged files, depending on where the damage is.
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)
# Datasets larger than this (bytes) are chunked and compressed.
_COMPRESS_ABOVE = 1 << 18
_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int8": np.int8, "uint8": np.uint8,
           "bool": np.bool_, COORDINATES: np.float32}
_GROUPS = ("minima", "basins", "barriers", "tree", "levels")


# ----------------------------------------------------------------------------- helpers


def _np(x: Any, dtype: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _coordinates(x: Any) -> np.ndarray:
    """Points in data space as the map keeps them (:data:`~landscape.io.schema.COORDINATES`):
    float64 where they are float64 (a map made in float64), else float32."""
    arr = _np(x, None)
    return arr if arr.dtype == np.float64 else arr.astype(np.float32)


def _typed(x: Any, dtype: str) -> np.ndarray:
    """``x`` in the schema dtype ``dtype``."""
    return _coordinates(x) if dtype == COORDINATES else _np(x, _DTYPES[dtype])


def utc_now() -> str:
    """The time now, UTC, as ISO 8601 to the second (a map's `created` and `updated`)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _dumps(obj: Any) -> str:
    return to_json(obj, keep_nonfinite=True)


def _set_attrs(obj: h5py.HLObject, attrs: Mapping[str, Any], where: str) -> None:
    for key, value in attrs.items():
        if isinstance(value, np.generic):
            value = value.item()
        if value is None:
            continue
        if isinstance(value, (str, bool, int, float)):
            obj.attrs[key] = value
        elif isinstance(value, (list, tuple, np.ndarray)) and np.asarray(value).dtype.kind in "biuf" \
                and np.asarray(value).size <= 64:
            obj.attrs[key] = np.asarray(value)
        else:
            raise TypeError(
                f"attribute {key!r} of {where} must be a string, a number or a short list of numbers "
                f"(per-item arrays are datasets), got {type(value).__name__}"
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


def _put(root: h5py.Group, path: str, data: Any) -> h5py.Dataset:
    """Write dataset ``path`` under ``root`` in its schema dtype, with its description (the
    schema entry is looked up by the dataset's full path in the file)."""
    entry = dataset(f"{root.name.strip('/')}/{path}".strip("/"))
    arr = _typed(data, entry.dtype)
    big = arr.nbytes > _COMPRESS_ABOVE and arr.ndim >= 1
    ds = root.create_dataset(path, data=arr, chunks=True if big else None,
                             compression="gzip" if big else None, compression_opts=4 if big else None,
                             shuffle=big)
    ds.attrs["description"] = entry.description
    if entry.units:
        ds.attrs["units"] = entry.units
    return ds


def _get(f: h5py.Group, path: str) -> np.ndarray:
    """Read dataset ``path`` in its schema dtype (ValueError if missing, of another kind, of
    another number of dimensions than the schema's, or larger than the free memory)."""
    entry = dataset(path)
    where = f"{f.name.rstrip('/')}/{path}"
    if path not in f:
        raise ValueError(f"missing dataset {where}")
    ds = f[path]
    if not isinstance(ds, h5py.Dataset):
        raise TypeError(f"{where} is not a dataset")
    if ds.external:  # (its values would be read from another file, named by the map: never followed)
        raise ValueError(f"{where} keeps its values in another file ({ds.external[0][0]!r}), which a map's "
                         "datasets never do")
    kinds = {"float32": "fiu", "float64": "fiu", "int64": "iu", "int8": "iu", "uint8": "iub", "bool": "biu",
             COORDINATES: "fiu"}
    if ds.dtype.kind not in kinds[entry.dtype]:
        raise ValueError(f"{where} has dtype {ds.dtype}, expected {entry.dtype}")
    ndim, more = _rank(entry.shape)
    if ds.ndim < ndim or (ds.ndim > ndim and not more):
        raise ValueError(f"{where} has shape {list(ds.shape)}, expected {entry.shape}")
    dtype = np.float64 if entry.dtype == COORDINATES and ds.dtype == np.float64 else _DTYPES[entry.dtype]
    nbytes = ds.size * np.dtype(dtype).itemsize
    free = checks.available_memory()
    if free is not None and nbytes > free:  # a sparse dataset can claim far more than the file holds
        raise ValueError(f"{where} claims shape {list(ds.shape)} ({checks.format_bytes(nbytes)}), more than the "
                         f"free memory ({checks.format_bytes(free)})")
    stored = ds.id.get_storage_size()
    if nbytes > _BOMB_FLOOR and nbytes > _BOMB_RATIO * max(stored, 1):
        raise ValueError(f"{where} claims shape {list(ds.shape)} ({checks.format_bytes(nbytes)}) from "
                         f"{checks.format_bytes(stored)} stored: never written, or packed past any real map's data")
    return np.asarray(ds[()], dtype=dtype)


#: A dataset claiming more than this (bytes) must store at least 1/_BOMB_RATIO of it: a
#: map's compressed datasets (energies, points, paths) pack a few times at most, while a few
#: KB of compressed zeros (or chunks never written) can claim gigabytes.
_BOMB_FLOOR = 64 << 20
_BOMB_RATIO = 1000


def _rank(shape: str) -> tuple[int, bool]:
    """Dimensions of a schema shape (``"[N, *shape]"`` -> (2, True): two or more)."""
    parts = [p.strip() for p in shape.strip("[]").split(",")]
    return len(parts), "*shape" in parts


def _opt(f: h5py.Group, path: str) -> np.ndarray | None:
    return _get(f, path) if path in f else None


# -------------------------------------------------------------------------- validation


def check_partition(prefix: str, n: int, part: Partition, energy: np.ndarray | None = None) -> None:
    """Raise ValueError unless ``part`` is a consistent basin assignment of ``n`` minima
    (``energy``: theirs, to check the representatives' energies against)."""
    b = part.n_basins
    require(part.basin.shape == (n,), f"{prefix}minima/basin has shape {part.basin.shape}, expected ({n},)")
    require(part.energy.shape == (b,), f"{prefix}basins/energy has shape {part.energy.shape}, expected ({b},)")
    require(1 <= b <= max(n, 1), f"{prefix}: {b} basins for {n} minima")
    if n:
        require(bool(((part.basin >= 0) & (part.basin < b)).all()), f"{prefix}minima/basin holds indices outside [0, {b})")
    require(bool(((part.representative >= 0) & (part.representative < n)).all()),
            f"{prefix}basins/representative holds indices outside [0, {n})")
    require(bool((part.basin[part.representative] == np.arange(b)).all()),
            f"{prefix}basins/representative names minima of other basins")
    if energy is not None:
        require(bool(np.allclose(part.energy, energy[part.representative], rtol=1e-12, atol=0.0)),
                f"{prefix}basins/energy differs from the energies of the basins' representatives")
    require(np.isfinite(part.alpha), f"{prefix}: alpha must be finite")


def _check_tree(tree: BarrierTree, n_leaves: int, e: int) -> None:
    rows = max(n_leaves - 1, 0)
    require(tree.linkage.shape == (rows, 4), f"tree/linkage has shape {tree.linkage.shape}, expected ({rows}, 4)")
    for name in ("barrier", "connected", "refined", "pair"):
        arr = getattr(tree, name)
        require(arr.shape == (rows,), f"tree/{name} has shape {arr.shape}, expected ({rows},)")
    if rows:
        require(bool(hierarchy.is_valid_linkage(tree.linkage)), "tree/linkage is not a valid scipy linkage matrix")
        require(bool(((tree.pair >= -1) & (tree.pair < e)).all()), f"tree/pair holds rows outside [-1, {e})")
        require(bool((tree.connected == (tree.pair >= 0)).all()), "tree/pair and tree/connected disagree")
        require(bool(np.isfinite(tree.barrier[tree.connected]).all()), "tree/barrier of a connected merge is not finite")
        require(np.isfinite(tree.offset), "tree attr energy_offset must be finite")
        heights = tree.linkage[tree.connected, 2] + tree.offset
        require(bool(np.allclose(heights, tree.barrier[tree.connected], rtol=1e-9,
                                 atol=1e-9 * (1.0 + abs(tree.offset)))),
                "tree/linkage heights plus the attr energy_offset differ from tree/barrier")
    require(np.isfinite(tree.offset), "tree attr energy_offset must be finite")
    require(0.0 <= tree.flat_rtol <= 1.0, f"tree attr flat_rtol must be in [0, 1], got {tree.flat_rtol}")
    require(bool(np.isfinite(tree.flat_atol)) and tree.flat_atol >= 0.0,
            f"tree attr flat_atol must be finite and >= 0, got {tree.flat_atol}")


def _check(c: MapContent) -> MapContent:
    """A copy of ``c`` with arrays in their schema dtypes; shapes and indices checked
    (ValueError if not consistent)."""
    x = _coordinates(c.minima_x)
    require(x.ndim >= 2, f"minima/x must be [N, *shape], got shape {x.shape}")
    n = x.shape[0]
    require(n >= 1, "a map needs at least one minimum")
    energy = _np(c.minima_energy, np.float64)
    hits = _np(c.minima_hits, np.int64)
    require(energy.shape == (n,), f"minima/energy has shape {energy.shape}, expected ({n},)")
    require(hits.shape == (n,), f"minima/hits has shape {hits.shape}, expected ({n},)")
    require(bool(np.isfinite(energy).all()), "minima/energy holds non-finite energies")
    require(len(c.levels) >= 1 and 0 <= c.main < len(c.levels), f"main level {c.main} of {len(c.levels)} levels")
    levels = [Partition(p.alpha, p.basin, p.representative, p.energy, p.multiplier, dict(p.attrs)) for p in c.levels]
    for k, part in enumerate(levels):
        check_partition(f"levels/{k}/", n, part, energy)
    t = c.barriers
    table = PairTable(*(getattr(t, name) for name in PairTable.COLUMNS))
    e = len(table)
    for name in PairTable.COLUMNS[1:]:
        arr = getattr(table, name)
        require(arr.shape == (e,), f"barriers/{name} has shape {arr.shape}, expected ({e},)")
    if e:
        require(bool(((table.pairs >= 0) & (table.pairs < n)).all()), f"barriers/pairs holds indices outside [0, {n})")
    n_leaves = int(np.shape(c.tree.energy)[0])
    _check_tree(c.tree, n_leaves, e)
    if c.over_minima:
        require(n_leaves == n, f"the tree has {n_leaves} leaves for {n} minima")
    shape = x.shape[1:]
    m = max(n_leaves - 1, 0)
    saddle = None if c.tree_saddle is None else _coordinates(c.tree_saddle)
    if saddle is not None:
        require(saddle.shape == (m, *shape), f"tree/saddle has shape {saddle.shape}, expected ({m}, {', '.join(map(str, shape))})")
    path = None if c.tree_path is None else _coordinates(c.tree_path)
    if path is not None:
        require(path.ndim == 2 + len(shape) and path.shape[0] == m and path.shape[2:] == shape,
                f"tree/path has shape {path.shape}, expected ({m}, P, {', '.join(map(str, shape))})")
    unknown = set(c.attrs) - set(_GROUPS)
    require(not unknown, f"attrs given for unknown groups {sorted(unknown)}")
    out = MapContent(
        minima_x=x, minima_energy=energy, minima_hits=hits, levels=levels, main=int(c.main), barriers=table,
        tree=c.tree, tree_saddle=saddle, tree_path=path, grid=_grid(c.grid),
        funnel=_funnel(c.funnel, levels[c.main].n_basins, n), diagnosis=_diagnosis(c.diagnosis, n),
        attrs={k: dict(v) for k, v in c.attrs.items()}, meta=c.meta,
    )
    return out


def _grid(grid: GridData | None) -> GridData | None:
    if grid is None:
        return None
    out = GridData(x=_np(grid.x, np.float64), y=_np(grid.y, np.float64), energy=_np(grid.energy, np.float64))
    require(out.x.ndim == 1 and out.y.ndim == 1, "grid/x and grid/y must be 1-D")
    require(out.energy.shape == (out.y.shape[0], out.x.shape[0]),
            f"grid/energy has shape {out.energy.shape}, expected ({out.y.shape[0]}, {out.x.shape[0]})")
    return out


def _funnel(funnel: FunnelData | None, b: int, n: int | None = None) -> FunnelData | None:
    if funnel is None:
        return None
    out = FunnelData(noise=_np(funnel.noise, np.float64), occupancy=_np(funnel.occupancy, np.float64),
                     entropy=_np(funnel.entropy, np.float64), score=float(funnel.score), attrs=dict(funnel.attrs))
    require(out.noise.ndim == 1, f"funnel/noise must be 1-D, got shape {out.noise.shape}")
    k = out.noise.shape[0]
    require(out.occupancy.shape == (k, b), f"funnel/occupancy has shape {out.occupancy.shape}, expected ({k}, {b})")
    require(out.entropy.shape == (k,), f"funnel/entropy has shape {out.entropy.shape}, expected ({k},)")
    if funnel.sinks is not None:
        out.sinks = _np(funnel.sinks, np.int64)
        require(out.sinks.ndim == 2 and out.sinks.shape[0] == k, f"funnel/sinks has shape {out.sinks.shape}, expected ({k}, S)")
        require(bool(((out.sinks >= -1) & (out.sinks < b)).all()), f"funnel/sinks holds indices outside [-1, {b})")
    for name in ("occupancy_data", "occupancy_noise"):
        value = getattr(funnel, name)
        if value is not None:
            arr = _np(value, np.float64)
            require(arr.shape == (k, b), f"funnel/{name} has shape {arr.shape}, expected ({k}, {b})")
            setattr(out, name, arr)
    if funnel.chain_minimum is not None:
        out.chain_minimum = _np(funnel.chain_minimum, np.int64)
        require(out.chain_minimum.ndim == 2 and out.chain_minimum.shape[0] == k,
                f"funnel/chain_minimum has shape {out.chain_minimum.shape}, expected ({k}, C)")
        require(bool((out.chain_minimum >= 0).all()) and (n is None or bool((out.chain_minimum < n).all())),
                f"funnel/chain_minimum holds indices outside [0, {n})")
    if funnel.chain_start is not None:
        out.chain_start = _np(funnel.chain_start, np.int8)
        c = out.chain_minimum.shape[1] if out.chain_minimum is not None else out.chain_start.shape[0]
        require(out.chain_start.shape == (c,), f"funnel/chain_start has shape {out.chain_start.shape}, expected ({c},)")
    return out


def _diagnosis(diagnosis: DiagnosisData | None, n: int) -> DiagnosisData | None:
    if diagnosis is None:
        return None
    out = DiagnosisData(spurious=_np(diagnosis.spurious, bool), nn_distance=_np(diagnosis.nn_distance, np.float64),
                        bar=dict(diagnosis.bar), attrs=dict(diagnosis.attrs))
    if "rule" in out.attrs:  # (JSON text, as the map's other structured attributes: a dict is written as JSON,
        out.attrs["rule"] = rule_json(out.attrs["rule"])  # and so is an old map's Python dict text read back)
    require(out.spurious.shape == (n,), f"diagnosis/spurious has shape {out.spurious.shape}, expected ({n},)")
    require(out.nn_distance.shape == (n,), f"diagnosis/nn_distance has shape {out.nn_distance.shape}, expected ({n},)")
    for name, dtype in (("reasons", np.uint8), ("nn_index", np.int64), ("saturation", np.float64)):
        value = getattr(diagnosis, name)
        if value is not None:
            arr = _np(value, dtype)
            require(arr.shape == (n,), f"diagnosis/{name} has shape {arr.shape}, expected ({n},)")
            setattr(out, name, arr)
    return out


# ------------------------------------------------------------------------------- write


def _write_partition(root: h5py.Group, part: Partition) -> None:
    _put(root, "minima/basin", part.basin)
    _put(root, "basins/representative", part.representative)
    _put(root, "basins/energy", part.energy)
    root["basins"].attrs["count"] = part.n_basins


def _write_content(f: h5py.File, c: MapContent) -> None:
    minima = f.create_group("minima")
    _put(f, "minima/x", c.minima_x)
    _put(f, "minima/energy", c.minima_energy)
    _put(f, "minima/hits", c.minima_hits)
    _write_partition(f, c.partition)
    minima.attrs["count"] = c.n_minima
    t = c.barriers
    for name, value in (("pairs", t.pairs.reshape(-1, 2)), ("energy", t.estimate), ("refined", t.refined),
                        ("alpha", t.alpha), ("source", t.source), ("saddle_point", t.saddle_point)):
        _put(f, f"barriers/{name}", value)
    f["barriers"].attrs["count"] = len(t)
    tree = c.tree
    for name in ("linkage", "barrier", "connected", "refined", "pair"):
        _put(f, f"tree/{name}", getattr(tree, name))
    if c.tree_saddle is not None:
        _put(f, "tree/saddle", c.tree_saddle)
    if c.tree_path is not None:
        _put(f, "tree/path", c.tree_path)
    levels = f.create_group("levels")
    for k, part in enumerate(c.levels):
        g = levels.create_group(str(k))
        _write_partition(g, part)
        _set_attrs(g, {**part.attrs, "alpha": float(part.alpha), "multiplier": part.multiplier,
                       "basins": part.n_basins}, f"/levels/{k}")
    for name in _GROUPS:
        _set_attrs(f[name], c.attrs.get(name, {}), f"/{name}")
    # The tree's own attributes, after the group statistics, which must not override them.
    f["tree"].attrs["energy_offset"] = float(tree.offset)
    f["tree"].attrs["flat_rtol"] = float(tree.flat_rtol)
    f["tree"].attrs["flat_atol"] = float(tree.flat_atol)
    levels.attrs["count"] = len(c.levels)
    levels.attrs["main"] = int(c.main)
    if c.grid is not None:
        for name in ("x", "y", "energy"):
            _put(f, f"grid/{name}", getattr(c.grid, name))
    if c.funnel is not None:
        _write_funnel(f, c.funnel)
    if c.diagnosis is not None:
        _write_diagnosis(f, c.diagnosis)


_FUNNEL_OPTIONAL = ("sinks", "occupancy_data", "occupancy_noise", "chain_minimum", "chain_start")
_DIAGNOSIS_OPTIONAL = ("reasons", "nn_index", "saturation")


def _write_funnel(f: h5py.File, funnel: FunnelData) -> None:
    g = f.create_group("funnel")
    _put(f, "funnel/noise", funnel.noise)
    _put(f, "funnel/occupancy", funnel.occupancy)
    _put(f, "funnel/entropy", funnel.entropy).attrs["score"] = funnel.score
    for name in _FUNNEL_OPTIONAL:
        if getattr(funnel, name) is not None:
            _put(f, f"funnel/{name}", getattr(funnel, name))
    _set_attrs(g, funnel.attrs, "/funnel")


def _write_diagnosis(f: h5py.File, diagnosis: DiagnosisData) -> None:
    g = f.create_group("diagnosis")
    _put(f, "diagnosis/spurious", diagnosis.spurious)
    _set_attrs(_put(f, "diagnosis/nn_distance", diagnosis.nn_distance), diagnosis.bar, "/diagnosis/nn_distance")
    for name in _DIAGNOSIS_OPTIONAL:
        if getattr(diagnosis, name) is not None:
            _put(f, f"diagnosis/{name}", getattr(diagnosis, name))
    _set_attrs(g, diagnosis.attrs, "/diagnosis")


def write_map(
    path: str | Path,
    content: MapContent,
    *,
    config: Mapping[str, Any],
    source: Mapping[str, Any] | str,
    tool_version: str,
    settings: Mapping[str, Any] | None = None,
    seconds: Mapping[str, float] | None = None,
    ranks: int | None = None,
    work_split: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a map atomically (replacing the file at ``path`` only once complete).

    An existing map at ``path`` (one of ours, of any schema version) is replaced, as a
    rerun notebook cell does; any other file (a checkpoint, someone's HDF5 file, a map's
    progress file) only with ``overwrite``.

    Parameters
    ----------
    path : str or Path
        A file name (not a folder).
    content : MapContent
        Arrays are converted to the schema dtypes; ``content.meta`` is ignored.
    config : dict
        The mapping settings as given (plain data), root attr ``config`` (JSON).
    source : dict or str
        What was mapped (checkpoint path and sha256, or an energy spec), root attr
        ``source`` (JSON; a record, never code to run).
    tool_version : str
    settings : dict, optional
        The settings the map chose and used, root attr ``settings`` (JSON).
    seconds : dict, optional
        Wall time per stage, root attr ``seconds`` (JSON).
    ranks : int, optional
        The processes (torchrun ranks) of the run that made the map, root attr ``ranks``
        (1: one process); not written where None.
    work_split : dict, optional
        How they shared the work, root attr ``work_split`` (JSON; see
        :func:`landscape.mapping.pipeline.build_map`); not written where None.
    overwrite : bool
        Replace a file at ``path`` that is not a map, too.

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
    LandscapeError
        An attribute the reader would refuse (a count below 0, say; nothing is written),
        a file at ``path`` that is not a map (without ``overwrite``; it is left as it was),
        a ``path`` that names no file (``""``, ``"."``), or a disk that refuses the file
        (full, read-only, a folder at ``path``).

    Examples
    --------
    >>> result = build_map(energy)  # doctest: +SKIP
    >>> write_map("wells.h5", result.content, config=MapConfig().to_dict(), source={"spec": "wells"},
    ...           tool_version="0.1.0", settings=result.settings)  # doctest: +SKIP
    >>> result.write("wells.h5")  # the same, with the record build_map kept  # doctest: +SKIP
    """
    path = file_path(path)
    c = _check(content)
    _check_read(c)  # never write a map the reader would refuse
    blobs = [_dumps(config), _dumps(source), _dumps(settings or {}), _dumps(seconds or {})]  # fail before disk
    shared = {} if ranks is None else {"ranks": checks.integer(None, "ranks", ranks, minimum=1)}
    if work_split is not None:
        shared["work_split"] = _dumps(work_split)
    other = None if overwrite else _not_a_map(path)
    if other is not None:
        raise LandscapeError(f"{path} is not a map ({other}): pass overwrite=True to replace it, or delete it")
    with new_hdf5(path, _nbytes(c)) as f:
        f.attrs["schema"] = SCHEMA
        f.attrs["schema_version"] = SCHEMA_VERSION
        f.attrs["created"] = utc_now()
        f.attrs["tool_version"] = str(tool_version)
        for key, blob in zip(("config", "source", "settings", "seconds"), blobs):
            f.attrs[key] = blob
        for key, value in shared.items():
            f.attrs[key] = value
        _write_content(f, c)
    return path


# -------------------------------------------------------------------------------- read


@contextmanager
def _open_map(path: Path) -> Iterator[h5py.File]:
    """Open a map for reading and check its schema; LandscapeError if it is not one."""
    if not path.exists():
        partial = progress_path(path)
        if partial.is_file():  # (`landscape map --out` writes the map only once it is done)
            raise LandscapeError(
                f"no map file at {path} yet: {partial} holds the progress of a map being made there (or one "
                f"interrupted, or finished but not written): landscape info {partial} says how far it got")
        raise LandscapeError(f"no map file at {path}")
    if path.is_dir():
        raise LandscapeError(f"{path} is a folder, not a map file")
    check_regular_file(path, "map file")
    try:
        f = h5py.File(path, "r")
    except _H5_ERRORS as err:
        if "unable to lock file" in str(err):  # HDF5's own lock: a program has it open to write
            raise LandscapeError(f"{path} is open for writing in another program (HDF5 locks it): close it there, "
                                 "then run this again") from None
        if zipfile.is_zipfile(path):  # (torch.save writes zip archives)
            raise LandscapeError(f"{path} is a PyTorch file (a checkpoint?), not a map: map it first "
                                 f"(landscape map {path})") from None
        raise LandscapeError(f"{path} is not a readable HDF5 file ({first_line(err)})") from None
    with f:
        try:
            schema = f.attrs.get("schema")
            version = f.attrs.get("schema_version")
        except _H5_ERRORS as err:
            raise LandscapeError(f"{path} is not a valid map: {first_line(err)}") from None
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


def _read_partition(g: h5py.Group, alpha: float, multiplier: Any, attrs: Attrs) -> Partition:
    return Partition(alpha=float(alpha), basin=_get(g, "minima/basin"), representative=_get(g, "basins/representative"),
                     energy=_get(g, "basins/energy"),
                     multiplier=float(multiplier) if isinstance(multiplier, (int, float, np.integer, np.floating))
                     and not isinstance(multiplier, (bool, np.bool_)) else None, attrs=attrs)


def _attr(obj: h5py.HLObject, key: str) -> Any:
    """Attribute ``key`` of ``obj`` (ValueError naming both if it is missing)."""
    if key not in obj.attrs:
        raise ValueError(f"missing attribute {key} of {obj.name}")
    value = obj.attrs[key]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _energy_offset(g: h5py.Group) -> float:
    require("energy_offset" in g.attrs, "tree attr energy_offset must be finite: it is missing")
    return checks.number(None, "/tree attr energy_offset", g.attrs["energy_offset"])


def _tree_tol(g: h5py.Group, name: str, unset: float, maximum: float | None = None) -> float:
    """The tree's tolerance attr ``name`` (flat_rtol, flat_atol), ``unset`` for a map
    written before it was recorded: float32's flat_rtol (all of them were made with it), a
    flat_atol of 0 (none)."""
    if name not in g.attrs:
        return unset
    return checks.number(None, f"/tree attr {name}", g.attrs[name], minimum=0.0, maximum=maximum)


def _level_attrs(g: h5py.Group) -> tuple[float, float | None]:
    """A level's alpha (finite) and multiplier (finite, or None when not recorded)."""
    alpha = checks.number(None, f"{g.name} attr alpha", _attr(g, "alpha"))
    multiplier = g.attrs.get("multiplier")
    if multiplier is not None:
        multiplier = checks.number(None, f"{g.name} attr multiplier", multiplier)
    return alpha, multiplier


def _read_optional(f: h5py.File, c: MapContent) -> None:
    if "grid" in f:
        c.grid = GridData(x=_get(f, "grid/x"), y=_get(f, "grid/y"), energy=_get(f, "grid/energy"))
    if "funnel" in f:
        c.funnel = FunnelData(
            noise=_get(f, "funnel/noise"), occupancy=_get(f, "funnel/occupancy"), entropy=_get(f, "funnel/entropy"),
            score=checks.number(None, "/funnel/entropy attr score", _attr(f["funnel/entropy"], "score"), finite=False,
                                nan=True), attrs=_get_attrs(f["funnel"]),
            **{name: _opt(f, f"funnel/{name}") for name in _FUNNEL_OPTIONAL},
        )
    if "diagnosis" in f:
        c.diagnosis = DiagnosisData(
            spurious=_get(f, "diagnosis/spurious"), nn_distance=_get(f, "diagnosis/nn_distance"),
            bar=_get_attrs(f["diagnosis/nn_distance"], skip=("description", "units")),
            attrs=_get_attrs(f["diagnosis"]), **{name: _opt(f, f"diagnosis/{name}") for name in _DIAGNOSIS_OPTIONAL},
        )
        if "rule" in c.diagnosis.attrs:  # (maps written before it was JSON keep a Python dict's text)
            c.diagnosis.attrs["rule"] = rule_json(c.diagnosis.attrs["rule"])


def _read_v2(f: h5py.File) -> MapContent:
    energy = _get(f, "minima/energy")
    n = energy.shape[0]
    levels = []
    require("levels" in f and isinstance(f["levels"], h5py.Group), "missing group /levels")
    for name in sorted(f["levels"], key=_level_index):
        g = f["levels"][name]
        require(isinstance(g, h5py.Group), f"/levels/{name} is not a group")
        attrs = _get_attrs(g, skip=("alpha", "multiplier", "basins"))
        levels.append(_read_partition(g, *_level_attrs(g), attrs))
    main = checks.integer(None, "/levels attr main", _attr(f["levels"], "main"))
    require(0 <= main < len(levels), f"/levels attr main = {main}, but there are {len(levels)} levels")
    require(bool(np.array_equal(_get(f, "minima/basin"), levels[main].basin)),
            "/minima/basin differs from the main level's /levels partition")
    require(bool(np.array_equal(_get(f, "basins/representative"), levels[main].representative))
            and bool(np.array_equal(_get(f, "basins/energy"), levels[main].energy)),
            "/basins differs from the main level's /levels partition")
    table = PairTable(pairs=_get(f, "barriers/pairs").reshape(-1, 2), estimate=_get(f, "barriers/energy"),
                      refined=_get(f, "barriers/refined"), alpha=_get(f, "barriers/alpha"),
                      source=_get(f, "barriers/source"),
                      saddle_point=_get(f, "barriers/saddle_point") if "barriers/saddle_point" in f else None)
    pair = _get(f, "tree/pair")
    require(bool(((pair >= -1) & (pair < len(table))).all()), f"tree/pair holds rows outside [-1, {len(table)})")
    edge = np.where((pair >= 0)[:, None], table.pairs[np.maximum(pair, 0)] if len(table) else -1, -1)
    tree = BarrierTree(
        leaves=np.arange(n, dtype=np.int64), energy=energy, linkage=_get(f, "tree/linkage"),
        offset=_energy_offset(f["tree"]),
        barrier=_get(f, "tree/barrier"),
        connected=_get(f, "tree/connected"), refined=_get(f, "tree/refined"), pair=pair,
        edge=edge.astype(np.int64).reshape(-1, 2), flat_rtol=_tree_tol(f["tree"], "flat_rtol", FLAT_RTOL, 1.0),
        flat_atol=_tree_tol(f["tree"], "flat_atol", 0.0),
    )
    c = MapContent(
        minima_x=_get(f, "minima/x"), minima_energy=energy, minima_hits=_get(f, "minima/hits"), levels=levels,
        main=main, barriers=table, tree=tree, tree_saddle=_opt(f, "tree/saddle"), tree_path=_opt(f, "tree/path"),
        attrs={name: _get_attrs(f[name], skip=("description", "count", "energy_offset", "flat_rtol", "flat_atol",
                                               "main"))
               for name in _GROUPS},
    )
    _read_optional(f, c)
    return c


def _read_v1(f: h5py.File) -> MapContent:
    """A schema-1 map: the tree's leaves are the top level's basins (their representatives)."""
    energy = _get(f, "minima/energy")
    n = energy.shape[0]
    battrs = _get_attrs(f["barriers"])
    top_alpha = battrs.get("alpha")
    top = _read_partition(f, top_alpha if isinstance(top_alpha, (int, float)) else np.nan, None, {})
    levels, main = [], -1
    if "levels" in f:
        for name in sorted(f["levels"], key=_level_index):
            g = f["levels"][name]
            part = _read_partition(g, *_level_attrs(g), _get_attrs(g, skip=("alpha",)))
            if main < 0 and np.array_equal(part.basin, top.basin) and np.array_equal(part.representative,
                                                                                       top.representative):
                main = len(levels)
            levels.append(part)
    if main < 0:
        top.alpha = float(top.alpha) if np.isfinite(top.alpha) else 0.0
        levels.append(top)
        main = len(levels) - 1
    basin_pairs = _get(f, "barriers/pairs").reshape(-1, 2)
    estimate = _get(f, "barriers/energy")
    refined = _get(f, "barriers/refined") if "barriers/refined" in f else np.full(estimate.shape, np.nan)
    pair_alpha = np.asarray(battrs.get("pair_alpha", []), dtype=np.float64)
    rep = top.representative
    require(bool(((basin_pairs >= 0) & (basin_pairs < top.n_basins)).all()), "barriers/pairs holds indices outside the basins")
    table = PairTable(pairs=np.sort(rep[basin_pairs], axis=1) if basin_pairs.size else basin_pairs,
                      estimate=estimate, refined=refined,
                      alpha=pair_alpha if pair_alpha.shape == estimate.shape else np.full(estimate.shape, np.nan),
                      source=np.full(estimate.shape, ATTRACTION, dtype=np.uint8))
    z = _get(f, "tree/linkage").reshape(-1, 4)
    b = top.n_basins
    require(z.shape[0] == b - 1, f"tree/linkage has {z.shape[0]} rows for {b} basins")
    tree = _v1_tree(z, top.energy, rep, basin_pairs, table, energy)
    c = MapContent(minima_x=_get(f, "minima/x"), minima_energy=energy, minima_hits=_get(f, "minima/hits"),
                   levels=levels, main=main, barriers=table, tree=tree,
                   attrs={name: _get_attrs(f[name], skip=("count",)) for name in ("minima", "basins", "barriers",
                                                                                   "tree") if name in f})
    _read_optional(f, c)
    del n
    return c


def _v1_tree(z: np.ndarray, basin_energy: np.ndarray, rep: np.ndarray, basin_pairs: np.ndarray,
             table: PairTable, minima_energy: np.ndarray) -> BarrierTree:
    """A schema-1 linkage (absolute heights over basins) as a BarrierTree: each merge is
    attributed to the lowest-barrier pair across its two sides (none: not connected)."""
    b = basin_energy.shape[0]
    best = table.best(minima_energy)
    label = np.arange(b)
    pair = np.full(b - 1, -1, dtype=np.int64)
    for k, (a, c, _, _) in enumerate(z):
        a, c = int(a), int(c)
        if basin_pairs.size:
            la, lc = label[basin_pairs[:, 0]], label[basin_pairs[:, 1]]
            across = np.flatnonzero((((la == a) & (lc == c)) | ((la == c) & (lc == a))) & np.isfinite(best))
            if across.size:
                pair[k] = int(across[np.argmin(best[across])])
        label[(label == a) | (label == c)] = b + k
    connected = pair >= 0
    offset = float(basin_energy.min())
    linkage = z.copy()
    linkage[:, 2] = np.maximum(z[:, 2] - offset, 0.0)
    edge = np.full((b - 1, 2), -1, dtype=np.int64)
    edge[connected] = np.sort(basin_pairs[pair[connected]], axis=1)
    return BarrierTree(leaves=rep.astype(np.int64), energy=basin_energy, linkage=linkage, offset=offset,
                       barrier=np.where(connected, z[:, 2], np.inf), connected=connected,
                       refined=connected & table.is_refined(minima_energy)[np.maximum(pair, 0)] if len(table) else connected,
                       pair=pair, edge=edge)


def _read_meta(f: h5py.File) -> MapMeta:
    root = _get_attrs(f)
    for key in ("schema_version", "created", "tool_version", "source", "config"):
        if key not in root:
            raise ValueError(f"missing root attribute {key}")
    for key in ("created", "tool_version"):
        checks.text(None, f"root attribute {key}", root[key], empty=True)
    parsed = {key: _json_attr(root, key) for key in ("source", "config", "settings", "seconds", "work_split")
              if key in root}
    if not (parsed["source"] is None or isinstance(parsed["source"], (dict, str))):
        raise checks.bad(None, "root attribute source", root["source"], "JSON of a record (an object) or a string")
    if "ranks" in root:
        parsed["ranks"] = checks.integer(None, "root attribute ranks", root["ranks"], minimum=1)
    for key in ("config", "settings", "seconds", "work_split"):
        if key in parsed and not (parsed[key] is None or isinstance(parsed[key], dict)):
            raise checks.bad(None, f"root attribute {key}", root[key], "JSON of an object (or null)")
    for stage, value in (parsed.get("seconds") or {}).items():
        if value is not None:
            checks.number(None, f"root attribute seconds[{stage!r}]", value, finite=False, nan=True)
    root.update(parsed)
    root.pop("schema", None)
    return MapMeta(schema_version=int(root.pop("schema_version")), created=str(root.pop("created")),
                   tool_version=str(root.pop("tool_version")), source=root.pop("source"), config=root.pop("config"),
                   extra=root)


def _json_attr(root: Attrs, key: str) -> Any:
    value = root[key]
    if not isinstance(value, str):
        raise checks.bad(None, f"root attribute {key}", value, "JSON text")
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"root attribute {key} is not valid JSON ({err.msg} at character {err.pos})") from None


def _level_index(name: str) -> int:
    if not name.isdigit():
        raise ValueError(f"/levels/{name}: levels are named by their index 0, 1, ...")
    return int(name)


#: Group attributes the commands read, and what each must be (checked when present).
_NUMBER_ATTRS = {
    "minima": ("temperature",),
    "levels": ("temperature", "alpha_unit", "delta", "eps"),
    "barriers": ("temperature",),
}
_COUNT_ATTRS = {"minima": ("chains", "rounds", "funnel_added"), "levels": ("extended", "inserted"),
                "barriers": ("refined", "refined_above_estimate", "saddle_points", "retried", "strings_at_budget")}
_TEXT_ATTRS = {"minima": ("dataset",), "levels": ("note",)}
_FUNNEL_ATTRS = {"reference_entropy": "number", "funnel_threshold": "number", "chains_per_level": "count",
                 "steps": "count", "reference": "text"}


def _check_read(c: MapContent) -> None:
    """What a map read from a file must hold beyond what :func:`_check` asks of any map:
    finite coordinates and barriers, non-negative counts, and group attributes of the types
    the commands read (ValueError or LandscapeError naming the dataset or attribute)."""
    n = c.n_minima
    require(bool(np.isfinite(c.minima_x).all()), "/minima/x holds non-finite coordinates (NaN or inf)")
    require(bool((c.minima_hits >= 0).all()), "/minima/hits holds negative counts")
    t = c.barriers
    require(not bool(np.isnan(t.estimate).any() or (t.estimate == -np.inf).any()),
            "/barriers/energy holds NaN or -inf (+inf marks a pair with no path)")
    require(not bool(np.isnan(c.tree.barrier).any()), "/tree/barrier holds NaN (+inf marks a merge with no path)")
    require(bool(np.isfinite(c.tree.linkage).all()), "/tree/linkage holds non-finite values")
    for k, part in enumerate(c.levels):
        require(bool(np.isfinite(part.energy).all()), f"/levels/{k}/basins/energy holds non-finite energies")
    if c.grid is not None:
        require(bool(np.isfinite(c.grid.x).all() and np.isfinite(c.grid.y).all()),
                "/grid/x or /grid/y holds non-finite coordinates")
    if c.funnel is not None:
        for name in ("noise", "occupancy", "entropy"):
            require(bool(np.isfinite(getattr(c.funnel, name)).all()), f"/funnel/{name} holds non-finite values")
        require(bool((c.funnel.noise >= 0).all()), "/funnel/noise holds negative noise levels")
    if c.diagnosis is not None:
        require(not bool(np.isnan(c.diagnosis.nn_distance).any()), "/diagnosis/nn_distance holds NaN")
        if c.diagnosis.nn_index is not None:
            require(bool((c.diagnosis.nn_index >= 0).all()), "/diagnosis/nn_index holds negative indices")
    for group, keys in _NUMBER_ATTRS.items():
        attrs = c.attrs.get(group, {})
        for key in keys:
            if key in attrs:
                checks.number(None, f"/{group} attr {key}", attrs[key], minimum=0, finite=False)
    for group, keys in _COUNT_ATTRS.items():
        attrs = c.attrs.get(group, {})
        for key in keys:
            if key in attrs:
                checks.integer(None, f"/{group} attr {key}", attrs[key], minimum=0)
    for group, keys in _TEXT_ATTRS.items():
        attrs = c.attrs.get(group, {})
        for key in keys:
            if key in attrs:
                checks.text(None, f"/{group} attr {key}", attrs[key], empty=True)
    if c.funnel is not None:
        for key, kind in _FUNNEL_ATTRS.items():
            if key in c.funnel.attrs:
                value, field = c.funnel.attrs[key], f"/funnel attr {key}"
                if kind == "number":
                    checks.number(None, field, value, finite=False, nan=True)
                elif kind == "count":
                    checks.integer(None, field, value, minimum=0)
                else:
                    checks.text(None, field, value, empty=True)
    added = c.attrs.get("minima", {}).get("funnel_added", 0)
    require(added <= n, f"/minima attr funnel_added is {added}, more than the {n} minima")
    data_range = c.attrs.get("minima", {}).get("data_range")
    if data_range is not None:
        checks.number_range(None, "/minima attr data_range", data_range)


def _not_a_map(path: Path) -> str | None:
    """What the file at ``path`` is, in words, where it is not one of our maps; None for
    a map of ours, for no file, and for a folder (the write's own error names that)."""
    if not path.is_file():
        return None
    try:
        with open(path, "rb") as f:
            head = f.read(16)
    except OSError:
        return None  # (the write names the problem: permissions, ...)
    if not head:
        return "an empty file"
    if head.startswith(HDF5_SIGNATURE):
        try:
            with h5py.File(path, "r") as f:
                schema = f.attrs.get("schema")
        except _H5_ERRORS:
            return "a damaged HDF5 file"
        schema = schema.decode("utf-8", "replace") if isinstance(schema, bytes) else schema
        if schema == SCHEMA:
            return None
        if schema == PROGRESS_SCHEMA:
            return "a map's progress file"
        return "an HDF5 file of another kind" + (f", schema {schema!r}" if schema is not None else "")
    if head.startswith((ZIP_SIGNATURE, TORCH_LEGACY_SIGNATURE)):
        return "a PyTorch file, a checkpoint?"
    return "a file of another kind"


def is_map_file(path: str | Path) -> bool:
    """True if ``path`` is an HDF5 file (by its signature; a map or not). A FIFO or a
    device is none (and is not opened: a FIFO would block)."""
    if not os.path.isfile(path):
        return False
    try:
        with open(path, "rb") as f:
            return f.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def read_map(path: str | Path) -> MapContent:
    """Read and validate a map (schema 2, or schema 1 with its tree over basins).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    MapContent
        Arrays in the schema dtypes, group statistics in ``attrs``, root attributes in
        ``meta`` (``source``, ``config``, ``settings`` parsed from JSON). For a schema-1
        map, ``meta.schema_version`` is 1 and the tree's leaves are the basins'
        representatives (:attr:`MapContent.over_minima` is false).

    Raises
    ------
    LandscapeError
        With a one-line message if the file is missing, not HDF5 or corrupt, not a map,
        of a newer schema version, or internally inconsistent.

    Cost: reads the whole file (the minima dominate: N * prod(shape) * 4 bytes).
    """
    path = Path(path)
    with _open_map(path) as f:
        try:
            meta = _read_meta(f)
            content = _read_v2(f) if meta.schema_version >= 2 else _read_v1(f)
            content.meta = meta
            _check(content)
            _check_read(content)
        except _H5_ERRORS as err:
            raise LandscapeError(f"{path} is not a valid map: {first_line(err)}") from None
        except LandscapeError as err:  # a field of the wrong type: name the file
            raise LandscapeError(f"{path} is not a valid map: {err}") from None
    return content


def _refuse_external_values(item: h5py.HLObject) -> None:
    """ValueError where ``item`` is, or holds, a dataset whose values sit in another file
    (HDF5 external storage): a copy would read that file into the map, or keep it linked."""
    found: list[str] = []

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset) and obj.external and not found:
            found.append(f"{obj.name} keeps its values in another file ({obj.external[0][0]!r})")

    if isinstance(item, h5py.Dataset):
        visit(item.name, item)
    elif isinstance(item, h5py.Group):
        item.visititems(visit)
    if found:
        raise ValueError(found[0])


def _copy_except(src: h5py.Group, dst: h5py.Group, skip: set[str]) -> None:
    """Copy ``src``'s members (and attrs) into ``dst``, leaving out the paths in ``skip``."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    for name in list(src.keys()):
        link = src.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):  # (another file's contents: kept a link, never opened or copied in)
            dst[name] = h5py.ExternalLink(link.filename, link.path)
            continue
        item = src[name]
        full = item.name
        if full in skip:
            continue
        _refuse_external_values(item)
        if isinstance(item, h5py.Group) and any(s.startswith(full + "/") for s in skip):
            _copy_except(item, dst.create_group(name), skip)
        else:
            src.copy(item, dst, name=name, expand_external=False)


def update_map(
    path: str | Path,
    *,
    funnel: FunnelData | None = None,
    diagnosis: DiagnosisData | None = None,
    drop_diagnosis: bool = False,
) -> Path:
    """Add or replace ``/funnel`` or ``/diagnosis`` of an existing map, atomically;
    ``drop_diagnosis`` leaves ``/diagnosis`` out (a new probe's sinks are not the ones it
    was made with).

    The map is copied member by member into a temporary file, leaving out what is
    replaced (so no dead space accumulates), the new data written, root attr ``updated``
    set, and the copy renamed over the map. Everything else, including groups this
    version does not know, is kept as it was.

    Raises
    ------
    LandscapeError
        If ``path`` is not a readable map (see :func:`read_map`).
    ValueError
        If the new data's shapes do not fit the map (the map is left unchanged).
    """
    path = Path(path)
    with _open_map(path) as f:
        try:
            n = f["minima/energy"].shape[0]
            b = f["basins/energy"].shape[0]
        except _H5_ERRORS as err:
            raise LandscapeError(f"{path} is not a valid map: {first_line(err)}") from None
    new_funnel = _funnel(funnel, b, n)
    new_diagnosis = _diagnosis(diagnosis, n)
    skip = {name for name, value in (("/funnel", new_funnel), ("/diagnosis", new_diagnosis)) if value is not None}
    if drop_diagnosis:
        skip.add("/diagnosis")
    with new_hdf5(path, path.stat().st_size + _nbytes([new_funnel, new_diagnosis])) as dst:
        with h5py.File(path, "r") as src:  # closed before the rename replaces it
            try:
                _copy_except(src, dst, skip)
            except _H5_ERRORS as err:  # (the map stays as it was: the copy is dropped)
                raise LandscapeError(f"{path} is not a valid map: {first_line(err)}") from None
        dst.attrs["updated"] = utc_now()
        if new_funnel is not None:
            _write_funnel(dst, new_funnel)
        if new_diagnosis is not None:
            _write_diagnosis(dst, new_diagnosis)
    return path


def dataset_listing(path: str | Path) -> list[tuple[str, tuple[int, ...], str, str]]:
    """Every dataset in the map: its path, shape, dtype and description (the schema's
    words, or the file's own ``description`` attribute for datasets the schema does not
    name)."""
    path = Path(path)
    rows: list[tuple[str, tuple[int, ...], str, str]] = []
    with _open_map(path) as f:
        v1 = int(f.attrs.get("schema_version", SCHEMA_VERSION)) < 2

        def visit(name: str, item: h5py.HLObject) -> None:
            if isinstance(item, h5py.Dataset):
                try:
                    text = str(item.attrs["description"]) if v1 or "description" in item.attrs else \
                        dataset(name).description
                except KeyError:
                    text = ""
                if v1 and not text:
                    text = "(schema 1: see that version's documentation)"
                rows.append(("/" + name, tuple(item.shape), str(item.dtype), text))

        f.visititems(visit)
    return rows


_KNOWN_GROUPS = ("minima", "basins", "barriers", "tree", "grid", "funnel", "diagnosis", "levels")


def rewrite_map(path: str | Path, content: MapContent) -> Path:
    """Replace the whole content of an existing map, atomically, keeping its identity.

    For changes that touch the required groups (a funnel probe that maps new minima
    rewrites every group). The root attributes (``created``, ``source``, ``config``, ...)
    are kept and ``updated`` set; groups this version does not know are copied as they
    were; everything the schema names comes from ``content`` (its optional parts that
    are None are dropped). The map is written as schema 2.

    Raises
    ------
    LandscapeError
        If ``path`` is not a readable map.
    ValueError
        If ``content`` is inconsistent (the map is left unchanged).
    """
    path = Path(path)
    c = _check(content)
    _check_read(c)  # never write a map the reader would refuse
    with _open_map(path):
        pass  # a readable map of a known schema, or a one-line error
    with new_hdf5(path, path.stat().st_size + _nbytes(c)) as dst:  # (its unknown groups copied: at most)
        with h5py.File(path, "r") as src:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for name in src:
                if name not in _KNOWN_GROUPS:
                    src.copy(src[name], dst, name=name)
        dst.attrs["schema_version"] = SCHEMA_VERSION
        dst.attrs["updated"] = utc_now()
        _write_content(dst, c)
    return path


# ------------------------------------------------------------------------ atomic files


def _nbytes(obj: Any, depth: int = 0) -> int:
    """The bytes of the arrays in ``obj`` (a dataclass of arrays, lists of them), roughly."""
    if isinstance(obj, np.ndarray):
        return int(obj.nbytes)
    if hasattr(obj, "detach"):
        return int(obj.numel() * obj.element_size())
    if depth > 3:
        return 0
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v, depth + 1) for v in obj)
    if hasattr(obj, "__dataclass_fields__"):
        return sum(_nbytes(getattr(obj, name), depth + 1) for name in obj.__dataclass_fields__)
    return 0
