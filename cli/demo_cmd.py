"""`landscape demo`: train the CPU presets on the embedded data and inspect them."""

from __future__ import annotations

import json
from pathlib import Path

import click

# Mapping settings per demo checkpoint, sized for 2 CPU cores (`landscape map` defaults are
# for a GPU): fewer chains, a shorter ladder, shorter attraction-diffusion trials.
DEMO_MAPS = {
    # At the model's own T = 1 the learned gaps between the rings are a few T high and
    # chains cross them; AD at T = 0.1 resolves them (each ring is a manifold of minima).
    "rings": {"chains": 128, "ad_temperature": 0.1, "ladder": (0.3, 1.0)},
    # On the digits models the basin count falls from one per minimum to a handful between
    # 1 and 3 alpha units: the top level sits in that transition, the ladder around it.
    "digits_convergent": {"chains": 64, "alpha": 2.0, "ladder": (1.5, 3.0, 6.0), "max_steps": 1000,
                          "patience": 100, "attempts": 2, "neighbours": 5},
    "digits_nonconvergent": {"chains": 64, "alpha": 2.0, "ladder": (1.5, 3.0, 6.0), "max_steps": 1000,
                             "patience": 100, "attempts": 2, "neighbours": 5},
}

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
@click.option("--no-map", is_flag=True, help="Train and check only; skip the landscape maps.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out, device, scale, no_map, quiet):
    """Train the CPU demo presets (rings, digits convergent and non-convergent), run the
    long-run check on both digits models, then map all three landscapes. A few minutes
    on 2 CPU cores.

    Re-running continues unfinished runs and skips finished ones (maps too). Results:
    checkpoints, <name>.run/ folders (run log, diagnostics.png, samples), long-run
    pictures, <name>.h5 maps with <name>_tree.png, <name>_basins.png and
    <name>_levels.png, and summary.md.
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

    if not no_map:
        for name, _ in DEMO_RUNS:
            results[name]["map"] = _map_one(out, name, device, scale, quiet)

    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
    text = _summary_markdown(results)
    (out / "summary.md").write_text(text)
    click.echo(text)


def _map_one(out: Path, name: str, device: str, scale: float, quiet: bool) -> dict:
    """Map one demo checkpoint (unless its map exists), draw it, and summarise it."""
    from cli.energy_source import resolve_energy
    from cli.map_cmd import plan_map, run_map
    from landscape.figures import (
        minima_kind,
        plot_levels,
        plot_map_2d,
        plot_representatives,
        plot_tree,
    )
    from landscape.mapfile import read_map

    ckpt, path = out / f"{name}.pt", out / f"{name}.h5"
    loaded = resolve_energy(ckpt, device=device)
    settings = dict(DEMO_MAPS[name])
    settings["chains"] = max(8, int(round(settings["chains"] * min(scale, 1.0))))
    if path.exists():
        click.echo(f"{name}: already mapped ({path})")
        content = read_map(path)
    else:
        plan = plan_map(loaded, **settings)
        run_map(loaded, plan, path, resume=True, quiet=quiet)
        content = read_map(path)
    pictures = {"tree": out / f"{name}_tree.png", "basins": out / f"{name}_basins.png"}
    plot_tree(content, pictures["tree"])
    if minima_kind(content) == "2d":
        plot_map_2d(content, pictures["basins"])
    else:
        plot_representatives(content, pictures["basins"])
    if content.levels:
        pictures["levels"] = out / f"{name}_levels.png"
        plot_levels(content, pictures["levels"])
    summary = {
        "map": str(path),
        "minima": content.n_minima,
        "basins": content.n_basins,
        "seconds": sum(content.meta.config.get("seconds", {}).values()),
        "levels": [{"alpha": lv.alpha, "basins": len(lv.basin_energy)} for lv in content.levels or []],
        "pictures": {k: str(v) for k, v in pictures.items()},
    }
    summary["labels"] = _label_summary(content, name)
    return summary


def _label_summary(content, name: str) -> list[dict]:
    """Purity of the basins of each level against the digit classes, or the ring (1-4) of
    the nearest rings sample."""
    import numpy as np

    from data import load
    from landscape.labels import label_basins

    if name == "rings":
        ds = load("rings")
        x = ds.x.numpy()
        labels = np.clip(np.rint(np.linalg.norm(x, axis=1)) - 1, 0, 3).astype(np.int64)
    else:
        ds = load("digits")
        x, labels = ds.x.numpy(), ds.labels.numpy()
    rows = []
    for lv in content.levels or []:
        r = label_basins(content.minima_x, lv.minima_basin, content.minima_hits, x, labels)
        rows.append({"alpha": lv.alpha, "basins": len(lv.basin_energy), "purity": r.purity,
                     "classes_with_basin": r.classes_with_basin, "classes_found": len(set(r.minimum_label))})
    return rows


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
    maps = {name: r["map"] for name, r in results.items() if "map" in r}
    if maps:
        lines += ["## landscape maps", "", "| | minima | basins (top level) | basins per magnetization alpha | time |",
                  "|---|---|---|---|---|"]
        for name, m in maps.items():
            ladder = ", ".join(f"{lv['alpha']:.3g}: {lv['basins']}" for lv in m["levels"])
            lines.append(f"| {name} | {m['minima']} | {m['basins']} | {ladder} | {m['seconds']:.0f} s |")
        lines.append("")
        for name in ("rings", "digits_convergent", "digits_nonconvergent"):
            if name in maps and maps[name].get("labels"):
                what = ("rings (each minimum labelled by the ring of its nearest sample)" if name == "rings" else
                        "digit classes (each minimum labelled by its nearest training digit)")
                classes = 4 if name == "rings" else 10
                lines += [f"{name}: basins against the {what}", "",
                          "| alpha | basins | purity | classes with a basin |", "|---|---|---|---|"]
                for row_ in maps[name]["labels"]:
                    lines.append(f"| {row_['alpha']:.3g} | {row_['basins']} | {row_['purity']:.2f} | "
                                 f"{row_['classes_with_basin']} of {classes} |")
                lines.append("")
        lines.append("Pictures: <name>_tree.png (disconnectivity graph), <name>_basins.png, <name>_levels.png; "
                     "`landscape tree <name>.h5` prints the tree.")
        lines.append("")
    return "\n".join(lines)
