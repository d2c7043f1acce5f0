"""The lowest curvature of an energy at many points (Lanczos on Hessian-vector products,
``landscape.mapping.settings.lowest_curvature``), as the settling of every quenched point
and the descent across a barrier's top run it.

Run: ``.venv/bin/python benchmarks/curvature.py [--points 512] [--repeats 5] [--against FILE]``.

The energy: a 64-D MLP (64 -> 256 -> 256 -> 1, SiLU) at uniform points in [-1, 1]^64.
Printed: the fastest of ``--repeats`` calls, and the time of one bare energy-and-gradient
call at the same points (the ratio is what a Lanczos of 12 products costs in gradients).
``--against FILE`` also times the ``lowest_curvature`` of another ``settings.py`` (e.g.
``git show REV:landscape/mapping/settings.py > old.py``) on the same points, and checks
that both give the same curvatures.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.energy import Energy  # noqa: E402
from landscape.mapping import settings as current  # noqa: E402


def fastest(fn, repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--against", type=Path, help="another settings.py to time on the same points")
    args = parser.parse_args()
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.SiLU(), torch.nn.Linear(256, 256), torch.nn.SiLU(),
                              torch.nn.Linear(256, 1))
    energy = Energy(lambda x: net(x.flatten(1)).squeeze(1), shape=(1, 8, 8), data_range=(-1.0, 1.0))
    x = torch.rand(args.points, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    vg = energy.value_and_grad_fn()
    bare = fastest(lambda: vg(x), args.repeats)
    modules = [("this code", current)]
    if args.against is not None:
        spec = importlib.util.spec_from_file_location("other_settings", args.against)
        other = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = other  # (its dataclasses look their module up)
        spec.loader.exec_module(other)
        modules.append((str(args.against), other))
    results = {}
    for name, module in modules:
        seconds = fastest(lambda: module.lowest_curvature(energy, x), args.repeats)
        results[name] = module.lowest_curvature(energy, x)[0]
        print(f"{name}: lowest_curvature of {args.points} points {seconds:.3f} s = {seconds / bare:.1f} energy-and-"
              f"gradient calls ({bare * 1000:.1f} ms each)")
    if len(results) == 2:
        a, b = results.values()
        print(f"same curvatures: {torch.equal(a, b)} (largest difference {float((a - b).abs().max()):.3g})")


if __name__ == "__main__":
    main()
