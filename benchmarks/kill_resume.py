"""kill -9 at random points of train, map and funnel, then resume: is the result the one
an uninterrupted run gives?

    .venv/bin/python benchmarks/kill_resume.py --points 10 --seed 0

For each command: one uninterrupted run (its wall time T), then N runs killed with SIGKILL
at a moment drawn uniformly from [0.1 T, T] and continued with --resume until they
finish. Prints, per command, how many resumed results equal the uninterrupted one.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from faults import SCENARIOS, killed_then_resumed, prepare, uninterrupted  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=10, help="kill points per command")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", default=",".join(SCENARIOS))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="kill-resume-") as tmp:
        root = Path(tmp)
        base = root / "base-map"
        prepare(base, "map")
        uninterrupted(base, "map")
        print(f"{'command':8} {'T (s)':>6} {'killed':>6} {'identical':>10}  kill points (s): files the kill left")
        for name in args.commands.split(","):
            ref_dir = root / f"{name}-ref"
            prepare(ref_dir, name, base)
            reference, wall = uninterrupted(ref_dir, name)
            same = killed = 0
            notes = []
            for k in range(args.points):
                folder = root / f"{name}-{k}"
                prepare(folder, name, base)
                at = rng.uniform(0.1 * wall, wall)
                digest, was_killed, left = killed_then_resumed(folder, name, at)
                same += digest == reference
                killed += was_killed
                state = ("" if was_killed else " (had finished)") + ("" if digest == reference else " DIFFERS")
                notes.append(f"{at:.1f}{state}: {left or '-'}")
            print(f"{name:8} {wall:6.1f} {killed:>6} {same:>4} of {args.points}  " + "; ".join(notes))


if __name__ == "__main__":
    main()
