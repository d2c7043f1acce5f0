"""The `landscape` command: a thin click app over the libraries.

Bad input ends in one line, ``error: ...``, and exit status 1 (2 for usage errors), never a
traceback. Set LANDSCAPE_DEBUG=1 to see the traceback of an unexpected failure.
"""

from __future__ import annotations

import os
import sys

import click

from landscape.cli.check_cmd import check_cmd
from landscape.cli.compare_cmd import compare_cmd
from landscape.cli.demo_cmd import demo
from landscape.cli.diagnose_cmd import diagnose_cmd
from landscape.cli.funnel_cmd import funnel_cmd
from landscape.cli.info_cmd import info
from landscape.cli.map_cmd import map_cmd
from landscape.cli.sample_cmd import sample_cmd
from landscape.cli.train_cmd import train_cmd
from landscape.cli.tree_cmd import tree_cmd
from landscape import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="ebm-landscape")
def cli() -> None:
    """Train energy-based models and map their energy landscapes.

    \b
    Typical use:
      landscape train --preset toy-convergent --out rings.pt
      landscape sample rings.pt --steps 5000 --init data     # the long-run check
      landscape info rings.pt
      landscape map rings.pt                                  # basins and barrier tree -> rings.h5
      landscape tree rings.h5 --plot tree.png                 # the tree as text and a picture
      landscape check rings.pt                                # convergent or not? (the long-run check)
      landscape funnel rings.pt                               # noise-level funnel probe -> /funnel in rings.h5
      landscape diagnose rings.h5                             # spurious minima -> /diagnosis, HTML report
      landscape compare a.pt b.pt                             # two models side by side
      landscape demo --out demo_out                           # CPU presets, a few minutes
    """


cli.add_command(train_cmd)
cli.add_command(sample_cmd)
cli.add_command(info)
cli.add_command(map_cmd)
cli.add_command(tree_cmd)
cli.add_command(check_cmd)
cli.add_command(funnel_cmd)
cli.add_command(diagnose_cmd)
cli.add_command(compare_cmd)
cli.add_command(demo)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning known errors into one line."""
    from landscape.cli.errors import run_guarded

    sys.exit(run_guarded(cli, argv, debug=os.environ.get("LANDSCAPE_DEBUG") == "1"))


if __name__ == "__main__":
    main()
