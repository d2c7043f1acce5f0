"""The energy wrapper: one object that every sampler and mapper takes.

Anything that maps a batch ``x: Tensor[B, *shape]`` to ``Tensor[B]`` is an energy. It is
wrapped once, with the per-example shape, the data range, the device and the dtype, so
the rest of the library never has to guess them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import math
import numbers
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from landscape import checks
from landscape.errors import LandscapeError, NonFiniteEnergyError

#: Arrays of one example's size that a Langevin chain keeps alive at once (position,
#: gradient, noise, proposal and its gradient, energies' workspace): the memory estimate
#: of :meth:`Energy.check_room`.
ARRAYS_PER_CHAIN = 6

ValueAndGrad = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def autograd_value_and_grad(fn: Callable[[torch.Tensor], torch.Tensor]) -> ValueAndGrad:
    """Return a closure computing ``(U(x), dU/dx)`` with autograd on the input only.

    The input is detached and made to require grad; only its gradient is asked for, so
    no parameter ever accumulates ``.grad`` even when parameters are not frozen.

    Parameters
    ----------
    fn : callable
        Maps ``[B, *shape]`` to ``[B]``.

    Returns
    -------
    callable
        ``x -> (U [B], dU/dx [B, *shape])``, both detached.
    """

    def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            u = fn(x)
            (g,) = torch.autograd.grad(u.sum(), x)
        # An energy linear in x gets an expanded gradient (every row one block of memory):
        # callers update gradients in place, row by row.
        return u.detach(), g.contiguous()

    return value_and_grad


#: What an energy's ``sampler`` may say (a checkpoint's training sampler): the step size
#: ``epsilon``, the noise scale ``tau``, the chain length ``steps``, and how the chains
#: were kept (``init``, ``mh``, ``bank_size``, ``clamp``).
SAMPLER_KEYS = ("epsilon", "tau", "steps", "init", "mh", "bank_size", "clamp")


def _sampler(sampler: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """``sampler`` as a dict (None where empty); LandscapeError on a key not in
    :data:`SAMPLER_KEYS` (a misspelt one would be ignored: the map explored without it)."""
    if not sampler:
        return None
    unknown = [k for k in sampler if k not in SAMPLER_KEYS]
    if unknown:
        raise LandscapeError(f"an energy's sampler has no key{'s' if len(unknown) > 1 else ''} "
                             f"{', '.join(repr(k) for k in unknown)}: it takes {', '.join(SAMPLER_KEYS)} "
                             "(e.g. sampler={'epsilon': 0.01, 'tau': 1.0, 'steps': 100})")
    return dict(sampler)


#: Layers whose output in training mode differs from eval mode's (:meth:`Energy.modes_note`).
_MODE_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.modules.dropout._DropoutNd)


class Energy:
    """An energy function with its shape, data range, device and dtype.

    Parameters
    ----------
    fn : callable or nn.Module
        Maps ``x: Tensor[B, *shape]`` to ``Tensor[B]``. A module may offer a faster
        ``value_and_grad_fn()`` (a hand-written input gradient); it is used when present.
    shape : int or sequence of int
        Shape of one example, e.g. ``2`` (as ``(2,)``) or ``(3, 32, 32)``.
    data_range : (low, high), optional
        The box the data live in; chains "from noise" start uniformly inside it. Two finite
        numbers, low < high (:func:`check_data_range`).
    device, dtype :
        Where and in what precision chains run. A module is not moved: its owner places it.
    name : str
        A short description for reports (checkpoint path, ``file.py:function``, ...).
    sampler : dict, optional
        How the model was trained to be sampled (a checkpoint's ``epsilon``, ``tau``,
        ``steps``; the keys :data:`SAMPLER_KEYS`, others refused): the mapper explores
        with the model's own sampler when it is known.
    compile : bool
        Run Langevin and attraction-diffusion steps a window at a time through
        ``torch.compile`` (:mod:`landscape.fused`): the same chains to rounding error,
        fewer and fused operations per step, and a compilation (seconds to a minute) first.

    Examples
    --------
    >>> e = Energy(lambda x: 0.5 * (x ** 2).sum(1), shape=(2,), data_range=(-3, 3))
    >>> e(torch.zeros(4, 2)).shape
    torch.Size([4])
    """

    def __init__(
        self,
        fn: Callable[[torch.Tensor], torch.Tensor],
        shape: int | Sequence[int],
        *,
        data_range: tuple[float, float] | None = None,
        device: str | torch.device | None = None,
        dtype: torch.dtype = torch.float32,
        name: str = "",
        sampler: Mapping[str, Any] | None = None,
        compile: bool = False,
    ) -> None:
        self.fn = fn
        self.compile = bool(compile)
        self.sampler = _sampler(sampler)
        self.shape = _example_shape(shape)
        data_range = check_data_range(data_range)
        self.data_range = data_range
        if device is None:
            device = _module_device(fn) or torch.device("cpu")
        try:
            self.device = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            raise LandscapeError(f"unknown device {device!r}: use cpu, cuda or cuda:N") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise LandscapeError(f"device {self.device} asked for, but this torch has no CUDA device: use cpu")
        if dtype not in (torch.float32, torch.float64):
            raise LandscapeError(f"an energy's dtype must be torch.float32 or torch.float64, got {dtype} (half "
                                 "precision cannot tell minima and barriers apart)")
        if data_range is not None and not data_range[1] - data_range[0] < torch.finfo(dtype).max:
            raise LandscapeError(f"data range {list(data_range)} is too wide for {str(dtype).replace('torch.', '')} "
                                 f"(its width must stay below {torch.finfo(dtype).max:.3g})")
        self.dtype = dtype
        self.name = name

    @property
    def module(self) -> nn.Module | None:
        return self.fn if isinstance(self.fn, nn.Module) else None

    @property
    def dim(self) -> int:
        """Number of coordinates of one example."""
        return math.prod(self.shape)

    def _fits(self, x: torch.Tensor) -> bool:
        """Whether ``x`` is a batch ``[B, *shape]``."""
        return x.dim() == len(self.shape) + 1 and tuple(x.shape[1:]) == self.shape

    def _shape_text(self) -> str:
        return ", ".join(map(str, self.shape))

    def check_batch(self, x: torch.Tensor) -> None:
        """Raise LandscapeError unless ``x`` is a batch ``[B, *shape]``."""
        if not self._fits(x):
            raise LandscapeError(
                f"{self.name or 'energy'} expects a batch of shape [B, {self._shape_text()}], got {list(x.shape)}"
            )

    def as_batch(self, x: Any, what: str = "data") -> torch.Tensor:
        """``x``, a tensor or an array ``[M, *shape]`` (numpy's too; ``M`` may be 0), as a
        tensor of real numbers, checked: floating point as given (integers in the energy's
        dtype) and where it is (a data set stays on the CPU; chains move the examples they
        start from).

        Raises
        ------
        LandscapeError
            One line naming ``what``: not real numbers, the wrong shape, or values that are
            not finite.
        """
        try:
            t = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as err:
            raise LandscapeError(f"{what}: not an array of numbers ({type(err).__name__}: {err})") from None
        if t.is_complex() or t.dtype == torch.bool:
            raise LandscapeError(f"{what}: an array of {str(t.dtype).replace('torch.', '')}, not of real numbers")
        if not self._fits(t):
            raise LandscapeError(f"{what} must be a batch [M, {self._shape_text()}] for "
                                 f"{self.name or 'the energy'}, got an array of shape {list(t.shape)}")
        if not t.is_floating_point():
            t = t.to(self.dtype)
        if not bool(torch.isfinite(t).all()):
            raise LandscapeError(f"{what} hold values that are not finite (NaN or infinite)")
        return t

    def _check_output(self, u: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if u.shape != (x.shape[0],):
            if u.numel() == x.shape[0]:
                return u.reshape(x.shape[0])
            raise LandscapeError(
                f"{self.name or 'energy'} must map [B, *shape] to [B]; for input {list(x.shape)} "
                f"it returned {list(u.shape)}"
            )
        return u

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Energies of a batch, without building any autograd graph."""
        self.check_batch(x)
        with torch.no_grad():
            return self._check_output(self.fn(x), x)

    def value_and_grad_fn(self) -> ValueAndGrad:
        """Return ``x -> (U [B], dU/dx [B, *shape])`` for sampling.

        Call it once per sampling run: a module's fast path snapshots its weights. Every
        chain of the library (:func:`~landscape.sampling.langevin.sample`, quenches,
        attraction-diffusion, strings) takes its gradient from here, so here is where one
        asked for inside ``torch.inference_mode()`` is refused.

        Raises
        ------
        LandscapeError
            Inside ``torch.inference_mode()`` (autograd cannot run there; ``torch.no_grad()``
            is fine).
        """
        no_inference_mode(f"chains on {self.name or 'an energy'} (sample, find_minima, quench, attraction-diffusion, "
                          "strings)", "they need dU/dx from autograd")
        module = self.module
        fast = getattr(module, "value_and_grad_fn", None) if module is not None else None
        if callable(fast):
            return fast()
        vg = autograd_value_and_grad(self.fn)
        checked = False

        def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            nonlocal checked
            u, g = vg(x)
            if not checked:  # shape errors show on the first call; later calls skip the check
                u = self._check_output(u, x)
                checked = True
            return u.reshape(x.shape[0]), g

        return value_and_grad

    @contextlib.contextmanager
    def frozen(self) -> Iterator[Energy]:
        """Freeze a module's parameters and put it in eval mode for the duration; on a CUDA
        device, have cuDNN use deterministic algorithms only.

        Sampling then builds no autograd graph through the parameters, and layers such as
        spectral normalisation do not update their running estimates on every chain step.
        cuDNN may otherwise pick convolution algorithms whose sums (atomic adds) round
        differently from run to run, and a quench that runs until float32 can no longer
        lower the energy follows any change of rounding: two maps of the same command on a
        GPU were different maps. The chains, quenches, attraction-diffusion and strings of
        every command run their energy inside this. Flags are restored on exit, also after
        an exception.
        """
        module = self.module
        cudnn = torch.backends.cudnn
        kernels = (cudnn.deterministic, cudnn.benchmark)
        flags = [(p, p.requires_grad) for p in module.parameters()] if module is not None else []
        modes = [(m, m.training) for m in module.modules()] if module is not None else []
        try:
            if self.device.type == "cuda":
                cudnn.deterministic, cudnn.benchmark = True, False
            for p, _ in flags:
                p.requires_grad_(False)
            if module is not None:
                module.eval()
            yield self
        finally:
            cudnn.deterministic, cudnn.benchmark = kernels
            for p, flag in flags:
                p.requires_grad_(flag)
            for m, mode in modes:
                m.training = mode

    def modes_note(self) -> str | None:
        """Where the module has layers that act otherwise in training mode (batch
        normalisation, dropout), one line saying that they run in eval mode, as every
        stage runs them (:meth:`frozen`); else None."""
        module = self.module
        if module is None:
            return None
        kinds = sorted({type(m).__name__ for m in module.modules() if isinstance(m, _MODE_LAYERS)})
        if not kinds:
            return None
        return (f"the network's {', '.join(kinds)} layers run in eval mode (batch normalisation with its running "
                "statistics, no dropout): in training mode an example's energy would depend on its batch, or be "
                "random; a model sampled in training mode has another energy")

    def check_room(self, n: int, what: str = "chains") -> None:
        """Refuse, before anything is allocated, ``n`` chains (or examples) that would not fit
        in the free memory of the energy's device: each keeps a few arrays of one example's
        size (position, gradient, noise, proposal), :data:`ARRAYS_PER_CHAIN` counted.

        Raises
        ------
        LandscapeError
            One line naming the count, the shape and the size.
        """
        itemsize = torch.empty((), dtype=self.dtype).element_size()
        checks.check_memory(float(n) * self.dim * itemsize * ARRAYS_PER_CHAIN,
                            f"{n:,} {what} of shape {list(self.shape)} ({self.dtype})".replace("torch.", ""),
                            self.device)

    def box(self) -> tuple[float, float]:
        """The data range, which chains from noise and a map need.

        Raises
        ------
        LandscapeError
            The energy has none (one line saying how to give it).
        """
        if self.data_range is None:
            raise LandscapeError(f"{self.name or 'energy'} has no data range: give one (Energy(..., "
                                 "data_range=(LOW, HIGH)) in Python, --box LOW HIGH on the command line)")
        return self.data_range

    def geometry(self, box: tuple[float, float] | None) -> dict[str, Any]:
        """What a map's source record keeps of this energy besides where it came from: its
        shape, the ``box`` it was given (None for none) and its dtype."""
        return {"shape": list(self.shape), "box": [float(box[0]), float(box[1])] if box is not None else None,
                "dtype": "float64" if self.dtype == torch.float64 else "float32"}

    def not_finite(self, what: str, x: torch.Tensor, bad: torch.Tensor, grad: bool = True) -> NonFiniteEnergyError:
        """The one-line error for points ``x`` (``[N, *shape]``) of which ``bad`` (``[N]``)
        have a non-finite energy (or gradient, with ``grad``): how many of ``what``, where
        the first is, and that the energy must be finite throughout the box."""
        first = x[int(torch.nonzero(bad)[0, 0])].reshape(-1).tolist()
        at = ", ".join(f"{v:.4g}" for v in first[:4]) + (f", ... ({len(first)} values)" if len(first) > 4 else "")
        kind = "energy or gradient" if grad else "energy"
        box = f" [{self.data_range[0]:g}, {self.data_range[1]:g}]" if self.data_range else ""
        return NonFiniteEnergyError(
            f"{int(bad.sum())} of {bad.numel()} {what} have a non-finite {kind} (the first at x = [{at}]): "
            f"the energy{' and its gradient' if grad else ''} must be finite throughout the box{box}")

    def uniform_noise(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` points uniform in the data range (chains "from noise")."""
        low, high = self.box()
        self.check_room(n)
        u = torch.rand((n, *self.shape), generator=generator, device=self.device, dtype=self.dtype)
        return low + (high - low) * u


#: Examples per call where many are evaluated (:func:`energies`).
ENERGY_BATCH = 500


def energies(energy: Energy, x: torch.Tensor, progress: Callable[[int], None] | None = None) -> Any:
    """``U`` of many examples, in batches of :data:`ENERGY_BATCH` (float64 numpy);
    ``progress`` is told how many each batch held."""
    import numpy as np

    out = []
    for start in range(0, x.shape[0], ENERGY_BATCH):
        part = x[start : start + ENERGY_BATCH].to(energy.device, energy.dtype)
        out.append(energy(part).double().cpu())
        if progress is not None:
            progress(part.shape[0])
    return torch.cat(out).numpy() if out else np.zeros(0)


def map_energy_scale(content: Any, energies: Any) -> float:
    """The energy scale of ``energies`` (some of a map's minima, or new ones) for telling
    rounding from another energy: their magnitude and spread, or the height of the map's
    tree above its lowest minimum where that is larger (minima alike near 0); 1 if all
    are 0."""
    import numpy as np

    e = np.asarray(energies, dtype=np.float64).reshape(-1)
    lowest = np.asarray(getattr(content, "minima_energy", []), dtype=np.float64)
    heights = np.asarray(getattr(getattr(content, "tree", None), "heights", []), dtype=np.float64)
    heights = heights[np.isfinite(heights)]
    relief = float(heights.max() - lowest.min()) if heights.size and lowest.size else 0.0
    return max(float(np.abs(e).max() + np.ptp(e)) if e.size else 0.0, relief) or 1.0


def check_gives_back(energy: Energy, content: Any, *, named: str | None = None, where: str = "the map") -> None:
    """LandscapeError unless ``energy`` gives back the energies a map (``content``, a
    :class:`~landscape.io.records.MapContent`) records at its lowest minima (8 at most),
    within 1e-4 of the map's energy scale (its minima's energies and spread, and its
    tree's height above the lowest: a float32 map stores its minima in float32): a check that it
    is the energy the map was made of, before a probe, a diagnosis or new minima are
    worked out with another one.

    ``named`` names the energy in the message (default: its name, or "the energy given");
    ``where`` the map (a path, say)."""
    import numpy as np

    x, e = getattr(content, "minima_x", None), getattr(content, "minima_energy", None)
    e = np.asarray(e if e is not None else [], dtype=np.float64).reshape(-1)
    if x is None or e.size == 0:
        return
    named = named or (f"energy {energy.name!r}" if energy.name else "the energy given")
    pick = np.argsort(e)[:8]
    with torch.no_grad():
        u = energy(torch.as_tensor(np.asarray(x)[pick]).to(energy.device, energy.dtype)).double().cpu().numpy()
    bad = ~(np.abs(u - e[pick]) <= 1e-4 * map_energy_scale(content, e[pick]))  # (a different energy, not rounding)
    if bad.any():
        i = int(np.argmax(bad))
        if not np.isfinite(u[i]):
            raise LandscapeError(f"{named} gives a non-finite energy ({u[i]}) at {where}'s minimum {int(pick[i])}, "
                                 f"where the map records {e[pick[i]]:.6g}")
        rounded = energy.dtype == torch.float64 and np.asarray(x).dtype == np.float32
        raise LandscapeError(f"{named} is not the energy {where} was made of: at the map's minimum {int(pick[i])} it "
                             f"gives {u[i]:.6g}, the map records {e[pick[i]]:.6g}"
                             + ("; or the map keeps float32 points of a float64 energy (a map made before "
                                "float64 maps kept theirs), rounded off its minima: map it again" if rounded else ""))


def check_data_range(box: Any) -> tuple[float, float] | None:
    """``box`` as a data range ``(low, high)`` of floats (None stays None): exactly two
    finite real numbers, ``low < high``, in a tuple, a list, or a 1-D numpy array or
    tensor.

    Raises
    ------
    LandscapeError
        Anything else (a number, a string, three numbers, None among them), or a range
        that is not finite or not increasing; one line.
    """
    if box is None:
        return None
    values = box.tolist() if isinstance(box, torch.Tensor) or hasattr(box, "__array__") else box
    two = (isinstance(values, (Sequence, torch.Size)) and not isinstance(values, (str, bytes)) and len(values) == 2
           and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values))
    if not two:
        text = repr(box) if len(repr(box)) <= 80 else repr(box)[:77] + "..."
        raise LandscapeError(f"data range must be two numbers (low, high), got {text}")
    low, high = float(values[0]), float(values[1])
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise LandscapeError(f"data range must be finite with low < high, got {box!r}")
    return low, high


def _example_shape(shape: Any) -> tuple[int, ...]:
    """The shape of one example from an int or a sequence of ints (numpy's too); a string,
    a float or an empty or non-positive shape is one line."""
    if isinstance(shape, torch.Tensor) and shape.dim() <= 1 and not shape.is_floating_point():
        shape = shape.tolist()  # (a tensor of ints, as x.shape[1:] might be given)
    if isinstance(shape, numbers.Integral) and not isinstance(shape, bool):
        dims: Any = (shape,)
    elif isinstance(shape, (str, bytes)) or not isinstance(shape, (Sequence, torch.Size)) and \
            getattr(shape, "ndim", None) != 1:
        raise LandscapeError(f"an energy's shape must be an int or a sequence of ints (2, or (1, 8, 8)), got {shape!r}")
    else:
        dims = tuple(shape)
    if not dims or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in dims):
        raise LandscapeError(f"an energy needs a positive per-example shape of ints, got {shape!r}")
    return tuple(int(d) for d in dims)


def runs_frozen(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn(energy, ...)`` run inside ``energy.frozen()``: every evaluation of the energy
    (not only its chains') sees the module in eval mode, as the command line's loaders
    leave it, so a network handed over in training mode (dropout, batch statistics) maps
    as a fixed function; and it runs with the commands' thread count (:func:`cpu_policy`).
    Its mode, flags and torch's thread count are restored on return."""

    @functools.wraps(fn)
    def run(energy: Energy, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(energy, Energy):
            raise TypeError(f"{fn.__name__} needs an Energy, got {type(energy).__name__}: wrap the module or "
                            "function as Energy(fn, shape=..., data_range=...)")
        no_inference_mode(fn.__name__)
        with energy.frozen(), cpu_policy(energy.fn, energy.device):
            return fn(energy, *args, **kwargs)

    return run


def no_inference_mode(what: str, why: str = "its chains need dU/dx from autograd") -> None:
    """Refuse ``what`` (a call of the library, named) inside ``torch.inference_mode()``,
    where autograd does not run. Checked once per call, never per step."""
    if torch.is_inference_mode_enabled():
        raise LandscapeError(f"{what} cannot run inside torch.inference_mode(): {why} (torch.no_grad() is fine: "
                             "gradients are turned on where needed)")


#: Networks at least this large, or with convolutions, keep torch's own thread count.
SMALL_NETWORK = 200_000


def cpu_threads(fn: object, device: str | torch.device) -> int | None:
    """The intra-op thread count to run ``fn`` with: 1 for plain functions and small
    networks without convolutions on the CPU; None (torch's default) for everything else,
    and always when ``OMP_NUM_THREADS`` is set.

    A Langevin or attraction-diffusion step of a small energy is dozens of tiny
    operations; splitting each over threads costs more in synchronisation than it saves,
    and on a busy machine far more (rings-demo training: 31 ms per update on one thread
    against 46 ms on two, on a 2-core machine).
    """
    if torch.device(device).type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return None
    if isinstance(fn, nn.Module):
        if sum(p.numel() for p in fn.parameters()) >= SMALL_NETWORK:
            return None
        if any(isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) for m in fn.modules()):
            return None
    return 1


def rows_where(mask: torch.Tensor, count: int) -> torch.Tensor:
    """The row numbers where ``mask`` [N] is set, in order, given how many there are
    (``count``, already read to the host). Unlike ``x[mask]``, which reads its count from
    the device again for every tensor it selects from (on a GPU each read waits for the
    queue of launched kernels), it reads nothing (on devices without torch's
    ``nonzero_static``, one read)."""
    if mask.device.type in ("cpu", "cuda"):
        return torch.nonzero_static(mask, size=count).reshape(-1)
    return torch.nonzero(mask).reshape(-1)


def use_cpu_threads(fn: object, device: str | torch.device) -> None:
    """Apply the CPU policy of every command that runs an energy (process-wide): the
    thread count of :func:`cpu_threads` and, on the CPU, :func:`keep_freed_memory`."""
    n = cpu_threads(fn, device)
    if n is not None:
        torch.set_num_threads(n)
    if torch.device(device).type == "cpu":
        keep_freed_memory()


@contextlib.contextmanager
def cpu_policy(fn: object, device: str | torch.device) -> Iterator[None]:
    """:func:`use_cpu_threads` for the length of a call from Python (:func:`runs_frozen`:
    ``build_map``, ``extend_map``, ``funnel_probe``, ``diagnose_map``): the work runs as the
    commands run it, and the caller's thread count is theirs again after it. (The
    allocator's setting, :func:`keep_freed_memory`, holds for the rest of the process.)"""
    with threads_kept():
        use_cpu_threads(fn, device)
        yield


@contextlib.contextmanager
def threads_kept() -> Iterator[None]:
    """torch's thread count as it was before, once the block is over (whatever the block
    set it to: :func:`use_cpu_threads`)."""
    threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)


#: Environment variables by which a user tunes the C allocator: then it is left alone.
_MALLOC_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                    "GLIBC_TUNABLES", "LD_PRELOAD")
_KEPT: bool | None = None


def keep_freed_memory() -> bool:
    """Have glibc's allocator keep the memory torch frees for reuse instead of returning it
    to the system, once per process; True where this is in effect.

    By default glibc serves every block over 128 KiB-32 MiB (a batch's activations, its
    gradients) from fresh pages of its own and unmaps them when freed, so every step of a
    chain faults its working memory in again: on 2 CPU cores the 32x32 presets' network
    spent as much time in the kernel as in its own arithmetic (energy and gradient of 2,744
    images: 701 ms, 702 ms of them system time, 361,000 page faults per call; 273 ms with
    blocks up to 1 GiB kept). The process's memory then stays at its peak until it exits.
    Nothing is changed off Linux and glibc, or where the user set any of
    ``MALLOC_MMAP_THRESHOLD_``, ``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_TOP_PAD_``,
    ``MALLOC_MMAP_MAX_``, ``GLIBC_TUNABLES`` or ``LD_PRELOAD`` (another allocator).
    """
    global _KEPT
    if _KEPT is None:
        _KEPT = False
        if not any(k in os.environ for k in _MALLOC_SETTINGS):
            import ctypes

            try:
                libc = ctypes.CDLL(None)
                libc.gnu_get_libc_version  # glibc's, not another C library's mallopt
                m_trim_threshold, m_mmap_threshold = -1, -3
                _KEPT = bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and bool(
                    libc.mallopt(m_trim_threshold, (1 << 31) - 1))
            except (OSError, AttributeError):
                pass
    return _KEPT


_STAGE: contextvars.ContextVar[str | None] = contextvars.ContextVar("landscape_stage", default=None)


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Name what the library is doing (``"exploration: quenching chains to minima"``) for
    messages about code that fails inside it (:func:`current_stage`)."""
    token = _STAGE.set(name)
    try:
        yield
    finally:
        _STAGE.reset(token)


def set_stage(name: str) -> contextvars.Token[str | None]:
    """Enter stage ``name`` until :func:`reset_stage` (for stages that are not a block)."""
    return _STAGE.set(name)


def reset_stage(token: contextvars.Token[str | None]) -> None:
    _STAGE.reset(token)


def current_stage() -> str | None:
    """The innermost :func:`stage` being run, if any."""
    return _STAGE.get()


def _module_device(fn: object) -> torch.device | None:
    if isinstance(fn, nn.Module):
        for p in fn.parameters():
            return p.device
        for b in fn.buffers():
            return b.device
    return None
