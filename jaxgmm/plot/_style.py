"""How things look: figure sizes, component colours and colour maps, point styles, titles, means
and ellipses drawn on a plane."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from .._noise import has_noise
from ._geometry import Projection, ellipse_shape

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

FIGSIZE = (6.0, 5.0)
DPI = 100
SIGMAS = (1, 2, 3)
GRID_SIZE = 150


def new_figure(figsize: tuple[float, float] | None, *, equal_aspect: bool = False) -> Figure:
    from matplotlib.figure import Figure

    # "compressed" is constrained layout for fixed-aspect axes: it closes the gaps that equal
    # aspect leaves, so a colorbar or legend sits against the axes and matches its height.
    layout = "compressed" if equal_aspect else "constrained"
    return Figure(figsize=figsize or FIGSIZE, dpi=DPI, layout=layout)


# Up to this ratio of their ranges, the two axes of a plane share one scale (a circle looks
# round); beyond it (faithful: eruptions in minutes, waiting in tens of minutes) each axis gets
# its own, so that the data fill the panel instead of a thin strip. Ellipses are drawn in data
# units either way, so they stay right.
EQUAL_ASPECT_MAX_RATIO = 3.0


def equal_aspect(lo, hi) -> bool:
    """Whether the box ``lo``-``hi`` is drawn with one scale for both axes."""
    ratio = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
    return 1.0 / EQUAL_ASPECT_MAX_RATIO <= ratio <= EQUAL_ASPECT_MAX_RATIO


def plane_figure(figsize, lo, hi, *, title_lines: int, legend_rows: int) -> Figure:
    """A figure for a plot of the box ``lo``-``hi``. With one scale for both axes: 6 inches wide
    and as tall as the box needs (unless ``figsize`` is given), so a wide cloud leaves no white
    band; with a scale each, 6 inches wide and 5 tall, plus room for the legend's rows."""
    extra = 0.2 * title_lines + 0.22 * legend_rows + 0.15 * (legend_rows > 0)
    if not equal_aspect(lo, hi):
        return new_figure(figsize or (FIGSIZE[0], FIGSIZE[1] + max(extra - 0.6, 0.0)))
    if figsize is None:
        ratio = float((hi[1] - lo[1]) / (hi[0] - lo[0]))
        # about 4.3 inches of axes width once the tick labels and the colorbar have theirs
        height = 4.3 * ratio + 0.75 + extra
        figsize = (FIGSIZE[0], float(np.clip(height, 3.2, 8.0)))
    return new_figure(figsize, equal_aspect=True)


def legend_columns(labels, width: float = FIGSIZE[0], fontsize: float = 9) -> int:
    """Columns of a legend of ``labels`` that fits in ``width`` inches: an entry is its handle
    and spacing (about 0.75 inch) and its text (about 0.6 em per character)."""
    entry = 0.75 + max(len(label) for label in labels) * 0.6 * fontsize / 72
    return max(1, min(len(labels), int(0.95 * width // entry)))


def legend_rows(labels, width: float = FIGSIZE[0], fontsize: float = 9) -> int:
    return math.ceil(len(labels) / legend_columns(labels, width, fontsize))


def bottom_legend(fig: Figure, handles=None, *, fontsize: float = 9, **options) -> None:
    """The figure's legend under its axes, in as many columns as fit its width (those of its
    axes' labelled artists when ``handles`` is None)."""
    if handles is None:
        handles = [h for ax in fig.axes for h in ax.get_legend_handles_labels()[0]]
    labels = [h.get_label() for h in handles]
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=legend_columns(labels, fig.get_figwidth(), fontsize),
        frameon=False,
        fontsize=fontsize,
        **options,
    )


NOISE_COLOR = (0.5, 0.5, 0.5, 1.0)  # a noise component's points: grey, no component's colour


def component_colors(k: int) -> np.ndarray:
    """The colours of components in every figure: tab10 (component 0 blue, 1 orange, ...),
    tab20 beyond 10.

    Parameters
    ----------
    k : int
        The number of components.

    Returns
    -------
    (k, 4) RGBA array
    """
    import matplotlib

    name = "tab10" if k <= 10 else "tab20"
    cmap = matplotlib.colormaps[name]
    return np.asarray([cmap(i % cmap.N) for i in range(k)])


def two_component_cmap():
    """Diverging map for P(component 0): orange (component 1) through grey to blue (component
    0). Grey, not white, in the middle, so undecided points stay visible on a white axes."""
    from matplotlib.colors import LinearSegmentedColormap

    colors = component_colors(2)
    return LinearSegmentedColormap.from_list("jaxgmm_two", [colors[1], "#a8a8a8", colors[0]])


def uncertainty_cmap():
    """Light grey (certain) through orange to dark red (as uncertain as K components allow):
    certain points recede without vanishing on a white axes."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "jaxgmm_uncertainty", ["#c8c8c8", "#fdae61", "#d7301f", "#67000d"]
    )


def point_style(n: int) -> dict:
    """Marker size and transparency that keep a few points visible and many readable."""
    size = float(np.clip(4000.0 / n, 3.0, 22.0))
    alpha = float(np.clip(200.0 / n**0.5, 0.35, 0.9))
    return {"s": size, "alpha": alpha, "linewidths": 0, "rasterized": n > 5000}


def model_title(model, what: str, note: str = "") -> str:
    k = model.means_.shape[0]
    noise = f" + noise ({model.noise_weight_:.2f})" if has_noise(model) else ""
    return f"{what}\nK={k}{noise}, {model.covariance_type} covariance" + (
        f"; {note}" if note else ""
    )


def plane_title(title: str, plane: Projection) -> str:
    if plane.projected:
        return f"{title}\nprojection onto the first two principal axes"
    return title


def mark_means(ax: Axes, means: np.ndarray, colors: np.ndarray) -> None:
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


def setup_plane_axes(ax: Axes, plane: Projection, lo, hi) -> None:
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal" if equal_aspect(lo, hi) else "auto", adjustable="box")
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])


def strip_jitter(n: int) -> np.ndarray:
    """Vertical jitter for a strip of 1-D points, the same on every call."""
    return np.random.default_rng(0).uniform(-1.0, 1.0, n)


def probability_colorbar(fig: Figure, ax: Axes, mappable) -> None:
    bar = fig.colorbar(mappable, ax=ax, label="P(component 0 | x)")
    # Name the ends: 1 is surely component 0, 0 surely component 1.
    labels = ["0\ncomp. 1", "0.25", "0.5", "0.75", "1\ncomp. 0"]
    bar.set_ticks([0, 0.25, 0.5, 0.75, 1], labels=labels)


def draw_ellipses(ax: Axes, plane: Projection, colors: np.ndarray, sigmas=SIGMAS) -> None:
    """Each component's ellipses at ``sigmas`` (solid, dashed, dotted) and its mean."""
    from matplotlib.patches import Ellipse

    line_styles = {1: ("-", 2.2), 2: ("--", 1.6), 3: (":", 1.6)}
    for j in range(len(plane.means)):
        for n in sigmas:
            width, height, angle = ellipse_shape(plane.covariances[j], n)
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
