"""Where things go on a plot: dense covariances, the plane of a projection, densities, limits,
and the plumbing that reads a model and its data for the figures. No matplotlib at import."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .._covariance import covariance_unit

if TYPE_CHECKING:
    from ..estimator import GaussianMixture


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
    check_fitted(model)
    k, d = model.means_.shape
    return covariance_unit(model.covariance_type).dense(model.covariances_, k, d)


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
    X = checked_data(model, X)
    d = X.shape[1]
    if d < 2:
        raise ValueError("a plane needs at least two features; X has one")
    if d == 2:
        origin, basis, explained = np.zeros(2), np.eye(2), None
        labels = tuple(feature_names(model, 2))
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


def ellipse_shape(cov: np.ndarray, n_sigma: float) -> tuple[float, float, float]:
    """Width, height and angle (degrees) of the ellipse at Mahalanobis distance ``n_sigma``."""
    values, vectors = np.linalg.eigh(cov)
    values = np.clip(values, 0.0, None)
    major = vectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    return 2 * n_sigma * math.sqrt(values[1]), 2 * n_sigma * math.sqrt(values[0]), angle


def check_fitted(model) -> None:
    if not hasattr(model, "weights_"):
        from .._sklearn_api import not_fitted_error

        raise not_fitted_error()("the model is not fitted yet; call fit before plotting it")


# Figures draw at most this many points: two million drew solid blobs in two minutes. The
# density, the ellipses and the model's own curves are drawn whole.
MAX_POINTS = 20_000


def drawn_points(model: GaussianMixture, X) -> tuple[np.ndarray, str]:
    """The points a figure draws (:func:`checked_data`), and a note for its title when some
    are imputed or they are a sample: a random (seeded, so the same every time)
    ``MAX_POINTS`` of them."""
    raw = np.asarray(X, dtype=np.float64)
    incomplete = int(np.isnan(raw).any(axis=-1).sum()) if raw.ndim == 2 else 0
    X = checked_data(model, X)
    notes = [f"{incomplete} rows with missing values at their imputed means"] * bool(incomplete)
    if len(X) > MAX_POINTS:
        rows = np.sort(np.random.default_rng(0).choice(len(X), MAX_POINTS, replace=False))
        X = X[rows]
        notes.append(f"points: a random {MAX_POINTS:,} of {len(raw):,}")
    return X, "; ".join(notes)


def checked_data(model: GaussianMixture, X) -> np.ndarray:
    """``X`` as a finite float64 (N, D) array with the model's number of features; for a model
    fitted with ``missing="em"``, its missing values (NaN) filled with their conditional means
    (``model.impute``), so that a row with holes is drawn where the model expects it."""
    check_fitted(model)
    d = model.means_.shape[1]
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1 and d == 1:
        X = X[:, None]
    if X.ndim != 2 or X.shape[1] != d:
        raise ValueError(f"X must have shape (N, {d}) for this model, got {X.shape}")
    if len(X) == 0:
        raise ValueError("X has no samples")
    if getattr(model, "missing", "error") == "em" and np.isnan(X).any():
        X = call_quietly(model.impute, X, model.means_.dtype)
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains non-finite values (NaN or inf)")
    return X


def call_quietly(method, X: np.ndarray, dtype) -> np.ndarray:
    """A model method on plain arrays (the grid, or X already converted), without the warning
    about missing feature names that a model fitted on a DataFrame would give."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
        return np.asarray(method(np.asarray(X, dtype=dtype)), dtype=np.float64)


def feature_names(model, d: int) -> list[str]:
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) == d:
        return [str(name) for name in names]
    return ["x"] if d == 1 else [f"x{i + 1}" for i in range(d)]


def probabilities_of(model, X: np.ndarray) -> np.ndarray:
    return call_quietly(model.predict_proba, X, model.means_.dtype)


def one_d_grid(model, X: np.ndarray, n: int = 400) -> np.ndarray:
    """A grid over the data and 3 standard deviations around every mean."""
    sd = np.sqrt(full_covariances(model)[:, 0, 0])
    means = np.asarray(model.means_, np.float64)[:, 0]
    lo = min(X.min(), (means - 3 * sd).min())
    hi = max(X.max(), (means + 3 * sd).max())
    return np.linspace(lo, hi, n)


def plane_limits(points: np.ndarray, extra: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, ...]:
    """Axis limits covering ``points`` and any ``extra`` (n, 2) corners, with a 5% margin."""
    stacked = np.concatenate([points, *extra]) if extra else points
    lo, hi = stacked.min(axis=0), stacked.max(axis=0)
    pad = 0.05 * np.maximum(hi - lo, 1e-12) + (hi == lo)
    return lo - pad, hi + pad


def density_levels(log_density: np.ndarray, at_data: np.ndarray) -> np.ndarray:
    """Contour levels from a little below nearly all the data up to the peak: below that the
    contours crowd the corners without telling anything about the data."""
    from matplotlib.ticker import MaxNLocator

    top = float(np.max(log_density))
    # A quantile, not the minimum: one outlier far in the tail would stretch the scale.
    bottom = min(float(np.quantile(at_data, 0.01)) - 1.0, top - 1.0)
    # Round numbers on the colorbar; the locator's last value lies at or above the peak.
    return MaxNLocator(nbins=10).tick_values(bottom, top)
