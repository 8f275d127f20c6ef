"""The NumPy reference of variational Bayes (``jaxgmm.reference_vb``) against scikit-learn's
``BayesianGaussianMixture``, iteration by iteration from the same responsibilities: both weight
priors, the four covariance types, scikit-learn's default priors and others."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.mixture import BayesianGaussianMixture

from jaxgmm import reference_vb as vb

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
N_COMPONENTS = 4


def _data(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [-3.0, 5.0, 1.0]])
    scales = np.array([0.5, 1.0, 1.5])
    labels = rng.integers(0, 3, 300)
    X = centres[labels] + rng.normal(size=(300, 3)) * scales[labels, None]
    resp = rng.dirichlet(np.ones(N_COMPONENTS), size=len(X))
    return X, resp


def _sklearn_posterior(model) -> vb.Posterior:
    concentration = model.weight_concentration_
    if isinstance(concentration, tuple):
        concentration = np.stack(concentration)
    return vb.Posterior(
        concentration,
        model.mean_precision_,
        model.means_,
        np.asarray(model.degrees_of_freedom_),
        model.covariances_,
    )


def _assert_posteriors_equal(ours: vb.Posterior, theirs: vb.Posterior, rtol=1e-10):
    for name, a, b in zip(vb.Posterior._fields, ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("weight_type", vb.WEIGHT_PRIORS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("priors", ["default", "given"])
def test_iterations_equal_scikit_learns(weight_type, covariance_type, priors):
    X, resp = _data()
    D = X.shape[1]
    options = {}
    if priors == "given":
        covariance = {
            "full": np.eye(D) * 2.0 + 0.3,
            "tied": np.eye(D) * 2.0 + 0.3,
            "diag": np.array([1.0, 2.0, 0.5]),
            "spherical": 1.7,
        }[covariance_type]
        options = dict(
            weight_concentration_prior=0.3,
            mean_precision_prior=0.05,
            mean_prior=np.array([1.0, -1.0, 0.5]),
            degrees_of_freedom_prior=D + 2.5,
            covariance_prior=covariance,
        )
    model = BayesianGaussianMixture(
        n_components=N_COMPONENTS,
        covariance_type=covariance_type,
        weight_concentration_prior_type=weight_type,
        reg_covar=1e-6,
        **options,
    )
    model._check_parameters(X)
    model._initialize(X, resp)
    if priors == "default":
        prior = vb.default_prior(X, covariance_type, N_COMPONENTS, weight_type)
    else:
        prior = vb.Prior(
            weight_type,
            options["weight_concentration_prior"],
            options["mean_precision_prior"],
            options["mean_prior"],
            options["degrees_of_freedom_prior"],
            np.asarray(options["covariance_prior"]),
        )
    post = vb.m_step(X, resp, prior, covariance_type)
    _assert_posteriors_equal(post, _sklearn_posterior(model))
    bounds = []
    for _ in range(6):
        log_prob_norm, their_log_resp = model._e_step(X)
        log_resp, our_log_prob_norm = vb.e_step(X, post, prior, covariance_type)
        np.testing.assert_allclose(log_resp, their_log_resp, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(our_log_prob_norm, log_prob_norm, rtol=1e-12)
        model._m_step(X, their_log_resp)
        post = vb.m_step(X, np.exp(log_resp), prior, covariance_type)
        _assert_posteriors_equal(post, _sklearn_posterior(model))
        bound = vb.lower_bound(log_resp, post, prior, covariance_type)
        np.testing.assert_allclose(
            bound, model._compute_lower_bound(their_log_resp, log_prob_norm), rtol=1e-10
        )
        bounds.append(bound)
    # variational EM never lowers its bound
    assert np.all(np.diff(bounds) >= -1e-9 * np.abs(bounds[1:]))
