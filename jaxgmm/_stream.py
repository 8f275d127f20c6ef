"""EM over data larger than memory: one pass over the data per iteration, block by block.

The data stay where they are (a NumPy memmap of a ``.npy`` file, an HDF5 dataset, or any source
of blocks); each block is moved to the device, every restart's statistics are accumulated from it
(Kahan-summed across blocks), and the M-step runs once the pass is complete. The arithmetic is
the in-memory fit's, so from the same starting point both give the same result up to rounding.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from . import _engine
from ._blocks import Blocks, default_block_size, kahan_add
from ._fit import check_failures, check_init, check_settings, host_fit, initialize
from ._host_loop import iterate
from ._matmul_precision import with_matmul_precision
from ._missing import check_missing
from ._params import FitResult, GMMParams
from ._prior import DEFAULT_SHRINKAGE, Prior, check_prior
from ._statistics import Exact, Missing
from ._validation import MISSING_ADVICE, check_int, float_dtype

DEFAULT_BLOCK_ROWS = 65_536
DEFAULT_SUBSAMPLE = 100_000


def read_blocks(data, block_size: int, dtype=None) -> Iterator[np.ndarray]:
    """The blocks of ``data`` (an array read by row slices, or a function that starts a pass
    and yields blocks) as NumPy arrays, cast to ``dtype`` when given."""
    blocks = (
        data()
        if callable(data)
        else (data[start : start + block_size] for start in range(0, data.shape[0], block_size))
    )
    for block in blocks:
        yield np.asarray(block, dtype=dtype)


class _Pass:
    """Moves host blocks to the device as fixed-size padded blocks (one compiled shape), with
    their weights (zero for padding) and global row numbers."""

    def __init__(self, block_size: int, n_features: int, dtype):
        self.block_size = block_size
        self.n_features = n_features
        self.dtype = dtype

    def __call__(self, data) -> Iterator[tuple]:
        row = 0
        for block in read_blocks(data, self.block_size):
            for start in range(0, len(block), self.block_size):
                part = np.asarray(block[start : start + self.block_size], dtype=self.dtype)
                n = len(part)
                padded = np.empty((self.block_size, self.n_features), self.dtype)
                padded[:n] = part
                padded[n:] = part[:1]
                weights = np.zeros(self.block_size, self.dtype)
                weights[:n] = 1.0
                yield (
                    jax.device_put(padded),
                    jax.device_put(weights),
                    jax.device_put(np.arange(row, row + self.block_size)),
                )
                row += n


class FirstPass(NamedTuple):
    """What the first pass over the data learns: their shape and dtype, the mean and variance
    of each column (of its observed values), the covariance of the data with each missing value
    replaced by its column's mean (divisor N - 1, as the default prior's), a uniform random
    subsample of rows, and the most values missing in a row (0: none)."""

    n_rows: int
    n_features: int
    dtype: np.dtype
    mean: np.ndarray
    variance: np.ndarray
    covariance: np.ndarray
    sample: np.ndarray
    missing_width: int


def _first_pass(data, block_size: int, subsample: int, seed: int, missing: bool) -> FirstPass:
    """The :class:`FirstPass`, in float64 around the first row (reservoir sampling for the
    subsample), and the data checked: NaN (unless ``missing``) or inf is refused with the
    position of the first."""
    rng = np.random.default_rng(seed)
    anchor = None
    width = 0
    reservoir: list[np.ndarray] = []
    n_rows = 0
    n_features = None
    dtype = None
    for block in read_blocks(data, block_size):
        if block.ndim != 2 or block.shape[1] == 0:
            raise ValueError(
                f"data blocks must be 2-D with at least one column, got shape {block.shape}"
            )
        if n_features is None:
            n_features, dtype = block.shape[1], float_dtype(block.dtype, "data")
            anchor = np.nan_to_num(block[0].astype(np.float64))
            # sums over observed values of y = x - anchor: counts, y, y^2, and for the
            # covariance of the mean-filled data, (o y)(o y)^T, (o y) o^T and o o^T
            sums = {name: 0.0 for name in ("count", "y", "y2", "yy", "yo", "oo")}
        elif block.shape[1] != n_features:
            raise ValueError(f"data blocks have {block.shape[1]} columns after {n_features}")
        values = block.astype(np.float64)
        bad = np.isinf(values) if missing else ~np.isfinite(values)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(
                f"data contain {int(bad.sum())} {'infinite' if missing else 'non-finite'} "
                f"values in the block at row {n_rows}; the first is at row {n_rows + row}, "
                f"column {column} (0-based)"
                + ("" if missing else f"; {MISSING_ADVICE}" * bool(np.isnan(values).any()))
            )
        observed = ~np.isnan(values)
        width = max(width, int((~observed).sum(axis=1).max(initial=0)))
        o = observed.astype(np.float64)
        y = np.where(observed, values - anchor, 0.0)
        for name, value in (
            ("count", o.sum(axis=0)),
            ("y", y.sum(axis=0)),
            ("y2", np.square(y).sum(axis=0)),
            ("yy", y.T @ y),
            ("yo", y.T @ o),
            ("oo", o.T @ o),
        ):
            sums[name] = sums[name] + value
        for i in range(len(values)):  # reservoir sampling (Vitter's algorithm R)
            seen = n_rows + i
            if seen < subsample:
                reservoir.append(values[i])
            else:
                j = rng.integers(0, seen + 1)
                if j < subsample:
                    reservoir[j] = values[i]
        n_rows += len(values)
    if not n_rows:
        raise ValueError("data hold no rows")
    if np.any(sums["count"] == 0):
        raise ValueError(f"data: column {int(np.argmin(sums['count']))} is missing in every row")
    mean_offset = sums["y"] / sums["count"]
    variance = sums["y2"] / sums["count"] - np.square(mean_offset)
    d = mean_offset  # the mean minus the anchor: the filled values' offsets are o (y - d)
    scatter = (
        sums["yy"]
        - sums["yo"] * d[None, :]
        - d[:, None] * sums["yo"].T
        + sums["oo"] * np.outer(d, d)
    )
    sample = np.stack(reservoir)
    return FirstPass(
        n_rows,
        n_features,
        dtype,
        anchor + mean_offset,
        variance,
        (scatter + scatter.T) / 2 / max(n_rows - 1, 1),
        sample,
        width,
    )


@partial(jax.jit, static_argnames=("unit", "form"))
def _block_sums(carry, xb, wb, rows, centre, params, *, unit, form):
    stats = _engine.restart_statistics(xb - centre, wb, rows, params, unit=unit, form=form)
    return kahan_add(carry, stats)


def _summed_statistics(passes, data, params, centre, *, unit, form):
    """Every restart's statistics of one pass over ``data`` from disk, block by block, summed
    with Kahan's compensation."""
    carry = None
    for xb, wb, row_ids in passes(data):
        if carry is None:
            shapes = jax.eval_shape(
                partial(_engine.restart_statistics, unit=unit, form=form), xb, wb, row_ids, params
            )
            zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
            carry = (zero, zero)
        carry = _block_sums(carry, xb, wb, row_ids, centre, params, unit=unit, form=form)
    return carry[0]


@partial(jax.jit, static_argnames=("unit",))
def _stream_update(state, stats, settings, *, unit):
    return _engine.update(state, stats, settings, unit=unit, unit_weight=1.0)


class Start(NamedTuple):
    """A streamed fit's start: the settings, the first pass, the statistics' form, every
    restart's initial parameters (centred, leading axis ``n_init``), the centre and the pass."""

    unit: object
    settings: object
    first: FirstPass
    form: object
    params: GMMParams
    centre: jax.Array
    passes: _Pass


def _start(
    key,
    data,
    n_components,
    *,
    covariance_type,
    n_init,
    max_iter,
    tol,
    reg_covar,
    init,
    block_size,
    subsample,
    missing="error",
) -> Start:
    """The first pass over the data, and the restarts' initial parameters from its
    subsample (see :func:`fit_stream`)."""
    unit, n_components, n_init, settings = check_settings(
        n_components=n_components,
        covariance_type=covariance_type,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
    )
    block_size = check_int(block_size, "block_size", 1)
    seed = int(np.asarray(jax.random.key_data(key)).ravel()[-1])
    first = _first_pass(
        data, block_size, check_int(subsample, "subsample", 1), seed, check_missing(missing)
    )
    n_rows, n_features, dtype, mean, variance = first[:5]
    sample = first.sample
    form = Exact
    if first.missing_width:
        form = Missing(first.missing_width)
        settings = dataclasses.replace(
            settings, statistics=Missing.name, missing_width=first.missing_width
        )
        sample = np.where(np.isnan(sample), mean, sample)
        block_size = min(block_size, default_block_size(n_rows, n_components, n_features**2))
    if n_components > n_rows:
        raise ValueError(
            f"n_components={n_components} is larger than the number of samples (N={n_rows})"
        )
    init_name, params = check_init(
        init,
        n_components=n_components,
        n_features=n_features,
        unit=unit,
        dtype=dtype,
        n_init=n_init,
    )
    if params is None:
        params = initialize(
            key,
            sample.astype(dtype),
            n_components,
            covariance_type=unit.name,
            n_init=n_init,
            init=init_name,
            reg_covar=settings.reg_covar,
        )
    centre = jax.device_put(mean.astype(dtype))
    params = _engine.batched(params, n_init)
    params = params._replace(means=params.means - centre)
    passes = _Pass(min(block_size, n_rows), n_features, dtype)
    return Start(unit, settings, first, form, params, centre, passes)


@with_matmul_precision
def fit_stream(
    key,
    data,
    n_components: int,
    *,
    covariance_type: str = "full",
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str | GMMParams = "kmeans",
    block_size: int = DEFAULT_BLOCK_ROWS,
    subsample: int = DEFAULT_SUBSAMPLE,
    prefer_nondegenerate: bool = True,
    callback: Callable | None = None,
    prior: str | None = None,
    missing: str = "error",
) -> FitResult:
    """Fit a Gaussian mixture to data that need not fit in memory.

    Parameters
    ----------
    key : PRNG key
    data : array-like (N, D) read by row slices, or a callable returning an iterable of blocks
        A NumPy memmap (``numpy.load(path, mmap_mode="r")``), an HDF5 dataset, or a function
        that starts a fresh pass over the data each time it is called and yields 2-D arrays.
    n_components, covariance_type, n_init, max_iter, tol, reg_covar, prefer_nondegenerate
    matmul_precision
        As in :func:`jaxgmm.fit`.
    init : {"kmeans", "k-means++", "random", "random_from_data", "hc"} or GMMParams
        A method is applied to a uniform random subsample of ``subsample`` rows drawn in the
        first pass (parameters are then refined by EM on all the data); ``GMMParams`` are used
        as they are.
    block_size : int
        Rows moved to the device at a time.
    subsample : int
        Rows of the uniform random subsample, drawn in the first pass, on which ``init``'s
        method runs.
    callback : callable, optional
        Called with a :class:`jaxgmm.Progress` after every iteration.
    prior : {None, "default"}
        As in :func:`jaxgmm.fit`: mclust's default prior, from the first pass's mean and
        covariance.
    missing : {"error", "em"}
        As in :func:`jaxgmm.fit`, except that rows missing every value are kept: they carry no
        information and leave EM's fixed point where it is (they count in N). The start is
        drawn from the subsample with each missing value replaced by its column's mean; the
        blocks sent to the device are shorter (each row holds K factors of D x D).

    Returns
    -------
    FitResult
        As :func:`jaxgmm.fit`'s (sample weights are not supported here).

    Notes
    -----
    Passes over the data: one to check them and compute their mean, variance and subsample,
    then one per EM iteration.

    Examples
    --------
    >>> import jax, numpy as np, tempfile, os, jaxgmm
    >>> path = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(path, jaxgmm.lesson_data().astype(np.float32))
    >>> result = jaxgmm.fit_stream(jax.random.key(0), np.load(path, mmap_mode="r"), 2)
    >>> means = np.asarray(result.params.means)
    >>> np.allclose(means[means[:, 0].argsort()], [[-2, 0], [2, 1]], atol=0.1)
    True
    """
    start = _start(
        key,
        data,
        n_components,
        covariance_type=covariance_type,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        init=init,
        block_size=block_size,
        subsample=subsample,
        missing=missing,
    )
    unit, settings, first, form, params, centre, passes = start
    n_features, dtype, variance = first.n_features, first.dtype, first.variance
    if check_prior(prior, unit) is not None:  # the data's, around their mean: mean zero
        settings = dataclasses.replace(
            settings,
            prior=Prior(
                shrinkage=jnp.asarray(DEFAULT_SHRINKAGE, dtype),
                mean=jnp.zeros(n_features, dtype),
                dof=jnp.asarray(n_features + 2, dtype),
                covariance=jnp.asarray(first.covariance, dtype),
            ),
        )
    state = _engine.initial_state(params)

    def one_pass(state, n_steps):
        stats = _summed_statistics(passes, data, state.params, centre, unit=unit, form=form)
        state, bounds = _stream_update(state, stats, settings, unit=unit)
        done = not np.asarray(_engine.active(state, settings.max_iter)).any()
        return state, np.asarray(bounds)[None, :], done

    state, traces, interrupted = iterate(
        state,
        one_pass,
        np.zeros((0, n_init), dtype),
        max_iter=settings.max_iter,
        chunk_iterations=1,
        callback=callback,
    )
    finished = _engine.finish(
        state,
        None,
        None,
        jax.device_put(variance.astype(dtype)),
        centre,
        settings,
        unit=unit,
        blocks=Blocks(passes.block_size),
        prefer_nondegenerate=bool(prefer_nondegenerate),
    )
    state, finished = jax.device_get((state, finished))
    fitted = host_fit(
        state,
        np.ascontiguousarray(traces.T),
        finished,
        slice(None),
        finished.params,
        prefer_nondegenerate=prefer_nondegenerate,
        interrupted=interrupted,
    )
    check_failures(fitted.result)
    return jax.device_put(fitted.result)


def fit_stream_variational(
    key,
    data,
    n_components: int,
    *,
    covariance_type: str,
    weight_type: str,
    prior_of,
    n_init: int = 1,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans",
    block_size: int = DEFAULT_BLOCK_ROWS,
    subsample: int = DEFAULT_SUBSAMPLE,
    callback: Callable | None = None,
):
    """Variational Bayes (``jaxgmm._variational``) over data read in blocks, one pass per
    iteration, as :func:`fit_stream` runs EM: the same first pass and start, the variational
    E-step's statistics summed over the blocks. ``prior_of(first)`` makes the prior (in the
    data's frame) from the :class:`FirstPass` (its mean and covariance are the data's). Returns
    the ``VariationalResult`` and the prior."""
    from . import _variational

    start = _start(
        key,
        data,
        n_components,
        covariance_type=covariance_type,
        n_init=n_init,
        max_iter=max_iter,
        tol=tol,
        reg_covar=reg_covar,
        init=init,
        block_size=block_size,
        subsample=subsample,
    )
    unit, settings, first, form, params, centre, passes = start
    prior = prior_of(first)
    dtype = first.dtype
    prior_c = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), prior)
    prior_c = prior_c._replace(mean=prior_c.mean - centre)
    posterior = _variational._start(
        params, jnp.asarray(first.n_rows, dtype), prior_c, unit=unit, weight_type=weight_type
    )
    state = _variational.initial_state(posterior)

    def one_pass(state, n_steps):
        e_params = _variational.e_step_batch(state.posterior, weight_type=weight_type)
        stats = _summed_statistics(passes, data, e_params, centre, unit=unit, form=form)
        state, bounds = _variational.streamed_update(
            state, stats, e_params, settings, prior_c, unit=unit, weight_type=weight_type
        )
        done = not np.asarray(_engine.active(state, settings.max_iter)).any()
        return state, np.asarray(bounds)[None, :], done

    state, traces, interrupted = iterate(
        state,
        one_pass,
        np.zeros((0, n_init), dtype),
        max_iter=settings.max_iter,
        chunk_iterations=1,
        callback=callback,
    )
    return _variational.result(state, traces, centre, interrupted), prior
