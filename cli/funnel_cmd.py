"""`landscape funnel`: the noise-level funnel probe of a map -> /funnel in the map, and a figure."""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from landscape.cli.energy_source import _device_callback
from landscape.cli.map_cmd import _Bars, _floats
from landscape.errors import LandscapeError

# Noise levels in units of the base noise (see --noise-unit): 0 quenches the starts
# themselves (where the data lie), then up to 8x the training noise (64x its temperature).
DEFAULT_NOISE = "0,1,2,4,8"


def base_noise(content, sampler: dict | None) -> tuple[float, str]:
    """The unit of the noise ladder and where it comes from: the training tau of a
    checkpoint; else the map's exploration noise sqrt(T); else sqrt(T_AD)."""
    tau = (sampler or {}).get("tau")
    if isinstance(tau, (int, float)) and tau > 0:
        return float(tau), "the training tau"
    settings = content.settings()
    t = settings.get("temperature")
    if isinstance(t, (int, float)) and t > 0:
        return math.sqrt(float(t)), "sqrt of the map's exploration temperature"
    for t_ad in (settings.get("ad_temperature"), content.attrs.get("levels", {}).get("temperature")):
        if isinstance(t_ad, (int, float)) and t_ad > 0:
            return math.sqrt(float(t_ad)), "sqrt of the map's attraction-diffusion temperature"
    return 1.0, "1 (the map records no temperature)"


def locate(target: Path, map_option: Path | None) -> tuple[Path, Path | None]:
    """(map, model file or None) for a TARGET that is a map or a model file."""
    from landscape.cli.energy_source import is_map_file, map_of

    if not target.exists():
        raise LandscapeError(f"{target}: no such file")
    if is_map_file(target):
        if map_option is not None:
            raise LandscapeError(f"{target} is a map already: drop --map, or give the model file as TARGET")
        return target, None
    map_path = map_option or map_of(target)
    if map_path is None:
        raise LandscapeError(
            f"no map of {target} found ({target.with_suffix('.h5')} or ./{target.stem}.h5): "
            f"run landscape map {target} first, or give --map MAP.h5"
        )
    return map_path, target


@click.command("funnel")
@click.argument("target", metavar="CKPT|MAP.h5", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "map_option", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The map to probe when TARGET is a model file [default: <checkpoint stem>.h5 beside it or here].")
@click.option("--noise", default=DEFAULT_NOISE, show_default=True,
              help="Noise levels, increasing, in units of --noise-unit; 0 quenches the starts themselves.")
@click.option("--noise-unit", default="auto", show_default=True,
              help="Unit of --noise: a number, or auto (the checkpoint's training tau; else sqrt of the map's "
                   "exploration temperature, or of its attraction-diffusion temperature when that is 0).")
@click.option("--chains", type=click.IntRange(min=1), default=100, show_default=True,
              help="Chains per start (data, noise) and noise level.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Langevin steps per chain before the quench [default: the map's exploration steps; 1000 for a "
                   "map explored at temperature 0].")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Langevin step size [default: the map's (the training epsilon for checkpoints)].")
@click.option("--init", type=click.Choice(["both", "data", "noise"]), default=None,
              help="Where chains start [default: both when a data set is known, else noise].")
@click.option("--dataset", default=None, help="Data set for the chains from data [default: the map's].")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding image data sets (default: $EBM_LANDSCAPE_DATA or ./datasets).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Figure of occupancy against noise [default: <map stem>_funnel.png].")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Refine the barriers of the tree edges that new minima bring (string method), as the map does.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--device", default="auto", show_default=True, callback=_device_callback, metavar="[auto|cpu|cuda|cuda:N]",
              help="Where to run; auto picks a GPU when there is one.")
@click.option("--resume", is_flag=True, help="Continue an interrupted probe of the same settings.")
@click.option("--force", is_flag=True, help="Replace the map's existing funnel probe and figure.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON instead of the table.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def funnel_cmd(target, map_option, noise, noise_unit, chains, steps, eps, init, dataset, data_root, plot, refine,
               seed, device, resume, force, as_json, quiet):
    """Does the landscape funnel every chain into one basin as the noise grows?

    For each noise level tau (x <- x - eps^2/2 dU/dx + tau eps z, the training step
    eps), chains from training data and from uniform noise run STEPS steps and are
    quenched to a local minimum. Each end point is assigned to the basin of the map it
    fell into; minima the map does not have are mapped into it first (by
    attraction-diffusion with the map's settings, at every level of its ladder). Per level the
    command reports the occupancy of the basins, its entropy H, the effective number of
    basins exp(H) and the sinks (the fullest basins, holding half the chains).

    The funnel score is 1 - min H / H_ref over the levels above the lowest, H_ref being
    the entropy of the data's own basins (the chains from data at the lowest level):
    0 when no noise concentrates the chains more than the data are, 1 when some level
    sends every chain into one basin; 0.5 or more is called a funnel. Results go into the
    map (/funnel), the figure to --plot.

    \b
    Examples:
      landscape funnel digits.pt                  # probes digits.h5
      landscape funnel rings.h5 --noise 0,0.5,1,2,4 --chains 200

    An interrupted probe (Ctrl-C) keeps its finished noise levels in
    <map>.funnel.partial.h5: rerun the same command with --resume to continue.
    """
    import numpy as np

    from landscape.mapping.funnel import describe

    run = run_funnel(target, map_option=map_option, noise=noise, noise_unit=noise_unit, chains=chains, steps=steps,
                     eps=eps, init=init, dataset=dataset, data_root=data_root, plot=plot, refine=refine, seed=seed,
                     device=device, resume=resume, force=force, quiet=quiet or as_json)
    result, f = run.result, run.result.funnel
    if as_json:
        click.echo(json.dumps(_summary(run.map_path, f, result, run.plot, run.seconds), indent=2))
        return
    click.echo(f"{'noise':>8} {'T':>9} {'entropy':>8} {'eff. basins':>11}  sinks (share of chains)")
    for k, tau in enumerate(f.noise):
        sinks = ", ".join(f"{int(s)} ({100 * f.occupancy[k, s]:.0f}%)" for s in f.sinks[k] if s >= 0)
        click.echo(f"{tau:>8.3g} {tau * tau:>9.3g} {f.entropy[k]:>8.3f} {np.exp(f.entropy[k]):>11.2f}  {sinks}")
    if result.new_minima:
        click.echo(f"{result.new_minima} new minima mapped into {run.map_path} ({result.new_basins} new basins; "
                   f"{run.content.n_basins} basins now)")
    if run.dropped_diagnosis:
        click.echo(f"the map's diagnosis described its old minima and was removed: run landscape diagnose {run.map_path}")
    click.echo(describe(f))
    click.echo(f"wrote /funnel to {run.map_path}, figure {run.plot} ({run.seconds:.0f} s)")


@dataclass
class FunnelRun:
    """What :func:`run_funnel` did: the map probed (as written), the result, the figure."""

    map_path: Path
    content: Any
    result: Any
    plot: Path
    seconds: float
    dropped_diagnosis: bool


def run_funnel(
    target: Path,
    *,
    map_option: Path | None = None,
    noise: str = DEFAULT_NOISE,
    noise_unit: str = "auto",
    chains: int = 100,
    steps: int | None = None,
    eps: float | None = None,
    init: str | None = None,
    dataset: str | None = None,
    data_root: Path | None = None,
    plot: Path | None = None,
    refine: bool = True,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> FunnelRun:
    """The funnel probe of ``target`` (a map, or a model file and its map) with the
    command's defaults; writes /funnel (and any new minima) into the map and the figure.

    Ctrl-C keeps the finished noise levels and exits with status 130.
    """
    from landscape.cli.energy_source import check_map_matches, energy_for_map, load_data_like
    from landscape.plots import figures
    from landscape.mapping.funnel import PROGRESS_KIND, FunnelConfig, funnel_probe
    from landscape.io.mapfile import clear_progress, progress_path, read_map, rewrite_map, update_map

    map_path, model = locate(target, map_option)
    content = read_map(map_path)
    if model is not None:
        check_map_matches(map_path, content, model)
    plot = plot or map_path.with_name(map_path.stem + "_funnel.png")
    figures.check_picture_path(plot)
    if not force and not resume:
        if content.funnel is not None:
            raise LandscapeError(f"{map_path} has a funnel probe already: pass --force to replace it")
        if plot.exists():
            raise LandscapeError(f"{plot} exists: pass --force to overwrite it")
    if force:
        clear_progress(map_path, PROGRESS_KIND)
    loaded = energy_for_map(map_path, content, model=model, device=device)
    energy = loaded.energy

    unit, unit_why = (base_noise(content, loaded.sampler) if noise_unit == "auto"
                      else (_floats(noise_unit, "--noise-unit")[0], "given"))
    levels = tuple(m * unit for m in _floats(noise, "--noise"))
    config = content.settings()
    eps = eps or float(config.get("eps", 0) or 0) or None
    if eps is None:
        raise LandscapeError(f"{map_path} records no Langevin step: give --eps")
    # A map explored at temperature 0 ran no Langevin steps: the probe's chains need some.
    steps = steps if steps is not None else (int(config.get("steps") or 0) or 1000)
    dataset = dataset or figures.map_dataset(content) or loaded.dataset
    init = init or ("both" if dataset else "noise")
    data = None
    if init in ("both", "data"):
        if not dataset:
            raise LandscapeError(f"--init {init} needs a data set: give --dataset (or --init noise)")
        data = load_data_like(dataset, data_root, energy.shape)
    probe = FunnelConfig(
        noise=levels, eps=float(eps), steps=int(steps), merge_radius=float(config.get("merge_radius", 0.05)),
        chains=chains, init=init, quench_steps=int(config.get("quench_steps", 2000)),
        grad_tol=float(config.get("grad_tol", 1e-3)), seed=seed,
    )
    if not quiet:
        click.echo(f"funnel probe of {map_path} ({loaded.label}): noise {', '.join(f'{t:.3g}' for t in levels)} "
                   f"(unit {unit:.3g}: {unit_why}), eps {eps:.3g}, {steps} steps, {chains} chains per start "
                   f"from {init}")
    bars = _Bars(quiet)
    t0 = time.perf_counter()
    try:
        result = funnel_probe(energy, content, probe, data=data, progress_file=map_path, resume=resume, reporter=bars,
                              refine=refine and bool(config.get("refine", True)))
    except KeyboardInterrupt:
        bars.close()
        if progress_path(map_path, PROGRESS_KIND).exists():
            click.echo(f"interrupted: progress kept in {progress_path(map_path, PROGRESS_KIND)}; "
                       "rerun with --resume to continue", err=True)
        else:
            click.echo("interrupted before the first noise level finished: nothing kept", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        bars.close()
    dropped = result.new_minima > 0 and content.diagnosis is not None
    if result.new_minima:
        rewrite_map(map_path, result.content)
    else:
        update_map(map_path, funnel=result.funnel)
    clear_progress(map_path, PROGRESS_KIND)
    written = read_map(map_path)
    figures.plot_funnel(written, plot)
    return FunnelRun(map_path, written, result, plot, time.perf_counter() - t0, dropped)


def _summary(map_path: Path, f, result, plot: Path, wall: float) -> dict:
    import numpy as np

    score = f.score if math.isfinite(f.score) else None
    return {
        "map": str(map_path),
        "noise": f.noise.tolist(),
        "entropy": f.entropy.tolist(),
        "effective_basins": np.exp(f.entropy).tolist(),
        "reference_entropy": f.attrs.get("reference_entropy"),
        "score": score,
        "funnel": bool(score is not None and score >= f.attrs.get("funnel_threshold", 0.5)),
        "sinks": [[int(s) for s in row if s >= 0] for row in f.sinks],
        "new_minima": result.new_minima,
        "new_basins": result.new_basins,
        "figure": str(plot),
        "seconds": wall,
    }
