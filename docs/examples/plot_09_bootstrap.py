"""
Bootstrap inference: how many components, and how sure
=======================================================

mclust's bootstrap likelihood-ratio test asks, for K = 1, 2, ..., whether K + 1 components fit
significantly better than K: both are refitted to data sets drawn from the fitted K-component
model, and the p-value is the share of replicate statistics at least the observed one. Every
replicate of a test is refitted in one program. 99 replicates per test keep this page quick;
mclust's default, and jaxgmm's, is 999.
"""

import jaxgmm
import jaxgmm.plot
from jaxgmm.datasets import faithful

X = faithful()
lrt = jaxgmm.bootstrap_lrt(X, covariance_type="EEE", n_boot=99, random_state=0)
print(lrt)
print("chosen K:", lrt.n_components)
figure = jaxgmm.plot.bootstrap_lrt(lrt)

# %%
# Standard errors and percentile intervals of the fitted parameters, by the weighted likelihood
# bootstrap (each replicate refits the model from its parameters with Dirichlet row weights).
model = jaxgmm.GaussianMixture(3, covariance_type="EEE", init_params="hc").fit(X)
boot = jaxgmm.bootstrap(model, X, n_boot=199, method="weighted", random_state=0)
errors = boot.standard_errors()
print("weights", model.weights_.round(3), "+/-", errors["weights"].round(3))
print("means\n", model.means_.round(2), "\n+/-\n", errors["means"].round(2))
means = jaxgmm.plot.bootstrap(boot, what="means")
