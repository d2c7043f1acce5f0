"""`landscape map`: metastable states, attraction-diffusion basins and the barrier tree -> HDF5."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from cli.energy_source import LoadedEnergy, energy_options, resolve_energy
from landscape.errors import LandscapeError

# Ladder of magnetizations, in units of the automatic alpha unit (see landscape.mapper).
DEFAULT_LADDER = "0.03,0.3,1,3"


def _floats(text: str, what: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"{what} must be numbers separated by commas, got {text!r}") from None
    if any(not (math.isfinite(v) and v >= 0) for v in values):
        raise click.BadParameter(f"{what} must be finite and >= 0, got {text!r}")
    return values


class _Bars:
    """The mapper's Reporter as tqdm progress bars (or silence)."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.bar = None

    def stage(self, name: str, total: int | None = None, unit: str = "it") -> None:
        self.close()
        if not self.quiet:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=name, unit=unit, dynamic_ncols=True, leave=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def note(self, text: str) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if not self.quiet:
            click.echo(f"  {text}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command("map")
@click.argument("target", required=False, type=click.Path(dir_okay=False, path_type=Path))
@energy_options
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Map to write [default: <checkpoint or function name>.h5 in the current folder].")
@click.option("--dataset", type=str, default=None,
              help="Data set for chains from data [default: the one the checkpoint was trained on].")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder holding image data sets (default: $EBM_LANDSCAPE_DATA or ./datasets).")
@click.option("--init", type=click.Choice(["noise", "data", "both"]), default=None,
              help="Where exploration chains start [default: both when a data set is known, else noise].")
@click.option("--chains", type=click.IntRange(min=1), default=256, show_default=True, help="Exploration chains.")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Langevin steps per chain before quenching [default: 10x the training L; 1000 without one].")
@click.option("--temperature", type=click.FloatRange(min=0), default=None,
              help="Temperature T of the exploration chains [default: the training tau^2; 1 without a checkpoint].")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Langevin step of the exploration chains [default: the training epsilon; else chosen from "
                   "the curvature at the minima].")
@click.option("--ad-temperature", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Temperature of attraction-diffusion: which barriers count as real [default: the exploration "
                   "T, or 0.01 when that is 0].")
@click.option("--ad-eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="AD step size [default: training epsilon x sqrt(T_AD) for checkpoints; else from the curvature].")
@click.option("--alpha", type=click.FloatRange(min=0), default=0.1, show_default=True,
              help="Magnetization of the map's top level, in units of --alpha-unit.")
@click.option("--ladder", type=str, default=DEFAULT_LADDER, show_default=True,
              help="Further magnetizations (units of --alpha-unit), each stored as a level; '' for none.")
@click.option("--alpha-unit", type=str, default="auto", show_default=True,
              help="Unit of --alpha and --ladder: a number, or 'auto' (the minima's energy spread over T_AD "
                   "times their median spacing).")
@click.option("--delta", type=str, default="auto", show_default=True,
              help="AD success radius: a number, or 'auto' (a quarter of the minima's median spacing).")
@click.option("--max-steps", type=click.IntRange(min=1), default=2000, show_default=True, help="AD steps per trial at most.")
@click.option("--patience", type=click.IntRange(min=1), default=200, show_default=True,
              help="Stop an AD trial after this many steps without getting closer.")
@click.option("--attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="AD chains per pair and direction (the best counts).")
@click.option("--ad-average", type=click.IntRange(min=0), default=20, show_default=True,
              help="Judge AD arrival by the chain's running mean over about this many steps (0: its position). "
                   "In many dimensions a chain at T_AD jitters by more than --delta even inside the target's well.")
@click.option("--neighbours", type=click.IntRange(min=1), default=10, show_default=True,
              help="Basins each minimum is tried against (nearest first).")
@click.option("--merge-radius", type=click.FloatRange(min=0), default=None,
              help="End points closer than this are one minimum [default: 1% of the box width x sqrt(dim)].")
@click.option("--grad-tol", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Quench tolerance on the gradient norm [default: 1e-3 of the median gradient norm at the starts].")
@click.option("--max-minima", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep only the lowest N minima for the basin stage (0: all).")
@click.option("--no-refine", is_flag=True, help="Skip the string-method refinement of the tree's barriers.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--resume", is_flag=True, help="Continue an interrupted map of the same settings.")
@click.option("--force", is_flag=True, help="Overwrite an existing map (and drop unfinished progress).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def map_cmd(target, out, dataset, data_root, init, chains, steps, temperature, eps, ad_temperature, ad_eps, alpha,
            ladder, alpha_unit, delta, max_steps, patience, attempts, ad_average, neighbours, merge_radius, grad_tol, max_minima,
            no_refine, seed, resume, force, quiet, **energy_kw):
    """Map the energy landscape of a trained EBM (or any energy) into an HDF5 file.

    \b
    Stages (progress bars show each):
      1. metastable states: CHAINS Langevin chains from noise and/or data, run STEPS
         steps at temperature T, quenched to local minima, near-duplicates merged;
      2. basins: attraction-diffusion (a chain on U/T_AD + alpha ||x - b|| must reach
         minimum b) groups minima, lowest first, at each magnetization of the ladder;
      3. the barrier tree (single linkage over the barrier estimates);
      4. each tree edge's barrier refined by the string method with a climbing image.

    \b
    Examples:
      landscape map rings.pt                      # -> rings.h5
      landscape map digits.pt --dataset digits --chains 512
      landscape map --energy landscape.potentials:mueller_brown --shape 2 --box -1.5 2 \\
                    --temperature 1 --float64
      landscape tree rings.h5 --plot tree.png     # look at the result

    An interrupted map (Ctrl-C) keeps its progress in <map>.partial.h5: rerun the same
    command with --resume to continue.
    """
    import numpy as np

    loaded = resolve_energy(target, **energy_kw)
    out = out or Path(f"{loaded.label}.h5")
    if out.exists() and not force and not resume:
        raise LandscapeError(f"{out} exists: pass --force to overwrite it")
    if force:
        from landscape.mapfile import clear_progress

        clear_progress(out)
    plan = plan_map(
        loaded, dataset=dataset, data_root=data_root, init=init, chains=chains, steps=steps,
        temperature=temperature, eps=eps, ad_temperature=ad_temperature, ad_eps=ad_eps, alpha=alpha,
        ladder=_floats(ladder, "--ladder"), alpha_unit=alpha_unit, delta=delta, max_steps=max_steps,
        patience=patience, attempts=attempts, ad_average=ad_average, neighbours=neighbours, merge_radius=merge_radius,
        grad_tol=grad_tol, max_minima=max_minima, refine=not no_refine, seed=seed,
    )
    content, wall = run_map(loaded, plan, out, resume=resume, quiet=quiet)
    levels = content.levels or []
    ladder_text = ", ".join(f"alpha {lv.alpha:.3g}: {len(lv.basin_energy)}" for lv in levels)
    refined = content.barrier_refined
    n_refined = int(np.isfinite(refined).sum()) if refined is not None else 0
    click.echo(
        f"{content.n_minima} minima, {content.n_basins} basins, {content.n_barriers} barrier pairs"
        + (f" ({n_refined} refined)" if refined is not None else "")
        + f" -> {out}  ({wall:.0f} s)"
    )
    if ladder_text:
        click.echo(f"basins per magnetization: {ladder_text}")
    click.echo(f"next: landscape tree {out}   (add --plot tree.png --images basins.png for pictures)")


@dataclass
class MapPlan:
    """What a map will be made of: its settings, the data for chains from data, the data set's name."""

    config: Any
    data: Any
    dataset: str | None


def plan_map(
    loaded: LoadedEnergy,
    *,
    dataset: str | None = None,
    data_root: Path | None = None,
    init: str | None = None,
    chains: int = 256,
    steps: int | None = None,
    temperature: float | None = None,
    eps: float | None = None,
    ad_temperature: float | None = None,
    ad_eps: float | None = None,
    alpha: float = 0.1,
    ladder: tuple[float, ...] = (),
    alpha_unit: str = "auto",
    delta: str = "auto",
    max_steps: int = 2000,
    patience: int = 200,
    attempts: int = 3,
    ad_average: int = 20,
    neighbours: int = 10,
    merge_radius: float | None = None,
    grad_tol: float | None = None,
    max_minima: int = 0,
    refine: bool = True,
    seed: int = 0,
) -> MapPlan:
    """Settings for mapping ``loaded``: the options given, the rest from its checkpoint or its energy.

    A checkpoint's sampler sets the exploration (T = tau^2, its epsilon, 10x its L) and
    the AD step (the training descent step, noise for T_AD). Without one, the step comes
    from the curvature at a few quenched points.
    """
    import torch

    from landscape.ad import ADConfig
    from landscape.mapper import MapConfig

    energy = loaded.energy
    if energy.data_range is None:
        raise LandscapeError("the energy has no data range: give --box LOW HIGH (chains from noise start in it)")

    # Data for chains from data (and the data set's name for the record).
    dataset = dataset or loaded.dataset
    defaulted = init is None
    if init is None:
        init = "both" if dataset else "noise"
    data = None
    if init in ("data", "both"):
        if not dataset:
            raise LandscapeError(f"--init {init} needs a data set: give --dataset")
        from data import DataError, load

        size = energy.shape[-1] if len(energy.shape) == 3 else None
        try:
            ds = load(dataset, size=size, root=data_root)
        except DataError as err:
            if not defaulted:
                raise
            raise LandscapeError(f"{err} (or map without data: --init noise)") from None
        if tuple(ds.shape) != tuple(energy.shape):
            raise LandscapeError(
                f"data set {dataset} has examples of shape {list(ds.shape)}, the energy expects {list(energy.shape)}"
            )
        data = ds.x

    # Settings: from the checkpoint's sampler where there is one, else from the energy.
    sampler = loaded.sampler or {}
    train_eps, tau = sampler.get("epsilon"), sampler.get("tau")
    if temperature is None:
        temperature = float(tau) ** 2 if tau is not None else 1.0
    if ad_temperature is None:
        ad_temperature = temperature if temperature > 0 else 0.01
    auto = []
    if eps is None:
        eps = float(train_eps) if train_eps else None
    if ad_eps is None and train_eps:
        # The same descent step as in training, eps^2/2 * grad U, with noise for T_AD.
        ad_eps = float(train_eps) * math.sqrt(ad_temperature)
    if ad_eps is None:
        auto.append("eps")
    low, high = energy.data_range
    if merge_radius is None:
        merge_radius = 0.01 * (high - low) * math.sqrt(energy.dim)
    unit_value = 1.0
    if alpha_unit == "auto":
        auto.append("alpha_unit")
    else:
        unit_value = _floats(alpha_unit, "--alpha-unit")[0] if alpha_unit else 1.0
    delta_value = merge_radius or 0.1
    if delta == "auto":
        auto.append("delta")
    else:
        delta_value = _floats(delta, "--delta")[0]
    gen = torch.Generator(device=energy.device).manual_seed(seed)
    probe = energy.uniform_noise(min(chains, 64), gen)
    if grad_tol is None or eps is None:
        from landscape.mapper import largest_curvature, stable_eps

        with energy.frozen():
            _, g = energy.value_and_grad_fn()(probe)
        gnorm = torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1)
        if grad_tol is None:
            grad_tol = max(1e-3 * float(gnorm.median()), 1e-8)
        if eps is None:
            # Stable at the stiffest of a few quenched points.
            from landscape.minima import quench

            q = quench(energy, probe[:16], max_steps=300)
            eps = stable_eps(largest_curvature(energy, q.x), max(temperature, 1e-12))
    if steps is None:
        steps = 10 * int(sampler["steps"]) if sampler.get("steps") else 1000

    config = MapConfig(
        chains=chains,
        init=init,
        temperature=temperature,
        eps=eps,
        steps=steps,
        grad_tol=grad_tol,
        merge_radius=merge_radius,
        max_minima=max_minima,
        ad=ADConfig(
            temperature=ad_temperature,
            alpha=alpha,
            eps=ad_eps or 1.0,
            max_steps=max_steps,
            patience=patience,
            delta=delta_value,
            attempts=attempts,
            average=ad_average,
            neighbours=neighbours,
        ),
        ladder=tuple(ladder),
        alpha_unit=unit_value,
        auto=tuple(auto),
        refine=refine,
        seed=seed,
    )
    return MapPlan(config=config, data=data, dataset=dataset)


def run_map(loaded: LoadedEnergy, plan: MapPlan, out: Path, *, resume: bool = False, quiet: bool = False):
    """Build the map of ``plan``, write it to ``out`` atomically; return (content, seconds).

    Ctrl-C keeps the progress of finished stages and exits with status 130.
    """
    from landscape import __version__
    from landscape.mapfile import clear_progress, progress_path, write_map
    from landscape.mapper import build_map

    energy, config = loaded.energy, plan.config
    low, high = energy.data_range
    if not quiet:
        click.echo(
            f"mapping {loaded.label} ({'x'.join(map(str, energy.shape))}, box [{low:g}, {high:g}], {energy.device}): "
            f"{config.chains} chains from {config.init}, {config.steps} steps at T={config.temperature:g}, "
            f"eps={config.eps:.3g}; AD at T={config.ad.temperature:g}"
        )
    bars = _Bars(quiet)
    t0 = time.perf_counter()
    try:
        result = build_map(
            energy, config, data=plan.data, progress_file=out, resume=resume, reporter=bars,
            source_id=str(loaded.source.get("sha256", loaded.source.get("spec", ""))),
        )
    except KeyboardInterrupt:
        bars.close()
        if progress_path(out).exists():
            click.echo(f"interrupted: progress kept in {progress_path(out)}; rerun with --resume to continue", err=True)
        else:
            click.echo("interrupted before the first stage finished: nothing kept", err=True)
        raise click.exceptions.Exit(130) from None
    finally:
        bars.close()
    source = dict(loaded.source)
    source.update({"label": loaded.label, "regime": loaded.regime, "dataset": plan.dataset})
    content = result.content
    content.attrs["minima"]["dataset"] = plan.dataset or ""
    settings = config.to_dict()
    settings["seconds"] = result.seconds
    write_map(out, content, config=settings, source=source, tool_version=__version__)
    clear_progress(out)
    return content, time.perf_counter() - t0
