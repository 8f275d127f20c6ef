"""
Iris with values missing at random, and imputation
==================================================

``missing="em"`` fits data with holes without dropping rows or imputing first: each row's
density is the marginal over its observed values, and the M-step reads the missing ones in
expectation. The fitted model then fills the holes with their conditional means, or draws
multiple imputations. Here 15% of iris's values are removed at random.
"""

import itertools

import numpy as np

import jaxgmm
import jaxgmm.plot
from jaxgmm.datasets import iris

X, species = iris(return_labels=True)
rng = np.random.default_rng(0)
holes = rng.random(X.shape) < 0.15
X_holes = np.where(holes, np.nan, X)
print(f"{holes.sum()} values removed, {holes.any(axis=1).sum()} rows of 150 have holes")

model = jaxgmm.GaussianMixture(
    3, covariance_type="VEV", missing="em", init_params="hc", random_state=0
).fit(X_holes)
labels = model.predict(X_holes)
agreement = max(
    np.mean(np.asarray(permutation)[labels] == species)
    for permutation in itertools.permutations(range(3))
)
print(f"flowers labelled as their species: {agreement:.1%}")

# %%
# Imputation: the conditional means against the true values, and against filling each hole
# with its column's mean.
filled = model.impute(X_holes)
column_means = np.where(holes, np.nanmean(X_holes, axis=0), X)
rms = np.sqrt(np.mean((filled[holes] - X[holes]) ** 2))
rms_means = np.sqrt(np.mean((column_means[holes] - X[holes]) ** 2))
print(f"RMS error of the imputed values: {rms:.2f} cm (column means: {rms_means:.2f} cm)")

# %%
# The plots draw rows with holes at their imputed means.
figure = jaxgmm.plot.ellipses(model, X_holes)
