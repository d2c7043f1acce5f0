"""What every picture shares: a figure to draw on, saving it, images, colours, captions.

The pictures of :mod:`landscape.plots` come in two layers (pele's
``DisconnectivityGraph.plot(axes=None)``):

- ``draw_*(content, ax, ...)`` draws into a matplotlib ``Axes`` it is given (or a
  ``Figure`` / ``SubFigure`` where it needs a grid of axes) and returns it, so pictures
  combine: several maps on one figure, a tree beside its basins;
- ``plot_*(content, path, ...)`` is a thin saver: :func:`new_figure`, draw,
  :func:`save_figure`, return the path.

Figures are built on matplotlib's ``Figure`` with the Agg canvas: no pyplot, no window,
no global state. :func:`save_figure` writes through :func:`landscape.io.files.atomic_path`
(a temporary file beside the target, renamed onto it once complete), so a failed or
killed run never leaves half a picture; the format follows the file's suffix (``.png``,
``.pdf``, ``.svg``, ...) and the figure's title goes into the file's metadata.
"""

from __future__ import annotations

import logging
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from landscape.errors import LandscapeError
from landscape.io.files import atomic_path

# A font cache left by another matplotlib names fonts this one cannot find: each lookup
# logged "findfont: Font family ... not found" (21 lines in a training run's log), while the
# figure falls back to the default font either way.
logging.getLogger("matplotlib.font_manager").setLevel(logging.ERROR)

__all__ = [
    "axes_width",
    "SEPARATOR_RGB",
    "START_NAMES",
    "basin_colors",
    "basin_palette",
    "chain_caption",
    "check_picture_path",
    "empty_panel",
    "fmt",
    "image_mosaic",
    "new_figure",
    "OTHER_BASINS",
    "save_figure",
    "show_image",
    "size_inches",
    "wrap",
]

#: What a chain started from, in words (the ``init`` names of the samplers and checks).
START_NAMES = {"noise": "noise", "data": "data", "persistent": "the persistent bank"}
#: Metadata keys matplotlib writes for these formats (others get none).
_TITLED_FORMATS = ("png", "svg", "pdf")


# ------------------------------------------------------------------------- figures


def check_picture_path(path: str | Path) -> Path:
    """``path`` as a Path if matplotlib can write its format (by suffix), else LandscapeError."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    formats = FigureCanvasAgg(Figure()).get_supported_filetypes()
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in formats:
        raise LandscapeError(
            f"{path}: cannot tell the picture format from the suffix {path.suffix or '(none)'!r}; "
            "use .png, .pdf or .svg"
        )
    return path


def new_figure(width: float, height: float, *, layout: str | None = None) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches on the Agg canvas (no pyplot).

    ``layout="constrained"`` lets matplotlib make room for titles, labels and colour bars;
    None (default) leaves the axes where the caller puts them (fixed layouts in inches).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _title_of(fig: Any) -> str:
    """The figure's title: its suptitle, else the first axes title (for the file's metadata)."""
    text = fig.get_suptitle() if hasattr(fig, "get_suptitle") else ""
    if text:
        return " ".join(text.split())
    for ax in fig.get_axes():
        if ax.get_title():
            return " ".join(ax.get_title().split())
    return ""


def save_figure(fig: Any, path: str | Path, *, dpi: int = 120, tight: bool = True, title: str | None = None) -> Path:
    """Write ``fig`` to ``path`` atomically; return the path.

    Parameters
    ----------
    fig : matplotlib Figure
    path : str or Path
        The picture; its suffix says the format (LandscapeError if matplotlib cannot
        write it). The folder is created.
    dpi : int
    tight : bool
        Save the bounding box of everything drawn (``bbox_inches="tight"``): no title or
        label is clipped at the figure's edge. False keeps the figure's own size.
    title : str, optional
        Written into the file's metadata (PNG, SVG, PDF); default the figure's title.

    Raises
    ------
    LandscapeError
        For a suffix matplotlib cannot write. Nothing is written then, and a failure
        while writing leaves an existing file as it was.
    """
    path = check_picture_path(path)
    kwargs: dict[str, Any] = {"dpi": dpi}
    if tight:
        kwargs.update(bbox_inches="tight", pad_inches=0.08)
    suffix = path.suffix.lower().lstrip(".")
    text = title if title is not None else _title_of(fig)
    if text and suffix in _TITLED_FORMATS:
        kwargs["metadata"] = {"Title": text}
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=suffix, **kwargs)
    return path


def renderer_of(fig: Any) -> Any:
    """The renderer of the figure (or subfigure) ``fig`` draws with, to measure text."""
    root = fig.figure  # (the Figure of a SubFigure; a Figure's is itself)
    get = getattr(root.canvas, "get_renderer", None)
    return get() if get is not None else root._get_renderer()


def size_inches(fig: Any) -> tuple[float, float]:
    """Width and height in inches of a Figure or SubFigure."""
    bbox = fig.bbox
    dpi = fig.dpi if hasattr(fig, "dpi") else fig.figure.dpi
    return float(bbox.width) / dpi, float(bbox.height) / dpi


def axes_width(ax: Any) -> float:
    """Width of ``ax`` in inches (from its position, before any layout engine runs): what
    titles and labels are wrapped to."""
    return ax.get_position().width * size_inches(ax.figure)[0]


# ---------------------------------------------------------------------------- text


def fmt(x: float) -> str:
    """A number in four significant digits (``-0.4257``, ``1.2e+04``)."""
    return f"{x:.4g}"


def fall_slope(alpha: np.ndarray, count: np.ndarray) -> tuple[float, float, float] | None:
    """The log-log slope of the basin count against the magnetization where it falls:
    ``(slope, first alpha, last alpha)`` fitted from the last level still at the largest
    count to the first at the smallest (levels ascending in alpha), or None where that
    stretch holds fewer than three levels (two give a chord across a gap the ladder did not
    look into). The plateau where every minimum is still a basin of its own, and the floor
    of one basin, carry no slope: a fit through them measures where the ladder starts and
    stops (ADELM's slopes of -2 to -4 are those of the fall)."""
    a, n = np.asarray(alpha, dtype=np.float64), np.asarray(count, dtype=np.float64)
    order = np.argsort(a, kind="stable")
    a, n = a[order], n[order]
    top = np.flatnonzero(n == n.max())[-1]
    low = top + np.flatnonzero(n[top:] == n[top:].min())[0]
    a, n = a[top:low + 1], n[top:low + 1]
    if np.unique(a).size < 3:
        return None
    return float(np.polyfit(np.log(a), np.log(n), 1)[0]), float(a[0]), float(a[-1])


def wrap(text: str, width_inches: float, fontsize: float = 9.0) -> str:
    """``text`` wrapped to lines that fit ``width_inches`` at ``fontsize`` points (an
    average character is about half the font size wide)."""
    chars = max(20, int(width_inches * 72.0 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def chain_caption(steps: int | None, init: str | None, *, n: int | None = None, epsilon: float | None = None,
                  tau: float | None = None) -> str:
    """Where a set of chains started and how far they ran, in words.

    ``chain_caption(200, "noise", n=100)`` is ``"100 chains from noise, 200 Langevin
    steps"``; ``init`` is one of :data:`START_NAMES` (or any text), unknown parts are left out.
    """
    parts = []
    head = f"{n} chains" if n is not None else "chains"
    if init:
        head += f" from {START_NAMES.get(init, init)}"
    parts.append(head)
    if steps is not None:
        parts.append(f"{int(steps)} Langevin step{'s' if int(steps) != 1 else ''}")
    settings = ", ".join(f"{k}={v:g}" for k, v in (("eps", epsilon), ("tau", tau)) if v is not None)
    text = ", ".join(parts)
    return f"{text} ({settings})" if settings else text


def empty_panel(ax: Any, text: str) -> Any:
    """A panel with nothing to draw: its axis lines and ticks go, ``text`` says why (the
    title stays), so no panel looks like an empty plot."""
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")
    for side in ax.spines.values():
        side.set_edgecolor("0.85")
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=9, color="0.35", wrap=True)
    return ax


# -------------------------------------------------------------------------- images


def show_image(ax: Any, x: np.ndarray, low: float, high: float, aspect: str = "auto") -> None:
    """Draw one example as an image on ``ax``: the data range ``[low, high]`` mapped to
    [0, 1] and clipped (NaN as ``low``); (H, W) and (1, H, W) in grey, (3, H, W) in RGB;
    no ticks."""
    img = np.clip((np.nan_to_num(np.asarray(x, dtype=np.float64), nan=low) - low) / (high - low), 0.0, 1.0)
    if img.ndim == 2 or img.shape[0] == 1:
        ax.imshow(img.reshape(img.shape[-2:]), cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest", aspect=aspect)
    else:
        ax.imshow(np.transpose(img, (1, 2, 0)), interpolation="nearest", aspect=aspect)
    ax.set_xticks([])
    ax.set_yticks([])


#: The colour between images in a grid or a row of them (8-bit RGB): no grey pixel has it,
#: so it shows against images whose edges are white, black or mid-grey alike.
SEPARATOR_RGB = (150, 180, 225)


def image_mosaic(images: np.ndarray, low: float, high: float, *, ncols: int | None = None, slots: int | None = None,
                 gap: int = 1) -> np.ndarray:
    """Images [k, C, H, W] or [k, H, W] as one RGB array, ``ncols`` per row (default all
    in one row) with ``gap`` pixels of :data:`SEPARATOR_RGB` between them (white ones ran
    into white-edged images); ``slots`` widens one row to that many places (so rows of
    different models line up), the places past the last image blank. One ``imshow`` for
    many images: an axes per image costs far more to lay out."""
    x = np.clip((np.nan_to_num(np.asarray(images, dtype=np.float64), nan=low) - low) / (high - low), 0.0, 1.0)
    if x.ndim == 3:
        x = x[:, None]
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    k, _, h, w = x.shape
    ncols = max(1, int(ncols if ncols is not None else max(k, slots or 0)))
    nrows = max(1, math.ceil(k / ncols))
    out = np.empty((nrows * (h + gap) - gap, ncols * (w + gap) - gap, 3))
    out[:] = np.asarray(SEPARATOR_RGB, dtype=np.float64) / 255.0
    if k < nrows * ncols:  # (the places past the last image, and the gaps between them: blank)
        r, c = divmod(k, ncols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap):] = 1.0
    for i in range(k):
        r, c = divmod(i, ncols)
        out[r * (h + gap) : r * (h + gap) + h, c * (w + gap) : c * (w + gap) + w] = np.transpose(x[i], (1, 2, 0))
    return out


# ------------------------------------------------------------------------- colours


#: The colour of flagged (spurious) minima in every figure; no basin is drawn in it.
FLAGGED = "red"


#: The colour of the basins beyond those a palette tells apart (:func:`basin_palette`).
OTHER_BASINS = "0.62"


def basin_colors(b: int) -> np.ndarray:
    """``b`` colours (RGBA rows), none of them red (:data:`FLAGGED` marks flagged minima)
    or grey (:data:`OTHER_BASINS`, the basins beyond those told apart, and "other basins"
    in bar charts): tab10 less its red and grey for up to 8, else tab20 less its reds and
    greys, 16 colours (cycling beyond: :func:`basin_palette` greys the rest instead)."""
    from matplotlib import colormaps

    name, left_out = ("tab10", {3, 7}) if b <= 8 else ("tab20", {6, 7, 14, 15})
    cmap = colormaps[name]
    pool = [cmap(i) for i in range(cmap.N) if i not in left_out]
    return np.array([pool[i % len(pool)] for i in range(b)])


def basin_palette(basin: np.ndarray, sizes: np.ndarray | None = None) -> tuple[list[Any], int]:
    """A colour per basin number 0..max(basin), for minima coloured by basin, and how many
    basins are drawn grey. Up to 16 basins each get a colour of their own; beyond, the 15
    largest (by ``sizes`` per basin, default their number of minima; of equals the lower
    number) keep theirs and the rest share :data:`OTHER_BASINS`, so no two basins that
    look alike are told apart by colour alone."""
    basin = np.asarray(basin, dtype=np.int64)
    count = int(basin.max()) + 1 if basin.size else 1
    distinct = len(basin_colors(16))
    if count <= distinct:
        return list(basin_colors(count)), 0
    size = np.bincount(basin, minlength=count) if sizes is None else np.asarray(sizes, dtype=np.float64)
    keep = np.lexsort((np.arange(count), -size))[: distinct - 1]
    colors = basin_colors(distinct)
    out: list[Any] = [OTHER_BASINS] * count
    for j, b in enumerate(sorted(int(k) for k in keep)):
        out[b] = colors[j]
    return out, count - len(keep)
