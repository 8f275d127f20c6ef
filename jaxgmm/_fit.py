"""``fit``: EM for ``n_init`` restarts at once: ``vmap`` over restarts, ``lax.scan`` over steps.

The work is split into three jitted pieces so that the host can look between chunks of
iterations (to stop early, and later to report progress or write checkpoints):

``_start``   centre the data, initialise every restart (``vmap`` over split keys);
``_advance`` run a fixed number of EM iterations of every restart in one ``lax.scan``; a restart
             that converged or failed is frozen, and the iteration is skipped once all are;
``_finish``  flag degenerate restarts, choose the best, shift the means back.

Under a JAX transformation (``fit`` inside ``jit`` or ``vmap``) nothing can be looked at on the
host, so the same pieces run once with a scan of ``max_iter`` iterations.
"""

from __future__ import annotations

import signal
import threading
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import _checkpoint
from ._blocks import Blocks, blockwise_sum, default_block_size
from ._covariance import covariance_unit
from ._em import block_statistics, centre_statistics, finalize
from ._init import INIT_METHODS, initial_params
from ._params import FitResult, GMMParams, RestartOutcome
from ._validation import (
    as_data,
    as_sample_weight,
    check_float,
    check_int,
    check_params,
    is_traced,
)

# A component is degenerate when its smallest covariance eigenvalue, without reg_covar and in
# units of the data's per-feature variance, is below this: far below any real cluster's spread,
# far above float32 rounding.
DEGENERATE_RTOL = 1e-5

CHUNK_ITERATIONS = 10


class Progress(NamedTuple):
    """What a fit's ``callback`` is told after each compiled chunk of iterations."""

    iteration: int  # EM iterations run so far by the longest-running restart
    max_iter: int
    running: int  # restarts neither converged nor failed
    n_init: int
    best_lower_bound: float  # highest lower bound so far among restarts that did not fail


_FAILURE_ADVICE = (
    "every one of the {n_init} restarts failed: the lower bound or a covariance became "
    "non-finite (a component collapsed onto too few distinct points). Try fewer components, "
    "a larger reg_covar, scaling the data, or float64 data."
)


class _State(NamedTuple):
    """Per-restart EM state, each field with a leading ``n_init`` axis."""

    params: GMMParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    failed: Array


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


def _per_restart(mask: Array, leaf: Array) -> Array:
    return mask.reshape(mask.shape + (1,) * (leaf.ndim - 1))


def _all_finite(params: GMMParams) -> Array:
    leaves = jax.tree_util.tree_leaves(params)
    return jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]),
        axis=0,
    )


def _progress(state: _State, max_iter: int) -> Progress:
    n_iter = np.asarray(state.n_iter)
    done = np.asarray(state.converged | state.failed) | (n_iter >= max_iter)
    bounds = np.where(np.asarray(state.failed), -np.inf, np.asarray(state.lower_bound))
    return Progress(
        int(n_iter.max()), max_iter, int((~done).sum()), len(n_iter), float(bounds.max())
    )


def _active(state: _State, max_iter) -> Array:
    return ~(state.converged | state.failed) & (state.n_iter < max_iter)


def _initialize_centred(
    key,
    Xc,
    sample_weight,
    reg_covar,
    layout,
    *,
    n_components,
    covariance_type,
    n_init,
    init,
    blocks,
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
            covariance_type=covariance_type,
            reg_covar=reg_covar,
            sample_weight=sample_weight,
            n_active=active,
            blocks=blocks,
        )

    fold = partial(jax.random.fold_in, key)
    if layout is None:
        return jax.vmap(lambda i: one(fold(i), None))(jnp.arange(n_init))
    restart_ids, n_active = layout
    return jax.vmap(lambda i, active: one(fold(i), active))(restart_ids, n_active)


_STATIC = ("n_components", "covariance_type", "n_init", "init", "blocks")


@partial(jax.jit, static_argnames=_STATIC)
def _initialize(key, X, sample_weight, reg_covar, layout, **static) -> GMMParams:
    Xc, centre = _centre(X, sample_weight)
    params = _initialize_centred(key, Xc, sample_weight, reg_covar, layout, **static)
    return params._replace(means=params.means + centre)


@partial(jax.jit, static_argnames=_STATIC)
def _start(key, X, sample_weight, reg_covar, init_params, layout, **static):
    """Centre the data and initialise every restart's state."""
    n_init = static["n_init"]
    Xc, centre = _prepare(X, sample_weight, mesh=static["blocks"].mesh)
    if static["init"] == "given":
        params = init_params._replace(means=init_params.means - centre)
        if params.weights.ndim == 1:
            params = jax.tree_util.tree_map(
                lambda a: jnp.broadcast_to(a, (n_init, *a.shape)), params
            )
    else:
        params = _initialize_centred(key, Xc, sample_weight, reg_covar, layout, **static)
    state = _State(
        params=params,
        lower_bound=jnp.full((n_init,), -jnp.inf, X.dtype),
        n_iter=jnp.zeros((n_init,), jnp.int32),
        converged=jnp.zeros((n_init,), bool),
        failed=jnp.zeros((n_init,), bool),
    )
    return Xc, centre, state


def _restarts_statistics(xb, wb, rows, params, unit, expanded=False):
    """One block's statistics for every restart (leading axis of ``params``)."""
    return jax.vmap(lambda p: block_statistics(xb, wb, p, unit, expanded))(params)


def _update(state: _State, stats, *, unit, tol, reg_covar, max_iter, mean_weight):
    """The M-step of every active restart from its statistics, and the bookkeeping: a restart
    whose lower bound or new parameters are not finite is frozen and marked failed; one whose
    lower bound moved by less than ``tol`` has converged. Returns the new state and this
    iteration's lower bounds (NaN where a restart was not active)."""

    def m_step(stats, params):
        return finalize(
            stats,
            params.means,
            unit=unit,
            reg_covar=reg_covar,
            mean_weight=mean_weight,
            fallback_means=params.means,
            fallback_cov=params.covariances,
            previous_weights=params.weights,
        )

    active = _active(state, max_iter)
    new_params = jax.vmap(m_step)(stats, state.params)
    lower_bound = stats.log_lik / stats.weight
    ok = jnp.isfinite(lower_bound) & _all_finite(new_params)
    keep = active & ok
    params = jax.tree_util.tree_map(
        lambda new, old: jnp.where(_per_restart(keep, new), new, old), new_params, state.params
    )
    new_state = _State(
        params=params,
        lower_bound=jnp.where(active & jnp.isfinite(lower_bound), lower_bound, state.lower_bound),
        n_iter=state.n_iter + active.astype(jnp.int32),
        converged=state.converged | (keep & (jnp.abs(lower_bound - state.lower_bound) < tol)),
        failed=state.failed | (active & ~ok),
    )
    return new_state, jnp.where(active, lower_bound, jnp.nan)


@partial(jax.jit, static_argnames=("covariance_type", "n_steps", "blocks", "expanded"))
def _advance(
    state,
    X,
    sample_weight,
    tol,
    reg_covar,
    max_iter,
    *,
    covariance_type,
    n_steps,
    blocks,
    expanded=False,
):
    """``n_steps`` EM iterations of every active restart; returns the new state, the lower bounds
    ``(n_steps, n_init)`` (NaN where a restart was not active) and whether all are done.

    One iteration is one pass over the data in ``blocks`` (on each device), every restart's
    statistics accumulated from the same block, then the M-step of each restart."""
    unit = covariance_unit(covariance_type, lapack=blocks.lapack)
    mean_weight = 1.0 if sample_weight is None else jnp.mean(sample_weight)

    def iterate(state):
        stats = blockwise_sum(
            partial(_restarts_statistics, unit=unit, expanded=expanded),
            X,
            sample_weight,
            blocks,
            state.params,
        )
        if expanded:
            stats = jax.vmap(partial(centre_statistics, unit=unit))(stats, state.params.means)
        return _update(
            state,
            stats,
            unit=unit,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            mean_weight=mean_weight,
        )

    def skip(state):
        return state, jnp.full(state.lower_bound.shape, jnp.nan, state.lower_bound.dtype)

    def body(state, _):
        return lax.cond(jnp.any(_active(state, max_iter)), iterate, skip, state)

    state, trace = lax.scan(body, state, None, length=n_steps)
    return state, trace, ~jnp.any(_active(state, max_iter))


@jax.jit
def _data_variance(Xc, sample_weight):
    """The (weighted) variance of each feature."""
    w = jnp.ones(Xc.shape[0], Xc.dtype) if sample_weight is None else sample_weight
    mean = (w @ Xc) / jnp.sum(w)
    # a fused reduction, not a matrix product: that would hold (X - mean)^2, a copy of X
    return jnp.sum(w[:, None] * jnp.square(Xc - mean), axis=0) / jnp.sum(w)


@partial(jax.jit, static_argnames=("covariance_type",))
def outcome_from_variance(state, data_var, centre, reg_covar, *, covariance_type):
    """Per-restart parameters in the data's frame, and which restarts are degenerate, given
    the data's per-feature variance."""
    unit = covariance_unit(covariance_type)

    def smallest(params):
        empirical = unit.add_to_diagonal(params.covariances, -reg_covar)
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


def _check_init(init, *, n_components, n_features, covariance_type, dtype, n_init):
    if isinstance(init, GMMParams):
        params = check_params(
            init,
            n_components=n_components,
            n_features=n_features,
            covariance_type=covariance_type,
            dtype=dtype,
            batch=n_init,
        )
        return "given", params
    if init not in INIT_METHODS:
        raise ValueError(f"init must be one of {INIT_METHODS} or a GMMParams, got {init!r}")
    return init, None


def _check_data(X, sample_weight, n_components: int):
    """Validated data and weights (left alone when traced)."""
    if not is_traced(X):
        X = as_data(X)
    n_samples = X.shape[0]
    if n_components > n_samples:
        raise ValueError(
            f"n_components={n_components} is larger than the number of samples "
            f"(N={n_samples}); a mixture needs at least one sample per component"
        )
    if not is_traced(sample_weight):
        sample_weight = as_sample_weight(sample_weight, n_samples, X.dtype)
    return X, sample_weight


def initialize(
    key: Array,
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    n_init: int = 1,
    init: str = "kmeans",
    reg_covar: float = 1e-6,
    sample_weight=None,
) -> GMMParams:
    """The starting parameters :func:`fit` would use for each restart, with a leading ``n_init``
    axis (restart i from ``fold_in(key, i)``). See :func:`fit` for the arguments."""
    unit = covariance_unit(covariance_type)
    n_components = check_int(n_components, "n_components", 1)
    n_init = check_int(n_init, "n_init", 1)
    reg_covar = check_float(reg_covar, "reg_covar")
    X, sample_weight = _check_data(X, sample_weight, n_components)
    init_name, _ = _check_init(
        init,
        n_components=n_components,
        n_features=X.shape[1],
        covariance_type=unit.name,
        dtype=X.dtype,
        n_init=n_init,
    )
    if init_name == "given":
        raise ValueError("initialize needs an init method name, not parameters")
    return _initialize(
        key,
        X,
        sample_weight,
        reg_covar,
        None,
        n_components=n_components,
        covariance_type=unit.name,
        n_init=n_init,
        init=init_name,
        blocks=Blocks(default_block_size(X.shape[0], n_components, X.shape[1], n_init)),
    )


def as_mesh(devices) -> Mesh | None:
    """A one-axis mesh from ``devices``: None, a ``jax.sharding.Mesh`` (its first axis is used
    for the rows), or a sequence of devices."""
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                f"devices: the mesh must have one axis (the data's rows), got axes "
                f"{devices.axis_names}"
            )
        return devices
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError("devices must be a jax.sharding.Mesh or a non-empty list of jax devices")
    return Mesh(np.array(devices), ("data",))


def shard_rows(X, sample_weight, mesh: Mesh):
    """``X`` and the weights sharded by rows over the mesh. Rows are padded to a multiple of the
    device count with zero-weight rows, which add nothing to any sum (so weights always exist)."""
    n_samples = X.shape[0]
    pad = -n_samples % mesh.size
    w = jnp.ones(n_samples, X.dtype) if sample_weight is None else sample_weight
    if pad:
        X = jnp.concatenate([X, jnp.broadcast_to(X[:1], (pad, X.shape[1]))])
        w = jnp.concatenate([w, jnp.zeros(pad, w.dtype)])
    rows = NamedSharding(mesh, P(mesh.axis_names[0]))
    return jax.device_put(X, rows), jax.device_put(w, rows)


class _Interruptible:
    """While active, a first Ctrl-C only asks the host loop to stop after the running chunk of
    iterations (``requested``); a second one aborts with ``KeyboardInterrupt``."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self.previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if self.enabled:
            self.previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self.previous or signal.default_int_handler)


def _all_done(state: _State, max_iter: int) -> bool:
    n_iter = np.asarray(state.n_iter)
    running = ~(np.asarray(state.converged) | np.asarray(state.failed)) & (n_iter < max_iter)
    return not running.any()


def _iterate_on_host(
    state, advance, traces, *, max_iter, chunk_iterations, callback, checkpoint, interruptible
):
    """Chunks of compiled iterations until every restart is done (or Ctrl-C): returns the
    state, all traces ``(T, n_init)`` and whether the loop was interrupted."""
    chunks = [traces]
    steps = len(traces)
    done = _all_done(state, max_iter)
    with _Interruptible(interruptible) as interrupt:
        while not done and steps < max_iter and not interrupt.requested:
            state, trace, all_done = advance(state, n_steps=chunk_iterations)
            chunks.append(np.asarray(trace))
            steps += chunk_iterations
            done = bool(all_done)
            if checkpoint is not None:
                checkpoint(state, np.concatenate(chunks))
            if callback is not None:
                callback(_progress(state, max_iter))
    interrupted = interrupt.requested and not (done or steps >= max_iter)
    return state, np.concatenate(chunks), interrupted


@partial(jax.jit, static_argnames=("mesh",))
def _prepare(X, sample_weight, mesh=None):
    Xc, centre = _centre(X, sample_weight)
    if mesh is not None:  # keep the centred copy sharded as the data
        Xc = lax.with_sharding_constraint(Xc, NamedSharding(mesh, P(mesh.axis_names[0])))
    return Xc, centre


# The expanded (exponential-family) statistics: only for small D with full or tied covariances
# (beyond, the features q(x) outgrow the data and whitening is faster), and only while the
# estimate eps * z^2 of their relative error stays below EXPANDED_RTOL. z is the largest
# standardised coordinate of a mean, |mean_j - centre_j| / std_j over components and features:
# a variance from raw moments, E[x_j^2] - mean_j^2, loses z_j^2 of float's relative precision.
# Measured in float32 against float64 by bench/expanded_error.py (192 mixtures: D = 2 to 16,
# axis-aligned for all four types, rotated with condition numbers 10 and 100 for full and tied):
# where eps * z^2 > 3e-5 the error of the parameters was 2-93% of it; where eps * z^2 <= 1e-4,
# which "auto" accepts, it was at most 5.5e-5 (the exact form: up to 8.5e-6). The Mahalanobis
# distance of the means, the estimate used before, overstates the error up to D times.
EXPANDED_MAX_FEATURES = 16
EXPANDED_RTOL = 1e-4
STATISTICS = ("auto", "exact", "expanded")


@partial(jax.jit, static_argnames=("covariance_type",))
def _standardized_means(params, covariance_type):
    """Largest squared standardised coordinate z^2 of an active component's mean (the data
    being centred), over restarts, components and features."""
    unit = covariance_unit(covariance_type)
    variances = jax.vmap(unit.feature_variances)(params.covariances)
    if variances.ndim == 2:  # tied: one covariance per restart
        variances = variances[:, None, :]
    z2 = jnp.square(params.means) / variances
    return jnp.max(jnp.where(params.weights[..., None] > 0, z2, 0.0))


def _expanded_width(covariance_type: str, n_features: int) -> int:
    """Width of a row's features ``(x, q(x))`` in the expanded statistics."""
    row = jax.ShapeDtypeStruct((1, n_features), jnp.float32)
    quadratic = jax.eval_shape(covariance_unit(covariance_type).quadratic_features, row)
    return n_features + quadratic.shape[-1]


def _expanded_is_accurate(state, covariance_type: str) -> bool:
    n_features = state.params.means.shape[-1]
    if covariance_type in ("full", "tied") and n_features > EXPANDED_MAX_FEATURES:
        return False
    eps = float(jnp.finfo(state.params.means.dtype).eps)
    return eps * float(_standardized_means(state.params, covariance_type)) <= EXPANDED_RTOL


def run_restarts(
    key,
    X,
    sample_weight,
    *,
    n_components,
    covariance_type,
    n_init,
    init,
    init_params=None,
    layout=None,
    max_iter,
    tol,
    reg_covar,
    traced,
    callback=None,
    chunk_iterations=CHUNK_ITERATIONS,
    block_size=None,
    mesh=None,
    checkpoint=None,
    interruptible=False,
    statistics="auto",
):
    """EM for a batch of restarts on validated data: the engine behind :func:`fit` and
    :func:`jaxgmm.select`. Returns the final state, the lower-bound traces ``(T, n_init)`` (NaN
    where a restart was not running), the per-restart parameters in the data's frame, the
    degenerate flags, and whether a Ctrl-C stopped it early.

    Outside transformations the iterations run in compiled chunks of ``chunk_iterations``; after
    each, ``callback(Progress)`` is called if given, the ``checkpoint`` file (a path) is
    rewritten, and the loop ends once every restart is done. An existing checkpoint of the same
    fit is resumed. The chunk length changes nothing in the result; the block size (rows per
    block of the pass over the data, by default from the shapes) only the rounding."""
    n_devices = 1 if mesh is None else mesh.size
    rows = X.shape[0] // n_devices
    # a given block size serves both forms; by default the expanded one reads longer blocks
    expanded_block_size = block_size
    if block_size is None:
        block_size = default_block_size(rows, n_components, X.shape[1], n_init)
        expanded_block_size = default_block_size(
            rows,
            n_components,
            X.shape[1],
            n_init,
            expanded_width=_expanded_width(covariance_type, X.shape[1]),
        )
    print_ = None
    if checkpoint is not None:
        print_ = _checkpoint.fingerprint(
            X,
            sample_weight,
            {
                "key": jax.random.key_data(key),
                "n_components": n_components,
                "covariance_type": covariance_type,
                "n_init": n_init,
                "init": init,
                "init_params": []
                if init_params is None
                else jax.tree_util.tree_leaves(init_params),
                "layout": [] if layout is None else list(layout),
                "tol": float(tol),
                "reg_covar": float(reg_covar),
                "block_size": int(block_size),
                "devices": n_devices,
            },
        )
    if mesh is not None:
        X, sample_weight = shard_rows(X, sample_weight, mesh)
    blocks = Blocks(int(block_size), mesh)
    expanded_blocks = Blocks(int(expanded_block_size), mesh)
    resumed = None if checkpoint is None else _checkpoint.load(checkpoint, print_, _State)
    if resumed is None:
        Xc, centre, state = _start(
            key,
            X,
            sample_weight,
            reg_covar,
            init_params,
            layout,
            n_components=n_components,
            covariance_type=covariance_type,
            n_init=n_init,
            init=init,
            blocks=blocks,
        )
        traces = np.zeros((0, n_init), X.dtype)
    else:
        Xc, centre = _prepare(X, sample_weight, mesh=mesh)
        state, traces = resumed
        replicated = None if mesh is None else NamedSharding(mesh, P())
        state = jax.tree_util.tree_map(lambda a: jax.device_put(a, replicated), state)

    def advance(state, n_steps):
        expanded = statistics == "expanded" or (
            statistics == "auto" and not traced and _expanded_is_accurate(state, covariance_type)
        )
        return _advance(
            state,
            X=Xc,
            sample_weight=sample_weight,
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            covariance_type=covariance_type,
            n_steps=n_steps,
            blocks=expanded_blocks if expanded else blocks,
            expanded=expanded,
        )

    interrupted = False
    if traced:
        state, traces, _ = advance(state, n_steps=max_iter)
    else:
        save = None
        if checkpoint is not None:

            def save(state, traces):
                _checkpoint.save(checkpoint, state, traces, print_)

        state, traces, interrupted = _iterate_on_host(
            state,
            advance,
            traces,
            max_iter=max_iter,
            chunk_iterations=chunk_iterations,
            callback=callback,
            checkpoint=save,
            interruptible=interruptible,
        )
        traces = traces[: int(np.max(np.asarray(state.n_iter), initial=0))]
    data_var = _data_variance(Xc, sample_weight)
    if not (traced or blocks.lapack):  # its eigenvalues on one device (see Blocks.lapack)
        state, data_var, centre = jax.tree_util.tree_map(
            lambda a: a.addressable_data(0) if a.sharding.is_fully_replicated else a,
            (state, data_var, centre),
        )
    params, degenerate = outcome_from_variance(
        state, data_var, centre, reg_covar, covariance_type=covariance_type
    )
    return state, traces, params, degenerate, interrupted


def fit(
    key: Array,
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str | GMMParams = "kmeans",
    sample_weight=None,
    prefer_nondegenerate: bool = True,
    callback=None,
    block_size: int | None = None,
    devices=None,
    checkpoint=None,
    statistics: str = "auto",
) -> FitResult:
    """Fit a Gaussian mixture by EM, ``n_init`` restarts at once.

    Parameters
    ----------
    key : PRNG key
        Restart i is initialised from ``fold_in(key, i)``; the same key gives the same result.
    X : (N, D) array
        float32, or float64 with JAX's 64-bit mode on (never silently downcast).
    n_components : int
    covariance_type : {"full", "tied", "diag", "spherical"}
    n_init : int
        Restarts, fitted together with ``vmap``.
    max_iter : int
        EM iterations per restart (0 returns the initial parameters).
    tol : float
        A restart has converged, and stops, when its lower bound changes by less than ``tol``
        between two iterations (scikit-learn's rule; ``tol=0`` runs ``max_iter`` iterations).
    reg_covar : float
        Added to the diagonal of every covariance.
    init : {"kmeans", "k-means++", "random", "random_from_data"} or GMMParams
        See :mod:`jaxgmm._init`. A ``GMMParams`` is used by every restart, or, with a leading
        ``n_init`` axis on every field, one per restart. A component given weight 0 stays off.
    sample_weight : (N,) array, optional
        Non-negative weights (an integer weight acts as repeating the sample).
    prefer_nondegenerate : bool
        Choose the best restart among those without a collapsed component when there is one
        (see ``RestartOutcome.degenerate``); ``False`` takes the plain highest lower bound.
    callback : callable, optional
        Called with a :class:`Progress` after every compiled chunk of iterations (not under JAX
        transformations), for progress bars.
    block_size : int, optional
        Rows per block of each pass over the data (memory then grows with the block, not with
        N x K); by default chosen from the shapes and the device.
    devices : jax.sharding.Mesh or list of devices, optional
        Shard the data's rows over these devices: each device passes over its own rows and the
        statistics are added across devices (``psum``), so the result equals one device's up to
        rounding. Several hosts: call ``jax.distributed.initialize()`` first and pass a mesh of
        ``jax.devices()``.
    checkpoint : path, optional
        Write every restart's state to this file (atomically) after each compiled chunk of
        iterations, and resume from it when it exists and was written by the same fit (same
        data, key and settings; another fit's checkpoint is refused). The resumed fit gives the
        result an uninterrupted one would.

    statistics : {"auto", "exact", "expanded"}
        How an iteration computes densities and scatters. "exact": from ``x - mean`` per
        component, exact whatever the geometry. "expanded": the exponential-family form (two
        matrix products with the features ``(x, x x^T)``), faster for small D but losing up to
        about ``eps * z^2`` relative accuracy, with ``z`` the largest distance of a component
        mean from the data's centre along one feature, in that component's standard deviations
        of the feature. "auto" (default) takes "expanded" while that predicted error stays
        below ``EXPANDED_RTOL`` (checked after every chunk of iterations), and for full or tied
        covariances only up to ``EXPANDED_MAX_FEATURES`` features; "exact" under JAX
        transformations.

    A first Ctrl-C during the fit stops it after the running chunk of iterations and returns
    the best result so far, with ``interrupted`` set; a second one aborts.

    Returns
    -------
    FitResult
        The chosen restart (highest final lower bound among the restarts that did not fail) and
        the outcome of every restart.

    Raises
    ------
    ValueError
        On invalid input, or when every restart failed (outside JAX transformations; under them
        check ``result.restarts.failed``).
    """
    unit = covariance_unit(covariance_type)
    n_components = check_int(n_components, "n_components", 1)
    n_init = check_int(n_init, "n_init", 1)
    max_iter = check_int(max_iter, "max_iter", 0)
    tol = check_float(tol, "tol")
    reg_covar = check_float(reg_covar, "reg_covar")
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")
    traced = is_traced(key, X, sample_weight, init, tol, reg_covar)
    X, sample_weight = _check_data(X, sample_weight, n_components)
    init_name, init_params = _check_init(
        init,
        n_components=n_components,
        n_features=X.shape[1],
        covariance_type=unit.name,
        dtype=X.dtype,
        n_init=n_init,
    )
    state, traces, params, degenerate, interrupted = run_restarts(
        key,
        X,
        sample_weight,
        n_components=n_components,
        covariance_type=unit.name,
        n_init=n_init,
        init=init_name,
        init_params=init_params,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        traced=traced,
        callback=callback,
        block_size=None if block_size is None else check_int(block_size, "block_size", 1),
        mesh=as_mesh(devices),
        checkpoint=checkpoint,
        interruptible=not traced,
        statistics=statistics,
    )
    return assemble_result(
        state,
        traces,
        params,
        degenerate,
        traced=traced,
        prefer_nondegenerate=prefer_nondegenerate,
        interrupted=interrupted,
    )


def assemble_result(
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
            raise ValueError(_FAILURE_ADVICE.format(n_init=len(np.asarray(state.failed))))
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
