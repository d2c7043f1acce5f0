"""A corpus of bad inputs, built programmatically, for the command line to refuse.

Every case writes its input files into an empty folder and names the command line that
reads them. A clean refusal is: a non-zero exit status, exactly one line on stderr
(``error: ...``), no ``error: unexpected ...`` (the catch-all of
:func:`landscape.cli.errors.run_guarded`, which is a bug by definition), no traceback, and
every input file's bytes unchanged. Cases that would run code if a file were unpickled
carry a marker file name: the marker must never appear.

``tests/test_bad_inputs.py`` runs the corpus and a seeded fuzz of checkpoints and maps;
``benchmarks/bad_inputs.py`` runs the same corpus and prints a table. Both import this
module, and nothing else builds the cases.

The mutations:

- checkpoints: a valid checkpoint (a tiny ToyNet, with a resume block), mutated field by
  field (wrong types, NaN, inf, huge, negative, empty, missing);
- maps: two valid maps (2-D with a grid, saddles and paths; images with a funnel probe and
  a diagnosis), mutated dataset by dataset (dtype, ndim, length, NaN, indices out of
  range, missing, a group instead) and attribute by attribute (wrong types, bad JSON);
- files that are not what their name says: text, empty, random bytes, a truncated zip,
  HDF5 named ``.pt``, a checkpoint named ``.h5``, pickles that ask to run code;
- bad option values of every command (info, tree, map, funnel, diagnose, sample, check,
  train, compare).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import signal
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

#: The file a code-running payload would create (relative to the case's folder).
MARKER = "PAYLOAD_RAN"


@dataclass(frozen=True)
class Case:
    """One bad input: ``build(folder)`` writes its files and returns the command line."""

    name: str
    build: Callable[[Path], list[str]]
    payload: bool = False  # a file asks to run code that would create MARKER


@dataclass
class Outcome:
    """What a case did."""

    name: str
    code: int
    err: str
    damaged: list[str] = field(default_factory=list)
    payload_ran: bool = False

    @property
    def lines(self) -> list[str]:
        return [line for line in self.err.strip().splitlines() if line.strip()]

    @property
    def unexpected(self) -> bool:
        return "error: unexpected" in self.err

    @property
    def clean(self) -> bool:
        """A clean refusal: non-zero, one line, no catch-all, no traceback, nothing damaged or run."""
        return (self.code != 0 and len(self.lines) == 1 and not self.unexpected and "Traceback" not in self.err
                and not self.damaged and not self.payload_ran)


# --------------------------------------------------------------------------- running


def snapshot(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (bytecode caches left out)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def run_case(case: Case, folder: Path, invoke: Callable[[list[str]], tuple[int, str, str]]) -> Outcome:
    """Build ``case`` in the empty ``folder`` (the current directory while it runs) and run
    its command line with ``invoke(argv) -> (code, stdout, stderr)``."""
    folder.mkdir(parents=True, exist_ok=True)
    argv = case.build(folder)
    before = snapshot(folder)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        code, _, err = invoke([str(a) for a in argv])
    finally:
        os.chdir(cwd)
    after = snapshot(folder)
    damaged = [name for name, digest in before.items() if after.get(name) != digest]
    return Outcome(case.name, code, err, damaged, (folder / MARKER).exists())


class CaseTimeout(BaseException):
    """A case ran past its time (a BaseException: the command line's catch-all lets it through)."""


def _alarm(signum: int, frame: object) -> None:
    raise CaseTimeout


def with_timeout(invoke: Callable[[list[str]], tuple[int, str, str]],
                 seconds: int) -> Callable[[list[str]], tuple[int, str, str]]:
    """``invoke`` with a time limit (SIGALRM): a case still running after ``seconds`` ends
    with exit status 124 and a line saying so (an input that was not refused, but run)."""

    def timed(argv: list[str]) -> tuple[int, str, str]:
        previous = signal.signal(signal.SIGALRM, _alarm)
        signal.alarm(seconds)
        try:
            return invoke(argv)
        except CaseTimeout:
            return 124, "", f"(still running after {seconds} s: the input was not refused)\n"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return timed


# ------------------------------------------------------------------ valid inputs


def valid_checkpoint() -> dict[str, Any]:
    """A small valid checkpoint (ToyNet, n_f 8), with a resume block and a persistent bank."""
    import torch

    from landscape.train.checkpoint import FORMAT, VERSION
    from landscape.train.nets import build_model

    torch.manual_seed(0)
    kwargs = {"n_f": 8, "energy_scale": 128.0}
    model = build_model("toy", kwargs)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    config = {"preset": "toy-convergent", "regime": "convergent", "data": {"name": "rings"},
              "model": {"arch": "toy", "kwargs": {"n_f": 8}}, "train": {"steps": 10, "seed": 1}}
    return {
        "format": FORMAT, "version": VERSION, "tool_version": "0.1.0", "created": "2026-01-01T00:00:00+00:00",
        "model": {"arch": "toy", "kwargs": kwargs}, "state_dict": model.state_dict(),
        "data": {"name": "rings", "shape": [2], "range": [-4.6, 4.6]},
        "sampler": {"epsilon": 0.125, "tau": 1.0, "steps": 5, "init": "persistent", "mh": False},
        "regime": "convergent", "step": 6, "config": config, "metrics": {"d_st": 0.5},
        "resume": {"optimizer": optimizer.state_dict(), "generators": [[torch.Generator().get_state()]],
                   "bank": torch.rand(40, 2) * 2 - 1, "world_size": 1},
    }


def write_checkpoint(path: Path, ckpt: Any) -> Path:
    from landscape.train.checkpoint import atomic_save

    atomic_save(ckpt, path)
    return path


_MAP_CACHE: dict[str, bytes] = {}


def valid_map_bytes(kind: str) -> bytes:
    """The bytes of a valid map: ``wells`` (2-D: grid, saddles, paths) or ``image`` (a
    funnel probe and a diagnosis)."""
    if kind not in _MAP_CACHE:
        import tempfile

        from conftest import build_map, image_content, wells_content
        from landscape.io.mapfile import write_map

        content = wells_content(build_map) if kind == "wells" else image_content(build_map, diagnosis=True,
                                                                                  funnel=True)
        with tempfile.TemporaryDirectory() as tmp:
            path = write_map(Path(tmp) / "m.h5", content, config=content.meta.config, source=content.meta.source,
                             tool_version="0.1.0")
            _MAP_CACHE[kind] = path.read_bytes()
    return _MAP_CACHE[kind]


def write_map_file(path: Path, kind: str = "wells") -> Path:
    path.write_bytes(valid_map_bytes(kind))
    return path


ENERGY_PY = '''
import torch

class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)

    def forward(self, x):
        return self.w(x).squeeze(1)

def bowl(x):
    return 0.5 * (x ** 2).sum(1)

_calls = [0]

def raises_later(x):
    _calls[0] += 1
    if _calls[0] > 2:
        raise ValueError("boom after the probe")
    return 0.5 * (x ** 2).sum(1)

class RaisesLater(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Linear(2, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.calls > 2:
            raise ValueError("boom after the probe")
        return self.w(x).squeeze(1) + (x ** 2).sum(1)

def nan_energy(x):
    return (x ** 2).sum(1) * float("nan")
'''


def write_energy_file(folder: Path) -> Path:
    path = folder / "energy.py"
    path.write_text(ENERGY_PY)
    return path


# ------------------------------------------------------------------ checkpoint cases

#: Values a field is replaced by, by name.
WRONG = {
    "str": "abc", "float": 2.5, "list": [1, 2], "dict": {"a": 1}, "none": None, "bool": True,
    "nan": math.nan, "inf": math.inf, "-inf": -math.inf, "huge": 10**12, "hugefloat": 1e300,
    "negative": -1, "zero": 0, "empty_str": "", "empty_list": [], "empty_dict": {},
}

#: Field path -> the mutations of WRONG that make a checkpoint bad (besides "missing").
CKPT_BAD: dict[str, tuple[str, ...]] = {
    "format": ("str", "float", "none", "list"),
    "version": ("str", "float", "none", "huge", "negative", "zero", "bool", "list"),
    "model": ("str", "list", "none", "empty_dict"),
    "model.arch": ("str", "float", "none", "list", "empty_str"),
    "model.kwargs": ("list", "str", "float"),
    "model.kwargs.n_f": ("str", "float", "negative", "zero", "huge", "none", "nan", "list"),
    "model.kwargs.energy_scale": ("str", "nan", "inf", "negative", "zero", "list"),
    "state_dict": ("str", "list", "none", "float", "empty_dict"),
    "data": ("str", "list", "none"),
    "data.name": ("float", "none", "list", "empty_str"),
    "data.shape": ("str", "float", "none", "empty_list", "huge", "dict"),
    "data.range": ("str", "float", "empty_list", "dict"),
    "sampler": ("str", "list", "none"),
    "sampler.epsilon": ("str", "nan", "inf", "negative", "zero", "none", "list", "bool"),
    "sampler.tau": ("str", "nan", "inf", "negative", "none", "list"),
    "sampler.steps": ("str", "float", "nan", "negative", "none", "huge", "list"),
    "sampler.init": ("float", "none", "list", "empty_str"),
    "sampler.mh": ("str", "list", "float"),
    "regime": ("float", "none", "list", "str"),
    "step": ("str", "float", "nan", "negative", "none", "list"),
    "config": ("str", "list", "float", "none"),
    "config.train": ("str", "list", "float"),
    "config.preset": ("float", "list"),
    "metrics": ("str", "list", "float"),
    "resume": ("str", "list", "float"),
    "resume.generators": ("str", "float", "dict"),
    "resume.bank": ("str", "float", "list"),
    "resume.world_size": ("str", "float", "negative", "zero"),
    "resume.optimizer": ("str", "list", "float"),
    "created": ("list", "dict"),
    "tool_version": ("list", "dict"),
}

#: Fields whose absence makes a checkpoint bad.
CKPT_REQUIRED = ("format", "version", "model", "model.arch", "state_dict", "data", "data.shape", "sampler",
                 "sampler.epsilon", "sampler.tau", "sampler.steps", "regime", "step", "config")


def _get_parent(d: dict[str, Any], path: str) -> tuple[dict[str, Any], str]:
    keys = path.split(".")
    for key in keys[:-1]:
        d = d[key]
    return d, keys[-1]


def mutate_checkpoint(ckpt: dict[str, Any], path: str, mutation: str) -> dict[str, Any]:
    """A copy of ``ckpt`` with field ``path`` replaced by ``WRONG[mutation]`` (or removed)."""
    import copy

    out = copy.deepcopy(ckpt)
    parent, key = _get_parent(out, path)
    if mutation == "missing":
        parent.pop(key, None)
    else:
        parent[key] = copy.deepcopy(WRONG[mutation])
    return out


def _ckpt_case(name: str, make: Callable[[], Any], argv: Callable[[Path], list[str]]) -> Case:
    def build(folder: Path) -> list[str]:
        write_checkpoint(folder / "bad.pt", make())
        return argv(folder)

    return Case(name, build)


def _info_pt(folder: Path) -> list[str]:
    return ["info", folder / "bad.pt"]


def _sample_pt(folder: Path) -> list[str]:
    return ["sample", folder / "bad.pt", "--chains", "2", "--steps", "1", "--quiet", "--out", folder / "s.png"]


def checkpoint_cases() -> list[Case]:
    cases = []
    for path, mutations in CKPT_BAD.items():
        for mutation in mutations + (("missing",) if path in CKPT_REQUIRED else ()):
            make = (lambda p=path, m=mutation: mutate_checkpoint(valid_checkpoint(), p, m))
            cases.append(_ckpt_case(f"ckpt {path}={mutation} (info)", make, _info_pt))
    # what only shows when the model is built and sampled
    for path, mutation in (("model.kwargs.n_f", "huge"), ("sampler.epsilon", "nan"), ("data.shape", "huge"),
                           ("model.kwargs.energy_scale", "nan"), ("state_dict", "empty_dict")):
        make = (lambda p=path, m=mutation: mutate_checkpoint(valid_checkpoint(), p, m))
        cases.append(_ckpt_case(f"ckpt {path}={mutation} (sample)", make, _sample_pt))

    def tensors(transform: Callable[[Any], Any], label: str) -> Case:
        def make() -> dict[str, Any]:
            ckpt = valid_checkpoint()
            ckpt["state_dict"] = transform(ckpt["state_dict"])
            return ckpt

        return _ckpt_case(f"ckpt state_dict {label} (sample)", make, _sample_pt)

    import torch

    cases += [
        tensors(lambda sd: {k: v.tolist() for k, v in sd.items()}, "values are lists"),
        tensors(lambda sd: {k: torch.full_like(v, math.nan) for k, v in sd.items()}, "NaN weights"),
        tensors(lambda sd: {k: v[..., :1] for k, v in sd.items()}, "wrong tensor shapes"),
        tensors(lambda sd: {**sd, "extra.weight": torch.zeros(3)}, "an unexpected key"),
        tensors(lambda sd: dict(list(sd.items())[1:]), "a missing key"),
        tensors(lambda sd: {k: v.to(torch.int64) for k, v in sd.items()}, "integer tensors"),
        tensors(lambda sd: {1: v for v in sd.values()}, "non-string keys"),
        tensors(lambda sd: {k: torch.empty(v.shape, device="meta") for k, v in sd.items()}, "meta tensors"),
        tensors(lambda sd: {k: v.to_sparse() for k, v in sd.items()}, "sparse tensors"),
        tensors(lambda sd: {k: v.to(torch.float8_e4m3fn) for k, v in sd.items()}, "float8 tensors"),
        tensors(lambda sd: {**sd, "bias": torch.zeros(1).expand(10**12)}, "an expanded tensor claiming 4 TB"),
    ]

    def nested(depth: int) -> Any:
        out: Any = 1.0
        for _ in range(depth):
            out = {"a": out}
        return out

    cases.append(_ckpt_case("ckpt metrics nested 200 deep (info)",
                            lambda: {**valid_checkpoint(), "metrics": nested(200)}, _info_pt))

    def resume(transform: Callable[[dict[str, Any]], None], label: str) -> Case:
        def make() -> dict[str, Any]:
            ckpt = valid_checkpoint()
            transform(ckpt["resume"])
            return ckpt

        return _ckpt_case(f"ckpt resume {label} (info)", make, _info_pt)

    cases += [
        resume(lambda r: r.update(generators=[["abc"]]), "generator state a string"),
        resume(lambda r: r.update(generators=[[torch.zeros(3)]]), "generator state a float tensor"),
        resume(lambda r: r.update(bank=torch.full((40, 2), math.nan)), "bank of NaN"),
        resume(lambda r: r.update(bank=torch.zeros(40, 3)), "bank of the wrong shape"),
    ]
    return cases


# ---------------------------------------------------------------------- file cases


def _torch_bytes(obj: Any) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


class _Payload:
    """Unpickled, this would create the marker file."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.marker, "w"))


def _file_case(name: str, filename: str, content: Callable[[Path], bytes], argv: Callable[[Path, Path], list[str]],
               payload: bool = False) -> Case:
    def build(folder: Path) -> list[str]:
        path = folder / filename
        path.write_bytes(content(folder))
        return argv(folder, path)

    return Case(name, build, payload)


def _commands_for_pt(folder: Path, path: Path) -> dict[str, list[str]]:
    return {
        "info": ["info", path],
        "sample": ["sample", path, "--chains", "2", "--steps", "1", "--quiet", "--out", folder / "s.png"],
        "map": ["map", path, "--chains", "2", "--quiet", "--out", folder / "out.h5"],
        "map-weights": ["map", "--model", f"{folder / 'energy.py'}:Net", "--weights", path, "--shape", "2",
                        "--quiet", "--out", folder / "out.h5"],
    }


def file_cases() -> list[Case]:
    rng = np.random.default_rng(0)
    random_bytes = rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()
    ckpt_bytes = lambda folder: _torch_bytes(valid_checkpoint())  # noqa: E731
    contents: dict[str, Callable[[Path], bytes]] = {
        "text": lambda folder: b"hello, this is not a checkpoint\n" * 4,
        "empty": lambda folder: b"",
        "random bytes": lambda folder: random_bytes,
        "pickle magic then garbage": lambda folder: b"\x80\x02" + random_bytes[:200],
        "truncated zip": lambda folder: ckpt_bytes(folder)[:600],
        "zip cut at the end": lambda folder: ckpt_bytes(folder)[:-30],
        "zip without data.pkl": lambda folder: _zip_bytes({"archive/other.txt": b"x"}),
        "hdf5 map": lambda folder: valid_map_bytes("wells"),
        "npz": lambda folder: _npz_bytes(x=np.zeros((3, 2))),
        "json": lambda folder: json.dumps({"format": "ebm-landscape/checkpoint"}).encode(),
        "a list of tensors": lambda folder: _torch_bytes([1, 2, 3]),
        "a bare number": lambda folder: _torch_bytes(3.0),
        "a dict with int keys": lambda folder: _torch_bytes({1: 2}),
    }
    cases = []
    for label, content in contents.items():
        for command in ("info", "sample", "map", "map-weights"):
            if label == "hdf5 map" and command == "info":
                continue  # info reads an HDF5 file as a map, whatever its name: a valid one is fine

            def argv(folder: Path, path: Path, command: str = command) -> list[str]:
                write_energy_file(folder)
                return _commands_for_pt(folder, path)[command]

            cases.append(_file_case(f"file {label} named .pt ({command})", "bad.pt", content, argv))
    # a checkpoint named .h5, a text file named .h5
    for label, content in (("checkpoint", ckpt_bytes), ("text", contents["text"]), ("empty", contents["empty"])):
        for command in ("info", "tree", "diagnose"):
            cases.append(_file_case(f"file {label} named .h5 ({command})", "bad.h5", content,
                                    lambda folder, path, c=command: [c, path]))
    # pickles that ask to run code: never run
    payloads: dict[str, Callable[[Path], bytes]] = {
        "torch.save of an object": lambda folder: _torch_bytes({"format": "x", "obj": _Payload(str(folder / MARKER))}),
        "raw pickle": lambda folder: pickle.dumps(_Payload(str(folder / MARKER)), protocol=2),
        # (protocol 4 is pickle.dump's default: torch warned of it on two lines, and its reader
        # stops at the protocol's framing before it meets the import the file asks for)
        "raw pickle, protocol 4": lambda folder: pickle.dumps({"a": _Payload(str(folder / MARKER))}, protocol=4),
        "state dict with an object": lambda folder: _torch_bytes({"w": _Payload(str(folder / MARKER))}),
    }
    for label, content in payloads.items():
        for command in ("info", "sample", "map", "map-weights"):
            def argv(folder: Path, path: Path, command: str = command) -> list[str]:
                write_energy_file(folder)
                return _commands_for_pt(folder, path)[command]

            cases.append(_file_case(f"payload {label} ({command})", "bad.pt", content, argv, payload=True))
    return cases


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


# -------------------------------------------------------------------------- map cases

#: Datasets where NaN is bad (elsewhere it means "none": refined saddles, paths, alpha).
NAN_BAD = ("minima/x", "minima/energy", "basins/energy", "barriers/energy", "tree/linkage", "tree/barrier",
           "levels/0/basins/energy", "grid/x", "grid/y", "funnel/noise", "funnel/occupancy", "funnel/entropy",
           "diagnosis/nn_distance")
#: Integer datasets that index something (out of range is bad).
INDEX = ("minima/basin", "basins/representative", "barriers/pairs", "tree/pair", "levels/0/minima/basin",
         "levels/0/basins/representative", "funnel/sinks", "funnel/chain_minimum", "diagnosis/nn_index")
#: Datasets whose absence is bad (required, or the core of an optional group that is there).
REQUIRED = ("minima/x", "minima/energy", "minima/hits", "minima/basin", "basins/representative", "basins/energy",
            "barriers/pairs", "barriers/energy", "tree/linkage", "tree/barrier", "tree/connected", "tree/pair",
            "levels/0/minima/basin", "levels/0/basins/energy", "grid/x", "grid/energy", "funnel/noise",
            "funnel/occupancy", "diagnosis/spurious", "diagnosis/nn_distance")


def _replace(f: h5py.File, path: str, data: Any) -> None:
    del f[path]
    f[path] = data


def map_mutations(f: h5py.File, path: str) -> dict[str, Callable[[h5py.File], None]]:
    """The mutations of dataset ``path`` that make a map bad."""
    ds = f[path]
    arr = ds[()]
    out: dict[str, Callable[[h5py.File], None]] = {
        "strings": lambda f: _replace(f, path, np.array([b"abc"] * max(arr.shape[0] if arr.ndim else 1, 1))),
        "a group": lambda f: (f.__delitem__(path), f.create_group(path)),
        "scalar": lambda f: _replace(f, path, np.asarray(arr).reshape(-1)[:1].reshape(()) if arr.size else 0),
        "one more row": lambda f: _replace(f, path, np.concatenate([arr, arr[:1]]) if arr.ndim and arr.shape[0]
                                           else np.zeros((1, *arr.shape[1:]), arr.dtype)),
        "complex": lambda f: _replace(f, path, arr.astype(np.complex128)),
    }
    if arr.ndim and arr.shape[0] > 0:
        out["one row less"] = lambda f: _replace(f, path, arr[:-1])
    if arr.ndim == 1:
        out["extra axis"] = lambda f: _replace(f, path, arr[:, None].repeat(2, axis=1))
    elif arr.ndim >= 2 and not path.endswith("minima/x"):
        out["flattened"] = lambda f: _replace(f, path, arr.reshape(-1))
    if path == "minima/x":
        out["flattened"] = lambda f: _replace(f, path, arr.reshape(-1))
    if path in NAN_BAD:
        out["NaN"] = lambda f: _replace(f, path, np.full(arr.shape, np.nan, dtype=np.float64))
    if path in INDEX:
        out["index huge"] = lambda f: _replace(f, path, np.full(arr.shape, 10**12, dtype=np.int64))
        out["index negative"] = lambda f: _replace(f, path, np.full(arr.shape, -5, dtype=np.int64))
    if path == "minima/hits":
        out["negative"] = lambda f: _replace(f, path, np.full(arr.shape, -3, dtype=np.int64))
    if arr.dtype.kind in "iub" and path not in ("tree/connected", "tree/refined", "diagnosis/spurious"):
        out["fractions"] = lambda f: _replace(f, path, np.full(arr.shape, 0.5))
    if path in REQUIRED:
        out["missing"] = lambda f: f.__delitem__(path)
    return out


def _attr(group: str, key: str, value: Any) -> Callable[[h5py.File], None]:
    def apply(f: h5py.File) -> None:
        if value is _DELETE:
            del f[group].attrs[key]
        else:
            f[group].attrs[key] = value
    return apply


_DELETE = object()

#: (group, attribute) -> bad values (labels -> value; _DELETE removes it).
ATTR_BAD: dict[tuple[str, str], dict[str, Any]] = {
    ("/", "schema"): {"other": "something/else", "int": 3, "missing": _DELETE},
    ("/", "schema_version"): {"string": "2", "float": 2.5, "future": 99, "zero": 0, "negative": -1, "array": [1, 2],
                              "missing": _DELETE},
    ("/", "created"): {"int": 5, "array": [1.0, 2.0], "missing": _DELETE},
    ("/", "tool_version"): {"int": 5, "missing": _DELETE},
    ("/", "source"): {"not JSON": "{not json", "a number": "5", "a list": "[1, 2]", "int": 7, "missing": _DELETE},
    ("/", "config"): {"not JSON": "{", "a list": "[1]", "a string": '"x"', "missing": _DELETE},
    ("/", "settings"): {"not JSON": "{", "a list": "[1]", "a number": "3"},
    ("/", "seconds"): {"not JSON": "{", "a list": "[1]", "numbers are strings": '{"map": "x"}'},
    ("/levels", "main"): {"string": "0", "float": 0.5, "out of range": 99, "negative": -1, "array": [0, 1],
                          "missing": _DELETE},
    ("/levels/0", "alpha"): {"string": "abc", "NaN": np.nan, "array": [1.0, 2.0], "missing": _DELETE},
    ("/levels/0", "multiplier"): {"string": "abc", "NaN": np.nan},
    ("/tree", "energy_offset"): {"string": "abc", "NaN": np.nan, "inf": np.inf, "array": [1.0, 2.0],
                                 "missing": _DELETE},
    ("/tree", "flat_rtol"): {"string": "abc", "NaN": np.nan, "negative": -1e-5, "above one": 2.0,
                             "array": [1e-5, 1e-5]},  # (missing: float32's, as maps before it)
    ("/tree", "flat_atol"): {"string": "abc", "NaN": np.nan, "inf": np.inf, "negative": -1e-9,
                             "array": [1e-9, 1e-9]},  # (missing: none, as maps before it)
    ("/minima", "data_range"): {"string": "abc", "reversed": [1.0, -1.0], "NaN": [np.nan, 1.0],
                                "three": [0.0, 1.0, 2.0]},
    ("/minima", "temperature"): {"string": "abc", "negative": -1.0, "NaN": np.nan},
    ("/levels", "temperature"): {"string": "abc", "negative": -1.0},
    ("/levels", "alpha_unit"): {"string": "abc", "NaN": np.nan, "negative": -2.0},
}

#: Attributes of the image map only (funnel, diagnosis).
ATTR_BAD_IMAGE: dict[tuple[str, str], dict[str, Any]] = {
    ("/funnel/entropy", "score"): {"string": "abc", "array": [0.1, 0.2], "missing": _DELETE},  # NaN: not available
    ("/minima", "funnel_added"): {"string": "abc", "negative": -3, "float": 1.5, "too many": 10**6},
}

MAP_COMMANDS: dict[str, Callable[[Path], list[str]]] = {
    "info": lambda path: ["info", path],
    "tree": lambda path: ["tree", path],
}


def _map_case(name: str, kind: str, mutate: Callable[[h5py.File], None], command: str) -> Case:
    def build(folder: Path) -> list[str]:
        path = write_map_file(folder / "bad.h5", kind)
        with h5py.File(path, "r+") as f:
            mutate(f)
        return MAP_COMMANDS[command](path)

    return Case(name, build)


def map_cases() -> list[Case]:
    cases = []
    for kind in ("wells", "image"):
        with h5py.File(io.BytesIO(valid_map_bytes(kind)), "r") as f:
            paths = []
            f.visititems(lambda name, item: paths.append(name) if isinstance(item, h5py.Dataset) else None)
            mutations = {p: map_mutations(f, p) for p in paths}
        # the wells map has every dataset of the core and the grid; the image map adds
        # funnel and diagnosis (core datasets are mutated once, in the wells map)
        for p, by_label in mutations.items():
            if kind == "image" and not p.startswith(("funnel", "diagnosis")):
                continue
            if kind == "wells" and p.startswith("levels/") and not p.startswith("levels/0/"):
                continue
            for label, mutate in by_label.items():
                cases.append(_map_case(f"map {kind} /{p} {label} (info)", kind, mutate, "info"))
        attrs = dict(ATTR_BAD) if kind == "wells" else dict(ATTR_BAD_IMAGE)
        for (group, key), values in attrs.items():
            for label, value in values.items():
                for command in MAP_COMMANDS:
                    cases.append(_map_case(f"map {kind} attr {group}:{key} {label} ({command})", kind,
                                           _attr(group, key, value), command))
    return cases


# ----------------------------------------------------------------------- option cases


def option_cases() -> list[Case]:
    """Bad option values of every command (cheap: they are refused before any work)."""

    def with_ckpt(args: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        def build(folder: Path) -> list[str]:
            write_checkpoint(folder / "ok.pt", valid_checkpoint())
            return args(folder)
        return build

    def with_map(args: Callable[[Path], list[str]], kind: str = "wells") -> Callable[[Path], list[str]]:
        def build(folder: Path) -> list[str]:
            write_map_file(folder / "ok.h5", kind)
            write_energy_file(folder)
            return args(folder)
        return build

    def with_energy(args: Callable[[Path], list[str]]) -> Callable[[Path], list[str]]:
        def build(folder: Path) -> list[str]:
            write_energy_file(folder)
            return args(folder)
        return build

    def with_npz(x: Any, args: Callable[[Path], list[str]], header_rows: int | None = None) -> Callable[[Path], list[str]]:
        def build(folder: Path) -> list[str]:
            data = _npz_bytes(x=x)
            if header_rows is not None:
                data = _npz_claiming(x, header_rows)
            (folder / "data.npz").write_bytes(data)
            write_energy_file(folder)
            return args(folder)
        return build

    c: list[Case] = []
    # info
    c += [Case("info: no such file", lambda d: ["info", d / "missing.pt"]),
          Case("info: a folder", lambda d: ["info", d])]
    # tree
    for label, extra in (("--level 99", ["--level", "99"]), ("--level -1", ["--level", "-1"]),
                         ("--level abc", ["--level", "abc"]), ("--max-leaves 0", ["--max-leaves", "0"]),
                         ("--plot with a bad suffix", ["--plot", "t.xyz"])):
        c.append(Case(f"tree {label}", with_map(lambda d, e=extra: ["tree", d / "ok.h5", *e])))
    # sample / check with a valid checkpoint
    for command in ("sample", "check"):
        for label, extra in (("--chains 0", ["--chains", "0"]), ("--chains abc", ["--chains", "abc"]),
                             ("--eps nan", ["--eps", "nan"]), ("--eps -1", ["--eps", "-1"]),
                             ("--eps inf", ["--eps", "inf"]), ("--eps 1e300", ["--eps", "1e300"]),
                             ("--temperature 1e300", ["--temperature", "1e300"]),
                             ("--temperature nan", ["--temperature", "nan"]),
                             ("--temperature -1", ["--temperature", "-1"]), ("--seed 1.5", ["--seed", "1.5"]),
                             ("--device tpu", ["--device", "tpu"]), ("--dataset nosuch", ["--dataset", "nosuch"]),
                             ("--dataset npz:missing", ["--dataset", "npz:missing.npz"])):
            c.append(Case(f"{command} {label}", with_ckpt(
                lambda d, e=extra, cmd=command: [cmd, d / "ok.pt", *e, "--quiet", "--out", d / "o.png"])))
    c.append(Case("sample --steps -1", with_ckpt(lambda d: ["sample", d / "ok.pt", "--steps", "-1"])))
    c.append(Case("sample --chains 10^13", with_ckpt(
        lambda d: ["sample", d / "ok.pt", "--chains", "10000000000000", "--init", "noise", "--steps", "1", "--quiet",
                   "--out", d / "o.png"])))
    for label, value in (("nan", "nan"), ("zero", "0"), ("decreasing", "3,1"), ("text", "a,b"), ("empty", "")):
        c.append(Case(f"check --multiples {label}", with_ckpt(
            lambda d, v=value: ["check", d / "ok.pt", "--multiples", v, "--quiet"])))
    c.append(Case("check --nn-ratio nan", with_ckpt(lambda d: ["check", d / "ok.pt", "--nn-ratio", "nan"])))
    # map
    energy = lambda d: f"{d / 'energy.py'}:bowl"  # noqa: E731
    for label, extra in (("--shape 99999999999", ["--shape", "99999999999"]),
                         ("--shape 100000,100000,100000", ["--shape", "100000,100000,100000"]),
                         ("--shape 0", ["--shape", "0"]), ("--shape -2", ["--shape", "-2"]),
                         ("--shape abc", ["--shape", "abc"]), ("--shape empty", ["--shape", ""]),
                         ("--box 1 -1", ["--shape", "2", "--box", "1", "-1"]),
                         ("--box nan 1", ["--shape", "2", "--box", "nan", "1"]),
                         ("--chains 0", ["--shape", "2", "--chains", "0"]),
                         ("--ladder nan", ["--shape", "2", "--ladder", "nan"]),
                         ("--ladder -1", ["--shape", "2", "--ladder", "-1"]),
                         ("--delta -1", ["--shape", "2", "--delta", "-1"]),
                         ("--delta nan", ["--shape", "2", "--delta", "nan"]),
                         ("--alpha-unit inf", ["--shape", "2", "--alpha-unit", "inf"]),
                         ("--alpha nan", ["--shape", "2", "--alpha", "nan"]),
                         ("--ad-temperature nan", ["--shape", "2", "--ad-temperature", "nan"]),
                         ("--ad-eps inf", ["--shape", "2", "--ad-eps", "inf"]),
                         ("--merge-radius nan", ["--shape", "2", "--merge-radius", "nan"]),
                         ("--grad-tol nan", ["--shape", "2", "--grad-tol", "nan"]),
                         ("--model-kwargs [1]", ["--shape", "2", "--model-kwargs", "[1]"]),
                         ("--eps 1e300", ["--shape", "2", "--box", "-1", "1", "--eps", "1e300", "--chains", "2"]),
                         ("--float64 with --shape 10^12", ["--shape", "1000000000000", "--float64"])):
        c.append(Case(f"map {label}", with_energy(
            lambda d, e=extra: ["map", "--energy", energy(d), *e, "--quiet", "--out", d / "o.h5"])))
    c.append(Case("map --chains 10^12", with_energy(
        lambda d: ["map", "--energy", energy(d), "--shape", "1000", "--box", "-1", "1", "--chains", "1000000000000",
                   "--quiet", "--out", d / "o.h5"])))
    c.append(Case("map an energy that raises after the probe", with_energy(
        lambda d: ["map", "--energy", f"{d / 'energy.py'}:raises_later", "--shape", "2", "--box", "-1", "1",
                   "--chains", "4", "--steps", "2", "--rounds", "1", "--quiet", "--out", d / "o.h5"])))
    c.append(Case("map a network that raises after the probe", with_energy(
        lambda d: ["map", "--model", f"{d / 'energy.py'}:RaisesLater", "--shape", "2", "--box", "-1", "1",
                   "--chains", "4", "--steps", "2", "--rounds", "1", "--quiet", "--out", d / "o.h5"])))
    c.append(Case("map an energy of NaN", with_energy(
        lambda d: ["map", "--energy", f"{d / 'energy.py'}:nan_energy", "--shape", "2", "--box", "-1", "1",
                   "--chains", "4", "--steps", "2", "--rounds", "1", "--quiet", "--out", d / "o.h5"])))
    # data sets that claim more than they hold
    for label, x, rows in (("npz claiming 10^12 rows", np.zeros((4, 2)), 10**12),
                           ("npz claiming 10^6 rows", np.zeros((4, 2)), 10**6)):
        c.append(Case(f"map --dataset {label}", with_npz(x, lambda d: [
            "map", "--energy", energy(d), "--shape", "2", "--box", "-1", "1", "--dataset", f"npz:{d / 'data.npz'}",
            "--init", "data", "--chains", "2", "--quiet", "--out", d / "o.h5"], header_rows=rows)))
        c.append(Case(f"sample --dataset {label}", lambda d, x=x, rows=rows: (
            with_npz(x, lambda d: [], header_rows=rows)(d),
            write_checkpoint(d / "ok.pt", valid_checkpoint()),
            ["sample", d / "ok.pt", "--dataset", f"npz:{d / 'data.npz'}", "--chains", "2", "--steps", "1", "--quiet",
             "--out", d / "o.png"])[-1]))
    c.append(Case("map --dataset npz of objects", lambda d: (
        (d / "data.npz").write_bytes(_npz_bytes_pickled()), write_energy_file(d),
        ["map", "--energy", energy(d), "--shape", "2", "--box", "-1", "1", "--dataset", f"npz:{d / 'data.npz'}",
         "--init", "data", "--chains", "2", "--quiet", "--out", d / "o.h5"])[-1]))
    # funnel
    for label, extra in (("--noise nan", ["--noise", "nan"]), ("--noise -1", ["--noise", "-1"]),
                         ("--noise abc", ["--noise", "abc"]), ("--noise-unit nan", ["--noise-unit", "nan"]),
                         ("--noise-unit -1", ["--noise-unit", "-1"]), ("--chains 0", ["--chains", "0"]),
                         ("--eps nan", ["--eps", "nan"]), ("--eps 1e300", ["--eps", "1e300", "--chains", "2"]),
                         ("--steps -5", ["--steps", "-5"]),
                         ("--energy raising", ["--energy", "energy.py:raises_later", "--chains", "2", "--steps", "2"])):
        c.append(Case(f"funnel {label}", with_map(lambda d, e=extra: ["funnel", d / "ok.h5", *e, "--quiet"])))
    # diagnose
    for label, extra in (("--limit 1", ["--limit", "1"]), ("--nn-quantile 2", ["--nn-quantile", "2"]),
                         ("--nn-factor nan", ["--nn-factor", "nan"]),
                         ("--energy-quantile nan", ["--energy-quantile", "nan"]),
                         ("--funnel-score 0", ["--funnel-score", "0"]),
                         ("--dataset nosuch", ["--dataset", "nosuch"])):
        c.append(Case(f"diagnose {label}", with_map(lambda d, e=extra: ["diagnose", d / "ok.h5", *e])))
    # train: --set values
    for label, value in (("sampler.epsilon=nan", "sampler.epsilon=nan"), ("sampler.epsilon=inf", "sampler.epsilon=inf"),
                         ("sampler.epsilon=-1", "sampler.epsilon=-1"), ("sampler.epsilon=abc", "sampler.epsilon=abc"),
                         ("sampler.epsilon=0", "sampler.epsilon=0"), ("sampler.tau=nan", "sampler.tau=nan"),
                         ("sampler.steps=1.5", "sampler.steps=1.5"), ("sampler.steps=-3", "sampler.steps=-3"),
                         ("sampler.steps=1e20", "sampler.steps=1e20"),
                         ("sampler.bank_size=10^13", "sampler.bank_size=10000000000000"),
                         ("train.batch_size=10^13", "train.batch_size=10000000000000"),
                         ("optim.lr=nan", "optim.lr=nan"), ("optim.lr=-1", "optim.lr=-1"),
                         ("optim.betas=nan,1", "optim.betas=nan,1"), ("optim.betas=2,0.5", "optim.betas=2,0.5"),
                         ("optim.momentum=-1", "optim.momentum=-1"), ("optim.weight_decay=nan", "optim.weight_decay=nan"),
                         ("optim.lr_decay=2", "optim.lr_decay=2"), ("data.noise=nan", "data.noise=nan"),
                         ("data.size=0", "data.size=0"), ("data.size=-3", "data.size=-3"),
                         ("data.limit=0", "data.limit=0"), ("data.name=7", "data.name="),
                         ("model.arch=nosuch", "model.arch=nosuch"), ("model.kwargs=[1]", "model.kwargs=[1]"),
                         ("model.kwargs.n_f=abc", "model.kwargs.n_f=abc"),
                         ("model.kwargs.n_f=10^12", "model.kwargs.n_f=1000000000000"),
                         ("model.kwargs.nosuch=1", "model.kwargs.nosuch=1"),
                         ("model.energy_scale=nan", "model.energy_scale=nan"),
                         ("model.energy_scale=-1", "model.energy_scale=-1"),
                         ("train.seed=1.5", "train.seed=1.5"),
                         ("regime=other", "regime=other"),
                         ("sampler={bad", "sampler={bad"), ("no equals", "sampler.steps"),
                         ("unknown key", "sampler.nosuch=1")):
        c.append(Case(f"train --set {label}", lambda d, v=value: [
            "train", "--preset", "rings-demo", "--out", d / "t.pt", "--steps", "1", "--quiet", "--set", v]))
    c.append(Case("train --resume a text file", lambda d: (
        (d / "t.pt").write_text("not a checkpoint"), ["train", "--out", d / "t.pt", "--resume", "--quiet"])[-1]))
    c.append(Case("train --resume config not a mapping", lambda d: (
        write_checkpoint(d / "t.pt", {**valid_checkpoint(), "config": {"preset": "x", "train": "abc"}}),
        ["train", "--out", d / "t.pt", "--resume", "--quiet"])[-1]))
    c.append(Case("train --resume config with a NaN epsilon", lambda d: (
        write_checkpoint(d / "t.pt", {**valid_checkpoint(), "config": {"sampler": {"epsilon": math.nan}}}),
        ["train", "--out", d / "t.pt", "--resume", "--quiet"])[-1]))
    c.append(Case("train --resume config with an unknown key", lambda d: (
        write_checkpoint(d / "t.pt", {**valid_checkpoint(), "config": {"nosuch": 1}}),
        ["train", "--out", d / "t.pt", "--resume", "--quiet"])[-1]))
    # compare
    for label, make in (("a text file", lambda d: (d / "b.pt").write_text("text")),
                        ("an empty file", lambda d: (d / "b.pt").write_bytes(b"")),
                        ("a bad map", lambda d: (write_map_file(d / "b.h5"),
                                                 _mutate(d / "b.h5", lambda f: _replace(f, "minima/energy", np.full(9, np.nan))))),
                        ("a checkpoint with a string epsilon", lambda d: write_checkpoint(
                            d / "b.pt", mutate_checkpoint(valid_checkpoint(), "sampler.epsilon", "str")))):
        def build(d: Path, make: Callable[[Path], Any] = make) -> list[str]:
            write_map_file(d / "a.h5")
            make(d)
            other = d / "b.h5" if (d / "b.h5").exists() else d / "b.pt"
            return ["compare", d / "a.h5", other, "--no-check", "--quiet", "--out", d / "c.png"]

        c.append(Case(f"compare with {label}", build))
    c.append(Case("compare --names a,a", with_map(lambda d: ["compare", d / "ok.h5", d / "ok.h5", "--names", "a,a"])))
    c.append(Case("compare --chains 0", with_map(lambda d: ["compare", d / "ok.h5", d / "ok.h5", "--chains", "0"])))
    return c


def _mutate(path: Path, change: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "r+") as f:
        change(f)


def _npz_claiming(x: np.ndarray, rows: int) -> bytes:
    """An npz whose array header claims ``rows`` rows but holds only those of ``x``."""
    x = np.ascontiguousarray(x)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": np.lib.format.dtype_to_descr(x.dtype),
                                                  "fortran_order": False, "shape": (rows, *x.shape[1:])})
    member = header.getvalue() + x.tobytes()
    return _zip_bytes({"x.npy": member})


def _npz_bytes_pickled() -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=np.array([{"a": 1}, None], dtype=object))
    return buf.getvalue()


# ------------------------------------------------------- files that are not files, outputs that are inputs


def _special_file(path: Path, kind: str) -> Path:
    """A FIFO, or a link to /dev/zero, at ``path`` (a read of it blocks forever, or never ends)."""
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    return path


def special_cases() -> list[Case]:
    """Inputs that are not regular files, and outputs that name the command's own input."""
    c = []
    for kind in ("fifo", "/dev/zero"):
        for name, argv in (("info", lambda p: ["info", p]), ("tree", lambda p: ["tree", p]),
                           ("diagnose", lambda p: ["diagnose", p])):
            c.append(Case(f"{name} a map that is a {kind}",
                          lambda d, kind=kind, argv=argv: argv(_special_file(d / "m.h5", kind))))
        for name, argv in (("info", lambda p: ["info", p]), ("map", lambda p: ["map", p, "--quiet"]),
                           ("sample", lambda p: ["sample", p, "--quiet"])):
            c.append(Case(f"{name} a checkpoint that is a {kind}",
                          lambda d, kind=kind, argv=argv: argv(_special_file(d / "c.pt", kind))))

    def report_over_map(d: Path) -> list[str]:
        write_map_file(d / "m.h5")
        write_energy_file(d)
        return ["diagnose", d / "m.h5", "--report", d / "m.h5", "--force", "--energy", "energy.py:bowl"]

    def map_over_checkpoint(d: Path) -> list[str]:
        write_checkpoint(d / "c.pt", valid_checkpoint())
        return ["map", d / "c.pt", "--out", d / "c.pt", "--force", "--quiet"]

    def external_storage(d: Path) -> list[str]:
        (d / "secret.txt").write_bytes(np.arange(9, dtype=np.int64).tobytes())
        path = write_map_file(d / "m.h5")
        with h5py.File(path, "r+") as f:
            del f["minima/hits"]
            f.create_dataset("minima/hits", shape=(9,), dtype=np.int64, external=[(str(d / "secret.txt"), 0, 72)])
        return ["info", path]

    def packed_claim(d: Path) -> list[str]:  # (a few KB claiming 8 GB: chunks never written)
        path = write_map_file(d / "m.h5")
        with h5py.File(path, "r+") as f:
            del f["grid/energy"]
            f.create_dataset("grid/energy", shape=(32768, 32768), dtype=np.float64, chunks=(1024, 1024),
                             compression="gzip")
        return ["info", path]

    c.append(Case("info a map whose dataset claims 8 GB from a few KB", packed_claim))
    c.append(Case("diagnose --report the map itself --force", report_over_map))
    c.append(Case("map --out the checkpoint itself --force", map_over_checkpoint))
    c.append(Case("info a map whose dataset keeps its values in another file", external_storage))
    return c


# ----------------------------------------------------------------------------- all


def all_cases() -> list[Case]:
    """The whole corpus, in a fixed order."""
    cases = checkpoint_cases() + file_cases() + map_cases() + option_cases() + special_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), sorted({n for n in names if names.count(n) > 1})
    return cases
