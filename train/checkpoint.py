"""Checkpoints: the `.pt` contract of DESIGN.md, written atomically, read safely.

A checkpoint is a plain dict that loads with ``torch.load(path, weights_only=True)``: no
code is ever unpickled from a file a user may have downloaded. It holds everything needed
to rebuild the model from it alone, and what an exact resume needs (optimizer state,
persistent bank, every rank's random generator state).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.energy import Energy
from landscape.errors import LandscapeError
from landscape.io.files import atomic_path, load_torch
from landscape.train.nets import build_model, convert_reference_state_dict

FORMAT = "ebm-landscape/checkpoint"
VERSION = 1
REQUIRED = ("format", "version", "model", "state_dict", "data", "sampler", "regime", "step", "config")


def atomic_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename over it
    (:func:`landscape.io.files.atomic_path`): a run killed while writing leaves the
    previous checkpoint intact. The bytes are made in memory and written as one file, so a
    full disk is the system's "no space left" (a one-line error), not an error inside
    torch's zip writer."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getbuffer())


def read_pt(path: str | os.PathLike) -> Any:
    """Load a ``.pt`` file with ``weights_only=True``; any failure is one LandscapeError line
    (:func:`landscape.io.files.load_torch`)."""
    return load_torch(path, "checkpoint")


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:160]


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate one of our checkpoints.

    Raises
    ------
    LandscapeError
        Missing, unreadable or unsafe file; a file that is not an ebm-landscape checkpoint;
        a newer format version; missing fields.
    """
    ckpt = read_pt(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        hint = ""
        if isinstance(ckpt, dict) and ckpt and all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            hint = " (it looks like a bare state dict: give --arch and --train-epsilon to load it)"
        raise LandscapeError(f"{path}: not an ebm-landscape checkpoint{hint}")
    if not isinstance(ckpt.get("version"), int) or ckpt["version"] > VERSION:
        raise LandscapeError(
            f"{path}: checkpoint version {ckpt.get('version')} is newer than this tool reads ({VERSION}); upgrade ebm-landscape"
        )
    missing = [k for k in REQUIRED if k not in ckpt]
    if missing:
        raise LandscapeError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike = "checkpoint") -> nn.Module:
    """Rebuild the network of a validated checkpoint and load its weights."""
    spec = ckpt["model"]
    try:
        model = build_model(spec["arch"], dict(spec.get("kwargs", {})))
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
    """The energy a checkpoint describes, on ``device``, and the checkpoint itself."""
    ckpt = load_checkpoint(path)
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
        sampler=ckpt.get("sampler") if isinstance(ckpt.get("sampler"), dict) else None,
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
        model = build_model(arch, kw)
        sd = convert_reference_state_dict(arch, sd)
    except (ValueError, TypeError) as exc:
        raise LandscapeError(f"{path}: {_short(exc)}") from None
    _load_state(model, sd, path)
    model.to(device).eval()
    # That code samples x += -grad f + eps z: Langevin on U at temperature 1 with step eps.
    return Energy(model, shape=shape, data_range=data_range, device=device, name=Path(path).name,
                  sampler={"epsilon": float(epsilon), "tau": 1.0})


def sha256_of(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
        ("regime", str(ckpt["regime"])),
        ("preset", str(ckpt["config"].get("preset", "?"))),
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
        parts = [f"optimizer state, {len(resume.get('generators', []))} generator state(s)"]
        if isinstance(bank, torch.Tensor):
            parts.append(f"persistent bank {list(bank.shape)}")
        rows.append(("resumable", ", ".join(parts)))
    return rows


def _kw(kwargs: dict[str, Any]) -> str:
    return "(" + ", ".join(f"{k}={_fmt(v)}" for k, v in kwargs.items()) + ")"


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
