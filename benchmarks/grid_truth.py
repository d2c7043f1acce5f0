"""A 2-D map's tree against the minimax tree of a fine grid: ground truth for models.

Run: ``.venv/bin/python benchmarks/grid_truth.py rings.pt rings.h5 [more maps of it] [--grid 2000]``.

For an energy of two coordinates the lowest barrier between two points can be found by
brute force: the energy on an ``N x N`` grid over the map's box, and Kruskal's algorithm
over the grid's edges (each weighted by the higher of its two cells) joins the cells of
two minima at their minimax height. Per merge of each map's tree (minima ``i``, ``j`` at
height ``h``) it prints ``h`` minus the grid's minimax height between ``i`` and ``j``, as
a share of the tree's height, and lists the merges that differ by more than 1 %.

The grid is an approximation too: a path along grid edges runs a little above the
continuous one (its median excess halves as N doubles), and a ridge narrower than a
cell can be missed. A map's merge far *below* the grid's means the map rests on a path
that does not exist; far above, that it missed a lower pass.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.io.mapfile import read_map  # noqa: E402


def grid_energy(energy, n: int) -> tuple[np.ndarray, float, float]:
    low, high = energy.data_range
    axis = torch.linspace(low, high, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    points = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).to(energy.device, energy.dtype)
    with torch.no_grad():
        u = torch.cat([energy(c) for c in points.split(65536)]).double().cpu().numpy()
    return u, float(low), float(high)


def minimax_heights(u: np.ndarray, n: int, low: float, high: float, x: np.ndarray,
                    minima_energy: np.ndarray, pairs: list[tuple[int, int]]) -> dict[tuple[int, int], float]:
    """The grid's minimax height between the minima of each pair."""
    cell_of = lambda p: (int(np.clip(np.rint((p[1] - low) / (high - low) * (n - 1)), 0, n - 1)) * n  # noqa: E731
                         + int(np.clip(np.rint((p[0] - low) / (high - low) * (n - 1)), 0, n - 1)))
    cells = [cell_of(p) for p in x]
    idx = np.arange(n * n).reshape(n, n)
    a = np.concatenate([idx[:, :-1].ravel(), idx[:-1, :].ravel()])
    b = np.concatenate([idx[:, 1:].ravel(), idx[1:, :].ravel()])
    w = np.maximum(u[a], u[b])
    parent = np.arange(n * n)
    minima_in = np.zeros(n * n, dtype=np.int64)
    for c in cells:
        minima_in[c] += 1

    def find(v: int) -> int:
        root = v
        while parent[root] != root:
            root = parent[root]
        while parent[v] != root:
            parent[v], v = root, parent[v]
        return root

    out = {(i, j): max(minima_energy[i], minima_energy[j]) for i, j in pairs if cells[i] == cells[j]}
    left = [p for p in pairs if p not in out]
    for e in np.argsort(w, kind="stable"):
        ra, rb = find(int(a[e])), find(int(b[e]))
        if ra == rb:
            continue
        parent[ra] = rb
        joined_minima = minima_in[ra] and minima_in[rb]
        minima_in[rb] += minima_in[ra]
        if joined_minima:
            still = []
            for i, j in left:
                if find(cells[i]) == find(cells[j]):
                    out[(i, j)] = float(w[e])
                else:
                    still.append((i, j))
            left = still
            if not left:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="the checkpoint the maps are of")
    parser.add_argument("maps", nargs="+", type=Path)
    parser.add_argument("--grid", type=int, default=2000, help="cells per side [2000]")
    args = parser.parse_args()
    from landscape.train.energies import resolve_energy

    energy = resolve_energy(args.checkpoint, device="cpu").energy
    if energy.dim != 2:
        raise SystemExit(f"the grid check needs an energy of two coordinates, not {energy.dim}")
    contents = [read_map(p) for p in args.maps]
    t0 = time.perf_counter()
    u, low, high = grid_energy(energy, args.grid)
    pairs = sorted({(int(i), int(j)) for c in contents for i, j in c.tree.edge.tolist()})
    truth = minimax_heights(u, args.grid, low, high, contents[0].minima_x, contents[0].minima_energy, pairs)
    print(f"grid {args.grid} x {args.grid} over [{low:g}, {high:g}]^2: {time.perf_counter() - t0:.0f} s")
    for path, c in zip(args.maps, contents):
        if not np.array_equal(c.minima_x, contents[0].minima_x):
            print(f"{path}: other minima than {args.maps[0]} (the check compares maps of the same minima)")
            continue
        e0 = float(c.minima_energy.min())
        top = max(truth.values()) - e0
        rows = [(int(i), int(j), float(h), truth[(int(i), int(j))]) for (i, j), h in zip(c.tree.edge.tolist(),
                                                                                         c.tree.heights)]
        d = np.array([(h - t) / top * 100 for _, _, h, t in rows])
        off = [f"({i}, {j}) {h - e0:.3f} vs {t - e0:.3f}" for (i, j, h, t), dd in zip(rows, d) if abs(dd) > 1]
        print(f"{path}: {len(rows)} merges, top {max(h for *_, h, _ in rows) - e0:.4f} (grid {top:.4f}); "
              f"map - grid, % of the grid's top: min {d.min():+.2f}, median {np.median(d):+.3f}, max {d.max():+.2f}; "
              f"off by more than 1 %: {len(off)}" + (f" ({'; '.join(off)})" if off else ""))


if __name__ == "__main__":
    from landscape.errors import LandscapeError

    try:
        main()
    except LandscapeError as err:
        raise SystemExit(f"error: {err}") from None
