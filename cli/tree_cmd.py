"""`landscape tree`: the barrier tree of a map as text or JSON, and the map's pictures."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import click

from landscape.cli.options import echo_json, json_option

PICTURE = click.Path(dir_okay=False, path_type=Path)


def _num(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.6g}"


def _plus(x: float) -> str:
    return f"+{_num(x)}" if x >= 0 else _num(x)


def _number(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _finite_or_none(x: Any) -> Any:
    x = float(x)
    return x if math.isfinite(x) else None


@click.command("tree", short_help="Print a map's barrier tree and draw its pictures.")
@click.argument("map_path", metavar="MAP.h5", type=click.Path(path_type=Path))
@click.option("--level", type=int, default=None, metavar="K",
              help="Colour (and with --basins, group) by the basins of level K of the ladder (/levels/K) "
                   "instead of the main level.")
@click.option("--basins", is_flag=True,
              help="Show the tree over the basins of the level (coarse-grained: a basin is one leaf) instead of "
                   "the tree over minima.")
@click.option("--plot", type=PICTURE, default=None, metavar="PNG",
              help="Also draw the disconnectivity graph to this picture (.png, .pdf, .svg); minima that drain "
                   "into a lower one with no barrier are one line with it.")
@click.option("--images", type=PICTURE, default=None, metavar="PNG",
              help="Also draw the basins: each basin's lowest minimum as an image (image data), its "
                   "coordinates (vectors), or the minima, tree edges and saddles on the energy (2-D maps).")
@click.option("--levels-plot", type=PICTURE, default=None, metavar="PNG",
              help="Also draw the number of basins against alpha (log-log) over the map's levels.")
@click.option("--max-leaves", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Fold the text tree beyond N minima: minima that drain into a lower one with no barrier fold "
                   "into it (a run of them joining one group: one line), and the lowest merges fold so that at most "
                   "N lines hold a state of their own; the merge table leaves out the flat merges first, then the "
                   "lowest. With N at least the minima, every one shows.")
@json_option("(the leaves, and the merges with their barrier heights)")
def tree_cmd(map_path, level, basins, plot, images, levels_plot, max_leaves, as_json):
    """Print the barrier tree (disconnectivity graph) of a landscape map and draw its pictures.

    Every minimum of the map is a leaf; two groups of minima join at the barrier of the
    lowest path between them, a saddle refined by the string method where the map says
    "refined". Energies have an arbitrary offset, so each merge also gives its height
    relative to what it joins: "relative" is the barrier minus the energy of the higher
    side's lowest minimum, the depth the shallower side must climb. Each minimum shows its
    basin (attraction-diffusion at the main level, or --level K); --basins shows the tree
    over those basins instead. The text reads from the bottom up: the lowest minimum, then
    each merge that joins something to it, lowest first, and what it joins (a group of
    minima below it, indented the same way), so a funnel that minimum after minimum joins
    stays at one indentation.

    \b
    Examples:
      landscape tree rings.h5
      landscape tree rings.h5 --plot tree.png --images basins.png
      landscape tree digits.h5 --level 2 --basins --images reps.png --levels-plot alpha.png
      landscape tree digits.h5 --json > tree.json
    """
    from landscape.errors import LandscapeError
    from landscape.io.mapfile import read_map
    from landscape.io.views import basin_tree_of, minima_kind, partition_of
    from landscape.plots.common import check_picture_path
    from landscape.plots.maps import plot_levels, plot_map_2d, plot_representatives
    from landscape.plots.tree import plot_tree

    for picture in (plot, images, levels_plot):
        if picture is not None:
            check_picture_path(picture)
    content = read_map(map_path)
    partition_of(content, level)  # a bad level is an error before anything is written
    if images is not None:
        minima_kind(content)
    if levels_plot is not None and not any(p.alpha > 0 for p in content.levels):
        raise LandscapeError(f"{map_path}: no level has alpha > 0: --levels-plot has nothing to draw")
    show_basins = basins or not content.over_minima
    tree = basin_tree_of(content, level) if show_basins else content.tree

    written: dict[str, str] = {}
    if plot is not None:
        written["plot"] = str(plot_tree(content, plot, level=level, basins=show_basins))
    if images is not None:
        if minima_kind(content) == "2d":
            written["images"] = str(plot_map_2d(content, images, level=level))
        else:
            written["images"] = str(plot_representatives(content, images, level=level))
    if levels_plot is not None:
        written["levels_plot"] = str(plot_levels(content, levels_plot))

    if as_json:
        echo_json(map_summary(map_path, content, tree, level, show_basins, written))
        return
    click.echo(_text(map_path, content, tree, level, show_basins, max_leaves))
    for what, path in written.items():
        click.echo(f"wrote {path} ({what.replace('_', ' ')})")


def _joined(part, why: str) -> int | None:
    """What the level changed after attraction-diffusion (None where the map does not
    say: made before it did): ``drained``, the basins of only drained minima it joined
    where they drain; ``nested``, the minima it moved to where their basin's lowest
    minimum at the weaker pull went."""
    value = part.attrs.get(why)
    try:
        count = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return count if count >= 0 and count == value else None


def _levels_lines(content, level: int | None) -> list[str]:
    """One line per level of the ladder: index, alpha, basin count."""
    out = []
    shown = content.main if level is None else level
    for k, part in enumerate(content.levels):
        b = part.n_basins
        alpha = f"{part.multiplier:g} units (= {part.alpha:.4g})" if part.multiplier is not None else f"{part.alpha:.4g}"
        text = f"[{k}] alpha {alpha}: {b} basin{'s' if b != 1 else ''}"
        if joined := _joined(part, "drained"):
            text += (f" (and {joined} basin{'s' if joined != 1 else ''} of only minima that drain flat into others, "
                     "joined into them)")
        if moved := _joined(part, "nested"):
            text += (f" ({moved} minim{'a' if moved != 1 else 'um'} moved to where their basin's lowest minimum at "
                     "the weaker pull went)")
        if k == content.main:
            text += " (main)"
        if k == shown:
            text += " <- shown"
        out.append(text)
    note = content.attrs.get("levels", {}).get("note")
    if isinstance(note, str) and note:
        out.append(note)
    return out


def map_header(map_path: Path, content, level: int | None = None) -> list[str]:
    """The lines `landscape info` and `landscape tree` print about a map."""
    import numpy as np

    from landscape.io.views import (
        ad_temperature,
        alpha_unit_rule,
        describe_exploration,
        describe_funnel,
        describe_held_by_box,
        describe_source,
        describe_work,
        map_config,
        map_dataset,
        map_temperature,
        merges_at_saddle_points,
        probe_config,
    )

    rows: list[tuple[str, str]] = [("map", str(map_path)), ("source", describe_source(content) + _model_state(map_path,
                                                                                                  content))]
    if content.meta is not None:
        updated = _updated(content)
        rows.append(("created", f"{content.meta.created} by ebm-landscape {content.meta.tool_version}"
                                + (f"; updated {updated} (a funnel probe or diagnosis written into it)" if updated else "")))
    if not content.over_minima:
        rows.append(("note", "a schema-1 map: its tree is over the basins of one pull, not over every minimum; "
                             "remap it (landscape map) for the tree over minima"))
    table = content.barriers
    n_pairs = len(table)
    refined = int(np.isfinite(table.refined).sum())
    above = int(table.above_estimate(content.minima_energy).sum())
    counts = (f"{content.n_minima} minim{'um' if content.n_minima == 1 else 'a'}, {content.n_basins} basin{'s' if content.n_basins != 1 else ''} at the main "
              f"level, {n_pairs} barrier pair{'s' if n_pairs != 1 else ''} ({refined} refined")
    if above:
        counts += f", {above} of them above their estimate: the tree keeps the estimate"
    at_budget = content.attrs.get("barriers", {}).get("strings_at_budget")
    if at_budget:
        counts += f"; {at_budget} of its strings ran out of iterations, which --string-steps and --climb-steps raise"
    counts += ")"
    held = describe_held_by_box(content)  # (not "saturated": diagnose's word for its own rule)
    if held:
        counts += f"; {held}"
    rows.append(("counts", counts))
    for line in str(content.attrs.get("minima", {}).get("precision") or "").splitlines():
        rows.append(("precision", line))
    explored = describe_exploration(content)
    if explored:
        rows.append(("explored", explored))
    tree = content.tree
    merges = tree.n_leaves - 1
    if merges > 0:
        text = f"{merges} merge{'s' if merges != 1 else ''}: {int(tree.refined.sum())} at refined barriers"
        at_saddles = merges_at_saddle_points(content)
        if at_saddles is not None and tree.refined.any():
            text += (f" ({at_saddles} of them at saddle points, the rest at the tops of refined paths whose gradient "
                     "does not vanish there)" if at_saddles < tree.refined.sum() else " (all at saddle points)")
        estimated = int((tree.connected & ~tree.refined).sum())
        if estimated:
            text += f", {estimated} at estimates"
        if not tree.connected.all():
            text += f", {int((~tree.connected).sum())} not connected (no path found)"
        flat = int(tree.flat().sum())
        if flat:
            text += (f"; {flat} flat: a minimum that drains into a lower one with no barrier the energy's "
                     "precision resolves")
        rows.append(("tree", text))
    settings = []
    temperature = map_temperature(content)
    if temperature is not None:
        settings.append(f"exploration T {temperature:g}")
    t_ad = ad_temperature(content)
    if t_ad is not None:
        lowered = _number(content.settings().get("ad_temperature_lowered"))
        settings.append(f"attraction-diffusion T {t_ad:.4g}" + (
            f" (lowered {lowered:.3g}x so that a pull that brings chains to their targets at all does not "
            "outweigh the typical barrier)" if lowered is not None and lowered > 1 else ""))
    unit = _number(content.attrs.get("levels", {}).get("alpha_unit"))
    if unit is not None:
        rule = alpha_unit_rule(content)
        settings.append(f"alpha unit {unit:.4g}" + (f" ({rule})" if rule else ""))
    dataset = map_dataset(content)
    if dataset:
        settings.append(f"data {dataset}")
    settings.append(f"minima of shape {tuple(content.minima_x.shape[1:])}")
    rows.append(("settings", ", ".join(settings)))
    config = map_config(content)
    if config:
        rows.append(("config", config_text(config)))
    for k, line in enumerate(_levels_lines(content, level)):
        rows.append(("levels" if k == 0 else "", line))
    spent = _stage_seconds(content)
    if spent:
        rows.append(("time", f"{_seconds(sum(spent.values()))}: "
                             + ", ".join(f"{_STAGES.get(k, k)} {_seconds(v)}" for k, v in spent.items())))
    shared = describe_work(content)
    if shared is not None:
        rows.append(("ranks", shared))
    added = content.attrs.get("minima", {}).get("funnel_added")
    if content.funnel is not None:
        text = describe_funnel(content.funnel)
        probe = probe_config(content.funnel)
        made = ([f"seed {probe['seed']}"] if "seed" in probe else []) + (
            [f"{probe['chains']} chains per start and level"] if "chains" in probe else [])
        if made:
            text += "; probe " + ", ".join(made)
        if added:
            text += f"; {added} of the minima found by funnel probes (this one's and any it replaced)"
        rows.append(("funnel", text))
    if content.diagnosis is not None:
        d = content.diagnosis
        text = f"{int(np.sum(d.spurious))} of {int(np.size(d.spurious))} minima spurious"
        parts = [f"{d.attrs[key]} {label}" for key, label in (("off_data", "off the data"),
                                                              ("saturated", "saturated"), ("sinks", "funnel sinks"))
                 if isinstance(d.attrs.get(key), int) and d.attrs[key]]
        states = _flagged_states(content)
        if states is not None and states < int(np.sum(d.spurious)):
            parts.append(f"{states} of them states of their own, the others draining into another minimum")
        if parts:
            text += f" ({', '.join(parts)})"
        if d.attrs.get("dataset"):
            text += f", against {d.attrs['dataset']}"
        rows.append(("diagnosis", text))
    from landscape.io.files import printable  # (the map's strings, its source's and notes, are a file's)

    return [f"{key:<9} {printable(value)}" for key, value in rows]


def _updated(content) -> str | None:
    """When a funnel probe or a diagnosis was last written into the map (root attr ``updated``)."""
    value = content.meta.extra.get("updated") if content.meta is not None else None
    return str(value) if isinstance(value, str) and value else None


def _model_state(map_path: Path, content) -> str:
    """What became of the model file the map records, where it is not as it was."""
    from landscape.io.views import recorded_model

    state = recorded_model(map_path, content)
    if state is None or state[0] == "unchanged":
        return ""
    what, path = state
    return {"changed": f" (changed since: {path} has another sha256 now, trained further or replaced; funnel and "
                       "diagnose refuse it, map it again for the model as it is)",
            "missing": " (not found now, at its recorded path or beside the map)",
            "elsewhere": " (found only outside the current folder and the map's, where a map's record may not lead)",
            }[what]


def config_text(config: dict[str, Any]) -> str:
    """The ``config`` row: the seed, the chains, and the settings given other values than
    their defaults (:func:`landscape.io.views.given_settings`), by their config names."""
    from landscape.io.views import given_settings, setting_text

    given = given_settings(config)
    text = ", ".join(f"{key} {setting_text(value)}" for key, value in given)
    rest = len([k for k, v in config.items() if v is not None]) - len(given)
    return text + (" (the rest at their defaults; --json: the whole config)" if rest > 0 else "")


#: The map's stages, as its ``seconds`` record names them (the ladder's levels run together
#: and the rungs inserted after them are one stage, basins), and as ``info`` shows them.
_STAGES = {"minima": "minima", "neighbours": "neighbour barriers", "basins": "basins", "refine": "refinement"}


def _ranks(content) -> dict[str, Any]:
    """How many torchrun ranks made the map and how they split its work, as recorded
    (None each where the map does not say: made before it was recorded)."""
    extra = content.meta.extra if content.meta is not None else {}
    return {"ranks": extra.get("ranks") if isinstance(extra.get("ranks"), int) else None,
            "work_split": extra.get("work_split") if isinstance(extra.get("work_split"), dict) else None}


def _stage_seconds(content) -> dict[str, float]:
    """Seconds the map spent per stage (its root attr ``seconds``; a stage run again after
    a resume counts once per run), in the order the stages run; empty where none are kept."""
    record = content.meta.extra.get("seconds") if content.meta is not None else None
    if not isinstance(record, dict):
        return {}
    out: dict[str, float] = {}
    for key, value in record.items():
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            continue
        stage = next((name for name in _STAGES if key == name or key.startswith(name + "_")), key)
        out[stage] = out.get(stage, 0.0) + float(value)
    order = list(_STAGES)
    return dict(sorted(out.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def _seconds(value: float) -> str:
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s" if value < 100 else f"{value / 60:.1f} min"


def _text(map_path: Path, content, tree, level: int | None, basins: bool, max_leaves: int) -> str:
    import numpy as np

    from landscape.mapping.tree import render_text
    from landscape.io.views import level_name, partition_of, tree_merges

    part = partition_of(content, level)
    spurious = (np.asarray(content.diagnosis.spurious, dtype=bool)[tree.leaves] if content.diagnosis is not None
                else np.zeros(tree.n_leaves, dtype=bool))
    lowest = int(tree.lowest[tree.root])
    # (no escape height per leaf: the merge through which a leaf or its group joins a lower
    # one gives it, "+x above" that leaf)
    if basins:
        sizes = part.sizes()
        hits = part.hits(content.minima_hits)
        head = [f"hits {int(hits[i])}" for i in range(tree.n_leaves)]
    else:
        sizes = None
        basin = part.basin[tree.leaves]
        head = [f"basin {int(basin[i])}  hits {int(content.minima_hits[tree.leaves[i]])}" for i in range(tree.n_leaves)]
    labels = [text + ("  lowest" if i == lowest else "") + ("  spurious" if spurious[i] else "")
              for i, text in enumerate(head)]
    lines = map_header(map_path, content, level)
    what = f"the tree over the basins of {level_name(content, level)}" if basins else \
        f"the tree over minima, basins of {level_name(content, level)}"
    lines.append(f"{'showing':<9} {what}")
    name = "basin" if basins else "minimum"
    lines += ["", render_text(tree, sizes=sizes, labels=labels, name=name, max_leaves=max_leaves)]
    legend = ("hits: chains that ended in it" + ("; size: the basin's minima" if basins else "") + ". A merge's "
              "\"+x above\" its higher side is the barrier that side climbs to reach a lower " + name
              + " (its escape height).")
    lines += ["", legend]
    merges = tree_merges(content, tree)
    if merges:
        lines += ["", _merge_table(merges, max_leaves, name, tree.flat())]
    return "\n".join(lines)


def _merge_table(merges, max_leaves: int, name: str, flat: Any = None) -> str:
    """The merges as a table; ``flat`` (per merge row): the relative height is written
    "flat", as the tree above writes it, where no barrier the energy's precision resolves
    lies above the higher side (a float32 rounding step, +9.5e-07, is no barrier)."""
    shown = merges
    note = None
    if len(merges) > max_leaves:  # (as the tree above folds: the flat merges first, then the lowest)
        barriers = [k for k in range(len(merges)) if flat is None or not flat[merges[k].row]]
        keep = sorted(sorted(barriers, key=lambda k: (merges[k].height, k))[-max_leaves:])
        shown = [merges[k] for k in keep]
        n_flat, lower = len(merges) - len(barriers), len(barriers) - len(keep)
        hidden = ([f"{n_flat} flat merge{'s' if n_flat != 1 else ''}"] if n_flat else []) + \
            ([f"{lower} lower merge{'s' if lower != 1 else ''}"] if lower else [])
        note = f"({' and '.join(hidden)} not listed: raise --max-leaves or use --json)"
    title = f"merges, lowest first (relative: the barrier minus the energy of the higher side's lowest {name})"
    head = ["joins", "via minima", "barrier", "relative", "from", "estimate"]
    rows = []
    for m in shown:
        joins = f"{m.lower} + {m.higher}"
        if not m.connected:
            rows.append([joins, "-", "no path found", "-", "-", "-"])
            continue
        refined = {True: "saddle point", False: "path top"}.get(m.saddle_point, "refined") if m.refined else None
        how = refined or ("estimate; saddle above: " + _num(m.saddle) if m.above_estimate else "estimate")
        relative = "flat" if flat is not None and flat[m.row] else _plus(m.relative)
        rows.append([joins, f"{m.pair[0]}-{m.pair[1]}", _num(m.height), relative, how, _num(m.estimate)])
    widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
    out = [title]
    out += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [head] + rows]
    if note:
        out.append(note)
    return "\n".join(out)


def _funnel_summary(content) -> dict[str, Any] | None:
    """The map's funnel probe as plain data (what `info` says of it), None without one."""
    import math

    from landscape.io.views import defined_score, funnel_verdict, is_funnel, probe_config

    f = content.funnel
    if f is None:
        return None
    verdict = funnel_verdict(f)
    config = probe_config(f)
    return {"score": defined_score(f), "verdict": verdict, "funnel": is_funnel(verdict),
            "seed": config.get("seed"), "chains": config.get("chains"), "noise": [float(t) for t in f.noise],
            "noise_unit": f.attrs.get("noise_unit"), "noise_unit_source": f.attrs.get("noise_unit_source"),
            "effective_basins": [_finite_or_none(math.exp(h)) for h in f.entropy],
            "minima_found_by_probe": content.attrs.get("minima", {}).get("funnel_added") or 0,
            "config": config}


def _diagnosis_summary(content) -> dict[str, Any] | None:
    """The map's diagnosis as plain data (what `info` says of it), None without one."""
    import numpy as np

    d = content.diagnosis
    if d is None:
        return None
    out: dict[str, Any] = {"spurious": int(np.sum(d.spurious)), "minima": int(np.size(d.spurious))}
    for key in ("off_data", "saturated", "sinks"):
        if isinstance(d.attrs.get(key), (int, np.integer)):
            out[key] = int(d.attrs[key])
    states = _flagged_states(content)
    if states is not None:
        out["states"] = states
    return out


def _flagged_states(content) -> int | None:
    """Of the minima the diagnosis flags, those that are states of their own (that do not
    drain into another minimum with no barrier); None where the tree does not cover them."""
    import numpy as np

    from landscape.io.views import drain_targets

    flagged = np.asarray(content.diagnosis.spurious, dtype=bool)
    if content.tree is None or flagged.size > content.n_minima:
        return None
    return int((flagged & (drain_targets(content)[: flagged.size] < 0)).sum())


def map_summary(map_path: Path, content, tree, level: int | None, basins: bool, written: dict[str, str]) -> dict[str, Any]:
    """The map and its tree as plain data (``--json``)."""
    import numpy as np

    from landscape.io.views import (
        ad_temperature,
        exploration_coverage,
        map_config,
        map_dataset,
        map_temperature,
        merges_at_saddle_points,
        partition_of,
        recorded_model,
        state_coverage,
        tree_merges,
    )

    part = partition_of(content, level)
    explored = exploration_coverage(content)
    states = state_coverage(content)
    escape = tree.escape()
    flat, drains_into = tree.flat(), tree.drains_into()
    spurious = (np.asarray(content.diagnosis.spurious, dtype=bool)[tree.leaves] if content.diagnosis is not None
                else None)
    leaves = []
    hits = part.hits(content.minima_hits) if basins else None
    sizes = part.sizes() if basins else None
    for i in range(tree.n_leaves):
        entry = {"index": i, "minimum": int(tree.leaves[i]), "energy": float(tree.energy[i]),
                 "escape": _finite_or_none(escape[i]),
                 "drains_into": int(drains_into[i]) if drains_into[i] >= 0 else None}
        if basins:
            entry.update({"minima": int(sizes[i]), "hits": int(hits[i])})
        else:
            entry.update({"basin": int(part.basin[tree.leaves[i]]), "hits": int(content.minima_hits[tree.leaves[i]])})
        if spurious is not None:
            entry["spurious"] = bool(spurious[i])
        leaves.append(entry)
    merges = []
    for m in tree_merges(content, tree):
        merges.append({
            "node": tree.n_leaves + m.row, "children": list(m.children), "lower": m.lower, "higher": m.higher,
            "leaves": m.count, "connected": m.connected, "refined": m.refined,
            "height": m.height if m.connected else None, "relative": _finite_or_none(m.relative),
            "above_lowest": _finite_or_none(m.above_lowest), "pair": None if m.pair is None else list(m.pair),
            "barrier_row": m.barrier_row, "estimate": _finite_or_none(m.estimate), "saddle": _finite_or_none(m.saddle),
            "at_saddle_point": m.saddle_point,
            "saddle_above_estimate": m.above_estimate,
            "flat": bool(flat[m.row]),
        })
    table = content.barriers
    return {
        "map": str(map_path),
        "schema_version": content.schema_version,
        "source": content.meta.source if content.meta is not None else None,
        "source_file": None if (state := recorded_model(map_path, content)) is None else state[0],
        "created": content.meta.created if content.meta is not None else None,
        "tool_version": content.meta.tool_version if content.meta is not None else None,
        "updated": _updated(content),
        "config": map_config(content) or None,
        "leaves_are": "basins" if basins else "minima",
        "level": content.main if level is None else level,
        "main_level": content.main,
        "alpha": part.alpha,
        "multiplier": part.multiplier,
        "temperature": map_temperature(content),
        "ad_temperature": ad_temperature(content),
        "alpha_unit": _number(content.attrs.get("levels", {}).get("alpha_unit")),
        "dataset": map_dataset(content),
        "minima_shape": list(content.minima_x.shape[1:]),
        "n_minima": content.n_minima,
        "exploration": None if explored is None else {
            "chains": explored.chains, "found": explored.found, "once": explored.once, "twice": explored.twice,
            "unseen_share": explored.unseen, "estimated_minima": explored.estimated,
            "states": None if states is None else {
                "found": states.found, "once": states.once, "twice": states.twice, "unseen_share": states.unseen,
                "estimated_states": states.estimated}},
        "n_basins": part.n_basins,
        "n_pairs": len(table),
        "n_refined": int(np.isfinite(table.refined).sum()),
        "n_refined_above_estimate": int(table.above_estimate(content.minima_energy).sum()),
        "n_merges": tree.n_leaves - 1,
        "n_merges_refined": int(tree.refined.sum()),
        "n_merges_at_saddle_points": merges_at_saddle_points(content),
        "n_merges_not_connected": int((~tree.connected).sum()),
        "energy_offset": tree.offset,
        "n_merges_flat": int(tree.flat().sum()),
        "n_minima_held_by_box": content.attrs.get("minima", {}).get("held_by_box"),
        "alpha_unit_rule": content.attrs.get("levels", {}).get("alpha_unit_rule") or None,
        "settings_rounds": content.attrs.get("levels", {}).get("settings_rounds"),
        "precision_warnings": str(content.attrs.get("minima", {}).get("precision") or "").splitlines(),
        "levels": [{"index": k, "alpha": float(p.alpha), "multiplier": p.multiplier, "n_basins": p.n_basins,
                    "drained": _joined(p, "drained"), "nested": _joined(p, "nested")}
                   for k, p in enumerate(content.levels)],
        "funnel": _funnel_summary(content),
        "diagnosis": _diagnosis_summary(content),
        "seconds": _stage_seconds(content),
        **_ranks(content),
        "leaves": leaves,
        "merges": merges,
        "pictures": written,
    }
