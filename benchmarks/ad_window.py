"""One compiled window of attraction-diffusion steps alone: as the mapper compiles it, and
with CUDA graphs.

    .venv/bin/python benchmarks/ad_window.py [--device cuda] [--repeats 5]

``landscape map --compile`` runs attraction-diffusion ``fused.STEPS`` steps per compiled
call (:func:`landscape.mapping.ad._fused_window`: the energy's forward and backward pass,
the pull, the update, each step's distances, and the trials' books: stops, peaks, best
distances) and keeps the noise, the recorded paths and the trials leaving the batch eager.
On a GPU a small network's step is bound by kernel launches: there the mapper's compiled
step of the digits MLP cost 3.1x one energy-and-gradient call (``docs/benchmarks.md``,
2026-12-04, GPU, when the books were still kept eagerly). For each energy and batch this
times, per step, the median over ``--repeats`` of:

(a) one bare energy-and-gradient call (as ``ad_step.py``);
(b) the window compiled as the mapper compiles it (``torch.compile``, dynamic shapes);
(c) the window compiled with ``mode="reduce-overhead"``: on a GPU, replayed as a CUDA graph
    (one launch for all its kernels; on a CPU the same code as (b));
(d) the window compiled with inductor's C++ wrapper (``options={"cpp_wrapper": True}``): the
    code that calls the window's kernels (about a hundred per call) compiled, instead of
    Python;
(e) the mapper's whole compiled step (``attraction_diffusion`` of an ``Energy(compile=True)``:
    (b) plus the noise, the path's copy, the window's host sync and the trials leaving).

(b) against (e) is what the eager part of a compiled window costs; (c) and (d) against (b)
what CUDA graphs or a compiled wrapper would save, before building either into the mapper. The noise is drawn once and reused
(its cost is in (d) only). Each compiled variant's first call (compiling) is timed too.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ad_step import _ad_config, _sync, ad_step, bare_call, chosen, energies, parser  # noqa: E402

from landscape import Energy, fused  # noqa: E402
from landscape.energy import use_cpu_threads  # noqa: E402
from landscape.mapping.ad import _fused_window, _Magnetized, _Running  # noqa: E402


def window_args(e: Energy, p: int) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """A window's arguments for ``p`` trials between points drawn in the data range (the
    benchmark's AD settings, running mean on), with the energy's frozen value-and-gradient:
    what :func:`attraction_diffusion` passes to the compiled call, split into what stays
    (the targets, pulls, step coefficients, box, noise) and what a window carries to the
    next (position, ``h``, the running mean's offset, the trials' books)."""
    g = torch.Generator(device=e.device).manual_seed(p)
    x, b = e.uniform_noise(p, generator=g), e.uniform_noise(p, generator=g)
    cfg = _ad_config(10**6)
    mag = _Magnetized(e.value_and_grad_fn(), b, cfg.temperature, cfg.alpha, cfg.eps, None, e.data_range)
    u, _, diff, d = mag.evaluate(x)
    run = _Running(mag.x, u.double(), d.double(), diff, 0, cfg.average, cfg)
    z = torch.randn((fused.STEPS,) + tuple(x.shape), generator=g, device=e.device, dtype=x.dtype)
    return (mag.targets, *mag.fused_args(), z), (mag.x.clone(), mag.h.clone(), run.offset, run.state(), run.rules)


def per_step(fn, fixed: tuple[Any, ...], carried: tuple[Any, ...], calls: int, device: str,
             graphs: bool = False) -> tuple[float, float]:
    """Seconds per step of ``calls`` windows of ``fn`` chained as the mapper chains them
    (each window starts where the last ended), after a first call; and that first call's
    seconds. ``graphs``: the calls are CUDA-graph replays, whose outputs the next replay
    overwrites (what is carried over is copied out first)."""
    smooth = 1.0 / _ad_config(1).average
    rules = carried[-1]
    step = torch.zeros((1,), dtype=torch.int64, device=device)  # (as the mapper passes it)

    def run(x, h, offset, state):
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()
        _, x, h, offset, state, _ = fn(x, h, *fixed, offset, smooth, state, step, *rules)
        if graphs:
            return x.clone(), h.clone(), offset.clone(), tuple(t.clone() for t in state)
        return x, h, offset, state

    t = time.perf_counter()
    now = run(*carried[:-1])
    _sync(device)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(calls):
        now = run(*now)
    _sync(device)
    return (time.perf_counter() - t) / (calls * fused.STEPS), first


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--windows", type=int, default=40, help="windows per timing [default: 40]")
    options.add_argument("--batches", default="128,1024")
    args = options.parse_args()
    which = chosen(args)
    print("| energy | batch | energy+gradient (ms) | compiled window (ms per step) | compiled window, CUDA graphs "
          "| compiled window, C++ wrapper | the mapper's compiled AD step | first calls: compiled / graphs / C++ "
          "wrapper (s) |")
    print("|---|---|---|---|---|---|---|---|")
    made = energies(args.device, compile=True, which=which)
    for name, e in energies(args.device, which=which).items():
        # Every energy's window is the same Python function (a closure over another
        # energy): without a reset, torch would count each energy's compilations against
        # the same function's recompile limit and step the later energies eagerly.
        torch._dynamo.reset()
        use_cpu_threads(e.fn, e.device)
        window = _fused_window(True)(fused.traceable_value_and_grad(e))
        variants = {"compiled": torch.compile(window, dynamic=True),
                    "graphs": torch.compile(window, dynamic=True, mode="reduce-overhead"),
                    "C++ wrapper": torch.compile(window, dynamic=True, options={"cpp_wrapper": True})}
        for p in (int(v) for v in args.batches.split(",")):
            with e.frozen():
                fixed, carried = window_args(e, p)
                bare = statistics.median(bare_call(e, carried[0], args.windows * fused.STEPS)
                                         for _ in range(args.repeats))
                cells, firsts = [], []
                for key, fn in variants.items():
                    runs = [per_step(fn, fixed, carried, args.windows, args.device, graphs=key == "graphs")
                            for _ in range(args.repeats + 1)]
                    firsts.append(runs[0][1])
                    cells.append(statistics.median(r[0] for r in runs[1:]))
            c = made[name]
            x = c.uniform_noise(p, generator=torch.Generator(device=c.device).manual_seed(p))
            b = c.uniform_noise(p, generator=torch.Generator(device=c.device).manual_seed(p + 1))
            cells.append(statistics.median(ad_step(c, x, b, args.windows * fused.STEPS) for _ in range(args.repeats)))
            shown = " | ".join(f"{v * 1e3:.3f} ({v / bare:.2f}x)" for v in cells)
            failed = f" (the mapper's compiling failed: {fused.failure(c)})" if fused.failure(c) else ""
            print(f"| {name} | {p} | {bare * 1e3:.3f} | {shown} | {' / '.join(f'{v:.1f}' for v in firsts)}{failed} |",
                  flush=True)


if __name__ == "__main__":
    main()
