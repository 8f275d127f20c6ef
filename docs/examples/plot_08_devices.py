"""
Several devices
===============

``fit(..., devices=jax.devices())`` shards the data's rows over the devices: each passes over
its own rows, and the sufficient statistics are added across devices with one ``psum`` per
iteration, through JAX's own sharding. The result equals one device's up to rounding. On a
machine with several GPUs this is all it takes; several hosts join with
``jax.distributed.initialize``. This page was built on a CPU split into 4 devices
(``XLA_FLAGS=--xla_force_host_platform_device_count=4``, set before JAX starts).
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from matplotlib.figure import Figure

import jaxgmm

devices = jax.devices()
print(len(devices), "devices:", devices)

rng = np.random.default_rng(0)
X = np.vstack(
    [rng.normal(loc, 1.0, size=(20_000, 3)) for loc in ((0, 0, 0), (4, 0, 2), (0, 5, -2))]
).astype(np.float32)
X = X[rng.permutation(len(X))]  # each device's rows then hold every cluster

one = jaxgmm.fit(jax.random.key(0), X, 3, n_init=2)
sharded = jaxgmm.fit(jax.random.key(0), X, 3, n_init=2, devices=devices)
difference = np.max(np.abs(np.asarray(one.params.means) - np.asarray(sharded.params.means)))
print(
    f"lower bound: one device {float(one.lower_bound):.6f}, {len(devices)} devices "
    f"{float(sharded.lower_bound):.6f}; means differ by at most {difference:.1e}"
)

# %%
# The estimator and :func:`jaxgmm.select` take the same ``devices=``.
model = jaxgmm.GaussianMixture(3, devices=devices, random_state=0).fit(X)
print(model.means_.round(2))

# %%
# Where the rows live: ``jax.device_put`` of the data with a sharding over the devices gives
# each device a contiguous block of rows (this is what ``devices=`` does inside the fit).
mesh = Mesh(np.array(devices), ("rows",))
sharded_X = jax.device_put(X, NamedSharding(mesh, PartitionSpec("rows")))
figure = Figure(figsize=(6, 4.5), layout="constrained")
ax = figure.add_subplot()
for shard in sharded_X.addressable_shards:
    rows = np.arange(len(X))[shard.index[0]]
    ax.scatter(X[rows[::20], 0], X[rows[::20], 1], s=4, label=f"rows on {shard.device}")
ax.scatter(*model.means_[:, :2].T, marker="x", s=120, color="k", label="fitted means")
ax.set_xlabel("feature 0")
ax.set_ylabel("feature 1")
ax.legend(loc="upper right", fontsize=8)
