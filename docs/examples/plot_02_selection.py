"""
Choosing K and the covariance type: faithful and iris
=====================================================

:func:`jaxgmm.select` fits a grid of models, every K with every covariance type and ``n_init``
restarts each, in one compiled program, and ranks them by BIC (``-2 log L + p log N``, lower
is better), AIC or ICL. Here on R's ``faithful`` (Old Faithful's eruptions) and ``iris``.
"""

import jaxgmm
import jaxgmm.plot
from jaxgmm.datasets import faithful, iris

X = faithful()
result = jaxgmm.select(X, range(1, 7), n_init=4, random_state=0)
print(result)

# %%
# BIC and ICL against K, one line per covariance type. The best model is marked.
figure = jaxgmm.plot.selection(result)

# %%
# The chosen model is fitted already: ``result.best`` is a :class:`jaxgmm.GaussianMixture`.
best = result.best
print(best.covariance_type, best.n_components)
best_ellipses = jaxgmm.plot.ellipses(best, X)

# %%
# Iris has four features: the plots project data, means and covariances onto the data's first
# two principal axes (exactly: the density drawn is the mixture's marginal on that plane).
X_iris = iris()
result_iris = jaxgmm.select(X_iris, range(1, 7), n_init=4, random_state=0)
print(result_iris)
iris_selection = jaxgmm.plot.selection(result_iris)
iris_ellipses = jaxgmm.plot.ellipses(result_iris.best, X_iris)
