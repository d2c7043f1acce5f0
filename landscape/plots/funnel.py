"""The funnel probe of a map (:mod:`landscape.mapping.funnel`) as a picture.

- :func:`draw_funnel_shares`: per noise level, the share of chains ending in each of the
  fullest basins (stacked bars);
- :func:`draw_funnel_entropy`: the effective number of occupied basins ``exp(H)`` per
  level, for all chains and by start, with the data's own as the reference;
- :func:`draw_funnel`: both side by side and, for image maps, a row of the sink basins at
  the level where the chains are most concentrated, titled with the model;
- :func:`plot_funnel`: :func:`draw_funnel` into a new figure, saved to a file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from landscape.errors import LandscapeError
from landscape.io.records import FunnelData, MapContent
from landscape.io.views import (
    TOO_FEW_CHAINS,
    clear_sinks,
    data_range,
    describe_funnel,
    funnel_chains,
    funnel_noise_unit,
    funnel_verdict,
    minima_kind,
    scored_noise,
    short_source,
)
from landscape.plots.common import (
    axes_width,
    basin_colors,
    check_picture_path,
    new_figure,
    save_figure,
    show_image,
    size_inches,
    wrap,
)

__all__ = ["draw_funnel", "draw_funnel_entropy", "draw_funnel_shares", "plot_funnel"]

#: Sink pictures in the bottom row at most.
MAX_SINK_PICTURES = 8


def _funnel(content: MapContent) -> FunnelData:
    if content.funnel is None:
        raise LandscapeError("the map has no funnel probe: run landscape funnel first")
    return content.funnel


def _sink_rows(funnel: FunnelData) -> np.ndarray:
    """The sinks per level: stored, else from the occupancy (-1 pads)."""
    from landscape.mapping.funnel import sinks

    if funnel.sinks is not None:
        return np.asarray(funnel.sinks)
    return np.array([(sinks(r) + [-1] * 5)[:5] for r in np.asarray(funnel.occupancy, dtype=np.float64)])


def _unit_other_than_1(funnel: FunnelData) -> float | None:
    """The probe's noise unit where it records one other than 1: the ticks then give each
    level's multiple of it."""
    unit = funnel_noise_unit(funnel)
    return None if unit is None or math.isclose(unit[0], 1.0, rel_tol=1e-9) else unit[0]


def _noise_ticks(ax: Any, funnel: FunnelData) -> np.ndarray:
    """The levels as ticks: tau, and under it its multiple of the noise unit (where not 1)."""
    noise = np.asarray(funnel.noise, dtype=np.float64)
    unit = _unit_other_than_1(funnel)
    xs = np.arange(noise.size)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{t:.3g}" if unit is None else f"{t:.3g}\n({t / unit:.3g}x)" for t in noise], fontsize=8)
    return xs


def _unit_text(funnel: FunnelData) -> str:
    """The probe's noise unit in words, for an axis label ("" where it records none)."""
    unit = funnel_noise_unit(funnel)
    if unit is None:
        return ""
    value, source = unit
    text = "; noise unit 1" if _unit_other_than_1(funnel) is None else f"; (4x) = 4 times the noise unit {value:.3g}"
    return text + (f": {source}" if source else "")



def _all_apart(funnel: FunnelData, tie: tuple[int, float]) -> bool:
    """The tie is every chain of the level alone in a basin of its own."""
    chains = funnel_chains(funnel)
    return chains is not None and tie[0] == chains and math.isclose(tie[1] * chains, 1.0, rel_tol=1e-6)


def draw_funnel_shares(content: MapContent, ax: Any, *, max_basins: int = 8) -> Any:
    """Per noise level, the share of chains in each of its sinks (stacked, coloured by
    basin: the basins that are a sink at some level, at most ``max_basins``; the rest grey,
    "other basins"), drawn into ``ax``; return ``ax``.

    A level's sinks are those the text names (:func:`landscape.io.views.clear_sinks`): a
    basin that ties with basins left out is no sink, and is not coloured; the basins of
    such a tie are drawn together, hatched. A level with no sink says why: ``"all 48
    chains apart"`` (every chain in a basin of its own, all grey), or ``"12 basins tie at
    8%"``.

    Raises
    ------
    LandscapeError
        If the map has no funnel probe.
    """
    from landscape.mapping.funnel import collapse_level

    funnel = _funnel(content)
    occ = np.asarray(funnel.occupancy, dtype=np.float64)
    rows = _sink_rows(funnel)
    level_sinks = [clear_sinks(occ[k], rows[k]) for k in range(occ.shape[0])]
    shown: list[int] = []
    # The sinks the text names first (those of the level where the chains concentrate
    # most), then the other levels', the most concentrated first.
    first = collapse_level(funnel)
    for k in [first, *(k for k in np.argsort(-occ.max(axis=1)) if k != first)]:
        for s in level_sinks[k][0]:
            if s not in shown and len(shown) < max_basins:
                shown.append(s)
    shown.sort()
    colors = basin_colors(max(len(shown), 1))  # by position: basin numbers may be far apart
    xs = _noise_ticks(ax, funnel)
    bottom = np.zeros(occ.shape[0])
    for j, s in enumerate(shown):
        share = np.array([occ[k, s] if s in level_sinks[k][0] else 0.0 for k in range(occ.shape[0])])
        ax.bar(xs, share, bottom=bottom, color=colors[j], label=f"basin {s}", width=0.7)
        bottom += share
    # Basins tied at the cut (the sinks go on into them, but which of them is only their
    # order): together, hatched, so the sinks' half of the chains is all drawn.
    tied = np.array([tie[0] * tie[1] if tie is not None and not _all_apart(funnel, tie) else 0.0
                     for _, tie in level_sinks])
    if tied.any():
        ax.bar(xs, tied, bottom=bottom, color="0.93", edgecolor="0.55", hatch="///", linewidth=0.0,
               label="basins tied at the cut", width=0.7)
        bottom += tied
    ax.bar(xs, np.clip(1.0 - bottom, 0, 1), bottom=bottom, color="0.85", label="other basins", width=0.7)
    for x, (clear, tie) in zip(xs, level_sinks):
        if clear or tie is None:
            continue
        note = (f"all {tie[0]} chains apart" if _all_apart(funnel, tie)
                else f"{tie[0]} basins tie at {100 * tie[1]:.0f}%")
        ax.text(x, 0.5, note, rotation=90, ha="center", va="center", fontsize=7, color="0.3")
    ax.set_xlabel(wrap("noise level tau (x - eps^2/2 dU/dx + tau eps z)" + _unit_text(funnel), axes_width(ax), 8),
                  fontsize=8)
    ax.set_ylabel("share of chains")
    ax.set_ylim(0, 1)
    # The bars fill the axes to 1: the legend goes beside them, not over them.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, framealpha=0.8,
              title="sinks", title_fontsize=7)
    ax.set_title("where the chains end (quenched): each level's sinks, its fullest\nbasins until they hold half "
                 "its chains (at most 5)", fontsize=9)
    return ax


def draw_funnel_entropy(content: MapContent, ax: Any) -> Any:
    """The effective number of occupied basins ``exp(H)`` per noise level for all chains
    (the curve the score uses), those from data and those from noise, with the data's own
    (the score's reference) dotted, drawn into ``ax``; return ``ax``. ``exp(H)`` of n
    chains is at most n: each curve's ceiling, its number of chains, is drawn faint, and the
    reference says of how many chains it is (the data's 24 against all 48 at the levels
    above). The title gives the verdict and the funnel score.

    Raises
    ------
    LandscapeError
        If the map has no funnel probe.
    """
    from landscape.mapping.funnel import entropy

    funnel = _funnel(content)
    xs = _noise_ticks(ax, funnel)
    starts = np.asarray(funnel.chain_start) if funnel.chain_start is not None else None

    def chains(start: int | None) -> int | None:
        if starts is None:
            return funnel_chains(funnel) if start is None else None
        return int(starts.size if start is None else (starts == start).sum())

    def count(start: int | None) -> str:
        n = chains(start)
        return "" if n is None else f" ({n})"

    by_start = [(o, style, label, start) for o, style, label, start in
                ((funnel.occupancy_data, "s--", "chains from data", 0),
                 (funnel.occupancy_noise, "^--", "chains from noise", 1)) if o is not None]
    # (one start only: its curve is the curve of all chains, which then says where they began)
    only = by_start[0][2].removeprefix("chains ") if len(by_start) == 1 else None
    all_label = f"all chains{count(None)}" if only is None else f"all chains{count(None)}, {only}"
    ax.plot(xs, np.exp(np.asarray(funnel.entropy)), "o-", color="tab:blue", label=all_label)
    # exp(H) is at most the number of chains, and at most the number of basins they are counted in
    n_basins = int(np.asarray(funnel.occupancy).shape[1])
    ceilings = {chains(None)}
    for o, style, label, start in by_start if only is None else []:
        ax.plot(xs, np.exp([entropy(r) for r in np.asarray(o)]), style, lw=1, ms=4, label=label + count(start))
        ceilings.add(chains(start))
    ref = funnel.attrs.get("reference_entropy")
    if isinstance(ref, (int, float)) and math.isfinite(ref):
        from_data = str(funnel.attrs.get("reference", "")).startswith("chains from data")
        n_ref = chains(0 if from_data else None)
        what = "the data's basins" if from_data else f"all chains at noise {funnel.noise[0]:.3g}"
        of = f" of {n_ref} chains" if n_ref is not None else ""
        ax.axhline(math.exp(ref), color="0.4", ls=":", label=f"{what}: {math.exp(ref):.1f}{of} (the score's reference)")
    top = sorted({min(n, n_basins) for n in ceilings if n is not None})
    for n in top:  # (what each curve can reach: the reference's ceiling is not the curve's)
        ax.axhline(n, color="0.75", lw=0.8, zorder=0)
        what = f"at most {n}" + (f": the map's {n} basins" if n == n_basins and n not in ceilings else "")
        ax.annotate(what, (1.0, n), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize=6.5, color="0.45", xytext=(-2, 1), textcoords="offset points")
    unit = _unit_other_than_1(funnel)
    ax.set_xlabel("noise level tau" + (f" (in brackets: x the noise unit {unit:.3g})" if unit else ""))
    ax.set_ylabel("effective number of basins exp(H)\n(at most the number of chains)")
    ax.set_ylim(0, max([ax.get_ylim()[1], *top]) * 1.08)  # the highest point and ceiling clear of the frame
    ax.legend(fontsize=7, framealpha=0.8)
    verdict = funnel_verdict(funnel)
    title = (f"{verdict} a funnel (score {funnel.score:.2f})" if verdict == TOO_FEW_CHAINS
             else describe_funnel(funnel).split(" (")[0])
    ax.set_title(f"{title}\nthe score: all chains at noise {scored_noise(funnel)} against the reference", fontsize=9)
    return ax


def _default_title(content: MapContent) -> str:
    """The model, and the chains: how many, from where, how many steps."""
    funnel = _funnel(content)
    starts = [s for s, o in (("data", funnel.occupancy_data), ("noise", funnel.occupancy_noise)) if o is not None]
    chains = funnel.attrs.get("chains_per_level")
    steps = funnel.attrs.get("steps")
    what = f"{int(chains)} chains per noise level" if isinstance(chains, (int, float)) and chains else "chains"
    if starts:
        what += f" from {' and '.join(starts)}"
    if isinstance(steps, (int, float)) and steps:
        what += f", {int(steps)} Langevin steps each, then quenched"
    text = f"{short_source(content)}: funnel probe"
    return text if what == "chains" else f"{text}; {what}"


def _pictured_sinks(content: MapContent) -> tuple[int, list[int]]:
    """The collapse level and its sink basins, when the minima are images (else none)."""
    from landscape.mapping.funnel import collapse_level

    funnel = _funnel(content)
    k_star = collapse_level(funnel)
    if minima_kind(content) != "image":
        return k_star, []
    # (basins that tie at the cut are not pictured: which of them were taken is only their order)
    return k_star, clear_sinks(funnel.occupancy[k_star], _sink_rows(funnel)[k_star])[0][:MAX_SINK_PICTURES]


def draw_funnel(content: MapContent, fig: Any, *, title: str | None = None, max_basins: int = 8) -> Any:
    """The funnel probe into ``fig`` (a Figure or SubFigure); return ``fig``.

    Left: :func:`draw_funnel_shares`; right: :func:`draw_funnel_entropy`. For image maps
    a row below shows the sink basins of the collapse level (their lowest minima,
    captioned with their share of the chains there). The title names the model and the
    chains (how many per level, their starts and steps).

    Raises
    ------
    LandscapeError
        If the map has no funnel probe.
    """
    from landscape.io.records import FUNNEL_SCORE

    funnel = _funnel(content)
    k_star, star_sinks = _pictured_sinks(content)
    if star_sinks:
        top, bottom = fig.subfigures(2, 1, height_ratios=[2.6, 1.0])
    else:
        top, bottom = fig, None
    ax1, ax2 = top.subplots(1, 2)
    draw_funnel_shares(content, ax1, max_basins=max_basins)
    draw_funnel_entropy(content, ax2)
    if bottom is not None:
        occ = np.asarray(funnel.occupancy, dtype=np.float64)
        low, high = data_range(content)
        axes = bottom.subplots(1, MAX_SINK_PICTURES, squeeze=False)[0]
        for slot, ax in enumerate(axes):
            if slot >= len(star_sinks):
                ax.remove()  # no empty frames after the last sink
                continue
            s = star_sinks[slot]
            show_image(ax, content.minima_x[int(content.basin_representative[s])], low, high, aspect="equal")
            ax.set_title(f"basin {s}: {100 * occ[k_star, s]:.0f}%", fontsize=7)
        what = ("the funnel's sinks" if funnel.score >= FUNNEL_SCORE
                else "the fullest basins where the chains are most concentrated")
        bottom.suptitle(f"{what}, at noise {funnel.noise[k_star]:.3g} (each basin's lowest minimum)", fontsize=8,
                        x=0.02, ha="left")
    fig.suptitle(wrap(title or _default_title(content), size_inches(fig)[0], 10), fontsize=10)
    return fig


def plot_funnel(content: MapContent, path: str | Path, *, title: str | None = None, max_basins: int = 8) -> Path:
    """:func:`draw_funnel` into a new figure, saved to ``path``.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the map has no funnel probe, or an unknown picture format (nothing is written).
    """
    path = check_picture_path(path)
    _funnel(content)
    _, star_sinks = _pictured_sinks(content)
    fig = new_figure(11.0, 6.6 if star_sinks else 4.6, layout="constrained")
    draw_funnel(content, fig, title=title, max_basins=max_basins)
    return save_figure(fig, path)
