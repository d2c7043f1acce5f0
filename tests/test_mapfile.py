"""The HDF5 map: schema, round trips, atomic writes and clear errors."""

import json
import math

import h5py
import numpy as np
import pytest
import torch

from landscape import LandscapeError, mapfile
from landscape.mapfile import (
    DiagnosisData,
    FunnelData,
    LevelData,
    GridData,
    MapContent,
    load_progress,
    progress_path,
    read_map,
    save_progress,
    update_map,
    write_map,
)
from landscape.tree import minimax_tree

CONFIG = {"temperature": 20.0, "alpha": [0.5, 1.0], "steps": 5000, "seed": 3}
SOURCE = {"checkpoint": "rings.pt", "sha256": "ab" * 32}


def make_content(with_optional: bool = False) -> MapContent:
    rng = np.random.default_rng(0)
    n = 6
    basin_energy = np.array([-5.0, -3.0, -1.0])
    pairs = np.array([[1, 0], [2, 1], [2, 0]])
    barrier = np.array([-2.0, 0.5, np.inf])
    tree = minimax_tree(basin_energy, pairs, barrier)
    content = MapContent(
        minima_x=rng.normal(size=(n, 1, 2, 2)).astype(np.float32),
        minima_energy=np.array([-5.0, -4.5, -3.0, -2.9, -1.0, -0.5]),
        minima_hits=np.array([10, 3, 7, 1, 2, 2]),
        minima_basin=np.array([0, 0, 1, 1, 2, 2]),
        basin_representative=np.array([0, 2, 4]),
        basin_energy=basin_energy,
        barrier_pairs=pairs,
        barrier_energy=barrier,
        linkage=tree.linkage,
        attrs={"minima": {"temperature": 20.0}, "barriers": {"alpha": 0.5, "temperature": 20.0}},
    )
    if with_optional:
        content.barrier_refined = np.array([-2.4, np.nan, np.nan])
        paths = np.full((3, 5, 1, 2, 2), np.nan, dtype=np.float32)
        paths[0] = rng.normal(size=(5, 1, 2, 2))
        content.barrier_paths = paths
        content.grid = GridData(x=np.linspace(-1, 1, 4), y=np.linspace(0, 1, 3), energy=np.arange(12.0).reshape(3, 4))
        content.funnel = FunnelData(
            noise=np.array([0.1, 1.0]),
            occupancy=np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]]),
            entropy=np.array([1.03, 0.0]),
            score=0.9,
            attrs={"chains": 100},
        )
        content.diagnosis = DiagnosisData(
            spurious=np.array([False, True, False, False, False, True]),
            nn_distance=np.linspace(0.1, 0.6, n),
            bar={"data_q50": 0.2, "data_q99": 0.4},
            attrs={"rule": "nn > q99 and energy <= data median"},
        )
        content.levels = [
            LevelData(
                alpha=alpha,
                minima_basin=basin,
                basin_representative=rep,
                basin_energy=basin_energy[: len(rep)],
                barrier_pairs=np.array([[1, 0]]) if len(rep) > 1 else np.zeros((0, 2)),
                barrier_energy=np.array([-2.0]) if len(rep) > 1 else np.zeros(0),
                linkage=np.array([[0, 1, -2.0, 2]]) if len(rep) > 1 else np.zeros((0, 4)),
                attrs={"trials": 12},
            )
            for alpha, basin, rep in [
                (0.5, np.array([0, 0, 1, 1, 1, 1]), np.array([0, 2])),
                (2.0, np.zeros(n, dtype=np.int64), np.array([0])),
            ]
        ]
    return content


def assert_same(a: MapContent, b: MapContent) -> None:
    for name in (
        "minima_x",
        "minima_energy",
        "minima_hits",
        "minima_basin",
        "basin_representative",
        "basin_energy",
        "barrier_pairs",
        "barrier_energy",
        "linkage",
    ):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def test_round_trip_of_all_fields_and_attrs(tmp_path):
    content = make_content(with_optional=True)
    path = write_map(tmp_path / "m.h5", content, config=CONFIG, source=SOURCE, tool_version="0.1.0")
    back = read_map(path)
    assert_same(back, content)
    np.testing.assert_array_equal(back.barrier_refined, content.barrier_refined)
    np.testing.assert_array_equal(back.barrier_paths, content.barrier_paths)
    np.testing.assert_array_equal(back.grid.energy, content.grid.energy)
    np.testing.assert_array_equal(back.grid.x, content.grid.x)
    assert back.funnel.score == 0.9 and back.funnel.attrs == {"chains": 100}
    np.testing.assert_array_equal(back.funnel.occupancy, content.funnel.occupancy)
    np.testing.assert_array_equal(back.funnel.entropy, content.funnel.entropy)
    np.testing.assert_array_equal(back.funnel.noise, content.funnel.noise)
    np.testing.assert_array_equal(back.diagnosis.spurious, content.diagnosis.spurious)
    np.testing.assert_array_equal(back.diagnosis.nn_distance, content.diagnosis.nn_distance)
    assert back.diagnosis.bar == {"data_q50": 0.2, "data_q99": 0.4}
    assert back.diagnosis.attrs == content.diagnosis.attrs
    assert [lv.alpha for lv in back.levels] == [0.5, 2.0]
    for got, want in zip(back.levels, content.levels):
        np.testing.assert_array_equal(got.minima_basin, want.minima_basin)
        np.testing.assert_array_equal(got.basin_representative, want.basin_representative)
        np.testing.assert_array_equal(got.linkage, want.linkage)
        assert got.barrier_pairs.shape == (len(want.barrier_energy), 2)
        assert got.attrs == {"trials": 12}
    assert back.attrs["minima"] == {"temperature": 20.0, "count": 6}
    assert back.attrs["barriers"] == {"alpha": 0.5, "temperature": 20.0, "count": 3}
    assert back.attrs["basins"] == {"count": 3}
    meta = back.meta
    assert meta.schema_version == 1 and meta.tool_version == "0.1.0"
    assert meta.config == CONFIG and meta.source == SOURCE
    assert meta.created.endswith("+00:00")
    # Without optional parts they read back as None; a plain string source round-trips.
    plain = write_map(tmp_path / "p.h5", make_content(), config={}, source="pot.py:mb", tool_version="0.1.0")
    back = read_map(plain)
    assert back.barrier_refined is None and back.barrier_paths is None and back.grid is None and back.funnel is None and back.diagnosis is None and back.levels is None
    assert back.meta.source == "pot.py:mb"


def test_plain_h5py_reads_the_design_names_dtypes_and_shapes(tmp_path):
    # As a third-party tool would read it: by name, no ebm-landscape code.
    path = write_map(tmp_path / "m.h5", make_content(True), config=CONFIG, source=SOURCE, tool_version="0.1.0")
    with h5py.File(path, "r") as f:
        assert f.attrs["schema"] == "ebm-landscape/map"
        assert f.attrs["schema_version"] == 1
        assert json.loads(f.attrs["config"]) == CONFIG
        assert json.loads(f.attrs["source"]) == SOURCE
        assert isinstance(f.attrs["created"], str) and isinstance(f.attrs["tool_version"], str)
        expected = {
            "minima/x": (np.float32, (6, 1, 2, 2)),
            "minima/energy": (np.float64, (6,)),
            "minima/hits": (np.int64, (6,)),
            "minima/basin": (np.int64, (6,)),
            "basins/representative": (np.int64, (3,)),
            "basins/energy": (np.float64, (3,)),
            "barriers/pairs": (np.int64, (3, 2)),
            "barriers/energy": (np.float64, (3,)),
            "barriers/refined": (np.float64, (3,)),
            "tree/linkage": (np.float64, (2, 4)),
            "funnel/noise": (np.float64, (2,)),
            "funnel/occupancy": (np.float64, (2, 3)),
            "funnel/entropy": (np.float64, (2,)),
            "diagnosis/spurious": (np.bool_, (6,)),
            "diagnosis/nn_distance": (np.float64, (6,)),
            "levels/0/basins/energy": (np.float64, (2,)),
            "levels/1/tree/linkage": (np.float64, (0, 4)),
        }
        for name, (dtype, shape) in expected.items():
            assert f[name].dtype == np.dtype(dtype), name
            assert f[name].shape == shape, name
        assert math.isinf(f["barriers/energy"][2])
        assert f["funnel/entropy"].attrs["score"] == 0.9
        assert f["diagnosis/nn_distance"].attrs["data_q99"] == 0.4
        assert f["minima"].attrs["count"] == 6 and f["minima"].attrs["temperature"] == 20.0
        assert f["barriers"].attrs["alpha"] == 0.5
        assert f["levels/1"].attrs["alpha"] == 2.0


def test_a_crash_during_write_leaves_the_previous_map_and_no_temp_files(tmp_path, monkeypatch):
    path = tmp_path / "m.h5"
    write_map(path, make_content(), config={"run": 1}, source=SOURCE, tool_version="0.1.0")
    before = path.read_bytes()

    def killed(f, content):
        f.create_group("funnel")  # half-way through the optional groups
        raise KeyboardInterrupt

    monkeypatch.setattr(mapfile, "_write_optional", killed)
    with pytest.raises(KeyboardInterrupt):
        write_map(path, make_content(True), config={"run": 2}, source=SOURCE, tool_version="0.1.0")
    assert path.read_bytes() == before
    assert read_map(path).meta.config == {"run": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]
    # And no map at all where there was none before.
    with pytest.raises(KeyboardInterrupt):
        write_map(tmp_path / "new.h5", make_content(), config={}, source=SOURCE, tool_version="0.1.0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_inconsistent_content_is_refused_before_writing(tmp_path):
    content = make_content()
    content.minima_hits = np.ones(5, dtype=np.int64)
    with pytest.raises(ValueError, match="minima/hits"):
        write_map(tmp_path / "m.h5", content, config={}, source="x", tool_version="0")
    content = make_content()
    content.barrier_pairs = np.array([[0, 3], [1, 0], [2, 1]])
    with pytest.raises(ValueError, match="outside"):
        write_map(tmp_path / "m.h5", content, config={}, source="x", tool_version="0")
    assert list(tmp_path.iterdir()) == []


def test_wrong_schema_newer_version_corrupt_and_missing_files_raise_landscape_error(tmp_path):
    good = write_map(tmp_path / "m.h5", make_content(), config={}, source="x", tool_version="0")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.attrs["schema"] = "someone-else/format"
    with pytest.raises(LandscapeError, match="not an ebm-landscape map"):
        read_map(other)

    newer = tmp_path / "newer.h5"
    newer.write_bytes(good.read_bytes())
    with h5py.File(newer, "r+") as f:
        f.attrs["schema_version"] = 2
    with pytest.raises(LandscapeError, match="schema version 2.*upgrade") as err:
        read_map(newer)
    assert "\n" not in str(err.value)

    corrupt = tmp_path / "corrupt.h5"
    data = good.read_bytes()
    corrupt.write_bytes(data[: len(data) // 3])
    with pytest.raises(LandscapeError) as err:
        read_map(corrupt)
    assert "\n" not in str(err.value)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not an hdf5 file at all" * 10)
    with pytest.raises(LandscapeError, match="not a readable HDF5 file"):
        read_map(garbage)
    with pytest.raises(LandscapeError, match="no map file"):
        read_map(tmp_path / "missing.h5")
    with pytest.raises(LandscapeError, match="not an ebm-landscape map"):
        update_map(other, barrier_refined=np.zeros(3))

    broken = tmp_path / "broken.h5"
    broken.write_bytes(data)
    with h5py.File(broken, "r+") as f:
        del f["basins/energy"]
        f["basins/energy"] = np.zeros(7)  # B no longer matches /basins/representative
    with pytest.raises(LandscapeError, match="not a valid map.*representative"):
        read_map(broken)


def test_update_map_adds_funnel_without_touching_the_rest(tmp_path):
    path = write_map(tmp_path / "m.h5", make_content(), config=CONFIG, source=SOURCE, tool_version="0.1.0")
    before = read_map(path)
    funnel = FunnelData(
        noise=np.array([0.5, 1.0, 2.0]),
        occupancy=np.array([[0.4, 0.4, 0.2], [0.8, 0.2, 0.0], [1.0, 0.0, 0.0]]),
        entropy=np.array([1.05, 0.5, 0.0]),
        score=1.0,
    )
    update_map(path, funnel=funnel)
    after = read_map(path)
    assert_same(after, before)
    assert after.attrs == before.attrs
    assert after.meta.created == before.meta.created and after.meta.config == CONFIG
    assert "updated" in after.meta.extra
    np.testing.assert_array_equal(after.funnel.occupancy, funnel.occupancy)
    assert after.diagnosis is None
    # Replacing the funnel and adding refined barriers: the group is replaced, not
    # duplicated, and replacing a large funnel by an equal one does not grow the file
    # (the old data is not left behind as dead space).
    big = FunnelData(np.linspace(0, 1, 5000), np.full((5000, 3), 1 / 3), np.zeros(5000), 0.0)
    update_map(path, funnel=big)
    size = path.stat().st_size
    update_map(path, funnel=big)
    assert path.stat().st_size <= size + 1024
    update_map(path, funnel=FunnelData(np.array([3.0]), np.array([[1.0, 0.0, 0.0]]), np.array([0.0]), 0.5),
               barrier_refined=np.array([-2.5, 0.2, np.nan]))
    again = read_map(path)
    np.testing.assert_array_equal(again.funnel.noise, [3.0])
    np.testing.assert_array_equal(again.barrier_refined, [-2.5, 0.2, np.nan])
    assert path.stat().st_size < size - 100_000
    assert_same(again, before)
    # A funnel with the wrong number of basins is refused and the map left as it was.
    snapshot = path.read_bytes()
    with pytest.raises(ValueError, match="occupancy"):
        update_map(path, funnel=FunnelData(np.array([1.0]), np.ones((1, 4)), np.zeros(1), 0.0))
    assert path.read_bytes() == snapshot
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.h5"]


def test_update_map_keeps_groups_it_does_not_know(tmp_path):
    path = write_map(tmp_path / "m.h5", make_content(), config={}, source="x", tool_version="0")
    with h5py.File(path, "r+") as f:
        f.create_group("extension").create_dataset("data", data=np.arange(3))
        f["extension"].attrs["note"] = "from another tool"
    update_map(path, diagnosis=DiagnosisData(np.zeros(6, bool), np.ones(6), bar={"data_q99": 1.0}))
    with h5py.File(path, "r") as f:
        np.testing.assert_array_equal(f["extension/data"][()], np.arange(3))
        assert f["extension"].attrs["note"] == "from another tool"
        assert f["diagnosis/nn_distance"].attrs["data_q99"] == 1.0


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
    assert out == progress_path(map_path) == tmp_path / "rings.partial.h5"
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
    assert load_progress(map_path) == {"step": 41}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rings.partial.h5"]
    progress_path(map_path).write_bytes(b"garbage")
    with pytest.raises(LandscapeError, match="delete it"):
        load_progress(map_path)
    mapfile.clear_progress(map_path)
    assert load_progress(map_path) is None
