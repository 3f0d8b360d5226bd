"""PCA eigen-spectra of representations and their power-law decay ("manifold
smoothness").

For a representation ``H`` of N inputs by D units, the eigenvalues
``lambda_1 >= lambda_2 >= ...`` of its covariance (:func:`eigenspectrum`) say how the
variance spreads over directions. They often decay like a power law,
``lambda_n ~ c * n^(-alpha)``: a larger ``alpha`` means the variance is concentrated in
fewer directions, a smoother representation.

Two estimators, and why only one of them estimates ``alpha``:

- :func:`fit_powerlaw_alpha`: least squares of ``log lambda_n`` on ``log n`` over a
  stated range of ranks (default 10..500). The slope is ``-alpha``. The range is needed
  because the first few eigenvalues carry the class structure and the last ones are
  flattened by finite samples and numerical noise; neither follows the power law of the
  bulk.
- :func:`ml_powerlaw_exponent`: the maximum-likelihood exponent of a power-law *density*
  (Clauset, Shalizi & Newman 2009), ``gamma = 1 + m / sum_i log(x_i / x_min)``. Applied
  to the eigenvalues themselves it treats them as samples of a distribution. If
  ``lambda_n = c n^(-alpha)``, the number of eigenvalues above ``lambda`` is
  ``n(lambda) = (lambda / c)^(-1/alpha)``, so their density is
  ``p(lambda) ~ lambda^(-1 - 1/alpha)``: this estimator returns ``1 + 1/alpha``, not
  ``alpha`` (:func:`density_exponent_from_alpha`, :func:`alpha_from_density_exponent`).

Also here: :func:`synthetic_spectrum` (a spectrum with known ``alpha``),
:func:`participation_ratio`, :func:`n_components` (how many directions hold 95 % of the
variance) and :func:`summarize_spectrum`; and two statistics for relating ``alpha`` to
accuracy over a few layers and seeds: :func:`spearman_bootstrap` (Spearman's rank
correlation with a bootstrap interval) and :func:`monotonic_with_ties` (is accuracy
monotonic in ``alpha`` once differences smaller than the test set's binomial standard
error count as ties?).

Spectra are 1-D NumPy float64 arrays sorted in descending order; ranks are counted from
1.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from .params import ParameterError

__all__ = [
    "eigenspectrum",
    "available_ranks",
    "PowerLawFit",
    "fit_powerlaw_alpha",
    "ml_powerlaw_exponent",
    "density_exponent_from_alpha",
    "alpha_from_density_exponent",
    "synthetic_spectrum",
    "participation_ratio",
    "n_components",
    "summarize_spectrum",
    "RankCorrelation",
    "spearman_bootstrap",
    "accuracy_standard_error",
    "monotonic_with_ties",
]


def _as_float64(H) -> np.ndarray:
    if isinstance(H, torch.Tensor):
        return H.detach().cpu().to(torch.float64).numpy()
    return np.asarray(H, dtype=np.float64)


def _check_spectrum(spectrum, name: str = "spectrum") -> np.ndarray:
    s = _as_float64(spectrum)
    if s.ndim != 1 or len(s) == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D array of eigenvalues, got shape {s.shape}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if np.any(s < 0):
        raise ValueError(
            f"{name} has negative values (smallest {s.min():.3g}): eigenvalues of a "
            "covariance are >= 0; "
            "compute them with eigenspectrum(), which clips round-off below zero"
        )
    if np.any(np.diff(s) > 0):
        raise ValueError(
            f"{name} is not sorted in descending order (lambda_1 >= lambda_2 >= ...). "
            "np.linalg.eigvalsh returns ascending order: reverse it (s[::-1]) or use "
            "eigenspectrum()"
        )
    return s


# ------------------------------------------------------------------------- the spectrum
def eigenspectrum(H, *, center: bool = True) -> np.ndarray:
    """Eigenvalues of the covariance of a representation, in descending order (float64).

    Parameters
    ----------
    H : (N, D) array or tensor: N inputs (rows) by D units (columns), e.g. a layer's
        activity for the test set. Converted to float64 before anything is computed.
    center : subtract each unit's mean first (PCA). The covariance is
        ``Hc.T @ Hc / (N - 1)``.

    Returns
    -------
    A float64 array of length D, ``lambda_1 >= ... >= lambda_D >= 0`` (in the units of H
    squared). At most ``N - 1`` of them are non-zero; round-off below zero is set to
    zero.
    """
    X = _as_float64(H)
    if X.ndim != 2:
        raise ValueError(
            f"H must be 2-D (N inputs, D units), got shape {X.shape}; flatten it with "
            "H.reshape(len(H), -1)"
        )
    n, d = X.shape
    if n < 2:
        raise ValueError(f"H has {n} row(s): a covariance needs at least 2 inputs")
    if not np.all(np.isfinite(X)):
        raise ValueError("H contains NaN or infinite values")
    if center:
        X = X - X.mean(axis=0, keepdims=True)
    if d <= n:
        eig = np.linalg.eigvalsh(X.T @ X / (n - 1))
    else:
        # same non-zero eigenvalues from the smaller N x N Gram matrix, padded with
        # zeros
        eig = np.concatenate([np.linalg.eigvalsh(X @ X.T / (n - 1)), np.zeros(d - n)])
    return np.clip(np.sort(eig)[::-1], 0.0, None).copy()


def available_ranks(spectrum) -> int:
    """How many leading eigenvalues are numerically positive.

    An eigenvalue counts when it exceeds ``lambda_1 * len(spectrum) * eps(float64)``
    (NumPy's ``matrix_rank`` rule); the rest are zero up to round-off (dead units,
    N < D, ...) and have no meaningful logarithm.
    """
    s = _check_spectrum(spectrum)
    if s[0] == 0:
        return 0
    tol = s[0] * len(s) * np.finfo(np.float64).eps
    return int(np.count_nonzero(s > tol))


# ------------------------------------------------------------------ the right estimator
@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_powerlaw_alpha`:
    ``lambda_n ~ exp(log_amplitude) * n^(-alpha)``.
    """

    alpha: float  # decay exponent (minus the slope of log lambda against log n)
    log_amplitude: float  # natural log of the prefactor c
    rank_lo: int  # first rank used (1-based, inclusive)
    rank_hi: int  # last rank used (inclusive), after clipping to the available ranks
    r2: float  # coefficient of determination of the straight line in log-log space

    @property
    def n_points(self) -> int:
        return self.rank_hi - self.rank_lo + 1

    def predict(self, ranks) -> np.ndarray:
        """The fitted power law at the given ranks (e.g. for plotting the fit line)."""
        return np.exp(self.log_amplitude) * np.asarray(ranks, dtype=np.float64) ** (
            -self.alpha
        )


def _check_rank_range(rank_range) -> tuple[int, int]:
    ok = (
        isinstance(rank_range, (tuple, list))
        and len(rank_range) == 2
        and all(
            isinstance(r, numbers.Integral) and not isinstance(r, bool)
            for r in rank_range
        )
    )
    if not ok or not 1 <= rank_range[0] < rank_range[1]:
        raise ParameterError(
            f"rank_range={rank_range!r} must be two integer ranks (first, last) with 1 "
            "<= first < last, "
            "e.g. (10, 500); ranks are counted from 1 (the largest eigenvalue)"
        )
    return int(rank_range[0]), int(rank_range[1])


def fit_powerlaw_alpha(
    spectrum, rank_range: tuple[int, int] = (10, 500), *, min_points: int = 10
) -> PowerLawFit:
    """Exponent ``alpha`` of ``lambda_n ~ n^(-alpha)`` by least squares of log lambda on
    log n.

    Parameters
    ----------
    spectrum : eigenvalues in descending order (e.g. from :func:`eigenspectrum`).
    rank_range : ``(first, last)`` ranks, inclusive and 1-based, over which the line is
        fitted. ``last`` is clipped to :func:`available_ranks` (eigenvalues that are
        zero up to round-off are never fitted). Every integer rank in the range is one
        point, so on log axes the upper decades weigh more, as in an ordinary fit of all
        eigenvalues in the range.
    min_points : the fit stops with a :class:`helpers.ParameterError` when fewer ranks
        remain.

    Returns
    -------
    :class:`PowerLawFit` with ``alpha``, the amplitude, the ranks actually used and R^2.
    """
    s = _check_spectrum(spectrum)
    lo, hi = _check_rank_range(rank_range)
    if (
        isinstance(min_points, bool)
        or not isinstance(min_points, numbers.Integral)
        or min_points < 2
    ):
        raise ParameterError(
            f"min_points={min_points!r} must be an integer >= 2 (a line needs two "
            "points)"
        )
    n_avail = available_ranks(s)
    hi_used = min(hi, n_avail)
    n_points = hi_used - lo + 1
    if n_points < min_points:
        raise ParameterError(
            f"rank_range={tuple(rank_range)} leaves {max(n_points, 0)} rank(s) to fit "
            f"(the spectrum has {len(s)} eigenvalues, {n_avail} of them positive), "
            "fewer than "
            f"min_points={min_points}. Use a range inside 1..{n_avail} with at least "
            f"{min_points} ranks, "
            "or a representation with more inputs / units"
        )
    ranks = np.arange(lo, hi_used + 1, dtype=np.float64)
    x, y = np.log(ranks), np.log(s[lo - 1 : hi_used])
    slope, intercept = np.polyfit(x, y, 1)
    resid = y - (slope * x + intercept)
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else float("nan")
    return PowerLawFit(
        alpha=float(-slope),
        log_amplitude=float(intercept),
        rank_lo=lo,
        rank_hi=hi_used,
        r2=r2,
    )


# ------------------------------------------------------------------ the wrong estimator
def ml_powerlaw_exponent(values, x_min: float | None = None) -> float:
    """Maximum-likelihood exponent ``gamma`` of a power-law density
    ``p(x) ~ x^(-gamma)``, x >= x_min.

    The continuous estimator of Clauset, Shalizi & Newman (2009), equivalent to Hill's:
    ``gamma = 1 + m / sum_{x_i >= x_min} log(x_i / x_min)`` over the m values at or
    above ``x_min`` (default: the smallest value, i.e. all of them).

    It treats ``values`` as independent samples of a distribution. Given the eigenvalues
    of a spectrum ``lambda_n ~ n^(-alpha)`` it estimates the exponent of their density,
    ``1 + 1/alpha`` (:func:`alpha_from_density_exponent` converts), not ``alpha``. Pass
    only positive values, e.g. ``spectrum[:available_ranks(spectrum)]``.
    """
    x = _as_float64(values).ravel()
    if len(x) == 0 or not np.all(np.isfinite(x)) or np.any(x <= 0):
        raise ValueError(
            "values must be a non-empty array of positive finite numbers; for a "
            "spectrum pass only "
            "its positive eigenvalues, e.g. spectrum[:available_ranks(spectrum)]"
        )
    if x_min is None:
        x_min = float(x.min())
    elif not (isinstance(x_min, numbers.Real) and math.isfinite(x_min) and x_min > 0):
        raise ParameterError(
            f"x_min={x_min!r} must be a positive finite number (or None for the "
            "smallest value)"
        )
    tail = x[x >= x_min]
    logs = np.log(tail / x_min)
    if len(tail) < 2 or logs.sum() <= 0:
        raise ValueError(
            f"only {len(tail)} value(s) at or above x_min={x_min:.3g}, not all equal "
            "to it: the "
            "exponent is undefined; lower x_min"
        )
    return float(1.0 + len(tail) / logs.sum())


def density_exponent_from_alpha(alpha: float) -> float:
    """``1 + 1/alpha``: the density exponent of the eigenvalues of a spectrum
    ``lambda_n ~ n^(-alpha)``.
    """
    if not (isinstance(alpha, numbers.Real) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha={alpha!r} must be a positive finite number")
    return 1.0 + 1.0 / alpha


def alpha_from_density_exponent(gamma: float) -> float:
    """``1 / (gamma - 1)``: the decay exponent alpha implied by an eigenvalue-density
    exponent ``gamma > 1``.
    """
    if not (isinstance(gamma, numbers.Real) and math.isfinite(gamma) and gamma > 1):
        raise ValueError(
            f"gamma={gamma!r} must be a finite number > 1 (a normalisable power-law "
            "density)"
        )
    return 1.0 / (gamma - 1.0)


# -------------------------------------------------------------------- synthetic spectra
def synthetic_spectrum(
    alpha: float,
    n: int = 1000,
    *,
    noise: float = 0.0,
    amplitude: float = 1.0,
    seed: int | None = None,
) -> np.ndarray:
    """A spectrum with known decay:
    ``lambda_k = amplitude * k^(-alpha) * exp(noise * z_k)``, k = 1..n.

    ``z_k`` are independent standard normal draws (seeded by ``seed``), so ``noise`` is
    the standard deviation of ``log lambda_k`` around the power law (multiplicative
    noise); 0 gives the exact power law. The result is sorted in descending order, as
    eigenvalues are.
    """
    if not (isinstance(alpha, numbers.Real) and math.isfinite(alpha) and alpha > 0):
        raise ParameterError(
            f"alpha={alpha!r} must be a positive finite number, e.g. 1.0"
        )
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ParameterError(
            f"n={n!r} must be a positive integer (the number of eigenvalues)"
        )
    if not (isinstance(noise, numbers.Real) and math.isfinite(noise) and noise >= 0):
        raise ParameterError(
            f"noise={noise!r} must be a finite number >= 0 (std of log lambda)"
        )
    if not (
        isinstance(amplitude, numbers.Real)
        and math.isfinite(amplitude)
        and amplitude > 0
    ):
        raise ParameterError(
            f"amplitude={amplitude!r} must be a positive finite number"
        )
    k = np.arange(1, int(n) + 1, dtype=np.float64)
    s = amplitude * k ** (-float(alpha))
    if noise > 0:
        s = s * np.exp(noise * np.random.default_rng(seed).standard_normal(len(s)))
    return np.sort(s)[::-1].copy()


# ----------------------------------------------------------------------- dimensionality
def participation_ratio(spectrum) -> float:
    """``(sum lambda)^2 / sum lambda^2``: an effective number of dimensions, between 1
    and len(spectrum).

    It is 1 when one direction holds all the variance and n when n directions hold equal
    shares.
    """
    s = _check_spectrum(spectrum)
    total = s.sum()
    if total == 0:
        raise ValueError(
            "the spectrum is all zeros (a constant representation): the participation "
            "ratio is undefined"
        )
    s = s / s.max()  # scale-free; avoids overflow of the squares
    return float(s.sum() ** 2 / np.sum(s**2))


def n_components(spectrum, fraction: float = 0.95) -> int:
    """The smallest k such that the k largest eigenvalues hold at least ``fraction`` of
    the variance.

    Cumulative sums are compared with a relative tolerance of 1e-12, so that a share
    that is exactly ``fraction`` on paper (e.g. 3 of 4 equal eigenvalues for 0.75) is
    not missed by round-off.
    """
    s = _check_spectrum(spectrum)
    if not (isinstance(fraction, numbers.Real) and 0 < fraction <= 1):
        raise ParameterError(
            f"fraction={fraction!r} must be in (0, 1], e.g. 0.95 for 95 % of the "
            "variance"
        )
    total = s.sum()
    if total == 0:
        raise ValueError(
            "the spectrum is all zeros (a constant representation): it holds no "
            "variance"
        )
    share = np.cumsum(s) / total
    return int(np.searchsorted(share, fraction * (1 - 1e-12)) + 1)


def summarize_spectrum(
    spectrum, rank_range: tuple[int, int] = (10, 500), fraction: float = 0.95
) -> dict:
    """One dict per spectrum: ``alpha``, ``alpha_r2``, ``alpha_ranks`` (used),
    ``participation_ratio``, ``n_components`` (for ``fraction`` of the variance),
    ``n_positive`` and ``total_variance``."""
    s = _check_spectrum(spectrum)
    fit = fit_powerlaw_alpha(s, rank_range)
    return {
        "alpha": fit.alpha,
        "alpha_r2": fit.r2,
        "alpha_ranks": [fit.rank_lo, fit.rank_hi],
        "participation_ratio": participation_ratio(s),
        "n_components": n_components(s, fraction),
        "n_positive": available_ranks(s),
        "total_variance": float(s.sum()),
    }


# --------------------------------------------------------------- alpha against accuracy
@dataclass(frozen=True)
class RankCorrelation:
    """Result of :func:`spearman_bootstrap`."""

    # Spearman's rank correlation of the points given (nan when x or y is constant)
    rho: float
    ci_low: float  # lower end of the bootstrap percentile interval
    ci_high: float  # upper end
    level: float  # coverage of the interval, e.g. 0.95
    n: int  # number of points
    # bootstrap resamples in which rho was defined (the others are left out)
    n_boot: int

    @property
    def ci(self) -> tuple[float, float]:
        return (self.ci_low, self.ci_high)


def _spearman_rows(X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Spearman's rho of every row pair (average ranks for ties); nan for a constant
    row.
    """
    from scipy.stats import rankdata

    rx, ry = rankdata(X, axis=1), rankdata(Y, axis=1)
    rx -= rx.mean(1, keepdims=True)
    ry -= ry.mean(1, keepdims=True)
    den = np.sqrt((rx**2).sum(1) * (ry**2).sum(1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rx * ry).sum(1) / np.where(den > 0, den, 1.0), np.nan)


def spearman_bootstrap(
    x, y, *, n_boot: int = 10_000, level: float = 0.95, seed: int = 0
) -> RankCorrelation:
    """Spearman's rank correlation of (x, y) with a bootstrap percentile interval.

    Parameters
    ----------
    x, y : paired values (e.g. alpha and accuracy of every layer of every seed), at
        least 3 pairs.
    n_boot : bootstrap resamples: pairs drawn with replacement, as many as there are
        points.
    level : coverage of the interval (0.95: the 2.5 % and 97.5 % percentiles of the
        resampled rho).
    seed : seed of the resampling (the interval is reproducible).

    A resample in which x or y is constant has no rank correlation; it is left out
    (``n_boot`` of the result counts the resamples used). The pairs are treated as
    independent: when they are not (the layers of one network are built on each other),
    the interval is too narrow.
    """
    xv, yv = _as_float64(x).ravel(), _as_float64(y).ravel()
    if len(xv) != len(yv):
        raise ValueError(
            f"x has {len(xv)} values but y has {len(yv)}: give one y per x"
        )
    if len(xv) < 3:
        raise ValueError(
            f"{len(xv)} pair(s): a rank correlation with an interval needs at least 3"
        )
    if not (np.all(np.isfinite(xv)) and np.all(np.isfinite(yv))):
        raise ValueError(
            "x and y must be finite (drop the points whose alpha could not be fitted)"
        )
    if (
        isinstance(n_boot, bool)
        or not isinstance(n_boot, numbers.Integral)
        or n_boot < 100
    ):
        raise ParameterError(f"n_boot={n_boot!r} must be an integer >= 100, e.g. 10000")
    if not (isinstance(level, numbers.Real) and 0 < level < 1):
        raise ParameterError(f"level={level!r} must be in (0, 1), e.g. 0.95")
    rho = float(_spearman_rows(xv[None], yv[None])[0])
    idx = np.random.default_rng(seed).integers(0, len(xv), size=(int(n_boot), len(xv)))
    boot = _spearman_rows(xv[idx], yv[idx])
    boot = boot[np.isfinite(boot)]
    if len(boot) == 0:
        lo = hi = float("nan")
    else:
        lo, hi = (
            float(v) for v in np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        )
    return RankCorrelation(rho, lo, hi, float(level), len(xv), len(boot))


def accuracy_standard_error(accuracy: float, n: int) -> float:
    """Binomial standard error ``sqrt(p (1 - p) / n)`` of an accuracy ``p`` measured on
    ``n`` examples.
    """
    if not (isinstance(accuracy, numbers.Real) and 0 <= accuracy <= 1):
        raise ValueError(
            f"accuracy={accuracy!r} must be a fraction in [0, 1] (not a percentage)"
        )
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(
            f"n={n!r} must be a positive integer (the number of test examples)"
        )
    return math.sqrt(accuracy * (1 - accuracy) / n)


def monotonic_with_ties(x, accuracy, n: int) -> dict:
    """Is ``accuracy`` a monotonic function of ``x``, once differences within noise
    count as ties?

    The points are put in the order of ``x``. Every pair ``i < j`` is compared: the
    difference ``accuracy_j - accuracy_i`` is a *rise* when it exceeds the binomial
    standard error :func:`accuracy_standard_error` at the pair's mean accuracy on ``n``
    test examples, a *fall* when it is below minus that, and a *tie* otherwise.

    Returns ``{"trend", "rises", "falls", "ties", "pairs"}`` with ``trend`` one of
    ``"increasing"`` (rises, no fall), ``"decreasing"`` (falls, no rise), ``"flat"``
    (every pair a tie) and ``"non-monotonic"`` (at least one rise and one fall: a
    reversal larger than the noise somewhere along ``x``). Accuracies are fractions in
    [0, 1].
    """
    xv, av = _as_float64(x).ravel(), _as_float64(accuracy).ravel()
    if len(xv) != len(av):
        raise ValueError(f"x has {len(xv)} values but accuracy has {len(av)}")
    if len(xv) < 2:
        raise ValueError(f"{len(xv)} point(s): a trend needs at least 2")
    if not np.all(np.isfinite(xv)):
        raise ValueError(
            "x must be finite (drop the points whose alpha could not be fitted)"
        )
    if np.any((av < 0) | (av > 1)) or not np.all(np.isfinite(av)):
        raise ValueError("accuracy must hold fractions in [0, 1] (not percentages)")
    a = av[np.argsort(xv, kind="stable")]
    rises = falls = ties = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            tol = accuracy_standard_error(float((a[i] + a[j]) / 2), n)
            d = a[j] - a[i]
            if d > tol:
                rises += 1
            elif d < -tol:
                falls += 1
            else:
                ties += 1
    trend = (
        "non-monotonic"
        if rises and falls
        else "increasing"
        if rises
        else "decreasing"
        if falls
        else "flat"
    )
    return {
        "trend": trend,
        "rises": rises,
        "falls": falls,
        "ties": ties,
        "pairs": rises + falls + ties,
    }
