"""The figures on real data sets, as a reader sees them: faithful (two columns of different
scales), iris (four, projected), wreath (K = 14), one column, and many points. Nothing may be
cut at the figure's edge, and the data must fill their panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import jaxgmm
from jaxgmm import datasets, plot

WREATH = Path(__file__).resolve().parents[1] / "bench" / "data" / "wreath.csv"


def fitted(X, k, covariance_type="full"):
    return jaxgmm.GaussianMixture(k, covariance_type=covariance_type, random_state=0).fit(X)


@pytest.fixture(scope="module")
def cases():
    faithful, iris = datasets.faithful(), datasets.iris()
    wreath = np.loadtxt(WREATH, delimiter=",", skiprows=1)
    one = faithful[:, :1]
    return {
        "faithful": (fitted(faithful, 2), faithful),
        "iris": (fitted(iris, 3), iris),
        "wreath": (fitted(wreath, 14), wreath),
        "one column": (fitted(one, 2), one),
    }


FIGURES = ("responsibilities", "ellipses", "uncertainty")


def assert_nothing_cut(fig) -> None:
    """Everything drawn (titles, labels, ticks, legends, colorbars) lies inside the figure:
    the box that saving with bbox_inches="tight" would keep is within the figure's own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # the figures are built without pyplot: draw as saving does
    canvas.draw()
    drawn = fig.get_tightbbox(canvas.get_renderer())  # inches
    width, height = fig.get_size_inches()
    slack = 0.02
    inside = (
        drawn.x0 >= -slack
        and drawn.y0 >= -slack
        and drawn.x1 <= width + slack
        and drawn.y1 <= height + slack
    )
    assert inside, (drawn, (width, height))


@pytest.mark.parametrize("name", ["faithful", "iris", "wreath", "one column"])
@pytest.mark.parametrize("figure", FIGURES)
def test_figures_of_real_data_cut_nothing(cases, name, figure):
    model, X = cases[name]
    fig = getattr(plot, figure)(model, X)
    assert_nothing_cut(fig)
    width, height = fig.get_size_inches()
    assert width == plot.FIGSIZE[0] and 3 <= height <= 8.5, (width, height)


def test_data_of_different_scales_fill_their_panel(cases):
    """faithful: eruptions 1.6-5.1 minutes, waiting 43-96: one scale for both axes would draw
    a strip (the panel 15 times taller than wide); each axis gets its own instead."""
    model, X = cases["faithful"]
    ax = plot.ellipses(model, X).axes[0]
    assert ax.get_aspect() == "auto"
    assert ax.get_xlim()[0] <= X[:, 0].min() and ax.get_xlim()[1] >= X[:, 0].max()
    lesson = jaxgmm.lesson_data()
    ax = plot.ellipses(fitted(lesson, 2), lesson).axes[0]
    assert ax.get_aspect() == 1.0  # comparable ranges: one scale, circles look round


def test_selection_keeps_the_competitive_models_readable():
    X = datasets.faithful()
    result = jaxgmm.select(X, range(1, 6), random_state=0)
    fig = plot.selection(result)
    assert_nothing_cut(fig)
    ax = fig.axes[0]
    bics = np.array([row["bic"] for row in result.rows])
    low, top = ax.get_ylim()
    assert low <= bics.min() and top < bics.max()  # the far worse models are off the scale
    spread = np.sort(bics)[: len(bics) // 2]
    assert (spread.max() - spread.min()) / (top - low) > 0.1  # the best half spans the axis


def test_many_points_are_drawn_as_a_sample(cases):
    model, _ = cases["faithful"]
    many = model.sample(3 * plot.MAX_POINTS)[0]
    fig = plot.uncertainty(model, many)
    drawn = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert drawn <= plot.MAX_POINTS + model.means_.shape[0]
    assert f"a random {plot.MAX_POINTS:,} of {len(many):,}" in fig.axes[0].get_title()


def test_exercises_have_labels_and_the_colours_of_the_model(cases):
    X = jaxgmm.lesson_data()
    model = fitted(X, 2)
    result = jaxgmm.select(X, [2, 3], ("full", "diag"), n_init=2, random_state=1)
    fig = plot.exercises(result, X, like=model)
    assert_nothing_cut(fig)
    assert all(ax.get_xlabel() for ax in fig.axes[-2:])
    colours = plot.component_colors(2)
    for ax in fig.axes:
        # the component nearest the model's component 0 is drawn in its colour
        centres = {tuple(np.round(p.center, 6)): p.get_edgecolor()[:3] for p in ax.patches}
        nearest = min(centres, key=lambda c: np.linalg.norm(np.subtract(c, model.means_[0])))
        np.testing.assert_allclose(centres[nearest], colours[0][:3])
