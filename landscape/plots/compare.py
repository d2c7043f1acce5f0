"""Two maps side by side on one figure (the picture of ``landscape compare``).

The numbers come from :func:`landscape.diagnosis.compare.map_profile`; this module draws
them, both models in each panel (A blue, B orange):

- :func:`draw_basin_counts`: the number of basins against the magnetization multiplier;
- :func:`draw_barrier_spectra`: the empirical CDF of the top-level barriers in kT (and of
  those at refined saddles alone, where the others are estimates);
- :func:`draw_funnel_scores`: the funnel probe's ``exp(H)`` against the noise level;
- :func:`draw_spurious_shares`: the spurious share per reason;
- :func:`draw_image_row`: one model's pictures (samples, or its fullest basins) in a row;
- :func:`draw_comparison`: all of it on one figure; :func:`plot_comparison` saves it.

A panel with nothing to draw for either model says so in words, with no empty axes.
Whatever the lengths of the two names, the figure's text stays inside it and off the data:
the title (with the full names) wraps to the figure's width; legends, notes and axis
labels write a name of more than 32 characters shortened in its middle (keeping what
tells the two apart, else "A" and "B", which the title then names); each legend goes
where it covers no line, point, bar or text of its panel, above the data where no corner
is free.
"""

from __future__ import annotations

import math

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landscape.diagnosis.compare import MAX_PICTURES, map_profile
from landscape.errors import LandscapeError
from landscape.io.records import MapContent
from landscape.io.views import TOO_FEW_CHAINS, data_range, minima_kind
from landscape.plots.common import (
    check_picture_path,
    empty_panel,
    fall_slope,
    image_mosaic,
    new_figure,
    renderer_of,
    save_figure,
    size_inches,
    wrap,
)

__all__ = [
    "COLORS",
    "draw_barrier_spectra",
    "draw_basin_counts",
    "draw_comparison",
    "draw_funnel_scores",
    "draw_image_row",
    "draw_spurious_shares",
    "plot_comparison",
]

#: Colours of the two sides.
COLORS = ("tab:blue", "tab:orange")
#: Images without a map to say their range are shown as our data are scaled: [-1, 1].
_DEFAULT_RANGE = (-1.0, 1.0)
Profiles = Sequence[Mapping[str, Any] | None]


def _plain(axis: Any) -> None:
    """Plain numbers on a log axis (0.3, 10, 100), not 3x10^-1; the 2s and 5s between the
    powers of ten labelled only where the axis spans few decades (over many they would
    overlap). Call after the data are drawn."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    lo, hi = sorted(axis.get_view_interval())
    decades = math.log10(hi / lo) if lo > 0 else math.inf
    fmt = FuncFormatter(lambda x, pos: f"{x:g}")
    axis.set_major_locator(LogLocator(numticks=8))
    axis.set_major_formatter(fmt)
    axis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
    axis.set_minor_formatter(fmt if decades <= 2.5 else NullFormatter())


def _side_notes(ax: Any, notes: list[str], y: float = 0.01) -> None:
    """What a side lacks, in small grey type at the panel's edge."""
    if notes:
        ax.text(0.01, y, "; ".join(notes), transform=ax.transAxes, fontsize=7, color="0.35",
                va="bottom" if y < 0.5 else "top")


def _why(notes: list[str]) -> str:
    return f"\n({'; '.join(notes)})" if notes else ""


# ------------------------------------------------------------------ names and legends

#: The longest side name legends, notes and axis labels write in full; a longer one keeps
#: its start and its (distinguishing) end, an ellipsis between. The title has the full names.
_NAME_CHARS = 32
_ELLIPSIS = "\u2026"


def _cut(name: str, limit: int = _NAME_CHARS) -> str:
    """``name`` in at most ``limit`` characters: its start, an ellipsis, its end (the
    longer part, where run names say their step, seed or side)."""
    if len(name) <= limit:
        return name
    head = (limit - 1) * 2 // 5
    tail = limit - 1 - head
    return name[:head] + _ELLIPSIS + name[len(name) - tail:]


def _cut_around(name: str, at: int, limit: int = _NAME_CHARS) -> str:
    """``name`` in at most ``limit`` characters keeping its start, its end and the part
    from about ``at`` (where it differs from the other name)."""
    if len(name) <= limit:
        return name
    head, tail = 6, 8
    width = limit - head - tail - 2
    start = max(head, min(at - 4, len(name) - tail - width))
    middle = name[start:start + width]
    return (name[:head] + (_ELLIPSIS if start > head else "") + middle
            + (_ELLIPSIS if start + width < len(name) - tail else "") + name[len(name) - tail:])


def _side_labels(names: Sequence[str]) -> list[str]:
    """The two sides' names as the legends, notes and axis labels of the figure write them:
    in full up to 32 characters; a longer one as its start and end with an ellipsis between
    (``digits_conver…ates_run_A``), or, where that makes the two alike, with the part where
    they differ; where even that does not tell them apart, ``"A"`` and ``"B"`` (the title
    then says which is which). The title writes the names in full."""
    names = [str(n) for n in names]
    if all(len(n) <= _NAME_CHARS for n in names) or len(names) != 2:
        return names
    cut = [_cut(n) for n in names]
    if cut[0] != cut[1]:
        return cut
    a, b = names
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    cut = [_cut_around(n, at) for n in names]
    return cut if cut[0] != cut[1] else ["A", "B"]


#: Where a legend may go inside its panel, in the order tried.
_LOCS = ("upper right", "upper left", "lower left", "lower right", "center right", "center left", "upper center",
         "lower center", "center")


def _obstacles(ax: Any, renderer: Any) -> tuple[list[Any], list[Any], list[Any]]:
    """What a legend must not cover in ``ax``, in display coordinates: the drawn lines as
    paths (steps as drawn), boxes round their markers, the bars and the texts; and the
    subset of those boxes that move with the data (not the notes pinned to the frame)."""
    from matplotlib.cbook import STEP_LOOKUP_MAP
    from matplotlib.path import Path as MplPath
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

    paths, boxes, moving = [], [], []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=np.float64)
        if not line.get_visible() or not xy.size:
            continue
        style = line.get_drawstyle() or "default"
        if style != "default" and style in STEP_LOOKUP_MAP:
            xy = np.column_stack(STEP_LOOKUP_MAP[style](xy[:, 0], xy[:, 1]))
        d = np.clip(line.get_transform().transform(xy), -1e6, 1e6)  # (log 0: far off the axes)
        paths.append(MplPath(d))
        if line.get_marker() not in (None, "None", "none", "", " "):
            r = renderer.points_to_pixels(line.get_markersize()) / 2
            for x, y in d[np.isfinite(d).all(axis=1)]:
                box = Bbox.from_extents(x - r, y - r, x + r, y + r)
                boxes.append(box)
                moving.append(box)
    for patch in ax.patches:
        if patch.get_visible():
            box = patch.get_window_extent(renderer)
            boxes.append(box)
            moving.append(box)
    for text in ax.texts:
        if text.get_visible() and text.get_text().strip():
            box = text.get_window_extent(renderer)
            boxes.append(box)
            if isinstance(text, Annotation) or text.get_transform() is not ax.transAxes:
                moving.append(box)
    return paths, boxes, moving


def _clashes(box: Any, paths: list[Any], boxes: list[Any]) -> int:
    """How many of the lines and boxes ``box`` touches."""
    return sum(bool(p.intersects_bbox(box, filled=False)) for p in paths) + sum(bool(box.overlaps(b)) for b in boxes)


def _make_room(ax: Any, needed: float, paths: list[Any], moving: list[Any]) -> bool:
    """Raise the top of ``ax``'s y range (in its own scale: log stays log) so that the data
    leave ``needed`` pixels free under the frame's top; False where they do already."""
    frame = ax.bbox
    tops = [b.y1 for b in moving]
    for p in paths:
        v = p.vertices
        inside = np.isfinite(v).all(axis=1) & (v[:, 0] >= frame.x0) & (v[:, 0] <= frame.x1)
        if inside.any():
            tops.append(float(v[inside, 1].max()))
    if not tops:
        return False
    top = min(max(tops), frame.y1)
    used, free = (top - frame.y0) / frame.height, (frame.height - needed) / frame.height
    if top <= frame.y1 - needed or free <= 0.2 or used <= 0:
        return False
    scale = ax.yaxis.get_transform()
    lo, hi = ax.get_ylim()
    t_lo, t_hi = scale.transform(np.array([lo, hi], dtype=np.float64))
    new_hi = float(scale.inverted().transform(np.array([t_lo + (t_hi - t_lo) * used / free]))[0])
    if not math.isfinite(new_hi) or new_hi <= hi:
        return False
    ax.set_ylim(lo, new_hi)
    return True


def _place_legend(ax: Any, locs: Sequence[str] = _LOCS, **style: Any) -> Any:
    """``ax``'s legend where it covers none of the panel's lines, points, bars or texts and
    stays inside the frame: the first place of ``locs`` that is free; where none is, the
    top of the y range is raised (a log axis in decades) until the data leave room for it
    above them. A legend of several columns wider than the panel gets one. Call after the
    data, limits and texts are drawn; return the legend."""
    style = {"fontsize": 7, **style}
    renderer = renderer_of(ax.figure)
    ax.get_xlim(), ax.get_ylim()  # (the limits as they are drawn)
    fewest: tuple[int, str] | None = None
    legend = ax.legend(loc=locs[0], **style)
    for _ in range(4):
        frame = ax.get_window_extent(renderer)
        paths, boxes, moving = _obstacles(ax, renderer)
        fewest = None
        tallest = 0.0
        for loc in locs:
            legend.set_loc(loc)  # (one legend moved about: a new one each time costs more than all the rest)
            box = legend.get_window_extent(renderer)
            if box.width > frame.width and style.get("ncol", 1) > 1:
                style["ncol"] = 1
                legend = ax.legend(loc=loc, **style)
                box = legend.get_window_extent(renderer)
            tallest = max(tallest, box.height)
            outside = box.x0 < frame.x0 - 0.5 or box.x1 > frame.x1 + 0.5 or box.y0 < frame.y0 - 0.5 \
                or box.y1 > frame.y1 + 0.5
            n = _clashes(box.padded(renderer.points_to_pixels(1.5)), paths, boxes) + 1000 * outside
            if n == 0:
                return legend
            if fewest is None or n < fewest[0]:
                fewest = (n, loc)
        pad = renderer.points_to_pixels(style["fontsize"] * 0.5 + 4)  # (the legend's gap to the frame, and air)
        if not _make_room(ax, tallest + pad, paths, moving):
            break
    legend.set_loc(fewest[1] if fewest else "best")
    return legend




def draw_basin_counts(profiles: Profiles, names: Sequence[str], ax: Any) -> Any:
    """Basins against the magnetization multiplier (log-log), a line per side; return ``ax``.
    The legend goes where it covers no point (above them where no corner is free)."""
    drawn, notes = False, []
    for p, name, color in zip(profiles, _side_labels(names), COLORS):
        if p is None:
            notes.append(f"{name}: no map")
            continue
        pts = [(m, n) for m, _, n in p["levels"] if m is not None and m > 0 and n > 0]
        if not pts:
            notes.append(f"{name}: magnetization unknown")
            continue
        m, n = np.array(pts, dtype=np.float64).T
        label = name
        fall = fall_slope(m, n)
        if fall is not None:
            label += f" (log-log slope {fall[0]:.2f} over {fall[1]:.3g}-{fall[2]:.3g})"
        ax.plot(m, n, "o-", color=color, label=label)
        drawn = True
    ax.set_title("basins against magnetization", fontsize=9)
    if not drawn:
        return empty_panel(ax, "no basin counts to draw" + _why(notes))
    ax.set_xscale("log")
    ax.set_yscale("log")
    _side_notes(ax, notes)
    _place_legend(ax)
    _plain(ax.xaxis)
    _plain(ax.yaxis)
    ax.grid(True, which="both", color="0.92", lw=0.5)
    ax.set_xlabel("magnetization alpha / the map's alpha unit")
    ax.set_ylabel("number of basins")
    return ax


def _cdf(ax: Any, heights: Any, **style: Any) -> np.ndarray:
    """One empirical CDF as steps from 0; return the sorted heights."""
    x = np.sort(np.asarray(heights, dtype=np.float64))
    y = np.arange(1, x.size + 1) / x.size
    ax.step(np.concatenate([[0.0], x]), np.concatenate([[0.0], y]), where="post", **style)
    return x


def draw_barrier_spectra(profiles: Profiles, names: Sequence[str], ax: Any) -> Any:
    """The empirical CDF of each side's top-level barrier heights in kT (solid), and of
    those at refined saddles alone (dashed) where the others are estimates; the legend says
    how many of each side's barriers are at refined saddles. Where a side's barriers are in
    units of U (:func:`landscape.diagnosis.compare.unscaled_barriers`: a model that samples
    at T = 0), its curve, the axis and the title say so: the two do not compare. Return
    ``ax``."""
    from landscape.diagnosis.compare import unscaled_barriers

    a, b = (list(profiles) + [None, None])[:2]
    names = list(names)
    labels = _side_labels(names)
    cold = {labels[names.index(n)] for n in unscaled_barriers(a, b, names)}
    drawn, notes = [], []
    for p, name, color in zip(profiles, labels, COLORS):
        if p is None:
            notes.append(f"{name}: no map")
            continue
        bar = p["barriers"]
        h = bar["heights_kT"]
        if h is None:
            notes.append(f"{name}: temperature unknown")
            continue
        if not h:
            notes.append(f"{name}: no barrier between basins")
            continue
        unit = "U" if name in cold else "kT"
        refined = bar.get("refined")
        at = bar.get("at_refined")
        if refined is None or at is None:
            which = ""
        elif refined == len(h):
            which = ", all refined"
        elif refined == 0:
            which = ", all estimates"
        else:
            which = f", {refined} refined"
        x = _cdf(ax, h, color=color, label=f"{name} ({len(h)}{which}; median {np.median(h):.3g} {unit})")
        if refined and at is not None and refined < len(h):
            only = [v for v, ok in zip(h, at) if ok]
            _cdf(ax, only, color=color, ls="--", lw=1,
                 label=f"{name}, refined only (median {np.median(only):.3g} {unit})")
        drawn.append(x)
    ax.set_title("barrier spectrum (empirical CDF)" + ("; units differ: the curves do not compare" if cold else ""),
                 fontsize=9)
    if not drawn:
        return empty_panel(ax, "no barrier heights in kT to draw" + _why(notes))
    allx = np.concatenate(drawn)
    # Barrier spectra span decades: a log axis unless some are zero or they are narrow.
    if allx.min() > 0 and allx.max() / allx.min() > 100:
        ax.set_xscale("log")
        _plain(ax.xaxis)
    ax.set_ylim(0, 1.02)
    ax.set_yticks(np.linspace(0.0, 1.0, 6))  # (shares: none above 1 where the legend takes room above the curves)
    _side_notes(ax, notes, y=0.97)
    _place_legend(ax, ("lower right", "upper left", "center right", "lower center", "center left", "upper right",
                       "lower left", "upper center", "center"), framealpha=0.85)
    ax.grid(True, color="0.92", lw=0.5)
    who = " and ".join(n for n in labels if n in cold)
    which = "" if not cold else f" ({who if len(who) <= _NAME_CHARS else 'both'}: / U, T = 0)"
    ax.set_xlabel(f"barrier height / kT{which}\n(merges of the main level's basin tree, above the higher basin)")
    ax.set_ylabel("share of barriers at or below")
    return ax


def draw_funnel_scores(profiles: Profiles, names: Sequence[str], ax: Any) -> Any:
    """Each side's funnel probe: ``exp(H)`` against the noise level in units of its own
    lowest non-zero level (symlog, so tau = 0 shows), the data's own dotted, and faint the
    number of chains per level, which ``exp(H)`` cannot pass (a probe whose chains each
    ended apart sits on it: too few chains to tell); return ``ax``."""
    drawn, notes, ticks = False, [], set()
    ceilings: dict[int, list[tuple[str, str]]] = {}  # chains per level -> the sides with that many
    for p, name, color in zip(profiles, _side_labels(names), COLORS):
        f = None if p is None else p["funnel"]
        if f is None:
            notes.append(f"{name}: {'no map' if p is None else 'no funnel probe'}")
            continue
        noise = np.asarray(f["noise"], dtype=np.float64)
        positive = noise[noise > 0]
        # Each map's ladder in units of its own lowest non-zero level: the two models'
        # noise scales (their training tau) differ, the ladder's shape is what compares.
        x = noise / positive.min() if positive.size else np.arange(noise.size, dtype=np.float64)
        score = "undefined" if f["score"] is None else f"{f['score']:.2f}"
        unsure = f.get("verdict") == TOO_FEW_CHAINS
        ax.plot(x, f["effective_basins"], "o-", color=color,
                label=f"{name} (score {score}{': ' + TOO_FEW_CHAINS if unsure else ''})")
        ticks.update(round(float(t), 6) for t in x)
        if f["reference_basins"] is not None:
            ax.axhline(f["reference_basins"], color=color, ls=":", lw=1)
        if f.get("chains"):  # (exp(H) of n chains is at most n: a curve at its ceiling met no other chain)
            ceilings.setdefault(int(f["chains"]), []).append((name, color))
        drawn = True
    for n, whose in ceilings.items():
        color = whose[0][1] if len(whose) == 1 else "0.45"
        ax.axhline(n, color=color, lw=0.8, alpha=0.35 if len(whose) == 1 else 0.6, zorder=0)
        ax.annotate(f"{whose[0][0] if len(whose) == 1 else 'both'}: at most {n}", (1.0, n),
                    xycoords=("axes fraction", "data"), ha="right", va="bottom", fontsize=6.5, color=color,
                    xytext=(-2, 1), textcoords="offset points")
    ax.set_title("funnel probe (dotted: the data's basins; faint: each side's number of chains)", fontsize=9)
    if not drawn:
        return empty_panel(ax, "no funnel probe" + _why(notes))
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)  # keeps tau = 0 on the axis
    if len(ticks) <= 12:  # the ladders' own levels, as plain numbers
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

        ax.xaxis.set_major_locator(FixedLocator(sorted(ticks)))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: f"{x:g}"))
        ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(0, max([ax.get_ylim()[1], *ceilings]) * 1.08)  # (the ceilings clear of the frame)
    _side_notes(ax, notes)
    _place_legend(ax)
    ax.grid(True, color="0.92", lw=0.5)
    ax.set_xlabel("noise level / the map's lowest non-zero level")
    ax.set_ylabel("effective number of basins exp(H)")
    return ax


def draw_spurious_shares(profiles: Profiles, names: Sequence[str], ax: Any) -> Any:
    """Grouped bars: each side's spurious share of minima, of chains, and per reason;
    return ``ax``."""
    from landscape.io.records import REASONS

    cats = ["any (minima)", "any (chains)", *REASONS.values()]
    width = 0.38
    drawn, notes = False, []
    for k, (p, name, color) in enumerate(zip(profiles, _side_labels(names), COLORS)):
        d = None if p is None else p["diagnosis"]
        if d is None:
            notes.append(f"{name}: {'no map' if p is None else 'no diagnosis'}")
            continue
        values = [d["share_minima"], d["share_hits"]]
        n = p["n_minima"]
        values += [(d["reasons"][r] / n if n else None) if d["reasons"] is not None else None for r in REASONS.values()]
        xs = [i + (k - 0.5) * width for i, v in enumerate(values) if v is not None]
        ys = [v for v in values if v is not None]
        bars = ax.bar(xs, ys, width=width, color=color, label=name)
        ax.bar_label(bars, labels=[f"{100 * v:.0f}%" for v in ys], fontsize=6, padding=1)
        drawn = True
    ax.set_title("spurious minima by reason (share of minima; 'chains': weighted by hits)", fontsize=9)
    if not drawn:
        return empty_panel(ax, "no diagnosis" + _why(notes))
    ax.set_xticks(range(len(cats)))
    ax.set_xticklabels(cats, fontsize=7)
    ax.set_ylim(0, 1.3)  # room above the bars for the legend
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_ylabel("share spurious")
    _side_notes(ax, notes, y=0.97)
    _place_legend(ax, ("upper center", "upper right", "upper left", *_LOCS), ncol=2)
    return ax


def _is_image_batch(x: np.ndarray) -> bool:
    return (x.ndim == 4 and x.shape[1] in (1, 3)) or x.ndim == 3


def _pictures(
    content: MapContent | None, samples: np.ndarray | None
) -> tuple[np.ndarray, list[str], list[bool], str, bool] | None:
    """The images of one side's row: (images [k, ...], captions, red flags, what they are,
    whether they are the samples); None when the side has no images to show."""
    if samples is not None:
        x = np.asarray(samples.detach().cpu() if hasattr(samples, "detach") else samples, dtype=np.float64)
        if _is_image_batch(x) and x.shape[0]:
            k = min(MAX_PICTURES, x.shape[0])
            return x[:k], [""] * k, [False] * k, f"samples ({k} of {x.shape[0]})", True
    if content is None:
        return None
    try:
        if minima_kind(content) != "image":
            return None
    except LandscapeError:
        return None
    part = content.partition
    hits = part.hits(content.minima_hits)
    order = np.argsort(-hits, kind="stable")[:MAX_PICTURES]
    reps = part.representative[order]
    spurious = (np.asarray(content.diagnosis.spurious, dtype=bool)[reps] if content.diagnosis is not None
                else np.zeros(order.size, dtype=bool))
    x = np.asarray(content.minima_x, dtype=np.float64)[reps]
    captions = [f"#{int(b)}: {int(hits[b])} hit{'' if int(hits[b]) == 1 else 's'}" for b in order]
    what = f"the {order.size} basins with most hits (representatives; red: spurious)"
    return x, captions, spurious.tolist(), what, False


def draw_image_row(images: np.ndarray, ax: Any, *, captions: Sequence[str] = (), red: Sequence[bool] = (),
                   low: float = -1.0, high: float = 1.0, slots: int = MAX_PICTURES) -> Any:
    """Images [k, C, H, W] or [k, H, W] in one row in ``ax`` (one image, ``slots`` places
    wide so rows of two models line up), a caption above each, red frames where ``red``;
    return ``ax``."""
    from matplotlib.patches import Rectangle

    h, w = np.shape(images)[-2:]
    ax.imshow(image_mosaic(images, low, high, slots=slots), interpolation="nearest", aspect="equal")
    ax.set_axis_off()
    for k, caption in enumerate(captions):
        x0 = k * (w + 1) - 0.5
        flagged = k < len(red) and red[k]
        if caption:
            ax.text(x0 + w / 2, -0.8, caption, ha="center", va="bottom", fontsize=5, color="red" if flagged else "black")
        if flagged:
            ax.add_patch(Rectangle((x0, -0.5), w, h, fill=False, edgecolor="red", linewidth=1.2))
    return ax


#: The fixed layout, in inches: the panels' block and each row of pictures.
_WIDTH, _PANELS_H, _ROW_H = 12.0, 7.1, 1.2
#: The height of each line of the title past its first (the panels move down by it).
_TITLE_LINE = 0.19
_TITLE_SIZE = 11.0


def _title(names: Sequence[str], width: float) -> str:
    """The figure's title for sides ``names``, wrapped to a figure ``width`` inches wide:
    the full names, and which is A and which B where the legends say only that."""
    names = [str(n) for n in names]
    a, b = (f"A = {names[0]}", f"B = {names[1]}") if _side_labels(names) == ["A", "B"] and names != ["A", "B"] \
        else names
    # Lines break between the parts (a name stays with its colour), inside one only where it is too long.
    parts = ["Landscapes compared:", f"{a} (blue) vs", f"{b} (orange)"]
    glued = " ".join(part.replace(" ", "\u00a0") for part in parts)
    return wrap(glued, width - 0.6, fontsize=_TITLE_SIZE).replace("\u00a0", " ")


def _head(names: Sequence[str], width: float) -> float:
    """Inches the title takes past its first line (the panels start lower by this)."""
    return _TITLE_LINE * (_title(names, width).count("\n"))


def _fit_width(text: Any, fig: Any, margin: float = 0.1) -> None:
    """Shrink ``text``'s font until it is no wider than ``fig`` less ``margin`` inches a
    side (a wrapped line of wide letters can still be too long)."""
    renderer = renderer_of(fig)
    room = fig.bbox.width - 2 * margin * fig.figure.dpi
    for _ in range(4):
        wide = text.get_window_extent(renderer).width
        if wide <= room:
            return
        text.set_fontsize(text.get_fontsize() * room / wide * 0.98)


def _rows(contents: Sequence[MapContent | None], names: Sequence[str],
          samples: Mapping[str, Any]) -> list[tuple[int, tuple[Any, ...], float, float]]:
    rows = []
    for side, (content, name) in enumerate(zip(contents, names)):
        found = _pictures(content, samples.get(name))
        if found is not None:
            low, high = data_range(content) if content is not None else _DEFAULT_RANGE
            rows.append((side, found, low, high))
    return rows


def draw_comparison(
    a_content: MapContent | None,
    b_content: MapContent | None,
    names: Sequence[str],
    fig: Any,
    samples: Mapping[str, Any] | None = None,
    *,
    sample_notes: Mapping[str, str] | None = None,
) -> Any:
    """Draw two maps side by side into ``fig`` (a Figure or SubFigure); return ``fig``.

    Four panels (:func:`draw_basin_counts`, :func:`draw_barrier_spectra`,
    :func:`draw_funnel_scores`, :func:`draw_spurious_shares`) and below them one row of
    pictures per model with image minima: ``samples[name]`` (the first 16, captioned with
    ``sample_notes[name]``), else the representatives of its 16 basins with most hits. The
    layout is fixed in inches for a 12-inch-wide figure 7.1 inches high plus 1.2 per row,
    plus 0.19 per line the title takes past one where long names wrap it
    (:func:`plot_comparison` sizes it so); other sizes stretch it.

    Raises
    ------
    LandscapeError
        Unless there are two names.
    """
    names = list(names)
    if len(names) != 2:
        raise LandscapeError(f"plot_comparison needs two names, got {len(names)}")
    contents = (a_content, b_content)
    profiles = [None if c is None else map_profile(c) for c in contents]
    rows = _rows(contents, names, samples or {})
    width, height = size_inches(fig)
    head = _head(names, width)
    sx, sy = width / _WIDTH, height / (_PANELS_H + head + _ROW_H * len(rows))

    def rect(left: float, top: float, w: float, h: float) -> tuple[float, float, float, float]:
        return (left * sx / width, 1 - (top + h) * sy / height, w * sx / width, h * sy / height)

    axes = [fig.add_axes(rect(left, top + head, 4.9, 2.55)) for top in (0.6, 4.05) for left in (0.75, 6.8)]
    draw_basin_counts(profiles, names, axes[0])
    draw_barrier_spectra(profiles, names, axes[1])
    draw_funnel_scores(profiles, names, axes[2])
    draw_spurious_shares(profiles, names, axes[3])
    title = fig.suptitle(_title(names, width), y=1 - 0.12 * sy / height, va="top", fontsize=_TITLE_SIZE)
    _fit_width(title, fig)
    labels = _side_labels(names)
    for r, (side, (images, captions, red, what, from_samples), low, high) in enumerate(rows):
        name = names[side]
        note = (sample_notes or {}).get(name) if from_samples else None
        top = _PANELS_H + head + r * _ROW_H
        caption = f"{name}: {note or what}"
        if "\n" in wrap(caption, width - 0.4, fontsize=8):  # (the short name where the full one makes two lines)
            caption = wrap(f"{labels[side]}: {note or what}", width - 0.4, fontsize=8)
        _fit_width(fig.text(0.5, 1 - (top + 0.05) * sy / height, caption, ha="center", va="top", fontsize=8,
                            color=COLORS[side]), fig)
        draw_image_row(images, fig.add_axes(rect(0.2, top + 0.38, _WIDTH - 0.4, _ROW_H - 0.45)), captions=captions,
                       red=red, low=low, high=high)
    return fig


def plot_comparison(
    a_content: MapContent | None,
    b_content: MapContent | None,
    names: Sequence[str],
    path: str | Path,
    samples: Mapping[str, Any] | None = None,
    *,
    sample_notes: Mapping[str, str] | None = None,
) -> Path:
    """:func:`draw_comparison` into a new figure 12 inches wide (7.1 high, plus 1.2 per row
    of pictures and 0.19 per line of a title that long names wrap), written atomically to
    ``path``.

    Parameters
    ----------
    a_content, b_content : MapContent or None
        The two maps (None: that side has no map).
    names : (str, str)
        Labels of the two sides.
    path : str or Path
        The picture (format by suffix: .png, .pdf, .svg).
    samples : dict name -> array [n, *shape], optional
        Images to show for a side instead of its basins (e.g. long-run samples).
    sample_notes : dict name -> str, optional
        What the samples are (their start and steps), for the row's title.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        An unknown picture format, not two names, or a map without basins.

    Examples
    --------
    >>> plot_comparison(read_map("a.h5"), read_map("b.h5"), ("a", "b"), "a_vs_b.png")   # doctest: +SKIP
    """
    path = check_picture_path(path)
    if len(list(names)) != 2:
        raise LandscapeError(f"plot_comparison needs two names, got {len(list(names))}")
    n_rows = len(_rows((a_content, b_content), list(names), samples or {}))
    # A fixed layout (no layout engine: it costs more than the drawing), and the figure's
    # own size when saved, so pictures of any two pairs of models line up.
    fig = new_figure(_WIDTH, _PANELS_H + _head(names, _WIDTH) + _ROW_H * n_rows)
    draw_comparison(a_content, b_content, names, fig, samples, sample_notes=sample_notes)
    return save_figure(fig, path, dpi=110, tight=False)
