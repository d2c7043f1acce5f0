"""The barrier tree on hand-made barrier tables whose merges are known exactly."""

import math
import re

import numpy as np
import pytest
from scipy.cluster import hierarchy
from scipy.spatial.distance import squareform

from landscape.mapping.tree import (
    FLAT_RTOL,
    BarrierTree,
    basin_tree,
    display_nodes,
    flat_rtol,
    members,
    minimax_tree,
    one_state,
    state_counts,
    pair_lengths,
    render_text,
)
from landscape.plots.tree import draw_tree as plot_tree  # the tree into an axes (the map saver is plots.tree.plot_tree)

# Four minima. Tested pairs and barrier estimates:
#   0-1 at 5, 1-2 at 4, 2-3 at 6, and a direct 0-2 estimate of 10 that cuts across
#   high ground. Minimax: {1,2} merge at 4, then 0 joins at 5 (through 1, not the
#   direct 10), then 3 at 6.
ENERGY = np.array([0.0, 1.0, 2.0, 3.0])
PAIRS = np.array([[0, 1], [1, 2], [0, 2], [2, 3]])
BARRIER = np.array([5.0, 4.0, 10.0, 6.0])


def floyd_minimax(energy: np.ndarray, pairs: np.ndarray, barrier: np.ndarray) -> np.ndarray:
    """Lowest possible highest barrier between every two leaves (Floyd-Warshall on max),
    each barrier raised to the higher of its two leaves; +inf where no path."""
    n = energy.size
    m = np.full((n, n), np.inf)
    for (i, j), h in zip(pairs.tolist(), barrier.tolist(), strict=True):
        if i != j and math.isfinite(h):
            h = max(h, energy[i], energy[j])
            m[i, j] = m[j, i] = min(m[i, j], h)
    for k in range(n):
        m = np.minimum(m, np.maximum(m[:, [k]], m[[k], :]))
    return m


# ------------------------------------------------------------------ structure


def test_four_minima_exact_linkage_merge_order_and_provenance():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    assert isinstance(tree, BarrierTree)
    expected = np.array(
        [
            [1, 2, 4.0, 2],  # cluster 4 = {1, 2}
            [0, 4, 5.0, 3],  # cluster 5 = {0, 1, 2}
            [3, 5, 6.0, 4],  # cluster 6 = all
        ],
        dtype=np.float64,
    )
    np.testing.assert_array_equal(tree.linkage, expected)
    assert tree.offset == 0.0
    np.testing.assert_array_equal(tree.heights, [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(tree.barrier, [4.0, 5.0, 6.0])
    # Which row of the pair table made each merge, and its two leaves.
    np.testing.assert_array_equal(tree.pair, [1, 0, 3])
    np.testing.assert_array_equal(tree.edge, [[1, 2], [0, 1], [2, 3]])
    assert tree.connected.all() and not tree.refined.any()
    np.testing.assert_array_equal(tree.leaves, [0, 1, 2, 3])
    np.testing.assert_array_equal(tree.energy, ENERGY)
    assert tree.n_leaves == 4 and tree.root == 6 and tree.top == 6.0
    assert hierarchy.is_valid_linkage(tree.linkage)
    assert hierarchy.is_monotonic(tree.linkage)
    # Nodes: children, heights, lowest leaf, parent.
    assert tree.children(2) is None and tree.children(5) == (0, 4)
    assert tree.height(3) == 3.0 and tree.height(5) == 5.0
    np.testing.assert_array_equal(tree.lowest, [0, 1, 2, 3, 1, 0, 0])
    assert tree.parent == {1: 4, 2: 4, 0: 5, 4: 5, 3: 6, 5: 6}
    assert sorted(members(tree, 5)) == [0, 1, 2] and members(tree, 3) == [3]
    # The tree graph: leaves with energies, merges with heights, root at the top.
    g = tree.graph
    assert g.number_of_nodes() == 7 and g.number_of_edges() == 6
    assert g.nodes[3] == {"kind": "leaf", "energy": 3.0, "minimum": 3}
    assert g.nodes[6]["kind"] == "merge" and g.nodes[6]["height"] == 6.0 and g.nodes[6]["count"] == 4
    assert g.nodes[6]["connected"] and not g.nodes[6]["refined"]
    assert set(g.successors(5)) == {0, 4}
    assert g.nodes[5]["lowest"] == 0 and g.nodes[4]["lowest"] == 1
    assert [n for n, d in g.in_degree() if d == 0] == [6]


def test_minimax_goes_through_a_neighbour_not_over_the_high_direct_barrier():
    # 0 and 2 are tested directly (barrier 10) but are joined at 5 via minimum 1.
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    square = squareform(hierarchy.cophenet(tree.linkage)) + tree.offset
    assert square[0, 2] == 5.0
    assert square[0, 3] == 6.0
    assert 2 not in tree.pair.tolist()  # the direct 0-2 estimate made no merge
    # Raising the 0-1 barrier above the direct one makes the direct estimate win.
    tree2 = minimax_tree(ENERGY, PAIRS, np.array([12.0, 4.0, 10.0, 6.0]))
    assert squareform(hierarchy.cophenet(tree2.linkage))[0, 2] == 10.0
    assert tree2.pair.tolist() == [1, 3, 2]  # {1,2} at 4, 3 joins at 6, 0 at 10 (direct)
    np.testing.assert_array_equal(tree2.edge[2], [0, 2])


def test_the_tree_is_the_minimax_of_every_pair_on_random_tables():
    # Cophenetic heights (plus the offset) are the lowest highest barrier over all chains
    # of pairs: brute force (Floyd-Warshall) on random sparse tables, some barriers below
    # their leaves, some missing, negative energies, duplicates and both directions.
    rng = np.random.default_rng(0)
    for trial in range(20):
        n = int(rng.integers(2, 14))
        energy = rng.normal(size=n) - 3.0
        e = int(rng.integers(0, 2 * n))
        pairs = rng.integers(0, n, size=(e, 2))
        barrier = np.maximum(energy[pairs[:, 0]], energy[pairs[:, 1]]) + rng.uniform(-0.3, 2.0, size=e)
        barrier[rng.random(e) < 0.15] = np.inf
        tree = minimax_tree(energy, pairs, barrier)
        assert hierarchy.is_valid_linkage(tree.linkage) and hierarchy.is_monotonic(tree.linkage)
        assert (tree.linkage[:, 2] >= 0).all()
        truth = floyd_minimax(energy, pairs, barrier)
        coph = squareform(hierarchy.cophenet(tree.linkage)) + tree.offset
        iu = np.triu_indices(n, 1)
        finite = np.isfinite(truth[iu])
        np.testing.assert_allclose(coph[iu][finite], truth[iu][finite], rtol=0, atol=1e-12)
        # Pairs with no path at all meet only at the placeholder, above every real barrier.
        assert (coph[iu][~finite] == tree.top).all()
        if (~finite).any():
            assert not tree.connected.all() and tree.top > max(truth[iu][finite].max(initial=-np.inf), energy.max())
        # Each connected merge names a pair of the table whose (raised) barrier it is.
        for k in np.flatnonzero(tree.connected):
            i, j = pairs[tree.pair[k]]
            assert sorted((int(i), int(j))) == tree.edge[k].tolist()
            assert tree.barrier[k] == max(barrier[tree.pair[k]], energy[i], energy[j])
        assert (tree.pair[~tree.connected] == -1).all() and (tree.edge[~tree.connected] == -1).all()
        assert np.isinf(tree.barrier[~tree.connected]).all()


def test_duplicate_pairs_keep_the_lowest_estimate_and_missing_paths_are_not_edges():
    energy = np.array([0.0, 1.0, 2.0])
    pairs = np.array([[0, 1], [1, 0], [1, 2], [2, 2]])
    barrier = np.array([7.0, 6.0, np.inf, 1.0])
    tree = minimax_tree(energy, pairs, barrier)
    # 0-1 at 6 (the lower of the two directions, row 1); 2 has a self-pair (ignored)
    # and an infinite one (no path found): it joins at the placeholder.
    assert tree.barrier[0] == 6.0 and tree.pair[0] == 1
    np.testing.assert_array_equal(tree.edge[0], [0, 1])
    np.testing.assert_array_equal(tree.connected, [True, False])
    assert tree.pair[1] == -1 and math.isinf(tree.barrier[1])
    # NaN means no path, too.
    nan = minimax_tree(energy, pairs[:3], np.array([7.0, 6.0, np.nan]))
    np.testing.assert_array_equal(nan.connected, [True, False])


def test_disconnected_groups_are_flagged_and_merged_above_everything():
    energy = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    pairs = np.array([[0, 1], [2, 3], [1, 2]])
    barrier = np.array([2.0, 5.0, np.inf])
    tree = minimax_tree(energy, pairs, barrier)
    assert hierarchy.is_valid_linkage(tree.linkage) and hierarchy.is_monotonic(tree.linkage)
    np.testing.assert_array_equal(tree.connected, [True, True, False, False])
    assert tree.top > 5.0 and tree.top > energy.max()
    assert tree.top == pytest.approx(5.5)  # a tenth of the energy span above the top barrier
    np.testing.assert_array_equal(tree.heights[2:], [tree.top, tree.top])
    np.testing.assert_array_equal(tree.barrier, [2.0, 5.0, np.inf, np.inf])
    np.testing.assert_array_equal(tree.pair, [0, 1, -1, -1])
    # Groups joined lowest group first: {0,1} with {2,3}, then minimum 4.
    np.testing.assert_array_equal(tree.linkage[:, :2], [[0, 1], [2, 3], [5, 6], [4, 7]])
    assert not tree.graph.nodes[7]["connected"] and tree.graph.nodes[5]["connected"]
    # 2 and 4 can reach no lower minimum through a found path.
    np.testing.assert_array_equal(tree.escape(), [np.inf, 1.0, np.inf, 2.0, np.inf])
    np.testing.assert_array_equal(tree.depth(), [1.0, 2.0, np.nan, np.nan])
    np.testing.assert_array_equal(tree.cut(5.0), [0, 0, 1, 1, 2])
    np.testing.assert_array_equal(tree.cut(tree.top), [0, 0, 0, 0, 0])
    # No pairs at all: every leaf sits at the placeholder.
    none = minimax_tree(energy, np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    assert not none.connected.any() and (none.heights == none.top).all() and none.top > energy.max()


def test_barrier_below_a_minimum_is_raised_to_it():
    # Any path between two minima passes through both, so a barrier can't be lower
    # than the higher minimum.
    tree = minimax_tree(np.array([0.0, 3.0]), np.array([[0, 1]]), np.array([2.0]))
    assert tree.heights[0] == 3.0 and tree.barrier[0] == 3.0 and tree.linkage[0, 2] == 3.0
    assert tree.escape()[1] == 0.0 and tree.depth()[0] == 0.0


def test_equal_heights_merge_in_a_reproducible_order():
    energy = np.zeros(3)
    pairs = np.array([[1, 2], [0, 1]])
    tree = minimax_tree(energy, pairs, np.array([1.0, 1.0]))
    # Ties go by the pair (lower index first), not by the table's row order.
    np.testing.assert_array_equal(tree.linkage, [[0, 1, 1, 2], [2, 3, 1, 3]])
    np.testing.assert_array_equal(tree.pair, [1, 0])
    assert tree.lowest[tree.root] == 0  # equal energies: the lower index
    shuffled = minimax_tree(energy, pairs[::-1], np.array([1.0, 1.0]))
    np.testing.assert_array_equal(shuffled.linkage, tree.linkage)
    np.testing.assert_array_equal(shuffled.pair, [0, 1])


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_tied_passes_merge_neighbours_not_wells_across_the_ring(scale):
    # Eight equal wells on a circle with equal passes between neighbours: the barrier of
    # two wells across the ring is the same pass height, which a string finds a hair lower
    # (1e-10, within what the energy resolves). Preferring the nearest pairs among ties,
    # the tree merges neighbours, at heights within that tie of the exact ones and in order;
    # without the preference, the pairs across the ring (the lowest values) are taken.
    angle = np.arange(8) * np.pi / 4
    x = np.stack([np.cos(angle), np.sin(angle)], axis=1)
    pairs = np.array([(i, j) for i in range(8) for j in range(i + 1, 8)])
    steps = np.minimum((pairs[:, 1] - pairs[:, 0]) % 8, (pairs[:, 0] - pairs[:, 1]) % 8)
    barrier = scale * (2.6843 - 1e-10 * steps)
    energy = np.full(8, 0.1231 * scale)
    tie = 1e-8 * scale  # (the map's energy tie; rtol 0: a float64 energy's share of the magnitude is far below)
    plain = minimax_tree(energy, pairs, barrier, flat_atol=tie, flat_rtol=0.0)
    assert (steps[plain.pair] == 4).any()  # (the lowest values first: wells across the ring)
    tree = minimax_tree(energy, pairs, barrier, flat_atol=tie, flat_rtol=0.0, prefer=pair_lengths(x, pairs))
    assert (steps[tree.pair] == 1).all(), steps[tree.pair]
    assert np.all(np.diff(tree.heights) >= 0) and np.allclose(tree.heights, 2.6843 * scale, rtol=0, atol=tie)
    assert tree.flat().sum() == 0 and np.allclose(tree.depth(), (2.6843 - 0.1231) * scale, rtol=0, atol=tie)
    # a difference the energy resolves is never overturned: one pass lower by 10x the tie goes first
    lower = barrier.copy()
    lower[(pairs[:, 0] == 0) & (pairs[:, 1] == 4)] -= 10 * tie
    first = minimax_tree(energy, pairs, lower, flat_atol=tie, flat_rtol=0.0, prefer=pair_lengths(x, pairs))
    assert tuple(pairs[first.pair[0]]) == (0, 4) and first.heights[0] == lower.min()


def test_refined_flags_and_leaf_indices_are_carried_to_the_merges():
    refined = np.array([False, True, True, False])  # the direct 0-2 row makes no merge
    tree = minimax_tree(ENERGY, PAIRS, BARRIER, refined=refined, leaves=np.array([10, 11, 12, 13]))
    np.testing.assert_array_equal(tree.refined, [True, False, False])  # rows 1, 0, 3
    assert tree.graph.nodes[4]["refined"] and not tree.graph.nodes[5]["refined"]
    np.testing.assert_array_equal(tree.leaves, [10, 11, 12, 13])
    assert tree.graph.nodes[2]["minimum"] == 12


# -------------------------------------------------------------------- queries


def test_cut_and_fcluster_give_the_expected_groups():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    groups = hierarchy.fcluster(tree.linkage, t=4.5 - tree.offset, criterion="distance")
    assert groups[1] == groups[2]
    assert len({groups[0], groups[1], groups[3]}) == 3
    np.testing.assert_array_equal(tree.cut(4.5), [0, 1, 1, 2])
    np.testing.assert_array_equal(tree.cut(5.0), [0, 0, 0, 1])  # at the barrier: joined
    np.testing.assert_array_equal(tree.cut(3.9), [0, 1, 2, 3])
    np.testing.assert_array_equal(tree.cut(100.0), [0, 0, 0, 0])
    # Groups are numbered by their lowest leaf, whatever the leaf order.
    rev = minimax_tree(ENERGY[::-1].copy(), 3 - PAIRS, BARRIER)
    np.testing.assert_array_equal(rev.cut(4.5), [2, 1, 1, 0])


def test_escape_heights_are_climbs_to_a_lower_minimum_and_depth_per_merge():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    # 0 is the global minimum; 1 climbs to 5 to reach 0; 2 climbs to 4 to reach 1;
    # 3 climbs to 6.
    np.testing.assert_array_equal(tree.escape(), [np.inf, 4.0, 2.0, 3.0])
    # Per merge, its height above the higher side's lowest leaf: 4 - 2, 5 - 1, 6 - 3.
    np.testing.assert_array_equal(tree.depth(), [2.0, 4.0, 3.0])
    # An energy offset changes absolute heights but not these differences, nor the
    # (relative) linkage scipy sees.
    shifted = minimax_tree(ENERGY + 100.0, PAIRS, BARRIER + 100.0)
    np.testing.assert_array_equal(shifted.escape(), tree.escape())
    np.testing.assert_array_equal(shifted.depth(), tree.depth())
    np.testing.assert_array_equal(shifted.linkage, tree.linkage)
    assert shifted.offset == 100.0
    np.testing.assert_array_equal(shifted.heights, tree.heights + 100.0)


@pytest.mark.parametrize("c", [0.001, 3.0, 250.0])
def test_scaling_energies_and_barriers_scales_the_heights_and_keeps_the_structure(c):
    energy = np.array([0.0, 1.0, 2.0, 3.0, 4.0]) - 2.5
    pairs = np.array([[0, 1], [1, 2], [0, 2], [2, 3], [3, 4]])
    barrier = np.array([1.5, 2.5, 4.0, 3.5, np.inf])  # 4 not connected: placeholder too
    tree = minimax_tree(energy, pairs, barrier)
    scaled = minimax_tree(c * energy, pairs, c * barrier)
    np.testing.assert_array_equal(scaled.linkage[:, [0, 1, 3]], tree.linkage[:, [0, 1, 3]])
    np.testing.assert_allclose(scaled.linkage[:, 2], c * tree.linkage[:, 2], rtol=1e-12)
    np.testing.assert_allclose(scaled.heights, c * tree.heights, rtol=1e-12)
    assert scaled.top == pytest.approx(c * tree.top, rel=1e-12)
    np.testing.assert_array_equal(scaled.connected, tree.connected)
    np.testing.assert_array_equal(scaled.pair, tree.pair)
    np.testing.assert_allclose(scaled.escape(), c * tree.escape(), rtol=1e-12)
    for h in (-1.0, 0.1, 1.2, 5.0):
        np.testing.assert_array_equal(scaled.cut(c * h), tree.cut(h))


def test_single_leaf():
    tree = minimax_tree(np.array([1.5]), np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    assert tree.linkage.shape == (0, 4) and tree.barrier.shape == (0,)
    assert tree.root == 0 and tree.n_leaves == 1 and tree.top == 1.5
    assert tree.escape().tolist() == [math.inf]
    assert tree.depth().shape == (0,)
    assert tree.cut(0.0).tolist() == [0]
    assert tree.graph.number_of_nodes() == 1
    assert display_nodes(tree, 10) == {0}
    text = render_text(tree)
    assert text.splitlines() == ["barrier tree: 1 minimum, energies 1.5 .. 1.5", "minimum 0  E=1.5"]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="pairs but"):
        minimax_tree(ENERGY, PAIRS, BARRIER[:2])
    with pytest.raises(ValueError, match="pair indices"):
        minimax_tree(ENERGY, np.array([[0, 7]]), np.array([1.0]))
    with pytest.raises(ValueError, match="pair indices"):
        minimax_tree(ENERGY, np.array([[-1, 2]]), np.array([1.0]))
    with pytest.raises(ValueError, match="-inf"):
        minimax_tree(ENERGY, PAIRS, np.array([5.0, -np.inf, 10.0, 6.0]))
    with pytest.raises(ValueError, match="finite"):
        minimax_tree(np.array([0.0, np.nan]), np.array([[0, 1]]), np.array([1.0]))
    with pytest.raises(ValueError, match="non-empty"):
        minimax_tree(np.zeros(0), np.zeros((0, 2), dtype=np.int64), np.zeros(0))
    with pytest.raises(ValueError, match="leaf indices"):
        minimax_tree(ENERGY, PAIRS, BARRIER, leaves=np.array([0, 1]))


def test_negative_energies_work_with_scipy_through_the_relative_linkage():
    # EBM energies have an arbitrary offset and are often negative; scipy rejects
    # negative linkage heights, so the linkage holds heights above the lowest leaf.
    energy, barrier = ENERGY - 50.0, BARRIER - 50.0
    tree = minimax_tree(energy, PAIRS, barrier)
    assert tree.offset == -50.0
    np.testing.assert_array_equal(tree.linkage[:, 2], [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(tree.heights, [-46.0, -45.0, -44.0])
    np.testing.assert_array_equal(tree.barrier, [-46.0, -45.0, -44.0])
    assert hierarchy.is_valid_linkage(tree.linkage)
    d = hierarchy.dendrogram(tree.linkage, no_plot=True)
    assert sorted(d["leaves"]) == [0, 1, 2, 3]
    np.testing.assert_array_equal(sorted(max(y) for y in d["dcoord"]), [4.0, 5.0, 6.0])
    np.testing.assert_array_equal(hierarchy.fcluster(tree.linkage, t=2, criterion="maxclust"), [1, 1, 1, 2])
    assert squareform(hierarchy.cophenet(tree.linkage))[0, 2] + tree.offset == -45.0
    np.testing.assert_array_equal(tree.cut(-45.5), [0, 1, 1, 2])
    np.testing.assert_array_equal(tree.escape(), [np.inf, 4.0, 2.0, 3.0])


# ------------------------------------------------------------------ basin tree


def test_basin_tree_uses_the_lowest_barrier_between_the_minima_of_two_basins():
    # Five minima in three basins: {0, 1}, {2, 3}, {4}; representatives 0, 2, 4.
    minima_energy = np.array([0.0, 1.0, 0.5, 2.0, 3.0])
    basin = np.array([0, 0, 1, 1, 2])
    rep = np.array([0, 2, 4])
    pairs = np.array([[0, 1], [1, 2], [0, 3], [3, 4], [1, 4], [2, 4]])
    barrier = np.array([1.5, 4.0, 3.5, 6.0, 7.0, np.inf])
    refined = np.array([True, False, True, False, False, False])
    tree = basin_tree(minima_energy, pairs, barrier, basin, rep, refined=refined)
    np.testing.assert_array_equal(tree.leaves, rep)
    np.testing.assert_array_equal(tree.energy, [0.0, 0.5, 3.0])
    # basins 0-1 at 3.5 (through minima 0-3, row 2, not 1-2 at 4), then basin 2 at 6
    # (minima 3-4, row 3, not 1-4 at 7); the barrier inside basin 0 (1.5) is not a merge.
    np.testing.assert_array_equal(tree.linkage, [[0, 1, 3.5, 2], [2, 3, 6.0, 3]])
    np.testing.assert_array_equal(tree.pair, [2, 3])
    np.testing.assert_array_equal(tree.edge, [[0, 1], [1, 2]])
    np.testing.assert_array_equal(tree.refined, [True, False])
    np.testing.assert_array_equal(tree.escape(), [np.inf, 3.0, 3.0])
    assert tree.graph.nodes[2]["minimum"] == 4
    # The tree over the minima themselves has the barrier inside basin 0 (1.5) as a merge,
    # and joins minimum 2 only at 4: the pair 2-3 inside basin 1 was never estimated.
    fine = minimax_tree(minima_energy, pairs, barrier)
    assert fine.n_leaves == 5
    np.testing.assert_array_equal(fine.heights, [1.5, 3.5, 4.0, 6.0])
    # A basin with no path to the others joins at the placeholder.
    cut = basin_tree(minima_energy, pairs[:3], barrier[:3], basin, rep)
    np.testing.assert_array_equal(cut.connected, [True, False])
    # One basin: a single leaf.
    one = basin_tree(minima_energy, pairs, barrier, np.zeros(5, dtype=np.int64), np.array([0]))
    assert one.n_leaves == 1 and one.linkage.shape == (0, 4) and one.leaves.tolist() == [0]


# -------------------------------------------------------------------- pictures


def test_display_nodes_opens_the_highest_merges_first():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    assert display_nodes(tree, 1) == {6}
    assert display_nodes(tree, 2) == {3, 5}
    assert display_nodes(tree, 3) == {0, 3, 4}
    assert display_nodes(tree, 4) == {0, 1, 2, 3}
    assert display_nodes(tree, 99) == {0, 1, 2, 3}
    # Two pairs joined at 5: {0, 1} at 1.5 (node 4) and {2, 3} at 3.5 (node 5). Below the
    # root, the higher of the two opens first.
    pairs = minimax_tree(ENERGY, np.array([[0, 1], [2, 3], [1, 2]]), np.array([1.5, 3.5, 5.0]))
    assert display_nodes(pairs, 2) == {4, 5}
    assert display_nodes(pairs, 3) == {4, 2, 3}
    text = render_text(pairs, max_leaves=3)
    assert "[2 minima connected at or below 1.5; lowest: minimum 0 E=0]" in text
    assert "minimum 3  E=3" in text
    assert "lowest merges folded to show 3 groups" in text.splitlines()[0]


def test_display_nodes_folds_minima_that_drain_into_one_first():
    # Minima 0 and 3 are wells (a barrier of 4 between them); 1, 2 drain into 0 and 4, 5, 6
    # into 3 with no barrier (each joins at its own energy): two states of seven minima.
    energy = np.array([0.0, 0.5, 0.7, 1.0, 1.2, 1.4, 1.6])
    pairs = np.array([[0, 1], [1, 2], [3, 4], [4, 5], [5, 6], [2, 3]])
    barrier = np.array([0.5, 0.7, 1.2, 1.4, 1.6, 5.0])
    tree = minimax_tree(energy, pairs, barrier)
    assert tree.flat().sum() == 5
    single = one_state(tree)
    assert single[:7].all() and not single[tree.root]
    # Two lines where the tree has more minima than fit, one per state, although 7 would
    # fit lines for the flat merges' sides: they are not barriers.
    assert display_nodes(tree, 3) == set(tree.children(tree.root))
    lines = render_text(tree, max_leaves=6).splitlines()
    assert lines[0].endswith("folded to show 2 groups: 2 groups of minima that drain with no barrier")
    assert lines[1] == "[3 minima connected at or below 0.7; lowest: minimum 0 E=0, the others draining into it with no barrier]"
    assert lines[2] == ("`-- merge at 5  (+5 above minimum 0, +4 above minimum 3) with [4 minima connected at or below 1.6; "
                        "lowest: minimum 3 E=1, the others draining into it with no barrier]")
    assert len(lines) == 3
    # Where every minimum fits, each has its line.
    assert display_nodes(tree, 7) == set(range(7))
    assert "folded" not in render_text(tree, max_leaves=7).splitlines()[0]
    # The same tree scaled by 1e-6 or 1e6 folds alike.
    for c in (1e-6, 1e6):
        assert display_nodes(minimax_tree(c * energy, pairs, c * barrier), 3) == display_nodes(tree, 3)
    # The picture draws one line a state even where every minimum would fit, with the
    # state's chains (sizes) as one dot and its lowest minimum's mark.
    assert display_nodes(tree, 99, fold_flat=True) == set(tree.children(tree.root))
    ax = plot_tree(tree, sizes=[1, 1, 1, 2, 2, 2, 2], marked=[3])
    assert ax.get_xlabel() == "minima (7, folded to 2 groups: 2 groups of minima that drain with no barrier)"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["[0 +2]", "[3 +3]"]  # each group by its lowest minimum
    verticals = [ln for ln in ax.get_lines() if ln.get_xdata()[0] == ln.get_xdata()[1]]
    feet = sorted((min(ln.get_ydata()), ln.get_color()) for ln in verticals)
    assert feet[:2] == [(0.0, "black"), (1.0, "red")]  # the two states, from their lowest minima; the marked one red
    (dots,) = ax.collections
    assert sorted(dots.get_offsets()[:, 1].tolist()) == [0.0, 1.0]
    areas = dots.get_sizes()
    assert areas[np.argmax(dots.get_offsets()[:, 1])] > areas[np.argmin(dots.get_offsets()[:, 1])]  # 8 chains vs 3
    assert "folded" not in plot_tree(tree, fold_flat=False).get_xlabel()


def test_render_text_folded_writes_a_run_of_minima_draining_into_a_group_as_one_line():
    # Wells 0 and 1 (a barrier of 3 between them), then minima 2, 3, 4 on a shelf above
    # them, each draining into them with no barrier; a pair 5, 6 (6 drains into 5) far off.
    energy = np.array([0.0, 1.0, 3.5, 3.6, 3.7, 0.5, 0.6])
    pairs = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [5, 6], [0, 5]])
    tree = minimax_tree(energy, pairs, np.array([3.0, 3.5, 3.6, 3.7, 0.6, 10.0]))
    lines = render_text(tree, max_leaves=6).splitlines()
    assert lines[1:] == [
        "minimum 0  E=0",
        "|-- merge at 3  (+3 above minimum 0, +2 above minimum 1) with minimum 1  E=1",
        "|-- 3 merges at 3.5 .. 3.7 with 3 minima that drain into this group with no barrier: minima 2, 3, 4",
        "`-- merge at 10  (+10 above minimum 0, +9.5 above minimum 5) with [2 minima connected at or below 0.6; "
        "lowest: minimum 5 E=0.5, the others draining into it with no barrier]"]
    # Where every minimum fits, each has its own line.
    assert "minimum 3  E=3.6" in render_text(tree, max_leaves=7)


def test_folded_the_budget_counts_states_not_the_points_that_drain_into_them():
    # Two wells (0 at -3, 1 at -2, a barrier at 1 between them) and, at the top of the tree,
    # a plateau at 2 whose points 2..7 drain into the wells' group with no barrier, joining
    # it one by one at their own energies, above the wells' barrier.
    energy = np.array([-3.0, -2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    pairs = np.array([[0, 1], [0, 2], [1, 3], [0, 4], [1, 5], [0, 6], [1, 7]])
    tree = minimax_tree(energy, pairs, np.array([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]))
    assert state_counts(tree)[tree.root] == 2
    # Two states fit two lines: both wells show, the plateau's points on one line beside them
    # (opening the highest merges first, the budget went to the plateau's points and
    # folded the wells' barrier away).
    lines = render_text(tree, max_leaves=2).splitlines()
    assert lines[1:3] == ["minimum 0  E=-3", "|-- merge at 1  (+4 above minimum 0, +3 above minimum 1) with minimum 1  E=-2"]
    assert lines[3].startswith("`-- 6 merges at 2 .. 2 with 6 minima that drain into this group with no barrier: minima ")
    assert len(lines) == 4 and "folded to show 3 lines" in lines[0]


def test_render_text_shows_energies_heights_sizes_and_labels():
    tree = minimax_tree(ENERGY, PAIRS, BARRIER, refined=np.array([False, True, False, False]))
    text = render_text(tree, sizes=[10, 20, 30, 40], labels=["a", "b", "c", "d"])
    # Read from the bottom up: the lowest minimum, then what joins it, lowest merge first;
    # a group that joins is its own lowest minimum and what joins that, indented.
    assert text.splitlines() == [
        "barrier tree: 4 minima, energies 0 .. 3; 1 of 3 merges at refined barriers",
        "minimum 0  E=0  size 10  a",
        "|-- merge at 5  (+5 above minimum 0, +4 above minimum 1) with 2 minima:",
        "|   minimum 1  E=1  size 20  b",
        "|   `-- merge at 4 refined  (+3 above minimum 1, +2 above minimum 2) with minimum 2  E=2  size 30  c",
        "`-- merge at 6  (+6 above minimum 0, +3 above minimum 3) with minimum 3  E=3  size 40  d",
    ]
    # Over basins: the word changes.
    basins = render_text(minimax_tree(ENERGY, PAIRS, BARRIER), name="basin")
    assert basins.splitlines()[0].startswith("barrier tree: 4 basins")
    assert "basin 3  E=3" in basins and "above basin 0" in basins


def test_render_text_keeps_a_funnel_at_one_indentation():
    # Every minimum joins the lowest one's group, each higher than the last (a funnel):
    # one line per merge, none indented deeper than the first.
    b = 200
    energy = np.arange(b, dtype=float)
    tree = minimax_tree(energy, np.array([[0, i] for i in range(1, b)]), energy[1:] + 0.5)
    lines = render_text(tree, max_leaves=b).splitlines()
    assert lines[1] == "minimum 0  E=0" and len(lines) == 1 + b
    assert all(line.startswith(("|-- merge at", "`-- merge at")) for line in lines[2:])
    assert lines[2] == "|-- merge at 1.5  (+1.5 above minimum 0, +0.5 above minimum 1) with minimum 1  E=1"


def test_render_text_says_where_no_path_was_found():
    energy = np.array([0.0, 1.0, 2.0])
    tree = minimax_tree(energy, np.array([[0, 1]]), np.array([1.5]))
    text = render_text(tree)
    lines = text.splitlines()
    assert "1 not connected (no path found)" in lines[0]
    assert lines[-1] == f"`-- no path found to the group of minimum 2 (drawn at {tree.top:.6g}): minimum 2  E=2"
    assert "merge at 1.5  (+1.5 above minimum 0, +0.5 above minimum 1) with minimum 1  E=1" in text


def test_render_text_folds_large_trees():
    rng = np.random.default_rng(0)
    b = 120
    energy = np.sort(rng.normal(size=b))
    pairs = np.array([[i, i + 1] for i in range(b - 1)])
    barrier = np.maximum(energy[:-1], energy[1:]) + rng.uniform(0.1, 2.0, size=b - 1)
    tree = minimax_tree(energy, pairs, barrier)
    text = render_text(tree, sizes=np.ones(b, dtype=int), max_leaves=20)
    lines = text.splitlines()
    assert "folded to show 20 groups" in lines[0]
    minima = re.findall(r"minimum (\d+)  E=", text)
    folded = re.findall(r"\[(\d+) minima connected at or below [^;]+; lowest: minimum (\d+) E=[^,]+, total size (\d+)\]",
                        text)
    assert len(minima) + len(folded) == 20  # each minimum and folded group shown once
    assert len(set(minima) | {low for _, low, _ in folded}) == 20
    assert sum(int(count) for count, _, _ in folded) + len(minima) == b
    # A folded group's total size is its leaf count here (sizes all 1).
    assert all(count == size for count, _, size in folded)
    assert sum("merge at" in line for line in lines) == 19  # the merges shown
    assert "folded" not in render_text(tree, max_leaves=b).splitlines()[0]


def _line_count(ax) -> int:
    return len(ax.get_lines())


def test_plot_tree_draws_the_tree_into_an_axes_and_saves_a_png(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    tree = minimax_tree(ENERGY, PAIRS, BARRIER)
    fig = Figure()
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    out = plot_tree(tree, ax, sizes=[1, 2, 3, 4], marked=[2], labels=list("abcd"), title="four minima")
    assert out is ax
    # A vertical line per leaf, a connector and a stem per merge.
    assert _line_count(ax) == 4 + 2 * 3
    lines = ax.get_lines()
    verticals = [ln for ln in lines if ln.get_xdata()[0] == ln.get_xdata()[1]]
    horizontals = [ln for ln in lines if ln.get_ydata()[0] == ln.get_ydata()[1] and ln not in verticals]
    assert sorted(ln.get_ydata()[0] for ln in horizontals) == [4.0, 5.0, 6.0]
    bottoms = sorted(min(ln.get_ydata()) for ln in verticals)
    assert bottoms[:4] == [0.0, 1.0, 2.0, 3.0]  # each leaf's line starts at its energy
    assert any(ln.get_color() == "red" for ln in lines)  # the marked leaf
    assert len(ax.collections) == 1  # the size dots
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert ax.get_title() == "four minima"
    path = tmp_path / "tree.png"
    ax.figure.savefig(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_plot_tree_without_axes_and_with_groups_not_connected(tmp_path):
    energy = np.array([0.0, 1.0, 2.0])
    tree = minimax_tree(energy, np.array([[0, 1]]), np.array([1.5]))
    ax = plot_tree(tree)  # a new figure
    dashed = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
    # the merge of 0 and 1 at its estimate 1.5 (not refined), in black; no path to 2, grey at the top
    assert sorted((ln.get_ydata()[0], ln.get_color()) for ln in dashed) == [(1.5, "black"), (tree.top, "grey")]
    assert any("no path found" in t.get_text() for t in ax.texts)
    assert ax.get_ylim()[1] > tree.top
    ax.figure.savefig(tmp_path / "disc.png")
    assert (tmp_path / "disc.png").stat().st_size > 2000


def test_plot_tree_folds_beyond_max_leaves(tmp_path):
    rng = np.random.default_rng(1)
    b = 80
    energy = np.sort(rng.normal(size=b))
    pairs = np.array([[i, i + 1] for i in range(b - 1)])
    barrier = np.maximum(energy[:-1], energy[1:]) + rng.uniform(0.1, 2.0, size=b - 1)
    tree = minimax_tree(energy, pairs, barrier)
    full = plot_tree(tree, max_leaves=400)
    assert _line_count(full) == b + 2 * (b - 1)
    assert "80" in full.get_xlabel() and "folded" not in full.get_xlabel()
    ax = plot_tree(tree, max_leaves=10, sizes=np.ones(b))
    # 10 groups (leaves or folded), 9 merges drawn above them.
    assert _line_count(ax) == 10 + 2 * 9
    assert "folded to 10 groups" in ax.get_xlabel()
    assert len(ax.get_xticks()) == 10
    assert any(t.get_text().startswith("[") for t in ax.get_xticklabels())  # a folded group
    assert len(ax.collections) == 0  # no per-leaf dots when folded
    # A folded group is named by its lowest leaf and how many more, not by a bare count.
    groups = [m for m in display_nodes(tree, 10) if m >= b]
    assert sorted(t.get_text() for t in ax.get_xticklabels() if t.get_text().startswith("[")) == sorted(
        f"[{int(tree.lowest[m])} +{int(tree.linkage[m - b, 3]) - 1}]" for m in groups)
    # The legend counts the estimated merges among those drawn: the 9 above the groups.
    (legend,) = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == "barrier estimated, not refined to a saddle (9 of 9 merges drawn)"
    ax.figure.savefig(tmp_path / "folded.png")
    assert (tmp_path / "folded.png").stat().st_size > 2000


def test_a_merge_with_no_resolvable_barrier_is_flat():
    # Leaf 1 drains into leaf 0 (barrier at its own energy); leaf 2 sits behind a barrier of 1.
    tree = minimax_tree(np.array([-100.0, -50.0, -40.0]), np.array([[0, 1], [1, 2]]), np.array([-50.0, -39.0]))
    assert tree.flat().tolist() == [True, False]
    # Relative to the energy's magnitude: scaling changes nothing.
    scaled = minimax_tree(np.array([-1.0, -0.5, -0.4]), np.array([[0, 1], [1, 2]]), np.array([-0.5, -0.39]))
    assert scaled.flat().tolist() == [True, False]
    # A flat merge resolves no barrier: the settings take no scale from its rounding residue.
    residue = minimax_tree(np.array([-100.0, -50.0, -40.0]), np.array([[0, 1], [1, 2]]),
                           np.array([-50.0 + 1e-4, -39.0]))
    assert residue.flat().tolist() == [True, False]
    assert residue.depth()[0] > 0 and residue.resolved_depth().tolist() == [0.0, 1.0]


def test_the_flat_threshold_follows_the_energys_precision():
    import torch

    assert flat_rtol(torch.float32) == FLAT_RTOL == flat_rtol(np.float32)
    assert flat_rtol(torch.float64) == flat_rtol(np.float64) == pytest.approx(1.86e-14, rel=0.01)
    assert flat_rtol(torch.bfloat16) > flat_rtol(torch.float16) > FLAT_RTOL
    # two minima near 1000, joined 1e-3 above the higher: no barrier in float32, one in float64
    args = (np.array([1000.0, 1000.5]), np.array([[0, 1]]), np.array([1000.501]))
    assert minimax_tree(*args).flat().all()
    deep = minimax_tree(*args, flat_rtol=flat_rtol(torch.float64))
    assert not deep.flat().any() and deep.resolved_depth() == pytest.approx([1e-3])
    assert basin_tree(args[0], args[1], args[2], np.array([0, 1]), np.array([0, 1]),
                      flat_rtol=deep.flat_rtol).flat_rtol == deep.flat_rtol
    # Near U = 0 the map's other energies set the precision: two points on the flat tail of
    # a well of depth 1 (1e-22 apart) are no barrier, the well's own barrier of 0.5 is.
    tail = minimax_tree(np.array([-1.0, -0.5, -3e-22, -2e-22]), np.array([[0, 1], [1, 2], [2, 3]]),
                        np.array([-1e-9, -1e-22, -1e-22]), flat_rtol=flat_rtol(torch.float64))
    assert tail.flat().tolist() == [False, True, True] and sorted(tail.resolved_depth())[-1] == pytest.approx(0.5)


def test_a_merge_within_the_maps_energy_tie_is_flat_whatever_the_magnitude():
    # Points on a circle of minima at U = 0 (energies 1e-22 to 1e-16) joined by string tops
    # 1e-19 above them: every energy near 0, so the magnitude sets no floor; the map's
    # energy tie does (1e-12 here), and the basins' trees carry it.
    import torch

    args = (np.array([1e-22, 1e-16, 5e-17]), np.array([[0, 1], [1, 2]]), np.array([1.7e-16, 1.5e-16]))
    loose = minimax_tree(*args, flat_rtol=flat_rtol(torch.float64))
    assert not loose.flat().any()
    tied = minimax_tree(*args, flat_rtol=flat_rtol(torch.float64), flat_atol=1e-12)
    assert tied.flat().all() and tied.drained().sum() == 2 and (tied.resolved_depth() == 0).all()
    assert basin_tree(args[0], args[1], args[2], np.arange(3), np.arange(3), flat_rtol=tied.flat_rtol,
                      flat_atol=tied.flat_atol).flat().all()
    # a barrier above the tie stays one
    assert not minimax_tree(*args, flat_rtol=flat_rtol(torch.float64), flat_atol=1e-17).flat().any()


def test_a_flat_merge_is_written_flat_not_as_a_rounding_residue():
    # Minimum 1 drains into minimum 0 with no barrier float32 resolves (1e-7 of U ~ 1).
    t = minimax_tree(np.array([0.0, 1.0, 0.5]), np.array([[0, 1], [0, 2]]), np.array([1.0 + 1e-7, 2.0]))
    text = render_text(t)
    assert "merge at 1  (+1 above minimum 0, flat above minimum 1) with minimum 1" in text, text
    assert "(+2 above minimum 0, +1.5 above minimum 2)" in text
    # two minima of one flat floor (a ring's valley): neither side's rise is a barrier
    t = minimax_tree(np.array([3.63228, 3.63228 + 1e-15]), np.array([[0, 1]]), np.array([3.63228 + 5e-15]),
                     flat_rtol=flat_rtol(np.float64))
    assert "(flat above minimum 0, flat above minimum 1)" in render_text(t), render_text(t)
