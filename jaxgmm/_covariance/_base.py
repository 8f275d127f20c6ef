"""What every covariance unit shares: how it is bound to a restart, and how a collapsed
component is recognised."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array


class Model:
    """Base of the covariance units (their methods are static: a unit is its class)."""

    iterative = False  # whether its M-step runs an inner loop (``_iterative``)
    # whether its M-step reads only the scatter's diagonal, per component ``(K, D)``: then it
    # can start from that diagonal, otherwise from ``(K, D, D)`` matrices (``scatter_of_dense``)
    diagonal_scatter = False
    # whether one precision serves every component (tied): the expanded form's quadratic term
    # is then the same for every component (``jaxgmm._statistics.Expanded``)
    one_precision = False

    @classmethod
    def bound(cls, index):
        """The unit of one restart (a unit fitting one model is the same for every restart;
        see ``AnyModel`` for one that is not)."""
        return cls

    @classmethod
    def collapsed(cls, cov: Array, data_var: Array, rtol) -> Array:
        """Whether each component (one flag for a covariance shared by all) has an eigenvalue
        below ``rtol`` in units of the data's variance: once standardised and lowered by
        ``rtol`` on its diagonal, its covariance no longer factors. By the unit's own
        factorisation, so a program that must not call LAPACK does not call it here either."""
        n_features = data_var.shape[-1]
        shifted = cls.add_to_diagonal(cls.standardized(cov, data_var), -rtol)
        factor = cls.factor(shifted)
        # the axes of one component's factor (all of them for a covariance shared by all)
        trailing = len(cls.shape(1, n_features)) - (0 if cls.shared else 1)
        axes = tuple(range(factor.ndim - trailing, factor.ndim))
        return ~jnp.all(jnp.isfinite(factor), axis=axes)
