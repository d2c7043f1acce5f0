"""Pictures of a map and the views behind them (levels, basin trees, merges), on small
hand-made maps of every kind: 2-D points on an energy, vectors, grey and RGB images."""

from __future__ import annotations

import html
import math
import re

import matplotlib
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from landscape import LandscapeError
from landscape.plots.figures import (
    atomic_output,
    basin_tree_of,
    check_picture_path,
    data_range,
    draw_map_tree,
    leaf_basins,
    level_name,
    minima_kind,
    partition_of,
    plot_funnel,
    plot_levels,
    plot_map_2d,
    plot_representatives,
    plot_tree,
    tree_merges,
)
from landscape.io.mapfile import DiagnosisData, FunnelData, GridData, read_map, write_map

PNG = b"\x89PNG\r\n\x1a\n"

# ------------------------------------------------------------------ the image map
# Shared with tests/test_tree_cmd.py. Ten minima in four basins at the main level (1);
# within a basin the minima join low, between basins:
#   basins 1-2 at -1.05 (a refined saddle, below its estimate -1.0) via minima 3-5,
#   basin 0 joins at -0.5 via minima 0-3 (their saddle, 2.0, lies far above the
#   estimate: the tree keeps the estimate), basin 3 joins at 0.0 via minima 5-8; the
#   0-8 trial found no path.

IMG_ENERGY = [-3.0, -2.9, -2.8, -2.0, -1.9, -1.5, -1.4, -1.3, -1.0, -0.9]
IMG_LEVELS = [list(range(10)), [0, 0, 0, 1, 1, 2, 2, 2, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 1, 1], [0] * 10]
IMG_ALPHAS = [0.3, 1.0, 3.0, 10.0]
IMG_PAIRS = [(0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (8, 9), (3, 5), (0, 3), (5, 8), (0, 8)]
IMG_ESTIMATE = [-2.7, -2.6, -1.8, -1.2, -1.1, -0.8, -1.0, -0.5, 0.0, np.inf]
IMG_REFINED = [np.nan] * 6 + [-1.05, 2.0, np.nan, np.nan]
IMG_SOURCE = {"kind": "checkpoint", "path": "runs/sevens.pt", "sha256": "cd" * 32, "regime": "convergent"}
# The tree over minima: (lower, higher, height, relative), lowest first.
MINIMA_MERGES = [
    (0, 1, -2.7, 0.2), (0, 2, -2.6, 0.2), (3, 4, -1.8, 0.1), (5, 6, -1.2, 0.2), (5, 7, -1.1, 0.2),
    (3, 5, -1.05, 0.45), (8, 9, -0.8, 0.1), (0, 3, -0.5, 1.5), (0, 8, 0.0, 1.0),
]
# The tree over the main level's basins.
BASIN_MERGES = [(1, 2, -1.05, 0.45), (0, 1, -0.5, 1.5), (0, 3, 0.0, 1.0)]


def image_content(make_map, channels: int | None = 1, diagnosis: bool = False, funnel: bool = False):
    """The image map; ``channels=None`` gives minima of shape (8, 8)."""
    n = len(IMG_ENERGY)
    basin = np.array(IMG_LEVELS[1])
    shape = (8, 8) if channels is None else (channels, 8, 8)
    x = np.full((n, *shape), -1.0, dtype=np.float32)
    for k in range(n):  # basin b: a bar at rows 2b, 2b+1
        x[k, ..., 2 * basin[k]: 2 * basin[k] + 2, 1:7] = 1.0 if k in (0, 3, 5, 8) else 0.3
        x[k, ..., 7, k % 8] = 2.0  # outside the data range: clipped
    c = make_map(x, IMG_ENERGY, IMG_PAIRS, IMG_ESTIMATE, refined=IMG_REFINED, levels=IMG_LEVELS, alphas=IMG_ALPHAS,
                 main=1, hits=np.arange(1, n + 1), source=IMG_SOURCE, config={"temperature": 20.0},
                 attrs={"minima": {"temperature": 20.0}, "levels": {"temperature": 0.5, "alpha_unit": 0.2}})
    if diagnosis:
        spurious = np.zeros(n, dtype=bool)
        spurious[8] = True  # the lowest minimum of basin 3
        c.diagnosis = DiagnosisData(spurious=spurious, nn_distance=np.linspace(0.1, 1.0, n))
    if funnel:
        occ = np.array([[0.3, 0.3, 0.2, 0.2], [0.6, 0.2, 0.1, 0.1], [0.9, 0.1, 0.0, 0.0]])
        ent = np.array([-(r[r > 0] * np.log(r[r > 0])).sum() for r in occ])
        c.funnel = FunnelData(noise=np.array([0.0, 0.5, 1.0]), occupancy=occ, entropy=ent, score=0.75,
                              attrs={"chains_per_level": 40, "reference_entropy": float(ent[0]),
                                     "reference": "chains from data at the lowest noise"},
                              sinks=np.array([[0, 1, -1], [0, -1, -1], [0, -1, -1]]),
                              occupancy_data=occ, occupancy_noise=occ[:, ::-1].copy())
    return c


# ------------------------------------------------------------------- the vector map

VEC_ENERGY = [-2.0, -1.9, -1.0, -0.8, 0.5, 0.6]


def vector_content(make_map, d: int, connected: bool = True):
    """Six minima in R^d, three basins; a chain of barriers (the last missing unless
    ``connected``)."""
    rng = np.random.default_rng(2)
    barrier = [-1.5, 1.0, -0.5, 2.0, 1.0]
    if not connected:
        barrier[3] = np.inf  # no path from minima 4, 5 to the others
    return make_map(rng.normal(size=(6, d)), VEC_ENERGY, [(i, i + 1) for i in range(5)], barrier,
                    levels=[[0, 0, 1, 1, 2, 2]], source={"kind": "function", "spec": "gauss_mix"})


# ---------------------------------------------------------------------- the 2-D map

WELLS = np.array([[-1.0, -0.3], [0.9, -0.1], [0.1, 1.1]])
DEPTHS = np.array([3.0, 2.2, 1.8])


def wells_energy(xy: np.ndarray) -> np.ndarray:
    """Three Gaussian wells in a weak bowl: U(x) = 0.1 |x|^2 - sum_k d_k exp(-|x - c_k|^2 / 0.245)."""
    xy = np.asarray(xy, dtype=np.float64)
    d2 = ((xy[..., None, :] - WELLS) ** 2).sum(-1)
    return 0.1 * (xy**2).sum(-1) - (DEPTHS * np.exp(-d2 / 0.245)).sum(-1)


def _segment(a, b, bend: float = 0.0, points: int = 41) -> np.ndarray:
    t = np.linspace(0.0, 1.0, points)[:, None]
    normal = np.array([[-(b - a)[1], (b - a)[0]]]) / max(np.linalg.norm(b - a), 1e-12)
    return a * (1 - t) + b * t + bend * np.sin(np.pi * t) * normal


def wells_content(make_map, paths: bool = True, grid: bool = True):
    """Nine minima of ``wells_energy``, three per well (the first at the bottom), sorted by
    energy; within a well straight-line barriers; between wells 0-1 and 1-2 refined
    saddles (below the straight-line estimates, which overshoot), 0-2 an estimate only."""
    rng = np.random.default_rng(1)
    x = np.repeat(WELLS, 3, axis=0) + rng.normal(scale=0.05, size=(9, 2))
    x[::3] = WELLS
    label = np.repeat(np.arange(3), 3)
    order = np.argsort(wells_energy(x), kind="stable")
    x, label = x[order], label[order]
    energy = wells_energy(x)
    bottom = [int(np.flatnonzero(label == w)[np.argmin(energy[label == w])]) for w in range(3)]
    pairs, estimate, refined = [], [], []
    for k in range(9):
        if k not in bottom:
            pairs.append((bottom[label[k]], k))
            estimate.append(wells_energy(_segment(x[bottom[label[k]]], x[k])).max())
            refined.append(np.nan)
    for (a, b), over, refine in (((0, 1), 0.05, True), ((1, 2), 0.05, True), ((0, 2), 0.4, False)):
        line = wells_energy(_segment(x[bottom[a]], x[bottom[b]])).max()
        pairs.append((bottom[a], bottom[b]))
        estimate.append(line + over)
        refined.append(line if refine else np.nan)
    c = make_map(x, energy, pairs, estimate, refined=refined, levels=[label],
                 source={"kind": "function", "spec": "wells", "shape": [2]},
                 attrs={"minima": {"temperature": 0.5, "data_range": [-2.0, 2.0]}})
    if paths:
        t = c.tree
        c.tree_saddle = np.full((8, 2), np.nan, dtype=np.float32)
        c.tree_path = np.full((8, 41, 2), np.nan, dtype=np.float32)
        for k in np.flatnonzero(t.refined):
            i, j = c.barriers.pairs[t.pair[k]]
            path = _segment(x[i], x[j], bend=0.1)
            c.tree_path[k] = path
            c.tree_saddle[k] = path[np.argmax(wells_energy(path))]
    if grid:
        g = np.linspace(-2.0, 2.0, 48)
        gx, gy = np.meshgrid(g, g)
        c.grid = GridData(x=g, y=g, energy=wells_energy(np.stack([gx, gy], axis=-1)))
    return c


# ------------------------------------------------------------------------- helpers


def save(tmp_path, content, name: str = "m.h5"):
    """Write ``content`` as a map with the source its meta names."""
    return write_map(tmp_path / name, content, config=content.meta.config, source=content.meta.source,
                     tool_version="0.1.0")


def assert_png(path, min_bytes: int = 3000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes, (path, len(data))


def svg_text(draw, path) -> str:
    """Draw to an SVG with text kept as text; all its text, unescaped, joined by spaces."""
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        out = draw(path)
    assert out == path
    return " ".join(html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text()))


def new_axes():
    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    return fig.add_subplot(1, 1, 1)


def leaf_colours(ax) -> set[str]:
    """The colours of the drawn lines other than black, grey (merges) and red (marked)."""
    return {to_hex(line.get_color()) for line in ax.lines} - {"#000000", "#808080", "#ff0000"}


# ------------------------------------------------------------------------ the views


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
    with pytest.raises(LandscapeError, match=r"cannot draw minima of shape \(1,\)"):
        minima_kind(vector_content(make_map, 1))
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
    assert "#3  E=-1  spurious" in text and "2 min, 19 hits" in text  # basin 3: minima 8, 9
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_representatives_of_vectors(tmp_path, make_map):
    assert_png(plot_representatives(vector_content(make_map, 5), tmp_path / "lines.png"))
    assert_png(plot_representatives(vector_content(make_map, 50), tmp_path / "heat.png"))
    with pytest.raises(LandscapeError, match="2-D points"):
        plot_representatives(wells_content(make_map), tmp_path / "x.png")
    with pytest.raises(LandscapeError, match=r"cannot draw minima of shape \(1,\)"):
        plot_representatives(vector_content(make_map, 1), tmp_path / "x.png")
    with pytest.raises(LandscapeError, match="channels"):
        plot_representatives(image_content(make_map, channels=2), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_map_2d_with_and_without_grid_and_paths(tmp_path, make_map):
    content = read_map(save(tmp_path, wells_content(make_map)))
    assert content.tree.refined.sum() == 2 and content.tree_path is not None
    assert_png(plot_map_2d(content, tmp_path / "map.png"), min_bytes=20000)
    text = svg_text(lambda p: plot_map_2d(content, p), tmp_path / "map.svg")
    assert "refined path (tree edge)" in text and "saddle of the 2 highest merges" in text
    assert "tree edge (estimate)" in text  # the edges within wells
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
