"""Small linear-algebra pieces shared by the covariance units."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array, lax


def flip(a: Array) -> Array:
    return jnp.flip(a, axis=(-2, -1))


def eye_like(a: Array) -> Array:
    return jnp.eye(a.shape[-1], dtype=a.dtype)


def symmetric(a: Array) -> Array:
    """The lower triangle mirrored. Exactly symmetric when ``a`` is a buffer already computed;
    when XLA fuses the computation of ``a`` into both triangles it may round the two copies
    differently (multiply-adds in one code path, not in the other), which is why fitted
    covariances are made symmetric once more after the fit (``unit.symmetrize``)."""
    return jnp.tril(a) + jnp.swapaxes(jnp.tril(a, -1), -1, -2)


def inverse_std(data_var: Array) -> Array:
    """1/std per feature, 0 for constant features (which then never count as collapsed)."""
    positive = data_var > 0
    return jnp.where(positive, 1.0 / jnp.sqrt(jnp.where(positive, data_var, 1.0)), 0.0)


def check_symmetric_positive_definite(matrices: np.ndarray, name: str) -> None:
    """Raise a ValueError naming the first of ``(..., D, D)`` matrices that is not symmetric
    positive definite (on the host, in float64)."""
    d = matrices.shape[-1]
    flat = np.asarray(matrices, np.float64).reshape(-1, d, d)
    scale = max(float(np.abs(flat).max()), np.finfo(np.float64).tiny)
    for i, matrix in enumerate(flat):
        where = f" (component {i})" if len(flat) > 1 else ""
        if np.abs(matrix - matrix.T).max() > 1e-6 * scale:
            problem = "is not symmetric"
        elif np.linalg.eigvalsh(matrix)[0] <= 0:
            problem = "is not positive definite"
        else:
            continue
        raise ValueError(f"{name} should be symmetric, positive-definite{where}: it {problem}")


def check_positive(values: np.ndarray, name: str) -> None:
    if np.any(np.asarray(values) <= 0):
        raise ValueError(f"{name} should be positive")


# -- factorisations without LAPACK --
#
# jaxlib's batched LAPACK kernels on CPU (potrf, trsm, ...) split their batch over XLA's
# intra-op thread pool and block until it is done. When one process runs a sharded program on
# several CPU devices, each device's program can sit in such a kernel on a pool thread at once;
# with as many devices as cores no thread is left to do the split work and the fit hangs (seen
# with jaxlib 0.10.2 from D = 32 on 2 cores). Such programs factor with these loops instead:
# plain XLA operations, D steps each, negligible beside a pass over the data.


def cholesky_by_columns(a: Array) -> Array:
    """Lower Cholesky factor of ``(..., D, D)`` matrices, one column per loop step; NaN where a
    matrix is not positive definite (as ``jnp.linalg.cholesky``)."""
    rows = jnp.arange(a.shape[-1])

    def column(j, lower):
        # columns >= j of `lower` are still zero, so the product sums over k < j only
        v = a[..., :, j] - jnp.einsum("...ik,...k->...i", lower, lower[..., j, :])
        pivot = jnp.sqrt(v[..., j])[..., None]
        return lower.at[..., :, j].set(jnp.where(rows >= j, v / pivot, 0.0))

    return lax.fori_loop(0, a.shape[-1], column, jnp.zeros_like(a))


def lower_inverse_by_rows(lower: Array) -> Array:
    """Inverse of lower-triangular ``(..., D, D)`` matrices by forward substitution."""
    eye = jnp.eye(lower.shape[-1], dtype=lower.dtype)

    def row(i, inverse):
        # rows >= i of `inverse` are still zero, so the product sums over k < i only
        rest = jnp.einsum("...k,...kj->...j", lower[..., i, :], inverse)
        return inverse.at[..., i, :].set((eye[i] - rest) / lower[..., i, i][..., None])

    return lax.fori_loop(0, lower.shape[-1], row, jnp.zeros_like(lower))
