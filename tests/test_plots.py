"""The plotting layer: every ``draw_*`` draws into the axes (or figure) it is given and
returns it, so pictures combine; every saved figure's title names the model and what it
shows; pictures of samples say where their chains started and how many steps they ran;
no saved figure has an empty panel."""

from __future__ import annotations

import ast
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from PIL import Image

# The function behind the make_map fixture (plain functions here take it as an argument).
from conftest import build_map, image_content, new_axes, svg_text, vector_content, wells_content

from landscape import Energy
from landscape.diagnosis import report as report_module
from landscape.diagnosis.compare import map_profile
from landscape.diagnosis.report import worst_minima
from landscape.diagnosis.spurious import diagnose
from landscape.io.records import FunnelData
from landscape.mapping.tree import minimax_tree
from landscape.plots import compare as plots_compare
from landscape.plots.common import chain_caption, new_figure, save_figure, wrap
from landscape.plots.funnel import draw_funnel, draw_funnel_entropy, draw_funnel_shares, plot_funnel
from landscape.plots.maps import (
    draw_levels,
    draw_map_2d,
    draw_representatives,
    plot_levels,
    plot_map_2d,
    plot_representatives,
)
from landscape.plots.report import draw_energy_histogram, draw_nn_histogram, draw_worst_minima
from landscape.plots.tree import draw_map_tree, draw_tree, plot_tree
from landscape.train import diagnostics as dg
from landscape.train import figures as tf
from landscape.train.check import check_energy, save_check_figure, save_check_samples
from landscape.train.sampling import ChainReport, save_chain_figure

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------ the cases


def image_case():
    """Three grey 4x4 images with ten noisy examples around each; a minimum at each and a
    checkerboard minimum off the data (flagged)."""
    rng = np.random.default_rng(0)
    centres = rng.uniform(-0.5, 0.5, size=(3, 1, 4, 4))
    data = np.concatenate([c + rng.normal(scale=0.05, size=(10, 1, 4, 4)) for c in centres])
    checker = np.where(np.indices((4, 4)).sum(0) % 2 == 0, 1.0, -1.0)[None, None]
    minima, energy = np.concatenate([centres, checker]), np.array([-0.5, -0.4, -0.3, -2.0])
    content = build_map(minima, energy, hits=np.array([10, 20, 10, 10]), attrs={"minima": {"dataset": "toy"}})
    d = diagnose(minima, energy, data, rng.normal(scale=0.1, size=data.shape[0]), data_range=(-1.0, 1.0), images=True)
    return content, d, data


def point_case(dim: int):
    """Three clusters in R^dim with a minimum at each centre; one more far off (flagged)."""
    rng = np.random.default_rng(1)
    centres = rng.normal(scale=3.0, size=(3, dim))
    data = np.concatenate([c + rng.normal(scale=0.2, size=(40, dim)) for c in centres])
    minima, energy = np.concatenate([centres, centres[:1] + 6.0]), np.array([-0.5, -0.4, -0.3, -2.0])
    content = build_map(minima, energy, attrs={"minima": {"dataset": "toy"}})
    return content, diagnose(minima, energy, data, np.zeros(data.shape[0])), data


def two_maps():
    """Two image maps with levels, barriers in kT, a funnel probe and a diagnosis."""
    a = image_content(build_map, diagnosis=True, funnel=True)
    b = image_content(build_map, diagnosis=True, funnel=True)
    b.levels = b.levels[:2]
    return a, b


# --------------------------------------------------------------------------- helpers


def all_axes(fig) -> list:
    """Every axes of a figure: its own, its subfigures', and their inset axes."""
    found = []
    stack = [fig]
    while stack:
        f = stack.pop()
        stack.extend(getattr(f, "subfigs", []))
        for ax in f.axes:
            found.append(ax)
            found.extend(ax.child_axes)
    return found


def has_content(ax) -> bool:
    return bool(ax.lines or ax.images or ax.collections or ax.patches or ax.texts or ax.child_axes or ax.tables)


def empty_axes(fig) -> list:
    """The visible axes with nothing drawn in them."""
    return [ax for ax in all_axes(fig) if ax.get_visible() and not has_content(ax)]


@pytest.fixture
def saved_figures(monkeypatch):
    """Every matplotlib figure saved while the test runs (savers return paths, not figures)."""
    figures = []
    original = Figure.savefig

    def record(self, *args, **kwargs):
        figures.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", record)
    return figures


def png_title(path: Path) -> str:
    with Image.open(path) as img:
        return img.text.get("Title", "")


def chain_report(x: torch.Tensor, end: torch.Tensor, *, init: str, steps: int, source: str | None) -> ChainReport:
    n = x.shape[0]
    return ChainReport(start=x, end=end, energy_start=torch.zeros(n), energy_end=torch.zeros(n), steps=steps,
                       epsilon=0.01, tau=1.0, init=init, acceptance=None, nn_start=None, nn_end=None,
                       data_nn_median=None, data_energy_mean=None, saturation_start=None, saturation_end=None,
                       source=source)


# ----------------------------------------------------------- draws into a given axes


def test_draw_tree_and_map_tree_draw_into_the_axes_given():
    tree = minimax_tree(np.array([0.0, 1.0, 2.0]), np.array([[0, 1], [1, 2]]), np.array([3.0, 4.0]))
    ax = new_axes()
    assert draw_tree(tree, ax, title="three") is ax and ax.lines and ax.get_title() == "three"
    ax = new_axes()
    assert draw_map_tree(image_content(build_map), ax) is ax and len(ax.lines) > 10


def test_map_draws_go_into_the_axes_given_and_combine_on_one_figure(tmp_path, saved_figures):
    image = image_content(build_map, diagnosis=True)
    wells = wells_content(build_map)
    fig = new_figure(12, 9, layout="constrained")
    axes = fig.subplots(2, 2).ravel()
    assert draw_map_tree(image, axes[0]) is axes[0]
    assert draw_representatives(image, axes[1]) is axes[1]
    assert len(axes[1].child_axes) == 4 and all(a.images for a in axes[1].child_axes)  # a tile per basin
    assert draw_levels(image, axes[2]) is axes[2] and axes[2].lines and axes[2].get_xscale() == "log"
    assert draw_map_2d(wells, axes[3]) is axes[3] and axes[3].collections  # contours and minima
    # each basin's star numbered as its basin (#k, as the basin images caption them;
    # a plain number is a minimum's in the tree's picture)
    stars = sorted(t.get_text() for t in axes[3].texts if t.get_text().startswith("#"))
    assert stars == sorted(f"#{k}" for k in range(wells.levels[wells.main].n_basins))
    assert axes[1].get_title().startswith("sevens: basin representatives")
    save_figure(fig, tmp_path / "four.png")
    assert empty_axes(saved_figures[-1]) == []


def test_representatives_of_vectors_draw_into_an_axes_or_fill_a_figure():
    ax = new_axes()
    assert draw_representatives(vector_content(build_map, 5), ax) is ax and len(ax.lines) >= 3
    fig = new_figure(8, 6)
    assert draw_representatives(vector_content(build_map, 50), fig) is fig
    assert any(a.images for a in fig.axes)
    # A grid of images fills a sub-figure as well as a figure.
    fig = new_figure(10, 5)
    left, right = fig.subfigures(1, 2)
    draw_representatives(image_content(build_map), left)
    draw_representatives(image_content(build_map, channels=3), right, level=0)
    assert len(left.axes) == 4 and len(right.axes) == 10 and "sevens" in left.get_suptitle()


def test_funnel_draws_into_axes_and_figures():
    image = image_content(build_map, funnel=True)
    ax1, ax2 = new_axes(), new_axes()
    assert draw_funnel_shares(image, ax1) is ax1 and ax1.patches  # the stacked bars
    assert draw_funnel_entropy(image, ax2) is ax2 and ax2.lines
    fig = new_figure(11, 6.6, layout="constrained")
    assert draw_funnel(image, fig) is fig
    assert "sevens: funnel probe" in fig.get_suptitle() and empty_axes(fig) == []


def test_report_draws_go_into_the_axes_given():
    content, d, data = image_case()
    ax = new_axes()
    assert draw_energy_histogram(d, content, ax) is ax and ax.patches and ax.get_title().startswith("toy:")
    ax = new_axes()
    assert draw_nn_histogram(d, ax, content=content) is ax and ax.patches and ax.get_title().startswith("toy:")
    shown, flagged = worst_minima(content, d)
    ax = new_axes()
    assert draw_worst_minima(content, d, data, shown, ax, flagged=flagged) is ax
    assert len(ax.child_axes) == 2 * shown.size  # each minimum beside its nearest example
    for case in (point_case(2), point_case(5)):
        content, d, data = case
        ax = new_axes()
        shown, flagged = worst_minima(content, d)
        assert draw_worst_minima(content, d, data, shown, ax, flagged=flagged) is ax and ax.lines
        assert "toy" in ax.get_title()


def test_comparison_panels_draw_into_the_axes_given():
    profiles = [map_profile(m) for m in two_maps()]
    for draw in (plots_compare.draw_basin_counts, plots_compare.draw_barrier_spectra,
                 plots_compare.draw_funnel_scores, plots_compare.draw_spurious_shares):
        ax = new_axes()
        assert draw(profiles, ["A", "B"], ax) is ax and has_content(ax) and ax.get_legend() is not None
    # Nothing to draw for either side: no empty plot, a panel that says why.
    ax = new_axes()
    plots_compare.draw_funnel_scores([map_profile(wells_content(build_map)), None], ["W", "X"], ax)
    texts = " ".join(t.get_text() for t in ax.texts)
    assert "no funnel probe" in texts and "X: no map" in texts and not ax.get_xticks().size and not ax.lines


# ----------------------------------------------------------- titles name the model


def test_every_saved_map_figure_names_the_model_in_its_title_and_metadata(tmp_path, saved_figures):
    image = image_content(build_map, diagnosis=True, funnel=True)
    image.meta.source = {"kind": "checkpoint", "path": "runs/digits_convergent.pt"}
    image.attrs["minima"].pop("dataset", None)
    wells = wells_content(build_map)
    wells.funnel = FunnelData(noise=np.array([0.0, 1.0]), occupancy=np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]]),
                              entropy=np.array([1.03, 1.05]), score=0.0)
    cases = {
        "digits_convergent": [plot_tree, plot_representatives, plot_levels, plot_funnel,
                              lambda c, p: plot_tree(c, p, basins=True)],
        "wells": [plot_map_2d, plot_funnel],
    }
    for name, savers in cases.items():
        content = image if name == "digits_convergent" else wells
        for k, save in enumerate(savers):
            path = save(content, tmp_path / f"{name}{k}.png")
            assert png_title(path).startswith(f"{name}:"), (name, k, png_title(path))
    assert saved_figures and all(empty_axes(fig) == [] for fig in saved_figures)


def test_report_and_comparison_figures_name_the_model(tmp_path, saved_figures):
    content, d, data = image_case()
    for path in (report_module.plot_worst_minima(content, d, data, tmp_path / "w.png"),
                 report_module.plot_energy_histogram(d, content, tmp_path / "e.png"),
                 report_module.plot_nn_histogram(d, tmp_path / "n.png", content=content)):
        assert png_title(path).startswith("toy:"), png_title(path)
    for case in (point_case(2), point_case(5)):
        path = report_module.plot_worst_minima(*case, tmp_path / "p.png")
        assert png_title(path).startswith("toy:")
    path = plots_compare.plot_comparison(*two_maps(), ["convergent", "short-run"], tmp_path / "c.png")
    assert png_title(path) == "Landscapes compared: convergent (blue) vs short-run (orange)"
    plots_compare.plot_comparison(wells_content(build_map), None, ["W", "X"], tmp_path / "c2.png")
    assert saved_figures and all(empty_axes(fig) == [] for fig in saved_figures)


def test_a_long_title_wraps_to_the_figure(tmp_path):
    long = "a title that goes on " * 12
    text = svg_text(lambda p: plot_tree(vector_content(build_map, 5), p, title=long.strip()), tmp_path / "t.svg")
    assert "goes on a title" in text  # all of it is there ...
    ax = new_axes()
    draw_map_tree(vector_content(build_map, 5), ax, title=long.strip())
    lines = ax.get_title().split("\n")
    assert len(lines) >= 3 and max(map(len, lines)) < 110  # ... on lines a figure holds
    assert wrap("short", 5.0) == "short"


# ------------------------------------------------------- samples: start and steps


def test_the_empty_panel_check_sees_an_empty_panel():
    fig = new_figure(6, 3)
    full, blank = fig.subplots(1, 2)
    full.plot([0, 1], [0, 1])
    assert empty_axes(fig) == [blank]
    blank.set_visible(False)
    assert empty_axes(fig) == []


def test_chain_caption_says_where_chains_started_and_how_far_they_ran():
    assert chain_caption(200, "noise", n=100) == "100 chains from noise, 200 Langevin steps"
    assert chain_caption(1, "persistent") == "chains from the persistent bank, 1 Langevin step"
    assert chain_caption(50, "data", epsilon=0.01, tau=1.0) == "chains from data, 50 Langevin steps (eps=0.01, tau=1)"


def test_image_grids_carry_their_caption(tmp_path):
    x = torch.zeros(4, 1, 8, 8)
    plain, captioned = tmp_path / "plain.png", tmp_path / "captioned.png"
    tf.save_image_grid(x, plain)
    out = tf.save_image_grid(x, captioned, caption="m: 4 chains from noise, 30 Langevin steps")
    assert out == captioned and png_title(captioned) == "m: 4 chains from noise, 30 Langevin steps"
    with Image.open(plain) as a, Image.open(captioned) as b:
        assert png_title(plain) == ""
        assert b.size[1] > a.size[1] and b.size[0] == max(a.size[0], tf.MIN_CAPTION_PX)
        top = np.asarray(b.convert("L"))[:10]
        assert (top < 128).any() and (top == 255).mean() > 0.5  # black text on a white strip
    # a long path, one word wider than the grid, wraps in pieces (it was cut off at the edge)
    long = tmp_path / "long.png"
    tf.save_image_grid(x, long, caption="m: " + "a_very_long_directory_name/" * 6 + "run.pt, 4 chains")
    with Image.open(long) as c, Image.open(captioned) as b:
        strip = np.asarray(c.convert("L"))[: c.size[1] - 2 * 48 - 3]
        assert c.size[1] - b.size[1] >= 2 * 10  # two lines or more below the first
        assert (strip[:, -2:] == 255).all()  # nothing runs off the right edge


def test_chain_pictures_name_the_model_start_and_steps(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    report = chain_report(x, x.clamp(-0.5, 0.5), init="noise", steps=200, source="runs/digits_convergent.pt")
    assert save_chain_figure(report, tmp_path / "end.png") == tmp_path / "end.png"
    assert png_title(tmp_path / "end.png") == (
        "digits_convergent: 6 chains from noise, 200 Langevin steps (eps=0.01, tau=1)")
    assert png_title(tmp_path / "end_start.png") == "digits_convergent: the starts of 6 chains from noise (step 0)"
    p = torch.randn(50, 2, generator=g)
    energy = Energy(lambda z: 0.5 * (z**2).sum(1), shape=(2,), data_range=(-3.0, 3.0), name="rings.pt")
    report = chain_report(p, 0.3 * p, init="persistent", steps=40, source=None)
    text = svg_text(lambda path: save_chain_figure(report, path, energy), tmp_path / "two_d.svg")
    assert "rings: 50 chains from the persistent bank, 40 Langevin steps" in text
    assert "start (the persistent bank)" in text and "after 40 steps" in text


def test_training_figures_caption_their_samples(tmp_path, saved_figures):
    n = 50
    m = {"step": np.arange(1.0, n + 1), "d_st": np.tile([1.0, -1.0], n // 2), "v_t": np.linspace(1, 2, n),
         "r_t": np.linspace(0.1, 0.2, n)}
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        out = tf.plot_training_diagnostics(m, tmp_path / "diag.svg", title="digits_convergent on digits",
                                           init="persistent", steps=60)
    text = out.read_text()
    assert "digits_convergent on digits" in text and "chains from the persistent bank, 60 Langevin steps" in text
    xs, ys, u = dg.energy_grid(lambda z: 0.5 * (z**2).sum(1), (-3.0, 3.0), res=30)
    cell = (xs[1] - xs[0]) ** 2
    lq = dg.normalized_log_density_on_grid(u, cell)
    samples = np.random.default_rng(0).standard_normal((100, 2))
    text = svg_text(lambda p: tf.plot_toy_density(xs, ys, lq, lq, p, samples=samples, title="rings: density",
                                                  init="noise", steps=25), tmp_path / "density.svg")
    assert "rings: density" in text and "100 chains from noise, 25" in text
    assert saved_figures and all(empty_axes(fig) == [] for fig in saved_figures)
    # (saved without a tight box: its own layout must hold every title and label, a long title's too)
    tf.plot_toy_density(xs, ys, lq, lq, tmp_path / "density.png", samples=samples, kl=0.107, init="noise", steps=25,
                        title="rings-demo on rings: true vs learned density")
    fig = saved_figures[-1]
    renderer = fig.canvas.get_renderer()
    inside = fig.bbox.padded(1.0)
    for text in fig.findobj(matplotlib.text.Text):
        if text.get_visible() and text.get_text():
            box = text.get_window_extent(renderer)
            assert inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1, \
                text.get_text()


def test_the_long_run_check_figure_names_the_model_and_its_chains(tmp_path, saved_figures):
    data = 0.2 * torch.randn((200, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    well = Energy(lambda z: z.flatten(1).pow(2).sum(1) / (2 * 0.2**2), shape=(1, 4, 4), data_range=(-1.0, 1.0),
                  name="analytic")
    r = check_energy(well, data, L=10, epsilon=0.05, tau=1.0, multiples=(1, 3), n_chains=16, seed=1)
    r.source = "runs/digits_convergent.pt"
    text = svg_text(lambda p: save_check_figure(r, p), tmp_path / "check.svg")
    assert "digits_convergent: long-run check, convergent" in text
    assert "16 chains from data and noise, up to 30 Langevin steps" in text
    assert save_check_samples(r, tmp_path / "s.png", well) == tmp_path / "s.png"
    assert "digits_convergent: 16 chains from data, 30 Langevin steps" in png_title(tmp_path / "s.png")
    assert saved_figures and all(empty_axes(fig) == [] for fig in saved_figures)


# -------------------------------------------------------------------------- layout


def test_the_views_and_the_tree_draw_nothing():
    """The views of a map and the tree's computation import no matplotlib (the pictures
    are the plots package's)."""
    for rel in ("landscape/io/views.py", "landscape/mapping/tree.py"):
        tree = ast.parse((ROOT / rel).read_text(encoding="utf-8"))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.startswith("matplotlib")], rel


def test_the_funnel_bars_colour_the_sinks_the_text_names_and_the_curves_give_their_chains(make_map):
    from landscape.io.mapfile import FunnelData
    from landscape.mapping.funnel import describe

    content = make_map(np.zeros((12, 2)), np.arange(12.0))
    # Level 1 spreads its chains thinly (its many one-basin "sinks" fill the legend's 8
    # places when the most concentrated-looking rows come first); level 2 is where the
    # chains gather most (lowest entropy): its sinks 10 and 11 are the ones the text names.
    occ = np.zeros((3, 12))
    occ[0, :4] = 0.25
    occ[1, :8] = 0.05
    occ[1, 8] = 0.6
    occ[2, 10], occ[2, 11], occ[2, 0] = 0.45, 0.35, 0.2
    ent = np.array([-(r[r > 0] * np.log(r[r > 0])).sum() for r in occ])
    sink_rows = np.array([[0, 1, -1, -1, -1], [8, -1, -1, -1, -1], [10, 11, -1, -1, -1]])
    content.funnel = FunnelData(noise=np.array([0.0, 1.0, 2.0]), occupancy=occ, entropy=ent, score=0.0,
                                sinks=sink_rows, chain_start=np.array([0] * 20 + [1] * 20, dtype=np.int8),
                                occupancy_data=occ, occupancy_noise=occ)
    assert "basin 10 45%, basin 11 35%" in describe(content.funnel)
    fig = new_figure(10, 4)
    ax1, ax2 = fig.subplots(1, 2)
    draw_funnel_shares(content, ax1, max_basins=2)
    # (level 0's four basins at 25 % tie at the cut: drawn together, hatched)
    assert [t.get_text() for t in ax1.get_legend().get_texts()] == ["basin 10", "basin 11", "basins tied at the cut",
                                                                    "other basins"]
    draw_funnel_entropy(content, ax2)
    labels = [t.get_text() for t in ax2.get_legend().get_texts()]
    assert labels[:3] == ["all chains (40)", "chains from data (20)", "chains from noise (20)"]


def test_the_levels_slope_is_that_of_the_fall_not_of_the_plateau_and_floor(make_map):
    # The demo's convergent digits map fell 64, 64, 64, 60, 1, 1: a fit through every level
    # read -1.01 in one figure and -1.38 in another (its levels after a probe), against
    # ADELM's -2 to -4 for the fall alone.
    from landscape.plots.common import fall_slope

    cliff = fall_slope([0.03, 0.1, 0.3, 0.548, 1, 3], [64, 64, 64, 60, 1, 1])
    assert cliff[1:] == (0.3, 1.0)
    assert cliff[0] == pytest.approx(np.polyfit(np.log([0.3, 0.548, 1]), np.log([64, 60, 1]), 1)[0])
    assert cliff[0] < -3
    assert fall_slope([0.03, 0.1, 0.3, 1, 3], [10, 10, 7, 2, 1])[1:] == (0.1, 3.0)  # the rings
    assert fall_slope([0.3, 1, 3], [64, 1, 1]) is None  # a chord across a gap: no slope
    assert fall_slope([1, 3, 0.3, 0.1], [2, 1, 7, 10])[1:] == (0.1, 3.0)  # (any order)
    ax = new_axes()
    content = image_content(make_map)
    draw_levels(content, ax)
    label = ax.get_legend_handles_labels()[1][0]
    expect = fall_slope([p.multiplier for p in content.levels], [p.n_basins for p in content.levels])
    assert (("log-log slope" in label) == (expect is not None)), label
    assert expect is not None and f"over {expect[1]:.3g}-{expect[2]:.3g}" in label
    both = new_axes()  # (compare's panel: the same slope)
    plots_compare.draw_basin_counts([map_profile(content)] * 2, ["a", "b"], both)
    assert all(f"(log-log slope {expect[0]:.2f} over" in t for t in both.get_legend_handles_labels()[1]), \
        both.get_legend_handles_labels()[1]


def test_a_row_of_images_is_separated_in_a_colour_no_image_pixel_has_and_its_empty_places_are_blank():
    # (compare's rows of long-run samples: white 1-px gaps between white-edged digits, so
    # the non-convergent model's tiles ran together into one band)
    from landscape.plots.common import SEPARATOR_RGB, image_mosaic

    images = np.ones((3, 1, 4, 4))  # all white
    out = image_mosaic(images, -1.0, 1.0, slots=5)
    assert out.shape == (4, 5 * 4 + 4, 3)
    np.testing.assert_allclose(out[:, 4], np.asarray(SEPARATOR_RGB) / 255.0 * np.ones((4, 1)))  # between 1 and 2
    assert (out[:, :4] == 1.0).all() and (out[:, 15:] == 1.0).all()  # an image; the places past the third
