"""mclust's noise component (Banfield & Raftery 1993; Fraley & Raftery 1998): one more
component, uniform over the data's region with density ``1 / V``, that takes the points no
Gaussian explains (reported with the label -1).

EM re-estimates its weight like any other and never its density: V is :func:`hypvol` of the
data, fixed. The Gaussians start from the rows not in an initial noise mask (mclust's
``initialization = list(noise = mask)``); ``noise=True`` draws the mask by
:func:`default_noise_mask`. A fit with noise counts two parameters more (its weight, and V as
mclust counts it).
"""

from __future__ import annotations

import numpy as np

NOISE_LABEL = -1
NOISE_PARAMETERS = 2  # mclust's nMclustParams(..., noise = TRUE): the weight, and V

# The default mask: a row is initial noise when its distance to its NEIGHBOURS-th nearest
# neighbour (standardised data) is above the NOISE_QUANTILE quantile of those distances, the
# neighbours sought among at most MASK_REFERENCE_ROWS rows drawn at random.
NEIGHBOURS = 5
NOISE_QUANTILE = 0.85
MASK_REFERENCE_ROWS = 2000


def has_noise(model) -> bool:
    """Whether a fitted estimator has a noise component (any estimator: one without the
    attribute has none)."""
    return getattr(model, "noise_weight_", None) is not None


def hypvol(X, reciprocal: bool = False) -> float:
    """mclust's ``hypvol(X)``: the volume of the data's region, the smaller of the volume of its
    bounding box and that of the box of its principal components' scores (the centred data
    times the eigenvectors of its covariance). In one dimension, the range. ``reciprocal``:
    ``1 / V``, computed as ``exp(-log V)`` as mclust does (which may differ from
    ``1 / hypvol(X)`` by an ulp)."""
    log_volume = log_hypvol(X)
    return float(np.exp(-log_volume) if reciprocal else np.exp(log_volume))


def log_hypvol(X) -> float:
    """``log hypvol(X)``, in float64 whatever the data's type."""
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(divide="ignore"):  # a flat region: log 0, refused below
        if X.ndim == 1 or X.shape[1] == 1:
            log_volume = float(np.log(np.ptp(X.ravel())))
        else:
            log_box = np.sum(np.log(np.ptp(X, axis=0)))
            centred = X - X.mean(axis=0)
            _, axes = np.linalg.eigh(centred.T @ centred / len(X))
            log_principal_box = np.sum(np.log(np.ptp(centred @ axes, axis=0)))
            log_volume = float(min(log_box, log_principal_box))
    if not np.isfinite(log_volume):
        raise ValueError(
            "a noise component needs data that span a region of positive volume; these lie on "
            "a line or plane (a constant column, or columns that are combinations of others)"
        )
    return log_volume


def default_noise_mask(X, seed: int = 0) -> np.ndarray:
    """``(N,)`` bool: the rows that start as noise when none are given. On the standardised
    data, a row's distance to its ``NEIGHBOURS``-th nearest neighbour (itself excluded) among
    at most ``MASK_REFERENCE_ROWS`` rows (a random subset, drawn with ``seed``, when there are
    more); the rows above the ``NOISE_QUANTILE`` quantile of those distances are noise: the
    points in the sparsest regions. (mclust's documentation suggests ``prabclus::NNclean``,
    a model of these distances; this is the simpler rule.) Costs N x 2000 distances."""
    X = np.asarray(X, dtype=np.float64)
    spread = X.std(axis=0, ddof=1)
    Z = (X - X.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    n = len(Z)
    reference = np.arange(n)
    if n > MASK_REFERENCE_ROWS:
        reference = np.sort(np.random.default_rng(seed).choice(n, MASK_REFERENCE_ROWS, False))
    in_reference = np.zeros(n, bool)
    in_reference[reference] = True
    k = min(NEIGHBOURS, len(reference) - 1)
    distances = np.empty(n)
    for start in range(0, n, 4096):
        rows = slice(start, start + 4096)
        d2 = np.sum(np.square(Z[rows, None, :] - Z[None, reference, :]), axis=2)
        d2.sort(axis=1)
        # a row of the reference set meets itself at distance 0 first
        distances[rows] = np.sqrt(d2[np.arange(d2.shape[0]), k - 1 + in_reference[rows]])
    return distances > np.quantile(distances, NOISE_QUANTILE)


def noise_mask(noise, X, seed: int = 0) -> np.ndarray | None:
    """The initial noise mask that ``noise`` asks for: None for no noise component (None or
    False), :func:`default_noise_mask` for True, or the given ``(N,)`` boolean mask, checked."""
    if noise is None or noise is False:
        return None
    n_samples = X.shape[0]
    if noise is True:
        return default_noise_mask(X, seed)
    mask = np.asarray(noise)
    if mask.shape != (n_samples,) or mask.dtype != bool:
        raise ValueError(
            "noise must be True, False or a boolean mask of the rows that start as noise, of "
            f"shape ({n_samples},); got an array of shape {mask.shape} and type {mask.dtype}"
        )
    if mask.all():
        raise ValueError("the noise mask marks every row: the Gaussians have none to start from")
    return mask
