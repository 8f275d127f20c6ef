"""Sums over blocks of samples, so that no array grows with N x K.

An EM iteration only needs sums over samples (responsibility masses, first moments, scatters, the
log-likelihood). :func:`blockwise_sum` computes such a sum by scanning over blocks of rows of
``X`` (read in place with ``dynamic_slice``: no padded copy of the data), and adds the blocks'
partial sums with Kahan compensation, so that float32 sums over millions of samples keep their
digits. The block size follows from the shapes (:func:`default_block_size`) and can be
overridden.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import Array, lax

# Elements of the largest per-block intermediate, (restarts, K, block, D): a few MB keeps it in
# the CPU's caches; a GPU wants much more work per step.
_TARGET_ELEMENTS = {"cpu": 1 << 21, "gpu": 1 << 26, "tpu": 1 << 26}
_MIN_BLOCK = 256


def default_block_size(
    n_samples: int,
    n_components: int,
    n_features: int,
    n_batch: int = 1,
    platform: str | None = None,
) -> int:
    """Rows per block so that the (n_batch, K, block, D) intermediates stay near a target size;
    all the data in one block when they fit."""
    platform = platform or jax.default_backend()
    target = _TARGET_ELEMENTS.get(platform, _TARGET_ELEMENTS["gpu"])
    per_row = max(n_batch * n_components * max(n_features, 4), 1)
    block = max(target // per_row, _MIN_BLOCK)
    return int(min(block, n_samples))


def _kahan_add(carry, value):
    total, compensation = carry
    y = jax.tree_util.tree_map(jnp.subtract, value, compensation)
    new_total = jax.tree_util.tree_map(jnp.add, total, y)
    compensation = jax.tree_util.tree_map(lambda t, s, y_: (t - s) - y_, new_total, total, y)
    return new_total, compensation


def blockwise_sum(fn, X: Array, sample_weight: Array | None, block_size: int):
    """``sum over blocks of fn(x_block (B, D), w_block (B,), rows (B,))``, a pytree of arrays.

    ``w_block`` holds the sample weights (ones when ``sample_weight`` is None) and ``rows`` the
    blocks' row numbers. The rows that do not fill a last whole block form a smaller tail block
    of their own.
    """
    n_samples = X.shape[0]
    block_size = min(block_size, n_samples)
    n_blocks, tail = divmod(n_samples, block_size)

    def weights(start, size):
        if sample_weight is None:
            return jnp.ones(size, X.dtype)
        return lax.dynamic_slice_in_dim(sample_weight, start, size)

    def block(i):
        start = i * block_size
        return fn(
            lax.dynamic_slice_in_dim(X, start, block_size),
            weights(start, block_size),
            start + jnp.arange(block_size),
        )

    first = block(0)
    if n_blocks > 1:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, first)

        def body(carry, i):
            return _kahan_add(carry, block(i)), None

        (first, compensation), _ = lax.scan(body, (first, zeros), jnp.arange(1, n_blocks))
    else:
        compensation = None
    if tail:
        start = n_blocks * block_size
        last = fn(X[start:], weights(start, tail), start + jnp.arange(tail))
        if compensation is None:
            return jax.tree_util.tree_map(jnp.add, first, last)
        first, _ = _kahan_add((first, compensation), last)
    return first
