"""`landscape tree`: the basin tree of a map as text or JSON, and the map's pictures."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
import numpy as np

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


@click.command("tree")
@click.argument("map_path", metavar="MAP.h5", type=click.Path(path_type=Path))
@click.option("--level", type=int, default=None, metavar="K",
              help="Show level K of the map's alpha ladder (/levels/K) instead of the top level.")
@click.option("--plot", type=PICTURE, default=None, metavar="PNG",
              help="Also draw the disconnectivity graph to this picture (.png, .pdf, .svg).")
@click.option("--images", type=PICTURE, default=None, metavar="PNG",
              help="Also draw the basins: each basin's lowest minimum as an image (image data), its "
                   "coordinates (vectors), or the minima, tree edges and saddles on the energy (2-D maps).")
@click.option("--levels-plot", type=PICTURE, default=None, metavar="PNG",
              help="Also draw the number of basins against alpha (log-log) over the map's levels.")
@click.option("--max-leaves", type=click.IntRange(min=1), default=50, show_default=True, metavar="N",
              help="Fold the lowest merges of the text tree so that at most this many basins or groups show.")
@click.option("--json", "as_json", is_flag=True,
              help="Print a machine-readable summary (basins, merges with barrier heights) instead of text.")
def tree_cmd(map_path, level, plot, images, levels_plot, max_leaves, as_json):
    """Print the basin tree of a landscape map and draw its pictures.

    The tree is the disconnectivity graph over the map's barrier estimates: basins (lowest
    first) join at the barrier energy of the lowest path between them. Energies have an
    arbitrary offset, so each merge also gives its height relative to the basins it
    joins: "relative" is the barrier minus the energy of the higher side's lowest basin,
    the depth the shallower side must climb. Refined (path-method) barriers show next to
    the estimates where the map has them (top level only).

    \b
    Examples:
      landscape tree rings.h5
      landscape tree rings.h5 --plot tree.png --images basins.png
      landscape tree digits.h5 --level 2 --images reps.png --levels-plot alpha.png
      landscape tree digits.h5 --json > tree.json
    """
    from landscape import figures
    from landscape.errors import LandscapeError
    from landscape.mapfile import read_map

    for picture in (plot, images, levels_plot):
        if picture is not None:
            figures.check_picture_path(picture)
    content = read_map(map_path)
    view = figures.level_view(content, level)
    # Refuse what cannot be drawn before writing anything.
    if images is not None:
        figures.minima_kind(content)
    if levels_plot is not None and not content.levels:
        raise LandscapeError(f"{map_path} has no levels (it was built for one alpha): --levels-plot has nothing to draw")

    written: dict[str, str] = {}
    if plot is not None:
        written["plot"] = str(figures.plot_tree(content, plot, level=level))
    if images is not None:
        if figures.minima_kind(content) == "2d":
            written["images"] = str(figures.plot_map_2d(content, images, level=level))
        else:
            written["images"] = str(figures.plot_representatives(content, images, level=level))
    if levels_plot is not None:
        written["levels_plot"] = str(figures.plot_levels(content, levels_plot))

    if as_json:
        click.echo(json.dumps(map_summary(map_path, content, view, written), indent=2))
        return
    click.echo(_text(map_path, content, view, max_leaves))
    for what, path in written.items():
        click.echo(f"wrote {path} ({what.replace('_', ' ')})")


def _levels_lines(content, view) -> list[str]:
    """One line per level of the ladder: index, alpha, basin count."""
    from landscape.figures import map_alpha

    top = map_alpha(content)
    out = []
    for k, lv in enumerate(content.levels or []):
        b = len(lv.basin_energy)
        text = f"[{k}] alpha {lv.alpha:.4g}: {b} basin{'s' if b != 1 else ''}"
        if top is not None and math.isclose(lv.alpha, top):
            text += " (top level)"
        if view.level == k:
            text += " <- shown"
        out.append(text)
    return out


def map_header(map_path: Path, content, view) -> list[str]:
    from landscape.figures import describe_source, map_dataset, map_temperature

    rows: list[tuple[str, str]] = [("map", str(map_path)), ("source", describe_source(content))]
    if content.meta is not None:
        rows.append(("created", f"{content.meta.created} by ebm-landscape {content.meta.tool_version}"))
    n_pairs = len(view.barrier_energy)
    connected = int(sum(math.isfinite(float(x)) for x in view.barrier_energy))
    counts = (
        f"{content.n_minima} minima, {view.n_basins} basin{'s' if view.n_basins != 1 else ''}, "
        f"{n_pairs} barrier pair{'s' if n_pairs != 1 else ''} tested ({connected} connected"
    )
    if view.barrier_refined is not None:
        counts += f", {int(sum(math.isfinite(float(x)) for x in view.barrier_refined))} refined"
    rows.append(("counts", counts + ")"))
    heights = content.attrs.get("tree", {}).get("heights")
    if view.level is None and isinstance(heights, str) and heights:
        rows.append(("tree", f"barrier heights: {heights}"))
    settings = []
    temperature = map_temperature(content)
    if temperature is not None:
        settings.append(f"temperature {temperature:g}")
    ad_temperature = _number(content.attrs.get("barriers", {}).get("temperature"))
    if ad_temperature is not None and ad_temperature != temperature:
        settings.append(f"attraction-diffusion temperature {ad_temperature:g}")
    if view.alpha is not None:
        settings.append(f"alpha {view.alpha:.4g}")
    dataset = map_dataset(content)
    if dataset:
        settings.append(f"data {dataset}")
    shape = tuple(content.minima_x.shape[1:])
    settings.append(f"minima of shape {shape}")
    rows.append(("settings", ", ".join(settings)))
    for k, line in enumerate(_levels_lines(content, view)):
        rows.append(("levels" if k == 0 else "", line))
    added = content.attrs.get("minima", {}).get("funnel_added")
    if content.funnel is not None:
        from landscape.funnel import describe

        text = describe(content.funnel)
        if added:
            text += f"; {added} of the minima found by the probe"
        rows.append(("funnel", text))
    if content.diagnosis is not None:
        d = content.diagnosis
        n = int(np.size(d.spurious))
        text = f"{int(np.sum(d.spurious))} of {n} minima spurious"
        counts = [f"{d.attrs[key]} {label}" for key, label in (("off_data", "off the data"),
                                                               ("saturated", "saturated"), ("sinks", "funnel sinks"))
                  if isinstance(d.attrs.get(key), int) and d.attrs[key]]
        if counts:
            text += f" ({', '.join(counts)})"
        if d.attrs.get("dataset"):
            text += f", against {d.attrs['dataset']}"
        rows.append(("diagnosis", text))
    rows.append(("showing", view.name))
    return [f"{key:<9} {value}" for key, value in rows]


def _text(map_path: Path, content, view, max_leaves: int) -> str:
    from landscape.figures import tree_merges
    from landscape.tree import relative_barriers, render_text

    tree = view.tree
    escape = relative_barriers(view.basin_energy, tree)
    spurious = _spurious(content, view)
    labels = []
    for i in range(view.n_basins):
        if i == int(tree.lowest[tree.root]):
            climb = "lowest basin"
        elif math.isinf(escape[i]):
            climb = "no path found to a lower basin"
        else:
            climb = f"escape {_plus(escape[i])}"
        labels.append(f"hits {int(view.basin_hits[i])}  {climb}" + ("  spurious" if spurious[i] else ""))
    lines = map_header(map_path, content, view)
    lines += ["", render_text(tree, view.basin_energy, sizes=view.basin_minima, labels=labels, max_leaves=max_leaves)]
    lines += [
        "",
        "size: minima in the basin; hits: chains that ended in it; escape: the barrier height above the",
        "basin's energy on its lowest path to a lower basin.",
    ]
    merges = tree_merges(view)
    if merges:
        lines += ["", _merge_table(merges, view, max_leaves)]
    return "\n".join(lines)


def _spurious(content, view) -> list[bool]:
    """Per basin: its representative is flagged spurious by the map's diagnosis."""
    if content.diagnosis is None:
        return [False] * view.n_basins
    return [bool(content.diagnosis.spurious[r]) for r in view.basin_representative]


def _merge_table(merges, view, max_leaves: int) -> str:
    refined = view.barrier_refined is not None
    shown = merges
    note = None
    if len(merges) > max_leaves:
        keep = sorted(sorted(range(len(merges)), key=lambda k: (merges[k].height, k))[-max_leaves:])
        shown = [merges[k] for k in keep]
        hidden = len(merges) - len(shown)
        note = f"({hidden} lower merge{'s' if hidden != 1 else ''} not listed: raise --max-leaves or use --json)"
    title = "merges, lowest first (relative: the barrier minus the energy of the higher side's lowest basin)"
    head = ["joins", "via pair", "barrier", "relative"]
    if refined:  # the pair's attraction-diffusion estimate and its refined (path-method) barrier
        head += ["estimate", "refined", "refined relative"]
    rows = []
    for m in shown:
        joins = f"{m.lower} + {m.higher}"
        if m.disconnected:
            rows.append([joins, "-", "no path found", "-"] + (["-", "-", "-"] if refined else []))
            continue
        row = [joins, f"{m.pair[0]}-{m.pair[1]}", _num(m.height), _plus(m.relative)]
        if refined:
            row.append(_num(m.estimate))
            row += [_num(m.refined), _plus(m.refined_relative)] if math.isfinite(m.refined) else ["-", "-"]
        rows.append(row)
    widths = [max(len(r[c]) for r in [head] + rows) for c in range(len(head))]
    out = [title]
    out += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in [head] + rows]
    if note:
        out.append(note)
    return "\n".join(out)


def map_summary(map_path: Path, content, view, written: dict[str, str]) -> dict[str, Any]:
    from landscape.figures import (
        map_alpha,
        map_dataset,
        map_temperature,
        tree_merges,
    )
    from landscape.tree import relative_barriers

    tree = view.tree
    escape = relative_barriers(view.basin_energy, tree)
    spurious = _spurious(content, view) if content.diagnosis is not None else None
    basins = []
    for i in range(view.n_basins):
        entry = {
            "index": i,
            "energy": float(view.basin_energy[i]),
            "representative": int(view.basin_representative[i]),
            "minima": int(view.basin_minima[i]),
            "hits": int(view.basin_hits[i]),
            "escape": _finite_or_none(escape[i]),
        }
        if spurious is not None:
            entry["spurious"] = bool(spurious[i])
        basins.append(entry)
    merges = []
    for m in tree_merges(view):
        merges.append({
            "node": view.n_basins + m.row,
            "children": list(m.children),
            "lower": m.lower,
            "higher": m.higher,
            "basins": m.count,
            "disconnected": m.disconnected,
            "height": None if m.disconnected else m.height,
            "relative": _finite_or_none(m.relative),
            "above_lowest": _finite_or_none(m.above_lowest),
            "pair": None if m.pair is None else list(m.pair),
            "barrier_row": m.barrier_row,
            "estimate": _finite_or_none(m.estimate),
            "refined": _finite_or_none(m.refined),
            "refined_relative": _finite_or_none(m.refined_relative),
            "has_path": m.has_path,
        })
    n_refined = None
    if view.barrier_refined is not None:
        n_refined = int(sum(math.isfinite(float(x)) for x in view.barrier_refined))
    return {
        "map": str(map_path),
        "source": content.meta.source if content.meta is not None else None,
        "level": view.level,
        "alpha": view.alpha,
        "top_level_alpha": map_alpha(content),
        "temperature": map_temperature(content),
        "ad_temperature": _number(content.attrs.get("barriers", {}).get("temperature")),
        "dataset": map_dataset(content),
        "minima_shape": list(content.minima_x.shape[1:]),
        "n_minima": content.n_minima,
        "n_basins": view.n_basins,
        "n_barriers": len(view.barrier_energy),
        "n_connected": int(sum(math.isfinite(float(x)) for x in view.barrier_energy)),
        "n_refined": n_refined,
        "levels": [
            {"index": k, "alpha": float(lv.alpha), "n_basins": len(lv.basin_energy)}
            for k, lv in enumerate(content.levels or [])
        ],
        "basins": basins,
        "merges": merges,
        "pictures": written,
    }
