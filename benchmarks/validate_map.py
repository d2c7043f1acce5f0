"""The mapper at its DEFAULT settings against energies whose landscape is known exactly.

Run: ``.venv/bin/python benchmarks/validate_map.py [--scales 0.05,1,50] [--dims 3,4,5,6] [--big]``.
Prints markdown tables and writes ``benchmarks/validate-map.json``.

Every map is ``build_map(energy)`` with no settings at all (the defaults a user of
``landscape map`` gets): the temperature, the pull, the steps come from the landscape. The
answer is compared with the exact one:

- minima found / present (a minimum counts as found when a map minimum lies within 1e-3);
- merge order: the tree over minima merges the same groups as the exact minimax tree
  (``right``) or not;
- barrier error per merge, relative to its height (the exact saddle minus the energy of the
  higher side's lowest minimum), worst over merges: for the map's tree (refined saddles),
  and for a tree built from the estimates alone (straight segments and
  attraction-diffusion chains, before refinement);
- scale: each potential is mapped as ``c * U`` for several ``c``; the map is right at
  every scale; and with an offset (``U + b``, ``--offset``) for Mueller-Brown and the 4-D
  wells: an EBM's energy has an arbitrary one.

Potentials (``landscape.potentials``): Mueller-Brown (3 minima, saddles known to 4
decimals) and ``tilted_wells`` in D dimensions (2^D minima; the exact tree is the minimax
tree over the hypercube's index-1 saddles); a stiff valley, ``(x0^2 - 1)^2 + 1e4 x1^2`` (2
minima, barrier 1, its curvatures 2,500 times apart) at scales 0.01, 1, 100. Also, without an
exact tree: the four-well +
MLP energy (barriers about 2; every merge must be finite) and the planted funnel (its probe
must score as a funnel), and a flat floor (every point of a disc a minimum, no barrier):
the same minima and settings at every scale and offset. ``--big`` adds the 10-D tilted wells (1,024 minima) end to end:
time, file size, tree error, and scipy's dendrogram drawn straight from the file.
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
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.energy import Energy  # noqa: E402
from landscape.io.mapfile import read_map, write_map  # noqa: E402
from landscape.mapping.pipeline import build_map  # noqa: E402
from landscape.potentials import (  # noqa: E402
    MUELLER_BROWN_MINIMA,
    MUELLER_BROWN_MINIMA_ENERGY,
    MUELLER_BROWN_SADDLE_ENERGY,
    four_wells_mlp,
    mueller_brown,
    tilted_wells,
    tilted_wells_exact,
)
from landscape.mapping.settings import MapConfig  # noqa: E402
from landscape.mapping.tree import minimax_tree  # noqa: E402


def merge_sets(tree, key_of) -> list[frozenset]:
    n = tree.n_leaves
    members = {i: frozenset([int(key_of[i])]) for i in range(n)}
    out = []
    for k, (a, b, _, _) in enumerate(tree.linkage):
        members[n + k] = members[int(a)] | members[int(b)]
        out.append(members[n + k])
    return out


def compare(name: str, scale: float, content, exact_x, exact_e, exact_pairs, exact_saddle, seconds: float,
            offset: float = 0.0) -> dict:
    found_x = content.minima_x.reshape(content.n_minima, -1).astype(np.float64)
    d = np.linalg.norm(exact_x[:, None, :] - found_x[None, :, :], axis=2)
    found = int((d.min(1) < 1e-3).sum())
    tree = content.tree
    row = {"potential": name, "scale": scale, "offset": offset, "minima_present": len(exact_x), "minima_found": found,
           "map_minima": content.n_minima, "seconds": seconds,
           "refined_merges": int(tree.refined.sum()), "merges": tree.n_leaves - 1,
           "levels": [p.n_basins for p in content.levels]}
    if found != len(exact_x) or content.n_minima != len(exact_x):
        row["merge_order"] = "n/a (minima differ)"
        return row
    exact = minimax_tree(scale * exact_e + offset, exact_pairs, scale * exact_saddle + offset)
    truth = dict(zip(merge_sets(exact, range(len(exact_x))), zip(exact.heights, exact.depth())))
    to_exact = d.argmin(0)

    def errors(t) -> tuple[str, float]:
        got = dict(zip(merge_sets(t, to_exact), t.heights))
        if set(got) != set(truth):
            return "wrong", float("nan")
        return "right", max(abs(h - truth[s][0]) / truth[s][1] for s, h in got.items())

    row["merge_order"], row["max_error"] = errors(tree)
    t = content.barriers
    estimates = minimax_tree(content.minima_energy, t.pairs, np.maximum(t.estimate, t.floor(content.minima_energy)))
    row["merge_order_estimates"], row["max_error_estimates"] = errors(estimates)
    return row


def wells_row(dim: int, scale: float, config: MapConfig, offset: float = 0.0) -> tuple[dict, object]:
    exact = tilted_wells_exact(dim)
    energy = Energy(lambda x: scale * tilted_wells(x) + offset, shape=(dim,), data_range=(-2.0, 2.0),
                    dtype=torch.float64, name=f"wells{dim}")
    t0 = time.perf_counter()
    result = build_map(energy, config)
    seconds = time.perf_counter() - t0
    row = compare(f"tilted wells, D = {dim}", scale, result.content, exact.minima, exact.energy, exact.pairs,
                  exact.saddle, seconds, offset)
    return row, result


def mueller_brown_row(scale: float, config: MapConfig, offset: float = 0.0) -> dict:
    energy = Energy(lambda x: scale * mueller_brown(x) + offset, shape=(2,), data_range=(-1.6, 2.1),
                    dtype=torch.float64)
    t0 = time.perf_counter()
    content = build_map(energy, config).content
    seconds = time.perf_counter() - t0
    # Exact tree: minima 1 and 2 (by energy) join at the lower saddle, then minimum 0.
    pairs = np.array([[1, 2], [0, 2]])
    saddles = np.array(sorted(MUELLER_BROWN_SADDLE_ENERGY))
    return compare("Mueller-Brown", scale, content, np.array(MUELLER_BROWN_MINIMA), np.array(MUELLER_BROWN_MINIMA_ENERGY),
                   pairs, saddles, seconds, offset)


def stiff_valley_row(config: MapConfig, scale: float) -> dict:
    """``(x0^2 - 1)^2 + 1e4 x1^2`` on [-2, 2]^2: two minima at (+-1, 0), one saddle at the
    origin (barrier 1), along a valley 2,500 times softer than across it."""
    energy = Energy(lambda x: scale * ((x[:, 0] ** 2 - 1) ** 2 + 1e4 * x[:, 1] ** 2), shape=(2,),
                    data_range=(-2.0, 2.0), dtype=torch.float64)
    t0 = time.perf_counter()
    content = build_map(energy, config).content
    seconds = time.perf_counter() - t0
    return compare("stiff valley", scale, content, np.array([[-1.0, 0.0], [1.0, 0.0]]), np.zeros(2),
                   np.array([[0, 1]]), np.array([1.0]), seconds)


def flat_floor_row(config: MapConfig, variants: list[tuple[float, float]]) -> dict:
    """A flat floor in a quadratic wall (``c * relu(|x| - 1)^2 + b`` in 2-D: every point of
    the unit disc a minimum, no barrier anywhere) at each ``(c, b)``: whether every map has
    the same minima and the same settings as the first (``T_AD`` scaled by ``c``), and its
    basins per level (the same where only ``b`` differs; see tests/test_mapper.py)."""
    t0 = time.perf_counter()
    out = []
    for c, b in variants:
        energy = Energy(lambda x, c=c, b=b: c * torch.relu(torch.linalg.vector_norm(x, dim=1) - 1.0) ** 2 + b,
                        shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
        r = build_map(energy, config)
        out.append((r.content, r.settings))
    (first, s0), same = out[0], True
    for (c, _), (content, settings) in zip(variants, out):
        same &= (np.allclose(content.minima_x, first.minima_x, atol=1e-6)
                 and bool(np.isclose(settings["ad_temperature"], c / variants[0][0] * s0["ad_temperature"],
                                     rtol=1e-6))
                 and bool(np.isclose(settings["alpha_unit"], s0["alpha_unit"], rtol=1e-5)))
    inside = bool((np.linalg.norm(first.minima_x, axis=1) <= 1.0 + 1e-3).all())
    return {"potential": "flat floor", "variants": [list(v) for v in variants], "minima": first.n_minima,
            "minima_on_the_floor": inside, "flat_merges": int(first.tree.flat().sum()),
            "merges": first.tree.n_leaves - 1, "levels": [[p.n_basins for p in content.levels] for content, _ in out],
            "same_minima_and_settings": same, "seconds": time.perf_counter() - t0}


def four_wells_row(config: MapConfig) -> dict:
    energy = Energy(four_wells_mlp, shape=(2,), data_range=(-2.0, 2.0), dtype=torch.float64)
    t0 = time.perf_counter()
    c = build_map(energy, config).content
    depth = c.tree.depth()
    return {"potential": "four wells + MLP", "minima": c.n_minima, "connected_merges": int(c.tree.connected.sum()),
            "merges": c.tree.n_leaves - 1, "refined_merges": int(c.tree.refined.sum()),
            "barrier_heights": [float(v) for v in depth], "levels": [p.n_basins for p in c.levels],
            "seconds": time.perf_counter() - t0}


def funnel_row(config: MapConfig) -> dict:
    from landscape.mapping.funnel import FunnelConfig, funnel_probe
    from landscape.potentials import PLANTED_BOX, planted_data, planted_funnel

    energy = Energy(planted_funnel, shape=(2,), data_range=PLANTED_BOX, dtype=torch.float64)
    data = torch.from_numpy(planted_data(400, seed=0))
    t0 = time.perf_counter()
    result = build_map(energy, config, data=data)
    c = result.content
    # The probe as `landscape funnel` sets it up for a map explored at temperature 0: noise
    # in units of sqrt(T_AD), the map's step, 1000 steps.
    unit = result.settings["ad_temperature"] ** 0.5
    probe = FunnelConfig(noise=tuple(unit * m for m in (0, 1, 2, 4, 8)), eps=result.settings["eps"], steps=1000,
                         merge_radius=result.settings["merge_radius"], grad_tol=result.settings["grad_tol"])
    f = funnel_probe(energy, c, probe, data=data).funnel
    return {"potential": "planted funnel", "minima": c.n_minima, "basins": c.n_basins, "score": float(f.score),
            "seconds": time.perf_counter() - t0}


def big_row(chains: int) -> dict:
    """The 10-D tilted wells (1,024 minima) end to end, written and read back."""
    config = MapConfig(chains=chains)
    row, result = wells_row(10, 1.0, config)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wells10.h5"
        t0 = time.perf_counter()
        write_map(path, result.content, config=config.to_dict(), source={"spec": "tilted_wells"}, tool_version="bench",
                  settings=result.settings, seconds=result.seconds)
        row["write_seconds"] = time.perf_counter() - t0
        row["file_bytes"] = path.stat().st_size
        import h5py
        from scipy.cluster import hierarchy

        with h5py.File(path, "r") as f:
            z = f["tree/linkage"][()]
            t0 = time.perf_counter()
            # scipy's dendrogram recurses once per tree level: a deep tree needs a higher limit.
            sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * z.shape[0] + 1000))
            leaves = hierarchy.dendrogram(z, no_plot=True)["leaves"]  # straight from the file
            row["dendrogram_leaves"] = len(leaves)
            row["dendrogram_seconds"] = time.perf_counter() - t0
        read_map(path)
    row["stage_seconds"] = result.seconds
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="3,4,5,6", help="dimensions of the tilted wells")
    parser.add_argument("--scales", default="0.05,1,50", help="scales c of the tilted wells (c * U)")
    parser.add_argument("--mb-scales", default="0.1,1,10", help="scales of Mueller-Brown")
    parser.add_argument("--offset", type=float, default=1e6,
                        help="an energy offset b: Mueller-Brown and the 4-D wells are also mapped as U + b")
    parser.add_argument("--big", action="store_true", help="also the 10-D tilted wells (1,024 minima)")
    parser.add_argument("--big-chains", type=int, default=8192, help="first-round chains of the 10-D map")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "validate-map.json"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = MapConfig()  # the defaults, nothing tuned
    t_all = time.perf_counter()
    rows = [mueller_brown_row(float(s), config) for s in args.mb_scales.split(",") if s]
    for d in args.dims.split(","):
        for s in args.scales.split(","):
            if d and s:
                rows.append(wells_row(int(d), float(s), config)[0])
                print(f"  {rows[-1]['potential']} x {s}: {rows[-1]['seconds']:.0f} s", file=sys.stderr, flush=True)
    if args.offset:
        rows.append(mueller_brown_row(1.0, config, args.offset))
        rows.append(wells_row(4, 1.0, config, args.offset)[0])
    rows += [stiff_valley_row(config, c) for c in (0.01, 1.0, 100.0)]
    extra = [four_wells_row(config), funnel_row(config),
             flat_floor_row(config, [(1.0, 0.0), (0.01, 0.0), (100.0, 0.0), (1.0, 5.0)])]
    big = big_row(args.big_chains) if args.big else None

    print("| potential | scale | minima found / present | merge order (tree / estimates only) | worst barrier "
          "error (tree / estimates only) | merges at refined saddles | basins per ladder level | time |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        err = (f"{100 * r['max_error']:.4f} % / {100 * r['max_error_estimates']:.1f} %" if "max_error" in r else "-")
        scale = f"{r['scale']:g}" + (f", {r['offset']:+g}" if r["offset"] else "")
        print(f"| {r['potential']} | {scale} | {r['minima_found']} / {r['minima_present']} | "
              f"{r['merge_order']} / {r.get('merge_order_estimates', '-')} | {err} | "
              f"{r['refined_merges']} / {r['merges']} | {', '.join(map(str, r['levels']))} | {r['seconds']:.1f} s |")
    w, f, fl = extra
    print(f"\nfour wells + MLP: {w['minima']} minima, {w['connected_merges']} of {w['merges']} merges connected "
          f"({w['refined_merges']} refined), barrier heights {', '.join(f'{h:.3g}' for h in w['barrier_heights'])}; "
          f"basins per level {w['levels']} ({w['seconds']:.1f} s)")
    print(f"planted funnel: {f['minima']} minima, {f['basins']} basins at the main level, funnel score "
          f"{f['score']:.2f} ({f['seconds']:.1f} s)")
    print(f"flat floor (c relu(|x| - 1)^2 + b; (c, b) = {', '.join(f'({c:g}, {b:g})' for c, b in fl['variants'])}): "
          f"{fl['minima']} minima, {'all' if fl['minima_on_the_floor'] else 'not all'} on the floor, "
          f"{fl['flat_merges']} of {fl['merges']} merges flat, "
          f"{'the same minima and settings' if fl['same_minima_and_settings'] else 'DIFFERENT minima or settings'} "
          f"at every c and b with T_AD scaled by c; basins per level {'; '.join(map(str, fl['levels']))} "
          f"({fl['seconds']:.1f} s)")
    if big:
        print(f"10-D tilted wells: {big['minima_found']} / {big['minima_present']} minima, merge order "
              f"{big['merge_order']}, worst barrier error {100 * big.get('max_error', float('nan')):.4f} %, "
              f"{big['seconds']:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in big['stage_seconds'].items())}); "
              f"file {big['file_bytes'] / 1e6:.1f} MB written in {big['write_seconds']:.2f} s; scipy dendrogram of "
              f"{big['dendrogram_leaves']} leaves from /tree/linkage as stored in {big['dendrogram_seconds']:.2f} s")
    print(f"\n{time.perf_counter() - t_all:.0f} s in all")
    Path(args.out).write_text(json.dumps({
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads,
                    "torch": torch.__version__},
        "command": "benchmarks/validate_map.py " + " ".join(sys.argv[1:]),
        "rows": rows, "four_wells_mlp": w, "planted_funnel": f, "flat_floor": fl, "big": big,
    }, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
