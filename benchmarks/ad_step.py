"""Attraction-diffusion step time against a bare energy-and-gradient call at the same batch.

    .venv/bin/python benchmarks/ad_step.py [--device cuda] [--repeats 5]

For each energy and batch size: the median over ``--repeats`` of (a) one call of the
energy's value-and-gradient function (parameters frozen, the function the mapper uses),
(b) one step of the library's plain Langevin sampler on the same batch (the energy, the
Gaussian noise and the update: the floor any Langevin-based step has) and (c) one step of
:func:`landscape.mapping.ad.attraction_diffusion` on the same batch, with every trial kept
running (no target within reach, no patience limit) and paths recorded as the mapper
does. The ratio c / a is the cost of the noise, the magnetization and the per-trial
bookkeeping (peak, distance, arrival, stopping, path) on top of the energy; c / b what
attraction-diffusion adds to a plain Langevin step. With ``--compile``, also (d) the same
AD step with the energy compiled (``Energy(compile=True)``, :mod:`landscape.fused`: the
energy's forward and backward pass, the pull and the update of several steps fused into
one call), timed after a first call that compiles it (that time is printed too).

It also counts the tensor operations each of (a), (b) and (c) issues per step (torch's
profiler: aten operations called from Python, views and dtype casts left out), the same
on every machine: on a GPU each is at least one kernel launch, and a small batch there is
bound by launches, not arithmetic.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from landscape import Energy, fused  # noqa: E402
from landscape.energy import use_cpu_threads  # noqa: E402
from landscape.mapping.ad import ADConfig, attraction_diffusion  # noqa: E402
from landscape.sampling.langevin import init, langevin_move  # noqa: E402
from landscape.potentials import mueller_brown  # noqa: E402
from landscape.train.nets import build_model  # noqa: E402


ENERGIES = ("digits", "mueller-brown", "vanilla32")


def energies(device: str, compile: bool = False, which: tuple[str, ...] = ENERGIES[:2]) -> dict[str, Energy]:
    """The benchmark's energies by short name: the digits MLP, Mueller-Brown, and the
    32x32 presets' convolutional network (VanillaNet n_f = 8, one channel)."""
    out = {}
    for name in which:
        torch.manual_seed(0)
        if name == "digits":
            net = build_model("digits", {"hidden": [128, 128]}).to(device).eval()
            out["digits MLP (1x8x8)"] = Energy(net, (1, 8, 8), data_range=(-1.0, 1.0), device=device, compile=compile)
        elif name == "mueller-brown":
            out["Mueller-Brown (2-D, float64)"] = Energy(mueller_brown, (2,), data_range=(-1.5, 2.0), device=device,
                                                         dtype=torch.float64, compile=compile)
        elif name == "vanilla32":
            net = build_model("vanilla", {"n_f": 8, "n_c": 1}).to(device).eval()
            out["VanillaNet n_f = 8 (1x32x32)"] = Energy(net, (1, 32, 32), data_range=(-1.0, 1.0), device=device,
                                                         compile=compile)
        else:
            raise SystemExit(f"unknown energy {name!r}: choose from {', '.join(ENERGIES)}")
    return out


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bare_call(e: Energy, x: torch.Tensor, calls: int) -> float:
    vg = e.value_and_grad_fn()
    with e.frozen():
        for _ in range(10):
            vg(x)
        _sync(str(e.device))
        t = time.perf_counter()
        for _ in range(calls):
            vg(x)
        _sync(str(e.device))
    return (time.perf_counter() - t) / calls


def langevin_step(e: Energy, x: torch.Tensor, calls: int) -> float:
    vg = e.value_and_grad_fn()
    g = torch.Generator(device=e.device).manual_seed(0)
    with e.frozen():
        state = init(x, vg)
        for _ in range(10):
            langevin_move(state, vg, 1e-3, 1.0, g, box=e.data_range)
        _sync(str(e.device))
        t = time.perf_counter()
        for _ in range(calls):
            state = langevin_move(state, vg, 1e-3, 1.0, g, box=e.data_range)
        _sync(str(e.device))
    return (time.perf_counter() - t) / calls


def ad_step(e: Energy, x: torch.Tensor, b: torch.Tensor, steps: int) -> float:
    cfg = _ad_config(steps)
    first = time.perf_counter()
    attraction_diffusion(e, x, b, ADConfig(**{**cfg.__dict__, "max_steps": 20}))
    _sync(str(e.device))
    t = time.perf_counter()
    e.__dict__.setdefault(f"first_call_s_{x.shape[0]}", t - first)  # (the compiling one, if any)
    attraction_diffusion(e, x, b, cfg)
    _sync(str(e.device))
    return (time.perf_counter() - t) / steps


def _ad_config(steps: int) -> ADConfig:
    # T != 1, as the map's settings have it
    return ADConfig(temperature=0.5, alpha=1e-3, eps=1e-3, max_steps=steps, patience=10**9, delta=1e-12)


# views, reshapes, casts and allocations: no arithmetic, no kernel of their own on a GPU
_NOT_COUNTED = {
    "aten::view", "aten::reshape", "aten::_reshape_alias", "aten::_unsafe_view", "aten::as_strided", "aten::expand",
    "aten::select", "aten::slice", "aten::t", "aten::transpose", "aten::permute", "aten::unsqueeze", "aten::squeeze",
    "aten::alias", "aten::detach", "aten::lift_fresh", "aten::resolve_conj", "aten::resolve_neg", "aten::empty",
    "aten::empty_like", "aten::empty_strided", "aten::result_type", "aten::to", "aten::_to_copy", "aten::item",
    "aten::_local_scalar_dense", "aten::is_nonzero",
}


def _operations(run) -> int:
    """Tensor operations ``run()`` issues from Python (nested ones not counted again)."""
    from torch.profiler import profile

    with profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        run()
    return sum(1 for ev in prof.events() if ev.name.startswith("aten::") and ev.name not in _NOT_COUNTED
               and (ev.cpu_parent is None or not ev.cpu_parent.name.startswith("aten::")))


def operations_per_step(e: Energy, x: torch.Tensor, b: torch.Tensor) -> tuple[float, float, float]:
    """Operations per step of the bare call, the Langevin step and the AD step (from the
    difference between 160 and 320 steps, so set-up and bookkeeping once per run cancel)."""
    vg = e.value_and_grad_fn()
    g = torch.Generator(device=e.device).manual_seed(0)

    def bare(n: int) -> None:
        for _ in range(n):
            vg(x)

    def plain(n: int) -> None:
        state = init(x, vg)
        for _ in range(n):
            state = langevin_move(state, vg, 1e-3, 1.0, g, box=e.data_range)

    def ad(n: int) -> None:
        attraction_diffusion(e, x, b, _ad_config(n), g)

    with e.frozen():
        return tuple((_operations(lambda: f(320)) - _operations(lambda: f(160))) / 160 for f in (bare, plain, ad))


def compiled_cells(e: Energy, fast: float, bare: float, first: float) -> str:
    """The compiled columns of a row: seconds per step (or iteration), its ratio to the
    bare call's, and the first call's seconds; or why compiling failed."""
    why = fused.failure(e)
    return f" {fast * 1e3:.3f} | {fast / bare:.2f} | {first:.1f} |" if why is None else f" failed: {why} | | |"


def parser(doc: str) -> argparse.ArgumentParser:
    """The options the step benchmarks share (``--device``, ``--repeats``, ``--energies``:
    :func:`chosen`), with the first paragraph of ``doc`` as the description."""
    out = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    out.add_argument("--device", default="cpu")
    out.add_argument("--repeats", type=int, default=5)
    out.add_argument("--energies", default="digits,mueller-brown",
                     help=f"comma-separated, from {', '.join(ENERGIES)} [default: digits,mueller-brown]")
    return out


def chosen(args: argparse.Namespace) -> tuple[str, ...]:
    """The energies ``--energies`` names (:func:`energies` takes them)."""
    return tuple(v.strip() for v in args.energies.split(",") if v.strip())


def main() -> None:
    options = parser(__doc__)
    options.add_argument("--steps", type=int, default=300)
    options.add_argument("--batches", default="128,1024")
    options.add_argument("--compile", action="store_true", help="also the AD step of the energy compiled")
    args = options.parse_args()
    which = chosen(args)
    extra = " compiled AD step (ms) | compiled / energy+gradient | first compiled call (s) |" if args.compile else ""
    print("| energy | batch | energy+gradient (ms) | Langevin step (ms) | AD step (ms) | AD / energy+gradient "
          "| AD / Langevin | operations per step: energy+gradient / Langevin / AD |" + extra)
    print("|---|---|---|---|---|---|---|---|" + "---|" * (3 if args.compile else 0))
    compiled = energies(args.device, compile=True, which=which) if args.compile else {}
    for name, e in energies(args.device, which=which).items():
        use_cpu_threads(e.fn, e.device)
        for p in (int(v) for v in args.batches.split(",")):
            g = torch.Generator(device=e.device).manual_seed(p)
            x = e.uniform_noise(p, generator=g)
            b = e.uniform_noise(p, generator=g)
            bare = statistics.median(bare_call(e, x, args.steps) for _ in range(args.repeats))
            plain = statistics.median(langevin_step(e, x, args.steps) for _ in range(args.repeats))
            step = statistics.median(ad_step(e, x, b, args.steps) for _ in range(args.repeats))
            ops = " / ".join(f"{v:.1f}" for v in operations_per_step(e, x, b))
            row = (f"| {name} | {p} | {bare * 1e3:.3f} | {plain * 1e3:.3f} | {step * 1e3:.3f} | {step / bare:.2f} "
                   f"| {step / plain:.2f} | {ops} |")
            if args.compile:
                c = compiled[name]
                fast = statistics.median(ad_step(c, x, b, args.steps) for _ in range(args.repeats))
                row += compiled_cells(c, fast, bare, c.__dict__.get(f"first_call_s_{p}", math.nan))
            print(row, flush=True)


if __name__ == "__main__":
    main()
