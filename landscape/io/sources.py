"""Energies from every source: a Python function, a user's network, a TorchScript file.

An energy comes in three ways. Checkpoints written by ``train/`` are
read there; this module covers what a user brings:

* ``energy_from_function("potentials.py:double_well", shape=(2,))``: a plain function
  mapping ``Tensor[B, *shape]`` to ``Tensor[B]`` (analytic potentials, often in float64);
* ``energy_from_factory("nets.py:Net", "weights.pt", shape=(3, 32, 32))``: a network built
  by calling ``Net(**kwargs)``, its weights read from a state-dict file that is never
  unpickled as code (``torch.load(..., weights_only=True)``);
* ``energy_from_torchscript("model.ts", shape=(2,))``: a TorchScript archive.

A spec names a Python file (``path/to/file.py:name``) or an importable module
(``package.module:name``). Every energy built here is probed once on a tiny batch, so a
function with the wrong output shape, a non-tensor result or no input gradient fails at
load time with one line that names it, not deep inside a sampler.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import itertools
import os
import re
import sys
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from landscape.distributed import world_from_env
from landscape.energy import Energy, check_data_range, current_stage
from landscape.errors import LandscapeError
from landscape.io.files import HDF5_SIGNATURE, TORCH_LEGACY_SIGNATURE, ZIP_SIGNATURE, load_torch

__all__ = [
    "check_energy",
    "check_torch_file",
    "energy_from_factory",
    "energy_from_function",
    "energy_from_torchscript",
    "is_torchscript",
    "load_object",
    "load_state_dict_into",
    "parse_shape",
    "pick_device",
    "read_state_dict",
]

# Prefixes that wrappers add to every key of a state dict: DistributedDataParallel /
# DataParallel ("module.") and torch.compile ("_orig_mod.").
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Keys under which training scripts commonly nest the model's state dict.
_NESTED_KEYS = ("state_dict", "model_state_dict")
_PROBE_BATCH = 3  # not 2: a batch of 2 cannot tell sum(0) from sum(1) on 2-D points
_SHOWN_KEYS = 3  # how many missing / unexpected keys an error message lists
_module_ids = itertools.count()


# ---------------------------------------------------------------------------------------
# specs: "file.py:name" or "package.module:name"


def load_object(spec: str) -> Any:
    """Import the object a spec names.

    Parameters
    ----------
    spec : str
        ``path/to/file.py:name`` or ``package.module:name``; ``name`` may be dotted
        (``module:Class.method``). The part before the last colon is a file when it ends
        in ``.py`` or contains a path separator, otherwise a module name.

    Returns
    -------
    object
        The named attribute.

    Raises
    ------
    LandscapeError
        A malformed spec, a missing file or module, an import that fails, or a missing
        attribute; the one-line message names the spec.

    Notes
    -----
    A file is executed as a fresh module under a unique name (loading the same file twice
    gives two independent modules); its folder is on ``sys.path`` while it is imported,
    so it can import files beside it. A module name is imported from ``sys.path``, then
    from the current directory.

    Examples
    --------
    >>> load_object("math:sqrt")(4.0)
    2.0
    """
    where, _, attr = spec.rpartition(":")
    if not where or not attr or not all(part.isidentifier() for part in attr.split(".")):
        raise LandscapeError(f"{spec!r}: expected FILE.py:NAME or package.module:NAME")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module = _import_file(spec, Path(where).expanduser())
    else:
        module = _import_module(spec, where)
    obj: Any = module
    for i, part in enumerate(attr.split(".")):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            owner = where if i == 0 else f"{where}:{'.'.join(attr.split('.')[:i])}"
            raise LandscapeError(f"{spec}: {owner} has no attribute {part!r}") from None
    return obj


def _import_file(spec: str, path: Path) -> Any:
    if not path.is_file():
        raise LandscapeError(f"{spec}: no such file {path}")
    name = f"_landscape_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}_{next(_module_ids)}"
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise LandscapeError(f"{spec}: {path} cannot be imported as a Python file")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # dataclasses and pickling look their module up here
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        module_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- the user's code may raise anything
        sys.modules.pop(name, None)
        raise LandscapeError(f"{spec}: importing {path} failed: {_describe(exc)}") from None
    finally:
        _remove_first(sys.path, folder)
    return module


def _import_module(spec: str, name: str) -> Any:
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)  # last: an installed package of the same name wins
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and (name == exc.name or name.startswith(exc.name + ".")):
            raise LandscapeError(
                f"{spec}: no module named {exc.name!r} (install it, add its folder to PYTHONPATH, "
                "or name the file: path/to/file.py:NAME)"
            ) from None
        raise LandscapeError(f"{spec}: importing {name} failed: {_describe(exc)}") from None
    except (Exception, SystemExit) as exc:  # noqa: BLE001 -- the user's code may raise anything
        raise LandscapeError(f"{spec}: importing {name} failed: {_describe(exc)}") from None
    finally:
        if added:
            _remove_first(sys.path, cwd)


def _remove_first(items: list[str], value: str) -> None:
    try:
        items.remove(value)
    except ValueError:  # the imported code removed it itself
        pass


def _describe(exc: BaseException, limit: int = 200) -> str:
    """``Type: message`` of an exception, on one line and at most ``limit`` characters (of
    a TorchScript interpreter's traceback, its last line: the error itself)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    if lines and "TorchScript interpreter" in lines[0]:
        text = " ".join(lines[-1].split())  # ("RuntimeError: ...")
    else:
        text = " ".join(str(exc).split())
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# shapes, devices, and the probe every energy goes through


def parse_shape(text: str | Sequence[int]) -> tuple[int, ...]:
    """Parse the per-example shape: ``"2"``, ``"3,32,32"``, ``"3x32x32"`` or a sequence.

    Raises
    ------
    LandscapeError
        Anything but positive integers separated by commas or ``x``.

    Examples
    --------
    >>> parse_shape("3x32x32"), parse_shape("2"), parse_shape([1, 8, 8])
    ((3, 32, 32), (2,), (1, 8, 8))
    """
    if isinstance(text, str):
        parts = [p.strip() for p in re.split(r"[,xX×]", text.strip().strip("()[]"))]
        if not all(re.fullmatch(r"\d+", p) for p in parts):
            raise LandscapeError(f"shape must be positive integers like 2 or 3,32,32 (or 3x32x32), got {text!r}")
        dims = tuple(int(p) for p in parts)
    else:
        try:
            dims = tuple(int(d) for d in text)
        except (TypeError, ValueError):
            raise LandscapeError(f"shape must be a sequence of positive integers, got {text!r}") from None
    if not dims or any(d <= 0 for d in dims):
        raise LandscapeError(f"shape must be positive integers like 2 or 3,32,32, got {text!r}")
    return dims


def pick_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) is the GPU when there is one, else the CPU; others are checked.
    Under torchrun (``WORLD_SIZE`` > 1) ``cuda`` is each rank's own GPU, ``LOCAL_RANK``.

    Raises
    ------
    LandscapeError
        An unknown device name, or a CUDA device this machine does not have.

    Examples
    --------
    >>> pick_device("cpu")
    device(type='cpu')
    """
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise LandscapeError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from None
    _, world, local = world_from_env()
    if dev.type == "cuda" and world > 1:  # one GPU per rank
        dev = torch.device("cuda", local)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LandscapeError(f"device {device} asked for, but CUDA is not available here: use cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise LandscapeError(f"device {device} asked for, but this machine has {torch.cuda.device_count()} GPU(s)")
    return dev


def check_energy(energy: Energy) -> Energy:
    """Probe an energy on a tiny batch; return it unchanged if it behaves.

    The batch holds three points inside the data range (or near zero when there is none).
    The energy must return a floating-point tensor ``[B]`` (``[B, 1]`` is accepted, as
    ``Energy`` accepts it) and, since Langevin chains need ``dU/dx``, an input gradient.

    Raises
    ------
    LandscapeError
        One line naming the energy (``energy.name``): the call raised, returned a
        non-tensor, an integer tensor or the wrong shape, or cannot be differentiated.

    Examples
    --------
    >>> e = check_energy(Energy(lambda x: (x ** 2).sum(1), shape=(2,), name="bowl"))
    >>> check_energy(Energy(lambda x: (x ** 2).sum(0), shape=(2,), name="bad"))
    Traceback (most recent call last):
        ...
    landscape.errors.LandscapeError: bad must map [B, *shape] to [B]: for input [3, 2] it returned shape [2]
    """
    name = energy.name or "energy"
    energy.check_room(_PROBE_BATCH, "examples (the probe batch)")
    low, high = energy.data_range if energy.data_range is not None else (-0.5, 0.5)
    t = torch.tensor([0.25, 0.5, 0.75], dtype=energy.dtype, device=energy.device)
    x = (low + (high - low) * t).reshape(_PROBE_BATCH, *([1] * len(energy.shape))).expand(_PROBE_BATCH, *energy.shape)
    x = x.contiguous()
    try:
        with torch.no_grad():
            u = energy.fn(x)
    except Exception as exc:  # noqa: BLE001 -- the user's code may raise anything
        module = energy.module
        kinds = {p.dtype for p in module.parameters() if p.is_floating_point()} if module is not None else set()
        hint = (f" (its parameters are {', '.join(sorted(str(k).replace('torch.', '') for k in kinds))}, the energy "
                f"runs in {str(energy.dtype).replace('torch.', '')}: give Energy(..., dtype=) to match)"
                if kinds and kinds != {energy.dtype} else "")
        raise LandscapeError(f"{name}: calling it on a batch of shape {list(x.shape)} failed: {_describe(exc)}{hint}"
                             ) from None
    _check_output(name, u, x)
    try:
        u, g = energy.value_and_grad_fn()(x)
    except LandscapeError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the user's code may raise anything
        raise LandscapeError(
            f"{name}: no gradient with respect to x ({_describe(exc, 120)}); Langevin chains need dU/dx, "
            "so write the energy with differentiable torch operations"
        ) from None
    if not isinstance(g, torch.Tensor) or g.shape != x.shape:
        got = list(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
        raise LandscapeError(f"{name}: its gradient has shape {got}, expected {list(x.shape)}")
    return energy


def _check_output(name: str, u: Any, x: torch.Tensor) -> None:
    if not isinstance(u, torch.Tensor):
        raise LandscapeError(
            f"{name} must return a torch.Tensor of shape [B], got {type(u).__name__} "
            f"(for input of shape {list(x.shape)})"
        )
    if u.numel() != x.shape[0] or u.dim() == 0 or u.shape[0] != x.shape[0]:
        raise LandscapeError(
            f"{name} must map [B, *shape] to [B]: for input {list(x.shape)} it returned shape {list(u.shape)}"
        )
    if not u.is_floating_point():
        raise LandscapeError(f"{name} must return floating-point energies, got {u.dtype}")
    if torch.finfo(u.dtype).bits < 32:
        raise LandscapeError(f"{name} returns {str(u.dtype).replace('torch.', '')} energies: half precision resolves "
                             "about 3 significant digits, too coarse to tell minima and barriers apart; return float32 "
                             "or float64 (a network: run it in float32)")


# ---------------------------------------------------------------------------------------
# the three sources


@contextlib.contextmanager
def keep_global_rng() -> Iterator[None]:
    """Leave torch's global random number generators as they were before the block:
    building a network draws its initial weights from them (then replaced by a file's), and
    a caller who seeded them for draws of their own must get those draws. The CPU's
    generator, and every CUDA device's where CUDA is already in use (cheap then; a block
    that starts CUDA is left to it)."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        yield


def energy_from_function(
    spec: str,
    shape: Sequence[int],
    box: tuple[float, float] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Energy:
    """An energy from a plain Python function ``U(x: Tensor[B, *shape]) -> Tensor[B]``.

    Parameters
    ----------
    spec : str
        ``path/to/file.py:function`` or ``package.module:function``.
    shape : sequence of int
        Shape of one example, e.g. ``(2,)``.
    box : (low, high), optional
        The data range (chains "from noise" start uniformly inside it).
    device, dtype :
        Where and in what precision the function is evaluated; analytic potentials are
        usually wanted in ``torch.float64``.

    Returns
    -------
    Energy
        Named by ``spec``, probed on a tiny batch.

    Raises
    ------
    LandscapeError
        Missing file or function, something that is not callable, or a probe that fails
        (see ``check_energy``); always one line naming ``spec``.

    Examples
    --------
    ``potentials.py`` holds ``def double_well(x): return ((x ** 2 - 1) ** 2).sum(1)``:

    >>> e = energy_from_function("potentials.py:double_well", (2,), (-2, 2), dtype=torch.float64)  # doctest: +SKIP
    >>> e(torch.zeros(1, 2, dtype=torch.float64))  # doctest: +SKIP
    tensor([2.], dtype=torch.float64)
    """
    box = check_data_range(box)  # (before any code of the user's runs)
    fn = load_object(spec)
    if not callable(fn):
        raise LandscapeError(f"{spec}: is a {type(fn).__name__}, not a function")
    if isinstance(fn, type):
        raise LandscapeError(f"{spec}: is a class; a class that builds a network goes with --model, not --energy")
    energy = check_energy(Energy(fn, parse_shape(shape), data_range=box, device=device, dtype=dtype, name=spec))
    energy.fn = UserFunction(fn, spec)  # after the probe, which names its own failures
    return energy


def _call_user(fn: Any, spec: str, x: torch.Tensor) -> Any:
    """``fn(x)``, a user's code: anything it raises (but our own one-line errors) becomes
    ``your energy SPEC raised ValueError: ... (at <stage>)``."""
    try:
        return fn(x)
    except LandscapeError:
        raise
    except Exception as exc:  # noqa: BLE001 -- the user's code may raise anything
        raise LandscapeError(f"your energy {spec} raised {_describe(exc)} "
                             f"(at {current_stage() or f'a batch of shape {list(x.shape)}'})") from None


class UserNetwork(nn.Module):
    """A user's network (``--model``), run as it is; anything its forward pass (or its own
    ``value_and_grad_fn``, if it has one) raises becomes one line naming it, like
    :class:`UserFunction`. Its parameters are the network's own (``inner``)."""

    def __init__(self, inner: nn.Module, spec: str) -> None:
        super().__init__()
        self.inner = inner
        self.spec = spec
        if callable(getattr(inner, "value_and_grad_fn", None)):
            self.value_and_grad_fn = self._fast

    def forward(self, x: torch.Tensor) -> Any:
        return _call_user(self.inner, self.spec, x)

    def _fast(self) -> UserFunction:
        return UserFunction(self.inner.value_and_grad_fn(), self.spec)


class UserFunction:
    """A user's energy function, called as it is; anything it raises becomes one line that
    says whose code failed and where: ``your energy FILE.py:FUNCTION raised ValueError: ...
    (at <stage>)`` (the stage from :func:`landscape.energy.current_stage`)."""

    def __init__(self, fn: Any, spec: str) -> None:
        self.fn = fn
        self.spec = spec

    def __call__(self, x: torch.Tensor) -> Any:
        return _call_user(self.fn, self.spec, x)


def energy_from_factory(
    spec: str,
    weights: str | os.PathLike | None,
    shape: Sequence[int] | None,
    box: tuple[float, float] | None = None,
    device: str | torch.device = "cpu",
    kwargs: Mapping[str, Any] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Energy:
    """An energy from a user's network: ``Factory(**kwargs)`` plus a state-dict file.

    Parameters
    ----------
    spec : str
        ``path/to/file.py:Factory`` or ``package.module:Factory``; calling it with
        ``kwargs`` must return an ``nn.Module`` mapping ``[B, *shape]`` to ``[B]``.
    weights : path, optional
        A state dict saved with ``torch.save``: a bare dict of tensors, or one nested
        under ``"state_dict"`` / ``"model_state_dict"``. A ``module.`` (DataParallel) or
        ``_orig_mod.`` (torch.compile) prefix on every key is removed. Loaded strictly and
        with ``weights_only=True``: a file that asks to run code is refused. Without
        weights the module keeps whatever the factory gave it.
    shape : sequence of int, optional
        Shape of one example. When None, the module's ``input_shape`` attribute is used
        (the networks of ``train/`` have one); without it this is an error.
    box : (low, high), optional
        The data range.
    device, dtype :
        The module is moved there (floating-point parameters and buffers are cast to
        ``dtype``) and put in eval mode.
    kwargs : mapping, optional
        Keyword arguments for the factory (plain data).

    Returns
    -------
    Energy
        Wrapping the module, probed on a tiny batch. Building it leaves torch's global
        random number generators as they were (:func:`keep_global_rng`).

    Raises
    ------
    LandscapeError
        The factory cannot be found or called, returns no ``nn.Module``, the weights are
        unreadable, unsafe or do not fit (the message names missing and unexpected keys),
        no shape is known, or the probe fails. Always one line.

    Examples
    --------
    >>> e = energy_from_factory("nets.py:Net", "net.pt", (3, 32, 32), (-1, 1), kwargs={"width": 64})  # doctest: +SKIP
    """
    box = check_data_range(box)  # (before the network is built)
    factory = load_object(spec)
    if not callable(factory):
        raise LandscapeError(f"{spec}: is a {type(factory).__name__}, not a class or function that builds a network")
    try:
        with keep_global_rng():  # (its random initial weights, replaced by the file's, leave the caller's draws alone)
            module = factory(**dict(kwargs or {}))
    except Exception as exc:  # noqa: BLE001 -- the user's code may raise anything
        hint = ""
        if isinstance(exc, TypeError) and "argument" in str(exc):
            hint = " (its arguments go in --model-kwargs '{\"name\": value}'"
            hint += "; an energy function of x goes with --energy)" if not isinstance(factory, type) else ")"
        raise LandscapeError(f"{spec}: calling it with kwargs {dict(kwargs or {})} failed: {_describe(exc)}{hint}"
                             ) from None
    if not isinstance(module, nn.Module):
        hint = " (an energy function of x goes with --energy)" if isinstance(module, torch.Tensor) else ""
        raise LandscapeError(f"{spec}: returned a {type(module).__name__}, expected a torch.nn.Module{hint}")
    name = spec
    if weights is not None:
        load_state_dict_into(module, read_state_dict(weights), f"{weights}", spec)
        name = f"{spec} [{Path(weights).name}]"
    if shape is None:
        shape = getattr(module, "input_shape", None)
        if shape is None:
            raise LandscapeError(f"{spec}: give the shape of one example (e.g. --shape 2 or --shape 3,32,32)")
    module.to(device=device, dtype=dtype).eval()
    energy = check_energy(Energy(module, parse_shape(shape), data_range=box, device=device, dtype=dtype, name=name))
    energy.fn = UserNetwork(module, spec).eval()  # after the probe, which names its own failures
    return energy


def energy_from_torchscript(
    path: str | os.PathLike,
    shape: Sequence[int],
    box: tuple[float, float] | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Energy:
    """An energy from a TorchScript archive (``torch.jit.save`` of a module).

    TorchScript holds the network's code in TorchScript's own restricted language, which
    ``torch.jit.load`` compiles; no Python pickle is executed.

    Parameters
    ----------
    path : path
        The archive (see ``is_torchscript``).
    shape : sequence of int
        Shape of one example.
    box : (low, high), optional
        The data range.
    device, dtype :
        Where the module is loaded, and the precision it is cast to.

    Raises
    ------
    LandscapeError
        A missing or unreadable file, or a failed probe; one line.

    Examples
    --------
    >>> torch.jit.save(torch.jit.script(net), "net.ts")  # doctest: +SKIP
    >>> e = energy_from_torchscript("net.ts", (2,), (-4, 4))  # doctest: +SKIP
    """
    path = Path(path)
    box = check_data_range(box)
    if not path.is_file():
        raise LandscapeError(f"{path}: no such file")
    try:
        module = torch.jit.load(str(path), map_location=torch.device(device))
    except Exception as exc:  # noqa: BLE001 -- TorchScript raises several unrelated types
        raise LandscapeError(f"{path}: not a loadable TorchScript file: {_describe(exc, 160)}") from None
    module.to(dtype=dtype).eval()
    energy = Energy(module, parse_shape(shape), data_range=box, device=device, dtype=dtype, name=path.name)
    return check_energy(energy)


def check_torch_file(path: str | os.PathLike, what: str = "file") -> None:
    """Refuse, by its first bytes (and a zip archive's directory) only, a file that is not a
    ``torch.save`` file: empty, text, HDF5, a truncated zip archive. Pickles (torch's legacy
    format starts as one) are left to the reader, which refuses any that asks to run code.
    Missing files and folders
    are left to the reader (:func:`landscape.io.files.load_torch`), which names them.

    Raises
    ------
    LandscapeError
        One line naming the file and what it looks like instead.
    """
    path = Path(path)
    if not path.is_file():
        return
    try:
        with open(path, "rb") as f:
            head = f.read(len(TORCH_LEGACY_SIGNATURE))
    except OSError:
        return  # the reader names the problem (permissions, ...)
    if head.startswith(ZIP_SIGNATURE):
        if zipfile.is_zipfile(path):
            return
        raise LandscapeError(f"{path}: not a readable PyTorch {what}: a truncated or damaged zip archive "
                             "(its directory at the end is missing)")
    if head == TORCH_LEGACY_SIGNATURE or head[:1] == b"\x80":
        return  # torch's own format, or a plain pickle: read with weights_only, which never runs code
    if not head:
        looks = "the file is empty"
    elif head.startswith(HDF5_SIGNATURE[: len(head)]) and len(head) >= 4:
        looks = "it is an HDF5 file (a map? maps go to info, tree, funnel, diagnose)"
    elif all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        looks = "it is a text file"
    else:
        looks = "it does not start like a torch.save file"
    raise LandscapeError(f"{path}: not a readable PyTorch {what}: {looks}")


def is_torchscript(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a TorchScript archive, judged by its zip entry names only.

    ``torch.jit.save`` writes ``<root>/code/...`` and ``<root>/constants.pkl``; a
    ``torch.save`` file has neither. Nothing in the file is read beyond its directory.

    Examples
    --------
    >>> is_torchscript("weights.pt")  # doctest: +SKIP
    False
    """
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False
    for entry in names:
        parts = entry.split("/")
        if len(parts) >= 3 and parts[1] == "code":
            return True
        if len(parts) == 2 and parts[1] == "constants.pkl":
            return True
    return False


# ---------------------------------------------------------------------------------------
# state dicts


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict with ``torch.load(weights_only=True)``: tensors and plain data only.

    Accepts a bare dict of tensors or one nested under ``"state_dict"`` /
    ``"model_state_dict"``; strips a ``module.`` / ``_orig_mod.`` prefix shared by every
    key (DataParallel, torch.compile).

    Raises
    ------
    LandscapeError
        Missing or unreadable file, a TorchScript file, a pickle that asks to run code
        (never executed), or content that is not a dict of tensors; one line.

    Examples
    --------
    >>> torch.save({"module.w": torch.ones(2)}, "w.pt")  # doctest: +SKIP
    >>> read_state_dict("w.pt")  # doctest: +SKIP
    {'w': tensor([1., 1.])}
    """
    path = Path(path)
    if path.is_file() and is_torchscript(path):
        raise LandscapeError(f"{path}: is a TorchScript file, not a state dict: load it on its own, without a factory")
    check_torch_file(path, "state dict")
    return state_dict_in(load_torch(path, "state dict"), path)


def state_dict_in(obj: Any, path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict a loaded file ``obj`` holds (:func:`read_state_dict`'s rules, the file
    named ``path`` in its errors)."""
    sd = obj
    if isinstance(obj, Mapping) and not _all_tensors(obj):
        named = [key for key in _NESTED_KEYS if isinstance(obj.get(key), Mapping)]
        # A training script's checkpoint ({"model": ..., "optimizer": ..., "step": ...}):
        # the one entry that is a dict of tensors is the network's.
        found = named[:1] or [k for k, v in obj.items() if isinstance(v, Mapping) and v and _all_tensors(v)]
        if len(found) > 1:
            raise LandscapeError(f"{path}: holds {len(found)} state dicts (under {_first(sorted(map(repr, found)))}): "
                                 "save the one to map on its own (torch.save(ckpt[KEY], path))")
        if found:
            sd = obj[found[0]]
    if not isinstance(sd, Mapping) or not sd or not _all_tensors(sd):
        hint = f"; top-level keys: {_first(sorted(map(str, obj)))}" if isinstance(obj, Mapping) else ""
        raise LandscapeError(
            f"{path}: not a state dict (a dict of tensors, possibly under 'state_dict' or 'model_state_dict'){hint}"
        )
    return _strip_prefixes({str(k): v for k, v in sd.items()})


def _all_tensors(d: Mapping[Any, Any]) -> bool:
    return all(isinstance(v, torch.Tensor) for v in d.values())


def _strip_prefixes(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    stripped = True
    while stripped:
        stripped = False
        for prefix in _WRAPPER_PREFIXES:
            if sd and all(k.startswith(prefix) for k in sd):
                sd = {k[len(prefix):]: v for k, v in sd.items()}
                stripped = True
    return sd


def _first(keys: Sequence[str]) -> str:
    shown = ", ".join(keys[:_SHOWN_KEYS])
    return shown + (f" (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else "")


def load_state_dict_into(module: nn.Module, sd: Mapping[str, torch.Tensor], where: str, what: str) -> None:
    """Load ``sd`` into ``module`` strictly; a mismatch is one line naming the keys.

    Parameters
    ----------
    where, what :
        The weights file and the network, for the message.

    Raises
    ------
    LandscapeError
        Missing or unexpected keys (the first few of each, and how many more), or a
        tensor whose shape differs from the network's.
    """
    expected = set(module.state_dict())
    missing = sorted(expected - set(sd))
    unexpected = sorted(set(sd) - expected)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {_first(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_first(unexpected)}")
        raise LandscapeError(f"{where}: weights do not fit {what}: {'; '.join(parts)}")
    try:
        module.load_state_dict(sd, strict=True)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = next((line for line in lines if "size mismatch" in line), lines[-1] if lines else type(exc).__name__)
        raise LandscapeError(f"{where}: weights do not fit {what}: {detail.rstrip('.')}") from None
