"""Bad input to the core gets an error that names the problem."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxgmm

KEY = jax.random.key(0)


def good():
    return jaxgmm.lesson_data(n_per_cluster=10).astype(np.float32)


def test_non_finite_values_are_counted_and_located():
    X = good()
    X[3, 1] = np.nan
    X[7, 0] = np.inf
    with pytest.raises(ValueError, match=r"2 non-finite values .* row 3, column 1"):
        jaxgmm.fit(KEY, X, 2)


def test_non_finite_in_a_jax_array_too():
    X = good()
    X[5, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 non-finite value .* row 5, column 0"):
        jaxgmm.fit(KEY, jax.device_put(X), 2)


@pytest.mark.parametrize(
    "X, message",
    [
        (np.ones(5, np.float32), r"must be 2-D .* shape \(5,\). Reshape your data"),
        (np.ones((2, 3, 4), np.float32), r"must be 2-D .* 3-D with shape \(2, 3, 4\)"),
        (np.ones((5, 0), np.float32), r"0 feature\(s\) \(shape=\(5, 0\)\)"),
        (np.ones((1, 2), np.float32), "1 sample; at least 2"),
        (np.array([["a", "b"], ["c", "d"]]), "strings"),
        (np.ones((4, 2), np.complex64), "Complex data not supported"),
        (np.ones((4, 2), bool), "boolean"),
        ([[1.0, 2.0], [3.0]], "could not be read as a numeric array"),
    ],
    ids=["1-D", "3-D", "no-features", "one-row", "strings", "complex", "bool", "ragged"],
)
def test_bad_arrays(X, message):
    with pytest.raises(ValueError, match=message):
        jaxgmm.fit(KEY, X, 1)


def test_float64_without_x64_is_an_error_not_a_silent_downcast():
    with pytest.raises(ValueError, match="float64 but JAX's 64-bit mode is off"):
        jaxgmm.fit(KEY, jaxgmm.lesson_data(), 2)


def test_integers_are_converted():
    X = np.round(good() * 10).astype(np.int64)
    result = jaxgmm.fit(KEY, X, 2)
    assert result.params.means.dtype == np.float32


def test_more_components_than_samples_names_both():
    with pytest.raises(ValueError, match=r"n_components=30 .* \(N=20\)"):
        jaxgmm.fit(KEY, good(), 30)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(n_components=0), ValueError, "n_components must be >= 1"),
        (dict(n_components=2.5), TypeError, "n_components must be an integer"),
        (dict(n_components=True), TypeError, "n_components must be an integer"),
        (dict(tol=-1.0), ValueError, "tol must be a finite number >= 0"),
        (dict(reg_covar=float("nan")), ValueError, "reg_covar must be a finite number"),
        (dict(reg_covar="big"), TypeError, "reg_covar must be a number"),
        (dict(n_init=0), ValueError, "n_init must be >= 1"),
        (dict(max_iter=-1), ValueError, "max_iter must be >= 0"),
        (dict(covariance_type="round"), ValueError, "covariance_type must be one of"),
        (dict(init="kmeans+"), ValueError, "init must be one of"),
    ],
)
def test_bad_settings(kwargs, error, message):
    args = dict(n_components=2) | kwargs
    with pytest.raises(error, match=message):
        jaxgmm.fit(KEY, good(), args.pop("n_components"), **args)


@pytest.mark.parametrize(
    "weights, message",
    [
        (np.ones(7), r"shape \(20,\) to match X, got \(7,\)"),
        (-np.ones(20), "20 negative values"),
        (np.zeros(20), "sums to zero"),
        (np.full(20, np.nan), "sample_weight contains 20 non-finite"),
    ],
)
def test_bad_sample_weight(weights, message):
    with pytest.raises(ValueError, match=message):
        jaxgmm.fit(KEY, good(), 2, sample_weight=weights)


def test_bad_init_params():
    init = jaxgmm.params_from_covariances(
        np.array([0.5, 0.5]), np.zeros((2, 3)), np.stack([np.eye(3)] * 2), covariance_type="full"
    )
    with pytest.raises(
        ValueError, match=r"The parameter 'init.means' should have the shape of \(2, 2\)"
    ):
        jaxgmm.fit(KEY, good(), 2, init=init)
    init = jaxgmm.params_from_covariances(
        np.array([0.5, 0.7]), np.zeros((2, 2)), np.stack([np.eye(2)] * 2), covariance_type="full"
    )
    with pytest.raises(ValueError, match="The parameter 'init.weights' should be normalized"):
        jaxgmm.fit(KEY, good(), 2, init=init)


def test_values_whose_squares_overflow_are_refused():
    X = np.random.default_rng(0).normal(size=(40, 2)) * 1e300
    with pytest.raises(ValueError, match=r"X spans .* in column \d: .* overflow float64.*rescale"):
        jaxgmm.GaussianMixture(2).fit(X)
    fine = np.random.default_rng(0).normal(size=(40, 2)) * 1e100  # squares 1e200: no overflow
    jaxgmm.GaussianMixture(2, random_state=0).fit(fine)


@pytest.mark.usefixtures("x64")
def test_each_column_is_judged_alone_for_overflow():
    """Columns far apart from each other but narrow are fine; one wide column is named."""
    from jaxgmm._validation import checked_array

    z = np.random.default_rng(0).normal(size=(40, 2))
    limit = np.sqrt(np.finfo(np.float64).max / 40) / 16  # about 7e152
    checked_array(z + [-limit, limit])  # 2 x limit apart, each column narrow
    with pytest.raises(ValueError, match=r"X spans .* in column 1"):
        checked_array(z * [1.0, limit])
