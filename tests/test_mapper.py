"""The mapping pipeline at its defaults, on energies whose landscape is known exactly.

Every test here maps with the settings a user gets when giving none (fewer chains or
shorter trials at most, to stay fast): the tilted multi-wells and Mueller-Brown have known
minima, saddles and trees, and the map of ``c * U`` must be ``c`` times the map of ``U``.
"""

from __future__ import annotations

import functools
import math
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.autograd.function import once_differentiable

from landscape import LandscapeError
from landscape.energy import Energy, check_gives_back
from landscape.io.mapfile import read_map, write_map
from landscape.io.records import Partition
from landscape.io.progress import load_progress, progress_path, save_progress
from landscape.mapping import pipeline
from landscape.mapping.pipeline import ProgressBars, Reporter, build_map, extend_map
from landscape.potentials import (
    MUELLER_BROWN_MINIMA,
    MUELLER_BROWN_SADDLE_ENERGY,
    mueller_brown,
    tilted_wells,
    tilted_wells_exact,
)
from landscape.mapping.ad import ADConfig, attraction_diffusion
from landscape.mapping.settings import (
    MapConfig,
    ad_settings,
    capped_eps,
    hessian_vector,
    largest_curvature,
    median_spacing,
    stable_eps,
)
from landscape.mapping.minima import energy_tie
from landscape.mapping.tree import minimax_tree
from conftest import CountingStrings, Notes, arm_after_a_batch_save, assert_same_map

FAST = dict(chains=128, max_steps=800, patience=100, attempts=2, grid=0)
#: The scales c of c * U at which a test holds the exact answers (scaled) of an energy U:
#: the extremes a map must come out alike at, with the unscaled energy (c = 1) between them.
SCALES = [0.01, 100.0]


def merge_sets(tree, leaf_to_key) -> list[frozenset]:
    n = tree.n_leaves
    members = {i: frozenset([leaf_to_key[i]]) for i in range(n)}
    out = []
    for k, (a, b, _, _) in enumerate(tree.linkage):
        members[n + k] = members[int(a)] | members[int(b)]
        out.append(members[n + k])
    return out


def wells_energy(dim: int, scale: float = 1.0) -> Energy:
    return Energy(lambda x: scale * tilted_wells(x), shape=(dim,), data_range=(-2.0, 2.0), dtype=torch.float64,
                  name=f"wells{dim}")


def check_wells(content, dim: int, scale: float = 1.0) -> None:
    """Every minimum at its exact place, the tree the exact minimax tree, barriers exact."""
    answer = tilted_wells_exact(dim)
    found = content.minima_x.astype(np.float64)
    d = np.linalg.norm(answer.minima[:, None] - found[None], axis=2)
    assert content.n_minima == len(answer.minima)
    assert (d.min(axis=1) < 1e-3).all()
    exact_of = d.argmin(axis=0)  # map minimum -> exact index
    exact = minimax_tree(scale * answer.energy, answer.pairs, scale * answer.saddle)
    got = dict(zip(merge_sets(content.tree, exact_of), content.tree.heights))
    want = dict(zip(merge_sets(exact, range(len(answer.minima))), exact.heights))
    assert set(got) == set(want)  # the same merges, so the same order
    depth = dict(zip(merge_sets(exact, range(len(answer.minima))), exact.depth()))
    for merge, height in got.items():
        assert abs(height - want[merge]) < 1e-4 * depth[merge]
    assert content.tree.refined.all() and content.tree.connected.all()


@pytest.fixture(scope="module")
def wells3():
    return build_map(wells_energy(3), MapConfig(**FAST))


@pytest.mark.slow
def test_tilted_wells_at_defaults_exact_minima_tree_and_saddles(wells3):
    check_wells(wells3.content, 3)
    # An energy of unknown scale is quenched from uniform starts (no temperature), and its
    # barriers set the attraction-diffusion temperature: 1/20 of the lowest.
    s = wells3.settings
    assert s["temperature"] == 0.0
    lowest = np.nanmin(wells3.content.tree.depth())
    assert s["ad_temperature"] == pytest.approx(0.05 * lowest, rel=1e-6)


@pytest.mark.slow
def test_the_ladder_runs_from_every_minimum_to_one_basin(wells3):
    levels = wells3.content.levels
    counts = [p.n_basins for p in levels]
    assert counts[0] == 8 and counts[-1] == 1
    assert all(a >= b for a, b in zip(counts, counts[1:]))  # a stronger pull merges more
    assert [p.multiplier for p in levels][:5] == [0.03, 0.1, 0.3, 1.0, 3.0]
    assert wells3.content.partition.multiplier == 0.1
    # Each level's basins are numbered by energy and represented by their lowest minimum.
    e = wells3.content.minima_energy
    for p in levels:
        assert np.all(np.diff(p.energy) >= 0)
        for b, rep in enumerate(p.representative):
            assert e[rep] == e[p.basin == b].min()


def test_rungs_are_inserted_where_a_step_of_the_ladder_loses_most_basins(tmp_path):
    # A ladder of three pulls (0.1, 1 and 9 units) on the 4-D wells: 16, 16, 1 basins. A
    # rung goes in at the geometric mean of the pulls where the stronger keeps under a
    # quarter of the basins (between 1 and 9 here, not 0.1 and 1); the levels come out sorted by
    # pull, and the file says how many were inserted.
    cfg = dict(chains=64, rounds=1, max_steps=400, patience=50, attempts=1, grid=0, ladder=(0.1, 1.0, 9.0),
               ladder_extend=0)
    bare = build_map(wells_energy(4), MapConfig(ladder_refine=0, **cfg)).content
    assert [(p.multiplier, p.n_basins) for p in bare.levels] == [(0.1, 16), (1.0, 16), (9.0, 1)]
    assert bare.attrs["levels"]["inserted"] == 0
    refined = build_map(wells_energy(4), MapConfig(**cfg))
    levels = refined.content.levels
    assert [p.multiplier for p in levels] == pytest.approx([0.1, 1.0, 3.0, 9.0])
    assert 1 < levels[2].n_basins < 16 and refined.content.attrs["levels"]["inserted"] == 1
    # The ladder's own levels are the bare map's, and the file keeps them all, in order.
    assert [p.basin.tolist() for p in (levels[0], levels[1], levels[3])] == [p.basin.tolist() for p in bare.levels]
    path = tmp_path / "m.h5"
    write_map(path, refined.content, config=MapConfig(**cfg).to_dict(), source={"spec": "wells"},
              tool_version="test", settings=refined.settings, seconds=refined.seconds)
    back = read_map(path)
    assert [p.multiplier for p in back.levels] == [p.multiplier for p in levels]
    assert back.attrs["levels"]["inserted"] == 1


def test_a_rung_goes_in_where_a_step_keeps_exactly_a_quarter_of_the_basins():
    # (wells of curvatures 1, 100 and 10^4 along three axes: 8, 8, 8, 8, 2, ... basins, the
    # level of 4 between never looked for: 8 -> 2 is a quarter, and the rule wanted fewer)
    from types import SimpleNamespace

    from landscape.mapping.pipeline import _midpoints

    def rungs(*pairs):
        return [SimpleNamespace(multiplier=m, n_basins=b) for m, b in pairs]

    assert _midpoints(rungs((1.0, 8), (3.0, 2)), 4) == [1.73]
    assert _midpoints(rungs((1.0, 9), (3.0, 3)), 4) == []  # (a third: left)
    assert _midpoints(rungs((1.0, 8), (1.1, 2)), 4) == []  # (pulls too close to split)
    # Beside rungs inserted before, only the gaps on the far side of one that kept its
    # neighbour's basins: the drop it was to split lies whole there.
    flat_side = rungs((0.3, 209), (0.548, 209), (1.0, 1), (3.0, 1))
    assert _midpoints(flat_side, 3, beside=[0.548]) == [0.74]
    assert _midpoints(rungs((0.3, 64), (0.548, 1), (1.0, 1)), 3, beside=[0.548]) == [0.405]
    assert _midpoints(rungs((0.3, 64), (0.548, 20), (1.0, 1)), 3, beside=[0.548]) == []  # (it split the drop)
    assert _midpoints(flat_side, 0, beside=[0.548]) == []  # (no budget left)
    # A rung inside the drop that split it ends the search; one that split nothing either goes on.
    assert _midpoints(rungs((0.3, 209), (0.548, 209), (0.74, 52), (1.0, 1)), 3, beside=[0.548, 0.74]) == []
    assert _midpoints(rungs((0.3, 209), (0.548, 209), (0.74, 1), (1.0, 1)), 3, beside=[0.548, 0.74]) == [0.637]


def test_a_rung_inserted_on_the_flat_side_of_a_drop_gets_another_beside_it():
    # The 4-D wells at 0.1, 1 and 81 units: 16, 16, 1 basins. The rung inserted at 9 keeps
    # the 1 basin of 81: the drop lies between 1 and 9, and a rung goes in at 3, which
    # splits it (14 basins): the search ends there.
    cfg = dict(chains=64, rounds=1, max_steps=400, patience=50, attempts=1, grid=0, ladder=(0.1, 1.0, 81.0),
               ladder_extend=0)
    content = build_map(wells_energy(4), MapConfig(**cfg)).content
    assert [p.multiplier for p in content.levels] == pytest.approx([0.1, 1.0, 3.0, 9.0, 81.0])
    counts = [p.n_basins for p in content.levels]
    assert counts[:2] == [16, 16] and counts[-2:] == [1, 1] and 16 > counts[2] > 1
    assert content.attrs["levels"]["inserted"] == 2
    one = build_map(wells_energy(4), MapConfig(**{**cfg, "ladder_refine": 1})).content  # (the budget holds)
    assert [p.multiplier for p in one.levels] == pytest.approx([0.1, 1.0, 9.0, 81.0])


@pytest.mark.slow
@pytest.mark.parametrize("scale", [0.01, 100.0, 1e-20])  # (1e-20: gradients below float64's rounding unit)
def test_a_scaled_energy_gives_the_scaled_map(wells3, scale):
    scaled = build_map(wells_energy(3, scale), MapConfig(**FAST))
    a, b = wells3.content, scaled.content
    np.testing.assert_allclose(b.minima_x, a.minima_x, atol=1e-6)
    np.testing.assert_allclose(b.minima_energy, scale * a.minima_energy, rtol=1e-6)
    np.testing.assert_array_equal(b.minima_hits, a.minima_hits)
    np.testing.assert_array_equal(b.tree.linkage[:, [0, 1, 3]], a.tree.linkage[:, [0, 1, 3]])
    np.testing.assert_allclose(b.tree.heights, scale * a.tree.heights, rtol=1e-6)
    assert [p.n_basins for p in b.levels] == [p.n_basins for p in a.levels]
    for pa, pb in zip(a.levels, b.levels):
        np.testing.assert_array_equal(pa.basin, pb.basin)
    for key in ("temperature", "ad_temperature"):
        assert scaled.settings[key] == pytest.approx(scale * wells3.settings[key], rel=1e-6)
    for key in ("alpha_unit", "delta", "merge_radius", "ad_eps"):
        assert scaled.settings[key] == pytest.approx(wells3.settings[key], rel=1e-5)


@pytest.mark.slow
def test_an_energy_offset_its_precision_resolves_gives_the_same_map(wells3):
    # An EBM's energy has an arbitrary offset. In float64, 1e6 leaves barriers of a few
    # units resolved to 1e-10: the same minima, tree and basins, the same settings (the
    # flat-merge threshold follows the energy's precision, not float32's 1e-5 of its
    # magnitude, which would take the lowest barriers for rounding residue).
    c = 1e6
    shifted = build_map(Energy(lambda x: tilted_wells(x) + c, shape=(3,), data_range=(-2.0, 2.0), dtype=torch.float64),
                        MapConfig(**FAST))
    a, b = wells3.content, shifted.content
    # (quenches stop at the gradient tolerance: a few 1e-6 apart when rounded differently)
    np.testing.assert_allclose(b.minima_x, a.minima_x, atol=1e-4)
    np.testing.assert_allclose(b.minima_energy - c, a.minima_energy, atol=1e-6)
    np.testing.assert_array_equal(b.tree.linkage[:, [0, 1, 3]], a.tree.linkage[:, [0, 1, 3]])
    np.testing.assert_allclose(b.tree.heights - c, a.tree.heights, atol=1e-6)
    assert not b.tree.flat().any() and b.tree.flat_rtol < 1e-13
    assert [p.n_basins for p in b.levels] == [p.n_basins for p in a.levels]
    for key in ("temperature", "ad_temperature", "alpha_unit", "delta", "merge_radius", "ad_eps"):
        assert shifted.settings[key] == pytest.approx(wells3.settings[key], rel=1e-5, abs=1e-12)


def plateau(x: torch.Tensor) -> torch.Tensor:
    """A flat floor (the unit disc, U = 0) inside a quadratic wall: every point of the disc
    a minimum, no barrier anywhere, no spread among the minima's energies."""
    return torch.relu(torch.linalg.vector_norm(x, dim=1) - 1.0) ** 2


@pytest.mark.slow
def test_minima_on_a_flat_floor_give_the_same_map_at_any_scale_and_offset():
    # No barrier and no energy spread to take T_AD from: the walls' rise over the box sets
    # it, so c U + b maps as U does (T_AD scaled by c, the same pull, the same basins).
    maps = {}
    for c, b in ((1.0, 0.0), (0.01, 0.0), (100.0, 0.0), (1.0, 5.0)):
        e = Energy(lambda x, c=c, b=b: c * plateau(x) + b, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
        maps[c, b] = build_map(e, MapConfig(chains=32, rounds=1, max_steps=400, patience=50, attempts=1, grid=0))
    ref = maps[1.0, 0.0]
    assert ref.content.tree.flat().all()  # no barrier anywhere
    assert ref.settings["ad_temperature"] < 0.1  # from the walls, not the old fallback of 1
    for (c, b), m in maps.items():
        np.testing.assert_allclose(m.content.minima_x, ref.content.minima_x, atol=1e-6)
        assert m.settings["ad_temperature"] == pytest.approx(c * ref.settings["ad_temperature"], rel=1e-6)
        assert m.settings["alpha_unit"] == pytest.approx(ref.settings["alpha_unit"], rel=1e-5)
        # The quench leaves some points of the floor's rim a rounding unit outside it (U =
        # c 1e-32, curvature 2c) and others on it (curvature 0 inside), which ones depending
        # on the scale: the step comes from the stiffer side of the rim either way, and
        # attraction-diffusion takes energies within the map's tie as equal (by index).
        assert m.settings["ad_eps"] == pytest.approx(ref.settings["ad_eps"], rel=1e-6)
        assert [p.n_basins for p in m.content.levels] == [p.n_basins for p in ref.content.levels]
        for a, r in zip(m.content.levels, ref.content.levels):
            np.testing.assert_array_equal(a.basin, r.basin)
        assert m.content.levels[-1].n_basins == 1
    # The weak pulls' chains would not cross the whole floor in their step budget, but the
    # floor holds no barrier to any pull, which its straight lines show: one basin, its
    # points placed where they drain, without trials.
    n = ref.content.n_minima
    assert n > 10 and ref.content.levels[0].attrs["drain_placed"] == n - 1
    assert all(p.n_basins == 1 for p in ref.content.levels)
    # No barrier anywhere, so no saddle point, though the gradient vanishes on the floor
    # (most of its pairs were called saddle points, 108 or 110 of 115 by the scale).
    for m in maps.values():
        assert not m.content.barriers.saddle_point.any()


def test_an_energy_with_no_gradient_in_its_input_is_refused_before_every_start_is_called_a_minimum():
    # torch.round on the input: values from -1 to 35 across the box, gradient 0 everywhere.
    # Mapped, every one of 64 starts "converged" to a minimum of its own.
    from landscape.mapping.settings import exploration_settings

    steps = Energy(lambda x: torch.round(3 * x).pow(2).sum(1), shape=(2,), data_range=(-3.0, 3.0))
    with pytest.raises(LandscapeError, match="gradient with respect to its input is 0 at all 64 points"):
        build_map(steps, MapConfig(chains=64, rounds=1, grid=0))
    # a constant energy has no gradient either, and nothing to descend: no refusal
    flat = Energy(lambda x: 0.0 * x.sum(1) + 1.0, shape=(2,), data_range=(-3.0, 3.0))
    assert exploration_settings(flat, MapConfig(chains=64), None)["grad_tol"] > 0


def hat(x: torch.Tensor) -> torch.Tensor:
    """A Mexican hat: a circle of minima at U = 0 (r = 1), one state, no barrier on it."""
    return ((x ** 2).sum(1) - 1.0) ** 2


@pytest.mark.slow
def test_a_circle_of_minima_at_zero_energy_is_one_state_at_any_scale_and_offset():
    # Quenches leave points all round the circle, their energies 1e-22 to 1e-16 by how
    # near to it they stopped, and the strings between them tops a hair off the floor.
    # With every energy near 0 the energy's magnitude sets no floor under what counts as
    # a barrier: below the map's energy tie (the quenches' gradient tolerance times the
    # merge radius) nothing does. Before, 262 minima made 89 "distinct states" and 89
    # basins at every pull; U + 1 gave one.
    for c, b in ((1.0, 0.0), (0.01, 0.0), (100.0, 0.0), (1.0, 1.0)):
        e = Energy(lambda x, c=c, b=b: c * hat(x) + b, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
        m = build_map(e, MapConfig(chains=64, rounds=1, grid=0))
        tree = m.content.tree
        assert m.content.n_minima > 20
        assert tree.flat().all(), (c, b, int((~tree.flat()).sum()))
        assert 0 < tree.flat_atol == pytest.approx(energy_tie(m.settings["grad_tol"], m.settings["merge_radius"]))
        assert all(p.n_basins == 1 for p in m.content.levels), [p.n_basins for p in m.content.levels]


def test_the_note_on_basins_left_at_the_strongest_pull_counts_them_as_the_map_keeps_them(monkeypatch):
    # A ladder of one weak pull over a flat floor: attraction-diffusion's chains leave parts
    # of the floor apart, which drain into one another with no barrier and are joined. The
    # map keeps one basin, so it says nothing of basins left (it said "N basins remain at
    # the strongest pull tried", N the parts before joining). (Nothing is known to drain
    # before attraction-diffusion here, as where only the refinement shows it: else the
    # floor's points would be placed where they drain, without trials.)
    from landscape.mapping import ad

    monkeypatch.setattr(ad, "_drain_ends", lambda *args: {})
    reporter = Notes()
    notes = reporter.notes

    e = Energy(plateau, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    m = build_map(e, MapConfig(chains=32, rounds=1, max_steps=400, patience=50, attempts=1, grid=0, alpha=0.03,
                               ladder=(0.03,), ladder_extend=0, ladder_refine=0), reporter=reporter).content
    (level,) = m.levels
    assert level.attrs["drained"] > 0 and level.n_basins == 1
    assert m.attrs["levels"]["note"] == "" and not [n for n in notes if "remain at the strongest" in n], notes


def test_new_minima_that_leave_basins_at_the_strongest_pull_bring_the_note():
    # A map of one well (its chains started in it) says nothing of basins left; the other
    # well, added later behind a barrier its one weak pull cannot cross, leaves two basins,
    # and the map says so (it said nothing: only a note already there was counted again).
    from scipy.optimize import minimize

    from landscape.mapping.minima import Minima

    def two(x):
        return 20 * (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + x[:, 1] ** 2

    e = Energy(two, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    m = build_map(e, MapConfig(chains=8, rounds=1, grid=0, init="data", alpha=0.03, ladder=(0.03,), ladder_extend=0,
                               ladder_refine=0), data=torch.tensor([[-1.0, 0.0]] * 8, dtype=torch.float64)).content
    assert m.n_minima == 1 and m.attrs["levels"]["note"] == ""
    x = torch.from_numpy(minimize(lambda v: float(two(torch.tensor(v[None]))), np.array([1.0, 0.0]), tol=1e-14).x)[None]
    new = Minima(x, two(x), torch.zeros(1, dtype=torch.int64), torch.zeros(1, dtype=torch.float64))
    extended = extend_map(e, m, new)
    assert [p.n_basins for p in extended.levels] == [2]
    assert extended.attrs["levels"]["note"].startswith("2 basins remain at the strongest pull tried (alpha 0.03 units")


def _two_wells(x: torch.Tensor) -> torch.Tensor:
    # wells at x0 = -1 and +1 (0.6 higher), the higher one 19.7 below their barrier at x0 = 0
    return 20 * (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + x[:, 1] ** 2


@pytest.mark.parametrize("scale", SCALES)
def test_one_basin_at_the_weakest_pull_says_why_and_what_keeps_the_states_apart(scale):
    # A model sampling at T = 6 c crosses its 19.7 c barrier (3.3 T): its map at defaults has
    # one basin at every pull, and says so, with the temperature that keeps the wells apart
    # (1/20 of the barrier), which does. A pull of 30 units drags the chains across the
    # barrier of 20 T_AD that the default temperature sets: a weaker ladder is what to try.
    def u(x):
        return scale * _two_wells(x)

    notes = Notes()
    e = Energy(u, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64, sampler={"tau": math.sqrt(6 * scale)})
    m = build_map(e, MapConfig(chains=32, rounds=1, grid=0), reporter=notes).content
    assert [p.n_basins for p in m.levels] == [1] * 5
    note = m.attrs["levels"]["note"]
    suggested = float(re.search(r"--ad-temperature (\S+)", note).group(1))
    assert note.startswith("1 basin already at the weakest pull (alpha 0.03 units) over 2 states, joining minima across "
                           f"the tree's one barrier of 2 T_AD or more: 3.3 T_AD (T_AD {6 * scale:.4g} is the checkpoint's "
                           "sampling temperature: the model's own chains cross it); --ad-temperature "), note
    assert suggested == pytest.approx(0.05 * 19.7 * scale, rel=0.01) and note in notes.notes
    apart = build_map(e, MapConfig(chains=32, rounds=1, grid=0, ad_temperature=suggested, alpha=0.03, ladder=(0.03,),
                                   ladder_extend=0, ladder_refine=0)).content
    assert [p.n_basins for p in apart.levels] == [2]
    plain = Energy(u, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    dragged = build_map(plain, MapConfig(chains=32, rounds=1, grid=0, alpha=30.0, ladder=(30.0,), ladder_extend=0,
                                         ladder_refine=0)).content
    assert dragged.attrs["levels"]["note"].endswith("joining minima across the tree's one barrier of 2 T_AD or more: "
                                                    "20 T_AD: the pull takes chains across it; a weaker --ladder splits "
                                                    "them")


def test_a_weakest_pull_that_joins_half_the_states_says_which_barriers_it_crossed():
    # Four wells at (+-3, +-1): 2.9 high along x1, 59 along x0. A model sampling at T = 1
    # crosses the low ones: 2 basins at the weak pull, over 4 states, and the note names
    # the barriers crossed (2.9 T), not the high ones; at the temperature it gives, 4 basins.
    def u(x):
        return 60 * ((x[:, 0] / 3) ** 2 - 1) ** 2 + 0.3 * x[:, 0] + 3 * (x[:, 1] ** 2 - 1) ** 2 + 0.1 * x[:, 1]

    e = Energy(u, shape=(2,), data_range=(-5.0, 5.0), dtype=torch.float64, sampler={"tau": 1.0})
    cfg = dict(chains=32, rounds=1, grid=0, alpha=0.03, ladder=(0.03, 30.0), ladder_refine=0)
    m = build_map(e, MapConfig(**cfg)).content
    assert m.n_minima == 4 and [p.n_basins for p in m.levels] == [2, 1]
    note = m.attrs["levels"]["note"]
    assert re.fullmatch(r"2 basins already at the weakest pull \(alpha 0\.03 units\) over 4 states, joining minima "
                        r"across 2 of the tree's 3 barriers of 2 T_AD or more: 2\.9 T_AD \(T_AD 1 is the checkpoint's "
                        r"sampling temperature: the model's own chains cross them\); --ad-temperature 0\.14\d* \(1/20 "
                        r"of the lowest of them\) keeps the states apart", note), note
    t = float(re.search(r"--ad-temperature (\S+)", note).group(1))
    assert build_map(e, MapConfig(**cfg, ad_temperature=t)).content.levels[0].n_basins == 4


def test_the_weakest_pull_is_noted_where_it_joins_a_quarter_of_the_trees_barriers_or_more():
    # Nine minima in a row, each pass 3 above the higher side (3 T_AD): a weakest level that
    # joins minima across 1 of the 8 passes (nearly every state a basin of its own) says
    # nothing; across 2 (a quarter), it says so, counting the passes that a basin holds
    # minima on both sides of, even where the basin's minima are not the sides' lowest.
    e = np.arange(9.0)[::-1] * 0.1  # (minimum 8 the lowest)
    pairs = np.array([[i, i + 1] for i in range(8)])
    tree = minimax_tree(e, pairs, np.maximum(e[:-1], e[1:]) + 3.0)

    def level(basin):
        basin = np.asarray(basin)
        reps = [int(np.flatnonzero(basin == b)[np.argmin(e[basin == b])]) for b in range(basin.max() + 1)]
        return Partition(alpha=0.1, basin=basin, representative=reps, energy=e[reps], multiplier=0.03)

    strongest = Partition(alpha=10.0, basin=np.zeros(9), representative=[8], energy=[e[8]], multiplier=3.0)
    one = level([0, 0, 1, 2, 3, 4, 5, 6, 7])
    assert pipeline._ladder_note([one, strongest], tree, 1.0, True) is None
    two = level([0, 0, 1, 2, 3, 4, 5, 6, 6])
    note = pipeline._ladder_note([two, strongest], tree, 1.0, True)
    assert note.startswith("7 basins already at the weakest pull (alpha 0.03 units) over 9 states, joining minima "
                           "across 2 of the tree's 8 barriers of 2 T_AD or more: 3 T_AD (T_AD 1 is the checkpoint's"), note
    assert note.endswith("--ad-temperature 0.15 (1/20 of the lowest of them) keeps the states apart"), note


@pytest.mark.parametrize("tau2", [1.0, 0.1])
def test_ripples_below_twice_the_temperature_that_the_weakest_pull_crosses_bring_no_note(tau2):
    # Six minima along a valley, 0.19 high ripples between them, at T = 1 and at T = 0.1
    # (1.9 T): attraction-diffusion is to cross what the model's own chains cross, and the
    # map says nothing of it.
    def u(x):
        return 4 * x[:, 1] ** 2 + 0.1 * torch.cos(6 * x[:, 0]) + 0.01 * x[:, 0]

    e = Energy(u, shape=(2,), data_range=(-3.0, 3.0), dtype=torch.float64, sampler={"tau": math.sqrt(tau2)})
    m = build_map(e, MapConfig(chains=32, rounds=1, grid=0, alpha=0.03, ladder=(0.03, 30.0), ladder_refine=0)).content
    assert m.n_minima == 6 and 2 * m.levels[0].n_basins <= 6 and m.attrs["levels"]["note"] == ""


@pytest.mark.slow
@pytest.mark.parametrize("name, box", [("four_wells_mlp", (-2.0, 2.0)), ("balanced_wells", (-4.5, 4.5)),
                                       ("planted_hole", (-4.5, 4.5))])
def test_the_other_test_potentials_map_alike_at_0_01_and_100_times(name, box):
    # Every automatic setting on energies nobody tuned: c U maps as U, energies times c.
    from landscape import potentials

    fn = getattr(potentials, name)
    maps = {c: build_map(Energy(lambda x, c=c: c * fn(x), shape=(2,), data_range=box, dtype=torch.float64),
                         MapConfig(chains=64, rounds=1))
            for c in (1.0, 0.01, 100.0)}
    ref = maps[1.0]
    assert ref.content.n_minima >= 4 and ref.content.levels[0].n_basins >= 3
    for c, m in maps.items():
        np.testing.assert_allclose(m.content.minima_x, ref.content.minima_x, atol=1e-6)
        np.testing.assert_allclose(m.content.minima_energy, c * ref.content.minima_energy, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(m.content.tree.heights, c * ref.content.tree.heights, rtol=1e-6)
        assert [p.n_basins for p in m.content.levels] == [p.n_basins for p in ref.content.levels]
        for a, r in zip(m.content.levels, ref.content.levels):
            np.testing.assert_array_equal(a.basin, r.basin)
        assert m.settings["ad_temperature"] == pytest.approx(c * ref.settings["ad_temperature"], rel=1e-6)
        for key in ("ad_eps", "alpha_unit", "delta", "merge_radius"):
            assert m.settings[key] == pytest.approx(ref.settings[key], rel=1e-5), key


def stiff_valley(x: torch.Tensor) -> torch.Tensor:
    """Two minima at (+-1, 0), a barrier of 1 between them along a valley 2,500 times
    stiffer across (curvature 2e4) than along (8 at the minima)."""
    return (x[:, 0] ** 2 - 1) ** 2 + 1e4 * x[:, 1] ** 2


@pytest.mark.slow
def test_a_stiff_valley_gives_its_two_minima_and_barrier_at_any_scale():
    # The starts' gradients come from the stiff direction: a tolerance taken from them must
    # still let the quench reach the valley's floor, and the quench must cross the concave
    # middle of the valley, where plain gradient descent creeps at the stiff direction's step.
    for c in (0.01, 1.0, 100.0):
        e = Energy(lambda x, c=c: c * stiff_valley(x), shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
        m = build_map(e, MapConfig(chains=64, rounds=1, max_steps=400, patience=50, attempts=1, grid=0))
        content = m.content
        assert content.n_minima == 2
        # to the tolerance: a gradient 1e-8 of the starts' median (21.8 c) is 2.7e-5 from a
        # minimum along the soft direction
        np.testing.assert_allclose(np.sort(content.minima_x[:, 0]), [-1.0, 1.0], atol=1e-4)
        np.testing.assert_allclose(content.minima_x[:, 1], 0.0, atol=1e-6)
        np.testing.assert_allclose(content.tree.heights, [c], rtol=1e-5)
        assert [p.n_basins for p in content.levels][0] == 2 and content.levels[-1].n_basins == 1


@pytest.mark.slow
def test_mueller_brown_at_defaults_and_scaled():
    for scale in (0.1, 1.0):
        e = Energy(lambda x, s=scale: s * mueller_brown(x), shape=(2,), data_range=(-1.6, 2.1), dtype=torch.float64)
        c = build_map(e, MapConfig(**FAST)).content
        assert c.n_minima == 3
        d = np.linalg.norm(np.asarray(MUELLER_BROWN_MINIMA)[:, None] - c.minima_x[None], axis=2)
        assert (d.min(axis=1) < 1e-3).all()
        # Both saddles, every minimum a leaf: the shallow pair's saddle is in the tree even
        # where it is only a few units above its minima (scale 0.1: 0.85).
        np.testing.assert_allclose(np.sort(c.tree.heights), scale * np.sort(MUELLER_BROWN_SADDLE_ENERGY), rtol=1e-5)
        assert c.tree.refined.all()
        # ... at saddle points: where the gradient vanishes (a smooth energy), at every scale.
        assert c.barriers.saddle_point[c.tree.pair].all() and c.attrs["barriers"]["saddle_points"] >= 2
        # The finest level separates all three minima: no barrier lost to the temperature.
        assert c.levels[0].n_basins == 3
        # A smooth energy's strings converge, but for the deepest minimum's to the third,
        # which runs through the middle minimum and keeps sliding there (its top is exact).
        assert c.attrs["barriers"]["strings_at_budget"] <= 1
    # On three iterations none converges: the map counts the strings that ran out (a pair
    # whose attraction-diffusion chain undercut its refined barrier is refined again).
    short = build_map(e, MapConfig(**FAST, refine_steps=3, refine_climb_steps=0)).content
    assert short.attrs["barriers"]["strings_at_budget"] >= int(np.isfinite(short.barriers.refined).sum()) > 0


@pytest.mark.slow
def test_refined_paths_and_saddles_of_the_tree_are_kept_for_small_minima(wells3):
    c = wells3.content
    assert c.tree_saddle is not None and c.tree_path is not None
    e = wells_energy(3)
    saddles = torch.from_numpy(c.tree_saddle.astype(np.float64))
    np.testing.assert_allclose(e(saddles).numpy(), c.tree.heights, rtol=1e-5, atol=1e-5)
    for k in range(c.tree.n_leaves - 1):
        path = c.tree_path[k][np.isfinite(c.tree_path[k]).all(axis=1)]
        i, j = c.tree.edge[k]
        np.testing.assert_allclose(path[0], c.minima_x[i], atol=1e-6)
        np.testing.assert_allclose(path[-1], c.minima_x[j], atol=1e-6)


@pytest.mark.slow
def test_the_map_round_trips_through_the_file(wells3, tmp_path):
    path = write_map(tmp_path / "w.h5", wells3.content, config=MapConfig(**FAST).to_dict(), source={"spec": "wells"},
                     tool_version="test", settings=wells3.settings, seconds=wells3.seconds)
    back = read_map(path)
    np.testing.assert_array_equal(back.tree.linkage, wells3.content.tree.linkage)
    np.testing.assert_array_equal(back.barriers.pairs, wells3.content.barriers.pairs)
    assert back.settings()["ad_temperature"] == wells3.settings["ad_temperature"]
    assert [p.n_basins for p in back.levels] == [p.n_basins for p in wells3.content.levels]


@pytest.mark.slow
def test_exploration_goes_on_while_rounds_find_new_minima():
    # 32 wells from 32 chains: the first round cannot find them all; later ones do.
    e = wells_energy(5)
    result = build_map(e, MapConfig(chains=32, rounds=6, max_steps=400, patience=50, attempts=1, grid=0,
                                    refine=False, ladder=(1.0,), ladder_extend=0))
    assert result.content.n_minima == 32
    assert result.content.attrs["minima"]["rounds"] >= 3
    # One round only: fewer.
    once = build_map(e, MapConfig(chains=32, rounds=1, max_steps=400, patience=50, attempts=1, grid=0,
                                  refine=False, ladder=(1.0,), ladder_extend=0))
    assert once.content.n_minima < 32
    # Where nearly every chain finds a minimum of its own (as in image space), more rounds
    # would not saturate: one round only.
    few = build_map(e, MapConfig(chains=4, rounds=6, max_steps=400, patience=50, attempts=1, grid=0, refine=False,
                                 ladder=(1.0,), ladder_extend=0))
    assert few.content.attrs["minima"]["rounds"] == 1


def _wells_on_a_plateau(x: torch.Tensor) -> torch.Tensor:
    # Gaussian wells of depths 1 and 0.7 at (-2, 0) and (2, 0), width 0.15, on a plateau.
    a = ((x[:, 0] + 2) ** 2 + x[:, 1] ** 2) / 0.15
    b = ((x[:, 0] - 2) ** 2 + x[:, 1] ** 2) / 0.15
    return -torch.exp(-a) - 0.7 * torch.exp(-b)


def test_a_new_minimum_that_drains_into_a_known_one_is_no_new_state():
    from landscape.mapping.minima import Minima

    e = Energy(_wells_on_a_plateau, shape=2, data_range=(-4.0, 4.0), dtype=torch.float64)
    # known: well A and a plateau point beside well B; new: a plateau point beside A (drains
    # into A), one far out on the plateau (drains into the known plateau point, no higher
    # beyond the energy's precision), and well B itself (it drains into nothing higher)
    x = torch.tensor([[-2.0, 0.0], [3.5, 0.0], [-3.0, 0.5], [0.0, 3.0], [2.0, 0.0]], dtype=torch.float64)
    minima = Minima(x, e(x), torch.ones(5, dtype=torch.int64), torch.zeros(5, dtype=torch.float64))
    fresh = torch.tensor([False, False, True, True, True])
    assert pipeline._new_states(e, minima, fresh, 24, 0.0) == 1
    assert pipeline._new_states(e, minima, torch.tensor([False, False, True, True, False]), 24, 0.0) == 0
    # a barrier in the way: a new well behind a wall is a new state
    wall = Energy(lambda z: (z[:, 0] ** 2 - 1) ** 2, shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    two = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    pair = Minima(two, wall(two), torch.ones(2, dtype=torch.int64), torch.zeros(2, dtype=torch.float64))
    assert pipeline._new_states(wall, pair, torch.tensor([False, True]), 24, 0.0) == 1


@pytest.mark.parametrize("scale", SCALES)
def test_exploration_stops_once_a_round_finds_only_points_that_drain_into_known_minima(scale):
    # Quenches stop all over the plateau (minima 1e-20 deep); every round found more of them,
    # and the chains doubled to the rounds' cap (2,048 chains, 453 minima for three such
    # wells). The second round finds both wells again and only plateau points besides.
    e = Energy(lambda x: scale * _wells_on_a_plateau(x), shape=2, data_range=(-4.0, 4.0), dtype=torch.float64)
    # (quenches of 500 steps: on the plateau they stop as far from one another as at 2,000, 4x sooner)
    result = build_map(e, MapConfig(chains=64, rounds=6, max_steps=200, patience=40, attempts=1, grid=0,
                                    refine=False, ladder=(0.1,), ladder_extend=0, quench_steps=500))
    m = result.content
    assert m.attrs["minima"]["rounds"] == 2 and m.attrs["minima"]["chains"] == 128
    wells = np.argsort(m.minima_energy)[:2]
    np.testing.assert_allclose(np.abs(m.minima_x[wells]), [[2.0, 0.0], [2.0, 0.0]], atol=1e-4)
    assert m.n_minima > 10


@pytest.mark.slow
def test_without_refinement_the_tree_rests_on_estimates_from_real_paths():
    e = wells_energy(2)
    c = build_map(e, MapConfig(refine=False, **FAST)).content
    answer = tilted_wells_exact(2)
    assert not c.tree.refined.any() and c.tree.connected.all()
    # Estimates are the highest points of real paths: never below the exact saddles.
    exact = minimax_tree(answer.energy, answer.pairs, answer.saddle)
    assert (np.sort(c.tree.heights) >= np.sort(exact.heights) - 1e-9).all()


@pytest.mark.slow
def test_an_interrupted_map_resumes_to_the_uninterrupted_result(tmp_path):
    e = wells_energy(2)
    cfg = MapConfig(chains=32, rounds=2, max_steps=400, patience=50, attempts=1, grid=0)
    whole = build_map(e, cfg).content
    out = tmp_path / "w.h5"

    class StopAfterLadder(Reporter):
        """Interrupts the stage after the ladder's levels (run together, saved together)."""

        ladder = False

        def stage(self, name, total=None, unit="it"):
            if self.ladder:
                raise KeyboardInterrupt
            self.ladder = name.startswith("attraction-diffusion, alpha 0.03, 0.1, 0.3, 1, 3 units")

    with pytest.raises(KeyboardInterrupt):
        build_map(e, cfg, progress_file=out, reporter=StopAfterLadder())
    saved = load_progress(out)
    assert saved is not None and all(f"level{k}/basin" in saved for k in range(5)) and "final" not in saved
    with pytest.raises(LandscapeError, match="--resume"):
        build_map(e, cfg, progress_file=out)
    with pytest.raises(LandscapeError, match="other settings"):
        build_map(e, MapConfig(chains=33, rounds=2, max_steps=400, patience=50, attempts=1, grid=0),
                  progress_file=out, resume=True)
    resumed = build_map(e, cfg, progress_file=out, resume=True).content
    np.testing.assert_array_equal(resumed.minima_x, whole.minima_x)
    np.testing.assert_array_equal(resumed.tree.linkage, whole.tree.linkage)
    assert [p.basin.tolist() for p in resumed.levels] == [p.basin.tolist() for p in whole.levels]
    assert progress_path(out).exists()  # the caller removes it once the map is written


#: Rounds of one minimum: the 3-D wells' ladder runs in many batches of trials.
WELLS3_RUN = dict(chains=32, rounds=2, max_steps=400, patience=50, attempts=1, grid=0, round_size=1)


@functools.cache
def wells3_whole():
    """The uninterrupted map of :data:`WELLS3_RUN` (made once a process; not to be changed)."""
    return build_map(wells_energy(3), MapConfig(**WELLS3_RUN)).content


@pytest.mark.parametrize("where", ["between batches", "inside a batch"])
def test_a_map_interrupted_inside_attraction_diffusion_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch,
                                                                                           capsys, where):
    # Rounds of one minimum: the ladder runs in many batches of trials. Its progress is saved
    # between them (here after every one); a run interrupted after some minima were placed
    # continues from the last save, its generators where they were, to the same map.
    e = wells_energy(3)
    cfg = MapConfig(**WELLS3_RUN)
    whole = wells3_whole()
    out = tmp_path / "w.h5"
    reporter = Notes()
    notes = reporter.notes

    class Interrupt(Notes):
        ad = False
        placed = 0

        def stage(self, name, total=None, unit="it"):
            self.ad = name.startswith("attraction-diffusion")

        def advance(self, n=1):
            self.placed += n * self.ad
            if where == "between batches" and self.placed >= 12:
                raise KeyboardInterrupt

        def detail(self, text):
            if where == "inside a batch" and armed:
                raise KeyboardInterrupt

    with monkeypatch.context() as m:  # (a save at every chance, whatever the machine's speed, until interrupted)
        m.setattr(pipeline, "_SAVE_EVERY", 0.0)
        m.setattr(pipeline, "_SAVE_COST", 0.0)
        armed = arm_after_a_batch_save(m, 12)  # (interrupted after a save 32+ steps into a batch)
        with pytest.raises(KeyboardInterrupt):
            build_map(e, cfg, progress_file=out, reporter=Interrupt())
    saved = load_progress(out)
    assert saved["running"] == ["0", "1", "2", "3", "4"] and "level0/basin" not in saved
    assert 0 < int((saved["running0/basin_of"] >= 0).sum()) < 8  # part-way: some minima placed, not all
    if where == "between batches":  # progress from a damaged file is refused, not run from
        assert "running_turn/info" not in saved
        for key, value, error in (("running1/reps", np.array([99]), "does not fit these minima"),
                                  ("running2/generator", np.zeros(3, np.uint8), "generator state is unusable")):
            bad = tmp_path / f"bad-{key.replace('/', '-')}.h5"
            save_progress(bad, {**saved, key: value})
            with pytest.raises(LandscapeError, match=error):
                build_map(e, cfg, progress_file=bad, resume=True)
    if where == "inside a batch":  # the batch under way is saved with its trials' state
        assert saved["running_turn/info"]["step"] >= 32 and saved["running_turn/run/x"].shape[1:] == (3,)
        from conftest import run

        code, said, _ = run(capsys, "info", out)  # what the progress holds, in words
        placed = ", ".join(str(int((saved[f"running{k}/basin_of"] >= 0).sum())) for k in range(5))
        assert code == 0 and said.startswith(f"unfinished map {out}")
        assert (f"under way  attraction-diffusion at alpha 0.03, 0.1, 0.3, 1, 3 units: {placed} of 8 minima placed; "
                f"inside a batch of trials at step {saved['running_turn/info']['step']:,}") in said
        assert "done       8 minima from 64 chains in 2 rounds; barriers between neighbours" in said
        with pytest.raises(LandscapeError, match=r"\(`landscape info .*w\.h5` shows how far it got\): pass --resume"):
            build_map(e, cfg, progress_file=out)  # (without --resume: refused, the progress kept)
        save_progress(out, {"levels_done": 1, "level0/energy": np.zeros(3)}, kind="funnel")
        code, said, _ = run(capsys, "info", f"{out}.funnel.partial")  # (the funnel's own test has one part-way)
        assert code == 0 and said.startswith(f"unfinished funnel probe of {out} (its progress in {out}.funnel.partial")
        assert "done       1 noise level of chains run and quenched (3 chains each)" in said
        info = saved["running_turn/info"]
        for key, value, error in (("running_turn/rows", np.array([10**6]), "batch does not fit"),
                                  ("running_turn/info", {**info, "pairs": [[[0, 99]]] * 5}, "turn does not fit"),
                                  ("running_turn/info", {**info, "start": 7}, "chunks do not fit"),
                                  ("running_turn/info", {k: v for k, v in info.items() if k != "step"}, "damaged")):
            bad = tmp_path / "bad-turn.h5"
            save_progress(bad, {**saved, key: value})
            with pytest.raises(LandscapeError, match=error):
                build_map(e, cfg, progress_file=bad, resume=True)
    resumed = build_map(e, cfg, progress_file=out, resume=True, reporter=reporter).content
    said = [t for t in notes if t.startswith("resuming attraction-diffusion at alpha 0.03, 0.1, 0.3, 1, 3 units part-way")]
    assert len(said) == 1 and (where == "between batches" or ", inside a batch of trials at step" in said[0])
    assert_same_map(resumed, whole)
    assert not any(k.startswith("running") for k in load_progress(out))  # the levels done replace it


def test_a_disk_too_full_for_a_batchs_state_costs_that_save_not_the_map(tmp_path, monkeypatch):
    # Saves inside a batch hold its trials' recorded paths (hundreds of MB for an image
    # model): where the disk refuses one, the map goes on, saving between batches only.
    import errno

    monkeypatch.setattr(pipeline, "_SAVE_EVERY", 0.0)
    monkeypatch.setattr(pipeline, "_SAVE_COST", 0.0)  # (a save at every chance, whatever the machine's speed)
    e = wells_energy(3)
    cfg = MapConfig(**WELLS3_RUN)
    whole = wells3_whole()
    real, kept = pipeline.save_progress, []

    def full_disk(path, state, *args, **kwargs):
        if any(k.startswith("running_turn/") for k in state):
            raise OSError(errno.ENOSPC, "No space left on device")
        kept.append(sorted(k for k in state if k.startswith("running")))
        return real(path, state, *args, **kwargs)

    monkeypatch.setattr(pipeline, "save_progress", full_disk)
    reporter = Notes()
    notes = reporter.notes

    content = build_map(e, cfg, progress_file=tmp_path / "w.h5", reporter=reporter).content
    assert sum("could not be saved (No space left on device): the map goes on" in t for t in notes) == 1
    assert any("running0/basin_of" in k for k in kept)  # saved between batches after the refusal
    np.testing.assert_array_equal(content.tree.linkage, whole.tree.linkage)
    assert [p.basin.tolist() for p in content.levels] == [p.basin.tolist() for p in whole.levels]


def test_a_map_interrupted_after_a_pass_of_refinement_resumes_after_it(tmp_path, monkeypatch):
    # The 5-D wells' map refines attraction-diffusion pairs in a pass of their own; a run
    # interrupted after that pass (here: as it looks for more) keeps it, and the resumed
    # run refines nothing again.
    e = wells_energy(5)
    cfg = MapConfig(chains=32, rounds=2, max_steps=400, patience=50, attempts=1, grid=0)
    stages: list[str] = []
    notes: list[str] = []

    class Log(Reporter):
        def stage(self, name, total=None, unit="it"):
            stages.append(name)

        def note(self, text):
            notes.append(text)

    whole = build_map(e, cfg, reporter=Log()).content
    assert "refining barriers (attraction-diffusion pairs, string method)" in stages
    rows = pipeline.refinement_rows
    looked = []

    def interrupting(*args, **kwargs):
        if len(looked) == 2:  # the neighbours' rows, then the first pass's: interrupted before a second
            raise KeyboardInterrupt
        looked.append(1)
        return rows(*args, **kwargs)

    out = tmp_path / "w.h5"
    monkeypatch.setattr(pipeline, "refinement_rows", interrupting)
    with pytest.raises(KeyboardInterrupt):
        build_map(e, cfg, progress_file=out)
    monkeypatch.setattr(pipeline, "refinement_rows", rows)
    saved = load_progress(out)
    assert saved["connected/passes"] == 1 and "final" not in saved
    stages.clear()
    resumed = build_map(e, cfg, progress_file=out, resume=True, reporter=Log()).content
    assert "resuming the refinement after its pass 1" in notes
    assert not any(s.startswith("refining barriers") for s in stages)
    for name in ("pairs", "estimate", "refined", "alpha", "source", "saddle_point"):
        np.testing.assert_array_equal(getattr(resumed.barriers, name), getattr(whole.barriers, name))
    np.testing.assert_array_equal(resumed.tree.linkage, whole.tree.linkage)
    np.testing.assert_array_equal(resumed.tree_saddle, whole.tree_saddle)
    assert resumed.attrs["barriers"] == whole.attrs["barriers"]


def test_a_map_interrupted_inside_the_string_method_resumes_there(tmp_path, monkeypatch, capsys):
    # The neighbour pairs' strings run in batches (here of 4); the progress is saved after
    # each, so a run interrupted among them continues after the last batch saved, to the
    # uninterrupted map.
    monkeypatch.setattr(pipeline, "_SAVE_EVERY", 0.0)
    monkeypatch.setattr(pipeline, "_SAVE_COST", 0.0)
    monkeypatch.setattr(pipeline, "_STRING_BATCH", 4)
    e = wells_energy(3)
    cfg = MapConfig(chains=32, rounds=2, max_steps=400, patience=50, attempts=1, grid=0)
    whole = build_map(e, cfg).content
    out = tmp_path / "w.h5"
    with pytest.raises(KeyboardInterrupt):
        build_map(e, cfg, progress_file=out, reporter=CountingStrings("refining barriers (neighbours", stop_at=10))
    saved = load_progress(out)
    assert saved["refining/info"]["done"] == 8 and saved["refining/info"]["phase"] == 0
    assert "pairs/pairs" not in saved  # (the neighbours' stage under way)
    from conftest import run

    code, said, _ = run(capsys, "info", out)
    assert code == 0 and f"under way  the string method: 8 of {len(saved['refining/info']['rows'])} strings" in said
    log = CountingStrings("refining barriers (neighbours")
    resumed = build_map(e, cfg, progress_file=out, resume=True, reporter=log).content
    assert log.counted[0] == 8  # (the strings run before the interruption: counted, not run again)
    assert any(t.startswith("resuming the string method (neighbours) after 8 of its") for t in log.notes)
    assert_same_map(resumed, whole)
    np.testing.assert_array_equal(resumed.tree_saddle, whole.tree_saddle)
    assert not any(k.startswith("refining/") for k in load_progress(out))  # (the stage done replaces it)


@pytest.mark.parametrize("scale", SCALES)
def test_a_ridge_the_chains_step_over_still_sets_the_tree(scale):
    # Two wells at x0 = -1, 1 (energy 0) and a ridge 3 high and 0.01 wide across x0 = 0:
    # every path between them crosses x0 = 0, where the energy is at least 1 + 3 = 4. The
    # attraction-diffusion chain steps over the ridge (its sampled peak is about 1.1), the
    # string started on its path finds the pass at 4, and the tree must rest on 4: the
    # chain's estimate is checked along its path, not trusted over the string's saddle.
    def ridge(x):
        return scale * ((x[:, 0] ** 2 - 1) ** 2 + 2 * x[:, 1] ** 2 + 3.0 * torch.exp(-((x[:, 0] / 0.01) ** 2)))

    e = Energy(ridge, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64, name="ridge")
    c = build_map(e).content
    assert c.n_minima == 2
    assert c.tree.heights[0] - c.minima_energy.max() == pytest.approx(4.0 * scale, rel=2e-3)
    assert c.tree.refined[0]


def test_the_map_says_how_its_quenches_stopped():
    # The note on minima counts the chains whose descent converged, reached the energy's
    # precision (float32), or ran out of iterations: a reader can tell a precise minimum
    # from an end point that wanted more --quench-steps.
    reporter = Notes()
    notes = reporter.notes

    cfg = dict(chains=32, rounds=1, max_steps=200, patience=50, attempts=1, grid=0, ladder=(1.0,), ladder_extend=0)
    build_map(wells_energy(2), MapConfig(**cfg), reporter=reporter)
    assert re.fullmatch(r"\d+ minima from 32 chains; quenches: 32 converged", notes[0])
    notes.clear()
    build_map(wells_energy(2), MapConfig(quench_steps=2, **cfg), reporter=reporter)
    # (quenches cut at 2 iterations end all over: minima found once, said too, and that
    # `landscape info`, once the tree tells which are one state, says whether more would find more)
    assert re.fullmatch(r"\d+ minima from 32 chains(; \d+ reached by one chain only \(whether more chains would find "
                        r"more states, `landscape info` says: the tree tells which minima are one\))?; quenches: 32 at "
                        r"the 2-iteration limit", notes[0]), notes[0]
    notes.clear()
    f32 = Energy(lambda x: 1e4 + tilted_wells(x), shape=(2,), data_range=(-2.0, 2.0))
    build_map(f32, MapConfig(**cfg), reporter=reporter)
    assert re.fullmatch(r"\d+ minima from 32 chains; quenches: (\d+ converged, )?\d+ at the limit of the energy's "
                        r"precision", notes[0])


def test_progress_says_what_the_batch_under_way_is_doing(capsys):
    # A batch of trials or strings can run for minutes between two advances of its stage
    # (a 32x32 map's ladder): the reporter hears how many still run and how far they got.
    heard: dict[str, list[str]] = {}

    class Lines(Reporter):
        name = ""

        def stage(self, name, total=None, unit="it"):
            self.name = name

        def detail(self, text):
            heard.setdefault(self.name, []).append(text)

    build_map(wells_energy(2), MapConfig(chains=32, rounds=1, max_steps=400, patience=50, attempts=1, grid=0),
              reporter=Lines())
    ladder = [t for name, lines in heard.items() if name.startswith("attraction-diffusion") for t in lines]
    strings = [t for name, lines in heard.items() if name.startswith("refining barriers") for t in lines]
    assert ladder and all(re.fullmatch(r"[\d,]+/[\d,]+ trials running, step [\d,]+/400", t) for t in ladder)
    assert strings and all(re.fullmatch(r"[\d,]+/[\d,]+ strings relaxing, iteration [\d,]+/[\d,]+", t)
                           for t in strings)
    # The terminal's bars draw it after the stage's count, at most every half second,
    # and at once after an advance (the batch it spoke of is over).
    bars = ProgressBars()
    bars.stage("basins", total=2)
    bars.detail("first")
    bars.detail("second")
    assert bars.bar.postfix == "first"
    bars.advance(1)
    bars.detail("third")
    assert bars.bar.postfix == "third"
    bars.close()
    quiet = ProgressBars(quiet=True)
    quiet.stage("basins", total=2)
    quiet.detail("nothing")
    assert "nothing" not in capsys.readouterr().err


def test_bad_settings_are_refused():
    with pytest.raises(LandscapeError, match="chains"):
        MapConfig(chains=0)
    with pytest.raises(LandscapeError, match="init"):
        MapConfig(init="bank")
    with pytest.raises(LandscapeError, match="ladder"):
        MapConfig(ladder=(0.0,))
    with pytest.raises(LandscapeError, match="data range"):
        build_map(Energy(tilted_wells, shape=(2,), dtype=torch.float64), MapConfig(**FAST))
    with pytest.raises(LandscapeError, match="needs data"):
        build_map(wells_energy(2), MapConfig(init="data", **FAST))


def test_curvature_from_exact_hessian_products_and_across_kinks():
    # A quadratic: the exact Hessian-vector product and the largest eigenvalue.
    diag = torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)
    quad = Energy(lambda x: 0.5 * (diag * x * x).sum(1), shape=(3,), data_range=(-1, 1), dtype=torch.float64)
    x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(hessian_vector(quad, x, v), diag * v)
    assert largest_curvature(quad, x) == pytest.approx(9.0, rel=1e-6)
    # A kink (|x|: Hessian zero on both sides) still has a finite step scale: the gradient
    # jumps by 2 across it.
    kink = Energy(lambda x: x.abs().sum(1), shape=(1,), data_range=(-1, 1), dtype=torch.float64)
    assert largest_curvature(kink, torch.zeros(1, 1, dtype=torch.float64)) > 10
    # A descent step eps^2/2 * curvature = safety.
    assert stable_eps(9.0, 1.0, 0.5) ** 2 / 2 * 9.0 == pytest.approx(0.5)
    assert stable_eps(9.0, 4.0) == pytest.approx(2 * stable_eps(9.0, 1.0))
    assert math.isfinite(largest_curvature(quad, torch.zeros(0, 3, dtype=torch.float64)))


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_curvature_leaves_out_hessian_products_that_are_not_finite(scale):
    # A soft minimum of two wells (curvatures 2 and 8): where one well's term underflows,
    # torch's second derivative of logaddexp is 0 * inf = NaN at a point where the energy
    # and its gradient are fine. The NaN made the largest curvature the fallback 1 at every
    # scale (a floor beside a double well: the same step for U / 100 and 100 U, and its
    # levels differed by scale); the curvature is 8 times the scale.
    def soft_min(x):
        a, b = ((x + 2) ** 2).sum(1), 4 * ((x - 2) ** 2).sum(1)
        return -scale * 0.05 * torch.logaddexp(-a / 0.05, -b / 0.05)

    energy = Energy(soft_min, shape=(2,), data_range=(-4, 4), dtype=torch.float64)
    x = torch.tensor([[-2.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    assert torch.isnan(hessian_vector(energy, x, torch.ones_like(x))[0]).all()
    assert largest_curvature(energy, x) == pytest.approx(8.0 * scale, rel=1e-6)
    assert largest_curvature(energy, x[:1]) == pytest.approx(2.0 * scale, rel=1e-3)  # (the finite steps)


class _OnceDifferentiableCube(torch.autograd.Function):
    """``x^3`` whose backward cannot be differentiated again, with no forward mode either
    (as some users' custom operations are)."""

    @staticmethod
    def forward(x):
        return x**3

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(inputs[0])

    @staticmethod
    @once_differentiable
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 3 * x * x * g


def test_curvature_where_the_energy_has_no_exact_second_derivative():
    x = torch.tensor([[1.0, 2.0]], dtype=torch.float64)
    v = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    # A gradient that does not depend on x: no curvature, no error.
    w = torch.tensor([1.0, -2.0], dtype=torch.float64)
    linear = Energy(lambda z: (z * w).sum(1), shape=(2,), data_range=(-4, 4), dtype=torch.float64)
    assert torch.equal(hessian_vector(linear, x, v), torch.zeros_like(x))
    assert largest_curvature(linear, x) == 1.0  # (nothing to scale a step by)
    # Neither double backward nor forward mode: said, and the finite steps still measure
    # how fast the gradient changes (6 x = 12 along the second coordinate).
    cube = Energy(lambda z: _OnceDifferentiableCube.apply(z).sum(1), shape=(2,), data_range=(-4, 4),
                  dtype=torch.float64)
    with pytest.raises(NotImplementedError, match="no second derivative"):
        hessian_vector(cube, x, v)
    assert 11.0 < largest_curvature(cube, x) < 14.0


def test_exact_curvature_does_not_load_the_compiler():
    # torch.func's forward mode imports torch's compiler on its first use on such an
    # energy (about a second per process); double backward does not need it.
    code = ("import sys, torch\n"
            "from landscape import Energy\n"
            "from landscape.potentials import mueller_brown\n"
            "from landscape.mapping.settings import hessian_vector\n"
            "e = Energy(mueller_brown, (2,), data_range=(-1.5, 2.0), dtype=torch.float64)\n"
            "x = e.uniform_noise(8, generator=torch.Generator().manual_seed(0))\n"
            "hessian_vector(e, x, torch.ones_like(x))\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert out.stdout.strip() == "False"


def test_the_alpha_unit_is_at_least_the_pull_that_arrives_across_flat_ground():
    # Barriers far below T in 64 dimensions (a convergent model at its own temperature):
    # a pull matched to the barriers cannot even bring a chain to a target with nothing in
    # the way (it settles about (D - 1) / alpha from it), so the unit is the pull that can.
    dim = 64
    x = torch.rand(12, dim, generator=torch.Generator().manual_seed(0)) * 2 - 1
    config = MapConfig(max_steps=600, patience=100)

    def settings(c: float) -> dict:
        energy = Energy(lambda z, c=c: c * 0.5 * (z * z).sum(1), shape=(dim,), data_range=(-1.0, 1.0))
        return ad_settings(energy, config, x, np.zeros(12), c * np.array([0.01, 0.02, 0.03]), 0.02)

    s = settings(1.0)
    spacing = median_spacing(x)
    barrier_unit = 0.02 / (s["ad_temperature"] * spacing)  # median barrier / (T_AD x spacing)
    assert s["alpha_unit"] > 4 * barrier_unit and s["alpha_unit_rule"] == "arrival"  # (as the map records it)
    # On flat ground the share that arrives crosses one half between a third of the unit
    # and sqrt(3) units (the pulls are searched in steps of sqrt(3)); at 3 units nearly all.
    flat = Energy(lambda z: (z * 0).sum(1), shape=(dim,), data_range=(-1.0, 1.0))
    ends = torch.cdist(x, x).fill_diagonal_(math.inf).argmin(1)
    shares = []
    for f in (1 / 3, math.sqrt(3.0), 3.0):
        a = f * s["alpha_unit"]
        ad = ADConfig(temperature=s["ad_temperature"], alpha=a, eps=capped_eps(s["ad_eps"], s["delta"], a),
                      max_steps=600, patience=100, delta=s["delta"], attempts=1, record=0)
        out = attraction_diffusion(flat, x.repeat(8, 1), x[ends].repeat(8, 1), ad, torch.Generator().manual_seed(5))
        shares.append(float(out.success.double().mean()))
    assert shares[0] < 0.5 <= shares[1] and shares[2] > 0.9, shares
    # Nothing in it depends on the energy's scale.
    for c in (0.01, 100.0):
        assert settings(c)["alpha_unit"] == pytest.approx(s["alpha_unit"], rel=1e-6)
    # In two dimensions (same spacing, same steps) a weaker pull arrives: there the floor is
    # only what covers the spacing in max_steps steps.
    x2 = x[:, :2] * (spacing / median_spacing(x[:, :2]))
    e2 = Energy(lambda z: 0.5 * (z * z).sum(1), shape=(2,), data_range=(-10.0, 10.0))
    s2 = ad_settings(e2, config, x2, np.zeros(12), np.array([0.01, 0.02, 0.03]), 0.02)
    assert s2["alpha_unit"] < s["alpha_unit"] / 2
    given = ad_settings(e2, MapConfig(alpha_unit=3.0), x2, np.zeros(12), np.array([0.01, 0.02, 0.03]), 0.02)
    assert given["alpha_unit"] == 3.0 and given["alpha_unit_rule"] == "given"
    # The search does not depend on where it began, below the crossing (it was searched up
    # from the barriers' unit: moving that start moved the rings demo's unit 4x).
    from landscape.mapping.settings import arrival_pull

    flat64 = Energy(lambda z: 0.5 * (z * z).sum(1), shape=(dim,), data_range=(-1.0, 1.0))
    found = [arrival_pull(flat64, x, spacing, s["delta"], s["ad_eps"], s["ad_temperature"], config, at_least=a)
             for a in (barrier_unit, barrier_unit / 7, 0.0)]
    assert found[0] == found[1] == found[2] == pytest.approx(s["alpha_unit"]), found


def test_the_arrival_pull_is_much_the_same_for_any_seed():
    # 40 scattered minima, their nearest neighbours 0.18-1.25 apart (median 0.31): the pull
    # that brings half the chains to their targets depends on which pairs and what noise
    # it tried. With 16 pairs of one chain each it ranged 5.05-8.59 over eight seeds (the
    # demo's rings model at T_AD 0.1: 0.35-4.3); with 64 pairs and 256 chains, 6.0-6.7.
    x = (torch.rand(40, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 2 - 1) * 2.2
    energy = Energy(lambda z: (z * z).sum(1), shape=(2,), data_range=(-2.5, 2.5), dtype=torch.float64)
    spacing = median_spacing(x)
    from landscape.mapping.settings import arrival_pull

    pulls = [arrival_pull(energy, x, spacing, 0.25 * spacing, 0.02, 0.1, MapConfig(seed=seed)) for seed in range(8)]
    assert max(pulls) / min(pulls) < 1.3, pulls


def test_pulls_tried_together_give_the_unit_each_gives_tried_alone(monkeypatch):
    # The search runs ARRIVAL_BATCH pulls as one batch of trials, each pull's chains with
    # a generator of their own: the unit is the one found trying a pull at a time, to the bit
    # (on a stiff energy, whose small steps hold chains back over several pulls of the grid).
    from landscape.mapping import settings

    def stiff(z):
        return (z[:, 0] ** 2 - 1) ** 2 + 1e4 * (z[:, 1] ** 2 - 1) ** 2

    energy = Energy(stiff, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    x = torch.tensor([[1.0, 1.0], [-1.0, 1.0], [1.0, -1.0], [-1.0, -1.0]], dtype=torch.float64)
    config = MapConfig(max_steps=400, patience=50)
    together = settings.arrival_pull(energy, x, 2.0, 0.5, 0.002, 0.05, config)
    monkeypatch.setattr(settings, "ARRIVAL_BATCH", 1)
    assert settings.arrival_pull(energy, x, 2.0, 0.5, 0.002, 0.05, config) == together > 100.0


def test_a_ridge_narrower_than_the_string_s_images_still_sets_the_barrier():
    # Two tilted wells behind a Gaussian wall 0.004 wide (0.1 % of the box) along x = 0.1 y:
    # every path between them crosses the wall's crest, whose lowest point is at
    # U = min_y [0.5 (0.01 y^2 - 1)^2 + 0.01 y + 0.5 y^2] + 5 = 5.49995. A relaxed string
    # steps over the crest between its images and converges on a critical point beyond it
    # (U ~ 0.5): the barrier must be its polyline's top, not that saddle.
    def wall(x):
        return 0.5 * (x[:, 0] ** 2 - 1) ** 2 + 0.1 * x[:, 0] + 0.5 * x[:, 1] ** 2 \
            + 5.0 * torch.exp(-((x[:, 0] - 0.1 * x[:, 1]) ** 2) / (2 * 0.004**2))

    energy = Energy(wall, shape=(2,), data_range=(-2.5, 2.5), dtype=torch.float64)
    # (the alpha unit the defaults find, given: its search runs long by a wall this stiff; one level)
    content = build_map(energy, MapConfig(chains=64, rounds=1, ladder=(), ladder_extend=0, ladder_refine=0,
                                          neighbours=1, alpha_unit=46957.0)).content
    # The two wells, and a third minimum at the wall's foot, (0.0185, -0.0063), where the
    # tilt presses against the wall's tail (curvatures 0.97 and 70.8), 0.0009 below the
    # right well's pass: the settling nudge (0.018) had carried its chain over the wall
    # into the left well and kept that, lower, as where the chain ended.
    assert content.n_minima == 3
    foot = int(np.argmax(content.minima_energy))
    np.testing.assert_allclose(content.minima_x[foot], [0.018522, -0.006297], atol=1e-5)
    crest = min(0.5 * (0.01 * y * y - 1) ** 2 + 0.01 * y + 0.5 * y * y for y in np.linspace(-0.1, 0.1, 20001)) + 5.0
    top = int(np.argmax(content.tree.heights))
    height = content.tree.heights[top]
    assert crest <= height < crest * 1.001, (height, crest)
    # The string's highest image is no saddle point, but where the barrier lies, its
    # polyline's crossing of the crest, is one within 0.1 % of the barrier (the crest's
    # lowest point, 0.01 away along it): said so.
    assert content.barriers.saddle_point[content.tree.pair[top]]
    # /tree/saddle is where that barrier is, on the crest (it was the string's highest image,
    # off the wall: U ~ 0.5 there)
    at = torch.as_tensor(content.tree_saddle[top], dtype=torch.float64)[None]
    assert float(wall(at)) == pytest.approx(height, rel=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_a_ring_of_equal_minima_is_one_basin_beside_a_well(scale):
    # The unit circle, every point a minimum (U = 0), beside a well of -1.5 at (2.5, 0),
    # joined by a smooth minimum of the two: the only barrier is the ring-well pass,
    # 1.4935 above the ring. The converged strings along the ring rose between images
    # (their polylines' chords cut inside it, 1e-11 to 6e-9 high): barriers that set T_AD
    # to 1.5e-7 and left 33 basins up to 81 units. Chords are told from ridges now.
    def ring_well(x):
        ring = ((x ** 2).sum(1) - 1.0) ** 2
        well = 3.0 * ((x[:, 0] - 2.5) ** 2 + x[:, 1] ** 2) - 1.5
        return scale * -0.05 * torch.logaddexp(-ring / 0.05, -well / 0.05)

    result = build_map(Energy(ring_well, shape=(2,), data_range=(-2.0, 4.0), dtype=torch.float64),
                       MapConfig(chains=32, rounds=1, grid=0))  # (16 minima on the ring)
    m = result.content
    ring = np.abs((m.minima_x ** 2).sum(1) - 1) < 1e-3
    assert ring.sum() >= 10 and (~ring).sum() == 1
    assert m.tree.flat().sum() == m.n_minima - 2  # every merge along the ring
    assert result.settings["ad_temperature"] == pytest.approx(scale * 0.074675, rel=1e-3)  # 1/20 of the pass
    # Up to the default ladder's strongest pull, 2 basins, the ring whole; beyond it the pull
    # crosses the pass from some points of the ring and not yet from others, and
    # attraction-diffusion, which tries a minimum against the basins' representatives only,
    # had parted the ring between two basins. Its points drain flat into one another and
    # go where their drainage ends: the ring is whole at every pull, and the strongest
    # leaves one basin.
    weak = [level for level in m.levels if level.multiplier <= 3]
    assert len(weak) == 5 and all(level.n_basins == 2 for level in weak)
    assert all(len(set(level.basin[ring])) == 1 for level in m.levels)
    assert m.levels[-1].n_basins == 1


@pytest.mark.parametrize("scale", SCALES)
def test_a_barrier_across_the_soft_direction_of_a_stiff_energy_is_at_a_saddle_point(scale):
    # Minima at (+-1, +-1); saddles at (0, +-1), 1 high (curvatures -4 and 8e4), and at
    # (+-1, 0), 1e4 high. The strings' highest images missed the soft saddles by 0.04 (the
    # stiff direction holds their steps small) while their polylines' tops are on them: the
    # barriers, exact, were called the tops of paths, the gradient judged against the
    # stiff direction's.
    def stiff(x):
        return scale * ((x[:, 0] ** 2 - 1) ** 2 + 1e4 * (x[:, 1] ** 2 - 1) ** 2)

    # (alpha_unit: the one the defaults find, given to skip its search, long on a stiff energy:
    # the stiff valleys' tests below test that search)
    m = build_map(Energy(stiff, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64),
                  MapConfig(chains=64, rounds=1, grid=0, alpha_unit=1075.0)).content
    assert m.n_minima == 4
    np.testing.assert_allclose(np.sort(m.tree.heights), scale * np.array([1.0, 1.0, 1e4]), rtol=1e-6)
    assert m.barriers.saddle_point[m.tree.pair].all()
    np.testing.assert_allclose(np.abs(m.tree_saddle[np.argsort(m.tree.heights)[:2]]), [[0, 1], [0, 1]], atol=1e-4)


def test_attraction_diffusion_steps_are_stable_at_a_steep_wall_between_the_minima():
    # Two tilted wells behind a Gaussian wall 0.2 wide and 5 high (the barrier, 5.5, is
    # 20 T_AD): a step stable only at the minima (curvature ~2) overshoots the wall
    # (curvature ~125 at its crest) and every chain crosses it, one basin at every pull.
    def wall(x):
        return 0.5 * (x[:, 0] ** 2 - 1) ** 2 + 0.1 * x[:, 0] + 0.5 * x[:, 1] ** 2 \
            + 5.0 * torch.exp(-((x[:, 0] - 0.1 * x[:, 1]) ** 2) / (2 * 0.2**2))

    energy = Energy(wall, shape=(2,), data_range=(-2.5, 2.5), dtype=torch.float64)
    content = build_map(energy, MapConfig(chains=64, rounds=1, neighbours=1)).content
    assert content.n_minima == 2 and content.tree.heights[0] == pytest.approx(5.5, abs=0.02)
    counts = [level.n_basins for level in content.levels]
    assert counts[0] == 2 and counts[-1] == 1, counts


def test_a_string_kept_in_a_wider_buffer_gives_the_tree_paths_of_its_saved_progress():
    # Strings tried again with more images come back in one array padded with NaN rows; the
    # map kept the padding (a rings map's /tree/path [29, 48, 2], 24 columns NaN) while the
    # same map resumed read the paths back without it ([29, 24, 2]).
    from types import SimpleNamespace

    from landscape.mapping.pipeline import _Saddles

    path = np.full((48, 2), np.nan, dtype=np.float32)
    path[:24] = np.linspace([-1.0, 0.0], [1.0, 0.0], 24)
    ref = SimpleNamespace(rows=np.array([0]), saddle=np.array([0.5]), saddle_point=np.array([True]),
                          saddle_x=np.zeros((1, 2), np.float32), paths=path[None])
    table = SimpleNamespace(pairs=np.array([[0, 1]]), refined=np.array([np.nan]), saddle_point=np.array([False]))
    saddles = _Saddles({}, {})
    saddles.add(table, ref, keep_paths=True)
    state = {}
    saddles.to_state(state, (2,))
    restored = _Saddles.from_state(state)
    assert saddles.paths[(0, 1)].shape == restored.paths[(0, 1)].shape == (24, 2)
    np.testing.assert_array_equal(saddles.paths[(0, 1)], restored.paths[(0, 1)])


def test_an_unresolved_energy_spread_sets_no_alpha_unit_and_the_rule_says_what_did():
    # A float32 Gaussian well in a box 8 widths wide: quenches stop all over its tail, where
    # the gradient is below the tolerance (energies 1e-24 .. 1e-30, every merge flat). The
    # tail's energy spread once set the alpha unit (3e-10, called "the typical barrier"):
    # no pull moved a chain, 17 basins at 243 units. The spread is rounding at the well's
    # magnitude: the unit is T_AD over the spacing (or the arrival pull, if larger).

    reporter = Notes()
    notes = reporter.notes

    well = Energy(lambda x: -torch.exp(-(x ** 2).sum(-1)), shape=2, data_range=(-8.0, 8.0))
    m = build_map(well, MapConfig(chains=256, rounds=1, grid=0, refine=False), reporter=reporter).content
    assert m.n_minima > 10 and m.tree.flat().all()  # (the tail's stops: flat, as the tree says)
    rule, settings = m.attrs["levels"]["alpha_unit_rule"], m.settings()
    assert settings.get("alpha_unit_matched_rule", rule) == "temperature", (rule, settings)
    assert settings["alpha_unit"] > 1e-3, settings
    assert m.levels[-1].n_basins == 1  # (the strongest pull gathers every chain at the one well)
    # one minimum, and one energy throughout: the rule names what set the unit
    bowl = build_map(Energy(lambda x: ((x - 0.3) ** 2).sum(-1), shape=2, data_range=(-1.0, 1.0), dtype=torch.float64),
                     MapConfig(chains=32, rounds=1, grid=0)).content
    assert bowl.n_minima == 1 and bowl.attrs["levels"]["alpha_unit_rule"] == "single"
    # a minimum outside the box: held at the box's corner, and said to be
    notes.clear()
    held = build_map(Energy(lambda x: ((x - 5) ** 2).sum(-1), shape=2, data_range=(-1.0, 1.0), dtype=torch.float64),
                     MapConfig(chains=32, rounds=1, grid=0), reporter=reporter).content
    assert held.attrs["minima"]["held_by_box"] == 1  # (kept in the map: `landscape info` says it)
    assert notes[0].startswith("1 minimum from 32 chains") and any(
        n.startswith("1 of 1 minima lie on the box's faces [-1, 1] with the energy still falling beyond them")
        for n in notes), notes
    # minima that lie on the faces, the gradient there zero but for rounding (sin(2 pi),
    # 1e-16 of either sign), are not held: 8 of the egg-crate's 9 were said to be
    notes.clear()
    crate = Energy(lambda x: -torch.cos(math.pi * x).sum(-1), shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    faces = build_map(crate, MapConfig(chains=64, rounds=1, grid=0, refine=False), reporter=reporter).content
    assert faces.n_minima == 9 and faces.attrs["minima"]["held_by_box"] == 0
    assert not [n for n in notes if "box's faces" in n], notes
    # an image whose minimum has a quarter of its pixels pulled past the range's end: saturated
    # pixels, as data images have (the digits 58 %); no advice to widen the range or flip the sign
    notes.clear()
    target = torch.zeros(1, 4, 4, dtype=torch.float64)
    target[0, 0] = 2.0
    image = Energy(lambda x: ((x - target) ** 2).flatten(1).sum(1), shape=(1, 4, 4), data_range=(-1.0, 1.0),
                   dtype=torch.float64)
    part = build_map(image, MapConfig(chains=16, rounds=1, grid=0, refine=False), reporter=reporter).content
    assert part.attrs["minima"]["held_by_box"] == 1
    said = [n for n in notes if "range's ends" in n or "box's faces" in n]
    assert said == ["1 of 1 minima have pixels on the range's ends [-1, 1] with the energy still falling beyond them "
                    "(a median 25% of their pixels): saturated pixels, which the range keeps"], notes


def test_two_minima_a_little_beyond_the_merge_radius_are_kept_apart_by_their_barrier():
    # Double wells in x0 (minima near +-1) and in x1 / 0.03 (minima near +-0.03, 0.06 apart,
    # a barrier of 0.81 = 20 T_AD between them) in the box [-2, 2]: the merge radius is
    # 0.0566 and delta is floored at it, so a chain started at one minimum of a close pair
    # was within delta of the other before it moved: 2 basins at every pull. A trial now
    # arrives within half the gap at most (ad.arrival_reach).
    def wells(x):
        y = x[:, 1] / 0.03
        return (x[:, 0] ** 2 - 1) ** 2 + 0.1 * x[:, 0] + (y ** 2 - 1) ** 2 + 0.2 * y

    m = build_map(Energy(wells, shape=2, data_range=(-2.0, 2.0), dtype=torch.float64),
                  MapConfig(chains=128, rounds=1, grid=0)).content
    assert m.n_minima == 4 and m.settings()["delta"] >= 0.05
    np.testing.assert_allclose(np.sort(m.tree.escape())[:3], [0.807572, 0.807572, 0.901883], atol=2e-5)
    weak = [level for level in m.levels if level.multiplier <= 1]
    assert weak and all(level.n_basins == 4 for level in weak), [(lv.multiplier, lv.n_basins) for lv in m.levels]


@pytest.mark.parametrize("scale", SCALES)
def test_points_left_on_a_plateau_do_not_set_the_spacing_a_barrier_is_matched_over(scale):
    # Two Gaussian wells 6 apart (depths 1 and 1.5, a barrier of 1 = 20 T_AD): quenches stop
    # all over the flat plateau between them (minima 1e-20 deep, 0.2 apart). The unit was
    # the barrier over the plateau's spacing (50.7): at the main level the wells shared a
    # basin. Over the wells' own spacing it is 1.67, and they stay apart below 3 units.
    def plateau(x):
        a = (x[:, 0] + 3) ** 2 + x[:, 1] ** 2
        b = (x[:, 0] - 3) ** 2 + x[:, 1] ** 2
        return scale * (-torch.exp(-a / 0.5) - 1.5 * torch.exp(-b / 0.5))

    m = build_map(Energy(plateau, shape=2, data_range=(-5.0, 5.0), dtype=torch.float64),
                  MapConfig(chains=256, rounds=1, grid=0, refine=False)).content
    wells = np.argsort(m.minima_energy)[:2]
    assert m.n_minima > 20 and np.allclose(np.abs(m.minima_x[wells, 0]), 3.0, atol=1e-3)
    assert m.settings()["alpha_unit"] < 5, m.settings()
    main = m.levels[m.main]
    assert main.basin[wells[0]] != main.basin[wells[1]]
    # The plateau's points drain into a well with no barrier: the two wells are the only
    # basins below 3 units (they were 5-20, the points the weak pulls left on the plateau),
    # and the points, known to drain before attraction-diffusion, run no trials.
    assert [p.n_basins for p in m.levels if p.multiplier < 3] == [2] * sum(p.multiplier < 3 for p in m.levels)
    assert all(p.attrs["drain_placed"] == m.n_minima - 2 for p in m.levels)


@pytest.mark.parametrize("dim", [2, 16])
def test_points_that_drain_flat_move_no_attraction_diffusion_setting(dim):
    # Four distinct states (two Gaussian wells 6 apart, two points 4 out on the plateau),
    # then the same with 40 more points in a unit cube that drain flat into them (what
    # chains leave along a curved flat valley or a plateau: as dense as the chains that
    # stopped there). The settings are the distinct states'. They were not: delta fell
    # from 1.25 to 0.1 in 2-D (the merge radius, above a quarter of the dense points'
    # spacing), and in 16-D the
    # arrival pull over that spacing lowered T_AD 5x and raised the unit 4x.
    def wells(x):
        a = (x[:, 0] + 3) ** 2 + (x[:, 1:] ** 2).sum(1)
        b = (x[:, 0] - 3) ** 2 + (x[:, 1:] ** 2).sum(1)
        return -torch.exp(-a / 0.5) - 1.5 * torch.exp(-b / 0.5)

    energy = Energy(wells, shape=(dim,), data_range=(-5.0, 5.0), dtype=torch.float64)
    states = torch.zeros(4, dim, dtype=torch.float64)
    states[:2, 0] = torch.tensor([-3.0, 3.0])
    states[2:, 1] = torch.tensor([4.0, -4.0])
    dense = (torch.rand(40, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) - 0.5)
    dense[:, 1] += 2.0
    both = torch.cat([states, dense])
    depths = np.array([1.0, 0.5, 0.5])
    alone = ad_settings(energy, MapConfig(), states, energy(states).numpy(), depths, 0.1)
    with_dense = ad_settings(energy, MapConfig(), both, energy(both).numpy(), np.r_[depths, np.zeros(40)], 0.1,
                             drained=np.r_[np.zeros(4, bool), np.ones(40, bool)])
    assert alone["delta"] == 1.25  # (a quarter of the states' spacing, 5)
    assert with_dense.keys() == alone.keys()
    for key, value in alone.items():
        assert with_dense[key] == (value if isinstance(value, str) else pytest.approx(value, rel=1e-9)), key


def _hat(x):
    # Two minima at (0, +-1) on the ring r = 1 of a Mexican hat tilted by 0.3 x^2: the
    # passes are at (+-sqrt(0.85), 0), 0.2775 high; the straight line between the minima
    # crosses the hat's top, an index-2 maximum at the origin 1 high, where a string started
    # on that line stays (by symmetry). Attraction-diffusion's chains go round the ring.
    return ((x[:, 0] ** 2 + x[:, 1] ** 2) - 1) ** 2 + 0.3 * x[:, 0] ** 2


def _horseshoe(x):
    # Minima at (+-1, 0) on a ring; a bump on the ring's top blocks the upper pass, one
    # below the centre the straight line: the low pass, 0.518 high, is round the bottom.
    # The string started on the straight line converges onto the upper pass (2.09).
    r2 = x[:, 0] ** 2 + x[:, 1] ** 2
    return (2.5 * (r2 - 1) ** 2 + 0.5 * x[:, 1] ** 2 + 2.0 * torch.exp(-(x[:, 0] ** 2 + (x[:, 1] - 1) ** 2) / 0.2)
            + torch.exp(-(x[:, 0] ** 2 + (x[:, 1] + 0.4) ** 2) / 0.1))


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_settings_are_chosen_again_where_the_refinement_lowers_their_barriers(scale):
    # T_AD was 1/20 of the upper pass (0.105), over which every chain walked across the
    # low one (0.518 = 5 T_AD): 1 basin at every pull. The refined tree's barrier sets
    # T_AD again (0.0259) and the ladder runs again: 2 basins up to 3 units.
    reporter = Notes()
    notes = reporter.notes

    e = Energy(lambda x: scale * _horseshoe(x), shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    m = build_map(e, MapConfig(chains=64, rounds=1, grid=0), reporter=reporter).content
    assert m.n_minima == 2
    barrier = m.tree.escape()[np.isfinite(m.tree.escape())]
    np.testing.assert_allclose(barrier, [0.518 * scale], rtol=1e-3)
    np.testing.assert_allclose(m.settings()["ad_temperature"], 0.05 * barrier[0], rtol=1e-6)
    assert m.attrs["levels"]["settings_rounds"] == 2
    assert any("settings chosen again" in n for n in notes), notes
    assert [lv.n_basins for lv in m.levels if lv.multiplier <= 1] == [2, 2, 2, 2]


def test_a_map_interrupted_in_its_second_round_of_settings_resumes_to_the_same_map(tmp_path):
    e = Energy(_horseshoe, shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    cfg = MapConfig(chains=64, rounds=1, grid=0)
    whole = build_map(e, cfg).content

    class StopInRoundTwo(Reporter):
        seen = 0

        def stage(self, name, total=None, unit="it"):
            if name.startswith("attraction-diffusion, alpha"):
                self.seen += 1
                if self.seen == 2:  # (the second round's ladder)
                    raise KeyboardInterrupt

    out = tmp_path / "horseshoe.h5"
    with pytest.raises(KeyboardInterrupt):
        build_map(e, cfg, progress_file=out, reporter=StopInRoundTwo())
    saved = load_progress(out)
    assert saved["settings/rounds"] == 2 and "settings" in saved and "final" not in saved
    resumed = build_map(e, cfg, progress_file=out, resume=True).content
    assert [p.basin.tolist() for p in resumed.levels] == [p.basin.tolist() for p in whole.levels]
    np.testing.assert_array_equal(resumed.tree.linkage, whole.tree.linkage)
    assert resumed.settings() == whole.settings()


def test_a_float64_map_keeps_its_points_in_float64(tmp_path):
    # The three wells of the README's example, 1e-3 across, moved to x = 1000: float32
    # steps by 6e-5 there, and the map kept minima 2 % of their spacing off (the energy at
    # them 5e-4 away from the one recorded, so funnel and diagnose refused the energy).
    centres = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]], dtype=torch.float64)
    depth = torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)

    def far(x):
        z = (x - 1000.0) * 1e3
        return -(depth * torch.exp(-((z[:, None, :] - centres) ** 2).sum(-1) / 0.5)).sum(1) + 1e-3 * (z ** 2).sum(1)

    e = Energy(far, shape=2, data_range=(1000 - 3e-3, 1000 + 3e-3), dtype=torch.float64)
    result = build_map(e, MapConfig(chains=64, rounds=1, grid=0))
    path = result.write(tmp_path / "far.h5")
    m = read_map(path)
    assert m.minima_x.dtype == np.float64 and m.tree_saddle.dtype == np.float64
    with torch.no_grad():
        again = far(torch.from_numpy(m.minima_x)).numpy()
    np.testing.assert_allclose(again, m.minima_energy, rtol=0, atol=1e-12)
    check_gives_back(e, m)  # (funnel_probe's and diagnose_map's check of the energy)
    from dataclasses import replace

    old = replace(m, minima_x=m.minima_x.astype(np.float32))  # (as maps made before kept them)
    with pytest.raises(LandscapeError, match=r"is not the energy .* keeps float32 points of a float64 energy .*"
                                             r"map it again"):
        check_gives_back(e, old)


def test_a_string_that_stops_on_a_maximum_of_higher_index_is_started_again_beside_it():
    # The straight string between the hat's minima stops on its top, a maximum 1 high: a
    # stationary point where the energy falls across the path too. It is no saddle (the
    # tree said "saddle point" and 1): started again beside it, it finds the pass, 0.2775.
    e = Energy(_hat, shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    m = build_map(e, MapConfig(chains=64, rounds=1, grid=0, ladder=(0.01,), alpha=0.01, ladder_extend=0)).content
    np.testing.assert_allclose(m.barriers.refined[np.isfinite(m.barriers.refined)], [0.2775], rtol=1e-6)
    assert m.barriers.saddle_point.all()
    # (the climbing image stops where its gradient falls below the string's tolerance, 1e-4
    # of the steepest on its start, about 1.5; along the path the energy curves by -0.6
    # there: within about 2.6e-4 of the saddle)
    np.testing.assert_allclose(np.abs(m.tree_saddle[0]), [math.sqrt(0.85), 0.0], atol=5e-4)


def test_the_top_of_a_hat_is_found_to_fall_across_the_path_and_a_saddle_is_not():
    from landscape.mapping.barriers import descent_across

    e = Energy(_hat, shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
    tops = torch.tensor([[0.0, 0.0], [math.sqrt(0.85), 0.0]], dtype=torch.float64)
    tangents = torch.tensor([[0.0, 1.0], [0.0, 1.0]], dtype=torch.float64)
    d = descent_across(e, tops, tangents)
    assert torch.allclose(d[0].abs(), torch.tensor([1.0, 0.0], dtype=torch.float64)) and torch.isnan(d[1]).all()


def _tilted_hat(x):
    # The hat tilted by 0.1 x0^3: its passes differ (0.351 at x0 > 0, 0.194 at x0 < 0) and
    # its top stays stationary across the straight line between the minima (0, +-1).
    return ((x[:, 0] ** 2 + x[:, 1] ** 2) - 1) ** 2 + 0.3 * x[:, 0] ** 2 + 0.1 * x[:, 0] ** 3


def test_strings_started_again_beside_a_top_go_the_same_way_fresh_or_resumed():
    # The start of the search across the path was a row of a random matrix: the same string
    # went another way in another batch position, as a resumed run puts it (0.351 for
    # 0.194). Now every row starts alike, and the string goes where the energy falls faster.
    from landscape.io.records import NEIGHBOUR, PairTable
    from landscape.mapping.barriers import refine_pairs

    e = Energy(_tilted_hat, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    x = torch.tensor([[0.0, 1.0], [0.0, -1.0]] * 4, dtype=torch.float64)
    table = PairTable(np.array([[2 * p, 2 * p + 1] for p in range(4)]), np.full(4, 10.0), np.full(4, np.nan),
                      np.full(4, np.nan), np.full(4, NEIGHBOUR, dtype=np.uint8))
    kw = dict(images=8, steps=200, climb_steps=50, batch=2)
    saved = []
    whole = refine_pairs(e, x, table, list(range(4)), on_batch=lambda get: saved.append(get()), **kw)
    np.testing.assert_allclose(whole.saddle, 0.1942, atol=1e-4)
    assert any(s.phase == 1 for s in saved[:-1])
    for s in saved[:-1]:
        np.testing.assert_array_equal(refine_pairs(e, x, table, list(range(4)), resume_from=s, **kw).saddle,
                                      whole.saddle)


def test_mirror_images_of_a_hat_near_the_box_s_face_give_the_same_barrier():
    # Centred at x0 = +-1.7 in the box [-2, 2]: the string started beside the top left the
    # box on one side (0.975 there, a path top; 0.280 on the other).
    def shifted(sign):
        def hat(x):
            u, y = sign * (x[:, 0] - sign * 1.7), x[:, 1]
            return ((u ** 2 + y ** 2) - 1) ** 2 + 0.3 * u ** 2 + 0.05 * y

        return hat

    got = []
    for sign in (1.0, -1.0):
        e = Energy(shifted(sign), shape=2, data_range=(-2.0, 2.0), dtype=torch.float64)
        m = build_map(e, MapConfig(chains=64, rounds=1, grid=0, ladder=(0.01,), alpha=0.01, ladder_extend=0)).content
        got.append(m.tree.escape()[np.isfinite(m.tree.escape())])
    np.testing.assert_allclose(got[0], got[1], rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.01])
def test_in_64_dimensions_the_ladder_shows_each_level_of_a_three_level_tree(scale):
    # 8 minima of three double wells along Hadamard directions, barriers about 4, 1 and
    # 0.25. At T_AD 1/20 of the lowest barrier (0.0125) the pull that brings a chain to
    # its target at all ((D - 1) / delta in units of U / T_AD) outweighs the typical
    # barrier 16 times: 8, 8, 7, 2, 1 basins, the pairs across the 0.25 barriers never
    # one basin on their own. T_AD lowered until the two meet gives each level.
    from scipy.linalg import hadamard
    from test_minima import hadamard_wells

    e = Energy(lambda x: scale * hadamard_wells(x), (1, 8, 8), data_range=(-1, 1))
    result = build_map(e, MapConfig(chains=64))
    m = result.content
    assert m.n_minima == 8
    assert result.settings["ad_temperature_lowered"] > 4
    np.testing.assert_allclose(result.settings["ad_temperature"],
                               0.0125 * scale / result.settings["ad_temperature_lowered"], rtol=1e-6)
    h = torch.as_tensor(hadamard(64)[[3, 5, 6]], dtype=torch.float64)
    sides = (torch.from_numpy(m.minima_x).reshape(8, -1).double() @ h.T > 0).numpy()  # [8, 3] the wells' sides

    def groups(basin):
        return sorted(sorted(np.flatnonzero(basin == b).tolist()) for b in np.unique(basin))

    by = {lv.n_basins: groups(lv.basin) for lv in m.levels}
    assert 4 in by and 2 in by, [lv.n_basins for lv in m.levels]
    # 4 basins: the minima on the same sides of the two high barriers; 2: of the highest
    for count, axes in ((4, [0, 1]), (2, [0])):
        key = [tuple(s) for s in sides[:, axes]]
        assert by[count] == groups(np.unique(key, axis=0, return_inverse=True)[1].ravel()), (count, by)


def test_a_stiff_valley_whose_chains_are_held_back_by_their_steps_keeps_its_temperature():
    # (x0^2 - 1)^2 + 1e4 x1^2: the stiff direction makes attraction-diffusion's steps small,
    # and the pull that brings its chains to their targets within their steps is 55 times
    # the barriers' own. Two dimensions explain none of that: a lower T_AD, with smaller
    # steps still, would not bring the two together; T_AD stays 1/20 of the barrier.
    e = Energy(lambda x: (x[:, 0] ** 2 - 1) ** 2 + 1e4 * x[:, 1] ** 2, shape=2, data_range=(-2.0, 2.0),
               dtype=torch.float64)
    result = build_map(e, MapConfig(chains=32, rounds=1, grid=0))
    assert result.settings["alpha_unit_rule"] == "arrival"
    assert result.settings["ad_temperature_lowered"] == 1.0
    np.testing.assert_allclose(result.settings["ad_temperature"], 0.05, rtol=1e-6)
    assert [lv.n_basins for lv in result.content.levels][:3] == [2, 2, 2]
