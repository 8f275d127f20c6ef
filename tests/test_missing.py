"""Values missing at random (``missing="em"``; jaxgmm/_missing.py): EM against the NumPy
reference (jaxgmm/reference_missing.py) for every model, the complete-data path untouched,
recovery of a known mixture, imputation, and bad input."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest

import jaxgmm
from jaxgmm import COVARIANCE_TYPES, reference, reference_missing


def holes(X, fraction, seed=0):
    """``X`` with ``fraction`` of its values removed completely at random (no row emptied)."""
    rng = np.random.default_rng(seed)
    out = np.array(X, dtype=np.float64)
    out[rng.uniform(size=out.shape) < fraction] = np.nan
    empty = np.isnan(out).all(axis=1)
    out[empty, 0] = np.asarray(X)[empty, 0]
    return out


def two_clusters(n=120, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.7]])
    return np.concatenate([a, rng.normal(size=(n, 3)) * 0.6 + [3.0, 2.0, -1.0]])


def _start(covariance_type, seed=1):
    """Valid parameters of any model: the reference's M-step from random responsibilities."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(60, 3)) * [1.0, 2.0, 0.5]
    resp = rng.dirichlet(np.ones(2), size=60)
    return reference.m_step(data, np.log(resp), covariance_type, reg_covar=0.1)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_iterations_equal_the_reference(covariance_type, x64):
    """Six iterations from the same start, with and without sample weights: each iteration's
    lower bound and the final parameters to 1e-10 (float64), every model."""
    X = holes(two_clusters(), 0.2)
    weights = np.random.default_rng(2).uniform(0.5, 2.0, len(X))
    start = _start(covariance_type)
    init = jaxgmm.params_from_covariances(
        start.weights, start.means, start.covariances, covariance_type=covariance_type
    )
    for w in (None, weights):
        result = jaxgmm.fit(
            jax.random.key(0),
            X,
            2,
            covariance_type=covariance_type,
            init=init,
            missing="em",
            sample_weight=w,
            max_iter=6,
            tol=0.0,
        )
        params, bounds, _, _ = reference_missing.fit(
            X, start, covariance_type, max_iter=6, tol=0.0, sample_weight=w
        )
        np.testing.assert_allclose(result.lower_bounds, bounds, rtol=1e-10)
        assert np.all(np.diff(bounds) > 0)  # EM climbs the observed-data likelihood
        for got, want in zip(result.params[:3], params, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_nothing_missing_is_the_complete_data_fit():
    """missing="em" on complete data takes the complete-data path: the same numbers."""
    X = two_clusters().astype(np.float32)
    settings = dict(n_init=2, covariance_type="diag")
    em = jaxgmm.fit(jax.random.key(0), X, 2, missing="em", **settings)
    plain = jaxgmm.fit(jax.random.key(0), X, 2, **settings)
    for a, b in zip(jax.tree_util.tree_leaves(em), jax.tree_util.tree_leaves(plain), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def _matched_error(means, covariances, true_means, true_covariances):
    """Error of fitted means and covariances against the truth, components matched by their
    means (largest relative Frobenius error of the covariances, largest distance of means)."""
    order = [int(np.argmin(np.linalg.norm(means - m, axis=1))) for m in true_means]
    assert sorted(order) == list(range(len(true_means)))
    mean_error = max(np.linalg.norm(means[o] - m) for o, m in zip(order, true_means, strict=True))
    cov_error = max(
        np.linalg.norm(covariances[o] - c) / np.linalg.norm(c)
        for o, c in zip(order, true_covariances, strict=True)
    )
    return mean_error, cov_error


def test_recovery_beats_complete_rows_and_mean_imputation():
    """A known mixture with 20% of values removed at random: EM with the missing values ends
    closer to the truth than a fit of the complete rows alone and one after mean imputation
    (the figures of the note: bench/missing.py prints them)."""
    rng = np.random.default_rng(0)
    true_means = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 1.0, -2.0, 3.0], [-3.0, 4.0, 2.0, -1.0]])
    base = np.array([[1.0, 0.6, 0.3, 0.0], [0.6, 1.0, 0.5, 0.2], [0.3, 0.5, 1.0, 0.4]])
    true_covariances = np.stack(
        [np.eye(4) + 0.5 * np.outer(b, b) * s for b, s in zip(base, [1.0, 2.0, 0.5], strict=True)]
    )
    labels = rng.integers(0, 3, 3000)
    X = np.stack([rng.multivariate_normal(true_means[k], true_covariances[k]) for k in labels])
    Xm = holes(X, 0.2, seed=1)
    settings = dict(n_init=3, random_state=0, tol=1e-6)
    em = jaxgmm.GaussianMixture(3, missing="em", **settings).fit(Xm)
    complete = jaxgmm.GaussianMixture(3, **settings).fit(Xm[~np.isnan(Xm).any(axis=1)])
    filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
    imputed = jaxgmm.GaussianMixture(3, **settings).fit(filled)
    errors = {
        name: _matched_error(m.means_, m.covariances_, true_means, true_covariances)
        for name, m in [("em", em), ("complete", complete), ("imputed", imputed)]
    }
    for other in ("complete", "imputed"):
        assert errors["em"][0] < errors[other][0] and errors["em"][1] < errors[other][1], errors
    assert errors["em"][1] < 0.5 * errors["imputed"][1]  # mean imputation shrinks covariances
    assert np.all(np.diff(em.lower_bounds_) > -1e-6)


def test_imputation_is_the_conditional_law_of_one_gaussian(x64):
    """K = 1: the conditional mean mu_m - P_mm^-1 P_mo (x_o - mu_o) (from the precision P, a
    route independent of the code's), and draws whose mean and covariance are the
    conditional ones."""
    mean = np.array([1.0, -2.0, 0.5])
    cov = np.array([[2.0, 0.8, 0.3], [0.8, 1.5, -0.4], [0.3, -0.4, 1.0]])
    rng = np.random.default_rng(3)
    X = rng.multivariate_normal(mean, cov, size=400)
    model = jaxgmm.GaussianMixture(1, missing="em", random_state=0).fit(holes(X, 0.1))
    row = np.array([[0.7, np.nan, np.nan]])
    m, o = [1, 2], [0]
    precision = np.linalg.inv(model.covariances_[0])
    mu = model.means_[0]
    expected = mu[m] - np.linalg.solve(precision[np.ix_(m, m)], precision[np.ix_(m, o)]) @ (
        row[0, o] - mu[o]
    )
    filled = model.impute(row)
    np.testing.assert_allclose(filled[0, m], expected, rtol=1e-10)
    assert filled[0, 0] == 0.7
    draws = model.impute(row, n_draws=20000, key=1)[:, 0, :]
    assert np.all(draws[:, 0] == 0.7)
    conditional = np.linalg.inv(precision[np.ix_(m, m)])
    np.testing.assert_allclose(
        draws[:, m].mean(axis=0), expected, atol=4 * np.sqrt(conditional.diagonal().max() / 20000)
    )
    np.testing.assert_allclose(np.cov(draws[:, m].T), conditional, atol=0.05 * conditional.max())


def test_predictions_with_holes_use_the_marginal_density(tmp_path):
    """score_samples and predict_proba of rows with NaN equal the reference's marginal ones;
    a saved model keeps missing="em"."""
    X = holes(two_clusters(), 0.25, seed=4)
    model = jaxgmm.GaussianMixture(2, missing="em", random_state=0).fit(X)
    params = reference.Params(
        *(np.asarray(a, np.float64) for a in (model.weights_, model.means_, model.covariances_))
    )
    log_resp, _ = reference_missing.e_step(X, params, "full")
    np.testing.assert_allclose(model.predict_proba(X), np.exp(log_resp), atol=1e-5)
    marginal = reference_missing.component_log_prob(X, params, "full") + np.log(params.weights)
    expected = np.logaddexp.reduce(marginal, axis=1)
    np.testing.assert_allclose(model.score_samples(X), expected, rtol=1e-5)
    model.save(tmp_path / "m.npz")
    loaded = jaxgmm.load(tmp_path / "m.npz")
    assert loaded.missing == "em"
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_selection_with_holes():
    X = holes(two_clusters(), 0.1, seed=5).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # K at the edge of the grid
        result = jaxgmm.select(X, [1, 2, 3], ["full", "VEV"], missing="em", random_state=0)
    assert result.best_row["n_components"] == 2
    assert result.best.missing == "em"


def test_bad_input_is_named():
    X = holes(two_clusters(), 0.1).astype(np.float32)
    with pytest.raises(ValueError, match='missing="em"'):
        jaxgmm.fit(jax.random.key(0), X, 2)  # the default refuses NaN, naming the option
    model = jaxgmm.GaussianMixture(2, random_state=0).fit(np.nan_to_num(X))
    with pytest.raises(ValueError, match='missing="em"'):
        model.predict(X)
    column = X.copy()
    column[:, 1] = np.nan
    with pytest.raises(ValueError, match="column 1 is missing in every row"):
        jaxgmm.fit(jax.random.key(0), column, 2, missing="em")
    infinite = X.copy()
    infinite[3, 2] = np.inf
    with pytest.raises(ValueError, match="inf does not"):
        jaxgmm.fit(jax.random.key(0), infinite, 2, missing="em")
    empty = X.copy()
    empty[[5, 9]] = np.nan
    with pytest.warns(UserWarning, match=r"2 rows with every value missing \(5, 9\)"):
        fitted = jaxgmm.GaussianMixture(2, missing="em", random_state=0).fit(empty)
    kept = jaxgmm.GaussianMixture(2, missing="em", random_state=0).fit(np.delete(empty, [5, 9], 0))
    np.testing.assert_array_equal(fitted.means_, kept.means_)
    with pytest.raises(ValueError, match="fit with missing"):
        model.impute(X)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_a_large_fit_has_the_models_own_program_and_equals_the_reference(covariance_type, x64):
    """9,000 rows: not a small fit, so each model's own unit reads the statistics (its shape of
    the scatter from the dense one), and no LAPACK kernel stalls the blocks."""
    X = holes(np.tile(two_clusters(), (38, 1))[:9000], 0.2, seed=6)
    start = _start(covariance_type, seed=7)
    init = jaxgmm.params_from_covariances(
        start.weights, start.means, start.covariances, covariance_type=covariance_type
    )
    result = jaxgmm.fit(
        jax.random.key(0),
        X,
        2,
        covariance_type=covariance_type,
        init=init,
        missing="em",
        max_iter=3,
        tol=0.0,
    )
    params, bounds, _, _ = reference_missing.fit(X, start, covariance_type, max_iter=3, tol=0.0)
    np.testing.assert_allclose(result.lower_bounds, bounds, rtol=1e-10)
    np.testing.assert_allclose(result.params.covariances, params.covariances, rtol=1e-10)


def test_the_prior_with_missing_values_is_the_map_step_of_the_expected_statistics(x64):
    """prior="default" with holes: mclust's default prior of the data with each missing value
    replaced by its column's mean, and one MAP M-step of the expected statistics (VVV's
    formula, written out here) to 1e-10."""
    X = holes(two_clusters(), 0.2, seed=8)
    start = _start("full", seed=9)
    init = jaxgmm.params_from_covariances(
        start.weights, start.means, start.covariances, covariance_type="full"
    )
    result = jaxgmm.fit(
        jax.random.key(0),
        X,
        2,
        init=init,
        missing="em",
        prior="default",
        max_iter=1,
        reg_covar=0.0,
        tol=0.0,
    )
    filled = np.where(np.isnan(X), np.nanmean(X, axis=0), X)
    mu_p, scale = filled.mean(axis=0), np.cov(filled.T)  # defaultPrior: divisor N - 1
    kappa, nu, d = 0.01, 3 + 2, 3
    log_resp, _ = reference_missing.e_step(X, start, "full")
    stats = reference_missing.expected_statistics(X, log_resp, start, "full")
    lam = scale / 2 ** (2 / d)
    for k in range(2):
        n, xbar = stats.nk[k], stats.means[k]
        offset = xbar - mu_p
        pull = kappa * n / (kappa + n) * np.outer(offset, offset)
        cov = (lam + stats.scatters[k] + pull) / (nu + n + d + 2)
        mean = (n * xbar + kappa * mu_p) / (n + kappa)
        np.testing.assert_allclose(result.params.covariances[k], cov, rtol=1e-10)
        np.testing.assert_allclose(result.params.means[k], mean, rtol=1e-10)


def test_a_diagonal_model_imputes_and_draws_each_coordinate_alone():
    """diag: missing coordinates are independent of the observed ones given the component;
    with one component the imputed value is the mean and the draws have its variance."""
    rng = np.random.default_rng(11)
    X = (rng.normal(size=(500, 3)) * [1.0, 2.0, 0.5] + [1.0, -1.0, 3.0]).astype(np.float32)
    model = jaxgmm.GaussianMixture(1, covariance_type="diag", missing="em").fit(holes(X, 0.1))
    row = np.array([[np.nan, 0.0, np.nan]], np.float32)
    np.testing.assert_allclose(model.impute(row)[0, [0, 2]], model.means_[0, [0, 2]], rtol=1e-6)
    draws = model.impute(row, n_draws=20000, key=2)[:, 0, :]
    assert np.all(draws[:, 1] == 0.0)
    np.testing.assert_allclose(
        draws[:, [0, 2]].var(axis=0), model.covariances_[0, [0, 2]], rtol=0.05
    )
