"""Pictures of a map and the per-level view behind them, on small synthetic maps."""

import math

import numpy as np
import pytest

from landscape import LandscapeError
from landscape.figures import (
    atomic_output,
    basin_tree,
    check_picture_path,
    data_range,
    level_view,
    minima_kind,
    plot_levels,
    plot_map_2d,
    plot_representatives,
    plot_tree,
    tree_from_linkage,
    tree_merges,
)
from landscape.mapfile import (
    DiagnosisData,
    GridData,
    LevelData,
    MapContent,
    read_map,
    write_map,
)
from landscape.tree import minimax_tree

PNG = b"\x89PNG\r\n\x1a\n"

# ----------------------------------------------------------------- synthetic maps
# Shared with tests/test_tree_cmd.py.

WELLS = np.array([[-1.0, -0.3], [0.9, -0.1], [0.1, 1.1]])
DEPTHS = np.array([3.0, 2.2, 1.8])


def wells_energy(xy: np.ndarray) -> np.ndarray:
    """Three Gaussian wells in a weak bowl: U(x) = 0.1 |x|^2 - sum_k d_k exp(-|x - c_k|^2 / 0.245)."""
    xy = np.asarray(xy, dtype=np.float64)
    d2 = ((xy[..., None, :] - WELLS) ** 2).sum(-1)
    return 0.1 * (xy**2).sum(-1) - (DEPTHS * np.exp(-d2 / 0.245)).sum(-1)


def make_2d_content() -> MapContent:
    """Three basins of ``wells_energy`` (3 minima each), a grid, and refined tree edges."""
    rng = np.random.default_rng(1)
    x = (np.repeat(WELLS, 3, axis=0) + rng.normal(scale=0.05, size=(9, 2))).astype(np.float32)
    x[::3] = WELLS  # each basin's first minimum sits at the bottom of its well
    energy = wells_energy(x)
    basin = np.repeat(np.arange(3), 3)
    basin_energy = wells_energy(WELLS)
    order = np.argsort(basin_energy)
    assert order.tolist() == [0, 1, 2]
    pairs = np.array([[0, 1], [1, 2], [0, 2]])
    t = np.linspace(0.0, 1.0, 41)[:, None]
    straight = [WELLS[i] * (1 - t) + WELLS[j] * t for i, j in pairs]
    line_max = np.array([wells_energy(p).max() for p in straight])
    barrier = line_max + np.array([0.05, 0.05, 0.4])  # attraction diffusion overestimates
    tree = minimax_tree(basin_energy, pairs, barrier)
    paths = np.full((3, 41, 2), np.nan, dtype=np.float32)
    refined = np.full(3, np.nan)
    for i, j, _ in tree.mst_edges:
        e = next(k for k, (a, b) in enumerate(pairs) if {a, b} == {i, j})
        bend = np.sin(np.pi * t) * 0.15 * np.array([[0.0, 1.0]])
        paths[e] = straight[e] + bend
        refined[e] = wells_energy(paths[e]).max()
    # As the mapper does: the tree from the lower of the two estimates of each pair.
    tree = minimax_tree(basin_energy, pairs, np.fmin(barrier, refined))
    g = np.linspace(-2.0, 2.0, 48)
    gx, gy = np.meshgrid(g, g)
    return MapContent(
        minima_x=x,
        minima_energy=energy,
        minima_hits=np.array([30, 4, 2, 12, 3, 1, 6, 1, 1]),
        minima_basin=basin,
        basin_representative=np.array([0, 3, 6]),
        basin_energy=basin_energy,
        barrier_pairs=pairs,
        barrier_energy=barrier,
        linkage=tree.linkage,
        barrier_refined=refined,
        barrier_paths=paths,
        grid=GridData(x=g, y=g, energy=wells_energy(np.stack([gx, gy], axis=-1))),
        attrs={
            "minima": {"temperature": 0.5, "data_range": [-2.0, 2.0]},
            "barriers": {"alpha": 0.5, "temperature": 0.2},
            "tree": {"heights": "refined where available"},
        },
    )


# The image map: four basins with hand-made energies and barriers.
#   1-2 at -1.0 (relative +0.5 above basin 2), 0 joins at -0.5 (relative +1.5 above
#   basin 1), 3 joins at 0.0 (relative +1.0 above basin 3); the 0-3 trial found no path.
IMG_ENERGY = np.array([-3.0, -2.0, -1.5, -1.0])
IMG_PAIRS = np.array([[0, 1], [1, 2], [2, 3], [0, 3]])
IMG_BARRIER = np.array([-0.5, -1.0, 0.0, np.inf])
IMG_MERGES = [  # (lower, higher, height, relative)
    (1, 2, -1.0, 0.5),
    (0, 1, -0.5, 1.5),
    (0, 3, 0.0, 1.0),
]


def make_image_content(channels: int = 1, levels: bool = False, diagnosis: bool = False) -> MapContent:
    """Ten minima of shape (C, 8, 8) in four basins; optionally an alpha ladder of three levels."""
    n = 10
    basin = np.array([0, 0, 0, 1, 1, 2, 2, 2, 3, 3])
    rep = np.array([0, 3, 5, 8])
    x = np.full((n, channels, 8, 8), -1.0, dtype=np.float32)
    for k in range(n):  # basin b: a bar at row 2b, brighter for the representative
        x[k, :, 2 * basin[k] : 2 * basin[k] + 2, 1:7] = 1.0 if k in rep else 0.3
        x[k, 0, 7, k % 8] = 2.0  # outside the data range: clipped
    energy = np.empty(n)
    for b in range(4):
        members = np.flatnonzero(basin == b)
        energy[members] = IMG_ENERGY[b] + 0.1 * np.arange(members.size)
    tree = minimax_tree(IMG_ENERGY, IMG_PAIRS, IMG_BARRIER)
    content = MapContent(
        minima_x=x,
        minima_energy=energy,
        minima_hits=np.arange(1, n + 1),
        minima_basin=basin,
        basin_representative=rep,
        basin_energy=IMG_ENERGY,
        barrier_pairs=IMG_PAIRS,
        barrier_energy=IMG_BARRIER,
        linkage=tree.linkage,
        attrs={
            "minima": {"temperature": 20.0, "data_range": [-1.0, 1.0], "dataset": "digits"},
            "barriers": {"alpha": 0.1},
        },
    )
    if diagnosis:
        spurious = np.zeros(n, dtype=bool)
        spurious[8] = True  # the representative of basin 3
        content.diagnosis = DiagnosisData(spurious=spurious, nn_distance=np.linspace(0.1, 1.0, n))
    if levels:
        # alpha 0.1: the top level itself; alpha 1: basins {0,1,2} and {3}; alpha 10: one basin.
        two = minimax_tree(np.array([-3.0, -1.0]), np.array([[0, 1]]), np.array([0.0]))
        content.levels = [
            LevelData(0.1, basin, rep, IMG_ENERGY, IMG_PAIRS, IMG_BARRIER, tree.linkage),
            LevelData(
                1.0, np.where(basin == 3, 1, 0), np.array([0, 8]), np.array([-3.0, -1.0]),
                np.array([[0, 1]]), np.array([0.0]), two.linkage,
            ),
            LevelData(10.0, np.zeros(n, dtype=np.int64), np.array([0]), np.array([-3.0]),
                      np.zeros((0, 2)), np.zeros(0), np.zeros((0, 4))),
        ]
    return content


def make_vector_content(d: int) -> MapContent:
    """Six minima in R^d in three basins, a chain of barriers."""
    rng = np.random.default_rng(2)
    energy = np.array([-2.0, -1.0, 0.5])
    pairs, barrier = np.array([[0, 1], [1, 2]]), np.array([1.0, 2.0])
    return MapContent(
        minima_x=rng.normal(size=(6, d)).astype(np.float32),
        minima_energy=np.array([-2.0, -1.9, -1.0, -0.8, 0.5, 0.6]),
        minima_hits=np.ones(6, dtype=np.int64),
        minima_basin=np.array([0, 0, 1, 1, 2, 2]),
        basin_representative=np.array([0, 2, 4]),
        basin_energy=energy,
        barrier_pairs=pairs,
        barrier_energy=barrier,
        linkage=minimax_tree(energy, pairs, barrier).linkage,
    )


def save(tmp_path, content: MapContent, name: str = "m.h5"):
    if content.grid is not None:
        source = {"kind": "function", "spec": "wells", "shape": [2]}
    else:
        source = {"kind": "checkpoint", "path": "runs/model.pt", "sha256": "cd" * 32, "regime": "convergent"}
    return write_map(tmp_path / name, content, config={"temperature": 1.0}, source=source, tool_version="0.1.0")


def assert_png(path, min_bytes: int = 3000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes, (path, len(data))


# ------------------------------------------------------------------------- the view


def test_level_view_picks_the_top_level_or_a_ladder_level():
    content = make_image_content(levels=True)
    top = level_view(content)
    assert top.level is None and top.alpha == 0.1 and top.n_basins == 4 and "top level" in top.name
    np.testing.assert_array_equal(top.basin_minima, [3, 2, 3, 2])
    np.testing.assert_array_equal(top.basin_hits, [1 + 2 + 3, 4 + 5, 6 + 7 + 8, 9 + 10])
    one = level_view(content, 1)
    assert one.level == 1 and one.alpha == 1.0 and one.n_basins == 2
    np.testing.assert_array_equal(one.basin_hits, [sum(range(1, 9)), 19])
    assert one.barrier_refined is None and one.barrier_paths is None
    assert level_view(content, 2).tree.n_basins == 1
    with pytest.raises(LandscapeError, match="out of range: the map has 3 levels"):
        level_view(content, 3)
    with pytest.raises(LandscapeError, match="out of range"):
        level_view(content, -1)
    with pytest.raises(LandscapeError, match="no levels"):
        level_view(make_image_content(), 0)


def test_tree_merges_give_absolute_and_relative_barriers():
    merges = tree_merges(level_view(make_image_content()))
    got = [(m.lower, m.higher, m.height, m.relative) for m in merges]
    assert got == IMG_MERGES
    assert [m.pair for m in merges] == [(1, 2), (0, 1), (2, 3)]
    assert [m.barrier_row for m in merges] == [1, 0, 2]
    assert merges[1].above_lowest == 2.5 and not any(m.disconnected for m in merges)
    assert all(math.isnan(m.refined) and not m.has_path for m in merges)


def test_refined_barriers_and_paths_belong_to_tree_edges():
    content = make_2d_content()
    merges = tree_merges(level_view(content))
    assert len(merges) == 2
    for m in merges:
        assert m.has_path and math.isfinite(m.refined) and m.refined < m.estimate
        assert m.height == m.refined  # the tree was built from the refined barriers
        i, j = m.pair
        expected = max(m.refined, content.basin_energy[i], content.basin_energy[j]) - content.basin_energy[m.higher]
        assert m.refined_relative == pytest.approx(expected)
    # The 0-2 trial (overestimated) is not a tree edge and was not refined.
    assert math.isnan(content.barrier_refined[2]) and 2 not in {m.barrier_row for m in merges}


def test_tree_follows_the_stored_linkage():
    energy = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pairs = np.array([[0, 1], [1, 2], [0, 2], [3, 4]])
    barrier = np.array([5.0, 4.0, 10.0, 6.0])
    ref = minimax_tree(energy, pairs, barrier)
    rebuilt = tree_from_linkage(ref.linkage, energy, pairs, barrier)
    np.testing.assert_array_equal(rebuilt.linkage, ref.linkage)
    np.testing.assert_array_equal(rebuilt.disconnected, ref.disconnected)
    np.testing.assert_array_equal(rebuilt.lowest, ref.lowest)
    assert rebuilt.mst_edges == ref.mst_edges and rebuilt.merge_order == ref.merge_order
    assert rebuilt.top == ref.top
    # A map whose tree was built from refined barriers: the tree matches it.
    content = make_image_content()
    content.barrier_refined = np.array([-0.8, np.nan, np.nan, np.nan])
    content.linkage = minimax_tree(IMG_ENERGY, IMG_PAIRS, np.fmin(IMG_BARRIER, content.barrier_refined)).linkage
    tree = basin_tree(level_view(content))
    np.testing.assert_array_equal(tree.linkage, content.linkage)
    # A linkage no rebuild reproduces is still followed, merge by merge.
    content.linkage = content.linkage.copy()
    content.linkage[:, 2] += 0.01
    tree = basin_tree(level_view(content))
    np.testing.assert_array_equal(tree.linkage, content.linkage)
    assert tree.merge_order == [(1, 2), (0, 1), (2, 3)] and not tree.disconnected.any()


def test_minima_kinds_and_data_range():
    assert minima_kind(make_image_content()) == "image"
    assert minima_kind(make_image_content(channels=3)) == "image"
    assert minima_kind(make_2d_content()) == "2d"
    assert minima_kind(make_vector_content(5)) == "vector"
    odd = make_vector_content(5)
    odd.minima_x = np.zeros((6, 2, 4, 4), dtype=np.float32)
    with pytest.raises(LandscapeError, match="1 \\(grey\\) or 3 \\(RGB\\) channels"):
        minima_kind(odd)
    odd.minima_x = np.zeros((6, 1), dtype=np.float32)
    with pytest.raises(LandscapeError, match="cannot draw minima of shape \\(1,\\)"):
        minima_kind(odd)
    assert data_range(make_image_content()) == (-1.0, 1.0)
    assert data_range(make_vector_content(3)) == pytest.approx(
        (make_vector_content(3).minima_x.min(), make_vector_content(3).minima_x.max())
    )


# ----------------------------------------------------------------------- pictures


def test_representatives_grid_for_grey_and_rgb_images(tmp_path):
    content = read_map(save(tmp_path, make_image_content(diagnosis=True)))
    assert_png(plot_representatives(content, tmp_path / "grey.png"))
    rgb = make_image_content(channels=3)
    assert_png(plot_representatives(rgb, tmp_path / "sub" / "rgb.png", max_basins=2, title="two"))
    with_levels = make_image_content(levels=True)
    assert_png(plot_representatives(with_levels, tmp_path / "level1.png", level=1))
    assert not list(tmp_path.glob(".*"))  # no temporary files left behind


def test_representatives_of_vectors(tmp_path):
    assert_png(plot_representatives(make_vector_content(5), tmp_path / "lines.png"))
    assert_png(plot_representatives(make_vector_content(50), tmp_path / "heat.png"))
    with pytest.raises(LandscapeError, match="2-D points"):
        plot_representatives(make_2d_content(), tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_map_2d_with_and_without_grid(tmp_path):
    content = read_map(save(tmp_path, make_2d_content()))
    assert_png(plot_map_2d(content, tmp_path / "map.png"), min_bytes=20000)
    content.grid = None
    assert_png(plot_map_2d(content, tmp_path / "nogrid.png"))
    with pytest.raises(LandscapeError, match="2-D energies"):
        plot_map_2d(make_image_content(), tmp_path / "y.png")


def test_levels_and_tree_pictures(tmp_path):
    content = make_image_content(levels=True, diagnosis=True)
    assert_png(plot_levels(content, tmp_path / "levels.png"))
    assert_png(plot_tree(content, tmp_path / "tree.png"))
    assert_png(plot_tree(content, tmp_path / "tree2.png", level=1))
    with pytest.raises(LandscapeError, match="no levels"):
        plot_levels(make_image_content(), tmp_path / "z.png")


def test_picture_paths_and_atomic_output(tmp_path):
    with pytest.raises(LandscapeError, match="picture format"):
        check_picture_path(tmp_path / "x.h5")
    with pytest.raises(LandscapeError, match="picture format"):
        plot_tree(make_image_content(), tmp_path / "noext")
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["keep.png"]
