"""Figures of a fitted model and its data: responsibilities, ellipses and density, uncertainty."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._noise import has_noise
from ._geometry import (
    call_quietly,
    density_levels,
    drawn_points,
    feature_names,
    full_covariances,
    mixture_log_density,
    one_d_grid,
    plane_limits,
    probabilities_of,
    project,
)
from ._style import (
    GRID_SIZE,
    NOISE_COLOR,
    bottom_legend,
    component_colors,
    draw_ellipses,
    legend_rows,
    mark_means,
    model_title,
    new_figure,
    plane_figure,
    plane_title,
    point_style,
    probability_colorbar,
    setup_plane_axes,
    strip_jitter,
    two_component_cmap,
    uncertainty_cmap,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..estimator import GaussianMixture


def responsibilities(model: GaussianMixture, X, *, figsize=None) -> Figure:
    """Points coloured by the probability of each component given them, means marked.

    For K = 2 the colour is P(component 0 | x) on a diverging scale, with a colorbar; for K > 2
    each point's colour is the blend of the component colours weighted by its probabilities, so
    a point between two components takes a mixed colour. A noise component (``noise=``) is
    grey, and its probability blends in as the components' do. One feature: the curves
    P(k | x) over x, with the data as a strip below them.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    X : array-like of shape (N, D)
    figsize : (float, float), optional
        Inches; by default 6 wide and, for two or more features, as tall as the data's
        aspect needs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, note = drawn_points(model, X)
    proba = probabilities_of(model, X)
    k, d = model.means_.shape
    colors = component_colors(k)
    names = [f"component {j}" for j in range(k)]
    if has_noise(model):  # its column is the last
        colors = np.vstack([colors, NOISE_COLOR])
        names.append("noise")
    diverging = len(names) == 2 == k  # two Gaussians alone: one probability says all
    cmap = two_component_cmap() if diverging else None

    def point_colors() -> dict:
        if diverging:
            return {"c": proba[:, 0], "cmap": cmap, "vmin": 0.0, "vmax": 1.0}
        return {"color": np.clip(proba @ colors[:, :3], 0.0, 1.0)}

    if d == 1:
        fig = new_figure(figsize)
        ax = fig.add_subplot()
        x = X[:, 0]
        grid = one_d_grid(model, X)
        grid_proba = probabilities_of(model, grid[:, None])
        for j, name in enumerate(names):
            ax.plot(grid, grid_proba[:, j], color=colors[j], lw=2, label=f"P({name} | x)")
        # The data as a strip under the curves, coloured as in the 2-D plot.
        points = ax.scatter(
            x, -0.12 + 0.05 * strip_jitter(len(x)), **point_colors(), **point_style(len(x))
        )
        for j, mean in enumerate(np.asarray(model.means_)[:, 0]):
            ax.axvline(mean, color=colors[j], ls=":", lw=1.2)
        ax.set_ylim(-0.2, 1.05)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_xlabel(feature_names(model, 1)[0])
        ax.set_ylabel("probability of the component")
        bottom_legend(fig)
        what = "Responsibilities P(k | x); data below, means dotted"
        ax.set_title(model_title(model, what, note))
        if diverging:
            probability_colorbar(fig, ax, points)
        return fig

    plane = project(model, X)
    lo, hi = plane_limits(plane.points, [plane.means])
    labels = [] if diverging else names
    rows = legend_rows(labels) if labels else 0
    fig = plane_figure(figsize, lo, hi, title_lines=2 + plane.projected, legend_rows=rows)
    ax = fig.add_subplot()
    style = point_style(len(X))
    points = ax.scatter(plane.points[:, 0], plane.points[:, 1], **point_colors(), **style)
    mark_means(ax, plane.means, colors[:k])
    setup_plane_axes(ax, plane, lo, hi)
    if diverging:
        probability_colorbar(fig, ax, points)
        what = "Responsibilities: colour = P(component 0 | x)"
    else:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], ls="", marker="o", color=colors[j], label=label)
            for j, label in enumerate(labels)
        ]
        bottom_legend(fig, handles)
        what = "Responsibilities: colours blended by P(k | x)"
    ax.set_title(plane_title(model_title(model, what, note), plane), fontsize=10)
    return fig


KEPT_WEIGHT = 0.01  # a component with less expected weight is one the data left to the prior


def _left_to_prior(model) -> np.ndarray:
    """``(K,)``: the components a Bayesian model's data left (expected weight under
    ``KEPT_WEIGHT``); none for a mixture fitted by EM."""
    weights = np.asarray(model.weights_, np.float64)
    if not hasattr(model, "weight_concentration_"):
        return np.zeros(len(weights), bool)
    return weights <= KEPT_WEIGHT


def ellipses(model: GaussianMixture, X, *, figsize=None) -> Figure:
    """The data, each component's 1, 2 and 3 sigma ellipses, and the mixture's log density.

    The ellipse at n sigma is the set of points at Mahalanobis distance n from the mean (for
    tied covariances every component has the shared one; for diag and spherical they are
    axis-aligned in the data's features). The filled contours are the log density of the
    mixture: from ``score_samples`` for two features, the exact marginal density on the plane
    when the data are projected. One feature: a histogram with the mixture density and the
    weighted component densities. Of a :class:`jaxgmm.BayesianGaussianMixture`, the components
    the data left (expected weight under 1%) are not drawn: they sit at the prior's mean.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    X : array-like of shape (N, D)
    figsize : (float, float), optional
        Inches; by default 6 wide and, for two or more features, as tall as the data's
        aspect needs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib
    from matplotlib.lines import Line2D

    X, note = drawn_points(model, X)
    k, d = model.means_.shape
    colors = component_colors(k)
    weights = np.asarray(model.weights_, np.float64)
    if d == 1:
        return _histogram(new_figure(figsize), model, X, colors, note)

    plane = project(model, X)
    # a Bayesian model's components the data left sit at the prior, drawn over each other
    drawn = np.flatnonzero(~_left_to_prior(model))
    shown = plane._replace(means=plane.means[drawn], covariances=plane.covariances[drawn])
    # Limits cover the data and every drawn 3-sigma ellipse's bounding box.
    half = 3 * np.sqrt(np.diagonal(shown.covariances, axis1=1, axis2=2))
    lo, hi = plane_limits(plane.points, [shown.means - half, shown.means + half])
    labels = [f"{j}: weight {weights[j]:.2f}" for j in drawn]
    if len(drawn) < k:
        labels.append(f"{k - len(drawn)} of weight under {KEPT_WEIGHT:.0%}: not drawn")
    fig = plane_figure(
        figsize, lo, hi, title_lines=2 + plane.projected, legend_rows=legend_rows(labels)
    )
    ax = fig.add_subplot()
    gx = np.linspace(lo[0], hi[0], GRID_SIZE)
    gy = np.linspace(lo[1], hi[1], GRID_SIZE)
    mx, my = np.meshgrid(gx, gy)
    grid = np.column_stack([mx.ravel(), my.ravel()])
    if plane.projected:
        log_density = mixture_log_density(grid, weights, plane.means, plane.covariances)
        at_data = mixture_log_density(plane.points, weights, plane.means, plane.covariances)
        bar_label = "log marginal density on the plane"
    else:
        log_density = call_quietly(model.score_samples, grid, model.means_.dtype)
        at_data = call_quietly(model.score_samples, X, model.means_.dtype)
        bar_label = "log density"
    levels = density_levels(log_density, at_data)
    filled = ax.contourf(
        mx,
        my,
        log_density.reshape(mx.shape),
        levels=levels,
        # Below the lowest level the density is of no interest: leave it white.
        cmap=matplotlib.colormaps["Greys"].with_extremes(under="white"),
        alpha=0.55,
        extend="min",
        zorder=0,
    )
    fig.colorbar(filled, ax=ax, label=bar_label)
    ax.scatter(
        plane.points[:, 0], plane.points[:, 1], color="0.15", zorder=2, **point_style(len(X))
    )

    draw_ellipses(ax, shown, colors[drawn])
    setup_plane_axes(ax, plane, lo, hi)

    # The line styles are named in the title: a legend row for them would crowd out the data.
    handles = [
        Line2D([], [], color=colors[j], lw=2.2, label=label)
        for j, label in zip(drawn, labels, strict=False)
    ]
    if len(drawn) < k:
        handles.append(Line2D([], [], color="none", label=labels[-1]))
    bottom_legend(fig, handles)
    title = model_title(model, "Components at 1σ (solid), 2σ (dashed), 3σ (dotted)", note)
    ax.set_title(plane_title(title, plane), fontsize=10)
    return fig


def _histogram(fig: Figure, model, X: np.ndarray, colors: np.ndarray, note: str) -> Figure:
    """One feature: histogram, mixture density, weighted component densities."""
    ax = fig.add_subplot()
    x = X[:, 0]
    grid = one_d_grid(model, X)
    weights = np.asarray(model.weights_, np.float64)
    means = np.asarray(model.means_, np.float64)[:, 0]
    var = full_covariances(model)[:, 0, 0]
    # numpy's "auto" bins are coarse for a few hundred points; ask for about sqrt(N) at least.
    bins = max(len(np.histogram_bin_edges(x, bins="auto")) - 1, min(int(np.sqrt(len(x))), 50))
    ax.hist(x, bins=bins, density=True, color="0.82", edgecolor="white", label="data")
    density = np.exp(call_quietly(model.score_samples, grid[:, None], model.means_.dtype))
    ax.plot(grid, density, color="black", lw=2.4, label="mixture")
    for j in range(len(weights)):
        component = (
            weights[j]
            * np.exp(-0.5 * (grid - means[j]) ** 2 / var[j])
            / np.sqrt(2 * np.pi * var[j])
        )
        # On top of the mixture, which would hide a component where it dominates.
        ax.plot(
            grid,
            component,
            color=colors[j],
            ls="--",
            lw=1.8,
            label=f"{j}: weight {weights[j]:.2f}",
        )
    ax.set_xlim(grid[0], grid[-1])
    ax.set_ylim(0, None)
    ax.set_xlabel(feature_names(model, 1)[0])
    ax.set_ylabel("density")
    bottom_legend(fig)
    ax.set_title(model_title(model, "Mixture density and weighted components", note))
    return fig


def uncertainty(model: GaussianMixture, X, *, figsize=None) -> Figure:
    """Classification uncertainty ``1 - max_k P(k | x)`` of every point, as mclust's plot.

    Points are sized and coloured by their uncertainty (0 when one component claims them
    surely, at most ``1 - 1/K``), the most uncertain drawn on top; the means are marked. One
    feature: the uncertainty against x, the points on the curve.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    X : array-like of shape (N, D)
    figsize : (float, float), optional
        Inches; by default 6 wide and, for two or more features, as tall as the data's
        aspect needs.

    Returns
    -------
    matplotlib.figure.Figure
    """
    X, note = drawn_points(model, X)
    k, d = model.means_.shape
    colors = component_colors(k)
    u = 1.0 - probabilities_of(model, X).max(axis=1)
    largest = float(u.max())
    # The scale ends at the largest uncertainty seen (rounded up to 0.05, at most 1 - 1/K), not
    # at 1 - 1/K: with well separated clusters the few doubtful points would otherwise be pale.
    ceiling = 1.0 - 1.0 / k if k > 1 else 0.05  # one component: nothing is ever uncertain
    top = min(max(math.ceil(largest * 20 - 1e-9) / 20, 0.05), ceiling)
    order = np.argsort(u, kind="stable")  # the most uncertain last, on top
    sizes = 8.0 + 140.0 * np.clip(u / top, 0.0, 1.0)
    scatter = {
        "c": u[order],
        "cmap": uncertainty_cmap(),
        "vmin": 0.0,
        "vmax": top,
        "s": sizes[order],
        "edgecolors": "0.25",
        "linewidths": 0.3,
    }
    summary = f"largest {largest:.2f}; {int(np.sum(u > 0.1))} of {len(u)} points above 0.1"

    if d == 1:
        fig = new_figure(figsize)
        ax = fig.add_subplot()
        grid = one_d_grid(model, X)
        curve = 1.0 - probabilities_of(model, grid[:, None]).max(axis=1)
        ax.plot(grid, curve, color="0.3", lw=1.2, zorder=1, label="1 - max P(k | x)")
        ax.scatter(X[order, 0], u[order], zorder=2, **scatter)  # the y axis is the scale
        for j, mean in enumerate(np.asarray(model.means_)[:, 0]):
            ax.axvline(mean, color=colors[j], ls=":", lw=1.5, label=f"mean {j}")
        ax.set_ylim(-0.03, 1.05 * (1.0 - 1.0 / k) + 0.01)
        ax.set_xlabel(feature_names(model, 1)[0])
        ax.set_ylabel("uncertainty 1 - max P(k | x)")
        bottom_legend(fig)
        ax.set_title(model_title(model, "Classification uncertainty", note) + f"; {summary}")
        return fig

    plane = project(model, X)
    lo, hi = plane_limits(plane.points, [plane.means])
    fig = plane_figure(figsize, lo, hi, title_lines=2 + plane.projected, legend_rows=0)
    ax = fig.add_subplot()
    points = ax.scatter(plane.points[order, 0], plane.points[order, 1], zorder=2, **scatter)
    mark_means(ax, plane.means, colors)
    setup_plane_axes(ax, plane, lo, hi)
    fig.colorbar(
        points,
        ax=ax,
        label="uncertainty 1 - max P(k | x)",
        extend="max" if largest > top else "neither",
    )
    what = "Classification uncertainty (size and colour)"
    title = model_title(model, what, note) + f"; {summary}"
    ax.set_title(plane_title(title, plane), fontsize=10)
    return fig


def _weight_draws(model, n_draws: int, seed: int = 0) -> np.ndarray:
    """Draws ``(n_draws, K)`` of the weights from a Bayesian model's posterior: Dirichlet, or
    the Dirichlet process's sticks (Beta) broken in order."""
    rng = np.random.default_rng(seed)
    concentration = model.weight_concentration_
    if isinstance(concentration, tuple):
        sticks = rng.beta(
            np.asarray(concentration[0], np.float64),
            np.asarray(concentration[1], np.float64),
            (n_draws, len(concentration[0])),
        )
        rest = np.cumprod(1.0 - sticks, axis=1)
        return sticks * np.concatenate([np.ones((n_draws, 1)), rest[:, :-1]], axis=1)
    return rng.dirichlet(np.asarray(concentration, np.float64), n_draws)


def weights_posterior(model, *, level: float = 0.9, figsize=None) -> Figure:
    """A Bayesian model's weights: each component's expected weight with its posterior
    interval, those the data kept (expected weight over 1%) in their colours, the others grey.

    Parameters
    ----------
    model : BayesianGaussianMixture
        A fitted model.
    level : float, default=0.9
        The posterior intervals' probability (from 4,000 draws of the weights' posterior).
    figsize : (float, float), optional
        Inches; (6, 5) by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .._sklearn_api import not_fitted_error

    if not hasattr(model, "weight_concentration_"):
        raise not_fitted_error()(
            "weights_posterior draws a fitted BayesianGaussianMixture's weights"
        )
    weights = np.asarray(model.weights_, np.float64)
    k = len(weights)
    draws = _weight_draws(model, 4000)
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    kept = ~_left_to_prior(model)
    colors = np.where(kept[:, None], component_colors(k), np.array([0.7, 0.7, 0.7, 1.0]))
    fig = new_figure(figsize)
    ax = fig.add_subplot()
    ax.bar(np.arange(k), weights, color=colors, edgecolor="0.3", linewidth=0.5)
    # an interval, not error bars: a tiny expected weight may lie outside it (the draws' mass
    # sits at zero)
    ax.vlines(
        np.arange(k), low, high, color="0.15", lw=1.6, label=f"{level:.0%} posterior interval"
    )
    ax.axhline(
        KEPT_WEIGHT, color="0.5", ls=":", lw=1, label=f"kept: expected weight > {KEPT_WEIGHT:.0%}"
    )
    ax.set_xticks(np.arange(k))
    ax.set_xlabel("component")
    ax.set_ylabel("weight (expected, and interval)")
    ax.set_ylim(0, max(1.05 * float(high.max()), 0.05))
    ax.grid(axis="y", alpha=0.3)
    prior = model.weight_concentration_prior_type.replace("_", " ")
    ax.set_title(
        f"Weights' posterior: {int(kept.sum())} of {k} components kept\n"
        f"{prior} prior, {model.covariance_type} covariance"
    )
    ax.legend(loc="upper right", fontsize=9)
    return fig
