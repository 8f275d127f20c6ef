"""The EM steps: pure, jitted functions of arrays, free to compose with vmap, grad and scan.

Numerics (see GUIDE section 2):

* Densities are computed in log space from scikit-learn's precision Cholesky factor ``U``:
  ``log N(x | mu, S) = -D/2 log(2 pi) + sum(log diag U) - 1/2 ||(x - mu) U||^2``.
* The lower bound is the (weighted) mean over samples of ``logsumexp_k(log w_k + log N_k)``,
  taken before the responsibilities are normalised.
* The M-step never forms raw second moments ``E[x x^T] - mu mu^T``. It accumulates weighted
  scatter around a per-component shift (the previous means inside EM, or the exact new means in a
  first pass when no previous parameters are given), so that data far from the origin keep their
  accuracy. Statistics are plain sums over samples, which later lets them be accumulated over
  blocks or devices.
* Empty components (responsibility mass below a rounding error's worth of one sample) keep their
  previous mean and covariance when ``previous`` is given (always so inside :func:`fit`), and
  otherwise take the mean and covariance of the whole data; they never drift to the origin.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

from ._covariance import covariance_unit, symmetric
from ._params import GMMParams

_LOG_2PI = math.log(2.0 * math.pi)


def _tiny(dtype) -> float:
    # scikit-learn adds 10 eps to every component's mass so that none divides by zero.
    return 10.0 * float(jnp.finfo(dtype).eps)


def _weighted_mean(values: Array, sample_weight: Array | None) -> Array:
    if sample_weight is None:
        return jnp.mean(values)
    return jnp.sum(sample_weight * values) / jnp.sum(sample_weight)


def _log_gaussian(diff: Array, prec_chol: Array, unit) -> Array:
    """Per-component log densities ``(K, N)`` from ``diff = x - mean`` of shape ``(K, N, D)``."""
    n_components, _, n_features = diff.shape
    log_det = jnp.broadcast_to(unit.log_det_factor(prec_chol, n_features), (n_components,))
    maha = unit.squared_mahalanobis(diff, prec_chol)
    return -0.5 * (n_features * _LOG_2PI + maha) + log_det[:, None]


def _diff(X: Array, centres: Array) -> Array:
    return X[None, :, :] - centres[:, None, :]


@partial(jax.jit, static_argnames=("covariance_type",))
def component_log_prob(X: Array, params: GMMParams, *, covariance_type: str) -> Array:
    """Log density of every sample under every component, without the mixture weights.

    Parameters
    ----------
    X : (N, D) array
    params : GMMParams
    covariance_type : {"full", "tied", "diag", "spherical"}

    Returns
    -------
    (N, K) array: ``log N(x_n | mean_k, covariance_k)``.
    """
    unit = covariance_unit(covariance_type)
    return _log_gaussian(_diff(X, params.means), params.precisions_cholesky, unit).T


@partial(jax.jit, static_argnames=("covariance_type",))
def log_prob(X: Array, params: GMMParams, *, covariance_type: str) -> Array:
    """Log density of the mixture at each sample, ``(N,)``."""
    weighted = component_log_prob(X, params, covariance_type=covariance_type)
    return logsumexp(weighted + jnp.log(params.weights), axis=1)


@partial(jax.jit, static_argnames=("covariance_type",))
def e_step(
    X: Array, params: GMMParams, *, covariance_type: str, sample_weight: Array | None = None
) -> tuple[Array, Array]:
    """Expectation step.

    Parameters
    ----------
    X : (N, D) array
    params : GMMParams
    covariance_type : {"full", "tied", "diag", "spherical"}
    sample_weight : (N,) array, optional
        Non-negative weights; the lower bound becomes a weighted mean.

    Returns
    -------
    log_resp : (N, K) array
        Log responsibilities; ``exp`` of each row sums to 1.
    lower_bound : () array
        (Weighted) mean over samples of the log-likelihood, computed with ``logsumexp`` before
        normalising.
    """
    weighted = component_log_prob(X, params, covariance_type=covariance_type)
    weighted = weighted + jnp.log(params.weights)
    log_norm = logsumexp(weighted, axis=1)
    return weighted - log_norm[:, None], _weighted_mean(log_norm, sample_weight)


def _pooled(X: Array, sample_weight: Array | None, unit, n_components: int, reg_covar):
    """Mean and covariance of the whole (weighted) data, in the unit's shapes."""
    w = jnp.ones(X.shape[0], X.dtype) if sample_weight is None else sample_weight
    mean = (w @ X) / jnp.sum(w)
    centred = X - mean
    data_cov = symmetric((centred * w[:, None]).T @ centred / jnp.sum(w))
    cov = unit.add_to_diagonal(unit.pooled(data_cov, n_components), reg_covar)
    return jnp.broadcast_to(mean, (n_components, X.shape[1])), cov


def maximize(
    X: Array,
    resp: Array,
    *,
    covariance_type: str,
    reg_covar,
    sample_weight: Array | None,
    previous: GMMParams | None,
) -> GMMParams:
    """The M-step from responsibilities ``resp (N, K)``; see :func:`m_step`."""
    unit = covariance_unit(covariance_type)
    n_components = resp.shape[1]
    tiny = _tiny(X.dtype)
    wr = (resp if sample_weight is None else resp * sample_weight[:, None]).T
    mass = jnp.sum(wr, axis=1)
    if previous is None:
        shift = (wr @ X) / (mass + tiny)[:, None]
        fallback_means, fallback_cov = _pooled(X, sample_weight, unit, n_components, reg_covar)
    else:
        shift, fallback_means, fallback_cov = previous.means, previous.means, previous.covariances

    diff = _diff(X, shift)
    nk = mass + tiny
    delta = jnp.einsum("kn,knd->kd", wr, diff) / nk[:, None]
    cov = unit.add_to_diagonal(unit.from_scatter(unit.scatter(diff, wr), nk, delta), reg_covar)

    mean_weight = 1.0 if sample_weight is None else jnp.mean(sample_weight)
    empty = mass < tiny * mean_weight
    means = jnp.where(empty[:, None], fallback_means, shift + delta)
    cov = unit.select(empty, fallback_cov, cov)
    if previous is not None:  # a switched-off component (weight exactly 0) stays off
        nk = jnp.where(previous.weights > 0, nk, 0.0)
    return GMMParams(
        weights=nk / jnp.sum(nk),
        means=means,
        covariances=cov,
        precisions_cholesky=unit.factor(cov),
    )


@partial(jax.jit, static_argnames=("covariance_type",))
def m_step(
    X: Array,
    log_resp: Array,
    *,
    covariance_type: str,
    reg_covar=1e-6,
    sample_weight: Array | None = None,
    previous: GMMParams | None = None,
) -> GMMParams:
    """Maximisation step.

    Parameters
    ----------
    X : (N, D) array
    log_resp : (N, K) array
        Log responsibilities, as returned by :func:`e_step`.
    covariance_type : {"full", "tied", "diag", "spherical"}
    reg_covar : float
        Added to the diagonal of every covariance (scikit-learn's convention).
    sample_weight : (N,) array, optional
    previous : GMMParams, optional
        The parameters that produced ``log_resp``. When given, its means are the shift around
        which the scatter is accumulated (one pass over the data), an empty component keeps
        its previous mean and covariance, and a component whose previous weight is exactly zero
        keeps weight zero (it is switched off: this is how a grid of K is padded to one shape).
        Without it the means are computed first (two passes) and an empty component takes the
        mean and covariance of the whole data.

    Returns
    -------
    GMMParams with weights summing to 1 and covariances symmetric positive definite (unless the
    data make them singular, in which case ``precisions_cholesky`` holds NaN).
    """
    return maximize(
        X,
        jnp.exp(log_resp),
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        sample_weight=sample_weight,
        previous=previous,
    )


@partial(jax.jit, static_argnames=("covariance_type",))
def em_step(
    X: Array,
    params: GMMParams,
    *,
    covariance_type: str,
    reg_covar=1e-6,
    sample_weight: Array | None = None,
) -> tuple[GMMParams, Array]:
    """One EM iteration: ``e_step`` then ``m_step(previous=params)``.

    Returns the new parameters and the lower bound computed in the E-step from ``params`` (so the
    lower bound belongs to the parameters passed in, as in scikit-learn).
    """
    log_resp, lower_bound = e_step(
        X, params, covariance_type=covariance_type, sample_weight=sample_weight
    )
    new = m_step(
        X,
        log_resp,
        covariance_type=covariance_type,
        reg_covar=reg_covar,
        sample_weight=sample_weight,
        previous=params,
    )
    return new, lower_bound
