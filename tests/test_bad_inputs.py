"""Every bad input ends in one named line: the corpus of tests/corpus.py, and a seeded fuzz.

Each case runs through the real command line. A clean refusal: a non-zero exit status,
exactly one line on stderr, no ``error: unexpected`` (the catch-all, a bug by definition),
no traceback, every input file's bytes unchanged, and no code run from a file. The fuzz
mutates a valid checkpoint and a valid map at random (seeded) and asks less: whatever the
command makes of the file, it never reaches the catch-all and never alters the file.
"""

from __future__ import annotations

import copy
import math
import random

import h5py
import numpy as np
import pytest

import corpus
from conftest import run

CASES = corpus.all_cases()
#: The fast run: every fourth case, and every case that carries a code-running payload.
FAST = [c for k, c in enumerate(CASES) if k % 4 == 0 or c.payload]


def _invoke(capsys):
    """The command line in-process; a case still running after 30 s fails (a refusal is quick)."""
    return corpus.with_timeout(lambda argv: run(capsys, *argv), 30)


def _assert_clean(outcome: corpus.Outcome) -> None:
    assert not outcome.payload_ran, f"{outcome.name}: a file's code ran"
    assert not outcome.damaged, f"{outcome.name}: changed {outcome.damaged}"
    assert outcome.code != 0, f"{outcome.name}: exit 0, not refused"
    assert not outcome.unexpected, f"{outcome.name}: {outcome.err}"
    assert "Traceback" not in outcome.err, f"{outcome.name}: {outcome.err}"
    assert len(outcome.lines) == 1, f"{outcome.name}: {outcome.err!r}"
    assert outcome.lines[0].startswith("error: "), f"{outcome.name}: {outcome.lines[0]}"


def test_the_corpus_is_large_and_covers_every_command():
    assert len(CASES) >= 150 and len(FAST) >= 150
    commands = {argv_command for argv_command in ("info", "tree", "map", "funnel", "diagnose", "sample", "check",
                                                  "train", "compare")}
    named = {c.name.split()[0].rstrip(":") for c in CASES} | {
        word.strip("()") for c in CASES for word in c.name.split() if word.startswith("(")}
    assert commands <= named, commands - named


@pytest.mark.parametrize("chunk", range(4))
def test_bad_inputs_are_refused_in_one_named_line(chunk, tmp_path, capsys):
    for k, case in enumerate(FAST[chunk::4]):
        _assert_clean(corpus.run_case(case, tmp_path / f"case{k}", _invoke(capsys)))


def test_files_that_are_not_files_and_outputs_over_inputs_are_refused(tmp_path, capsys):
    # (a FIFO blocked info forever; a link to /dev/zero read until memory ran out; diagnose
    # --report over its own map replaced the map with the report; a dataset kept its values
    # in a file outside the map)
    for k, case in enumerate(corpus.special_cases()):
        _assert_clean(corpus.run_case(case, tmp_path / f"case{k}", _invoke(capsys)))


@pytest.mark.slow
def test_the_whole_corpus_is_refused_in_one_named_line(tmp_path, capsys):
    for k, case in enumerate(CASES):
        _assert_clean(corpus.run_case(case, tmp_path / f"case{k}", _invoke(capsys)))


# --------------------------------------------------------------------------- the fuzz


def _fuzz_value(rng: random.Random):
    choices = list(corpus.WRONG.values()) + [rng.uniform(-1e6, 1e6), rng.randint(-10**15, 10**15), "x" * 300,
                                             [math.nan, 1.0], {"nested": [1, {"a": None}]}]
    return copy.deepcopy(rng.choice(choices))


def _paths(d, prefix=""):
    """Every field path of plain data in a checkpoint (tensors' containers included)."""
    out = []
    for key, value in d.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(value, dict) and key not in ("state_dict", "optimizer"):
            out += _paths(value, path + ".")
    return out


def _assert_never_the_catch_all(outcome: corpus.Outcome) -> None:
    assert not outcome.unexpected and "Traceback" not in outcome.err, f"{outcome.name}: {outcome.err}"
    assert not outcome.damaged, f"{outcome.name}: changed {outcome.damaged}"
    if outcome.code != 0:
        assert len(outcome.lines) == 1, f"{outcome.name}: {outcome.err!r}"


def test_fuzzed_checkpoints_never_reach_the_catch_all(tmp_path, capsys):
    rng = random.Random(20260101)
    valid = corpus.valid_checkpoint()
    paths = _paths(valid)
    for k in range(150):
        ckpt = copy.deepcopy(valid)
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(paths)
            keys = path.split(".")
            parent = ckpt
            for key in keys[:-1]:
                parent = parent.get(key) if isinstance(parent, dict) else None
            if not isinstance(parent, dict):
                continue
            if rng.random() < 0.2:
                parent.pop(keys[-1], None)
            else:
                parent[keys[-1]] = _fuzz_value(rng)
        command = rng.choice(["info", "info", "info --json", "sample"])

        def build(folder, ckpt=ckpt, command=command):
            corpus.write_checkpoint(folder / "fuzz.pt", ckpt)
            if command == "sample":
                return ["sample", folder / "fuzz.pt", "--chains", "2", "--steps", "1", "--quiet", "--out",
                        folder / "s.png"]
            return [*command.split()[:1], folder / "fuzz.pt", *command.split()[1:]]

        case = corpus.Case(f"fuzz checkpoint {k}", build)
        _assert_never_the_catch_all(corpus.run_case(case, tmp_path / f"c{k}", _invoke(capsys)))


def _mutate_dataset(f: h5py.File, path: str, rng: np.random.Generator) -> None:
    arr = f[path][()]
    kind = rng.integers(6)
    if kind == 0 and arr.size:  # a few entries replaced by extreme values
        flat = arr.astype(np.float64).reshape(-1)
        pick = rng.integers(0, flat.size, max(1, flat.size // 5))
        flat[pick] = rng.choice([np.nan, np.inf, -np.inf, 1e300, -5.0, 10**12])
        with np.errstate(invalid="ignore", over="ignore"):
            new = flat.reshape(arr.shape).astype(arr.dtype) if arr.dtype.kind == "f" else flat.reshape(arr.shape)
    elif kind == 1 and arr.dtype.kind in "iub" and arr.size:  # integers shuffled or shifted
        new = arr.astype(np.int64) + rng.integers(-3, 4, arr.shape)
    elif kind == 2 and arr.ndim and arr.shape[0]:  # rows dropped
        new = arr[: rng.integers(0, arr.shape[0])]
    elif kind == 3:  # another dtype
        with np.errstate(invalid="ignore", over="ignore"):
            new = arr.astype(rng.choice([np.float32, np.int8, np.uint8, np.bool_, np.float64]))
    elif kind == 4:  # another shape
        new = arr.reshape(-1) if arr.ndim > 1 else arr.reshape(-1, 1)
    else:  # zeros
        new = np.zeros_like(arr)
    del f[path]
    f[path] = new


def _mutate_attr(f: h5py.File, rng: np.random.Generator) -> None:
    groups = ["/"] + [name for name in ("minima", "levels", "levels/0", "tree", "barriers", "funnel", "funnel/entropy",
                                        "diagnosis") if name in f]
    group = f[str(rng.choice(groups))]
    keys = list(group.attrs)
    values = [b"x", "not json", "{}", "[]", "null", 3, -1, 2.5, np.nan, np.inf, np.array([1.0, 2.0]), True, 10**12]
    if keys and rng.random() < 0.8:
        key = str(rng.choice(keys))
        if rng.random() < 0.2:
            del group.attrs[key]
            return
    else:
        key = str(rng.choice(["main", "alpha", "score", "energy_offset", "temperature", "data_range"]))
    group.attrs[key] = values[int(rng.integers(len(values)))]


def test_fuzzed_maps_never_reach_the_catch_all(tmp_path, capsys):
    rng = np.random.default_rng(20260102)
    for k in range(150):
        kind = ["wells", "image"][k % 2]

        def build(folder, kind=kind, seed=int(rng.integers(2**31))):
            r = np.random.default_rng(seed)
            path = corpus.write_map_file(folder / "fuzz.h5", kind)
            with h5py.File(path, "r+") as f:
                datasets = []
                f.visititems(lambda name, item: datasets.append(name) if isinstance(item, h5py.Dataset) else None)
                for _ in range(int(r.integers(1, 3))):
                    if r.random() < 0.7:
                        _mutate_dataset(f, str(r.choice(datasets)), r)
                    else:
                        _mutate_attr(f, r)
            return [str(r.choice(["info", "tree"])), path]

        case = corpus.Case(f"fuzz map {k}", build)
        _assert_never_the_catch_all(corpus.run_case(case, tmp_path / f"m{k}", _invoke(capsys)))


@pytest.mark.parametrize("command", ["info", "tree", "info --json", "info --datasets"])
@pytest.mark.parametrize("kind", ["wells", "image"])
def test_valid_maps_are_read_and_never_altered(kind, command, tmp_path, capsys):
    path = corpus.write_map_file(tmp_path / "ok.h5", kind)
    before = path.read_bytes()
    words = command.split()
    code, _, err = run(capsys, words[0], path, *words[1:])
    assert code == 0, err
    assert path.read_bytes() == before


def test_a_valid_checkpoint_is_read_and_never_altered(tmp_path, capsys):
    path = corpus.write_checkpoint(tmp_path / "ok.pt", corpus.valid_checkpoint())
    before = path.read_bytes()
    for args in (["info", path], ["info", path, "--json"],
                 ["sample", path, "--chains", "2", "--steps", "1", "--quiet", "--out", tmp_path / "s.png"]):
        code, _, err = run(capsys, *args)
        assert code == 0, err
    assert path.read_bytes() == before


# --------------------------------------------------------------------- saved progress

_WELLS3 = """
import torch

def wells(x):
    return ((x ** 2 - 1) ** 2 + torch.tensor([0.25, 0.5, 0.4], dtype=x.dtype) * x).sum(1)
"""


def _progress_mutations(src: bytes) -> list[tuple[str, object]]:
    """(name, edit of the open progress file) for every array and every value of a progress
    file: missing, a row less, an extra axis, NaN or out-of-range numbers, values of other types."""
    import io
    import json

    with h5py.File(io.BytesIO(src), "r") as f:
        arrays = {}
        f["arrays"].visititems(lambda n, it: arrays.__setitem__(n, it[()]) if isinstance(it, h5py.Dataset) else None)
        blob = json.loads(f.attrs["state"])
    out = []
    for key, arr in arrays.items():
        bad = {"missing": None, "extra axis": arr[..., None].repeat(2, -1)}
        if arr.ndim and arr.shape[0]:
            bad["a row less"] = arr[:-1]
        if arr.dtype.kind == "f":
            bad["NaN"] = np.full(arr.shape, np.nan)
        else:
            bad.update({"huge": np.full(arr.shape, 10**12), "negative": np.full(arr.shape, -5), "fractions":
                        np.full(arr.shape, 0.5)})
        for label, value in bad.items():
            def edit(f, key=key, value=value):
                del f["arrays"][key]
                if value is not None:
                    f["arrays"][key] = value
            out.append((f"{key} {label}", edit))
    for key in blob:
        for label, value in {"missing": KeyError, "a string": "x", "null": None, "a list": [1], "a number": 7}.items():
            def edit(f, key=key, value=value):
                b = dict(blob)
                if value is KeyError:
                    del b[key]
                else:
                    b[key] = value
                f.attrs["state"] = json.dumps(b)
            out.append((f"{key} {label}", edit))
    return out


def test_damaged_map_progress_is_refused_in_one_line_or_continued(tmp_path, capsys, monkeypatch):
    # A map interrupted inside a batch of attraction-diffusion trials keeps every stage so
    # far in its .partial file. Damaged array by array and value by value, `--resume`
    # either continues it to a map (the damage was to a timing, say) or refuses in one line
    # and leaves the file as it was: never the catch-all.
    from landscape.mapping import pipeline

    pot = tmp_path / "pot.py"
    pot.write_text(_WELLS3)
    out = tmp_path / "w.h5"
    args = ["map", "--energy", f"{pot}:wells", "--shape", "3", "--box", "-1.6", "1.6", "--float64", "--chains", "32",
            "--max-steps", "400", "--patience", "50", "--attempts", "1", "--out", out, "--quiet",
            # (two rungs: the progress holds every kind of array five would, and a resume has less to do)
            "--ladder", "0.03,1", "--ladder-extend", "0", "--ladder-refine", "0"]
    save = pipeline._Run.save

    def interrupting(self):  # (interrupted after a save 32+ steps into a batch)
        save(self)
        if "running_turn/info" in self.state and self.state["running_turn/info"]["step"] >= 32:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(pipeline, "_SAVE_EVERY", 0.0)
        m.setattr(pipeline, "_SAVE_COST", 0.0)
        m.setattr(pipeline._Run, "save", interrupting)
        code, _, _ = run(capsys, *args)
    partial = tmp_path / "w.h5.partial"
    assert code == 130 and partial.exists()
    src = partial.read_bytes()
    mutations = _progress_mutations(src)
    assert len(mutations) > 400
    refused, tried = 0, mutations[::3]
    for name, edit in tried:
        out.unlink(missing_ok=True)
        partial.write_bytes(src)
        with h5py.File(partial, "r+") as f:
            edit(f)
        damaged = partial.read_bytes()
        code, _, err = run(capsys, "info", partial)  # (what it holds, or that it is damaged)
        assert "unexpected" not in err and "Traceback" not in err, f"info, {name}: {err}"
        assert code == 0 or len([line for line in err.splitlines() if line.strip()]) == 1, f"info, {name}: {err!r}"
        code, _, err = run(capsys, *args, "--resume")
        assert "unexpected" not in err and "Traceback" not in err, f"{name}: {err}"
        if code == 0:
            assert out.exists() and not partial.exists(), name
        else:
            refused += 1
            lines = [line for line in err.splitlines() if line.strip()]
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{name}: {err!r}"
            assert partial.read_bytes() == damaged, f"{name}: the progress was changed"
    assert refused > 90 and len(tried) - refused > 30  # (both, many times: 98 and 51 of 149)
