"""Every covariance model in one program: dense (K, D, D) matrices, the model chosen per restart.

For small data a compilation costs more than the fit it serves, and each covariance model is a
program of its own. ``AnyModel`` lets one program fit them all: covariances are held as dense
matrices whatever the model (a diagonal matrix for diag, a multiple of the identity for
spherical, the same matrix in every component for tied), densities and factors are those of full
covariances, and each restart's M-step projects its unconstrained covariances onto its own
model (``unit.project``), chosen by the restart's model index. ``select`` then fits its whole
grid, every model and K, in one program, and a fit of any model reuses the program of another.
Parameters go to and from a model's own shapes on the host (``unit.dense``, ``unit.from_dense``).
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import Array, lax

from ._diagonal import Diag, Spherical
from ._general import Full


class AnyModel(Full):
    """The dense algebra of full covariances, for a tuple of covariance models; ``bound(index)``
    is the unit of one restart, whose M-step is its model's."""

    name = "any"

    def __init__(self, units: tuple):
        self.units = tuple(units)

    def __eq__(self, other):
        return type(other) is type(self) and other.units == self.units

    def __hash__(self):
        return hash((type(self), self.units))

    def __repr__(self):
        return f"AnyModel({', '.join(unit.name for unit in self.units)})"

    def index(self, unit) -> int:
        return self.units.index(unit)

    def bound(self, index) -> _Bound:
        return _Bound(self.units, index)


class _Bound(AnyModel):
    """One restart's unit: ``index`` (traced) chooses its model among ``units``."""

    def __init__(self, units: tuple, index: Array):
        super().__init__(units)
        self.model = index

    def _switch(self, branch, *operands):
        return lax.switch(
            self.model, [lambda *ops, u=u: branch(u, *ops) for u in self.units], *operands
        )

    def from_scatter(self, scatter: Array, nk: Array, delta: Array) -> Array:
        return self._switch(lambda u, c: u.project(c, nk), Full.from_scatter(scatter, nk, delta))

    def pooled(self, data_cov: Array, n_components: int) -> Array:
        # Every model's projection of one matrix repeated in all components is that matrix,
        # its diagonal, or its mean variance, as its family's: the models' own projections
        # (inner loops included) would compile 14 branches into each start for the same answer.
        family = [
            Spherical if issubclass(u, Spherical) else Diag if issubclass(u, Diag) else Full
            for u in self.units
        ]
        families = list(dict.fromkeys(family))
        which = jnp.asarray([families.index(f) for f in family])[self.model]
        branches = [lambda c, f=f: f.project(c, None) for f in families]
        return lax.switch(which, branches, Full.pooled(data_cov, n_components))

    def select(self, mask: Array, if_true: Array, if_false: Array) -> Array:
        # a covariance shared by all components takes nothing from an empty one
        shared = jnp.asarray([unit.shared for unit in self.units])[self.model]
        return jnp.where(shared, if_false, Full.select(mask, if_true, if_false))

    def collapsed(self, cov: Array, data_var: Array, rtol) -> Array:
        """Each component's collapse, judged by its own model (its own standardisation)."""

        def by(unit, cov):
            flags = unit.collapsed(unit.from_dense(cov), data_var, rtol)
            return jnp.broadcast_to(flags, cov.shape[:1])  # one flag for a shared covariance

        return self._switch(by, cov)
