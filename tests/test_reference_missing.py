"""The NumPy reference EM with missing values (jaxgmm/reference_missing.py): equal to the
complete-data reference when nothing is missing, its densities and conditional laws against
independent routes (scipy's densities, the precision matrix instead of the Schur complement),
its fixed point against a direct maximisation of the observed-data likelihood, its multiple
imputations against their laws."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    COVARIANCE_TYPES,
    assert_close,
    blobs,
    random_weights,
    relative_error,
    starting_params,
)
from scipy import optimize, stats

from jaxgmm import reference
from jaxgmm import reference_missing as rm

TIGHT = 1e-12
MEAN = np.array([1.0, -2.0, 0.5])
COV = np.array([[4.0, 1.2, -0.8], [1.2, 2.0, 0.5], [-0.8, 0.5, 1.5]])


def with_missing(X, fraction=0.2, seed=5):
    """``X`` with a ``fraction`` of its values set to NaN completely at random, every row keeping
    at least one observed value."""
    rng = np.random.default_rng(seed)
    missing = rng.uniform(size=X.shape) < fraction
    for n in np.flatnonzero(missing.all(axis=1)):
        missing[n, rng.integers(X.shape[1])] = False
    out = X.copy()
    out[missing] = np.nan
    return out


def one_gaussian() -> reference.Params:
    return reference.Params(np.ones(1), MEAN[None], COV[None])


def by_precision(x, mean, cov):
    """E[x_m | x_o] and Cov[x_m | x_o] from the precision matrix P = S^-1:
    ``mu_m - P_mm^-1 P_mo (x_o - mu_o)`` and ``P_mm^-1`` (not the Schur complement of S)."""
    m = np.isnan(x)
    o = ~m
    p = np.linalg.inv(cov)
    p_mm_inv = np.linalg.inv(p[np.ix_(m, m)])
    return mean[m] - p_mm_inv @ p[np.ix_(m, o)] @ (x[o] - mean[o]), p_mm_inv


def observed_log_density(x, mean, cov):
    """log N(x_o | mu_o, S_oo) by scipy."""
    o = ~np.isnan(x)
    return stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(x[o])


# --- nothing missing: the complete-data reference -------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_equals_complete_data_reference_without_missing_values(covariance_type, weighted):
    X = blobs(n_per=50)
    w = random_weights(len(X)) if weighted else None
    p = starting_params(X, 3, covariance_type)

    log_resp, bound = rm.e_step(X, p, covariance_type, w)
    ref_log_resp, ref_bound = reference.e_step(X, p, covariance_type, w)
    assert_close(log_resp, ref_log_resp, TIGHT, "log_resp")
    assert_close(bound, ref_bound, TIGHT, "lower bound")

    new = rm.m_step(X, log_resp, p, covariance_type, 1e-6, w)
    ref_new = reference.m_step(X, log_resp, covariance_type, 1e-6, w, previous=p)
    for name in ("weights", "means", "covariances"):
        assert_close(getattr(new, name), getattr(ref_new, name), TIGHT, f"m-step {name}")

    fitted, bounds, n_iter, converged = rm.fit(X, p, covariance_type, max_iter=6, sample_weight=w)
    ref_fitted, ref_bounds, ref_n_iter, ref_converged = reference.fit(
        X, p, covariance_type, max_iter=6, sample_weight=w
    )
    assert (n_iter, converged) == (ref_n_iter, ref_converged)
    assert_close(bounds, ref_bounds, TIGHT, "lower bounds")
    for name in ("weights", "means", "covariances"):
        assert_close(getattr(fitted, name), getattr(ref_fitted, name), TIGHT, f"fit {name}")


# --- with missing values ------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases_with_missing_values(covariance_type, weighted):
    X = with_missing(blobs(n_per=50))
    assert 0.15 < np.isnan(X).mean() < 0.25
    w = random_weights(len(X)) if weighted else None
    n_components = 3 if weighted else 2
    p = starting_params(blobs(n_per=50), n_components, covariance_type)
    fitted, bounds, n_iter, _ = rm.fit(X, p, covariance_type, max_iter=15, tol=0.0, sample_weight=w)
    assert n_iter == 15
    steps = np.diff(bounds)
    assert np.all(steps >= -1e-12 * np.abs(bounds[1:])), steps.min()
    assert bounds[-1] > bounds[0] + 1e-3
    assert np.all(np.isfinite(fitted.means)) and np.all(np.isfinite(fitted.covariances))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step_densities_are_the_observed_marginals(covariance_type):
    """log_resp and the bound against scipy's densities of each row's observed values."""
    X = with_missing(blobs(n_per=12), fraction=0.3)
    w = random_weights(len(X))
    p = starting_params(blobs(n_per=12), 3, covariance_type)
    covs = reference.full_covariances(p.covariances, covariance_type, 3, X.shape[1])
    weighted = np.array(
        [
            [np.log(p.weights[k]) + observed_log_density(x, p.means[k], covs[k]) for k in range(3)]
            for x in X
        ]
    )
    log_norm = np.log(np.exp(weighted).sum(axis=1))
    log_resp, bound = rm.e_step(X, p, covariance_type, w)
    assert_close(log_resp, weighted - log_norm[:, None], 1e-10, "log_resp")
    assert_close(bound, np.sum(w * log_norm) / w.sum(), 1e-12, "lower bound")


def test_conditional_of_one_gaussian_by_the_precision_matrix():
    p = one_gaussian()
    nan = np.nan
    rows = [[0.3, nan, nan], [nan, -1.0, nan], [nan, 1.0, 2.0], [2.0, nan, 1.0], [0.0, 1.0, 2.0]]
    for x in np.array(rows):
        got = rm.conditional(x, p, "full")
        np.testing.assert_array_equal(got.missing, np.isnan(x))
        np.testing.assert_allclose(got.resp, [1.0], rtol=TIGHT)
        mean, cov = by_precision(x, MEAN, COV)
        assert got.means.shape == (1, len(mean)) and got.covariances.shape == (1, *cov.shape)
        if len(mean):
            assert_close(got.means[0], mean, TIGHT, f"conditional mean of {x}")
            assert_close(got.covariances[0], cov, TIGHT, f"conditional covariance of {x}")


def test_conditional_in_two_dimensions_by_the_textbook_formula():
    """E[x2 | x1] = mu2 + rho s2 / s1 (x1 - mu1), Var[x2 | x1] = s2^2 (1 - rho^2)."""
    s1, s2, rho, mu = 2.0, 0.5, -0.7, np.array([1.0, 3.0])
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    p = reference.Params(np.ones(1), mu[None], cov[None])
    got = rm.conditional(np.array([2.5, np.nan]), p, "full")
    assert_close(got.means[0], [mu[1] + rho * s2 / s1 * (2.5 - mu[0])], TIGHT, "mean")
    assert_close(got.covariances[0], [[s2**2 * (1 - rho**2)]], TIGHT, "variance")


def test_expected_statistics_of_one_gaussian_by_the_precision_matrix():
    """n, the mean of the completed rows, and their scatter plus the conditional covariances in
    the missing-missing blocks, every row completed by the precision-matrix route."""
    rng = np.random.default_rng(2)
    X = with_missing(rng.multivariate_normal(MEAN, COV, size=30), fraction=0.3)
    w = random_weights(len(X))
    completed, extra = X.copy(), np.zeros((len(X), 3, 3))
    for n, x in enumerate(X):
        m = np.isnan(x)
        if m.any():
            completed[n, m], extra[n][np.ix_(m, m)] = by_precision(x, MEAN, COV)
    mean = w @ completed / w.sum()
    diff = completed - mean
    scatter = (diff * w[:, None]).T @ diff + np.einsum("n,nij->ij", w, extra)

    got = rm.expected_statistics(X, np.zeros((len(X), 1)), one_gaussian(), "full", w)
    assert_close(got.nk, [w.sum()], TIGHT, "nk")
    assert_close(got.means[0], mean, TIGHT, "mean")
    assert_close(got.scatters[0], scatter, 1e-11, "scatter")


def test_impute_is_the_mixture_conditional_mean():
    X = with_missing(blobs(n_per=10), fraction=0.3)
    p = starting_params(blobs(n_per=10), 2, "full")
    got = rm.impute(X, p, "full")
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(got[observed], X[observed])
    assert not np.isnan(got).any()
    for n, x in enumerate(X):
        m = np.isnan(x)
        if not m.any():
            continue
        log_w = [
            np.log(p.weights[k]) + observed_log_density(x, p.means[k], p.covariances[k])
            for k in range(2)
        ]
        resp = np.exp(np.array(log_w) - np.logaddexp(*log_w))
        expected = sum(resp[k] * by_precision(x, p.means[k], p.covariances[k])[0] for k in range(2))
        assert_close(got[n, m], expected, 1e-10, f"row {n}")
        assert_close(rm.conditional(x, p, "full").resp, resp, 1e-10, f"row {n} posterior")


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "VVE"])
def test_empty_component_keeps_its_previous_mean_and_covariance(covariance_type):
    X = with_missing(blobs(n_per=20))
    p = starting_params(blobs(n_per=20), 3, covariance_type)
    far = p.means.copy()
    far[2] = 1e4  # no row reaches it: responsibilities underflow to 0
    p = p._replace(means=far)
    log_resp, _ = rm.e_step(X, p, covariance_type)
    assert np.exp(log_resp[:, 2]).max() == 0.0
    new = rm.m_step(X, log_resp, p, covariance_type)
    np.testing.assert_array_equal(new.means[2], far[2])
    if covariance_type != "tied":
        np.testing.assert_array_equal(new.covariances[2], p.covariances[2])
    assert np.all(np.isfinite(new.covariances))
    assert new.weights[2] < 1e-15 and abs(new.weights.sum() - 1) < 1e-12


def test_fixed_point_maximises_the_observed_data_likelihood():
    """K = 1, full covariance, no regularisation: EM's limit against a direct maximisation of
    the observed-data log-likelihood (scipy's densities) over the mean and a Cholesky factor."""
    rng = np.random.default_rng(7)
    X = with_missing(rng.multivariate_normal(MEAN, COV, size=80), fraction=0.25, seed=8)
    start = reference.Params(np.ones(1), np.zeros((1, 3)), np.eye(3)[None])
    fitted, bounds, _, converged = rm.fit(X, start, "full", max_iter=2000, tol=1e-14, reg_covar=0)
    assert converged

    patterns = [(o, X[np.all(~np.isnan(X) == o, axis=1)]) for o in np.unique(~np.isnan(X), axis=0)]
    lower = np.tril_indices(3)

    def unpack(theta):
        factor = np.zeros((3, 3))
        factor[lower] = theta[3:]
        factor[np.diag_indices(3)] = np.exp(np.diag(factor))
        return theta[:3], factor @ factor.T

    def pack(mean, cov):
        factor = np.linalg.cholesky(cov)
        factor[np.diag_indices(3)] = np.log(np.diag(factor))
        return np.concatenate([mean, factor[lower]])

    def mean_log_likelihood(theta):
        mean, cov = unpack(theta)
        total = sum(
            np.sum(stats.multivariate_normal(mean[o], cov[np.ix_(o, o)]).logpdf(rows[:, o]))
            for o, rows in patterns
        )
        return total / len(X)

    em = pack(fitted.means[0], fitted.covariances[0])
    assert abs(mean_log_likelihood(em) - bounds[-1]) < 1e-12
    gradient = optimize.approx_fprime(em, mean_log_likelihood, 1e-6)
    assert np.max(np.abs(gradient)) < 1e-5, gradient

    result = optimize.minimize(
        lambda t: -mean_log_likelihood(t), pack(np.zeros(3), np.eye(3)), method="BFGS"
    )
    assert -result.fun <= mean_log_likelihood(em) + 1e-10
    mean, cov = unpack(result.x)
    assert relative_error(mean, fitted.means[0]) < 1e-4
    assert relative_error(cov, fitted.covariances[0]) < 1e-4


# --- multiple imputations -----------------------------------------------------------------------


def assert_moments_match(draws, mean, cov, what):
    """Sample mean and covariance of ``draws (n, M)`` against ``mean`` and ``cov`` within 5
    Monte Carlo standard errors, each estimated from the draws themselves."""
    n = len(draws)
    centred = draws - draws.mean(axis=0)
    se_mean = draws.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(draws.mean(axis=0) - mean) < 5 * se_mean), (what, draws.mean(0), mean)
    products = centred[:, :, None] * centred[:, None, :]
    se_cov = products.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(products.mean(axis=0) - cov) < 5 * se_cov), (what, products.mean(0), cov)


def test_imputations_of_one_gaussian_follow_the_conditional_law():
    nan = np.nan
    X = np.array([[0.3, nan, nan], [nan, -1.0, 2.0], [1.0, 2.0, 3.0], [nan, nan, 0.0]])
    draws = rm.impute_draws(X, one_gaussian(), "full", 20_000, np.random.default_rng(11))
    assert draws.shape == (20_000, *X.shape)
    observed = ~np.isnan(X)
    np.testing.assert_array_equal(
        draws[:, observed], np.broadcast_to(X[observed], (20_000, observed.sum()))
    )
    for n, x in enumerate(X):
        m = np.isnan(x)
        if m.any():
            mean, cov = by_precision(x, MEAN, COV)
            assert_moments_match(draws[:, n][:, m], mean, cov, f"row {n}")


def test_imputations_of_a_mixture_follow_the_mixture_conditional_law():
    """A row between two components: draws' mean is impute's value, their covariance the law of
    total covariance sum_k r_k (C_k + mu_k mu_k^T) - m m^T."""
    cov = np.array([[1.0, 0.6], [0.6, 1.0]])
    p = reference.Params(np.array([0.4, 0.6]), np.array([[-1.0, -2.0], [1.0, 2.0]]), cov)
    X = np.array([[0.1, np.nan]])
    c = rm.conditional(X[0], p, "tied")
    assert 0.2 < c.resp[0] < 0.8  # both components drawn
    mean = c.resp @ c.means
    second = sum(
        r * (ck + np.outer(mk, mk))
        for r, mk, ck in zip(c.resp, c.means, c.covariances, strict=True)
    )
    total = second - np.outer(mean, mean)
    assert_close(rm.impute(X, p, "tied")[0, 1:], mean, TIGHT, "impute")
    draws = rm.impute_draws(X, p, "tied", 20_000, 12)[:, 0, 1:]
    assert_moments_match(draws, mean, total, "mixture row")


# --- bad input ----------------------------------------------------------------------------------


def test_rejects_rows_missing_everything_columns_missing_everywhere_and_infinity():
    X = with_missing(blobs(n_per=10))
    p = starting_params(blobs(n_per=10), 2, "full")

    bad = X.copy()
    bad[[3, 7]] = np.nan
    for call in (
        lambda: rm.e_step(bad, p, "full"),
        lambda: rm.fit(bad, p, "full"),
        lambda: rm.impute(bad, p, "full"),
        lambda: rm.conditional(bad[3], p, "full"),
    ):
        with pytest.raises(ValueError, match=r"row\(s\) \[(3, 7|0)\] .*every value missing"):
            call()

    bad = X.copy()
    bad[:, 2] = np.nan
    for call in (
        lambda: rm.fit(bad, p, "full"),
        lambda: rm.m_step(bad, np.zeros((len(bad), 2)), p, "full"),
        lambda: rm.expected_statistics(bad, np.zeros((len(bad), 2)), p, "full"),
    ):
        with pytest.raises(ValueError, match=r"column\(s\) \[2\] .*missing in every row"):
            call()

    bad = X.copy()
    bad[4, 1] = -np.inf
    for call in (lambda: rm.e_step(bad, p, "full"), lambda: rm.fit(bad, p, "full")):
        with pytest.raises(ValueError, match=r"infinite value.*row 4, column 1"):
            call()
