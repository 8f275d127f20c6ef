"""Online fitting from mini-batches read once: stochastic approximation of the sufficient
statistics, one mechanism for both estimators' ``partial_fit``.

Both EM's M-step and the variational posterior are functions of per-row averages of the
sufficient statistics (mass, first and second moments around a fixed centre). After each
mini-batch, the running averages move towards the batch's (computed by the engine's pass, in the
batch's E-step under the current model):

    s <- (1 - rho_t) s + rho_t s_batch,      rho_t = (t + learning_offset) ** -learning_decay,

and the model is recomputed from ``s``. For ``GaussianMixture`` this is online EM (Cappe &
Moulines 2009); for ``BayesianGaussianMixture``, whose posterior's natural parameters are the
prior's plus ``N`` times the statistics, it is stochastic variational inference with natural
gradient steps (Hoffman et al. 2013), ``N`` the data's size (``total_samples``), or the rows
seen so far. With ``learning_decay`` in (0.5, 1] the steps satisfy Robbins-Monro's conditions.

The statistics are kept around the first batch's mean (``centre``), so that float32 keeps its
digits on data far from the origin, as the engine's centring does.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array

from . import _variational
from ._blocks import Blocks, default_block_size
from ._em import _tiny, finalize
from ._engine import pass_statistics
from ._params import GMMParams
from ._programs import program
from ._statistics import Exact, Statistics

TYPES = _variational.COVARIANCE_TYPES  # scikit-learn's: mclust's iterative M-steps are not sums


class Running(NamedTuple):
    """Per-row averages of the statistics around ``centre``: ``mass`` (K,), ``first`` (K, D),
    ``scatter`` (the covariance model's shape); ``steps`` updates made and ``rows`` seen."""

    centre: np.ndarray
    mass: np.ndarray
    first: np.ndarray
    scatter: np.ndarray
    steps: int
    rows: float


def step_size(steps: int, learning_offset: float, learning_decay: float) -> float:
    """``rho_t``; 1 for the first batch, which sets the statistics."""
    return 1.0 if steps == 0 else float((steps + learning_offset) ** -learning_decay)


def _around(stats: Statistics, shift: Array, unit) -> tuple[Array, Array, Array]:
    """Statistics around the shift ``shift (K, D)`` moved to around the origin (the centre)."""
    f, d = stats.first, shift
    moved = (
        f[:, :, None] * d[:, None, :]
        + d[:, :, None] * f[:, None, :]
        + stats.mass[:, None, None] * d[:, :, None] * d[:, None, :]
    )
    return stats.mass, f + stats.mass[:, None] * d, stats.scatter + unit.scatter_of_dense(moved)


def gaussians(mass, first, scatter, previous: GMMParams, *, unit, reg_covar) -> GMMParams:
    """EM's M-step from the running statistics (around the origin): weights, means and
    covariances (``reg_covar`` included); an empty component keeps ``previous``'s."""
    stats = Statistics(mass, first, scatter, jnp.zeros((), mass.dtype), jnp.ones((), mass.dtype))
    return finalize(
        stats,
        jnp.zeros_like(first),
        unit=unit,
        reg_covar=reg_covar,
        unit_weight=1.0,
        fallback_means=previous.means,
        fallback_cov=previous.covariances,
        previous_weights=None,
    )


@program(static_argnames=("unit", "blocks", "weight_type"))
def update(statistics, params, X, rho, reg_covar, total, prior, *, unit, blocks, weight_type=None):
    """One mini-batch ``X`` (centred) under the model's E-step
    parameters ``params`` (in the same frame): the running ``statistics`` (mass, first,
    scatter) moved by ``rho`` towards the batch's, the new model (EM's
    parameters, or with ``weight_type`` the variational posterior, ``total`` rows), and the
    batch's mean log-likelihood (its variational log normaliser)."""
    unit = blocks.factoring(unit)
    batched = jax.tree_util.tree_map(lambda a: a[None], params)
    stats = pass_statistics(X, None, batched, None, unit=unit, form=Exact, blocks=blocks)
    stats = jax.tree_util.tree_map(lambda a: a[0], stats)
    rows = stats.weight
    batch = [a / rows for a in _around(stats, params.means, unit)]
    mass, first, scatter = (
        (1.0 - rho) * old + rho * new for old, new in zip(statistics, batch, strict=True)
    )
    model = gaussians(mass, first, scatter, params, unit=unit, reg_covar=reg_covar)
    if weight_type is not None:
        nk = total * (mass + _tiny(mass.dtype))
        model = _variational.posterior(
            nk, model.means, model.covariances, prior, unit=unit, weight_type=weight_type
        )
    return (mass, first, scatter), model, stats.log_lik / rows


def online_update(
    running: Running | None,
    params: GMMParams,
    X,
    *,
    unit,
    reg_covar: float,
    learning_offset: float,
    learning_decay: float,
    weight_type: str | None = None,
    prior: _variational.Prior | None = None,
    total_samples: float | None = None,
):
    """Fold the mini-batch ``X`` (a checked array) into ``running`` (None: start from this
    batch, around its mean) under the current model's E-step parameters ``params`` (the data's
    frame). Returns the new :class:`Running`, the model (``GMMParams`` or a variational
    ``Posterior``, in the data's frame) and the batch's mean log-likelihood."""
    X = jnp.asarray(X)
    n_samples, n_features = X.shape
    dtype = X.dtype
    if running is None:
        centre = np.asarray(jnp.mean(X, axis=0))
        n_components = params.means.shape[0]
        dense = jax.ShapeDtypeStruct((n_components, n_features, n_features), dtype)
        scatter = jax.eval_shape(unit.scatter_of_dense, dense)
        zeros = [(n_components,), (n_components, n_features), scatter.shape]
        running = Running(centre, *(np.zeros(shape, dtype) for shape in zeros), 0, 0.0)
    centre = jnp.asarray(running.centre, dtype)
    rho = step_size(running.steps, learning_offset, learning_decay)
    rows = running.rows + n_samples
    frame = GMMParams(
        jnp.asarray(params.weights, dtype),
        jnp.asarray(params.means, dtype) - centre,
        jnp.asarray(params.covariances, dtype),
        jnp.asarray(params.precisions_cholesky, dtype),
    )
    if prior is not None:
        prior = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), prior)
        prior = prior._replace(mean=prior.mean - centre)
    size = default_block_size(n_samples, params.means.shape[0], n_features)
    (mass, first, scatter), model, log_lik = update(
        (running.mass, running.first, running.scatter),
        frame,
        X - centre,
        jnp.asarray(rho, dtype),
        jnp.asarray(reg_covar, dtype),
        jnp.asarray(total_samples or rows, dtype),
        prior,
        unit=unit,
        blocks=Blocks(int(size)),
        weight_type=weight_type,
    )
    model = jax.device_get(model)
    model = model._replace(means=model.means + np.asarray(centre))
    new = Running(
        running.centre, *(np.asarray(a) for a in (mass, first, scatter)), running.steps + 1, rows
    )
    return new, model, float(log_lik)
