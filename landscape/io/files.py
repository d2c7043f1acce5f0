"""Files written safely, read safely, and plain data as JSON: one of each, used everywhere.

- :func:`atomic_path`: write to a temporary file beside the target and rename it over the
  target only once complete (after ``fsync``), so a killed run never leaves half a file
  and an existing file is replaced only by a complete one (maps, progress files,
  checkpoints, pictures, reports, logs);
- :func:`new_hdf5`: the same for HDF5 files, built in memory where they fit, so a full
  disk fails a plain write;
- :func:`output_lock`: one writer per output: an ``fcntl`` lock held for a whole command,
  so a second run on the same map or checkpoint gets a one-line error naming the holder's
  pid instead of silently racing it; it also removes the temporary files a killed run left;
- :func:`disk_error`: full, read-only and forbidden disks as one line naming the file;
- :func:`load_torch`: ``torch.load(..., weights_only=True)`` with one-line errors: a file
  that asks to run code is refused, never executed (files are data);
- :func:`to_json` / :func:`json_safe`: numpy scalars and arrays, paths and non-finite
  numbers as plain JSON.
"""

from __future__ import annotations

import errno
import hashlib
import fcntl
import json
import math
import os
import pickle
import re
import socket
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import uuid4

from landscape.errors import LandscapeError


#: How deep :func:`signals_deferred` blocks are nested, and the signals held back.
_DEFERRED: dict[str, Any] = {"depth": 0, "held": [], "previous": {}}


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM back while the block writes a result, and deliver them
    (to the handlers there were before) once it is done.

    A signal's handler raises its exception wherever the interpreter is, and inside h5py's
    clean-up callbacks that exception is printed and dropped: a SIGTERM that came while a
    map was written was lost (the run went on and exited 0, a traceback in its log). And a
    command writing two outputs together (a map and its figure) must not stop between
    them. Only in the main thread (signals are delivered there); blocks nest.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    state = _DEFERRED
    if state["depth"] == 0:
        state["held"] = []

        def hold(signum: int, frame: Any) -> None:
            state["held"].append(signum)

        state["previous"] = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    state["depth"] += 1
    try:
        yield
    finally:
        state["depth"] -= 1
        if state["depth"] == 0:
            for sig, handler in state["previous"].items():
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            for signum in dict.fromkeys(state["held"]):  # (each signal once, in the order they came)
                signal.raise_signal(signum)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same suffix); on success, flush it to disk
    and rename it onto ``path``. Ctrl-C and SIGTERM wait until the file is written
    (:func:`signals_deferred`).

    Creates the parent folder. On any exception (KeyboardInterrupt included) the temporary
    file is removed and the file at ``path``, if any, is left as it was.

    Examples
    --------
    >>> with atomic_path("notes.txt") as tmp:  # doctest: +SKIP
    ...     tmp.write_text("complete or nothing")
    """
    path = file_path(path)
    make_folder(path)
    tmp = path.with_name(f".{path.stem}.{uuid4().hex[:12]}.tmp{path.suffix}")
    with signals_deferred():  # (a result is written whole, or not at all; a signal after it)
        try:
            yield tmp
            if tmp.exists():
                fd = os.open(tmp, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            os.replace(tmp, path)
        except BaseException as exc:
            with suppress(OSError):
                tmp.unlink()
            named = disk_error(exc, path, tmp)
            if named is not None:
                raise named from None
            raise


#: HDF5 files up to this size (bytes, by their caller's estimate) are built in memory and
#: written with plain file writes (:func:`new_hdf5`).
HDF5_IN_MEMORY = 512 << 20


@contextmanager
def new_hdf5(path: str | os.PathLike, size_hint: int = 0) -> Iterator[Any]:
    """A new HDF5 file (an ``h5py.File`` open for writing) that becomes ``path`` only once
    complete (:func:`atomic_path`).

    Built in memory and then written with plain file writes, where ``size_hint`` (the
    bytes it will hold, about) is at most :data:`HDF5_IN_MEMORY`: a disk that fills up
    then fails one ``write`` call, a one-line error. HDF5 writing straight to a full disk
    left its library holding a file it could neither finish nor close, which printed
    tracebacks and crashed the interpreter at exit. Larger files are written straight
    after a check that the disk has room for them.
    """
    import io

    import h5py

    with atomic_path(path) as tmp:
        if size_hint <= HDF5_IN_MEMORY:
            buffer = io.BytesIO()
            with h5py.File(buffer, "w") as f:
                yield f
            with open(tmp, "wb") as out:
                out.write(buffer.getbuffer())
        else:
            free = disk_free(tmp.parent)
            if free is not None and free < size_hint + (16 << 20):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp))
            with h5py.File(tmp, "w-") as f:
                yield f


def disk_free(folder: Path) -> int | None:
    """Bytes free on the disk of ``folder`` for this user (None where it cannot tell)."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


@contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Disk errors while the block writes ``path`` in place (a log appended to) as one line
    naming it (:func:`disk_error`); an ``OSError`` writing a file has no file name in it."""
    try:
        yield
    except OSError as exc:
        named = disk_error(exc, Path(path), Path(path).parent)
        if named is None:
            raise
        raise named from None


#: How files begin, by kind: ``torch.save`` writes a zip archive (torch >= 1.6) or, in its
#: legacy format, a pickled magic number (protocol 2, then the long 0x1950a86a20f9469cfc6c);
#: every HDF5 file (a map, its progress) starts with HDF5's own signature.
ZIP_SIGNATURE = b"PK\x03\x04"
TORCH_LEGACY_SIGNATURE = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def file_path(path: str | os.PathLike) -> Path:
    """``path`` as a Path, checked to name a file to write: ``""``, ``"."`` and ``".."``
    name none (pathlib's bare ValueError further on)."""
    if Path(path).name in ("", ".", ".."):
        raise LandscapeError(f"{os.fspath(path)!r} names no file to write: give a file name")
    return Path(path)


def pictures_kept(paths: list[Path], *, named: bool, force: bool) -> list[Path]:
    """Those of the pictures ``paths`` a rerun keeps instead of drawing: the ones that exist,
    at their default names (not ``named`` by the user), without ``force``; [] where they
    are to be drawn. A named picture that exists, without ``force``, is refused: the rerun
    of a command (check, compare) is for its verdict, and the earlier pictures are kept.

    Raises
    ------
    LandscapeError
        A picture named by the user exists and ``force`` is not given.
    """
    there = [Path(p) for p in paths if Path(p).exists()]
    if there and not force and named:
        raise LandscapeError(f"{there[0]} exists: pass --force to overwrite it")
    return [] if force else there


def changed_since(output: str | os.PathLike, inputs: list[Path | None]) -> list[Path]:
    """Those of ``inputs`` modified after ``output`` was (a picture kept from an earlier
    run that may show an earlier model); none where a time cannot be read."""
    try:
        made = os.stat(output).st_mtime
    except OSError:
        return []
    newer = []
    for path in inputs:
        with suppress(OSError):
            if path is not None and os.stat(path).st_mtime > made:
                newer.append(Path(path))
    return newer


def refuse_overwriting_input(output: str | os.PathLike, inputs: list[Any], what: str) -> None:
    """LandscapeError where ``output`` is one of ``inputs`` (the same file, links followed;
    None and empty entries skipped): writing it would destroy what the command reads
    (``--force`` overwrites an earlier output, never the input). ``what`` names the input
    ("the map it diagnoses")."""
    out = Path(output)
    for given in inputs:
        if not given:
            continue
        path = Path(given)
        try:
            same = os.path.samefile(out, path)
        except OSError:  # (one of them missing: the same only by name)
            same = os.path.abspath(out) == os.path.abspath(path)
        if same:
            raise LandscapeError(f"{out} is {what}: write to another file")


def make_folder(path: Path) -> None:
    """Create the folder ``path`` goes into; a disk error as one line (:func:`disk_error`)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = next((p for p in (path.parent, *path.parent.parents) if p.exists() and not p.is_dir()), path.parent)
        raise LandscapeError(f"cannot write {path}: {blocking} is a file, not a folder") from None
    except OSError as exc:
        named = disk_error(exc, path, path.parent)
        if named is None:  # (a folder under /proc, say: the system's reason, with the folder)
            raise LandscapeError(f"cannot write {path}: its folder {path.parent} cannot be made "
                                 f"({exc.strerror or exc})") from None
        raise named from None


def _temp_pattern(path: Path) -> re.Pattern[str]:
    """The names :func:`atomic_path` gives the temporary files of ``path``."""
    return re.compile(rf"\.{re.escape(path.stem)}\.[0-9a-f]{{12}}\.tmp{re.escape(path.suffix)}")


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of ``path`` that a killed writer left beside it; call
    only while holding :func:`output_lock` on ``path`` (then no live writer owns one).
    Returns what was removed."""
    path = Path(path)
    pattern = _temp_pattern(path)
    removed = []
    with suppress(OSError):
        for entry in path.parent.iterdir():
            if pattern.fullmatch(entry.name) and entry.is_file():
                with suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed


#: Why a write failed, by errno, for :func:`disk_error`.
_DISK_ERRNOS = {
    errno.ENOSPC: "no space left on the disk of {folder}",
    errno.EDQUOT: "disk quota exceeded in {folder}",
    errno.EROFS: "{folder} is on a read-only file system",
    errno.EFBIG: "the file is too large for the file system of {folder}",
    errno.EACCES: "no permission to write in {folder}",
    errno.EPERM: "no permission to write in {folder}",
    errno.EISDIR: "it is a folder",
}


def disk_error(exc: BaseException, path: Path, *own: Path) -> LandscapeError | None:
    """``exc`` as a one-line error when it is the disk refusing to write ``path`` (full,
    over quota, read-only, forbidden), else None. Permission errors count only when they
    are about ``path`` itself or the files in ``own`` (its temporary file, its folder)."""
    code = getattr(exc, "errno", None)
    if not isinstance(exc, OSError) or code not in _DISK_ERRNOS:
        return None
    if code in (errno.EACCES, errno.EPERM, errno.EISDIR) and exc.filename is not None:
        names = {Path(exc.filename), *((Path(exc.filename2),) if getattr(exc, "filename2", None) else ())}
        if not names & {path, path.parent, *own}:
            return None
    return LandscapeError(f"cannot write {path}: {_DISK_ERRNOS[code].format(folder=path.parent.absolute())}")


#: Lock files this process holds, and how many times (so a command may nest them).
_HELD: dict[str, int] = {}


def lock_path(path: str | os.PathLike) -> Path:
    """The lock file of an output: ``rings.h5 -> .rings.h5.lock`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


@contextmanager
def output_lock(path: str | os.PathLike, *also: str | os.PathLike) -> Iterator[None]:
    """Hold the exclusive right to write ``path`` (and the files that go with it, ``also``:
    its progress files) for the duration of the ``with`` block.

    The lock is an ``fcntl.flock`` on ``.NAME.lock`` beside ``path``, released by the
    system when the process ends however it ends (kill -9 included), so a killed run never
    leaves a stale lock. Once held, the temporary files a killed writer left for these
    outputs are removed. Nested locks on the same output in one process are allowed.

    Raises
    ------
    LandscapeError
        Another process holds the lock (its pid is named), or the folder cannot be
        written (read-only, full, forbidden).
    """
    path = Path(path)
    lock = lock_path(path)
    make_folder(path)  # (the lock's folder; an error names the output)
    key = str(lock.absolute())
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = _acquire(lock, path)
    _HELD[key] = 1
    try:
        for output in (path, *also):
            remove_stale_temps(output)
        yield
    finally:
        del _HELD[key]
        with suppress(OSError):
            lock.unlink()  # while still holding it: a waiting opener sees the inode change
        os.close(fd)


def busy(path: str | os.PathLike, holder: str) -> LandscapeError:
    """The error for an output another run (``holder``) is writing."""
    return LandscapeError(f"{path} is being written by another run ({holder}): wait for it to end, or write elsewhere")


def held_by(path: str | os.PathLike) -> str | None:
    """Who holds ``path``'s output lock (``"pid N on HOST"``) while a run writes it, else
    None (nothing is written or removed)."""
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _holder(fd)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _acquire(lock: Path, path: Path) -> int:
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            named = disk_error(exc, path, lock, lock.parent)
            if named is None and exc.errno in (errno.ENOENT, errno.ENOTDIR):  # (a file, /proc, ... as the folder)
                named = LandscapeError(f"cannot write {path}: {path.parent} is not a folder files can be written in "
                                       f"({exc.strerror})")
            if named is None:
                raise
            raise named from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise busy(path, holder) from None
        try:  # its last holder may have removed the file between our open and our lock
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            with suppress(OSError):  # (a full disk: the lock holds without its note; the output's own write names it)
                os.ftruncate(fd, 0)
                os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
            return fd
        os.close(fd)


def _holder(fd: int) -> str:
    with suppress(OSError):
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
        if text:
            return text
    return "pid unknown"


def _one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with its control characters written out (``\\x1b``, ``\\n``): a string
    read from a file, printed to a terminal, can neither send it escape sequences (a
    window title, colours, a cleared screen) nor forge lines of its own."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def check_regular_file(path: Path, what: str) -> None:
    """LandscapeError unless ``path`` (links followed) is a regular file: a FIFO would
    block the read forever, a device (``/dev/zero``) never ends."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return  # (missing: the caller says so)
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise LandscapeError(f"{path} is {kind}, not a file: expected a {what}")


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
    check_regular_file(path, what)
    _check_unpacked_size(path, what)
    try:
        with warnings.catch_warnings():  # (torch warns of pickle protocols it did not write, then refuses or reads)
            warnings.simplefilter("ignore")
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"unsupported global:? (?:GLOBAL )?(\S+)", str(exc), flags=re.IGNORECASE)
        name = found.group(1) if found else _pickled_global(path)
        if name:  # the file asks to import and call code: never run it
            # (a network saved whole: its weights alone, with its code given apart, map)
            hint = ("; save the weights alone (torch.save(model.state_dict(), path)) and give the network's code "
                    "with --model FILE.py:FACTORY --weights path"
                    if what in ("state dict", "checkpoint") and not name.startswith(("posix", "nt.", "builtins", "os."))
                    else "")
            raise LandscapeError(
                f"{path}: refused to load: it asks to run code (it pickles {name}); a {what} holds only "
                f"tensors and plain data{hint}"
            ) from None
        raise LandscapeError(f"{path}: not a readable PyTorch {what}: refused to load it as tensors and plain "
                             "data (weights_only=True; corrupt, or pickled objects)") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError) as exc:
        raise LandscapeError(f"{path}: not a readable PyTorch {what} (corrupt or truncated): {_one_line(exc)}") from None
    _check_loaded(loaded, path, what)
    return loaded


#: How deep a file's containers (dicts, lists) may nest.
MAX_NESTING = 64


#: The most tensors a ``.pt`` file may hold (``torch.save`` writes one archive member per
#: storage): a network's state has hundreds, the largest thousands; 200,000 empty tensors
#: took 27 s to unpickle, each time the file was read.
MAX_TENSORS = 65536


def _check_unpacked_size(path: Path, what: str) -> None:
    """Refuse a zip archive (``torch.save``'s format) whose members unpack to more than
    the free memory (a few MB of zeros can claim gigabytes), or that holds more than
    :data:`MAX_TENSORS` tensors, before anything is unpacked."""
    from landscape import checks

    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            total = sum(int(info.file_size) for info in members)
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # (torch's reader says what is wrong)
    storages = sum("/data/" in info.filename for info in members)
    if storages > MAX_TENSORS:
        raise LandscapeError(f"{path}: holds {storages:,} tensors, more than the {MAX_TENSORS:,} a {what} is read with "
                             "(a network's state has hundreds to thousands)")
    free = checks.available_memory()
    if free is not None and total > free:
        raise LandscapeError(f"{path}: its contents unpack to {checks.format_bytes(total)}, more than the free memory "
                             f"({checks.format_bytes(free)}): not a {what} this machine can read")


def _check_loaded(obj: Any, path: Path, what: str) -> None:
    """Refuse, in one line, what ``torch.load`` read but nothing here can use: containers
    nested deeper than :data:`MAX_NESTING`, tensors that hold no values (meta), are
    sparse, quantized or of a float8 type, or that view far more values than they store
    (an expanded tensor: a few bytes claiming more than the free memory)."""
    import torch

    from landscape import checks

    claimed = 0
    stack = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            raise LandscapeError(f"{path}: nested more than {MAX_NESTING} levels deep: not a {what}")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
            stack.extend((k, depth + 1) for k in item.keys() if isinstance(k, torch.Tensor))
        elif isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, torch.Tensor):
            kind = ("holds no values (a meta tensor)" if item.device.type == "meta"
                    else "is sparse" if item.layout != torch.strided
                    else "is quantized" if item.is_quantized
                    else f"is of type {item.dtype}" if "float8" in str(item.dtype) else None)
            if kind is not None:
                raise LandscapeError(f"{path}: a tensor of shape {list(item.shape)} {kind}: not a {what} "
                                     "(save dense tensors of real numbers)")
            claimed += item.numel() * item.element_size()
    free = checks.available_memory()
    if free is not None and claimed > free:
        raise LandscapeError(f"{path}: its tensors claim {checks.format_bytes(claimed)}, more than the free memory "
                             f"({checks.format_bytes(free)}): not a {what} this machine can use")


def _pickled_global(path: Path, limit: int = 1 << 16) -> str | None:
    """The first code a plain pickle file names for import (``module.name``), read from its
    opcodes without running any (:func:`pickletools.genops`; at most ``limit`` of them), or
    None: a pickle of a protocol torch's reader stops at before it meets the import."""
    import pickletools

    strings: list[str] = []
    try:
        with open(path, "rb") as f:
            for k, (op, arg, _) in enumerate(pickletools.genops(f)):
                if k >= limit:
                    return None
                if op.name in ("GLOBAL", "INST"):
                    return str(arg).replace(" ", ".")
                if op.name == "STACK_GLOBAL" and len(strings) >= 2:
                    return f"{strings[-2]}.{strings[-1]}"
                if isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # noqa: BLE001 (not a plain pickle, or a damaged one: nothing to name)
        return None
    return None


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


# ------------------------------------------------------- the model file a map records


def sha256_of(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read in chunks of a MB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def recorded_places(map_path: Path, recorded: str) -> list[tuple[Path, Path]]:
    """Where a file a map's record names is looked for (the recorded path, and its name
    beside the map) and exists as a file: each place with its real path (links resolved)."""
    if not recorded:
        return []
    out = []
    for candidate in (Path(recorded), map_path.parent / Path(recorded).name):
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.is_file():
            out.append((candidate, real))
    return out


def recorded_file(map_path: Path, recorded: str) -> Path | None:
    """A file the map's record names, looked for only where the user pointed: at the
    recorded path or by its name beside the map, and only if it lies (symbolic links
    resolved) inside the current folder or the map's. A map is a file from anyone: its
    record never leads anywhere else."""
    roots = [Path.cwd().resolve(), map_path.parent.resolve()]
    return next((candidate for candidate, real in recorded_places(map_path, recorded)
                 if any(real.is_relative_to(root) for root in roots)), None)


def recorded_elsewhere(map_path: Path, recorded: str) -> bool:
    """Whether the file a map's record names exists where :func:`recorded_file` looked,
    but lies (links followed) outside the folders it may be taken from: what to tell a
    user whose model is there, not missing."""
    return bool(recorded_places(map_path, recorded))
