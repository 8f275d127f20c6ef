"""Measure one (case, implementation) in a fresh process: ``python -m bench.worker SPEC OUT``.

A fresh process per measurement makes the peak memory its own: ``ru_maxrss`` is a high-water mark
that never goes down, and XLA's allocations are invisible to tracemalloc. Caveat: a child started
by ``subprocess`` (vfork + exec) inherits its parent's high-water mark in ``ru_maxrss``, which is
why the driver never imports JAX nor holds the data. ``VmHWM`` (the process's own high-water
mark) is recorded beside it as a check.

Order matters: libraries are imported, the baseline RSS is read, the data are loaded, EM is timed
and the peak read; only then come the end-to-end fit and the float64 evaluation, which would
otherwise raise the peak.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .loglik import bic, mean_log_likelihood
from .peers import IMPLS, Restart, import_libraries, make_runner
from .workloads import COVARIANCE_TYPES, Case, case_from_dict, data_path, init_path


def _max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Restart the high-water mark (``ru_maxrss`` and ``VmHWM``) at the current RSS, so that the
    timed runs' peak is seen apart from compilation's (Linux >= 4.0; False where refused)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _gpu_peak_mb() -> float | None:
    """Peak device memory when JAX runs on an accelerator that reports it."""
    if "jax" not in sys.modules:
        return None
    import jax

    device = jax.devices()[0]
    if device.platform == "cpu":
        return None
    stats = device.memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / 2**20


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _evaluate(X64: np.ndarray, r: Restart, covariance_type: str) -> float:
    return mean_log_likelihood(X64, r.weights, r.means, r.covariances, covariance_type)


def measure_fixed(case: Case, runner: Any, spec: dict, directory: Path) -> dict:
    n_hi = spec["iterations"]
    n_lo = spec["low_iterations"]
    repeats = spec["repeats"]
    ct = case.covariance_type
    state = runner.prepare(dict(np.load(init_path(directory, case))), ct)

    # The first call compiles (JAX) or warms caches; n_lo is called once too (gmmx compiles
    # once per iteration count). Then n_lo and n_hi alternate, so drifts hit both alike.
    first_hi, raw = _timed(lambda: runner.fixed(state, n_hi))
    fitted = runner.restarts(raw)  # to NumPy now: gmmx's result even holds a copy of X
    del raw
    _timed(lambda: runner.fixed(state, n_lo))
    rss_first = _max_rss_mb()
    reset = _reset_peak()
    lo, hi = [], []
    for _ in range(repeats):
        lo.append(_timed(lambda: runner.fixed(state, n_lo))[0])
        hi.append(_timed(lambda: runner.fixed(state, n_hi))[0])
    out: dict[str, Any] = {
        "iterations": n_hi,
        "low_iterations": n_lo,
        "call_s": statistics.median(hi),
        "call_low_s": statistics.median(lo),
        "per_iter_s": (statistics.median(hi) - statistics.median(lo)) / (n_hi - n_lo),
        "per_iter_plain_s": statistics.median(hi) / n_hi,
        "compile_s": first_hi - statistics.median(hi),
        "first_call_s": first_hi,
        "times_hi_s": hi,
        "times_lo_s": lo,
        "rss_first_mb": rss_first,  # peak up to here: the first calls, compilation included
        "rss_peak_mb": _max_rss_mb() if reset else None,  # peak of the timed runs alone
        "vm_hwm_mb": _vm_hwm_mb(),
        "gpu_peak_mb": _gpu_peak_mb(),
        "load_avg": os.getloadavg()[0],  # 1-minute load after the timed runs: was it alone?
    }

    # End to end: each library's default initialisation and stopping rule.
    k, seed = case.k, case.seed
    e2e_cold, best = _timed(lambda: runner.end_to_end(ct, k, case.n_init, seed))
    e2e = [_timed(lambda: runner.end_to_end(ct, k, case.n_init, seed))[0] for _ in range(repeats)]
    out.update(
        e2e_s=statistics.median(e2e),
        e2e_cold_s=e2e_cold,
        e2e_n_iter=best.n_iter,
        rss_e2e_mb=_max_rss_mb(),  # peak since the reset, end-to-end fits included
    )

    X64 = np.load(data_path(directory, case, "float64"))
    out["result_dtype"] = str(np.asarray(fitted[0].means).dtype)  # does float32 stay float32?
    out["loglik"] = [_evaluate(X64, r, ct) for r in fitted]
    out["lower_bound"] = [r.lower_bound for r in fitted]
    out["n_iter"] = [r.n_iter for r in fitted]
    out["e2e_loglik"] = _evaluate(X64, best, ct)
    return out


def measure_select(case: Case, runner: Any, spec: dict, directory: Path) -> dict:
    """The model-selection grid, end to end: a first pass, and for the JAX libraries, whose first
    pass compiles, a second (warm) one."""

    def grid() -> list[tuple[str, int, Restart]]:
        if hasattr(runner, "grid"):  # the library's own model selection
            return runner.grid(tuple(case.ks), case.n_init, case.seed)
        return [
            (ct, k, runner.end_to_end(ct, k, case.n_init, case.seed))
            for ct in COVARIANCE_TYPES
            for k in case.ks
        ]

    cold, fits = _timed(grid)
    rss_first = peak = _max_rss_mb()
    warm = cold
    if IMPLS[spec["impl"]].uses_jax:
        reset = _reset_peak()
        warm = _timed(grid)[0]
        peak = _max_rss_mb() if reset else None
    out: dict[str, Any] = {
        "e2e_s": warm,
        "e2e_cold_s": cold,
        "compile_s": cold - warm,
        "rss_first_mb": rss_first,
        "rss_peak_mb": peak,
        "vm_hwm_mb": _vm_hwm_mb(),
        "gpu_peak_mb": _gpu_peak_mb(),
        "load_avg": os.getloadavg()[0],
    }
    X64 = np.load(data_path(directory, case, "float64"))
    models = []
    for ct, k, r in fits:
        ll = _evaluate(X64, r, ct)
        models.append(
            {
                "covariance_type": ct,
                "k": k,
                "loglik": ll,
                "n_iter": r.n_iter,
                "bic": bic(ll, case.n, ct, k, case.d),
            }
        )
    chosen = min(models, key=lambda m: m["bic"])
    out.update(models=models, chosen=f"{chosen['covariance_type']} K={chosen['k']}")
    return out


def main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    case = case_from_dict(spec["case"])
    impl = IMPLS[spec["impl"]]
    directory = Path(spec["data_dir"])

    import_libraries(impl)
    baseline = _max_rss_mb()
    X = np.load(data_path(directory, case, impl.dtype))
    runner = make_runner(impl, X)
    del X  # the runner keeps what it needs (a device copy for the JAX libraries)

    measure = measure_select if case.kind == "select" else measure_fixed
    result = {"impl": impl.name, "dtype": impl.dtype, "rss_baseline_mb": baseline}
    result.update(measure(case, runner, spec, directory))
    Path(out_path).write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
