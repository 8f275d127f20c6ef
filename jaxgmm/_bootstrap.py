"""Bootstrap inference, every replicate of a call fitted in one batched program.

* :func:`bootstrap`: standard errors and percentile intervals of a fitted model's parameters
  (mclust's ``MclustBootstrap``). Each replicate refits the model from its own parameters, so
  that components keep their order, on data resampled in one of three ways: "nonparametric"
  (rows drawn with replacement: multinomial counts as row weights), "weighted" (the weighted
  likelihood bootstrap: row weights drawn from a flat Dirichlet distribution, scaled to sum to
  N) or "parametric" (N new rows drawn from the model).
* :func:`bootstrap_lrt`: mclust's bootstrap likelihood-ratio test for the number of components
  (``mclustBootstrapLRT``): for K = 1, 2, ..., the statistic ``2 (logL(K + 1) - logL(K))`` of
  the data against its distribution over data sets drawn from the fitted K-component model,
  each refitted with K components from the observed fit, and with K + 1 from the observed
  fit and from every split of its own K fit (:func:`split_starts`), the best kept.

A replicate is a fit of the same shapes as the others, with other row weights or other rows:
the batch of replicates runs as the engine's restarts do (``jaxgmm._engine``: on small data on
the CPU one after another, each stopping on its own; otherwise under ``vmap`` over the
replicates' data and weights), in compiled chunks of iterations until every replicate has
converged. Every replicate works in the observed data's centred frame.

The larger model nests the smaller (a K-component mixture is one of K + 1 components with a
component split in two), so its maximum likelihood is never below the smaller model's. mclust
refits each replicate's larger model from the observed fit alone, which on faithful (EEE, the
K = 2 fit as the null, 2 against 3) misses the better optimum in 68-90% of replicates: the
replicate statistics come out too small and the test rejects a true null too often (of 200
data sets drawn from that null, 19 rejections at level 0.05 and 41 at 0.1). From the splits
as well: 11 and 23, as a calibrated test would (10 and 20 expected). The observed fits of K + 1
components take the splits of the K fit too (besides mclust's hierarchical start and k-means
starts): on faithful they find EEE's 4-component optimum (log-likelihood -1120.83, that of 50
k-means starts), where mclust's ends at -1126.4 and its statistic at -0.09. Where EM still
ends lower than the smaller fit, the statistic is taken at the nested point, 0.
A replicate whose fit fails (a covariance became singular) has no statistic; it is counted,
reported, and counted as at least the observed statistic, which can only raise the p-value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import jax.numpy as jnp
import numpy as np

from . import _engine
from ._blocks import Blocks, default_block_size
from ._covariance import covariance_unit
from ._em import densities
from ._engine import EMSettings, State
from ._fit import check_settings, fit, restarts_in_turn, with_prior
from ._host_loop import CHUNK_ITERATIONS, Progress
from ._matmul_precision import current_matmul_precision, matmul_precision_scope
from ._params import GMMParams
from ._programs import program
from ._progress import ProgressBar
from ._random import fold_in
from ._shapes import dense_params, is_small, padded_components
from ._sklearn_api import key_from, precision_context
from ._statistics import EXPANDED_RTOL, Exact, Expanded
from ._validation import check_float, check_int, checked_array

METHODS = ("nonparametric", "weighted", "parametric")
# mclust's sequential test goes up to 9 components when not told how far
DEFAULT_MAX_TESTS = 8
# keys of a test's draws: fold_in(key, DRAWS + K), apart from the observed fits' fold_in(key, K)
DRAWS = 1 << 16
# the smallest batch the replicates still running are repacked into
MIN_BATCH = 16


# -- refitting a batch of replicates -------------------------------------------------------


def _per_replicate(X, weights, shared_data: bool) -> dict:
    """What differs between replicates besides their state: their rows (unless the data are
    shared) and their row weights (if any)."""
    per_replicate = {}
    if not shared_data:
        per_replicate["x"] = X
    if weights is not None:
        per_replicate["w"] = weights
    return per_replicate


@program(static_argnames=("unit", "blocks", "n_steps", "shared_data", "in_turn"))
def _advance(state, X, weights, settings, *, unit, blocks, n_steps, shared_data, in_turn):
    """``n_steps`` EM iterations of every replicate (leading axis of ``state``, each a batch of
    one restart), on its own rows ``X[b]`` or the shared ``X``, with its own row weights;
    returns the new state and which replicates are done. In turn, only the replicates still
    running are visited."""

    def iterate(state, args):
        x, w = args.get("x", X), args.get("w")
        state, _, done = _engine.advance(
            state, x, w, settings, unit=unit, blocks=blocks, n_steps=n_steps
        )
        return state, done

    per_replicate = _per_replicate(X, weights, shared_data)
    if not in_turn:
        return jax.vmap(iterate)(state, per_replicate)
    running = jnp.any(_engine.active(state, settings.max_iter), axis=-1)  # (B, 1) restarts
    return _engine.in_turn_where(
        lambda carry, args: iterate(carry[0], args), running, (state, ~running), per_replicate
    )


@program(static_argnames=("unit", "blocks", "shared_data", "in_turn"))
def _finish(state, X, weights, data_var, settings, *, unit, blocks, shared_data, in_turn):
    """Every replicate's parameters (in ``X``'s frame), log-likelihood at them (weighted), and
    whether it is degenerate."""

    def one(state, args):
        x, w = args.get("x", X), args.get("w")
        centre = jnp.zeros(x.shape[1], x.dtype)
        finished = _engine.finish(
            state,
            x,
            w,
            data_var,
            centre,
            settings,
            unit=unit,
            blocks=blocks,
            prefer_nondegenerate=False,
            scores=1,
        )
        return finished.chosen, finished.log_likelihood[0], finished.degenerate[0]

    return _engine.each_restart(one, in_turn, state, _per_replicate(X, weights, shared_data))


@functools.partial(
    jax.tree_util.register_dataclass,
    data_fields=["params", "log_likelihood", "n_iter", "converged", "failed", "degenerate"],
    meta_fields=[],
)
@dataclasses.dataclass(frozen=True)
class Refits:
    """Replicates refitted from one start, each field with a leading replicate axis:
    parameters (in the frame of the data given), log-likelihood at them, iterations run,
    whether converged, failed (non-finite) or degenerate (a collapsed component)."""

    params: GMMParams
    log_likelihood: np.ndarray
    n_iter: np.ndarray
    converged: np.ndarray
    failed: np.ndarray
    degenerate: np.ndarray


def refit(
    params: GMMParams,
    X,
    weights=None,
    *,
    covariance_type: str,
    settings: EMSettings,
    data_var,
    chunk_iterations: int = CHUNK_ITERATIONS,
    callback=None,
    shard_size: int | None = None,
) -> Refits:
    """EM for a batch of replicates, every one from ``params`` (or each from its own: a
    leading ``B`` axis on every field): on ``X`` of shape ``(B, N, D)`` (each replicate its
    rows) or ``(N, D)`` (shared), with ``weights`` ``(B, N)`` or None. ``X`` should be centred
    (``data_var`` its per-feature variance, for the degeneracy check); ``settings`` as
    :func:`jaxgmm.fit` makes them. The same as a separate :func:`jaxgmm.fit` of each
    replicate from its start (tested), in one program.
    ``callback(Progress)``, if given, after each compiled chunk of iterations.

    Small data on the CPU: the replicates take their turns, each stopping on its own
    (``jaxgmm._engine.in_turn_where``), in shards of ``shard_size`` replicates (by default
    one shard per core; one program per size), each shard's program called from a thread of
    its own, one per core (XLA runs it without Python's lock). Otherwise they
    run batched, and the batch is repacked as replicates stop: once at most a quarter of it
    still runs, those go on in a batch of the next power of two (padded with a stopped
    replicate, frozen), so that the slowest replicates do not drag the whole batch along
    (faithful's LRT: a median of 29 iterations, a maximum of 205).

    The iterations run in the expanded form where it is the quicker (:func:`_expanded_pays`;
    ``jaxgmm._statistics``), without the exact form's ``K x N x D`` differences: faithful's
    tied refits of 4 components 0.50 -> 0.35 s on one core (2-core VM, 2026-12-07). Its error,
    ``eps z^2`` (``jaxgmm._statistics.EXPANDED_RTOL``), depends on where EM ends: a replicate
    whose final parameters put it above the tolerance, or that failed, is fitted again in the
    exact form (in float64 that takes a mean 670,000 of its standard deviations from the
    data's centre; in float32, 30). The final log-likelihood is the exact form's either way."""
    unit = covariance_unit(covariance_type)
    rows, n_features = X.shape[-2:]
    form = Expanded if _expanded_pays(unit, rows, n_features) else Exact
    run = functools.partial(
        _refit,
        covariance_type=covariance_type,
        settings=settings,
        data_var=data_var,
        chunk_iterations=chunk_iterations,
    )
    fits = run(params, X, weights, form=form, callback=callback, shard_size=shard_size)
    if form is Exact:
        return fits
    redo = np.flatnonzero(fits.failed | (_expanded_error(fits.params, unit) > EXPANDED_RTOL))
    if len(redo) == 0:
        return fits
    own_starts = params.weights.ndim == 2
    again = run(
        jax.tree_util.tree_map(lambda a: np.asarray(a)[redo], params) if own_starts else params,
        X if X.ndim == 2 else np.asarray(X)[redo],
        None if weights is None else np.asarray(weights)[redo],
        form=Exact,
    )

    def splice(all_fits, some):
        all_fits = np.array(all_fits)
        all_fits[redo] = some
        return all_fits

    return jax.tree_util.tree_map(splice, fits, again)


def _expanded_pays(unit, rows: int, n_features: int) -> bool:
    """Whether refits iterate faster in the expanded form than in the exact one: where
    measured so, on small data with two features, or with one covariance for all components
    (whose quadratic term the expanded form computes once per row). The LRT of 999 replicates
    again in a process, CPU seconds, exact -> expanded (2-core VM, 2026-12-07): faithful
    (D = 2), EEE's sequential test 8.3-9.2 -> 6.5-8.5; with ``max_components=3`` VVV 7.1-8.5
    -> 5.8-6.3, VVI 4.3-4.4 -> 3.9-4.4; iris (D = 4) EEE 7.4-9.5 -> 6.0-7.3, but VVV 6.5-6.6
    -> 7.9-9.4; 1e4 x 8 (batched) VVV 2-3x slower."""
    if not (is_small(rows, n_features) and Expanded.usable(unit, n_features)):
        return False
    return n_features <= 2 or unit.shared


def _expanded_error(params: GMMParams, unit) -> np.ndarray:
    """The expanded form's predicted error at each replicate's parameters (a leading axis,
    centred frame), ``eps z^2`` as ``jaxgmm._statistics.standardized_z2``, on the host."""
    means = np.asarray(params.means)
    k, d = means.shape[-2:]
    dense = unit.dense(np.asarray(params.covariances), k, d)
    z2 = np.square(means) / np.diagonal(dense, axis1=-2, axis2=-1)
    on = np.asarray(params.weights)[..., None] > 0
    return np.finfo(means.dtype).eps * np.max(np.where(on, z2, 0.0), axis=(-2, -1))


def _refit(
    params,
    X,
    weights,
    *,
    form,
    covariance_type,
    settings,
    data_var,
    chunk_iterations,
    callback=None,
    shard_size=None,
) -> Refits:
    """:func:`refit` in the statistics ``form``."""
    shared_data = X.ndim == 2
    n_boot = X.shape[0] if not shared_data else weights.shape[0]
    rows, n_features = X.shape[-2:]
    # on small data a replicate's iteration takes microseconds: compilation is what counts
    small = is_small(rows, n_features)
    in_turn = restarts_in_turn(small)
    size = -(-n_boot // _cores()) if shard_size is None else shard_size
    n_shards = -(-n_boot // size) if in_turn else 1
    own_starts = params.weights.ndim == 2
    common = dict(
        settings=settings.with_form(form),
        unit=covariance_unit(covariance_type),
        shared_data=shared_data,
        small=small,
        in_turn=in_turn,
        data_var=data_var,
        chunk_iterations=chunk_iterations,
    )
    if n_shards == 1:  # the data on the device once, not at every chunk's call
        report = None if callback is None else lambda p: callback(p) or False
        weights = None if weights is None else jax.device_put(weights)
        return _refit_batch(params, jax.device_put(X), weights, report=report, **common)
    # equal shards (one program), the last replicate repeated as padding
    padding = np.full(n_shards * size - n_boot, n_boot - 1)
    order = np.concatenate([np.arange(n_boot), padding]).reshape(n_shards, size)
    # shared data on the device once; each shard's own rows or weights put there once
    X = jax.device_put(X) if shared_data else np.asarray(X)
    weights = None if weights is None else np.asarray(weights)
    params = jax.tree_util.tree_map(np.asarray, params)
    progress = _ShardProgress(size, n_shards, n_boot, int(settings.max_iter), callback)
    run = _with_callers_settings(_refit_batch)
    futures = [
        _workers().submit(
            run,
            jax.tree_util.tree_map(lambda a, m=members: a[m], params) if own_starts else params,
            X if shared_data else jax.device_put(X[members]),
            None if weights is None else jax.device_put(weights[members]),
            report=functools.partial(progress.report, shard),
            **common,
        )
        for shard, members in enumerate(order)
    ]
    try:
        shards = [future.result() for future in futures]
    except BaseException:  # a Ctrl-C, or a shard's error: the others stop after their chunk
        progress.stop = True
        raise
    return jax.tree_util.tree_map(lambda *a: np.concatenate(a)[:n_boot], *shards)


def _refit_batch(
    params,
    X,
    weights,
    *,
    settings,
    unit,
    shared_data,
    small,
    in_turn,
    data_var,
    chunk_iterations,
    report,
) -> Refits:
    """:func:`refit` of one batch of replicates. ``report(Progress)`` after each chunk (if
    given) returns whether to stop."""
    n_boot = X.shape[0] if not shared_data else weights.shape[0]
    rows, n_features = X.shape[-2:]
    blocks = Blocks(default_block_size(rows, params.means.shape[-2], n_features, n_boot))
    state = _replicated_state(params, settings.start_lower_bound, n_boot=n_boot)
    static = dict(unit=unit, blocks=blocks, shared_data=shared_data, small=small, in_turn=in_turn)
    members, batch, data, row_weights = np.arange(n_boot), state, X, weights
    repacked = False
    iterations = 0
    while True:
        batch, done = _advance(
            batch, data, row_weights, settings, n_steps=chunk_iterations, **static
        )
        iterations += chunk_iterations
        done = np.asarray(done)
        running = members[~done]
        # padding repeats a stopped replicate: never among running
        progress = Progress(iterations, int(settings.max_iter), len(running), n_boot, math.nan)
        if report is not None and report(progress):
            raise KeyboardInterrupt
        if len(running) == 0 or iterations >= int(settings.max_iter):
            break
        if not in_turn and len(running) <= len(members) // 4 and len(members) > MIN_BATCH:
            state, repacked = _scatter(state, members, batch), True
            size = max(MIN_BATCH, 1 << (len(running) - 1).bit_length())
            members = np.concatenate([running, np.repeat(members[done][:1], size - len(running))])
            batch = _gather(state, members)
            data = X if shared_data else _gather(X, members)
            row_weights = None if weights is None else _gather(weights, members)
    state = _scatter(state, members, batch) if repacked else batch
    chosen, log_likelihood, degenerate = _finish(state, X, weights, data_var, settings, **static)
    host = jax.device_get
    return Refits(
        params=host(chosen),
        log_likelihood=np.asarray(host(log_likelihood)),
        n_iter=np.asarray(host(state.n_iter))[:, 0],
        converged=np.asarray(host(state.converged))[:, 0],
        failed=np.asarray(host(state.failed))[:, 0] | ~np.isfinite(host(log_likelihood)),
        degenerate=np.asarray(host(degenerate)),
    )


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _with_callers_settings(fn):
    """``fn`` to run in another thread under this thread's JAX settings, which are the
    thread's own: JAX's 64-bit mode (``precision_context``) and the matmul precision."""
    x64, precision = bool(jax.config.jax_enable_x64), current_matmul_precision()

    def run(*args, **kwargs):
        with jax.enable_x64(x64), matmul_precision_scope(precision):
            return fn(*args, **kwargs)

    return run


@functools.cache
def _workers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="jaxgmm-shard")


class _ShardProgress:
    """The shards' progress told to ``callback`` as one batch's, from their threads; ``stop``
    set asks every shard to stop after its chunk."""

    def __init__(self, size: int, n_shards: int, n_boot: int, max_iter: int, callback):
        self.iterations = np.zeros(n_shards, int)
        # every replicate runs until its shard reports (the last shard's padding not counted)
        self.running = np.minimum(size, n_boot - size * np.arange(n_shards))
        self.n_boot, self.max_iter, self.callback = n_boot, max_iter, callback
        self.lock = threading.Lock()
        self.stop = False

    def report(self, shard: int, progress: Progress) -> bool:
        with self.lock:
            self.iterations[shard] = progress.iteration
            # the last shard's padding, copies of its last replicate, counts while that runs
            self.running[shard] = progress.running
            if self.callback is not None:
                running = int(self.running.sum())
                self.callback(
                    Progress(
                        int(self.iterations.max()), self.max_iter, running, self.n_boot, math.nan
                    )
                )
            return self.stop


def _replicated_state(params, lower_bound, *, n_boot):
    """The state of ``n_boot`` replicates, each a batch of one restart at ``params`` (the
    same, or with a leading ``n_boot`` axis, each its own): made on the host (a program would
    be one more to compile or load for each K)."""
    own = params.weights.ndim == 2

    def per_replicate(a):
        a = np.asarray(a)
        return np.broadcast_to(a, (n_boot, *a.shape[own:]))[:, None]

    starts = jax.tree_util.tree_map(per_replicate, params)
    shape = (n_boot, 1)
    state = State(
        params=starts,
        lower_bound=np.full(shape, lower_bound, starts.means.dtype),
        n_iter=np.zeros(shape, np.int32),
        converged=np.zeros(shape, bool),
        failed=np.zeros(shape, bool),
        model=np.zeros(shape, np.int32),
    )
    return jax.device_put(state)


# The repacking's steps between chunks are programs (kept on disk like the rest): as eager JAX
# operations each compiled anew in every process (faithful, 999 nonparametric replicates: 145
# compilations, 4.5 s of a warm process's 6.0 s).


@program()
def _gather(state, members):
    return jax.tree_util.tree_map(lambda a: a[members], state)


@program()
def _scatter(state, members, batch):
    """``state`` with the replicates ``members`` replaced by ``batch``'s (a member repeated as
    padding holds the same values each time)."""
    return jax.tree_util.tree_map(lambda a, b: a.at[members].set(b), state, batch)


def split_starts(params: GMMParams, covariance_type: str) -> GMMParams:
    """Starts of K + 1 components from fits of K (NumPy, a leading axis ``B`` of fits): for
    each fit and each component j, the fit with j split in two along its covariance's
    principal axis (the means half a standard deviation either side, half the weight each,
    the covariance kept), ``(B * K, ...)`` fit-major. From a split, EM starts next to the K
    fit's optimum (a K-component mixture is one of K + 1 with a component split): where the
    larger model has a better optimum nearby, it finds it, as the observed fits' many starts
    do (see the module's docstring for what one start at the observed fit misses)."""
    unit = covariance_unit(covariance_type)
    weights, means = np.asarray(params.weights), np.asarray(params.means)
    n_fits, k, d = means.shape
    dense = unit.dense(np.asarray(params.covariances), k, d)  # (B, K, D, D)
    values, vectors = np.linalg.eigh(dense)
    step = 0.5 * np.sqrt(values[..., -1:]) * vectors[..., -1]  # (B, K, D)
    # start j: component j becomes its first half in place, its second half last
    order = np.concatenate([np.arange(k)[None, :].repeat(k, 0), np.arange(k)[:, None]], axis=1)
    starts_weights = weights[:, order] * np.where(
        (order == np.arange(k)[:, None]), 0.5, 1.0
    )  # (B, K, K + 1)
    starts_means = means[:, order].copy()  # (B, K, K + 1, D)
    split = np.arange(k)
    starts_means[:, split, split] += step
    starts_means[:, split, k] -= step
    starts_dense = dense[:, order].reshape(n_fits * k, k + 1, d, d)
    # the precision factor U = (chol(cov)^-1)^T, as the units make it, on the host (a program
    # would be one more per K and batch to compile or load)
    factors = np.triu(np.swapaxes(np.linalg.inv(np.linalg.cholesky(starts_dense)), -1, -2))
    dtype = means.dtype
    return GMMParams(
        starts_weights.reshape(n_fits * k, k + 1).astype(dtype),
        starts_means.reshape(n_fits * k, k + 1, d).astype(dtype),
        unit.from_dense(starts_dense).astype(dtype),
        unit.from_dense(factors).astype(dtype),
    )


# -- drawing replicates ----------------------------------------------------------------------


def row_weights(key, method: str, n_boot: int, n_rows: int, dtype) -> jax.Array:
    """``(n_boot, n_rows)`` row weights of the weight-based methods: multinomial counts of
    ``n_rows`` rows drawn with replacement ("nonparametric"), or flat Dirichlet weights scaled
    to sum to ``n_rows`` ("weighted")."""
    return _row_weights(
        jax.random.key_data(key),
        method=method,
        n_boot=n_boot,
        n_rows=n_rows,
        dtype=np.dtype(dtype).name,
    )


@program(static_argnames=("method", "n_boot", "n_rows", "dtype"))
def _row_weights(key_data, *, method, n_boot, n_rows, dtype):
    keys = jax.random.split(jax.random.wrap_key_data(key_data), n_boot)
    if method == "nonparametric":

        def counts(k):
            return jnp.bincount(jax.random.randint(k, (n_rows,), 0, n_rows), length=n_rows)

        return jax.vmap(counts)(keys).astype(dtype)
    exponential = jax.vmap(lambda k: jax.random.exponential(k, (n_rows,), dtype))(keys)
    return exponential * (n_rows / jnp.sum(exponential, axis=1, keepdims=True))


def draw(key, params: GMMParams, covariance_type: str, n_boot: int, n_rows: int) -> jax.Array:
    """``(n_boot, n_rows, D)`` rows drawn from the mixture ``params``. The program runs at the
    padded number of components (``jaxgmm._shapes``: one program for K = 1..4 on faithful),
    the extra ones of weight 0, never drawn: the draws do not depend on the padding."""
    k = params.means.shape[0]
    padded = dense_params(params, padded_components(k), covariance_unit(covariance_type))
    dtype = padded.means.dtype
    factors = np.linalg.cholesky(padded.covariances.astype(np.float64)).astype(dtype)  # lower
    return _draw(
        jax.random.key_data(key),
        padded.weights,
        padded.means,
        factors,
        n_boot=n_boot,
        n_rows=n_rows,
    )


@program(static_argnames=("n_boot", "n_rows"))
def _draw(key_data, weights, means, factors, *, n_boot, n_rows):
    k, d = means.shape
    which, noise = jax.random.split(jax.random.wrap_key_data(key_data))
    # by the inverse of the weights' distribution function: a component of weight 0 is never
    # drawn, and u < 1 = the last positive weight's cumulated sum
    cumulated = jnp.cumsum(weights)
    cumulated = cumulated / cumulated[-1]  # x / x: exactly 1 from the last positive weight on
    u = jax.random.uniform(which, (n_boot, n_rows), weights.dtype)
    labels = jnp.searchsorted(cumulated, u, side="right")
    z = jax.random.normal(noise, (n_boot, n_rows, d), means.dtype)
    rows = jnp.zeros((n_boot, n_rows, d), means.dtype)
    for j in range(k):  # K passes of (B, N, D), never a (B, N, D, D) gather
        component = means[j] + z @ factors[j].T
        rows = jnp.where((labels == j)[..., None], component, rows)
    return rows


# -- the observed data -----------------------------------------------------------------------


def _centred(X):
    """The data centred as a fit centres them (``jaxgmm._engine.prepare``), the centre on the
    host, and the per-feature variance."""
    Xc, centre, data_var = _engine.prepare(jnp.asarray(X), None)
    return Xc, np.asarray(centre), data_var


def _shift(params: GMMParams, offset) -> GMMParams:
    return params._replace(means=(np.asarray(params.means) + offset).astype(params.means.dtype))


# -- bootstrap standard errors ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BootstrapResult:
    """What :func:`bootstrap` returns: the replicates' parameters, each ``(n_boot, ...)`` in the
    model's shapes (NaN for a replicate that failed), how many failed and how many stopped
    before converging, and the model's own parameters."""

    method: str
    covariance_type: str
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    n_failed: int
    n_not_converged: int
    model_weights: np.ndarray
    model_means: np.ndarray
    model_covariances: np.ndarray

    @property
    def n_boot(self) -> int:
        """The number of replicates."""
        return self.weights.shape[0]

    def _fields(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "means": self.means, "covariances": self.covariances}

    def standard_errors(self) -> dict[str, np.ndarray]:
        """The replicates' standard deviations (n - 1 in the denominator), in the model's
        shapes, over the replicates that did not fail."""
        return {name: np.nanstd(a, axis=0, ddof=1) for name, a in self._fields().items()}

    def intervals(self, level: float = 0.95) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Percentile intervals ``(lower, upper)`` of each parameter at ``level``."""
        level = check_float(level, "level")
        if not 0 < level < 1:
            raise ValueError(f"level must be between 0 and 1, got {level}")
        tails = ((1 - level) / 2, (1 + level) / 2)
        return {
            name: tuple(np.nanquantile(a, q, axis=0) for q in tails)
            for name, a in self._fields().items()
        }

    def __str__(self) -> str:
        se = self.standard_errors()
        lines = [
            f"bootstrap of a {self.covariance_type} mixture: {self.n_boot} {self.method} "
            f"replicates, {self.n_failed} failed, {self.n_not_converged} not converged",
            "component  weight (se)          mean (se)",
        ]
        for j, w in enumerate(self.model_weights):
            means = ", ".join(
                f"{m:.4g} ({s:.2g})"
                for m, s in zip(self.model_means[j], se["means"][j], strict=True)
            )
            lines.append(f"{j + 1:>9}  {w:.4f} ({se['weights'][j]:.2g})  {means}")
        return "\n".join(lines)


def bootstrap(
    model,
    X,
    *,
    n_boot: int = 999,
    method: str = "nonparametric",
    random_state=None,
    tol: float = 1e-5,
    max_iter: int = 1000,
    progress: bool = False,
) -> BootstrapResult:
    """Bootstrap replicates of a fitted :class:`jaxgmm.GaussianMixture`'s parameters, refitted
    from the model's parameters (as mclust's ``MclustBootstrap``, whose "bs", "wlbs" and "pb"
    are ``method``'s three), all in one batched program.

    Parameters
    ----------
    model : GaussianMixture
        Fitted on ``X`` (without sample weights, a noise component or missing values); its
        ``reg_covar`` and ``prior`` serve the refits.
    X : (N, D) array
        The data the model was fitted to.
    n_boot : int
    method : {"nonparametric", "weighted", "parametric"}
    random_state : None, int, NumPy generator or JAX key
    tol, max_iter : float, int
        The refits' convergence settings (``tol`` on the mean log-likelihood per row). Not the
        model's: a refit starts at the model's optimum, and a loose tolerance (scikit-learn's
        1e-3) stops it after an iteration or two, near its start, which makes the standard
        errors too small (faithful, EEE, G = 3: 0.029 for a weight whose is 0.049).
    progress : bool
        Draw a progress bar of the refits on stderr.

    Returns
    -------
    BootstrapResult
        With ``standard_errors()`` and ``intervals(level)``.

    Examples
    --------
    >>> import jaxgmm
    >>> X = jaxgmm.lesson_data()
    >>> model = jaxgmm.GaussianMixture(2, random_state=0).fit(X)
    >>> boot = jaxgmm.bootstrap(model, X, n_boot=99, random_state=0)
    >>> boot.means.shape, boot.standard_errors()["means"].shape
    ((99, 2, 2), (2, 2))
    """
    from .estimator import GaussianMixture

    if not isinstance(model, GaussianMixture) or not hasattr(model, "means_"):
        raise ValueError("bootstrap needs a fitted jaxgmm.GaussianMixture")
    if model.noise_weight_ is not None or model.missing != "error":
        raise ValueError("bootstrap does not cover models with a noise component or missing values")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    n_boot = check_int(n_boot, "n_boot", 2)
    X, _ = checked_array(X, min_samples=2, wide=True)
    if X.shape[1] != model.n_features_in_:
        raise ValueError(
            f"X has {X.shape[1]} features; the model was fitted on {model.n_features_in_}"
        )
    dtype = model.means_.dtype
    X = X.astype(dtype)
    n_rows = X.shape[0]
    with precision_context(dtype):  # float64 in JAX's 64-bit mode, as select
        Xc, centre, data_var = _centred(X)
        params = _shift(model._host_params(dtype), -centre)
        unit, _, _, settings = check_settings(
            n_components=model.n_components,
            covariance_type=model.covariance_type,
            n_init=1,
            max_iter=max_iter,
            tol=tol,
            reg_covar=model.reg_covar,
        )
        settings = with_prior(settings, model.prior, unit, X, None)
        key = key_from(random_state)
        if method == "parametric":
            data, weights = draw(key, params, model.covariance_type, n_boot, n_rows), None
        else:
            data, weights = Xc, row_weights(key, method, n_boot, n_rows, dtype)
        with _progress_bar(f"{n_boot} {method} replicates", progress) as bar:
            fits = refit(
                params,
                data,
                weights,
                covariance_type=model.covariance_type,
                settings=settings,
                data_var=data_var,
                callback=bar,
            )
        failed = fits.failed

        def kept(a):
            a = np.array(a, dtype=np.float64)
            a[failed] = np.nan
            return a

        return BootstrapResult(
            method=method,
            covariance_type=model.covariance_type,
            weights=kept(fits.params.weights),
            means=kept(fits.params.means + centre),
            covariances=kept(fits.params.covariances),
            n_failed=int(failed.sum()),
            n_not_converged=int((~fits.converged & ~failed).sum()),
            model_weights=np.asarray(model.weights_, np.float64),
            model_means=np.asarray(model.means_, np.float64),
            model_covariances=np.asarray(model.covariances_, np.float64),
        )


# -- the likelihood-ratio test ---------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BootstrapLRTResult:
    """What :func:`bootstrap_lrt` returns, per test of K against K + 1 components (K in
    ``components``): the observed ``statistic``, the replicates' ``boot`` ``(n_boot, n_tests)``
    (NaN where a replicate failed), ``p_values``, failed replicates (``n_failed``), and
    ``n_components``, the chosen K: the first K whose test is not significant at ``level``."""

    covariance_type: str
    level: float
    components: np.ndarray
    statistic: np.ndarray
    boot: np.ndarray
    p_values: np.ndarray
    n_failed: np.ndarray
    log_likelihoods: np.ndarray
    n_components: int

    def __str__(self) -> str:
        n_boot = self.boot.shape[0]
        lines = [
            f"bootstrap likelihood-ratio test of {self.covariance_type} mixtures "
            f"({n_boot} replicates per test)",
            "  K vs K+1   statistic   p-value   failed",
        ]
        for k, stat, p, failed in zip(
            self.components, self.statistic, self.p_values, self.n_failed, strict=True
        ):
            lines.append(f"{k:>3} vs {k + 1:<3} {stat:>11.4f} {p:>9.4f} {failed:>8d}")
        lines.append(f"chosen: {self.n_components} components (level {self.level})")
        return "\n".join(lines)


def _observed_fit(key, Xc, k, covariance_type, n_init, settings_kwargs, smaller=None):
    """The best of mclust's start (hierarchical clustering), ``n_init`` k-means starts and,
    given the fit of ``k - 1`` components (``smaller``), its splits (:func:`split_starts`)."""
    common = dict(covariance_type=covariance_type, **settings_kwargs)
    starts = [dict(init="hc"), dict(n_init=n_init)]
    if smaller is not None:
        splits = split_starts(jax.tree_util.tree_map(lambda a: a[None], smaller), covariance_type)
        starts.append(dict(init=splits, n_init=k - 1))
    # side by side, a thread each (a small fit is a loop of short programs)
    run = _with_callers_settings(fit)
    futures = [_workers().submit(run, key, Xc, k, **start, **common) for start in starts]
    fits = [future.result() for future in futures]
    return max(fits, key=lambda r: float(r.lower_bound))


def bootstrap_lrt(
    X,
    *,
    covariance_type: str = "full",
    max_components: int | None = None,
    n_boot: int = 999,
    level: float = 0.05,
    n_init: int = 4,
    random_state=None,
    tol: float = 1e-5,
    max_iter: int = 1000,
    reg_covar: float = 1e-6,
    prior: str | None = None,
    progress: bool = False,
) -> BootstrapLRTResult:
    """mclust's bootstrap likelihood-ratio test for the number of components of a
    ``covariance_type`` mixture (``mclustBootstrapLRT``), every replicate of a test in one
    batched program.

    For K = 1, 2, ...: the observed statistic ``2 (logL(K + 1) - logL(K))`` of the maximum
    likelihood fits (each the best of mclust's hierarchical start, ``n_init`` k-means starts
    and the splits of the K - 1 fit, :func:`split_starts`), and ``n_boot`` replicate
    statistics from data sets of N rows drawn from the fitted K-component model, each fitted
    with K components from the observed fit, and with K + 1 from the observed fit and from the
    K splits of the replicate's own K fit, the best kept (mclust refits from the observed fits
    alone, which makes its test reject a true null too often: see ``jaxgmm._bootstrap``). The
    p-value is ``(1 + #{replicates >= observed} + #failed) / (n_boot + 1)``.

    Parameters
    ----------
    X : (N, D) array-like
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES`` (or an mclust alias of one).
    max_components : int, optional
        Test every K up to ``max_components`` (mclust's ``maxG``). Without it the tests stop
        at the first that is not significant at ``level`` (or at 9 components, as mclust).
    n_boot : int
        Replicates per test.
    level : float
        The significance level of the sequential procedure.
    n_init : int
        k-means starts of the observed fits, besides mclust's hierarchical start.
    random_state : int, numpy Generator or None
    tol, max_iter : float, int
        The fits' convergence settings. The observed fits stop once the mean log-likelihood
        per row moves by less than ``tol``; the replicates' as mclust's, once the
        log-likelihood moves by less than ``tol (1 + |logL|)``, ``logL`` the observed fit's
        (on faithful 4x looser: the replicates are most of the work).
    reg_covar : float
    prior : {None, "default"}
        As in :func:`jaxgmm.fit`.
    progress : bool
        Draw a bar per batch of refits on stderr.

    Returns
    -------
    BootstrapLRTResult
        The observed statistics, the replicates', the p-values and the chosen K.

    Examples
    --------
    >>> import jaxgmm
    >>> from jaxgmm.datasets import faithful

    The observed statistics are mclust's (299.22 and 27.72 with its ``mclustBootstrapLRT``):

    >>> lrt = jaxgmm.bootstrap_lrt(faithful(), covariance_type="EEE", max_components=2,
    ...                            n_boot=19, random_state=0)
    >>> lrt.boot.shape, [round(float(s), 1) for s in lrt.statistic]
    ((19, 2), [299.2, 27.7])
    """
    unit = covariance_unit(covariance_type)
    n_boot = check_int(n_boot, "n_boot", 2)
    level = check_float(level, "level")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, got {level}")
    if max_components is not None:
        max_components = check_int(max_components, "max_components", 1)
    n_tests = DEFAULT_MAX_TESTS if max_components is None else max_components
    X, _ = checked_array(X, min_samples=2, wide=True)
    with precision_context(X.dtype):  # float64 in JAX's 64-bit mode, as select
        n_rows = X.shape[0]
        if n_tests + 1 > n_rows:
            n_tests = n_rows - 1
        Xc, centre, data_var = _centred(X)
        settings_kwargs = dict(tol=tol, max_iter=max_iter, reg_covar=reg_covar, prior=prior)
        _, _, _, settings = check_settings(
            n_components=1,
            covariance_type=covariance_type,
            n_init=1,
            max_iter=max_iter,
            tol=tol,
            reg_covar=reg_covar,
        )
        settings = with_prior(settings, prior, unit, Xc, None)
        key = key_from(random_state)
        observed = {}

        def observed_fit(k):
            if k not in observed:
                smaller = observed_fit(k - 1)[0] if k > 1 else None
                result = _observed_fit(
                    fold_in(key, k), Xc, k, covariance_type, n_init, settings_kwargs, smaller
                )
                params = jax.device_get(result.params)
                observed[k] = (params, _log_likelihood(params, Xc, covariance_type))
            return observed[k]

        components, statistic, boot, p_values, failures, log_likelihoods = [], [], [], [], [], []
        # one shard size for every batch: a K's null and alternative fits share programs
        shard_size = -(-n_boot // _cores())
        for k in range(1, n_tests + 1):
            (small, ll0), (large, ll1) = observed_fit(k), observed_fit(k + 1)
            observed_statistic = 2.0 * (max(ll1, ll0) - ll0)
            data = draw(fold_in(key, DRAWS + k), small, covariance_type, n_boot, n_rows)
            common = dict(covariance_type=covariance_type, data_var=data_var, shard_size=shard_size)
            fits = []
            for start, log_likelihood in ((small, ll0), (large, ll1)):
                label = f"{k} vs {k + 1}, fits of {start.means.shape[0]} components"
                if fits:
                    label += f" ({1 + k} starts each)"
                # mclust's relative tolerance, |change| < tol (1 + |logL|), per row
                relative = dataclasses.replace(
                    settings, tol=tol * (1.0 + abs(log_likelihood)) / n_rows
                )
                replicates = data
                if fits:  # the larger model: from the observed fit and the null fit's splits
                    start = _stacked(start, split_starts(fits[0].params, covariance_type), n_boot)
                    replicates = np.repeat(np.asarray(data), 1 + k, axis=0)
                with _progress_bar(label, progress) as bar:
                    fits.append(refit(start, replicates, callback=bar, **common, settings=relative))
            null, alternative = fits[0], _best_of_starts(fits[1], 1 + k)
            failed = null.failed | alternative.failed
            replicate = 2.0 * (
                np.maximum(alternative.log_likelihood, null.log_likelihood) - null.log_likelihood
            )
            replicate = np.where(failed, np.nan, replicate)
            exceed = int(np.sum(replicate[~failed] >= observed_statistic)) + int(failed.sum())
            p = (1 + exceed) / (n_boot + 1)
            components.append(k)
            statistic.append(observed_statistic)
            boot.append(replicate)
            p_values.append(p)
            failures.append(int(failed.sum()))
            log_likelihoods.append((ll0, ll1))
            if max_components is None and p > level:
                break
        p_values = np.asarray(p_values)
        not_significant = np.flatnonzero(p_values > level)
        chosen = components[not_significant[0]] if len(not_significant) else components[-1] + 1
        return BootstrapLRTResult(
            covariance_type=covariance_type,
            level=level,
            components=np.asarray(components),
            statistic=np.asarray(statistic),
            boot=np.stack(boot, axis=1),
            p_values=p_values,
            n_failed=np.asarray(failures),
            log_likelihoods=np.asarray(log_likelihoods),
            n_components=int(chosen),
        )


def _stacked(observed: GMMParams, splits: GMMParams, n_boot: int) -> GMMParams:
    """Each replicate's starts of the larger model, replicate-major: the observed fit, then
    the K splits of that replicate's null fit."""
    n_starts = splits.weights.shape[0] // n_boot + 1

    def stack(one, split):
        split = np.asarray(split).reshape(n_boot, n_starts - 1, *np.shape(one))
        first = np.broadcast_to(np.asarray(one, split.dtype), (n_boot, 1, *np.shape(one)))
        return np.concatenate([first, split], axis=1).reshape(-1, *np.shape(one))

    return jax.tree_util.tree_map(stack, observed, splits)


def _best_of_starts(fits: Refits, n_starts: int) -> Refits:
    """Each replicate's best fit among its ``n_starts`` consecutive ones (the highest
    log-likelihood of those that did not fail); failed only if all did."""
    failed = fits.failed.reshape(-1, n_starts)
    scores = np.where(failed, -np.inf, fits.log_likelihood.reshape(-1, n_starts))
    best = np.arange(len(scores)) * n_starts + np.argmax(scores, axis=1)
    chosen = jax.tree_util.tree_map(lambda a: np.asarray(a)[best], fits)
    return dataclasses.replace(chosen, failed=failed.all(axis=1))


@contextlib.contextmanager
def _progress_bar(label: str, enabled: bool):
    """A progress bar of replicates on stderr when ``enabled`` (else None), its line ended on
    leaving."""
    bar = ProgressBar(label, members="replicates") if enabled else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _log_likelihood(params: GMMParams, X, covariance_type: str) -> float:
    """The log-likelihood of ``params`` on ``X``, summed over rows (small data: one program
    for every K of a bucket)."""
    host = jax.tree_util.tree_map(np.asarray, params)
    _, log_norm = densities(X, host, covariance_unit(covariance_type))
    return float(np.sum(log_norm))
