"""The one-shot GPU benchmark: everything a lent GPU should tell us, in one run of minutes.

    python -m bench.gpu          # on the GPU machine: at most ~8 minutes
    python -m bench.gpu --tiny   # any machine, tiny sizes: checks the script (a test runs it)

It installs nothing. It prints the device, its driver (``nvidia-smi``, when there is one) and the
versions, then measures, each part under its own time budget (a part that fails or runs out of
time is recorded as such and the run goes on):

1. **gpu-large** (1e7 x 32, K = 64, full covariances, float32; GUIDE section 6): seconds per EM
   iteration at ``matmul_precision="highest"`` and ``"default"`` (TF32 on Ampere and later), and
   each one's relative error of means and covariances against a float64 fit from the same start.
2. **gmmx** on the same data and start, when it can be imported (same iterations, float32).
3. **64 restarts against 1** of the same size (the goal: at most 3 times the time).
4. **the largest N** (x 16 features, K = 16, full, float32) that one fit holds in the device's
   memory, N from 1e6 times 4 until the device refuses (or 2 minutes pass).
5. the fraction of the device's float32 GEMM rate (measured here, as ``bench/machine.py``
   does) that gpu-large reaches, flops counted as ``bench/report.py`` counts them.

Results: ``bench/results/gpu-<device>.json`` and ``.md`` (``--out`` to change the stem).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxgmm

from .machine import describe, gemm_gflops
from .report import iteration_cost
from .workloads import Case, _perturbed, _sample, _true_mixture

SIZES = {
    "full": dict(n=10_000_000, d=32, k=64, iterations=10, restarts=64, largest=(1_000_000, 16)),
    "tiny": dict(n=4_000, d=4, k=4, iterations=3, restarts=4, largest=(2_000, 3)),
}


def _driver() -> str:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or out.stderr.strip()
    except (OSError, subprocess.SubprocessError) as error:
        return f"no nvidia-smi ({error.__class__.__name__})"


def _data(n, d, k, dtype=np.float32, seed=8):
    """gpu-large's data and start (bench/workloads.py), in ``dtype``."""
    rng = np.random.default_rng(seed)
    truth = _true_mixture(rng, k, d)
    X = _sample(rng, n, *truth).astype(dtype)
    start = _perturbed(rng, *truth)
    start = (a.astype(dtype) for a in start)
    return X, jaxgmm.params_from_covariances(*start, covariance_type="full")


def _relative(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def _per_iteration(fit_once, iterations, repeats=3) -> float:
    """Seconds per iteration: (time of ``iterations`` - time of 1) / (iterations - 1), the best
    of ``repeats`` each, after a compiling call, so that the start and the finish cancel (at
    tiny sizes the difference is noise, and can come out negative)."""
    times = {}
    for n_iter in (1, iterations):
        jax.block_until_ready(fit_once(n_iter))  # compiles
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            jax.block_until_ready(fit_once(n_iter))
            best = min(best, time.perf_counter() - start)
        times[n_iter] = best
    return (times[iterations] - times[1]) / (iterations - 1)


def gpu_large(sizes, results):
    X, init = _data(sizes["n"], sizes["d"], sizes["k"])
    Xd = jax.device_put(X)
    key = jax.random.key(0)
    iterations = sizes["iterations"]

    def fit(n_iter, precision, data=Xd, start=init):
        return jaxgmm.fit(
            key,
            data,
            sizes["k"],
            init=start,
            max_iter=n_iter,
            tol=0.0,
            matmul_precision=precision,
        )

    with jax.enable_x64(True):
        X64, init64 = _data(sizes["n"], sizes["d"], sizes["k"], np.float64)
        reference = fit(iterations, "highest", jax.device_put(X64), init64).params
        del X64
    case = Case("gpu-large", sizes["n"], sizes["d"], sizes["k"], "full")
    flops = iteration_cost(case)["flops"]
    for precision in ("highest", "default"):
        seconds = _per_iteration(lambda n, p=precision: fit(n, p), iterations)
        params = fit(iterations, precision).params
        results[f"jaxgmm {precision}"] = {
            "s_per_iter": seconds,
            "tflops": flops / seconds / 1e12,
            "means_rel_error": _relative(params.means, reference.means),
            "covariances_rel_error": _relative(params.covariances, reference.covariances),
        }
    try:
        from gmmx import EMFitter, GaussianMixtureModelJax
    except ImportError:
        results["gmmx"] = {"skipped": "gmmx is not installed here"}
    else:

        def gmmx_fit(n_iter):
            model = GaussianMixtureModelJax.from_squeezed(
                means=jnp.asarray(init.means),
                covariances=jnp.asarray(init.covariances),
                weights=jnp.asarray(init.weights),
            )
            return EMFitter(max_iter=n_iter, tol=0.0).fit(Xd, model)

        seconds = _per_iteration(gmmx_fit, iterations)
        fitted = gmmx_fit(iterations)
        means = np.asarray(fitted.gmm.means).reshape(reference.means.shape)
        results["gmmx"] = {
            "s_per_iter": seconds,
            "tflops": flops / seconds / 1e12,
            "means_rel_error": _relative(means, reference.means),
        }


def restarts(sizes, results):
    X, _ = _data(sizes["n"], sizes["d"], sizes["k"])
    Xd = jax.device_put(X)
    times = {}
    for n_init in (1, sizes["restarts"]):

        def fit(n_iter, n_init=n_init):
            return jaxgmm.fit(
                jax.random.key(0), Xd, sizes["k"], n_init=n_init, max_iter=n_iter, tol=0.0
            )

        times[n_init] = _per_iteration(fit, sizes["iterations"])
    results["restarts"] = {
        "s_per_iter_1": times[1],
        f"s_per_iter_{sizes['restarts']}": times[sizes["restarts"]],
        "ratio": times[sizes["restarts"]] / times[1],
    }


def largest(sizes, results, budget_s):
    n, d = sizes["largest"]
    best, start = None, time.perf_counter()
    while time.perf_counter() - start < budget_s:
        try:
            X = jax.random.normal(jax.random.key(n), (n, d), jnp.float32)
            jax.block_until_ready(jaxgmm.fit(jax.random.key(0), X, 16, max_iter=2, tol=0.0))
            best = n
            del X
            n *= 4
        except Exception as error:  # the device's out-of-memory error has no portable class
            results["largest"] = {"n": best, "refused_at": n, "error": str(error)[:200]}
            return
    results["largest"] = {"n": best, "stopped": "time budget"}


def _part(name, fun, results, *args):
    start = time.perf_counter()
    try:
        fun(*args)
    except Exception:
        results[f"{name} failed"] = traceback.format_exc(limit=3)[-600:]
    print(f"{name}: {time.perf_counter() - start:.1f} s", flush=True)


def _markdown(info, results) -> str:
    lines = [
        f"# GPU benchmark: {info['device']} ({info['date']})",
        "",
        f"driver: {info['driver']}; jax {info['versions'].get('jax')}, jaxlib "
        f"{info['versions'].get('jaxlib')}; sizes: {info['sizes']}; float32 GEMM "
        f"{info['gemm_tflops']:.1f} TFLOP/s (measured)",
        "",
        "| what | s / iteration | TFLOP/s | of GEMM rate | means error | covariances error |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("jaxgmm highest", "jaxgmm default", "gmmx"):
        r = results.get(name, {})
        if "s_per_iter" not in r:
            lines.append(f"| {name} | {r.get('skipped', 'not measured')} | | | | |")
            continue
        lines.append(
            f"| {name} | {r['s_per_iter']:.4f} | {r['tflops']:.2f} | "
            f"{r['tflops'] / info['gemm_tflops']:.0%} | {r['means_rel_error']:.1e} | "
            f"{r.get('covariances_rel_error', float('nan')):.1e} |"
        )
    lines += ["", f"restarts: {results.get('restarts')}", f"largest: {results.get('largest')}"]
    lines += [f"{k}: {v}" for k, v in results.items() if k.endswith("failed")]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes, any machine")
    parser.add_argument("--out", help="path stem of the results (default bench/results/gpu-DEVICE)")
    args = parser.parse_args(argv)
    sizes = SIZES["tiny" if args.tiny else "full"]
    device = jax.devices()[0]
    info = describe()
    info |= {
        "device": f"{device.platform} {device.device_kind}",
        "driver": _driver(),
        "sizes": "tiny" if args.tiny else "full",
    }
    with jax.enable_x64(True):
        info["gemm_tflops"] = gemm_gflops(256 if args.tiny else 8192, 3)["jax_float32"] / 1e3
    print(f"{info['device']}; {info['driver']}; jax {jax.__version__}", flush=True)
    results: dict = {}
    _part("gpu-large", gpu_large, results, sizes, results)
    _part("restarts", restarts, results, sizes, results)
    _part("largest", largest, results, sizes, results, 2 if args.tiny else 120)
    name = info["device"].replace(" ", "-").lower()
    stem = Path(args.out or f"bench/results/gpu-{name}")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps({"machine": info, "results": results}))
    text = _markdown(info, results)
    stem.with_suffix(".md").write_text(text)
    print(text)
    return 1 if any(k.endswith("failed") for k in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
