"""`landscape map` end to end: maps from a function and from a checkpoint, bad input."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landscape.mapfile import progress_path, read_map
from tests.test_cli import TINY, assert_one_line_error, run

WELLS = """
import torch

def wells(x):
    return ((x ** 2 - 1) ** 2 + torch.tensor([0.25, 0.5], dtype=x.dtype) * x).sum(1)
"""

FAST_AD = ["--max-steps", "600", "--patience", "100", "--attempts", "2", "--neighbours", "3"]


@pytest.fixture
def wells_file(tmp_path):
    path = tmp_path / "pot.py"
    path.write_text(WELLS)
    return path


def map_wells(capsys, wells_file, out, *extra):
    return run(
        capsys, "map", "--energy", f"{wells_file}:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64",
        "--temperature", "0.05", "--ad-temperature", "0.05", "--chains", "32", "--steps", "50", "--ladder", "",
        "--alpha-unit", "1", "--alpha", "1", "--out", out, "--quiet", *FAST_AD, *extra,
    )


def test_map_of_a_function_finds_the_four_wells_and_writes_the_schema(capsys, wells_file, tmp_path):
    out = tmp_path / "wells.h5"
    code, stdout, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    assert "4 minima, 4 basins" in stdout
    c = read_map(out)
    np.testing.assert_allclose(np.sort(np.abs(c.minima_x).ravel()), 1.0, atol=0.15)
    assert c.meta.source["kind"] == "function" and c.meta.config["ad"]["temperature"] == 0.05
    assert c.grid is not None and c.barrier_refined is not None
    with h5py.File(out, "r") as f:  # as a third-party tool reads it
        assert f.attrs["schema"] == "ebm-landscape/map"
        assert f["tree/linkage"].shape == (3, 4)
        assert f["minima/x"].dtype == np.float32
    assert not progress_path(out).exists()
    # An existing map is not overwritten without --force.
    code, _, err = map_wells(capsys, wells_file, out)
    assert_one_line_error(code, err, "exists: pass --force")
    code, _, err = map_wells(capsys, wells_file, out, "--force")
    assert code == 0, err


def test_map_of_a_checkpoint_uses_its_data_and_sampler(capsys, tmp_path):
    ckpt = tmp_path / "rings.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", ckpt, "--set", "model.kwargs.n_f=8", *TINY)
    assert code == 0, err
    out = tmp_path / "rings.h5"
    code, stdout, err = run(
        capsys, "map", ckpt, "--chains", "16", "--steps", "20", "--ladder", "1", "--out", out, "--quiet", *FAST_AD
    )
    assert code == 0, err
    c = read_map(out)
    assert c.meta.source["kind"] == "checkpoint" and c.meta.source["dataset"] == "rings"
    assert c.meta.config["init"] == "both" and c.meta.config["eps"] == pytest.approx(0.125)
    assert c.attrs["minima"]["data_range"] == pytest.approx([-4.6, 4.6], abs=1.0)
    assert c.levels is not None and len(c.levels) == 2


def test_bad_input_gets_one_line_errors(capsys, tmp_path, wells_file):
    code, _, err = run(capsys, "map", tmp_path / "missing.pt", "--quiet")
    assert_one_line_error(code, err, "missing.pt")
    code, _, err = run(capsys, "map", "--quiet")
    assert_one_line_error(code, err, "no energy given")
    code, _, err = run(capsys, "map", "--energy", f"{wells_file}:wells", "--shape", "2", "--quiet")
    assert_one_line_error(code, err, "--box")
    code, _, err = map_wells(capsys, wells_file, tmp_path / "m.h5", "--init", "data")
    assert_one_line_error(code, err, "needs a data set")
    code, _, err = map_wells(capsys, wells_file, tmp_path / "m.h5", "--ladder", "1,x")
    assert code == 2 and "--ladder" in err


def test_unfinished_progress_needs_resume(capsys, tmp_path, wells_file):
    out = tmp_path / "w.h5"
    progress_path(out).write_bytes(b"")  # as left by an interrupted run (here: unreadable)
    code, _, err = map_wells(capsys, wells_file, out)
    assert_one_line_error(code, err, "partial.h5")


def test_info_describes_a_map(capsys, wells_file, tmp_path):
    out = tmp_path / "wells.h5"
    code, _, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    code, stdout, err = run(capsys, "info", out)
    assert code == 0, err
    assert "4 minima, 4 basins" in stdout and "function" in stdout
    code, stdout, _ = run(capsys, "info", out, "--json")
    assert code == 0 and '"kind": "function"' in stdout


NAN_WELLS = """
import torch

def wells(x):
    u = ((x ** 2 - 1) ** 2).sum(1)
    return torch.where(x[:, 0] > 0.5, torch.full_like(u, float("nan")), u)
"""


def test_nan_energies_end_in_one_line_and_leave_an_existing_map_alone(capsys, tmp_path, wells_file):
    out = tmp_path / "wells.h5"
    code, _, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    before = out.read_bytes()
    bad = tmp_path / "nan.py"
    bad.write_text(NAN_WELLS)
    code, _, err = run(
        capsys, "map", "--energy", f"{bad}:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64",
        "--chains", "16", "--steps", "20", "--ladder", "", "--out", out, "--force", "--quiet", *FAST_AD,
    )
    assert_one_line_error(code, err, "non-finite")
    assert out.read_bytes() == before


def test_a_missing_data_set_says_how_to_map_without_it(capsys, tmp_path, wells_file, monkeypatch):
    monkeypatch.setenv("EBM_LANDSCAPE_DATA", str(tmp_path / "nowhere"))
    code, _, err = map_wells(capsys, wells_file, tmp_path / "m.h5", "--dataset", "mnist", "--init", "noise")
    assert code == 0, err  # noise-only maps need no data
    code, _, err = run(
        capsys, "map", "--energy", f"{wells_file}:wells", "--shape", "2", "--box", "-1.6", "1.6",
        "--dataset", "mnist", "--quiet",
    )
    assert_one_line_error(code, err, "--init noise")
