"""Pictures of training: the diagnostics panels, image grids of samples, and the true and
learned densities of a 2-D model.

:func:`plot_training_diagnostics` draws the series :mod:`landscape.train.diagnostics`
analyses (Anatomy paper, sec. 3, Fig. 4); :func:`save_image_grid` writes a captioned grid
of image samples; :func:`plot_toy_density` compares a learned 2-D density with the true one.

Figures are matplotlib ``Figure`` objects on the Agg canvas (:func:`landscape.plots.common.new_figure`:
no pyplot, so a long training run never accumulates open figures), written atomically
(:func:`landscape.plots.common.save_figure`). Pictures of samples say where their chains
started and how many Langevin steps they ran.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

from landscape.io.files import atomic_path
from landscape.train.diagnostics import (
    autocorrelation,
    cross_correlation,
    detrend_linear,
    steady_window,
    summarize_oscillation,
)
from landscape.plots.common import SEPARATOR_RGB, chain_caption, new_figure, save_figure, wrap

__all__ = [
    "draw_correlations",
    "draw_energies",
    "draw_gap",
    "robust_limits",
    "plot_training_diagnostics",
    "save_image_grid",
    "plot_toy_density",
]

#: Fewest updates in the analysis window for the correlation panels to be drawn.
MIN_CORRELATION_POINTS = 10
#: Most points a line plot draws; longer series are decimated (min/max per bucket).
MAX_LINE_POINTS = 5000
#: Smallest tile side (pixels) of an image grid when ``scale`` is automatic.
MIN_TILE_PX = 48
#: Colour of non-finite pixels in an image grid (magenta: never a plausible image value).
NONFINITE_RGB = (255, 0, 255)
#: Narrowest captioned grid (pixels): a caption needs room for a few words per line.
MIN_CAPTION_PX = 320
#: Colour of the separators between tiles: a pale blue, apart from every grey (a mid-grey
#: separator vanished against the mid-grey pixels of zero in [-1, 1], and white-edged digits
#: ran into their neighbours across a 1-px line); the pictures' one separator colour.
BORDER_RGB = SEPARATOR_RGB
#: Separator width as a share of a tile's shorter side (at least one pixel): 3 px between
#: 48-px tiles.
GAP_SHARE = 1 / 16
#: Depth (nats) below the maximum at which log-density panels are clipped.
LOG_DENSITY_FLOOR = 12.0
#: Colour map of every log-density panel (low density dark, high bright).
LOG_DENSITY_CMAP = "magma"
#: Colour of samples drawn over a log-density (cyan: far from every colour of magma).
SAMPLE_DOT_COLOR = "#00e5ff"


def _decimate(n: int, y: np.ndarray, max_points: int = MAX_LINE_POINTS) -> np.ndarray:
    """Indices that keep each bucket's min and max, so an oscillation's envelope survives."""
    if n <= max_points:
        return np.arange(n)
    buckets = max_points // 2
    edges = np.linspace(0, n, buckets + 1).astype(np.int64)
    lo = np.where(np.isfinite(y), y, np.inf)
    hi = np.where(np.isfinite(y), y, -np.inf)
    idx = np.empty(2 * buckets, dtype=np.int64)
    for i in range(buckets):
        s, e = edges[i], edges[i + 1]
        a, b = s + int(np.argmin(lo[s:e])), s + int(np.argmax(hi[s:e]))
        idx[2 * i], idx[2 * i + 1] = min(a, b), max(a, b)
    return idx


def _running_mean(y: np.ndarray, k: int) -> np.ndarray:
    """Centred moving average over ``k`` updates that ignores non-finite entries."""
    ok = np.isfinite(y)
    vals = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    cnt = np.concatenate([[0], np.cumsum(ok)])
    n = y.size
    half = k // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) - half + k, 0, n)
    c = cnt[hi] - cnt[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(c > 0, (vals[hi] - vals[lo]) / np.maximum(c, 1), np.nan)


def _line_panel(ax: Any, step: np.ndarray, y: np.ndarray, color: str, label: str, log_if_wide: bool) -> None:
    y_plot = np.where(np.isfinite(y), y, np.nan)
    idx = _decimate(y.size, y_plot)
    ax.plot(step[idx], y_plot[idx], color=color, lw=0.6, alpha=0.35, label=f"{label} per update")
    if y.size >= 20:
        k = int(np.clip(y.size // 50, 2, 1000))
        rm = _running_mean(y_plot, k)
        sidx = np.linspace(0, y.size - 1, min(y.size, MAX_LINE_POINTS)).astype(np.int64)
        ax.plot(step[sidx], rm[sidx], color=color, lw=1.6, label=f"running mean ({k} updates)")
    elif y.size <= 5:
        ax.plot(step, y_plot, "o", color=color, ms=4)
    finite = y[np.isfinite(y)]
    if log_if_wide and finite.size and np.all(finite > 0) and finite.max() / finite.min() > 10.0:
        ax.set_yscale("log")
    _update_axis(ax)
    ax.legend(loc="best", fontsize=7)


#: Share of a series' updates, at the end, whose spread sets a robust y-range (the later
#: part of training, past the early transient).
LATE_SHARE = 0.5
#: A series whose full range is within this many times its later part's robust range is
#: drawn whole; beyond it the y-axis follows the later part and marks what is off-scale.
OFF_SCALE_RATIO = 3.0


def robust_limits(y: np.ndarray, late_share: float = LATE_SHARE, *,
                  include_zero: bool = True) -> tuple[float, float] | None:
    """Y-limits that show the later part of a training series (its last ``late_share``,
    between its 0.5th and 99.5th percentiles, padded by a fifth of that range, 0 included
    unless ``include_zero`` is False),
    or None where the whole finite series fits within ``OFF_SCALE_RATIO`` times that range
    (the axis' own limits then show everything) or is too short (under 20 updates)."""
    finite = y[np.isfinite(y)]
    if finite.size < 20:
        return None
    late = y[int(y.size * (1 - late_share)):]
    late = late[np.isfinite(late)]
    if late.size < 10:
        return None
    lo, hi = (float(v) for v in np.percentile(late, [0.5, 99.5]))
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = hi - lo
    if span <= 0:
        span = max(abs(lo), 1.0)
    if float(finite.max() - finite.min()) <= OFF_SCALE_RATIO * span:
        return None
    return lo - 0.2 * span, hi + 0.2 * span


def _mark_off_scale(ax: Any, step: np.ndarray, y: np.ndarray, limits: tuple[float, float], color: str) -> None:
    """Set ``limits`` on ``ax`` and mark the updates whose values lie beyond them: a
    triangle at the edge they cross, and a note of how many, from when, and their extremes."""
    lo, hi = limits
    ax.set_ylim(lo, hi)
    above, below = np.isfinite(y) & (y > hi), np.isfinite(y) & (y < lo)
    off = above | below
    if not off.any():
        return
    for mask, edge, marker in ((above, hi, "^"), (below, lo, "v")):
        if mask.any():
            idx = np.flatnonzero(mask)
            idx = idx[_decimate(idx.size, y[idx])]
            ax.plot(step[idx], np.full(idx.size, edge), marker, color=color, ms=4, clip_on=False, ls="none")
    steps = step[off]
    extremes = f"{_fmt(float(y[off].min()))} to {_fmt(float(y[off].max()))}"
    ax.text(0.99, 0.02, f"{int(off.sum())} update{'s' if off.sum() != 1 else ''} off-scale "
                        f"(triangles), among updates {int(steps.min())}-{int(steps.max())}: values {extremes};\n"
                        "y-range: the later half's 0.5-99.5th percentiles",
            transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    if ax.get_legend() is not None:  # (the note holds the lower right: the legend goes above it)
        ax.legend(loc="upper right", fontsize=7)


def draw_gap(ax: Any, step: np.ndarray, d: np.ndarray) -> None:
    """The energy gap d_st per update into ``ax``: a zero line, the series and its running
    mean; the y-axis follows the later part of training where an early transient would
    flatten it (:func:`robust_limits`), the off-scale updates marked."""
    ax.axhline(0.0, color="k", ls="--", lw=0.8)
    _line_panel(ax, step, d, "C0", r"$d_{s_t}$", log_if_wide=False)
    limits = robust_limits(d)
    if limits is not None:
        _mark_off_scale(ax, step, d, limits, "C0")
    ax.set_title(r"energy gap $d_{s_t} = \overline{U}(X^+) - \overline{U}(X^-)$")
    ax.set_ylabel(r"$d_{s_t}$ (energy units)")


def _follow_later_part(ax: Any, step: np.ndarray, y: np.ndarray, color: str) -> None:
    """On a linear axis, the y-range of :func:`draw_gap`: the later part of training where
    an early transient would flatten the rest, the off-scale updates marked."""
    if ax.get_yscale() != "linear":
        return
    limits = robust_limits(y)
    if limits is not None:
        finite = y[np.isfinite(y)]
        if finite.size and finite.min() >= 0:  # (no room below zero for a series that cannot go there)
            limits = (max(limits[0], 0.0), limits[1])
        _mark_off_scale(ax, step, y, limits, color)


def _update_axis(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    # Few integer ticks: update counts of 200,000 would otherwise overlap.
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    ax.set_xlabel("training update")
    ax.grid(alpha=0.3)


def _significance_band(ax: Any, n: int) -> None:
    # Approximate 95 % band of a white-noise series' sample correlations (+-1.96 / sqrt(n)).
    b = 1.96 / math.sqrt(n)
    ax.axhspan(-b, b, color="0.85", zorder=0, label=r"white noise 95% ($\pm 1.96/\sqrt{n}$)")


def _note(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def _fmt(v: float) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.4g}"


def _training_series(
    metrics: Mapping[str, np.ndarray], window: int, max_lag: int
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The metrics as float64 series of one length, and the update numbers (1..n by
    default); ValueError naming what is missing or inconsistent."""
    for key in ("d_st", "v_t", "r_t"):
        if key not in metrics:
            raise ValueError(f"metrics lack the series {key!r} (have: {sorted(metrics)})")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    series = {k: np.asarray(v, dtype=np.float64).reshape(-1) for k, v in metrics.items() if v is not None}
    n = series["d_st"].size
    if n == 0:
        raise ValueError("metrics hold no updates to plot")
    step = series.get("step", np.arange(1, n + 1, dtype=np.float64))
    for key in ("step", "d_st", "v_t", "r_t", "energy_pos", "energy_neg"):
        if key in series and series[key].size != n:
            raise ValueError(f"metrics series {key!r} has {series[key].size} entries, d_st has {n}")
    return series, step


def draw_correlations(ax_auto: Any, ax_cross: Any, d: np.ndarray, v: np.ndarray, max_lag: int) -> None:
    """Autocorrelations of ``d`` (d_st) and ``v`` (v_t) at lags 0..max_lag into
    ``ax_auto``, their cross-correlation ``corr(d[t], v[t+k])`` into ``ax_cross``, each with
    the white-noise 95 % band; a note instead where the series are too short or not finite.

    v_t drifts over training (the network's gradients grow or shrink slowly), and a
    drift alone gives a large autocorrelation at every lag, hiding the short-lag
    oscillation the Anatomy paper reads from it: its autocorrelation is taken of v_t minus
    its least-squares line over the window (:func:`detrend_linear`). d_st, which
    oscillates about 0, and the cross-correlation are taken as they are, as in
    :func:`~landscape.train.diagnostics.summarize_oscillation`."""
    corr_ok = d.size >= MIN_CORRELATION_POINTS and bool(np.all(np.isfinite(d)) and np.all(np.isfinite(v)))
    lag_note = (
        f"correlations need at least {MIN_CORRELATION_POINTS} finite updates\n"
        f"(have {d.size} in the window): skipped"
    )
    if corr_ok:
        ad = autocorrelation(d, max_lag)
        av = autocorrelation(detrend_linear(v), max_lag)
        lags = np.arange(ad.size)
        _significance_band(ax_auto, d.size)
        ax_auto.bar(lags - 0.2, ad, width=0.4, color="C0", label=r"$d_{s_t}$")
        ax_auto.bar(lags + 0.2, av, width=0.4, color="C1", label=r"$v_t$ minus its linear trend")
        ax_auto.axhline(0.0, color="k", lw=0.6)
        ax_auto.set_xlabel("lag $k$ (updates)")
        ax_auto.set_ylabel("autocorrelation")
        ax_auto.set_ylim(-1.05, 1.4)  # headroom keeps the legend off the bars
        ax_auto.legend(loc="upper center", ncol=3, fontsize=7)

        lags, cc = cross_correlation(d, v, max_lag)
        _significance_band(ax_cross, d.size)
        ax_cross.bar(lags, cc, width=0.7, color="C4")
        ax_cross.axhline(0.0, color="k", lw=0.6)
        ax_cross.set_xlabel(r"lag $k$ (updates; $k > 0$: $v$ after $d$)")
        ax_cross.set_ylabel("correlation")
        ax_cross.set_ylim(-1.05, 1.4)
        ax_cross.legend(loc="upper center", fontsize=7)
    else:
        _note(ax_auto, lag_note)
        _note(ax_cross, lag_note)
    ax_auto.set_title(f"autocorrelation, last {d.size} updates ($v_t$ detrended)")
    ax_cross.set_title(r"cross-correlation corr($d_{s_t}$, $v_{t+k}$)")


def draw_energies(ax: Any, step: np.ndarray, e_pos: np.ndarray, e_neg: np.ndarray) -> None:
    """Mean energies of the data and of the short-run samples per update into ``ax``."""
    n = step.size
    # Samples first: their noisier line would otherwise hide the data's.
    lines = ((e_neg, "C9", r"samples $\overline{U}(X^-)$"), (e_pos, "C3", r"data $\overline{U}(X^+)$"))
    for y, color, label in lines:
        y_plot = np.where(np.isfinite(y), y, np.nan)
        idx = _decimate(n, y_plot)
        marker = "o" if n <= 5 else None  # a line of 1 point is invisible
        ax.plot(step[idx], y_plot[idx], color=color, lw=0.8, label=label, marker=marker, ms=3)
    _update_axis(ax)
    # (an early transient, the energies of the first updates, would flatten the rest)
    found = [lim for lim in (robust_limits(y, include_zero=False) for y, _, _ in lines) if lim is not None]
    if found:
        ax.set_ylim(min(lo for lo, _ in found), max(hi for _, hi in found))
        ax.text(0.99, 0.02, "y-range: the later half's 0.5-99.5th percentiles (earlier updates off-scale)",
                transform=ax.transAxes, ha="right", va="bottom", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})
    ax.set_ylabel("mean energy")
    ax.legend(loc="best", fontsize=7)
    ax.set_title("energies of data and short-run samples")


def plot_training_diagnostics(
    metrics: Mapping[str, np.ndarray],
    path: str | os.PathLike,
    *,
    window: int | None = None,
    max_lag: int = 15,
    title: str | None = None,
    init: str | None = None,
    steps: int | None = None,
) -> Path:
    """One picture of the ML-learning diagnostics (Anatomy paper, sec. 3, Fig. 4).

    Panels (2 x 3): d_st per update with a zero line and a running mean (its y-axis set
    by the later half of training where an early transient would flatten the rest, the
    off-scale updates marked: :func:`draw_gap`); v_t; r_t (log scale when positive and
    spanning more than a decade; v_t likewise); autocorrelations of d_st and of v_t minus
    its linear trend at lags 0..max_lag over the last ``window`` updates; their
    cross-correlation ``corr(d_st[t], v_t[t+k])`` at k = -max_lag..max_lag; and the mean
    energies of data and samples per update when ``energy_pos`` and ``energy_neg`` are
    given, else the :func:`summarize_oscillation` numbers as text. Correlation bars carry
    the approximate 95 % band of white noise. Series shorter than
    ``MIN_CORRELATION_POINTS`` get a note instead of correlation panels; line plots of
    long series are decimated to at most ``MAX_LINE_POINTS`` points (min and max per
    bucket, so the oscillation's envelope is kept).

    Parameters
    ----------
    metrics : mapping of str -> array
        Equal-length 1-D series: ``d_st``, ``v_t``, ``r_t`` and ideally ``step`` (defaults
        to 1..n); optionally ``energy_pos``, ``energy_neg``. Other keys are ignored.
    path : path-like
        Where to write the picture (format by suffix, usually .png; the folder is created).
    window : int, optional
        Number of most recent updates the statistics use; by default the steady state's
        (:func:`landscape.train.diagnostics.steady_window`: the last half, at most 2,000),
        as the checkpoint's summary that ``landscape info`` shows.
    max_lag : int
        Largest lag of the correlation panels.
    title : str, optional
        Figure title: the model (e.g. ``"digits_convergent on digits"``).
    init, steps : optional
        Where the short-run chains of each update started (``"noise"``, ``"data"``,
        ``"persistent"``) and their Langevin steps: the caption under the title.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If a required series is missing, the series are empty or of unequal lengths, or
        ``window`` < 1 or ``max_lag`` < 0.

    Cost: O(n) plus one matplotlib figure (well under a second for 200,000 updates).
    """
    if window is None:
        window = steady_window(np.asarray(metrics["d_st"]).size) if "d_st" in metrics else 1
    series, step = _training_series(metrics, window, max_lag)
    n = step.size
    d, v, r = series["d_st"], series["v_t"], series["r_t"]
    start = max(0, n - window)
    dw, vw = d[start:], v[start:]
    summary = summarize_oscillation(dw, vw)

    fig = new_figure(16, 9)
    axes = fig.subplots(2, 3)
    draw_gap(axes[0, 0], step, d)

    ax = axes[0, 1]
    _line_panel(ax, step, v, "C1", r"$v_t$", log_if_wide=True)
    _follow_later_part(ax, step, v, "C1")
    ax.set_title(r"gradient strength $v_t$ (mean $\Vert\partial U/\partial x\Vert_2$ along chains)")
    ax.set_ylabel(r"$v_t$ (energy / data unit)")

    ax = axes[0, 2]
    _line_panel(ax, step, r, "C2", r"$r_t$", log_if_wide=True)
    _follow_later_part(ax, step, r, "C2")
    ax.set_title(r"gradient displacement $r_t = \frac{\varepsilon^2}{2} v_t$ per Langevin step")
    ax.set_ylabel(r"$r_t$ (data units per step)")

    draw_correlations(axes[1, 0], axes[1, 1], dw, vw, max_lag)
    e_pos, e_neg = series.get("energy_pos"), series.get("energy_neg")
    if e_pos is not None and e_neg is not None and np.isfinite(e_pos).any() and np.isfinite(e_neg).any():
        draw_energies(axes[1, 2], step, e_pos, e_neg)
    else:
        ax = axes[1, 2]
        lines = [f"last {dw.size} updates"] + [f"{k}: {_fmt(val)}" for k, val in summary.items()]
        ax.text(0.05, 0.95, "\n".join(lines), ha="left", va="top", family="monospace", fontsize=9,
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title("oscillation summary")

    head = (
        f"last {dw.size} of {n} updates: $d_{{s_t}}$ {_fmt(summary['d_st_mean'])} $\\pm$ "
        f"{_fmt(summary['d_st_std'])}, lag-1 autocorr {_fmt(summary['d_st_lag1_autocorr'])}, "
        f"sign changes/100 {_fmt(summary['sign_changes_per_100'])}, "
        f"corr($d_{{s_t}}$, $v_t$) {_fmt(summary['corr_dst_vt_lag0'])}"
    )
    lines = [title or "training diagnostics"]
    if init is not None or steps is not None:
        lines.append(f"negative samples per update: {chain_caption(steps, init)}")
    lines.append(head)
    fig.suptitle("\n".join(lines), fontsize=11)
    # Fixed margins: tight_layout would draw the figure a second time (half the cost).
    top = 1 - (0.45 + 0.25 * len(lines)) / 9  # room for the title lines above the panel titles
    fig.subplots_adjust(left=0.06, right=0.985, bottom=0.07, top=top, wspace=0.28, hspace=0.38)
    for ax in axes.ravel():
        ax.title.set_fontsize(10)  # the longest panel titles fit their panel's width
    return save_figure(fig, path, dpi=100, tight=False)


def save_image_grid(
    x: torch.Tensor,
    path: str | os.PathLike,
    *,
    nrow: int | None = None,
    scale: int | None = None,
    value_range: tuple[float, float] = (-1.0, 1.0),
    labels: Sequence[str] | None = None,
    caption: str | None = None,
) -> Path:
    """Write a batch of images as one PNG grid, captioned with what they are.

    Tiles are laid out row by row, ``nrow`` per row, separated by pale blue lines ``gap``
    pixels wide (:data:`GAP_SHARE` of a tile's shorter side, at least 1; no outer frame);
    unused cells are white. Values map linearly from ``value_range`` to 0..255 and
    are clamped; pixels with any non-finite channel are drawn magenta so that a diverged
    sample is visible rather than silently clipped. Images are upscaled by an integer
    nearest-neighbour factor ``scale``. A ``caption`` (the model, where the chains started,
    how many steps they ran: :func:`landscape.plots.common.chain_caption`) is written in a
    white strip above the tiles, wrapped to the grid's width, and kept in the PNG's
    ``Title`` text chunk.

    The PNG is ``ncol * W * scale + (ncol - 1) * gap`` pixels wide and
    ``caption_h + nrows * (H * scale + label_h) + (nrows - 1) * gap`` high, where
    ``ncol = min(nrow, B)``, ``nrows = ceil(B / nrow)`` and ``label_h`` and ``caption_h``
    are 0 without labels and caption (a captioned grid is at least ``MIN_CAPTION_PX`` wide).

    Parameters
    ----------
    x : Tensor, shape [B, C, H, W]
        Images, C = 1 (grey) or 3 (RGB), on any device.
    path : path-like
        Where to write the PNG.
    nrow : int, optional
        Images per row; default ``ceil(sqrt(B))``.
    scale : int, optional
        Upscaling factor; default the smallest integer making tiles at least
        ``MIN_TILE_PX`` pixels on their shorter side (1 for large images).
    value_range : (low, high)
        Values shown as black and white.
    labels : sequence of str, optional
        One caption per image, written in a strip under its tile (truncated to fit).
    caption : str, optional
        What the grid shows, written above it.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        On a wrong shape, channel count, empty batch, ``nrow`` or ``scale`` < 1, an empty
        value range, or a label count that differs from B.

    Example
    -------
    >>> save_image_grid(torch.rand(10, 1, 8, 8) * 2 - 1, "grid.png")  # doctest: +SKIP
    """
    from PIL import Image, ImageDraw, ImageFont
    from PIL.PngImagePlugin import PngInfo

    from landscape.errors import LandscapeError

    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must have shape [B, C, H, W] with C 1 or 3, got {list(x.shape)}")
    b, c, h, w = (int(s) for s in x.shape)
    if b == 0 or h == 0 or w == 0:
        raise ValueError(f"no pixels to draw in a batch of shape {list(x.shape)}")
    low, high = float(value_range[0]), float(value_range[1])
    if not high > low:
        raise ValueError(f"value_range must satisfy low < high, got {value_range}")
    if labels is not None and len(labels) != b:
        raise ValueError(f"got {len(labels)} labels for {b} images")
    nrow = math.ceil(math.sqrt(b)) if nrow is None else int(nrow)
    if nrow < 1:
        raise ValueError(f"nrow must be >= 1, got {nrow}")
    if scale is None:
        scale = max(1, math.ceil(MIN_TILE_PX / min(h, w)))
    elif scale < 1:
        raise ValueError(f"scale must be >= 1, got {scale}")

    a = x.detach().to("cpu", torch.float64).numpy()
    bad = ~np.isfinite(a).all(axis=1)  # [B, H, W]
    with np.errstate(invalid="ignore"):
        u8 = np.rint(np.clip((np.nan_to_num(a) - low) / (high - low), 0.0, 1.0) * 255.0).astype(np.uint8)
    rgb = np.repeat(u8, 3, axis=1) if c == 1 else u8
    rgb = np.ascontiguousarray(rgb.transpose(0, 2, 3, 1))  # [B, H, W, 3]
    rgb[bad] = NONFINITE_RGB
    if scale > 1:
        rgb = rgb.repeat(scale, axis=1).repeat(scale, axis=2)
    th, tw = h * scale, w * scale
    gap = max(1, int(min(th, tw) * GAP_SHARE))

    font = ImageFont.load_default() if labels is not None else None
    label_h = 0
    if labels is not None:
        box = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), "Ag", font=font)
        label_h = int(box[3] - box[1]) + 4
    ncol = min(nrow, b)
    nrows = math.ceil(b / nrow)
    cell_h = th + label_h
    canvas = np.empty((nrows * cell_h + (nrows - 1) * gap, ncol * tw + (ncol - 1) * gap, 3), dtype=np.uint8)
    canvas[:] = BORDER_RGB
    if b < ncol * nrows:  # (the cells past the last image, and the gaps between them: blank, not separator)
        r0, c0 = (b // nrow) * (cell_h + gap), (b % nrow) * (tw + gap)
        canvas[r0 : r0 + cell_h, c0:] = 255
    for i in range(b):
        r0, c0 = (i // nrow) * (cell_h + gap), (i % nrow) * (tw + gap)
        canvas[r0 : r0 + th, c0 : c0 + tw] = rgb[i]
        if label_h:
            canvas[r0 + th : r0 + cell_h, c0 : c0 + tw] = 0
    img = Image.fromarray(canvas)
    if labels is not None:
        draw = ImageDraw.Draw(img)
        for i, text in enumerate(labels):
            text = str(text)
            while text and draw.textlength(text, font=font) > tw - 2:
                text = text[:-1]
            r0, c0 = (i // nrow) * (cell_h + gap), (i % nrow) * (tw + gap)
            draw.text((c0 + 1, r0 + th + 1), text, fill=(255, 255, 255), font=font)
    info = None
    if caption:
        img = _captioned(img, caption)
        info = PngInfo()
        info.add_text("Title", caption)
    path = Path(path)
    kind = Image.registered_extensions().get(path.suffix.lower())
    if kind is None or kind not in Image.SAVE:
        raise LandscapeError(f"{path}: cannot write a grid of images as {path.suffix or '(no suffix)'}: use .png")
    with atomic_path(path) as tmp:
        if kind == "PNG":
            img.save(os.fspath(tmp), format="PNG", pnginfo=info)
        else:
            img.save(os.fspath(tmp), format=kind)
    return path


def _fitting_pieces(words: list[str], measure: Any, font: Any, width: float) -> list[str]:
    """``words``, each one wider than ``width`` (a long path) cut into pieces that fit."""
    out = []
    for word in words:
        while measure.textlength(word, font=font) > width and len(word) > 1:
            k = len(word) - 1
            while k > 1 and measure.textlength(word[:k], font=font) > width:
                k -= 1
            out.append(word[:k])
            word = word[k:]
        out.append(word)
    return out


def _captioned(img: Any, caption: str) -> Any:
    """``img`` below a white strip with ``caption`` in black, wrapped to its width (a grid
    narrower than ``MIN_CAPTION_PX`` is centred on a white canvas that wide)."""
    from PIL import Image, ImageDraw, ImageFont

    width = max(img.size[0], MIN_CAPTION_PX)
    try:  # a scalable font sized to the grid (Pillow >= 10.1 with FreeType)
        font = ImageFont.load_default(size=int(np.clip(width / 40, 10, 16)))
    except (TypeError, ImportError, OSError):
        font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for paragraph in caption.split("\n"):
        line = ""
        for word in _fitting_pieces(paragraph.split(), measure, font, width - 6):
            trial = f"{line} {word}".strip()
            if line and measure.textlength(trial, font=font) > width - 6:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    box = measure.textbbox((0, 0), "Ag", font=font)
    line_h = int(box[3] - box[1]) + 3
    strip = len(lines) * line_h + 6
    out = Image.new("RGB", (width, img.size[1] + strip), (255, 255, 255))
    out.paste(img, ((width - img.size[0]) // 2, strip))
    draw = ImageDraw.Draw(out)
    for k, line in enumerate(lines):
        draw.text((3, 3 + k * line_h - box[1]), line, fill=(0, 0, 0), font=font)
    return out


def plot_toy_density(
    xs: np.ndarray,
    ys: np.ndarray,
    log_q: np.ndarray,
    log_p: np.ndarray,
    path: str | os.PathLike,
    *,
    samples: np.ndarray | None = None,
    title: str | None = None,
    kl: float | None = None,
    init: str | None = None,
    steps: int | None = None,
) -> Path:
    """One picture comparing a true 2-D density with a learned one (and short-run samples).

    Top row: true density ``q``, learned density ``p`` (each normalised on the grid), and
    with ``samples`` a 2-D histogram of them over the same box. Bottom row: ``log q`` and
    ``log p`` clipped ``LOG_DENSITY_FLOOR`` nats below their maxima (where the tails and
    spurious modes show), and the samples scattered over the learned log-density, in the
    same colours and with the same colour bar as ``log p`` beside it.

    Parameters
    ----------
    xs, ys : array, shape [nx], [ny]
        Grid coordinates (as from :func:`energy_grid`).
    log_q, log_p : array, shape [ny, nx]
        Log-densities, rows along y.
    path : path-like
        Where to write the picture (format by suffix, usually .png; the folder is created).
    samples : array, shape [N, 2], optional
        Short-run samples; non-finite rows are dropped (and counted in the panel title).
    title : str, optional
        Figure title: the model (e.g. ``"toy_rings: true vs learned density"``).
    kl : float, optional
        ``KL(q || p)``, stated in the title.
    init, steps : optional
        Where the samples' chains started and their Langevin steps, for the samples'
        caption.

    Returns
    -------
    Path

    Raises
    ------
    ValueError
        If the grid shapes disagree or ``samples`` is not ``[N, 2]``.
    """
    xs = np.asarray(xs, dtype=np.float64)
    ys = np.asarray(ys, dtype=np.float64)
    lq = np.asarray(log_q, dtype=np.float64)
    lp = np.asarray(log_p, dtype=np.float64)
    if xs.ndim != 1 or ys.ndim != 1 or xs.size < 2 or ys.size < 2:
        raise ValueError("xs and ys must be 1-D grids of at least 2 points")
    if lq.shape != (ys.size, xs.size) or lp.shape != lq.shape:
        raise ValueError(
            f"log densities must have shape [len(ys), len(xs)] = [{ys.size}, {xs.size}], "
            f"got {list(lq.shape)} and {list(lp.shape)}"
        )
    s = None
    dropped = 0
    if samples is not None:
        s = np.asarray(samples, dtype=np.float64)
        if s.ndim != 2 or s.shape[1] != 2:
            raise ValueError(f"samples must have shape [N, 2], got {list(s.shape)}")
        ok = np.isfinite(s).all(axis=1)
        dropped = int((~ok).sum())
        s = s[ok]

    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    extent = (xs[0] - 0.5 * (xs[1] - xs[0]), xs[-1] + 0.5 * (xs[1] - xs[0]),
              ys[0] - 0.5 * (ys[1] - ys[0]), ys[-1] + 0.5 * (ys[1] - ys[0]))

    def normalised(a: np.ndarray) -> np.ndarray:
        # Display densities in the same units whatever the caller's normalisation.
        finite = np.isfinite(a)
        if not finite.any():
            return np.full_like(a, np.nan)
        b = np.where(np.isnan(a), -np.inf, a)
        return b - logsumexp(b[finite]) - math.log(abs(cell))

    nq, np_ = normalised(lq), normalised(lp)
    ncols = 3 if s is not None else 2
    fig = new_figure(4.6 * ncols, 8.4)
    axes = fig.subplots(2, ncols, squeeze=False)
    panels = ((nq, "true density $q(x)$", "log true density $\\log q(x)$"),
              (np_, r"learned density $p_\theta(x) \propto e^{-U(x)}$", r"log learned density $\log p_\theta(x)$"))
    for col, (ld, t_top, t_bot) in enumerate(panels):
        ax = axes[0, col]
        im = ax.imshow(np.exp(ld), origin="lower", extent=extent, cmap="viridis", aspect="equal")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        ax.set_title(t_top)
        ax = axes[1, col]
        top = np.nanmax(ld) if np.isfinite(ld).any() else 0.0
        floor = top - LOG_DENSITY_FLOOR
        im = ax.imshow(np.clip(np.nan_to_num(ld, nan=floor, neginf=floor), floor, None), origin="lower",
                       extent=extent, cmap=LOG_DENSITY_CMAP, vmin=floor, vmax=top, aspect="equal")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="nats")
        ax.set_title(f"{t_bot}, floor max$-${LOG_DENSITY_FLOOR:g}")
    if s is not None:
        lo_x, hi_x, lo_y, hi_y = extent
        inside = (s[:, 0] >= lo_x) & (s[:, 0] <= hi_x) & (s[:, 1] >= lo_y) & (s[:, 1] <= hi_y)
        extra = f"; {int((~inside).sum())} outside box" if (~inside).any() else ""
        extra += f"; {dropped} non-finite dropped" if dropped else ""
        ax = axes[0, 2]
        if s.shape[0]:
            bins = int(np.clip(math.sqrt(s.shape[0]), 10, 100))
            *_, image = ax.hist2d(s[:, 0], s[:, 1], bins=bins, range=[[lo_x, hi_x], [lo_y, hi_y]], cmap="viridis")
            fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="samples per bin")
        ax.set_xlim(lo_x, hi_x)
        ax.set_ylim(lo_y, hi_y)
        ax.set_aspect("equal")
        ax.set_title(wrap(f"short-run samples: {chain_caption(steps, init, n=s.shape[0])}{extra}", 3.0, 9),
                     fontsize=9)
        ax = axes[1, 2]
        top = np.nanmax(np_) if np.isfinite(np_).any() else 0.0
        floor = top - LOG_DENSITY_FLOOR
        # the colours of the log-density panels beside it (dark: low density), and dots
        # in a colour that magma has at neither end
        im = ax.imshow(np.clip(np.nan_to_num(np_, nan=floor, neginf=floor), floor, None), origin="lower",
                       extent=extent, cmap=LOG_DENSITY_CMAP, vmin=floor, vmax=top, aspect="equal")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="nats")
        if s.shape[0]:
            ax.scatter(s[:, 0], s[:, 1], s=3, c=SAMPLE_DOT_COLOR, alpha=0.6, linewidths=0)
        ax.set_xlim(lo_x, hi_x)
        ax.set_ylim(lo_y, hi_y)
        ax.set_title(r"the same samples over $\log p_\theta$", fontsize=9)
    for ax in axes.ravel():
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_2$")
    head = title or "true vs learned density"
    if kl is not None:
        head += f"   KL(q $\\Vert$ p) = {kl:.4g} nats"
    fig.suptitle(head)
    fig.subplots_adjust(left=0.07, right=0.95, bottom=0.07, top=0.9, wspace=0.45, hspace=0.3)
    # (the layout above holds every label: no tight box, whose extra drawing took half the time)
    return save_figure(fig, path, dpi=100, tight=False)
