"""Two-dimensional toy densities whose exact log-density is known.

Both come from the toy experiments of Nijkamp et al. 2019, "On the Anatomy of MCMC-based
ML Learning of EBMs", and follow its public reference code (``ToyDataset``): equal
component weights, standard deviation 0.15, and a plotting window of the outermost mode
plus four standard deviations, which we use as the box.

``rings``
    Four rings of radii 1, 2, 3, 4. The reference code evaluates the density as::

        q(x) = sum_k 1/4 * N(||x||; r_k, 0.15^2) / (2 pi r_k)

    This is normalised: in polar coordinates the radial marginal of one ring is
    ``rho * N(rho; r_k, s^2) / r_k``, whose integral over the real line is
    ``E[rho] / r_k = 1``; only the mass below ``rho = 0`` (about 1e-11) is lost. Drawing
    the radius as ``r_k + 0.15 z``, as the reference sampler does, gives a *different*
    density (``N(rho) / (2 pi rho)``, up to 30 % off across the inner ring and infinite
    at the origin), so here the radius is drawn from the radial marginal above instead:
    samples and ``log_density`` describe the same distribution.
``8gaussians``
    Eight isotropic Gaussians of standard deviation 0.15 at ``(cos 2 pi k / 8,
    sin 2 pi k / 8)``.

Densities hold no random state: ``sample`` takes an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable

import torch

from landscape.data.errors import DataError

#: Standard deviation of every toy component (Anatomy reference code, ``toy_sd``).
TOY_STD = 0.15

# The size-biased radius is drawn by rejection from N(0, 1) in z = (rho - r_k) / s with
# acceptance (1 + c z) / (1 + c Z_MAX), c = s / r_k. Proposals beyond Z_MAX are accepted
# with probability 1 instead of (slightly) more: the mass affected is ~1e-15.
_Z_MAX = 8.0


def _check_points(x: torch.Tensor) -> torch.Tensor:
    """Points as float64 ``[n, 2]``; anything else is an error."""
    if x.ndim != 2 or x.shape[1] != 2:
        raise DataError(f"toy densities take points of shape [n, 2], got {list(x.shape)}")
    return x.to(torch.float64)


class ToyDensity(ABC):
    """A 2-D density with exact samples and an exact, normalised log-density.

    Attributes
    ----------
    name : str
        The dataset name (``"rings"``, ``"8gaussians"``).
    box : tuple[float, float]
        ``(low, high)`` of a square holding all but a negligible part of the mass
        (well under 1e-4), used for plots, grids and uniform-noise initialisation.
    """

    name: str
    box: tuple[float, float]

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw ``n`` exact samples.

        Parameters
        ----------
        n : int
            Number of points.
        generator : torch.Generator
            The only source of randomness; samples land on its device.

        Returns
        -------
        torch.Tensor
            float32 ``[n, 2]``.
        """

    @abstractmethod
    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        """Exact normalised ``log q(x)``.

        Parameters
        ----------
        x : torch.Tensor
            Points ``[n, 2]``, any float dtype.

        Returns
        -------
        torch.Tensor
            float64 ``[n]`` on ``x``'s device.

        Raises
        ------
        DataError
            If ``x`` is not ``[n, 2]``.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, box={self.box})"


class Rings(ToyDensity):
    """Four concentric rings of equal weight; see the module docstring for the formula.

    Parameters
    ----------
    radii : tuple[float, ...]
        Ring radii (default 1, 2, 3, 4 as in the Anatomy reference code).
    std : float
        Radial standard deviation.
    """

    def __init__(self, radii: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0), std: float = TOY_STD) -> None:
        self.name = "rings"
        self.radii = tuple(float(r) for r in radii)
        self.std = float(std)
        half = max(self.radii) + 4 * self.std
        self.box = (-half, half)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = generator.device
        mu = torch.tensor(self.radii, dtype=torch.float64, device=device)
        ring = torch.randint(len(self.radii), (n,), generator=generator, device=device)
        # Rejection sampling of the size-biased radius rho * N(rho; r_k, s^2) / r_k
        # (module docstring); pending holds the indices still waiting for an acceptance.
        radius = torch.empty(n, dtype=torch.float64, device=device)
        pending = torch.arange(n, device=device)
        while pending.numel() > 0:
            m = pending.numel()
            z = torch.randn(m, dtype=torch.float64, generator=generator, device=device)
            u = torch.rand(m, dtype=torch.float64, generator=generator, device=device)
            c = self.std / mu[ring[pending]]
            accept = u * (1 + c * _Z_MAX) < 1 + c * z
            radius[pending[accept]] = mu[ring[pending[accept]]] + self.std * z[accept]
            pending = pending[~accept]
        angle = 2 * math.pi * torch.rand(n, dtype=torch.float64, generator=generator, device=device)
        return torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=1).float()

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_points(x)
        mu = torch.tensor(self.radii, dtype=torch.float64, device=x.device)
        rho = torch.linalg.vector_norm(x, dim=1, keepdim=True)
        log_radial = -0.5 * ((rho - mu) / self.std) ** 2 - math.log(self.std * math.sqrt(2 * math.pi))
        log_terms = log_radial - torch.log(2 * math.pi * mu) - math.log(len(self.radii))
        return torch.logsumexp(log_terms, dim=1)


class EightGaussians(ToyDensity):
    """Eight isotropic Gaussians of equal weight on a circle.

    Parameters
    ----------
    radius : float
        Distance of the means from the origin (1 in the Anatomy reference code).
    std : float
        Per-coordinate standard deviation.
    count : int
        Number of components, at angles ``2 pi k / count``.
    """

    def __init__(self, radius: float = 1.0, std: float = TOY_STD, count: int = 8) -> None:
        self.name = "8gaussians"
        self.std = float(std)
        angles = 2 * math.pi * torch.arange(count, dtype=torch.float64) / count
        self.means = float(radius) * torch.stack((torch.cos(angles), torch.sin(angles)), dim=1)
        half = float(radius) + 4 * self.std
        self.box = (-half, half)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        device = generator.device
        k = torch.randint(self.means.shape[0], (n,), generator=generator, device=device)
        noise = torch.randn(n, 2, dtype=torch.float64, generator=generator, device=device)
        return (self.means.to(device)[k] + self.std * noise).float()

    def log_density(self, x: torch.Tensor) -> torch.Tensor:
        x = _check_points(x)
        sq = ((x[:, None, :] - self.means.to(x.device)[None]) ** 2).sum(dim=2)
        log_terms = -0.5 * sq / self.std**2 - math.log(2 * math.pi * self.std**2)
        return torch.logsumexp(log_terms, dim=1) - math.log(self.means.shape[0])


#: Toy densities by dataset name; each value builds a fresh density.
TOY_DENSITIES: dict[str, Callable[[], ToyDensity]] = {
    "rings": Rings,
    "8gaussians": EightGaussians,
}
