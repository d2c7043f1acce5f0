"""Several chain steps in one compiled call (``torch.compile``).

A step of attraction-diffusion on a small energy is a few dozen tiny tensor operations;
eager PyTorch pays for each one (Python, dispatch, and on a GPU a kernel launch), so at
the batch sizes a map uses it is bound by their count, not by arithmetic. Compiled, a
window of steps becomes a few fused kernels: the energy's forward and backward pass
(through ``torch.func``, which ``torch.compile`` traces, instead of ``torch.autograd``,
which it does not), the pull, the update and the per-step bookkeeping. Attraction-diffusion
(:func:`landscape.mapping.ad.attraction_diffusion`) and the plain Langevin chains of
:func:`landscape.sampling.langevin.sample` (a map's exploration, the funnel probe) use it,
and the string method (:func:`landscape.mapping.paths.string_method_batch`) one iteration
per call: its two energy evaluations, the trial move's descent check, the climbing image's
rules, the redistribution along the string and the acceptance, about a hundred tensor
operations eager besides the energy's own.

Compiling is an execution setting of the :class:`~landscape.energy.Energy`
(``energy.compile``, ``landscape map --compile``), like its device: it never changes what
a map means, only how fast its steps run. The noise is drawn eagerly, from the same
generators in the same order as the eager path, so a compiled run follows the eager run
to rounding error (the compiler fuses and reorders floating-point operations).

Compiling costs seconds to a minute per variant, once per process (``torch.compile``
keeps its kernels in an on-disk cache, so a second process starts faster); where it is
unavailable (no C++ compiler, an energy ``torch.func`` cannot trace), the first failure
is kept on the energy (:func:`failure`), warned once (:class:`~landscape.errors.CompileWarning`,
which the commands leave to the note ``landscape map`` prints) and everything runs eagerly.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

from landscape.energy import Energy, ValueAndGrad
from landscape.errors import CompileWarning

#: Steps per compiled call. A longer window fuses more but compiles longer (unrolled):
#: 16 steps of a 2-D energy compile in about 40 s on a 2-core CPU, 4 steps in 15 s.
STEPS = 8
#: Batches of fewer rows step eagerly: fusing gains little on them, and some layers
#: (convolutions) compile separately for smaller batches (seconds each time).
MIN_ROWS = 16
#: Compiled versions torch keeps of one Python function while our steps run. Every energy's
#: steps are the same function over another energy, and at torch's default (8) a process's
#: fifth energy would step eagerly without a word; past this many, compiling fails
#: visibly instead (:func:`failure`).
RECOMPILE_LIMIT = 64


def traceable_value_and_grad(energy: Energy) -> ValueAndGrad:
    """``x -> (U [B], dU/dx)`` through ``torch.func`` (which ``torch.compile`` traces):
    the gradient of the batch's summed energy, each row's energy depending on its row
    only, as the energy API requires."""
    fn = energy.fn

    def total(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = fn(x).reshape(x.shape[0])
        return u.sum(), u

    grad_and_value = torch.func.grad_and_value(total, has_aux=True)

    def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        g, (_, u) = grad_and_value(x)
        return u, g

    return value_and_grad


def _version(energy: Energy) -> tuple[Any, ...]:
    """Changes when the module's parameters or buffers are replaced or updated in place
    (a compiled function holds the values it was traced with)."""
    module = energy.module
    if module is None:
        return ()
    return tuple((id(t), t._version) for t in (*module.parameters(), *module.buffers()))


def compiled(energy: Energy, key: Any, build: Callable[[ValueAndGrad], Callable[..., Any]]) -> Callable[..., Any] | None:
    """The compiled function ``build(value_and_grad)`` for ``energy`` and ``key`` (kept on
    the energy, built once per key and parameter version); None when the energy does
    not ask for compiling or compiling it failed before."""
    if not getattr(energy, "compile", False) or failure(energy) is not None:
        return None
    cache: dict[Any, Any] = energy.__dict__.setdefault("_compiled", {})
    full = (key, _version(energy))
    fn = cache.get(full)
    if fn is None:
        for old in [k for k in cache if k[0] == key]:  # traced with other parameters
            del cache[old]
        energy.__dict__.get("_compiled_warm", set()).discard(key)
        fn = cache[full] = torch.compile(build(traceable_value_and_grad(energy)), dynamic=True)
    return fn


def call(energy: Energy, key: Any, fn: Callable[..., Any], *args: Any) -> Any | None:
    """``fn(*args)`` (``energy``'s compiled function for ``key``), or None where it
    raised: compiling failed (kept, see :func:`fail`), and the caller runs the window
    eagerly, with the noise it drew for it."""
    # A view is guarded with its base: a state that is a view of the energy's output at
    # the first call and a tensor of its own (the compiled call's output) at the next
    # would compile the function twice. Views go in as tensors of their own.
    args = tuple(a.clone() if isinstance(a, torch.Tensor) and a._base is not None else a for a in args)
    config = torch._dynamo.config
    limits = config.recompile_limit, config.fail_on_recompile_limit_hit
    try:
        config.recompile_limit, config.fail_on_recompile_limit_hit = max(RECOMPILE_LIMIT, limits[0]), True
        with warnings.catch_warnings():
            # Maps keep float32 products in full float32 (TF32 would round the energies a
            # map compares); the compiler's hint to switch TF32 on is not for our users.
            warnings.filterwarnings("ignore", message=".*TensorFloat32 tensor cores", category=UserWarning)
            out = fn(*args)
    except Exception as error:
        fail(energy, error)
        return None
    finally:
        config.recompile_limit, config.fail_on_recompile_limit_hit = limits
    energy.__dict__.setdefault("_compiled_warm", set()).add(key)
    return out


def warm(energy: Energy, key: Any) -> bool:
    """Whether ``energy``'s function for ``key`` has completed a call (is compiled)."""
    return key in energy.__dict__.get("_compiled_warm", ())


def cold(energy: Energy, key: Any) -> bool:
    """Whether the next compiled call for ``key`` will compile first (the energy asks for
    compiling, it has not failed, and the function has not run yet)."""
    return bool(getattr(energy, "compile", False)) and failure(energy) is None and not warm(energy, key)


def numbers(values: Sequence[float], like: torch.Tensor) -> list[torch.Tensor]:
    """Numbers as arguments of a compiled function (so that other values do not compile it
    again): one-element tensors of ``like``'s dtype and device. Not 0-d: torch reads a 0-d
    tensor argument as a number, and finding it cannot keep it symbolic, traces the function
    a second time (seconds)."""
    return [torch.tensor([v], dtype=like.dtype, device=like.device) for v in values]


def bounds(box: tuple[float, float] | None, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A box's bounds (infinite without one) as :func:`numbers`."""
    low, high = numbers(box if box is not None else (-math.inf, math.inf), like)
    return low, high


def fail(energy: Energy, error: BaseException) -> None:
    """Keep why compiling ``energy``'s steps failed (one line); its steps run eagerly
    from now on. The first failure is warned (:class:`~landscape.errors.CompileWarning`):
    from Python nothing else says it (the commands silence it and print a note)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())[:300]
    first = failure(energy) is None
    energy.__dict__["_compile_failure"] = text
    if first:  # (stacklevel: the library's sampler or mapper that asked for the compiled steps)
        warnings.warn(f"compiling the steps failed, they ran eagerly: {text}", CompileWarning, stacklevel=3)


def failure(energy: Energy) -> str | None:
    """Why compiling ``energy``'s steps failed, if it did."""
    return energy.__dict__.get("_compile_failure")
