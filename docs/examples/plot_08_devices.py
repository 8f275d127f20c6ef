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

import jaxgmm

devices = jax.devices()
print(len(devices), "devices:", devices)

rng = np.random.default_rng(0)
X = np.vstack(
    [rng.normal(loc, 1.0, size=(20_000, 3)) for loc in ((0, 0, 0), (4, 0, 2), (0, 5, -2))]
).astype(np.float32)

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
