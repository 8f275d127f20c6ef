"""What every covariance unit shares: how it is bound to a restart, how a collapsed
component is recognised, and the expanded form's pass (linear in the features (x, q(x)))."""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array

_JOIN_FEATURES = 32


class Model:
    """Base of the covariance units (their methods are static: a unit is its class)."""

    iterative = False  # whether its M-step runs an inner loop (``_iterative``)
    # whether its M-step reads only the scatter's diagonal, per component ``(K, D)``: then it
    # can start from that diagonal, otherwise from ``(K, D, D)`` matrices (``scatter_of_dense``)
    diagonal_scatter = False

    @classmethod
    def expanded_terms(cls, xb: Array, params):
        """The expanded form (``jaxgmm._statistics.Expanded``) of a block ``xb (B, D)``: the
        log-densities' terms ``(B, K)`` but the log-determinant and ``-D/2 log(2 pi)``, linear
        in the row's features ``(x, q(x))`` (``quadratic_features``, ``natural``), and the
        function of the weighted responsibilities ``wr (B, K)`` that gives the raw moments
        ``(sum wr x, sum wr q(x))`` which ``scatter_from_moments`` reads."""
        quadratic = cls.quadratic_features(xb)
        w_quadratic, w_linear, constant = cls.natural(params)
        n_features = xb.shape[1]
        # Many quadratic features: one matrix product per step on (x, q(x)) (2.4x faster for
        # D=16, full); few: two products, which spare the copy that joining them costs.
        if quadratic.shape[1] >= _JOIN_FEATURES:
            features = jnp.concatenate([xb, quadratic], axis=1)
            terms = features @ jnp.concatenate([w_linear, w_quadratic], axis=1).T

            def moments(wr):
                both = wr.T @ features
                return both[:, :n_features], both[:, n_features:]

        else:
            terms = quadratic @ w_quadratic.T + xb @ w_linear.T

            def moments(wr):
                return wr.T @ xb, wr.T @ quadratic

        return terms + constant, moments

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
