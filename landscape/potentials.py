"""Analytic potentials whose minima, saddles and barrier tree are known exactly.

They validate the mapper (tests and ``benchmarks/validate_map.py``) and make good first
maps: ``landscape map --energy landscape.potentials:mueller_brown --shape 2 --box -1.5 2``.

- :func:`mueller_brown`: the Mueller-Brown surface (Müller and Brown 1979, Theor. Chim.
  Acta 53, 75): three minima, two saddles on the minimum-energy paths between them.
- :func:`tilted_wells`: ``sum_i (x_i^2 - 1)^2 + t_i x_i`` in ``D`` dimensions: ``2^D``
  minima (one per sign pattern) whose energies the tilt ``t`` separates. The energy is
  separable, so its index-1 saddles are the points with one coordinate at the middle
  root of its 1-D factor and the rest at minima, and the exact basin tree is the minimax
  tree over the hypercube's edges (:func:`tilted_wells_exact`).
- :func:`four_wells_mlp`: four wells at ``(+-1, +-1)`` (barriers of about 2 between
  neighbours) plus a small fixed random network: a landscape no one tuned the mapper for.
- Planted answers for the diagnosis, around four data wells (:func:`planted_data`):
  :func:`balanced_wells` (no funnel, nothing spurious), :func:`planted_funnel` (one broad
  deep basin: a funnel) and :func:`planted_hole` (a deep narrow minimum far from the data:
  spurious).
"""

from __future__ import annotations

import itertools
from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch

# Mueller-Brown parameters, one column per Gaussian term.
_MB_A = (-200.0, -100.0, -170.0, 15.0)
_MB_a = (-1.0, -1.0, -6.5, 0.7)
_MB_b = (0.0, 0.0, 11.0, 0.6)
_MB_c = (-10.0, -10.0, -6.5, 0.7)
_MB_X = (1.0, 0.0, -0.5, -1.0)
_MB_Y = (0.0, 0.5, 1.5, 1.0)

#: Mueller-Brown minima (x, y) and their energies, lowest first (to the digits shown).
MUELLER_BROWN_MINIMA = ((-0.5582, 1.4417), (0.6235, 0.0280), (-0.0500, 0.4667))
MUELLER_BROWN_MINIMA_ENERGY = (-146.6995, -108.1667, -80.7678)
#: Saddles: between the first and third minimum, and between the second and third.
MUELLER_BROWN_SADDLES = ((-0.8220, 0.6243), (0.2124, 0.2930))
MUELLER_BROWN_SADDLE_ENERGY = (-40.6648, -72.2489)


def _constants(values: tuple[tuple[float, ...], ...], dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, ...]:
    """Constant tensors, made once per dtype and device (not on every call; while
    ``torch.compile`` traces, made in the graph, where they cost nothing)."""
    if torch.compiler.is_compiling():
        return tuple(torch.tensor(v, dtype=dtype, device=device) for v in values)
    return _cached_constants(values, dtype, device)


@lru_cache(maxsize=16)
def _cached_constants(values: tuple[tuple[float, ...], ...], dtype: torch.dtype, device: torch.device
                      ) -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(v, dtype=dtype, device=device) for v in values)


def mueller_brown(x: torch.Tensor) -> torch.Tensor:
    """The Mueller-Brown potential of a batch ``x [B, 2]`` -> ``[B]``."""
    A, a, b, c, X, Y = _constants((_MB_A, _MB_a, _MB_b, _MB_c, _MB_X, _MB_Y), x.dtype, x.device)
    dx, dy = x[:, 0:1] - X, x[:, 1:2] - Y
    return (A * torch.exp(a * dx**2 + b * dx * dy + c * dy**2)).sum(1)


def _mlp_weights(hidden: int = 16, seed: int = 7) -> tuple[tuple[float, ...], ...]:
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 1.5, (2, hidden))
    b1 = rng.normal(0.0, 1.0, hidden)
    w2 = rng.normal(0.0, 1.0 / np.sqrt(hidden), hidden)
    return tuple(tuple(v) for v in w1.T) + (tuple(b1), tuple(w2))


_MLP = _mlp_weights()


def four_wells_mlp(x: torch.Tensor) -> torch.Tensor:
    """``2 ((x0^2 - 1)^2 + (x1^2 - 1)^2) + 0.3 * tanh-MLP(x)`` for ``x [B, 2]``.

    Four wells near ``(+-1, +-1)`` separated by barriers of about 2, bent by a fixed
    random two-layer network (16 tanh units, seed 7): barriers about 20 T at T = 0.1, the
    kind of energy whose scale and barrier heights a user cannot know in advance.
    Box: [-2, 2].
    """
    *rows, b1, w2 = _constants(_MLP, x.dtype, x.device)
    w1 = torch.stack(rows, dim=1)  # [2, hidden]
    net = torch.tanh(x @ w1 + b1) @ w2
    return 2.0 * ((x**2 - 1.0) ** 2).sum(1) + 0.3 * net


def _tilts(dim: int, tilt: float) -> np.ndarray:
    """Distinct tilts ``t_i = tilt * (i + 1) / dim`` (so no two minima share an energy)."""
    return tilt * np.arange(1, dim + 1) / dim


def tilted_wells(x: torch.Tensor, tilt: float = 0.5) -> torch.Tensor:
    """``sum_i (x_i^2 - 1)^2 + t_i x_i`` with ``t_i = tilt (i + 1) / D``, for ``x [B, D]``."""
    t = torch.as_tensor(_tilts(x.shape[1], tilt), dtype=x.dtype, device=x.device)
    return ((x**2 - 1.0) ** 2 + t * x).sum(1)


class WellsAnswer(NamedTuple):
    """The exact landscape of :func:`tilted_wells`.

    minima : float64 [2^D, D], sorted by energy; energy : float64 [2^D];
    pairs : int64 [E, 2] (hypercube edges: minima differing in one sign, as indices into
    ``minima``); saddle : float64 [E], the energy of the index-1 saddle on each edge.
    """

    minima: np.ndarray
    energy: np.ndarray
    pairs: np.ndarray
    saddle: np.ndarray


def tilted_wells_exact(dim: int, tilt: float = 0.5) -> WellsAnswer:
    """Minima, energies and saddles of :func:`tilted_wells` in ``dim`` dimensions.

    The 1-D factor ``f(x) = (x^2 - 1)^2 + t x`` has critical points at the roots of
    ``4x^3 - 4x + t``: two minima and the maximum between them (for ``|t| < 8 / 3^1.5``).
    """
    t = _tilts(dim, tilt)
    if np.any(np.abs(t) >= 8.0 / 3.0**1.5):
        raise ValueError("tilt too large: a coordinate loses one of its two wells")
    lo, mid, hi = [], [], []
    for ti in t:
        roots = np.sort(np.roots([4.0, 0.0, -4.0, ti]).real)
        lo.append(roots[0]), mid.append(roots[1]), hi.append(roots[2])

    def f(v: np.ndarray) -> np.ndarray:
        return (v**2 - 1.0) ** 2 + t * v

    patterns = list(itertools.product((0, 1), repeat=dim))
    pts = np.array([[hi[i] if s else lo[i] for i, s in enumerate(p)] for p in patterns])
    energy = f(pts).sum(1)
    order = np.argsort(energy, kind="stable")
    where = {patterns[k]: pos for pos, k in enumerate(order)}
    pairs, saddle = [], []
    for p in patterns:
        for i in range(dim):
            if p[i] == 0:
                q = p[:i] + (1,) + p[i + 1 :]
                s = pts[patterns.index(p)].copy()
                s[i] = mid[i]
                a, b = where[p], where[q]
                pairs.append((min(a, b), max(a, b)))
                saddle.append(float(f(s).sum()))
    return WellsAnswer(pts[order], energy[order], np.array(pairs, dtype=np.int64), np.array(saddle))


# ----------------------------------------------------------------- planted answers
#
# Energies with a planted answer for the diagnosis (landscape.mapping.funnel, landscape.diagnosis.spurious):
# the "data" are the four wells PLANTED_CENTRES (planted_data draws them), and each energy
# adds a known pathology, or none. Box [-4.5, 4.5]^2; meant for temperatures around 0.05.

#: The data's four wells, at distance 3 from the origin.
PLANTED_CENTRES = ((3.0, 0.0), (0.0, 3.0), (-3.0, 0.0), (0.0, -3.0))
PLANTED_BOX = (-4.5, 4.5)
_WELL_WIDTH = 0.3
_DATA_STD = 0.15


def _centres(x: torch.Tensor) -> torch.Tensor:
    return torch.tensor(PLANTED_CENTRES, dtype=x.dtype, device=x.device)


def _side_wells(x: torch.Tensor, depth: float) -> torch.Tensor:
    d2 = ((x[:, None, :] - _centres(x)) ** 2).sum(2)
    return -(depth * torch.exp(-d2 / (2 * _WELL_WIDTH**2))).sum(1)


def balanced_wells(x: torch.Tensor) -> torch.Tensor:
    """Four equal wells at the data (``-log`` of an equal mixture of Gaussians of std 0.5):
    no funnel, no spurious minimum."""
    d2 = ((x[:, None, :] - _centres(x)) ** 2).sum(2)
    return -torch.logsumexp(-d2 / (2 * 0.5**2), dim=1)


def planted_funnel(x: torch.Tensor) -> torch.Tensor:
    """A funnel: a broad basin 20 deep at the origin (std 1.5) whose flanks hold four
    shallow wells (3 deep, std 0.3) at the data. At low noise chains from the data stay in
    their wells; with more noise they all fall to the bottom of the funnel."""
    return -20.0 * torch.exp(-(x**2).sum(1) / (2 * 1.5**2)) + _side_wells(x, 3.0)


def planted_hole(x: torch.Tensor) -> torch.Tensor:
    """:func:`balanced_wells` plus a planted deep, narrow hole at the origin (40 deep,
    std 0.35), three units from every data well: a spurious minimum, far lower than
    anything the data explain."""
    return balanced_wells(x) - 40.0 * torch.exp(-(x**2).sum(1) / (2 * 0.35**2))


def planted_data(n: int = 400, seed: int = 0) -> np.ndarray:
    """``n`` "training examples" for the planted energies: Gaussian (std 0.15) around the
    four wells in equal shares, float64 [n, 2]."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(PLANTED_CENTRES)
    return centres[np.arange(n) % 4] + _DATA_STD * rng.standard_normal((n, 2))
