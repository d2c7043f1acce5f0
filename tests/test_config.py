"""Configs: presets, strict keys, overrides, JSON round trip, schedules."""

import json
import re

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
    assert (conv.sampler.init, conv.sampler.steps, conv.sampler.tau, conv.sampler.epsilon) == ("persistent", 500, 1.0, 0.0075)
    assert (conv.optim.name, conv.optim.lr, conv.optim.lr_min, conv.optim.lr_decay) == ("sgd", 0.1, 5e-4, 0.99995)
    assert conv.model.arch == "nonlocal" and conv.data.noise == 0.015 and conv.train.steps == 200000


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
    assert lr_at(cfg, 0) == pytest.approx(0.1 * eps2)
    assert lr_at(cfg, 1000) == pytest.approx(0.1 * 0.99995**1000 * eps2)
    assert lr_at(cfg, 10**7) == pytest.approx(5e-4 * eps2)
    adam = get_preset("noise-nonconvergent")
    assert lr_at(adam, 123) == pytest.approx(1e-4)  # Adam rates are not rescaled


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_learning_rate_set_on_the_command_line_is_the_rate_used(name):
    cfg = get_preset(name)
    lower = apply_overrides(cfg, [f"optim.lr={cfg.optim.lr / 10}"])
    if cfg.optim.lr_decay == 1.0:  # a constant rate: the new one, at every update
        assert lr_at(lower, 0) == lr_at(lower, 10**6) == pytest.approx(lr_at(cfg, 0) / 10)
    elif cfg.optim.lr_min is not None and cfg.optim.lr_min > cfg.optim.lr / 10:  # below the schedule's floor
        with pytest.raises(LandscapeError, match="optim.lr_min .* is above optim.lr .*lower optim.lr_min too"):
            lower.validate()
        ok = apply_overrides(lower, [f"optim.lr_min={cfg.optim.lr / 100}"]).validate()
        assert lr_at(ok, 0) == pytest.approx(lr_at(cfg, 0) / 10)
    no_floor = apply_overrides(cfg, ["optim.lr_min=null"]).validate()
    assert no_floor.optim.lr_min is None and lr_at(no_floor, 0) == pytest.approx(lr_at(cfg, 0))


def test_default_energy_scale_is_the_reference_parameterisation():
    cfg = get_preset("toy-convergent")
    assert cfg.energy_scale() == pytest.approx(2 / 0.125**2)
    assert apply_overrides(cfg, ["model.energy_scale=1.0"]).energy_scale() == 1.0


def test_every_presets_network_fits_its_data_shape():
    from landscape.train.nets import build_model

    expected = {"rings": (2,), "digits": (1, 8, 8), "flowers": (3, 32, 32)}
    for name, cfg in PRESETS.items():
        model = build_model(cfg.model.arch, dict(cfg.model.kwargs, energy_scale=cfg.energy_scale()))
        shape = expected[cfg.data.name]
        if cfg.data.size is not None:  # resized, e.g. the digits at 32x32
            shape = (shape[0], cfg.data.size, cfg.data.size)
        assert model.input_shape == shape, name


# --------------------------------------------------------------------------------------
# overrides are checked against the field's type


@pytest.mark.parametrize("override, field, value", [
    ("sampler.steps=1e3", ("sampler", "steps"), 1000),  # an integral float is an integer
    ("sampler.steps=100_000", ("sampler", "steps"), 100000),
    ("train.batch_size=64", ("train", "batch_size"), 64),
    ("sampler.epsilon=1e-2", ("sampler", "epsilon"), 0.01),
    ("sampler.tau=0", ("sampler", "tau"), 0.0),
    ("sampler.mh=yes", ("sampler", "mh"), True),
    ("sampler.clamp=False", ("sampler", "clamp"), False),
    ("sampler.mh=0", ("sampler", "mh"), False),
    ("data.name=123", ("data", "name"), "123"),  # a string field keeps the text
    ("data.name=\"digits\"", ("data", "name"), "digits"),  # a JSON string literal is unquoted
    ("data.name=npz:/data/a=b.npz", ("data", "name"), "npz:/data/a=b.npz"),
    ("data.size=none", ("data", "size"), None),
    ("data.size=32", ("data", "size"), 32),
    ("model.energy_scale=2", ("model", "energy_scale"), 2.0),
    ("model.energy_scale=null", ("model", "energy_scale"), None),
    ("optim.betas=0.5,0.99", ("optim", "betas"), (0.5, 0.99)),
    ("optim.betas=[0.5, 0.99]", ("optim", "betas"), (0.5, 0.99)),
    ("optim.betas=(0.5, 0.99)", ("optim", "betas"), (0.5, 0.99)),
    ("model.kwargs={\"hidden\": [64, 64]}", ("model", "kwargs"), {"hidden": [64, 64]}),
    ("model.kwargs.act=relu", ("model", "kwargs"), {"act": "relu"}),
    ("regime=non-convergent", ("regime",), "non-convergent"),
])
def test_overrides_read_values_as_their_fields_type(override, field, value):
    cfg = apply_overrides(Config(), [override])
    got = cfg
    for name in field:
        got = getattr(got, name)
    assert got == value and type(got) is type(value), (override, got)


def test_a_whole_section_is_a_json_object_merged_into_it():
    cfg = apply_overrides(get_preset("rings-demo"), ['sampler={"steps": 7, "mh": true}'])
    assert (cfg.sampler.steps, cfg.sampler.mh, cfg.sampler.epsilon) == (7, True, 0.125)
    with pytest.raises(LandscapeError, match=r"unknown config key 'sampler.stepz'"):
        apply_overrides(Config(), ['sampler={"stepz": 7}'])
    with pytest.raises(LandscapeError, match=r"sampler.steps must be an integer, got 'x'"):
        apply_overrides(Config(), ['sampler={"steps": "x"}'])
    with pytest.raises(LandscapeError, match=r"sampler is a section: set its fields"):
        apply_overrides(Config(), ["sampler=3"])


@pytest.mark.parametrize("override, message", [
    ("sampler.steps=abc", "sampler.steps must be an integer, got 'abc'"),
    ("sampler.steps=2.5", "sampler.steps must be an integer, got '2.5'"),
    ("sampler.steps=true", "sampler.steps must be an integer, got 'true'"),
    ("sampler.epsilon=nan", "sampler.epsilon must be a finite number, got 'nan'"),
    ("sampler.epsilon=inf", "sampler.epsilon must be a finite number, got 'inf'"),
    ("optim.lr=-Infinity", "optim.lr must be a finite number, got '-Infinity'"),
    ("sampler.tau=one", "sampler.tau must be a finite number, got 'one'"),
    ("sampler.mh=maybe", "sampler.mh must be true or false, got 'maybe'"),
    ("data.size=x", "data.size must be an integer or null, got 'x'"),
    ("model.energy_scale=nan", "model.energy_scale must be a finite number or null, got 'nan'"),
    ("optim.betas=0.9", "optim.betas must be 2 comma-separated finite numbers"),
    ("optim.betas=0.9,0.9,0.9", "optim.betas must be 2 comma-separated finite numbers"),
    ("optim.betas=0.9,nan", r"optim.betas\[1\] must be a finite number, got 'nan'"),
    ("optim.betas=[0.9, NaN]", r"optim.betas\[1\] must be a finite number, got nan"),
    ("model.kwargs=3", "model.kwargs must be a JSON object, got '3'"),
])
def test_overrides_of_the_wrong_type_are_one_line_errors_naming_field_value_and_type(override, message):
    with pytest.raises(LandscapeError) as info:
        apply_overrides(Config(), [override])
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"bad override {override!r}: "), text
    assert re.search(message, text), text


def test_paths_below_a_value_are_unknown_keys():
    with pytest.raises(LandscapeError, match=r"unknown config key 'sampler.steps.x' \(sampler.steps is an integer"):
        apply_overrides(Config(), ["sampler.steps.x=1"])
    with pytest.raises(LandscapeError, match=r"unknown config key 'nope' \(valid: preset, regime, data"):
        apply_overrides(Config(), ["nope=1"])
    with pytest.raises(LandscapeError, match="section.key=value"):
        apply_overrides(Config(), ["sampler..steps=1"])
    nested = apply_overrides(Config(), ["model.kwargs.block.width=8", "model.kwargs.block.depth=2"])
    assert nested.model.kwargs == {"block": {"width": 8, "depth": 2}}
