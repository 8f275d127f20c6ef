"""scikit-learn's own tests of ``BayesianGaussianMixture``, run against jaxgmm's estimator (read
from the installed scikit-learn, its import swapped; see ``test_sklearn_suite``)."""

from __future__ import annotations

from pathlib import Path

import pytest

sklearn = pytest.importorskip("sklearn")

from helpers import collect_sklearn_tests  # noqa: E402

SOURCE = Path(sklearn.__file__).parent / "mixture" / "tests" / "test_bayesian_mixture.py"

NOT_APPLICABLE = {
    "test_log_dirichlet_norm": "scikit-learn's private _log_dirichlet_norm",
    "test_log_wishart_norm": "scikit-learn's private _log_wishart_norm",
    "test_compare_covar_type": (
        "calls scikit-learn's private _check_parameters and _initialize_parameters"
    ),
}

EXPECTED_FAILURES: dict[str, str] = {}

collect_sklearn_tests(
    SOURCE, "BayesianGaussianMixture", NOT_APPLICABLE, EXPECTED_FAILURES, globals()
)
