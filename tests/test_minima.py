"""Metastable states: quench, merging and find_minima on potentials whose minima are known exactly."""

import itertools

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Energy, LandscapeError, NonFiniteEnergyError
from landscape.mapping.minima import Minima, describe_stops, find_minima, merge_duplicates, quench

TILT = 0.3


def tilted_double_well(x: torch.Tensor) -> torch.Tensor:
    """(x0^2 - 1)^2 + 0.3 x0 + sum_{i>0} x_i^2: two minima on the x0 axis, the left one deeper."""
    return (x[:, 0] ** 2 - 1) ** 2 + TILT * x[:, 0] + (x[:, 1:] ** 2).sum(1)


def well_roots(tilt: float) -> np.ndarray:
    """Critical points of (x^2 - 1)^2 + tilt x, ascending: deep minimum, maximum, shallow minimum."""
    return np.sort(np.roots([4.0, 0.0, -4.0, tilt]).real)


def u1(r: float, tilt: float = TILT) -> float:
    return (r * r - 1) ** 2 + tilt * r


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ----------------------------------------------------------------------------- quench


@pytest.mark.parametrize("dim", [1, 3])
def test_quench_reaches_the_exact_minima_of_a_tilted_double_well(dim):
    energy = Energy(tilted_double_well, (dim,), data_range=(-2, 2), dtype=torch.float64)
    starts = energy.uniform_noise(300, gen(dim))
    out = quench(energy, starts, grad_tol=1e-8)
    deep, saddle, shallow = well_roots(TILT)

    assert out.converged.all() and (out.grad_norm < 1e-8).all() and not out.stalled.any()
    assert out.stops() == (300, 0, 0) and describe_stops(out.stops(), 2000) == "300 converged"
    assert out.x.dtype == torch.float64 and out.energy.dtype == torch.float64
    torch.testing.assert_close(out.energy, energy(out.x))  # stored energies are the energies there
    x0 = out.x[:, 0]
    near_deep = (x0 - deep).abs() < 1e-7
    near_shallow = (x0 - shallow).abs() < 1e-7
    assert (near_deep | near_shallow).all()
    if dim > 1:
        assert out.x[:, 1:].abs().max() < 1e-7
    assert out.energy[near_deep].sub(u1(deep)).abs().max() < 1e-6
    assert out.energy[near_shallow].sub(u1(shallow)).abs().max() < 1e-6
    # Descent never raises the energy, so a chain ends on its own side of the barrier
    # unless a long step hops over it; nearly all must.
    same_side = (starts[:, 0] < saddle) == near_deep
    assert same_side.float().mean() > 0.95
    # the deep well's side of the box [-2, 2] is (saddle + 2) / 4 = 52% of the starts
    share = near_deep.float().mean().item()
    assert share == pytest.approx((saddle + 2) / 4, abs=0.08)


@pytest.mark.parametrize("scale", [1e-20, 1e20])
def test_a_quench_of_a_scaled_energy_takes_the_same_moves(scale):
    # The descent compares energies relative to themselves and gradients to grad_tol: c U
    # with c grad_tol quenches as U does, move for move. Its gradient norms were divided by
    # no less than float64's rounding unit, which held every move of an energy whose
    # gradients are all below it (at c = 1e-20) to a crawl, 2,000 moves of 1e-9.
    energy = Energy(tilted_double_well, (2,), data_range=(-2, 2), dtype=torch.float64)
    scaled = Energy(lambda x: scale * tilted_double_well(x), (2,), data_range=(-2, 2), dtype=torch.float64)
    starts = energy.uniform_noise(64, gen(3))
    want = quench(energy, starts, grad_tol=1e-8, box=(-2.0, 2.0))
    got = quench(scaled, starts, grad_tol=1e-8 * scale, box=(-2.0, 2.0))
    assert want.converged.all() and got.converged.all() and got.steps == want.steps < 100
    torch.testing.assert_close(got.x, want.x, rtol=0, atol=1e-9)
    torch.testing.assert_close(got.energy, scale * want.energy, rtol=1e-9, atol=0)


def test_a_quench_in_the_far_tail_of_a_well_on_a_plateau_reaches_the_well():
    # A Gaussian well (0.39 wide) on a flat floor: 2.9 from its centre the gradient is
    # 1e-24, far below float64's rounding unit, and still the way down.
    energy = Energy(lambda x: -torch.exp(-((x[:, 0] - 2.0) ** 2 + x[:, 1] ** 2) / 0.15), (2,), data_range=(-4, 4),
                    dtype=torch.float64)
    start = torch.tensor([[0.3074, -2.4111]], dtype=torch.float64)
    out = quench(energy, start, grad_tol=1e-25, box=(-4.0, 4.0))
    assert out.converged.all() and out.steps < 100
    torch.testing.assert_close(out.x, torch.tensor([[2.0, 0.0]], dtype=torch.float64), rtol=0, atol=1e-9)


def test_quench_rejects_non_finite_proposals_instead_of_failing():
    # Outside |x| < 3 the energy is NaN; a huge first step lands there and must be
    # rejected (step halved), not propagated.
    def walled(x):
        u = (x**2).sum(1)
        return torch.where(x.abs().max(1).values < 3, u, torch.full_like(u, float("nan")))

    energy = Energy(walled, (2,), dtype=torch.float64)
    x0 = torch.tensor([[2.5, -1.0], [-0.5, 2.9]], dtype=torch.float64)
    out = quench(energy, x0, step_size=100.0, grad_tol=1e-9)
    assert torch.isfinite(out.energy).all()
    assert out.converged.all()
    assert out.x.abs().max() < 1e-9


def test_quench_raises_on_a_non_finite_start():
    energy = Energy(lambda x: torch.log(x[:, 0]), (1,), dtype=torch.float64, data_range=(-2.0, 2.0))
    with pytest.raises(NonFiniteEnergyError, match=r"1 of 2 quench starts .* \(the first at x = \[-1\]\): .* "
                                                   r"finite throughout the box \[-2, 2\]$"):
        quench(energy, torch.tensor([[1.0], [-1.0]], dtype=torch.float64))


def test_quench_stops_at_max_steps_and_reports_non_convergence():
    # Rosenbrock's valley is slow for plain gradient descent: 5 steps cannot converge.
    def rosenbrock(x):
        return (1 - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2

    energy = Energy(rosenbrock, (2,), dtype=torch.float64)
    out = quench(energy, torch.tensor([[-1.2, 1.0]], dtype=torch.float64), max_steps=5)
    assert out.steps == 5
    assert not out.converged.any() and not out.stalled.any()
    assert describe_stops(out.stops(), 5) == "1 at the 5-iteration limit"
    assert out.energy.item() < rosenbrock(torch.tensor([[-1.2, 1.0]], dtype=torch.float64)).item()
    assert (out.grad_norm > 1e-3).all()


def test_a_quench_s_progress_ends_at_its_budget_whenever_it_stops():
    # A bowl converges in a few iterations of the 250 allowed; the count still reaches 250
    # (a progress bar over the budget ends full), in steps of at most 100 while it runs.
    energy = Energy(lambda x: ((x - 0.5) ** 2).sum(1), (2,), dtype=torch.float64)
    done: list[int] = []
    out = quench(energy, torch.zeros(4, 2, dtype=torch.float64), max_steps=250, progress=done.append)
    assert out.converged.all() and out.steps < 100
    assert sum(done) == 250
    done.clear()
    slope = Energy(lambda x: x.sum(1), (2,), dtype=torch.float64)  # no minimum: the whole budget runs
    quench(slope, torch.zeros(3, 2, dtype=torch.float64), max_steps=250, progress=done.append)
    assert done == [100, 100, 50]


def test_a_quench_step_waits_for_the_device_once():
    # On a GPU every read of a tensor's value on the host drains the queue of launched
    # kernels: a step reads one number (how many chains stopped), whatever else it does,
    # chains that stop included.
    from torch.profiler import ProfilerActivity, profile

    def rosenbrock(x):
        return (1 - x[:, 0]) ** 2 + 100 * (x[:, 1] - x[:, 0] ** 2) ** 2

    energy = Energy(rosenbrock, (2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    starts = energy.uniform_noise(32, generator=gen())

    def reads(steps: int) -> tuple[int, int, int]:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = quench(energy, starts.clone(), max_steps=steps, grad_tol=1e-12)
        # (selecting by a mask reads how many rows it keeps: aten::nonzero)
        return (sum(ev.name in ("aten::_local_scalar_dense", "aten::nonzero") for ev in prof.events()), out.steps,
                int(out.converged.sum()))

    (short, n, _), (long, m, converged) = reads(10), reads(40)
    assert m > n and 0 < converged < 32  # chains stopped on the way (a step's second read, before)
    assert long - short == m - n


def test_quench_descends_a_stiff_valley_to_its_floor_in_few_steps():
    # Curvature 2e4 across the valley, 8 along it at the minima, negative in its middle
    # (|x0| < 0.577): gradient descent's step is held under 1e-4 by the stiff direction and
    # would need tens of thousands of steps to cross; the curvature model needs tens.
    energy = Energy(lambda x: (x[:, 0] ** 2 - 1) ** 2 + 1e4 * x[:, 1] ** 2, (2,), data_range=(-2, 2),
                    dtype=torch.float64)
    starts = energy.uniform_noise(64, gen(5))
    out = quench(energy, starts, grad_tol=1e-6, box=(-2.0, 2.0), max_steps=500)
    assert out.converged.all() and out.steps < 200
    torch.testing.assert_close(out.x[:, 0].abs(), torch.ones(64, dtype=torch.float64), atol=1e-6, rtol=0)
    assert out.x[:, 1].abs().max() < 1e-8
    # every chain ends on the side of the valley it started on (descent: no leaps)
    assert bool(((out.x[:, 0] > 0) == (starts[:, 0] > 0)).all())


def test_quench_in_float32_stops_when_precision_is_exhausted():
    # An unreachable tolerance: the chain must stop once its moves no longer change x
    # (the step collapses on rounding noise), well before max_steps.
    energy = Energy(lambda x: ((x - 0.3) ** 2 * torch.tensor([1.0, 50.0])).sum(1), (2,))
    out = quench(energy, torch.tensor([[2.0, -1.0]]), grad_tol=1e-30, max_steps=5000)
    assert out.x.dtype == torch.float32
    assert out.steps < 5000 and bool((out.stalled | out.converged).all())  # (x may land on 0.3 exactly)
    torch.testing.assert_close(out.x, torch.full((1, 2), 0.3), atol=1e-5, rtol=0)


def test_quench_freezes_module_parameters():
    torch.manual_seed(0)
    module = _Wrapped(nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)))
    module.train()
    out = quench(Energy(module, (2,)), torch.randn(4, 2, generator=gen()), max_steps=50)
    assert torch.isfinite(out.energy).all()
    # no parameter gradient was accumulated; flags and training mode are restored
    assert all(p.grad is None and p.requires_grad for p in module.parameters())
    assert module.training


class _Wrapped(nn.Module):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x).squeeze(1) + (x**2).sum(1)


# ----------------------------------------------------------------------------- merging


def test_merge_duplicates_keeps_the_lowest_point_of_each_group():
    x = torch.tensor([[0.0, 0.0], [0.05, 0.0], [1.0, 1.0], [1.02, 1.01], [0.0, 0.08], [3.0, 0.0]])
    e = torch.tensor([0.5, 0.1, 2.0, 1.5, 0.7, -1.0])
    keep, assign = merge_duplicates(x, e, radius=0.1)
    assert keep.tolist() == [5, 1, 3]  # sorted by energy: -1.0, 0.1, 1.5
    assert assign.tolist() == [1, 1, 2, 2, 1, 0]
    assert e[keep].tolist() == sorted(e[keep].tolist())


def test_merge_duplicates_radius_is_inclusive_and_zero_merges_exact_copies():
    x = torch.tensor([[0.0], [0.5], [0.5], [1.0]], dtype=torch.float64)
    e = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    keep, assign = merge_duplicates(x, e, radius=0.0)
    assert keep.tolist() == [0, 1, 3] and assign.tolist() == [0, 1, 1, 2]
    keep, assign = merge_duplicates(x, e, radius=0.5)
    # 0.5 is within 0.5 of 0 and joins it; 1.0 is 1.0 from 0 and founds its own group
    assert keep.tolist() == [0, 3] and assign.tolist() == [0, 0, 0, 1]


def test_merge_duplicates_is_independent_of_the_chunking():
    g = gen(3)
    centres = torch.randn(15, 4, generator=g, dtype=torch.float64) * 5
    x = centres.repeat_interleave(8, 0) + 0.02 * torch.randn(120, 4, generator=g, dtype=torch.float64)
    e = torch.randn(120, generator=g, dtype=torch.float64)
    keep_a, assign_a = merge_duplicates(x, e, radius=0.3)
    keep_b, assign_b = merge_duplicates(x, e, radius=0.3, chunk=7)
    assert keep_a.tolist() == keep_b.tolist() and assign_a.tolist() == assign_b.tolist()
    assert len(keep_a) == 15
    # every group is one centre's cloud, represented by its lowest point
    for k, i in enumerate(keep_a.tolist()):
        members = torch.nonzero(assign_a == k).flatten()
        assert set((members // 8).tolist()) == {i // 8}
        assert e[members].min() == e[i]
    # kept points are more than a radius apart
    d = torch.cdist(x[keep_a], x[keep_a]) + torch.eye(15, dtype=torch.float64) * 10
    assert d.min() > 0.3


def test_merge_duplicates_counts_energies_within_the_tie_as_equal():
    # Two points of one flat floor, their energies apart by rounding: without a tie the
    # lower one (by 1e-30) represents the group; with one, the first.
    x = torch.tensor([[0.0], [0.03], [1.0]], dtype=torch.float64)
    e = torch.tensor([1e-30, 0.0, -1.0], dtype=torch.float64)
    keep, assign = merge_duplicates(x, e, radius=0.05)
    assert keep.tolist() == [2, 1] and assign.tolist() == [1, 1, 0]
    keep, assign = merge_duplicates(x, e, radius=0.05, tie=1e-9)
    assert keep.tolist() == [2, 0] and assign.tolist() == [1, 1, 0]
    # ... the same at any scale of the energies and the tie
    keep_c, assign_c = merge_duplicates(x, 100.0 * e, radius=0.05, tie=1e-7)
    assert keep_c.tolist() == keep.tolist() and assign_c.tolist() == assign.tolist()
    with pytest.raises(LandscapeError, match="tie"):
        merge_duplicates(x, e, radius=0.05, tie=-1.0)


def test_merge_duplicates_checks_its_input():
    with pytest.raises(LandscapeError):
        merge_duplicates(torch.zeros(3, 2), torch.zeros(2), 0.1)
    with pytest.raises(LandscapeError):
        merge_duplicates(torch.zeros(2, 2), torch.tensor([0.0, float("nan")]), 0.1)


def _close_wells(scale: float = 1.0):
    # Double well in x0 / 0.03: minima at x0 = -0.0307 (U = -0.2024) and 0.0292 (U = 0.1974),
    # 0.060 apart, a barrier of 0.8076 above the higher between them.
    def u(x):
        y = x[:, 0] / 0.03
        return scale * ((y ** 2 - 1) ** 2 + 0.2 * y + x[:, 1] ** 2)

    return Energy(u, shape=(2,), data_range=(-3.0, 3.0), dtype=torch.float64)


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_merge_duplicates_leaves_apart_minima_with_a_barrier_between(scale, monkeypatch):
    # Closer than the radius (the default for the box, 0.085), yet two minima: the energy
    # says so. Two ends of one well a rounding error apart, and a point on its slope, merge.
    e = _close_wells(scale)
    x = torch.tensor([[-0.030724, 0.0], [0.029220, 0.0], [-0.030724, 1e-9], [0.0292, 0.05]], dtype=torch.float64)
    u = e(x)
    keep, assign = merge_duplicates(x, u, radius=0.085)
    assert keep.tolist() == [0]  # (distance alone: one)
    keep, assign = merge_duplicates(x, u, radius=0.085, apart=e)
    assert keep.tolist() == [0, 1] and assign.tolist() == [0, 1, 0, 1]
    # ... whatever the chunks: a point barred from its nearest kept point joins the next
    keep_b, assign_b = merge_duplicates(x, u, radius=0.085, apart=e, chunk=1)
    assert keep_b.tolist() == keep.tolist() and assign_b.tolist() == assign.tolist()
    # ... and whatever the batches of segments
    import landscape.mapping.minima as minima

    monkeypatch.setattr(minima, "MERGE_BATCH", 1)
    keep_c, assign_c = merge_duplicates(x, u, radius=0.085, apart=e)
    assert keep_c.tolist() == keep.tolist() and assign_c.tolist() == assign.tolist()


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_find_minima_keeps_two_wells_closer_than_the_merge_radius(scale):
    m = find_minima(_close_wells(scale), _close_wells().uniform_noise(64, gen(1)), eps=0.01, steps=0,
                    merge_radius=0.085, grad_tol=1e-10 * scale, box=(-3.0, 3.0))
    assert len(m) == 2
    np.testing.assert_allclose(m.x[:, 0].numpy(), [-0.030724, 0.029220], atol=1e-5)
    assert m.hits.min() > 10  # (a settling nudge that lands in the lower well does not carry points there)


def test_settling_does_not_carry_a_minimum_into_the_next_well_over():
    # Gaussian wells 0.1 wide, 0.6 apart, in a box 100 wide: the nudge (a quarter of the
    # default merge radius, 0.35) lands beyond the higher well's barrier, where the descent
    # ends in the lower well. Every chain started at the higher well stays there.
    def wells(x):
        a = ((x - torch.tensor([0.3, 0.0], dtype=x.dtype)) ** 2).sum(1)
        b = ((x + torch.tensor([0.3, 0.0], dtype=x.dtype)) ** 2).sum(1)
        return 0.001 * (x ** 2).sum(1) - torch.exp(-a / 0.02) - 0.8 * torch.exp(-b / 0.02)

    e = Energy(wells, shape=(2,), data_range=(-50.0, 50.0), dtype=torch.float64)
    start = torch.tensor([[-0.29999, 0.0]], dtype=torch.float64).repeat(32, 1)
    m = find_minima(e, start, eps=0.01, steps=0, merge_radius=1.414, grad_tol=1e-10, box=(-50.0, 50.0),
                    generator=gen(2))
    assert len(m) == 1 and m.hits.tolist() == [32] and float(m.x[0, 0]) == pytest.approx(-0.29999, abs=1e-4)


# ----------------------------------------------------------------------------- find_minima


def four_wells(x: torch.Tensor) -> torch.Tensor:
    """Separable: (x^2-1)^2 + 0.1 x + (y^2-1)^2 + 0.25 y, four wells of four different depths."""
    return (x[:, 0] ** 2 - 1) ** 2 + 0.1 * x[:, 0] + (x[:, 1] ** 2 - 1) ** 2 + 0.25 * x[:, 1]


def test_find_minima_finds_all_four_wells_sorted_by_depth():
    energy = Energy(four_wells, (2,), data_range=(-2, 2), dtype=torch.float64)
    starts = energy.uniform_noise(200, gen(1))
    found = find_minima(
        energy, starts, temperature=0.05, eps=0.05, steps=100, merge_radius=0.1, grad_tol=1e-8, generator=gen(2)
    )
    assert isinstance(found, Minima) and len(found) == 4
    xr, yr = well_roots(0.1)[[0, 2]], well_roots(0.25)[[0, 2]]
    expected = sorted(((u1(a, 0.1) + u1(b, 0.25), a, b) for a in xr for b in yr), key=lambda t: t[0])
    for k, (u, a, b) in enumerate(expected):
        assert found.x[k].tolist() == pytest.approx([a, b], abs=1e-7)
        assert found.energy[k].item() == pytest.approx(u, abs=1e-9)
    assert found.energy.tolist() == sorted(found.energy.tolist())
    assert found.hits.sum().item() == 200 and (found.hits > 10).all()
    assert (found.grad_norm < 1e-8).all()
    assert found.x.dtype == torch.float64 and found.hits.dtype == torch.int64


def test_find_minima_without_langevin_steps_quenches_the_starts():
    energy = Energy(tilted_double_well, (1,), data_range=(-2, 2), dtype=torch.float64)
    starts = torch.tensor([[-1.5], [-0.5], [0.5], [1.9]], dtype=torch.float64)
    found = find_minima(energy, starts, eps=0.1, steps=0, merge_radius=0.01)
    deep, _, shallow = well_roots(TILT)
    assert found.x.flatten().tolist() == pytest.approx([deep, shallow], abs=1e-3)
    assert found.hits.tolist() == [2, 2]


def test_a_boxed_quench_stops_on_the_face_of_an_energy_that_falls_forever():
    # U = -x0 + x1^2 falls without bound along x0: unboxed, the descent runs off; in the
    # box [-1, 1] the minimum is (1, 0) on the face, with zero projected gradient.
    energy = Energy(lambda x: -x[:, 0] + x[:, 1] ** 2, shape=(2,), data_range=(-1, 1), dtype=torch.float64)
    start = torch.tensor([[0.0, 0.5], [-0.9, -0.7]], dtype=torch.float64)
    free = quench(energy, start, max_steps=300)
    assert float(free.x[:, 0].min()) > 5.0
    boxed = quench(energy, start, max_steps=300, box=(-1.0, 1.0), grad_tol=1e-6)
    torch.testing.assert_close(boxed.x, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64), atol=1e-5, rtol=0)
    assert bool(boxed.converged.all())


def test_an_energy_linear_in_x_quenches_to_its_corner_with_no_aliased_gradient():
    # The gradient autograd gives x.sum(1) is one expanded row: written in place row by
    # row it would alias every row (and torch warns). The quench must see it as rows.
    import warnings

    energy = Energy(lambda x: x.sum(1), shape=(2,), data_range=(-1, 1), dtype=torch.float64)
    _, g = energy.value_and_grad_fn()(torch.zeros(3, 2, dtype=torch.float64))
    assert g.is_contiguous() and g.stride() == (2, 1)
    start = torch.tensor([[0.0, 0.5], [0.9, -0.7], [0.2, 0.2]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        q = quench(energy, start, max_steps=300, box=(-1.0, 1.0), grad_tol=1e-6)
    torch.testing.assert_close(q.x, torch.full((3, 2), -1.0, dtype=torch.float64), atol=1e-6, rtol=0)


# (w+, w-, A+, A-) of three quartic double wells along Hadamard directions: 8 minima whose
# energies are sums of -A, index-1 saddles where one coordinate u_k is 0
HIER = ((0.30, 0.30, 4.0, 4.4), (0.25, 0.25, 1.0, 1.1), (0.20, 0.20, 0.25, 0.28))


def hadamard_wells(x: torch.Tensor) -> torch.Tensor:
    """sum_k f_k(u_k) + 10 mean(y^2) over images [N, 1, 32, 32]: u_k = h_k . x / D along the
    +-1 rows 3, 5, 6 of a Hadamard matrix, y the rest of x, f_k a quartic double well."""
    from scipy.linalg import hadamard

    z = x.reshape(x.shape[0], -1)
    d = z.shape[1]
    h = torch.as_tensor(hadamard(d)[[3, 5, 6]], dtype=z.dtype)
    u = z @ h.T / d
    out = 10.0 * (z - u @ h).pow(2).mean(1)
    for k, (wp, wm, ap, am) in enumerate(HIER):
        v = u[:, k]
        out = out + torch.where(v >= 0, ap * ((v / wp) ** 2 - 1) ** 2 - ap, am * ((v / wm) ** 2 - 1) ** 2 - am)
    return out


def test_a_float32_quench_stopped_beside_a_saddle_in_1024_dimensions_rolls_off_it():
    # One of 256 uniform starts stops 4e-4 from the saddle between two minima (E = -5.4,
    # gradient 5e-5 that float32 cannot follow down); a random nudge of a quarter of the
    # merge radius has 1/32 of its length along the way down, and left it there in most
    # draws. Nudged down the direction of lowest curvature, it reaches a minimum.
    energy = Energy(hadamard_wells, (1, 32, 32), data_range=(-1, 1))
    minima = {-sum(p) for p in itertools.product(*[(ap, am) for _, _, ap, am in HIER])}
    start = energy.uniform_noise(256, gen(0))[69:70]
    for seed in range(3):
        found = find_minima(energy, start.repeat(4, 1, 1, 1), eps=1.6, steps=0, merge_radius=0.64, generator=gen(seed),
                            grad_tol=3.7e-9, box=(-1.0, 1.0))
        assert all(min(abs(e - m) for m in minima) < 1e-4 for e in found.energy.tolist()), found.energy
