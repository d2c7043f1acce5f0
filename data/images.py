"""Pixels to tensors: scaling to [-1, 1], centre-crop and resize, channel counts, decoding.

Every image dataset goes through the same steps, so an image looks the same whichever
format it came from: centre-crop to a square on the shorter side, resize to
``size x size`` (bilinear, antialiased when shrinking), scale to [-1, 1].
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps

from landscape.data.errors import DataError

#: File suffixes (lower case) read as images by ``folder:PATH``.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})

# PIL modes that hold one grey channel (alpha, if any, is dropped).
_GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "I;16L", "I;16B", "I;16N"})
#: Integer modes of 16 bits a pixel (PNG, TIFF): 0..65535, read to 0..255 (8 bits kept).
_DEEP_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})

# ITU-R 601-2 luma weights, the ones PIL's convert("L") uses, so a tensor made grey here
# matches a file converted by PIL. They sum to 1, so [-1, 1] maps into [-1, 1].
_LUMA = (0.299, 0.587, 0.114)

# Images resized per chunk, to bound the temporary memory of F.interpolate.
_CHUNK = 2048

# Below this many files, thread start-up costs more than it saves.
_PARALLEL_MIN = 64


def uint8_to_unit(images: np.ndarray) -> torch.Tensor:
    """Map 8-bit pixels 0..255 to float32 -1..1 (0 -> -1, 255 -> 1 exactly).

    Parameters
    ----------
    images : np.ndarray
        uint8 array of any shape.

    Returns
    -------
    torch.Tensor
        float32 of the same shape.
    """
    # astype copies, so read-only inputs (np.frombuffer over file bytes) are never shared.
    return torch.from_numpy(np.asarray(images).astype(np.float32)).div_(127.5).sub_(1.0)


def _free_memory() -> int | None:
    """Bytes of memory available for new arrays: the machine's, no more than the process's
    own limits leave (:func:`landscape.checks.available_memory`; None where unknown)."""
    from landscape.checks import available_memory

    return available_memory()


def _size(n: float) -> str:
    return f"{n / 2**30:,.1f} GiB" if n >= 2**30 else f"{n / 2**20:,.0f} MiB"


def check_room(count: int, channels: int, size: int, bytes_per_value: int) -> None:
    """Refuse ``count`` images of ``channels x size x size`` that would not fit in the free
    memory, before anything is allocated (a ``data.size`` of thousands of pixels asks for
    terabytes).

    Raises
    ------
    DataError
        One line with the size needed and the size free.
    """
    refuse_beyond_memory(count * channels * size * size * bytes_per_value,
                         f"{count:,} images of {channels}x{size}x{size} need about",
                         "choose a smaller size (--set data.size=N) or fewer images (--set data.limit=N)")


def refuse_beyond_memory(need: int, what: str, advice: str) -> None:
    """Raise ``DataError("<what> <need>, more than the <free> of memory free: <advice>")``
    where ``need`` bytes would not fit in the memory free (nothing where it is unknown)."""
    free = _free_memory()
    if free is not None and need > free:
        raise DataError(f"{what} {_size(need)}, more than the {_size(free)} of memory free: {advice}")


def crop_resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre-crop ``[N, C, H, W]`` images to a square and resize them to ``size``.

    Bilinear with ``align_corners=False``, antialiased when shrinking so that small
    sizes are not aliased; the result is clamped to [-1, 1]. Images already square and
    of the right size are returned unchanged.

    Parameters
    ----------
    x : torch.Tensor
        float32 ``[N, C, H, W]`` in [-1, 1].
    size : int
        Output side length.

    Returns
    -------
    torch.Tensor
        float32 ``[N, C, size, size]``.
    """
    n, c, h, w = x.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    x = x[:, :, top : top + side, left : left + side]
    if side == size:
        return x.contiguous()
    check_room(n, c, size, x.element_size())
    out = torch.empty(n, c, size, size, dtype=x.dtype)
    for i in range(0, n, _CHUNK):
        out[i : i + _CHUNK] = F.interpolate(
            x[i : i + _CHUNK], size=(size, size), mode="bilinear", align_corners=False, antialias=size < side
        )
    return out.clamp_(-1.0, 1.0)


def set_channels(x: torch.Tensor, grayscale: bool | None) -> torch.Tensor:
    """Convert ``[N, C, H, W]`` images to one channel (``True``) or three (``False``).

    ``None`` keeps what the data has. Grey from colour uses the luma weights PIL uses;
    colour from grey repeats the channel.

    Parameters
    ----------
    x : torch.Tensor
        ``[N, 1 or 3, H, W]``.
    grayscale : bool or None
        Wanted channel count: ``True`` one, ``False`` three, ``None`` unchanged.

    Returns
    -------
    torch.Tensor
        The images with the wanted channel count.
    """
    channels = x.shape[1]
    if grayscale is True and channels == 3:
        weights = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
        return (x * weights).sum(dim=1, keepdim=True).clamp_(-1.0, 1.0)
    if grayscale is False and channels == 1:
        return x.expand(-1, 3, -1, -1).contiguous()
    return x


def _is_grey(img: Image.Image) -> bool:
    """Whether ``img`` holds grey levels only: a grey mode, or a palette (GIF, 8-bit PNG)
    whose colours are all grey."""
    if img.mode in _GRAY_MODES:
        return True
    if img.mode in ("P", "PA"):
        palette = img.getpalette() or []
        rgb = np.asarray(palette[: len(palette) // 3 * 3], dtype=np.int64).reshape(-1, 3)
        return bool(rgb.size) and bool((rgb == rgb[:, :1]).all())
    return False


def _decode(path: Path, size: int, grayscale: bool | None) -> np.ndarray:
    """Read one image file as uint8 ``[C, size, size]``: C = 1 (grey) or 3 (RGB)."""
    try:
        with Image.open(path) as img:
            gray = grayscale if grayscale is not None else _is_grey(img)
            # JPEG can decode at 1/2, 1/4 or 1/8 scale for free; keeping at least twice
            # the target size leaves the antialiased resize below to do the real work.
            if img.format == "JPEG":
                img.draft(None, (2 * size, 2 * size))
            img = ImageOps.exif_transpose(img)  # a camera's picture as its viewer shows it
            if img.mode in _DEEP_MODES:  # PIL's convert would clip every value above 255 to white
                deep = np.asarray(img, dtype=np.float64)
                img = Image.fromarray(np.clip(np.rint(deep / 257.0), 0, 255).astype(np.uint8))
            img = img.convert("L" if gray else "RGB")
            w, h = img.size
            side = min(w, h)
            left, top = (w - side) // 2, (h - side) // 2
            box = (left, top, left + side, top + side)
            img = img.resize((size, size), Image.Resampling.BILINEAR, box=box) if side != size else img.crop(box)
            arr = np.asarray(img, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"cannot read image {path}: {err}") from err
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def decode_images(paths: Sequence[Path], size: int, grayscale: bool | None) -> np.ndarray:
    """Decode image files into one uint8 ``[N, C, size, size]`` array.

    Each image is centre-cropped to a square and resized with PIL's bilinear filter
    (which widens its support when shrinking, i.e. antialiases). With ``grayscale=None``
    the result has one channel only if every file is grey, otherwise grey files are
    repeated to three channels (what PIL's L -> RGB conversion does).

    Cost: one decode per file, spread over a few threads (PIL releases the GIL while
    decoding and resizing).

    Parameters
    ----------
    paths : sequence of Path
        The files, in the order wanted.
    size : int
        Output side length.
    grayscale : bool or None
        ``True`` one channel, ``False`` three, ``None`` decided by the files.

    Returns
    -------
    np.ndarray
        uint8 ``[len(paths), C, size, size]``.

    Raises
    ------
    DataError
        If PIL cannot read a file; the message names it.
    """
    if not paths:
        return np.zeros((0, 1 if grayscale else 3, size, size), dtype=np.uint8)
    check_room(len(paths), 1 if grayscale else 3, size, 5)  # these bytes, then their float32 copy
    workers = min(8, os.cpu_count() or 1)
    if len(paths) < _PARALLEL_MIN or workers == 1:
        arrays = [_decode(p, size, grayscale) for p in paths]
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            arrays = list(pool.map(lambda p: _decode(p, size, grayscale), paths))
    if any(a.shape[0] == 3 for a in arrays):
        arrays = [np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a for a in arrays]
    return np.stack(arrays)
