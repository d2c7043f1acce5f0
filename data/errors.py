"""Errors the data package raises; the CLI prints their one-line message and exits 1.

``data`` imports nothing from ``landscape`` but its memory probe, so it has its own base class. ``DataError``
derives from ``ValueError`` because every case is a value the caller handed in (a name,
a path, a file's contents) that cannot be turned into a dataset.
"""


class DataError(ValueError):
    """A dataset that cannot be loaded as asked: unknown name, corrupt file, bad argument.

    The message is one line that names the offending file or value and, where it
    helps, what to do about it.
    """


class DatasetNotFound(DataError):
    """The files of a dataset are not where they are expected; nothing is downloaded."""
