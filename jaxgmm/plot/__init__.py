"""Plots of a fitted :class:`jaxgmm.GaussianMixture`, of a :class:`jaxgmm.SelectionResult` and
of bootstrap results (:class:`jaxgmm.BootstrapResult`, :class:`jaxgmm.BootstrapLRTResult`).

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
import os
import sys
from typing import TYPE_CHECKING

from ._bootstrap_figures import bootstrap, bootstrap_lrt
from ._geometry import MAX_POINTS, Projection, full_covariances, mixture_log_density, project
from ._model_figures import ellipses, responsibilities, uncertainty, weights_posterior
from ._run_figures import exercises, lower_bound_trace, selection
from ._style import DPI, FIGSIZE, GRID_SIZE, SIGMAS, component_colors

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "DPI",
    "MAX_POINTS",
    "FIGSIZE",
    "GRID_SIZE",
    "Projection",
    "SIGMAS",
    "bootstrap",
    "bootstrap_lrt",
    "component_colors",
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
    "weights_posterior",
]


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
    from .._files import atomic_write_bytes

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi if dpi is not None else "figure")
    atomic_write_bytes(path, buffer.getvalue())
    # A figure made through pyplot stays registered there until closed; ours never are.
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close(fig)
