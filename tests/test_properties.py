"""Properties that hold for every covariance type: monotone bound, valid parameters,
invariances, scan equal to a loop of steps."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import COVARIANCE_TYPES, assert_close, blobs, starting_params
from hypothesis import given, settings
from hypothesis import strategies as st

import jaxgmm
from jaxgmm._covariance import covariance_unit

pytestmark = pytest.mark.usefixtures("x64")

K = 3
SEEDS = [0, 1, 2]


def to_jax(p, covariance_type):
    return jaxgmm.params_from_covariances(*p, covariance_type=covariance_type)


def check_valid(params: jaxgmm.GMMParams, covariance_type: str):
    weights = np.asarray(params.weights)
    assert np.all(weights >= 0)
    assert abs(weights.sum() - 1.0) < 1e-12
    k, d = params.means.shape
    cov = covariance_unit(covariance_type).dense(np.asarray(params.covariances), k, d)
    np.testing.assert_array_equal(cov, np.swapaxes(cov, -1, -2))  # exactly symmetric
    assert np.all(np.linalg.eigvalsh(cov) > 0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_bound_never_decreases_and_parameters_stay_valid(covariance_type, seed):
    X = blobs(seed=seed)
    result = jaxgmm.fit(
        jax.random.key(seed),
        X,
        K,
        covariance_type=covariance_type,
        init="random",
        n_init=2,
        max_iter=60,
        tol=0.0,
    )
    traces = np.asarray(result.restarts.lower_bounds)
    assert traces.shape == (2, 60)
    for trace in traces:
        steps = np.diff(trace)
        assert np.all(steps >= -1e-12 * np.abs(trace[1:])), steps.min()
        assert trace[-1] > trace[0]
    check_valid(result.params, covariance_type)
    log_resp, _ = jaxgmm.e_step(jnp.asarray(X), result.params, covariance_type=covariance_type)
    np.testing.assert_allclose(np.exp(np.asarray(log_resp)).sum(axis=1), 1.0, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_permuting_components_changes_nothing(covariance_type):
    X = blobs()
    p = starting_params(X, K, covariance_type)
    perm = np.array([2, 0, 1])
    permuted = p._replace(
        weights=p.weights[perm],
        means=p.means[perm],
        covariances=p.covariances
        if covariance_unit(covariance_type).shared
        else p.covariances[perm],
    )
    Xj = jnp.asarray(X)
    log_resp, bound = jaxgmm.e_step(Xj, to_jax(p, covariance_type), covariance_type=covariance_type)
    log_resp_p, bound_p = jaxgmm.e_step(
        Xj, to_jax(permuted, covariance_type), covariance_type=covariance_type
    )
    assert_close(log_resp_p, np.asarray(log_resp)[:, perm], 1e-13, "log_resp")
    assert_close(bound_p, bound, 1e-13, "bound")
    fit = jaxgmm.fit(
        jax.random.key(0),
        X,
        K,
        covariance_type=covariance_type,
        init=to_jax(p, covariance_type),
        max_iter=15,
        tol=0.0,
    )
    fit_p = jaxgmm.fit(
        jax.random.key(0),
        X,
        K,
        covariance_type=covariance_type,
        init=to_jax(permuted, covariance_type),
        max_iter=15,
        tol=0.0,
    )
    assert_close(fit_p.params.means, np.asarray(fit.params.means)[perm], 1e-10, "means")
    assert_close(fit_p.lower_bounds, fit.lower_bounds, 1e-12, "trace")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_scan_equals_a_python_loop_of_em_steps(covariance_type):
    X = blobs()
    params = to_jax(starting_params(X, K, covariance_type), covariance_type)
    result = jaxgmm.fit(
        jax.random.key(0), X, K, covariance_type=covariance_type, init=params, max_iter=12, tol=0.0
    )
    bounds = []
    Xj = jnp.asarray(X)
    for _ in range(12):
        params, bound = jaxgmm.em_step(Xj, params, covariance_type=covariance_type)
        bounds.append(float(bound))
    assert_close(result.lower_bounds, bounds, 1e-12, "trace")
    assert_close(result.params.means, params.means, 1e-11, "means")
    assert_close(result.params.covariances, params.covariances, 1e-11, "covariances")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_integer_sample_weights_equal_repeated_rows(covariance_type):
    X = blobs(n_per=40)
    counts = np.random.default_rng(0).integers(0, 4, size=len(X))
    counts[0] = 1  # keep the anchor row of the centring in both
    init = to_jax(starting_params(X, K, covariance_type), covariance_type)
    weighted = jaxgmm.fit(
        jax.random.key(0),
        X,
        K,
        covariance_type=covariance_type,
        init=init,
        sample_weight=counts.astype(float),
        max_iter=20,
        tol=0.0,
    )
    repeated = jaxgmm.fit(
        jax.random.key(0),
        np.repeat(X, counts, axis=0),
        K,
        covariance_type=covariance_type,
        init=init,
        max_iter=20,
        tol=0.0,
    )
    assert_close(weighted.params.means, repeated.params.means, 1e-10, "means")
    assert_close(weighted.params.covariances, repeated.params.covariances, 1e-10, "covs")
    assert_close(weighted.lower_bounds, repeated.lower_bounds, 1e-10, "trace")


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_affine_invariance(covariance_type):
    """fit(a X + b) = the transformed fit(X), with reg_covar scaled by a^2."""
    X = blobs()
    a, b = 7.5, np.array([100.0, -40.0, 3.0])
    base = jaxgmm.fit(jax.random.key(1), X, K, covariance_type=covariance_type)
    moved = jaxgmm.fit(
        jax.random.key(1), a * X + b, K, covariance_type=covariance_type, reg_covar=1e-6 * a**2
    )
    assert_close(moved.params.means, a * np.asarray(base.params.means) + b, 1e-9, "means")
    assert_close(moved.params.covariances, a**2 * np.asarray(base.params.covariances), 1e-9)
    n_features = X.shape[1]
    assert_close(
        moved.lower_bounds, np.asarray(base.lower_bounds) - n_features * np.log(a), 1e-10, "trace"
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
    covariance_type=st.sampled_from(COVARIANCE_TYPES),
)
def test_steps_keep_probabilities_normalised(seed, scale, covariance_type):
    """For arbitrary data and starting points of fixed shapes: responsibilities sum to 1, the new
    weights sum to 1, the new covariances are symmetric positive definite."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 2)) * scale + rng.normal(size=2) * scale
    log_resp = rng.normal(size=(60, K)) * 3
    log_resp -= np.log(np.exp(log_resp).sum(axis=1, keepdims=True))
    params = jaxgmm.m_step(jnp.asarray(X), jnp.asarray(log_resp), covariance_type=covariance_type)
    check_valid(params, covariance_type)
    new_log_resp, bound = jaxgmm.e_step(jnp.asarray(X), params, covariance_type=covariance_type)
    np.testing.assert_allclose(np.exp(np.asarray(new_log_resp)).sum(axis=1), 1.0, rtol=1e-12)
    assert np.isfinite(float(bound))


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_factor_without_lapack_equals_lapack(covariance_type):
    # The sharded programs on several CPU devices factor by loops (jaxgmm._covariance); the
    # precision factor must equal the LAPACK one, and be NaN for a matrix that is not PD.
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 40, 40))
    cov = a @ np.swapaxes(a, -1, -2) / 40 + 1e-3 * np.eye(40)
    cov[3] = np.diag(np.r_[np.ones(39), -1.0])
    if covariance_type == "tied":
        cov = cov[0]
    lapack = jaxgmm._covariance.covariance_unit(covariance_type)
    loops = jaxgmm._covariance.covariance_unit(covariance_type, lapack=False)
    assert loops is not lapack and loops.name == covariance_type
    expected = np.asarray(lapack.factor(jnp.asarray(cov)))
    got = np.asarray(loops.factor(jnp.asarray(cov)))
    finite = np.isfinite(expected).all(axis=(-2, -1))
    assert finite.sum() == (1 if covariance_type == "tied" else 3)
    np.testing.assert_array_equal(np.isfinite(got).all(axis=(-2, -1)), finite)
    assert_close(got[finite], expected[finite], rtol=1e-11)
