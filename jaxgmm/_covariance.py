"""One small unit per covariance type, found through ``COVARIANCE_TYPES``.

Each unit knows, for its own parameter shapes, how to factor a covariance into scikit-learn's
``precisions_cholesky``, the log-determinant and squared Mahalanobis distances from that factor,
how to turn weighted scatter statistics into covariances, and how many free parameters it has.
The EM code is written once against this interface, never as an if-chain over types.

Each unit also has the *expanded* (exponential-family) form of the same quantities: the
log-density is linear in the features ``(x, q(x))`` with ``q`` the products ``x_i x_j`` (full,
tied) or squares ``x_i^2`` (diag, spherical), so the E-step is a matrix product of the features
with natural parameters, and the M-step's statistics are a product of the responsibilities with
the features; :meth:`scatter_from_moments` turns the raw moments into the scatter around the
shift. It is faster for small D, and loses digits when a component lies many of its standard
deviations from the data's centre (see ``fit(statistics=...)``).

Conventions: ``diff`` is ``(K, N, D)``, the data minus a per-component shift; ``wr`` is
``(K, N)``, responsibilities times sample weights; ``nk`` is ``(K,)`` and ``delta`` ``(K, D)``
is the weighted mean of ``diff`` per component (the mean minus the shift).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.linalg import solve_triangular


def _flip(a: Array) -> Array:
    return jnp.flip(a, axis=(-2, -1))


def _eye_like(a: Array) -> Array:
    return jnp.eye(a.shape[-1], dtype=a.dtype)


def symmetric(a: Array) -> Array:
    """The lower triangle mirrored. Exactly symmetric when ``a`` is a buffer already computed;
    when XLA fuses the computation of ``a`` into both triangles it may round the two copies
    differently (multiply-adds in one code path, not in the other), which is why fitted
    covariances are made symmetric once more after the fit (``Full.symmetrize``)."""
    return jnp.tril(a) + jnp.swapaxes(jnp.tril(a, -1), -1, -2)


def _inverse_std(data_var: Array) -> Array:
    """1/std per feature, 0 for constant features (which then never count as collapsed)."""
    positive = data_var > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, data_var, 1.0)), 0.0)


class Full:
    """One (D, D) covariance per component."""

    name = "full"

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components * n_features * (n_features + 1) // 2

    @staticmethod
    def factor(cov: Array) -> Array:
        # U = (chol(cov)^-1)^T, so that U U^T = cov^-1; a triangular solve, never an inverse of cov.
        chol = jnp.linalg.cholesky(cov)
        eye = jnp.broadcast_to(_eye_like(cov), cov.shape)
        return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)

    @staticmethod
    def factor_from_precisions(prec: Array) -> Array:
        # The upper factor U U^T = P is the flipped lower Cholesky factor of the flipped P.
        return _flip(jnp.linalg.cholesky(_flip(prec)))

    @staticmethod
    def covariances_from_factor(prec_chol: Array) -> Array:
        eye = jnp.broadcast_to(_eye_like(prec_chol), prec_chol.shape)
        u_inv = solve_triangular(prec_chol, eye, lower=False)
        return symmetric(jnp.swapaxes(u_inv, -1, -2) @ u_inv)

    @staticmethod
    def precisions(prec_chol: Array) -> Array:
        return prec_chol @ jnp.swapaxes(prec_chol, -1, -2)

    @staticmethod
    def log_det_factor(prec_chol: Array, n_features: int) -> Array:
        return jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)

    @staticmethod
    def squared_mahalanobis(diff: Array, prec_chol: Array) -> Array:
        return jnp.sum(jnp.square(diff @ prec_chol), axis=-1)

    @staticmethod
    def scatter(diff: Array, wr: Array) -> Array:
        return jnp.einsum("kn,kni,knj->kij", wr, diff, diff)

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        return symmetric(scatter / nk[:, None, None] - delta[:, :, None] * delta[:, None, :])

    @staticmethod
    def add_to_diagonal(cov: Array, value) -> Array:
        return cov + value * _eye_like(cov)

    @staticmethod
    def symmetrize(cov: Array) -> Array:
        return symmetric(cov)

    @staticmethod
    def select(mask: Array, if_true: Array, if_false: Array) -> Array:
        return jnp.where(mask[:, None, None], if_true, if_false)

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return jnp.broadcast_to(data_cov, (n_components, *data_cov.shape))

    @staticmethod
    def feature_variances(cov: Array) -> Array:
        """Each component's variance of each feature, broadcastable to the means' ``(K, D)``."""
        return jnp.diagonal(cov, axis1=-2, axis2=-1)

    @staticmethod
    def smallest_standardized_variance(cov: Array, data_var: Array) -> Array:
        inv_std = _inverse_std(data_var)
        scaled = cov * inv_std[:, None] * inv_std[None, :]
        scaled = scaled + jnp.diag((inv_std == 0).astype(cov.dtype))
        return jnp.linalg.eigvalsh(scaled)[..., 0]

    # -- expanded form --

    @staticmethod
    def quadratic_features(x: Array) -> Array:
        """``(B, D(D+1)/2)``: the products ``x_i x_j``, i <= j."""
        rows, cols = np.triu_indices(x.shape[-1])
        return x[:, rows] * x[:, cols]

    @staticmethod
    def _precisions(params) -> Array:
        u = params.precisions_cholesky
        return jnp.broadcast_to(u @ jnp.swapaxes(u, -1, -2), (len(params.weights),) + u.shape[-2:])

    @classmethod
    def natural(cls, params) -> tuple[Array, Array, Array]:
        """``(W_q (K, F), W_x (K, D), c (K,))`` with ``log N(x | k) = q(x) W_q[k] + x W_x[k] +
        c[k]`` up to ``-D/2 log(2 pi) + log det``."""
        prec = cls._precisions(params)
        rows, cols = np.triu_indices(prec.shape[-1])
        twice = np.where(rows == cols, 1.0, 2.0).astype(prec.dtype)  # x_i x_j appears twice
        linear = jnp.einsum("kde,ke->kd", prec, params.means)
        return (
            -0.5 * prec[:, rows, cols] * twice,
            linear,
            -0.5 * jnp.einsum("kd,kd->k", params.means, linear),
        )

    @staticmethod
    def scatter_from_moments(quadratic: Array, first: Array, mass: Array, shift: Array) -> Array:
        """Scatter around ``shift`` from the raw moments sum r q(x) ``(K, F)``, sum r x
        ``(K, D)`` and sum r ``(K,)``."""
        d = shift.shape[-1]
        rows, cols = np.triu_indices(d)
        upper = jnp.zeros((quadratic.shape[0], d, d), quadratic.dtype)
        upper = upper.at[:, rows, cols].set(quadratic)
        raw = upper + jnp.swapaxes(jnp.triu(upper, 1), -1, -2)
        cross = first[:, :, None] * shift[:, None, :]
        return (
            raw
            - cross
            - jnp.swapaxes(cross, -1, -2)
            + mass[:, None, None] * shift[:, :, None] * shift[:, None, :]
        )


class Tied(Full):
    """One (D, D) covariance shared by all components."""

    name = "tied"

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_features, n_features)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_features * (n_features + 1) // 2

    @staticmethod
    def scatter(diff: Array, wr: Array) -> Array:
        return jnp.einsum("kn,kni,knj->ij", wr, diff, diff)

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        between = jnp.einsum("k,ki,kj->ij", nk, delta, delta)
        return symmetric((scatter - between) / jnp.sum(nk))

    @staticmethod
    def select(mask: Array, if_true: Array, if_false: Array) -> Array:
        # Shared by all components: an empty component contributes nothing to it anyway.
        return if_false

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return data_cov

    @staticmethod
    def scatter_from_moments(quadratic: Array, first: Array, mass: Array, shift: Array) -> Array:
        return jnp.sum(Full.scatter_from_moments(quadratic, first, mass, shift), axis=0)


class Diag:
    """One variance per component and feature."""

    name = "diag"

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components * n_features

    @staticmethod
    def factor(cov: Array) -> Array:
        return 1.0 / jnp.sqrt(cov)

    @staticmethod
    def factor_from_precisions(prec: Array) -> Array:
        return jnp.sqrt(prec)

    @staticmethod
    def covariances_from_factor(prec_chol: Array) -> Array:
        return 1.0 / jnp.square(prec_chol)

    @staticmethod
    def precisions(prec_chol: Array) -> Array:
        return jnp.square(prec_chol)

    @staticmethod
    def log_det_factor(prec_chol: Array, n_features: int) -> Array:
        return jnp.sum(jnp.log(prec_chol), axis=-1)

    @staticmethod
    def squared_mahalanobis(diff: Array, prec_chol: Array) -> Array:
        return jnp.sum(jnp.square(diff * prec_chol[:, None, :]), axis=-1)

    @staticmethod
    def scatter(diff: Array, wr: Array) -> Array:
        return jnp.einsum("kn,knd->kd", wr, jnp.square(diff))

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        return scatter / nk[:, None] - jnp.square(delta)

    @staticmethod
    def add_to_diagonal(cov: Array, value) -> Array:
        return cov + value

    @staticmethod
    def symmetrize(cov: Array) -> Array:
        return cov

    @staticmethod
    def select(mask: Array, if_true: Array, if_false: Array) -> Array:
        return jnp.where(mask.reshape(mask.shape + (1,) * (if_true.ndim - 1)), if_true, if_false)

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return jnp.broadcast_to(jnp.diagonal(data_cov), (n_components, data_cov.shape[0]))

    @staticmethod
    def feature_variances(cov: Array) -> Array:
        return cov

    @staticmethod
    def smallest_standardized_variance(cov: Array, data_var: Array) -> Array:
        inv_std = _inverse_std(data_var)
        return jnp.min(cov * jnp.square(inv_std) + (inv_std == 0), axis=-1)

    # -- expanded form --

    @staticmethod
    def quadratic_features(x: Array) -> Array:
        return jnp.square(x)

    @staticmethod
    def natural(params) -> tuple[Array, Array, Array]:
        prec = jnp.square(params.precisions_cholesky)
        prec = jnp.broadcast_to(
            prec.reshape(prec.shape + (1,) * (2 - prec.ndim)), params.means.shape
        )
        linear = prec * params.means
        return -0.5 * prec, linear, -0.5 * jnp.sum(params.means * linear, axis=-1)

    @staticmethod
    def scatter_from_moments(quadratic: Array, first: Array, mass: Array, shift: Array) -> Array:
        return quadratic - 2.0 * shift * first + mass[:, None] * jnp.square(shift)


class Spherical(Diag):
    """One variance per component, the same for every feature."""

    name = "spherical"
    # expanded form: the squares x_i^2 as for diag, with one precision broadcast over features

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components,)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components

    @staticmethod
    def log_det_factor(prec_chol: Array, n_features: int) -> Array:
        return n_features * jnp.log(prec_chol)

    @staticmethod
    def squared_mahalanobis(diff: Array, prec_chol: Array) -> Array:
        return jnp.sum(jnp.square(diff), axis=-1) * jnp.square(prec_chol)[:, None]

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        return jnp.mean(Diag.from_scatter(scatter, nk, delta), axis=-1)

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return jnp.broadcast_to(jnp.mean(jnp.diagonal(data_cov)), (n_components,))

    @staticmethod
    def feature_variances(cov: Array) -> Array:
        return cov[:, None]

    @staticmethod
    def smallest_standardized_variance(cov: Array, data_var: Array) -> Array:
        mean_var = jnp.mean(data_var)
        return jnp.where(mean_var > 0, cov / jnp.where(mean_var > 0, mean_var, 1.0), 1.0)


COVARIANCE_TYPES = {unit.name: unit for unit in (Full, Tied, Diag, Spherical)}


# -- factorisations without LAPACK --
#
# jaxlib's batched LAPACK kernels on CPU (potrf, trsm, ...) split their batch over XLA's
# intra-op thread pool and block until it is done. When one process runs a sharded program on
# several CPU devices, each device's program can sit in such a kernel on a pool thread at once;
# with as many devices as cores no thread is left to do the split work and the fit hangs (seen
# with jaxlib 0.10.2 from D = 32 on 2 cores). Such programs factor with these loops instead:
# plain XLA operations, D steps each, negligible beside a pass over the data.


def _cholesky_by_columns(a: Array) -> Array:
    """Lower Cholesky factor of ``(..., D, D)`` matrices, one column per loop step; NaN where a
    matrix is not positive definite (as ``jnp.linalg.cholesky``)."""
    rows = jnp.arange(a.shape[-1])

    def column(j, lower):
        # columns >= j of `lower` are still zero, so the product sums over k < j only
        v = a[..., :, j] - jnp.einsum("...ik,...k->...i", lower, lower[..., j, :])
        pivot = jnp.sqrt(v[..., j])[..., None]
        return lower.at[..., :, j].set(jnp.where(rows >= j, v / pivot, 0.0))

    return lax.fori_loop(0, a.shape[-1], column, jnp.zeros_like(a))


def _lower_inverse_by_rows(lower: Array) -> Array:
    """Inverse of lower-triangular ``(..., D, D)`` matrices by forward substitution."""
    eye = jnp.eye(lower.shape[-1], dtype=lower.dtype)

    def row(i, inverse):
        # rows >= i of `inverse` are still zero, so the product sums over k < i only
        rest = jnp.einsum("...k,...kj->...j", lower[..., i, :], inverse)
        return inverse.at[..., i, :].set((eye[i] - rest) / lower[..., i, i][..., None])

    return lax.fori_loop(0, lower.shape[-1], row, jnp.zeros_like(lower))


class _FactorByLoops:
    """Mixin: :meth:`factor` without LAPACK calls (see above)."""

    @staticmethod
    def factor(cov: Array) -> Array:
        return jnp.swapaxes(_lower_inverse_by_rows(_cholesky_by_columns(cov)), -1, -2)


class FullByLoops(_FactorByLoops, Full):
    pass


class TiedByLoops(_FactorByLoops, Tied):
    pass


_BY_LOOPS = {Full: FullByLoops, Tied: TiedByLoops}


def covariance_unit(covariance_type: str, *, lapack: bool = True):
    """The unit for a covariance type name, with a clear error for an unknown one. With
    ``lapack=False``, one whose M-step factorisation calls no LAPACK kernel (see above)."""
    try:
        unit = COVARIANCE_TYPES[covariance_type]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {sorted(COVARIANCE_TYPES)}, got {covariance_type!r}"
        ) from None
    return unit if lapack else _BY_LOOPS.get(unit, unit)
