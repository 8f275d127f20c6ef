"""
Variational Bayes: the data choose K
====================================

``BayesianGaussianMixture`` is offered ten components on faithful; with a Dirichlet-process
prior on the weights, the components the data do not need end with weights near zero. The
weights' posterior shows which were kept and how sure their weights are; the ellipses show
the kept components only (the others sit at the prior's mean). Then ``partial_fit`` reads the
same data once in mini-batches, and reaches the full fit's likelihood.
"""

import numpy as np

import jaxgmm
import jaxgmm.plot
from jaxgmm.datasets import faithful

X = faithful()
model = jaxgmm.BayesianGaussianMixture(n_components=10, n_init=4, max_iter=500, random_state=0).fit(
    X
)
print(f"expected weights: {np.sort(model.weights_)[::-1].round(3)}")
print(f"converged after {model.n_iter_} iterations, lower bound {model.lower_bound_:.2f}")
weights = jaxgmm.plot.weights_posterior(model)

# %%
# The kept components on the data.

ellipses = jaxgmm.plot.ellipses(model, X)

# %%
# Online: the rows shuffled and read once, in batches of 32 (``total_samples`` is the data's
# size, the ``N`` of stochastic variational inference).

rows = X[np.random.default_rng(0).permutation(len(X))]
online = jaxgmm.BayesianGaussianMixture(n_components=10, random_state=0, total_samples=len(X))
for start in range(0, len(rows), 32):
    online.partial_fit(rows[start : start + 32])
print(
    f"{online.n_steps_} batches; mean log-likelihood (score): online {online.score(X):.4f}, "
    f"full fit {model.score(X):.4f}"
)
print(f"online expected weights: {np.sort(online.weights_)[::-1][:3].round(3)}")
