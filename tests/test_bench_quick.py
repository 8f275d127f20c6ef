"""Smoke test of the benchmark runner: ``python -m bench --quick`` runs every code path (machine
probe, data, each implementation's fixed-iteration and end-to-end fits, restarts, the selection
grid, the log-likelihood agreement check, the reports). No timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick(tmp_path: Path) -> None:
    out = tmp_path / "r.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
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
