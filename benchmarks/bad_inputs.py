"""Bad inputs against the command line: how many end in a clean one-line refusal.

Run: ``.venv/bin/python benchmarks/bad_inputs.py [--only SUBSTRING] [--show N] [--json FILE]``.

Runs every case of the corpus (``tests/corpus.py``, shared with ``tests/test_bad_inputs.py``)
in this process, each in a fresh temporary folder, and prints a table: cases tried, clean
refusals (non-zero exit, one line on stderr, no traceback), lines from the catch-all
(``error: unexpected ...``, a bug by definition), other failures (exit 0, several lines, a
traceback, or still running after ``--timeout`` seconds), payloads that ran (a pickle that asks to create a marker file) and input
files damaged (bytes changed or removed). ``--show`` lists the first N cases that were
not clean, with their stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the corpus and the hand-made maps it uses

import corpus  # noqa: E402

from landscape.cli.errors import run_guarded  # noqa: E402
from landscape.cli.main import cli  # noqa: E402


def invoke(argv: list[str]) -> tuple[int, str, str]:
    """The command line in this process, its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_guarded(cli, argv)
    return code, out.getvalue(), err.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="Run only the cases whose name contains this.")
    parser.add_argument("--show", type=int, default=20, help="List this many cases that were not clean.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the outcomes as JSON here.")
    parser.add_argument("--timeout", type=int, default=20, help="Seconds a case may run before it counts as "
                                                                 "not refused.")
    parser.add_argument("--progress", action="store_true", help="Say each case's outcome on stderr as it ends.")
    args = parser.parse_args()
    timed = corpus.with_timeout(invoke, args.timeout)

    cases = [c for c in corpus.all_cases() if args.only in c.name]
    start = time.perf_counter()
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, case in enumerate(cases):
            outcomes.append(corpus.run_case(case, Path(tmp) / f"case{k}", timed))
            if args.progress:
                print(f"{k + 1}/{len(cases)} {case.name}: {'clean' if outcomes[-1].clean else 'NOT CLEAN'}",
                      file=sys.stderr, flush=True)
    seconds = time.perf_counter() - start

    clean = [o for o in outcomes if o.clean]
    unexpected = [o for o in outcomes if o.unexpected]
    other = [o for o in outcomes if not o.clean and not o.unexpected]
    payloads = [o for o in outcomes if o.payload_ran]
    damaged = [o for o in outcomes if o.damaged]
    rows = [
        ("cases tried", len(outcomes)),
        ("clean refusals", len(clean)),
        ("unexpected-error lines", len(unexpected)),
        ("other failures (exit 0, not one line, traceback)", len(other)),
        ("payloads run", len(payloads)),
        ("files damaged", len(damaged)),
    ]
    print("| bad inputs | count |\n|---|---:|")
    for label, value in rows:
        print(f"| {label} | {value} |")
    print(f"\n{seconds:.1f} s")
    bad = [o for o in outcomes if not o.clean]
    for o in bad[: args.show]:
        print(f"- {o.name}: exit {o.code}: {' / '.join(o.lines)[:300]}"
              + (f" [damaged {o.damaged}]" if o.damaged else "") + (" [PAYLOAD RAN]" if o.payload_ran else ""))
    if len(bad) > args.show:
        print(f"... {len(bad) - args.show} more")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "summary": dict(rows), "seconds": seconds,
            "not_clean": [{"case": o.name, "code": o.code, "stderr": o.lines, "damaged": o.damaged,
                           "payload_ran": o.payload_ran} for o in bad],
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
