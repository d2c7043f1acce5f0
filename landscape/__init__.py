"""ebm-landscape: the analysis library (energies, the Langevin sampler, landscape maps).

This package knows nothing about training or data sets: it takes an energy and answers
questions about it.
"""

from landscape.energy import Energy, autograd_value_and_grad
from landscape.errors import LandscapeError, NonFiniteEnergyError
from landscape.langevin import ChainState, SampleResult, StepInfo, init, langevin_step, mala_step, sample

__version__ = "0.1.0"

__all__ = [
    "ChainState",
    "Energy",
    "LandscapeError",
    "NonFiniteEnergyError",
    "SampleResult",
    "StepInfo",
    "autograd_value_and_grad",
    "init",
    "langevin_step",
    "mala_step",
    "sample",
    "__version__",
]
