"""
Large data streamed from disk
=============================

:func:`jaxgmm.fit_stream` makes one pass over the data per EM iteration, block by block, so the
data never need to fit in memory: here a ``.npy`` file opened with ``mmap_mode="r"``. The
initialisation runs on a uniform subsample drawn in a first pass. Its arithmetic is that of the
in-memory :func:`jaxgmm.fit`, which we compare it with.
"""

import tempfile
import time
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxgmm

rng = np.random.default_rng(0)
centres = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, 5.0]], dtype=np.float32)
X = (centres[rng.integers(0, 3, 400_000)] + rng.normal(size=(400_000, 2))).astype(np.float32)
folder = Path(tempfile.mkdtemp())
np.save(folder / "big.npy", X)

data = np.load(folder / "big.npy", mmap_mode="r")  # nothing read yet
start = time.perf_counter()
streamed = jaxgmm.fit_stream(jax.random.key(0), data, 3, block_size=65_536)
print(f"streamed: {streamed.n_iter} iterations in {time.perf_counter() - start:.1f} s")
print("means\n", np.asarray(streamed.params.means).round(3))

start = time.perf_counter()
in_memory = jaxgmm.fit(jax.random.key(0), X, 3)
print(f"in memory: {in_memory.n_iter} iterations in {time.perf_counter() - start:.1f} s")
print(f"lower bounds: streamed {streamed.lower_bound:.5f}, in memory {in_memory.lower_bound:.5f}")

# %%
# The lower bound per EM pass over the file.
figure = Figure(figsize=(6, 3.5), layout="constrained")
ax = figure.add_subplot()
ax.plot(np.arange(1, streamed.n_iter + 1), np.asarray(streamed.lower_bounds), marker="o")
ax.set_xlabel("pass over the file (EM iteration)")
ax.set_ylabel("lower bound per row")
