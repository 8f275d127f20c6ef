"""
Restarts, and what becomes of them
==================================

EM finds a local optimum, so :func:`jaxgmm.fit` runs ``n_init`` restarts from different starts,
in one compiled program, and keeps the best. ``result.restarts`` says what became of each: its
final lower bound, its trace, its iterations, and whether it converged, failed (non-finite
numbers) or degenerated (a component collapsed onto repeated values). Restart ``i`` starts
where it would start in any batch, so more restarts with the same key never do worse.
"""

import jax
import numpy as np
from matplotlib.figure import Figure

import jaxgmm

# Eight clusters on a ring: random starts often merge two of them and split another.
rng = np.random.default_rng(0)
angles = 2 * np.pi * np.arange(8) / 8
centres = 6 * np.column_stack([np.cos(angles), np.sin(angles)])
X = (centres[rng.integers(0, 8, 2000)] + rng.normal(size=(2000, 2))).astype(np.float32)

result = jaxgmm.fit(jax.random.key(0), X, 8, n_init=16, init="random_from_data", tol=1e-5)
restarts = result.restarts
for i in range(16):
    print(
        f"restart {i:2}: lower bound {float(restarts.lower_bound[i]):.4f}, "
        f"{int(restarts.n_iter[i]):3} iterations, converged {bool(restarts.converged[i])}, "
        f"failed {bool(restarts.failed[i])}, degenerate {bool(restarts.degenerate[i])}"
    )
print("best restart:", int(result.best_restart))

# %%
# Every restart's trace. Restarts stop on their own; the traces are padded with NaN after their
# last iteration.
figure = Figure(figsize=(7, 4), layout="constrained")
ax = figure.add_subplot()
traces = np.asarray(restarts.lower_bounds)
for i, trace in enumerate(traces):
    best = i == int(result.best_restart)
    ax.plot(trace, color="C3" if best else "0.6", lw=2 if best else 1, zorder=2 if best else 1)
ax.set_xlabel("EM iteration")
ax.set_ylabel("lower bound per point")
ax.set_title("16 restarts from random data points (the chosen one in red)")

# %%
# More restarts with the same key never do worse: the first 4 of these 16 are the 4 a fit with
# ``n_init=4`` runs.
for n in (1, 4, 16):
    lower_bound = jaxgmm.fit(
        jax.random.key(0), X, 8, n_init=n, init="random_from_data", tol=1e-5
    ).lower_bound
    print(f"n_init={n:2}: best lower bound {float(lower_bound):.4f}")
