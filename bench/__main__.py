"""``python -m bench``: run the benchmark (see bench/README.md).

The driver only orchestrates: it never imports JAX nor holds the data, because every child it
starts inherits its peak RSS (see bench/worker.py). Machine probe, data preparation and each
(case, implementation) measurement run in their own subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import report
from .peers import IMPLS, PEER_ALIASES, skip_reason
from .workloads import QUICK_WORKLOADS, Case, case_to_dict, cases, workload_names

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latest.md"
# 10 keeps a full run near 17 minutes on 2 idle cores (the select grid and scikit-learn's
# 32-restart loop take the most).
DEFAULT_ITERATIONS = 10
DEFAULT_PEERS = "sklearn,gmmx,jaxgmm64,jaxgmm-cores"
# sklearn32 and jaxgmm64 are the runners of sklearn64 and jaxgmm with another dtype: a quick
# run, whose time goes into process starts and compilations, leaves them out by default.
QUICK_PEERS = "sklearn64,gmmx,jaxgmm-cores"


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument(
        "--workloads",
        help=f"comma-separated subset of: {','.join(workload_names())} (the default; "
        f"gpu-large runs only on a GPU; --quick: {','.join(QUICK_WORKLOADS)})",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes, 1 repeat, 3 iterations: checks every code path, not speed",
    )
    p.add_argument("--repeats", type=int, help="timed repeats per measurement (default 3)")
    p.add_argument(
        "--iterations",
        type=int,
        help=f"EM iterations of the timed fits (default {DEFAULT_ITERATIONS})",
    )
    p.add_argument(
        "--peers",
        help="comma-separated, among sklearn (= sklearn64,sklearn32), sklearn64, sklearn32, "
        f"gmmx, jaxgmm64, jaxgmm-cores (default {DEFAULT_PEERS}; --quick: {QUICK_PEERS}); "
        "jaxgmm always runs",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help="markdown result; the JSON goes beside it (default bench/results/latest.md)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        help="measurements run at once (default 1; --quick: the CPU count). Above 1 "
        "the timings disturb each other: only for checking that everything runs",
    )
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    args = p.parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.iterations = args.iterations or (3 if args.quick else DEFAULT_ITERATIONS)
    args.jobs = args.jobs or ((os.cpu_count() or 1) if args.quick else 1)
    if args.iterations < 2:
        p.error("--iterations must be at least 2 (time per iteration is a difference)")
    default = QUICK_WORKLOADS if args.quick else workload_names()
    args.workloads = args.workloads.split(",") if args.workloads else list(default)
    unknown = set(args.workloads) - set(workload_names())
    if unknown:
        p.error(f"unknown workloads {sorted(unknown)}; choose among {workload_names()}")
    args.peers = args.peers or (QUICK_PEERS if args.quick else DEFAULT_PEERS)
    peers = [n for name in args.peers.split(",") if name for n in PEER_ALIASES.get(name, [name])]
    if set(peers) - set(IMPLS):
        p.error(f"unknown peers {sorted(set(peers) - set(IMPLS))}")
    args.impls = ["jaxgmm", *dict.fromkeys(p for p in peers if p != "jaxgmm")]
    return args


def _run(args: list[str], timeout: float, env: dict[str, str] | None = None):
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
        env=env,
    )


def _revision() -> str:
    """The commit measured, and whether jaxgmm/ differs from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "jaxgmm"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return (head or "unknown") + (" + uncommitted changes in jaxgmm/" if dirty else "")


def _checked(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        sys.exit(f"{what} failed:\n{proc.stderr}")


def measure(case: Case, impl: str, tmp: Path, settings: dict, timeout: float) -> dict:
    """One worker subprocess; its JSON result, or an ``error`` entry."""
    name = f"{case.label.replace('/', '-')}-{impl}"
    spec_path, out_path = tmp / f"{name}-spec.json", tmp / f"{name}-out.json"
    spec = {"case": case_to_dict(case), "impl": impl, "data_dir": str(tmp / "data"), **settings}
    spec_path.write_text(json.dumps(spec))
    try:
        proc = _run(
            ["bench.worker", str(spec_path), str(out_path)], timeout, IMPLS[impl].environment()
        )
    except subprocess.TimeoutExpired:
        return {"impl": impl, "error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0 or not out_path.exists():
        return {"impl": impl, "error": proc.stderr[-4000:] or f"exit code {proc.returncode}"}
    return json.loads(out_path.read_text())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    settings = {
        "command": " ".join(["python -m bench", *argv]),
        "revision": _revision(),
        "iterations": args.iterations,
        "low_iterations": 1,
        "repeats": args.repeats,
        "quick": args.quick,
        "impls": args.impls,
    }
    with tempfile.TemporaryDirectory(prefix="jaxgmm-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print("measuring the machine...", file=sys.stderr)
        machine_json = tmp / "machine.json"
        _checked(
            _run(["bench.machine", str(machine_json), *(["--quick"] * args.quick)], 600),
            "machine probe",
        )
        machine = json.loads(machine_json.read_text())
        gpu = machine["platform"] != "cpu"
        selected = [
            c for c in cases(args.quick) if c.workload in args.workloads and (gpu or not c.gpu_only)
        ]

        print("preparing data...", file=sys.stderr)
        (tmp / "data").mkdir()
        spec_json = tmp / "cases.json"
        spec_json.write_text(json.dumps([case_to_dict(c) for c in selected]))
        _checked(_run(["bench.workloads", str(spec_json), str(tmp / "data")], 600), "data")

        entries = [{"case": c, "results": {}} for c in selected]
        jobs = []
        for entry in entries:
            for impl in args.impls:
                reason = skip_reason(IMPLS[impl], entry["case"])
                if reason:
                    entry["results"][impl] = {"impl": impl, "skipped": reason}
                else:
                    entry["results"][impl] = None  # keeps the column order
                    jobs.append((entry, impl))

        def run_job(job: tuple[dict, str]) -> None:
            entry, impl = job
            start = time.perf_counter()
            result = measure(entry["case"], impl, tmp, settings, args.timeout)
            entry["results"][impl] = result
            status = "FAILED" if "error" in result else "done"
            print(
                f"  {entry['case'].label:<16} {impl:<10} {status} in "
                f"{time.perf_counter() - start:.1f} s",
                file=sys.stderr,
            )

        print(f"running {len(jobs)} measurements...", file=sys.stderr)
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            list(pool.map(run_job, jobs))

    machine["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    all_agree = report.analyse(entries, machine)
    failed = [
        f"{e['case'].label} {n}" for e in entries for n, r in e["results"].items() if "error" in r
    ]
    print(report.text_report(entries, machine, settings, all_agree))
    path_json = report.write(args.out.with_suffix(".md"), entries, machine, settings, all_agree)
    print(f"\nwrote {args.out.with_suffix('.md')} and {path_json}", file=sys.stderr)
    if failed:
        print("FAILED measurements: " + ", ".join(failed), file=sys.stderr)
    return 0 if all_agree and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
