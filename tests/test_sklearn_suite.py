"""scikit-learn's own tests of ``GaussianMixture``, run against jaxgmm's estimator.

The module is read from the installed scikit-learn at test time (not copied here), its
``GaussianMixture`` replaced by jaxgmm's, and its tests collected as ours. Those that test
scikit-learn's private helpers, or its array API support, do not apply; each that fails for a
reason jaxgmm keeps on purpose is marked, with the reason, as an expected failure (strict: if
it starts passing, the mark must go).
"""

from __future__ import annotations

from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

from helpers import collect_sklearn_tests  # noqa: E402

SOURCE = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_gaussian_mixture.py"

# Tests of scikit-learn's internals (private functions, its array API support), not of the
# estimator's behaviour.
NOT_APPLICABLE = {
    "test_suffstat_sk_full": "scikit-learn's private _estimate_gaussian_covariances_full",
    "test_suffstat_sk_tied": "scikit-learn's private _estimate_gaussian_covariances_tied",
    "test_suffstat_sk_diag": "scikit-learn's private _estimate_gaussian_covariances_diag",
    "test_gaussian_suffstat_sk_spherical": "scikit-learn's private helpers",
    "test_compute_log_det_cholesky": "scikit-learn's private _compute_log_det_cholesky",
    "test_gaussian_mixture_log_probabilities": "scikit-learn's private _estimate_log_prob",
    "test_gaussian_mixture_estimate_log_prob_resp": "scikit-learn's private methods",
    "test_gaussian_mixture_array_api_compliance": "scikit-learn's array API dispatch",
    "test_gaussian_mixture_raises_where_array_api_not_implemented": "array API dispatch",
    "test_gaussian_mixture_all_init_does_not_estimate_gaussian_parameters": (
        "mocks scikit-learn's private _estimate_gaussian_parameters"
    ),
    "test_gaussian_mixture_precisions_init": (
        "builds its start with scikit-learn's private _estimate_gaussian_parameters and "
        "GaussianMixture._set_parameters"
    ),
}

# Differences jaxgmm keeps on purpose, with the reason (strict marks: they must go once they pass).
EXPECTED_FAILURES: dict[str, str] = {
    "test_check_weights": (
        "scikit-learn's expected message swaps them ('max value {min}, min value {max}'); "
        "jaxgmm's names the minimum and the maximum the right way round"
    ),
    "test_regularisation": (
        "jaxgmm's message says what failed in its own words (every restart failed, a "
        "component collapsed) and adds float64 data to the advice"
    ),
    "test_gaussian_mixture_precisions_init_diag": (
        "compares n_iter_ with a start from scikit-learn's KMeans; jaxgmm's k-means start is "
        "its own (k-means++ then Lloyd in JAX), so the iteration counts differ"
    ),
}


collect_sklearn_tests(SOURCE, "GaussianMixture", NOT_APPLICABLE, EXPECTED_FAILURES, globals())
