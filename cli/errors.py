"""Turn the libraries' errors into one-line messages and exit codes."""

from __future__ import annotations

import os
import re
import signal
import sys
import threading
import traceback
import warnings
from contextlib import suppress
from typing import Any

import click

from landscape.errors import CompileWarning, LandscapeError, Terminated

#: Errors that are the user's input, not a bug: printed as one line, exit status 1.
KNOWN: tuple[type[BaseException], ...] = (LandscapeError, FileNotFoundError, PermissionError, IsADirectoryError)


def known_errors() -> tuple[type[BaseException], ...]:
    """``KNOWN`` plus the data package's error, if that package was imported (it imports
    torch, so the command line imports it only when a command needs data; an error of
    it cannot have been raised otherwise)."""
    data_errors = sys.modules.get("landscape.data.errors")
    return KNOWN + ((data_errors.DataError,) if data_errors is not None else ())


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


class _Reader:
    """Standard output that outlives its reader: once the pipe it writes to is closed
    (``landscape map ... | head -1``), what follows is dropped and the run goes on to
    write its files, instead of dying on ``BrokenPipeError`` half-way."""

    def __init__(self, stream: Any) -> None:
        self._stream, self._gone = stream, False

    def write(self, text: str) -> int:
        if not self._gone:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._drop()
        return len(text)

    def flush(self) -> None:
        if not self._gone:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._drop()

    def _drop(self) -> None:
        import os

        self._gone = True
        with suppress(OSError, ValueError):  # (so the interpreter's last flush at exit is silent too)
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def run_guarded(app: click.Command, argv: list[str] | None, debug: bool = False, last: bool = False) -> int:
    """Run ``app``; return its exit code. Errors print ``error: <one line>``: exit status
    1 for bad input, 2 for a usage error (with the command's help to look at), 130 for
    Ctrl-C and 143 for SIGTERM, both of which stop a run as Ctrl-C does (progress kept).
    Output to a pipe closed early is dropped; the command goes on. ``last``: the process
    ends after it (the console entry point), so Ctrl-C and SIGTERM are ignored once the
    command is over: a signal while the interpreter exits would end a run whose files are
    written with 130 or 143 and no word."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    stdout = sys.stdout
    if stdout is not None and not isinstance(stdout, _Reader) and hasattr(stdout, "fileno"):
        sys.stdout = _Reader(stdout)  # type: ignore[assignment]
    try:
        with warnings.catch_warnings():
            # a failed compile (from Python a warning) is a note once the command is done
            failed: list[str] = []
            shown = warnings.showwarning

            def show(message, category, *args, **kwargs):  # type: ignore[no-untyped-def]
                if not issubclass(category, CompileWarning):
                    shown(message, category, *args, **kwargs)
                elif str(message) not in failed:
                    failed.append(str(message))

            warnings.showwarning = show
            warnings.simplefilter("always", CompileWarning)
            code = _run(app, argv, debug)
            if code in (0, 3) and os.environ.get("RANK", "0") == "0":  # (an error stays one line; rank 0 speaks)
                for text in failed:
                    click.echo(f"note: {text}", err=True)
            return code
    finally:
        if sys.stdout is not stdout and isinstance(sys.stdout, _Reader):
            sys.stdout = stdout
        if last and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
        elif previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _interrupt_text(exc: BaseException | None) -> str:
    """What an interruption cost, where it says (a second signal that stopped a training
    run without saving): ``": <text>"``, else empty."""
    args = getattr(exc, "args", ())
    return f": {args[0]}" if args and isinstance(args[0], str) and args[0] else ""


def _run(app: click.Command, argv: list[str] | None, debug: bool) -> int:
    try:
        # without standalone mode click returns a command's exit code instead of exiting
        code = app.main(args=argv, prog_name="landscape", standalone_mode=False)
    except click.exceptions.Abort as exc:  # (click's name for Ctrl-C inside a command)
        said = _interrupt_text(exc.__cause__)
        if isinstance(exc.__cause__, Terminated):
            click.echo(f"error: terminated (SIGTERM){said}", err=True)
            return 143
        click.echo(f"error: interrupted (Ctrl-C){said}", err=True)
        return 130
    except click.UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else "landscape"
        text = one_line_text(exc.format_message())
        boxed = exc.ctx is not None and any(p.name == "box" for p in exc.ctx.command.params)
        if boxed and re.fullmatch(r"No such option '-[\d.]+'\.?", text):  # (--box -1 1 -2 2: a number left over)
            text = text.rstrip(".") + (" (a negative number left over after an option's values: --box takes one "
                                       "LOW HIGH, the same for all dimensions)")
        click.echo(f"error: {text} (see: {command} --help)", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"error: {one_line_text(exc.format_message())}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except KeyboardInterrupt as exc:
        said = _interrupt_text(exc)
        if isinstance(exc, Terminated):
            click.echo(f"error: terminated (SIGTERM){said}", err=True)
            return 143
        click.echo(f"error: interrupted (Ctrl-C){said}", err=True)
        return 130
    except Exception as exc:  # noqa: BLE001 - sorted below: known errors, else a bug
        if isinstance(exc, known_errors()) or _disk_full_or_read_only(exc):
            click.echo(f"error: {one_line(exc)}", err=True)
            return 1
        said = _out_of_memory(exc)
        if said is not None:
            click.echo(f"error: out of memory: {said} (this machine, or the limits set on this process, leave too "
                       "little: free memory, or ask for less)", err=True)
            return 1
        if _rank_lost(exc):
            click.echo(f"error: another rank of this torchrun job stopped ({one_line(exc)[:120]}); progress "
                       "already saved is kept: rerun the command, with --resume to continue from it", err=True)
            return 1
        if debug:  # an unexpected failure is a bug: say so, in one line
            traceback.print_exc()
        click.echo(
            f"error: unexpected {type(exc).__name__}: {one_line(exc)} (set LANDSCAPE_DEBUG=1 for the traceback)",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0


def _disk_full_or_read_only(exc: BaseException) -> bool:
    """A write the disk refused (full, over quota, read-only): the machine's state, not a
    bug, wherever it happened (the library names most of them itself, with the file)."""
    import errno

    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG)


def _out_of_memory(exc: BaseException) -> str | None:
    """What an allocation the machine refused asked for (host memory, or a GPU's): its
    state, not a bug (the checks before large allocations name most of them with the sizes
    involved); None for any other error."""
    torch = sys.modules.get("torch")
    text = one_line(exc)
    if isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ()))):
        return text[:200]
    cpu = re.search(r"DefaultCPUAllocator: can't allocate memory: you tried to allocate (\d+) bytes", text)
    if not (isinstance(exc, RuntimeError) and cpu):
        return None
    from landscape.checks import format_bytes

    return f"could not allocate {format_bytes(int(cpu.group(1)))}"


def torchrun_rank() -> tuple[int, int]:
    """``(RANK, WORLD_SIZE)`` as torchrun sets them, (0, 1) outside it or where they do not
    read as numbers (the command that joins the job says so); torch is not imported."""
    import os

    try:
        return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 0, 1


def _rank_lost(exc: BaseException) -> bool:
    """A collective operation failed because another rank of the torchrun job is gone
    (killed, out of memory, its machine lost): the job's state, not a bug."""
    if torchrun_rank()[1] < 2:
        return False
    dist = sys.modules.get("torch.distributed")
    if dist is not None and isinstance(exc, getattr(dist, "DistError", ())):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(
        mark in text for mark in ("gloo/transport", "Connection reset by peer", "Connection closed by peer",
                                  "NCCL communicator was aborted", "ProcessGroupNCCL"))


def one_line_text(text: str) -> str:
    """``text`` on one line, its control characters written out (a message may quote a
    file's strings: no escape sequence of theirs reaches the terminal)."""
    from landscape.io.files import printable

    return printable(" ".join(text.split()))


def one_line(exc: BaseException) -> str:
    text = one_line_text(str(exc))
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = one_line_text(f"{exc.filename}: {exc.strerror or text}")
    return text or type(exc).__name__
