"""The noise-level funnel probe: where do chains end as the sampling noise grows?

At test time, more noise lets Langevin chains escape shallow minima, so they end in deeper
ones. On a landscape shaped like a funnel, enough noise sends every chain into the same
basin whatever its start (the CD-versus-ML seed, §6.2: at high noise its chains all ended
on the same digit, a 9, from every initialisation); on a landscape whose basins are balanced, the
chains stay spread over them. :func:`funnel_probe` measures this on a map:

1. for each noise level ``tau`` of a ladder (``x <- x - eps^2/2 dU/dx + tau eps z``, the
   training step ``eps``), chains from training data and from uniform noise in the data
   box run ``steps`` steps and are quenched to the local minimum below them (``tau = 0``:
   the starts are quenched directly, which is where the data themselves lie);
2. each end point is assigned a minimum of the map: the nearest one within the map's
   merge radius, else a new minimum (end points within the radius of each other merge);
   new minima are mapped into the map by attraction-diffusion with the map's own settings
   (:func:`landscape.mapping.pipeline.extend_map`), so every chain ends in a basin of the map;
3. per level: the occupancy (share of chains ending in each basin of the map's main level), its
   entropy ``H`` (nats), and the sinks (the fullest basins, taken until they hold half
   the chains).

The **funnel score** is ``1 - min_k H_k / H_ref`` over the levels above the lowest, clipped
to [0, 1], where ``H_ref`` is the entropy of the data's own basins (the chains from data at
the lowest noise; without data, all chains at the lowest noise): 0 when no noise level
concentrates the chains more than the data are, 1 when some level sends every chain into
one basin. A score of at least 0.5 is called a funnel:
the effective number of occupied basins ``exp(H)`` has fallen to its square root or less.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape import checks
from landscape.energy import Energy, check_gives_back, runs_frozen, stage
from landscape.errors import LandscapeError
from landscape.sampling.langevin import sample
from landscape.io.mapfile import FunnelData, MapContent
from landscape.io.progress import FINISHED, resume_progress, save_progress
from landscape.mapping.pipeline import EXTENDING, NEAR_CHECKED, NamedStages, Reporter, extend_map, time_spent
from landscape.mapping.settings import MapConfig
from landscape.mapping.pipeline import describe_progress as describe_progress_of_map
from landscape.mapping.pipeline import progress_arrays as pipeline_progress_arrays
from landscape.mapping.minima import (
    Minima, QuenchResult, barrier_between, describe_stops, energy_tie, merge_duplicates, quench,
)
from landscape.mapping.neighbors import nearest
from landscape.io.records import FUNNEL_SCORE, MIN_REFERENCE_BASINS  # (a score at or above it is called a funnel)
from landscape.io.views import quench_settings

#: Sinks: the fullest basins of a level, taken until they hold this share of its chains.
SINK_SHARE = 0.5
PROGRESS_KIND = "funnel"


@dataclass(frozen=True)
class FunnelConfig:
    """Settings of a funnel probe (plain data: stored in ``/funnel`` attrs as JSON).

    Attributes
    ----------
    noise : tuple of float
        Noise levels ``tau``, ascending, >= 0 (``0``: the starts are quenched directly).
    eps : float
        Langevin step size (the training one for a checkpoint).
    steps : int
        Langevin steps per chain before the quench.
    chains : int
        Chains per start and level.
    init : str
        ``"both"`` (from data and from noise), ``"data"`` or ``"noise"``.
    quench_steps, grad_tol : descent settings of the quench (as for the map).
    merge_radius : float
        End points within this distance of a map minimum, with no barrier between, end in
        it; new end points closer than this to each other, with no barrier between, are one
        minimum.
    max_sinks : int
        Sinks recorded per level at most.
    seed : int
    noise_unit : float, optional
        The unit ``noise`` was given in (:func:`noise_unit`, or ``--noise-unit``), and
    noise_unit_source : str, optional
        where it came from, in words: what the probe records (``/funnel`` attrs of their
        own) so that its figure can say it. Not settings of the chains: left out
        of :meth:`to_dict` (the stored ``config``) and of the fingerprint a resumed probe is
        matched by.
    """

    noise: tuple[float, ...]
    eps: float
    steps: int
    merge_radius: float
    chains: int = 100
    init: str = "both"
    quench_steps: int = 2000
    grad_tol: float = 1e-3
    max_sinks: int = 5
    seed: int = 0
    noise_unit: float | None = None
    noise_unit_source: str | None = None

    def __post_init__(self) -> None:
        checks.typed_fields(self, "funnel config")
        rules = [
            (len(self.noise) >= 2, "needs at least two noise levels"),
            (all(math.isfinite(t) and t >= 0 for t in self.noise), "noise levels must be finite and >= 0"),
            (list(self.noise) == sorted(set(self.noise)), "noise levels must increase"),
            (self.eps > 0 and math.isfinite(self.eps), "eps must be > 0"),
            (self.steps >= 0 and self.quench_steps >= 1, "steps must be >= 0 and quench_steps >= 1"),
            (self.chains >= 1, "chains must be >= 1"),
            (self.init in ("both", "data", "noise"), "init must be both, data or noise"),
            (self.merge_radius >= 0, "merge_radius must be >= 0"),
            (self.grad_tol > 0, "grad_tol must be > 0"),
            (self.max_sinks >= 1, "max_sinks must be >= 1"),
            (self.noise_unit is None or (math.isfinite(self.noise_unit) and self.noise_unit > 0),
             "noise_unit must be > 0"),
        ]
        for ok, message in rules:
            if not ok:
                raise LandscapeError(f"funnel config: {message}")

    @property
    def starts(self) -> tuple[str, ...]:
        return {"both": ("data", "noise"), "data": ("data",), "noise": ("noise",)}[self.init]

    def to_dict(self) -> dict[str, Any]:
        """The settings of the chains, as stored (``/funnel`` attr ``config``): not the noise
        unit, which the probe records apart."""
        d = asdict(self)
        d["noise"] = list(self.noise)
        del d["noise_unit"], d["noise_unit_source"]
        return d

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


#: The noise ladder's default levels, in units of :func:`noise_unit`: 0 quenches the starts
#: themselves (where the data lie), then up to 8x the training noise (64x its temperature).
DEFAULT_NOISE = (0.0, 1.0, 2.0, 4.0, 8.0)
#: Langevin steps per chain where the map ran none (explored at temperature 0).
DEFAULT_STEPS = 1000


def noise_unit(content: MapContent, sampler: Mapping[str, Any] | None = None) -> tuple[float, str]:
    """The unit of the noise ladder, and where it comes from, in words: the training tau
    of a checkpoint (its ``sampler``); else the map's exploration noise sqrt(T); else
    sqrt(T_AD) (as chosen from the barriers, before any lowering for arrival in many
    dimensions: :func:`landscape.mapping.settings.ad_settings`); else 1."""
    tau = (sampler or {}).get("tau")
    if isinstance(tau, (int, float)) and tau > 0:
        return float(tau), "the checkpoint's training tau"
    settings = content.settings()
    t = settings.get("temperature")
    if isinstance(t, (int, float)) and t > 0:
        return math.sqrt(float(t)), f"sqrt of the map's exploration temperature {float(t):.4g}"
    explored = "; the map explored at T = 0" if isinstance(t, (int, float)) else ""
    lowered = settings.get("ad_temperature_lowered")
    for t_ad in (settings.get("ad_temperature"), content.attrs.get("levels", {}).get("temperature")):
        if isinstance(t_ad, (int, float)) and t_ad > 0:
            if isinstance(lowered, (int, float)) and lowered > 1:
                # (T_AD 1/20 of the lowest barrier, before attraction-diffusion lowered it so
                # that its chains could arrive: the barriers, not the dimension, set the noise)
                return (math.sqrt(float(t_ad) * float(lowered)),
                        f"sqrt of the map's attraction-diffusion temperature before it was lowered, "
                        f"{float(t_ad):.4g} x {float(lowered):.3g}{explored}")
            return (math.sqrt(float(t_ad)),
                    f"sqrt of the map's attraction-diffusion temperature {float(t_ad):.4g}{explored}")
    return 1.0, "the map records no temperature"


def funnel_config(
    content: MapContent,
    *,
    sampler: Mapping[str, Any] | None = None,
    noise: Sequence[float] = DEFAULT_NOISE,
    unit: float | None = None,
    unit_source: str | None = None,
    chains: int = 100,
    steps: int | None = None,
    eps: float | None = None,
    init: str | None = None,
    with_data: bool = False,
    seed: int = 0,
) -> FunnelConfig:
    """The probe's settings for a map: the one policy ``landscape funnel`` uses.

    Parameters
    ----------
    content : MapContent
        The map (read from its file, or :func:`~landscape.mapping.pipeline.build_map`'s).
    sampler : dict, optional
        The checkpoint's sampler (:attr:`Energy.sampler`): its ``tau`` is the noise unit.
    noise : sequence of float
        Noise levels in units of ``unit`` (default :func:`noise_unit`), increasing.
    unit_source : str, optional
        Where a ``unit`` given came from, in words, for the probe to record [default: that
        of :func:`noise_unit` where ``unit`` is its value, else none].
    steps, eps : optional
        Langevin steps per chain and step size [default: the map's exploration settings;
        :data:`DEFAULT_STEPS` steps where the map ran none].
    init : str, optional
        Where chains start [default: ``"both"`` (data and noise) with ``with_data``, the
        training examples :func:`funnel_probe` will be given; else ``"noise"``].
    chains, seed :
        Chains per start and level; the seed.

    The merge radius, the quench's steps and its gradient tolerance are the map's.

    Raises
    ------
    LandscapeError
        The map records no Langevin step and ``eps`` is not given, or a setting out of range.
    """
    auto, auto_source = noise_unit(content, sampler)
    if unit is None:
        unit, unit_source = auto, auto_source
    else:
        unit = float(unit)
        if unit_source is None and math.isclose(unit, auto, rel_tol=1e-12):
            unit_source = auto_source
    settings = content.settings()
    eps = eps or float(settings.get("eps", 0) or 0) or None
    if eps is None:
        raise LandscapeError("the map records no Langevin step: give eps (--eps)")
    # A map explored at temperature 0 ran no Langevin steps: the probe's chains need some.
    steps = steps if steps is not None else (int(settings.get("steps") or 0) or DEFAULT_STEPS)
    radius, quench_steps, grad_tol = quench_settings(content)
    return FunnelConfig(
        noise=tuple(float(m) * unit for m in noise), eps=float(eps), steps=int(steps), merge_radius=radius,
        chains=int(chains), init=init or ("both" if with_data else "noise"), quench_steps=quench_steps,
        grad_tol=grad_tol, seed=int(seed), noise_unit=unit, noise_unit_source=unit_source,
    )


@dataclass
class FunnelResult:
    """What :func:`funnel_probe` returns.

    content : the map with the new minima mapped in and ``funnel`` set.
    funnel : the ``/funnel`` data (also ``content.funnel``).
    new_minima, new_basins : minima and main-level basins the probe added to the map.
    seconds : wall time per stage.
    """

    content: MapContent
    funnel: FunnelData
    new_minima: int
    new_basins: int
    seconds: dict[str, float] = field(default_factory=dict)


# ------------------------------------------------------------------------ statistics


def entropy(p: np.ndarray) -> float:
    """Entropy (nats) of a distribution given as shares (zeros ignored)."""
    p = np.asarray(p, dtype=np.float64)
    p = p[p > 0]
    if p.size == 0:
        return 0.0
    p = p / p.sum()
    return float(max(0.0, -(p * np.log(p)).sum()))


def funnel_score(entropies: Sequence[float], reference: float | None = None) -> float:
    """``1 - min(H[1:]) / H_ref`` clipped to [0, 1], ``H_ref`` the ``reference`` entropy
    (default ``H[0]``); NaN with one level, or where ``exp(H_ref)`` is under
    :data:`~landscape.io.records.MIN_REFERENCE_BASINS` (the chains already in about one
    basin at the lowest noise: nothing left to collapse).

    Examples
    --------
    >>> funnel_score([np.log(4), np.log(4), 0.0])
    1.0
    >>> funnel_score([np.log(4), np.log(4), np.log(4)])
    0.0
    """
    h = np.asarray(entropies, dtype=np.float64)
    ref = float(h[0]) if reference is None else float(reference)
    if h.size < 2 or not math.exp(ref) >= MIN_REFERENCE_BASINS:
        return math.nan
    return float(np.clip(1.0 - h[1:].min() / ref, 0.0, 1.0))


def sinks(occupancy: np.ndarray, max_sinks: int = 5, share: float = SINK_SHARE) -> list[int]:
    """The fullest basins, fullest first, taken until they hold ``share`` of the chains
    (at most ``max_sinks``; empty basins never)."""
    occ = np.asarray(occupancy, dtype=np.float64)
    order = np.argsort(-occ, kind="stable")
    out, total = [], 0.0
    for b in order[:max_sinks]:
        if occ[b] <= 0 or total >= share - 1e-12:
            break
        out.append(int(b))
        total += float(occ[b])
    return out


def collapse_level(funnel: FunnelData) -> int:
    """The level (above the lowest) where the occupancy is most concentrated (lowest
    entropy; of equals, the noisiest)."""
    h = np.asarray(funnel.entropy, dtype=np.float64)
    if h.size < 2:
        return 0
    rest = h[1:]
    return int(1 + np.flatnonzero(rest <= rest.min() + 1e-12).max())


def funnel_sinks(funnel: FunnelData, threshold: float = FUNNEL_SCORE) -> list[int]:
    """The sink basins of the collapse level when the score says funnel, else none; of
    those, only the ones no basin left out ties with (where the cut at half the chains
    falls inside a group of equal shares, which of them were listed is only their order:
    :func:`landscape.io.views.clear_sinks`)."""
    from landscape.io.views import UNDEFINED, clear_sinks, funnel_verdict

    if funnel_verdict(funnel) == UNDEFINED or funnel.score < threshold:
        return []  # (undefined: a NaN score, or a probe scored before it was, its chains in about one basin)
    k = collapse_level(funnel)
    listed = [int(b) for b in funnel.sinks[k] if b >= 0] if funnel.sinks is not None else sinks(funnel.occupancy[k])
    return clear_sinks(funnel.occupancy[k], listed)[0]


def describe(funnel: FunnelData) -> str:
    """One line, the verdict first: the score, what it means, where the chains collapse
    (:func:`landscape.io.views.describe_funnel`, what the commands print)."""
    from landscape.io.views import describe_funnel

    return describe_funnel(funnel)


# ------------------------------------------------------------------------- the probe

#: Map minima nearest an end point that :func:`_match` tries it against (within the merge
#: radius, with no barrier between): those extend_map checks new minima against.
MATCH_NEIGHBOURS = NEAR_CHECKED


def _match(
    energy: Energy, ends: torch.Tensor, end_energy: torch.Tensor, minima_x: torch.Tensor, minima_energy: np.ndarray,
    radius: float, tie: float = 0.0,
) -> tuple[np.ndarray, torch.Tensor, np.ndarray]:
    """Assign end points to map minima (the nearest within ``radius`` with no barrier
    between, of the :data:`MATCH_NEIGHBOURS` nearest) or to new minima (merged as by
    :func:`merge_duplicates`, energies within ``tie`` equal, no barrier between).

    Returns each end point's minimum (map minima keep their index; new ones are numbered
    from ``len(minima_x)`` in energy order), the new minima's indices into ``ends``, and
    how many end points each new minimum gathered.
    """
    n_map = minima_x.shape[0]
    k = min(MATCH_NEIGHBOURS, n_map)
    d, i = nearest(ends, minima_x.to(ends.device), k)
    dist, near = d.cpu().numpy(), i.cpu().numpy()
    owner = np.full(ends.shape[0], -1, dtype=np.int64)
    e_map = torch.as_tensor(np.asarray(minima_energy, dtype=np.float64))
    e_end = end_energy.double().cpu()
    magnitude = float(max(e_map.abs().max(), e_end.abs().max()))
    for j in range(k):  # (nearest first: an end joins the first with no barrier between)
        rows = np.flatnonzero((owner < 0) & (dist[:, j] <= radius))
        if not rows.size:
            continue
        m = torch.from_numpy(near[rows, j])
        walls = barrier_between(energy, ends[torch.from_numpy(rows).to(ends.device)], minima_x[m.to(minima_x.device)],
                                e_end[rows], e_map[m], magnitude, tie)
        owner[rows[~walls]] = near[rows[~walls], j]
    fresh = np.flatnonzero(owner < 0)
    keep = torch.zeros(0, dtype=torch.int64)
    counts = np.zeros(0, dtype=np.int64)
    if fresh.size:
        idx = torch.from_numpy(fresh)
        keep_local, assign = merge_duplicates(ends[idx.to(ends.device)], end_energy[idx].to(ends.device), radius,
                                             tie=tie, apart=energy)
        keep = idx[keep_local.cpu()]
        owner[fresh] = n_map + assign.cpu().numpy()
        counts = np.bincount(assign.cpu().numpy(), minlength=keep.numel())
    return owner, keep, counts


@stage("funnel probe")
@runs_frozen
def funnel_probe(
    energy: Energy,
    content: MapContent,
    config: FunnelConfig | None = None,
    *,
    data: torch.Tensor | None = None,
    progress_file: str | Path | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    refine: bool | None = None,
) -> FunnelResult:
    """Run the funnel probe on a map (see the module docstring).

    Parameters
    ----------
    energy : Energy
        The energy the map was made of (with its data range).
    content : MapContent
        The map (:func:`landscape.io.mapfile.read_map`, or
        :func:`~landscape.mapping.pipeline.build_map`'s content).
    config : FunnelConfig, optional
        [default: what ``landscape funnel`` runs: :func:`funnel_config` of the map, with the
        energy's sampler, and chains from ``data`` and from noise when data are given]
    data : Tensor or array [M, *shape], optional
        Training examples for the chains from data (needed unless ``init`` is "noise";
        refused with a config whose chains all start from noise, which would leave them
        unused: ``funnel_config(map, with_data=True)`` gives chains from both).
    progress_file : path, optional
        The map: the chains' end points are kept in ``<map>.funnel.partial`` after
        each level, and the mapping of the new minima part-way (between batches of
        strings, after its neighbour barriers, during and after its attraction-diffusion,
        after each pass of refinement), so ``resume=True`` continues an interrupted probe
        (Ctrl-C raises KeyboardInterrupt, the progress kept). The file stays when the
        probe is done (marked finished: ``resume=True`` gives the result back at once);
        remove it with ``landscape.clear_progress(map, "funnel")`` once the result is
        written, or to start afresh: without ``resume`` saved progress is an error.
    resume : bool
    reporter : Reporter, optional
    refine : bool, optional
        Refine the barriers of the tree edges that new minima bring (string method)
        [default: as the map was made]; see :func:`landscape.mapping.pipeline.extend_map`.

    Returns
    -------
    FunnelResult

    Raises
    ------
    LandscapeError
        Bad settings, no data for chains from data, data for a config without chains from
        data, data of the wrong shape, saved progress without ``resume``, progress from
        another probe.
    NonFiniteEnergyError
        From the chains, the quench or the mapping of new minima.

    Cost: ``len(noise) * chains * len(starts) * (steps + quench_steps)`` gradient
    evaluations at most, plus attraction-diffusion for each new minimum at every level of
    the map's ladder, and the strings of its barriers (in image space nearly every chain
    ends in a minimum of its own: on the demo's digits model 998 of 1,000 end points were
    new minima).
    """
    reporter = NamedStages(reporter or Reporter())
    if data is not None:
        data = energy.as_batch(data, "the training examples (data)")
    if config is None:
        config = funnel_config(content, sampler=energy.sampler, with_data=data is not None and data.shape[0] > 0)
    if not isinstance(config, FunnelConfig):
        raise TypeError(f"funnel_probe's config must be a FunnelConfig, got {type(config).__name__}: "
                        "funnel_config(map, ...) gives the command's")
    _check_inputs(energy, content, config, data)
    check_gives_back(energy, content)
    if content.meta is not None and isinstance(content.meta.config, dict):
        MapConfig.from_dict(content.meta.config)  # (what mapping new minima reads: refused now, not after the chains)
    identity = config.fingerprint() + ":" + f"{content.n_minima}:{float(np.sum(content.minima_energy)):.12g}"
    state = resume_progress(progress_file, identity, resume, kind=PROGRESS_KIND, what="funnel probe")
    _check_saved(state, energy, config)
    digest = _data_digest(data)
    if state.get("data", digest) != digest:  # (absent in progress of earlier versions: not checked)
        raise LandscapeError("the saved progress of the funnel probe was made with other data (another data set, or "
                             "other examples): resume with the data it started with, or start afresh (the command: "
                             "--force; from Python: clear_progress(map, 'funnel'))")
    state["data"] = digest
    if "levels_done" in state:
        reporter.note(f"resuming after {int(state['levels_done'])} of {len(config.noise)} noise levels")
    _note_noise_wider_than_the_box(energy, config, reporter)
    seconds: dict[str, float] = dict(state.get("seconds", {}))

    def save() -> None:
        if progress_file is not None:
            save_progress(progress_file, state, PROGRESS_KIND)

    for k in range(len(config.noise)):
        if f"level{k}/x" in state:
            continue
        t0 = time.perf_counter()
        q = _run_level(energy, config, k, data, reporter)
        state[f"level{k}/x"] = q.x.detach().cpu()
        state[f"level{k}/energy"] = q.energy.cpu()
        state["levels_done"] = k + 1
        seconds[f"chains_{k}"] = time.perf_counter() - t0
        state["seconds"] = seconds
        save()
        reporter.note(f"noise {config.noise[k]:.3g}: {q.x.shape[0]} chains quenched "
                      f"({describe_stops(q.stops(), config.quench_steps)})")

    # (the mapping's time before an interruption counts, as saved with its progress)
    t0 = time.perf_counter() - time_spent(state, EXTENDING)
    owner, extended, new_minima = _map_end_points(energy, content, config, state, save, reporter, refine)
    seconds["mapping"] = time.perf_counter() - t0
    funnel = _funnel_data(config, owner, extended, content, new_minima, seconds)
    extended.funnel = funnel
    if not state.get(FINISHED):  # (its progress, until the caller clears it, says the probe is finished)
        state[FINISHED] = True
        save()
    reporter.close()
    return FunnelResult(content=extended, funnel=funnel, new_minima=new_minima,
                        new_basins=int(extended.n_basins - content.n_basins), seconds=seconds)


def progress_arrays(name: str) -> bool:
    """Whether :func:`describe_progress` reads the array ``name`` of a probe's saved state
    (not the chains' end points, nor the mapping's paths)."""
    if name.startswith(EXTENDING):
        return pipeline_progress_arrays(name[len(EXTENDING):])
    return name.startswith("level") and name.endswith("/energy")


def describe_progress(state: dict[str, Any]) -> list[tuple[str, str]]:
    """What an unfinished probe's saved progress holds, as ``(heading, text)`` lines for
    ``landscape info`` (from :func:`~landscape.io.progress.load_progress` with
    ``arrays=progress_arrays``): the noise levels whose chains ended, and how far the
    mapping of the new minima among their end points got."""
    levels = int(state.get("levels_done", 0))
    chains = np.asarray(state.get("level0/energy", np.zeros(0))).size
    out = [("done", f"{levels} noise level{'' if levels == 1 else 's'} of chains run and quenched "
                    f"({chains:,} chains each)" if levels else "nothing yet (the first noise level's chains)")]
    if any(k.startswith(EXTENDING) for k in state):
        lines = dict(describe_progress_of_map(state, EXTENDING))
        if EXTENDING + "new" in state:
            n_old, m = (int(v) for v in state[EXTENDING + "new"])
            line = f"{m:,} new minima into the map of {n_old:,}: done: {lines['done']}"
        else:
            line = f"the new minima into the map: done: {lines['done']}"
        if "under way" in lines:
            line += f"; under way: {lines['under way']}"
        out.append(("mapping", line))
    return out


def _data_digest(data: torch.Tensor | None) -> str:
    """What the saved progress records of the data the chains start from: their sha256
    ("none" without data)."""
    if data is None:
        return "none"
    values = data.detach().to("cpu", torch.float64).contiguous().numpy()
    return hashlib.sha256(str(values.shape).encode() + values.tobytes()).hexdigest()


def _check_saved(state: dict[str, Any], energy: Energy, config: FunnelConfig) -> None:
    """Refuse a probe's saved progress that is damaged (one line): its noise levels' chains
    (the mapping of their new minima is checked by :func:`extend_map`)."""
    chains = len(config.starts) * config.chains
    try:
        done = checks.integer(None, "levels_done", state.get("levels_done", 0), minimum=0, maximum=len(config.noise))
        for k in range(len(config.noise)):
            if k >= done and f"level{k}/x" not in state:
                continue
            x, u = (np.asarray(state.get(f"level{k}/{name}", np.zeros(0))) for name in ("x", "energy"))
            if not (x.shape == (chains, *energy.shape) and x.dtype.kind == "f" and bool(np.isfinite(x).all())
                    and u.shape == (chains,) and u.dtype.kind == "f" and bool(np.isfinite(u).all())):
                raise LandscapeError(f"noise level {k}'s chains are not {chains} finite points and energies")
        checks.number_map(None, "seconds", state.get("seconds", {}))
    except LandscapeError as err:
        raise LandscapeError(f"the saved progress of the funnel probe is damaged ({err}): delete its .funnel.partial "
                             "file (the command: --force; from Python: clear_progress(map, 'funnel')) to start "
                             "afresh") from None


def _check_inputs(energy: Energy, content: MapContent, config: FunnelConfig, data: torch.Tensor | None) -> None:
    """A data range for chains from noise, minima of the energy's shape, data for chains from data."""
    if energy.data_range is None:
        raise LandscapeError(f"{energy.name or 'energy'} has no data range: the probe's chains from noise need one")
    if tuple(np.shape(content.minima_x)[1:]) != energy.shape:
        raise LandscapeError(
            f"the map's minima have shape {list(np.shape(content.minima_x)[1:])}, the energy expects {list(energy.shape)}"
        )
    if "data" in config.starts:
        if data is None or data.shape[0] == 0:
            raise LandscapeError("chains from data need a data set: give one, or start from noise only")
    elif data is not None:  # (a config made without with_data starts from noise only: the data would go unused)
        raise LandscapeError(f"the config's chains all start from noise (init {config.init!r}), so the data given "
                             "would go unused: for chains from data too, make it with funnel_config(map, ..., "
                             "with_data=True) (init 'both'), or leave data out")
    radius = float(content.settings().get("merge_radius", 0.0))
    if config.merge_radius < radius * (1 - 1e-9):
        raise LandscapeError(f"the probe's merge_radius {config.merge_radius:.3g} is below the map's {radius:.3g}: end "
                             "points the map counts as its own minima would be new ones (funnel_config gives the "
                             "map's)")


def _chain_starts(config: FunnelConfig) -> np.ndarray:
    """Per chain of a level, where it started: 0 from data, 1 from noise."""
    return np.concatenate([np.full(config.chains, 0 if s == "data" else 1, dtype=np.int8) for s in config.starts])


def _note_noise_wider_than_the_box(energy: Energy, config: FunnelConfig, reporter: Reporter) -> None:
    """A note for the levels whose chains' noise per step (``tau x eps``) is wider than
    the box: clamped to it at every step, their chains end mostly on its faces, whatever
    the energy, and the level's occupancy says so little about the landscape."""
    if config.steps == 0 or energy.data_range is None:
        return
    width = float(energy.data_range[1]) - float(energy.data_range[0])
    wide = [tau for tau in config.noise if tau * config.eps > width]
    if wide:
        steps = f"{wide[0] * config.eps:.3g}" + (f" to {wide[-1] * config.eps:.3g}" if len(wide) > 1 else "")
        reporter.note(f"noise {', '.join(f'{tau:.3g}' for tau in wide)}: the chains' random steps (noise x eps = "
                      f"{steps}) are wider than the box ({width:.3g} wide): clamped to it at every step, they end "
                      "mostly on its faces whatever the energy, and only lower noise levels probe the landscape")


def _run_level(
    energy: Energy, config: FunnelConfig, k: int, data: torch.Tensor | None, reporter: Reporter
) -> QuenchResult:
    """Noise level ``k``: chains from each start at noise ``tau``, then quenched."""
    tau, n_per = config.noise[k], config.chains
    energy.check_room(2 * n_per, "funnel chains (from data and from noise)")
    gen = torch.Generator(device=energy.device).manual_seed(config.seed * 7919 + k)
    x0 = []
    for s in config.starts:
        if s == "data":
            pick = torch.randint(data.shape[0], (n_per,), generator=torch.Generator().manual_seed(config.seed * 31 + k))
            x0.append(data[pick].to(energy.device, energy.dtype))
        else:
            x0.append(energy.uniform_noise(n_per, gen))
    x = torch.cat(x0)
    if tau > 0 and config.steps > 0:
        reporter.stage(f"noise {tau:.3g}: chains", total=config.steps, unit="step")
        x = sample(energy, x, config.steps, config.eps, tau=tau, generator=gen, box=energy.data_range,
                   progress=reporter.advance).x
    reporter.stage(f"noise {tau:.3g}: quench", total=config.quench_steps, unit="step")
    return quench(energy, x, max_steps=config.quench_steps, grad_tol=config.grad_tol, box=energy.data_range,
                  progress=reporter.advance)


def _map_end_points(
    energy: Energy,
    content: MapContent,
    config: FunnelConfig,
    state: dict,
    save: Callable[[], None],
    reporter: Reporter,
    refine: bool | None,
) -> tuple[np.ndarray, MapContent, int]:
    """Which minimum each chain ended in (index into the extended map's minima), the map
    extended by the new minima among the end points (its progress kept in ``state``,
    written by ``save``), and how many there were."""
    levels = range(len(config.noise))
    ends = torch.cat([torch.as_tensor(state[f"level{k}/x"]) for k in levels]).to(energy.device, energy.dtype)
    end_energy = torch.cat([torch.as_tensor(state[f"level{k}/energy"], dtype=torch.float64) for k in levels])
    minima_x = torch.from_numpy(np.asarray(content.minima_x)).to(energy.device)
    owner, keep, _ = _match(energy, ends, end_energy, minima_x, content.minima_energy, config.merge_radius,
                            energy_tie(config.grad_tol, config.merge_radius))
    new_minima = int(keep.numel())
    if not new_minima:
        return owner, content, 0
    reporter.note(f"{new_minima} new minima among the chains' end points: mapping them into the map")
    fresh = Minima(x=ends[keep.to(ends.device)], energy=end_energy[keep],
                   hits=torch.zeros(new_minima, dtype=torch.int64),
                   grad_norm=torch.zeros(new_minima, dtype=torch.float64))
    extended = extend_map(energy, content, fresh, reporter=reporter, seed=config.seed, refine=refine, state=state,
                          save=save)
    return owner, extended, new_minima


def _funnel_data(
    config: FunnelConfig,
    owner: np.ndarray,
    extended: MapContent,
    content: MapContent,
    new_minima: int,
    seconds: dict[str, float],
) -> FunnelData:
    """Occupancy of the basins per level (all chains, and per start), its entropy, the
    sinks, and the score against the reference entropy."""
    chain_start = _chain_starts(config)
    k_levels, c = len(config.noise), chain_start.shape[0]
    chain_minimum = owner.reshape(k_levels, c)
    basin = np.asarray(extended.minima_basin)[chain_minimum]
    b = extended.n_basins

    def shares(rows: np.ndarray) -> np.ndarray:
        return np.stack([np.bincount(r, minlength=b) / max(r.size, 1) for r in rows])

    occupancy = shares(basin)
    ent = np.array([entropy(row) for row in occupancy])
    sink_rows = np.full((k_levels, config.max_sinks), -1, dtype=np.int64)
    for k, row in enumerate(occupancy):
        found = sinks(row, config.max_sinks)
        sink_rows[k, : len(found)] = found
    by_start = {s: shares(basin[:, chain_start == (0 if s == "data" else 1)]) for s in config.starts}
    # The reference: how the data themselves spread over the basins (the chains from data
    # at the lowest noise, normally 0: the quenched training examples).
    reference = entropy(by_start["data"][0]) if "data" in by_start else float(ent[0])
    attrs = {
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "temperature": [float(t) ** 2 for t in config.noise],
        "eps": float(config.eps),
        "steps": int(config.steps),
        "chains_per_level": int(c),
        "new_minima": new_minima,
        "new_basins": int(b - content.n_basins),
        "reference_entropy": reference,
        "reference": "chains from data at the lowest noise" if "data" in by_start else "all chains at the lowest noise",
        "score_rule": "1 - min(entropy[1:]) / reference_entropy, clipped to [0, 1]",
        "funnel_threshold": FUNNEL_SCORE,
        "seconds": float(sum(seconds.values())),
    }
    if config.noise_unit is not None:  # (what the levels were given in: the figure says it)
        attrs["noise_unit"] = float(config.noise_unit)
        if config.noise_unit_source:
            attrs["noise_unit_source"] = str(config.noise_unit_source)
    return FunnelData(
        noise=np.asarray(config.noise, dtype=np.float64),
        occupancy=occupancy,
        entropy=ent,
        score=funnel_score(ent, reference),
        attrs=attrs,
        sinks=sink_rows,
        occupancy_data=by_start.get("data"),
        occupancy_noise=by_start.get("noise"),
        chain_minimum=chain_minimum,
        chain_start=chain_start,
    )
