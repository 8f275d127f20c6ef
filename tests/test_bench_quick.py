"""Smoke test of the benchmark runner: ``python -m bench --quick`` runs every code path (machine
probe, data, each implementation's fixed-iteration and end-to-end fits, restarts, the selection
grid, the log-likelihood agreement check, the reports). No timing is asserted. Of the quick
workloads, mid-16 is left out: its cases run the code of the lesson's (a minute of the suite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def run_module(*args: str) -> None:
    """``python -m ARGS`` from the repository's root; fails with its output unless it exits 0."""
    proc = subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    # jaxgmm-cores is jaxgmm's worker in another environment (the next test), and compiles
    # every program again for two devices (20 s of the suite): left out here
    peers = "sklearn64,gmmx"
    workloads = "lesson,restarts,select"
    run_module("bench", "--quick", "--workloads", workloads, "--peers", peers, "--out", str(out))
    assert out.exists() and out.with_suffix(".json").exists()

    result = json.loads(out.with_suffix(".json").read_text())
    assert result["all_agree"]
    measured = 0
    for case in result["cases"]:
        for name, r in case["results"].items():
            assert "error" not in r, f"{case['case']} {name}: {r.get('error')}"
            if "skipped" in r or case["spec"]["kind"] == "select":
                continue
            assert r["agree"], f"{case['case']} {name}: rel diff {r['rel_diff']:.2e}"
            measured += 1
    # jaxgmm and scikit-learn (always installed with the tests) on every fixed-iteration case
    fixed = [c for c in result["cases"] if c["spec"]["kind"] == "fixed"]
    assert fixed and measured >= 2 * len(fixed)


def test_the_cores_variant_splits_the_cpu_and_keeps_other_xla_flags(monkeypatch) -> None:
    from bench.peers import IMPLS

    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=0")
    flags = IMPLS["jaxgmm-cores"].environment()["XLA_FLAGS"].split()
    assert flags[0] == "--xla_backend_optimization_level=0"
    assert flags[1].startswith("--xla_force_host_platform_device_count=")
    assert IMPLS["jaxgmm"].environment()["XLA_FLAGS"] == "--xla_backend_optimization_level=0"


def test_gpu_script_runs_end_to_end_at_tiny_sizes(tmp_path: Path) -> None:
    """The one-shot GPU script, here on the CPU, so that a lent GPU is not spent on a typo."""
    stem = tmp_path / "gpu"
    run_module("bench.gpu", "--tiny", "--out", str(stem))
    results = json.loads(stem.with_suffix(".json").read_text())["results"]
    for name in ("jaxgmm highest", "jaxgmm default"):
        assert results[name]["covariances_rel_error"] < 1e-4, results[name]
    assert np.isfinite(results["restarts"]["ratio"])  # tiny: a ratio of noise
    assert results["largest"]["n"] >= 2_000
    assert "| jaxgmm highest |" in stem.with_suffix(".md").read_text()


def test_tf32_rounding_keeps_ten_bits_rounding_to_nearest_even() -> None:
    import jax.numpy as jnp

    from bench.tf32 import round_to_tf32

    ulp = 2.0**-10  # TF32's spacing in [1, 2)
    x = jnp.asarray([1.0, 1 + ulp / 2, 1 + 1.5 * ulp, 1 + ulp / 2 + 2**-20, -3.0e-5], jnp.float32)
    expected = np.array([1.0, 1.0, 1 + 2 * ulp, 1 + ulp, -3.0e-5], np.float32)
    rounded = np.asarray(round_to_tf32(x))
    np.testing.assert_array_equal(rounded[:4], expected[:4])
    assert abs(rounded[4] - expected[4]) <= abs(expected[4]) * 2.0**-11
    bits = np.asarray(rounded).view(np.uint32) & 0x1FFF
    assert not bits.any(), "13 low mantissa bits must be zero"
