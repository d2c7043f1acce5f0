"""The string method on 2-D potentials whose minima and saddles are known."""

import math

import numpy as np
import pytest
import torch
from scipy import optimize
from torch import nn

from landscape import (
    Energy,
    LandscapeError,
    NonFiniteEnergyError,
    autograd_value_and_grad,
)
from landscape.io.records import NEIGHBOUR, PairTable
from landscape.potentials import MUELLER_BROWN_MINIMA, MUELLER_BROWN_SADDLE_ENERGY
from landscape.mapping import paths
from landscape.mapping.barriers import close_estimates, refine_pairs, stationary_within
from landscape.mapping.settings import MapConfig
from landscape.mapping.paths import polyline_max, resample_polyline, string_method, string_method_batch

# Mueller-Brown potential (K. Mueller and L. D. Brown 1979, Theor. Chim. Acta 53, 75):
# a sum of four anisotropic Gaussians; three minima, and the path from the deepest
# minimum to the second passes through the third and two saddles.
MB_A = (-200.0, -100.0, -170.0, 15.0)
MB_a = (-1.0, -1.0, -6.5, 0.7)
MB_b = (0.0, 0.0, 11.0, 0.6)
MB_c = (-10.0, -10.0, -6.5, 0.7)
MB_X = (1.0, 0.0, -0.5, -1.0)
MB_Y = (0.0, 0.5, 1.5, 1.0)


def mueller_brown(x: torch.Tensor) -> torch.Tensor:
    u = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    for A, a, b, c, x0, y0 in zip(MB_A, MB_a, MB_b, MB_c, MB_X, MB_Y):
        dx, dy = x[:, 0] - x0, x[:, 1] - y0
        u = u + A * torch.exp(a * dx * dx + b * dx * dy + c * dy * dy)
    return u


MB_VG = autograd_value_and_grad(mueller_brown)


def _u(p) -> float:
    return float(mueller_brown(torch.tensor(np.asarray(p)[None], dtype=torch.float64))[0])


def _grad(p) -> np.ndarray:
    return MB_VG(torch.tensor(np.asarray(p)[None], dtype=torch.float64))[1][0].numpy()


def _hessian(p, h=1e-5) -> np.ndarray:
    return np.stack([(_grad(p + h * e) - _grad(p - h * e)) / (2 * h) for e in np.eye(2)])


@pytest.fixture(scope="module")
def mb_critical_points():
    """Minima and saddles found numerically from rough starting guesses."""
    minima = [
        optimize.minimize(_u, x0, jac=_grad, method="BFGS", options={"gtol": 1e-10}).x
        for x0 in [(-0.6, 1.4), (0.6, 0.0), (0.0, 0.5)]
    ]
    saddles = [optimize.root(_grad, x0, tol=1e-12).x for x0 in [(-0.8, 0.6), (0.2, 0.3)]]
    for m in minima:
        assert (np.linalg.eigvalsh(_hessian(m)) > 0).all()
    for s in saddles:
        eig = np.linalg.eigvalsh(_hessian(s))
        assert eig[0] < 0 < eig[1]  # index-1 saddle
    return minima, saddles


def test_mueller_brown_saddle_energy_from_a_straight_line(mb_critical_points):
    minima, saddles = mb_critical_points
    a, b = (torch.tensor(m, dtype=torch.float64) for m in minima[:2])
    # The MEP A -> B goes A -> saddle 1 -> C -> saddle 2 -> B; the barrier is the higher saddle.
    true_saddle = max(_u(s) for s in saddles)
    barrier_height = true_saddle - _u(minima[0])
    line = torch.stack([a + t * (b - a) for t in torch.linspace(0, 1, 201, dtype=torch.float64)])
    line_max = float(mueller_brown(line).max())  # an upper bound: a valid path's highest point
    result = string_method(MB_VG, a, b, images=24, steps=500)
    assert result.converged
    assert abs(result.saddle_energy - true_saddle) < 1e-2 * barrier_height
    assert result.saddle_energy <= line_max
    assert result.initial_max_energy > true_saddle + 0.5 * barrier_height  # the line was far off
    # The saddle image sits on the saddle, where the gradient vanishes.
    top = result.path[result.saddle_index].numpy()
    np.testing.assert_allclose(top, saddles[0], atol=1e-3)
    # Endpoints stay at the minima; the path passes the intermediate minimum C.
    torch.testing.assert_close(result.path[0], a)
    torch.testing.assert_close(result.path[-1], b)
    near_c = torch.linalg.vector_norm(result.path - torch.tensor(minima[2]), dim=1).min()
    assert float(near_c) < 0.1
    assert result.energy.dtype == np.float64 and result.energy.shape == (24,)
    np.testing.assert_allclose(result.energy, mueller_brown(result.path).numpy())


def test_mueller_brown_from_a_detour_via_high_ground(mb_critical_points):
    # As from an attraction-diffusion path whose peak is far above the saddle.
    minima, saddles = mb_critical_points
    a, b = (torch.tensor(m, dtype=torch.float64) for m in minima[:2])
    via = torch.tensor([0.4, 1.4], dtype=torch.float64)
    ad_estimate = max(_u(via), float(mueller_brown(resample_polyline(torch.stack([a, via, b]), 200)).max()))
    true_saddle = max(_u(s) for s in saddles)
    result = string_method(MB_VG, a, b, via=via)
    assert result.initial_max_energy <= ad_estimate
    assert result.saddle_energy <= ad_estimate
    assert abs(result.saddle_energy - true_saddle) < 1e-2 * (true_saddle - _u(minima[0]))


def double_well(x: torch.Tensor) -> torch.Tensor:
    # minima (+-1, 0) at 0, saddle (0, 0) at 1.
    return (x[:, 0] ** 2 - 1) ** 2 + 2.0 * x[:, 1] ** 2


def test_double_well_with_an_energy_and_float32():
    energy = Energy(double_well, shape=(2,), dtype=torch.float32)
    a, b = torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0])
    via = torch.tensor([0.2, 1.2])  # the polyline through here peaks at 3.8, the saddle is at 1
    result = string_method(energy, a, b, via=via, images=17)
    assert result.path.dtype == torch.float32
    assert result.converged and result.stop == "converged"
    assert result.saddle_energy == pytest.approx(1.0, abs=1e-3)
    assert result.saddle_energy < result.initial_max_energy
    assert result.saddle_grad_norm < 1e-2


def kinked_valley(x: torch.Tensor) -> torch.Tensor:
    """A double well whose valley floor is a kink (``2|x1|``): piecewise linear across it,
    as a leaky-ReLU network is everywhere; the saddle is (0, 0) at 1."""
    return 2 * x[:, 1].abs() + (x[:, 0] ** 2 - 1) ** 2


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_string_on_a_kinked_valley_finds_the_saddle(dtype):
    # An image next to the kink overshoots it on any step and would rise: it alone is
    # held back with a smaller step, while the rest of the string moves on (with one step
    # for the whole string, every such rise halved every image's step and the strings
    # stopped at 1.81, 2.10 and 1.42). The climbing image halves its step across the
    # path where it crossed the kink, and along it where it passed the top.
    energy = Energy(kinked_valley, shape=(2,), dtype=dtype)
    a, b = torch.tensor([[-1.0, 0.0]] * 3, dtype=dtype), torch.tensor([[1.0, 0.0]] * 3, dtype=dtype)
    via = torch.tensor([[0.0, 0.5], [0.2, -0.7], [-0.3, 0.3]], dtype=dtype)
    for result in string_method_batch(energy, a, b, via=via, images=24):
        assert result.saddle_energy == pytest.approx(1.0, abs=1e-4)
        assert result.saddle_energy < result.initial_max_energy
        assert abs(float(result.path[result.saddle_index, 1])) < 1e-4  # on the kink


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_string_whose_saddle_stopped_moving_ends_its_phases_early(dtype, monkeypatch):
    # tol = 0 on a kinked valley: the motion test can never pass (images next to the kink
    # keep being held back), as on a network's piecewise-linear landscape, where a string
    # would crawl through its whole budget. Once its top energy stops moving (at eps^0.8
    # of its energy range over STALL iterations) each phase ends: same saddle, fewer
    # iterations, reported unconverged.
    energy = Energy(kinked_valley, shape=(2,), dtype=dtype)
    a, b = torch.tensor([-1.0, 0.0], dtype=dtype), torch.tensor([1.0, 0.0], dtype=dtype)
    via = torch.tensor([0.2, 1.2], dtype=dtype)
    stalled = string_method(energy, a, b, via=via, images=17, steps=500, climb_steps=1000, tol=0.0)
    every = paths.STALL
    monkeypatch.setattr(paths, "STALL", 10**9)  # no stall rule
    crawled = string_method(energy, a, b, via=via, images=17, steps=500, climb_steps=1000, tol=0.0)
    assert crawled.steps == 1500  # both phases to their budgets
    assert stalled.steps < 1500 and stalled.steps % every == 0
    assert not stalled.converged
    assert (stalled.stop, crawled.stop) == ("stalled", "budget")
    assert stalled.saddle_energy == pytest.approx(crawled.saddle_energy, abs=1e-6)
    assert stalled.saddle_energy == pytest.approx(1.0, abs=1e-6)


_RIPPLES = torch.nn.functional.normalize(torch.randn(32, 8, generator=torch.Generator().manual_seed(0),
                                                     dtype=torch.float64), dim=1)


def rippled_wells(x: torch.Tensor) -> torch.Tensor:
    """The double well in 8 dimensions under 32 triangle waves of period 0.1 along random
    directions (together between 0 and 1): kinks everywhere and in every direction, as on a
    leaky-ReLU network. Every path between the wells crosses x0 = 0, where the smooth part
    alone is at least 1."""
    s = x @ _RIPPLES.to(x.dtype).T / 0.1
    return (x[:, 0] ** 2 - 1) ** 2 + 2 * (x[:, 1:] ** 2).sum(1) + 2 * (s - torch.floor(s) - 0.5).abs().mean(1)


def test_momentum_carries_a_string_down_a_kinked_landscape(monkeypatch):
    # Every kink an image's move crosses can raise its energy and halve its step for good:
    # without momentum the string crawls far above the pass; with it, the parts of the
    # gradients that flip from kink to kink cancel and the string descends.
    energy = Energy(rippled_wells, shape=(8,), dtype=torch.float64)
    a = torch.zeros(8, dtype=torch.float64)
    a[0] = -1.0
    via = torch.zeros(8, dtype=torch.float64)
    via[1:3] = 1.0
    carried = string_method(energy, a, -a, via=via, images=17, steps=400, climb_steps=100)
    monkeypatch.setattr(paths, "MOMENTUM", 0.0)
    plain = string_method(energy, a, -a, via=via, images=17, steps=400, climb_steps=100)
    assert 1.0 <= carried.saddle_energy < plain.saddle_energy - 0.2
    assert carried.initial_max_energy == plain.initial_max_energy > 3.0


def thin_ridge(x: torch.Tensor) -> torch.Tensor:
    """The double well with a ridge of height 3 across x0 = 0, far thinner than a string's
    image spacing: the path between the wells tops out at (0, 0), at 1 + 3 = 4."""
    return (x[:, 0] ** 2 - 1) ** 2 + 2 * x[:, 1] ** 2 + 3.0 * torch.exp(-((x[:, 0] / 0.01) ** 2))


def test_a_refined_barrier_is_a_saddle_point_where_the_gradient_vanishes_at_the_top_of_its_path():
    # Mueller-Brown. On budgets this short the strings between the deepest minimum and
    # the other two (the one to the third runs through the middle minimum and both
    # saddles) do not settle, yet their climbing images sit on the saddles: saddle points
    # (a Newton step from there would change the energy by nothing), as the settled
    # string's is.
    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.6, 2.1), dtype=torch.float64)
    x = torch.tensor(MUELLER_BROWN_MINIMA, dtype=torch.float64)
    pairs = np.array([[0, 1], [0, 2], [1, 2]])
    table = PairTable(pairs, np.full(3, 100.0), np.full(3, np.nan), np.full(3, np.nan),
                      np.full(3, NEIGHBOUR, dtype=np.uint8))
    ref = refine_pairs(energy, x, table, [0, 1, 2], images=24, steps=25, climb_steps=60)
    assert ref.stops.tolist() == ["budget", "budget", "converged"]
    assert ref.saddle_point.all()
    saddle = {(0, 1): max(MUELLER_BROWN_SADDLE_ENERGY), (0, 2): max(MUELLER_BROWN_SADDLE_ENERGY),
              (1, 2): min(MUELLER_BROWN_SADDLE_ENERGY)}
    np.testing.assert_allclose(ref.saddle, [saddle[tuple(p)] for p in pairs.tolist()], rtol=1e-5)


def tilted_crate(x: torch.Tensor) -> torch.Tensor:
    """An egg-crate tilted in both coordinates: wells at even integers, every one at its own
    energy, the pass between two wells of a column at odd y rising 0.001 per row."""
    return -torch.cos(math.pi * x[:, 0]) - torch.cos(math.pi * x[:, 1]) + 0.01 * x[:, 0] + 0.0005 * x[:, 1]


def test_a_string_across_many_wells_gives_the_highest_pass_it_crosses():
    # Wells (0, 0) and (0, 10) of one column, the straight string's 24 images a well apart:
    # its climbing image converged on the pass at y = 7, and the pass at y = 9, 0.001 higher
    # (0.05 % of the barrier), which the polyline crosses between two images, was taken
    # for it: a barrier below every path between the two wells.
    energy = Energy(tilted_crate, shape=(2,), data_range=(-0.5, 10.5), dtype=torch.float64)
    x_min = -math.asin(0.01 / math.pi) / math.pi  # (the column's floor, off x = 0 by the tilt)
    y_min = -math.asin(0.0005 / math.pi) / math.pi
    x = torch.tensor([[x_min, y_min], [x_min, 10 + y_min]], dtype=torch.float64)
    table = PairTable(np.array([[0, 1]]), np.array([100.0]), np.full(1, np.nan), np.full(1, np.nan),
                      np.full(1, NEIGHBOUR, dtype=np.uint8))
    ref = refine_pairs(energy, x, table, [0], images=24, steps=400)
    highest = -math.cos(math.pi * x_min) + 0.01 * x_min + 1.0 + 0.0005 * 9  # the pass at (x_min, 9)
    assert highest - 1e-9 <= ref.saddle[0] <= highest + 1e-6, (ref.saddle[0], highest)


def test_a_string_whose_images_step_over_many_passes_is_never_below_them():
    # A string a map relaxed along a row of 30 x 30 tilted wells (each pass 0.02 higher
    # than the one before it), its images 2.1 apart, a well apart or more: its climbing
    # image converged on the pass at x = 33 (0.337), the polyline's highest top was a chord
    # in the path's bend (0.989), taken for a valley's, and the barrier fell back to the
    # climbing image, below the pass at x = 49 that the row crosses (the two wells'
    # minimax: 0.499). Every segment's top now counts unless it is a chord.
    from landscape.mapping.barriers import _string_barriers
    from landscape.mapping.paths import PathResult, segment_tops

    energy = Energy(lambda x: -torch.cos(math.pi * x[:, 0]) - torch.cos(math.pi * x[:, 1]) + 0.01 * x[:, 0]
                    + 0.0003 * x[:, 1], shape=(2,), data_range=(-0.5, 58.5), dtype=torch.float64)
    path = torch.tensor([[5.999, 34.0], [7.4648, 34.0], [8.8186, 33.8691], [9.999, 33.0001], [9.999, 30.8777],
                         [11.8121, 30.0594], [13.919, 29.9986]] + [[16.0413 + 2.12233 * j, 30.0] for j in range(16)]
                        + [[49.999, 30.0]], dtype=torch.float64)
    u = energy(path).numpy()
    top = int(np.argmax(u[1:-1])) + 1
    assert path[top, 0] == pytest.approx(33.02, abs=0.01) and u[top] == pytest.approx(0.337, abs=0.01)
    converged = PathResult(path, u, top, float(u[top]), True, 100, float(u.max()), 0.0, True, "converged")
    tops, fractions = segment_tops(energy, [path])
    assert tops[0].max() == pytest.approx(0.989, abs=0.01)  # (the chord in the bend)
    ends = np.array([max(u[0], u[-1])])
    value, where = _string_barriers(energy, [converged], tops, fractions, ends)
    assert value[0] >= 0.499005 - 1e-6 and value[0] < 0.6, value
    assert float(energy(where[0][None])) == pytest.approx(value[0])


def test_a_string_that_did_not_converge_gives_the_top_of_its_path():
    # One iteration: no string converges, and the straight string's 24 images miss the
    # ridge (the nearest at x0 = +-0.043, energy 0.996). The refined barrier is the top of
    # the polyline, the path the string stands for, not its highest image.
    energy = Energy(thin_ridge, shape=(2,), dtype=torch.float64)
    x = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    table = PairTable(np.array([[0, 1]]), np.array([4.0]), np.array([np.nan]), np.array([np.nan]),
                      np.array([NEIGHBOUR], dtype=np.uint8))
    ref = refine_pairs(energy, x, table, [0], images=24, steps=1)
    assert float(thin_ridge(torch.from_numpy(ref.paths[0]).double()).max()) < 1.0  # the images
    # The polyline's top, (0, 0), is the ridge's saddle point itself: said so.
    np.testing.assert_allclose(ref.saddle_x[0], [0.0, 0.0], atol=1e-4)
    assert ref.saddle_point[0]
    assert ref.saddle[0] == pytest.approx(4.0, abs=1e-3)
    # polyline_max: per path, the top of its polyline (a segment's top between its points)
    tops = polyline_max(energy, [x, torch.tensor([[-1.0, 0.0], [-0.5, 0.5], [-0.2, 0.0]], dtype=torch.float64)])
    assert tops[0] == pytest.approx(4.0, abs=1e-3)
    assert tops[1] == pytest.approx(float(thin_ridge(torch.tensor([[-0.5, 0.5]], dtype=torch.float64))), abs=1e-3)


def test_without_climbing_the_saddle_is_sampled_from_below():
    # 8 images: none lands on x = 0 after relaxation, so the top image is below the
    # saddle; climbing lifts it onto the saddle.
    a, b = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    vg = autograd_value_and_grad(double_well)
    plain = string_method(vg, a, b, images=8, climb=False, via=torch.tensor([0.0, 0.8], dtype=torch.float64))
    climbed = string_method(vg, a, b, images=8, climb=True, via=torch.tensor([0.0, 0.8], dtype=torch.float64))
    assert plain.saddle_energy < 1.0 - 1e-3
    assert climbed.saddle_energy == pytest.approx(1.0, abs=1e-6)


def test_refine_pairs_climbs_on_its_own_budget():
    # The climbing phase has a budget of its own (the map's refine_climb_steps): none
    # leaves the 8-image string's highest image below the saddle (the barrier is then the
    # top of its polyline, which passes over the saddle between two images, within 1e-4 of
    # its energy: a saddle point all the same); a few iterations lift the image onto the
    # saddle, since the string phase ended close to the path already.
    energy = Energy(double_well, shape=(2,), dtype=torch.float64)
    x = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    table = PairTable(np.array([[0, 1]]), np.array([3.0]), np.array([np.nan]), np.array([np.nan]),
                      np.array([NEIGHBOUR], dtype=np.uint8))
    refs = {c: refine_pairs(energy, x, table, [0], images=8, climb_steps=c) for c in (0, 100)}
    top_image = float(double_well(torch.from_numpy(refs[0].paths[0]).double()).max())
    assert top_image < 1.0 - 1e-3 and refs[0].saddle[0] == pytest.approx(1.0, abs=1e-4)
    assert refs[0].saddle_point[0]
    assert refs[100].saddle[0] == pytest.approx(1.0, abs=1e-6) and refs[100].saddle_point[0]
    # how its strings stopped, in words for the map's progress notes
    bent = {(0, 1): torch.tensor([[-1.0, 0.0], [0.0, 0.8], [1.0, 0.0]], dtype=torch.float64)}
    ref = refine_pairs(energy, x, table, [0], paths=bent, images=8, steps=2, climb_steps=0)
    assert list(ref.stops) == ["budget"]
    # its top is still up the valley's side, where the gradient does not vanish: no saddle point
    assert ref.saddle[0] > 1.1 and not ref.saddle_point[0]
    assert ref.describe_stops(" (2 iterations)") == "1 string: 0 converged, 0 stopped moving, 1 at their budget (2 iterations)"
    with pytest.raises(LandscapeError, match="refine_climb_steps"):
        MapConfig(refine_climb_steps=-1)


def test_one_batched_call_for_all_images_and_a_frozen_module():
    calls = []

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))

        def forward(self, x):
            calls.append((x.shape[0], self.training, self.scale.requires_grad))
            return self.scale * double_well(x)

    net = Net().train()
    energy = Energy(net, shape=(2,), dtype=torch.float64)
    a, b = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    result = string_method(energy, a, b, via=torch.tensor([0.0, 1.0], dtype=torch.float64), images=10, steps=50)
    assert calls[0][0] == 10  # the whole starting path at once
    assert all(n == 8 for n, _, _ in calls[1:])  # then all interior images at once
    assert all(not training and not grad for _, training, grad in calls)
    assert net.training and net.scale.requires_grad  # restored
    assert net.scale.grad is None
    assert result.saddle_energy < 2.0


def test_init_path_is_used():
    # A path that goes around the high side; the string still relaxes to the saddle.
    a, b = torch.tensor([-1.0, 0.0], dtype=torch.float64), torch.tensor([1.0, 0.0], dtype=torch.float64)
    t = torch.linspace(0, torch.pi, 30, dtype=torch.float64)
    arc = torch.stack([-torch.cos(t), 1.5 * torch.sin(t)], dim=1)
    vg = autograd_value_and_grad(double_well)
    result = string_method(vg, a, b, init_path=arc)
    assert result.initial_max_energy > 4.0
    assert result.saddle_energy == pytest.approx(1.0, abs=1e-4)


def test_resample_polyline_equal_arc_length():
    pts = torch.tensor([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 3.0]], dtype=torch.float64)
    out = resample_polyline(pts, 5)
    expected = torch.tensor([[0, 0], [1, 0], [1, 1], [1, 2], [1, 3]], dtype=torch.float64)
    torch.testing.assert_close(out, expected)


def test_bad_inputs():
    vg = autograd_value_and_grad(double_well)
    a, b = torch.zeros(2), torch.ones(2)
    with pytest.raises(LandscapeError, match="at least 3 images"):
        string_method(vg, a, b, images=2)
    with pytest.raises(LandscapeError, match="not both"):
        string_method(vg, a, b, via=a, init_path=a[None])
    with pytest.raises(LandscapeError, match="differ in shape"):
        string_method(vg, a, torch.ones(3))
    bad = autograd_value_and_grad(lambda x: torch.log(x[:, 0]))  # NaN for x < 0
    with pytest.raises(NonFiniteEnergyError):
        string_method(bad, torch.tensor([-1.0, 0.0]), torch.tensor([1.0, 0.0]))


def test_batched_strings_give_what_each_string_gives_alone(mb_critical_points):
    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    m = torch.tensor([[-0.5582, 1.4417], [0.6235, 0.0280], [-0.0500, 0.4667]], dtype=torch.float64)
    a, b = m[[0, 1, 0]], m[[2, 2, 1]]
    via = torch.tensor([[-0.8, 0.7], [0.2, 0.3], [math.nan, math.nan]], dtype=torch.float64)
    batch = string_method_batch(energy, a, b, via=via, images=20, steps=300, box=(-1.5, 2.0))
    for i, got in enumerate(batch):
        alone = string_method(energy, a[i], b[i], via=None if i == 2 else via[i], images=20, steps=300, box=(-1.5, 2.0))
        assert got.saddle_energy == pytest.approx(alone.saddle_energy, abs=1e-9)
        assert got.converged == alone.converged and got.steps == alone.steps
        torch.testing.assert_close(got.path, alone.path, atol=1e-9, rtol=0)
    # Both Mueller-Brown saddles, on the paths through them.
    assert sorted(round(r.saddle_energy, 2) for r in batch[:2]) == [-72.25, -40.66]


def test_a_batch_of_strings_reports_how_many_still_relax_without_changing_its_result():
    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    x = torch.tensor(MUELLER_BROWN_MINIMA, dtype=torch.float64)
    a, b = x[[0, 0, 1]], x[[1, 2, 2]]
    seen = []
    heard = string_method_batch(energy, a, b, images=20, steps=300, box=energy.data_range,
                                on_iteration=lambda done, moving: seen.append((done, moving)))
    quiet = string_method_batch(energy, a, b, images=20, steps=300, box=energy.data_range)
    for h, q in zip(heard, quiet):
        assert h.steps == q.steps and h.saddle_energy == q.saddle_energy and torch.equal(h.path, q.path)
    done, moving = zip(*seen)
    assert list(done) == list(range(len(seen)))  # before every iteration
    # a string relaxes until its own last iteration: the count falls as each one ends
    assert list(moving) == [sum(q.steps > d for q in quiet) for d in done]
    assert moving[0] == 3 and len(set(q.steps for q in quiet)) > 1 and moving[-1] == 0
    # refine_pairs words it for a progress bar
    lines = []
    table = PairTable(np.array([[0, 1], [0, 2], [1, 2]]), np.full(3, 100.0), np.full(3, np.nan), np.full(3, np.nan),
                      np.full(3, NEIGHBOUR, dtype=np.uint8))
    refine_pairs(energy, x, table, [0, 1, 2], images=20, steps=300, detail=lines.append)
    assert lines[0] == "3/3 strings relaxing, iteration 0/600"
    assert lines[-1].startswith("0/3 strings relaxing")


def test_a_quiet_iteration_waits_for_the_device_once(monkeypatch):
    # On a GPU every read of a tensor's value on the host drains the queue of launched
    # kernels: an iteration in which no string's phase ends or is due a stall check reads
    # two flags at once (whether a string settled, whether one got stuck), the budget and
    # stall checks run at the iterations the host knows they can find something.
    from torch.profiler import ProfilerActivity, profile

    listed = []
    tolist = torch.Tensor.tolist
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: listed.append(1) or tolist(t))
    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    x = torch.tensor(MUELLER_BROWN_MINIMA, dtype=torch.float64)
    a, b = x[[0, 0, 1]], x[[1, 2, 2]]

    def reads(steps: int) -> tuple[int, int]:
        listed.clear()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = string_method_batch(energy, a, b, images=12, steps=steps, tol=0.0, climb=False)
        assert [r.stop for r in out] == ["budget"] * 3  # every string ran every iteration
        return len(listed) + sum(ev.name == "aten::_local_scalar_dense" for ev in prof.events()), steps

    (short, n), (long, m) = reads(20), reads(45)
    assert long - short == m - n


def test_strings_end_their_phases_and_leave_the_batch_without_waiting_for_the_device_again(monkeypatch):
    # Strings that settle, start to climb or leave the working set are handled by mask and
    # by row numbers found once: an iteration in which phases end reads the device a few
    # times, not once per field it selects by a mask (about 30 times before).
    from torch.profiler import ProfilerActivity, profile

    iterations, listed = [], []
    iterate, tolist = paths._Strings.iterate, torch.Tensor.tolist
    monkeypatch.setattr(paths._Strings, "iterate", lambda self: iterations.append(1) or iterate(self))
    monkeypatch.setattr(torch.Tensor, "tolist", lambda t: listed.append(1) or tolist(t))
    energy = Energy(double_well, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    n = 24
    g = torch.Generator().manual_seed(3)
    a = torch.tensor([[0.9614, 0.0]] * n, dtype=torch.float64) + 0.05 * torch.randn(n, 2, generator=g, dtype=torch.float64)
    b = torch.tensor([[-1.0366, 0.0]] * n, dtype=torch.float64)
    via = torch.stack([torch.zeros(n, dtype=torch.float64), torch.linspace(-1.5, 1.5, n, dtype=torch.float64)], 1)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = string_method_batch(energy, a, b, via=via, images=12, steps=300, climb_steps=100, box=(-2.0, 2.0))
    assert len({r.steps for r in out}) >= 8  # (strings ended at many iterations)
    assert not any(ev.name == "aten::nonzero" for ev in prof.events())  # (no selection by a mask)
    reads = len(listed) + sum(ev.name == "aten::_local_scalar_dense" for ev in prof.events())
    # one per iteration, one per iteration where strings left or began to climb, the stall
    # checks (114 for 51 iterations; the previous code read 275 times, and selected by mask
    # 325 times on top)
    assert reads <= 3 * len(iterations)


def test_starting_paths_are_made_for_all_strings_at_once_with_the_numbers_of_one_at_a_time():
    # Straight strings and strings through a via point are resampled together (on a GPU a
    # few dozen launches for the batch, not per string), to the very numbers of
    # resample_polyline on each; a string with a starting path of its own takes it.
    from torch.profiler import ProfilerActivity, profile

    def made(n: int) -> tuple[torch.Tensor, int, list]:
        g = torch.Generator().manual_seed(n)
        a, b = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
        via = torch.randn(n, 3, generator=g)
        via[::3] = float("nan")  # (no via point: straight)
        init = [torch.randn(2, 3, generator=g) if i % 5 == 4 else None for i in range(n)]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            paths._starting_paths(a, b, None, via, 9)
        operations = sum(ev.name.startswith("aten::") for ev in prof.events())
        want = []
        for i in range(n):
            middle = init[i] if init[i] is not None else via[i : i + 1] if i % 3 else None
            want.append(resample_polyline(torch.cat([a[i : i + 1], middle, b[i : i + 1]]) if middle is not None
                                          else torch.stack([a[i], b[i]]), 9))
        return paths._starting_paths(a, b, init, via, 9), operations, want

    got, few, want = made(12)
    assert torch.equal(got, torch.stack(want))
    _, many, _ = made(96)
    assert many == few  # (without starting paths of their own: as many operations for 96 strings as for 12)


def test_a_chain_that_stepped_over_a_ridge_has_its_estimate_raised_to_the_top_of_its_path():
    # The chain 0 -> 1 was recorded at points that step over the thin ridge: its sampled
    # peak, about 0.9, lies below every path from 0 to 1 (whose lowest top is the ridge's,
    # 4). The tree rests on that estimate: it is checked along the chain's polyline and
    # raised to 4. Minimum 2 joins the tree through the segment (1, 2): the chain 0 -> 2,
    # whose estimate the tree does not rest on, is left alone. A pair is checked once.
    e = Energy(thin_ridge, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    xs = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [-1.0, 3.0]], dtype=torch.float64)
    minima_energy = e(xs).numpy()
    line = torch.tensor([[-1.0, 0.0], [-0.6, 0.0], [-0.25, 0.0], [0.25, 0.0], [0.6, 0.0], [1.0, 0.0]],
                        dtype=torch.float64)
    sampled = float(e(line).max())
    assert sampled < 1.0
    table = PairTable(np.array([[0, 1], [0, 2], [1, 2]]), np.array([sampled, 50.0, 40.0]), np.full(3, np.nan),
                      np.array([1.0, 1.0, np.nan]), np.array([2, 2, NEIGHBOUR], dtype=np.uint8))
    far = torch.stack([xs[0], torch.tensor([-1.0, 1.5], dtype=torch.float64), xs[2]])
    closed: set[tuple[int, int]] = set()
    paths_ = {(0, 1): line, (0, 2): far}
    assert close_estimates(e, minima_energy, table, paths_, closed) == (1, 1) and closed == {(0, 1)}
    assert table.estimate[0] == pytest.approx(4.0, abs=1e-3)
    assert table.estimate[1] == 50.0
    assert close_estimates(e, minima_energy, table, paths_, closed) == (0, 0)
    # an estimate the path confirms is kept as it is
    table.estimate[0] = 5.0
    assert close_estimates(e, minima_energy, table, paths_, set()) == (1, 0) and table.estimate[0] == 5.0


@pytest.mark.parametrize("retry", [False, True])
def test_refine_pairs_resumed_after_any_batch_gives_the_uninterrupted_result(retry):
    # What on_batch hands out after each batch of strings is enough to continue to the very
    # result of the uninterrupted run, in the first run of the strings and in their retries
    # (estimates set at the minima, so every string ends above its estimate and runs again).
    from landscape.mapping.barriers import RefineProgress
    from landscape.potentials import tilted_wells, tilted_wells_exact

    answer = tilted_wells_exact(3)
    energy = Energy(tilted_wells, shape=(3,), data_range=(-2.0, 2.0), dtype=torch.float64)
    x = torch.from_numpy(answer.minima)
    pairs = np.array([[i, j] for i in range(8) for j in range(i + 1, 8)])[:20]
    floor = np.maximum(answer.energy[pairs[:, 0]], answer.energy[pairs[:, 1]])
    table = PairTable(pairs, floor if retry else floor + 10.0, np.full(20, np.nan), np.full(20, np.nan),
                      np.full(20, NEIGHBOUR, dtype=np.uint8))
    rows = list(range(20))
    saved: list[RefineProgress] = []
    counted: list[int] = []
    whole = refine_pairs(energy, x, table, rows, images=8, steps=60, climb_steps=20, batch=6,
                         on_batch=lambda get: saved.append(get()), progress=counted.append)
    assert (whole.retried == 20) == retry and whole.retried in (0, 20)
    assert sum(counted) == 20  # (a progress bar over the pairs: the strings run again fill it no further)
    assert [(s.phase, s.done) for s in saved] == [(0, 6), (0, 12), (0, 18), (0, 20)] + (
        [(1, 6), (1, 12), (1, 18), (1, 20)] if retry else [])
    for progress in saved[:-1]:
        counted = []
        again = refine_pairs(energy, x, table, rows, images=8, steps=60, climb_steps=20, batch=6,
                             resume_from=progress, progress=counted.append)
        assert sum(counted) == 20  # (the strings run before count once, as they were)
        np.testing.assert_array_equal(again.saddle, whole.saddle)
        np.testing.assert_array_equal(again.saddle_x, whole.saddle_x)
        np.testing.assert_array_equal(again.paths, whole.paths)
        np.testing.assert_array_equal(again.saddle_point, whole.saddle_point)
        assert list(again.stops) == list(whole.stops) and again.retried == whole.retried
    bad = saved[0]
    bad.saddle_x = bad.saddle_x[:, :2]
    with pytest.raises(LandscapeError, match="string method does not fit"):
        refine_pairs(energy, x, table, rows, images=8, steps=60, batch=6, resume_from=bad)


def test_an_energy_that_is_nan_where_a_segment_crosses_is_named_not_a_barrier_of_nan():
    # A double well that is NaN on a strip too thin for any quench start to land in, where
    # the straight line between its minima crosses: the segment's top is not a number, and
    # the barrier must not become NaN (or an infinite "no path") without a word.
    def nan_thin(x):
        u = (x[:, 0] ** 2 - 1) ** 2 + 0.5 * (x[:, 1:] ** 2).sum(1)
        return torch.where((x[:, 0].abs() < 0.01) & (x[:, 1].abs() < 0.05), torch.full_like(u, math.nan), u)

    energy = Energy(nan_thin, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    a, b = torch.tensor([[-1.0, 0.0], [-1.0, 0.5]], dtype=torch.float64), torch.tensor([[1.0, 0.0], [1.0, 0.5]])
    with pytest.raises(NonFiniteEnergyError, match=r"1 of \d+ points on straight segments between minima have a "
                       r"non-finite energy \(the first at x = \[-?0\.00\d*, .*\]\): .* finite throughout the box \[-2, 2\]"):
        paths.segment_max(energy, a, b)
    assert paths.segment_max(energy, a[1:], b[1:]).item() == pytest.approx(1.125)  # the line above the strip


def test_neighbour_pairs_take_every_pair_where_the_nearest_are_half_of_them_already():
    from landscape.mapping.barriers import neighbour_pairs

    gen = torch.Generator().manual_seed(0)
    few = torch.rand(24, 64, generator=gen)  # (10 nearest each: at least 120 of the 276 pairs)
    pairs = neighbour_pairs(few, 10)
    assert len(pairs) == 24 * 23 // 2
    many = torch.rand(200, 64, generator=gen)
    pairs = neighbour_pairs(many, 10)
    assert 1000 <= len(pairs) <= 2000  # (the nearest only: about k N of the 19,900)


def test_a_point_is_stationary_where_a_newton_step_would_move_the_energy_by_nothing():
    def stiff(x):  # saddles at (0, +-1) (U = 1, curvatures -4 and 8e4) and (+-1, 0) (U = 1e4)
        return (x[:, 0] ** 2 - 1) ** 2 + 1e4 * (x[:, 1] ** 2 - 1) ** 2

    def tails(x):  # a Gaussian well: exponentially flat far out
        return -torch.exp(-(x ** 2).sum(1))

    pts = torch.tensor([[0.0, 1.0 + 1e-9],  # the saddle, 1e-9 off in the stiff direction: |g| 8e-5
                        [1e-5, 1.0],  # 1e-5 off in the soft one: |g| 4e-5
                        [0.03, 1.0],  # 0.03 off in the soft one: 0.0018 below the saddle
                        [1e-3, 1.0 + 1e-6]],  # off in both: |g| 0.08 from the stiff direction
                       dtype=torch.float64)
    for c, length in ((1.0, 1.0), (0.01, 1.0), (100.0, 1.0), (1.0, 30.0)):
        energy = Energy(lambda x, c=c, s=length: c * stiff(x / s), shape=(2,), dtype=torch.float64)
        # within 0.1 % of a barrier 1 high: whatever the energy's scale and units of length
        out = stationary_within(energy, pts * length, np.full(4, 1e-3 * c))
        assert out.tolist() == [True, True, False, True], (c, length)
    # On the well's tail (|g| 6e-9 at r = 4.6, U = -6.5e-10) the curvature is as small: a
    # flat merge's top there (no barrier: the tolerance float32's rounding of U) is no
    # stationary point, though its gradient is 1e-9 of the well's largest.
    energy = Energy(tails, shape=(2,), dtype=torch.float64)
    far = torch.tensor([[4.6, 0.0], [0.0, 0.0]], dtype=torch.float64)
    assert stationary_within(energy, far, 1e-6 * energy(far).abs().numpy()).tolist() == [False, True]
    # Piecewise linear (no curvature): only where the gradient vanishes.
    energy = Energy(lambda x: x.abs().sum(1), shape=(2,), dtype=torch.float64)
    assert stationary_within(energy, torch.tensor([[0.5, 0.5]], dtype=torch.float64), np.ones(1)).tolist() == [False]

    class Once(torch.autograd.Function):  # a gradient that cannot be differentiated again
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return (x ** 2).sum(1)

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return (2 * x * grad[:, None]).detach()

    energy = Energy(Once.apply, shape=(2,), dtype=torch.float64)
    assert stationary_within(energy, pts, np.ones(4)) is None
