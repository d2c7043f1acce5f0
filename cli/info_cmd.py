"""`landscape info`: say what a checkpoint or a map holds."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON instead.")
def info(file, as_json):
    """Describe a checkpoint (model, data, sampler, regime, progress, last diagnostics) or a
    landscape map (source, counts, settings, levels; `landscape tree` shows the tree)."""
    from train.checkpoint import describe, load_checkpoint

    from cli.energy_source import is_map_file

    if file.suffix.lower() in (".h5", ".hdf5") or is_map_file(file):
        _map_info(file, as_json)
        return
    ckpt = load_checkpoint(file)
    if as_json:
        meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "resume")}
        click.echo(json.dumps(meta, indent=2, default=str))
        return
    click.echo(f"{file}")
    for key, value in describe(ckpt):
        click.echo(f"  {key:<10} {value}")


def _map_info(path: Path, as_json: bool) -> None:
    from cli.tree_cmd import map_header, map_summary
    from landscape.figures import level_view
    from landscape.mapfile import read_map

    content = read_map(path)
    view = level_view(content)
    if as_json:
        summary = map_summary(path, content, view, {})
        click.echo(json.dumps({k: v for k, v in summary.items() if k not in ("basins", "merges")}, indent=2))
        return
    for line in map_header(path, content, view):
        click.echo(line)
