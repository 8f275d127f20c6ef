"""What TF32 matrix products would cost jaxgmm's float32 fits, emulated on the CPU.

    python -m bench.tf32            # mid-16 (N = 100,000) and its offset copy: ~2 minutes, 2 cores
    python -m bench.tf32 --n 5000   # smaller

An NVIDIA card from Ampere on computes a float32 product at JAX's default precision (jaxgmm's
``matmul_precision="default"`` or ``"high"``) in TF32: each input rounded to a 10-bit mantissa
(from float32's 23), the products summed in float32. This script emulates that on the CPU by
rounding the float32 inputs of every ``dot_general`` jaxgmm traces to 10 bits (round to nearest,
ties to even), and runs the same fixed number of EM iterations from the same start:

* float64 (the reference),
* float32 at full precision (jaxgmm's default, ``matmul_precision="highest"``),
* float32 with emulated TF32,

for the exact and the expanded statistics, on the mid-16 workload (bench/workloads.py, full and
diag covariances) and on the same data moved 100 standard deviations away from the origin along
every feature (jaxgmm centres the data first, so the offset tests that centring, not the
products). Printed: the largest relative error against float64 of the means and of the
covariances (``max |a - b| / max |b|`` over all components).

The figure a GPU run must confirm is the TF32 column; cuBLAS may split or order the sums
differently, but the rounding of the inputs dominates.
"""

from __future__ import annotations

import argparse
import contextlib
import os

os.environ.setdefault("JAXGMM_CACHE_DIR", "")  # emulated programs must not be cached as real

import jax
import jax.numpy as jnp
import numpy as np
from jax._src.lax import lax as lax_internal

import jaxgmm
from jaxgmm import _programs

from .workloads import _perturbed, _sample, _true_mixture, as_covariance_type

ITERATIONS = 20
OFFSET = 100.0


def round_to_tf32(x):
    """float32 values rounded to a 10-bit mantissa, as TF32 keeps them (others unchanged)."""
    if x.dtype != jnp.float32:
        return x
    bits = jax.lax.bitcast_convert_type(x, jnp.uint32)
    dropped = 23 - 10
    half = jnp.uint32((1 << (dropped - 1)) - 1) + ((bits >> dropped) & 1)  # ties to even
    rounded = (bits + half) & jnp.uint32(~((1 << dropped) - 1) & 0xFFFFFFFF)
    return jax.lax.bitcast_convert_type(rounded, jnp.float32)


@contextlib.contextmanager
def emulated_tf32():
    """Every matrix product traced inside rounds its float32 inputs to TF32 first (at the
    ``dot_general`` primitive, which ``@``, ``jnp.einsum`` and ``lax.dot_general`` all bind)."""
    primitive = lax_internal.dot_general_p
    original = primitive.bind

    def bind(lhs, rhs, **params):
        return original(round_to_tf32(lhs), round_to_tf32(rhs), **params)

    primitive.bind = bind
    _programs.clear()
    jax.clear_caches()  # traces made before (jnp.einsum keeps its own)
    try:
        yield
    finally:
        del primitive.bind
        _programs.clear()
        jax.clear_caches()


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def errors(X, init, covariance_type) -> dict[str, tuple[float, float]]:
    """(means, covariances) relative errors against float64, per (mode, statistics)."""
    kwargs = dict(covariance_type=covariance_type, max_iter=ITERATIONS, tol=0.0)
    key = jax.random.key(0)
    with jax.enable_x64(True):
        reference = jaxgmm.fit(key, X, len(init.weights), init=init, statistics="exact", **kwargs)
    init32 = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), init)
    X32 = X.astype(np.float32)
    found = {}
    for mode, context in (("float32", contextlib.nullcontext), ("TF32", emulated_tf32)):
        with context():
            for statistics in ("exact", "expanded"):
                fitted = jaxgmm.fit(
                    key, X32, len(init.weights), init=init32, statistics=statistics, **kwargs
                )
                found[f"{mode} {statistics}"] = (
                    _relative(fitted.params.means, reference.params.means),
                    _relative(fitted.params.covariances, reference.params.covariances),
                )
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="rows (mid-16: 100,000)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(4)  # mid-16's seed
    truth = _true_mixture(rng, 16, 16)
    X = _sample(rng, args.n, *truth)
    weights, means, covariances = _perturbed(rng, *truth)
    print(f"mid-16: N={args.n}, D=16, K=16, {ITERATIONS} EM iterations from the same start")
    print("relative error against float64: means / covariances")
    print("| data | covariance | float32 exact | float32 expanded | TF32 exact | TF32 expanded |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, shift in (("mid-16", 0.0), (f"offset {OFFSET:g} sd", OFFSET)):
        scale = np.sqrt(np.mean(np.var(X, axis=0)))
        Xs = X + shift * scale
        for covariance_type in ("full", "diag"):
            init = jaxgmm.params_from_covariances(
                weights,
                means + shift * scale,
                as_covariance_type(covariances, covariance_type),
                covariance_type=covariance_type,
            )
            found = errors(Xs, init, covariance_type)
            cells = [
                f"{found[k][0]:.1e} / {found[k][1]:.1e}"
                for k in ("float32 exact", "float32 expanded", "TF32 exact", "TF32 expanded")
            ]
            print(f"| {label} | {covariance_type} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
