"""Tests of helpers.spectrum: eigen-spectra, the power-law exponent alpha, and the ML
estimator's 1 + 1/alpha.
"""

import math

import numpy as np
import pytest
import torch

from helpers import ParameterError
from helpers import spectrum as sp

ALPHAS = (0.5, 1.0, 2.0)


# ------------------------------------------------------------------------ eigenspectrum
def test_eigenspectrum_matches_numpy_covariance_in_float64():
    rng = np.random.default_rng(0)
    # a mean to subtract
    H = rng.normal(size=(200, 12)) @ rng.normal(size=(12, 12)) + 3.0
    want = np.sort(np.linalg.eigvalsh(np.cov(H, rowvar=False)))[::-1]
    got = sp.eigenspectrum(H)
    assert got.dtype == np.float64 and got.shape == (12,)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    assert np.all(np.diff(got) <= 0) and got.min() >= 0
    # a float32 tensor gives the same spectrum (converted to float64 before any
    # arithmetic)
    Ht = torch.tensor(H, dtype=torch.float32)
    np.testing.assert_allclose(
        sp.eigenspectrum(Ht), sp.eigenspectrum(Ht.double().numpy()), rtol=1e-12
    )
    # sum of eigenvalues = total variance
    assert got.sum() == pytest.approx(H.var(axis=0, ddof=1).sum(), rel=1e-12)


def test_eigenspectrum_fewer_inputs_than_units_and_no_centering():
    rng = np.random.default_rng(1)
    H = rng.normal(size=(6, 40))
    s = sp.eigenspectrum(H)
    # rank N - 1 after centering
    assert s.shape == (40,) and np.count_nonzero(s > 1e-10) == 5
    full = np.sort(np.linalg.eigvalsh(np.cov(H, rowvar=False)))[::-1]
    np.testing.assert_allclose(s[:5], full[:5], rtol=1e-9)
    raw = sp.eigenspectrum(H, center=False)
    np.testing.assert_allclose(
        raw[:6], np.sort(np.linalg.eigvalsh(H.T @ H / 5))[::-1][:6], rtol=1e-9
    )


def test_eigenspectrum_errors():
    with pytest.raises(ValueError, match="2-D"):
        sp.eigenspectrum(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match="at least 2"):
        sp.eigenspectrum(np.ones((1, 3)))
    with pytest.raises(ValueError, match="NaN"):
        sp.eigenspectrum(np.array([[1.0, np.nan], [0.0, 1.0]]))


def test_eigenspectrum_of_data_with_a_known_power_law_covariance():
    """Gaussian data whose covariance has eigenvalues n^-1 in a random basis: alpha
    comes back.
    """
    rng = np.random.default_rng(2)
    d, n = 200, 20_000
    lam = np.arange(1, d + 1) ** -1.0
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    H = (rng.normal(size=(n, d)) * np.sqrt(lam)) @ Q.T
    fit = sp.fit_powerlaw_alpha(sp.eigenspectrum(H), (5, 100))
    # sampling noise of N = 20,000 inputs flattens the smallest eigenvalues a little
    assert fit.alpha == pytest.approx(1.0, abs=0.05)


# --------------------------------------------------------------- alpha by least squares
@pytest.mark.parametrize("alpha", ALPHAS)
def test_alpha_recovered_on_exact_and_noisy_synthetic_spectra(alpha):
    s = sp.synthetic_spectrum(alpha, 1000, amplitude=7.0)
    fit = sp.fit_powerlaw_alpha(s)
    assert abs(fit.alpha - alpha) < 1e-9 and (fit.rank_lo, fit.rank_hi) == (10, 500)
    assert fit.log_amplitude == pytest.approx(
        math.log(7.0)
    ) and fit.r2 == pytest.approx(1.0)
    np.testing.assert_allclose(fit.predict([10, 100]), s[[9, 99]], rtol=1e-9)
    for seed in range(5):  # log-normal noise of std 0.1 around the power law
        noisy = sp.synthetic_spectrum(alpha, 1000, noise=0.1, seed=seed)
        assert abs(sp.fit_powerlaw_alpha(noisy).alpha - alpha) < 0.05


def test_rank_range_is_clipped_to_positive_eigenvalues():
    s = np.concatenate([sp.synthetic_spectrum(1.5, 300), np.zeros(100), [1e-20]])
    s = np.sort(s)[::-1]
    # zeros and round-off-sized values are not ranks
    assert sp.available_ranks(s) == 300
    fit = sp.fit_powerlaw_alpha(s, (10, 500))
    assert (fit.rank_lo, fit.rank_hi, fit.n_points) == (10, 300, 291)
    assert fit.alpha == pytest.approx(1.5, abs=1e-9)


def test_too_short_or_bad_rank_ranges_stop_with_clear_errors():
    short = sp.synthetic_spectrum(1.0, 15)
    with pytest.raises(ParameterError, match=r"leaves 6 rank\(s\).*min_points=10"):
        sp.fit_powerlaw_alpha(short, (10, 500))
    assert sp.fit_powerlaw_alpha(short, (1, 15)).alpha == pytest.approx(1.0)
    s = sp.synthetic_spectrum(1.0, 100)
    for bad in ((0, 50), (50, 50), (60, 40), (10.0, 50), (10,), "10-500", (True, 50)):
        with pytest.raises(ParameterError, match="rank_range"):
            sp.fit_powerlaw_alpha(s, bad)
    with pytest.raises(ParameterError, match="min_points"):
        sp.fit_powerlaw_alpha(s, (1, 50), min_points=1)
    with pytest.raises(ParameterError):  # ValueError too: ParameterError subclasses it
        sp.fit_powerlaw_alpha(s, (200, 500))


def test_spectrum_must_be_descending_finite_and_non_negative():
    s = sp.synthetic_spectrum(1.0, 100)
    with pytest.raises(ValueError, match=r"descending.*eigvalsh"):
        sp.fit_powerlaw_alpha(s[::-1])
    with pytest.raises(ValueError, match="negative"):
        sp.participation_ratio(np.array([1.0, -0.1]))
    with pytest.raises(ValueError, match="NaN"):
        sp.n_components(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match="1-D"):
        sp.participation_ratio(np.ones((2, 2)))


# --------------------------------------------------------------------- the ML estimator
@pytest.mark.parametrize("alpha", ALPHAS)
def test_ml_estimator_on_eigenvalues_gives_1_plus_1_over_alpha_not_alpha(alpha):
    n = 1000
    s = sp.synthetic_spectrum(alpha, n)
    gamma = sp.ml_powerlaw_exponent(s)
    # Exact value for lambda_k = k^-alpha, x_min = lambda_n: sum log(lambda_k /
    # lambda_n) = alpha * sum log(n / k)
    exact = 1 + n / (alpha * np.sum(np.log(n / np.arange(1, n + 1))))
    assert gamma == pytest.approx(exact, rel=1e-12)
    # Stirling: sum log(n / k) = n - log(2 pi n) / 2 + O(1/n), so gamma - 1 = (1/alpha)
    # / (1 - log(2 pi n) / (2n)): 0.44 % above 1/alpha for n = 1000. A 1 % relative
    # tolerance on gamma - 1 covers that bias and nothing more.
    assert (gamma - 1) == pytest.approx(1 / alpha, rel=0.01)
    assert sp.alpha_from_density_exponent(gamma) == pytest.approx(alpha, rel=0.01)
    assert abs(gamma - alpha) > 0.4  # and it is not alpha (for alpha = 1 it is ~2)


def test_ml_estimator_recovers_the_exponent_of_true_power_law_samples():
    """On independent samples of p(x) ~ x^-gamma (x >= 1) it is the right estimator."""
    rng = np.random.default_rng(0)
    for gamma in (1.5, 2.5, 3.0):
        x = rng.uniform(size=20_000) ** (-1 / (gamma - 1))  # inverse-CDF sampling
        # standard error (gamma - 1) / sqrt(m) <= 0.015; 0.05 is > 3 standard errors
        assert sp.ml_powerlaw_exponent(x, x_min=1.0) == pytest.approx(gamma, abs=0.05)


def test_ml_estimator_x_min_and_errors():
    x = np.array([1.0, 2.0, 4.0, 8.0])
    assert sp.ml_powerlaw_exponent(x) == pytest.approx(1 + 4 / (np.log(2) * 6))
    assert sp.ml_powerlaw_exponent(x, x_min=2.0) == pytest.approx(
        1 + 3 / (np.log(2) * 3)
    )
    with pytest.raises(ValueError, match="positive"):
        sp.ml_powerlaw_exponent(np.array([1.0, 0.0]))
    with pytest.raises(ParameterError, match="x_min"):
        sp.ml_powerlaw_exponent(x, x_min=-1)
    with pytest.raises(ValueError, match="lower x_min"):
        sp.ml_powerlaw_exponent(x, x_min=8.0)


def test_density_exponent_conversions():
    for a in ALPHAS:
        assert sp.alpha_from_density_exponent(
            sp.density_exponent_from_alpha(a)
        ) == pytest.approx(a)
    assert sp.density_exponent_from_alpha(1.0) == 2.0
    with pytest.raises(ValueError, match="> 1"):
        sp.alpha_from_density_exponent(1.0)
    with pytest.raises(ValueError, match="positive"):
        sp.density_exponent_from_alpha(0.0)


# -------------------------------------------------------------------- synthetic spectra
def test_synthetic_spectrum_values_noise_and_errors():
    np.testing.assert_allclose(
        sp.synthetic_spectrum(2.0, 4, amplitude=3.0), [3.0, 0.75, 1 / 3, 3 / 16]
    )
    a = sp.synthetic_spectrum(1.0, 500, noise=0.3, seed=1)
    assert np.array_equal(a, sp.synthetic_spectrum(1.0, 500, noise=0.3, seed=1))
    assert not np.array_equal(a, sp.synthetic_spectrum(1.0, 500, noise=0.3, seed=2))
    assert np.all(np.diff(a) <= 0)
    for kw in (
        dict(alpha=0),
        dict(alpha=1, n=0),
        dict(alpha=1, noise=-1),
        dict(alpha=1, amplitude=0),
    ):
        with pytest.raises(ParameterError):
            sp.synthetic_spectrum(**kw)


# ----------------------------------------------------------------------- dimensionality
def test_participation_ratio_on_hand_made_spectra():
    assert sp.participation_ratio([1.0, 1.0, 1.0, 1.0]) == pytest.approx(4.0)
    assert sp.participation_ratio([5.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert sp.participation_ratio([3.0, 1.0]) == pytest.approx(16 / 10)
    # scale-free
    assert sp.participation_ratio(np.array([3.0, 1.0]) * 1e-200) == pytest.approx(1.6)
    assert sp.participation_ratio(np.array([3.0, 1.0]) * 1e200) == pytest.approx(1.6)
    with pytest.raises(ValueError, match="all zeros"):
        sp.participation_ratio([0.0, 0.0])


def test_n_components_on_hand_made_spectra():
    # exactly 3/4: not missed by round-off
    assert sp.n_components([1.0, 1.0, 1.0, 1.0], 0.75) == 3
    assert sp.n_components([1.0, 1.0, 1.0, 1.0], 0.76) == 4
    assert sp.n_components([0.5, 0.3, 0.15, 0.05]) == 3  # 0.95 exactly
    assert sp.n_components([0.5, 0.3, 0.15, 0.05], 0.951) == 4
    assert sp.n_components([0.5, 0.3, 0.15, 0.05], 0.5) == 1
    assert sp.n_components([2.0, 0.0, 0.0]) == 1
    assert sp.n_components([1.0, 1.0, 0.0, 0.0], 1.0) == 2
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ParameterError, match="fraction"):
            sp.n_components([1.0, 0.5], bad)


def test_summarize_spectrum():
    s = sp.synthetic_spectrum(1.0, 1000)
    out = sp.summarize_spectrum(s)
    assert set(out) == {
        "alpha",
        "alpha_r2",
        "alpha_ranks",
        "participation_ratio",
        "n_components",
        "n_positive",
        "total_variance",
    }
    assert out["alpha"] == pytest.approx(1.0) and out["alpha_ranks"] == [10, 500]
    assert out["participation_ratio"] == pytest.approx(sp.participation_ratio(s))
    assert out["n_components"] == sp.n_components(s, 0.95) and out["n_positive"] == 1000


# --------------------------------------------------------------- alpha against accuracy
def test_spearman_bootstrap_on_monotone_reversed_and_tied_points():
    x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    up = sp.spearman_bootstrap(x, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6], n_boot=500)
    assert up.rho == 1.0 and up.ci == (1.0, 1.0) and up.n == 6 and up.level == 0.95
    down = sp.spearman_bootstrap(x, [6, 5, 4, 3, 2, 1], n_boot=500)
    assert down.rho == pytest.approx(-1.0) and down.ci_high == pytest.approx(-1.0)
    # a constant y has no rank correlation, and no resample has one either
    flat = sp.spearman_bootstrap(x, [0.5] * 6, n_boot=200)
    assert math.isnan(flat.rho) and flat.n_boot == 0 and math.isnan(flat.ci_low)
    # average ranks for ties, as scipy does
    from scipy.stats import spearmanr

    y = [0.3, 0.1, 0.3, 0.9, 0.2, 0.9]
    assert sp.spearman_bootstrap(x, y, n_boot=200).rho == pytest.approx(
        spearmanr(x, y).statistic, abs=1e-12
    )


def test_spearman_bootstrap_interval_reproducible_contains_rho_narrows_with_points():
    rng = np.random.default_rng(0)

    def sample(n):
        x = rng.normal(size=n)
        return x, x + rng.normal(size=n)

    small = sp.spearman_bootstrap(*sample(10), n_boot=2000, seed=1)
    assert small.ci_low <= small.rho <= small.ci_high
    # other points
    assert sp.spearman_bootstrap(*sample(10), n_boot=2000, seed=1) != small
    x, y = sample(10)
    assert sp.spearman_bootstrap(x, y, seed=3) == sp.spearman_bootstrap(x, y, seed=3)
    big = sp.spearman_bootstrap(*sample(400), n_boot=2000, seed=1)
    assert big.ci_high - big.ci_low < (small.ci_high - small.ci_low) / 2
    assert 0.55 < big.rho < 0.8  # rho of x and x + noise of equal variance: about 0.68
    # some resamples of few points are constant in x: they are left out and counted
    few = sp.spearman_bootstrap([1, 2, 3], [1, 3, 2], n_boot=1000, seed=0)
    assert 0 < few.n_boot < 1000


def test_spearman_bootstrap_errors():
    with pytest.raises(ValueError, match="at least 3"):
        sp.spearman_bootstrap([1, 2], [1, 2])
    with pytest.raises(ValueError, match="one y per x"):
        sp.spearman_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="finite"):
        sp.spearman_bootstrap([1, 2, float("nan")], [1, 2, 3])
    with pytest.raises(ParameterError, match="n_boot"):
        sp.spearman_bootstrap([1, 2, 3], [1, 2, 3], n_boot=10)
    with pytest.raises(ParameterError, match="level"):
        sp.spearman_bootstrap([1, 2, 3], [1, 2, 3], level=95)


def test_accuracy_standard_error():
    assert sp.accuracy_standard_error(0.98, 10_000) == pytest.approx(0.0014)
    assert sp.accuracy_standard_error(1.0, 100) == 0.0
    with pytest.raises(ValueError, match="fraction"):
        sp.accuracy_standard_error(98.0, 10_000)
    with pytest.raises(ValueError, match="positive integer"):
        sp.accuracy_standard_error(0.5, 0)


def test_monotonic_with_ties_counts_differences_within_the_standard_error_as_ties():
    n = 10_000  # standard error at 98 %: 0.0014
    # ordered by x (given out of order): 0.970, 0.975, 0.980, rising by more than the
    # noise
    assert sp.monotonic_with_ties([3, 1, 2], [0.980, 0.970, 0.975], n) == {
        "trend": "increasing",
        "rises": 3,
        "falls": 0,
        "ties": 0,
        "pairs": 3,
    }
    assert (
        sp.monotonic_with_ties([1, 2, 3], [0.98, 0.97, 0.96], n)["trend"]
        == "decreasing"
    )
    # a dip of 0.0003 (a fifth of the noise) is a tie, not a violation
    r = sp.monotonic_with_ties([1, 2, 3, 4], [0.970, 0.9800, 0.9797, 0.990], n)
    assert r["trend"] == "increasing" and r["ties"] == 1 and r["rises"] == 5
    # the same dip on a test set 100 times larger is larger than the noise: not
    # monotonic
    assert (
        sp.monotonic_with_ties([1, 2, 3, 4], [0.970, 0.9800, 0.9797, 0.990], 100 * n)[
            "trend"
        ]
        == "non-monotonic"
    )
    # a rise and a fall, both beyond the noise
    assert sp.monotonic_with_ties([1, 2, 3], [0.90, 0.95, 0.93], n) == {
        "trend": "non-monotonic",
        "rises": 2,
        "falls": 1,
        "ties": 0,
        "pairs": 3,
    }
    # small steps that add up: each pair is compared, so a slow fall after a rise is
    # caught
    slow = sp.monotonic_with_ties(
        [1, 2, 3, 4, 5], [0.950, 0.980, 0.979, 0.978, 0.977], n
    )
    assert slow["trend"] == "non-monotonic" and slow["falls"] >= 1
    assert sp.monotonic_with_ties([1, 2], [0.98, 0.9801], n)["trend"] == "flat"


def test_monotonic_with_ties_errors():
    with pytest.raises(ValueError, match="percentages"):
        sp.monotonic_with_ties([1, 2], [98.0, 97.0], 100)
    with pytest.raises(ValueError, match="at least 2"):
        sp.monotonic_with_ties([1], [0.5], 100)
    with pytest.raises(ValueError, match="accuracy has 1"):
        sp.monotonic_with_ties([1, 2], [0.5], 100)
    with pytest.raises(ValueError, match="finite"):
        sp.monotonic_with_ties([1, float("nan")], [0.5, 0.6], 100)
