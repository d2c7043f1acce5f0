"""`landscape train`: ML learning of an EBM from a preset, with checkpoints and diagnostics."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from landscape.errors import LandscapeError
from landscape.train.config import PRESETS, Config, apply_overrides, get_preset

DEVICES = ("cpu", "cuda", "auto")


def _preset_help() -> str:
    lines = []
    for name, cfg in PRESETS.items():
        s = cfg.sampler
        lines.append(
            f"{name}: {cfg.regime}, {cfg.model.arch} on {cfg.data.name}, eps={s.epsilon:g} tau={s.tau:g} "
            f"L={s.steps} init={s.init}, {cfg.optim.name} lr={cfg.optim.lr:g}, {cfg.train.steps} updates"
        )
    return "\n".join(lines)


@click.command("train", epilog="\b\nPresets:\n" + _preset_help())
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default=None,
              help="Experiment to reproduce (listed below) [default: digits-convergent; with --resume: the checkpoint's].")
@click.option("--dataset", type=str, default=None,
              help="Data set name overriding the preset's: rings, 8gaussians, digits, mnist, cifar10, flowers, folder:PATH, npz:PATH.")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Parameter updates (overrides the preset).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Global batch size (overrides the preset).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Checkpoint to write; the run log and pictures go to <stem>.run/ beside it.")
@click.option("--resume", is_flag=True,
              help="Continue the run in --out where it stopped, with its own settings (exactly); --steps extends it.")
@click.option("--force", is_flag=True, help="Start over even if --out exists (deletes it and its run folder).")
@click.option("--seed", type=int, default=None, help="Random seed (overrides the preset).")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where to train; under torchrun each rank takes its LOCAL_RANK GPU.")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding image data sets (default: $EBM_LANDSCAPE_DATA or ./datasets).")
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any preset field, e.g. --set sampler.steps=100 --set optim.lr=0.01 (repeatable).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_cmd(preset_name, dataset, steps, batch_size, out, resume, force, seed, device, data_root, overrides, quiet):
    """Train an energy-based model by MCMC-based maximum likelihood (Nijkamp et al. 2019).

    Each update draws data X+ and short-run Langevin samples X- (from noise, data or a
    persistent bank) and descends mean U(X+) - mean U(X-). The run log records d_st, v_t
    and r_t per update; figures of them and of samples are written as training goes.
    Under `torchrun --nproc_per_node N $(which landscape) train ...` training is
    data-parallel (gloo on CPU, nccl on GPU). Ctrl-C stops at the end of the current
    update and saves a checkpoint that --resume continues.
    """
    from landscape.train.checkpoint import load_checkpoint
    from landscape.train.loop import run_dir_for, train

    if resume and force:
        raise click.UsageError("--resume and --force contradict each other: choose one")
    if resume:
        if preset_name is not None:
            raise click.UsageError("--resume continues with the checkpoint's own settings: drop --preset")
        if not out.exists():
            raise LandscapeError(f"{out}: nothing to resume (no such checkpoint)")
        config = Config.from_dict(load_checkpoint(out)["config"])
    else:
        config = get_preset(preset_name or "digits-convergent")
    extra = list(overrides)
    if dataset is not None:
        extra.append(f"data.name={dataset}")
    if steps is not None:
        extra.append(f"train.steps={steps}")
    if batch_size is not None:
        extra.append(f"train.batch_size={batch_size}")
    if seed is not None:
        extra.append(f"train.seed={seed}")
    config = apply_overrides(config, extra).validate()
    if force and out.exists():
        out.unlink()
        shutil.rmtree(run_dir_for(out), ignore_errors=True)

    bars = []
    start = int(load_checkpoint(out)["step"]) if resume else 0

    def progress(n: int, latest: dict) -> None:
        if quiet:
            return
        if not bars:  # opened at the first update, so bad input prints only its error
            from tqdm import tqdm

            bars.append(tqdm(total=config.train.steps, initial=start, desc=f"train {config.preset}",
                             unit="upd", dynamic_ncols=True))
        bars[0].update(n)
        bars[0].set_postfix({k: f"{v:.3g}" for k, v in latest.items() if k != "lr"}, refresh=False)

    try:
        result = train(config, out, resume=resume, device=device, data_root=data_root, progress=progress)
    finally:
        for bar in bars:
            bar.close()
    s = result.summary
    status = "stopped early (continue with --resume)" if result.stopped_early else "done"
    click.echo(f"{status}: {result.step} updates -> {result.checkpoint}  (run log and figures in {result.run_dir}/)")
    if s:
        line = (
            f"d_st mean {s['d_st_mean']:.3g} +- {s['d_st_std']:.3g}, lag-1 autocorr {s['d_st_lag1_autocorr']:.2f}; "
            f"r_t {s['r_t_mean']:.3g}"
        )
        if "kl" in s:
            line += f"; KL(q||p) {s['kl']:.3f}"
        if s.get("updates"):
            line += f"; {s['seconds'] / max(s['updates'], 1) * 1000:.1f} ms/update"
        click.echo(line)
    if result.stopped_early:
        raise click.exceptions.Exit(130)  # interrupted, though nothing was lost
