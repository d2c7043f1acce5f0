"""Training diagnostics: the oscillation statistics of ML learning, and the KL of a 2-D model.

Nijkamp et al. 2019 ("On the Anatomy of MCMC-based ML Learning of EBMs") read the health
of ML learning from three per-update series:

* ``d_st = mean U(X+) - mean U(X-)``: the energy gap between data ``X+`` and short-run
  samples ``X-`` (the loss the update descends);
* ``v_t = mean over chains of 1/(L+1) sum_{l=0..L} ||dU/dx(Y_l)||_2``: the average gradient
  norm along the Langevin chain (a norm, not a squared norm);
* ``r_t = eps^2/2 * v_t``: the average image-space displacement per step that the gradient
  causes.

In stable learning d_st oscillates around 0 (expansion and contraction updates alternate),
with negative autocorrelation at short lags; d_st and v_t are strongly correlated at lag 0
and negatively correlated at short lags. This module computes those statistics
(:func:`autocorrelation`, :func:`cross_correlation`, :func:`summarize_oscillation`,
:func:`detrend_linear` for a drifting series) and,
for 2-D toy data, the learned density and its KL divergence from the true one on a grid
(:func:`energy_grid`, :func:`normalized_log_density_on_grid`, :func:`kl_on_grid`). The
pictures of all of them are in :mod:`landscape.train.figures`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from scipy.special import logsumexp

__all__ = [
    "autocorrelation",
    "cross_correlation",
    "detrend_linear",
    "summarize_oscillation",
    "energy_grid",
    "normalized_log_density_on_grid",
    "kl_on_grid",
]


# Above this many lags an FFT correlation is cheaper than one dot product per lag.
_DIRECT_MAX_LAGS = 64


def _as_series(x: Any, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"{name} must be a 1-D series, got shape {list(a.shape)}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains non-finite values ({int((~np.isfinite(a)).sum())} of {a.size})")
    return a


def _centered_or_none(a: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Mean-removed series and its (biased) variance, or None for a constant series.

    The mean of a constant float series is not always exactly that constant, so a series
    whose spread is at rounding level relative to its magnitude counts as constant.
    """
    c = a - a.mean()
    var = float(np.mean(c * c))
    scale = float(np.max(np.abs(a)))
    if var == 0.0 or math.sqrt(var) <= 64 * np.finfo(np.float64).eps * scale:
        return None
    return c, var


def _lagged_sums(a: np.ndarray, b: np.ndarray, max_lag: int) -> np.ndarray:
    """``sum_t a[t] * b[t + k]`` over the overlapping pairs, for k = -max_lag..max_lag."""
    n = a.size
    if max_lag <= _DIRECT_MAX_LAGS:
        out = np.empty(2 * max_lag + 1)
        for k in range(-max_lag, max_lag + 1):
            out[k + max_lag] = np.dot(a[: n - k], b[k:]) if k >= 0 else np.dot(a[-k:], b[: n + k])
        return out
    # By FFT, zero-padded past 2n - 1 so that no lag wraps around: the circular
    # correlation's entry k (k < 0 at the end) is then the sum over the pairs that overlap.
    size = 1 << (2 * n - 1).bit_length()
    c = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)
    return np.concatenate([c[size - max_lag:], c[: max_lag + 1]])


def autocorrelation(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Sample autocorrelation of a series at lags 0..max_lag.

    Biased estimator: ``rho(k) = sum_{t=0}^{n-1-k} (x_t - m)(x_{t+k} - m) / (n * var)`` with
    ``m`` the mean and ``var`` the biased (1/n) variance, so ``rho(0) == 1`` and the sequence
    is positive semi-definite.

    Parameters
    ----------
    x : array, shape [n]
        The series (finite values).
    max_lag : int
        Largest lag, >= 0; clipped to ``n - 1``.

    Returns
    -------
    np.ndarray, shape [min(max_lag, n - 1) + 1]
        ``rho(0..max_lag)``. A constant series gives 1 at lag 0 and zeros after it.

    Raises
    ------
    ValueError
        If ``x`` is not a non-empty 1-D finite series or ``max_lag`` is negative.

    Example
    -------
    >>> autocorrelation(np.array([1.0, -1.0, 1.0, -1.0]), 1)
    array([ 1.  , -0.75])

    Cost: O(n * max_lag) for up to 64 lags, O(n log n) (FFT) beyond.
    """
    a = _as_series(x, "x")
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    max_lag = min(int(max_lag), a.size - 1)
    out = np.zeros(max_lag + 1)
    out[0] = 1.0
    centered = _centered_or_none(a)
    if centered is None:
        return out
    c, var = centered
    sums = _lagged_sums(c, c, max_lag)[max_lag:]
    out[1:] = sums[1:] / (a.size * var)
    return out


def cross_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Sample cross-correlation ``corr(a[t], b[t + k])`` for k = -max_lag..max_lag.

    Both series are standardised (mean removed, divided by their biased standard
    deviation) and each lag sums over the overlapping pairs divided by ``n``, the same
    biased estimator as :func:`autocorrelation` (so ``cross_correlation(x, x, K)[1]`` is
    symmetric and its right half equals ``autocorrelation(x, K)``).

    Convention: a peak at a positive lag ``k`` means ``b`` follows ``a`` by ``k`` updates
    (``b[t] ~ a[t - k]``); a peak at a negative lag means ``b`` leads.

    Parameters
    ----------
    a, b : array, shape [n]
        Two finite series of equal length.
    max_lag : int
        Largest absolute lag, >= 0; clipped to ``n - 1``.

    Returns
    -------
    lags : np.ndarray of int, shape [2K + 1]
        ``-K..K`` with ``K = min(max_lag, n - 1)``.
    corr : np.ndarray, shape [2K + 1]
        The correlations; all zeros if either series is constant (correlation undefined).

    Raises
    ------
    ValueError
        If the series are not non-empty, finite, 1-D and of equal length, or ``max_lag`` < 0.

    Example
    -------
    >>> a = np.sin(np.arange(100.0))
    >>> lags, c = cross_correlation(a, np.roll(a, 3), 5)
    >>> int(lags[np.argmax(c)])
    3

    Cost: O(n * max_lag) for up to 64 lags, O(n log n) (FFT) beyond.
    """
    x = _as_series(a, "a")
    y = _as_series(b, "b")
    if x.size != y.size:
        raise ValueError(f"a and b must have equal lengths, got {x.size} and {y.size}")
    if max_lag < 0:
        raise ValueError(f"max_lag must be >= 0, got {max_lag}")
    max_lag = min(int(max_lag), x.size - 1)
    lags = np.arange(-max_lag, max_lag + 1)
    cx, cy = _centered_or_none(x), _centered_or_none(y)
    if cx is None or cy is None:
        return lags, np.zeros(lags.size)
    sums = _lagged_sums(cx[0], cy[0], max_lag)
    return lags, sums / (x.size * math.sqrt(cx[1] * cy[1]))


def detrend_linear(x: np.ndarray) -> np.ndarray:
    """A series minus its least-squares straight line over its index (a series of fewer
    than 2 values: minus its mean). Taken before an autocorrelation, it keeps a slow drift
    from showing as a large correlation at every lag.

    >>> detrend_linear(np.array([0.0, 1.0, 2.0, 3.0])).round(12).tolist()
    [0.0, 0.0, 0.0, 0.0]
    """
    a = np.asarray(x, dtype=np.float64)
    if a.size < 2:
        return a - a.mean() if a.size else a.copy()
    t = np.arange(a.size, dtype=np.float64)
    slope, intercept = np.polyfit(t - t.mean(), a, 1)
    return a - (slope * (t - t.mean()) + intercept)


#: The steady state's window: the last half of a run, at most this many updates.
STEADY_MAX = 2000


def steady_window(n: int) -> int:
    """How many of a run's last updates its steady-state statistics use (past the
    burn-in): half of the ``n`` updates, at most :data:`STEADY_MAX`, at least one. The
    checkpoint's summary (``landscape info``) and the diagnostics picture both use it."""
    return max(1, min(n // 2, STEADY_MAX))


def summarize_oscillation(
    d_st: np.ndarray, v_t: np.ndarray | None = None, window: int | None = None
) -> dict[str, float]:
    """Numbers that say whether ML learning oscillates the way stable learning does.

    Over the last ``window`` updates (all if None). Stable learning (Anatomy paper, sec. 3)
    shows ``d_st`` near 0 relative to its spread, a negative lag-1 autocorrelation and
    frequent sign changes; ``d_st`` and ``v_t`` correlate strongly at lag 0.

    Parameters
    ----------
    d_st : array, shape [n]
        Energy gap ``mean U(X+) - mean U(X-)`` per update.
    v_t : array, shape [n], optional
        Average gradient norm along the chains per update.
    window : int, optional
        Number of most recent updates to analyse (>= 1).

    Returns
    -------
    dict of str -> float
        ``d_st_mean``, ``d_st_std`` (biased, 1/n), ``d_st_lag1_autocorr``,
        ``sign_changes_per_100`` (sign flips between consecutive updates per 100 pairs; a
        perfectly alternating series gives 100; exact zeros are skipped), and with ``v_t``:
        ``v_t_mean``, ``corr_dst_vt_lag0`` and ``corr_dst_vt_lag1`` (``corr(d_st[t],
        v_t[t+1])``, the convention of :func:`cross_correlation`). Plain Python floats;
        a statistic that is undefined (fewer than 2 updates, non-finite values in the
        window) is NaN. r_t is not included: it needs eps (``r_t = eps^2/2 * v_t``).

    Raises
    ------
    ValueError
        If the series are empty, not 1-D, of unequal lengths, or ``window`` < 1.

    Example
    -------
    >>> s = summarize_oscillation(np.array([1.0, -1.0] * 50))
    >>> s["sign_changes_per_100"], round(s["d_st_lag1_autocorr"], 2)
    (100.0, -0.99)
    """
    d = np.asarray(d_st, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise ValueError(f"d_st must be a non-empty 1-D series, got shape {list(d.shape)}")
    v = None
    if v_t is not None:
        v = np.asarray(v_t, dtype=np.float64)
        if v.shape != d.shape:
            raise ValueError(f"v_t must have the shape of d_st {list(d.shape)}, got {list(v.shape)}")
    if window is not None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        d = d[-window:]
        v = None if v is None else v[-window:]

    nan = float("nan")
    d_ok = bool(np.all(np.isfinite(d)))
    out: dict[str, float] = {
        "d_st_mean": float(d.mean()) if d_ok else nan,
        "d_st_std": float(d.std()) if d_ok else nan,
        "d_st_lag1_autocorr": float(autocorrelation(d, 1)[1]) if d_ok and d.size >= 2 else nan,
    }
    signs = np.sign(d[np.isfinite(d)])
    signs = signs[signs != 0]
    pairs = d.size - 1
    out["sign_changes_per_100"] = (
        float(100.0 * np.count_nonzero(signs[1:] != signs[:-1]) / pairs) if d_ok and pairs > 0 else nan
    )
    if v is not None:
        v_ok = bool(np.all(np.isfinite(v)))
        out["v_t_mean"] = float(v.mean()) if v_ok else nan
        if d_ok and v_ok and d.size >= 2:
            lags, corr = cross_correlation(d, v, 1)
            out["corr_dst_vt_lag0"] = float(corr[1])
            out["corr_dst_vt_lag1"] = float(corr[2])
        else:
            out["corr_dst_vt_lag0"] = nan
            out["corr_dst_vt_lag1"] = nan
    return out


def _device_dtype(energy_fn: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.device, torch.dtype]:
    # The landscape Energy wrapper declares its device and dtype; a bare module implies
    # them through its parameters; a plain function gets torch's default.
    device, dtype = getattr(energy_fn, "device", None), getattr(energy_fn, "dtype", None)
    if isinstance(energy_fn, torch.nn.Module):
        for p in energy_fn.parameters():
            device = device or p.device
            dtype = dtype or p.dtype
            break
    device = torch.device(device) if device is not None else torch.device("cpu")
    dtype = dtype if isinstance(dtype, torch.dtype) else torch.get_default_dtype()
    return device, dtype


def energy_grid(
    energy_fn: Callable[[torch.Tensor], torch.Tensor],
    box: tuple[float, float],
    res: int = 200,
    batch: int = 10000,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate a 2-D energy on a ``res`` x ``res`` grid over ``[box[0], box[1]]^2``.

    Parameters
    ----------
    energy_fn : callable
        Maps ``[B, 2]`` to ``[B]`` energies (an ``Energy`` wrapper, a module or a function).
        Points are created on its ``device``/``dtype`` when it declares them.
    box : (low, high)
        Range of both coordinates; the grid includes both ends.
    res : int
        Points per axis (>= 2).
    batch : int
        Points per call of ``energy_fn``, to bound memory.

    Returns
    -------
    xs, ys : np.ndarray, shape [res]
        Grid coordinates.
    U : np.ndarray of float64, shape [res, res]
        ``U[i, j]`` is the energy at ``(xs[j], ys[i])``: rows are y, as
        ``imshow(U, origin="lower")`` expects.

    Raises
    ------
    ValueError
        If ``box`` is empty, ``res`` < 2, ``batch`` < 1, or the energy's output does not
        have one value per point.

    Cost: ``res^2`` energy evaluations in ``ceil(res^2 / batch)`` calls, without autograd.
    """
    low, high = float(box[0]), float(box[1])
    if not high > low:
        raise ValueError(f"box must satisfy low < high, got {box}")
    if res < 2 or batch < 1:
        raise ValueError(f"need res >= 2 and batch >= 1, got res={res}, batch={batch}")
    xs = np.linspace(low, high, res)
    ys = np.linspace(low, high, res)
    gx, gy = np.meshgrid(xs, ys)  # gx[i, j] = xs[j], gy[i, j] = ys[i]
    device, dtype = _device_dtype(energy_fn)
    pts = torch.from_numpy(np.stack([gx.ravel(), gy.ravel()], axis=1)).to(device=device, dtype=dtype)
    out = np.empty(res * res, dtype=np.float64)
    with torch.no_grad():
        for s in range(0, res * res, batch):
            chunk = pts[s : s + batch]
            u = energy_fn(chunk)
            if u.numel() != chunk.shape[0]:
                raise ValueError(
                    f"energy returned {list(u.shape)} for {chunk.shape[0]} points; expected one value each"
                )
            out[s : s + chunk.shape[0]] = u.reshape(-1).to("cpu", torch.float64).numpy()
    return xs, ys, out.reshape(res, res)


def normalized_log_density_on_grid(U: np.ndarray, cell_area: float) -> np.ndarray:
    """``log p`` on a grid for ``p = exp(-U) / Z``, ``Z = sum exp(-U) * cell_area``.

    Computed with logsumexp, so energies of any offset or range (1e4 and beyond) neither
    overflow nor underflow to a useless result; ``sum(exp(log p)) * cell_area == 1``.

    Parameters
    ----------
    U : array
        Energies on the grid (any shape). ``+inf`` means zero density.
    cell_area : float
        Area of one grid cell (> 0).

    Returns
    -------
    np.ndarray of float64, same shape as ``U``.

    Raises
    ------
    ValueError
        If ``cell_area`` <= 0, ``U`` has NaN or ``-inf`` entries, or every entry is ``+inf``.
    """
    u = np.asarray(U, dtype=np.float64)
    if not cell_area > 0:
        raise ValueError(f"cell_area must be > 0, got {cell_area}")
    if np.isnan(u).any() or np.isneginf(u).any():
        raise ValueError("energy grid contains NaN or -inf values")
    if u.size == 0 or np.isposinf(u).all():
        raise ValueError("energy grid has no finite values")
    return -u - logsumexp(-u) - math.log(cell_area)


def kl_on_grid(log_q: np.ndarray, log_p: np.ndarray, cell_area: float) -> float:
    """``KL(q || p) = sum q (log q - log p) * cell_area`` on a grid, in nats.

    Both log-densities are re-normalised on the grid first, so this is the exact KL
    divergence between the two discrete distributions over cells and is >= 0 (tiny
    negative rounding is clipped to 0). Cells where ``q`` is 0 contribute nothing; a cell
    where ``q > 0`` but ``p`` is exactly 0 (``log_p = -inf``) makes the KL ``inf``. Only
    log values enter, so a learned density that underflows ``exp`` is handled exactly.

    Parameters
    ----------
    log_q : array
        Log-density of the true distribution (``-inf`` allowed: zero density).
    log_p : array, same shape
        Log-density of the learned distribution.
    cell_area : float
        Area of one grid cell (> 0). It cancels in the discrete KL; it is checked and kept
        so the signature mirrors the integral.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        On shape mismatch, ``cell_area`` <= 0, NaN or ``+inf`` log values, or a density
        that is zero everywhere.

    Example
    -------
    >>> lq = np.log(np.array([0.5, 0.5])); lp = np.log(np.array([0.25, 0.75]))
    >>> round(kl_on_grid(lq, lp, 1.0), 4)
    0.1438
    """
    lq = np.asarray(log_q, dtype=np.float64)
    lp = np.asarray(log_p, dtype=np.float64)
    if lq.shape != lp.shape:
        raise ValueError(f"log_q and log_p must have the same shape, got {list(lq.shape)} and {list(lp.shape)}")
    if not cell_area > 0:
        raise ValueError(f"cell_area must be > 0, got {cell_area}")
    for name, a in (("log_q", lq), ("log_p", lp)):
        if np.isnan(a).any() or np.isposinf(a).any():
            raise ValueError(f"{name} contains NaN or +inf values")
        if np.isneginf(a).all():
            raise ValueError(f"{name} is zero everywhere on the grid")
    lq = lq - logsumexp(lq)
    lp = lp - logsumexp(lp)
    support = np.isfinite(lq)
    if np.isneginf(lp[support]).any():
        return float("inf")
    q = np.exp(lq[support])
    return max(0.0, float(np.sum(q * (lq[support] - lp[support]))))
