"""Sums over blocks of samples, so that no array grows with N x K, on one device or several.

An EM iteration only needs sums over samples (responsibility masses, first moments, scatters, the
log-likelihood). :func:`blockwise_sum` computes such a sum by scanning over blocks of rows of
``X`` (read in place with ``dynamic_slice``: no padded copy of the data), and adds the blocks'
partial sums with Kahan compensation, so that float32 sums over millions of samples keep their
digits. The block size follows from the shapes (:func:`default_block_size`) and can be
overridden.

With a :class:`Blocks` that holds a one-axis ``jax.sharding.Mesh``, ``X`` is sharded along its
rows over the mesh's devices: each device scans its own rows and the partial sums are added
across devices by one ``psum`` (``shard_map``), so an iteration moves only the statistics, never
the data.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ._covariance import without_lapack

# Rows per block: the per-row intermediates times the rows near a target size, within bounds.
# Exact statistics hold (restarts, K, block, D) differences: on the CPU (2 cores, bench notes)
# 512 to 2048 rows ran fastest for every workload, the intermediates staying in cache. Expanded
# ones hold only a row's features (x, q(x)) and the restarts' K log-densities: there blocks of
# 4,096 rows (D = 8, 32 restarts) to 131,072 (D = 2) ran fastest, 1.1-1.5x faster than 4,096 at
# most. A GPU wants far more work per step.
_BLOCKS = {"cpu": (1 << 19, 512, 4096), "gpu": (1 << 26, 4096, 1 << 20)}
# Restarts in turn (one restart's intermediates at a time, on the CPU) ran faster in longer
# blocks. A grid of 4 types x K = 1..9 x 4 restarts on 1e5 x 8, again in a process (2-core VM,
# 2026-12-06): exact blocks of 4,096 rows -> 8,192 (the target above, uncapped), its starts
# 2.17 -> 1.55 s (targets of 2^20 and 2^21 were slower); expanded blocks of 16,384 -> 65,536
# (a target of 2^22), its iterations 3.26 -> 2.51 s (2^23 and 2^24: 2.55 s).
_IN_TURN_BLOCKS = {"exact": (1 << 19, 512, 1 << 17), "expanded": (1 << 22, 512, 1 << 17)}
_EXPANDED_BLOCKS = {"cpu": (1 << 20, 512, 1 << 17), "gpu": (1 << 26, 4096, 1 << 20)}


def default_block_size(
    n_samples: int,
    n_components: int,
    n_features: int,
    n_batch: int = 1,
    platform: str | None = None,
    expanded_width: int = 0,
    in_turn: bool = False,
) -> int:
    """Rows per block for these shapes on this platform (all the rows when they are fewer).

    ``expanded_width``: for the expanded statistics, the width of a row's features
    ``(x, q(x))``; 0 for the exact ones. ``in_turn``: the restarts take their passes one after
    another (``n_batch`` is then 1)."""
    platform = platform or jax.default_backend()
    if expanded_width:
        target, smallest, largest = _EXPANDED_BLOCKS.get(platform, _EXPANDED_BLOCKS["gpu"])
        per_row = expanded_width + n_batch * n_components
    else:
        target, smallest, largest = _BLOCKS.get(platform, _BLOCKS["gpu"])
        per_row = max(n_batch * n_components * max(n_features, 4), 1)
    if in_turn and platform == "cpu":
        target, smallest, largest = _IN_TURN_BLOCKS["expanded" if expanded_width else "exact"]
    # a power of two: a block of 104,857 rows ran 1.8x slower than one of 131,072 (bench notes)
    block = 1 << max(round(math.log2(target / per_row)), 0)
    return int(min(max(block, smallest), largest, n_samples))


class Blocks(NamedTuple):
    """How a pass reads the data: ``size`` rows per block, the ``mesh`` (one axis) over whose
    devices the rows are sharded, if any, and whether the restarts of a batch take their passes
    ``in_turn`` (one after another) rather than together under ``vmap`` (see
    ``jaxgmm._engine.each_restart``). In turn, a restart with few components switched on
    makes its pass over the first of ``component_sizes`` that holds them, when several are
    given (``jaxgmm._engine.pass_statistics``). Hashable, so it can be a static argument."""

    size: int
    mesh: Mesh | None = None
    in_turn: bool = False
    component_sizes: tuple[int, ...] = ()

    @property
    def axis(self) -> str | None:
        return None if self.mesh is None else self.mesh.axis_names[0]

    @property
    def lapack(self) -> bool:
        """Whether the program may call LAPACK kernels: not when this process runs it on several
        CPU devices at once, where they can hang (see ``jaxgmm._covariance``)."""
        if self.mesh is None:
            return True
        local = self.mesh.local_devices
        return len(local) < 2 or local[0].platform != "cpu"

    def factoring(self, unit):
        """``unit``, or its LAPACK-free twin when this program must not call LAPACK."""
        return unit if self.lapack else without_lapack(unit)


def as_mesh(devices) -> Mesh | None:
    """A one-axis mesh from ``devices``: None, a ``jax.sharding.Mesh`` (its first axis is used
    for the rows), or a sequence of devices."""
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        if len(devices.axis_names) != 1:
            raise ValueError(
                f"devices: the mesh must have one axis (the data's rows), got axes "
                f"{devices.axis_names}"
            )
        return devices
    devices = list(devices)
    if not devices or not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError("devices must be a jax.sharding.Mesh or a non-empty list of jax devices")
    return Mesh(np.array(devices), ("data",))


def shard_rows(X, sample_weight, mesh: Mesh, noise_mask=None):
    """``X``, the weights and the noise mask (if given; returned only then) sharded by rows
    over the mesh. Rows are padded to a multiple of the device count with zero-weight rows,
    which add nothing to any sum (so weights always exist)."""
    n_samples = X.shape[0]
    pad = -n_samples % mesh.size
    w = jnp.ones(n_samples, X.dtype) if sample_weight is None else sample_weight
    if pad:
        X = jnp.concatenate([X, jnp.broadcast_to(X[:1], (pad, X.shape[1]))])
        w = jnp.concatenate([w, jnp.zeros(pad, w.dtype)])
    rows = NamedSharding(mesh, P(mesh.axis_names[0]))
    if noise_mask is None:
        return jax.device_put(X, rows), jax.device_put(w, rows)
    noise_mask = jnp.pad(jnp.asarray(noise_mask), (0, pad))
    return jax.device_put(X, rows), jax.device_put(w, rows), jax.device_put(noise_mask, rows)


def for_distances(blocks: Blocks, n_samples: int, n_components: int, n_features: int) -> Blocks:
    """``blocks`` for a pass that holds only a row and its K distances (Lloyd's k-means), in
    turn: longer blocks than the exact statistics' (K x D per row). One Lloyd iteration over
    1e5 x 8, K = 9 took 4.5 ms in blocks of 4,096 rows and 1.35 ms in blocks of 65,536 (2-core
    VM, 2026-12-06). Batched, the restarts multiply every block's intermediates: unchanged."""
    if not blocks.in_turn:
        return blocks
    size = default_block_size(n_samples, n_components, 1, expanded_width=n_features)
    return blocks._replace(size=max(blocks.size, size))


def as_blocks(blocks: Blocks | int) -> Blocks:
    """A :class:`Blocks` from itself or a block size."""
    return blocks if isinstance(blocks, Blocks) else Blocks(int(blocks))


def kahan_add(carry, value):
    total, compensation = carry
    y = jax.tree_util.tree_map(jnp.subtract, value, compensation)
    new_total = jax.tree_util.tree_map(jnp.add, total, y)
    compensation = jax.tree_util.tree_map(lambda t, s, y_: (t - s) - y_, new_total, total, y)
    return new_total, compensation


def blockwise_sum(fn, X: Array, sample_weight: Array | None, blocks: Blocks | int, *operands):
    """``sum over blocks of fn(x_block (B, D), w_block (B,), rows (B,), *operands)``, a pytree.

    ``w_block`` holds the sample weights (ones when ``sample_weight`` is None) and ``rows`` the
    block's (global) row numbers. The rows that do not fill a last whole block form a smaller
    tail block of their own. ``blocks`` is a block size or a :class:`Blocks`; with a mesh, every
    device sums its own rows and the results are added across devices. Arrays that ``fn`` needs
    besides the data go in ``operands`` (not in a closure): with a mesh they enter every device
    whole.
    """
    blocks = as_blocks(blocks)
    if blocks.mesh is None:
        return _local_sum(fn, X, sample_weight, blocks.size, 0, operands)
    axis = blocks.axis

    def local(x, w, operands):
        first_row = lax.axis_index(axis) * x.shape[0]
        partial_sum = _local_sum(fn, x, w, blocks.size, first_row, operands)
        return jax.tree_util.tree_map(lambda a: lax.psum(a, axis), partial_sum)

    weights_spec = None if sample_weight is None else P(axis)
    return jax.shard_map(
        local, mesh=blocks.mesh, in_specs=(P(axis), weights_spec, P()), out_specs=P()
    )(X, sample_weight, operands)


def _local_sum(fn, X, sample_weight, block_size: int, first_row, operands):
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
            first_row + start + jnp.arange(block_size),
            *operands,
        )

    first = block(0)
    if n_blocks > 1:
        zeros = jax.tree_util.tree_map(jnp.zeros_like, first)

        def body(carry, i):
            return kahan_add(carry, block(i)), None

        (first, compensation), _ = lax.scan(body, (first, zeros), jnp.arange(1, n_blocks))
    else:
        compensation = None
    if tail:
        start = n_blocks * block_size
        last = fn(X[start:], weights(start, tail), first_row + start + jnp.arange(tail), *operands)
        if compensation is None:
            return jax.tree_util.tree_map(jnp.add, first, last)
        first, _ = kahan_add((first, compensation), last)
    return first
