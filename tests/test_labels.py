"""Basins against data classes: purity and classes covered."""

import numpy as np

from landscape.diagnosis.labels import label_basins


def test_purity_is_hit_weighted_and_classes_are_counted():
    data = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.array([0, 1, 2])
    minima = np.array([[0.1, 0.0], [0.0, 0.2], [9.0, 0.0], [0.0, 9.5]])
    basin = np.array([0, 0, 1, 1])  # basin 1 mixes class 1 (3 hits) and class 2 (1 hit)
    hits = np.array([2, 1, 3, 1])
    r = label_basins(minima, basin, hits, data, labels)
    assert r.minimum_label.tolist() == [0, 0, 1, 2]
    np.testing.assert_allclose(r.minimum_distance, [0.1, 0.2, 1.0, 0.5])
    assert r.basin_label.tolist() == [0, 1]
    np.testing.assert_allclose(r.basin_purity, [1.0, 0.75])
    assert r.purity == (3 * 1.0 + 4 * 0.75) / 7
    assert r.classes_with_basin == 2 and r.classes == 3
