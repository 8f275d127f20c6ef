"""The JAX fit against scikit-learn from the same starting point, and densities against SciPy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import SKLEARN_TYPES, assert_close, blobs, starting_params
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture

import jaxgmm

pytestmark = [
    pytest.mark.usefixtures("x64"),
    pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning"),
]

RTOL = 1e-8


def precisions_of(covariances, covariance_type):
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(covariances)
    return 1.0 / covariances


@pytest.mark.parametrize("covariance_type", SKLEARN_TYPES)
def test_fit_matches_sklearn_from_same_start(covariance_type):
    X = blobs()
    p = starting_params(X, 3, covariance_type)
    precisions = precisions_of(p.covariances, covariance_type)
    sk = GaussianMixture(
        3,
        covariance_type=covariance_type,
        max_iter=20,
        tol=0.0,
        weights_init=p.weights,
        means_init=p.means,
        precisions_init=precisions,
        random_state=0,
    ).fit(X)
    init = jaxgmm.params_from_precisions(
        p.weights, p.means, precisions, covariance_type=covariance_type
    )
    result = jaxgmm.fit(
        jax.random.key(0), X, 3, covariance_type=covariance_type, max_iter=20, tol=0.0, init=init
    )
    got = result.params
    assert_close(got.weights, sk.weights_, RTOL, "weights")
    assert_close(got.means, sk.means_, RTOL, "means")
    assert_close(got.covariances, sk.covariances_, RTOL, "covariances")
    assert_close(got.precisions_cholesky, sk.precisions_cholesky_, RTOL, "precisions_cholesky")
    assert_close(result.lower_bounds, sk.lower_bounds_, RTOL, "lower_bounds")
    assert_close(result.lower_bound, sk.lower_bound_, RTOL, "lower_bound")
    assert int(result.n_iter) == sk.n_iter_ == 20
    # per-sample densities and responsibilities at the fitted parameters
    Xj = jnp.asarray(X)
    assert_close(
        jaxgmm.log_prob(Xj, got, covariance_type=covariance_type), sk.score_samples(X), RTOL
    )
    log_resp, _ = jaxgmm.e_step(Xj, got, covariance_type=covariance_type)
    assert_close(np.exp(log_resp), sk.predict_proba(X), RTOL, "responsibilities")


def test_params_from_precisions_matches_sklearn_factor():
    X = blobs()
    p = starting_params(X, 3, "full")
    precisions = precisions_of(p.covariances, "full")
    params = jaxgmm.params_from_precisions(p.weights, p.means, precisions, covariance_type="full")
    assert_close(params.covariances, p.covariances, 1e-12, "covariances from precisions")
    direct = jaxgmm.params_from_covariances(
        p.weights, p.means, p.covariances, covariance_type="full"
    )
    assert_close(params.precisions_cholesky, direct.precisions_cholesky, 1e-12)
    u = np.asarray(direct.precisions_cholesky)
    assert np.allclose(np.tril(u, -1), 0.0)  # upper triangular, as scikit-learn's
    assert_close(u @ np.swapaxes(u, 1, 2), precisions, 1e-12)


def test_log_prob_matches_scipy_with_correlated_covariances():
    rng = np.random.default_rng(7)
    n_features = 4
    covs = []
    for _ in range(3):
        a = rng.normal(size=(n_features, n_features))
        covs.append(a @ a.T + 0.05 * np.eye(n_features))  # strongly correlated
    covs = np.stack(covs)
    means = rng.normal(size=(3, n_features)) * 3
    weights = np.array([0.2, 0.5, 0.3])
    X = rng.normal(size=(50, n_features)) * 2
    params = jaxgmm.params_from_covariances(weights, means, covs, covariance_type="full")
    per_component = np.stack(
        [multivariate_normal(means[k], covs[k]).logpdf(X) for k in range(3)], axis=1
    )
    got = jaxgmm.component_log_prob(jnp.asarray(X), params, covariance_type="full")
    assert_close(got, per_component, 1e-10, "component log densities")
    mixture = np.log(np.exp(per_component) @ weights)
    assert_close(jaxgmm.log_prob(jnp.asarray(X), params, covariance_type="full"), mixture, 1e-10)
