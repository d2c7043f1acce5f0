"""`landscape info`: say what a checkpoint holds."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("info")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the checkpoint's metadata as JSON instead.")
def info(file, as_json):
    """Describe a checkpoint: model, data, sampler, regime, progress, last diagnostics."""
    from train.checkpoint import describe, load_checkpoint

    ckpt = load_checkpoint(file)
    if as_json:
        meta = {k: v for k, v in ckpt.items() if k not in ("state_dict", "resume")}
        click.echo(json.dumps(meta, indent=2, default=str))
        return
    click.echo(f"{file}")
    for key, value in describe(ckpt):
        click.echo(f"  {key:<10} {value}")
