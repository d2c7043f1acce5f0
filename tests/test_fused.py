"""Attraction-diffusion's steps compiled a window at a time (landscape.fused), and the string
method's iterations, against the eager steps: the same chains and strings to rounding
error, and eager steps where compiling fails.

Compiling takes seconds, so the compiled energy is made once for the module and every
test here shares it. Inductor compiles it to scalar C++ here: its vector code (the default on
a CPU) took 1.7 times as long to generate (the strings' two windows: 70 s against 40 s), for
the same chains to follow; and the windows here are of 4 steps, not the product's 8
(``fused.STEPS``): a window is its steps unrolled, and one of attraction-diffusion compiled
in 15 s instead of 25. One test, `landscape sample --compile` on a trained network, compiles
as a user's run does.
"""

import math
from dataclasses import replace
import warnings

import numpy as np

import pytest
import torch
import torch._inductor.config

from landscape import Energy, fused
from landscape.distributed import Dist, SplitEnergy
from landscape.errors import CompileWarning
from landscape.mapping.ad import ADConfig, ADTrials, attraction_diffusion
from landscape.mapping.paths import string_method_batch
from landscape.sampling.langevin import RowGroups

F64 = torch.float64


def double_well(x: torch.Tensor) -> torch.Tensor:
    # deep well at x0 ~ -1.04, shallow at ~ 0.96, saddle ~ 0.075 (as in test_ad.py)
    return (x[:, 0] ** 2 - 1) ** 2 + 0.3 * x[:, 0] + x[:, 1] ** 2


DEEP, SHALLOW = -1.0366, 0.9614


#: The product's window (the test that compiles as users do runs it).
PRODUCT_STEPS = fused.STEPS


@pytest.fixture(autouse=True, scope="module")
def module_compiles():
    # Scalar C++ and windows of 4 steps (module docstring). (torch's config patch is a
    # context: a test here may change it on top, and it is restored after the module; the
    # one test that compiles as users do leaves both)
    with torch._inductor.config.patch({"cpp.simdlen": 1}), pytest.MonkeyPatch.context() as mp:
        mp.setattr(fused, "STEPS", 4)
        yield


@pytest.fixture(scope="module")
def compiled_energy(module_compiles) -> Energy:
    return Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64, compile=True)


def _trials(energy: Energy, config: ADConfig, n: int, **kw) -> ADTrials:
    """``n`` trials from the shallow well to the deep one and back, near and far, each
    with its own generator (a batch that shrinks as they stop; below ``fused.MIN_ROWS``
    rows it steps eagerly)."""
    starts = torch.tensor([[SHALLOW, 0.3 * (p % 3 - 1)] if p % 2 else [DEEP, 0.0] for p in range(n)], dtype=F64)
    targets = torch.tensor([[DEEP, 0.0] if p % 2 else [SHALLOW, 0.0] for p in range(n)], dtype=F64)
    return attraction_diffusion(energy, starts, targets, config,
                                RowGroups([1] * n, [torch.Generator().manual_seed(7 + p) for p in range(n)]), **kw)


@pytest.mark.parametrize("settings", [
    # the running mean judges arrival; trials arrive at different steps
    dict(temperature=0.1, alpha=2.0, eps=0.1, max_steps=1000, patience=1000, delta=0.3, record=8),
    # arrival by position; out of steps at a count that is no multiple of the fused window
    dict(temperature=0.3, alpha=3.0, eps=0.15, max_steps=53, patience=1000, delta=0.2, average=0, record=4),
])
def test_compiled_steps_follow_the_eager_chains_to_rounding_error(compiled_energy, settings):
    config = ADConfig(**settings)
    eager = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)
    said = []
    want = _trials(eager, config, 40, on_compile=lambda: said.append("eager"))
    got = _trials(compiled_energy, config, 40, on_compile=lambda: said.append("compiling"))
    assert said == ["compiling"]  # (each setting here compiles a function of its own, once)
    assert fused.failure(compiled_energy) is None
    assert compiled_energy.__dict__.get("_compiled")  # (it did compile: the test means something)
    assert len(set(want.steps.tolist())) > 1  # trials stop at different steps
    assert torch.equal(got.success, want.success) and torch.equal(got.steps, want.steps)
    assert want.success.any()
    ok = want.success
    torch.testing.assert_close(got.barrier[ok], want.barrier[ok], rtol=1e-10, atol=1e-12)
    for name in ("final_distance", "peak_x", "end_x"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-9, atol=1e-11)
    for p, n in enumerate(want.path_len.tolist()):
        torch.testing.assert_close(got.path[p, :n], want.path[p, :n], rtol=1e-9, atol=1e-11)


def test_compiled_langevin_chains_follow_the_eager_ones(compiled_energy):
    # 70 steps checked every 20: windows of 4 fused steps and eager steps up to each check
    from landscape.sampling.langevin import sample

    x0 = torch.rand(40, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 4 - 2
    eager = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)
    done = {}
    runs = {e.compile: sample(e, x0, 70, 0.1, 1.0, generator=torch.Generator().manual_seed(1), box=e.data_range,
                              check_every=20, progress=lambda n, c=e.compile: done.setdefault(c, []).append(n))
            for e in (eager, compiled_energy)}
    assert fused.warm(compiled_energy, ("langevin", True)) and fused.failure(compiled_energy) is None
    assert done[True] == done[False] == [20, 20, 20, 10]
    want, got = runs[False], runs[True]
    assert float(want.x.std()) > 0.3  # (the chains moved)
    for name in ("x", "energy", "grad_norm_mean"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-10, atol=1e-12)


def test_batches_of_every_size_run_without_compiling_again(compiled_energy):
    # Trials leave the batch at every window: its size changes, the compiled code stays
    # (a recompilation would take seconds each time).
    config = ADConfig(temperature=0.3, alpha=8.0, eps=0.1, max_steps=1000, patience=1000, delta=0.3, record=0)
    _trials(compiled_energy, config, 20)
    said = []
    with torch._dynamo.config.patch(error_on_recompile=True):
        out = _trials(compiled_energy, config, 33, on_compile=lambda: said.append("compiling"))
    assert not said
    assert fused.failure(compiled_energy) is None  # (a recompilation would have raised, and been kept here)
    assert len(set(out.steps.tolist())) > 2


def _strings(energy: Energy, n: int = 24, climb_steps: int = 100, **kw) -> list:
    """``n`` strings from near the shallow well to the deep one, each starting through a
    point of its own up the valley's side (they relax down to the valley, then climb):
    strings leave the batch at different iterations."""
    g = torch.Generator().manual_seed(3)
    a = torch.tensor([[SHALLOW, 0.0]] * n, dtype=F64) + 0.05 * torch.randn(n, 2, generator=g, dtype=F64)
    b = torch.tensor([[DEEP, 0.0]] * n, dtype=F64)
    via = torch.stack([torch.zeros(n, dtype=F64), torch.linspace(-1.5, 1.5, n, dtype=F64)], 1)
    return string_method_batch(energy, a, b, via=via, images=12, steps=300, climb_steps=climb_steps, box=(-2.0, 2.0),
                               **kw)


def test_compiled_strings_follow_the_eager_strings_to_rounding_error(compiled_energy):
    eager = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)
    said = []
    want = _strings(eager, on_compile=lambda: said.append("eager"))
    got = _strings(compiled_energy, on_compile=lambda: said.append("compiling"))
    assert said == ["compiling", "compiling"]  # the string phase's iteration, then the climbing images'
    assert fused.warm(compiled_energy, ("strings", False)) and fused.warm(compiled_energy, ("strings", True))
    assert fused.failure(compiled_energy) is None
    assert len({r.steps for r in want}) > 3 and all(r.converged for r in want)
    # the saddle of U = (x^2 - 1)^2 + 0.3 x + y^2: y = 0, x the middle root of 4x^3 - 4x + 0.3
    x0 = sorted(np.roots([4.0, 0.0, -4.0, 0.3]).real)[1]
    exact = (x0**2 - 1) ** 2 + 0.3 * x0
    for w, c in zip(want, got):
        assert (c.steps, c.stop, c.saddle_index, c.converged) == (w.steps, w.stop, w.saddle_index, w.converged)
        assert math.isclose(c.saddle_energy, w.saddle_energy, rel_tol=1e-10, abs_tol=1e-12)
        torch.testing.assert_close(c.path, w.path, rtol=1e-9, atol=1e-11)
        assert math.isclose(c.saddle_energy, exact, rel_tol=1e-6)
    # Strings leave the batch at every iteration: its size changes, the compiled code stays.
    with torch._dynamo.config.patch(error_on_recompile=True):
        again = _strings(compiled_energy, n=17)
    assert fused.failure(compiled_energy) is None  # (a recompilation would have raised, and been kept here)
    assert all(r.converged for r in again)


def test_where_compiling_fails_the_steps_run_eagerly_with_the_same_chains(monkeypatch):
    # What a machine without a C++ compiler does: the compiled function raises when first
    # called (torch.compile compiles lazily).
    def no_compiler(fn, **kw):
        def call(*args):
            raise RuntimeError("InvalidCxxCompiler: No working C++ compiler found in\n torch._inductor.config.cpp.cxx")
        return call

    monkeypatch.setattr(torch, "compile", no_compiler)
    config = ADConfig(temperature=0.3, alpha=3.0, eps=0.15, max_steps=100, patience=1000, delta=0.2, record=4)
    want = _trials(Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64), config, 20)
    energy = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64, compile=True)
    with pytest.warns(CompileWarning, match="compiling the steps failed, they ran eagerly: RuntimeError: "):
        got = _trials(energy, config, 20)  # (said once, from Python)
    assert fused.failure(energy) == "RuntimeError: InvalidCxxCompiler: No working C++ compiler found in " \
                                    "torch._inductor.config.cpp.cxx"
    assert fused.compiled(energy, "any", lambda vg: vg) is None  # not tried again
    for name in ("success", "barrier", "steps", "end_x", "path"):
        assert torch.equal(getattr(got, name), getattr(want, name)), name
    # the string method likewise
    for c, w in zip(_strings(energy), _strings(Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64))):
        assert c.steps == w.steps and c.saddle_energy == w.saddle_energy and torch.equal(c.path, w.path)


def test_the_compilers_tf32_hint_is_not_passed_on_and_other_warnings_are():
    # On a GPU inductor hints at TF32 for float32 products; maps keep full float32, so the
    # hint would only puzzle a user. Any other warning still reaches them.
    energy = Energy(double_well, shape=(1,), data_range=(-2.0, 2.0), dtype=torch.float64)

    def fn(hint: str) -> int:
        warnings.warn(hint, UserWarning)
        return 1

    tf32 = ("TensorFloat32 tensor cores for float32 matrix multiplication available but not enabled. "
            "Consider setting `torch.set_float32_matmul_precision('high')` for better performance.")
    with pytest.warns(UserWarning, match="something else"):
        assert fused.call(energy, "k", fn, "something else") == 1
    with warnings.catch_warnings():  # (turned into an error, the hint would fail the call)
        warnings.simplefilter("error")
        assert fused.call(energy, "k", fn, tf32) == 1


def test_steps_of_more_energies_than_torch_keeps_per_function_still_compile(monkeypatch):
    # Every energy's steps are the same Python function over another energy; torch keeps
    # recompile_limit compiled versions of a function and then runs it eagerly without a
    # word. Here that limit is 1 (a process that has compiled steps for a few energies
    # already): each energy still gets its own compiled steps, and past our own limit
    # compiling fails visibly, with the steps eager and the same results.
    from torch._dynamo.utils import counters

    x = torch.linspace(-1.0, 1.0, 32, dtype=F64).reshape(16, 2)

    def gradient(vg):
        def step(x: torch.Tensor) -> torch.Tensor:
            return vg(x)[1]
        return step

    def steps(c: float) -> tuple[Energy, torch.Tensor | None]:
        energy = Energy(lambda x: c * (x**2).sum(1), (2,), dtype=F64, compile=True)
        with energy.frozen():
            return energy, fused.call(energy, "probe", fused.compiled(energy, "probe", gradient), x)

    with torch._dynamo.config.patch(recompile_limit=1):  # (monkeypatch cannot undo a torch config)
        for c in (1.0, 2.0, 3.0):
            graphs = counters["stats"]["unique_graphs"]
            energy, out = steps(c)
            assert fused.failure(energy) is None and counters["stats"]["unique_graphs"] > graphs  # compiled
            torch.testing.assert_close(out, 2 * c * x)
        assert torch._dynamo.config.recompile_limit == 1  # (restored after each call)
        monkeypatch.setattr(fused, "RECOMPILE_LIMIT", 1)
        with pytest.warns(CompileWarning, match="compiling the steps failed, they ran eagerly: .*recompile"):
            energy, out = steps(4.0)
        assert out is None and "recompile" in fused.failure(energy).lower()


def test_a_changed_module_is_compiled_again():
    net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    energy = Energy(lambda x: net(x)[:, 0] + (x**2).sum(1), (2,), dtype=F64, compile=True)
    energy_module = Energy(net, (2,), dtype=F64, compile=True)
    assert fused._version(energy) == ()  # a function: its closure is not looked into
    v = fused._version(energy_module)
    with torch.no_grad():
        net[0].weight.add_(1.0)
    assert fused._version(energy_module) != v


def test_a_split_energy_runs_its_steps_eagerly():
    inner = Energy(double_well, (2,), dtype=F64, compile=True)
    split = SplitEnergy(inner, Dist(rank=0, world=2))
    assert inner.compile and not split.compile
    assert fused.compiled(split, "any", lambda vg: vg) is None


def test_the_traceable_gradient_is_the_energy_gradient():
    energy = Energy(double_well, (2,), dtype=F64)
    x = torch.tensor([[0.3, -0.2], [1.5, 0.7]], dtype=F64)
    u, g = fused.traceable_value_and_grad(energy)(x)
    want_u, want_g = energy.value_and_grad_fn()(x)
    torch.testing.assert_close(u, want_u)
    torch.testing.assert_close(g, want_g)
    assert math.isclose(float(u[0]), float(double_well(x[:1])[0]))


def test_landscape_map_compile_gives_the_map_of_the_eager_steps(tmp_path, capsys, monkeypatch):
    # `--compile` reaches the exploration's and the trials' steps and the map is the eager
    # one. Traced as the compiler traces them, down to torch's own operations, not compiled
    # to machine code, and without the strings (a minute more in all): the tests above
    # compile each kind of window, the strings' included, with inductor.
    from conftest import run

    from landscape.io.mapfile import read_map

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_(fn, **{**kw, "backend": "aot_eager"}))
    traced, window = set(), fused.compiled

    def watch(energy, key, build):  # (the kinds of window that ran compiled)
        fn = window(energy, key, build)
        if fn is not None:
            traced.add(key[0])
        return fn

    monkeypatch.setattr(fused, "compiled", watch)
    maps = {}
    for flag in ([], ["--compile"]):
        out = tmp_path / f"mb{len(flag)}.h5"
        code, stdout, err = run(capsys, "map", "--energy", "landscape.potentials:mueller_brown", "--shape", "2",
                                "--box", "-1.5", "2", "--float64", "--chains", "32", "--rounds", "1",
                                "--temperature", "1", "--steps", "24", "--max-steps", "400", "--no-refine",
                                "--out", out, *flag)
        assert code == 0, err
        assert "compiling the steps failed" not in stdout + err
        maps[bool(flag)] = read_map(out)
    eager, compiled = maps[False], maps[True]
    assert traced == {"langevin", "attraction-diffusion"}
    assert eager.minima_energy.shape == (3,)
    # (the exploration's chains ran compiled too: the same ends to rounding, quenched alike)
    np.testing.assert_allclose(compiled.minima_x, eager.minima_x, atol=1e-6)
    assert [p.n_basins for p in compiled.levels] == [p.n_basins for p in eager.levels]
    for a, b in zip(compiled.levels, eager.levels):
        np.testing.assert_array_equal(a.basin, b.basin)
    np.testing.assert_allclose(compiled.tree.barrier, eager.tree.barrier, rtol=1e-9)


@pytest.fixture
def as_users_compile(monkeypatch):  # (inductor's vector code and the product's window, not the module's)
    monkeypatch.setattr(fused, "STEPS", PRODUCT_STEPS)
    with torch._inductor.config.patch({"cpp.simdlen": None}):
        yield


def test_landscape_sample_compile_ends_its_chains_where_the_eager_chains_end(tmp_path, capsys, monkeypatch,
                                                                              as_users_compile):
    from conftest import TINY, run


    ckpt = tmp_path / "rings.pt"
    code, _, err = run(capsys, "train", "--preset", "rings-demo", "--out", ckpt, "--set", "model.kwargs.n_f=8", *TINY)
    assert code == 0, err
    ran = []  # (compile asked, a compiled window ran) per window
    compiled = fused.compiled

    def watch(energy, key, build):
        fn = compiled(energy, key, build)
        if fn is None:
            ran.append((energy.compile, False))
            return None

        def call(*args):
            out = fn(*args)
            ran.append((energy.compile, fused.failure(energy) is None))
            return out

        return call

    monkeypatch.setattr(fused, "compiled", watch)
    ends = {}
    for flag in ([], ["--compile"]):
        saved = tmp_path / f"ends{len(flag)}.npz"
        code, out, err = run(capsys, "sample", ckpt, "--chains", "32", "--steps", "20", "--out",
                             tmp_path / f"s{len(flag)}.png", "--save", saved, "--quiet", *flag)
        assert code == 0, err
        ends[bool(flag)] = np.load(saved)
    # 20 steps: two compiled windows of 8, then 4 eager steps, with --compile only
    assert ran == [(True, True)] * 2
    assert not np.array_equal(ends[True]["start"], ends[True]["end"])
    np.testing.assert_allclose(ends[True]["end"], ends[False]["end"], atol=1e-4)
    np.testing.assert_allclose(ends[True]["energy_end"], ends[False]["energy_end"], rtol=1e-4, atol=1e-4)


def test_a_compiled_window_keeps_its_own_books(compiled_energy):
    # On a GPU every eager operation is a kernel launch: a compiled window steps and keeps
    # its trials' books (stops, peaks, best distances) in its own fused code, and what is
    # left to run eagerly per window of 16 steps is the noise (a draw per step), the
    # window's one host read and a few copies and sums.
    from torch.profiler import ProfilerActivity, profile

    config = ADConfig(temperature=0.1, alpha=0.0, eps=0.01, max_steps=10**6, patience=10**6, delta=1e-9, record=0)
    starts = torch.tensor([[SHALLOW, 0.0]] * 32, dtype=F64)

    def eager_operations(steps: int) -> int:
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            out = attraction_diffusion(compiled_energy, starts, -starts, replace(config, max_steps=steps),
                                       torch.Generator().manual_seed(0))
        assert (out.steps == steps).all()  # every trial ran every window
        count = 0
        for ev in prof.events():
            parent = ev.cpu_parent
            while parent is not None and not parent.name.startswith("aten::") and "Compiled" not in parent.name:
                parent = parent.cpu_parent
            count += ev.name.startswith("aten::") and ev.name[6:] not in NOT_KERNELS and parent is None
        return count

    eager_operations(32)  # (compiles)
    per_window = (eager_operations(16 * 12) - eager_operations(16 * 4)) / 8
    assert fused.warm(compiled_energy, ("attraction-diffusion", True))
    assert 16 <= per_window <= 30  # (16 draws; with the books kept eagerly, 85)


# views, scalars and casts: no kernel of their own on a GPU
NOT_KERNELS = {"select", "slice", "view", "reshape", "unsqueeze", "squeeze", "expand", "as_strided", "unbind",
               "alias", "detach", "resolve_conj", "resolve_neg", "item", "_local_scalar_dense", "to", "_to_copy",
               "empty", "empty_like", "lift_fresh"}


def test_compiling_a_window_traces_it_once(monkeypatch):
    # Numbers go into the compiled functions as one-element tensors: a 0-d tensor argument
    # (a box's bound, a step's coefficient, a setting) is read by torch as a number, and
    # where it cannot keep that number symbolic it traces the whole function again, which
    # made compiling each variant seconds slower. (Traced here down to torch's own
    # operations, not compiled to machine code, in a few seconds.)
    from torch._dynamo.utils import compilation_time_metrics as timed

    from landscape.sampling.langevin import sample

    compile_ = torch.compile
    monkeypatch.setattr(torch, "compile", lambda fn, **kw: compile_(fn, **{**kw, "backend": "aot_eager"}))
    energy = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64, compile=True)
    again = len(timed.get("compile_attempt_1", []))
    x = torch.rand(32, 2, dtype=F64, generator=torch.Generator().manual_seed(0)) * 4 - 2
    sample(energy, x, 16, 0.01, 1.0, generator=torch.Generator().manual_seed(1), box=energy.data_range)
    _trials(energy, ADConfig(temperature=0.1, alpha=2.0, eps=0.1, max_steps=16, record=0), 32)
    _strings(energy, n=4, climb_steps=0)  # (the climbing iteration: the same numbers, traced 8 s longer)
    assert {k[0] for k in energy.__dict__["_compiled"]} == {("langevin", True), ("attraction-diffusion", True),
                                                             ("strings", False)}
    assert fused.failure(energy) is None
    assert len(timed.get("compile_attempt_1", [])) == again


def test_trials_that_stop_in_a_compiled_call_stay_stopped_through_the_eager_steps_after_it(compiled_energy):
    # A window of 6 steps: one compiled call of 4, then 2 eager steps, whose books leave
    # the trials that stopped in the compiled call as they stopped.
    assert fused.STEPS == 4
    config = ADConfig(temperature=0.1, alpha=20.0, eps=0.05, max_steps=6, patience=1000, delta=0.1, average=0,
                      record=4)
    targets = torch.tensor([[DEEP, 0.0]] * 32, dtype=F64)
    starts = targets + torch.stack([torch.linspace(0.11, 0.6, 32, dtype=F64), torch.zeros(32, dtype=F64)], 1)
    eager = Energy(double_well, (2,), data_range=(-2.0, 2.0), dtype=F64)

    def run(energy: Energy) -> ADTrials:
        return attraction_diffusion(energy, starts, targets, config,
                                    RowGroups([1] * 32, [torch.Generator().manual_seed(p) for p in range(32)]))

    want, got = run(eager), run(compiled_energy)
    assert fused.warm(compiled_energy, ("attraction-diffusion", False))
    assert (want.success & (want.steps <= 4)).any() and (want.success & (want.steps > 4)).any()  # (arrivals in both)
    assert torch.equal(got.success, want.success) and torch.equal(got.steps, want.steps)
    for name in ("barrier", "final_distance", "peak_x", "end_x"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=1e-9, atol=1e-11)
    for p, n in enumerate(want.path_len.tolist()):
        torch.testing.assert_close(got.path[p, :n], want.path[p, :n], rtol=1e-9, atol=1e-11)


def test_a_compiled_batch_resumed_from_a_sync_point_ends_as_the_uninterrupted_batch(compiled_energy):
    # The compiled window hands its books back as new tensors (not written in place): what
    # a sync point saves is still the state the next window starts from.
    import copy

    config = ADConfig(temperature=0.1, alpha=2.0, eps=0.1, max_steps=3000, patience=3000, delta=0.3, record=8)
    n = 32
    gens, saved = [torch.Generator().manual_seed(10 + p) for p in range(n)], []
    starts = torch.tensor([[SHALLOW, 0.3 * (p % 3 - 1)] if p % 2 else [DEEP, 0.0] for p in range(n)], dtype=F64)
    targets = torch.tensor([[DEEP, 0.0] if p % 2 else [SHALLOW, 0.0] for p in range(n)], dtype=F64)
    whole = attraction_diffusion(compiled_energy, starts, targets, config, RowGroups([1] * n, gens), on_sync=lambda get:
                                 saved.append((copy.deepcopy(get()), [g.get_state() for g in gens])))
    middle = [s for s in saved if s[0].rows.numel() >= fused.MIN_ROWS and s[0].step > 0]
    progress, states = middle[len(middle) // 2]
    assert 0 < progress.rows.numel() < n  # (some trials had left; the rest step compiled)
    gens = [torch.Generator() for _ in range(n)]
    for g, state in zip(gens, states):
        g.set_state(state)
    again = attraction_diffusion(compiled_energy, starts, targets, config, RowGroups([1] * n, gens),
                                 resume_from=progress)
    assert fused.warm(compiled_energy, ("attraction-diffusion", True))
    for name in ADTrials._fields:
        if name not in ("path", "calls"):
            assert torch.equal(getattr(again, name), getattr(whole, name)), name
    for p, k in enumerate(whole.path_len.tolist()):
        assert torch.equal(again.path[p, :k], whole.path[p, :k])
