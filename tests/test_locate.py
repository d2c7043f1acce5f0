"""Which minimum and basin points fall into (landscape.locate), on wells whose answer is known."""

import numpy as np
import pytest
import torch

from landscape import Energy, LandscapeError, MapConfig, build_map, locate

CENTRES = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]], dtype=torch.float64)
DEPTH = torch.tensor([1.0, 0.7, 0.4], dtype=torch.float64)


def wells(scale=1.0):
    def u(x):
        d2 = ((x[:, None, :] - CENTRES.to(x)) ** 2).sum(-1)
        return -scale * 0.2 * torch.logsumexp((DEPTH.to(x) - d2) / 0.2, dim=1)

    return Energy(u, shape=(2,), data_range=(-3.0, 3.0), dtype=torch.float64, name="wells")


@pytest.fixture(scope="module")
def mapped():
    return {c: build_map(wells(c), MapConfig(chains=64, rounds=1, seed=0)).content for c in (0.01, 1.0, 100.0)}


def test_points_fall_into_the_well_they_lie_in_at_every_scale_and_level(mapped):
    rng = np.random.default_rng(0)
    well = rng.integers(0, 3, size=30)
    points = CENTRES.numpy()[well] + rng.normal(scale=0.15, size=(30, 2))
    for scale, m in mapped.items():
        assert m.n_minima == 3
        order = [int(np.argmin(np.linalg.norm(m.minima_x - c, axis=1))) for c in CENTRES.numpy()]
        found = locate(wells(scale), m, points)
        assert found.minimum.tolist() == [order[w] for w in well], scale
        np.testing.assert_allclose(found.x.numpy(), m.minima_x[found.minimum], atol=1e-3)
        assert (found.distance <= m.settings()["merge_radius"]).all()
        last = len(m.levels) - 1  # (the strongest pull: one basin)
        top = locate(wells(scale), m, points, level=last)
        assert top.level == last and set(top.basin.tolist()) == {0}
        assert found.level == m.main and found.basin.tolist() == m.partition.basin[found.minimum].tolist()


def test_a_point_in_a_well_the_map_lacks_is_minus_one_and_bad_points_are_one_line(mapped, make_map):
    energy = wells()
    m = mapped[1.0]
    keep = np.argsort(m.minima_energy)[:2]  # the two deeper wells only
    partial = make_map(m.minima_x[keep], m.minima_energy[keep], [[0, 1]], [float(m.tree.heights[-1])])
    found = locate(energy, partial, np.array([[0.05, 1.45], [-1.0, 0.1]]))
    assert found.minimum.tolist() == [-1, 0] and found.basin.tolist() == [-1, 0]
    assert found.energy[0] == pytest.approx(float(energy(CENTRES[2:3])), abs=1e-6)
    with pytest.raises(LandscapeError, match="points to locate"):
        locate(energy, m, np.zeros((2, 3)))
    with pytest.raises(LandscapeError, match="points to locate"):
        locate(energy, m, np.array([[np.nan, 0.0]]))
    with pytest.raises(LandscapeError, match="level 9 is out of range"):
        locate(energy, m, np.zeros((1, 2)), level=9)
    with pytest.raises(LandscapeError):  # an energy that is not the map's
        locate(wells(2.0), m, np.zeros((1, 2)))
    assert locate(energy, m, np.zeros((0, 2))).minimum.shape == (0,)
    # a point outside the box the map covers is located from the box's nearest point, and said to be
    far = locate(energy, m, np.array([[-3.5, 0.0], [-1.0, 0.0]]))
    assert far.outside.tolist() == [True, False] and far.minimum[0] == far.minimum[1]
