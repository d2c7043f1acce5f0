"""The comparison figure (``landscape compare``) keeps its title, labels and legends inside
the figure and its legends off the data, whatever the lengths of the two sides' names.

(A reviewer's ``landscape compare`` of two runs with ordinary long names: the title was
clipped at both edges, the basins legend stuck out past the panel's left edge over the
y-label, the CDF legend covered its y-label and curves, the barrier axis label was
clipped and the spurious-share legend ran off the figure; with short names the basins
legend hid points of a curve and the CDF legend a curve's lower tail.)

The maps are the synthetic ones of ``test_compare.py`` (map A: a ladder of 10, 5, 2
basins, barriers 0.5..4.5 kT, a funnel, 6 of 10 minima spurious; map B: 10, 9, 8, 7
basins, barriers of a model at T = 0, nothing spurious), and a pair shaped like the
demo's digits maps (``demo``: A's basins flat at the top of the panel up to 0.55x its unit,
then one; B's falling over three decades; barriers spread over three decades each).
"""

import numpy as np
import pytest
from test_compare import N, ladder_map, map_a, map_b

import landscape.plots.compare as plots_compare

LONG = ("digits_convergent_model_trained_for_three_thousand_updates_run_A",
        "digits_nonconvergent_model_trained_for_one_thousand_updates_run_B")
# Alike at both ends: they differ only in the middle.
MIDDLE = ("experiment_2024_11_30_learning_rate_0.001_model_alpha_trained_for_3000_updates_seed_0",
          "experiment_2024_11_30_learning_rate_0.001_model_gamma_trained_for_3000_updates_seed_0")
NAME_PAIRS = {"long": LONG, "middle": MIDDLE, "short": ("A", "B"), "mixed": ("base", LONG[1]),
              "demo": ("digits_convergent", "digits_nonconvergent")}


def demo_like():
    """Two maps shaped like the demo's compare_digits.png, whose basins legend hid A's
    points at the top and whose CDF legend (lower right) A's lower tail."""
    a = ladder_map([10, 10, 10, 9, 1, 1], [0.03, 0.1, 0.3, 0.548, 1.0, 3.0], np.logspace(-2, 1, N - 1), 1.0, 0.2,
                   True, 0.0, [np.log(9.5), np.log(10), np.log(10), np.log(10)], [False] * N, [0] * N,
                   ad_temperature=1.0)
    b = ladder_map([10, 9, 8, 7, 6, 5, 3, 1], [0.03, 0.1, 0.3, 1, 3, 9, 15.6, 27], np.logspace(-4, -1, N - 1), 0.0, 0.5,
                   True, 0.0, [np.log(6), np.log(7), np.log(5), np.log(4)], [True] * N, [3] * N, ad_temperature=1.0)
    return a, b


@pytest.fixture(scope="module")
def contents():
    return map_a(), map_b()


@pytest.fixture(scope="module")
def demo_contents():
    return demo_like()


def drawn_figure(contents, names, monkeypatch, tmp_path):
    """The figure :func:`plot_comparison` saves (sized as it sizes it), drawn."""
    kept = []
    monkeypatch.setattr(plots_compare, "save_figure", lambda fig, path, **kw: kept.append(fig) or path)
    plots_compare.plot_comparison(*contents, list(names), tmp_path / "c.png")
    (fig,) = kept
    fig.canvas.draw()
    return fig


def step_points(line):
    """A line's points as drawn (steps expanded), in display coordinates, with 20 more
    along each segment (a legend must not sit on a segment between two points either)."""
    from matplotlib.cbook import STEP_LOOKUP_MAP

    xy = np.asarray(line.get_xydata(), dtype=np.float64)
    style = line.get_drawstyle()
    if style in STEP_LOOKUP_MAP and style != "default":
        xy = np.column_stack(STEP_LOOKUP_MAP[style](xy[:, 0], xy[:, 1]))
    d = line.get_transform().transform(xy)
    d = np.clip(d, -1e6, 1e6)  # (log 0: far off the axes)
    d = d[np.isfinite(d).all(axis=1)]
    if len(d) < 2:
        return d.reshape(-1, 2)
    t = np.linspace(0.0, 1.0, 21)[:, None, None]
    return (d[:-1] + t * (d[1:] - d[:-1])).reshape(-1, 2)


def inside(box, outer, tol=1.0):
    return (box.x0 >= outer.x0 - tol and box.x1 <= outer.x1 + tol and box.y0 >= outer.y0 - tol
            and box.y1 <= outer.y1 + tol)


def panels(fig):
    return [ax for ax in fig.axes if ax.get_legend() is not None or ax.get_title()]


@pytest.mark.parametrize("pair", list(NAME_PAIRS))
def test_legends_titles_and_labels_stay_inside_the_figure_and_off_the_data(contents, demo_contents, pair, monkeypatch,
                                                                          tmp_path):
    names = NAME_PAIRS[pair]
    fig = drawn_figure(demo_contents if pair == "demo" else contents, names, monkeypatch, tmp_path)
    renderer = fig.canvas.get_renderer()
    page = fig.bbox
    title = fig._suptitle
    words = [title, *(t for t in fig.texts if t is not title)]  # the title, the captions of the rows of pictures
    axes = panels(fig)
    assert len(axes) == 4 and all(ax.get_legend() is not None for ax in axes)
    for ax in axes:
        words += [ax.title, ax.xaxis.label, ax.yaxis.label]
    words = [t for t in words if t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in words]
    for text, box in boxes:
        assert inside(box, page), f"{text!r} runs off the figure: {box} not in {page}"
    for i, (a, box_a) in enumerate(boxes):  # no title or label on another
        for b, box_b in boxes[i + 1:]:
            assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    # Both full names in the title (wrapped to the figure's width).
    said = " ".join(title.get_text().split())
    assert all(name in said for name in names), said

    for ax in axes:
        legend = ax.get_legend()
        box = legend.get_window_extent(renderer)
        where = f"the legend of {ax.get_title()!r}"
        assert inside(box, page), f"{where} runs off the figure"
        assert inside(box, ax.bbox), f"{where} sticks out of its panel (over its labels)"
        for line in ax.get_lines():
            pts = step_points(line)
            hit = pts[(pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)]
            assert not len(hit), f"{where} covers {line.get_label()!r} at {hit[:3]}"
        for patch in ax.patches:  # the bars
            assert not box.overlaps(patch.get_window_extent(renderer)), f"{where} covers a bar"
        for text in ax.texts:  # the bars' numbers, the notes, the funnel's ceiling
            if text.get_text().strip():
                assert not box.overlaps(text.get_window_extent(renderer)), f"{where} covers {text.get_text()!r}"
        labels = [t.get_text() for t in legend.get_texts()]
        assert len(set(labels)) == len(labels), labels  # the two sides told apart


def test_long_names_are_shortened_in_legends_keeping_what_tells_them_apart(contents, monkeypatch, tmp_path):
    fig = drawn_figure(contents, LONG, monkeypatch, tmp_path)
    basins = next(ax for ax in fig.axes if ax.get_title() == "basins against magnetization")
    labels = [t.get_text() for t in basins.get_legend().get_texts()]
    assert labels[0].split(" (")[0].endswith("run_A") and labels[1].split(" (")[0].endswith("run_B"), labels
    assert all(lab.startswith("digits_") and "(log-log slope" in lab for lab in labels), labels
    # The numbers stay: each side's slope, its barrier counts and medians.
    spectrum = next(ax for ax in fig.axes if ax.get_title().startswith("barrier spectrum"))
    said = [t.get_text() for t in spectrum.get_legend().get_texts()]
    assert said[0].endswith("(9, all estimates; median 2.5 kT)") and said[-1].endswith("median 0.5 U)"), said
    assert "run_B: / U, T = 0)" in spectrum.get_xlabel()
    # Names alike but for their middle keep the middle that differs.
    fig = drawn_figure(contents, MIDDLE, monkeypatch, tmp_path)
    basins = next(ax for ax in fig.axes if ax.get_title() == "basins against magnetization")
    labels = [t.get_text().split(" (")[0] for t in basins.get_legend().get_texts()]
    assert "alpha" in labels[0] and "gamma" in labels[1], labels
    # Names that no ellipsis tells apart are A and B, and the title says which is which.
    twins = ("x" * 50, "x" * 51)
    fig = drawn_figure(contents, twins, monkeypatch, tmp_path)
    basins = next(ax for ax in fig.axes if ax.get_title() == "basins against magnetization")
    assert [t.get_text().split(" (")[0] for t in basins.get_legend().get_texts()] == ["A", "B"]
    assert "A = x" in fig._suptitle.get_text() and "B = x" in fig._suptitle.get_text()
