"""Plots of a fitted :class:`jaxgmm.GaussianMixture` and of a :class:`jaxgmm.SelectionResult`.

Every function returns a :class:`matplotlib.figure.Figure` built directly (never through
``pyplot``), so it needs no display, switches no backend and leaves no global state: show it in a
notebook, or write it with :func:`save`. matplotlib is imported inside the functions, so that
``import jaxgmm`` does not pay for it.

Dimensions. Two features are plotted as they are. More than two are projected onto the first two
principal axes of the data (centred, SVD): the means and covariances project exactly, as
``m' = (m - c) V`` and ``S' = V^T S V``, and the density drawn is the exact marginal density of
the mixture on that plane (a mixture of the projected Gaussians). One feature gets a histogram
with the mixture density, or a strip of points.

Components are numbered from 0 in every label, as ``predict`` numbers them: component ``k`` is
``model.means_[k]``.
"""

from __future__ import annotations

import io
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from ._params import RestartOutcome

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ._select import SelectionResult
    from .estimator import GaussianMixture

__all__ = [
    "Projection",
    "ellipses",
    "exercises",
    "full_covariances",
    "lower_bound_trace",
    "mixture_log_density",
    "project",
    "responsibilities",
    "save",
    "selection",
    "uncertainty",
]

FIGSIZE = (6.0, 5.0)
DPI = 100
SIGMAS = (1, 2, 3)
GRID_SIZE = 150

# Colours of the covariance types in the selection plot, and their markers (told apart in grey).
_TYPE_STYLE = {
    "full": ("C0", "o"),
    "tied": ("C1", "s"),
    "diag": ("C2", "^"),
    "spherical": ("C3", "D"),
}


# -- geometry ------------------------------------------------------------------------------


def full_covariances(model: GaussianMixture) -> np.ndarray:
    """The covariance of every component as a ``(K, D, D)`` float64 array, whatever the
    covariance type (tied repeats the shared matrix; diag and spherical fill the diagonal).

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.

    Returns
    -------
    ndarray of shape (K, D, D)
    """
    _check_fitted(model)
    k, d = model.means_.shape
    return _as_full(np.asarray(model.covariances_, np.float64), model.covariance_type, k, d)


def _as_full(cov: np.ndarray, covariance_type: str, k: int, d: int) -> np.ndarray:
    eye = np.eye(d)
    if covariance_type == "full":
        return cov.reshape(k, d, d).copy()
    if covariance_type == "tied":
        return np.broadcast_to(cov.reshape(d, d), (k, d, d)).copy()
    if covariance_type == "diag":
        return cov.reshape(k, 1, d) * eye
    if covariance_type == "spherical":
        return cov.reshape(k, 1, 1) * eye
    raise ValueError(f"unknown covariance_type {covariance_type!r}")


class Projection(NamedTuple):
    """The plane a figure is drawn on, and the model and data expressed in it.

    ``coordinates = (x - origin) @ basis``. For two features the plane is the data's own (origin
    0, basis the identity); for more, it is spanned by the first two principal axes of ``X``.

    Attributes
    ----------
    points : (N, 2) ndarray
        The data in plane coordinates.
    weights : (K,) ndarray
    means : (K, 2) ndarray
        ``(means_ - origin) @ basis``.
    covariances : (K, 2, 2) ndarray
        ``basis.T @ S_k @ basis``: the covariance of the projected component, exactly.
    origin : (D,) ndarray
    basis : (D, 2) ndarray
        Orthonormal columns.
    explained : (2,) ndarray or None
        Fraction of the data's variance along each principal axis; None without projection.
    labels : (str, str)
        Axis labels.
    """

    points: np.ndarray
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    origin: np.ndarray
    basis: np.ndarray
    explained: np.ndarray | None
    labels: tuple[str, str]

    @property
    def projected(self) -> bool:
        return self.explained is not None


def project(model: GaussianMixture, X) -> Projection:
    """Express the data and the fitted mixture on the plane that the 2-D plots draw.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model with at least two features.
    X : array-like of shape (N, D)
        The data; for D > 2 its first two principal axes span the plane.

    Returns
    -------
    Projection
    """
    X = _data(model, X)
    d = X.shape[1]
    if d < 2:
        raise ValueError("a plane needs at least two features; X has one")
    if d == 2:
        origin, basis, explained = np.zeros(2), np.eye(2), None
        labels = tuple(_feature_names(model, 2))
    else:
        origin = X.mean(axis=0)
        _, singular, vt = np.linalg.svd(X - origin, full_matrices=False)
        basis = vt[:2].T
        # An SVD's signs are arbitrary: make each axis point along its largest loading.
        largest = np.abs(basis).argmax(axis=0)
        basis = basis * np.sign(basis[largest, [0, 1]])
        variance = singular**2
        explained = variance[:2] / variance.sum() if variance.sum() > 0 else np.zeros(2)
        labels = tuple(
            f"principal axis {i + 1} ({100 * explained[i]:.0f}% of variance)" for i in range(2)
        )
    cov = full_covariances(model)
    return Projection(
        points=(X - origin) @ basis,
        weights=np.asarray(model.weights_, np.float64),
        means=(np.asarray(model.means_, np.float64) - origin) @ basis,
        covariances=np.einsum("di,kde,ej->kij", basis, cov, basis),
        origin=origin,
        basis=basis,
        explained=explained,
        labels=labels,
    )


def mixture_log_density(points, weights, means, covariances) -> np.ndarray:
    """Log density of a Gaussian mixture with full covariances, in NumPy float64.

    Used for the exact marginal density of a mixture on a plane: the marginal of each Gaussian
    is the Gaussian of its projected mean and covariance, with the same weight.

    Parameters
    ----------
    points : (M, d) array-like
    weights : (K,) array-like
    means : (K, d) array-like
    covariances : (K, d, d) array-like

    Returns
    -------
    ndarray of shape (M,)
    """
    points = np.asarray(points, np.float64)
    means = np.asarray(means, np.float64)
    chol = np.linalg.cholesky(np.asarray(covariances, np.float64))  # (K, d, d)
    d = points.shape[1]
    diff = points[None, :, :] - means[:, None, :]  # (K, M, d)
    z = np.linalg.solve(chol, np.swapaxes(diff, 1, 2))  # (K, d, M); chol is lower-triangular
    log_det = 2.0 * np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
    with np.errstate(divide="ignore"):  # a switched-off component has weight 0: log 0 = -inf
        log_w = np.log(np.asarray(weights, np.float64))
    terms = (
        log_w[:, None]
        - 0.5 * (d * math.log(2 * math.pi) + log_det[:, None])
        - 0.5 * (z**2).sum(axis=1)
    )
    top = terms.max(axis=0)
    return top + np.log(np.exp(terms - top).sum(axis=0))


def _ellipse_shape(cov: np.ndarray, n_sigma: float) -> tuple[float, float, float]:
    """Width, height and angle (degrees) of the ellipse at Mahalanobis distance ``n_sigma``."""
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, 0.0, None)
    major = vectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    return 2 * n_sigma * math.sqrt(values[1]), 2 * n_sigma * math.sqrt(values[0]), angle


# -- plumbing ------------------------------------------------------------------------------


def _check_fitted(model) -> None:
    if not hasattr(model, "weights_"):
        from .estimator import NotFittedError

        raise NotFittedError("the model is not fitted yet; call fit before plotting it")


def _data(model: GaussianMixture, X) -> np.ndarray:
    """``X`` as a finite float64 (N, D) array with the model's number of features."""
    _check_fitted(model)
    d = model.means_.shape[1]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1 and d == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (N, {d}) for this model, got {X.shape}")
    if len(X) == 0:
        raise ValueError("X has no samples")
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains non-finite values (NaN or inf)")
    return X


def _call(method, X: np.ndarray, dtype) -> np.ndarray:
    """A model method on plain arrays (the grid, or X already converted), without the warning
    about missing feature names that a model fitted on a DataFrame would give."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return np.asarray(method(np.asarray(X, dtype=dtype)), dtype=np.float64)


def _feature_names(model, d: int) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) == d:
        return [str(name) for name in names]
    return ["x"] if d == 1 else [f"x{i + 1}" for i in range(d)]


def _figure(figsize: tuple[float, float] | None, *, equal_aspect: bool = False) -> Figure:
    from matplotlib.figure import Figure

    # "compressed" is constrained layout for fixed-aspect axes: it closes the gaps that equal
    # aspect leaves, so a colorbar or legend sits against the axes and matches its height.
    layout = "compressed" if equal_aspect else "constrained"
    return Figure(figsize=figsize or FIGSIZE, dpi=DPI, layout=layout)


def _plane_figure(figsize, lo, hi, *, title_lines: int, legend: bool) -> Figure:
    """A figure for an equal-aspect plot of the box ``lo``-``hi``: 6 inches wide and as tall as
    the box needs (unless ``figsize`` is given), so a wide cloud leaves no white band."""
    if figsize is None:
        ratio = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
        # about 4.3 inches of axes width once the tick labels and the colorbar have theirs
        height = 4.3 * ratio + 0.75 + 0.2 * title_lines + 0.35 * legend
        figsize = (FIGSIZE[0], float(np.clip(height, 3.2, 7.0)))
    return _figure(figsize, equal_aspect=True)


def _component_colors(k: int) -> np.ndarray:
    """(K, 4) RGBA colours: tab10 (component 0 blue, 1 orange, ...), tab20 beyond 10."""
    import matplotlib

    name = "tab10" if k <= 10 else "tab20"
    cmap = matplotlib.colormaps[name]
    return np.asarray([cmap(i % cmap.N) for i in range(k)])


def _two_component_cmap():
    """Diverging map for P(component 0): orange (component 1) through grey to blue (component
    0). Grey, not white, in the middle, so undecided points stay visible on a white axes."""
    from matplotlib.colors import LinearSegmentedColormap

    colors = _component_colors(2)
    return LinearSegmentedColormap.from_list("jaxgmm_two", [colors[1], "#a8a8a8", colors[0]])


def _point_style(n: int) -> dict:
    """Marker size and transparency that keep a few points visible and many readable."""
    size = float(np.clip(4000.0 / n, 3.0, 22.0))
    alpha = float(np.clip(200.0 / n**0.5, 0.35, 0.9))
    return {"s": size, "alpha": alpha, "linewidths": 0, "rasterized": n > 5000}


def _model_title(model, what: str) -> str:
    k = model.means_.shape[0]
    return f"{what}\nK={k}, {model.covariance_type} covariance"


def _plane_title(title: str, plane: Projection) -> str:
    if plane.projected:
        return f"{title}\nprojection onto the first two principal axes"
    return title


def _limits(points: np.ndarray, extra: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, ...]:
    """Axis limits covering ``points`` and any ``extra`` (n, 2) corners, with a 5% margin."""
    stacked = np.concatenate([points, *extra]) if extra else points
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12) + (hi == lo)
    return lo - pad, hi + pad


def _mark_means(ax: Axes, means: np.ndarray, colors: np.ndarray) -> None:
    """Mean of each component: a large cross in its colour, edged in black, numbered."""
    for j, (mean, color) in enumerate(zip(means, colors, strict=True)):
        ax.scatter(
            mean[0],
            mean[1],
            s=220,
            marker="X",
            color=color,
            edgecolors="black",
            linewidths=1.5,
            zorder=5,
            label=f"mean {j}",
        )
        ax.annotate(
            str(j),
            (mean[0], mean[1]),
            xytext=(9, 9),
            textcoords="offset points",
            fontsize=11,
            fontweight="bold",
            zorder=6,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.75},
        )


def _setup_plane_axes(ax: Axes, plane: Projection, lo, hi) -> None:
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])


def _probabilities(model, X: np.ndarray) -> np.ndarray:
    return _call(model.predict_proba, X, model.means_.dtype)


def _one_d_grid(model, X: np.ndarray, n: int = 400) -> np.ndarray:
    """A grid over the data and 3 standard deviations around every mean."""
    sd = np.sqrt(full_covariances(model)[:, 0, 0])
    means = np.asarray(model.means_, np.float64)[:, 0]
    lo = min(X.min(), (means - 3 * sd).min())
    hi = max(X.max(), (means + 3 * sd).max())
    return np.linspace(lo, hi, n)


def _strip(n: int) -> np.ndarray:
    """Vertical jitter for a strip of 1-D points, the same on every call."""
    return np.random.default_rng(0).uniform(-1.0, 1.0, n)


def _probability_colorbar(fig: Figure, ax: Axes, mappable) -> None:
    bar = fig.colorbar(mappable, ax=ax, label="P(component 0 | x)")
    # Name the ends: 1 is surely component 0, 0 surely component 1.
    labels = ["0\ncomp. 1", "0.25", "0.5", "0.75", "1\ncomp. 0"]
    bar.set_ticks([0, 0.25, 0.5, 0.75, 1], labels=labels)


# -- 1. responsibilities -------------------------------------------------------------------


def responsibilities(model: GaussianMixture, X, *, figsize=None) -> Figure:
    """Points coloured by the probability of each component given them, means marked.

    For K = 2 the colour is P(component 0 | x) on a diverging scale, with a colorbar; for K > 2
    each point's colour is the blend of the component colours weighted by its probabilities, so
    a point between two components takes a mixed colour. One feature: the curves P(k | x) over
    x, with the data as a strip below them.

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
    X = _data(model, X)
    proba = _probabilities(model, X)
    k, d = model.means_.shape
    colors = _component_colors(k)
    cmap = _two_component_cmap() if k == 2 else None

    def point_colors() -> dict:
        if k == 2:
            return {"c": proba[:, 0], "cmap": cmap, "vmin": 0.0, "vmax": 1.0}
        return {"color": np.clip(proba @ colors[:, :3], 0.0, 1.0)}

    if d == 1:
        fig = _figure(figsize)
        ax = fig.add_subplot()
        x = X[:, 0]
        grid = _one_d_grid(model, X)
        grid_proba = _probabilities(model, grid[:, None])
        for j in range(k):
            ax.plot(grid, grid_proba[:, j], color=colors[j], lw=2, label=f"P(component {j} | x)")
        # The data as a strip under the curves, coloured as in the 2-D plot.
        points = ax.scatter(
            x, -0.12 + 0.05 * _strip(len(x)), **point_colors(), **_point_style(len(x))
        )
        for j, mean in enumerate(np.asarray(model.means_)[:, 0]):
            ax.axvline(mean, color=colors[j], ls=":", lw=1.2)
        ax.set_ylim(-0.2, 1.05)
        ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
        ax.set_xlabel(_feature_names(model, 1)[0])
        ax.set_ylabel("probability of the component")
        fig.legend(loc="outside lower center", ncol=min(k, 3), frameon=False)
        ax.set_title(_model_title(model, "Responsibilities P(k | x); data below, means dotted"))
        if k == 2:
            _probability_colorbar(fig, ax, points)
        return fig

    plane = project(model, X)
    lo, hi = _limits(plane.points, [plane.means])
    fig = _plane_figure(figsize, lo, hi, title_lines=2 + plane.projected, legend=k > 2)
    ax = fig.add_subplot()
    style = _point_style(len(X))
    points = ax.scatter(plane.points[:, 0], plane.points[:, 1], **point_colors(), **style)
    _mark_means(ax, plane.means, colors)
    _setup_plane_axes(ax, plane, lo, hi)
    if k == 2:
        _probability_colorbar(fig, ax, points)
        what = "Responsibilities: colour = P(component 0 | x)"
    else:
        from matplotlib.lines import Line2D

        handles = [
            Line2D([], [], ls="", marker="o", color=colors[j], label=f"component {j}")
            for j in range(k)
        ]
        fig.legend(
            handles=handles, loc="outside lower center", ncol=min(k, 5), frameon=False, fontsize=9
        )
        what = "Responsibilities: colours blended by P(k | x)"
    ax.set_title(_plane_title(_model_title(model, what), plane), fontsize=10)
    return fig


# -- 2. lower-bound trace ------------------------------------------------------------------


def _restarts(model) -> tuple[RestartOutcome, int]:
    """The model's restarts and the index of the chosen one. A loaded model keeps only the
    chosen restart's trace, which then stands alone."""
    outcome = getattr(model, "restarts_", None)
    if outcome is not None:
        return outcome, int(getattr(model, "best_restart_", 0))
    trace = np.asarray(model.lower_bounds_, np.float64)
    one = RestartOutcome(
        lower_bound=np.array([model.lower_bound_]),
        lower_bounds=trace[None, :],
        n_iter=np.array([model.n_iter_]),
        converged=np.array([model.converged_]),
        failed=np.array([False]),
        degenerate=np.array([False]),
        params=None,
    )
    return one, 0


def lower_bound_trace(model: GaussianMixture, *, figsize=None) -> Figure:
    """The lower bound (mean log-likelihood per sample) at every EM iteration of every restart.

    Restarts are drawn faint, the chosen one bold; a failed restart is dashed red and ends in a
    cross at its last finite value; a degenerate one (a collapsed component) ends in a ring.

    Parameters
    ----------
    model : GaussianMixture
        A fitted model.
    figsize : (float, float), optional
        Inches; (6, 5) by default.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.ticker import MaxNLocator

    _check_fitted(model)
    outcome, chosen = _restarts(model)
    traces = np.atleast_2d(np.asarray(outcome.lower_bounds, np.float64))
    n_init = len(traces)
    fig = _figure(figsize)
    ax = fig.add_subplot()
    labelled = set()

    def once(label: str) -> str:
        # One legend entry per kind of line, not one per restart.
        if label in labelled:
            return "_nolegend_"
        labelled.add(label)
        return label

    for i, trace in enumerate(traces):
        finite = np.flatnonzero(np.isfinite(trace))
        if len(finite) == 0:
            continue
        iterations = finite + 1
        values = trace[finite]
        if i == chosen:
            continue  # drawn last, on top
        if outcome.failed[i]:
            ax.plot(
                iterations,
                values,
                color="C3",
                ls="--",
                lw=1.2,
                alpha=0.8,
                label=once("failed restart"),
            )
            ax.plot(iterations[-1], values[-1], "x", color="C3", ms=9, mew=2)
        else:
            ax.plot(
                iterations,
                values,
                color="0.45",
                lw=1.2,
                alpha=0.55,
                marker="o",
                ms=3,
                label=once("other restarts"),
            )
        if outcome.degenerate[i]:
            ax.plot(
                iterations[-1],
                values[-1],
                "o",
                mfc="none",
                mec="C1",
                ms=11,
                mew=1.8,
                label=once("degenerate (collapsed component)"),
            )
    trace = traces[chosen]
    finite = np.flatnonzero(np.isfinite(trace))
    if len(finite) == 0:  # max_iter=0: nothing to draw
        ax.text(0.5, 0.5, "no EM iteration was run", ha="center", transform=ax.transAxes)
    else:
        last = finite[-1]
        status = "converged" if outcome.converged[chosen] else "not converged"
        ax.plot(
            finite + 1,
            trace[finite],
            color="C0",
            lw=2.8,
            marker="o",
            ms=5,
            zorder=4,
            label=f"chosen: restart {chosen}, {trace[last]:.4f} ({status})",
        )
        if outcome.degenerate[chosen]:
            ax.plot(
                last + 1,
                trace[last],
                "o",
                mfc="none",
                mec="C1",
                ms=13,
                mew=2,
                label=once("degenerate (collapsed component)"),
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("lower bound (mean log-likelihood per sample)")
    ax.grid(alpha=0.3)
    n_failed = int(np.sum(outcome.failed))
    failed = f", {n_failed} failed" if n_failed else ""
    k = model.means_.shape[0]
    ax.set_title(
        f"EM lower bound per iteration\nK={k}, {model.covariance_type} covariance, "
        f"{n_init} restart{'s' * (n_init > 1)}{failed}"
    )
    if labelled or len(finite):
        ax.legend(loc="lower right", fontsize=9)
    return fig


# -- 3. ellipses and density ---------------------------------------------------------------


def _density_levels(log_density: np.ndarray, at_data: np.ndarray) -> np.ndarray:
    """Contour levels from a little below nearly all the data up to the peak: below that the
    contours crowd the corners without telling anything about the data."""
    from matplotlib.ticker import MaxNLocator

    top = float(np.max(log_density))
    # A quantile, not the minimum: one outlier far in the tail would stretch the scale.
    bottom = min(float(np.quantile(at_data, 0.01)) - 1.0, top - 1.0)
    # Round numbers on the colorbar; the locator's last value lies at or above the peak.
    return MaxNLocator(nbins=10).tick_values(bottom, top)


def ellipses(model: GaussianMixture, X, *, figsize=None) -> Figure:
    """The data, each component's 1, 2 and 3 sigma ellipses, and the mixture's log density.

    The ellipse at n sigma is the set of points at Mahalanobis distance n from the mean (for
    tied covariances every component has the shared one; for diag and spherical they are
    axis-aligned in the data's features). The filled contours are the log density of the
    mixture: from ``score_samples`` for two features, the exact marginal density on the plane
    when the data are projected. One feature: a histogram with the mixture density and the
    weighted component densities.

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

    X = _data(model, X)
    k, d = model.means_.shape
    colors = _component_colors(k)
    weights = np.asarray(model.weights_, np.float64)
    if d == 1:
        return _histogram(_figure(figsize), model, X, colors)

    plane = project(model, X)
    # Limits cover the data and every 3-sigma ellipse's bounding box.
    half = 3 * np.sqrt(np.diagonal(plane.covariances, axis1=1, axis2=2))
    lo, hi = _limits(plane.points, [plane.means - half, plane.means + half])
    fig = _plane_figure(figsize, lo, hi, title_lines=2 + plane.projected, legend=True)
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
        log_density = _call(model.score_samples, grid, model.means_.dtype)
        at_data = _call(model.score_samples, X, model.means_.dtype)
        bar_label = "log density"
    levels = _density_levels(log_density, at_data)
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
        plane.points[:, 0], plane.points[:, 1], color="0.15", zorder=2, **_point_style(len(X))
    )

    _draw_ellipses(ax, plane, colors)
    _setup_plane_axes(ax, plane, lo, hi)

    # The line styles are named in the title: a legend row for them would crowd out the data.
    handles = [
        Line2D([], [], color=colors[j], lw=2.2, label=f"{j}: weight {weights[j]:.2f}")
        for j in range(k)
    ]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(k, 4),
        frameon=False,
        fontsize=9,
    )
    title = _model_title(model, "Components at 1σ (solid), 2σ (dashed), 3σ (dotted)")
    ax.set_title(_plane_title(title, plane), fontsize=10)
    return fig


def _draw_ellipses(ax: Axes, plane: Projection, colors: np.ndarray, sigmas=SIGMAS) -> None:
    """Each component's ellipses at ``sigmas`` (solid, dashed, dotted) and its mean."""
    from matplotlib.patches import Ellipse

    line_styles = {1: ("-", 2.2), 2: ("--", 1.6), 3: (":", 1.6)}
    for j in range(len(plane.means)):
        for n in sigmas:
            width, height, angle = _ellipse_shape(plane.covariances[j], n)
            ls, lw = line_styles[n]
            ax.add_patch(
                Ellipse(
                    plane.means[j],
                    width,
                    height,
                    angle=angle,
                    fill=False,
                    edgecolor=colors[j],
                    ls=ls,
                    lw=lw,
                    zorder=3,
                )
            )
    ax.scatter(
        plane.means[:, 0],
        plane.means[:, 1],
        s=90,
        marker="X",
        color=colors,
        edgecolors="black",
        linewidths=1.2,
        zorder=5,
    )


def exercises(result: SelectionResult, X, *, figsize=None) -> Figure:
    """The lesson's exercises side by side: one panel per fitted model of a
    :class:`jaxgmm.SelectionResult` (rows: covariance types, columns: K), each with the data,
    its components' 1 and 2 sigma ellipses and its criterion in the title; the best starred.

    Returns
    -------
    matplotlib.figure.Figure
    """
    types = list(dict.fromkeys(row["covariance_type"] for row in result.rows))
    ks = sorted({row["n_components"] for row in result.rows})
    fig = _figure(figsize or (3.2 * len(ks), 2.0 * len(types) + 0.5), equal_aspect=True)
    axes = fig.subplots(len(types), len(ks), squeeze=False, sharex=True, sharey=True)
    criterion = result.criterion.upper()
    for row in result.rows:
        ax = axes[types.index(row["covariance_type"])][ks.index(row["n_components"])]
        model = result.models.get((row["covariance_type"], row["n_components"]))
        if model is None:
            ax.set_title(f"{row['covariance_type']}, K={row['n_components']}: failed", fontsize=9)
            continue
        data = _data(model, X)
        plane = project(model, data)
        ax.scatter(plane.points[:, 0], plane.points[:, 1], color="0.35", **_point_style(len(data)))
        _draw_ellipses(ax, plane, _component_colors(row["n_components"]), sigmas=(1, 2))
        best = " ★ best" if row is result.best_row else ""
        ax.set_title(
            f"{row['covariance_type']}, K={row['n_components']}: "
            f"{criterion} {row[result.criterion]:.1f}{best}",
            fontsize=9,
        )
        ax.set_aspect("equal", adjustable="box")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Exercises: components at 1σ and 2σ; lower {criterion} is better", fontsize=10)
    return fig


def _histogram(fig: Figure, model, X: np.ndarray, colors: np.ndarray) -> Figure:
    """One feature: histogram, mixture density, weighted component densities."""
    ax = fig.add_subplot()
    x = X[:, 0]
    grid = _one_d_grid(model, X)
    weights = np.asarray(model.weights_, np.float64)
    means = np.asarray(model.means_, np.float64)[:, 0]
    var = full_covariances(model)[:, 0, 0]
    # numpy's "auto" bins are coarse for a few hundred points; ask for about sqrt(N) at least.
    bins = max(len(np.histogram_bin_edges(x, bins="auto")) - 1, min(int(np.sqrt(len(x))), 50))
    ax.hist(x, bins=bins, density=True, color="0.82", edgecolor="white", label="data")
    density = np.exp(_call(model.score_samples, grid[:, None], model.means_.dtype))
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
    ax.set_xlabel(_feature_names(model, 1)[0])
    ax.set_ylabel("density")
    fig.legend(loc="outside lower center", ncol=min(len(weights) + 2, 4), frameon=False, fontsize=9)
    ax.set_title(_model_title(model, "Mixture density and weighted components"))
    return fig


# -- 4. model selection --------------------------------------------------------------------


def selection(result: SelectionResult, *, figsize=None) -> Figure:
    """BIC and ICL (and AIC when it chose the model) against K, one line per covariance type.

    Lower is better for every criterion. Failed fits are left out (a gap in their line),
    degenerate ones are ringed in red, the chosen model is a gold star in every panel.

    Parameters
    ----------
    result : SelectionResult
        What :func:`jaxgmm.select` returned.
    figsize : (float, float), optional
        Inches; by default 6 wide and 1.6 tall per panel, plus room for the titles.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    criteria = ["bic", "icl"] + (["aic"] if result.criterion == "aic" else [])
    rows = result.rows
    types = list(dict.fromkeys(row["covariance_type"] for row in rows))
    fig = _figure(figsize or (FIGSIZE[0], 2.1 + 1.6 * len(criteria)))
    axes = fig.subplots(len(criteria), 1, sharex=True)
    best = result.best_row
    any_degenerate = False
    for ax, criterion in zip(axes, criteria, strict=True):
        for covariance_type in types:
            color, marker = _TYPE_STYLE.get(covariance_type, ("C4", "v"))
            mine = sorted(
                (r for r in rows if r["covariance_type"] == covariance_type),
                key=lambda r: r["n_components"],
            )
            ks = np.array([r["n_components"] for r in mine])
            # Failed rows become NaN: no marker, and a gap in the line.
            values = np.array([np.nan if r["failed"] else r[criterion] for r in mine], float)
            ax.plot(ks, values, color=color, marker=marker, ms=5, lw=1.5, label=covariance_type)
            degenerate = np.array([r["degenerate"] and not r["failed"] for r in mine], bool)
            if degenerate.any():
                any_degenerate = True
                ax.plot(
                    ks[degenerate],
                    values[degenerate],
                    "o",
                    mfc="none",
                    mec="red",
                    ms=12,
                    mew=1.6,
                    zorder=4,
                )
        if not best["failed"]:
            ax.plot(
                best["n_components"],
                best[criterion],
                "*",
                color="gold",
                mec="black",
                ms=17,
                mew=1.0,
                zorder=5,
            )
        ax.set_ylabel(f"{criterion.upper()} (lower is better)")
        ax.margins(y=0.1)  # room for the star and the rings at the extremes
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("number of components K")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))

    handles = [
        Line2D(
            [],
            [],
            color=_TYPE_STYLE.get(t, ("C4", "v"))[0],
            marker=_TYPE_STYLE.get(t, ("C4", "v"))[1],
            ms=5,
            label=t,
        )
        for t in types
    ]
    handles.append(
        Line2D(
            [],
            [],
            ls="",
            marker="*",
            color="gold",
            mec="black",
            ms=14,
            label=f"chosen by {result.criterion.upper()}",
        )
    )
    if any_degenerate:
        handles.append(
            Line2D(
                [], [], ls="", marker="o", mfc="none", mec="red", ms=10, mew=1.6, label="degenerate"
            )
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 5),
        frameon=False,
        fontsize=9,
        columnspacing=1.2,
        handletextpad=0.4,
    )
    fig.suptitle(
        f"Model selection: chosen {best['covariance_type']}, K={best['n_components']} "
        f"by {result.criterion.upper()}"
    )
    return fig


# -- 5. uncertainty ------------------------------------------------------------------------


def _uncertainty_cmap():
    """Light grey (certain) through orange to dark red (as uncertain as K components allow):
    certain points recede without vanishing on a white axes."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "jaxgmm_uncertainty", ["#c8c8c8", "#fdae61", "#d7301f", "#67000d"]
    )


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
    X = _data(model, X)
    k, d = model.means_.shape
    colors = _component_colors(k)
    u = 1.0 - _probabilities(model, X).max(axis=1)
    largest = float(u.max())
    # The scale ends at the largest uncertainty seen (rounded up to 0.05, at most 1 - 1/K), not
    # at 1 - 1/K: with well separated clusters the few doubtful points would otherwise be pale.
    ceiling = 1.0 - 1.0 / k if k > 1 else 0.05  # one component: nothing is ever uncertain
    top = min(max(math.ceil(largest * 20 - 1e-9) / 20, 0.05), ceiling)
    order = np.argsort(u, kind="stable")  # the most uncertain last, on top
    sizes = 8.0 + 140.0 * np.clip(u / top, 0.0, 1.0)
    scatter = {
        "c": u[order],
        "cmap": _uncertainty_cmap(),
        "vmin": 0.0,
        "vmax": top,
        "s": sizes[order],
        "edgecolors": "0.25",
        "linewidths": 0.3,
    }
    summary = f"largest {largest:.2f}; {int(np.sum(u > 0.1))} of {len(u)} points above 0.1"

    if d == 1:
        fig = _figure(figsize)
        ax = fig.add_subplot()
        grid = _one_d_grid(model, X)
        curve = 1.0 - _probabilities(model, grid[:, None]).max(axis=1)
        ax.plot(grid, curve, color="0.3", lw=1.2, zorder=1, label="1 - max P(k | x)")
        ax.scatter(X[order, 0], u[order], zorder=2, **scatter)  # the y axis is the scale
        for j, mean in enumerate(np.asarray(model.means_)[:, 0]):
            ax.axvline(mean, color=colors[j], ls=":", lw=1.5, label=f"mean {j}")
        ax.set_ylim(-0.03, 1.05 * (1.0 - 1.0 / k) + 0.01)
        ax.set_xlabel(_feature_names(model, 1)[0])
        ax.set_ylabel("uncertainty 1 - max P(k | x)")
        fig.legend(loc="outside lower center", ncol=min(k + 1, 4), frameon=False, fontsize=9)
        ax.set_title(_model_title(model, "Classification uncertainty") + f"; {summary}")
        return fig

    plane = project(model, X)
    lo, hi = _limits(plane.points, [plane.means])
    fig = _plane_figure(figsize, lo, hi, title_lines=2 + plane.projected, legend=False)
    ax = fig.add_subplot()
    points = ax.scatter(plane.points[order, 0], plane.points[order, 1], zorder=2, **scatter)
    _mark_means(ax, plane.means, colors)
    _setup_plane_axes(ax, plane, lo, hi)
    fig.colorbar(
        points,
        ax=ax,
        label="uncertainty 1 - max P(k | x)",
        extend="max" if largest > top else "neither",
    )
    title = _model_title(model, "Classification uncertainty (size and colour)") + f"; {summary}"
    ax.set_title(_plane_title(title, plane), fontsize=10)
    return fig


# -- saving --------------------------------------------------------------------------------


def save(fig: Figure, path: str | os.PathLike, *, dpi: float | None = None) -> None:
    """Write ``fig`` to ``path`` as a PNG, whole or not at all, and close the figure.

    The image is rendered in memory and written through a temporary file renamed over
    ``path``, so a reader never sees half a file.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    path : str or os.PathLike
    dpi : float, optional
        Resolution; the figure's own (100 for these plots) by default.
    """
    from ._io_data import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi if dpi is not None else "figure")
    atomic_write_bytes(path, buffer.getvalue())
    # A figure made through pyplot stays registered there until closed; ours never are.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
