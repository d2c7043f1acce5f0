"""`landscape compare A B`: two models' landscapes (and convergence) side by side."""

from __future__ import annotations

import json
from pathlib import Path

import click

from landscape.cli.check_cmd import _parse_multiples
from landscape.cli.train_cmd import DEVICES


def _parse_names(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[str, str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",")]
    if len(names) != 2 or not all(names):
        raise click.BadParameter(f"expected two comma-separated names, like base,tuned; got {value!r}")
    if names[0] == names[1]:
        raise click.BadParameter(f"the two names must differ, got {value!r}")
    return names[0], names[1]


@click.command("compare")
@click.argument("a", metavar="A", type=click.Path(path_type=Path))
@click.argument("b", metavar="B", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PNG",
              help="The comparison figure (.png, .pdf, .svg) [default: compare_<A>_vs_<B>.png in the current folder].")
@click.option("--force", is_flag=True, default=False, show_default=True, help="Overwrite an existing --out.")
@click.option("--check/--no-check", default=True, show_default=True,
              help="Run the long-run convergence check (landscape check) on each side that has a checkpoint; "
                   "its long-run samples from data become the side's pictures.")
@click.option("--chains", type=click.IntRange(min=1), default=64, show_default=True,
              help="Chains per start for the convergence check.")
@click.option("--multiples", default="1,3,10,30", show_default=True, callback=_parse_multiples,
              help="Chain lengths of the convergence check, in units of the training L.")
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True,
              help="Where the convergence check runs.")
@click.option("--names", default=None, callback=_parse_names, metavar="A,B", show_default=True,
              help="Labels of the two sides [default: the file stems].")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the convergence check.")
@click.option("--json", "as_json", is_flag=True, default=False, show_default=True,
              help="Print both profiles, the table rows and the verdicts as JSON instead of the table.")
@click.option("--quiet", is_flag=True, default=False, show_default=True, help="No progress bars.")
def compare_cmd(a, b, out, force, check, chains, multiples, device, names, seed, as_json, quiet):
    """Compare the energy landscapes of two models, each a checkpoint (.pt) or a map (.h5).

    For a checkpoint the map is its <stem>.h5 (beside it or in the current folder); for a
    map, the checkpoint it records (if found and unchanged). The table sets side by side:
    the trained regime and the long-run check's verdict (--check), the numbers of minima
    and basins, the basins at each magnetization (in multiples of each map's alpha unit,
    which is chosen from its own minima, so the same multiple is the same relative pull),
    the barrier heights of the tree over each map's basins in units of kT (T: the
    model's own sampling temperature, or 1 for p ~ exp(-U) where it samples at 0), the
    funnel score and the share of spurious minima; then says how they
    differ, and draws one figure with both. Exit status 0 whatever they are.

    \b
    Examples:
      landscape compare digits_convergent.pt digits_nonconvergent.pt
      landscape compare rings.h5 rings_long.h5 --no-check --names short,long
      landscape compare a.pt b.h5 --multiples 1,10 --chains 32 --json > cmp.json
    """
    from landscape.diagnosis.compare import json_safe
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
            "summary": run.summary,
            "picture": str(run.out),
        }
        click.echo(json.dumps(json_safe(payload), indent=2))
        return
    click.echo(_table([("", labels[0], labels[1])] + rows))
    click.echo("")
    for line in run.summary:
        click.echo(line)
    click.echo(f"picture: {run.out}")


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
