"""`landscape demo`: train the CPU presets on the embedded data and inspect them."""

from __future__ import annotations

from pathlib import Path

import click

@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("demo_out"), show_default=True,
              help="Folder for checkpoints, run logs, figures and summary.md.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="auto", show_default=True,
              help="Where to train.")
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Multiply every run's number of updates (0.1 for a smoke test).")
@click.option("--no-map", is_flag=True, help="Train and run chains only; skip the landscape maps and their diagnosis.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
def demo(out, device, scale, no_map, quiet):
    """Train the CPU demo presets (rings, digits convergent and non-convergent), run
    long chains on both digits models, map all three landscapes, then diagnose them: the
    long-run convergence check and the funnel probe of the digits models, spurious minima
    in all three maps, and the two digits models compared. About 9 minutes on 2 CPU
    cores.

    Re-running continues unfinished runs and skips finished ones (maps, funnel probes
    and diagnoses too). Results: checkpoints, <name>.run/ folders (run log,
    diagnostics.png, samples), long-run pictures, <name>.h5 maps with <name>_tree.png,
    <name>_basins.png and <name>_levels.png, <name>_check.png, <name>_funnel.png,
    <name>_diagnosis.html, compare_digits.png, and summary.md.
    """
    from landscape.train.demo import run_demo

    run_demo(out, device=device, scale=scale, no_map=no_map, quiet=quiet, say=click.echo)
