"""Largest relative differences of jaxgmm against the NumPy reference and scikit-learn (float64).

    python bench/agreement.py

The same comparisons as tests/test_reference.py and tests/test_sklearn_scipy.py, printed as
figures instead of asserted: whole fits of 25 EM iterations from the same starting point.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from helpers import COVARIANCE_TYPES, blobs, random_weights, relative_error, starting_params  # noqa: E402
from sklearn.mixture import GaussianMixture  # noqa: E402

import jaxgmm  # noqa: E402
from jaxgmm import reference  # noqa: E402


def largest(result, ref_params, ref_bounds):
    return max(
        relative_error(result.params.weights, ref_params.weights),
        relative_error(result.params.means, ref_params.means),
        relative_error(result.params.covariances, ref_params.covariances),
        relative_error(result.lower_bounds, ref_bounds),
    )


def main() -> None:
    X = blobs()
    print(f"{'covariance':<10} {'vs reference':>13} {'weighted':>13} {'vs sklearn':>13}")
    for ct in COVARIANCE_TYPES:
        p = starting_params(X, 3, ct)
        init = jaxgmm.params_from_covariances(*p, covariance_type=ct)
        row = []
        for w in (None, random_weights(len(X))):
            result = jaxgmm.fit(
                jax.random.key(0),
                X,
                3,
                covariance_type=ct,
                init=init,
                max_iter=25,
                tol=0.0,
                sample_weight=w,
            )
            ref, bounds, _, _ = reference.fit(X, p, ct, max_iter=25, tol=0.0, sample_weight=w)
            row.append(largest(result, ref, bounds))
        precisions = np.linalg.inv(p.covariances) if ct in ("full", "tied") else 1 / p.covariances
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = GaussianMixture(
                3,
                covariance_type=ct,
                max_iter=25,
                tol=0.0,
                weights_init=p.weights,
                means_init=p.means,
                precisions_init=precisions,
            ).fit(X)
        result = jaxgmm.fit(
            jax.random.key(0), X, 3, covariance_type=ct, init=init, max_iter=25, tol=0.0
        )
        sk_params = reference.Params(sk.weights_, sk.means_, sk.covariances_)
        row.append(largest(result, sk_params, np.asarray(sk.lower_bounds_)))
        print(f"{ct:<10} " + " ".join(f"{v:13.2e}" for v in row))


if __name__ == "__main__":
    main()
