"""The random numbers of the initialisation, drawn on the host with NumPy.

k-means++ and ``random_from_data`` need a handful of uniform numbers per restart: one per
centre and candidate. Drawn inside the compiled start program with JAX's threefry, they cost a
third of its compilation (0.35 s of 0.9 s on 2 CPU cores, for every new shape), because
threefry unrolls into hundreds of integer operations. They are drawn here instead, as a table
per restart passed into the program: restart ``r``'s table comes from NumPy's PCG64 seeded with
the key's bits and ``r``, so it does not depend on how many restarts or components there are
(its row ``c``, column ``t`` is the same in any larger table). Under a JAX transformation the
same NumPy function runs through ``jax.pure_callback``, so a jitted ``fit`` draws the same
numbers as an eager one.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import numpy as np

from ._programs import program
from ._validation import is_traced

_MIN_COLUMNS = 8


def n_trials(n_clusters: int) -> int:
    """Candidates per new k-means++ centre: ``2 + log(K)``, scikit-learn's count."""
    return 2 + int(math.log(n_clusters))


def _host_table(key_words, restart_ids, *, n_rows: int, n_columns: int, dtype) -> np.ndarray:
    key_words = np.asarray(key_words, np.uint32).ravel().tolist()
    dtype = np.dtype(dtype)
    bits, scale = (53, 2.0**-53) if dtype == np.float64 else (24, 2.0**-24)
    table = np.empty((len(np.ravel(restart_ids)), n_rows, n_columns), dtype)
    for i, restart in enumerate(np.ravel(restart_ids).tolist()):
        generator = np.random.PCG64(np.random.SeedSequence([*key_words, int(restart)]))
        raw = generator.random_raw(n_rows * n_columns)
        # the top bits as a float in [0, 1): exact in the dtype, so never rounded up to 1
        table[i] = ((raw >> np.uint64(64 - bits)) * scale).reshape(n_rows, n_columns)
    return table


def uniform_table(key, restart_ids, n_rows: int, dtype) -> jax.Array:
    """``(R, n_rows, C)`` uniform numbers in [0, 1) of ``dtype``: one table per entry of
    ``restart_ids (R,)``, with ``C = max(8, n_trials(n_rows))`` columns."""
    n_columns = max(_MIN_COLUMNS, n_trials(n_rows))
    words = jax.random.key_data(key)
    draw = partial(_host_table, n_rows=n_rows, n_columns=n_columns, dtype=dtype)
    if not is_traced(words, restart_ids):
        return jax.device_put(draw(np.asarray(words), np.asarray(restart_ids)))
    shape = jax.ShapeDtypeStruct((len(restart_ids), n_rows, n_columns), dtype)
    return jax.pure_callback(draw, shape, words, restart_ids, vmap_method="sequential")


def fold_in(key, data: int) -> jax.Array:
    """``jax.random.fold_in(key, data)``, for a threefry key by a program kept on disk: eager,
    JAX compiles it in every new process (0.14 s of a warm bootstrap LRT)."""
    if is_traced(key) or str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.random.fold_in(key, data)
    words = _fold_in(np.asarray(jax.random.key_data(key)), np.uint32(data))
    return jax.random.wrap_key_data(words)


@program()
def _fold_in(words, data):
    return jax.random.key_data(jax.random.fold_in(jax.random.wrap_key_data(words), data))
