"""Axis-aligned covariance models: a variance per component and feature (diag), or one variance
per component (spherical)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array

from ._base import Model
from ._linalg import check_positive, inverse_std


class Diag(Model):
    """One variance per component and feature."""

    name = "diag"
    shared = False
    correlated = False
    plot_style = ("C2", "^")
    diagonal_scatter = True
    expanded_max_features = None  # the expanded form's features are the D squares: no limit

    @staticmethod
    def shape(n_components: int, n_features: int) -> tuple[int, ...]:
        return (n_components, n_features)

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components * n_features

    @staticmethod
    def poorly_determined(n_samples: int, n_components: int, n_features: int) -> bool:
        return False  # variances need two samples per component, not D of them

    # -- factors and densities --

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
    def log_det_factor(prec_chol: Array, n_features: int) -> Array:
        return jnp.sum(jnp.log(prec_chol), axis=-1)

    @staticmethod
    def squared_mahalanobis(diff: Array, prec_chol: Array) -> Array:
        return jnp.sum(jnp.square(diff * prec_chol[:, None, :]), axis=-1)

    # -- M-step --

    @staticmethod
    def scatter(diff: Array, wr: Array) -> Array:
        return jnp.einsum("kn,knd->kd", wr, jnp.square(diff))

    @staticmethod
    def from_scatter(scatter: Array, nk: Array, delta: Array) -> Array:
        return scatter / nk[:, None] - jnp.square(delta)

    # -- mclust's conjugate prior (see ``Full``) --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # (s^2 + W_kjj + c_k xbar_kj^2) / (nu + n_k + 3)
        n_on = jnp.sum(on)
        w = scatter - nk[:, None] * jnp.square(delta)
        total = prior.scale_scalar(n_on) + w + prior.pull(nk)[:, None] * jnp.square(xbar)
        return total / (prior.dof + nk + 3)[:, None]

    @staticmethod
    def log_prior(means, cov, prior, on):
        # sum_kj [-(nu + 3)/2 log s_kj - (s^2 + kappa mu_kj^2) / (2 s_kj)]
        s2 = prior.scale_scalar(jnp.sum(on))
        each = -(prior.dof + 3) / 2 * jnp.log(cov) - (s2 + prior.shrinkage * jnp.square(means)) / (
            2 * cov
        )
        return jnp.sum(jnp.where(on[:, None], each, 0.0))

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
    def matrices(cov: Array, n_components: int, n_features: int) -> Array:
        return cov[:, :, None] * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    @staticmethod
    def scatter_of_dense(scatter: Array) -> Array:
        return jnp.diagonal(scatter, axis1=-2, axis2=-1)

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return jnp.broadcast_to(jnp.diagonal(data_cov), (n_components, data_cov.shape[0]))

    @staticmethod
    def project(cov: Array, nk: Array) -> Array:
        return cov * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    # -- diagnostics --

    @staticmethod
    def feature_variances(cov: Array) -> Array:
        return cov

    @staticmethod
    def standardized(cov: Array, data_var: Array) -> Array:
        inv_std = inverse_std(data_var)
        return cov * jnp.square(inv_std) + (inv_std == 0)

    # -- expanded form --

    @staticmethod
    def n_quadratic_features(n_features: int) -> int:
        return n_features

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

    # -- on the host, in NumPy --

    @staticmethod
    def dense(cov, n_components: int, n_features: int) -> np.ndarray:
        return np.asarray(cov, np.float64)[..., None, :] * np.eye(n_features)

    @staticmethod
    def first_components(cov, k: int):
        return cov[..., :k, :]

    @staticmethod
    def from_dense(cov):
        return cov.diagonal(axis1=-2, axis2=-1)

    @staticmethod
    def precisions(prec_chol) -> np.ndarray:
        return np.square(np.asarray(prec_chol))

    @staticmethod
    def from_precisions(prec) -> tuple[np.ndarray, np.ndarray]:
        prec = np.asarray(prec, np.float64)
        return 1.0 / prec, np.sqrt(prec)

    @staticmethod
    def check(cov, name: str) -> None:
        check_positive(cov, name)


class Spherical(Diag):
    """One variance per component, the same for every feature."""

    name = "spherical"
    plot_style = ("C3", "D")
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
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # (s^2 + tr W_k + c_k |xbar_k|^2) / (nu + n_k D + D + 2)
        n_on = jnp.sum(on)
        d = xbar.shape[-1]
        w = jnp.sum(scatter - nk[:, None] * jnp.square(delta), axis=-1)
        total = prior.scale_scalar(n_on) + w + prior.pull(nk) * jnp.sum(jnp.square(xbar), -1)
        return total / (prior.dof + nk * d + d + 2)

    @staticmethod
    def log_prior(means, cov, prior, on):
        # sum_k [-(nu + D + 2)/2 log s_k - (s^2 + kappa |mu_k|^2) / (2 s_k)]
        d = means.shape[-1]
        s2 = prior.scale_scalar(jnp.sum(on))
        pull = prior.shrinkage * jnp.sum(jnp.square(means), axis=-1)
        each = -(prior.dof + d + 2) / 2 * jnp.log(cov) - (s2 + pull) / (2 * cov)
        return jnp.sum(jnp.where(on, each, 0.0))

    @staticmethod
    def matrices(cov: Array, n_components: int, n_features: int) -> Array:
        return cov[:, None, None] * jnp.eye(n_features, dtype=cov.dtype)

    @staticmethod
    def pooled(data_cov: Array, n_components: int) -> Array:
        return jnp.broadcast_to(jnp.mean(jnp.diagonal(data_cov)), (n_components,))

    @staticmethod
    def project(cov: Array, nk: Array) -> Array:
        variance = jnp.mean(jnp.diagonal(cov, axis1=-2, axis2=-1), axis=-1)
        return variance[:, None, None] * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    @staticmethod
    def feature_variances(cov: Array) -> Array:
        return cov[:, None]

    @staticmethod
    def standardized(cov: Array, data_var: Array) -> Array:
        mean_var = jnp.mean(data_var)
        return jnp.where(mean_var > 0, cov / jnp.where(mean_var > 0, mean_var, 1.0), 1.0)

    @staticmethod
    def dense(cov, n_components: int, n_features: int) -> np.ndarray:
        return np.asarray(cov, np.float64)[..., None, None] * np.eye(n_features)

    @staticmethod
    def first_components(cov, k: int):
        return cov[..., :k]

    @staticmethod
    def from_dense(cov):
        return cov.diagonal(axis1=-2, axis2=-1)[..., 0]
