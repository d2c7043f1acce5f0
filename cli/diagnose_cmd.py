"""`landscape diagnose`: flag a map's spurious minima -> /diagnosis in the map, and an HTML report."""

from __future__ import annotations

import math
from pathlib import Path

import click

from landscape.cli.options import (
    echo_json,
    Command,
    named_path,
    FiniteFloat,
    code_options,
    data_root_option,
    dataset_option,
    device_option,
    force_option,
    json_option,
    quiet_option,
)


@click.command("diagnose", cls=Command,
               short_help="Flag a map's spurious minima; write an HTML report.")
@click.argument("map_path", metavar="MAP.h5", type=click.Path(dir_okay=False, path_type=Path))
@dataset_option("to compare the minima with", default_text="the data set the map records")
@data_root_option()
@click.option("--limit", type=click.IntRange(min=2), default=10000, show_default=True,
              help="Use at most this many training examples.")
@click.option("--model-file", "model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="The model file the map was made of (checkpoint or TorchScript), if it is no longer where "
                   "the map says (its sha256 is checked against the map's).")
@code_options
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), default=None, callback=named_path,
              help="HTML report to write [default: <map stem>_diagnosis.html beside the map].")
@click.option("--nn-quantile", type=FiniteFloat(0, 1, min_open=True), default=0.99, show_default=True,
              help="Quantile of the data's own nearest-neighbour distances that sets the distance bar.")
@click.option("--nn-factor", type=FiniteFloat(min=0, min_open=True), default=1.5, show_default=True,
              help="The distance bar is this multiple of that quantile.")
@click.option("--energy-quantile", type=FiniteFloat(0, 1), default=0.5, show_default=True,
              help="'The data's typical energy': this quantile of the energy over training examples.")
@click.option("--saturation-excess", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True,
              help="Images: saturated when a minimum saturates more than this share of the pixels the data "
                   "leave unsaturated (below 1: no image saturates more than all of them).")
@click.option("--funnel-score", type=FiniteFloat(0, 1, min_open=True), default=0.5, show_default=True,
              help="Flag the sinks of the map's funnel probe when its score is at least this.")
@device_option()
@force_option("(an existing report)")
@json_option()
@quiet_option()
def diagnose_cmd(map_path, dataset, data_root, limit, model, energy, network, weights, report, nn_quantile, nn_factor,
                 energy_quantile, saturation_excess, funnel_score, device, force, as_json, quiet):
    """Which minima of a map are spurious?

    \b
    A minimum is flagged spurious when
      - off the data: its energy is at or below the data's typical energy (the median
        over training examples) while its nearest training example is farther than
        --nn-factor x the --nn-quantile of the data's own nearest-neighbour distances;
      - saturated (images): its pixels pile at the ends of the range, beyond the data's
        own share by more than --saturation-excess of the pixels the data leave free;
      - a funnel sink: the lowest minimum of a basin that gathers the chains of a funnel
        (the map's /funnel from `landscape funnel`, when its score reaches --funnel-score).

    Writes /diagnosis into the map (replacing an earlier one), an HTML report with the
    worst minima beside their nearest training examples, energy and distance histograms
    and the basin tree with spurious basins in red, and prints a short summary. Where the
    report's file is there already, it runs again only with --force (nothing is written
    without it).

    \b
    Examples:
      landscape diagnose digits.h5
      landscape diagnose flowers.h5 --dataset flowers --data-root /data --report flowers.html
      landscape diagnose wells.h5 --energy my_potentials.py:wells --dataset npz:wells.npz
    """
    from landscape.train.runs import run_diagnose

    run = run_diagnose(map_path, dataset=dataset, data_root=data_root, limit=limit, model=model, report=report,
                       nn_quantile=nn_quantile, nn_factor=nn_factor, energy_quantile=energy_quantile,
                       saturation_excess=saturation_excess, funnel_score=funnel_score, device=device, force=force,
                       energy=energy, network=network, weights=weights, quiet=quiet or as_json)
    if as_json:
        echo_json(_summary(map_path, run.content, run.diagnosis, run.dataset, run.report))
        return
    for line in summary_lines(map_path, run.content, run.diagnosis, run.dataset):
        click.echo(line)
    click.echo(f"wrote /diagnosis to {map_path}, report {run.report}")


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "n/a"


def summary_lines(map_path: Path, content, d, dataset: str) -> list[str]:
    """The terminal summary of a diagnosis: bars, counts, the worst minima, the funnel."""
    import numpy as np

    from landscape.diagnosis.spurious import OFF_DATA, SATURATED, SINK, reason_text
    from landscape.data import canonical_name
    from landscape.io.views import describe_funnel, describe_source, drain_targets, map_dataset

    n = content.n_minima
    q99, q50 = np.quantile(d.data_nn, [d.rule.nn_quantile, 0.5])
    lines = [f"diagnosis of {map_path} ({describe_source(content)}): {n} minima against {d.data_nn.size} "
             f"examples of {dataset}"]
    recorded = map_dataset(content)
    if recorded and canonical_name(recorded) != dataset:
        lines.append(f"  the map records another data set, {recorded}: its minima are compared with {dataset}, as "
                     "--dataset asks")
    bar = (f"  bars: off the data if NN distance > {d.nn_bar:.3g} ({d.rule.nn_factor:g} x the data's "
           f"{100 * d.rule.nn_quantile:g}th percentile {q99:.3g}; their median {q50:.3g}) and energy <= "
           f"{d.energy_bar:.4g} (the data's {100 * d.rule.energy_quantile:g}th percentile)")
    if d.data_saturation is not None:
        bar += (f"; saturated if more than {100 * d.saturation_bar():.0f}% of pixels at the range ends "
                f"(the data: {100 * d.data_saturation:.0f}%)")
    lines.append(bar)
    hits = np.asarray(content.minima_hits, dtype=np.float64)
    flagged = d.spurious
    states = flagged & (drain_targets(content) < 0)
    lines.append(
        f"  spurious: {int(flagged.sum())} of {n} minima ({_pct(flagged.sum(), n)}), "
        f"{_pct(hits[flagged].sum(), hits.sum())} of the exploration chains: {d.count(OFF_DATA)} off the data, "
        + (f"{d.count(SATURATED)} saturated" if d.data_saturation is not None else "saturation not tested (not images)")
        + f", {d.count(SINK)} funnel sinks"
        + (f"; {int(states.sum())} of them states of their own, the others draining into another minimum with no "
           "barrier" if states.sum() < flagged.sum() else "")
    )
    added = int(content.attrs.get("minima", {}).get("funnel_added", 0))
    if added:
        own = n - added
        lines.append(f"    of the map's own {own} minima {int(flagged[:own].sum())} ({_pct(flagged[:own].sum(), own)}); "
                     f"of the {added} funnel probes found {int(flagged[own:].sum())} ({_pct(flagged[own:].sum(), added)})")
    # (the lowest flagged states: a point that drains into one of them says nothing more)
    worst = sorted(np.flatnonzero(states if states.any() else flagged).tolist(),
                   key=lambda i: float(content.minima_energy[i]))[:5]
    for i in worst:
        text = (f"    #{i} (basin {int(content.minima_basin[i])}, E={content.minima_energy[i]:.4g}): NN distance "
                f"{d.nn_distance[i]:.3g} = {d.nn_distance[i] / d.nn_bar:.2f}x the bar")
        if d.saturation is not None:
            text += f", {100 * d.saturation[i]:.0f}% saturated"
        lines.append(text + f"; {reason_text(int(d.reasons[i]))}")
    if flagged.sum() > len(worst):
        lines.append(f"    ... {int(flagged.sum()) - len(worst)} more in the report")
    if content.funnel is not None:
        lines.append("  " + describe_funnel(content.funnel))
    else:
        lines.append(f"  no funnel probe in the map (landscape funnel {map_path}): funnel sinks not tested")
    return lines


def _summary(map_path: Path, content, d, dataset: str, report: Path) -> dict:
    import numpy as np

    from landscape.diagnosis.spurious import OFF_DATA, SATURATED, SINK, reason_names
    from landscape.io.views import defined_score, drain_targets, funnel_verdict

    def num(x):
        x = float(x)
        return x if math.isfinite(x) else None

    hits = np.asarray(content.minima_hits, dtype=np.float64)
    flagged = d.spurious
    into = drain_targets(content)
    return {
        "map": str(map_path),
        "dataset": dataset,
        "data_examples": int(d.data_nn.size),
        "minima": content.n_minima,
        "spurious": int(flagged.sum()),
        "spurious_share": num(flagged.mean()) if flagged.size else None,
        "spurious_hits_share": num(hits[flagged].sum() / hits.sum()) if hits.sum() else None,
        "spurious_states": int((flagged & (into < 0)).sum()),
        "off_data": d.count(OFF_DATA),
        "saturated": d.count(SATURATED),
        "funnel_sinks": d.count(SINK),
        "sink_basins": list(d.sinks),
        "nn_bar": num(d.nn_bar),
        "energy_bar": num(d.energy_bar),
        "saturation_bar": None if d.saturation_bar() is None else num(d.saturation_bar()),
        "funnel_score": None if content.funnel is None else defined_score(content.funnel),
        "funnel_verdict": None if content.funnel is None else funnel_verdict(content.funnel),
        "flagged": [
            {"minimum": int(i), "basin": int(content.minima_basin[i]), "energy": num(content.minima_energy[i]),
             "nn_distance": num(d.nn_distance[i]),
             # (how far past the off-the-data bar: the text's "= 1.04x the bar")
             "nn_over_bar": num(d.nn_distance[i] / d.nn_bar) if d.nn_bar > 0 else None,
             "drains_into": int(into[i]) if into[i] >= 0 else None,
             "reasons": reason_names(int(d.reasons[i]))}
            for i in np.flatnonzero(flagged)
        ],
        "report": str(report),
    }
