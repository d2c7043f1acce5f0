"""The long-run check against models whose regime is known from how they were trained.

Run: ``.venv/bin/python benchmarks/validate_check.py [--folder DIR] [--threads 1]``.
Prints a markdown table and writes ``benchmarks/validate-check.json``.

The Anatomy paper (Nijkamp et al. 2019) ties the regime to the sampler used in training:
the rings and digits-convergent presets as they ship (and the digits one trained twice
as long), three changes of the digits preset that the paper expects not to converge (tau =
0, a third of the step, training chains started from data), and a rings model trained with
tau = 0 from noise, whose chains all gather on a stretch of one ring. Each is trained (into
``--folder``, reused where already there) and checked at the defaults (chains from data and
noise, 1, 3, 10, 30 L, run on where still moving) and by the rule before chains ran on or
coverage and the class mix counted (``extend=1``, no coverage or mix bar): the verdict each
gives, the length it decided at, and the evidence. A convergent regime is what the paper
expects of the settings, not of a CPU-sized run: where the check disagrees, its evidence
says what the chains did.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from landscape.train.check import Thresholds, convergence_check  # noqa: E402
from landscape.train.config import apply_overrides, get_preset  # noqa: E402
from landscape.train.loop import train  # noqa: E402

#: (name, preset, overrides, the regime the paper expects)
MODELS = [
    ("rings-demo", "rings-demo", [], "convergent"),
    ("digits-convergent", "digits-convergent", [], "convergent"),
    ("digits-convergent, 6,000 updates", "digits-convergent", ["train.steps=6000"], "convergent"),
    ("tau = 0", "digits-convergent", ["sampler.tau=0"], "non-convergent"),
    ("eps 0.01 (a third)", "digits-convergent", ["sampler.epsilon=0.01"], "non-convergent"),
    ("chains from data", "digits-convergent", ["sampler.init=data"], "non-convergent"),
    ("rings, tau = 0 from noise", "rings-demo", ["sampler.tau=0", "sampler.init=noise", "train.steps=1500"],
     "non-convergent"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=Path("validate_check_models"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.folder.mkdir(parents=True, exist_ok=True)
    rows = []
    t_all = time.perf_counter()
    for name, preset, overrides, expected in MODELS:
        ckpt = args.folder / (name.replace(" ", "_").replace("/", "").replace("=", "").replace(",", "") + ".pt")
        t0 = time.perf_counter()
        if not ckpt.exists():
            config = apply_overrides(get_preset(preset), overrides)
            train(config, ckpt)
        trained = time.perf_counter() - t0
        results = {}
        for rule, kw in (("before", {"extend": 1.0, "thresholds": Thresholds(coverage_ratio=1e300, mix_ratio=1e300)}),
                         ("now", {})):
            t1 = time.perf_counter()
            r = convergence_check(ckpt, **kw)
            results[rule] = {"verdict": r.verdict, "decided_at": r.stages["data"][-1].multiple,
                             "explanation": r.explanation, "seconds": time.perf_counter() - t1}
        rows.append({"model": name, "expected": expected, "trained_seconds": trained, **results})
        print(f"{name}: before {results['before']['verdict']}, now {results['now']['verdict']} "
              f"(at {results['now']['decided_at']:g}L)", flush=True)
    print()
    print("| model | the paper expects | before (30 L, no coverage or mix) | now | decided at | evidence now |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['expected']} | {r['before']['verdict']} | {r['now']['verdict']} | "
              f"{r['now']['decided_at']:g} L | {r['now']['explanation']} |")
    right = sum(r["now"]["verdict"] == r["expected"] for r in rows)
    before = sum(r["before"]["verdict"] == r["expected"] for r in rows)
    print(f"\nright: {right} of {len(rows)} now, {before} of {len(rows)} before; "
          f"{time.perf_counter() - t_all:.0f} s in all")
    out = ROOT / "benchmarks" / "validate-check.json"
    out.write_text(json.dumps({"machine": platform.platform(), "torch": torch.__version__,
                               "threads": args.threads, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
