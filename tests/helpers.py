"""Test helpers: data sets, starting points, tolerance checks."""

from __future__ import annotations

import csv
import types

import numpy as np
from scipy.special import logsumexp

import jaxgmm
from jaxgmm import reference

# Every covariance model: a model added to jaxgmm is tested wherever these are.
COVARIANCE_TYPES = tuple(jaxgmm.COVARIANCE_TYPES)
# The models scikit-learn has too, for the tests that compare with it.
SKLEARN_TYPES = ("full", "tied", "diag", "spherical")
# For tests of the machinery around the M-step (blocks, statistics forms, compiled programs,
# plots): one model of each family of covariance algebra. mclust's other models share their
# family's densities, factors and shapes and differ only in the M-step, which the tests over
# COVARIANCE_TYPES (the reference, properties, saved models, selection) and test_mclust.py cover.
ENGINE_TYPES = SKLEARN_TYPES


def relative_error(actual, desired) -> float:
    """Largest absolute difference over the largest magnitude of ``desired``: a relative error
    that stays meaningful for entries near zero (off-diagonal covariances, centred means)."""
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (actual.shape, desired.shape)
    scale = np.max(np.abs(desired)) if desired.size else 1.0
    return float(np.max(np.abs(actual - desired)) / scale) if desired.size else 0.0


def assert_close(actual, desired, rtol, what=""):
    err = relative_error(actual, desired)
    assert err <= rtol, f"{what}: relative error {err:.3e} > {rtol:.0e}"


def blobs(seed=0, n_per=80, centres=((-3.0, 0.0, 1.0), (2.0, 2.5, 0.0), (1.0, -3.0, -1.0))):
    """Well separated clusters with correlated covariances, float64, shuffled."""
    rng = np.random.default_rng(seed)
    centres = np.asarray(centres, dtype=np.float64)
    n_features = centres.shape[1]
    parts = []
    for centre in centres:
        a = rng.normal(size=(n_features, n_features)) * 0.5
        cov = a @ a.T + 0.3 * np.eye(n_features)
        parts.append(rng.multivariate_normal(centre, cov, size=n_per))
    X = np.concatenate(parts)
    return X[rng.permutation(len(X))]


def starting_params(X, n_components, covariance_type, seed=1) -> reference.Params:
    """A smooth, deliberately imperfect starting point: one reference M-step from random
    responsibilities tilted towards a few data points."""
    rng = np.random.default_rng(seed)
    anchors = X[rng.choice(len(X), n_components, replace=False)]
    d2 = ((X[:, None, :] - anchors[None]) ** 2).sum(-1)
    logits = -0.5 * d2 + 0.3 * rng.normal(size=d2.shape)
    log_resp = logits - logsumexp(logits, axis=1, keepdims=True)
    return reference.m_step(X, log_resp, covariance_type)


def random_weights(n, seed=3):
    return np.random.default_rng(seed).uniform(0.2, 2.0, size=n)


def read_matrix(path) -> np.ndarray:
    """The numbers of a CSV file with a header row, as a float64 array."""
    with open(path) as f:
        rows = list(csv.reader(f))
    return np.array(rows[1:], dtype=np.float64)


def collect_sklearn_tests(source, estimator: str, not_applicable, expected_failures, namespace):
    """scikit-learn's test module ``source`` with its ``from sklearn.mixture import
    <estimator>`` swapped for jaxgmm's, its tests put in ``namespace`` (a test module's
    globals): skipped where ``not_applicable`` names them, strict expected failures where
    ``expected_failures`` does (each with its reason)."""
    import pytest

    text = source.read_text()
    original = f"from sklearn.mixture import {estimator}\n"
    assert original in text, "scikit-learn's test module changed: update this loader"
    text = text.replace(original, f"from jaxgmm import {estimator}\n")
    module = types.ModuleType(f"sklearn_{source.stem}_on_jaxgmm")
    module.__file__ = str(source)
    exec(compile(text, str(source), "exec"), module.__dict__)
    for name, test in vars(module).items():
        if not (name.startswith("test_") and callable(test)):
            continue
        if name in not_applicable:
            test = pytest.mark.skip(reason=f"not applicable: {not_applicable[name]}")(test)
        elif name in expected_failures:
            test = pytest.mark.xfail(strict=True, reason=expected_failures[name])(test)
        namespace[name] = test
    return module
