"""What the tests share: hand-made maps whose content is known exactly, the command line
run in-process, and the one-line error check. Test files take these from here (as
fixtures, or ``from conftest import ...``), never from each other."""

from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import matplotlib
import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from landscape.cli.errors import run_guarded
from landscape.cli.main import cli
from landscape.io.mapfile import write_map
from landscape.io.records import (
    ATTRACTION,
    NEIGHBOUR,
    DiagnosisData,
    FunnelData,
    GridData,
    MapContent,
    MapMeta,
    PairTable,
    Partition,
)
from landscape.mapping.pipeline import Reporter
from landscape.mapping.tree import minimax_tree

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core: each on one thread, its subprocesses too. With
    # two workers of two threads each on two cores, torch's threads wait on each other while
    # the other worker holds the cores: 13 of test_mapper's slowest tests took 350 s
    # instead of 113 s, test_ad, test_paths and test_locate 75-81 s instead of 44 s.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def partition(energy: np.ndarray, basin: Sequence[int], alpha: float = 1.0, multiplier: float | None = None) -> Partition:
    """A Partition from basin labels (any numbering): basins renumbered by the energy of
    their lowest minimum, which is their representative."""
    energy = np.asarray(energy, dtype=np.float64)
    labels = np.asarray(basin, dtype=np.int64)
    groups = sorted(set(labels.tolist()), key=lambda g: (energy[labels == g].min(), g))
    new = {g: k for k, g in enumerate(groups)}
    basin_new = np.array([new[g] for g in labels.tolist()], dtype=np.int64)
    reps = np.array([int(np.flatnonzero(basin_new == k)[np.argmin(energy[basin_new == k])]) for k in range(len(groups))])
    return Partition(alpha=alpha, basin=basin_new, representative=reps, energy=energy[reps], multiplier=multiplier)


def build_map(
    x: Any,
    energy: Sequence[float],
    pairs: Sequence[Sequence[int]] | None = None,
    barrier: Sequence[float] | None = None,
    *,
    refined: Sequence[float] | None = None,
    levels: Sequence[Sequence[int]] | None = None,
    alphas: Sequence[float] | None = None,
    main: int = 0,
    hits: Sequence[int] | None = None,
    attrs: dict[str, dict[str, Any]] | None = None,
    source: Any = None,
    config: Any = None,
) -> MapContent:
    """A MapContent made by hand.

    ``pairs``/``barrier`` are minima pairs and their estimates (default: consecutive
    minima, each barrier 1 above the higher one); ``refined`` their refined saddles (NaN:
    none); ``levels`` basin labels per level (default: one level, one basin per minimum),
    with ``alphas`` (default 1, 2, 3, ... as multipliers of an alpha unit of 1).
    """
    x = np.asarray(x, dtype=np.float32)
    energy = np.asarray(energy, dtype=np.float64)
    n = energy.shape[0]
    if pairs is None:
        pairs = [(i, i + 1) for i in range(n - 1)]
        barrier = [max(energy[i], energy[i + 1]) + 1.0 for i, _ in pairs]
    pairs_arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    pairs_arr = np.sort(pairs_arr, axis=1)
    e = pairs_arr.shape[0]
    table = PairTable(
        pairs=pairs_arr,
        estimate=np.asarray(barrier, dtype=np.float64),
        refined=np.full(e, np.nan) if refined is None else np.asarray(refined, dtype=np.float64),
        alpha=np.full(e, np.nan),
        source=np.full(e, NEIGHBOUR | ATTRACTION, dtype=np.uint8),
    )
    levels = [list(range(n))] if levels is None else levels
    alphas = list(alphas) if alphas is not None else [float(k + 1) for k in range(len(levels))]
    parts = [partition(energy, lv, alpha=a, multiplier=a) for lv, a in zip(levels, alphas)]
    tree = minimax_tree(energy, table.pairs, table.best(energy), refined=table.is_refined(energy))
    base_attrs = {"minima": {"data_range": [-1.0, 1.0]}, "levels": {"alpha_unit": 1.0, "temperature": 1.0}}
    for group, values in (attrs or {}).items():
        base_attrs.setdefault(group, {}).update(values)
    meta = None
    if source is not None or config is not None:
        meta = MapMeta(schema_version=2, created="2026-01-01T00:00:00+00:00", tool_version="test",
                       source=source, config=config if config is not None else {})
    return MapContent(
        minima_x=x, minima_energy=energy, minima_hits=np.full(n, 5) if hits is None else np.asarray(hits),
        levels=parts, main=main, barriers=table, tree=tree, attrs=base_attrs, meta=meta,
    )


@pytest.fixture
def make_map():
    """The factory :func:`build_map` (a hand-made MapContent)."""
    return build_map


@pytest.fixture
def make_partition():
    """The factory :func:`partition` (basin labels -> Partition)."""
    return partition


# ---------------------------------------------------------------- the command line


TINY = [
    "--steps", "4", "--batch-size", "20", "--quiet",
    "--set", "train.ckpt_every=2", "--set", "train.plot_every=4", "--set", "train.eval_every=2",
    "--set", "sampler.steps=5", "--set", "sampler.bank_size=40",
]


def run(capsys, *args):
    code = run_guarded(cli, [str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_same_map(a, b) -> None:
    """Two maps' contents (:class:`MapContent`) agree in everything a resumed map must
    give as the uninterrupted one did: basins and representatives at every level, trial
    counts, the tree with its saddle points and paths (one width: a path padded in one run
    and not in the other made their shapes differ), and the barriers (pairs, estimates,
    refined saddles)."""
    assert [p.basin.tolist() for p in a.levels] == [p.basin.tolist() for p in b.levels]
    assert [p.attrs["trials"] for p in a.levels] == [p.attrs["trials"] for p in b.levels]
    for x, y in zip(a.levels, b.levels):
        np.testing.assert_array_equal(x.representative, y.representative)
    np.testing.assert_array_equal(a.tree.linkage, b.tree.linkage)
    for name in ("tree_saddle", "tree_path"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)
    for name in ("pairs", "estimate", "refined"):
        np.testing.assert_array_equal(getattr(a.barriers, name), getattr(b.barriers, name))


class Notes(Reporter):
    """A reporter that keeps the notes a run says (``notes``)."""

    def __init__(self):
        self.notes: list[str] = []

    def note(self, text):
        self.notes.append(text)


class CountingStrings(Reporter):
    """A reporter that counts the pairs refined in the stages whose name starts with
    ``prefix`` (``counted``: what each call of ``advance`` said), keeps the notes, and
    interrupts the run (KeyboardInterrupt) once ``stop_at`` pairs are counted."""

    def __init__(self, prefix: str, stop_at: int | None = None):
        self.prefix, self.stop_at = prefix, stop_at
        self.counted: list[int] = []
        self.notes: list[str] = []
        self.strings = False

    def stage(self, name, total=None, unit="it"):
        self.strings = name.startswith(self.prefix)

    def advance(self, n=1):
        if self.strings:
            self.counted.append(n)
            if self.stop_at is not None and sum(self.counted) >= self.stop_at:
                raise KeyboardInterrupt

    def note(self, text):
        self.notes.append(text)


def arm_after_a_batch_save(monkeypatch, placed: int) -> list[int]:
    """Watch the saves inside batches of attraction-diffusion trials: the returned list
    gets the batch's step of every save made 32+ steps into a batch once the levels under
    way have placed ``placed`` minima in all (a reporter interrupts the run when it is
    non-empty: the run is then interrupted after such a save)."""
    from landscape.mapping import pipeline

    armed: list[int] = []
    to_state = pipeline._turn_to_state

    def saving(state, keys, turn, *args):
        to_state(state, keys, turn, *args)
        if turn.batch.step >= 32 and sum(int((lv.basin_of >= 0).sum()) for lv in turn.levels) >= placed:
            armed.append(turn.batch.step)

    monkeypatch.setattr(pipeline, "_turn_to_state", saving)
    return armed


def assert_one_line_error(code, err, pattern, expected_code=1):
    assert code == expected_code, err
    assert "Traceback" not in err
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1, err
    assert re.search(pattern, lines[0]), lines[0]


# -------------------------------------------------------- hand-made maps of each kind


PNG = b"\x89PNG\r\n\x1a\n"

# ------------------------------------------------------------------ the image map
# Shared with tests/test_tree_cmd.py. Ten minima in four basins at the main level (1);
# within a basin the minima join low, between basins:
#   basins 1-2 at -1.05 (a refined saddle, below its estimate -1.0) via minima 3-5,
#   basin 0 joins at -0.5 via minima 0-3 (their saddle, 2.0, lies far above the
#   estimate: the tree keeps the estimate), basin 3 joins at 0.0 via minima 5-8; the
#   0-8 trial found no path.

IMG_ENERGY = [-3.0, -2.9, -2.8, -2.0, -1.9, -1.5, -1.4, -1.3, -1.0, -0.9]
IMG_LEVELS = [list(range(10)), [0, 0, 0, 1, 1, 2, 2, 2, 3, 3], [0, 0, 0, 0, 0, 0, 0, 0, 1, 1], [0] * 10]
IMG_ALPHAS = [0.3, 1.0, 3.0, 10.0]
IMG_PAIRS = [(0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (8, 9), (3, 5), (0, 3), (5, 8), (0, 8)]
IMG_ESTIMATE = [-2.7, -2.6, -1.8, -1.2, -1.1, -0.8, -1.0, -0.5, 0.0, np.inf]
IMG_REFINED = [np.nan] * 6 + [-1.05, 2.0, np.nan, np.nan]
IMG_SOURCE = {"kind": "checkpoint", "path": "runs/sevens.pt", "sha256": "cd" * 32, "regime": "convergent"}
# The tree over minima: (lower, higher, height, relative), lowest first.
MINIMA_MERGES = [
    (0, 1, -2.7, 0.2), (0, 2, -2.6, 0.2), (3, 4, -1.8, 0.1), (5, 6, -1.2, 0.2), (5, 7, -1.1, 0.2),
    (3, 5, -1.05, 0.45), (8, 9, -0.8, 0.1), (0, 3, -0.5, 1.5), (0, 8, 0.0, 1.0),
]
# The tree over the main level's basins.
BASIN_MERGES = [(1, 2, -1.05, 0.45), (0, 1, -0.5, 1.5), (0, 3, 0.0, 1.0)]


def image_content(make_map, channels: int | None = 1, diagnosis: bool = False, funnel: bool = False):
    """The image map; ``channels=None`` gives minima of shape (8, 8)."""
    n = len(IMG_ENERGY)
    basin = np.array(IMG_LEVELS[1])
    shape = (8, 8) if channels is None else (channels, 8, 8)
    x = np.full((n, *shape), -1.0, dtype=np.float32)
    for k in range(n):  # basin b: a bar at rows 2b, 2b+1
        x[k, ..., 2 * basin[k]: 2 * basin[k] + 2, 1:7] = 1.0 if k in (0, 3, 5, 8) else 0.3
        x[k, ..., 7, k % 8] = 2.0  # outside the data range: clipped
    c = make_map(x, IMG_ENERGY, IMG_PAIRS, IMG_ESTIMATE, refined=IMG_REFINED, levels=IMG_LEVELS, alphas=IMG_ALPHAS,
                 main=1, hits=np.arange(1, n + 1), source=IMG_SOURCE, config={"temperature": 20.0},
                 attrs={"minima": {"temperature": 20.0}, "levels": {"temperature": 0.5, "alpha_unit": 0.2}})
    if diagnosis:
        spurious = np.zeros(n, dtype=bool)
        spurious[8] = True  # the lowest minimum of basin 3
        c.diagnosis = DiagnosisData(spurious=spurious, nn_distance=np.linspace(0.1, 1.0, n))
    if funnel:
        occ = np.array([[0.3, 0.3, 0.2, 0.2], [0.6, 0.2, 0.1, 0.1], [0.9, 0.1, 0.0, 0.0]])
        ent = np.array([-(r[r > 0] * np.log(r[r > 0])).sum() for r in occ])
        c.funnel = FunnelData(noise=np.array([0.0, 0.5, 1.0]), occupancy=occ, entropy=ent, score=0.75,
                              attrs={"chains_per_level": 40, "reference_entropy": float(ent[0]),
                                     "reference": "chains from data at the lowest noise"},
                              sinks=np.array([[0, 1, -1], [0, -1, -1], [0, -1, -1]]),
                              occupancy_data=occ, occupancy_noise=occ[:, ::-1].copy())
    return c


# ------------------------------------------------------------------- the vector map

VEC_ENERGY = [-2.0, -1.9, -1.0, -0.8, 0.5, 0.6]


def vector_content(make_map, d: int, connected: bool = True):
    """Six minima in R^d, three basins; a chain of barriers (the last missing unless
    ``connected``)."""
    rng = np.random.default_rng(2)
    barrier = [-1.5, 1.0, -0.5, 2.0, 1.0]
    if not connected:
        barrier[3] = np.inf  # no path from minima 4, 5 to the others
    return make_map(rng.normal(size=(6, d)), VEC_ENERGY, [(i, i + 1) for i in range(5)], barrier,
                    levels=[[0, 0, 1, 1, 2, 2]], source={"kind": "function", "spec": "gauss_mix"})


# ---------------------------------------------------------------------- the 2-D map

WELLS = np.array([[-1.0, -0.3], [0.9, -0.1], [0.1, 1.1]])
DEPTHS = np.array([3.0, 2.2, 1.8])


def wells_energy(xy: np.ndarray) -> np.ndarray:
    """Three Gaussian wells in a weak bowl: U(x) = 0.1 |x|^2 - sum_k d_k exp(-|x - c_k|^2 / 0.245)."""
    xy = np.asarray(xy, dtype=np.float64)
    d2 = ((xy[..., None, :] - WELLS) ** 2).sum(-1)
    return 0.1 * (xy**2).sum(-1) - (DEPTHS * np.exp(-d2 / 0.245)).sum(-1)


def _segment(a, b, bend: float = 0.0, points: int = 41) -> np.ndarray:
    t = np.linspace(0.0, 1.0, points)[:, None]
    normal = np.array([[-(b - a)[1], (b - a)[0]]]) / max(np.linalg.norm(b - a), 1e-12)
    return a * (1 - t) + b * t + bend * np.sin(np.pi * t) * normal


def wells_content(make_map, paths: bool = True, grid: bool = True):
    """Nine minima of ``wells_energy``, three per well (the first at the bottom), sorted by
    energy; within a well straight-line barriers; between wells 0-1 and 1-2 refined
    saddles (below the straight-line estimates, which overshoot), 0-2 an estimate only."""
    rng = np.random.default_rng(1)
    x = np.repeat(WELLS, 3, axis=0) + rng.normal(scale=0.05, size=(9, 2))
    x[::3] = WELLS
    label = np.repeat(np.arange(3), 3)
    order = np.argsort(wells_energy(x), kind="stable")
    x, label = x[order], label[order]
    energy = wells_energy(x)
    bottom = [int(np.flatnonzero(label == w)[np.argmin(energy[label == w])]) for w in range(3)]
    pairs, estimate, refined = [], [], []
    for k in range(9):
        if k not in bottom:
            pairs.append((bottom[label[k]], k))
            estimate.append(wells_energy(_segment(x[bottom[label[k]]], x[k])).max())
            refined.append(np.nan)
    for (a, b), over, refine in (((0, 1), 0.05, True), ((1, 2), 0.05, True), ((0, 2), 0.4, False)):
        line = wells_energy(_segment(x[bottom[a]], x[bottom[b]])).max()
        pairs.append((bottom[a], bottom[b]))
        estimate.append(line + over)
        refined.append(line if refine else np.nan)
    c = make_map(x, energy, pairs, estimate, refined=refined, levels=[label],
                 source={"kind": "function", "spec": "wells", "shape": [2]},
                 attrs={"minima": {"temperature": 0.5, "data_range": [-2.0, 2.0]}})
    if paths:
        t = c.tree
        c.tree_saddle = np.full((8, 2), np.nan, dtype=np.float32)
        c.tree_path = np.full((8, 41, 2), np.nan, dtype=np.float32)
        for k in np.flatnonzero(t.refined):
            i, j = c.barriers.pairs[t.pair[k]]
            path = _segment(x[i], x[j], bend=0.1)
            c.tree_path[k] = path
            c.tree_saddle[k] = path[np.argmax(wells_energy(path))]
    if grid:
        g = np.linspace(-2.0, 2.0, 48)
        gx, gy = np.meshgrid(g, g)
        c.grid = GridData(x=g, y=g, energy=wells_energy(np.stack([gx, gy], axis=-1)))
    return c


# ------------------------------------------------------------------------- helpers


def save(tmp_path, content, name: str = "m.h5"):
    """Write ``content`` as a map with the source its meta names."""
    return write_map(tmp_path / name, content, config=content.meta.config, source=content.meta.source,
                     tool_version="0.1.0")


def assert_png(path, min_bytes: int = 3000) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes, (path, len(data))


def svg_text(draw, path) -> str:
    """Draw to an SVG with text kept as text; all its text, unescaped, joined by spaces."""
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        out = draw(path)
    assert out == path
    return " ".join(html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", path.read_text()))


def new_axes():
    fig = Figure(figsize=(8, 5))
    FigureCanvasAgg(fig)
    return fig.add_subplot(1, 1, 1)


def leaf_colours(ax) -> set[str]:
    """The colours of the drawn lines other than black, grey (merges) and red (marked)."""
    return {to_hex(line.get_color()) for line in ax.lines} - {"#000000", "#808080", "#ff0000"}


# ------------------------------------------------------------------------ the views


# ---------------------------------------------------------------- a schema-1 map


SCHEMA1_LINKAGE = np.array([[0, 1, -2.2, 2], [2, 4, 0.5, 3], [3, 5, 1.05, 4]])


def write_schema1_map(path: Path) -> Path:
    """A schema-1 map as ebm-landscape 0.0.x wrote it: the tree over four basins, with
    absolute heights; basin 3 reached by no path; barrier pairs are BASIN pairs."""
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = "ebm-landscape/map"
        f.attrs["schema_version"] = 1
        f.attrs["created"] = "2025-01-01T00:00:00+00:00"
        f.attrs["tool_version"] = "0.0.9"
        f.attrs["source"] = json.dumps({"kind": "checkpoint", "path": "old/rings.pt", "sha256": "ef" * 32})
        f.attrs["config"] = json.dumps({"temperature": 2.0, "alpha": 0.5})
        f["minima/x"] = np.arange(16, dtype=np.float32).reshape(8, 2)
        f["minima/energy"] = np.array([-5.0, -4.5, -3.0, -2.9, -1.0, -0.5, 0.2, 0.4])
        f["minima/hits"] = np.array([10, 3, 7, 1, 2, 2, 1, 1])
        f["minima/basin"] = np.array([0, 0, 1, 1, 2, 2, 3, 3])
        f["minima"].attrs.update({"count": 8, "temperature": 2.0})
        f["basins/representative"] = np.array([0, 2, 4, 6])
        f["basins/energy"] = np.array([-5.0, -3.0, -1.0, 0.2])
        f["basins"].attrs["count"] = 4
        f["barriers/pairs"] = np.array([[1, 0], [2, 1], [2, 0], [3, 2]])
        f["barriers/energy"] = np.array([-2.0, 0.5, 1.5, np.inf])
        f["barriers/refined"] = np.array([-2.2, np.nan, np.nan, np.nan])
        f["barriers"].attrs.update({"count": 4, "alpha": 0.5, "temperature": 0.2})
        f["tree/linkage"] = SCHEMA1_LINKAGE
    return path


def torchrun_env(folder: Path) -> dict[str, str]:
    """The environment of a torchrun under ``folder``: torchrun leaves a folder of logs in
    the temp dir, here one beside ``folder`` (pytest's, cleared with it; not in ``folder``,
    whose files some tests compare before and after)."""
    tmp = folder.parent / f"{folder.name}-torchrun"
    tmp.mkdir(exist_ok=True)
    return dict(os.environ, TMPDIR=str(tmp))
