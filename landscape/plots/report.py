"""The pictures of the spurious-minima report (:mod:`landscape.diagnosis.report`).

- :func:`draw_worst_minima`: minima beside their nearest training examples (images:
  pairs of pictures; 2-D points: the data with the minima on top; vectors: coordinates);
- :func:`draw_energy_histogram`: the energies of the data against those of the minima;
- :func:`draw_nn_histogram`: the data's own nearest-neighbour distances against the
  minima's;
- :func:`minimum_caption` and the small number formats the report's text shares.

Which minima to show and the checks that map, diagnosis and data belong together are the
report's (:func:`landscape.diagnosis.report.worst_minima`); its ``plot_*`` savers draw
with these functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from landscape.diagnosis.spurious import REASONS, Diagnosis, reason_text
from landscape.io.records import MapContent
from landscape.io.views import data_range, minima_kind, short_source
from landscape.plots.common import axes_width, fmt, show_image, size_inches, wrap

__all__ = [
    "CLOSE_COLOUR",
    "FLAG_COLOUR",
    "OK_COLOUR",
    "draw_energy_histogram",
    "draw_nn_histogram",
    "draw_worst_minima",
    "has_saturation",
    "minimum_caption",
    "nn_ratio",
    "pairs_size",
    "percent",
    "quantile_name",
    "times",
]

FLAG_COLOUR, CLOSE_COLOUR, OK_COLOUR = "red", "darkorange", "tab:blue"


# ------------------------------------------------------------------------ text bits


def nn_ratio(distance: float, bar: float) -> float:
    """Distance as a multiple of the bar (inf for a zero bar, as every distance beats it)."""
    if bar > 0:
        return distance / bar
    return math.inf if distance > 0 else math.nan


def times(r: float) -> str:
    """``1.23x``, or ``-`` when not finite."""
    return f"{r:.2f}x" if math.isfinite(r) else "-"


def percent(share: float) -> str:
    """0.123 -> ``12.3%``."""
    return f"{100 * share:.1f}%"


def quantile_name(quantile: float) -> str:
    """0.99 -> ``q99``, 0.5 -> ``q50``."""
    return f"q{100 * quantile:g}"


def has_saturation(content: MapContent, diagnosis: Diagnosis) -> bool:
    """The minima are images and the diagnosis measured their saturation."""
    return minima_kind(content) == "image" and diagnosis.saturation is not None


def minimum_caption(content: MapContent, diagnosis: Diagnosis, i: int) -> list[str]:
    """The lines under one shown minimum: who it is, how far, how saturated, why flagged."""
    d = float(diagnosis.nn_distance[i])
    lines = [
        f"minimum {i}, basin {int(content.minima_basin[i])}, E={fmt(float(content.minima_energy[i]))}",
        f"NN distance {fmt(d)} ({times(nn_ratio(d, diagnosis.nn_bar))} bar)",
    ]
    if has_saturation(content, diagnosis):
        lines.append(f"saturation {percent(float(diagnosis.saturation[i]))}")  # type: ignore[index]
    lines.append(reason_text(int(diagnosis.reasons[i])) or "not flagged")
    return lines


# ----------------------------------------------------------------- the worst minima


def _is_axes(target: Any) -> bool:
    from matplotlib.axes import Axes

    return isinstance(target, Axes)


#: Image pairs, in inches: an image's width, the gap between a minimum and its example,
#: between pairs, the caption above a pair (up to four lines) and the label below an image.
_IMG_W, _INNER, _PAIR_GAP, _CAPTION, _LABEL = 1.0, 0.06, 0.3, 0.55, 0.16


def _pairs_grid(n: int, shape: Sequence[int]) -> tuple[int, int, float]:
    """Columns, rows and the image height (inches) of the grid of ``n`` pairs."""
    h, w = shape[-2:]
    ncols = min(4, n)
    return ncols, math.ceil(n / ncols), float(np.clip(_IMG_W * h / max(w, 1), 0.4, 2.0))


def pairs_size(content: MapContent, n: int, title: str) -> tuple[float, float]:
    """The figure size (inches) that fits ``n`` image pairs of ``content`` and ``title``."""
    ncols, nrows, img_h = _pairs_grid(n, np.shape(content.minima_x))
    fig_w = max(5.0, ncols * (2 * _IMG_W + _INNER + _PAIR_GAP) + _PAIR_GAP)
    head = 0.25 + 0.17 * (wrap(title, fig_w, 9).count("\n") + 1)
    return fig_w, nrows * (_CAPTION + img_h + _LABEL + _PAIR_GAP) + head


def _image_pairs(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: np.ndarray,
                 flagged: bool, title: str, target: Any) -> None:
    """A grid of cells filling ``target``, each a minimum beside its nearest training
    example, captioned above."""
    low, high = data_range(content)
    n = shown.size
    ncols, nrows, img_h0 = _pairs_grid(n, np.shape(content.minima_x))
    in_axes = _is_axes(target)
    if in_axes:
        fig_w, fig_h = size_inches(target.figure)
        pos = target.get_position()
        box_w, box_h = pos.width * fig_w, pos.height * fig_h
        target.set_axis_off()
    else:
        box_w, box_h = size_inches(target)
    title = wrap(title, box_w, 9)
    head = 0.0 if in_axes else 0.25 + 0.17 * (title.count("\n") + 1)
    # The layout at its natural size (images 1 inch wide), scaled down to fit the box.
    pair_w0 = 2 * _IMG_W + _INNER
    need_w = ncols * (pair_w0 + _PAIR_GAP) - _PAIR_GAP
    row_h0 = _CAPTION + img_h0 + _LABEL + _PAIR_GAP
    s = min(1.0, box_w / need_w, max(box_h - head, 0.1) / (nrows * row_h0))
    img_w, img_h = _IMG_W * s, img_h0 * s
    pair_w = 2 * img_w + _INNER
    row_h = _CAPTION + img_h + _LABEL + _PAIR_GAP * s
    left0 = (box_w - (ncols * (pair_w + _PAIR_GAP * s) - _PAIR_GAP * s)) / 2
    colour = FLAG_COLOUR if flagged else "black"

    def place(left: float, bottom: float) -> Any:
        rect = (left / box_w, bottom / box_h, img_w / box_w, img_h / box_h)
        return target.inset_axes(rect) if in_axes else target.add_axes(rect)

    for slot, i in enumerate(shown.tolist()):
        r, c = divmod(slot, ncols)
        left = left0 + c * (pair_w + _PAIR_GAP * s)
        bottom = box_h - head - r * row_h - _CAPTION - img_h
        nn = int(diagnosis.nn_index[i])
        for j, (x, text) in enumerate(((content.minima_x[i], "minimum"), (data_x[nn], f"nearest: example {nn}"))):
            ax = place(left + j * (img_w + _INNER), bottom)
            show_image(ax, x, low, high)
            ax.set_xlabel(text, fontsize=6, labelpad=2)
            if j == 0 and flagged:
                for side in ax.spines.values():
                    side.set_edgecolor(FLAG_COLOUR)
                    side.set_linewidth(1.5)
        caption = "\n".join(minimum_caption(content, diagnosis, i))
        xy = ((left + pair_w / 2) / box_w, (bottom + img_h + 0.04) / box_h)
        (target.text(*xy, caption, transform=target.transAxes) if in_axes else target.text(*xy, caption)).set(
            ha="center", va="bottom", fontsize=6.5, color=colour, linespacing=1.15)
    if in_axes:
        target.set_title(title, fontsize=9)
    else:
        target.suptitle(title, fontsize=9, y=1 - 0.1 / box_h, va="top")


def _points_2d(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: np.ndarray,
               flagged: bool, title: str, ax: Any) -> None:
    """The data as grey dots, the minima on top, a line from each shown one to its nearest example."""
    from matplotlib.lines import Line2D

    pts = np.asarray(content.minima_x, dtype=np.float64).reshape(-1, 2)
    data = data_x.reshape(-1, 2)
    spurious = np.asarray(diagnosis.spurious, dtype=bool)
    colour = FLAG_COLOUR if flagged else CLOSE_COLOUR
    ax.scatter(data[:, 0], data[:, 1], s=4, c="0.65", linewidths=0, zorder=1)
    handles = [Line2D([], [], ls="", marker="o", ms=3, mfc="0.65", mec="none",
                      label=f"training examples ({data.shape[0]})")]
    for i in shown.tolist():
        nn = data[int(diagnosis.nn_index[i])]
        ax.plot([pts[i, 0], nn[0]], [pts[i, 1], nn[1]], color=colour, lw=0.8, zorder=2)
    handles.append(Line2D([], [], color=colour, lw=0.8, label="to the nearest example"))
    ax.scatter(pts[~spurious, 0], pts[~spurious, 1], s=22, c=OK_COLOUR, edgecolors="black", linewidths=0.3, zorder=3)
    handles.append(Line2D([], [], ls="", marker="o", ms=5, mfc=OK_COLOUR, mec="black", mew=0.3, label="minimum"))
    if spurious.any():
        ax.scatter(pts[spurious, 0], pts[spurious, 1], s=40, c=FLAG_COLOUR, edgecolors="black", linewidths=0.4,
                   zorder=4)
        handles.append(Line2D([], [], ls="", marker="o", ms=6, mfc=FLAG_COLOUR, mec="black", mew=0.4,
                              label="flagged spurious"))
    if not flagged:
        ax.scatter(pts[shown, 0], pts[shown, 1], s=90, facecolors="none", edgecolors=CLOSE_COLOUR, linewidths=1.2,
                   zorder=4)
        handles.append(Line2D([], [], ls="", marker="o", ms=8, mfc="none", mec=CLOSE_COLOUR, mew=1.2,
                              label="closest calls (farthest from the data)"))
    for i in shown.tolist():
        ax.annotate(str(i), pts[i], xytext=(5, 4), textcoords="offset points", fontsize=8, color=colour, zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.05)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.8)
    ax.set_title(wrap(title, axes_width(ax), 9), fontsize=9)


def _vector_panels(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: np.ndarray,
                   flagged: bool, title: str, target: Any) -> None:
    """One small panel per shown minimum in a figure: its coordinates against its nearest
    example's; in an axes, all of them there (a colour per minimum, examples dashed)."""
    from matplotlib.ticker import MaxNLocator

    x = np.asarray(content.minima_x, dtype=np.float64)
    coords = np.arange(x.shape[1])
    marker = "o" if x.shape[1] <= 40 else None  # markers only where they can be told apart
    colour = FLAG_COLOUR if flagged else CLOSE_COLOUR
    if _is_axes(target):
        for k, i in enumerate(shown.tolist()):
            nn = int(diagnosis.nn_index[i])
            c = f"C{k % 10}"
            target.plot(coords, x[i], marker=marker, ms=3, lw=1.2, color=c, label=f"minimum {i}")
            target.plot(coords, data_x[nn], marker=marker, ms=2.5, lw=0.9, ls="--", color=c,
                        label=f"its nearest example {nn}")
        target.xaxis.set_major_locator(MaxNLocator(integer=True))
        target.set_xlabel("coordinate")
        target.legend(fontsize=6, loc="best", framealpha=0.7, ncol=2)
        target.grid(True, color="0.92", lw=0.5)
        target.set_title(wrap(title, axes_width(target), 9), fontsize=9)
        return
    n = shown.size
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    for slot, i in enumerate(shown.tolist()):
        ax = target.add_subplot(nrows, ncols, slot + 1)
        nn = int(diagnosis.nn_index[i])
        ax.plot(coords, x[i], marker=marker, ms=3, lw=1.2, color=colour, label=f"minimum {i}")
        ax.plot(coords, data_x[nn], marker=marker, ms=2.5, lw=1.0, ls="--", color="0.35", label=f"example {nn}")
        lines = minimum_caption(content, diagnosis, i)
        ax.set_title(f"{lines[0]}\n{lines[1]}; {lines[-1]}", fontsize=7, color=colour if flagged else "black")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best", framealpha=0.7)
        ax.grid(True, color="0.92", lw=0.5)
        if slot + ncols >= n:  # the lowest panel of its column
            ax.set_xlabel("coordinate", fontsize=7)
    target.suptitle(wrap(title, size_inches(target)[0], 9), fontsize=9)


def draw_worst_minima(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: Sequence[int],
                      target: Any, *, flagged: bool = True, title: str | None = None) -> Any:
    """Draw the minima ``shown`` next to their nearest training examples into ``target``;
    return ``target``.

    Images: a grid of cells, each the minimum beside ``data_x[nn_index[i]]`` (the data
    range mapped to [0, 1]), captioned with :func:`minimum_caption` (into a Figure or
    SubFigure; into an Axes, as inset axes filling its box). 2-D points: the data as grey
    dots, every minimum on top (flagged ones red), the shown ones labelled with a line to
    their nearest example (into an Axes, or a new one filling the figure). Vectors
    (D > 2): into a figure, a small panel per minimum, its coordinates against its
    nearest example's; into an Axes, all of them there. With ``flagged`` False the shown
    minima are the closest calls, drawn in orange.

    Parameters
    ----------
    content, diagnosis, data_x
        The map, its diagnosis and the training examples it used (checked by the caller,
        :func:`landscape.diagnosis.report.plot_worst_minima`).
    shown : sequence of int
        The minima to draw (:func:`landscape.diagnosis.report.worst_minima`).
    target : matplotlib Axes, Figure or SubFigure
    flagged : bool
        The shown minima are flagged ones (else the closest calls).
    title : str, optional
        Default: the model and what is shown.
    """
    shown = np.asarray(shown, dtype=np.int64)
    kind = minima_kind(content)
    if title is None:
        title = (f"{short_source(content)}: {'spurious minima' if flagged else 'the minima farthest from the data'} "
                 f"({shown.size}) beside their nearest training examples")
    dx = np.asarray(data_x, dtype=np.float64)
    if kind == "image":
        _image_pairs(content, diagnosis, dx, shown, flagged, title, target)
    elif kind == "2d":
        _points_2d(content, diagnosis, dx, shown, flagged, title,
                   target if _is_axes(target) else target.add_subplot(1, 1, 1))
    else:
        _vector_panels(content, diagnosis, dx, shown, flagged, title, target)
    return target


# ------------------------------------------------------------------------ histograms


def _finite(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def _why(diagnosis: Diagnosis) -> str:
    """How many minima each reason flags: ``"210 saturated"`` (a minimum may have several)."""
    return ", ".join(f"{diagnosis.count(flag)} {name}" for flag, name in REASONS.items() if diagnosis.count(flag))


def _overlaid(ax: Any, data: np.ndarray, minima: np.ndarray, spurious: np.ndarray, extra: Sequence[float],
              why: str = "") -> None:
    """The data's values and the minima's (flagged ones stacked in red) as shares per bin.

    Each set is weighted by one over its size, so a few hundred minima compare with
    thousands of training examples on one axis.
    """
    values = [v for v in (_finite(data), _finite(minima), _finite(extra)) if v.size]
    if not values:
        return
    edges = np.histogram_bin_edges(np.concatenate(values), bins=40)
    m = data[np.isfinite(data)]
    if m.size:
        ax.hist(m, bins=edges, weights=np.full(m.size, 1.0 / m.size), color="0.6", alpha=0.75,
                label=f"training examples ({m.size})")
    ok = np.isfinite(minima)
    n = int(ok.sum())
    groups = [(minima[ok & ~spurious], OK_COLOUR, "minima, not flagged"),
              (minima[ok & spurious], FLAG_COLOUR, "minima, flagged spurious")]
    groups = [g for g in groups if g[0].size]  # matplotlib draws nothing sensible for an empty stack
    if groups:
        ax.hist([g[0] for g in groups], bins=edges, weights=[np.full(g[0].size, 1.0 / n) for g in groups],
                stacked=True, histtype="stepfilled", alpha=0.6, color=[g[1] for g in groups],
                label=[f"{g[2]} ({g[0].size}" + (f": {why})" if g[1] == FLAG_COLOUR and why else ")") for g in groups])
    ax.set_ylabel("share of its set per bin")


def draw_energy_histogram(diagnosis: Diagnosis, content: MapContent, ax: Any, *, title: str | None = None) -> Any:
    """The energies of the training examples against those of the minima, each as shares
    of its own set per bin (the flagged minima stacked in red), with a dashed line at
    ``diagnosis.energy_bar`` (a minimum off the data is flagged only at or below it),
    drawn into ``ax``; return ``ax``. The caller checks the diagnosis is of the map."""
    energy = np.asarray(content.minima_energy, dtype=np.float64).reshape(-1)
    _overlaid(ax, np.asarray(diagnosis.data_energy, dtype=np.float64), energy, np.asarray(diagnosis.spurious),
              [diagnosis.energy_bar], _why(diagnosis))
    ax.axvline(diagnosis.energy_bar, color="black", ls="--", lw=1.2,
               label=f"energy bar: the data's {quantile_name(diagnosis.rule.energy_quantile)}, "
                     f"{fmt(diagnosis.energy_bar)}")
    ax.set_xlabel("energy U")
    ax.legend(fontsize=7, framealpha=0.8)
    default = f"{short_source(content)}: energies of the training examples and of the minima"
    ax.set_title(wrap(title or default, axes_width(ax), 9), fontsize=9)
    return ax


def draw_nn_histogram(diagnosis: Diagnosis, ax: Any, *, title: str | None = None,
                      content: MapContent | None = None) -> Any:
    """The data's own nearest-neighbour distances (to examples that differ) against the minima's, each
    as shares of its own set per bin (the flagged minima stacked in red), a dashed line at
    the bar ``diagnosis.nn_bar`` and a dotted one at the data quantile it is a multiple
    of, drawn into ``ax``; return ``ax``. ``content`` names the model in the default title."""
    data_nn = np.asarray(diagnosis.data_nn, dtype=np.float64)
    rule = diagnosis.rule
    q = float(np.quantile(data_nn, rule.nn_quantile))
    _overlaid(ax, data_nn, np.asarray(diagnosis.nn_distance, dtype=np.float64), np.asarray(diagnosis.spurious),
              [diagnosis.nn_bar, q], _why(diagnosis))
    qn = quantile_name(rule.nn_quantile)
    ax.axvline(q, color="0.3", ls=":", lw=1.2, label=f"the data's {qn}, {fmt(q)}")
    ax.axvline(diagnosis.nn_bar, color="black", ls="--", lw=1.2,
               label=f"bar: {rule.nn_factor:g} x the data's {qn}, {fmt(diagnosis.nn_bar)}")
    width = axes_width(ax)
    ax.set_xlabel(wrap("distance to the nearest training example (the data: to the nearest other one)", width, 10))
    ax.legend(fontsize=7, framealpha=0.8)
    what = "nearest-neighbour distances of the training examples and of the minima"
    default = f"{short_source(content)}: {what}" if content is not None else what
    ax.set_title(wrap(title or default, width, 9), fontsize=9)
    return ax
