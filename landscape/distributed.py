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

Joining waits for the other ranks at most :data:`JOIN_TIMEOUT_S` seconds (the environment
variable ``LANDSCAPE_JOIN_TIMEOUT`` changes it), answering Ctrl-C meanwhile: a ``WORLD_SIZE``
left over from a cluster script, with no other ranks to come, ends in one line, not in
torch's 30 minutes (nor after its C++ side's retries and stack traces, which the wait holds
back: :func:`_quiet_fd2`).

Every command leaves the group it joined (:func:`leave`; :func:`join` registers it with
:mod:`atexit` for every other way out), and a process that joined one ends without the
interpreter's teardown (:func:`end_process`): a gloo group still alive at that point (DDP
keeps references to it that outlive the model and ``destroy_process_group``) is torn down
with its worker threads running, and the process aborts now and then ("terminate called
without an active exception", SIGABRT) after its work is done and written.

A rank that ends in an error waits a few seconds for the other ranks to end too
(:func:`await_peers`): torchrun stops every rank once one has failed, and ranks that refuse
the same input reach their one line at slightly different times, so the slower ones were
stopped before they said it.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

import torch
import torch.distributed as dist

from landscape.energy import Energy, ValueAndGrad
from landscape.errors import LandscapeError

__all__ = ["Dist", "join", "join_timeout", "current", "SplitEnergy", "split_energy", "from_main", "leave", "joined",
           "end_process", "await_peers"]

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
    torchrun (``WORLD_SIZE`` unset or 1) nothing is joined. The other ranks are waited for
    at most :func:`join_timeout` seconds (:func:`_rendezvous`); a :class:`LandscapeError`
    says which never came.
    """
    from landscape.io.sources import pick_device  # (it imports this module)

    rank, world, _ = world_from_env()
    dev = pick_device(device)  # under torchrun, GPU LOCAL_RANK
    if dev.type == "cuda":
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        store = _rendezvous(rank, world, join_timeout())
        # (the store then waits as torch's own rendezvous leaves it: the collectives' timeout)
        store.set_timeout(_collective_timeout(backend))
        dist.init_process_group(backend=backend, store=store, rank=rank, world_size=world)
        atexit.register(_leave_at_exit)  # (a no-op where the command left already)
        global _joined
        _joined = True
    return Dist(rank=rank, world=world, device=dev)


#: Whether this process joined a torchrun job (:func:`join`): it then ends by :func:`end_process`.
_joined = False


#: Seconds a rank waits at the start for the others to join (``LANDSCAPE_JOIN_TIMEOUT``
#: overrides): torchrun's own rendezvous has gathered its ranks before they start, so they
#: meet in seconds; ranks started by a cluster's own launcher (srun, mpirun) come within a
#: minute or two of each other on a busy node (imports from a shared file system included).
#: Five minutes covers that, and a stray ``WORLD_SIZE`` costs five minutes, not torch's 30.
JOIN_TIMEOUT_S = 300.0


def join_timeout() -> float:
    """Seconds :func:`join` waits for the other ranks: ``LANDSCAPE_JOIN_TIMEOUT`` where it
    is set (a positive number), else :data:`JOIN_TIMEOUT_S`."""
    text = os.environ.get("LANDSCAPE_JOIN_TIMEOUT", "").strip()
    if not text:
        return JOIN_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise LandscapeError(f"LANDSCAPE_JOIN_TIMEOUT={text!r}: give the seconds to wait for the other ranks, a "
                             f"positive number (unset: {JOIN_TIMEOUT_S:g})")
    return value


def _collective_timeout(backend: str) -> timedelta:
    """torch's default timeout of a process group of ``backend`` (what its own rendezvous
    gives the store)."""
    from torch.distributed.constants import default_pg_nccl_timeout, default_pg_timeout

    return default_pg_nccl_timeout if backend == "nccl" and default_pg_nccl_timeout is not None else default_pg_timeout


def _rendezvous(rank: int, world: int, seconds: float) -> Any:
    """The store of torch's ``env://`` rendezvous (what ``init_process_group`` makes with
    no store given), waiting ``seconds`` at most for the other ranks. torch's timeout covers
    this wait (rank 0's store waits for the others to connect, the others retry to reach
    it), but ``init_process_group(timeout=)`` would cap every later collective too. The
    wait runs in a thread, so that Ctrl-C and SIGTERM stop it (torch's blocks them)."""
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise LandscapeError(f"WORLD_SIZE={world} is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'}"
                             " not: run under torchrun, which sets them all, or unset WORLD_SIZE to run one process")
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    box: dict[str, Any] = {}

    def meet() -> None:
        try:
            box["store"] = next(dist.rendezvous("env://", timeout=timedelta(seconds=seconds)))[0]
        except Exception as err:  # noqa: BLE001 - said below, on the main thread
            box["error"] = err

    waiting = threading.Thread(target=meet, name="landscape-join", daemon=True)
    with _quiet_fd2():
        waiting.start()
        while waiting.is_alive():
            waiting.join(0.2)  # (a signal's handler runs between these waits)
    if "store" in box:
        return box["store"]
    text = " ".join(str(box.get("error")).split())[:200]
    joined = re.search(r"(\d+)/(\d+) clients joined", text)
    if joined is None and "timed out" not in text.lower():  # (a port out of range, an address that does not resolve)
        raise LandscapeError(f"WORLD_SIZE={world}, RANK={rank}: joining the other ranks at MASTER_ADDR:MASTER_PORT "
                             f"{where} failed ({text}): outside torchrun unset WORLD_SIZE (left from a cluster "
                             "script?)") from None
    came = f" ({joined.group(1)} of {joined.group(2)} ranks had joined)" if joined else ""
    raise LandscapeError(f"WORLD_SIZE={world}, RANK={rank}: the other ranks never came to MASTER_ADDR:MASTER_PORT "
                         f"{where} within {seconds:g} s{came}: outside torchrun unset WORLD_SIZE (left from a "
                         "cluster script?); on a slow cluster wait longer with LANDSCAPE_JOIN_TIMEOUT=SECONDS") from None


@contextmanager
def _quiet_fd2() -> Iterator[None]:
    """Hold back what is written to file descriptor 2 meanwhile. While a rank waits for the
    others, torch's C++ store logs every failed try to reach rank 0 straight to the
    descriptor (a retry warning, then a timeout with a 20-frame stack trace: 39 lines before
    the one line that says what happened); a join that succeeds has nothing to report, one
    that fails says it in :class:`LandscapeError`. Where the descriptor cannot be
    redirected, nothing is held."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with tempfile.TemporaryFile() as held:
            os.dup2(held.fileno(), 2)
            try:
                yield
            finally:
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def on_every_rank(fn: Callable[[], T], group: Dist | None = None,
                  errors: tuple[type[BaseException], ...] = (LandscapeError,)) -> T:
    """``fn()`` on every rank, and where it raised one of ``errors`` on any (a file missing
    on one node), that error on every rank as a :class:`LandscapeError` naming the rank:
    the others would otherwise wait for it at their next collective until the process
    group's timeout (30 minutes) with no word. Without a group, ``fn()``."""
    group = group if group is not None else current()
    if group is None:
        return fn()
    value, error = None, None
    try:
        value = fn()
    except errors as err:
        error = str(err)
    said: list[Any] = [None] * group.world
    dist.all_gather_object(said, error)
    failed = [(r, text) for r, text in enumerate(said) if text is not None]
    if failed:
        r, text = failed[0]
        raise LandscapeError(f"rank {r} of this torchrun job: {text}" + (
            f" (and {len(failed) - 1} more rank{'s' if len(failed) > 2 else ''})" if len(failed) > 1 else ""))
    return value  # type: ignore[return-value]


def agree(value: Any, what: str, group: Dist | None = None) -> None:
    """Every rank holds the same ``value`` (plain data: a file's sha256, say), or a
    :class:`LandscapeError` on every rank saying which differ: ranks that loaded other
    models at the same path (one per node) would compute different things and fail deep
    in a collective, or write a map mixed from both."""
    group = group if group is not None else current()
    if group is None:
        return
    values: list[Any] = [None] * group.world
    dist.all_gather_object(values, value)
    other = next((r for r, v in enumerate(values) if v != values[0]), None)
    if other is not None:
        raise LandscapeError(f"the ranks of this torchrun job loaded different {what}: rank 0 {str(values[0])[:16]}, "
                             f"rank {other} {str(values[other])[:16]}: give every node the same files")


def leave(ok: bool = True) -> None:
    """Leave the process group joined by :func:`join` at the end of a command: after the
    others (a barrier) when it ended well; after an error without waiting for them (torchrun
    stops the other ranks when one fails). A gloo group is always destroyed here, so that
    the interpreter's shutdown does not meet its threads; an nccl group after an error is
    left to torchrun (destroying it could wait on the collective another rank never joined)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    if ok:
        dist.barrier()
    if ok or dist.get_backend() == "gloo":
        dist.destroy_process_group()


def _leave_at_exit() -> None:
    """:func:`leave` for a process that ends without having left (an error, the Python API):
    run by :mod:`atexit` while the interpreter still works."""
    try:
        leave(ok=False)
    except Exception:  # noqa: BLE001 - at exit, with the command's outcome already decided
        pass


def joined() -> bool:
    """Whether this process joined a torchrun job (:func:`join` started a process group)."""
    return _joined


def end_process(code: int) -> NoReturn:
    """End a process that joined a torchrun job with exit status ``code``, once its command
    is over: its output flushed and the :mod:`atexit` handlers run (:func:`_leave_at_exit`
    among them), then ``os._exit``, skipping the interpreter's teardown. The teardown
    destroys what is left of the gloo group (torch's DDP keeps it alive past
    :func:`leave`) while its threads still run, which aborts the process now and then:
    with status -6 after a run whose files were all written. Nothing a command writes is
    left open at this point: checkpoints and maps are written whole and renamed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # (a closed pipe: nothing more to say)
            pass
    atexit._run_exitfuncs()
    os._exit(code)


#: Seconds a rank that ended in an error waits for the other ranks of its torchrun job to
#: end too (:func:`await_peers`). Ranks refusing the same input come within a second or
#: two of each other (more on a loaded machine); a rank that failed alone, while the others
#: wait for it in a collective, costs the job this much more before torchrun stops it.
PEERS_WAIT_S = 10.0


def await_peers(seconds: float = PEERS_WAIT_S) -> None:
    """Count this rank of a torchrun job as ended, then wait at most ``seconds`` until every
    rank has: called by a rank whose command failed, once its error is printed. torchrun's
    agent stops the other ranks as soon as one exits with an error, so without the wait a
    slower rank refusing the same input is stopped before it says why (and a rank 0 that
    speaks for all, before it speaks). The count lives in the agent's store (the one
    ``init_process_group`` reaches under torchrun), so this works before, after or without
    joining a process group; outside torchrun's agent it does nothing."""
    try:
        _, world, _ = world_from_env()
    except LandscapeError:  # (said already, by the command that failed)
        return
    if world < 2 or os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return
    try:
        store = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                              timeout=timedelta(seconds=seconds), wait_for_workers=False)
        key = f"landscape/ended/{os.environ.get('TORCHELASTIC_RUN_ID', '')}/" \
              f"{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"
        ended = store.add(key, 1)
        deadline = time.monotonic() + seconds
        while ended < world and time.monotonic() < deadline:
            time.sleep(0.05)
            ended = store.add(key, 0)
    except Exception:  # noqa: BLE001 - the error is said already; an agent gone or busy only ends the wait
        return


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
#: :attr:`SplitEnergy.min_rows` of an energy whose batches never pay to split.
NEVER_SPLIT = 1 << 62
#: The batch sizes :meth:`SplitEnergy.calibrate` times, whole and split.
CALIBRATE_SIZES = (64, 256, 1024, 4096)


class SplitEnergy(Energy):
    """An :class:`Energy` whose batches are evaluated split by rows over the ranks.

    Every rank must call it with the same batch (the map's pipeline does: it runs the same
    state everywhere). Rank ``r`` evaluates rows ``[r * p, (r + 1) * p)`` with
    ``p = ceil(B / W)`` and one ``all_gather`` returns every row to every rank. Batches of
    fewer than :attr:`min_rows` rows (at least the number of ranks) are evaluated whole on
    every rank, with no message. Energies come back in the batch's dtype.
    """

    def __init__(self, inner: Energy, group: Dist, min_rows: int | None = None) -> None:
        self.__dict__.update(inner.__dict__)
        # Compiled windows of steps (landscape.fused) would trace the inner energy whole on
        # every rank: a split energy's steps run eagerly, its evaluations split.
        self.compile = False
        self.__dict__.pop("_compiled", None)
        self.inner = inner
        self.group = group
        #: Batches of fewer rows are evaluated whole on every rank (no message): splitting
        #: them costs more in the gather than it saves (:meth:`calibrate`).
        self.min_rows = max(int(min_rows), group.world) if min_rows is not None else group.world
        #: Rows of the batches evaluated so far: split over the ranks (each rank took a
        #: slice), and whole on every rank (each repeated them); the map records them per stage.
        self.rows_split = self.rows_whole = 0

    def calibrate(self, sizes: tuple[int, ...] = CALIBRATE_SIZES, budget_s: float = 0.25) -> int:
        """Find the smallest batch worth splitting, by timing it (a collective: every rank
        calls it). For each size, every rank times the whole batch's energy and gradient
        and the split evaluation with its gather; rank 0 takes the first size where the
        split one is at least 20 % faster (the size past which one evaluation takes
        ``budget_s`` is taken as it is) and every rank adopts its answer, so the choice
        is the same everywhere."""
        vg = self.inner.value_and_grad_fn()
        gen = torch.Generator(device=self.device).manual_seed(0)
        low, high = self.data_range if self.data_range is not None else (-1.0, 1.0)
        self.min_rows = self.group.world
        split = self.value_and_grad_fn()
        chosen = None
        with self.inner.frozen():
            for n in sizes:
                x = low + (high - low) * torch.rand((n, *self.shape), generator=gen, device=self.device,
                                                    dtype=self.dtype)
                whole = _seconds(lambda: vg(x), self.device)
                parted = _seconds(lambda: split(x), self.device)
                if chosen is None and (parted < 0.8 * whole or whole > budget_s):
                    chosen = n
                verdict = [chosen]
                dist.broadcast_object_list(verdict, src=0)  # rank 0's timings decide
                if verdict[0] is not None:
                    break
        self.min_rows = verdict[0] if verdict[0] is not None else NEVER_SPLIT
        self.rows_split = self.rows_whole = 0  # (the timing's rows are no work of the map's)
        return self.min_rows

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
        if n < self.min_rows:
            self.rows_whole += n
            return self.inner(x)
        self.rows_split += n
        self.check_batch(x)
        per, lo, hi = self._rows(n)
        buf = torch.zeros(per, device=x.device, dtype=x.dtype)
        if hi > lo:
            buf[: hi - lo] = self.inner(x[lo:hi])
        return self._gathered(buf, n)

    def value_and_grad_fn(self) -> ValueAndGrad:
        vg = self.inner.value_and_grad_fn()

        def value_and_grad(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            n = x.shape[0]
            if n < self.min_rows:
                self.rows_whole += n
                return vg(x)
            self.rows_split += n
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


def split_energy(energy: Energy, group: Dist | None = None, calibrate: bool = True) -> Energy:
    """``energy`` split over the ranks of ``group`` (the current one by default), from the
    batch size where splitting pays (:meth:`SplitEnergy.calibrate`, unless ``calibrate`` is
    False: then every batch of at least one row per rank); the energy itself when there is
    no group of two or more ranks or it is already split. Every rank must call it."""
    group = group if group is not None else current()
    if group is None or isinstance(energy, SplitEnergy):
        return energy
    split = SplitEnergy(energy, group)
    if calibrate:
        split.calibrate()
    return split


def _seconds(fn: Callable[[], Any], device: torch.device, repeats: int = 3) -> float:
    """The fastest of ``repeats`` timed calls (after one untimed)."""
    import time

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best
