"""`landscape compare A B`: two models' landscapes (and convergence) side by side."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


@dataclass
class Side:
    """One side of the comparison: what was given and what was found for it."""

    given: Path
    kind: str  # "checkpoint" | "map"
    checkpoint: Path | None
    map_path: Path | None
    content: Any  # MapContent or None
    regime: str
    source: str  # the "source" cell
    no_map: str  # the text of map-based cells when there is no map
    name: str = ""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _strip_path(message: str, path: Path) -> str:
    """A checkpoint loader's message without its leading ``<path>: ``."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _side(path: Path) -> Side:
    """Classify ``path`` (checkpoint or map) and find its partner file.

    Raises LandscapeError (one line) for a missing file, a folder, a file that is neither,
    or a map that does not read.
    """
    from landscape.cli.energy_source import is_map_file, map_of, source_model_file
    from landscape.errors import LandscapeError
    from landscape.io.mapfile import read_map
    from landscape.train.checkpoint import load_checkpoint, sha256_of

    if not path.exists():
        raise LandscapeError(f"{path}: no such file")
    if path.is_dir():
        raise LandscapeError(f"{path}: is a directory, expected a checkpoint (.pt) or a map (.h5)")
    if is_map_file(path):
        content = read_map(path)
        source = content.meta.source if content.meta is not None else None
        recorded = source if isinstance(source, dict) else {}
        model = source_model_file(path, content)
        ckpt = None
        if model is not None and recorded.get("kind") == "checkpoint":
            ckpt = load_checkpoint(model)
            text = f"map {path} of checkpoint {model}"
        elif recorded.get("kind") == "checkpoint":
            model = None
            text = f"map {path} (its checkpoint {recorded.get('path')} is not found or changed)"
        else:
            model = None  # a TorchScript file or state dict cannot run our convergence check
            from landscape.plots.figures import describe_source

            text = f"map {path} of {describe_source(content)}"
        regime = str(ckpt.get("regime", "unknown")) if ckpt is not None else str(recorded.get("regime") or "unknown")
        return Side(path, "map", model, path, content, regime, text, "no map")
    try:
        ckpt = load_checkpoint(path)
    except LandscapeError as err:
        raise LandscapeError(
            f"{path} is neither an ebm-landscape checkpoint nor a map: {_strip_path(str(err), path)}"
        ) from None
    regime = str(ckpt.get("regime", "unknown"))
    map_path = map_of(path)
    if map_path is None:
        hint = f"no map (run: landscape map {path})"
        return Side(path, "checkpoint", path, None, None, regime, f"checkpoint {path}, {hint}", hint)
    content = read_map(map_path)
    source = content.meta.source if content.meta is not None else None
    recorded = source.get("sha256") if isinstance(source, dict) else None
    if recorded and recorded != sha256_of(path):
        # A map left over from an earlier model of the same name says nothing about this one.
        hint = f"no map of this checkpoint ({map_path} is of another model; run: landscape map {path} --force)"
        return Side(path, "checkpoint", path, None, None, regime, f"checkpoint {path}, {hint}", hint)
    return Side(path, "checkpoint", path, map_path, content, regime, f"checkpoint {path}, map {map_path}", "no map")


def _label(path: Path, other: Path) -> str:
    """The file stem, or folder/stem when both sides share a stem."""
    if path.stem != other.stem:
        return path.stem
    return f"{path.parent.name}/{path.stem}" if path.parent.name != other.parent.name else path.stem


def _file_part(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"


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


@dataclass
class CompareRun:
    """What :func:`run_compare` found: both sides, their profiles and checks, the table rows,
    the closing lines and the figure written."""

    sides: list[Side]
    labels: tuple[str, str]
    profiles: list[Any]
    results: list[Any]
    verdicts: list[str | None]
    rows: list[tuple[str, str, str]]
    summary: list[str]
    out: Path


def run_compare(
    a: Path,
    b: Path,
    *,
    out: Path | None = None,
    force: bool = False,
    check: bool = True,
    chains: int = 64,
    multiples: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0),
    device: str = "auto",
    names: tuple[str, str] | None = None,
    seed: int = 0,
    quiet: bool = False,
    checks: dict[Path, Any] | None = None,
) -> CompareRun:
    """Compare ``a`` and ``b`` as the command does and draw the figure. ``checks`` maps a
    checkpoint path to a convergence check already run on it (reused instead of
    running it again)."""
    from landscape.diagnosis.compare import compare_profiles, map_profile, plot_comparison, summarize
    from landscape.errors import LandscapeError
    from landscape.plots.figures import check_picture_path

    for path in (a, b):
        if not path.exists():
            raise LandscapeError(f"{path}: no such file")
    if _same_file(a, b):
        raise LandscapeError(f"A and B are the same file ({a}): give two different checkpoints or maps")
    sides = [_side(a), _side(b)]
    ma, mb = sides[0].map_path, sides[1].map_path
    if ma is not None and mb is not None and _same_file(ma, mb):
        raise LandscapeError(f"A and B have the same map ({ma}): nothing to compare")
    labels = names or (_label(a, b), _label(b, a))
    if labels[0] == labels[1]:
        labels = (f"{labels[0]} (A)", f"{labels[1]} (B)")
    for side, label in zip(sides, labels):
        side.name = label
    out = out or Path(f"compare_{_file_part(labels[0])}_vs_{_file_part(labels[1])}.png")
    check_picture_path(out)
    if out.exists() and not force:
        raise LandscapeError(f"{out} exists: pass --force to overwrite it")

    results: list[Any] = [None, None]
    if check:
        known = {Path(k).resolve(): v for k, v in (checks or {}).items()}
        results = [
            known.get(side.checkpoint.resolve()) if side.checkpoint is not None and side.checkpoint.resolve() in known
            else _check(side, chains, multiples, device, seed, quiet)
            for side in sides
        ]

    profiles = [None if s.content is None else map_profile(s.content) for s in sides]
    rows = _head_rows(sides, results, check)
    rows += compare_profiles(profiles[0], profiles[1], missing=(sides[0].no_map, sides[1].no_map))
    verdicts = [r.verdict if r is not None else None for r in results]
    summary = summarize(profiles[0], profiles[1], labels, verdicts)

    samples, notes = {}, {}
    for side, result in zip(sides, results):
        if result is not None and "data" in result.samples:
            _, end, steps = result.samples["data"]
            samples[side.name] = end.detach().cpu().numpy()
            notes[side.name] = f"long-run samples from data after {steps} steps ({steps / result.L:g}L)"
    plot_comparison(sides[0].content, sides[1].content, labels, out, samples=samples, sample_notes=notes)
    return CompareRun(sides, tuple(labels), profiles, results, verdicts, rows, summary, out)


def _check(side: Side, chains: int, multiples: tuple[float, ...], device: str, seed: int, quiet: bool) -> Any:
    """The long-run convergence check of the side's checkpoint, or None without one."""
    if side.checkpoint is None:
        return None
    import torch

    from landscape.train.check import convergence_check
    from landscape.train.checkpoint import load_checkpoint

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = max(1, round(max(multiples) * int(load_checkpoint(side.checkpoint)["sampler"]["steps"])))
    bars = []

    def progress(k: int) -> None:
        if not bars:
            from tqdm import tqdm

            bars.append(tqdm(total=2 * steps, desc=f"check {side.name}", unit="step", dynamic_ncols=True))
        bars[0].update(k)

    try:
        return convergence_check(side.checkpoint, multiples=multiples, n_chains=chains, device=device, seed=seed,
                                 progress=None if quiet else progress)
    finally:
        for bar in bars:
            bar.close()


def _head_rows(sides: list[Side], results: list[Any], check: bool) -> list[tuple[str, str, str]]:
    def verdict(side: Side, result: Any) -> str:
        if result is not None:
            agrees = "" if result.agreement == "regime unknown" else f" ({result.agreement} with the regime)"
            return f"{result.verdict}{agrees}"
        if side.checkpoint is None:
            return "no checkpoint to check"
        return "not run (--no-check)" if not check else "not run"

    rows = [
        ("source", sides[0].source, sides[1].source),
        ("trained regime", sides[0].regime, sides[1].regime),
        ("check verdict", verdict(sides[0], results[0]), verdict(sides[1], results[1])),
    ]
    if any(r is not None for r in results):
        rows.append(("check evidence", *(r.explanation if r is not None else "-" for r in results)))
    return rows


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
