"""The EM engine: a batch of restarts (leading axis ``n_init`` everywhere) carried from a start
to a result by pure, jitted pieces. ``fit``, ``fit_stream`` and ``select`` all drive it:

``start``    centre the data, initialise every restart (:func:`each_restart`), the first state
             (restarts in turn: up to the statistics of the start's M-step, ``State.pending``);
``advance``  a chunk of EM iterations of every restart: batched, in one ``lax.scan`` (a
             restart that converged or failed is frozen, an iteration is skipped once all
             are); in turn, each restart's own loop, which ends when it is done;
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
from jax.extend.core import jaxpr_as_fun
from jax.scipy.special import logsumexp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from ._blocks import blockwise_sum
from ._em import finalize
from ._init import initial_params, initial_statistics, kmeans_centres, nearest_statistics
from ._params import FitResult, GMMParams, Noise, RestartOutcome
from ._programs import program
from ._shapes import trim_params
from ._statistics import (
    Auto,
    Exact,
    Expanded,
    Missing,
    Statistics,
    differences,
    log_gaussian,
    marginal_log_densities,
    named_form,
    noise_term,
    scatter_statistics,
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


class Pending(NamedTuple):
    """The start's M-step, left to the first call of ``advance`` (restarts in turn, see
    :func:`start`): its statistics, and whether it is still to be made (``on``)."""

    stats: Statistics
    on: Array


class State(NamedTuple):
    """Per-restart EM state, each field with a leading ``n_init`` axis. ``model`` is the
    covariance model each restart fits, an index into ``unit.units`` when the unit fits
    several in one program (``AnyModel``), 0 otherwise. ``pending`` (restarts in turn): the
    start's M-step, made by the first iteration's code (:class:`Pending`); None otherwise."""

    params: GMMParams
    lower_bound: Array
    n_iter: Array
    converged: Array
    failed: Array
    model: Array
    pending: Pending | None = None


class Layout(NamedTuple):
    """A batch of restarts that are not plain copies (a grid of models, or a fit padded to
    more components): for each batch entry, the restart number whose draws it makes, how many
    of its leading components are active (the others are switched off), and its model (an
    index into ``unit.units``, for a unit that fits several)."""

    restart_ids: Array
    n_active: Array
    model: Array


def initial_state(
    params: GMMParams, model: Array | None = None, lower_bound=-np.inf, pending=None
) -> State:
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
        pending=pending,
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


def traced_once(fn, *args):
    """``fn`` traced once at arguments like ``args``: a function that replays that trace on
    arguments of the same shapes, and the shapes of its output. Tracing ``fn`` for its shapes
    (``jax.eval_shape``) and again in a loop's body would run its Python twice: faithful's
    14-model selection lowered its start in 1.04 s, and in 0.76 s traced once."""
    closed, shapes = jax.make_jaxpr(fn, return_shape=True)(*args)
    replay = jaxpr_as_fun(closed)
    tree = jax.tree_util.tree_structure(shapes)

    def call(*args):
        return jax.tree_util.tree_unflatten(tree, replay(*jax.tree_util.tree_leaves(args)))

    return call, shapes


def each_restart(fn, in_turn: bool, *batched, when=None):
    """``fn`` of every restart's slice of ``batched`` (pytrees with a leading restart axis):
    one after another when ``in_turn``, otherwise under ``vmap``. In turn, a restart outside
    the mask ``when`` (n,), if given, costs nothing and gets zeros.

    XLA compiles a batched product or sum differently for each batch size, so a batched
    restart's last bits depend on how many run beside it; in turn, each is computed as a
    single fit is, bit for bit. Small fits on the CPU run in turn (``jaxgmm._fit.run_restarts``)
    at the batched speed (2-core VM, 2026-12-06, the same selection again in a process,
    batched -> in turn: faithful, 14 models x K = 1..9, hc: 0.97 -> 0.96 s; iris: 1.05 ->
    1.12 s; faithful, 4 types x K = 1..8, 4 restarts: 0.39 -> 0.40 s), and so do grids of
    several K on the CPU, whatever their size (see ``jaxgmm._fit.restarts_in_turn``). Larger
    fits of one K stay batched: there a loop's body ran 1.5-2.5x slower than the same work
    batched (1e5 x 2, K = 3, one restart: 34 -> 50 ms per 10 iterations; 5,000 x 8, K = 5,
    16 restarts in lockstep: 30 -> 76 ms), and an accelerator would idle on one restart at a
    time."""
    if not in_turn:
        return jax.vmap(fn)(*batched)
    n = jax.tree_util.tree_leaves(batched)[0].shape[0]
    # XLA rewrites what it reads from an axis of length 1 (a slice becomes a reshape) and then
    # fuses the restart's arithmetic otherwise: a single restart runs padded to two (one trip)
    if n == 1:
        batched = jax.tree_util.tree_map(lambda a: jnp.concatenate([a, a]), batched)
    fn, shapes = traced_once(fn, *jax.tree_util.tree_map(lambda a: a[0], batched))
    out = jax.tree_util.tree_map(lambda s: jnp.zeros((max(n, 2), *s.shape), s.dtype), shapes)

    def one(i, out):
        args = jax.tree_util.tree_map(lambda a: lax.dynamic_index_in_dim(a, i, 0, False), batched)
        if when is None:
            result = fn(*args)
        else:
            result = lax.cond(
                when[i],
                lambda args: fn(*args),
                lambda args: jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes),
                args,
            )
        return jax.tree_util.tree_map(
            lambda o, r: lax.dynamic_update_index_in_dim(o, r, i, 0), out, result
        )

    # a bound XLA cannot read: it would inline a loop of one trip into its surroundings
    out = lax.fori_loop(0, lax.optimization_barrier(jnp.int32(n)), one, out)
    return jax.tree_util.tree_map(lambda o: o[:n], out)


def in_turn_where(fn, where, carry, *batched):
    """``carry[i] = fn(carry[i], *batched[i])`` for every ``i`` of the mask ``where`` (n,), one
    after another (pytrees with a leading axis n); the others are left as they are, at no
    cost: the loop visits only the indices of ``where`` (``jaxgmm._bootstrap``'s replicates: of
    faithful's LRT, 999 replicates per fit of which the slowest runs 199 iterations and the
    median 25, 1.82 -> 1.72 s against a loop over all with a ``lax.cond``; 2-core VM,
    2026-12-06)."""
    order = jnp.argsort(~where, stable=True).astype(jnp.int32)  # those of the mask first

    def one(j, carry):
        i = order[j]
        take = partial(lax.dynamic_index_in_dim, index=i, axis=0, keepdims=False)
        new = fn(jax.tree_util.tree_map(take, carry), *jax.tree_util.tree_map(take, batched))
        return jax.tree_util.tree_map(
            lambda c, v: lax.dynamic_update_index_in_dim(c, v, i, 0), carry, new
        )

    return lax.fori_loop(0, jnp.sum(where, dtype=jnp.int32), one, carry)


def _initialize_centred(
    key,
    uniforms,
    Xc,
    sample_weight,
    settings,
    layout,
    *,
    unit,
    n_components,
    n_init,
    init,
    blocks,
    statistics_only=False,
):
    """Initial parameters of every restart (leading axis ``n_init``) on centred data; with
    ``statistics_only``, what their M-step reads instead (``jaxgmm._init.initial_statistics``:
    the statistics, and the parameters they are around).

    Restart i draws from its own table of uniform numbers, ``uniforms[i]`` (see
    ``jaxgmm._random``), or for "random" from the key ``fold_in(key, i)``, whatever ``n_init``
    is, so more restarts with the same key only add candidates. ``layout`` is None for plain
    restarts, or a :class:`Layout`."""

    def one(restart, u, active, model):
        k = jax.random.fold_in(key, restart) if init == "random" else None
        common = dict(
            unit=unit.bound(model),
            reg_covar=settings.reg_covar,
            sample_weight=sample_weight,
            n_active=active,
            blocks=blocks,
        )
        if statistics_only:
            return initial_statistics(k, u, Xc, n_components, init, **common)
        return initial_params(k, u, Xc, n_components, init, prior=settings.prior, **common)

    if layout is None:
        return each_restart(
            lambda i, u: one(i, u, None, 0), blocks.in_turn, jnp.arange(n_init), uniforms
        )
    return each_restart(
        one, blocks.in_turn, layout.restart_ids, uniforms, layout.n_active, layout.model
    )


_START_STATIC = ("unit", "n_components", "n_init", "init", "blocks")


@program(static_argnames=_START_STATIC)
def initialize(key, uniforms, X, sample_weight, settings, layout, **static) -> GMMParams:
    """The initial parameters of every restart, in the data's frame."""
    Xc, centre = _centre(X, sample_weight)
    params = _initialize_centred(key, uniforms, Xc, sample_weight, settings, layout, **static)
    return params._replace(means=params.means + centre)


@program(static_argnames=("n_components", "blocks", "missing", "dense"))
def kmeans_start(
    uniforms, X, sample_weight, gaussian_weight, layout, *, n_components, blocks, missing, dense
):
    """The "kmeans" start of every restart of :func:`start`'s batch up to its M-step, in its
    centred frame, for a grid of models that share it: the centres and their hard-label
    statistics (``jaxgmm._init.nearest_statistics``, ``dense`` or diagonal scatters); each
    model's :func:`start` then makes its M-step from them (``init="statistics"``) without a
    pass over the data. ``gaussian_weight``: the weights of the rows the Gaussians start from
    (:func:`start`'s, with noise or missing values)."""
    Xc, _, _ = _prepare(X, sample_weight, blocks.mesh, missing)
    filled = jnp.nan_to_num(Xc) if missing else Xc

    def one(u, n_active):
        centres = kmeans_centres(u, filled, n_components, gaussian_weight, n_active, blocks)
        stats = nearest_statistics(filled, centres, gaussian_weight, n_active, blocks, dense=dense)
        return centres, stats

    if layout is None:
        return each_restart(lambda u: one(u, None), blocks.in_turn, uniforms)
    return each_restart(one, blocks.in_turn, uniforms, layout.n_active)


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
    key, uniforms, X, sample_weight, settings, init_params, layout, noise_mask=None, **static
):
    """Centre the data and initialise every restart: ``(Xc, centre, data_var, state)``.
    ``init`` is a method name, or "given" for ``init_params`` (in the data's frame, for all
    restarts or one per restart). With ``settings.noise``, ``noise_mask`` (N,) marks the rows
    that start as noise: the Gaussians start from the others, and given parameters without a
    noise component get one as :func:`_with_noise` makes it."""
    missing = settings.statistics == Missing.name
    Xc, centre, data_var = _prepare(X, sample_weight, static["blocks"].mesh, missing)
    # with missing values, the start reads each one as its column's mean (0, once centred)
    filled = jnp.nan_to_num(Xc) if missing else Xc
    # with a noise component, the Gaussians start from the rows outside the initial noise mask
    gaussian_weight = (
        sample_weight if noise_mask is None else outside(noise_mask, sample_weight, X.dtype)
    )
    # Restarts in turn leave the start's M-step to the first iteration's code: the M-step is
    # most of a program, and a start's program compiled it again (faithful's 14-model
    # selection, cold: lowering and compiling the start 1.12 -> 0.23 s, the iterations 1.61 ->
    # 1.96 s; 2-core VM, 2026-12-07). Batched restarts keep it: under vmap the iterations'
    # choice between the pending statistics and a pass would make both, every iteration.
    defer = static["blocks"].in_turn and settings.noise is None and not missing
    pending = None
    if static["init"] == "given":
        params = batched(init_params, static["n_init"])
        params = params._replace(means=params.means - centre)
        if defer:  # nothing to make, in the same program as the other starts
            pending = Pending(
                _zero_statistics(Xc, params, static["unit"]),
                jnp.zeros(params.weights.shape[:1], bool),
            )
    elif defer:
        stats, params = _initialize_centred(
            key, uniforms, filled, gaussian_weight, settings, layout, statistics_only=True, **static
        )
        params = params._replace(precisions_cholesky=jnp.zeros_like(params.covariances))
        pending = Pending(stats, jnp.ones(params.weights.shape[:1], bool))
    else:
        params = _initialize_centred(
            key, uniforms, filled, gaussian_weight, settings, layout, **static
        )
    if settings.noise is not None and params.noise is None:
        params = _with_noise(params, noise_mask, sample_weight, settings.noise)
    state = initial_state(
        params, None if layout is None else layout.model, settings.start_lower_bound, pending
    )
    return Xc, centre, data_var, state


def _zero_statistics(Xc, params: GMMParams, unit) -> Statistics:
    """Zero statistics of every restart of ``params``, shaped as a pass's."""
    one = jax.tree_util.tree_map(lambda a: a[0], params)
    shapes = jax.eval_shape(
        lambda: scatter_statistics(
            Xc[:1], jnp.zeros((one.means.shape[0], 1), Xc.dtype), one.means, unit
        )
    )
    n_init = params.weights.shape[0]
    return jax.tree_util.tree_map(lambda s: jnp.zeros((n_init, *s.shape), s.dtype), shapes)


def restart_statistics(xb, wb, rows, params, *, unit, form):
    """One block's statistics for every restart (leading axis of ``params``), batched, as
    sums that add up over blocks (a batched pass, and ``fit_stream``'s blocks from disk)."""
    return jax.vmap(lambda p: form.block(xb, wb, p, unit))(params)


def restart_pass(X, sample_weight, params, *, unit, form, blocks):
    """One pass over the data for one restart (``params`` without the restart axis): its
    statistics around its current means, in its own form ("auto": :class:`Auto` decides from
    its parameters), over the components it needs (:func:`_pass_on_components`)."""

    def one_pass(params, form):
        block = lambda xb, wb, rows, p: form.block(xb, wb, p, unit)  # noqa: E731
        stats = blockwise_sum(block, X, sample_weight, blocks, params)
        return form.finish(stats, params.means, unit=unit)

    def chosen_pass(params):
        if form is not Auto:
            return one_pass(params, form)
        return lax.cond(
            Auto.expanded_accurate(params, unit=unit),
            partial(one_pass, form=Expanded),
            partial(one_pass, form=Exact),
            params,
        )

    return _pass_on_components(chosen_pass, unit, blocks, params)


def pass_statistics(X, sample_weight, params, running, *, unit, form, blocks):
    """One pass over the data: every restart's statistics around its current means.

    In turn, each restart makes its own pass (:func:`restart_pass`), and one outside
    ``running`` makes none. Batched, every block serves all restarts at once, in one form for
    the batch."""
    if blocks.in_turn:
        own_pass = partial(restart_pass, X, sample_weight, unit=unit, form=form, blocks=blocks)
        return each_restart(own_pass, True, params, when=running)

    def one_pass(params, form):
        block = partial(restart_statistics, unit=unit, form=form)
        stats = blockwise_sum(block, X, sample_weight, blocks, params)
        return jax.vmap(partial(form.finish, unit=unit))(stats, params.means)

    if form is not Auto:
        return one_pass(params, form)
    expanded = jnp.all(jax.vmap(partial(Auto.expanded_accurate, unit=unit))(params))
    return lax.cond(
        expanded, partial(one_pass, form=Expanded), partial(one_pass, form=Exact), params
    )


def _pass_on_components(one_pass, unit, blocks, params):
    """``one_pass(params)`` of one restart over only as many of its leading components as
    ``blocks.component_sizes`` needs to hold those switched on (weight > 0; the others add
    exact zeros to every statistic), the statistics padded back with zeros: in a grid of
    K = 1..9 padded to 16 components, K = 1 makes a quarter of the work."""
    sizes = blocks.component_sizes
    n_components = params.weights.shape[-1]
    if len(sizes) < 2:
        return one_pass(params)
    whole_pass, full = traced_once(one_pass, params)  # other sizes are traces of their own

    def on(size, params):
        stats = one_pass(trim_params(params, size, unit))
        return jax.tree_util.tree_map(
            lambda a, s: a if a.shape == s.shape else _zero_padded(a, s.shape), stats, full
        )

    n_on = jnp.sum(params.weights > 0)
    which = jnp.sum(jnp.asarray(sizes[:-1]) < n_on)
    branches = [partial(on, size) if size < n_components else whole_pass for size in sizes]
    return lax.switch(which, branches, params)


def _zero_padded(a: Array, shape) -> Array:
    return jnp.zeros(shape, a.dtype).at[tuple(slice(0, n) for n in a.shape)].set(a)


def active(state: State, max_iter) -> Array:
    return ~(state.converged | state.failed) & (state.n_iter < max_iter)


def _all_finite(params: GMMParams) -> Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(params)]))


def _update_one(state: State, stats, settings: EMSettings, *, unit, unit_weight, start=False):
    """:func:`update` of one restart (fields without the restart axis). With ``start`` (a
    flag), the M-step is the start's (``State.pending``): made whatever ``max_iter``, it
    counts no iteration and has no lower bound, and fails only on parameters that are not
    finite."""
    start = jnp.asarray(start)
    counted = active(state, settings.max_iter) & ~start
    running = counted | start
    model_unit = unit.bound(state.model)
    params = state.params
    new_params = finalize(
        stats,
        params.means,
        unit=model_unit,
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
        log_prior = model_unit.log_prior(offsets, params.covariances, settings.prior, on)
        lower_bound = lower_bound + log_prior / stats.weight
    ok = (jnp.isfinite(lower_bound) | start) & _all_finite(new_params)
    keep = running & ok
    new_state = state._replace(
        params=jax.tree_util.tree_map(
            lambda new, old: jnp.where(keep, new, old), new_params, params
        ),
        lower_bound=jnp.where(counted & jnp.isfinite(lower_bound), lower_bound, state.lower_bound),
        n_iter=state.n_iter + counted.astype(jnp.int32),
        converged=state.converged
        | (keep & counted & (jnp.abs(lower_bound - state.lower_bound) < settings.tol)),
        failed=state.failed | (running & ~ok),
    )
    return new_state, jnp.where(counted, lower_bound, jnp.nan)


def update(state: State, stats, settings: EMSettings, *, unit, unit_weight):
    """The M-step of every active restart from its statistics, and the bookkeeping: a restart
    whose lower bound or new parameters are not finite is frozen and marked failed; one whose
    lower bound moved by less than ``tol`` has converged. Returns the new state and this
    iteration's lower bounds (NaN where a restart was not active)."""
    one = partial(_update_one, settings=settings, unit=unit, unit_weight=unit_weight)
    return jax.vmap(one)(state, stats)


def restart_iterations(state, X, sample_weight, settings, *, unit, unit_weight, blocks, n_steps):
    """Up to ``n_steps`` EM iterations (pass, M-step) of one restart (``state``'s fields
    without the restart axis), until it is done; returns its state and lower bounds
    ``(n_steps,)`` (NaN after it stopped). ``unit`` is the program's (after
    ``blocks.factoring``), ``unit_weight`` the largest row weight (1 without weights)."""
    form = named_form(settings.statistics, settings.missing_width)
    own_pass = partial(restart_pass, X, sample_weight, unit=unit, form=form, blocks=blocks)
    own_update = partial(_update_one, settings=settings, unit=unit, unit_weight=unit_weight)

    def pending(state):
        return False if state.pending is None else state.pending.on

    def going(carry):
        state, step, _ = carry
        return pending(state) | ((step < n_steps) & active(state, settings.max_iter))

    def iterate(carry):
        state, step, trace = carry
        start = pending(state)
        if state.pending is None:
            stats = own_pass(state.params)
        else:  # the start's M-step, from its statistics, by the iterations' code
            stats = lax.cond(start, lambda s: s.pending.stats, lambda s: own_pass(s.params), state)
            state = state._replace(pending=state.pending._replace(on=jnp.zeros_like(start)))
        state, lower_bound = own_update(state, stats, start=start)
        # the start's M-step takes no step: its NaN is overwritten by the first iteration's
        return state, step + jnp.where(start, 0, 1), trace.at[step].set(lower_bound)

    trace = jnp.full((n_steps,), jnp.nan, state.lower_bound.dtype)
    state, _, trace = lax.while_loop(going, iterate, (state, 0, trace))
    return state, trace


@program(static_argnames=("unit", "blocks", "n_steps"))
def advance(state, X, sample_weight, settings, *, unit, blocks, n_steps):
    """Up to ``n_steps`` EM iterations of every active restart, in the form
    ``settings.statistics``; returns the new state, the lower bounds ``(n_steps, n_init)`` (NaN
    where a restart was not active) and whether all are done.

    Batched, one iteration is one pass over the data in ``blocks`` (on each device) for the
    whole batch, then the M-step of each restart, in one ``lax.scan`` (an iteration is skipped
    once all are done). ``blocks.in_turn``: each restart in turn runs its own iterations
    (pass, M-step) until it is done or has made ``n_steps``, so that a restart that has
    stopped costs nothing and the others do not wait for it. (Against the batch's lockstep of
    passes in turn: the 14 models x K = 1..9 of iris, again in a process, 0.48 -> 0.47 s, and
    its program compiled in 1.0 s instead of 1.25 s; 2-core VM, 2026-12-06.)"""
    unit = blocks.factoring(unit)
    unit_weight = 1.0 if sample_weight is None else jnp.max(sample_weight)
    if blocks.in_turn:
        one = partial(
            restart_iterations,
            X=X,
            sample_weight=sample_weight,
            settings=settings,
            unit=unit,
            unit_weight=unit_weight,
            blocks=blocks,
            n_steps=n_steps,
        )
        state, trace = each_restart(one, True, state)
        return state, trace.T, ~jnp.any(active(state, settings.max_iter))

    form = named_form(settings.statistics, settings.missing_width)

    def iterate(state):
        running = active(state, settings.max_iter)
        stats = pass_statistics(
            X, sample_weight, state.params, running, unit=unit, form=form, blocks=blocks
        )
        return update(state, stats, settings, unit=unit, unit_weight=unit_weight)

    def skip(state):
        return state, jnp.full(state.lower_bound.shape, jnp.nan, state.lower_bound.dtype)

    def body(state, _):
        return lax.cond(jnp.any(active(state, settings.max_iter)), iterate, skip, state)

    state, trace = lax.scan(body, state, None, length=n_steps)
    done = ~jnp.any(active(state, settings.max_iter))
    return state, trace, done


def best_restart(
    lower_bound, failed, degenerate, prefer_nondegenerate: bool = True, xp=jnp
) -> Array:
    """Index of the restart with the highest final lower bound among those that did not fail,
    and, when ``prefer_nondegenerate`` and any exists, among those that are not degenerate.

    Parameters
    ----------
    lower_bound, failed, degenerate : (n_init,) arrays
        As in :class:`RestartOutcome`.
    prefer_nondegenerate : bool
    xp : module
        ``jax.numpy`` (default), or ``numpy`` to compute it on the host.

    Returns
    -------
    () int array
    """
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


def _degenerate(params, models, data_var, settings, unit):
    """Whether each restart has a collapsed component (``unit.collapsed``) once ``reg_covar``
    is taken off its covariances."""

    def one(params, model):
        bound = unit.bound(model)
        empirical = bound.add_to_diagonal(params.covariances, -settings.reg_covar)
        collapsed = bound.collapsed(empirical, data_var, DEGENERATE_RTOL)
        # switched-off components (weight exactly 0) hold placeholders, not fitted values
        return jnp.any((params.weights > 0) & collapsed)

    return jax.vmap(one)(params, models)


def _scores(params, Xc, sample_weight, unit, blocks, missing: bool, width: int = 0, when=None):
    """Every restart's log-likelihood, responsibilities' entropy and hard-label cost
    (``jaxgmm._criteria``), summed over samples (of the observed values, with ``missing``).

    In turn, each restart in the mask ``when`` (all without it) makes its own pass over the
    components it needs (:func:`_pass_on_components`); the others get zeros, at no cost.
    Batched, every block serves all restarts at once."""

    def block_of_one(xb, wb, rows, p):
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

    if blocks.in_turn:

        def one_pass(p):
            return blockwise_sum(block_of_one, Xc, sample_weight, blocks, p)

        own_pass = partial(_pass_on_components, one_pass, unit, blocks)
        return each_restart(own_pass, True, params, when=when)

    def block(xb, wb, rows, params):
        return jax.vmap(lambda p: block_of_one(xb, wb, rows, p))(params)

    return blockwise_sum(block, Xc, sample_weight, blocks, params)


def _chosen_of_groups(state, degenerate, prefer_nondegenerate: bool, group: int) -> Array:
    """The mask of the restart :func:`best_restart` chooses in each run of ``group``
    consecutive restarts (the restarts of one model of a grid)."""
    n = state.lower_bound.shape[0]
    best = jax.vmap(partial(best_restart, prefer_nondegenerate=prefer_nondegenerate))(
        *(a.reshape(n // group, group) for a in (state.lower_bound, state.failed, degenerate))
    )
    return (jnp.arange(group)[None, :] == best[:, None]).reshape(n)


_FINISH_STATIC = ("unit", "blocks", "prefer_nondegenerate", "scores")


@program(static_argnames=_FINISH_STATIC)
def finish(
    state,
    Xc,
    sample_weight,
    data_var,
    centre,
    settings,
    *,
    unit,
    blocks,
    prefer_nondegenerate,
    scores: int = 0,
) -> Finished:
    """The outcome of a finished batch of restarts (see :class:`Finished`). ``scores`` adds a
    pass over the data for the criteria: 1 of every restart; ``g`` > 1 only of the
    restart chosen in each run of ``g`` consecutive restarts (one model's, in a grid: the only
    ones read), the others' NaN."""
    unit = blocks.factoring(unit)
    degenerate = _degenerate(state.params, state.model, data_var, settings, unit)
    log_likelihood = entropy = hard_cost = None
    if scores:
        group = int(scores)
        when = None
        if group > 1:
            when = _chosen_of_groups(state, degenerate, prefer_nondegenerate, group)
        log_likelihood, entropy, hard_cost = _scores(
            state.params,
            Xc,
            sample_weight,
            unit,
            blocks,
            settings.statistics == Missing.name,
            settings.missing_width,
            when,
        )
        if when is not None:
            log_likelihood, entropy, hard_cost = (
                jnp.where(when, a, jnp.nan) for a in (log_likelihood, entropy, hard_cost)
            )
    params = state.params._replace(
        means=state.params.means + centre[None, None, :],
        covariances=unit.symmetrize(state.params.covariances),
    )
    best = best_restart(state.lower_bound, state.failed, degenerate, prefer_nondegenerate)
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
