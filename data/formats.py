"""Readers for the on-disk formats: IDX (MNIST), CIFAR-10 binary, Oxford flowers, folders, npz.

Each reader checks what it reads and returns plain numpy arrays (uint8 ``[N, C, H, W]``
images and int64 labels, or the raw npz array); ``data.datasets`` turns them into
tensors. Missing files raise ``DatasetNotFound`` naming what was expected where; files
that exist but are not what they claim raise ``DataError`` naming the file.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from landscape.data.errors import DataError, DatasetNotFound
from landscape.data.images import IMAGE_SUFFIXES, decode_images, refuse_beyond_memory

#: Appended to "not found" messages for datasets looked up under the data root.
ROOT_HINT = "(set --data-root or EBM_LANDSCAPE_DATA)"

# ---------------------------------------------------------------------------- MNIST (IDX)

MNIST_IMAGES = "train-images-idx3-ubyte"
MNIST_LABELS = "train-labels-idx1-ubyte"
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
IDX_LABELS_MAGIC = 0x00000801  # unsigned byte, 1 dimension


def _read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it starts with the gzip magic (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: corrupt gzip data ({err})") from err
    return raw


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (the MNIST format), gzipped or not.

    Layout: a big-endian 32-bit magic number ``0x000008DD`` (``08`` = unsigned byte,
    ``DD`` = number of dimensions), one big-endian 32-bit size per dimension, then the
    values in row-major order.

    Parameters
    ----------
    path : Path
        The file.
    magic : int
        The magic number expected (``IDX_IMAGES_MAGIC`` or ``IDX_LABELS_MAGIC``).

    Returns
    -------
    np.ndarray
        uint8 array with the dimensions from the header.

    Raises
    ------
    DataError
        Wrong magic number, or a length that does not match the header.
    """
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: not an IDX file ({len(raw)} bytes)")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise DataError(f"{path}: not an IDX file of this kind (magic 0x{found:08x}, expected 0x{magic:08x})")
    ndim = magic & 0xFF
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = start + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "too long"
        raise DataError(f"{path}: {what}: {len(raw)} bytes, header {list(dims)} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=start).reshape(dims)


def _find_idx(folder: Path, name: str) -> Path | None:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def load_mnist(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the MNIST training set from ``folder`` (IDX files, each optionally gzipped).

    Parameters
    ----------
    folder : Path
        The folder holding ``train-images-idx3-ubyte[.gz]`` and
        ``train-labels-idx1-ubyte[.gz]``.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        uint8 images ``[N, 1, H, W]`` and int64 labels ``[N]``.

    Raises
    ------
    DatasetNotFound
        Either file is missing.
    DataError
        A file is corrupt or the two disagree on the number of examples.
    """
    images_path, labels_path = _find_idx(folder, MNIST_IMAGES), _find_idx(folder, MNIST_LABELS)
    if images_path is None or labels_path is None:
        raise DatasetNotFound(
            f"mnist not found: expected {MNIST_IMAGES}[.gz] and {MNIST_LABELS}[.gz] in {folder} {ROOT_HINT}"
        )
    images = read_idx(images_path, IDX_IMAGES_MAGIC)
    labels = read_idx(labels_path, IDX_LABELS_MAGIC)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"mnist in {folder}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    return images[:, None], labels.astype(np.int64)


# ---------------------------------------------------------------------------- CIFAR-10

CIFAR_FOLDER = "cifar-10-batches-bin"
CIFAR_BATCHES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR_RECORD = 1 + 3 * 32 * 32  # label byte, then the R, G and B planes, each 32x32 row-major


def cifar10_folders(root: Path) -> tuple[Path, Path]:
    """The two places CIFAR-10's binary batches may sit under ``root``, preferred first."""
    return root / "cifar10" / CIFAR_FOLDER, root / CIFAR_FOLDER


def load_cifar10(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read the CIFAR-10 training batches (binary version) found under ``root``.

    Looks in ``root/cifar10/cifar-10-batches-bin/`` then ``root/cifar-10-batches-bin/``
    and reads whichever of ``data_batch_1.bin`` .. ``data_batch_5.bin`` the first folder
    holding any of them has, in order. The test batch is never read.

    Parameters
    ----------
    root : Path
        The data root.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        uint8 images ``[N, 3, 32, 32]`` (RGB) and int64 labels ``[N]``.

    Raises
    ------
    DatasetNotFound
        No training batch in either folder.
    DataError
        A batch whose length is not a multiple of 3073 bytes or with a label above 9.
    """
    for folder in cifar10_folders(root):
        paths = [folder / name for name in CIFAR_BATCHES if (folder / name).is_file()]
        if paths:
            break
    else:
        first, second = cifar10_folders(root)
        raise DatasetNotFound(
            f"cifar10 not found: expected {CIFAR_BATCHES[0]} .. {CIFAR_BATCHES[-1]} in {first} or {second} {ROOT_HINT}"
        )
    records = []
    for path in paths:
        raw = path.read_bytes()
        if len(raw) == 0 or len(raw) % CIFAR_RECORD:
            raise DataError(f"{path}: {len(raw)} bytes is not a whole number of {CIFAR_RECORD}-byte CIFAR-10 records")
        records.append(np.frombuffer(raw, dtype=np.uint8).reshape(-1, CIFAR_RECORD))
    table = np.concatenate(records)
    labels = table[:, 0].astype(np.int64)
    if labels.max() > 9:
        raise DataError(f"cifar10 in {folder}: label {labels.max()} out of 0..9; is this CIFAR-100?")
    return table[:, 1:].reshape(-1, 3, 32, 32), labels


# ---------------------------------------------------------------------------- Oxford flowers

FLOWERS_LABELS = "imagelabels.mat"


def flowers_image(folder: Path, index: int) -> Path:
    """Path of flower image ``index`` (1-based), e.g. ``jpg/image_00001.jpg``."""
    return folder / "jpg" / f"image_{index:05d}.jpg"


def flowers_cache(folder: Path, size: int) -> Path:
    """Where the decoded ``size x size`` flowers are cached."""
    return folder / f".ebm-landscape-cache-{size}.npz"


def _read_flower_labels(path: Path) -> np.ndarray:
    import scipy.io  # only flowers needs it; keeps `import data` light
    from scipy.io.matlab import MatReadError

    try:
        labels = scipy.io.loadmat(str(path))["labels"]
    except KeyError as err:
        raise DataError(f"{path}: no 'labels' array") from err
    except (OSError, ValueError, TypeError, zlib.error, MatReadError) as err:
        raise DataError(f"{path}: cannot read MATLAB file ({err})") from err
    labels = np.asarray(labels).reshape(-1).astype(np.int64) - 1  # classes 1..102 -> 0..101
    if labels.size == 0 or labels.min() < 0:
        raise DataError(f"{path}: labels must be classes 1..102")
    return labels


def _fingerprint(paths: list[Path]) -> str:
    """The files a cache is made of, as their names, sizes and modification times: an
    image rewritten in place (the folder's own time unchanged) changes it."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            st = path.stat()
        except OSError:
            return ""  # a file missing: no cache matches (the decoding names it)
        digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _read_cache(path: Path, count: int, size: int, fingerprint: str) -> np.ndarray | None:
    """The cached images if the cache is there, intact and made of these very files."""
    try:
        with np.load(path, allow_pickle=False) as cache:
            images, made_of = cache["images"], str(cache["source"])
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # missing, corrupt or of an older layout: rebuilt by the caller
    if images.dtype != np.uint8 or images.shape != (count, 3, size, size) or not fingerprint or made_of != fingerprint:
        return None
    return images


def _write_cache(path: Path, images: np.ndarray, fingerprint: str) -> None:
    """Write atomically (temp file + rename) so an interrupted run leaves no half cache."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, images=images, source=np.array(fingerprint))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the data folder may be shared
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        # A read-only data folder is legitimate; the data are still correct, only slow.
        warnings.warn(f"could not write the flowers cache {path}: {err}", stacklevel=3)


def load_flowers(folder: Path, size: int, limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Read Oxford 102 flowers, centre-cropped and resized to ``size``.

    Decoding all 8,189 JPEGs takes a while, so the full decoded set is cached as
    ``.ebm-landscape-cache-<size>.npz`` next to ``jpg/`` and reused while the images it
    was made of keep their names, sizes and modification times (an image added, removed
    or rewritten invalidates it). A corrupt cache is ignored and rewritten. With
    ``limit`` and no valid cache, only the first ``limit`` images are decoded and no
    cache is written.

    Parameters
    ----------
    folder : Path
        The folder holding ``jpg/`` and ``imagelabels.mat``.
    size : int
        Output side length.
    limit : int or None
        Keep only the first ``limit`` images.

    Returns
    -------
    tuple[np.ndarray, np.ndarray]
        uint8 images ``[N, 3, size, size]`` and int64 labels ``[N]`` in 0..101.

    Raises
    ------
    DatasetNotFound
        ``jpg/``, ``imagelabels.mat`` or one of the images it lists is missing.
    DataError
        An unreadable image or labels file.
    """
    jpg, labels_path = folder / "jpg", folder / FLOWERS_LABELS
    if not jpg.is_dir() or not labels_path.is_file():
        raise DatasetNotFound(
            f"flowers not found: expected jpg/image_00001.jpg ... and {FLOWERS_LABELS} in {folder} {ROOT_HINT}"
        )
    labels = _read_flower_labels(labels_path)
    count = labels.shape[0]
    cache = flowers_cache(folder, size)
    every = [flowers_image(folder, i) for i in range(1, count + 1)]
    fingerprint = _fingerprint(every)
    images = _read_cache(cache, count, size, fingerprint)
    if images is not None:
        return images[:limit], labels[:limit]
    wanted = count if limit is None else min(limit, count)
    paths = every[:wanted]
    for path in paths:
        if not path.is_file():
            raise DatasetNotFound(f"flowers: {path.name} missing from {jpg} ({FLOWERS_LABELS} lists {count} images)")
    images = decode_images(paths, size, grayscale=False)
    if wanted == count:
        _write_cache(cache, images, fingerprint)
    return images, labels[:wanted]


# ---------------------------------------------------------------------------- image folder


def list_images(path: Path) -> list[Path]:
    """Image files under ``path``, recursively, sorted by relative path; hidden ones skipped.

    Hidden files and folders (name starting with ".") are skipped: they are caches or
    metadata such as macOS ``._name.jpg`` forks, which share the suffix but are not images.
    So is anything that is not a regular file (links followed): a FIFO named ``a.png``
    would block the read forever, a device never end.
    """
    found = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES \
                    and os.path.isfile(os.path.join(dirpath, name)):
                found.append(Path(dirpath) / name)
    return sorted(found, key=lambda p: p.relative_to(path).as_posix())


def load_folder(
    path: Path, size: int, grayscale: bool | None, limit: int | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Read every image under ``path``; subfolders are classes.

    If every image sits in a subfolder, its label is the index of its top-level
    subfolder among the sorted names of the subfolders that hold images (the usual
    one-folder-per-class layout); otherwise there are no labels.

    Parameters
    ----------
    path : Path
        The folder.
    size : int
        Output side length.
    grayscale : bool or None
        ``True`` one channel, ``False`` three, ``None``: one only if every image is grey.
    limit : int or None
        Keep only the first ``limit`` images (in sorted order); class indices still
        count every subfolder.

    Returns
    -------
    tuple[np.ndarray, np.ndarray or None]
        uint8 images ``[N, C, size, size]`` and int64 labels ``[N]`` or None.

    Raises
    ------
    DatasetNotFound
        ``path`` is not a folder or holds no image files.
    DataError
        A file PIL cannot read; the message names it.
    """
    if not path.is_dir():
        raise DatasetNotFound(f"folder not found: {path} (moved? give --dataset folder:NEW_PATH)")
    files = list_images(path)
    if not files:
        suffixes = ", ".join(sorted(s[1:] for s in IMAGE_SUFFIXES))
        raise DatasetNotFound(f"no image files ({suffixes}) under {path}")
    parts = [f.relative_to(path).parts for f in files]
    labels = None
    if all(len(p) > 1 for p in parts):
        classes = sorted({p[0] for p in parts})
        index = {name: i for i, name in enumerate(classes)}
        labels = np.array([index[p[0]] for p in parts], dtype=np.int64)[:limit]
    return decode_images(files[:limit], size, grayscale), labels


# ---------------------------------------------------------------------------- npz


def _check_claim(path: Path, archive: np.lib.npyio.NpzFile, key: str) -> None:
    """Refuse an array whose header claims more (or fewer) bytes than its member of the
    archive holds, before reading it: a header can claim 10^12 rows in a file of a few bytes."""
    names = archive.zip.namelist()
    member = f"{key}.npy" if f"{key}.npy" in names else key
    info = archive.zip.getinfo(member)
    with archive.zip.open(info) as f:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f)
        held = info.file_size - f.tell()
    if dtype.hasobject:
        raise DataError(f"{path}: array '{key}' holds Python objects ({dtype}); need numbers (objects are never "
                        "unpickled)")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != held:
        raise DataError(f"{path}: array '{key}' claims shape {list(shape)} of {dtype} ({claimed:,} bytes), but the "
                        f"file holds {held:,} bytes of it")
    # (a deflated member of a few MB can unpack to gigabytes)
    refuse_beyond_memory(claimed, f"{path}: array '{key}' of shape {list(shape)} unpacks to",
                         "not data this machine can load (save fewer examples)")


def load_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Read the data array and optional labels from a ``.npz`` file.

    The data are the array ``x``, else ``images``, else the first array that is not
    ``y`` or ``labels``; labels are ``y`` or ``labels`` if present. Interpretation of the values (layout, scaling) is
    left to the caller.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    tuple[np.ndarray, np.ndarray or None]
        The data array and int64 labels ``[N]`` (or None).

    Raises
    ------
    DatasetNotFound
        No such file.
    DataError
        Not a readable npz, no arrays, or labels that are not N integers.
    """
    if not path.is_file():
        raise DatasetNotFound(f"npz not found: {path} (moved? give --dataset npz:NEW_PATH)")
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path}: a single .npy array, not an .npz archive; save it with np.savez(path, x=...)")
        with archive:
            keys = list(archive.files)
            if not keys:
                raise DataError(f"{path}: no arrays in the file")
            data_keys = [k for k in keys if k not in ("y", "labels")] or keys  # (labels are never the data)
            key = next((k for k in ("x", "images") if k in keys), data_keys[0])
            label_key = next((k for k in ("y", "labels") if k in keys and k != key), None)
            for name in (key, label_key):
                if name is not None:
                    _check_claim(path, archive, name)
            x = archive[key]
            labels = archive[label_key] if label_key else None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        if isinstance(err, DataError):
            raise
        if "allow_pickle" in str(err):  # (numpy's own advice, to load it unsafely, is not ours to give)
            raise DataError(f"{path}: holds pickled Python objects, not arrays of numbers: refused (nothing in it "
                            "is run); save plain arrays with np.savez(path, x=...)") from None
        raise DataError(f"{path}: cannot read as .npz ({err})") from err
    if x.ndim < 2:
        raise DataError(f"{path}: array '{key}' has shape {list(x.shape)}; need [N, D] points or [N, ...] images "
                        f"(the file holds {', '.join(repr(k) for k in keys)}: name the data x)")
    if labels is not None:
        if labels.ndim != 1 or labels.shape[0] != x.shape[0] or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(
                f"{path}: labels '{label_key}' must be {x.shape[0]} integers, got {labels.dtype} {list(labels.shape)}"
            )
        labels = labels.astype(np.int64)
    return x, labels
