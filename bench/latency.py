"""``python -m bench.latency``: the time to a first answer, end to end, as a user meets it.

Every measurement runs in a fresh process, timed from inside it (imports excluded, as a user's
session has them already) unless said otherwise:

* on R's ``faithful`` (272 x 2), ``iris`` (150 x 4) and a seeded 10,000 x 8 mixture:
  ``GaussianMixture(3, covariance_type="tied").fit(X)`` as the first call, then with K = 4 (a
  new K), then K = 4 again (the same shapes); and, in another process, ``select`` over the four
  covariance types and K = 1..8 (4 restarts each);
* ``jaxgmm demo`` from the shell (import included: the whole command);
* jaxgmm cold (an empty compiled-program cache) and warm (the cache that a previous run left),
  scikit-learn (the same calls; its ``select`` is a loop over the 32 models, 4 restarts each),
  and R's mclust when ``Rscript`` and the package are installed (``Mclust`` with the four
  models mclust calls VVV, EEE, VVI, VII, G = 1..8; fit: one ``Mclust`` of EEE with G = 3);
* memory: RSS and memory mappings (``/proc/self/maps``) after 200 fits of mixed N, K and
  covariance types in one process (``--fits`` changes the count).

Results go to ``bench/results/latency.md`` and ``latency.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "jaxgmm" / "data"
DATASETS = ("faithful", "iris", "mixture-1e4x8")
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "latency.md"


def load(name: str):
    import numpy as np

    if name == "mixture-1e4x8":
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(4, 8)) * 3
        return centres[rng.integers(0, 4, 10_000)] + rng.normal(size=(10_000, 8))
    return np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1)


# -- workers: one measurement each, in a fresh process ----------------------------------------


def _fits(impl: str, X) -> dict:
    if impl == "jaxgmm":
        from jaxgmm import GaussianMixture
    else:
        from sklearn.mixture import GaussianMixture

    times = {}
    for label, k in (("first fit", 3), ("new K", 4), ("same shapes", 4)):
        start = time.perf_counter()
        GaussianMixture(k, covariance_type="tied", random_state=0).fit(X)
        times[label] = time.perf_counter() - start
    return times


def _select(impl: str, X) -> dict:
    from sklearn.mixture import GaussianMixture

    import jaxgmm

    types = ("full", "tied", "diag", "spherical")
    start = time.perf_counter()
    if impl == "jaxgmm":
        jaxgmm.select(X, range(1, 9), types, n_init=4, random_state=0)
    else:
        for covariance_type in types:
            for k in range(1, 9):
                model = GaussianMixture(
                    k, covariance_type=covariance_type, n_init=4, random_state=0
                )
                model.fit(X).bic(X)
    return {"select 4 types x K=1..8": time.perf_counter() - start}


def _memory(n_fits: int) -> dict:
    import numpy as np

    import jaxgmm

    def maps() -> int:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    def rss_mb() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    rng = np.random.default_rng(0)
    X = load("faithful")
    trace = []
    start = time.perf_counter()
    for i in range(n_fits):
        n = int(rng.integers(40, len(X) + 1))
        k = int(rng.integers(1, 17))
        covariance_type = ("full", "tied", "diag", "spherical")[int(rng.integers(4))]
        n_init = int(rng.integers(1, 4))
        jaxgmm.GaussianMixture(
            min(k, n), covariance_type=covariance_type, n_init=n_init, random_state=i
        ).fit(X[:n])
        if (i + 1) % max(n_fits // 10, 1) == 0:
            trace.append({"fits": i + 1, "rss_mb": round(rss_mb()), "maps": maps()})
            # as it goes: a process that runs out of memory mappings still tells how far it got
            print(json.dumps({"seconds": time.perf_counter() - start, "trace": trace}), flush=True)
    return {"seconds": time.perf_counter() - start, "trace": trace}


def worker(argv: list[str]) -> None:
    kind, impl, name = argv[:3]
    if kind == "memory":
        result = _memory(int(name))
    else:
        X = load(name)
        result = _fits(impl, X) if kind == "fits" else _select(impl, X)
    print(json.dumps(result))


# -- the driver ----------------------------------------------------------------------------------


def _python(args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "bench.latency", "--worker", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines else {}
    if proc.returncode != 0:
        error = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"
        result["error"] = f"exit {proc.returncode}: {error}"
    return result


def _demo(env: dict, out: Path) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "jaxgmm", "demo", "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
        timeout=3600,
    )
    return time.perf_counter() - start


_R_MODELS = 'c("VVV", "EEE", "VVI", "VII")'


def _mclust(name: str, tmp: Path) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    path = tmp / f"{name}.csv"
    import numpy as np

    np.savetxt(path, load(name), delimiter=",")
    script = f"""
        suppressMessages(library(mclust))
        X <- as.matrix(read.csv("{path}", header = FALSE))
        M <- {_R_MODELS}
        t1 <- system.time(Mclust(X, G = 3, modelNames = "EEE", verbose = FALSE))[["elapsed"]]
        t2 <- system.time(Mclust(X, G = 4, modelNames = "EEE", verbose = FALSE))[["elapsed"]]
        t3 <- system.time(Mclust(X, G = 4, modelNames = "EEE", verbose = FALSE))[["elapsed"]]
        t4 <- system.time(Mclust(X, G = 1:8, modelNames = M, verbose = FALSE))[["elapsed"]]
        cat(t1, t2, t3, t4, "\\n")
    """
    proc = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    t1, t2, t3, t4 = (float(v) for v in proc.stdout.split())
    return {
        "first fit": t1,
        "new K": t2,
        "same shapes": t3,
        "select 4 types x K=1..8": t4,
    }


ROWS = ("first fit", "new K", "same shapes", "select 4 types x K=1..8")


def run(args) -> dict:
    results = {"machine": _machine(), "datasets": {}, "demo": {}, "memory": None}
    with tempfile.TemporaryDirectory(prefix="jaxgmm-latency-") as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "programs"
        jaxgmm_env = os.environ | {"JAXGMM_CACHE_DIR": str(cache)}
        for name in args.datasets:
            row = {}
            shutil.rmtree(cache, ignore_errors=True)
            row["jaxgmm cold"] = _python(["fits", "jaxgmm", name], jaxgmm_env)
            row["jaxgmm cold"] |= _python(["select", "jaxgmm", name], jaxgmm_env)
            row["jaxgmm warm"] = _python(["fits", "jaxgmm", name], jaxgmm_env)
            row["jaxgmm warm"] |= _python(["select", "jaxgmm", name], jaxgmm_env)
            row["scikit-learn"] = _python(["fits", "sklearn", name], dict(os.environ))
            row["scikit-learn"] |= _python(["select", "sklearn", name], dict(os.environ))
            mclust = _mclust(name, tmp)
            if mclust is not None:
                row["mclust"] = mclust
            results["datasets"][name] = row
            print(name, json.dumps(row), flush=True)
        shutil.rmtree(cache, ignore_errors=True)
        results["demo"]["jaxgmm cold"] = _demo(jaxgmm_env, tmp / "demo")
        results["demo"]["jaxgmm warm"] = _demo(jaxgmm_env, tmp / "demo")
        print("demo", results["demo"], flush=True)
        if args.fits:
            empty = os.environ | {"JAXGMM_CACHE_DIR": ""}
            results["memory"] = _python(["memory", "jaxgmm", str(args.fits)], empty)
            print("memory", results["memory"], flush=True)
    return results


def _machine() -> dict:
    import jax
    import numpy

    from bench.__main__ import _revision

    return {
        "revision": _revision(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "jax": jax.__version__,
        "numpy": numpy.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_avg": [round(x, 2) for x in os.getloadavg()],
    }


def report(results: dict) -> str:
    lines = ["# Time to a first answer (bench/latency.py)", ""]
    machine = results["machine"]
    lines.append(
        f"- machine: {machine['cpu']}, {machine['cores']} cores; python {machine['python']}, "
        f"jax {machine['jax']}, numpy {machine['numpy']}; {machine['date']}; load average "
        f"{machine['load_avg']}; jaxgmm at {machine['revision']}"
    )
    lines += ["", "Seconds, each in a fresh process, imports excluded.", ""]
    for name, row in results["datasets"].items():
        impls = list(row)
        lines.append(f"## {name}")
        lines.append("")
        lines.append("| call | " + " | ".join(impls) + " |")
        lines.append("|---|" + "---|" * len(impls))
        for label in ROWS:
            cells = []
            for impl in impls:
                value = row[impl].get(label)
                cells.append("-" if value is None else f"{value:.3f}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    demo = results["demo"]
    lines.append(
        f"`jaxgmm demo` from the shell (import included): cold {demo['jaxgmm cold']:.2f} s, "
        f"warm {demo['jaxgmm warm']:.2f} s."
    )
    memory = results.get("memory")
    if memory and memory.get("trace"):
        failed = f"; the process failed: {memory['error']}" if "error" in memory else ""
        lines += [
            "",
            f"Memory over {memory['trace'][-1]['fits']} fits of mixed N, K and types "
            f"({memory['seconds']:.0f} s, no disk cache){failed}:",
            "",
        ]
        lines.append("| fits | RSS MB | memory mappings |")
        lines.append("|---|---|---|")
        for point in memory["trace"]:
            lines.append(f"| {point['fits']} | {point['rss_mb']} | {point['maps']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--fits", type=int, default=200, help="fits of the memory test (0: none)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.datasets = args.datasets.split(",")
    results = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results))
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
