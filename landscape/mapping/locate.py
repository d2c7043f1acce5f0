"""Which of a map's minima and basins given points fall into.

:func:`locate` quenches each point to the local minimum below it, with the map's own
quench settings (its gradient tolerance and steps, in the energy's data box), and matches
that minimum to the map's minima within the map's merge radius, as the funnel probe
matches its chains' end points. A point whose quench ends at a minimum the map does not
have is said to be so (-1): the map's basins do not cover it, and
:func:`landscape.mapping.pipeline.extend_map` maps such minima in.

The basin of a point is the basin of the minimum it drains into: the Hopfield basin of
the map at a level of its ladder. Two points in one basin at a weak pull may be in
different basins of the tree over minima's cut at an energy; the map's levels are what
attraction-diffusion measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from landscape.energy import Energy, check_gives_back, runs_frozen
from landscape.errors import LandscapeError
from landscape.io.records import MapContent
from landscape.io.views import partition_of, quench_settings
from landscape.mapping.minima import quench
from landscape.mapping.neighbors import nearest

__all__ = ["Located", "locate"]


@dataclass
class Located:
    """What :func:`locate` returns, per point.

    minimum : ndarray int64 [N]
        The map minimum the point drains into (index into ``content.minima_x``), or -1
        where its quench ended at a minimum the map does not have.
    basin : ndarray int64 [N]
        That minimum's basin at the level asked for (-1 with the minimum).
    distance : ndarray float64 [N]
        From the quenched point to the nearest map minimum (what was compared with the
        map's merge radius).
    x : Tensor [N, *shape]
        The quenched points (local minima of the energy).
    energy : ndarray float64 [N]
        Their energies.
    level : int
        The level of the map's ladder the basins are of.
    outside : ndarray bool [N]
        The point lies outside the energy's data box, which the map covers: its quench ran
        inside the box from the nearest point of it, as the map's chains did.
    """

    minimum: np.ndarray
    basin: np.ndarray
    distance: np.ndarray
    x: torch.Tensor
    energy: np.ndarray
    level: int
    outside: np.ndarray


@runs_frozen
def locate(energy: Energy, content: MapContent, x: torch.Tensor | np.ndarray, *, level: int | None = None) -> Located:
    """The map minimum and basin each point of ``x`` falls into (see the module docstring).

    Parameters
    ----------
    energy : Energy
        The energy the map was made of (it must give the map's minimum energies back).
    content : MapContent
        The map (:func:`landscape.read_map`, or ``build_map(...).content``).
    x : Tensor or array [N, *shape]
        The points: samples of a model, training examples, anything in its data box.
    level : int, optional
        The level of the map's ladder whose basins to give [default: the main level].

    Returns
    -------
    Located

    Raises
    ------
    LandscapeError
        Points of the wrong shape or not finite, a level out of range, an energy that does
        not give the map's minima back.
    NonFiniteEnergyError
        From the quench.

    Examples
    --------
    >>> found = locate(energy, m, samples)                        # doctest: +SKIP
    >>> np.bincount(found.basin[found.basin >= 0])                 # samples per basin  # doctest: +SKIP
    """
    points = energy.as_batch(x, "the points to locate")
    part = partition_of(content, level)
    chosen = content.main if level is None else int(level)
    if tuple(np.shape(content.minima_x)[1:]) != energy.shape:
        raise LandscapeError(f"the map's minima have shape {list(np.shape(content.minima_x)[1:])}, the energy "
                             f"expects {list(energy.shape)}")
    check_gives_back(energy, content)
    radius, quench_steps, grad_tol = quench_settings(content)
    n = points.shape[0]
    if n == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Located(empty, empty.copy(), np.zeros(0), points.detach(), np.zeros(0), chosen, np.zeros(0, bool))
    outside = np.zeros(n, dtype=bool)
    if energy.data_range is not None:
        low, high = energy.data_range
        flat = points.detach().reshape(n, -1)
        outside = ((flat < low) | (flat > high)).any(dim=1).cpu().numpy()
    q = quench(energy, points, max_steps=quench_steps, grad_tol=grad_tol, box=energy.data_range)
    minima_x = torch.from_numpy(np.asarray(content.minima_x)).to(energy.device, energy.dtype)
    d, i = nearest(q.x.detach(), minima_x)
    distance = d[:, 0].double().cpu().numpy()
    minimum = i[:, 0].cpu().numpy().astype(np.int64)
    minimum[distance > radius] = -1
    basin = np.where(minimum >= 0, np.asarray(part.basin)[np.maximum(minimum, 0)], -1).astype(np.int64)
    return Located(minimum=minimum, basin=basin, distance=distance, x=q.x.detach(),
                   energy=q.energy.double().cpu().numpy(), level=chosen, outside=outside)
