"""ebm-landscape: the analysis library (energies, the Langevin sampler, landscape maps).

This package knows nothing about training or data sets: it takes an energy and answers
questions about it: samples, minima, basins, barriers, the tree (``build_map``), how
chains end as the noise grows (``funnel_probe``) and which minima are spurious
(``diagnose_map``).
"""

from landscape.ad import ADConfig, assign_basins, attraction_diffusion, extend_basins
from landscape.diagnosis import Diagnosis, DiagnosisRule, diagnose, diagnose_map
from landscape.energy import Energy, autograd_value_and_grad
from landscape.errors import LandscapeError, NonFiniteEnergyError
from landscape.funnel import FunnelConfig, FunnelResult, funnel_probe
from landscape.langevin import ChainState, SampleResult, StepInfo, init, langevin_step, mala_step, sample
from landscape.mapfile import read_map, write_map
from landscape.mapper import build_map, extend_map
from landscape.minima import Minima, find_minima, quench
from landscape.paths import string_method
from landscape.records import MapContent, PairTable, Partition
from landscape.settings import MapConfig
from landscape.sources import energy_from_factory, energy_from_function, energy_from_torchscript
from landscape.tree import BarrierTree, minimax_tree

__version__ = "0.1.0"

__all__ = [
    "ADConfig",
    "BarrierTree",
    "ChainState",
    "Diagnosis",
    "DiagnosisRule",
    "Energy",
    "FunnelConfig",
    "FunnelResult",
    "LandscapeError",
    "MapConfig",
    "MapContent",
    "Minima",
    "NonFiniteEnergyError",
    "PairTable",
    "Partition",
    "SampleResult",
    "StepInfo",
    "__version__",
    "assign_basins",
    "attraction_diffusion",
    "autograd_value_and_grad",
    "build_map",
    "diagnose",
    "diagnose_map",
    "energy_from_factory",
    "energy_from_function",
    "energy_from_torchscript",
    "extend_basins",
    "extend_map",
    "find_minima",
    "funnel_probe",
    "init",
    "langevin_step",
    "mala_step",
    "minimax_tree",
    "quench",
    "read_map",
    "sample",
    "string_method",
    "write_map",
]
