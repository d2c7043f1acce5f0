"""Attraction-diffusion and basins on potentials whose saddles are known exactly.

Every potential here is separable or one-dimensional along its wells, so its minima and
saddles are roots of a polynomial (numpy.roots). Settings are small: float64, 2-D, tens of
chains, a fixed seed.
"""

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Energy, LandscapeError, NonFiniteEnergyError
from landscape.ad import (
    ADConfig,
    Basins,
    _Magnetized,
    assign_basins,
    attraction_diffusion,
    magnetization_ladder,
)
from landscape.minima import Minima, quench

F64 = torch.float64


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# (x0^2 - 1)^2 + 0.3 x0 + x1^2: deep well left, shallow well right, saddle near x0 = 0.075.
def double_well(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + x[:, 1] ** 2


DW_DEEP, DW_SADDLE, DW_SHALLOW = np.sort(np.roots([4.0, 0.0, -4.0, 0.3]).real)


def dw_u(r: float) -> float:
    return (r * r - 1) ** 2 + 0.3 * r


SADDLE_U = dw_u(DW_SADDLE)  # 1.0113; the wells are at -0.305 and +0.294


def point(*coords: float, n: int = 1) -> torch.Tensor:
    return torch.tensor([coords], dtype=F64).repeat(n, 1)


def minima_of(energy: Energy, guesses: list[list[float]]) -> Minima:
    """Quench guesses to exact minima and wrap them, sorted by energy."""
    q = quench(energy, torch.tensor(guesses, dtype=F64), grad_tol=1e-9)
    order = torch.argsort(q.energy, stable=True)
    n = len(guesses)
    return Minima(q.x[order], q.energy[order], torch.ones(n, dtype=torch.int64), q.grad_norm[order])


# ----------------------------------------------------------------------------- one trial


def test_magnetized_energy_and_gradient():
    energy = Energy(double_well, (2,), dtype=F64)
    x = torch.randn(6, 2, dtype=F64, generator=gen())
    b = torch.randn(6, 2, dtype=F64, generator=gen(1))
    b[0] = x[0]  # ||x - b|| = 0: finite, with the subgradient 0 for the pull
    mag = _Magnetized(energy.value_and_grad_fn(), b, temperature=0.5, alpha=3.0)
    value, grad = mag(x)
    xr = x.clone().requires_grad_(True)
    ref = double_well(xr) / 0.5 + 3.0 * (xr - b).norm(dim=1)
    (ref_grad,) = torch.autograd.grad(ref[1:].sum(), xr)
    torch.testing.assert_close(value, ref.detach())
    torch.testing.assert_close(grad[1:], ref_grad[1:])
    torch.testing.assert_close(
        grad[0], (torch.tensor([4 * x[0, 0] ** 3 - 4 * x[0, 0] + 0.3, 2 * x[0, 1]]) / 0.5).to(F64)
    )
    torch.testing.assert_close(mag.raw, double_well(x))
    torch.testing.assert_close(mag.distance, (x - b).norm(dim=1))


def test_weak_pull_crosses_from_shallow_to_deep_with_a_barrier_bounding_the_saddle():
    # T = 0.3 makes the 0.72 climb out of the shallow well a few kT; alpha = 1 only tilts.
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.3, alpha=1.0, eps=0.1)
    n = 40
    out = attraction_diffusion(energy, point(DW_SHALLOW, 0.0, n=n), point(DW_DEEP, 0.0, n=n), config, gen(0))
    ok = out.success
    assert 0.2 < ok.float().mean() < 1.0  # thermal crossing: some chains make it, not all
    # Every path crosses the line x0 = saddle, where U >= saddle energy; a discrete step
    # can hop over the top, by at most ~2 * (hop/2)^2 for hops of ~0.3 here.
    assert (out.barrier[ok] >= SADDLE_U - 0.05).all()
    # The best of ~20 paths sits within about T of the saddle (over 12 seeds: -0.005 to
    # +0.22 above it, median +0.02; this seed: 1.0308 against 1.0113).
    best = out.barrier[ok].min().item()
    assert SADDLE_U - 0.05 <= best <= SADDLE_U + 0.3
    # thermal excursions along a path make single estimates loose; the best is tight
    assert out.barrier[ok].median() > best
    assert torch.isinf(out.barrier[~ok]).all()
    assert (out.final_distance[ok] < config.delta).all() and (out.final_distance[~ok] >= config.delta).all()
    # the barrier is the energy at the recorded peak, and the best path peaks near the saddle
    torch.testing.assert_close(double_well(out.peak_x[ok]), out.barrier[ok])
    k = int(torch.argmin(out.barrier))
    assert abs(out.peak_x[k, 0].item() - DW_SADDLE) < 0.3
    assert out.steps.dtype == torch.int64 and (out.steps <= config.max_steps).all()


def test_no_pull_at_tiny_temperature_fails():
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.01, alpha=0.0, eps=0.02, max_steps=300)
    out = attraction_diffusion(energy, point(DW_SHALLOW, 0.0, n=10), point(DW_DEEP, 0.0, n=10), config, gen(1))
    assert not out.success.any()
    assert torch.isinf(out.barrier).all()
    assert (out.final_distance > 1.5).all()  # never left the shallow well (wells 2.0 apart)
    assert (out.steps <= 300).all()


def test_patience_stops_trials_that_stop_approaching():
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.01, alpha=0.0, eps=0.02, max_steps=5000, patience=25)
    out = attraction_diffusion(energy, point(DW_SHALLOW, 0.0, n=10), point(DW_DEEP, 0.0, n=10), config, gen(2))
    assert not out.success.any()
    assert (out.steps >= 25).all() and (out.steps < 1000).all()


def test_strong_pull_always_succeeds_and_still_bounds_the_saddle():
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.3, alpha=50.0, eps=0.1)
    n = 20
    for start, target in [(DW_SHALLOW, DW_DEEP), (DW_DEEP, DW_SHALLOW)]:
        out = attraction_diffusion(energy, point(start, 0.0, n=n), point(target, 0.0, n=n), config, gen(3))
        assert out.success.all()
        assert (out.steps < 50).all()  # the pull moves 0.25 per step over a distance of 2
        # Long steps can hop over the top: by at most ~2 * (hop/2)^2, with hops of
        # 0.25 (pull) plus noise of 0.1 per coordinate (measured: down to 0.952).
        assert (out.barrier >= SADDLE_U - 0.1).all()


def test_a_batch_mixes_starts_and_targets_and_a_trial_at_its_target_succeeds_at_once():
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.01, alpha=0.0, eps=0.02, max_steps=100)
    starts = torch.tensor([[DW_DEEP, 0.0], [DW_SHALLOW, 0.0], [DW_SHALLOW, 0.1]], dtype=F64)
    targets = torch.tensor([[DW_DEEP, 0.0], [DW_DEEP, 0.0], [DW_SHALLOW, 0.0]], dtype=F64)
    out = attraction_diffusion(energy, starts, targets, config, gen(4))
    assert out.success.tolist() == [True, False, True]
    assert out.steps[0] == 0 and out.steps[2] == 0
    assert out.barrier[0].item() == pytest.approx(dw_u(DW_DEEP))
    assert out.barrier[2].item() == pytest.approx(double_well(starts[2:]).item())
    empty = attraction_diffusion(energy, starts[:0], targets[:0], config, gen())
    assert empty.success.shape == (0,) and empty.peak_x.shape == (0, 2)


def test_non_finite_energy_raises_and_bad_config_is_rejected():
    def cliff(x):  # NaN left of x0 = -0.5
        u = double_well(x)
        return torch.where(x[:, 0] > -0.5, u, torch.full_like(u, float("nan")))

    energy = Energy(cliff, (2,), dtype=F64)
    with pytest.raises(NonFiniteEnergyError, match="attraction-diffusion chains"):
        attraction_diffusion(energy, point(0.9, 0.0), point(-1.0, 0.0), ADConfig(alpha=50.0), gen())
    with pytest.raises(LandscapeError, match="temperature"):
        ADConfig(temperature=0.0)
    with pytest.raises(LandscapeError, match="2 AD starts but 1 targets"):
        attraction_diffusion(Energy(double_well, (2,), dtype=F64), point(0.0, 0.0, n=2), point(0.0, 0.0), ADConfig())


def test_ad_freezes_module_parameters():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, x):
            return self.lin(x).squeeze(1) + (x**2).sum(1)

    net = Net().train()
    energy = Energy(net, (2,))
    out = attraction_diffusion(energy, torch.zeros(3, 2), torch.ones(3, 2), ADConfig(alpha=20.0), gen())
    assert out.success.all()
    assert all(p.grad is None and p.requires_grad for p in net.parameters()) and net.training


# ----------------------------------------------------------------------------- basins


def test_two_wells_behind_a_high_barrier_stay_two_basins_at_a_weak_pull():
    # At T = 0.05 the 0.72 climb is 14 kT: a weak pull cannot carry a chain over it.
    energy = Energy(double_well, (2,), dtype=F64)
    minima = minima_of(energy, [[0.9, 0.1], [-0.9, -0.1]])
    config = ADConfig(temperature=0.05, alpha=1.0, eps=0.05, barrier_factor=4.0)
    basins = assign_basins(energy, minima, config, gen(5))
    assert isinstance(basins, Basins)
    assert basins.basin.tolist() == [0, 1]
    assert basins.representative.tolist() == [0, 1]
    torch.testing.assert_close(basins.energy, minima.energy)
    assert basins.pairs.tolist() == [[0, 1]]
    # the barrier came from a stronger pull (escalation) and bounds the saddle
    h = basins.barrier.item()
    # measured: 1.006 at alpha = 64 (pull 0.08 per step: a hop over the top, 0.005 low)
    assert SADDLE_U - 0.05 <= h <= SADDLE_U + 0.2
    assert basins.pair_alpha.item() > config.alpha
    torch.testing.assert_close(double_well(basins.peak_x), basins.barrier)


def ring(x: torch.Tensor) -> torch.Tensor:
    """A circular valley |x| = 1 at energy -0.01 .. 0.01 (12 ripples); the centre is a hill at 1."""
    theta = torch.atan2(x[:, 1], x[:, 0])
    return ((x**2).sum(1) - 1) ** 2 + 0.01 * torch.cos(12 * theta)


def test_a_ring_of_minima_collapses_into_one_basin():
    energy = Energy(ring, (2,), dtype=F64)
    angles = (2 * np.arange(12) + 1) * math.pi / 12  # the ripple's minima, 0.52 apart
    minima = minima_of(energy, [[1.05 * math.cos(a), 1.05 * math.sin(a)] for a in angles])
    assert minima.energy.sub(-0.01).abs().max() < 1e-6
    # The minimum opposite the representative feels no sideways pull at first, so it
    # needs patience to drift off the symmetric point.
    config = ADConfig(temperature=0.05, alpha=2.0, eps=0.05, patience=1000)
    basins = assign_basins(energy, minima, config, gen(6))
    assert basins.n_basins == 1
    assert (basins.basin == 0).all()
    assert basins.pairs.shape == (0, 2) and basins.barrier.shape == (0,)
    # Joined around the ring, not across the hill (U = 1 at the centre): each join
    # barrier is the ring's energy plus the chains' thermal excursions, a few T.
    assert (basins.join_barrier < -0.01 + 0.35).all()  # measured: max 0.25, median 0.16


# A 3-well potential in 2-D: p(x) + y^2 with p(x) = x^2 (x^2 - 4)^2 / 8 + 0.2 x.
P3 = np.poly1d([1 / 8, 0, -1, 0, 2, 0, 0]) + np.poly1d([0.2, 0])
P3_CRIT = np.sort(P3.deriv().r.real)  # minimum, saddle, minimum, saddle, minimum


def three_wells(x: torch.Tensor) -> torch.Tensor:
    a = x[:, 0]
    return a**2 * (a**2 - 4) ** 2 / 8 + 0.2 * a + x[:, 1] ** 2


def minimax(n: int, pairs: list[list[int]], barrier: list[float]) -> np.ndarray:
    """Lowest possible highest barrier between every two basins (Floyd-Warshall on max)."""
    m = np.full((n, n), np.inf)
    for (i, j), h in zip(pairs, barrier, strict=True):
        m[i, j] = m[j, i] = min(m[i, j], h)
    for k in range(n):
        m = np.minimum(m, np.maximum(m[:, [k]], m[[k], :]))
    return m


def test_three_wells_give_three_basins_with_barriers_ordered_like_the_true_saddles():
    energy = Energy(three_wells, (2,), dtype=F64)
    wells = P3_CRIT[[0, 2, 4]]
    minima = minima_of(energy, [[w + 0.05, 0.1] for w in wells])
    assert minima.x[:, 0].tolist() == pytest.approx(sorted(wells, key=P3), abs=1e-6)
    config = ADConfig(temperature=0.1, alpha=1.0, eps=0.05, barrier_factor=4.0)
    basins = assign_basins(energy, minima, config, gen(7))
    assert basins.n_basins == 3 and basins.basin.tolist() == [0, 1, 2]
    # Minima sorted by energy: left (-0.40), middle (-0.005), right (0.40).
    s_left, s_right = P3(P3_CRIT[1]), P3(P3_CRIT[3])  # 0.958, 1.420
    true = np.array([[0, s_left, s_right], [s_left, 0, s_right], [s_right, s_right, 0]])
    est = minimax(3, basins.pairs.tolist(), basins.barrier.tolist())
    for i, j in [(0, 1), (1, 2), (0, 2)]:
        # measured: 0.975 / 1.421 / 1.421 against 0.958 / 1.420 / 1.420 (all at alpha = 16)
        assert true[i, j] - 0.05 <= est[i, j] <= true[i, j] + 0.15
    assert est[0, 1] < est[1, 2] and est[0, 2] == est[1, 2]
    finite = torch.isfinite(basins.barrier)
    torch.testing.assert_close(three_wells(basins.peak_x[finite]), basins.barrier[finite])


def six_wells(x: torch.Tensor) -> torch.Tensor:
    """Two groups of three wells: a barrier of ~2 along x, barriers of ~0.07 along y."""
    a, y = x[:, 0], x[:, 1]
    return 2 * (a**2 - 1) ** 2 + 0.3 * a + 0.5 * y**2 * (y**2 - 1) ** 2 + 0.02 * y


@pytest.mark.parametrize("round_size", [64, 1])
def test_minima_of_one_round_can_join_a_basin_founded_in_that_round(round_size):
    # With the default round size all six minima are assigned in one round, so the
    # right-hand group's second and third minima must find the basin its first minimum
    # founded in the same round; one at a time (round_size = 1) gives the same answer.
    energy = Energy(six_wells, (2,), dtype=F64)
    minima = minima_of(energy, [[a, y] for a in (-1.0, 1.0) for y in (-1.0, 0.0, 1.0)])
    # alpha = 4 pulls reliably over the 0.07 steps within a group (slope of U/T ~ 4) but
    # not over the wall between groups (slope of U/T ~ 60).
    config = ADConfig(temperature=0.05, alpha=4.0, eps=0.05, attempts=2, round_size=round_size, barrier_rounds=0)
    basins = assign_basins(energy, minima, config, gen(8))
    assert basins.basin.tolist() == [0, 0, 0, 1, 1, 1]
    assert (minima.x[:3, 0] < 0).all() and (minima.x[3:, 0] > 0).all()
    assert basins.representative.tolist() == [0, 3]
    # joins stay within each group: below the barrier of ~2 between the groups, which
    # no chain crossed (no escalation asked for: the pair is tested, with no path)
    assert (basins.join_barrier < 1.0).all()
    assert basins.pairs.tolist() == [[0, 1]] and math.isinf(basins.barrier.item())


def test_a_stronger_pull_merges_more_minima():
    energy = Energy(three_wells, (2,), dtype=F64)
    minima = minima_of(energy, [[w + 0.05, 0.1] for w in P3_CRIT[[0, 2, 4]]])
    config = ADConfig(temperature=0.1, eps=0.05, attempts=2, barrier_rounds=0)
    # measured over alpha = 0.5, 2, 4, 8, 16, 32, 64: 3, 3, 3, 3, 1, 1, 1 basins
    ladder = magnetization_ladder(energy, minima, [0.5, 16.0, 64.0], config, gen(9))
    counts = [b.n_basins for b in ladder]
    assert counts[0] == 3 and counts[-1] == 1
    assert counts == sorted(counts, reverse=True)
    assert [b.alpha for b in ladder] == [0.5, 16.0, 64.0]


@pytest.mark.parametrize("batched", [True, False])
def test_cost_counters_count_the_chains_their_steps_and_the_batched_calls(monkeypatch, batched):
    from landscape import ad

    launched = {"chains": 0, "steps": 0, "calls": 0}
    real = ad.attraction_diffusion

    def counting(energy, starts, targets, config, generator=None):
        out = real(energy, starts, targets, config, generator)
        launched["chains"] += starts.shape[0]
        launched["steps"] += int(out.steps.sum())
        launched["calls"] += 1
        return out

    evaluations = [0]

    def counted_three_wells(x: torch.Tensor) -> torch.Tensor:
        evaluations[0] += 1
        return three_wells(x)

    monkeypatch.setattr(ad, "attraction_diffusion", counting)
    minima = minima_of(Energy(three_wells, (2,), dtype=F64), [[w + 0.05, 0.1] for w in P3_CRIT[[0, 2, 4]]])
    energy = Energy(counted_three_wells, (2,), dtype=F64)
    sizes = {} if batched else {"round_size": 1, "batch_size": 1}
    # short trials and one escalation of the pull: cheap, and every phase runs chains
    config = ADConfig(
        temperature=0.1, alpha=1.0, eps=0.05, max_steps=300, patience=30, attempts=2, barrier_rounds=1, **sizes
    )
    basins = assign_basins(energy, minima, config, gen(8))
    assert basins.basin.tolist() == [0, 1, 2]
    assert basins.trials > 0 and basins.chain_steps > 0 and basins.batches > 0
    # every (start, target) chain counted once, each attempt and each direction
    assert basins.trials == launched["chains"] and basins.trials % (2 * config.attempts) == 0
    assert basins.chain_steps == launched["steps"]
    # batched calls are the energy's own evaluations (AD is the only caller here)
    assert basins.batches == evaluations[0]
    if batched:
        # chains stepped together: far fewer calls than chains times steps
        assert launched["calls"] < basins.trials
        assert basins.batches < basins.chain_steps
    else:
        # one chain per call: a start evaluation plus at least one call per step, per chain
        assert launched["calls"] == basins.trials
        assert basins.batches >= basins.trials + basins.chain_steps


def test_running_mean_arrival_works_where_the_jittering_chain_never_gets_within_delta():
    # A 64-D harmonic well at T = 1: the chain's distance to the bottom stays near
    # sqrt(64 T / k) = 4, far beyond delta = 1, but its running mean settles at the bottom.
    dim, k = 64, 4.0
    energy = Energy(lambda x: 0.5 * k * (x**2).sum(1), shape=(dim,), dtype=torch.float64)
    start = torch.zeros(1, dim, dtype=torch.float64)
    start[0, 0] = 3.0
    target = torch.zeros(1, dim, dtype=torch.float64)
    base = ADConfig(temperature=1.0, alpha=0.0, eps=0.3, max_steps=3000, patience=3000, delta=1.0)
    raw = attraction_diffusion(energy, start, target, base, gen(1))
    assert not bool(raw.success[0]) and float(raw.final_distance[0]) > 2.0
    averaged = attraction_diffusion(energy, start, target, replace(base, average=200), gen(1))
    assert bool(averaged.success[0])
