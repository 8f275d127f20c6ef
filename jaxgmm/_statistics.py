"""How one pass over the data computes an iteration's statistics: the forms, found through
``STATISTICS_FORMS``, and the policy that picks one (``statistics="auto"``).

A form turns a block of rows into :class:`Statistics` of every component (an E-step and the
sums of the M-step in one pass), and the sum of the blocks' statistics into statistics around
the shift (the previous means) that the M-step reads:

* ``exact``: the same ``x - mean`` serves the densities (whitened by the precision factor) and
  the scatter, exact whatever the geometry.
* ``expanded``: the exponential-family form, two matrix products with the features
  ``(x, q(x))`` (see ``jaxgmm._covariance``); faster for small D, but it sums raw moments, which
  are centred once per pass, so a component many of its standard deviations away from the
  data's centre loses digits.
* ``missing`` (``jaxgmm._missing``): for data with missing values, each row's marginal density
  and the expected complete-data statistics.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

from ._covariance._linalg import cholesky_by_columns, lower_inverse_by_rows
from ._shapes import is_small

LOG_2PI = math.log(2.0 * math.pi)
_JOIN_FEATURES = 32


class Statistics(NamedTuple):
    """Weighted sufficient statistics of one mixture around a per-component ``shift``: plain
    sums over samples, so that blocks (or devices) add up.

    ``mass`` (K,) is sum w r; ``first`` (K, D) is sum w r (x - shift); ``scatter`` (the
    covariance model's shape) is sum w r (x - shift)(x - shift)^T; ``log_lik`` () is
    sum w logsumexp_k(log w_k + log N_k), zero when the statistics come from given
    responsibilities; ``weight`` () is sum w. ``noise_mass`` () is the noise component's sum w r
    (``jaxgmm._noise``), None for a mixture without one.
    """

    mass: Array
    first: Array
    scatter: Array
    log_lik: Array
    weight: Array
    noise_mass: Array | None = None


def noise_term(params) -> Array | None:
    """``log(w_0 / V)``, the noise component's weighted log density (the same at every point),
    or None for a mixture without one."""
    if params.noise is None:
        return None
    return jnp.log(params.noise.weight) + params.noise.log_density


def mixture_log_norm(weighted: Array, params, axis: int) -> Array:
    """The log density of the mixture at each sample from ``weighted`` (``log w_k + log N_k``,
    components along ``axis``), the noise component's term included when there is one."""
    log_norm = logsumexp(weighted, axis=axis)
    noise = noise_term(params)
    return log_norm if noise is None else jnp.logaddexp(log_norm, noise)


def noise_mass(wb: Array, log_norm: Array, params) -> Array | None:
    """The noise component's sum w r over a block (None without one)."""
    noise = noise_term(params)
    return None if noise is None else jnp.sum(wb * jnp.exp(noise - log_norm))


def differences(X: Array, centres: Array) -> Array:
    """``(K, N, D)``: every sample minus every centre."""
    return X[None, :, :] - centres[:, None, :]


def log_gaussian(diff: Array, prec_chol: Array, unit) -> Array:
    """Per-component log densities ``(K, N)`` from ``diff = x - mean`` of shape ``(K, N, D)``."""
    n_components, _, n_features = diff.shape
    log_det = jnp.broadcast_to(unit.log_det_factor(prec_chol, n_features), (n_components,))
    maha = unit.squared_mahalanobis(diff, prec_chol)
    return -0.5 * (n_features * LOG_2PI + maha) + log_det[:, None]


def scatter_statistics(X: Array, wr: Array, shift: Array, unit) -> Statistics:
    """Statistics of data ``X (N, D)`` under weighted responsibilities ``wr (K, N)``."""
    diff = differences(X, shift)
    return Statistics(
        mass=jnp.sum(wr, axis=1),
        first=jnp.einsum("kn,knd->kd", wr, diff),
        scatter=unit.scatter(diff, wr),
        log_lik=jnp.zeros((), X.dtype),
        weight=jnp.zeros((), X.dtype),
    )


class Exact:
    """Densities and scatter from ``x - mean``, per component."""

    name = "exact"

    @staticmethod
    def usable(unit, n_features: int) -> bool:
        return True

    @staticmethod
    def row_width(unit, n_features: int) -> int:
        """Width of a row's features (0: this form holds ``K x D`` differences per row)."""
        return 0

    @staticmethod
    def block(xb: Array, wb: Array, params, unit) -> Statistics:
        """E-step and statistics of one block ``xb (B, D)`` with weights ``wb (B,)`` (zero for
        padding rows), around the current means, in one pass."""
        diff = differences(xb, params.means)
        weighted = (
            log_gaussian(diff, params.precisions_cholesky, unit) + jnp.log(params.weights)[:, None]
        )
        log_norm = mixture_log_norm(weighted, params, axis=0)
        wr = jnp.exp(weighted - log_norm[None, :]) * wb[None, :]
        return Statistics(
            mass=jnp.sum(wr, axis=1),
            first=jnp.einsum("kn,knd->kd", wr, diff),
            scatter=unit.scatter(diff, wr),
            log_lik=jnp.sum(wb * log_norm),
            weight=jnp.sum(wb),
            noise_mass=noise_mass(wb, log_norm, params),
        )

    @staticmethod
    def finish(stats: Statistics, shift: Array, unit) -> Statistics:
        return stats


class Expanded:
    """Densities and moments as matrix products of the features ``(x, q(x))``."""

    name = "expanded"

    @staticmethod
    def usable(unit, n_features: int) -> bool:
        limit = unit.expanded_max_features
        return limit is None or n_features <= limit

    @staticmethod
    def row_width(unit, n_features: int) -> int:
        return n_features + unit.n_quadratic_features(n_features)

    @staticmethod
    def block(xb: Array, wb: Array, params, unit) -> Statistics:
        """*Raw* moments (``first`` is sum w r x, ``scatter`` is sum w r q(x)): they add up over
        blocks like the others, and :meth:`finish` turns their total into statistics around
        the shift once per pass."""
        n_components, n_features = params.means.shape
        quadratic = unit.quadratic_features(xb)
        w_quadratic, w_linear, constant = unit.natural(params)
        log_det = jnp.broadcast_to(
            unit.log_det_factor(params.precisions_cholesky, n_features), (n_components,)
        )
        offset = constant + log_det + jnp.log(params.weights) - 0.5 * n_features * LOG_2PI
        # Many quadratic features: one matrix product per step on (x, q(x)) (2.4x faster for
        # D=16, full); few: two products, which spare the copy that joining them costs.
        joined = quadratic.shape[1] >= _JOIN_FEATURES
        if joined:
            features = jnp.concatenate([xb, quadratic], axis=1)
            weighted = features @ jnp.concatenate([w_linear, w_quadratic], axis=1).T + offset
        else:
            weighted = quadratic @ w_quadratic.T + xb @ w_linear.T + offset  # (B, K)
        noise = noise_term(params)
        top = jnp.max(weighted, axis=1, keepdims=True)
        if noise is not None:
            top = jnp.maximum(top, noise)
        e = jnp.exp(weighted - top)
        total = jnp.sum(e, axis=1, keepdims=True)
        if noise is not None:
            total = total + jnp.exp(noise - top)
        log_norm = top[:, 0] + jnp.log(total[:, 0])
        wr = e * (wb[:, None] / total)  # (B, K)
        if joined:
            moments = wr.T @ features
            first, scatter = moments[:, :n_features], moments[:, n_features:]
        else:
            first, scatter = wr.T @ xb, wr.T @ quadratic
        return Statistics(
            mass=jnp.sum(wr, axis=0),
            first=first,
            scatter=scatter,
            log_lik=jnp.sum(wb * log_norm),
            weight=jnp.sum(wb),
            noise_mass=noise_mass(wb, log_norm, params),
        )

    @staticmethod
    def finish(raw: Statistics, shift: Array, unit) -> Statistics:
        """Statistics around ``shift`` from the raw moments summed over blocks."""
        return raw._replace(
            first=raw.first - raw.mass[:, None] * shift,
            scatter=unit.scatter_from_moments(raw.scatter, raw.first, raw.mass, shift),
        )


# -- data with missing values (NaN): see ``jaxgmm._missing`` for the method --


# The factorisations are the loops of ``_covariance._linalg``, not LAPACK: batched over every row
# and component of a block, jaxlib's CPU kernels (potrf, trsm) stalled a 9,000-row fit on two
# cores, as they do in sharded programs; the loops are D plain steps over the whole batch.


def _masked_inverse_factor(observed: Array, cov: Array) -> tuple[Array, Array]:
    """The Cholesky factor ``L`` of ``P S P + (I - P)`` for one row's observed flags, and its
    inverse."""
    o = observed.astype(cov.dtype)
    factor = cholesky_by_columns(cov * o[:, None] * o[None, :] + jnp.diag(1.0 - o))
    return factor, lower_inverse_by_rows(factor)


def _log_density(x: Array, observed: Array, mean: Array, cov: Array):
    """One row (NaN-free, its missing entries anything), one component: the log marginal
    density of the observed coordinates, and the inverse factor and whitened difference it
    used."""
    factor, inverse = _masked_inverse_factor(observed, cov)
    z = inverse @ jnp.where(observed, x - mean, 0.0)
    n_observed = jnp.sum(observed.astype(cov.dtype))
    log_det = 2.0 * jnp.sum(jnp.log(jnp.diagonal(factor)))
    return -0.5 * (n_observed * LOG_2PI + log_det + jnp.sum(jnp.square(z))), inverse, z


def conditional_moments(x: Array, observed: Array, mean: Array, cov: Array):
    """One row, one component: the log marginal density, the row completed with the
    conditional means of its missing coordinates, and their conditional covariance (zero
    outside the missing block)."""
    log_density, inverse, z = _log_density(x, observed, mean, cov)
    o = observed.astype(cov.dtype)
    # S~^-1 (x - mu) is S_oo^-1 (x_o - mu_o) on the observed block and zero on the missing one
    completed = jnp.where(observed, x, mean + cov @ (inverse.T @ z))
    # S_mm - S_mo S_oo^-1 S_om, as S - (L^-1 P S)^T (L^-1 P S) on the missing block
    half = inverse @ (cov * o[:, None])
    missing = 1.0 - o
    conditional = (cov - half.T @ half) * missing[:, None] * missing[None, :]
    return log_density, completed, conditional


def _per_row_and_component(fn, x, observed, means, covs):
    """``fn(x_row, observed_row, mean, cov)`` over components (leading axis) and rows."""
    over_rows = jax.vmap(fn, in_axes=(0, 0, None, None))
    return jax.vmap(over_rows, in_axes=(None, None, 0, 0))(x, observed, means, covs)


def split(xb: Array) -> tuple[Array, Array]:
    """A block's observed flags and its values with the missing ones set to 0."""
    observed = ~jnp.isnan(xb)
    return jnp.where(observed, xb, 0.0), observed


def diagonal(unit) -> bool:
    """Whether the unit stores variances (diagonal covariances), not matrices."""
    return len(unit.shape(1, 2)) <= 2 and not unit.shared


def missing_moments(xb: Array, params, unit):
    """Every row of a block (NaN for its missing values) under every component: the log
    marginal density of its observed values ``(K, B)``, the row completed with the conditional
    means of the missing ones ``(K, B, D)``, and their conditional covariance (zero outside the
    missing block): ``(K, B, D, D)``, or for a diagonal model its diagonal ``(K, B, D)``, where
    the coordinates are independent and all of this costs D per row, not D^3."""
    x, observed = split(xb)
    means = params.means[:, None, :]
    if diagonal(unit):
        n_components, n_features = params.means.shape
        variances = jnp.broadcast_to(
            params.covariances.reshape(n_components, -1), (n_components, n_features)
        )[:, None, :]
        diff = jnp.where(observed, x - means, 0.0)
        terms = jnp.where(
            observed, LOG_2PI + jnp.log(variances) + jnp.square(diff) / variances, 0.0
        )
        conditional = jnp.where(observed, 0.0, variances)
        return -0.5 * jnp.sum(terms, axis=-1), means + diff, conditional
    covs = unit.matrices(params.covariances, *params.means.shape)
    return _per_row_and_component(conditional_moments, x, observed, params.means, covs)


def marginal_log_densities(xb: Array, params, unit) -> Array:
    """``(K, B)``: each row's log marginal density over its observed coordinates under every
    component (``xb`` with NaN for the missing values)."""
    if diagonal(unit):
        return missing_moments(xb, params, unit)[0]
    covs = unit.matrices(params.covariances, *params.means.shape)
    x, observed = split(xb)

    def one(x, o, mean, cov):
        return _log_density(x, o, mean, cov)[0]

    return _per_row_and_component(one, x, observed, params.means, covs)


class Missing:
    """The statistics form of data with missing values: marginal densities, and the expected
    complete-data statistics (the conditional covariance added to the scatter)."""

    name = "missing"

    @staticmethod
    def usable(unit, n_features: int) -> bool:
        return True

    @staticmethod
    def row_width(unit, n_features: int) -> int:
        return 0

    @staticmethod
    def block(xb: Array, wb: Array, params, unit) -> Statistics:
        log_density, completed, conditional = missing_moments(xb, params, unit)
        weighted = log_density + jnp.log(params.weights)[:, None]
        log_norm = mixture_log_norm(weighted, params, axis=0)
        wr = jnp.exp(weighted - log_norm[None, :]) * wb[None, :]
        diff = completed - params.means[:, None, :]
        if diagonal(unit):  # the variances' scatter, and the conditional variances
            scatter = unit.scatter(diff, wr) + jnp.einsum("kn,knd->kd", wr, conditional)
        else:
            scatter = jnp.einsum("kn,kni,knj->kij", wr, diff, diff)
            scatter = unit.scatter_of_dense(scatter + jnp.einsum("kn,knij->kij", wr, conditional))
        return Statistics(
            mass=jnp.sum(wr, axis=1),
            first=jnp.einsum("kn,knd->kd", wr, diff),
            scatter=scatter,
            log_lik=jnp.sum(wb * log_norm),
            weight=jnp.sum(wb),
            noise_mass=noise_mass(wb, log_norm, params),
        )

    @staticmethod
    def finish(stats: Statistics, shift: Array, unit) -> Statistics:
        return stats


STATISTICS_FORMS = {form.name: form for form in (Exact, Expanded, Missing)}
# what users may ask for; "missing" is taken, and only taken, for data with missing values
STATISTICS = ("auto", Exact.name, Expanded.name)


# -- the "auto" policy --
#
# The expanded form only while the estimate eps * z^2 of its relative error stays below
# EXPANDED_RTOL. z is the largest standardised coordinate of a mean, |mean_j - centre_j| / std_j
# over components and features: a variance from raw moments, E[x_j^2] - mean_j^2, loses z_j^2 of
# float's relative precision. Measured in float32 against float64 by bench/expanded_error.py
# (192 mixtures: D = 2 to 16, axis-aligned for all four types, rotated with condition numbers 10
# and 100 for full and tied): where eps * z^2 > 3e-5 the error of the parameters was 2-93% of it;
# where eps * z^2 <= 1e-4, which "auto" accepts, it was at most 5.5e-5 (the exact form: up to
# 8.5e-6). The Mahalanobis distance of the means, the estimate used before, overstates the error
# up to D times.
EXPANDED_RTOL = 1e-4


def standardized_means(params, unit) -> Array:
    """Largest squared standardised coordinate z^2 of an active component's mean (the data
    being centred), over restarts (leading axis of ``params``), components and features."""
    variances = jax.vmap(unit.feature_variances)(params.covariances)
    if variances.ndim == 2:  # one covariance per restart, shared by its components
        variances = variances[:, None, :]
    z2 = jnp.square(params.means) / variances
    return jnp.max(jnp.where(params.weights[..., None] > 0, z2, 0.0))


def choose_form(statistics: str, z2, unit, *, rows: int, n_features: int, traced: bool):
    """The form an iteration uses: the one named, or for "auto" the expanded form while it is
    usable and its predicted error, from ``z2`` (:func:`standardized_means` of the current
    parameters), is below ``EXPANDED_RTOL``; the exact one for small data (``rows`` per device,
    where a pass costs less than the check) and under JAX transformations (where the estimate
    cannot be looked at)."""
    if statistics != "auto":
        return STATISTICS_FORMS[statistics]
    if traced or is_small(rows, n_features) or not Expanded.usable(unit, n_features):
        return Exact
    eps = float(jnp.finfo(z2.dtype).eps)
    return Expanded if eps * float(z2) <= EXPANDED_RTOL else Exact
