"""`landscape sample`: run chains of a trained EBM (short-run pictures, long-run check)."""

from __future__ import annotations

import math
from pathlib import Path

import click

from landscape.cli.options import (
    Command,
    named_path,
    chains_option,
    compile_option,
    data_root_option,
    dataset_option,
    device_option,
    eps_option,
    force_option,
    out_option,
    quiet_option,
    seed_option,
    steps_option,
    temperature_option,
)


@click.command("sample", cls=Command,
               short_help="Run Langevin chains of a checkpoint; report where they end.")
@click.argument("checkpoint", metavar="CKPT.pt", type=click.Path(path_type=Path))
@chains_option(64, old="--n")
@steps_option(default_text="10x the training L, the long-run check")
@click.option("--init", type=click.Choice(["data", "noise", "persistent"]), default="data", show_default=True,
              help="Start chains from training data, uniform noise, or the checkpoint's persistent bank.")
@eps_option(default_text="the training eps", old="--epsilon")
@temperature_option(default_text="the training tau^2", old_tau="--tau")
@click.option("--mh", is_flag=True, help="Metropolis-adjust the chains (MALA) and report the acceptance rate.")
@seed_option(0)
@device_option()
@compile_option("Not with --mh (Metropolis-adjusted steps run eagerly).")
@dataset_option("to start from and compare with", default_text="the checkpoint's")
@data_root_option()
@out_option("Picture to write, its format by its suffix [default: <checkpoint stem>_samples.png]; images also get "
            "<stem>_start with the same suffix (the chains' starts).",
            metavar="PNG")
@click.option("--save", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.npz", default=None, callback=named_path,
              help="Also save start and end points as .npz (arrays start, end, energy_start, energy_end).")
@force_option()
@quiet_option()
def sample_cmd(checkpoint, chains, steps, init, eps, temperature, mh, seed, device, compile_steps, dataset, data_root,
               out, save, force, quiet):
    """Run Langevin chains of a trained checkpoint and report where they end.

    With the defaults these are chains of the Anatomy paper's long-run check: from data,
    for 10x the training L. A convergent model keeps them near the data (nearest-neighbour
    distance stays at the data's own scale); a non-convergent one lets them drift.
    `landscape check` runs such chains at 1, 3, 10 and 30x L, from data and from noise,
    and turns them into a verdict.

    \b
    Examples:
      landscape sample rings.pt                                 # the long-run check's chains
      landscape sample digits.pt --init noise --steps 200 --chains 100 --out noise.png
      landscape sample digits.pt --temperature 0 --save quenched.npz   # gradient descent
    """
    import numpy as np
    import torch

    from landscape.errors import LandscapeError
    from landscape.train.checkpoint import energy_from_checkpoint
    from landscape.plots.common import check_picture_path
    from landscape.train.sampling import run_chains, save_chain_figure

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out = check_picture_path(out or checkpoint.with_name(checkpoint.stem + "_samples.png"))
    for path in (out, save, out.with_name(out.stem + "_start" + out.suffix)):  # (images get a start picture)
        if path is not None and path.exists() and not force:
            raise LandscapeError(f"{path} exists: pass --force to overwrite it")
    bars = []

    def progress(k: int) -> None:
        if not bars:  # opened at the first step, so a bad checkpoint prints only its error
            from landscape.io.bars import progress_bar

            bars.append(progress_bar(desc=f"{init} chains", unit="step"))
        bars[0].update(k)

    tau = None if temperature is None else math.sqrt(temperature)
    try:
        report = run_chains(
            checkpoint, n=chains, steps=steps, init=init, epsilon=eps, tau=tau, mh=mh, seed=seed, device=device,
            data_root=data_root, dataset_name=dataset, progress=None if quiet else progress, compile=compile_steps,
        )
    finally:
        for bar in bars:
            bar.close()
    if save is not None:  # (the chains first: a picture that fails loses none of them)
        save.parent.mkdir(parents=True, exist_ok=True)
        np.savez(save, start=report.start.numpy(), end=report.end.numpy(),
                 energy_start=report.energy_start.numpy(), energy_end=report.energy_end.numpy())
    energy, _ = energy_from_checkpoint(checkpoint, device="cpu")
    save_chain_figure(report, out, energy)
    s = report.summary()
    click.echo(f"{chains} chains from {init}, {report.steps} steps, eps={report.epsilon:g} tau={report.tau:g} "
               f"(T={report.tau ** 2:g}) -> {out}")
    line = f"mean energy {s['energy_start']:.4g} -> {s['energy_end']:.4g}"
    if "data_energy_mean" in s:
        line += f" (data: {s['data_energy_mean']:.4g})"
    click.echo(line)
    if "nn_start" in s:
        click.echo(
            f"mean distance to nearest training example {s['nn_start']:.3f} -> {s['nn_end']:.3f} "
            f"(the data's own nearest-neighbour median: {s['data_nn_median']:.3f})"
        )
    if "saturation_end" in s:
        click.echo(f"saturated pixels (at or beyond the data range's ends) {100 * s['saturation_start']:.1f}% -> "
                   f"{100 * s['saturation_end']:.1f}%")
    if report.range_note() is not None:
        click.echo(report.range_note())
    if "acceptance" in s:
        click.echo(f"MALA acceptance rate {s['acceptance']:.3f}")
