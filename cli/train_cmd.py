"""`landscape train`: ML learning of an EBM from a preset, with checkpoints and diagnostics."""

from __future__ import annotations


import click

from landscape.cli.options import (
    resume_or_force,
    Command,
    data_root_option,
    dataset_option,
    device_option,
    force_option,
    out_option,
    quiet_option,
    seed_option,
)
from landscape.errors import LandscapeError
from landscape.train.config import PRESETS, Config, apply_overrides, changed_fields, get_preset


def _preset_help() -> str:
    lines = []
    for name, cfg in PRESETS.items():
        s = cfg.sampler
        lines.append(
            f"{name}: {cfg.regime}, {cfg.model.arch} on {cfg.data.name}, eps={s.epsilon:g} tau={s.tau:g} "
            f"L={s.steps} init={s.init}, {cfg.optim.name} lr={cfg.optim.lr:g}, {cfg.train.steps} updates"
        )
    return "\n".join(lines)


@click.command("train", cls=Command, epilog="\b\nPresets:\n" + _preset_help(),
               short_help="Train an EBM by MCMC maximum likelihood from a preset.")
@click.option("--preset", "preset_name", type=click.Choice(sorted(PRESETS)), default=None,
              help="Experiment to reproduce (listed below) [default: digits-convergent; with --resume: the checkpoint's].")
@dataset_option(default_text="the preset's")
@click.option("--steps", type=click.IntRange(min=1), metavar="N", default=None,
              help="Parameter updates (train.steps; the Langevin steps per update are --set sampler.steps=L) "
                   "[default: the preset's].")
@click.option("--batch-size", type=click.IntRange(min=1), metavar="N", default=None,
              help="Global batch size (train.batch_size) [default: the preset's].")
@out_option("Checkpoint to write; the run log and pictures go to <stem>.run/ beside it.", metavar="CKPT.pt",
            required=True)
@click.option("--resume", is_flag=True,
              help="Continue the run in --out where it stopped, with its own settings (exactly); --steps extends it. "
                   "--set, --dataset, --batch-size or --seed given with it change the resumed run, which then no "
                   "longer follows the uninterrupted one (a note says so).")
@force_option("(start over: the checkpoint is replaced at the first save, the run folder cleared)")
@seed_option(None, "(train.seed)", default_text="the preset's")
@device_option("; under torchrun each rank takes its LOCAL_RANK GPU")
@data_root_option()
@click.option("--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
              help="Override any config field, checked against its type, e.g. --set sampler.steps=100 "
                   "--set optim.lr=0.01 --set optim.betas=0.5,0.999 --set model.kwargs.hidden=[64,64] (repeatable).")
@click.option("--map", "map_after", is_flag=True,
              help="Then map the trained model as `landscape map CKPT.pt` does (every setting chosen) into "
                   "<stem>.h5 beside the checkpoint; a rerun continues an unfinished map. Under torchrun the map "
                   "is spread over the ranks too.")
@quiet_option()
def train_cmd(preset_name, dataset, steps, batch_size, out, resume, force, seed, device, data_root, overrides,
              map_after, quiet):
    """Train an energy-based model by MCMC-based maximum likelihood (Nijkamp et al. 2019).

    Each update draws data X+ and short-run Langevin samples X- (from noise, data or a
    persistent bank) and descends mean U(X+) - mean U(X-). The run log records d_st, v_t
    and r_t per update (written to <stem>.run/metrics.csv every train.log_every updates);
    figures of them and of samples are written as training goes. --set train.keep_every=N
    also keeps a full checkpoint every N updates in <stem>.run/checkpoints/stepNNNNNN.pt.
    A run that diverges says what went non-finite, keeps its log and diagnostics figure,
    and leaves CKPT.pt as the last good checkpoint.
    Under `torchrun --nproc_per_node N $(which landscape) train ...` training is
    data-parallel (gloo on CPU, nccl on GPU); N must divide the batch and the persistent
    bank, also on --resume (on another N than the run's, reseeded). Ctrl-C (or SIGTERM)
    stops at the end of the current update and saves a checkpoint that --resume continues
    (exit status 130; 143).

    \b
    Examples:
      landscape train --preset rings-demo --out rings.pt
      landscape train --preset digits-convergent --out digits.pt --set sampler.steps=100 --seed 1
      landscape train --out digits.pt --resume --steps 3000      # continue to 3000 updates
      landscape train --preset rings-demo --out r.pt --set train.keep_every=500   # r.run/checkpoints/step000500.pt, ...
      landscape train --preset digits32-convergent --out d32.pt --device cuda --map   # 32x32, then its map
    """
    from landscape.train.checkpoint import load_checkpoint
    from landscape.train.loop import train

    resume_or_force(resume, force)
    if resume:
        if preset_name is not None:
            raise click.UsageError("--resume continues with the checkpoint's own settings: drop --preset")
        from landscape.io.files import busy, held_by

        writer = held_by(out)
        if writer is not None:  # (before its first save, the run under way has no checkpoint yet)
            raise busy(out, writer)
        if not out.exists():
            raise LandscapeError(f"{out}: nothing to resume (no such checkpoint)")
        previous = load_checkpoint(out)
        saved = previous["config"]
        try:
            config = Config.from_dict(saved)
        except LandscapeError as exc:  # name the file whose config it is
            raise LandscapeError(f"{out}: {exc}") from None
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
    before = config
    config = apply_overrides(config, extra).validate()
    if resume:
        from landscape.distributed import world_from_env
        from landscape.train.loop import FIXED_ON_RESUME, check_resume_ranks

        rank, world, _ = world_from_env()
        check_resume_ranks(previous, config, world, out)  # (before the note: a resume refused says only why)
        ranks = (previous.get("resume") or {}).get("world_size")
        if isinstance(ranks, int) and ranks != world and rank == 0:
            click.echo(f"note: resuming on {world} rank{'s' if world != 1 else ''} a run of {ranks}: its random streams "
                       "are reseeded, so it no longer follows the uninterrupted run", err=True)
        changed = changed_fields(before.to_dict(), config.to_dict(), skip={"train.steps"})
        if changed and rank == 0 and not any(name.startswith(FIXED_ON_RESUME) for name in changed):  # (else refused)
            click.echo(f"note: resuming with changed settings ({', '.join(changed)}): the run no longer follows "
                       "the uninterrupted one", err=True)

    bars = []
    start = int(previous["step"]) if resume else 0
    if resume and start >= config.train.steps and rank == 0:
        click.echo(f"note: {out} has {start} updates already, --steps {config.train.steps} asks for no more: "
                   "nothing to train", err=True)

    def progress(n: int, latest: dict) -> None:
        if quiet:
            return
        if not bars:  # opened as the updates start, so bad input prints only its error
            from landscape.io.bars import progress_bar

            bars.append(progress_bar(total=config.train.steps, initial=start, desc=f"train {config.preset}",
                                     unit="upd"))
        bars[0].update(n)
        bars[0].set_postfix({k: f"{v:.3g}" for k, v in latest.items() if k != "lr"}, refresh=False)

    try:
        result = train(config, out, resume=resume, device=device, data_root=data_root, progress=progress,
                       overwrite=force)
    except KeyboardInterrupt as stopped:  # Ctrl-C or SIGTERM at an update's end: the checkpoint is saved
        result = getattr(stopped, "result", None)
        if result is None:  # (a second signal: stopped at once)
            raise
    finally:
        for bar in bars:
            bar.close()
    from landscape import distributed

    main = distributed.current() is None or distributed.current().main  # under torchrun rank 0 reports
    s = result.summary if main else {}
    status = "stopped early (continue with --resume)" if result.stopped_early else "done"
    if main:
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
        raise click.exceptions.Exit(143 if result.terminated else 130)  # interrupted, though nothing was lost
    if map_after:
        from landscape.train.runs import map_checkpoint, states_line, summary_line

        content, wall = map_checkpoint(out, device=device, data_root=data_root, force=force, quiet=quiet,
                                       say=click.echo)
        if main:
            path = out.with_suffix(".h5")
            if content is None:
                click.echo(f"{path} is finished with these settings: nothing to do")
            else:
                click.echo(summary_line(content, path, wall))
                if explored := states_line(content):  # (whether more chains would find more: as `landscape map` says)
                    click.echo(explored)
    distributed.leave()  # (under torchrun: after the others; one process: nothing to leave)


