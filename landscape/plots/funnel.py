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
    funnel_verdict,
    minima_kind,
    short_source,
)
from landscape.plots.common import (
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


def _noise_ticks(ax: Any, noise: np.ndarray) -> np.ndarray:
    xs = np.arange(noise.size)
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{t:.3g}" for t in noise], fontsize=8)
    return xs


def draw_funnel_shares(content: MapContent, ax: Any, *, max_basins: int = 8) -> Any:
    """Per noise level, the share of chains in each of the fullest basins (stacked: the
    basins that are a sink at some level, at most ``max_basins``, the rest as "other"),
    drawn into ``ax``; return ``ax``.

    Raises
    ------
    LandscapeError
        If the map has no funnel probe.
    """
    from landscape.mapping.funnel import collapse_level

    funnel = _funnel(content)
    occ = np.asarray(funnel.occupancy, dtype=np.float64)
    rows = _sink_rows(funnel)
    shown: list[int] = []
    # The sinks the text names first (those of the level where the chains concentrate
    # most), then the other levels', the most concentrated first.
    first = collapse_level(funnel)
    for k in [first, *(k for k in np.argsort(-occ.max(axis=1)) if k != first)]:
        for s in rows[k]:
            if s >= 0 and int(s) not in shown and len(shown) < max_basins:
                shown.append(int(s))
    shown.sort()
    colors = basin_colors(max(len(shown), 1))  # by position: basin numbers may be far apart
    xs = _noise_ticks(ax, np.asarray(funnel.noise, dtype=np.float64))
    bottom = np.zeros(occ.shape[0])
    for j, s in enumerate(shown):
        ax.bar(xs, occ[:, s], bottom=bottom, color=colors[j], label=f"basin {s}", width=0.7)
        bottom += occ[:, s]
    ax.bar(xs, np.clip(1.0 - bottom, 0, 1), bottom=bottom, color="0.85", label="other basins", width=0.7)
    ax.set_xlabel("noise level tau (x - eps^2/2 dU/dx + tau eps z)")
    ax.set_ylabel("share of chains")
    ax.set_ylim(0, 1)
    # The bars fill the axes to 1: the legend goes beside them, not over them.
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, framealpha=0.8)
    ax.set_title("where the chains end (quenched)", fontsize=9)
    return ax


def draw_funnel_entropy(content: MapContent, ax: Any) -> Any:
    """The effective number of occupied basins ``exp(H)`` per noise level for all chains,
    those from data and those from noise, with the data's own (the score's reference)
    dotted, drawn into ``ax``; return ``ax``. The title gives the funnel score.

    Raises
    ------
    LandscapeError
        If the map has no funnel probe.
    """
    from landscape.mapping.funnel import entropy

    funnel = _funnel(content)
    xs = _noise_ticks(ax, np.asarray(funnel.noise, dtype=np.float64))
    starts = np.asarray(funnel.chain_start) if funnel.chain_start is not None else None

    def count(start: int | None) -> str:  # (exp(H) of n chains is at most n)
        if starts is None:
            return ""
        return f" ({int(starts.size if start is None else (starts == start).sum())})"

    ax.plot(xs, np.exp(np.asarray(funnel.entropy)), "o-", color="tab:blue", label=f"all chains{count(None)}")
    for o, style, label, start in ((funnel.occupancy_data, "s--", "chains from data", 0),
                                   (funnel.occupancy_noise, "^--", "chains from noise", 1)):
        if o is not None:
            ax.plot(xs, np.exp([entropy(r) for r in np.asarray(o)]), style, lw=1, ms=4, label=label + count(start))
    ref = funnel.attrs.get("reference_entropy")
    if isinstance(ref, (int, float)) and math.isfinite(ref):
        ax.axhline(math.exp(ref), color="0.4", ls=":", label="the data's basins (reference)")
    ax.set_xlabel("noise level tau")
    ax.set_ylabel("effective number of basins exp(H)\n(at most the number of chains)")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.08)  # the highest point clear of the frame
    ax.legend(fontsize=7, framealpha=0.8)
    verdict = funnel_verdict(funnel)
    ax.set_title(f"{verdict} a funnel (score {funnel.score:.2f})" if verdict == TOO_FEW_CHAINS
                 else describe_funnel(funnel).split(" (")[0], fontsize=9)
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
    from landscape.mapping.funnel import FUNNEL_SCORE

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
