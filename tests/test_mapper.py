"""The mapping pipeline against energies whose minima, saddles and tree are known exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landscape import LandscapeError
from landscape.ad import ADConfig
from landscape.energy import Energy
from landscape.mapfile import load_progress, progress_path, read_map, write_map
from landscape.mapper import (
    MapConfig,
    Reporter,
    build_map,
    largest_curvature,
    stable_eps,
)
from landscape.potentials import (
    MUELLER_BROWN_MINIMA,
    MUELLER_BROWN_MINIMA_ENERGY,
    MUELLER_BROWN_SADDLE_ENERGY,
    mueller_brown,
    tilted_wells,
    tilted_wells_exact,
)
from landscape.tree import minimax_tree


def merges(linkage: np.ndarray, n: int) -> list[frozenset]:
    """The sets of leaves joined at each row of a linkage, in order."""
    members = {i: frozenset([i]) for i in range(n)}
    out = []
    for k, (a, b, _, _) in enumerate(linkage):
        members[n + k] = members[int(a)] | members[int(b)]
        out.append(members[n + k])
    return out


WELLS_D = 3


@pytest.fixture(scope="module")
def wells_map():
    energy = Energy(tilted_wells, shape=(WELLS_D,), data_range=(-1.6, 1.6), dtype=torch.float64, name="wells")
    config = MapConfig(
        chains=96,
        temperature=0.05,
        eps=0.05,
        steps=150,
        grad_tol=1e-6,
        merge_radius=0.05,
        ad=ADConfig(temperature=0.1, alpha=1.0, eps=0.05, max_steps=2000, patience=200, delta=0.2, neighbours=6),
        ladder=(16.0,),
        grid=0,
    )
    return energy, config, build_map(energy, config)


def test_wells_every_minimum_found_at_its_exact_place(wells_map):
    _, _, result = wells_map
    exact = tilted_wells_exact(WELLS_D)
    c = result.content
    assert c.n_minima == 2**WELLS_D
    np.testing.assert_allclose(c.minima_energy, exact.energy, atol=1e-9)
    np.testing.assert_allclose(c.minima_x, exact.minima, atol=1e-4)
    assert c.minima_hits.sum() == 96


def test_wells_tree_merges_in_the_exact_order_at_the_exact_saddles(wells_map):
    _, _, result = wells_map
    exact = tilted_wells_exact(WELLS_D)
    truth = minimax_tree(exact.energy, exact.pairs, exact.saddle)
    c = result.content
    assert c.n_basins == 2**WELLS_D  # at this pull every well is its own basin
    n = c.n_basins
    assert merges(c.linkage, n) == merges(truth.linkage, n)
    # Refined merge heights: the true saddles, to 1e-4 of the barrier height.
    height = truth.linkage[:, 2] - exact.energy.min()
    np.testing.assert_allclose(c.linkage[:, 2], truth.linkage[:, 2], atol=1e-4 * height.max())
    # The attraction-diffusion estimates bound them from above (less a discrete chain's
    # small undershoot), and are looser.
    ad = minimax_tree(c.basin_energy, c.barrier_pairs, c.barrier_energy).linkage[:, 2]
    assert np.all(ad >= truth.linkage[:, 2] - 0.05 * height)
    assert np.abs(ad - truth.linkage[:, 2]).max() > np.abs(c.linkage[:, 2] - truth.linkage[:, 2]).max()
    # Refined paths start and end at the representatives of their pair.
    refined = ~np.isnan(c.barrier_refined)
    assert refined.sum() >= n - 1  # the tree edges and the near misses
    for e in np.flatnonzero(refined):
        i, j = c.barrier_pairs[e]
        path = c.barrier_paths[e]
        np.testing.assert_allclose(path[0], c.minima_x[c.basin_representative[i]], atol=1e-5)
        np.testing.assert_allclose(path[-1], c.minima_x[c.basin_representative[j]], atol=1e-5)


def test_a_strong_pull_merges_the_wells(wells_map):
    _, _, result = wells_map
    levels = result.content.levels
    assert [lv.alpha for lv in levels] == [1.0, 16.0]
    assert len(levels[0].basin_energy) == 2**WELLS_D and len(levels[1].basin_energy) < 2**WELLS_D


def test_the_map_round_trips_through_the_file(wells_map, tmp_path):
    _, config, result = wells_map
    path = write_map(tmp_path / "w.h5", result.content, config=config.to_dict(), source="wells", tool_version="t")
    back = read_map(path)
    np.testing.assert_array_equal(back.linkage, result.content.linkage)
    assert MapConfig.from_dict(back.meta.config) == config


def test_mueller_brown_minima_saddles_and_tree():
    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64, name="mb")
    config = MapConfig(
        chains=48,
        temperature=1.0,
        eps=0.015,
        steps=200,
        grad_tol=1e-4,
        merge_radius=0.02,
        ad=ADConfig(temperature=1.0, alpha=0.1, max_steps=2000, patience=200, neighbours=4),
        auto=("alpha_unit", "delta", "eps"),
        grid=32,
    )
    c = build_map(energy, config).content
    assert c.n_minima == 3 and c.n_basins == 3
    np.testing.assert_allclose(c.minima_x, np.array(MUELLER_BROWN_MINIMA), atol=2e-3)
    np.testing.assert_allclose(c.minima_energy, MUELLER_BROWN_MINIMA_ENERGY, atol=1e-3)
    # Basins 1 and 2 (the two upper minima in energy) merge first, at the lower saddle.
    assert merges(c.linkage, 3) == [frozenset({1, 2}), frozenset({0, 1, 2})]
    saddle_low, saddle_high = sorted(MUELLER_BROWN_SADDLE_ENERGY)
    np.testing.assert_allclose(c.linkage[:, 2], [saddle_low, saddle_high], rtol=1e-3)
    assert c.grid.energy.shape == (32, 32)
    assert c.attrs["barriers"]["delta"] > 0 and c.attrs["barriers"]["alpha_unit"] > 0


class _StopAt(Reporter):
    """Interrupts the map when a stage whose name starts with ``prefix`` opens."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def stage(self, name, total=None, unit="it"):
        if name.startswith(self.prefix):
            raise KeyboardInterrupt


def test_an_interrupted_map_resumes_to_the_uninterrupted_result(tmp_path):
    energy = Energy(tilted_wells, shape=(2,), data_range=(-1.6, 1.6), dtype=torch.float64)
    config = MapConfig(
        chains=32,
        temperature=0.05,
        eps=0.05,
        steps=50,
        grad_tol=1e-6,
        merge_radius=0.05,
        ad=ADConfig(temperature=0.1, alpha=1.0, eps=0.05, max_steps=800, patience=100, delta=0.2),
        ladder=(8.0,),
        grid=0,
    )
    whole = build_map(energy, config).content
    out = tmp_path / "w.h5"
    with pytest.raises(KeyboardInterrupt):
        build_map(energy, config, progress_file=out, reporter=_StopAt("attraction-diffusion, alpha 8"))
    saved = load_progress(out)
    assert saved["stage"].startswith("basins") and "level0/basin" in saved and "level1/basin" not in saved
    # Without --resume the saved progress is protected; other settings are refused.
    with pytest.raises(LandscapeError, match="--resume"):
        build_map(energy, config, progress_file=out)
    with pytest.raises(LandscapeError, match="other settings"):
        build_map(energy, MapConfig(**{**config.__dict__, "seed": 1}), progress_file=out, resume=True)
    resumed = build_map(energy, config, progress_file=out, resume=True).content
    np.testing.assert_array_equal(resumed.linkage, whole.linkage)
    np.testing.assert_array_equal(resumed.minima_basin, whole.minima_basin)
    np.testing.assert_array_equal(resumed.levels[1].basin_representative, whole.levels[1].basin_representative)
    assert progress_path(out).exists()  # the caller clears it once the map is written


def test_bad_settings_are_refused():
    with pytest.raises(LandscapeError, match="init"):
        MapConfig(init="somewhere")
    with pytest.raises(LandscapeError, match="auto"):
        MapConfig(auto=("temperature",))
    energy = Energy(tilted_wells, shape=(2,), dtype=torch.float64)
    with pytest.raises(LandscapeError, match="data range"):
        build_map(energy, MapConfig(chains=4))
    boxed = Energy(tilted_wells, shape=(2,), data_range=(-2, 2), dtype=torch.float64)
    with pytest.raises(LandscapeError, match="needs data"):
        build_map(boxed, MapConfig(chains=4, init="data"))


def test_curvature_and_stable_step():
    energy = Energy(tilted_wells, shape=(3,), dtype=torch.float64)
    exact = tilted_wells_exact(3)
    lam = largest_curvature(energy, torch.as_tensor(exact.minima))
    # f'' = 12 x^2 - 4 at the deepest well of the most tilted coordinate.
    assert lam == pytest.approx(float((12 * exact.minima**2 - 4).max()), rel=1e-3)
    assert stable_eps(8.0, 0.5, safety=0.5) ** 2 / (2 * 0.5) * 8.0 == pytest.approx(0.5)
