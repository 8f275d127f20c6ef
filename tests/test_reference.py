"""Every JAX step against the NumPy reference, float64, to 1e-10 relative."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import COVARIANCE_TYPES, assert_close, blobs, random_weights, starting_params

import jaxgmm
from jaxgmm import reference

pytestmark = pytest.mark.usefixtures("x64")

RTOL = 1e-10
K = 3


def to_jax(p: reference.Params, covariance_type: str) -> jaxgmm.GMMParams:
    return jaxgmm.params_from_covariances(
        p.weights, p.means, p.covariances, covariance_type=covariance_type
    )


def assert_params_close(actual: jaxgmm.GMMParams, desired: reference.Params, rtol, what=""):
    assert_close(actual.weights, desired.weights, rtol, f"{what} weights")
    assert_close(actual.means, desired.means, rtol, f"{what} means")
    assert_close(actual.covariances, desired.covariances, rtol, f"{what} covariances")


def problem(covariance_type, weighted):
    X = blobs()
    w = random_weights(len(X)) if weighted else None
    return X, w, starting_params(X, K, covariance_type)


def jw(w):
    return None if w is None else jnp.asarray(w)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_e_step(covariance_type, weighted):
    X, w, p = problem(covariance_type, weighted)
    log_resp, bound = jaxgmm.e_step(
        jnp.asarray(X),
        to_jax(p, covariance_type),
        covariance_type=covariance_type,
        sample_weight=jw(w),
    )
    ref_log_resp, ref_bound = reference.e_step(X, p, covariance_type, w)
    assert log_resp.dtype == jnp.float64
    assert_close(log_resp, ref_log_resp, RTOL, "log_resp")
    assert_close(bound, ref_bound, RTOL, "lower bound")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_prob_and_component_log_prob(covariance_type):
    X, _, p = problem(covariance_type, False)
    params = to_jax(p, covariance_type)
    assert_close(
        jaxgmm.log_prob(jnp.asarray(X), params, covariance_type=covariance_type),
        reference.log_prob(X, p, covariance_type),
        RTOL,
        "log_prob",
    )
    assert_close(
        jaxgmm.component_log_prob(jnp.asarray(X), params, covariance_type=covariance_type),
        reference.component_log_prob(X, p, covariance_type),
        RTOL,
        "component_log_prob",
    )


@pytest.mark.parametrize("with_previous", [False, True], ids=["two-pass", "shifted"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step(covariance_type, weighted, with_previous):
    X, w, p = problem(covariance_type, weighted)
    log_resp, _ = reference.e_step(X, p, covariance_type, w)
    previous = p if with_previous else None
    new = jaxgmm.m_step(
        jnp.asarray(X),
        jnp.asarray(log_resp),
        covariance_type=covariance_type,
        reg_covar=1e-6,
        sample_weight=jw(w),
        previous=to_jax(p, covariance_type) if with_previous else None,
    )
    ref = reference.m_step(X, log_resp, covariance_type, 1e-6, w, previous=previous)
    assert_params_close(new, ref, RTOL, "m_step")
    # the factor matches the covariances it came from
    assert_close(new.precisions_cholesky, to_jax(ref, covariance_type).precisions_cholesky, 1e-9)


@pytest.mark.parametrize("statistics", ["exact", "expanded"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_whole_fit_from_same_start(covariance_type, weighted, statistics):
    X, w, p = problem(covariance_type, weighted)
    result = jaxgmm.fit(
        jax.random.key(0),
        X,
        K,
        covariance_type=covariance_type,
        max_iter=25,
        tol=0.0,
        init=to_jax(p, covariance_type),
        sample_weight=w,
        statistics=statistics,
    )
    ref, ref_bounds, ref_n_iter, ref_converged = reference.fit(
        X, p, covariance_type, max_iter=25, tol=0.0, sample_weight=w
    )
    assert int(result.n_iter) == ref_n_iter == 25
    assert bool(result.converged) is ref_converged is False
    assert_params_close(result.params, ref, RTOL, "fit")
    assert_close(result.lower_bounds, ref_bounds, RTOL, "lower_bounds")


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_fit_stops_where_reference_stops(covariance_type):
    X, _, p = problem(covariance_type, False)
    result = jaxgmm.fit(
        jax.random.key(0),
        X,
        K,
        covariance_type=covariance_type,
        tol=1e-6,
        init=to_jax(p, covariance_type),
    )
    ref, ref_bounds, ref_n_iter, ref_converged = reference.fit(X, p, covariance_type, tol=1e-6)
    assert ref_converged and bool(result.converged)
    assert int(result.n_iter) == ref_n_iter
    assert_close(result.lower_bounds, ref_bounds, RTOL, "lower_bounds")
    assert_params_close(result.params, ref, RTOL, "fit")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_empty_component_keeps_previous_or_takes_data_moments(covariance_type):
    """Policy: an empty component keeps its previous mean and covariance; without previous
    parameters it takes the data's mean and covariance. Never the origin."""
    X, _, p = problem(covariance_type, False)
    X = X + 50.0  # far from the origin, so drifting there would show
    p = p._replace(means=p.means + 50.0)
    log_resp, _ = reference.e_step(X, p, covariance_type)
    log_resp[:, 1] = -np.inf
    log_resp -= np.log(np.exp(log_resp).sum(axis=1, keepdims=True))
    for previous in (None, p):
        new = jaxgmm.m_step(
            jnp.asarray(X),
            jnp.asarray(log_resp),
            covariance_type=covariance_type,
            previous=None if previous is None else to_jax(previous, covariance_type),
        )
        ref = reference.m_step(X, log_resp, covariance_type, previous=previous)
        assert_params_close(new, ref, RTOL, "empty component")
        expected = X.mean(axis=0) if previous is None else p.means[1]
        assert_close(new.means[1], expected, 1e-12, "empty mean")
        assert float(new.weights[1]) < 1e-12
        assert np.all(np.isfinite(np.asarray(new.precisions_cholesky)))


def test_component_that_empties_during_fit_stays_put():
    X, _, p = problem("full", False)
    far = np.array([400.0, -300.0, 200.0])
    p = reference.Params(
        weights=np.array([0.45, 0.45, 0.1]),
        means=np.stack([p.means[0], p.means[1], far]),
        covariances=np.stack([p.covariances[0], p.covariances[1], 0.01 * np.eye(3)]),
    )
    result = jaxgmm.fit(jax.random.key(0), X, K, init=to_jax(p, "full"), max_iter=10, tol=0.0)
    ref, ref_bounds, *_ = reference.fit(X, p, "full", max_iter=10, tol=0.0)
    assert_params_close(result.params, ref, RTOL, "fit with an empty component")
    assert_close(result.params.means[2], far, 1e-12, "empty component's mean")
    assert float(result.params.weights[2]) < 1e-12
