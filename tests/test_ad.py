"""Attraction-diffusion and basins on potentials whose saddles are known exactly.

Every potential here is separable or one-dimensional along its wells, so its minima and
saddles are roots of a polynomial (numpy.roots). Settings are small: float64, 2-D, tens of
chains, a fixed seed.
"""

import json
import math
from dataclasses import asdict, replace

import numpy as np
import pytest
import torch
from torch import nn

from landscape import Energy, LandscapeError, NonFiniteEnergyError
from landscape.mapping.ad import (
    ADConfig,
    ADTrials,
    PairRecords,
    _closed,
    _Magnetized,
    assign_basins,
    attraction_diffusion,
    extend_basins,
    join_drained,
    nest_levels,
)
from landscape.mapping.minima import Minima, quench
from landscape.mapping.paths import segment_max
from landscape.sampling.langevin import RowGroups
from landscape.io.records import Partition
from landscape.mapping.tree import minimax_tree

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


def subset(minima: Minima, index: list[int]) -> Minima:
    """Some of the minima, in the given order."""
    idx = torch.tensor(index, dtype=torch.int64)
    return Minima(minima.x[idx], minima.energy[idx], minima.hits[idx], minima.grad_norm[idx])


def check_records(energy: Energy, minima: Minima, records: PairRecords) -> None:
    """What every PairRecords must satisfy: pairs i < j, each once; a connected pair's
    barrier is at least both minima's energies and every recorded point of its chain,
    which runs from minimum i to minimum j; no path where nothing connected."""
    assert isinstance(records, PairRecords)
    r = len(records)
    assert records.pairs.shape == (r, 2) and records.barrier.shape == (r,) and records.alpha.shape == (r,)
    assert len(records.paths) == r
    assert (records.pairs[:, 0] < records.pairs[:, 1]).all()
    assert len({tuple(p) for p in records.pairs.tolist()}) == r
    e = minima.energy.numpy()
    for (i, j), h, path in zip(records.pairs.tolist(), records.barrier.tolist(), records.paths, strict=True):
        if not math.isfinite(h):
            assert h == math.inf and path is None
            continue
        assert h >= max(e[i], e[j]) - 1e-12
        assert path is not None and path.shape[1:] == minima.x.shape[1:] and path.shape[0] >= 3
        torch.testing.assert_close(path[0], minima.x[i], rtol=0, atol=0)
        torch.testing.assert_close(path[-1], minima.x[j], rtol=0, atol=0)
        assert float(energy(path).max()) <= h + 1e-12


# ----------------------------------------------------------------------------- settings


def test_config_defaults_validation_and_stored_form():
    c = ADConfig()
    assert (c.max_steps, c.average, c.record) == (2000, 20, 256)
    assert (c.temperature, c.alpha, c.delta, c.attempts, c.patience) == (1.0, 1.0, 0.35, 3, 200)
    # Plain data: round-trips through JSON; keys of older versions are ignored.
    stored = json.loads(json.dumps(asdict(replace(c, alpha=4.0, record=0))))
    assert ADConfig.from_dict(stored) == replace(c, alpha=4.0, record=0)
    old = dict(stored, barrier_factor=2.0, barrier_rounds=6)
    assert ADConfig.from_dict(old) == replace(c, alpha=4.0, record=0)
    assert ADConfig.from_dict({"temperature": 0.5}) == ADConfig(temperature=0.5)
    for bad, field in [
        ({"temperature": 0.0}, "temperature"),
        ({"alpha": -1.0}, "alpha"),
        ({"eps": math.inf}, "eps"),
        ({"patience": 0}, "patience"),
        ({"delta": 0.0}, "delta"),
        ({"attempts": 0}, "attempts"),
        ({"average": -1}, "average"),
        ({"record": 1}, "record"),
    ]:
        with pytest.raises(LandscapeError, match=field):
            ADConfig(**bad)
    with pytest.raises(LandscapeError, match="record"):
        ADConfig.from_dict({"record": 1, "unknown": 3})


# ----------------------------------------------------------------------------- one trial


def test_magnetized_energy_and_gradient():
    energy = Energy(double_well, (2,), dtype=F64)
    x = torch.randn(6, 2, dtype=F64, generator=gen())
    b = torch.randn(6, 2, dtype=F64, generator=gen(1))
    b[0] = x[0]  # ||x - b|| = 0: finite, with the subgradient 0 for the pull
    mag = _Magnetized(energy.value_and_grad_fn(), b, temperature=0.5, alpha=3.0, eps=0.1, generator=gen(), box=None)
    u, g, diff, d = mag.evaluate(x)
    xr = x.clone().requires_grad_(True)
    ref = double_well(xr) / 0.5 + 3.0 * (xr - b).norm(dim=1)
    (ref_grad,) = torch.autograd.grad(ref[1:].sum(), xr)
    # the chains' state: T times the magnetized gradient, the subgradient 0 of the pull at x = b
    torch.testing.assert_close(mag.h[1:], 0.5 * ref_grad[1:])
    torch.testing.assert_close(mag.h[0], torch.tensor([4 * x[0, 0] ** 3 - 4 * x[0, 0] + 0.3, 2 * x[0, 1]], dtype=F64))
    torch.testing.assert_close(u, double_well(x))
    torch.testing.assert_close(d, (x - b).norm(dim=1))
    torch.testing.assert_close(diff, x - b)
    # a step is the Langevin move on U/T + alpha ||x - b||: x - eps^2/2 grad + eps z
    z = torch.randn(x.shape, generator=gen(), dtype=F64)
    mag.step(torch.empty_like(x))
    torch.testing.assert_close(mag.x[1:], x[1:] - 0.5 * 0.1**2 * ref_grad[1:] + 0.1 * z[1:])


def test_weak_pull_crosses_from_shallow_to_deep_with_a_barrier_bounding_the_saddle():
    # T = 0.3 makes the 0.72 climb out of the shallow well a few kT; alpha = 1 only tilts.
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.3, alpha=1.0, eps=0.1)
    n = 40
    starts, targets = point(DW_SHALLOW, 0.0, n=n), point(DW_DEEP, 0.0, n=n)
    out = attraction_diffusion(energy, starts, targets, config, gen(0))
    assert isinstance(out, ADTrials)
    ok = out.success
    assert 0.2 < ok.float().mean() < 1.0  # thermal crossing: some chains make it, not all
    # Every path crosses the line x0 = saddle, where U >= saddle energy; a discrete step
    # can hop over the top, by at most ~2 * (hop/2)^2 for hops of ~0.3 here.
    assert (out.barrier[ok] >= SADDLE_U - 0.05).all()
    # The best of ~25 paths sits within about T of the saddle (over 6 seeds: +0.005 to
    # +0.16 above it; this seed: +0.019).
    best = out.barrier[ok].min().item()
    assert SADDLE_U - 0.05 <= best <= SADDLE_U + 0.3
    # thermal excursions along a path make single estimates loose; the best is tight
    assert out.barrier[ok].median() > best + 0.1  # measured: +0.36
    assert torch.isinf(out.barrier[~ok]).all()
    # Arrival is judged on the running mean of the chain (average = 20).
    assert (out.final_distance[ok] < config.delta).all() and (out.final_distance[~ok] >= config.delta).all()
    # the barrier is the energy at the recorded peak, and the best path peaks near the saddle
    torch.testing.assert_close(double_well(out.peak_x[ok]), out.barrier[ok])
    k = int(torch.argmin(out.barrier))
    assert abs(out.peak_x[k, 0].item() - DW_SADDLE) < 0.3
    assert out.steps.dtype == torch.int64 and (out.steps <= config.max_steps).all()
    # The recorded path: at most `record` points per chain, none above the chain's peak,
    # and a successful chain's path got from the shallow side to the deep one.
    assert out.path is not None and out.path.shape == (n, config.record, 2)
    assert (out.path_len >= 1).all() and (out.path_len <= config.record).all()
    long = out.steps > config.record
    assert long.any() and (out.path_len[long] >= config.record // 4).all()  # thinned, not cut
    peak = double_well(out.peak_x)
    for p in range(n):
        pts = out.path[p, : int(out.path_len[p])]
        assert double_well(pts).max() <= peak[p] + 1e-12
    for p in torch.nonzero(ok).flatten().tolist():
        pts = out.path[p, : int(out.path_len[p])]
        assert (pts[:, 0] < DW_SADDLE).any()  # reached the deep side
        assert double_well(pts).max() <= out.barrier[p] + 1e-12
    # where each successful chain stopped: near its target
    assert ((out.end_x[ok] - targets[ok]).norm(dim=1) < 1.0).all()


def _one_trial_step_by_step(energy: Energy, start: torch.Tensor, target: torch.Tensor, config: ADConfig,
                            generator: torch.Generator) -> dict:
    """What attraction-diffusion must give one trial, checked after every step: the
    library's magnetization and Langevin move, and the bookkeeping in plain Python."""
    mag = _Magnetized(energy.value_and_grad_fn(), target, config.temperature, config.alpha, config.eps, generator,
                      energy.data_range)
    raw, _, diff, d = mag.evaluate(start.clone())
    x, u = mag.x, float(raw)
    offset = diff.clone()
    dist = float(d)
    peak_u, peak_x, prev, nxt, fresh = u, x, x, x, True
    best, stale = dist, 0
    cap = config.record
    path: list[torch.Tensor] = []
    stride, step = 1, 0
    while True:
        if dist < config.delta or stale >= config.patience or step >= config.max_steps:
            break
        before = mag.x
        raw, _, diff, d = mag.step(torch.empty_like(before))
        step += 1
        x, u = mag.x, float(raw)
        if config.average:
            offset.lerp_(diff, 1.0 / config.average)
            dist = float(torch.linalg.vector_norm(offset, dim=1))
        else:
            dist = float(d)
        if fresh:
            nxt = x
        fresh = u > peak_u
        if fresh:
            peak_u, peak_x, prev = u, x, before
        if dist < best:
            best, stale = dist, 0
        else:
            stale += 1
        if cap and step % stride == 0:
            path.append(x[0])
            if len(path) == cap:
                path, stride = path[1::2], stride * 2
    reached = dist < config.delta
    return {"success": reached, "barrier": peak_u if reached else math.inf, "steps": step, "final_distance": dist,
            "peak_x": peak_x[0], "peak_prev": prev[0], "peak_next": (peak_x if fresh else nxt)[0], "end_x": x[0],
            "path": torch.stack(path) if path else torch.zeros((0, 2), dtype=F64)}


def slope(x: torch.Tensor) -> torch.Tensor:
    return 3.0 * x[:, 0] + x[:, 1] ** 2


_WELLS = (  # starts and targets in the double well
    [[DW_SHALLOW, 0.0], [DW_SHALLOW, 0.3], [DW_DEEP, -0.2], [0.9, 0.1], [-0.5, 0.5]],
    [[DW_DEEP, 0.0], [DW_DEEP, 0.0], [DW_SHALLOW, 0.0], [DW_DEEP, 0.2], [DW_SHALLOW, 0.0]],
)


@pytest.mark.parametrize("potential, points, settings", [
    # arrives at a step inside a window; the running mean judges arrival; paths thinned
    (double_well, _WELLS, dict(temperature=0.1, alpha=2.0, eps=0.1, max_steps=3000, patience=3000, delta=0.3,
                               record=8)),
    # out of patience (no pull at a tiny temperature): the stale count, window to window
    (double_well, _WELLS, dict(temperature=0.01, alpha=0.0, eps=0.02, max_steps=3000, patience=37, delta=0.1,
                               record=16)),
    # out of steps at a step count that is no multiple of the window; arrival by position
    (double_well, _WELLS, dict(temperature=0.3, alpha=5.0, eps=0.15, max_steps=53, patience=3000, delta=0.2,
                               average=0, record=4)),
    # pulled uphill: the peak is the last step that counts, inside a window
    (slope, ([[-1.0, 0.1 * p] for p in range(5)], [[1.0, 0.0]] * 5),
     dict(temperature=0.1, alpha=50.0, eps=0.05, max_steps=3000, patience=3000, delta=0.1, average=0, record=8)),
])
def test_bookkeeping_once_per_window_gives_what_a_check_after_every_step_gives(potential, points, settings):
    # Each trial draws its noise from its own generator (row groups of one), so each
    # must come out exactly as it does checked step by step alone, whatever the others
    # do and whenever the batch is compacted.
    energy = Energy(potential, (2,), data_range=(-2.0, 2.0), dtype=F64)
    config = ADConfig(**settings)
    starts, targets = (torch.tensor(p, dtype=F64) for p in points)
    n = starts.shape[0]
    out = attraction_diffusion(energy, starts, targets, config, RowGroups([1] * n, [gen(10 + p) for p in range(n)]))
    assert len({int(s) for s in out.steps}) > 1  # the trials stop at different steps
    if potential is slope:
        assert (out.success & (out.steps % 16 != 0) & torch.all(out.peak_x == out.end_x, dim=1)).any()
    for p in range(n):
        want = _one_trial_step_by_step(energy, starts[p : p + 1], targets[p : p + 1], config, gen(10 + p))
        assert bool(out.success[p]) == want["success"]
        assert float(out.barrier[p]) == want["barrier"]
        assert int(out.steps[p]) == want["steps"]
        assert float(out.final_distance[p]) == want["final_distance"]
        for name in ("peak_x", "peak_prev", "peak_next", "end_x"):
            assert torch.equal(getattr(out, name)[p], want[name]), name
        assert torch.equal(out.path[p, : int(out.path_len[p])], want["path"])


def test_a_window_of_steps_waits_for_the_device_once(monkeypatch):
    # On a GPU every read of a tensor's value on the host drains the queue of launched
    # kernels: a window's trials that stopped and its non-finite energies are read at once.
    from torch.profiler import ProfilerActivity, profile

    listed = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: listed.append(1) or tolist(t))
    energy = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)

    def reads(steps: int) -> int:
        listed.clear()
        config = ADConfig(temperature=0.1, alpha=0.0, eps=0.01, max_steps=steps, patience=10**6, delta=1e-9)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = attraction_diffusion(energy, point(DW_SHALLOW, 0.0, n=4), point(DW_DEEP, 0.0, n=4), config, gen())
        assert (out.steps == steps).all()  # every trial ran every window
        return len(listed) + sum(ev.name == "aten::_local_scalar_dense" for ev in prof.events())

    assert reads(16 * 9) - reads(16 * 3) == 6


def test_trials_leave_the_batch_without_waiting_for_the_device_again(monkeypatch):
    # Keeping a batch's running trials by a mask (x[keep]) reads from the device how many
    # rows it keeps, once per field (a GPU waits for its queue each time): the rows kept are
    # found once, from the count the window's one read already has.
    from torch.profiler import ProfilerActivity, profile

    listed = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: listed.append(1) or tolist(t))
    energy = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)
    # trials from ever farther up the shallow well's side: they arrive window after window
    starts = torch.stack([torch.full((24,), DW_DEEP + 0.05, dtype=F64), torch.linspace(0.1, 1.6, 24, dtype=F64)], 1)
    config = ADConfig(temperature=0.2, alpha=3.0, eps=0.05, max_steps=2000, patience=10**6, delta=0.1, average=0)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = attraction_diffusion(energy, starts, point(DW_DEEP, 0.0, n=24), config, gen())
    windows = -(-int(out.steps.max()) // 16)
    assert len(set(((out.steps - 1) // 16).tolist())) >= 6  # (trials left at six windows or more)
    reads = len(listed) + sum(ev.name in ("aten::_local_scalar_dense", "aten::nonzero") for ev in prof.events())
    assert reads <= windows + 4  # (one per window; the first window's count; the end; whether a step is capped)


def test_the_successful_chains_come_to_the_cpu_in_one_copy_per_field(monkeypatch):
    # From a GPU every copy to the host waits for the device: the paths that strings start
    # from come over for all successful trials at once, not trial by trial.
    from landscape.mapping.ad import _chains

    energy = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)
    starts, targets = point(DW_SHALLOW, 0.0, n=40), point(DW_DEEP, 0.0, n=40)
    config = ADConfig(temperature=0.3, alpha=2.0, eps=0.1, max_steps=300, patience=10**6, delta=0.1, record=16)
    trials = attraction_diffusion(energy, starts, targets, config, gen(4))
    assert 10 < int(trials.success.sum()) < 40  # (successes and failures)
    copies = []
    cpu = torch.Tensor.cpu
    monkeypatch.setattr(torch.Tensor, "cpu", lambda t, *a, **k: copies.append(1) or cpu(t, *a, **k))
    chains = _chains(starts, trials, targets)
    assert len(copies) <= 6
    for p, chain in enumerate(chains):
        if not trials.success[p]:
            assert chain is None
            continue
        n = int(trials.path_len[p])
        assert torch.equal(chain, torch.cat([starts[p : p + 1], trials.path[p, :n], trials.end_x[p : p + 1],
                                             targets[p : p + 1]]))


def test_no_pull_at_tiny_temperature_fails():
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.01, alpha=0.0, eps=0.02, max_steps=300)
    out = attraction_diffusion(energy, point(DW_SHALLOW, 0.0, n=10), point(DW_DEEP, 0.0, n=10), config, gen(1))
    assert not out.success.any()
    assert torch.isinf(out.barrier).all()
    assert (out.final_distance > 1.5).all()  # never left the shallow well (wells 2.0 apart)
    assert (out.steps <= 300).all()
    assert ((out.end_x[:, 0] - DW_SHALLOW).abs() < 0.2).all()
    # Failed chains are recorded too (paths, peaks): all in the shallow well.
    assert (out.path_len > 0).all()
    for p in range(10):
        assert (out.path[p, : int(out.path_len[p]), 0] > DW_SADDLE).all()


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
        # The pull moves 0.25 per step over a distance of 2; the running mean over ~20
        # steps arrives some 20 steps after the chain.
        assert (out.steps < 80).all()
        # Long steps can hop over the top: by at most ~2 * (hop/2)^2, with hops of
        # 0.25 (pull) plus noise of 0.1 per coordinate.
        assert (out.barrier >= SADDLE_U - 0.1).all()


def test_a_batch_mixes_starts_and_targets_and_a_trial_at_its_target_succeeds_at_once():
    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.01, alpha=0.0, eps=0.02, max_steps=100)
    starts = torch.tensor([[DW_DEEP, 0.0], [DW_SHALLOW, 0.0], [DW_SHALLOW, 0.1]], dtype=F64)
    targets = torch.tensor([[DW_DEEP, 0.0], [DW_DEEP, 0.0], [DW_SHALLOW, 0.0]], dtype=F64)
    out = attraction_diffusion(energy, starts, targets, config, gen(4))
    assert out.success.tolist() == [True, False, True]
    assert out.steps.tolist()[0] == 0
    assert out.barrier[0].item() == pytest.approx(dw_u(DW_DEEP))
    # Finished at its start: it stopped where it began, with nothing recorded.
    torch.testing.assert_close(out.end_x[[0]], starts[[0]])
    assert out.path_len.tolist()[0] == 0
    assert out.path_len.tolist()[1] > 0 and out.steps.tolist()[1] == 100
    # A start 0.1 from its target, within delta (0.35): it arrives within half that gap (its
    # running mean), not where it began (a chain that had not moved was counted as arrived).
    assert out.steps.tolist()[2] > 0
    empty = attraction_diffusion(energy, starts[:0], targets[:0], config, gen())
    assert empty.success.shape == (0,) and empty.peak_x.shape == (0, 2) and empty.end_x.shape == (0, 2)


def test_a_chain_clamped_onto_its_target_in_a_box_corner_stays_finite():
    # Pulled into the corner its target was clamped to, the chain lands exactly on it:
    # the pull's direction (x - b) / ||x - b|| is 0 / 0 there, and T alpha / tiny must
    # not overflow into inf * 0 = NaN (float32: any T alpha above 3.4).
    energy = Energy(lambda x: (x * x).sum(1), (2,), data_range=(-1.0, 1.0))
    corner = torch.tensor([[-1.0, 1.0]])
    starts = torch.tensor([[-1.0, 1.0], [-0.9, 0.9], [-0.95, 0.99]])
    config = ADConfig(temperature=1.0, alpha=50.0, eps=0.1, max_steps=64, delta=0.01, average=0, record=0)
    out = attraction_diffusion(energy, starts, corner.expand(3, 2), config, gen(2))
    assert out.success.all() and torch.isfinite(out.end_x).all()


def test_the_recorded_path_is_the_chain_itself_thinned_evenly():
    # The same seed runs the same chains whatever is recorded. With room for every step,
    # the path is the chain's position after each step (the last one where it stopped);
    # with room for 8, it is every stride-th of those, the stride a power of two.
    energy = Energy(double_well, (2,), dtype=F64)
    n = 6
    starts, targets = point(DW_SHALLOW, 0.0, n=n), point(DW_DEEP, 0.0, n=n)
    base = ADConfig(temperature=0.3, alpha=8.0, eps=0.1, max_steps=300)
    full = attraction_diffusion(energy, starts, targets, replace(base, record=1024), gen(5))
    thin = attraction_diffusion(energy, starts, targets, replace(base, record=8), gen(5))
    none = attraction_diffusion(energy, starts, targets, replace(base, record=0), gen(5))
    for out in (thin, none):
        torch.testing.assert_close(out.steps, full.steps)
        torch.testing.assert_close(out.barrier, full.barrier)
        torch.testing.assert_close(out.end_x, full.end_x)
    assert full.success.all() and (full.steps > 16).all()  # long enough to be thinned
    assert none.path is None and (none.path_len == 0).all()
    assert full.path.shape == (n, 1024, 2) and thin.path.shape == (n, 8, 2)
    torch.testing.assert_close(full.path_len, full.steps)
    for p in range(n):
        steps = int(full.steps[p])
        chain = full.path[p, :steps]
        torch.testing.assert_close(chain[-1], full.end_x[p])
        # the barrier is the highest energy the chain visited (the start included)
        visited = torch.cat([starts[p : p + 1], chain])
        assert double_well(visited).max().item() == pytest.approx(full.barrier[p].item(), abs=0, rel=1e-15)
        length = int(thin.path_len[p])
        assert 1 <= length <= 8
        strides = [s for s in (2, 4, 8, 16, 32, 64) if steps // s == length and torch.equal(
            thin.path[p, :length], chain[s - 1 :: s][:length])]
        assert strides, f"trial {p}: {length} points match no even thinning of its {steps} steps"
        # The peak and the chain's positions one step before and after it.
        k = int(torch.nonzero((visited == full.peak_x[p]).all(1)).flatten()[-1])
        assert 0 < k < steps  # climbed out of the start, peaked before arriving
        torch.testing.assert_close(full.peak_prev[p], visited[k - 1], rtol=0, atol=0)
        torch.testing.assert_close(full.peak_next[p], visited[k + 1], rtol=0, atol=0)


def test_a_successful_barrier_is_closed_by_the_segment_from_where_the_chain_stopped_to_its_target():
    # A narrow wall of height 5 at x0 = 0.9 in front of the target at x0 = 1: a chain
    # pulled from 0 arrives within delta = 0.5 before the wall, so its own peak is low;
    # the straight segment from where it stopped to the target climbs the wall.
    def wall(x):
        return 5.0 * torch.exp(-((x[:, 0] - 0.9) ** 2) / 0.01) + x[:, 1] ** 2

    energy = Energy(wall, (2,), dtype=F64)
    config = ADConfig(temperature=0.05, alpha=100.0, eps=0.05, delta=0.5, average=0)
    n = 4
    starts, targets = point(0.0, 0.0, n=n), point(1.0, 0.0, n=n)
    out = attraction_diffusion(energy, starts, targets, config, gen(6))
    assert out.success.all()
    assert (out.end_x[:, 0] < 0.7).all() and (out.barrier < 0.05).all()
    closed = _closed(energy, out, targets)
    assert (closed > 4.9).all() and (closed <= 5.0 + 0.01).all()
    # (the segments on each side of the chain's own peak lie far below the wall)
    torch.testing.assert_close(closed, torch.maximum(out.barrier, segment_max(energy, out.end_x, targets)))
    # A failed trial stays +inf.
    stuck = attraction_diffusion(energy, starts[:1], targets[:1], replace(config, alpha=0.0, max_steps=20), gen(6))
    assert not stuck.success.any() and torch.isinf(_closed(energy, stuck, targets[:1])).all()


def test_a_ridge_the_chain_stepped_over_counts_in_its_barrier():
    # A ridge of height 2 and width 0.02 across the way, and steps of 0.2 (pull) with
    # noise 0.05 (the ridge's own push per step is 0.015 at most): the chain steps over
    # it, so its sampled energies mostly stay far below 2. Its highest sample is one of
    # the two steps on each side of the crossing, so the segments from the peak to the
    # positions before and after it cross the ridge: the barrier becomes its top.
    def ridge(x):
        return 2.0 * torch.exp(-((x[:, 0] - 0.5) ** 2) / (2 * 0.02**2))

    energy = Energy(ridge, (2,), dtype=F64)
    n = 16
    starts, targets = point(0.0, 0.0, n=n), point(1.0, 0.0, n=n)
    config = ADConfig(temperature=5.0, alpha=160.0, eps=0.05, average=0)
    out = attraction_diffusion(energy, starts, targets, config, gen(7))
    assert out.success.all() and (out.end_x[:, 0] > 0.6).all()  # the closing segment misses the ridge
    assert int((out.barrier < 1.0).sum()) >= n // 2  # over seeds 0..9: 10 to 15 of 16
    assert ((out.peak_x[:, 0] - 0.5).abs() < 0.25).all()
    closed = _closed(energy, out, targets)
    torch.testing.assert_close(closed, torch.full((n,), 2.0, dtype=F64), rtol=0, atol=1e-6)


def test_non_finite_energy_raises_and_bad_shapes_are_rejected():
    def cliff(x):  # NaN left of x0 = -0.5
        u = double_well(x)
        return torch.where(x[:, 0] > -0.5, u, torch.full_like(u, float("nan")))

    energy = Energy(cliff, (2,), dtype=F64)
    with pytest.raises(NonFiniteEnergyError, match="attraction-diffusion chains"):
        attraction_diffusion(energy, point(0.9, 0.0), point(-1.0, 0.0), ADConfig(alpha=50.0), gen())
    with pytest.raises(NonFiniteEnergyError, match="at their start"):
        attraction_diffusion(energy, point(-0.9, 0.0), point(0.9, 0.0), ADConfig(), gen())
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


def test_running_mean_arrival_works_where_the_jittering_chain_never_gets_within_delta():
    # A 64-D harmonic well at T = 1: the chain's distance to the bottom stays near
    # sqrt(64 T / k) = 4, far beyond delta = 1, but its running mean settles at the bottom.
    dim, k = 64, 4.0
    energy = Energy(lambda x: 0.5 * k * (x**2).sum(1), shape=(dim,), dtype=torch.float64)
    start = torch.zeros(1, dim, dtype=torch.float64)
    start[0, 0] = 3.0
    target = torch.zeros(1, dim, dtype=torch.float64)
    base = ADConfig(temperature=1.0, alpha=0.0, eps=0.3, max_steps=1000, patience=1000, delta=1.0, record=0)
    raw = attraction_diffusion(energy, start, target, replace(base, average=0), gen(1))
    assert not bool(raw.success[0]) and float(raw.final_distance[0]) > 2.0
    averaged = attraction_diffusion(energy, start, target, replace(base, average=200), gen(1))
    assert bool(averaged.success[0])
    # the chain itself is still far from the bottom where its mean arrived
    assert float(averaged.end_x[0].norm()) > 2.0


# ----------------------------------------------------------------------------- basins


def test_two_wells_behind_a_high_barrier_stay_two_basins_at_a_weak_pull():
    # At T = 0.05 the 0.72 climb is 14 kT: a weak pull cannot carry a chain over it.
    energy = Energy(double_well, (2,), dtype=F64)
    minima = minima_of(energy, [[0.9, 0.1], [-0.9, -0.1]])
    config = ADConfig(temperature=0.05, alpha=1.0, eps=0.05, max_steps=500, attempts=2)
    part, records = assign_basins(energy, minima, config, gen(5))
    assert isinstance(part, Partition)
    assert part.alpha == 1.0 and part.n_basins == 2
    assert part.basin.tolist() == [0, 1]
    assert part.representative.tolist() == [0, 1]
    np.testing.assert_array_equal(part.energy, minima.energy.numpy())
    assert part.sizes().tolist() == [1, 1]
    # The one pair tried; no chain connected it, so no barrier and no path.
    assert records.pairs.tolist() == [[0, 1]]
    assert records.barrier.tolist() == [math.inf] and records.paths == [None]
    assert records.alpha.tolist() == [1.0]
    assert part.attrs["trials"] == 2 * config.attempts


def test_pair_records_hold_the_best_chain_from_minimum_i_to_minimum_j(monkeypatch):
    # At T = 0.03 with a pull of 1.2 (in U per unit distance) chains from the shallow
    # well always cross to the deep one and chains the other way never climb out (of 30
    # each way: 30 and 0). The pair is (0 = deep, 1 = shallow), so its best chain ran
    # 1 -> 0 and its path is turned around to run from minimum 0 to minimum 1.
    from landscape.mapping import ad

    energy = Energy(double_well, (2,), dtype=F64)
    minima = minima_of(energy, [[0.9, 0.1], [-0.9, -0.1]])
    assert minima.x[0, 0] < 0 < minima.x[1, 0]
    successful_starts = []
    real = ad.attraction_diffusion

    def watching(energy, starts, targets, config, generator=None, **kw):
        out = real(energy, starts, targets, config, generator, **kw)
        successful_starts.extend(starts[out.success, 0].tolist())
        return out

    config = ADConfig(temperature=0.03, alpha=40.0, eps=0.05, attempts=2)
    monkeypatch.setattr(ad, "attraction_diffusion", watching)
    part, records = assign_basins(energy, minima, config, gen(10))
    assert successful_starts and all(s > 0 for s in successful_starts)  # all from the shallow well
    assert part.n_basins == 1 and part.basin.tolist() == [0, 0] and part.representative.tolist() == [0]
    assert records.pairs.tolist() == [[0, 1]] and records.alpha.tolist() == [40.0]
    check_records(energy, minima, records)
    (path,) = records.paths
    # start, the recorded chain points, where it stopped, the target (turned around)
    assert 3 <= path.shape[0] <= config.record + 3
    assert path[1, 0] < DW_SADDLE < path[-2, 0]
    # The best chain's barrier bounds the saddle (a step may hop a little over the top).
    h = records.barrier.item()
    assert SADDLE_U - 0.05 <= h <= SADDLE_U + 0.1


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
    config = ADConfig(temperature=0.05, alpha=2.0, eps=0.05, patience=1000, attempts=2)
    part, records = assign_basins(energy, minima, config, gen(6))
    assert part.n_basins == 1
    assert (part.basin == 0).all() and part.representative.tolist() == [0]
    check_records(energy, minima, records)
    # Every minimum was tried against the representative and connected to it, around the
    # ring, not across the hill (U = 1 at the centre): each barrier is the ring's energy
    # plus the chains' thermal excursions, several T (over seeds 6, 7, 8: at most 0.30,
    # 0.29, 0.37).
    to_rep = {int(j): h for (i, j), h in zip(records.pairs.tolist(), records.barrier, strict=True) if i == 0}
    assert sorted(to_rep) == list(range(1, 12))
    assert max(to_rep.values()) < 0.5
    for (i, j), path in zip(records.pairs.tolist(), records.paths, strict=True):
        if path is not None:
            assert (path.norm(dim=1) > 0.5).all()  # the chain stayed on the ring


# A 3-well potential in 2-D: p(x) + y^2 with p(x) = x^2 (x^2 - 4)^2 / 8 + 0.2 x.
P3 = np.poly1d([1 / 8, 0, -1, 0, 2, 0, 0]) + np.poly1d([0.2, 0])
P3_CRIT = np.sort(P3.deriv().r.real)  # minimum, saddle, minimum, saddle, minimum


def three_wells(x: torch.Tensor) -> torch.Tensor:
    a = x[:, 0]
    return a**2 * (a**2 - 4) ** 2 / 8 + 0.2 * a + x[:, 1] ** 2


def three_minima(energy: Energy) -> Minima:
    minima = minima_of(energy, [[w + 0.05, 0.1] for w in P3_CRIT[[0, 2, 4]]])
    # Sorted by energy: left (-0.40), middle (-0.005), right (0.40).
    assert minima.x[:, 0].tolist() == pytest.approx(sorted(P3_CRIT[[0, 2, 4]], key=P3), abs=1e-6)
    return minima


def test_three_wells_at_a_strong_pull_give_barriers_ordered_like_the_true_saddles():
    energy = Energy(three_wells, (2,), dtype=F64)
    minima = three_minima(energy)
    config = ADConfig(temperature=0.1, alpha=16.0, eps=0.05, attempts=2)
    part, records = assign_basins(energy, minima, config, gen(7))
    assert part.n_basins == 1 and part.basin.tolist() == [0, 0, 0]
    check_records(energy, minima, records)
    # Both higher minima were tried against the representative (the left well).
    assert records.pairs.tolist() == [[0, 1], [0, 2]]
    s_left, s_right = P3(P3_CRIT[1]), P3(P3_CRIT[3])  # 0.958, 1.420
    # left-middle crosses the left saddle; left-right crosses both, the right one higher
    assert s_left - 0.05 <= records.barrier[0] <= s_left + 0.15
    assert s_right - 0.05 <= records.barrier[1] <= s_right + 0.15
    # The tree over the minima from these records: middle joins left below the right
    # saddle, right joins at it; a cut between the saddles separates the right well.
    tree = minimax_tree(minima.energy.numpy(), records.pairs, records.barrier)
    assert tree.connected.all()
    np.testing.assert_allclose(tree.heights, records.barrier, rtol=1e-15)  # (stored relative to the lowest minimum)
    np.testing.assert_array_equal(tree.cut(0.5 * (s_left + s_right)), [0, 0, 1])


def six_wells(x: torch.Tensor) -> torch.Tensor:
    """Two groups of three wells: a barrier of ~2 along x, barriers of ~0.07 along y."""
    a, y = x[:, 0], x[:, 1]
    return 2 * (a**2 - 1) ** 2 + 0.3 * a + 0.5 * y**2 * (y**2 - 1) ** 2 + 0.02 * y


def six_minima(energy: Energy) -> Minima:
    minima = minima_of(energy, [[a, y] for a in (-1.0, 1.0) for y in (-1.0, 0.0, 1.0)])
    assert (minima.x[:3, 0] < 0).all() and (minima.x[3:, 0] > 0).all()
    return minima


# alpha = 12 pulls reliably over the 0.07 steps within a group (of 40 chains each way
# between any two minima of a group: all arrive) but not over the wall between the groups
# (slope of U up to 3.1 against a pull of alpha * T = 0.6: none arrive).
SIX_CONFIG = ADConfig(temperature=0.05, alpha=12.0, eps=0.05, attempts=2, max_steps=400, patience=100)


@pytest.mark.parametrize("round_size", [64, 1])
def test_minima_of_one_round_can_join_a_basin_founded_in_that_round(round_size):
    # With the default round size all six minima are assigned in one round, so the
    # right-hand group's second and third minima must find the basin its first minimum
    # founded in the same round; one at a time (round_size = 1) gives the same answer.
    energy = Energy(six_wells, (2,), dtype=F64)
    minima = six_minima(energy)
    part, records = assign_basins(energy, minima, replace(SIX_CONFIG, round_size=round_size), gen(8))
    assert part.basin.tolist() == [0, 0, 0, 1, 1, 1]
    assert part.representative.tolist() == [0, 3]
    np.testing.assert_array_equal(part.energy, minima.energy.numpy()[[0, 3]])
    check_records(energy, minima, records)
    # Chains connected minima within a group, below the barrier of ~2 between the
    # groups, which no chain crossed.
    for (i, j), h in zip(records.pairs.tolist(), records.barrier.tolist(), strict=True):
        if (i < 3) == (j < 3):
            assert h < 1.0
        else:
            assert h == math.inf
    pairs = {tuple(p) for p in records.pairs.tolist()}
    assert {(0, 1), (0, 2), (0, 3), (0, 4), (0, 5)} <= pairs  # each against the first representative
    assert (3, 4) in pairs and (3, 5) in pairs  # and against the basin founded in the round


def test_a_stronger_pull_merges_more_minima():
    energy = Energy(three_wells, (2,), dtype=F64)
    minima = three_minima(energy)
    config = ADConfig(temperature=0.1, eps=0.05, attempts=2, max_steps=600)
    counts = []
    for alpha in [0.5, 16.0, 64.0]:
        part, _ = assign_basins(energy, minima, replace(config, alpha=alpha), gen(9))
        assert part.alpha == alpha
        counts.append(part.n_basins)
    # measured before (alpha = 0.5, 2, 4, 8, 16, 32, 64): 3, 3, 3, 3, 1, 1, 1 basins
    assert counts[0] == 3 and counts[-1] == 1
    assert counts == sorted(counts, reverse=True)


def test_levels_run_together_give_each_level_its_own_result_exactly(monkeypatch):
    # A ladder's levels share batches (one energy call per step for all of them), each
    # level with its own generator, pull and step: every level's partition, pair records
    # and cost are those it gets alone, while the batched calls are fewer than their sum.
    from landscape.mapping import ad

    energy = Energy(three_wells, (2,), dtype=F64)
    minima = three_minima(energy)
    base = ADConfig(temperature=0.1, attempts=2, max_steps=600, batch_size=7)  # several chunks per level
    configs = [replace(base, alpha=a, eps=e) for a, e in ((0.5, 0.05), (16.0, 0.04), (64.0, 0.03))]
    alone = [assign_basins(energy, minima, c, gen(20 + k)) for k, c in enumerate(configs)]
    calls = []
    real = ad.attraction_diffusion

    def counting(*args, **kw):
        out = real(*args, **kw)
        calls.append(out.calls)
        return out

    monkeypatch.setattr(ad, "attraction_diffusion", counting)
    together = ad.assign_ladder(energy, minima, configs, [gen(20 + k) for k in range(3)])
    assert [p.n_basins for p, _ in together] == [3, 1, 1]
    for (p1, r1), (p2, r2) in zip(alone, together):
        assert p2.basin.tolist() == p1.basin.tolist() and p2.representative.tolist() == p1.representative.tolist()
        assert p2.attrs == p1.attrs  # trials, their steps, and the calls each level would make alone
        np.testing.assert_array_equal(r2.pairs, r1.pairs)
        np.testing.assert_array_equal(r2.barrier, r1.barrier)
        for a, b in zip(r1.paths, r2.paths):
            assert (a is None and b is None) or torch.equal(a, b)
    assert sum(calls) < sum(p.attrs["batches"] for p, _ in alone)
    # extending every level at once equals extending each alone
    old = subset(minima, [0, 1])
    priors = [assign_basins(energy, old, c, gen(30 + k))[0] for k, c in enumerate(configs)]
    each = [extend_basins(energy, minima, p, c, gen(40 + k)) for k, (p, c) in enumerate(zip(priors, configs))]
    both = ad.extend_ladder(energy, minima, priors, configs, [gen(40 + k) for k in range(3)])
    for (p1, r1, m1), (p2, r2, m2) in zip(each, both):
        assert p2.basin.tolist() == p1.basin.tolist() and m2.tolist() == m1.tolist()
        np.testing.assert_array_equal(r2.barrier, r1.barrier)
    with pytest.raises(LandscapeError, match="but alpha and eps"):
        ad.assign_ladder(energy, minima, [base, replace(base, delta=0.1)], [gen(), gen()])
    with pytest.raises(LandscapeError, match="generators"):
        ad.assign_ladder(energy, minima, configs, [gen()])


def test_a_pair_no_chain_connects_at_a_stronger_pull_runs_no_trials_at_the_weaker_ones():
    # Three wells: at alpha 0.5, 2 and 8 every pair stays apart (3 basins), at 64 they join.
    # The pair of the two upper wells is asked for by the three weak levels only: it runs
    # at 8, the strongest of them, where no chain connects it, and 0.5 and 2 take it as
    # not connected without trials. The pairs with the lowest well are asked for by all
    # four: they run at 64 first, and where those chains connect them, at the others a
    # turn later. Every level places the minima as it does alone; 8 and 64 run the same
    # chains as alone.
    from landscape.mapping import ad

    energy = Energy(three_wells, (2,), dtype=F64)
    minima = three_minima(energy)
    base = ADConfig(temperature=0.1, eps=0.05, attempts=2, max_steps=600)
    configs = [replace(base, alpha=a) for a in (0.5, 2.0, 8.0, 64.0)]
    alone = [assign_basins(energy, minima, c, gen(20 + k)) for k, c in enumerate(configs)]
    together = ad.assign_ladder(energy, minima, configs, [gen(20 + k) for k in range(4)])
    assert [p.n_basins for p, _ in together] == [3, 3, 3, 1]
    for k, ((p1, r1), (p2, r2)) in enumerate(zip(alone, together)):
        assert p2.basin.tolist() == p1.basin.tolist() and p2.representative.tolist() == p1.representative.tolist()
        if k < 2:
            assert r2.pairs.tolist() == [[0, 1], [0, 2]] and r1.pairs.tolist() == [[0, 1], [0, 2], [1, 2]]
            assert p2.attrs["failed_above"] == 1 and p2.attrs["trials"] == p1.attrs["trials"] - 4
        else:
            assert p2.attrs == p1.attrs and p2.attrs["failed_above"] == 0
            np.testing.assert_array_equal(r2.barrier, r1.barrier)
    assert together[2][1].barrier.tolist() == [math.inf] * 3  # (1, 2) failed at 8 too


def test_row_groups_give_each_group_its_own_generators_draws():
    from landscape.sampling.langevin import RowGroups

    groups = RowGroups([3, 0, 2], [gen(1), gen(2), gen(3)])
    z = groups.randn((5, 4), torch.device("cpu"), F64)
    torch.testing.assert_close(z[:3], torch.randn((3, 4), generator=gen(1), dtype=F64), rtol=0, atol=0)
    torch.testing.assert_close(z[3:], torch.randn((2, 4), generator=gen(3), dtype=F64), rtol=0, atol=0)
    groups.select(torch.tensor([True, False, False, False, True]), step=16)
    assert groups.sizes == [1, 0, 1] and groups.emptied == [None, None, None]
    groups.select(torch.tensor([False, True]), step=32)
    assert groups.sizes == [0, 0, 1] and groups.emptied == [32, None, None]
    with pytest.raises(LandscapeError, match="noise for 3 rows"):
        groups.randn((3, 4), torch.device("cpu"), F64)


@pytest.mark.parametrize("batched", [True, False])
def test_cost_counters_count_the_chains_their_steps_and_the_batched_calls(monkeypatch, batched):
    from landscape.mapping import ad

    launched = {"chains": 0, "steps": 0, "calls": 0, "evaluations": 0}
    real = ad.attraction_diffusion
    evaluations = [0]

    def counting(energy, starts, targets, config, generator=None, **kw):
        before = evaluations[0]
        out = real(energy, starts, targets, config, generator, **kw)
        launched["chains"] += starts.shape[0]
        launched["steps"] += int(out.steps.sum())
        launched["calls"] += 1
        launched["evaluations"] += evaluations[0] - before
        assert out.calls == evaluations[0] - before
        return out

    def counted_three_wells(x: torch.Tensor) -> torch.Tensor:
        evaluations[0] += 1
        return three_wells(x)

    monkeypatch.setattr(ad, "attraction_diffusion", counting)
    minima = three_minima(Energy(three_wells, (2,), dtype=F64))
    energy = Energy(counted_three_wells, (2,), dtype=F64)
    sizes = {} if batched else {"round_size": 1, "batch_size": 1}
    # short trials: cheap, and some of them fail
    config = ADConfig(temperature=0.1, alpha=1.0, eps=0.05, max_steps=300, patience=30, attempts=2, **sizes)
    part, records = assign_basins(energy, minima, config, gen(8))
    assert part.basin.tolist() == [0, 1, 2]
    trials, chain_steps, batches = (part.attrs[k] for k in ("trials", "chain_steps", "batches"))
    assert trials > 0 and chain_steps > 0 and batches > 0
    # every (start, target) chain counted once, each attempt and each direction
    assert trials == launched["chains"] and trials == len(records) * 2 * config.attempts
    assert chain_steps == launched["steps"]
    # batched calls are the energy evaluations the chains made
    assert batches == launched["evaluations"]
    if batched:
        # chains stepped together: far fewer calls than chains times steps
        assert launched["calls"] < trials
        assert batches < chain_steps
    else:
        # one chain per call: a start evaluation plus at least one call per step, per chain
        assert launched["calls"] == trials
        assert batches >= trials + chain_steps


def test_assign_basins_edge_cases_and_progress():
    energy = Energy(double_well, (2,), dtype=F64)
    minima = minima_of(energy, [[0.9, 0.1], [-0.9, -0.1]])
    one = subset(minima, [1])
    seen = []
    part, records = assign_basins(energy, one, ADConfig(), gen(), progress=seen.append)
    assert part.basin.tolist() == [0] and part.representative.tolist() == [0]
    assert len(records) == 0 and records.pairs.shape == (0, 2)
    assert part.attrs["trials"] == 0 and sum(seen) == 1
    with pytest.raises(LandscapeError, match="no minima"):
        assign_basins(energy, subset(minima, []), ADConfig(), gen())
    # Any order is accepted: the higher minimum first still gives basins by energy.
    seen.clear()
    config = ADConfig(temperature=0.05, alpha=1.0, eps=0.05, max_steps=200, attempts=1)
    part, records = assign_basins(energy, subset(minima, [1, 0]), config, gen(), progress=seen.append)
    assert part.basin.tolist() == [1, 0] and part.representative.tolist() == [1, 0]
    assert sum(seen) == 2
    assert records.pairs.tolist() == [[0, 1]]


# ----------------------------------------------------------------------------- extending


def test_extend_basins_assigns_new_minima_and_keeps_the_old_basins():
    # Prior: the left and right wells (two basins at a weak pull). New: the middle well,
    # which founds a basin of its own, numbered between the other two by energy.
    energy = Energy(three_wells, (2,), dtype=F64)
    minima = three_minima(energy)
    config = ADConfig(temperature=0.1, alpha=0.5, eps=0.05, attempts=2, max_steps=600)
    prior_minima = subset(minima, [0, 2])
    prior, _ = assign_basins(energy, prior_minima, config, gen(11))
    prior.multiplier = 0.5
    assert prior.basin.tolist() == [0, 1] and prior.representative.tolist() == [0, 1]
    all_minima = subset(minima, [0, 2, 1])  # the prior's minima first, then the new one
    seen = []
    part, records, old_to_new = extend_basins(energy, all_minima, prior, config, gen(12), progress=seen.append)
    assert part.n_basins == 3 and part.alpha == 0.5 and part.multiplier == 0.5
    assert part.basin.tolist() == [0, 2, 1]
    assert part.representative.tolist() == [0, 2, 1]
    np.testing.assert_array_equal(part.energy, all_minima.energy.numpy()[[0, 2, 1]])
    assert old_to_new.tolist() == [0, 2]
    np.testing.assert_array_equal(old_to_new[prior.basin], part.basin[:2])
    assert sum(seen) == 1
    # Records: only the new minimum's trials, against both old representatives.
    assert records.pairs.tolist() == [[0, 2], [1, 2]]
    assert np.isinf(records.barrier).all()
    assert part.attrs["trials"] == 2 * 2 * config.attempts
    check_records(energy, all_minima, records)
    # Nothing new: the prior comes back, with no trials.
    same, none, ident = extend_basins(energy, prior_minima, prior, config, gen())
    np.testing.assert_array_equal(same.basin, prior.basin)
    np.testing.assert_array_equal(same.representative, prior.representative)
    assert len(none) == 0 and ident.tolist() == [0, 1] and same.attrs["trials"] == 0
    with pytest.raises(LandscapeError, match="cannot extend"):
        extend_basins(energy, subset(minima, [0]), prior, config, gen())


def test_extend_basins_hands_a_basin_to_a_lower_new_minimum():
    # Prior: the six-well minima without the lowest one (the left group's bottom). The
    # new minimum joins the left group's basin and, being lower, becomes its
    # representative; the old minima keep their basins.
    energy = Energy(six_wells, (2,), dtype=F64)
    minima = six_minima(energy)
    prior_minima = subset(minima, [1, 2, 3, 4, 5])
    prior, _ = assign_basins(energy, prior_minima, SIX_CONFIG, gen(13))
    assert prior.basin.tolist() == [0, 0, 1, 1, 1] and prior.representative.tolist() == [0, 2]
    all_minima = subset(minima, [1, 2, 3, 4, 5, 0])
    part, records, old_to_new = extend_basins(energy, all_minima, prior, SIX_CONFIG, gen(14))
    assert part.basin.tolist() == [0, 0, 1, 1, 1, 0]
    assert part.representative.tolist() == [5, 2]
    np.testing.assert_array_equal(part.energy, all_minima.energy.numpy()[[5, 2]])
    assert old_to_new.tolist() == [0, 1]
    check_records(energy, all_minima, records)
    got = dict(zip(map(tuple, records.pairs.tolist()), records.barrier.tolist(), strict=True))
    assert set(got) == {(0, 5), (2, 5)}
    assert got[(0, 5)] < 1.0 and got[(2, 5)] == math.inf


def test_a_batch_reports_its_running_trials_at_every_sync_without_changing_its_outcome():
    # Some trials start at their target (done before the first step), some arrive, some
    # run out of steps: the report follows them, and listening changes nothing.
    from landscape.mapping.ad import _SYNC_EVERY

    energy = Energy(double_well, (2,), dtype=F64)
    config = ADConfig(temperature=0.3, alpha=50.0, eps=0.1, max_steps=200)
    starts = torch.cat([point(DW_DEEP, 0.0, n=2), point(DW_SHALLOW, 0.0, n=6)])
    targets = torch.cat([point(DW_DEEP, 0.0, n=2), point(DW_DEEP, 0.0, n=3), point(30.0, 0.0, n=3)])
    seen = []
    heard = attraction_diffusion(energy, starts, targets, config, gen(5), on_window=lambda s, r: seen.append((s, r)))
    quiet = attraction_diffusion(energy, starts, targets, config, gen(5))
    for name in ADTrials._fields:
        if name != "path":
            a, b = getattr(heard, name), getattr(quiet, name)
            assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, name
    for p, n in enumerate(quiet.path_len.tolist()):  # (beyond its length a path's rows hold nothing)
        assert torch.equal(heard.path[p, :n], quiet.path[p, :n])
    steps, running = zip(*seen)
    # at every sync point, then once more where the last trials stopped (out of steps)
    assert list(steps) == list(range(0, 200, _SYNC_EVERY)) + [200]
    # each report counts the trials that stop after it: not those that began at their
    # target, then fewer as the near ones arrive, the far ones until they run out of steps
    assert list(running) == [int((quiet.steps > s).sum()) for s in steps]
    assert running[0] == 6 and 3 in running and running[-1] == 0


def _copy_progress(progress):
    from landscape.mapping.ad import BatchProgress

    def c(t):
        return None if t is None else t.clone()

    return BatchProgress(progress.step, c(progress.rows), {k: c(v) for k, v in progress.running.items()},
                         progress.stride, progress.recorded, c(progress.paths),
                         {k: c(v) for k, v in progress.outcome.items()}, list(progress.emptied), c(progress.path_rows))


@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("settings", [
    # arrivals inside windows, judged on the running mean; paths thinned by halves while
    # trials that left keep longer ones
    dict(temperature=0.1, alpha=2.0, eps=0.1, max_steps=3000, patience=3000, delta=0.3, record=8),
    # out of patience; out of steps off a window's edge, arrival by position
    dict(temperature=0.01, alpha=0.0, eps=0.02, max_steps=3000, patience=37, delta=0.1, record=16),
    dict(temperature=0.3, alpha=5.0, eps=0.15, max_steps=53, patience=3000, delta=0.2, average=0, record=4),
])
def test_a_batch_resumed_from_any_sync_point_ends_as_the_uninterrupted_batch(settings, grouped):
    # What on_sync hands out (and the generators' states then, which the caller keeps)
    # is enough to continue the batch to the very outcome it has uninterrupted.
    energy = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)
    config = ADConfig(**settings)
    starts, targets = (torch.tensor(p, dtype=F64) for p in _WELLS)
    n = starts.shape[0]

    def generators():
        return [gen(10 + p) for p in range(n)] if grouped else [gen(3)]

    def source(gens):
        return RowGroups([1] * n, gens) if grouped else gens[0]

    gens, saved = generators(), []
    whole = attraction_diffusion(energy, starts, targets, config, source(gens), on_sync=lambda get: saved.append(
        (_copy_progress(get()), [g.get_state() for g in gens])))
    assert len(saved) >= 3 and len({s.rows.numel() for s, _ in saved}) > 1  # trials left along the way
    failed_any = False
    for progress, states in (saved[1], saved[len(saved) // 2], saved[-1]):
        # The paths kept: of the trials running and those that arrived, not of those that failed.
        failed = torch.ones(n, dtype=torch.bool)
        failed[progress.rows] = False
        failed &= ~progress.outcome["success"]
        assert progress.path_rows.tolist() == torch.nonzero(~failed).reshape(-1).tolist()
        assert progress.paths.shape[1] == n - int(failed.sum())
        failed_any |= bool(failed.any())
        full = _copy_progress(progress)  # (as saved before failed trials' paths were left out: all of them)
        slots = max(progress.paths.shape[0], int(progress.outcome["path_len"].max()))
        full.paths = torch.zeros((slots, n, 2), dtype=F64)
        full.paths[: progress.paths.shape[0], progress.path_rows] = progress.paths
        for p in torch.nonzero(failed).reshape(-1).tolist():
            k = int(progress.outcome["path_len"][p])
            full.paths[:k, p] = whole.path[p, :k]  # (a trial's path is not written once it has left)
        full.path_rows = None
        for resumed, lost in ((progress, failed), (full, torch.zeros(n, dtype=torch.bool))):
            gens = generators()
            for g, state in zip(gens, states):
                g.set_state(state)
            again = attraction_diffusion(energy, starts, targets, config, source(gens), resume_from=resumed)
            assert again.calls == whole.calls
            for name in ADTrials._fields:
                if name not in ("path", "path_len", "calls"):
                    assert torch.equal(getattr(again, name), getattr(whole, name)), name
            assert torch.equal(again.path_len, torch.where(lost, 0, whole.path_len))
            for p, k in enumerate(again.path_len.tolist()):
                assert torch.equal(again.path[p, :k], whole.path[p, :k])
    assert failed_any == (settings["patience"] < 100)  # (trials out of patience fail part-way; out of steps, at the end)
    progress = _copy_progress(saved[1][0])
    progress.rows[0] = 99  # a batch of another size: refused, not run
    with pytest.raises(LandscapeError, match="saved attraction-diffusion batch does not fit"):
        attraction_diffusion(energy, starts, targets, config, source(generators()), resume_from=progress)


def test_a_strongly_pulled_chain_comes_to_rest_within_a_reach_below_delta():
    # A trial's reach is at most half its start's distance to its target; its step is capped
    # for that reach as a level's is for delta (the pull moves it at most half the reach a
    # step). Capped for delta only, chains jumped across the smaller ball: 0.42 of them
    # arrived at a pull of 30,000 on flat ground, gap 0.15, delta 1, no averaging.
    energy = Energy(lambda x: 0 * x.sum(1), (2,), dtype=F64)
    for gap in (0.15, 0.06):
        starts = torch.zeros(200, 2, dtype=F64)
        targets = starts.clone()
        targets[:, 0] = gap
        for alpha in (300.0, 30000.0):
            config = ADConfig(temperature=1.0, alpha=alpha, eps=min(0.5, (1.0 / alpha) ** 0.5), max_steps=500,
                              delta=1.0, average=0, record=0)
            out = attraction_diffusion(energy, starts, targets, config, gen(0))
            assert bool(out.success.all()), (gap, alpha, float(out.success.double().mean()))


def test_basins_of_only_drained_minima_join_the_basin_they_drain_into():
    from landscape.io.records import Partition
    from landscape.mapping.tree import minimax_tree

    # Wells A (0, U = -1) and B (1, U = -0.8) with a plateau at U ~ 0 between them: its
    # points 2 and 3 drain into A with no barrier (2 through 3), and B lies beyond them (a
    # barrier of 0.8). 4 (U = -0.5) sits in a dent 0.1 deep by B; 5 above it drains into
    # it, 6 into 5.
    energy = np.array([-1.0, -0.8, -1e-18, -2e-18, -0.5, -0.3, -0.2])
    pairs = np.array([[2, 3], [0, 2], [1, 3], [1, 4], [4, 5], [5, 6]])
    barrier = np.array([-1e-18, -0.5e-18, -0.4e-18, -0.4, -0.3, -0.2])
    tree = minimax_tree(energy, pairs, barrier)
    into = tree.drains_into()
    assert into.tolist() == [-1, -1, 3, 0, -1, 4, 5]
    # AD left the plateau's points apart and 6 alone, and put 5 with 4.
    part = Partition(0.1, basin=[0, 1, 5, 4, 2, 2, 3], representative=[0, 1, 4, 6, 3, 2],
                     energy=energy[[0, 1, 4, 6, 3, 2]], attrs={"trials": 9})
    joined = join_drained(part, into, energy)
    # The plateau joins A (2 by way of 3's basin), not B, which stays apart over the
    # plateau; 6 joins 4's basin through 5; that basin holds a minimum that does not drain: kept.
    assert joined.basin.tolist() == [0, 1, 0, 0, 2, 2, 2]
    assert joined.representative.tolist() == [0, 1, 4] and joined.energy.tolist() == [-1.0, -0.8, -0.5]
    assert joined.attrs == {"trials": 9, "drained": 3} and part.n_basins == 6
    # A level of a map, extended: the count adds to the one it had.
    assert join_drained(replace(part, attrs={"drained": 2}), into, energy).attrs["drained"] == 5
    # Nothing drained: the same basins.
    same = join_drained(part, np.full(7, -1), energy)
    assert same.basin.tolist() == part.basin.tolist() and same.attrs == {"trials": 9, "drained": 0}
    # Flat-only basins whose representatives drain into each other's basins (points of one
    # valley, grouped by AD across each other) follow the drainage on to a real basin:
    # 1 -> 2 (basin 2), whose representative 3 drains into 1 (basin 1), 2 into 0 (basin 0).
    crossed = Partition(0.1, basin=[0, 1, 2, 2, 1], representative=[0, 1, 3], energy=[-1.0, 0.0, 0.0])
    valley = join_drained(crossed, np.array([-1, 2, 0, 1, 3]), np.array([-1.0, 0.0, 0.0, 0.0, 0.0]))
    assert valley.basin.tolist() == [0, 0, 0, 0, 0] and valley.attrs["drained"] == 2
    # A valley of equal minima (1-4, draining into 1) parted between a well's basin (0 with
    # 2 and 3, which a strong pull carried there) and one of its own (1 and 4): every point
    # of it goes where its drainage ends, the valley whole again.
    parted = Partition(9.0, basin=[0, 1, 0, 0, 1], representative=[0, 1], energy=[-1.0, 0.0])
    whole = join_drained(parted, np.array([-1, -1, 1, 2, 3]), np.array([-1.0, 0.0, 0.0, 0.0, 0.0]))
    assert whole.basin.tolist() == [0, 1, 1, 1, 1] and whole.attrs["drained"] == 0
    # A representative that drains away (a plateau point 0 with a dent 2 above it, placed
    # with it; 0 drains into the well 1): the dent's minimum represents what is left, and
    # the basins are numbered by their representatives' energies again.
    e_dent = np.array([-0.5, -0.6, -0.1, -0.2])
    dent = Partition(1.0, basin=[1, 0, 1, 2], representative=[1, 0, 3], energy=e_dent[[1, 0, 3]])
    moved = join_drained(dent, np.array([1, -1, -1, -1]), e_dent)
    assert moved.basin.tolist() == [0, 0, 2, 1] and moved.representative.tolist() == [1, 3, 2]
    assert moved.energy.tolist() == [-0.6, -0.2, -0.1] and moved.attrs["drained"] == 0
    # Scaled energies drain alike (the flat test is relative to the energy's magnitude).
    assert minimax_tree(100 * energy, pairs, 100 * barrier).drains_into().tolist() == into.tolist()
    assert minimax_tree(0.01 * energy, pairs, 0.01 * barrier).drains_into().tolist() == into.tolist()


def test_minima_that_drain_flat_run_no_trials_and_go_where_their_drainage_ends():
    # A map knows before attraction-diffusion which minima drain into lower ones with no
    # barrier (along its straight lines): they hold no barrier to any pull, so they run no
    # trials, found no basin for others to try, and go where their drainage ends.
    from landscape.mapping.ad import assign_ladder, extend_ladder

    energy = Energy(three_wells, (2,), dtype=F64)
    minima = three_minima(energy)  # left (0), middle (1), right (2), by energy
    config = ADConfig(temperature=0.1, alpha=0.5, eps=0.05, attempts=2, max_steps=600)
    part, _ = assign_basins(energy, minima, config, gen(11))
    assert part.basin.tolist() == [0, 1, 2]  # at this weak pull each well is a basin of its own
    # The right well said to drain into the middle, the middle into the left: no trials at all.
    ((chained, records),) = assign_ladder(energy, minima, [config], [gen(11)], drains_into=np.array([-1, 0, 1]))
    assert chained.basin.tolist() == [0, 0, 0] and chained.representative.tolist() == [0]
    assert chained.attrs["trials"] == 0 and chained.attrs["drain_placed"] == 2 and len(records) == 0
    # Only the right one drains (into the left): the middle is tried against the left alone,
    # never against the right, and founds its basin; the right goes to the left's.
    ((one, records),) = assign_ladder(energy, minima, [config], [gen(11)], drains_into=np.array([-1, -1, 0]))
    assert one.basin.tolist() == [0, 1, 0] and one.representative.tolist() == [0, 1]
    assert records.pairs.tolist() == [[0, 1]] and one.attrs["trials"] == 2 * config.attempts
    assert one.attrs["drain_placed"] == 1
    # Saved after its first batch of trials (rounds of one minimum) and continued from
    # there, the ladder ends as the uninterrupted one.
    rounds = replace(config, round_size=1)
    saved = []
    ((whole, whole_records),) = assign_ladder(energy, minima, [rounds], [gen(11)], drains_into=np.array([-1, -1, 0]),
                                              on_turn=lambda get: saved.append(get()))
    assert len(saved) >= 2 and saved[0][0].basin_of.tolist() == [0, -1, -1]
    ((again, again_records),) = assign_ladder(energy, minima, [rounds], [gen(99)], drains_into=np.array([-1, -1, 0]),
                                              resume_from=saved[0])
    assert again.basin.tolist() == whole.basin.tolist() == [0, 1, 0] and again.attrs == whole.attrs
    np.testing.assert_array_equal(again_records.barrier, whole_records.barrier)
    # A drainage that ends at a minimum taken later (the lowest "draining" into a higher
    # one) places nothing: the assignment is the one without it.
    ((up, _),) = assign_ladder(energy, minima, [config], [gen(11)], drains_into=np.array([2, -1, -1]))
    assert up.basin.tolist() == part.basin.tolist() and up.attrs == part.attrs and up.attrs["drain_placed"] == 0
    # Extending: a new minimum (the middle, index 2) that drains into an old one joins its basin untried.
    prior, _ = assign_basins(energy, subset(minima, [0, 2]), config, gen(11))
    ((ext, records, old_to_new),) = extend_ladder(energy, subset(minima, [0, 2, 1]), [prior], [config], [gen(12)],
                                                  drains_into=np.array([-1, -1, 0]))
    assert ext.basin.tolist() == [0, 1, 0] and old_to_new.tolist() == [0, 1]
    assert len(records) == 0 and ext.attrs["trials"] == 0 and ext.attrs["drain_placed"] == 1
    with pytest.raises(ValueError, match="drains_into has shape"):
        assign_ladder(energy, minima, [config], [gen()], drains_into=np.array([-1, 0]))


def test_every_basin_of_a_weaker_pull_lies_whole_in_one_basin_of_a_stronger():
    # Six minima, energies in index order. At the weakest pull 0-1 and 2-3-4 are basins.
    # The middle pull (given second: levels nest in order of alpha, not of the list) puts 2
    # with 0 and 3-4 in a basin of their own (a minimum joins, of the representatives its
    # chains reach, the one over the lowest barrier): 3 and 4 go where 2, their weaker
    # basin's representative, went. The strongest puts 3 alone with 5.
    energy = np.arange(6, dtype=float)
    weak = Partition(0.1, basin=[0, 0, 1, 1, 1, 2], representative=[0, 2, 5], energy=energy[[0, 2, 5]])
    strong = Partition(10.0, basin=[0, 0, 0, 1, 0, 1], representative=[0, 3], energy=energy[[0, 3]],
                       attrs={"trials": 7})
    middle = Partition(1.0, basin=[0, 0, 0, 1, 1, 2], representative=[0, 3, 5], energy=energy[[0, 3, 5]])
    nested = nest_levels([weak, strong, middle], energy)
    assert nested[0].basin.tolist() == [0, 0, 1, 1, 1, 2] and nested[0].attrs["nested"] == 0
    # The middle: 3-4 with 2 in 0's basin; 5 stays (its own representative); the basin 3
    # founded is empty, and the surviving ones keep their order.
    assert nested[2].basin.tolist() == [0, 0, 0, 0, 0, 1] and nested[2].representative.tolist() == [0, 5]
    assert nested[2].energy.tolist() == [0.0, 5.0] and nested[2].attrs["nested"] == 2
    # The strongest: 3 follows 0 (its basin's representative in the middle level); 5, the
    # representative of its own basin there, keeps its place with the basin 3 founded,
    # whose lowest remaining minimum, 5, now represents it.
    assert nested[1].basin.tolist() == [0, 0, 0, 0, 0, 1] and nested[1].representative.tolist() == [0, 5]
    assert nested[1].energy.tolist() == [0.0, 5.0]
    assert nested[1].attrs == {"trials": 7, "nested": 1} and strong.n_basins == 2  # (the input untouched)
    for lower, upper in zip(nested[:1] + nested[2:], nested[2:] + nested[1:2]):
        assert all(len(set(upper.basin[lower.basin == b].tolist())) == 1 for b in range(lower.n_basins))
    # Levels nested already stay as they are; a level extended by new minima adds to its count.
    again = nest_levels(nested, energy)
    assert [p.basin.tolist() for p in again] == [p.basin.tolist() for p in nested]
    assert [p.attrs["nested"] for p in again] == [0, 1, 2]
    # A stronger pull keeps as many basins as its own assignment left the weaker
    # representatives in: here the strongest pull's 2 basins, the weak pull's 3.
    assert [p.n_basins for p in nest_levels([weak, strong], energy)] == [3, 2]
