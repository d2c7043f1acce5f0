"""The mapping pipeline: metastable states -> basins (a ladder of magnetizations) -> tree.

:func:`build_map` runs the stages of DESIGN's "Algorithms" in order and returns a
:class:`~landscape.mapfile.MapContent` ready for :func:`~landscape.mapfile.write_map`:

1. **Metastable states** (:func:`landscape.minima.find_minima`): ``chains`` Langevin
   chains from noise in the data box and/or from data, run ``steps`` steps at temperature
   ``temperature``, quenched to local minima, near-duplicates merged.
2. **Basins** (:func:`landscape.ad.assign_basins`): attraction-diffusion at each
   magnetization of the ladder; the map's top level is ``alpha`` (added to the ladder if
   absent), the others go to ``/levels``.
3. **Tree** (:func:`landscape.tree.minimax_tree`): single linkage over the barrier
   estimates of each level.
4. **Refinement** (:func:`landscape.paths.string_method`): every edge of the top level's
   tree is relaxed from the attraction-diffusion path's peak into a minimum-energy path
   with a climbing image; the refined saddle energies are stored beside the estimates
   (``/barriers/refined``, ``/barriers/paths``), and the tree is rebuilt from the lower
   of the two per pair.
5. For 2-D energies, the energy on a grid over the box (``/grid``) for pictures.

A long run saves its state after each stage (and each level, and every few refined
edges) with :func:`landscape.mapfile.save_progress`; called again with ``resume=True``
and the same settings it continues where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.ad import ADConfig, Basins, assign_basins, extend_basins
from landscape.energy import Energy
from landscape.errors import LandscapeError
from landscape.mapfile import (
    GridData,
    LevelData,
    MapContent,
    resume_progress,
    save_progress,
)
from landscape.minima import Minima, find_minima
from landscape.paths import string_method_batch
from landscape.tree import minimax_tree

_REFINE_PASSES = 5
_REFINE_BATCH = 64  # strings relaxed together


@dataclass(frozen=True)
class MapConfig:
    """Settings of a map (plain data: stored as JSON in the map's ``config`` attr).

    Attributes
    ----------
    chains : int
        Exploration chains.
    init : str
        Where chains start: ``"noise"`` (uniform in the data box), ``"data"`` or ``"both"``
        (half each).
    temperature : float
        ``T`` of the exploration chains (noise scale ``sqrt(T)``); 0 is plain descent.
    eps : float
        Langevin step size of the exploration chains.
    steps : int
        Exploration steps before quenching.
    quench_steps : int
        Descent iterations at most.
    grad_tol : float
        Quench convergence threshold on ``||dU/dx||``.
    merge_radius : float
        End points closer than this are one minimum.
    max_minima : int
        Keep at most this many minima (the lowest) for the basin stage; 0 keeps all.
    ad : ADConfig
        Attraction-diffusion settings; ``ad.alpha`` (times ``alpha_unit``) is the top
        level of the map.
    ladder : tuple of float
        Further magnetizations (times ``alpha_unit``), each stored as a level (``/levels``).
    alpha_unit : float
        The unit of ``ad.alpha`` and ``ladder``.
    auto : tuple of str
        Settings chosen from the minima found instead of taken as given (the chosen
        values are stored in the map, ``/barriers`` attrs):

        - ``"alpha_unit"``: the pull that matches the landscape's typical energy
          differences over its typical distances (:func:`alpha_unit`), so one ladder
          suits energies of any scale;
        - ``"delta"``: a quarter of the minima's median nearest-neighbour distance (at
          least ``merge_radius``), so a trial that succeeds has reached its target and no
          other minimum;
        - ``"eps"``: the AD step whose descent part is stable at the stiffest minimum
          (:func:`largest_curvature`, :func:`stable_eps`).
    refine : bool
        Refine the top-level tree's edges with the string method.
    refine_slack : float
        Which pairs are refined: those whose estimate is within this share of the barrier
        height above the minimax height joining their two basins (so the pairs of the tree,
        slack 0, and the near misses whose loose estimate may hide a lower saddle).
    refine_images, refine_steps : int
        Images per string and iteration budget.
    grid : int
        Grid points per axis of ``/grid`` (2-D energies only; 0 for none).
    seed : int
    """

    chains: int = 256
    init: str = "noise"
    temperature: float = 1.0
    eps: float = 0.01
    steps: int = 1000
    quench_steps: int = 2000
    grad_tol: float = 1e-3
    merge_radius: float = 0.05
    max_minima: int = 0
    ad: ADConfig = field(default_factory=ADConfig)
    ladder: tuple[float, ...] = ()
    alpha_unit: float = 1.0
    auto: tuple[str, ...] = ()
    refine: bool = True
    refine_slack: float = 0.5
    refine_images: int = 24
    refine_steps: int = 400
    grid: int = 160
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.chains >= 1, "chains must be >= 1"),
            (self.init in ("noise", "data", "both"), "init must be noise, data or both"),
            (self.temperature >= 0.0 and math.isfinite(self.temperature), "temperature must be >= 0"),
            (self.eps > 0.0 and math.isfinite(self.eps), "eps must be > 0"),
            (self.steps >= 0 and self.quench_steps >= 1, "steps must be >= 0 and quench_steps >= 1"),
            (self.grad_tol > 0.0, "grad_tol must be > 0"),
            (self.merge_radius >= 0.0, "merge_radius must be >= 0"),
            (self.max_minima >= 0, "max_minima must be >= 0"),
            (all(a >= 0.0 and math.isfinite(a) for a in self.ladder), "ladder values must be finite and >= 0"),
            (self.refine_images >= 3 and self.refine_steps >= 1, "refine_images must be >= 3, refine_steps >= 1"),
            (self.grid == 0 or self.grid >= 8, "grid must be 0 or >= 8"),
            (self.alpha_unit > 0.0, "alpha_unit must be > 0"),
            (set(self.auto) <= {"alpha_unit", "delta", "eps"}, "auto takes alpha_unit, delta and eps"),
        ]
        for ok, message in checks:
            if not ok:
                raise LandscapeError(f"map config: {message}")

    @property
    def multipliers(self) -> list[float]:
        """Every magnetization mapped, in units of ``alpha_unit``, ascending, the top level's included."""
        return sorted({float(a) for a in self.ladder} | {float(self.ad.alpha)})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ladder"] = list(self.ladder)
        d["auto"] = list(self.auto)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MapConfig:
        known = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in known}  # a map's config also records timings
        d["ad"] = ADConfig(**d.get("ad", {}))
        d["ladder"] = tuple(d.get("ladder", ()))
        d["auto"] = tuple(d.get("auto", ()))
        return cls(**d)

    def fingerprint(self) -> str:
        """A hash of the settings: a resumed run must have the same."""
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


class Reporter:
    """Progress of a map, for a terminal or a log. The default does nothing.

    ``stage(name, total, unit)`` opens a stage, ``advance(n)`` moves it on, ``note(text)``
    reports a finding (e.g. "37 minima"). The CLI implements it with progress bars.
    """

    def stage(self, name: str, total: int | None = None, unit: str = "it") -> None:
        pass

    def advance(self, n: int = 1) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class MapResult:
    """What :func:`build_map` returns: the map's content and what it cost."""

    content: MapContent
    seconds: dict[str, float]
    counts: dict[str, int]


# ----------------------------------------------------------------------------- stages


def alpha_unit(minima: Minima, temperature: float) -> float:
    """A natural unit of magnetization for these minima at AD temperature ``temperature``.

    The pull ``alpha ||x - b||`` competes with ``U / T``: a barrier ``dU`` at distance
    ``r`` is crossed by the pull alone once ``alpha r > dU / T``. The unit is the spread
    of the minima's energies (10th to 90th percentile) over ``T`` times their median
    nearest-neighbour distance: at ``alpha = 1`` unit the pull over a typical spacing
    matches a typical energy difference. With fewer than two minima, or no spread, 1/T.
    """
    if len(minima) < 2:
        return 1.0 / temperature
    spacing = _median_spacing(minima)
    q = torch.quantile(minima.energy.double(), torch.tensor([0.1, 0.9], dtype=torch.float64))
    spread = float(q[1] - q[0])
    if not (spacing > 0 and spread > 0 and math.isfinite(spread / spacing)):
        return 1.0 / temperature
    return spread / (temperature * spacing)


def _resolve_auto(energy: Energy, minima: Minima, config: MapConfig) -> dict[str, float]:
    """The settings named in ``config.auto``, chosen from the minima; the rest as given."""
    out = {"alpha_unit": float(config.alpha_unit), "delta": float(config.ad.delta), "eps": float(config.ad.eps)}
    if "alpha_unit" in config.auto:
        out["alpha_unit"] = alpha_unit(minima, config.ad.temperature)
    if "delta" in config.auto and len(minima) >= 2:
        out["delta"] = max(0.25 * _median_spacing(minima), config.merge_radius, 1e-12)
    if "eps" in config.auto:
        out["eps"] = stable_eps(largest_curvature(energy, minima.x), config.ad.temperature)
    return out


def _median_spacing(minima: Minima) -> float:
    """Median distance from each minimum to its nearest other minimum."""
    n = len(minima)
    flat = minima.x.reshape(n, -1).double()
    d = torch.cdist(flat, flat)
    d.fill_diagonal_(math.inf)
    return float(d.min(1).values.median())


def largest_curvature(energy: Energy, x: torch.Tensor, iterations: int = 20) -> float:
    """The largest Hessian eigenvalue of ``U`` over the points ``x`` (e.g. minima).

    Power iteration per point on Hessian-vector products taken as central differences
    of the gradient, ``H v ~ (g(x + h v) - g(x - h v)) / 2h``; the maximum over points.
    It sets a stable Langevin step: a descent step ``eps^2 / (2T) * lambda`` below 2.
    """
    n = x.shape[0]
    if n == 0:
        return 1.0
    vg = energy.value_and_grad_fn()
    gen = torch.Generator(device=x.device).manual_seed(0)
    v = torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
    flat = (n, -1)
    v = v / torch.linalg.vector_norm(v.reshape(flat), dim=1).reshape((n,) + (1,) * (x.dim() - 1))
    scale = float(torch.linalg.vector_norm(x.reshape(flat), dim=1).max()) + 1.0
    h = scale * (1e-6 if x.dtype == torch.float64 else 1e-3)
    lam = torch.zeros(n, dtype=torch.float64, device=x.device)
    with energy.frozen():
        for _ in range(iterations):
            hv = (vg(x + h * v)[1] - vg(x - h * v)[1]) / (2 * h)
            norm = torch.linalg.vector_norm(hv.reshape(flat), dim=1)
            lam = norm.double()
            v = hv / norm.clamp_min(1e-30).reshape((n,) + (1,) * (x.dim() - 1))
    value = float(lam.max())
    return value if math.isfinite(value) and value > 0 else 1.0


def stable_eps(curvature: float, temperature: float, safety: float = 0.5) -> float:
    """The Langevin ``eps`` at temperature ``T`` whose descent step ``eps^2/(2T) * curvature`` is ``safety``."""
    return math.sqrt(2.0 * safety * max(temperature, 1e-12) / curvature)


def _starts(energy: Energy, cfg: MapConfig, data: torch.Tensor | None, gen: torch.Generator) -> torch.Tensor:
    """Starting points of the exploration chains."""
    n_data = {"noise": 0, "data": cfg.chains, "both": cfg.chains // 2}[cfg.init]
    if n_data and (data is None or data.shape[0] == 0):
        raise LandscapeError(f"init={cfg.init} needs data to start chains from: give a data set")
    parts = []
    if cfg.chains - n_data:
        parts.append(energy.uniform_noise(cfg.chains - n_data, gen))
    if n_data:
        cpu_gen = torch.Generator().manual_seed(cfg.seed + 17)
        idx = torch.randint(0, data.shape[0], (n_data,), generator=cpu_gen)
        parts.append(data[idx].to(energy.device, energy.dtype))
    return torch.cat(parts)


def _levels_of(basins: Basins) -> dict[str, np.ndarray]:
    return {
        "basin": basins.basin.numpy(),
        "representative": basins.representative.numpy(),
        "energy": basins.energy.numpy(),
        "join_barrier": basins.join_barrier.numpy(),
        "pairs": basins.pairs.numpy().reshape(-1, 2),
        "barrier": basins.barrier.numpy(),
        "pair_alpha": basins.pair_alpha.numpy(),
        "peak_x": basins.peak_x.float().numpy(),
    }


def _grid(energy: Energy, n: int) -> GridData:
    low, high = energy.data_range
    axis = torch.linspace(low, high, n, dtype=torch.float64)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], 1).to(energy.device, energy.dtype)
    values = torch.cat([energy(chunk) for chunk in pts.split(65536)]).double().cpu()
    return GridData(x=axis.numpy(), y=axis.numpy(), energy=values.reshape(n, n).numpy())


def _refine_edges(
    energy: Energy,
    minima_x: torch.Tensor,
    level: dict[str, np.ndarray],
    edges: list[int],
    cfg: MapConfig,
    done: dict[str, np.ndarray],
    save: Callable[[], None],
    reporter: Reporter,
) -> None:
    """String-method refinement of barrier pairs ``edges`` (rows of ``level['pairs']``),
    ``_REFINE_BATCH`` strings at a time stepping as one batch; progress saved per batch."""
    rep = level["representative"]
    todo = [e for e in edges if np.isnan(done["refined"][e])]
    reporter.advance(len(edges) - len(todo))
    for start in range(0, len(todo), _REFINE_BATCH):
        chunk = todo[start : start + _REFINE_BATCH]
        pairs = level["pairs"][chunk]
        a = minima_x[torch.as_tensor(rep[pairs[:, 0]])]
        b = minima_x[torch.as_tensor(rep[pairs[:, 1]])]
        via = torch.from_numpy(level["peak_x"][chunk]).to(minima_x.dtype)
        results = string_method_batch(
            energy, a, b, via=via, images=cfg.refine_images, steps=cfg.refine_steps, box=energy.data_range
        )
        # A relaxed path is a path between the two minima: its highest image bounds the
        # barrier from above like the AD path does; with the climbing image it is the saddle.
        for e, result in zip(chunk, results):
            done["refined"][e] = result.saddle_energy
            done["converged"][e] = float(result.converged)
            done["paths"][e] = result.path.detach().float().cpu().numpy()
        reporter.advance(len(chunk))
        save()


def _refine_passes(
    energy: Energy,
    minima_x: torch.Tensor,
    level: dict[str, np.ndarray],
    cfg: MapConfig,
    done: dict[str, np.ndarray],
    save: Callable[[], None],
    reporter: Reporter,
) -> None:
    """Refine the level's candidate pairs (:func:`_candidates`) that are not refined yet.

    Refining lowers some estimates, which can bring other pairs into the tree: repeat
    until every candidate is refined (at most ``_REFINE_PASSES`` passes).
    """
    for _ in range(_REFINE_PASSES):
        best = np.where(np.isnan(done["refined"]), level["barrier"], np.fmin(level["barrier"], done["refined"]))
        todo = [e for e in _candidates(level, best, cfg.refine_slack) if np.isnan(done["refined"][e])]
        if not todo:
            break
        reporter.stage("refining tree edges (string method)", total=len(todo), unit="edge")
        _refine_edges(energy, minima_x, level, todo, cfg, done, save, reporter)
        save()


def _candidates(level: dict[str, np.ndarray], barrier: np.ndarray, slack: float) -> list[int]:
    """Pairs worth refining: estimate within ``slack`` of the barrier height above the tree's.

    For each tested pair ``(i, j)`` with a finite estimate, ``h`` is the height at which the
    minimax tree over ``barrier`` joins ``i`` and ``j`` (never above the pair's own
    estimate). Tree edges have estimate ``= h``; a pair whose estimate exceeds ``h`` by less
    than ``slack * (h - max(E_i, E_j))`` may hide a lower saddle than the tree's route.
    """
    pairs, energy = level["pairs"], level["energy"]
    if pairs.shape[0] == 0:
        return []
    tree = minimax_tree(energy, pairs, barrier)
    b = energy.shape[0]
    cluster = np.arange(b)
    joined = np.full(pairs.shape[0], np.nan)
    for row, (left, right, height, _) in enumerate(tree.linkage):
        cluster[(cluster == int(left)) | (cluster == int(right))] = b + row
        now = np.isnan(joined) & (cluster[pairs[:, 0]] == cluster[pairs[:, 1]])
        joined[now] = height
    floor = np.maximum(energy[pairs[:, 0]], energy[pairs[:, 1]])
    ok = np.isfinite(barrier) & (barrier <= joined + slack * np.maximum(joined - floor, 0.0) + 1e-12)
    return [int(e) for e in np.flatnonzero(ok)]


def _tree_content(level: dict[str, np.ndarray], barrier: np.ndarray) -> tuple[Any, np.ndarray]:
    tree = minimax_tree(level["energy"], level["pairs"], barrier)
    return tree, tree.linkage


# ------------------------------------------------------------------------------- public


def build_map(
    energy: Energy,
    config: MapConfig,
    *,
    data: torch.Tensor | None = None,
    progress_file: str | Path | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    source_id: str = "",
) -> MapResult:
    """Map an energy: minima, basins at each magnetization, trees, refined barriers.

    Parameters
    ----------
    energy : Energy
        Needs a data range (the box chains from noise start in, and the refinement's clamp).
    config : MapConfig
    data : Tensor [M, *shape], optional
        Training examples, for chains from data (``init`` "data" or "both").
    progress_file : path, optional
        The map being built: progress is kept next to it (``<stem>.partial.h5``) after
        every stage. The caller removes it (:func:`landscape.mapfile.clear_progress`)
        once the map is written.
    resume : bool
        Continue from saved progress (same settings and source required); without it,
        saved progress is an error, so nothing is overwritten by accident.
    reporter : Reporter, optional
        Receives progress and findings.
    source_id : str
        Identifies what is mapped (e.g. a checkpoint's sha256); checked on resume.

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
    >>> e = Energy(lambda x: ((x**2 - 1) ** 2).sum(1), shape=(2,), data_range=(-2, 2), dtype=torch.float64)
    >>> cfg = MapConfig(chains=64, temperature=0.05, eps=0.05, steps=100, ad=ADConfig(temperature=0.05, eps=0.05))
    >>> build_map(e, cfg).content.n_basins  # doctest: +SKIP
    4
    """
    import time

    reporter = reporter or Reporter()
    if energy.data_range is None:
        raise LandscapeError(f"{energy.name or 'energy'} has no data range: give one (e.g. --box LOW HIGH)")
    state = resume_progress(progress_file, config.fingerprint() + ":" + source_id, resume)
    if "stage" in state:
        reporter.note(f"resuming after stage '{state['stage']}'")

    def save() -> None:
        if progress_file is not None:
            save_progress(progress_file, state)

    seconds: dict[str, float] = dict(state.get("seconds", {}))

    def gen_for(stage: int) -> torch.Generator:
        # One stream per stage, so a resumed map draws what an uninterrupted one would.
        return torch.Generator(device=energy.device).manual_seed(config.seed * 1009 + stage)

    # 1. Metastable states.
    if "minima/x" not in state:
        t0 = time.perf_counter()
        gen = gen_for(0)
        starts = _starts(energy, config, data, gen)
        reporter.stage("exploration chains", total=config.steps + config.quench_steps, unit="step")
        minima = find_minima(
            energy,
            starts,
            temperature=config.temperature,
            eps=config.eps,
            steps=config.steps,
            quench_steps=config.quench_steps,
            grad_tol=config.grad_tol,
            merge_radius=config.merge_radius,
            generator=gen,
            box=energy.data_range,
            progress=reporter.advance,
        )
        if config.max_minima and len(minima) > config.max_minima:
            k = config.max_minima
            minima = Minima(minima.x[:k], minima.energy[:k], minima.hits[:k], minima.grad_norm[:k])
        state.update(
            {
                "minima/x": minima.x.detach().cpu(),
                "minima/energy": minima.energy.cpu(),
                "minima/hits": minima.hits.cpu(),
                "minima/grad_norm": minima.grad_norm.cpu(),
                "stage": "minima",
            }
        )
        seconds["minima"] = time.perf_counter() - t0
        state["seconds"] = seconds
        save()
    minima = Minima(
        x=torch.as_tensor(state["minima/x"]).to(energy.device, energy.dtype),
        energy=torch.as_tensor(state["minima/energy"], dtype=torch.float64),
        hits=torch.as_tensor(state["minima/hits"], dtype=torch.int64),
        grad_norm=torch.as_tensor(state["minima/grad_norm"], dtype=torch.float64),
    )
    unconverged = int((minima.grad_norm > config.grad_tol).sum())
    reporter.note(
        f"{len(minima)} minima from {config.chains} chains"
        + (
            f" ({unconverged} stopped at the limit of the energy's precision, gradient norm above {config.grad_tol:g})"
            if unconverged
            else ""
        )
    )

    # 2. Basins at each magnetization.
    if "resolved" not in state:
        state["resolved"] = _resolve_auto(energy, minima, config)
        save()
    resolved = state["resolved"]
    ad_config = replace(config.ad, delta=resolved["delta"], eps=resolved["eps"])
    unit = float(resolved["alpha_unit"])
    if config.auto:
        reporter.note(
            "chosen from the minima: " + ", ".join(f"{k} {resolved[k]:.4g}" for k in ("alpha_unit", "delta", "eps") if k in config.auto)
        )
    alphas = [m * unit for m in config.multipliers]
    top_alpha = float(config.ad.alpha) * unit
    levels: dict[float, dict[str, np.ndarray]] = {}
    trials = int(state.get("ad_trials", 0))
    for k, alpha in enumerate(alphas):
        key = f"level{k}"
        if f"{key}/basin" not in state:
            t0 = time.perf_counter()
            reporter.stage(f"attraction-diffusion, alpha {alpha:g}", total=len(minima), unit="minimum")
            basins = assign_basins(
                energy, minima, replace(ad_config, alpha=alpha), generator=gen_for(k + 1), progress=reporter.advance
            )
            trials += basins.trials
            state[f"{key}/trials"] = basins.trials
            for name, value in _levels_of(basins).items():
                state[f"{key}/{name}"] = value
            state["ad_trials"] = trials
            state["stage"] = f"basins alpha={alpha:g}"
            seconds[f"basins_{k}"] = time.perf_counter() - t0
            state["seconds"] = seconds
            save()
        levels[alpha] = {
            name: np.asarray(state[f"{key}/{name}"])
            for name in ("basin", "representative", "energy", "join_barrier", "pairs", "barrier", "pair_alpha", "peak_x")
        }
        levels[alpha]["pairs"] = levels[alpha]["pairs"].reshape(-1, 2).astype(np.int64)
        reporter.note(
            f"alpha {alpha:g}: {len(levels[alpha]['energy'])} basins"
            + (f" ({state[f'{key}/trials']:,} AD trials)" if f"{key}/trials" in state else "")
        )

    # 3-4. Trees, and refinement of the top level's tree edges.
    top = levels[top_alpha]
    n_pairs = top["pairs"].shape[0]
    refined = None
    paths = None
    top_barrier = top["barrier"]
    if config.refine and n_pairs:
        if "refine/refined" not in state:
            state["refine/refined"] = np.full(n_pairs, np.nan)
            state["refine/converged"] = np.zeros(n_pairs)
            state["refine/paths"] = np.full(
                (n_pairs, config.refine_images, *energy.shape), np.nan, dtype=np.float32
            )
        done = {
            "refined": np.array(state["refine/refined"], dtype=np.float64),
            "converged": np.array(state["refine/converged"], dtype=np.float64),
            "paths": np.array(state["refine/paths"], dtype=np.float32),
        }
        state["refine/refined"], state["refine/converged"], state["refine/paths"] = (
            done["refined"],
            done["converged"],
            done["paths"],
        )
        t0 = time.perf_counter()
        _refine_passes(energy, minima.x, top, config, done, save, reporter)
        seconds["refine"] = seconds.get("refine", 0.0) + time.perf_counter() - t0
        state["stage"] = "refined"
        state["seconds"] = seconds
        save()
        refined, paths = done["refined"], done["paths"]
        # The tree is built from the better (lower) of the two estimates of each pair.
        top_barrier = np.where(np.isnan(refined), top["barrier"], np.fmin(top["barrier"], refined))

    # 5. The grid.
    grid = None
    if config.grid and energy.dim == 2 and len(energy.shape) == 1:
        grid = _grid(energy, config.grid)

    tree, linkage = _tree_content(top, top_barrier)
    level_data = []
    for mult, alpha in zip(config.multipliers, alphas):
        lv = levels[alpha]
        lv_tree = minimax_tree(lv["energy"], lv["pairs"], lv["barrier"])
        level_data.append(
            LevelData(
                alpha=alpha,
                minima_basin=lv["basin"],
                basin_representative=lv["representative"],
                basin_energy=lv["energy"],
                barrier_pairs=lv["pairs"],
                barrier_energy=lv["barrier"],
                linkage=lv_tree.linkage,
                attrs={"basins": len(lv["energy"]), "multiplier": mult},
            )
        )
    hits_per_basin = np.bincount(top["basin"], weights=minima.hits.numpy(), minlength=len(top["energy"]))
    content = MapContent(
        minima_x=minima.x.detach().float().cpu().numpy(),
        minima_energy=minima.energy.numpy(),
        minima_hits=minima.hits.numpy(),
        minima_basin=top["basin"],
        basin_representative=top["representative"],
        basin_energy=top["energy"],
        barrier_pairs=top["pairs"],
        barrier_energy=top["barrier"],
        linkage=linkage,
        barrier_refined=refined,
        barrier_paths=paths,
        grid=grid,
        levels=level_data if len(alphas) > 1 else None,
        attrs={
            "minima": {
                "temperature": config.temperature,
                "chains": config.chains,
                "grad_norm_max": float(minima.grad_norm.max()) if len(minima) else 0.0,
                "data_range": list(energy.data_range),
            },
            "basins": {"hits": hits_per_basin.astype(np.int64).tolist()},
            "barriers": {
                "alpha": top_alpha,
                "alpha_unit": unit,
                "delta": float(ad_config.delta),
                "eps": float(ad_config.eps),
                "temperature": float(config.ad.temperature),
                "pair_alpha": top["pair_alpha"].tolist(),
            },
            "tree": {"heights": "refined where available" if refined is not None else "attraction-diffusion"},
        },
    )
    counts = {"minima": len(minima), "basins": len(top["energy"]), "pairs": int(n_pairs), "ad_trials": trials}
    reporter.close()
    del tree
    return MapResult(content=content, seconds=seconds, counts=counts)


# ------------------------------------------------------------------- mapping new minima


def _saddle_points(energy: Energy, paths: np.ndarray | None, refined: np.ndarray | None, n_pairs: int) -> np.ndarray:
    """Per pair, the highest image of its refined path (NaN rows where none): where a
    re-refinement of the pair starts from."""
    shape = energy.shape
    out = np.full((n_pairs, *shape), np.nan, dtype=np.float32)
    if paths is None or refined is None:
        return out
    rows = [e for e in range(n_pairs) if np.isfinite(refined[e]) and np.isfinite(paths[e]).all()]
    for start in range(0, len(rows), _REFINE_BATCH):
        chunk = rows[start : start + _REFINE_BATCH]
        pts = torch.from_numpy(paths[chunk]).to(energy.device, energy.dtype)  # [c, P, *shape]
        u = energy(pts.reshape(-1, *shape)).reshape(len(chunk), -1)
        best = u.argmax(dim=1).cpu().numpy()
        out[chunk] = paths[chunk, best]
    return out


def _prior(
    basin: np.ndarray,
    rep: np.ndarray,
    basin_energy: np.ndarray,
    pairs: np.ndarray,
    barrier: np.ndarray,
    pair_alpha: np.ndarray | None,
    peak_x: np.ndarray,
    alpha: float,
) -> Basins:
    e = pairs.shape[0]
    return Basins(
        basin=torch.as_tensor(basin, dtype=torch.int64),
        representative=torch.as_tensor(rep, dtype=torch.int64),
        energy=torch.as_tensor(basin_energy, dtype=torch.float64),
        join_barrier=torch.full((basin.shape[0],), math.nan, dtype=torch.float64),
        pairs=torch.as_tensor(pairs, dtype=torch.int64).reshape(-1, 2),
        barrier=torch.as_tensor(barrier, dtype=torch.float64),
        pair_alpha=torch.as_tensor(pair_alpha if pair_alpha is not None else np.full(e, np.nan), dtype=torch.float64),
        peak_x=torch.as_tensor(peak_x),
        alpha=float(alpha),
    )


def extend_map(
    energy: Energy,
    content: MapContent,
    new: Minima,
    *,
    reporter: Reporter | None = None,
    seed: int = 0,
    refine: bool | None = None,
) -> MapContent:
    """Map new minima (found after the map was made, e.g. by a funnel probe) into a map.

    The new minima are appended after the map's own (whose indices stay valid) with 0
    hits. At the top level and at every level of the ladder they are assigned by
    attraction-diffusion with the map's own settings (:func:`landscape.ad.extend_basins`:
    the old minima keep their basins; a new minimum joins a basin or founds one; basins
    are renumbered by energy). Barrier estimates of the old pairs are kept (raised where a
    new, lower minimum became a basin's representative), new pairs are estimated, and at
    the top level the tree's new candidate pairs are refined by the string method; a
    refined barrier of an old pair is kept where both its basins keep their
    representative (else it is refined again from its old saddle). The trees are rebuilt.

    Parameters
    ----------
    energy : Energy
        The mapped energy.
    content : MapContent
        A map as read by :func:`landscape.mapfile.read_map` (its config is needed).
    new : Minima
        Minima not in the map (none within the merge radius of a map minimum).
    reporter : Reporter, optional
    seed : int
        Seeds the attraction-diffusion chains.
    refine : bool, optional
        Refine the tree's new candidate pairs by the string method [default: as the map
        was]. Without, they keep their attraction-diffusion estimates (refined values of
        old pairs are kept either way).

    Returns
    -------
    MapContent
        The extended map, root metadata kept; ``funnel`` and ``diagnosis`` are dropped
        (they describe the old minima).

    Raises
    ------
    LandscapeError
        A map without its mapping config, or minima of the wrong shape.
    NonFiniteEnergyError
        From the AD chains or the string method.

    Cost: :func:`~landscape.ad.extend_basins` at each level, plus (``refine``) the
    string method on the top-level tree's new candidate pairs.
    """
    reporter = reporter or Reporter()
    if content.meta is None or not isinstance(content.meta.config, dict) or "ad" not in content.meta.config:
        raise LandscapeError("the map has no mapping config: new minima cannot be mapped into it")
    energy.check_batch(new.x)
    cfg = MapConfig.from_dict(content.meta.config)
    battrs = content.attrs.get("barriers", {})
    ad = replace(cfg.ad, delta=float(battrs.get("delta", cfg.ad.delta)), eps=float(battrs.get("eps", cfg.ad.eps)))
    top_alpha = float(battrs.get("alpha", cfg.ad.alpha * cfg.alpha_unit))
    n_old, m = content.n_minima, len(new)
    x_old = torch.from_numpy(np.asarray(content.minima_x)).to(energy.device, energy.dtype)
    x_all = torch.cat([x_old, new.x.detach().to(energy.device, energy.dtype)])
    e_all = torch.cat([torch.as_tensor(content.minima_energy, dtype=torch.float64), new.energy.double().cpu()])
    hits = np.concatenate([np.asarray(content.minima_hits, dtype=np.int64), np.zeros(m, dtype=np.int64)])
    minima = Minima(x_all, e_all, torch.from_numpy(hits), torch.zeros(n_old + m, dtype=torch.float64))

    def gen(k: int) -> torch.Generator:
        return torch.Generator(device=energy.device).manual_seed(seed * 1009 + 101 + k)

    # Top level.
    refined_old, paths_old = content.barrier_refined, content.barrier_paths
    e_top = content.n_barriers
    peaks = _saddle_points(energy, paths_old, refined_old, e_top)
    pair_alpha = np.asarray(battrs.get("pair_alpha", []), dtype=np.float64)
    prior = _prior(
        content.minima_basin, content.basin_representative, content.basin_energy, content.barrier_pairs,
        content.barrier_energy, pair_alpha if pair_alpha.shape == (e_top,) else None, peaks, top_alpha,
    )
    reporter.stage(f"mapping {m} new minima, alpha {top_alpha:g}", total=m, unit="minimum")
    top, new_of = extend_basins(energy, minima, prior, replace(ad, alpha=top_alpha), gen(0), reporter.advance)
    reporter.note(f"alpha {top_alpha:g}: {content.n_basins} -> {top.n_basins} basins")
    level = _levels_of(top)
    level["pairs"] = level["pairs"].reshape(-1, 2).astype(np.int64)

    refined = paths = None
    refine = cfg.refine if refine is None else refine
    if (refine or refined_old is not None) and level["pairs"].shape[0]:
        n_pairs = level["pairs"].shape[0]
        p = cfg.refine_images if paths_old is None else paths_old.shape[1]
        done = {
            "refined": np.full(n_pairs, np.nan),
            "converged": np.zeros(n_pairs),
            "paths": np.full((n_pairs, p, *energy.shape), np.nan, dtype=np.float32),
        }
        if refined_old is not None:
            row_of = {(int(a), int(b)): e for e, (a, b) in enumerate(level["pairs"])}
            old_rep = np.asarray(content.basin_representative)
            new_rep = top.representative.numpy()
            for e, (a, b) in enumerate(np.asarray(content.barrier_pairs)):
                if not np.isfinite(refined_old[e]):
                    continue
                na, nb = int(new_of[a]), int(new_of[b])
                if new_rep[na] != old_rep[a] or new_rep[nb] != old_rep[b]:
                    continue  # a representative moved: refine again (it starts from the old saddle)
                row = row_of.get((min(na, nb), max(na, nb)))
                if row is None:
                    continue
                done["refined"][row] = refined_old[e]
                done["converged"][row] = 1.0
                if paths_old is not None:
                    done["paths"][row] = paths_old[e] if na < nb else paths_old[e][::-1]
        if refine:
            _refine_passes(energy, minima.x, level, replace(cfg, refine_images=p), done, lambda: None, reporter)
        refined = done["refined"]
        paths = done["paths"] if paths_old is not None or refine else None
    top_barrier = level["barrier"] if refined is None else np.where(
        np.isnan(refined), level["barrier"], np.fmin(level["barrier"], refined))
    tree = minimax_tree(level["energy"], level["pairs"], top_barrier)

    # The ladder: the level of the top alpha is the top level; the others are extended
    # the same way at their own alpha, so every level keeps holding every minimum.
    level_data = None
    if content.levels:
        level_data = []
        for k, lv in enumerate(content.levels):
            if math.isclose(lv.alpha, top_alpha, rel_tol=1e-9):
                basins = top
            else:
                prior_k = _prior(
                    lv.minima_basin, lv.basin_representative, lv.basin_energy, lv.barrier_pairs, lv.barrier_energy,
                    None, np.full((lv.barrier_pairs.shape[0], *energy.shape), np.nan, dtype=np.float32), lv.alpha,
                )
                reporter.stage(f"mapping {m} new minima, alpha {lv.alpha:g}", total=m, unit="minimum")
                basins, _ = extend_basins(energy, minima, prior_k, replace(ad, alpha=lv.alpha), gen(k + 1),
                                          reporter.advance)
                reporter.note(f"alpha {lv.alpha:g}: {len(lv.basin_energy)} -> {basins.n_basins} basins")
            pairs = basins.pairs.numpy().reshape(-1, 2)
            attrs = dict(lv.attrs)
            attrs["basins"] = basins.n_basins
            level_data.append(LevelData(
                alpha=lv.alpha, minima_basin=basins.basin.numpy(), basin_representative=basins.representative.numpy(),
                basin_energy=basins.energy.numpy(), barrier_pairs=pairs, barrier_energy=basins.barrier.numpy(),
                linkage=minimax_tree(basins.energy.numpy(), pairs, basins.barrier.numpy()).linkage, attrs=attrs,
            ))

    attrs = {k: dict(v) for k, v in content.attrs.items()}
    attrs.setdefault("minima", {})["funnel_added"] = int(attrs.get("minima", {}).get("funnel_added", 0)) + m
    attrs.setdefault("basins", {})["hits"] = (
        np.bincount(level["basin"], weights=hits, minlength=top.n_basins).astype(np.int64).tolist()
    )
    attrs.setdefault("barriers", {})["pair_alpha"] = level["pair_alpha"].tolist()
    reporter.close()
    return MapContent(
        minima_x=x_all.detach().float().cpu().numpy(),
        minima_energy=e_all.numpy(),
        minima_hits=hits,
        minima_basin=level["basin"],
        basin_representative=level["representative"],
        basin_energy=level["energy"],
        barrier_pairs=level["pairs"],
        barrier_energy=level["barrier"],
        linkage=tree.linkage,
        barrier_refined=refined,
        barrier_paths=paths,
        grid=content.grid,
        levels=level_data,
        attrs=attrs,
        meta=content.meta,
    )
