"""Plots: each returns a Figure with the artists it promises, in 1, 2 and more dimensions.

Most models here are made by hand (attributes set from known parameters) rather than fitted, so
that every covariance type and dimension costs a compiled E-step, not a compiled fit; one real fit
of the lesson covers the restarts and the estimator's own attributes.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import warnings
from types import SimpleNamespace

import jax
import numpy as np
import pytest
from helpers import ENGINE_TYPES
from matplotlib.collections import PathCollection
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

import jaxgmm
from jaxgmm import plot, reference
from jaxgmm._covariance import covariance_unit

PROJECTED = "projection onto the first two principal axes"


# -- models ------------------------------------------------------------------------------


def _random_covariances(rng, k: int, d: int) -> np.ndarray:
    a = rng.normal(size=(k, d, d)) * 0.6
    return a @ np.swapaxes(a, 1, 2) + 0.4 * np.eye(d)


def handmade(covariance_type: str, k: int, d: int, seed: int = 0) -> jaxgmm.GaussianMixture:
    """A "fitted" float64 model from known parameters, shaped as ``covariance_type`` stores
    them, with well separated means."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(0.5, 1.5, k)
    weights /= weights.sum()
    means = rng.normal(size=(k, d)) * 4.0
    full = _random_covariances(rng, k, d)
    # the model's M-step from these covariances as the scatters: its own kind of covariance
    nk = np.ones(k)
    cov = reference.MODELS[covariance_type].from_scatters(full, nk, 0.0)
    with jax.enable_x64(True):
        factor = np.asarray(
            jaxgmm.params_from_covariances(
                weights, means, cov, covariance_type=covariance_type
            ).precisions_cholesky
        )
    model = jaxgmm.GaussianMixture(k, covariance_type=covariance_type, random_state=seed)
    model.weights_ = weights
    model.means_ = means
    model.covariances_ = cov
    model.precisions_cholesky_ = factor
    model.n_features_in_ = d
    return model


def sample(model, n: int = 240) -> np.ndarray:
    return model.sample(n)[0]


@pytest.fixture(scope="module")
def lesson():
    X = jaxgmm.lesson_data().astype(np.float32)
    return jaxgmm.GaussianMixture(2, n_init=4, random_state=0).fit(X), X


@pytest.fixture(scope="module")
def three_d():
    model = handmade("full", 3, 3, seed=1)
    return model, sample(model)


@pytest.fixture(scope="module")
def one_d():
    model = handmade("full", 2, 1, seed=2)
    return model, sample(model)


def main_axes(fig: Figure):
    return fig.axes[0]


def points_of(ax) -> PathCollection:
    return next(c for c in ax.collections if isinstance(c, PathCollection))


def ellipses_of(ax) -> list[Ellipse]:
    return [p for p in ax.patches if isinstance(p, Ellipse)]


# -- geometry ----------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_full_covariances_expand_every_type(covariance_type):
    model = handmade(covariance_type, 3, 2)
    full = plot.full_covariances(model)
    assert full.shape == (3, 2, 2)
    expected = reference.full_covariances(model.covariances_, covariance_type, 3, 2)
    np.testing.assert_array_equal(full, expected)


@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_mixture_log_density_equals_score_samples(covariance_type):
    model = handmade(covariance_type, 3, 2)
    points = np.random.default_rng(5).normal(size=(50, 2)) * 5
    ours = plot.mixture_log_density(
        points, model.weights_, model.means_, plot.full_covariances(model)
    )
    np.testing.assert_allclose(ours, model.score_samples(points), rtol=1e-9, atol=1e-9)


def test_projection_equals_direct_computation(three_d):
    model, X = three_d
    proj = plot.project(model, X)
    centre = X.mean(axis=0)
    _, singular, vt = np.linalg.svd(X - centre, full_matrices=False)
    basis = vt[:2].T
    basis *= np.sign(np.sum(basis * proj.basis, axis=0))  # an SVD's signs are arbitrary
    np.testing.assert_allclose(proj.basis, basis, atol=1e-12)
    np.testing.assert_allclose(proj.basis.T @ proj.basis, np.eye(2), atol=1e-12)
    np.testing.assert_allclose(proj.origin, centre)
    np.testing.assert_allclose(proj.points, (X - centre) @ basis, atol=1e-10)
    np.testing.assert_allclose(proj.means, (model.means_ - centre) @ basis, atol=1e-10)
    for j in range(3):
        np.testing.assert_allclose(
            proj.covariances[j], basis.T @ model.covariances_[j] @ basis, atol=1e-10
        )
    np.testing.assert_allclose(proj.explained, singular[:2] ** 2 / np.sum(singular**2))
    assert proj.labels[0] == f"principal axis 1 ({100 * proj.explained[0]:.0f}% of variance)"


def test_two_features_are_not_projected():
    model = handmade("full", 2, 2)
    X = sample(model)
    proj = plot.project(model, X)
    assert not proj.projected
    np.testing.assert_array_equal(proj.points, X)
    assert proj.labels == ("x1", "x2")


def _plane_grid(proj, half_width: float, n: int):
    lo = proj.means.min(axis=0) - half_width
    hi = proj.means.max(axis=0) + half_width
    gx, gy = np.linspace(lo[0], hi[0], n), np.linspace(lo[1], hi[1], n)
    mx, my = np.meshgrid(gx, gy)
    return np.column_stack([mx.ravel(), my.ravel()]), (gx[1] - gx[0]) * (gy[1] - gy[0])


def test_marginal_density_on_the_plane_integrates_to_one(three_d):
    model, X = three_d
    proj = plot.project(model, X)
    largest_sd = math.sqrt(np.linalg.eigvalsh(proj.covariances).max())
    grid, cell = _plane_grid(proj, 9 * largest_sd, 400)
    density = np.exp(plot.mixture_log_density(grid, proj.weights, proj.means, proj.covariances))
    assert density.sum() * cell == pytest.approx(1.0, abs=1e-3)


def test_marginal_density_is_the_integral_over_the_hidden_axis(three_d):
    # The exact marginal at a point of the plane: the mixture's density integrated along the
    # third principal axis, through the plane's point (score_samples in 3-D, quadrature in t).
    model, X = three_d
    proj = plot.project(model, X)
    hidden = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)[2][2]
    t = np.linspace(-40, 40, 4001)
    plane_points = proj.means + np.array([[0.5, -0.3]])
    for p in plane_points:
        line = proj.origin + proj.basis @ p + t[:, None] * hidden
        integral = np.trapezoid(np.exp(model.score_samples(line)), t)
        ours = np.exp(
            plot.mixture_log_density(p[None], proj.weights, proj.means, proj.covariances)[0]
        )
        assert ours == pytest.approx(integral, rel=1e-6)


# -- 1. responsibilities -----------------------------------------------------------------


def test_responsibilities_two_components(lesson):
    model, X = lesson
    fig = plot.responsibilities(model, X)
    assert isinstance(fig, Figure)
    ax = main_axes(fig)
    assert len(fig.axes) == 2  # the axes and its colorbar
    assert fig.axes[1].get_ylabel() == "P(component 0 | x)"
    points = points_of(ax)
    np.testing.assert_allclose(points.get_offsets(), X, rtol=1e-6)
    np.testing.assert_allclose(points.get_array(), model.predict_proba(X)[:, 0], atol=1e-6)
    means = [c for c in ax.collections if isinstance(c, PathCollection)][1:]
    np.testing.assert_allclose(
        np.concatenate([m.get_offsets() for m in means]), model.means_, rtol=1e-6
    )
    assert ax.get_xlabel() == "x1" and ax.get_ylabel() == "x2"
    assert ax.get_aspect() == 1.0


def test_responsibilities_blend_colours_for_more_components(three_d):
    model, X = three_d
    fig = plot.responsibilities(model, X)
    ax = main_axes(fig)
    assert len(fig.axes) == 1  # colours are categories: a legend, no colorbar
    assert PROJECTED in ax.get_title()
    assert ax.get_xlabel().startswith("principal axis 1 (")
    proj = plot.project(model, X)
    points = points_of(ax)
    np.testing.assert_allclose(points.get_offsets(), proj.points, atol=1e-10)
    colors = plot.component_colors(3)[:, :3]
    expected = np.clip(model.predict_proba(X) @ colors, 0, 1)
    np.testing.assert_allclose(points.get_facecolors()[:, :3], expected, atol=1e-6)
    assert len(fig.legends[0].get_texts()) == 3


def test_responsibilities_one_feature(one_d):
    model, X = one_d
    fig = plot.responsibilities(model, X)
    ax = main_axes(fig)
    curves = ax.get_lines()[:2]
    total = curves[0].get_ydata() + curves[1].get_ydata()
    np.testing.assert_allclose(total, 1.0, atol=1e-9)  # P(1 | x) + P(2 | x) on the grid
    np.testing.assert_allclose(points_of(ax).get_offsets()[:, 0], X[:, 0])


# -- 2. lower-bound trace ----------------------------------------------------------------


def test_lower_bound_trace_has_one_line_per_restart(lesson):
    model, _ = lesson
    fig = plot.lower_bound_trace(model)
    ax = main_axes(fig)
    lines = ax.get_lines()
    assert len(lines) == 4 == len(model.restarts_.n_iter)
    chosen = max(lines, key=lambda line: line.get_linewidth())
    np.testing.assert_allclose(chosen.get_ydata(), model.lower_bounds_)
    np.testing.assert_array_equal(chosen.get_xdata(), np.arange(1, model.n_iter_ + 1))
    assert ax.get_xlabel() == "EM iteration"
    assert ax.get_ylabel() == "lower bound (mean log-likelihood per sample)"


def test_lower_bound_trace_marks_failed_and_degenerate_restarts(lesson):
    model = copy.copy(lesson[0])
    outcome = model.restarts_
    chosen = model.best_restart_
    other = (chosen + 1) % 4
    traces = np.asarray(outcome.lower_bounds, np.float64).copy()
    traces[other, 1:] = np.nan  # it failed after one iteration
    failed = np.zeros(4, bool)
    failed[other] = True
    degenerate = np.zeros(4, bool)
    degenerate[(chosen + 2) % 4] = True
    model.restarts_ = outcome._replace(lower_bounds=traces, failed=failed, degenerate=degenerate)
    ax = main_axes(plot.lower_bound_trace(model))
    lines = ax.get_lines()
    assert len(lines) == 4 + 2  # a cross at the failure, a ring at the degenerate end
    assert [line.get_marker() for line in lines].count("x") == 1
    assert sum(line.get_linestyle() == "--" for line in lines) == 1
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert "failed restart" in texts and "degenerate (collapsed component)" in texts
    assert "1 failed" in ax.get_title()


def test_lower_bound_trace_without_iterations(lesson):
    model = copy.copy(lesson[0])  # as after max_iter=0: empty traces
    model.restarts_ = model.restarts_._replace(lower_bounds=np.zeros((4, 0)))
    model.lower_bounds_ = np.zeros(0)
    ax = main_axes(plot.lower_bound_trace(model))
    assert ax.get_lines() == [] and ax.texts[0].get_text() == "no EM iteration was run"


# -- 3. ellipses -------------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_ellipses_three_per_component(covariance_type):
    model = handmade(covariance_type, 3, 2, seed=3)
    X = sample(model)
    fig = plot.ellipses(model, X)
    ax = main_axes(fig)
    patches = ellipses_of(ax)
    assert len(patches) == 3 * 3
    full = plot.full_covariances(model)
    for j in range(3):
        values = np.linalg.eigvalsh(full[j])
        for n, patch in zip(plot.SIGMAS, patches[3 * j : 3 * j + 3], strict=True):
            np.testing.assert_allclose(patch.center, model.means_[j])
            assert patch.width == pytest.approx(2 * n * math.sqrt(values[1]))
            assert patch.height == pytest.approx(2 * n * math.sqrt(values[0]))
        angle = patches[3 * j].angle
        if np.count_nonzero(full[j] - np.diag(np.diag(full[j]))) == 0:
            assert min(abs(angle % 90), 90 - abs(angle % 90)) < 1e-9  # axis-aligned
    if covariance_unit(covariance_type).shared:
        shapes = {(round(p.width, 9), round(p.height, 9)) for p in patches[::3]}
        assert len(shapes) == 1
    assert any(isinstance(c, ContourSet) for c in ax.collections)
    assert fig.axes[1].get_ylabel() == "log density"
    np.testing.assert_allclose(points_of(ax).get_offsets(), X)


def test_ellipses_projected(three_d):
    model, X = three_d
    fig = plot.ellipses(model, X)
    ax = main_axes(fig)
    proj = plot.project(model, X)
    patches = ellipses_of(ax)
    assert len(patches) == 9
    for j in range(3):
        values = np.linalg.eigvalsh(proj.covariances[j])
        np.testing.assert_allclose(patches[3 * j].center, proj.means[j], atol=1e-10)
        assert patches[3 * j].width == pytest.approx(2 * math.sqrt(values[1]))
    assert PROJECTED in ax.get_title()
    assert fig.axes[1].get_ylabel() == "log marginal density on the plane"


def test_ellipses_one_feature_is_a_histogram(one_d):
    model, X = one_d
    ax = main_axes(plot.ellipses(model, X))
    assert len(ax.patches) > 10  # the bars
    mixture, *components = ax.get_lines()
    assert len(components) == 2
    grid = mixture.get_xdata()
    np.testing.assert_allclose(mixture.get_ydata(), np.exp(model.score_samples(grid[:, None])))
    np.testing.assert_allclose(
        components[0].get_ydata() + components[1].get_ydata(), mixture.get_ydata(), rtol=1e-9
    )


def test_feature_names_label_the_axes_without_warnings():
    pd = pytest.importorskip("pandas")
    model = handmade("diag", 2, 2)
    X = sample(model)
    model.feature_names_in_ = np.array(["height", "weight"], dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for fig in (
            plot.ellipses(model, pd.DataFrame(X, columns=["height", "weight"])),
            plot.responsibilities(model, X),
        ):
            ax = main_axes(fig)
            assert (ax.get_xlabel(), ax.get_ylabel()) == ("height", "weight")


# -- 4. selection ------------------------------------------------------------------------


def _selection_result(criterion: str = "bic") -> SimpleNamespace:
    """A stand-in for a SelectionResult (the plot reads only rows, best_row and criterion) with
    a failed row and a degenerate one, which a real grid on clean data would not give."""
    rows = []
    for covariance_type, offset in (("full", 0.0), ("diag", 30.0)):
        for k in (1, 2, 3, 4):
            bic = 1000.0 + 40.0 * (k - 2) ** 2 + offset
            rows.append(
                {
                    "covariance_type": covariance_type,
                    "n_components": k,
                    "bic": bic,
                    "aic": bic - 20.0,
                    "icl": bic + 5.0 * k,
                    "failed": False,
                    "degenerate": False,
                }
            )
    rows[2] |= {"failed": True, "bic": math.nan, "aic": math.nan, "icl": math.nan}  # full, 3
    rows[7]["degenerate"] = True  # diag, 4
    return SimpleNamespace(rows=rows, criterion=criterion, best_row=rows[1])


def test_selection_lines_skip_failed_and_mark_degenerate():
    fig = plot.selection(_selection_result())
    assert len(fig.axes) == 2
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels == ["BIC (lower is better)", "ICL (lower is better)"]
    for ax, key in zip(fig.axes, ("bic", "icl"), strict=True):
        lines = {line.get_label(): line for line in ax.get_lines()}
        full = lines["full"].get_ydata()
        assert np.isnan(full[2]) and np.all(np.isfinite(full[[0, 1, 3]]))
        assert len(lines["diag"].get_ydata()) == 4
        stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
        assert len(stars) == 1
        assert stars[0].get_xdata()[0] == 2
        assert stars[0].get_ydata()[0] == _selection_result().rows[1][key]
        rings = [line for line in ax.get_lines() if line.get_markerfacecolor() == "none"]
        assert len(rings) == 1 and list(rings[0].get_xdata()) == [4]
    texts = [t.get_text() for t in fig.legends[0].get_texts()]
    assert texts == ["full", "diag", "chosen by BIC", "degenerate"]
    assert "chosen full, K=2 by BIC" in fig._suptitle.get_text()


def test_selection_of_a_real_grid(lesson):
    _, X = lesson
    result = jaxgmm.select(X, [1, 2, 3], ("full",), n_init=1, random_state=0)
    assert isinstance(result, jaxgmm.SelectionResult)
    fig = plot.selection(result)
    line = next(line for line in fig.axes[0].get_lines() if line.get_label() == "full")
    np.testing.assert_allclose(line.get_ydata(), [row["bic"] for row in result.rows])
    star = next(line for line in fig.axes[0].get_lines() if line.get_marker() == "*")
    assert star.get_xdata()[0] == result.best_row["n_components"] == 2


def test_selection_shows_aic_when_it_chose():
    fig = plot.selection(_selection_result("aic"))
    assert [ax.get_ylabel()[:3] for ax in fig.axes] == ["BIC", "ICL", "AIC"]


# -- 5. uncertainty ----------------------------------------------------------------------


def test_uncertainty_two_features(lesson):
    model, X = lesson
    fig = plot.uncertainty(model, X)
    ax = main_axes(fig)
    points = points_of(ax)
    u = 1 - model.predict_proba(X).max(axis=1)
    np.testing.assert_allclose(points.get_array(), np.sort(u), atol=1e-6)
    assert np.all(np.diff(points.get_sizes()) >= 0)  # the most uncertain drawn last, largest
    assert len(fig.axes) == 2 and "uncertainty" in fig.axes[1].get_ylabel()


def test_uncertainty_projected_and_one_feature(three_d, one_d):
    model, X = three_d
    ax = main_axes(plot.uncertainty(model, X))
    assert PROJECTED in ax.get_title()
    model, X = one_d
    ax = main_axes(plot.uncertainty(model, X))
    u = 1 - model.predict_proba(X).max(axis=1)
    np.testing.assert_allclose(np.sort(points_of(ax).get_offsets()[:, 1]), np.sort(u))


@pytest.mark.parametrize("d", [1, 2, 4])
def test_one_component_draws_everywhere(d):
    model = handmade("spherical", 1, d)
    X = sample(model, 50)
    for function in (plot.responsibilities, plot.ellipses, plot.uncertainty):
        assert isinstance(function(model, X), Figure)


# -- inputs and saving -------------------------------------------------------------------


def test_wrong_inputs_are_refused(lesson):
    model, X = lesson
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        plot.ellipses(model, np.zeros((5, 3)))
    with pytest.raises(jaxgmm.NotFittedError):
        plot.responsibilities(jaxgmm.GaussianMixture(2), X)


def test_save_writes_a_png_atomically(tmp_path, lesson):
    model, X = lesson
    path = tmp_path / "ellipses.png"
    path.write_bytes(b"old")
    fig = plot.ellipses(model, X)
    plot.save(fig, path)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width = int.from_bytes(data[16:20], "big")
    assert width == round(fig.get_figwidth() * plot.DPI)
    assert os.listdir(tmp_path) == ["ellipses.png"]


def test_importing_the_module_leaves_matplotlib_alone():
    # A plot draws on a Figure of its own: neither import jaxgmm nor a plot loads pyplot.
    script = (
        "import sys, jaxgmm, jaxgmm.plot\n"
        "assert 'matplotlib' not in sys.modules\n"
        "from test_plot import _selection_result\n"
        "jaxgmm.plot.selection(_selection_result())\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"
    )
    tests = os.path.dirname(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, cwd=tests, timeout=120)


def test_lower_bound_trace_of_a_loaded_model_shows_its_one_trace(lesson, tmp_path):
    import jaxgmm

    lesson[0].save(tmp_path / "m.npz")
    loaded = jaxgmm.load(tmp_path / "m.npz")
    ax = main_axes(plot.lower_bound_trace(loaded))
    np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(), lesson[0].lower_bounds_)


def test_exercises_has_one_panel_per_model_with_its_criterion():
    import jaxgmm

    X = jaxgmm.lesson_data().astype(np.float32)
    result = jaxgmm.select(X, [2, 3], ("full", "diag"), n_init=1, random_state=0)
    fig = plot.exercises(result, X)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 4
    assert all("BIC" in t for t in titles)
    assert sum("best" in t for t in titles) == 1
    assert sum(len(ax.patches) for ax in fig.axes) == 2 * (2 + 3) * 2  # 1 and 2 sigma


def test_responsibilities_with_a_noise_component_show_it_grey(lesson):
    """Two Gaussians and the noise: blended colours (noise grey) and a legend entry for it, not
    the two-component colorbar; the title says the noise's weight; one feature: its curve."""
    _, X = lesson
    model = jaxgmm.GaussianMixture(2, noise=True, random_state=0).fit(X)
    fig = plot.responsibilities(model, X)
    ax = main_axes(fig)
    assert len(fig.axes) == 1
    colors = np.vstack([plot.component_colors(2), [[0.5, 0.5, 0.5, 1.0]]])[:, :3]
    expected = np.clip(model.predict_proba(X) @ colors, 0, 1)
    np.testing.assert_allclose(points_of(ax).get_facecolors()[:, :3], expected, atol=1e-6)
    assert [t.get_text() for t in fig.legends[0].get_texts()][-1] == "noise"
    assert f"+ noise ({model.noise_weight_:.2f})" in ax.get_title()
    one = jaxgmm.GaussianMixture(2, noise=True, random_state=0).fit(X[:, :1])
    curves = main_axes(plot.responsibilities(one, X[:, :1])).get_lines()[:3]
    assert curves[2].get_label() == "P(noise | x)"
    np.testing.assert_allclose(sum(c.get_ydata() for c in curves), 1.0, atol=1e-6)
