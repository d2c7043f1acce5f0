"""Whole maps, the ladder's levels in shared batches, and maps spread over processes.

    .venv/bin/python benchmarks/map_scale.py [--digits CKPT] [--image CKPT] [--ranks 1,2] [--device cpu]

Three measurements, on the Mueller-Brown potential (2-D, float64, the map's defaults), a
digits model (the ``digits-convergent`` preset, 1x8x8, maps of 32 chains) and a 32x32 image
model (``digits32-nonconvergent``: a convolutional VanillaNet on the bundled digits
upscaled to 32x32). Without ``--digits`` / ``--image`` the models are trained first, into a
temporary folder (the digits preset in full, about 40 s; the image preset for 100
updates only, about a minute: a workload for timing, not a finished model).

1. **Whole maps** (:func:`landscape.mapping.pipeline.build_map`): wall time and the
   seconds of each stage, as recorded in the map.
2. **Levels together against one after another**: with the minima and settings of that
   map, the five levels of the default ladder run by :func:`~landscape.mapping.ad.assign_ladder`
   (trials of all levels in shared batches) and by :func:`~landscape.mapping.ad.assign_basins`
   level by level, each level with the same generator both ways. Reported: both times, the
   ratio, the batched energy calls both ways, and whether every level's basins came out
   the same (they must for Mueller-Brown, computed row by row; for a network, batches of
   other sizes may round differently).
3. **Ranks**: ``torchrun --standalone --nproc_per_node R $(which landscape) map ...`` for
   each ``R`` of ``--ranks`` (gloo on the CPU): wall time of the whole command (start-up
   included), and whether the map's datasets equal those of the one-process map.

Writes ``benchmarks/map-scale-<device>.json`` and prints markdown tables. Single runs
(whole maps take tens of seconds): compare ratios within one run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape import Energy  # noqa: E402
from landscape.mapping.ad import assign_basins, assign_ladder  # noqa: E402
from landscape.mapping.minima import Minima  # noqa: E402
from landscape.mapping.pipeline import _ad_config, build_map  # noqa: E402
from landscape.mapping.settings import MapConfig  # noqa: E402
from landscape.potentials import mueller_brown  # noqa: E402

#: Mapping settings of the 32x32 model in the rank runs: a small map (the point is the
#: ratio between ranks, not the map).
IMAGE_MAP = ["--chains", "16", "--rounds", "1", "--max-steps", "300", "--patience", "50", "--attempts", "1",
             "--neighbours", "3", "--no-refine"]


def landscape_cmd() -> list[str]:
    exe = shutil.which("landscape", path=str(Path(sys.executable).parent)) or shutil.which("landscape")
    if exe is None:
        sys.exit("the landscape command is not installed beside this interpreter: make install")
    return [exe]


def train(preset: str, out: Path, device: str, extra: list[str]) -> Path:
    cmd = [*landscape_cmd(), "train", "--preset", preset, "--out", str(out), "--device", device, "--quiet", *extra]
    print(f"training {preset} -> {out}", flush=True)
    subprocess.run(cmd, check=True, env=dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1")))
    return out


def digest(path: Path) -> str:
    """sha256 over every dataset's name, dtype, shape and bytes (not attributes: clocks)."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
        for name in sorted(names):
            data = np.ascontiguousarray(f[name][()])
            h.update(name.encode() + f"{data.dtype}{data.shape}".encode() + data.tobytes())
    return h.hexdigest()


def whole_map(name: str, energy: Energy, config: MapConfig, data: torch.Tensor | None) -> dict:
    t0 = time.perf_counter()
    result = build_map(energy, config, data=data)
    wall = time.perf_counter() - t0
    c = result.content
    row = {"energy": name, "wall_s": wall, "stages_s": {k: round(v, 2) for k, v in result.seconds.items()},
           "minima": c.n_minima, "levels": [(p.multiplier, p.n_basins) for p in c.levels]}
    print(f"  {name}: {wall:.1f} s, {c.n_minima} minima, basins per level {row['levels']}", flush=True)
    return row, result


def ladder(name: str, energy: Energy, config: MapConfig, result) -> dict:
    content, settings = result.content, result.settings
    minima = Minima(torch.from_numpy(content.minima_x).to(energy.device, energy.dtype),
                    torch.from_numpy(np.asarray(content.minima_energy)), torch.from_numpy(content.minima_hits),
                    torch.zeros(content.n_minima, dtype=torch.float64))
    multipliers = list(config.multipliers)
    configs = [_ad_config(config, settings, m * settings["alpha_unit"]) for m in multipliers]

    def gens() -> list[torch.Generator]:
        return [torch.Generator(device=energy.device).manual_seed(1000 + k) for k in range(len(configs))]

    t0 = time.perf_counter()
    alone = [assign_basins(energy, minima, c, g) for c, g in zip(configs, gens())]
    t_alone = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = assign_ladder(energy, minima, configs, gens())
    t_together = time.perf_counter() - t0
    same = all(a[0].basin.tolist() == b[0].basin.tolist() for a, b in zip(alone, together))
    row = {"energy": name, "levels": len(configs), "minima": content.n_minima,
           "one_after_another_s": t_alone, "together_s": t_together, "speedup": t_alone / t_together,
           "calls_one_after_another": sum(int(p.attrs["batches"]) for p, _ in alone),
           "trials": sum(int(p.attrs["trials"]) for p, _ in alone), "same_basins": same}
    print(f"  {name}: one after another {t_alone:.1f} s, together {t_together:.1f} s "
          f"({row['speedup']:.2f}x), same basins: {same}", flush=True)
    return row


def ranks_run(name: str, args: list[str], ranks: list[int], folder: Path) -> list[dict]:
    rows, first = [], None
    for r in ranks:
        out = folder / f"{name.split()[0]}-{r}.h5"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(r),
               *landscape_cmd(), "map", *args, "--out", str(out), "--force", "--quiet"]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"{name} with {r} ranks failed:\n{done.stderr[-2000:]}")
        d = digest(out)
        first = first or d
        rows.append({"energy": name, "ranks": r, "wall_s": wall, "same_as_one_rank": d == first})
        print(f"  {name}, {r} rank(s): {wall:.1f} s, same map as 1 rank: {d == first}", flush=True)
    for row in rows:
        row["speedup"] = rows[0]["wall_s"] / row["wall_s"]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--digits", type=Path, help="a digits checkpoint (1x8x8) [default: train the preset]")
    ap.add_argument("--image", type=Path, help="a 32x32 checkpoint [default: train digits32-nonconvergent briefly]")
    ap.add_argument("--ranks", default="1,2", help="process counts for torchrun [default: 1,2]")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: maps, ladder, ranks")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    torch.set_num_threads(1) if args.device == "cpu" else None
    tmp = Path(tempfile.mkdtemp(prefix="map-scale-"))
    digits_ckpt = args.digits or train("digits-convergent", tmp / "digits.pt", args.device, [])
    image_ckpt = args.image or train("digits32-nonconvergent", tmp / "image.pt", args.device, ["--steps", "100"])

    from landscape.train.energies import resolve_energy
    from landscape.train.runs import map_data

    mb = Energy(mueller_brown, (2,), data_range=(-1.5, 2.0), device=args.device, dtype=torch.float64,
                name="mueller_brown")
    digits = resolve_energy(digits_ckpt, device=args.device)
    digits_cfg = MapConfig(chains=32)
    digits_data, _ = map_data(digits, digits_cfg)
    report: dict = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
                    "torch": torch.__version__, "device": args.device, "command": " ".join(sys.argv)}
    if not {"maps", "ladder"} <= skip:
        print("whole maps (defaults; digits: 32 chains)")
        report["maps"], results = [], {}
        for name, energy, cfg, data in (("Mueller-Brown", mb, MapConfig(), None),
                                        ("digits (32 chains)", digits.energy, digits_cfg, digits_data)):
            row, results[name] = whole_map(name, energy, cfg, data)
            report["maps"].append(row)
        if "ladder" not in skip:
            print("the default ladder's five levels: together against one after another")
            report["ladder"] = [ladder("Mueller-Brown", mb, MapConfig(), results["Mueller-Brown"]),
                                ladder("digits (32 chains)", digits.energy, digits_cfg, results["digits (32 chains)"])]
    if "ranks" not in skip:
        ranks = [int(r) for r in args.ranks.split(",")]
        print(f"torchrun with {ranks} processes")
        mb_args = ["--energy", "landscape.potentials:mueller_brown", "--shape", "2", "--box", "-1.5", "2", "--float64"]
        dev = ["--device", args.device]
        report["ranks"] = (ranks_run("Mueller-Brown", mb_args + dev, ranks, tmp)
                           + ranks_run("digits (32 chains)", [str(digits_ckpt), "--chains", "32", *dev], ranks, tmp)
                           + ranks_run("32x32 image (16 chains, short trials)", [str(image_ckpt), *IMAGE_MAP, *dev],
                                       ranks, tmp))
    out = ROOT / "benchmarks" / f"map-scale-{args.device.split(':')[0]}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\n{report['machine']}, torch {report['torch']}, {args.device}\n")
    if "maps" in report:
        print("| map | wall (s) | minima | basins per level | stages (s) |\n|---|---|---|---|---|")
        for r in report["maps"]:
            print(f"| {r['energy']} | {r['wall_s']:.1f} | {r['minima']} | "
                  f"{', '.join(f'{m:g}: {b}' for m, b in r['levels'])} | "
                  f"{', '.join(f'{k} {v:g}' for k, v in r['stages_s'].items())} |")
    if "ladder" in report:
        print("\n| energy | levels | trials | one after another (s) | together (s) | speed-up | same basins |\n"
              "|---|---|---|---|---|---|---|")
        for r in report["ladder"]:
            print(f"| {r['energy']} | {r['levels']} | {r['trials']:,} | {r['one_after_another_s']:.2f} | "
                  f"{r['together_s']:.2f} | {r['speedup']:.2f}x | {r['same_basins']} |")
    if "ranks" in report:
        print("\n| map | ranks | wall (s) | speed-up | same map as 1 rank |\n|---|---|---|---|---|")
        for r in report["ranks"]:
            print(f"| {r['energy']} | {r['ranks']} | {r['wall_s']:.1f} | {r['speedup']:.2f}x | {r['same_as_one_rank']} |")
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
