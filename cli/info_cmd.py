"""`landscape info`: say what a checkpoint or a map holds."""

from __future__ import annotations

import json
from pathlib import Path

import click

from landscape.cli.options import echo_json, json_option


@click.command("info", short_help="Describe a checkpoint or a map: what it holds, how it was made.")
@click.argument("file", type=click.Path(path_type=Path))
@json_option("(the metadata)")
@click.option("--datasets", is_flag=True,
              help="For a map: also list its datasets with their shapes and what each holds (the schema's words).")
def info(file, as_json, datasets):
    """Describe a checkpoint (model, data, sampler, regime, training seed, progress, last
    diagnostics) or a landscape map (source, counts, how completely the exploration chains
    found the minima their starts lead to, settings, the config it was made with:
    its seed, chains and the settings given other values than their defaults, --json the
    whole config; levels, time per stage, the funnel probe's verdict, seed and chains;
    `landscape tree` shows the tree). For a map or funnel probe that is not finished
    (killed, interrupted), what its saved progress holds: the stages done and where the one
    under way stands.

    \b
    Examples:
      landscape info digits.pt
      landscape info digits.h5 --datasets
      landscape info digits.h5.partial          # an interrupted map's progress
      landscape info digits.h5.funnel.partial   # an interrupted funnel probe's
    """
    from landscape.io.mapfile import is_map_file
    from landscape.io.progress import progress_path

    if file.name.endswith(".funnel.partial") and file.is_file():
        _progress_info(file.with_name(file.name[: -len(".funnel.partial")]), as_json, "funnel")
        return
    unfinished = file.name.endswith(".partial") and file.is_file()
    if unfinished or (not file.exists() and progress_path(file).is_file()):
        _progress_info(file.with_name(file.name[: -len(".partial")]) if unfinished else file, as_json)
        return
    if file.suffix.lower() in (".h5", ".hdf5") or is_map_file(file):
        _map_info(file, as_json, datasets)
        return
    from landscape.train.checkpoint import describe, load_checkpoint  # (torch: for checkpoints only)

    from landscape.errors import LandscapeError

    other = _other_file(file)
    if other is None:
        try:
            ckpt = load_checkpoint(file)
        except LandscapeError:
            other = _state_dict_file(file)
            if other is None:
                raise
    if other is not None:  # not what info describes: said in one line, with what to do with it
        raise LandscapeError(f"{file} is {other}")
    if as_json:
        from landscape.io.files import json_safe

        from landscape.train.checkpoint import regime_note
        from landscape.train.config import preset_changes

        meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "resume")}
        # (what the text's regime and preset rows add: the preset's settings this run changed)
        meta["preset_changes"] = [{"key": k, "preset": a, "value": b}
                                  for k, a, b in preset_changes(ckpt.get("config") or {})]
        meta["regime_note"] = regime_note(ckpt).strip(" ()") or None
        click.echo(json.dumps(json_safe(meta), indent=2, default=str, allow_nan=False))  # (NaN: null, strict JSON)
        return
    from landscape.io.files import printable  # (the checkpoint's strings are a file's: no escapes reach the terminal)

    click.echo(printable(f"{file}"))
    for key, value in _with_seed(describe(ckpt), ckpt):
        click.echo(f"  {printable(key):<10} {printable(value)}")


def _with_seed(rows: list[tuple[str, str]], ckpt: dict) -> list[tuple[str, str]]:
    """The checkpoint's rows with its training seed (``config.train.seed``, what ``landscape
    train --seed`` sets) after the preset, where it records one."""
    train = (ckpt.get("config") or {}).get("train")
    seed = train.get("seed") if isinstance(train, dict) else None
    if seed is None or any(key == "seed" for key, _ in rows):
        return rows
    at = next((k + 1 for k, (key, _) in enumerate(rows) if key == "preset"), len(rows))
    return [*rows[:at], ("seed", f"{seed} (training: train.seed, landscape train --seed)"), *rows[at:]]


def _other_file(path: Path) -> str | None:
    """A TorchScript file or an .npz archive (told by its zip directory only: nothing is
    loaded or run): what it is and what to do with it; None for anything else."""
    import zipfile

    from landscape.io import sources

    if not path.is_file() or not zipfile.is_zipfile(path):
        return None
    if sources.is_torchscript(path):
        return (f"a TorchScript file (a network saved with its code), not a checkpoint or map: map it with landscape "
                f"map {path} --shape D[,D...] --box LOW HIGH")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return None
    if names and all(n.endswith(".npy") for n in names):
        arrays = f"{len(names)} array{'s' if len(names) != 1 else ''}"
        return f"a NumPy .npz archive ({arrays}), not a checkpoint or map: as training data, --dataset npz:{path}"
    return None


def _state_dict_file(path: Path) -> str | None:
    """A bare state dict (not one of our checkpoints): what it holds and how to map it."""
    from landscape.errors import LandscapeError
    from landscape.io import sources

    from landscape.io.files import load_torch
    from landscape.train.checkpoint import REQUIRED

    try:
        top = load_torch(path, "state dict")
        sd = sources.state_dict_in(top, path)
    except LandscapeError:
        return None
    if any(key in top for key in REQUIRED if key not in ("model", "state_dict", "step")):
        return None  # one of our checkpoints, damaged: the checkpoint reader's error names what is wrong
    count = sum(int(t.numel()) for t in sd.values())
    bare = len(top) == len(sd)  # not nested in a training script's checkpoint
    return (f"a state dict ({len(sd)} tensors, {count:,} numbers), not an ebm-landscape checkpoint: map it with "
            f"landscape map --model FILE.py:Net --weights {path} (your network)"
            + (f", or landscape map {path} --arch ARCH --train-epsilon EPS (the Anatomy reference code's)" if bare else ""))


def _map_info(path: Path, as_json: bool, datasets: bool) -> None:
    from landscape.cli.tree_cmd import map_header, map_summary
    from landscape.io.mapfile import dataset_listing, read_map

    content = read_map(path)
    if as_json:
        summary = map_summary(path, content, content.tree, None, not content.over_minima, {})
        out = {k: v for k, v in summary.items() if k not in ("leaves", "merges")}
        if datasets:
            out["datasets"] = [{"path": p, "shape": list(s), "dtype": d, "description": text}
                               for p, s, d, text in dataset_listing(path)]
        echo_json(out)
        return
    for line in map_header(path, content):
        click.echo(line)
    if datasets:
        click.echo("")
        click.echo("datasets:")
        rows = dataset_listing(path)
        width = max((len(p) for p, *_ in rows), default=0)
        for p, shape, dtype, text in rows:
            click.echo(f"  {p:<{width}}  {dtype:<7} {list(shape)!s:<16} {text}")


def _progress_info(path: Path, as_json: bool, kind: str = "map") -> None:
    """What the progress of an unfinished map (``kind="map"``) or funnel probe of it
    (``"funnel"``) holds."""
    from datetime import datetime, timezone

    from landscape.errors import LandscapeError
    from landscape.io.files import first_line
    from landscape.io.progress import FINISHED, load_progress, progress_path
    from landscape.mapping import funnel, pipeline

    describe, arrays = ((pipeline.describe_progress, pipeline.progress_arrays) if kind == "map"
                        else (funnel.describe_progress, funnel.progress_arrays))
    state = load_progress(path, kind, arrays=arrays)
    partial = progress_path(path, kind)
    saved = datetime.fromtimestamp(partial.stat().st_mtime, timezone.utc).isoformat(timespec="seconds")
    try:
        lines = describe(state or {})
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as err:  # (what a damaged file holds)
        why = f"no {err.args[0]!r}" if isinstance(err, KeyError) else first_line(err)
        raise LandscapeError(f"{partial} is damaged ({why}): --resume would refuse it; delete it to start afresh") \
            from None
    what = "map" if kind == "map" else "funnel probe"
    # (work complete whose result was not written, or whose progress was not cleared after)
    status = "finished" if (state or {}).get(FINISHED) else "unfinished"
    if as_json:
        click.echo(json.dumps({status: str(path), "work": what, "status": status, "progress": str(partial),
                               "saved": saved, **dict(lines)}, indent=2))
        return
    click.echo(f"{status} {'map' if kind == 'map' else 'funnel probe of'} {path} (its progress in "
               f"{partial}, saved {saved})")
    for key, value in lines:
        click.echo(f"  {key:<10} {value}")
    command = f"the same `landscape {'map' if kind == 'map' else 'funnel'}` command with --resume"
    click.echo(f"get its result: {command} (the work is not done again)" if status == "finished"
               else f"continue it: {command}")
