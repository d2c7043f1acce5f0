"""Files written safely, read safely, and plain data as JSON: one of each, used everywhere.

- :func:`atomic_path`: write to a temporary file beside the target and rename it over the
  target only once complete (after ``fsync``), so a killed run never leaves half a file
  and an existing file is replaced only by a complete one (maps, progress files,
  checkpoints, pictures, reports, logs);
- :func:`load_torch`: ``torch.load(..., weights_only=True)`` with one-line errors: a file
  that asks to run code is refused, never executed (DESIGN, "Security");
- :func:`to_json` / :func:`json_safe`: numpy scalars and arrays, paths and non-finite
  numbers as plain JSON.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import uuid4

from landscape.errors import LandscapeError


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success, flush it to disk
    and rename it onto ``path``.

    Creates the parent folder. On any exception (KeyboardInterrupt included) the temporary
    file is removed and the file at ``path``, if any, is left as it was.

    Examples
    --------
    >>> with atomic_path("notes.txt") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("complete or nothing")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid4().hex[:12]}.tmp{path.suffix}")
    try:
        yield tmp
        if tmp.exists():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def load_torch(path: str | os.PathLike, what: str = "file") -> Any:
    """Read a ``.pt`` file as tensors and plain data only (``weights_only=True``).

    Parameters
    ----------
    path : path
    what : str
        What the file should be, for messages ("checkpoint", "state dict").

    Raises
    ------
    LandscapeError
        Missing file, a folder, a file that asks to import and run code (refused, never
        run), or one that does not read (corrupt, truncated, not PyTorch); one line.
    """
    import torch

    path = Path(path)
    if not path.exists():
        raise LandscapeError(f"{path}: no such file")
    if path.is_dir():
        raise LandscapeError(f"{path}: is a directory, expected a {what}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"(unsupported GLOBAL \S+|Unsupported global: \S+)", str(exc), flags=re.IGNORECASE)
        if found:  # the file asks to import and call code: never run it
            raise LandscapeError(
                f"{path}: refused to load: it asks to run code ({found.group(1)}); a {what} holds only tensors "
                "and plain data"
            ) from None
        raise LandscapeError(f"{path}: not a readable PyTorch {what}: refused to load it as tensors and plain "
                             "data (weights_only=True; corrupt, or pickled objects)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise LandscapeError(f"{path}: not a readable PyTorch {what} (corrupt or truncated): {_one_line(exc)}") from None


def json_safe(obj: Any, *, keep_nonfinite: bool = False) -> Any:
    """``obj`` as plain JSON data: numpy scalars and arrays as numbers and lists, paths as
    strings, tuples as lists, non-finite floats as None (kept with ``keep_nonfinite``, for
    Python's own JSON reader). Other objects are left as they are (``json.dumps`` then
    refuses them)."""
    if isinstance(obj, Mapping):
        return {str(k): json_safe(v, keep_nonfinite=keep_nonfinite) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v, keep_nonfinite=keep_nonfinite) for v in obj]
    if hasattr(obj, "tolist") and hasattr(obj, "dtype"):  # numpy arrays and scalars, tensors
        return json_safe(obj.tolist(), keep_nonfinite=keep_nonfinite)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj) and not keep_nonfinite:
        return None
    return obj


def to_json(obj: Any, *, indent: int | None = None, keep_nonfinite: bool = False) -> str:
    """:func:`json_safe` then ``json.dumps`` with sorted keys (the same text for the same data).

    Raises
    ------
    TypeError
        For objects that are not plain data.
    """
    return json.dumps(json_safe(obj, keep_nonfinite=keep_nonfinite), indent=indent, sort_keys=True)


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none): a
    library error (h5py's, say) as one line of ours."""
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__
