"""The diagnosis against planted answers: is the spurious minimum flagged, and only it?
Does the funnel score as a funnel, and balanced wells not?

Run: ``.venv/bin/python benchmarks/validate_diagnosis.py [--seeds 5] [--threads 1]``.
Prints a markdown table and writes ``benchmarks/validate-diagnosis.json``.

The energies (``landscape.potentials``) share four data wells at distance 3 from the
origin; their "training data" are 400 points around the wells (``planted_data``):

- ``planted_hole``: the wells plus a deep (40), narrow (std 0.35) hole at the origin,
  three units from every data point. Answer: the hole is spurious (off the data), the
  four wells are not.
- ``planted_funnel``: a broad basin 20 deep (std 1.5) at the origin whose flanks hold the
  four wells. Answer: a funnel (score >= 0.5), its sink the broad basin.
- ``balanced_wells``: four equal wells. Answer: no funnel, nothing spurious.

Each case is mapped (``build_map``, from data and noise at T = 0.05), then probed
(``funnel_probe``, noise 0 to 8 sqrt(T)) and diagnosed (``diagnose_map``), once per seed:
the seed changes the chains of the map and of the probe, not the energies.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.diagnosis.spurious import OFF_DATA, diagnose_map, reason_text
from landscape.energy import Energy
from landscape.mapping.funnel import FunnelConfig, funnel_probe, funnel_sinks
from landscape.io.mapfile import MapMeta
from landscape.mapping.pipeline import build_map
from landscape.mapping.settings import MapConfig
from landscape.potentials import PLANTED_BOX, balanced_wells, planted_data, planted_funnel, planted_hole

T = 0.05
NOISE = (0.0, 1.0, 2.0, 4.0, 8.0)


def run_case(fn, seed: int) -> dict:
    energy = Energy(fn, shape=(2,), data_range=PLANTED_BOX, dtype=torch.float64, name=fn.__name__)
    data = torch.from_numpy(planted_data(400, seed=seed))
    # The map's defaults (an energy of unknown scale), with fewer chains and shorter trials.
    cfg = MapConfig(chains=128, rounds=1, grid=0, refine=False, seed=seed, max_steps=600, patience=100, attempts=2,
                    neighbours=4)
    t0 = time.perf_counter()
    mapped = build_map(energy, cfg, data=data)
    content = mapped.content
    content.meta = MapMeta(2, "", "", {"kind": "function"}, cfg.to_dict(), {"settings": mapped.settings})
    t_map = time.perf_counter() - t0
    probe = FunnelConfig(noise=tuple(math.sqrt(T) * m for m in NOISE), eps=0.1, steps=300,
                         merge_radius=float(mapped.settings["merge_radius"]),  # (the map's own, as funnel_config gives)
                         chains=50, seed=seed)
    t0 = time.perf_counter()
    result = funnel_probe(energy, content, probe, data=data)
    t_funnel = time.perf_counter() - t0
    content = result.content
    t0 = time.perf_counter()
    d = diagnose_map(energy, content, data)
    t_diag = time.perf_counter() - t0
    x = np.asarray(content.minima_x, dtype=np.float64)
    at_origin = np.linalg.norm(x, axis=1) < 0.1
    centre_basin = [int(content.minima_basin[i]) for i in np.flatnonzero(at_origin)]
    return {
        "potential": fn.__name__,
        "seed": seed,
        "minima": content.n_minima,
        "basins": content.n_basins,
        "origin_found": bool(at_origin.any()),
        "origin_flagged": bool(at_origin.any() and (d.reasons[at_origin] & OFF_DATA).all()),
        "origin_reasons": sorted({reason_text(int(b)) for b in d.reasons[at_origin]}),
        "others_flagged": int((d.spurious & ~at_origin).sum()),
        "others": int((~at_origin).sum()),
        "funnel_score": result.funnel.score,
        "sinks": funnel_sinks(result.funnel),
        "sink_is_origin": bool(centre_basin and funnel_sinks(result.funnel) == [centre_basin[0]]),
        "new_minima": result.new_minima,
        "seconds": {"map": t_map, "funnel": t_funnel, "diagnose": t_diag},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "validate-diagnosis.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    t0 = time.perf_counter()
    for fn in (planted_hole, planted_funnel, balanced_wells):
        for seed in range(args.seeds):
            rows.append(run_case(fn, seed))
            r = rows[-1]
            print(f"{r['potential']} seed {seed}: {r['minima']} minima, funnel score {r['funnel_score']:.2f}, "
                  f"origin flagged {r['origin_flagged']}, others flagged {r['others_flagged']}", file=sys.stderr)
    total = time.perf_counter() - t0

    print("| potential | answer | seeds right | minima (map + probe) | minimum at the origin flagged | other minima flagged "
          "| funnel score, min / median / max | time per seed |")
    print("|---|---|---|---|---|---|---|---|")
    answers = {
        "planted_hole": ("the hole (origin) spurious, the wells not",
                         lambda r: r["origin_found"] and r["origin_flagged"] and r["others_flagged"] == 0),
        "planted_funnel": ("a funnel, sink at the origin", lambda r: r["funnel_score"] >= 0.5 and r["sink_is_origin"]),
        "balanced_wells": ("no funnel, nothing spurious",
                           lambda r: r["funnel_score"] < 0.5 and r["others_flagged"] == 0 and not r["origin_found"]),
    }
    def origin(rs: list[dict]) -> str:
        """How the minimum at the origin (the hole, the funnel's bottom) was flagged, over the seeds."""
        found = [r for r in rs if r["origin_found"]]
        if not found:
            return "-"
        kinds = sorted({", ".join(r["origin_reasons"]) or "not flagged" for r in found})
        return f"origin in {len(found)} of {len(rs)}: " + "; ".join(kinds)

    for name, (answer, right) in answers.items():
        rs = [r for r in rows if r["potential"] == name]
        scores = np.array([r["funnel_score"] for r in rs])
        print(f"| {name} | {answer} | {sum(bool(right(r)) for r in rs)} / {len(rs)} | "
              f"{np.median([r['minima'] for r in rs]):.0f} | "
              f"{origin(rs)} | "
              f"{sum(r['others_flagged'] for r in rs)} of {sum(r['others'] for r in rs)} | "
              f"{scores.min():.2f} / {np.median(scores):.2f} / {scores.max():.2f} | "
              f"{np.mean([sum(r['seconds'].values()) for r in rs]):.1f} s |")
    machine = {"cpu": platform.machine(), "threads": args.threads, "torch": torch.__version__}
    payload = {"machine": machine, "command": f"benchmarks/validate_diagnosis.py --seeds {args.seeds}",
               "seconds": total, "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    out = args.out.resolve()
    print(f"\n({total:.0f} s in all; {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out})")


if __name__ == "__main__":
    main()
