"""mclust's covariance models whose M-step has no closed form: VEI, VEE, VEV, EVE and VVE.

In mclust's terms (``Sigma_k = lambda_k D_k A_k D_k^T``, see ``_mclust``), each of these shares a
part of the covariance across components (a shape, an orientation, or both) while another part
varies, and maximising the expected log-likelihood over the two together has no closed form.
Their M-step minimises, over the covariance parameters, the part of the negative expected
log-likelihood that depends on them,

    F = sum_k [ n_k log det Sigma_k + tr(W_k Sigma_k^-1) ],

(``W_k`` the scatter of component k around its new mean) by an inner loop that alternates the
closed-form minimisation over each part given the others (Celeux & Govaert 1995, section 4). A
shared orientation (EVE, VVE) turns by sweeps of plane rotations (``_orient``), each plane's
angle the exact minimum given the shapes, as Jacobi's eigenvalue method and Flury & Gautschi's
algorithm for common principal components turn theirs; mclust's majorisation steps (Browne &
McNicholas 2014, kept by the NumPy reference) lower ``F`` too, but took 2-7 times as many
steps on iris's clusters, 30 times on 4-D scatters sharing their axes, and more than 1,000 in
6-D and 8-D. Every inner step lowers ``F``. The inner loop stops when its parameters no longer
move (``INNER_TOL_EPS``), or after ``INNER_MAX_ITER`` steps; it starts afresh at every M-step
(a pure function of the statistics), from the identity orientation and unit shapes as mclust's
does. ``F`` may have several local minima (a shared orientation of scatters far from the
model): the loop finds one.

An empty component (``W_k`` about 0, volume 0) takes no part in the shared parameters; its
covariance is replaced by the fallback after the M-step (``_em.finalize``).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax import Array, lax

from ._general import _outer, dense_prior_terms
from ._linalg import symmetric
from ._mclust import (
    _DenseMStep,
    _DiagonalMStep,
    _geometric_mean,
    _scatter_diagonal,
    _scatter_full,
)

# The inner loop stops when no parameter moves by more than this many machine epsilons,
# relative to its size: 2e-13 in float64, 1e-4 in float32. mclust stops at a relative change of
# sqrt(eps) (1.5e-8) in the objective, which leaves the parameters about 1e-4 from the fixed
# point; the tighter stop costs a few inner steps more and makes the M-step exact.
INNER_TOL_EPS = 1000
# mclust sets no limit; every step lowers F, so this bounds only the time of a slow convergence.
INNER_MAX_ITER = 1000


def _minimise(step, start, measure=None):
    """``start`` (a tuple of arrays) updated by ``step`` until no element of ``measure(state)``
    (by default the state itself) changes by more than the inner tolerance relative to its
    size, or ``INNER_MAX_ITER`` steps. Returns the state and the number of steps taken."""
    tol = INNER_TOL_EPS * float(jnp.finfo(start[0].dtype).eps)
    measure = measure or (lambda state: state)

    def change(old, new):
        return jnp.max(
            jnp.stack(
                [jnp.max(jnp.abs(n - o) / (1 + jnp.abs(n))) for o, n in zip(old, new, strict=True)]
            )
        )

    def not_done(carry):
        i, _, _, moved = carry
        return (i < INNER_MAX_ITER) & (moved > tol)

    def advance(carry):  # the measure of the state is carried, taken once per step
        i, state, measured, _ = carry
        new = step(state)
        new_measured = measure(new)
        return i + 1, new, new_measured, change(measured, new_measured)

    carry = (jnp.array(0), start, measure(start), jnp.array(jnp.inf, start[0].dtype))
    steps, state, _, _ = lax.while_loop(not_done, advance, carry)
    return state, steps


def _ratio(numerator: Array, denominator: Array) -> Array:
    """``numerator / denominator``, 0 where the denominator is not positive (an empty
    component, which must not enter a shared parameter)."""
    positive = denominator > 0
    return jnp.where(positive, numerator / jnp.where(positive, denominator, 1.0), 0.0)


def _unit_determinant(values: Array) -> Array:
    """Positive values over the last axis scaled to product 1 (ones where one is not
    positive: an empty component's shape)."""
    volume = _geometric_mean(values)
    scaled = _ratio(values, volume[..., None])
    return jnp.where(volume[..., None] > 0, scaled, 1.0)


def _rotation_rounds(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """The planes of a sweep of rotations, in rounds of disjoint pairs of axes (a round-robin
    tournament: every pair once per sweep); ``(first, second)``, each ``(rounds, pairs)``. An odd
    number of axes leaves one out of each round."""
    players = list(range(n_features + n_features % 2))
    half = len(players) // 2
    first, second = [], []
    for _ in range(len(players) - 1):
        pairs = sorted(
            (min(a, b), max(a, b))
            for a, b in zip(players[:half], players[::-1][:half], strict=True)
            if max(a, b) < n_features
        )
        first.append([a for a, _ in pairs])
        second.append([b for _, b in pairs])
        players = [players[0], players[-1], *players[1:-1]]
    return np.array(first, dtype=np.int32), np.array(second, dtype=np.int32)


def _orient(w: Array, axes: Array, weights_of) -> Array:
    """A sweep of plane rotations of the shared orientation ``axes`` (D, D), columns the axes,
    lowering ``T = sum_k tr(D^T W_k D Lambda_k)``, with ``Lambda_k = weights_of(v)`` (K, D) the
    diagonal that minimises the objective given the variances ``v_kj = d_j^T W_k d_j`` along the
    axes. Rotating the plane of axes p and q by theta changes ``T`` by
    ``sum_k (Lambda_kp - Lambda_kq) (h_k (cos 2 theta - 1) + e_k sin 2 theta)`` (``h_k`` half the
    difference of the two variances, ``e_k`` their covariance), whose minimum has a closed form;
    planes of disjoint axes do not interact, so each round turns several at once, and the
    diagonals are renewed after each. No rotation, and no renewal, raises the objective."""
    first, second = map(jnp.asarray, _rotation_rounds(w.shape[-1]))

    def turn(r, axes):
        p, q = axes[:, first[r]], axes[:, second[r]]
        variances = _axis_variances(w, axes)
        weights = weights_of(variances)
        gap = weights[:, first[r]] - weights[:, second[r]]
        half_difference = (variances[:, first[r]] - variances[:, second[r]]) / 2
        covariance = jnp.einsum("jm,kjl,lm->km", p, w, q)
        h = jnp.sum(gap * half_difference, axis=0)
        e = jnp.sum(gap * covariance, axis=0)
        # the minimum is at 2 theta = atan2(-e, -h); no turn where the plane is indifferent
        # (atan2 of two zeros could turn it by a half circle, and back, at every sweep)
        moves = jnp.hypot(h, e) > 0
        angle = jnp.where(moves, jnp.arctan2(-e, jnp.where(moves, -h, 1.0)), 0.0) / 2
        cos, sin = jnp.cos(angle), jnp.sin(angle)
        axes = axes.at[:, first[r]].set(cos * p + sin * q)
        return axes.at[:, second[r]].set(cos * q - sin * p)

    return lax.fori_loop(0, first.shape[0], turn, axes)


def _axis_variances(w: Array, axes: Array) -> Array:
    """``diag(D^T W_k D)`` (K, D): each component's scatter along the shared axes."""
    return jnp.einsum("ji,kjl,li->ki", axes, w, axes)


def _rotate(axes: Array, diagonals: Array) -> Array:
    """``D diag(diagonals[k]) D^T`` (K, D, D)."""
    return symmetric(jnp.einsum("ij,kj,lj->kil", axes, diagonals, axes))


class VEI(_DiagonalMStep):
    """``lambda_k A``: one diagonal shape, a volume per component."""

    iterative = True
    name = "VEI"
    plot_style = ("C9", "P")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components + n_features - 1

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        counts = w.shape[-1] * nk
        shape = _shared_shape(w, counts, jnp.ones(w.shape[-1], w.dtype))
        return _volumes(w, counts, shape)[:, None] * shape

    # -- mclust's conjugate prior (``jaxgmm._prior``; see ``Full``): mclust 6's msveip --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        # VEI's loop on s^2 + W_kjj + c_k xbar_kj^2, each lambda_k over nu + n_k D + 3
        s2 = prior.scale_scalar(jnp.sum(on))
        w = s2 + _scatter_diagonal(scatter, nk, delta) + prior.pull(nk)[:, None] * xbar**2
        w = jnp.where(on[:, None], w, 0.0)  # a component switched off shares nothing
        counts = prior.dof + nk * w.shape[-1] + 3
        shape = _shared_shape(w, counts, jnp.ones(w.shape[-1], w.dtype))
        return _volumes(w, counts, shape)[:, None] * shape

    @staticmethod
    def log_prior(means, cov, prior, on):
        # the function whose maximiser, with the likelihood, is the step above:
        # sum_k [-(nu + 3)/2 log lambda_k - sum_j (s^2 + kappa mu_kj^2) / (2 lambda_k a_j)]
        s2 = prior.scale_scalar(jnp.sum(on))
        log_volume = jnp.mean(jnp.log(cov), axis=1)
        each = -(prior.dof + 3) / 2 * log_volume - jnp.sum(
            (s2 + prior.shrinkage * means**2) / (2 * cov), axis=1
        )
        return jnp.sum(jnp.where(on, each, 0.0))


def _volumes(variances: Array, counts: Array, shape: Array) -> Array:
    """Each ``lambda_k`` given the shared shape: ``sum_j W_kj / a_j / counts_k`` (``counts``
    is ``D n_k``, plus the prior's degrees of freedom with a prior)."""
    return jnp.sum(variances / shape, axis=1) / counts


def _shared_shape(variances: Array, counts: Array, start: Array) -> Array:
    """The shared diagonal shape ``a`` (D,) of ``lambda_k diag(a)`` fitted to each component's
    variances along fixed axes ``(K, D)``: alternately the volumes given ``a``, and ``a`` (the
    volume-weighted sum of the variances, scaled to product 1) given the volumes."""

    def step(state):
        (shape,) = state
        volumes = _volumes(variances, counts, shape)
        return (_unit_determinant(jnp.sum(_ratio(variances, volumes[:, None]), axis=0)),)

    return _minimise(step, (start,))[0][0]


class VEE(_DenseMStep):
    """``lambda_k C`` with ``det C = 1``: one shape and orientation, a volume per component."""

    iterative = True

    name = "VEE"
    plot_style = ("k", "X")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components + n_features * (n_features + 1) // 2 - 1

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        n_features = w.shape[-1]

        def shared(volumes):  # C given the lambda_k: sum_k W_k / lambda_k scaled to det 1
            total = symmetric(jnp.sum(_ratio(w, volumes[:, None, None]), axis=0))
            chol = jnp.linalg.cholesky(total)
            log_det = 2 * jnp.sum(jnp.log(jnp.diagonal(chol)))
            return total * jnp.exp(-log_det / n_features)

        def step(state):  # lambda_k = tr(W_k C^-1) / (D n_k)
            (volumes,) = state
            inverse = jnp.linalg.inv(shared(volumes))
            return (jnp.einsum("kij,ji->k", w, inverse) / (n_features * nk),)

        (volumes,), _ = _minimise(step, (jnp.ones(nk.shape, w.dtype),))
        return volumes[:, None, None] * shared(volumes)


class VEV(_DenseMStep):
    """``lambda_k D_k A D_k^T``: one shape, a volume and orientation per component."""

    iterative = True

    name = "VEV"
    plot_style = ("m", "8")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components + n_features - 1 + n_components * n_features * (n_features - 1) // 2

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        return _vev(w, nk, jnp.ones(nk.shape, bool))

    # -- mclust's conjugate prior (``jaxgmm._prior``; see ``Full``): mclust 6's msvevp adds the
    # prior's scale and pull to each scatter and keeps the likelihood's denominators --

    @staticmethod
    def map_covariances(scatter, nk, delta, xbar, prior, on):
        w = _scatter_full(scatter, nk, delta)
        total = prior.scale_matrix(jnp.sum(on)) + w + prior.pull(nk)[:, None, None] * _outer(xbar)
        return _vev(symmetric(total), nk, on)

    @staticmethod
    def log_prior(means, cov, prior, on):
        # - sum_k tr((Lambda + kappa mu_k mu_k^T) S_k^-1) / 2
        _, spread, pull = dense_prior_terms(means, cov, prior.scale_matrix(jnp.sum(on)))
        return -jnp.sum(jnp.where(on, spread + prior.shrinkage * pull, 0.0)) / 2


def _vev(w: Array, nk: Array, on: Array) -> Array:
    """VEV's covariances from matrices ``W_k`` (scatters, or with a prior's terms added): the
    orientations are the eigenvectors, and the rest is VEI's loop on the eigenvalues, started as
    mclust's from EEV's shape (the eigenvalues of the components switched on, summed); the
    eigenvalues in the same (ascending) order for every k."""
    eigenvalues, vectors = jnp.linalg.eigh(w)
    counts = w.shape[-1] * nk
    start = _unit_determinant(jnp.sum(jnp.where(on[:, None], eigenvalues, 0.0), axis=0))
    shape = _shared_shape(eigenvalues, counts, start)
    scaled = _volumes(eigenvalues, counts, shape)[:, None] * shape
    return symmetric(jnp.einsum("kij,kj,klj->kil", vectors, scaled, vectors))


class EVE(_DenseMStep):
    """``lambda D A_k D^T``: one volume and orientation, a shape per component."""

    iterative = True

    name = "EVE"
    plot_style = ("saddlebrown", "*")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return 1 + n_components * (n_features - 1) + n_features * (n_features - 1) // 2

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        axes, shapes, _ = _eve_loop(w)
        total = jnp.sum(_axis_variances(w, axes) / shapes)
        return total / (jnp.sum(nk) * w.shape[-1]) * _rotate(axes, shapes)


def _eve_loop(w: Array):
    """EVE's shared orientation and shapes for scatters ``w``, and the inner steps taken.
    F = n D log(lambda) + T / lambda with T = sum_k tr(D^T W_k D A_k^-1), so lambda = T / (n D)
    and the loop lowers T: the orientation by a sweep of plane rotations, then each A_k given
    it (its variances along the axes, scaled to product 1)."""

    def step(state):
        axes = _orient(w, state[0], lambda v: 1 / _unit_determinant(v))
        return axes, _unit_determinant(_axis_variances(w, axes))

    eye = jnp.eye(w.shape[-1], dtype=w.dtype)
    (axes, shapes), steps = _minimise(
        step, (eye, jnp.ones(w.shape[:2], w.dtype)), _oriented_diagonals
    )
    return axes, shapes, steps


def _oriented_diagonals(state):
    """``D diag(.) D^T`` of an (axes, diagonals) state: what the covariances depend on. The
    inner loop's stop reads these, not the axes, whose signs are free: at its fixed point the
    polar factor of a gradient with a zero singular value may flip an axis at every step
    (faithful, one component: 1,000 steps of flips, EM iterations 80 ms instead of 3-5)."""
    axes, diagonals = state
    return (_rotate(axes, diagonals),)


class VVE(_DenseMStep):
    """``lambda_k D A_k D^T``: one orientation, a volume and shape per component."""

    iterative = True

    name = "VVE"
    plot_style = ("navy", "d")

    @staticmethod
    def n_parameters(n_components: int, n_features: int) -> int:
        return n_components * n_features + n_features * (n_features - 1) // 2

    @staticmethod
    def _from_scatters(w: Array, nk: Array) -> Array:
        axes, diagonals, _ = _vve_loop(w, nk)
        return _rotate(axes, diagonals)


def _vve_loop(w: Array, nk: Array):
    """VVE's shared orientation and each component's ``lambda_k A_k`` along it, and the inner
    steps taken. Given D, lambda_k A_k = diag(D^T W_k D) / n_k =: C_k; the orientation by
    sweeps of plane rotations lowering sum_k tr(W_k D C_k^-1 D^T) with the C_k renewed. A
    component of no mass has C_k = 0 and no part in the orientation (a NaN there would stop
    the loop at its first step)."""

    def per_mass(v):
        return _ratio(v, nk[:, None])

    def step(state):
        axes = _orient(w, state[0], lambda v: _ratio(1.0, per_mass(v)))
        return axes, per_mass(_axis_variances(w, axes))

    eye = jnp.eye(w.shape[-1], dtype=w.dtype)
    (axes, diagonals), steps = _minimise(
        step, (eye, per_mass(_axis_variances(w, eye))), _oriented_diagonals
    )
    return axes, diagonals, steps
