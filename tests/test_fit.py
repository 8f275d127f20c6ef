"""fit: the lesson, restarts, determinism, compilation, offsets, failures, composability."""

from __future__ import annotations

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ENGINE_TYPES, assert_close, blobs, relative_error, starting_params

import jaxgmm
from jaxgmm import reference
from jaxgmm.datasets import LESSON_MEANS


def lesson32():
    return jaxgmm.lesson_data().astype(np.float32)


def sorted_means(means):
    means = np.asarray(means)
    return means[np.argsort(means[:, 0])]


# --- the lesson ---------------------------------------------------------------------------


def test_lesson_recovers_both_means():
    result = jaxgmm.fit(jax.random.key(0), lesson32(), 2)
    assert np.max(np.abs(sorted_means(result.params.means) - LESSON_MEANS)) < 0.3
    assert bool(result.converged)


def test_lesson_trace_rises_then_flattens_and_is_not_zero():
    result = jaxgmm.fit(jax.random.key(3), lesson32(), 2, init="random", tol=1e-5, max_iter=300)
    trace = np.asarray(result.lower_bounds)
    assert len(trace) == int(result.n_iter) >= 5
    # the original lesson's bug (the bound taken after normalising) gives 0 everywhere
    assert np.all(np.abs(trace) > 1.0)
    assert trace[-1] - trace[0] > 0.05
    assert np.all(np.diff(trace) >= -1e-5)
    assert abs(trace[-1] - trace[-2]) < 1e-5
    assert np.max(np.abs(sorted_means(result.params.means) - LESSON_MEANS)) < 0.3


def test_lower_bound_is_the_mean_log_likelihood_of_the_parameters_going_in():
    X = lesson32()
    init = jaxgmm.params_from_covariances(
        np.array([0.3, 0.7], np.float32),
        np.array([[-1.0, 0.0], [1.0, 0.0]], np.float32),
        np.stack([np.eye(2, dtype=np.float32)] * 2),
        covariance_type="full",
    )
    result = jaxgmm.fit(jax.random.key(0), X, 2, init=init, max_iter=3, tol=0.0)
    expected = float(jnp.mean(jaxgmm.log_prob(jnp.asarray(X), init, covariance_type="full")))
    assert result.lower_bounds[0] == pytest.approx(expected, rel=1e-6)
    assert expected < -2.0  # a real log-likelihood, not the 0 of normalised responsibilities


# --- restarts, keys, compilation ----------------------------------------------------------


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("covariance_type", ["full", "tied", "spherical"])
def test_a_pass_over_the_components_switched_on_equals_the_whole_pass(covariance_type):
    """A restart with 3 of 8 components switched on (weight 0 for the rest), in turn, makes its
    pass over 4 of them: every statistic equals the pass over all 8, zeros included."""
    from jaxgmm import _engine
    from jaxgmm._blocks import Blocks
    from jaxgmm._covariance import ANY_MODEL
    from jaxgmm._shapes import dense_params
    from jaxgmm._statistics import Exact

    X = jnp.asarray(blobs())
    unit = jaxgmm.COVARIANCE_TYPES[covariance_type]
    p = jaxgmm.params_from_covariances(
        *starting_params(np.asarray(X), 3, covariance_type), covariance_type=covariance_type
    )
    params = jax.tree_util.tree_map(
        lambda a: jnp.asarray(a)[None], dense_params(p, 8, unit)
    )  # one restart, 8 components, the last 5 switched off
    running = jnp.ones(1, bool)

    def statistics(sizes):
        blocks = Blocks(64, None, True, sizes)
        return _engine.pass_statistics(
            X, None, params, running, unit=ANY_MODEL, form=Exact, blocks=blocks
        )

    whole, bucketed = statistics(()), statistics((4, 8))
    for a, b in zip(
        jax.tree_util.tree_leaves(whole), jax.tree_util.tree_leaves(bucketed), strict=True
    ):
        assert a.shape == b.shape
        assert_close(b, a, 1e-12, "statistics")
    assert not np.asarray(bucketed.mass)[0, 4:].any()


def assert_restart_is_the_single_fit(many, one, restart=0):
    """Restart ``restart`` of ``many`` is, bit for bit, the fit ``one`` (of that restart)."""
    single = one.restarts
    for field in ("lower_bound", "n_iter", "converged", "failed", "degenerate"):
        np.testing.assert_array_equal(
            np.asarray(getattr(many.restarts, field))[restart],
            np.asarray(getattr(single, field))[0],
        )
    n_iter = int(np.asarray(single.n_iter)[0])
    np.testing.assert_array_equal(
        np.asarray(many.restarts.lower_bounds)[restart, :n_iter],
        np.asarray(single.lower_bounds)[0, :n_iter],
    )
    for a, b in zip(
        jax.tree_util.tree_leaves(many.restarts.params),
        jax.tree_util.tree_leaves(single.params),
        strict=True,
    ):
        np.testing.assert_array_equal(np.asarray(a)[restart], np.asarray(b)[0])


@pytest.mark.parametrize("statistics", ["exact", "expanded", "auto"])
@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_more_restarts_never_worse_bit_for_bit(covariance_type, statistics):
    """Restart i starts where restart i of any other n_init starts, and its arithmetic does not
    depend on how many restarts run beside it: restart 0 of 8 *is* the single fit, so the best
    of 8 is never below it, on any CPU (small data: the restarts run in turn; see
    jaxgmm._engine.each_restart)."""
    X = blobs(seed=5).astype(np.float32)
    key = jax.random.key(11)
    kwargs = dict(covariance_type=covariance_type, init="random_from_data", statistics=statistics)
    one = jaxgmm.fit(key, X, 4, **kwargs)
    eight = jaxgmm.fit(key, X, 4, n_init=8, **kwargs)
    assert_restart_is_the_single_fit(eight, one)
    assert float(eight.lower_bound) >= float(one.lower_bound)
    again = jaxgmm.fit(key, X, 4, n_init=8, **kwargs)
    for a, b in zip(
        jax.tree_util.tree_leaves(eight), jax.tree_util.tree_leaves(again), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_every_restart_independent_of_the_batch_mclust_models():
    """Restarts 0 and 1 of a batch of 5 equal those of a batch of 2, for mclust's models
    beyond scikit-learn's four (one of each kind: closed-form, iterative M-steps)."""
    X = blobs(seed=2).astype(np.float32)
    key = jax.random.key(4)
    for covariance_type in ("EII", "EEV", "VEI", "VVE"):
        kwargs = dict(covariance_type=covariance_type, init="random", max_iter=30)
        two = jaxgmm.fit(key, X, 3, n_init=2, **kwargs)
        five = jaxgmm.fit(key, X, 3, n_init=5, **kwargs)
        for restart in (0, 1):
            single = two._replace(
                restarts=jax.tree_util.tree_map(lambda a, r=restart: a[r : r + 1], two.restarts)
            )
            assert_restart_is_the_single_fit(five, single, restart)


def test_second_fit_with_same_shapes_does_not_compile(caplog):
    X = blobs(seed=1).astype(np.float32)
    kwargs = dict(covariance_type="diag", n_init=3)
    jaxgmm.fit(jax.random.key(0), X, 3, tol=1e-3, reg_covar=1e-6, **kwargs)
    other = (X * 1.5 + 2.0).astype(np.float32)
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        caplog.clear()
        jaxgmm.fit(jax.random.key(1), other, 3, tol=1e-4, reg_covar=1e-5, max_iter=50, **kwargs)
    compiles = [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]
    assert compiles == []


# --- numerics far from the origin ---------------------------------------------------------


@pytest.mark.parametrize("statistics", ["exact", "expanded"])
@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_float32_offset_1e4(covariance_type, statistics):
    X = lesson32()
    kwargs = dict(covariance_type=covariance_type, statistics=statistics)
    base = jaxgmm.fit(jax.random.key(0), X, 2, **kwargs)
    moved = jaxgmm.fit(jax.random.key(0), (X + np.float32(1e4)), 2, **kwargs)
    spread = float(np.std(X))
    shifted_back = np.asarray(moved.params.means, np.float64) - 1e4
    assert np.max(np.abs(shifted_back - np.asarray(base.params.means))) < 1e-3 * spread
    assert_close(moved.params.covariances, base.params.covariances, 1e-3, "covariances")
    assert_close(moved.params.weights, base.params.weights, 1e-3, "weights")


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_float64_offset_1e8(covariance_type):
    X = jaxgmm.lesson_data()
    base = jaxgmm.fit(jax.random.key(0), X, 2, covariance_type=covariance_type)
    moved = jaxgmm.fit(jax.random.key(0), X + 1e8, 2, covariance_type=covariance_type)
    shifted_back = np.asarray(moved.params.means) - 1e8
    assert np.max(np.abs(shifted_back - np.asarray(base.params.means))) < 1e-6 * np.std(X)
    assert_close(moved.params.covariances, base.params.covariances, 1e-6, "covariances")


# --- failures and degenerate restarts -----------------------------------------------------


def _duplicate_trap(dtype):
    """Blobs with one point repeated ten times, and two starting points: a sound one, and one
    whose third component sits on the repeated point with a tiny covariance."""
    X = blobs(seed=2)
    X = np.concatenate([X, np.repeat(X[:1], 10, axis=0)])
    sound = starting_params(X, 3, "full")
    trap = reference.Params(
        weights=np.array([0.45, 0.45, 0.1]),
        means=np.stack([sound.means[0], sound.means[1], X[0]]),
        covariances=np.stack([sound.covariances[0], sound.covariances[1], 1e-4 * np.eye(3)]),
    )
    stacked = [np.stack([a, b]).astype(dtype) for a, b in zip(sound, trap, strict=True)]
    init = jaxgmm.params_from_covariances(*stacked, covariance_type="full")
    return X.astype(dtype), init


@pytest.mark.usefixtures("x64")
def test_failed_restart_is_reported_and_leaves_the_other_intact():
    X, init = _duplicate_trap(np.float64)
    both = jaxgmm.fit(jax.random.key(0), X, 3, n_init=2, init=init, reg_covar=0.0)
    assert np.asarray(both.restarts.failed).tolist() == [False, True]
    assert not bool(both.restarts.converged[1])
    assert int(both.best_restart) == 0
    sound_only = jax.tree_util.tree_map(lambda a: a[0], init)
    alone = jaxgmm.fit(jax.random.key(0), X, 3, init=sound_only, reg_covar=0.0)
    assert_close(both.params.means, alone.params.means, 1e-12, "means")
    assert_close(both.lower_bounds, alone.lower_bounds, 1e-12, "trace")
    # the failed restart was frozen at finite parameters
    for leaf in jax.tree_util.tree_leaves(both.restarts.params):
        assert np.all(np.isfinite(np.asarray(leaf)))


@pytest.mark.usefixtures("x64")
def test_every_restart_failed_raises_with_advice():
    X, init = _duplicate_trap(np.float64)
    trap_only = jax.tree_util.tree_map(lambda a: a[1], init)
    with pytest.raises(ValueError, match="restarts failed.*fewer components.*reg_covar"):
        jaxgmm.fit(jax.random.key(0), X, 3, init=trap_only, reg_covar=0.0)


def test_degenerate_restart_is_flagged_and_avoided_by_default():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=300), rng.integers(0, 5, size=300)]).astype(np.float32)
    data_var = X.var(axis=0)
    sound = jaxgmm.params_from_covariances(
        np.array([0.5, 0.5]),
        np.array([[-0.8, 2.0], [0.8, 2.0]]),
        np.stack([np.diag(data_var)] * 2),
        covariance_type="full",
    )
    spike = jaxgmm.params_from_covariances(
        np.array([0.8, 0.2]),
        np.array([[0.0, 2.0], [0.0, 2.0]]),
        np.stack([np.diag(data_var), np.diag([data_var[0], 1e-4])]),
        covariance_type="full",
    )
    init = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]).astype(jnp.float32), sound, spike)
    result = jaxgmm.fit(jax.random.key(0), X, 2, n_init=2, init=init)
    outcome = result.restarts
    assert np.asarray(outcome.degenerate).tolist() == [False, True]
    assert float(outcome.lower_bound[1]) > float(outcome.lower_bound[0])
    assert int(result.best_restart) == 0
    plain = jaxgmm.fit(jax.random.key(0), X, 2, n_init=2, init=init, prefer_nondegenerate=False)
    assert int(plain.best_restart) == 1


# --- composability ------------------------------------------------------------------------


@pytest.mark.usefixtures("x64")
def test_vmap_of_fit_over_data_sets():
    sets = np.stack([blobs(seed=s, n_per=30) for s in range(3)])
    key = jax.random.key(4)
    batched = jax.vmap(lambda X: jaxgmm.fit(key, X, 3, n_init=2, max_iter=40))(jnp.asarray(sets))
    assert batched.params.means.shape == (3, 3, 3)
    assert batched.lower_bounds.shape == (3, 40)
    for i in range(3):
        single = jaxgmm.fit(key, sets[i], 3, n_init=2, max_iter=40)
        # restart by restart (the best one may differ: both restarts can reach the same optimum
        # with the components in another order, and then rounding decides)
        n = np.asarray(single.restarts.n_iter)
        np.testing.assert_array_equal(np.asarray(batched.restarts.n_iter[i]), n)
        assert_close(batched.restarts.params.means[i], single.restarts.params.means, 1e-10)
        traces = np.asarray(batched.restarts.lower_bounds[i])
        for r in range(2):
            assert_close(traces[r, : n[r]], single.restarts.lower_bounds[r, : n[r]], 1e-10)
            assert np.all(np.isnan(traces[r, n[r] :]))


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_grad_of_mean_log_likelihood(covariance_type):
    X = jnp.asarray(blobs(n_per=20))
    p = starting_params(np.asarray(X), 3, covariance_type)
    params = jaxgmm.params_from_covariances(*p, covariance_type=covariance_type)

    def mean_ll(means, data):
        return jnp.mean(
            jaxgmm.log_prob(data, params._replace(means=means), covariance_type=covariance_type)
        )

    grad_means, grad_x = jax.grad(mean_ll, argnums=(0, 1))(params.means, X)
    # analytic: d/d mu_k = 1/N sum_n r_nk P_k (x_n - mu_k)
    #           d/d x_n = -1/N sum_k r_nk P_k (x_n - mu_k)
    log_resp, _ = reference.e_step(np.asarray(X), p, covariance_type)
    resp = np.exp(log_resp)
    covs = reference.full_covariances(p.covariances, covariance_type, 3, 3)
    pulls = np.stack(
        [np.linalg.solve(covs[k], (np.asarray(X) - p.means[k]).T).T for k in range(3)]
    )  # (K, N, D)
    n = X.shape[0]
    assert_close(grad_means, np.einsum("nk,knd->kd", resp, pulls) / n, 1e-10, "d/d means")
    assert_close(grad_x, -np.einsum("nk,knd->nd", resp, pulls) / n, 1e-10, "d/d X")


# --- initialisation and edge settings -----------------------------------------------------


@pytest.mark.parametrize("init", jaxgmm.INIT_METHODS)
def test_every_init_method_recovers_the_lesson(init):
    # "random" starts every component near the data mean, a saddle where the bound moves by
    # less than the default tol at first (as in scikit-learn): it needs a smaller tol.
    result = jaxgmm.fit(
        jax.random.key(0), lesson32(), 2, init=init, n_init=4, tol=1e-6, max_iter=500
    )
    assert np.max(np.abs(sorted_means(result.params.means) - LESSON_MEANS)) < 0.3


def test_kmeans_plusplus_picks_distinct_data_points():
    X = jnp.asarray(blobs().astype(np.float32))
    centres = np.asarray(jaxgmm.kmeans_plusplus(jax.random.key(0), X, 5))
    rows = {tuple(r) for r in np.asarray(X)}
    assert all(tuple(c) in rows for c in centres)
    assert len({tuple(c) for c in centres}) == 5


@pytest.mark.usefixtures("x64")
def test_lloyd_sums_the_same_by_scatter_and_by_one_hot_product(monkeypatch):
    """Lloyd's per-cluster sums are a scatter-add on the CPU and a product of one-hot rows on
    an accelerator: from the same seeds both reach the same fixed point, every centre the
    mean of the rows nearest to it."""
    from jaxgmm import _init

    class Backend:  # jax as _init sees it, on another backend
        def __init__(self, name):
            self.name = name

        def __getattr__(self, attribute):
            return getattr(jax, attribute)

        def default_backend(self):
            return self.name

    X = jnp.asarray(blobs())
    seeds = jaxgmm.kmeans_plusplus(jax.random.key(1), X, 3)
    centres = {}
    for backend in ("cpu", "gpu"):
        monkeypatch.setattr(_init, "jax", Backend(backend))
        centres[backend] = np.asarray(_init.lloyd(X, seeds, blocks=37))
    assert_close(centres["gpu"], centres["cpu"], 1e-12)
    labels = np.argmin(((np.asarray(X)[:, None, :] - centres["cpu"][None]) ** 2).sum(-1), axis=1)
    means = np.stack([np.asarray(X)[labels == k].mean(axis=0) for k in range(3)])
    assert_close(centres["cpu"], means, 1e-12)


def test_max_iter_zero_returns_the_initial_parameters():
    X = lesson32()
    init = jaxgmm.params_from_covariances(
        np.array([0.5, 0.5], np.float32),
        np.array([[-1.0, 0.0], [1.0, 0.0]], np.float32),
        np.stack([np.eye(2, dtype=np.float32)] * 2),
        covariance_type="full",
    )
    result = jaxgmm.fit(jax.random.key(0), X, 2, init=init, max_iter=0)
    assert int(result.n_iter) == 0 and not bool(result.converged)
    assert result.lower_bounds.shape == (0,)
    assert_close(result.params.means, init.means, 1e-6, "means")


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("covariance_type, init", [("full", "kmeans"), ("VEI", "random")])
def test_a_start_made_by_the_iterations_code_is_the_start(covariance_type, init):
    """Restarts in turn (small data on the CPU) leave the start's M-step to the iterations'
    program (``jaxgmm._engine.Pending``): with ``max_iter=0`` each restart's parameters are
    the start's as :func:`jaxgmm.initialize` makes them, with no iteration counted, and two
    iterations are those of a fit from those parameters."""
    X = blobs(seed=3)
    kwargs = dict(covariance_type=covariance_type, n_init=3, init=init)
    key = jax.random.key(5)
    start = jaxgmm.initialize(key, X, 3, **kwargs)
    made = jaxgmm.fit(key, X, 3, max_iter=0, **kwargs)
    assert (np.asarray(made.restarts.n_iter) == 0).all()
    assert not np.asarray(made.restarts.failed).any()
    for name in ("weights", "means", "covariances"):
        assert_close(getattr(made.restarts.params, name), getattr(start, name), 1e-10, name)
    two = jaxgmm.fit(key, X, 3, max_iter=2, tol=0.0, **kwargs)
    given = jaxgmm.fit(key, X, 3, max_iter=2, tol=0.0, **(kwargs | dict(init=start)))
    assert_close(two.restarts.lower_bounds, given.restarts.lower_bounds, 1e-12, "lower bounds")
    assert_close(two.restarts.params.means, given.restarts.params.means, 1e-10, "means")


# --- chunked iterations and progress ------------------------------------------------------


def test_continuing_a_fit_compares_its_first_iteration_with_the_previous_lower_bound():
    X = lesson32()
    key = jax.random.key(0)
    first = jaxgmm.fit(key, X, 2, tol=1e-3, max_iter=200)
    assert bool(first.converged)
    # without the previous lower bound the first iteration has nothing to compare with
    again = jaxgmm.fit(key, X, 2, init=first.params, tol=1e-3, max_iter=3)
    assert int(again.n_iter) == 2 and bool(again.converged)
    carried = jaxgmm.fit(
        key, X, 2, init=first.params, tol=1e-3, max_iter=3, previous_lower_bound=first.lower_bound
    )
    assert int(carried.n_iter) == 1 and bool(carried.converged)
    with pytest.raises(ValueError, match="give its parameters as init"):
        jaxgmm.fit(key, X, 2, previous_lower_bound=first.lower_bound)


@pytest.mark.usefixtures("x64")
def test_chunks_of_iterations_equal_one_scan_and_report_progress():
    X = blobs()
    key = jax.random.key(2)
    seen = []
    chunked = jaxgmm.fit(
        key, X, 3, n_init=3, init="random", max_iter=35, tol=1e-8, callback=seen.append
    )
    one_scan = jax.jit(
        lambda data: jaxgmm.fit(key, data, 3, n_init=3, init="random", max_iter=35, tol=1e-8)
    )(jnp.asarray(X))
    assert_close(chunked.restarts.params.means, one_scan.restarts.params.means, 1e-12)
    assert_close(chunked.restarts.lower_bound, one_scan.restarts.lower_bound, 1e-12)
    np.testing.assert_array_equal(
        np.asarray(chunked.restarts.n_iter), np.asarray(one_scan.restarts.n_iter)
    )
    from jaxgmm import _fit
    from jaxgmm._covariance import covariance_unit
    from jaxgmm._engine import EMSettings

    small = _fit.run_restarts(
        key,
        jnp.asarray(X),
        None,
        unit=covariance_unit("full"),
        n_components=3,
        n_init=3,
        init="random",
        settings=EMSettings(reg_covar=1e-6, tol=1e-8, max_iter=35),
        chunk_iterations=3,
    )
    assert_close(small[2].params.means, chunked.restarts.params.means, 1e-12)
    # progress after every chunk of 10: iterations rise, running restarts fall, bound rises
    assert [p.iteration for p in seen] == sorted(p.iteration for p in seen)
    assert seen[-1].iteration == int(np.max(np.asarray(chunked.restarts.n_iter)))
    assert all(p.max_iter == 35 and p.n_init == 3 for p in seen)
    assert seen[-1].running == 0 or seen[-1].iteration == 35
    assert seen[-1].best_lower_bound == pytest.approx(float(chunked.lower_bound), rel=1e-12)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("in_turn", [True, False])
def test_auto_form_per_restart_in_turn_and_one_for_a_batch(in_turn):
    """statistics="auto" in the program: in turn, each restart's pass takes its own form (the
    exact one for a restart whose mean sits 1e7 standard deviations out, the expanded one for
    the others); batched, the whole batch takes the exact form as soon as one restart needs
    it. Either way, the statistics of both forms (the far restart's component is empty)."""
    from jaxgmm._blocks import Blocks
    from jaxgmm._covariance import covariance_unit
    from jaxgmm._engine import pass_statistics
    from jaxgmm._statistics import Auto, Exact, Expanded

    unit = covariance_unit("full")
    X = blobs()
    X = X - X.mean(axis=0)
    start = starting_params(X, 3, "full", seed=0)
    near, far = (
        jaxgmm.params_from_covariances(
            start.weights, start.means + shift, start.covariances, covariance_type="full"
        )
        for shift in (0.0, np.array([1e7, 0.0, 0.0]))
    )
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b, a]), near, far)
    assert [bool(Auto.expanded_accurate(p, unit)) for p in (near, far)] == [True, False]
    X, running = jnp.asarray(X), jnp.ones(3, bool)

    def statistics(form):
        leaves = pass_statistics(
            X, None, batch, running, unit=unit, form=form, blocks=Blocks(37, None, in_turn)
        )
        return jax.tree_util.tree_leaves(leaves)

    auto = statistics(Auto)
    for form in (Exact, Expanded):
        for a, b in zip(auto, statistics(form), strict=True):
            assert_close(a, b, 1e-10)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("in_turn", [True, False])
def test_auto_form_avoids_the_expanded_error(in_turn):
    """A restart whose two components sit 5e6 standard deviations either side of the centre
    (two clusters 1e7 apart) would lose its scatters' digits in the expanded form; "auto"
    gives it the exact form's, in turn beside a restart that takes the expanded form, and
    batched."""
    from jaxgmm._blocks import Blocks
    from jaxgmm._covariance import covariance_unit
    from jaxgmm._engine import pass_statistics
    from jaxgmm._statistics import Auto, Exact, Expanded

    unit = covariance_unit("full")
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(60, 2)), rng.normal(size=(60, 2)) + [1e7, 0.0]])
    X = X - X.mean(axis=0)
    means = np.array([[-5e6, 0.0], [5e6, 0.0]])
    tight = jaxgmm.params_from_covariances(
        np.full(2, 0.5), means, np.stack([np.eye(2)] * 2), covariance_type="full"
    )
    broad = jaxgmm.params_from_covariances(
        np.full(2, 0.5), means / 10, np.stack([np.diag([2.5e13, 1.0])] * 2), covariance_type="full"
    )
    assert [bool(Auto.expanded_accurate(p, unit)) for p in (broad, tight)] == [True, False]
    batch = jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), broad, tight)
    X, running = jnp.asarray(X), jnp.ones(2, bool)

    def scatter(form):
        blocks = Blocks(37, None, in_turn)
        stats = pass_statistics(X, None, batch, running, unit=unit, form=form, blocks=blocks)
        return np.asarray(stats.scatter)

    auto, exact, expanded = scatter(Auto), scatter(Exact), scatter(Expanded)
    assert relative_error(expanded[1], exact[1]) > 1e-6  # the expanded form alone is off
    assert relative_error(auto[1], exact[1]) < 1e-12
    assert relative_error(auto[0], exact[0]) < 1e-8


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    "covariance_type, noise",
    [(t, False) for t in ENGINE_TYPES + ("EEI", "EEV")] + [("full", True), ("tied", True)],
)
def test_expanded_statistics_equal_the_exact_ones(covariance_type, noise):
    """A model's own program (larger data: no dense program) in the expanded form: the pass's
    statistics, once centred on the shift, equal the exact form's, with sample weights and
    with a noise component (tied's one precision: a quadratic term shared by the Gaussians
    only; the others' noise column is the generic form's, full's). mclust's models take the
    expanded form of their family (full, diag, spherical): two of them here, EEI (equal
    diagonal covariances) and EEV (dense ones)."""
    from jaxgmm._blocks import Blocks
    from jaxgmm._engine import pass_statistics
    from jaxgmm._params import Noise
    from jaxgmm._statistics import Exact, Expanded

    unit = jaxgmm.COVARIANCE_TYPES[covariance_type]
    X = blobs()
    X = X - X.mean(axis=0)
    w = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    start = starting_params(X, 3, covariance_type, seed=0)
    params = jaxgmm.params_from_covariances(
        start.weights * (0.9 if noise else 1.0),
        start.means,
        start.covariances,
        covariance_type=covariance_type,
    )
    if noise:
        params = params._replace(noise=Noise(jnp.asarray(0.1), jnp.asarray(-6.0)))
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, a]), params)

    def statistics(form):
        stats = pass_statistics(
            jnp.asarray(X),
            jnp.asarray(w),
            batch,
            jnp.ones(2, bool),
            unit=unit,
            form=form,
            blocks=Blocks(37, None, True),
        )
        return jax.tree_util.tree_leaves(stats)

    for a, b in zip(statistics(Expanded), statistics(Exact), strict=True):
        assert_close(a, b, 1e-10)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_blocks_of_samples_equal_one_block(covariance_type):
    X = blobs()  # 240 rows: blocks of 37 leave a tail of 18
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    kwargs = dict(covariance_type=covariance_type, n_init=2, max_iter=20, tol=0.0, sample_weight=w)
    whole = jaxgmm.fit(jax.random.key(0), X, 3, block_size=len(X), **kwargs)
    blocked = jaxgmm.fit(jax.random.key(0), X, 3, block_size=37, **kwargs)
    assert_close(blocked.restarts.lower_bounds, whole.restarts.lower_bounds, 1e-12, "traces")
    assert_close(blocked.restarts.params.means, whole.restarts.params.means, 1e-10, "means")
    assert_close(blocked.restarts.params.covariances, whole.restarts.params.covariances, 1e-10)


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("init", jaxgmm.INIT_METHODS)
def test_initialisation_in_blocks_equals_one_block(init):
    from jaxgmm._covariance import covariance_unit
    from jaxgmm._fit import hc_labels
    from jaxgmm._init import initial_params
    from jaxgmm._random import uniform_table

    X = jnp.asarray(blobs())
    w = jnp.asarray(np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0]))
    kwargs = dict(unit=covariance_unit("full"), reg_covar=1e-6, sample_weight=w)
    key = jax.random.key(5)
    uniforms = uniform_table(key, np.zeros(1, np.int32), 4, X.dtype)[0]
    if init == "hc":  # the table holds the labels of the hierarchical start
        uniforms = jnp.asarray(hc_labels(key, X, w, [4])[0])
    whole = initial_params(key, uniforms, X, 4, init, **kwargs)
    blocked = initial_params(key, uniforms, X, 4, init, blocks=37, **kwargs)
    for a, b in zip(
        jax.tree_util.tree_leaves(blocked), jax.tree_util.tree_leaves(whole), strict=True
    ):
        assert_close(a, b, 1e-12)


def test_auto_statistics_keep_float32_accuracy_for_far_tight_clusters():
    """Means 300 standard deviations from the centre would cost the expanded form ~1e-2; "auto"
    must see it and stay exact."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 3)) * 300
    X = centres[rng.integers(0, 4, 4000)] + rng.normal(size=(4000, 3))
    init = jaxgmm.params_from_covariances(
        np.full(4, 0.25), centres + 0.5, np.stack([np.eye(3)] * 4), covariance_type="full"
    )
    with jax.enable_x64(True):
        reference64 = jaxgmm.fit(
            jax.random.key(0), X, 4, init=init, max_iter=10, tol=0.0, statistics="exact"
        )
    init32 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), init)
    X32 = X.astype(np.float32)
    auto = jaxgmm.fit(jax.random.key(0), X32, 4, init=init32, max_iter=10, tol=0.0)
    expanded = jaxgmm.fit(
        jax.random.key(0), X32, 4, init=init32, max_iter=10, tol=0.0, statistics="expanded"
    )
    assert relative_error(auto.params.covariances, reference64.params.covariances) < 1e-4
    # and the check is needed: the expanded form alone is far off here
    assert relative_error(expanded.params.covariances, reference64.params.covariances) > 1e-3


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_expanded_error_estimate_is_the_largest_standardised_mean(covariance_type):
    """The estimate behind statistics="auto", per restart: max over active components and
    features of mean^2 / variance (data centred); a switched-off component (weight 0) does not
    count."""
    from jaxgmm._covariance import covariance_unit
    from jaxgmm._statistics import standardized_z2

    rng = np.random.default_rng(3)
    n_init, k, d = 2, 3, 4
    covariances = np.stack(
        [[np.cov(rng.normal(size=(5 * d, d)), rowvar=False) for _ in range(k)]] * n_init
    )
    means = rng.normal(size=(n_init, k, d)) * 5
    weights = np.full((n_init, k), 1.0 / k)
    weights[1, 2] = 0.0
    means[1, 2] = 1e3  # off: must be ignored
    variances = np.diagonal(covariances, axis1=-2, axis2=-1)
    if covariance_type == "tied":
        covariances, variances = covariances[:, 0], variances[:, :1]
    elif covariance_type == "diag":
        covariances = variances
    elif covariance_type == "spherical":
        covariances = variances.mean(axis=-1)
        variances = covariances[..., None]
    params = jax.vmap(
        lambda w, m, c: jaxgmm.params_from_covariances(w, m, c, covariance_type=covariance_type)
    )(*(jnp.asarray(a, jnp.float32) for a in (weights, means, covariances)))
    z2 = np.square(means) / variances
    expected = [z2[0].max(), z2[1, :2].max()]
    unit = covariance_unit(covariance_type)
    got = jax.vmap(lambda p: standardized_z2(p, unit))(params)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_weighted_draws_equal_jax_choice_whatever_the_row_shards(x64):
    # k-means++ draws through jaxgmm._init._draw_index, whose cumulative sum is taken per row
    # shard (a cumulative sum along a sharded axis is hundreds of times slower); with one part
    # it must be jax.random.choice's draw exactly, with several the same up to rounding.
    from jaxgmm._init import _draw_index

    p = jax.numpy.asarray(np.random.default_rng(0).random(1200))
    p = p.at[100:400].set(0.0)
    for seed in range(50):
        key = jax.random.key(seed)
        expected = int(jax.random.choice(key, len(p), p=p))
        assert not 100 <= expected < 400
        u = jax.random.uniform(key, (), dtype=p.dtype)  # the number choice draws
        assert int(_draw_index(u, p, 1)) == expected
        assert int(_draw_index(u, p, 4)) == expected
