"""The mapper against energies whose landscape is known exactly.

Run: ``.venv/bin/python benchmarks/validate_map.py [--dims 3,4,5,6] [--threads 1]``.
Prints a markdown table and writes ``benchmarks/validate-map.json``.

For each potential, ``build_map`` runs the whole pipeline (exploration chains, quench,
attraction-diffusion, minimax tree, string-method refinement) and its answer is compared
with the exact one:

- minima found / present (a minimum counts as found when a map minimum lies within 1e-3
  of it);
- merge order: the tree's merges (which basins join, in which order) against the exact
  minimax tree's;
- barrier error per merge, relative to the barrier's height (the true saddle energy minus
  the energy of the higher side's lowest minimum), for the attraction-diffusion estimates
  and for the refined ones.

Potentials (``landscape.potentials``): ``tilted_wells`` in D dimensions (2^D minima, the
exact tree is the minimax tree over the hypercube's index-1 saddles) and Mueller-Brown
(3 minima, saddles known to 4 decimals).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.ad import ADConfig
from landscape.energy import Energy
from landscape.mapper import MapConfig, build_map
from landscape.potentials import (
    MUELLER_BROWN_MINIMA,
    MUELLER_BROWN_MINIMA_ENERGY,
    MUELLER_BROWN_SADDLE_ENERGY,
    mueller_brown,
    tilted_wells,
    tilted_wells_exact,
)
from landscape.tree import minimax_tree


def merge_sets(linkage: np.ndarray, n: int) -> list[frozenset]:
    members = {i: frozenset([i]) for i in range(n)}
    out = []
    for k, (a, b, _, _) in enumerate(linkage):
        members[n + k] = members[int(a)] | members[int(b)]
        out.append(members[n + k])
    return out


def higher_side_floor(linkage: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Per merge, the energy of the lowest basin of the side whose lowest basin is higher."""
    n = len(energy)
    low = {i: float(energy[i]) for i in range(n)}
    out = []
    for k, (a, b, _, _) in enumerate(linkage):
        la, lb = low[int(a)], low[int(b)]
        out.append(max(la, lb))
        low[n + k] = min(la, lb)
    return np.array(out)


def compare(name: str, content, exact_x, exact_energy, exact_linkage, seconds: float) -> dict:
    found_x = content.minima_x.reshape(content.n_minima, -1).astype(np.float64)
    d = np.linalg.norm(exact_x[:, None, :] - found_x[None, :, :], axis=2)
    found = int((d.min(1) < 1e-3).sum())
    row = {"potential": name, "minima_present": len(exact_x), "minima_found": found,
           "map_minima": content.n_minima, "basins": content.n_basins, "seconds": seconds}
    n = len(exact_x)
    if content.n_basins != n or found != n:
        row["merge_order"] = "n/a (basins differ from minima)"
        return row
    # Map basins are sorted by energy, like the exact minima: basin i <-> minimum i.
    ad_tree = minimax_tree(content.basin_energy, content.barrier_pairs, content.barrier_energy).linkage
    truth = exact_linkage[:, 2]
    height = truth - higher_side_floor(exact_linkage, exact_energy)
    row["merge_order_ad"] = "right" if merge_sets(ad_tree, n) == merge_sets(exact_linkage, n) else "wrong"
    row["merge_order"] = "right" if merge_sets(content.linkage, n) == merge_sets(exact_linkage, n) else "wrong"
    rel_ad = (ad_tree[:, 2] - truth) / height
    rel_ref = (content.linkage[:, 2] - truth) / height
    row.update({
        "ad_rel_error_median": float(np.median(np.abs(rel_ad))),
        "ad_rel_error_max": float(np.abs(rel_ad).max()),
        "ad_rel_error_min_signed": float(rel_ad.min()),
        "refined_rel_error_median": float(np.median(np.abs(rel_ref))),
        "refined_rel_error_max": float(np.abs(rel_ref).max()),
        "refined_pairs": int(np.isfinite(content.barrier_refined).sum()) if content.barrier_refined is not None else 0,
        "pairs": content.n_barriers,
    })
    return row


def wells(dim: int, seed: int) -> dict:
    exact = tilted_wells_exact(dim)
    energy = Energy(tilted_wells, shape=(dim,), data_range=(-1.6, 1.6), dtype=torch.float64, name=f"wells{dim}")
    config = MapConfig(
        chains=48 * 2**dim // 4 + 32, temperature=0.05, eps=0.05, steps=150, grad_tol=1e-6, merge_radius=0.05,
        ad=ADConfig(temperature=0.05, alpha=1.0, eps=0.05, max_steps=2000, patience=200, delta=0.2, neighbours=2 * dim),
        grid=0, seed=seed,
    )
    t0 = time.perf_counter()
    content = build_map(energy, config).content
    seconds = time.perf_counter() - t0
    truth = minimax_tree(exact.energy, exact.pairs, exact.saddle).linkage
    return compare(f"tilted wells, D = {dim}", content, exact.minima, exact.energy, truth, seconds)


def mueller_brown_row(seed: int) -> dict:
    energy = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64, name="mb")
    config = MapConfig(
        chains=64, temperature=1.0, eps=0.015, steps=300, grad_tol=1e-4, merge_radius=0.02,
        ad=ADConfig(temperature=1.0, alpha=0.1, max_steps=2000, patience=200, neighbours=4),
        auto=("alpha_unit", "delta", "eps"), grid=0, seed=seed,
    )
    t0 = time.perf_counter()
    content = build_map(energy, config).content
    seconds = time.perf_counter() - t0
    # Exact tree: minima 1 and 2 (by energy) join at the lower saddle, then minimum 0.
    e = np.array(MUELLER_BROWN_MINIMA_ENERGY)
    low, high = sorted(MUELLER_BROWN_SADDLE_ENERGY)
    truth = np.array([[1, 2, low, 2], [0, 3, high, 3]], dtype=np.float64)
    return compare("Mueller-Brown", content, np.array(MUELLER_BROWN_MINIMA), e, truth, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="3,4,5,6", help="dimensions of the tilted wells")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "validate-map.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [mueller_brown_row(args.seed)] + [wells(int(d), args.seed) for d in args.dims.split(",") if d]
    print("| potential | minima found / present | basins | merge order (AD / refined) | AD barrier error, "
          "median / max | refined barrier error, median / max | time |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if "ad_rel_error_max" in r:
            print(f"| {r['potential']} | {r['minima_found']} / {r['minima_present']} | {r['basins']} | "
                  f"{r['merge_order_ad']} / {r['merge_order']} | "
                  f"{100 * r['ad_rel_error_median']:.1f} % / {100 * r['ad_rel_error_max']:.1f} % | "
                  f"{100 * r['refined_rel_error_median']:.4f} % / {100 * r['refined_rel_error_max']:.4f} % | "
                  f"{r['seconds']:.0f} s |")
        else:
            print(f"| {r['potential']} | {r['minima_found']} / {r['minima_present']} | {r['basins']} | "
                  f"{r['merge_order']} | | | {r['seconds']:.0f} s |")
    Path(args.out).write_text(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__},
        "command": "benchmarks/validate_map.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
