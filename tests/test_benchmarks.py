"""The benchmark scripts run: each one's --help, and the diagnosis against planted answers
on one seed (a script no test ran failed on every case for a day after a change of the
funnel probe's checks)."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
# (the scripts that take options; the others run their one measurement with none)
WITH_OPTIONS = sorted(p.name for p in BENCHMARKS.glob("*.py") if "argparse" in p.read_text(encoding="utf-8"))


def run_script(name: str, *args: str) -> int:
    """Run ``benchmarks/name`` with ``args`` in this process; its exit status. Python's
    argv and path, and torch's thread count (a script sets its own), as they were."""
    import torch

    saved = sys.argv, list(sys.path), torch.get_num_threads()
    sys.argv = [str(BENCHMARKS / name), *args]
    try:
        runpy.run_path(str(BENCHMARKS / name), run_name="__main__")
    except SystemExit as stop:
        return int(stop.code or 0)
    finally:
        sys.argv, sys.path[:] = saved[0], saved[1]
        torch.set_num_threads(saved[2])
    return 0


@pytest.mark.parametrize("name", WITH_OPTIONS)
def test_a_benchmark_script_explains_its_options(name, capsys):
    assert run_script(name, "--help") == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ") and "--help" in out, out


def test_the_diagnosis_benchmark_gets_the_planted_answers(tmp_path, capsys):
    out = tmp_path / "diagnosis.json"
    assert run_script("validate_diagnosis.py", "--seeds", "1", "--out", str(out)) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| planted") or
             line.startswith("| balanced")]
    assert len(table) == 3 and all("| 1 / 1 |" in line for line in table), table
    rows = json.loads(out.read_text())["rows"]
    assert [r["potential"] for r in rows] == ["planted_hole", "planted_funnel", "balanced_wells"]
