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

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import logsumexp

from ._blocks import as_blocks, blockwise_sum, default_block_size
from ._covariance import ANY_MODEL, covariance_unit, has_prior, symmetric
from ._matmul_precision import with_matmul_precision
from ._params import GMMParams
from ._programs import program
from ._shapes import dense_params, is_small, pad_rows, padded_components, padded_rows
from ._statistics import (
    Exact,
    Statistics,
    differences,
    log_gaussian,
    marginal_log_densities,
    noise_term,
    scatter_statistics,
)
from ._validation import to_device


def _tiny(dtype) -> float:
    # scikit-learn adds 10 eps to every component's mass so that none divides by zero.
    return 10.0 * float(jnp.finfo(dtype).eps)


def _weighted_mean(values: Array, sample_weight: Array | None) -> Array:
    if sample_weight is None:
        return jnp.mean(values)
    return jnp.sum(sample_weight * values) / jnp.sum(sample_weight)


def _by_rows(fn, X: Array, n_components: int):
    """``fn`` (of one sample ``(D,)``) over the rows of ``X``, vectorised in blocks of rows, so
    that the ``(K, block, D)`` differences from the means never grow to ``(K, N, D)``."""
    n_samples, n_features = X.shape
    return lax.map(fn, X, batch_size=default_block_size(n_samples, n_components, n_features))


def _row_log_density(x: Array, params: GMMParams, unit) -> Array:
    """``log N(x | mean_k, covariance_k)`` of one sample ``x (D,)``, ``(K,)``."""
    return log_gaussian(differences(x[None, :], params.means), params.precisions_cholesky, unit)[
        :, 0
    ]


def _weighted_log_prob(x: Array, params: GMMParams, unit, missing: int = 0) -> Array:
    """``log w_k + log N(x | mean_k, covariance_k)`` of one sample, ``(K,)``, and with a noise
    component (``jaxgmm._noise``) its ``log(w_0 / V)`` last, ``(K + 1,)``. ``missing``: ``x``
    may hold up to that many NaN, and its density is the marginal over the rest
    (``jaxgmm._missing``)."""
    if missing:
        density = marginal_log_densities(x[None, :], params, unit, missing)[:, 0]
    else:
        density = _row_log_density(x, params, unit)
    weighted = density + jnp.log(params.weights)
    noise = noise_term(params)
    return weighted if noise is None else jnp.append(weighted, noise)


@with_matmul_precision
@partial(jax.jit, static_argnames=("covariance_type",))
def component_log_prob(X: Array, params: GMMParams, *, covariance_type: str) -> Array:
    """Log density of every sample under every component, without the mixture weights.

    Parameters
    ----------
    X : (N, D) array
    params : GMMParams
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).

    Returns
    -------
    (N, K) array: ``log N(x_n | mean_k, covariance_k)``.
    """
    unit = covariance_unit(covariance_type)
    return _by_rows(lambda x: _row_log_density(x, params, unit), X, params.means.shape[0])


@with_matmul_precision
@partial(jax.jit, static_argnames=("covariance_type",))
def log_prob(X: Array, params: GMMParams, *, covariance_type: str) -> Array:
    """Log density of the mixture at each sample.

    Parameters
    ----------
    X, params, covariance_type
        As in :func:`component_log_prob`.

    Returns
    -------
    (N,) array
        ``log sum_k weight_k N(x_n | mean_k, covariance_k)`` (with a noise component, its
        density too).

    Examples
    --------
    Two components at -1 and 1 with unit variance, in float32 (float64 needs JAX's 64-bit
    mode):

    >>> import numpy as np, jaxgmm
    >>> params = jaxgmm.params_from_covariances(
    ...     np.float32([0.5, 0.5]), np.float32([[-1], [1]]), np.ones((2, 1, 1), np.float32),
    ...     covariance_type="full")
    >>> np.asarray(jaxgmm.log_prob(np.float32([[0], [1]]), params, covariance_type="full")).round(4)
    array([-1.4189, -1.4852], dtype=float32)
    """
    unit = covariance_unit(covariance_type)
    return _by_rows(
        lambda x: logsumexp(_weighted_log_prob(x, params, unit)), X, params.means.shape[0]
    )


@with_matmul_precision
@partial(jax.jit, static_argnames=("covariance_type",))
def e_step(
    X: Array, params: GMMParams, *, covariance_type: str, sample_weight: Array | None = None
) -> tuple[Array, Array]:
    """Expectation step.

    Parameters
    ----------
    X : (N, D) array
    params : GMMParams
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).
    sample_weight : (N,) array, optional
        Non-negative weights; the lower bound becomes a weighted mean.

    Returns
    -------
    log_resp : (N, K) array
        Log responsibilities; ``exp`` of each row sums to 1. With a noise component
        (``params.noise``), (N, K + 1): the noise column last.
    lower_bound : () array
        (Weighted) mean over samples of the log-likelihood, computed with ``logsumexp`` before
        normalising.
    """
    log_resp, log_norm = _responsibilities(X, params, covariance_unit(covariance_type))
    return log_resp, _weighted_mean(log_norm, sample_weight)


@program(static_argnames=("unit", "missing"))
def responsibilities(X: Array, params: GMMParams, *, unit, missing: int = 0):
    """``log_resp (N, K)`` (``(N, K + 1)`` with a noise component, its column last) and
    ``log_norm (N,)``, the log density of the mixture at each sample: what predictions, scores
    and criteria are made of, in one pass. ``missing``: the most missing values (NaN) in a row,
    and each row's density is the marginal over its observed ones."""
    return _responsibilities(X, params, unit, missing)


def densities(X, params: GMMParams, unit, missing: int = 0):
    """:func:`responsibilities` on the host, ``log_resp`` trimmed to ``(N, K)`` (``(N, K +
    1)`` with a noise component): NumPy or JAX data ``X`` in its computation dtype, NumPy
    ``params`` of ``unit``. Small data run at padded shapes (``jaxgmm._shapes``) and in the
    dense form of every model, so that a new N, K or model reuses a compiled program."""
    (n, d), k = X.shape, params.means.shape[0]
    small = is_small(n, d)
    if small:
        X, _ = pad_rows(X, None, padded_rows(n))
        params = dense_params(params, padded_components(k), unit)
        unit = ANY_MODEL
    else:
        X = to_device(X, X.dtype)
    log_resp, log_norm = jax.device_get(
        responsibilities(X, params, unit=unit, missing=missing, small=small)
    )
    if params.noise is not None:  # its column is the last, after any padded components
        return np.concatenate([log_resp[:n, :k], log_resp[:n, -1:]], axis=1), log_norm[:n]
    return log_resp[:n, :k], log_norm[:n]


def _responsibilities(X: Array, params: GMMParams, unit, missing: int = 0):
    def row(x):
        weighted = _weighted_log_prob(x, params, unit, missing)
        log_norm = logsumexp(weighted)
        return weighted - log_norm, log_norm

    return _by_rows(row, X, params.means.shape[0])


def _pooled(X: Array, sample_weight, unit, n_components: int, reg_covar, blocks):
    """Mean and covariance of the whole (weighted) data, in the unit's shapes (two passes)."""
    total, sums = blockwise_sum(
        lambda xb, wb, rows: (jnp.sum(wb), wb @ xb), X, sample_weight, blocks
    )
    mean = sums / total

    def scatter(xb, wb, rows, mean):
        centred = xb - mean
        return (centred * wb[:, None]).T @ centred

    data_cov = symmetric(blockwise_sum(scatter, X, sample_weight, blocks, mean) / total)
    cov = unit.add_to_diagonal(unit.pooled(data_cov, n_components), reg_covar)
    return jnp.broadcast_to(mean, (n_components, X.shape[1])), cov


def finalize(
    stats: Statistics,
    shift: Array,
    *,
    unit,
    reg_covar,
    unit_weight,
    fallback_means: Array,
    fallback_cov: Array,
    previous_weights: Array | None,
    prior=None,
    noise=None,
) -> GMMParams:
    """Parameters from statistics: the M-step proper; with a ``prior`` (``jaxgmm._prior``), the
    MAP estimate.

    Components with mass below ``10 eps`` times the largest sample weight (``unit_weight``;
    unlike a mean, padding rows of weight 0 leave it alone) are empty and take the
    fallback mean and covariance; with ``previous_weights``, a component whose previous weight is
    exactly zero keeps weight zero (switched off). ``noise``: the previous parameters' noise
    component (``jaxgmm._noise``), whose weight is re-estimated from ``stats.noise_mass``; the
    weights then divide by the Gaussians' mass and the noise's together."""
    tiny = _tiny(shift.dtype)
    nk = stats.mass + tiny
    delta = stats.first / nk[:, None]
    if prior is None:
        new_means = shift + delta
        cov = unit.from_scatter(stats.scatter, nk, delta)
    else:  # MAP: the prior's pseudo-statistics (``jaxgmm._prior``)
        on = jnp.ones(nk.shape, bool) if previous_weights is None else previous_weights > 0
        offset = shift + delta - prior.mean  # of the unpulled means from the prior's
        cov = unit.map_covariances(stats.scatter, nk, delta, offset, prior, on)
        new_means = prior.mean + offset * (nk / (nk + prior.shrinkage))[:, None]
    cov = unit.add_to_diagonal(cov, reg_covar)
    empty = stats.mass < tiny * unit_weight
    means = jnp.where(empty[:, None], fallback_means, new_means)
    cov = unit.select(empty, fallback_cov, cov)
    if previous_weights is not None:
        nk = jnp.where(previous_weights > 0, nk, 0.0)
    total = jnp.sum(nk)
    if noise is not None:
        total = total + stats.noise_mass
        noise = noise._replace(weight=stats.noise_mass / total)
    return GMMParams(
        weights=nk / total,
        means=means,
        covariances=cov,
        precisions_cholesky=unit.factor(cov),
        noise=noise,
    )


def responsibility_statistics(
    X: Array, weighted_resp, shift: Array, *, unit, sample_weight, blocks, resp_operands=()
) -> Statistics:
    """The statistics around ``shift`` of weighted responsibilities
    ``weighted_resp(xb, wb, rows, *resp_operands)`` ``(K, B)``, in one pass over ``blocks``."""

    def statistics(xb, wb, rows, shift, *ops):
        return scatter_statistics(xb, weighted_resp(xb, wb, rows, *ops), shift, unit)

    return blockwise_sum(statistics, X, sample_weight, blocks, shift, *resp_operands)


def maximize(
    X: Array,
    weighted_resp,
    n_components: int,
    *,
    unit,
    reg_covar,
    sample_weight: Array | None,
    previous: GMMParams | None,
    blocks,
    resp_operands=(),
    prior=None,
    stats: Statistics | None = None,
) -> GMMParams:
    """The M-step, reading the data in blocks: ``weighted_resp(xb, wb, rows, *resp_operands)``
    gives the responsibilities of a block's rows times their sample weights, ``(K, B)``; or,
    with ``stats`` (around ``previous.means``) already summed, from them without a pass. See
    :func:`m_step` for the rest."""
    blocks = as_blocks(blocks)
    unit = blocks.factoring(unit)
    if previous is None:

        def mass_and_sums(xb, wb, rows, *ops):
            wr = weighted_resp(xb, wb, rows, *ops)
            return jnp.sum(wr, axis=1), wr @ xb

        mass, sums = blockwise_sum(mass_and_sums, X, sample_weight, blocks, *resp_operands)
        shift = sums / (mass + _tiny(X.dtype))[:, None]
        fallback_means, fallback_cov = _pooled(
            X, sample_weight, unit, n_components, reg_covar, blocks
        )
    else:
        shift, fallback_means, fallback_cov = previous.means, previous.means, previous.covariances

    if stats is None:
        stats = responsibility_statistics(
            X,
            weighted_resp,
            shift,
            unit=unit,
            sample_weight=sample_weight,
            blocks=blocks,
            resp_operands=resp_operands,
        )
    return finalize(
        stats,
        shift,
        unit=unit,
        reg_covar=reg_covar,
        unit_weight=1.0 if sample_weight is None else jnp.max(sample_weight),
        fallback_means=fallback_means,
        fallback_cov=fallback_cov,
        previous_weights=None if previous is None else previous.weights,
        prior=prior,
    )


@with_matmul_precision
@partial(jax.jit, static_argnames=("covariance_type",))
def m_step(
    X: Array,
    log_resp: Array,
    *,
    covariance_type: str,
    reg_covar=1e-6,
    sample_weight: Array | None = None,
    previous: GMMParams | None = None,
    prior=None,
) -> GMMParams:
    """Maximisation step.

    Parameters
    ----------
    X : (N, D) array
    log_resp : (N, K) array
        Log responsibilities, as returned by :func:`e_step`.
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).
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
    prior : Prior, optional
        A conjugate prior (:func:`jaxgmm.default_prior`, mclust's): the MAP estimate.

    Returns
    -------
    GMMParams with weights summing to 1 and covariances symmetric positive definite (unless the
    data make them singular, in which case ``precisions_cholesky`` holds NaN).
    """
    unit = covariance_unit(covariance_type)
    if prior is not None and not has_prior(unit):
        raise ValueError(f"the {unit.name} model has no prior (see jaxgmm._prior)")
    return maximize(
        X,
        lambda xb, wb, rows, log_resp: (jnp.exp(log_resp[rows]) * wb[:, None]).T,
        log_resp.shape[1],
        resp_operands=(log_resp,),
        unit=unit,
        reg_covar=reg_covar,
        sample_weight=sample_weight,
        previous=previous,
        blocks=X.shape[0],
        prior=prior,
    )


@with_matmul_precision
@partial(jax.jit, static_argnames=("covariance_type",))
def em_step(
    X: Array,
    params: GMMParams,
    *,
    covariance_type: str,
    reg_covar=1e-6,
    sample_weight: Array | None = None,
) -> tuple[GMMParams, Array]:
    """One EM iteration: the E-step and ``m_step(previous=params)``, fused into one pass.

    Parameters
    ----------
    X : (N, D) array
    params : GMMParams
        The current parameters.
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).
    reg_covar : float
        Added to the diagonal of every covariance.
    sample_weight : (N,) array, optional

    Returns
    -------
    params : GMMParams
        The new parameters.
    lower_bound : () array
        The lower bound computed in the E-step from ``params``: it belongs to the parameters
        passed in, as in scikit-learn.

    Examples
    --------
    Ten EM iterations by hand, from :func:`jaxgmm.initialize`'s start (``lax.scan`` or
    ``jit`` of a loop work the same way); the lower bound never decreases:

    >>> import jax, numpy as np, jaxgmm
    >>> X = jaxgmm.lesson_data().astype(np.float32)
    >>> params = jax.tree.map(lambda a: a[0], jaxgmm.initialize(jax.random.key(0), X, 2))
    >>> bounds = []
    >>> for _ in range(10):
    ...     params, lower_bound = jaxgmm.em_step(X, params, covariance_type="full")
    ...     bounds.append(float(lower_bound))
    >>> bool(np.all(np.diff(bounds) >= -1e-6)), np.asarray(params.weights).round(2)
    (True, array([0.5, 0.5], dtype=float32))
    """
    unit = covariance_unit(covariance_type)
    w = jnp.ones(X.shape[0], X.dtype) if sample_weight is None else sample_weight
    stats = Exact.block(X, w, params, unit)
    new = finalize(
        stats,
        params.means,
        unit=unit,
        reg_covar=reg_covar,
        unit_weight=1.0 if sample_weight is None else jnp.max(sample_weight),
        fallback_means=params.means,
        fallback_cov=params.covariances,
        previous_weights=params.weights,
        noise=params.noise,
    )
    return new, stats.log_lik / stats.weight
