"""The mapping pipeline: minima -> barriers between them -> the tree over minima -> basins.

:func:`build_map` runs the stages below in order and returns a :class:`MapResult`: the map
(its ``content``, a :class:`~landscape.io.records.MapContent`), the settings it chose and its
cost; :meth:`MapResult.write` writes it as ``landscape map`` does.
Settings left open in the :class:`~landscape.mapping.settings.MapConfig` are chosen from the energy
by :mod:`landscape.mapping.settings`, the same for the Python API and the command line.

1. **Metastable states** (:func:`landscape.mapping.minima.find_minima`): chains from noise in the
   data box and/or from data run at temperature ``T`` and are quenched to local minima,
   near-duplicates merged. More rounds of chains follow while they find new minima that
   do not drain into known ones.
2. **Barriers between neighbours** (:mod:`landscape.mapping.barriers`): each minimum's nearest
   others (plus links joining what the neighbour graph leaves apart), estimated on the
   straight segment and refined by the string method.
3. **The tree over minima** (:func:`landscape.mapping.tree.minimax_tree`): every minimum is a leaf.
   Its barriers set the attraction-diffusion pull, and its temperature where neither the config
   nor the model's own sampler gives one (:mod:`landscape.mapping.settings`).
4. **Basins** (:func:`landscape.mapping.ad.assign_basins`): attraction-diffusion at each
   magnetization of the ladder, extended upwards until the strongest pull leaves one basin:
   the Hopfield hierarchy (``/levels``); the main level is ``/minima/basin``.
5. **Refinement of the pairs attraction-diffusion connected** that could still lower the
   tree (strings started on the chains' own paths), and the final tree. Where this lowers
   the barriers the settings of step 3 came from by more than half (a string between two
   minima stopped on a higher pass than the chains found), steps 3-5 run once more from
   the refined tree.
6. For 2-D energies, the energy on a grid over the box (``/grid``) for pictures.

A long run saves its state after each stage, and inside the long ones (between and
inside batches of attraction-diffusion trials, between batches of strings, after each pass
of refinement), with :func:`landscape.io.progress.save_progress`; called again with
``resume=True`` and the same settings it continues where it stopped, once
:func:`check_progress` has found the saved state whole.
"""

from __future__ import annotations

import errno
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.mapping.ad import (
    ADConfig,
    BatchProgress,
    LevelProgress,
    PairRecords,
    TurnProgress,
    assign_ladder,
    extend_ladder,
    join_drained,
    nest_levels,
)
from landscape.mapping.barriers import (
    Refinement, RefineProgress, add_records, close_estimates, line_estimates, neighbour_pairs, neighbour_table,
    refine_pairs, refinement_rows,
)
from landscape.distributed import current as current_group
from landscape import checks, tool_version
from landscape.checks import require
from landscape.distributed import CALIBRATE_SIZES, NEVER_SPLIT, SplitEnergy, from_main, split_energy
from landscape.energy import (
    Energy, check_gives_back, energies, map_energy_scale, reset_stage, runs_frozen, set_stage, stage,
)
from landscape.errors import LandscapeError
from landscape.io.files import first_line
from landscape.io.mapfile import check_partition, utc_now
from landscape.io.progress import resume_progress, save_progress
from landscape.mapping.minima import (
    Minima, QuenchResult, barrier_between, describe_stops, energy_tie, find_minima, held_by_box, merge_duplicates,
)
from landscape.mapping.neighbors import nearest
from landscape.io.records import NEIGHBOUR, GridData, MapContent, MapMeta, PairTable, Partition
from landscape.io.schema import SCHEMA_VERSION
from landscape.io.views import SAMPLED, coverage
from landscape.mapping.settings import (
    AD_TEMPERATURE_SHARE, LADDER_FACTOR, LADDER_JUMP, MapConfig, ad_settings, ad_temperature_from, box_relief, capped_eps,
    exploration_settings, resolved_barriers, sampling_temperature,
)
from landscape.mapping.tree import BarrierTree, flat_rtol, minimax_tree, pair_lengths, unresolved

# Refined paths are kept in the map when they take at most this many numbers.
_PATH_BUDGET = 20_000_000
_REFINE_PASSES = 5


class Reporter:
    """Progress of a map, for a terminal or a log. The default does nothing.

    ``stage(name, total, unit)`` opens a stage, ``advance(n)`` moves it on, ``detail(text)``
    says what the stage's current batch is doing between two advances (e.g. "412/1,120
    trials running, step 3,200/5,000": a batch can run for minutes), ``note(text)``
    reports a finding (e.g. "37 minima"), ``warn(text)`` one that puts the map's answer in
    doubt (the energy's precision; a note unless a reporter shows warnings where it drops
    notes). The CLI implements it with progress bars.
    """

    def stage(self, name: str, total: int | None = None, unit: str = "it") -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def detail(self, text: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def warn(self, text: str) -> None:
        self.note(text)

    def close(self) -> None:
        pass


class NamedStages(Reporter):
    """Forwards to another :class:`Reporter`; the name of the stage under way is also the
    library's :func:`landscape.energy.current_stage`, so a user's energy that fails inside
    it is reported with where it failed."""

    def __init__(self, inner: Reporter) -> None:
        self.inner = inner
        self.token: Any = None

    def stage(self, name: str, total: int | None = None, unit: str = "it") -> None:
        self._leave()
        self.token = set_stage(name)
        self.inner.stage(name, total, unit)

    def advance(self, n: int = 1) -> None:
        self.inner.advance(n)

    def detail(self, text: str) -> None:
        self.inner.detail(text)

    def note(self, text: str) -> None:
        self.inner.note(text)

    def warn(self, text: str) -> None:
        self.inner.warn(text)

    def close(self) -> None:
        self._leave()
        self.inner.close()

    def _leave(self) -> None:
        if self.token is not None:
            reset_stage(self.token)
            self.token = None


class ProgressBars(Reporter):
    """A :class:`Reporter` for terminals: a tqdm progress bar per stage, the current
    batch's detail after it (redrawn at most every :attr:`DETAIL_EVERY` seconds), findings
    printed (when ``quiet`` nothing but warnings, on standard error)."""

    DETAIL_EVERY = 0.5

    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.bar: Any = None
        self.shown = -math.inf  # when the detail was last drawn

    def stage(self, name: str, total: int | None = None, unit: str = "it") -> None:
        self.close()
        self.shown = -math.inf
        if not self.quiet:
            from landscape.io.bars import progress_bar

            self.bar = progress_bar(total=total, desc=name, unit=unit, leave=False)

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
            # what the batch just done was doing is over: the next batch's first detail is
            # drawn at once
            self.shown = -math.inf

    def detail(self, text: str) -> None:
        if self.bar is None:
            return
        now = time.monotonic()
        if now - self.shown >= self.DETAIL_EVERY:
            self.shown = now
            self.bar.set_postfix_str(text)

    def note(self, text: str) -> None:
        self.close()
        if not self.quiet:
            print(f"  {text}", flush=True)

    def warn(self, text: str) -> None:
        if self.quiet:
            print(f"warning: {text}", file=sys.stderr, flush=True)
        else:
            self.note(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@dataclass
class MapResult:
    """What :func:`build_map` returns: the map's content, the settings it chose, the cost.

    The content's ``meta`` holds what a map file's root attributes would (the settings
    given and chosen, the source, the time per stage), so a map in memory reads as the same
    map from its file does (``content.settings()``, :func:`extend_map`, the funnel probe).
    """

    content: MapContent
    settings: dict[str, Any]
    seconds: dict[str, float]
    counts: dict[str, int]

    def write(self, path: str | Path, *, source: Mapping[str, Any] | str | None = None,
              overwrite: bool = False) -> Path:
        """Write the map to ``path`` (HDF5, atomically) as ``landscape map`` writes its
        maps: with the settings given and chosen, the time per stage and this version, so
        ``landscape info``, ``tree``, ``funnel`` and ``diagnose`` read it. ``source`` says
        what was mapped (plain data, never code; default: the energy's name). A map already
        at ``path`` is replaced; any other file only with ``overwrite``
        (:func:`~landscape.io.mapfile.write_map`).

        Returns
        -------
        Path
        """
        from landscape.io.mapfile import write_map

        meta = self.content.meta
        assert meta is not None  # (set by build_map)
        return write_map(path, self.content, config=meta.config, source=meta.source if source is None else source,
                         tool_version=meta.tool_version, settings=self.settings, seconds=self.seconds,
                         ranks=meta.extra.get("ranks"), work_split=meta.extra.get("work_split"), overwrite=overwrite)


# ------------------------------------------------------------------------ exploration


def _starts(energy: Energy, init: str, n: int, data: torch.Tensor | None, gen: torch.Generator,
            seed: int) -> torch.Tensor:
    """Starting points of ``n`` exploration chains."""
    energy.check_room(n, "exploration chains")
    n_data = {"noise": 0, "data": n, "both": n // 2}[init]
    parts = []
    if n - n_data:
        parts.append(energy.uniform_noise(n - n_data, gen))
    if n_data:
        cpu_gen = torch.Generator().manual_seed(seed)
        idx = torch.randint(0, data.shape[0], (n_data,), generator=cpu_gen)
        parts.append(data[idx].to(energy.device, energy.dtype))
    return torch.cat(parts)


def _union(energy: Energy, old: Minima | None, new: Minima, radius: float,
           tie: float) -> tuple[Minima, torch.Tensor]:
    """Minima of both sets, near-duplicates with no barrier between merged (hits summed;
    energies within ``tie`` equal, see :func:`merge_duplicates`); and which of the result
    came from ``new`` alone (bool [K])."""
    if old is None:
        return new, torch.ones(len(new), dtype=torch.bool)
    x = torch.cat([old.x, new.x.to(old.x)])
    e = torch.cat([old.energy, new.energy.to(old.energy)])
    h = torch.cat([old.hits, new.hits])
    g = torch.cat([old.grad_norm, new.grad_norm.to(old.grad_norm)])
    keep, assign = merge_duplicates(x, e, radius, tie=tie, apart=energy)
    hits = torch.bincount(assign.cpu(), weights=h.double(), minlength=keep.numel()).round().to(torch.int64)
    fresh = torch.ones(keep.numel(), dtype=torch.bool)
    fresh[assign[: len(old)].cpu()] = False  # (groups with an old minimum)
    return Minima(x[keep], e[keep.cpu()], hits, g[keep.cpu()]), fresh


#: Known minima a new one is checked against (nearest first) by :func:`_new_states`.
DRAIN_NEIGHBOURS = 4


def _new_states(energy: Energy, minima: Minima, fresh: torch.Tensor, images: int, tie: float) -> int:
    """How many of the minima ``fresh`` (bool [K]) are new states: all but those that drain
    into a minimum found before with no barrier the energy's precision resolves (one of
    their :data:`DRAIN_NEIGHBOURS` nearest known minima is no higher, and the highest
    energy on the straight segment to it, :func:`landscape.mapping.barriers.line_estimates`
    with ``images`` points as the neighbours' estimates take, is not above the new one
    beyond :func:`landscape.mapping.tree.flat_rtol` of the minima's magnitude, or the energy
    tie ``tie``, whichever is larger). Quenches stop all over a plateau or a flat floor; each round of
    chains finds more such points, which drain into a well or a floor already found: they
    are no new state, and count as none for another round. (A new well beside a known
    plateau point is new: it does not drain into the higher point.)"""
    fresh = fresh.to(minima.x.device)
    known = torch.nonzero(~fresh).flatten()
    new = torch.nonzero(fresh).flatten()
    if not len(new) or not len(known):
        return int(len(new))
    flat_x = minima.x.reshape(len(minima), -1)
    e = minima.energy.double().cpu()
    tol = float(unresolved(float(e.abs().max()), flat_rtol(energy.dtype), tie))
    k = min(DRAIN_NEIGHBOURS, len(known))
    near = known[torch.cdist(flat_x[new].double(), flat_x[known].double()).topk(k, largest=False).indices]  # [n, k]
    pairs = torch.stack([new[:, None].expand(-1, k).reshape(-1), near.reshape(-1)], 1).cpu()
    with energy.frozen(), torch.no_grad():
        top = torch.from_numpy(line_estimates(energy, minima.x, pairs.numpy(), images))
    ea, eb = e[pairs[:, 0]], e[pairs[:, 1]]
    drains = (eb <= ea + tol) & (top <= ea + tol)
    return int((~drains.reshape(len(new), k).any(1)).sum())


def _explore(energy: Energy, cfg: MapConfig, plan: dict[str, Any], data: torch.Tensor | None,
             state: dict[str, Any], save: Callable[[], None], reporter: Reporter) -> Minima:
    """Rounds of exploration chains (see :mod:`landscape.mapping.settings`): the first of
    ``chains``, each later one as large as all before, while the last found new minima
    that do not drain into one found before (:func:`_new_states`); no second round when
    the minima one chain alone found outnumber half of the chains (nothing saturates)."""
    minima = None
    if "minima/x" in state:
        minima = _minima_from(state, energy)
    done = int(state.get("explore/rounds", 0))
    total = int(state.get("explore/chains", 0))
    new_last = int(state.get("explore/new", -1))
    while done < cfg.rounds:
        if done >= 1:
            singles = int((minima.hits == 1).sum())
            if new_last == 0 or (done == 1 and singles > 0.5 * total):
                break
        n = cfg.chains if done == 0 else total
        gen = torch.Generator(device=energy.device).manual_seed(cfg.seed * 1009 + 11 * done)
        starts = _starts(energy, plan["init"], n, data, gen, cfg.seed + 17 + 131 * done)
        reporter.stage(f"exploration chains, round {done + 1}" if done else "exploration chains",
                       total=plan["steps"] + cfg.quench_steps, unit="step")
        stops = list(state.get("explore/stops", [0, 0, 0]))

        def count(q: QuenchResult) -> None:  # how the round's quenches stopped
            for i, k in enumerate(q.stops()):
                stops[i] += k

        found = find_minima(energy, starts, temperature=plan["temperature"], eps=plan["eps"], steps=plan["steps"],
                            quench_steps=cfg.quench_steps, grad_tol=plan["grad_tol"],
                            merge_radius=plan["merge_radius"], generator=gen, box=energy.data_range,
                            progress=reporter.advance, on_quench=count)
        tie = energy_tie(plan["grad_tol"], plan["merge_radius"])
        minima, fresh = _union(energy, minima, found, plan["merge_radius"], tie)
        new_minima = int(fresh.sum())
        new_last = _new_states(energy, minima, fresh, cfg.refine_images, tie) if done else new_minima
        done, total = done + 1, total + n
        state.update({"minima/x": minima.x.detach().cpu(), "minima/energy": minima.energy.cpu(),
                      "minima/hits": minima.hits.cpu(), "minima/grad_norm": minima.grad_norm.cpu(),
                      "explore/rounds": done, "explore/chains": total, "explore/new": new_last,
                      "explore/stops": stops, "stage": f"exploration round {done}"})
        save()
        if done > 1:
            reporter.note(f"round {done}: {n} more chains, {new_minima} new minima"
                          + (f" ({new_minima - new_last} of them draining with no barrier into one found before)"
                             if new_last < new_minima else ""))
    assert minima is not None
    state["explore/rounds"] = done
    if cfg.max_minima and len(minima) > cfg.max_minima:
        k = cfg.max_minima
        minima = Minima(minima.x[:k], minima.energy[:k], minima.hits[:k], minima.grad_norm[:k])
    return minima


def _minima_from(state: dict[str, Any], energy: Energy) -> Minima:
    return Minima(
        x=torch.as_tensor(state["minima/x"]).to(energy.device, energy.dtype),
        energy=torch.as_tensor(state["minima/energy"], dtype=torch.float64),
        hits=torch.as_tensor(state["minima/hits"], dtype=torch.int64),
        grad_norm=torch.as_tensor(state["minima/grad_norm"], dtype=torch.float64),
    )


# --------------------------------------------------------------------------- barriers


def _finite_rows(path: np.ndarray) -> np.ndarray:
    """The points of a path that are finite throughout: a string kept in a batch's wider
    buffer ends in NaN rows, which its saved progress leaves out (so both give the tree's
    paths one width)."""
    path = np.asarray(path)
    return path[np.isfinite(path.reshape(path.shape[0], -1)).all(1)]


@dataclass
class _Saddles:
    """Refined saddles (and paths) by minima pair, kept for the tree's merges."""

    points: dict[tuple[int, int], np.ndarray]
    paths: dict[tuple[int, int], np.ndarray]

    def add(self, table: PairTable, ref: Refinement, keep_paths: bool) -> None:
        for q, row in enumerate(ref.rows.tolist()):
            key = (int(table.pairs[row, 0]), int(table.pairs[row, 1]))
            table.refined[row] = ref.saddle[q]
            table.saddle_point[row] = ref.saddle_point[q]
            self.points[key] = ref.saddle_x[q]
            if keep_paths:
                self.paths[key] = _finite_rows(ref.paths[q])

    def to_state(self, state: dict[str, Any], shape: tuple[int, ...]) -> None:
        keys = sorted(self.points)
        state["saddles/pairs"] = np.array(keys, dtype=np.int64).reshape(-1, 2)
        state["saddles/x"] = np.stack([self.points[k] for k in keys]) if keys else np.zeros((0, *shape), np.float32)
        pk = sorted(self.paths)
        state["saddles/path_pairs"] = np.array(pk, dtype=np.int64).reshape(-1, 2)
        if pk:
            length = max(self.paths[k].shape[0] for k in pk)
            stacked = np.full((len(pk), length, *shape), np.nan, dtype=np.result_type(*(self.paths[k] for k in pk)))
            for r, k in enumerate(pk):
                stacked[r, : self.paths[k].shape[0]] = self.paths[k]
            state["saddles/paths"] = stacked

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> _Saddles:
        out = cls({}, {})
        for k, x in zip(np.asarray(state.get("saddles/pairs", np.zeros((0, 2)))).tolist(),
                        state.get("saddles/x", [])):
            out.points[(int(k[0]), int(k[1]))] = np.asarray(x)
        paths = state.get("saddles/paths")
        for r, k in enumerate(np.asarray(state.get("saddles/path_pairs", np.zeros((0, 2)))).tolist()):
            p = np.asarray(paths[r])
            out.paths[(int(k[0]), int(k[1]))] = _finite_rows(p)
        return out


def _table_to_state(state: dict[str, Any], table: PairTable, prefix: str = "pairs") -> None:
    for name in PairTable.COLUMNS:
        state[f"{prefix}/{name}"] = getattr(table, name)


def _table_from_state(state: dict[str, Any], prefix: str = "pairs") -> PairTable:
    # (a progress file of an earlier version has no "saddle_point": all False)
    return PairTable(*(np.asarray(state[f"{prefix}/{name}"]) if f"{prefix}/{name}" in state else None
                       for name in PairTable.COLUMNS))


def _refine(energy: Energy, x: torch.Tensor, table: PairTable, rows: list[int], cfg: MapConfig,
            paths: dict[tuple[int, int], torch.Tensor], saddles: _Saddles, keep_paths: bool,
            reporter: Reporter, what: str, run: _Run | None = None) -> tuple[int, int]:
    """Refine ``rows`` of the table in place; return how many strings were retried and
    how many of the strings kept (one per row) ran out of iterations. With ``run``, the
    strings' progress is saved between their batches (``refining/...``), and continued
    from there when that state holds it for these rows."""
    if not rows:
        return 0, 0
    reporter.stage(f"refining barriers ({what}, string method)", total=len(rows), unit="pair")
    shape = tuple(energy.shape)
    saved = None if run is None else _refining_from_state(run.state, rows, shape)
    if saved is not None:
        reporter.note(f"resuming the string method ({what}) after {saved.done:,} of its "
                      f"{len(saved.positions) if saved.phase else len(rows):,} strings"
                      + (" run again" if saved.phase else ""))
    on_batch = None
    if run is not None and run.saver is not None:
        keep = _spaced(run)

        def on_batch(progress: Callable[[], RefineProgress]) -> None:
            keep(lambda: _refining_to_state(run.state, rows, progress(), shape))

    ref = refine_pairs(energy, x, table, rows, paths=paths, images=cfg.refine_images, steps=cfg.refine_steps,
                       climb_steps=cfg.refine_climb_steps, batch=_STRING_BATCH,
                       progress=reporter.advance, detail=reporter.detail, on_batch=on_batch, resume_from=saved)
    if run is not None:
        _drop(run.state, _REFINING)
    saddles.add(table, ref, keep_paths)
    # (on a network strings seldom converge: say how many ran out of iterations, and which
    # settings give them more)
    reporter.note(ref.describe_stops(f" (--string-steps {cfg.refine_steps}, --climb-steps {cfg.refine_climb_steps})"))
    return ref.retried, ref.count_stops()["budget"]


#: Strings per batch of the string method (a batch's progress is what a resumed run keeps).
_STRING_BATCH = 256
_REFINING = "refining/"


def _refining_to_state(state: MutableMapping[str, Any], rows: list[int], progress: RefineProgress,
                       shape: tuple[int, ...]) -> None:
    """The string method part-way over ``rows`` (``refining/...``)."""
    state[f"{_REFINING}info"] = {"rows": [int(r) for r in rows], "phase": progress.phase, "done": progress.done,
                                 "positions": [int(q) for q in progress.positions]}
    state[f"{_REFINING}saddle"], state[f"{_REFINING}at_saddle"] = progress.saddle, progress.at_saddle.astype(np.int8)
    state[f"{_REFINING}saddle_x"], state[f"{_REFINING}floor"] = progress.saddle_x, progress.floor
    state[f"{_REFINING}stops"] = progress.stops
    _paths_to_state(state, _REFINING, [None if p is None else torch.from_numpy(p) for p in progress.paths], shape,
                    progress.saddle_x.dtype)  # (float64 in a map made in float64, as the map keeps them)


def _refining_from_state(state: MutableMapping[str, Any], rows: list[int],
                         shape: tuple[int, ...]) -> RefineProgress | None:
    """The string method's saved progress over exactly ``rows``, or None."""
    info = state.get(f"{_REFINING}info")
    if not isinstance(info, dict) or info.get("rows") != [int(r) for r in rows]:
        return None
    try:
        paths = _paths_from_state(state, _REFINING, len(rows))
        return RefineProgress(
            int(info["phase"]), int(info["done"]), [int(q) for q in info["positions"]],
            np.asarray(state[f"{_REFINING}saddle"]), np.asarray(state[f"{_REFINING}at_saddle"]).astype(bool),
            np.asarray(state[f"{_REFINING}saddle_x"]), np.asarray(state[f"{_REFINING}floor"]),
            np.asarray(state[f"{_REFINING}stops"]), [None if p is None else p.numpy() for p in paths])
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise LandscapeError(f"the saved progress of the string method is damaged ({err!r}); "
                             "delete its .partial file to start afresh") from None


def _refine_until_settled(energy: Energy, x: torch.Tensor, minima_energy: np.ndarray, table: PairTable,
                          cfg: MapConfig, paths: dict[tuple[int, int], torch.Tensor], saddles: _Saddles,
                          keep_paths: bool, reporter: Reporter, refine: bool = True, done: int = 0,
                          after_pass: Callable[[int, int, int], None] | None = None,
                          run: _Run | None = None) -> tuple[int, int]:
    """Settle the tree's barriers once attraction-diffusion has added its pairs: refine the
    pairs that could still lower the tree, in passes (refining lowers some barriers, which
    can bring other pairs near the tree), from pass ``done`` on (the table as those left
    it); after each pass, and at the end, check the chains' estimates the tree still rests
    on along their whole path (:func:`close_estimates`). Return the strings retried and those
    that ran out of iterations (as :func:`_refine`). ``after_pass(passes done, retried, at
    budget)`` follows each pass."""
    retried = at_budget = checked = raised = 0
    closed: set[tuple[int, int]] = set()

    def close() -> None:
        nonlocal checked, raised
        c, r = close_estimates(energy, minima_energy, table, paths, closed)
        checked, raised = checked + c, raised + r

    for k in range(done, _REFINE_PASSES if refine else 0):
        rows = refinement_rows(minima_energy, table, cfg.refine_slack)
        if not rows:
            break
        r, b = _refine(energy, x, table, rows, cfg, paths, saddles, keep_paths, reporter, "attraction-diffusion pairs",
                       run)
        retried, at_budget = retried + r, at_budget + b
        close()  # (where the tree rises, the next pass refines the pairs that now come near it)
        if after_pass is not None:
            after_pass(k + 1, r, b)
    close()
    if raised:
        reporter.note(f"{raised} of the {checked} attraction-diffusion barriers the tree rests on rose when checked "
                      "along their whole path (a chain had stepped over a ridge)")
    return retried, at_budget


def _minima_tree(energy: Energy, x: torch.Tensor, minima_energy: np.ndarray, table: PairTable,
                 tie: float) -> BarrierTree:
    """The tree over the minima (at ``x``, of energies ``minima_energy``) from the barriers
    in ``table``: the map's tree once they are all known, and before that the one its
    settings and its ladder's placements without trials are taken from."""
    e = minima_energy
    return minimax_tree(e, table.pairs, table.best(e), refined=table.is_refined(e), flat_rtol=flat_rtol(energy.dtype),
                        flat_atol=tie, prefer=pair_lengths(x, table.pairs))


# ----------------------------------------------------------------------- the ladder


def _paths_to_state(state: dict[str, Any], key: str, paths: list[torch.Tensor | None], shape: tuple[int, ...],
                    dtype: Any = np.float32) -> None:
    """``paths`` (each [M, *shape], or None) as ``<key>with_path`` (the indices of those
    there are) and ``<key>paths`` (padded with NaN), in ``dtype``."""
    have = [r for r, p in enumerate(paths) if p is not None]
    state[f"{key}with_path"] = np.array(have, dtype=np.int64)
    state.pop(f"{key}paths", None)  # (a copy saved earlier, with fewer paths)
    if have:
        length = max(paths[r].shape[0] for r in have)
        stacked = np.full((len(have), length, *shape), np.nan, dtype=dtype)
        for q, r in enumerate(have):
            stacked[q, : paths[r].shape[0]] = paths[r].numpy()
        state[f"{key}paths"] = stacked


def _paths_from_state(state: dict[str, Any], key: str, n: int) -> list[torch.Tensor | None]:
    paths: list[torch.Tensor | None] = [None] * n
    for q, r in enumerate(np.asarray(state[f"{key}with_path"]).tolist()):
        p = np.asarray(state[f"{key}paths"][q])
        p = p[np.isfinite(p.reshape(p.shape[0], -1)).all(1)]
        paths[int(r)] = torch.from_numpy(p)
    return paths


def _records_to_state(state: dict[str, Any], key: str, records: PairRecords, shape: tuple[int, ...]) -> None:
    state[f"{key}/rec_pairs"], state[f"{key}/rec_barrier"], state[f"{key}/rec_alpha"] = (
        records.pairs, records.barrier, records.alpha)
    _paths_to_state(state, f"{key}/rec_", records.paths, shape)


def _records_from_state(state: dict[str, Any], key: str) -> PairRecords:
    pairs = np.asarray(state[f"{key}/rec_pairs"], dtype=np.int64).reshape(-1, 2)
    paths = _paths_from_state(state, f"{key}/rec_", pairs.shape[0])
    return PairRecords(pairs, np.asarray(state[f"{key}/rec_barrier"]), np.asarray(state[f"{key}/rec_alpha"]), paths)


def _level_to_state(state: dict[str, Any], k: int | str, part: Partition, records: PairRecords,
                    shape: tuple[int, ...]) -> None:
    key = f"level{k}"
    state[f"{key}/basin"], state[f"{key}/representative"], state[f"{key}/energy"] = (
        part.basin, part.representative, part.energy)
    state[f"{key}/info"] = {"alpha": part.alpha, "multiplier": part.multiplier, "attrs": part.attrs}
    _records_to_state(state, key, records, shape)


def _level_from_state(state: dict[str, Any], k: int | str) -> tuple[Partition, PairRecords]:
    key = f"level{k}"
    info = state[f"{key}/info"]
    part = Partition(alpha=float(info["alpha"]), basin=np.asarray(state[f"{key}/basin"]),
                     representative=np.asarray(state[f"{key}/representative"]),
                     energy=np.asarray(state[f"{key}/energy"]), multiplier=info.get("multiplier"),
                     attrs=dict(info.get("attrs", {})))
    return part, _records_from_state(state, key)


# Part-way progress of the levels under way (``running<key>/...``), saved between their
# batches of trials at most every _SAVE_EVERY seconds, and inside a batch with the batch's
# state (``running_turn/...``); never more often than _SAVE_COST times the last save took
# (a map's records grow with it, and a batch's state can be a GB: saving stays a few
# percent of the time).
_SAVE_EVERY = 10.0
_SAVE_COST = 30.0
_TURN = "running_turn"


def _spaced(run: _Run) -> Callable[..., None]:
    """``keep(write, after=None)`` for saving part-way through long work: where
    ``run`` keeps its progress and the last such save lies ``_SAVE_EVERY`` seconds and
    ``_SAVE_COST`` times its own duration back, ``write()`` (the progress into
    ``run.state``), save, then ``after()`` (also when the save failed)."""
    last = {"at": time.perf_counter(), "took": 0.0}

    def keep(write: Callable[[], None], after: Callable[[], None] | None = None) -> None:
        now = time.perf_counter()
        if run.saver is None or now - last["at"] < max(_SAVE_EVERY, _SAVE_COST * last["took"]):
            return
        write()
        try:
            run.save()
        finally:
            if after is not None:
                after()
        last["at"] = time.perf_counter()
        last["took"] = last["at"] - now

    return keep


def _running_to_state(state: dict[str, Any], keys: list[str], saved: list[LevelProgress],
                      shape: tuple[int, ...]) -> None:
    for key, level in zip(keys, saved):
        k = f"running{key}"
        state[f"{k}/basin_of"], state[f"{k}/reps"], state[f"{k}/reached_lower"] = (
            level.basin_of, level.reps, level.reached_lower.astype(np.int8))
        state[f"{k}/info"] = {"cursor": list(level.cursor), "counters": list(level.counters)}
        if level.generator is not None:
            state[f"{k}/generator"] = level.generator
        _records_to_state(state, k, level.records, shape)
    state["running"] = keys


def _turn_to_state(state: dict[str, Any], keys: list[str], turn: TurnProgress, shape: tuple[int, ...],
                   dtype: Any) -> None:
    """The levels ``keys`` part-way inside a batch of trials (``running_turn/...``)."""
    _running_to_state(state, keys, turn.levels, shape)
    _drop(state, _TURN)
    b = turn.batch
    state[f"{_TURN}/info"] = {
        "pairs": [None if p is None else [[int(i), int(j)] for i, j in p] for p in turn.pairs],
        "start": turn.start, "step": b.step, "stride": b.stride, "recorded": b.recorded, "emptied": b.emptied,
        "calls": [None if d is None else int(d[3]) for d in turn.done]}
    state[f"{_TURN}/rows"] = b.rows
    for name, value in b.running.items():
        state[f"{_TURN}/run/{name}"] = value
    for name, value in b.outcome.items():
        state[f"{_TURN}/out/{name}"] = value
    if b.paths is not None:
        state[f"{_TURN}/paths"] = b.paths
    if b.path_rows is not None:
        state[f"{_TURN}/path_rows"] = b.path_rows
    for q, d in enumerate(turn.done):
        if d is not None:
            state[f"{_TURN}/done{q}/barrier"], state[f"{_TURN}/done{q}/steps"] = d[0], d[2]
            _paths_to_state(state, f"{_TURN}/done{q}/", d[1], shape, dtype)


def _running_from_state(state: dict[str, Any], keys: list[str]) -> list[LevelProgress] | TurnProgress | None:
    """The saved progress of the levels ``keys`` under way (inside a batch of trials, or
    between two), or None if none was saved for exactly these levels (then they start
    afresh)."""
    if state.get("running") != keys:
        return None
    out = []
    try:
        for key in keys:
            k = f"running{key}"
            info = state[f"{k}/info"]
            start, founders, placed = info["cursor"]
            out.append(LevelProgress(
                basin_of=np.asarray(state[f"{k}/basin_of"]), reps=np.asarray(state[f"{k}/reps"]),
                cursor=(int(start), [int(f) for f in founders], int(placed)),
                reached_lower=np.asarray(state[f"{k}/reached_lower"]).astype(bool),
                counters=tuple(int(c) for c in info["counters"]), generator=state.get(f"{k}/generator"),
                records=_records_from_state(state, k)))
        if f"{_TURN}/info" not in state:
            return out
        info = state[f"{_TURN}/info"]

        def group(prefix: str) -> dict[str, torch.Tensor]:
            return {k[len(prefix):]: torch.from_numpy(np.asarray(v)) for k, v in state.items() if k.startswith(prefix)}

        paths, path_rows = state.get(f"{_TURN}/paths"), state.get(f"{_TURN}/path_rows")
        batch = BatchProgress(
            step=int(info["step"]), rows=torch.from_numpy(np.asarray(state[f"{_TURN}/rows"])),
            running=group(f"{_TURN}/run/"), stride=int(info["stride"]), recorded=int(info["recorded"]),
            paths=None if paths is None else torch.from_numpy(np.asarray(paths)), outcome=group(f"{_TURN}/out/"),
            emptied=[int(e) for e in info["emptied"]],
            path_rows=None if path_rows is None else torch.from_numpy(np.asarray(path_rows)))
        done = []
        for q, calls in enumerate(info["calls"]):
            if calls is None:
                done.append(None)
                continue
            barrier = torch.from_numpy(np.asarray(state[f"{_TURN}/done{q}/barrier"]))
            done.append((barrier, _paths_from_state(state, f"{_TURN}/done{q}/", barrier.shape[0]),
                         torch.from_numpy(np.asarray(state[f"{_TURN}/done{q}/steps"])), int(calls)))
        pairs = [None if p is None else [(int(i), int(j)) for i, j in p] for p in info["pairs"]]
        return TurnProgress(out, pairs, int(info["start"]), done, batch)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise LandscapeError(f"the saved attraction-diffusion progress is damaged ({err!r}); "
                             "delete its .partial file to start afresh") from None


def progress_arrays(name: str) -> bool:
    """Whether :func:`describe_progress` reads the array ``name`` (the rest of a progress
    file can be GBs)."""
    return (name in ("minima/energy", "pairs/pairs", f"{_TURN}/rows") or name.endswith("/representative")
            or (name.startswith("running") and name.endswith("/basin_of")))


def describe_progress(state: MutableMapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """What an unfinished map's saved progress holds, as ``(heading, text)`` lines for
    ``landscape info``: the stages done, and where the one under way stands (from
    :func:`~landscape.io.progress.load_progress` with ``arrays=progress_arrays``); with
    ``prefix``, of the keys under it (``"mapping/"``: a funnel probe's mapping of its new
    minima, :func:`extend_map`)."""
    if prefix:
        state = _Prefixed(state, prefix)
    done = []
    n = None
    if "new" in state:
        n = int(sum(state["new"]))
    if "minima/energy" in state:
        n = int(np.asarray(state["minima/energy"]).shape[0])
        rounds = int(state.get("explore/rounds", 1))
        done.append(f"{n:,} minima from {int(state.get('explore/chains', 0)):,} chains"
                    + (f" in {rounds} rounds" if rounds > 1 else ""))
    if "pairs/pairs" in state:
        done.append(f"barriers between neighbours{', the new minima included' if 'new' in state else ''} "
                    f"({int(np.asarray(state['pairs/pairs']).shape[0]):,} pairs)")
    if "settings" in state:
        st = state["settings"]
        done.append(f"attraction-diffusion settings (T {float(st['ad_temperature']):.4g}, "
                    f"alpha unit {float(st['alpha_unit']):.4g})")
    levels = sorted((k for k in state if k.startswith("level") and k.endswith("/info")),
                    key=lambda k: float(state[k].get("multiplier") or 0.0))
    if levels:
        done.append("basins per pull (alpha units) " + ", ".join(
            f"{float(state[k].get('multiplier') or 0.0):g}: {np.asarray(state[k[:-5] + '/representative']).size}"
            for k in levels if k[:-5] + "/representative" in state))
    if "connected/passes" in state:
        done.append(f"{int(state['connected/passes'])} pass(es) of refining the pairs attraction-diffusion connected")
    out = [("done", "; ".join(done) if done else "nothing yet" + ("" if prefix else " (the exploration's first round)"))]
    if "running" in state:
        keys = list(state["running"])
        placed = [int((np.asarray(state[f"running{k}/basin_of"]) >= 0).sum()) for k in keys
                  if f"running{k}/basin_of" in state]
        pulls = state.get("running_pulls")
        what = (f"attraction-diffusion at alpha {', '.join(f'{float(m):g}' for m in pulls)} units" if pulls
                else f"attraction-diffusion at {len(keys)} level{'' if len(keys) == 1 else 's'}")
        line = f"{what}: {', '.join(map(str, placed))} of {n if n is not None else '?'} minima placed"
        if f"{_TURN}/info" in state:
            rows = np.asarray(state.get(f"{_TURN}/rows", np.zeros(0))).size
            line += f"; inside a batch of trials at step {int(state[f'{_TURN}/info']['step']):,} ({rows:,} running)"
        out.append(("under way", line))
    if f"{_REFINING}info" in state:
        info = state[f"{_REFINING}info"]
        total = len(info["positions"]) if info["phase"] else len(info["rows"])
        out.append(("under way", f"the string method: {int(info['done']):,} of {total:,} strings"
                                 + (" run again with twice the images" if info["phase"] else "")))
    spent = time_spent(state)
    if spent:
        out.append(("time", f"{spent:.0f} s of mapping so far"))
    return out


#: The seconds a stage under way had run at its last save (the ladder's levels, the
#: refinement's passes), kept beside its progress.
_UNDER_WAY_SECONDS = ("running_seconds", "connected/seconds")


def time_spent(state: MutableMapping[str, Any], prefix: str = "") -> float:
    """Seconds of work a map's saved progress holds (with ``prefix``, of the keys under
    it, as :func:`describe_progress`): its finished stages', and what the stage under way
    (the ladder's levels, the refinement's passes) had run at its last save."""
    if prefix:
        state = _Prefixed(state, prefix)
    seconds = state.get("seconds") or {}
    return (sum(float(v) for v in seconds.values())
            + sum(float(state.get(k, 0.0)) for k in _UNDER_WAY_SECONDS))


# ------------------------------------------------------------- saved progress, checked


def check_progress(state: MutableMapping[str, Any], shape: tuple[int, ...], n: int | None = None) -> None:
    """Raise :class:`LandscapeError` (one line) unless the saved progress ``state`` of a map
    of an energy of per-example ``shape`` is whole and consistent: every stage it holds has
    the arrays and values of the shapes, types and ranges the stage left, so continuing
    from it runs on what a run left, not on whatever a damaged file holds. ``n``: the
    number of minima, where the state does not hold them (:func:`extend_map`'s).
    Inconsistent progress of the attraction-diffusion under way is refused where it is
    restored (:meth:`~landscape.mapping.ad._State.restore` and the batch's own check)."""
    try:
        _check_progress(state, shape, n)
    except (LandscapeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as err:
        why = f"no {err.args[0]!r}" if isinstance(err, KeyError) else first_line(err)
        raise LandscapeError(f"the saved progress is damaged ({why}): delete its .partial file to start afresh") \
            from None


def _check_work(record: Any, what: str) -> None:
    """A record of work on a stage (:meth:`_Run.book`): rank counts, and rows or None."""
    record = checks.mapping(None, what, record)
    require(isinstance(record.get("ranks"), list) and len(record["ranks"]) > 0, f"{what} names no ranks")
    for r in record["ranks"]:
        checks.integer(None, f"{what} ranks", r, minimum=1)
    for key in ("rows_split", "rows_whole"):
        if record.get(key) is not None:
            _count(record[key], f"{what} {key}")


def _count(value: Any, what: str) -> int:
    return checks.integer(None, what, value, minimum=0)


def _array(state: MutableMapping[str, Any], key: str, dims: tuple[int | None, ...], kind: str) -> np.ndarray:
    """``state[key]`` as an array of ``dims`` (None: any length) and dtype kind ``kind``
    ("f" real, "i" integer, "b" boolean or integer)."""
    arr = np.asarray(state[key])
    require(arr.ndim == len(dims) and all(d is None or d == s for d, s in zip(dims, arr.shape)),
            f"{key} has shape {list(arr.shape)}")
    kinds = {"f": "fiub", "i": "iu", "b": "biu"}[kind]
    require(arr.dtype.kind in kinds, f"{key} has dtype {arr.dtype}")
    return arr


def _indices(arr: np.ndarray, n: int, key: str) -> None:
    require(bool(((arr >= 0) & (arr < n)).all()), f"{key} holds indices outside [0, {n})")


def _check_progress(state: MutableMapping[str, Any], shape: tuple[int, ...], n: int | None) -> None:
    if "minima/x" in state or "explore/done" in state:
        x = _array(state, "minima/x", (None, *shape), "f")
        n = x.shape[0]
        require(n >= 1 and bool(np.isfinite(x).all()), "minima/x holds no minima or non-finite coordinates")
        e = _array(state, "minima/energy", (n,), "f")
        require(bool(np.isfinite(e).all()), "minima/energy holds non-finite energies")
        require(bool((_array(state, "minima/hits", (n,), "i") >= 0).all()), "minima/hits holds negative counts")
        require(not bool(np.isnan(_array(state, "minima/grad_norm", (n,), "f")).any()), "minima/grad_norm holds NaN")
        for key in ("explore/rounds", "explore/chains"):
            _count(state[key], key)
        if "explore/new" in state:
            checks.integer(None, "explore/new", state["explore/new"], minimum=-1)
        if "explore/stops" in state:
            stops = state["explore/stops"]
            require(isinstance(stops, list) and len(stops) == 3, "explore/stops is not three counts")
            for k in stops:
                _count(k, "explore/stops")
    for key in ("refine/retried", "refine/at_budget", "connected/passes", "settings/rounds"):
        if key in state:
            _count(state[key], key)
    for key in _UNDER_WAY_SECONDS:
        if key in state:
            checks.number(None, key, state[key])
    checks.number_map(None, "seconds", state.get("seconds", {}))
    for name, record in checks.mapping(None, "work", state.get("work", {})).items():
        _check_work(record, f"work {name}")
    if _WORK_UNDER_WAY in state:
        _check_work(state[_WORK_UNDER_WAY], _WORK_UNDER_WAY)
    if "settings" in state:
        settings = checks.mapping(None, "settings", state["settings"])
        for key in ("ad_temperature", "alpha_unit", "delta", "ad_eps"):
            checks.number(None, f"settings {key}", settings[key])
    for key in ("ladder", "ladder/inserted", "running_pulls"):
        if key in state:
            require(isinstance(state[key], list), f"{key} is not a list")
            for m in state[key]:
                checks.number(None, key, m)
    if n is None:
        require(not any(k.startswith(("pairs/", "saddles/", "level", "running", "connected/")) for k in state),
                "stages after the minima without the minima")
        return
    for prefix in ("pairs", "connected"):
        if f"{prefix}/pairs" in state:
            _check_table(state, prefix, n)
    if "saddles/pairs" in state:
        pairs = _array(state, "saddles/pairs", (None, 2), "i")
        _indices(pairs, n, "saddles/pairs")
        _array(state, "saddles/x", (pairs.shape[0], *shape), "f")
        pk = _array(state, "saddles/path_pairs", (None, 2), "i")
        _indices(pk, n, "saddles/path_pairs")
        if pk.shape[0]:
            _paths_whole(_array(state, "saddles/paths", (pk.shape[0], None, *shape), "f"), "saddles/paths")
    for key in [k[: -len("/info")] for k in state if k.startswith("level") and k.endswith("/info")]:
        require(isinstance(state[f"{key}/info"], dict), f"{key}/info is not a table")
        part, _ = _level_from_state(state, key[len("level"):])
        check_partition(f"{key}/", n, part)
        _check_records(state, key, n, shape)
    if "running" in state:
        keys = state["running"]
        require(isinstance(keys, list) and all(isinstance(k, str) for k in keys), "running is not a list of levels")
        for key in keys:
            _check_records(state, f"running{key}", n, shape)
    require(f"{_TURN}/info" in state or not any(k.startswith(_TURN) for k in state),
            f"{_TURN} holds a batch without its description")
    if any(k.startswith(_REFINING) for k in state):
        info = state[f"{_REFINING}info"]
        require(isinstance(info, dict) and isinstance(info["rows"], list), "refining/info is not a table")
        m = len(info["rows"])
        for q in (*info["rows"], info["phase"], info["done"], *info["positions"]):
            _count(q, "refining/info")
        for name, dims, kind in (("saddle", (m,), "f"), ("at_saddle", (m,), "b"), ("floor", (m,), "f"),
                                 ("stops", (m,), "i"), ("saddle_x", (m, *shape), "f")):
            _array(state, f"{_REFINING}{name}", dims, kind)
        have = _array(state, f"{_REFINING}with_path", (None,), "i")
        _indices(have, m, f"{_REFINING}with_path")
        if have.size:
            _paths_whole(_array(state, f"{_REFINING}paths", (have.size, None, *shape), "f"), f"{_REFINING}paths")


def _check_table(state: MutableMapping[str, Any], prefix: str, n: int) -> None:
    pairs = _array(state, f"{prefix}/pairs", (None, 2), "i")
    _indices(pairs, n, f"{prefix}/pairs")
    e = pairs.shape[0]
    for name, kind in (("estimate", "f"), ("refined", "f"), ("alpha", "f"), ("source", "i")):
        _array(state, f"{prefix}/{name}", (e,), kind)
    if f"{prefix}/saddle_point" in state:
        _array(state, f"{prefix}/saddle_point", (e,), "b")
    estimate = np.asarray(state[f"{prefix}/estimate"])
    require(not bool(np.isnan(estimate).any() or (estimate == -np.inf).any()), f"{prefix}/estimate holds NaN or -inf")
    require(not bool((np.asarray(state[f"{prefix}/refined"]) == -np.inf).any()), f"{prefix}/refined holds -inf")
    source = np.asarray(state[f"{prefix}/source"])
    require(bool(((source >= 0) & (source < 256)).all()), f"{prefix}/source holds unknown sources")


def _check_records(state: MutableMapping[str, Any], key: str, n: int, shape: tuple[int, ...]) -> None:
    pairs = _array(state, f"{key}/rec_pairs", (None, 2), "i")
    _indices(pairs, n, f"{key}/rec_pairs")
    r = pairs.shape[0]
    _array(state, f"{key}/rec_barrier", (r,), "f")
    _array(state, f"{key}/rec_alpha", (r,), "f")
    have = _array(state, f"{key}/rec_with_path", (None,), "i")
    _indices(have, r, f"{key}/rec_with_path")
    if have.size:
        _paths_whole(_array(state, f"{key}/rec_paths", (have.size, None, *shape), "f"), f"{key}/rec_paths")


def _paths_whole(paths: np.ndarray, key: str) -> None:
    """Paths padded with NaN rows: each must keep two points at least."""
    finite = np.isfinite(paths.reshape(paths.shape[0], paths.shape[1], -1)).all(axis=2).sum(axis=1)
    require(bool((finite >= 2).all()), f"{key} holds paths of fewer than two points")


def _drop(state: dict[str, Any], prefix: str) -> None:
    """Remove the keys of part-way progress (``prefix``...) once the work is done."""
    for key in [k for k in state if k.startswith(prefix)]:
        del state[key]


def _ad_config(cfg: MapConfig, settings: dict[str, Any], alpha: float) -> ADConfig:
    """Attraction-diffusion at pull ``alpha``, its step capped there (:func:`capped_eps`)."""
    eps = capped_eps(settings["ad_eps"], settings["delta"], alpha)
    return ADConfig(temperature=settings["ad_temperature"], alpha=alpha, eps=eps,
                    max_steps=cfg.max_steps, patience=cfg.patience, delta=settings["delta"], attempts=cfg.attempts,
                    neighbours=cfg.neighbours, round_size=cfg.round_size, batch_size=cfg.batch_size,
                    average=cfg.average)


# ------------------------------------------------------------------------------ public


@stage("mapping")  # the outermost stage: the value before it is back however the map ends
@runs_frozen
def build_map(
    energy: Energy,
    config: MapConfig | None = None,
    *,
    data: torch.Tensor | None = None,
    progress_file: str | Path | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    source_id: str = "",
) -> MapResult:
    """Map an energy: minima, the barriers between them, the tree over them, the basins.

    Parameters
    ----------
    energy : Energy
        Needs a data range (the box chains from noise start in, and the refinement's clamp).
        A checkpoint's energy carries its sampler (:attr:`Energy.sampler`), which sets the
        exploration.
    config : MapConfig, optional
        Settings; those left at None are chosen from the energy (:mod:`landscape.mapping.settings`)
        [default: all chosen].
    data : Tensor [M, *shape], optional
        Training examples, for chains from data.
    progress_file : path, optional
        The map being built: progress is kept next to it (:func:`landscape.io.progress.progress_path`)
        after every stage. The caller removes it (:func:`landscape.io.progress.clear_progress`)
        once the map is written.
    resume : bool
        Continue from saved progress (same settings and source required); without it,
        saved progress is an error, so nothing is overwritten by accident.
    reporter : Reporter, optional
        Receives progress and findings.
    source_id : str
        Identifies what is mapped (e.g. a checkpoint's sha256); checked on resume.

    Under a torch.distributed process group of two or more ranks (``torchrun``), every rank
    calls ``build_map`` with the same arguments and gets the same result: the energy's
    evaluations are split over the ranks (:mod:`landscape.distributed`), rank 0 alone keeps
    the progress file and reports progress.

    Returns
    -------
    MapResult

    Raises
    ------
    LandscapeError
        Bad settings, no data for data chains, progress from another run.
    NonFiniteEnergyError
        From any stage.

    Examples
    --------
    >>> from landscape.potentials import mueller_brown
    >>> e = Energy(mueller_brown, shape=(2,), data_range=(-1.5, 2.0), dtype=torch.float64)
    >>> build_map(e).content.n_minima  # doctest: +SKIP
    3
    """
    from landscape.io.sources import check_energy

    config = MapConfig() if config is None else config
    if not isinstance(config, MapConfig):
        raise TypeError(f"build_map's config must be a MapConfig, got {type(config).__name__}: "
                        "MapConfig(chains=..., ...) takes the same names")
    check_energy(energy)  # one line for an energy that fails on a small batch, as the command's loaders give
    if data is not None:
        data = energy.as_batch(data, "the training examples (data)")
    group = current_group()
    if group is not None:  # torchrun: the energy's work is split over the ranks; rank 0 keeps the files
        energy = split_energy(energy, group)
        if not group.main:
            progress_file, reporter = None, None
    run = _Run(energy, config, NamedStages(reporter or Reporter()),
               None if progress_file is None else (lambda: save_progress(progress_file, run.state)))
    if group is not None and isinstance(energy, SplitEnergy):
        if energy.min_rows >= NEVER_SPLIT:
            run.reporter.note(f"{group.world} ranks: this energy's evaluations did not pay to split at any batch "
                              f"size tried (up to {max(CALIBRATE_SIZES):,} rows), so every rank evaluates every "
                              "batch: the extra ranks repeat the work (one process maps it as fast)")
        else:
            run.reporter.note(f"{group.world} ranks: batches of {energy.min_rows:,} rows or more are split over them")
    said = energy.modes_note()
    if said:
        run.reporter.note(said)
    with stage("choosing the exploration settings"):
        run.plan = exploration_settings(energy, config, data)
    run.state = from_main(lambda: resume_progress(progress_file, config.fingerprint() + ":" + source_id, resume),
                          group)
    check_progress(run.state, tuple(energy.shape))
    if "stage" in run.state:
        run.reporter.note(f"resuming after stage '{run.state['stage']}'")
    elif data is not None and energy.data_range is not None and len(data):
        low, high = energy.data_range
        out = int(((data < low) | (data > high)).reshape(len(data), -1).any(1).sum())
        if out:
            run.reporter.note(f"{out} of {len(data)} training examples lie outside the box [{low:g}, {high:g}]: chains "
                              "from them are kept in the box; widen it (--box) to map where they are")
    run.seconds = dict(run.state.get("seconds", {}))
    minima = _stage_minima(run, data)
    run.state["minima/precision"] = _note_precision(run, energy, minima)
    run.state["minima/held_by_box"] = _note_held_by_box(run, energy, minima)
    n = len(minima)
    keep_paths = n > 1 and energy.dim * config.refine_images * 2 * (n - 1) <= _PATH_BUDGET
    saddles = _Saddles.from_state(run.state)
    table = _stage_neighbours(run, minima, saddles, keep_paths)
    again = True
    while again:  # (a second round where the refinement lowered the barriers the settings came from)
        settings = _stage_settings(run, minima, table, saddles)
        levels, records, extended, inserted = _stage_ladder(run, minima, table, settings)
        table, again = _stage_connected(run, minima, table, records, saddles, keep_paths, settings)
    result = _assemble(run, minima, table, saddles, keep_paths, settings, levels, extended, inserted)
    run.reporter.close()
    return result


def _note_held_by_box(run: _Run, energy: Energy, minima: Minima) -> int:
    """Say how many minima the box holds: on a face, with the energy still falling beyond
    it (its gradient pushing out by more than the quenches' tolerance: a minimum that
    lies on a face is not held). Quenches stop at the box's faces (a saturated image is
    such a minimum), but a map of points whose minima all sit there has its minima
    outside the box, or an energy of the wrong sign (a log-density where its negative
    belongs)."""
    if energy.data_range is None or not len(minima):
        return 0
    low, high = energy.data_range
    value_and_grad, shares = energy.value_and_grad_fn(), []
    for x in minima.x.split(4096):
        x = x.to(energy.device, energy.dtype)
        held = held_by_box(x, value_and_grad(x)[1], energy.data_range, float(run.plan["grad_tol"]))
        shares.append(held.reshape(len(x), -1).double().mean(1))
    share = torch.cat(shares).cpu()
    held = int((share > 0).sum())
    if not held:
        return 0
    part = float(share[share > 0].median())
    if len(energy.shape) in (2, 3) and part <= IMAGE_HELD_SHARE:
        # (pixels at the range's ends are what images have: the digits 58 % of theirs)
        run.reporter.note(f"{held} of {len(minima)} minima have pixels on the range's ends [{low:g}, {high:g}] with "
                          f"the energy still falling beyond them (a median {part:.0%} of their pixels): saturated "
                          "pixels, which the range keeps")
    else:
        run.reporter.note(f"{held} of {len(minima)} minima lie on the box's faces [{low:g}, {high:g}] with the energy "
                          f"still falling beyond them (a median {part:.0%} of their coordinates): the box holds them "
                          "(images: saturated pixels); where the energy's minima lie outside the box, widen it "
                          "(--box), and check the energy's sign (U = -log density)")
    return held


#: Images whose held minima have at most this share of their pixels on the range's ends
#: are called saturated in part, as data images are, with no advice to widen the range.
IMAGE_HELD_SHARE = 0.5


def _note_precision(run: _Run, energy: Energy, minima: Minima) -> str:
    """Warn where float32 cannot resolve the energy's differences at its magnitude (an
    offset of 1e6 leaves steps of 0.06), or the box's coordinates at theirs (near x = 1e6
    they step by 0.06): quenches then stop on saddles and slopes, and barriers read as
    flat. Returns the warnings, one per line ("" if none), which the map keeps."""
    if energy.dtype != torch.float32:
        return ""
    said = []
    if energy.data_range is not None:
        low, high = energy.data_range
        far = max(abs(low), abs(high))
        step = float(np.spacing(np.float32(far)))
        if step > 1e-4 * (high - low):  # (a box about the origin resolves 1e-7 of its width)
            said.append(f"the box's coordinates near {far:.3g} resolve steps of {step:.2g} in float32, coarse for a "
                        f"box {high - low:.3g} wide: map in float64 (--float64), or shift the energy's coordinates "
                        "to a box about the origin")
    if len(minima) >= 2:
        said += _energy_precision(run, energy, minima)
    for text in said:
        run.reporter.warn(text)
    return "\n".join(said)


def _energy_precision(run: _Run, energy: Energy, minima: Minima) -> list[str]:
    """The warning of :func:`_note_precision` about the energy's values (none, or one)."""
    u = minima.energy.detach().cpu().double().numpy()
    step = float(np.spacing(np.float32(np.abs(u).max())))
    spread = float(u.max() - u.min())
    # (minima of one energy, wells alike by symmetry: the energy's rise over the box is the scale instead)
    scale = spread if spread > 0 else box_relief(energy, run.config.seed, float(u.min()))
    if 0 < scale < 1e4 * step:  # (an energy constant over the box: no precision would resolve more)
        what = f"minima {spread:.3g} apart in energy" if spread > 0 else f"an energy that rises {scale:.3g} over its box"
        return [f"the energy's values near {np.abs(u).max():.3g} resolve steps of {step:.2g} in float32, "
                f"coarse for {what}: map in float64 (--float64) or subtract a constant from the energy"]
    return []


@dataclass
class _Run:
    """One map in progress: what it maps, its settings, its saved state and timings."""

    energy: Energy
    config: MapConfig
    reporter: Reporter
    #: Writes ``state`` where it is kept (None: nothing is kept).
    saver: Callable[[], None] | None
    plan: dict[str, Any] = field(default_factory=dict)
    state: MutableMapping[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    #: Whether to save inside batches of trials (off once the disk refused one).
    batch_saves: bool = True
    #: The energy's counts of rows (:func:`_work_counts`) at the last :meth:`book`.
    booked: tuple[int, int] | None = field(init=False, default=None)
    #: Whether the last :meth:`book` closed a stage (the save that follows books nothing).
    closed: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.booked = _work_counts(self.energy)

    def save(self) -> None:
        self.book()
        if self.saver is not None:
            self.saver()

    @property
    def tie(self) -> float:
        """The map's energy tie (:func:`~landscape.mapping.minima.energy_tie` of its plan)."""
        return energy_tie(self.plan["grad_tol"], self.plan["merge_radius"])

    def timed(self, name: str, t0: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0
        self.state["seconds"] = self.seconds
        self.book(name.split("_")[0])  # (the ladder's rungs, basins_<k>, are one stage)

    def book(self, stage: str | None = None) -> None:
        """Count the energy's evaluations since the last booking towards ``stage`` (the
        map's record of how its ranks shared the work: :func:`_work_record`), or with None
        towards the stage under way, kept with the progress: a stage resumed on another
        number of ranks records both."""
        if stage is None and self.closed:
            self.closed = False
            return
        now = _work_counts(self.energy)
        if now is None or self.booked is None:
            fresh = {"ranks": [1], "rows_split": None, "rows_whole": None}
        else:
            fresh = {"ranks": [self.energy.group.world], "rows_split": now[0] - self.booked[0],
                     "rows_whole": now[1] - self.booked[1]}
        self.booked = now
        under = _add_work(self.state.get(_WORK_UNDER_WAY), fresh)
        if stage is None:
            self.state[_WORK_UNDER_WAY] = under
        else:
            work = dict(self.state.get("work") or {})
            work[stage] = _add_work(work.get(stage), under)
            self.state["work"] = work
            self.state.pop(_WORK_UNDER_WAY, None)
        self.closed = stage is not None


#: The work of the stage under way (:meth:`_Run.book`), kept with the progress.
_WORK_UNDER_WAY = "work/under_way"


def _work_counts(energy: Energy) -> tuple[int, int] | None:
    """Rows of ``energy``'s batches evaluated so far split over the ranks and whole on
    every rank (:class:`~landscape.distributed.SplitEnergy`); None in one process, where
    nothing is split and nothing is counted."""
    return (energy.rows_split, energy.rows_whole) if isinstance(energy, SplitEnergy) else None


def _add_work(a: Mapping[str, Any] | None, b: Mapping[str, Any]) -> dict[str, Any]:
    """Two records of work on one stage together: the rank counts that did it, the rows
    split and evaluated whole (None where only one process did it: none counted)."""
    if not a:
        return dict(b)

    def plus(x: int | None, y: int | None) -> int | None:
        return y if x is None else x if y is None else x + y

    return {"ranks": sorted(set(a["ranks"]) | set(b["ranks"])), "rows_split": plus(a["rows_split"], b["rows_split"]),
            "rows_whole": plus(a["rows_whole"], b["rows_whole"])}


def _work_record(run: _Run) -> dict[str, Any]:
    """What the map's root attributes ``ranks`` and ``work_split`` record of how the work
    was shared: the ranks of the run that finished it (1: one process), the batch size from
    which that run split the energy's evaluations (None: it split none), and per stage
    the rank counts that worked on it and the rows they split or each evaluated whole."""
    energy = run.energy
    split = isinstance(energy, SplitEnergy)
    return {"ranks": energy.group.world if split else 1,
            "work_split": {"split_from": energy.min_rows if split and energy.min_rows < NEVER_SPLIT else None,
                           "stages": dict(run.state.get("work") or {})}}


def _stage_minima(run: _Run, data: torch.Tensor | None) -> Minima:
    """1. Metastable states: rounds of exploration chains, quenched, merged."""
    t0 = time.perf_counter()
    minima = _explore(run.energy, run.config, run.plan, data, run.state, run.save, run.reporter)
    if "explore/done" not in run.state:
        run.timed("minima", t0)
        run.state["explore/done"] = True
    # How the chains' quenches stopped (maps resumed from before this was kept: unknown).
    stops = run.state.get("explore/stops")
    how = f"; quenches: {describe_stops(stops, run.config.quench_steps)}" if stops is not None else ""
    found = coverage(minima.hits, int(run.state["explore/chains"]))
    # (whether more chains would find more is said once the tree tells which minima are one
    # state: points a quench left along a flat valley look like a sample however many chains ran;
    # `landscape map` prints it after the map, `info` with it)
    sampled = (f"; {found.once} reached by one chain only (whether more chains would find more states, `landscape "
               "info` says: the tree tells which minima are one)" if found.unseen >= SAMPLED else "")
    run.reporter.note(
        f"{len(minima)} minim{'um' if len(minima) == 1 else 'a'} from {run.state['explore/chains']} chains"
        + (f" in {run.state['explore/rounds']} rounds" if run.state["explore/rounds"] > 1 else "") + sampled + how
    )
    return minima


def _stage_neighbours(run: _Run, minima: Minima, saddles: _Saddles, keep_paths: bool) -> PairTable:
    """2. Barriers between neighbouring minima: segment estimates, refined."""
    state, config = run.state, run.config
    if "pairs/pairs" not in state:
        t0 = time.perf_counter()
        pairs = neighbour_pairs(minima.x, config.neighbours)
        run.reporter.stage("neighbour barriers (straight lines)", total=len(pairs), unit="pair")
        table = neighbour_table(run.energy, minima.x, pairs, config.refine_images, progress=run.reporter.advance)
        retried = at_budget = 0
        if config.refine:
            rows = refinement_rows(minima.energy.numpy(), table, config.refine_slack)
            retried, at_budget = _refine(run.energy, minima.x, table, rows, config, {}, saddles, keep_paths,
                                         run.reporter, "neighbours", run)
        _table_to_state(state, table)
        saddles.to_state(state, tuple(run.energy.shape))
        state["refine/retried"], state["refine/at_budget"], state["stage"] = retried, at_budget, "neighbour barriers"
        run.timed("neighbours", t0)
        run.save()
    return _table_from_state(state)


def _stage_settings(run: _Run, minima: Minima, table: PairTable, saddles: _Saddles) -> dict[str, Any]:
    """3. The attraction-diffusion settings, chosen from the tree over minima (and the
    step stable at the refined saddles too)."""
    if "settings" not in run.state:
        e = minima.energy.numpy()
        tie = run.tie
        tree = _minima_tree(run.energy, minima.x, e, table, tie)
        drained = np.zeros(len(e), dtype=bool)
        drained[tree.leaves] = tree.drained()  # (per minimum: the tree's leaves are the minima)
        ridges = torch.from_numpy(np.stack([saddles.points[k] for k in sorted(saddles.points)])) \
            if saddles.points else None
        run.state["settings"] = ad_settings(run.energy, run.config, minima.x, e, tree.resolved_depth(),
                                            run.plan["merge_radius"], tie, ridges=ridges, drained=drained)
        run.save()
    settings = {**run.plan, **run.state["settings"]}
    lowered = settings.get("ad_temperature_lowered", 1.0)
    run.reporter.note(f"attraction-diffusion at T {settings['ad_temperature']:.4g}, alpha unit "
                      f"{settings['alpha_unit']:.4g}, delta {settings['delta']:.3g}, eps {settings['ad_eps']:.3g}"
                      + (f" (T lowered {lowered:.3g}x: in {run.energy.dim} dimensions the pull that brings a chain "
                         "to its target at all outweighed the typical barrier that much)" if lowered > 1 else ""))
    return settings


def _run_rungs(run: _Run, minima: Minima, into: np.ndarray, settings: dict[str, Any],
               rungs: list[tuple[str, float, int]]) -> None:
    """Attraction-diffusion at the rungs ``(key, multiplier, seed offset)`` not done yet,
    all at once: their trials share batches, each level with its own generator, and a
    weaker level takes the pairs no chain connected at a stronger one as apart, without
    trials (:func:`~landscape.mapping.ad.assign_ladder`). The minima that drain
    into others with no barrier (``into``, per minimum) run no trials
    (:func:`~landscape.mapping.ad.assign_ladder`'s ``drains_into``)."""
    state, config, energy = run.state, run.config, run.energy
    todo = [r for r in rungs if f"level{r[0]}/basin" not in state]
    if not todo:
        return
    tie = run.tie
    pulls = [m for _, m, _ in todo]
    gens = [torch.Generator(device=energy.device).manual_seed(config.seed * 1009 + j) for _, _, j in todo]
    configs = [_ad_config(config, settings, m * settings["alpha_unit"]) for m in pulls]
    label = ", ".join(f"{m:g}" for m in pulls)
    results, seconds = _ladder_saved(
        run, [key for key, _, _ in todo], pulls, f"attraction-diffusion, alpha {label} units",
        f"attraction-diffusion at alpha {label} units", len(minima) * len(todo),
        lambda **saving: assign_ladder(energy, minima, configs, gens, run.reporter.advance, run.reporter.detail,
                                       tie=tie, drains_into=into, **saving))
    for (key, m, _), (part, rec) in zip(todo, results):
        part.multiplier = m
        part.attrs["seconds"] = seconds  # of the levels run together
        part.attrs["levels_together"] = len(todo)
        _level_to_state(state, key, part, rec, tuple(energy.shape))
    state["stage"] = f"basins at alpha {label} units"
    run.timed(f"basins_{todo[0][0]}", time.perf_counter() - seconds)
    run.save()


def _ladder_saved(run: _Run, keys: list[str], pulls: list[float], title: str, what: str, total: int,
                  ladder: Callable[..., list[Any]]) -> tuple[list[Any], float]:
    """Run the levels ``keys`` (at ``pulls`` alpha units) of a ladder together:
    ``ladder(on_turn=, resume_from=, on_sync=)`` (:func:`~landscape.mapping.ad.assign_ladder`
    or :func:`~landscape.mapping.ad.extend_ladder`), saving their progress part-way in
    ``run.state`` (between batches of trials, and inside one with its trials' state) and
    continuing from what was saved there. ``title`` names the progress bar's stage (of
    ``total`` minima), ``what`` the work in the resuming note. Returns the ladder's
    results and its seconds (those before an interruption included)."""
    state, energy, shape = run.state, run.energy, tuple(run.energy.shape)
    saved = _running_from_state(state, keys)
    # (time spent on these levels before an interruption counts: saved with their progress)
    t0 = time.perf_counter() - (float(state.get("running_seconds", 0.0)) if saved is not None else 0.0)
    run.reporter.stage(title, total=total, unit="minimum")
    if saved is not None:
        inside = f", inside a batch of trials at step {saved.batch.step:,}" if isinstance(saved, TurnProgress) else ""
        run.reporter.note(f"resuming {what} part-way{inside}")
    spaced = _spaced(run)

    def keep(write: Callable[[], None]) -> None:
        def put() -> None:
            write()
            state["running_pulls"] = list(pulls)  # (for `landscape info`)
            state["running_seconds"] = time.perf_counter() - t0

        # (a batch's state is on disk after the save or not at all: its copy, up to GBs,
        # need not stay in memory)
        spaced(put, lambda: _drop(state, _TURN))

    def between(progress: Callable[[], list[LevelProgress]]) -> None:
        keep(lambda: _running_to_state(state, keys, progress(), shape))

    dtype = np.dtype(str(energy.dtype).removeprefix("torch."))

    def inside(progress: Callable[[], TurnProgress]) -> None:
        # The batch's own state can be large (the running trials' recorded paths: up to
        # 2^26 numbers per level): a disk too full for it costs the map that save, not the map.
        if not run.batch_saves:
            return
        try:
            keep(lambda: _turn_to_state(state, keys, progress(), shape, dtype))
        except OSError as err:
            if err.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                raise
            run.batch_saves = False
            _drop(state, "running")  # (the next save between batches writes the levels afresh)
            run.reporter.note(f"the batch of trials under way could not be saved ({err.strerror}): the map goes on, "
                              "and saves its progress between batches only")

    results = ladder(on_turn=between, resume_from=saved, on_sync=inside)
    _drop(state, "running")
    return results, time.perf_counter() - t0


def _midpoints(levels: list[Partition], budget: int, beside: Sequence[float] | None = None) -> list[float]:
    """Pulls between neighbouring rungs (sorted by pull) where the stronger keeps at most
    1/``LADDER_JUMP`` of the weaker one's basins (8 -> 2 too: a level of 4 can lie between): the geometric mean of each such pair's
    pulls (3 significant digits), the largest drops first, at most ``budget``; none between
    pulls closer than a factor 1.15.

    With ``beside`` (the pulls of rungs inserted before), only the gaps beside such a rung
    that kept the basins of its neighbour on the other side, where the drop it was to split
    lies whole (a sharp one: a 64-dimensional model's 209 basins at 0.3, 209 at the rung at
    0.548, 1 at 1 unit), unless the gap's other end is an inserted rung that split it (its
    basins differ from both its neighbours'): the search for the drop ends there."""
    ordered = sorted(levels, key=lambda p: p.multiplier)
    pairs = list(zip(ordered, ordered[1:]))
    if beside is not None:
        def split(k: int) -> bool:
            return ordered[k].multiplier in beside and all(
                ordered[j].n_basins != ordered[k].n_basins for j in (k - 1, k + 1) if 0 <= j < len(ordered))

        pairs = [(lo, hi) for k, (lo, hi) in enumerate(pairs)
                 if (lo.multiplier in beside and k > 0 and ordered[k - 1].n_basins == lo.n_basins and not split(k + 1))
                 or (hi.multiplier in beside and k + 2 < len(ordered) and ordered[k + 2].n_basins == hi.n_basins
                     and not split(k))]
    gaps = [(lo.n_basins / hi.n_basins, math.sqrt(lo.multiplier * hi.multiplier)) for lo, hi in pairs
            if lo.n_basins >= LADDER_JUMP * hi.n_basins and hi.multiplier > 1.15 * lo.multiplier]
    return [float(f"{m:.3g}") for _, m in sorted(gaps, key=lambda g: -g[0])[:budget]]  # (a pull one can type)


def _stage_ladder(
    run: _Run, minima: Minima, table: PairTable, settings: dict[str, Any]
) -> tuple[list[Partition], list[PairRecords], int, int]:
    """4. Basins at each pull of the ladder, extended until the strongest leaves one, then
    at rungs inserted where a step of the ladder loses most basins at once (the levels
    returned sorted by pull; the barriers known so far in ``table``)."""
    state, config = run.state, run.config
    multipliers = [float(m) for m in state.get("ladder", config.multipliers)]
    tie = run.tie
    into = _minima_tree(run.energy, minima.x, minima.energy.numpy(), table, tie).minima_drain_into(len(minima))
    fresh = "level0/basin" not in state
    levels: list[Partition] = []
    records: list[PairRecords] = []

    def take(key: str | int) -> None:
        part, rec = _level_from_state(state, key)
        levels.append(part)
        records.append(rec)
        skipped = int(part.attrs.get("failed_above", 0))
        untried = (f"; {skipped:,} pair{'' if skipped == 1 else 's'} no chain connected at a stronger pull "
                   "taken as apart, untried") if skipped else ""
        run.reporter.note(f"{_pull(part)}: {part.n_basins} basin{'' if part.n_basins == 1 else 's'} "
                          f"({part.attrs.get('trials', 0):,} trials{untried})")

    k = 0
    extended = len(multipliers) - len(config.multipliers)  # rungs added before a resume count too
    while k < len(multipliers):
        # every rung not done yet runs at once (a rung added above the ladder waits for the one below)
        _run_rungs(run, minima, into, settings, [(str(j), multipliers[j], 1 + j) for j in range(k, len(multipliers))])
        take(k)
        if k == 0 and fresh and levels[0].attrs.get("drain_placed"):
            run.reporter.note(f"{levels[0].attrs['drain_placed']} of {len(minima)} minima drain into lower ones with "
                              "no barrier along the paths known: placed where they drain, at every pull, without trials")
        k += 1
        if (k == len(multipliers) and levels[-1].n_basins > 1
                and len(multipliers) - len(config.multipliers) < config.ladder_extend):
            multipliers.append(multipliers[-1] * LADDER_FACTOR)
            extended += 1
            state["ladder"] = multipliers
    # Inserted rungs: one pass, run together (another pass would cost as much again for ever
    # finer detail), then, within the budget, rungs beside each one that split nothing,
    # halving the step it left, pass by pass, until a rung splits it.
    if "ladder/inserted" not in state:
        state["ladder/inserted"] = _midpoints(levels, config.ladder_refine)
    taken = 0
    while True:
        inserted = [float(m) for m in state["ladder/inserted"]]
        _run_rungs(run, minima, into, settings, [(f"r{j}", m, 501 + j) for j, m in enumerate(inserted)])
        for j in range(taken, len(inserted)):
            take(f"r{j}")
        taken = len(inserted)
        more = _midpoints(levels, max(0, config.ladder_refine - taken), beside=inserted)
        if not more:
            break
        state["ladder/inserted"] = inserted + more
    order = sorted(range(len(levels)), key=lambda i: levels[i].multiplier)
    levels, records = [levels[i] for i in order], [records[i] for i in order]
    return levels, records, extended, len(inserted)


#: Barriers of this many T_AD or more that the ladder's weakest pull joins minima across are
#: noted: lower ones (a Boltzmann factor above e^-2) hardly hold two states apart at T_AD,
#: and attraction-diffusion is to cross them (the ripples along a ring's valley).
NOTED_BARRIER = 2.0


def _ladder_note(levels: list[Partition], tree: BarrierTree, t_ad: float, own: bool) -> str | None:
    """What the map says where an end of its ladder leaves the basins unresolved (None
    where neither does): the strongest pull more than one basin (of those the map keeps,
    once the drained ones are joined); or the weakest already joining minima across a
    quarter or more of the tree's barriers of ``NOTED_BARRIER`` x ``t_ad`` or more (the
    ladder is to start from about every state a basin of its own), with why and what to
    try. ``own`` says whether ``t_ad`` is the checkpoint's sampling temperature."""
    strongest = max(levels, key=lambda p: p.alpha)
    if strongest.n_basins > 1:
        return (f"{strongest.n_basins} basins remain at the strongest pull tried ({_pull(strongest)}; "
                "raise --ladder or ladder_extend to go further)")
    weakest = min(levels, key=lambda p: p.alpha)
    depths = tree.resolved_depth()
    with np.errstate(invalid="ignore"):
        noted = depths >= NOTED_BARRIER * t_ad  # (NaN: not connected)
    crossed = depths[noted & _joined_merges(tree, np.asarray(weakest.basin))]
    if not crossed.size or LADDER_JUMP * crossed.size < int(noted.sum()):
        return None
    b, states = weakest.n_basins, 1 + resolved_barriers(depths).size
    thermal = crossed[crossed * AD_TEMPERATURE_SHARE < t_ad]  # under 20 T_AD: attraction-diffusion's diffusion crosses them
    shown = thermal if thermal.size else crossed
    low, high = (f"{v / t_ad:.2g}" for v in (shown.min(), shown.max()))
    k = int(noted.sum())
    which = ("the tree's one barrier" if k == 1 else f"all {k} of the tree's barriers" if crossed.size == k
             else f"{crossed.size} of the tree's {k} barriers")
    head = (f"{b} basin{'' if b == 1 else 's'} already at the weakest pull ({_pull(weakest)}) over {states} states, "
            f"joining minima across {which} of {NOTED_BARRIER:g} T_AD or more: "
            f"{low if low == high else f'{low}-{high}'} T_AD")
    them = "it" if crossed.size == 1 else "them"
    if thermal.size:
        whose = f" is the checkpoint's sampling temperature: the model's own chains cross {them}" if own else ""
        lowest = "" if thermal.size == 1 else " (1/20 of the lowest of them)"
        return (f"{head} (T_AD {t_ad:.4g}{whose}); --ad-temperature {AD_TEMPERATURE_SHARE * thermal.min():.3g}"
                f"{lowest or ' (1/20 of it)'} keeps the states apart")
    return f"{head}: the pull takes chains across {them}; a weaker --ladder splits them"


def _joined_merges(tree: BarrierTree, basin: np.ndarray) -> np.ndarray:
    """Per merge of ``tree`` (over minima), whether a basin of the partition ``basin`` (per
    minimum) holds minima of both its sides: a barrier the partition joins minima across."""
    n = tree.n_leaves
    held: dict[int, set[int]] = {i: {int(basin[tree.leaves[i]])} for i in range(n)}
    out = np.zeros(max(n - 1, 0), dtype=bool)
    for k, (a, c) in enumerate(tree.linkage[:, :2].astype(np.int64).tolist()):
        one, other = sorted((held.pop(a), held.pop(c)), key=len)  # (the smaller set into the larger)
        out[k] = not one.isdisjoint(other)
        other |= one
        held[n + k] = other
    return out


def _own_temperature(config: MapConfig, energy: Energy) -> bool:
    """Whether attraction-diffusion ran at the checkpoint's sampling temperature (none given)."""
    return config.ad_temperature is None and sampling_temperature(energy) is not None


def _stage_connected(
    run: _Run, minima: Minima, table: PairTable, records: list[PairRecords], saddles: _Saddles, keep_paths: bool,
    settings: dict[str, Any] | None,
) -> tuple[PairTable, bool]:
    """5. The pairs attraction-diffusion connected, refined where they could lower the tree;
    and whether the ``settings`` are to be chosen again (with the ladder after them): where
    the refinement lowered the barriers they were chosen from (:func:`_settings_moved`),
    once (never where ``settings`` is None: a map's own, which new minima are mapped with)."""
    state, config, shape = run.state, run.config, tuple(run.energy.shape)
    if "final" not in state:
        before = table
        # (each pass of refinement is saved: an interrupted run continues after the last one)
        done = int(state.get("connected/passes", 0))
        t0 = time.perf_counter() - float(state.get("connected/seconds", 0.0))
        e = minima.energy.numpy()
        ad_paths: dict[tuple[int, int], torch.Tensor] = {}
        for rec in records:
            table = add_records(table, rec, ad_paths)  # (the strings' starts, found again on resume)
        if done:
            table = _table_from_state(state, "connected")
            run.reporter.note(f"resuming the refinement after its pass {done}")

        def after_pass(passes: int, retried: int, at_budget: int) -> None:
            state["refine/retried"] = int(state.get("refine/retried", 0)) + retried
            state["refine/at_budget"] = int(state.get("refine/at_budget", 0)) + at_budget
            _table_to_state(state, table, "connected")
            saddles.to_state(state, shape)
            state["connected/passes"], state["connected/seconds"] = passes, time.perf_counter() - t0
            run.save()

        _refine_until_settled(run.energy, minima.x, e, table, config, ad_paths, saddles, keep_paths, run.reporter,
                              config.refine, done, after_pass, run)
        _table_to_state(state, table)
        saddles.to_state(state, shape)
        _drop(state, "connected/")
        moved = None if settings is None else _settings_moved(run, minima.x, e, before, table, settings)
        rounds = int(state.get("settings/rounds", 1))
        if moved and rounds < SETTINGS_ROUNDS:
            run.reporter.note(f"the refinement lowered the barriers the settings came from ({moved}): "
                              "attraction-diffusion's settings chosen again from the refined tree, its ladder run again")
            for prefix in ("settings", "level", "ladder", "running"):
                _drop(state, prefix)
            state["settings/rounds"], state["stage"] = rounds + 1, "refined (settings to choose again)"
        else:
            if moved:
                run.reporter.note(f"the refinement lowered the barriers the settings came from again ({moved}): "
                                  f"attraction-diffusion's settings are those of round {rounds}, from higher barriers")
            state["final"], state["stage"] = True, "refined"
        run.timed("refine", t0)
        run.save()
        if "final" not in state:
            return table, True
    return _table_from_state(state), False


#: Rounds of settings, ladder and refinement at most (:func:`_settings_moved`).
SETTINGS_ROUNDS = 2
#: The factor by which the refinement must lower what set attraction-diffusion's
#: temperature or unit before they are chosen again.
SETTINGS_MOVE = 2.0


def _settings_moved(run: _Run, x: torch.Tensor, minima_energy: np.ndarray, before: PairTable, after: PairTable,
                    settings: dict[str, Any]) -> str | None:
    """What the refinement of the pairs attraction-diffusion connected lowered by more than
    :data:`SETTINGS_MOVE` of what the chosen settings were matched to (None if nothing):
    the temperature set from the lowest barrier (:func:`ad_temperature_from`), or the unit
    from the typical one. A string between two minima can stop on a higher pass than the one
    attraction-diffusion's chains find (a horseshoe valley; the top of a symmetric hat):
    a temperature 1/20 of that pass is an eighth of the lower one, over which every chain
    then walks."""
    tie = run.tie
    old, new = (_minima_tree(run.energy, x, minima_energy, t, tie).resolved_depth() for t in (before, after))
    found = []
    if run.config.ad_temperature is None and sampling_temperature(run.energy) is None:
        t_old, t_new = (ad_temperature_from(d, minima_energy) for d in (old, new))
        if t_new * SETTINGS_MOVE < t_old:
            found.append(f"T_AD {t_old:.4g} -> {t_new:.4g}")
    if run.config.alpha_unit is None and settings.get("alpha_unit_rule") == "barriers":
        m_old, m_new = (float(np.median(d)) if d.size else math.nan for d in map(resolved_barriers, (old, new)))
        if m_new * SETTINGS_MOVE < m_old:
            found.append(f"the typical barrier {m_old:.4g} -> {m_new:.4g}")
    return "; ".join(found) or None


def _assemble(
    run: _Run, minima: Minima, table: PairTable, saddles: _Saddles, keep_paths: bool, settings: dict[str, Any],
    levels: list[Partition], extended: int, inserted: int,
) -> MapResult:
    """6. The tree, the basins that hold only minima draining into lower ones with no
    barrier joined where they drain (:func:`landscape.mapping.ad.join_drained`), the grid,
    the content."""
    energy, config, state = run.energy, run.config, run.state
    shape = tuple(energy.shape)
    e_min = minima.energy.numpy()
    n = len(minima)
    tie = run.tie
    tree = _minima_tree(energy, minima.x, e_min, table, tie)
    levels = _join_drained(levels, tree, e_min, tie)
    joined = [f"{_pull(p)} {p.n_basins + p.attrs['drained']} -> {p.n_basins}" for p in levels if p.attrs["drained"]]
    if joined:
        run.reporter.note("basins of only minima that drain into lower ones with no barrier, joined to the basin "
                          "they drain into: " + ", ".join(joined))
    levels = nest_levels(levels, e_min, tie)
    nested = [f"{_pull(p)} {p.attrs['nested']}" for p in levels if p.attrs["nested"]]
    if nested:
        run.reporter.note("minima moved to where their basin's lowest minimum went, so that a basin of a weaker "
                          "pull stays whole at the stronger ones: " + ", ".join(nested))
    ladder_note = _ladder_note(levels, tree, settings["ad_temperature"], _own_temperature(config, energy))
    if ladder_note:
        run.reporter.note(ladder_note)
    grid = _grid(energy, config.grid) if config.grid and energy.dim == 2 and len(shape) == 1 else None
    main = next(i for i, p in enumerate(levels) if math.isclose(p.multiplier, config.alpha, rel_tol=1e-12))
    tree_saddle, tree_path = _tree_points(tree, table, saddles, shape, keep_paths)
    above = int(table.above_estimate(e_min).sum())
    refined = int(np.isfinite(table.refined).sum())
    content = MapContent(
        minima_x=minima.x.detach().cpu().numpy(),
        minima_energy=e_min,
        minima_hits=minima.hits.numpy(),
        levels=levels,
        main=main,
        barriers=table,
        tree=tree,
        tree_saddle=tree_saddle,
        tree_path=tree_path,
        grid=grid,
        attrs={
            "minima": {"temperature": settings["temperature"], "chains": int(state["explore/chains"]),
                       "rounds": int(state["explore/rounds"]), "data_range": list(energy.data_range),
                       "grad_norm_max": float(minima.grad_norm.max()) if n else 0.0,
                       "held_by_box": int(state.get("minima/held_by_box", 0)),
                       "precision": str(state.get("minima/precision", ""))},
            "basins": {"alpha": levels[main].alpha, "multiplier": float(config.alpha)},
            "barriers": {"neighbours": config.neighbours, "refined": refined, "refined_above_estimate": above,
                         "saddle_points": table.n_saddle_points(),
                         "retried": int(state.get("refine/retried", 0)),
                         "strings_at_budget": int(state.get("refine/at_budget", 0))},
            "tree": {"refined_merges": int(tree.refined.sum()), "connected_merges": int(tree.connected.sum())},
            "levels": {"alpha_unit": settings["alpha_unit"], "alpha_unit_rule": settings.get("alpha_unit_rule", ""),
                       "temperature": settings["ad_temperature"],
                       "delta": settings["delta"], "eps": settings["ad_eps"], "extended": extended,
                       "inserted": inserted, "note": ladder_note or "",
                       "settings_rounds": int(state.get("settings/rounds", 1))},
        },
    )
    counts = {"minima": n, "basins": levels[main].n_basins, "pairs": len(table), "refined": refined,
              "above_estimate": above, "ad_trials": int(sum(p.attrs.get("trials", 0) for p in levels))}
    # what the map's file would record at its root, so the map in memory reads as from its file
    content.meta = MapMeta(schema_version=SCHEMA_VERSION, created=utc_now(), tool_version=tool_version(),
                           source=_source_record(energy), config=config.to_dict(),
                           extra={"settings": settings, "seconds": run.seconds, **_work_record(run)})
    return MapResult(content=content, settings=settings, seconds=run.seconds, counts=counts)


def _pull(part: Partition) -> str:
    """A level's pull, as the notes give it."""
    return f"alpha {part.multiplier:g} units" if part.multiplier is not None else f"alpha {part.alpha:.4g}"


def _join_drained(levels: list[Partition], tree: BarrierTree, energy: np.ndarray, tie: float) -> list[Partition]:
    """Every level with its minima that drain into others with no barrier put where they
    drain (:func:`landscape.mapping.ad.join_drained`; the tree's leaves are the minima, of
    energies ``energy``)."""
    into = tree.minima_drain_into(len(tree.leaves))
    return [join_drained(p, into, energy, tie) for p in levels]


def _source_record(energy: Energy) -> dict[str, Any]:
    """What a map built in Python records of its energy: the record ``landscape map
    --energy`` or ``--model`` writes, with the energy's name as the spec, so ``landscape
    funnel`` and ``diagnose`` take the energy's code again from the user (a record never
    runs code)."""
    return {"kind": "model" if isinstance(energy.fn, torch.nn.Module) else "function", "spec": energy.name or "energy",
            **energy.geometry(energy.box())}


def _tree_points(tree: BarrierTree, table: PairTable, saddles: _Saddles, shape: tuple[int, ...],
                 keep_paths: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Saddle points (and paths) of the tree's refined merges, NaN rows elsewhere."""
    m = tree.n_leaves - 1
    if m <= 0:
        return None, None
    kept = np.result_type(*saddles.points.values()) if saddles.points else np.float32
    points = np.full((m, *shape), np.nan, dtype=kept)
    rows = [k for k in range(m) if tree.refined[k]]
    for k in rows:
        key = (int(tree.edge[k, 0]), int(tree.edge[k, 1]))
        if key in saddles.points:
            points[k] = saddles.points[key]
    paths = None
    if keep_paths:
        got = [(k, saddles.paths[(int(tree.edge[k, 0]), int(tree.edge[k, 1]))]) for k in rows
               if (int(tree.edge[k, 0]), int(tree.edge[k, 1])) in saddles.paths]
        if got:
            length = max(p.shape[0] for _, p in got)
            paths = np.full((m, length, *shape), np.nan, dtype=kept)
            for k, p in got:
                paths[k, : p.shape[0]] = p
    return points, paths


def _grid(energy: Energy, n: int) -> GridData:
    low, high = energy.data_range
    axis = torch.linspace(low, high, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).to(energy.device, energy.dtype)
    values = torch.cat([energy(chunk) for chunk in pts.split(65536)]).double().cpu()
    return GridData(x=axis.numpy(), y=axis.numpy(), energy=values.reshape(n, n).numpy())


# ------------------------------------------------------------------- mapping new minima


def _check_new_minima(energy: Energy, content: MapContent, new: Minima) -> None:
    """LandscapeError unless ``new`` are minima the map lacks, with their energies: each
    with the energy ``energy`` gives there (within the float32 rounding of the energies'
    scale), none within the map's merge radius of a map minimum or of another new one
    with no barrier between (that one is the same minimum; two wells closer than the
    radius stay two minima, as in the map)."""
    m = len(new)
    if m == 0:
        raise LandscapeError("no new minima to map into the map")
    if new.x.shape[0] != m:
        raise LandscapeError(f"the new minima have {new.x.shape[0]} points and {m} energies")
    e = new.energy.double().cpu().numpy()
    u = energies(energy, new.x.detach())
    bad = ~(np.abs(u - e) <= 1e-4 * map_energy_scale(content, e))
    if bad.any():
        i = int(np.argmax(bad))
        raise LandscapeError(f"new minimum {i}: the energy gives {u[i]:.6g} there, its record says {e[i]:.6g} "
                             "(new minima carry the energy's own values)")
    radius = float(content.settings().get("merge_radius", 0.0))
    inside = radius * (1 - 1e-3)  # (distances worked out in other batches round differently: no quarrel at the edge)
    x = new.x.detach().to(energy.device, energy.dtype)
    map_x = torch.as_tensor(np.asarray(content.minima_x)).to(energy.device, energy.dtype)
    e_map = np.asarray(content.minima_energy, dtype=np.float64)
    # Half the rise the probe's matching takes for a barrier: this checks its decision and
    # must not overturn it where the segment's top, evaluated in another batch, rounds to
    # the other side of the line (a float32 network's kernels round by batch size).
    magnitude = 0.5 * float(max(np.abs(e_map).max(initial=0.0), np.abs(e).max()))
    tie = 0.5 * _stored_tie(content)

    def same(d: torch.Tensor, j: torch.Tensor, others: torch.Tensor, e_others: np.ndarray) -> tuple[int, int] | None:
        """The first pair (new minimum, other) within the merge radius with no barrier
        between (two wells closer than the radius stay two minima, as in the map)."""
        rows, cols = np.nonzero(d.cpu().numpy() < inside)
        if not rows.size:
            return None
        other = j.cpu().numpy()[rows, cols]
        walls = barrier_between(energy, x[torch.from_numpy(rows).to(x.device)],
                                others[torch.from_numpy(other).to(x.device)], torch.from_numpy(e[rows]),
                                torch.from_numpy(e_others[other]), magnitude, tie)
        first = np.flatnonzero(~walls)
        return None if not first.size else (int(rows[first[0]]), int(other[first[0]]))

    d, j = nearest(x, map_x, min(NEAR_CHECKED, map_x.shape[0]))
    pair = same(d, j, map_x, e_map)
    if pair is not None:
        i, k = pair
        raise LandscapeError(f"new minimum {i} lies {float(torch.linalg.vector_norm(x[i] - map_x[k])):.3g} from the "
                             f"map's minimum {k}, within the map's merge radius {radius:.3g}, with no barrier between: "
                             "it is that minimum (leave it out)")
    if m > 1:
        d, j = nearest(x, x, min(NEAR_CHECKED, m - 1), exclude_self=True)
        pair = same(d, j, x, e)
        if pair is not None:
            i, k = pair
            raise LandscapeError(f"new minima {i} and {k} lie {float(torch.linalg.vector_norm(x[i] - x[k])):.3g} "
                                 f"apart, within the map's merge radius {radius:.3g}, with no barrier between: they "
                                 "are one minimum (keep the lower)")


#: How many nearest map minima a new minimum is checked against (:func:`_check_new_minima`),
#: as many as the funnel probe's matching tries an end point against.
NEAR_CHECKED = 4


@stage("mapping new minima")
@runs_frozen
def extend_map(
    energy: Energy,
    content: MapContent,
    new: Minima,
    *,
    reporter: Reporter | None = None,
    seed: int = 0,
    refine: bool | None = None,
    state: MutableMapping[str, Any] | None = None,
    save: Callable[[], None] | None = None,
) -> MapContent:
    """Map new minima (found after the map was made, e.g. by a funnel probe) into a map.

    The new minima are appended after the map's own (whose indices stay valid) with 0
    hits. Their neighbour pairs (among all minima) are estimated and refined; at every
    level of the ladder they are assigned by attraction-diffusion with the map's own
    settings (:func:`landscape.mapping.ad.extend_basins`: the old minima keep their basins; a new
    minimum joins a basin or founds one); the pairs those chains connected are refined
    where they could lower the tree; the tree is rebuilt, and basins of only minima that
    drain into lower ones with no barrier join where they drain, as in :func:`build_map`.
    Every barrier already in the map, refined or not, is kept.

    Parameters
    ----------
    energy : Energy
        The mapped energy.
    content : MapContent
        A map as read by :func:`landscape.io.mapfile.read_map` (schema 2, with its config).
    new : Minima
        Minima not in the map (none within the merge radius of a map minimum).
    reporter : Reporter, optional
    seed : int
        Seeds the attraction-diffusion chains.
    refine : bool, optional
        Refine the new pairs by the string method [default: as the map was]. Without,
        they keep their estimates (refined barriers already in the map are kept either way).
    state : dict, optional
        Where the work's progress is kept (keys ``mapping/...``, :data:`EXTENDING`; the
        funnel probe's saved state): after each stage, and part-way through the string
        method and the ladder as :func:`build_map` does. Called again with the state as
        saved (the same map, new minima, seed and ``refine``), the work continues from
        there to the uninterrupted result.
    save : callable, optional
        Called whenever ``state`` holds progress worth writing (the caller writes it).

    Returns
    -------
    MapContent
        The extended map, root metadata kept; ``funnel`` and ``diagnosis`` are dropped
        (they describe the old minima).

    Raises
    ------
    LandscapeError
        A map without its mapping config or of schema 1, an energy that does not give the
        map's minimum energies back, new minima of the wrong shape, without the energy's
        values, or within the map's merge radius of a map minimum or of each other, or a
        ``state`` saved for other new minima or another ``refine``.
    NonFiniteEnergyError
        From the chains or the string method.
    """
    reporter = NamedStages(reporter or Reporter())
    if not content.over_minima:
        raise LandscapeError("the map is of schema 1 (its tree is over basins): remap it to add minima to it")
    if content.meta is None or not isinstance(content.meta.config, dict):
        raise LandscapeError("the map has no mapping config: new minima cannot be mapped into it")
    energy.check_batch(new.x)
    check_gives_back(energy, content)
    _check_new_minima(energy, content, new)
    cfg = MapConfig.from_dict(content.meta.config)
    settings = dict(content.attrs.get("levels", {}))
    settings = {"ad_temperature": float(settings.get("temperature", 1.0)), "ad_eps": float(settings.get("eps", 0.1)),
                "delta": float(settings.get("delta", 0.35)), "alpha_unit": float(settings.get("alpha_unit", 1.0))}
    refine = cfg.refine if refine is None else refine
    n_old, m = content.n_minima, len(new)
    x_old = torch.from_numpy(np.asarray(content.minima_x)).to(energy.device, energy.dtype)
    x_all = torch.cat([x_old, new.x.detach().to(energy.device, energy.dtype)])
    e_all = np.concatenate([np.asarray(content.minima_energy, dtype=np.float64), new.energy.double().cpu().numpy()])
    hits = np.concatenate([np.asarray(content.minima_hits, dtype=np.int64), np.zeros(m, dtype=np.int64)])
    minima = Minima(x_all, torch.from_numpy(e_all), torch.from_numpy(hits), torch.zeros(n_old + m, dtype=torch.float64))
    shape = tuple(energy.shape)
    n = n_old + m
    keep_paths = content.tree_path is not None or (n > 1 and energy.dim * cfg.refine_images * 2 * (n - 1) <= _PATH_BUDGET)

    run = _Run(energy, replace(cfg, refine=refine), reporter, save,
               state={} if state is None else _Prefixed(state, EXTENDING))
    _check_extension(run.state, n_old, m, refine)
    check_progress(run.state, shape, n)
    run.seconds = dict(run.state.get("seconds", {}))  # (the stages' times before an interruption)
    if "pairs/pairs" not in run.state:  # the new minima's neighbour pairs, refined
        t0 = time.perf_counter()
        saddles = _saddles_of(content)
        table = _with_new_neighbours(energy, x_all, content.barriers, n_old, cfg)
        if refine:
            rows = [e for e in refinement_rows(e_all, table, cfg.refine_slack)
                    if table.pairs[e, 1] >= n_old and (table.source[e] & NEIGHBOUR)]
            _refine(energy, x_all, table, rows, cfg, {}, saddles, keep_paths, reporter, "new neighbours", run)
        _table_to_state(run.state, table)
        saddles.to_state(run.state, shape)
        run.state.update({"new": [n_old, m], "refine": refine, "stage": "new neighbours"})
        run.timed("neighbours", t0)
        run.save()
    saddles = _Saddles.from_state(run.state)

    # Every level of the ladder, at once (saved part-way: a probe's new minima can take longer than the map did).
    keys = [str(k) for k in range(len(content.levels))]
    table = _table_from_state(run.state)
    if any(f"level{k}/basin" not in run.state for k in keys):
        # (new minima that drain into others with no barrier along the paths known run no trials)
        into = _minima_tree(energy, x_all, e_all, table, _stored_tie(content)).minima_drain_into(n)
        gens = [torch.Generator(device=energy.device).manual_seed(seed * 1009 + 101 + k)
                for k in range(len(content.levels))]
        configs = [_ad_config(cfg, settings, prior.alpha) for prior in content.levels]
        results, seconds = _ladder_saved(
            run, keys, [float(prior.multiplier or 0.0) for prior in content.levels],
            f"mapping {m} new minima at {len(content.levels)} levels", f"mapping the {m} new minima",
            m * len(content.levels),
            lambda **saving: extend_ladder(energy, minima, content.levels, configs, gens, reporter.advance,
                                           reporter.detail, tie=_stored_tie(content), drains_into=into, **saving))
        for key, prior, (part, rec, _) in zip(keys, content.levels, results):
            part.attrs = {**prior.attrs, "added": m}
            _level_to_state(run.state, key, part, rec, shape)
        run.state["stage"] = "new minima at every level"
        run.timed("basins", time.perf_counter() - seconds)
        run.save()
    levels, records = [], []
    for key in keys:
        part, rec = _level_from_state(run.state, key)
        levels.append(part)
        records.append(rec)
    table, _ = _stage_connected(run, minima, table, records, saddles, keep_paths, None)
    saddles = _Saddles.from_state(run.state)

    tie = _stored_tie(content)
    tree = _minima_tree(energy, x_all, e_all, table, tie)
    levels = nest_levels(_join_drained(levels, tree, e_all, tie), e_all, tie)
    for prior, part in zip(content.levels, levels):
        reporter.note(f"{_pull(prior)}: {prior.n_basins} -> {part.n_basins} basin" + ("" if part.n_basins == 1 else "s"))
    tree_saddle, tree_path = _tree_points(tree, table, saddles, shape, keep_paths)
    attrs = {g: dict(v) for g, v in content.attrs.items()}
    attrs.setdefault("minima", {})["funnel_added"] = int(attrs.get("minima", {}).get("funnel_added", 0)) + m
    attrs.setdefault("barriers", {}).update({"refined": int(np.isfinite(table.refined).sum()),
                                            "refined_above_estimate": int(table.above_estimate(e_all).sum())})
    if "saddle_points" in attrs["barriers"]:  # (a map of an earlier version does not say)
        attrs["barriers"]["saddle_points"] = table.n_saddle_points()
    attrs.setdefault("tree", {}).update({"refined_merges": int(tree.refined.sum()),
                                        "connected_merges": int(tree.connected.sum())})
    if "note" in attrs.get("levels", {}):  # (the basins left at the strongest pull: counted again, where a map says)
        attrs["levels"]["note"] = _ladder_note(levels, tree, settings["ad_temperature"],
                                               _own_temperature(cfg, energy)) or ""
    reporter.close()
    return replace(
        content,
        minima_x=x_all.detach().cpu().numpy(),
        minima_energy=e_all,
        minima_hits=hits,
        levels=levels,
        barriers=table,
        tree=tree,
        tree_saddle=tree_saddle,
        tree_path=tree_path,
        funnel=None,
        diagnosis=None,
        attrs=attrs,
    )


#: The keys under which :func:`extend_map` keeps its progress in the caller's state.
EXTENDING = "mapping/"


class _Prefixed(MutableMapping[str, Any]):
    """The keys of ``state`` that start with ``prefix``, without it: one piece of work's
    progress inside another's saved state (a funnel probe's mapping of its new minima)."""

    def __init__(self, state: MutableMapping[str, Any], prefix: str):
        self.state, self.prefix = state, prefix

    def __getitem__(self, key: str) -> Any:
        return self.state[self.prefix + key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.state[self.prefix + key] = value

    def __delitem__(self, key: str) -> None:
        del self.state[self.prefix + key]

    def __iter__(self) -> Iterator[str]:
        return iter([k[len(self.prefix):] for k in self.state if k.startswith(self.prefix)])

    def __len__(self) -> int:
        return sum(1 for k in self.state if k.startswith(self.prefix))


def _check_extension(state: MutableMapping[str, Any], n_old: int, m: int, refine: bool) -> None:
    """Refuse progress saved for other new minima, or with refinement on where it is off
    now or the other way round (a one-line error)."""
    if "new" not in state:
        return
    if state["new"] != [n_old, m]:
        raise LandscapeError(f"the saved progress maps other new minima into the map than these {m}: "
                             "it is another probe's")
    if bool(state.get("refine")) != refine:
        raise LandscapeError(f"the saved progress was made {'with' if state.get('refine') else 'without'} refinement: "
                             f"resume with {'--refine' if state.get('refine') else '--no-refine'}")


def _stored_tie(content: MapContent) -> float:
    """The energy tie of the map's own quench settings (0 where the file lacks them)."""
    chosen = content.meta.extra.get("settings") if content.meta is not None else None
    try:
        tie = energy_tie(float(chosen["grad_tol"]), float(chosen["merge_radius"]))
    except (TypeError, KeyError, ValueError):
        return 0.0
    return tie if math.isfinite(tie) and tie >= 0 else 0.0


def _saddles_of(content: MapContent) -> _Saddles:
    """The refined saddles (and paths) of a map's tree, by minima pair, so an extended tree
    keeps them."""
    saddles = _Saddles({}, {})
    tree = content.tree
    if content.tree_saddle is None:
        return saddles
    for k in range(tree.n_leaves - 1):
        if tree.refined[k]:
            key = (int(tree.edge[k, 0]), int(tree.edge[k, 1]))
            saddles.points[key] = content.tree_saddle[k]
            if content.tree_path is not None:
                p = _finite_rows(content.tree_path[k])
                if p.shape[0] >= 2:  # (a merge stored without its path has none)
                    saddles.paths[key] = p
    return saddles


def _with_new_neighbours(energy: Energy, x_all: torch.Tensor, old: PairTable, n_old: int, cfg: MapConfig) -> PairTable:
    """The old pair table (every row kept as it is) with the neighbour pairs that involve
    a minimum from ``n_old`` on, sorted."""
    fresh = neighbour_table(energy, x_all, neighbour_pairs(x_all, cfg.neighbours), cfg.refine_images)
    index = old.index()
    add = [e for e in np.flatnonzero((fresh.pairs >= n_old).any(1)).tolist() if tuple(fresh.pairs[e]) not in index]
    parts = [np.concatenate([getattr(old, name), getattr(fresh, name)[add]]) for name in PairTable.COLUMNS]
    order = np.lexsort((parts[0][:, 1], parts[0][:, 0]))
    return PairTable(*(part[order] for part in parts))
