"""`landscape check`: the Anatomy paper's convergence verdict for a trained checkpoint."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import click

from landscape.cli.options import (
    echo_json,
    STRICT_EXIT,
    Command,
    FiniteFloat,
    chains_option,
    compile_option,
    data_root_option,
    dataset_option,
    device_option,
    eps_option,
    force_option,
    json_option,
    kept_note,
    out_option,
    quiet_option,
    seed_option,
    strict_option,
    temperature_option,
)
from landscape.train.config import CHECK_CHAINS, CHECK_MULTIPLES


def _parse_multiples(ctx, param, value: str) -> tuple[float, ...]:
    try:
        ms = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}") from None
    if not ms or any(not (m > 0 and m < float("inf")) for m in ms) or list(ms) != sorted(set(ms)):
        raise click.BadParameter(f"expected increasing positive numbers, got {value!r}")
    return ms


def multiples_option(detail: str = "") -> Callable:
    """``--multiples``: the chain lengths of the long-run check (shared with compare)."""
    return click.option("--multiples", default=",".join(f"{m:g}" for m in CHECK_MULTIPLES), show_default=True,
                        metavar="M[,M...]",
                        callback=_parse_multiples,
                        help="Chain lengths at which to measure, in units of the training L (one continuing run)"
                             + detail + ".")


def check_failed(result) -> bool:
    """Does the long-run check refute the checkpoint (``--strict``)? When the regime it was
    trained for is recorded: the verdict disagrees with it; when not: non-convergent."""
    if result.agreement == "regime unknown":
        return result.verdict != "convergent"
    return result.agreement != "agrees"


STRICT_RULE = ("the verdict disagrees with the regime the checkpoint was trained for (regime unknown: the "
               "verdict is non-convergent)")


@click.command("check", cls=Command,
               short_help="Is a trained EBM convergent? The Anatomy paper's long-run check.")
@click.argument("checkpoint", metavar="CKPT.pt", type=click.Path(path_type=Path))
@multiples_option()
@chains_option(CHECK_CHAINS, "per start (data, noise)", old="--n")
@click.option("--noise/--no-noise", default=True, show_default=True,
              help="Also run chains from uniform noise (evidence only; the verdict uses the chains from data).")
@eps_option(default_text="the training eps", old="--epsilon")
@temperature_option(default_text="the training tau^2", old_tau="--tau")
@click.option("--nn-ratio", type=FiniteFloat(min=0, min_open=True), default=3.0, show_default=True,
              help="Non-convergent if the chains' mean nearest-neighbour distance to the data exceeds this "
                   "multiple of the data's own spacing.")
@click.option("--saturation-excess", type=FiniteFloat(0, 1, min_open=True, max_open=True), default=0.5,
              show_default=True,
              help="Images: non-convergent if the chains saturate more than this share of the pixels that "
                   "are not saturated in the data (below 1: no chain saturates more than all of them).")
@click.option("--energy-drift", type=FiniteFloat(min=0, min_open=True), default=3.0, show_default=True,
              help="Non-convergent if the chains' mean energy falls more than this many standard deviations "
                   "of the data's energies below the data's mean.")
@click.option("--coverage-ratio", type=FiniteFloat(min=0, min_open=True), default=3.0, show_default=True,
              help="Non-convergent if the training examples lie more than this many times as far from the "
                   "nearest chain as from the nearest of as many other examples (the chains gather in part of "
                   "the data: a collapse onto a few modes).")
@click.option("--mix-ratio", type=FiniteFloat(min=0, min_open=True), default=2.0, show_default=True,
              help="Non-convergent if the chains' mix of the data's classes (each chain in the class of its "
                   "nearest training example; without labels, 10 k-means clusters of the data) is more than this "
                   "many times as far from the data's mix as 99% of random draws of as many examples (the chains drain "
                   "into a few classes).")
@click.option("--extend", type=FiniteFloat(min=1), default=10.0, show_default=True, metavar="FACTOR",
              help="Chains from data that meet no criterion at the longest length but are still moving away "
                   "from the data there (see --settle) run on, x3 at a time, up to FACTOR times the longest "
                   "length; 1: the lengths asked for only.")
@click.option("--settle", type=FiniteFloat(min=1), default=1.25, show_default=True, metavar="FACTOR",
              help="Chains from data are still moving where their distance to the data grows more than FACTOR "
                   "per tripling of the chain length between the last two lengths, or their mix ratio (see "
                   "--mix-ratio) does, past half its bar.")
@seed_option(0)
@device_option()
@compile_option()
@dataset_option("to start from and compare with", default_text="the checkpoint's")
@data_root_option()
@out_option("Figure of the quantities against chain length [default: <checkpoint stem>_check.png]; the "
            "long-run samples from data go to <out stem>_samples.png (images: their starts to "
            "<out stem>_samples_start.png). Pictures at the default names that exist (an earlier check's) are "
            "kept, with a note, unless --force; a named one that exists is an error.", metavar="PNG")
@force_option()
@json_option()
@strict_option(STRICT_RULE)
@quiet_option()
def check_cmd(checkpoint, multiples, chains, noise, eps, temperature, nn_ratio, saturation_excess, energy_drift,
              coverage_ratio, mix_ratio, extend, settle, seed, device, compile_steps, dataset, data_root, out, force, as_json, strict, quiet):
    """Is a trained EBM convergent? The long-run check of Nijkamp et al. 2019.

    Chains from data (and from noise) run for many times the training L; at each length
    the command records their mean energy, their mean distance to the nearest training
    example and (images) the share of saturated pixels, next to the data's own values.
    Non-convergent if, after the longest run from data, any of: the distance exceeds
    --nn-ratio times the data's spacing; the chains saturate more than --saturation-excess
    of the data's unsaturated pixels; their energy falls more than --energy-drift standard
    deviations below the data's; the data lie more than --coverage-ratio times as far from
    the chains as from as many other examples (the chains cover only part of the data);
    the chains' mix of the data's classes (or clusters), each chain counted in the class of
    its nearest training example, is more than --mix-ratio times as far from the data's mix
    as 99% of random draws of as many examples (the chains drain into a few classes).
    Convergent otherwise; where the chains are still moving away from the data (or their
    class mix still drifting) at the longest length, they run on first (--extend,
    --settle), so a length in units of L that is short for the model's step size does not
    pass a drifting model. The verdict is compared
    with the regime the checkpoint was trained for.

    \b
    Exit status:
      0  the check ran (whatever the verdict, unless --strict)
      1  an error (a bad checkpoint, missing data, a picture named with --out that exists, without --force)
      2  a usage error (a bad option)
      3  --strict, and the verdict disagrees with the trained regime (a checkpoint
         whose regime is unknown: the verdict is non-convergent)

    \b
    Examples:
      landscape check rings.pt
      landscape check digits.pt --multiples 1,10 --chains 32 --json > check.json
      landscape check digits.pt --strict --quiet --force || echo "not what it was trained for"
    """
    import torch

    from landscape.io.files import pictures_kept
    from landscape.train.check import (
        Thresholds,
        convergence_check,
        save_check_figure,
        save_check_samples,
    )
    from landscape.plots.common import check_picture_path
    from landscape.train.checkpoint import energy_from_checkpoint

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    named = out is not None
    out = check_picture_path(out or checkpoint.with_name(checkpoint.stem + "_check.png"))
    samples = out.with_name(out.stem + "_samples" + out.suffix)
    starts = samples.with_name(samples.stem + "_start" + samples.suffix)  # (images: the chains' starts too)
    # (pictures at the default names, an earlier check's or the demo's, are kept: the verdict is what a rerun is for)
    kept = pictures_kept([out, samples, starts], named=named, force=force)
    thresholds = Thresholds(nn_ratio=nn_ratio, saturation_excess=saturation_excess, energy_drift=energy_drift,
                            coverage_ratio=coverage_ratio, settle=settle, mix_ratio=mix_ratio)
    energy, ckpt = energy_from_checkpoint(checkpoint, device=device)  # a bad file ends here, in one line
    total = max(1, round(max(multiples) * int(ckpt["sampler"]["steps"]))) * (2 if noise else 1)
    bars = []

    def progress(k: int) -> None:
        if not bars:
            from landscape.io.bars import progress_bar

            bars.append(progress_bar(total=total, desc="long-run chains", unit="step"))
        bars[0].update(k)

    tau = None if temperature is None else math.sqrt(temperature)  # the library speaks tau, T = tau^2
    try:
        result = convergence_check(
            checkpoint, multiples=multiples, n_chains=chains, init=("data", "noise") if noise else ("data",),
            epsilon=eps, tau=tau, thresholds=thresholds, device=device, seed=seed, dataset_name=dataset,
            data_root=data_root, progress=None if quiet else progress, compile=compile_steps, extend=extend,
        )
    finally:
        for bar in bars:
            bar.close()
    images = len(energy.shape) in (2, 3)
    pictures = {"figure": str(out), "samples": str(samples), **({"starts": str(starts)} if images else {})}
    if kept:
        pictures = {}
        click.echo(kept_note(kept[0], "check", [checkpoint], several=True,
                             earlier=lambda n: "an earlier model"), err=True)
    else:
        save_check_figure(result, out)
        save_check_samples(result, samples, energy)
    if as_json:
        payload = result.to_dict()
        payload["pictures"] = pictures
        echo_json(payload)
    else:
        _print_table(result)
        if pictures:
            click.echo(f"pictures: {', '.join(pictures.values())}")
    if strict and check_failed(result):
        click.echo(f"check failed (--strict): {failure_text(result)}", err=True)
        raise click.exceptions.Exit(STRICT_EXIT)


def failure_text(result) -> str:
    if result.agreement == "regime unknown":
        return f"verdict {result.verdict}, regime unknown"
    return f"verdict {result.verdict}, trained as {result.regime}"


def _times(v: float, width: int) -> str:
    """A ratio as ``1.2x``, right-aligned in ``width``; ``n/a`` where not measured."""
    return (f"{v:.3g}x" if math.isfinite(v) or v == math.inf else "n/a").rjust(width)


def _print_table(result) -> None:
    d, t = result.data, result.thresholds
    click.echo(
        f"{result.n_chains} chains per start, L = {result.L}, eps = {result.epsilon:g}, tau = {result.tau:g} "
        f"(T = {result.tau ** 2:g}; {result.seconds:.1f} s)"
    )
    line = (f"data ({d.n} examples): energy {d.energy_mean:.4g} ± {d.energy_std:.3g}, "
            f"nearest-neighbour spacing (median) {d.spacing:.3g}")
    if d.modes:
        line += f", {d.modes}"
    if d.saturation is not None:
        line += f", saturated pixels {100 * d.saturation:.1f}%"
    click.echo(line)
    images = d.saturation is not None
    header = (f"{'from':<6} {'length':>7} {'steps':>7} {'energy':>11} {'drift/sd':>9} {'NN dist':>9} {'x spacing':>10}"
              f" {'coverage':>9} {'mix':>7}")
    click.echo(header + (f" {'saturated':>10}" if images else ""))
    for init, track in result.stages.items():
        for s in track:
            if not s.finite:
                click.echo(f"{init:<6} {s.multiple:>6g}L {s.steps:>7}   chains reached non-finite energies")
                continue
            row = (f"{init:<6} {s.multiple:>6g}L {s.steps:>7} {s.energy:>11.4g} {s.energy_drift:>9.3g} "
                   f"{s.nn_mean:>9.4g} {s.nn_ratio:>9.3g}x {_times(s.coverage_ratio, 9)} {_times(s.mix_ratio, 7)}")
            if images:
                row += f" {100 * s.saturation:>9.1f}%"
            click.echo(row)
    rule = f"rule: non-convergent if, at the longest run from data, NN distance > {t.nn_ratio:g}x the data's spacing"
    if images:
        rule += f", or saturation > {100 * (d.saturation + t.saturation_excess * (1 - d.saturation)):.0f}%"
        rule += f" ({t.saturation_excess:g} of the data's unsaturated pixels)"
    rule += (f", or energy > {t.energy_drift:g} sd below the data's, or the data > {t.coverage_ratio:g}x as far "
             f"from the chains as from as many examples (coverage), or the chains' mix of the data's "
             f"{d.modes.split(' ', 1)[-1] if d.modes else 'modes'} > {t.mix_ratio:g}x as far from the data's as "
             "99% of random draws (mix); chains still moving away from the data at the longest length run on (their "
             f"distance, or their mix ratio past half its bar, growing more than {t.settle:g}x per tripling of the "
             "length)")
    click.echo(rule)
    if result.noise_summary:
        click.echo(result.noise_summary)
    click.echo(result.verdict_line())
