"""Basins and saddle points on energies with flat ground or a stiff direction, against
their exact answers, each scaled by 0.01, 1 and 100.

Run: ``.venv/bin/python benchmarks/flat_and_stiff.py`` (about two minutes on 2 cores).

- Gaussian wells on a common plateau (two of depths 1 and 0.8; three of 1, 0.8 and 0.6):
  quenches stop all over the exponentially flat plateau. Exact: one basin per well at the
  weak pulls, and no saddle point among the plateau's flat merges.
- A valley 1e4 times stiffer across than along, ``(x^2 - 1)^2 + 1e4 (y^2 - 1)^2``: minima
  at (+-1, +-1), saddles 1 high at (0, +-1) and 1e4 high at (+-1, 0). Exact: 4 basins at
  the weak pulls, every tree merge at a saddle point.
- The unit circle, every point a minimum (U = 0), beside a well of -1.5 at (2.5, 0), a
  smooth minimum of the two. Exact: 2 basins below the pull that crosses the ring-well
  pass (1.4935 high), every merge along the ring flat, the pass a saddle point.
- A flat floor, ``relu(|x| - 1)^2``: every point of the unit disc a minimum. Exact: one
  basin at every pull, no barrier and so no saddle point.
- A flat disc floor (radius 0.5 at (-2, 0)) beside a tilted double well at x = 1 and 3,
  a smooth minimum of the two (its second derivative NaN on the floor in torch, where the
  double well's term underflows). Exact: 3 basins at the weak pulls.
- Three narrow Gaussian wells (depths 1, 0.7, 0.5, width 0.15) on a plateau. Exact: 3
  basins at the weak pulls; each barrier is a well's whole depth, the lowest 0.5.

Prints one row per energy and scale: minima, basins per pull, how many minima each pull
moved to where their basin's lowest minimum at the weaker pull went (so that the levels
nest: many would mean the pulls' assignments disagree), the main level's basins against
the exact count, the tree's merges, the flat ones, and the saddle points among
the merges that are not flat (and among the flat ones, where there should be none).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape import Energy, MapConfig, build_map  # noqa: E402


def two_wells(x: torch.Tensor) -> torch.Tensor:
    a, b = x[:, 0], x[:, 1]
    return -torch.exp(-((a + 4) ** 2 + b ** 2)) - 0.8 * torch.exp(-((a - 4) ** 2 + b ** 2))


def three_wells(x: torch.Tensor) -> torch.Tensor:
    c = torch.tensor([[-3.0, 0.0], [3.0, 0.0], [0.0, 4.0]], dtype=x.dtype)
    d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    return -(torch.tensor([1.0, 0.8, 0.6], dtype=x.dtype) * torch.exp(-d)).sum(1)


def stiff(x: torch.Tensor) -> torch.Tensor:
    return (x[:, 0] ** 2 - 1) ** 2 + 1e4 * (x[:, 1] ** 2 - 1) ** 2


def ring_well(x: torch.Tensor) -> torch.Tensor:
    ring = ((x ** 2).sum(1) - 1.0) ** 2
    well = 3.0 * ((x[:, 0] - 2.5) ** 2 + x[:, 1] ** 2) - 1.5
    return -0.05 * torch.logaddexp(-ring / 0.05, -well / 0.05)


def floor(x: torch.Tensor) -> torch.Tensor:
    return torch.relu(torch.linalg.vector_norm(x, dim=1) - 1.0) ** 2


def floor_and_double_well(x: torch.Tensor) -> torch.Tensor:
    disc = torch.relu(torch.linalg.vector_norm(x - torch.tensor([-2.0, 0.0], dtype=x.dtype), dim=1) - 0.5) ** 2
    u = x[:, 0] - 2.0
    double = (u ** 2 - 1.0) ** 2 + 2.0 * x[:, 1] ** 2 - 0.5 + 0.2 * u
    return -0.05 * torch.logaddexp(-disc / 0.05, -double / 0.05)


def narrow_wells(x: torch.Tensor) -> torch.Tensor:
    c = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.6]], dtype=x.dtype)
    d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    return -(torch.tensor([1.0, 0.7, 0.5], dtype=x.dtype) * torch.exp(-d / 0.15)).sum(1)


#: name, energy, box (low, high), exact basins at the main level, chains
CASES = [("two Gaussian wells on a plateau", two_wells, (-6.0, 6.0), 2, 256),
         ("three Gaussian wells on a plateau", three_wells, (-6.0, 6.0), 3, 256),
         ("valley 1e4 stiffer across", stiff, (-2.0, 2.0), 4, 64),
         ("ring of equal minima beside a well", ring_well, (-3.0, 3.0), 2, 128),
         ("flat floor", floor, (-2.0, 2.0), 1, 256),
         ("flat floor beside a double well", floor_and_double_well, (-3.0, 4.0), 3, 128),
         ("three narrow Gaussian wells on a plateau", narrow_wells, (-4.0, 4.0), 3, 128)]


def main() -> None:
    t_all = time.perf_counter()
    print("| energy | scale | minima | basins per pull | moved to nest | main level: found / exact | merges | flat "
          "| saddle points: not flat / flat | time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, fn, box, exact, chains in CASES:
        for c in (0.01, 1.0, 100.0):
            t0 = time.perf_counter()
            energy = Energy(lambda x, c=c, fn=fn: c * fn(x), shape=(2,), data_range=box,
                            dtype=torch.float64)
            m = build_map(energy, MapConfig(chains=chains, rounds=1, grid=0)).content
            tree = m.tree
            flat = tree.flat()[tree.connected]
            at_saddle = m.barriers.saddle_point[tree.pair[tree.connected]]
            # (levels nest by construction: each minimum goes where its basin's lowest minimum
            # at the weaker pull went; how many minima that moved, per pull)
            joined = ", ".join(str(p.attrs.get("nested", 0)) for p in m.levels)
            print(f"| {name} | {c:g} | {m.n_minima} | {', '.join(str(p.n_basins) for p in m.levels)} "
                  f"| {joined} | {m.levels[m.main].n_basins} / {exact} | {tree.n_leaves - 1} | {int(flat.sum())} "
                  f"| {int(at_saddle[~flat].sum())} of {int((~flat).sum())} / {int(at_saddle[flat].sum())} "
                  f"| {time.perf_counter() - t0:.1f} s |", flush=True)
    print(f"\n{time.perf_counter() - t_all:.0f} s in all")


if __name__ == "__main__":
    main()
