"""`landscape funnel`: the noise-level funnel probe of a map -> /funnel in the map, and a figure."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.options import (
    echo_json,
    resume_or_force,
    auto_number,
    numbers,
    Command,
    chains_option,
    code_options,
    compile_option,
    data_root_option,
    dataset_option,
    device_option,
    eps_option,
    force_option,
    json_option,
    quiet_option,
    seed_option,
    steps_option,
)

# landscape.mapping.funnel.DEFAULT_NOISE, written out so that --help loads no torch (a test
# checks they agree): 0 quenches the starts themselves (where the data lie), then up to 8x
# the training noise (64x its temperature).
DEFAULT_NOISE = "0,1,2,4,8"


def _noise_unit(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--noise-unit checked before any work (a usage error, exit 2): auto or one positive
    number; passed on as given."""
    auto_number(value, "--noise-unit")
    return value


def _noise_levels(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """--noise checked before any work (a usage error, exit 2): two or more increasing
    numbers >= 0; passed on as given."""
    levels = numbers(value, "--noise")
    if len(levels) < 2 or list(levels) != sorted(set(levels)):
        raise click.BadParameter(f"--noise takes two or more increasing levels, got {value!r}")
    return value


@click.command("funnel", cls=Command,
               short_help="Noise-level funnel probe: do chains crowd into one basin?")
@click.argument("target", metavar="CKPT|MAP.h5", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--map", "map_option", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The map to probe when TARGET is a model file [default: <checkpoint stem>.h5 beside it or here].")
@code_options
@click.option("--noise", default=DEFAULT_NOISE, show_default=True, metavar="TAU[,TAU...]", callback=_noise_levels,
              help="Noise levels, increasing, in units of --noise-unit; 0 quenches the starts themselves.")
@click.option("--noise-unit", default="auto", show_default=True, metavar="auto|NUMBER",
              callback=_noise_unit,
              help="Unit of --noise: a number, or auto (the checkpoint's training tau; else sqrt of the map's "
                   "exploration temperature; where that is 0, sqrt of its attraction-diffusion temperature before "
                   "any lowering for its chains to arrive: the T_AD and the factor landscape info gives). The probe "
                   "records it; its figure says it.")
@chains_option(100, "per start (data, noise) and noise level")
@steps_option("before the quench", default_text="the map's exploration steps; 1000 for a map explored at "
                                                 "temperature 0")
@eps_option(default_text="the map's (the training eps for checkpoints)")
@click.option("--init", type=click.Choice(["both", "data", "noise"]), default=None,
              help="Where chains start [default: both when a data set is known, else noise].")
@dataset_option("for the chains from data", default_text="the map's")
@data_root_option()
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Figure of occupancy against noise [default: <map stem>_funnel.png].")
@click.option("--refine/--no-refine", default=True, show_default=True,
              help="Refine the barriers of the tree edges that new minima bring (string method), as the map does.")
@seed_option(0)
@device_option()
@compile_option("Steps compiled: the probe's Langevin chains, and the attraction-diffusion and strings of new "
                "minima.")
@click.option("--resume", is_flag=True, help="Continue an interrupted probe of the same settings.")
@force_option("(replaces the map's existing funnel probe and figure; the minima an earlier probe mapped into it "
              "stay, as minima of the energy)")
@json_option()
@quiet_option()
def funnel_cmd(target, map_option, energy, network, weights, noise, noise_unit, chains, steps, eps, init, dataset, data_root, plot, refine,
               seed, device, compile_steps, resume, force, as_json, quiet):
    """Does the landscape funnel every chain into one basin as the noise grows?

    For each noise level tau (x <- x - eps^2/2 dU/dx + tau eps z, the training step
    eps), chains from training data and from uniform noise run STEPS steps and are
    quenched to a local minimum. Each end point is assigned to the basin of the map it
    fell into; minima the map does not have are mapped into it first (by
    attraction-diffusion with the map's settings, at every level of its ladder). Per level the
    command reports the occupancy of the basins, its entropy H, the effective number of
    basins exp(H) and the sinks (the fullest basins, holding half the chains; at most 5).

    The funnel score is 1 - min H / H_ref over the levels above the lowest, H_ref being
    the entropy of the data's own basins (the chains from data at the lowest level):
    0 when no noise concentrates the chains more than the data are, 1 when some level
    sends every chain into one basin; 0.5 or more is called a funnel. Where at every level
    the score is taken over (those above the lowest) the chains each end in a basin of their
    own, the probe cannot tell: the verdict is "too few chains to tell" (--json: "funnel":
    null), not "no funnel". Sinks that tie with basins left out are said to tie, not listed
    (nor coloured in the figure). Results go into the map (/funnel), the figure to --plot.

    \b
    Examples:
      landscape funnel digits.pt                  # probes digits.h5
      landscape funnel rings.h5 --noise 0,0.5,1,2,4 --chains 200
      landscape funnel wells.h5 --energy my_potentials.py:wells   # a map of a Python energy

    An interrupted probe (Ctrl-C, a kill) keeps its finished noise levels, and the
    mapping of its new minima part-way, in <map>.h5.funnel.partial: rerun the same
    command with --resume to continue (landscape info <map>.h5.funnel.partial says how
    far it got).
    """
    resume_or_force(resume, force)
    import numpy as np

    from landscape.io.views import clear_sinks, describe_funnel
    from landscape.train.runs import funnel_summary, run_funnel

    run = run_funnel(target, map_option=map_option, noise=noise, noise_unit=noise_unit, chains=chains, steps=steps,
                     eps=eps, init=init, dataset=dataset, data_root=data_root, plot=plot, refine=refine, seed=seed,
                     device=device, resume=resume, force=force, quiet=quiet or as_json, say=click.echo,
                     energy=energy, network=network, weights=weights, compile=compile_steps)
    result, f = run.result, run.result.funnel
    if as_json:
        echo_json(funnel_summary(run.map_path, f, result, run.plot, run.seconds,
                                 diagnosis_removed=bool(run.dropped_diagnosis)))
        return
    click.echo(f"{'noise':>8} {'T':>9} {'entropy':>8} {'eff. basins':>11}  sinks (share of chains)")
    for k, tau in enumerate(f.noise):
        clear, tie = clear_sinks(f.occupancy[k], f.sinks[k])  # (a tie at the cut is said, not listed by index)
        sinks = ", ".join([f"{s} ({100 * f.occupancy[k, s]:.0f}%)" for s in clear]
                          + ([f"{'then ' if clear else ''}{tie[0]} tie at {100 * tie[1]:.0f}% each"] if tie else []))
        click.echo(f"{tau:>8.3g} {tau * tau:>9.3g} {f.entropy[k]:>8.3f} {np.exp(f.entropy[k]):>11.2f}  {sinks}")
    if result.new_minima:
        minima = f"{result.new_minima} new minim{'um' if result.new_minima == 1 else 'a'}"
        basins = f"{result.new_basins} new basin{'' if result.new_basins == 1 else 's'}"
        click.echo(f"{minima} mapped into {run.map_path} ({basins}; {run.content.n_basins} "
                   f"basin{'' if run.content.n_basins == 1 else 's'} now)")
    if run.dropped_diagnosis:
        click.echo("the map's diagnosis was made before this probe (its funnel sinks" + (", its minima" if
                   run.result.new_minima else "") + f") and was removed: run landscape diagnose {run.map_path}")
    click.echo(describe_funnel(f))
    if run.written:
        click.echo(f"wrote /funnel to {run.map_path}, figure {run.plot} ({run.seconds:.0f} s)")
