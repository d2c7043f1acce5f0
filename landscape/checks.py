"""Checks of values that come from outside: files a user hands in, and the command line.

Each check returns the value (converted where that is safe: an int for an integer, a tuple
for a shape) or raises :class:`~landscape.errors.LandscapeError` with one line that names
the file, the field and the bad value, e.g.::

    rings.pt: sampler.epsilon is 'abc', expected a finite number > 0

and :func:`check_memory` refuses, before anything is allocated, work whose arrays would not
fit in the memory this machine has free.

Nothing here imports torch or numpy at module level (numbers from numpy are recognised by
duck typing), so the checks are cheap to import anywhere.
"""

from __future__ import annotations

import math
import numbers
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from landscape.errors import LandscapeError

__all__ = [
    "available_memory",
    "bad",
    "check_memory",
    "choice",
    "field_kind",
    "flag",
    "format_bytes",
    "integer",
    "mapping",
    "number",
    "number_map",
    "number_range",
    "require",
    "seed",
    "shape",
    "show",
    "text",
    "typed_fields",
]

_SHOWN = 60  # characters of a bad value a message shows at most


def show(value: Any) -> str:
    """A short, one-line text of a value for messages (type named for containers)."""
    if isinstance(value, (Mapping, list, tuple)) and len(value) > 4:
        return f"a {type(value).__name__} of {len(value)} items"
    if hasattr(value, "shape") and hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0:
        return f"an array {list(value.shape)} of {value.dtype}"
    text = " ".join(repr(value).split())
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def bad(where: Any, field: str, value: Any, expected: str) -> LandscapeError:
    """The error for ``field`` of ``where`` holding ``value`` instead of ``expected``."""
    lead = f"{where}: " if where not in (None, "") else ""
    return LandscapeError(f"{lead}{field} is {show(value)}, expected {expected}")


def require(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``: for a file's structure, checked deep
    inside a reader whose caller names the file and words the refusal (the damage is
    ``message``)."""
    if not ok:
        raise ValueError(message)


def _is_bool(value: Any) -> bool:
    """A bool, numpy's included (``numpy.bool_``, named ``bool`` since numpy 2)."""
    kind = type(value)
    return isinstance(value, bool) or (kind.__module__ == "numpy" and kind.__name__ in ("bool", "bool_"))


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not _is_bool(value)


def number(where: Any, field: str, value: Any, *, minimum: float | None = None, above: float | None = None,
           maximum: float | None = None, finite: bool = True, nan: bool = False) -> float:
    """A real number (not a bool), finite unless ``finite=False`` (then NaN is still refused
    unless ``nan=True``: a number that may be "not available"), ``>= minimum``, ``> above``,
    ``<= maximum``."""
    if nan and _is_number(value) and math.isnan(float(value)):
        return math.nan
    expected = "a finite number" if finite else "a number"
    if minimum is not None:
        expected += f" >= {minimum:g}"
    if above is not None:
        expected += f" > {above:g}"
    if maximum is not None:
        expected += f" <= {maximum:g}"
    if not _is_number(value):
        raise bad(where, field, value, expected)
    x = float(value)
    if math.isnan(x) or (finite and math.isinf(x)) or (minimum is not None and x < minimum) \
            or (above is not None and not x > above) or (maximum is not None and x > maximum):
        raise bad(where, field, value, expected)
    return x


def integer(where: Any, field: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not a bool, not a float), ``>= minimum``, ``<= maximum``."""
    if minimum is not None and maximum is not None:
        expected = f"an integer in {minimum} .. {maximum}"
    else:
        expected = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (
            f" <= {maximum}" if maximum is not None else "")
    if not isinstance(value, numbers.Integral) or _is_bool(value):
        raise bad(where, field, value, expected)
    n = int(value)
    if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
        raise bad(where, field, value, expected)
    return n


#: Seeds every command takes (``--seed``) and the library's settings: they are combined
#: with stage and level numbers before they seed torch's generators (64 bits), so a seed
#: fits 32 bits.
MAX_SEED = 2**32 - 1


def seed(where: Any, field: str, value: Any) -> int:
    """A seed: an integer in ``0 .. 2**32 - 1``, as ``--seed`` takes."""
    return integer(where, field, value, minimum=0, maximum=MAX_SEED)


def field_kind(f: Any) -> str:
    """A dataclass field's annotation without ``| None`` and spaces (``"int"``,
    ``"tuple[float,...]"``): the annotations are strings (``from __future__ import
    annotations``)."""
    return str(f.type).replace(" ", "").removesuffix("|None")


def typed_fields(obj: Any, where: str) -> None:
    """Check a (frozen) dataclass's fields against their annotations, before its own range
    checks compare them: ``int`` an integer (numpy's become ``int``), ``float`` a real
    number, ``bool`` true or false, ``tuple[float, ...]`` numbers (stored as a tuple), each
    also ``None`` where the annotation allows it; a field named ``seed`` a seed. A string
    where a number belongs is one line naming the field, not a TypeError from a comparison
    deep inside, and a float where a count belongs (``chains=2.5``) is refused."""
    import dataclasses

    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        kind = field_kind(f)
        if value is None and str(f.type).replace(" ", "").endswith("|None"):
            continue
        if f.name == "seed":
            value = seed(where, f.name, value)
        elif kind == "int":
            value = value if type(value) is int else integer(where, f.name, value)
        elif kind == "float":
            number(where, f.name, value, finite=False)
            value = value if type(value) in (int, float) else float(value)  # (numpy's: JSON takes plain numbers)
        elif kind == "bool":
            value = flag(where, f.name, value)
        elif kind == "tuple[float,...]":
            if isinstance(value, (str, bytes, Mapping)) or not (isinstance(value, Sequence) or getattr(value, "ndim", 0) == 1):
                raise bad(where, f.name, value, "a list of numbers")
            for item in value:
                number(where, f"{f.name} item", item, finite=False)
            value = tuple(v if type(v) in (int, float) else float(v) for v in value)
        else:
            continue
        object.__setattr__(obj, f.name, value)


def flag(where: Any, field: str, value: Any) -> bool:
    """true or false (a bool, numpy's included)."""
    if _is_bool(value):
        return bool(value)
    raise bad(where, field, value, "true or false")


def text(where: Any, field: str, value: Any, *, empty: bool = False) -> str:
    """A string (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value):
        raise bad(where, field, value, "a string" if empty else "a non-empty string")
    return value


def choice(where: Any, field: str, value: Any, choices: Sequence[str]) -> str:
    """One of ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise bad(where, field, value, f"one of {', '.join(choices)}")
    return value


def mapping(where: Any, field: str, value: Any) -> dict[Any, Any]:
    """A dict (a mapping)."""
    if not isinstance(value, Mapping):
        raise bad(where, field, value, "a mapping")
    return dict(value)


def number_map(where: Any, field: str, value: Any) -> dict[Any, float]:
    """A mapping whose every value is a finite number (``field key`` names a bad one)."""
    return {k: number(where, f"{field} {k}", v) for k, v in mapping(where, field, value).items()}


def shape(where: Any, field: str, value: Any) -> tuple[int, ...]:
    """The shape of one example: a non-empty list of positive integers."""
    expected = "a non-empty list of positive integers"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or not value:
        raise bad(where, field, value, expected)
    if not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in value):
        raise bad(where, field, value, expected)
    return tuple(int(d) for d in value)


def number_range(where: Any, field: str, value: Any) -> tuple[float, float]:
    """``[low, high]``: two finite numbers, low < high."""
    expected = "two finite numbers [low, high] with low < high"
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence) or len(value) != 2:
        raise bad(where, field, value, expected)
    if not all(_is_number(v) and math.isfinite(float(v)) for v in value) or not float(value[0]) < float(value[1]):
        raise bad(where, field, value, expected)
    return float(value[0]), float(value[1])


# ------------------------------------------------------------------------------ memory


def format_bytes(n: float) -> str:
    """``1.5 GiB``."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def available_memory(device: Any = None) -> int | None:
    """Bytes free for new arrays on ``device`` (None or a CPU: this machine's available
    memory, from /proc/meminfo's MemAvailable, else ``os.sysconf``, and no more than the
    process's address-space limit or its cgroup's memory limit leave); None when unknown."""
    kind = getattr(device, "type", None) or (str(device).split(":")[0] if device is not None else "cpu")
    if kind == "cuda":
        import torch

        try:
            free, _ = torch.cuda.mem_get_info(device)
        except (RuntimeError, AssertionError, ValueError):
            return None
        return int(free)
    free: int | None = None
    try:
        with open("/proc/meminfo") as f:
            found = re.search(r"^MemAvailable:\s+(\d+)\s+kB", f.read(), flags=re.MULTILINE)
        if found:
            free = int(found.group(1)) * 1024
    except OSError:
        pass
    if free is None:
        try:
            free = int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
        except (AttributeError, ValueError, OSError):
            free = None
    limits = [x for x in (_address_space_left(), _cgroup_memory_left()) if x is not None]
    return min([free, *limits]) if free is not None else (min(limits) if limits else None)


def _address_space_left() -> int | None:
    """What the process's address-space limit (``ulimit -v``, RLIMIT_AS) leaves it, or
    None where there is none."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft == resource.RLIM_INFINITY:
            return None
        with open("/proc/self/statm") as f:
            used = int(f.read().split()[0]) * int(os.sysconf("SC_PAGE_SIZE"))
        return max(0, int(soft) - used)
    except (ImportError, OSError, ValueError, IndexError):
        return None


def _cgroup_memory_left() -> int | None:
    """What the process's cgroup (v2) memory limit leaves, or None where there is none.
    The cgroup's usage counts its page cache, of which the inactive files are given back
    on demand: they are counted free (the working set, as container runtimes count it)."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        try:
            with open("/sys/fs/cgroup/memory.stat") as f:
                found = re.search(r"^inactive_file\s+(\d+)", f.read(), flags=re.MULTILINE)
            if found:
                used -= int(found.group(1))
        except OSError:
            pass
        return max(0, int(limit) - max(used, 0))
    except (OSError, ValueError):
        return None


def check_memory(nbytes: float, what: str, device: Any = None) -> None:
    """Refuse work whose arrays (``nbytes``, an estimate) would not fit in the memory free
    on ``device``, before anything is allocated; ``what`` says what they are.

    Raises
    ------
    LandscapeError
        One line naming the size needed and the size free.
    """
    free = available_memory(device)
    if free is not None and nbytes > free:
        where = "this machine's" if getattr(device, "type", str(device or "cpu")) == "cpu" else f"{device}'s"
        raise LandscapeError(f"{what} needs about {format_bytes(nbytes)}, more than {where} free memory "
                             f"({format_bytes(free)})")
