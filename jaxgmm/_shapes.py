"""Shape buckets: small fits run at a few padded shapes, so that a new N or K reuses a program.

Every new shape of the data or of the model is a new compiled program: seconds of compilation
for a fit that then runs in milliseconds. For small data (at most ``PADDED_ROWS_MAX`` rows) a
fit is therefore padded: rows up to the next power of two (at least ``MIN_ROWS``), with weight 0,
which adds nothing to any sum; components up to the next power of two (at least
``MIN_COMPONENTS``), switched off (weight exactly 0, which EM keeps at 0). The result is the
unpadded fit's up to rounding, and trimmed back to the asked K. A padded iteration does at most
twice the work of an unpadded one, which at these sizes is well below a millisecond; larger
data are never padded (there an iteration costs more than a compilation is worth saving).
"""

from __future__ import annotations

import jax
import numpy as np

from ._params import GMMParams

PADDED_ROWS_MAX = 1 << 14
MIN_ROWS = 128
MIN_COMPONENTS = 4


def _power_of_two(n: int, smallest: int) -> int:
    return max(1 << max(n - 1, 0).bit_length(), smallest)


def is_small(n_rows: int) -> bool:
    return n_rows <= PADDED_ROWS_MAX


def padded_rows(n_rows: int) -> int:
    """The rows a fit of ``n_rows`` runs at."""
    return _power_of_two(n_rows, MIN_ROWS) if is_small(n_rows) else n_rows


def padded_components(n_components: int, n_rows: int) -> int:
    """The components a fit of ``n_components`` to ``n_rows`` rows runs at."""
    return _power_of_two(n_components, MIN_COMPONENTS) if is_small(n_rows) else n_components


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


def pad_params(params: GMMParams, n_components: int, unit) -> GMMParams:
    """Given parameters (one set, or one per restart) as NumPy arrays, with switched-off
    components appended up to ``n_components``: weight 0, and the first component's mean and
    covariance as finite placeholders."""
    host = GMMParams(*(np.asarray(a) for a in params))
    extra = n_components - host.weights.shape[-1]
    if extra <= 0:
        return host

    def grow(a, trailing: int):
        axis = a.ndim - 1 - trailing
        first = np.take(a, [0], axis=axis)
        return np.concatenate([a, np.repeat(first, extra, axis=axis)], axis=axis)

    weights = grow(host.weights, 0)
    weights[..., -extra:] = 0.0
    trailing = len(unit.shape(1, host.means.shape[-1])) - 1  # axes after the component axis
    return GMMParams(
        weights=weights,
        means=grow(host.means, 1),
        covariances=host.covariances if unit.shared else grow(host.covariances, trailing),
        precisions_cholesky=host.precisions_cholesky
        if unit.shared
        else grow(host.precisions_cholesky, trailing),
    )


def trim_params(params: GMMParams, n_components: int, unit) -> GMMParams:
    """The first ``n_components`` components of parameters with a leading restart axis."""
    return params._replace(
        weights=params.weights[..., :n_components],
        means=params.means[..., :n_components, :],
        covariances=unit.first_components(params.covariances, n_components),
        precisions_cholesky=unit.first_components(params.precisions_cholesky, n_components),
    )
