"""
The lesson: EM for two Gaussians in the plane
=============================================

The classic lesson behind jaxgmm: 200 points from two Gaussians at (-2, 0) and (2, 1), both
with covariance 0.6 I. EM starts the textbook way (two data points as means, the data's
covariance for both components), and we follow the lower bound (the mean log-likelihood per
point) from the first iteration to the last, then look at the responsibilities, the fitted
ellipses and the uncertainty of each point's label. ``jaxgmm demo`` does the same from the
command line.
"""

import numpy as np

import jaxgmm
import jaxgmm.plot

X = jaxgmm.lesson_data()
rng = np.random.default_rng(0)
precision = np.linalg.inv(np.cov(X, rowvar=False))
model = jaxgmm.GaussianMixture(
    2,
    max_iter=200,
    tol=1e-6,
    means_init=X[rng.choice(len(X), 2, replace=False)],
    weights_init=np.full(2, 0.5),
    precisions_init=np.stack([precision, precision]),
).fit(X)
first, last = model.lower_bounds_[0], model.lower_bound_
print(f"{model.n_iter_} iterations, lower bound {first:.4f} -> {last:.4f}")
print("weights", model.weights_.round(3))
print("means\n", model.means_.round(3))

# %%
# The lower bound never decreases: EM climbs a long plateau while both components still cover
# both clusters, then separates them.
trace = jaxgmm.plot.lower_bound_trace(model)

# %%
# Responsibilities: each point coloured by the probability of the second component.
responsibilities = jaxgmm.plot.responsibilities(model, X)

# %%
# The fitted covariances as 1, 2 and 3 sigma ellipses over the mixture's density, and each
# point's classification uncertainty (1 minus its largest responsibility).
ellipses = jaxgmm.plot.ellipses(model, X)
uncertainty = jaxgmm.plot.uncertainty(model, X)

# %%
# The exercises: K = 2 and 3 with full and diagonal covariances, ranked by BIC (lower is
# better). The lesson's truth, K = 2 with isotropic covariances, wins with the diagonal model.
result = jaxgmm.select(X, [2, 3], ["full", "diag"], n_init=4, random_state=0)
print(result)
exercises = jaxgmm.plot.exercises(result, X, like=model)
