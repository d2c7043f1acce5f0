"""Energy networks: layouts of the Anatomy reference code, the fast sampling path, checks."""

import math
import re

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from landscape.train.nets import (
    ARCHS,
    DigitsNet,
    NonLocalBlock,
    NonlocalNet,
    ToyNet,
    VanillaNet,
    autograd_value_and_grad,
    build_model,
    convert_reference_state_dict,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn(*shape, seed: int = 0, dtype=torch.float32) -> torch.Tensor:
    return torch.randn(*shape, generator=gen(seed), dtype=dtype)


def randomize(model: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Give every parameter (zero-initialised ones included) random values."""
    g = gen(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return model


def small(arch: str) -> nn.Module:
    kwargs = {"toy": {}, "vanilla": {"n_f": 4}, "nonlocal": {"n_f": 4}, "digits": {"hidden": (16, 8)}}[arch]
    return build_model(arch, kwargs)


# --- parameter counts from the layer lists -----------------------------------------------


def conv(c_in: int, c_out: int, k: int) -> int:
    return c_out * c_in * k * k + c_out


def linear(n_in: int, n_out: int) -> int:
    return n_out * n_in + n_out


def nonlocal_block(c: int) -> int:
    k = max(1, c // 2)
    return 3 * conv(c, k, 1) + conv(k, c, 1)  # g, theta, phi in; W out


EXPECTED_PARAMS = {
    "toy": linear(2, 32) + linear(32, 64) + 2 * linear(64, 64) + linear(64, 1),
    "vanilla": conv(3, 32, 3) + conv(32, 64, 4) + conv(64, 128, 4) + conv(128, 256, 4) + conv(256, 1, 4),
    "nonlocal": conv(3, 32, 3)
    + nonlocal_block(32)
    + conv(32, 64, 3)
    + nonlocal_block(64)
    + conv(64, 128, 3)
    + linear(128 * 4 * 4, 256)
    + linear(256, 1),
    "digits": linear(64, 256) + 2 * linear(256, 256) + linear(256, 1),
}


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_parameter_count_with_defaults_matches_layer_list(arch):
    model = build_model(arch, {})
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[arch]


def test_parameter_names_follow_the_reference_layout():
    assert list(ToyNet().state_dict()) == [f"f.{i}.{p}" for i in (0, 2, 4, 6, 8) for p in ("weight", "bias")]
    assert list(VanillaNet().state_dict()) == [f"f.{i}.{p}" for i in (0, 2, 4, 6, 8) for p in ("weight", "bias")]
    block = [f"{m}.{p}" for m in ("g.0", "W", "theta", "phi.0") for p in ("weight", "bias")]
    expected = (
        ["convs.0.weight", "convs.0.bias"]
        + [f"convs.3.{k}" for k in block]
        + ["convs.4.weight", "convs.4.bias"]
        + [f"convs.7.{k}" for k in block]
        + ["convs.8.weight", "convs.8.bias", "fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias"]
    )
    assert sorted(NonlocalNet().state_dict()) == sorted(expected)
    assert NonlocalNet().state_dict()["convs.3.theta.weight"].shape == (16, 32, 1, 1)


# --- shapes --------------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("batch", [1, 3])
def test_output_is_one_dimensional_also_for_batch_of_one(arch, batch):
    model = small(arch)
    u = model(randn(batch, *model.input_shape))
    assert u.shape == (batch,)


def test_input_shapes():
    assert ToyNet().input_shape == (2,)
    assert ToyNet(in_dim=5).input_shape == (5,)
    assert VanillaNet(n_c=1, n_f=2).input_shape == (1, 32, 32)
    assert NonlocalNet(n_f=2).input_shape == (3, 32, 32)
    assert DigitsNet().input_shape == (1, 8, 8)
    assert DigitsNet(n_c=3, image_size=4, hidden=[5]).input_shape == (3, 4, 4)


def _stage_shapes(seq: nn.Sequential, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes = []
    for layer in seq:
        x = layer(x)
        shapes.append(tuple(x.shape))
    return shapes


def test_vanilla_layer_shapes():
    model = VanillaNet(n_c=3, n_f=4)
    shapes = _stage_shapes(model.f, randn(2, 3, 32, 32))
    assert shapes[0::2] == [(2, 4, 32, 32), (2, 8, 16, 16), (2, 16, 8, 8), (2, 32, 4, 4), (2, 1, 1, 1)]


def test_nonlocal_layer_shapes():
    model = NonlocalNet(n_c=3, n_f=4)
    shapes = _stage_shapes(model.convs, randn(2, 3, 32, 32))
    assert shapes == [
        (2, 4, 32, 32), (2, 4, 32, 32), (2, 4, 16, 16),  # conv, leaky, pool
        (2, 4, 16, 16), (2, 8, 16, 16), (2, 8, 16, 16), (2, 8, 8, 8),  # non-local, conv, leaky, pool
        (2, 8, 8, 8), (2, 16, 8, 8), (2, 16, 8, 8), (2, 16, 4, 4),
    ]  # fmt: skip
    assert model.fc[0].in_features == 16 * 4 * 4 and model.fc[2].out_features == 1


def test_toy_accepts_reference_pixel_layout():
    model = ToyNet()
    x = randn(6, 2)
    assert torch.equal(model(x.reshape(6, 2, 1, 1)), model(x))


# --- input checks and factory --------------------------------------------------------------


def test_wrong_input_shape_raises_one_line_value_error():
    cases = [
        (NonlocalNet(n_f=2), (4, 3, 28, 28), "NonlocalNet expects inputs of shape [B, 3, 32, 32], got [4, 3, 28, 28]"),
        (VanillaNet(n_f=2), (3, 32, 32), "VanillaNet expects inputs of shape [B, 3, 32, 32], got [3, 32, 32]"),
        (DigitsNet(hidden=(4,)), (2, 64), "DigitsNet expects inputs of shape [B, 1, 8, 8], got [2, 64]"),
        (ToyNet(), (5, 3), "ToyNet expects inputs of shape [B, 2] (or [B, 2, 1, 1]), got [5, 3]"),
    ]
    for model, shape, msg in cases:
        with pytest.raises(ValueError, match=f"^{re.escape(msg)}$"):
            model(torch.zeros(shape))
    # the sampling closures check too
    with pytest.raises(ValueError, match="ToyNet expects"):
        ToyNet().value_and_grad_fn()(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="VanillaNet expects"):
        VanillaNet(n_f=2).value_and_grad_fn()(torch.zeros(1, 3, 16, 16))


def test_build_model_rejects_unknown_arch_and_kwarg():
    with pytest.raises(ValueError, match=r"unknown arch 'resnet'; valid archs: digits, nonlocal, toy, vanilla"):
        build_model("resnet", {})
    with pytest.raises(ValueError, match=r"unknown kwarg 'width' for arch 'toy'; valid: in_dim, n_f, leak"):
        build_model("toy", {"width": 3})
    with pytest.raises(ValueError, match="n_f must be a positive int"):
        build_model("vanilla", {"n_f": 0})
    with pytest.raises(ValueError, match="energy_scale must be > 0"):
        build_model("toy", {"energy_scale": -1.0})
    with pytest.raises(ValueError, match="hidden"):
        build_model("digits", {"hidden": "256"})


def test_build_model_takes_plain_data_kwargs():
    model = build_model("digits", {"hidden": [16, 8], "leak": 0.1, "energy_scale": 2.0})
    assert isinstance(model, DigitsNet)
    assert model.hidden == (16, 8)
    assert [m.out_features for m in model.f if isinstance(m, nn.Linear)] == [16, 8, 1]
    assert model.f[1].negative_slope == 0.1
    assert type(build_model("toy", {"n_f": 8})) is ToyNet


# --- fast sampling path --------------------------------------------------------------------


def _assert_close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-5) -> None:
    scale = b.abs().max().item()
    assert (a - b).abs().max().item() <= rtol * scale + 1e-7, (a - b).abs().max().item()


@pytest.mark.parametrize("spectral", [False, True])
@pytest.mark.parametrize(
    "make",
    [
        lambda sn: ToyNet(spectral_norm=sn),
        lambda sn: ToyNet(in_dim=3, n_f=8, leak=0.2, energy_scale=7.0, spectral_norm=sn),
        lambda sn: DigitsNet(spectral_norm=sn),
        lambda sn: DigitsNet(n_c=2, image_size=4, hidden=(12,), energy_scale=0.5, spectral_norm=sn),
        lambda sn: DigitsNet(hidden=(), spectral_norm=sn),
    ],
    ids=["toy", "toy-custom", "digits", "digits-custom", "digits-linear"],
)
def test_fast_path_equals_autograd(make, spectral):
    torch.manual_seed(0)  # torch's default initialisation of the layers
    model = make(spectral).eval()  # eval: spectral norm's vectors stay fixed between calls
    fast = model.value_and_grad_fn()
    slow = autograd_value_and_grad(model)
    for batch, seed in ((100, 1), (1, 2)):
        x = 2.0 * randn(batch, *model.input_shape, seed=seed)
        u_fast, g_fast = fast(x)
        u_slow, g_slow = slow(x)
        assert u_fast.shape == (batch,) and g_fast.shape == x.shape
        _assert_close(u_fast, u_slow)
        _assert_close(g_fast, g_slow)
        assert not u_fast.requires_grad and not g_fast.requires_grad


def test_fast_path_keeps_the_input_layout_and_returns_fresh_tensors():
    model = ToyNet()
    fast = model.value_and_grad_fn()
    x = randn(7, 2)
    u, g = fast(x)
    u4, g4 = fast(x.reshape(7, 2, 1, 1))
    assert g4.shape == (7, 2, 1, 1)
    assert torch.equal(u, u4) and torch.equal(g, g4.reshape(7, 2))
    # a caller may update results in place without corrupting the next call
    g.zero_()
    u.zero_()
    u2, g2 = fast(x)
    assert torch.equal(u2, u4) and torch.equal(g2, g4.reshape(7, 2))
    lin = DigitsNet(hidden=()).value_and_grad_fn()
    _, g_lin = lin(randn(3, 1, 8, 8))
    g_lin.add_(1.0)  # would raise on a broadcast (stride-0) view


def test_fast_path_is_a_snapshot_of_the_weights():
    model = ToyNet()
    x = randn(5, 2)
    fast = model.value_and_grad_fn()
    before = fast(x)[0].clone()
    with torch.no_grad():
        model.f[8].bias.add_(1.0)
    assert torch.equal(fast(x)[0], before)  # the closure froze the weights it was made with
    assert torch.allclose(model.value_and_grad_fn()(x)[0], before + 1.0)


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_no_parameter_gets_grad_from_either_closure(arch):
    model = small(arch)
    assert all(p.requires_grad for p in model.parameters())  # not frozen: the harder case
    x = randn(2, *model.input_shape)
    model.value_and_grad_fn()(x)
    autograd_value_and_grad(model)(x)
    assert all(p.grad is None for p in model.parameters())


def _directional_fd(fn, x: torch.Tensor, v: torch.Tensor, h: float) -> torch.Tensor:
    with torch.no_grad():
        return (fn(x + h * v) - fn(x - h * v)) / (2 * h)


@pytest.mark.parametrize(
    "make",
    [lambda: VanillaNet(n_c=2, n_f=2), lambda: NonlocalNet(n_c=1, n_f=2)],
    ids=["vanilla", "nonlocal"],
)
def test_generic_closure_matches_finite_differences_in_float64(make):
    torch.manual_seed(0)
    model = randomize(make()).double()  # random W: the non-local attention path is live
    vg = model.value_and_grad_fn()
    x = randn(2, *model.input_shape, seed=3, dtype=torch.float64)
    u, g = vg(x)
    assert u.dtype == g.dtype == torch.float64 and g.shape == x.shape
    assert torch.allclose(u, model(x))
    h = 1e-6
    for seed in range(3):  # random directions probe the whole gradient
        v = randn(*x.shape, seed=10 + seed, dtype=torch.float64)
        fd = _directional_fd(model, x, v, h)
        exact = (g * v).flatten(1).sum(1)
        assert torch.allclose(fd, exact, rtol=1e-6, atol=1e-8), (fd, exact)
    flat = g.flatten(1)
    for idx in (0, 517, x[0].numel() - 1):  # single coordinates
        e = torch.zeros_like(x).flatten(1)
        e[:, idx] = 1.0
        fd = _directional_fd(model, x, e.reshape(x.shape), h)
        assert torch.allclose(fd, flat[:, idx], rtol=1e-6, atol=1e-8)


def test_module_value_and_grad_fn_uses_autograd_for_conv_nets():
    model = VanillaNet(n_f=2)
    x = randn(3, *model.input_shape)
    u1, g1 = model.value_and_grad_fn()(x)
    u2, g2 = autograd_value_and_grad(model)(x)
    assert torch.equal(u1, u2) and torch.equal(g1, g2)


# --- energy scale, spectral norm -----------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_energy_scale_multiplies_energy_and_gradient(arch):
    base = randomize(small(arch))
    kwargs = {"toy": {}, "vanilla": {"n_f": 4}, "nonlocal": {"n_f": 4}, "digits": {"hidden": (16, 8)}}[arch]
    scaled = build_model(arch, {**kwargs, "energy_scale": 3.5})
    scaled.load_state_dict(base.state_dict())
    x = randn(4, *base.input_shape, seed=5)
    u1, g1 = base.value_and_grad_fn()(x)
    u2, g2 = scaled.value_and_grad_fn()(x)
    _assert_close(u2, 3.5 * u1)
    _assert_close(g2, 3.5 * g1)
    _assert_close(scaled(x), 3.5 * base(x))
    assert u1.abs().max() > 0 and g1.abs().max() > 0


@pytest.mark.parametrize("arch", sorted(ARCHS))
def test_spectral_norm_wraps_every_conv_and_linear_except_nonlocal_output(arch):
    model = build_model(arch, {**{"vanilla": {"n_f": 4}, "nonlocal": {"n_f": 4}}.get(arch, {}), "spectral_norm": True})
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert layers
    for name, layer in layers:
        assert parametrize.is_parametrized(layer, "weight") == (not name.endswith(".W")), name
    u = model(randn(2, *model.input_shape))
    assert torch.isfinite(u).all()
    # in train mode each forward runs a power iteration; a few are enough for sigma ~ 1
    model.train()
    x = randn(2, *model.input_shape)
    for _ in range(20):
        model(x)
    for name, layer in layers:
        if not name.endswith(".W"):
            w = layer.weight.detach().flatten(1)
            assert torch.linalg.matrix_norm(w, ord=2).item() == pytest.approx(1.0, abs=0.05), name


# --- non-local block -----------------------------------------------------------------------


def test_nonlocal_block_starts_as_identity():
    block = NonLocalBlock(6)
    x = randn(2, 6, 8, 8)
    assert torch.equal(block(x), x)
    assert block.inter_channels == 3 and NonLocalBlock(1).inter_channels == 1


def test_nonlocal_block_matches_the_attention_formula_position_by_position():
    block = randomize(NonLocalBlock(4), seed=1).double()
    x = randn(1, 4, 4, 6, seed=2, dtype=torch.float64)
    out = block(x)
    theta = block.theta(x)[0].flatten(1)  # [k, 24]
    phi = block.phi(x)[0].flatten(1)  # [k, 6]: pooled 2x3 positions
    g = block.g(x)[0].flatten(1)  # [k, 6]
    assert phi.shape == (2, 6)
    y = torch.zeros_like(theta)
    for i in range(theta.shape[1]):
        w = torch.softmax(torch.stack([theta[:, i] @ phi[:, j] for j in range(phi.shape[1])]), 0)
        y[:, i] = sum(w[j] * g[:, j] for j in range(g.shape[1]))
    expected = block.W(y.reshape(1, 2, 4, 6)) + x
    assert torch.allclose(out, expected, atol=1e-12)
    assert not torch.allclose(out, x)


# --- reference state dicts -----------------------------------------------------------------


def reference_toynet(dim: int = 2, n_f: int = 32, leak: float = 0.05) -> nn.Sequential:
    """The reference code's ToyNet layout: 1x1 convolutions on [B, dim, 1, 1]."""
    return nn.Sequential(
        nn.Conv2d(dim, n_f, 1, 1, 0),
        nn.LeakyReLU(leak),
        nn.Conv2d(n_f, n_f * 2, 1, 1, 0),
        nn.LeakyReLU(leak),
        nn.Conv2d(n_f * 2, n_f * 2, 1, 1, 0),
        nn.LeakyReLU(leak),
        nn.Conv2d(n_f * 2, n_f * 2, 1, 1, 0),
        nn.LeakyReLU(leak),
        nn.Conv2d(n_f * 2, 1, 1, 1, 0),
    )


def test_reference_toynet_state_dict_converts_and_gives_the_same_energy():
    torch.manual_seed(0)
    ref = reference_toynet()
    sd = {f"f.{k}": v for k, v in ref.state_dict().items()}  # the reference module holds it as `f`
    assert sd["f.0.weight"].shape == (32, 2, 1, 1)
    converted = convert_reference_state_dict("toy", sd)
    assert sd["f.0.weight"].dim() == 4  # input left untouched
    eps = 0.125
    model = ToyNet(energy_scale=2 / eps**2)
    model.load_state_dict(converted)  # strict
    x = randn(50, 2, seed=4)
    with torch.no_grad():
        f_ref = ref(x.reshape(50, 2, 1, 1)).reshape(50)
    _assert_close(model(x), (2 / eps**2) * f_ref)
    _assert_close(model.value_and_grad_fn()(x)[0], (2 / eps**2) * f_ref)
    # converting twice is harmless
    twice = convert_reference_state_dict("toy", converted)
    assert all(torch.equal(converted[k], twice[k]) for k in converted)


def test_reference_state_dicts_of_conv_nets_pass_unchanged():
    sd = VanillaNet(n_f=4).state_dict()
    out = convert_reference_state_dict("vanilla", sd)
    assert out.keys() == sd.keys() and all(out[k] is sd[k] for k in sd)
    sd = NonlocalNet(n_f=4).state_dict()
    NonlocalNet(n_f=4).load_state_dict(convert_reference_state_dict("nonlocal", sd))


def test_convert_reference_state_dict_names_missing_and_unexpected_keys():
    sd = {f"f.{k}": v for k, v in reference_toynet().state_dict().items()}
    del sd["f.8.bias"]
    sd["f.10.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match=re.escape("missing keys ['f.8.bias']; unexpected keys ['f.10.weight']")):
        convert_reference_state_dict("toy", sd)
    with pytest.raises(ValueError, match="unknown arch"):
        convert_reference_state_dict("resnet", {})
    bad = {f"f.{k}": v for k, v in reference_toynet().state_dict().items()}
    bad["f.0.weight"] = torch.zeros(32, 2, 3, 3)
    with pytest.raises(ValueError, match="1x1"):
        convert_reference_state_dict("toy", bad)
    # digits has no reference layout but its key set follows its kwargs
    sd = DigitsNet(hidden=(4,)).state_dict()
    assert convert_reference_state_dict("digits", sd, {"hidden": [4]}).keys() == sd.keys()
    with pytest.raises(ValueError, match="missing keys"):
        convert_reference_state_dict("digits", sd)


def test_checkpoint_style_round_trip_with_weights_only(tmp_path):
    model = DigitsNet(hidden=(8,), energy_scale=4.0)
    payload = {
        "model": {"arch": "digits", "kwargs": {"hidden": [8], "energy_scale": 4.0}},
        "state_dict": model.state_dict(),
    }
    torch.save(payload, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    again = build_model(loaded["model"]["arch"], loaded["model"]["kwargs"])
    again.load_state_dict(loaded["state_dict"])
    x = randn(3, 1, 8, 8)
    assert torch.equal(again(x), model(x))
    assert math.isclose(again.energy_scale, 4.0)
