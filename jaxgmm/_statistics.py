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
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import Array
from jax.scipy.special import logsumexp

from ._shapes import is_small

LOG_2PI = math.log(2.0 * math.pi)
_JOIN_FEATURES = 32


class Statistics(NamedTuple):
    """Weighted sufficient statistics of one mixture around a per-component ``shift``: plain
    sums over samples, so that blocks (or devices) add up.

    ``mass`` (K,) is sum w r; ``first`` (K, D) is sum w r (x - shift); ``scatter`` (the
    covariance model's shape) is sum w r (x - shift)(x - shift)^T; ``log_lik`` () is
    sum w logsumexp_k(log w_k + log N_k), zero when the statistics come from given
    responsibilities; ``weight`` () is sum w.
    """

    mass: Array
    first: Array
    scatter: Array
    log_lik: Array
    weight: Array


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
        log_norm = logsumexp(weighted, axis=0)
        wr = jnp.exp(weighted - log_norm[None, :]) * wb[None, :]
        return Statistics(
            mass=jnp.sum(wr, axis=1),
            first=jnp.einsum("kn,knd->kd", wr, diff),
            scatter=unit.scatter(diff, wr),
            log_lik=jnp.sum(wb * log_norm),
            weight=jnp.sum(wb),
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
        top = jnp.max(weighted, axis=1, keepdims=True)
        e = jnp.exp(weighted - top)
        total = jnp.sum(e, axis=1, keepdims=True)
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
        )

    @staticmethod
    def finish(raw: Statistics, shift: Array, unit) -> Statistics:
        """Statistics around ``shift`` from the raw moments summed over blocks."""
        return raw._replace(
            first=raw.first - raw.mass[:, None] * shift,
            scatter=unit.scatter_from_moments(raw.scatter, raw.first, raw.mass, shift),
        )


STATISTICS_FORMS = {form.name: form for form in (Exact, Expanded)}
STATISTICS = ("auto", *STATISTICS_FORMS)


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
