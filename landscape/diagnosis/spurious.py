"""Spurious minima: local minima of an EBM that the data do not explain.

A minimum of a well-learned energy sits where the data are: its nearest training example
is about as close as training examples are to each other, and it looks like data. A
minimum is flagged **spurious** for any of three reasons,
kept as bit flags:

- ``OFF_DATA`` (1): its energy is at or below the data's typical energy (the median of
  ``U`` over training examples) while it is far from every training example: its
  nearest-neighbour distance exceeds ``nn_factor`` times the ``nn_quantile`` quantile of
  the data's own nearest-neighbour distances (each example's to the nearest example that
  differs from it; an exact search, :func:`landscape.mapping.neighbors.spacing`). The model makes such a point as probable as the
  data, or more, without any data there.
- ``SATURATED`` (2), images only: it piles its pixels at the ends of the data range (within
  2 % of the range's width) well beyond the data: more than ``saturation_excess`` of the
  pixels that are *not* saturated in the data, ``(s - s_data) / (1 - s_data)``. The
  unrealistic long-run images of non-convergent ML (Nijkamp et al. 2019, §4.2).
- ``SINK`` (4): it is the lowest minimum of a sink basin of a funnel (the map's
  ``/funnel`` scores as a funnel, :mod:`landscape.mapping.funnel`): the deep hole the noisy chains
  all fall into.

:func:`diagnose` computes the flags from arrays (so it is testable on analytic cases);
:func:`diagnose_map` does it for a map and an energy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from landscape.energy import Energy, check_gives_back, energies, runs_frozen
from landscape.errors import LandscapeError
from landscape.mapping.neighbors import nearest, spacing
from landscape.mapping.pipeline import Reporter
from landscape.io.mapfile import DiagnosisData, FunnelData, MapContent
# (the bits are the map's record, defined with it: reading a map needs no torch)
from landscape.io.records import OFF_DATA, REASONS, SATURATED, SINK

#: A pixel within this share of the data range's width of either end (or beyond) is saturated.
SATURATION_MARGIN = 0.02


@dataclass(frozen=True)
class DiagnosisRule:
    """When is a minimum spurious (see the module docstring)?

    Attributes
    ----------
    nn_quantile : float
        Quantile of the data's own nearest-neighbour distances (to the nearest example that
        differs) that sets the distance bar. Default 0.99: only 1 % of training examples
        are farther from the rest of the data.
    nn_factor : float
        The bar is this multiple of that quantile. Default 1.5, "well above the data's
        own": a minimum is noise-free, and a mode of the data's density lies closer to its
        nearest example than examples lie to each other. On the demo's convergent digits
        model, 6 % of its minima are beyond 1.5x, 44 % beyond 1x.
    energy_quantile : float
        "The data's typical energy": this quantile of ``U`` over training examples
        (default 0.5, the median). A far-off minimum above it is improbable, not spurious.
    saturation_excess : float
        Images: saturated when the minimum saturates more than this share of the pixels
        the data leave unsaturated (default 0.5, the long-run check's rule).
    funnel_score : float
        A funnel's sinks count when its score is at least this (default 0.5).
    """

    nn_quantile: float = 0.99
    nn_factor: float = 1.5
    energy_quantile: float = 0.5
    saturation_excess: float = 0.5
    funnel_score: float = 0.5

    def __post_init__(self) -> None:
        checks = [
            (0.0 < self.nn_quantile <= 1.0, "nn_quantile must be in (0, 1]"),
            (self.nn_factor > 0 and math.isfinite(self.nn_factor), "nn_factor must be > 0"),
            (0.0 <= self.energy_quantile <= 1.0, "energy_quantile must be in [0, 1]"),
            (0.0 < self.saturation_excess < 1.0, "saturation_excess must be in (0, 1): no image saturates more than "
             "all the pixels the data leave free"),
            (0.0 < self.funnel_score <= 1.0, "funnel_score must be in (0, 1]"),
        ]
        for ok, message in checks:
            if not ok:
                raise LandscapeError(f"diagnosis rule: {message}")


@dataclass
class Diagnosis:
    """What :func:`diagnose` found.

    Attributes
    ----------
    reasons : uint8 [N]
        Bit flags per minimum (``OFF_DATA | SATURATED | SINK``); 0 is not spurious.
    nn_distance : float64 [N]
        Distance from each minimum to its nearest training example.
    nn_index : int64 [N]
        That example's index in the data given.
    saturation : float64 [N] or None
        Images: share of each minimum's pixels at the range ends.
    data_nn : float64 [M]
        The data's own nearest-neighbour distances (to the nearest example that differs: the yardstick).
    data_energy : float64 [M]
        ``U`` at the training examples.
    nn_bar, energy_bar : float
        The distance and energy bars of ``OFF_DATA``.
    data_saturation : float or None
        Images: share of saturated pixels in the data.
    sinks : list of int
        Sink basins whose lowest minimum got the ``SINK`` flag.
    rule : DiagnosisRule
    """

    reasons: np.ndarray
    nn_distance: np.ndarray
    nn_index: np.ndarray
    saturation: np.ndarray | None
    data_nn: np.ndarray
    data_energy: np.ndarray
    nn_bar: float
    energy_bar: float
    data_saturation: float | None
    sinks: list[int] = field(default_factory=list)
    rule: DiagnosisRule = field(default_factory=DiagnosisRule)

    @property
    def spurious(self) -> np.ndarray:
        return self.reasons != 0

    def count(self, flag: int) -> int:
        return int(((self.reasons & flag) != 0).sum())

    def saturation_bar(self) -> float | None:
        """The share of saturated pixels above which a minimum is flagged (images)."""
        if self.data_saturation is None:
            return None
        return self.data_saturation + self.rule.saturation_excess * (1.0 - self.data_saturation)

    def to_data(self, dataset: str = "") -> DiagnosisData:
        """``/diagnosis`` of the map file."""
        q = np.quantile(self.data_nn, [0.5, 0.9, 0.99]) if self.data_nn.size else np.full(3, np.nan)
        bar = {"data_q50": float(q[0]), "data_q90": float(q[1]), "data_q99": float(q[2]), "bar": self.nn_bar,
               "nn_quantile": self.rule.nn_quantile, "nn_factor": self.rule.nn_factor}
        e = np.quantile(self.data_energy, [0.1, 0.5, 0.9]) if self.data_energy.size else np.full(3, np.nan)
        attrs: dict[str, Any] = {
            "dataset": dataset,
            "data_examples": int(self.data_nn.size),
            "energy_bar": self.energy_bar,
            "data_energy_q10": float(e[0]), "data_energy_q50": float(e[1]), "data_energy_q90": float(e[2]),
            "off_data": self.count(OFF_DATA), "saturated": self.count(SATURATED), "sinks": self.count(SINK),
            "spurious": int(self.spurious.sum()),
            "reason_bits": "1 off the data (energy <= data's, NN distance > bar), 2 saturated, 4 funnel sink",
            "rule": json.dumps(asdict(self.rule)),  # (JSON, as the map's other structured attributes)
        }
        if self.data_saturation is not None:
            attrs["data_saturation"] = self.data_saturation
            attrs["saturation_bar"] = float(self.saturation_bar())
        attrs["sink_basins"] = [int(b) for b in self.sinks] if self.sinks else []
        if not attrs["sink_basins"]:
            del attrs["sink_basins"]  # an empty list has no dtype h5py can store
        return DiagnosisData(
            spurious=self.spurious, nn_distance=self.nn_distance, bar=bar, attrs=attrs,
            reasons=self.reasons, nn_index=self.nn_index, saturation=self.saturation,
        )


def reason_names(bits: int) -> list[str]:
    """``["off the data", "saturated"]`` for bit flags (``[]`` for 0)."""
    return [text for flag, text in REASONS.items() if bits & flag]


def reason_text(bits: int) -> str:
    """``"off the data, saturated"`` for bit flags (``""`` for 0)."""
    return ", ".join(reason_names(bits))


def saturation(x: np.ndarray | torch.Tensor, data_range: tuple[float, float]) -> np.ndarray:
    """Per example, the share of its values within ``SATURATION_MARGIN`` of the range's
    width of either end of ``data_range``, or beyond it."""
    low, high = data_range
    margin = SATURATION_MARGIN * (high - low)
    if isinstance(x, torch.Tensor):  # on its own device, without a float64 copy
        flat = x.detach().reshape(x.shape[0], -1)
        return ((flat <= low + margin) | (flat >= high - margin)).double().mean(dim=1).cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    a = a.reshape(a.shape[0], -1)
    return ((a <= low + margin) | (a >= high - margin)).mean(axis=1)


def _flat(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def data_spacing(data_x: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
    """Each training example's distance to its nearest other example that differs from it
    (an exact duplicate's twin says nothing of the data's spacing); ``progress(n)`` as
    ``n`` more examples are done."""
    return spacing(torch.from_numpy(_flat(data_x)), progress=progress).numpy()


def diagnose(
    minima_x: np.ndarray,
    minima_energy: np.ndarray,
    data_x: np.ndarray,
    data_energy: np.ndarray,
    *,
    data_range: tuple[float, float] | None = None,
    images: bool = False,
    minima_basin: np.ndarray | None = None,
    basin_representative: np.ndarray | None = None,
    funnel: FunnelData | None = None,
    rule: DiagnosisRule = DiagnosisRule(),
    progress: Callable[[int], None] | None = None,
) -> Diagnosis:
    """Flag the spurious minima (module docstring) from arrays.

    Parameters
    ----------
    minima_x : array [N, *shape]; minima_energy : array [N]
    data_x : array [M, *shape]
        Training examples (M >= 2).
    data_energy : array [M]
        ``U`` at the training examples.
    data_range : (low, high), optional
        Needed for images (the saturation test).
    images : bool
        Apply the saturation test.
    minima_basin, basin_representative : arrays, optional
        The map's main-level basins, to flag the sinks of ``funnel``.
    funnel : FunnelData, optional
    rule : DiagnosisRule
    progress : callable, optional
        Called with the number of points whose nearest training example was found (the
        M examples', then the N minima's: ``M + N`` in all).

    Returns
    -------
    Diagnosis

    Raises
    ------
    LandscapeError
        Shapes that do not match, too few data, non-finite energies, images without a range.

    Examples
    --------
    >>> data = np.array([[0.0], [0.1], [0.2], [0.3]])
    >>> d = diagnose(np.array([[0.15], [5.0]]), np.array([0.0, -1.0]), data, np.zeros(4))
    >>> d.reasons.tolist()
    [0, 1]

    Cost: a nearest-neighbour search of N + M points among M (exact).
    """
    mx, dx = np.asarray(minima_x), np.asarray(data_x)
    if mx.shape[1:] != dx.shape[1:]:
        raise LandscapeError(f"the minima have shape {list(mx.shape[1:])} but the data {list(dx.shape[1:])}")
    n = mx.shape[0]
    me = np.asarray(minima_energy, dtype=np.float64).reshape(-1)
    de = np.asarray(data_energy, dtype=np.float64).reshape(-1)
    if me.shape != (n,) or de.shape != (dx.shape[0],):
        raise LandscapeError("need one energy per minimum and one per training example")
    if not (np.isfinite(me).all() and np.isfinite(de).all()):
        raise LandscapeError("the model's energy is NaN or infinite at some minima or training examples")
    if dx.shape[0] < 2:
        raise LandscapeError(f"the data hold {dx.shape[0]} example{'' if dx.shape[0] == 1 else 's'}: their spacing "
                             "needs at least 2 different examples")
    if images and data_range is None:
        raise LandscapeError("the saturation test needs the data range")
    data_nn = data_spacing(dx, progress)
    nn_bar = float(rule.nn_factor * np.quantile(data_nn, rule.nn_quantile))
    energy_bar = float(np.quantile(de, rule.energy_quantile))
    if n:
        dist, idx = nearest(torch.from_numpy(_flat(mx)), torch.from_numpy(_flat(dx)), progress=progress)
        nn_distance, nn_index = dist[:, 0].numpy(), idx[:, 0].numpy().astype(np.int64)
    else:
        nn_distance, nn_index = np.zeros(0), np.zeros(0, dtype=np.int64)
    reasons = np.zeros(n, dtype=np.uint8)
    reasons[(me <= energy_bar) & (nn_distance > nn_bar)] |= OFF_DATA
    sat = data_sat = None
    if images:
        sat = saturation(mx, data_range)
        data_sat = float(saturation(dx, data_range).mean())
        free = 1.0 - data_sat
        excess = (sat - data_sat) / free if free > 0 else np.zeros(n)
        reasons[excess > rule.saturation_excess] |= SATURATED
    sink_basins: list[int] = []
    if funnel is not None and basin_representative is not None:
        from landscape.mapping.funnel import funnel_sinks

        sink_basins = funnel_sinks(funnel, rule.funnel_score)
        rep = np.asarray(basin_representative, dtype=np.int64)
        for b in sink_basins:
            reasons[rep[b]] |= SINK
    return Diagnosis(
        reasons=reasons, nn_distance=nn_distance, nn_index=nn_index, saturation=sat, data_nn=data_nn,
        data_energy=de, nn_bar=nn_bar, energy_bar=energy_bar, data_saturation=data_sat, sinks=sink_basins, rule=rule,
    )


@runs_frozen
def diagnose_map(
    energy: Energy,
    content: MapContent,
    data_x: torch.Tensor,
    rule: DiagnosisRule = DiagnosisRule(),
    reporter: Reporter | None = None,
) -> Diagnosis:
    """:func:`diagnose` for a map: the data's energies come from ``energy``, the range from
    the energy, the sinks from the map's ``/funnel`` (if any). ``reporter`` is told of its
    two stages, the data's energies and the nearest-neighbour searches (a minute or more
    for 10,000 images on a CPU).

    Raises
    ------
    LandscapeError
        Data or minima of another shape than the energy's, fewer than two examples, an
        energy that does not give the map's minimum energies back; see :func:`diagnose`.
    """
    shape = tuple(np.shape(content.minima_x)[1:])
    data_x = energy.as_batch(data_x, "the data set's examples")
    if shape != energy.shape:
        raise LandscapeError(f"the map's minima have shape {list(shape)}, the energy expects {list(energy.shape)}")
    check_gives_back(energy, content)
    images = len(shape) in (2, 3)
    if images and energy.data_range is None:
        raise LandscapeError("image minima need the energy's data range for the saturation test")
    reporter = reporter or Reporter()
    try:
        reporter.stage("energies of the training examples", total=data_x.shape[0], unit="example")
        data_energy = energies(energy, data_x, reporter.advance)
        reporter.stage("nearest training examples (the data's own, then the minima's)",
                       total=data_x.shape[0] + content.n_minima, unit="point")
        return diagnose(
            content.minima_x, content.minima_energy, data_x.cpu().numpy(), data_energy,
            data_range=energy.data_range, images=images, minima_basin=content.minima_basin,
            basin_representative=content.basin_representative, funnel=content.funnel, rule=rule,
            progress=reporter.advance,
        )
    finally:
        reporter.close()
