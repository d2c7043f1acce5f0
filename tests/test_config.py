"""Configs: presets, strict keys, overrides, JSON round trip, schedules."""

import json

import pytest

from landscape.errors import LandscapeError
from landscape.train.config import PRESETS, Config, apply_overrides, get_preset, lr_at


def test_every_preset_validates_and_round_trips_through_json():
    for name, cfg in PRESETS.items():
        cfg.validate()
        again = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
        assert again == cfg, name


def test_paper_presets_carry_the_papers_settings():
    toy = get_preset("toy-convergent")
    assert (toy.sampler.epsilon, toy.sampler.steps, toy.sampler.init, toy.sampler.bank_size) == (0.125, 500, "persistent", 10000)
    assert toy.model.arch == "toy" and toy.regime == "convergent" and toy.data.name == "rings"
    nc = get_preset("noise-nonconvergent")
    assert (nc.sampler.init, nc.sampler.steps, nc.sampler.tau, nc.sampler.epsilon) == ("noise", 100, 0.0, 1.0)
    assert (nc.optim.name, nc.optim.lr) == ("adam", 1e-4) and nc.regime == "non-convergent"
    conv = get_preset("convergent")
    assert (conv.sampler.init, conv.sampler.steps, conv.sampler.tau, conv.sampler.epsilon) == ("persistent", 500, 1.0, 0.015)
    assert conv.optim.name == "sgd" and conv.optim.lr_min == 5e-4 and conv.model.arch == "nonlocal"


def test_unknown_keys_are_errors():
    with pytest.raises(LandscapeError, match="unknown config key sampler.stepz"):
        Config.from_dict({"sampler": {"stepz": 3}})
    with pytest.raises(LandscapeError, match="unknown config key"):
        apply_overrides(Config(), ["sampler.nope=1"])
    with pytest.raises(LandscapeError, match="section.key=value"):
        apply_overrides(Config(), ["sampler.steps"])
    with pytest.raises(LandscapeError, match="unknown preset 'nope'"):
        get_preset("nope")


def test_overrides_parse_json_values_and_model_kwargs():
    cfg = apply_overrides(
        Config(), ["sampler.steps=50", "optim.name=adam", "sampler.mh=true", "model.kwargs.n_f=8", "data.size=null"]
    )
    assert cfg.sampler.steps == 50 and cfg.optim.name == "adam" and cfg.sampler.mh is True
    assert cfg.model.kwargs == {"n_f": 8} and cfg.data.size is None
    assert get_preset("toy-convergent").model.kwargs == {}  # presets are not mutated


def test_validate_rejects_bad_values():
    for override, message in [
        ("sampler.epsilon=0", "epsilon"),
        ("sampler.init=gaussian", "sampler.init"),
        ("optim.name=rmsprop", "optim.name"),
        ("regime=maybe", "regime"),
    ]:
        with pytest.raises(LandscapeError, match=message):
            apply_overrides(Config(), [override]).validate()
    with pytest.raises(LandscapeError, match="mh needs tau"):
        apply_overrides(Config(), ["sampler.mh=true", "sampler.tau=0"]).validate()


def test_sgd_rate_is_scaled_by_eps_squared_over_two_and_decays_to_its_floor():
    cfg = get_preset("convergent")
    eps2 = cfg.sampler.epsilon**2 / 2
    assert lr_at(cfg, 0) == pytest.approx(0.05 * eps2)
    assert lr_at(cfg, 1000) == pytest.approx(0.05 * 0.99995**1000 * eps2)
    assert lr_at(cfg, 10**7) == pytest.approx(5e-4 * eps2)
    adam = get_preset("noise-nonconvergent")
    assert lr_at(adam, 123) == pytest.approx(1e-4)  # Adam rates are not rescaled


def test_default_energy_scale_is_the_reference_parameterisation():
    cfg = get_preset("toy-convergent")
    assert cfg.energy_scale() == pytest.approx(2 / 0.125**2)
    assert apply_overrides(cfg, ["model.energy_scale=1.0"]).energy_scale() == 1.0


def test_every_presets_network_fits_its_data_shape():
    from landscape.train.nets import build_model

    expected = {"rings": (2,), "digits": (1, 8, 8), "flowers": (3, 32, 32)}
    for name, cfg in PRESETS.items():
        model = build_model(cfg.model.arch, dict(cfg.model.kwargs, energy_scale=cfg.energy_scale()))
        assert model.input_shape == expected[cfg.data.name], name
