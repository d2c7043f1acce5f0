"""Progress files: the state of unfinished work on a map, so a killed run resumes.

Building a map (``rings.h5 -> rings.h5.partial``) and probing one
(``rings.h5 -> rings.h5.funnel.partial``) save their state after each finished stage:
arrays as HDF5 datasets, everything else as one JSON blob, written atomically so a kill
while saving leaves the previous state. :func:`resume_progress` continues saved work only
when asked to and only with the same settings (a fingerprint), so no progress is lost or
mixed with another run's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape.errors import LandscapeError
from landscape.io.files import check_regular_file, first_line, new_hdf5, to_json

__all__ = ["progress_path", "save_progress", "load_progress", "resume_progress", "clear_progress"]

PROGRESS_SCHEMA = "ebm-landscape/map-progress"
#: Raised whenever saved work would continue under other rules than it began with (3:
#: attraction-diffusion's per-trial arrival reach): such progress is refused, not mixed.
PROGRESS_VERSION = 3

# What h5py raises on damaged files, depending on where the damage is.
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, IndexError)


def progress_path(map_path: str | Path, kind: str = "map") -> Path:
    """Where the progress of work on the map at ``map_path`` is kept: for building the map
    (``kind="map"``) ``rings.h5 -> rings.h5.partial``, for other work on it (e.g.
    ``kind="funnel"``) ``rings.h5 -> rings.h5.funnel.partial``. The map's whole name comes
    first, so no map of the user's (``rings.partial.h5``, say) is ever taken for one."""
    path = Path(map_path)
    return path.with_name(path.name + (".partial" if kind == "map" else f".{kind}.partial"))


def save_progress(map_path: str | Path, state: Mapping[str, Any], kind: str = "map") -> Path:
    """Save the state of an unfinished map atomically, replacing earlier progress.

    Parameters
    ----------
    map_path : str or Path
        The map being built; progress goes to :func:`progress_path` of it.
    state : dict
        Arrays (numpy arrays or torch tensors, stored as datasets; a key may contain
        ``/`` to group them) and JSON-able values (stored together as one JSON blob).
        Store a fingerprint of the config in it to check on resume that the run is the
        same.

    Returns
    -------
    Path
        The progress file.

    Raises
    ------
    TypeError
        If a value is neither a numeric array nor JSON-able (nothing is written).
    """
    arrays: dict[str, np.ndarray] = {}
    plain: dict[str, Any] = {}
    for key, value in state.items():
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        if isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise TypeError(f"progress array {key!r} has unsupported dtype {value.dtype}")
            arrays[key] = value
        else:
            plain[key] = value
    blob = to_json(plain, keep_nonfinite=True)
    out = progress_path(map_path, kind)
    with new_hdf5(out, sum(a.nbytes for a in arrays.values()) + len(blob)) as f:
        f.attrs["schema"] = PROGRESS_SCHEMA
        f.attrs["schema_version"] = PROGRESS_VERSION
        f.attrs["saved"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        f.attrs["state"] = blob
        group = f.create_group("arrays")
        for key, value in arrays.items():
            group.create_dataset(key, data=value)
    return out


def load_progress(map_path: str | Path, kind: str = "map",
                  arrays: Callable[[str], bool] | None = None) -> dict[str, Any] | None:
    """Load the progress saved for ``map_path``, or None if there is none; with
    ``arrays``, only the arrays whose names it accepts (a look at the progress, not a
    resume: a batch's saved state can be a GB).

    Returns
    -------
    dict or None
        The saved state: arrays as numpy arrays, other values as decoded from JSON.

    Raises
    ------
    LandscapeError
        If the progress file exists but is corrupt or not a progress file.
    """
    path = progress_path(map_path, kind)
    if not path.exists():
        return None
    check_regular_file(path, "progress file")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("schema") != PROGRESS_SCHEMA:
                raise LandscapeError(f"{path} is not an ebm-landscape progress file")
            version = int(f.attrs.get("schema_version", 0))
            if version != PROGRESS_VERSION:
                raise LandscapeError(
                    f"{path} was saved by {'an earlier' if version < PROGRESS_VERSION else 'a later'} version of "
                    f"ebm-landscape (progress version {version}, this one continues {PROGRESS_VERSION}): its work "
                    f"cannot go on under this version's rules; start again (--force; from Python: "
                    f"{_clear_call(map_path, kind)})")
            state: dict[str, Any] = json.loads(f.attrs["state"])

            def collect(name: str, item: h5py.HLObject) -> None:
                if isinstance(item, h5py.Dataset) and (arrays is None or arrays(name)):
                    state[name] = item[()]

            f["arrays"].visititems(collect)
    except _H5_ERRORS as err:
        raise LandscapeError(f"{path} is unreadable ({first_line(err)}); delete it to start the map afresh") from None
    return state


class ProgressMismatch(LandscapeError):
    """The unfinished run saved for an output was started with other settings or another
    model (its fingerprint differs): it cannot be resumed."""


#: The key a saved state holds, true, once its work is complete (all but assembling the
#: result): a map's (``build_map`` sets it after its last refinement) and a funnel probe's.
FINISHED = "final"


def resume_progress(
    map_path: str | Path | None, fingerprint: str, resume: bool, *, kind: str = "map", what: str = "map",
    afresh: str | None = None,
) -> dict[str, Any]:
    """The saved state of unfinished work on ``map_path`` to continue, or a fresh one.

    Saved progress is only continued with ``resume`` and the same ``fingerprint`` (the
    settings and what they apply to): anything else is an error, so no progress is lost or
    mixed with another run's. The returned state carries ``fingerprint``. Progress whose
    work is complete (its :data:`FINISHED` key set: the caller wrote no result of it, or
    did not clear it after) is called finished, and ``resume`` gives its result back
    without doing the work again.

    Messages name both spellings of what to pass: the command's option and the Python
    keyword (``--resume (resume=True)``); ``afresh`` says how to start over [default: the
    commands' ``--force``, which deletes the progress file, or from Python
    :func:`clear_progress`].

    Raises
    ------
    LandscapeError
        Progress exists without ``resume``, or from other settings.
    """
    state: dict[str, Any] = {}
    if map_path is not None:
        saved = load_progress(map_path, kind)
        if saved is not None:
            partial = progress_path(map_path, kind).name
            afresh = afresh or f"--force (it deletes {partial}; from Python: {_clear_call(map_path, kind)})"
            status = "finished" if saved.get(FINISHED) else "unfinished"
            if not resume:
                if status == "finished":
                    lead = f"a finished {what} of {map_path} is kept in {partial}"
                    go_on = "get it back without doing the work again"
                else:
                    how_far = f" (`landscape info {map_path}` shows how far it got)" if kind == "map" else ""
                    lead, go_on = f"an unfinished {what} of {map_path} exists{how_far}", "continue it"
                raise LandscapeError(f"{lead}: pass --resume (resume=True) to {go_on}, or {afresh} to start afresh")
            if saved.get("fingerprint") != fingerprint:
                raise ProgressMismatch(
                    f"the {status} {what} saved for {map_path} was made with other settings or another model: "
                    f"resume with the same ones, or {afresh}"
                )
            state = saved
    state["fingerprint"] = fingerprint
    return state


def _clear_call(map_path: str | Path, kind: str = "map") -> str:
    """The Python call that removes the progress file of ``map_path``: how a library user
    starts afresh (the commands' ``--force``)."""
    return f"clear_progress({str(map_path)!r}{'' if kind == 'map' else f', {kind!r}'})"


def clear_progress(map_path: str | Path, kind: str = "map") -> None:
    """Remove the progress file of ``map_path`` (after the work is complete, or to start
    afresh), if there is one, damaged ones included; a readable HDF5 file of another kind
    at that name (someone's map, say) is left alone.

    From Python (``landscape.clear_progress``): ``clear_progress("wells.h5")`` once the map
    :func:`~landscape.mapping.pipeline.build_map` made with ``progress_file="wells.h5"``
    is written, or to start it afresh; ``clear_progress("wells.h5", "funnel")`` for a
    funnel probe's (the commands' ``--force`` does this)."""
    path = progress_path(map_path, kind)
    if path.is_file() and not _other_hdf5(path):
        with suppress(FileNotFoundError):
            path.unlink()


def _other_hdf5(path: Path) -> bool:
    """Whether ``path`` is a readable HDF5 file that is not one of our progress files."""
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("schema") != PROGRESS_SCHEMA
    except _H5_ERRORS:
        return False
