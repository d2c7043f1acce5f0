"""Checkpoints (`.pt`): the dict a checkpoint holds, written atomically, read safely.

A checkpoint is a plain dict that loads with ``torch.load(path, weights_only=True)``: no
code is ever unpickled from a file a user may have downloaded. It holds everything needed
to rebuild the model from it alone, and what an exact resume needs (optimizer state,
persistent bank, every rank's random generator state).
"""

from __future__ import annotations

import datetime
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape import checks
from landscape.energy import SAMPLER_KEYS, Energy
from landscape.errors import LandscapeError
from landscape.io.files import sha256_of  # noqa: F401 (where the commands import it from)
from landscape.io.files import atomic_path, load_torch
from landscape.io.sources import check_torch_file, keep_global_rng
from landscape.sampling.langevin import MAX_EPS
from landscape.train.config import INITS, MAX_CHAIN_STEPS, REGIMES
from landscape.train.nets import ARCHS, build_model, convert_reference_state_dict

FORMAT = "ebm-landscape/checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model", "state_dict", "data", "sampler", "regime", "step", "config")


def atomic_save(obj: Any, path: str | os.PathLike, copies: tuple[str | os.PathLike, ...] = ()) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it
    (:func:`landscape.io.files.atomic_path`): a run killed while writing leaves the
    previous checkpoint intact. The bytes are made in memory and written as one file, so a
    full disk is the system's "no space left" (a one-line error), not an error inside
    torch's zip writer. The same bytes go to each of ``copies`` first (each atomically,
    its folder created), then to ``path``: a run killed in between has its copies at least
    as far as ``path``, never behind it."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    for copy in copies:
        Path(copy).parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(copy) as tmp:
            tmp.write_bytes(buffer.getbuffer())
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read_pt(path: str | os.PathLike) -> Any:
    """Load a ``.pt`` file with ``weights_only=True``; any failure is one LandscapeError line
    (:func:`landscape.io.files.load_torch`)."""
    check_torch_file(path, "checkpoint")
    return load_torch(path, "checkpoint")


def _short(exc: BaseException) -> str:
    """One line of ``exc``'s message: its first, and the next where the first only
    introduces it (torch's "Error(s) in loading state_dict for Net:"), at most 240 characters."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    text = lines[0] if not lines[0].endswith(":") or len(lines) == 1 else f"{lines[0]} {lines[1]}"
    return text if len(text) <= 240 else text[:237] + "..."


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one of our checkpoints (:func:`validate_checkpoint`).

    Raises
    ------
    LandscapeError
        Missing, unreadable or unsafe file; a file that is not an ebm-landscape checkpoint;
        a newer format version; missing fields; a field of the wrong type or value.
    """
    ckpt = read_pt(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            hint = (" (it looks like a bare state dict: landscape map loads one with --model FILE.py:Net --weights "
                    "FILE, or as the Anatomy reference code's with --arch and --train-epsilon)")
        raise LandscapeError(f"{path}: not an ebm-landscape checkpoint{hint}")
    version = ckpt.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise checks.bad(path, "version", version, f"an integer from 1 to {VERSION}")
    if version > VERSION:
        raise LandscapeError(
            f"{path}: checkpoint version {version} is newer than this tool reads ({VERSION}); upgrade ebm-landscape"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise LandscapeError(f"{path}: checkpoint lacks {', '.join(missing)}")
    validate_checkpoint(ckpt, path)
    return ckpt


def validate_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> None:
    """Check every field a command reads, as data: types, finiteness, sizes, and that the
    weights fit the network the checkpoint names (built on the meta device: nothing is
    allocated).

    Raises
    ------
    LandscapeError
        One line naming the file, the field and the bad value.
    """
    model = checks.mapping(path, "model", ckpt["model"])
    arch = checks.choice(path, "model.arch", model.get("arch"), sorted(ARCHS))
    kwargs = checks.mapping(path, "model.kwargs", model.get("kwargs", {}))
    if not all(isinstance(k, str) for k in kwargs):
        raise checks.bad(path, "model.kwargs", kwargs, "a mapping with string keys")
    state_dict = checks.mapping(path, "state_dict", ckpt["state_dict"])
    for key, value in state_dict.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise checks.bad(path, f"state_dict[{key!r}]", value, "a tensor under a string key")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise LandscapeError(f"{path}: state_dict[{key!r}] holds non-finite weights (NaN or inf)")
    data = checks.mapping(path, "data", ckpt["data"])
    checks.text(path, "data.name", data.get("name"))
    shape = checks.shape(path, "data.shape", data.get("shape"))
    if data.get("range") is not None:
        checks.number_range(path, "data.range", data["range"])
    sampler = checks.mapping(path, "sampler", ckpt["sampler"])
    checks.number(path, "sampler.epsilon", sampler.get("epsilon"), above=0, maximum=MAX_EPS)
    checks.number(path, "sampler.tau", sampler.get("tau"), minimum=0, maximum=MAX_EPS)
    if "energy_scale" in kwargs:  # multiplies the network's float32 output
        checks.number(path, "model.kwargs.energy_scale", kwargs["energy_scale"], above=0, maximum=MAX_ENERGY_SCALE)
    checks.integer(path, "sampler.steps", sampler.get("steps"), minimum=1, maximum=MAX_CHAIN_STEPS)
    if "init" in sampler:
        checks.choice(path, "sampler.init", sampler["init"], INITS)
    if "mh" in sampler:
        checks.flag(path, "sampler.mh", sampler["mh"])
    checks.choice(path, "regime", ckpt["regime"], REGIMES)
    checks.integer(path, "step", ckpt["step"], minimum=0)
    config = checks.mapping(path, "config", ckpt["config"])
    for section in ("data", "model", "sampler", "optim", "train"):
        if section in config:
            checks.mapping(path, f"config.{section}", config[section])
    if "preset" in config:
        checks.text(path, "config.preset", config["preset"])
    if ckpt.get("metrics") is not None:
        checks.mapping(path, "metrics", ckpt["metrics"])
    for key in ("created", "tool_version"):
        if ckpt.get(key) is not None:
            checks.text(path, key, ckpt[key], empty=True)
    if ckpt.get("resume") is not None:
        _validate_resume(ckpt["resume"], shape, path)
    _validate_network(arch, kwargs, state_dict, shape, path)


#: The largest energy scale a checkpoint may record: it multiplies float32 outputs.
MAX_ENERGY_SCALE = 1e30


def _validate_resume(resume: Any, shape: tuple[int, ...], path: str | os.PathLike) -> None:
    resume = checks.mapping(path, "resume", resume)
    if resume.get("optimizer") is not None:
        checks.mapping(path, "resume.optimizer", resume["optimizer"])
    generators = resume.get("generators")
    if generators is not None:
        if not isinstance(generators, (list, tuple)) or not all(isinstance(rank, (list, tuple)) for rank in generators):
            raise checks.bad(path, "resume.generators", generators, "a list per rank of generator states")
        for rank in generators:
            for state in rank:
                if not isinstance(state, torch.Tensor) or state.dtype != torch.uint8 or state.dim() != 1:
                    raise checks.bad(path, "resume.generators", state, "generator states (1-D uint8 tensors)")
    if resume.get("world_size") is not None:
        checks.integer(path, "resume.world_size", resume["world_size"], minimum=1)
    bank = resume.get("bank")
    if bank is not None:
        if not isinstance(bank, torch.Tensor) or not bank.is_floating_point():
            raise checks.bad(path, "resume.bank", bank, "a floating-point tensor of examples")
        if bank.dim() != len(shape) + 1 or tuple(bank.shape[1:]) != shape:
            raise LandscapeError(f"{path}: resume.bank has shape {list(bank.shape)}, expected [N, "
                                 f"{', '.join(map(str, shape))}] (data.shape)")
        if not bool(torch.isfinite(bank).all()):
            raise LandscapeError(f"{path}: resume.bank holds non-finite values (NaN or inf)")


def _meta_model(arch: str, kwargs: dict[str, Any], path: str | os.PathLike) -> nn.Module:
    """The network a checkpoint names, built on the meta device (no memory is allocated)."""
    try:
        with torch.device("meta"):
            return build_model(arch, kwargs)
    except (ValueError, TypeError, RuntimeError) as exc:
        raise LandscapeError(f"{path}: model.kwargs {checks.show(kwargs)} do not build a {arch} network: "
                             f"{_short(exc)}") from None


def _validate_network(arch: str, kwargs: dict[str, Any], state_dict: dict[str, Any], shape: tuple[int, ...],
                      path: str | os.PathLike) -> None:
    """The weights fit the network the checkpoint names, whose input is one example of data.shape."""
    net = _meta_model(arch, kwargs, path)
    expected = set(net.state_dict())
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        parts = ([f"missing {', '.join(missing[:3])}"] if missing else []) + (
            [f"unexpected {', '.join(unexpected[:3])}"] if unexpected else [])
        raise LandscapeError(f"{path}: state_dict does not fit a {arch} network with model.kwargs "
                             f"{checks.show(kwargs)}: {'; '.join(parts)}")
    for key, tensor in net.state_dict().items():
        want, got = tuple(tensor.shape), tuple(state_dict[key].shape)
        if tensor.is_floating_point() and not state_dict[key].is_floating_point():
            raise LandscapeError(f"{path}: state_dict[{key!r}] is a tensor of {state_dict[key].dtype}, a {arch} network "
                                 f"needs floating-point weights")
        if got != want:
            raise LandscapeError(f"{path}: state_dict[{key!r}] has shape {list(got)}, a {arch} network with "
                                 f"model.kwargs {checks.show(kwargs)} needs {list(want)}")
    input_shape = tuple(getattr(net, "input_shape", shape))
    if input_shape != shape:
        raise LandscapeError(f"{path}: data.shape is {list(shape)}, but the {arch} network takes examples of "
                             f"shape {list(input_shape)}")


def model_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> nn.Module:
    """Rebuild the network of a validated checkpoint and load its weights. Torch's global
    random number generators are left as they were (the network's random initial weights,
    replaced by the checkpoint's, are drawn in a fork of them)."""
    spec = ckpt["model"]
    arch, kwargs = spec["arch"], dict(spec.get("kwargs", {}))
    meta = _meta_model(arch, kwargs, path)
    checks.check_memory(sum(t.numel() * t.element_size() for t in meta.state_dict().values()) * 2,
                        f"{path}: the {arch} network", "cpu")
    try:
        with keep_global_rng():
            model = build_model(arch, kwargs)
    except (ValueError, TypeError, KeyError) as exc:
        raise LandscapeError(f"{path}: cannot rebuild model: {_short(exc)}") from None
    _load_state(model, ckpt["state_dict"], path)
    return model


def _load_state(model: nn.Module, state_dict: dict[str, Any], path: str | os.PathLike) -> None:
    try:
        model.load_state_dict(state_dict)
    except (RuntimeError, KeyError, TypeError) as exc:
        raise LandscapeError(f"{path}: weights do not fit the network: {_short(exc)}") from None


def energy_from_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[Energy, dict[str, Any]]:
    """The energy a checkpoint describes, on ``device`` (checked: one line for a device
    this machine lacks), and the checkpoint itself. Torch's global random number
    generators are left as they were (:func:`model_from_checkpoint`)."""
    from landscape.io.sources import pick_device

    ckpt = load_checkpoint(path)
    device = pick_device(device)
    model = model_from_checkpoint(ckpt, path).to(device)
    model.eval()
    data = ckpt["data"]
    rng = data.get("range")
    energy = Energy(
        model,
        shape=tuple(data["shape"]),
        data_range=tuple(rng) if rng is not None else None,
        device=device,
        name=Path(path).name,
        # (the keys an energy's sampler takes: a checkpoint may keep others beside them)
        sampler={k: v for k, v in ckpt["sampler"].items() if k in SAMPLER_KEYS}
        if isinstance(ckpt.get("sampler"), dict) else None,
    )
    return energy, ckpt


def energy_from_reference_state_dict(
    path: str | os.PathLike,
    arch: str,
    epsilon: float,
    shape: tuple[int, ...],
    data_range: tuple[float, float] | None = (-1.0, 1.0),
    kwargs: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
) -> Energy:
    """Load a bare state dict from the Anatomy paper's public reference code.

    That code's network output f is the energy at temperature eps^2/2 (its update is
    ``x += -grad f + eps * z``), so the energy is ``U = 2 f / eps^2``.
    """
    if epsilon <= 0:
        raise LandscapeError(f"--train-epsilon must be > 0 (the training epsilon), got {epsilon}")
    sd = read_pt(path)
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise LandscapeError(f"{path}: not a state dict of tensors")
    kw = dict(kwargs or {})
    kw["energy_scale"] = 2.0 / epsilon**2
    try:
        with keep_global_rng():  # (the initial weights, replaced by the file's, leave the caller's draws alone)
            model = build_model(arch, kw)
        sd = convert_reference_state_dict(arch, sd)
    except (ValueError, TypeError) as exc:
        raise LandscapeError(f"{path}: {_short(exc)}") from None
    _load_state(model, sd, path)
    model.to(device).eval()
    # That code samples x += -grad f + eps z: Langevin on U at temperature 1 with step eps.
    return Energy(model, shape=shape, data_range=data_range, device=device, name=Path(path).name,
                  sampler={"epsilon": float(epsilon), "tau": 1.0})


def data_limit(ckpt: Mapping[str, Any], name: str | None = None, limit: int | None = None) -> int | None:
    """At most how many examples of data set ``name`` (the checkpoint's by default) a
    command takes: ``limit``, and where ``name`` is the data set the model was trained on
    with ``data.limit`` examples, no more than those (the model saw only them; the
    examples it never saw are no yardstick for it). None: all."""
    own = (ckpt.get("data") or {}).get("name")
    trained = ((ckpt.get("config") or {}).get("data") or {}).get("limit")
    if (name is None or name == own) and isinstance(trained, int) and not isinstance(trained, bool) and trained > 0:
        return trained if limit is None else min(limit, trained)
    return limit


def now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def describe(ckpt: dict[str, Any]) -> list[tuple[str, str]]:
    """Rows of (field, value) that say what a checkpoint holds, for ``landscape info``."""
    model = ckpt["model"]
    n_params = sum(v.numel() for v in ckpt["state_dict"].values() if isinstance(v, torch.Tensor))
    s = ckpt["sampler"]
    d = ckpt["data"]
    rows = [
        ("format", f"{ckpt['format']} v{ckpt['version']} (written by ebm-landscape {ckpt.get('tool_version', '?')})"),
        ("created", str(ckpt.get("created", "?"))),
        ("regime", str(ckpt["regime"]) + regime_note(ckpt)),
        ("preset", str(ckpt["config"].get("preset", "?")) + _changes(ckpt)),
        ("model", f"{model['arch']} {_kw(model.get('kwargs', {}))}, {n_params:,} parameters"),
        ("data", f"{d['name']}, shape {list(d['shape'])}, range {d.get('range')}"),
        ("sampler", f"eps={s['epsilon']:g} tau={s['tau']:g} L={s['steps']} init={s['init']}" + (" MH" if s.get("mh") else "")),
        ("step", f"{ckpt['step']} of {ckpt['config'].get('train', {}).get('steps', '?')} updates"),
    ]
    metrics = ckpt.get("metrics") or {}
    if metrics:
        rows.append(("metrics", ", ".join(f"{k}={_fmt(v)}" for k, v in metrics.items())))
    resume = ckpt.get("resume")
    if resume:
        bank = resume.get("bank")
        ranks = resume.get("generators") or []
        per_rank = len(ranks[0]) if ranks else 0
        each = "" if len(ranks) == 1 else " each"
        parts = ["optimizer state",
                 f"random generator states of {len(ranks)} rank{'' if len(ranks) == 1 else 's'} "
                 f"({per_rank} generator{'' if per_rank == 1 else 's'}{each})" if ranks else "no random generator states"]
        if isinstance(bank, torch.Tensor):
            parts.append(f"persistent bank {list(bank.shape)}")
        rows.append(("resumable", ", ".join(parts)))
    return rows


def _changes(ckpt: dict[str, Any]) -> str:
    from landscape.train.config import preset_changes

    changed = preset_changes(ckpt.get("config") or {})
    return (" (changed: " + "; ".join(f"{k} {_fmt(a)} -> {_fmt(b)}" for k, a, b in changed) + ")") if changed else ""


def regime_note(ckpt: dict[str, Any]) -> str:
    """Where a checkpoint's regime is its preset's label while the preset's learning
    settings were changed (``--set sampler.tau=0``): said, since the label was the
    preset's for the settings it ships with; empty otherwise."""
    from landscape.train.config import PRESETS, preset_changes

    config = ckpt.get("config") or {}
    name = config.get("preset")
    if name not in PRESETS or ckpt.get("regime") != PRESETS[name].regime or not preset_changes(config):
        return ""
    return f" (the {name} preset's label for its own settings, changed in this run)"


def _kw(kwargs: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items()) + ")"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
