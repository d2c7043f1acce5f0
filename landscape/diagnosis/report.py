"""The spurious-minima report: one self-contained HTML page about a map's diagnosis.

:func:`write_report` puts together what :func:`landscape.diagnosis.spurious.diagnose` found about
the minima of a map, for a reader who has the page and nothing else:

a. a summary: how many minima are flagged, the share of the exploration chains that end
   in them, the count per reason and the bars each reason was measured against, with the
   three criteria in plain words;
b. the worst minima (flagged, lowest energy first) next to their nearest training
   examples (:func:`plot_worst_minima`); when none is flagged, the closest calls (the
   minima farthest from the data);
c. the energies of the data against those of the minima (:func:`plot_energy_histogram`);
d. the data's own nearest-neighbour distances against the minima's
   (:func:`plot_nn_histogram`);
e. the disconnectivity graph with the spurious basins in red
   (:func:`landscape.plots.figures.plot_tree`);
f. figures the caller adds (the funnel probe, say);
g. a table of every flagged minimum.

Every picture is embedded as a base64 PNG and the style sheet is inline, so the page
needs no other file, no network and no JavaScript. The page is written to a temporary
file next to the target and renamed onto it only once complete: a failure leaves an
existing report as it was.

The figure functions follow :mod:`landscape.plots.figures`: a matplotlib ``Figure`` on the Agg
canvas (no pyplot), written atomically, format by suffix.
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from landscape.diagnosis.spurious import OFF_DATA, SATURATED, SINK, Diagnosis, reason_text
from landscape.errors import LandscapeError
from landscape.plots.figures import (
    _g,
    _new_figure,
    _save,
    _short_source,
    atomic_output,
    check_picture_path,
    data_range,
    describe_source,
    minima_kind,
    plot_tree,
    show_image,
)
from landscape.io.mapfile import MapContent

#: With no minimum flagged, the report shows this many of those farthest from the data.
CLOSEST_CALLS = 6
#: Resolution of the report's pictures: enough to read, small enough that the page of a
#: 100-minimum map stays around a megabyte.
DPI = 100
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".svg": "image/svg+xml"}
_FLAG_COLOUR, _CLOSE_COLOUR, _OK_COLOUR = "red", "darkorange", "tab:blue"


# ------------------------------------------------------------------------- checks


def _check(content: MapContent, diagnosis: Diagnosis, data_x: Any) -> np.ndarray:
    """``data_x`` as float64 once the map, its diagnosis and the data are known to match."""
    n = content.n_minima
    if n == 0:
        raise LandscapeError("the map has no minima: nothing to report")
    minima_kind(content)  # raises for shapes no picture can draw
    shape = tuple(np.shape(content.minima_x)[1:])
    dx = np.asarray(data_x, dtype=np.float64)
    if dx.ndim == 0 or tuple(dx.shape[1:]) != shape:
        raise LandscapeError(
            f"the training examples have shape {list(dx.shape[1:])} but the minima {list(shape)}: "
            "pass the data the diagnosis used"
        )
    for name in ("reasons", "nn_distance", "nn_index"):
        got = np.shape(getattr(diagnosis, name))
        if got != (n,):
            raise LandscapeError(
                f"the diagnosis has {name} of shape {list(got)} for a map of {n} minima: not this map's"
            )
    if diagnosis.saturation is not None and np.shape(diagnosis.saturation) != (n,):
        got = list(np.shape(diagnosis.saturation))
        raise LandscapeError(f"the diagnosis has saturation of shape {got} for a map of {n} minima: not this map's")
    m = dx.shape[0]
    if np.shape(diagnosis.data_nn) != (m,) or np.shape(diagnosis.data_energy) != (m,):
        raise LandscapeError(
            f"the diagnosis used {np.size(diagnosis.data_nn)} training examples but {m} were given: "
            "pass the data the diagnosis used"
        )
    idx = np.asarray(diagnosis.nn_index)
    if idx.size and (idx.min() < 0 or idx.max() >= m):
        raise LandscapeError(f"the diagnosis points at training example {int(idx.max())}, but only {m} were given")
    return dx


def _check_max_shown(max_shown: int) -> int:
    if int(max_shown) < 1:
        raise LandscapeError(f"max_shown must be at least 1, got {max_shown}")
    return int(max_shown)


def worst_minima(content: MapContent, diagnosis: Diagnosis, max_shown: int = 12) -> tuple[np.ndarray, bool]:
    """The minima the report shows, and whether they are flagged ones.

    Parameters
    ----------
    content : MapContent
    diagnosis : Diagnosis
        Of ``content``'s minima.
    max_shown : int
        At most this many (>= 1).

    Returns
    -------
    indices : ndarray int64
        The flagged minima, lowest energy first, at most ``max_shown``; when none is
        flagged, the ``min(CLOSEST_CALLS, max_shown)`` minima farthest from the data
        (largest ``nn_distance``), farthest first.
    flagged : bool
        False for the closest-calls fallback.

    Raises
    ------
    LandscapeError
        If ``max_shown`` < 1.
    """
    k = _check_max_shown(max_shown)
    flagged = np.flatnonzero(diagnosis.spurious)
    if flagged.size:
        energy = np.asarray(content.minima_energy, dtype=np.float64)[flagged]
        return flagged[np.argsort(energy, kind="stable")][:k].astype(np.int64), True
    far = np.argsort(-np.asarray(diagnosis.nn_distance, dtype=np.float64), kind="stable")
    return far[: min(CLOSEST_CALLS, k)].astype(np.int64), False


# ------------------------------------------------------------------------ text bits


def _ratio(distance: float, bar: float) -> float:
    """Distance as a multiple of the bar (inf for a zero bar, as every distance beats it)."""
    if bar > 0:
        return distance / bar
    return math.inf if distance > 0 else math.nan


def _times(r: float) -> str:
    return f"{r:.2f}x" if math.isfinite(r) else "-"


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def _q(quantile: float) -> str:
    """0.99 -> ``q99``, 0.5 -> ``q50``."""
    return f"q{100 * quantile:g}"


def _has_saturation(content: MapContent, diagnosis: Diagnosis) -> bool:
    return minima_kind(content) == "image" and diagnosis.saturation is not None


def _caption(content: MapContent, diagnosis: Diagnosis, i: int) -> list[str]:
    """The lines under one shown minimum: who it is, how far, how saturated, why flagged."""
    d = float(diagnosis.nn_distance[i])
    lines = [
        f"minimum {i}, basin {int(content.minima_basin[i])}, E={_g(float(content.minima_energy[i]))}",
        f"NN distance {_g(d)} ({_times(_ratio(d, diagnosis.nn_bar))} bar)",
    ]
    if _has_saturation(content, diagnosis):
        lines.append(f"saturation {_pct(float(diagnosis.saturation[i]))}")  # type: ignore[index]
    lines.append(reason_text(int(diagnosis.reasons[i])) or "not flagged")
    return lines


# ------------------------------------------------------------------------ the figures


def _image_pairs(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: np.ndarray,
                 flagged: bool, title: str) -> Any:
    """A grid of cells, each a minimum beside its nearest training example, captioned above."""
    low, high = data_range(content)
    n = shown.size
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    # Fixed layout in inches (as figures._image_grid): a caption of up to four lines
    # above each pair, a one-line label below each image.
    h, w = np.shape(content.minima_x)[-2:]
    img_w = 1.0
    img_h = float(np.clip(img_w * h / max(w, 1), 0.4, 2.0))
    inner, gap, cap, label = 0.06, 0.3, 0.55, 0.16
    pair_w = 2 * img_w + inner
    fig_w = max(5.0, ncols * (pair_w + gap) + gap)
    # A 9-point title fits about 13 characters per inch: wrap it to the figure's width.
    title = textwrap.fill(title, width=max(30, int(12 * fig_w)))
    head = 0.25 + 0.17 * (title.count("\n") + 1)
    row_h = cap + img_h + label + gap
    fig_h = nrows * row_h + head
    fig = _new_figure(fig_w, fig_h)
    left0 = (fig_w - (ncols * (pair_w + gap) - gap)) / 2
    colour = _FLAG_COLOUR if flagged else "black"
    for slot, i in enumerate(shown.tolist()):
        r, c = divmod(slot, ncols)
        left = left0 + c * (pair_w + gap)
        bottom = fig_h - head - r * row_h - cap - img_h
        nn = int(diagnosis.nn_index[i])
        for j, (x, text) in enumerate(((content.minima_x[i], "minimum"), (data_x[nn], f"nearest: example {nn}"))):
            ax = fig.add_axes(((left + j * (img_w + inner)) / fig_w, bottom / fig_h, img_w / fig_w, img_h / fig_h))
            show_image(ax, x, low, high)
            ax.set_xlabel(text, fontsize=6, labelpad=2)
            if j == 0 and flagged:
                for side in ax.spines.values():
                    side.set_edgecolor(_FLAG_COLOUR)
                    side.set_linewidth(1.5)
        caption = "\n".join(_caption(content, diagnosis, i))
        fig.text((left + pair_w / 2) / fig_w, (bottom + img_h + 0.04) / fig_h, caption,
                 ha="center", va="bottom", fontsize=6.5, color=colour, linespacing=1.15)
    fig.suptitle(title, fontsize=9, y=1 - 0.1 / fig_h, va="top")
    return fig


def _points_2d(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: np.ndarray,
               flagged: bool, title: str) -> Any:
    """The data as grey dots, the minima on top, a line from each shown one to its nearest example."""
    from matplotlib.lines import Line2D

    pts = np.asarray(content.minima_x, dtype=np.float64).reshape(-1, 2)
    data = data_x.reshape(-1, 2)
    spurious = np.asarray(diagnosis.spurious, dtype=bool)
    colour = _FLAG_COLOUR if flagged else _CLOSE_COLOUR
    fig = _new_figure(6.5, 5.8)
    ax = fig.add_subplot(1, 1, 1)
    ax.scatter(data[:, 0], data[:, 1], s=4, c="0.65", linewidths=0, zorder=1)
    handles = [Line2D([], [], ls="", marker="o", ms=3, mfc="0.65", mec="none",
                      label=f"training examples ({data.shape[0]})")]
    for i in shown.tolist():
        nn = data[int(diagnosis.nn_index[i])]
        ax.plot([pts[i, 0], nn[0]], [pts[i, 1], nn[1]], color=colour, lw=0.8, zorder=2)
    handles.append(Line2D([], [], color=colour, lw=0.8, label="to the nearest example"))
    ax.scatter(pts[~spurious, 0], pts[~spurious, 1], s=22, c=_OK_COLOUR, edgecolors="black", linewidths=0.3, zorder=3)
    handles.append(Line2D([], [], ls="", marker="o", ms=5, mfc=_OK_COLOUR, mec="black", mew=0.3, label="minimum"))
    if spurious.any():
        ax.scatter(pts[spurious, 0], pts[spurious, 1], s=40, c=_FLAG_COLOUR, edgecolors="black", linewidths=0.4,
                   zorder=4)
        handles.append(Line2D([], [], ls="", marker="o", ms=6, mfc=_FLAG_COLOUR, mec="black", mew=0.4,
                              label="flagged spurious"))
    if not flagged:
        ax.scatter(pts[shown, 0], pts[shown, 1], s=90, facecolors="none", edgecolors=_CLOSE_COLOUR, linewidths=1.2,
                   zorder=4)
        handles.append(Line2D([], [], ls="", marker="o", ms=8, mfc="none", mec=_CLOSE_COLOUR, mew=1.2,
                              label="closest calls (farthest from the data)"))
    for i in shown.tolist():
        ax.annotate(str(i), pts[i], xytext=(5, 4), textcoords="offset points", fontsize=8, color=colour, zorder=5,
                    bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.7})
    ax.set_aspect("equal", adjustable="datalim")
    ax.margins(0.05)
    ax.set_xlabel("x1")
    ax.set_ylabel("x2")
    ax.legend(handles=handles, loc="best", fontsize=7, framealpha=0.8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def _vector_lines(content: MapContent, diagnosis: Diagnosis, data_x: np.ndarray, shown: np.ndarray,
                  flagged: bool, title: str) -> Any:
    """One small panel per shown minimum: its coordinates against its nearest example's."""
    from matplotlib.ticker import MaxNLocator

    x = np.asarray(content.minima_x, dtype=np.float64)
    d = x.shape[1]
    n = shown.size
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig_w, fig_h = max(5.0, 3.4 * ncols), 2.5 * nrows + 0.5
    fig = _new_figure(fig_w, fig_h)
    coords = np.arange(d)
    marker = "o" if d <= 40 else None  # markers only where they can be told apart
    colour = _FLAG_COLOUR if flagged else _CLOSE_COLOUR
    for slot, i in enumerate(shown.tolist()):
        ax = fig.add_subplot(nrows, ncols, slot + 1)
        nn = int(diagnosis.nn_index[i])
        ax.plot(coords, x[i], marker=marker, ms=3, lw=1.2, color=colour, label=f"minimum {i}")
        ax.plot(coords, data_x[nn], marker=marker, ms=2.5, lw=1.0, ls="--", color="0.35", label=f"example {nn}")
        lines = _caption(content, diagnosis, i)
        ax.set_title(f"{lines[0]}\n{lines[1]}; {lines[-1]}", fontsize=7, color=colour if flagged else "black")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, loc="best", framealpha=0.7)
        ax.grid(True, color="0.92", lw=0.5)
        if slot // ncols == nrows - 1:
            ax.set_xlabel("coordinate", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()  # leaves room for the suptitle (matplotlib >= 3.3)
    return fig


def plot_worst_minima(
    content: MapContent,
    diagnosis: Diagnosis,
    data_x: np.ndarray,
    path: str | Path,
    *,
    max_shown: int = 12,
    title: str | None = None,
) -> Path:
    """The worst minima (:func:`worst_minima`) next to their nearest training examples.

    Images: a grid of cells, each the minimum beside ``data_x[nn_index[i]]`` (the data
    range mapped to [0, 1]), captioned with the minimum's index, basin, energy, NN
    distance (also as a multiple of the bar), saturation and reasons. 2-D points: the
    data as grey dots, every minimum on top (flagged ones red), the shown ones labelled
    with a line to their nearest example. Vectors (D > 2): a small panel per minimum, its
    coordinates against its nearest example's. With no minimum flagged, the closest calls
    are drawn the same way (orange).

    Parameters
    ----------
    content : MapContent
    diagnosis : Diagnosis
        Of ``content``'s minima against ``data_x``.
    data_x : array [M, *shape]
        The training examples the diagnosis used (``nn_index`` points into them).
    path : str or Path
        Output picture (format by suffix).
    max_shown : int
        Draw at most this many minima.
    title : str, optional

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the data, diagnosis and map do not belong together (shapes, counts), the
        minima cannot be drawn, ``max_shown`` < 1, or an unknown picture format.
    """
    path = check_picture_path(path)
    dx = _check(content, diagnosis, data_x)
    shown, flagged = worst_minima(content, diagnosis, max_shown)
    kind = minima_kind(content)
    n_flagged = int(np.count_nonzero(diagnosis.spurious))
    if title is None:
        if flagged:
            of = f"{shown.size} of {n_flagged}" if shown.size < n_flagged else f"{n_flagged} flagged"
            title = f"{_short_source(content)}: spurious minima ({of}, lowest energy first)"
        else:
            title = f"{_short_source(content)}: no minimum flagged; the {shown.size} farthest from the data"
    if kind == "image":
        title += " - left: minimum, right: its nearest training example"
        fig = _image_pairs(content, diagnosis, dx, shown, flagged, title)
    elif kind == "2d":
        fig = _points_2d(content, diagnosis, dx, shown, flagged, title)
    else:
        fig = _vector_lines(content, diagnosis, dx, shown, flagged, title)
    return _save(fig, path, dpi=DPI)


def _finite(a: Any) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64).reshape(-1)
    return a[np.isfinite(a)]


def _overlaid(ax: Any, data: np.ndarray, minima: np.ndarray, spurious: np.ndarray, extra: Sequence[float]) -> None:
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
    groups = [(minima[ok & ~spurious], _OK_COLOUR, "minima, not flagged"), (minima[ok & spurious], _FLAG_COLOUR,
                                                                             "minima, flagged spurious")]
    groups = [g for g in groups if g[0].size]  # matplotlib draws nothing sensible for an empty stack
    if groups:
        ax.hist([g[0] for g in groups], bins=edges, weights=[np.full(g[0].size, 1.0 / n) for g in groups],
                stacked=True, histtype="stepfilled", alpha=0.6, color=[g[1] for g in groups],
                label=[f"{g[2]} ({g[0].size})" for g in groups])
    ax.set_ylabel("share of its set per bin")


def plot_energy_histogram(diagnosis: Diagnosis, content: MapContent, path: str | Path, *,
                          title: str | None = None) -> Path:
    """The energies of the training examples against those of the minima, with the energy bar.

    Both as shares of their own set per bin (the flagged minima stacked in red), and a
    dashed line at ``diagnosis.energy_bar``: a minimum off the data is flagged only at or
    below it.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the diagnosis is not of the map's minima, or an unknown picture format.
    """
    path = check_picture_path(path)
    energy = np.asarray(content.minima_energy, dtype=np.float64).reshape(-1)
    if np.shape(diagnosis.reasons) != energy.shape:
        raise LandscapeError(f"the diagnosis covers {np.size(diagnosis.reasons)} minima, the map has {energy.size}")
    fig = _new_figure(6.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    _overlaid(ax, np.asarray(diagnosis.data_energy, dtype=np.float64), energy, np.asarray(diagnosis.spurious),
              [diagnosis.energy_bar])
    ax.axvline(diagnosis.energy_bar, color="black", ls="--", lw=1.2,
               label=f"energy bar: the data's {_q(diagnosis.rule.energy_quantile)}, {_g(diagnosis.energy_bar)}")
    ax.set_xlabel("energy U")
    ax.legend(fontsize=7, framealpha=0.8)
    ax.set_title(title or "energies: training examples against minima", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi=DPI)


def plot_nn_histogram(diagnosis: Diagnosis, path: str | Path, *, title: str | None = None) -> Path:
    """The data's own leave-one-out nearest-neighbour distances against the minima's.

    Both as shares of their own set per bin (the flagged minima stacked in red), a dashed
    line at the bar ``diagnosis.nn_bar`` and a dotted one at the data quantile it is a
    multiple of.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the diagnosis has no data distances, or an unknown picture format.
    """
    path = check_picture_path(path)
    data_nn = np.asarray(diagnosis.data_nn, dtype=np.float64)
    if data_nn.size == 0:
        raise LandscapeError("the diagnosis holds no nearest-neighbour distances of the data")
    rule = diagnosis.rule
    q = float(np.quantile(data_nn, rule.nn_quantile))
    fig = _new_figure(6.5, 4.0)
    ax = fig.add_subplot(1, 1, 1)
    _overlaid(ax, data_nn, np.asarray(diagnosis.nn_distance, dtype=np.float64), np.asarray(diagnosis.spurious),
              [diagnosis.nn_bar, q])
    ax.axvline(q, color="0.3", ls=":", lw=1.2, label=f"the data's {_q(rule.nn_quantile)}, {_g(q)}")
    ax.axvline(diagnosis.nn_bar, color="black", ls="--", lw=1.2,
               label=f"bar: {rule.nn_factor:g} x the data's {_q(rule.nn_quantile)}, {_g(diagnosis.nn_bar)}")
    ax.set_xlabel("distance to the nearest training example (the data: to the nearest other one)")
    ax.legend(fontsize=7, framealpha=0.8)
    ax.set_title(title or "nearest-neighbour distances: training examples against minima", fontsize=9)
    fig.tight_layout()
    return _save(fig, path, dpi=DPI)


# --------------------------------------------------------------------------- the page

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1150px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.45em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
p.source, p.note, footer { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.flag { color: #b00; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.85em; margin-top: 0.3em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _img(data: bytes, mime: str, alt: str) -> str:
    return f'<img src="data:{mime};base64,{base64.b64encode(data).decode("ascii")}" alt="{_e(alt)}">'


def _figure(png: Path, caption: str) -> str:
    return f"<figure>{_img(png.read_bytes(), 'image/png', caption)}<figcaption>{_e(caption)}</figcaption></figure>\n"


def _read_extra(extra_figures: Sequence[tuple[str, str | Path]]) -> list[tuple[str, bytes, str]]:
    """``(caption, bytes, mime)`` of each extra figure, read before anything is written."""
    out = []
    for item in extra_figures:
        try:
            caption, where = item
        except (TypeError, ValueError):
            raise LandscapeError(f"an extra figure must be a (caption, path) pair, got {item!r}") from None
        where = Path(where)
        mime = _MIME.get(where.suffix.lower())
        if mime is None:
            raise LandscapeError(f"{where}: cannot embed a {where.suffix or 'suffix-less'} file; use a PNG")
        try:
            out.append((str(caption), where.read_bytes(), mime))
        except OSError as err:
            raise LandscapeError(f"{where}: cannot read the extra figure ({err.strerror or err})") from None
    return out


def _summary_rows(content: MapContent, diagnosis: Diagnosis) -> list[tuple[str, str]]:
    n = content.n_minima
    spurious = np.asarray(diagnosis.spurious, dtype=bool)
    k = int(spurious.sum())
    hits = np.asarray(content.minima_hits, dtype=np.float64)
    total = float(hits.sum())
    rule = diagnosis.rule
    data_nn = np.asarray(diagnosis.data_nn, dtype=np.float64)
    q50, q99 = np.quantile(data_nn, [0.5, 0.99]) if data_nn.size else (math.nan, math.nan)
    data_e = np.asarray(diagnosis.data_energy, dtype=np.float64)
    images = minima_kind(content) == "image"
    rows = [
        ("Minima", f"{n} in {content.n_basins} basins"),
        ("Flagged spurious", f"{k} ({_pct(k / n)} of the minima)"),
        ("Chains ending in spurious minima",
         f"{int(hits[spurious].sum())} of {int(total)} ({_pct(hits[spurious].sum() / total)})" if total > 0
         else "no chains recorded in the map"),
        ("Off the data", str(diagnosis.count(OFF_DATA))),
        ("Saturated", str(diagnosis.count(SATURATED)) if diagnosis.saturation is not None
         else "not tested (the minima are not images)" if not images else "not tested"),
        ("Funnel sink", str(diagnosis.count(SINK)) if content.funnel is not None or diagnosis.sinks
         else f"{diagnosis.count(SINK)} (the map has no funnel probe)"),
        ("Training examples", str(data_nn.size)),
        ("NN-distance bar",
         f"{_g(diagnosis.nn_bar)} = {rule.nn_factor:g} x the data's {_q(rule.nn_quantile)} of their own "
         f"nearest-neighbour distances (the data's median {_g(q50)}, q99 {_g(q99)})"),
        ("Energy bar",
         f"{_g(diagnosis.energy_bar)}: the data's {_q(rule.energy_quantile)} of U (the data span "
         f"{_g(float(data_e.min()))} to {_g(float(data_e.max()))})" if data_e.size else _g(diagnosis.energy_bar)),
    ]
    bar = diagnosis.saturation_bar()
    if images and bar is not None:
        rows.append(("Saturation bar", f"{_pct(bar)} of the pixels (the data: {_pct(diagnosis.data_saturation)})"))
    sinks = ", ".join(str(int(b)) for b in diagnosis.sinks) or "none"
    if content.funnel is not None:
        from landscape.mapping.funnel import describe

        sinks += f" ({describe(content.funnel)})"
    rows.append(("Sink basins", sinks))
    return rows


def _criteria(diagnosis: Diagnosis, images: bool) -> str:
    """The three criteria in plain words, with this rule's numbers."""
    rule = diagnosis.rule
    typical = "median" if rule.energy_quantile == 0.5 else f"{_q(rule.energy_quantile)} quantile"
    text = (
        "A minimum of a well-learned energy sits among the training examples and looks like them. "
        "A minimum is flagged spurious for any of three reasons. "
        f"<b>Off the data</b>: the model makes it at least as probable as a typical training example "
        f"(its energy is at or below the {typical} of the data's energies) although no training example is near "
        f"it (its distance to the nearest one is more than {rule.nn_factor:g} times the distance within which "
        f"{100 * rule.nn_quantile:g}% of the training examples have another example). "
    )
    if images:
        text += (
            "<b>Saturated</b>: it pushes its pixels to the ends of the data range (black or white) far more "
            f"than the data do: more than {100 * rule.saturation_excess:g}% of the pixels the data leave "
            "unsaturated. "
        )
    else:
        text += "<b>Saturated</b> applies to images only. "
    text += (
        "<b>Funnel sink</b>: it is the bottom of a basin into which the funnel probe's noisy chains all fall "
        f"(funnel score at least {rule.funnel_score:g})."
    )
    return f"<p>{text}</p>\n"


def _flagged_table(content: MapContent, diagnosis: Diagnosis) -> str:
    flagged = np.flatnonzero(diagnosis.spurious)
    if flagged.size == 0:
        return '<p id="flagged-minima">No minimum is flagged.</p>\n'
    order = flagged[np.argsort(np.asarray(content.minima_energy, dtype=np.float64)[flagged], kind="stable")]
    sat = _has_saturation(content, diagnosis)
    head = ["minimum", "basin", "energy", "hits", "NN distance", "nearest example", "NN / bar"]
    head += ["saturation"] if sat else []
    head += ["reasons"]
    rows = ["<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for i in order.tolist():
        d = float(diagnosis.nn_distance[i])
        cells = [str(i), str(int(content.minima_basin[i])), _g(float(content.minima_energy[i])),
                 str(int(content.minima_hits[i])), _g(d), str(int(diagnosis.nn_index[i])),
                 _times(_ratio(d, diagnosis.nn_bar))]
        cells += [_pct(float(diagnosis.saturation[i]))] if sat else []  # type: ignore[index]
        row = "".join(f'<td class="num">{_e(c)}</td>' for c in cells)
        row += f'<td class="flag">{_e(reason_text(int(diagnosis.reasons[i])))}</td>'
        rows.append(f"<tr>{row}</tr>")
    return '<table id="flagged-minima">\n' + "\n".join(rows) + "\n</table>\n"


def _page(
    content: MapContent,
    diagnosis: Diagnosis,
    data_x: np.ndarray,
    title: str,
    extra: list[tuple[str, bytes, str]],
    max_shown: int,
    pictures: Path,
) -> Iterator[str]:
    """The page, section by section; each picture is drawn in ``pictures`` when its turn comes."""
    from landscape import __version__

    images = minima_kind(content) == "image"
    yield (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{_e(title)}</title>\n'
           f"<style>{_CSS}</style>\n</head>\n<body>\n")
    yield f'<section id="summary">\n<h1>{_e(title)}</h1>\n<p class="source">Map: {_e(describe_source(content))}</p>\n'
    yield ("<table>\n" + "\n".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>"
                                   for k, v in _summary_rows(content, diagnosis)) + "\n</table>\n")
    yield _criteria(diagnosis, images) + "</section>\n"

    shown, flagged = worst_minima(content, diagnosis, max_shown)
    n_flagged = int(np.count_nonzero(diagnosis.spurious))
    picture = plot_worst_minima(content, diagnosis, data_x, pictures / "worst.png", max_shown=max_shown)
    if flagged:
        if shown.size < n_flagged:
            intro = f"The {shown.size} flagged minima of lowest energy, of {n_flagged}"
        elif n_flagged == 1:
            intro = "The one flagged minimum"
        else:
            intro = f"All {n_flagged} flagged minima, lowest energy first"
        yield '<section id="worst">\n<h2>Worst minima</h2>\n'
        yield _figure(picture, f"{intro}, each with its nearest training example.")
    else:
        yield '<section id="worst">\n<h2>Worst minima</h2>\n<p>No minimum is flagged spurious.</p>\n'
        yield f'<h2 id="closest-calls">Closest calls: the {shown.size} minima farthest from the data</h2>\n'
        yield _figure(picture, "The minima with the largest distance to their nearest training example, farthest "
                               "first, each with that example. None of them is flagged.")
    yield "</section>\n"

    picture = plot_energy_histogram(diagnosis, content, pictures / "energy.png")
    yield '<section id="energy">\n<h2>Energies</h2>\n'
    yield _figure(picture, "The energies of the training examples and of the minima, each as a share of its own set. "
                           "A minimum far from the data is flagged only at or left of the dashed line.")
    yield "</section>\n"

    picture = plot_nn_histogram(diagnosis, pictures / "nn.png")
    yield '<section id="nn">\n<h2>Distances to the data</h2>\n'
    yield _figure(picture, "Each training example's distance to its nearest other example, and each minimum's "
                           "distance to its nearest training example. A minimum right of the dashed bar is off the "
                           "data.")
    yield "</section>\n"

    # plot_tree marks the minima the map's own diagnosis flags: draw it from a copy that
    # carries this one.
    picture = plot_tree(replace(content, diagnosis=diagnosis.to_data()), pictures / "tree.png")
    yield '<section id="tree">\n<h2>Barrier tree</h2>\n'
    yield _figure(picture, "The disconnectivity graph over the minima: each minimum is a leaf, coloured by its "
                           "basin at the map's main level; two groups join at the barrier between them. "
                           "Red: minima flagged spurious.")
    yield "</section>\n"

    if extra:
        yield '<section id="extra">\n<h2>More figures</h2>\n'
        for caption, data, mime in extra:
            yield f"<figure>{_img(data, mime, caption)}<figcaption>{_e(caption)}</figcaption></figure>\n"
        yield "</section>\n"

    yield f'<section id="flagged">\n<h2>Flagged minima ({n_flagged})</h2>\n'
    yield _flagged_table(content, diagnosis) + "</section>\n"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    yield f"<footer>Written by ebm-landscape {_e(__version__)} on {_e(when)}.</footer>\n</body>\n</html>\n"


def write_report(
    path: str | Path,
    content: MapContent,
    diagnosis: Diagnosis,
    data_x: np.ndarray,
    *,
    title: str | None = None,
    extra_figures: Sequence[tuple[str, str | Path]] = (),
    max_shown: int = 12,
) -> Path:
    """Write the spurious-minima report of a map as one self-contained HTML file.

    Sections: a summary (counts, chain share, reasons, bars, the criteria in words); the
    worst minima beside their nearest training examples (or, when none is flagged, the
    closest calls); the energy and nearest-neighbour histograms; the basin tree with the
    spurious basins in red; ``extra_figures``; a table of every flagged minimum. Pictures
    are embedded as base64 PNGs (about 100 dpi), the style inline: the file needs nothing
    else to be read.

    Parameters
    ----------
    path : str or Path
        The HTML file to write (its folder is created).
    content : MapContent
        The map. Its own ``diagnosis`` is not used; ``diagnosis`` is.
    diagnosis : Diagnosis
        Of ``content``'s minima against ``data_x`` (:func:`landscape.diagnosis.spurious.diagnose`).
    data_x : array [M, *shape]
        The training examples the diagnosis used (``diagnosis.nn_index`` points into them).
    title : str, optional
        Default ``"Spurious minima: "`` + :func:`landscape.plots.figures.describe_source`.
    extra_figures : sequence of (caption, path)
        Pictures (PNG; JPEG, GIF and SVG also work) embedded at the end, in order.
    max_shown : int
        Show at most this many flagged minima as pictures (the table lists them all).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    LandscapeError
        If the data, diagnosis and map do not belong together (shapes, counts), the map
        has no minima, an extra figure cannot be read, or ``max_shown`` < 1. The file is
        written to a temporary name and renamed onto ``path`` only when complete: on any
        error an existing report is left as it was.

    Examples
    --------
    >>> d = diagnose(content.minima_x, content.minima_energy, data_x, data_energy)  # doctest: +SKIP
    >>> write_report("report.html", content, d, data_x)  # doctest: +SKIP

    Cost: four or five matplotlib figures; the page holds each PNG base64-encoded (a third
    larger than the PNG).
    """
    path = Path(path)
    dx = _check(content, diagnosis, data_x)
    _check_max_shown(max_shown)
    extra = _read_extra(extra_figures)
    title = title if title is not None else f"Spurious minima: {describe_source(content)}"
    with atomic_output(path) as tmp, tempfile.TemporaryDirectory(prefix="landscape-report-") as folder:
        # Sections are written as they are drawn, so no more than one picture is held at
        # a time; atomic_output removes the half-written file if a picture fails.
        with tmp.open("w", encoding="utf-8") as out:
            for chunk in _page(content, diagnosis, dx, title, extra, max_shown, Path(folder)):
                out.write(chunk)
    return path
