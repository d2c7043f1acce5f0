"""The demo: train the CPU presets on the embedded data, map them, diagnose them.

:func:`run_demo` is what ``landscape demo`` (and ``make demo``) runs: three small models
(the rings density, the digits convergent and non-convergent), long chains on the digits
models, the three maps, then the diagnosis (the long-run check and funnel probe of the
digits models, spurious minima in all three maps, the two digits models compared), all
summarised in ``summary.md``. Re-running continues unfinished work and skips finished.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
# Mapping settings per demo checkpoint, sized for 2 CPU cores: fewer exploration chains
# than `landscape map`'s 256 and, in image space, shorter attraction-diffusion trials
# (each new minimum of the funnel probe is mapped at every level of the ladder with them).
# Every other setting is the map's default, chosen from the model and its landscape.
_SHORT_TRIALS = {"max_steps": 1000, "patience": 100, "attempts": 2, "neighbours": 5}
DEMO_MAPS = {
    "rings": {"chains": 128},
    "digits_convergent": {"chains": 64, **_SHORT_TRIALS},
    "digits_nonconvergent": {"chains": 64, **_SHORT_TRIALS},
}

# Funnel probes of the digits maps, sized for 2 CPU cores: in image space nearly every
# chain ends in a minimum of its own, and each new minimum is mapped into the map by
# attraction-diffusion at every level (the cost of the probe); no string-method refinement.
DEMO_FUNNEL = {"chains": 24, "refine": False}
DIGITS = ("digits_convergent", "digits_nonconvergent")

DEMO_RUNS = (
    # (checkpoint name, preset): the embedded data need no download
    ("rings", "rings-demo"),
    ("digits_convergent", "digits-convergent"),
    ("digits_nonconvergent", "digits-nonconvergent"),
)



def run_demo(out: Path, *, device: str = "auto", scale: float = 1.0, no_map: bool = False, quiet: bool = False,
             say: Callable[[str], None] = print) -> dict:
    """Run the demo into the folder ``out`` (see the module docstring); return its results
    (also written to ``summary.json`` and ``summary.md``).

    ``scale`` multiplies every run's number of updates (0.1 for a smoke test); ``no_map``
    skips the maps and their diagnosis.
    """
    import torch

    from landscape.train.checkpoint import load_checkpoint
    from landscape.train.config import Config, apply_overrides, get_preset
    from landscape.train.loop import run_dir_for, train
    from landscape.train.sampling import run_chains, save_chain_figure

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
            say(f"{name}: already trained ({ckpt})")
        else:
            bar = _bar(quiet, steps, f"train {preset}")
            if bar is not None and resume:
                bar.update(int(load_checkpoint(ckpt)["step"]))
            try:
                train(config, ckpt, resume=resume, device=device,
                      progress=(lambda n, latest, b=bar: b.update(n)) if bar is not None else None)
            except KeyboardInterrupt as stopped:  # Ctrl-C or SIGTERM: the checkpoint is saved, a rerun continues it
                if bar is not None:
                    bar.close()
                result = getattr(stopped, "result", None)
                if result is not None:
                    say(f"{name}: stopped after {result.step} of {steps} updates; rerun the demo to continue")
                raise
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
            results[name][label]["L"] = L

    if not no_map:
        for name, _ in DEMO_RUNS:
            results[name]["map"] = _map_one(out, name, device, scale, quiet, say)
        results["diagnosis"] = _diagnose_all(out, device, scale, quiet, say)
        for name, _ in DEMO_RUNS:
            _draw_map(out, name)

    from landscape.diagnosis.compare import json_safe

    (out / "summary.json").write_text(json.dumps(json_safe(results), indent=2) + "\n")
    text = _summary_markdown(results, out)
    (out / "summary.md").write_text(text)
    say(text)
    return results

def _map_one(out: Path, name: str, device: str, scale: float, quiet: bool, say: Callable[[str], None]) -> dict:
    """Map one demo checkpoint (unless its map exists) and summarise it (its pictures:
    :func:`_draw_map`, once the diagnosis is in)."""
    import numpy as np

    from landscape.train.runs import map_checkpoint
    from landscape.io.views import recorded_sha256
    from landscape.io.mapfile import read_map
    from landscape.io.progress import ProgressMismatch
    from landscape.mapping.settings import MapConfig
    from landscape.train.checkpoint import sha256_of

    ckpt, path = out / f"{name}.pt", out / f"{name}.h5"
    settings = dict(DEMO_MAPS[name])
    settings["chains"] = max(8, int(round(settings["chains"] * min(scale, 1.0))))
    pictures = {"tree": out / f"{name}_tree.png", "basins": out / f"{name}_basins.png",
                "levels": out / f"{name}_levels.png"}
    content = read_map(path) if path.exists() else None
    stale = content is not None and recorded_sha256(content) != sha256_of(ckpt)
    if stale:  # a map of the checkpoint before it was trained further (a rerun with a larger --scale)
        say(f"{name}: {path} is a map of an earlier {ckpt.name}: mapping it again")
        for picture in pictures.values():
            picture.unlink(missing_ok=True)
        content = None  # (mapping it again clears the probe progress of the map it replaces)
    if content is not None:
        say(f"{name}: already mapped ({path})")
    else:
        try:
            map_checkpoint(ckpt, path, config=MapConfig(**settings), device=device, force=stale, quiet=quiet, say=say)
        except ProgressMismatch:  # an unfinished map of the checkpoint before it was trained further
            say(f"{name}: its unfinished map is of an earlier {ckpt.name}: mapping it afresh")
            map_checkpoint(ckpt, path, config=MapConfig(**settings), device=device, force=True, quiet=quiet, say=say)
        content = read_map(path)
    # The numbers count the map as built, its own minima (a funnel probe later appends
    # minima of its own, and basins for them: the map's own minima keep their basins, so
    # these numbers stay those of the map); its pictures are drawn once the probe and the
    # diagnosis are in (_draw_map), so they show the .h5 beside them as `landscape tree`
    # and the report do.
    own = content.n_minima - int(content.attrs.get("minima", {}).get("funnel_added", 0))
    tree = content.tree
    seconds = content.meta.extra.get("seconds", {}) if content.meta is not None else {}
    summary = {
        "map": str(path),
        "minima": own,
        "basins": int(np.unique(content.minima_basin[:own]).size),
        "seconds": float(sum(seconds.values())) if isinstance(seconds, dict) else float("nan"),
        "levels": [{"alpha": p.multiplier, "basins": int(np.unique(p.basin[:own]).size)} for p in content.levels],
        "main": content.partition.multiplier,
        "merges": tree.n_leaves - 1,
        "refined_merges": int(tree.refined.sum()),
        "not_connected": int((~tree.connected).sum()),
        "above_estimate": int(content.attrs.get("barriers", {}).get("refined_above_estimate", 0)),
        "pictures": {k: str(v) for k, v in pictures.items()},
    }
    summary["labels"] = _label_summary(content, name, own)
    return summary


def _draw_map(out: Path, name: str) -> None:
    """The pictures of the map ``<name>.h5`` as it is now (with a funnel probe's minima
    and the diagnosis's flags, where they are in): its tree, basins and levels."""
    from landscape.io.mapfile import read_map
    from landscape.io.views import minima_kind
    from landscape.plots.maps import plot_levels, plot_map_2d, plot_representatives
    from landscape.plots.tree import plot_tree

    content = read_map(out / f"{name}.h5")
    plot_tree(content, out / f"{name}_tree.png")
    draw = plot_map_2d if minima_kind(content) == "2d" else plot_representatives
    draw(content, out / f"{name}_basins.png")
    plot_levels(content, out / f"{name}_levels.png")


def _diagnose_all(out: Path, device: str, scale: float, quiet: bool, say: Callable[[str], None]) -> dict:
    """The diagnosis of the demo models: the long-run check of both digits models, the
    funnel probe of their maps, spurious minima in all three maps, and the digits models
    compared. Probes and diagnoses already in a map are kept (a rerun skips them)."""
    import numpy as np

    from landscape.train.runs import run_compare
    from landscape.train.runs import run_diagnose
    from landscape.train.runs import run_funnel
    from landscape.diagnosis.spurious import OFF_DATA, SATURATED, SINK
    from landscape.mapping.funnel import PROGRESS_KIND as FUNNEL_PROGRESS, collapse_level
    from landscape.io.progress import progress_path
    from landscape.io.mapfile import read_map
    from landscape.io.views import funnel_verdict
    from landscape.train.check import convergence_check, save_check_figure

    summary: dict = {}
    checks = {}
    for name in DIGITS:
        ckpt = out / f"{name}.pt"
        bar = _bar(quiet, None, f"{name} long-run check")
        try:
            checks[ckpt] = result = convergence_check(ckpt, device=device, progress=bar.update if bar is not None else None)
        finally:
            if bar is not None:
                bar.close()
        save_check_figure(result, out / f"{name}_check.png")
        summary.setdefault(name, {})["check"] = {
            "verdict": result.verdict, "regime": result.regime, "agreement": result.agreement,
            "explanation": result.explanation, "seconds": result.seconds, "figure": str(out / f"{name}_check.png"),
        }
        say(f"{name}: {result.verdict_line()}")
    for name in DIGITS:
        path = out / f"{name}.h5"
        if read_map(path).funnel is None:
            chains = max(4, int(round(DEMO_FUNNEL["chains"] * min(scale, 1.0))))
            unfinished = progress_path(path, FUNNEL_PROGRESS).exists()  # an interrupted probe: continued
            run_funnel(path, chains=chains, refine=DEMO_FUNNEL["refine"], device=device, force=not unfinished,
                       resume=unfinished, quiet=quiet, say=say)
        f = read_map(path).funnel
        k = collapse_level(f)
        summary[name]["funnel"] = {
            "score": f.score, "noise": f.noise.tolist(), "effective_basins": np.exp(f.entropy).tolist(),
            "reference_basins": float(np.exp(f.attrs.get("reference_entropy", np.nan))),
            "collapse_noise": float(f.noise[k]), "new_minima": int(f.attrs.get("new_minima", 0)),
            "verdict": funnel_verdict(f),
            "seconds": float(f.attrs.get("seconds", 0.0)), "figure": str(out / f"{name}_funnel.png"),
        }
    for name, _ in DEMO_RUNS:
        path, report = out / f"{name}.h5", out / f"{name}_diagnosis.html"
        content = read_map(path)
        if content.diagnosis is None or not report.exists():
            content = run_diagnose(path, device=device, force=True).content
        d = content.diagnosis
        reasons = d.reasons if d.reasons is not None else np.zeros(content.n_minima, dtype=np.uint8)
        hits = np.asarray(content.minima_hits, dtype=np.float64)
        own = content.n_minima - int(content.attrs.get("minima", {}).get("funnel_added", 0))
        summary.setdefault(name, {})["diagnosis"] = {
            "minima": content.n_minima, "spurious": int(d.spurious.sum()),
            "own_minima": own, "own_spurious": int(d.spurious[:own].sum()),
            "share": float(d.spurious.mean()), "hits_share": float(hits[d.spurious].sum() / max(hits.sum(), 1)),
            "off_data": int(((reasons & OFF_DATA) != 0).sum()), "saturated": int(((reasons & SATURATED) != 0).sum()),
            "sinks": int(((reasons & SINK) != 0).sum()), "nn_bar": float(d.bar.get("bar", np.nan)),
            "report": str(report),
        }
    cmp = run_compare(out / f"{DIGITS[0]}.pt", out / f"{DIGITS[1]}.pt", out=out / "compare_digits.png", force=True,
                      checks=checks, device=device, quiet=quiet)
    summary["comparison"] = {"rows": [list(r) for r in cmp.rows], "summary": cmp.summary, "caveats": cmp.caveats,
                             "figure": str(cmp.out)}
    for line in cmp.summary:
        say(line)
    for line in cmp.caveats:
        say(f"Caution: {line}")
    return summary


def _label_summary(content, name: str, own: int) -> list[dict]:
    """Purity of the basins of each level against the digit classes, or the ring (1-4) of
    the nearest rings sample, over the map's ``own`` first minima."""
    import numpy as np

    from landscape.data import load
    from landscape.diagnosis.labels import label_basins

    if name == "rings":
        ds = load("rings")
        x = ds.x.numpy()
        labels = np.clip(np.rint(np.linalg.norm(x, axis=1)) - 1, 0, 3).astype(np.int64)
    else:
        ds = load("digits")
        x, labels = ds.x.numpy(), ds.labels.numpy()
    rows = []
    for lv in content.levels or []:
        basins, basin = np.unique(lv.basin[:own], return_inverse=True)
        r = label_basins(content.minima_x[:own], basin, content.minima_hits[:own], x, labels)
        rows.append({"alpha": lv.multiplier, "basins": int(basins.size), "purity": r.purity,
                     "classes_with_basin": r.classes_with_basin, "classes_found": len(set(r.minimum_label))})
    return rows


def _bar(quiet: bool, total: int | None, desc: str):
    if quiet:
        return None
    from landscape.io.bars import progress_bar

    return progress_bar(total=total, desc=desc, unit="upd" if total else "step")


def _summary_markdown(results: dict[str, dict], out: Path | None = None) -> str:
    """summary.md: the demo's results as tables, with the paths of its pictures relative to
    ``out`` (the folder it is written into), so the folder can be moved or shared."""
    def rel(path: str) -> str:
        if out is None:
            return path
        try:
            return str(Path(path).relative_to(out))
        except ValueError:
            return path

    lines = ["# ebm-landscape demo", ""]
    rings = results.get("rings", {})
    if rings:
        lines += [
            "## rings (ToyNet, persistent chains)",
            f"- KL(q || p_theta) on a 200x200 grid: {rings.get('kl', float('nan')):.3f} after {int(rings.get('updates', 0))} updates"
            f" ({rings.get('seconds', float('nan')):.0f} s)",
            f"- density: {rel(rings['figures'])}/density.png, diagnostics: {rel(rings['figures'])}/diagnostics.png",
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

    def steps(r: dict) -> str:
        return f"{int(r['steps'])} ({r['steps'] / r['L']:g} L)" if r.get("L") else f"{int(r['steps'])}"

    # (d_st is in each model's own energy units, U = (2 / eps^2) x the network: its sd is the scale)
    row("d_st mean ± sd (last updates)", lambda r: f"{r['d_st_mean']:.3g} ± {r['d_st_std']:.3g} (last "
        f"{int(r['window'])})")
    row("d_st lag-1 autocorrelation", lambda r: f"{r['d_st_lag1_autocorr']:.2f}")
    row("r_t mean", lambda r: f"{r['r_t_mean']:.3g}")
    row("short-run from noise: steps", lambda r: steps(r["shortrun"]))
    row("short-run from noise: NN distance to data, start -> end",
        lambda r: f"{r['shortrun']['nn_start']:.3f} -> {r['shortrun']['nn_end']:.3f}")
    row("long-run from data: steps", lambda r: steps(r["longrun"]))
    row("long-run from data: NN distance start -> end",
        lambda r: f"{r['longrun']['nn_start']:.3f} -> {r['longrun']['nn_end']:.3f}")
    row("data's own NN distance (median)", lambda r: f"{r['longrun']['data_nn_median']:.3f}")
    row("long-run saturated pixels (at or beyond the range's ends), start (the data's) -> end",
        lambda r: f"{100 * r['longrun']['saturation_start']:.1f}% -> {100 * r['longrun']['saturation_end']:.1f}%")
    row("long-run values at the end (the pictures clip to the data's range)",
        lambda r: f"{r['longrun']['value_min_end']:.3g} .. {r['longrun']['value_max_end']:.3g} (data "
        f"{r['longrun']['data_low']:g} .. {r['longrun']['data_high']:g})")
    row("pictures", lambda r: f"{rel(r['shortrun']['picture'])}, {rel(r['longrun']['picture'])}")
    lines.append("")
    maps = {name: r["map"] for name, r in results.items() if "map" in r}
    if maps:
        lines += ["## landscape maps (as built: the funnel probes below add minima of their own)", "",
                  "| | minima (tree leaves) | tree merges at refined barriers | basins (main level) | "
                  "basins per pull (alpha units) | time |", "|---|---|---|---|---|---|"]
        for name, m in maps.items():
            ladder = ", ".join(f"{lv['alpha']:.3g}: {lv['basins']}" for lv in m["levels"])
            refined = f"{m['refined_merges']} of {m['merges']}"
            if m.get("above_estimate"):
                refined += (f" (of all the pairs refined, {m['above_estimate']} came out above their estimate: "
                            "the estimate kept)")
            lines.append(f"| {name} | {m['minima']} | {refined} | {m['basins']} at {m['main']:g} | {ladder} | "
                         f"{m['seconds']:.0f} s |")
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
        lines.append("Pictures: <name>_tree.png (disconnectivity graph), <name>_basins.png, <name>_levels.png, of the "
                     "map as the .h5 holds it, with the funnel probe's minima and the diagnosis's flags (as `landscape "
                     "tree <name>.h5` prints it); the numbers above are the map as built.")
        lines.append("")
    diagnosis = results.get("diagnosis")
    if diagnosis:
        lines += _diagnosis_markdown(diagnosis, rel)
    return "\n".join(lines)


def _diagnosis_markdown(diagnosis: dict, rel: Callable[[str], str] = str) -> list[str]:
    """The diagnosis section of summary.md: check, funnel, spurious minima, comparison
    (``rel``: a picture's path as summary.md gives it)."""
    def spurious(d: dict) -> str:
        parts = [f"{d[k]} {text}" for k, text in (("off_data", "off the data"), ("saturated", "saturated"),
                                                   ("sinks", "funnel sinks")) if d[k]]
        text = f"{100 * d['share']:.0f}% ({d['spurious']} of {d['minima']})" + (": " + ", ".join(parts) if parts else "")
        if d.get("own_minima", d["minima"]) < d["minima"]:
            text += (f"; of the map's own {d['own_minima']} minima {d['own_spurious']}, of the "
                     f"{d['minima'] - d['own_minima']} the funnel probe found {d['spurious'] - d['own_spurious']}")
        return text

    lines = ["## diagnosis: convergent vs non-convergent", "", "| | convergent | non-convergent |", "|---|---|---|"]
    c, nc = diagnosis.get(DIGITS[0], {}), diagnosis.get(DIGITS[1], {})

    def row(label: str, get) -> None:
        try:
            lines.append(f"| {label} | {get(c)} | {get(nc)} |")
        except (KeyError, TypeError):
            pass

    row("long-run check (`landscape check`)", lambda r: f"{r['check']['verdict']} ({r['check']['agreement']} with "
        f"the trained regime)")
    row("its evidence", lambda r: r["check"]["explanation"])
    row("funnel score (`landscape funnel`)", lambda r: f"{r['funnel']['score']:.2f}"
        + (f" ({r['funnel']['verdict']})" if r["funnel"].get("verdict") else "") + ": effective basins "
        f"{r['funnel']['reference_basins']:.1f} in the data's basins, "
        f"{', '.join(f'{v:.1f}' for v in r['funnel']['effective_basins'])} at noise "
        f"{', '.join(f'{t:.2g}' for t in r['funnel']['noise'])}")
    row("funnel: minima new to the map", lambda r: f"{r['funnel']['new_minima']} ({r['funnel']['seconds']:.0f} s)")
    row("spurious minima (`landscape diagnose`)", lambda r: spurious(r["diagnosis"]))
    row("pictures", lambda r: f"{rel(r['check']['figure'])}, {rel(r['funnel']['figure'])}, "
        f"{rel(r['diagnosis']['report'])}")
    lines.append("")
    rings = diagnosis.get("rings", {}).get("diagnosis")
    if rings:
        lines += [f"rings: spurious minima {spurious(rings)} (report {rel(rings['report'])})", ""]
    comparison = diagnosis.get("comparison")
    if comparison:
        minima = [diagnosis.get(name, {}).get("diagnosis", {}).get("minima") for name in DIGITS]  # (what compare read)
        which = (f"the maps with the funnel probes' minima, {minima[0]} and {minima[1]}; "
                 if None not in minima else "")
        lines += [f"`landscape compare` ({which}{rel(comparison['figure'])}):", ""]
        lines += [f"- {line}" for line in comparison["summary"]]
        lines += [f"- Caution: {line}" for line in comparison.get("caveats", [])]
        lines.append("")
    return lines


