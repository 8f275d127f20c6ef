"""Saved models: one ``.npz`` of arrays with a JSON metadata entry. No pickle, ever.

Format version 1 holds these entries:

``metadata``             0-d string: JSON with ``format`` ("jaxgmm-model"), ``format_version``,
                         ``jaxgmm_version``, ``covariance_type``, ``dtype``, ``n_components``,
                         ``n_features``, ``feature_names`` (list or null), ``settings`` (the
                         estimator's parameters that are plain values), ``converged``,
                         ``n_iter``, ``lower_bound``, and (optional) ``degenerate`` and
                         ``interrupted``
``weights``              (K,)
``means``                (K, D)
``covariances``          the covariance model's shape
``precisions_cholesky``  the same shape
``lower_bounds``         (n_iter,) the lower-bound trace of the chosen restart
``noise_weight``         () only for a model with a noise component (``jaxgmm._noise``): its
                         weight, which the weights' sum leaves to 1
``noise_log_density``    () and its log density, -log V

A :class:`jaxgmm.BayesianGaussianMixture` adds ``estimator`` ("BayesianGaussianMixture") and
``priors`` (its ``weight_concentration_prior_``, ``mean_precision_prior_`` and
``degrees_of_freedom_prior_``) to the metadata, and these entries (``VARIATIONAL``): its
``weight_concentration`` ((2, K) for the Dirichlet process's sticks, else (K,)),
``mean_precision``, ``degrees_of_freedom``, ``mean_prior`` and ``covariance_prior``.

Files are written atomically (a temporary file in the same folder, then a rename), so a crash
never leaves half a model behind. Reading checks everything and names the file and the problem;
:func:`jaxgmm.load` turns what is read into a fitted estimator.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ._covariance import covariance_unit
from ._files import atomic_write_bytes
from ._validation import check_mixture

FORMAT = "jaxgmm-model"
FORMAT_VERSION = 1
PARAMETERS = ("weights", "means", "covariances", "precisions_cholesky")
_ARRAYS = (*PARAMETERS, "lower_bounds")
NOISE = ("noise_weight", "noise_log_density")
VARIATIONAL = (
    "weight_concentration",
    "mean_precision",
    "degrees_of_freedom",
    "mean_prior",
    "covariance_prior",
)
PRIORS = ("weight_concentration_prior", "mean_precision_prior", "degrees_of_freedom_prior")


class ModelFileError(ValueError):
    """A saved model that cannot be read or is not valid; the message names the file."""


def _plain(value):
    """JSON-safe settings only: numbers, strings, booleans, None (arrays and keys are left out)."""
    return value if isinstance(value, bool | int | float | str | type(None)) else None


def write(model, path) -> None:
    """Save a fitted estimator's parameters, trace and settings to ``path``, atomically."""
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
        "degenerate": bool(model.restarts_.degenerate[model.best_restart_]),
        "interrupted": bool(model.interrupted_),
    }
    variational = {}
    if hasattr(model, "weight_concentration_"):
        metadata["estimator"] = type(model).__name__
        metadata["priors"] = {name: float(getattr(model, name + "_")) for name in PRIORS}
        variational = {
            name: np.asarray(np.stack(value) if isinstance(value, tuple) else value)
            for name in VARIATIONAL
            for value in [getattr(model, name + "_")]
        }
    buffer = io.BytesIO()
    np.savez(
        buffer,
        metadata=np.asarray(json.dumps(metadata)),
        **{name: np.asarray(getattr(model, name + "_")) for name in _ARRAYS},
        **_noise_arrays(model),
        **variational,
    )
    atomic_write_bytes(path, buffer.getvalue())


def _noise_arrays(model) -> dict[str, np.ndarray]:
    """A noise component's entries (none for a model without one), in the model's dtype."""
    if getattr(model, "noise_weight_", None) is None:
        return {}
    dtype = model.means_.dtype
    return {
        "noise_weight": np.asarray(model.noise_weight_, dtype),
        "noise_log_density": np.asarray(model.noise_log_density_, dtype),
    }


def _not_a_zip(path: Path) -> str | None:
    """Why the file cannot be a saved model (an .npz is a zip archive), or None if it may be."""
    with open(path, "rb") as file:
        head = file.read(512)
    if head.startswith(b"PK"):
        return None
    if head.startswith(b"\x93NUMPY"):
        return "it is a NumPy .npy array"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        return "it is in another binary format"
    return "it is text" if head.strip() else "it is empty"


def _entries(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, not a saved model")
    try:
        reason = _not_a_zip(path)
    except PermissionError:
        raise ModelFileError(f"{path}: permission denied") from None
    if reason is not None:
        raise ModelFileError(
            f"{path}: not a readable jaxgmm model ({reason}; a saved model is an .npz archive)"
        )
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


def read(path) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and arrays of a saved model, checked: a missing, corrupt or truncated file,
    a missing entry, a newer format version, or parameters that are not a valid mixture raise
    :class:`ModelFileError` naming the file and the problem. An older version warns."""
    path = Path(path)
    metadata, arrays = _entries(path)
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
            stacklevel=3,
        )
    for key in ("covariance_type", "n_components", "n_features", "settings"):
        if key not in metadata:
            raise ModelFileError(f"{path}: metadata lacks '{key}'")
    for name in _ARRAYS:
        if name not in arrays:
            raise ModelFileError(f"{path}: missing the '{name}' entry")
        if arrays[name].dtype.kind != "f":
            raise ModelFileError(f"{path}: '{name}' is not floating point")
    if metadata.get("estimator") == "BayesianGaussianMixture":
        priors = metadata.get("priors")
        if not isinstance(priors, dict) or any(
            not isinstance(priors.get(name), int | float) for name in PRIORS
        ):
            raise ModelFileError(f"{path}: metadata lacks the Bayesian model's 'priors'")
        for name in VARIATIONAL:
            if name not in arrays:
                raise ModelFileError(f"{path}: missing the '{name}' entry")
            if not np.all(np.isfinite(arrays[name])):
                raise ModelFileError(f"{path}: '{name}' is not finite")
    noise = [name for name in NOISE if name in arrays]
    if noise and len(noise) < len(NOISE):
        raise ModelFileError(f"{path}: has {noise[0]!r} but not the rest of the noise component")
    for name in noise:
        if arrays[name].shape != () or not np.isfinite(arrays[name]):
            raise ModelFileError(f"{path}: '{name}' is not one finite number")
    try:
        check_mixture(
            {name: arrays[name] for name in PARAMETERS},
            noise_weight=arrays["noise_weight"] if noise else None,
            unit=covariance_unit(metadata["covariance_type"]),
            n_components=int(metadata["n_components"]),
            n_features=int(metadata["n_features"]),
        )
    except ValueError as error:
        raise ModelFileError(f"{path}: {error}") from None
    return metadata, arrays
