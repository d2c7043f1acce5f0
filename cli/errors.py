"""Turn the libraries' errors into one-line messages and exit codes."""

from __future__ import annotations

import traceback

import click

from landscape import data
from landscape.errors import LandscapeError

KNOWN = (LandscapeError, data.DataError, FileNotFoundError, PermissionError, IsADirectoryError)


def run_guarded(app: click.Command, argv: list[str] | None, debug: bool = False) -> int:
    """Run ``app``; return its exit code. Known errors print ``error: <one line>``."""
    try:
        # without standalone mode click returns a command's exit code instead of exiting
        code = app.main(args=argv, prog_name="landscape", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("error: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KNOWN as exc:
        click.echo(f"error: {one_line(exc)}", err=True)
        return 1
    except KeyboardInterrupt:
        click.echo("error: interrupted", err=True)
        return 130
    except Exception as exc:  # an unexpected failure is a bug: say so, in one line
        if debug:
            traceback.print_exc()
        click.echo(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)} (set LANDSCAPE_DEBUG=1 for the traceback)",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {exc.strerror or text}"
    return text or type(exc).__name__

