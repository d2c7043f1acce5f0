"""Writing and reading large maps: time and file size against the number of minima.

Run: ``.venv/bin/python benchmarks/map_file.py [--sizes 1000,10000,100000] [--pairs-per-minimum 10]``.
Prints a markdown table and writes ``benchmarks/map-file.json``.

A synthetic map per size ``N``: minima of shape ``(--dim,)`` at random, random energies, ``k``
pairs per minimum (``N k`` pairs) with random barriers above both ends, the tree over
minima built from them (:func:`landscape.mapping.tree.minimax_tree`), a five-level ladder of
partitions. Every per-item array is a dataset (chunked and compressed where large), so
nothing is limited by HDF5's attribute size (about 8,000 numbers). Reported: the time of
:func:`~landscape.io.mapfile.write_map` and :func:`~landscape.io.mapfile.read_map` (which
validates every index), the file size, and the size of the raw arrays.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.io.mapfile import read_map, write_map  # noqa: E402
from landscape.io.records import NEIGHBOUR, MapContent, PairTable, Partition  # noqa: E402
from landscape.mapping.tree import minimax_tree  # noqa: E402


def synthetic(n: int, k: int, dim: int, seed: int = 0) -> MapContent:
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, dim)).astype(np.float32)
    energy = np.sort(rng.normal(0.0, 1.0, n))
    i = np.repeat(np.arange(n), k)
    j = (i + rng.integers(1, n, i.size)) % n
    pairs = np.unique(np.sort(np.stack([i, j], 1), axis=1), axis=0)
    floor = np.maximum(energy[pairs[:, 0]], energy[pairs[:, 1]])
    estimate = floor + rng.exponential(1.0, pairs.shape[0])
    refined = estimate - rng.uniform(0, 0.5, pairs.shape[0]) * (estimate - floor)
    table = PairTable(pairs, estimate, refined, np.full(pairs.shape[0], np.nan),
                      np.full(pairs.shape[0], NEIGHBOUR, dtype=np.uint8))
    tree = minimax_tree(energy, table.pairs, table.best(energy), refined=table.is_refined(energy))
    levels = []
    for b in (n, n // 4, n // 16, n // 64, 1):
        b = max(b, 1)
        basin = np.minimum(np.arange(n) * b // n, b - 1)  # minima sorted by energy: basin k's lowest is first
        reps = np.searchsorted(basin, np.arange(b))
        levels.append(Partition(alpha=float(n / b), basin=basin, representative=reps, energy=energy[reps],
                                multiplier=float(n / b)))
    return MapContent(minima_x=x, minima_energy=energy, minima_hits=np.ones(n, dtype=np.int64), levels=levels, main=1,
                      barriers=table, tree=tree, attrs={"minima": {"data_range": [-1.0, 1.0]}})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--pairs-per-minimum", type=int, default=10)
    parser.add_argument("--dim", type=int, default=4)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "map-file.json"))
    args = parser.parse_args()
    rows = []
    for n in (int(v) for v in args.sizes.split(",") if v):
        content = synthetic(n, args.pairs_per_minimum, args.dim)
        raw = sum(a.nbytes for a in (content.minima_x, content.minima_energy, content.barriers.pairs,
                                     content.barriers.estimate, content.barriers.refined, content.tree.linkage))
        raw += sum(p.basin.nbytes for p in content.levels)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "big.h5"
            t0 = time.perf_counter()
            write_map(path, content, config={}, source={"kind": "synthetic"}, tool_version="bench")
            t_write = time.perf_counter() - t0
            t0 = time.perf_counter()
            back = read_map(path)
            t_read = time.perf_counter() - t0
            assert back.n_minima == n and len(back.barriers) == len(content.barriers)
            size = path.stat().st_size
        rows.append({"minima": n, "pairs": len(content.barriers), "write_seconds": t_write, "read_seconds": t_read,
                     "file_bytes": size, "raw_bytes": raw})
        print(f"  {n} minima done", file=sys.stderr)
    print("| minima | pairs | write | read (validated) | file size | raw arrays |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['minima']:,} | {r['pairs']:,} | {r['write_seconds']:.2f} s | {r['read_seconds']:.2f} s | "
              f"{r['file_bytes'] / 1e6:.1f} MB | {r['raw_bytes'] / 1e6:.1f} MB |")
    Path(args.out).write_text(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "command": "benchmarks/map_file.py " + " ".join(sys.argv[1:]), "rows": rows,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
