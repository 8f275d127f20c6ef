"""Peak memory and time per iteration of large fits, and float32 against float64 at scale.

    python -m bench.scale                 # N = 1e6 and 1e7, D = 16, K = 64, full covariances
    python -m bench.scale --sizes 1000000 --iterations 3

Each size runs in a fresh subprocess (peak RSS is per process): the data are generated there in
float32 (a mixture of 64 well-separated Gaussians), moved to JAX, the NumPy copy dropped, the
peak RSS reset, and ``jaxgmm.fit`` runs from given starting parameters for 1 and for
1 + ``--iterations`` EM iterations (tol=0); the time per iteration is the difference. Peaks are
given in units of the size of X: the process over the libraries' baseline (X itself counts 1,
compilation included), and what the fits added to the memory held with X loaded. With
``--compare``, the same fit is also run in float64 from the same start, and the largest
relative differences of the parameters are reported.
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (Linux), in MiB."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _reset_peak() -> None:
    """Start the peak (VmHWM) afresh: writing 5 to /proc/self/clear_refs (Linux). The peak of
    getrusage cannot be reset, so VmHWM is read instead."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def _data(n: int, d: int, k: int, seed: int = 0):
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(k, d)) * 3.0
    labels = rng.integers(0, k, n)
    X = np.empty((n, d), np.float32)
    for start in range(0, n, 1_000_000):  # in slices: no float64 copy of the whole data
        stop = min(start + 1_000_000, n)
        X[start:stop] = centres[labels[start:stop]] + rng.normal(size=(stop - start, d))
    return X, centres


def worker(n: int, d: int, k: int, iterations: int, compare: bool) -> dict:
    import jax
    import numpy as np

    import jaxgmm

    baseline = _status_mb("VmRSS")
    X, centres = _data(n, d, k)
    x_mb = X.nbytes / 2**20
    init = jaxgmm.params_from_covariances(
        np.full(k, 1.0 / k, np.float32),
        (centres + 0.3).astype(np.float32),
        np.stack([np.eye(d, dtype=np.float32)] * k),
        covariance_type="full",
    )
    data = jax.block_until_ready(jax.device_put(X))
    del X
    gc.collect()
    time.sleep(1.0)  # let the freed NumPy copy go back to the system
    # the peak of the fit alone: the generation above held a NumPy and a JAX copy at once
    loaded = _status_mb("VmRSS")
    _reset_peak()

    def run(max_iter, data=data, params=init):
        start = time.perf_counter()
        result = jaxgmm.fit(jax.random.key(0), data, k, init=params, max_iter=max_iter, tol=0.0)
        jax.block_until_ready(result)
        return time.perf_counter() - start, result

    run(1)  # compile
    t1, _ = run(1)
    tn, result = run(1 + iterations)
    peak = _status_mb("VmHWM")
    out = {
        "n": n,
        "d": d,
        "k": k,
        "x_mb": round(x_mb, 1),
        "baseline_mb": round(baseline, 1),
        "with_data_mb": round(loaded, 1),
        "fit_peak_mb": round(peak, 1),
        "seconds_per_iteration": round((tn - t1) / iterations, 4),
        "device": str(jax.devices()[0].device_kind),
    }
    # in units of X: the whole process over the libraries' baseline (X itself counts 1), and
    # what the fits added to the memory held before them (X loaded, compilation included)
    out["peak_over_baseline_x"] = round((peak - baseline) / x_mb, 2)
    out["fit_added_x"] = round((peak - loaded) / x_mb, 2)
    if compare:
        with jax.enable_x64(True):
            X64 = jax.device_put(np.asarray(data, np.float64))
            init64 = jax.tree_util.tree_map(lambda a: jax.numpy.asarray(a, np.float64), init)
            r64 = jaxgmm.fit(
                jax.random.key(0), X64, k, init=init64, max_iter=1 + iterations, tol=0.0
            )
            errors = {}
            for name in ("weights", "means", "covariances"):
                a = np.asarray(getattr(result.params, name), np.float64)
                b = np.asarray(getattr(r64.params, name))
                errors[name] = float(np.max(np.abs(a - b)) / np.max(np.abs(b)))
        out["float32_vs_float64"] = errors
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--features", type=int, default=16)
    parser.add_argument("--components", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--compare", action="store_true", help="float64 too, at the largest size")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        n = int(args.worker)
        print(json.dumps(worker(n, args.features, args.components, args.iterations, args.compare)))
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    for n in sizes:
        command = [
            sys.executable,
            "-m",
            "bench.scale",
            "--worker",
            str(n),
            "--features",
            str(args.features),
            "--components",
            str(args.components),
            "--iterations",
            str(args.iterations),
        ]
        if args.compare and n == max(sizes):
            command.append("--compare")
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            sys.exit(1)
        print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
