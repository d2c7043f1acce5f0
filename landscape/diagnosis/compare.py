"""Two landscape maps side by side: how do the energy landscapes of two EBMs differ?

The Anatomy paper's two kinds of ML learning leave different landscapes behind: a
convergent model's long-run chains stay among the data, a non-convergent one's drift
into low-energy, unrealistic states. A map (:mod:`landscape.io.mapfile`) holds what tells
them apart; :func:`map_profile` reduces one map to a few comparable numbers:

- basins per magnetization: the number of basins at each level of the
  attraction-diffusion ladder, keyed by the level's *multiplier* of the map's alpha unit
  (alphas of different models live on different energy scales; each map's unit is chosen
  from its own minima, so the same multiplier is the same relative pull);
- the barrier spectrum: the relative heights of the merges of the tree over the main
  level's basins (the depth the shallower side climbs), also in units of kT at the
  model's own sampling temperature (``T = 1`` for ``p ~ exp(-U)`` when the map records
  none): the barriers in kT are what decide how often the model's chains cross them;
- the funnel probe's score and effective number of basins ``exp(H)`` per noise level;
- the spurious share: the diagnosed minima (and the chains that ended in them) and the
  count per reason.

:func:`compare_profiles` lays two profiles out as table rows, :func:`summarize` says in
plain words how they differ, :func:`caveats` what the comparison cannot tell (one model
mapped twice, other settings, other data, barriers with no scale, minima that are a
sample of the chains), and :func:`landscape.plots.compare.plot_comparison` draws both
on one figure.

This module reads maps only: it neither runs chains nor loads models (the command
``landscape compare`` adds the long-run convergence check of a checkpoint).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from landscape.errors import LandscapeError
from landscape.io.files import json_safe
from landscape.io.mapfile import MapContent
from landscape.io.records import REASONS
from landscape.io.views import (
    SAMPLED,
    TOO_FEW_CHAINS,
    attr_number,
    basin_tree_of,
    defined_score,
    describe_source,
    Coverage,
    exploration_coverage,
    given_settings,
    funnel_chains,
    funnel_threshold,
    funnel_verdict,
    is_funnel,
    map_alpha,
    map_config,
    map_dataset,
    map_temperature,
    minima_kind,
    recorded_sha256,
    state_coverage,
    setting_text,
    tree_merges,
)

__all__ = ["MAX_PICTURES", "caveats", "compare_profiles", "identical_maps", "json_safe", "map_profile",
           "plot_comparison", "summarize", "unscaled_barriers"]

#: Below this many barriers on a side, the summary says how many its median is of.
FEW_BARRIERS = 5
#: Pictures per model in the figure's bottom rows.
MAX_PICTURES = 16
#: Two multipliers this close (relative) are the same level of two ladders.
_SAME_MULTIPLIER = 1e-6


# ---------------------------------------------------------------------------- profile


def _levels(content: MapContent) -> list[tuple[float | None, float | None, int]]:
    """(multiplier, alpha, basins) per level, ascending multiplier (unknown ones last)."""
    unit = attr_number(content.attrs.get("levels", {}).get("alpha_unit"))
    rows = []
    for part in content.levels:
        m = part.multiplier
        if m is None and unit is not None and unit > 0:
            m = part.alpha / unit
        rows.append((m, float(part.alpha), part.n_basins))
    return sorted(rows, key=lambda r: (r[0] is None, r[0] if r[0] is not None else 0.0))


def _temperature(content: MapContent) -> tuple[float | None, str | None]:
    """The temperature that sets the map's kT: the model's own sampling temperature (the
    map's exploration T) where it is positive, else 1, the temperature of ``p ~ exp(-U)``
    itself (barriers then in nats). Not attraction-diffusion's: that one is chosen from each
    map's own barriers, so every map's barriers would look alike in its units."""
    t = map_temperature(content)
    if t is not None and math.isfinite(t) and t > 0:
        return t, "sampling"
    return 1.0, "p ~ exp(-U)"


def unscaled_barriers(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None, names: Sequence[str]) -> list[str]:
    """The names of the sides whose barriers do not compare with the other side's, from two
    :func:`map_profile` results: a model that samples at T = 0 has barriers in units of U
    itself (its "kT" at T = 1), which has no scale of its own (c U is the same model's
    landscape c times as high). Empty where both sample at a positive T, where both maps
    are of one model (the same recorded sha256: one U), or where a side has no map. The
    rule of the T = 0 line of :func:`caveats`, which :func:`summarize` and the figure
    follow: they do not rank, or set on one kT axis, what that line says does not compare."""
    if a is None or b is None:
        return []
    if a.get("sha256") is not None and a.get("sha256") == b.get("sha256"):
        return []
    return [name for name, p in zip(names, (a, b)) if p["temperature_from"] != "sampling"]


def _barriers(content: MapContent, temperature: float | None) -> dict[str, Any]:
    """The barriers between the main level's basins: the merges of the tree over them
    (flat merges, with no barrier the energy's precision resolves, are counted apart)."""
    tree = basin_tree_of(content)
    flat = tree.flat()
    merges = tree_merges(content, tree)
    found = sorted((max(0.0, float(m.relative)), bool(m.refined)) for m in merges
                   if m.connected and not flat[m.row] and math.isfinite(m.relative))
    heights = [h for h, _ in found]
    kt = [h / temperature for h in heights] if temperature is not None else None
    return {
        "count": len(heights),
        "flat": int(flat.sum()),
        "disconnected": sum(1 for m in merges if not m.connected),
        "heights": heights,
        "heights_kT": kt,
        # Which heights are at refined saddles (the others straight from the estimates: a
        # map's later minima, a funnel probe's, can join the tree with no string run).
        "at_refined": [r for _, r in found],
        "refined": sum(1 for _, r in found if r),
        "median": float(np.median(heights)) if heights else None,
        "max": max(heights) if heights else None,
        "median_kT": float(np.median(kt)) if kt else None,
        "max_kT": max(kt) if kt else None,
    }


def _funnel(content: MapContent) -> dict[str, Any] | None:
    f = content.funnel
    if f is None:
        return None
    ref = attr_number(f.attrs.get("reference_entropy"))
    verdict = funnel_verdict(f)
    return {
        "score": defined_score(f),
        "verdict": verdict,
        "funnel": is_funnel(verdict),
        "threshold": funnel_threshold(f),
        "noise": [float(t) for t in np.asarray(f.noise, dtype=np.float64)],
        "effective_basins": [float(math.exp(h)) for h in np.asarray(f.entropy, dtype=np.float64)],
        "reference_basins": math.exp(ref) if ref is not None else None,
        "chains": funnel_chains(f),  # per level: exp(H) is at most this (None: not recorded)
    }


def _diagnosis(content: MapContent) -> dict[str, Any] | None:
    d = content.diagnosis
    if d is None:
        return None
    spurious = np.asarray(d.spurious, dtype=bool)
    hits = np.asarray(content.minima_hits, dtype=np.float64)
    n = spurious.size
    total = float(hits.sum())
    reasons = None
    if d.reasons is not None:
        bits = np.asarray(d.reasons, dtype=np.int64)
        reasons = {name: int(((bits & flag) != 0).sum()) for flag, name in REASONS.items()}
    return {
        "spurious": int(spurious.sum()),
        "share_minima": float(spurious.mean()) if n else None,
        # Weighted by the chains that ended in each minimum: how much of the model's
        # sampled mass sits in spurious states, not just how many there are.
        "share_hits": float(hits[spurious].sum() / total) if total > 0 else None,
        "reasons": reasons,
        "dataset": d.attrs.get("dataset") or None,
        # (points: saturation is not tested)
        "saturation_tested": np.ndim(content.minima_x) - 1 in (2, 3) or bool(reasons and reasons["saturated"]),
    }


def map_profile(content: MapContent) -> dict[str, Any]:
    """The comparable numbers of one map (see the module docstring).

    Parameters
    ----------
    content : MapContent
        A map, as :func:`landscape.io.mapfile.read_map` returns it.

    Returns
    -------
    dict
        Plain data (NaN-free except where noted; pass through :func:`json_safe` for JSON):

        - ``source`` (str, :func:`landscape.io.views.describe_source`), ``sha256`` (of
          the model file the map records; None where it records none), ``dataset``,
          ``kind`` ("image", "2d", "vector" or None), ``shape``;
        - ``n_minima``, ``n_basins`` (main level), ``alpha`` (main level), ``alpha_unit``;
        - ``levels``: list of ``(multiplier, alpha, basins)``, ascending multiplier; a
          level's multiplier is its own, else ``alpha / alpha_unit`` (None if neither is
          known);
        - ``temperature`` and ``temperature_from`` ("sampling": the map's exploration
          temperature; "p ~ exp(-U)": 1, where the map explored at temperature 0): the T
          of kT;
        - ``barriers``: ``count`` (connected merges with a barrier), ``flat`` (merges with
          none the energy's precision resolves: left out of the heights), ``disconnected``,
          ``heights``
          (relative barrier heights of the merges of the tree over the main level's basins,
          ascending, as the tree takes them: refined saddles where taken, else estimates),
          ``heights_kT`` (divided by T), ``at_refined`` (per height: True where it is at a
          refined saddle, False where an estimate), ``refined`` (how many are),
          ``median``, ``max``, ``median_kT``, ``max_kT`` (None when empty);
        - ``funnel``: None without a funnel probe, else ``score`` (None if undefined),
          ``verdict`` (:func:`landscape.io.views.funnel_verdict`: "a funnel", "no funnel",
          "too few chains to tell" or "score undefined"), ``funnel`` (True, False, or None
          where the probe cannot tell), ``noise``, ``effective_basins``
          (``exp(H)`` per noise level), ``reference_basins`` (the data's, if recorded),
          ``chains`` (per noise level: ``exp(H)`` is at most this; None if not recorded);
        - ``diagnosis``: None without one, else ``spurious`` (count), ``share_minima``,
          ``share_hits`` (weighted by the chains that ended in each minimum; None with no
          hits), ``reasons`` (count per reason name, None when not recorded), ``dataset``
          (the data it was diagnosed against, None when not recorded),
          ``saturation_tested`` (False for points, whose saturation is not tested).

    Raises
    ------
    LandscapeError
        If the map has no basins.

    Examples
    --------
    >>> p = map_profile(read_map("rings.h5"))            # doctest: +SKIP
    >>> p["levels"], p["barriers"]["median_kT"]          # doctest: +SKIP
    ([(1.0, 0.42, 12), (3.0, 1.26, 5), (10.0, 4.2, 1)], 3.1)

    Cost: one pass over the tree's merges, O(B * (E + B)).
    """
    try:
        kind: str | None = minima_kind(content)
    except LandscapeError:
        kind = None  # a shape no picture draws: the numbers still compare
    temperature, t_from = _temperature(content)
    unit = attr_number(content.attrs.get("levels", {}).get("alpha_unit"))
    return {
        "source": describe_source(content),
        "sha256": recorded_sha256(content),
        "dataset": map_dataset(content),
        "kind": kind,
        "shape": [int(s) for s in np.shape(content.minima_x)[1:]],
        "n_minima": content.n_minima,
        "n_basins": content.n_basins,
        "alpha": map_alpha(content),
        "alpha_unit": unit,
        "levels": _levels(content),
        "temperature": temperature,
        "temperature_from": t_from,
        "barriers": _barriers(content, temperature),
        "funnel": _funnel(content),
        "diagnosis": _diagnosis(content),
    }


# ------------------------------------------------------------------------------- rows


def _g(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}g}"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _multipliers(*profiles: Mapping[str, Any] | None) -> list[float]:
    """The known multipliers of the profiles' ladders, merged within rounding, ascending."""
    found = sorted(m for p in profiles if p for m, _, _ in p["levels"] if m is not None)
    out: list[float] = []
    for m in found:
        if not out or not math.isclose(m, out[-1], rel_tol=_SAME_MULTIPLIER):
            out.append(m)
    return out


def _basins_at(profile: Mapping[str, Any], m: float) -> int | None:
    for mult, _, basins in profile["levels"]:
        if mult is not None and math.isclose(mult, m, rel_tol=_SAME_MULTIPLIER):
            return int(basins)
    return None


def _funnel_cell(p: Mapping[str, Any]) -> str:
    f = p["funnel"]
    if f is None:
        return "no funnel probe"
    if f["score"] is None:
        return "undefined (about one basin at the lowest noise)"
    verdict = _verdict(f)
    if verdict == TOO_FEW_CHAINS:  # (its score says nothing: not one the table ranks)
        return f"{verdict} (every chain in a basin of its own; score {f['score']:.2f})"
    chains = f.get("chains")  # (how much the verdict rests on: a probe of 4 chains a level says "no funnel" too)
    return f"{f['score']:.2f} ({verdict}{f'; {chains} chains a level' if chains else ''})"


def _verdict(f: Mapping[str, Any]) -> str:
    """A profile's funnel verdict (profiles made before it was recorded: from ``funnel``)."""
    return f.get("verdict") or ("a funnel" if f.get("funnel") else "no funnel")


def _temperature_cell(p: Mapping[str, Any]) -> str:
    """The temperature of a side's kT, and where it comes from."""
    if p["temperature_from"] == "sampling":
        return f"{_g(p['temperature'])} (the model's sampling T)"
    return "1 (no sampling T: U in nats)"


#: What a side with one basin at the main level shows for its barriers (the spectrum is
#: between basins: the tree's barriers inside the one basin are not in it).
NO_BARRIERS = "none between basins"


def _kt_cell(p: Mapping[str, Any], key: str) -> str:
    b = p["barriers"]
    if not b["count"]:
        return NO_BARRIERS
    return _g(b[f"{key}_kT"])


def _refined_cell(p: Mapping[str, Any]) -> str:
    """How many of a side's barriers are at refined saddles, the others estimates, and the
    median (kT) of each kind where there are both."""
    b = p["barriers"]
    n, r = b["count"], b.get("refined")
    if not n:
        return NO_BARRIERS
    if r is None:
        return "not recorded"
    if r == n:
        return f"all {n}"
    if r == 0:
        return f"none of {n} (all estimates)"
    kt, at = b["heights_kT"], b["at_refined"]
    refined = [h for h, ok in zip(kt, at) if ok]
    estimates = [h for h, ok in zip(kt, at) if not ok]
    return (f"{r} of {n} (median {_g(float(np.median(refined)))} kT); the other {n - r} "
            f"estimate{'s' if n - r != 1 else ''} (median {_g(float(np.median(estimates)))} kT)")


def _reason_cell(p: Mapping[str, Any], name: str) -> str:
    d = p["diagnosis"]
    if d is None:
        return "no diagnosis"
    if d["reasons"] is None:
        return "not recorded"
    if name == "saturated" and not d.get("saturation_tested", True):
        return "not tested (not images)"
    count = d["reasons"][name]
    return f"{count} ({_pct(count / p['n_minima'])})" if p["n_minima"] else str(count)


def compare_profiles(
    a: Mapping[str, Any] | None,
    b: Mapping[str, Any] | None,
    missing: tuple[str, str] = ("no map", "no map"),
) -> list[tuple[str, str, str]]:
    """Two profiles as table rows ``(label, value_a, value_b)``, values as text.

    Rows: minima; top-level basins; basins at each magnetization multiplier either map
    has ("-" where the other has no such level); barrier heights in kT (median, max),
    their count and how many of them are at refined saddles (the others estimates, each
    kind's median where there are both); funnel score; spurious share (of the minima; of
    the chains) and the count per reason.

    Parameters
    ----------
    a, b : dict or None
        :func:`map_profile` results; None for a side without a map, whose cells all read
        the matching entry of ``missing``.
    missing : (str, str)
        The text of the cells of a side without a map.

    Returns
    -------
    list of (str, str, str)

    Examples
    --------
    >>> compare_profiles(map_profile(ca), map_profile(cb))[:2]    # doctest: +SKIP
    [('minima', '10', '12'), ('basins (main level)', '4', '9')]
    """
    sides = (a, b)

    def row(label: str, cell) -> tuple[str, str, str]:
        a_text, b_text = (missing[k] if p is None else cell(p) for k, p in enumerate(sides))
        return (label, a_text, b_text)

    rows = [
        row("minima", lambda p: str(p["n_minima"])),
        row("basins (main level)", lambda p: str(p["n_basins"])),
    ]
    for m in _multipliers(a, b):
        rows.append(row(f"basins at {m:g}x alpha unit", lambda p, m=m: _g(_basins_at(p, m), 12)))
    rows += [
        row("kT: T", _temperature_cell),
        row("barrier height median (kT)", lambda p: _kt_cell(p, "median")),
        row("barrier height max (kT)", lambda p: _kt_cell(p, "max")),
        row("barriers between main-level basins", lambda p: str(p["barriers"]["count"])
            + "".join(f" (+{p['barriers'][k]} {what})" for k, what in (("flat", "flat"), ("disconnected", "with no path"))
                      if p["barriers"].get(k))),
        row("of which at refined saddles", _refined_cell),
        row("funnel score", _funnel_cell),
        row("spurious share (minima; chains)", lambda p: "no diagnosis" if p["diagnosis"] is None else
            f"{_pct(p['diagnosis']['share_minima'])}; {_pct(p['diagnosis']['share_hits'])}"
            + (f" (against {p['diagnosis']['dataset']})" if p["diagnosis"].get("dataset") else "")),
    ]
    for name in REASONS.values():
        rows.append(row(f"spurious: {name}", lambda p, name=name: _reason_cell(p, name)))
    return rows


def identical_maps(path_a: str | Path, path_b: str | Path) -> bool:
    """Whether two map files hold the same datasets: the same paths, shapes, dtypes and
    values (NaN equal to NaN). Attributes (creation date, source path) are not compared: a
    copy of a map, or a map of a copied checkpoint made with the same seed, is identical.

    Cost: reads both files' datasets once, O(size of the maps).
    """
    import h5py

    def datasets(f: h5py.File) -> dict[str, h5py.Dataset]:
        found: dict[str, h5py.Dataset] = {}
        f.visititems(lambda name, node: found.__setitem__(name, node) if isinstance(node, h5py.Dataset) else None)
        return found

    with h5py.File(path_a, "r") as fa, h5py.File(path_b, "r") as fb:
        da, db = datasets(fa), datasets(fb)
        if set(da) != set(db):
            return False
        for name, x in da.items():
            y = db[name]
            if x.shape != y.shape or x.dtype != y.dtype:
                return False
            u, v = x[()], y[()]
            same = (np.array_equal(u, v, equal_nan=True) if np.issubdtype(x.dtype, np.inexact)
                    else np.array_equal(u, v))
            if not same:
                return False
    return True


def summarize(
    a: Mapping[str, Any] | None,
    b: Mapping[str, Any] | None,
    names: Sequence[str],
    verdicts: Sequence[str | None] = (None, None),
    *,
    identical: bool = False,
) -> list[str]:
    """At most three lines saying in plain words how the two models differ.

    With ``identical`` (:func:`identical_maps`) the first says the two maps are the same.
    The next (when both sides have a verdict of the long-run convergence check) says which
    the check calls convergent; the last compares the maps: basins at the same
    magnetization (else at the main level), median barriers in kT (not where one side's
    barriers are in units of U, :func:`unscaled_barriers`; saying how many are at refined
    saddles where some are estimates), funnel score (not where a probe had too few chains
    to tell) and spurious share, naming the side that has more.

    Parameters
    ----------
    a, b : dict or None
        :func:`map_profile` results (None: no map).
    names : (str, str)
    verdicts : (str or None, str or None)
        ``"convergent"`` / ``"non-convergent"`` per side, None where not checked.
    identical : bool
        The two maps hold the same datasets (said first; the maps are then not compared).

    Returns
    -------
    list of str
    """
    na, nb = names
    lines = []
    if identical and a is not None and b is not None:
        lines.append(f"The maps of {na} and {nb} are identical (the same datasets): the landscapes do not differ.")
    va, vb = verdicts
    if va and vb:
        if va == vb:
            lines.append(f"The long-run check calls both {va}.")
        else:
            lines.append(f"The long-run check calls {na} {va} and {nb} {vb}.")
    elif va or vb:
        name, v, other = (na, va, nb) if va else (nb, vb, na)
        lines.append(f"The long-run check calls {name} {v} ({other} was not checked).")
    if a is None or b is None:
        if a is None and b is None:
            lines.append("Neither has a map: nothing to compare in the landscapes.")
        else:
            lines.append(f"Only {na if a is not None else nb} has a map: the landscapes cannot be compared.")
        return lines
    if identical:
        return lines
    parts = [_basin_difference(a, b, na, nb)]
    ka, kb = a["barriers"]["median_kT"], b["barriers"]["median_kT"]
    cold = unscaled_barriers(a, b, names)
    if cold and ka is not None and kb is not None:  # (the Caution line says why; no ranking to undo it)
        parts.append(f"barrier medians not compared ({' and '.join(cold)} sample{'s' if len(cold) == 1 else ''} "
                     "at T = 0: barriers in units of U, not kT)")
    elif ka is not None and kb is not None and not math.isclose(ka, kb, rel_tol=0.05):
        ba, bb = (a["barriers"], b["barriers"]) if ka > kb else (b["barriers"], a["barriers"])
        hi = na if ka > kb else nb
        if ba.get("refined", ba["count"]) < ba["count"] or bb.get("refined", bb["count"]) < bb["count"]:
            # (estimates are not saddles: say how many of the medians' barriers are)
            what = (f"; {_refined_of(ba)} and {_refined_of(bb)} barrier{'s' if bb['count'] != 1 else ''} at refined "
                    "saddles, the others estimates")
        elif min(ba["count"], bb["count"]) < FEW_BARRIERS:
            what = f"; of {ba['count']} and {bb['count']} barrier{'s' if bb['count'] != 1 else ''}"
        else:
            what = ""
        parts.append(f"{hi} has the higher median barrier ({_g(max(ka, kb))} vs {_g(min(ka, kb))} kT{what})")
    fa, fb = a["funnel"], b["funnel"]
    unsure = [name for name, f in ((na, fa), (nb, fb)) if f and f["score"] is not None and _verdict(f) == TOO_FEW_CHAINS]
    if unsure:  # (a score of 0 from chains that never met is no score to rank)
        parts.append("neither funnel probe had chains enough to tell a funnel" if len(unsure) == 2 else
                     f"{unsure[0]}'s funnel probe had too few chains to tell a funnel (funnel scores not compared)")
    elif fa and fb and fa["score"] is not None and fb["score"] is not None:
        sa, sb = fa["score"], fb["score"]
        if fa["funnel"] is False and fb["funnel"] is False:  # (two scores under the bar: no ranking of noise)
            parts.append(f"neither is a funnel (scores {sa:.2f} and {sb:.2f})")
        elif abs(sa - sb) >= 0.005:
            hi = na if sa > sb else nb
            what = ""
            if fa["funnel"] != fb["funnel"]:
                what = f": {hi} is a funnel, {nb if hi == na else na} not"
            parts.append(f"{hi} has the higher funnel score ({max(sa, sb):.2f} vs {min(sa, sb):.2f}{what})")
        else:
            parts.append(f"equal funnel scores ({sa:.2f})")
    da, db = a["diagnosis"], b["diagnosis"]
    if da and db and da["share_minima"] is not None and db["share_minima"] is not None:
        sa, sb = da["share_minima"], db["share_minima"]
        if round(100 * sa) != round(100 * sb):
            hi = na if sa > sb else nb
            parts.append(f"{hi} has the larger spurious share ({_pct(max(sa, sb))} vs {_pct(min(sa, sb))} of minima)")
        else:
            parts.append(f"equal spurious shares ({_pct(sa)} of minima)")
    text = "; ".join(p for p in parts if p)
    if text:  # (a model's name stays as it is written, at the start of a sentence too)
        named = any(text.startswith(n) for n in (na, nb))
        lines.append((text if named else text[0].upper() + text[1:]) + ".")
    return lines


def _refined_of(b: Mapping[str, Any]) -> str:
    """``12 of 40``: a profile's barriers at refined saddles, of all."""
    return f"{b.get('refined', b['count'])} of {b['count']}"


def _settings_apart(ca: MapContent, cb: MapContent, skip: tuple[str, ...] = ()) -> list[str]:
    """The settings two maps were made with that differ (``name a vs b``; those at their
    defaults on one side and given on the other included)."""
    a, b = map_config(ca), map_config(cb)
    names = [k for k, _ in given_settings(a)] + [k for k, _ in given_settings(b)]
    out = []
    for key in dict.fromkeys(names):
        if key in skip or a.get(key) == b.get(key):
            continue
        out.append(f"{key} {setting_text(a.get(key, 'default'))} vs {setting_text(b.get(key, 'default'))}")
    return out


def caveats(ca: MapContent | None, cb: MapContent | None, names: Sequence[str], *,
            identical: bool = False) -> list[str]:
    """What a comparison of the two maps cannot tell, one line each (none for identical
    maps or a side without a map):

    - both maps are of one model (the same checkpoint sha256): what differs comes of their
      settings (listed) and their random draws, not of the model;
    - the maps were made with other settings (the seed left out for two models);
    - the models are of other data or shapes: their counts and barriers are not on one scale;
    - a model that samples at T = 0 has barriers in units of U itself, which has no scale
      of its own (c U is the same model's landscape c times as high);
    - a map whose exploration chains each found minima of their own holds a sample of the
      minima (:func:`landscape.io.views.exploration_coverage`; over the distinct states,
      :func:`~landscape.io.views.state_coverage`, where some minima drain flat into others):
      its minima and its basins at weak pulls count the chains more than the landscape."""
    if ca is None or cb is None or identical:
        return []
    na, nb = names
    lines = []
    sha = recorded_sha256(ca)
    same = sha is not None and sha == recorded_sha256(cb)
    if same:
        apart = _settings_apart(ca, cb)
        ua, ub = (attr_number(c.attrs.get("levels", {}).get("alpha_unit")) for c in (ca, cb))
        if ua is not None and ub is not None and not math.isclose(ua, ub, rel_tol=1e-6):
            apart.append(f"alpha unit {_g(ua)} vs {_g(ub)}, chosen by each map")
        lines.append(f"Both maps are of one model (checkpoint sha256 {sha[:12]}): what differs comes of the maps' "
                     + (f"settings ({'; '.join(apart)}) and their random draws" if apart else "random draws")
                     + ", not of the model.")
    else:
        apart = _settings_apart(ca, cb, skip=("seed",))
        if apart:
            lines.append(f"The maps were made with other settings ({'; '.join(apart)}): counts that follow them (minima "
                         "follow the chains; basins the ladder and alpha) differ for that alone.")
        da, db = map_dataset(ca), map_dataset(cb)
        sa, sb = (tuple(np.shape(c.minima_x)[1:]) for c in (ca, cb))
        if (da and db and da != db) or sa != sb:
            what = f"data {da} vs {db}" if da and db and da != db else ""
            if sa != sb:
                what += ("; " if what else "") + f"shapes {sa} vs {sb}"
            lines.append(f"The models are of other data ({what}): their counts and barriers are not on one scale.")
        cold = unscaled_barriers(*({"sha256": recorded_sha256(c), "temperature_from": _temperature(c)[1]}
                                   for c in (ca, cb)), names)
        if cold:
            who = " and ".join(cold)
            lines.append(f"{who} sample{'s' if len(cold) == 1 else ''} at T = 0: {'its' if len(cold) == 1 else 'their'} "
                         "barriers are in units of U itself (kT at T = 1), which has no scale of its own: barrier "
                         "heights do not compare across the two models.")
    # (over the distinct states where some minima drain flat into others: points along a
    # plateau, which any number of chains leaves more of, are no sample of the landscape)
    sampled = [(name, cov) for name, cov in ((na, _explored(ca)), (nb, _explored(cb)))
               if cov is not None and cov.unseen >= SAMPLED]
    if sampled:
        each = "; ".join(f"{name}: {cov.once} of {cov.chains}" for name, cov in sampled)
        whose = f"{sampled[0][0]}'s" if len(sampled) == 1 else "Both maps'"
        its = "its" if len(sampled) == 1 else "their"
        lines.append(f"{whose} minima are a sample of the minima: a tenth or more of the exploration chains each "
                     f"found one no other chain did ({each}); {its} minima, and {its} basins at pulls where every "
                     f"minimum is still a basin of its own, count {its} chains more than {its} "
                     f"landscape{'s' if len(sampled) > 1 else ''}.")
    return lines


def _explored(content: MapContent) -> Coverage | None:
    """How completely a map's exploration found its distinct states
    (:func:`landscape.io.views.state_coverage`), or its minima where none drains flat."""
    return state_coverage(content) or exploration_coverage(content)


def _basin_difference(a: Mapping[str, Any], b: Mapping[str, Any], na: str, nb: str) -> str:
    shared = [m for m in _multipliers(a, b) if _basins_at(a, m) is not None and _basins_at(b, m) is not None]
    if shared:
        diffs = [(m, _basins_at(a, m), _basins_at(b, m)) for m in shared]
        signs = {int(np.sign(x - y)) for _, x, y in diffs}
        m, x, y = max(diffs, key=lambda d: (abs(d[1] - d[2]), d[0]))
        if signs == {0}:
            return f"the same number of basins at every shared magnetization ({x} at {m:g}x the alpha unit)"
        if len(signs - {0}) == 1:
            more = na if signs - {0} == {1} else nb
            where = ("at every shared magnetization" if 0 not in signs
                     else "wherever the counts differ at the same magnetization")
            return f"{more} has more basins {where} ({max(x, y)} vs {min(x, y)} at {m:g}x the alpha unit)"
        return (f"the basin counts cross over the shared magnetizations "
                f"(e.g. {na} {x} vs {nb} {y} at {m:g}x the alpha unit)")
    x, y = a["n_basins"], b["n_basins"]
    if x == y:
        return f"the same number of top-level basins ({x}; no shared magnetization)"
    more = na if x > y else nb
    return f"{more} has more top-level basins ({max(x, y)} vs {min(x, y)}; no shared magnetization)"


# ----------------------------------------------------------------------------- figure


def plot_comparison(*args: Any, **kwargs: Any) -> Path:
    """The comparison figure: moved to :func:`landscape.plots.compare.plot_comparison`
    (this name forwards to it for one release)."""
    from landscape.plots.compare import plot_comparison as plot

    return plot(*args, **kwargs)
