"""Figures of a fit's course and of a model selection: the lower-bound traces of the restarts,
the criteria against K, and the lesson's exercises side by side."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .._covariance import covariance_unit
from ._geometry import check_fitted, checked_data, project
from ._style import FIGSIZE, bottom_legend, component_colors, draw_ellipses, new_figure, point_style

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .._select import SelectionResult
    from ..estimator import GaussianMixture


def lower_bound_trace(model: GaussianMixture, *, figsize=None) -> Figure:
    """The lower bound (mean log-likelihood per sample) at every EM iteration of every restart
    (of a :class:`jaxgmm.BayesianGaussianMixture`, its variational lower bound).

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

    check_fitted(model)
    outcome, chosen = model.restarts_, int(model.best_restart_)
    traces = np.atleast_2d(np.asarray(outcome.lower_bounds, np.float64))
    n_init = len(traces)
    fig = new_figure(figsize)
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
    variational = hasattr(model, "weight_concentration_")
    ax.set_xlabel("variational iteration" if variational else "EM iteration")
    ax.set_ylabel(
        "variational lower bound (a total, up to a constant)"
        if variational
        else "lower bound (mean log-likelihood per sample)"
    )
    ax.grid(alpha=0.3)
    n_failed = int(np.sum(outcome.failed))
    failed = f", {n_failed} failed" if n_failed else ""
    k = model.means_.shape[0]
    ax.set_title(
        f"{'Variational' if variational else 'EM'} lower bound per iteration\n"
        f"K={k}, {model.covariance_type} covariance, "
        f"{n_init} restart{'s' * (n_init > 1)}{failed}"
    )
    if labelled or len(finite):
        ax.legend(loc="lower right", fontsize=9)
    return fig


def _colours_like(model, like, k: int) -> np.ndarray:
    """Colours for ``model``'s components: each takes the colour of the nearest component of
    ``like`` (in units of the data's spread, nearest pairs first), the others the next colours
    free, so that one cluster keeps its colour from figure to figure."""
    palette = component_colors(max(k, like.means_.shape[0] + k))
    ours = np.asarray(model.means_, np.float64)
    theirs = np.asarray(like.means_, np.float64)
    scale = np.maximum(np.std(np.vstack([ours, theirs]), axis=0), 1e-12)
    distance = np.linalg.norm((ours[:, None] - theirs[None]) / scale, axis=-1)
    colour = -np.ones(k, int)
    for flat in np.argsort(distance, axis=None):
        i, j = np.unravel_index(flat, distance.shape)
        if colour[i] < 0 and j not in colour:
            colour[i] = j
    free = iter(c for c in range(len(palette)) if c not in colour)
    return palette[[c if c >= 0 else next(free) for c in colour]]


def exercises(result: SelectionResult, X, *, like=None, figsize=None) -> Figure:
    """The lesson's exercises side by side: one panel per fitted model of a
    :class:`jaxgmm.SelectionResult` (rows: covariance types, columns: K), each with the data,
    its components' 1 and 2 sigma ellipses and its criterion in the title; the best starred.
    With ``like`` (a fitted model), each component takes the colour of its nearest component
    of ``like``, as in that model's own figures.

    Parameters
    ----------
    result : SelectionResult
    X : array-like of shape (N, D)
        The data the models were fitted to.
    like : GaussianMixture, optional
    figsize : (float, float), optional
        Inches; by default from the numbers of covariance types and K.

    Returns
    -------
    matplotlib.figure.Figure
    """
    types = list(dict.fromkeys(row["covariance_type"] for row in result.rows))
    ks = sorted({row["n_components"] for row in result.rows})
    fig = new_figure(figsize or (3.2 * len(ks), 2.0 * len(types) + 0.5), equal_aspect=True)
    axes = fig.subplots(len(types), len(ks), squeeze=False, sharex=True, sharey=True)
    criterion = result.criterion.upper()
    for row in result.rows:
        ax = axes[types.index(row["covariance_type"])][ks.index(row["n_components"])]
        model = result.models.get((row["covariance_type"], row["n_components"]))
        if model is None:
            ax.set_title(f"{row['covariance_type']}, K={row['n_components']}: failed", fontsize=9)
            continue
        data = checked_data(model, X)
        plane = project(model, data)
        ax.scatter(plane.points[:, 0], plane.points[:, 1], color="0.35", **point_style(len(data)))
        k = row["n_components"]
        colours = component_colors(k) if like is None else _colours_like(model, like, k)
        draw_ellipses(ax, plane, colours, sigmas=(1, 2))
        if ax in axes[-1]:
            ax.set_xlabel(plane.labels[0], fontsize=9)
        if ax is axes[types.index(row["covariance_type"])][0]:
            ax.set_ylabel(plane.labels[1], fontsize=9)
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
    fig = new_figure(figsize or (FIGSIZE[0], 2.1 + 1.6 * len(criteria)))
    axes = fig.subplots(len(criteria), 1, sharex=True)
    best = result.best_row
    any_degenerate = False
    for ax, criterion in zip(axes, criteria, strict=True):
        for covariance_type in types:
            color, marker = covariance_unit(covariance_type).plot_style
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
        values = np.array([r[criterion] for r in rows if not r["failed"]], float)
        top = _focused_top(values)
        if top is not None:
            low = float(values.min())
            ax.set_ylim(low - 0.08 * (top - low), top)
            ax.text(
                0.99,
                0.97,
                "worse models above, off the scale",
                transform=ax.transAxes,
                ha="right",
                va="top",
                fontsize=8,
                color="0.4",
            )
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("number of components K")
    axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))

    handles = [
        Line2D(
            [],
            [],
            color=covariance_unit(t).plot_style[0],
            marker=covariance_unit(t).plot_style[1],
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
    bottom_legend(fig, handles, columnspacing=1.2, handletextpad=0.4)
    fig.suptitle(
        f"Model selection: chosen {best['covariance_type']}, K={best['n_components']} "
        f"by {result.criterion.upper()}"
    )
    return fig


def _focused_top(values: np.ndarray) -> float | None:
    """The top of a criterion's axis that keeps the models near the best readable, when a few
    much worse ones (one covariance type far behind, say) would flatten them all: the axis then
    ends half again above the 60% quantile. None when every value fits well enough."""
    values = values[np.isfinite(values)]
    if len(values) < 4:
        return None
    low, middle = float(values.min()), float(np.quantile(values, 0.6))
    top = middle + 0.5 * (middle - low)
    return top if values.max() - low > 2 * (top - low) > 0 else None
