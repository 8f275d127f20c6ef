"""Checkpoints of a running fit, so that a long run survives a crash.

A checkpoint is one ``.npz`` (no pickle) written atomically after a chunk of iterations: every
restart's EM state (parameters, last lower bound, iterations, converged, failed), the lower-bound
traces so far, and a JSON entry with the format version and a fingerprint of the data and of
every setting that shapes the result (the key, K, covariance type, restarts, initialisation, tol,
reg_covar, block size, devices). Resuming with other data or settings is refused; ``max_iter``
may differ, so that a finished run can be continued.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from ._files import atomic_write_bytes
from ._params import GMMParams, Noise

FORMAT = "jaxgmm-checkpoint"
FORMAT_VERSION = 2
_STATE_FIELDS = ("lower_bound", "n_iter", "converged", "failed", "model")
_PARAMETERS = ("weights", "means", "covariances", "precisions_cholesky")
_SAMPLE_ROWS = 4096


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


@jax.jit
def _digest(X, sample_weight):
    """Column sums and sums of squares, and a strided sample of rows: cheap on any device, and
    different for any other data set in practice."""
    stride = max(X.shape[0] // _SAMPLE_ROWS, 1)
    parts = [jnp.sum(X, axis=0), jnp.sum(X * X, axis=0), X[::stride].ravel()]
    if sample_weight is not None:
        parts += [jnp.sum(sample_weight, keepdims=True), sample_weight[::stride]]
    return jnp.concatenate(parts)


def fingerprint(X, sample_weight, settings: dict) -> str:
    """A hex digest of the data and of ``settings`` (JSON-able values and arrays)."""
    digest = hashlib.sha256()
    digest.update(json.dumps([list(X.shape), str(X.dtype)]).encode())
    digest.update(np.asarray(_digest(X, sample_weight)).tobytes())
    for name in sorted(settings):
        digest.update(name.encode())
        _add(digest, settings[name])
    return digest.hexdigest()


def _add(digest, value) -> None:
    """Feed a JSON-able value, an array, or a list of them to ``digest``."""
    if isinstance(value, np.ndarray | jax.Array):
        array = np.asarray(value)
        digest.update(json.dumps([list(array.shape), str(array.dtype)]).encode())
        digest.update(array.tobytes())
    elif isinstance(value, list | tuple):
        digest.update(f"[{len(value)}".encode())
        for item in value:
            _add(digest, item)
    else:
        digest.update(json.dumps(value).encode())


def save(path, state, traces: np.ndarray, print_: str) -> None:
    """Write ``state`` (the fit's per-restart state) and ``traces`` atomically."""
    params = state.params
    arrays = {f"params_{name}": np.asarray(getattr(params, name)) for name in _PARAMETERS}
    if params.noise is not None:
        arrays.update(
            {f"noise_{name}": np.asarray(a) for name, a in params.noise._asdict().items()}
        )
    arrays.update({name: np.asarray(getattr(state, name)) for name in _STATE_FIELDS})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "fingerprint": print_}
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.asarray(json.dumps(meta)), traces=traces, **arrays)
    atomic_write_bytes(path, buffer.getvalue())


def load(path, print_: str, state_type):
    """The saved ``(state, traces)``, or None when there is no file at ``path``. Raises
    :class:`CheckpointError` for a file that is corrupt or belongs to another fit."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            entries = {name: archive[name] for name in archive.files}
        meta = json.loads(str(entries["metadata"]))
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise CheckpointError(f"{path}: not a readable jaxgmm checkpoint ({error})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a jaxgmm checkpoint")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {meta.get('format_version')}, this jaxgmm "
            f"writes and reads version {FORMAT_VERSION}"
        )
    if meta.get("fingerprint") != print_:
        raise CheckpointError(
            f"{path}: this checkpoint belongs to another fit (other data or settings); "
            "remove it or give another checkpoint path"
        )
    try:
        noise = None
        if "noise_weight" in entries:
            noise = Noise(*(entries[f"noise_{name}"] for name in Noise._fields))
        params = GMMParams(*(entries[f"params_{name}"] for name in _PARAMETERS), noise=noise)
        state = state_type(params, *(entries[name] for name in _STATE_FIELDS))
        return state, entries["traces"]
    except KeyError as error:
        raise CheckpointError(f"{path}: checkpoint lacks the entry {error}") from None
