"""The precision of matrix products: full float32 unless the user chooses otherwise.

JAX's default precision lets an accelerator compute float32 products in a faster, shorter
format: TF32 (10-bit mantissa) on NVIDIA cards from Ampere on, bfloat16 passes on TPUs. On those
devices jaxgmm's float32 covariances, and above all the expanded (raw-moment) statistics, would
lose about three decimal digits while every test on a CPU passes. So every public entry point
traces its programs under ``jax.default_matmul_precision``: each product in them then carries
the precision in the program itself (``tests/test_matmul_precision.py`` checks the lowered
programs), and the compiled-program cache keys on it.

The choices are JAX's names: "highest" (default: full float32), "high" (TF32 on NVIDIA GPUs,
three bfloat16 passes on TPUs) and "default" (the device's fastest: TF32 on NVIDIA GPUs, one
bfloat16 pass on TPUs). On a CPU all three compute the same. float64 products are unaffected.
Factorisations (Cholesky, triangular solves) have no precision setting in JAX; the figures of
what "high" costs are in ``bench/README.md``.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect

import jax

MATMUL_PRECISIONS = ("highest", "high", "default")


def check_matmul_precision(value) -> str:
    if value not in MATMUL_PRECISIONS:
        raise ValueError(f"matmul_precision must be one of {MATMUL_PRECISIONS}, got {value!r}")
    return value


_current: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "jaxgmm_matmul_precision", default=None
)


def current_matmul_precision() -> str:
    """The precision of the running jaxgmm call ("highest" outside one)."""
    return _current.get() or "highest"


@contextlib.contextmanager
def matmul_precision_scope(value: str | None = None):
    """The context in which jaxgmm traces its programs: ``value``, or when None the enclosing
    jaxgmm call's precision, or "highest"."""
    value = current_matmul_precision() if value is None else check_matmul_precision(value)
    token = _current.set(value)
    try:
        with jax.default_matmul_precision(value):
            yield value
    finally:
        _current.reset(token)


def with_matmul_precision(fun):
    """Give ``fun`` a keyword-only ``matmul_precision=None`` (see :func:`matmul_precision_scope`),
    under which it runs."""

    @functools.wraps(fun)
    def wrapper(*args, matmul_precision: str | None = None, **kwargs):
        with matmul_precision_scope(matmul_precision):
            return fun(*args, **kwargs)

    if hasattr(fun, "lower"):  # a jitted function: its lowering too, as jax.jit's

        def lower(*args, matmul_precision: str | None = None, **kwargs):
            with matmul_precision_scope(matmul_precision):
                return fun.lower(*args, **kwargs)

        wrapper.lower = lower
    signature = inspect.signature(fun)
    keyword = inspect.Parameter(
        "matmul_precision", inspect.Parameter.KEYWORD_ONLY, default=None, annotation="str | None"
    )
    parameters = list(signature.parameters.values())
    tail = [p for p in parameters if p.kind == inspect.Parameter.VAR_KEYWORD]
    head = [p for p in parameters if p.kind != inspect.Parameter.VAR_KEYWORD]
    wrapper.__signature__ = signature.replace(parameters=[*head, keyword, *tail])
    wrapper.__doc__ = documented(fun.__doc__)
    return wrapper


PARAMETER_DOC = """\
matmul_precision : {"highest", "high", "default"}, optional
    Precision of float32 matrix products (``jaxgmm._matmul_precision``). None (default)
    means "highest", full float32 on every device; "high" and "default" let NVIDIA GPUs
    use TF32 and TPUs bfloat16 passes: faster, but about three decimal digits less
    accurate (figures in bench/README.md). The same on a CPU; float64 is unaffected."""


def documented(doc: str | None) -> str | None:
    """``doc`` with ``matmul_precision`` last in its numpydoc Parameters section, if it has one:
    the one description of the parameter that every decorated function adds."""
    if not doc or "\n    Parameters\n    ----------\n" not in doc:
        return doc
    lines = doc.split("\n")
    start = lines.index("    Parameters") + 2
    end = next(
        (i for i in range(start, len(lines) - 1) if set(lines[i + 1].strip()) == {"-"}),
        len(lines),
    )
    names = [line for line in lines[start:end] if line.startswith("    ") and line[4] != " "]
    if any("matmul_precision" in line for line in names):  # described with others
        return doc
    while lines[end - 1].strip() == "":  # after the last parameter, before the blank line
        end -= 1
    entry = [f"    {line}" for line in PARAMETER_DOC.split("\n")]
    return "\n".join(lines[:end] + entry + lines[end:])
