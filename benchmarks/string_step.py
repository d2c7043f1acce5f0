"""One iteration of the string method against the two energy-and-gradient calls it makes.

    .venv/bin/python benchmarks/string_step.py [--device cuda] [--compile] [--repeats 5]

For each energy, batch of strings (``--strings``, 24 images each, between points drawn
uniformly in the data range) and phase (the strings relaxing; then every string with a
climbing image): the median over ``--repeats`` of (a) two calls of the energy's
value-and-gradient function on the batch's interior images (what an iteration evaluates:
the trial move, then the redistributed string) and (b) one iteration of
:func:`landscape.mapping.paths.string_method_batch` on that batch. The ratio b / a is the
cost of the string method's own arithmetic (forces, step caps, descent checks, the
climbing image's rules, redistribution at equal arc length, acceptance) on top of the
energy. With ``--compile``, also (c) the same iteration compiled (``Energy(compile=True)``,
:mod:`landscape.fused`), timed after a first call that compiles it (that time is printed
too).

It also counts the tensor operations an eager iteration issues (torch's profiler, as
``ad_step.py`` counts them), the same on every machine: on a GPU each is at least one
kernel launch.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ad_step import _operations, _sync, bare_call, chosen, compiled_cells, energies, parser  # noqa: E402

from landscape import Energy  # noqa: E402
from landscape.energy import use_cpu_threads  # noqa: E402
from landscape.mapping.paths import STOPS, _starting_paths, _Strings  # noqa: E402

IMAGES = 24


def strings(e: Energy, p: int, climbing: bool) -> _Strings:
    """``p`` strings of :data:`IMAGES` images between points drawn uniformly in the data
    range, ready to iterate (every one with a climbing image at its highest interior
    image, with ``climbing``)."""
    g = torch.Generator(device=e.device).manual_seed(p)
    a = e.uniform_noise(p, generator=g).reshape(p, -1)
    b = e.uniform_noise(p, generator=g).reshape(p, -1)
    s = _Strings(e.value_and_grad_fn(), tuple(e.shape), _starting_paths(a, b, None, None, IMAGES), tol=0.0,
                 step_size=None, box=e.data_range, energy=e)
    if climbing:
        s.climb_steps = 1
        s.end_phase(torch.ones_like(s.active), torch.zeros_like(s.active), STOPS.index("budget"))
    return s


def bare_calls(e: Energy, s: _Strings, calls: int) -> float:
    """Seconds for the two energy-and-gradient calls of one iteration."""
    return 2 * bare_call(e, s.path[:, 1:-1].reshape(-1, *e.shape).clone(), calls)


def iteration(e: Energy, p: int, climbing: bool, calls: int) -> tuple[float, float]:
    """Seconds per iteration (after a first one, which compiles where the energy asks
    for it), and that first iteration's seconds."""
    with e.frozen():
        s = strings(e, p, climbing)
        t = time.perf_counter()
        s.iterate()
        _sync(str(e.device))
        first = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(calls):
            s.iterate()
        _sync(str(e.device))
    return (time.perf_counter() - t) / calls, first


def operations(e: Energy, p: int, climbing: bool) -> float:
    """Tensor operations per eager iteration (from 20 and 40 iterations: set-up cancels)."""
    def run(n: int) -> None:
        s = strings(e, p, climbing)
        for _ in range(n):
            s.iterate()

    with e.frozen():
        return (_operations(lambda: run(40)) - _operations(lambda: run(20))) / 20


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--iterations", type=int, default=50)
    options.add_argument("--strings", default="16,256", help="batch sizes, comma-separated [default: 16,256]")
    options.add_argument("--compile", action="store_true", help="also the iteration of the energy compiled")
    args = options.parse_args()
    which = chosen(args)
    extra = " compiled iteration (ms) | compiled / 2 energy+gradient | first compiled call (s) |" if args.compile else ""
    print(f"| energy | strings x {IMAGES} images | phase | 2 energy+gradient (ms) | iteration (ms) "
          "| iteration / 2 energy+gradient | operations per iteration |" + extra)
    print("|---|---|---|---|---|---|---|" + "---|" * (3 if args.compile else 0))
    compiled = energies(args.device, compile=True, which=which) if args.compile else {}
    for name, e in energies(args.device, which=which).items():
        use_cpu_threads(e.fn, e.device)
        for p in (int(v) for v in args.strings.split(",")):
            for climbing in (False, True):
                with e.frozen():
                    s = strings(e, p, climbing)
                bare = statistics.median(bare_calls(e, s, args.iterations) for _ in range(args.repeats))
                step = statistics.median(iteration(e, p, climbing, args.iterations)[0] for _ in range(args.repeats))
                row = (f"| {name} | {p} | {'climbing' if climbing else 'string'} | {bare * 1e3:.3f} "
                       f"| {step * 1e3:.3f} | {step / bare:.2f} | {operations(e, p, climbing):.0f} |")
                if args.compile:
                    c = compiled[name]
                    runs = [iteration(c, p, climbing, args.iterations) for _ in range(args.repeats)]
                    row += compiled_cells(c, statistics.median(r[0] for r in runs), bare, runs[0][1])
                print(row, flush=True)


if __name__ == "__main__":
    main()
