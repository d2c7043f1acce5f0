"""Training diagnostics: correlation statistics on series with known answers, grid densities
against closed forms, and the pictures' files read back."""

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from landscape.train import diagnostics as dg
from landscape.train import figures as tf


def ar1(phi: float, n: int = 20000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n)
    x = np.empty(n)
    x[0] = e[0] / math.sqrt(1 - phi**2)  # start in the stationary distribution
    for t in range(1, n):
        x[t] = phi * x[t - 1] + e[t]
    return x


# ----------------------------------------------------------------------------- correlations


@pytest.mark.parametrize("phi", [-0.5, 0.7])
def test_autocorrelation_of_ar1_matches_phi_powers(phi):
    acf = dg.autocorrelation(ar1(phi), 5)
    assert acf.shape == (6,)
    assert acf[0] == pytest.approx(1.0)
    assert acf[1] == pytest.approx(phi, abs=0.03)
    assert acf[2] == pytest.approx(phi**2, abs=0.03)


def test_autocorrelation_alternating_series_and_clipping():
    x = np.tile([1.0, -1.0], 500)
    acf = dg.autocorrelation(x, 2)
    assert acf[1] == pytest.approx(-1.0, abs=2e-3)  # biased estimator: -(n-1)/n
    assert acf[2] == pytest.approx(1.0, abs=3e-3)
    assert dg.autocorrelation(np.array([1.0, 2.0, 4.0]), 10).shape == (3,)  # clipped to n-1
    assert dg.autocorrelation(np.array([3.0]), 4).tolist() == [1.0]


def test_autocorrelation_constant_series_is_zero_after_lag0():
    acf = dg.autocorrelation(np.full(50, 0.1), 4)  # 0.1 is not exact in binary: mean != 0.1
    assert acf.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_autocorrelation_fft_path_matches_direct_sums():
    x = np.random.default_rng(1).standard_normal(300)
    acf = dg.autocorrelation(x, 200)  # > 64 lags: FFT path
    c = x - x.mean()
    brute = np.array([np.dot(c[: 300 - k], c[k:]) for k in range(201)]) / np.dot(c, c)
    np.testing.assert_allclose(acf, brute, atol=1e-12)


def test_autocorrelation_rejects_nonfinite():
    with pytest.raises(ValueError, match="non-finite"):
        dg.autocorrelation(np.array([1.0, np.nan, 2.0]), 1)


def test_cross_correlation_peaks_at_positive_lag_when_b_follows_a():
    a = np.random.default_rng(2).standard_normal(5000)
    b = np.concatenate([np.zeros(3), a[:-3]])  # b[t] = a[t - 3]: b follows a by 3 updates
    lags, corr = dg.cross_correlation(a, b, 6)
    assert lags.tolist() == list(range(-6, 7))
    assert lags[np.argmax(corr)] == 3
    assert corr[lags == 3][0] == pytest.approx(1.0, abs=0.01)
    assert np.max(np.abs(corr[lags != 3])) < 0.1
    # Self cross-correlation is symmetric and its right half is the autocorrelation.
    _, cc = dg.cross_correlation(a, a, 4)
    np.testing.assert_allclose(cc[4:], dg.autocorrelation(a, 4), atol=1e-12)
    np.testing.assert_allclose(cc, cc[::-1], atol=1e-12)


def test_cross_correlation_fft_path_matches_small_lag_path():
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(400), rng.standard_normal(400)
    _, big = dg.cross_correlation(a, b, 100)
    _, small = dg.cross_correlation(a, b, 10)
    np.testing.assert_allclose(big[90:111], small, atol=1e-12)


def test_summarize_oscillation_alternating_series():
    d = np.tile([1.0, -1.0], 100) + 0.01 * np.random.default_rng(4).standard_normal(200)
    v = 5.0 + d  # v_t moving with d_st: correlated at lag 0, anti-correlated at lag 1
    s = dg.summarize_oscillation(d, v)
    assert s["d_st_lag1_autocorr"] < -0.9
    assert s["sign_changes_per_100"] > 99.0
    assert s["corr_dst_vt_lag0"] > 0.99 and s["corr_dst_vt_lag1"] < -0.9
    assert s["v_t_mean"] == pytest.approx(5.0, abs=0.01)
    assert abs(s["d_st_mean"]) < 0.01
    assert all(type(val) is float for val in s.values())
    json.dumps(s)


def test_summarize_oscillation_window_and_short_input():
    d = np.concatenate([np.ones(100), np.tile([1.0, -1.0], 10)])
    s = dg.summarize_oscillation(d, window=20)
    assert s["d_st_mean"] == pytest.approx(0.0)
    assert s["sign_changes_per_100"] == pytest.approx(100.0)
    assert "v_t_mean" not in s
    one = dg.summarize_oscillation(np.array([0.3]), np.array([1.0]))
    assert one["d_st_mean"] == pytest.approx(0.3) and math.isnan(one["d_st_lag1_autocorr"])


# ----------------------------------------------------------------------------- grid densities


def test_energy_grid_orientation_rows_are_y():
    xs, ys, u = dg.energy_grid(lambda p: p[:, 1] ** 2, (-2.0, 3.0), res=21, batch=50)
    assert xs.shape == ys.shape == (21,) and u.shape == (21, 21)
    assert xs[0] == -2.0 and xs[-1] == 3.0
    assert np.ptp(u, axis=1).max() == 0.0  # along a row (fixed y) nothing changes
    assert np.ptp(u[:, 0]) > 1.0  # down a column (varying y) it does
    np.testing.assert_allclose(u[:, 5], ys**2, rtol=1e-6)


def test_energy_grid_builds_no_autograd_graph():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    _, _, u = dg.energy_grid(lambda p: (p * w).sum(1), (0.0, 1.0), res=5)
    assert u[4, 4] == pytest.approx(3.0)
    assert w.grad is None


def test_normalized_log_density_integrates_to_one_and_survives_offsets():
    xs, ys, u = dg.energy_grid(lambda p: 0.5 * (p**2).sum(1), (-6.0, 6.0), res=121)
    cell = (xs[1] - xs[0]) ** 2
    lp = dg.normalized_log_density_on_grid(u, cell)
    assert np.exp(lp).sum() * cell == pytest.approx(1.0, abs=1e-12)
    assert lp[60, 60] == pytest.approx(-math.log(2 * math.pi), abs=1e-3)  # N(0, I) at 0
    shifted = dg.normalized_log_density_on_grid(u + 1e4, cell)
    assert np.all(np.isfinite(shifted))
    np.testing.assert_allclose(shifted, lp, atol=1e-8)
    wide = dg.normalized_log_density_on_grid(u * 1e4, cell)  # range of ~3.6e5 nats
    assert np.isfinite(wide).all() and np.exp(wide).sum() * cell == pytest.approx(1.0)


def test_kl_on_grid_zero_positive_and_closed_form_gaussians():
    m = np.array([1.0, -0.5])
    xs, ys, uq = dg.energy_grid(lambda p: 0.5 * (p**2).sum(1), (-9.0, 9.0), res=241)
    shifted = lambda p: 0.5 * ((p - torch.as_tensor(m, dtype=p.dtype)) ** 2).sum(1)  # noqa: E731
    _, _, up = dg.energy_grid(shifted, (-9.0, 9.0), res=241)
    cell = (xs[1] - xs[0]) ** 2
    lq = dg.normalized_log_density_on_grid(uq, cell)
    lp = dg.normalized_log_density_on_grid(up, cell)
    assert dg.kl_on_grid(lq, lq, cell) == pytest.approx(0.0, abs=1e-12)
    assert dg.kl_on_grid(lq, lp, cell) == pytest.approx(float(m @ m) / 2, rel=0.01)
    # Unnormalised inputs are renormalised: an offset changes nothing.
    assert dg.kl_on_grid(lq + 7.0, lp - 3.0, cell) == pytest.approx(dg.kl_on_grid(lq, lp, cell), abs=1e-9)


def test_kl_on_grid_zero_q_cells_and_underflowing_p():
    lq = np.array([math.log(0.5), math.log(0.5), -np.inf])  # q = 0 in the last cell: contributes nothing
    lp = np.array([-2000.0, -2000.0, 0.0])  # exp underflows; the log values do not
    kl = dg.kl_on_grid(lq, lp, 1.0)
    assert kl == pytest.approx(2000.0 - math.log(2.0), rel=1e-9)  # sum 0.5 * (log 0.5 + 2000)
    assert dg.kl_on_grid(lq, np.array([0.0, -np.inf, 0.0]), 1.0) == math.inf


# ----------------------------------------------------------------------------- pictures


def test_save_image_grid_size_values_and_nonfinite(tmp_path):
    x = torch.zeros(10, 1, 8, 8)
    x[0] = -1.0
    x[1] = 1.0
    x[2, 0, 3, 4] = float("nan")
    path = tmp_path / "grid.png"
    tf.save_image_grid(x, path)
    img = np.asarray(Image.open(path).convert("RGB"))
    # nrow = ceil(sqrt(10)) = 4 per row, 3 rows; 8x8 upscaled x6 to 48 px; 3-px separators
    # (a 16th of a tile), in a colour no grey pixel has
    assert img.shape == (3 * 48 + 2 * 3, 4 * 48 + 3 * 3, 3)
    assert (img[0:48, 0:48] == 0).all()  # -1 -> 0
    assert (img[0:48, 51:99] == 255).all()  # 1 -> 255
    assert (img[48:51, :] == tf.BORDER_RGB).all() and (img[:48, 48:51] == tf.BORDER_RGB).all()  # separators
    assert len(set(tf.BORDER_RGB)) == 3  # (not a grey)
    tile = img[0:48, 102:150]
    assert (tile[3 * 6 : 4 * 6, 4 * 6 : 5 * 6] == (255, 0, 255)).all()  # the NaN pixel, magenta
    assert (tile[0:6, 0:6] == 128).all()  # zero -> mid grey elsewhere in the tile
    assert (img[102:150, 102:198] == 255).all()  # the two cells past the tenth image: blank, not separator blue


def test_save_image_grid_rgb_clamp_scale_and_labels(tmp_path):
    x = torch.full((3, 3, 4, 5), 5.0)  # above the range: clamped to white
    x[1] = -5.0
    path = tmp_path / "rgb.png"
    tf.save_image_grid(x, path, nrow=3, scale=2, labels=["a", "bb", "ccc"])
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape[1] == 3 * 10 + 2 and img.shape[0] > 8  # label strip below the tiles (1-px gaps: 8-px tiles)
    assert (img[0:8, 0:10] == 255).all() and (img[0:8, 11:21] == 0).all()
    with pytest.raises(ValueError):
        tf.save_image_grid(x, path, labels=["only one"])
    with pytest.raises(ValueError):
        tf.save_image_grid(torch.zeros(2, 2, 4, 4), path)


def _metrics(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    d = np.tile([1.0, -1.0], n)[:n] * 0.5 + 0.1 * rng.standard_normal(n)
    v = np.exp(np.linspace(0.0, 5.0, n)) * (1.0 + 0.2 * d)
    return {
        "step": np.arange(1, n + 1, dtype=float),
        "d_st": d,
        "v_t": v,
        "r_t": 0.125**2 / 2 * v,
        "energy_pos": -np.linspace(0.0, 3.0, n),
        "energy_neg": -np.linspace(0.0, 3.0, n) - d,
        "lr": np.full(n, 1e-3),
    }


@pytest.mark.parametrize("n", [1, 5, 3000])
def test_plot_training_diagnostics_writes_png(tmp_path, n):
    path = tmp_path / f"diag{n}.png"
    tf.plot_training_diagnostics(_metrics(n), path, title=f"{n} updates")
    assert path.stat().st_size > 10_000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size[0] > 800


def test_plot_training_diagnostics_without_energies_and_long_series(tmp_path):
    m = _metrics(200_000)
    del m["energy_pos"], m["energy_neg"]
    path = tmp_path / "long.png"
    tf.plot_training_diagnostics(m, path, window=5000, max_lag=10)
    assert path.stat().st_size > 10_000
    assert len(tf._decimate(200_000, m["d_st"])) <= tf.MAX_LINE_POINTS
    with pytest.raises(ValueError, match="v_t"):
        tf.plot_training_diagnostics({"d_st": m["d_st"], "r_t": m["r_t"]}, path)


def test_decimate_keeps_the_envelope():
    y = np.tile([1.0, -1.0], 50_000)
    idx = tf._decimate(y.size, y)
    assert idx.size <= tf.MAX_LINE_POINTS and np.all(np.diff(idx) >= 0)
    assert y[idx].max() == 1.0 and y[idx].min() == -1.0


def test_plot_toy_density_writes_png(tmp_path):
    xs, ys, u = dg.energy_grid(lambda p: 0.5 * (p**2).sum(1), (-3.0, 3.0), res=60)
    cell = (xs[1] - xs[0]) ** 2
    lq = dg.normalized_log_density_on_grid(u, cell)
    lp = dg.normalized_log_density_on_grid(u * 2.0, cell)
    samples = np.random.default_rng(5).standard_normal((500, 2))
    samples[0] = np.nan
    for name, kw in (("with.png", {"samples": samples, "kl": dg.kl_on_grid(lq, lp, cell)}), ("without.png", {})):
        tf.plot_toy_density(xs, ys, lq, lp, tmp_path / name, title="toy", **kw)
        assert (tmp_path / name).stat().st_size > 10_000
    w_with = Image.open(tmp_path / "with.png").size[0]
    w_without = Image.open(tmp_path / "without.png").size[0]
    assert w_with > w_without  # the samples column is there


def test_the_diagnostics_picture_summarises_the_window_the_checkpoint_s_summary_does(tmp_path, monkeypatch):
    from landscape.train import diagnostics

    seen = []
    real = tf.summarize_oscillation
    monkeypatch.setattr(tf, "summarize_oscillation", lambda d, v, *a, **k: seen.append(d.size) or real(d, v, *a, **k))
    for n, window in ((1000, 500), (10_000, 2000), (3, 1)):
        seen.clear()
        tf.plot_training_diagnostics(_metrics(n), tmp_path / f"d{n}.png")
        assert diagnostics.steady_window(n) == window and seen == [window]  # (the last half, at most 2,000)
