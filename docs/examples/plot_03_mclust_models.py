"""
mclust's fourteen covariance models and its prior
=================================================

Besides scikit-learn's four covariance types, jaxgmm fits the other ten of R's mclust, named
as mclust names them: a covariance is ``lambda_k D_k A_k D_k^T`` (volume, orientation, shape),
each part Equal or Variable across components (I: the identity). ``covariance_types="all"``
fits the fourteen; ``init_params="hc"`` starts from mclust's hierarchical clustering, as
``Mclust(X)`` does, so the table below is mclust's.
"""

import jaxgmm
import jaxgmm.plot
from jaxgmm.datasets import iris

X = iris()
result = jaxgmm.select(X, range(1, 7), "all", init_params="hc", tol=1e-5, random_state=0)


def print_top(result):
    for row in result.top(5):
        print(f"{row['covariance_type']}, K={row['n_components']}: BIC {row['value']:.3f}")


print_top(result)
figure = jaxgmm.plot.selection(result)

# %%
# mclust's conjugate prior (``priorControl()``): a normal prior on the means and an inverse
# Wishart (or gamma) prior on the covariances keep small components from collapsing. EM then
# gives MAP estimates; ``"all"`` means the ten models for which mclust defines the prior.
with_prior = jaxgmm.select(
    X, range(1, 7), "all", init_params="hc", tol=1e-5, prior="default", random_state=0
)
print_top(with_prior)
figure_prior = jaxgmm.plot.selection(with_prior)
