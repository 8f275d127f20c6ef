"""Covariance models with a dense (D, D) matrix: one per component (full) or one shared (tied)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array
from jax.scipy.linalg import solve_triangular

from ._base import Model
from ._linalg import (
    check_symmetric_positive_definite,
    cholesky_by_columns,
    eye_like,
    flip,
    inverse_std,
    lower_inverse_by_rows,
    symmetric,
)


def _outer(v: Array) -> Array:
    return v[..., :, None] * v[..., None, :]


def dense_prior_terms(means: Array, cov: Array, scale: Array):
    """The pieces of a conjugate prior's log density for (D, D) covariances, per component:
    ``log|S_k|``, ``tr(scale S_k^-1)`` and ``mu_k^T S_k^-1 mu_k`` (``cov`` (K, D, D), or one
    (D, D) shared by the K ``means``)."""
    inverse = jnp.broadcast_to(jnp.linalg.inv(cov), means.shape[:1] + cov.shape[-2:])
    _, log_det = jnp.linalg.slogdet(cov)
    spread = jnp.einsum("ij,kji->k", scale, inverse)
    pull = jnp.einsum("ki,kij,kj->k", means, inverse, means)
    return log_det, spread, pull


class Full(Model):
    """One (D, D) covariance per component."""

    name = "full"
    shared = False
    correlated = True  # off-diagonal terms: identical columns make its covariances singular
    plot_style = ("C0", "o")
    # The expanded form holds D(D+1)/2 quadratic features per row: beyond 16 features they
    # outgrow the data and whitening each component is faster (bench notes).
    expanded_max_features = 16

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features, n_features)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components * n_features * (n_features + 1) // 2

    @staticmethod
    def poorly_determined(n_samples: int, n_components: int, n_features: int) -> bool:
        """Whether the data are too few for these covariances (a warning, not an error)."""
        return n_features >= n_samples / n_components

    # -- factors and densities --

    @staticmethod
    def factor(cov: Array) -> Array:
        # U = (chol(cov)^-1)^T, so that U U^T = cov^-1; a triangular solve, never an inverse of cov.
        chol = jnp.linalg.cholesky(cov)
        eye = jnp.broadcast_to(eye_like(cov), cov.shape)
        return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)

    @staticmethod
    def factor_from_precisions(prec: Array) -> Array:
        # The upper factor U U^T = P is the flipped lower Cholesky factor of the flipped P.
        return flip(jnp.linalg.cholesky(flip(prec)))

    @staticmethod
    def covariances_from_factor(prec_chol: Array) -> Array:
        eye = jnp.broadcast_to(eye_like(prec_chol), prec_chol.shape)
        u_inv = solve_triangular(prec_chol, eye, lower=False)
        return symmetric(jnp.swapaxes(u_inv, -1, -2) @ u_inv)

    @staticmethod
    def log_det_factor(prec_chol: Array, n_features: int) -> Array:
        return jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)

    @staticmethod
    def squared_mahalanobis(diff: Array, prec_chol: Array) -> Array:
        return jnp.sum(jnp.square(diff @ prec_chol), axis=-1)

    # -- M-step --

    @staticmethod
    def scatter(diff: Array, wr: Array) -> Array:
        return jnp.einsum("kn,kni,knj->kij", wr, diff, diff)

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        """Covariances from the scatter around the shift, the masses and ``delta`` (the means
        minus the shift); a prior would add its pseudo-statistics to these before this call."""
        return symmetric(scatter / nk[:, None, None] - delta[:, :, None] * delta[:, None, :])

    # -- mclust's conjugate prior (``jaxgmm._prior``): ``xbar`` and ``means`` are offsets from
    # the prior mean (of the new unpulled means, of the current means); ``on`` flags the
    # components switched on --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # (Lambda + W_k + c_k xbar_k xbar_k^T) / (nu + n_k + D + 2)
        n_on = jnp.sum(on)
        w = scatter - nk[:, None, None] * _outer(delta)
        total = prior.scale_matrix(n_on) + w + prior.pull(nk)[:, None, None] * _outer(xbar)
        return symmetric(total / (prior.dof + nk + xbar.shape[-1] + 2)[:, None, None])

    @staticmethod
    def log_prior(means, cov, prior, on):
        # sum_k [-(nu + D + 2)/2 log|S_k| - tr(Lambda S_k^-1)/2 - kappa mu_k^T S_k^-1 mu_k / 2]
        d = means.shape[-1]
        log_det, spread, pull = dense_prior_terms(means, cov, prior.scale_matrix(jnp.sum(on)))
        each = -(prior.dof + d + 2) / 2 * log_det - spread / 2 - prior.shrinkage * pull / 2
        return jnp.sum(jnp.where(on, each, 0.0))

    @staticmethod
    def add_to_diagonal(cov: Array, value) -> Array:
        return cov + value * eye_like(cov)

    @staticmethod
    def symmetrize(cov: Array) -> Array:
        return symmetric(cov)

    @staticmethod
    def select(mask: Array, if_true: Array, if_false: Array) -> Array:
        return jnp.where(mask[:, None, None], if_true, if_false)

    @staticmethod
    def matrices(cov: Array, n_components: int, n_features: int) -> Array:
        """The covariances as ``(K, D, D)`` matrices, in JAX (``dense`` on the host)."""
        return cov

    @staticmethod
    def scatter_of_dense(scatter: Array) -> Array:
        """This model's statistics from per-component scatter matrices ``(K, D, D)``."""
        return scatter

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return jnp.broadcast_to(data_cov, (n_components, *data_cov.shape))

    @staticmethod
    def project(cov: Array, nk: Array) -> Array:
        """This model's covariances from unconstrained ``(K, D, D)`` ones of component masses
        ``nk``, as dense matrices (see ``AnyModel``)."""
        return cov

    # -- diagnostics --

    @staticmethod
    def feature_variances(cov: Array) -> Array:
        """Each component's variance of each feature, broadcastable to the means' ``(K, D)``."""
        return jnp.diagonal(cov, axis1=-2, axis2=-1)

    @staticmethod
    def standardized(cov: Array, data_var: Array) -> Array:
        """Covariances in units of the data's per-feature variance (1 on constant features,
        which then never count as collapsed)."""
        inv_std = inverse_std(data_var)
        scaled = cov * inv_std[:, None] * inv_std[None, :]
        return scaled + jnp.diag((inv_std == 0).astype(cov.dtype))

    # -- expanded form --

    @staticmethod
    def n_quadratic_features(n_features: int) -> int:
        return n_features * (n_features + 1) // 2

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

    # -- on the host, in NumPy --

    @staticmethod
    def dense(cov, n_components: int, n_features: int) -> np.ndarray:
        """Every component's covariance as a ``(..., K, D, D)`` float64 array."""
        return np.array(cov, dtype=np.float64)

    @staticmethod
    def first_components(cov, k: int):
        """The covariance parameters of the first ``k`` components (leading axes kept)."""
        return cov[..., :k, :, :]

    @staticmethod
    def from_dense(cov):
        """This model's parameters (covariances or their factors, NumPy or JAX, any leading
        axes) from dense ``(..., K, D, D)`` ones that satisfy its constraint."""
        return cov

    @staticmethod
    def precisions(prec_chol) -> np.ndarray:
        """Precisions from their factor, in NumPy (a float64 factor stays float64)."""
        u = np.asarray(prec_chol)
        return u @ np.swapaxes(u, -1, -2)

    @staticmethod
    def from_precisions(prec) -> tuple[np.ndarray, np.ndarray]:
        """Covariances and their precision factor from precisions, in NumPy float64 (no
        compilation, as the factor's definition in :meth:`factor_from_precisions`)."""
        prec = np.asarray(prec, np.float64)
        factor = np.flip(np.linalg.cholesky(np.flip(prec, axis=(-2, -1))), axis=(-2, -1))
        inverse = np.linalg.solve(factor, np.broadcast_to(np.eye(prec.shape[-1]), prec.shape))
        return np.swapaxes(inverse, -1, -2) @ inverse, factor

    @staticmethod
    def check(cov, name: str) -> None:
        """Raise a ValueError unless ``cov`` (covariances or precisions, any leading axes) is a
        valid parameter of this model: symmetric positive definite matrices."""
        check_symmetric_positive_definite(cov, name)


class Tied(Full):
    """One (D, D) covariance shared by all components."""

    name = "tied"
    shared = True
    plot_style = ("C1", "s")

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_features, n_features)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_features * (n_features + 1) // 2

    @staticmethod
    def poorly_determined(n_samples: int, n_components: int, n_features: int) -> bool:
        # the shared scatter has N - K degrees of freedom
        return n_features >= n_samples - n_components

    @staticmethod
    def scatter(diff: Array, wr: Array) -> Array:
        return jnp.einsum("kn,kni,knj->ij", wr, diff, diff)

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        between = jnp.einsum("k,ki,kj->ij", nk, delta, delta)
        return symmetric((scatter - between) / jnp.sum(nk))

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # (Lambda + sum_k [W_k + c_k xbar_k xbar_k^T]) / (nu + n + D + 1 + K)
        n_on = jnp.sum(on)
        w = scatter - jnp.einsum("k,ki,kj->ij", nk, delta, delta)
        pulls = jnp.einsum("k,ki,kj->ij", prior.pull(nk), xbar, xbar)
        total = prior.scale_matrix(n_on) + w + pulls
        return symmetric(total / (prior.dof + jnp.sum(nk) + xbar.shape[-1] + 1 + n_on))

    @staticmethod
    def log_prior(means, cov, prior, on):
        d = means.shape[-1]
        n_on = jnp.sum(on)
        log_det, spread, pull = dense_prior_terms(means, cov, prior.scale_matrix(n_on))
        pull = jnp.sum(jnp.where(on, pull, 0.0))
        shared = -(prior.dof + d + 1 + n_on) / 2 * log_det - spread[0] / 2
        return shared - prior.shrinkage * pull / 2

    @staticmethod
    def select(mask: Array, if_true: Array, if_false: Array) -> Array:
        # Shared by all components: an empty component contributes nothing to it anyway.
        return if_false

    @staticmethod
    def matrices(cov: Array, n_components: int, n_features: int) -> Array:
        return jnp.broadcast_to(cov, (n_components, *cov.shape))

    @staticmethod
    def scatter_of_dense(scatter: Array) -> Array:
        return jnp.sum(scatter, axis=0)

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return data_cov

    @staticmethod
    def project(cov: Array, nk: Array) -> Array:
        pooled = jnp.einsum("k,kij->ij", nk, cov) / jnp.sum(nk)
        return jnp.broadcast_to(pooled, cov.shape)

    @staticmethod
    def from_dense(cov):
        return cov[..., 0, :, :]

    # Expanded form: one precision P = U U^T for all components, so the quadratic term of the
    # log-density, -x^T P x / 2, is the same for every component, and the scatter's raw moment
    # summed over the components is sum w (sum_k r_k) x x^T: D products per row (x U) and a
    # (D, D) moment, instead of the D(D+1)/2 products q(x) and K of their moments (tied's
    # iterations in the grid of 4 types x K = 1..9 x 4 restarts on 1e5 x 8, again in a process:
    # 1.24 -> 0.53 s; 2-core VM, 2026-12-06). Nor does it outgrow the data as D grows: a fit of
    # 1e5 rows, K = 5, took 10.5 ms an iteration against 41 ms for the exact form at D = 24, 43
    # against 154 ms at D = 48 (float64, the same lower bound to 1e-13).
    expanded_max_features = None

    @staticmethod
    def n_quadratic_features(n_features: int) -> int:
        return n_features  # x U, the row's width in the expanded form with x

    @classmethod
    def expanded_terms(cls, xb: Array, params):
        _, w_linear, constant = cls.natural(params)
        shared = -0.5 * jnp.sum(jnp.square(xb @ params.precisions_cholesky), axis=1)

        def moments(wr):
            return wr.T @ xb, (xb * jnp.sum(wr, axis=1, keepdims=True)).T @ xb

        return xb @ w_linear.T + constant + shared[:, None], moments

    @staticmethod
    def scatter_from_moments(second: Array, first: Array, mass: Array, shift: Array) -> Array:
        """The scatter around ``shift`` summed over components, from the raw second moment
        ``(D, D)``, sum r x ``(K, D)`` and sum r ``(K,)``."""
        cross = first.T @ shift
        return second - cross - cross.T + (shift * mass[:, None]).T @ shift

    @staticmethod
    def dense(cov, n_components: int, n_features: int) -> np.ndarray:
        cov = np.asarray(cov, dtype=np.float64)
        return np.broadcast_to(
            cov[..., None, :, :], (*cov.shape[:-2], n_components, n_features, n_features)
        ).copy()

    @staticmethod
    def first_components(cov, k: int):
        return cov


class _FactorByLoops:
    """Mixin: :meth:`factor` without LAPACK calls (see ``_linalg``)."""

    @staticmethod
    def factor(cov: Array) -> Array:
        return jnp.swapaxes(lower_inverse_by_rows(cholesky_by_columns(cov)), -1, -2)


class FullByLoops(_FactorByLoops, Full):
    pass


class TiedByLoops(_FactorByLoops, Tied):
    pass
