"""Datasets by name: ``load(name) -> Dataset``, tensors ready for training and mapping.

Names (``DATASET_NAMES``): the toy densities ``rings`` and ``8gaussians``; ``digits``
(scikit-learn's bundled 8x8 digits, no files needed); ``mnist``, ``cifar10`` and
``flowers`` read from a data root (``default_root()``); ``folder:PATH`` and
``npz:PATH`` read what the path points at. Nothing is ever downloaded: a missing dataset
raises ``DatasetNotFound`` saying which files to put where.

Images come out as float32 ``[N, C, size, size]`` in [-1, 1], centre-cropped to a square
and resized (see ``data.images``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from landscape.data import formats
from landscape.data.errors import DataError
from landscape.data.images import crop_resize, set_channels, uint8_to_unit
from landscape.data.toy import TOY_DENSITIES, ToyDensity

#: Every name ``load`` accepts (PATH stands for a path of your choice).
DATASET_NAMES = ("rings", "8gaussians", "digits", "mnist", "cifar10", "flowers", "folder:PATH", "npz:PATH")

#: Environment variable naming the data root.
DATA_ROOT_ENV = "EBM_LANDSCAPE_DATA"

# Native side length of each image dataset, used when no size is asked for.
_DEFAULT_SIZE = {"digits": 8, "mnist": 28, "cifar10": 32, "flowers": 32, "folder": 32}

_IMAGE_RANGE = (-1.0, 1.0)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset in memory.

    Equality is identity (``eq=False``): comparing tensors field by field has no single
    truth value.

    Attributes
    ----------
    name : str
        What ``load`` was given, normalised: ``"digits"``, ``"rings"``,
        ``"folder:/abs/path"``, ``"npz:/abs/path"``.
    x : torch.Tensor
        float32 ``[N, *shape]``. Images are in [-1, 1]; for toy data, a fixed sample of
        N points from ``density``.
    labels : torch.Tensor or None
        int64 ``[N]`` class indices, or None.
    shape : tuple[int, ...]
        Shape of one example: ``(2,)`` for toy data, ``(C, H, W)`` for images.
    range : tuple[float, float]
        ``(low, high)`` of the values: ``(-1, 1)`` for images, a square box holding
        (essentially) all the mass for points.
    density : ToyDensity or None
        The exact density, for toy data.
    """

    name: str
    x: torch.Tensor
    labels: torch.Tensor | None
    shape: tuple[int, ...]
    range: tuple[float, float]
    density: ToyDensity | None = None

    def __post_init__(self) -> None:
        if self.x.dtype != torch.float32 or tuple(self.x.shape[1:]) != tuple(self.shape):
            raise DataError(
                f"{self.name}: x is {self.x.dtype} {list(self.x.shape)}, expected float32 [N, {self.shape}]"
            )
        if self.labels is not None and self.labels.shape != (self.x.shape[0],):
            raise DataError(f"{self.name}: {self.labels.shape[0]} labels for {self.x.shape[0]} examples")

    def __len__(self) -> int:
        return self.x.shape[0]

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Draw a batch of ``n`` examples.

        Toy data: fresh exact samples from the density. Finite data: examples drawn
        uniformly at random with replacement.

        Parameters
        ----------
        n : int
            Batch size.
        generator : torch.Generator
            The only source of randomness.

        Returns
        -------
        torch.Tensor
            float32 ``[n, *shape]``.
        """
        if self.density is not None:
            return self.density.sample(n, generator)
        index = torch.randint(len(self), (n,), generator=generator, device=generator.device)
        return self.x[index.to(self.x.device)]

    def in_range(self, box: tuple[float, float] | None) -> torch.Tensor:
        """The examples in a model's own value range ``box`` (``(low, high)``): images
        carried linearly from the data set's range onto it (black at ``low``, white at
        ``high``: a network trained on pixels in [0, 1] maps with ``box = (0, 1)``); points,
        and images whose range is ``box`` already (or ``box`` None), as they are."""
        if box is None or len(self.shape) != 3 or tuple(float(b) for b in box) == tuple(self.range):
            return self.x
        (low, high), (r_low, r_high) = box, self.range
        return (self.x - r_low) * ((high - low) / (r_high - r_low)) + low

    def to_dict(self) -> dict:
        """Plain data describing the dataset, for checkpoints: name, shape, range."""
        return {"name": self.name, "shape": list(self.shape), "range": [float(v) for v in self.range]}


def default_root() -> Path:
    """The data root: ``$EBM_LANDSCAPE_DATA`` if set, else ``./datasets`` (absolute).

    Returns
    -------
    Path
        An absolute path; it need not exist.
    """
    env = os.environ.get(DATA_ROOT_ENV)
    return Path(env).expanduser().absolute() if env else Path.cwd() / "datasets"


def _check_count(what: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise DataError(f"{what} must be a positive integer, got {value!r}")


def _images(
    name: str,
    x: torch.Tensor,
    labels: np.ndarray | None,
    size: int,
    grayscale: bool | None,
) -> Dataset:
    """Finish float ``[N, C, H, W]`` images in [-1, 1]: crop, resize, channels."""
    x = set_channels(crop_resize(x, size), grayscale)
    y = None if labels is None else torch.from_numpy(np.ascontiguousarray(labels, dtype=np.int64))
    return Dataset(name, x, y, tuple(x.shape[1:]), _IMAGE_RANGE)


def _toy(name: str, samples: int, seed: int, limit: int | None = None) -> Dataset:
    density = TOY_DENSITIES[name]()
    x = density.sample(samples, torch.Generator().manual_seed(seed))[:limit]
    return Dataset(name, x, None, (2,), density.box, density)


def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 digits: images ``[1797, 8, 8]`` (0..16) and labels.

    Read from the CSV file scikit-learn ships (64 pixels, then the label, a row per
    image), which is what ``sklearn.datasets.load_digits`` reads; importing that module
    costs most of a second per process, reading the file 20 ms. Where the file is not
    where scikit-learn keeps it, ``load_digits`` reads it."""
    import gzip
    import importlib.util

    spec = importlib.util.find_spec("sklearn")  # (finds the package without importing it)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "datasets" / "data" / "digits.csv.gz"
        if path.is_file():
            with gzip.open(path, "rt") as f:
                table = np.loadtxt(f, delimiter=",")
            if table.ndim == 2 and table.shape[1] == 65:
                return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    digits = load_digits()
    return digits.images, digits.target


def _digits(size: int | None, grayscale: bool | None, limit: int | None) -> Dataset:
    images, labels = _digits_table()
    values = torch.from_numpy(images[:limit]).to(torch.float32)  # 0..16
    x = (values / 8.0 - 1.0)[:, None]
    return _images("digits", x, labels[:limit], size or _DEFAULT_SIZE["digits"], grayscale)


def _npz(path: Path, size: int | None, grayscale: bool | None, limit: int | None,
         like: tuple[int, ...] | None = None) -> Dataset:
    """Interpret an npz array as points ``[N, D]`` or images (see ``load``): flat rows
    ``[N, H*W]`` as grey images ``like`` ``[1, H, W]`` where that is given."""
    raw, labels = formats.load_npz(path)
    if like is not None and raw.ndim == 2 and len(like) == 3 and like[0] == 1 and raw.shape[1] == math.prod(like):
        raw = raw.reshape(raw.shape[0], *like)
    name = f"npz:{path}"
    if raw.shape[0] == 0:
        raise DataError(f"{path}: no examples")
    if raw.dtype == np.bool_ or not (np.issubdtype(raw.dtype, np.integer) or np.issubdtype(raw.dtype, np.floating)):
        raise DataError(f"{path}: data of type {raw.dtype}; need integers or floats")
    if np.issubdtype(raw.dtype, np.floating) and not np.isfinite(raw).all():
        raise DataError(f"{path}: data contain NaN or infinite values")
    lo, hi = float(raw.min()), float(raw.max())
    y = None if labels is None else labels[:limit]

    if raw.ndim == 2:  # points: used as they are, in the data's box widened by 10 % of its span on each side
        pad = 0.1 * (hi - lo) if hi > lo else 1.0
        x = torch.from_numpy(np.ascontiguousarray(raw[:limit], dtype=np.float32))
        y_t = None if y is None else torch.from_numpy(y)
        return Dataset(name, x, y_t, (raw.shape[1],), (lo - pad, hi + pad))

    if raw.ndim == 3:
        images = raw[:, None]
    elif raw.ndim == 4 and raw.shape[1] in (1, 3):
        # Also taken when both axis 1 and axis 3 could be channels ([N, 3, H, 3]):
        # channels-first is the layout the rest of the project uses.
        images = raw
    elif raw.ndim == 4 and raw.shape[3] in (1, 3):
        images = raw.transpose(0, 3, 1, 2)
    else:
        raise DataError(
            f"{path}: images of shape {list(raw.shape)}; need [N, H, W], [N, H, W, C] or [N, C, H, W] with C = 1 or 3"
        )
    images = images[:limit]
    if np.issubdtype(raw.dtype, np.integer):
        if lo < 0 or hi > 255:
            raise DataError(f"{path}: integer pixels in [{lo:g}, {hi:g}]; need 0..255")
        if hi <= 1:  # 0/1 masks read as 0..255 would be black images
            raise DataError(f"{path}: integer pixels of 0 and 1 only, read as 0..255 they are black; give them as "
                            f"floats in [0, 1] (x.astype(np.float32)) or scale them to 0..255")
        x = uint8_to_unit(images.astype(np.uint8))
    elif lo >= 0.0 and hi <= 1.0:
        # [0, 1] is checked before [-1, 1]: every [0, 1] image also lies in [-1, 1], and
        # images in [-1, 1] with no value below 0 (nothing darker than mid-grey) are rare.
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32)).mul_(2.0).sub_(1.0)
    elif lo >= -1.0 and hi <= 1.0:
        x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    else:
        raise DataError(
            f"{path}: float pixels in [{lo:g}, {hi:g}]; need values in [0, 1] or [-1, 1] (or uint8 0..255)"
        )
    return _images(name, x, y, size or min(x.shape[2], x.shape[3]), grayscale)


def canonical_name(name: str) -> str:
    """``name`` as a record keeps it: fixed names in lower case, ``folder:``/``npz:``
    paths absolute (a map or checkpoint read from another folder finds the same files).
    The name a loaded :class:`Dataset` carries."""
    key = name.strip()
    kind, sep, rest = key.partition(":")
    if sep and kind.lower() in ("folder", "npz") and rest.strip():
        return f"{kind.lower()}:{Path(rest.strip()).expanduser().absolute()}"
    return key.lower() if key.lower() in DATASET_NAMES or key.lower() in TOY_DENSITIES else key


def load(
    name: str,
    *,
    size: int | None = None,
    root: str | os.PathLike | None = None,
    limit: int | None = None,
    toy_samples: int = 10000,
    generator_seed: int = 0,
    grayscale: bool | None = None,
    like: tuple[int, ...] | None = None,
) -> Dataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        One of ``DATASET_NAMES``: ``rings``, ``8gaussians``, ``digits``, ``mnist``,
        ``cifar10``, ``flowers``, ``folder:PATH``, ``npz:PATH``. Fixed names are case
        insensitive.
    size : int, optional
        Side length of images (default: 8 digits, 28 mnist, 32 cifar10, flowers and
        folders, the shorter side for npz images). Ignored for points.
    root : path, optional
        Data root for ``mnist`` (``root/mnist/``), ``cifar10``
        (``root/cifar10/cifar-10-batches-bin/`` or ``root/cifar-10-batches-bin/``) and
        ``flowers`` (``root/flowers/``); default ``default_root()``.
    limit : int, optional
        Keep only the first ``limit`` examples (quick runs and tests).
    toy_samples : int
        Size of the fixed sample stored in ``x`` for toy densities.
    generator_seed : int
        Seed of that sample.
    grayscale : bool, optional
        ``True``: one channel (luma); ``False``: three; ``None``: the data's own
        (for folders: one only if every image is grey). Ignored for points.
    like : tuple of int, optional
        The shape of one example the caller needs (a model's input). An npz of flat rows
        ``[N, H*W]`` is read as images of this shape ``[1, H, W]`` instead of as points:
        flat pixel rows are how many grey image sets are stored. (Colour rows are left as
        they are: whether their pixels run channel by channel or pixel by pixel cannot be
        told from the array.)

    Returns
    -------
    Dataset
        The data; see ``Dataset``.

    Raises
    ------
    DataError
        Unknown name, bad argument, or a file that is not what it should be.
    DatasetNotFound
        The dataset's files are not where they are looked for; the message names them.

    Examples
    --------
    >>> ds = load("digits")
    >>> ds.x.shape, ds.range
    (torch.Size([1797, 1, 8, 8]), (-1.0, 1.0))
    """
    for what, value in (("size", size), ("limit", limit), ("toy_samples", toy_samples)):
        _check_count(what, value)
    key = name.strip()
    lowered = key.lower()
    data_root = Path(root).expanduser().absolute() if root is not None else default_root()

    if lowered in TOY_DENSITIES:
        # (the first ``limit`` of the fixed sample: a limit keeps a prefix, as for every data set)
        return _toy(lowered, toy_samples, generator_seed, limit)
    if lowered == "digits":
        return _digits(size, grayscale, limit)
    if lowered == "mnist":
        images, labels = formats.load_mnist(data_root / "mnist")
        x = uint8_to_unit(images[:limit])
        return _images("mnist", x, labels[:limit], size or _DEFAULT_SIZE["mnist"], grayscale)
    if lowered == "cifar10":
        images, labels = formats.load_cifar10(data_root)
        x = uint8_to_unit(images[:limit])
        return _images("cifar10", x, labels[:limit], size or _DEFAULT_SIZE["cifar10"], grayscale)
    if lowered == "flowers":
        images, labels = formats.load_flowers(data_root / "flowers", size or _DEFAULT_SIZE["flowers"], limit)
        return _images("flowers", uint8_to_unit(images), labels, images.shape[-1], grayscale)

    kind, sep, rest = key.partition(":")
    if sep and kind.lower() in ("folder", "npz"):
        if not rest.strip():
            raise DataError(f"{kind.lower()}: needs a path, e.g. {kind.lower()}:/data/my_images")
        path = Path(rest.strip()).expanduser().absolute()
        if kind.lower() == "npz":
            return _npz(path, size, grayscale, limit, like)
        side = size or _DEFAULT_SIZE["folder"]
        images, labels = formats.load_folder(path, side, grayscale, limit)
        return _images(f"folder:{path}", uint8_to_unit(images), labels, side, grayscale)

    raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASET_NAMES)}")
