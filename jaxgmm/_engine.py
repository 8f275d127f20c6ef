"""The EM engine: a batch of fits (restarts, or the models of a grid: "members", leading axis
everywhere) carried from a start to a result by pure, jitted pieces. ``fit``, ``fit_stream`` and
``select`` all drive it:

``start``    centre the data, initialise every member, the first state;
``advance``  a chunk of EM iterations of every member: each runs until it converged, failed or
             the chunk is over, on its own, so a member that stopped costs nothing;
``update``   the M-step of every member from its statistics, and the bookkeeping (``fit_stream``
             uses it after each pass over data on disk);
``finish``   per-member parameters in the data's frame, which are degenerate, the scores;
``traced_result`` the :class:`FitResult` of a batch under a JAX transformation.

Members are computed one after another in a loop inside each program (:func:`each_member`),
never side by side under ``vmap``: XLA compiles a batched reduction or matrix product
differently for every batch size (on a CPU a sum over rows rounds differently for a batch of 1
and of 2, a product for 2 and 3), so under ``vmap`` a restart's result depended on how many ran
beside it. In a loop every member runs the same compiled code whatever the batch, so restart i's
result is the same bit for bit in a batch of any size (and with any padding of the batch, or any
``chunk_iterations``), and more restarts never do worse. The loop also lets each member stop on
its own: a batch no longer runs in lockstep until its slowest member is done.

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
from jax.scipy.special import logsumexp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ._blocks import Blocks, blockwise_sum
from ._em import finalize
from ._init import initial_params
from ._params import FitResult, GMMParams, Noise, RestartOutcome
from ._programs import program
from ._statistics import (
    AUTO,
    EXPANDED_RTOL,
    Exact,
    Expanded,
    Missing,
    differences,
    log_gaussian,
    marginal_log_densities,
    named_form,
    noise_term,
    standardized_means,
)

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
    data_fields=["reg_covar", "tol", "max_iter", "start_lower_bound", "prior", "noise"],
    meta_fields=["statistics", "missing_width"],
)
@dataclasses.dataclass(frozen=True)
class EMSettings:
    """What the iterations need besides the data and the state, as one object.

    The numbers are traced (a new ``tol`` or ``reg_covar`` compiles nothing); ``statistics``,
    the name of a form of ``STATISTICS_FORMS`` (or "auto" before the driver resolves it), is
    static. ``start_lower_bound`` is what the first iteration's lower bound is compared with
    for convergence: -inf, or the last lower bound of the fit being continued (scikit-learn's
    ``warm_start``).
    """

    reg_covar: Any = 1e-6
    tol: Any = 1e-3
    max_iter: Any = 100
    start_lower_bound: Any = -np.inf
    prior: Any = None  # a ``jaxgmm._prior.Prior`` (its mean in the centred frame): MAP EM
    noise: Any = None  # log(1 / V) of a noise component (``jaxgmm._noise``), or None
    statistics: str = "auto"
    missing_width: int = 0  # with missing values: the most in a row (``jaxgmm._missing``)

    def with_form(self, form) -> EMSettings:
        return dataclasses.replace(self, statistics=form.name)


class State(NamedTuple):
    """Per-restart EM state, each field with a leading ``n_init`` axis. ``model`` is the
    covariance model each restart fits, an index into ``unit.units`` when the unit fits
    several in one program (``AnyModel``), 0 otherwise."""

    params: GMMParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    failed: Array
    model: Array


class Layout(NamedTuple):
    """A batch of restarts that are not plain copies (a grid of models, or a fit padded to
    more components): for each batch entry, the restart number whose draws it makes, how many
    of its leading components are active (the others are switched off), and its model (an
    index into ``unit.units``, for a unit that fits several)."""

    restart_ids: Array
    n_active: Array
    model: Array


def take(tree, i):
    """Member ``i`` of a batched pytree."""
    return jax.tree_util.tree_map(lambda a: a[i], tree)


def put(tree, i, value):
    """A batched pytree with member ``i`` replaced by ``value``."""
    return jax.tree_util.tree_map(lambda a, v: a.at[i].set(v), tree, value)


def to_lanes(tree, lanes: int):
    """``(size, ...)`` arrays as ``(lanes, size // lanes, ...)``: member m in lane ``m % lanes``
    at position ``m // lanes`` (round robin, so that the members in use, the first ones, are
    spread over all lanes)."""
    return jax.tree_util.tree_map(
        lambda a: jnp.swapaxes(a.reshape(a.shape[0] // lanes, lanes, *a.shape[1:]), 0, 1), tree
    )


def from_lanes(tree):
    """The inverse of :func:`to_lanes`."""
    return jax.tree_util.tree_map(
        lambda a: jnp.swapaxes(a, 0, 1).reshape(a.shape[0] * a.shape[1], *a.shape[2:]), tree
    )


def each_member(fn, count, *batched, lanes: int = 1):
    """``fn(*members)`` for members ``0 .. count - 1`` of the batched pytrees (leading axis),
    stacked: in a loop, ``lanes`` members at a time side by side (``vmap``), so that each
    member runs the same compiled code whatever the size of the batch (see the module's
    docstring). ``count`` (traced) may be below the batch's size, a multiple of ``lanes``: the
    members beyond it are left as zeros (or computed from placeholders, beside a member in
    use) and cost nothing more."""
    size = jax.tree_util.tree_leaves(batched)[0].shape[0]
    shapes = jax.eval_shape(fn, *take(batched, 0))
    out = jax.tree_util.tree_map(lambda s: jnp.zeros((size, *s.shape), s.dtype), shapes)
    if lanes == 1:
        return lax.fori_loop(
            0, member_count(count), lambda i, out: put(out, i, fn(*take(batched, i))), out
        )
    rows = to_lanes(batched, lanes)
    positions = (member_count(count) + lanes - 1) // lanes

    def one_position(p, out):
        values = jax.vmap(lambda *lane: fn(*take(lane, p)))(*rows)
        return put(out, p, values)

    by_position = jax.tree_util.tree_map(
        lambda a: a.reshape(size // lanes, lanes, *a.shape[1:]), out
    )
    by_position = lax.fori_loop(0, positions, one_position, by_position)
    return jax.tree_util.tree_map(lambda a: a.reshape(size, *a.shape[2:]), by_position)


def lane_counts(count, size: int, lanes: int):
    """How many of the members in use each lane holds (:func:`to_lanes`), ``(lanes,)``."""
    lane = jnp.arange(lanes)
    return jnp.clip((member_count(count) - lane + lanes - 1) // lanes, 0, size // lanes)


def member_count(count):
    """``count`` as a value XLA cannot see through: a loop over members whose trip count the
    compiler knew (one, say) could be simplified into other code than the loop of any other
    count, and round differently."""
    return lax.optimization_barrier(jnp.asarray(count, jnp.int32))


def initial_state(params: GMMParams, model: Array | None = None, lower_bound=-np.inf) -> State:
    """The state before the first iteration, from batched parameters; ``lower_bound`` is what
    the first iteration's is compared with."""
    n_init = params.weights.shape[0]
    dtype = params.means.dtype
    return State(
        params=params,
        lower_bound=jnp.full((n_init,), lower_bound, dtype),
        n_iter=jnp.zeros((n_init,), jnp.int32),
        converged=jnp.zeros((n_init,), bool),
        failed=jnp.zeros((n_init,), bool),
        model=jnp.zeros((n_init,), jnp.int32) if model is None else model,
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


def _data_variance(Xc, sample_weight):
    """The (weighted) variance of each feature."""
    w = jnp.ones(Xc.shape[0], Xc.dtype) if sample_weight is None else sample_weight
    mean = (w @ Xc) / jnp.sum(w)
    # a fused reduction, not a matrix product: that would hold (X - mean)^2, a copy of X
    return jnp.sum(w[:, None] * jnp.square(Xc - mean), axis=0) / jnp.sum(w)


def _centre_observed(X: Array, sample_weight: Array | None) -> tuple[Array, Array]:
    """:func:`_centre` of data with missing values (NaN, which stay): each column on the
    (weighted) mean of its observed values, relative to its first observed value."""
    observed = ~jnp.isnan(X)
    anchor = jnp.nan_to_num(X[jnp.argmax(observed, axis=0), jnp.arange(X.shape[1])])
    w = jnp.ones(X.shape[0], X.dtype) if sample_weight is None else sample_weight
    seen = w[:, None] * observed
    offsets = jnp.where(observed, X - anchor, 0.0)
    centre = anchor + jnp.sum(seen * offsets, axis=0) / jnp.sum(seen, axis=0)
    return X - centre, centre


def _observed_variance(Xc, sample_weight):
    """:func:`_data_variance` over each column's observed values."""
    observed = ~jnp.isnan(Xc)
    w = jnp.ones(Xc.shape[0], Xc.dtype) if sample_weight is None else sample_weight
    seen = w[:, None] * observed
    filled = jnp.where(observed, Xc, 0.0)
    mean = jnp.sum(seen * filled, axis=0) / jnp.sum(seen, axis=0)
    return jnp.sum(seen * jnp.square(filled - mean), axis=0) / jnp.sum(seen, axis=0)


def _prepare(X, sample_weight, mesh, missing: bool = False):
    if missing:
        Xc, centre = _centre_observed(X, sample_weight)
        data_var = _observed_variance(Xc, sample_weight)
    else:
        Xc, centre = _centre(X, sample_weight)
        data_var = None
    if mesh is not None:  # keep the centred copy sharded as the data
        Xc = lax.with_sharding_constraint(Xc, NamedSharding(mesh, P(mesh.axis_names[0])))
    return Xc, centre, _data_variance(Xc, sample_weight) if data_var is None else data_var


@program(static_argnames=("mesh", "missing"))
def prepare(X, sample_weight, mesh=None, missing=False):
    """The centred data, the centre and the data's per-feature variance (of the observed
    values, with ``missing``)."""
    return _prepare(X, sample_weight, mesh, missing)


def _initialize_centred(
    key,
    uniforms,
    Xc,
    sample_weight,
    settings,
    layout,
    count,
    *,
    unit,
    n_components,
    n_init,
    init,
    blocks,
    lanes=1,
) -> GMMParams:
    """Initial parameters of the first ``count`` of ``n_init`` members (leading axis
    ``n_init``; the others are zeros) on centred data, one member after another (each
    initialisation, its k-means included, stops on its own).

    Restart i draws from its own table of uniform numbers, ``uniforms[i]`` (see
    ``jaxgmm._random``), or for "random" from the key ``fold_in(key, i)``, whatever ``n_init``
    is, so more restarts with the same key only add candidates. ``layout`` is None for plain
    restarts, or a :class:`Layout`."""

    def one(restart, u, active, model):
        k = jax.random.fold_in(key, restart) if init == "random" else None
        return initial_params(
            k,
            u,
            Xc,
            n_components,
            init,
            unit=unit.bound(model),
            reg_covar=settings.reg_covar,
            sample_weight=sample_weight,
            n_active=active,
            blocks=blocks,
            prior=settings.prior,
        )

    if layout is None:
        restarts = jnp.arange(n_init, dtype=jnp.int32)
        return each_member(lambda i, u: one(i, u, None, 0), count, restarts, uniforms, lanes=lanes)
    members = (layout.restart_ids, uniforms, layout.n_active, layout.model)
    return each_member(one, count, *members, lanes=lanes)


_START_STATIC = ("unit", "n_components", "n_init", "init", "blocks", "lanes")


@program(static_argnames=_START_STATIC)
def initialize(key, uniforms, X, sample_weight, settings, layout, **static) -> GMMParams:
    """The initial parameters of every restart, in the data's frame."""
    Xc, centre = _centre(X, sample_weight)
    count = static["n_init"]
    params = _initialize_centred(
        key, uniforms, Xc, sample_weight, settings, layout, count, **static
    )
    return params._replace(means=params.means + centre)


def outside(noise_mask, sample_weight, dtype):
    """The weights of the rows outside the noise mask, 0 inside it."""
    w = jnp.ones(noise_mask.shape, dtype) if sample_weight is None else sample_weight
    return jnp.where(noise_mask, jnp.zeros((), w.dtype), w)


def _with_noise(params: GMMParams, noise_mask, sample_weight, log_density) -> GMMParams:
    """Every restart's parameters with a noise component whose weight is the (weighted)
    share of the rows in ``noise_mask``, the Gaussians' weights scaled to the rest."""
    w = jnp.ones(noise_mask.shape, params.means.dtype) if sample_weight is None else sample_weight
    share = jnp.sum(jnp.where(noise_mask, w, 0.0)) / jnp.sum(w)
    n_init = params.weights.shape[0]
    noise = Noise(
        weight=jnp.full((n_init,), share, params.means.dtype),
        log_density=jnp.full((n_init,), log_density, params.means.dtype),
    )
    return params._replace(weights=params.weights * (1.0 - share), noise=noise)


@program(static_argnames=_START_STATIC)
def start(
    key,
    uniforms,
    X,
    sample_weight,
    settings,
    init_params,
    layout,
    count,
    noise_mask=None,
    **static,
):
    """Centre the data and initialise the first ``count`` of the ``n_init`` members (the
    others are placeholders that never run): ``(Xc, centre, data_var, state)``. ``init`` is a
    method name, or "given" for ``init_params`` (in the data's frame, for all members or one
    per member). With ``settings.noise``, ``noise_mask`` (N,) marks the rows that start as
    noise: the Gaussians start from the others, and given parameters without a noise component
    get one as :func:`_with_noise` makes it."""
    missing = settings.statistics == Missing.name
    Xc, centre, data_var = _prepare(X, sample_weight, static["blocks"].mesh, missing)
    # with missing values, the start reads each one as its column's mean (0, once centred)
    filled = jnp.nan_to_num(Xc) if missing else Xc
    # with a noise component, the Gaussians start from the rows outside the initial noise mask
    gaussian_weight = (
        sample_weight if noise_mask is None else outside(noise_mask, sample_weight, X.dtype)
    )
    if static["init"] == "given":
        params = batched(init_params, static["n_init"])
        params = params._replace(means=params.means - centre)
    else:
        params = _initialize_centred(
            key, uniforms, filled, gaussian_weight, settings, layout, count, **static
        )
    if settings.noise is not None and params.noise is None:
        params = _with_noise(params, noise_mask, sample_weight, settings.noise)
    state = initial_state(
        params, None if layout is None else layout.model, settings.start_lower_bound
    )
    return Xc, centre, data_var, state


def restart_statistics(xb, wb, rows, params, unit, form):
    """One block's statistics for every restart (leading axis of ``params``), one after
    another (:func:`each_member`)."""
    return each_member(lambda p: form.block(xb, wb, p, unit), params.weights.shape[0], params)


def active(state: State, max_iter) -> Array:
    return ~(state.converged | state.failed) & (state.n_iter < max_iter)


def _all_finite(params: GMMParams) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(params)]))


def update_member(state: State, stats, settings: EMSettings, *, unit, unit_weight):
    """The M-step of one member (``state`` without the leading axis) from its statistics, if
    it is active, and the bookkeeping: a member whose lower bound or new parameters are not
    finite is frozen and marked failed; one whose lower bound moved by less than ``tol`` has
    converged. Returns the new state and this iteration's lower bound (NaN if the member was
    not active)."""
    params = state.params
    bound = unit.bound(state.model)
    running = active(state, settings.max_iter)
    new_params = finalize(
        stats,
        params.means,
        unit=bound,
        reg_covar=settings.reg_covar,
        unit_weight=unit_weight,
        fallback_means=params.means,
        fallback_cov=params.covariances,
        previous_weights=params.weights,
        prior=settings.prior,
        noise=params.noise,
    )
    lower_bound = stats.log_lik / stats.weight
    if settings.prior is not None:  # EM climbs the log posterior
        on = params.weights > 0
        offsets = params.means - settings.prior.mean
        log_prior = bound.log_prior(offsets, params.covariances, settings.prior, on)
        lower_bound = lower_bound + log_prior / stats.weight
    ok = jnp.isfinite(lower_bound) & _all_finite(new_params)
    keep = running & ok
    new_state = state._replace(
        params=jax.tree_util.tree_map(
            lambda new, old: jnp.where(keep, new, old), new_params, params
        ),
        lower_bound=jnp.where(running & jnp.isfinite(lower_bound), lower_bound, state.lower_bound),
        n_iter=state.n_iter + running.astype(jnp.int32),
        converged=state.converged
        | (keep & (jnp.abs(lower_bound - state.lower_bound) < settings.tol)),
        failed=state.failed | (running & ~ok),
    )
    return new_state, jnp.where(running, lower_bound, jnp.nan)


def update(state: State, stats, settings: EMSettings, *, unit, unit_weight):
    """:func:`update_member` of every member (leading axis), one after another."""
    return each_member(
        partial(update_member, settings=settings, unit=unit, unit_weight=unit_weight),
        state.lower_bound.shape[0],
        state,
        stats,
    )


def _iteration(X, sample_weight, settings: EMSettings, unit, blocks, expanded_size: int):
    """One EM iteration of one member, ``state -> (state, lower bound)``: a pass over the data
    for its statistics, then :func:`update_member`. With ``settings.statistics`` "auto", each
    iteration takes the expanded form (blocks of ``expanded_size`` rows) while the member's own
    predicted error of it is small enough (``jaxgmm._statistics``), the exact one otherwise: a
    member's choice depends on its parameters alone."""
    unit_weight = 1.0 if sample_weight is None else jnp.max(sample_weight)

    def statistics(form, blocks, params):
        def block(xb, wb, rows, params):
            return form.block(xb, wb, params, unit)

        stats = blockwise_sum(block, X, sample_weight, blocks, params)
        return form.finish(stats, params.means, unit)

    if settings.statistics == AUTO:
        eps = float(jnp.finfo(X.dtype).eps)
        expanded_blocks = Blocks(expanded_size, blocks.mesh)

        def statistics_of(params):
            z2 = standardized_means(jax.tree_util.tree_map(lambda a: a[None], params), unit)
            return lax.cond(
                eps * z2 <= EXPANDED_RTOL,
                partial(statistics, Expanded, expanded_blocks),
                partial(statistics, Exact, blocks),
                params,
            )

    else:
        statistics_of = partial(
            statistics, named_form(settings.statistics, settings.missing_width), blocks
        )

    def iterate(state):
        stats = statistics_of(state.params)
        return update_member(state, stats, settings, unit=unit, unit_weight=unit_weight)

    return iterate


@program(static_argnames=("unit", "blocks", "n_steps", "expanded_size", "lanes"))
def advance(
    state, count, X, sample_weight, settings, *, unit, blocks, n_steps, expanded_size=0, lanes=1
):
    """Up to ``n_steps`` EM iterations of each of the first ``count`` members, in the form
    ``settings.statistics`` (or "auto", see :func:`_iteration`); returns the new state, the
    lower bounds ``(n_steps, members)`` (NaN where a member was not active) and whether all
    are done.

    Each of ``lanes`` lanes (side by side under ``vmap``; :func:`to_lanes`) runs its members
    one after another, each until it converged, failed, or ran ``n_steps`` iterations, then the
    next: one that has stopped costs nothing, and none waits for another. One iteration is one
    pass over the data in ``blocks`` (on each device), then the M-step."""
    unit = blocks.factoring(unit)
    iterate = _iteration(X, sample_weight, settings, unit, blocks, expanded_size)
    size = state.lower_bound.shape[0]
    dtype = state.lower_bound.dtype

    def runs(members, j, steps):
        member = take(members, jnp.minimum(j, size // lanes - 1))
        return (steps < n_steps) & active(member, settings.max_iter)

    def lane(members, n_members):
        """A lane's members ``(P, ...)``, the first ``n_members`` in use, in turn."""

        def next_runnable(j, steps):
            def skip(loop):
                return loop[0] + 1, 0

            def waits(loop):
                return (loop[0] < n_members) & ~runs(members, *loop)

            return lax.while_loop(waits, skip, (j, steps))

        def more(loop):
            return loop[0] < n_members

        def step(loop):
            j, steps, members, trace = loop
            member, lower_bound = iterate(take(members, j))
            members = put(members, j, member)
            trace = trace.at[steps, j].set(lower_bound)
            j, steps = next_runnable(j, steps + 1)
            return j, steps, members, trace

        j, steps = next_runnable(0, 0)
        trace = jnp.full((n_steps, size // lanes), jnp.nan, dtype)
        _, _, members, trace = lax.while_loop(more, step, (j, steps, members, trace))
        return members, trace

    counts = lane_counts(count, size, lanes)
    if lanes == 1:
        state, trace = lane(state, counts[0])
    else:
        by_lane, trace = jax.vmap(lane)(to_lanes(state, lanes), counts)
        state = from_lanes(by_lane)
        trace = from_lanes(jnp.swapaxes(trace, 1, 2)).T  # (n_steps, size)
    used = jnp.arange(size) < count
    done = ~jnp.any(active(state, settings.max_iter) & used)
    return state, trace, done


def best_restart(
    lower_bound, failed, degenerate, prefer_nondegenerate: bool = True, xp=jnp
) -> Array:
    """Index of the restart with the highest final lower bound among those that did not fail,
    and, when ``prefer_nondegenerate`` and any exists, among those that are not degenerate.
    ``xp=numpy`` computes it on the host."""
    candidates = ~failed
    if prefer_nondegenerate:
        preferred = candidates & ~degenerate
        candidates = xp.where(xp.any(preferred), preferred, candidates)
    return xp.argmax(xp.where(candidates, lower_bound, -xp.inf))


class Finished(NamedTuple):
    """What :func:`finish` returns: every restart's parameters in the data's frame and whether
    it is degenerate, the chosen restart and its parameters, and, when asked for, every
    restart's log-likelihood, entropy of the responsibilities and hard-label cost at its final
    parameters (summed over samples, weighted; see ``jaxgmm._criteria``)."""

    params: GMMParams
    degenerate: Array
    best: Array
    chosen: GMMParams
    log_likelihood: Array | None
    entropy: Array | None
    hard_cost: Array | None


def _degenerate(params, models, data_var, settings, unit, count, lanes):
    """Whether each member has a collapsed component (``unit.collapsed``) once ``reg_covar``
    is taken off its covariances."""

    def one(params, model):
        bound = unit.bound(model)
        empirical = bound.add_to_diagonal(params.covariances, -settings.reg_covar)
        collapsed = bound.collapsed(empirical, data_var, DEGENERATE_RTOL)
        # switched-off components (weight exactly 0) hold placeholders, not fitted values
        return jnp.any((params.weights > 0) & collapsed)

    return each_member(one, count, params, models, lanes=lanes)


def _scores(params, Xc, sample_weight, unit, blocks, count, lanes, missing, width: int = 0):
    """Every member's log-likelihood, responsibilities' entropy and hard-label cost
    (``jaxgmm._criteria``), summed over samples (of the observed values, with ``missing``)."""

    def block(xb, wb, rows, p):
        if missing:
            log_density = marginal_log_densities(xb, p, unit, width or None)
        else:
            log_density = log_gaussian(differences(xb, p.means), p.precisions_cholesky, unit)
        weighted = log_density + jnp.log(p.weights)[:, None]
        noise = noise_term(p)
        if noise is not None:  # its column joins the responsibilities, as in mclust's z
            weighted = jnp.concatenate([weighted, jnp.full((1, xb.shape[0]), noise)])
        log_norm = logsumexp(weighted, axis=0)
        log_resp = weighted - log_norm
        plogp = jnp.where(jnp.isfinite(log_resp), jnp.exp(log_resp) * log_resp, 0.0)
        return (
            jnp.sum(wb * log_norm),
            -jnp.sum(wb * jnp.sum(plogp, axis=0)),
            -jnp.sum(wb * jnp.max(log_resp, axis=0)),
        )

    def one(p):
        return blockwise_sum(block, Xc, sample_weight, blocks, p)

    return each_member(one, count, params, lanes=lanes)


_FINISH_STATIC = ("unit", "blocks", "prefer_nondegenerate", "scores", "lanes")


@program(static_argnames=_FINISH_STATIC)
def finish(
    state,
    count,
    Xc,
    sample_weight,
    data_var,
    centre,
    settings,
    *,
    unit,
    blocks,
    prefer_nondegenerate,
    scores=False,
    lanes=1,
) -> Finished:
    """The outcome of a finished batch of members, the first ``count`` (see :class:`Finished`;
    the others are placeholders, never chosen); ``scores`` adds a pass over the data for the
    criteria of every member."""
    unit = blocks.factoring(unit)
    degenerate = _degenerate(state.params, state.model, data_var, settings, unit, count, lanes)
    log_likelihood = entropy = hard_cost = None
    if scores:
        log_likelihood, entropy, hard_cost = _scores(
            state.params,
            Xc,
            sample_weight,
            unit,
            blocks,
            count,
            lanes,
            settings.statistics == Missing.name,
            settings.missing_width,
        )
    params = state.params._replace(
        means=state.params.means + centre[None, None, :],
        covariances=unit.symmetrize(state.params.covariances),
    )
    unused = jnp.arange(state.failed.shape[0]) >= count
    best = best_restart(state.lower_bound, state.failed | unused, degenerate, prefer_nondegenerate)
    chosen = jax.tree_util.tree_map(lambda a: a[best], params)
    return Finished(params, degenerate, best, chosen, log_likelihood, entropy, hard_cost)


def traced_result(state, traces, finished: Finished) -> FitResult:
    """The :class:`FitResult` of a batch of restarts under a JAX transformation: traced
    arrays, traces of length ``max_iter`` padded with NaN (outside transformations the driver
    assembles it on the host, ``jaxgmm._fit.host_fit``)."""
    best = finished.best
    all_traces = traces.T
    restarts = RestartOutcome(
        lower_bound=state.lower_bound,
        lower_bounds=all_traces,
        n_iter=state.n_iter,
        converged=state.converged,
        failed=state.failed,
        degenerate=finished.degenerate,
        params=finished.params,
    )
    return FitResult(
        params=finished.chosen,
        lower_bound=state.lower_bound[best],
        lower_bounds=all_traces[best],
        n_iter=state.n_iter[best],
        converged=state.converged[best],
        best_restart=best,
        restarts=restarts,
        interrupted=jnp.asarray(False),
    )
