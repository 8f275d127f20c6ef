"""Small fits: a few padded shapes and one program for every covariance model.

Every new shape of the data or of the model, and every covariance model, is a new compiled
program: a second or more of compilation for a fit that then runs in milliseconds. Small
problems (``is_small``: at most ``PADDED_ROWS_MAX`` rows, and rows times D^2 at most
``SMALL_WORK``) are therefore fitted

* padded: rows up to the next power of two (at least ``MIN_ROWS``), with weight 0, which adds
  nothing to any sum; components up to the next power of two (at least ``MIN_COMPONENTS``),
  switched off (weight exactly 0, which EM keeps at 0);
* with every covariance model as dense matrices in one program (``AnyModel``), the model a
  number per restart.

The result is the unpadded, specialised fit's up to rounding, trimmed back to the asked K and
turned into the model's own shapes. A padded dense iteration does more work than a specialised
one (up to 2 x 2 x D times), which at these sizes stays within a millisecond; larger problems
are never padded (there an iteration costs more than a compilation is worth saving: at
10,000 x 8, where rows x D^2 = 2^20, ``select`` over 4 models and K = 1..8 ran in 15 s as
dense matrices, against 3.9 s in one specialised program per model, programs compiled).
"""

from __future__ import annotations

import jax
import numpy as np

from ._params import GMMParams

PADDED_ROWS_MAX = 1 << 14
SMALL_WORK = 1 << 17
MIN_ROWS = 128
MIN_COMPONENTS = 4


def _power_of_two(n: int, smallest: int) -> int:
    return max(1 << max(n - 1, 0).bit_length(), smallest)


def is_small(n_rows: int, n_features: int) -> bool:
    """Whether data of this shape are fitted padded, every model in one program."""
    rows = _power_of_two(n_rows, MIN_ROWS)
    return rows <= PADDED_ROWS_MAX and rows * n_features * n_features <= SMALL_WORK


def padded_rows(n_rows: int) -> int:
    """The rows a small fit of ``n_rows`` runs at."""
    return _power_of_two(n_rows, MIN_ROWS)


def padded_components(n_components: int) -> int:
    """The components a small fit of ``n_components`` runs at."""
    return _power_of_two(n_components, MIN_COMPONENTS)


def pad_rows(X, sample_weight, n_rows: int):
    """``X`` (NumPy or JAX) and its weights on the device, with ``n_rows`` rows: the extra rows
    repeat the first one and weigh 0. Weights are returned even when none were given."""
    X = np.asarray(X)
    n = X.shape[0]
    w = np.ones(n, X.dtype) if sample_weight is None else np.asarray(sample_weight, X.dtype)
    if n_rows > n:
        X = np.concatenate([X, np.broadcast_to(X[:1], (n_rows - n, X.shape[1]))])
        w = np.concatenate([w, np.zeros(n_rows - n, X.dtype)])
    return jax.device_put(X), jax.device_put(w)


def dense_params(params: GMMParams, n_components: int, unit) -> GMMParams:
    """Given parameters of ``unit`` (one set, or one per restart) as NumPy arrays of dense
    ``(K, D, D)`` covariances and factors (``AnyModel``'s form), with switched-off components
    appended up to ``n_components``: weight 0, and the first component's mean and covariance as
    finite placeholders."""
    host = jax.tree_util.tree_map(np.asarray, params)
    k, d = host.means.shape[-2:]
    host = host._replace(
        covariances=unit.dense(host.covariances, k, d).astype(host.means.dtype),
        precisions_cholesky=unit.dense(host.precisions_cholesky, k, d).astype(host.means.dtype),
    )
    extra = n_components - k
    if extra <= 0:
        return host

    def grow(a, trailing: int):
        axis = a.ndim - 1 - trailing
        first = np.take(a, [0], axis=axis)
        return np.concatenate([a, np.repeat(first, extra, axis=axis)], axis=axis)

    weights = grow(host.weights, 0)
    weights[..., -extra:] = 0.0
    return host._replace(
        weights=weights,
        means=grow(host.means, 1),
        covariances=grow(host.covariances, 2),
        precisions_cholesky=grow(host.precisions_cholesky, 2),
    )


def trim_params(params: GMMParams, n_components: int, unit) -> GMMParams:
    """The first ``n_components`` components of parameters of ``unit`` (any leading axes)."""
    return params._replace(
        weights=params.weights[..., :n_components],
        means=params.means[..., :n_components, :],
        covariances=unit.first_components(params.covariances, n_components),
        precisions_cholesky=unit.first_components(params.precisions_cholesky, n_components),
    )


def model_params(dense: GMMParams, n_components: int, unit) -> GMMParams:
    """Parameters of ``unit`` with ``n_components`` components from dense padded ones (NumPy,
    any leading axes): the inverse of :func:`dense_params`."""
    return dense._replace(
        weights=dense.weights[..., :n_components],
        means=dense.means[..., :n_components, :],
        covariances=unit.from_dense(dense.covariances[..., :n_components, :, :]),
        precisions_cholesky=unit.from_dense(dense.precisions_cholesky[..., :n_components, :, :]),
    )
