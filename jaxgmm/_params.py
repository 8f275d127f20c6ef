"""Containers of the core: model parameters and fit results.

All are NamedTuples, hence JAX pytrees of arrays only; the covariance type is never stored here
(it is a static argument of every function), so a batch of parameters is just the same tuple with
a leading axis.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np
from jax import Array

from ._covariance import covariance_unit
from ._programs import program


class GMMParams(NamedTuple):
    """Parameters of a Gaussian mixture with K components in D dimensions.

    Shapes follow scikit-learn's ``GaussianMixture`` attributes:

    ========================= ========== ========= ======== ===========
    field                     full       tied      diag     spherical
    ========================= ========== ========= ======== ===========
    ``weights``               (K,)       (K,)      (K,)     (K,)
    ``means``                 (K, D)     (K, D)    (K, D)   (K, D)
    ``covariances``           (K, D, D)  (D, D)    (K, D)   (K,)
    ``precisions_cholesky``   (K, D, D)  (D, D)    (K, D)   (K,)
    ========================= ========== ========= ======== ===========

    ``precisions_cholesky`` is scikit-learn's factor: an upper-triangular ``U`` with
    ``U @ U.T`` equal to the precision (inverse covariance) for full and tied, and ``1/sqrt`` of the
    variances for diag and spherical. Build consistent parameters with
    :func:`jaxgmm.params_from_covariances` or :func:`jaxgmm.params_from_precisions`.

    ``noise`` is None, or the uniform noise component of a mixture that has one (mclust's,
    ``jaxgmm._noise``): its weight joins ``weights`` in summing to 1.
    """

    weights: Array
    means: Array
    covariances: Array
    precisions_cholesky: Array
    noise: Noise | None = None


class Noise(NamedTuple):
    """mclust's noise component: a uniform density ``exp(log_density)`` (``1 / V``, V the
    volume of the data's region, fixed) with its own ``weight``, re-estimated by EM."""

    weight: Array
    log_density: Array


class RestartOutcome(NamedTuple):
    """What became of each of the ``n_init`` restarts (leading axis ``n_init`` everywhere).

    Attributes
    ----------
    lower_bound : (n_init,)
        Last finite lower bound (mean log-likelihood per sample) of each restart.
    lower_bounds : (n_init, T)
        Lower-bound trace of each restart, NaN after its last iteration.
    n_iter : (n_init,) int
        EM iterations run.
    converged : (n_init,) bool
        The change of the lower bound fell below ``tol``. Never true for a failed restart.
    failed : (n_init,) bool
        The lower bound or the parameters turned non-finite (for instance a covariance that is
        not positive definite); the restart was frozen at its last finite parameters.
    degenerate : (n_init,) bool
        Some component collapsed: its smallest covariance eigenvalue, once ``reg_covar`` is
        removed, is below ``DEGENERATE_RTOL`` times the data's variance in that direction (after
        standardising each feature). Typical of components sitting on repeated values.
    params : GMMParams
        Final parameters of every restart, each with a leading ``n_init`` axis.
    """

    lower_bound: Array
    lower_bounds: Array
    n_iter: Array
    converged: Array
    failed: Array
    degenerate: Array
    params: GMMParams


class FitResult(NamedTuple):
    """Result of :func:`jaxgmm.fit`: the chosen restart, and the outcome of every restart.

    Attributes
    ----------
    params : GMMParams
        Parameters of the chosen restart.
    lower_bound : ()
        Its last lower bound: the mean log-likelihood per sample, computed in the E-step of its
        last iteration (scikit-learn's ``lower_bound_``).
    lower_bounds : (n_iter,)
        Its lower-bound trace, one value per iteration run. Under a JAX transformation (``vmap``,
        ``jit``) the length is ``max_iter``, padded with NaN after ``n_iter``.
    n_iter : () int
    converged : () bool
    best_restart : () int
        Index of the chosen restart in ``restarts``.
    restarts : RestartOutcome
    interrupted : () bool
        A Ctrl-C stopped the fit early: the result is the best so far.
    """

    params: GMMParams
    lower_bound: Array
    lower_bounds: Array
    n_iter: Array
    converged: Array
    best_restart: Array
    restarts: RestartOutcome
    interrupted: Array


def params_from_covariances(weights, means, covariances, *, covariance_type: str) -> GMMParams:
    """Parameters from weights, means and covariances, with the matching precision factor.

    Parameters
    ----------
    weights : (K,) array
    means : (K, D) array
    covariances : array
        In the shapes of ``covariance_type``'s family (full: (K, D, D), diag: (K, D), ...).
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).

    Returns
    -------
    GMMParams
    """
    arrays = (_on_device(a) for a in (weights, means, covariances))
    return _from_covariances(*arrays, unit=covariance_unit(covariance_type), quick=True)


def params_from_precisions(weights, means, precisions, *, covariance_type: str) -> GMMParams:
    """Parameters from weights, means and precisions (inverse covariances), as scikit-learn's
    ``precisions_init``; the covariances are obtained from the factor by triangular solves.

    Parameters
    ----------
    weights : (K,) array
    means : (K, D) array
    precisions : array
        In the shapes of ``covariance_type``'s family, as ``covariances``.
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).

    Returns
    -------
    GMMParams
    """
    arrays = (_on_device(a) for a in (weights, means, precisions))
    return _from_precisions(*arrays, unit=covariance_unit(covariance_type), quick=True)


def _on_device(a) -> Array:
    # device_put, not jnp.asarray, whose conversion compiles an operation on first use
    return a if isinstance(a, jax.Array) else jax.device_put(np.asarray(a))


# One small program each (kept on disk, as the fits'), called with quick=True: run eagerly, the
# factorisation's dozen operations each compiled on first use, 0.76 s in a new process
# (small-2d's 3 full covariances, 2-core VM, 2026-12-06).


@program(static_argnames=("unit",))
def _from_covariances(weights, means, covariances, *, unit) -> GMMParams:
    return GMMParams(weights, means, covariances, unit.factor(covariances))


@program(static_argnames=("unit",))
def _from_precisions(weights, means, precisions, *, unit) -> GMMParams:
    prec_chol = unit.factor_from_precisions(precisions)
    return GMMParams(weights, means, unit.covariances_from_factor(prec_chol), prec_chol)
