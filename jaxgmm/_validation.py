"""Checks on the host, before anything is compiled: each error names the problem and the fix."""

from __future__ import annotations

import numbers

import jax
import jax.numpy as jnp
import numpy as np

from ._covariance import covariance_unit
from ._params import GMMParams


def is_traced(*trees) -> bool:
    """True when any leaf is a JAX tracer (we are inside jit, vmap, grad...)."""
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(trees))


def to_device(value, dtype) -> jax.Array:
    """``value`` as a JAX array of ``dtype``. Host data go through ``device_put``, which, unlike
    ``jnp.asarray``, compiles nothing, whatever the shape."""
    if isinstance(value, jax.Array | jax.core.Tracer):
        return value.astype(dtype)
    return jax.device_put(np.asarray(value, dtype=dtype))


@jax.jit
def _all_finite(X: jax.Array) -> jax.Array:
    # jitted, so that the check reads X without an (N, D) temporary (eagerly it holds one)
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


def _first_non_finite(values: np.ndarray, name: str) -> None:
    bad = ~np.isfinite(values)
    count = int(bad.sum())
    if count:
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        position = f"row {where[0]}, column {where[1]}" if len(where) == 2 else f"index {where}"
        raise ValueError(
            f"{name} contains {count} non-finite value{'s' * (count > 1)} (NaN or inf); "
            f"the first is at {position} (0-based)"
        )


def checked_array(X, name: str = "X", *, min_samples: int = 2, wide: bool = False):
    """``X`` (array, list, DataFrame or JAX array) checked to be a finite 2-D numeric array with
    at least ``min_samples`` rows. Returns it, as a NumPy array cast to its computation dtype or
    the JAX array it was, and that dtype."""
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
        if not bool(_all_finite(X)):
            _first_non_finite(np.asarray(X), name)
        return X, dtype
    X = X.astype(dtype, copy=False)
    _first_non_finite(X, name)
    return X, dtype


def as_data(X, name: str = "X", *, min_samples: int = 2) -> jax.Array:
    """``X`` as a finite 2-D floating JAX array with at least ``min_samples`` rows."""
    X, dtype = checked_array(X, name, min_samples=min_samples)
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


def check_params(
    params: GMMParams,
    *,
    n_components: int,
    n_features: int,
    covariance_type: str,
    dtype,
    batch: int | None = None,
    name: str = "init",
) -> GMMParams:
    """Shapes (optionally with a leading ``batch`` axis), finiteness and weights of user
    parameters; returns them cast to ``dtype``."""
    if not isinstance(params, GMMParams):
        raise TypeError(f"{name} must be a GMMParams, got {type(params).__name__}")
    unit = covariance_unit(covariance_type)
    expected = {
        "weights": (n_components,),
        "means": (n_components, n_features),
        "covariances": unit.shape(n_components, n_features),
        "precisions_cholesky": unit.shape(n_components, n_features),
    }
    fields = {}
    for field, shape in expected.items():
        value = getattr(params, field)
        allowed = [shape] if batch is None else [shape, (batch, *shape)]
        if tuple(np.shape(value)) not in allowed:
            raise ValueError(
                f"{name}.{field} must have shape {shape} for {n_components} components, "
                f"{n_features} features and covariance_type={covariance_type!r}, "
                f"got {tuple(np.shape(value))}"
            )
        fields[field] = to_device(value, dtype)
    if is_traced(params):
        return GMMParams(**fields)
    for field, value in fields.items():
        _first_non_finite(np.asarray(value).reshape(-1, 1), f"{name}.{field}")
    weights = np.asarray(fields["weights"], dtype=np.float64)
    if np.any(weights < 0) or not np.allclose(weights.sum(axis=-1), 1.0, rtol=0, atol=1e-5):
        raise ValueError(f"{name}.weights must be non-negative and sum to 1, got {weights}")
    return GMMParams(**fields)
