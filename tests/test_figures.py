"""Pictures of a map and the views behind them (levels, basin trees, merges), on small
hand-made maps of every kind: 2-D points on an energy, vectors, grey and RGB images."""

from __future__ import annotations

import math

import numpy as np
import pytest
from matplotlib.colors import to_hex

from landscape import LandscapeError
from landscape.io.files import atomic_path as atomic_output
from landscape.io.mapfile import FunnelData, read_map
from landscape.io.views import (
    basin_tree_of,
    data_range,
    leaf_basins,
    level_name,
    minima_kind,
    partition_of,
    spurious_minima,
    tree_merges,
)
from landscape.plots.common import check_picture_path
from landscape.plots.funnel import plot_funnel
from landscape.plots.maps import plot_levels, plot_map_2d, plot_representatives
from landscape.plots.tree import draw_map_tree, plot_tree
from conftest import (
    BASIN_MERGES,
    IMG_LEVELS,
    MINIMA_MERGES,
    assert_png,
    image_content,
    leaf_colours,
    new_axes,
    save,
    svg_text,
    vector_content,
    wells_content,
)

def test_partition_of_and_level_name_pick_a_level(make_map):
    c = image_content(make_map)
    assert partition_of(c) is c.levels[1] and partition_of(c, 3).n_basins == 1
    assert [partition_of(c, k).n_basins for k in range(4)] == [10, 4, 2, 1]
    assert level_name(c) == "the main level (alpha 1 units)" == level_name(c, 1)
    assert level_name(c, 3) == "level 3 (alpha 10 units)"
    c.levels[2].multiplier = None
    assert level_name(c, 2) == "level 2 (alpha 3)"
    for bad in (4, -1):
        with pytest.raises(LandscapeError, match=r"level .* is out of range: the map has 4 levels, 0\.\.3"):
            partition_of(c, bad)
    np.testing.assert_array_equal(leaf_basins(c, c.tree), IMG_LEVELS[1])
    np.testing.assert_array_equal(leaf_basins(c, c.tree, 2), IMG_LEVELS[2])


def test_basin_trees_of_each_level(make_map):
    c = image_content(make_map)
    main = basin_tree_of(c)
    np.testing.assert_array_equal(main.leaves, [0, 3, 5, 8])  # the representatives
    np.testing.assert_array_equal(main.energy, [-3.0, -2.0, -1.5, -1.0])
    np.testing.assert_allclose(main.heights, [m[2] for m in BASIN_MERGES])
    assert main.refined.tolist() == [True, False, False] and main.connected.all()
    # Every minimum its own basin: the tree over minima itself.
    finest = basin_tree_of(c, 0)
    np.testing.assert_array_equal(finest.linkage, c.tree.linkage)
    two = basin_tree_of(c, 2)
    np.testing.assert_array_equal(two.leaves, [0, 8])
    assert two.heights.tolist() == [0.0] and two.pair.tolist() == [8]
    assert basin_tree_of(c, 3).n_leaves == 1
    with pytest.raises(LandscapeError, match="out of range"):
        basin_tree_of(c, 4)


def test_tree_merges_over_minima(make_map):
    c = image_content(make_map)
    merges = tree_merges(c)
    got = [(m.lower, m.higher, m.height, m.relative) for m in merges]
    assert got == [pytest.approx(m) for m in MINIMA_MERGES]
    assert [m.row for m in merges] == list(range(9)) and merges[-1].count == 10
    refined = {m.pair: m for m in merges if m.refined}
    assert list(refined) == [(3, 5)]
    m = refined[(3, 5)]
    assert m.height == m.saddle == -1.05 and m.estimate == -1.0 and not m.above_estimate
    # The saddle of 0-3 lies far above its estimate: reported, the tree keeps the estimate.
    m = next(m for m in merges if m.pair == (0, 3))
    assert m.above_estimate and not m.refined and m.height == m.estimate == -0.5 and m.saddle == 2.0
    assert m.barrier_row == 7 and m.above_lowest == pytest.approx(2.5) and m.connected


def test_tree_merges_over_basins(make_map):
    c = image_content(make_map)
    merges = tree_merges(c, basin_tree_of(c))
    assert [(m.lower, m.higher, m.height, m.relative) for m in merges] == [pytest.approx(m) for m in BASIN_MERGES]
    assert [m.pair for m in merges] == [(3, 5), (0, 3), (5, 8)]
    assert [m.barrier_row for m in merges] == [6, 7, 8]
    assert [m.refined for m in merges] == [True, False, False]
    assert [m.above_estimate for m in merges] == [False, True, False]
    assert [m.children for m in merges] == [(1, 2), (0, 4), (3, 5)] and merges[1].above_lowest == 2.5
    assert math.isnan(merges[2].saddle) and merges[2].estimate == 0.0


def test_tree_merges_without_a_path(make_map):
    c = vector_content(make_map, 3, connected=False)
    merges = tree_merges(c)
    last = merges[-1]
    assert not last.connected and last.pair is None and last.barrier_row is None
    assert math.isnan(last.relative) and math.isnan(last.above_lowest) and math.isnan(last.estimate)
    assert last.height == c.tree.top > max(m.height for m in merges[:-1])
    assert (last.lower, last.higher) == (0, 4) and all(m.connected for m in merges[:-1])


def test_minima_kinds_and_data_range(make_map):
    assert minima_kind(image_content(make_map)) == "image"
    assert minima_kind(image_content(make_map, channels=3)) == "image"
    assert minima_kind(image_content(make_map, channels=None)) == "image"
    assert minima_kind(wells_content(make_map, paths=False, grid=False)) == "2d"
    assert minima_kind(vector_content(make_map, 5)) == "vector"
    with pytest.raises(LandscapeError, match=r"1 \(grey\) or 3 \(RGB\) channels"):
        minima_kind(image_content(make_map, channels=2))
    assert minima_kind(vector_content(make_map, 1)) == "vector"  # (drawn at their energies)
    with pytest.raises(LandscapeError, match=r"cannot draw minima of shape \(2, 2, 2, 2\)"):
        minima_kind(make_map(np.zeros((2, 2, 2, 2, 2)), [0.0, 1.0], source="x"))
    assert data_range(wells_content(make_map, paths=False, grid=False)) == (-2.0, 2.0)  # the attr
    v = vector_content(make_map, 3)
    v.attrs["minima"].pop("data_range")
    assert data_range(v) == pytest.approx((float(v.minima_x.min()), float(v.minima_x.max())))


# ------------------------------------------------------------------------ pictures


def test_tree_pictures_for_every_kind_of_map(tmp_path, make_map):
    image = read_map(save(tmp_path, image_content(make_map, diagnosis=True)))
    assert_png(plot_tree(image, tmp_path / "minima.png"))
    assert_png(plot_tree(image, tmp_path / "basins.png", basins=True))
    assert_png(plot_tree(image, tmp_path / "level0.png", level=0, basins=True))
    assert_png(plot_tree(image_content(make_map, channels=3), tmp_path / "rgb.png", level=2))
    assert_png(plot_tree(vector_content(make_map, 5, connected=False), tmp_path / "vector.png"))
    assert_png(plot_tree(wells_content(make_map), tmp_path / "wells.png", basins=True))
    assert (plot_tree(image, tmp_path / "tree.svg").read_text().lstrip().startswith("<?xml"))
    assert plot_tree(image, tmp_path / "tree.pdf").read_bytes()[:5] == b"%PDF-"
    with pytest.raises(LandscapeError, match="out of range"):
        plot_tree(image, tmp_path / "bad.png", level=7)
    assert not (tmp_path / "bad.png").exists() and not list(tmp_path.glob(".*"))


def test_representatives_of_images(tmp_path, make_map):
    content = read_map(save(tmp_path, image_content(make_map, diagnosis=True)))
    assert_png(plot_representatives(content, tmp_path / "grey.png"))
    assert_png(plot_representatives(image_content(make_map, channels=3), tmp_path / "sub" / "rgb.png",
                                    max_basins=2, title="two"))
    assert_png(plot_representatives(image_content(make_map, channels=None), tmp_path / "hw.png"))
    assert_png(plot_representatives(content, tmp_path / "level0.png", level=0))
    text = svg_text(lambda p: plot_representatives(content, p, max_basins=3), tmp_path / "reps.svg")
    assert "lowest 3 of 4 basins" in text and "#0  E=-3" in text and "#3" not in text
    text = svg_text(lambda p: plot_representatives(content, p), tmp_path / "all.svg")
    assert "#3  E=-1" in text and "2 min, 19 hits" in text  # basin 3: minima 8, 9
    assert "(red: flagged spurious)" in text
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_a_2d_map_marks_no_saddle_on_a_flat_merge_and_turns_labels_at_its_edges_inward(make_map, monkeypatch):
    # (the rings map's "saddle of the 12 highest merges" marked 9 merges the text tree calls
    # flat; saddle labels at the box's edge ran off the axes)
    from landscape.mapping.tree import BarrierTree
    from landscape.plots.maps import draw_map_2d

    content = wells_content(make_map)
    rows = np.flatnonzero(np.isfinite(content.tree_saddle).all(axis=1))
    ax = new_axes()
    draw_map_2d(content, ax)
    assert len([t for t in ax.texts if t.get_color() == "red"]) == 2
    flat = np.zeros(content.tree.linkage.shape[0], dtype=bool)
    flat[rows[0]] = True
    monkeypatch.setattr(BarrierTree, "flat", lambda self, rtol=None: flat)
    ax = new_axes()
    draw_map_2d(content, ax)
    assert len([t for t in ax.texts if t.get_color() == "red"]) == 1
    monkeypatch.undo()
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    content.tree_saddle[rows[0]] = (x1 - 0.01 * (x1 - x0), y1 - 0.01 * (y1 - y0))  # the top right corner
    ax = new_axes()
    draw_map_2d(content, ax)
    corner = next(t for t in ax.texts if t.get_color() == "red" and t.xy[0] > x1 - 0.02 * (x1 - x0))
    assert corner.get_ha() == "right" and corner.xyann[0] < 0 and corner.xyann[1] < 0


def test_a_2d_map_draws_flat_edges_faint_and_keeps_its_legend_off_the_basins(make_map):
    # (a map of three narrow wells on a plateau drew 75 plateau minima's wandering paths as
    # barrier crossings, and matplotlib's "best" legend covered a well: every other place
    # held more of the plateau's dots)
    from matplotlib.collections import LineCollection

    from landscape.plots.maps import _place_map_legend, draw_map_2d

    content = wells_content(make_map)
    ax = new_axes()
    draw_map_2d(content, ax)
    flat = int(content.tree.flat().sum())
    assert flat == 6
    (faint,) = [c for c in ax.collections if isinstance(c, LineCollection) and not hasattr(c, "levels")]
    assert len(faint.get_segments()) == flat
    crimson = [ln for ln in ax.get_lines() if ln.get_color() == "crimson"]
    assert len(crimson) == content.tree.linkage.shape[0] - flat  # the two refined paths between wells
    # Where every merge is flat (minima along a valley floor), the colours span the grid's
    # lower three quarters, not the flat merges' heights (a hair above the floor: one colour).
    from landscape.mapping.tree import BarrierTree

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(BarrierTree, "flat", lambda self, rtol=None: self.connected.copy())
        ax = new_axes()
        draw_map_2d(content, ax)
    (filled,) = [c for c in ax.collections if hasattr(c, "levels") and getattr(c, "filled", False)]
    grid = np.asarray(content.grid.energy, dtype=np.float64)
    assert filled.levels.max() == pytest.approx(np.quantile(grid[np.isfinite(grid)], 0.75))
    # A star at the left middle, dots everywhere else along the frame and in the centre
    # (where "best" puts the legend over the star): the legend covers dots, not the star.
    ax = new_axes()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    edge = np.linspace(0.2, 9.8, 25)
    grid = np.linspace(2.5, 7.5, 6)
    dots = np.concatenate([np.stack([edge, np.full(25, 9.6)], 1), np.stack([edge, np.full(25, 0.4)], 1),
                           np.stack([np.full(25, 9.6), edge], 1), np.stack([np.full(12, 0.4), edge[:12] * 0.35], 1),
                           np.stack([np.full(12, 0.4), 6.5 + edge[:12] * 0.35], 1),
                           np.stack(np.meshgrid(grid, grid), -1).reshape(-1, 2)])
    star = np.array([[0.6, 5.0]])
    from matplotlib.lines import Line2D

    ax.scatter(dots[:, 0], dots[:, 1])
    ax.scatter(star[:, 0], star[:, 1], marker="*")
    handles = [Line2D([], [], label=f"entry {k}") for k in range(5)]
    legend = _place_map_legend(ax, handles, star, dots, [])
    box = legend.get_window_extent(ax.figure.canvas.get_renderer())
    sx, sy = ax.transData.transform(star)[0]
    assert not (box.x0 <= sx <= box.x1 and box.y0 <= sy <= box.y1)


def test_many_basins_of_a_few_coordinates_are_a_heat_map_not_a_band_of_lines(make_map):
    # (32 basins of a 5-D map as 32 parallel-coordinate lines on top of each other, their
    # "#k" labels run together)
    from landscape.plots.maps import MAX_LINES, draw_representatives

    rng = np.random.default_rng(0)
    few, many = (make_map(rng.normal(size=(n, 5)), np.arange(float(n))) for n in (MAX_LINES, MAX_LINES + 1))
    ax = draw_representatives(few, new_axes(), level=0)
    assert not ax.images and len(ax.lines) >= MAX_LINES
    ax = draw_representatives(many, new_axes(), level=0)
    assert len(ax.images) == 1 and len(ax.get_yticklabels()) == MAX_LINES + 1


def test_representatives_of_vectors(tmp_path, make_map):
    assert_png(plot_representatives(vector_content(make_map, 5), tmp_path / "lines.png"))
    assert_png(plot_representatives(vector_content(make_map, 50), tmp_path / "heat.png"))
    with pytest.raises(LandscapeError, match="2-D points"):
        plot_representatives(wells_content(make_map), tmp_path / "x.png")
    assert_png(plot_representatives(vector_content(make_map, 1), tmp_path / "line.png"))
    with pytest.raises(LandscapeError, match=r"cannot draw minima of shape \(2, 2, 2, 2\)"):
        plot_representatives(make_map(np.zeros((2, 2, 2, 2, 2)), [0.0, 1.0], source="x"), tmp_path / "x.png")
    with pytest.raises(LandscapeError, match="channels"):
        plot_representatives(image_content(make_map, channels=2), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_map_2d_with_and_without_grid_and_paths(tmp_path, make_map):
    content = read_map(save(tmp_path, wells_content(make_map)))
    assert content.tree.refined.sum() == 2 and content.tree_path is not None
    assert_png(plot_map_2d(content, tmp_path / "map.png"), min_bytes=20000)
    text = svg_text(lambda p: plot_map_2d(content, p), tmp_path / "map.svg")
    assert "refined path (tree edge)" in text and "saddle of the 2 highest barriers" in text
    # The edges within wells are estimates over which a minimum drains into its well's
    # bottom with no barrier: drawn faint, not as barrier crossings.
    assert "tree edge with no barrier" in text and "tree edge (estimate)" not in text
    assert_png(plot_map_2d(content, tmp_path / "level.png", level=0))
    plain = wells_content(make_map, paths=False, grid=False)
    text = svg_text(lambda p: plot_map_2d(plain, p), tmp_path / "plain.svg")
    assert "no energy grid in this map" in text and "refined path" not in text and "saddle of" not in text
    for other in (image_content(make_map), vector_content(make_map, 4)):
        with pytest.raises(LandscapeError, match="2-D energies"):
            plot_map_2d(other, tmp_path / "y.png")
    assert not (tmp_path / "y.png").exists()


def test_levels_picture(tmp_path, make_map):
    content = image_content(make_map)
    assert_png(plot_levels(content, tmp_path / "levels.png"))
    text = svg_text(lambda p: plot_levels(content, p), tmp_path / "levels.svg")
    assert "log-log slope" in text and "main level: alpha 1 units, 4 basins" in text
    assert_png(plot_levels(vector_content(make_map, 3), tmp_path / "one.png"))  # a single level
    flat = make_map(np.zeros((2, 2)), [0.0, 1.0], alphas=[0.0])
    with pytest.raises(LandscapeError, match="no level has alpha > 0"):
        plot_levels(flat, tmp_path / "z.png")
    assert not (tmp_path / "z.png").exists()


def test_funnel_picture(tmp_path, make_map):
    image = read_map(save(tmp_path, image_content(make_map, funnel=True)))
    assert_png(plot_funnel(image, tmp_path / "funnel.png"))
    text = svg_text(lambda p: plot_funnel(image, p), tmp_path / "funnel.svg")
    assert "basin 0: 90%" in text and "the funnel's sinks" in text  # the sink basins, as images
    wells = wells_content(make_map)
    wells.funnel = FunnelData(noise=np.array([0.0, 1.0]), occupancy=np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]]),
                              entropy=np.array([1.03, 1.05]), score=0.0, sinks=np.array([[0, -1], [1, 2]]))
    text = svg_text(lambda p: plot_funnel(wells, p), tmp_path / "wells.svg")
    assert "basin 0:" not in text and "basin 2" in text  # no pictures of 2-D points; the sinks in the legend
    with pytest.raises(LandscapeError, match="no funnel probe"):
        plot_funnel(image_content(make_map), tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_funnel_picture_without_stored_sinks(tmp_path, make_map):
    wells = wells_content(make_map)
    # Level 0: basin 0 alone holds half the chains; level 1: basins 1 and 2 are needed.
    wells.funnel = FunnelData(noise=np.array([0.0, 1.0]), occupancy=np.array([[0.5, 0.3, 0.2], [0.2, 0.4, 0.4]]),
                              entropy=np.array([1.03, 1.05]), score=0.0)
    assert_png(plot_funnel(wells, tmp_path / "funnel.png"))


def test_every_title_names_the_source(tmp_path, make_map):
    image = image_content(make_map, funnel=True)
    wells = wells_content(make_map)
    vector = vector_content(make_map, 5)
    drawings = {
        "sevens": [lambda p: plot_tree(image, p), lambda p: plot_tree(image, p, basins=True),
                   lambda p: plot_representatives(image, p), lambda p: plot_levels(image, p),
                   lambda p: plot_funnel(image, p)],
        "wells": [lambda p: plot_map_2d(wells, p), lambda p: plot_tree(wells, p)],
        "gauss_mix": [lambda p: plot_representatives(vector, p), lambda p: plot_tree(vector, p)],
    }
    for name, draws in drawings.items():
        for k, draw in enumerate(draws):
            text = svg_text(draw, tmp_path / f"{name}{k}.svg")
            assert f"{name}:" in text, (name, k, text[:300])
    # The data set the model learned names the map when the map says it.
    image.attrs["minima"]["dataset"] = "digits"
    assert "digits:" in svg_text(lambda p: plot_levels(image, p), tmp_path / "digits.svg")
    # A title given replaces the default.
    assert "my own title" in svg_text(lambda p: plot_tree(vector, p, title="my own title"), tmp_path / "own.svg")


def test_tree_leaves_show_their_basin_and_flag_at_their_foot_and_no_basin_is_red(make_map):
    # The demo's non-convergent report flagged 223 of 223 minima, yet about 12 leaves looked
    # red: most merged at their own energy (no line to colour), and one leaf was red for
    # its basin's colour (tab10's red), not for being flagged.
    from matplotlib.colors import to_rgb

    from landscape.plots.common import basin_colors

    reds = {to_hex(c) for c in ("#d62728", "#ff9896", "red")}
    greys = {to_hex(c) for c in ("#7f7f7f", "#c7c7c7")}  # (grey is for the basins not told apart)
    for b in (1, 4, 8, 9, 10, 16, 20, 40):
        colours = {to_hex(c) for c in basin_colors(b)}
        assert not colours & (reds | greys) and len(colours) == min(b, 8 if b <= 8 else 16), b
    content = image_content(make_map, diagnosis=True)
    ax = new_axes()
    draw_map_tree(content, ax, level=0)
    feet = [c for c in ax.collections if len(c.get_offsets()) > 0]
    dots = next(c for c in feet if to_hex(c.get_facecolors()[0]) != "#ff0000")
    crosses = next(c for c in feet if to_hex(c.get_facecolors()[0]) == "#ff0000")
    flagged = int(np.asarray(spurious_minima(content)).sum())
    assert len(crosses.get_offsets()) == flagged and len(dots.get_offsets()) == 10 - flagged
    assert len({to_hex(c) for c in dots.get_facecolors()}) == 10 - flagged  # (level 0: a basin per minimum)
    assert ax.get_legend().get_texts()[0].get_text() == f"flagged spurious ({flagged} of 10 minima)"
    assert all(to_rgb(c) != to_rgb("red") for c in dots.get_facecolors()[:, :3])
    plain = new_axes()
    draw_map_tree(image_content(make_map), plain)
    # (nothing flagged: the legend has only the dashed estimates, 8 of this map's 9 merges)
    assert [t.get_text() for t in plain.get_legend().get_texts()] == [
        "barrier estimated, not refined to a saddle (8 of 9 merges)"]


def test_beyond_sixteen_basins_the_largest_keep_a_colour_and_the_rest_are_grey_as_the_title_says(make_map):
    # (25 basins coloured from 18 colours: minima 0 and 20 of one tree the same blue, as if
    # in one basin)
    from landscape.plots.common import OTHER_BASINS, basin_palette

    basin = np.repeat(np.arange(25), np.r_[np.full(15, 3), np.ones(10, dtype=int)])  # 15 basins of 3, 10 of 1
    palette, grey = basin_palette(np.random.default_rng(0).permutation(basin))
    assert grey == 10 and [to_hex(c) for c in palette[15:]] == [to_hex(OTHER_BASINS)] * 10
    assert len({to_hex(c) for c in palette[:15]}) == 15 and to_hex(OTHER_BASINS) not in {to_hex(c) for c in palette[:15]}
    # sizes given (chains per basin): the fullest keep their colours
    palette, grey = basin_palette(basin, sizes=np.arange(25.0))
    hexes = [to_hex(c) for c in palette]
    assert hexes[:10] == [to_hex(OTHER_BASINS)] * 10 and to_hex(OTHER_BASINS) not in hexes[10:]
    assert basin_palette(np.arange(16))[1] == 0
    content = make_map(np.zeros((25, 2)) + np.arange(25.0)[:, None], np.arange(25.0))
    ax = new_axes()
    draw_map_tree(content, ax, level=0)
    assert "(the 15 with most minima in colour, the other 10 grey)" in ax.get_title().replace("\n", " ")


def test_draw_map_tree_into_a_given_axes(make_map):
    content = image_content(make_map, diagnosis=True)
    ax = new_axes()
    assert draw_map_tree(content, ax) is ax
    assert ax.get_xlabel() == "minima (10)" and ax.get_ylabel() == "energy U"
    assert ax.get_title().startswith("sevens: disconnectivity graph over 10 minima")
    assert [t.get_text() for t in ax.get_xticklabels()] and len(ax.get_xticklabels()) == 10
    # Leaves coloured by basin at the level; the spurious minimum in red.
    assert len(leaf_colours(ax)) == 4  # minimum 8 is red, 9 shows basin 3's colour
    assert any(to_hex(line.get_color()) == "#ff0000" for line in ax.lines)
    ax0 = new_axes()
    draw_map_tree(image_content(make_map), ax0, level=0)
    assert len(leaf_colours(ax0)) == 10
    ax3 = new_axes()
    draw_map_tree(image_content(make_map), ax3, level=3)
    assert len(leaf_colours(ax3)) == 1
    # Over basins: one leaf per basin, dots sized by hits.
    axb = new_axes()
    draw_map_tree(content, axb, basins=True, title="given")
    assert axb.get_xlabel() == "basins (4)" and axb.get_title() == "given" and axb.collections
    y_low, _ = axb.get_ylim()
    assert y_low < -3.0
    # Folded beyond max_leaves.
    axf = new_axes()
    draw_map_tree(content, axf, max_leaves=3)
    assert axf.get_xlabel() == "minima (10, lowest merges folded to 3 groups)"
    # Groups with no path between them are drawn dashed, above everything, and said so.
    axd = new_axes()
    disconnected = vector_content(make_map, 4, connected=False)
    draw_map_tree(disconnected, axd)
    assert any(t.get_text().strip() == "no path found" for t in axd.texts)
    assert any(line.get_linestyle() == "--" for line in axd.lines)
    assert axd.get_ylim()[1] > disconnected.tree.top


def test_picture_paths_and_atomic_output(tmp_path, make_map):
    with pytest.raises(LandscapeError, match="picture format"):
        check_picture_path(tmp_path / "x.h5")
    assert check_picture_path(str(tmp_path / "x.PNG")) == tmp_path / "x.PNG"
    with pytest.raises(LandscapeError, match="picture format"):
        plot_tree(image_content(make_map), tmp_path / "noext")
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["keep.png"]
    with atomic_output(tmp_path / "new" / "dir" / "x.png") as tmp:
        tmp.write_bytes(b"whole")
    assert (tmp_path / "new" / "dir" / "x.png").read_bytes() == b"whole"


def test_a_2d_map_names_its_attraction_diffusion_temperature_and_does_not_overprint_saddle_labels(make_map):
    # (the demo's rings map mixed rings in its basins, which its picture did not explain:
    # attraction-diffusion ran at the model's own T; and two saddles 0.05 apart printed
    # their energies over each other)
    from landscape.plots.maps import draw_map_2d

    content = wells_content(make_map)
    rows = np.flatnonzero(np.isfinite(content.tree_saddle).all(axis=1))
    assert rows.size == 2
    ax = new_axes()
    draw_map_2d(content, ax)
    labels = [t for t in ax.texts if t.get_color() == "red"]
    assert len(labels) == 2 and ax.get_title().endswith("attraction-diffusion at T = 1")
    content.tree_saddle[rows[1]] = content.tree_saddle[rows[0]] + 0.01  # (next to the other)
    ax = new_axes()
    draw_map_2d(content, ax)
    crosses = [c for c in ax.collections if len(c.get_offsets()) == 1 and c.get_facecolor().size
               and to_hex(c.get_facecolor()[0]) == "#ff0000"]
    assert len([t for t in ax.texts if t.get_color() == "red"]) == 1 and len(crosses) == 2
