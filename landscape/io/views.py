"""Views of a landscape map: what the pictures, the text reports and the commands read off it.

A map (:mod:`landscape.io.records`) holds a tree over its minima and the attraction-diffusion
basins of a ladder of magnetizations (``content.levels``, the main one
``content.partition``). These functions look at it without drawing anything (no
matplotlib here), so the command line's text output, the comparison of two maps and the
pictures (:mod:`landscape.plots`) all read the same things the same way:

- which level: :func:`partition_of`, :func:`level_name`;
- the trees: :func:`basin_tree_of` (the coarse tree over a level's basins,
  :func:`landscape.mapping.tree.basin_tree`), :func:`leaf_basins`, :func:`tree_merges`
  (each merge with its barrier, absolute and relative, refined or estimated);
- the settings the map records: :func:`map_alpha`, :func:`map_temperature`,
  :func:`ad_temperature`;
- how completely the exploration found them: :func:`coverage` (Good-Turing and Chao1 from
  the chains that ended in each minimum), :func:`exploration_coverage`, the same over the
  distinct states (:func:`state_hits`, :func:`state_coverage`: minima that drain flat into
  another counted with it), :func:`describe_exploration` (one line);
- what the minima are and where they came from: :func:`minima_kind`, :func:`data_range`,
  :func:`describe_held_by_box` (the minima on the box's faces, one clause),
  :func:`spurious_minima`, :func:`describe_source` (one line), :func:`map_dataset`,
  :func:`short_source` (a short name for titles: the model and its data set);
- how it was made: :func:`map_config` (the stored config), :func:`given_settings` (the seed,
  the chains and the settings away from their defaults), :func:`probe_config` (a funnel
  probe's);
- what its funnel probe says: :func:`funnel_verdict` (a funnel, no funnel, or why it cannot
  tell), :func:`funnel_noise_unit` (the unit its noise levels were given in),
  :func:`clear_sinks` (the sinks that no other basin ties with),
  :func:`describe_funnel` (one line, the verdict first).

Energies have an arbitrary offset, so barriers are also given relative: a merge's height
minus the energy of the higher of its two sides' lowest leaves, i.e. the depth the
shallower side must climb (:meth:`landscape.mapping.tree.BarrierTree.escape`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from landscape.errors import LandscapeError
from landscape.io.records import FUNNEL_SCORE, MIN_REFERENCE_BASINS, FunnelData, MapContent, Partition
from landscape.mapping.tree import BarrierTree, basin_tree, drainage_ends, pair_lengths

__all__ = [
    "FUNNEL_VERDICTS",
    "SAMPLED",
    "Coverage",
    "TreeMerge",
    "ad_temperature",
    "attr_number",
    "basin_tree_of",
    "clear_sinks",
    "coverage",
    "data_range",
    "describe_exploration",
    "describe_funnel",
    "describe_held_by_box",
    "describe_source",
    "describe_work",
    "exploration_coverage",
    "funnel_chains",
    "funnel_noise_unit",
    "funnel_verdict",
    "given_settings",
    "is_funnel",
    "leaf_basins",
    "level_name",
    "map_alpha",
    "map_config",
    "map_dataset",
    "map_temperature",
    "minima_kind",
    "partition_of",
    "probe_config",
    "recorded_model",
    "recorded_sha256",
    "scored_noise",
    "setting_text",
    "short_source",
    "sinks_text",
    "spurious_minima",
    "state_coverage",
    "state_hits",
    "tree_merges",
]

# ----------------------------------------------------------------------------- levels


def partition_of(content: MapContent, level: int | None = None) -> Partition:
    """The basins of ``content.levels[level]`` (None: the main level).

    Raises
    ------
    LandscapeError
        If ``level`` is out of range (one-line message).
    """
    if level is None:
        return content.partition
    if not 0 <= level < len(content.levels):
        raise LandscapeError(f"level {level} is out of range: the map has {len(content.levels)} levels, "
                             f"0..{len(content.levels) - 1}")
    return content.levels[level]


def attr_number(x: Any) -> float | None:
    """A finite float from an attribute value, or None (booleans are not numbers)."""
    if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, (bool, np.bool_)):
        x = float(x)
        return x if math.isfinite(x) else None
    return None


def level_name(content: MapContent, level: int | None = None) -> str:
    """``"the main level (alpha 0.1 units)"`` or ``"level 3 (alpha 1 units)"``."""
    k = content.main if level is None else level
    part = partition_of(content, k)
    where = "the main level" if k == content.main else f"level {k}"
    alpha = f"{part.multiplier:g} units" if part.multiplier is not None else f"{part.alpha:.4g}"
    return f"{where} (alpha {alpha})"


#: The rule ``"arrival"`` in words: the unit is the arrival pull, which outweighed the pull
#: matched to the minima (``value``: that pull's, where the map records it).
_ARRIVAL = ("the weakest pull that brings half of attraction-diffusion's chains to their targets, which is stronger "
            "here than the pull {value}matched to {to}")
#: What set a map's alpha unit (``/`` attrs ``levels.alpha_unit_rule``), in words.
ALPHA_UNIT_RULES = {
    "barriers": "the typical barrier over the typical spacing",
    "spread": "the minima's energy spread over the typical spacing (no barrier resolved)",
    "temperature": "T_AD over the typical spacing (no barrier and no energy spread resolved)",
    "single": "one minimum: nothing to pull towards",
    "arrival": _ARRIVAL.format(value="", to="the minima's barriers"),
    "given": "as given",
}
#: What the pull an ``"arrival"`` unit outweighed was matched to (the map's settings
#: ``alpha_unit_matched_rule``, where recorded), in words.
_MATCHED_TO = {"barriers": "the minima's barriers", "spread": "the minima's energy spread", "temperature": "T_AD"}


def alpha_unit_rule(content: MapContent) -> str | None:
    """In words, what set the map's alpha unit; None where the map does not say (maps
    made before it recorded the rule). An ``"arrival"`` unit names the pull it outweighed,
    and gives its value where the map records it (settings ``alpha_unit_matched``, and
    what that pull was matched to, ``alpha_unit_matched_rule``).

    Examples: ``"the typical barrier over the typical spacing"``; ``"the weakest pull that
    brings half of attraction-diffusion's chains to their targets, which is stronger here
    than the pull of 12.3 matched to the minima's barriers"``.
    """
    rule = str(content.attrs.get("levels", {}).get("alpha_unit_rule", ""))
    text = ALPHA_UNIT_RULES.get(rule)
    if rule != "arrival" or text is None:
        return text
    settings = content.settings()
    matched = attr_number(settings.get("alpha_unit_matched"))
    to = _MATCHED_TO.get(str(settings.get("alpha_unit_matched_rule", "barriers")), _MATCHED_TO["barriers"])
    value = f"of {matched:.4g} " if matched is not None and matched > 0 else ""
    return _ARRIVAL.format(value=value, to=to)


def basin_tree_of(content: MapContent, level: int | None = None) -> BarrierTree:
    """The tree over the basins of a level (None: the main one), from the map's barriers
    between minima (for a schema-1 map, its stored tree over the main level's basins)."""
    part = partition_of(content, level)
    if not content.over_minima:
        if part is not content.partition:
            raise LandscapeError("a schema-1 map has a tree for its main level only: remap it for the others")
        return content.tree
    t = content.barriers
    e = content.minima_energy
    return basin_tree(e, t.pairs, t.best(e), part.basin, part.representative, refined=t.is_refined(e),
                      flat_rtol=content.tree.flat_rtol, flat_atol=content.tree.flat_atol,
                      prefer=pair_lengths(content.minima_x, t.pairs))


def leaf_basins(content: MapContent, tree: BarrierTree, level: int | None = None) -> np.ndarray:
    """The basin of each leaf of ``tree`` at a level (a leaf is a minimum, or a basin's
    representative)."""
    return partition_of(content, level).basin[tree.leaves]


def map_alpha(content: MapContent) -> float | None:
    """The magnetization of the main level."""
    alpha = content.partition.alpha
    return float(alpha) if math.isfinite(alpha) else None


def map_temperature(content: MapContent) -> float | None:
    """The exploration temperature, if the map says (``/minima`` attr, or the config)."""
    for value in (content.attrs.get("minima", {}).get("temperature"), _config(content).get("temperature")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def ad_temperature(content: MapContent) -> float | None:
    """The attraction-diffusion temperature, if the map says."""
    for value in (content.attrs.get("levels", {}).get("temperature"), content.attrs.get("barriers", {}).get("temperature")):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def drain_targets(content: MapContent) -> np.ndarray:
    """Per minimum, the minimum it drains into with no barrier the energy's precision
    resolves (int64 [N]; -1 for a state of its own, and for every minimum of a map without
    a tree over its minima)."""
    if content.tree is None:
        return np.full(content.n_minima, -1, dtype=np.int64)
    return content.tree.minima_drain_into(content.n_minima)


def merges_at_saddle_points(content: MapContent) -> int | None:
    """How many of the tree's refined merges sit at a saddle point (``/barriers/saddle_point``;
    the others at the top of a refined path whose gradient does not vanish there), or None
    where the map does not say (maps of earlier versions, schema-1 maps)."""
    if "saddle_points" not in content.attrs.get("barriers", {}) or content.schema_version < 2:
        return None
    tree, table = content.tree, content.barriers
    rows = tree.pair[tree.refined & (tree.pair >= 0)]
    return int(table.saddle_point[rows].sum())


def _config(content: MapContent) -> dict[str, Any]:
    config = content.meta.config if content.meta is not None else None
    return config if isinstance(config, dict) else {}


# ------------------------------------------------------------------- how it was made

#: :class:`landscape.mapping.settings.MapConfig`'s defaults, written out so that reading a
#: map imports no torch (``tests/test_views.py`` checks they agree); the settings left
#: ``None`` there (chosen from the energy) are not listed.
MAP_DEFAULTS: dict[str, Any] = {
    "chains": 256, "rounds": 4, "quench_steps": 2000, "max_minima": 0, "neighbours": 10, "refine": True,
    "refine_slack": 0.5, "refine_images": 24, "refine_steps": 400, "refine_climb_steps": 100, "alpha": 0.1,
    "ladder": [0.03, 0.1, 0.3, 1.0, 3.0], "ladder_extend": 4, "ladder_refine": 4, "max_steps": 2000,
    "patience": 200, "attempts": 3, "average": 20, "round_size": 256, "batch_size": 4096, "grid": 160, "seed": 0,
}
#: Always shown by :func:`given_settings`, at their defaults too: what a rerun needs first.
_ALWAYS = ("seed", "chains")


def map_config(content: MapContent) -> dict[str, Any]:
    """The config the map was made with (its root attribute ``config``, as stored: ``None``
    for a setting chosen from the energy, whose chosen value is in ``content.settings()``);
    empty where the map records none."""
    return dict(_config(content))


def given_settings(config: dict[str, Any]) -> list[tuple[str, Any]]:
    """The settings of a stored map config that a rerun needs: the seed and the chains
    always, then each other setting that was given a value (not ``None``) other than its
    default (:data:`MAP_DEFAULTS`), in the config's order.

    Examples
    --------
    >>> given_settings({"chains": 32, "rounds": 4, "eps": None, "seed": 1, "refine": False})
    [('seed', 1), ('chains', 32), ('refine', False)]
    """
    out = [(key, config[key]) for key in _ALWAYS if key in config]
    for key, value in config.items():
        if key in _ALWAYS or value is None:
            continue
        default = MAP_DEFAULTS.get(key)
        same = (default is not None and isinstance(value, (list, tuple)) == isinstance(default, list)
                and (list(value) == default if isinstance(default, list) else value == default))
        if not same:
            out.append((key, value))
    return out


def probe_config(funnel: FunnelData) -> dict[str, Any]:
    """The settings of a funnel probe (``/funnel`` attr ``config``, JSON): its seed, chains
    per start and level, noise levels...; empty where the probe records none."""
    import json

    config = funnel.attrs.get("config")
    if isinstance(config, dict):
        return dict(config)
    try:
        parsed = json.loads(config) if isinstance(config, (str, bytes)) else None
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# -------------------------------------------------------------------------- the tree


@dataclass(frozen=True)
class TreeMerge:
    """One merge of a tree (one linkage row), with its barrier.

    Attributes
    ----------
    row : int
        Linkage row; the merge's node id is ``L + row``.
    children : (int, int)
        The two merged nodes (leaves ``< L``, merges ``>= L``).
    lower, higher : int
        The lowest leaf of the lower side and of the higher side.
    count : int
        Leaves below the merge.
    height : float
        Absolute barrier energy of the merge (the placeholder when not connected).
    relative : float
        ``height - E[higher]``: the depth the shallower side must climb (NaN when not
        connected).
    above_lowest : float
        ``height - E[lower]`` (NaN when not connected).
    connected : bool
        A path was found between the two sides.
    refined : bool
        The height is a string-method saddle.
    pair : (int, int) or None
        The minima pair whose barrier made the merge.
    barrier_row : int or None
        Its row of ``/barriers``.
    estimate : float
        The pair's estimate (highest point of the best path found; NaN when none).
    saddle : float
        The pair's refined saddle (NaN when not refined).
    above_estimate : bool
        The refined saddle lies too far above the estimate for the tree to take it.
    saddle_point : bool or None
        A refined merge's path top is a saddle point (the gradient vanishes there), or only
        the top of the relaxed path; None where not refined or the map does not say.
    """

    row: int
    children: tuple[int, int]
    lower: int
    higher: int
    count: int
    height: float
    relative: float
    above_lowest: float
    connected: bool
    refined: bool
    pair: tuple[int, int] | None
    barrier_row: int | None
    estimate: float
    saddle: float
    above_estimate: bool
    saddle_point: bool | None = None


def tree_merges(content: MapContent, tree: BarrierTree | None = None) -> list[TreeMerge]:
    """The merges of ``tree`` (default: the map's tree over minima), lowest first."""
    tree = content.tree if tree is None else tree
    table = content.barriers
    above = table.above_estimate(content.minima_energy)
    points = table.saddle_point if merges_at_saddle_points(content) is not None else None
    energy = tree.energy
    n = tree.n_leaves
    out = []
    for k, row in enumerate(tree.linkage):
        c0, c1 = int(row[0]), int(row[1])
        lower, higher = sorted((int(tree.lowest[c0]), int(tree.lowest[c1])), key=lambda i: (energy[i], i))
        conn = bool(tree.connected[k])
        height = tree.height(n + k)
        e = int(tree.pair[k]) if conn and tree.pair[k] >= 0 else None
        out.append(TreeMerge(
            row=k, children=(c0, c1), lower=lower, higher=higher, count=int(row[3]), height=height,
            relative=height - float(energy[higher]) if conn else math.nan,
            above_lowest=height - float(energy[lower]) if conn else math.nan,
            connected=conn, refined=bool(tree.refined[k]),
            pair=None if e is None else (int(table.pairs[e, 0]), int(table.pairs[e, 1])),
            barrier_row=e,
            estimate=float(table.estimate[e]) if e is not None else math.nan,
            saddle=float(table.refined[e]) if e is not None else math.nan,
            above_estimate=bool(above[e]) if e is not None else False,
            saddle_point=bool(points[e]) if points is not None and e is not None and tree.refined[k] else None,
        ))
    return out


# ------------------------------------------------------------- how completely explored


class Coverage(NamedTuple):
    """How completely exploration chains found the minima their starts lead to, read off
    how many chains ended in each (:func:`coverage`).

    chains : the exploration chains; found : the minima at least one of them ended in;
    once, twice : the minima exactly one (two) of them ended in; unseen : the share of
    further chains from the same starts that would end in a minimum not found yet
    (Good-Turing: ``once / chains``); estimated : how many minima those starts lead to, an
    estimate from the rarely found ones that errs low (Chao1, bias-corrected:
    ``found + (chains - 1) / chains * once (once - 1) / (2 (twice + 1))``)."""

    chains: int
    found: int
    once: int
    twice: int
    unseen: float
    estimated: float


def coverage(hits: Any, chains: int | None = None) -> Coverage:
    """:class:`Coverage` from the chains that ended in each minimum (``hits``; minima none
    ended in, such as a funnel probe's, left out) of ``chains`` (default: their sum).

    Minima each reached by many chains are about all the minima the chains' starts lead to;
    chains that each found a minimum of their own hold a sample of them, and more chains
    would find more (Good 1953, Chao 1984)."""
    h = np.asarray(hits, dtype=np.int64).reshape(-1)
    h = h[h > 0]
    n = max(int(h.sum()), int(chains or 0))
    once, twice = int((h == 1).sum()), int((h == 2).sum())
    extra = (n - 1) / n * once * (once - 1) / (2 * (twice + 1)) if n else 0.0
    return Coverage(chains=n, found=int(h.size), once=once, twice=twice,
                    unseen=once / n if n else 0.0, estimated=float(h.size + extra))


#: The share of further chains finding a new minimum above which a map's exploration is
#: called a sample of the minima (said by ``landscape map`` and ``info``).
SAMPLED = 0.1

_STARTS = {"noise": "uniform noise in the box", "data": "data", "both": "data and uniform noise, half each"}


def exploration_coverage(content: MapContent) -> Coverage | None:
    """:func:`coverage` of a map's exploration (``/minima/hits`` of the ``chains`` attr of
    ``/minima``); None for a map with no chains recorded."""
    hits = np.asarray(content.minima_hits, dtype=np.int64).reshape(-1)
    chains = content.attrs.get("minima", {}).get("chains")
    chains = int(chains) if isinstance(chains, (int, np.integer)) and chains > 0 else None
    if not hits.size or (chains is None and not hits.sum()):
        return None
    return coverage(hits, chains)


def state_hits(content: MapContent) -> np.ndarray | None:
    """Per minimum, the exploration chains that ended in it or in a minimum whose drainage
    ends at it (int64 [N]; 0 for a minimum that drains flat into another): the chains per
    distinct state. A quench stops anywhere on a plateau or along a flat valley, so more
    chains only leave more points there, each a minimum of the map that drains into a lower
    one with no barrier the energy's precision resolves (the tree's flat merges,
    :meth:`landscape.mapping.tree.BarrierTree.drains_into`). None where no minimum drains
    flat, or where the tree is not over the minima (a schema-1 map)."""
    if not content.over_minima:
        return None
    hits = np.asarray(content.minima_hits, dtype=np.int64).reshape(-1)
    into = content.tree.minima_drain_into(hits.size)
    if not (into >= 0).any():
        return None
    out = np.zeros_like(hits)
    np.add.at(out, drainage_ends(into), hits)
    return out


def state_coverage(content: MapContent) -> Coverage | None:
    """:func:`coverage` of the exploration over the distinct states (:func:`state_hits`):
    how completely the chains found the states their starts lead to, where points of a
    plateau or a flat valley would make any number of chains look like a sample. None
    where no minimum drains flat into another, or no chains are recorded."""
    hits = state_hits(content)
    c = exploration_coverage(content)
    return None if hits is None or c is None else coverage(hits, c.chains)


def describe_exploration(content: MapContent) -> str | None:
    """One line: the exploration's chains, where they started, and how completely they
    found the minima those starts lead to (:func:`exploration_coverage`); where some minima
    drain flat into others, how completely they found the distinct states
    (:func:`state_coverage`), which says whether more chains would find more."""
    c = exploration_coverage(content)
    if c is None:
        return None
    attrs = content.attrs.get("minima", {})
    rounds = attrs.get("rounds")
    init = content.settings().get("init")
    dataset = map_dataset(content)
    starts = _STARTS.get(init) if isinstance(init, str) else None
    if starts and dataset and init != "noise":
        starts = starts.replace("data", f"data ({dataset})", 1)
    text = f"{c.chains:,} chains" + (f" from {starts}" if starts else "")
    if isinstance(rounds, (int, np.integer)) and rounds > 1:
        text += f" in {int(rounds)} rounds"
    text += f": {c.found:,} minim{'um' if c.found == 1 else 'a'}"
    hits = np.asarray(content.minima_hits)
    states = state_hits(content)
    if states is None:
        return text + _verdict(c, hits, "minimum", "minima")
    s = coverage(states, c.chains)
    drained = c.found - int(((states > 0) & (hits > 0)).sum())
    if c.once:
        text += f", {c.once:,} reached by one chain only"
    verb = "drains" if drained == 1 else "drain"
    return (text + f"; {s.found:,} distinct state{'' if s.found == 1 else 's'} ({drained:,} of the minima {verb} into "
            "another with no barrier the energy resolves: points along a plateau or a flat valley, where more "
            "chains only leave more points)" + _verdict(s, states, "state", "states"))


def _verdict(c: Coverage, hits: np.ndarray, one: str, many: str) -> str:
    """How completely ``c`` found what it counts (``one``/``many``: its name), one clause."""
    if c.once == 0:
        least = int(hits[hits > 0].min())
        return (f", each reached by {least:,} chains or more: about all the {many} these starts lead to "
                f"(Good-Turing: under 1 in {c.chains:,} further chains would find another)")
    text = f", {c.once:,} reached by one chain only" if many == "minima" else \
        f", {c.once:,} of them reached by one chain only"
    if c.unseen >= SAMPLED:
        return text + (f": a sample of the {many} these starts lead to, not all of them (about {c.unseen:.0%} of "
                       f"further chains would find another; at least about {_rounded(c.estimated)} {many} in all "
                       f"by Chao1's estimate); {more_chains(c, one)}")
    return text + f" (about {c.unseen:.1%} of further chains would find another)"


def describe_work(content: MapContent) -> str | None:
    """One line: how many processes made the map and how they shared its work (root attrs
    ``ranks`` and ``work_split``): from which batch size the energy's evaluations were
    split into one slice of rows per rank, and per stage the share of its rows that were
    (the rest every rank evaluated whole, repeating the others' work). None for a map that
    does not say (written before it was recorded)."""
    extra = content.meta.extra if content.meta is not None else {}
    ranks = extra.get("ranks")
    if not isinstance(ranks, int):
        return None
    record = extra.get("work_split") if isinstance(extra.get("work_split"), dict) else {}
    stages = record.get("stages") if isinstance(record.get("stages"), dict) else {}
    stages = {k: v for k, v in sorted(stages.items(), key=lambda kv: _STAGE_ORDER.get(kv[0], len(_STAGE_ORDER)))
              if isinstance(v, dict) and isinstance(v.get("ranks"), list)}
    if all(v["ranks"] == [1] for v in stages.values()) and ranks == 1:
        return "1 (one process)"
    split_from = record.get("split_from")
    text = f"{ranks} (torchrun)" if ranks > 1 else "1 (one process, resuming work begun on more ranks)"
    if ranks > 1:
        text += (f": batches of {split_from:,} rows or more split, one slice of rows per rank, smaller ones "
                 "evaluated whole on every rank" if isinstance(split_from, int) else
                 ": no batch paid to split, so every rank evaluated every batch (the extra ranks repeated the work)")
    parts = []
    for stage, entry in stages.items():
        counts = [r for r in entry["ranks"] if isinstance(r, int)]
        split, whole = entry.get("rows_split"), entry.get("rows_whole")
        if not any(r > 1 for r in counts):
            parts.append(f"{stage} on one process")
            continue
        if split_from is None and counts == [ranks] and not split:
            continue  # (the line has said so)
        rows = (split or 0) + (whole or 0)
        part = f"{stage} {_share(split or 0, rows)} split" if rows else f"{stage} no evaluations"
        if counts != [ranks]:
            part += f" (on {' and '.join('one process' if r == 1 else f'{r} ranks' for r in counts)})"
        parts.append(part)
    return text + ("; rows: " + ", ".join(parts) if parts else "")


#: The stages of a map in the order they run (the keys of its ``seconds`` and ``work_split``).
_STAGE_ORDER = {"minima": 0, "neighbours": 1, "basins": 2, "refine": 3}


def _share(part: int, whole: int) -> str:
    """``part / whole`` as a percentage that reads 0 % or 100 % only where it is."""
    share = part / whole
    return "<1%" if 0 < share < 0.01 else ">99%" if 0.99 < share < 1 else f"{share:.0%}"


#: The most chains :func:`more_chains` suggests: beyond, finding every minimum is out of reach.
MOST_CHAINS = 65536


def more_chains(c: Coverage, each: str = "minimum") -> str:
    """What to run to find the minima a sample left out, in words: where minima found twice
    inform the estimate (three or more of them), ``--chains N``: about three chains per
    minimum estimated, a power of two (the 4-D Rastrigin's 625 minima in a box, 205 found by
    256 chains, Chao1 630: 2,048 found them all), at most :data:`MOST_CHAINS`; else (nearly
    every chain a minimum of its own, as in image space) that more chains find more.
    ``each``: what ``c`` counts (``"state"`` for :func:`state_coverage`)."""
    if c.twice >= 3 and math.isfinite(c.estimated):
        need = 2 ** math.ceil(math.log2(max(3.0 * c.estimated, 1.0)))
        if need <= MOST_CHAINS:
            return f"to find about all of them, try --chains {need} (three per {each} estimated)"
    return "--chains finds more"


def _rounded(x: float) -> str:
    """A count estimated, to 2 significant digits."""
    return f"{float(f'{x:.2g}'):,.0f}"


# ---------------------------------------------------------------------- what to draw


def minima_kind(content: MapContent) -> str:
    """How the minima can be drawn: ``"image"``, ``"2d"`` or ``"vector"``.

    ``image``: shape (C, H, W) with C = 1 or 3, or (H, W). ``2d``: shape (2,).
    ``vector``: shape (D,) with D = 1 or D > 2.

    Raises
    ------
    LandscapeError
        For shapes none of the pictures can draw.
    """
    shape = tuple(np.shape(content.minima_x)[1:])
    if len(shape) == 3:
        if shape[0] in (1, 3):
            return "image"
        raise LandscapeError(
            f"cannot draw minima of shape {shape} as images: expected 1 (grey) or 3 (RGB) channels"
        )
    if len(shape) == 2:
        return "image"
    if len(shape) == 1:
        if shape[0] == 2:
            return "2d"
        if shape[0] != 2 and shape[0] >= 1:
            return "vector"
    raise LandscapeError(f"cannot draw minima of shape {shape}: no picture fits them")


def data_range(content: MapContent) -> tuple[float, float]:
    """The data box ``(low, high)``: ``/minima`` attr ``data_range``, else the minima's own range."""
    value = content.attrs.get("minima", {}).get("data_range")
    if isinstance(value, (list, tuple, np.ndarray)) and len(value) == 2:
        low, high = float(value[0]), float(value[1])
        if math.isfinite(low) and math.isfinite(high) and high > low:
            return low, high
    x = np.asarray(content.minima_x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return 0.0, 1.0
    low, high = float(x.min()), float(x.max())
    return (low, high) if high > low else (low - 0.5, low + 0.5)


def describe_held_by_box(content: MapContent) -> str | None:
    """One clause: how many of the minima the map's exploration found the box holds (``/minima``
    attr ``held_by_box``: on a face, the energy still falling beyond it), out of how many
    (a funnel probe's minima were not checked, and are said not to be); None where none
    (or the map does not say).

    Images have pixels at the range's ends, as data images do: the clause says "pixels
    held at the range's ends", not "saturated", the word ``landscape diagnose`` keeps for
    its rule (most of a minimum's pixels there).

    Examples: ``"61 of the 64 minima the exploration found have pixels held at the range's
    ends by the box (the energy still falling outward); the funnel probes' 239 minima were
    not checked"``.
    """
    held = attr_number(content.attrs.get("minima", {}).get("held_by_box"))
    if held is None or held <= 0:
        return None
    held = int(held)
    added = attr_number(content.attrs.get("minima", {}).get("funnel_added"))
    added = int(added) if added is not None and added > 0 else 0
    found = content.n_minima - added
    of = f"{held} of the {found} minima the exploration found" if added else f"{held} of the {found} minima"
    if found == 1:
        of = "the one minimum the exploration found" if added else "the map's one minimum"
    one = held == 1
    try:
        image = minima_kind(content) == "image"
    except LandscapeError:  # (a shape no picture draws)
        image = False
    if image:
        text = (f"{of} {'has' if one else 'have'} pixels held at the range's ends by the box (the energy still "
                "falling outward)")
    else:
        text = (f"{of} {'lies' if one else 'lie'} on the box's faces with the energy still falling beyond (held by "
                "the box)")
    if added:
        text += f"; the funnel probes' {added} minim{'um was' if added == 1 else 'a were'} not checked"
    return text


def _spec(value: Any) -> str:
    """A short text for a source entry (an energy spec may be a dict)."""
    if isinstance(value, dict):
        name = value.get("name") or value.get("kind")
        rest = ", ".join(f"{k}={v}" for k, v in sorted(value.items()) if k not in ("name", "kind"))
        return f"{name} ({rest})" if name and rest else str(name) if name else rest
    return str(value)


def describe_source(content: MapContent) -> str:
    """One line saying what was mapped (from the root attribute ``source``).

    Understands ``kind`` with ``path`` / ``checkpoint`` or ``spec`` / ``energy``,
    ``sha256``, ``regime`` and ``dataset``; other sources are listed as they are.
    """
    source = content.meta.source if content.meta is not None else None
    if isinstance(source, dict):
        what = next((source[k] for k in ("path", "checkpoint", "spec", "energy") if source.get(k)), None)
        if what is None:
            return ", ".join(f"{k} {_spec(v)}" for k, v in sorted(source.items())) or "unknown"
        kind = source.get("kind") or next(k for k in ("path", "checkpoint", "spec", "energy") if source.get(k))
        text = f"{kind} {_spec(what)}"
        if source.get("sha256"):
            text += f" (sha256 {str(source['sha256'])[:12]})"
        for key, name in (("regime", "regime"), ("dataset", "data")):
            if source.get(key) and source.get(key) != "unknown":
                text += f", {name} {source[key]}"
        return text
    if source is None or source == "":
        return "unknown"
    return str(source)


def map_dataset(content: MapContent) -> str | None:
    """The data set the mapped model learned, if the map says (``/minima`` attrs or the source)."""
    source = content.meta.source if content.meta is not None else None
    for value in (
        content.attrs.get("minima", {}).get("dataset"),
        source.get("dataset") if isinstance(source, dict) else None,
    ):
        if isinstance(value, str) and value:
            return value
    return None


def recorded_sha256(content: MapContent) -> str | None:
    """The sha256 of the model file a map records (None where it records none)."""
    source = content.meta.source if content.meta is not None else None
    sha = source.get("sha256") if isinstance(source, dict) else None
    return sha if isinstance(sha, str) and sha else None


def setting_text(value: Any) -> str:
    """A setting as one types it: numbers with ``g``, lists comma-joined (``0.03,0.1,0.3``)."""
    if isinstance(value, (list, tuple)):
        return ",".join(setting_text(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def recorded_model(map_path: str | Path, content: MapContent) -> tuple[str, Path | None] | None:
    """Whether the model file a map records (a checkpoint or state dict, by its path and
    sha256) is still there: ``("unchanged", path)``, ``("changed", path)`` (its sha256
    differs: trained further, or replaced), ``("elsewhere", None)`` (found only outside the
    folders a map's record may lead to: the current one and the map's), ``("missing",
    None)``; None for a map of no such file (a function, a TorchScript file, no record)."""
    from landscape.io.files import recorded_elsewhere, recorded_file, sha256_of

    source = content.meta.source if content.meta is not None else None
    if not isinstance(source, dict) or source.get("kind") not in ("checkpoint", "state_dict") \
            or not source.get("sha256") or not source.get("path"):
        return None
    path = recorded_file(Path(map_path), str(source["path"]))
    if path is None:
        return ("elsewhere", None) if recorded_elsewhere(Path(map_path), str(source["path"])) else ("missing", None)
    return ("unchanged" if sha256_of(path) == source["sha256"] else "changed"), path


def short_source(content: MapContent) -> str:
    """A short name for titles: the model (the source's label, file stem or energy name)
    and its data set, ``"digits_convergent on digits"`` (either alone where the map names
    only one; ``"map"`` when it says nothing of its source): two models of one data set
    get titles of their own."""
    dataset = map_dataset(content)
    model = _model_name(content)
    if model and dataset and model != dataset:
        return f"{model} on {dataset}"
    return model or dataset or "map"


def _model_name(content: MapContent) -> str | None:
    source = content.meta.source if content.meta is not None else None
    if isinstance(source, dict):
        if source.get("label"):
            return str(source["label"])
        for key in ("path", "checkpoint"):
            if source.get(key):
                return Path(str(source[key])).stem
        for key in ("spec", "energy"):
            if source.get(key):
                value = source[key]
                if isinstance(value, dict):
                    return str(value.get("name") or value.get("kind") or key)
                return str(value)
    return source if isinstance(source, str) and source else None


#: The name the pictures used before the views had a module of their own.
_short_source = short_source


def spurious_minima(content: MapContent) -> np.ndarray:
    """Per minimum: flagged spurious by the map's own diagnosis (all False without one)."""
    if content.diagnosis is None:
        return np.zeros(content.n_minima, dtype=bool)
    return np.asarray(content.diagnosis.spurious, dtype=bool)


# ------------------------------------------------------------------------ the funnel

#: What a funnel probe says (:func:`funnel_verdict`): a funnel, no funnel, or that it cannot
#: tell, because every chain ended in a basin of its own at every level above the lowest,
#: those the score is taken over (more chains tell),
#: or because at the lowest noise the chains already fill about one basin (the score is
#: undefined: nothing is left to collapse).
FUNNEL, NO_FUNNEL, TOO_FEW_CHAINS, UNDEFINED = "a funnel", "no funnel", "too few chains to tell", "score undefined"
FUNNEL_VERDICTS = (FUNNEL, NO_FUNNEL, TOO_FEW_CHAINS, UNDEFINED)


def quench_settings(content: MapContent) -> tuple[float, int, float]:
    """The map's merge radius, quench steps and gradient tolerance: what matches a point
    quenched later (a funnel probe's chain, :func:`landscape.locate`'s) to the map's minima
    as its own were matched (the defaults of maps that do not record them)."""
    settings = content.settings()
    return (float(settings.get("merge_radius", 0.05)), int(settings.get("quench_steps", 2000)),
            float(settings.get("grad_tol", 1e-3)))


def funnel_threshold(funnel: FunnelData) -> float:
    """The score from which the probe is a funnel: as it recorded it, else (a probe that
    does not record it) :data:`landscape.io.records.FUNNEL_SCORE`."""
    value = funnel.attrs.get("funnel_threshold")
    if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
        return float(value)
    return FUNNEL_SCORE


def funnel_chains(funnel: FunnelData) -> int | None:
    """The chains per noise level of a probe (all starts together), None where it does not say."""
    if funnel.chain_minimum is not None and np.ndim(funnel.chain_minimum) == 2:
        return int(np.shape(funnel.chain_minimum)[1])
    chains = funnel.attrs.get("chains_per_level")
    return int(chains) if isinstance(chains, (int, np.integer)) and not isinstance(chains, bool) else None


def funnel_verdict(funnel: FunnelData) -> str:
    """What the probe says, one of :data:`FUNNEL_VERDICTS`.

    ``"a funnel"`` where the score reaches the probe's threshold (0.5); ``"too few chains to
    tell"`` where, below it, the chains each ended in a basin of their own at every level
    the score is taken over (those above the lowest: the effective number of basins equals
    the chains, and a score of 0 then says nothing of the landscape, only that the chains
    were too few to meet; the lowest level, the quenched starts, does not count: two data
    starts that quench into one minimum tell nothing of the noise); ``"score undefined"``
    where the chains already fill about one basin at the lowest noise (an effective number
    under :data:`~landscape.io.records.MIN_REFERENCE_BASINS`; also for a probe that
    scored it, made before it was undefined); else ``"no funnel"``.
    """
    score = float(funnel.score)
    if not math.isfinite(score) or _reference_basins(funnel) < MIN_REFERENCE_BASINS:
        return UNDEFINED
    if score >= funnel_threshold(funnel):
        return FUNNEL
    chains = funnel_chains(funnel)
    entropy = _scored(np.asarray(funnel.entropy, dtype=np.float64))
    if chains is not None and chains > 1 and entropy.size and bool(np.all(np.exp(entropy) > 0.99 * chains)):
        return TOO_FEW_CHAINS
    return NO_FUNNEL


def defined_score(funnel: FunnelData) -> float | None:
    """The probe's funnel score, None where it is undefined (:func:`funnel_verdict`; a
    probe that scored it, made before it was undefined, too): what ``--json`` gives."""
    return None if funnel_verdict(funnel) == UNDEFINED else float(funnel.score)  # (UNDEFINED: NaN too)


def _reference_basins(funnel: FunnelData) -> float:
    """The effective number of basins the probe's score is relative to: exp of its
    reference entropy (the data's basins; the lowest level's where it does not say)."""
    ref = attr_number(funnel.attrs.get("reference_entropy"))
    return math.exp(ref if ref is not None else float(np.asarray(funnel.entropy, dtype=np.float64)[0]))


def _scored(per_level: np.ndarray) -> np.ndarray:
    """The rows of the levels the funnel score is taken over: those above the lowest (all
    of them for a probe of one level)."""
    return per_level[1:] if len(per_level) > 1 else per_level


def scored_noise(funnel: FunnelData) -> str:
    """The noise levels the funnel score is taken over (those above the lowest), in words:
    ``"1 to 8"``, ``"1"``."""
    tau = _scored(np.asarray(funnel.noise, dtype=np.float64))
    return f"{tau[0]:.3g}" if tau.size == 1 else f"{tau[0]:.3g} to {tau[-1]:.3g}"


def funnel_noise_unit(funnel: FunnelData) -> tuple[float, str | None] | None:
    """The unit the probe's noise levels were given in (``/funnel`` attr ``noise_unit``),
    and where it came from in words (``noise_unit_source``; None where not recorded); None
    for a probe that does not record its unit (made before it was recorded)."""
    unit = attr_number(funnel.attrs.get("noise_unit"))
    if unit is None or unit <= 0:
        return None
    source = funnel.attrs.get("noise_unit_source")
    return unit, (str(source) if isinstance(source, str) and source else None)


def is_funnel(verdict: str) -> bool | None:
    """A verdict as JSON's ``funnel``: True, False, or None where the probe cannot tell."""
    return {FUNNEL: True, NO_FUNNEL: False}.get(verdict)


def clear_sinks(occupancy: np.ndarray, listed: Any) -> tuple[list[int], tuple[int, float] | None]:
    """The sinks of one level that no basin left out ties with, and the tie, if any.

    Sinks are the fullest basins, taken until they hold half the chains; where the cut
    falls inside a group of basins of equal share (24 chains in 24 basins: every basin at
    4 %), which of them are taken is only their order. Those are left out, and the tie is
    returned as (how many basins share that occupancy, the share).

    Examples
    --------
    >>> clear_sinks(np.array([0.3, 0.2, 0.2, 0.2, 0.1]), [0, 1])
    ([0], (3, 0.2))
    >>> clear_sinks(np.array([0.6, 0.3, 0.1]), [0])
    ([0], None)
    """
    occ = np.asarray(occupancy, dtype=np.float64)
    taken = [int(b) for b in np.asarray(listed, dtype=np.int64).ravel() if b >= 0]
    rest = np.ones(occ.size, dtype=bool)
    rest[taken] = False
    rest &= occ > 0
    if not taken or not rest.any():
        return taken, None
    cut = float(occ[rest].max())
    tol = 1e-9 * max(cut, 1e-300)
    clear = [b for b in taken if occ[b] > cut + tol]
    if len(clear) == len(taken):
        return taken, None
    return clear, (int(np.sum(np.abs(occ - cut) <= tol)), cut)


def sinks_text(occupancy: np.ndarray, listed: Any, name: str = "basin") -> str:
    """Sinks in words: ``"basin 3 52%, basin 1 20%"``; a tie at the cut is said, not listed
    (``"basin 0 30%, then 3 basins tie at 20%"``, ``"24 basins tie at 4%"``)."""
    occ = np.asarray(occupancy, dtype=np.float64)
    clear, tie = clear_sinks(occ, listed)
    parts = [f"{name} {b} {100 * occ[b]:.0f}%" for b in clear]
    if tie is not None:
        parts.append(f"{'then ' if parts else ''}{tie[0]} {name}s tie at {100 * tie[1]:.0f}%")
    return ", ".join(parts)


def describe_funnel(funnel: FunnelData) -> str:
    """One line, the verdict first: ``"funnel score 0.92: a funnel (effective number of
    basins 4.0 in the data's basins -> 1.1 at noise 2: basin 0 96%)"``, or why the probe
    cannot tell (``"too few chains to tell a funnel: ..."``)."""
    from landscape.mapping.funnel import collapse_level, funnel_sinks, sinks

    verdict = funnel_verdict(funnel)
    from_data = str(funnel.attrs.get("reference", "")).startswith("chains from data")
    if verdict == UNDEFINED and len(funnel.noise) < 2:
        return "funnel score undefined: the probe ran one noise level (the score compares the levels above the lowest with it)"
    if verdict == UNDEFINED:
        return (f"funnel score undefined: at the lowest noise level {'the chains from data' if from_data else 'the chains'} "
                f"already fill about one basin (effective number {_reference_basins(funnel):.2f}, under "
                f"{MIN_REFERENCE_BASINS:g}): nothing is left to collapse")
    s = float(funnel.score)
    k = collapse_level(funnel)
    occ = np.asarray(funnel.occupancy, dtype=np.float64)
    if from_data and funnel.noise[0] == 0:
        what = "the data's basins"
    else:  # (a probe whose lowest level has noise: its chains, not the quenched data themselves)
        what = f"{'chains from data at' if from_data else 'all chains at'} noise {funnel.noise[0]:.3g}"
    spread = (f"effective number of basins {_reference_basins(funnel):.1f} in {what} -> {math.exp(funnel.entropy[k]):.1f} at "
              f"noise {funnel.noise[k]:.3g}")
    if verdict == TOO_FEW_CHAINS:
        return (f"too few chains to tell a funnel: every level's {funnel_chains(funnel)} chains ended each in a "
                f"basin of its own at noise {scored_noise(funnel)}, the levels the score is taken over "
                f"(landscape funnel --chains raises them; funnel score {s:.2f}, {spread})")
    listed = funnel_sinks(funnel) if verdict == FUNNEL else []
    if not listed:
        listed = ([int(b) for b in funnel.sinks[k] if b >= 0] if funnel.sinks is not None else sinks(occ[k]))
    return f"funnel score {s:.2f}: {verdict} ({spread}: {sinks_text(occ[k], listed)})"
