"""The covariance models: one small unit per model, found through ``COVARIANCE_TYPES``.

A unit is everything jaxgmm knows about one covariance model, and the only place that knows it:
the rest of the package asks the unit, never the model's name. Each unit has

* ``name``; ``shared`` (one covariance for all components, as tied); ``correlated`` (it has
  off-diagonal terms, which identical columns make singular); ``plot_style`` (colour and
  marker of its line in selection plots); ``shape(K, D)`` of its covariance parameters;
  ``n_parameters(K, D)`` (free parameters of the covariances, as scikit-learn and mclust count);
* in JAX: the precision factor (scikit-learn's ``precisions_cholesky``) from covariances or
  precisions and back, its log-determinant and squared Mahalanobis distances, the scatter of
  weighted differences, the M-step's covariances from the statistics (``from_scatter``; a prior
  enters as pseudo-statistics added before it), the regularisation, the switch of empty
  components, the pooled covariance of the whole data, and the diagnostics behind ``degenerate``
  (``standardized``) and the expanded form's accuracy;
* the expanded (exponential-family) form: the log-density is linear in the features
  ``(x, q(x))`` with ``q`` the products ``x_i x_j`` (full, tied) or squares ``x_i^2`` (diag,
  spherical), so the E-step is a matrix product of the features with natural parameters and the
  M-step's statistics a product of the responsibilities with the features (``expanded_terms``;
  tied's one precision makes its quadratic term the same for every component, which it uses
  instead); ``expanded_max_features`` bounds the features up to which it is used;
* ``project``: its constraint applied to unconstrained dense covariances, and ``from_dense``,
  its parameters from dense ones: how ``AnyModel`` fits every model in one program;
* on the host, in NumPy: ``dense`` ``(K, D, D)`` covariances for plots and sampling,
  ``first_components`` (trimming a padded model), ``precisions`` from the factor, and ``check``,
  the validation of given or loaded covariances and precisions.

Conventions: ``diff`` is ``(K, N, D)``, the data minus a per-component shift; ``wr`` is
``(K, N)``, responsibilities times sample weights; ``nk`` is ``(K,)`` and ``delta`` ``(K, D)``
is the weighted mean of ``diff`` per component (the mean minus the shift).

``reference.py`` holds a NumPy counterpart of every model, under the same name.
"""

from __future__ import annotations

from ._dense import AnyModel
from ._diagonal import Diag, Spherical
from ._general import Full, FullByLoops, Tied, TiedByLoops
from ._iterative import EVE, VEE, VEI, VEV, VVE
from ._linalg import symmetric
from ._mclust import EEI, EEV, EII, EVI, EVV

# What select fits when not told: scikit-learn's four models
DEFAULT_SELECTION = ("full", "tied", "diag", "spherical")
COVARIANCE_TYPES = {
    unit.name: unit
    for unit in (Full, Tied, Diag, Spherical, EII, EEI, VEI, EVI, VEE, EVE, VVE, EEV, VEV, EVV)
}
# mclust's names of scikit-learn's four models, accepted wherever a covariance type is
MCLUST_ALIASES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}

# Every model in one program, as dense matrices (see ``_dense``): how small fits run. Each
# model is a branch of the M-step that every program compiles, so scikit-learn's four, which
# most fits use, have a program of their own: with all nine closed-form models, a cold first fit
# compiled 20-40% longer (faithful, 2 cores). The models with an inner loop (``_iterative``) are
# branches only where restarts run in turn (small fits on the CPU): under ``vmap`` a switch runs
# every branch for every restart, and their loops then ran to their limit on the other models'
# covariances (iris, 14 models x K = 1..6: 230 s). In turn, a restart runs its own branch only,
# and a grid of mclust's 14 models compiles 3 programs instead of 18 (faithful, cold, 2-core
# VM, 2026-12-06: 11.5 -> 5.2 s); a single iterative model keeps a program of its own, which
# compiles in half the time of all 14 (faithful, VEI: 1.7 s against 4.0 s).
ANY_MODEL = AnyModel(tuple(COVARIANCE_TYPES[name] for name in DEFAULT_SELECTION))
EVERY_MODEL = AnyModel(tuple(u for u in COVARIANCE_TYPES.values() if not u.iterative))
ALL_MODELS = AnyModel(tuple(COVARIANCE_TYPES.values()))


def small_fit_programs(
    units, prior: bool = False, *, in_turn: bool = False
) -> list[tuple[object, list[int]]]:
    """How a small fit of ``units`` (one per model of a grid) runs: a list of (the unit its
    program fits, the positions of the models it fits). The models run together in one dense
    program of the fewest branches that holds them, but for: with a prior, every model in a
    program of its own (the dense program has no prior's M-step); each iterative model in a
    program of its own unless the restarts run ``in_turn`` and the grid has other models."""
    several = len(set(units)) > 1

    def apart(unit) -> bool:
        return prior or (unit.iterative and not (in_turn and several))

    dense = [i for i, u in enumerate(units) if not apart(u)]
    groups = []
    if dense:
        chosen = {units[i] for i in dense}
        smallest = next(m for m in (ANY_MODEL, EVERY_MODEL, ALL_MODELS) if chosen <= set(m.units))
        groups.append((smallest, dense))
    for unit in dict.fromkeys(u for u in units if apart(u)):
        groups.append((unit, [i for i, u in enumerate(units) if u is unit]))
    return groups


# Units with mclust's conjugate prior (``jaxgmm._prior``): their ``map_covariances`` and
# ``log_prior``.
_WITH_PRIOR = (Full, Tied, Diag, Spherical, EII, EEI, VEI, EVI, EEV, VEV)


def has_prior(unit) -> bool:
    return _WITH_LAPACK.get(unit, unit) in _WITH_PRIOR


# Units whose M-step factorisation calls no LAPACK kernel (see ``_linalg``).
_BY_LOOPS = {Full: FullByLoops, Tied: TiedByLoops}
_WITH_LAPACK = {loops: unit for unit, loops in _BY_LOOPS.items()}


def covariance_unit(covariance_type: str, *, lapack: bool = True):
    """The unit for a covariance type name, with a clear error for an unknown one. With
    ``lapack=False``, one whose M-step factorisation calls no LAPACK kernel."""
    try:
        unit = COVARIANCE_TYPES[MCLUST_ALIASES.get(covariance_type, covariance_type)]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {list(COVARIANCE_TYPES)} (or mclust's names "
            f"{', '.join(MCLUST_ALIASES)} of the first four), got {covariance_type!r}"
        ) from None
    return unit if lapack else without_lapack(unit)


def without_lapack(unit):
    """The same model, factoring its covariances without LAPACK kernels (see ``_linalg``)."""
    return _BY_LOOPS.get(unit, unit)


__all__ = [
    "ALL_MODELS",
    "ANY_MODEL",
    "COVARIANCE_TYPES",
    "EVERY_MODEL",
    "DEFAULT_SELECTION",
    "MCLUST_ALIASES",
    "AnyModel",
    "covariance_unit",
    "has_prior",
    "small_fit_programs",
    "symmetric",
    "without_lapack",
]
