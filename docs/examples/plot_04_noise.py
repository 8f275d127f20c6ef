"""
A noise component for outliers
==============================

mclust's noise component adds a uniform density over the data's region, with a weight of its
own, for the points no Gaussian explains. Here 60 uniform points are scattered over faithful;
``noise=True`` starts the noise from the sparsest 15% of the rows. ``predict`` labels the
noise -1, and the plots draw it grey.
"""

import numpy as np

import jaxgmm
import jaxgmm.plot
from jaxgmm.datasets import faithful

rng = np.random.default_rng(1)
data = faithful()
low, high = data.min(axis=0), data.max(axis=0)
X = np.vstack([data, rng.uniform(low, high, size=(60, 2))])

model = jaxgmm.GaussianMixture(
    3, covariance_type="VVV", init_params="hc", noise=True, random_state=0
).fit(X)
labels = model.predict(X)
print(f"noise weight {model.noise_weight_:.3f}, Gaussians' weights {model.weights_.round(3)}")
print(f"rows labelled noise: {np.sum(labels == -1)}")
print(f"of the 60 uniform points, {np.sum(labels[-60:] == -1)} are labelled noise")
figure = jaxgmm.plot.ellipses(model, X)
