"""Helpers the tests share: hand-made maps whose content is known exactly."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from landscape.io.records import ATTRACTION, NEIGHBOUR, MapContent, MapMeta, PairTable, Partition
from landscape.mapping.tree import minimax_tree


def partition(energy: np.ndarray, basin: Sequence[int], alpha: float = 1.0, multiplier: float | None = None) -> Partition:
    """A Partition from basin labels (any numbering): basins renumbered by the energy of
    their lowest minimum, which is their representative."""
    energy = np.asarray(energy, dtype=np.float64)
    labels = np.asarray(basin, dtype=np.int64)
    groups = sorted(set(labels.tolist()), key=lambda g: (energy[labels == g].min(), g))
    new = {g: k for k, g in enumerate(groups)}
    basin_new = np.array([new[g] for g in labels.tolist()], dtype=np.int64)
    reps = np.array([int(np.flatnonzero(basin_new == k)[np.argmin(energy[basin_new == k])]) for k in range(len(groups))])
    return Partition(alpha=alpha, basin=basin_new, representative=reps, energy=energy[reps], multiplier=multiplier)


def build_map(
    x: Any,
    energy: Sequence[float],
    pairs: Sequence[Sequence[int]] | None = None,
    barrier: Sequence[float] | None = None,
    *,
    refined: Sequence[float] | None = None,
    levels: Sequence[Sequence[int]] | None = None,
    alphas: Sequence[float] | None = None,
    main: int = 0,
    hits: Sequence[int] | None = None,
    attrs: dict[str, dict[str, Any]] | None = None,
    source: Any = None,
    config: Any = None,
) -> MapContent:
    """A MapContent made by hand.

    ``pairs``/``barrier`` are minima pairs and their estimates (default: consecutive
    minima, each barrier 1 above the higher one); ``refined`` their refined saddles (NaN:
    none); ``levels`` basin labels per level (default: one level, one basin per minimum),
    with ``alphas`` (default 1, 2, 3, ... as multipliers of an alpha unit of 1).
    """
    x = np.asarray(x, dtype=np.float32)
    energy = np.asarray(energy, dtype=np.float64)
    n = energy.shape[0]
    if pairs is None:
        pairs = [(i, i + 1) for i in range(n - 1)]
        barrier = [max(energy[i], energy[i + 1]) + 1.0 for i, _ in pairs]
    pairs_arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs_arr = np.sort(pairs_arr, axis=1)
    e = pairs_arr.shape[0]
    table = PairTable(
        pairs=pairs_arr,
        estimate=np.asarray(barrier, dtype=np.float64),
        refined=np.full(e, np.nan) if refined is None else np.asarray(refined, dtype=np.float64),
        alpha=np.full(e, np.nan),
        source=np.full(e, NEIGHBOUR | ATTRACTION, dtype=np.uint8),
    )
    levels = [list(range(n))] if levels is None else levels
    alphas = list(alphas) if alphas is not None else [float(k + 1) for k in range(len(levels))]
    parts = [partition(energy, lv, alpha=a, multiplier=a) for lv, a in zip(levels, alphas)]
    tree = minimax_tree(energy, table.pairs, table.best(energy), refined=table.is_refined(energy))
    base_attrs = {"minima": {"data_range": [-1.0, 1.0]}, "levels": {"alpha_unit": 1.0, "temperature": 1.0}}
    for group, values in (attrs or {}).items():
        base_attrs.setdefault(group, {}).update(values)
    meta = None
    if source is not None or config is not None:
        meta = MapMeta(schema_version=2, created="2026-01-01T00:00:00+00:00", tool_version="test",
                       source=source, config=config if config is not None else {})
    return MapContent(
        minima_x=x, minima_energy=energy, minima_hits=np.full(n, 5) if hits is None else np.asarray(hits),
        levels=parts, main=main, barriers=table, tree=tree, attrs=base_attrs, meta=meta,
    )


@pytest.fixture
def make_map():
    """The factory :func:`build_map` (a hand-made MapContent)."""
    return build_map


@pytest.fixture
def make_partition():
    """The factory :func:`partition` (basin labels -> Partition)."""
    return partition
