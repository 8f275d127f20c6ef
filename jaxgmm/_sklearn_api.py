"""scikit-learn's conventions, without importing scikit-learn until it is needed.

``GaussianMixture`` takes from here what makes it a scikit-learn estimator: parameters read from
``__init__`` (``get_params``, ``set_params``, ``clone``, ``repr``, pickling), its tags, its
exceptions, and the helpers that turn scikit-learn's inputs (``random_state``, DataFrame
columns) into jaxgmm's.

scikit-learn takes most of a second to import, more than the rest of jaxgmm but JAX. Its
``NotFittedError`` and ``ConvergenceWarning`` are the classes users catch, so jaxgmm raises
those very classes, looked up when the first one is raised (or when ``jaxgmm.NotFittedError``
is first asked for); without scikit-learn, jaxgmm's own stand-ins.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import numbers
from typing import Any

import jax
import numpy as np


@functools.cache
def _exceptions() -> tuple[type, type]:
    try:
        from sklearn.exceptions import ConvergenceWarning, NotFittedError
    except ImportError:  # pragma: no cover - scikit-learn is a test dependency

        class NotFittedError(ValueError, AttributeError):
            """A method that needs a fitted model was called before ``fit``."""

        class ConvergenceWarning(UserWarning):
            """The chosen restart did not converge within ``max_iter`` iterations."""

    return NotFittedError, ConvergenceWarning


def not_fitted_error() -> type:
    """scikit-learn's ``NotFittedError`` (a ``ValueError`` and an ``AttributeError``)."""
    return _exceptions()[0]


def convergence_warning() -> type:
    """scikit-learn's ``ConvergenceWarning`` (a ``UserWarning``)."""
    return _exceptions()[1]


def feature_names_of(X) -> np.ndarray | None:
    """Column names of a DataFrame-like ``X`` when they are all strings (scikit-learn's rule)."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = list(columns)
    if names and all(isinstance(name, str) for name in names):
        return np.asarray(names, dtype=object)
    return None


def precision_context(dtype: np.dtype):
    """The context in which computations of ``dtype`` run: float64 inside JAX's 64-bit mode."""
    if dtype == np.float64 and not jax.config.jax_enable_x64:
        return jax.enable_x64(True)
    return contextlib.nullcontext()


def key_from(random_state) -> jax.Array:
    """A JAX key from ``None`` (fresh randomness, as scikit-learn), an int, a NumPy generator or
    a JAX key."""
    if isinstance(random_state, jax.Array):
        return random_state
    if random_state is None:
        seed = int(np.random.default_rng().integers(np.iinfo(np.int32).max))
    elif isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        seed = int(random_state)
    elif isinstance(random_state, np.random.RandomState):
        seed = random_state.randint(np.iinfo(np.int32).max)
    elif isinstance(random_state, np.random.Generator):
        seed = int(random_state.integers(np.iinfo(np.int32).max))
    else:
        raise ValueError(
            "random_state must be None, an int, a numpy RandomState/Generator or a JAX key, "
            f"got {random_state!r}"
        )
    if 0 <= seed < 2**32 and jax.config.jax_default_prng_impl == "threefry2x32":
        # jax.random.key(seed)'s bits, without compiling its seeding program (50 ms)
        return jax.random.wrap_key_data(np.array([0, seed], np.uint32))
    return jax.random.key(seed)


def check_number(value, name: str, *, integer: bool, minimum) -> None:
    kind = numbers.Integral if integer else numbers.Real
    if isinstance(value, bool) or not isinstance(value, kind):
        what = "an integer" if integer else "a number"
        raise TypeError(f"{name} must be {what}, got {value!r}")
    if not (math.isfinite(value) and value >= minimum):
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")


def check_learning_rate(learning_offset, learning_decay) -> None:
    """``partial_fit``'s step sizes (``jaxgmm._online``): Robbins-Monro's conditions."""
    check_number(learning_offset, "learning_offset", integer=False, minimum=0.0)
    check_number(learning_decay, "learning_decay", integer=False, minimum=0.0)
    if not 0.5 < learning_decay <= 1.0:
        raise ValueError(f"learning_decay must be in (0.5, 1], got {learning_decay}")


class EstimatorParams:
    """scikit-learn's parameter protocol, read from the subclass's ``__init__`` signature.

    ``devices`` (JAX devices) are shared by a clone, since they cannot be copied, and left out
    of a pickle, since they would mean nothing in another process."""

    @classmethod
    def _get_param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return sorted(name for name in signature.parameters if name != "self")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._get_param_names()}

    def set_params(self, **params):
        valid = self._get_param_names()
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for estimator {type(self).__name__}. "
                    f"Valid parameters are: {valid!r}."
                )
            setattr(self, name, value)
        return self

    def __sklearn_clone__(self):
        params = {
            name: value if name == "devices" else copy.deepcopy(value)
            for name, value in self.get_params().items()
        }
        return type(self)(**params)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "devices": None}

    def __repr__(self) -> str:
        defaults = {
            name: p.default
            for name, p in inspect.signature(type(self).__init__).parameters.items()
            if name != "self"
        }
        changed = []
        for name in self._get_param_names():
            value = getattr(self, name)
            default = defaults[name]
            same = value is default or (
                not isinstance(value, np.ndarray | jax.Array) and value == default
            )
            if not same:
                changed.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    def __sklearn_tags__(self):
        from sklearn.utils import InputTags, Tags, TargetTags

        return Tags(
            estimator_type="density_estimator",
            target_tags=TargetTags(required=False),
            input_tags=InputTags(allow_nan=False),
        )
