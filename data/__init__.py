"""Datasets by name -> tensors; the only code in the project that touches image files.

``load(name)`` returns a ``Dataset`` (float32 examples, optional labels, per-example
shape, value range, and the exact density for toy data). Nothing is ever downloaded.
It imports nothing else of the project but the memory probe of ``landscape.checks``
(installed as ``landscape.data``).
"""

from landscape.data.datasets import DATA_ROOT_ENV, DATASET_NAMES, Dataset, canonical_name, default_root, load
from landscape.data.errors import DataError, DatasetNotFound
from landscape.data.toy import TOY_DENSITIES, ToyDensity

__all__ = [
    "DATASET_NAMES",
    "DATA_ROOT_ENV",
    "DataError",
    "Dataset",
    "DatasetNotFound",
    "TOY_DENSITIES",
    "ToyDensity",
    "canonical_name",
    "default_root",
    "load",
]
