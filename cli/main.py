"""The `landscape` command: a thin click app over the libraries.

Each subcommand lives in its own module, imported only when that command is asked for
(or when ``landscape --help`` lists them); the modules import torch, numpy and the
libraries inside their command functions, so help is instant.

Bad input ends in one line, ``error: ...``, and exit status 1 (2 for usage errors), never a
traceback. Set LANDSCAPE_DEBUG=1 to see the traceback of an unexpected failure.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from landscape import __version__

#: Command name -> (module, attribute), in the order of a typical session.
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("landscape.cli.train_cmd", "train_cmd"),
    "sample": ("landscape.cli.sample_cmd", "sample_cmd"),
    "info": ("landscape.cli.info_cmd", "info"),
    "map": ("landscape.cli.map_cmd", "map_cmd"),
    "tree": ("landscape.cli.tree_cmd", "tree_cmd"),
    "check": ("landscape.cli.check_cmd", "check_cmd"),
    "funnel": ("landscape.cli.funnel_cmd", "funnel_cmd"),
    "diagnose": ("landscape.cli.diagnose_cmd", "diagnose_cmd"),
    "compare": ("landscape.cli.compare_cmd", "compare_cmd"),
    "demo": ("landscape.cli.demo_cmd", "demo"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (``COMMANDS``)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        return getattr(importlib.import_module(module), attribute)


#: The commands that spread their work over torchrun's ranks; the others run as one process.
RANKED = ("map", "train")


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from landscape import tool_version

    click.echo(f"ebm-landscape, version {tool_version()}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help=f"Show the version and exit ({__version__}; run from a git checkout, with its commit: "
                   "maps, checkpoints and reports are stamped with the same).")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Train energy-based models and map their energy landscapes.

    \b
    Typical use:
      landscape train --preset toy-convergent --out rings.pt
      landscape sample rings.pt --steps 5000 --init data     # chains from data, 5000 steps
      landscape info rings.pt
      landscape map rings.pt                                  # basins and barrier tree -> rings.h5
      landscape tree rings.h5 --plot tree.png                 # the tree as text and a picture
      landscape check rings.pt                                # convergent or not? (the long-run check)
      landscape funnel rings.pt                               # noise-level funnel probe -> /funnel in rings.h5
      landscape diagnose rings.h5                             # spurious minima -> /diagnosis, HTML report
      landscape compare a.pt b.pt                             # two models side by side
      landscape demo --out demo_out                           # CPU presets, a few minutes

    \b
    Shared options mean the same in every command: --chains N, --steps N (Langevin steps
    per chain; for train, parameter updates), --eps EPS and --temperature T of
    x <- x - (eps^2/2) grad U(x) + sqrt(T) eps z, --device [auto|cpu|cuda|cuda:N], --seed,
    --out, --force (overwrite), --quiet (no progress bars), --json (machine-readable output;
    on an error nothing goes to standard output, the one-line error to standard error).
    Exit status: 0 done, 1 error, 2 usage error, 3 a --strict test failed (check, compare),
    130 interrupted (Ctrl-C), 143 terminated (SIGTERM; long runs keep their progress either way).
    Under torchrun, map and train spread over the ranks; the other commands refuse it (they run as one process).
    """
    from landscape.cli.errors import torchrun_rank

    rank, world = torchrun_rank()
    if world > 1 and ctx.invoked_subcommand not in RANKED:
        if rank != 0:  # (rank 0 says why; torchrun then stops the job)
            ctx.exit(1)
        from landscape.errors import LandscapeError

        raise LandscapeError(f"landscape {ctx.invoked_subcommand} runs as one process: run it without torchrun "
                             f"(only {' and '.join(RANKED)} spread over its ranks)")


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app, turning known errors into one line."""
    from landscape.cli.errors import run_guarded

    argv = sys.argv[1:] if argv is None else argv
    code = run_guarded(cli, argv or ["--help"], debug=os.environ.get("LANDSCAPE_DEBUG") == "1", last=True)
    ranks = sys.modules.get("landscape.distributed")  # (imported only by the commands that join ranks)
    if code not in (0, 130, 143) and os.environ.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        from landscape.distributed import await_peers

        await_peers()  # (torchrun stops the others when one fails: they say their line first)
    if ranks is not None and ranks.joined():
        ranks.end_process(code)  # (skips the interpreter's teardown, which a gloo group can abort)
    sys.exit(code)


if __name__ == "__main__":
    main()
