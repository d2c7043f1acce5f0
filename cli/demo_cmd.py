"""`landscape demo`: train the CPU presets on the embedded data and inspect them."""

from __future__ import annotations

import json
from pathlib import Path

import click

DEMO_RUNS = (
    # (checkpoint name, preset): the embedded data need no download
    ("rings", "rings-demo"),
    ("digits_convergent", "digits-convergent"),
    ("digits_nonconvergent", "digits-nonconvergent"),
)


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"), show_default=True,
              help="Folder for checkpoints, run logs, figures and summary.md.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto", show_default=True,
              help="Where to train.")
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Multiply every run's number of updates (0.1 for a smoke test).")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out, device, scale, quiet):
    """Train the CPU demo presets (rings, digits convergent and non-convergent), then run
    the long-run check on both digits models. A few minutes on 2 CPU cores.

    Re-running continues unfinished runs and skips finished ones. Results: checkpoints,
    <name>.run/ folders (run log, diagnostics.png, samples), long-run pictures, summary.md.
    """
    import torch

    from train.checkpoint import load_checkpoint
    from train.config import Config, apply_overrides, get_preset
    from train.loop import run_dir_for, train
    from train.sampling import run_chains, save_chain_figure

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict] = {}
    for name, preset in DEMO_RUNS:
        ckpt = out / f"{name}.pt"
        resume = ckpt.exists()
        config = Config.from_dict(load_checkpoint(ckpt)["config"]) if resume else get_preset(preset)
        steps = max(1, int(round(get_preset(preset).train.steps * scale)))
        config = apply_overrides(config, [f"train.steps={steps}"])
        if resume and int(load_checkpoint(ckpt)["step"]) >= steps:
            click.echo(f"{name}: already trained ({ckpt})")
        else:
            bar = _bar(quiet, steps, f"train {preset}")
            if bar is not None and resume:
                bar.update(int(load_checkpoint(ckpt)["step"]))
            try:
                train(config, ckpt, resume=resume, device=device,
                      progress=(lambda n, latest, b=bar: b.update(n)) if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
        summary = dict(load_checkpoint(ckpt)["metrics"])
        summary["figures"] = str(run_dir_for(ckpt))
        results[name] = summary

    for name in ("digits_convergent", "digits_nonconvergent"):
        ckpt = out / f"{name}.pt"
        L = int(load_checkpoint(ckpt)["sampler"]["steps"])
        for label, init, steps in (("shortrun", "noise", L), ("longrun", "data", 20 * L)):
            bar = _bar(quiet, None, f"{name} {label}")
            try:
                report = run_chains(ckpt, n=100, steps=steps, init=init, device=device, seed=1,
                                    progress=bar.update if bar is not None else None)
            finally:
                if bar is not None:
                    bar.close()
            picture = out / f"{name}_{label}.png"
            save_chain_figure(report, picture)
            results[name][label] = report.summary()
            results[name][label]["picture"] = str(picture)

    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    text = _summary_markdown(results)
    (out / "summary.md").write_text(text)
    click.echo(text)


def _bar(quiet: bool, total: int | None, desc: str):
    if quiet:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="upd" if total else "step", dynamic_ncols=True)


def _summary_markdown(results: dict[str, dict]) -> str:
    lines = ["# ebm-landscape demo", ""]
    rings = results.get("rings", {})
    if rings:
        lines += [
            "## rings (ToyNet, persistent chains)",
            f"- KL(q || p_theta) on a 200x200 grid: {rings.get('kl', float('nan')):.3f} after {int(rings.get('updates', 0))} updates"
            f" ({rings.get('seconds', float('nan')):.0f} s)",
            f"- density: {rings['figures']}/density.png, diagnostics: {rings['figures']}/diagnostics.png",
            "",
        ]
    lines += [
        "## digits: convergent vs non-convergent",
        "",
        "| | convergent | non-convergent |",
        "|---|---|---|",
    ]
    c, nc = results.get("digits_convergent", {}), results.get("digits_nonconvergent", {})

    def row(label: str, get) -> None:
        try:
            lines.append(f"| {label} | {get(c)} | {get(nc)} |")
        except (KeyError, TypeError):
            pass

    row("d_st mean (last updates)", lambda r: f"{r['d_st_mean']:.3g}")
    row("d_st lag-1 autocorrelation", lambda r: f"{r['d_st_lag1_autocorr']:.2f}")
    row("r_t mean", lambda r: f"{r['r_t_mean']:.3g}")
    row("short-run from noise: NN distance to data", lambda r: f"{r['shortrun']['nn_end']:.3f}")
    row("long-run from data: steps", lambda r: f"{int(r['longrun']['steps'])}")
    row("long-run from data: NN distance start -> end",
        lambda r: f"{r['longrun']['nn_start']:.3f} -> {r['longrun']['nn_end']:.3f}")
    row("data's own NN distance (median)", lambda r: f"{r['longrun']['data_nn_median']:.3f}")
    row("long-run saturated pixels", lambda r: f"{100 * r['longrun']['saturation_end']:.1f}%")
    row("pictures", lambda r: f"{r['shortrun']['picture']}, {r['longrun']['picture']}")
    lines.append("")
    return "\n".join(lines)
