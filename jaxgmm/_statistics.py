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

import dataclasses
import math
from typing import NamedTuple

import jax.numpy as jnp
from jax import Array, lax
from jax.scipy.special import logsumexp

from ._shapes import is_small

LOG_2PI = math.log(2.0 * math.pi)


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


def normalized(weighted: Array, wb: Array, params, axis: int) -> tuple[Array, Array]:
    """The mixture's log density at each sample and the weighted responsibilities ``wb r``
    from ``weighted`` (``log w_k + log N_k``, components along ``axis``; the noise component's
    term included when there is one), with one exponential per entry: the responsibilities
    are the exponentials that the log density sums (against ``logsumexp`` then
    ``exp(weighted - log_norm)``, a second pass of exponentials: 10-20% of a small fit's
    iteration on the CPU)."""
    noise = noise_term(params)
    top = jnp.max(weighted, axis=axis, keepdims=True)
    if noise is not None:
        top = jnp.maximum(top, noise)
    e = jnp.exp(weighted - top)
    total = jnp.sum(e, axis=axis, keepdims=True)
    if noise is not None:
        total = total + jnp.exp(noise - top)
    log_norm = jnp.squeeze(top + jnp.log(total), axis)
    return log_norm, e * (jnp.expand_dims(wb, axis) / total)


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
        log_norm, wr = normalized(weighted, wb, params, axis=0)
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
        """*Raw* moments (``first`` is sum w r x, ``scatter`` the unit's raw second moment, as
        sum w r q(x)): they add up over blocks like the others, and :meth:`finish` turns their
        total into statistics around the shift once per pass. The unit computes its densities'
        terms and its moments (``expanded_terms``)."""
        n_components, n_features = params.means.shape
        terms, moments = unit.expanded_terms(xb, params)
        log_det = jnp.broadcast_to(
            unit.log_det_factor(params.precisions_cholesky, n_features), (n_components,)
        )
        weighted = terms + (log_det + jnp.log(params.weights) - 0.5 * n_features * LOG_2PI)
        log_norm, wr = normalized(weighted, wb, params, axis=1)  # wr (B, K)
        first, scatter = moments(wr)
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


# A row with observed coordinates o and missing ones m, under a component of mean mu, covariance
# S and precision P = S^-1, in terms of the m x m block P_mm alone (d: x - mu with zeros on m):
#   conditional covariance of x_m:  C = P_mm^-1
#   conditional mean of x_m:        mu_m - C (P d)_m
#   log det S_oo = log det S + log det P_mm;  d_o^T S_oo^-1 d_o = d^T P d - (P d)_m^T C (P d)_m
# P d is one matrix product per block and component; what is factored per row is P_mm, padded
# to the smallest of a few widths that holds the block's rows (:func:`by_width`), not D x D. The
# factorisation is written out entry by entry (:func:`_inverse_entries`), each entry one
# elementwise operation over every row and component of the block, which XLA fuses: 4x faster
# than loops over columns, 4x faster than a batched W x W matrix product (measured on the
# 2-core CPU, K = 16, 512 rows, W = 7), and no LAPACK: jaxlib's batched CPU kernels (potrf, trsm)
# stalled a 9,000-row fit on two cores, as they do in sharded programs.


def split(xb: Array) -> tuple[Array, Array]:
    """A block's observed flags and its values with the missing ones set to 0."""
    observed = ~jnp.isnan(xb)
    return jnp.where(observed, xb, 0.0), observed


def diagonal(unit) -> bool:
    """Whether the unit stores variances (diagonal covariances), not matrices."""
    return len(unit.shape(1, 2)) <= 2 and not unit.shared


class Moments(NamedTuple):
    """Every row of a block under every component, given its observed values: ``log_density``
    ``(K, B)`` of the observed values, the row ``completed`` with the conditional means of the
    missing ones ``(K, B, D)``, and their ``conditional`` covariance: for a diagonal model its
    diagonal ``(K, B, D)`` (zero where observed); otherwise ``(K, B, W, W)`` over ``slots``
    ``(B, W)``, each row's missing coordinates (the ``valid`` ones; the others pad)."""

    log_density: Array
    completed: Array
    conditional: Array
    slots: Array | None = None
    valid: Array | None = None
    inverse: dict | None = None  # the entries of M with C = M^T M (``_inverse_entries``)


def _inverse_entries(a: Array):
    """For symmetric positive definite ``(..., W, W)`` matrices, as ``{(i, j): (...)}`` entries:
    the inverse ``M`` of their lower Cholesky factor ``L`` (``a^-1 = M^T M``) and ``log det a``.
    Entry by entry (W^3 / 2 elementwise operations in all), for small W."""
    n = a.shape[-1]
    lower: dict = {}
    for j in range(n):
        lower[j, j] = jnp.sqrt(a[..., j, j] - sum(lower[j, k] ** 2 for k in range(j)))
        for i in range(j + 1, n):
            dot = sum(lower[i, k] * lower[j, k] for k in range(j))
            lower[i, j] = (a[..., i, j] - dot) / lower[j, j]
    inverse: dict = {}
    for i in range(n):
        inverse[i, i] = 1.0 / lower[i, i]
        for j in range(i):
            dot = sum(lower[i, k] * inverse[k, j] for k in range(j, i))
            inverse[i, j] = -dot / lower[i, i]
    log_det = 2.0 * sum(jnp.log(lower[i, i]) for i in range(n))
    return inverse, log_det


def _gram(inverse: dict, n: int) -> Array:
    """``M^T M`` of lower-triangular entries ``M`` (:func:`_inverse_entries`): ``(..., n, n)``."""
    entries = {}
    for i in range(n):
        for j in range(i + 1):
            entries[i, j] = entries[j, i] = sum(inverse[k, i] * inverse[k, j] for k in range(i, n))
    return jnp.stack([jnp.stack([entries[i, j] for j in range(n)], -1) for i in range(n)], -2)


def transposed_factor(inverse: dict, n: int) -> Array:
    """``M^T`` as a ``(..., n, n)`` array: ``M^T z`` has covariance ``M^T M`` for a standard
    normal ``z`` (the draws of a multiple imputation)."""
    zero = jnp.zeros_like(inverse[0, 0])
    rows = [[inverse.get((j, i), zero) for j in range(n)] for i in range(n)]
    return jnp.stack([jnp.stack(row, -1) for row in rows], -2)


def missing_slots(observed: Array, width: int) -> tuple[Array, Array]:
    """``(B, width)``: each row's missing coordinates first (then observed ones, as padding),
    and which of them are missing."""
    order = jnp.argsort(observed, axis=1, stable=True)  # False, missing, sorts first
    n_missing = jnp.sum(~observed, axis=1)
    return order[:, :width], jnp.arange(width)[None, :] < n_missing[:, None]


def missing_moments(xb: Array, params, unit, width: int | None = None) -> Moments:
    """:class:`Moments` of a block (NaN for its missing values). ``width``: at least the most
    values missing in a row (None: D). A diagonal model's coordinates are independent given the
    component: D per row and component, not a factorisation."""
    x, observed = split(xb)
    n_components, n_features = params.means.shape
    means = params.means[:, None, :]
    diff = jnp.where(observed, x - means, 0.0)
    if diagonal(unit):
        variances = jnp.broadcast_to(
            params.covariances.reshape(n_components, -1), (n_components, n_features)
        )[:, None, :]
        terms = LOG_2PI + jnp.log(variances) + jnp.square(diff) / variances
        log_density = -0.5 * jnp.sum(jnp.where(observed, terms, 0.0), axis=-1)
        return Moments(log_density, means + diff, jnp.where(observed, 0.0, variances))
    width = n_features if width is None else width
    factor = unit.matrices(params.precisions_cholesky, n_components, n_features)
    precision = jnp.einsum("kij,klj->kil", factor, factor)  # U U^T, U the precision's factor
    pd = jnp.einsum("kbd,kde->kbe", diff, precision)
    slots, valid = missing_slots(observed, width)
    pair = valid[:, :, None] & valid[:, None, :]
    eye = jnp.eye(width, dtype=x.dtype)
    block = jnp.where(pair, precision[:, slots[:, :, None], slots[:, None, :]], eye)
    pd_m = jnp.where(
        valid,
        jnp.take_along_axis(pd, jnp.broadcast_to(slots, pd.shape[:2] + (width,)), axis=2),
        0.0,
    )
    inverse, log_det_block = _inverse_entries(block)
    conditional = jnp.where(pair, _gram(inverse, width), 0.0)
    shift = jnp.sum(conditional * pd_m[..., None, :], axis=-1)  # C (P d)_m
    completed = means + diff - placed(shift, slots, valid, n_features)
    maha = jnp.sum(diff * pd, axis=-1) - jnp.sum(pd_m * shift, axis=-1)
    log_det = jnp.broadcast_to(
        -2.0 * unit.log_det_factor(params.precisions_cholesky, n_features), (n_components,)
    )
    n_observed = jnp.sum(observed, axis=1).astype(x.dtype)
    log_density = -0.5 * (n_observed * LOG_2PI + log_det[:, None] + log_det_block + maha)
    return Moments(log_density, completed, conditional, slots, valid, inverse)


def placed(values: Array, slots: Array, valid: Array, n_features: int) -> Array:
    """Values over rows' slots ``(..., W)`` (:func:`missing_slots`) put at their coordinates,
    ``(..., D)``, the padding slots left out."""
    onehot = (slots[..., None] == jnp.arange(n_features)) & valid[..., None]
    return jnp.sum(values[..., None] * onehot.astype(values.dtype), axis=-2)


def conditional_scatter(moments: Moments, wr: Array, n_features: int) -> Array:
    """sum over the block's rows of w r times each row's conditional covariance, ``(K, D, D)``
    (not for a diagonal model): each row's W x W block added where its slots say."""
    n_components = wr.shape[0]
    slots = moments.slots
    flat = (slots[:, :, None] * n_features + slots[:, None, :]).reshape(-1)
    values = (wr[:, :, None, None] * moments.conditional).reshape(n_components, -1)
    total = jnp.zeros((n_components, n_features * n_features), wr.dtype)
    return total.at[:, flat].add(values).reshape(n_components, n_features, n_features)


def widths(most: int) -> tuple[int, ...]:
    """The widths a block is factored at for data missing at most ``most`` values in a row:
    the powers of two below it, and itself (each a branch of the compiled program)."""
    return tuple(w for w in (1, 2, 4, 8) if w < most) + (most,)


def by_width(fn, xb: Array, most: int | None):
    """``fn(width)(xb)`` at the smallest width of :func:`widths` that holds every row of the
    block: the block's own cost, not that of the data's worst row (with the rows sorted by
    their number of missing values, most blocks miss few). ``most`` None: D, one width."""
    if most is None or most <= 1:
        return fn(xb.shape[1] if most is None else most)(xb)
    choices = widths(most)
    needed = jnp.max(jnp.sum(jnp.isnan(xb), axis=1))
    index = jnp.searchsorted(jnp.asarray(choices), needed)
    return lax.switch(jnp.minimum(index, len(choices) - 1), [fn(w) for w in choices], xb)


def marginal_log_densities(xb: Array, params, unit, width: int | None = None) -> Array:
    """``(K, B)``: each row's log marginal density over its observed coordinates under every
    component (``xb`` with NaN for the missing values; ``width``: at least the most in a
    row, None for D)."""

    def at(w):
        return lambda xb: missing_moments(xb, params, unit, w).log_density

    return by_width(at, xb, None if diagonal(unit) else width)


@dataclasses.dataclass(frozen=True)
class Missing:
    """The statistics form of data with missing values: marginal densities, and the expected
    complete-data statistics (the conditional covariance added to the scatter). ``width``:
    the most values missing in a row of the data (None: D); a block is factored at the
    smallest of :func:`widths` that holds it."""

    width: int | None = None
    name = "missing"

    def usable(self, unit, n_features: int) -> bool:
        return True

    def row_width(self, unit, n_features: int) -> int:
        return 0

    def block(self, xb: Array, wb: Array, params, unit) -> Statistics:
        def at(width):
            return lambda xb: self._block(xb, wb, params, unit, width)

        return by_width(at, xb, None if diagonal(unit) else self.width)

    @staticmethod
    def _block(xb: Array, wb: Array, params, unit, width: int) -> Statistics:
        moments = missing_moments(xb, params, unit, width)
        weighted = moments.log_density + jnp.log(params.weights)[:, None]
        log_norm, wr = normalized(weighted, wb, params, axis=0)
        diff = moments.completed - params.means[:, None, :]
        if diagonal(unit):  # the variances' scatter, and the conditional variances
            scatter = unit.scatter(diff, wr) + jnp.einsum("kn,knd->kd", wr, moments.conditional)
        else:
            scatter = jnp.einsum("kn,kni,knj->kij", wr, diff, diff)
            scatter = unit.scatter_of_dense(scatter + conditional_scatter(moments, wr, xb.shape[1]))
        return Statistics(
            mass=jnp.sum(wr, axis=1),
            first=jnp.einsum("kn,knd->kd", wr, diff),
            scatter=scatter,
            log_lik=jnp.sum(wb * log_norm),
            weight=jnp.sum(wb),
            noise_mass=noise_mass(wb, log_norm, params),
        )

    def finish(self, stats: Statistics, shift: Array, unit) -> Statistics:
        return stats


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


def standardized_z2(params, unit) -> Array:
    """Largest squared standardised coordinate z^2 of an active component's mean (the data
    being centred) of one restart, over its components and features."""
    variances = unit.feature_variances(params.covariances)
    if variances.ndim == 1:  # one covariance shared by the components
        variances = variances[None, :]
    z2 = jnp.square(params.means) / variances
    return jnp.max(jnp.where(params.weights[:, None] > 0, z2, 0.0))


class Auto:
    """``statistics="auto"``, decided in the program at every iteration, for a batch's pass or
    a restart's (``jaxgmm._engine.pass_statistics``): the expanded form while
    :meth:`expanded_accurate`, otherwise the exact one. Not a form of its own: it has no
    ``block``; it is usable, and reads blocks, as the expanded form."""

    name = "auto"
    usable = Expanded.usable
    row_width = Expanded.row_width

    @staticmethod
    def expanded_accurate(params, unit) -> Array:
        """Whether the expanded form's predicted error, ``eps * z^2`` of one restart's
        parameters, is within ``EXPANDED_RTOL``."""
        z2 = standardized_z2(params, unit)
        return jnp.finfo(z2.dtype).eps * z2 <= EXPANDED_RTOL


STATISTICS_FORMS = {form.name: form for form in (Exact, Expanded, Auto, Missing())}
# what users may ask for; "missing" is taken, and only taken, for data with missing values
STATISTICS = (Auto.name, Exact.name, Expanded.name)


def named_form(statistics: str, missing_width: int = 0):
    """The form of a name; "missing" for data whose rows miss at most ``missing_width``
    values."""
    if statistics == Missing.name:
        return Missing(missing_width or None)
    return STATISTICS_FORMS[statistics]


def choose_form(
    statistics: str,
    unit,
    *,
    rows: int,
    n_features: int,
    traced: bool,
    missing_width: int = 0,
):
    """The form of a fit's iterations: the one named, or for "auto" :class:`Auto` where the
    expanded form is usable, but the exact one for small data (``rows`` per device, where a
    pass costs less than the check) and under JAX transformations (where a ``vmap`` of the fit
    would compute both of :class:`Auto`'s forms)."""
    if statistics != Auto.name:
        return named_form(statistics, missing_width)
    if traced or is_small(rows, n_features) or not Expanded.usable(unit, n_features):
        return Exact
    return Auto
