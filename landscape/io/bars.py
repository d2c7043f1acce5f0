"""Progress bars for long work, readable on a terminal and in a log.

On a terminal, :func:`progress_bar` is tqdm's bar, redrawn in place. Where standard error
is not a terminal (a batch job's log file, a pipe), a redrawn bar would be one endless line
of carriage returns, megabytes of it over a long map; there the bar writes plain lines: its
first once it has run :data:`LOG_EVERY` seconds, then at most one every :data:`LOG_EVERY`
seconds, and its last state when it closes (a bar that does not stay, a stage of a map whose
caller then prints what it found: only where it wrote a line before). A stage that takes a
few seconds thus leaves no line at 0 % in the log.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

__all__ = ["LOG_EVERY", "progress_bar"]

# Seconds between two lines of a bar in a log.
LOG_EVERY = 30.0


class _LogLines:
    """A stream for tqdm that turns its redraws into lines: each redraw (a carriage return
    and the bar) becomes one line, written when ``every`` seconds have passed since the bar
    began or its last line; the latest one held back is written when the bar ends (its
    closing newline), or when it is cleared (a bar that does not stay) after it wrote lines."""

    def __init__(self, stream: IO[str], every: float):
        self.stream, self.every = stream, every
        self.last = time.monotonic()
        self.wrote = False
        self.held: str | None = None

    def write(self, text: str) -> int:
        line = text.replace("\r", "").replace("\x1b[A", "").strip()
        now = time.monotonic()
        if line:
            if now - self.last >= self.every:
                self._emit(line, now)
            else:
                self.held = line
        elif self.held is not None and ("\n" in text or self.wrote):  # the bar is done: its last state
            self._emit(self.held, now)
        return len(text)

    def _emit(self, line: str, now: float) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self.last, self.held, self.wrote = now, None, True

    def flush(self) -> None:
        self.stream.flush()

    @property
    def encoding(self) -> str | None:  # tqdm draws with unicode blocks where the stream takes them
        return getattr(self.stream, "encoding", None)


def _is_terminal(stream: IO[str]) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", initial: int = 0,
                 leave: bool = True, stream: IO[str] | None = None) -> Any:
    """A tqdm bar on ``stream`` (standard error when not given): redrawn in place on a
    terminal; elsewhere plain lines (see the module's note): the first after
    :data:`LOG_EVERY` seconds, then at most one every :data:`LOG_EVERY` seconds, and the
    bar's last state when it closes (a bar without ``leave``, which its caller follows with
    a line of its own: only when it wrote lines before)."""
    from tqdm import tqdm

    stream = sys.stderr if stream is None else stream
    if _is_terminal(stream):
        return tqdm(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=stream, dynamic_ncols=True)

    class LogBar(tqdm):
        def close(self) -> None:
            if not self.disable and not self.leave:
                self.refresh()  # its last state, for the log (tqdm clears such a bar without drawing it)
            super().close()

    # (no width: a log line is never cut, whatever the statistics after the bar)
    return LogBar(total=total, desc=desc, unit=unit, initial=initial, leave=leave, file=_LogLines(stream, LOG_EVERY))
