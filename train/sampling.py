"""Chains from a trained checkpoint: short-run pictures and the Anatomy long-run check.

The long-run check (Nijkamp et al. 2019, §3.3): run chains from data for many times the
training L. For a convergent model they stay near the data; for a non-convergent one they
drift off (over-saturated or blank images) even though short-run samples look right.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from landscape import data as datasets
from landscape import Energy, sample
from landscape.errors import LandscapeError
from landscape.mapping.neighbors import nearest_distance, spacing
from landscape.plots.common import START_NAMES, chain_caption, new_figure, save_figure, wrap
from landscape.train import diagnostics, figures
from landscape.train.checkpoint import data_limit, energy_from_checkpoint

INITS = ("noise", "data", "persistent")


@dataclass
class ChainReport:
    """Start and end of a batch of chains, with how far they are from the data."""

    start: torch.Tensor
    end: torch.Tensor
    energy_start: torch.Tensor
    energy_end: torch.Tensor
    steps: int
    epsilon: float
    tau: float
    init: str
    acceptance: float | None
    nn_start: torch.Tensor | None  # distance of each chain to its nearest training example
    nn_end: torch.Tensor | None
    data_nn_median: float | None  # the data's own spacing (to the nearest example that differs)
    data_energy_mean: float | None
    saturation_start: float | None
    saturation_end: float | None  # share of coordinates at or beyond the data range ends
    source: str | None = None  # the checkpoint the chains ran on (names the model in pictures)
    data_range: tuple[float, float] | None = None  # images: the data's value range (pictures clip to it)

    def summary(self) -> dict[str, float]:
        out = {
            "steps": float(self.steps),
            "energy_start": float(self.energy_start.mean()),
            "energy_end": float(self.energy_end.mean()),
        }
        if self.nn_start is not None:
            out["nn_start"] = float(self.nn_start.mean())
            out["nn_end"] = float(self.nn_end.mean())
        if self.data_nn_median is not None:
            out["data_nn_median"] = self.data_nn_median
        if self.data_energy_mean is not None:
            out["data_energy_mean"] = self.data_energy_mean
        if self.saturation_end is not None:
            out["saturation_start"] = self.saturation_start
            out["saturation_end"] = self.saturation_end
        if self.acceptance is not None:
            out["acceptance"] = self.acceptance
        if self.data_range is not None and self.end.numel():
            out["value_min_end"], out["value_max_end"] = float(self.end.min()), float(self.end.max())
            out["data_low"], out["data_high"] = (float(v) for v in self.data_range)
        return out

    def range_note(self) -> str | None:
        """Where image chains ended outside the data's value range, which their pictures
        clip to: ``"values at the end in [-23.9, 21.6], beyond the data's [-1, 1] (pictures
        clip to it)"``; None otherwise."""
        s = self.summary()
        if "value_min_end" not in s or (s["value_min_end"] >= s["data_low"] and s["value_max_end"] <= s["data_high"]):
            return None
        return (f"values at the end in [{s['value_min_end']:.3g}, {s['value_max_end']:.3g}], beyond the data's "
                f"[{s['data_low']:g}, {s['data_high']:g}] (pictures clip to it)")


def run_chains(
    checkpoint: str | os.PathLike,
    *,
    n: int = 64,
    steps: int | None = None,
    init: str = "data",
    epsilon: float | None = None,
    tau: float | None = None,
    mh: bool = False,
    seed: int = 0,
    device: str = "cpu",
    data_root: str | os.PathLike | None = None,
    dataset_name: str | None = None,
    reference_limit: int = 10000,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
) -> ChainReport:
    """Run ``n`` chains of an EBM checkpoint and measure where they end.

    Parameters
    ----------
    checkpoint : path
        One of our checkpoints.
    steps : int, optional
        Langevin steps; default 10x the training L (the long-run check).
    init : "data" | "noise" | "persistent"
        Start from training examples, uniform noise in the data range, or the
        checkpoint's persistent bank.
    epsilon, tau : float, optional
        Default: the training sampler's.
    dataset_name : str, optional
        Data set to start from / compare with; default the checkpoint's.
    reference_limit : int
        Compare against at most this many training examples (nearest-neighbour cost).

    Returns
    -------
    ChainReport
    """
    if init not in INITS:
        raise LandscapeError(f"init must be one of {', '.join(INITS)}, got {init!r}")
    if n < 1:
        raise LandscapeError(f"need at least one chain, got {n}")
    energy, ckpt = energy_from_checkpoint(checkpoint, device=device)
    energy.compile = compile
    energy.check_room(n)
    s = ckpt["sampler"]
    eps = float(s["epsilon"] if epsilon is None else epsilon)
    tau_ = float(s["tau"] if tau is None else tau)
    steps = int(10 * s["steps"] if steps is None else steps)
    gen = torch.Generator(device=energy.device).manual_seed(seed)
    cpu_gen = torch.Generator().manual_seed(seed)

    ds, missing = _dataset(ckpt, dataset_name, data_root, energy, reference_limit)
    if init == "data":
        if ds is None:
            raise LandscapeError(f"chains from data need the training data: {missing}")
        x0 = ds.sample(n, cpu_gen)
    elif init == "noise":
        x0 = energy.uniform_noise(n, gen)
    else:
        bank = (ckpt.get("resume") or {}).get("bank")
        if not isinstance(bank, torch.Tensor):
            raise LandscapeError(f"{checkpoint}: holds no persistent bank (trained with init={s['init']})")
        x0 = bank[torch.randperm(bank.shape[0], generator=cpu_gen)[:n]]
    x0 = x0.to(energy.device, energy.dtype)

    result = sample(energy, x0, steps, eps, tau_, mh=mh, generator=gen, progress=progress)
    nn_start = nn_end = None
    data_nn = data_energy = None
    if ds is not None:  # (a toy density's reference is a fixed draw of it, as check's)
        ref = ds.x.to(energy.device, energy.dtype)
        nn_start = nearest_distance(x0, ref).cpu()
        nn_end = nearest_distance(result.x, ref).cpu()
        data_nn = float(spacing(ref).median())
    if ds is not None:
        data_energy = float(energy(ds.x[:1000].to(energy.device, energy.dtype)).mean())
    sat = _saturation(energy)
    return ChainReport(
        start=x0.cpu(),
        end=result.x.cpu(),
        energy_start=energy(x0).cpu(),
        energy_end=result.energy.cpu(),
        steps=steps,
        epsilon=eps,
        tau=tau_,
        init=init,
        acceptance=None if result.acceptance is None else float(result.acceptance.mean()),
        nn_start=nn_start,
        nn_end=nn_end,
        data_nn_median=data_nn,
        data_energy_mean=data_energy,
        saturation_start=sat(x0) if sat else None,
        saturation_end=sat(result.x) if sat else None,
        source=str(checkpoint),
        data_range=tuple(float(v) for v in energy.data_range) if sat else None,
    )


def _dataset(ckpt, name, data_root, energy: Energy, limit: int) -> tuple[datasets.Dataset | None, str]:
    """The data set (the checkpoint's unless ``name``), or None and why where the
    checkpoint's cannot be found: chains from noise or the bank still run without it."""
    name = name or ckpt["data"]["name"]
    shape = tuple(ckpt["data"]["shape"])
    size = shape[-1] if len(shape) == 3 else None
    try:
        ds = datasets.load(name, size=size, root=data_root, limit=data_limit(ckpt, name, limit))
    except datasets.DatasetNotFound as missing:
        if name != ckpt["data"]["name"]:
            raise
        return None, str(missing)
    if tuple(ds.shape) != energy.shape:
        raise LandscapeError(
            f"data set {ds.name} has examples of shape {list(ds.shape)}, the checkpoint's network expects {list(energy.shape)}"
        )
    return ds, ""


def _saturation(energy: Energy) -> Callable[[torch.Tensor], float] | None:
    """For image energies, ``x -> share of x's pixels at the ends of the data range`` (the
    diagnosis's own test, :func:`landscape.diagnosis.spurious.saturation`); None otherwise."""
    if energy.data_range is None or len(energy.shape) != 3:
        return None
    from landscape.diagnosis.spurious import saturation

    return lambda x: float(saturation(x, energy.data_range).mean())


def _model_name(report: ChainReport, energy: Energy | None) -> str:
    """The model for titles: the checkpoint's file stem (the report's, else the energy's name)."""
    for name in (report.source, energy.name if energy is not None else None):
        if name:
            return Path(str(name)).stem or str(name)
    return "model"


def chain_title(report: ChainReport, energy: Energy | None = None, *, start: bool = False) -> str:
    """What a picture of the chains shows: the model, how many chains from where, and the
    steps (``start``: the chains' starts, step 0)."""
    n = int(report.end.shape[0])
    name = _model_name(report, energy)
    if start:
        return f"{name}: the starts of {chain_caption(None, report.init, n=n)} (step 0)"
    return f"{name}: {chain_caption(report.steps, report.init, n=n, epsilon=report.epsilon, tau=report.tau)}"


def save_chain_figure(report: ChainReport, path: str | os.PathLike, energy: Energy | None = None) -> Path:
    """Image data: the end grid at ``path`` and the start grid at ``<stem>_start``, each
    captioned with the model, the chains' start and their number of steps (the end grid
    also with the values' range where chains left the data's, which the grid clips to).

    2-D data: chain starts and ends over the learned density (when ``energy`` is given),
    titled the same way; points of other dimensions: their first two coordinates (one:
    histograms of it). Returns ``path``.
    """
    path = Path(path)
    if report.end.dim() == 4:
        k = min(100, report.end.shape[0])
        shown = f" (the first {k})" if k < report.end.shape[0] else ""
        figures.save_image_grid(report.start[:k], path.with_name(path.stem + "_start" + path.suffix),
                                    caption=chain_title(report, energy, start=True) + shown)
        note = report.range_note()
        figures.save_image_grid(report.end[:k], path, caption=chain_title(report, energy) + shown
                                + (f"; {note}" if note else ""))
    elif report.end.dim() == 2 and report.end.shape[1] == 2:
        fig = new_figure(5.5, 5.5, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        s, e = report.start.numpy(), report.end.numpy()
        title = chain_title(report, energy)
        if energy is not None and energy.data_range is not None:
            xs, ys, u = diagnostics.energy_grid(energy, energy.data_range, res=150)
            ax.contourf(xs, ys, np.exp(-(u - u.min())), levels=30, cmap="viridis")
            # The picture is the density's box; points outside it are counted, not drawn.
            ax.set_xlim(xs[0], xs[-1])
            ax.set_ylim(ys[0], ys[-1])
            both = np.concatenate([s, e])
            outside = int((~((both[:, 0] >= xs[0]) & (both[:, 0] <= xs[-1]) & (both[:, 1] >= ys[0])
                             & (both[:, 1] <= ys[-1]))).sum())
            if outside:
                title += f"; {outside} points outside the box"
        ax.scatter(s[:, 0], s[:, 1], s=4, c="white", edgecolors="0.3", linewidths=0.2, alpha=0.6,
                   label=f"start ({START_NAMES.get(report.init, report.init)})")
        ax.scatter(e[:, 0], e[:, 1], s=4, c="red", alpha=0.7, label=f"after {report.steps} steps")
        ax.set_aspect("equal")
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(wrap(title, 5.0, 10), fontsize=10)
        save_figure(fig, path)
    else:  # points of another dimension: their first two coordinates (one coordinate: histograms)
        fig = new_figure(5.5, 5.0, layout="constrained")
        ax = fig.add_subplot(1, 1, 1)
        s, e = (t.reshape(t.shape[0], -1).double().numpy() for t in (report.start, report.end))
        d = s.shape[1]
        start = f"start ({START_NAMES.get(report.init, report.init)})"
        if d == 1:
            bins = np.histogram_bin_edges(np.concatenate([s[:, 0], e[:, 0]]), bins=30)
            ax.hist(s[:, 0], bins=bins, color="0.6", alpha=0.6, label=start)
            ax.hist(e[:, 0], bins=bins, color="red", alpha=0.5, label=f"after {report.steps} steps")
            ax.set_xlabel("x")
            ax.set_ylabel("chains")
            what = ""
        else:
            ax.scatter(s[:, 0], s[:, 1], s=4, c="0.6", alpha=0.6, label=start)
            ax.scatter(e[:, 0], e[:, 1], s=4, c="red", alpha=0.7, label=f"after {report.steps} steps")
            ax.set_xlabel("x1")
            ax.set_ylabel("x2")
            what = f" (coordinates 1 and 2 of {d})"
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(wrap(chain_title(report, energy) + what, 5.0, 10), fontsize=10)
        save_figure(fig, path)
    return path
