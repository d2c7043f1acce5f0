"""Whole runs on files: map a model, probe a map's funnel, diagnose it, compare two.

The command line (:mod:`landscape.cli`) and the demo (:mod:`landscape.train.demo`) call
these; each command only parses its options, calls one of them and prints the result.
They load our checkpoints and data sets (which the analysis library does not know), then
hand energies and tensors to the library: :func:`run_map` to
:func:`landscape.mapping.pipeline.build_map`, :func:`run_funnel` to
:func:`landscape.mapping.funnel.funnel_probe`, :func:`run_diagnose` to
:func:`landscape.diagnosis.spurious.diagnose_map`, :func:`run_compare` to
:mod:`landscape.diagnosis.compare` and the long-run check. A run interrupted with Ctrl-C
says what progress it kept (through ``say``) and raises KeyboardInterrupt again.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.errors import LandscapeError
from landscape.mapping.funnel import DEFAULT_NOISE as FUNNEL_NOISE
from landscape.mapping.pipeline import ProgressBars
from landscape.train.config import CHECK_CHAINS, CHECK_MULTIPLES
from landscape.train.energies import LoadedEnergy


def _stderr(text: str) -> None:
    import sys

    print(text, file=sys.stderr)


def _floats(text: str) -> tuple[float, ...] | None:
    """The numbers of ``"0,1,2"`` (``""``: none); None where an item is not a number."""
    items = text.replace(" ", "").split(",") if text.strip() else []
    try:
        return None if "" in items else tuple(float(v) for v in items)
    except ValueError:
        return None


def _in_range(values: tuple[float, ...], text: str, what: str, positive: bool) -> tuple[float, ...]:
    if any(not (math.isfinite(v) and (v > 0 if positive else v >= 0)) for v in values):
        raise LandscapeError(f"{what} must be finite and {'> 0' if positive else '>= 0'}, got {text!r}")
    return values


def parse_floats(text: str, what: str, *, positive: bool = False) -> tuple[float, ...]:
    """Numbers separated by commas (``"0,1,2"``; ``""`` none), each finite and >= 0 (> 0
    with ``positive``)."""
    values = _floats(text)
    if values is None:
        raise LandscapeError(f"{what} must be numbers separated by commas, got {text!r}")
    return _in_range(values, text, what, positive)


def parse_float(text: str, what: str, *, positive: bool = False, auto: bool = False) -> float:
    """One number (:func:`parse_floats`' rules): ``"1,2"`` is refused, not read as 1; the
    message says "or auto" where the option also takes ``auto``."""
    values = _floats(text)
    if values is None or len(values) != 1:
        raise LandscapeError(f"{what} takes one number{' (or auto)' if auto else ''}, got {text!r}")
    return _in_range(values, text, what, positive)[0]


# ---------------------------------------------------------------------------- map


def _count(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def summary_line(content: Any, out: Path, wall: float) -> str:
    """What a map holds, in one line (minima, basins, merges refined, refined above estimate)."""
    tree = content.tree
    merges = tree.n_leaves - 1
    above = int(content.attrs.get("barriers", {}).get("refined_above_estimate", 0))
    if content.n_minima == 1:  # nothing to merge, nothing to separate
        return f"1 minimum (one basin at every pull) -> {out}  ({wall:.0f} s)"
    from landscape.io.views import merges_at_saddle_points, state_coverage

    refined = int(tree.refined.sum())
    states = state_coverage(content)  # (minima that drain flat into others counted with them)
    distinct = f" ({_count(states.found, 'distinct state')})" if states is not None and states.found else ""
    text = (f"{content.n_minima} minima{distinct}, {_count(content.n_basins, 'basin')} at alpha "
            f"{content.partition.multiplier:g} units; tree: {refined} of {merges} merges at refined barriers")
    points = merges_at_saddle_points(content)
    if points is not None and points < refined:  # (the rest at the tops of paths: upper bounds)
        text += f" ({points} at saddle points, {refined - points} at path tops, upper bounds)"
    if not tree.connected.all():
        text += f", {int((~tree.connected).sum())} not connected"
    flat = int(tree.flat().sum())
    if flat:
        text += f", {flat} flat (no barrier the energy's precision resolves)"
    if above:
        text += f"; {above} refined barrier{'s' if above != 1 else ''} above {'their' if above != 1 else 'its'} estimate (estimate kept)"
    return text + f" -> {out}  ({wall:.0f} s)"


def states_line(content: Any) -> str | None:
    """How completely the exploration found the minima its starts lead to, or where some
    drain flat into others, the distinct states, in one line (``info``'s ``explored``): the
    note the exploration gave while it ran counted minima, before the tree could tell which
    are one state. None for a map that records no chains."""
    from landscape.io.views import describe_exploration

    line = describe_exploration(content)
    return f"explored: {line}" if line else None


def map_data(loaded: LoadedEnergy, config: Any, *, dataset: str | None = None,
             data_root: Path | None = None, say: Callable[[str], None] | None = None) -> tuple[Any, str | None]:
    """The training examples for chains from data (None when the chains start from noise
    only), images in the energy's box (:meth:`Dataset.in_range`, said to ``say``), and
    the data set's name: ``dataset``, else the checkpoint's."""
    from landscape.data import canonical_name

    dataset = dataset or loaded.dataset
    dataset = canonical_name(dataset) if dataset else dataset  # (recorded: a folder found from anywhere)
    init = config.init
    if init == "noise" or (init is None and not dataset):
        return None, dataset
    if not dataset:
        raise LandscapeError(f"--init {init} needs a data set: give --dataset")
    from landscape.data import DataError
    from landscape.train.energies import load_shaped

    energy = loaded.energy
    try:
        ds = load_shaped(dataset, data_root, energy.shape, loaded.data_limit(dataset))
    except DataError as err:
        if init is not None:
            raise
        raise LandscapeError(f"{err} (or map without data: --init noise)") from None
    x = ds.in_range(energy.data_range)
    if x is not ds.x and say is not None:
        say(_carried(dataset, ds.range, energy.data_range))
    return x, dataset


def _carried(dataset: str, frm: tuple[float, float], box: tuple[float, float]) -> str:
    """The line that says a data set's images were carried onto the energy's box."""
    return (f"data set {dataset}: images given in the box's pixel range [{box[0]:g}, {box[1]:g}] (black at "
            f"{box[0]:g}, white at {box[1]:g}; data sets load in [{frm[0]:g}, {frm[1]:g}]), as the model reads them")


def run_map(loaded: LoadedEnergy, config: Any, out: Path, *, data: Any = None, dataset: str | None = None,
            resume: bool = False, force: bool = False, quiet: bool = False,
            say: Callable[[str], None] = print) -> tuple[Any, float]:
    """Build the map of ``loaded`` with ``config``, write it to ``out`` atomically; return
    (content, seconds). Ctrl-C keeps the progress of finished stages and exits with status 130.

    The whole run holds the lock on ``out`` (:func:`landscape.io.files.output_lock`): a
    second run on the same output is refused. An existing map is replaced only with
    ``force``; ``resume`` continues unfinished progress, and over a finished map of the
    same settings and energy returns (None, 0.0) (nothing to do); of other settings it is
    refused, never replaced.

    Under torchrun (:mod:`landscape.distributed`) every rank calls it: rank 0 holds the lock,
    keeps the progress and writes the map; the others compute with it and return the same
    content without writing."""
    from contextlib import ExitStack

    from landscape.distributed import current, from_main
    from landscape.io.files import held_by, output_lock, signals_deferred
    from landscape.io.progress import clear_progress, progress_path
    from landscape.mapping.funnel import PROGRESS_KIND as FUNNEL_PROGRESS
    from landscape.mapping.pipeline import build_map

    group = current()  # under torchrun: rank 0 holds the lock and writes; every rank computes
    main = group is None or group.main
    quiet = quiet or not main
    with ExitStack() as held:

        def start() -> bool:
            held.enter_context(output_lock(out, progress_path(out)))
            return _may_write_map(loaded, config, out, resume=resume, force=force)

        if not from_main(start, group):
            return None, 0.0
        energy = loaded.energy
        low, high = energy.box()  # (one line where there is none, before the map's header)
        if not quiet:
            ranks = f", {group.world} ranks" if group is not None else ""
            say(f"mapping {loaded.label} ({'x'.join(map(str, energy.shape))}, box [{low:g}, {high:g}], "
                f"{energy.device}{ranks})")
            writer = held_by(loaded.source["path"]) if loaded.source.get("kind") == "checkpoint" else None
            if writer is not None:
                say(f"  {loaded.source['path']} is being written by another run ({writer}): mapping its state at "
                    f"update {(loaded.checkpoint or {}).get('step')}")
            if loaded.source.get("kind") == "model" and loaded.source.get("weights") is None:
                say(f"  no --weights given: {loaded.source.get('spec')} keeps the weights its factory gave it")
        bars = ProgressBars(quiet)
        t0 = time.perf_counter()
        try:
            result = build_map(
                energy, config, data=data, progress_file=out, resume=resume, reporter=bars,
                source_id=_source_id(loaded.source),
            )
        except KeyboardInterrupt:
            bars.close()
            if not main:  # (rank 0 may be gone: killed, its node lost; what it kept is what to go on from)
                _stderr(f"rank {group.rank} interrupted: the progress rank 0 kept in {progress_path(out)} (on its "
                        "machine) continues with --resume")
                raise
            if progress_path(out).exists():
                _stderr(f"interrupted: progress kept in {progress_path(out)}; rerun with --resume to continue")
            else:
                _stderr("interrupted before the first stage finished: nothing kept")
            raise
        finally:
            bars.close()
        source = dict(loaded.source)
        source.update({"label": loaded.label, "regime": loaded.regime, "dataset": dataset})
        content = result.content
        content.attrs["minima"]["dataset"] = dataset or ""
        if not main:
            return content, time.perf_counter() - t0
        with signals_deferred():  # (the map written and its progress cleared together)
            try:
                # (over any file: _may_write_map has applied --force's rule)
                result.write(out, source=source, overwrite=True)
            except LandscapeError as err:
                if not progress_path(out).exists():
                    raise
                raise LandscapeError(
                    f"{err}; the finished stages are kept in {progress_path(out)}: rerun with --resume"
                ) from None
            clear_progress(out)
            clear_progress(out, FUNNEL_PROGRESS)  # (a probe of the map this one replaced)
        return content, time.perf_counter() - t0


def map_checkpoint(ckpt: Path, out: Path | None = None, *, config: Any = None, device: str = "auto",
                   data_root: Path | None = None, force: bool = False, quiet: bool = False,
                   say: Callable[[str], None] = print) -> tuple[Any, float]:
    """Map the checkpoint ``ckpt`` with ``config`` (default: every setting chosen, as
    ``landscape map ckpt`` does) into ``out`` (default: ``<stem>.h5`` beside it), with its
    own data set for chains from data; unfinished progress of the same settings is
    continued, a finished map of them kept (:func:`run_map` with ``resume``, or ``force``)."""
    from landscape.mapping.settings import MapConfig
    from landscape.train.energies import resolve_energy

    loaded = resolve_energy(ckpt, device=device)
    config = config if config is not None else MapConfig()
    data, dataset = map_data(loaded, config, data_root=data_root)
    return run_map(loaded, config, out if out is not None else ckpt.with_suffix(".h5"), data=data, dataset=dataset,
                   resume=not force, force=force, quiet=quiet, say=say)


def _source_id(source: dict[str, Any]) -> str:
    """What identifies a map's energy in its progress and record: the file's sha256, else
    the function's spec."""
    return str(source.get("sha256", source.get("spec", "")))


def _may_write_map(loaded: LoadedEnergy, config: Any, out: Path, *, resume: bool, force: bool) -> bool:
    """Whether ``run_map`` goes on: False for ``--resume`` over a map already finished
    with these settings; a LandscapeError when it would replace a map it must not."""
    from landscape.io.files import refuse_overwriting_input
    from landscape.io.progress import clear_progress, progress_path

    refuse_overwriting_input(out, [loaded.source.get("path"), loaded.source.get("weights")],
                             "the model file it maps")
    if force:
        clear_progress(out)
        return True
    if not out.exists() or (resume and progress_path(out).exists()):
        return True
    if not resume:
        raise LandscapeError(f"{out} exists: pass --force to overwrite it")
    from landscape.io.files import to_json
    from landscape.io.mapfile import read_map

    meta = read_map(out).meta
    recorded = meta.source if isinstance(meta.source, dict) else {}
    same = (to_json(meta.config) == to_json(config.to_dict())
            and _source_id(recorded) == _source_id(loaded.source))
    if not same:
        raise LandscapeError(
            f"{out} is a finished map of other settings or another energy, and there is no unfinished run to "
            "resume: pass --force to replace it, or --out to write elsewhere"
        )
    return False


# ------------------------------------------------------------------------- funnel


# The noise levels in units of --noise-unit, as the option takes them.
DEFAULT_NOISE = ",".join(f"{t:g}" for t in FUNNEL_NOISE)


def locate(target: Path, map_option: Path | None) -> tuple[Path, Path | None]:
    """(map, model file or None) for a TARGET that is a map or a model file."""
    from landscape.io.mapfile import is_map_file
    from landscape.train.energies import map_of

    if not target.exists():
        raise LandscapeError(f"{target}: no such file")
    if is_map_file(target):
        if map_option is not None:
            raise LandscapeError(f"{target} is a map already: drop --map, or give the model file as TARGET")
        return target, None
    map_path = map_option or map_of(target)
    if map_path is None:
        raise LandscapeError(
            f"no map of {target} found ({target.with_suffix('.h5')} or ./{target.stem}.h5): "
            f"run landscape map {target} first, or give --map MAP.h5"
        )
    return map_path, target


@dataclass
class FunnelRun:
    """What :func:`run_funnel` did: the map probed (as written), the result, the figure."""

    map_path: Path
    content: Any
    result: Any
    plot: Path
    seconds: float
    dropped_diagnosis: bool
    #: False where there was nothing to do (--resume over a finished probe): nothing written.
    written: bool = True


def run_funnel(
    target: Path,
    *,
    map_option: Path | None = None,
    noise: str = DEFAULT_NOISE,
    noise_unit: str = "auto",
    chains: int = 100,
    steps: int | None = None,
    eps: float | None = None,
    init: str | None = None,
    dataset: str | None = None,
    data_root: Path | None = None,
    plot: Path | None = None,
    refine: bool = True,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    force: bool = False,
    quiet: bool = False,
    say: Callable[[str], None] = print,
    energy: str | None = None,
    network: str | None = None,
    weights: Path | None = None,
    compile: bool = False,
) -> FunnelRun:
    """The funnel probe of ``target`` (a map, or a model file and its map) with the
    command's defaults; writes /funnel (and any new minima) into the map and the figure.
    ``energy``, ``network`` and ``weights`` name the code of a map of a Python energy
    (:func:`landscape.train.energies.energy_for_map`: a map's record never runs code);
    ``compile`` runs the chains' steps compiled (:mod:`landscape.fused`).

    Ctrl-C keeps the finished noise levels and exits with status 130.
    """
    from landscape.train.energies import check_map_matches, energy_for_map, load_data_like
    from landscape.plots.common import check_picture_path
    from landscape.plots.funnel import plot_funnel
    from landscape.mapping.funnel import PROGRESS_KIND, FunnelResult, funnel_probe
    from landscape.io.mapfile import read_map, rewrite_map, update_map
    from landscape.io.progress import clear_progress, progress_path
    from landscape.io.files import output_lock, signals_deferred
    from landscape.io.views import probe_config

    map_path, model = locate(target, map_option)
    # the whole probe holds the map; it is validated and probed first, written last
    with output_lock(map_path, progress_path(map_path, PROGRESS_KIND)):
        content = read_map(map_path)
        if model is not None:
            check_map_matches(map_path, content, model)
        plot = plot or map_path.with_name(map_path.stem + "_funnel.png")
        check_picture_path(plot)
        if not force and not resume:
            if progress_path(map_path, PROGRESS_KIND).exists():
                raise LandscapeError(f"{map_path} has an unfinished funnel probe (its progress in "
                                     f"{progress_path(map_path, PROGRESS_KIND).name}): pass --resume to continue it, "
                                     "or --force to start afresh")
            if content.funnel is not None:
                raise LandscapeError(f"{map_path} has a funnel probe already: pass --force to replace it")
            if plot.exists():
                raise LandscapeError(f"{plot} exists: pass --force to overwrite it")
        finished = resume and not force and content.funnel is not None and not progress_path(
            map_path, PROGRESS_KIND).exists()
        if force:
            clear_progress(map_path, PROGRESS_KIND)
        loaded = energy_for_map(map_path, content, model=model, energy=energy, network=network, weights=weights,
                                device=device)
        loaded.energy.compile = compile

        probe, from_data, about = _funnel_plan(content, loaded, noise=noise, noise_unit_option=noise_unit,
                                               chains=chains, steps=steps, eps=eps, init=init, dataset=dataset,
                                               seed=seed)
        if finished:  # --resume over a finished probe: nothing left of the same one, never replace another
            if probe_config(content.funnel) != json.loads(json.dumps(probe.to_dict())):
                raise LandscapeError(f"{map_path} has a finished funnel probe of other settings and no unfinished one "
                                     "to resume: pass --force to replace it")
            if not quiet:
                say(f"{map_path}: its funnel probe of these settings is finished: nothing to resume")
            attrs = content.funnel.attrs
            done = FunnelResult(content, content.funnel, int(attrs.get("new_minima", 0)),
                                int(attrs.get("new_basins", 0)))
            return FunnelRun(map_path, content, done, plot, 0.0, False, written=False)
        data = None if from_data is None else load_data_like(from_data, data_root, loaded.energy.shape,
                                                              loaded.data_limit(from_data, 10000),
                                                              loaded.energy.data_range)
        if not quiet:
            say(f"funnel probe of {map_path} ({loaded.label}): {about}")
        bars = ProgressBars(quiet)
        t0 = time.perf_counter()
        try:
            result = funnel_probe(loaded.energy, content, probe, data=data, progress_file=map_path, resume=resume,
                                  reporter=bars, refine=refine and bool(content.settings().get("refine", True)))
        except KeyboardInterrupt:
            bars.close()
            if progress_path(map_path, PROGRESS_KIND).exists():
                _stderr(f"interrupted: progress kept in {progress_path(map_path, PROGRESS_KIND)}; "
                        "rerun with --resume to continue")
            else:
                _stderr("interrupted before the first noise level finished: nothing kept")
            raise
        finally:
            bars.close()
        # (a diagnosis takes its funnel sinks, and its minima, from the probe it was made after)
        dropped = content.diagnosis is not None
        with signals_deferred():  # (the figure and the map together: a signal waits for both)
            plot_funnel(result.content, plot)
            if result.new_minima:
                rewrite_map(map_path, result.content)
            else:
                update_map(map_path, funnel=result.funnel, drop_diagnosis=dropped)
            clear_progress(map_path, PROGRESS_KIND)
        written = read_map(map_path)
        return FunnelRun(map_path, written, result, plot, time.perf_counter() - t0, dropped)


def _funnel_plan(
    content: Any,
    loaded: Any,
    *,
    noise: str,
    noise_unit_option: str,
    chains: int,
    steps: int | None,
    eps: float | None,
    init: str | None,
    dataset: str | None,
    seed: int,
) -> tuple[Any, str | None, str]:
    """The probe's settings from the command's options and what the map records: the
    :class:`FunnelConfig`, the data set its chains from data start from (None when they
    start from noise only; loaded by the caller, once it knows the probe runs), and the
    settings in words."""
    from landscape.io.views import map_dataset
    from landscape.mapping.funnel import funnel_config, noise_unit

    unit, unit_why = (noise_unit(content, loaded.sampler) if noise_unit_option.strip().lower() == "auto"
                      else (parse_float(noise_unit_option, "--noise-unit", positive=True, auto=True), "given"))
    dataset = dataset or map_dataset(content) or loaded.dataset
    init = init or ("both" if dataset else "noise")
    if init in ("both", "data") and not dataset:
        raise LandscapeError(f"--init {init} needs a data set: give --dataset (or --init noise)")
    probe = funnel_config(content, noise=parse_floats(noise, "--noise"), unit=unit, unit_source=unit_why,
                          chains=chains, steps=steps, eps=eps, init=init, seed=seed)
    levels, eps, steps = probe.noise, probe.eps, probe.steps
    about = (f"noise {', '.join(f'{t:.3g}' for t in levels)} (unit {unit:.3g}: {unit_why}), eps {eps:.3g}, "
             f"{steps} steps, {chains} chains per start from {init}")
    return probe, dataset if init in ("both", "data") else None, about


def funnel_summary(map_path: Path, f, result, plot: Path, wall: float, *, diagnosis_removed: bool = False) -> dict:
    """A funnel probe as plain data (``landscape funnel --json``; ``diagnosis_removed``: the
    probe added minima, so the map's diagnosis, of the old ones only, went): ``verdict`` is one of
    :data:`landscape.io.views.FUNNEL_VERDICTS` and ``funnel`` true, false or null (where the
    probe cannot tell: too few chains, or an undefined score); ``sinks`` per level leaves out
    basins that tie at the cut with basins not taken, ``sink_ties`` says so (null, or the
    number of tied basins and their share)."""
    import numpy as np

    from landscape.io.views import clear_sinks, funnel_verdict, is_funnel, probe_config

    score = f.score if math.isfinite(f.score) else None
    verdict = funnel_verdict(f)
    config = probe_config(f)
    sinks = [clear_sinks(row, listed) for row, listed in zip(f.occupancy, f.sinks)]
    return {
        "map": str(map_path),
        "seed": config.get("seed"),
        "chains": config.get("chains"),
        "chains_per_level": None if f.attrs.get("chains_per_level") is None else int(f.attrs["chains_per_level"]),
        "noise": f.noise.tolist(),
        "noise_unit": f.attrs.get("noise_unit"),
        "noise_unit_source": f.attrs.get("noise_unit_source"),
        "entropy": f.entropy.tolist(),
        "effective_basins": np.exp(f.entropy).tolist(),
        "reference_entropy": f.attrs.get("reference_entropy"),
        "score": score,
        "verdict": verdict,
        "funnel": is_funnel(verdict),
        "sinks": [clear for clear, _ in sinks],
        "sink_ties": [None if tie is None else {"basins": tie[0], "share": tie[1]} for _, tie in sinks],
        "new_minima": result.new_minima,
        "new_basins": result.new_basins,
        "diagnosis_removed": bool(diagnosis_removed),
        "figure": str(plot),
        "seconds": wall,
    }


# ---------------------------------------------------------------------- diagnose


@dataclass
class DiagnoseRun:
    """What :func:`run_diagnose` did: the map as written, the diagnosis, the data set, the report."""

    content: Any
    diagnosis: Any
    dataset: str
    report: Path


def run_diagnose(
    map_path: Path,
    *,
    dataset: str | None = None,
    data_root: Path | None = None,
    limit: int = 10000,
    model: Path | None = None,
    report: Path | None = None,
    nn_quantile: float = 0.99,
    nn_factor: float = 1.5,
    energy_quantile: float = 0.5,
    saturation_excess: float = 0.5,
    funnel_score: float = 0.5,
    device: str = "auto",
    force: bool = False,
    energy: str | None = None,
    network: str | None = None,
    weights: Path | None = None,
    quiet: bool = False,
) -> DiagnoseRun:
    """Diagnose the map at ``map_path`` with the command's defaults; write /diagnosis into
    it and the HTML report. ``energy``, ``network`` and ``weights`` name the code of a map of
    a Python energy (a map's record never runs code). Holds the map's lock throughout:
    validates, diagnoses, writes the report, and writes /diagnosis into the map last (a
    failure before leaves it as it was). A progress bar per stage unless ``quiet``."""
    import dataclasses
    import tempfile

    import numpy as np

    from landscape.data import canonical_name
    from landscape.train.energies import energy_for_map, load_data_like
    from landscape.io.files import output_lock, refuse_overwriting_input, signals_deferred
    from landscape.io.views import map_dataset
    from landscape.plots.funnel import plot_funnel
    from landscape.diagnosis.spurious import DiagnosisRule, diagnose_map
    from landscape.io.mapfile import read_map, update_map
    from landscape.diagnosis.report import write_report

    with output_lock(map_path):
        content = read_map(map_path)
        report = report or map_path.with_name(map_path.stem + "_diagnosis.html")
        refuse_overwriting_input(report, [map_path], "the map it diagnoses")
        refuse_overwriting_input(report, [model], "the model file")
        if report.exists() and not force:
            raise LandscapeError(f"{report} exists: pass --force to overwrite it")
        rule = DiagnosisRule(nn_quantile=nn_quantile, nn_factor=nn_factor, energy_quantile=energy_quantile,
                             saturation_excess=saturation_excess, funnel_score=funnel_score)
        loaded = energy_for_map(map_path, content, model=model, energy=energy, network=network, weights=weights,
                                device=device)
        dataset = dataset or map_dataset(content) or loaded.dataset
        dataset = canonical_name(dataset) if dataset else dataset  # (recorded in the diagnosis)
        if not dataset:
            raise LandscapeError(
                f"{map_path} records no data set: give the training data with --dataset NAME (npz:FILE for your own)"
            )
        data_x = load_data_like(dataset, data_root, tuple(np.shape(content.minima_x)[1:]),
                                loaded.data_limit(dataset, limit), loaded.energy.data_range)
        diagnosis = diagnose_map(loaded.energy, content, data_x, rule, reporter=ProgressBars(quiet))
        data = diagnosis.to_data(dataset)
        diagnosed = dataclasses.replace(content, diagnosis=data)
        with tempfile.TemporaryDirectory(prefix="ebm-landscape-") as tmp:
            extra = []
            if diagnosed.funnel is not None:
                extra.append(("The funnel probe (landscape funnel): where chains end as the noise grows",
                              plot_funnel(diagnosed, Path(tmp) / "funnel.png")))
            with signals_deferred():  # (the report and the map together: a signal waits for both)
                write_report(report, diagnosed, diagnosis, data_x.numpy(), extra_figures=extra)
                update_map(map_path, diagnosis=data)
        return DiagnoseRun(read_map(map_path), diagnosis, dataset, report)


# ----------------------------------------------------------------------- compare


@dataclass
class Side:
    """One side of the comparison: what was given and what was found for it."""

    given: Path
    kind: str  # "checkpoint" | "map"
    checkpoint: Path | None
    map_path: Path | None
    content: Any  # MapContent or None
    regime: str
    source: str  # the "source" cell
    no_map: str  # the text of map-based cells when there is no map
    name: str = ""


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def _strip_path(message: str, path: Path) -> str:
    """A checkpoint loader's message without its leading ``<path>: ``."""
    prefix = f"{path}: "
    return message[len(prefix):] if message.startswith(prefix) else message


def _side(path: Path) -> Side:
    """Classify ``path`` (checkpoint or map) and find its partner file.

    Raises LandscapeError (one line) for a missing file, a folder, a file that is neither,
    or a map that does not read.
    """
    from landscape.io.mapfile import is_map_file
    from landscape.train.energies import map_of, source_model_file
    from landscape.errors import LandscapeError
    from landscape.io.mapfile import read_map
    from landscape.io.views import recorded_sha256
    from landscape.train.checkpoint import load_checkpoint, sha256_of

    if not path.exists():
        raise LandscapeError(f"{path}: no such file")
    if path.is_dir():
        raise LandscapeError(f"{path}: is a directory, expected a checkpoint (.pt) or a map (.h5)")
    if is_map_file(path):
        content = read_map(path)
        source = content.meta.source if content.meta is not None else None
        recorded = source if isinstance(source, dict) else {}
        model = source_model_file(path, content)
        ckpt = None
        if model is not None and recorded.get("kind") == "checkpoint":
            ckpt = load_checkpoint(model)
            text = f"map {path} of checkpoint {model}"
        elif recorded.get("kind") == "checkpoint":
            from landscape.io.views import recorded_model

            model = None
            state = recorded_model(path, content)
            how = {"changed": "changed since the map was made (another sha256)",
                   "elsewhere": "found only outside the current folder and the map's",
                   }.get(state[0] if state else "", "not found")
            text = f"map {path} (its checkpoint {recorded.get('path')} is {how})"
        else:
            model = None  # a TorchScript file or state dict cannot run our convergence check
            from landscape.io.views import describe_source

            text = f"map {path} of {describe_source(content)}"
        regime = str(ckpt.get("regime", "unknown")) if ckpt is not None else str(recorded.get("regime") or "unknown")
        return Side(path, "map", model, path, content, regime, text, "no map")
    try:
        ckpt = load_checkpoint(path)
    except LandscapeError as err:
        raise LandscapeError(
            f"{path} is neither an ebm-landscape checkpoint nor a map: {_strip_path(str(err), path)}"
        ) from None
    regime = str(ckpt.get("regime", "unknown"))
    map_path = map_of(path)
    if map_path is None:
        hint = f"no map (run: landscape map {path})"
        return Side(path, "checkpoint", path, None, None, regime, f"checkpoint {path}, {hint}", hint)
    content = read_map(map_path)
    recorded = recorded_sha256(content)
    if recorded and recorded != sha256_of(path):
        # A map left over from an earlier model of the same name says nothing about this one.
        hint = f"no map of this checkpoint ({map_path} is of another model; run: landscape map {path} --force)"
        return Side(path, "checkpoint", path, None, None, regime, f"checkpoint {path}, {hint}", hint)
    return Side(path, "checkpoint", path, map_path, content, regime, f"checkpoint {path}, map {map_path}", "no map")


def _label(path: Path, other: Path) -> str:
    """The file stem, or folder/stem when both sides share a stem."""
    if path.stem != other.stem:
        return path.stem
    folder, other_folder = (p.resolve().parent.name for p in (path, other))  # ("c.pt" has a folder too)
    return f"{folder}/{path.stem}" if folder != other_folder else path.stem


def _file_part(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name).strip("_") or "model"


@dataclass
class CompareRun:
    """What :func:`run_compare` found: both sides, their profiles and checks, the table rows,
    the closing lines and the figure written (or, at its default name, kept)."""

    sides: list[Side]
    labels: tuple[str, str]
    profiles: list[Any]
    results: list[Any]
    verdicts: list[str | None]
    rows: list[tuple[str, str, str]]
    summary: list[str]
    out: Path
    identical: bool = False  # the two maps hold the same datasets
    caveats: list[str] = field(default_factory=list)  # what the comparison cannot tell
    kept: bool = False  # ``out`` at its default name was there already: kept, not redrawn


def run_compare(
    a: Path,
    b: Path,
    *,
    out: Path | None = None,
    force: bool = False,
    check: bool = True,
    chains: int = CHECK_CHAINS,
    multiples: tuple[float, ...] = CHECK_MULTIPLES,
    device: str = "auto",
    names: tuple[str, str] | None = None,
    seed: int = 0,
    quiet: bool = False,
    checks: dict[Path, Any] | None = None,
) -> CompareRun:
    """Compare ``a`` and ``b`` as the command does and draw the figure. ``checks`` maps a
    checkpoint path to a convergence check already run on it (reused instead of
    running it again). A figure at the default name that exists (an earlier compare's, the
    demo's) is kept, not redrawn, unless ``force``: the table and the verdicts are what a
    rerun is for; one named by ``out`` that exists is an error."""
    from landscape.diagnosis.compare import caveats, compare_profiles, identical_maps, map_profile, summarize
    from landscape.errors import LandscapeError
    from landscape.io.files import pictures_kept
    from landscape.plots.common import check_picture_path
    from landscape.plots.compare import plot_comparison

    for path in (a, b):
        if not path.exists():
            raise LandscapeError(f"{path}: no such file")
    if _same_file(a, b):
        raise LandscapeError(f"A and B are the same file ({a}): give two different checkpoints or maps")
    sides = [_side(a), _side(b)]
    ma, mb = sides[0].map_path, sides[1].map_path
    if ma is not None and mb is not None and _same_file(ma, mb):
        raise LandscapeError(f"A and B have the same map ({ma}): nothing to compare")
    labels = names or (_label(a, b), _label(b, a))
    if labels[0] == labels[1]:
        labels = (f"{labels[0]} (A)", f"{labels[1]} (B)")
    for side, label in zip(sides, labels):
        side.name = label
    named = out is not None
    out = check_picture_path(out or Path(f"compare_{_file_part(labels[0])}_vs_{_file_part(labels[1])}.png"))
    kept = bool(pictures_kept([out], named=named, force=force))

    results: list[Any] = [None, None]
    if check:
        known = {Path(k).resolve(): v for k, v in (checks or {}).items()}
        results = [
            known.get(side.checkpoint.resolve()) if side.checkpoint is not None and side.checkpoint.resolve() in known
            else _check(side, chains, multiples, device, seed, quiet)
            for side in sides
        ]

    profiles = [None if s.content is None else map_profile(s.content) for s in sides]
    rows = _head_rows(sides, results, check)
    rows += compare_profiles(profiles[0], profiles[1], missing=(sides[0].no_map, sides[1].no_map))
    verdicts = [r.verdict if r is not None else None for r in results]
    identical = ma is not None and mb is not None and identical_maps(ma, mb)
    summary = summarize(profiles[0], profiles[1], labels, verdicts, identical=identical)

    samples, notes = {}, {}
    for side, result in zip(sides, results):
        if result is not None and "data" in result.samples:
            _, end, steps = result.samples["data"]
            samples[side.name] = end.detach().cpu().numpy()
            notes[side.name] = f"long-run samples from data after {steps} steps ({steps / result.L:g}L)"
    if not kept:
        plot_comparison(sides[0].content, sides[1].content, labels, out, samples=samples, sample_notes=notes)
    cautions = caveats(sides[0].content, sides[1].content, labels, identical=identical)
    return CompareRun(sides, tuple(labels), profiles, results, verdicts, rows, summary, out, identical, cautions, kept)


def _check(side: Side, chains: int, multiples: tuple[float, ...], device: str, seed: int, quiet: bool) -> Any:
    """The long-run convergence check of the side's checkpoint, or None without one."""
    if side.checkpoint is None:
        return None
    import torch

    from landscape.train.check import convergence_check
    from landscape.train.checkpoint import load_checkpoint

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    steps = max(1, round(max(multiples) * int(load_checkpoint(side.checkpoint)["sampler"]["steps"])))
    bars = []

    def progress(k: int) -> None:
        if not bars:
            from landscape.io.bars import progress_bar

            bars.append(progress_bar(total=2 * steps, desc=f"check {side.name}", unit="step"))
        bars[0].update(k)

    try:
        return convergence_check(side.checkpoint, multiples=multiples, n_chains=chains, device=device, seed=seed,
                                 progress=None if quiet else progress)
    finally:
        for bar in bars:
            bar.close()


def _head_rows(sides: list[Side], results: list[Any], check: bool) -> list[tuple[str, str, str]]:
    def verdict(side: Side, result: Any) -> str:
        if result is not None:
            agrees = "" if result.agreement == "regime unknown" else f" ({result.agreement} with the regime)"
            return f"{result.verdict}{agrees}"
        if side.checkpoint is None:
            return "no checkpoint to check"
        return "not run (--no-check)" if not check else "not run"

    rows = [
        ("source", sides[0].source, sides[1].source),
        ("trained regime", sides[0].regime, sides[1].regime),
        ("check verdict", verdict(sides[0], results[0]), verdict(sides[1], results[1])),
    ]
    if any(r is not None for r in results):
        rows.append(("check evidence", *(r.explanation if r is not None else "-" for r in results)))
    return rows
