"""Energies from files, and the energy behind a map.

Exactly one source per energy (:func:`resolve_energy`): one of our checkpoints, a bare
state dict of the Anatomy paper's reference code, a TorchScript file, a Python function
(``file.py:function`` or ``package.module:function``) or a network factory with its
weights. :func:`energy_for_map` rebuilds the energy a map records, :func:`map_of` finds the
map of a model file, :func:`load_data_like` the examples a map's minima compare with.

The command line's options for these are in :mod:`landscape.cli.options`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.energy import Energy, use_cpu_threads
from landscape.errors import LandscapeError
from landscape.io.files import recorded_elsewhere as _recorded_elsewhere
from landscape.io.files import recorded_file as _recorded_file
from landscape.io.files import check_regular_file

_ONE_SOURCE = "give a checkpoint, --energy file.py:function, or --model file.py:Factory --weights W"
_IMAGE_BOX = (-1.0, 1.0)  # the reference code's images, like ours, are scaled to [-1, 1]


@dataclass
class LoadedEnergy:
    """An energy and what is known about where it came from.

    Attributes
    ----------
    energy : Energy
    source : dict
        Plain JSON data recording what was loaded (for the map file's ``source``):
        ``kind`` (checkpoint, state_dict, torchscript, function, model) and the paths,
        hashes, spec, shape, box and dtype that reproduce it.
    checkpoint : dict or None
        Our checkpoint, when the source is one.
    dataset : str or None
        The data set the checkpoint was trained on.
    sampler : dict or None
        The checkpoint's training sampler: epsilon, tau, steps, init (and mh).
    regime : str
        ``convergent``, ``non-convergent`` or ``unknown``.
    label : str
        A short name for reports: the file's stem, or the function or factory name.
    """

    energy: Energy
    source: dict[str, Any]
    checkpoint: dict[str, Any] | None = None
    dataset: str | None = None
    sampler: dict[str, Any] | None = None
    regime: str = "unknown"
    label: str = ""

    def data_limit(self, name: str | None, limit: int | None = None) -> int | None:
        """At most how many examples of data set ``name`` to take (``limit``, and for a
        checkpoint trained on the first ``data.limit`` examples of it, those)."""
        from landscape.train.checkpoint import data_limit

        return data_limit(self.checkpoint, name, limit) if self.checkpoint is not None else limit

    def __post_init__(self) -> None:
        # Every command that loads an energy runs it with the one thread policy.
        use_cpu_threads(self.energy.fn, self.energy.device)


def resolve_energy(
    target: str | Path | None,
    *,
    energy: str | None = None,
    model: str | None = None,
    weights: str | Path | None = None,
    model_kwargs: dict[str, Any] | str | None = None,
    shape: tuple[int, ...] | str | None = None,
    box: tuple[float, float] | None = None,
    arch: str | None = None,
    train_epsilon: float | None = None,
    float64: bool = False,
    device: str = "auto",
) -> LoadedEnergy:
    """Load the one energy the command line names.

    Rules: exactly one of ``target`` (a file), ``--energy`` and ``--model``. A file is a
    TorchScript archive (needs ``--shape``), one of our checkpoints (shape and range from
    it; ``--box`` overrides the range, a different ``--shape`` is an error) or a bare state
    dict of the Anatomy reference code (needs ``--arch`` and ``--train-epsilon``; the
    shape defaults to the arch's). ``--energy`` needs ``--shape``; so does ``--model``
    unless its network has an ``input_shape``. ``--weights`` and ``--model-kwargs`` go
    only with ``--model``, ``--arch`` and ``--train-epsilon`` only with a bare state dict.

    Raises
    ------
    LandscapeError
        Any rule broken, or a source that does not load; one line.
    """
    import torch

    from landscape.io import sources
    from landscape.train.checkpoint import sha256_of

    given = [name for name, value in (("a checkpoint", target), ("--energy", energy), ("--model", model)) if value]
    if len(given) != 1:
        lead = "no energy given" if not given else f"{' and '.join(given)} given together"
        raise LandscapeError(f"{lead}: {_ONE_SOURCE}")
    if model is None:
        for flag, value in (("--weights", weights), ("--model-kwargs", model_kwargs)):
            if value is not None:
                raise LandscapeError(f"{flag} goes with --model file.py:Factory: add --model or drop {flag}")
    if target is None:
        for flag, value in (("--arch", arch), ("--train-epsilon", train_epsilon)):
            if value is not None:
                raise LandscapeError(f"{flag} is for a bare state-dict file given as the checkpoint: drop it")
    if shape is not None:
        shape = sources.parse_shape(shape)
    if box is not None:
        box = _check_box(box)
    dev = sources.pick_device(device)
    dtype = torch.float64 if float64 else torch.float32

    if energy is not None:
        if shape is None:
            raise LandscapeError(f"--energy {energy} needs --shape D[,D...] (the shape of one example, e.g. --shape 2)")
        e = sources.energy_from_function(energy, shape, box, device=dev, dtype=dtype)
        source = {"kind": "function", "spec": energy, **e.geometry(box)}
        return LoadedEnergy(e, source, label=energy.rpartition(":")[2])

    if model is not None:
        kwargs = _parse_kwargs(model_kwargs) if isinstance(model_kwargs, str) else dict(model_kwargs or {})
        e = sources.energy_from_factory(model, weights, shape, box, device=dev, kwargs=kwargs, dtype=dtype)
        source = {
            "kind": "model", "spec": model,
            "weights": str(weights) if weights is not None else None,
            "weights_sha256": sha256_of(weights) if weights is not None else None,
            "kwargs": kwargs, **e.geometry(box),
        }
        label = Path(weights).stem if weights is not None else model.rpartition(":")[2]
        return LoadedEnergy(e, source, label=label)

    return _from_file(Path(target), shape, box, arch, train_epsilon, dev, dtype)


def _from_file(
    path: Path,
    shape: tuple[int, ...] | None,
    box: tuple[float, float] | None,
    arch: str | None,
    train_epsilon: float | None,
    device: Any,
    dtype: Any,
    expect: str | None = None,
) -> LoadedEnergy:
    """Load a model file. With ``expect`` (the kind a map's record names), a file of any
    other kind is refused before anything is loaded: a record that says "checkpoint" never
    gets a TorchScript archive (code) loaded."""
    import torch

    from landscape.io import sources
    from landscape.train.nets import ARCHS
    from landscape.train.checkpoint import (
        FORMAT,
        energy_from_checkpoint,
        energy_from_reference_state_dict,
        read_pt,
        sha256_of,
    )

    if not path.exists():
        raise LandscapeError(f"{path}: no such file")
    if path.is_dir():
        raise LandscapeError(f"{path}: is a directory, expected a checkpoint file")
    check_regular_file(path, "checkpoint file")

    def source(kind: str, e: Energy, **extra: Any) -> dict[str, Any]:
        return {"kind": kind, "path": str(path), "sha256": sha256_of(path), **extra, **e.geometry(e.data_range)}

    if expect is not None and expect != "torchscript" and sources.is_torchscript(path):
        raise LandscapeError(f"{path} is a TorchScript file (code), not the {expect} the map records: refused")
    if sources.is_torchscript(path):
        _no_reference_options(path, "a TorchScript file", arch, train_epsilon)
        if shape is None:
            raise LandscapeError(f"{path} is a TorchScript file: give --shape D[,D...] (the shape of one example)")
        e = sources.energy_from_torchscript(path, shape, box, device=device, dtype=dtype)
        return LoadedEnergy(e, source("torchscript", e), label=path.stem)

    obj = read_pt(path)
    if expect is not None:
        found = ("checkpoint" if isinstance(obj, dict) and obj.get("format") == FORMAT
                 else "state_dict" if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())
                 else "another kind of file")
        if found != expect:
            raise LandscapeError(f"{path} is {found.replace('_', ' ')}, not the {expect.replace('_', ' ')} the map records")
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        _no_reference_options(path, "an ebm-landscape checkpoint", arch, train_epsilon)
        e, ckpt = energy_from_checkpoint(path, device=device)
        if shape is not None and tuple(shape) != e.shape:
            raise LandscapeError(
                f"{path}: the checkpoint's examples have shape {list(e.shape)}, not --shape {list(shape)}: drop --shape"
            )
        module = e.module
        if module is not None and dtype != torch.float32:
            module.to(dtype=dtype)
        e = Energy(e.fn, e.shape, data_range=box if box is not None else e.data_range, device=device, dtype=dtype,
                   name=e.name, sampler=e.sampler)
        regime = ckpt.get("regime")
        return LoadedEnergy(
            e, source("checkpoint", e), checkpoint=ckpt, dataset=(ckpt.get("data") or {}).get("name"),
            sampler=dict(ckpt["sampler"]) if isinstance(ckpt.get("sampler"), dict) else None,
            regime=regime if isinstance(regime, str) else "unknown", label=path.stem,
        )

    if isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None or train_epsilon is None:
            raise LandscapeError(
                f"{path} is a bare state dict: add --arch ({', '.join(sorted(ARCHS))}) and --train-epsilon EPS "
                "(the Langevin step size it was trained with) to load it as Anatomy reference code, "
                "or --model file.py:Factory --weights FILE for your own network"
            )
        if shape is None:
            shape = _arch_shape(arch)
        if box is None and len(shape) == 3:
            box = _IMAGE_BOX
        e = energy_from_reference_state_dict(path, arch, train_epsilon, shape=tuple(shape), data_range=box, device=device)
        if dtype != torch.float32:
            e.fn.to(dtype=dtype)
            e = Energy(e.fn, e.shape, data_range=e.data_range, device=device, dtype=dtype, name=e.name,
                       sampler=e.sampler)
        sources.check_energy(e)
        return LoadedEnergy(
            e, source("state_dict", e, arch=arch, train_epsilon=float(train_epsilon)), label=path.stem,
        )

    if isinstance(obj, dict) and (any(isinstance(obj.get(k), dict) for k in ("state_dict", "model_state_dict")) or any(
            isinstance(v, dict) and v and all(isinstance(t, torch.Tensor) for t in v.values()) for v in obj.values())):
        # (also a training script's {"model": ..., "optimizer": ..., "step": ...})
        raise LandscapeError(
            f"{path} holds a model state dict but is not an ebm-landscape checkpoint: "
            f"load it with --model file.py:Factory --weights {path}"
        )
    raise LandscapeError(f"{path}: neither an ebm-landscape checkpoint, a state dict, nor a TorchScript file")


def _no_reference_options(path: Path, what: str, arch: str | None, train_epsilon: float | None) -> None:
    for flag, value in (("--arch", arch), ("--train-epsilon", train_epsilon)):
        if value is not None:
            raise LandscapeError(f"{path} is {what}: {flag} is only for bare state dicts, drop it")


def _arch_shape(arch: str) -> tuple[int, ...]:
    """The input shape of an arch with its default constructor arguments."""
    import torch

    from landscape.train.nets import build_model

    with torch.device("meta"):  # only the shape is wanted: allocate nothing
        return tuple(build_model(arch).input_shape)


def _parse_kwargs(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LandscapeError(f"--model-kwargs is not valid JSON ({exc.msg} at character {exc.pos}): {text!r}") from None
    if not isinstance(value, dict):
        raise LandscapeError(f"--model-kwargs must be a JSON object like '{{\"width\": 64}}', got {text!r}")
    return value


def _check_box(box: tuple[float, float]) -> tuple[float, float]:
    import math

    low, high = (float(v) for v in box)
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise LandscapeError(f"--box LOW HIGH needs finite LOW < HIGH, got {low:g} {high:g}")
    return low, high


def map_of(model: Path) -> Path | None:
    """The map of a model file where ``landscape map`` puts it: ``<stem>.h5`` beside the
    model, else in the current folder; None if neither exists."""
    for candidate in (model.with_suffix(".h5"), Path(f"{model.stem}.h5")):
        if candidate.is_file():
            return candidate
    return None


def source_model_file(map_path: Path, content: Any) -> Path | None:
    """Our checkpoint (or bare state dict) a map was made of, if the map records its sha256
    and the file is found (:func:`_recorded_file`) unchanged; None otherwise (TorchScript and
    Python energies are never taken from a record)."""
    from landscape.train.checkpoint import sha256_of

    source = content.meta.source if content.meta is not None else None
    if not isinstance(source, dict) or source.get("kind") not in _DATA_KINDS or not source.get("sha256"):
        return None
    path = _recorded_file(map_path, str(source.get("path", "")))
    if path is None or sha256_of(path) != source["sha256"]:
        return None
    return path


def check_map_matches(map_path: Path, content: Any, model: Path) -> None:
    """LandscapeError unless the map was made of ``model`` (by the sha256 it recorded)."""
    from landscape.train.checkpoint import sha256_of

    source = content.meta.source if content.meta is not None else None
    recorded = source.get("sha256") if isinstance(source, dict) else None
    if not recorded:
        raise LandscapeError(f"{map_path} does not record which model file it was made of: cannot check it against {model}")
    if sha256_of(model) != recorded:
        what = source.get("path") or "another model"
        if what != "another model" and Path(what).resolve() == Path(model).resolve():
            raise LandscapeError(f"{model} changed since {map_path} was made of it (sha256 differs: trained further?):"
                                 f" map it again (landscape map {model} --force)")
        raise LandscapeError(
            f"{map_path} was made from another model ({what}, sha256 {str(recorded)[:12]}), not from {model}: "
            f"map it first (landscape map {model}) or give its own map"
        )


#: Map sources that are data (weights read as tensors, an architecture from our own table):
#: rebuilt from the record when the file is found and its sha256 matches.
_DATA_KINDS = ("checkpoint", "state_dict")
#: Our own analytic potentials: a map of one names it, and it is rebuilt by that name.
_OWN_FUNCTIONS = "landscape.potentials:"


def _own_potential(spec: str) -> bool:
    """``spec`` is ``landscape.potentials:NAME`` naming a function defined in that module:
    one of our own analytic potentials, which a map's record may name. Anything else that
    starts so (``landscape.potentials:x.py:f`` is a file of that name in the current folder
    to the importer) is code the user did not name."""
    if not spec.startswith(_OWN_FUNCTIONS):
        return False
    name = spec[len(_OWN_FUNCTIONS):]
    if not name.isidentifier() or name.startswith("_"):
        return False
    import inspect

    from landscape import potentials

    obj = getattr(potentials, name, None)
    return inspect.isfunction(obj) and obj.__module__ == potentials.__name__


def energy_for_map(
    map_path: Path,
    content: Any,
    *,
    model: Path | None = None,
    energy: str | None = None,
    network: str | None = None,
    weights: Path | None = None,
    device: str = "auto",
) -> LoadedEnergy:
    """The energy a map was made of.

    A map is a file anyone may send, so nothing it records is ever imported or run:

    - our checkpoints and bare state dicts (data: tensors and an architecture from our own
      table) are rebuilt from the record when the file is found where the user pointed
      (:func:`_recorded_file`) and its sha256 matches the recorded one (a record without
      one is refused);
    - a TorchScript file is code: only the file the user names (``model``) is loaded;
    - a Python function or network is code: only what the user names (``energy``,
      ``network`` with ``weights``) is run, with the shape, range and dtype the map records,
      and it must give the map's minimum energies back. Our own analytic potentials
      (``landscape.potentials:NAME``) are the one exception.

    ``model`` is the model file to use instead of the recorded path (it must be the same
    file: its sha256 is checked).

    Raises
    ------
    LandscapeError
        The source is unknown, missing, changed since mapping, code the user did not name,
        not the energy of the map, or does not load (one line).
    """
    from landscape.train.checkpoint import sha256_of

    source = content.meta.source if content.meta is not None else None
    if not isinstance(source, dict) or not isinstance(source.get("kind"), str):
        raise LandscapeError(f"{map_path} does not record what energy it was made of")
    kind = source["kind"]
    shape, box, float64 = _recorded_geometry(map_path, source)
    if kind not in (*_DATA_KINDS, "torchscript", "function", "model"):
        raise LandscapeError(f"{map_path} records an energy of unknown kind {kind!r}")
    if kind in (*_DATA_KINDS, "torchscript"):
        for flag, value in (("--energy", energy), ("--model", network), ("--weights", weights)):
            if value is not None:
                raise LandscapeError(
                    f"{map_path} was made of a model file, not Python code: drop {flag} (a model file goes as "
                    "funnel's MODEL or diagnose's --model-file)"
                )
        recorded = str(source.get("path") or "")
        give = (f"give it: landscape funnel MODEL --map {map_path}, or landscape diagnose {map_path} "
                "--model-file MODEL")
        if model is not None:
            check_map_matches(map_path, content, model)
            path = model
        elif kind == "torchscript":
            raise LandscapeError(
                f"{map_path} was made of the TorchScript file {recorded or '(unnamed)'}, which is code; a map's "
                f"record never runs code: {give}"
            )
        else:
            if not isinstance(source.get("sha256"), str) or not source["sha256"]:
                raise LandscapeError(f"{map_path} does not record the sha256 of its model file: {give}")
            path = _recorded_file(map_path, recorded)
            if path is None:
                where = ("lies outside this folder and the map's (links followed), where a map's record is not "
                         "followed" if _recorded_elsewhere(map_path, recorded)
                         else "is not found beside the map or in this folder")
                raise LandscapeError(f"the model {map_path} was made of ({recorded}) {where}: {give}")
            if sha256_of(path) != source["sha256"]:
                raise LandscapeError(f"{path} changed since {map_path} was made of it (sha256 differs): map it again")
        import torch

        from landscape.io import sources as io_sources

        arch = source.get("arch") if kind == "state_dict" else None
        train_epsilon = source.get("train_epsilon") if kind == "state_dict" else None
        return _from_file(
            Path(path), shape if kind != "checkpoint" else None, box, arch,
            train_epsilon, io_sources.pick_device(device), torch.float64 if float64 else torch.float32,
            expect=kind if model is None else None,
        )
    if model is not None:
        raise LandscapeError(f"{map_path} maps a Python energy ({source.get('spec')}), not a model file: drop {model}")
    spec = str(source.get("spec") or "")
    if kind == "function":
        if network is not None or weights is not None:
            raise LandscapeError(f"{map_path} maps a Python function, not a network: use --energy, not --model/--weights")
        if energy is None and _own_potential(spec):
            return resolve_energy(None, energy=spec, shape=shape, box=box, float64=float64, device=device)
        if energy is None:
            trust = f" (pass --energy {spec} only if you trust that code)" if ":" in spec else ""
            raise LandscapeError(
                f"{map_path} maps the Python function {spec!r}; a map's record never runs code: name the energy "
                f"yourself with --energy FILE.py:FUNCTION{trust}"
            )
        loaded = resolve_energy(None, energy=energy, shape=shape, box=box, float64=float64, device=device)
        _check_reproduces(map_path, content, loaded, f"--energy {energy}")
        return loaded
    if energy is not None:
        raise LandscapeError(f"{map_path} maps a network, not a function: use --model (and --weights), not --energy")
    if network is None:
        recorded_weights = f" --weights {source.get('weights')}" if source.get("weights") else ""
        trust = f" (pass --model {spec}{recorded_weights} only if you trust that code)" if ":" in spec else ""
        raise LandscapeError(
            f"{map_path} maps the network {spec!r}; a map's record never runs code: name it yourself with --model "
            f"FILE.py:FACTORY{trust}"
        )
    if weights is None and source.get("weights"):
        weights = _recorded_file(map_path, str(source["weights"]))
        if weights is None:
            raise LandscapeError(f"the weights {map_path} was made with ({source['weights']}) are not found: give --weights")
        if source.get("weights_sha256") and sha256_of(weights) != source["weights_sha256"]:
            raise LandscapeError(f"{weights} changed since {map_path} was made of it (sha256 differs): map it again")
    kwargs = source.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise LandscapeError(f"{map_path}: its record's model kwargs are not a JSON object")
    loaded = resolve_energy(None, model=network, weights=weights, model_kwargs=kwargs, shape=shape, box=box,
                            float64=float64, device=device)
    _check_reproduces(map_path, content, loaded, f"--model {network}")
    return loaded


def _recorded_geometry(map_path: Path, source: dict[str, Any]) -> tuple[Any, Any, bool]:
    """The shape, box and dtype a map's source records, checked as data."""
    shape, box = source.get("shape"), source.get("box")
    if shape is not None and not (isinstance(shape, list) and shape
                                  and all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape)):
        raise LandscapeError(f"{map_path}: its record's shape {shape!r} is not a list of positive integers")
    if box is not None:
        if not (isinstance(box, list) and len(box) == 2 and all(isinstance(b, (int, float)) for b in box)):
            raise LandscapeError(f"{map_path}: its record's box {box!r} is not two numbers")
        box = _check_box(tuple(float(b) for b in box))
    return (tuple(shape) if shape else None), box, source.get("dtype") == "float64"


def _check_reproduces(map_path: Path, content: Any, loaded: LoadedEnergy, named: str) -> None:
    """LandscapeError unless the energy the user named gives the map's lowest minimum
    energies back: a check that it is the energy the map was made of."""
    from landscape.energy import check_gives_back, stage

    with stage(f"checking that it gives {map_path}'s minimum energies back"):
        check_gives_back(loaded.energy, content, named=named, where=str(map_path))


def load_data_like(dataset: str, data_root: Path | None, shape: tuple[int, ...], limit: int | None = 10000,
                   box: tuple[float, float] | None = None) -> Any:
    """The examples of ``dataset`` (at most ``limit``), images resized to ``shape`` and
    carried onto ``box``, the energy's value range (:meth:`Dataset.in_range`);
    LandscapeError (one line) if they do not have that shape."""
    return load_shaped(dataset, data_root, shape, limit, "the map's minima have shape").in_range(box)


def load_shaped(dataset: str, data_root: Path | None, shape: tuple[int, ...], limit: int | None,
                whose: str = "the energy expects") -> Any:
    """The :class:`~landscape.data.Dataset` ``dataset`` (at most ``limit`` examples),
    images resized to ``shape`` (an npz of flat grey rows read as such images), or a
    LandscapeError (one line) if its examples have another shape: ``data set ... has
    examples of shape [a], {whose} [b]``."""
    from landscape.data import load

    shape = tuple(shape)
    ds = load(dataset, size=shape[-1] if len(shape) == 3 else None, root=data_root, limit=limit, like=shape)
    if tuple(ds.shape) != shape:
        flat = len(ds.shape) == 1 and len(shape) == 3 and ds.shape[0] == math.prod(shape)
        raise LandscapeError(f"data set {dataset} has examples of shape {list(ds.shape)}, {whose} {list(shape)}" + (
            ": flat rows of colour images; store them as [N, C, H, W] or [N, H, W, C] in the npz" if flat else ""))
    return ds
