"""GaussianMixture: scikit-learn's contract, inputs, precision, and every bad-input case."""

from __future__ import annotations

import pickle
import warnings

import jax
import numpy as np
import pytest
from helpers import SKLEARN_TYPES, assert_close, blobs, starting_params
from sklearn.base import clone
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

import jaxgmm
from jaxgmm import ConvergenceWarning, GaussianMixture, NotFittedError
from jaxgmm.estimator import _constant_columns

LESSON = jaxgmm.lesson_data()


def test_check_estimator():
    """scikit-learn's common checks, all of them (the weighted-equals-repeated check included:
    with one component the k-means start is the weighted mean, whatever the row order)."""
    check_estimator(GaussianMixture(random_state=0))


# --- inputs and precision ---------------------------------------------------------------


def test_float32_stays_float32_and_float64_is_fitted_in_float64():
    x64_before = jax.config.jax_enable_x64
    gm32 = GaussianMixture(2, random_state=0).fit(LESSON.astype(np.float32))
    assert gm32.means_.dtype == np.float32
    gm64 = GaussianMixture(2, random_state=0).fit(LESSON)
    assert gm64.means_.dtype == np.float64
    assert gm64.predict_proba(LESSON).dtype == np.float64
    assert jax.config.jax_enable_x64 == x64_before  # the 64-bit context did not leak
    order32, order64 = np.argsort(gm32.means_[:, 0]), np.argsort(gm64.means_[:, 0])
    assert_close(gm32.means_[order32], gm64.means_[order64], 1e-5, "float32 vs float64 means")


@pytest.mark.parametrize("covariance_type", SKLEARN_TYPES)
def test_matches_sklearn_from_the_same_start_in_float64(covariance_type):
    X = blobs()
    p = starting_params(X, 3, covariance_type)
    precisions = (
        np.linalg.inv(p.covariances) if covariance_type in ("full", "tied") else 1 / p.covariances
    )
    kwargs = dict(
        covariance_type=covariance_type,
        max_iter=15,
        tol=0.0,
        weights_init=p.weights,
        means_init=p.means,
        precisions_init=precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(3, **kwargs).fit(X)
        theirs = SkGaussianMixture(3, **kwargs, random_state=0).fit(X)
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
        "lower_bounds_",
    ):
        assert_close(getattr(ours, name), getattr(theirs, name), 1e-8, name)
    assert_close(ours.score_samples(X), theirs.score_samples(X), 1e-8, "score_samples")
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-10)
    assert ours.aic(X) == pytest.approx(theirs.aic(X), rel=1e-10)


def test_accepts_lists_jax_arrays_and_dataframes():
    pd = pytest.importorskip("pandas")
    base = GaussianMixture(2, random_state=0).fit(LESSON)
    from_list = GaussianMixture(2, random_state=0).fit(LESSON.tolist())
    assert_close(from_list.means_, base.means_, 0.0)
    from_jax = GaussianMixture(2, random_state=0).fit(jax.device_put(LESSON.astype(np.float32)))
    assert from_jax.means_.dtype == np.float32
    frame = pd.DataFrame(LESSON, columns=["x", "y"])
    from_frame = GaussianMixture(2, random_state=0).fit(frame)
    assert list(from_frame.feature_names_in_) == ["x", "y"]
    assert_close(from_frame.means_, base.means_, 0.0)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        from_frame.predict(LESSON)
    with pytest.raises(ValueError, match="feature names should match"):
        from_frame.predict(frame.rename(columns={"y": "z"}))


def test_fit_predict_equals_fit_then_predict_and_restarts_are_inspectable():
    gm = GaussianMixture(3, n_init=4, random_state=1)
    labels = gm.fit_predict(blobs())
    np.testing.assert_array_equal(labels, gm.predict(blobs()))
    assert gm.restarts_.lower_bound.shape == (4,)
    assert gm.restarts_.params.means.shape == (4, 3, 3)
    assert gm.lower_bound_ == pytest.approx(gm.restarts_.lower_bound.max(), rel=1e-12)
    assert len(gm.lower_bounds_) == gm.n_iter_


def test_convergence_warning_when_the_best_restart_did_not_converge():
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        GaussianMixture(2, max_iter=1, random_state=0).fit(LESSON)


def test_warm_start_continues_from_the_fitted_parameters():
    gm = GaussianMixture(
        2, max_iter=2, tol=0.0, warm_start=True, init_params="random", random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm.fit(LESSON)
        first = gm.lower_bounds_.copy()
        gm.fit(LESSON)
    assert gm.lower_bounds_[0] >= first[-1] - 1e-12


def test_sample_is_reproducible_and_shaped():
    gm = GaussianMixture(2, random_state=3).fit(LESSON)
    X1, y1 = gm.sample(500)
    X2, y2 = gm.sample(500)
    assert X1.shape == (500, 2) and y1.shape == (500,)
    np.testing.assert_array_equal(X1, X2)
    assert abs(np.mean(y1 == 0) - gm.weights_[0]) < 0.1


def test_parameter_counts_match_sklearn():
    for covariance_type in SKLEARN_TYPES:
        ours = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(blobs())
        theirs = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(blobs())
        expected = theirs._n_parameters()
        assert jaxgmm.n_parameters(covariance_type, 3, 3) == expected
        X = blobs()
        assert ours.bic(X) == pytest.approx(
            -2 * ours.score(X) * len(X) + expected * np.log(len(X)), rel=1e-12
        )


def test_pipeline_grid_search_clone_and_pickle():
    search = GridSearchCV(
        make_pipeline(StandardScaler(), GaussianMixture(random_state=0)),
        {"gaussianmixture__n_components": [1, 2, 3]},
        cv=3,
    ).fit(LESSON)
    assert search.best_params_["gaussianmixture__n_components"] in (2, 3)
    gm = GaussianMixture(2, random_state=0).fit(LESSON)
    again = pickle.loads(pickle.dumps(gm))
    np.testing.assert_array_equal(again.predict_proba(LESSON), gm.predict_proba(LESSON))
    assert clone(gm).get_params() == gm.get_params()


def test_an_estimator_with_devices_clones_and_pickles():
    # Devices are handles of this process: a clone shares them, a pickle leaves them out (an
    # unpickled model fits on the default devices); neither may fail (JAX devices do not pickle).
    devices = jax.devices()
    gm = GaussianMixture(2, random_state=0, devices=devices)
    assert clone(gm).devices is devices
    gm.fit(LESSON)
    again = pickle.loads(pickle.dumps(gm))
    assert again.devices is None
    np.testing.assert_array_equal(again.predict_proba(LESSON), gm.predict_proba(LESSON))
    mesh = jax.make_mesh((1,), ("rows",))
    assert clone(GaussianMixture(2, devices=mesh)).devices is mesh


# --- bad input: one test per case, each asserting its message ---------------------------


def test_nan_and_inf_are_counted_and_located():
    X = LESSON.copy()
    X[4, 1] = np.inf
    X[9, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 non-finite values \(NaN or inf\).*row 4, column 1"):
        GaussianMixture(2).fit(X)


def test_one_dimensional_x():
    with pytest.raises(ValueError, match="must be 2-D.*Reshape your data"):
        GaussianMixture(2).fit(LESSON[:, 0])


def test_zero_features():
    with pytest.raises(ValueError, match=r"0 feature\(s\)"):
        GaussianMixture(1).fit(np.empty((10, 0)))


def test_fewer_than_two_rows():
    with pytest.raises(ValueError, match="1 sample; at least 2 are needed"):
        GaussianMixture(1).fit(LESSON[:1])


def test_more_components_than_samples_names_both():
    with pytest.raises(ValueError, match=r"n_components=5 .*\(N=4\)"):
        GaussianMixture(5).fit(LESSON[:4])


def test_more_components_than_distinct_points_warns():
    X = np.repeat(LESSON[:3], 10, axis=0)
    with pytest.warns(UserWarning, match="more than the 3 distinct points"):
        GaussianMixture(4, random_state=0).fit(X)


def test_constant_column_warns():
    X = LESSON.copy()
    X[:, 1] = 5.0
    with pytest.warns(UserWarning, match=r"column \[1\] of X is constant"):
        GaussianMixture(2, random_state=0).fit(X)


def test_constant_columns_are_read_whole():
    X = np.zeros((200, 4))
    X[:, 0] = np.arange(200)  # varies at once
    X[150, 1] = 1.0  # constant over the first rows only
    X[:, 2] = 3.0  # constant
    X[:, 3] = np.nan  # NaN equals nothing
    X[5, 3] = 1.0
    assert _constant_columns(X) == [2]


def test_few_samples_per_component_for_full_covariance_warns():
    X = np.random.default_rng(0).normal(size=(40, 12))
    with pytest.warns(UserWarning, match="full covariances will be poorly determined"):
        GaussianMixture(4, random_state=0, reg_covar=1e-3).fit(X)


@pytest.mark.parametrize(
    "params, error, message",
    [
        (dict(n_components=0), ValueError, "n_components must be >= 1"),
        (dict(n_components=1.5), TypeError, "n_components must be an integer"),
        (dict(covariance_type="round"), ValueError, "covariance_type must be one of"),
        (dict(tol=-1), ValueError, "tol must be >= 0"),
        (dict(reg_covar=-1e-3), ValueError, "reg_covar must be >= 0"),
        (dict(max_iter=-2), ValueError, "max_iter must be >= 0"),
        (dict(n_init=0), ValueError, "n_init must be >= 1"),
        (dict(init_params="best"), ValueError, "init_params must be one of"),
        (dict(random_state="seed"), ValueError, "random_state must be None, an int"),
    ],
)
def test_bad_hyper_parameters_are_raised_in_fit_not_init(params, error, message):
    gm = GaussianMixture(**({"n_components": 2} | params))  # no error here
    with pytest.raises(error, match=message):
        gm.fit(LESSON)


@pytest.mark.parametrize(
    "params, message",
    [
        (
            dict(weights_init=[0.5, 0.3, 0.2]),
            r"The parameter 'weights' should have the shape of \(2,\), but got \(3,\)",
        ),
        (
            dict(weights_init=[1.5, -0.5]),
            r"The parameter 'weights' should be in the range \[0, 1\]",
        ),
        (
            dict(weights_init=[0.5, 0.6]),
            r"The parameter 'weights' should be normalized, but got sum\(weights\) = 1.10000",
        ),
        (
            dict(means_init=np.zeros((2, 3))),
            r"The parameter 'means' should have the shape of \(2, 2\)",
        ),
        (
            dict(means_init=[[0, np.nan], [1, 1]]),
            "The parameter 'means' contains non-finite",
        ),
        (
            dict(precisions_init=np.ones((2, 2))),
            r"The parameter 'full precision' should have the shape of \(2, 2, 2\)",
        ),
        (
            dict(precisions_init=np.stack([np.eye(2), [[1, 2], [0, 1]]])),
            r"'full precision' should be symmetric, positive-definite \(component 1\): it "
            "is not symmetric",
        ),
        (
            dict(precisions_init=np.stack([np.eye(2), [[1, 2], [2, 1]]])),
            r"'full precision' should be symmetric, positive-definite \(component 1\): it "
            "is not positive definite",
        ),
        (
            dict(covariance_type="diag", precisions_init=[[1, 1], [1, -1]]),
            "'diag precision' should be positive",
        ),
    ],
)
def test_bad_initial_parameters(params, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(2, **params).fit(LESSON)


def test_wrong_feature_count_at_predict():
    gm = GaussianMixture(2, random_state=0).fit(LESSON)
    with pytest.raises(ValueError, match="X has 3 features, but GaussianMixture is expecting 2"):
        gm.predict(np.ones((4, 3)))


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples", "score", "bic"])
def test_methods_before_fit(method):
    with pytest.raises(NotFittedError, match="not fitted yet"):
        getattr(GaussianMixture(2), method)(LESSON)


@pytest.mark.parametrize(
    "X, error, message",
    [
        (np.array([["1", "2"], ["3", "4"]]), ValueError, "holds strings"),
        (LESSON.astype(np.complex128), ValueError, "Complex data not supported"),
        (LESSON > 0, ValueError, "boolean"),
    ],
    ids=["strings", "complex", "bool"],
)
def test_non_real_data(X, error, message):
    with pytest.raises(error, match=message):
        GaussianMixture(2).fit(X)


def test_identical_columns_warn_for_models_with_correlations():
    X = np.column_stack([LESSON, LESSON[:, 0]])
    with pytest.warns(UserWarning, match=r"columns \[0\] and \[2\] of X are identical"):
        GaussianMixture(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # diagonal covariances have nothing to be singular in
        GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
