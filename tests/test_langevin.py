"""The Langevin sampler on targets whose answers are known exactly."""

import math

import pytest
import torch
from torch import nn

from landscape import Energy, LandscapeError, NonFiniteEnergyError, sample


def gaussian_energy(sigma: float, dim: int = 2, dtype=torch.float64) -> Energy:
    return Energy(lambda x: 0.5 * (x**2).sum(1) / sigma**2, shape=(dim,), data_range=(-3, 3), dtype=dtype)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_ula_stationary_variance_matches_exact_discrete_formula():
    # For U = |x|^2 / (2 s^2) the ULA chain is AR(1): x' = (1 - h/s^2) x + eps z, h = eps^2/2,
    # so its stationary variance is eps^2 / (1 - (1 - h/s^2)^2), slightly above s^2.
    sigma, eps = 1.0, 0.5
    energy = gaussian_energy(sigma)
    x0 = torch.zeros(20000, 2, dtype=torch.float64)
    out = sample(energy, x0, steps=200, eps=eps, tau=1.0, generator=gen())
    rho = 1 - 0.5 * eps**2 / sigma**2
    expected = eps**2 / (1 - rho**2)
    assert out.x.mean().abs() < 0.02
    assert out.x.var().item() == pytest.approx(expected, rel=0.03)
    assert expected > 1.05 * sigma**2  # the discretisation bias is real at this eps ...


def test_mala_removes_discretisation_bias_and_reports_acceptance():
    sigma, eps = 1.0, 0.9
    energy = gaussian_energy(sigma)
    x0 = torch.zeros(20000, 2, dtype=torch.float64)
    out = sample(energy, x0, steps=150, eps=eps, mh=True, generator=gen(1))
    assert out.x.var().item() == pytest.approx(sigma**2, rel=0.04)  # ... and MALA removes it
    assert out.acceptance is not None
    assert ((out.acceptance >= 0) & (out.acceptance <= 1)).all()
    assert 0.3 < out.acceptance.mean().item() < 1.0


def test_tau_sets_the_temperature():
    # MALA with noise scale tau targets exp(-U / tau^2): variance tau^2 s^2.
    sigma, tau = 0.5, 2.0
    energy = gaussian_energy(sigma)
    x0 = torch.zeros(20000, 2, dtype=torch.float64)
    out = sample(energy, x0, steps=200, eps=0.2, tau=tau, mh=True, generator=gen(2))
    assert out.x.var().item() == pytest.approx(tau**2 * sigma**2, rel=0.05)


def test_tau_zero_is_gradient_descent_to_the_minimum():
    energy = Energy(lambda x: 0.5 * ((x - 1.5) ** 2).sum(1), shape=(3,), dtype=torch.float64)
    x0 = torch.randn(7, 3, dtype=torch.float64, generator=gen())
    out = sample(energy, x0, steps=300, eps=0.5, tau=0.0)
    torch.testing.assert_close(out.x, torch.full_like(x0, 1.5))
    # deterministic: no generator needed and a rerun gives the same answer
    torch.testing.assert_close(sample(energy, x0, steps=300, eps=0.5, tau=0.0).x, out.x)


def test_trace_and_grad_norm_mean_agree_with_v_t_definition():
    energy = gaussian_energy(1.0, dtype=torch.float32)
    x0 = torch.randn(50, 2, generator=gen())
    steps = 40
    out = sample(energy, x0, steps=steps, eps=0.3, generator=gen(3), trace=True)
    assert out.trace["energy"].shape == (steps + 1,)
    assert out.trace["grad_norm"].shape == (steps + 1,)
    # v_t averages ||dU/dx|| over the L+1 states of every chain, the start included
    assert out.grad_norm_mean.mean().item() == pytest.approx(out.trace["grad_norm"].mean().item(), rel=1e-5)
    assert out.trace["grad_norm"][0].item() == pytest.approx(x0.norm(dim=1).mean().item(), rel=1e-5)
    torch.testing.assert_close(out.energy, energy(out.x))


def test_same_generator_seed_same_chains():
    energy = gaussian_energy(1.0)
    x0 = torch.zeros(10, 2, dtype=torch.float64)
    a = sample(energy, x0, steps=20, eps=0.3, generator=gen(5)).x
    b = sample(energy, x0, steps=20, eps=0.3, generator=gen(5)).x
    c = sample(energy, x0, steps=20, eps=0.3, generator=gen(6)).x
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(x0, torch.zeros(10, 2, dtype=torch.float64))  # start not modified


def test_box_clamps_chains():
    energy = Energy(lambda x: -5.0 * x.sum(1), shape=(2,), dtype=torch.float64)  # pushes to +inf
    out = sample(energy, torch.zeros(4, 2, dtype=torch.float64), steps=50, eps=0.5, box=(-1.0, 1.0), generator=gen())
    assert out.x.max().item() == 1.0
    with pytest.raises(LandscapeError, match="box"):
        sample(energy, torch.zeros(4, 2), steps=5, eps=0.5, box=(-1.0, 1.0), mh=True)


def nan_beyond_two(x: torch.Tensor) -> torch.Tensor:
    # a double well that is NaN past |x| = 2: chains pushed there must be reported
    u = (x**2 - 1).pow(2).sum(1)
    return torch.where(x.abs().max(1).values > 2, torch.full_like(u, float("nan")), u)


def test_non_finite_energy_is_reported_not_propagated():
    energy = Energy(nan_beyond_two, shape=(2,), dtype=torch.float64)
    x0 = torch.zeros(8, 2, dtype=torch.float64)
    with pytest.raises(NonFiniteEnergyError, match=r"of 8 chains reached a non-finite"):
        sample(energy, x0, steps=200, eps=1.5, tau=1.0, generator=gen(), check_every=50)


def test_non_finite_start_is_reported():
    energy = Energy(nan_beyond_two, shape=(2,), dtype=torch.float64)
    x0 = torch.tensor([[0.0, 0.0], [3.0, 0.0]], dtype=torch.float64)
    with pytest.raises(NonFiniteEnergyError, match="1 of 2 chains start"):
        sample(energy, x0, steps=3, eps=0.1)


def test_mala_rejects_non_finite_proposals():
    energy = Energy(nan_beyond_two, shape=(2,), dtype=torch.float64)
    x0 = torch.zeros(200, 2, dtype=torch.float64)
    out = sample(energy, x0, steps=100, eps=1.5, mh=True, generator=gen())
    assert torch.isfinite(out.x).all() and torch.isfinite(out.energy).all()
    assert out.x.abs().max() <= 2


class Recorder(nn.Module):
    """A quadratic energy with a parameter that records whether it required grad in forward."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))
        self.seen = []

    def forward(self, x):
        self.seen.append((self.scale.requires_grad, self.training))
        return self.scale * 0.5 * (x**2).sum(1)


def test_sampling_builds_no_graph_through_parameters():
    net = Recorder()
    energy = Energy(net, shape=(2,))
    sample(energy, torch.randn(5, 2, generator=gen()), steps=10, eps=0.1, generator=gen())
    assert net.seen and all(flag is False and training is False for flag, training in net.seen)
    assert net.scale.requires_grad and net.training  # restored afterwards
    assert net.scale.grad is None


def test_fast_path_is_used_when_the_module_offers_one():
    calls = []

    class Fast(Recorder):
        def value_and_grad_fn(self):
            def vg(x):
                calls.append(1)
                return 0.5 * (x**2).sum(1), x.clone()

            return vg

    out = sample(Energy(Fast(), shape=(2,)), torch.ones(3, 2), steps=4, eps=0.1, generator=gen())
    assert len(calls) == 5 and out.x.shape == (3, 2)


def test_energy_wrapper_checks_shapes():
    energy = Energy(lambda x: (x**2).sum(1), shape=(2,), name="quad")
    with pytest.raises(LandscapeError, match=r"quad expects a batch of shape \[B, 2\], got \[4, 3\]"):
        energy(torch.zeros(4, 3))
    bad = Energy(lambda x: x, shape=(2,), name="identity")
    with pytest.raises(LandscapeError, match="must map"):
        bad(torch.zeros(4, 2))
    with pytest.raises(LandscapeError, match="must map"):
        sample(bad, torch.zeros(4, 2), steps=1, eps=0.1)
    with pytest.raises(LandscapeError, match="low < high"):
        Energy(lambda x: x.sum(1), shape=(2,), data_range=(1.0, -1.0))


def test_uniform_noise_fills_the_data_range():
    energy = Energy(lambda x: x.sum(1), shape=(1, 4, 4), data_range=(-1.0, 1.0))
    x = energy.uniform_noise(500, gen())
    assert x.shape == (500, 1, 4, 4)
    assert x.min() >= -1 and x.max() <= 1 and x.mean().abs() < 0.05
    assert math.isclose(x.std().item(), 2 / math.sqrt(12), rel_tol=0.05)
