"""The spurious-minima report: one self-contained HTML page about a map's diagnosis.

:func:`write_report` puts together what :func:`landscape.diagnosis.spurious.diagnose` found about
the minima of a map, for a reader who has the page and nothing else:

a. a summary: how many minima are flagged, the share of the exploration chains that end
   in them, the count per reason and the bars each reason was measured against, with the
   three criteria in plain words;
b. the worst minima (flagged: each basin's lowest first, by energy) next to their nearest training
   examples (:func:`plot_worst_minima`); when none is flagged, the closest calls (the
   minima farthest from the data);
c. the energies of the data against those of the minima (:func:`plot_energy_histogram`);
d. the data's own nearest-neighbour distances against the minima's
   (:func:`plot_nn_histogram`);
e. the disconnectivity graph with the spurious basins in red
   (:func:`landscape.plots.tree.plot_tree`);
f. figures the caller adds (the funnel probe, say);
g. a table of every flagged minimum.

Every picture is embedded as a base64 PNG and the style sheet is inline, so the page
needs no other file, no network and no JavaScript. The page is written to a temporary
file next to the target and renamed onto it only once complete: a failure leaves an
existing report as it was.

The ``plot_*`` functions here are the report's savers: they check that the map, its
diagnosis and the data belong together, choose what to show, and draw with
:mod:`landscape.plots.report` into a new figure written atomically (format by suffix).
"""

from __future__ import annotations

import base64
import html
import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from landscape.diagnosis.spurious import (
    OFF_DATA,
    SATURATED,
    SINK,
    Diagnosis,
    reason_text,
)
from landscape.errors import LandscapeError
from landscape.io.files import atomic_path
from landscape.io.mapfile import MapContent
from landscape.io.views import describe_source, drain_targets, minima_kind, short_source
from landscape.plots.common import check_picture_path, fmt, new_figure, save_figure
from landscape.plots.report import (
    draw_energy_histogram,
    draw_nn_histogram,
    draw_worst_minima,
    has_saturation,
    nn_ratio,
    pairs_size,
    percent,
    quantile_name,
    times,
)
from landscape.plots.tree import plot_tree

#: With no minimum flagged, the report shows this many of those farthest from the data.
CLOSEST_CALLS = 6
#: Resolution of the report's pictures: enough to read, small enough that the page of a
#: 100-minimum map stays around a megabyte.
DPI = 100
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
         ".svg": "image/svg+xml"}


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
        The flagged minima, at most ``max_shown``: the lowest of each basin of the main
        level first (lowest energy first), then the others by energy, so that twelve
        near-copies from one basin do not fill the page; when none is
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
        ordered = flagged[np.argsort(energy, kind="stable")]
        basin = np.asarray(content.minima_basin)[ordered]
        first = np.zeros(ordered.size, dtype=bool)
        first[np.unique(basin, return_index=True)[1]] = True  # (each basin's lowest flagged minimum)
        return np.concatenate([ordered[first], ordered[~first]])[:k].astype(np.int64), True
    far = np.argsort(-np.asarray(diagnosis.nn_distance, dtype=np.float64), kind="stable")
    return far[: min(CLOSEST_CALLS, k)].astype(np.int64), False


# ------------------------------------------------------------------------ the figures


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
            title = f"{short_source(content)}: spurious minima ({of}; each basin's lowest first, by energy)"
        else:
            title = f"{short_source(content)}: no minimum flagged; the {shown.size} farthest from the data"
        if kind == "image":
            title += " - left: minimum, right: its nearest training example"
    if kind == "image":
        fig = new_figure(*pairs_size(content, shown.size, title))
    elif kind == "2d":
        fig = new_figure(6.5, 5.8, layout="constrained")
    else:
        ncols = min(3, shown.size)
        fig = new_figure(max(5.0, 3.4 * ncols), 2.5 * -(-shown.size // ncols) + 0.5, layout="constrained")
    draw_worst_minima(content, diagnosis, dx, shown, fig, flagged=flagged, title=title)
    return save_figure(fig, path, dpi=DPI)


def plot_energy_histogram(diagnosis: Diagnosis, content: MapContent, path: str | Path, *,
                          title: str | None = None) -> Path:
    """:func:`landscape.plots.report.draw_energy_histogram` into a new figure, saved to ``path``:
    the energies of the training examples against those of the minima, with the energy bar.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the diagnosis is not of the map's minima, or an unknown picture format.
    """
    path = check_picture_path(path)
    n = np.size(content.minima_energy)
    if np.shape(diagnosis.reasons) != (n,):
        raise LandscapeError(f"the diagnosis covers {np.size(diagnosis.reasons)} minima, the map has {n}")
    fig = new_figure(6.5, 4.0, layout="constrained")
    draw_energy_histogram(diagnosis, content, fig.add_subplot(1, 1, 1), title=title)
    return save_figure(fig, path, dpi=DPI)


def plot_nn_histogram(diagnosis: Diagnosis, path: str | Path, *, title: str | None = None,
                      content: MapContent | None = None) -> Path:
    """:func:`landscape.plots.report.draw_nn_histogram` into a new figure, saved to ``path``:
    the data's own nearest-neighbour distances against the minima's, with
    the bar. ``content`` (the map) names the model in the default title.

    Returns
    -------
    Path

    Raises
    ------
    LandscapeError
        If the diagnosis has no data distances, or an unknown picture format.
    """
    path = check_picture_path(path)
    if np.size(diagnosis.data_nn) == 0:
        raise LandscapeError("the diagnosis holds no nearest-neighbour distances of the data")
    fig = new_figure(6.5, 4.0, layout="constrained")
    draw_nn_histogram(diagnosis, fig.add_subplot(1, 1, 1), title=title, content=content)
    return save_figure(fig, path, dpi=DPI)


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
    against = content.diagnosis.attrs.get("dataset") if content.diagnosis is not None else None
    rows = [
        ("Minima", f"{n} in {content.n_basins} basin{'' if content.n_basins == 1 else 's'}"),
        ("Compared with", f"{data_nn.size} examples of {against}" if against else f"{data_nn.size} training examples"),
        ("Flagged spurious", f"{k} ({percent(k / n)} of the minima)"),
        ("Chains ending in spurious minima",
         f"{int(hits[spurious].sum())} of {int(total)} ({percent(hits[spurious].sum() / total)})" if total > 0
         else "no chains recorded in the map"),
        ("Off the data", str(diagnosis.count(OFF_DATA))),
        ("Saturated", str(diagnosis.count(SATURATED)) if diagnosis.saturation is not None
         else "not tested (the minima are not images)" if not images else "not tested"),
        ("Funnel sink", str(diagnosis.count(SINK)) if content.funnel is not None or diagnosis.sinks
         else f"{diagnosis.count(SINK)} (the map has no funnel probe)"),
        ("Training examples", str(data_nn.size)),
        ("NN-distance bar",
         f"{fmt(diagnosis.nn_bar)} = {rule.nn_factor:g} x the data's {quantile_name(rule.nn_quantile)} of their own "
         f"nearest-neighbour distances (the data's median {fmt(q50)}, q99 {fmt(q99)})"),
        ("Energy bar",
         f"{fmt(diagnosis.energy_bar)}: the data's {quantile_name(rule.energy_quantile)} of U (the data span "
         f"{fmt(float(data_e.min()))} to {fmt(float(data_e.max()))})" if data_e.size else fmt(diagnosis.energy_bar)),
    ]
    bar = diagnosis.saturation_bar()
    if images and bar is not None:
        rows.append(("Saturation bar", f"{percent(bar)} of the pixels (the data: {percent(diagnosis.data_saturation)})"))
    sinks = ", ".join(str(int(b)) for b in diagnosis.sinks) or "none"
    if content.funnel is not None:
        from landscape.io.views import describe_funnel

        sinks += f" ({describe_funnel(content.funnel)})"
    rows.append(("Sink basins", sinks))
    return rows


def _criteria(diagnosis: Diagnosis, images: bool) -> str:
    """The three criteria in plain words, with this rule's numbers."""
    rule = diagnosis.rule
    typical = "median" if rule.energy_quantile == 0.5 else f"{quantile_name(rule.energy_quantile)} quantile"
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
    sat = has_saturation(content, diagnosis)
    head = ["minimum", "basin", "energy", "hits", "NN distance", "nearest example", "NN / bar"]
    head += ["saturation"] if sat else []
    # (a minimum a quench left on a plateau or a well's tail is no state of its own: which
    # minimum it drains into with no barrier, so the table reads as states)
    into = drain_targets(content) if content.tree is not None else None
    head += ["drains into"] if into is not None else []
    head += ["reasons"]
    rows = ["<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for i in order.tolist():
        d = float(diagnosis.nn_distance[i])
        cells = [str(i), str(int(content.minima_basin[i])), fmt(float(content.minima_energy[i])),
                 str(int(content.minima_hits[i])), fmt(d), str(int(diagnosis.nn_index[i])),
                 times(nn_ratio(d, diagnosis.nn_bar))]
        cells += [percent(float(diagnosis.saturation[i]))] if sat else []  # type: ignore[index]
        cells += [str(int(into[i])) if into[i] >= 0 else "-"] if into is not None else []
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
    from landscape import tool_version

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
            intro = (f"{shown.size} of the {n_flagged} flagged minima: the lowest of each basin first, by energy, "
                     "then the others")
        elif n_flagged == 1:
            intro = "The one flagged minimum"
        else:
            intro = f"All {n_flagged} flagged minima, the lowest of each basin first"
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

    picture = plot_nn_histogram(diagnosis, pictures / "nn.png", content=content)
    yield '<section id="nn">\n<h2>Distances to the data</h2>\n'
    yield _figure(picture, "Each training example's distance to its nearest other example, and each minimum's "
                           "distance to its nearest training example. A minimum right of the dashed bar (and at or "
                           "below the data's typical energy) is off the data; red marks the minima flagged for any "
                           "reason, the legend counts each.")
    yield "</section>\n"

    # plot_tree marks the minima the map's own diagnosis flags: draw it from a copy that
    # carries this one.
    picture = plot_tree(replace(content, diagnosis=diagnosis.to_data()), pictures / "tree.png")
    yield '<section id="tree">\n<h2>Barrier tree</h2>\n'
    yield _figure(picture, "The disconnectivity graph over the minima: each minimum is a leaf, coloured by its "
                           "basin at the map's main level (minima that drain into a lower one with no barrier "
                           "are one line with it, drawn from the lowest); two groups join at the barrier between "
                           "them. Red: minima flagged spurious (for a line of several minima, its lowest).")
    yield "</section>\n"

    if extra:
        yield '<section id="extra">\n<h2>More figures</h2>\n'
        for caption, data, mime in extra:
            yield f"<figure>{_img(data, mime, caption)}<figcaption>{_e(caption)}</figcaption></figure>\n"
        yield "</section>\n"

    yield f'<section id="flagged">\n<h2>Flagged minima ({n_flagged})</h2>\n'
    yield _flagged_table(content, diagnosis) + "</section>\n"
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    yield f"<footer>Written by ebm-landscape {_e(tool_version())} on {_e(when)}.</footer>\n</body>\n</html>\n"


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
        Default ``"Spurious minima: "`` + :func:`landscape.io.views.describe_source`.
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
    with atomic_path(path) as tmp, tempfile.TemporaryDirectory(prefix="landscape-report-") as folder:
        # Sections are written as they are drawn, so no more than one picture is held at
        # a time; atomic_path removes the half-written file if a picture fails.
        with tmp.open("w", encoding="utf-8") as out:
            for chunk in _page(content, diagnosis, dx, title, extra, max_shown, Path(folder)):
                out.write(chunk)
    return path
