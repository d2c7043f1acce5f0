"""`landscape map`: minima, the barrier tree over them and the basins of a ladder of pulls -> HDF5."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import click

from landscape.cli.energy_source import LoadedEnergy, energy_options, resolve_energy
from landscape.errors import LandscapeError


def _floats(text: str, what: str, *, positive: bool = False) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise click.BadParameter(f"{what} must be numbers separated by commas, got {text!r}") from None
    if any(not (math.isfinite(v) and (v > 0 if positive else v >= 0)) for v in values):
        raise click.BadParameter(f"{what} must be finite and {'> 0' if positive else '>= 0'}, got {text!r}")
    return values


def _auto(text: str, what: str) -> float | None:
    """``auto`` -> None (chosen from the landscape), else a positive number."""
    if text.strip().lower() == "auto":
        return None
    return _floats(text, what, positive=True)[0]


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
@click.option("--chains", type=click.IntRange(min=1), default=256, show_default=True,
              help="Exploration chains of the first round.")
@click.option("--rounds", type=click.IntRange(min=1), default=4, show_default=True,
              help="Exploration rounds at most: each later round runs as many chains as all before, while the "
                   "last one found new minima (not when most minima were found by one chain only).")
@click.option("--steps", type=click.IntRange(min=0), default=None,
              help="Langevin steps per chain before quenching [default: 10x the training L; 0 at temperature 0].")
@click.option("--temperature", type=click.FloatRange(min=0), default=None,
              help="Temperature T of the exploration chains [default: the checkpoint's training tau^2; else 0: "
                   "the starts are quenched directly].")
@click.option("--eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Langevin step of the exploration chains [default: the training epsilon; else stable at the "
                   "stiffest quenched start].")
@click.option("--ad-temperature", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Temperature of attraction-diffusion [default: a tenth of the lowest barrier between the "
                   "minima, at least 1/1000 of the highest: every barrier at least 10 T].")
@click.option("--ad-eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Attraction-diffusion step [default: stable at the stiffest minimum at T_AD].")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Magnetization of the main level (the map's basins), in alpha units.")
@click.option("--ladder", type=str, default="0.03,0.1,0.3,1,3", show_default=True,
              help="Magnetizations of the basin hierarchy, in alpha units; extended by x3 until one basin is left "
                   "(see --ladder-extend).")
@click.option("--ladder-extend", type=click.IntRange(min=0), default=4, show_default=True,
              help="Rungs added above --ladder at most while more than one basin is left.")
@click.option("--alpha-unit", type=str, default="auto", show_default=True,
              help="Unit of --alpha and --ladder: a number, or 'auto' (the minima's median barrier over T_AD "
                   "times their median spacing).")
@click.option("--delta", type=str, default="auto", show_default=True,
              help="Attraction-diffusion success radius: a number, or 'auto' (a quarter of the minima's "
                   "median spacing).")
@click.option("--max-steps", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Attraction-diffusion steps per trial at most.")
@click.option("--patience", type=click.IntRange(min=1), default=200, show_default=True,
              help="Stop a trial after this many steps without getting closer.")
@click.option("--attempts", type=click.IntRange(min=1), default=3, show_default=True,
              help="Attraction-diffusion chains per pair and direction (the best counts).")
@click.option("--ad-average", type=click.IntRange(min=0), default=20, show_default=True,
              help="Judge arrival by the chain's running mean over about this many steps (0: its position). "
                   "In many dimensions a chain jitters by more than --delta even inside the target's well.")
@click.option("--neighbours", type=click.IntRange(min=1), default=10, show_default=True,
              help="Nearest minima per minimum whose barriers are estimated and refined (and basins each "
                   "minimum is tried against).")
@click.option("--merge-radius", type=click.FloatRange(min=0), default=None,
              help="End points closer than this are one minimum [default: 1% of the box width x sqrt(dim)].")
@click.option("--grad-tol", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Quench tolerance on the gradient norm [default: 1e-3 of the median gradient norm at the starts].")
@click.option("--max-minima", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep only the lowest N minima (0: all).")
@click.option("--no-refine", is_flag=True,
              help="Keep the barrier estimates (straight segments, attraction-diffusion chains): no string method.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--resume", is_flag=True, help="Continue an interrupted map of the same settings.")
@click.option("--force", is_flag=True, help="Overwrite an existing map (and drop unfinished progress).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def map_cmd(target, out, dataset, data_root, init, chains, rounds, steps, temperature, eps, ad_temperature, ad_eps,
            alpha, ladder, ladder_extend, alpha_unit, delta, max_steps, patience, attempts, ad_average, neighbours,
            merge_radius, grad_tol, max_minima, no_refine, seed, resume, force, quiet, **energy_kw):
    """Map the energy landscape of a trained EBM (or any energy) into an HDF5 file.

    \b
    Stages (progress bars show each):
      1. minima: chains from noise and/or data, run STEPS steps at temperature T and
         quenched to local minima, near-duplicates merged; more rounds while new ones turn up;
      2. barriers between neighbouring minima, refined to their saddles (string method);
      3. the tree over minima (disconnectivity graph: every minimum a leaf), whose
         barriers set the attraction-diffusion temperature and pull;
      4. basins: attraction-diffusion (a chain on U/T_AD + alpha ||x - b|| must reach
         minimum b) at each pull of the ladder, up to one basin;
      5. the pairs those chains connected, refined where they could lower the tree.

    Settings left open are chosen from the energy (the same for the Python API,
    landscape.build_map): a checkpoint explores at its own training temperature;
    an energy of unknown scale is quenched from uniform starts, and its barriers set
    the attraction-diffusion temperature, so c x U maps to c times the map of U.

    \b
    Examples:
      landscape map rings.pt                      # -> rings.h5
      landscape map digits.pt --dataset digits --chains 512
      landscape map --energy landscape.potentials:mueller_brown --shape 2 --box -1.5 2 --float64
      landscape tree rings.h5 --plot tree.png     # look at the result

    An interrupted map (Ctrl-C) keeps its progress in <map>.partial.h5: rerun the same
    command with --resume to continue.
    """
    from landscape.mapping.settings import MapConfig

    loaded = resolve_energy(target, **energy_kw)
    out = out or Path(f"{loaded.label}.h5")
    if out.exists() and not force and not resume:
        raise LandscapeError(f"{out} exists: pass --force to overwrite it")
    if force:
        from landscape.io.mapfile import clear_progress

        clear_progress(out)
    config = MapConfig(
        chains=chains, rounds=rounds, init=init, temperature=temperature, eps=eps, steps=steps, grad_tol=grad_tol,
        merge_radius=merge_radius, max_minima=max_minima, neighbours=neighbours, refine=not no_refine,
        ad_temperature=ad_temperature, ad_eps=ad_eps, delta=_auto(delta, "--delta"),
        alpha_unit=_auto(alpha_unit, "--alpha-unit"), alpha=alpha, ladder=_floats(ladder, "--ladder", positive=True),
        ladder_extend=ladder_extend, max_steps=max_steps, patience=patience, attempts=attempts, average=ad_average,
        seed=seed,
    )
    data, dataset = map_data(loaded, config, dataset=dataset, data_root=data_root)
    content, wall = run_map(loaded, config, out, data=data, dataset=dataset, resume=resume, quiet=quiet)
    click.echo(summary_line(content, out, wall))
    levels = ", ".join(f"{p.multiplier:g}: {p.n_basins}" for p in content.levels if p.multiplier is not None)
    if levels:
        click.echo(f"basins per pull (alpha units): {levels}")
    click.echo(f"next: landscape tree {out}   (add --plot tree.png --images basins.png for pictures)")


def summary_line(content: Any, out: Path, wall: float) -> str:
    """What a map holds, in one line (minima, basins, merges refined, refined above estimate)."""
    tree = content.tree
    merges = tree.n_leaves - 1
    above = int(content.attrs.get("barriers", {}).get("refined_above_estimate", 0))
    text = (f"{content.n_minima} minima, {content.n_basins} basins at alpha {content.partition.multiplier:g} units; "
            f"tree: {int(tree.refined.sum())} of {merges} merges at refined saddles")
    if not tree.connected.all():
        text += f", {int((~tree.connected).sum())} not connected"
    flat = int(tree.flat().sum())
    if flat:
        text += f", {flat} flat (no barrier the energy's precision resolves)"
    if above:
        text += f"; {above} refined saddle{'s' if above != 1 else ''} above {'their' if above != 1 else 'its'} estimate (estimate kept)"
    return text + f" -> {out}  ({wall:.0f} s)"


def map_data(loaded: LoadedEnergy, config: Any, *, dataset: str | None = None,
             data_root: Path | None = None) -> tuple[Any, str | None]:
    """The training examples for chains from data (None when the chains start from noise
    only), and the data set's name: ``dataset``, else the checkpoint's."""
    dataset = dataset or loaded.dataset
    init = config.init
    if init == "noise" or (init is None and not dataset):
        return None, dataset
    if not dataset:
        raise LandscapeError(f"--init {init} needs a data set: give --dataset")
    from landscape.data import DataError, load

    energy = loaded.energy
    size = energy.shape[-1] if len(energy.shape) == 3 else None
    try:
        ds = load(dataset, size=size, root=data_root)
    except DataError as err:
        if init is not None:
            raise
        raise LandscapeError(f"{err} (or map without data: --init noise)") from None
    if tuple(ds.shape) != tuple(energy.shape):
        raise LandscapeError(
            f"data set {dataset} has examples of shape {list(ds.shape)}, the energy expects {list(energy.shape)}"
        )
    return ds.x, dataset


def run_map(loaded: LoadedEnergy, config: Any, out: Path, *, data: Any = None, dataset: str | None = None,
            resume: bool = False, quiet: bool = False) -> tuple[Any, float]:
    """Build the map of ``loaded`` with ``config``, write it to ``out`` atomically; return
    (content, seconds). Ctrl-C keeps the progress of finished stages and exits with status 130."""
    from landscape import __version__
    from landscape.io.mapfile import clear_progress, progress_path, write_map
    from landscape.mapping.pipeline import build_map

    energy = loaded.energy
    low, high = energy.data_range if energy.data_range else (math.nan, math.nan)
    if not quiet:
        click.echo(f"mapping {loaded.label} ({'x'.join(map(str, energy.shape))}, box [{low:g}, {high:g}], "
                   f"{energy.device})")
    bars = _Bars(quiet)
    t0 = time.perf_counter()
    try:
        result = build_map(
            energy, config, data=data, progress_file=out, resume=resume, reporter=bars,
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
    source.update({"label": loaded.label, "regime": loaded.regime, "dataset": dataset})
    content = result.content
    content.attrs["minima"]["dataset"] = dataset or ""
    write_map(out, content, config=config.to_dict(), source=source, tool_version=__version__,
              settings=result.settings, seconds=result.seconds)
    clear_progress(out)
    return content, time.perf_counter() - t0
