"""Spurious minima: the rule on planted answers and known arrays, and `landscape diagnose`
end to end (with the errors for a map of another model and data of the wrong shape)."""

from __future__ import annotations

import json
import math
import shutil

import h5py
import numpy as np
import pytest
import torch

from landscape import Energy
from landscape.diagnosis.spurious import (
    OFF_DATA,
    SATURATED,
    SINK,
    DiagnosisRule,
    data_spacing,
    diagnose,
    diagnose_map,
    reason_text,
    saturation,
)
from landscape.errors import LandscapeError
from landscape.io import bars
from landscape.io.mapfile import FunnelData, read_map, write_map
from landscape.mapping.pipeline import MapConfig, build_map
from landscape.potentials import PLANTED_BOX, PLANTED_CENTRES, planted_data, planted_hole
from conftest import TINY, assert_one_line_error, run

T = 0.05


# ----------------------------------------------------------------- the rule on arrays


def test_the_distance_bar_is_a_multiple_of_a_quantile_of_the_datas_own_spacing():
    rng = np.random.default_rng(0)
    data = rng.normal(size=(300, 3))
    d = np.sqrt(((data[:, None] - data[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    own = d.min(1)
    np.testing.assert_allclose(data_spacing(data), own)
    r = diagnose(data[:5] + 0.01, np.zeros(5), data, np.zeros(300), rule=DiagnosisRule(nn_quantile=0.9, nn_factor=2))
    assert r.nn_bar == pytest.approx(2 * np.quantile(own, 0.9))
    assert (r.reasons == 0).all()
    # An exact duplicate says nothing of how far apart examples lie: the spacing is to the
    # nearest example that differs (duplicated data set the bar of the data without them).
    dup = np.array([[0.0], [0.0], [1.0], [3.0], [3.0], [3.0]])
    np.testing.assert_allclose(data_spacing(dup), [1.0, 1.0, 1.0, 2.0, 2.0, 2.0])
    twice = diagnose(data[:5] + 0.01, np.zeros(5), np.concatenate([data, data[:100]]), np.zeros(400))
    once = diagnose(data[:5] + 0.01, np.zeros(5), data, np.zeros(300))
    assert twice.nn_bar == pytest.approx(once.nn_bar) and np.isfinite(twice.data_nn).all()
    # Data of one example repeated have no spacing: said in one line, not a bar of 0 that
    # flags every minimum (with a division by zero on the way).
    with pytest.raises(LandscapeError, match="one example repeated 50 times: .* at least 2 different"):
        diagnose(data[:5], np.zeros(5), np.repeat(data[:1], 50, axis=0), np.zeros(50))


def test_off_data_needs_both_low_energy_and_distance():
    data = np.linspace(0, 1, 11).reshape(-1, 1)  # spacing 0.1; bar 0.15
    energy = np.linspace(0, 10, 11)  # median 5
    minima = np.array([[0.5], [3.0], [3.0], [0.52]])
    r = diagnose(minima, np.array([1.0, 4.0, 7.0, 9.0]), data, energy)
    assert r.energy_bar == 5.0 and r.nn_bar == pytest.approx(0.15)
    # on the data (low or high energy): fine; far and low: spurious; far but improbable: fine
    assert r.reasons.tolist() == [0, OFF_DATA, 0, 0]
    assert r.nn_index.tolist()[:2] == [5, 10]
    assert reason_text(OFF_DATA | SATURATED) == "off the data, saturated"


def test_saturated_images_are_flagged_against_the_datas_own_saturation():
    rng = np.random.default_rng(1)
    # Data: 16-pixel images in [-1, 1] whose first 4 pixels are black background (25 % saturated).
    data = np.clip(rng.uniform(-0.8, 0.8, size=(200, 1, 4, 4)), -1, 1)
    data[:, 0, 0, :] = -1.0
    assert saturation(data, (-1, 1)).mean() == pytest.approx(0.25)
    like_data = data[:1].copy()
    blobs = np.sign(rng.normal(size=(1, 1, 4, 4)))  # every pixel at -1 or +1
    half = data[1:2].copy()
    half[0, 0, 1:3, :] = 1.0  # 12 of 16 saturated: (0.75 - 0.25) / 0.75 = 0.67 > 0.5
    minima = np.concatenate([like_data, blobs, half])
    r = diagnose(minima, np.zeros(3), data, np.ones(200), data_range=(-1.0, 1.0), images=True)
    assert r.saturation.tolist() == pytest.approx([0.25, 1.0, 0.75])
    assert [(b & SATURATED) != 0 for b in r.reasons] == [False, True, True]
    assert r.saturation_bar() == pytest.approx(0.25 + 0.5 * 0.75)
    with pytest.raises(LandscapeError, match="data range"):
        diagnose(minima, np.zeros(3), data, np.ones(200), images=True)


def test_funnel_sinks_are_flagged_only_when_the_score_says_funnel():
    data = np.array([[0.0], [1.0], [2.0], [3.0]])
    minima = np.array([[0.0], [1.0], [2.0]])
    basin, rep = np.array([0, 1, 1]), np.array([0, 1])
    occupancy = np.array([[0.5, 0.5], [0.05, 0.95]])

    def run_with(score):
        f = FunnelData(np.array([0.0, 1.0]), occupancy, np.array([0.69, 0.2]), score,
                       sinks=np.array([[0, 1], [1, -1]]))
        return diagnose(minima, np.zeros(3), data, np.zeros(4), minima_basin=basin, basin_representative=rep, funnel=f)

    r = run_with(0.7)
    assert r.sinks == [1] and r.reasons.tolist() == [0, SINK, 0]  # the sink basin's lowest minimum
    assert run_with(0.3).reasons.tolist() == [0, 0, 0]
    assert run_with(math.nan).reasons.tolist() == [0, 0, 0]


def test_bad_arrays_are_refused():
    data = np.zeros((4, 2))
    with pytest.raises(LandscapeError, match="shape"):
        diagnose(np.zeros((2, 3)), np.zeros(2), data, np.zeros(4))
    with pytest.raises(LandscapeError, match="NaN"):
        diagnose(np.zeros((2, 2)), np.array([0.0, np.nan]), data, np.zeros(4))
    with pytest.raises(LandscapeError, match="at least 2"):
        diagnose(np.zeros((2, 2)), np.zeros(2), data[:1], np.zeros(1))
    with pytest.raises(LandscapeError, match="nn_factor"):
        DiagnosisRule(nn_factor=0)
    with pytest.raises(LandscapeError, match=r"saturation_excess must be in \(0, 1\)"):
        DiagnosisRule(saturation_excess=1.0)  # (no image saturates more than every free pixel: it never flags)


def test_json_gives_each_flagged_minimum_how_far_past_the_bar_and_its_reasons_as_a_list(make_map, tmp_path):
    # (the text said "NN distance 5.18 = 1.04x the bar" and the JSON only the distance; its
    # reasons were one string where `check --json` gives a list)
    from landscape.cli.diagnose_cmd import _summary, summary_lines

    data = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # spacing 1: bar 1.5 x 1
    minima = np.array([[0.5, 0.5], [4.0, 0.5], [0.5, 6.0]])
    energy = np.array([-1.0, -3.0, -2.0])
    d = diagnose(minima, energy, data, np.zeros(4), data_range=(-1.0, 1.0))
    content = make_map(minima, energy)
    out = _summary(tmp_path / "m.h5", content, d, "points", tmp_path / "r.html")
    flagged = {e["minimum"]: e for e in out["flagged"]}
    assert sorted(flagged) == [1, 2] and out["nn_bar"] == pytest.approx(1.5)
    for i in (1, 2):
        assert flagged[i]["nn_over_bar"] == pytest.approx(d.nn_distance[i] / d.nn_bar)
        assert flagged[i]["reasons"] == ["off the data"]
    text = "\n".join(summary_lines(tmp_path / "m.h5", content, d, "points"))
    assert f"= {flagged[1]['nn_over_bar']:.2f}x the bar" in text
    assert json.loads(json.dumps(out))["flagged"][0]["reasons"] == ["off the data"]


def test_minima_compared_with_another_data_set_than_the_map_records_are_said_to_be(make_map, tmp_path):
    # (`diagnose --dataset 8gaussians` on a map of a rings model said so only in its header)
    from landscape.cli.diagnose_cmd import summary_lines

    data = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    minima, energy = np.array([[0.5, 0.5], [4.0, 0.5]]), np.array([-1.0, -3.0])
    d = diagnose(minima, energy, data, np.zeros(4), data_range=(-1.0, 1.0))
    content = make_map(minima, energy, attrs={"minima": {"dataset": "rings"}})
    said = [line for line in summary_lines(tmp_path / "m.h5", content, d, "8gaussians") if "another data set" in line]
    assert said == ["  the map records another data set, rings: its minima are compared with 8gaussians, as "
                    "--dataset asks"]
    assert not [line for line in summary_lines(tmp_path / "m.h5", content, d, "rings") if "another data set" in line]


# ----------------------------------------------------------------- a planted answer


@pytest.mark.slow
def test_a_planted_deep_narrow_hole_is_spurious_and_the_datas_wells_are_not(tmp_path):
    data = torch.from_numpy(planted_data(400, seed=0))
    energy = Energy(planted_hole, shape=(2,), data_range=PLANTED_BOX, dtype=torch.float64, name="planted_hole")
    cfg = MapConfig(chains=128, rounds=1, grid=0, max_steps=400, patience=100, attempts=2, neighbours=4)
    content = build_map(energy, cfg, data=data).content
    # The map finds the four data wells and the hole.
    assert content.n_minima == 5
    hole = int(np.argmin(np.linalg.norm(content.minima_x, axis=1)))
    np.testing.assert_allclose(content.minima_x[hole], [0.0, 0.0], atol=0.02)
    r = diagnose_map(energy, content, data)
    assert r.reasons[hole] == OFF_DATA
    others = [i for i in range(5) if i != hole]
    assert (r.reasons[others] == 0).all()
    # The wells sit among the data (closer than the data's median spacing to some example),
    # the hole three units from all of them.
    assert r.nn_distance[hole] > 2.5 and (r.nn_distance[others] < np.median(r.data_nn) * 3).all()
    centres = np.asarray(PLANTED_CENTRES)
    for i in others:
        assert np.min(np.linalg.norm(centres - content.minima_x[i], axis=1)) < 0.05
    # Stored and read back.
    out = write_map(tmp_path / "hole.h5", content, config=cfg.to_dict(), source={"kind": "function"}, tool_version="t")
    from landscape.io.mapfile import update_map

    update_map(out, diagnosis=r.to_data("planted"))
    back = read_map(out).diagnosis
    assert back.spurious.tolist() == r.spurious.tolist() and back.reasons.tolist() == r.reasons.tolist()
    assert back.bar["bar"] == pytest.approx(r.nn_bar) and back.attrs["off_data"] == 1


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_landscape_diagnose_on_the_planted_hole(capsys, tmp_path, monkeypatch):
    npz = tmp_path / "wells.npz"
    np.savez(npz, x=planted_data(400, seed=0).astype(np.float32))
    out = tmp_path / "hole.h5"
    code, _, err = run(
        capsys, "map", "--energy", "landscape.potentials:planted_hole", "--shape", "2", "--box", "-4.5", "4.5",
        "--float64", "--temperature", str(T), "--eps", "0.1", "--steps", "100", "--chains", "128",
        "--dataset", f"npz:{npz}", "--ladder", "", "--alpha-unit", "1", "--alpha", "1", "--max-steps", "400",
        "--patience", "100", "--attempts", "2", "--neighbours", "4", "--no-refine", "--out", out, "--quiet",
    )
    assert code == 0, err
    code, stdout, err = run(capsys, "diagnose", out)
    assert code == 0, err
    assert "spurious: 1 of 5 minima" in stdout and "1 off the data" in stdout
    report = tmp_path / "hole_diagnosis.html"
    assert report.read_text().startswith("<!DOCTYPE html>")
    c = read_map(out)
    assert int(c.diagnosis.spurious.sum()) == 1 and c.diagnosis.attrs["dataset"] == f"npz:{npz}"
    code, stdout, err = run(capsys, "info", out)
    assert code == 0, err
    assert "diagnosis 1 of 5 minima spurious (1 off the data)" in stdout
    # An existing report is kept without --force; with it, JSON.
    code, _, err = run(capsys, "diagnose", out)
    assert_one_line_error(code, err, "exists: pass --force")
    code, stdout, err = run(capsys, "diagnose", out, "--force", "--json")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["spurious"] == 1 and result["flagged"][0]["reasons"] == ["off the data"]
    # Its stages' progress (here in a log, a line at every redraw), none with --quiet.
    monkeypatch.setattr(bars, "LOG_EVERY", 0.0)
    code, _, err = run(capsys, "diagnose", out, "--force")
    assert code == 0, err
    lines = err.splitlines()
    assert any(line.startswith("energies of the training examples: 100%") and "400/400" in line for line in lines)
    assert any(line.startswith("nearest training examples") and "405/405" in line for line in lines)
    code, _, err = run(capsys, "diagnose", out, "--force", "--quiet")
    assert code == 0 and err == ""
    monkeypatch.undo()
    # A diagnosis that fails at its last step (the report cannot be written) leaves the map
    # as it was: /diagnosis is written last.
    before = out.read_bytes()
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    code, _, err = run(capsys, "diagnose", out, "--force", "--report", blocker / "r.html")
    assert_one_line_error(code, err, "not_a_folder is a file, not a folder")
    assert out.read_bytes() == before
    # Data of the wrong shape: one line.
    code, _, err = run(capsys, "diagnose", out, "--dataset", "digits", "--force")
    assert_one_line_error(code, err, r"shape \[1, 8, 8\].*\[2\]")


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    from landscape.cli.errors import run_guarded
    from landscape.cli.main import cli

    folder = tmp_path_factory.mktemp("ckpts")
    paths = []
    for k in (1, 2):
        path = folder / f"d{k}.pt"
        code = run_guarded(cli, ["train", "--preset", "digits-nonconvergent", "--out", str(path), "--seed", str(k),
                                 "--set", "model.kwargs.hidden=[16]", *TINY])
        assert code == 0
        paths.append(path)
    out = folder / "d1.h5"
    code = run_guarded(cli, ["map", str(paths[0]), "--chains", "8", "--steps", "5", "--ladder", "", "--no-refine",
                             "--max-steps", "100", "--patience", "20", "--attempts", "1", "--neighbours", "2",
                             "--out", str(out), "--quiet"])
    assert code == 0
    return paths[0], paths[1], out


@pytest.mark.slow
def test_a_map_of_another_model_and_a_moved_model_get_clear_errors(capsys, tmp_path, two_checkpoints):
    d1, d2, mapped = two_checkpoints
    m = tmp_path / "d1.h5"
    shutil.copy(mapped, m)
    code, _, err = run(capsys, "funnel", d2, "--map", m, "--quiet")
    assert_one_line_error(code, err, "was made from another model")
    code, _, err = run(capsys, "diagnose", m, "--model-file", d2)
    assert_one_line_error(code, err, "was made from another model")
    # --model names a Python network; a checkpoint goes as --model-file.
    code, _, err = run(capsys, "diagnose", m, "--model", f"{d2}:Net")
    assert_one_line_error(code, err, "--model-file")
    before = m.read_bytes()
    # The record names the checkpoint by its absolute path, in a folder that is neither
    # this one nor the map's: a map's record is never followed there.
    record = json.loads(json.dumps(read_map(m).meta.source))
    assert record["path"] == str(d1) and not d1.resolve().is_relative_to(tmp_path.resolve())
    code, _, err = run(capsys, "diagnose", m, "--report", tmp_path / "r0.html")
    assert_one_line_error(code, err, "lies outside this folder and the map's .links followed., where a map's record is "
                                     "not followed")
    assert m.read_bytes() == before
    # Sent together with the map (beside it, same sha256), it is found; digits data are on board.
    beside = tmp_path / d1.name
    shutil.copy(d1, beside)
    code, stdout, err = run(capsys, "diagnose", m, "--report", tmp_path / "r.html")
    assert code == 0, err
    assert read_map(m).diagnosis.spurious.shape == (read_map(m).n_minima,)
    # A moved checkpoint: say where it is; given, it is checked and used.
    moved = tmp_path / "elsewhere.pt"
    beside.rename(moved)
    code, _, err = run(capsys, "diagnose", m, "--report", tmp_path / "r2.html")
    assert_one_line_error(code, err, "lies outside this folder and the map's")
    # Nor is it found where the record says any more: the error says so.
    gone = tmp_path / "gone.h5"
    shutil.copy(m, gone)
    with h5py.File(gone, "r+") as f:
        f.attrs["source"] = json.dumps({**record, "path": str(tmp_path / "gone" / d1.name)})
    code, _, err = run(capsys, "diagnose", gone, "--report", tmp_path / "r3.html")
    assert_one_line_error(code, err, "is not found beside the map or in this folder: give it")
    code, _, err = run(capsys, "diagnose", m, "--model-file", moved, "--report", tmp_path / "r2.html")
    assert code == 0, err
    assert m.read_bytes() != before  # the diagnosis was written into the map
    # The model the map records, trained further since: not "another model".
    kept = d1.read_bytes()  # (the fixture's, shared: restored below)
    trained = torch.load(d1, weights_only=True)
    trained["step"] += 1
    torch.save(trained, d1)
    try:
        code, _, err = run(capsys, "funnel", d1, "--map", m, "--quiet")
    finally:
        d1.write_bytes(kept)
    assert_one_line_error(code, err, rf"^error: {d1} changed since {m} was made of it \(sha256 differs: trained further\?\): "
                                     rf"map it again \(landscape map {d1} --force\)$")
