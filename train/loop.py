"""The ML learning loop (Nijkamp et al. 2019, "On the Anatomy of MCMC-based ML Learning").

One flat loop: schedule -> positives -> short-run negatives -> loss -> step -> log ->
checkpoint. Each update draws X+ from the data and X- by L Langevin steps from noise, data
or a persistent bank, and descends ``mean U(X+) - mean U(X-)``. It logs d_st, v_t and
r_t = eps^2/2 v_t per update.

Runs as one process or under ``torchrun`` (torch.distributed, data-parallel: gloo on CPU,
nccl on GPU). Every source of randomness is an explicit generator whose state goes into
the checkpoint, so ``resume`` continues a killed run exactly.
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from landscape import data as datasets
from landscape import Energy, sample, tool_version
from landscape.energy import threads_kept, use_cpu_threads
from landscape.errors import LandscapeError, NonFiniteEnergyError, Terminated
from landscape.io.files import atomic_path, first_line, output_lock, writing
from landscape.plots.common import chain_caption
from landscape.distributed import Dist
from landscape.distributed import join as join_job
from landscape.train import checkpoint as ckpt_io
from landscape.train import diagnostics, figures
from landscape.train.config import Config, changed_fields, lr_at
from landscape.train.nets import build_model

METRIC_COLUMNS = ("step", "d_st", "v_t", "r_t", "energy_pos", "energy_neg", "lr", "acceptance", "kl", "seconds")


def run_dir_for(out: str | os.PathLike) -> Path:
    """The folder beside a checkpoint that holds its run log and pictures."""
    out = Path(out)
    return out.with_name(out.stem + ".run")


#: Digits of the update number in a kept checkpoint's name (zero-padded, so they sort).
KEPT_DIGITS = 6


def kept_checkpoint(out: str | os.PathLike, step: int) -> Path:
    """Where ``train.keep_every`` keeps the copy of checkpoint ``out`` at update ``step``:
    ``<out stem>.run/checkpoints/step000250.pt``, a full checkpoint."""
    return run_dir_for(out) / "checkpoints" / f"step{step:0{KEPT_DIGITS}d}.pt"


def kept_checkpoints(out: str | os.PathLike) -> dict[int, Path]:
    """The copies ``train.keep_every`` kept of checkpoint ``out``, by update."""
    folder = run_dir_for(out) / "checkpoints"
    found = {}
    for path in folder.glob("step*.pt") if folder.is_dir() else ():
        digits = path.stem[len("step"):]
        if digits.isdigit():
            found[int(digits)] = path
    return dict(sorted(found.items()))


def _drop_kept_after(out: Path, step: int) -> None:
    """Remove the kept copies of updates after ``step``: a run resumed from ``step`` writes
    its own (those of a killed run past its last checkpoint would otherwise stay, or be
    from other settings)."""
    for k, path in kept_checkpoints(out).items():
        if k > step:
            path.unlink(missing_ok=True)


#: Seconds after a stop signal during which another is the same request: wrappers deliver
#: one Ctrl-C twice (``timeout`` forwards the terminal's SIGINT to a child that got it
#: too; torchrun sends its ranks SIGINT and then SIGTERM at once), which interrupted at
#: once and lost every update since the last checkpoint.
SIGNAL_GRACE = 2.0


class _StopFlag:
    """SIGINT/SIGTERM set a flag; the loop stops at the end of the update and checkpoints.

    Stopping only between updates keeps the bank, generators and parameters consistent,
    so the saved state resumes exactly. Another signal more than :data:`SIGNAL_GRACE`
    seconds after the first interrupts at once, without saving; within it, it is the same
    request delivered twice.
    """

    def __init__(self) -> None:
        self.set = False
        self.signal: int | None = None  # which one stopped it
        self.at = 0.0  # when (time.monotonic)
        self._old: dict[int, Any] = {}

    def __enter__(self) -> _StopFlag:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.set:
            if time.monotonic() - self.at < SIGNAL_GRACE:
                return  # (the same request, delivered twice)
            raise KeyboardInterrupt("a second signal stopped it at once, without saving the updates since the last "
                                    "checkpoint (--resume continues from it)")
        self.set, self.signal, self.at = True, signum, time.monotonic()

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._old.items():
            signal.signal(sig, handler)


@dataclass
class TrainResult:
    """What :func:`train` did. A run stopped by Ctrl-C or SIGTERM does not return: its
    result rides on the KeyboardInterrupt it raises (``exc.result``), with
    ``stopped_early`` set."""

    checkpoint: Path
    run_dir: Path
    step: int
    stopped_early: bool
    summary: dict[str, float]
    terminated: bool = False  # stopped by SIGTERM (not Ctrl-C)


def train(
    config: Config,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    device: str = "cpu",
    data_root: str | os.PathLike | None = None,
    progress: Callable[[int, dict[str, float]], None] | None = None,
    dataset: datasets.Dataset | None = None,
    overwrite: bool = False,
) -> TrainResult:
    """Train an EBM with ML learning and write checkpoints, run log and figures.

    Parameters
    ----------
    config : Config
        Validated training configuration (a preset plus overrides).
    out : path
        Checkpoint path; the run log and pictures go to ``<out stem>.run/`` beside it.
    resume : bool
        Continue from ``out`` instead of starting anew. With the checkpoint's own config
        (``Config.from_dict(ckpt["config"])``) and the same world size the continuation is
        exact: it ends where an uninterrupted run would. A larger ``train.steps`` extends it.
    device : str
        "cpu", "cuda", "cuda:N" or "auto".
    data_root : path, optional
        Where image data sets live (see ``data.load``).
    progress : callable, optional
        Called as ``progress(updates_done_since_last_call, latest_metrics)`` on the main rank.
    dataset : data.Dataset, optional
        Use this data instead of loading ``config.data``.
    overwrite : bool
        Start over although ``out`` exists: its run folder is cleared once the run is set
        up, and the checkpoint replaced at the first save (until then it is kept).

    The main rank holds the lock on ``out`` for the whole run
    (:func:`landscape.io.files.output_lock`): a second run on the same checkpoint is refused.

    Ctrl-C (or SIGTERM) stops the run at the end of the update under way, saves the
    checkpoint, and then raises KeyboardInterrupt (:class:`landscape.errors.Terminated`,
    a subclass, for SIGTERM) whose ``result`` attribute is the :class:`TrainResult` so far
    (``stopped_early`` set): ``train(Config.from_dict(ckpt["config"]), out, resume=True)``
    continues it exactly. Another signal more than ``SIGNAL_GRACE`` (2) seconds after the first
    interrupts at once, without saving (within them it is the same request, delivered twice).

    The caller's global torch state is left as it was: the global random number
    generators (the initial weights are drawn from them, seeded with ``train.seed``, so a
    seed gives the same model whatever the caller drew before) and torch's thread count
    (set for the run by :func:`landscape.energy.use_cpu_threads`). What that policy
    changes for the whole process cannot be undone: on the CPU, glibc's allocator is told
    once to keep freed memory for reuse (:func:`landscape.energy.keep_freed_memory`).

    Returns
    -------
    TrainResult

    Raises
    ------
    LandscapeError
        Bad configuration, data that does not fit the network, a non-finite chain, a
        checkpoint that cannot be resumed.
    KeyboardInterrupt
        Ctrl-C or SIGTERM, once the checkpoint is saved (see above).
    """
    config.validate()
    env = join_job(device)
    out = Path(out)
    # (the run seeds the global generators for its initial weights: the caller's are kept)
    with threads_kept(), torch.random.fork_rng(devices=_rng_devices(env.device)):
        with output_lock(out) if env.main else nullcontext():
            return _train(config, env, out, resume=resume, overwrite=overwrite, data_root=data_root,
                          progress=progress, dataset=dataset)


def _rng_devices(device: torch.device) -> list[int]:
    """The CUDA devices whose global generators a run on ``device`` seeds (none on the CPU)."""
    return list(range(torch.cuda.device_count())) if device.type == "cuda" else []


def _seed_global(seed: int, device: torch.device) -> None:
    """Seed the global generators a run on ``device`` draws from (its initial weights):
    the CPU's, and on a GPU every CUDA device's (as ``torch.manual_seed``). On the CPU the
    CUDA generators are left alone, so a caller who uses a GPU later finds them as they were."""
    if device.type == "cuda":
        torch.manual_seed(seed)
    else:
        torch.random.default_generator.manual_seed(seed)


def _train(
    config: Config,
    env: Any,
    out: Path,
    *,
    resume: bool,
    overwrite: bool,
    data_root: str | os.PathLike | None,
    progress: Callable[[int, dict[str, float]], None] | None,
    dataset: datasets.Dataset | None,
) -> TrainResult:
    """:func:`train` once the output is locked."""
    run_dir = run_dir_for(out)
    cfg_t = config.train
    from landscape.data.errors import DataError
    from landscape.distributed import on_every_rank

    def inputs() -> tuple[datasets.Dataset, dict[str, Any] | None]:
        data = dataset if dataset is not None else datasets.load(config.data.name, size=config.data.size,
                                                                 root=data_root, limit=config.data.limit)
        return data, (ckpt_io.load_checkpoint(out) if resume else None)

    # (under torchrun, data or a checkpoint one machine lacks: the error on every rank, not a wait)
    dataset, state = on_every_rank(inputs, errors=(LandscapeError, DataError))
    if state is not None:
        check_resume_ranks(state, config, env.world, out)
    s = _Session.start(config, env, dataset)
    start = 0
    if state is not None:
        start = _restore(state, config, s.model, s.optimizer, s.gens, env, out)
        s.restored()
        if s.bank is not None and (state.get("resume") or {}).get("bank") is not None:
            s.bank = _bank_shard(state, env, s.bank)
        # (a run turned persistent on resume starts its bank as a fresh run does; the note on
        # changed settings says it no longer follows the uninterrupted run)
    elif out.exists() and not overwrite:
        raise LandscapeError(f"{out} exists: pass --resume (resume=True) to continue it or --force (overwrite=True) "
                             "to start over")
    kept = kept_checkpoints(out)
    if state is None and kept and not overwrite:  # (its checkpoint gone, an earlier run's copies are still there)
        raise LandscapeError(f"{kept[max(kept)].parent} holds {len(kept)} checkpoint{'s' if len(kept) != 1 else ''} "
                             f"an earlier run kept (train.keep_every): move them, or pass --force (overwrite=True) "
                             "to start over without them")
    existed = out.exists()  # (before this run's first save: an earlier run's, kept until then)

    if env.main:
        if overwrite and state is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        _drop_kept_after(out, start)  # (a resumed run writes those after its start again)
        with writing(run_dir / "config.json"):
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    log = _RunLog(run_dir / "metrics.csv", start, env.main)
    eps = config.sampler.epsilon
    t0 = time.perf_counter()
    step = start
    done_since = 0
    if progress is not None and env.main:
        progress(0, {})  # (the bar's rate counts from the first update)
    saved = start if state is not None else None  # the update of the last good checkpoint in `out`
    with _StopFlag() as stop:
        while step < cfg_t.steps:
            lr = lr_at(config, step)
            try:
                x_neg, (d_st, v_t, e_pos, e_neg, acc), trouble = s.update(lr)
            except _Diverged as exc:  # the chains: no update to log
                raise _diverged(step + 1, str(exc), log, config, dataset, out, saved, existed) from None
            step += 1
            latest = {"d_st": d_st, "v_t": v_t, "r_t": eps * eps / 2 * v_t, "lr": lr}
            kl = float("nan")
            if dataset.density is not None and trouble is None and (step % cfg_t.eval_every == 0 or step == cfg_t.steps):
                bad_grid = None
                if env.main:
                    try:
                        kl = latest["kl"] = toy_kl(s.energy, dataset)
                    except ValueError as exc:  # (NaN or -inf energies: no density to compare)
                        bad_grid = f"the energy on the grid where KL(q || p_theta) is evaluated is non-finite ({exc})"
                if _agree(bad_grid is not None, env):
                    trouble = bad_grid or "the energy on the main rank's KL(q || p_theta) grid is non-finite"
            log.add(
                [step, d_st, v_t, eps * eps / 2 * v_t, e_pos, e_neg, lr, acc, kl, log.offset + time.perf_counter() - t0],
                flush=step % cfg_t.log_every == 0,
            )
            if trouble is not None:  # (before any save: a checkpoint never holds non-finite weights)
                raise _diverged(step, trouble, log, config, dataset, out, saved, existed)
            done_since += 1
            if progress is not None and env.main and (done_since >= max(1, cfg_t.log_every // 10) or step == cfg_t.steps):
                progress(done_since, latest)
                done_since = 0

            stop_now = _agree(stop.set, env)
            keep = cfg_t.keep_every > 0 and step % cfg_t.keep_every == 0
            if step % cfg_t.ckpt_every == 0 or step == cfg_t.steps or stop_now or keep:
                log.flush()
                _save(out, config, s.model, s.optimizer, s.gens, s.bank, env, step, dataset, log.summary(eps),
                      copies=(kept_checkpoint(out, step),) if keep else ())
                saved = step
            if env.main and (step % cfg_t.plot_every == 0 or step == cfg_t.steps or stop_now):
                write_figures(run_dir, log.path, s.energy, dataset, x_neg, s.bank, config)
            if stop_now:
                break

    log.flush()
    if env.active:
        dist.barrier()
    result = TrainResult(out, run_dir, step, step < cfg_t.steps, log.summary(eps),
                         terminated=stop.signal == signal.SIGTERM)
    if result.stopped_early:  # Ctrl-C or SIGTERM, the checkpoint saved: the caller stops too
        stopped = Terminated if result.terminated else KeyboardInterrupt
        interrupt = stopped(f"training stopped after update {step} of {cfg_t.steps}; {out} is saved: "
                            "train(..., resume=True) continues it (the command: --resume)")
        interrupt.result = result  # type: ignore[attr-defined]
        raise interrupt
    return result


@dataclass
class _Session:
    """What one rank of a run holds: its data, the model (and its DDP wrapper), the
    optimizer, its two generators and its share of the persistent bank."""

    config: Config
    env: Dist
    dataset: datasets.Dataset
    data_x: torch.Tensor
    model: nn.Module
    trained: nn.Module
    energy: Energy
    optimizer: torch.optim.Optimizer
    data_gen: torch.Generator
    gen: torch.Generator
    bank: torch.Tensor | None
    local_batch: int

    @property
    def gens(self) -> tuple[torch.Generator, torch.Generator]:
        return (self.data_gen, self.gen)

    @classmethod
    def start(cls, config: Config, env: Dist, dataset: datasets.Dataset) -> _Session:
        """Build the model for ``dataset`` (identical initial weights on every rank), its
        optimizer, the generators seeded per rank and a fresh bank of noise."""
        _seed_global(config.train.seed, env.device)
        model, trained, energy = _build_model(config, dataset, env)
        cfg_o = config.optim
        if cfg_o.name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                model.parameters(), lr=lr_at(config, 0), momentum=cfg_o.momentum, weight_decay=cfg_o.weight_decay
            )
        else:
            optimizer = torch.optim.Adam(
                model.parameters(), lr=lr_at(config, 0), betas=tuple(cfg_o.betas), weight_decay=cfg_o.weight_decay
            )
        local_batch = _split(config.train.batch_size, env, "train.batch_size")
        energy.check_room(2 * local_batch, "examples per update (the batch's data and its chains)")
        # data draws use a CPU generator (toy densities sample on the CPU); chains use one on
        # the device. Both are seeded per rank and saved, so a resume replays them exactly.
        seed = config.train.seed * 1_000_003 + 2 * env.rank
        data_gen = torch.Generator().manual_seed(seed)
        gen = torch.Generator(device=env.device).manual_seed(seed + 1)
        bank = None
        if config.sampler.init == "persistent":
            bank = energy.uniform_noise(_split(config.sampler.bank_size, env, "sampler.bank_size"), gen)
            if bank.shape[0] < local_batch:
                raise LandscapeError(
                    f"persistent bank of {bank.shape[0]} per rank is smaller than the batch of {local_batch}"
                )
        data_x = dataset.x.to(env.device)
        return cls(config, env, dataset, data_x, model, trained, energy, optimizer, data_gen, gen, bank, local_batch)

    def __post_init__(self) -> None:
        # the largest |weight| at the start and after the last two updates: a divergence says how it grew
        self.weight_max_start = _weight_max(self.model)
        self.weight_max = (self.weight_max_start, self.weight_max_start)

    def restored(self) -> None:
        """The weights were replaced by a checkpoint's: measure them again."""
        self.__post_init__()

    def _noisy_positives(self, n: int) -> torch.Tensor:
        """``n`` training examples with the config's data noise added."""
        x = _positives(self.dataset, self.data_x, n, self.data_gen)
        if self.config.data.noise > 0:
            x = x + self.config.data.noise * torch.randn(x.shape, generator=self.gen, device=x.device, dtype=x.dtype)
        return x

    def update(self, lr: float) -> tuple[torch.Tensor, tuple[float, ...], str | None]:
        """One ML update at learning rate ``lr``: positives from the data, negatives by
        short-run Langevin, a step on ``mean U(X+) - mean U(X-)``. Returns the negatives,
        (d_st, v_t, mean U(X+), mean U(X-), acceptance) averaged over the ranks, and what
        of the update went non-finite (the loss, its gradient, the weights), in words, or
        None. Raises _Diverged (on every rank) where the chains went non-finite."""
        cfg_s, n = self.config.sampler, self.local_batch
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x_pos = self._noisy_positives(n)
        if cfg_s.init == "persistent":
            idx = torch.randperm(self.bank.shape[0], generator=self.gen, device=self.bank.device)[:n]
            x0 = self.bank[idx]
        elif cfg_s.init == "data":  # (a batch of its own, with the data noise, as the reference code draws it)
            x0 = self._noisy_positives(n)
        else:
            x0 = self.energy.uniform_noise(n, self.gen)
        box = self.dataset.range if cfg_s.clamp else None
        failed = None
        try:
            chains = sample(self.energy, x0, cfg_s.steps, cfg_s.epsilon, cfg_s.tau, mh=cfg_s.mh, generator=self.gen,
                            box=box)
        except NonFiniteEnergyError as exc:
            failed = exc
        if _agree(failed is not None, self.env):  # (every rank stops, or the others would hang)
            raise _Diverged(self._chains_went(x0, failed))
        if self.bank is not None:
            self.bank[idx] = chains.x

        u = self.trained(torch.cat([x_pos, chains.x]))
        u_pos, u_neg = u[:n].mean(), u[n:].mean()
        loss = u_pos - u_neg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        params = list(self.model.parameters())
        grads_finite = torch.stack([torch.isfinite(p.grad).all() for p in params if p.grad is not None]
                                   or [torch.ones((), dtype=torch.bool, device=loss.device)]).all()
        self.optimizer.step()
        weight_max = torch.stack([p.detach().abs().max() for p in params]).max()  # (NaN if any weight is)

        nan = torch.tensor(float("nan"), device=self.env.device)
        acceptance = chains.acceptance.mean() if chains.acceptance is not None else nan
        stats = torch.stack(
            [loss.detach(), chains.grad_norm_mean.mean(), u_pos.detach(), u_neg.detach(), acceptance,
             grads_finite.to(loss.dtype), weight_max.to(loss.dtype)]
        ).to(torch.float64)
        if self.env.active:
            dist.all_reduce(stats)
            stats /= self.env.world
        values = [float(v) for v in stats.cpu()]
        self.weight_max = (self.weight_max[1], values[6])
        return chains.x, tuple(values[:5]), self._update_went(values)

    def _update_went(self, values: list[float]) -> str | None:
        """What of an update went non-finite, in words (None: nothing): the loss, its
        gradient in the parameters, or the weights after the optimizer's step."""
        d_st, _, e_pos, e_neg, _, grads_finite, weight_max = values
        if not math.isfinite(d_st):
            return (f"the loss d_st = mean U(X+) - mean U(X-) is {d_st} (mean U(X+) {e_pos:.4g}, "
                    f"mean U(X-) {e_neg:.4g})")
        if grads_finite < 1:
            return (f"the loss's gradient in the network's parameters is non-finite (NaN or inf), though the loss "
                    f"is finite (d_st {d_st:.4g})")
        if not math.isfinite(weight_max):
            return ("the optimizer's step made the network's weights non-finite (NaN or inf) from a finite loss "
                    f"(d_st {d_st:.4g}) and gradient{self._weights_grew()}")
        return None

    def _weights_grew(self) -> str:
        """How the largest weight grew, from the start to before the update under way."""
        start, before = self.weight_max_start, self.weight_max[0]
        if not math.isfinite(before):
            return ""
        if before == start:
            return f"; the largest |weight| was {before:.3g} before it"
        return f"; the largest |weight| was {start:.3g} at the start, {before:.3g} before this update"

    def _chains_went(self, x0: torch.Tensor, failed: NonFiniteEnergyError | None) -> str:
        """What went non-finite in this rank's short-run chains, in words."""
        if failed is None:
            return "another rank's short-run chains reached a non-finite energy or gradient"
        if not math.isfinite(self.weight_max[1]):
            return "the network's weights are non-finite (NaN or inf)"
        start, last = self.weight_max_start, self.weight_max[1]
        weights = (f"the weights are finite, but the largest |weight| grew from {start:.3g} at the start to "
                   f"{last:.3g} after the last update")
        if "start" not in str(failed):
            cause = str(failed).split(";")[0]
            return f"the short-run chains went non-finite: {cause}; {weights}"
        with self.energy.frozen():
            u, g = self.energy.value_and_grad_fn()(x0)
        n = x0.shape[0]
        bad_u = int((~torch.isfinite(u)).sum())
        bad_g = int((~torch.isfinite(g.reshape(n, -1).norm(dim=1))).sum())  # (as the sampler: its norm too)
        scale = f"the network's output times model.energy_scale {self.config.energy_scale():.4g} left float32's range"
        if bad_u:
            return (f"the energy at the chains' starts overflowed ({scale}): non-finite at {bad_u} of {n}, its "
                    f"gradient dU/dx (or the gradient's norm) at {bad_g}; {weights}")
        return (f"the energy's gradient dU/dx at the chains' starts overflowed ({scale}): it (or its norm) is non-finite "
                f"at {bad_g} of {n}, though the energies are finite (up to |U| {float(u.abs().max()):.3g}); {weights}")


def _weight_max(model: nn.Module) -> float:
    """The largest absolute weight of ``model`` (NaN if any is NaN)."""
    return float(torch.stack([p.detach().abs().max() for p in model.parameters()]).max())


class _Diverged(Exception):
    """An update's short-run chains went non-finite (the message says what)."""


def _diverged(
    step: int,
    what: str,
    log: _RunLog,
    config: Config,
    dataset: datasets.Dataset,
    out: Path,
    saved: int | None,
    existed: bool,
) -> LandscapeError:
    """The error of a run that diverged at update ``step`` because ``what`` went
    non-finite, once what it logged is kept: the run log flushed and, on the main rank,
    its diagnostics figure drawn up to the divergence. Says the last finite values logged,
    where the log and figure are, and which checkpoint ``out`` holds (none is written
    after a divergence: the last good one stays)."""
    log.flush()
    parts = [f"training diverged at update {step}: {what}"]
    rows = [r for r in log.rows if all(math.isfinite(r[METRIC_COLUMNS.index(k)]) for k in ("d_st", "v_t"))]
    if rows:
        col = {k: METRIC_COLUMNS.index(k) for k in ("d_st", "v_t", "energy_pos", "energy_neg")}
        first, last = rows[0], rows[-1]

        def values(row: list[float]) -> str:
            return (f"mean U(X+) {row[col['energy_pos']]:.4g}, mean U(X-) {row[col['energy_neg']]:.4g}, "
                    f"d_st {row[col['d_st']]:.4g}, v_t {row[col['v_t']]:.4g}")

        parts.append(f"update {int(last[0])}, the last finite one logged: {values(last)}"
                     + (f" (at update {int(first[0])}: {values(first)})" if first is not last else ""))
    advice = "(lower optim.lr or sampler.epsilon)"
    files = []
    if log.enabled:
        if log.rows:
            files.append(f"its {len(log.rows)} update{'s are' if len(log.rows) != 1 else ' is'} in {log.path}")
            figure = log.path.parent / "diagnostics.png"
            s = config.sampler
            try:
                figures.plot_training_diagnostics(
                    log.arrays(), figure, title=f"{config.preset} on {dataset.name}, diverged at update {step}",
                    init=s.init, steps=s.steps)
                files.append(f"plotted in {figure}")
            except (ValueError, OSError, LandscapeError) as exc:
                files.append(f"(its diagnostics figure failed: {exc})")
        else:
            files.append("no update was logged")
        if saved is not None:
            files.append(f"{out} keeps update {saved}, the last checkpoint before the divergence (--resume "
                         "(resume=True) with a lower optim.lr continues from it)")
        elif existed:
            files.append(f"{out} is left as it was (an earlier run's: this run saved no checkpoint)")
        else:
            t = config.train
            first = min([t.ckpt_every, t.steps] + ([t.keep_every] if t.keep_every > 0 else []))
            files.append(f"no checkpoint was written (the first was due at update {first})")
    tail = f"; {', '.join(files)}" if files else ""
    return LandscapeError("; ".join(parts) + " " + advice + tail)


def _shape_hint(model: nn.Module, data: tuple[int, ...], expected: tuple[int, ...]) -> str:
    """What to set so that images of shape ``data`` fit the network (built with
    ``expected``): its channels, the images' side, or another network."""
    takes = inspect.signature(type(model).__init__).parameters
    if len(data) == 1 and len(expected) == 1 and "in_dim" in takes:  # points of another dimension
        return f"add --set model.kwargs.in_dim={data[0]}"
    if len(data) != 3 or len(expected) != 3:
        return "choose a preset or model.arch for data of this shape"
    fixes = []
    if data[0] != expected[0] and "n_c" in takes:
        fixes.append(f"--set model.kwargs.n_c={data[0]}")
    if data[1:] != expected[1:]:
        fixes.append(f"--set model.kwargs.image_size={data[1]}" if "image_size" in takes
                     else f"--set data.size={expected[1]}")
    return ("add " + " ".join(fixes)) if fixes else "choose another preset or model.arch"


def _build_model(config: Config, dataset: datasets.Dataset, env: Dist) -> tuple[nn.Module, nn.Module, Energy]:
    """The network for ``dataset`` on this rank's device, the module to train (wrapped in
    DDP under torchrun) and its :class:`Energy`."""
    kwargs = dict(config.model.kwargs)
    kwargs["energy_scale"] = config.energy_scale()
    try:
        model = build_model(config.model.arch, kwargs)
    except (ValueError, TypeError) as exc:
        raise LandscapeError(f"model {config.model.arch}: {exc}") from None
    expected = tuple(getattr(model, "input_shape", dataset.shape))
    if expected != tuple(dataset.shape):
        raise LandscapeError(
            f"data set {dataset.name} has examples of shape {list(dataset.shape)} but the {config.model.arch} "
            f"network expects {list(expected)} ({_shape_hint(model, tuple(dataset.shape), expected)})"
        )
    model.to(env.device)
    use_cpu_threads(model, env.device)
    energy = Energy(model, dataset.shape, data_range=dataset.range, device=env.device, name=config.model.arch)
    trained: nn.Module = model
    if env.active:
        trained = nn.parallel.DistributedDataParallel(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    return model, trained, energy


def _split(total: int, env: Dist, field: str) -> int:
    if total % env.world:
        raise LandscapeError(f"{field} {total} does not split evenly over {env.world} ranks: run a number of ranks "
                             f"that divides it, or --set {field}=N with N a multiple of {env.world}")
    return total // env.world


def _positives(dataset: datasets.Dataset, data_x: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """n training examples: fresh draws from a toy density, else rows of the data set."""
    if dataset.density is not None:
        return dataset.sample(n, gen).to(data_x.device, data_x.dtype)
    idx = torch.randint(0, data_x.shape[0], (n,), generator=gen)
    return data_x[idx.to(data_x.device)]


def _agree(flag: bool, env: Dist) -> bool:
    """Every rank stops at the same update, or the collectives would hang."""
    if not env.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def _gather(obj: Any, env: Dist) -> list[Any]:
    if not env.active:
        return [obj]
    out: list[Any] = [None] * env.world
    dist.all_gather_object(out, obj)
    return out


def _save(
    out: Path,
    config: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    gens: tuple[torch.Generator, ...],
    bank: torch.Tensor | None,
    env: Dist,
    step: int,
    dataset: datasets.Dataset,
    metrics: dict[str, float],
    copies: tuple[Path, ...] = (),
) -> None:
    """Write the checkpoint of update ``step`` to ``out`` (main rank; every rank takes
    part), and the same to each of ``copies`` first (:func:`checkpoint.atomic_save`)."""
    gen_states = _gather([g.get_state().cpu() for g in gens], env)
    banks = _gather(bank.cpu() if bank is not None else None, env)
    params = torch.cat([p.detach().reshape(-1).double().cpu() for p in model.parameters()])
    checksums = _gather(float(params.sum() + (params * params).sum()), env)
    if not env.main:
        return
    kwargs = dict(config.model.kwargs)
    kwargs["energy_scale"] = config.energy_scale()
    s = config.sampler
    ckpt = {
        "format": ckpt_io.FORMAT,
        "version": ckpt_io.VERSION,
        "tool_version": tool_version(),
        "created": ckpt_io.now_iso(),
        "model": {"arch": config.model.arch, "kwargs": kwargs},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "data": dataset.to_dict(),
        "sampler": {"epsilon": s.epsilon, "tau": s.tau, "steps": s.steps, "init": s.init, "mh": s.mh},
        "regime": config.regime,
        "step": step,
        "config": config.to_dict(),
        "metrics": metrics,
        "resume": {
            "optimizer": optimizer.state_dict(),
            "generators": gen_states,
            "bank": torch.cat(banks) if bank is not None else None,
            "world_size": env.world,
        },
        "distributed": {"world_size": env.world, "param_checksums": checksums},
    }
    ckpt_io.atomic_save(ckpt, out, copies)


#: What a resumed run cannot change: the network (its weights are the checkpoint's), and
#: the optimizer's kind (its state is the checkpoint's).
FIXED_ON_RESUME = ("model", "optim.name")


def _restore(
    state: dict[str, Any],
    config: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    gens: tuple[torch.Generator, ...],
    env: Dist,
    out: Path,
) -> int:
    """Load the checkpoint ``state`` of a run into this one of ``config``: weights,
    optimizer state (with ``config``'s momentum, betas and weight decay: the state dict
    would put the old ones back), random streams. Returns the updates done."""
    fixed = [name for name in changed_fields(state.get("config") or {}, config.to_dict())
             if name.startswith(FIXED_ON_RESUME)]
    if fixed:
        raise LandscapeError(f"{out}: --resume (resume=True) cannot change {', '.join(fixed)} (the checkpoint's "
                             "network and optimizer state are for its own): start over with --force (overwrite=True), "
                             "or train into another --out")
    ckpt_io._load_state(model, state["state_dict"], out)
    resume = state.get("resume")
    if not resume:
        raise LandscapeError(f"{out}: holds no resume state (optimizer, generators); cannot resume it")
    try:
        optimizer.load_state_dict(resume["optimizer"])
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError, NotImplementedError) as exc:
        raise LandscapeError(f"{out}: optimizer state does not fit: {first_line(exc)}") from None
    for group in optimizer.param_groups:  # (the learning rate is set at every update)
        group["weight_decay"] = config.optim.weight_decay
        if "momentum" in group:
            group["momentum"] = config.optim.momentum
        if "betas" in group:
            group["betas"] = tuple(config.optim.betas)
    saved = resume.get("generators") or []
    if resume.get("world_size") == env.world and len(saved) == env.world and len(saved[env.rank]) == len(gens):
        for g, s in zip(gens, saved[env.rank]):
            try:
                g.set_state(s)
            except (TypeError, RuntimeError, ValueError) as exc:  # (a damaged or foreign generator state)
                raise LandscapeError(f"{out}: its saved random generator state is damaged ({first_line(exc)}): it "
                                     "cannot continue the run; train afresh (--force) or from another checkpoint") \
                    from None
    else:
        # a different world size cannot replay the same random streams: continue, reseeded
        for i, g in enumerate(gens):
            g.manual_seed(state["config"]["train"]["seed"] * 1_000_003 + 2 * env.rank + i + 7919 * int(state["step"]))
    return int(state["step"])


def check_resume_ranks(state: dict[str, Any], config: Config, world: int, out: str | os.PathLike) -> None:
    """Refuse, in one line, to resume the checkpoint ``state`` with ``config`` on ``world``
    ranks where its work cannot be shared out: every rank takes an equal part of the global
    batch (``train.batch_size``) and of the persistent bank, and the bank is the
    checkpoint's own chains (its size cannot change on resume). The error names the rank
    counts that would work (those that divide both). Called before anything is said or
    written, so a refused resume leaves the checkpoint and its run folder as they were."""
    saved = (state.get("resume") or {}).get("bank")
    bank = int(saved.shape[0]) if saved is not None and config.sampler.init == "persistent" else None
    if bank is not None and config.sampler.bank_size != bank:
        raise LandscapeError(f"{out}: a resumed run continues the checkpoint's persistent bank of {bank:,} chains: "
                             f"sampler.bank_size cannot change to {config.sampler.bank_size:,} (drop that --set)")
    batch = config.train.batch_size
    parts = [(f"train.batch_size {batch:,}", batch)] + ([(f"persistent bank of {bank:,} chains", bank)] if bank else [])
    uneven = [what for what, n in parts if n % world]
    if not uneven:
        return
    common = math.gcd(batch, bank) if bank else batch
    counts = [k for k in range(1, common + 1) if common % k == 0]
    if len(counts) > 10:
        listed = ", ".join(f"{k:,}" for k in counts[:9]) + ", ..."
    else:
        listed = ", ".join(f"{k:,}" for k in counts[:-1]) + f" or {counts[-1]:,}" if len(counts) > 1 else "1"
    bank_fits = not bank or bank % world == 0
    raise LandscapeError(
        f"{out}: cannot resume on {world} ranks: its {' and its '.join(uneven)} "
        f"{'do' if len(uneven) > 1 else 'does'} not split evenly over {world}"
        + ("" if bank_fits else " (the bank is the checkpoint's own: its size cannot change)")
        + f"; resume on {listed} rank{'s' if len(counts) > 1 else ''}, "
        + (f"the counts that divide {'both' if bank else 'it'}" if len(counts) > 1 else
           f"the only count that divides {'both' if bank else 'it'}")
        + (f", or give --batch-size a multiple of {world}" if bank_fits else ""))


def _bank_shard(state: dict[str, Any], env: Dist, bank: torch.Tensor) -> torch.Tensor:
    saved = state["resume"].get("bank")
    if saved is None or saved.shape[0] != bank.shape[0] * env.world or tuple(saved.shape[1:]) != tuple(bank.shape[1:]):
        raise LandscapeError("the checkpoint's persistent bank does not fit this run's bank size and world size")
    n = bank.shape[0]
    return saved[env.rank * n : (env.rank + 1) * n].to(bank.device, bank.dtype).clone()


class _RunLog:
    """The run's metrics CSV: truncated to the resumed step, appended in batches."""

    def __init__(self, path: Path, start: int, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled
        self.rows: list[list[float]] = []
        self.pending: list[list[float]] = []
        self.offset = 0.0  # wall time of the updates before a resume
        if not enabled:
            return
        if start > 0 and path.exists():
            with open(path, newline="") as f:
                reader = csv.reader(f)
                next(reader, None)  # header
                kept = [r for r in reader if r and int(float(r[0])) <= start]
            self.rows = [[float(v) for v in r] for r in kept]
        if self.rows:
            self.offset = self.rows[-1][METRIC_COLUMNS.index("seconds")]
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(METRIC_COLUMNS)
            w.writerows([_fmt_row(r) for r in self.rows])

    def add(self, row: list[float], flush: bool) -> None:
        if not self.enabled:
            return
        self.rows.append(row)
        self.pending.append(row)
        if flush:
            self.flush()

    def flush(self) -> None:
        if not self.enabled or not self.pending:
            return
        with writing(self.path), open(self.path, "a", newline="") as f:
            csv.writer(f).writerows([_fmt_row(r) for r in self.pending])
        self.pending = []

    def arrays(self) -> dict[str, np.ndarray]:
        a = np.array(self.rows, dtype=np.float64).reshape(-1, len(METRIC_COLUMNS))
        return {name: a[:, i] for i, name in enumerate(METRIC_COLUMNS)}

    def summary(self, eps: float) -> dict[str, float]:
        if not self.enabled or not self.rows:
            return {}
        m = self.arrays()
        window = diagnostics.steady_window(len(m["d_st"]))  # past the burn-in
        s = diagnostics.summarize_oscillation(m["d_st"][-window:], m["v_t"][-window:])
        s = {k: float(v) for k, v in s.items()}
        s["r_t_mean"] = float(eps * eps / 2 * np.mean(m["v_t"][-window:]))
        kl = m["kl"][np.isfinite(m["kl"])]
        if kl.size:
            s["kl"] = float(kl[-1])
        s["window"] = float(window)  # (the updates these statistics cover: the last ones)
        s["updates"] = float(m["step"][-1])
        s["seconds"] = float(m["seconds"][-1])
        return s


def _fmt_row(row: list[float]) -> list[str]:
    return [str(int(row[0]))] + [repr(float(v)) for v in row[1:]]  # (exact: a resumed run reads them back)


def read_metrics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a run log written by ``train`` into column arrays."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [[float(v) for v in r] for r in reader if r]
    a = np.array(rows, dtype=np.float64).reshape(-1, len(header))
    return {name: a[:, i] for i, name in enumerate(header)}


def toy_log_densities(
    energy: Energy, dataset: datasets.Dataset, res: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """True and learned log-densities of a 2-D data set on a ``res`` x ``res`` grid.

    Returns ``(xs, ys, log_q, log_p, cell_area)``; the learned density ``exp(-U)`` is
    normalised on the grid.
    """
    with energy.frozen():
        xs, ys, u = diagnostics.energy_grid(energy, dataset.density.box, res=res)
    cell = float((xs[1] - xs[0]) * (ys[1] - ys[0]))
    grid = torch.from_numpy(np.stack(np.meshgrid(xs, ys), -1).reshape(-1, 2))
    log_q = dataset.density.log_density(grid).reshape(res, res).double().numpy()
    log_p = diagnostics.normalized_log_density_on_grid(u, cell)
    return xs, ys, log_q, log_p, cell


def toy_kl(energy: Energy, dataset: datasets.Dataset, res: int = 200) -> float:
    """KL(q || p_theta) between the true 2-D density and the learned one, on a grid."""
    _, _, log_q, log_p, cell = toy_log_densities(energy, dataset, res)
    return diagnostics.kl_on_grid(log_q, log_p, cell)


def write_figures(
    run_dir: Path,
    metrics_path: Path,
    energy: Energy,
    dataset: datasets.Dataset,
    negatives: torch.Tensor | None,
    bank: torch.Tensor | None,
    config: Config,
) -> None:
    """Diagnostics plot, short-run samples (image grid or 2-D densities), bank pictures."""
    s = config.sampler
    run = f"{config.preset} on {dataset.name}"
    metrics = read_metrics(metrics_path)
    if len(metrics["step"]):
        figures.plot_training_diagnostics(
            metrics, run_dir / "diagnostics.png", title=run,
            init=s.init, steps=s.steps,
        )
    if dataset.density is not None:
        xs, ys, log_q, log_p, cell = toy_log_densities(energy, dataset)
        kl = diagnostics.kl_on_grid(log_q, log_p, cell)
        samples = None if negatives is None else negatives.detach().cpu().numpy()
        figures.plot_toy_density(
            xs, ys, log_q, log_p, run_dir / "density.png", samples=samples, kl=kl,
            title=f"{run}: true vs learned density", init=s.init, steps=s.steps,
        )
    elif negatives is not None and negatives.dim() == 4:
        shown = negatives[:100]
        caption = chain_caption(s.steps, s.init, n=shown.shape[0], epsilon=s.epsilon, tau=s.tau)
        figures.save_image_grid(shown.detach().cpu(), run_dir / "samples.png",
                                    caption=f"{run}: the last update's negatives, {caption}")
        if bank is not None:
            whose = " (rank 0's part)" if dist.is_initialized() and dist.get_world_size() > 1 else ""
            figures.save_image_grid(
                bank[:100].detach().cpu(), run_dir / "bank.png",
                caption=f"{run}: {min(100, bank.shape[0])} of the {bank.shape[0]} chains of the "
                        f"persistent bank{whose}, each {s.steps} Langevin steps per update it was drawn in",
            )
