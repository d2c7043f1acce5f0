""":mod:`landscape.io.views` on hand-made records whose answers are known: how a map was
made (its config, the settings given), and what its funnel probe says (the verdict, the
sinks that are not a tie)."""

from __future__ import annotations

import json
import math

import numpy as np

from conftest import build_map
from landscape.mapping.funnel import funnel_score, funnel_sinks
from landscape.io.records import FunnelData, MapMeta
from landscape.io.views import (
    defined_score,
    FUNNEL_VERDICTS,
    MAP_DEFAULTS,
    clear_sinks,
    coverage,
    describe_exploration,
    describe_funnel,
    funnel_verdict,
    given_settings,
    is_funnel,
    probe_config,
    sinks_text,
    state_coverage,
    state_hits,
)


def probe(occupancy, score, chains=None, **attrs) -> FunnelData:
    occ = np.asarray(occupancy, dtype=np.float64)
    ent = np.array([-(r[r > 0] * np.log(r[r > 0])).sum() for r in occ])
    base = {"reference_entropy": float(ent[0]), "reference": "chains from data at the lowest noise",
            "funnel_threshold": 0.5}
    if chains is not None:
        base["chains_per_level"] = chains
    base.update(attrs)
    return FunnelData(noise=np.arange(occ.shape[0], dtype=np.float64), occupancy=occ, entropy=ent, score=score,
                      attrs=base)


def test_the_defaults_written_out_are_map_config_s():
    # (written out so that reading a map imports no torch)
    from landscape.mapping.settings import MapConfig

    defaults = {k: v for k, v in MapConfig().to_dict().items() if v is not None}
    assert MAP_DEFAULTS == json.loads(json.dumps(defaults))


def test_given_settings_are_the_seed_the_chains_and_what_differs_from_the_defaults():
    config = {**MAP_DEFAULTS, "eps": None, "temperature": 0.5, "chains": 32, "seed": 1, "ladder": [0.1, 1.0],
              "refine": False}
    assert given_settings(config) == [("seed", 1), ("chains", 32), ("refine", False), ("ladder", [0.1, 1.0]),
                                      ("temperature", 0.5)]  # (in the config's order)
    assert given_settings(MAP_DEFAULTS) == [("seed", 0), ("chains", 256)]  # shown at their defaults too
    assert given_settings({}) == []
    assert given_settings({"new_setting": 3}) == [("new_setting", 3)]  # a setting of a later version: shown


def test_probe_config_reads_the_probe_s_json():
    f = probe([[0.5, 0.5], [1.0, 0.0]], 1.0, config=json.dumps({"seed": 4, "chains": 12}))
    assert probe_config(f) == {"seed": 4, "chains": 12}
    assert probe_config(probe([[0.5, 0.5], [1.0, 0.0]], 1.0)) == {}
    assert probe_config(probe([[0.5, 0.5], [1.0, 0.0]], 1.0, config="{not json")) == {}


def test_the_verdict_tells_a_funnel_no_funnel_and_when_the_probe_cannot_tell():
    assert funnel_verdict(probe([[0.5, 0.5], [1.0, 0.0]], 1.0, chains=10)) == "a funnel"
    assert funnel_verdict(probe([[0.5, 0.5], [0.6, 0.4]], 0.03, chains=10)) == "no funnel"
    # every level's 4 chains in 4 basins: its score 0 says nothing of the landscape
    lone = probe(np.full((3, 4), 0.25), 0.0, chains=4)
    assert funnel_verdict(lone) == "too few chains to tell"
    assert funnel_verdict(probe(np.full((3, 4), 0.25), 0.0, chains=40)) == "no funnel"  # 40 chains met in 4 basins
    assert funnel_verdict(probe(np.full((3, 4), 0.25), 0.0)) == "no funnel"  # chains not recorded: no claim
    assert funnel_verdict(probe([[1.0, 0.0], [1.0, 0.0]], math.nan, chains=4)) == "score undefined"
    # 97 % of the data's chains in one basin (1.14 effective basins): their falling into it at
    # high noise is no funnel; a probe that scored it 1.00 (before it was undefined) is read so too
    nearly_one = probe([[0.97, 0.03], [1.0, 0.0]], 1.0, chains=30)
    assert funnel_verdict(nearly_one) == "score undefined" and funnel_sinks(nearly_one) == []
    assert defined_score(nearly_one) is None and defined_score(lone) == 0.0  # (--json's score: null where undefined)
    one_level = FunnelData(noise=np.array([1.0]), occupancy=np.array([[0.5, 0.5]]), entropy=np.array([math.log(2)]),
                           score=math.nan, attrs={"reference_entropy": math.log(2)})
    assert describe_funnel(one_level).startswith("funnel score undefined: the probe ran one noise level")
    assert describe_funnel(nearly_one) == ("funnel score undefined: at the lowest noise level the chains from data "
                                           "already fill about one basin (effective number 1.14, under 1.5): nothing "
                                           "is left to collapse")
    assert math.isnan(funnel_score([math.log(1.14), 0.0])) and funnel_score([math.log(2), 0.0]) == 1.0
    assert [is_funnel(v) for v in FUNNEL_VERDICTS] == [True, False, None, None]
    text = describe_funnel(lone)
    assert text.startswith("too few chains to tell a funnel: every level's 4 chains ended each in a basin of its own")
    assert "no funnel" not in text and "funnel score 0.00" in text


def test_sinks_that_tie_with_basins_left_out_are_said_to_tie_not_listed():
    # five basins at 4 %: which two "hold half the chains" is only their order
    even = np.full(25, 0.04)
    assert clear_sinks(even, [0, 1, 2, 3, 4]) == ([], (25, 0.04))
    assert sinks_text(even, [0, 1, 2, 3, 4]) == "25 basins tie at 4%"
    assert clear_sinks([0.3, 0.2, 0.2, 0.2, 0.1], [0, 1]) == ([0], (3, 0.2))
    assert sinks_text([0.3, 0.2, 0.2, 0.2, 0.1], [0, 1]) == "basin 0 30%, then 3 basins tie at 20%"
    assert clear_sinks([0.6, 0.3, 0.1], [0]) == ([0], None)
    assert clear_sinks([0.5, 0.5], [0, -1]) == ([], (2, 0.5))  # (-1 pads a stored row)
    assert clear_sinks([1.0, 0.0], [0]) == ([0], None)  # an empty basin ties with nothing
    f = probe([[0.25, 0.25, 0.25, 0.25], [0.4, 0.2, 0.2, 0.2]], 0.1, chains=20)
    f.sinks = np.array([[0, 1, -1], [0, 1, -1]])
    assert describe_funnel(f).endswith("at noise 1: basin 0 40%, then 3 basins tie at 20%)")


def test_coverage_counts_the_minima_found_once_and_twice_good_turing_and_chao1():
    # 9 chains: 5 in one minimum, 2 in another, one each in two more; a funnel probe's minimum (0 hits) left out
    c = coverage([5, 1, 1, 2, 0], chains=9)
    assert (c.chains, c.found, c.once, c.twice) == (9, 4, 2, 1)
    assert math.isclose(c.unseen, 2 / 9)
    assert math.isclose(c.estimated, 4 + 8 / 9 * 2 * 1 / (2 * 2))
    every = coverage([1] * 64)  # each chain a minimum of its own: most of the minima unseen
    assert every.unseen == 1.0 and every.estimated > 1000
    assert coverage([40, 30, 12]).unseen == 0.0 and coverage([40, 30, 12]).estimated == 3.0


def exploration_map(hits, init="noise", chains=None):
    n = len(hits)
    c = build_map(np.arange(2 * n, dtype=np.float32).reshape(n, 2), np.arange(n, dtype=np.float64), hits=hits,
                  attrs={"minima": {"chains": sum(hits) if chains is None else chains, "rounds": 1}})
    c.meta = MapMeta(schema_version=2, created="2026-01-01T00:00:00+00:00", tool_version="test", source=None,
                     config={"chains": 16}, extra={"settings": {"init": init}})
    return c


def drained_map(hits):
    """Two states, A (minimum 0) and B (minimum 3), a barrier of 2 between them; minima 1
    and 2 drain into A with no barrier (1 into 0, 2 into 1), 4 and 5 into B: points a
    quench left along a plateau or a flat valley."""
    c = build_map(np.arange(12, dtype=np.float32).reshape(6, 2), [0.0, 0.5, 0.7, 1.0, 1.2, 1.4],
                  [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], [0.5, 0.7, 3.0, 1.2, 1.4], hits=hits,
                  attrs={"minima": {"chains": int(sum(hits)), "rounds": 1}})
    c.meta = MapMeta(schema_version=2, created="2026-01-01T00:00:00+00:00", tool_version="test", source=None,
                     config={"chains": 16}, extra={"settings": {"init": "noise"}})
    return c


def test_minima_that_drain_flat_are_counted_with_the_state_their_drainage_ends_at():
    c = drained_map([1, 1, 1, 3, 1, 1])
    assert state_hits(c).tolist() == [3, 0, 0, 5, 0, 0]
    s = state_coverage(c)
    assert (s.chains, s.found, s.once, s.twice, s.unseen, s.estimated) == (8, 2, 0, 0, 0.0, 2.0)
    line = describe_exploration(c)
    # Five of the six minima were found by one chain each: as minima, a sample (62 % of
    # further chains would find another); the two states each by three or more: all of them.
    assert line.startswith("8 chains from uniform noise in the box: 6 minima, 5 reached by one chain only; 2 distinct "
                           "states (4 of the minima drain into another with no barrier"), line
    assert line.endswith("each reached by 3 chains or more: about all the states these starts lead to (Good-Turing: "
                         "under 1 in 8 further chains would find another)"), line
    # A state found once is a sample of the states, with its own Chao1 estimate.
    few = describe_exploration(drained_map([1, 0, 0, 1, 1, 0]))
    assert "2 distinct states (1 of the minima drains into another" in few, few
    assert few.endswith("1 of them reached by one chain only: a sample of the states these starts lead to, not all "
                        "of them (about 33% of further chains would find another; at least about 2 states in all by "
                        "Chao1's estimate); --chains finds more"), few
    # No minimum drains flat: no states apart from the minima.
    assert state_hits(exploration_map([3, 2, 1])) is None and state_coverage(exploration_map([3, 2, 1])) is None


def test_the_exploration_line_says_whether_the_minima_are_all_the_starts_reach_or_a_sample():
    done = describe_exploration(exploration_map([121, 211, 180]))
    assert done.startswith("512 chains from uniform noise in the box: 3 minima, each reached by 121 chains or more: "
                           "about all the minima"), done
    sampled = describe_exploration(exploration_map([2] + [1] * 14, init="data"))
    assert sampled.startswith("16 chains from data: 15 minima, 14 reached by one chain only: a sample of the minima"), \
        sampled
    assert "about 88% of further chains would find another" in sampled and "--chains finds more" in sampled
    # minima found twice inform the estimate: a number of chains to find about all of them
    # (the 4-D Rastrigin in a box: 205 of 625 minima from 256 chains, Chao1 630; 2,048 found them all)
    rastrigin = describe_exploration(exploration_map([1] * 165 + [2] * 30 + [3] * 10, chains=256))
    assert rastrigin.endswith("to find about all of them, try --chains 2048 (three per minimum estimated)"), rastrigin
    few = describe_exploration(exploration_map([100] * 9 + [1]))
    assert few.endswith("1 reached by one chain only (about 0.1% of further chains would find another)"), few


# ----------------------------------------------------------- what the outputs say


def test_too_few_chains_is_judged_on_the_levels_the_score_uses_not_the_quenched_starts():
    # (the demo's convergent digits probe: 48 chains, two data starts quenched into one minimum
    # at noise 0 (exp(H) 46.6), each chain a basin of its own at noise 1-8 (48.0): the verdict
    # read "no funnel" where the score of 0 says nothing)
    starts = np.array([[2 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6, 0.0]])
    apart = np.full((2, 6), 1 / 6)
    f = probe(np.vstack([starts, apart]), 0.0, chains=6)
    assert funnel_verdict(f) == "too few chains to tell"
    assert is_funnel(funnel_verdict(f)) is None
    text = describe_funnel(f)
    assert text.startswith("too few chains to tell a funnel: every level's 6 chains ended each in a basin of its own "
                           "at noise 1 to 2, the levels the score is taken over (landscape funnel --chains raises "
                           "them; funnel score 0.00"), text
    # Chains that met at a level the score uses: it can tell (no funnel), whatever the starts did.
    met = probe(np.vstack([apart[:1], starts, apart[:1]]), 0.0, chains=6)
    assert funnel_verdict(met) == "no funnel"
    # Two levels: the one above the lowest is the one judged.
    assert "at noise 1, the levels" in describe_funnel(probe(np.vstack([starts, apart[:1]]), 0.0, chains=6))


def arrival_map(**settings):
    c = build_map(np.zeros((3, 2), dtype=np.float32), [0.0, 1.0, 2.0],
                  attrs={"levels": {"alpha_unit": 73.5, "alpha_unit_rule": "arrival"}})
    c.meta = MapMeta(schema_version=2, created="2026-01-01T00:00:00+00:00", tool_version="test", source=None,
                     config={}, extra={"settings": {"alpha_unit": 73.5, "alpha_unit_rule": "arrival", **settings}})
    return c


def test_the_arrival_unit_says_which_pull_set_it_and_the_one_it_outweighed():
    # (read "the pull that brings half the chains to their target, stronger than the typical
    # barrier's": no verb, and the barrier-matched pull's value nowhere)
    from landscape.io.views import alpha_unit_rule

    assert alpha_unit_rule(arrival_map()) == (
        "the weakest pull that brings half of attraction-diffusion's chains to their targets, which is stronger here "
        "than the pull matched to the minima's barriers")
    assert alpha_unit_rule(arrival_map(alpha_unit_matched=12.34567)) == (
        "the weakest pull that brings half of attraction-diffusion's chains to their targets, which is stronger here "
        "than the pull of 12.35 matched to the minima's barriers")
    spread = arrival_map(alpha_unit_matched=0.5, alpha_unit_matched_rule="spread")
    assert alpha_unit_rule(spread).endswith("than the pull of 0.5 matched to the minima's energy spread")
    barriers = build_map(np.zeros((3, 2), dtype=np.float32), [0.0, 1.0, 2.0],
                         attrs={"levels": {"alpha_unit_rule": "barriers"}})
    assert alpha_unit_rule(barriers) == "the typical barrier over the typical spacing"


def held_map(held, added=0, image=True):
    n = 10
    x = np.zeros((n, 1, 4, 4) if image else (n, 3), dtype=np.float32)
    return build_map(x, np.arange(n, dtype=np.float64),
                     attrs={"minima": {"held_by_box": held, **({"funnel_added": added} if added else {})}})


def test_minima_held_by_the_box_are_counted_out_of_those_checked_and_not_called_saturated():
    # (info said "61 of the map's minima have pixels at the range's ends ... (saturated pixels
    # ...)" of a map of 303 minima, 239 of them a funnel probe's, never checked; and diagnose
    # calls a minimum saturated by a rule of its own: "0 saturated")
    from landscape.io.views import describe_held_by_box

    assert describe_held_by_box(held_map(6, added=4)) == (
        "6 of the 6 minima the exploration found have pixels held at the range's ends by the box (the energy still "
        "falling outward); the funnel probes' 4 minima were not checked")
    assert describe_held_by_box(held_map(3)) == ("3 of the 10 minima have pixels held at the range's ends by the box "
                                                 "(the energy still falling outward)")
    assert describe_held_by_box(held_map(1, added=1, image=False)) == (
        "1 of the 9 minima the exploration found lies on the box's faces with the energy still falling beyond (held "
        "by the box); the funnel probes' 1 minimum was not checked")
    assert describe_held_by_box(held_map(0)) is None
    assert "saturated" not in describe_held_by_box(held_map(6, added=4))


def test_the_noise_unit_a_probe_records_is_read_back_with_where_it_came_from():
    from landscape.io.views import funnel_noise_unit

    f = probe([[0.5, 0.5], [1.0, 0.0]], 1.0, chains=10, noise_unit=0.0111, noise_unit_source="sqrt of T")
    assert funnel_noise_unit(f) == (0.0111, "sqrt of T")
    assert funnel_noise_unit(probe([[0.5, 0.5], [1.0, 0.0]], 1.0, noise_unit=2.0)) == (2.0, None)
    assert funnel_noise_unit(probe([[0.5, 0.5], [1.0, 0.0]], 1.0)) is None  # (a probe made before it was recorded)
