"""The data package on tiny files written in each real format, and on exact toy densities."""

import gzip
import math
import os
import struct
import time

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from landscape.data import (
    DATASET_NAMES,
    TOY_DENSITIES,
    DataError,
    Dataset,
    DatasetNotFound,
    ToyDensity,
    default_root,
    load,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def unit(v) -> np.ndarray:
    """What 8-bit pixel values must become: 0 -> -1, 255 -> 1."""
    return np.asarray(v, dtype=np.float64) / 127.5 - 1.0


def grid(density: ToyDensity, n: int) -> tuple[torch.Tensor, float]:
    lo, hi = density.box
    g = torch.linspace(lo, hi, n, dtype=torch.float64)
    xx, yy = torch.meshgrid(g, g, indexing="ij")
    return torch.stack((xx.reshape(-1), yy.reshape(-1)), dim=1), float(g[1] - g[0]) ** 2


# --------------------------------------------------------------------------- toy densities


@pytest.mark.parametrize("name", ["rings", "8gaussians"])
def test_toy_log_density_integrates_to_one_over_its_box(name):
    density = TOY_DENSITIES[name]()
    points, cell = grid(density, 601)
    total = density.log_density(points).exp().sum().item() * cell
    assert total == pytest.approx(1.0, abs=1e-3)


def test_rings_log_density_equals_the_reference_formula_at_known_points():
    # q(x) = sum_k 1/4 N(|x|; k+1, 0.15^2) / (2 pi (k+1))  (Anatomy reference code).
    def q(r):
        return sum(
            0.25 * math.exp(-0.5 * ((r - mu) / 0.15) ** 2) / (0.15 * math.sqrt(2 * math.pi)) / (2 * math.pi * mu)
            for mu in (1, 2, 3, 4)
        )

    x = torch.tensor([[2.0, 0.0], [0.0, -1.1], [1.5, 2.0], [0.0, 0.0]], dtype=torch.float64)
    expected = [math.log(q(2.0)), math.log(q(1.1)), math.log(q(2.5)), math.log(q(0.0))]
    got = TOY_DENSITIES["rings"]().log_density(x)
    assert got.dtype == torch.float64
    assert got.tolist() == pytest.approx(expected, rel=1e-9)
    assert torch.isfinite(got).all()  # finite at the origin too


def test_eight_gaussians_log_density_equals_the_mixture_formula():
    s = 0.15
    means = [(math.cos(2 * math.pi * k / 8), math.sin(2 * math.pi * k / 8)) for k in range(8)]

    def q(x, y):
        return sum(math.exp(-((x - a) ** 2 + (y - b) ** 2) / (2 * s * s)) / (2 * math.pi * s * s) for a, b in means) / 8

    pts = [(1.0, 0.0), (0.5, 0.6), (0.0, 0.0)]
    got = TOY_DENSITIES["8gaussians"]().log_density(torch.tensor(pts, dtype=torch.float64))
    assert got.tolist() == pytest.approx([math.log(q(*p)) for p in pts], rel=1e-9)


def test_rings_samples_have_the_radial_statistics_of_the_density():
    # The radial marginal of one ring is rho N(rho; mu, s^2) / mu: mean mu + s^2/mu,
    # std s sqrt(1 - (s/mu)^2), and P(rho < mu) = 1/2 - (s/mu)/sqrt(2 pi).
    s = 0.15
    x = TOY_DENSITIES["rings"]().sample(200_000, gen(1))
    assert x.shape == (200_000, 2) and x.dtype == torch.float32
    r = torch.linalg.vector_norm(x.double(), dim=1)
    ring = torch.round(r).clamp(1, 4)
    for mu in (1, 2, 3, 4):
        rk = r[ring == mu]
        c = s / mu
        assert rk.numel() / r.numel() == pytest.approx(0.25, abs=0.01)
        assert rk.mean().item() == pytest.approx(mu + s * c, abs=0.003)
        assert rk.std().item() == pytest.approx(s * math.sqrt(1 - c * c), rel=0.02)
        assert (rk < mu).double().mean().item() == pytest.approx(0.5 - c / math.sqrt(2 * math.pi), abs=0.01)
    angle = torch.atan2(x[:, 1], x[:, 0])
    assert torch.cos(angle).mean().abs() < 0.01 and torch.sin(angle).mean().abs() < 0.01


def test_rings_sample_histogram_matches_log_density():
    # Samples and log_density must describe one distribution: radial histogram against
    # the radial marginal 2 pi rho q(rho) integrated over each bin.
    density = TOY_DENSITIES["rings"]()
    r = torch.linalg.vector_norm(density.sample(400_000, gen(2)).double(), dim=1)
    edges = torch.linspace(0.4, 4.6, 43, dtype=torch.float64)
    fine = torch.linspace(0.4, 4.6, 42 * 200 + 1, dtype=torch.float64)
    marginal = 2 * math.pi * fine * density.log_density(torch.stack((fine, torch.zeros_like(fine)), 1)).exp()
    cdf = torch.cat((torch.zeros(1, dtype=torch.float64), torch.cumulative_trapezoid(marginal, fine)))
    expected = cdf[::200].diff()
    observed = torch.histogram(r, bins=edges).hist / r.numel()
    assert (observed - expected).abs().max().item() < 0.002  # bins hold up to ~0.05 of the mass


def test_eight_gaussians_samples_sit_on_their_components():
    density = TOY_DENSITIES["8gaussians"]()
    x = density.sample(80_000, gen(3)).double()
    angles = 2 * math.pi * torch.arange(8, dtype=torch.float64) / 8
    means = torch.stack((torch.cos(angles), torch.sin(angles)), 1)
    nearest = torch.cdist(x, means).argmin(1)
    for k in range(8):
        xk = x[nearest == k]
        assert xk.shape[0] / x.shape[0] == pytest.approx(1 / 8, abs=0.01)
        assert torch.allclose(xk.mean(0), means[k], atol=0.01)
        assert xk.std(0).tolist() == pytest.approx([0.15, 0.15], rel=0.05)


@pytest.mark.parametrize("name", ["rings", "8gaussians"])
def test_toy_sample_mean_log_density_matches_minus_entropy(name):
    # E_samples[log q] = int q log q when samples come from q (any mismatch adds a KL).
    density = TOY_DENSITIES[name]()
    points, cell = grid(density, 601)
    logq = density.log_density(points)
    neg_entropy = (logq.exp() * logq).sum().item() * cell
    logq_samples = density.log_density(density.sample(200_000, gen(4)))
    assert logq_samples.mean().item() == pytest.approx(neg_entropy, abs=0.01)


def test_toy_samples_follow_the_generator_and_log_density_checks_shape():
    density = TOY_DENSITIES["rings"]()
    assert torch.equal(density.sample(100, gen(5)), density.sample(100, gen(5)))
    assert not torch.equal(density.sample(100, gen(5)), density.sample(100, gen(6)))
    with pytest.raises(DataError, match=r"\[n, 2\]"):
        density.log_density(torch.zeros(3, 3))


def test_toy_dataset_holds_a_fixed_sample_and_draws_fresh_ones():
    ds = load("rings", toy_samples=500, generator_seed=7)
    assert ds.x.shape == (500, 2) and ds.shape == (2,) and ds.labels is None
    assert ds.range == pytest.approx((-4.6, 4.6)) and ds.density is not None
    assert torch.equal(ds.x, load("rings", toy_samples=500, generator_seed=7).x)
    assert not torch.equal(ds.x, load("rings", toy_samples=500, generator_seed=8).x)
    assert load("8gaussians", limit=30).x.shape == (30, 2)
    # a limit keeps the first examples of the fixed sample, as for every other data set (a
    # diagnosis of a limited run's map indexes them: it drew a sample of its own)
    assert torch.equal(load("rings", limit=30).x, load("rings").x[:30])
    assert load("8gaussians").range == pytest.approx((-1.6, 1.6))
    batch = ds.sample(64, gen(1))
    assert batch.shape == (64, 2)
    assert torch.equal(batch, ds.density.sample(64, gen(1)))  # fresh draws, not rows of x
    assert ds.to_dict() == {"name": "rings", "shape": [2], "range": [-4.6, 4.6]}


# --------------------------------------------------------------------------- digits


def test_digits_are_the_bundled_set_scaled_to_unit_range():
    from sklearn.datasets import load_digits

    ds = load("digits")
    ref = load_digits()
    assert ds.name == "digits" and ds.shape == (1, 8, 8) and ds.x.shape == (1797, 1, 8, 8)
    assert ds.range == (-1.0, 1.0) and ds.x.dtype == torch.float32
    assert ds.x.min().item() == -1.0 and ds.x.max().item() == 1.0
    assert np.allclose(ds.x[:, 0].numpy(), ref.images / 16 * 2 - 1)
    assert ds.labels.dtype == torch.int64 and sorted(ds.labels.unique().tolist()) == list(range(10))
    assert ds.labels.tolist() == ref.target.tolist()
    big = load("digits", size=16, limit=5)
    assert big.x.shape == (5, 1, 16, 16) and big.x.min() >= -1 and big.x.max() <= 1
    # A bilinear upscale keeps the mean brightness of each image close.
    assert torch.allclose(big.x.mean((1, 2, 3)), ds.x[:5].mean((1, 2, 3)), atol=0.05)


def test_digits_read_without_importing_sklearn_and_through_it_where_its_file_is_elsewhere(monkeypatch):
    # The bundled CSV is read directly (importing sklearn.datasets costs most of a second a
    # process); where it is not found, load_digits reads it: the same images and labels.
    import importlib.util
    import subprocess
    import sys

    said = subprocess.run([sys.executable, "-c", "import sys; from landscape.data import load; load('digits'); "
                           "print('sklearn.datasets' in sys.modules)"], capture_output=True, text=True)
    assert said.returncode == 0 and said.stdout.strip() == "False", said.stderr
    direct = load("digits")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    through = load("digits")
    assert torch.equal(direct.x, through.x) and torch.equal(direct.labels, through.labels)


# --------------------------------------------------------------------------- mnist (IDX)


def idx_bytes(magic: int, values: np.ndarray) -> bytes:
    return struct.pack(">I", magic) + struct.pack(f">{values.ndim}I", *values.shape) + values.astype(np.uint8).tobytes()


def mnist_arrays(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    images = (np.arange(n * 28 * 28) * 7 % 256).astype(np.uint8).reshape(n, 28, 28)
    return images, np.array([7, 0, 9][:n], dtype=np.uint8)


def write_mnist(folder, images, labels, gz=False):
    folder.mkdir(parents=True, exist_ok=True)
    for name, magic, arr in (
        ("train-images-idx3-ubyte", 0x803, images),
        ("train-labels-idx1-ubyte", 0x801, labels),
    ):
        raw = idx_bytes(magic, arr)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx_files_load_with_exact_values_and_labels(tmp_path, gz):
    images, labels = mnist_arrays()
    write_mnist(tmp_path / "mnist", images, labels, gz=gz)
    ds = load("mnist", root=tmp_path)
    assert ds.name == "mnist" and ds.shape == (1, 28, 28) and ds.x.shape == (3, 1, 28, 28)
    assert np.allclose(ds.x[:, 0].numpy(), unit(images), atol=1e-6)
    assert ds.labels.tolist() == [7, 0, 9]
    assert load("mnist", root=tmp_path, limit=2).x.shape == (2, 1, 28, 28)


def test_mnist_resize_keeps_flat_images_flat(tmp_path):
    images = np.full((2, 28, 28), 200, dtype=np.uint8)
    images[1] = 10
    write_mnist(tmp_path / "mnist", images, np.array([1, 2], dtype=np.uint8))
    ds = load("mnist", root=tmp_path, size=14)
    assert ds.shape == (1, 14, 14)
    assert torch.allclose(ds.x[0], torch.tensor(unit(200), dtype=torch.float32), atol=1e-5)
    assert torch.allclose(ds.x[1], torch.tensor(unit(10), dtype=torch.float32), atol=1e-5)


def test_mnist_corrupt_files_raise_data_error_naming_the_file(tmp_path):
    images, labels = mnist_arrays()
    folder = tmp_path / "mnist"
    write_mnist(folder, images, labels)
    img = folder / "train-images-idx3-ubyte"
    good = img.read_bytes()

    img.write_bytes(good[:-10])
    with pytest.raises(DataError, match="truncated") as err:
        load("mnist", root=tmp_path)
    assert "train-images-idx3-ubyte" in str(err.value)

    img.write_bytes(struct.pack(">I", 0x801) + good[4:])  # a labels magic on the images file
    with pytest.raises(DataError, match="magic"):
        load("mnist", root=tmp_path)

    img.unlink()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(good)[:-20])
    with pytest.raises(DataError, match="gzip"):
        load("mnist", root=tmp_path)

    (folder / "train-images-idx3-ubyte.gz").unlink()
    write_mnist(folder, images, labels[:2])  # 3 images, 2 labels
    with pytest.raises(DataError, match="3 images but 2 labels"):
        load("mnist", root=tmp_path)


def test_missing_mnist_message_names_files_folder_and_how_to_point_elsewhere(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load("mnist", root=tmp_path)
    msg = str(err.value)
    assert "\n" not in msg
    assert "train-images-idx3-ubyte[.gz]" in msg and "train-labels-idx1-ubyte[.gz]" in msg
    assert str(tmp_path / "mnist") in msg and "EBM_LANDSCAPE_DATA" in msg and "--data-root" in msg


def test_data_root_comes_from_the_environment_or_the_working_directory(tmp_path, monkeypatch):
    images, labels = mnist_arrays()
    write_mnist(tmp_path / "elsewhere" / "mnist", images, labels)
    monkeypatch.setenv("EBM_LANDSCAPE_DATA", str(tmp_path / "elsewhere"))
    assert default_root() == tmp_path / "elsewhere"
    assert load("mnist").x.shape == (3, 1, 28, 28)

    monkeypatch.delenv("EBM_LANDSCAPE_DATA")
    monkeypatch.chdir(tmp_path)
    assert default_root() == tmp_path / "datasets"
    with pytest.raises(DatasetNotFound, match=str(tmp_path / "datasets" / "mnist")):
        load("mnist")


# --------------------------------------------------------------------------- cifar10


def cifar_record(label: int, r, g, b) -> bytes:
    planes = [np.broadcast_to(np.asarray(p, dtype=np.uint8), (32, 32)) for p in (r, g, b)]
    return bytes([label]) + b"".join(p.tobytes() for p in planes)


def test_cifar10_records_load_with_rgb_plane_order_and_row_major_pixels(tmp_path):
    folder = tmp_path / "cifar10" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    ramp = (np.arange(32 * 32) % 256).reshape(32, 32)  # value = 32 * row + col (mod 256)
    (folder / "data_batch_1.bin").write_bytes(cifar_record(3, 255, 0, 0) + cifar_record(7, 0, 255, 0))
    (folder / "data_batch_3.bin").write_bytes(cifar_record(9, 0, 0, ramp))
    (folder / "test_batch.bin").write_bytes(cifar_record(1, 128, 128, 128))  # never read

    ds = load("cifar10", root=tmp_path)
    assert ds.shape == (3, 32, 32) and ds.x.shape == (3, 3, 32, 32)
    assert ds.labels.tolist() == [3, 7, 9]
    assert (ds.x[0, 0] == 1.0).all() and (ds.x[0, 1:] == -1.0).all()
    assert (ds.x[1, 1] == 1.0).all() and (ds.x[1, [0, 2]] == -1.0).all()
    assert np.allclose(ds.x[2, 2].numpy(), unit(ramp), atol=1e-6)
    assert ds.x[2, 2, 0, 1] > ds.x[2, 2, 0, 0]  # columns vary along the last axis

    small = load("cifar10", root=tmp_path, size=8, grayscale=True, limit=1)
    assert small.shape == (1, 8, 8)
    assert torch.allclose(small.x, torch.tensor(0.299 * 2 - 1), atol=1e-5)  # luma of pure red


def test_cifar10_also_found_directly_under_the_root_and_checks_record_size(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    batch = folder / "data_batch_2.bin"
    batch.write_bytes(cifar_record(0, 10, 20, 30))
    ds = load("cifar10", root=tmp_path)
    assert ds.x.shape == (1, 3, 32, 32) and ds.x[0, :, 5, 5].tolist() == pytest.approx(unit([10, 20, 30]).tolist())

    batch.write_bytes(cifar_record(0, 10, 20, 30)[:-1])
    with pytest.raises(DataError, match="3073"):
        load("cifar10", root=tmp_path)
    batch.write_bytes(cifar_record(42, 10, 20, 30))
    with pytest.raises(DataError, match="label 42"):
        load("cifar10", root=tmp_path)


def test_missing_cifar10_names_the_batches_and_both_folders(tmp_path):
    with pytest.raises(DatasetNotFound) as err:
        load("cifar10", root=tmp_path)
    msg = str(err.value)
    assert "data_batch_1.bin" in msg and str(tmp_path / "cifar10" / "cifar-10-batches-bin") in msg
    assert str(tmp_path / "cifar-10-batches-bin") in msg and "EBM_LANDSCAPE_DATA" in msg


# --------------------------------------------------------------------------- flowers


def write_flower(path, colour, size=(40, 30)):
    Image.new("RGB", size, colour).save(path, quality=95)


def make_flowers(root, colours, labels):
    folder = root / "flowers"
    (folder / "jpg").mkdir(parents=True)
    for i, colour in enumerate(colours, start=1):
        write_flower(folder / "jpg" / f"image_{i:05d}.jpg", colour, size=(40 + 10 * i, 30))
    scipy.io.savemat(folder / "imagelabels.mat", {"labels": np.array([labels], dtype=np.uint8)})
    past = time.time() - 100  # so a cache written now is strictly newer even on coarse clocks
    os.utime(folder / "jpg", (past, past))
    return folder


def test_flowers_load_colours_labels_and_cache(tmp_path):
    colours = [(255, 0, 0), (0, 0, 255), (0, 255, 0)]
    folder = make_flowers(tmp_path, colours, [5, 1, 102])
    ds = load("flowers", root=tmp_path, size=8)
    assert ds.name == "flowers" and ds.shape == (3, 8, 8) and ds.x.shape == (3, 3, 8, 8)
    assert ds.labels.tolist() == [4, 0, 101]
    for i, colour in enumerate(colours):
        want = torch.tensor(unit(colour), dtype=torch.float32).view(3, 1, 1)
        assert torch.allclose(ds.x[i], want.expand(3, 8, 8), atol=0.05)  # JPEG is lossy
    cache = folder / ".ebm-landscape-cache-8.npz"
    assert cache.is_file()

    # The cache is what a second load reads (its images stand in for the files' here).
    with np.load(cache) as made:
        np.savez(cache, images=255 - made["images"], source=made["source"])
    assert torch.equal(load("flowers", root=tmp_path, size=8).x, -ds.x)
    # An image rewritten in place (the jpg folder's time unchanged) invalidates it.
    folder_time = (folder / "jpg").stat().st_mtime_ns
    write_flower(folder / "jpg" / "image_00001.jpg", (255, 255, 255), size=(50, 30))
    os.utime(folder / "jpg", ns=(folder_time, folder_time))
    fresh = load("flowers", root=tmp_path, size=8)
    assert torch.allclose(fresh.x[0], torch.ones(3, 8, 8), atol=0.05)
    assert torch.allclose(fresh.x[1:], ds.x[1:])

    # A corrupt cache is ignored and rewritten.
    cache.write_bytes(b"not a zip file")
    assert torch.equal(load("flowers", root=tmp_path, size=8).x, fresh.x)
    with np.load(cache) as rebuilt:
        assert rebuilt["images"].shape == (3, 3, 8, 8)


def test_flowers_limit_decodes_a_prefix_without_caching_and_missing_files_are_named(tmp_path):
    folder = make_flowers(tmp_path, [(255, 0, 0), (0, 0, 255), (0, 255, 0)], [1, 2, 3])
    ds = load("flowers", root=tmp_path, size=4, limit=2)
    assert ds.x.shape == (2, 3, 4, 4) and ds.labels.tolist() == [0, 1]
    assert not (folder / ".ebm-landscape-cache-4.npz").exists()

    (folder / "jpg" / "image_00003.jpg").unlink()
    with pytest.raises(DatasetNotFound, match="image_00003.jpg"):
        load("flowers", root=tmp_path, size=4)
    with pytest.raises(DatasetNotFound, match="imagelabels.mat") as err:
        load("flowers", root=tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / "flowers") in str(err.value)


# --------------------------------------------------------------------------- folder:PATH


def test_folder_with_class_subfolders_gives_labels_and_exact_png_values(tmp_path):
    root = tmp_path / "imgs"
    for sub in ("dogs/puppies", "cats"):
        (root / sub).mkdir(parents=True)
    Image.new("RGB", (10, 10), (255, 0, 0)).save(root / "cats" / "a.png")
    Image.new("L", (12, 8), 100).save(root / "dogs" / "b.PNG")
    Image.new("RGB", (9, 9), (0, 0, 255)).save(root / "dogs" / "puppies" / "c.bmp")
    Image.new("RGB", (400, 300), (0, 128, 255)).save(root / "dogs" / "puppies" / "d.jpeg", quality=95)
    (root / "cats" / "notes.txt").write_text("not an image")
    (root / "cats" / "._a.png").write_bytes(b"macOS metadata, skipped")

    ds = load(f"folder:{root}", size=6)
    assert ds.name == f"folder:{root}"
    assert ds.shape == (3, 6, 6) and ds.x.shape == (4, 3, 6, 6)
    assert ds.labels.tolist() == [0, 1, 1, 1]  # cats/a, dogs/b, dogs/puppies/c, dogs/puppies/d
    assert torch.allclose(ds.x[0], torch.tensor(unit([255, 0, 0]), dtype=torch.float32).view(3, 1, 1).expand(3, 6, 6))
    assert torch.allclose(ds.x[1], torch.full((3, 6, 6), float(unit(100)))), "grey repeated to RGB"
    assert torch.allclose(ds.x[2, 2], torch.ones(6, 6)) and torch.allclose(ds.x[2, :2], -torch.ones(2, 6, 6))
    # A large JPEG (decoded at reduced scale, then resized) keeps its flat colour.
    want = torch.tensor(unit([0, 128, 255]), dtype=torch.float32).view(3, 1, 1).expand(3, 6, 6)
    assert torch.allclose(ds.x[3], want, atol=0.05)
    assert load(f"folder:{root}").shape == (3, 32, 32)

    grey = load(f"folder:{root}", size=6, grayscale=True)
    assert grey.shape == (1, 6, 6)
    assert torch.allclose(grey.x[0], torch.full((1, 6, 6), float(unit(76))))  # PIL luma of red: 76


def test_folder_of_grey_images_without_subfolders_has_one_channel_and_no_labels(tmp_path):
    Image.new("L", (8, 8), 0).save(tmp_path / "b.png")
    Image.new("L", (8, 8), 255).save(tmp_path / "a.jpg")
    ds = load(f"folder:{tmp_path}", size=8)
    assert ds.shape == (1, 8, 8) and ds.labels is None
    assert ds.x[0].ge(0.98).all() and ds.x[1].eq(-1.0).all()  # sorted: a.jpg, b.png
    assert load(f"folder:{tmp_path}", size=8, grayscale=False).shape == (3, 8, 8)


def test_folder_centre_crops_the_longer_side(tmp_path):
    wide = np.zeros((16, 48, 3), dtype=np.uint8)
    wide[:, :16, 0] = 255
    wide[:, 16:32, 1] = 255
    wide[:, 32:, 2] = 255
    Image.fromarray(wide).save(tmp_path / "wide.png")
    ds = load(f"folder:{tmp_path}", size=16)
    green = torch.tensor([-1.0, 1.0, -1.0]).view(3, 1, 1).expand(3, 16, 16)
    assert torch.equal(ds.x[0], green)


def test_folder_errors_name_the_broken_file_or_the_folder(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 this is not really a jpeg")
    with pytest.raises(DataError, match="broken.jpg"):
        load(f"folder:{tmp_path}")
    with pytest.raises(DatasetNotFound, match="nothing-here"):
        load(f"folder:{tmp_path / 'nothing-here'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFound, match="no image files"):
        load(f"folder:{tmp_path / 'empty'}")


# --------------------------------------------------------------------------- npz:PATH


def test_npz_uint8_image_layouts_agree(tmp_path):
    rng = np.random.default_rng(0)
    nchw = rng.integers(0, 256, size=(4, 3, 6, 6), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", x=nchw.transpose(0, 2, 3, 1), y=np.arange(4))
    np.savez(tmp_path / "nchw.npz", images=nchw)
    np.savez(tmp_path / "nhw.npz", nchw[:, 0])  # unnamed: the first array is used

    a = load(f"npz:{tmp_path / 'nhwc.npz'}")
    b = load(f"npz:{tmp_path / 'nchw.npz'}")
    c = load(f"npz:{tmp_path / 'nhw.npz'}")
    assert a.shape == b.shape == (3, 6, 6) and c.shape == (1, 6, 6)
    assert np.allclose(a.x.numpy(), unit(nchw), atol=1e-6) and torch.equal(a.x, b.x)
    assert torch.equal(c.x[:, 0], a.x[:, 0])
    assert a.labels.tolist() == [0, 1, 2, 3] and b.labels is None
    assert a.name == f"npz:{tmp_path / 'nhwc.npz'}"
    assert load(f"npz:{tmp_path / 'nchw.npz'}", size=3).shape == (3, 3, 3)
    assert load(f"npz:{tmp_path / 'nchw.npz'}", grayscale=True).shape == (1, 6, 6)


def test_npz_float_scaling_and_centre_crop(tmp_path):
    zero_one = np.linspace(0, 1, 2 * 4 * 8, dtype=np.float32).reshape(2, 4, 8)
    np.savez(tmp_path / "a.npz", x=zero_one, labels=np.array([3, 4]))
    ds = load(f"npz:{tmp_path / 'a.npz'}")
    assert ds.shape == (1, 4, 4) and ds.labels.tolist() == [3, 4]
    assert np.allclose(ds.x[:, 0].numpy(), zero_one[:, :, 2:6] * 2 - 1)  # centre 4 columns, [0,1] -> [-1,1]

    signed = zero_one * 2 - 1
    np.savez(tmp_path / "b.npz", x=signed)
    assert np.allclose(load(f"npz:{tmp_path / 'b.npz'}").x[:, 0].numpy(), signed[:, :, 2:6])

    np.savez(tmp_path / "c.npz", x=signed * 3)
    with pytest.raises(DataError, match=r"\[0, 1\] or \[-1, 1\]"):
        load(f"npz:{tmp_path / 'c.npz'}")
    np.savez(tmp_path / "d.npz", x=zero_one, y=np.array([1, 2, 3]))
    with pytest.raises(DataError, match="labels"):
        load(f"npz:{tmp_path / 'd.npz'}")
    np.savez(tmp_path / "e.npz", x=np.zeros((2, 5, 5, 5)))
    with pytest.raises(DataError, match="C = 1 or 3"):
        load(f"npz:{tmp_path / 'e.npz'}")


def test_images_are_given_in_a_models_own_pixel_range(tmp_path, capsys):
    # A network of one's own trained on pixels in [0, 1] is mapped with --box 0 1: the data
    # set's images reach its map, funnel and diagnosis as the file holds them, not in the
    # [-1, 1] data sets load in (where every example lay "outside the box" and the
    # diagnosis's bars came from images the model never saw). Points stay as they are.
    from landscape.energy import Energy
    from landscape.mapping.settings import MapConfig
    from landscape.train.energies import LoadedEnergy, load_data_like
    from landscape.train.runs import map_data

    zero_one = np.linspace(0, 1, 2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4)
    np.savez(tmp_path / "a.npz", x=zero_one)
    ds = load(f"npz:{tmp_path / 'a.npz'}")
    assert torch.equal(ds.in_range((-1.0, 1.0)), ds.x) and ds.in_range(None) is ds.x
    np.testing.assert_allclose(ds.in_range((0.0, 1.0))[:, 0].numpy(), zero_one, atol=1e-7)
    np.testing.assert_allclose(load_data_like(f"npz:{tmp_path / 'a.npz'}", None, (1, 4, 4), None, (0.0, 1.0))[:, 0],
                               zero_one, atol=1e-7)
    energy = Energy(lambda x: x.flatten(1).sum(1), shape=(1, 4, 4), data_range=(0.0, 1.0))
    said = []
    x, _ = map_data(LoadedEnergy(energy, {}), MapConfig(), dataset=f"npz:{tmp_path / 'a.npz'}", say=said.append)
    np.testing.assert_allclose(x[:, 0].numpy(), zero_one, atol=1e-7)
    assert len(said) == 1 and "images given in the box's pixel range [0, 1]" in said[0]
    pts = np.array([[0.0, 1.0], [10.0, 4.0]])
    np.savez(tmp_path / "p.npz", x=pts)
    points = load(f"npz:{tmp_path / 'p.npz'}")
    assert points.in_range((0.0, 1.0)) is points.x


def test_flat_grey_rows_are_read_as_the_images_a_model_expects(tmp_path):
    # (an npz of flat [N, 64] rows, the way sklearn and openml keep digits and MNIST, was
    # read as 64-D points and refused by a model of shape [1, 8, 8])
    from landscape.errors import LandscapeError
    from landscape.train.energies import load_data_like

    grey = np.random.default_rng(0).integers(0, 256, size=(5, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "flat.npz", x=grey.reshape(5, 64), y=np.arange(5))
    np.savez(tmp_path / "square.npz", x=grey, y=np.arange(5))
    flat = load_data_like(f"npz:{tmp_path / 'flat.npz'}", None, (1, 8, 8), None)
    assert torch.equal(flat, load_data_like(f"npz:{tmp_path / 'square.npz'}", None, (1, 8, 8), None))
    assert load(f"npz:{tmp_path / 'flat.npz'}").shape == (64,)  # (asked for nothing else: points)
    # colour rows are not guessed at (channel by channel or pixel by pixel?): the error says what to store
    np.savez(tmp_path / "rgb.npz", x=np.zeros((5, 3 * 4 * 4), dtype=np.uint8) + 7)
    with pytest.raises(LandscapeError, match=r"has examples of shape \[48\], the map's minima have shape "
                                             r"\[3, 4, 4\]: flat rows of colour images; store them as "):
        load_data_like(f"npz:{tmp_path / 'rgb.npz'}", None, (3, 4, 4), None)


def test_npz_points_are_vectors_in_a_padded_box(tmp_path):
    pts = np.array([[0.0, 1.0], [10.0, 4.0], [5.0, 5.0]])
    np.savez(tmp_path / "p.npz", x=pts)
    ds = load(f"npz:{tmp_path / 'p.npz'}", size=99)  # size is for images only
    assert ds.shape == (2,) and ds.range == pytest.approx((-1.0, 11.0))
    assert np.allclose(ds.x.numpy(), pts) and ds.density is None
    assert torch.equal(ds.sample(5, gen(0)), ds.sample(5, gen(0)))


def test_npz_missing_or_unreadable(tmp_path):
    with pytest.raises(DatasetNotFound, match="nope.npz"):
        load(f"npz:{tmp_path / 'nope.npz'}")
    (tmp_path / "bad.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.npz"):
        load(f"npz:{tmp_path / 'bad.npz'}")
    # 0/1 masks as integers would be read as 0..255, images nearly black: said, not done.
    np.savez(tmp_path / "masks.npz", x=np.random.default_rng(0).integers(0, 2, size=(5, 8, 8)))
    with pytest.raises(DataError, match=r"masks.npz: integer pixels of 0 and 1 only, .* floats in \[0, 1\]"):
        load(f"npz:{tmp_path / 'masks.npz'}")


# --------------------------------------------------------------------------- API


def test_unknown_names_and_bad_arguments_are_data_errors():
    with pytest.raises(DataError) as err:
        load("imagenet")
    for name in DATASET_NAMES:
        assert name in str(err.value)
    with pytest.raises(DataError, match="size"):
        load("digits", size=0)
    with pytest.raises(DataError, match="limit"):
        load("rings", limit=-1)
    with pytest.raises(DataError, match="path"):
        load("folder:")


def test_finite_dataset_samples_rows_with_replacement_from_the_generator():
    ds = load("digits", limit=10)
    batch = ds.sample(500, gen(3))
    assert batch.shape == (500, 1, 8, 8)
    assert torch.equal(batch, ds.sample(500, gen(3)))
    rows = {tuple(r.flatten().tolist()) for r in ds.x}
    drawn = {tuple(r.flatten().tolist()) for r in batch}
    assert drawn == rows  # 500 draws with replacement from 10 rows hit every row
    assert ds.to_dict() == {"name": "digits", "shape": [1, 8, 8], "range": [-1.0, 1.0]}
    assert isinstance(ds, Dataset) and len(ds) == 10


def test_images_that_would_not_fit_in_memory_are_refused_before_they_are_made(tmp_path, monkeypatch):
    from landscape.data import images

    free = 64 * 2**20
    monkeypatch.setattr(images, "_free_memory", lambda: free)
    assert load("digits", size=32).x.shape == (1797, 1, 32, 32)  # 7 MiB
    with pytest.raises(DataError, match=r"^1,797 images of 1x128x128 need about 112 MiB, more than the 64 MiB of "
                                        r"memory free: choose a smaller size \(--set data.size=N\) or fewer"):
        load("digits", size=128)  # 112 MiB as float32
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((4, 4, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    assert load(f"folder:{folder}", size=64).x.shape == (3, 3, 64, 64)
    with pytest.raises(DataError, match=r"^3 images of 3x3000x3000 need about"):
        load(f"folder:{folder}", size=3000)  # decoded, 5 bytes a value: 378 MiB


def test_16_bit_images_keep_their_grey_levels_and_photos_stand_as_their_viewer_shows_them(tmp_path):
    deep = tmp_path / "deep"
    deep.mkdir()
    pixels = np.full((8, 8), 30000, dtype=np.uint16)
    pixels[:4] = 65535
    Image.fromarray(pixels).save(deep / "scan.png")  # 16 bits a pixel (PIL mode I;16)
    ds = load(f"folder:{deep}", size=8)
    assert ds.shape == (1, 8, 8)  # grey, one channel
    np.testing.assert_allclose(ds.x[0, 0, :4].numpy(), 1.0)
    np.testing.assert_allclose(ds.x[0, 0, 4:].numpy(), unit(round(30000 / 257)), atol=1e-6)  # not clipped to white

    photo = tmp_path / "photo"
    photo.mkdir()
    stored = np.zeros((16, 16, 3), dtype=np.uint8)
    stored[:, :8] = 255  # the left half white as stored; the tag says: turn it 90 degrees to view
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(photo / "p.jpg", exif=exif, quality=95)
    x = load(f"folder:{photo}", size=16).x[0]
    assert x[:, :6].mean() > 0.9 and x[:, 10:].mean() < -0.9  # the top half white, as viewers show it


def test_a_palette_image_of_grey_colours_is_grey(tmp_path):
    # A GIF (or 8-bit PNG) is a palette image: an all-grey palette turned a folder of grey
    # images into three channels.
    Image.fromarray(np.full((8, 8), 90, dtype=np.uint8), mode="L").save(tmp_path / "a.png")
    grey = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8), mode="L").convert("P")
    grey.save(tmp_path / "b.gif")
    assert load(f"folder:{tmp_path}", size=8).shape == (1, 8, 8)
    colour = Image.new("RGB", (8, 8), (200, 10, 10)).convert("P")
    colour.save(tmp_path / "c.gif")
    assert load(f"folder:{tmp_path}", size=8).shape == (3, 8, 8)


def test_an_npz_array_that_unpacks_beyond_the_free_memory_is_refused_before_it_is_read(tmp_path, monkeypatch):
    # (a deflated member of a few MB claiming 5.6 GiB ended in "unexpected MemoryError" under `ulimit -v`)
    from landscape.data import images

    np.savez_compressed(tmp_path / "z.npz", x=np.zeros((4096, 64), dtype=np.float32))  # 1 MiB of zeros, deflated
    assert (tmp_path / "z.npz").stat().st_size < 10_000
    monkeypatch.setattr(images, "_free_memory", lambda: 512 << 10)
    with pytest.raises(DataError, match=r"z.npz: array 'x' of shape \[4096, 64\] unpacks to 1 MiB, more than the "
                                        r"0 MiB of memory free: not data this machine can load"):
        load(f"npz:{tmp_path / 'z.npz'}")
    monkeypatch.setattr(images, "_free_memory", lambda: 2 << 20)
    assert load(f"npz:{tmp_path / 'z.npz'}").x.shape == (4096, 64)


def test_npz_labels_saved_first_are_not_taken_for_the_data(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
    np.savez(tmp_path / "d.npz", y=np.arange(6), data=img)
    ds = load(f"npz:{tmp_path / 'd.npz'}")
    assert ds.shape == (1, 8, 8) and ds.labels.tolist() == list(range(6))


def test_a_file_that_is_no_npz_is_refused_without_numpy_s_advice_to_load_it_unsafely(tmp_path):
    # (npz:/etc/passwd: "load it unsafely using allow_pickle=True", numpy's words, in our error)
    from landscape.data.formats import load_npz

    text = tmp_path / "passwd.npz"
    text.write_text("root:x:0:0:root:/root:/bin/bash\n")
    with pytest.raises(DataError, match="pickled Python objects, not arrays of numbers: refused") as err:
        load_npz(text)
    assert "allow_pickle" not in str(err.value)
