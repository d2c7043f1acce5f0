"""`landscape tree` (and `landscape info` on maps) end to end on small hand-made maps: the
tree over minima and over basins as text and JSON, levels, folding, refined saddles,
pictures, schema-1 maps and one-line errors."""

from __future__ import annotations

import json
import math
import re

import h5py
import numpy as np
import pytest

from landscape.io.views import basin_tree_of, partition_of, tree_merges
from landscape.io.mapfile import FunnelData, read_map
from conftest import assert_one_line_error, run
from conftest import (
    BASIN_MERGES,
    IMG_ENERGY,
    IMG_LEVELS,
    MINIMA_MERGES,
    assert_png,
    image_content,
    save,
    vector_content,
    wells_content,
)
from conftest import write_schema1_map


def tree(capsys, *args):
    return run(capsys, "tree", *args)


def merge_rows(out: str) -> list[list[str]]:
    """The rows of the merge table: joins, via minima, barrier, relative, from, estimate."""
    rows = []
    for line in out.splitlines():
        if re.match(r"\s+\d+ \+ \d+\s", line):
            rows.append(re.split(r"\s{2,}", line.strip()))
    return rows


@pytest.fixture
def image_map(tmp_path, make_map):
    return save(tmp_path, image_content(make_map, diagnosis=True), "sevens.h5")


@pytest.fixture
def wells_map(tmp_path, make_map):
    return save(tmp_path, wells_content(make_map), "wells.h5")


@pytest.fixture
def split_map(tmp_path, make_map):
    """Six vectors in three basins; no path found from minima 4, 5 to the others."""
    return save(tmp_path, vector_content(make_map, 4, connected=False), "split.h5")


# ---------------------------------------------------------------------------- text


def test_text_shows_every_minimum_as_a_leaf_with_its_basin(image_map, capsys):
    code, out, err = tree(capsys, image_map)
    assert code == 0, err
    assert "source    checkpoint runs/sevens.pt (sha256 cdcdcdcdcdcd), regime convergent" in out
    assert "settings  exploration T 20, attraction-diffusion T 0.5, alpha unit 0.2, minima of shape (1, 8, 8)" in out
    assert "levels    [0] alpha 0.3 units (= 0.3): 10 basins\n          [1] alpha 1 units (= 1): 4 basins (main) <- shown\n" \
           in out
    assert "          [3] alpha 10 units (= 10): 1 basin\n" in out
    assert "diagnosis 1 of 10 minima spurious" in out
    assert "showing   the tree over minima, basins of the main level (alpha 1 units)" in out
    assert "barrier tree: 10 minima, energies -3 .. -0.9; 1 of 9 merges at refined barriers" in out
    # Every minimum is a leaf, with its basin and hits; its escape height is on the merge
    # through which it joins a lower minimum ("+x above" it).
    for i, (e, b) in enumerate(zip(IMG_ENERGY, IMG_LEVELS[1])):
        assert re.search(rf"minimum {i}  E={e:g}  basin {b}  hits {i + 1}\b", out), i
    assert "minimum 0  E=-3  basin 0  hits 1  lowest" in out
    assert "minimum 5  E=-1.5  basin 2  hits 6\n" in out and "+0.45 above minimum 5" in out
    assert "minimum 8  E=-1  basin 3  hits 9  spurious" in out and "+1 above minimum 8" in out
    assert "escape" not in out.split("barrier tree:")[1].split("hits: chains")[0]
    # Merges: absolute barrier, the height above each side's lowest minimum, "refined".
    assert "merge at -1.05 refined  (+0.95 above minimum 3, +0.45 above minimum 5)" in out
    assert "merge at -0.5  (+2.5 above minimum 0, +1.5 above minimum 3)" in out
    assert "merge at 0  (+3 above minimum 0, +1 above minimum 8)" in out
    # The merge table, lowest first.
    rows = merge_rows(out)
    got = [(*map(int, r[0].split(" + ")), float(r[2]), float(r[3])) for r in rows]
    assert got == [pytest.approx(m) for m in MINIMA_MERGES]


def test_refined_merges_say_saddle_and_a_saddle_far_above_its_estimate_is_reported(image_map, capsys):
    code, out, err = tree(capsys, image_map)
    assert code == 0, err
    assert ("counts    10 minima, 4 basins at the main level, 10 barrier pairs (2 refined, 1 of them above their "
            "estimate: the tree keeps the estimate)") in out
    assert "tree      9 merges: 1 at refined barriers, 8 at estimates" in out
    rows = {r[0]: r for r in merge_rows(out)}
    assert rows["3 + 5"][1:] == ["3-5", "-1.05", "+0.45", "refined", "-1"]  # (the map does not say: saddle point?)
    # Minima 0-3: the string found a saddle at 2, far above the estimate -0.5; the tree
    # keeps the estimate.
    assert rows["0 + 3"][1:] == ["0-3", "-0.5", "+1.5", "estimate; saddle above: 2", "-0.5"]
    assert rows["0 + 1"][4] == "estimate"
    code, out, err = tree(capsys, image_map, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["n_refined"] == 2 and s["n_refined_above_estimate"] == 1 and s["n_merges_refined"] == 1
    by_pair = {tuple(m["pair"]): m for m in s["merges"]}
    m = by_pair[(0, 3)]
    assert m["saddle_above_estimate"] and not m["refined"] and m["height"] == m["estimate"] == -0.5
    assert m["saddle"] == 2.0
    m = by_pair[(3, 5)]
    assert m["refined"] and not m["saddle_above_estimate"] and m["height"] == m["saddle"] == -1.05
    assert m["estimate"] == -1.0


def test_text_of_a_2d_map_with_refined_saddles(wells_map, capsys):
    code, out, err = tree(capsys, wells_map)
    assert code == 0, err
    assert "source    function wells\n" in out and "exploration T 0.5" in out
    content = read_map(wells_map)
    merges = tree_merges(content)
    rows = {r[0]: r for r in merge_rows(out)}
    assert len(rows) == len(merges) == 8
    for m in merges:
        cells = rows[f"{m.lower} + {m.higher}"]
        assert cells[1] == f"{m.pair[0]}-{m.pair[1]}"
        assert float(cells[2]) == pytest.approx(m.height, rel=1e-5)
        # relative: the barrier above the higher side's lowest minimum
        if content.tree.flat()[m.row]:  # (no barrier the energy's precision resolves)
            assert cells[3] == "flat" and abs(m.height - content.minima_energy[m.higher]) < 1e-4
        else:
            assert float(cells[3]) == pytest.approx(m.height - content.minima_energy[m.higher], rel=1e-4, abs=1e-5)
        assert float(cells[5]) == pytest.approx(content.barriers.estimate[m.barrier_row], rel=1e-5)
        assert cells[4] == ("refined" if m.refined else "estimate")
        if m.refined:  # the saddle lies below the overshooting estimate
            assert float(cells[2]) < float(cells[5])
    assert sum(m.refined for m in merges) == 2


def test_basins_option_shows_the_tree_over_basins(image_map, capsys):
    code, out, err = tree(capsys, image_map, "--basins")
    assert code == 0, err
    assert "showing   the tree over the basins of the main level (alpha 1 units)" in out
    assert "barrier tree: 4 basins, energies -3 .. -1; 1 of 3 merges at refined barriers" in out
    assert re.search(r"basin 0  E=-3  size 3 .*hits 6  lowest", out)
    assert re.search(r"basin 1  E=-2  size 2 .*hits 9", out) and "+1.5 above basin 1" in out
    assert re.search(r"basin 3  E=-1  size 2 .*hits 19  spurious", out) and "+1 above basin 3" in out
    assert "minimum 0  E=" not in out
    assert "merge at -1.05 refined  (+0.95 above basin 1, +0.45 above basin 2)" in out
    rows = merge_rows(out)
    assert [(*map(int, r[0].split(" + ")), float(r[2]), float(r[3])) for r in rows] == \
           [pytest.approx(m) for m in BASIN_MERGES]
    assert [r[1] for r in rows] == ["3-5", "0-3", "5-8"]
    code, out, err = tree(capsys, image_map, "--basins", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["leaves_are"] == "basins" and s["n_basins"] == 4 and len(s["leaves"]) == 4
    assert [leaf["minimum"] for leaf in s["leaves"]] == [0, 3, 5, 8]
    assert [leaf["minima"] for leaf in s["leaves"]] == [3, 2, 3, 2]
    assert [leaf["hits"] for leaf in s["leaves"]] == [6, 9, 21, 19]
    assert [leaf["escape"] for leaf in s["leaves"]] == pytest.approx([None, 1.5, 0.45, 1.0])
    assert [leaf["spurious"] for leaf in s["leaves"]] == [False, False, False, True]


def test_level_option_picks_a_level(image_map, capsys):
    code, out, err = tree(capsys, image_map, "--level", "2")
    assert code == 0, err
    assert "showing   the tree over minima, basins of level 2 (alpha 3 units)" in out
    assert "[2] alpha 3 units (= 3): 2 basins <- shown" in out and "(main) <- shown" not in out
    assert "minimum 7  E=-1.3  basin 0  hits 8" in out and "minimum 9  E=-0.9  basin 1  hits 10" in out
    code, out, err = tree(capsys, image_map, "--level", "2", "--basins", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["level"] == 2 and s["main_level"] == 1 and s["alpha"] == 3.0 and s["n_basins"] == 2
    assert [leaf["hits"] for leaf in s["leaves"]] == [36, 19] and len(s["merges"]) == 1
    assert s["merges"][0]["pair"] == [5, 8] and s["merges"][0]["height"] == 0.0
    code, out, err = tree(capsys, image_map, "--level", "3", "--basins")
    assert code == 0, err
    assert "barrier tree: 1 basin, energies -3 .. -3" in out and "merges, lowest first" not in out
    # The finest level: every minimum its own basin.
    code, out, err = tree(capsys, image_map, "--level", "0", "--json")
    assert code == 0, err
    assert [leaf["basin"] for leaf in json.loads(out)["leaves"]] == list(range(10))


def test_json_has_leaves_and_merges_with_heights(image_map, capsys):
    code, out, err = tree(capsys, image_map, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["schema_version"] == 2 and s["leaves_are"] == "minima" and s["source"]["path"] == "runs/sevens.pt"
    assert (s["n_minima"], s["n_basins"], s["n_pairs"], s["n_merges"]) == (10, 4, 10, 9)
    assert s["level"] == s["main_level"] == 1 and s["alpha"] == 1.0 and s["multiplier"] == 1.0
    assert s["temperature"] == 20.0 and s["ad_temperature"] == 0.5 and s["alpha_unit"] == 0.2
    assert s["minima_shape"] == [1, 8, 8] and s["energy_offset"] == -3.0 and s["n_merges_not_connected"] == 0
    assert [lv["n_basins"] for lv in s["levels"]] == [10, 4, 2, 1]
    assert [leaf["energy"] for leaf in s["leaves"]] == IMG_ENERGY
    assert [leaf["basin"] for leaf in s["leaves"]] == IMG_LEVELS[1]
    assert [leaf["hits"] for leaf in s["leaves"]] == list(range(1, 11))
    assert s["leaves"][0]["escape"] is None and s["leaves"][8]["escape"] == pytest.approx(1.0)
    assert [leaf["spurious"] for leaf in s["leaves"]] == [i == 8 for i in range(10)]
    merges = [(m["lower"], m["higher"], m["height"], m["relative"]) for m in s["merges"]]
    assert merges == [pytest.approx(m) for m in MINIMA_MERGES]
    assert [m["node"] for m in s["merges"]] == list(range(10, 19)) and s["merges"][-1]["leaves"] == 10
    content = read_map(image_map)
    np.testing.assert_allclose([m["height"] for m in s["merges"]], content.tree.heights)
    assert [m["barrier_row"] for m in s["merges"]] == content.tree.pair.tolist()
    assert s["pictures"] == {}


def test_max_leaves_folds_the_text_tree(image_map, capsys):
    code, out, err = tree(capsys, image_map, "--max-leaves", "2")
    assert code == 0, err
    assert "lowest merges folded to show 2 groups" in out
    assert "[8 minima connected at or below -0.5; lowest: minimum 0 E=-3]" in out
    assert "[2 minima connected at or below -0.8; lowest: minimum 8 E=-1]" in out
    assert "minimum 3  E=" not in out
    assert len(merge_rows(out)) == 2 and "(7 lower merges not listed: raise --max-leaves or use --json)" in out
    code, out, err = tree(capsys, image_map, "--max-leaves", "2", "--basins")
    assert code == 0, err
    assert "[3 basins connected at or below -0.5; lowest: basin 0 E=-3, total size 8]" in out
    assert "(1 lower merge not listed" in out
    code, out, err = tree(capsys, image_map, "--max-leaves", "0")
    assert code == 2 and "--max-leaves" in err


def test_groups_with_no_path_between_them_are_reported_as_such(split_map, capsys):
    code, out, err = tree(capsys, split_map, "--json")
    assert code == 0, err
    s = json.loads(out)
    merges = s["merges"]
    assert [m["connected"] for m in merges] == [True, True, True, True, False]
    last = merges[-1]
    assert last["height"] is None and last["relative"] is None and last["pair"] is None and last["estimate"] is None
    assert s["n_merges_not_connected"] == 1 and s["leaves"][4]["escape"] is None
    code, out, err = tree(capsys, split_map)
    assert code == 0, err
    assert "tree      5 merges: 0 at refined barriers, 4 at estimates, 1 not connected (no path found)" in out
    assert "no path found to the group of minimum 4" in out
    assert "no path found to the group of minimum 4 (drawn at" in out and "minimum 4  E=0.5  basin 2  hits 5" in out
    assert merge_rows(out)[-1] == ["0 + 4", "-", "no path found", "-", "-", "-"]
    # Folded, a group holding minima with no path between them is not called connected.
    code, out, err = tree(capsys, split_map, "--max-leaves", "1")
    assert code == 0, err
    assert "[6 minima not all connected" in out and "connected at or below" not in out
    code, out, err = tree(capsys, split_map, "--basins")
    assert code == 0, err
    assert "no path found to the group of basin 2" in out
    assert re.search(r"no path found to the group of basin 2 \(drawn at [^)]*\): basin 2  E=0\.5 ", out)


# ------------------------------------------------------------------------ pictures


def test_each_picture_option_writes_a_picture(image_map, wells_map, split_map, tmp_path, capsys):
    out_dir = tmp_path / "pictures" / "new"  # created on demand
    code, out, err = tree(capsys, image_map, "--plot", out_dir / "tree.png", "--images", out_dir / "reps.png",
                          "--levels-plot", out_dir / "levels.png")
    assert code == 0, err
    for name in ("tree", "reps", "levels"):
        assert_png(out_dir / f"{name}.png")
    assert f"wrote {out_dir / 'tree.png'} (plot)" in out and f"wrote {out_dir / 'reps.png'} (images)" in out
    assert f"wrote {out_dir / 'levels.png'} (levels plot)" in out
    code, out, err = tree(capsys, image_map, "--level", "2", "--basins", "--images", out_dir / "reps2.png",
                          "--plot", out_dir / "tree2.png", "--json")
    assert code == 0, err
    assert json.loads(out)["pictures"] == {"plot": str(out_dir / "tree2.png"), "images": str(out_dir / "reps2.png")}
    assert_png(out_dir / "reps2.png")
    code, out, err = tree(capsys, wells_map, "--images", out_dir / "map.png", "--plot", out_dir / "tree2d.svg")
    assert code == 0, err
    assert_png(out_dir / "map.png", min_bytes=20000)  # the energy, its minima and paths
    assert (out_dir / "tree2d.svg").read_text().lstrip().startswith("<?xml")
    code, out, err = tree(capsys, split_map, "--images", out_dir / "vectors.pdf")
    assert code == 0, err
    assert (out_dir / "vectors.pdf").read_bytes()[:5] == b"%PDF-"
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------- schema 1


def test_tree_of_a_schema_1_map_shows_its_basins_and_says_so(tmp_path, capsys):
    path = write_schema1_map(tmp_path / "old.h5")
    code, out, err = tree(capsys, path, "--plot", tmp_path / "old.png")
    assert code == 0, err
    assert re.search(r"^note\s+a schema-1 map: its tree is over the basins", out, re.MULTILINE)
    assert "showing   the tree over the basins of the main level (alpha 0.5)" in out
    assert "barrier tree: 4 basins, energies -5 .. 0.2" in out
    assert re.search(r"basin 1  E=-3  size 2 .*hits 8", out) and "+0.8 above basin 1" in out
    assert "no path found to the group of basin 3" in out
    rows = {r[0]: r for r in merge_rows(out)}
    assert rows["0 + 1"][1:5] == ["0-2", "-2.2", "+0.8", "refined"]
    assert rows["0 + 2"][1:5] == ["2-4", "0.5", "+1.5", "estimate"]
    assert rows["0 + 3"][2] == "no path found"
    assert_png(tmp_path / "old.png")
    code, out, err = tree(capsys, path, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["schema_version"] == 1 and s["leaves_are"] == "basins"
    assert [leaf["minimum"] for leaf in s["leaves"]] == [0, 2, 4, 6]
    assert [m["height"] for m in s["merges"]] == [-2.2, 0.5, None]
    # Its --basins is the same tree; its pictures work as for any map.
    code, out2, err = tree(capsys, path, "--basins", "--json")
    assert code == 0 and json.loads(out2)["merges"] == s["merges"]
    code, out, err = tree(capsys, path, "--images", tmp_path / "old_map.png")
    assert code == 0, err
    assert_png(tmp_path / "old_map.png")


# ----------------------------------------------------------------------------- info


def test_info_on_a_map(image_map, capsys):
    code, out, err = run(capsys, "info", image_map)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"map       {image_map}"
    assert "counts    10 minima, 4 basins at the main level, 10 barrier pairs (2 refined, 1 of them" in out
    assert "note" not in out and "barrier tree:" not in out  # the tree itself is `landscape tree`'s
    code, out, err = run(capsys, "info", image_map, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["n_minima"] == 10 and s["schema_version"] == 2 and "leaves" not in s and "merges" not in s


def lone_chains_map(tmp_path, make_map):
    """The image map made with ``--chains 32 --seed 1 --no-refine``, and a funnel probe
    (``--chains 2 --seed 3``) whose 4 chains per level each ended in a basin of their own."""
    c = image_content(make_map)
    c.meta.config = {"chains": 32, "rounds": 4, "eps": None, "refine": False, "ladder": [0.03, 0.1, 0.3, 1.0, 3.0],
                     "seed": 1}
    spread = np.full((3, 4), 0.25)
    c.funnel = FunnelData(noise=np.array([0.0, 1.0, 2.0]), occupancy=spread, entropy=np.full(3, math.log(4)),
                          score=0.0, sinks=np.array([[0, 1, -1], [0, 1, -1], [0, 1, -1]]),
                          chain_minimum=np.array([[0, 3, 5, 8]] * 3),
                          attrs={"chains_per_level": 4, "reference_entropy": math.log(2), "funnel_threshold": 0.5,
                                 "reference": "chains from data at the lowest noise",
                                 "config": json.dumps({"chains": 2, "seed": 3, "noise": [0.0, 1.0, 2.0]})})
    return save(tmp_path, c, "lone.h5")


def test_info_and_tree_show_how_the_map_and_its_probe_were_made(tmp_path, make_map, capsys):
    # (the seed and the settings were only in the raw HDF5 attrs /@config and /funnel@config)
    path = lone_chains_map(tmp_path, make_map)
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    rows = {line[:9].strip(): line[10:] for line in out.splitlines() if line[:9].strip()}
    assert rows["config"] == "seed 1, chains 32, refine False (the rest at their defaults; --json: the whole config)"
    assert "probe seed 3, 2 chains per start and level" in rows["funnel"]
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["config"] == read_map(path).meta.config and s["config"]["seed"] == 1
    assert (s["funnel"]["seed"], s["funnel"]["chains"], s["funnel"]["config"]["noise"]) == (3, 2, [0.0, 1.0, 2.0])
    code, out, err = tree(capsys, path, "--json")
    assert code == 0, err
    assert json.loads(out)["config"]["chains"] == 32 and json.loads(out)["funnel"]["seed"] == 3


def test_a_probe_whose_chains_never_met_leads_with_too_few_chains_not_no_funnel(tmp_path, make_map, capsys):
    # (info said "funnel score 0.00: no funnel (... basin 4 4%, basin 12 4%, ...); every level's 24
    # chains ended each in a basin of its own: too few chains to tell a funnel"; the JSON "funnel": false)
    path = lone_chains_map(tmp_path, make_map)
    for command in ("info", "tree"):
        code, out, err = run(capsys, command, path)
        assert code == 0, err
        funnel = next(line for line in out.splitlines() if line.startswith("funnel "))
        assert funnel.startswith("funnel    too few chains to tell a funnel: every level's 4 chains ended each in a "
                                 "basin of its own"), funnel
        assert "no funnel" not in funnel and "basin 0 25%" not in funnel  # (no sinks picked by index from a tie)
        code, out, err = run(capsys, command, path, "--json")
        assert code == 0, err
        f = json.loads(out)["funnel"]
        assert (f["verdict"], f["funnel"], f["score"]) == ("too few chains to tell", None, 0.0)


def test_info_says_where_the_map_s_time_went(image_map, capsys):
    # as a map records it: the ladder's levels (basins_0) and a rung inserted after them
    # (basins_r0) are one stage; a stage with no time kept (NaN) is left out
    with h5py.File(image_map, "r+") as f:
        f.attrs["seconds"] = json.dumps({"minima": 1.25, "neighbours": 70.0, "basins_0": 100.0, "basins_r0": 20.0,
                                         "refine": float("nan")})
    code, out, err = run(capsys, "info", image_map)
    assert code == 0, err
    assert "time      3.2 min: minima 1.2 s, neighbour barriers 70 s, basins 2.0 min" in out
    code, out, err = run(capsys, "info", image_map, "--json")
    assert json.loads(out)["seconds"] == {"minima": 1.25, "neighbours": 70.0, "basins": 120.0}


# ---------------------------------------------------------------------------- errors


def test_bad_input_is_one_line_errors(image_map, tmp_path, make_map, capsys):
    code, _, err = tree(capsys, tmp_path / "missing.h5")
    assert_one_line_error(code, err, "no map file at .*missing.h5")

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    code, _, err = tree(capsys, other)
    assert_one_line_error(code, err, "not an ebm-landscape map")

    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x00garbage" * 100)
    code, _, err = tree(capsys, corrupt)
    assert_one_line_error(code, err, "not a readable HDF5 file")

    newer = tmp_path / "newer.h5"
    newer.write_bytes(image_map.read_bytes())
    with h5py.File(newer, "r+") as f:
        f.attrs["schema_version"] = 3
    code, _, err = tree(capsys, newer)
    assert_one_line_error(code, err, "schema version 3.*upgrade")

    code, _, err = tree(capsys, image_map, "--level", "4")
    assert_one_line_error(code, err, r"level 4 is out of range: the map has 4 levels, 0\.\.3")
    code, _, err = tree(capsys, image_map, "--level", "-1", "--basins")
    assert_one_line_error(code, err, "out of range")
    code, _, err = tree(capsys, image_map, "--plot", tmp_path / "tree.jpgx")
    assert_one_line_error(code, err, "picture format")

    odd = save(tmp_path, make_map(np.zeros((2, 4, 3, 3)), [0.0, 1.0], source="x"), "odd.h5")
    code, _, err = tree(capsys, odd, "--images", tmp_path / "odd.png", "--plot", tmp_path / "t.png")
    assert_one_line_error(code, err, r"cannot draw minima of shape \(4, 3, 3\) as images")
    nolevels = save(tmp_path, make_map(np.zeros((2, 3)), [0.0, 1.0], alphas=[0.0], source="x"), "zero.h5")
    code, _, err = tree(capsys, nolevels, "--levels-plot", tmp_path / "l.png")
    assert_one_line_error(code, err, "no level has alpha > 0")
    # Nothing half done: a bad option is an error before any picture is written.
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.jpgx"))


def test_a_levels_plot_that_cannot_be_drawn_writes_no_other_picture(tmp_path, make_map, capsys):
    nolevels = save(tmp_path, make_map(np.zeros((2, 3)), [0.0, 1.0], alphas=[0.0], source="x"), "zero.h5")
    code, _, err = tree(capsys, nolevels, "--plot", tmp_path / "t.png", "--levels-plot", tmp_path / "l.png")
    assert_one_line_error(code, err, "no level has alpha > 0")
    assert not (tmp_path / "t.png").exists()


def test_the_basin_tree_shown_is_the_library_s(image_map, capsys):
    """The command's --basins JSON and figures.basin_tree_of agree, level by level."""
    content = read_map(image_map)
    for level in range(4):
        code, out, err = tree(capsys, image_map, "--basins", "--level", str(level), "--json")
        assert code == 0, err
        s = json.loads(out)
        t = basin_tree_of(content, level)
        assert [leaf["minimum"] for leaf in s["leaves"]] == t.leaves.tolist()
        heights = [m["height"] for m in s["merges"]]
        assert all(h is not None and math.isfinite(h) for h in heights)
        np.testing.assert_allclose(heights, t.heights)


def test_a_refined_merge_says_whether_it_sits_at_a_saddle_point(tmp_path, capsys):
    # Mueller-Brown: both merges at its two saddle points (the gradient vanishes there).
    import torch

    from landscape import Energy, MapConfig, build_map
    from landscape.potentials import mueller_brown

    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64, name="mb")
    build_map(energy, MapConfig(chains=64, rounds=1, ladder=(), neighbours=2)).write(tmp_path / "mb.h5")
    code, out, err = tree(capsys, tmp_path / "mb.h5")
    assert code == 0, err
    rows = merge_rows(out)
    assert len(rows) == 2 and all(r[4] == "saddle point" for r in rows)
    code, out, err = tree(capsys, tmp_path / "mb.h5", "--json")
    assert [m["at_saddle_point"] for m in json.loads(out)["merges"]] == [True, True]
    # (and the header says what set the alpha unit)
    code, out, err = tree(capsys, tmp_path / "mb.h5")
    assert re.search(r"alpha unit [0-9.]+ \(the typical barrier over the typical spacing\)", out), out


def test_minima_of_one_dimension_are_drawn_at_their_energies(tmp_path, make_map, capsys):
    line = save(tmp_path, vector_content(make_map, 1), "line.h5")
    code, out, err = tree(capsys, line, "--images", tmp_path / "line.png", "--plot", tmp_path / "t.png")
    assert code == 0, err
    assert (tmp_path / "line.png").stat().st_size > 1000 and (tmp_path / "t.png").exists()


def test_info_says_when_the_map_s_checkpoint_changed_or_went_and_when_the_map_was_updated(tmp_path, make_map,
                                                                                          monkeypatch, capsys):
    # (info showed the recorded sha256 of a checkpoint trained further since, with no word;
    # --json had no created, tool_version or updated)
    from conftest import image_content, save
    from landscape.io.files import sha256_of
    from landscape.io.mapfile import update_map

    monkeypatch.chdir(tmp_path)
    ckpt = tmp_path / "m.pt"
    ckpt.write_bytes(b"weights, as trained then")
    c = image_content(make_map)
    c.meta.source = {"kind": "checkpoint", "path": "m.pt", "sha256": sha256_of(ckpt), "regime": "convergent"}
    path = save(tmp_path, c)

    def source_row(*extra):
        code, out, err = run(capsys, "info", path, *extra)
        assert code == 0, err
        return out if extra else next(line for line in out.splitlines() if line.startswith("source"))

    assert "changed" not in source_row() and json.loads(source_row("--json"))["source_file"] == "unchanged"
    ckpt.write_bytes(b"weights, trained further")
    assert "(changed since: m.pt has another sha256 now, trained further or replaced" in source_row()
    s = json.loads(source_row("--json"))
    assert s["source_file"] == "changed" and s["tool_version"] == "0.1.0" and s["created"] and s["updated"] is None
    ckpt.unlink()
    assert source_row().endswith("(not found now, at its recorded path or beside the map)")
    probe = FunnelData(noise=np.array([0.0, 1.0]), occupancy=np.full((2, 4), 0.25), entropy=np.full(2, math.log(4)),
                       score=0.0, attrs={"reference_entropy": math.log(4)})
    update_map(path, funnel=probe)
    created = next(line for line in source_row("--datasets").splitlines() if line.startswith("created"))
    assert re.search(r"; updated \S+ \(a funnel probe or diagnosis written into it\)$", created), created
    assert json.loads(source_row("--json"))["updated"]


def test_json_is_strict_where_a_map_holds_non_finite_numbers(tmp_path, make_map, capsys):
    # (info --json of a map whose exploration temperature is infinite printed "Infinity", which
    # strict JSON readers refuse; check, compare and diagnose wrote null already)
    from conftest import image_content, save

    c = image_content(make_map)
    c.attrs["minima"]["temperature"] = math.inf
    path = save(tmp_path, c)

    def strict(text):
        return json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in --json output"))

    for command in ("info", "tree"):
        code, out, err = run(capsys, command, path, "--json")
        assert code == 0, err
        assert strict(out)["temperature"] is None


def test_info_calls_held_pixels_of_images_held_not_saturated_and_says_of_how_many_minima(tmp_path, make_map, capsys):
    # (every convergent digits map said "31 of 32 minima lie on the box's faces ... (held by the box)",
    # of images whose data have 58 % of their pixels at the range's ends; then "61 of the map's
    # minima have pixels at the range's ends ... (saturated pixels ...)" of a map of 303, 239 of
    # them a funnel probe's, while diagnose said "0 saturated" by its own rule)
    from conftest import image_content, save, vector_content

    image = image_content(make_map)
    image.attrs["minima"].update(held_by_box=3, funnel_added=2)
    points = vector_content(make_map, 3)
    points.attrs["minima"]["held_by_box"] = 2
    for content, said in ((image, "3 of the 8 minima the exploration found have pixels held at the range's ends by "
                                  "the box (the energy still falling outward); the funnel probes' 2 minima were not "
                                  "checked"),
                          (points, "2 of the 6 minima lie on the box's faces with the energy still falling "
                                   "beyond (held by the box)")):
        code, out, err = run(capsys, "info", save(tmp_path, content, f"{len(said)}.h5"))
        assert code == 0, err
        assert said in out, out


def test_the_merge_table_writes_flat_where_the_tree_does(tmp_path, make_map, capsys):
    # The rings map's table read "+3.8147e-06" (a float32 rounding step) where the tree
    # above it said "flat above minimum 59".
    content = make_map(np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]]), [-5.0, -4.0, -3.0], [[0, 1], [1, 2]],
                       [-4.0 + 3.8147e-06, -1.0], source={"kind": "function", "spec": "three"})
    code, out, err = tree(capsys, save(tmp_path, content, "flat.h5"))
    assert code == 0, err
    assert "flat above minimum 1" in out
    rows = {r[0]: r for r in merge_rows(out)}
    assert rows["0 + 1"][3] == "flat" and rows["0 + 2"][3] == "+2", rows


def test_max_leaves_folds_minima_that_drain_into_one_first(wells_map, capsys):
    # Three wells, three minima in each: the two off the bottom drain into it with no
    # barrier (their straight-line barrier is their own energy). Three lines, one a well,
    # where the tree's 9 minima do not fit; the merge table lists the wells' barriers.
    code, out, err = tree(capsys, wells_map, "--max-leaves", "4")
    assert code == 0, err
    assert "folded to show 3 groups: 3 groups of minima that drain with no barrier" in out
    groups = re.findall(r"\[3 minima connected at or below [^;]+; lowest: minimum (\d+) E=[^,]+, the others draining into "
                        r"it with no barrier\]", out)
    content = read_map(wells_map)
    well = partition_of(content).basin
    bottoms = [int(np.flatnonzero(well == w)[np.argmin(content.minima_energy[well == w])]) for w in range(3)]
    assert sorted(int(g) for g in groups) == sorted(bottoms)
    rows = merge_rows(out)
    assert len(rows) == 2 and all(row[3] != "flat" for row in rows)
    assert "(6 flat merges not listed: raise --max-leaves or use --json)" in out
    code, out, err = tree(capsys, wells_map, "--max-leaves", "9")
    assert code == 0, err
    assert "folded" not in out and len(merge_rows(out)) == 8
    # --json says which merges are flat and where each minimum drains, whatever is folded.
    code, out, err = tree(capsys, wells_map, "--max-leaves", "4", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert [m["flat"] for m in s["merges"]].count(True) == 6 == s["n_merges_flat"]
    for leaf in s["leaves"]:
        end = leaf["index"]
        while s["leaves"][end]["drains_into"] is not None:
            end = s["leaves"][end]["drains_into"]
        assert end == [b for b in bottoms if well[b] == well[leaf["index"]]][0]  # its well's bottom
    assert sorted(leaf["index"] for leaf in s["leaves"] if leaf["drains_into"] is None) == sorted(bottoms)


def test_info_counts_the_flagged_minima_that_are_states(tmp_path, make_map, capsys):
    # Every minimum of the three wells flagged: 9 minima, of which the wells' bottoms are
    # states; the other 6 drain into them.
    from landscape.io.mapfile import DiagnosisData

    content = wells_content(make_map)
    content.diagnosis = DiagnosisData(spurious=np.ones(9, dtype=bool), nn_distance=np.linspace(0.1, 1.0, 9),
                                      attrs={"off_data": 9})
    path = save(tmp_path, content, "flagged.h5")
    code, out, err = run(capsys, "info", path)
    assert code == 0, err
    assert "diagnosis 9 of 9 minima spurious (9 off the data, 3 of them states of their own, the others draining " \
           "into another minimum)" in out
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    assert json.loads(out)["diagnosis"] == {"spurious": 9, "minima": 9, "off_data": 9, "states": 3}
