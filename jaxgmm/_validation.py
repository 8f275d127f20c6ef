"""Checks on the host, before anything is compiled: each error names the problem and the fix."""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from ._params import GMMParams, Noise
from ._programs import program


def is_traced(*trees) -> bool:
    """True when any leaf is a JAX tracer (we are inside jit, vmap, grad...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def to_device(value, dtype) -> jax.Array:
    """``value`` as a JAX array of ``dtype``. Host data go through ``device_put``, which, unlike
    ``jnp.asarray``, compiles nothing, whatever the shape."""
    if isinstance(value, jax.Array | jax.core.Tracer):
        return value.astype(dtype)
    return jax.device_put(np.asarray(value, dtype=dtype))


@program()
def _all_finite(X: jax.Array) -> jax.Array:
    # compiled, so that the check reads X without an (N, D) temporary (eagerly it holds one),
    # and kept on disk: jitted only, it compiled in every new process (50 ms)
    return jnp.all(jnp.isfinite(X))


def x64_enabled() -> bool:
    return bool(jax.config.jax_enable_x64)


def float_dtype(dtype, name: str = "X", *, wide: bool = False) -> np.dtype:
    """The floating dtype a numeric input of ``dtype`` is computed in, or a clear error.

    ``wide=False`` (the functional core): integers become JAX's default float, and float64 needs
    JAX's 64-bit mode. ``wide=True`` (the estimator, which enters the 64-bit context itself):
    integers become float64 and float64 stays float64, as in scikit-learn.
    """
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise ValueError(f"{name} is boolean; convert it to floating point first")
    if dtype.kind == "c":
        raise ValueError(f"Complex data not supported: {name} must be real-valued")
    if dtype.kind in "iu":
        return np.dtype(np.float64 if wide or x64_enabled() else np.float32)
    if dtype.kind != "f":
        raise ValueError(f"{name} has dtype {dtype}, which is not numeric")
    if dtype.itemsize < 4:
        return np.dtype(np.float32)
    if dtype == np.float64 and not (wide or x64_enabled()):
        raise ValueError(
            f"{name} is float64 but JAX's 64-bit mode is off, so it would be cut to float32 "
            f"silently. Pass float32 data ({name}.astype(numpy.float32)) or enable 64-bit mode "
            "with jax.config.update('jax_enable_x64', True) or `with jax.enable_x64(True):`"
        )
    return dtype


MISSING_ADVICE = (
    'to fit with values missing at random, pass missing="em" (NaN marks them; --missing em '
    "on the command line)"
)


def _first_non_finite(values: np.ndarray, name: str, missing: bool = False) -> None:
    """Raise for NaN or inf (for inf only when ``missing``: NaN marks a missing value), naming
    the first; a data matrix's message for NaN says how to fit with missing values."""
    bad = np.isinf(values) if missing else ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        position = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"index {where}"
        what = "infinite" if missing else "non-finite"
        kinds = "inf; NaN marks a missing value, inf does not" if missing else "NaN or inf"
        advice = f"; {MISSING_ADVICE}" if values.ndim == 2 and not missing else ""
        raise ValueError(
            f"{name} contains {count} {what} value{'s' * (count > 1)} ({kinds}); "
            f"the first is at {position} (0-based){advice}"
        )


def checked_array(
    X, name: str = "X", *, min_samples: int = 2, wide: bool = False, missing: bool = False
):
    """``X`` (array, list, DataFrame or JAX array) checked to be a finite 2-D numeric array with
    at least ``min_samples`` rows (with ``missing``, NaN allowed as missing values, but not a
    column of them). Returns it, as a NumPy array cast to its computation dtype or the JAX
    array it was, and that dtype."""
    if hasattr(X, "toarray") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name} is sparse; pass dense data ({name}.toarray())")
    if not isinstance(X, jax.Array):
        try:
            X = np.asarray(X)
        except (ValueError, TypeError) as error:
            raise ValueError(f"{name} could not be read as a numeric array: {error}") from None
        if X.dtype.kind == "O":
            try:
                X = X.astype(np.float64)
            except (ValueError, TypeError) as error:
                raise type(error)(f"{name} holds values that are not numbers: {error}") from None
    if X.dtype.kind in "SUV":
        raise ValueError(f"{name} holds strings (dtype {X.dtype}), not numbers")
    dtype = float_dtype(X.dtype, name, wide=wide)
    if X.ndim != 2:
        hint = (
            ". Reshape your data: X.reshape(-1, 1) for one feature, X.reshape(1, -1) for one sample"
            if X.ndim == 1
            else ""
        )
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features), got {X.ndim}-D with shape "
            f"{tuple(X.shape)}{hint}"
        )
    n_samples, n_features = X.shape
    if n_features == 0:
        raise ValueError(
            f"Found array with 0 feature(s) (shape={tuple(X.shape)}) while a minimum of 1 is "
            f"required: {name} needs at least one column"
        )
    if n_samples < min_samples:
        raise ValueError(
            f"{name} has {n_samples} sample{'s' * (n_samples != 1)}; "
            f"at least {min_samples} {'is' if min_samples == 1 else 'are'} needed"
        )
    if isinstance(X, jax.Array):
        if missing or not bool(_all_finite(X)):
            _first_non_finite(np.asarray(X), name, missing)
        return X, dtype
    X = X.astype(dtype, copy=False)
    _first_non_finite(X, name, missing)
    _check_range(X, name, missing)
    return X, dtype


def _check_range(X: np.ndarray, name: str, missing: bool) -> None:
    """Values so far apart that their squares, summed over the samples, overflow the dtype
    (above about 1e154 apart for float64, 1e19 for float32, fewer with many samples): every
    variance would be infinite, and the fit would end in failed restarts for no visible reason.
    ``missing``: NaN may be among the values (else all are finite, checked before)."""
    if X.size == 0:
        return
    limit = np.sqrt(np.finfo(X.dtype).max / max(X.shape[0], 1)) / 16
    # NumPy's column-wise and NaN-aware reductions are slow (6 ms of a 40 ms fit of 1e5 x 2):
    # no column spans more than the whole array, whose span a flat reduction gives in 0.1 ms
    with warnings.catch_warnings():  # inf - inf, or columns of NaN only: judged below
        warnings.simplefilter("ignore", RuntimeWarning)
        if not missing and X.max() - X.min() <= limit:
            return
        span = np.nan_to_num(np.nanmax(X, axis=0) - np.nanmin(X, axis=0))
    if span.max() > limit:
        j = int(span.argmax())
        scale = 10.0 ** np.floor(np.log10(span[j]))
        raise ValueError(
            f"{name} spans {span[j]:.3g} in column {j}: squares of values that far apart "
            f"overflow {X.dtype} (above about {limit:.0e}); rescale the data, for instance "
            f"divide it by {scale:.0e}"
        )


def as_data(X, name: str = "X", *, min_samples: int = 2, missing: bool = False) -> jax.Array:
    """``X`` as a finite 2-D floating JAX array with at least ``min_samples`` rows (NaN
    allowed as missing values with ``missing``)."""
    X, dtype = checked_array(X, name, min_samples=min_samples, missing=missing)
    return to_device(X, dtype)


def as_sample_weight(sample_weight, n_samples: int, dtype) -> jax.Array | None:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype.kind not in "iuf" or w.dtype.kind == "b":
        raise ValueError(f"sample_weight must be numeric, got dtype {w.dtype}")
    if w.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},) to match X, got {tuple(w.shape)}"
        )
    _first_non_finite(w.astype(np.float64), "sample_weight")
    if np.any(w < 0):
        raise ValueError(f"sample_weight has {int(np.sum(w < 0))} negative values")
    if not np.sum(w) > 0:
        raise ValueError("sample_weight sums to zero; at least one sample needs weight")
    return to_device(w, dtype)


def check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_float(value, name: str, minimum: float = 0.0):
    """A finite number >= ``minimum``; a JAX tracer passes through unchecked."""
    if is_traced(value):
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real | np.ndarray | jax.Array):
        raise TypeError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < minimum:
        raise ValueError(f"{name} must be a finite number >= {minimum}, got {value!r}")
    return number


def _check_shape(kind, name, shape, unit, n_components, n_features, batch) -> None:
    expected = {
        "weights": (n_components,),
        "means": (n_components, n_features),
    }.get(kind) or unit.shape(n_components, n_features)
    allowed = [expected] if batch is None else [expected, (batch, *expected)]
    if tuple(shape) not in allowed:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {expected}, but got "
            f"{tuple(shape)} ({n_components} components, {n_features} features, "
            f"covariance_type={unit.name!r})"
        )


def check_mixture(
    arrays: dict,
    *,
    unit,
    n_components: int,
    n_features: int,
    batch: int | None = None,
    names: dict[str, str] | None = None,
    noise_weight=None,
) -> dict[str, np.ndarray]:
    """The one check of mixture parameters, on the host: given, loaded or initial.

    ``arrays`` holds any of ``weights``, ``means``, ``covariances``, ``precisions`` and
    ``precisions_cholesky``; each must have its shape for the model (with a leading ``batch``
    axis allowed when ``batch`` is given) and be finite; weights must lie in [0, 1] and sum to
    1, covariances and precisions must be valid for the model (``unit.check``), and a factor
    given with covariances must be theirs. Errors name each array as ``names`` says (by default
    its own name), in scikit-learn's words. With a noise component, the weights sum to 1 less
    its ``noise_weight`` (in [0, 1]). Returns the arrays as NumPy arrays."""
    names = names or {}
    noise = 0.0
    if noise_weight is not None:
        noise = np.asarray(noise_weight, np.float64)
        if noise.shape not in ((), (batch,)) or not np.all((noise >= 0) & (noise <= 1)):
            raise ValueError(
                f"The noise component's weight should be a number in [0, 1] (one per restart), "
                f"got {noise_weight!r}"
            )
    checked = {}
    for kind, value in arrays.items():
        name = names.get(kind, kind)
        value = np.asarray(value)
        if value.dtype.kind not in "fiu":
            raise ValueError(f"The parameter '{name}' should be numeric, got dtype {value.dtype}")
        _check_shape(kind, name, value.shape, unit, n_components, n_features, batch)
        if not np.all(np.isfinite(value)):
            raise ValueError(f"The parameter '{name}' contains non-finite values (NaN or inf)")
        if kind == "weights":
            w = value.astype(np.float64)
            if np.any(w < 0) or np.any(w > 1):
                raise ValueError(
                    f"The parameter '{name}' should be in the range [0, 1], but got min value "
                    f"{w.min():.5f}, max value {w.max():.5f}"
                )
            total = w.sum(axis=-1) + noise
            if not np.allclose(total, 1.0, rtol=0.0, atol=1e-5):
                shown = ", ".join(f"{t:.5f}" for t in np.ravel(total))
                raise ValueError(
                    f"The parameter '{name}' should be normalized, but got sum({name}) = {shown}"
                    + ("" if noise_weight is None else " with the noise component's weight")
                )
        elif kind in ("covariances", "precisions"):
            unit.check(value, f"The parameter '{name}'")
        checked[kind] = value
    if "covariances" in checked and "precisions_cholesky" in checked:
        cov = unit.dense(checked["covariances"], n_components, n_features)
        precisions = unit.dense(
            unit.precisions(checked["precisions_cholesky"].astype(np.float64)),
            n_components,
            n_features,
        )
        mismatch = np.abs(cov @ precisions - np.eye(n_features)).max()
        tolerance = 1e-3 if checked["covariances"].dtype == np.float32 else 1e-7
        if mismatch > tolerance:
            name = names.get("precisions_cholesky", "precisions_cholesky")
            raise ValueError(f"The parameter '{name}' does not match the covariances")
    return checked


def check_params(
    params: GMMParams,
    *,
    n_components: int,
    n_features: int,
    unit,
    dtype,
    batch: int | None = None,
    name: str = "init",
) -> GMMParams:
    """User parameters (optionally with a leading ``batch`` axis) checked by
    :func:`check_mixture` and moved to the device in ``dtype``; traced ones are only
    checked for shape."""
    if not isinstance(params, GMMParams):
        raise TypeError(f"{name} must be a GMMParams, got {type(params).__name__}")
    fields = {field: getattr(params, field) for field in GMMParams._fields if field != "noise"}
    noise = params.noise
    if is_traced(params):
        for field, value in fields.items():
            _check_shape(
                field, f"{name}.{field}", np.shape(value), unit, n_components, n_features, batch
            )
    else:
        fields = check_mixture(
            {field: np.asarray(value) for field, value in fields.items()},
            unit=unit,
            n_components=n_components,
            n_features=n_features,
            batch=batch,
            names={field: f"{name}.{field}" for field in fields},
            noise_weight=None if noise is None else noise.weight,
        )
        if noise is not None and not np.all(np.isfinite(noise.log_density)):
            raise ValueError(f"{name}.noise.log_density is not finite")
    return GMMParams(
        **{field: to_device(value, dtype) for field, value in fields.items()},
        noise=None if noise is None else Noise(*(to_device(a, dtype) for a in noise)),
    )
