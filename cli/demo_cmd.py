"""`landscape demo`: train the CPU presets on the embedded data and inspect them."""

from __future__ import annotations

from pathlib import Path

import click

from landscape.cli.options import Command, device_option, out_option, quiet_option


@click.command("demo", cls=Command,
               short_help="Train, map and diagnose the CPU demo models (a few minutes).")
@out_option("Folder for checkpoints, run logs, figures and summary.md.", metavar="DIR", folder=True,
            default=Path("demo_out"))
@device_option()
@click.option("--scale", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Multiply every run's number of updates (0.1 for a smoke test); below 1 also the maps' and "
                   "funnel probes' chains.")
@click.option("--no-map", is_flag=True, help="Train and run chains only; skip the landscape maps and their diagnosis.")
@quiet_option()
def demo(out, device, scale, no_map, quiet):
    """Train the CPU demo presets (rings, digits convergent and non-convergent), run
    long chains on both digits models, map all three landscapes, then diagnose them: the
    long-run convergence check and the funnel probe of the digits models, spurious minima
    in all three maps, and the two digits models compared. 7.5-9.5 minutes on 2
    CPU cores.

    Re-running continues unfinished trainings, maps and funnel probes and skips finished
    ones (and diagnoses); the chains, long-run checks and comparison, seconds each, run
    again. Results: checkpoints, <name>.run/ folders (run log,
    diagnostics.png, samples), long-run pictures, <name>.h5 maps with <name>_tree.png,
    <name>_basins.png and <name>_levels.png, <name>_check.png, <name>_funnel.png,
    <name>_diagnosis.html, compare_digits.png, and summary.md.

    \b
    Examples:
      landscape demo                           # -> demo_out/summary.md
      landscape demo --out smoke --scale 0.1   # a quick smoke test
      landscape demo --no-map --device cuda
    """
    from landscape.train.demo import run_demo

    run_demo(out, device=device, scale=scale, no_map=no_map, quiet=quiet, say=click.echo)
