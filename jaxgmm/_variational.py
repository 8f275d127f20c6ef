"""Variational Bayes on the EM engine: scikit-learn's ``BayesianGaussianMixture`` model
(``jaxgmm.reference_vb`` is its NumPy oracle), iterated by the engine's own pass over the data.

Why it fits the engine unchanged (Bishop 2006, section 10.2): the variational E-step is an
ordinary mixture E-step with unnormalised log weights

    log w'_k = E[log w_k] - D/2 log nu_k + (E[log |Lambda_k|] - log |W_k| - D / beta_k) / 2

and the covariances ``covariances_`` (the inverse of the expected precision), so
``jaxgmm._engine.pass_statistics`` computes the responsibilities and their sufficient statistics
in one pass, in blocks of rows, exact or expanded, batched or in turn, as for EM. The M-step is
scikit-learn's Gaussian estimates from those statistics (``jaxgmm._em.finalize``) turned into the
posterior's parameters (:func:`posterior`). The lower bound's entropy term needs no second pass:

    sum_n r_nk log r_nk = sum_k [n_k (log w'_k + log C_k) - tr(P_k S_k) / 2] - sum_n log Z_n,

``C_k`` the Gaussian's normaliser, ``S_k`` the scatter around the E-step's means (what the pass
returns), ``log Z_n`` the E-step's log normaliser (the pass's ``log_lik``).

Everything here works in the engine's centred frame (the prior's mean included); the driver,
:func:`fit_variational`, moves the means back.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import Array, lax
from jax.scipy.special import betaln, digamma, gammaln

from . import _engine, _host_loop
from ._blocks import Blocks, as_mesh, default_block_size, shard_rows
from ._covariance import covariance_unit
from ._em import _tiny, finalize
from ._engine import EMSettings, active, each_restart, pass_statistics
from ._fit import restarts_in_turn
from ._params import GMMParams, RestartOutcome
from ._programs import program
from ._shapes import is_small, pad_rows, padded_rows
from ._statistics import LOG_2PI, choose_form, named_form

WEIGHT_PRIORS = ("dirichlet_process", "dirichlet_distribution")
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# the change of the lower bound below which it is rounding, in units of eps |bound|
ROUNDING = 16


class Prior(NamedTuple):
    """The prior (scikit-learn's ``*_prior_`` attributes), its mean in the frame of the data it
    is used with. ``covariance`` has the covariance type's prior shape: full and tied (D, D),
    diag (D,), spherical ()."""

    weight_concentration: Array
    mean_precision: Array
    mean: Array
    degrees_of_freedom: Array
    covariance: Array


class Posterior(NamedTuple):
    """The variational posterior (scikit-learn's fitted attributes): ``weight_concentration``
    is (2, K) for the Dirichlet process (the sticks' Beta parameters), (K,) otherwise;
    ``degrees_of_freedom`` is () for tied, (K,) otherwise; ``covariances`` and
    ``precisions_cholesky`` have the engine's shapes (those of ``GMMParams``)."""

    weight_concentration: Array
    mean_precision: Array
    means: Array
    degrees_of_freedom: Array
    covariances: Array
    precisions_cholesky: Array


class State(NamedTuple):
    """Per-restart state of the iterations, each field with a leading ``n_init`` axis (the
    fields ``jaxgmm._host_loop`` reads are those of ``jaxgmm._engine.State``)."""

    posterior: Posterior
    lower_bound: Array
    n_iter: Array
    converged: Array
    failed: Array


def initial_state(posterior: Posterior, lower_bound=-np.inf) -> State:
    """The state before the first iteration; ``lower_bound`` is what the first iteration's is
    compared with."""
    n_init = posterior.mean_precision.shape[0]
    dtype = posterior.means.dtype
    return State(
        posterior=posterior,
        lower_bound=jnp.full((n_init,), lower_bound, dtype),
        n_iter=jnp.zeros((n_init,), jnp.int32),
        converged=jnp.zeros((n_init,), bool),
        failed=jnp.zeros((n_init,), bool),
    )


class VariationalResult(NamedTuple):
    """The chosen restart's posterior (in the data's frame), its lower bound (scikit-learn's
    ``lower_bound_``, a total over the samples), its trace, and every restart's outcome (no
    restart is marked degenerate: a component the data leave is the prior's, by design)."""

    posterior: Posterior
    lower_bound: Array
    lower_bounds: np.ndarray
    n_iter: int
    converged: bool
    best_restart: int
    restarts: RestartOutcome  # every restart's trace and end; ``params`` None
    interrupted: bool


# -- the model's algebra, of one restart -------------------------------------------------------


def expected_log_weights(concentration: Array, weight_type: str) -> Array:
    """``E[log w_k]`` under the weights' posterior, ``(K,)``."""
    if weight_type == "dirichlet_process":
        a, b = concentration
        total = digamma(a + b)
        log_stick, log_rest = digamma(a) - total, digamma(b) - total
        return log_stick + jnp.concatenate([jnp.zeros(1, a.dtype), jnp.cumsum(log_rest)[:-1]])
    return digamma(concentration) - digamma(jnp.sum(concentration))


def _log_lambda(dof: Array, n_features: int) -> Array:
    """``E[log |Lambda|] - log |W|`` of a Wishart with ``dof`` degrees of freedom."""
    i = jnp.arange(n_features, dtype=dof.dtype)
    return n_features * jnp.log(2.0) + jnp.sum(digamma(0.5 * (dof[..., None] - i)), axis=-1)


def e_step_log_weights(post: Posterior, weight_type: str) -> Array:
    """``log w'_k`` (module docstring): the log weights of the mixture whose ordinary E-step
    is the variational one, with ``post``'s means and covariances."""
    n_features = post.means.shape[-1]
    dof = jnp.broadcast_to(post.degrees_of_freedom, post.mean_precision.shape)
    return (
        expected_log_weights(post.weight_concentration, weight_type)
        - 0.5 * n_features * jnp.log(dof)
        + 0.5 * (_log_lambda(dof, n_features) - n_features / post.mean_precision)
    )


def e_step_params(post: Posterior, weight_type: str) -> GMMParams:
    """That mixture, its weights ``exp(log w')`` scaled so that the largest is 1 (none
    underflows where it matters, and every one stays positive, so none reads as switched
    off): the responsibilities are the same."""
    log_weights = e_step_log_weights(post, weight_type)
    weights = jnp.exp(log_weights - jnp.max(log_weights))
    weights = jnp.maximum(weights, jnp.finfo(weights.dtype).tiny)
    return GMMParams(weights, post.means, post.covariances, post.precisions_cholesky)


def posterior(nk: Array, xk: Array, sk: Array, prior: Prior, *, unit, weight_type: str):
    """The posterior from scikit-learn's Gaussian estimates: masses ``nk`` (K,), means ``xk``
    (K, D) and covariances ``sk`` (``reg_covar`` included, the engine's shapes)."""
    n_components = nk.shape[0]
    if weight_type == "dirichlet_process":
        after = jnp.concatenate([jnp.cumsum(nk[::-1])[-2::-1], jnp.zeros(1, nk.dtype)])
        concentration = jnp.stack([1.0 + nk, prior.weight_concentration + after])
    else:
        concentration = prior.weight_concentration + nk
    beta0, nu0 = prior.mean_precision, prior.degrees_of_freedom
    beta = beta0 + nk
    means = (beta0 * prior.mean + nk[:, None] * xk) / beta[:, None]
    diff = xk - prior.mean
    pull = beta0 * nk / beta  # how far each component's data pulls from the prior's mean
    if unit.name == "tied":
        share = jnp.sum(nk) / n_components  # each component takes 1/K of the one Wishart
        dof = nu0 + share
        between = jnp.einsum("k,ki,kj->ij", pull, diff, diff) / n_components
        scale = prior.covariance + share * sk + between
    else:
        dof = nu0 + nk
        if unit.name == "full":
            between = pull[:, None, None] * diff[:, :, None] * diff[:, None, :]
            scale = prior.covariance + nk[:, None, None] * sk + between
        elif unit.name == "diag":
            scale = prior.covariance + nk[:, None] * sk + pull[:, None] * jnp.square(diff)
        else:
            scale = prior.covariance + nk * sk + pull * jnp.mean(jnp.square(diff), axis=-1)
    dof_shape = dof.reshape(dof.shape + (1,) * (scale.ndim - dof.ndim))
    covariances = unit.symmetrize(scale / dof_shape)
    return Posterior(concentration, beta, means, dof, covariances, unit.factor(covariances))


def _precision_trace(prec_chol: Array, scatter: Array, name: str) -> Array:
    """``sum_k tr(P_k S_k)``: the precisions' products with the engine's scatter statistics."""
    if name == "full":
        return jnp.einsum("kil,kij,kjl->", prec_chol, scatter, prec_chol)
    if name == "tied":  # the scatter is summed over the components
        return jnp.einsum("il,ij,jl->", prec_chol, scatter, prec_chol)
    if name == "diag":
        return jnp.sum(jnp.square(prec_chol) * scatter)
    return jnp.sum(jnp.square(prec_chol) * jnp.sum(scatter, axis=-1))


def _entropy(stats, e_params: GMMParams, unit) -> Array:
    """``-sum_n w_n sum_k r_nk log r_nk`` of the E-step behind ``stats`` (module docstring)."""
    n_features = e_params.means.shape[-1]
    log_norm = unit.log_det_factor(e_params.precisions_cholesky, n_features)
    per_mass = jnp.log(e_params.weights) - 0.5 * n_features * LOG_2PI + log_norm
    trace = _precision_trace(e_params.precisions_cholesky, stats.scatter, unit.name)
    return stats.log_lik - jnp.sum(stats.mass * per_mass) + 0.5 * trace


def lower_bound(entropy: Array, post: Posterior, *, unit, weight_type: str) -> Array:
    """scikit-learn's ``_compute_lower_bound`` (up to its constant): the E-step's entropy,
    less the Wishart and weight normalisers and ``D/2 sum_k log beta_k``, at the posterior
    after the M-step."""
    n_features = post.means.shape[-1]
    dof = post.degrees_of_freedom
    log_det = unit.log_det_factor(post.precisions_cholesky, n_features) - 0.5 * n_features * (
        jnp.log(dof)
    )
    i = jnp.arange(n_features, dtype=dof.dtype)
    wishart = -(
        dof * log_det
        + dof * n_features * 0.5 * jnp.log(2.0)
        + jnp.sum(gammaln(0.5 * (dof[..., None] - i)), axis=-1)
    )
    n_components = post.mean_precision.shape[0]
    wisharts = n_components * wishart if unit.name == "tied" else jnp.sum(wishart)
    if weight_type == "dirichlet_process":
        weight_norm = -jnp.sum(betaln(*post.weight_concentration))
    else:
        alpha = post.weight_concentration
        weight_norm = gammaln(jnp.sum(alpha)) - jnp.sum(gammaln(alpha))
    return (
        entropy - wisharts - weight_norm - 0.5 * n_features * jnp.sum(jnp.log(post.mean_precision))
    )


def from_gaussians(params: GMMParams, total, prior: Prior, *, unit, weight_type: str):
    """The posterior after one M-step from starting responsibilities, given as the Gaussian
    estimates ``params`` (weights = masses / ``total``) that ``jaxgmm.initialize`` returns
    (scikit-learn's ``_initialize``)."""
    return posterior(
        params.weights * total,
        params.means,
        params.covariances,
        prior,
        unit=unit,
        weight_type=weight_type,
    )


def _iteration(stats, e_params, settings, prior, *, unit, weight_type, unit_weight):
    """One restart's M-step from its E-step's statistics, and the lower bound."""
    gaussians = finalize(
        stats,
        e_params.means,
        unit=unit,
        reg_covar=settings.reg_covar,
        unit_weight=unit_weight,
        fallback_means=e_params.means,
        fallback_cov=e_params.covariances,
        previous_weights=None,
    )
    nk = stats.mass + _tiny(stats.mass.dtype)
    post = posterior(
        nk, gaussians.means, gaussians.covariances, prior, unit=unit, weight_type=weight_type
    )
    bound = lower_bound(_entropy(stats, e_params, unit), post, unit=unit, weight_type=weight_type)
    return post, bound


def _all_finite(tree) -> Array:
    leaves = jax.tree_util.tree_leaves(tree)
    return jnp.all(
        jnp.stack([jnp.all(jnp.isfinite(x.reshape(x.shape[0], -1)), axis=1) for x in leaves]),
        axis=0,
    )


def update(state, stats, e_params, settings, prior, *, unit, weight_type, unit_weight, in_turn):
    """The variational M-step of every active restart from the statistics of its E-step
    (under ``e_params``), and the bookkeeping (``jaxgmm._engine.update``'s contract: a restart
    whose bound or posterior is not finite is frozen and failed). Converged: the lower bound (a
    total, as scikit-learn's) moved by less than ``tol``, or than its own rounding
    (``ROUNDING`` eps times its size) where that is larger. Returns the new state and the
    bounds (NaN where a restart was not active)."""
    one = partial(
        _iteration,
        settings=settings,
        prior=prior,
        unit=unit,
        weight_type=weight_type,
        unit_weight=unit_weight,
    )
    running = active(state, settings.max_iter)
    post, bound = each_restart(one, in_turn, stats, e_params, when=running)
    ok = jnp.isfinite(bound) & _all_finite(post)
    keep = running & ok
    # the bound is a total: in float32 its rounding (up to 8 eps |bound| measured, 3e4 and
    # 3e5 rows) outgrows a tol of 1e-3 from a few thousand rows, and no fit would stop
    floor = jnp.maximum(settings.tol, ROUNDING * jnp.finfo(bound.dtype).eps * jnp.abs(bound))
    posterior_ = jax.tree_util.tree_map(
        lambda new, old: jnp.where(keep.reshape(keep.shape + (1,) * (new.ndim - 1)), new, old),
        post,
        state.posterior,
    )
    new_state = State(
        posterior=posterior_,
        lower_bound=jnp.where(keep, bound, state.lower_bound),
        n_iter=state.n_iter + running.astype(jnp.int32),
        converged=state.converged | (keep & (jnp.abs(bound - state.lower_bound) < floor)),
        failed=state.failed | (running & ~ok),
    )
    return new_state, jnp.where(running, bound, jnp.nan)


@program(static_argnames=("unit", "blocks", "n_steps", "weight_type"))
def advance(state, X, sample_weight, settings, prior, *, unit, blocks, n_steps, weight_type):
    """``n_steps`` variational iterations of every active restart (``jaxgmm._engine.advance``'s
    contract: the new state, the lower bounds ``(n_steps, n_init)``, NaN where a restart was
    not active, and whether all are done): a pass over the data for the E-step's statistics,
    then :func:`update`."""
    unit = blocks.factoring(unit)
    form = named_form(settings.statistics)
    unit_weight = 1.0 if sample_weight is None else jnp.max(sample_weight)

    def iterate(state):
        running = active(state, settings.max_iter)
        e_params = jax.vmap(partial(e_step_params, weight_type=weight_type))(state.posterior)
        stats = pass_statistics(
            X, sample_weight, e_params, running, unit=unit, form=form, blocks=blocks
        )
        return update(
            state,
            stats,
            e_params,
            settings,
            prior,
            unit=unit,
            weight_type=weight_type,
            unit_weight=unit_weight,
            in_turn=blocks.in_turn,
        )

    def skip(state):
        return state, jnp.full(state.lower_bound.shape, jnp.nan, state.lower_bound.dtype)

    def body(state, _):
        return lax.cond(jnp.any(active(state, settings.max_iter)), iterate, skip, state)

    state, trace = lax.scan(body, state, None, length=n_steps)
    return state, trace, ~jnp.any(active(state, settings.max_iter))


@program(static_argnames=("unit", "weight_type"))
def _start(params, total, prior, *, unit, weight_type):
    return jax.vmap(lambda p: from_gaussians(p, total, prior, unit=unit, weight_type=weight_type))(
        params
    )


def fit_variational(
    X,
    start: GMMParams | Posterior,
    prior: Prior,
    *,
    covariance_type: str,
    weight_type: str,
    reg_covar: float,
    tol: float,
    max_iter: int,
    sample_weight=None,
    start_lower_bound: float = -np.inf,
    statistics: str = "auto",
    callback=None,
    interruptible: bool = False,
    devices=None,
) -> VariationalResult:
    """Variational iterations from ``start`` (a batch of restarts, leading axis ``n_init``):
    Gaussian estimates from starting responsibilities (``jaxgmm.initialize``'s parameters), or
    a posterior to continue (scikit-learn's ``warm_start``, whose first lower bound is then
    compared with ``start_lower_bound``). ``X`` is a checked JAX or NumPy array, ``prior`` in
    the data's frame; the best restart is the one of highest lower bound that did not fail.
    ``devices``: shard the rows over them (``jaxgmm._blocks.as_mesh``), as :func:`jaxgmm.fit`."""
    unit = covariance_unit(covariance_type)
    X = jnp.asarray(X)
    n_samples, n_features = X.shape
    sample_weight = None if sample_weight is None else jnp.asarray(sample_weight, X.dtype)
    mesh = as_mesh(devices)
    small = mesh is None and is_small(n_samples, n_features)
    if mesh is not None:  # padded with rows of weight zero
        X, sample_weight = shard_rows(X, sample_weight, mesh)
    elif small:  # padded too, to a few sizes: a new N compiles nothing
        X, sample_weight = pad_rows(X, sample_weight, padded_rows(n_samples))
    rows = X.shape[0] // (1 if mesh is None else mesh.size)
    Xc, centre, _ = _engine.prepare(X, sample_weight, mesh=mesh)
    prior = jax.tree_util.tree_map(lambda a: jnp.asarray(a, X.dtype), prior)
    prior_c = prior._replace(mean=prior.mean - centre)
    if isinstance(start, Posterior):
        post = jax.tree_util.tree_map(lambda a: jnp.asarray(a, X.dtype), start)
        post = post._replace(means=post.means - centre)
    else:
        total = n_samples if sample_weight is None else jnp.sum(sample_weight)  # padding: 0
        start = start._replace(means=start.means - centre)
        post = _start(
            start,
            jnp.asarray(total, X.dtype),
            prior_c,
            unit=unit,
            weight_type=weight_type,
            small=small,
        )
    n_init, n_components = post.mean_precision.shape
    state = initial_state(post, start_lower_bound)
    form = choose_form(statistics, unit, rows=rows, n_features=n_features, traced=False)
    in_turn = restarts_in_turn(small)
    size = default_block_size(
        rows,
        n_components,
        n_features,
        1 if in_turn else n_init,
        expanded_width=form.row_width(unit, n_features),
        in_turn=in_turn,
    )
    blocks = Blocks(int(size), mesh, in_turn)
    settings = EMSettings(reg_covar=reg_covar, tol=tol, max_iter=max_iter).with_form(form)

    def step(state, n_steps):
        return advance(
            state,
            Xc,
            sample_weight,
            settings,
            prior_c,
            unit=unit,
            blocks=blocks,
            n_steps=n_steps,
            weight_type=weight_type,
            small=small,
        )

    state, traces, interrupted = _host_loop.iterate(
        state,
        step,
        np.zeros((0, n_init), X.dtype),
        max_iter=max_iter,
        callback=callback,
        interruptible=interruptible,
    )
    return result(state, traces, centre, interrupted)


def result(state: State, traces: np.ndarray, centre, interrupted: bool) -> VariationalResult:
    """The :class:`VariationalResult` of a finished state (centred) and its traces
    ``(T, n_init)``: the restart of highest lower bound that did not fail, in the data's
    frame."""
    n_init = traces.shape[1]
    host = jax.device_get(state)
    bounds = np.where(host.failed, -np.inf, host.lower_bound)
    best = int(np.argmax(bounds))
    chosen = jax.tree_util.tree_map(lambda a: a[best], host.posterior)
    chosen = chosen._replace(means=chosen.means + np.asarray(centre))
    trace = traces[:, best]
    return VariationalResult(
        posterior=chosen,
        lower_bound=host.lower_bound[best],
        lower_bounds=trace[~np.isnan(trace)],
        n_iter=int(host.n_iter[best]),
        converged=bool(host.converged[best]),
        best_restart=best,
        restarts=RestartOutcome(
            lower_bound=host.lower_bound,
            lower_bounds=traces.T,
            n_iter=host.n_iter,
            converged=host.converged,
            failed=host.failed,
            degenerate=np.zeros(n_init, bool),
            params=None,
        ),
        interrupted=bool(interrupted),
    )


@partial(jax.jit, static_argnames=("weight_type",))
def e_step_batch(posterior, *, weight_type):
    """Every restart's E-step mixture (leading axis ``n_init``)."""
    return jax.vmap(partial(e_step_params, weight_type=weight_type))(posterior)


@partial(jax.jit, static_argnames=("unit", "weight_type"))
def streamed_update(state, stats, e_params, settings, prior, *, unit, weight_type):
    """:func:`update` after a pass over data read in blocks (restarts batched)."""
    return update(
        state,
        stats,
        e_params,
        settings,
        prior,
        unit=unit,
        weight_type=weight_type,
        unit_weight=1.0,
        in_turn=False,
    )
