"""mclust's conjugate prior (``priorControl()``, Fraley & Raftery 2007): MAP estimation by EM.

The prior is mclust's ``defaultPrior``: on each component's mean a normal centred on the data's
mean, with covariance ``Sigma_k / kappa`` (shrinkage ``kappa = 0.01``); on the covariances an
inverse Wishart (dense models) or inverse gamma (diagonal and spherical models) with ``nu = D + 2``
degrees of freedom and scale ``Lambda = var(X) / K^(2/D)`` (dense), ``s^2 = mean_j var(X_j) /
K^(2/D)`` (diagonal and spherical), ``var`` with ``N - 1`` denominators and K the number of
components of the model. No prior on the weights. The M-step then adds pseudo-statistics: each
mean is pulled towards the prior mean, ``mu_k = (n_k xbar_k + kappa mu_P) / (n_k + kappa)``, and
each covariance gets the prior scale and ``c_k (xbar_k - mu_P)(xbar_k - mu_P)^T``,
``c_k = kappa n_k / (kappa + n_k)``, added to its scatter, over a denominator that counts the
prior's degrees of freedom (each unit's ``map_covariances``). EM then climbs the log posterior,
log-likelihood plus log prior (each unit's ``log_prior``), which is the lower bound it reports
and never decreases; BIC and the other criteria use the log-likelihood at the MAP estimate, as
mclust's.

The engine works on data centred on their weighted mean, where the default prior's mean is 0.
Models with a prior: all but VEE, EVE, VVE and EVV (mclust gives those none). Where mclust 6's
EM departs from the posterior's mode, jaxgmm takes the mode: mclust's EII leaves the prior's scale
out of its variance, its EEI does not pull the means, and its EEI and EVI count no degrees of
freedom for the means' priors (its M-step functions do). For VEI, EVI, EEV and VEV, whose prior
mclust defines by its M-step, ``log_prior`` is the function whose maximiser, with the
likelihood, is that step.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax.numpy as jnp
from jax import Array

from ._covariance import has_prior

DEFAULT_SHRINKAGE = 0.01  # mclust's defaultPrior


class Prior(NamedTuple):
    """The prior's numbers (a pytree, traced: a new data set compiles nothing). ``mean`` is the
    means' prior mean ``(D,)``; ``covariance`` the data's ``(D, D)`` covariance (``N - 1``
    denominators), the scale before its factor ``K^(-2/D)``; ``dof`` is ``nu``; ``shrinkage``
    is ``kappa``."""

    shrinkage: Any
    mean: Any
    dof: Any
    covariance: Any

    def scale_matrix(self, n_on: Array) -> Array:
        """``Lambda`` of the dense models, for a model of ``n_on`` components."""
        d = self.covariance.shape[-1]
        return self.covariance * n_on ** (-2.0 / d)

    def scale_scalar(self, n_on: Array) -> Array:
        """``s^2`` of the diagonal and spherical models, for ``n_on`` components."""
        d = self.covariance.shape[-1]
        return jnp.mean(jnp.diagonal(self.covariance)) * n_on ** (-2.0 / d)

    def pull(self, nk: Array) -> Array:
        """``c_k = kappa n_k / (kappa + n_k)``, the weight of the mean's pull in the scatter."""
        return self.shrinkage * nk / (self.shrinkage + nk)


def default_prior(X, sample_weight=None) -> Prior:
    """mclust's ``defaultPrior`` for data ``X``, in the data's dtype.

    Parameters
    ----------
    X : (N, D) array
    sample_weight : (N,) array, optional
        Weights count as repeated rows.

    Returns
    -------
    Prior
    """
    X = jnp.asarray(X)
    dtype = X.dtype
    w = jnp.ones(X.shape[0], dtype) if sample_weight is None else jnp.asarray(sample_weight, dtype)
    mean = (w @ X) / jnp.sum(w)
    centred = X - mean
    covariance = (centred * w[:, None]).T @ centred / (jnp.sum(w) - 1)
    return Prior(
        shrinkage=jnp.asarray(DEFAULT_SHRINKAGE, dtype),
        mean=mean,
        dof=jnp.asarray(X.shape[1] + 2, dtype),
        covariance=(covariance + covariance.T) / 2,
    )


def check_prior(prior, unit):
    """None, or "default" (the one prior there is for now), for a unit that has one."""
    if prior is None:
        return None
    if prior != "default":
        raise ValueError(f'prior must be None or "default" (mclust\'s defaultPrior), got {prior!r}')
    if not has_prior(unit):
        raise ValueError(
            f"the {unit.name} model has no prior: mclust's default prior exists for every model "
            "but VEE, EVE, VVE and EVV"
        )
    return prior
