"""`landscape tree` end to end on small synthetic maps: text, JSON, pictures, one-line errors."""

import json
import re

import click
import h5py
import numpy as np
import pytest
from test_figures import (
    IMG_ENERGY,
    IMG_MERGES,
    assert_png,
    make_2d_content,
    make_image_content,
    make_vector_content,
    save,
)

from cli.errors import run_guarded
from cli.tree_cmd import tree_cmd
from landscape.figures import level_view, tree_merges
from landscape.mapfile import read_map
from landscape.tree import minimax_tree

APP = click.Group("landscape")
APP.add_command(tree_cmd)


def run(capsys, *args):
    code = run_guarded(APP, ["tree", *[str(a) for a in args]])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, pattern):
    assert code == 1, err
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and re.search(pattern, lines[0]), lines[0]


@pytest.fixture
def image_map(tmp_path):
    return save(tmp_path, make_image_content(levels=True, diagnosis=True), "digits.h5")


@pytest.fixture
def wells_map(tmp_path):
    return save(tmp_path, make_2d_content(), "wells.h5")


def test_text_lists_every_basin_and_the_merge_barriers(image_map, capsys):
    code, out, err = run(capsys, image_map)
    assert code == 0, err
    assert "checkpoint runs/model.pt (sha256 cdcdcdcdcdcd), regime convergent" in out
    assert "10 minima, 4 basins, 4 barrier pairs tested (3 connected)" in out
    assert "temperature 20, alpha 0.1, data digits" in out
    assert "levels    [0] alpha 0.1: 4 basins (top level)\n          [1] alpha 1: 2 basins\n" in out
    assert "          [2] alpha 10: 1 basin\n" in out
    for i, e in enumerate(IMG_ENERGY):
        assert re.search(rf"basin {i}  E={e:g}  size \d+  hits \d+", out), i
    assert "basin 1  E=-2  size 2  hits 9  escape +1.5" in out
    assert "basin 3  E=-1  size 2  hits 19  escape +1  spurious" in out
    assert "basin 0  E=-3  size 3  hits 6  lowest basin" in out
    # Merges: absolute barrier and the height above each side's lowest basin.
    assert "merge at -1  (+1 above basin 1, +0.5 above basin 2)" in out
    assert "merge at -0.5  (+2.5 above basin 0, +1.5 above basin 1)" in out
    assert "merge at 0  (+3 above basin 0, +1 above basin 3)" in out
    # The merge table: lowest first, with the relative height of the shallower side.
    rows = [line.split() for line in out.splitlines() if re.match(r"\s+\d \+ \d\s", line)]
    got = [(int(r[0]), int(r[2]), float(r[4]), float(r[5])) for r in rows]
    assert got == [(lo, hi, h, rel) for lo, hi, h, rel in IMG_MERGES]


def test_text_shows_refined_barriers_next_to_the_estimates(wells_map, capsys):
    code, out, err = run(capsys, wells_map)
    assert code == 0, err
    assert "3 barrier pairs tested (3 connected, 2 refined)" in out and "function wells" in out
    assert "temperature 0.5, attraction-diffusion temperature 0.2, alpha 0.5" in out
    assert "barrier heights: refined where available" in out
    assert re.search(r"joins\s+via pair\s+barrier\s+relative\s+estimate\s+refined\s+refined relative", out)
    content = read_map(wells_map)
    merges = tree_merges(level_view(content))
    assert len(merges) == 2
    for m in merges:
        line = next(line for line in out.splitlines() if line.strip().startswith(f"{m.lower} + {m.higher}"))
        cells = line.split()
        i, j = m.pair
        assert cells[3] == f"{i}-{j}"
        assert float(cells[4]) == pytest.approx(m.height, rel=1e-5)
        # relative: the barrier above the higher side's lowest basin.
        assert float(cells[5]) == pytest.approx(m.height - content.basin_energy[m.higher], rel=1e-5)
        assert float(cells[6]) == pytest.approx(content.barrier_energy[m.barrier_row], rel=1e-5)
        assert float(cells[7]) == pytest.approx(content.barrier_refined[m.barrier_row], rel=1e-5)
        assert float(cells[8]) == pytest.approx(float(cells[5]), rel=1e-5)  # the tree uses the refined value
        assert float(cells[7]) < float(cells[6])


def test_json_summary_counts_and_merge_order(image_map, capsys):
    code, out, err = run(capsys, image_map, "--json")
    assert code == 0, err
    s = json.loads(out)
    assert (s["n_minima"], s["n_basins"], s["n_barriers"], s["n_connected"]) == (10, 4, 4, 3)
    assert s["level"] is None and s["alpha"] == 0.1 and s["temperature"] == 20.0
    assert [lv["n_basins"] for lv in s["levels"]] == [4, 2, 1]
    assert [b["energy"] for b in s["basins"]] == IMG_ENERGY.tolist()
    assert [b["minima"] for b in s["basins"]] == [3, 2, 3, 2] and sum(b["hits"] for b in s["basins"]) == 55
    assert [b["escape"] for b in s["basins"]] == [None, 1.5, 0.5, 1.0]
    assert [b["spurious"] for b in s["basins"]] == [False, False, False, True]
    merges = [(m["lower"], m["higher"], m["height"], m["relative"]) for m in s["merges"]]
    assert merges == IMG_MERGES
    assert [m["pair"] for m in s["merges"]] == [[1, 2], [0, 1], [2, 3]]
    assert [m["node"] for m in s["merges"]] == [4, 5, 6] and s["merges"][-1]["basins"] == 4
    assert s["pictures"] == {}


def test_level_option_picks_a_level(image_map, capsys):
    code, out, err = run(capsys, image_map, "--level", "1", "--json")
    assert code == 0, err
    s = json.loads(out)
    assert s["level"] == 1 and s["alpha"] == 1.0 and s["n_basins"] == 2 and len(s["merges"]) == 1
    assert [b["hits"] for b in s["basins"]] == [36, 19]
    code, out, err = run(capsys, image_map, "--level", "2")
    assert code == 0, err
    assert "showing   level 2 (alpha 10)" in out and "1 basin," in out and "merges, lowest first" not in out
    assert "[2] alpha 10: 1 basin <- shown" in out


def test_each_picture_option_writes_a_png(image_map, wells_map, tmp_path, capsys):
    out_dir = tmp_path / "pictures" / "new"  # created on demand
    code, out, err = run(
        capsys, image_map, "--plot", out_dir / "tree.png", "--images", out_dir / "reps.png",
        "--levels-plot", out_dir / "levels.png",
    )
    assert code == 0, err
    for name in ("tree", "reps", "levels"):
        assert_png(out_dir / f"{name}.png")
    assert f"wrote {out_dir / 'reps.png'} (images)" in out
    code, out, err = run(capsys, image_map, "--level", "1", "--images", out_dir / "reps1.png", "--json")
    assert code == 0, err
    assert json.loads(out)["pictures"] == {"images": str(out_dir / "reps1.png")}
    assert_png(out_dir / "reps1.png")
    code, out, err = run(capsys, wells_map, "--images", out_dir / "map.png", "--plot", out_dir / "tree2d.svg")
    assert code == 0, err
    assert_png(out_dir / "map.png", min_bytes=20000)
    assert (out_dir / "tree2d.svg").read_text().lstrip().startswith("<?xml")
    assert not [p for p in out_dir.iterdir() if p.name.startswith(".")]


def test_max_leaves_folds_the_text_tree(image_map, capsys):
    code, out, err = run(capsys, image_map, "--max-leaves", "2")
    assert code == 0, err
    assert "folded to show 2 groups" in out and "[3 basins connected below -0.5; lowest: basin 0" in out
    assert "(1 lower merge not listed" in out


def test_bad_input_is_one_line_errors(image_map, wells_map, tmp_path, capsys):
    code, _, err = run(capsys, tmp_path / "missing.h5")
    assert_one_line_error(code, err, "no map file at .*missing.h5")

    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    code, _, err = run(capsys, other)
    assert_one_line_error(code, err, "not an ebm-landscape map")

    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x00garbage" * 100)
    code, _, err = run(capsys, corrupt)
    assert_one_line_error(code, err, "not a readable HDF5 file")

    code, _, err = run(capsys, image_map, "--level", "3")
    assert_one_line_error(code, err, "level 3 is out of range: the map has 3 levels, 0..2")
    code, _, err = run(capsys, image_map, "--level", "-1")
    assert_one_line_error(code, err, "out of range")
    code, _, err = run(capsys, wells_map, "--level", "0")
    assert_one_line_error(code, err, "no levels")
    code, _, err = run(capsys, wells_map, "--levels-plot", tmp_path / "l.png")
    assert_one_line_error(code, err, "no levels .*--levels-plot")

    flat = save(tmp_path, make_vector_content(1), "flat.h5")
    code, _, err = run(capsys, flat, "--images", tmp_path / "flat.png", "--plot", tmp_path / "t.png")
    assert_one_line_error(code, err, r"cannot draw minima of shape \(1,\)")
    code, _, err = run(capsys, image_map, "--plot", tmp_path / "tree.jpgx")
    assert_one_line_error(code, err, "picture format")
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob("*.jpgx"))  # nothing half done


def test_disconnected_groups_are_reported_as_such(tmp_path, capsys):
    content = make_vector_content(4)
    content.barrier_energy = np.array([1.0, np.inf])  # no path found from basin 2
    content.linkage = minimax_tree(content.basin_energy, content.barrier_pairs, content.barrier_energy).linkage
    path = save(tmp_path, content)
    code, out, err = run(capsys, path, "--json")
    assert code == 0, err
    merges = json.loads(out)["merges"]
    assert [m["disconnected"] for m in merges] == [False, True]
    assert merges[1]["height"] is None and merges[1]["relative"] is None and merges[1]["pair"] is None
    assert json.loads(out)["basins"][2]["escape"] is None
    code, out, err = run(capsys, path)
    assert code == 0, err
    assert "no path found between the groups of basin 0 and basin 2" in out
    assert "basin 2  E=0.5  size 2  hits 2  no path found to a lower basin" in out
    assert re.search(r"0 \+ 2\s+-\s+no path found", out)
    # Folded, a group holding disconnected basins is not called connected.
    code, out, err = run(capsys, path, "--max-leaves", "1")
    assert code == 0, err
    assert "[3 basins not all connected" in out and "connected below" not in out
