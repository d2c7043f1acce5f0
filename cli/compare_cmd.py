"""`landscape compare A B`: two models' landscapes (and convergence) side by side."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.check_cmd import (
    STRICT_RULE,
    check_failed,
    failure_text,
    multiples_option,
)
from landscape.cli.options import (
    echo_json,
    STRICT_EXIT,
    Command,
    chains_option,
    device_option,
    force_option,
    json_option,
    kept_note,
    out_option,
    quiet_option,
    seed_option,
    strict_option,
)
from landscape.train.config import CHECK_CHAINS


def _parse_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if len(names) != 2 or not all(names):
        raise click.BadParameter(f"expected two comma-separated names, like base,tuned; got {value!r}")
    if names[0] == names[1]:
        raise click.BadParameter(f"the two names must differ, got {value!r}")
    return names[0], names[1]


@click.command("compare", cls=Command,
               short_help="Compare two models' landscapes and convergence side by side.")
@click.argument("a", metavar="A", type=click.Path(path_type=Path))
@click.argument("b", metavar="B", type=click.Path(path_type=Path))
@out_option("The comparison figure (.png, .pdf, .svg) [default: compare_<A>_vs_<B>.png in the current folder, "
            "A and B the two names (--names, else the files' stems); one there already, from an earlier "
            "compare, is kept with a note unless --force; a named one that exists is an error].", metavar="PNG")
@force_option()
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the long-run convergence check (landscape check) on each side that has a checkpoint; "
                   "its long-run samples from data become the side's pictures.")
@chains_option(CHECK_CHAINS, "per start in the convergence check (as landscape check: its yardsticks follow the "
               "number of chains)")
@multiples_option(" in the convergence check")
@device_option()
@click.option("--names", default=None, callback=_parse_names, metavar="A,B",
              help="Labels of the two sides [default: the file stems].")
@seed_option(0, "of the convergence check (as landscape check)")
@json_option("(both profiles, the table rows and the verdicts)")
@strict_option("either side's convergence check fails: " + STRICT_RULE + "; needs --check")
@quiet_option()
def compare_cmd(a, b, out, force, check, chains, multiples, device, names, seed, as_json, strict, quiet):
    """Compare the energy landscapes of two models, each a checkpoint (.pt) or a map (.h5).

    For a checkpoint the map is its <stem>.h5 (beside it or in the current folder); for a
    map, the checkpoint it records (if found and unchanged). The table sets side by side:
    the trained regime and the long-run check's verdict (--check; the check runs with
    landscape check's defaults, so the two commands give one model the same verdict and
    evidence), the numbers of minima and basins, the basins at each magnetization (in
    multiples of each map's alpha unit, which is chosen from its own minima, so the same
    multiple is the same relative pull), the barrier heights of the tree over each map's
    basins in units of kT (T: the model's own sampling temperature, or 1 for p ~ exp(-U)
    where it samples at 0) and how many of them are at refined saddles (the others
    estimates), the funnel score and the share of spurious minima; then says how they
    differ, and what the comparison cannot tell (Caution lines: one model mapped twice,
    maps made with other settings, models of other data, barriers of a model that samples
    at T = 0, minima that are a sample of the chains), and draws one figure with both.
    Barriers of a model that samples at T = 0 are not ranked against another model's, and
    the figure says their units differ.

    A and B must be two files: the same file twice, or two checkpoints whose maps are the
    same file, is an error (exit status 1). Two copies are compared; where their maps hold
    the same datasets, the summary says first that the maps are identical.

    \b
    Exit status:
      0  compared (whatever the verdicts, unless --strict)
      1  an error (a missing or unreadable file, A and B the same file, a figure named
         with --out that exists, without --force)
      2  a usage error (a bad option)
      3  --strict, and the convergence check of a side with a checkpoint failed: its
         verdict disagrees with its trained regime (regime unknown: non-convergent)

    \b
    Examples:
      landscape compare digits_convergent.pt digits_nonconvergent.pt
      landscape compare rings.h5 rings_long.h5 --no-check --names short,long
      landscape compare a.pt b.h5 --multiples 1,10 --chains 32 --json > cmp.json
      landscape compare base.pt tuned.pt --strict --quiet --force    # CI: both must pass the check
    """
    if strict and not check:
        raise click.UsageError("--strict judges the convergence check: drop --no-check")
    from landscape.train.runs import run_compare

    run = run_compare(a, b, out=out, force=force, check=check, chains=chains, multiples=multiples, device=device,
                      names=names, seed=seed, quiet=quiet or as_json)
    sides, labels, rows = run.sides, run.labels, run.rows
    if as_json:
        payload = {
            "names": list(labels),
            "sides": {s.name: {"input": str(s.given), "kind": s.kind,
                               "checkpoint": None if s.checkpoint is None else str(s.checkpoint),
                               "map": None if s.map_path is None else str(s.map_path),
                               "regime": s.regime, "no_map": s.no_map if s.content is None else None}
                      for s in sides},
            "profiles": {s.name: p for s, p in zip(sides, run.profiles)},
            "rows": [list(r) for r in rows],
            "checks": {s.name: None if r is None else r.to_dict() for s, r in zip(sides, run.results)},
            "verdicts": {s.name: v for s, v in zip(sides, run.verdicts)},
            "identical_maps": run.identical,
            "summary": run.summary,
            "caveats": run.caveats,
            "picture": None if run.kept else str(run.out),
        }
        echo_json(payload)
    else:
        click.echo(_table([("", labels[0], labels[1])] + rows))
        click.echo("")
        for line in run.summary:
            click.echo(line)
        for line in run.caveats:
            click.echo(f"Caution: {line}")
        click.echo(f"picture: {run.out}" + (" (kept from an earlier compare)" if run.kept else ""))
    if run.kept:
        inputs = [p for s in sides for p in (s.checkpoint, s.map_path)]
        click.echo(kept_note(run.out, "compare", inputs, several=False,
                             earlier=lambda n: "the earlier file" + ("s" if n > 1 else "")), err=True)
    if strict:
        failed = [f"{s.name}: {failure_text(r)}" for s, r in zip(sides, run.results)
                  if r is not None and check_failed(r)]
        if failed:
            click.echo(f"check failed (--strict): {'; '.join(failed)}", err=True)
            raise click.exceptions.Exit(STRICT_EXIT)


#: Cells wider than this wrap onto further lines, so the table fits a terminal.
_CELL = 44


def _table(rows: list[tuple[str, str, str]]) -> str:
    """Aligned columns: label, A, B (two spaces between); long cells wrap."""
    import textwrap

    wrapped = [[textwrap.wrap(cell, _CELL) or [""] for cell in row] for row in rows]
    w0 = max(len(line) for r in wrapped for line in r[0])
    w1 = max(len(line) for r in wrapped for line in r[1])
    out = []
    for label, a, b in wrapped:
        for k in range(max(len(label), len(a), len(b))):
            cells = [c[k] if k < len(c) else "" for c in (label, a, b)]
            out.append(f"{cells[0]:<{w0}}  {cells[1]:<{w1}}  {cells[2]}".rstrip())
    return "\n".join(out)
