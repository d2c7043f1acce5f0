"""How basins line up with the classes of labelled data (e.g. digits).

Each minimum takes the label of its nearest training example (Euclidean, flattened). A
basin's purity is the share of its chains (hits) whose minimum carries the basin's most
common label; the map's purity is the hit-weighted mean over basins. A class "has a
basin" when it is the majority label of at least one basin.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

from landscape.mapping.neighbors import nearest


class LabelReport(NamedTuple):
    """Basins against classes.

    minimum_label : int64 [N], label of each minimum's nearest training example.
    minimum_distance : float64 [N], the distance to it.
    basin_label : int64 [B], majority label of each basin (hit-weighted).
    basin_purity : float64 [B], share of the basin's hits carrying that label.
    purity : float, hit-weighted mean of ``basin_purity``.
    classes_with_basin : int, distinct majority labels.
    classes : int, distinct labels in the data.
    """

    minimum_label: np.ndarray
    minimum_distance: np.ndarray
    basin_label: np.ndarray
    basin_purity: np.ndarray
    purity: float
    classes_with_basin: int
    classes: int


def label_basins(
    minima_x: np.ndarray,
    minima_basin: np.ndarray,
    minima_hits: np.ndarray,
    data_x: np.ndarray,
    data_labels: np.ndarray,
) -> LabelReport:
    """Purity of basins with respect to labelled data.

    Parameters
    ----------
    minima_x : array [N, *shape]
    minima_basin : int array [N], basin of each minimum (B basins numbered 0..B-1).
    minima_hits : int array [N], chains that ended in each minimum (weights).
    data_x : array [M, *shape]; data_labels : int array [M].

    Returns
    -------
    LabelReport

    Examples
    --------
    >>> x = np.array([[0.0], [0.1], [5.0]]); basin = np.array([0, 0, 1]); hits = np.ones(3, int)
    >>> r = label_basins(x, basin, hits, np.array([[0.0], [5.0]]), np.array([3, 7]))
    >>> r.basin_label.tolist(), r.purity, r.classes_with_basin
    ([3, 7], 1.0, 2)
    """
    n = minima_x.shape[0]
    if n:
        d, i = nearest(torch.as_tensor(np.asarray(minima_x, dtype=np.float64).reshape(n, -1)),
                       torch.as_tensor(np.asarray(data_x, dtype=np.float64).reshape(len(data_x), -1)))
        dist, idx = d[:, 0].numpy(), i[:, 0].numpy()
    else:
        dist, idx = np.zeros(0), np.zeros(0, dtype=np.int64)
    labels = np.asarray(data_labels, dtype=np.int64)
    minimum_label = labels[idx]
    basin = np.asarray(minima_basin, dtype=np.int64)
    hits = np.maximum(np.asarray(minima_hits, dtype=np.float64), 1.0)
    n_basins = int(basin.max()) + 1 if n else 0
    n_labels = int(labels.max()) + 1
    counts = np.zeros((n_basins, n_labels))
    np.add.at(counts, (basin, minimum_label), hits)
    basin_label = counts.argmax(1)
    totals = counts.sum(1)
    basin_purity = counts.max(1) / np.maximum(totals, 1e-300)
    purity = float((basin_purity * totals).sum() / max(totals.sum(), 1e-300))
    return LabelReport(
        minimum_label=minimum_label,
        minimum_distance=np.asarray(dist, dtype=np.float64),
        basin_label=basin_label,
        basin_purity=basin_purity,
        purity=purity,
        classes_with_basin=int(np.unique(basin_label).size),
        classes=int(np.unique(labels).size),
    )
