"""The Anatomy paper's convergence verdict, automated: is a trained EBM convergent?

Nijkamp et al. 2019 ("On the Anatomy of MCMC-based ML Learning of EBMs") sort ML learning
along a second axis, MCMC convergence: "convergent ML" is learning whose short-run samples
``s_t`` approximate the model ``p_theta`` itself, so the model's steady state is realistic.
Their test (§3.3, §4.2-4.3): run the sampler for many times the training L. Chains of a
model learned with non-convergent ML then reach energies far below the data's and stop
looking like data (for images, pixels piled at the ends of the range); chains of a
convergent model stay in the data's energy spectrum and keep looking like data.

:func:`check_energy` runs that test on any :class:`~landscape.Energy` and a data tensor:
chains from data (and from uniform noise) for a ladder of lengths in units of the training
L, recording at each length the chains' mean energy, their mean distance to the nearest
training example and, for images, the share of saturated pixels, next to the same
quantities of the data themselves (the yardsticks), and how well the chains cover the data
(the data's distance to the nearest chain, against their distance to as many other
examples: chains gathered in part of the data, a collapse onto a few modes, are close to
the data yet far from most of it), and how the chains spread over the data's classes (or,
without labels, clusters of the data), labelled by their nearest training example, against
the data's own mix: in many dimensions the distances concentrate, so chains that drain into
a few classes can stay close to the data and cover it by distance, yet leave most classes
empty. :func:`decide` turns the numbers at the longest length
into a verdict by a fixed rule (see :class:`Thresholds`); where the chains from data are
still moving away at that length, they run on (x3 at a time, up to ``extend`` times it)
until they settle or meet a criterion, so a chain length in units of L that is short for
the model's steps (a small eps, tau = 0) does not pass it as convergent; and
:func:`convergence_check` does it all for a checkpoint and says whether the verdict agrees
with the regime the checkpoint was trained for. :func:`save_check_figure` draws the
quantities against chain length.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape import data as datasets
from landscape import Energy, sample
from landscape.train.config import CHECK_CHAINS as DEFAULT_CHAINS, CHECK_MULTIPLES as DEFAULT_MULTIPLES
from landscape.errors import LandscapeError, NonFiniteEnergyError
from landscape.io.files import json_safe
from landscape.mapping.neighbors import nearest, nearest_distance, spacing as data_spacing
from landscape.plots.common import START_NAMES, new_figure, save_figure, wrap
from landscape.train.checkpoint import data_limit, energy_from_checkpoint, regime_note
from landscape.train.sampling import ChainReport, _saturation, save_chain_figure

__all__ = [
    "DEFAULT_CHAINS",
    "DEFAULT_MULTIPLES",
    "CheckResult",
    "DataYardstick",
    "Stage",
    "Thresholds",
    "agreement",
    "check_energy",
    "convergence_check",
    "decide",
    "save_check_figure",
    "save_check_samples",
]

INITS = ("data", "noise")
#: Data points whose distance to the nearest example that differs sets the spacing yardstick.
SPACING_SAMPLE = 1000
#: Data points whose energies set the energy yardstick.
ENERGY_SAMPLE = 2000
#: Draws of as many training examples as chains whose distance to the data sets the
#: coverage yardstick (averaged).
COVERAGE_DRAWS = 3
#: Fewest examples left out of as many as chains for the coverage criterion: with fewer
#: (a data set hardly larger than the chains) it is not measured; one example's distance
#: decided it (an exact model at 8.95x).
COVERAGE_MIN = 20
#: Random draws of as many training examples as chains (with replacement) whose mix of
#: classes sets the mix yardstick: the distance from the data's mix that MIX_QUANTILE of
#: them stay within.
MIX_DRAWS = 2000
MIX_QUANTILE = 0.99
#: Clusters of the data (k-means) that stand for its modes in the mix criterion where the
#: data carry no labels (at most one per ten examples).
MIX_CLUSTERS = 10
#: Lloyd rounds of the k-means that makes those clusters (from k-means++ starts).
MIX_KMEANS_ROUNDS = 25
#: How far past the longest length asked for the chains from data run on while still
#: moving (x3 at a time): 10, up to 300 L after the default 30 L.
DEFAULT_EXTEND = 10.0
#: Each further length, times the last, while the chains from data run on.
EXTEND_FACTOR = 3.0
_ENERGY_BATCH = 500


@dataclass(frozen=True)
class Thresholds:
    """The verdict rule: any criterion met by the chains from data at the longest length
    makes the model non-convergent; none met, convergent.

    Attributes
    ----------
    nn_ratio : float
        Non-convergent if the chains' mean distance to their nearest training example
        exceeds ``nn_ratio`` times the data's own spacing (the median distance of a training
        example to the nearest one that differs). Default 3: samples of a
        convergent model's steady state are as close to the training set as fresh data are,
        up to the Langevin noise they carry (1.6-1.7x on the demo rings and digits models after 30 L), while
        the drifting chains of non-convergent models leave the data by tens of spacings.
    saturation_excess : float
        Images only. Non-convergent if the chains saturate more than this share of the
        pixels that are *not* saturated in the data: ``(s - s_data) / (1 - s_data)``, with
        ``s`` the share of pixels within 2 % of the data range's width of either end or
        beyond it. Measured against the data because some data sets are largely saturated
        themselves (the digits' background: 58 % of their pixels). Default 0.5: the
        Anatomy paper's non-convergent long-run samples are over-saturated (most pixels
        at the range ends), whereas a convergent model's stay at the data's level.
    energy_drift : float
        Non-convergent if the chains' mean energy falls more than this many standard
        deviations of the data's energies below the data's mean energy. Default 3: the
        Anatomy paper's signature of non-convergent ML is long-run samples "with
        significantly lower energy" than the data; a convergent model's steady state lies
        in the data's energy spectrum (within about one standard deviation on the demo
        model after 30 L). Only a fall counts: that is the paper's criterion.
    coverage_ratio : float
        Non-convergent if the training examples' median distance to the nearest chain
        exceeds this multiple of their median distance to the nearest of as many other
        training examples. Default 3: chains spread over the data as the data are sit at
        1.1-1.7 (the demo rings and digits models after 30 L); a toy model whose chains
        all gathered on one stretch of one ring, each chain 0.8 spacings from the data,
        at 7.2; the drifting non-convergent digits model at 42.
    mix_ratio : float
        Non-convergent if the chains' mix of the data's classes (each chain counted in the
        class of its nearest training example; without labels, one of ``MIX_CLUSTERS``
        k-means clusters of the data) is more than this multiple as far from the data's mix
        (total variation) as 99 % of random draws of as many training examples (with
        replacement) are; the data's mix is that of held-out examples labelled the same way,
        by their nearest other example (in many dimensions the nearest example favours the
        classes whose examples lie closer together, for the data's own samples too).
        Default 2: random draws pass it less than once in 10^5 (two to 50 classes,
        balanced or 95/5, 20 or 100 chains; 400,000 draws each). The demo rings model's
        chains stay at 0.6-1.3x up to 90 L (ten clusters); the CPU digits-convergent
        model's chains drain into a few classes: 0.95x at 10 L, 2.4x at 30 L (31 of 100
        chains nearest a 9); trained four times as long, 0.67x at 10 L, 1.7x at 30 L and
        3.1x at 90 L (37 nearest a 4). Distance alone misses this in 64 dimensions: those
        chains sit 1.5-1.7 spacings from the data, the data 1.3-1.7x as far from them as
        from as many examples.
    settle : float
        The chains from data are still moving where their distance to the data grows by
        more than this factor per tripling of the chain length between the last two
        lengths, or where their mix ratio, past half its bar (past chance at the default),
        grows so; then they run on
        (``extend`` in :func:`check_energy`). Default 1.25: the demo models grow
        1.14-1.16x from 10 L to 30 L; models the paper expects not to converge (tau = 0, a
        third of the step, chains started from data in training), trained as the
        convergent digits preset, 1.4-2.6x there, and past 3 spacings by 100 L.
    """

    nn_ratio: float = 3.0
    saturation_excess: float = 0.5
    energy_drift: float = 3.0
    coverage_ratio: float = 3.0
    settle: float = 1.25
    mix_ratio: float = 2.0

    def __post_init__(self) -> None:
        if not (isinstance(self.settle, (int, float)) and math.isfinite(self.settle) and self.settle >= 1):
            raise LandscapeError(f"threshold settle must be a finite number >= 1, got {self.settle!r}")
        for name in ("nn_ratio", "saturation_excess", "energy_drift", "coverage_ratio", "mix_ratio"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise LandscapeError(f"threshold {name} must be a finite number > 0, got {value!r}")
        if not self.saturation_excess < 1:
            raise LandscapeError(f"threshold saturation_excess must be below 1 (no chain saturates more than all "
                                 f"the pixels the data leave free), got {self.saturation_excess!r}")


@dataclass
class DataYardstick:
    """The data's own numbers, against which the chains are measured."""

    n: int  # training examples compared with
    energy_mean: float
    energy_std: float
    spacing: float  # median nearest-neighbour distance (to the nearest example that differs)
    saturation: float | None  # share of saturated pixels (images only)
    # the examples' median distance to the nearest of as many other examples as chains
    # (the coverage yardstick; NaN where it was not measured)
    coverage: float = math.nan
    # the total variation from the data's mix of modes that 99 % of random draws of as many
    # examples as chains stay within (the mix yardstick), and what the modes are ("10
    # classes", "10 clusters"; empty where not measured)
    mix: float = math.nan
    modes: str = ""
    # the largest mix ratio chains can show (all of them in the mode held-out examples are
    # least often in): below the bar, the mix cannot make a verdict
    mix_reach: float = math.nan


@dataclass
class Stage:
    """Where a batch of chains is after ``steps`` Langevin steps (``multiple`` x L).

    ``finite`` is False when some chain reached a non-finite energy or gradient before
    this length; the other numbers are then NaN.
    """

    multiple: float
    steps: int
    energy: float  # mean energy of the chains
    energy_drift: float  # (data mean - chains' mean) / data std: > 0 is below the data
    nn_mean: float  # mean distance to the nearest training example
    nn_ratio: float  # nn_mean / the data's spacing
    saturation: float | None
    saturation_excess: float | None  # (s - s_data) / (1 - s_data)
    finite: bool = True
    coverage: float = math.nan  # the examples' median distance to the nearest chain
    coverage_ratio: float = math.nan  # coverage / the data's coverage yardstick
    mix: float = math.nan  # total variation between the chains' mix of modes and the data's
    mix_ratio: float = math.nan  # mix / the data's mix yardstick
    mix_top: str = ""  # the mode the chains over-represent most ("class 9")
    mix_top_share: float = math.nan  # its share of the chains
    mix_top_data: float = math.nan  # its share of held-out examples labelled as the chains are


@dataclass
class CheckResult:
    """What :func:`check_energy` found and concluded.

    ``stages`` maps each start ("data", "noise") to its records, shortest length first.
    ``reasons`` lists the criteria met (empty for a convergent verdict); ``explanation`` is
    one clause with the evidence; ``onset`` the shortest length at which the chains from
    data already met a criterion. ``samples`` holds the start and end of each start's
    chains (the last finite state), for pictures. ``extended``: the lengths the chains from
    data ran on to past those asked for, while still moving (empty where they settled);
    ``settled``: False where they were still moving at the longest length run (the verdict
    then says so). ``noise_start_ratio``: the chains from noise at their start, in the
    data's spacings.
    """

    verdict: str  # "convergent" | "non-convergent"
    reasons: list[str]
    explanation: str
    onset: float | None
    noise_summary: str | None
    stages: dict[str, list[Stage]]
    data: DataYardstick
    thresholds: Thresholds
    L: int
    epsilon: float
    tau: float
    n_chains: int
    seed: int
    seconds: float
    regime: str = "unknown"
    agreement: str = "regime unknown"
    source: str = ""
    samples: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = field(default_factory=dict, repr=False)
    extended: list[float] = field(default_factory=list)
    settled: bool = True
    regime_note: str = ""  # where the regime is a preset's label for settings since changed
    noise_start_ratio: float | None = None

    def verdict_line(self) -> str:
        """``verdict: <verdict> (<evidence>); trained as <regime>: <agrees|disagrees>``."""
        line = f"verdict: {self.verdict} ({self.explanation})"
        if self.agreement == "regime unknown":
            return line + "; regime unknown"
        return line + f"; trained as {self.regime}{self.regime_note}: {self.agreement}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (JSON-ready: non-finite numbers become None)."""
        out = {
            "source": self.source,
            "verdict": self.verdict,
            "regime": self.regime,
            "regime_note": self.regime_note,
            "agreement": self.agreement,
            "explanation": self.explanation,
            "reasons": list(self.reasons),
            "onset_multiple": self.onset,
            "extended": list(self.extended),
            "settled": self.settled,
            "noise_summary": self.noise_summary,
            "noise_start_ratio": self.noise_start_ratio,
            "thresholds": asdict(self.thresholds),
            "sampler": {"L": self.L, "epsilon": self.epsilon, "tau": self.tau},
            "n_chains": self.n_chains,
            "seed": self.seed,
            "seconds": self.seconds,
            "data": asdict(self.data),
            "stages": {k: [asdict(s) for s in v] for k, v in self.stages.items()},
        }
        return json_safe(out)


# --------------------------------------------------------------------------------------
# the rule


#: A verdict whose measures all lie within this factor of their bars (below them for a
#: convergent one, the criteria it meets above them for a non-convergent one) says so: the
#: chains' own spread can carry it across (a model 2.8x the data's spacing from the data
#: against the bar of 3 was called convergent at one seed, non-convergent at two others).
CLOSE_TO_BAR = 1.15


def _measures(stage: Stage, thresholds: Thresholds) -> list[tuple[str, float, float, str]]:
    """(name, value, bar, unit) of each measure of ``stage`` the rule holds against a bar of
    :class:`Thresholds` (a value above its bar meets that criterion; NaN, not measured,
    never does); the unit is what the value is said in, after it; the saturation's only
    where the data are images."""
    measures = [("NN distance", stage.nn_ratio, thresholds.nn_ratio, "x the data's spacing"),
                ("energy", stage.energy_drift, thresholds.energy_drift, " sd below the data's"),
                ("coverage", stage.coverage_ratio, thresholds.coverage_ratio, "x"),
                ("mix", stage.mix_ratio, thresholds.mix_ratio, "x")]
    if stage.saturation_excess is not None:
        measures.append(("saturation excess", stage.saturation_excess, thresholds.saturation_excess, ""))
    return measures


def close_to_bar(stage: Stage, thresholds: Thresholds) -> str | None:
    """Where the verdict on ``stage`` rests on measures close to their bars (within
    :data:`CLOSE_TO_BAR`), those measures against their bars in words; else None."""
    if not stage.finite:
        return None
    measures = [m for m in _measures(stage, thresholds) if math.isfinite(m[1]) and m[2] > 0]
    met = [m for m in measures if m[1] > m[2]]
    if met:  # non-convergent: close only where every criterion it meets is barely met
        close = met if all(v <= bar * CLOSE_TO_BAR for _, v, bar, _ in met) else []
    else:
        close = [m for m in measures if m[1] * CLOSE_TO_BAR >= m[2]]
    if not close:
        return None
    return ", ".join(f"{name} {_g(v)}{unit} against the bar of {_g(bar)}" for name, v, bar, unit in close)


def decide(stage: Stage, thresholds: Thresholds = Thresholds(), data: DataYardstick | None = None) -> list[str]:
    """The criteria of :class:`Thresholds` that ``stage`` meets, each as evidence text.

    An empty list means the stage looks convergent. Non-finite chains always count.
    ``data``, if given, adds the data's saturation to the evidence.

    Example
    -------
    >>> s = Stage(30, 1200, -31.5, 267.0, 133.0, 66.0, 0.98, 0.96)
    >>> decide(s)[0]
    "NN distance 133 = 66x the data's spacing"
    """
    if not stage.finite:
        return [f"chains reached non-finite energies within {_x(stage.multiple)}"]
    met = {name for name, value, bar, _ in _measures(stage, thresholds) if value > bar}
    found = []
    if "NN distance" in met:
        found.append(f"NN distance {_g(stage.nn_mean)} = {_g(stage.nn_ratio, thresholds.nn_ratio)}x the data's spacing")
    if "saturation excess" in met:
        found.append(f"{_pct(stage.saturation)} pixels saturated" + _vs_data(data))
    if "energy" in met:
        found.append(f"energy {_g(stage.energy_drift, thresholds.energy_drift)} sd below the data's")
    if "coverage" in met:
        found.append(f"the data {_g(stage.coverage_ratio, thresholds.coverage_ratio)}x as far from the chains as "
                     "from as many other examples (the chains cover part of the data)")
    if "mix" in met:
        modes = data.modes if data is not None and data.modes else "modes"
        found.append(f"the chains' mix of the data's {modes} {_g(stage.mix_ratio, thresholds.mix_ratio)}x as far "
                     f"from the data's as 99% of random draws of as many examples ({stage.mix_top}: {_pct(stage.mix_top_share)} "
                     f"of the chains, {_pct(stage.mix_top_data)} of held-out data)")
    return found


def growth(track: Sequence[Stage], quantity: str = "nn_mean") -> float | None:
    """How fast the chains' distance to the data (or another ``quantity`` of
    :class:`Stage`: ``"mix_ratio"``) still grows at the end of ``track``: its factor per
    tripling of the chain length between the last two finite lengths (None with fewer than
    two, or a value of 0 or not measured)."""
    finite = [s for s in track if s.finite]
    if len(finite) < 2:
        return None
    a, b = finite[-2], finite[-1]
    va, vb = getattr(a, quantity), getattr(b, quantity)
    if not (va > 0 and vb > 0 and b.multiple > a.multiple):
        return None
    return float((vb / va) ** (math.log(3.0) / math.log(b.multiple / a.multiple)))


def agreement(verdict: str, regime: str) -> str:
    """``"agrees"`` / ``"disagrees"`` with the trained regime, or ``"regime unknown"``."""
    if regime not in ("convergent", "non-convergent"):
        return "regime unknown"
    return "agrees" if verdict == regime else "disagrees"


def _x(multiple: float) -> str:
    return f"{multiple:g}L"


#: Beyond these magnitudes :func:`_g` writes scientific notation (a chain blown up to
#: 1.4e+31 is not 32 digits of which two mean anything).
_PLAIN = (1e-3, 1e5)


def _g(v: float, bar: float | None = None) -> str:
    """``v`` to two figures, or more where two would read as the ``bar`` it is tested
    against (3.05 over a bar of 3 is not "3"); whole numbers from 10 up to 10^5, scientific
    notation beyond (``1.4e+31``) and below 10^-3."""
    if not math.isfinite(v):
        return str(v)
    small, large = _PLAIN
    plain = v == 0 or small <= abs(v) < large
    text = f"{v:.2g}" if not plain or abs(v) < 10 else f"{v:.0f}"
    if bar is not None and v != bar and float(text) == bar:
        text = f"{v:.3g}" if not plain or abs(v) < 10 else f"{v:.1f}"
    return text


def _pct(v: float | None) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{100 * v:.0f}%"


def _vs_data(data: DataYardstick | None) -> str:
    return "" if data is None or data.saturation is None else f" vs {_pct(data.saturation)} in the data"


def _one_mode(data: DataYardstick) -> str:
    """What one of the data's modes is called: "class", "cluster" (or "mode")."""
    return {"classes": "class", "clusters": "cluster"}.get(data.modes.split(" ", 1)[-1], "mode")


def _explain(last: Stage, reasons: list[str], data: DataYardstick, onset: float | None,
             asked: float | None = None, still: tuple[str, float] | None = None, why: str = "distance",
             mix_bar: float | None = None, n_chains: int | None = None) -> str:
    """The verdict's evidence in one clause; ``asked``: the longest length asked for,
    where the chains ran on past it (still moving there), ``why``: what still moved
    then ("distance" or "mix"), ``still``: what, and its growth per tripling, where they
    were still moving at the last length (:func:`_still_moving`); ``mix_bar``: the mix
    criterion's bar, to say where the chains are too few to reach it, and on a convergent
    verdict the smallest drift it sees with ``n_chains`` chains (its bar times the data's
    mix yardstick: the share of the chains that must sit outside the data's mix)."""
    head = f"after {_x(last.multiple)} from data: "
    modes = f"the data's {data.modes if data is not None and data.modes else 'modes'}"
    drifting = ("the chains were still moving away from the data" if why == "distance"
                else f"the chains' mix of {modes} was still drifting from the data's")
    ran_on = f" (run on past {_x(asked)}, where {drifting})" if asked is not None else ""
    if not last.finite:
        return "from data: " + reasons[0] + ran_on
    if reasons:
        text = head + ", ".join(reasons)
        if onset is not None and onset < last.multiple:
            text += f"; first met at {_x(onset)}"
        return text + ran_on
    text = head + f"NN distance {_g(last.nn_mean)} = {_g(last.nn_ratio)}x the data's spacing"
    if last.saturation is not None:
        text += f", {_pct(last.saturation)} pixels saturated" + _vs_data(data)
    where = "below" if last.energy_drift >= 0 else "above"
    text += f", energy {_g(abs(last.energy_drift))} sd {where} the data's"
    if math.isfinite(last.coverage_ratio):
        text += f", the data {_g(last.coverage_ratio)}x as far from the chains as from as many examples"
    if math.isfinite(last.mix_ratio):
        text += f", their mix of {modes} {_g(last.mix_ratio)}x as far from the data's as 99% of random draws"
        if mix_bar is not None and n_chains and math.isfinite(data.mix) and data.mix > 0:
            text += (f" (with {n_chains} chains it flags only a mix where {_pct(min(1.0, mix_bar * data.mix))} of "
                     f"the chains or more would have to change {_one_mode(data)} to match the data's; more chains "
                     "see less)")
    text += "; all within the thresholds"
    if mix_bar is not None and data is not None and math.isfinite(data.mix_reach) and data.mix_reach <= mix_bar:
        text += (f" (the mix cannot reach its bar with this few chains: {_g(data.mix_reach)}x at most, all of "
                 f"them in one {_one_mode(data)}; more chains can)")
    if still is not None and still[0] == "distance":
        text += (f", but the chains were still moving away at {_x(last.multiple)} (distance x{still[1]:.2g} per "
                 "tripling of the length): longer chains may leave the data")
    elif still is not None:
        text += (f", but the chains' mix was still drifting at {_x(last.multiple)} (x{still[1]:.2g} per tripling of "
                 "the length): longer chains may drain into a few of the data's modes")
    return text + ran_on


def reach_bar(thresholds: Thresholds, start_ratio: float | None) -> float:
    """The distance to the data (in the data's spacings) within which chains from noise
    have reached it: ``nn_ratio``, and at most halfway from where the noise started (in
    64 dimensions uniform noise itself lies 3.5 spacings from the digits, within a bar
    of 3)."""
    bar = thresholds.nn_ratio
    if start_ratio is not None and math.isfinite(start_ratio):
        bar = min(bar, (start_ratio + 1.0) / 2.0)
    return bar


def _noise_summary(stages: list[Stage], thresholds: Thresholds, start_ratio: float | None = None) -> str | None:
    finite = [s for s in stages if s.finite]
    if not finite:
        return f"from noise: chains reached non-finite energies within {_x(stages[0].multiple)}" if stages else None
    best = min(finite, key=lambda s: s.nn_ratio)
    last = stages[-1]
    bar = reach_bar(thresholds, start_ratio)
    start = f", from {_g(start_ratio)}x at the start" if start_ratio is not None and math.isfinite(start_ratio) else ""
    reached = best.nn_ratio <= bar
    if reached:  # (where they first come within the bar, and where closest if later)
        first = next(s for s in finite if s.nn_ratio <= bar)
        text = (f"from noise: chains reach the data at {_x(first.multiple)} ({_g(first.nn_ratio)}x the data's "
                f"spacing{start})")
        if first is not best:
            text += f", closest at {_x(best.multiple)} ({_g(best.nn_ratio)}x)"
    else:
        within = f"; within {_g(bar)}x counts as reached" if bar < thresholds.nn_ratio else ""
        text = (f"from noise: chains do not reach the data (closest at {_x(best.multiple)}: {_g(best.nn_ratio)}x the "
                f"data's spacing{start}{within})")
    if last is not best:
        if not last.finite:
            text += f", then non-finite by {_x(last.multiple)}"
        elif reached and last.nn_ratio > bar:
            text += f", then leave it ({_g(last.nn_ratio)}x at {_x(last.multiple)})"
        else:
            text += f"; {_g(last.nn_ratio)}x at {_x(last.multiple)}"
    return text


# --------------------------------------------------------------------------------------
# the chains


def check_energy(
    energy: Energy,
    data: torch.Tensor,
    *,
    L: int,
    epsilon: float,
    tau: float,
    multiples: Sequence[float] = DEFAULT_MULTIPLES,
    n_chains: int = DEFAULT_CHAINS,
    inits: Sequence[str] = INITS,
    thresholds: Thresholds = Thresholds(),
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    extend: float = DEFAULT_EXTEND,
    labels: torch.Tensor | None = None,
) -> CheckResult:
    """Run the long-run check on ``energy`` with training data ``data`` and decide.

    For each start in ``inits`` ("data": training examples drawn without replacement
    where there are enough; "noise": uniform in the energy's data range), one batch of
    ``n_chains`` chains runs ``x - eps^2/2 dU/dx + tau eps z`` and is measured after
    ``round(m * L)`` steps for each ``m`` in ``multiples`` (one continuing run, so the cost
    is ``max(multiples) * L`` steps per start). The verdict comes from the chains from data
    at the longest length (:func:`decide`); the chains from noise are evidence only (a
    convergent model may need far more than 30 L to burn in from noise, Anatomy §4.3).
    Where the chains from data meet no criterion yet are still moving away from the data
    there (their distance grows more than ``thresholds.settle`` per tripling of the
    length), they run on, x3 at a time, up to ``extend`` times the longest length (1:
    never), until they settle or meet a criterion.

    Parameters
    ----------
    energy : Energy
        The model; images are recognised by a 3-D per-example shape and get the
        saturation criterion.
    data : Tensor [N, *shape]
        Training examples: chain starts and the reference set.
    L, epsilon, tau : the training sampler (chain lengths are in units of L).
    multiples : increasing positive numbers
    n_chains : int
    inits : subset of ("data", "noise"), must contain "data"
    thresholds : Thresholds
    seed : int
        Seeds the chain noise and the choice of starts and yardstick examples.
    progress : callable, optional
        Called with the number of steps just completed.
    extend : float >= 1
        How far past the longest of ``multiples`` the chains from data may run on.
    labels : LongTensor [N], optional
        The examples' classes, for the mix criterion; without them (or with one class),
        ``MIX_CLUSTERS`` k-means clusters of ``data`` stand for them.

    Returns
    -------
    CheckResult

    Raises
    ------
    LandscapeError
        Bad settings, data of the wrong shape, noise starts without a data range.

    Cost: ``len(inits) * max(multiples) * L`` gradient evaluations of ``n_chains``
    examples, plus nearest-neighbour searches of ``n_chains`` (and ``SPACING_SAMPLE``)
    points against ``N`` per length.
    """
    start_time = time.perf_counter()
    steps_list = _check_settings(L, epsilon, tau, multiples, n_chains, inits)
    if not (isinstance(extend, (int, float)) and math.isfinite(extend) and extend >= 1):
        raise LandscapeError(f"extend must be a finite number >= 1 (1: the lengths asked for only), got {extend!r}")
    energy.check_room(n_chains)
    if data.dim() != len(energy.shape) + 1 or tuple(data.shape[1:]) != energy.shape or data.shape[0] < 2:
        raise LandscapeError(f"need at least 2 training examples of shape {list(energy.shape)}, got {list(data.shape)}")
    if "noise" in inits and energy.data_range is None:
        raise LandscapeError(f"{energy.name or 'energy'} has no data range: chains from noise need one")
    if labels is not None and tuple(labels.shape) != (data.shape[0],):
        raise LandscapeError(f"need one label per training example ({data.shape[0]}), got labels of shape "
                             f"{list(labels.shape)}")
    if labels is not None and (labels.dtype.is_floating_point or labels.dtype.is_complex or labels.dtype == torch.bool):
        raise LandscapeError(f"labels must be integer classes, got {labels.dtype}")
    cpu_gen = torch.Generator().manual_seed(seed)
    gen = torch.Generator(device=energy.device).manual_seed(seed)
    ref = data.to(energy.device, energy.dtype)
    saturation = _saturation(energy)
    mix_gen = torch.Generator().manual_seed(seed)  # (its own stream: the other draws as without it)
    modes = data_modes(ref, labels, mix_gen)
    yard, probe = _yardstick(energy, ref, saturation, cpu_gen, n_chains, modes, mix_gen)

    stages: dict[str, list[Stage]] = {}
    samples: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}
    extended: list[float] = []
    why = ""  # what still moved where the chains from data first ran on
    noise_start = None
    asked = float(multiples[-1])
    for init in inits:
        if init == "data":
            n_ref = ref.shape[0]
            if n_chains <= n_ref:  # distinct examples where there are enough
                index = torch.randperm(n_ref, generator=cpu_gen)[:n_chains]
            else:
                index = torch.randint(n_ref, (n_chains,), generator=cpu_gen)
            x0 = ref[index.to(ref.device)]
        else:
            x0 = energy.uniform_noise(n_chains, gen)
            noise_start = float(nearest_distance(x0, ref).mean()) / yard.spacing if yard.spacing > 0 else None
        x, done, track = x0, 0, []
        lengths = list(zip((float(m) for m in multiples), steps_list))
        k = 0
        while k < len(lengths):
            m, steps = lengths[k]
            k += 1
            try:
                result = sample(energy, x, steps - done, epsilon, tau, generator=gen, progress=progress)
            except NonFiniteEnergyError:  # itself the verdict: record it and stop this start
                nan = float("nan")
                sat = None if saturation is None else nan
                track.append(Stage(m, steps, nan, nan, nan, nan, sat, sat, finite=False))
                break
            x, done = result.x, steps
            track.append(_measure(m, steps, x, result.energy, ref, yard, saturation, probe, modes,
                                  index if init == "data" else None))
            moving = _still_moving(track, thresholds) if init == "data" and k == len(lengths) else None
            if moving is not None:
                further = m * EXTEND_FACTOR
                if further <= asked * extend * (1 + 1e-9):  # (one more length, while within reach)
                    lengths.append((further, max(steps + 1, round(further * L))))
                    extended.append(further)
                    why = why or moving[0]
        stages[init] = track
        samples[init] = (x0.detach().cpu(), x.detach().cpu(), done)

    data_track = stages["data"]
    last = data_track[-1]
    reasons = decide(last, thresholds, yard)
    onset = next((s.multiple for s in data_track if decide(s, thresholds)), None)
    verdict = "non-convergent" if reasons else "convergent"
    still = _still_moving(data_track, thresholds)
    explanation = _explain(last, reasons, yard, onset, asked if extended else None, still, why or "distance",
                           thresholds.mix_ratio, n_chains)
    if (close := close_to_bar(last, thresholds)) is not None:
        explanation += (f"; close to the bar ({close}): another --seed or more --chains may call it "
                        f"{'convergent' if reasons else 'non-convergent'}")
    return CheckResult(
        verdict=verdict,
        reasons=reasons,
        explanation=explanation,
        onset=onset,
        noise_summary=(_noise_summary(stages["noise"], thresholds, noise_start) if "noise" in stages else None),
        stages=stages,
        data=yard,
        thresholds=thresholds,
        L=int(L),
        epsilon=float(epsilon),
        tau=float(tau),
        n_chains=int(n_chains),
        seed=int(seed),
        seconds=time.perf_counter() - start_time,
        samples=samples,
        extended=extended,
        settled=still is None,
        noise_start_ratio=noise_start,
    )


def _still_moving(track: Sequence[Stage], thresholds: Thresholds) -> tuple[str, float] | None:
    """Where the chains meet no criterion at the end of ``track`` but their distance to the
    data still grows faster than ``thresholds.settle`` per tripling of the length
    (:func:`growth`): ``("distance", growth)``; or else their mix ratio does, past half its
    bar (below it a rise is chance): ``("mix", growth)``; else None."""
    if not track or not track[-1].finite or decide(track[-1], thresholds):
        return None
    g = growth(track)
    if g is not None and g > thresholds.settle:
        return "distance", g
    g = growth(track, "mix_ratio")
    if g is not None and g > thresholds.settle and track[-1].mix_ratio > thresholds.mix_ratio / 2:
        return "mix", g
    return None


def _check_settings(L, epsilon, tau, multiples, n_chains, inits) -> list[int]:
    if isinstance(L, bool) or not isinstance(L, int) or L < 1:
        raise LandscapeError(f"the training L must be a positive integer, got {L!r}")
    if not (epsilon > 0 and tau >= 0):
        raise LandscapeError(f"need epsilon > 0 and tau >= 0, got epsilon={epsilon}, tau={tau}")
    if n_chains < 1:
        raise LandscapeError(f"need at least one chain, got {n_chains}")
    unknown = [i for i in inits if i not in INITS]
    if unknown or "data" not in inits or len(set(inits)) != len(inits):
        raise LandscapeError(f"starts must be 'data' or 'data' and 'noise', got {list(inits)}")
    ms = [float(m) for m in multiples]
    if not ms or any(not math.isfinite(m) or m <= 0 for m in ms):
        raise LandscapeError(f"chain lengths (multiples of L) must be positive numbers, got {list(multiples)}")
    steps = [max(1, round(m * L)) for m in ms]
    if any(b <= a for a, b in itertools.pairwise(steps)):
        raise LandscapeError(f"chain lengths must increase, got {', '.join(f'{m:g}' for m in ms)} x L = {steps} steps")
    return steps


def _energies(energy: Energy, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([energy(x[i : i + _ENERGY_BATCH]) for i in range(0, x.shape[0], _ENERGY_BATCH)])


class Modes:
    """The data's modes for the mix criterion: each reference example's mode (``of``,
    LongTensor [N] of 0..K-1), their names ("class 9", "cluster 3") and what they are ("10
    classes"); and, once :meth:`hold_out` has labelled examples as chains are labelled (by
    their nearest other example), those labels (``held``) and their mix (``share``, float64
    [K]): the mix that chains at the data's own distribution show. In many dimensions
    labelling by the nearest example favours the classes whose examples lie closer
    together (their examples are nearest to more points), for fresh samples of the data as
    for chains, so the chains are compared with that mix, not with the labels' own."""

    def __init__(self, of: torch.Tensor, names: list[str], kind: str) -> None:
        self.of, self.names = of.cpu(), names
        self.held = self.of
        self.share = torch.bincount(self.of, minlength=len(names)).double() / max(1, self.of.numel())
        self.kind = f"{len(names)} {kind}"

    def hold_out(self, held: torch.Tensor) -> None:
        """``held``: the modes of the nearest other example of held-out examples."""
        self.held = held.cpu()
        self.share = torch.bincount(self.held, minlength=len(self.names)).double() / max(1, self.held.numel())

    def mix(self, index: torch.Tensor) -> tuple[float, int, float]:
        """For chains whose nearest reference examples are rows ``index``: the total
        variation between their mix of modes and ``share``, the mode they over-represent
        most, and its share of the chains."""
        h = torch.bincount(self.of[index.cpu()], minlength=len(self.names)).double()
        h /= max(1, index.numel())
        top = int(torch.argmax(h - self.share))
        return float(0.5 * (h - self.share).abs().sum()), top, float(h[top])

    def chance(self, n: int, gen: torch.Generator) -> float:
        """The total variation from ``share`` that ``MIX_QUANTILE`` of ``MIX_DRAWS``
        random draws of ``n`` held-out examples (with replacement: chains are independent
        samples, not a part of the data set) stay within."""
        of = self.held
        picks = of[torch.randint(of.numel(), (MIX_DRAWS, n), generator=gen)]
        counts = torch.zeros(MIX_DRAWS, len(self.names), dtype=torch.float64).scatter_add_(
            1, picks, torch.ones(picks.shape, dtype=torch.float64))
        tv = 0.5 * (counts / n - self.share).abs().sum(1)
        return float(torch.quantile(tv, MIX_QUANTILE))


def data_modes(ref: torch.Tensor, labels: torch.Tensor | None, gen: torch.Generator) -> Modes | None:
    """The data's classes where ``labels`` name two or more, else ``MIX_CLUSTERS`` k-means
    clusters of ``ref`` (at most one per ten examples; k-means++ starts drawn from ``gen``,
    ``MIX_KMEANS_ROUNDS`` Lloyd rounds); None with fewer than 20 examples."""
    if labels is not None:
        values, of = torch.unique(labels.cpu(), return_inverse=True)
        if values.numel() >= 2:
            return Modes(of, [f"class {int(v)}" for v in values], "classes")
    k = min(MIX_CLUSTERS, ref.shape[0] // 10)
    if k < 2:
        return None
    x = ref.reshape(ref.shape[0], -1).double()
    centres = x[torch.randint(x.shape[0], (1,), generator=gen).to(x.device)]
    for _ in range(k - 1):  # k-means++: each next start drawn in proportion to its squared distance
        d2 = torch.cdist(x, centres).min(1).values.square().cpu()
        pick = torch.multinomial(d2 / d2.sum(), 1, generator=gen) if d2.sum() > 0 else torch.randint(
            x.shape[0], (1,), generator=gen)
        centres = torch.cat([centres, x[pick.to(x.device)]])
    for _ in range(MIX_KMEANS_ROUNDS):
        of = torch.cdist(x, centres).argmin(1)
        counts = torch.bincount(of, minlength=k).unsqueeze(1)
        sums = torch.zeros_like(centres).index_add_(0, of, x)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)
    of = torch.cdist(x, centres).argmin(1).cpu()
    return Modes(of, [f"cluster {i + 1}" for i in range(k)], "clusters")


def _yardstick(energy: Energy, ref: torch.Tensor, saturation, gen: torch.Generator,
               n_chains: int, modes: Modes | None = None, mix_gen: torch.Generator | None = None
               ) -> tuple[DataYardstick, torch.Tensor | None]:
    """The data's yardsticks, and the examples whose distance to the chains measures how
    well they cover the data (the probe; None where fewer than ``COVERAGE_MIN`` examples
    are left beside as many as chains)."""
    # The spacing is the distance of a random subset to the rest of the reference
    # set: the same comparison a chain's end point gets, so the ratio is like for like.
    order = torch.randperm(ref.shape[0], generator=gen).to(ref.device)
    shuffled = ref[order]
    m = min(SPACING_SAMPLE, ref.shape[0])
    spacing = float(data_spacing(shuffled, m).median())
    u = _energies(energy, shuffled[:ENERGY_SAMPLE]).double()
    # Coverage: the probe's median distance to the nearest of as many other examples as
    # there are chains (a few draws), the like-for-like value of its distance to the chains.
    n = min(n_chains, ref.shape[0] - 1)
    probe = shuffled[: min(SPACING_SAMPLE, ref.shape[0] - n)]
    rest = shuffled[probe.shape[0]:]
    draws = [float(nearest_distance(probe, rest[torch.randperm(rest.shape[0], generator=gen)[:n].to(ref.device)])
                   .median()) for _ in range(COVERAGE_DRAWS)]  # (drawn even where too few: the later draws as ever)
    covered = probe.shape[0] >= COVERAGE_MIN
    mix = math.nan
    if modes is not None:  # held-out examples labelled as the chains are: by their nearest other example
        held = nearest(shuffled[:m], shuffled, exclude_self=True)[1][:, 0]
        modes.hold_out(modes.of[order.cpu()[held.cpu()]])
        mix = modes.chance(n_chains, mix_gen)
    reach = float(1.0 - modes.share.min()) / mix if modes is not None and mix > 0 else math.nan
    return DataYardstick(
        n=int(ref.shape[0]),
        energy_mean=float(u.mean()),
        energy_std=float(u.std()) if u.numel() > 1 else 0.0,
        spacing=spacing,
        saturation=saturation(ref) if saturation is not None else None,
        coverage=float(np.mean(draws)) if covered else math.nan,
        mix=mix,
        modes=modes.kind if modes is not None else "",
        mix_reach=reach,
    ), (probe if covered else None)


def _ratio(value: float, yardstick: float) -> float:
    """``value`` in units of a non-negative ``yardstick``: 1 where both are 0, inf where only
    the yardstick is."""
    return value / yardstick if yardstick > 0 else (1.0 if value == 0 else math.inf)


def _measure(m, steps, x, u, ref, yard: DataYardstick, saturation, probe: torch.Tensor | None = None,
             modes: Modes | None = None, starts: torch.Tensor | None = None) -> Stage:
    """The chains ``x`` after ``steps`` steps against the data. ``starts``: for chains
    from data, the rows of ``ref`` they started from, which do not label them (a chain
    still at its start is labelled by its nearest other example, as a held-out example
    is: :class:`Modes`)."""
    dist, index = nearest(x, ref, min(2, ref.shape[0]) if starts is not None else 1)
    nn = float(dist[:, 0].mean())
    mean_u = float(u.double().mean())
    gap = yard.energy_mean - mean_u
    drift = gap / yard.energy_std if yard.energy_std > 0 else (0.0 if gap == 0 else math.copysign(math.inf, gap))
    ratio = _ratio(nn, yard.spacing)
    sat = excess = None
    if saturation is not None:
        sat = saturation(x)
        free = 1.0 - yard.saturation
        excess = (sat - yard.saturation) / free if free > 0 else 0.0
    cover = cover_ratio = math.nan
    if probe is not None:
        cover = float(nearest_distance(probe, x).median())
        cover_ratio = _ratio(cover, yard.coverage)
    mix: dict[str, Any] = {}
    if modes is not None:
        label_by = index[:, 0]
        if starts is not None and index.shape[1] > 1:
            label_by = torch.where(index[:, 0] == starts.to(index.device), index[:, 1], index[:, 0])
        tv, top, share = modes.mix(label_by)
        mix = {"mix": tv, "mix_ratio": _ratio(tv, yard.mix),
               "mix_top": modes.names[top], "mix_top_share": share, "mix_top_data": float(modes.share[top])}
    return Stage(m, steps, mean_u, drift, nn, ratio, sat, excess, coverage=cover, coverage_ratio=cover_ratio, **mix)


# --------------------------------------------------------------------------------------
# checkpoints


def convergence_check(
    checkpoint: str | os.PathLike,
    *,
    multiples: Sequence[float] = DEFAULT_MULTIPLES,
    n_chains: int = DEFAULT_CHAINS,
    init: Sequence[str] = INITS,
    epsilon: float | None = None,
    tau: float | None = None,
    thresholds: Thresholds = Thresholds(),
    device: str = "cpu",
    seed: int = 0,
    dataset_name: str | None = None,
    data_root: str | os.PathLike | None = None,
    reference_limit: int = 10000,
    progress: Callable[[int], None] | None = None,
    compile: bool = False,
    extend: float = DEFAULT_EXTEND,
) -> CheckResult:
    """The long-run check of one of our checkpoints (see :func:`check_energy`).

    Chains use the checkpoint's training sampler (L, epsilon, tau) unless ``epsilon`` or
    ``tau`` are given; the training data (or ``dataset_name``) are loaded, at most
    ``reference_limit`` examples, as starts and reference. The result also says whether
    the verdict agrees with ``ckpt["regime"]``. ``compile``: the chains' steps compiled
    (:mod:`landscape.fused`).

    Raises
    ------
    LandscapeError
        Missing, unreadable or foreign checkpoint; data of the wrong shape.
    data.DataError
        The data set cannot be loaded (the message says which files to put where).

    Example
    -------
    >>> r = convergence_check("digits_convergent.pt")            # doctest: +SKIP
    >>> r.verdict, r.agreement                                  # doctest: +SKIP
    ('convergent', 'agrees')
    """
    energy, ckpt = energy_from_checkpoint(checkpoint, device=device)
    energy.compile = compile
    s = ckpt["sampler"]
    name = dataset_name or ckpt["data"]["name"]
    shape = tuple(ckpt["data"]["shape"])
    ds = datasets.load(name, size=shape[-1] if len(shape) == 3 else None, root=data_root,
                       limit=data_limit(ckpt, name, reference_limit))
    if tuple(ds.shape) != energy.shape:
        raise LandscapeError(
            f"data set {ds.name} has examples of shape {list(ds.shape)}, the checkpoint's network expects {list(energy.shape)}"
        )
    result = check_energy(
        energy,
        ds.x,
        L=int(s["steps"]),
        epsilon=float(s["epsilon"] if epsilon is None else epsilon),
        tau=float(s["tau"] if tau is None else tau),
        multiples=multiples,
        n_chains=n_chains,
        inits=init,
        thresholds=thresholds,
        seed=seed,
        progress=progress,
        extend=extend,
        labels=ds.labels,
    )
    result.regime = str(ckpt.get("regime", "unknown"))
    result.regime_note = regime_note(ckpt)
    result.agreement = agreement(result.verdict, result.regime)
    result.source = str(checkpoint)
    return result


# --------------------------------------------------------------------------------------
# pictures


def _model_name(result: CheckResult) -> str:
    """The model for titles: the checkpoint's file stem ("energy" when the result has none)."""
    return Path(result.source).stem if result.source else "energy"


def save_check_figure(result: CheckResult, path: str | os.PathLike) -> Path:
    """Energy, NN distance, coverage, class mix and (images) saturation against chain
    length (log x-axis), with the data's yardsticks as grey lines and the verdict
    thresholds dotted red: three panels a row (five in a row were too small to read at a
    screen's width), the verdict's evidence in words in a spare slot.

    The title names the model and the verdict, the caption the chains: how many, from
    where, and their lengths in Langevin steps. Returns ``path`` (written atomically).
    """
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    d, t = result.data, result.thresholds
    covered = any(math.isfinite(st.coverage_ratio) for track in result.stages.values() for st in track)
    mixed = any(math.isfinite(st.mix_ratio) for track in result.stages.values() for st in track)
    panels = (["energy", "nn"] + (["coverage"] if covered else []) + (["mix"] if mixed else [])
              + (["saturation"] if d.saturation is not None else []))
    ncols = min(3, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = new_figure(4.4 * ncols, 3.9 * nrows, layout="constrained")
    grid = fig.subplots(nrows, ncols, squeeze=False).ravel()
    axes, spare = grid[:len(panels)], grid[len(panels):]
    styles = {"data": ("tab:blue", "-", "o"), "noise": ("tab:orange", "--", "s")}
    names = {"energy": "mean energy", "nn": "distance to the data", "coverage": "how the chains cover the data",
             "mix": f"the chains' mix of the data's {d.modes}", "saturation": "saturated pixels"}
    multiples = sorted({s.multiple for track in result.stages.values() for s in track})
    for ax, panel in zip(axes, panels):
        for init, track in result.stages.items():
            xs = np.array([s.multiple for s in track if s.finite])
            if panel == "energy":
                ys = [s.energy for s in track if s.finite]
            elif panel == "nn":
                ys = [s.nn_mean for s in track if s.finite]
            elif panel == "coverage":
                ys = [s.coverage_ratio for s in track if s.finite]
            elif panel == "mix":
                ys = [s.mix_ratio for s in track if s.finite]
            else:
                ys = [100 * s.saturation for s in track if s.finite]
            color, ls, marker = styles.get(init, ("0.3", "-", "^"))
            ax.plot(xs, ys, ls=ls, marker=marker, color=color, label=f"chains from {START_NAMES.get(init, init)}")
            bad = [s.multiple for s in track if not s.finite]
            for m in bad:
                ax.axvline(m, color=color, ls=":", lw=1)
        if panel == "energy":
            ax.axhline(d.energy_mean, color="0.4", label="data mean")
            ax.axhspan(d.energy_mean - d.energy_std, d.energy_mean + d.energy_std, color="0.85", label="data ± 1 sd")
            ax.axhline(d.energy_mean - t.energy_drift * d.energy_std, color="tab:red", ls=":",
                       label=f"data mean - {t.energy_drift:g} sd")
            ax.set_ylabel("mean energy")
        elif panel == "nn":
            ax.axhline(d.spacing, color="0.4", label="data's spacing")
            ax.axhline(t.nn_ratio * d.spacing, color="tab:red", ls=":", label=f"{t.nn_ratio:g}x spacing")
            ax.set_ylabel("mean distance to the nearest training example", fontsize=9)
            _log_if_decades(ax, [s.nn_mean for tr in result.stages.values() for s in tr if s.finite] + [d.spacing])
        elif panel == "coverage":
            ax.axhline(1.0, color="0.4", label=f"{result.n_chains} training examples")
            ax.axhline(t.coverage_ratio, color="tab:red", ls=":", label=f"{t.coverage_ratio:g}x")
            ax.set_ylabel("the data's distance to the nearest chain\n/ to the nearest of as many examples", fontsize=9)
            _log_if_decades(ax, [st.coverage_ratio for tr in result.stages.values() for st in tr
                                 if st.finite and math.isfinite(st.coverage_ratio)] + [1.0])
        elif panel == "mix":
            ax.axhline(1.0, color="0.4", label=f"99% of draws of {result.n_chains} examples")
            ax.axhline(t.mix_ratio, color="tab:red", ls=":", label=f"{t.mix_ratio:g}x")
            ax.set_ylabel("the chains' mix vs the data's (total variation)\n/ what 99% of random draws stay within",
                          fontsize=9)
        else:
            ax.axhline(100 * d.saturation, color="0.4", label="data")
            limit = d.saturation + t.saturation_excess * (1 - d.saturation)
            ax.axhline(100 * limit, color="tab:red", ls=":", label="threshold")
            ax.set_ylim(0, 100)
            ax.set_ylabel("saturated pixels (%)")
        ax.set_xscale("log")
        if len(multiples) <= 10:  # the lengths run, as plain numbers (1, 3, 10), not 10^0
            ax.xaxis.set_major_locator(FixedLocator(multiples))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda x, pos: f"{x:g}"))
            ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(f"chain length / L (L = {result.L} steps)")
        ax.set_title(names[panel], fontsize=10)
        ax.legend(fontsize=7)
    title = f"{_model_name(result)}: long-run check, {result.verdict}"
    if result.agreement != "regime unknown":
        title += f" (trained as {result.regime}: {result.agreement})"
    longest = max((s.steps for track in result.stages.values() for s in track), default=0)
    starts = " and ".join(START_NAMES.get(k, k) for k in result.stages)
    caption = (f"{result.n_chains} chains from {starts}, up to {longest} Langevin steps "
               f"(eps={result.epsilon:g}, tau={result.tau:g})")
    fig.suptitle(wrap(f"{title}\n{caption}", 4.4 * ncols, 10), fontsize=10)
    for k, ax in enumerate(spare):
        ax.set_axis_off()
        if k == 0:  # (the evidence, where a slot is free)
            ax.text(0.0, 1.0, wrap(f"{result.verdict}: {result.explanation}", 4.2, 9), va="top", ha="left",
                    fontsize=9, transform=ax.transAxes)
    return save_figure(fig, path, dpi=110)


def _log_if_decades(ax: Any, values: list[float]) -> None:
    """A log y-axis where the values lie decades apart (drifting chains), else linear."""
    if min(values) > 0 and max(values) > 20 * min(values):
        ax.set_yscale("log")
        label = ax.yaxis.label  # (two models' checks side by side can differ here: say so)
        ax.set_ylabel(f"{label.get_text()} (log scale)".strip(), fontsize=label.get_fontsize())


def save_check_samples(result: CheckResult, path: str | os.PathLike, energy: Energy, init: str = "data") -> Path:
    """The end points of one start's chains at ``path`` (images: and the starts at
    ``<stem>_start``), drawn by :func:`landscape.train.sampling.save_chain_figure` and
    captioned with the model, the start and the steps."""
    if init not in result.samples:
        raise LandscapeError(f"no chains from {init} in this result")
    start, end, steps = result.samples[init]
    report = ChainReport(
        start=start, end=end, energy_start=_energies(energy, start.to(energy.device, energy.dtype)).cpu(),
        energy_end=_energies(energy, end.to(energy.device, energy.dtype)).cpu(), steps=steps,
        epsilon=result.epsilon, tau=result.tau, init=init, acceptance=None, nn_start=None, nn_end=None,
        data_nn_median=None, data_energy_mean=None, saturation_start=None, saturation_end=None,
        source=result.source or energy.name or None,
    )
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return save_chain_figure(report, path, energy)
