"""Work spread over the processes of a ``torchrun`` job (torch.distributed).

Training is data-parallel (:mod:`landscape.train.loop`). A map is spread differently: every
rank runs the same pipeline on the same state, with the same seeds, so every decision (which
chain stopped, which minima merge, which rung comes next) is taken identically everywhere
without messages; what is split is the cost that grows with the network, the energy and
its gradient. :class:`SplitEnergy` evaluates rows ``[r * n/W, (r + 1) * n/W)`` of each
batch on rank ``r`` and gathers the rest (one ``all_gather`` per call), so exploration
chains, attraction-diffusion trials and strings are all spread over the ranks, and the map
equals the single-process map for the same seed: exactly for energies computed row by row,
to floating-point rounding for networks whose kernels depend on the batch size.

Rank 0 alone reads and writes files (the map, its progress, its lock); what it reads is
handed to the other ranks by :func:`from_main`, and so are its errors, so every rank stops
with the same one-line message instead of waiting for a rank that is gone.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from landscape.energy import Energy, ValueAndGrad
from landscape.errors import LandscapeError

__all__ = ["Dist", "join", "current", "SplitEnergy", "split_energy", "from_main", "leave"]

T = TypeVar("T")


@dataclass
class Dist:
    """Where this process sits in a (possibly single-process) job."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def world_from_env() -> tuple[int, int, int]:
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` as torchrun sets them; (0, 1, 0) outside torchrun."""
    try:
        return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                int(os.environ.get("LOCAL_RANK", "0")))
    except ValueError:
        raise LandscapeError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None


def join(device: str | torch.device) -> Dist:
    """Join the torchrun job described by the environment, if any.

    ``device``: "cpu", "cuda", "cuda:N" or "auto" (cuda when available). Under torchrun each
    rank takes GPU ``LOCAL_RANK``; the backend is nccl on GPU and gloo on the CPU. Outside
    torchrun (``WORLD_SIZE`` unset or 1) nothing is joined.
    """
    if str(device) == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    rank, world, local = world_from_env()
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise LandscapeError("--device cuda asked for, but torch sees no CUDA device")
        if world > 1:
            dev = torch.device("cuda", local)
        elif dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Dist(rank=rank, world=world, device=dev)


def leave(ok: bool = True) -> None:
    """Leave the process group joined by :func:`join` at the end of a command: after the
    others (a barrier) when it ended well; after an error not at all: torchrun stops the
    other ranks when one fails."""
    if ok and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def current() -> Dist | None:
    """The process group this process belongs to, when it has more than one rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() < 2:
        return None
    return Dist(rank=dist.get_rank(), world=dist.get_world_size())


def from_main(fn: Callable[[], T], group: Dist | None = None) -> T:
    """Run ``fn`` on rank 0 only and hand its result to every rank (pickled over the
    process group: our own objects, never a file's bytes). A :class:`LandscapeError` on
    rank 0 is raised on every rank, with the same message. Without a group, ``fn()``."""
    group = group if group is not None else current()
    if group is None:
        return fn()
    box: list[Any] = [None]
    if group.main:
        try:
            box[0] = ("ok", fn())
        except LandscapeError as err:
            box[0] = ("error", str(err))
            dist.broadcast_object_list(box, src=0)
            raise
    dist.broadcast_object_list(box, src=0)
    kind, value = box[0]
    if kind == "error":
        raise LandscapeError(value)
    return value


_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class SplitEnergy(Energy):
    """An :class:`Energy` whose batches are evaluated split by rows over the ranks.

    Every rank must call it with the same batch (the map's pipeline does: it runs the same
    state everywhere). Rank ``r`` evaluates rows ``[r * p, (r + 1) * p)`` with
    ``p = ceil(B / W)`` and one ``all_gather`` returns every row to every rank. Batches of
    fewer rows than ranks are evaluated whole on every rank (no message). Energies come
    back in the batch's dtype.
    """

    def __init__(self, inner: Energy, group: Dist) -> None:
        self.__dict__.update(inner.__dict__)
        self.inner = inner
        self.group = group

    def _rows(self, n: int) -> tuple[int, int, int]:
        per = -(-n // self.group.world)
        lo = min(self.group.rank * per, n)
        return per, lo, min(lo + per, n)

    def _gathered(self, buf: torch.Tensor, n: int) -> torch.Tensor:
        out = buf.new_empty((self.group.world * buf.shape[0], *buf.shape[1:]))
        _gather(out, buf.contiguous())
        return out[:n]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if n < self.group.world:
            return self.inner(x)
        self.check_batch(x)
        per, lo, hi = self._rows(n)
        buf = torch.zeros(per, device=x.device, dtype=x.dtype)
        if hi > lo:
            buf[: hi - lo] = self.inner(x[lo:hi])
        return self._gathered(buf, n)

    def value_and_grad_fn(self) -> ValueAndGrad:
        vg = self.inner.value_and_grad_fn()
        group = self.group

        def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = x.shape[0]
            if n < group.world:
                return vg(x)
            per, lo, hi = self._rows(n)
            # one message per call: the energy in column 0, the gradient after it
            buf = torch.zeros(per, 1 + x[0].numel(), device=x.device, dtype=x.dtype)
            if hi > lo:
                u, g = vg(x[lo:hi])
                buf[: hi - lo, 0] = u
                buf[: hi - lo, 1:] = g.reshape(hi - lo, -1)
            out = self._gathered(buf, n)
            return out[:, 0], out[:, 1:].reshape(x.shape)

        return value_and_grad


def split_energy(energy: Energy, group: Dist | None = None) -> Energy:
    """``energy`` split over the ranks of ``group`` (the current one by default); the energy
    itself when there is no group of two or more ranks or it is already split."""
    group = group if group is not None else current()
    if group is None or isinstance(energy, SplitEnergy):
        return energy
    return SplitEnergy(energy, group)
