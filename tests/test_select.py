"""Model selection: the padded K-grid equals separate fits, and the criteria are right."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from helpers import COVARIANCE_TYPES, assert_close, blobs

import jaxgmm
from jaxgmm import GaussianMixture

X = blobs(n_per=40)
KS = [1, 2, 3, 4]
# Every closed-form model, and two of the five with an inner loop (one per family): the grid
# runs them in its one program, and each separate fit of one compiles programs of its own
# (25 s more for all five).
TYPES = tuple(t for t in COVARIANCE_TYPES if t not in ("VEE", "VVE", "VEV"))


@pytest.fixture(scope="module")
def grid():
    return jaxgmm.select(X, KS, TYPES, n_init=2, random_state=0)


def assert_rows_equal_separate_fits(grid):
    """Each row of ``grid`` (selected with ``n_init=2, random_state=0``) is the fit of its
    model alone: the same iterations and criteria."""
    for row in grid.rows:
        alone = GaussianMixture(
            row["n_components"], covariance_type=row["covariance_type"], n_init=2, random_state=0
        ).fit(X)
        assert row["n_iter"] == alone.n_iter_
        assert row["bic"] == pytest.approx(alone.bic(X), rel=1e-10)
        assert row["aic"] == pytest.approx(alone.aic(X), rel=1e-10)
        assert row["icl"] == pytest.approx(alone.icl(X), rel=1e-10)


def test_every_row_equals_a_separate_fit(grid):
    assert [(r["covariance_type"], r["n_components"]) for r in grid.rows] == [
        (t, k) for t in TYPES for k in KS
    ]
    assert_rows_equal_separate_fits(grid)


def test_rows_across_buckets_of_k_equal_separate_fits():
    """K = 1, 2 and 5 run padded to 8 components in one program; in turn, the restarts of
    K = 1 and 2 make their passes over 4 components only, as their separate fits do."""
    assert_rows_equal_separate_fits(
        jaxgmm.select(X, [1, 2, 5], ("full", "diag"), n_init=2, random_state=0)
    )


def test_best_model_is_fitted_and_equals_its_separate_fit(grid):
    best = grid.best
    row = grid.best_row
    assert row["bic"] == min(r["bic"] for r in grid.rows if not r["degenerate"])
    assert (row["covariance_type"], row["n_components"]) == (
        best.covariance_type,
        best.n_components,
    )
    alone = GaussianMixture(
        best.n_components, covariance_type=best.covariance_type, n_init=2, random_state=0
    ).fit(X)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_"):
        assert_close(getattr(best, name), getattr(alone, name), 1e-10, name)
    np.testing.assert_array_equal(best.predict(X), alone.predict(X))
    assert row["n_components"] == 3  # three well separated clusters


def test_criteria_follow_their_formulas(grid):
    n = X.shape[0]
    for row in grid.rows:
        p = jaxgmm.n_parameters(row["covariance_type"], row["n_components"], X.shape[1])
        assert row["n_parameters"] == p
        assert row["bic"] == pytest.approx(-2 * row["log_likelihood"] + p * math.log(n))
        assert row["aic"] == pytest.approx(-2 * row["log_likelihood"] + 2 * p)
        assert row["icl"] >= row["bic"] - 1e-9  # the entropy is never negative
        if row["n_components"] == 1:
            assert row["icl"] == pytest.approx(row["bic"])  # one component: no entropy


def test_parameter_counts_as_documented():
    d, k = 5, 3
    assert jaxgmm.n_parameters("full", k, d) == (k - 1) + k * d + k * d * (d + 1) // 2
    assert jaxgmm.n_parameters("tied", k, d) == (k - 1) + k * d + d * (d + 1) // 2
    assert jaxgmm.n_parameters("diag", k, d) == (k - 1) + 2 * k * d
    assert jaxgmm.n_parameters("spherical", k, d) == (k - 1) + k * d + k


def test_programs_of_a_grid(monkeypatch):
    """Small data: the whole grid, every covariance model and K, in one program (dense
    covariances, K padded to a power of two). Larger data: one program per covariance model,
    its K-grid padded to the largest K, all starting from k-means centres computed once, the
    same as each model's program computes alone."""
    from jaxgmm import _engine, _fit

    calls = []
    original = _fit.run_restarts

    def counting(*args, **kwargs):
        calls.append((kwargs["unit"].name, kwargs["n_components"], kwargs["n_init"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(_fit, "run_restarts", counting)
    jaxgmm.select(X, [1, 2, 3], ("diag", "full"), n_init=2, random_state=0)
    assert calls == [("any", 4, 12)]
    calls.clear()
    # the models with an inner loop join it where the restarts run in turn (on the CPU; the
    # rows equal separate fits: test_every_row_equals_a_separate_fit), or else have their own
    jaxgmm.select(X, [1, 2, 3], ("diag", "VEI", "EVE"), n_init=2, random_state=0)
    in_turn = jax.default_backend() == "cpu"
    assert calls == ([("any", 4, 18)] if in_turn else [("any", 4, 6), ("VEI", 4, 6), ("EVE", 4, 6)])
    calls.clear()
    kmeans_starts = []  # whether each start's statistics hold dense scatters
    kmeans_start = _engine.kmeans_start
    monkeypatch.setattr(
        _engine,
        "kmeans_start",
        lambda *a, **k: kmeans_starts.append(k["dense"]) or kmeans_start(*a, **k),
    )
    rng = np.random.default_rng(0)  # 3 x 100 x 24^2 > SMALL_WORK
    wide = np.concatenate([rng.normal(size=(100, 24)) + 3 * i for i in range(3)])
    types = ("diag", "spherical")
    decisions = []
    restarts_in_turn = _fit.restarts_in_turn

    def deciding(*args, **kwargs):
        decisions.append(restarts_in_turn(*args, **kwargs))
        return decisions[-1]

    monkeypatch.setattr(_fit, "restarts_in_turn", deciding)
    grid = jaxgmm.select(wide, [1, 2, 3], types, n_init=2, max_iter=4, random_state=0)
    assert calls == [("diag", 3, 6), ("spherical", 3, 6)]
    # a grid of several K takes its restarts in turn on the CPU, not being small
    assert decisions == [jax.default_backend() == "cpu"] * 2
    decisions.clear()
    GaussianMixture(2, covariance_type="diag", n_init=2, max_iter=4).fit(wide)
    assert decisions == [False]  # one K, not small: batched
    assert kmeans_starts == [False]  # diagonal models: the scatters' diagonals
    assert_rows_equal_own_selections(grid, wide, max_iter=4)
    assert len(kmeans_starts) == 1  # one program alone computes its start itself


def assert_rows_equal_own_selections(grid, X, **kwargs):
    """Each type's rows of ``grid`` (``select(X, [1, 2, 3], types, n_init=2, random_state=0,
    **kwargs)``) equal the selection of that type alone, which computes its start itself."""
    for t in dict.fromkeys(r["covariance_type"] for r in grid.rows):
        alone = jaxgmm.select(X, [1, 2, 3], t, n_init=2, random_state=0, **kwargs)
        rows = [r for r in grid.rows if r["covariance_type"] == t]
        for row, own in zip(rows, alone.rows, strict=True):
            assert row["n_iter"] == own["n_iter"]
            assert row["log_likelihood"] == pytest.approx(own["log_likelihood"], rel=1e-12)


def test_a_grid_shares_its_kmeans_start_up_to_the_m_step(monkeypatch):
    """Larger data: the "kmeans" centres and their hard-label statistics are computed once for
    the grid, the scatter as matrices where some model reads more than its diagonal, and each
    model's start is its M-step from them (tied sums them, spherical takes their diagonals,
    mclust's EEV its own M-step): every row equals the model's own selection (the diagonal
    scatters: test_programs_of_a_grid)."""
    from jaxgmm import _engine

    starts = []
    kmeans_start = _engine.kmeans_start
    monkeypatch.setattr(
        _engine, "kmeans_start", lambda *a, **k: starts.append(k["dense"]) or kmeans_start(*a, **k)
    )
    rng = np.random.default_rng(1)  # 3 x 100 x 24^2 > SMALL_WORK
    scales = rng.uniform(0.5, 2.0, size=(3, 1, 24))
    wide = np.concatenate([rng.normal(size=(100, 24)) * scales[i] + 3 * i for i in range(3)])
    types = ("tied", "spherical", "EEV")
    grid = jaxgmm.select(wide, [1, 2, 3], types, n_init=2, max_iter=6, random_state=0)
    assert starts == [True]
    assert_rows_equal_own_selections(grid, wide, max_iter=6)
    assert len(starts) == 1


def test_a_grid_cuts_the_hierarchical_tree_once(monkeypatch):
    """mclust's hc start does not depend on the covariance model: a grid of several programs
    (with mclust's prior, a program per model) builds its tree once, and each model's row
    equals its own selection."""
    from jaxgmm import _fit

    cuts = []
    hc_partitions = _fit.hc_partitions
    monkeypatch.setattr(
        _fit, "hc_partitions", lambda *a, **k: cuts.append(1) or hc_partitions(*a, **k)
    )
    X = blobs(seed=3)
    kwargs = dict(init_params="hc", max_iter=20, prior="default")
    grid = jaxgmm.select(X, [1, 2, 3], ("full", "VEI", "EEV"), **kwargs)
    assert len(cuts) == 1
    for t in ("full", "VEI"):
        alone = jaxgmm.select(X, [1, 2, 3], t, **kwargs)
        rows = [r for r in grid.rows if r["covariance_type"] == t]
        for row, own in zip(rows, alone.rows, strict=True):
            assert row["log_likelihood"] == pytest.approx(own["log_likelihood"], rel=1e-9)


def test_table_as_records_dataframe_and_text(grid):
    pd = pytest.importorskip("pandas")
    frame = grid.to_dataframe()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(jaxgmm.SelectionResult.COLUMNS)
    assert len(frame) == len(KS) * len(TYPES)
    assert "<- best" in str(grid)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(criterion="dic"), "criterion must be one of"),
        (dict(n_components=[]), "n_components is empty"),
        (dict(covariance_types=["round"]), "covariance_type must be one of"),
        (dict(n_components=[2, 500]), r"n_components=500 is larger than the number of samples"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        jaxgmm.select(X, **({"n_components": [1, 2]} | kwargs))


def test_a_best_k_at_the_edge_of_the_grid_warns():
    with pytest.warns(UserWarning, match=r"K=2, the largest K of the grid.*try K in 1\.\.4"):
        jaxgmm.select(X, [1, 2], ("full",), n_init=1, random_state=0)


# --- the best models, as mclust's summary(mclustBIC(X)) lists them ------------------------


def _ranked_by(grid, criterion, rows=None, **kwargs):
    """The grid's table ranked by another criterion (every row has every criterion), its best
    row chosen as select chooses it: no new fits."""
    rows = grid.rows if rows is None else rows
    usable = [r for r in rows if math.isfinite(r[criterion]) and not r["degenerate"]]
    best = min(usable, key=lambda r: r[criterion])
    return jaxgmm.SelectionResult(rows, criterion, grid.models, best, **kwargs)


@pytest.mark.parametrize("criterion", ["bic", "aic", "icl"])
def test_top_lists_the_best_models_and_their_distance(grid, criterion):
    result = grid if criterion == "bic" else _ranked_by(grid, criterion)
    top = result.top(3)
    values = [t["value"] for t in top]
    assert values == sorted(r[criterion] for r in grid.rows)[:3]
    first = result.best_row
    assert top[0] == {
        "covariance_type": first["covariance_type"],
        "n_components": first["n_components"],
        "value": first[criterion],
        "difference": 0.0,
    }
    assert [t["difference"] for t in top] == pytest.approx([v - values[0] for v in values])
    text = str(result)
    assert f"top 3 by {criterion.upper()} (lower is better):" in text
    for t in top:
        assert f"{t['covariance_type']}, K={t['n_components']}" in text
    assert f"+{top[1]['difference']:.3f}" in text


def test_top_skips_failed_and_degenerate_rows_and_stops_at_the_table(grid):
    rows = [dict(r) for r in grid.rows[:4]]  # full, K=1..4: K=3 best, then 4, 2, 1
    rows[3].update(bic=math.nan, failed=True)  # K=4 failed
    rows[1]["bic"] = math.inf
    result = _ranked_by(grid, "bic", rows)
    assert [t["n_components"] for t in result.top(10)] == [3, 1]
    assert "top 2 by BIC" in str(result)
    rows[2]["degenerate"] = True  # the best by BIC, passed over as select passes it over
    assert [t["n_components"] for t in _ranked_by(grid, "bic", rows).top()] == [1]
    everything = jaxgmm.SelectionResult(
        rows, "bic", grid.models, rows[2], prefer_nondegenerate=False
    )
    assert [t["n_components"] for t in everything.top()] == [3, 1]
    with pytest.raises(ValueError, match="n must be >= 1"):
        grid.top(0)
