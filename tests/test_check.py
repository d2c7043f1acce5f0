"""The long-run convergence check: the rule on known energies, and `landscape check` end to end."""

import json
import math
import os
import re

import pytest
import torch

from landscape.cli.check_cmd import check_cmd
from landscape.cli.errors import run_guarded
from landscape.cli.main import cli
from landscape import Energy
from landscape.errors import LandscapeError
from landscape.train.check import (
    Stage,
    Thresholds,
    agreement,
    check_energy,
    decide,
    save_check_figure,
    save_check_samples,
)

SHAPE = (1, 4, 4)  # tiny images in [-1, 1]
SIGMA = 0.2


@pytest.fixture(scope="module")
def gaussian_data():
    return SIGMA * torch.randn((400, *SHAPE), generator=torch.Generator().manual_seed(0))


def image_energy(fn):
    return Energy(fn, shape=SHAPE, data_range=(-1.0, 1.0), name="analytic")


def run_check(energy, data, **kw):
    settings = {"L": 20, "epsilon": 0.05, "tau": 1.0, "multiples": (1, 3, 10), "n_chains": 64, "seed": 1}
    settings.update(kw)
    return check_energy(energy, data, **settings)


def test_a_well_matching_the_data_is_convergent(gaussian_data, tmp_path):
    # U = |x|^2 / (2 sigma^2) is the data's own density: its steady state is the data's
    well = image_energy(lambda x: x.flatten(1).pow(2).sum(1) / (2 * SIGMA**2))
    r = run_check(well, gaussian_data)
    assert r.verdict == "convergent" and r.reasons == [] and r.onset is None
    assert [s.steps for s in r.stages["data"]] == [20, 60, 200]
    last = r.stages["data"][-1]
    assert 0.5 < last.nn_ratio < 1.5  # fresh samples of the data's density sit at the data's spacing
    assert abs(last.energy_drift) < 1.0 and last.saturation < 0.01
    assert r.data.saturation == 0.0 and r.data.energy_mean == pytest.approx(8.0, rel=0.15)  # D/2 for D = 16
    assert r.noise_summary.startswith("from noise: chains reach the data")
    assert r.agreement == "regime unknown" and r.verdict_line().endswith("all within the thresholds); regime unknown")
    save_check_figure(r, tmp_path / "check.png")
    save_check_samples(r, tmp_path / "samples.png", well)
    assert (tmp_path / "check.png").stat().st_size > 0 and (tmp_path / "samples_start.png").exists()
    # Five panels in rows of three (in one row, 2428 x 448 pixels, their labels were
    # unreadable at a screen's width), the evidence in words in the sixth slot.
    from PIL import Image

    width, height = Image.open(tmp_path / "check.png").size
    assert width < 2.2 * height, (width, height)
    svg = (tmp_path / "check.svg")
    save_check_figure(r, svg)
    assert "all within the thresholds" in svg.read_text()


def test_a_well_at_the_range_end_is_non_convergent_by_every_criterion(gaussian_data):
    # every pixel pulled to +1: long-run samples are saturated images of low energy, far from the data
    corner = image_energy(lambda x: (x.flatten(1) - 1).pow(2).sum(1) / (2 * 0.05**2))
    r = run_check(corner, gaussian_data, epsilon=0.02)
    assert r.verdict == "non-convergent"
    assert [k for k in ("NN distance", "pixels saturated", "sd below") if any(k in why for why in r.reasons)] == [
        "NN distance", "pixels saturated", "sd below"]
    last = r.stages["data"][-1]
    assert last.nn_ratio > 3 and last.saturation_excess > 0.5 and last.energy_drift > 3
    assert r.verdict_line().startswith("verdict: non-convergent (after 10L from data: NN distance")
    r.regime, r.agreement = "non-convergent", agreement(r.verdict, "non-convergent")
    assert r.verdict_line().endswith("; trained as non-convergent: agrees")
    assert json.loads(json.dumps(r.to_dict()))["stages"]["data"][-1]["steps"] == 200


def test_a_check_figure_says_which_panels_are_on_a_log_scale():
    # (the demo's two check figures side by side: one model's distances on a log axis, the
    # other's linear, with nothing to say so)
    from matplotlib.figure import Figure

    from landscape.train.check import _log_if_decades

    ax = Figure().add_subplot()
    ax.set_ylabel("mean distance", fontsize=9)
    _log_if_decades(ax, [1.0, 3.0])
    assert ax.get_yscale() == "linear" and ax.get_ylabel() == "mean distance"
    _log_if_decades(ax, [1.0, 66.0])
    assert ax.get_yscale() == "log" and ax.get_ylabel() == "mean distance (log scale)"
    assert ax.yaxis.label.get_fontsize() == 9


def test_chains_that_blow_up_are_non_convergent(gaussian_data):
    quartic = image_energy(lambda x: -x.flatten(1).pow(4).sum(1))
    r = run_check(quartic, gaussian_data, epsilon=0.5, inits=("data",))
    assert r.verdict == "non-convergent" and "non-finite" in r.reasons[0]
    assert not r.stages["data"][-1].finite and "noise" not in r.stages
    assert r.to_dict()["stages"]["data"][-1]["energy"] is None  # JSON-safe


def test_each_criterion_alone_decides():
    def stage(nn=1.0, excess=0.0, drift=0.0):
        return Stage(30, 600, 0.0, drift, nn, nn, 0.5, excess)

    t = Thresholds()
    assert decide(stage(), t) == []
    assert decide(stage(nn=2.9), t) == [] and len(decide(stage(nn=3.1), t)) == 1
    assert decide(stage(excess=0.49), t) == [] and len(decide(stage(excess=0.51), t)) == 1
    assert decide(stage(drift=2.9), t) == [] and len(decide(stage(drift=3.1), t)) == 1
    assert decide(stage(drift=-50.0), t) == []  # only a fall below the data's energy counts
    assert decide(stage(nn=3.1), Thresholds(nn_ratio=4.0)) == []
    # over the bar by less than two figures show: said with three ("= 3x" read as at the bar)
    assert decide(stage(nn=3.0487), t) == ["NN distance 3 = 3.05x the data's spacing"]
    no_images = Stage(30, 600, 0.0, 0.0, 1.0, 1.0, None, None)
    assert decide(no_images, t) == []
    assert agreement("convergent", "convergent") == "agrees"
    assert agreement("convergent", "non-convergent") == "disagrees"
    assert agreement("non-convergent", "unknown") == "regime unknown"
    with pytest.raises(LandscapeError, match="nn_ratio"):
        Thresholds(nn_ratio=0)
    with pytest.raises(LandscapeError, match="saturation_excess must be below 1"):
        Thresholds(saturation_excess=1.0)
    with pytest.raises(LandscapeError, match="settle must be a finite number >= 1"):
        Thresholds(settle=0.5)
    assert len(decide(Stage(30, 600, 0.0, 0.0, 1.0, 1.0, None, None, coverage_ratio=3.1), t)) == 1
    drained = Stage(30, 600, 0.0, 0.0, 1.0, 1.0, None, None, mix_ratio=3.1, mix_top="class 9", mix_top_share=0.31,
                    mix_top_data=0.1)
    assert decide(drained, t) == ["the chains' mix of the data's modes 3.1x as far from the data's as 99% of random "
                                  "draws of as many examples (class 9: 31% of the chains, 10% of held-out data)"]
    assert decide(drained, Thresholds(mix_ratio=4.0)) == []
    with pytest.raises(LandscapeError, match="mix_ratio"):
        Thresholds(mix_ratio=math.nan)


def test_chains_still_moving_at_the_longest_length_run_on_until_they_leave_the_data(gaussian_data):
    # A well off the data (every pixel pulled to 0.5) but wide: at eps 0.05 the chains drift
    # away slowly, 2.9x the data's spacing at 10 L and growing 1.5x per tripling. The check
    # called it convergent at the longest length asked for; a model trained with a small step
    # or tau = 0 passed the same way (1.5x at 30 L, 3.4x at 100 L).
    wide = image_energy(lambda x: (x.flatten(1) - 0.5).pow(2).sum(1) / (2 * 0.5**2))
    asked = run_check(wide, gaussian_data, extend=1)  # (the lengths asked for only)
    assert asked.verdict == "convergent" and not asked.settled and asked.extended == []
    assert asked.explanation.endswith("all within the thresholds, but the chains were still moving away at 10L "
                                      "(distance x1.5 per tripling of the length): longer chains may leave the data; "
                                      "close to the bar (NN distance 2.9x the data's spacing against the bar of 3): "
                                      "another --seed or more --chains may call it non-convergent")
    r = run_check(wide, gaussian_data)
    assert r.verdict == "non-convergent" and r.extended == [30.0]
    assert [s.multiple for s in r.stages["data"]] == [1, 3, 10, 30] and r.stages["data"][-1].steps == 600
    assert [s.multiple for s in r.stages["noise"]] == [1, 3, 10]  # (evidence only: not run on)
    assert r.explanation.startswith("after 30L from data: NN distance") and r.explanation.endswith(
        "(run on past 10L, where the chains were still moving away from the data); close to the bar (NN distance 3.4x "
        "the data's spacing against the bar of 3): another --seed or more --chains may call it convergent")
    assert json.loads(json.dumps(r.to_dict()))["extended"] == [30.0]
    # the data's own density settles at once: nothing runs on
    well = image_energy(lambda x: x.flatten(1).pow(2).sum(1) / (2 * SIGMA**2))
    settled = run_check(well, gaussian_data)
    assert settled.settled and settled.extended == [] and len(settled.stages["data"]) == 3


def test_chains_gathered_in_one_part_of_the_data_are_non_convergent():
    # Data in two clusters, a model with one of them only: each chain ends near some
    # training example (1.6x the spacing) at the data's energies, so only coverage tells
    # (and the chains' mix of the data's clusters, left out here).
    g = torch.Generator().manual_seed(0)
    two = torch.cat([torch.tensor([-0.5, 0.0]) + 0.05 * torch.randn(200, 2, generator=g),
                     torch.tensor([0.5, 0.0]) + 0.05 * torch.randn(200, 2, generator=g)])
    one = Energy(lambda x: (x - torch.tensor([0.5, 0.0], dtype=x.dtype)).pow(2).sum(1) / (2 * 0.05**2), shape=(2,),
                 data_range=(-1.0, 1.0), name="one")
    r = run_check(one, two, epsilon=0.02, thresholds=Thresholds(mix_ratio=1e300))
    last = r.stages["data"][-1]
    assert last.nn_ratio < 3 and last.energy_drift < 3 and last.coverage_ratio > 3
    assert r.verdict == "non-convergent" and len(r.reasons) == 1
    assert re.fullmatch(r"the data [\d.]+x as far from the chains as from as many other examples \(the chains cover "
                        r"part of the data\)", r.reasons[0]), r.reasons
    assert run_check(one, two, epsilon=0.02).reasons[1].startswith("the chains' mix of the data's 10 clusters")
    both = Energy(lambda x: -torch.logsumexp(-(x[:, None] - torch.tensor([[-0.5, 0.0], [0.5, 0.0]], dtype=x.dtype))
                                              .pow(2).sum(2) / (2 * 0.05**2), 1), shape=(2,), data_range=(-1.0, 1.0))
    fair = run_check(both, two, epsilon=0.02)
    assert fair.verdict == "convergent" and fair.stages["data"][-1].coverage_ratio < 2, fair.explanation


def test_chains_that_drain_into_one_class_are_non_convergent_by_their_mix_alone():
    # Four overlapping classes in 16 dimensions, a model of one of them: every chain ends
    # beside some training example (1.0x the spacing), the data are as near the chains as
    # to as many examples (1.1x) and the energies stay in the data's range, as in high
    # dimensions the distances concentrate; only the chains' mix of classes tells.
    g = torch.Generator().manual_seed(0)
    centres = 1.5 * torch.eye(4, 16)
    labels = torch.arange(400) % 4
    data = centres[labels] + 0.5 * torch.randn(400, 16, generator=g)
    one = Energy(lambda x: (x - centres[0].to(x.dtype)).pow(2).sum(1) / (2 * 0.5**2), shape=(16,),
                 data_range=(-3.0, 3.0), name="one")
    everything = Energy(lambda x: -torch.logsumexp(-(x[:, None] - centres.to(x.dtype)).pow(2).sum(2) / (2 * 0.5**2), 1),
                        shape=(16,), data_range=(-3.0, 3.0), name="all")
    r = run_check(one, data, epsilon=0.1, labels=labels)
    last = r.stages["data"][-1]
    assert last.nn_ratio < 1.5 and last.coverage_ratio < 1.5 and last.energy_drift < 3 and last.mix_ratio > 2.5
    assert r.data.modes == "4 classes" and last.mix_top == "class 0" and last.mix_top_share > 0.7
    assert r.verdict == "non-convergent" and len(r.reasons) == 1
    assert re.fullmatch(r"the chains' mix of the data's 4 classes [\d.]+x as far from the data's as 99% of random "
                        r"draws of as many examples \(class 0: \d+% of the chains, \d+% of held-out data\)", r.reasons[0]), r.reasons
    # without labels, k-means clusters of the data stand for the classes
    unlabelled = run_check(one, data, epsilon=0.1)
    assert unlabelled.data.modes == "10 clusters" and unlabelled.verdict == "non-convergent"
    assert unlabelled.stages["data"][-1].mix_ratio > 2
    # the whole mixture keeps the data's mix, with labels or without
    for lab in (labels, None):
        fair = run_check(everything, data, epsilon=0.1, labels=lab)
        assert fair.verdict == "convergent" and fair.stages["data"][-1].mix_ratio < 1, fair.explanation
        assert re.search(r"their mix of the data's (4 classes|10 clusters) [\d.]+x as far from the data's as 99% of "
                         r"random draws", fair.explanation)
    with pytest.raises(LandscapeError, match="one label per training example"):
        run_check(one, data, labels=labels[:10])
    # 8 chains in 4 classes cannot reach the bar, even all in one class: said, not passed silently
    few = run_check(everything, data, epsilon=0.1, labels=labels, n_chains=8)
    assert few.data.mix_reach < 2 and "(the mix cannot reach its bar with this few chains" in few.explanation


def test_coverage_is_not_measured_where_the_data_are_hardly_more_than_the_chains():
    # 100 chains and 100 examples left one example for the coverage yardstick: an exact
    # model of its own data was called non-convergent (8.95x) by that one example's distance
    well = image_energy(lambda x: x.flatten(1).pow(2).sum(1) / (2 * SIGMA**2))
    data = SIGMA * torch.randn((100, *SHAPE), generator=torch.Generator().manual_seed(3))
    r = run_check(well, data, n_chains=100, inits=("data",))
    assert math.isnan(r.data.coverage) and all(math.isnan(s.coverage_ratio) for s in r.stages["data"])
    assert json.loads(json.dumps(r.to_dict()))["data"]["coverage"] is None


@pytest.mark.parametrize("n_examples, weights", [(120, [0.1] * 10), (2000, [0.5, 0.5]), (2000, [0.95, 0.05]),
                                                 (400, [0.02] * 50)])
def test_chains_that_are_independent_draws_of_the_data_pass_the_mix(n_examples, weights):
    # Chains at the data's own steady state are independent draws of its mix. The first
    # yardstick (the mean of draws without replacement, bar 3) failed such chains: 25 % of
    # the time with 100 chains from 120 examples (the draws nearly repeat the data's mix),
    # and at about one seed in 20 with two classes (the ratio to a mean has a long tail).
    from landscape.train.check import Modes

    g = torch.Generator().manual_seed(0)
    labels = torch.multinomial(torch.tensor(weights), n_examples, replacement=True, generator=g)
    modes = Modes(torch.unique(labels, return_inverse=True)[1], [f"class {k}" for k in labels.unique().tolist()],
                  "classes")
    yard = modes.chance(100, g)
    ratios = [modes.mix(torch.randint(n_examples, (100,), generator=g))[0] / yard for _ in range(500)]
    assert max(ratios) < Thresholds().mix_ratio and sum(r > 1 for r in ratios) < 25  # (1 % by design)


def test_labelling_chains_by_their_nearest_example_favours_no_class_that_the_data_do_not():
    # Two classes in 256 dimensions, one spread 1.3x as wide: a fresh sample of the data is
    # nearest to an example of the tighter class far more often than half the time (its
    # examples lie closer together). Compared with the labels' own mix, chains that were
    # exactly the data's distribution failed the mix at every seed (ratio 3.4-3.8); they are
    # now compared with held-out examples labelled the same way.
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(1000) % 2
    centres, spread = torch.zeros(2, 256), torch.tensor([1.0, 1.3])
    centres[1, 0] = 10.0
    data = centres[labels] + spread[labels, None] * torch.randn(1000, 256, generator=g)
    exact = Energy(lambda x: -torch.logsumexp(-(x[:, None] - centres.to(x.dtype)).pow(2).sum(2)
                                              / (2 * spread.to(x.dtype) ** 2) - 256 * spread.to(x.dtype).log(), 1),
                   shape=(256,), data_range=(-10.0, 20.0), name="exact")
    r = run_check(exact, data, epsilon=0.3, multiples=(1, 3), inits=("data",), labels=labels)
    assert r.verdict == "convergent" and all(st.mix_ratio < 1.5 for st in r.stages["data"]), r.explanation
    assert r.stages["data"][-1].mix_top_data > 0.85  # (held-out examples: nearly all nearest the tight class)
    with pytest.raises(LandscapeError, match="labels must be integer classes"):
        run_check(exact, data, labels=labels.double())


def test_a_convergent_verdict_says_how_large_a_drift_of_the_mix_its_chains_could_see():
    # 100 chains over ten equal classes: the bar (2x the TV that 99 % of random draws stay
    # within) is met only once about a third of the chains sit outside the data's mix, so
    # three classes of ten emptied pass. The verdict says so, and the share is the bar's.
    from landscape.train.check import DataYardstick, Modes, _explain

    g = torch.Generator().manual_seed(0)
    modes = Modes(torch.arange(1000) % 10, [f"class {k}" for k in range(10)], "classes")
    bar = Thresholds().mix_ratio
    words = {}
    for n in (100, 400):
        yard = modes.chance(n, g)
        data = DataYardstick(1000, 0.0, 1.0, 1.0, None, mix=yard, modes=modes.kind)
        stage = Stage(30, 1500, 0.0, 0.0, 1.0, 1.0, None, None, mix_ratio=0.9)
        text = _explain(stage, [], data, None, mix_bar=bar, n_chains=n)
        share = int(re.search(rf"with {n} chains it flags only a mix where (\d+)% of the chains or more would "
                              "have to change class to match the data's", text)[1]) / 100
        words[n] = share
        for moved, flagged in ((round((share - 0.02) * n), False), (round((share + 0.02) * n), True)):
            # chains spread as the data are, then ``moved`` of them taken from other classes into class 0
            index = torch.arange(n)  # (row r is of class r % 10)
            others = (modes.of[index] != 0).nonzero()[:, 0][:moved]
            index[others] = 0
            tv = modes.mix(index)[0]
            assert tv == pytest.approx(moved / n, abs=1e-9)
            assert (tv / yard > bar) == flagged, (n, moved, tv / yard)
    assert words[400] < words[100] / 1.6  # (more chains see less: about 1 / sqrt(n))


def test_chains_whose_mix_still_drifts_past_half_its_bar_run_on():
    # The CPU digits-convergent model (at a constant SGD rate) trained for 6,000 updates: 0.66x at 10 L, 1.74x at 30 L
    # (within the bar of 2), 3.1x at 90 L; its distance to the data had settled (1.34 ->
    # 1.49x the spacing). Stopped at 30 L, the check would call it convergent.
    from landscape.train.check import DataYardstick, _explain, _still_moving

    def at(multiple, mix_ratio, nn=1.4):
        return Stage(multiple, int(50 * multiple), 0.0, 0.0, nn, nn, None, None, mix_ratio=mix_ratio)

    t = Thresholds()
    moving = _still_moving([at(10, 0.66, 1.34), at(30, 1.74, 1.49)], t)
    assert moving is not None and moving[0] == "mix" and moving[1] == pytest.approx(1.74 / 0.66)
    assert _still_moving([at(10, 0.5), at(30, 0.9)], t) is None  # below half the bar: chance
    assert _still_moving([at(10, 1.5), at(30, 1.6)], t) is None  # settled
    assert _still_moving([at(10, 1.0, 1.0), at(30, 2.0, 2.0)], t)[0] == "distance"  # distance first
    data = DataYardstick(1797, 0.0, 1.0, 2.0, None, modes="10 classes")
    text = _explain(at(90, 1.9), [], data, None, asked=30.0, still=None, why="mix")
    assert text.endswith("all within the thresholds (run on past 30L, where the chains' mix of the data's 10 "
                         "classes was still drifting from the data's)"), text
    text = _explain(at(30, 1.74), [], data, None, still=moving, why="mix")
    assert "but the chains' mix was still drifting at 30L (x2.6 per tripling of the length)" in text, text


def test_chains_from_noise_reach_the_data_only_halfway_from_where_they_started():
    # In 64 dimensions uniform noise starts 3.5 spacings from the digits: a bar of 3 said the
    # chains "reach the data at 1L" while they were still noise (2.95x)
    from landscape.train.check import _noise_summary

    def at(multiple, nn):
        return Stage(multiple, int(20 * multiple), 0.0, 0.0, nn, nn, None, None)

    t = Thresholds()
    assert _noise_summary([at(1, 2.95), at(10, 2.45)], t, start_ratio=3.5) == (
        "from noise: chains do not reach the data (closest at 10L: 2.5x the data's spacing, from 3.5x at the start; "
        "within 2.2x counts as reached)")
    assert _noise_summary([at(1, 2.95), at(10, 1.6)], t, start_ratio=3.5) == (
        "from noise: chains reach the data at 10L (1.6x the data's spacing, from 3.5x at the start)")
    assert _noise_summary([at(1, 2.1)], t, start_ratio=9.5).startswith("from noise: chains reach the data at 1L")


def test_bad_settings_are_refused(gaussian_data):
    well = image_energy(lambda x: x.flatten(1).pow(2).sum(1))
    with pytest.raises(LandscapeError, match="must increase"):
        run_check(well, gaussian_data, multiples=(3, 1))
    with pytest.raises(LandscapeError, match="'data'"):
        run_check(well, gaussian_data, inits=("noise",))
    with pytest.raises(LandscapeError, match="shape"):
        run_check(well, gaussian_data[:, :, :2])
    with pytest.raises(LandscapeError, match="positive"):
        run_check(well, gaussian_data, multiples=(0, 1))


# --------------------------------------------------------------------------------------
# the command

TINY = [
    "--steps", "4", "--batch-size", "20", "--quiet", "--set", "model.kwargs.hidden=[16]",
    "--set", "train.ckpt_every=4", "--set", "train.plot_every=100", "--set", "sampler.steps=5",
]


def run(app, capsys, *args):
    code = run_guarded(app, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code, err, pattern, expected_code=1):
    lines = [l for l in err.strip().splitlines() if l.strip()]
    return code == expected_code and "Traceback" not in err and len(lines) == 1 and re.search(pattern, lines[0])


@pytest.mark.slow
def test_check_command_on_a_tiny_checkpoint(tmp_path, capsys):
    ckpt = tmp_path / "d.pt"
    code, _, err = run(cli, capsys, "train", "--preset", "digits-nonconvergent", "--out", ckpt, *TINY)
    assert code == 0, err
    code, out, err = run(check_cmd, capsys, ckpt, "--multiples", "1,3", "--n", "8", "--quiet")
    assert code == 0, err
    assert "8 chains per start, L = 5, eps = 1, tau = 0" in out
    assert re.search(r"^data\s+3L\s+15\s", out, flags=re.MULTILINE) and re.search(r"^noise\s+1L\s+5\s", out, flags=re.MULTILINE)
    assert "saturated pixels 58.0%" in out  # the digits' own background
    verdict = [l for l in out.splitlines() if l.startswith("verdict:")]
    assert len(verdict) == 1
    assert re.fullmatch(r"verdict: (non-)?convergent \(after 3L from data: .*\); trained as non-convergent \(the "
                        r"digits-nonconvergent preset's label for its own settings, changed in this run\): "
                        r"(agrees|disagrees)", verdict[0])  # (TINY shortens its chains: sampler.steps 5)
    assert (tmp_path / "d_check.png").exists() and (tmp_path / "d_check_samples.png").exists()

    # Run again (the README's next step in a demo folder): the verdict, the pictures kept
    before = (tmp_path / "d_check.png").read_bytes()
    code, again, err = run(check_cmd, capsys, ckpt, "--multiples", "1,3", "--chains", "8", "--quiet")
    assert code == 0 and [l for l in again.splitlines() if l.startswith("verdict:")] == verdict, err
    assert err.strip() == (f"note: {tmp_path / 'd_check.png'} exists from an earlier check: the pictures are kept, "
                           "not redrawn (--force redraws them, --out names others)")
    assert (tmp_path / "d_check.png").read_bytes() == before and "pictures:" not in again
    # the model trained on since (its file newer than the pictures): the note says they may be out of date
    later = (tmp_path / "d_check.png").stat().st_mtime + 10
    os.utime(ckpt, (later, later))
    code, _, err = run(check_cmd, capsys, ckpt, "--multiples", "1,3", "--chains", "8", "--quiet")
    assert code == 0 and "kept, not redrawn, though d.pt changed since they were drawn: they may show an earlier " \
                         "model (--force redraws them" in err, err
    assert (tmp_path / "d_check.png").read_bytes() == before
    # A picture named with --out is not overwritten without --force
    code, _, err = run(check_cmd, capsys, ckpt, "--multiples", "1,3", "--n", "8", "--quiet", "--out",
                       tmp_path / "d_check.png")
    assert one_line_error(code, err, "d_check.png exists: pass --force"), err

    # JSON, no noise chains, a checkpoint whose regime is not recorded
    anon = tmp_path / "anon.pt"
    content = torch.load(ckpt, weights_only=True)
    content["regime"] = "unknown"
    torch.save(content, anon)
    code, out, err = run(check_cmd, capsys, anon, "--multiples", "2", "--n", "4", "--no-noise", "--json", "--quiet",
                         "--out", tmp_path / "anon.png")
    assert code == 0, err
    result = json.loads(out)
    assert result["agreement"] == "regime unknown" and result["verdict"] in ("convergent", "non-convergent")
    assert list(result["stages"]) == ["data"] and result["stages"]["data"][0]["steps"] == 10
    assert result["thresholds"] == {"nn_ratio": 3.0, "saturation_excess": 0.5, "energy_drift": 3.0,
                                    "coverage_ratio": 3.0, "settle": 1.25, "mix_ratio": 2.0}
    assert result["data"]["n"] == 1797 and math.isclose(result["data"]["saturation"], 0.58, abs_tol=0.01)
    assert (tmp_path / "anon_samples.png").exists()

    # A model trained on the first data.limit examples is checked against those, which it
    # saw, not against the whole data set (its other examples are no yardstick for it).
    few = tmp_path / "few.pt"
    code, _, err = run(cli, capsys, "train", "--preset", "digits-nonconvergent", "--out", few, *TINY,
                       "--set", "data.limit=40")
    assert code == 0, err
    code, out, err = run(check_cmd, capsys, few, "--multiples", "1", "--n", "4", "--no-noise", "--json", "--quiet",
                         "--out", tmp_path / "few.png")
    assert code == 0, err
    assert json.loads(out)["data"]["n"] == 40


def test_check_command_errors_are_one_line(tmp_path, capsys):
    code, _, err = run(check_cmd, capsys, tmp_path / "missing.pt")
    assert one_line_error(code, err, "missing.pt: no such file"), err
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    code, _, err = run(check_cmd, capsys, other)
    assert one_line_error(code, err, "not an ebm-landscape checkpoint"), err
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 50)
    code, _, err = run(check_cmd, capsys, corrupt)
    assert one_line_error(code, err, "not a readable PyTorch checkpoint"), err
    code, _, err = run(check_cmd, capsys, other, "--multiples", "10,3")
    assert code == 2 and "increasing positive numbers" in err
    assert not list(tmp_path.glob("*.png"))


def test_huge_and_tiny_numbers_are_written_in_scientific_notation():
    # (eps 1e15 blew the chains up: "NN distance 14272671725813631136952683069440 = 70812...x")
    from landscape.train.check import _explain, _g, _noise_summary

    blown = Stage(3, 120, -3.4e30, 2.68e31, 1.4272671725813631e31, 7.081228197560775e30, 1.0, 1.0)
    assert decide(blown, Thresholds()) == ["NN distance 1.4e+31 = 7.1e+30x the data's spacing",
                                           "100% pixels saturated", "energy 2.7e+31 sd below the data's"]
    text = _explain(blown, decide(blown), None, None) + _noise_summary([blown], Thresholds())
    assert not re.search(r"\d{7}", text), text  # no run of digits of which two mean anything
    assert [_g(v) for v in (0.0, 0.00012, 0.5, 3.0, 66.4, 12345.0, 123456.0, -2.5e7)] == [
        "0", "0.00012", "0.5", "3", "66", "12345", "1.2e+05", "-2.5e+07"]


def test_the_summary_of_chains_from_noise_says_when_they_reach_the_data_and_leave_it():
    from landscape.train.check import _noise_summary

    def at(multiple, nn):
        return Stage(multiple, int(20 * multiple), 0.0, 0.0, nn, nn, None, None)

    t = Thresholds()
    assert _noise_summary([at(1, 2.1), at(3, 9.0), at(30, 62.0)], t) == (
        "from noise: chains reach the data at 1L (2.1x the data's spacing), then leave it (62x at 30L)")
    assert _noise_summary([at(1, 8.0), at(30, 2.5)], t) == (
        "from noise: chains reach the data at 30L (2.5x the data's spacing)")
    # within the bar from the first length, closest later (said "reach the data at 10L")
    assert _noise_summary([at(1, 2.94), at(3, 2.62), at(10, 2.36)], t) == (
        "from noise: chains reach the data at 1L (2.9x the data's spacing), closest at 10L (2.4x)")
    assert _noise_summary([at(1, 8.0), at(30, 5.0)], t) == (
        "from noise: chains do not reach the data (closest at 30L: 5x the data's spacing)")
    assert _noise_summary([at(1, 5.0), at(30, 9.0)], t) == (
        "from noise: chains do not reach the data (closest at 1L: 5x the data's spacing); 9x at 30L")
