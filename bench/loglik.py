"""One judge for every implementation: the mean log-likelihood of fitted parameters, in float64.

Each implementation reports its own lower bound, but they compute it differently (and sklearn,
gmmx and jaxgmm all report the bound of the parameters *before* their last M-step). Evaluating
every final set of parameters with the same float64 code on the same float64 data makes the
numbers comparable.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp

_BLOCK = 1_000_000  # rows per block: bounds the (block, K) temporaries for large N


def full_covariances(covariances: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    """``(K, D, D)`` covariances from any of the four scikit-learn shapes."""
    c = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return c
    if covariance_type == "tied":
        return np.broadcast_to(c, (k, d, d))
    if covariance_type == "diag":
        return np.einsum("kd,de->kde", c, np.eye(d))
    if covariance_type == "spherical":
        return c[:, None, None] * np.eye(d)
    raise ValueError(f"unknown covariance type {covariance_type!r}")


def mean_log_likelihood(X: np.ndarray, weights, means, covariances, covariance_type: str) -> float:
    """Mean over rows of ``log sum_k w_k N(x | mu_k, S_k)``, float64, through Cholesky factors."""
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    k, d = means.shape
    chol = np.linalg.cholesky(full_covariances(covariances, covariance_type, k, d))
    log_det = np.sum(np.log(np.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
    log_w = np.log(np.asarray(weights, dtype=np.float64))
    total = 0.0
    for start in range(0, len(X), _BLOCK):
        block = X[start : start + _BLOCK]
        log_p = np.empty((len(block), k))
        for j in range(k):
            z = solve_triangular(chol[j], (block - means[j]).T, lower=True)
            log_p[:, j] = log_w[j] - log_det[j] - 0.5 * (d * math.log(2 * math.pi) + (z * z).sum(0))
        total += float(logsumexp(log_p, axis=1).sum())
    return total / len(X)


def n_parameters(covariance_type: str, k: int, d: int) -> int:
    """Free parameters of a mixture: K-1 weights, K*D means and the covariances."""
    cov = {"full": k * d * (d + 1) // 2, "tied": d * (d + 1) // 2, "diag": k * d, "spherical": k}
    return k - 1 + k * d + cov[covariance_type]


def bic(mean_ll: float, n: int, covariance_type: str, k: int, d: int) -> float:
    return -2.0 * mean_ll * n + n_parameters(covariance_type, k, d) * math.log(n)
