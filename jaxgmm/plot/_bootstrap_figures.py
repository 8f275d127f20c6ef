"""Figures of bootstrap inference (``jaxgmm._bootstrap``): each likelihood-ratio test's
bootstrap distribution against its observed statistic, and the replicates' parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ._style import component_colors, new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .._bootstrap import BootstrapLRTResult, BootstrapResult


def _grid(n_panels: int, columns: int, figsize, panel=(3.0, 2.4)):
    columns = max(1, min(columns, n_panels))
    rows = -(-n_panels // columns)
    fig = new_figure(figsize or (panel[0] * columns, panel[1] * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    return fig, axes


def bootstrap_lrt(result: BootstrapLRTResult, *, figsize=None) -> Figure:
    """One panel per test of K against K + 1 components: a histogram of the replicates'
    statistics, the observed statistic as a red line, and the p-value (mclust's
    ``plot.mclustBootstrapLRT``). Failed replicates are left out of the histogram and counted
    in the title.

    Parameters
    ----------
    result : BootstrapLRTResult
    figsize : (float, float), optional
        Inches; by default from the number of panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    n_tests = len(result.components)
    fig, axes = _grid(n_tests, 3, figsize)
    for ax, j in zip(axes, range(n_tests), strict=False):
        k = result.components[j]
        values = result.boot[:, j]
        values = values[np.isfinite(values)]
        observed = result.statistic[j]
        top = max(float(np.max(values)) if len(values) else 0.0, observed)
        bins = np.linspace(0.0, top * 1.05 or 1.0, 31)
        ax.hist(np.minimum(values, bins[-1]), bins=bins, color="0.7", edgecolor="0.4")
        ax.axvline(observed, color="tab:red", linewidth=2, label="observed")
        failed = result.n_failed[j]
        note = f", {failed} failed" if failed else ""
        ax.set_title(f"{k} vs {k + 1}: p = {result.p_values[j]:.3g}{note}", fontsize=10)
        ax.set_xlabel("2 (logL(K+1) - logL(K))")
    axes[0].set_ylabel("replicates")
    fig.suptitle(
        f"bootstrap LRT, {result.covariance_type}: chosen K = {result.n_components}",
        fontsize=11,
    )
    return fig


_TITLES = {"weights": "weight", "means": "mean", "covariances": "covariance"}


def bootstrap(result: BootstrapResult, *, what: str = "weights", figsize=None) -> Figure:
    """Histograms of the replicates of one kind of parameter (``what``: "weights", "means" or
    "covariances"), one panel per scalar, with the model's value as a line and the 95%
    percentile interval shaded (mclust's ``plot.MclustBootstrap``). Covariances in the model's
    own shapes (a tied model has one matrix; its lower triangle is shown).

    Parameters
    ----------
    result : BootstrapResult
    what : {"weights", "means", "covariances"}
    figsize : (float, float), optional
        Inches; by default from the number of panels.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if what not in _TITLES:
        raise ValueError(f"what must be one of {list(_TITLES)}, got {what!r}")
    replicates = getattr(result, what)
    model = {
        "weights": result.model_weights,
        "means": result.model_means,
        "covariances": result.model_covariances,
    }[what]
    lower, upper = result.intervals(0.95)[what]
    labels, columns, values, fitted, lows, highs = [], [], [], [], [], []
    k = len(result.model_weights)
    colours = component_colors(k)
    for index in np.ndindex(model.shape):
        if what == "covariances" and model.ndim >= 2 and index[-1] > index[-2]:
            continue  # a symmetric matrix: its lower triangle
        labels.append(f"{_TITLES[what]} {', '.join(str(i) for i in index)}")
        component = index[0] if model.shape[0] == k and model.ndim >= 1 else None
        columns.append(colours[component] if component is not None else "0.5")
        values.append(replicates[(slice(None), *index)])
        fitted.append(model[index])
        lows.append(lower[index])
        highs.append(upper[index])
    fig, axes = _grid(len(values), min(k, 4) if what == "weights" else model.shape[-1], figsize)
    for ax, label, colour, v, m, lo, hi in zip(
        axes, labels, columns, values, fitted, lows, highs, strict=False
    ):
        v = v[np.isfinite(v)]
        ax.axvspan(lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.hist(v, bins=30, color=colour, alpha=0.8)
        ax.axvline(m, color="black", linewidth=1.5)
        ax.set_title(label, fontsize=10)
        ax.tick_params(labelsize=8)
    fig.suptitle(
        f"{result.n_boot} {result.method} bootstrap replicates of a {result.covariance_type} "
        f"mixture: {what}",
        fontsize=11,
    )
    return fig
