"""`landscape map` end to end: maps from a function and from a checkpoint, bad input."""

from __future__ import annotations

import json
import os
import re
import h5py
import torch
import numpy as np
import pytest

from landscape.io.mapfile import read_map
from landscape.io.progress import progress_path
from conftest import TINY, assert_one_line_error, run

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
    """The four wells at the map's own defaults (fewer chains and shorter trials)."""
    return run(
        capsys, "map", "--energy", f"{wells_file}:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64",
        "--chains", "32", "--out", out, "--quiet", *FAST_AD, *extra,
    )


@pytest.mark.slow
def test_map_of_a_function_finds_the_four_wells_and_writes_the_schema(capsys, wells_file, tmp_path):
    out = tmp_path / "wells.h5"
    code, stdout, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    assert "4 minima" in stdout and "tree: 3 of 3 merges at refined barriers" in stdout
    assert "\nbasins per pull (alpha units): 0.03: 4, " in stdout  # (no basin joined, no level nested)
    c = read_map(out)
    np.testing.assert_allclose(np.sort(np.abs(c.minima_x).ravel()), 1.0, atol=0.15)
    assert c.meta.source["kind"] == "function"
    # Settings left open are recorded as open (null) in config and as chosen in settings.
    assert c.meta.config["ad_temperature"] is None and c.meta.extra["settings"]["ad_temperature"] > 0
    assert c.meta.extra["settings"]["temperature"] == 0  # an energy of unknown scale: quenched starts
    assert c.grid is not None and bool(c.tree.refined.all())
    # Every level of the ladder is stored; the strongest pull leaves one basin.
    assert [p.multiplier for p in c.levels][:5] == [0.03, 0.1, 0.3, 1.0, 3.0]
    assert c.levels[-1].n_basins == 1 and c.partition.multiplier == 0.1
    with h5py.File(out, "r") as f:  # as a third-party tool reads it
        assert f.attrs["schema"] == "ebm-landscape/map" and f.attrs["schema_version"] == 2
        assert f["tree/linkage"].shape == (3, 4)
        assert f["minima/x"].dtype == np.float64  # (a map made in float64 keeps its points in float64)
        assert "description" in f["barriers/refined"].attrs
    assert not progress_path(out).exists()
    # An existing map is not overwritten without --force.
    code, _, err = map_wells(capsys, wells_file, out)
    assert_one_line_error(code, err, "exists: pass --force")
    code, _, err = map_wells(capsys, wells_file, out, "--force", "--string-steps", "300", "--climb-steps", "0")
    assert code == 0, err
    config = read_map(out).meta.config
    assert (config["refine_steps"], config["refine_climb_steps"]) == (300, 0)


def test_the_command_defaults_are_the_python_api_defaults():
    # One settings policy: every option of `landscape map` that sets a MapConfig field
    # defaults to that field's default (auto settings: None in both).
    import dataclasses

    from landscape.cli.map_cmd import map_cmd
    from landscape.mapping.settings import MapConfig

    config = MapConfig()
    field = {"ad_average": "average", "string_steps": "refine_steps", "climb_steps": "refine_climb_steps"}
    names = {f.name for f in dataclasses.fields(MapConfig)}
    checked = set()
    for p in map_cmd.params:
        name = field.get(p.name, p.name)
        if name not in names:
            continue
        default = p.default
        if name == "ladder":
            default = tuple(float(v) for v in default.split(","))
        elif default == "auto":
            default = None
        assert default == getattr(config, name), p.name
        checked.add(name)
    assert {"refine_steps", "refine_climb_steps", "neighbours", "chains", "ladder"} <= checked


@pytest.mark.slow
def test_the_command_and_the_python_api_give_the_same_map(capsys, wells_file, tmp_path):
    from landscape import Energy, MapConfig, build_map
    from landscape.io.sources import energy_from_function

    out = tmp_path / "wells.h5"
    code, _, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    c = read_map(out)
    energy = energy_from_function(f"{wells_file}:wells", (2,), (-1.6, 1.6), dtype=torch.float64)
    assert isinstance(energy, Energy)
    api = build_map(energy, MapConfig(chains=32, max_steps=600, patience=100, attempts=2, neighbours=3)).content
    np.testing.assert_allclose(api.minima_energy, c.minima_energy, rtol=1e-9)
    np.testing.assert_allclose(api.tree.heights, c.tree.heights, rtol=1e-9)
    assert [p.n_basins for p in api.levels] == [p.n_basins for p in c.levels]


@pytest.mark.slow
def test_map_of_a_checkpoint_uses_its_data_and_sampler(capsys, tmp_path):
    ckpt = tmp_path / "rings.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", ckpt, "--set", "model.kwargs.n_f=8", *TINY)
    assert code == 0, err
    out = tmp_path / "rings.h5"
    code, stdout, err = run(
        capsys, "map", ckpt, "--chains", "16", "--steps", "20", "--ladder", "1", "--ladder-extend", "0",
        "--ladder-refine", "0", "--out", out, "--quiet", *FAST_AD
    )
    assert code == 0, err
    c = read_map(out)
    assert c.meta.source["kind"] == "checkpoint" and c.meta.source["dataset"] == "rings"
    settings = c.meta.extra["settings"]
    assert settings["init"] == "both" and settings["eps"] == pytest.approx(0.125)
    # The checkpoint's own sampling temperature, for exploration and attraction-diffusion.
    assert settings["temperature"] == 1.0 and settings["ad_temperature"] == 1.0
    assert c.attrs["minima"]["data_range"] == pytest.approx([-4.6, 4.6], abs=1.0)
    assert [p.multiplier for p in c.levels] == [0.1, 1.0]  # the main level joins the ladder
    # From Python as the README shows it: the map the command made
    from landscape import MapConfig, build_map
    from landscape.data import load
    from landscape.energy import use_cpu_threads
    from landscape.train.checkpoint import energy_from_checkpoint

    energy, saved = energy_from_checkpoint(ckpt)
    use_cpu_threads(energy.fn, energy.device)
    config = MapConfig(chains=16, steps=20, ladder=(1.0,), ladder_extend=0, ladder_refine=0, max_steps=600,
                       patience=100, attempts=2, neighbours=3)
    api = build_map(energy, config, data=load(saved["data"]["name"], size=saved["data"]["shape"][-1]).x).content
    np.testing.assert_array_equal(api.minima_x, c.minima_x)
    np.testing.assert_array_equal(api.tree.heights, c.tree.heights)
    assert [p.basin.tolist() for p in api.levels] == [p.basin.tolist() for p in c.levels]


@pytest.mark.parametrize("known_before", [True, False])
def test_minima_of_a_flat_floor_are_placed_where_they_drain(capsys, tmp_path, monkeypatch, known_before):
    # A flat floor: its points drain into one another with no barrier along the straight
    # lines, so attraction-diffusion places them where they drain, without trials. Where
    # that is not known before it (as where only the refinement shows it), its weak pull
    # leaves parts of the floor apart, which are joined afterwards (the ladder's own line
    # said 2 basins or more), and the basins per pull say so.
    from landscape.mapping import ad

    if not known_before:
        monkeypatch.setattr(ad, "_drain_ends", lambda *args: {})
    pot = tmp_path / "floor.py"
    pot.write_text("import torch\n\ndef floor(x):\n    return torch.relu(torch.linalg.vector_norm(x, dim=1) - 1.0) ** 2\n")
    code, stdout, err = run(capsys, "map", "--energy", f"{pot}:floor", "--shape", "2", "--box", "-2", "2", "--float64",
                            "--chains", "32", "--rounds", "1", "--max-steps", "400", "--patience", "50", "--attempts",
                            "1", "--alpha", "0.03", "--ladder", "0.03", "--ladder-extend", "0", "--ladder-refine", "0",
                            "--out", tmp_path / "f.h5")
    assert code == 0, err
    level = read_map(tmp_path / "f.h5").levels[0]
    n = level.basin.size
    assert n > 10 and level.n_basins == 1
    if known_before:
        assert level.attrs["drain_placed"] == n - 1 and level.attrs["trials"] == 0 and level.attrs["drained"] == 0
        assert f"{n - 1} of {n} minima drain into lower ones with no barrier along the paths known: placed" in stdout
        assert "\nbasins per pull (alpha units): 0.03: 1\n" in stdout  # (nothing left to join)
    else:
        assert level.attrs["drain_placed"] == 0 and level.attrs["trials"] > 0 and level.attrs["drained"] > 0
        assert "\nbasins per pull (alpha units; drained basins joined): 0.03: 1\n" in stdout


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
    assert_one_line_error(code, err, r"\.partial")


@pytest.mark.slow
def test_info_describes_a_map(capsys, wells_file, tmp_path):
    out = tmp_path / "wells.h5"
    code, _, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    code, stdout, err = run(capsys, "info", out)
    assert code == 0, err
    assert "4 minima" in stdout and "function" in stdout and "3 merges: 3 at refined barriers" in stdout
    code, stdout, _ = run(capsys, "info", out, "--json")
    assert code == 0 and '"kind": "function"' in stdout


NAN_WELLS = """
import torch

def wells(x):
    u = ((x ** 2 - 1) ** 2).sum(1)
    return torch.where(x[:, 0] > 0.5, torch.full_like(u, float("nan")), u)
"""


@pytest.mark.slow
def test_nan_energies_end_in_one_line_and_leave_an_existing_map_alone(capsys, tmp_path, wells_file):
    out = tmp_path / "wells.h5"
    code, _, err = map_wells(capsys, wells_file, out)
    assert code == 0, err
    before = out.read_bytes()
    bad = tmp_path / "nan.py"
    bad.write_text(NAN_WELLS)
    code, _, err = run(
        capsys, "map", "--energy", f"{bad}:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64",
        "--chains", "16", "--out", out, "--force", "--quiet", *FAST_AD,
    )
    assert_one_line_error(code, err, "non-finite")
    assert out.read_bytes() == before


@pytest.mark.slow
def test_a_missing_data_set_says_how_to_map_without_it(capsys, tmp_path, wells_file, monkeypatch):
    monkeypatch.setenv("EBM_LANDSCAPE_DATA", str(tmp_path / "nowhere"))
    code, _, err = map_wells(capsys, wells_file, tmp_path / "m.h5", "--dataset", "mnist", "--init", "noise")
    assert code == 0, err  # noise-only maps need no data
    code, _, err = run(
        capsys, "map", "--energy", f"{wells_file}:wells", "--shape", "2", "--box", "-1.6", "1.6",
        "--dataset", "mnist", "--quiet",
    )
    assert_one_line_error(code, err, "--init noise")


SLOW_WELLS = WELLS + """
import os, time

def slow_wells(x):
    time.sleep(float(os.environ.get("WELLS_SLEEP", "0")))  # (0.002 s a call: the map runs for seconds)
    return wells(x)
"""


@pytest.mark.slow
def test_sigterm_stops_a_map_as_ctrl_c_does_and_it_resumes_to_the_same_map(tmp_path, capsys):
    # A batch system's time limit sends SIGTERM: the map keeps its progress, says how to
    # continue, exits 143; --resume finishes it, the map an uninterrupted run makes.
    import shutil
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    (tmp_path / "pot.py").write_text(SLOW_WELLS)
    landscape = shutil.which("landscape", path=str(Path(sys.executable).parent))
    args = [landscape, "map", "--energy", f"{tmp_path / 'pot.py'}:slow_wells", "--shape", "2", "--box", "-1.6", "1.6",
            "--float64", "--chains", "32", "--quiet", *FAST_AD]
    out = tmp_path / "m.h5"
    proc = subprocess.Popen([*args, "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "WELLS_SLEEP": "0.002"})  # (slowed, to be stopped part-way)
    partial = tmp_path / "m.h5.partial"
    deadline = time.time() + 120
    while time.time() < deadline and not partial.exists() and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143, stderr
    assert "progress kept in" in stderr and "--resume" in stderr and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "error: terminated (SIGTERM)"
    assert partial.exists() and not out.exists()
    code, _, err = run(capsys, *args[1:], "--out", out, "--resume")  # (the rest in this process, at full speed)
    assert code == 0, err
    code, _, err = run(capsys, *args[1:], "--out", tmp_path / "whole.h5")
    assert code == 0, err
    a, b = read_map(out), read_map(tmp_path / "whole.h5")
    np.testing.assert_array_equal(a.minima_x, b.minima_x)
    np.testing.assert_array_equal(a.tree.heights, b.tree.heights)
    assert [p.basin.tolist() for p in a.levels] == [p.basin.tolist() for p in b.levels]


def test_a_network_mapped_without_weights_is_said_to_keep_its_factory_s(tmp_path, capsys):
    (tmp_path / "nets.py").write_text(
        "import torch\n"
        "class Net(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        self.f = torch.nn.Linear(2, 1)\n"
        "    def forward(self, x):\n"
        "        return (x ** 2).sum(1) + self.f(x).squeeze(1)\n"
    )
    torch.save(torch.nn.Linear(2, 1).state_dict(), tmp_path / "w.pt")
    small = ["--shape", "2", "--box", "-1", "1", "--chains", "8", "--ladder", "", "--no-refine", "--max-steps", "50",
             "--patience", "10", "--attempts", "1", "--neighbours", "1"]
    code, out, err = run(capsys, "map", "--model", f"{tmp_path / 'nets.py'}:Net", *small, "--out", tmp_path / "a.h5")
    assert code == 0, err
    assert f"no --weights given: {tmp_path / 'nets.py'}:Net keeps the weights its factory gave it" in out + err
    state = {f"f.{k}": v for k, v in torch.load(tmp_path / "w.pt").items()}
    torch.save(state, tmp_path / "w.pt")
    code, out, err = run(capsys, "map", "--model", f"{tmp_path / 'nets.py'}:Net", "--weights", tmp_path / "w.pt",
                         *small, "--out", tmp_path / "b.h5")
    assert code == 0, err
    assert "no --weights" not in out + err


def test_a_map_made_again_drops_the_unfinished_probe_of_the_map_it_replaces(tmp_path, capsys):
    from landscape.io.progress import save_progress

    out = tmp_path / "w.h5"
    small = ["map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "-1.5", "2",
             "--float64", "--chains", "16", "--ladder", "", "--no-refine", "--max-steps", "100", "--patience", "20",
             "--attempts", "1", "--neighbours", "2", "--out", out, "--quiet"]
    code, _, err = run(capsys, *small)
    assert code == 0, err
    save_progress(out, {"levels_done": 1}, kind="funnel")  # a probe of this map, stopped part-way
    assert progress_path(out, "funnel").exists()
    code, _, err = run(capsys, *small, "--force", "--seed", "3")
    assert code == 0, err
    assert not progress_path(out, "funnel").exists()  # (its --resume would have refused the new map's probe)


def test_a_map_piped_into_a_reader_that_stops_early_still_writes_its_file(tmp_path):
    # `landscape map ... | head -1`: the pipe closes after the first line; the map goes on.
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    landscape = shutil.which("landscape", path=str(Path(sys.executable).parent))
    out = tmp_path / "m.h5"
    proc = subprocess.Popen([landscape, "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2",
                             "--box", "-1.5", "2", "--float64", "--chains", "32", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = proc.stdout.readline()
    proc.stdout.close()  # (what head does after its line)
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == 0, err
    assert first.startswith("mapping mueller_brown") and "Error" not in err
    assert read_map(out).n_minima == 3


def test_the_summary_says_how_many_merges_are_path_tops(capsys, tmp_path):
    # Strings stopped after 2 iterations: their tops are upper bounds, not saddle points, and
    # the summary called every merge "at refined saddles" without a word of it. (Two wells
    # joined by a valley that bends up to (0, 0.5): the straight segment between them, where
    # the strings start, crosses the valley's side, 0.5 above the saddle.)
    pot = tmp_path / "bent.py"
    pot.write_text("def bent(x):\n    return (x[:, 0] ** 2 - 1) ** 2 + 2 * (x[:, 1] - 0.5 * (1 - x[:, 0] ** 2)) ** 2\n")
    code, stdout, err = run(capsys, "map", "--energy", f"{pot}:bent", "--shape", "2", "--box", "-1.6", "1.6",
                            "--float64", "--chains", "32", "--out", tmp_path / "b.h5", "--quiet", *FAST_AD,
                            "--string-steps", "2", "--climb-steps", "0")
    assert code == 0, err
    assert re.search(r"tree: 1 of 1 merges at refined barriers \(0 at saddle points, 1 at path tops, upper bounds\)",
                     stdout), stdout


def test_a_data_set_given_by_a_relative_path_is_recorded_absolute(capsys, tmp_path, wells_file, monkeypatch):
    # `diagnose` and `funnel` read the map's data set again, perhaps from another folder.
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "pts.npz", x=np.random.default_rng(0).uniform(-1.5, 1.5, size=(50, 2)))
    out = tmp_path / "m.h5"
    code, _, err = map_wells(capsys, wells_file, out, "--dataset", "npz:pts.npz", "--init", "noise")
    assert code == 0, err
    assert read_map(out).attrs["minima"]["dataset"] == f"npz:{tmp_path / 'pts.npz'}"


def test_a_precision_warning_survives_quiet_and_is_kept_in_the_map(capsys, tmp_path):
    # The four wells moved to x = 1e6 in float32: coordinates there step by 0.0625.
    pot = tmp_path / "far.py"
    pot.write_text(WELLS + "\n\ndef far(x):\n    return wells(x - 1e6)\n")
    out = tmp_path / "far.h5"
    code, _, err = run(capsys, "map", "--energy", f"{pot}:far", "--shape", "2", "--box", "999998.4", "1000001.6",
                       "--chains", "16", "--out", out, "--quiet", *FAST_AD, "--ladder", "0.1", "--ladder-extend", "0")
    assert code == 0, err
    assert "warning: the box's coordinates near 1e+06 resolve steps of 0.062 in float32" in err
    code, said, _ = run(capsys, "info", out)
    assert code == 0 and "precision" in said and "map in float64 (--float64)" in said


def test_a_signal_while_the_map_is_written_waits_for_it(capsys, tmp_path, wells_file, monkeypatch):
    # A SIGTERM inside the write (h5py's clean-up callbacks drop a handler's exception: the
    # run went on and exited 0) is held until the map is written and its progress cleared.
    import signal

    from landscape.io import mapfile

    write = mapfile._write_content

    def interrupted(*args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        return write(*args, **kwargs)

    monkeypatch.setattr(mapfile, "_write_content", interrupted)
    out = tmp_path / "w.h5"
    code, _, err = map_wells(capsys, wells_file, out)
    assert code == 143 and err.strip() == "error: terminated (SIGTERM)", err
    assert read_map(out).n_minima == 4 and not progress_path(out).exists()


def test_a_map_says_whether_its_chains_found_all_the_minima_their_starts_lead_to_or_a_sample(tmp_path, capsys):
    # (16 chains among the 64 minima of 6-D tilted wells each found a minimum of their own, and
    # nothing said the map held a quarter of them; Mueller-Brown's 3 minima are each found by many)
    quick = ["--chains", "16", "--ladder", "", "--no-refine", "--max-steps", "100", "--patience", "20", "--attempts",
             "1", "--neighbours", "2"]
    code, out, err = run(capsys, "map", "--energy", "landscape.potentials:tilted_wells", "--shape", "6", "--box", "-2",
                         "2", *quick, "--out", tmp_path / "w.h5")
    assert code == 0, err
    assert re.search(r"\d+ minima from 16 chains; \d+ reached by one chain only \(whether more chains would find more "
                     r"states, `landscape info` says", out + err), out + err
    explored = next(line for line in out.splitlines() if line.startswith("explored: "))
    assert re.match(r"explored: 16 chains from uniform noise in the box: \d+ minima, \d+ reached by one chain only: a "
                    r"sample of the minima these starts lead to, not all of them", explored), explored
    code, out, err = run(capsys, "info", tmp_path / "w.h5", "--json")
    e = json.loads(out)["exploration"]
    assert e["chains"] == 16 and e["once"] >= 10 and e["found"] < e["estimated_minima"] <= 64 * 1.5, e
    code, out, err = run(capsys, "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box",
                         "-1.5", "2", "--float64", *quick, "--out", tmp_path / "mb.h5")
    assert code == 0, err
    assert "a sample" not in out + err and "explored: 32 chains from uniform noise in the box in 2 rounds: 3 minima, " \
        "each reached by" in out
    code, out, err = run(capsys, "info", tmp_path / "mb.h5")
    explored = next(line for line in out.splitlines() if line.startswith("explored"))
    assert re.match(r"explored  32 chains from uniform noise in the box in 2 rounds: 3 minima, each reached by \d+ "
                    "chains or more", explored), explored  # (a second round found nothing new)
    assert "about all the minima these starts lead to" in explored


def test_the_summary_counts_the_distinct_states_where_minima_drain_flat(capsys, tmp_path):
    # Two Gaussian wells on a flat plateau: quenches stop all over the plateau, each stop a
    # minimum found by one chain, which drains into a well with no barrier. The exploration's
    # note counted minima (a sample: more chains would find more); the summary counts states.
    pot = tmp_path / "plateau.py"
    pot.write_text("import torch\n\ndef plateau(x):\n"
                   "    return -torch.exp(-((x[:, 0] + 3) ** 2 + x[:, 1] ** 2) / 0.5)"
                   " - 1.5 * torch.exp(-((x[:, 0] - 3) ** 2 + x[:, 1] ** 2) / 0.5)\n")
    code, stdout, err = run(capsys, "map", "--energy", f"{pot}:plateau", "--shape", "2", "--box", "-5", "5",
                            "--float64", "--chains", "64", "--rounds", "1", "--no-refine", "--out", tmp_path / "p.h5",
                            "--quiet", *FAST_AD)
    assert code == 0, err
    first = stdout.splitlines()[0]
    n = int(first.split()[0])
    assert n > 10 and re.match(rf"{n} minima \(2 distinct states\), 2 basins at alpha 0.1 units", first), stdout
    explored = next(line for line in stdout.splitlines() if line.startswith("explored: "))
    assert f": {n} minima" in explored and "; 2 distinct states" in explored, explored
    assert "about all the states these starts lead to" in explored, explored
