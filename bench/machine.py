"""The machine: what it is, and what it can do at best.

``python -m bench.machine OUT.json [--quick]`` writes the description (CPU model, cores, RAM,
library versions, JAX's device, date) and the measured ceilings: GEMM GFLOP/s in float32 and
float64 (JAX and NumPy, n x n matrices, best of several) and memory bandwidth in GB/s (NumPy
copy, counted as read + write; JAX sum, counted as read). It runs in a subprocess so that the
driver never imports JAX.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

PACKAGES = ("jax", "jaxlib", "numpy", "scipy", "scikit-learn", "gmmx")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def describe() -> dict:
    import jax

    device = jax.devices()[0]
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gib": _ram_gib(),
        "python": platform.python_version(),
        "os": platform.platform(),
        "versions": {p: _version(p) for p in PACKAGES},
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        # Other processes' load skews every timing: recorded so that a reader can tell.
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def header_lines(machine: dict, command: str, seconds: float) -> list[str]:
    """A report's lines on where it ran: the machine (:func:`describe`), the versions, the date
    and the load at the start and at the end, and the command with its time."""
    return [
        f"- CPU: {machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB RAM; "
        f"JAX device: {machine['platform']} ({machine['device_kind']}) "
        f"x{machine['device_count']}",
        "- versions: "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
        + f", python {machine['python']}",
        f"- date: {machine['date']}; load average at start {machine['load_avg_start']}, "
        f"at end {[round(x, 2) for x in os.getloadavg()]}",
        f"- `{command}`: {seconds:.0f} s",
    ]


def _best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # compile / warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def gemm_gflops(n: int, repeats: int) -> dict[str, float]:
    """GFLOP/s of an n x n matrix product (2 n^3 flops), best of ``repeats``."""
    import jax
    import jax.numpy as jnp

    matmul = jax.jit(jnp.matmul)
    rates = {}
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
        rates[f"numpy_{dtype}"] = 2 * n**3 / _best_time(lambda a=a, b=b: a @ b, repeats) / 1e9
        ja, jb = jax.device_put(a), jax.device_put(b)
        assert ja.dtype == dtype, "JAX's 64-bit mode must be on for the float64 GEMM"
        t = _best_time(lambda ja=ja, jb=jb: matmul(ja, jb).block_until_ready(), repeats)
        rates[f"jax_{dtype}"] = 2 * n**3 / t / 1e9
    return rates


def bandwidth_gbs(n_bytes: int, repeats: int) -> dict[str, float]:
    """Memory bandwidth from arrays far larger than the caches."""
    import jax
    import jax.numpy as jnp

    src = np.ones(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    t_copy = _best_time(lambda: np.copyto(dst, src), repeats)
    x = jax.device_put(src)
    total = jax.jit(jnp.sum)
    t_sum = _best_time(lambda: total(x).block_until_ready(), repeats)
    return {"numpy_copy": 2 * n_bytes / t_copy / 1e9, "jax_sum": n_bytes / t_sum / 1e9}


def main(out_path: str, quick: bool) -> None:
    import jax

    jax.config.update("jax_enable_x64", True)  # for the float64 GEMM; arrays carry their dtype
    n, n_bytes, repeats = (512, 2**25, 2) if quick else (2048, 2**29, 5)
    info = describe()
    info["gemm_n"] = n
    info["gemm_gflops"] = gemm_gflops(n, repeats)
    info["bandwidth_bytes"] = n_bytes
    info["bandwidth_gbs"] = bandwidth_gbs(n_bytes, repeats)
    Path(out_path).write_text(json.dumps(info))


if __name__ == "__main__":
    main(sys.argv[1], "--quick" in sys.argv[2:])
