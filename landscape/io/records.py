"""The pieces a landscape map is made of, in memory: one type per concept.

- :class:`Partition`: the basins of one magnetization (an attraction-diffusion level):
  which basin each minimum is in, each basin's representative (its lowest minimum).
- :class:`PairTable`: the minima pairs whose barrier was estimated, with the estimate,
  the refined saddle and where each came from.

The mapper (:mod:`landscape.mapping.pipeline`) builds them, :mod:`landscape.io.mapfile` stores them
(``/levels/<k>``, ``/minima/basin`` and ``/basins`` for a partition; ``/barriers`` for the
pair table), and the tree (:mod:`landscape.mapping.tree`) and the pictures read them. Arrays are
numpy, on the CPU.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: :attr:`PairTable.source` bits: where a pair's estimate came from.
NEIGHBOUR = 1  # a nearest neighbour in space: straight-line estimate
ATTRACTION = 2  # attraction-diffusion connected the pair: the chain's peak

#: :attr:`DiagnosisData.reasons` bits (``/diagnosis/reasons``): why a minimum is flagged
#: spurious (:mod:`landscape.diagnosis.spurious` says when; kept here, with the map's other
#: records, so that reading a map needs no torch).
OFF_DATA, SATURATED, SINK = 1, 2, 4
#: Each bit's name, as the commands and their ``--json`` give it.
REASONS = {OFF_DATA: "off the data", SATURATED: "saturated", SINK: "funnel sink"}
#: A funnel probe's score at or above this is called a funnel: exp(H) falls to sqrt(exp(H_0))
#: or less (:mod:`landscape.mapping.funnel`; probes record the threshold they used, and a
#: probe that does not was judged by this).
FUNNEL_SCORE = 0.5
#: Below this effective number of basins at the reference (the data's basins), a funnel
#: score is undefined: the chains already fill about one basin, and their falling into it
#: at high noise says nothing (97 % of them in one basin, a stray 3 % in another, scored 1.00).
MIN_REFERENCE_BASINS = 1.5

#: A refined saddle up to this share of the barrier height above its estimate is taken
#: (see :meth:`PairTable.is_refined`): above a straight segment's maximum (exact) ...
REFINED_SLACK = 0.05
#: ... and above an attraction-diffusion chain's highest sampled point, which can lie below
#: the continuous path where the chain stepped over a ridge.
CHAIN_SLACK = 0.25


@dataclass
class Partition:
    """Basins at one magnetization ``alpha`` (one level of the Hopfield hierarchy).

    Attributes
    ----------
    alpha : float
        The magnetization (pull per unit distance, in units of ``U / T``).
    basin : ndarray int64 [N]
        Basin of each minimum. Basins are numbered by the energy of their representative,
        lowest first (basin 0 holds the lowest minimum found).
    representative : ndarray int64 [B]
        Index into the minima of each basin's lowest minimum.
    energy : ndarray float64 [B]
        Energy of each representative.
    multiplier : float or None
        ``alpha`` in units of the map's alpha unit (None when not known).
    attrs : dict
        Statistics of the level (cost counters, seconds), stored as attributes.
    """

    alpha: float
    basin: np.ndarray
    representative: np.ndarray
    energy: np.ndarray
    multiplier: float | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.basin = np.asarray(self.basin, dtype=np.int64)
        self.representative = np.asarray(self.representative, dtype=np.int64)
        self.energy = np.asarray(self.energy, dtype=np.float64)
        self.alpha = float(self.alpha)
        self.multiplier = None if self.multiplier is None else float(self.multiplier)

    @property
    def n_basins(self) -> int:
        return int(self.representative.shape[0])

    def sizes(self) -> np.ndarray:
        """Minima per basin, int64 [B]."""
        return np.bincount(self.basin, minlength=self.n_basins).astype(np.int64)

    def hits(self, minima_hits: np.ndarray) -> np.ndarray:
        """Chains that ended in each basin (the sum of its minima's hits), int64 [B]."""
        return np.bincount(self.basin, weights=np.asarray(minima_hits, dtype=np.float64),
                           minlength=self.n_basins).round().astype(np.int64)


@dataclass
class PairTable:
    """Minima pairs whose barrier was estimated (``/barriers``).

    Attributes
    ----------
    pairs : ndarray int64 [E, 2]
        Minima pairs, ``i < j``, each once, sorted.
    estimate : ndarray float64 [E]
        The lowest highest-energy of a path found between the two: the straight line
        (neighbours) or an attraction-diffusion chain; ``+inf`` where none was found.
    refined : ndarray float64 [E]
        The string method's saddle (NaN where not refined).
    alpha : ndarray float64 [E]
        The pull of the attraction-diffusion chain behind the estimate (NaN for a
        straight-line estimate).
    source : ndarray uint8 [E]
        Bit flags: :data:`NEIGHBOUR`, :data:`ATTRACTION`.
    saddle_point : ndarray bool [E]
        The refined barrier is the energy of a saddle point: the top of the refined path,
        where the gradient vanishes (within the string method's tolerance). False: the top
        of a path whose gradient does not vanish there (on networks, whose kinks keep it
        from vanishing, most), or not refined [default: all False].
    """

    pairs: np.ndarray
    estimate: np.ndarray
    refined: np.ndarray
    alpha: np.ndarray
    source: np.ndarray
    saddle_point: np.ndarray | None = None

    #: The per-pair columns, in order.
    COLUMNS = ("pairs", "estimate", "refined", "alpha", "source", "saddle_point")

    def __post_init__(self) -> None:
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        self.estimate = np.asarray(self.estimate, dtype=np.float64)
        self.refined = np.asarray(self.refined, dtype=np.float64)
        self.alpha = np.asarray(self.alpha, dtype=np.float64)
        self.source = np.asarray(self.source, dtype=np.uint8)
        self.saddle_point = (np.zeros(self.estimate.shape, dtype=bool) if self.saddle_point is None
                             else np.asarray(self.saddle_point, dtype=bool))

    @classmethod
    def empty(cls) -> PairTable:
        return cls(np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0, np.uint8))

    def __len__(self) -> int:
        return int(self.pairs.shape[0])

    def floor(self, minima_energy: np.ndarray) -> np.ndarray:
        """Per pair, the higher of its two minima's energies (a barrier is never below it)."""
        e = np.asarray(minima_energy, dtype=np.float64)
        return np.maximum(e[self.pairs[:, 0]], e[self.pairs[:, 1]]) if len(self) else np.zeros(0)

    def is_refined(self, minima_energy: np.ndarray) -> np.ndarray:
        """Per pair: the tree takes the refined saddle. It is the top of a continuous path
        (a converged string's saddle, or the top of an unconverged string's polyline), so it
        bounds the barrier from above; it is taken unless the estimate is clearly lower: the saddle lies above it by more
        than :data:`REFINED_SLACK` (a straight segment's exact maximum) or
        :data:`CHAIN_SLACK` (a chain's sampled maximum) of the estimate's height above the
        pair's higher minimum. Then the string went over another, higher pass, and the
        estimate's path is the better one."""
        floor = self.floor(minima_energy)
        # An estimate below the higher minimum (a chain that arrived near a shallow target
        # without climbing to it) means the floor: no barrier is lower.
        estimate = np.maximum(self.estimate, floor)
        height = estimate - floor
        with np.errstate(invalid="ignore"):
            # (plus rounding: a millionth of the energy's magnitude)
            slack = np.where(np.isfinite(self.alpha), CHAIN_SLACK, REFINED_SLACK)
            limit = estimate + slack * height + 1e-6 * np.abs(estimate)
            return np.isfinite(self.refined) & ~(self.refined > limit)

    def best(self, minima_energy: np.ndarray) -> np.ndarray:
        """The barrier the tree uses per pair: the refined saddle where :meth:`is_refined`,
        else the estimate."""
        return np.where(self.is_refined(minima_energy), self.refined, self.estimate)

    def above_estimate(self, minima_energy: np.ndarray) -> np.ndarray:
        """Per pair: refined, but the saddle lies too far above its estimate for the tree
        to take it (counted and shown, never silently used or dropped)."""
        return np.isfinite(self.refined) & ~self.is_refined(minima_energy)

    def n_saddle_points(self) -> int:
        """Refined pairs whose barrier is a saddle point."""
        return int((self.saddle_point & np.isfinite(self.refined)).sum())

    def index(self) -> dict[tuple[int, int], int]:
        """Row of each pair."""
        return {(int(i), int(j)): e for e, (i, j) in enumerate(self.pairs)}


@dataclass
class FunnelData:
    """The noise-level funnel probe: ``/funnel``.

    noise : float64 [K]; occupancy : float64 [K, B]; entropy : float64 [K];
    score : the collapse summary; attrs : ``/funnel`` attrs.
    Optional: sinks : int64 [K, S]; occupancy_data, occupancy_noise : float64 [K, B];
    chain_minimum : int64 [K, C]; chain_start : int8 [C] (see :mod:`landscape.mapping.funnel`).
    """

    noise: np.ndarray
    occupancy: np.ndarray
    entropy: np.ndarray
    score: float
    attrs: dict[str, Any] = field(default_factory=dict)
    sinks: np.ndarray | None = None
    occupancy_data: np.ndarray | None = None
    occupancy_noise: np.ndarray | None = None
    chain_minimum: np.ndarray | None = None
    chain_start: np.ndarray | None = None


@dataclass
class DiagnosisData:
    """Spurious-minima diagnosis: ``/diagnosis``.

    spurious : bool [N]; nn_distance : float64 [N];
    bar : attrs of ``/diagnosis/nn_distance`` (the data's own NN-distance quantiles used
    as the bar); attrs : ``/diagnosis`` attrs (``rule``: the thresholds, JSON text of an
    object; :meth:`rule` parses it).
    Optional: reasons : uint8 [N]; nn_index : int64 [N]; saturation : float64 [N].
    """

    spurious: np.ndarray
    nn_distance: np.ndarray
    bar: dict[str, Any] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    reasons: np.ndarray | None = None
    nn_index: np.ndarray | None = None
    saturation: np.ndarray | None = None

    def rule(self) -> dict[str, Any] | None:
        """The thresholds the diagnosis used (attr ``rule``: ``nn_quantile``, ``nn_factor``,
        ``energy_quantile``, ``saturation_excess``, ``funnel_score``), None where not
        recorded or not readable (:func:`parse_rule`)."""
        return parse_rule(self.attrs.get("rule"))


def parse_rule(text: Any) -> dict[str, Any] | None:
    """The ``/diagnosis`` attr ``rule`` as a dict: JSON text of an object, or, as maps
    written before it was JSON keep it, the text of a Python dict of plain values (read as a
    literal, :func:`ast.literal_eval`, never run). None for anything else."""
    if isinstance(text, dict):
        return dict(text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not isinstance(text, str):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        value = _python_literal(text)
    return value if isinstance(value, dict) else None


def _python_literal(text: str) -> Any:
    """``text`` read as a Python literal (:func:`ast.literal_eval`: names, calls and
    operators refused, never run), None where it is none or too long to be a rule."""
    if len(text) > 10_000:  # (the old text of five thresholds is some 150 characters)
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None


def rule_json(text: Any) -> Any:
    """The ``/diagnosis`` attr ``rule`` as JSON text: an old map's Python dict text
    converted (:func:`parse_rule`); JSON text, and anything unreadable, as it is."""
    if isinstance(text, str):
        try:
            json.loads(text)
            return text
        except ValueError:
            value = _python_literal(text)
    else:
        value = parse_rule(text)
    return json.dumps(value) if isinstance(value, dict) else text


@dataclass
class GridData:
    """The energy on a regular 2-D grid: ``/grid`` (``energy[i, j] = U(x[j], y[i])``)."""

    x: np.ndarray
    y: np.ndarray
    energy: np.ndarray


@dataclass
class MapMeta:
    """The root attributes of a map as read back (``source`` and ``config`` parsed)."""

    schema_version: int
    created: str
    tool_version: str
    source: Any
    config: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class MapContent:
    """Everything a map holds, as numpy arrays.

    Attributes
    ----------
    minima_x : float32 or float64 [N, *shape]
        The minima: float32, or float64 in a map made in float64 (``--float64``, an energy
        of dtype float64), which keeps them at the precision they were found to
        (:data:`landscape.io.schema.COORDINATES`).
    minima_energy : float64 [N]; minima_hits : int64 [N]
    levels : list of Partition
        The attraction-diffusion ladder, ascending ``alpha`` (``/levels``).
    main : int
        The level whose basins are the map's basins (``/minima/basin``, ``/basins``).
    barriers : PairTable
        Minima pairs and their barriers (``/barriers``).
    tree : BarrierTree
        The tree over minima (``/tree``); for a schema-1 map, over the main level's basins
        (its leaves are their representatives).
    tree_saddle : float32 or float64 [N-1, *shape] or None
        The saddle point of each refined merge (NaN rows elsewhere); float64 where the
        minima are.
    tree_path : float32 or float64 [N-1, P, *shape] or None
        The refined path of each refined merge, first side's minimum first (NaN rows
        elsewhere); float64 where the minima are. Kept while all the paths fit a budget of
        20 million numbers (dimensions x 2 x ``MapConfig.refine_images`` x (N-1) merges:
        at the default 24 images, dimensions x merges up to 416,666, e.g. 784-pixel
        images up to 531 merges; a funnel probe that adds minima keeps the map's); None above it
        and without refinement.
    grid, funnel, diagnosis : optional parts (None when absent).
    attrs : dict
        Group name (``minima``, ``basins``, ``barriers``, ``tree``, ``levels``) -> its
        statistics, stored as attributes.
    meta : MapMeta or None
        Root attributes, filled by :func:`landscape.io.mapfile.read_map`.
    """

    minima_x: np.ndarray
    minima_energy: np.ndarray
    minima_hits: np.ndarray
    levels: list[Partition]
    main: int
    barriers: PairTable
    tree: Any  # landscape.mapping.tree.BarrierTree (not imported here: records stay free of the algorithms)
    tree_saddle: np.ndarray | None = None
    tree_path: np.ndarray | None = None
    grid: GridData | None = None
    funnel: FunnelData | None = None
    diagnosis: DiagnosisData | None = None
    attrs: dict[str, dict[str, Any]] = field(default_factory=dict)
    meta: MapMeta | None = None

    @property
    def n_minima(self) -> int:
        return int(np.shape(self.minima_energy)[0])

    @property
    def partition(self) -> Partition:
        """The main level."""
        return self.levels[self.main]

    @property
    def n_basins(self) -> int:
        return self.partition.n_basins

    @property
    def minima_basin(self) -> np.ndarray:
        return self.partition.basin

    @property
    def basin_representative(self) -> np.ndarray:
        return self.partition.representative

    @property
    def basin_energy(self) -> np.ndarray:
        return self.partition.energy

    @property
    def schema_version(self) -> int:
        return self.meta.schema_version if self.meta is not None else 2

    def settings(self) -> dict[str, Any]:
        """The map's settings as used: the config, with the values the map chose (root
        attr ``settings``) in place of those left open."""
        config = self.meta.config if self.meta is not None and isinstance(self.meta.config, dict) else {}
        chosen = self.meta.extra.get("settings") if self.meta is not None else None
        out = {k: v for k, v in config.items() if v is not None}
        if isinstance(chosen, dict):
            out.update({k: v for k, v in chosen.items() if v is not None})
        return out

    @property
    def over_minima(self) -> bool:
        """The tree's leaves are the minima (schema 2), not basins (schema 1)."""
        return self.schema_version >= 2
