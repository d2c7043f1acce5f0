"""Reading maps back: the diagnosis rule as JSON (old maps' Python text still read, never
run), `funnel --json` saying it removed a stale diagnosis, `map_profile` without torch,
read_map's error while a map is being made, and the records' docstring on float64 maps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict

import h5py
import numpy as np
import pytest

from conftest import assert_one_line_error, image_content, run, save
from landscape.errors import LandscapeError
from landscape.io.mapfile import read_map, update_map
from landscape.io.records import DiagnosisData, MapContent

# The /diagnosis attr `rule` as maps written before it was JSON hold it.
OLD_RULE = ("{'nn_quantile': 0.99, 'nn_factor': 1.5, 'energy_quantile': 0.5, 'saturation_excess': 0.5, "
            "'funnel_score': 0.5}")


# ------------------------------------------------------------ the diagnosis rule


def test_the_diagnosis_rule_is_written_as_json(tmp_path, make_map):
    from landscape.diagnosis.spurious import DiagnosisRule, diagnose

    data = np.array([[0.0], [0.1], [0.2], [0.3]])
    rule = DiagnosisRule(nn_quantile=0.9, nn_factor=2.0)
    d = diagnose(np.array([[0.15], [5.0]]), np.array([0.0, -1.0]), data, np.zeros(4), rule=rule)
    attrs = d.to_data("points").attrs
    assert json.loads(attrs["rule"]) == asdict(rule)
    # ... and so it is in the file, read with plain h5py, and read back
    c = make_map(np.zeros((2, 1)), [-1.0, 0.0], source={"kind": "function", "spec": "m:f"}, config={})
    path = save(tmp_path, c)
    update_map(path, diagnosis=d.to_data("points"))
    with h5py.File(path, "r") as f:
        assert json.loads(f["diagnosis"].attrs["rule"]) == asdict(rule)
    assert read_map(path).diagnosis.rule() == asdict(rule)


def test_a_map_with_the_old_python_text_of_the_rule_still_reads_and_is_never_run(tmp_path, make_map):
    from landscape.io.records import parse_rule

    c = image_content(make_map, diagnosis=True)
    path = save(tmp_path, c)
    with h5py.File(path, "r+") as f:
        f["diagnosis"].attrs["rule"] = OLD_RULE
    back = read_map(path)
    expected = {"nn_quantile": 0.99, "nn_factor": 1.5, "energy_quantile": 0.5, "saturation_excess": 0.5,
                "funnel_score": 0.5}
    assert back.diagnosis.rule() == expected
    assert json.loads(back.diagnosis.attrs["rule"]) == expected  # (read as JSON text, as a new map's)
    # Written again (a diagnosis read back and stored), it is JSON in the file.
    update_map(path, diagnosis=back.diagnosis)
    with h5py.File(path, "r") as f:
        assert json.loads(f["diagnosis"].attrs["rule"]) == expected
    # Text that is not a literal is not run: it reads as no rule, and the map still opens.
    marker = tmp_path / "ran"
    code = f"open({str(marker)!r}, 'w').write('x')"
    with h5py.File(path, "r+") as f:
        f["diagnosis"].attrs["rule"] = code
    back = read_map(path)
    assert back.diagnosis.rule() is None and not marker.exists()
    assert parse_rule("__import__('os').getcwd()") is None and parse_rule("[1, 2]") is None
    assert parse_rule('{"nn_factor": 2}') == {"nn_factor": 2} == parse_rule("{'nn_factor': 2}")
    assert DiagnosisData(np.zeros(1, bool), np.ones(1)).rule() is None  # (not recorded)


# --------------------------------------------------- funnel --json and the diagnosis


def test_funnel_json_says_whether_it_removed_the_map_s_diagnosis(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # One exploration chain: one minimum of the three, so the probe's chains find the others.
    code, _, err = run(capsys, "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box",
                       "-1.5", "2", "--float64", "--chains", "1", "--rounds", "1", "--quiet", "--out", "one.h5")
    assert code == 0, err
    n = read_map("one.h5").n_minima
    update_map("one.h5", diagnosis=DiagnosisData(np.zeros(n, bool), np.ones(n)))
    probe = ["funnel", "one.h5", "--chains", "4", "--steps", "20", "--noise", "0,1", "--plot", "f.png"]
    code, out, err = run(capsys, *probe, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["new_minima"] > 0 and data["diagnosis_removed"] is True
    assert err.strip() == ""  # (quiet: the JSON says it)
    assert read_map("one.h5").diagnosis is None
    # No diagnosis to remove: false (and the text, without --json, says nothing of one).
    code, out, err = run(capsys, *probe, "--json", "--force")
    assert code == 0, err
    assert json.loads(out)["diagnosis_removed"] is False
    # A probe run again (--force) that adds no minima removes a diagnosis too: its funnel
    # sinks were the old probe's (it was kept, and `info` went on naming those sinks).
    n = read_map("one.h5").n_minima
    update_map("one.h5", diagnosis=DiagnosisData(np.zeros(n, bool), np.ones(n)))
    code, out, err = run(capsys, *probe, "--force")
    assert code == 0, err
    assert "the map's diagnosis was made before this probe (its funnel sinks) and was removed" in out, out
    again = read_map("one.h5")
    assert again.n_minima == n and again.diagnosis is None and again.funnel is not None


# ------------------------------------------------------------ map_profile, no torch


def test_map_profile_reads_a_map_without_torch(tmp_path, make_map):
    from landscape.diagnosis.compare import compare_profiles, json_safe, map_profile

    c = image_content(make_map, diagnosis=True, funnel=True)
    c.funnel.attrs["funnel_threshold"] = 0.5  # (as every probe records it)
    c.diagnosis.reasons = np.where(c.diagnosis.spurious, 1, 0).astype(np.uint8)
    path = save(tmp_path, c)
    expected = json_safe(map_profile(read_map(path)))
    rows = [list(r) for r in compare_profiles(map_profile(read_map(path)), map_profile(read_map(path)))]
    script = (
        "import json, sys\n"
        "sys.modules['torch'] = None  # (a machine without torch: importing it fails)\n"
        "import landscape\n"
        "from landscape.diagnosis.compare import compare_profiles, json_safe\n"
        f"p = landscape.map_profile(landscape.read_map({str(path)!r}))\n"
        "print(json.dumps({'profile': json_safe(p), 'rows': [list(r) for r in compare_profiles(p, p)],\n"
        "                  'torch': 'torch' in sys.modules and sys.modules['torch'] is not None}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["torch"] is False
    assert got["profile"] == json.loads(json.dumps(expected))
    assert got["rows"] == rows
    assert got["profile"]["diagnosis"]["reasons"] == {"off the data": 1, "saturated": 0, "funnel sink": 0}
    assert got["profile"]["funnel"]["threshold"] == 0.5


# ------------------------------------------------------ read_map while a map is made


def test_read_map_says_a_map_is_being_made_where_only_its_progress_is(tmp_path, capsys):
    from landscape.io.progress import save_progress

    path = tmp_path / "slow.h5"
    with pytest.raises(LandscapeError) as caught:
        read_map(path)
    assert str(caught.value) == f"no map file at {path}"  # (nothing there at all: as before)
    save_progress(path, {"fingerprint": "f", "stage": "minima"})
    with pytest.raises(LandscapeError) as caught:
        read_map(path)
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"no map file at {path}")
    assert f"{path}.partial" in message and "being made" in message
    assert f"landscape info {path}.partial" in message
    code, out, err = run(capsys, "tree", path)
    assert_one_line_error(code, err, rf"being made.*landscape info {path}\.partial")
    assert out == ""


# ------------------------------------------------------------------- the records


def test_the_records_say_a_float64_map_keeps_its_points_in_float64(tmp_path, make_map):
    doc = " ".join(MapContent.__doc__.split())
    assert "minima_x : float32 or float64" in doc and "tree_path : float32 or float64" in doc
    assert "small minima" not in doc and "20 million numbers" in doc
    # (and so they do)
    c = make_map(np.array([[0.0, 0.5], [1.0 + 1e-12, 0.0]]), [-1.0, 0.0], source={"kind": "function"}, config={})
    c.minima_x = np.array([[0.0, 0.5], [1.0 + 1e-12, 0.0]], dtype=np.float64)
    assert read_map(save(tmp_path, c)).minima_x.dtype == np.float64


def test_strings_from_files_reach_the_terminal_without_their_escape_sequences(tmp_path, capsys, make_map):
    # (a checkpoint's `created` or a map's tool version printed as they were: a window
    # title set, the screen cleared, a forged line "FAKE: all good")
    import corpus
    from conftest import run, save, wells_content

    evil = "\x1b]0;PWNED\x07\x1b[2J\x1b[31mFAKE\x1b[0m\nforged line"
    ckpt = corpus.write_checkpoint(tmp_path / "c.pt", {**corpus.valid_checkpoint(), "created": evil})
    content = wells_content(make_map, paths=False, grid=False)
    content.meta.source = {"kind": "function", "spec": evil, "shape": [2], "box": [-2.0, 2.0], "dtype": "float64"}
    path = save(tmp_path, content)
    for argv in (["info", ckpt], ["info", path], ["tree", path]):
        code, out, err = run(capsys, *argv)
        assert code == 0, err
        assert "\x1b" not in out and "\x07" not in out, argv
        assert not any(line.startswith("forged") for line in out.splitlines()), argv
        assert "\\x1b]0;PWNED\\x07" in out, argv  # (written out, so still there to see)
    # an error quoting a file's string is one line with the escapes written out too
    code, _, err = run(capsys, "diagnose", path)
    assert code == 1 and "\x1b" not in err and len(err.strip().splitlines()) == 1, err


def test_free_memory_counts_the_process_s_own_limits(tmp_path, monkeypatch):
    # (under `ulimit -v 4000000` the bombs ended in "unexpected MemoryError": the free memory
    # was the machine's, 22 GB, not the 4 GB the process may use)
    import builtins
    import io

    from landscape import checks

    script = ("import resource; from landscape import checks; "
              "resource.setrlimit(resource.RLIMIT_AS, (6 << 30, resource.RLIM_INFINITY)); "
              "print(checks.available_memory())")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    assert int(out) < 6 << 30
    # a cgroup limit: its page cache's inactive files count free
    files = {"/sys/fs/cgroup/memory.max": "8000000000\n", "/sys/fs/cgroup/memory.current": "7000000000\n",
             "/sys/fs/cgroup/memory.stat": "anon 4000000000\ninactive_file 2000000000\n"}
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda name, *a, **k: io.StringIO(files[name]) if name in files
                        else real_open(name, *a, **k))
    assert checks._cgroup_memory_left() == 3_000_000_000
    assert checks.available_memory() <= 3_000_000_000


def test_a_file_of_more_tensors_than_any_network_holds_is_refused_before_it_is_unpickled(tmp_path, monkeypatch,
                                                                                       capsys):
    # (200,000 empty tensors in a state dict took 27 s to unpickle, twice for `info`)
    import torch

    from landscape.io import files

    monkeypatch.setattr(files, "MAX_TENSORS", 8)
    path = tmp_path / "many.pt"
    torch.save({f"k{i}": torch.zeros(1) for i in range(9)}, path)
    code, _, err = run(capsys, "info", path)
    assert_one_line_error(code, err, r"many.pt: holds 9 tensors, more than the 8 a checkpoint is read with")
    torch.save({f"k{i}": torch.zeros(1) for i in range(8)}, path)
    assert len(files.load_torch(path, "state dict")) == 8
