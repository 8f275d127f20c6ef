"""Plain NumPy variational Bayes for Gaussian mixtures, in float64: the oracle for a variational
engine (issue 25), with scikit-learn's ``BayesianGaussianMixture`` model and definitions.

The model (Bishop 2006, section 10.2; Blei & Jordan 2006 for the Dirichlet process): weights
with a Dirichlet-distribution prior (``alpha_0`` per component) or a truncated stick-breaking
Dirichlet-process prior (``Beta(1, gamma_0)`` per stick); each component's mean and precision
with a Gaussian-Wishart prior (mean ``m_0``, mean precision ``beta_0``, degrees of freedom
``nu_0``, and the covariance prior ``Psi_0``, the inverse of the Wishart's scale). Written to be
read, as ``jaxgmm.reference``: loops over components, dense ``(D, D)`` matrices everywhere
(``numpy.linalg.slogdet`` and ``solve``), each covariance type's parameters converted at the end.

scikit-learn's conventions, kept so that the two agree to rounding:

* the data statistics of an M-step are scikit-learn's Gaussian estimates (``reg_covar`` on the
  diagonal, masses with ``10 * eps`` added); ``covariances`` are the posterior's scale divided by
  its degrees of freedom (the inverse of the expected precision);
* the expected log density uses ``E[log |Lambda|] = D log 2 + sum_i digamma((nu - i) / 2) +
  log |W|`` for every covariance type, as scikit-learn does;
* the lower bound is scikit-learn's ``_compute_lower_bound``: the entropy of the
  responsibilities, minus the Wishart and weight normalisers and ``D/2 sum_k log beta_k`` (up to a
  constant, as scikit-learn documents), evaluated at the parameters after the M-step with the
  responsibilities of the E-step before it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import betaln, digamma, gammaln

TINY = 10 * np.finfo(np.float64).eps
WEIGHT_PRIORS = ("dirichlet_process", "dirichlet_distribution")


class Prior(NamedTuple):
    weight_type: str  # one of WEIGHT_PRIORS
    weight_concentration: float
    mean_precision: float
    mean: np.ndarray  # (D,)
    degrees_of_freedom: float
    covariance: np.ndarray  # full and tied: (D, D); diag: (D,); spherical: ()


class Posterior(NamedTuple):
    weight_concentration: np.ndarray  # dirichlet_process: (2, K), the sticks' Beta; else (K,)
    mean_precision: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    degrees_of_freedom: np.ndarray  # (K,), or () for tied
    covariances: np.ndarray  # scikit-learn's shape for the covariance type


def default_prior(
    X, covariance_type: str, n_components: int, weight_type: str = "dirichlet_process"
) -> Prior:
    """scikit-learn's defaults: ``1 / K``, 1, the data's mean, D, and the data's covariance
    (unbiased; its diagonal for diag, the mean of that for spherical)."""
    X = np.asarray(X, dtype=np.float64)
    covariance = np.atleast_2d(np.cov(X.T))
    if covariance_type == "diag":
        covariance = np.diag(covariance).copy()
    elif covariance_type == "spherical":
        covariance = np.asarray(np.diag(covariance).mean())
    return Prior(
        weight_type, 1.0 / n_components, 1.0, X.mean(axis=0), float(X.shape[1]), covariance
    )


def _dense_prior(prior: Prior, n_features: int) -> np.ndarray:
    c = np.asarray(prior.covariance, dtype=np.float64)
    if c.ndim == 2:
        return c
    return np.diag(c) if c.ndim == 1 else c * np.eye(n_features)


def _statistics(X, resp, covariance_type: str, reg_covar: float):
    """scikit-learn's Gaussian estimates from responsibilities: masses ``(K,)``, means
    ``(K, D)`` and dense covariances ``(K, D, D)`` (a tied one repeated), ``reg_covar`` added."""
    nk = resp.sum(axis=0) + TINY
    means = resp.T @ X / nk[:, None]
    n_components, n_features = means.shape
    eye = np.eye(n_features)
    scatters = np.stack(
        [(resp[:, k, None] * (X - means[k])).T @ (X - means[k]) for k in range(n_components)]
    )
    if covariance_type == "full":
        covs = [scatters[k] / nk[k] for k in range(n_components)]
    elif covariance_type == "tied":
        covs = [scatters.sum(axis=0) / nk.sum()] * n_components
    elif covariance_type == "diag":
        covs = [np.diag(np.diag(scatters[k])) / nk[k] for k in range(n_components)]
    elif covariance_type == "spherical":
        covs = [np.trace(scatters[k]) / (nk[k] * n_features) * eye for k in range(n_components)]
    else:
        raise ValueError(f"unknown covariance type {covariance_type!r}")
    return nk, means, np.stack([c + reg_covar * eye for c in covs])


def _from_dense(dense: np.ndarray, covariance_type: str) -> np.ndarray:
    """scikit-learn's shapes from dense ``(K, D, D)`` covariances."""
    if covariance_type == "full":
        return dense
    if covariance_type == "tied":
        return dense[0]
    diagonals = np.stack([np.diag(c) for c in dense])
    return diagonals if covariance_type == "diag" else diagonals.mean(axis=1)


def _to_dense(covariances: np.ndarray, covariance_type: str, n_components, n_features):
    if covariance_type == "full":
        return covariances
    if covariance_type == "tied":
        return np.stack([covariances] * n_components)
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covariances])
    return np.stack([c * np.eye(n_features) for c in covariances])


def m_step(X, resp, prior: Prior, covariance_type: str, reg_covar: float = 1e-6) -> Posterior:
    """The variational posterior of the weights, means and precisions given responsibilities
    ``resp (N, K)`` (scikit-learn's ``_m_step``, and its ``_initialize`` from given ones)."""
    X = np.asarray(X, dtype=np.float64)
    nk, xk, sk = _statistics(X, resp, covariance_type, reg_covar)
    n_components, n_features = xk.shape
    if prior.weight_type == "dirichlet_process":
        after = np.concatenate([np.cumsum(nk[::-1])[-2::-1], [0.0]])  # sum of n_j, j > k
        concentration = np.stack([1.0 + nk, prior.weight_concentration + after])
    else:
        concentration = prior.weight_concentration + nk
    beta0, m0, nu0 = prior.mean_precision, prior.mean, prior.degrees_of_freedom
    beta = beta0 + nk
    means = (beta0 * m0 + nk[:, None] * xk) / beta[:, None]
    psi0 = _dense_prior(prior, n_features)
    diff = xk - m0
    if covariance_type == "tied":
        # one Wishart for all components: each contributes 1/K of the prior's pull
        share = nk.sum() / n_components
        nu = nu0 + share
        pull = sum(nk[k] / beta[k] * np.outer(diff[k], diff[k]) for k in range(n_components))
        scale = psi0 + share * sk[0] + beta0 / n_components * pull
        dense = np.stack([scale / nu] * n_components)
        dof = np.asarray(nu)
    else:
        nu = nu0 + nk
        if covariance_type == "full":
            pulls = [np.outer(d, d) for d in diff]
        elif covariance_type == "diag":
            pulls = [np.diag(d * d) for d in diff]
        else:
            pulls = [np.mean(d * d) * np.eye(n_features) for d in diff]
        dense = np.stack(
            [
                (psi0 + nk[k] * (sk[k] + beta0 / beta[k] * pulls[k])) / nu[k]
                for k in range(n_components)
            ]
        )
        dof = nu
    return Posterior(concentration, beta, means, dof, _from_dense(dense, covariance_type))


def _log_lambda(dof, n_features):
    """``E[log |Lambda|] - log |W|`` of a Wishart with ``dof`` degrees of freedom."""
    return n_features * np.log(2.0) + sum(digamma(0.5 * (dof - i)) for i in range(n_features))


def expected_log_weights(post: Posterior, prior: Prior) -> np.ndarray:
    """``E[log w_k]`` under the weights' posterior ``(K,)``."""
    if prior.weight_type == "dirichlet_process":
        a, b = post.weight_concentration
        log_stick, log_rest = digamma(a) - digamma(a + b), digamma(b) - digamma(a + b)
        return log_stick + np.concatenate([[0.0], np.cumsum(log_rest)[:-1]])
    alpha = post.weight_concentration
    return digamma(alpha) - digamma(alpha.sum())


def e_step(X, post: Posterior, prior: Prior, covariance_type: str):
    """Log responsibilities ``(N, K)`` and the mean over samples of their log normaliser."""
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = post.means.shape[0]
    dense = _to_dense(post.covariances, covariance_type, n_components, n_features)
    dof = np.broadcast_to(post.degrees_of_freedom, (n_components,))
    log_weights = expected_log_weights(post, prior)
    weighted = np.empty((n_samples, n_components))
    for k in range(n_components):
        _, logdet = np.linalg.slogdet(dense[k])  # covariances = (nu W)^-1
        d = X - post.means[k]
        maha = np.einsum("nd,nd->n", d, np.linalg.solve(dense[k], d.T).T)
        log_gauss = -0.5 * (n_features * np.log(2 * np.pi) + logdet + maha)
        weighted[:, k] = (
            log_weights[k]
            + log_gauss
            - 0.5 * n_features * np.log(dof[k])
            + 0.5 * (_log_lambda(dof[k], n_features) - n_features / post.mean_precision[k])
        )
    log_norm = np.logaddexp.reduce(weighted, axis=1)
    return weighted - log_norm[:, None], float(log_norm.mean())


def lower_bound(log_resp, post: Posterior, prior: Prior, covariance_type: str) -> float:
    """scikit-learn's ``_compute_lower_bound`` (up to a constant)."""
    n_components, n_features = post.means.shape
    dense = _to_dense(post.covariances, covariance_type, n_components, n_features)
    dof = np.broadcast_to(post.degrees_of_freedom, (n_components,))
    # the log determinant of the precision factor of nu W, less its nu part: 1/2 log |W|
    log_det_factor = np.array(
        [-0.5 * np.linalg.slogdet(c)[1] for c in dense]
    ) - 0.5 * n_features * np.log(dof)
    wishart = -(
        dof * log_det_factor
        + dof * n_features * 0.5 * np.log(2.0)
        + sum(gammaln(0.5 * (dof - i)) for i in range(n_features))
    )
    if prior.weight_type == "dirichlet_process":
        weight_norm = -np.sum(betaln(*post.weight_concentration))
    else:
        alpha = post.weight_concentration
        weight_norm = gammaln(alpha.sum()) - np.sum(gammaln(alpha))
    resp = np.exp(log_resp)
    entropy = -np.sum(np.where(resp > 0, resp * log_resp, 0.0))
    wisharts = n_components * wishart[0] if covariance_type == "tied" else np.sum(wishart)
    return float(
        entropy - wisharts - weight_norm - 0.5 * n_features * np.sum(np.log(post.mean_precision))
    )
