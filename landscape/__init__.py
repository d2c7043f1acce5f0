"""ebm-landscape: train energy-based models and map their energy landscapes.

One import name. The analysis library (it knows nothing about training or data sets):

- :mod:`landscape.sampling`: the Langevin sampler, kernels and batched chains;
- :mod:`landscape.mapping`: minima, barriers, the tree over minima, attraction-diffusion
  basins, the pipeline (``build_map``) and the funnel probe;
- :mod:`landscape.diagnosis`: spurious minima, labels, the HTML report, comparing maps;
- :mod:`landscape.io`: the map's records, its file schema and files, energy sources;
- :mod:`landscape.plots`: pictures of maps.

Beside it, installed under the same name: :mod:`landscape.train` (networks, presets, the
ML learning loop, checkpoints, the long-run check), :mod:`landscape.data` (data sets by
name) and :mod:`landscape.cli` (the ``landscape`` command).

The names below are imported on first use, so ``import landscape`` (and ``landscape
--help``) does not load torch.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

__version__ = "0.1.0"

@functools.cache
def tool_version() -> str:
    """The version maps, checkpoints and reports are stamped with: ``__version__``, and
    where the package runs from a git checkout of its source (an editable install), the
    commit it runs from, ``0.1.0+g1a2b3c4d5e6f`` (``.dirty`` added where tracked files
    differ from that commit), so that two outputs made by different code say so. An
    installed package, or a checkout git cannot read, gives ``__version__``."""
    return __version__ + _checkout_label()


def _checkout_label() -> str:
    """``+g<commit>[.dirty]`` where this package's files are tracked by a git checkout,
    else ``""``. Reads only (``GIT_OPTIONAL_LOCKS=0``: no index refresh that a concurrent
    git would trip over)."""
    import os
    import subprocess
    from pathlib import Path

    here = Path(__file__).resolve().parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, timeout=5,
                                  env=env, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.SubprocessError):  # (no git, a hung file system)
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    # (a package installed into a virtual environment inside a checkout is not that checkout's)
    if git("ls-files", "--error-unmatch", "__init__.py") is None:
        return ""
    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return ""
    changed = git("status", "--porcelain", "--untracked-files=no")
    return f"+g{commit}" + (".dirty" if changed else "")

# public name -> module that defines it
_EXPORTS = {
    "Energy": "landscape.energy",
    "autograd_value_and_grad": "landscape.energy",
    "LandscapeError": "landscape.errors",
    "NonFiniteEnergyError": "landscape.errors",
    "ChainState": "landscape.sampling.langevin",
    "SampleResult": "landscape.sampling.langevin",
    "StepInfo": "landscape.sampling.langevin",
    "init": "landscape.sampling.langevin",
    "langevin_step": "landscape.sampling.langevin",
    "mala_step": "landscape.sampling.langevin",
    "sample": "landscape.sampling.langevin",
    "Minima": "landscape.mapping.minima",
    "find_minima": "landscape.mapping.minima",
    "quench": "landscape.mapping.minima",
    "ADConfig": "landscape.mapping.ad",
    "assign_basins": "landscape.mapping.ad",
    "attraction_diffusion": "landscape.mapping.ad",
    "extend_basins": "landscape.mapping.ad",
    "string_method": "landscape.mapping.paths",
    "BarrierTree": "landscape.mapping.tree",
    "minimax_tree": "landscape.mapping.tree",
    "MapConfig": "landscape.mapping.settings",
    "build_map": "landscape.mapping.pipeline",
    "extend_map": "landscape.mapping.pipeline",
    "FunnelConfig": "landscape.mapping.funnel",
    "FunnelResult": "landscape.mapping.funnel",
    "funnel_probe": "landscape.mapping.funnel",
    "funnel_config": "landscape.mapping.funnel",
    "Located": "landscape.mapping.locate",
    "locate": "landscape.mapping.locate",
    "Diagnosis": "landscape.diagnosis.spurious",
    "DiagnosisRule": "landscape.diagnosis.spurious",
    "diagnose": "landscape.diagnosis.spurious",
    "diagnose_map": "landscape.diagnosis.spurious",
    "map_profile": "landscape.diagnosis.compare",
    "exploration_coverage": "landscape.io.views",
    "state_coverage": "landscape.io.views",
    "MapContent": "landscape.io.records",
    "PairTable": "landscape.io.records",
    "Partition": "landscape.io.records",
    "read_map": "landscape.io.mapfile",
    "write_map": "landscape.io.mapfile",
    "clear_progress": "landscape.io.progress",
    "energy_from_factory": "landscape.io.sources",
    "energy_from_function": "landscape.io.sources",
    "energy_from_torchscript": "landscape.io.sources",
}

__all__ = sorted([*_EXPORTS, "__version__", "tool_version"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'landscape' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
