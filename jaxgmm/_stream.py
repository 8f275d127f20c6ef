"""EM over data larger than memory: one pass over the data per iteration, block by block.

The data stay where they are (a NumPy memmap of a ``.npy`` file, an HDF5 dataset, or any source
of blocks); each block is moved to the device, every restart's statistics are accumulated from it
(Kahan-summed across blocks), and the M-step runs once the pass is complete. The arithmetic is
the in-memory fit's, so from the same starting point both give the same result up to rounding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from . import _engine
from ._blocks import Blocks, kahan_add
from ._fit import check_failures, check_init, check_settings, host_fit, initialize
from ._host_loop import iterate
from ._matmul_precision import with_matmul_precision
from ._params import FitResult, GMMParams
from ._statistics import Exact
from ._validation import check_int, float_dtype

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


def _first_pass(data, block_size: int, subsample: int, seed: int):
    """Rows, features, dtype, the mean and per-feature variance (in float64, around the first
    row), a uniform random subsample of rows (reservoir sampling), and finiteness checked with
    the position of the first bad value."""
    rng = np.random.default_rng(seed)
    anchor = total = squares = None
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
            anchor = block[0].astype(np.float64)
            total = np.zeros(n_features)
            squares = np.zeros(n_features)
        elif block.shape[1] != n_features:
            raise ValueError(f"data blocks have {block.shape[1]} columns after {n_features}")
        values = block.astype(np.float64)
        bad = ~np.isfinite(values)
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise ValueError(
                f"data contain {int(bad.sum())} non-finite values in the block at "
                f"row {n_rows}; the first is at row {n_rows + row}, column {column} "
                "(0-based)"
            )
        offsets = values - anchor
        total += offsets.sum(axis=0)
        squares += np.square(offsets).sum(axis=0)
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
    mean_offset = total / n_rows
    variance = squares / n_rows - np.square(mean_offset)
    return n_rows, n_features, dtype, anchor + mean_offset, variance, np.stack(reservoir)


@partial(jax.jit, static_argnames=("unit",))
def _block_sums(carry, xb, wb, rows, centre, params, *, unit):
    stats = _engine.restart_statistics(xb - centre, wb, rows, params, unit, Exact)
    return kahan_add(carry, stats)


@partial(jax.jit, static_argnames=("unit",))
def _stream_update(state, stats, settings, *, unit):
    return _engine.update(state, stats, settings, unit=unit, unit_weight=1.0)


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
    callback : callable, optional
        Called with a :class:`jaxgmm.Progress` after every iteration.

    Returns
    -------
    FitResult, as :func:`jaxgmm.fit` (sample weights are not supported here).

    Passes over the data: one to check them and compute their mean, variance and subsample,
    then one per EM iteration.
    """
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
    n_rows, n_features, dtype, mean, variance, sample = _first_pass(
        data, block_size, check_int(subsample, "subsample", 1), seed
    )
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
    state = _engine.initial_state(params._replace(means=params.means - centre))
    passes = _Pass(min(block_size, n_rows), n_features, dtype)

    def one_pass(state, n_steps):
        carry = None
        for xb, wb, row_ids in passes(data):
            if carry is None:
                shapes = jax.eval_shape(
                    partial(_engine.restart_statistics, unit=unit, form=Exact),
                    xb,
                    wb,
                    row_ids,
                    state.params,
                )
                zero = jax.tree_util.tree_map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)
                carry = (zero, zero)
            carry = _block_sums(carry, xb, wb, row_ids, centre, state.params, unit=unit)
        state, bounds = _stream_update(state, carry[0], settings, unit=unit)
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
