"""Saved models: one ``.npz`` of arrays with a JSON metadata entry. No pickle, ever.

Format version 1 holds these entries:

``metadata``             0-d string: JSON with ``format`` ("jaxgmm-model"), ``format_version``,
                         ``jaxgmm_version``, ``covariance_type``, ``dtype``, ``n_components``,
                         ``n_features``, ``feature_names`` (list or null), ``settings`` (the
                         estimator's parameters that are plain values), ``converged``,
                         ``n_iter``, ``lower_bound``
``weights``              (K,)
``means``                (K, D)
``covariances``          scikit-learn's shape for the covariance type
``precisions_cholesky``  the same shape
``lower_bounds``         (n_iter,) the lower-bound trace of the chosen restart

Files are written atomically (a temporary file in the same folder, then a rename), so a crash
never leaves half a model behind. Loading checks everything and names the file and the problem.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._covariance import covariance_unit
from ._io_data import atomic_write_bytes

FORMAT = "jaxgmm-model"
FORMAT_VERSION = 1
_ARRAYS = ("weights", "means", "covariances", "precisions_cholesky", "lower_bounds")


class ModelFileError(ValueError):
    """A saved model that cannot be read or is not valid; the message names the file."""


def _plain(value):
    """JSON-safe settings only: numbers, strings, booleans, None (arrays and keys are left out)."""
    return value if isinstance(value, bool | int | float | str | type(None)) else None


def save_model(model, path) -> None:
    from . import __version__

    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "jaxgmm_version": __version__,
        "covariance_type": model.covariance_type,
        "dtype": str(model.means_.dtype),
        "n_components": int(model.means_.shape[0]),
        "n_features": int(model.means_.shape[1]),
        "feature_names": (
            None
            if getattr(model, "feature_names_in_", None) is None
            else [str(n) for n in model.feature_names_in_]
        ),
        "settings": {k: _plain(v) for k, v in model.get_params().items()},
        "converged": bool(model.converged_),
        "n_iter": int(model.n_iter_),
        "lower_bound": float(model.lower_bound_),
    }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        metadata=np.asarray(json.dumps(metadata)),
        **{name: np.asarray(getattr(model, name + "_")) for name in _ARRAYS},
    )
    atomic_write_bytes(path, buffer.getvalue())


def _read(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, not a saved model")
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {name: archive[name] for name in archive.files}
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
        raise ModelFileError(
            f"{path}: not a readable jaxgmm model (corrupt or truncated file: {error})"
        ) from None
    if "metadata" not in entries:
        raise ModelFileError(f"{path}: missing the 'metadata' entry; not a jaxgmm model")
    try:
        metadata = json.loads(str(entries.pop("metadata")))
    except json.JSONDecodeError as error:
        raise ModelFileError(f"{path}: metadata is not valid JSON ({error})") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a jaxgmm model (format is not {FORMAT!r})")
    return metadata, entries


def _precisions(prec_chol: np.ndarray, covariance_type: str) -> np.ndarray:
    """Precisions from their factor, in NumPy (JAX would cut float64 to float32 here)."""
    if covariance_type in ("full", "tied"):
        return prec_chol @ np.swapaxes(prec_chol, -1, -2)
    return np.square(prec_chol)


def _check_params(path: Path, metadata: dict, arrays: dict[str, np.ndarray]) -> None:
    try:
        unit = covariance_unit(metadata["covariance_type"])
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    k, d = int(metadata["n_components"]), int(metadata["n_features"])
    expected = {
        "weights": (k,),
        "means": (k, d),
        "covariances": unit.shape(k, d),
        "precisions_cholesky": unit.shape(k, d),
    }
    for name, shape in expected.items():
        if arrays[name].shape != shape:
            raise ModelFileError(
                f"{path}: '{name}' has shape {arrays[name].shape}, expected {shape}"
            )
        if arrays[name].dtype.kind != "f":
            raise ModelFileError(f"{path}: '{name}' is not floating point")
        if not np.all(np.isfinite(arrays[name])):
            raise ModelFileError(f"{path}: '{name}' contains non-finite values")
    weights = arrays["weights"].astype(np.float64)
    if np.any(weights < 0) or abs(weights.sum() - 1.0) > 1e-5:
        raise ModelFileError(
            f"{path}: weights must be non-negative and sum to 1 (they sum to {weights.sum():.8g})"
        )
    cov = arrays["covariances"].astype(np.float64)
    if metadata["covariance_type"] in ("full", "tied"):
        matrices = cov.reshape(-1, d, d)
        asymmetric = np.abs(matrices - np.swapaxes(matrices, 1, 2)).max()
        if (
            asymmetric > 1e-6 * np.abs(matrices).max()
            or np.linalg.eigvalsh(matrices)[:, 0].min() <= 0
        ):
            raise ModelFileError(f"{path}: covariances are not symmetric positive definite")
    elif np.any(cov <= 0):
        raise ModelFileError(f"{path}: covariances are not positive")
    # the stored factor must be the one of the stored covariances
    precisions = _precisions(
        arrays["precisions_cholesky"].astype(np.float64), metadata["covariance_type"]
    )
    if metadata["covariance_type"] in ("full", "tied"):
        product = cov.reshape(-1, d, d) @ precisions.reshape(-1, d, d)
        mismatch = np.abs(product - np.eye(d)).max()
    else:
        mismatch = np.abs(cov * precisions - 1.0).max()
    tolerance = 1e-3 if arrays["means"].dtype == np.float32 else 1e-7
    if mismatch > tolerance:
        raise ModelFileError(f"{path}: precisions_cholesky does not match the covariances")


def load(path):
    """Read a model written by ``GaussianMixture.save``; returns a fitted ``GaussianMixture``.

    Raises :class:`ModelFileError` naming the file and the problem for a missing, corrupt or
    truncated file, a missing entry, a newer format version, or parameters that are not a valid
    mixture (non-finite, weights not summing to 1, covariances not symmetric positive definite).
    An older format version loads with a warning.
    """
    from .estimator import GaussianMixture  # here: the estimator module imports this one

    path = Path(path)
    metadata, arrays = _read(path)
    version = metadata.get("format_version")
    if not isinstance(version, int):
        raise ModelFileError(f"{path}: metadata has no integer 'format_version'")
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{path}: written in model format version {version} by a newer jaxgmm; this "
            f"jaxgmm reads versions up to {FORMAT_VERSION}. Upgrade jaxgmm to load it."
        )
    if version < FORMAT_VERSION:
        warnings.warn(
            f"{path}: model format version {version} is older than the current "
            f"{FORMAT_VERSION}; loaded, but re-save it to upgrade",
            UserWarning,
            stacklevel=2,
        )
    for key in ("covariance_type", "n_components", "n_features", "settings"):
        if key not in metadata:
            raise ModelFileError(f"{path}: metadata lacks '{key}'")
    for name in _ARRAYS:
        if name not in arrays:
            raise ModelFileError(f"{path}: missing the '{name}' entry")
    _check_params(path, metadata, arrays)

    defaults = GaussianMixture().get_params()
    settings = {k: v for k, v in metadata["settings"].items() if k in defaults and v is not None}
    model = GaussianMixture(**settings)
    model.weights_ = arrays["weights"]
    model.means_ = arrays["means"]
    model.covariances_ = arrays["covariances"]
    model.precisions_cholesky_ = arrays["precisions_cholesky"]
    model.precisions_ = _precisions(arrays["precisions_cholesky"], metadata["covariance_type"])
    model.lower_bounds_ = arrays["lower_bounds"]
    model.converged_ = bool(metadata.get("converged", False))
    model.n_iter_ = int(metadata.get("n_iter", len(arrays["lower_bounds"])))
    model.lower_bound_ = float(metadata.get("lower_bound", np.nan))
    model.n_features_in_ = int(metadata["n_features"])
    if metadata.get("feature_names"):
        model.feature_names_in_ = np.asarray(metadata["feature_names"], dtype=object)
    return model
