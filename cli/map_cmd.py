"""`landscape map`: minima, the barrier tree over them and the basins of a ladder of pulls -> HDF5."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.options import (
    resume_or_force,
    auto_number,
    Command,
    chains_option,
    compile_option,
    data_root_option,
    dataset_option,
    energy_options,
    eps_option,
    force_option,
    numbers,
    out_option,
    quiet_option,
    seed_option,
    steps_option,
    temperature_option,
)


@click.command("map", cls=Command,
               short_help="Map a landscape: minima, barrier tree, basins -> an HDF5 map.")
@click.argument("target", metavar="[CKPT|MODEL]", required=False, type=click.Path(dir_okay=False, path_type=Path))
@energy_options
@out_option("Map to write [default: <checkpoint or function name>.h5 in the current folder].", metavar="MAP.h5")
@dataset_option("for chains from data", default_text="the one the checkpoint was trained on")
@data_root_option()
@click.option("--init", type=click.Choice(["noise", "data", "both"]), default=None,
              help="Where exploration chains start [default: both when a data set is known, else noise].")
@chains_option(256, "in the first exploration round")
@click.option("--rounds", type=click.IntRange(min=1), default=4, show_default=True,
              help="Exploration rounds at most: each later round runs as many chains as all before, while the "
                   "last one found new minima that do not drain with no barrier into one found before (points on a "
                   "plateau or a flat floor do) (not when more than half of the chains found a minimum no other chain "
                   "found: nothing saturates then).")
@steps_option("before quenching", default_text="10x the training L; else 1000; 0 at temperature 0")
@temperature_option("(exploration)", default_text="the checkpoint's training tau^2; else 0: the starts are "
                                                   "quenched directly")
@eps_option("(exploration)", default_text="the training eps; else stable at the stiffest quenched start")
@click.option("--ad-temperature", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Temperature of attraction-diffusion [default: the checkpoint's training tau^2 where it is "
                   "positive; else 1/20 of the lowest barrier between the minima that the energy's precision "
                   "resolves, at least 1/1000 of the highest: every barrier at least 20 T; with no barrier, from "
                   "the minima's energy spread or the energy's rise over the box; then lowered where the pull that "
                   "brings chains to their targets at all (about (D - 1) T / delta in D dimensions) outweighs the "
                   "pull matched to the typical barrier, until they meet].")
@click.option("--ad-eps", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Attraction-diffusion step [default: the checkpoint's training eps, scaled to T_AD "
                   "(eps sqrt(T_AD / T_train)); else stable at the stiffest minimum or refined saddle at T_AD].")
@click.option("--alpha", type=click.FloatRange(min=0, min_open=True), default=0.1, show_default=True,
              help="Magnetization of the main level (the map's basins), in alpha units.")
@click.option("--ladder", type=str, default="0.03,0.1,0.3,1,3", show_default=True, metavar="A[,A...]",
              help="Magnetizations of the basin hierarchy, in alpha units; extended by x3 until one basin is left "
                   "(see --ladder-extend).")
@click.option("--ladder-extend", type=click.IntRange(min=0), default=4, show_default=True,
              help="Rungs added above --ladder at most while more than one basin is left.")
@click.option("--ladder-refine", type=click.IntRange(min=0), default=4, show_default=True,
              help="Rungs inserted at most after the ladder (together), between two pulls where the stronger "
                   "keeps a quarter of the weaker one's basins or fewer (at their geometric mean), so that such "
                   "a step shows one level between; where an inserted rung keeps the basins of one of its "
                   "neighbours (the step lies whole on its other side), another goes there, until one splits "
                   "it, within the same count; a step still as steep after them is left (give --ladder for "
                   "finer rungs); 0: none.")
@click.option("--alpha-unit", type=str, default="auto", show_default=True, metavar="auto|NUMBER",
              help="Unit of --alpha and --ladder: a number, or 'auto' (the minima's median resolved barrier "
                   "over T_AD times their median spacing, leaving out those that drain flat into another, but at least the pull that brings half of the chains "
                   "to their target across flat ground: in many dimensions a weak pull holds a chain far from "
                   "its target even where no barrier is in the way).")
@click.option("--delta", type=str, default="auto", show_default=True, metavar="auto|NUMBER",
              help="Attraction-diffusion success radius: a number, or 'auto' (a quarter of the minima's "
                   "median spacing, leaving out those that drain flat into another, at least the merge radius); a trial arrives within at most half the distance "
                   "from its start to its target either way.")
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
                   "minimum is tried against); every pair where those are half of all pairs already.")
@click.option("--merge-radius", type=click.FloatRange(min=0), default=None,
              help="End points closer than this, with no barrier between them, are one minimum [default: 1% of the "
                   "box width x sqrt(dim)].")
@click.option("--grad-tol", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Quench tolerance on the gradient norm [default: 1e-8 of the median gradient norm at the starts].")
@click.option("--quench-steps", type=click.IntRange(min=1), default=2000, show_default=True,
              help="Descent iterations per chain at most when quenching to a minimum (the map's notes say how "
                   "many chains stopped at this limit rather than converged or at the energy's precision).")
@click.option("--max-minima", type=click.IntRange(min=0), default=0, show_default=True,
              help="Keep only the lowest N minima (0: all).")
@compile_option("Steps compiled: the exploration's Langevin chains, attraction-diffusion and the string method; "
                "a failure is noted in the map's report. Not under torchrun (a split energy steps eagerly).")
@click.option("--no-refine", is_flag=True,
              help="Keep the barrier estimates (straight segments, attraction-diffusion chains): no string method.")
@click.option("--string-steps", type=click.IntRange(min=1), default=400, show_default=True,
              help="Iterations per barrier of the string method's first phase, in which the path relaxes towards "
                   "the minimum energy path.")
@click.option("--climb-steps", type=click.IntRange(min=0), default=100, show_default=True,
              help="Iterations of the phase that follows, in which the path's highest point climbs onto the "
                   "saddle (0: none). Strings on smooth energies converge well within both budgets; on a "
                   "network's piecewise-linear landscape they seldom converge, and longer runs lower barriers "
                   "further (a median 11 % on the demo's convergent digits model at 1,600 string iterations).")
@seed_option(0)
@click.option("--resume", is_flag=True, help="Continue an interrupted map of the same settings.")
@force_option("(an existing map; unfinished progress is dropped)")
@quiet_option()
def map_cmd(target, out, dataset, data_root, init, chains, rounds, steps, temperature, eps, ad_temperature, ad_eps,
            alpha, ladder, ladder_extend, ladder_refine, alpha_unit, delta, max_steps, patience, attempts, ad_average, neighbours,
            merge_radius, grad_tol, quench_steps, max_minima, compile_steps, no_refine, string_steps, climb_steps, seed,
            resume, force, quiet, **energy_kw):
    """Map the energy landscape of a trained EBM (or any energy) into an HDF5 file.

    \b
    Stages (a progress bar shows each, and what its batch under way is doing:
    trials or strings still running, steps so far):
      1. minima: chains from noise and/or data, run STEPS steps at temperature T and
         quenched to local minima, near-duplicates merged; more rounds while new ones turn up;
      2. barriers between neighbouring minima, refined to their saddles (string method);
      3. the tree over minima (disconnectivity graph: every minimum a leaf), whose
         barriers set the attraction-diffusion pull (and its temperature, where the model
         has no sampling temperature of its own);
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

    An interrupted map (Ctrl-C, SIGTERM, a kill) keeps its progress in <map>.h5.partial: rerun the same
    command with --resume to continue.

    \b
    Spread over processes or GPUs with torchrun (gloo on the CPU, nccl on GPUs):
      torchrun --nproc_per_node 4 $(which landscape) map digits.pt --device cuda
    Every rank runs the same map; the energy's evaluations are split over them and
    rank 0 writes the file: the same map as one process for the same seed (landscape info
    says how many ranks made it and how they split the work). The ranks wait for each other
    at the start for 5 minutes at most; LANDSCAPE_JOIN_TIMEOUT=SECONDS waits longer.
    """
    resume_or_force(resume, force)
    from landscape import distributed
    from landscape.mapping.settings import MapConfig
    from landscape.train.energies import resolve_energy

    from landscape.train.runs import _source_id

    # under torchrun: one rank of the map, joined first, so that a file one node lacks is an
    # error on every rank (not a rank that waits for the others with no word)
    group = distributed.join(energy_kw.get("device") or "auto")
    ok = False
    try:
        loaded = distributed.on_every_rank(lambda: resolve_energy(target, **energy_kw))
        distributed.agree(_source_id(loaded.source), "models (their sha256 or spec)")
        loaded.energy.compile = compile_steps
        _map(loaded, group.main, out, dataset, data_root, MapConfig(
            chains=chains, rounds=rounds, init=init, temperature=temperature, eps=eps, steps=steps,
            grad_tol=grad_tol, quench_steps=quench_steps, merge_radius=merge_radius, max_minima=max_minima,
            neighbours=neighbours,
            refine=not no_refine, refine_steps=string_steps, refine_climb_steps=climb_steps,
            ad_temperature=ad_temperature, ad_eps=ad_eps, delta=auto_number(delta, "--delta"),
            alpha_unit=auto_number(alpha_unit, "--alpha-unit"), alpha=alpha,
            ladder=numbers(ladder, "--ladder", positive=True), ladder_extend=ladder_extend,
            ladder_refine=ladder_refine, max_steps=max_steps,
            patience=patience, attempts=attempts, average=ad_average, seed=seed,
        ), resume=resume, force=force, quiet=quiet)
        ok = True
    finally:
        distributed.leave(ok)


def _map(loaded, main, out, dataset, data_root, config, *, resume, force, quiet) -> None:
    """The body of ``landscape map`` on one rank (rank 0 alone prints and writes)."""
    from landscape.train.runs import map_data, run_map, states_line, summary_line

    out = out or Path(f"{loaded.label}.h5")
    data, dataset = map_data(loaded, config, dataset=dataset, data_root=data_root,
                             say=click.echo if main and not quiet else None)
    content, wall = run_map(loaded, config, out, data=data, dataset=dataset, resume=resume, force=force,
                            quiet=quiet, say=click.echo)
    if not main:
        return
    if content is None:  # --resume of a map that is finished with these settings
        click.echo(f"{out} is finished with these settings: nothing to resume")
        return
    click.echo(summary_line(content, out, wall))
    states = states_line(content)
    if states:
        click.echo(states)
    levels = ", ".join(f"{p.multiplier:g}: {p.n_basins}" for p in content.levels if p.multiplier is not None)
    if levels:
        # (the counts the map keeps: where the notes above joined or moved minima, not those the ladder's own lines gave)
        kept = [what for key, what in (("drained", "drained basins joined"), ("nested", "the levels nested"))
                if any(p.attrs.get(key) for p in content.levels)]
        click.echo(f"basins per pull (alpha units{'; ' + ', '.join(kept) if kept else ''}): {levels}")
    click.echo(f"next: landscape tree {out}   (add --plot tree.png --images basins.png for pictures)")
