"""The basin tree on hand-made landscapes whose merges are known exactly."""

import math

import numpy as np
import pytest
from scipy.cluster import hierarchy

from landscape.tree import (
    barrier_graph,
    minimax_tree,
    plot_disconnectivity,
    relative_barriers,
    render_text,
)

# Four basins. Tested pairs and barrier estimates:
#   0-1 at 5, 1-2 at 4, 2-3 at 6, and a direct 0-2 estimate of 10 that cuts across
#   high ground. Minimax: {1,2} merge at 4, then 0 joins at 5 (through 1, not the
#   direct 10), then 3 at 6.
ENERGY = np.array([0.0, 1.0, 2.0, 3.0])
PAIRS = np.array([[0, 1], [1, 2], [0, 2], [2, 3]])
BARRIER = np.array([5.0, 4.0, 10.0, 6.0])


def test_four_basins_exact_linkage_and_merge_order():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    expected = np.array(
        [
            [1, 2, 4.0, 2],  # cluster 4 = {1, 2}
            [0, 4, 5.0, 3],  # cluster 5 = {0, 1, 2}
            [3, 5, 6.0, 4],  # cluster 6 = all
        ],
        dtype=np.float64,
    )
    np.testing.assert_array_equal(tree.linkage, expected)
    assert tree.merge_order == [(1, 2), (0, 1), (2, 3)]
    assert tree.mst_edges == [(1, 2, 4.0), (0, 1, 5.0), (2, 3, 6.0)]
    assert not tree.disconnected.any()
    assert hierarchy.is_valid_linkage(tree.linkage)
    assert hierarchy.is_monotonic(tree.linkage)
    # The tree graph: leaves with energies, merges with heights, root at the top.
    g = tree.graph
    assert g.nodes[3]["energy"] == 3.0 and g.nodes[3]["kind"] == "basin"
    assert g.nodes[6]["height"] == 6.0 and g.nodes[6]["count"] == 4
    assert set(g.successors(5)) == {0, 4}
    assert g.nodes[5]["lowest"] == 0


def test_minimax_goes_through_a_neighbour_not_over_the_high_direct_barrier():
    # 0 and 2 are tested directly (barrier 10) but are joined at 5 via basin 1.
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    coph = hierarchy.cophenet(tree.linkage)
    square = hierarchy.distance.squareform(coph)
    assert square[0, 2] == 5.0
    assert square[0, 3] == 6.0
    # Raising the 0-1 barrier above the direct one makes the direct estimate win.
    tree2 = minimax_tree(ENERGY, PAIRS, np.array([12.0, 4.0, 10.0, 6.0]))
    assert hierarchy.distance.squareform(hierarchy.cophenet(tree2.linkage))[0, 2] == 10.0


def test_duplicate_pairs_keep_the_lowest_estimate_and_missing_paths_are_not_edges():
    pairs = np.array([[0, 1], [1, 0], [1, 2], [2, 2]])
    barrier = np.array([7.0, 6.0, np.inf, 1.0])
    g = barrier_graph(np.array([0.0, 1.0, 2.0]), pairs, barrier)
    assert g.edges[0, 1]["barrier"] == 6.0
    assert not g.has_edge(1, 2)  # +inf: no path found
    assert not g.has_edge(2, 2)  # self-pairs ignored
    assert g.nodes[2]["energy"] == 2.0


def test_disconnected_components_are_flagged_and_merged_above_everything():
    energy = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pairs = np.array([[0, 1], [2, 3], [1, 2]])
    barrier = np.array([2.0, 5.0, np.inf])
    tree = minimax_tree(energy, pairs, barrier)
    assert hierarchy.is_valid_linkage(tree.linkage) and hierarchy.is_monotonic(tree.linkage)
    np.testing.assert_array_equal(tree.disconnected, [False, False, True, True])
    assert tree.top > 5.0 and tree.top > energy.max()
    np.testing.assert_array_equal(tree.linkage[2:, 2], [tree.top, tree.top])
    # Components joined lowest group first: {0,1} with {2,3}, then basin 4.
    assert tree.merge_order[2:] == [(0, 2), (0, 4)]
    rel = relative_barriers(energy, tree)
    # 2 and 4 can reach no lower basin through a found path.
    np.testing.assert_array_equal(rel, [np.inf, 1.0, np.inf, 2.0, np.inf])


def test_barrier_below_a_basin_is_raised_to_it():
    # Any path between two basins passes through both, so a barrier can't be lower
    # than the higher basin.
    tree = minimax_tree(np.array([0.0, 3.0]), np.array([[0, 1]]), np.array([2.0]))
    assert tree.linkage[0, 2] == 3.0


def test_fcluster_at_a_cut_height_gives_the_expected_groups():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    groups = hierarchy.fcluster(tree.linkage, t=4.5, criterion="distance")
    assert groups[1] == groups[2]
    assert len({groups[0], groups[1], groups[3]}) == 3
    np.testing.assert_array_equal(tree.cut(4.5), [0, 1, 1, 2])
    np.testing.assert_array_equal(tree.cut(5.0), [0, 0, 0, 1])
    np.testing.assert_array_equal(tree.cut(3.9), [0, 1, 2, 3])
    np.testing.assert_array_equal(tree.cut(100.0), [0, 0, 0, 0])


def test_relative_barriers_are_escape_heights_to_a_lower_basin():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    rel = relative_barriers(ENERGY, tree)
    # basin 0 is the global minimum; 1 climbs to 5 to reach 0; 2 climbs to 4 to reach 1;
    # 3 climbs to 6.
    np.testing.assert_array_equal(rel, [np.inf, 4.0, 2.0, 3.0])
    # An energy offset changes absolute heights but not these differences.
    shifted = minimax_tree(ENERGY + 100.0, PAIRS, BARRIER + 100.0)
    np.testing.assert_array_equal(relative_barriers(ENERGY + 100.0, shifted), rel)


def test_single_basin():
    tree = minimax_tree(np.array([1.5]), np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    assert tree.linkage.shape == (0, 4)
    assert tree.root == 0
    assert relative_barriers(np.array([1.5]), tree)[0] == math.inf
    assert "basin 0  E=1.5" in render_text(tree, np.array([1.5]))


def test_render_text_shows_energies_heights_sizes_and_labels():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    text = render_text(tree, ENERGY, sizes=[10, 20, 30, 40], labels=["a", "b", "c", "d"])
    lines = text.splitlines()
    assert lines[0].startswith("basin tree: 4 basins")
    assert lines[1] == "merge at 6  (+6 above basin 0, +3 above basin 3)"
    assert "merge at 4  (+3 above basin 1, +2 above basin 2)" in text
    for i, e in enumerate(ENERGY):
        assert f"basin {i}  E={e:g}  size {10 * (i + 1)}  {'abcd'[i]}" in text
    # The lower child is listed first, nested under its merge.
    assert lines.index("|-- merge at 5  (+5 above basin 0, +4 above basin 1)") < lines.index("`-- basin 3  E=3  size 40  d")


def test_render_text_folds_large_trees():
    rng = np.random.default_rng(0)
    b = 120
    energy = np.sort(rng.normal(size=b))
    pairs = np.array([[i, i + 1] for i in range(b - 1)])
    barrier = np.maximum(energy[:-1], energy[1:]) + rng.uniform(0.1, 2.0, size=b - 1)
    tree = minimax_tree(energy, pairs, barrier)
    text = render_text(tree, energy, max_leaves=20)
    shown = [line for line in text.splitlines() if "basin " in line and ("E=" in line)]
    assert "folded to show 20 groups" in text.splitlines()[0]
    assert len(shown) == 20  # basins and folded groups
    folded = [line for line in text.splitlines() if "basins connected below" in line]
    assert folded and sum(int(line.split("[")[1].split()[0]) for line in folded) + (20 - len(folded)) == b
    assert len(text.splitlines()) < 60


def test_plot_writes_a_png(tmp_path):
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    out = plot_disconnectivity(tree, ENERGY, tmp_path / "tree.png", sizes=[1, 2, 3, 4], marked=[2])
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    energy = np.array([0.0, 1.0, 2.0])
    disc = minimax_tree(energy, np.array([[0, 1]]), np.array([1.5]))
    plot_disconnectivity(disc, energy, tmp_path / "disc.png", labels=["x", "y", "z"])
    assert (tmp_path / "disc.png").stat().st_size > 2000


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="pairs but"):
        minimax_tree(ENERGY, PAIRS, BARRIER[:2])
    with pytest.raises(ValueError, match="pair indices"):
        minimax_tree(ENERGY, np.array([[0, 7]]), np.array([1.0]))


def test_negative_energies_work_with_scipy_through_the_shifted_linkage():
    # EBM energies have an arbitrary offset and are often negative; scipy rejects
    # negative linkage heights, so the tree hands it heights above the lowest basin.
    energy, barrier = ENERGY - 50.0, BARRIER - 50.0
    tree = minimax_tree(energy, PAIRS, barrier)
    np.testing.assert_array_equal(tree.linkage[:, 2], [-46.0, -45.0, -44.0])  # absolute, as stored
    assert hierarchy.is_valid_linkage(tree.scipy_linkage)
    np.testing.assert_array_equal(tree.scipy_linkage[:, 2], [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(tree.cut(-45.5), [0, 1, 1, 2])
