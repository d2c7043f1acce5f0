"""The quench alone: steps, time, convergence and where chains end, on energies whose
minima are known, and on checkpoints.

Run: ``.venv/bin/python benchmarks/quench.py [--checkpoint a.pt ...] [--against old_minima.py]``.

Each energy's starts (uniform in its box) are quenched at the map's default tolerance
(1e-8 of the median gradient at the starts, ``landscape.mapping.settings``): a stiff
valley, ``(x0^2 - 1)^2 + 1e4 x1^2`` (2 minima), the same times 1e-20 (gradients below
float64's rounding unit: the quench must take the same moves), Mueller-Brown (3 minima),
three narrow Gaussian wells on a plateau (``flat_and_stiff.py``'s: starts on the plateau
stop where they are, those in a well's far tail must reach it), and checkpoints'
energies (float32: they stop at their precision first). Printed
per energy: iterations, seconds, chains converged, distinct end points (rounded to 0.01
in the first 3 coordinates), mean end energy, and for the 2-D energies the share of chains
that end in the minimum the gradient flow (small explicit Euler steps) takes them to.

``--against FILE`` also runs the ``quench`` of another ``landscape/mapping/minima.py`` (e.g.
``git show REV:landscape/mapping/minima.py > old.py``) on the same starts, for a before/after.
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
from landscape.mapping import minima as current  # noqa: E402
from landscape.mapping.settings import GRAD_TOL_FACTOR  # noqa: E402
from landscape.potentials import MUELLER_BROWN_MINIMA, mueller_brown  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))  # (this script's own folder, however it is run)
from flat_and_stiff import narrow_wells  # noqa: E402


def stiff_valley(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] ** 2 - 1) ** 2 + 1e4 * x[:, 1] ** 2


def flow_ends(energy: Energy, x: torch.Tensor, steps: int = 20000) -> torch.Tensor:
    """The gradient flow's end points: on the stiff valley the minimum on the start's side
    (the flow keeps the sign of x0); else explicit Euler steps about 1/10 of the stable limit."""
    if energy.name.startswith("stiff valley"):
        return torch.stack([torch.sign(x[:, 0]), torch.zeros_like(x[:, 0])], dim=1)
    vg = energy.value_and_grad_fn()
    low, high = energy.data_range
    h = 2e-5
    for _ in range(steps):
        _, g = vg(x)
        x = (x - h * g).clamp(low, high)
    return x


def label(x: torch.Tensor, minima: torch.Tensor) -> torch.Tensor:
    d, i = torch.cdist(x, minima).min(1)
    return torch.where(d < 0.05, i, -1)


def run(name: str, quench, energy: Energy, starts: torch.Tensor, tol: float, reference: torch.Tensor | None,
        minima: torch.Tensor | None) -> None:
    t0 = time.perf_counter()
    q = quench(energy, starts, max_steps=2000, grad_tol=tol, box=energy.data_range)
    seconds = time.perf_counter() - t0
    n = starts.shape[0]
    flat = q.x.reshape(n, -1)[:, :3]
    distinct = len({tuple(round(v, 2) for v in row) for row in flat.tolist()})
    line = (f"| {energy.name} | {name} | {q.steps} | {seconds:.2f} s | {int(q.converged.sum())} / {n} | {distinct} | "
            f"{float(q.energy.mean()):.5g} |")
    if reference is not None and minima is not None:
        same = (label(q.x, minima) == label(reference, minima)).double().mean()
        line += f" {100 * float(same):.1f} % |"
    else:
        line += " - |"
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="also quench this checkpoint's energy")
    parser.add_argument("--against", help="another minima.py whose quench to run on the same starts")
    parser.add_argument("--chains", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    quenches = [("this version", current.quench)]
    if args.against:
        spec = importlib.util.spec_from_file_location("other_minima", args.against)
        other = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(other)
        quenches.append((Path(args.against).name, other.quench))
    print("| energy | quench | iterations | time | converged | distinct ends | mean end energy | "
          "ends as the gradient flow's |")
    print("|---|---|---|---|---|---|---|---|")
    valley = torch.tensor([[-1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    cases = [
        (Energy(stiff_valley, (2,), data_range=(-2.0, 2.0), dtype=torch.float64, name="stiff valley"), valley),
        (Energy(lambda x: 1e-20 * stiff_valley(x), (2,), data_range=(-2.0, 2.0), dtype=torch.float64,
                name="stiff valley x 1e-20"), valley),
        (Energy(mueller_brown, (2,), data_range=(-1.6, 2.1), dtype=torch.float64, name="Mueller-Brown"),
         torch.tensor(MUELLER_BROWN_MINIMA, dtype=torch.float64)),
        (Energy(narrow_wells, (2,), data_range=(-4.0, 4.0), dtype=torch.float64,
                name="three narrow wells on a plateau"), None),
    ]
    for energy, minima in cases:
        starts = energy.uniform_noise(args.chains, torch.Generator().manual_seed(0))
        _, g = energy.value_and_grad_fn()(starts)
        tol = GRAD_TOL_FACTOR * float(torch.linalg.vector_norm(g, dim=1).median())
        # (on a plateau the flow, at steps sized for the wells, does not move: no reference)
        reference = flow_ends(energy, starts.clone()) if minima is not None else None
        for name, quench in quenches:
            run(name, quench, energy, starts, tol, reference, minima)
    for path in args.checkpoint:
        from landscape.train.checkpoint import energy_from_checkpoint

        energy, _ = energy_from_checkpoint(path)
        energy.name = Path(path).name
        starts = energy.uniform_noise(min(args.chains, 64), torch.Generator().manual_seed(0))
        with energy.frozen():
            _, g = energy.value_and_grad_fn()(starts)
        tol = GRAD_TOL_FACTOR * float(torch.linalg.vector_norm(g.reshape(g.shape[0], -1), dim=1).median())
        for name, quench in quenches:
            run(name, quench, energy, starts, tol, None, None)


if __name__ == "__main__":
    main()
