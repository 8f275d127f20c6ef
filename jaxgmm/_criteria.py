"""Information criteria of a fitted mixture (lower is better), shared by the estimator and
model selection.

With ``log L`` the log-likelihood of the parameters, ``p`` the number of free parameters and
``N`` the number of samples (the sum of the sample weights when given):

* BIC = -2 log L + p log N (scikit-learn's sign; mclust reports -BIC);
* AIC = -2 log L + 2 p;
* ICL = BIC + 2 * entropy of the responsibilities (Biernacki, Celeux and Govaert).
"""

from __future__ import annotations

import math

import numpy as np

from ._covariance import covariance_unit
from ._em import e_step


def n_parameters(covariance_type: str, n_components: int, n_features: int) -> int:
    """Free parameters, as scikit-learn and mclust count them: (K - 1) weights, K D means and
    the covariance parameters."""
    covariances = covariance_unit(covariance_type).n_parameters(n_components, n_features)
    return (n_components - 1) + n_components * n_features + covariances


def entropy(log_resp, sample_weight=None) -> float:
    """The (weighted) sum over samples of the entropy of the responsibilities ``(N, K)``."""
    log_resp = np.asarray(log_resp, dtype=np.float64)
    resp = np.exp(log_resp)
    plogp = np.where(resp > 0, resp * log_resp, 0.0)
    if sample_weight is None:
        return -float(plogp.sum())
    return -float((np.asarray(sample_weight, dtype=np.float64)[:, None] * plogp).sum())


def criteria(X, params, covariance_type: str, sample_weight=None) -> dict[str, float]:
    """``log_likelihood``, ``n_parameters``, ``bic``, ``aic`` and ``icl`` of ``params`` on
    ``X`` (a JAX array in the computation dtype), from one E-step."""
    log_resp, mean_ll = e_step(
        X, params, covariance_type=covariance_type, sample_weight=sample_weight
    )
    n_eff = (
        X.shape[0] if sample_weight is None else float(np.asarray(sample_weight, np.float64).sum())
    )
    return from_sums(
        float(mean_ll) * n_eff,
        entropy(log_resp, sample_weight),
        n_parameters(covariance_type, *params.means.shape),
        n_eff,
    )


def from_sums(log_l: float, entropy: float, p: int, n_samples: float) -> dict[str, float]:
    """The criteria from the log-likelihood, the entropy of the responsibilities (both summed
    over samples), the number of free parameters and of samples."""
    bic = -2.0 * log_l + p * math.log(n_samples)
    return {
        "log_likelihood": log_l,
        "n_parameters": p,
        "bic": bic,
        "aic": -2.0 * log_l + 2.0 * p,
        "icl": bic + 2.0 * entropy,
    }
