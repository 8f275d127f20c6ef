"""mclust's covariance models with closed-form M-steps, beyond the four of scikit-learn.

mclust writes a covariance ``Sigma_k = lambda_k D_k A_k D_k^T`` (volume ``lambda_k``, orientation
``D_k``, shape ``A_k`` with ``det A_k = 1``) and names a model by which of the three are Equal or
Variable across components (I: the identity, for orientation or shape). scikit-learn's four are
VII (spherical), VVI (diag), EEE (tied) and VVV (full); the units here are the other models whose
M-step has a closed form (Celeux & Govaert 1995), each a unit of the family whose algebra it
shares, with every component's parameters stored (equal ones repeated) in that family's shapes:

* EII ``lambda I`` and EEI ``lambda A`` (diagonal A): one volume, and shape, for all;
* EVI ``lambda A_k``: one volume, a diagonal shape per component;
* EEV ``lambda D_k A D_k^T``: one volume and shape, an orientation per component;
* EVV ``lambda C_k`` with ``det C_k = 1``: one volume, the rest per component.

Their M-steps start from each component's scatter around its new mean, ``W_k = n_k S_k``, and
``n = sum_k n_k``. With one volume, ``lambda`` is a sum over components divided by ``n``, so
an empty component (``W_k`` about 0) adds nothing to it.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

from ._diagonal import Diag, Spherical
from ._general import Full, dense_prior_terms
from ._linalg import symmetric


def _scatter_diagonal(scatter: Array, nk: Array, delta: Array) -> Array:
    """``diag W_k (K, D)`` from the squared differences around the shift."""
    return scatter - nk[:, None] * jnp.square(delta)


def _scatter_full(scatter: Array, nk: Array, delta: Array) -> Array:
    """``W_k (K, D, D)`` from the scatter around the shift."""
    return symmetric(scatter - nk[:, None, None] * delta[:, :, None] * delta[:, None, :])


def _diagonal_of(cov: Array) -> Array:
    return jnp.diagonal(cov, axis1=-2, axis2=-1)


def _as_diagonal_matrices(values: Array) -> Array:
    return values[..., None] * jnp.eye(values.shape[-1], dtype=values.dtype)


def _geometric_mean(values: Array) -> Array:
    """``prod(values)^(1/D)`` over the last axis; 0 where a value is not positive (an empty or
    collapsed component, which then adds nothing to a shared volume)."""
    positive = jnp.all(values > 0, axis=-1)
    logs = jnp.log(jnp.where(values > 0, values, 1.0))
    return jnp.where(positive, jnp.exp(jnp.mean(logs, axis=-1)), 0.0)


class _DiagonalMStep(Diag):
    """A diagonal model whose M-step is ``_from_scatters`` of the diagonal scatters ``W_k``."""

    @classmethod
    def from_scatter(cls, scatter: Array, nk: Array, delta: Array) -> Array:
        return cls._from_scatters(_scatter_diagonal(scatter, nk, delta), nk)

    @classmethod
    def project(cls, cov: Array, nk: Array) -> Array:
        return _as_diagonal_matrices(cls._from_scatters(nk[:, None] * _diagonal_of(cov), nk))


class _DenseMStep(Full):
    """A model of (D, D) covariances whose M-step is ``_from_scatters`` of the scatters."""

    @classmethod
    def from_scatter(cls, scatter: Array, nk: Array, delta: Array) -> Array:
        return cls._from_scatters(_scatter_full(scatter, nk, delta), nk)

    @classmethod
    def project(cls, cov: Array, nk: Array) -> Array:
        return cls._from_scatters(nk[:, None, None] * cov, nk)


class EII(Spherical):
    """``lambda I``: one variance, the same for every component and feature."""

    name = "EII"
    plot_style = ("C4", "v")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return 1

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        variance = jnp.sum(w) / (jnp.sum(nk) * w.shape[-1])
        return jnp.broadcast_to(variance, nk.shape)

    @classmethod
    def from_scatter(cls, scatter: Array, nk: Array, delta: Array) -> Array:
        return cls._from_scatters(_scatter_diagonal(scatter, nk, delta), nk)

    @classmethod
    def project(cls, cov: Array, nk: Array) -> Array:
        variance = cls._from_scatters(nk[:, None] * _diagonal_of(cov), nk)
        return variance[:, None, None] * jnp.eye(cov.shape[-1], dtype=cov.dtype)

    # -- mclust's conjugate prior (see ``Full``): one variance, so one inverse gamma, and the
    # means' normal priors add D degrees of freedom each --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # (s^2 + sum_k [tr W_k + c_k |xbar_k|^2]) / (nu + n D + K D + 2)
        n_on = jnp.sum(on)
        d = xbar.shape[-1]
        w = jnp.sum(_scatter_diagonal(scatter, nk, delta))
        pulls = jnp.sum(prior.pull(nk) * jnp.sum(jnp.square(xbar), axis=-1))
        variance = (prior.scale_scalar(n_on) + w + pulls) / (
            prior.dof + jnp.sum(nk) * d + n_on * d + 2
        )
        return jnp.broadcast_to(variance, nk.shape)

    @staticmethod
    def log_prior(means, cov, prior, on):
        d = means.shape[-1]
        n_on = jnp.sum(on)
        pull = prior.shrinkage * jnp.sum(jnp.where(on[:, None], jnp.square(means), 0.0))
        variance = cov[0]
        return -(prior.dof + n_on * d + 2) / 2 * jnp.log(variance) - (
            prior.scale_scalar(n_on) + pull
        ) / (2 * variance)


class EEI(_DiagonalMStep):
    """``lambda A``: one diagonal covariance shared by every component."""

    name = "EEI"
    plot_style = ("C5", "<")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_features

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        return jnp.broadcast_to(jnp.sum(w, axis=0) / jnp.sum(nk), w.shape)

    # -- mclust's conjugate prior (see ``Full``) --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # (s^2 + sum_k [W_kjj + c_k xbar_kj^2]) / (nu + n + K + 2)
        n_on = jnp.sum(on)
        w = jnp.sum(_scatter_diagonal(scatter, nk, delta), axis=0)
        pulls = jnp.sum(prior.pull(nk)[:, None] * jnp.square(xbar), axis=0)
        variances = (prior.scale_scalar(n_on) + w + pulls) / (prior.dof + jnp.sum(nk) + n_on + 2)
        return jnp.broadcast_to(variances, xbar.shape)

    @staticmethod
    def log_prior(means, cov, prior, on):
        n_on = jnp.sum(on)
        pull = prior.shrinkage * jnp.sum(jnp.where(on[:, None], jnp.square(means), 0.0), axis=0)
        variances = cov[0]
        each = -(prior.dof + n_on + 2) / 2 * jnp.log(variances) - (
            prior.scale_scalar(n_on) + pull
        ) / (2 * variances)
        return jnp.sum(each)


class EVI(_DiagonalMStep):
    """``lambda A_k``: one volume, a diagonal shape per component."""

    name = "EVI"
    plot_style = ("C6", ">")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return 1 + n_components * (n_features - 1)

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        # A_k = diag(W_k) / det(diag W_k)^(1/D); lambda = sum_k det(diag W_k)^(1/D) / n
        volume = _geometric_mean(w)
        return (jnp.sum(volume) / jnp.sum(nk)) * w / volume[:, None]

    # -- mclust's conjugate prior (``jaxgmm._prior``; see ``Full``): mclust 6's msevip --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # B_k = s^2 + W_kjj + c_k xbar_kj^2; A_k = B_k / det(B_k)^(1/D);
        # lambda = sum_k det(B_k)^(1/D) / (nu + n + K + 2)
        n_on = jnp.sum(on)
        b = prior.scale_scalar(n_on) + _scatter_diagonal(scatter, nk, delta)
        b = b + prior.pull(nk)[:, None] * jnp.square(xbar)
        volume = _geometric_mean(b)
        lam = jnp.sum(jnp.where(on, volume, 0.0)) / (prior.dof + jnp.sum(nk) + n_on + 2)
        return lam * b / volume[:, None]

    @staticmethod
    def log_prior(means, cov, prior, on):
        # the function whose maximiser, with the likelihood, is the step above:
        # -D (nu + K + 2)/2 log lambda - sum_kj (s^2 + kappa mu_kj^2) / (2 lambda a_kj)
        d = means.shape[-1]
        n_on = jnp.sum(on)
        log_volume = jnp.sum(jnp.where(on, jnp.mean(jnp.log(cov), axis=1), 0.0)) / n_on
        spread = (prior.scale_scalar(n_on) + prior.shrinkage * jnp.square(means)) / (2 * cov)
        return -d * (prior.dof + n_on + 2) / 2 * log_volume - jnp.sum(
            jnp.where(on[:, None], spread, 0.0)
        )


class EVV(_DenseMStep):
    """``lambda C_k`` with ``det C_k = 1``: one volume, shape and orientation per component."""

    name = "EVV"
    plot_style = ("C8", "h")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return 1 + n_components * (n_features * (n_features + 1) // 2 - 1)

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        # C_k = W_k / det(W_k)^(1/D); lambda = sum_k det(W_k)^(1/D) / n
        chol = jnp.linalg.cholesky(w)
        volume = _geometric_mean(jnp.square(_diagonal_of(chol)))
        volume = jnp.where(jnp.all(jnp.isfinite(chol), axis=(-2, -1)), volume, 0.0)
        return (jnp.sum(volume) / jnp.sum(nk)) * w / volume[:, None, None]


class EEV(_DenseMStep):
    """``lambda D_k A D_k^T``: one volume and shape, an orientation per component."""

    name = "EEV"
    plot_style = ("C7", "p")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_features + n_components * n_features * (n_features - 1) // 2

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        # W_k = D_k Omega_k D_k^T (eigenvalues in the same order for every k);
        # A = sum_k Omega_k / det(sum_k Omega_k)^(1/D), lambda = det(sum_k Omega_k)^(1/D) / n
        eigenvalues, vectors = jnp.linalg.eigh(w)
        total = jnp.sum(eigenvalues, axis=0)
        scaled = total / jnp.sum(nk)  # lambda A
        return symmetric(jnp.einsum("kij,j,klj->kil", vectors, scaled, vectors))

    # -- mclust's conjugate prior (``jaxgmm._prior``; see ``Full``): mclust 6's mseevp --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # the eigenvalues of B_k = Lambda + W_k + c_k xbar_k xbar_k^T summed over the
        # components switched on, over nu + D + 2 + n
        n_on = jnp.sum(on)
        pulls = prior.pull(nk)[:, None, None] * xbar[:, :, None] * xbar[:, None, :]
        b = symmetric(prior.scale_matrix(n_on) + _scatter_full(scatter, nk, delta) + pulls)
        eigenvalues, vectors = jnp.linalg.eigh(b)
        total = jnp.sum(jnp.where(on[:, None], eigenvalues, 0.0), axis=0)
        scaled = total / (prior.dof + xbar.shape[-1] + 2 + jnp.sum(nk))
        return symmetric(jnp.einsum("kij,j,klj->kil", vectors, scaled, vectors))

    @staticmethod
    def log_prior(means, cov, prior, on):
        # the function whose maximiser, with the likelihood, is the step above:
        # -D (nu + D + 2)/2 log lambda - sum_k tr((Lambda + kappa mu_k mu_k^T) S_k^-1) / 2
        d = means.shape[-1]
        n_on = jnp.sum(on)
        log_det, spread, pull = dense_prior_terms(means, cov, prior.scale_matrix(n_on))
        log_volume = jnp.sum(jnp.where(on, log_det, 0.0)) / (n_on * d)
        pull = prior.shrinkage * pull
        return (
            -d * (prior.dof + d + 2) / 2 * log_volume
            - jnp.sum(jnp.where(on, spread + pull, 0.0)) / 2
        )
