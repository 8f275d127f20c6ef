"""The EM engine: a batch of restarts (leading axis ``n_init`` everywhere) carried from a start
to a result by pure, jitted pieces. ``fit``, ``fit_stream`` and ``select`` all drive it:

``start``    centre the data, initialise every restart (``vmap`` over keys), the first state;
``advance``  a chunk of EM iterations of every restart in one ``lax.scan``; a restart that
             converged or failed is frozen, and an iteration is skipped once all are;
``update``   the M-step of every restart from its statistics, and the bookkeeping (``advance``
             uses it after each pass; ``fit_stream`` after each pass over data on disk);
``outcome``  per-restart parameters in the data's frame, and which restarts are degenerate;
``result``   the :class:`FitResult`: the best restart chosen, every restart's outcome kept.

The settings of the iterations travel as one :class:`EMSettings`; the host loop that drives the
chunks (progress, Ctrl-C, checkpoints) is ``jaxgmm._host_loop``.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ._blocks import blockwise_sum
from ._em import finalize
from ._init import initial_params
from ._params import FitResult, GMMParams, RestartOutcome
from ._statistics import STATISTICS_FORMS

# A component is degenerate when its smallest covariance eigenvalue, without reg_covar and in
# units of the data's per-feature variance, is below this: far below any real cluster's spread,
# far above float32 rounding.
DEGENERATE_RTOL = 1e-5

FAILURE_ADVICE = (
    "every one of the {n_init} restarts failed: the lower bound or a covariance became "
    "non-finite (a component collapsed onto too few distinct points). Try fewer components, "
    "a larger reg_covar, scaling the data, or float64 data."
)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["reg_covar", "tol", "max_iter"],
    meta_fields=["statistics"],
)
@dataclasses.dataclass(frozen=True)
class EMSettings:
    """What the iterations need besides the data and the state, as one object.

    The numbers are traced (a new ``tol`` or ``reg_covar`` compiles nothing); ``statistics``,
    the name of a form of ``STATISTICS_FORMS`` (or "auto" before the driver resolves it), is
    static.
    """

    reg_covar: Any = 1e-6
    tol: Any = 1e-3
    max_iter: Any = 100
    statistics: str = "auto"

    def with_form(self, form) -> EMSettings:
        return dataclasses.replace(self, statistics=form.name)


class State(NamedTuple):
    """Per-restart EM state, each field with a leading ``n_init`` axis."""

    params: GMMParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    failed: Array


def initial_state(params: GMMParams) -> State:
    """The state before the first iteration, from batched parameters."""
    n_init = params.weights.shape[0]
    dtype = params.means.dtype
    return State(
        params=params,
        lower_bound=jnp.full((n_init,), -jnp.inf, dtype),
        n_iter=jnp.zeros((n_init,), jnp.int32),
        converged=jnp.zeros((n_init,), bool),
        failed=jnp.zeros((n_init,), bool),
    )


def batched(params: GMMParams, n_init: int) -> GMMParams:
    """Parameters with a leading ``n_init`` axis (given once for all restarts, or per restart)."""
    if params.weights.ndim == 2:
        return params
    return jax.tree_util.tree_map(lambda a: jnp.broadcast_to(a, (n_init, *a.shape)), params)


def _centre(X: Array, sample_weight: Array | None) -> tuple[Array, Array]:
    """Subtract the (weighted) mean, computed relative to the first row so that the sum itself
    does not lose the digits an offset far from the origin would take."""
    anchor = X[0]
    offsets = X - anchor
    if sample_weight is None:
        centre = anchor + jnp.mean(offsets, axis=0)
    else:
        centre = anchor + (sample_weight @ offsets) / jnp.sum(sample_weight)
    return X - centre, centre


@partial(jax.jit, static_argnames=("mesh",))
def prepare(X, sample_weight, mesh=None):
    """The centred data and the centre."""
    Xc, centre = _centre(X, sample_weight)
    if mesh is not None:  # keep the centred copy sharded as the data
        Xc = lax.with_sharding_constraint(Xc, NamedSharding(mesh, P(mesh.axis_names[0])))
    return Xc, centre


def _initialize_centred(
    key, Xc, sample_weight, settings, layout, *, unit, n_components, n_init, init, blocks
) -> GMMParams:
    """Initial parameters of every restart (leading axis ``n_init``) on centred data.

    Restart i gets the key ``fold_in(key, i)`` whatever ``n_init`` is, so more restarts with the
    same key only add candidates. ``layout``, for a padded grid of models, is None or a pair of
    ``(n_init,)`` int arrays: the restart number whose key each batch entry uses, and how many of
    its leading components are active (the others are switched off)."""

    def one(k, active):
        return initial_params(
            k,
            Xc,
            n_components,
            init,
            unit=unit,
            reg_covar=settings.reg_covar,
            sample_weight=sample_weight,
            n_active=active,
            blocks=blocks,
        )

    fold = partial(jax.random.fold_in, key)
    if layout is None:
        return jax.vmap(lambda i: one(fold(i), None))(jnp.arange(n_init))
    restart_ids, n_active = layout
    return jax.vmap(lambda i, active: one(fold(i), active))(restart_ids, n_active)


_START_STATIC = ("unit", "n_components", "n_init", "init", "blocks")


@partial(jax.jit, static_argnames=_START_STATIC)
def initialize(key, X, sample_weight, settings, layout, **static) -> GMMParams:
    """The initial parameters of every restart, in the data's frame."""
    Xc, centre = _centre(X, sample_weight)
    params = _initialize_centred(key, Xc, sample_weight, settings, layout, **static)
    return params._replace(means=params.means + centre)


@partial(jax.jit, static_argnames=_START_STATIC)
def start(key, X, sample_weight, settings, init_params, layout, **static):
    """Centre the data and initialise every restart: ``(Xc, centre, state)``. ``init`` is a
    method name, or "given" for ``init_params`` (in the data's frame, for all restarts or one
    per restart)."""
    Xc, centre = prepare(X, sample_weight, mesh=static["blocks"].mesh)
    if static["init"] == "given":
        params = batched(init_params, static["n_init"])
        params = params._replace(means=params.means - centre)
    else:
        params = _initialize_centred(key, Xc, sample_weight, settings, layout, **static)
    return Xc, centre, initial_state(params)


def restart_statistics(xb, wb, rows, params, unit, form):
    """One block's statistics for every restart (leading axis of ``params``)."""
    return jax.vmap(lambda p: form.block(xb, wb, p, unit))(params)


def finish_statistics(stats, params, unit, form):
    """Every restart's statistics around its shift (its current means), from their sums."""
    return jax.vmap(partial(form.finish, unit=unit))(stats, params.means)


def active(state: State, max_iter) -> Array:
    return ~(state.converged | state.failed) & (state.n_iter < max_iter)


def _per_restart(mask: Array, leaf: Array) -> Array:
    return mask.reshape(mask.shape + (1,) * (leaf.ndim - 1))


def _all_finite(params: GMMParams) -> Array:
    leaves = jax.tree_util.tree_leaves(params)
    return jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]),
        axis=0,
    )


def update(state: State, stats, settings: EMSettings, *, unit, mean_weight):
    """The M-step of every active restart from its statistics, and the bookkeeping: a restart
    whose lower bound or new parameters are not finite is frozen and marked failed; one whose
    lower bound moved by less than ``tol`` has converged. Returns the new state and this
    iteration's lower bounds (NaN where a restart was not active)."""

    def m_step(stats, params):
        return finalize(
            stats,
            params.means,
            unit=unit,
            reg_covar=settings.reg_covar,
            mean_weight=mean_weight,
            fallback_means=params.means,
            fallback_cov=params.covariances,
            previous_weights=params.weights,
        )

    running = active(state, settings.max_iter)
    new_params = jax.vmap(m_step)(stats, state.params)
    lower_bound = stats.log_lik / stats.weight
    ok = jnp.isfinite(lower_bound) & _all_finite(new_params)
    keep = running & ok
    params = jax.tree_util.tree_map(
        lambda new, old: jnp.where(_per_restart(keep, new), new, old), new_params, state.params
    )
    new_state = State(
        params=params,
        lower_bound=jnp.where(running & jnp.isfinite(lower_bound), lower_bound, state.lower_bound),
        n_iter=state.n_iter + running.astype(jnp.int32),
        converged=state.converged
        | (keep & (jnp.abs(lower_bound - state.lower_bound) < settings.tol)),
        failed=state.failed | (running & ~ok),
    )
    return new_state, jnp.where(running, lower_bound, jnp.nan)


@partial(jax.jit, static_argnames=("unit", "blocks", "n_steps"))
def advance(state, X, sample_weight, settings, *, unit, blocks, n_steps):
    """``n_steps`` EM iterations of every active restart, in the form ``settings.statistics``;
    returns the new state, the lower bounds ``(n_steps, n_init)`` (NaN where a restart was not
    active) and whether all are done.

    One iteration is one pass over the data in ``blocks`` (on each device), every restart's
    statistics accumulated from the same block, then the M-step of each restart."""
    unit = blocks.factoring(unit)
    form = STATISTICS_FORMS[settings.statistics]
    mean_weight = 1.0 if sample_weight is None else jnp.mean(sample_weight)

    def iterate(state):
        stats = blockwise_sum(
            partial(restart_statistics, unit=unit, form=form),
            X,
            sample_weight,
            blocks,
            state.params,
        )
        stats = finish_statistics(stats, state.params, unit, form)
        return update(state, stats, settings, unit=unit, mean_weight=mean_weight)

    def skip(state):
        return state, jnp.full(state.lower_bound.shape, jnp.nan, state.lower_bound.dtype)

    def body(state, _):
        return lax.cond(jnp.any(active(state, settings.max_iter)), iterate, skip, state)

    state, trace = lax.scan(body, state, None, length=n_steps)
    return state, trace, ~jnp.any(active(state, settings.max_iter))


@jax.jit
def data_variance(Xc, sample_weight):
    """The (weighted) variance of each feature."""
    w = jnp.ones(Xc.shape[0], Xc.dtype) if sample_weight is None else sample_weight
    mean = (w @ Xc) / jnp.sum(w)
    # a fused reduction, not a matrix product: that would hold (X - mean)^2, a copy of X
    return jnp.sum(w[:, None] * jnp.square(Xc - mean), axis=0) / jnp.sum(w)


@partial(jax.jit, static_argnames=("unit",))
def outcome(state, data_var, centre, settings, *, unit):
    """Per-restart parameters in the data's frame, and which restarts are degenerate, given
    the data's per-feature variance."""

    def smallest(params):
        empirical = unit.add_to_diagonal(params.covariances, -settings.reg_covar)
        per_component = unit.smallest_standardized_variance(empirical, data_var)
        # switched-off components (weight exactly 0) hold placeholders, not fitted values
        return jnp.where(params.weights > 0, per_component, jnp.inf)

    degenerate = jnp.any(jax.vmap(smallest)(state.params) < DEGENERATE_RTOL, axis=1)
    params = state.params._replace(
        means=state.params.means + centre[None, None, :],
        covariances=unit.symmetrize(state.params.covariances),
    )
    return params, degenerate


def best_restart(lower_bound, failed, degenerate, prefer_nondegenerate: bool = True) -> Array:
    """Index of the restart with the highest final lower bound among those that did not fail,
    and, when ``prefer_nondegenerate`` and any exists, among those that are not degenerate."""
    candidates = ~failed
    if prefer_nondegenerate:
        preferred = candidates & ~degenerate
        candidates = jnp.where(jnp.any(preferred), preferred, candidates)
    return jnp.argmax(jnp.where(candidates, lower_bound, -jnp.inf))


_choose = jax.jit(best_restart, static_argnames=("prefer_nondegenerate",))


def result(
    state,
    traces,
    params,
    degenerate,
    *,
    traced: bool,
    prefer_nondegenerate: bool,
    interrupted: bool = False,
) -> FitResult:
    """The :class:`FitResult` of a finished batch of restarts: the best restart chosen, every
    restart's outcome kept. Outside transformations the traces (``(T, n_init)``, NumPy) are
    trimmed per restart, and an error is raised when every restart failed."""
    best = _choose(
        state.lower_bound, state.failed, degenerate, prefer_nondegenerate=bool(prefer_nondegenerate)
    )
    if traced:
        all_traces = traces.T
        best_trace = all_traces[best]
    else:
        if bool(np.all(np.asarray(state.failed))):
            raise ValueError(FAILURE_ADVICE.format(n_init=len(np.asarray(state.failed))))
        # Assembled in NumPy and moved with device_put: traces differ in length from fit to
        # fit, and any JAX op on them (jnp.asarray included) would compile once per length.
        all_traces = np.ascontiguousarray(np.asarray(traces).T)
        best_index = int(best)
        n_iter = int(np.asarray(state.n_iter)[best_index])
        best_trace = jax.device_put(all_traces[best_index, :n_iter])
        all_traces = jax.device_put(all_traces)

    restarts = RestartOutcome(
        lower_bound=state.lower_bound,
        lower_bounds=all_traces,
        n_iter=state.n_iter,
        converged=state.converged,
        failed=state.failed,
        degenerate=degenerate,
        params=params,
    )
    return FitResult(
        params=jax.tree_util.tree_map(lambda a: a[best], params),
        lower_bound=state.lower_bound[best],
        lower_bounds=best_trace,
        n_iter=state.n_iter[best],
        converged=state.converged[best],
        best_restart=best,
        restarts=restarts,
        interrupted=jnp.asarray(interrupted),
    )
