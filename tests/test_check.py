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
