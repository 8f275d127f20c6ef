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


def criteria(X, params, covariance_type: str, sample_weight=None) -> dict[str, float]:
    """``log_likelihood``, ``n_parameters``, ``bic``, ``aic`` and ``icl`` of ``params`` on
    ``X`` (a JAX array in the computation dtype), from one E-step."""
    log_resp, mean_ll = e_step(
        X, params, covariance_type=covariance_type, sample_weight=sample_weight
    )
    log_resp = np.asarray(log_resp, dtype=np.float64)
    resp = np.exp(log_resp)
    plogp = np.where(resp > 0, resp * log_resp, 0.0)
    if sample_weight is None:
        n_eff, entropy = X.shape[0], -float(plogp.sum())
    else:
        w = np.asarray(sample_weight, dtype=np.float64)
        n_eff, entropy = float(w.sum()), -float((w[:, None] * plogp).sum())
    p = n_parameters(covariance_type, *params.means.shape)
    log_l = float(mean_ll) * n_eff
    bic = -2.0 * log_l + p * math.log(n_eff)
    return {
        "log_likelihood": log_l,
        "n_parameters": p,
        "bic": bic,
        "aic": -2.0 * log_l + 2.0 * p,
        "icl": bic + 2.0 * entropy,
    }
