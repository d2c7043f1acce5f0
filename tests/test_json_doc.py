"""docs/json.md against the commands: each command runs with --json on small files, and
the keys it prints are the keys the doc's tables list.

A table in docs/json.md follows a marker ``<!-- keys: COMMAND [PATH] -->``: its rows are
the keys of the object at PATH in COMMAND's output (no PATH: the top level; ``a.b`` a
nested object, ``*`` every value of an object, ``[]`` every item of a list), the key in
backticks in the first column; "absent" in the last column marks a key that may be
missing. An output key the table lacks, or a key it lists (not "absent") that the output
lacks, fails: the doc stays true when a key is added."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, assert_one_line_error, image_content, run, save, vector_content

DOC = Path(__file__).resolve().parents[1] / "docs" / "json.md"
MARKER = re.compile(r"<!--\s*keys:\s*(\S+)(?:\s+(\S+))?\s*-->")
COMMANDS = {"info-checkpoint", "info-map", "tree", "info-progress", "check", "funnel", "diagnose", "compare"}
MB = ["map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "-1.5", "2", "--float64",
      "--chains", "16", "--rounds", "1", "--quiet"]


def doc_tables() -> dict[tuple[str, str], dict[str, bool]]:
    """(command, path) -> {key: required} for every marked table of docs/json.md."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    tables: dict[tuple[str, str], dict[str, bool]] = {}
    for k, line in enumerate(lines):
        mark = MARKER.fullmatch(line.strip())
        if mark is None:
            continue
        rows = []
        for row in lines[k + 1:]:
            if not row.startswith("|"):
                break
            rows.append([cell.strip() for cell in row.strip().strip("|").split("|")])
        assert len(rows) > 2 and rows[0][0] == "key", f"no key table after {line!r}"
        keys = {}
        for cells in rows[2:]:  # (after the header and the separator)
            key = re.fullmatch(r"`([^`]+)`", cells[0])
            assert key is not None and len(cells) == len(rows[0]), f"bad row under {line!r}: {cells}"
            keys[key.group(1)] = "absent" not in cells[-1].lower()
        tables[(mark.group(1), mark.group(2) or "")] = keys
    return tables


def objects_at(data, path: str) -> list[dict]:
    """The objects at ``path`` of ``data`` (see the module docstring); nulls and missing
    keys lead nowhere."""
    found = [data]
    for token in re.findall(r"\[\]|[^.\[\]]+", path):
        step = []
        for value in found:
            if token == "[]":
                step += list(value)
            elif token == "*":
                step += list(value.values())
            else:
                step.append(value.get(token))
        found = [v for v in step if v is not None]
    for value in found:
        assert isinstance(value, dict), (path, value)
    return found


def strict_json(text: str):
    """Parse ``text``, refusing NaN and Infinity (the doc says non-finite numbers are null)."""
    def refuse(name):
        raise AssertionError(f"non-finite number {name} in the JSON output")

    return json.loads(text, parse_constant=refuse)


def assert_documented(out: str, *commands: str, reached: tuple[str, ...] = ("",)) -> dict:
    """The JSON ``out`` has, at every path the tables of ``commands`` document (their
    union where two document one path), exactly the keys documented there (the optional
    ones may be missing); each path of ``reached`` holds an object. Returns the data."""
    data = strict_json(out)
    tables = doc_tables()
    merged: dict[str, dict[str, bool]] = {}
    for (command, path), keys in tables.items():
        if command in commands:
            into = merged.setdefault(path, {})
            for key, required in keys.items():
                into[key] = into.get(key, False) or required
    assert "" in merged, f"docs/json.md documents no top-level keys of {commands}"
    for path in reached:
        assert path in merged and objects_at(data, path), f"{commands}: nothing at {path!r} to check"
    for path, keys in merged.items():
        for obj in objects_at(data, path):
            where = f"{'/'.join(commands)} --json{' at ' + path if path else ''}"
            extra = sorted(set(obj) - set(keys))
            assert not extra, f"{where}: keys not in docs/json.md: {extra}"
            missing = sorted(k for k, required in keys.items() if required and k not in obj)
            assert not missing, f"{where}: documented keys not output: {missing}"
    return data


# ----------------------------------------------------------------------- the files


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("json_doc")


@pytest.fixture(scope="module")
def checkpoint(folder):
    """A rings model trained for 4 updates."""
    from landscape.cli.errors import run_guarded
    from landscape.cli.main import cli

    path = folder / "r.pt"
    assert run_guarded(cli, ["train", "--preset", "rings-demo", "--set", "model.kwargs.n_f=8", "--out", str(path),
                             *TINY]) == 0
    return path


@pytest.fixture(scope="module")
def mb_map(folder):
    """A map of the Mueller-Brown potential (3 minima)."""
    from landscape.cli.errors import run_guarded
    from landscape.cli.main import cli

    path = folder / "mb.h5"
    assert run_guarded(cli, [*MB, "--out", str(path)]) == 0
    return path


# ---------------------------------------------------------------------- the doc


def test_the_doc_has_a_key_table_per_command():
    tables = doc_tables()
    assert COMMANDS <= {command for command, _ in tables}
    assert {command for command, _ in tables} <= COMMANDS
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    for rule in ("not removed or renamed", "are `null`", "standard output empty", "goes to standard error"):
        assert rule in text, rule


# ------------------------------------------------------------------- the commands


def test_info_on_a_checkpoint(checkpoint, capsys):
    code, out, err = run(capsys, "info", checkpoint, "--json")
    assert code == 0, err
    data = assert_documented(out, "info-checkpoint")
    assert data["format"] == "ebm-landscape/checkpoint" and data["step"] == 4


def test_info_and_tree_on_a_map(mb_map, capsys):
    code, out, err = run(capsys, "info", mb_map, "--json")
    assert code == 0, err
    data = assert_documented(out, "info-map", reached=("", "exploration", "levels[]"))
    assert "datasets" not in data and data["n_minima"] == 3
    code, out, err = run(capsys, "info", mb_map, "--json", "--datasets")
    assert code == 0, err
    data = assert_documented(out, "info-map")
    assert {"path", "shape", "dtype", "description"} == set(data["datasets"][0])
    for extra in ((), ("--level", "0", "--basins")):
        code, out, err = run(capsys, "tree", mb_map, "--json", *extra)
        assert code == 0, err
        data = assert_documented(out, "tree", "info-map", reached=("", "leaves[]", "merges[]", "levels[]"))
        assert data["leaves_are"] == ("basins" if extra else "minima")


def test_info_and_tree_on_a_map_with_a_funnel_probe_and_a_diagnosis(make_map, tmp_path, capsys):
    path = save(tmp_path, image_content(make_map, diagnosis=True, funnel=True))
    code, out, err = run(capsys, "info", path, "--json")
    assert code == 0, err
    data = assert_documented(out, "info-map", reached=("", "funnel", "diagnosis", "levels[]"))
    assert data["funnel"]["verdict"] == "a funnel"
    for extra in ((), ("--basins",)):
        code, out, err = run(capsys, "tree", path, "--json", *extra)
        assert code == 0, err
        data = assert_documented(out, "tree", "info-map", reached=("leaves[]", "merges[]", "funnel", "diagnosis"))
        assert all("spurious" in leaf for leaf in data["leaves"])
    # A pair no path joined: its barrier is infinite, and null in the JSON.
    path = save(tmp_path, vector_content(make_map, 3, connected=False), "split.h5")
    code, out, err = run(capsys, "tree", path, "--json", "--plot", tmp_path / "t.png")
    assert code == 0, err
    data = assert_documented(out, "tree", "info-map", reached=("leaves[]", "merges[]"))
    cut = [m for m in data["merges"] if not m["connected"]]
    assert cut and all(m["height"] is None and m["relative"] is None for m in cut)
    assert data["pictures"] == {"plot": str(tmp_path / "t.png")}


def test_info_on_unfinished_and_finished_work(tmp_path, capsys):
    import torch

    from landscape import Energy, MapConfig, build_map, funnel_config, funnel_probe
    from landscape.mapping.pipeline import Reporter
    from landscape.potentials import mueller_brown

    class StopInAttractionDiffusion(Reporter):
        def stage(self, name, total=None, unit="it"):
            if name.startswith("attraction-diffusion"):
                raise KeyboardInterrupt

    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64, name="mb")
    config = MapConfig(chains=16, rounds=1, grid=0)
    path = tmp_path / "p.h5"
    with pytest.raises(KeyboardInterrupt):
        build_map(energy, config, progress_file=path, reporter=StopInAttractionDiffusion())
    code, out, err = run(capsys, "info", f"{path}.partial", "--json")
    assert code == 0, err
    data = assert_documented(out, "info-progress")
    assert data["status"] == "unfinished" and data["unfinished"] == str(path) and data["work"] == "map"
    result = build_map(energy, config, progress_file=path, resume=True)  # (its progress is left, finished)
    code, out, err = run(capsys, "info", path, "--json")  # (no map yet: its progress)
    assert code == 0, err
    data = assert_documented(out, "info-progress")
    assert data["status"] == "finished" and data["finished"] == str(path)
    funnel_probe(energy, result.content, funnel_config(result.content, chains=4, steps=20), progress_file=path)
    code, out, err = run(capsys, "info", f"{path}.funnel.partial", "--json")
    assert code == 0, err
    data = assert_documented(out, "info-progress")
    assert data["work"] == "funnel probe"


def test_check(checkpoint, tmp_path, capsys):
    code, out, err = run(capsys, "check", checkpoint, "--multiples", "1,2", "--chains", "8", "--json", "--quiet",
                         "--out", tmp_path / "c.png")
    assert code == 0, err
    data = assert_documented(out, "check", reached=("", "data", "stages", "stages.*[]"))
    assert [s["multiple"] for s in data["stages"]["data"]][:2] == [1.0, 2.0]
    assert set(data["thresholds"]) == {"nn_ratio", "saturation_excess", "energy_drift", "coverage_ratio", "settle",
                                       "mix_ratio"}
    assert set(data["sampler"]) == {"L", "epsilon", "tau"}


def test_funnel_diagnose_and_compare(mb_map, checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = Path(shutil.copy(mb_map, tmp_path / "mb.h5"))
    code, out, err = run(capsys, "funnel", path, "--chains", "4", "--steps", "20", "--noise", "0,1", "--json",
                         "--quiet", "--plot", tmp_path / "f.png")
    assert code == 0, err
    data = assert_documented(out, "funnel")
    assert data["noise"][0] == 0.0 and len(data["sinks"]) == len(data["sink_ties"]) == 2

    npz = tmp_path / "mb.npz"
    np.savez(npz, x=np.random.default_rng(0).uniform(-1.5, 2.0, size=(200, 2)).astype(np.float32))
    code, out, err = run(capsys, "diagnose", path, "--dataset", f"npz:{npz}", "--json", "--quiet")
    assert code == 0, err
    data = assert_documented(out, "diagnose")
    assert data["minima"] >= 3 and data["funnel_verdict"] is not None
    if data["flagged"]:
        assert_documented(out, "diagnose", reached=("flagged[]",))
    code, out, err = run(capsys, "info", path, "--json")  # (the probe and the diagnosis, read back)
    assert code == 0, err
    assert_documented(out, "info-map", reached=("funnel", "diagnosis"))

    code, out, err = run(capsys, "compare", checkpoint, path, "--multiples", "1", "--chains", "4", "--json", "--quiet",
                         "--out", tmp_path / "cmp.png")
    assert code == 0, err
    data = assert_documented(out, "compare", reached=("", "sides.*", "profiles.*", "profiles.*.barriers",
                                                      "profiles.*.funnel", "profiles.*.diagnosis"))
    a, b = data["names"]
    assert data["profiles"][a] is None and data["sides"][a]["no_map"]  # (no map beside the checkpoint)
    assert data["checks"][b] is None and data["verdicts"][a] in ("convergent", "non-convergent")
    assert all(isinstance(level, list) and len(level) == 3 for level in data["profiles"][b]["levels"])
    # Each check is check --json's object without its pictures.
    tables = doc_tables()
    check = {k: required for k, required in tables[("check", "")].items() if k != "pictures"}
    assert set(data["checks"][a]) <= set(check)
    assert {k for k, required in check.items() if required} <= set(data["checks"][a])


@pytest.mark.parametrize("args", [
    ["info", "{x}/missing.pt"], ["info", "{x}/missing.h5"], ["tree", "{x}/missing.h5"],
    ["check", "{x}/missing.pt"], ["funnel", "{x}/missing.h5"], ["diagnose", "{x}/missing.h5"],
    ["compare", "{x}/missing.h5", "{x}/other.h5"],
])
def test_an_error_leaves_standard_output_empty(args, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *[a.format(x=tmp_path) for a in args], "--json")
    assert out == ""
    assert_one_line_error(code, err, r"^error: ")


def test_the_doc_says_info_sums_the_map_s_basins_k_seconds(mb_map, capsys):
    from landscape.io.mapfile import read_map

    recorded = read_map(mb_map).meta.extra["seconds"]
    code, out, err = run(capsys, "info", mb_map, "--json")
    assert code == 0, err
    seconds = strict_json(out)["seconds"]
    parts = [v for k, v in recorded.items() if k.startswith("basins_")]
    assert parts and "basins" not in recorded
    assert seconds["basins"] == pytest.approx(sum(parts))
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    row = next(line for line in DOC.read_text(encoding="utf-8").splitlines() if line.startswith("| `seconds` | object"))
    assert "`basins_<k>`" in row and "their sum" in row, row
    assert "diagnosis_removed" in text


def test_the_doc_says_a_basin_tree_merges_at_the_lowest_pass_between_any_members(make_map, tmp_path, capsys):
    # Basin 0 = minima 0 (-3) and 1 (-1); basin 1 = minimum 2 (-2). Minimum 1 reaches 2 over
    # -0.5, minimum 0 reaches 1 over 0.0 and 2 over 0.5: the tree over minima joins 0 to the
    # others at 0.0, the tree over basins joins the two basins at -0.5 (pair 1, 2).
    c = make_map(np.array([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0]]), [-3.0, -1.0, -2.0], [(0, 1), (1, 2), (0, 2)],
                 [0.0, -0.5, 0.5], levels=[[0, 0, 1]], alphas=[1.0], source={"kind": "function", "spec": "m:f"},
                 config={})
    path = save(tmp_path, c)
    code, out, err = run(capsys, "tree", path, "--json")
    assert code == 0, err
    over_minima = strict_json(out)["merges"]
    assert [m["height"] for m in over_minima] == [-0.5, 0.0]  # (0 and 2 meet at 0.0)
    code, out, err = run(capsys, "tree", path, "--json", "--basins")
    assert code == 0, err
    (merge,) = strict_json(out)["merges"]
    assert merge["height"] == -0.5 and merge["pair"] == [1, 2]  # below 0.0, by a pair of non-lowest minima
    text = " ".join(DOC.read_text(encoding="utf-8").split())
    assert "the lowest pass between any minimum of one side and any minimum of the other" in text
    assert "need not be subtrees of the tree over minima" in text


def test_info_on_a_map_whose_minima_drain_flat_into_states(make_map, tmp_path, capsys):
    # Minima 1, 2 drain into 0 and 4, 5 into 3 with no barrier: two distinct states.
    content = make_map(np.arange(12, dtype=np.float32).reshape(6, 2), [0.0, 0.5, 0.7, 1.0, 1.2, 1.4],
                       [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], [0.5, 0.7, 3.0, 1.2, 1.4], hits=[1, 1, 1, 3, 1, 1],
                       attrs={"minima": {"chains": 8}}, source={"kind": "function", "spec": "plateau"}, config={})
    code, out, err = run(capsys, "info", save(tmp_path, content), "--json")
    assert code == 0, err
    data = assert_documented(out, "info-map", reached=("exploration", "exploration.states"))
    assert data["exploration"]["found"] == 6 and data["exploration"]["once"] == 5
    assert data["exploration"]["states"] == {"found": 2, "once": 0, "twice": 0, "unseen_share": 0.0,
                                             "estimated_states": 2.0}
