"""The HDF5 map (schema 2): round trips of every part, the schema as written, scipy reading
the tree as stored, large maps, schema-1 maps, atomic writes and one-line errors."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from scipy.cluster import hierarchy

from landscape import LandscapeError
from landscape.io import mapfile
from landscape.io.mapfile import (
    DiagnosisData,
    FunnelData,
    GridData,
    MapContent,
    dataset_listing,
    read_map,
    rewrite_map,
    update_map,
    write_map,
)
from landscape.io.progress import (
    ProgressMismatch, clear_progress, load_progress, progress_path, resume_progress, save_progress,
)
from landscape.io.records import ATTRACTION, NEIGHBOUR, PairTable, Partition
from landscape.io.schema import COORDINATES, DATASETS, SCHEMA, SCHEMA_VERSION, dataset
from landscape.io.views import basin_tree_of, merges_at_saddle_points
from landscape.mapping.tree import FLAT_RTOL, flat_rtol, minimax_tree
from conftest import run
from conftest import SCHEMA1_LINKAGE, write_schema1_map

CONFIG = {"temperature": None, "alpha": [0.5, 1.0], "steps": 5000, "seed": 3}
SOURCE = {"kind": "checkpoint", "path": "runs/rings.pt", "sha256": "ab" * 32}
SETTINGS = {"temperature": 20.0, "alpha_unit": 0.7, "delta": None}
SECONDS = {"explore": 1.5, "attraction-diffusion": 2.25}

# ------------------------------------------------------------------ the full map
# Six minima of shape (1, 2, 2); minimum 5 is reached by no path (its only pair has no
# finite barrier), so the tree's last merge is not connected. Pairs 0-1 and 2-3 are
# refined below their estimates (the tree takes the saddle).
ENERGY = [-5.0, -4.5, -3.0, -2.9, -1.0, -0.5]
PAIRS = [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5)]
ESTIMATE = [-4.0, -2.0, -1.5, -2.5, 0.5, np.inf]
REFINED = [-4.2, np.nan, np.nan, -2.6, np.nan, np.nan]
LEVELS = [[0, 1, 2, 3, 4, 5], [0, 0, 1, 1, 2, 3], [0, 0, 0, 0, 1, 1]]
ALPHAS = [0.5, 1.0, 2.0]
GROUP_ATTRS = {
    "minima": {"temperature": 20.0, "chains": 64},
    "basins": {"note": "attraction-diffusion at the main level"},
    "barriers": {"retried": 2, "refined": 2},
    "tree": {"refined_merges": 2},
    "levels": {"delta": 0.1, "extended": 0},
}


def full_content(make_map) -> MapContent:
    """A map with every part the schema names, optional ones included."""
    rng = np.random.default_rng(0)
    n = len(ENERGY)
    c = make_map(rng.normal(size=(n, 1, 2, 2)), ENERGY, PAIRS, ESTIMATE, refined=REFINED, levels=LEVELS,
                 alphas=ALPHAS, main=1, hits=[10, 3, 7, 1, 2, 2], attrs=GROUP_ATTRS)
    c.barriers.alpha = np.array([0.3, np.nan, 0.5, np.nan, 1.0, np.nan])
    c.barriers.source = np.array([NEIGHBOUR, ATTRACTION, NEIGHBOUR | ATTRACTION, NEIGHBOUR, ATTRACTION, ATTRACTION],
                                 dtype=np.uint8)
    c.levels[0].attrs = {"trials": 12, "seconds": 0.25}
    c.levels[2].attrs = {"chain_steps": 4000}
    m = n - 1
    c.tree_saddle = np.full((m, 1, 2, 2), np.nan, dtype=np.float32)
    c.tree_path = np.full((m, 7, 1, 2, 2), np.nan, dtype=np.float32)
    for k in np.flatnonzero(c.tree.refined):
        c.tree_saddle[k] = rng.normal(size=(1, 2, 2))
        c.tree_path[k] = rng.normal(size=(7, 1, 2, 2))
    b = c.n_basins
    c.grid = GridData(x=np.linspace(-1, 1, 4), y=np.linspace(0, 1, 3), energy=np.arange(12.0).reshape(3, 4))
    c.funnel = FunnelData(
        noise=np.array([0.0, 1.0]),
        occupancy=np.array([[0.4, 0.3, 0.2, 0.1], [1.0, 0.0, 0.0, 0.0]]),
        entropy=np.array([1.28, 0.0]),
        score=0.9,
        attrs={"chains_per_level": 5, "reference": "chains from data at the lowest noise", "temperature": [0.0, 1.0]},
        sinks=np.array([[0, 1, -1], [0, -1, -1]]),
        occupancy_data=np.array([[0.5, 0.5, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]]),
        occupancy_noise=np.array([[0.0, 0.0, 0.5, 0.5], [1.0, 0.0, 0.0, 0.0]]),
        chain_minimum=np.array([[0, 2, 4, 5, 1], [0, 0, 1, 0, 0]]),
        chain_start=np.array([0, 0, 1, 1, 1], dtype=np.int8),
    )
    assert c.funnel.occupancy.shape[1] == b == 4
    c.diagnosis = DiagnosisData(
        spurious=np.array([False, True, False, False, False, True]),
        nn_distance=np.linspace(0.1, 0.6, n),
        bar={"data_q50": 0.2, "data_q99": 0.4},
        attrs={"rule": "nn > q99 and energy <= data median", "off_data": 2},
        reasons=np.array([0, 1, 0, 0, 0, 5], dtype=np.uint8),
        nn_index=np.array([3, 1, 4, 1, 5, 9]),
        saturation=np.linspace(0.0, 0.5, n),
    )
    return c


def write_full(tmp_path, make_map, name: str = "m.h5") -> tuple[Path, MapContent]:
    content = full_content(make_map)
    path = write_map(tmp_path / name, content, config=CONFIG, source=SOURCE, tool_version="0.2.0",
                     settings=SETTINGS, seconds=SECONDS)
    return path, content


def assert_same_core(a: MapContent, b: MapContent) -> None:
    """Minima, levels, barriers and the tree (with its points) are equal."""
    for name in ("minima_x", "minima_energy", "minima_hits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.main == b.main and len(a.levels) == len(b.levels)
    for k, (p, q) in enumerate(zip(a.levels, b.levels)):
        assert p.alpha == q.alpha and p.multiplier == q.multiplier, k
        for name in ("basin", "representative", "energy"):
            np.testing.assert_array_equal(getattr(p, name), getattr(q, name), err_msg=f"level {k} {name}")
    for name in PairTable.COLUMNS:
        np.testing.assert_array_equal(getattr(a.barriers, name), getattr(b.barriers, name), err_msg=f"barriers {name}")
    for name in ("leaves", "energy", "linkage", "barrier", "connected", "refined", "pair", "edge"):
        np.testing.assert_array_equal(getattr(a.tree, name), getattr(b.tree, name), err_msg=f"tree {name}")
    assert a.tree.offset == b.tree.offset and a.tree.flat_rtol == b.tree.flat_rtol
    for name in ("tree_saddle", "tree_path"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)


# ------------------------------------------------------------------- round trips


def test_round_trip_of_every_part(tmp_path, make_map):
    path, content = write_full(tmp_path, make_map)
    back = read_map(path)
    assert_same_core(back, content)
    # dtypes as the schema says
    assert back.minima_x.dtype == np.float32 and back.minima_energy.dtype == np.float64
    assert back.minima_hits.dtype == np.int64 and back.barriers.source.dtype == np.uint8
    assert back.tree.connected.dtype == bool and back.tree.refined.dtype == bool
    assert back.tree_saddle.dtype == np.float32 and back.tree_path.shape == (5, 7, 1, 2, 2)
    # levels: the ladder, the main one, their statistics
    assert [p.alpha for p in back.levels] == ALPHAS and back.main == 1
    assert back.n_basins == 4 and back.partition is back.levels[1]
    np.testing.assert_array_equal(back.minima_basin, [0, 0, 1, 1, 2, 3])
    np.testing.assert_array_equal(back.basin_representative, [0, 2, 4, 5])
    np.testing.assert_array_equal(back.basin_energy, [-5.0, -3.0, -1.0, -0.5])
    assert back.levels[0].attrs == {"trials": 12, "seconds": 0.25}
    assert back.levels[1].attrs == {} and back.levels[2].attrs == {"chain_steps": 4000}
    # barriers: estimates (+inf kept), refined saddles (NaN kept), alpha, source bits
    assert math.isinf(back.barriers.estimate[5])
    assert np.isnan(back.barriers.refined).tolist() == [False, True, True, False, True, True]
    np.testing.assert_array_equal(back.barriers.source, [1, 2, 3, 1, 2, 2])
    # the tree: every minimum a leaf, refined merges at their saddles, the last merge has no path
    assert back.over_minima and back.tree.n_leaves == 6
    np.testing.assert_array_equal(back.tree.leaves, np.arange(6))
    assert back.tree.barrier.tolist() == [-4.2, -2.6, -2.0, 0.5, math.inf]
    assert back.tree.connected.tolist() == [True, True, True, True, False]
    assert back.tree.refined.tolist() == [True, True, False, False, False]
    assert back.tree.pair.tolist() == [0, 3, 1, 4, -1]
    np.testing.assert_array_equal(back.tree.edge, [[0, 1], [2, 3], [1, 2], [3, 4], [-1, -1]])
    assert back.tree.offset == -5.0
    np.testing.assert_array_equal(np.isnan(back.tree_saddle).all(axis=(1, 2, 3)), ~back.tree.refined)
    # optional parts
    np.testing.assert_array_equal(back.grid.x, content.grid.x)
    np.testing.assert_array_equal(back.grid.y, content.grid.y)
    np.testing.assert_array_equal(back.grid.energy, content.grid.energy)
    f, g = back.funnel, content.funnel
    assert f.score == 0.9 and f.attrs == g.attrs
    for name in ("noise", "occupancy", "entropy", "sinks", "occupancy_data", "occupancy_noise", "chain_minimum",
                 "chain_start"):
        np.testing.assert_array_equal(getattr(f, name), getattr(g, name), err_msg=f"funnel {name}")
    assert f.chain_start.dtype == np.int8 and f.sinks.dtype == np.int64
    d, e = back.diagnosis, content.diagnosis
    assert d.bar == {"data_q50": 0.2, "data_q99": 0.4} and d.attrs == e.attrs
    for name in ("spurious", "nn_distance", "reasons", "nn_index", "saturation"):
        np.testing.assert_array_equal(getattr(d, name), getattr(e, name), err_msg=f"diagnosis {name}")
    assert d.spurious.dtype == bool and d.reasons.dtype == np.uint8
    # group statistics
    for group, values in GROUP_ATTRS.items():
        got = back.attrs[group]
        assert {k: got[k] for k in values} == values, group
    assert back.attrs["minima"]["data_range"] == [-1.0, 1.0]
    # root attributes
    meta = back.meta
    assert meta.schema_version == SCHEMA_VERSION == 2 and back.schema_version == 2
    assert meta.tool_version == "0.2.0" and meta.config == CONFIG and meta.source == SOURCE
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", meta.created)
    assert meta.extra["settings"] == SETTINGS and meta.extra["seconds"] == SECONDS
    # the settings used: the config with the chosen values in place of the open ones
    assert back.settings() == {"alpha": [0.5, 1.0], "steps": 5000, "seed": 3, "temperature": 20.0, "alpha_unit": 0.7}


def test_without_optional_parts_they_read_back_as_none(tmp_path, make_map):
    content = make_map(np.zeros((3, 2)), [-1.0, 0.0, 1.0])
    path = write_map(tmp_path / "p.h5", content, config={}, source="pot.py:mb", tool_version="0.1.0")
    back = read_map(path)
    assert_same_core(back, content)
    assert back.grid is None and back.funnel is None and back.diagnosis is None
    assert back.tree_saddle is None and back.tree_path is None
    assert back.meta.source == "pot.py:mb" and back.meta.extra.get("settings") == {}
    with h5py.File(path, "r") as f:
        for group in ("grid", "funnel", "diagnosis"):
            assert group not in f
        assert "tree/saddle" not in f and "tree/path" not in f
    # A single minimum: a tree without merges.
    one = make_map(np.zeros((1, 2)), [3.0])
    back = read_map(write_map(tmp_path / "one.h5", one, config={}, source="x", tool_version="0"))
    assert back.tree.n_leaves == 1 and back.tree.linkage.shape == (0, 4) and len(back.barriers) == 0


def test_saddle_points_are_stored_counted_and_absent_in_older_maps(tmp_path, make_map, capsys):
    content = make_map(np.zeros((3, 2)), [-1.0, 0.0, 1.0], refined=[0.5, 1.5],
                       attrs={"barriers": {"saddle_points": 1}})
    content.barriers.saddle_point[:] = [True, False]  # pair (0, 1) a saddle point, (1, 2) a path's top
    path = write_map(tmp_path / "s.h5", content, config={}, source="x", tool_version="0")
    back = read_map(path)
    assert back.barriers.saddle_point.tolist() == [True, False] and back.attrs["barriers"]["saddle_points"] == 1
    assert merges_at_saddle_points(back) == 1
    code, out, _ = run(capsys, "info", path)
    assert code == 0 and "2 merges: 2 at refined barriers (1 of them at saddle points" in out
    code, out, _ = run(capsys, "info", path, "--json")
    assert code == 0 and json.loads(out)["n_merges_at_saddle_points"] == 1
    # A map of an earlier version: no dataset, no count; read as no saddle points, and
    # nothing said about them.
    with h5py.File(path, "r+") as f:
        del f["barriers/saddle_point"]
        del f["barriers"].attrs["saddle_points"]
    old = read_map(path)
    assert not old.barriers.saddle_point.any() and merges_at_saddle_points(old) is None
    code, out, _ = run(capsys, "info", path)
    assert code == 0 and "2 merges: 2 at refined barriers" in out and "saddle points" not in out


def test_the_flat_threshold_of_the_energys_precision_is_kept_and_older_maps_read_as_float32(tmp_path, make_map,
                                                                                             capsys):
    # Minima near 1000 with barriers 1e-3 above the higher one: 1e-6 of the magnitude, below
    # float32's resolution (flat there) and far above float64's.
    content = make_map(np.zeros((3, 2)), [1000.0, 1000.5, 1001.0], refined=[1000.501, 1001.001])
    content.tree = replace(content.tree, flat_rtol=flat_rtol(torch.float64))
    path = write_map(tmp_path / "f.h5", content, config={}, source="x", tool_version="0")
    back = read_map(path)
    assert back.tree.flat_rtol == flat_rtol(torch.float64) and not back.tree.flat().any()
    assert basin_tree_of(back).flat_rtol == back.tree.flat_rtol  # the basins' trees judge alike
    code, out, _ = run(capsys, "tree", path)
    assert code == 0 and not re.search(r"\d flat", out)
    with h5py.File(path, "r+") as f:  # a map of an earlier version: every one was float32's
        del f["tree"].attrs["flat_rtol"]
    old = read_map(path)
    assert old.tree.flat_rtol == FLAT_RTOL and old.tree.flat().all()
    code, out, _ = run(capsys, "tree", path)
    assert code == 0 and "2 flat" in out


def test_the_energy_tie_under_flat_merges_is_kept_and_older_maps_read_without_one(tmp_path, make_map):
    # Barriers 1e-3 above the higher minimum, resolved by float64's precision, but within
    # a tie of 0.01: flat, in the file read back and in the basins' trees.
    content = make_map(np.zeros((3, 2)), [1000.0, 1000.5, 1001.0], refined=[1000.501, 1001.001])
    content.tree = replace(content.tree, flat_rtol=flat_rtol(torch.float64), flat_atol=0.01)
    path = write_map(tmp_path / "f.h5", content, config={}, source="x", tool_version="0")
    back = read_map(path)
    assert back.tree.flat_atol == 0.01 and back.tree.flat().all()
    assert basin_tree_of(back).flat_atol == 0.01
    with h5py.File(path, "r+") as f:  # a map of an earlier version: no tie recorded
        del f["tree"].attrs["flat_atol"]
    old = read_map(path)
    assert old.tree.flat_atol == 0.0 and not old.tree.flat().any()


def test_the_file_follows_the_schema_table(tmp_path, make_map):
    """As a third-party tool reads it, by name with plain h5py: every dataset the schema
    names is there, in its dtype and shape, carrying the schema's description and units."""
    path, _ = write_full(tmp_path, make_map)
    seen = {}

    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset):
                seen[name] = item

        f.visititems(visit)
        assert f.attrs["schema"] == SCHEMA and f.attrs["schema_version"] == 2
        for key, want in (("config", CONFIG), ("source", SOURCE), ("settings", SETTINGS), ("seconds", SECONDS)):
            assert json.loads(f.attrs[key]) == want, key
        assert isinstance(f.attrs["created"], str) and f.attrs["tool_version"] == "0.2.0"
        # Every dataset of the schema is exercised by the full map, and nothing else is written.
        names = {re.sub(r"^levels/\d+/", "levels/<k>/", name) for name in seen}
        assert names == {d.path for d in DATASETS}
        for name, ds in seen.items():
            entry = dataset(name)
            assert ds.dtype == np.dtype("float32" if entry.dtype == COORDINATES else entry.dtype), name
            if name.startswith("levels/") and name.endswith("minima/basin"):
                continue  # see test_level_datasets_carry_their_own_description
            assert ds.attrs["description"] == entry.description, name
            assert ds.attrs.get("units", "") == entry.units, name
        shapes = {
            "minima/x": (6, 1, 2, 2), "minima/energy": (6,), "minima/basin": (6,), "basins/representative": (4,),
            "barriers/pairs": (6, 2), "barriers/source": (6,), "tree/linkage": (5, 4), "tree/barrier": (5,),
            "tree/saddle": (5, 1, 2, 2), "tree/path": (5, 7, 1, 2, 2), "levels/0/basins/energy": (6,),
            "levels/2/basins/representative": (2,), "grid/energy": (3, 4), "funnel/occupancy": (2, 4),
            "funnel/chain_minimum": (2, 5), "diagnosis/nn_index": (6,),
        }
        for name, shape in shapes.items():
            assert f[name].shape == shape, name
        # group attributes the schema documents
        assert f["levels"].attrs["count"] == 3 and f["levels"].attrs["main"] == 1
        assert f["levels/2"].attrs["alpha"] == 2.0 and f["levels/2"].attrs["multiplier"] == 2.0
        assert f["minima"].attrs["count"] == 6 and f["minima"].attrs["temperature"] == 20.0
        assert f["basins"].attrs["count"] == 4 and f["barriers"].attrs["count"] == 6
        assert f["funnel/entropy"].attrs["score"] == 0.9
        assert f["diagnosis/nn_distance"].attrs["data_q99"] == 0.4
        np.testing.assert_array_equal(f["minima/basin"][()], f["levels/1/minima/basin"][()])


def test_level_datasets_carry_their_own_description(tmp_path, make_map):
    path, _ = write_full(tmp_path, make_map)
    with h5py.File(path, "r") as f:
        for k in range(3):
            name = f"levels/{k}/minima/basin"
            assert f[name].attrs["description"] == dataset(name).description == \
                "basin of each minimum at magnetization alpha_k"


def test_scipy_reads_the_stored_linkage_as_it_is(tmp_path, make_map):
    path, content = write_full(tmp_path, make_map)
    with h5py.File(path, "r") as f:
        z = f["tree/linkage"]  # the h5py dataset itself, no conversion
        assert hierarchy.is_valid_linkage(z, throw=True)
        leaves = hierarchy.dendrogram(z, no_plot=True)["leaves"]
        assert sorted(leaves) == list(range(6))
        offset = f["tree"].attrs["energy_offset"]
        assert offset == min(ENERGY) == -5.0
        heights = z[:, 2]
        assert (heights >= 0).all() and (np.diff(heights) >= 0).all()
        barrier, connected, pair = f["tree/barrier"][()], f["tree/connected"][()], f["tree/pair"][()]
        np.testing.assert_allclose(heights[connected] + offset, barrier[connected])
        # The merge with no path: not connected, barrier +inf, no pair, drawn above everything.
        assert connected.tolist() == [True, True, True, True, False]
        assert np.isposinf(barrier[-1]) and pair[-1] == -1
        assert heights[-1] + offset > barrier[connected].max()
        # Cutting with scipy at an absolute energy groups as the tree says.
        labels = hierarchy.fcluster(z, t=-2.0 - offset, criterion="distance")
        assert len(set(labels[:4])) == 1 and len(set(labels)) == 3
    np.testing.assert_array_equal(content.tree.cut(-2.0), [0, 0, 0, 0, 1, 2])


def test_a_large_map_writes_and_reads_back_equal(tmp_path):
    """10,000 minima and 100,000 pairs, built with numpy and minimax_tree directly."""
    rng = np.random.default_rng(7)
    n, e = 10_000, 100_000
    energy = np.sort(rng.normal(size=n))
    x = rng.normal(size=(n, 4)).astype(np.float32)
    chain = np.stack([np.arange(n - 1), np.arange(1, n)], axis=1)
    extra = np.sort(rng.integers(0, n, size=(e, 2)), axis=1)
    pairs = np.unique(np.concatenate([chain, extra[extra[:, 0] != extra[:, 1]]]), axis=0)
    pairs = pairs[np.sort(rng.choice(len(pairs), size=e, replace=False))]
    floor = np.maximum(energy[pairs[:, 0]], energy[pairs[:, 1]])
    estimate = floor + rng.exponential(size=e)
    estimate[rng.random(e) < 0.01] = np.inf
    refined = np.where(rng.random(e) < 0.3, estimate - 0.1 * rng.random(e), np.nan)
    table = PairTable(pairs, estimate, refined, np.where(rng.random(e) < 0.5, rng.random(e), np.nan),
                      rng.integers(1, 4, size=e).astype(np.uint8))
    # Basins: random labels, numbered by their lowest minimum (the energies are sorted).
    labels = rng.integers(0, 700, size=n)
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    main = Partition(1.0, rank[inverse], first[order], energy[first[order]], multiplier=2.0, attrs={"trials": 9})
    coarse = Partition(4.0, np.zeros(n, np.int64), [0], energy[:1], multiplier=8.0)
    tree = minimax_tree(energy, table.pairs, table.best(energy), refined=table.is_refined(energy))
    saddle = np.where(tree.refined[:, None], rng.normal(size=(n - 1, 4)), np.nan).astype(np.float32)
    content = MapContent(x, energy, rng.integers(0, 9, size=n), [main, coarse], 0, table, tree, tree_saddle=saddle)
    path = write_map(tmp_path / "big.h5", content, config={}, source="big", tool_version="0")
    back = read_map(path)
    assert back.n_minima == n and len(back.barriers) == e and back.n_basins == main.n_basins
    assert_same_core(back, content)
    assert back.levels[0].attrs == {"trials": 9}
    assert tree.refined.any() and tree.connected.all()
    with h5py.File(path, "r") as f:  # large datasets are chunked and compressed
        assert f["barriers/pairs"].compression == "gzip" and f["barriers/energy"].chunks is not None
        assert f["tree/linkage"].compression == "gzip" and f["basins/energy"].compression is None


# ------------------------------------------------------------------------- schema 1


def test_schema_1_maps_still_open(tmp_path):
    c = read_map(write_schema1_map(tmp_path / "old.h5"))
    assert c.schema_version == 1 and c.meta.schema_version == 1 and not c.over_minima
    assert c.meta.source["path"] == "old/rings.pt" and c.meta.config == {"temperature": 2.0, "alpha": 0.5}
    assert c.n_minima == 8 and c.n_basins == 4 and len(c.levels) == 1 and c.partition.alpha == 0.5
    np.testing.assert_array_equal(c.minima_basin, [0, 0, 1, 1, 2, 2, 3, 3])
    # The tree's leaves are the basins' representatives, its heights the stored absolute ones.
    t = c.tree
    np.testing.assert_array_equal(t.leaves, [0, 2, 4, 6])
    np.testing.assert_array_equal(t.energy, [-5.0, -3.0, -1.0, 0.2])
    np.testing.assert_allclose(t.heights, SCHEMA1_LINKAGE[:, 2])
    assert t.offset == -5.0 and hierarchy.is_valid_linkage(t.linkage)
    assert t.connected.tolist() == [True, True, False] and t.pair.tolist() == [0, 1, -1]
    assert t.barrier[:2].tolist() == [-2.2, 0.5] and math.isinf(t.barrier[2])
    assert t.refined.tolist() == [True, False, False]
    # Barrier pairs become pairs of minima (the basins' representatives).
    np.testing.assert_array_equal(c.barriers.pairs, [[0, 2], [2, 4], [0, 4], [4, 6]])
    np.testing.assert_array_equal(c.barriers.estimate, [-2.0, 0.5, 1.5, np.inf])
    assert c.attrs["minima"]["temperature"] == 2.0 and c.attrs["barriers"]["temperature"] == 0.2


def test_info_on_a_schema_1_map_says_so(tmp_path, capsys):
    path = write_schema1_map(tmp_path / "old.h5")
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    assert re.search(r"^note\s+a schema-1 map", out, re.MULTILINE), out
    assert "8 minima, 4 basins at the main level, 4 barrier pairs (1 refined)" in out
    assert "3 merges: 1 at refined barriers, 1 at estimates, 1 not connected" in out
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["schema_version"] == 1 and s["leaves_are"] == "basins" and s["n_merges_not_connected"] == 1


def test_rewrite_upgrades_a_schema_1_map(tmp_path, make_map):
    path = write_schema1_map(tmp_path / "old.h5")
    content = make_map(np.zeros((3, 2)), [-1.0, 0.0, 1.0])
    rewrite_map(path, content)
    back = read_map(path)
    assert back.schema_version == 2 and back.over_minima and back.tree.n_leaves == 3
    assert back.meta.created == "2025-01-01T00:00:00+00:00" and back.meta.source["path"] == "old/rings.pt"


# ----------------------------------------------------------------- the schema's docs


def test_dataset_listing_uses_the_schema_words(tmp_path, make_map, capsys):
    path, _ = write_full(tmp_path, make_map)
    with h5py.File(path, "r+") as f:
        f.create_group("extension").create_dataset("data", data=np.arange(3))
        f["extension/data"].attrs["description"] = "written by another tool"
    rows = {p: (shape, dtype, text) for p, shape, dtype, text in dataset_listing(path)}
    assert rows["/minima/x"] == ((6, 1, 2, 2), "float32", dataset("minima/x").description)
    assert rows["/tree/connected"][1] == "bool"
    assert rows["/levels/2/minima/basin"][2] == "basin of each minimum at magnetization alpha_k"
    assert rows["/extension/data"] == ((3,), "int64", "written by another tool")
    code, out, err = run(capsys, "info", path, "--datasets")
    assert code == 0, err
    assert re.search(r"/tree/linkage\s+float64 \[5, 4\]\s+scipy linkage over the minima", out)
    code, out, err = run(capsys, "info", path, "--json", "--datasets")
    assert code == 0, err
    listed = {d["path"]: d for d in json.loads(out)["datasets"]}
    assert listed["/barriers/pairs"]["shape"] == [6, 2] and listed["/barriers/pairs"]["dtype"] == "int64"


# ----------------------------------------------------------- atomic writes, errors


def test_a_failed_write_leaves_the_previous_map_and_no_temp_files(tmp_path, make_map, monkeypatch):
    path, _ = write_full(tmp_path, make_map)
    before = path.read_bytes()
    small = make_map(np.zeros((3, 2)), [-1.0, 0.0, 1.0])
    # An attribute that is not plain data fails half-way through the write.
    bad = replace(small, attrs={**small.attrs, "tree": {"bad": {"nested": 1}}})
    with pytest.raises(TypeError, match="attribute 'bad' of /tree"):
        write_map(path, bad, config={}, source="x", tool_version="0")
    assert path.read_bytes() == before
    # A run killed while writing.
    real = mapfile._write_content

    def killed(f, content):
        real(f, content)
        raise KeyboardInterrupt

    monkeypatch.setattr(mapfile, "_write_content", killed)
    with pytest.raises(KeyboardInterrupt):
        write_map(path, small, config={"run": 2}, source="x", tool_version="0")
    with pytest.raises(KeyboardInterrupt):
        write_map(tmp_path / "new.h5", small, config={}, source="x", tool_version="0")
    with pytest.raises(KeyboardInterrupt):
        rewrite_map(path, small)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert read_map(path).meta.config == CONFIG
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_inconsistent_content_is_refused_before_writing(tmp_path, make_map):
    def good():
        return make_map(np.zeros((4, 2)), [-2.0, -1.0, 0.0, 1.0], levels=[[0, 0, 1, 1]])

    cases = []
    c = good()
    c.minima_hits = np.ones(3)
    cases.append((c, "minima/hits has shape"))
    c = good()
    c.barriers = replace(c.barriers, pairs=np.array([[0, 1], [1, 2], [2, 4]]))
    cases.append((c, r"barriers/pairs holds indices outside \[0, 4\)"))
    c = good()
    c.levels[0].basin = np.array([0, 0, 1, 2])
    cases.append((c, "outside"))
    c = good()
    c.levels[0].representative = np.array([2, 0])
    cases.append((c, "names minima of other basins"))
    c = good()
    c.tree_saddle = np.zeros((3, 3), np.float32)
    cases.append((c, r"tree/saddle has shape \(3, 3\), expected \(3, 2\)"))
    c = good()
    c.main = 1
    cases.append((c, "main level 1 of 1 levels"))
    c = good()
    c.attrs["bogus"] = {"a": 1}
    cases.append((c, "unknown groups"))
    c = good()
    c.funnel = FunnelData(np.array([1.0]), np.ones((1, 3)), np.zeros(1), 0.0)
    cases.append((c, "funnel/occupancy has shape"))
    for content, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            write_map(tmp_path / "m.h5", content, config={}, source="x", tool_version="0")
    with pytest.raises(TypeError):
        write_map(tmp_path / "m.h5", good(), config={"f": object()}, source="x", tool_version="0")
    assert list(tmp_path.iterdir()) == []


def _edit(src: Path, dst: Path, fn) -> Path:
    dst.write_bytes(src.read_bytes())
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def _replace(name, data):
    def fn(f):
        attrs = dict(f[name].attrs)
        del f[name]
        f[name] = data
        f[name].attrs.update(attrs)

    return fn


def test_corrupt_and_invalid_files_give_one_line_landscape_errors(tmp_path, make_map):
    good, _ = write_full(tmp_path, make_map, "good.h5")

    def set_attr(key, value):
        def fn(f):
            f.attrs[key] = value
        return fn

    def set_group_attr(group, key, value):
        def fn(f):
            f[group].attrs[key] = value
        return fn

    def delete(name):
        def fn(f):
            del f[name]
        return fn

    bad_linkage = np.array(read_map(good).tree.linkage)
    bad_linkage[0, 2] = -1.0  # a negative height
    cases = {
        # shapes
        "hits": (_replace("minima/hits", np.ones(5, np.int64)), r"minima/hits has shape \(5,\), expected \(6,\)"),
        "linkage": (_replace("tree/linkage", np.zeros((4, 4))), r"tree/linkage has shape \(4, 4\), expected \(5, 4\)"),
        "bad_linkage": (_replace("tree/linkage", bad_linkage), "not a valid scipy linkage"),
        "level_energy": (_replace("levels/0/basins/energy", np.zeros(2)), r"levels/0/basins/energy has shape"),
        "saddle": (_replace("tree/saddle", np.zeros((5, 4), np.float32)), "tree/saddle has shape"),
        "occupancy": (_replace("funnel/occupancy", np.zeros((2, 3))), "funnel/occupancy has shape"),
        # indices
        "basin": (_replace("levels/2/minima/basin", np.array([0, 0, 0, 0, 1, 7])), "outside"),
        "pairs": (_replace("barriers/pairs", np.array([[0, 1], [1, 2], [0, 2], [2, 3], [3, 4], [4, 6]])),
                  r"barriers/pairs holds indices outside \[0, 6\)"),
        "tree_pair": (_replace("tree/pair", np.array([0, 3, 1, 9, -1])), "tree/pair holds rows outside"),
        "representative": (_replace("levels/2/basins/representative", np.array([0, 9])), "representative"),
        "main_basin": (_replace("minima/basin", np.array([0, 0, 1, 1, 3, 2])), "differs from the main level"),
        "main": (set_group_attr("levels", "main", 5), "main = 5"),
        # dtypes
        "float_hits": (_replace("minima/hits", np.ones(6)), "minima/hits has dtype float64, expected int64"),
        "text_energy": (_replace("minima/energy", np.array([b"a"] * 6)), "minima/energy has dtype"),
        "group": (lambda f: (f.__delitem__("tree/barrier"), f.create_group("tree/barrier")), "not a dataset"),
        # missing parts, broken root attributes
        "no_pair": (delete("tree/pair"), "missing dataset /tree/pair"),
        "no_created": (lambda f: f.attrs.__delitem__("created"), "missing root attribute created"),
        "no_offset": (lambda f: f["tree"].attrs.__delitem__("energy_offset"), "energy_offset must be finite"),
        "config": (set_attr("config", "{not json"), "not valid JSON"),
        "newer": (set_attr("schema_version", 3), "schema version 3.*up to 2.*upgrade"),
        "version": (set_attr("schema_version", "two"), "invalid schema_version"),
        "schema": (set_attr("schema", "someone-else/format"), "not an ebm-landscape map"),
    }
    for name, (fn, pattern) in cases.items():
        path = _edit(good, tmp_path / f"{name}.h5", fn)
        with pytest.raises(LandscapeError) as err:
            read_map(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message, (name, message)
        assert re.search(pattern, message), (name, message)
    # not HDF5, truncated, missing
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(LandscapeError, match="not a readable HDF5 file"):
        read_map(garbage)
    data = good.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 3])
    with pytest.raises(LandscapeError) as err:
        read_map(truncated)
    assert "\n" not in str(err.value)
    with pytest.raises(LandscapeError, match="no map file at .*missing.h5"):
        read_map(tmp_path / "missing.h5")
    with pytest.raises(LandscapeError, match=f"{tmp_path} is a folder, not a map file"):
        read_map(tmp_path)
    # Other readers of a map refuse the same way.
    with pytest.raises(LandscapeError, match="no map file"):
        dataset_listing(tmp_path / "missing.h5")
    with pytest.raises(LandscapeError, match="not an ebm-landscape map"):
        update_map(tmp_path / "schema.h5", funnel=None)
    with pytest.raises(LandscapeError, match="upgrade"):
        rewrite_map(tmp_path / "newer.h5", make_map(np.zeros((2, 2)), [0.0, 1.0]))


def test_basins_that_disagree_with_the_main_level_are_refused(tmp_path, make_map):
    good, _ = write_full(tmp_path, make_map, "good.h5")
    for name, data in (("basins/energy", np.zeros(7)), ("basins/representative", np.array([0, 2, 5, 4]))):
        path = _edit(good, tmp_path / f"{name.replace('/', '_')}.h5", _replace(name, data))
        with pytest.raises(LandscapeError, match="not a valid map.*basins"):
            read_map(path)


# ----------------------------------------------------------------- update, rewrite


def test_update_map_keeps_a_link_to_another_file_a_link_and_refuses_values_kept_outside(tmp_path, make_map):
    # (diagnose copied the whole file an external link in an unknown group pointed at into
    # the map; a dataset whose values sit in another file stayed linked to it)
    import h5py

    content = make_map(np.zeros((4, 2)), [-2.0, -1.0, 0.0, 1.0], levels=[[0, 0, 1, 2]], attrs=GROUP_ATTRS)
    path = write_map(tmp_path / "m.h5", content, config=CONFIG, source=SOURCE, tool_version="0.1.0")
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["secret"] = np.arange(1000)
    with h5py.File(path, "r+") as f:
        f.create_group("mine")["elsewhere"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/secret")
    funnel = FunnelData(np.array([3.0]), np.array([[1.0, 0.0, 0.0]]), np.array([0.0]), 0.5)
    update_map(path, funnel=funnel)
    with h5py.File(path, "r") as f:
        assert isinstance(f["mine"].get("elsewhere", getlink=True), h5py.ExternalLink)
    (tmp_path / "values.bin").write_bytes(np.arange(4, dtype=np.int64).tobytes())
    with h5py.File(path, "r+") as f:
        f.create_group("theirs").create_dataset("x", shape=(4,), dtype=np.int64,
                                                external=[(str(tmp_path / "values.bin"), 0, 32)])
    before = path.read_bytes()
    with pytest.raises(LandscapeError, match="keeps its values in another file"):
        update_map(path, funnel=funnel)
    assert path.read_bytes() == before


def test_update_map_adds_and_replaces_funnel_and_diagnosis_only(tmp_path, make_map):
    content = make_map(np.zeros((4, 2)), [-2.0, -1.0, 0.0, 1.0], levels=[[0, 0, 1, 2]], attrs=GROUP_ATTRS)
    path = write_map(tmp_path / "m.h5", content, config=CONFIG, source=SOURCE, tool_version="0.1.0")
    before = read_map(path)
    funnel = FunnelData(noise=np.array([0.5, 1.0, 2.0]),
                        occupancy=np.array([[0.4, 0.4, 0.2], [0.8, 0.2, 0.0], [1.0, 0.0, 0.0]]),
                        entropy=np.array([1.05, 0.5, 0.0]), score=1.0, sinks=np.array([[0, 1], [0, -1], [0, -1]]))
    update_map(path, funnel=funnel)
    after = read_map(path)
    assert_same_core(after, before)
    assert after.attrs == before.attrs
    assert after.meta.created == before.meta.created and after.meta.config == CONFIG
    assert "updated" in after.meta.extra
    np.testing.assert_array_equal(after.funnel.occupancy, funnel.occupancy)
    np.testing.assert_array_equal(after.funnel.sinks, funnel.sinks)
    assert after.diagnosis is None
    # Replacing a large funnel by an equal one does not grow the file (no dead space).
    big = FunnelData(np.linspace(0, 1, 5000), np.full((5000, 3), 1 / 3), np.zeros(5000), 0.0)
    update_map(path, funnel=big)
    size = path.stat().st_size
    update_map(path, funnel=big)
    assert path.stat().st_size <= size + 1024
    diagnosis = DiagnosisData(np.array([False, True, False, False]), np.ones(4), bar={"data_q99": 1.0},
                              reasons=np.array([0, 1, 0, 0], np.uint8))
    update_map(path, funnel=FunnelData(np.array([3.0]), np.array([[1.0, 0.0, 0.0]]), np.array([0.0]), 0.5),
               diagnosis=diagnosis)
    again = read_map(path)
    np.testing.assert_array_equal(again.funnel.noise, [3.0])
    assert again.funnel.sinks is None  # replaced as a whole
    assert again.diagnosis.bar == {"data_q99": 1.0} and again.diagnosis.reasons.tolist() == [0, 1, 0, 0]
    assert path.stat().st_size < size - 50_000
    assert_same_core(again, before)
    # Data of the wrong shape is refused and the map left as it was.
    snapshot = path.read_bytes()
    with pytest.raises(ValueError, match="funnel/occupancy"):
        update_map(path, funnel=FunnelData(np.array([1.0]), np.ones((1, 4)), np.zeros(1), 0.0))
    with pytest.raises(ValueError, match="diagnosis/spurious"):
        update_map(path, diagnosis=DiagnosisData(np.zeros(5, bool), np.ones(5)))
    assert path.read_bytes() == snapshot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_update_and_rewrite_keep_groups_they_do_not_know(tmp_path, make_map):
    path, _ = write_full(tmp_path, make_map)
    with h5py.File(path, "r+") as f:
        f.create_group("extension").create_dataset("data", data=np.arange(3))
        f["extension"].attrs["note"] = "from another tool"
    update_map(path, diagnosis=DiagnosisData(np.zeros(6, bool), np.ones(6), bar={"data_q99": 1.0}))
    # A rewrite replaces every part the schema names (a funnel probe that added minima).
    smaller = make_map(np.ones((3, 1, 2, 2)), [-1.0, 0.0, 1.0], levels=[[0, 1, 2], [0, 0, 1]], main=1)
    rewrite_map(path, smaller)
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["extension/data"][()], np.arange(3))
        assert f["extension"].attrs["note"] == "from another tool"
        assert "grid" not in f and "funnel" not in f and "diagnosis" not in f and "levels/2" not in f
    back = read_map(path)
    assert_same_core(back, smaller)
    assert back.meta.config == CONFIG and back.meta.source == SOURCE and "updated" in back.meta.extra
    assert back.meta.extra["settings"] == SETTINGS  # root attributes kept
    with pytest.raises(ValueError, match="minima/hits"):
        rewrite_map(path, replace(smaller, minima_hits=np.ones(2)))
    assert_same_core(read_map(path), smaller)


def test_a_map_read_changed_and_written_again_keeps_its_tree(tmp_path, make_map):
    path = write_map(tmp_path / "m.h5", make_map(np.zeros((3, 2)), [-3.0, -2.0, -1.0]), config={}, source="x",
                     tool_version="0")
    old = read_map(path)
    # As a funnel probe does: a new minimum, lower than all, appended; the content's
    # group attrs carried over from the map read.
    energy = np.array([-3.0, -2.0, -1.0, -5.0])
    new = make_map(np.zeros((4, 2)), energy, [(0, 1), (1, 2), (0, 3)], [-1.0, 0.0, 1.0])
    new = replace(new, attrs=old.attrs)
    assert new.tree.offset == -5.0
    rewrite_map(path, new)
    back = read_map(path)
    np.testing.assert_allclose(back.tree.heights, new.tree.heights)
    assert back.tree.offset == -5.0


# ------------------------------------------------------------------------- progress


def test_progress_round_trip(tmp_path):
    map_path = tmp_path / "rings.h5"
    assert load_progress(map_path) is None
    state = {
        "minima": np.arange(12, dtype=np.float32).reshape(3, 4),
        "level0/basin": np.array([0, 1, 1]),
        "done": torch.tensor([True, False]),
        "step": 40,
        "alpha": 0.5,
        "pending": [[0, 1], [2, 3]],
        "config_hash": "abc123",
        "count": np.int64(7),
    }
    out = save_progress(map_path, state)
    assert out == progress_path(map_path) == tmp_path / "rings.h5.partial"
    back = load_progress(map_path)
    assert set(back) == set(state)
    np.testing.assert_array_equal(back["minima"], state["minima"])
    assert back["minima"].dtype == np.float32
    np.testing.assert_array_equal(back["level0/basin"], [0, 1, 1])
    np.testing.assert_array_equal(back["done"], [True, False])
    assert back["step"] == 40 and back["alpha"] == 0.5 and back["pending"] == [[0, 1], [2, 3]]
    assert back["config_hash"] == "abc123" and back["count"] == 7
    # A later save replaces the earlier one completely.
    save_progress(map_path, {"step": 41})
    assert load_progress(map_path) == {"step": 41}
    with pytest.raises(TypeError):
        save_progress(map_path, {"bad": object()})
    with pytest.raises(TypeError, match="unsupported dtype"):
        save_progress(map_path, {"bad": np.array(["a", "b"])})
    assert load_progress(map_path) == {"step": 41}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rings.h5.partial"]
    # Other work on the map keeps its own progress.
    assert progress_path(map_path, "funnel") == tmp_path / "rings.h5.funnel.partial"
    save_progress(map_path, {"probe": 1}, kind="funnel")
    assert load_progress(map_path, "funnel") == {"probe": 1} and load_progress(map_path) == {"step": 41}
    # Progress an earlier version saved is not continued under this version's rules (a map
    # resumed across the change of attraction-diffusion's arrival mixed the two).
    with h5py.File(progress_path(map_path), "r+") as f:
        f.attrs["schema_version"] = 2
    with pytest.raises(LandscapeError, match=r"saved by an earlier version of ebm-landscape \(progress version 2, "
                                             r"this one continues 3\).*start again \(--force; from Python: "
                                             r"clear_progress\('.*rings\.h5'\)\)"):
        load_progress(map_path)
    progress_path(map_path).write_bytes(b"garbage")
    with pytest.raises(LandscapeError, match="delete it"):
        load_progress(map_path)
    clear_progress(map_path)
    assert load_progress(map_path) is None
    clear_progress(map_path)  # nothing to clear: no error
    # An HDF5 file of someone else's at that name is never removed.
    with h5py.File(progress_path(map_path), "w") as f:
        f.attrs["schema"] = "ebm-landscape/map"
    clear_progress(map_path)
    assert progress_path(map_path).exists()


def test_resume_progress_continues_only_the_same_run(tmp_path):
    map_path = tmp_path / "rings.h5"
    assert resume_progress(map_path, "f1", resume=False) == {"fingerprint": "f1"}
    assert resume_progress(None, "f1", resume=True) == {"fingerprint": "f1"}
    save_progress(map_path, {"fingerprint": "f1", "step": 3})
    with pytest.raises(LandscapeError, match=r"pass --resume \(resume=True\) to continue it, or --force \(it deletes "
                                             r"rings\.h5\.partial; from Python: clear_progress\('.*rings\.h5'\)\)"):
        resume_progress(map_path, "f1", resume=False)
    with pytest.raises(ProgressMismatch, match="other settings"):  # (a LandscapeError the demo tells apart)
        resume_progress(map_path, "f2", resume=True)
    assert resume_progress(map_path, "f1", resume=True) == {"fingerprint": "f1", "step": 3}


def test_a_map_another_program_holds_open_to_write_is_said_to_be(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "held.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "ebm-landscape/map"
    holder = subprocess.Popen([sys.executable, "-c", "import h5py, sys, time\n"
                               f"f = h5py.File({str(path)!r}, 'a'); print('open', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(LandscapeError, match=r"held.h5 is open for writing in another program \(HDF5 locks it\): "
                                                 r"close it there, then run this again$"):
            read_map(path)
    finally:
        holder.kill()
        holder.wait()


def test_info_json_carries_the_funnel_and_diagnosis_its_text_shows(tmp_path, make_map, capsys):
    path, _ = write_full(tmp_path, make_map)
    code, out, err = run(capsys, "info", path)
    assert code == 0 and "funnel score 0.90" in out and "2 of 6 minima spurious" in out, out + err
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    s = json.loads(out)  # (it left both out, and the flat merges' count)
    assert s["funnel"]["score"] == 0.9 and s["funnel"]["noise"] == [0.0, 1.0]
    assert s["funnel"]["effective_basins"] == pytest.approx([np.exp(1.28), 1.0])
    assert s["diagnosis"] == {"spurious": 2, "minima": 6, "off_data": 2, "states": 2}
    assert isinstance(s["n_merges_flat"], int) and "alpha_unit_rule" in s
