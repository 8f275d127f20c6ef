"""Bootstrap inference (``jaxgmm._bootstrap``): a batch of replicates equals separate fits,
standard errors against a formula and against R's mclust, and mclust's likelihood-ratio test.

The mclust figures were recorded by ``tests/data/mclust/make_bootstrap_reference.R``
(mclust 6.0.0); the tests read them and never need R.
"""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np
import pytest
from helpers import relative_error

import jaxgmm
from jaxgmm import _bootstrap
from jaxgmm._covariance import covariance_unit
from jaxgmm._fit import check_settings
from jaxgmm.datasets import faithful, iris

DATA = Path(__file__).parent / "data" / "mclust"
FAITHFUL = faithful()
IRIS = iris()

pytestmark = pytest.mark.usefixtures("x64")


def fixed_iterations(covariance_type, n_iter=25):
    return check_settings(
        n_components=1,
        covariance_type=covariance_type,
        n_init=1,
        max_iter=n_iter,
        tol=0.0,
        reg_covar=1e-6,
    )[3]


def fitted(X, k, covariance_type):
    return jax.device_get(
        jaxgmm.fit(jax.random.key(0), X, k, covariance_type=covariance_type, init="hc").params
    )


@pytest.mark.parametrize("covariance_type", ["full", "VEV"])
def test_replicates_equal_separate_fits(covariance_type):
    """Each replicate of a batch is the fit jaxgmm.fit makes of its data from the same start:
    parametric replicates (their own rows) and nonparametric ones (row counts, equal to a fit
    of the rows repeated)."""
    Xc, _, data_var = _bootstrap._centred(FAITHFUL)
    params = fitted(Xc, 3, covariance_type)
    settings = fixed_iterations(covariance_type)
    common = dict(covariance_type=covariance_type, settings=settings, data_var=data_var)
    drawn = _bootstrap.draw(jax.random.key(1), params, covariance_type, 3, len(Xc))
    counts = _bootstrap.row_weights(jax.random.key(2), "nonparametric", 3, len(Xc), Xc.dtype)
    batches = [
        (_bootstrap.refit(params, drawn, **common), [np.asarray(x) for x in drawn]),
        (
            _bootstrap.refit(params, Xc, counts, **common),
            [np.repeat(np.asarray(Xc), np.asarray(c, int), axis=0) for c in counts],
        ),
    ]
    for fits, data in batches:
        for b, X in enumerate(data):
            alone = jaxgmm.fit(
                jax.random.key(0),
                X,
                3,
                covariance_type=covariance_type,
                init=params,
                tol=0.0,
                max_iter=settings.max_iter,
            )
            chosen = jax.device_get(alone.params)
            np.testing.assert_allclose(fits.params.means[b], chosen.means, rtol=1e-7, atol=1e-9)
            np.testing.assert_allclose(fits.params.weights[b], chosen.weights, rtol=1e-7)
            np.testing.assert_allclose(
                fits.params.covariances[b], chosen.covariances, rtol=1e-7, atol=1e-12
            )
            expected = _bootstrap._log_likelihood(chosen, X, covariance_type)
            assert fits.log_likelihood[b] == pytest.approx(expected, rel=1e-9)
        assert not fits.failed.any()


def test_replicates_ending_where_the_expanded_form_loses_digits_are_refitted_exactly():
    """Refits iterate in the expanded form (here, of a tied model), and a replicate whose final
    parameters put its predicted error (eps z^2) above the tolerance is fitted again in the
    exact form: float32 clusters 300 standard deviations from the centre, where the expanded
    form alone is off by more than 1e-3."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 3)) * 300
    X = (centres[rng.integers(0, 3, 2000)] + rng.normal(size=(2000, 3))).astype(np.float32)
    Xc, centre, data_var = _bootstrap._centred(X)
    start = jaxgmm.params_from_covariances(
        np.full(3, 1 / 3), centres - centre + 0.3, np.eye(3), covariance_type="tied"
    )
    start = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), start)
    counts = _bootstrap.row_weights(jax.random.key(3), "nonparametric", 4, len(Xc), np.float32)
    common = dict(covariance_type="tied", settings=fixed_iterations("tied", 10), data_var=data_var)
    refits = _bootstrap.refit(start, Xc, counts, **common)
    common["chunk_iterations"] = _bootstrap.CHUNK_ITERATIONS
    exact, expanded = (
        _bootstrap._refit(start, Xc, counts, form=form, **common)
        for form in (_bootstrap.Exact, _bootstrap.Expanded)
    )
    assert refits.params.covariances.dtype == np.float32
    assert relative_error(refits.params.covariances, exact.params.covariances) < 1e-6
    assert relative_error(expanded.params.covariances, exact.params.covariances) > 1e-3


def tied_replicates(n_boot: int):
    """Faithful's tied K = 4 fit, ``n_boot`` data sets drawn from its K = 3 fit, and the rest of
    :func:`_bootstrap.refit`'s arguments (the LRT's 3 vs 4 refits: some take hundreds of
    iterations, most a few dozen)."""
    Xc, _, data_var = _bootstrap._centred(FAITHFUL)
    small, large = fitted(Xc, 3, "tied"), fitted(Xc, 4, "tied")
    settings = check_settings(
        n_components=1, covariance_type="tied", n_init=1, max_iter=1000, tol=1e-5, reg_covar=1e-6
    )[3]
    drawn = _bootstrap.draw(jax.random.key(3), small, "tied", n_boot, len(Xc))
    return large, drawn, dict(covariance_type="tied", settings=settings, data_var=data_var)


def test_repacking_the_batch_changes_no_replicate(monkeypatch):
    """Replicates still running once most have stopped go on in a smaller batch: each one's
    iterations and result are those of the whole batch run in lockstep (batched, as on a GPU
    or large data; small data on the CPU takes the replicates in turn, below)."""
    monkeypatch.setattr(_bootstrap, "restarts_in_turn", lambda small: False)
    large, drawn, common = tied_replicates(64)
    sizes = []
    advance = _bootstrap._advance

    def counting(state, *args, **kwargs):
        sizes.append(state.n_iter.shape[0])
        return advance(state, *args, **kwargs)

    monkeypatch.setattr(_bootstrap, "_advance", counting)
    repacked = _bootstrap.refit(large, drawn, **common)
    assert sizes[0] == 64 and min(sizes) == _bootstrap.MIN_BATCH  # it did repack
    monkeypatch.setattr(_bootstrap, "MIN_BATCH", 1 << 20)
    lockstep = _bootstrap.refit(large, drawn, **common)
    np.testing.assert_array_equal(repacked.n_iter, lockstep.n_iter)
    np.testing.assert_array_equal(repacked.converged, lockstep.converged)
    np.testing.assert_allclose(repacked.log_likelihood, lockstep.log_likelihood, rtol=1e-10)
    np.testing.assert_allclose(repacked.params.means, lockstep.params.means, rtol=1e-9)


def test_replicates_in_turn_equal_the_batch(monkeypatch):
    """Small data on the CPU: replicates refitted one after another, each stopping on its own,
    equal those of the batch."""
    large, drawn, common = tied_replicates(32)
    in_turn = _bootstrap.refit(large, drawn, **common)
    monkeypatch.setattr(_bootstrap, "restarts_in_turn", lambda small: False)
    together = _bootstrap.refit(large, drawn, **common)
    np.testing.assert_array_equal(in_turn.n_iter, together.n_iter)
    np.testing.assert_array_equal(in_turn.converged, together.converged)
    np.testing.assert_allclose(in_turn.log_likelihood, together.log_likelihood, rtol=1e-10)
    np.testing.assert_allclose(in_turn.params.covariances, together.params.covariances, rtol=1e-8)


def test_shards_of_replicates_change_no_replicate(monkeypatch):
    """In turn, the replicates run in one shard per core, each in its own thread: every
    replicate's result is the one a single shard gives, bit for bit, padding or not (13 in
    shards of 5), with their own rows or shared rows and weights."""
    large, drawn, common = tied_replicates(13)
    Xc, _, _ = _bootstrap._centred(FAITHFUL)
    counts = _bootstrap.row_weights(jax.random.key(2), "nonparametric", 13, len(Xc), Xc.dtype)
    for args in ((drawn,), (Xc, counts)):
        fits = []
        for cores in (1, 3):
            monkeypatch.setattr(_bootstrap, "_cores", lambda cores=cores: cores)
            fits.append(_bootstrap.refit(large, *args, **common))
        one, sharded = fits
        for field in ("log_likelihood", "n_iter", "converged", "failed", "degenerate"):
            np.testing.assert_array_equal(getattr(sharded, field), getattr(one, field))
        jax.tree_util.tree_map(np.testing.assert_array_equal, sharded.params, one.params)
        assert len(sharded.n_iter) == 13


def one_gaussian(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 2)) @ np.array([[2.0, 0.0], [0.6, 0.5]]) + [10.0, -3.0]


def test_shards_run_in_the_callers_64_bit_mode(monkeypatch):
    """float64 data outside JAX's 64-bit mode: the call turns the mode on for itself, and for
    its shards' threads too (JAX's mode is a thread's own)."""
    model = jaxgmm.GaussianMixture(2, covariance_type="EEE", random_state=0).fit(FAITHFUL)
    means = []
    jax.config.update("jax_enable_x64", False)  # the mode of every thread (the fixture's on)
    try:
        for cores in (1, 2):
            monkeypatch.setattr(_bootstrap, "_cores", lambda cores=cores: cores)
            means.append(jaxgmm.bootstrap(model, FAITHFUL, n_boot=6, random_state=0).means)
    finally:
        jax.config.update("jax_enable_x64", True)
    np.testing.assert_array_equal(*means)


def row(tree, i):
    return jax.tree_util.tree_map(lambda a: np.asarray(a)[i], tree)


@pytest.mark.parametrize("covariance_type", ["full", "tied", "spherical"])
def test_a_split_start_halves_one_component_along_its_principal_axis(covariance_type):
    Xc, _, _ = _bootstrap._centred(FAITHFUL)
    fits = jax.tree_util.tree_map(
        lambda *a: np.stack(a),
        *(fitted(Xc, 2, covariance_type), fitted(Xc[::2], 2, covariance_type)),
    )
    starts = jax.device_get(_bootstrap.split_starts(fits, covariance_type))
    unit = covariance_unit(covariance_type)
    assert starts.means.shape == (4, 3, 2)  # 2 fits x 2 components, of 3 components
    for b in range(2):
        dense = unit.dense(fits.covariances[b], 2, 2)
        for j in range(2):
            start = row(starts, 2 * b + j)
            values, vectors = np.linalg.eigh(dense[j])
            step = 0.5 * np.sqrt(values[-1]) * vectors[:, -1]
            np.testing.assert_allclose(start.weights.sum(), 1.0)
            np.testing.assert_allclose(start.weights[[j, 2]], fits.weights[b, j] / 2)
            np.testing.assert_allclose(start.means[j] - fits.means[b, j], step, atol=1e-12)
            np.testing.assert_allclose(start.means[2] - fits.means[b, j], -step, atol=1e-12)
            other = 1 - j
            np.testing.assert_allclose(start.means[other], fits.means[b, other])
            start_dense = unit.dense(start.covariances, 3, 2)
            np.testing.assert_allclose(start_dense[[j, 2]], dense[[j, j]], atol=1e-12)
            np.testing.assert_allclose(start_dense[other], dense[other], atol=1e-12)
            # the factor matches the covariances
            expected = jaxgmm.params_from_covariances(
                start.weights, start.means, start.covariances, covariance_type=covariance_type
            )
            np.testing.assert_allclose(
                start.precisions_cholesky, expected.precisions_cholesky, rtol=1e-10
            )


def test_a_replicates_larger_fit_is_the_best_of_its_starts(monkeypatch):
    """A replicate's fit of K + 1 components is the best of separate fits from the observed
    K + 1 fit and from each split of the replicate's own K fit (tied, 2 against 3)."""
    calls = []
    refit = _bootstrap.refit

    def recording(params, data, *args, **kwargs):
        result = refit(params, data, *args, **kwargs)
        calls.append((params, np.asarray(data), kwargs["settings"], result))
        return result

    monkeypatch.setattr(_bootstrap, "refit", recording)
    n_boot, k = 2, 2
    lrt = jaxgmm.bootstrap_lrt(
        FAITHFUL, covariance_type="tied", max_components=k, n_boot=n_boot, tol=1e-8, random_state=0
    )
    (_, data, _, nulls), (starts, replicates, settings, _) = calls[2:]
    n_starts = 1 + k
    assert replicates.shape[0] == n_boot * n_starts  # each replicate's data, once per start
    for b in range(n_boot):
        first = n_starts * b
        # the observed fit first (the same for every replicate), then its own null's splits
        np.testing.assert_array_equal(row(starts, first).means, row(starts, 0).means)
        splits = _bootstrap.split_starts(row(nulls.params, slice(b, b + 1)), "tied")
        np.testing.assert_array_equal(
            row(starts, slice(first + 1, first + n_starts)).means, splits.means
        )
        lls = []
        for s in range(n_starts):
            np.testing.assert_array_equal(replicates[first + s], data[b])
            alone = jaxgmm.fit(
                jax.random.key(0),
                data[b],
                k + 1,
                covariance_type="tied",
                init=row(starts, first + s),
                tol=float(settings.tol),
                max_iter=1000,
            )
            lls.append(_bootstrap._log_likelihood(jax.device_get(alone.params), data[b], "tied"))
        expected = 2 * (max(max(lls), nulls.log_likelihood[b]) - nulls.log_likelihood[b])
        assert lrt.boot[b, 1] == pytest.approx(expected, abs=1e-4)


def test_drawn_rows_follow_the_model():
    """Parametric replicates: each component's share of the rows is its weight, its rows have
    its mean and covariance (three components, run padded to four: the padding never drawn)."""
    weights = np.array([0.5, 0.3, 0.2])
    means = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    covariances = np.array([[[1.0, 0.5], [0.5, 2.0]], np.eye(2), [[0.5, 0.0], [0.0, 3.0]]])
    params = jaxgmm.params_from_covariances(weights, means, covariances, covariance_type="full")
    rows = np.asarray(_bootstrap.draw(jax.random.key(5), params, "full", 8, 5000))
    assert rows.shape == (8, 5000, 2)
    rows = rows.reshape(-1, 2)
    nearest = np.argmin(((rows[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    np.testing.assert_allclose(np.bincount(nearest) / len(rows), weights, atol=0.01)
    for j in range(3):
        own = rows[nearest == j]
        np.testing.assert_allclose(own.mean(axis=0), means[j], atol=0.05)
        np.testing.assert_allclose(np.cov(own.T), covariances[j], atol=0.1)


@pytest.mark.parametrize("method", ["nonparametric", "weighted", "parametric"])
def test_standard_errors_of_a_single_gaussians_mean_are_sigma_over_root_n(method):
    X = one_gaussian()
    model = jaxgmm.GaussianMixture(1, random_state=0).fit(X)
    result = jaxgmm.bootstrap(model, X, n_boot=400, method=method, random_state=1)
    expected = X.std(axis=0) / np.sqrt(len(X))
    # a standard deviation from 400 replicates is within about 3.5% of its own: 12% is 3.4 of it
    np.testing.assert_allclose(result.standard_errors()["means"][0], expected, rtol=0.12)
    assert result.n_failed == 0 and result.n_boot == 400
    lower, upper = result.intervals(0.95)["means"]
    assert np.all(lower[0] < model.means_[0]) and np.all(model.means_[0] < upper[0])
    # the weight of the only component is 1 in every replicate
    np.testing.assert_allclose(result.weights, 1.0)


def mclust_standard_errors():
    with open(DATA / "bootstrap_se.csv") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("method,mclust_type", [("nonparametric", "bs"), ("weighted", "wlbs")])
def test_standard_errors_agree_with_mclusts(method, mclust_type):
    """faithful, EEE, G = 3: mclust's standard errors from 999 replicates and ours from 499,
    within their Monte-Carlo error (the weights' distributions have long tails)."""
    rows = [r for r in mclust_standard_errors() if r["type"] == mclust_type]
    model = jaxgmm.GaussianMixture(3, covariance_type="EEE", init_params="hc", reg_covar=0.0)
    model.fit(FAITHFUL)
    order = np.argsort(model.means_[:, 1])  # mclust's components by their order in waiting
    theirs = sorted(rows, key=lambda r: float(r["mean_2"]))
    result = jaxgmm.bootstrap(model, FAITHFUL, n_boot=499, method=method, random_state=0)
    se = result.standard_errors()
    for ours, r in zip(order, theirs, strict=True):
        assert model.weights_[ours] == pytest.approx(float(r["weight"]), rel=0.03)
        assert se["weights"][ours] == pytest.approx(float(r["se_weight"]), rel=0.25)
        assert se["means"][ours, 0] == pytest.approx(float(r["se_mean_1"]), rel=0.25)
        assert se["means"][ours, 1] == pytest.approx(float(r["se_mean_2"]), rel=0.25)


def mclust_lrt(name):
    with open(DATA / "bootstrap_lrt.csv") as f:
        return [r for r in csv.DictReader(f) if r["data"] == name]


def test_likelihood_ratio_statistics_equal_mclusts():
    """faithful, EEE: mclust's observed statistics for 1 against 2 and 2 against 3 components
    (its fits reach the optimum there); both tests significant, as in mclust."""
    rows = mclust_lrt("faithful")
    result = jaxgmm.bootstrap_lrt(
        FAITHFUL, covariance_type="EEE", max_components=2, n_boot=19, random_state=0
    )
    assert list(result.components) == [1, 2]
    for statistic, row in zip(result.statistic, rows[:2], strict=True):
        assert statistic == pytest.approx(float(row["obs"]), rel=1e-3)
    # 19 replicates: the smallest p-value is 1/20, and mclust's are 0.001 with 999
    np.testing.assert_allclose(result.p_values, 0.05)
    assert result.n_components == 3 and result.boot.shape == (19, 2)
    assert np.all(result.boot >= 0) and not result.n_failed.any()
    text = str(result)
    assert "2 vs 3" in text and "chosen: 3 components" in text


def test_likelihood_ratio_statistics_of_iris_equal_mclusts_where_its_fits_reach_the_optimum():
    """iris, VEV: mclust's observed statistics for 1 against 2 and 2 against 3 components; for
    3 against 4 ours is larger, because our 4-component fit (the best of the hc start and
    k-means restarts) ends higher than mclust's from its hc start alone, the 3-component fits
    being equal."""
    rows = mclust_lrt("iris")
    result = jaxgmm.bootstrap_lrt(
        IRIS, covariance_type="VEV", max_components=3, n_boot=19, random_state=0
    )
    assert list(result.components) == [1, 2, 3]
    for statistic, row in zip(result.statistic[:2], rows[:2], strict=True):
        assert statistic == pytest.approx(float(row["obs"]), rel=1e-3)
    assert result.statistic[2] > float(rows[2]["obs"]) + 1
    np.testing.assert_allclose(result.p_values[:2], 0.05)  # mclust's: 0.001 of 999
    assert not result.n_failed.any()


def test_the_statistic_is_never_negative_and_the_test_stops_when_not_significant():
    """faithful, EEE, 3 against 4: mclust's statistic is -0.09 (its 4-component fit ends below
    the 3-component one); the nested fit bounds ours below by 0, and the sequential test stops
    at the first test that is not significant."""
    assert float(mclust_lrt("faithful")[2]["obs"]) < 0
    result = jaxgmm.bootstrap_lrt(FAITHFUL, covariance_type="EEE", n_boot=19, random_state=0)
    assert result.statistic[-1] >= 0 and np.all(result.boot[~np.isnan(result.boot)] >= 0)
    assert result.p_values[-1] > 0.05 and np.all(result.p_values[:-1] <= 0.05)
    assert result.n_components == result.components[-1] == 3


def test_p_values_under_the_null_are_not_too_small():
    """Data drawn from one Gaussian: testing 1 against 2 components at level 0.1 rejects about
    a tenth of the time; of 20 data sets, 7 or more rejections would happen with probability
    0.002 for a calibrated test."""
    rejections = 0
    for seed in range(20):
        X = np.random.default_rng(seed).standard_normal((60, 1))
        result = jaxgmm.bootstrap_lrt(
            X,
            covariance_type="spherical",
            max_components=1,
            n_boot=39,
            level=0.1,
            random_state=seed,
        )
        rejections += result.p_values[0] <= 0.1
    assert rejections <= 6


def test_bad_input_is_named():
    model = jaxgmm.GaussianMixture(2, random_state=0)
    with pytest.raises(ValueError, match="fitted"):
        jaxgmm.bootstrap(model, FAITHFUL)
    model.fit(FAITHFUL)
    with pytest.raises(ValueError, match="method"):
        jaxgmm.bootstrap(model, FAITHFUL, method="jackknife")
    with pytest.raises(ValueError, match="features"):
        jaxgmm.bootstrap(model, FAITHFUL[:, :1])
    with pytest.raises(ValueError, match="level"):
        jaxgmm.bootstrap_lrt(FAITHFUL, level=1.5)


def test_figures_have_a_panel_per_test_and_per_parameter():
    from jaxgmm import plot

    lrt = _bootstrap.BootstrapLRTResult(
        covariance_type="full",
        level=0.05,
        components=np.array([1, 2]),
        statistic=np.array([30.0, 0.5]),
        boot=np.array([[1.0, 0.2], [np.nan, 2.0], [3.0, 0.0]]),
        p_values=np.array([0.25, 0.75]),
        n_failed=np.array([1, 0]),
        log_likelihoods=np.zeros((2, 2)),
        n_components=1,
    )
    fig = plot.bootstrap_lrt(lrt)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["1 vs 2: p = 0.25, 1 failed", "2 vs 3: p = 0.75"]
    X = one_gaussian(100)
    model = jaxgmm.GaussianMixture(2, covariance_type="tied", random_state=0).fit(X)
    result = jaxgmm.bootstrap(model, X, n_boot=20, random_state=0)
    panels = {"weights": 2, "means": 4, "covariances": 3}  # a tied matrix's lower triangle
    for what, count in panels.items():
        fig = plot.bootstrap(result, what=what)
        assert sum(ax.get_visible() for ax in fig.axes) == count, what
    with pytest.raises(ValueError, match="what"):
        plot.bootstrap(result, what="precisions")


def test_progress_bars_count_replicates(capsys):
    model = jaxgmm.GaussianMixture(2, covariance_type="tied", random_state=0).fit(FAITHFUL)
    jaxgmm.bootstrap(model, FAITHFUL, n_boot=8, progress=True, random_state=0)
    err = capsys.readouterr().err
    assert "8 nonparametric replicates [" in err and "/8 replicates running" in err
    assert err.endswith(" s)\n") and "lower bound" not in err
    jaxgmm.bootstrap_lrt(FAITHFUL, covariance_type="tied", max_components=1, n_boot=4)
    assert capsys.readouterr().err == ""  # no bar unless asked for
