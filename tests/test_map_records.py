"""A map is a file anyone may send: what its ``source`` record names is never imported,
run or followed outside the folders the user pointed at (``funnel`` and ``diagnose``
rebuild the energy of a map from that record)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch

from conftest import assert_one_line_error, run, save, wells_content
from landscape.train.checkpoint import sha256_of

#: Code that leaves a marker file if it is ever imported or called.
EVIL = """
from pathlib import Path
Path({marker!r}).write_text("ran")

def f(x):
    Path({marker!r}).write_text("ran")
    return x.sum(1)

class Net:
    def __init__(self, **kwargs):
        Path({marker!r}).write_text("ran")
"""

#: The energy of ``wells_content`` (conftest.wells_energy) in torch, for the user to name.
WELLS = """
import torch

CENTRES = torch.tensor([[-1.0, -0.3], [0.9, -0.1], [0.1, 1.1]], dtype=torch.float64)
DEPTHS = torch.tensor([3.0, 2.2, 1.8], dtype=torch.float64)

def wells(x):
    c, d = CENTRES.to(x.dtype), DEPTHS.to(x.dtype)
    d2 = ((x[:, None, :] - c) ** 2).sum(-1)
    return 0.1 * (x ** 2).sum(-1) - (d * torch.exp(-d2 / 0.245)).sum(-1)

def tilted(x):
    return wells(x) + 0.05 * x[:, 0]
"""


class _Payload:
    """A pickle that runs a command when unpickled without weights_only."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _torchscript(path: Path) -> Path:
    class Quadratic(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x**2).sum(1)

    torch.jit.save(torch.jit.script(Quadratic()), str(path))
    return path


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """The map's folder (also the current one), a folder elsewhere, the marker path and an
    importable module of hostile code in the current folder and on sys.path."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    marker = tmp_path / "MARKER"
    (here / "evilmod.py").write_text(EVIL.format(marker=str(marker)))
    (here / "landscape.potentials:evil.py").write_text(EVIL.format(marker=str(marker)))
    (elsewhere / "evil.py").write_text(EVIL.format(marker=str(marker)))
    monkeypatch.chdir(here)
    monkeypatch.syspath_prepend(str(here))
    monkeypatch.delitem(sys.modules, "evilmod", raising=False)
    return here, elsewhere, marker


def _records(here: Path, elsewhere: Path, marker: Path) -> dict[str, tuple[dict, str]]:
    """Hostile or unusable records, each with the pattern of its one-line refusal."""
    geometry = {"shape": [2], "box": [-2.0, 2.0], "dtype": "float64"}
    script = _torchscript(elsewhere / "script.pt")
    beside_script = _torchscript(here / "disguised.pt")
    pickled = here / "payload.pt"
    torch.save({"format": "ebm-landscape-checkpoint", "state_dict": _Payload(marker)}, pickled)
    outside = elsewhere / "model.pt"
    outside.write_bytes(beside_script.read_bytes())
    link = here / "link.pt"
    link.symlink_to(outside)
    return {
        "os.system as a function": ({"kind": "function", "spec": "os:system", **geometry}, "--energy"),
        "a .py path elsewhere": ({"kind": "function", "spec": f"{elsewhere / 'evil.py'}:f", **geometry}, "--energy"),
        "a module in this folder": ({"kind": "function", "spec": "evilmod:f", **geometry}, "--energy"),
        # (a file in this folder named so that the spec reads as one of our own potentials)
        "a file named as our own potentials": (
            {"kind": "function", "spec": "landscape.potentials:evil.py:f", **geometry}, "--energy"
        ),
        "a private helper of our potentials": (
            {"kind": "function", "spec": "landscape.potentials:_constants", **geometry}, "--energy"
        ),
        "os.system as a network": (
            {"kind": "model", "spec": "os:system", "kwargs": {"command": f"touch {marker}"}, **geometry}, "--model"
        ),
        "a network from a .py path": ({"kind": "model", "spec": f"{elsewhere / 'evil.py'}:Net", **geometry}, "--model"),
        "a TorchScript file": (
            {"kind": "torchscript", "path": str(script), "sha256": sha256_of(script), **geometry}, "which is code"
        ),
        "TorchScript recorded as a checkpoint": (
            {"kind": "checkpoint", "path": str(beside_script), "sha256": sha256_of(beside_script)},
            "TorchScript file .*refused",
        ),
        "a pickled payload": ({"kind": "checkpoint", "path": str(pickled), "sha256": sha256_of(pickled)}, "asks to run code"),
        "a path outside both folders": (
            {"kind": "checkpoint", "path": str(outside), "sha256": sha256_of(outside)},
            "lies outside this folder and the map's",
        ),
        "a link out of the map's folder": (
            {"kind": "checkpoint", "path": "link.pt", "sha256": sha256_of(outside)},
            "lies outside this folder and the map's",
        ),
        "no sha256": ({"kind": "checkpoint", "path": str(beside_script)}, "does not record the sha256"),
        "an unknown kind": ({"kind": "plugin", "spec": "os:system"}, "unknown kind"),
        "a shape that is not a shape": ({"kind": "function", "spec": "os:system", "shape": "rm -rf"}, "shape"),
    }


CASES = [
    "os.system as a function", "a .py path elsewhere", "a module in this folder", "a file named as our own potentials",
    "a private helper of our potentials", "os.system as a network",
    "a network from a .py path", "a TorchScript file", "TorchScript recorded as a checkpoint", "a pickled payload",
    "a path outside both folders", "a link out of the map's folder", "no sha256", "an unknown kind",
    "a shape that is not a shape",
]


@pytest.mark.parametrize("command", ["funnel", "diagnose"])
@pytest.mark.parametrize("case", CASES)
def test_a_hostile_record_runs_nothing_and_leaves_the_map_as_it_was(capsys, make_map, folders, command, case):
    here, elsewhere, marker = folders
    record, pattern = _records(here, elsewhere, marker)[case]
    c = wells_content(make_map, paths=False, grid=False)
    c.meta.source = json.loads(json.dumps(record))
    path = save(here, c)
    before = path.read_bytes()
    code, _, err = run(capsys, command, path, "--quiet") if command == "funnel" else run(capsys, command, path)
    assert_one_line_error(code, err, pattern)
    assert "unexpected" not in err
    assert not marker.exists(), f"{case}: the record's code ran"
    assert path.read_bytes() == before


def test_the_energy_a_user_names_must_be_the_map_s(capsys, make_map, folders):
    here, _, marker = folders
    (here / "pot.py").write_text(WELLS)
    c = wells_content(make_map, paths=False, grid=False)
    c.meta.source = {"kind": "function", "spec": "pot.py:wells", "shape": [2], "box": [-2.0, 2.0],
                     "dtype": "float64"}
    path = save(here, c)
    before = path.read_bytes()
    probe = ["--chains", "8", "--steps", "10", "--noise", "0,1", "--noise-unit", "1", "--eps", "0.05", "--quiet"]
    code, _, err = run(capsys, "funnel", path, *probe)
    assert_one_line_error(code, err, r"never runs code: name the energy yourself with --energy FILE.py:FUNCTION")
    code, _, err = run(capsys, "funnel", path, "--energy", "pot.py:tilted", *probe)
    assert_one_line_error(code, err, r"--energy pot.py:tilted is not the energy .* was made of")
    code, _, err = run(capsys, "funnel", path, "--model", "pot.py:wells", *probe)
    assert_one_line_error(code, err, "not a network")
    assert path.read_bytes() == before
    # The energy it was made of, named by the user, is run.
    code, _, err = run(capsys, "funnel", path, "--energy", "pot.py:wells", *probe)
    assert code == 0, err
    from landscape.io.mapfile import read_map

    assert read_map(path).funnel is not None
    assert not marker.exists()
