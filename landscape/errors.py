"""Errors the library raises for bad input; the CLI prints their one-line message."""


class LandscapeError(Exception):
    """A user-facing error: bad input, a file that is not ours, non-finite energies.

    The message is one line that says what is wrong and, where it helps, what to do.
    """


class NonFiniteEnergyError(LandscapeError):
    """A Langevin chain produced a non-finite energy or gradient."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (a batch system's time limit, ``kill``), taken as Ctrl-C is: a long run keeps
    its progress and says how to continue it; the command exits with status 143."""


class CompileWarning(UserWarning):
    """Compiling an energy's steps (``Energy(..., compile=True)``) failed: they ran eagerly,
    the same steps, only slower. Warned once per energy from Python; the commands say it
    in a note of their own instead."""
