"""Information criteria of a fitted mixture (lower is better), shared by the estimator and
model selection.

With ``log L`` the log-likelihood of the parameters, ``p`` the number of free parameters and
``N`` the number of samples (the sum of the sample weights when given):

* BIC = -2 log L + p log N (scikit-learn's sign; mclust reports -BIC);
* AIC = -2 log L + 2 p;
* ICL = BIC - 2 sum_n log max_k r_nk, as mclust computes it (Biernacki, Celeux and Govaert
  2000): the log-likelihood completed with the hard labels. mclust reports -ICL;
* ICL (soft) = BIC + 2 * entropy of the responsibilities, the variant jaxgmm reported as "icl"
  before it followed mclust, kept as ``icl_soft``. The two agree when every sample's largest
  responsibility is near 1.
"""

from __future__ import annotations

import math

import numpy as np

from ._covariance import covariance_unit
from ._noise import NOISE_PARAMETERS


def n_parameters(
    covariance_type: str, n_components: int, n_features: int, noise: bool = False
) -> int:
    """Free parameters, as scikit-learn and mclust count them: (K - 1) weights, K D means and
    the covariance parameters, and with a noise component mclust's 2 more (``jaxgmm._noise``).

    Parameters
    ----------
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).
    n_components : int
    n_features : int
    noise : bool

    Returns
    -------
    int

    Examples
    --------
    >>> import jaxgmm
    >>> jaxgmm.n_parameters("full", 3, 2), jaxgmm.n_parameters("EEE", 3, 2)
    (17, 11)
    """
    covariances = covariance_unit(covariance_type).n_parameters(n_components, n_features)
    extra = NOISE_PARAMETERS if noise else 0
    return (n_components - 1) + n_components * n_features + covariances + extra


def entropy(log_resp, sample_weight=None) -> float:
    """The (weighted) sum over samples of the entropy of the responsibilities ``(N, K)``."""
    log_resp = np.asarray(log_resp, dtype=np.float64)
    resp = np.exp(log_resp)
    plogp = np.where(resp > 0, resp * log_resp, 0.0)
    if sample_weight is None:
        return -float(plogp.sum())
    return -float((np.asarray(sample_weight, dtype=np.float64)[:, None] * plogp).sum())


def hard_label_cost(log_resp, sample_weight=None) -> float:
    """``-sum_n w_n max_k log r_nk`` over responsibilities ``(N, K)``: what completing the
    likelihood with the most probable labels costs (mclust's ICL term, in jaxgmm's sign)."""
    best = np.max(np.asarray(log_resp, dtype=np.float64), axis=1)
    if sample_weight is None:
        return -float(best.sum())
    return -float((np.asarray(sample_weight, dtype=np.float64) * best).sum())


def from_sums(
    log_l: float, entropy: float, hard_cost: float, p: int, n_samples: float
) -> dict[str, float]:
    """The criteria from the log-likelihood, the entropy of the responsibilities and
    :func:`hard_label_cost` (all summed over samples), the number of free parameters and of
    samples."""
    bic = -2.0 * log_l + p * math.log(n_samples)
    return {
        "log_likelihood": log_l,
        "n_parameters": p,
        "bic": bic,
        "aic": -2.0 * log_l + 2.0 * p,
        "icl": bic + 2.0 * hard_cost,
        "icl_soft": bic + 2.0 * entropy,
    }
