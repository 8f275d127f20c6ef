"""``fit``: EM for ``n_init`` restarts at once, ``vmap`` over restarts, ``lax.scan`` over steps.

:func:`run_restarts` drives the engine (``jaxgmm._engine``) for ``fit`` and ``select``: it
validates nothing (the public functions do, with the checks here that ``fit_stream`` shares),
shards the rows when asked, resumes a checkpoint, picks the statistics form, and runs the chunks
of iterations through the host loop (``jaxgmm._host_loop``), or, under a JAX transformation
(``fit`` inside ``jit`` or ``vmap``), one scan of ``max_iter`` iterations.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import _checkpoint, _engine, _host_loop
from ._blocks import Blocks, as_mesh, default_block_size, shard_rows
from ._covariance import AnyModel, covariance_unit, small_fit_programs
from ._engine import EMSettings, best_restart
from ._hc import hc_partitions
from ._init import INIT_METHODS
from ._matmul_precision import with_matmul_precision
from ._missing import check_missing, mean_filled, rows_to_fit
from ._noise import log_hypvol, noise_mask
from ._params import FitResult, GMMParams, RestartOutcome
from ._prior import check_prior, default_prior
from ._random import uniform_table
from ._shapes import (
    dense_params,
    is_small,
    model_params,
    pad_rows,
    padded_components,
    padded_rows,
    trim_params,
)
from ._statistics import (
    STATISTICS,
    Exact,
    Missing,
    choose_form,
    named_form,
)
from ._validation import (
    as_data,
    as_sample_weight,
    check_float,
    check_int,
    check_params,
    is_traced,
)


def check_settings(
    *, n_components, covariance_type, n_init, max_iter, tol, reg_covar, statistics="auto"
):
    """The validated settings shared by ``fit`` and ``fit_stream``: ``(unit, n_components,
    n_init, EMSettings)``."""
    unit = covariance_unit(covariance_type)
    n_components = check_int(n_components, "n_components", 1)
    n_init = check_int(n_init, "n_init", 1)
    if statistics not in STATISTICS:
        raise ValueError(f"statistics must be one of {STATISTICS}, got {statistics!r}")
    settings = EMSettings(
        reg_covar=check_float(reg_covar, "reg_covar"),
        tol=check_float(tol, "tol"),
        max_iter=check_int(max_iter, "max_iter", 0),
        statistics=statistics,
    )
    return unit, n_components, n_init, settings


def with_prior(settings: EMSettings, prior, unit, X, sample_weight) -> EMSettings:
    """``settings`` with the prior's arrays for these data (``jaxgmm._prior``), if one is asked;
    with missing values, of the data with each one replaced by its column's mean."""
    if check_prior(prior, unit) is None:
        return settings
    if settings.statistics == Missing.name:
        X = mean_filled(X, sample_weight)
    # the engine centres the data on their weighted mean, the default prior's mean
    centred = default_prior(X, sample_weight)._replace(mean=jnp.zeros(X.shape[1], X.dtype))
    return dataclasses.replace(settings, prior=centred)


def with_noise(settings: EMSettings, noise, X, sample_weight, traced: bool = False):
    """``(settings, mask)``: with a noise component asked for (``jaxgmm._noise``), settings
    holding its log density ``-log V`` (V the volume of the rows of positive weight) and the
    initial noise mask; ``(settings, None)`` without."""
    if noise is None or noise is False:
        return settings, None
    if settings.statistics == Missing.name:
        raise ValueError("a noise component with missing values is not supported yet")
    if traced:
        raise ValueError(
            "a noise component measures the data's region on the host: it cannot be fitted "
            "inside jit or vmap"
        )
    rows = np.asarray(X) if sample_weight is None else np.asarray(X)[np.asarray(sample_weight) > 0]
    mask = noise_mask(noise, X)
    return dataclasses.replace(settings, noise=-log_hypvol(rows)), mask


def check_init(init, *, n_components, n_features, unit, dtype, n_init):
    """``(method, None)`` for a method name, ``("given", params)`` for checked parameters."""
    if isinstance(init, GMMParams):
        params = check_params(
            init,
            n_components=n_components,
            n_features=n_features,
            unit=unit,
            dtype=dtype,
            batch=n_init,
        )
        return "given", params
    if init not in INIT_METHODS:
        raise ValueError(f"init must be one of {INIT_METHODS} or a GMMParams, got {init!r}")
    return init, None


def _check_data(X, sample_weight, n_components: int, missing: bool = False):
    """Validated data and weights (left alone when traced), and whether values are missing:
    with ``missing``, NaN marks them, and rows missing every value are left out."""
    # inside jit the data cannot be looked at: any row may miss every value
    missing_width = X.shape[1] if missing and is_traced(X) else 0
    if not is_traced(X):
        X = as_data(X, missing=missing)
        if missing:
            if not is_traced(sample_weight) and sample_weight is not None:
                sample_weight = np.asarray(sample_weight)
            X, sample_weight, missing_width = rows_to_fit(X, sample_weight)
    n_samples = X.shape[0]
    if n_components > n_samples:
        raise ValueError(
            f"n_components={n_components} is larger than the number of samples "
            f"(N={n_samples}); a mixture needs at least one sample per component"
        )
    if not is_traced(sample_weight):
        sample_weight = as_sample_weight(sample_weight, n_samples, X.dtype)
    return X, sample_weight, missing_width


def with_missing(settings: EMSettings, missing_width: int, statistics: str) -> EMSettings:
    """``settings`` with the statistics form of data with missing values, when they have any
    (``missing_width``: the most in a row)."""
    if not missing_width:
        return settings
    if statistics != "auto":
        raise ValueError(
            f'statistics="{statistics}" cannot read missing values; leave it "auto" (data with '
            "missing values have a form of their own)"
        )
    return dataclasses.replace(settings, statistics=Missing.name, missing_width=missing_width)


# mclust's subset for its hierarchical start (mclust.options("subset")): the tree's table of
# pair costs holds N^2 numbers
HC_MAX_ROWS = 2000


def init_table(
    key, init: str, X, sample_weight, n_components: int, n_init: int, layout, trees=None
):
    """What the restarts' initialisation reads: the tables of uniform numbers it draws from
    (``_random``), the labels of mclust's hierarchical start for "hc" (:func:`hc_labels`, its
    cuts kept in ``trees`` if given), or None for given parameters and for "random", which
    draws from the key itself."""
    if init in ("given", "random"):
        return None
    restart_ids = np.arange(n_init, dtype=np.int32) if layout is None else layout.restart_ids
    if init == "hc":
        ks = np.full(n_init, n_components) if layout is None else np.asarray(layout.n_active)
        return hc_labels(key, X, sample_weight, ks, trees)
    return uniform_table(key, restart_ids, n_components, X.dtype)


def hc_labels(key, X, sample_weight, ks, trees: dict | None = None) -> np.ndarray:
    """``(len(ks), N)`` int32: the partition into ``ks[i]`` clusters of mclust's hierarchical
    clustering (``_hc``), one tree for all, and -1 for rows outside it: rows of weight 0
    (padding), and beyond ``HC_MAX_ROWS`` rows all but a random subset drawn from ``key`` (only
    those rows are brought to the host). ``trees``, a dict kept across the programs of a grid
    (same data, key and weights), holds the cuts already made: the tree does not depend on the
    covariance model."""
    if is_traced(X):
        raise ValueError('init="hc" clusters on the host: it cannot run inside jit or vmap')
    distinct = sorted({int(k) for k in ks})
    cut = ("hc", tuple(distinct))
    if trees is not None and cut in trees:
        return trees[cut][[distinct.index(int(k)) for k in ks]]
    n_rows = X.shape[0]
    rows = np.arange(n_rows)
    data, weights = X, sample_weight
    if n_rows > HC_MAX_ROWS:
        rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel())
        rows = np.sort(rng.choice(n_rows, HC_MAX_ROWS, replace=False))
        data = X[rows]
        weights = None if sample_weight is None else sample_weight[rows]
    # on the host, where small data's indexing compiles nothing
    data = np.asarray(data)
    if weights is not None:
        positive = np.asarray(weights) > 0
        rows, data = rows[positive], data[positive]
    if len(rows) < distinct[-1]:
        raise ValueError(
            f'init="hc" needs at least K={distinct[-1]} rows of positive weight to cluster, '
            f"got {len(rows)}"
        )
    _, labels = hc_partitions(data, distinct, max_rows=len(rows))
    table = np.full((len(distinct), n_rows), -1, np.int32)
    table[:, rows] = labels
    if trees is not None:
        trees[cut] = table
    return table[[distinct.index(int(k)) for k in ks]]


@with_matmul_precision
def initialize(
    key: jax.Array,
    X,
    n_components: int,
    *,
    covariance_type: str = "full",
    n_init: int = 1,
    init: str = "kmeans",
    reg_covar: float = 1e-6,
    sample_weight=None,
) -> GMMParams:
    """The starting parameters :func:`fit` would use for each restart.

    Parameters
    ----------
    key : PRNG key
    X : (N, D) array
    n_components : int
    covariance_type : str
    n_init : int
    init : {"kmeans", "k-means++", "random", "random_from_data", "hc"}
    reg_covar : float
    sample_weight : (N,) array, optional
        All as in :func:`fit`.

    Returns
    -------
    GMMParams
        With a leading ``n_init`` axis on every field: restart i's start is that of
        :func:`fit`'s restart i with the same key.
    """
    unit, n_components, n_init, settings = check_settings(
        n_components=n_components,
        covariance_type=covariance_type,
        n_init=n_init,
        max_iter=0,
        tol=0.0,
        reg_covar=reg_covar,
    )
    X, sample_weight, _ = _check_data(X, sample_weight, n_components)
    if isinstance(init, GMMParams):
        raise ValueError("initialize needs an init method name, not parameters")
    init_name, _ = check_init(
        init,
        n_components=n_components,
        n_features=X.shape[1],
        unit=unit,
        dtype=X.dtype,
        n_init=n_init,
    )
    return _engine.initialize(
        key,
        init_table(key, init_name, X, sample_weight, n_components, n_init, None),
        X,
        sample_weight,
        settings,
        None,
        unit=unit,
        n_components=n_components,
        n_init=n_init,
        init=init_name,
        blocks=Blocks(default_block_size(X.shape[0], n_components, X.shape[1], n_init)),
    )


class ModelFit(NamedTuple):
    """One model of :func:`run_models`: its :class:`FitResult` (host arrays), and the
    log-likelihood, responsibilities' entropy and hard-label cost of its chosen restart, summed
    over samples (NaN when not asked for; see ``jaxgmm._criteria``)."""

    result: FitResult
    log_likelihood: float
    entropy: float
    hard_cost: float


class SharedStarts(NamedTuple):
    """What the programs of a grid share of their starts (:func:`_start_table`): ``made``
    holds, by batch, the "kmeans" centres and statistics (their scatter as matrices when
    ``dense``, some model's M-step reading more than the diagonal), and the "hc" tree's cuts."""

    dense: bool
    made: dict


def restarts_in_turn(small: bool, grid: bool = False) -> bool:
    """Whether a fit's restarts run one after another in its program rather than batched
    (``jaxgmm._engine.each_restart``): on the CPU, those of small fits, and those of a ``grid``
    of several K on one device, whose members' work differs (each stops on its own and passes
    over the components its K needs). Restarts of one K on larger data stay batched: there a
    loop's body ran 1.5-2.5x slower than the same work under ``vmap`` (2-core VM, 2026-12-06),
    where the grids gained (4 types x K = 1..9 x 4 restarts, again in a process: 1e4 x 8
    1.9-2.5 -> 1.1-1.7 s, 1e5 x 8 21.5-23.8 -> 14.3-17.0 s)."""
    return (small or grid) and jax.default_backend() == "cpu"


def run_models(
    key,
    X,
    sample_weight,
    models,
    *,
    n_init: int,
    init: str,
    settings: EMSettings,
    init_params=None,
    callback=None,
    block_size: int | None = None,
    mesh=None,
    checkpoint=None,
    interruptible: bool = False,
    prefer_nondegenerate: bool = True,
    scores: bool = False,
    noise_mask=None,
) -> list[ModelFit]:
    """EM for ``models``, a list of ``(unit, n_components)``, each with ``n_init`` restarts
    (restart i of every model draws as restart i of a single fit), on validated data: the
    driver behind :func:`fit` and :func:`jaxgmm.select`.

    Small problems (``jaxgmm._shapes``) run all their models in one program, padded, as dense
    covariances; larger ones run one program per covariance model, each over the K of its
    models padded to the largest (with the others' components switched off). ``init_params``
    (one model only) are its parameters; ``noise_mask`` (with ``settings.noise``) the rows
    that start as noise. See :func:`run_restarts` for the rest."""
    n_rows, n_features = X.shape
    if init == "hc":
        n_init = 1  # the hierarchical start draws nothing: more restarts would repeat it
    small = mesh is None and is_small(n_rows, n_features)
    if small:
        X, sample_weight = pad_rows(X, sample_weight, padded_rows(n_rows))
        if noise_mask is not None:  # padding rows weigh 0: not noise, not anything
            noise_mask = np.pad(noise_mask, (0, X.shape[0] - n_rows))
        groups = small_fit_programs(
            [u for u, _ in models], settings.prior is not None, in_turn=restarts_in_turn(small)
        )
    else:
        units = list(dict.fromkeys(unit for unit, _ in models))
        groups = [(u, [m for m, (unit, _) in enumerate(models) if unit is u]) for u in units]
    fits: dict[int, ModelFit] = {}
    shared_starts = None
    if len(groups) > 1:
        dense = not all(engine_unit.diagonal_scatter for engine_unit, _ in groups)
        shared_starts = SharedStarts(dense, {})
    for engine_unit, members in groups:
        ks = [models[m][1] for m in members]
        dense = isinstance(engine_unit, AnyModel)
        # a small fit pads K to its bucket, so that a new K compiles nothing (given parameters
        # of a model of its own program keep their K)
        padded = dense or (small and init_params is None)
        n_components = padded_components(max(ks)) if padded else max(ks)
        layout = None
        if padded or len(members) > 1:
            model = [engine_unit.index(models[m][0]) if dense else 0 for m in members]
            layout = jax.device_put(
                _engine.Layout(
                    restart_ids=np.tile(np.arange(n_init, dtype=np.int32), len(members)),
                    n_active=np.repeat(np.asarray(ks, np.int32), n_init),
                    model=np.repeat(np.asarray(model, np.int32), n_init),
                )
            )
        given = init_params
        if given is not None and dense:
            given = dense_params(given, n_components, models[members[0]][0])
        state, traces, finished, interrupted = run_restarts(
            key,
            X,
            sample_weight,
            unit=engine_unit,
            n_components=n_components,
            n_init=n_init * len(members),
            init=init,
            settings=settings,
            init_params=given,
            layout=layout,
            callback=callback,
            block_size=block_size,
            mesh=mesh,
            checkpoint=checkpoint,
            interruptible=interruptible,
            prefer_nondegenerate=prefer_nondegenerate,
            scores=n_init if scores else 0,  # only each model's chosen restart is read
            noise_mask=noise_mask,
            shared_starts=shared_starts,
        )
        state, finished = jax.device_get((state, finished))
        traces = np.ascontiguousarray(np.asarray(traces).T)
        for position, m in enumerate(members):
            unit, k = models[m]
            group = slice(position * n_init, (position + 1) * n_init)
            params = jax.tree_util.tree_map(lambda a, g=group: a[g], finished.params)
            params = model_params(params, k, unit) if dense else trim_params(params, k, unit)
            fits[m] = host_fit(
                state,
                traces,
                finished,
                group,
                params,
                prefer_nondegenerate=prefer_nondegenerate,
                interrupted=interrupted,
            )
    return [fits[m] for m in range(len(models))]


def host_fit(
    state, traces, finished, group: slice, params, *, prefer_nondegenerate, interrupted=False
) -> ModelFit:
    """The :class:`ModelFit` of the restarts ``group`` of a finished batch, on the host: the
    best chosen among them, every one's outcome kept, traces ``(n_init, T)`` trimmed to the
    longest run."""
    failed = state.failed[group]
    degenerate = finished.degenerate[group]
    lower_bound, n_iter = state.lower_bound[group], state.n_iter[group]
    best = int(best_restart(lower_bound, failed, degenerate, prefer_nondegenerate, xp=np))
    traces = traces[group, : int(n_iter.max(initial=0))]
    outcome = RestartOutcome(
        lower_bound=lower_bound,
        lower_bounds=traces,
        n_iter=n_iter,
        converged=state.converged[group],
        failed=failed,
        degenerate=degenerate,
        params=params,
    )
    result = FitResult(
        params=jax.tree_util.tree_map(lambda a: a[best], params),
        lower_bound=lower_bound[best],
        lower_bounds=traces[best, : n_iter[best]],
        n_iter=n_iter[best],
        converged=outcome.converged[best],
        best_restart=np.asarray(best),
        restarts=outcome,
        interrupted=np.asarray(interrupted),
    )
    nan = float("nan")
    scored = finished.log_likelihood is not None
    return ModelFit(
        result,
        float(finished.log_likelihood[group][best]) if scored else nan,
        float(finished.entropy[group][best]) if scored else nan,
        float(finished.hard_cost[group][best]) if scored else nan,
    )


QUICK_ITERATIONS_ROWS = 2048

# From this many rows a grid's k-means start compiles with XLA's default CPU options, not those
# of the programs run once (``run_restarts``): its Lloyd iterations then ran faster (4 types x
# K = 1..9 x 4 restarts, 449 Lloyd iterations in all; 1e5 x 8: 1.30 -> 1.05 s, compiled in 0.3 s
# more; 1e4 x 8: 0.12 s either way; best of five in a process, 2-core VM, 2026-12-06).
_KMEANS_DEFAULT_OPTIONS_ROWS = 1 << 16


def _start_table(
    key,
    init,
    X,
    sample_weight,
    gaussian_weight,
    layout,
    shared_starts,
    *,
    n_components,
    n_init,
    blocks,
    missing,
    small,
):
    """The start's method and the table it reads (:func:`init_table`). Within a grid
    (``shared_starts`` a :class:`SharedStarts`), neither the "kmeans" start up to its M-step
    nor the "hc" tree depends on the covariance model: the first program of a batch of
    restarts computes the centres and their statistics once, and every model's start is its
    M-step from them (method "statistics"; 4 types x K = 1..9 x 4 restarts on 1e5 x 8, again
    in a process: the four starts 1.45 -> 0.016 s, the k-means program 1.34 -> 1.60 s; 2-core
    VM, 2026-12-06); the first program cuts the tree for every K of the grid, and the others
    read its partitions."""
    trees = None if shared_starts is None else shared_starts.made
    if init != "kmeans" or shared_starts is None:
        return init, init_table(key, init, X, gaussian_weight, n_components, n_init, layout, trees)
    batch = (n_components, n_init, blocks) + (
        ()
        if layout is None
        else (np.asarray(layout.restart_ids).tobytes(), np.asarray(layout.n_active).tobytes())
    )
    made = shared_starts.made
    if batch not in made:
        made[batch] = _engine.kmeans_start(
            init_table(key, init, X, gaussian_weight, n_components, n_init, layout),
            X,
            sample_weight,
            gaussian_weight,
            layout,
            n_components=n_components,
            blocks=blocks,
            missing=missing,
            dense=shared_starts.dense,
            # Lloyd's many passes over larger data run faster with XLA's default CPU options
            small=small and X.shape[0] < _KMEANS_DEFAULT_OPTIONS_ROWS,
        )
    return "statistics", made[batch]


def run_restarts(
    key,
    X,
    sample_weight,
    *,
    unit,
    n_components: int,
    n_init: int,
    init: str,
    settings: EMSettings,
    init_params=None,
    layout=None,
    traced: bool = False,
    callback=None,
    chunk_iterations: int = _host_loop.CHUNK_ITERATIONS,
    block_size: int | None = None,
    mesh=None,
    checkpoint=None,
    interruptible: bool = False,
    prefer_nondegenerate: bool = True,
    scores: int = 0,
    noise_mask=None,
    shared_starts: SharedStarts | None = None,
):
    """EM for a batch of restarts of one program (one ``unit``, ``n_components`` components,
    the batch's ``layout``), on validated data. Returns the final state, the lower-bound traces
    ``(T, n_init)`` (NaN where a restart was not running), the :class:`jaxgmm._engine.Finished`
    outcome (parameters in the data's frame), and whether a Ctrl-C stopped it early.

    Outside transformations the iterations run in compiled chunks of ``chunk_iterations``; after
    each, ``callback(Progress)`` is called if given, the ``checkpoint`` file (a path) is
    rewritten, and the loop ends once every restart is done. An existing checkpoint of the same
    fit is resumed. The chunk length changes nothing in the result; the block size (rows per
    block of the pass over the data, by default from the shapes) only the rounding.
    ``shared_starts``, kept across the programs of a grid, holds the starts they share
    (:func:`_start_table`)."""
    n_devices = 1 if mesh is None else mesh.size
    rows, n_features = X.shape[0] // n_devices, X.shape[1]

    missing = settings.statistics == Missing.name
    small = mesh is None and is_small(rows, n_features)  # its time is compilation
    ks = None if layout is None else np.asarray(layout.n_active)
    grid = ks is not None and len(set(ks)) > 1  # several K
    in_turn = restarts_in_turn(small, grid=mesh is None and grid)
    # The programs a grid runs once (k-means start, start, finish) compile with the CPU options
    # of small fits, in about half the time, and ran as fast: 4 types x K = 1..9 x 4 restarts,
    # cold 11.7 -> 9.4 s (1e4 x 8) and 18.0 -> 15.8 s (1e5 x 8), again 0.75 and 6.0 s before
    # and after (2-core VM, 2026-12-06). Its iterations keep XLA's defaults (with the small
    # options: again 0.87 and 6.7 s).
    run_once = small or in_turn
    # A tiny fit of one K (at most QUICK_ITERATIONS_ROWS rows, padded) compiles its iterations
    # as its start, without XLA's backend optimisation: they then run in milliseconds anyway,
    # and compile in a third less time (faithful's first fit, cold: 1.02-1.16 -> 0.79-0.87 s,
    # each later fit 6.1-6.5 -> 7.5-8.3 ms); a grid's iterations ran 1.7x slower (faithful,
    # 4 types x K = 1..8 x 4 restarts, again 0.27 -> 0.45 s), as a fit of 16,000 x 2, K = 8
    # (0.20 -> 0.37 s; 2-core VM, 2026-12-07).
    quick_iterations = small and rows <= QUICK_ITERATIONS_ROWS and not grid
    start_form = named_form(Missing.name, settings.missing_width) if missing else Exact

    # In turn, a restart's iterations pass over the components its bucket of K holds. The
    # programs run once (start, finish) make one pass over all: one branch where the buckets
    # make three, which compiles in 60% of the time and runs about as fast (4 types x K = 1..9
    # x 4 restarts on 1e4 x 8: cold 8.7 -> 8.0 s, again 0.72-0.75 s; 2-core VM, 2026-12-06).
    component_sizes = ()
    if in_turn:
        ks_run = [n_components] if ks is None else ks
        buckets = {min(padded_components(int(k)), n_components) for k in ks_run}
        component_sizes = tuple(sorted(buckets))

    def blocks_for(form, component_sizes=()) -> Blocks:
        # a given block size serves every form; by default the expanded one reads longer blocks,
        # the missing one shorter (it holds each row's K factors of the precision's missing block)
        features = n_features * n_features if form.name == Missing.name else n_features
        # restarts in turn hold one restart's intermediates at a time
        batch = 1 if in_turn else n_init
        size = block_size or default_block_size(
            rows,
            n_components,
            features,
            batch,
            expanded_width=form.row_width(unit, n_features),
            in_turn=in_turn,
        )
        return Blocks(int(size), mesh, in_turn, component_sizes)

    start_blocks = blocks_for(start_form)
    print_ = None
    if checkpoint is not None:
        print_ = _checkpoint.fingerprint(
            X,
            sample_weight,
            {
                "key": jax.random.key_data(key),
                "n_components": n_components,
                "covariance_type": unit.name,
                "n_init": n_init,
                "init": init,
                "init_params": []
                if init_params is None
                else jax.tree_util.tree_leaves(init_params),
                "layout": []
                if layout is None
                else np.concatenate([np.asarray(a).ravel() for a in layout]),
                "tol": float(settings.tol),
                "start_lower_bound": float(settings.start_lower_bound),
                "reg_covar": float(settings.reg_covar),
                "prior": settings.prior is not None,  # one data set has one default prior
                "noise": [] if noise_mask is None else [settings.noise, noise_mask],
                "block_size": start_blocks.size,
                "devices": n_devices,
            },
        )
    if mesh is not None:
        X, sample_weight, *noise_mask = shard_rows(X, sample_weight, mesh, noise_mask)
        noise_mask = noise_mask[0] if noise_mask else None
    elif noise_mask is not None:
        noise_mask = jax.device_put(noise_mask)
    resumed = None if checkpoint is None else _checkpoint.load(checkpoint, print_, _engine.State)
    gaussian_weight = sample_weight  # the rows the Gaussians start from (hc clusters them)
    if missing and init == "hc":  # hc clusters the complete rows
        complete = ~jnp.any(jnp.isnan(X), axis=1)
        gaussian_weight = jnp.where(complete, 1.0 if sample_weight is None else sample_weight, 0.0)
    if noise_mask is not None:
        gaussian_weight = _engine.outside(noise_mask, sample_weight, X.dtype)
    form = choose_form(
        settings.statistics,
        unit,
        rows=rows,
        n_features=n_features,
        traced=traced,
        missing_width=settings.missing_width,
    )
    iteration_settings = settings.with_form(form)
    iteration_blocks = blocks_for(form, component_sizes)

    def advance_arguments(state, Xc, n_steps):
        static = dict(
            unit=unit, blocks=iteration_blocks, n_steps=n_steps, small=small, quick=quick_iterations
        )
        return (state, Xc, sample_weight, iteration_settings), static

    def finish_arguments(state, Xc, data_var, centre):
        static = dict(
            unit=unit,
            blocks=start_blocks,
            prefer_nondegenerate=bool(prefer_nondegenerate),
            scores=scores,
            small=run_once,
            # a small fit's finish runs once, briefly, as its start: faithful's and iris's
            # 14-model selections cold 2.9-3.0 -> 2.7-2.8 s and 3.3-3.4 -> 3.1 s, again
            # unchanged (2026-12-06)
            quick=isinstance(unit, AnyModel),
        )
        return (state, Xc, sample_weight, data_var, centre, settings), static

    if resumed is None:
        start_init, table = _start_table(
            key,
            init,
            X,
            sample_weight,
            gaussian_weight,
            layout,
            shared_starts,
            n_components=n_components,
            n_init=n_init,
            blocks=start_blocks,
            missing=missing,
            small=run_once,
        )
        start_arguments = (key, table, X, sample_weight, settings, init_params, layout, noise_mask)
        start_static = dict(
            unit=unit,
            n_components=n_components,
            n_init=n_init,
            init=start_init,
            blocks=start_blocks,
            small=run_once,
            quick=isinstance(unit, AnyModel),  # a small fit: the start runs once, briefly
        )
        if not traced:  # compile the iterations and the finish while the start compiles
            lowered = _engine.start.compile_ahead(*start_arguments, **start_static)
            if lowered is not None:
                Xc, centre, data_var, state = lowered.out_info
                args, static = advance_arguments(state, Xc, chunk_iterations)
                _engine.advance.compile_ahead(*args, **static)
                args, static = finish_arguments(state, Xc, data_var, centre)
                _engine.finish.compile_ahead(*args, **static)
        Xc, centre, data_var, state = _engine.start(*start_arguments, **start_static)
        traces = np.zeros((0, n_init), X.dtype)
    else:
        Xc, centre, data_var = _engine.prepare(X, sample_weight, mesh=mesh, missing=missing)
        state, traces = resumed
        replicated = None if mesh is None else NamedSharding(mesh, P())
        state = jax.tree_util.tree_map(lambda a: jax.device_put(a, replicated), state)

    def advance(state, n_steps):
        args, static = advance_arguments(state, Xc, n_steps)
        return _engine.advance(*args, **static)

    interrupted = False
    if traced:
        state, traces, _ = advance(state, n_steps=settings.max_iter)
    else:
        if settings.max_iter == 0 and state.pending is not None:  # the start's M-step only
            state, _, _ = advance(state, n_steps=chunk_iterations)
        save = None
        if checkpoint is not None:

            def save(state, traces):
                _checkpoint.save(checkpoint, state, traces, print_)

        state, traces, interrupted = _host_loop.iterate(
            state,
            advance,
            traces,
            max_iter=settings.max_iter,
            chunk_iterations=chunk_iterations,
            callback=callback,
            checkpoint=save,
            interruptible=interruptible,
        )
    args, static = finish_arguments(state, Xc, data_var, centre)
    finished = _engine.finish(*args, **static)
    return state, traces, finished, interrupted


@with_matmul_precision
def fit(
    key: jax.Array,
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
    previous_lower_bound: float | None = None,
    prior: str | None = None,
    noise=None,
    missing: str = "error",
) -> FitResult:
    """Fit a Gaussian mixture by EM, ``n_init`` restarts at once.

    Parameters
    ----------
    key : PRNG key
        Restart i is initialised from ``fold_in(key, i)``; the same key gives the same result.
    X : (N, D) array
        float32, or float64 with JAX's 64-bit mode on (never silently downcast).
    n_components : int
    covariance_type : str
        A name of ``jaxgmm.COVARIANCE_TYPES``: "full", "tied", "diag", "spherical", or mclust's
        "EII", "EEI", "EVI", "EEV", "EVV" (mclust's VVV, EEE, VVI and VII name the first four).
    n_init : int
        Restarts, fitted together with ``vmap``.
    max_iter : int
        EM iterations per restart (0 returns the initial parameters).
    tol : float
        A restart has converged, and stops, when its lower bound changes by less than ``tol``
        between two iterations (scikit-learn's rule; ``tol=0`` runs ``max_iter`` iterations).
    reg_covar : float
        Added to the diagonal of every covariance.
    init : {"kmeans", "k-means++", "random", "random_from_data", "hc"} or GMMParams
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
        How an iteration computes densities and scatters (``jaxgmm._statistics``). "exact":
        from ``x - mean`` per component, exact whatever the geometry. "expanded": the
        exponential-family form (two matrix products with the features ``(x, x x^T)``), faster
        for small D but losing up to about ``eps * z^2`` relative accuracy, with ``z`` the
        largest distance of a component mean from the data's centre along one feature, in that
        component's standard deviations of the feature. "auto" (default) takes "expanded" while
        that predicted error stays below ``EXPANDED_RTOL`` (checked in the program at every
        iteration), for full covariances only up to 16 features; "exact" under JAX
        transformations and for small data.
    previous_lower_bound : float, optional
        When ``init`` holds the parameters of an earlier fit being continued, that fit's last
        lower bound: the first iteration's convergence test compares with it (scikit-learn's
        ``warm_start``), so continuing a converged fit stops after one iteration.
    prior : {None, "default"}
        "default": mclust's conjugate prior (``jaxgmm._prior``), MAP estimates; the lower bound
        is then the log posterior per sample.
    noise : None, False, True or (N,) bool array
        Add mclust's noise component (``jaxgmm._noise``): a uniform density ``1 / V`` over the
        data's region (V as mclust's ``hypvol``, fixed) with its own weight
        (``params.noise``), for points no Gaussian explains. The Gaussians start from the rows
        outside an initial noise mask: the one given, or for True the sparsest 15% of the rows
        (``jaxgmm._noise.default_noise_mask``). Not under JAX transformations.
    missing : {"error", "em"}
        "em": NaN marks a value missing at random, and EM uses every observed coordinate
        (``jaxgmm._missing``): each row's density is its marginal over its observed values, and
        the M-step takes the missing ones in expectation. Rows missing every value are left
        out, with a warning. "error" (default) refuses NaN.

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

    Notes
    -----
    A first Ctrl-C during the fit stops it after the running chunk of iterations and returns
    the best result so far, with ``interrupted`` set; a second one aborts.

    Examples
    --------
    >>> import jax, numpy as np, jaxgmm
    >>> X = jaxgmm.lesson_data().astype(np.float32)
    >>> result = jaxgmm.fit(jax.random.key(0), X, 2, n_init=4)
    >>> result.params.means.shape, result.restarts.lower_bound.shape
    ((2, 2), (4,))
    >>> bool(result.converged), int(result.best_restart) in range(4)
    (True, True)
    """
    unit, n_components, n_init, settings = check_settings(
        n_components=n_components,
        covariance_type=covariance_type,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        statistics=statistics,
    )
    traced = is_traced(key, X, sample_weight, init, settings.tol, settings.reg_covar)
    if previous_lower_bound is not None:
        if not isinstance(init, GMMParams):
            raise ValueError("previous_lower_bound continues a fit: give its parameters as init")
        settings = dataclasses.replace(
            settings,
            start_lower_bound=check_float(previous_lower_bound, "previous_lower_bound", -np.inf),
        )
    X, sample_weight, missing_width = _check_data(
        X, sample_weight, n_components, check_missing(missing)
    )
    settings = with_missing(settings, missing_width, statistics)
    settings = with_prior(settings, prior, unit, X, sample_weight)
    settings, initial_noise = with_noise(settings, noise, X, sample_weight, traced)
    init_name, init_params = check_init(
        init,
        n_components=n_components,
        n_features=X.shape[1],
        unit=unit,
        dtype=X.dtype,
        n_init=n_init,
    )
    options = dict(
        n_init=n_init,
        init=init_name,
        init_params=init_params,
        settings=settings,
        block_size=None if block_size is None else check_int(block_size, "block_size", 1),
        mesh=as_mesh(devices),
        prefer_nondegenerate=prefer_nondegenerate,
    )
    if traced:  # one program, traced into the caller's
        state, traces, finished, _ = run_restarts(
            key, X, sample_weight, unit=unit, n_components=n_components, traced=True, **options
        )
        return _engine.traced_result(state, traces, finished)
    (fitted,) = run_models(
        key,
        X,
        sample_weight,
        [(unit, n_components)],
        callback=callback,
        checkpoint=checkpoint,
        interruptible=True,
        noise_mask=initial_noise,
        **options,
    )
    check_failures(fitted.result)
    return jax.device_put(fitted.result)


def check_failures(result: FitResult) -> None:
    """Raise, with advice, when every restart failed."""
    failed = np.asarray(result.restarts.failed)
    if failed.all():
        raise ValueError(_engine.FAILURE_ADVICE.format(n_init=len(failed)))
