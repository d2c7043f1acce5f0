"""The funnel probe: its statistics, the planted funnel against balanced wells, mapping the
new minima it finds into the map, resuming, and `landscape funnel` end to end."""

from __future__ import annotations

import json
import math
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from landscape import Energy
from landscape.mapping.ad import ADConfig, assign_basins, extend_basins
from landscape.errors import LandscapeError
from landscape.mapping.funnel import (
    FunnelConfig,
    collapse_level,
    describe,
    entropy,
    funnel_config,
    funnel_probe,
    funnel_score,
    funnel_sinks,
    sinks,
)
from landscape.io.mapfile import FunnelData, read_map, rewrite_map, write_map
from landscape.io.progress import load_progress, progress_path, save_progress
from landscape.mapping import pipeline
from landscape.mapping.pipeline import Reporter, build_map
from landscape.mapping.settings import MapConfig
from landscape.mapping.minima import Minima
from landscape.potentials import (
    PLANTED_BOX,
    balanced_wells,
    mueller_brown,
    planted_data,
    planted_funnel,
    tilted_wells,
    tilted_wells_exact,
)
from conftest import (
    CountingStrings,
    Notes,
    arm_after_a_batch_save,
    assert_one_line_error,
    assert_same_map,
    new_axes,
    run,
)
from conftest import build_map as hand_made_map

T = 0.05
TAU = math.sqrt(T)
LADDER = (0.0, 1.0, 2.0, 4.0, 8.0)


def planted_energy(fn) -> Energy:
    return Energy(fn, shape=(2,), data_range=PLANTED_BOX, dtype=torch.float64, name=fn.__name__)


def map_config(**kw) -> MapConfig:
    """The map's defaults, with fewer chains and shorter attraction-diffusion trials."""
    settings = dict(chains=64, rounds=2, grid=0, max_steps=600, patience=100, attempts=2, neighbours=4)
    settings.update(kw)
    return MapConfig(**settings)


def make_map(tmp_path, fn, data, name, **kw):
    cfg = map_config(**kw)
    result = build_map(planted_energy(fn), cfg, data=data)
    path = write_map(tmp_path / f"{name}.h5", result.content, config=cfg.to_dict(),
                     source={"kind": "function", "spec": f"landscape.potentials:{fn.__name__}"}, tool_version="test")
    return path, read_map(path)


def probe_config(**kw) -> FunnelConfig:
    settings = dict(noise=tuple(TAU * m for m in LADDER), eps=0.1, steps=300, merge_radius=0.05, chains=50)
    settings.update(kw)
    return FunnelConfig(**settings)


@pytest.fixture(scope="module")
def data():
    return torch.from_numpy(planted_data(400, seed=0))


# ------------------------------------------------------------------------ statistics


def test_entropy_score_and_sinks_on_known_occupancies():
    assert entropy([0.25, 0.25, 0.25, 0.25]) == pytest.approx(math.log(4))
    assert entropy([1.0, 0.0, 0.0]) == 0.0
    # All chains in one basin at the highest level: a full collapse; none: no collapse.
    assert funnel_score([math.log(4), math.log(4), 0.0]) == 1.0
    assert funnel_score([math.log(4), math.log(4), math.log(4)]) == 0.0
    assert funnel_score([math.log(4), math.log(8)]) == 0.0  # spreading out is clipped to 0, not negative
    assert funnel_score([math.log(4), math.log(2)], reference=math.log(16)) == pytest.approx(0.75)
    assert math.isnan(funnel_score([0.0, 0.0]))  # nothing to collapse
    assert math.isnan(funnel_score([1.0]))
    # Sinks: the fullest basins until half the chains, fullest first.
    assert sinks(np.array([0.1, 0.6, 0.3])) == [1]
    assert sinks(np.array([0.3, 0.1, 0.25, 0.35])) == [3, 0]
    assert sinks(np.array([0.5, 0.5]), max_sinks=1) == [0]
    f = FunnelData(noise=np.array([0.0, 1.0, 2.0, 3.0]),
                   occupancy=np.array([[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.9, 0.1]]),
                   entropy=np.array([entropy(r) for r in [[0.5, 0.5], [0.9, 0.1], [0.5, 0.5], [0.9, 0.1]]]),
                   score=0.6)
    assert collapse_level(f) == 3  # of equal entropies, the noisiest
    assert funnel_sinks(f) == [0]
    f.score = 0.4
    assert funnel_sinks(f) == []  # not a funnel: no sinks to flag
    # A cut at half the chains inside a group of equal shares: the stored sinks took basin 1
    # of the three at 10 % by its index alone, and diagnose flagged it; only basin 0 is a sink
    tie = FunnelData(noise=np.array([0.0, 1.0]), occupancy=np.array([[0.25] * 4 + [0.0], [0.45, 0.1, 0.1, 0.1, 0.25]]),
                     entropy=np.array([math.log(4), entropy([0.45, 0.1, 0.1, 0.1, 0.25])]), score=0.9,
                     sinks=np.array([[0, 1, -1], [0, 4, -1]]))
    assert funnel_sinks(tie) == [0, 4]  # (0.45 + 0.25: a clear cut)
    tie.occupancy[1] = [0.45, 0.1375, 0.1375, 0.1375, 0.1375]
    tie.sinks = np.array([[0, 1, -1], [0, 1, -1]])
    assert funnel_sinks(tie) == [0]
    # Every chain in a basin of its own at every level: "no funnel" says nothing; said so.
    # A lowest level with noise: its reference is those chains, not "the data's basins".
    spread = np.full((2, 4), 0.25)
    lone = FunnelData(noise=np.array([1.0, 2.0]), occupancy=spread, entropy=np.array([entropy(r) for r in spread]),
                      score=0.0, attrs={"chains_per_level": 4, "reference": "chains from data at the lowest noise"})
    text = describe(lone)
    assert "in chains from data at noise 1 ->" in text and "the data's basins" not in text, text
    assert text.startswith("too few chains to tell a funnel: every level's 4 chains ended each in a basin of its "
                           "own at noise 2, the levels the score is taken over (landscape funnel --chains raises "
                           "them"), text


def test_json_carries_the_verdict_the_seed_and_the_chains_and_no_sinks_picked_from_a_tie(tmp_path):
    # (`funnel --json` gave "score": 0.0, "funnel": false where the text said "too few chains
    # to tell", and sinks chosen by index among basins of equal share; no seed, no chains)
    from landscape.train.runs import funnel_summary

    config = FunnelConfig(noise=(0.0, 1.0, 2.0), eps=0.1, steps=10, merge_radius=0.01, chains=2, seed=7)
    spread = np.full((3, 4), 0.25)
    lone = FunnelData(noise=np.array(config.noise), occupancy=spread, entropy=np.full(3, math.log(4)), score=0.0,
                      attrs={"chains_per_level": 4, "config": json.dumps(config.to_dict()), "funnel_threshold": 0.5,
                             "reference_entropy": math.log(2), "reference": "chains from data at the lowest noise"},
                      sinks=np.array([[0, 1, -1], [0, 1, -1], [2, 3, -1]]), chain_minimum=np.zeros((3, 4), int))
    result = type("Result", (), {"new_minima": 0, "new_basins": 0})()
    s = json.loads(json.dumps(funnel_summary(tmp_path / "m.h5", lone, result, tmp_path / "f.png", 1.0)))
    assert (s["verdict"], s["funnel"], s["score"]) == ("too few chains to tell", None, 0.0)
    assert (s["seed"], s["chains"], s["chains_per_level"]) == (7, 2, 4)
    assert s["sinks"] == [[], [], []] and s["sink_ties"] == [{"basins": 4, "share": 0.25}] * 3
    occupied = np.array([[0.5, 0.5, 0.0], [0.9, 0.1, 0.0]])
    f = FunnelData(noise=np.array([0.0, 1.0]), occupancy=occupied, entropy=np.array([entropy(r) for r in occupied]),
                   score=0.6, attrs={"chains_per_level": 10, "funnel_threshold": 0.5},
                   sinks=np.array([[0, -1], [0, -1]]))
    s = funnel_summary(tmp_path / "m.h5", f, result, tmp_path / "f.png", 1.0)
    assert (s["verdict"], s["funnel"], s["seed"]) == ("a funnel", True, None)
    assert s["sinks"] == [[], [0]] and s["sink_ties"] == [{"basins": 2, "share": 0.5}, None]


def test_funnel_config_refuses_bad_settings():
    with pytest.raises(LandscapeError, match="increase"):
        probe_config(noise=(1.0, 0.5))
    with pytest.raises(LandscapeError, match="two noise levels"):
        probe_config(noise=(1.0,))
    with pytest.raises(LandscapeError, match="init"):
        probe_config(init="bank")


# ---------------------------------------------------------------- planted answers


@pytest.mark.slow
def test_a_planted_funnel_scores_as_a_funnel_and_balanced_wells_do_not(tmp_path, data):
    _, funnel_map = make_map(tmp_path, planted_funnel, data, "funnel")
    _, balanced_map = make_map(tmp_path, balanced_wells, data, "balanced")
    f = funnel_probe(planted_energy(planted_funnel), funnel_map, probe_config(), data=data).funnel
    b = funnel_probe(planted_energy(balanced_wells), balanced_map, probe_config(), data=data).funnel
    # The data sit in four wells: four basins' worth of entropy to start with.
    assert f.attrs["reference_entropy"] == pytest.approx(math.log(4), abs=0.05)
    assert b.attrs["reference_entropy"] == pytest.approx(math.log(4), abs=0.05)
    assert f.score >= 0.8
    assert b.score <= 0.1
    # The funnel's sink is the broad basin at the origin, the lowest (basin 0).
    k = collapse_level(f)
    assert funnel_sinks(f) == [0] and f.occupancy[k, 0] > 0.9
    centre = funnel_map.minima_x[funnel_map.basin_representative[0]]
    np.testing.assert_allclose(centre, [0.0, 0.0], atol=0.05)
    # Balanced wells keep the chains spread: no level concentrates them.
    assert np.exp(b.entropy).min() > 3.5
    assert funnel_sinks(b) == []
    # By start: the chains from data leave their wells as the noise grows.
    assert f.occupancy_data[0, 0] < 0.05 and f.occupancy_data[k, 0] > 0.9
    np.testing.assert_allclose(f.occupancy.sum(1), 1.0)


def scaled(fn, c: float):
    def energy(x):
        return c * fn(x)

    energy.__name__ = f"{fn.__name__}_x{c:g}"
    return energy


@pytest.fixture(scope="module")
def funnel_at_defaults(data):
    """The planted funnel mapped and probed with every setting automatic (few chains)."""
    energy = planted_energy(planted_funnel)
    result = build_map(energy, map_config(), data=data)
    config = funnel_config(result.content, chains=16, with_data=True)
    return config, funnel_probe(energy, result.content, config, data=data).funnel


@pytest.mark.slow
@pytest.mark.parametrize("c", [0.01, 100.0])
def test_the_probe_s_automatic_settings_give_a_scaled_energy_the_same_probe(data, funnel_at_defaults, c):
    # Defaults no energy was tuned for: c U maps and probes as U does, its noise levels
    # sqrt(c) times U's and its step 1/sqrt(c) times, so every chain moves as U's did.
    config, f = funnel_at_defaults
    energy = planted_energy(scaled(planted_funnel, c))
    result = build_map(energy, map_config(), data=data)
    config_c = funnel_config(result.content, chains=16, with_data=True)
    np.testing.assert_allclose(config_c.noise, np.sqrt(c) * np.array(config.noise), rtol=1e-5)
    assert config_c.eps == pytest.approx(config.eps / math.sqrt(c), rel=1e-5)
    assert (config_c.steps, config_c.init, config_c.merge_radius) == (config.steps, "both", config.merge_radius)
    f_c = funnel_probe(energy, result.content, config_c, data=data).funnel
    np.testing.assert_allclose(f_c.occupancy, f.occupancy, atol=1e-12)
    assert f_c.score == pytest.approx(f.score) and f.score >= 0.8  # and it is the funnel it was planted as


@pytest.mark.slow
def test_new_minima_are_mapped_into_the_map(tmp_path, data):
    # The map knows only two of the four wells (chains from the data of two wells, no
    # exploration): the probe's chains find the others and the funnel's bottom.
    two = data[(data[:, 0] > 1.5) | (data[:, 1] > 1.5)]
    path, before = make_map(tmp_path, planted_funnel, two, "partial", init="data", steps=0, ladder=(0.3, 3.0),
                            rounds=1)
    assert before.n_minima == 2 and before.n_basins == 2
    result = funnel_probe(planted_energy(planted_funnel), before, probe_config(chains=30), data=data)
    after = result.content
    assert result.new_minima == 3 and result.new_basins == 3 and after.n_minima == 5
    # The old minima keep their indices and coordinates; the new ones follow, 0 hits.
    np.testing.assert_array_equal(after.minima_x[:2], before.minima_x)
    np.testing.assert_array_equal(after.minima_hits, np.r_[before.minima_hits, 0, 0, 0])
    assert after.attrs["minima"]["funnel_added"] == 3
    # The funnel's bottom is the new lowest basin; basins stay sorted by energy.
    assert np.all(np.diff(after.basin_energy) >= 0)
    np.testing.assert_allclose(after.minima_x[after.basin_representative[0]], [0.0, 0.0], atol=0.05)
    assert after.basin_energy[0] < before.basin_energy[0] - 10
    # Every level holds every minimum; the new minima are leaves of the tree over minima,
    # joined through barriers to their neighbours (refined, as the map was made).
    for level in after.levels:
        assert level.basin.shape == (5,)
    assert after.tree.linkage.shape == (4, 4) and bool(after.tree.connected.all())
    assert bool(after.tree.refined.all())
    # The old map's pairs keep their barriers.
    index = after.barriers.index()
    for (i, j), est, ref in zip(before.barriers.pairs.tolist(), before.barriers.estimate, before.barriers.refined):
        row = index[(i, j)]
        assert after.barriers.estimate[row] <= est
        if np.isfinite(ref):
            assert after.barriers.refined[row] == ref
    # Every chain ended in a minimum of the extended map.
    assert result.funnel.chain_minimum.max() < 5 and result.funnel.occupancy.shape == (5, after.n_basins)
    # The extended map writes and reads back under the schema, keeping its identity.
    rewrite_map(path, after)
    back = read_map(path)
    assert back.n_minima == 5 and back.funnel is not None and back.meta.created == before.meta.created
    assert "updated" in back.meta.extra
    np.testing.assert_array_equal(back.funnel.chain_minimum, result.funnel.chain_minimum)


@pytest.mark.slow
def test_a_probe_without_refinement_keeps_every_refined_barrier_of_the_map(tmp_path, data):
    two = data[(data[:, 0] > 1.5) | (data[:, 1] > 1.5)]
    _, before = make_map(tmp_path, planted_funnel, two, "partial", init="data", steps=0, ladder=(0.3, 3.0), rounds=1)
    assert np.isfinite(before.barriers.refined).all()
    after = funnel_probe(planted_energy(planted_funnel), before, probe_config(chains=30), data=data,
                         refine=False).content
    assert after.n_minima > before.n_minima
    index = after.barriers.index()
    for (i, j), ref in zip(before.barriers.pairs.tolist(), before.barriers.refined):
        assert after.barriers.refined[index[(i, j)]] == ref
    # The new pairs keep their estimates: real paths' highest points, nothing refined.
    new = (after.barriers.pairs >= before.n_minima).any(axis=1)
    assert new.any() and not np.isfinite(after.barriers.refined[new]).any()
    assert np.isfinite(after.barriers.estimate[new]).all()


def test_extend_basins_keeps_old_basins_and_hands_the_representative_to_a_lower_minimum():
    answer = tilted_wells_exact(2)
    x = torch.from_numpy(answer.minima)
    u = torch.from_numpy(answer.energy)
    e = Energy(tilted_wells, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    ad = ADConfig(temperature=0.05, eps=0.02, max_steps=800, patience=200, delta=0.1, attempts=2, neighbours=4)
    old = Minima(x[1:], u[1:], torch.ones(3, dtype=torch.int64), torch.zeros(3, dtype=torch.float64))
    every = Minima(torch.cat([x[1:], x[:1]]), torch.cat([u[1:], u[:1]]), torch.ones(4, dtype=torch.int64),
                   torch.zeros(4, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    # Weak pull: every well its own basin; the new, lowest minimum founds basin 0.
    prior, _ = assign_basins(e, old, replace_alpha(ad, 0.5), gen)
    assert prior.n_basins == 3
    ext, records, old_to_new = extend_basins(e, every, prior, replace_alpha(ad, 0.5), gen)
    assert ext.n_basins == 4 and old_to_new.tolist() == [1, 2, 3]
    assert ext.representative[0] == 3 and ext.basin[3] == 0
    assert ext.basin[:3].tolist() == old_to_new[prior.basin].tolist()
    # Only the new minimum's trials were run: every recorded pair involves it.
    assert len(records) and bool((records.pairs == 3).any(axis=1).all())
    # Strong pull: one basin; the new minimum joins it and, being lower, represents it.
    prior, _ = assign_basins(e, old, replace_alpha(ad, 200.0), gen)
    assert prior.n_basins == 1 and int(prior.representative[0]) == 0
    ext, records, old_to_new = extend_basins(e, every, prior, replace_alpha(ad, 200.0), gen)
    assert ext.n_basins == 1 and int(ext.representative[0]) == 3
    assert float(ext.energy[0]) == pytest.approx(float(u[0]))
    # The chain that joined it climbed at least the exact saddle to its neighbour.
    row = [k for k, (a, b) in enumerate(records.pairs.tolist()) if b == 3 and np.isfinite(records.barrier[k])]
    assert row
    saddles = {tuple(sorted(p)): h for p, h in zip(answer.pairs.tolist(), answer.saddle)}
    for k in row:
        a = int(records.pairs[k, 0]) + 1  # `every` puts the exact minimum a + 1 at index a
        exact = saddles.get(tuple(sorted((a, 0))))
        if exact is not None:
            assert records.barrier[k] >= exact - 1e-3 * abs(exact)  # a discrete chain samples the path


def replace_alpha(cfg: ADConfig, alpha: float) -> ADConfig:
    from dataclasses import replace

    return replace(cfg, alpha=alpha)


@pytest.mark.slow
def test_an_interrupted_probe_resumes_to_the_same_result(tmp_path, data):
    path, content = make_map(tmp_path, balanced_wells, data, "resume")
    energy = planted_energy(balanced_wells)
    cfg = probe_config(chains=20)
    whole = funnel_probe(energy, content, cfg, data=data).funnel

    class StopAfterTwo(Reporter):
        def __init__(self):
            self.levels = 0

        def note(self, text):
            if "quenched" in text:
                self.levels += 1
                if self.levels == 2:
                    raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        funnel_probe(energy, content, cfg, data=data, progress_file=path, reporter=StopAfterTwo())
    assert progress_path(path, "funnel").exists()
    with pytest.raises(LandscapeError, match="--resume"):
        funnel_probe(energy, content, cfg, data=data, progress_file=path)
    with pytest.raises(LandscapeError, match="other settings"):
        funnel_probe(energy, content, probe_config(chains=21), data=data, progress_file=path, resume=True)
    resumed = funnel_probe(energy, content, cfg, data=data, progress_file=path, resume=True).funnel
    np.testing.assert_array_equal(resumed.chain_minimum, whole.chain_minimum)
    np.testing.assert_allclose(resumed.occupancy, whole.occupancy)
    assert resumed.score == whole.score


def _two_of_eight_wells(tmp_path):
    """A map of 2 of the 8 wells in 3-D (one minimum per round of attraction-diffusion), its
    data, a probe's settings, and the uninterrupted probe, which finds the other 6."""
    energy = Energy(tilted_wells, shape=(3,), data_range=(-2.0, 2.0), dtype=torch.float64, name="wells")
    g = torch.Generator().manual_seed(0)
    two = torch.from_numpy(tilted_wells_exact(3).minima[:2]).repeat(50, 1)
    two = two + 0.05 * torch.randn(100, 3, generator=g, dtype=torch.float64)
    cfg = MapConfig(chains=16, init="data", steps=0, rounds=1, grid=0, max_steps=400, patience=50, attempts=1,
                    round_size=1)
    path = write_map(tmp_path / "two.h5", build_map(energy, cfg, data=two).content, config=cfg.to_dict(),
                     source={"kind": "function", "spec": "landscape.potentials:tilted_wells"}, tool_version="test")
    content = read_map(path)
    probe = probe_config(noise=(0.0, 0.3, 0.6), steps=50, chains=10)
    whole = funnel_probe(energy, content, probe, data=two)
    assert content.n_minima == 2 and whole.new_minima == 6 and whole.content.n_minima == 8
    return energy, two, path, content, probe, whole


def test_a_probe_interrupted_in_the_strings_of_its_new_minima_resumes_there(tmp_path, monkeypatch, capsys):
    # The new minima's neighbour pairs are refined in batches of strings (here of 4), saved
    # after each: a probe interrupted among them continues after the last batch saved.
    monkeypatch.setattr(pipeline, "_SAVE_EVERY", 0.0)
    monkeypatch.setattr(pipeline, "_SAVE_COST", 0.0)
    monkeypatch.setattr(pipeline, "_STRING_BATCH", 4)
    energy, two, path, content, probe, whole = _two_of_eight_wells(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        funnel_probe(energy, content, probe, data=two, progress_file=path,
                     reporter=CountingStrings("refining barriers (new neighbours", stop_at=10))
    saved = load_progress(path, "funnel")
    strings = len(saved["mapping/refining/info"]["rows"])
    assert saved["mapping/refining/info"]["done"] == 8 and "mapping/new" not in saved
    code, said, _ = run(capsys, "info", f"{path}.funnel.partial")
    assert code == 0, said
    assert (f"mapping    the new minima into the map: done: nothing yet; under way: the string method: 8 of "
            f"{strings} strings") in said
    log = CountingStrings("refining barriers (new neighbours")
    resumed = funnel_probe(energy, content, probe, data=two, progress_file=path, resume=True, reporter=log)
    assert log.counted[0] == 8  # (the strings run before: counted, not run again)
    assert any(t.startswith(f"resuming the string method (new neighbours) after 8 of its {strings}") for t in log.notes)
    assert_same_map(resumed.content, whole.content)
    np.testing.assert_array_equal(resumed.funnel.chain_minimum, whole.funnel.chain_minimum)


@pytest.mark.parametrize("where", ["after the new neighbours", "between batches", "inside a batch"])
def test_a_probe_interrupted_while_mapping_its_new_minima_resumes_to_the_same_map(tmp_path, monkeypatch, capsys,
                                                                                   where):
    # A map of 2 of the 8 wells in 3-D; the probe's chains find the other 6, which are
    # mapped into it at each of its 5 levels, one minimum per round: many batches of trials,
    # saved after every one (and inside them). Interrupted anywhere, the probe continues
    # from the last save to the map and funnel the uninterrupted probe gives.
    monkeypatch.setattr(pipeline, "_SAVE_EVERY", 0.0)
    monkeypatch.setattr(pipeline, "_SAVE_COST", 0.0)
    energy, two, path, content, probe, whole = _two_of_eight_wells(tmp_path)

    stages: list[str] = []
    notes: list[str] = []
    calls: list[int] = []

    class Log(Reporter):
        def stage(self, name, total=None, unit="it"):
            stages.append(name)
            self.mapping = name.startswith("mapping 6 new minima")
            if where == "after the new neighbours" and self.mapping and interrupting:
                raise KeyboardInterrupt

        def note(self, text):
            notes.append(text)

        def advance(self, n=1):
            if getattr(self, "mapping", False):
                calls.append(n)  # (first, per level, the minima placed already: none, unless resumed part-way)
            self.placed = getattr(self, "placed", 0) + n * getattr(self, "mapping", False)
            if where == "between batches" and interrupting and self.placed >= 12:
                raise KeyboardInterrupt

        def detail(self, text):
            if where == "inside a batch" and armed and interrupting:
                raise KeyboardInterrupt

    armed = arm_after_a_batch_save(monkeypatch, 20)  # (interrupted after a save 32+ steps into a batch)
    interrupting = True
    with pytest.raises(KeyboardInterrupt):
        funnel_probe(energy, content, probe, data=two, progress_file=path, reporter=Log())
    saved = load_progress(path, "funnel")
    assert saved["levels_done"] == 3 and saved["mapping/new"] == [2, 6] and "mapping/pairs/pairs" in saved
    if where == "after the new neighbours":
        assert not any(k.startswith("mapping/running") for k in saved)
    else:  # part-way through the ladder: some new minima placed at a level, not all
        placed = [int((saved[f"mapping/running{k}/basin_of"] >= 0).sum()) for k in range(5)]
        assert saved["mapping/running"] == ["0", "1", "2", "3", "4"] and 2 < min(placed) and max(placed) <= 8
        assert sum(placed) < 40
        placed_new = sum(placed) - 5 * 2
        assert ("mapping/running_turn/info" in saved) == (where == "inside a batch")
    code, said, _ = run(capsys, "info", f"{path}.funnel.partial")  # what the progress holds, in words
    assert code == 0 and said.startswith(f"unfinished funnel probe of {path} (its progress in {path}.funnel.partial")
    assert "done       3 noise levels of chains run and quenched (20 chains each)" in said
    assert "mapping    6 new minima into the map of 2: done: barriers between neighbours, the new minima included" in said
    if where != "after the new neighbours":
        assert (f"under way: attraction-diffusion at alpha 0.03, 0.1, 0.3, 1, 3 units: "
                f"{', '.join(map(str, placed))} of 8 minima placed") in said
        assert ("; inside a batch of trials at step" in said) == (where == "inside a batch")
    # Progress of another probe, or made with refinement where it is off now, is refused.
    bad = tmp_path / "bad.h5"
    save_progress(bad, {**saved, "mapping/new": [2, 5]}, kind="funnel")
    with pytest.raises(LandscapeError, match="other new minima"):
        funnel_probe(energy, content, probe, data=two, progress_file=bad, resume=True)
    for key, value, error in (("level1/x", saved["level1/x"][:-1], "progress of the funnel probe is damaged"),
                              ("mapping/pairs/pairs", saved["mapping/pairs/pairs"] + 100,
                               r"progress is damaged \(pairs/pairs holds indices outside \[0, 8\)\)"),
                              ("mapping/saddles/paths", np.full_like(saved["mapping/saddles/paths"], np.nan),
                               "saddles/paths holds paths of fewer than two points")):
        save_progress(bad, {**saved, key: value}, kind="funnel")
        with pytest.raises(LandscapeError, match=error):
            funnel_probe(energy, content, probe, data=two, progress_file=bad, resume=True)
    with pytest.raises(LandscapeError, match="made with refinement: resume with --refine"):
        funnel_probe(energy, content, probe, data=two, progress_file=path, resume=True, refine=False)
    stages.clear()
    calls.clear()
    interrupting = False
    # (the time the mapping had run, as saved, made long: a resumed probe adds it to its own)
    state = load_progress(path, "funnel")
    state["mapping/seconds"] = {k: v + 1000.0 for k, v in state["mapping/seconds"].items()}
    save_progress(path, state, kind="funnel")
    before = pipeline.time_spent(state, "mapping/")
    assert before >= 1000.0
    t0 = time.perf_counter()
    resumed = funnel_probe(energy, content, probe, data=two, progress_file=path, resume=True, reporter=Log())
    # the mapping's time counts what it ran before the interruption
    assert before < resumed.seconds["mapping"] <= before + time.perf_counter() - t0
    assert sum(calls[:5]) == (0 if where == "after the new neighbours" else placed_new)  # (it went on from there)
    # The work saved is not done again: the new neighbours' strings ran before the interruption.
    assert not any(s.startswith("refining barriers (new neighbours") for s in stages)
    said = [t for t in notes if t.startswith("resuming mapping the 6 new minima part-way")]
    assert len(said) == (where != "after the new neighbours")
    # each level's basins before and after, named by its pull in units as map and info name it (was "alpha 2.133")
    assert [t.split(":")[0] for t in notes if " -> " in t and "basin" in t][-5:] == [
        "alpha 0.03 units", "alpha 0.1 units", "alpha 0.3 units", "alpha 1 units", "alpha 3 units"]
    assert (where == "inside a batch") == any(", inside a batch of trials at step" in t for t in said)
    assert_same_map(resumed.content, whole.content)
    assert set(load_progress(path, "funnel")["mapping/seconds"]) == {"neighbours", "basins", "refine"}  # (all timed)
    np.testing.assert_array_equal(resumed.funnel.chain_minimum, whole.funnel.chain_minimum)
    np.testing.assert_array_equal(resumed.funnel.occupancy, whole.funnel.occupancy)


# ----------------------------------------------------------------------------- CLI


@pytest.mark.slow
def test_landscape_funnel_end_to_end(capsys, tmp_path, data):
    npz = tmp_path / "wells.npz"
    np.savez(npz, x=data.numpy().astype(np.float32))
    out = tmp_path / "funnel.h5"
    code, _, err = run(
        capsys, "map", "--energy", "landscape.potentials:planted_funnel", "--shape", "2", "--box", "-4.5", "4.5",
        "--float64", "--temperature", str(T), "--eps", "0.1", "--steps", "100", "--chains", "64", "--rounds", "1",
        "--dataset", f"npz:{npz}", "--max-steps", "600", "--patience", "100", "--attempts", "2", "--neighbours", "4",
        "--out", out, "--quiet",
    )
    assert code == 0, err
    plot = tmp_path / "f.png"
    code, stdout, err = run(capsys, "funnel", out, "--chains", "40", "--steps", "300", "--plot", plot, "--json",
                            "--quiet")
    assert code == 0, err
    result = json.loads(stdout)
    # The map's exploration T sets the unit: sqrt(0.05).
    np.testing.assert_allclose(result["noise"], [TAU * m for m in LADDER])
    assert result["score"] >= 0.8 and result["funnel"] is True
    c = read_map(out)
    assert c.funnel is not None and c.funnel.score == pytest.approx(result["score"])
    assert plot.read_bytes()[:4] == b"\x89PNG"
    code, stdout, err = run(capsys, "info", out)
    assert code == 0, err
    assert f"funnel    funnel score {result['score']:.2f}: a funnel" in stdout
    # The probe records the unit its levels were given in, and where it came from.
    assert c.funnel.attrs["noise_unit"] == pytest.approx(TAU)
    assert c.funnel.attrs["noise_unit_source"] == f"sqrt of the map's exploration temperature {T:g}"
    # Nothing is replaced without --force; a bad map is one line.
    code, _, err = run(capsys, "funnel", out, "--plot", plot, "--quiet")
    assert_one_line_error(code, err, "has a funnel probe already: pass --force")
    before = out.read_bytes()
    code, _, err = run(capsys, "funnel", out, "--chains", "10", "--plot", plot, "--resume", "--quiet")
    assert_one_line_error(code, err, "has a finished funnel probe of other settings and no unfinished one to resume")
    code, stdout, err = run(capsys, "funnel", out, "--chains", "40", "--steps", "300", "--plot", plot, "--resume")
    assert code == 0 and "its funnel probe of these settings is finished: nothing to resume" in stdout
    assert out.read_bytes() == before  # --resume with nothing to resume replaced nothing
    assert "wrote /funnel" not in stdout  # (nor says it did)
    code, _, err = run(capsys, "funnel", out, "--dataset", "digits", "--force", "--quiet")
    assert_one_line_error(code, err, r"digits has examples of shape \[1, 8, 8\].*\[2\]")
    assert out.read_bytes() == before
    code, _, err = run(capsys, "funnel", tmp_path / "nothing.h5", "--quiet")
    assert_one_line_error(code, err, "no such file")
    text = tmp_path / "notes.txt"
    text.write_text("not a model")
    code, _, err = run(capsys, "funnel", text, "--quiet")
    assert_one_line_error(code, err, "no map of")


WELLS = """
import torch

def wells(x):
    return ((x ** 2 - 1) ** 2 + torch.tensor([0.25, 0.5], dtype=x.dtype) * x).sum(1)
"""

NAN_WELLS = """
import torch

def wells(x):
    u = ((x ** 2 - 1) ** 2 + torch.tensor([0.25, 0.5], dtype=x.dtype) * x).sum(1)
    outside = (x[:, 0] > 1.1) | (x[:, 0] < -1.2)  # the same wells, NaN beyond them
    return torch.where(outside, torch.full_like(u, float("nan")), u)
"""


@pytest.mark.slow
def test_nan_energies_end_the_probe_in_one_line_and_leave_the_map_alone(capsys, tmp_path):
    pot = tmp_path / "pot.py"
    pot.write_text(WELLS)
    out = tmp_path / "wells.h5"
    code, _, err = run(
        capsys, "map", "--energy", f"{pot}:wells", "--shape", "2", "--box", "-1.6", "1.6", "--float64",
        "--temperature", "0.05", "--chains", "16", "--steps", "20", "--rounds", "1", "--ladder", "1",
        "--ladder-extend", "0", "--max-steps", "300", "--patience", "50", "--attempts", "1", "--neighbours", "3",
        "--out", out, "--quiet",
    )
    assert code == 0, err
    before = out.read_bytes()
    pot.write_text(NAN_WELLS)  # the energy the map records, now NaN beyond its wells
    code, _, err = run(capsys, "funnel", out, "--chains", "8", "--steps", "20", "--quiet")
    assert_one_line_error(code, err, "never runs code: name the energy yourself with --energy")
    code, _, err = run(capsys, "funnel", out, "--energy", f"{pot}:wells", "--chains", "8", "--steps", "20", "--quiet")
    assert_one_line_error(code, err, "non-finite")
    assert out.read_bytes() == before


def test_the_noise_unit_of_a_map_whose_attraction_diffusion_temperature_was_lowered_is_the_one_before():
    # A map of an energy without a temperature of its own: the noise unit is sqrt(T_AD), a
    # tenth of its lowest barrier; attraction-diffusion lowered T_AD 100x in many dimensions
    # (for its chains to arrive), which says nothing about the barriers a funnel is about.
    from landscape.io.records import MapMeta
    from landscape.mapping.funnel import noise_unit

    content = build_map(Energy(mueller_brown, shape=2, data_range=(-1.5, 2.0)), MapConfig(chains=16, rounds=1,
                                                                                          grid=0)).content
    t_ad = content.settings()["ad_temperature"]
    assert noise_unit(content)[0] == pytest.approx(math.sqrt(t_ad))
    settings = {**content.meta.extra["settings"], "ad_temperature": t_ad / 100, "ad_temperature_lowered": 100.0}
    content.meta = MapMeta(**{**content.meta.__dict__, "extra": {**content.meta.extra, "settings": settings}})
    unit, why = noise_unit(content)
    assert unit == pytest.approx(math.sqrt(t_ad)) and "before it was lowered" in why
    assert why.startswith(f"sqrt of the map's attraction-diffusion temperature before it was lowered, {t_ad / 100:.4g} "
                          "x 100"), why


# ------------------------------------------------------------------------ the figure


def probed_map(occupancy, chains, sinks, **attrs):
    """A hand-made map of as many minima as basins, with a probe of these shares per level."""
    occ = np.asarray(occupancy, dtype=np.float64)
    content = hand_made_map(np.zeros((occ.shape[1], 2)), np.arange(float(occ.shape[1])))
    content.funnel = FunnelData(noise=np.arange(float(occ.shape[0])), occupancy=occ,
                                entropy=np.array([entropy(r) for r in occ]), score=0.0,
                                attrs={"chains_per_level": chains, **attrs}, sinks=np.asarray(sinks))
    return content


def bar_heights(ax):
    """Per bar series (a legend entry), its heights per level."""
    return {c.get_label(): [p.get_height() for p in c.patches] for c in ax.containers}


def test_the_figure_colours_only_the_sinks_the_text_names_and_says_where_all_chains_are_apart():
    # (the demo's convergent probe: at noise 8 each of 48 chains in a basin of its own, the
    # text "48 basins tie at 2%", and the bars coloured five of them "basin 1, 8, 9, 19, 35",
    # the stored sinks, taken by index from the tie)
    from landscape.plots.funnel import draw_funnel_shares

    occ = [[0.5, 0.25, 0.25, 0, 0, 0], [0.25, 0.25, 0.25, 0.25, 0, 0], [0, 0, 0, 0.25, 0.25, 0.5]]
    sinks_stored = [[0, -1], [0, 1], [5, -1]]
    ax = draw_funnel_shares(probed_map(occ, 4, sinks_stored), new_axes())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["basin 0", "basin 5", "other basins"]
    bars = bar_heights(ax)
    assert bars["basin 0"] == [0.5, 0.0, 0.0] and bars["basin 5"] == [0.0, 0.0, 0.5]
    assert bars["other basins"] == [0.5, 1.0, 0.5]  # (all grey where no basin is a sink)
    notes = {round(t.get_position()[0]): t.get_text() for t in ax.texts}
    assert notes == {1: "all 4 chains apart"}
    # 8 chains, two in each of 4 basins: a tie, not every chain apart.
    ax = draw_funnel_shares(probed_map(occ, 8, sinks_stored), new_axes())
    assert [t.get_text() for t in ax.texts] == ["4 basins tie at 25%"]


def test_the_figure_draws_each_curve_s_ceiling_and_says_of_how_many_chains_the_reference_is():
    # (the dotted reference, exp(H) of the 24 quenched data starts, sat under the curve of all
    # 48 chains with nothing to say that the two have different ceilings)
    from landscape.plots.funnel import draw_funnel_entropy

    occ = [[0.5, 0.5, 0, 0], [0.25, 0.25, 0.25, 0.25], [0.25, 0.25, 0.25, 0.25]]
    content = probed_map(occ, 4, [[0, -1], [0, 1], [0, 1]], reference_entropy=math.log(2),
                         reference="chains from data at the lowest noise")
    f = content.funnel
    f.chain_start = np.array([0, 0, 1, 1], dtype=np.int8)
    f.occupancy_data = np.array([[0.5, 0.5, 0, 0], [0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5]])
    f.occupancy_noise = np.array([[0.5, 0.5, 0, 0], [0, 0, 0.5, 0.5], [0.5, 0.5, 0, 0]])
    ax = draw_funnel_entropy(content, new_axes())
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["all chains (4)", "chains from data (2)", "chains from noise (2)",
                      "the data's basins: 2.0 of 2 chains (the score's reference)"]
    flat = {float(line.get_ydata()[0]) for line in ax.lines if len(set(np.ravel(line.get_ydata()))) == 1}
    assert {4.0, 2.0} <= flat  # the ceilings
    assert sorted(t.get_text() for t in ax.texts) == ["at most 2", "at most 4"]
    assert ax.get_ylim()[1] > 4.0
    assert ax.get_title() == ("too few chains to tell a funnel (score 0.00)\nthe score: all chains at noise 1 to 2 "
                              "against the reference")


def test_the_figure_s_ceiling_is_the_map_s_basins_where_they_are_fewer_than_the_chains_and_one_start_is_one_curve():
    # (Mueller-Brown's probe: 100 chains from noise over 3 basins drew exp(H) of 2.5-3 on a
    # scale to 100, and a "chains from noise" curve on top of "all chains")
    from landscape.plots.funnel import draw_funnel_entropy

    occ = [[0.4, 0.3, 0.3], [0.6, 0.2, 0.2]]
    content = probed_map(occ, 100, [[0, 1], [0, -1]])
    content.funnel.chain_start = np.ones(100, dtype=np.int8)
    content.funnel.occupancy_noise = np.asarray(occ)
    ax = draw_funnel_entropy(content, new_axes())
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["all chains (100), from noise"]
    assert [t.get_text() for t in ax.texts] == ["at most 3: the map's 3 basins"]
    assert 3.0 < ax.get_ylim()[1] < 4.0


def test_the_figure_draws_basins_tied_at_the_cut_together_so_the_sinks_half_is_all_there():
    # (the demo's non-convergent probe: coloured sinks of 8-44 % under a title of "half its
    # chains", the basins tied at the cut folded into "other basins")
    from landscape.plots.funnel import draw_funnel_shares

    occ = [[0.3, 0.2, 0.2, 0.2, 0.1], [0.6, 0.1, 0.1, 0.1, 0.1]]
    ax = draw_funnel_shares(probed_map(occ, 10, [[0, 1], [0, -1]]), new_axes())
    bars = bar_heights(ax)
    assert bars["basin 0"] == pytest.approx([0.3, 0.6])
    assert bars["basins tied at the cut"] == pytest.approx([0.6, 0.0])
    assert bars["other basins"] == pytest.approx([0.1, 0.4])
    assert [t.get_text() for t in ax.texts] == []  # (a level with a clear sink says nothing more)


def test_the_figure_says_the_noise_unit_and_where_it_came_from():
    # (the non-convergent digits probe's levels 0, 0.0111, ..., 0.0888, with no word of the
    # unit 0.0111 = sqrt(T_AD before its 5.6x lowering))
    from landscape.plots.funnel import draw_funnel_entropy, draw_funnel_shares

    occ = [[0.5, 0.5], [1.0, 0.0]]
    content = probed_map(occ, 10, [[0, -1], [0, -1]], noise_unit=0.5,
                         noise_unit_source="sqrt of the map's exploration temperature 0.25")
    content.funnel.noise = np.array([0.0, 1.0])
    ax = draw_funnel_shares(content, new_axes())
    assert ax.get_xlabel().replace("\n", " ").endswith(
        "(4x) = 4 times the noise unit 0.5: sqrt of the map's exploration temperature 0.25")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0\n(0x)", "1\n(2x)"]
    ax = draw_funnel_entropy(content, new_axes())
    assert ax.get_xlabel() == "noise level tau (in brackets: x the noise unit 0.5)"
    content.funnel.attrs["noise_unit"] = 1.0  # a unit of 1: the ticks are the multiples already
    ax = draw_funnel_shares(content, new_axes())
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    assert ax.get_xlabel().replace("\n", " ").endswith("noise unit 1: sqrt of the map's exploration temperature 0.25")


def test_the_probe_s_config_carries_its_noise_unit_and_its_source_apart_from_the_chains_settings():
    content = hand_made_map(np.zeros((3, 2)), [0.0, 1.0, 2.0], config={"eps": 0.1, "temperature": 0.25})
    auto = funnel_config(content)
    assert (auto.noise_unit, auto.noise_unit_source) == (0.5, "sqrt of the map's exploration temperature 0.25")
    assert auto.noise == (0.0, 0.5, 1.0, 2.0, 4.0)
    # A unit given: its source is the automatic one's where it is that unit, else what the caller says.
    assert funnel_config(content, unit=0.5).noise_unit_source == "sqrt of the map's exploration temperature 0.25"
    assert funnel_config(content, unit=3.0).noise_unit_source is None
    assert funnel_config(content, unit=3.0, unit_source="given").noise_unit_source == "given"
    # Not a setting of the chains: the stored config and the fingerprint a resume matches leave it out.
    bare = FunnelConfig(**auto.to_dict())
    assert "noise_unit" not in auto.to_dict() and bare.fingerprint() == auto.fingerprint()
    with pytest.raises(LandscapeError, match="noise_unit must be > 0"):
        FunnelConfig(**auto.to_dict(), noise_unit=0.0)
    zero = hand_made_map(np.zeros((3, 2)), [0.0, 1.0, 2.0], config={"eps": 0.1, "temperature": 0.0},
                         attrs={"levels": {"temperature": 0.04}})
    assert funnel_config(zero).noise_unit_source == ("sqrt of the map's attraction-diffusion temperature 0.04; the map "
                                                     "explored at T = 0")


def test_an_end_point_beyond_a_barrier_from_a_map_minimum_is_a_new_minimum():
    from landscape.mapping.funnel import _match

    # Minima 0.060 apart (x0 = -0.0307, U = -0.2024, and 0.0292, U = 0.1974) behind a
    # barrier 0.81 high, closer than the merge radius: a map that holds only the lower
    # has its chains' ends in the higher one as a new minimum, not as the lower.
    def u(x):
        y = x[:, 0] / 0.03
        return (y ** 2 - 1) ** 2 + 0.2 * y + x[:, 1] ** 2

    e = Energy(u, shape=(2,), data_range=(-3.0, 3.0), dtype=torch.float64)
    low = torch.tensor([[-0.030724, 0.0]], dtype=torch.float64)
    ends = torch.tensor([[0.029220, 0.0], [-0.030724, 1e-9], [0.029220, 1e-9]], dtype=torch.float64)
    owner, keep, counts = _match(e, ends, e(ends), low, e(low).numpy(), radius=0.085)
    assert owner.tolist() == [1, 0, 1] and keep.tolist() == [0] and counts.tolist() == [2]


def test_a_probe_resumed_with_other_data_is_refused(tmp_path):
    # (`funnel --resume --dataset 8gaussians` on a probe started from the rings data went
    # on with the rings chains already run, and wrote a probe of neither)
    from landscape.mapping.funnel import funnel_config, funnel_probe
    from landscape.potentials import mueller_brown

    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    m = build_map(energy, MapConfig(chains=16, rounds=1, grid=0, refine=False)).content
    a = torch.tensor([[-0.55, 1.44], [0.62, 0.03]], dtype=torch.float64)
    b = torch.tensor([[-0.05, 0.47], [0.62, 0.03]], dtype=torch.float64)
    config = replace(funnel_config(m, with_data=True), noise=(0.0, 1.0), chains=4, steps=10)
    path = tmp_path / "m.h5"
    first = funnel_probe(energy, m, config, data=a, progress_file=path, refine=False)
    with pytest.raises(LandscapeError, match=r"^the saved progress of the funnel probe was made with other data "):
        funnel_probe(energy, m, config, data=b, progress_file=path, resume=True, refine=False)
    again = funnel_probe(energy, m, config, data=a, progress_file=path, resume=True, refine=False)
    np.testing.assert_array_equal(again.funnel.occupancy, first.funnel.occupancy)


def test_a_noise_level_whose_steps_are_wider_than_the_box_is_said_to_probe_the_box(tmp_path):
    # (`--noise 0,1e15` ran, and scored chains that ended on the box's faces as if they
    # had probed the energy)
    from landscape.mapping.funnel import funnel_config, funnel_probe
    from landscape.potentials import mueller_brown

    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    m = build_map(energy, MapConfig(chains=16, rounds=1, grid=0, refine=False)).content
    config = replace(funnel_config(m), chains=8, steps=10)
    wide = 3.6 / config.eps  # (random steps 3.6 across in a box 3.5 wide: two thirds of the coordinates on its faces)
    said = {}
    for noise in ((0.0, 1.0), (0.0, 1.0, wide, 2 * wide)):
        heard = Notes()
        funnel_probe(energy, m, replace(config, noise=noise), reporter=heard, refine=False)
        said[noise] = [n for n in heard.notes if "wider than the box" in n]
    assert said[(0.0, 1.0)] == []
    [note] = said[(0.0, 1.0, wide, 2 * wide)]
    assert note == (f"noise {wide:.3g}, {2 * wide:.3g}: the chains' random steps (noise x eps = 3.6 to 7.2) are wider "
                    "than the box (3.5 wide): clamped to it at every step, they end mostly on its faces whatever the "
                    "energy, and only lower noise levels probe the landscape")
