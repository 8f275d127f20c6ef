"""``python -m bench.selection``: model selection end to end, as a user meets it.

Each measurement runs in a fresh process and is timed inside it (imports excluded):

* **jaxgmm cold**: an empty disk cache of compiled programs; **warm**: a new process with the
  cache that the cold run filled; **again**: the same call a second time in that process;
* **scikit-learn**: a loop of ``GaussianMixture(k, covariance_type=t, n_init=...)`` over the grid,
  with its BIC (it has no hierarchical start, so it sits out the 14-model rows);
* **mclust**: R's ``Mclust()`` over the same grid (its own hc start, one per model), when
  ``Rscript`` and the package are installed (``apt install r-cran-mclust``); skipped otherwise.

Besides the selections, two single fits: the first fit of faithful in a process
(``GaussianMixture(3, covariance_type="tied")``), and a whole 10-iteration fit of small-2d
(1e5 x 2, K = 3) from given parameters (``tol=0``), which shows the fixed cost of a call.

``--source DIR`` times the jaxgmm found in another checkout (for a before/after in one run:
``git worktree add /tmp/before <rev>``, then ``--source /tmp/before``); its rows are labelled
with ``--label``. Results go to ``bench/results/selection.md`` and ``.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(__file__).resolve().parents[1] / "jaxgmm" / "data"
DEFAULT_OUT = HERE / "results" / "selection.md"
SKLEARN_TYPES = ("full", "tied", "diag", "spherical")
MCLUST_NAMES = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}

# name: (data, covariance types ("all": mclust's 14), K grid, restarts, init)
WORKLOADS = {
    "faithful-14": ("faithful", "all", range(1, 10), 1, "hc"),
    "iris-14": ("iris", "all", range(1, 10), 1, "hc"),
    "faithful-4": ("faithful", SKLEARN_TYPES, range(1, 9), 4, "kmeans"),
    "mix-1e4x8": ("mix-10000", SKLEARN_TYPES, range(1, 10), 4, "kmeans"),
    "mix-1e5x8": ("mix-100000", SKLEARN_TYPES, range(1, 10), 4, "kmeans"),
}
# --quick's grid: a name of its own, since each worker looks its workload up by name (under the
# same name as the full faithful-4 grid, every run timed this one for jaxgmm and scikit-learn)
QUICK = {"faithful-quick": ("faithful", SKLEARN_TYPES, range(1, 4), 2, "kmeans")}
FITS = ("first-fit-faithful", "small-2d-10-iterations")


def load(name: str):
    """The data of a workload: an R data set, or a seeded mixture of 5 clusters in 8-D."""
    import numpy as np

    if name.startswith("mix-"):
        n = int(name.split("-")[1])
        rng = np.random.default_rng(0)
        centres = rng.normal(size=(5, 8)) * 4
        scales = rng.uniform(0.5, 1.5, size=(5, 1, 8))
        labels = rng.integers(0, 5, n)
        return centres[labels] + rng.normal(size=(n, 8)) * scales[labels, 0]
    if name == "small-2d":
        rng = np.random.default_rng(0)
        centres = np.array([[-4.0, 0.0], [0.0, 3.0], [4.0, 0.0]])
        return centres[rng.integers(0, 3, 100_000)] + rng.normal(size=(100_000, 2))
    return np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1)


# -- workers: one measurement each, in a fresh process ----------------------------------------


def _jaxgmm_select(spec, repeats: int) -> dict:
    import jaxgmm

    data, types, ks, n_init, init = spec
    X = load(data)
    out = {}
    for attempt in range(repeats):
        start = time.perf_counter()
        result = jaxgmm.select(X, ks, types, n_init=n_init, init_params=init, random_state=0)
        out["again" if attempt else "first"] = time.perf_counter() - start
    best = result.best_row
    out["best"] = f"{best['covariance_type']} K={best['n_components']}"
    out["bic"] = float(best["bic"])
    return out


def _sklearn_select(spec) -> dict:
    from sklearn.mixture import GaussianMixture

    data, types, ks, n_init, _ = spec
    X = load(data)
    start = time.perf_counter()
    best = None
    for covariance_type in types:
        for k in ks:
            model = GaussianMixture(
                k, covariance_type=covariance_type, n_init=n_init, random_state=0
            )
            bic = model.fit(X).bic(X)
            if best is None or bic < best[0]:
                best = (bic, f"{covariance_type} K={k}")
    return {"first": time.perf_counter() - start, "best": best[1], "bic": float(best[0])}


def _fit(name: str, impl: str, repeats: int) -> dict:
    import numpy as np

    out = {}
    if name == "first-fit-faithful":
        X = load("faithful")
        if impl == "jaxgmm":
            from jaxgmm import GaussianMixture
        else:
            from sklearn.mixture import GaussianMixture
        for attempt in range(repeats):
            start = time.perf_counter()
            GaussianMixture(3, covariance_type="tied", random_state=0).fit(X)
            out["again" if attempt else "first"] = time.perf_counter() - start
        return out
    X = load("small-2d")
    weights = np.full(3, 1 / 3)
    means = np.array([[-3.0, 0.5], [0.5, 2.0], [3.0, -0.5]])
    covariances = np.stack([np.eye(2) * 1.5] * 3)
    for attempt in range(repeats):
        start = time.perf_counter()
        if impl == "jaxgmm":
            import jax

            import jaxgmm

            X32 = X.astype(np.float32)
            init = jaxgmm.params_from_covariances(
                weights.astype(np.float32),
                means.astype(np.float32),
                covariances.astype(np.float32),
                covariance_type="full",
            )
            result = jaxgmm.fit(jax.random.key(0), X32, 3, init=init, max_iter=10, tol=0.0)
            jax.block_until_ready(result.params.means)
        else:
            from sklearn.mixture import GaussianMixture

            GaussianMixture(
                3,
                max_iter=10,
                tol=0.0,
                weights_init=weights,
                means_init=means,
                precisions_init=np.linalg.inv(covariances),
            ).fit(X)
        out["again" if attempt else "first"] = time.perf_counter() - start
    return out


def worker(argv: list[str]) -> None:
    import warnings

    warnings.simplefilter("ignore")
    source = os.environ.get("BENCH_JAXGMM_SOURCE")
    if source:  # another checkout's jaxgmm, ahead of an editable install's import hook
        sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        sys.path.insert(0, source)
        import jaxgmm

        assert Path(jaxgmm.__file__).resolve().is_relative_to(Path(source).resolve())
    kind, impl, name, repeats = argv[0], argv[1], argv[2], int(argv[3])
    # imports are excluded from every timing, whichever checkout is measured
    if impl == "jaxgmm":
        import jax  # noqa: F401

        import jaxgmm  # noqa: F401, F811
    else:
        import sklearn.mixture  # noqa: F401
    if kind == "fit":
        result = _fit(name, impl, repeats)
    else:
        spec = (WORKLOADS | QUICK)[name]
        result = _jaxgmm_select(spec, repeats) if impl == "jaxgmm" else _sklearn_select(spec)
    print(json.dumps(result))


# -- the driver ----------------------------------------------------------------------------------


def _python(args: list[str], env: dict, timeout: float) -> dict:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    lines = proc.stdout.strip().splitlines()
    result = json.loads(lines[-1]) if lines and proc.returncode == 0 else {}
    if proc.returncode != 0:
        error = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "?"
        result["error"] = f"exit {proc.returncode}: {error}"
    return result


def _mclust(spec, tmp: Path) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    import numpy as np

    data, types, ks, _, _ = spec
    path = tmp / f"{data}.csv"
    if not path.exists():
        np.savetxt(path, load(data), delimiter=",")
    models = (
        ""
        if types == "all"
        else ", modelNames = c({})".format(", ".join(f'"{MCLUST_NAMES[t]}"' for t in types))
    )
    script = f"""
        suppressMessages(library(mclust))
        X <- as.matrix(read.csv("{path}", header = FALSE))
        t <- system.time(m <- Mclust(X, G = {min(ks)}:{max(ks)}{models}, verbose = FALSE))
        cat(t[["elapsed"]], m$modelName, m$G, -m$bic, "\\n")
    """
    proc = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:]}
    seconds, model, k, bic = proc.stdout.split()
    return {"first": float(seconds), "best": f"{model} K={k}", "bic": float(bic)}


def run(args) -> dict:
    sys.path.insert(0, str(HERE.parent))
    from bench.machine import describe

    results = {"machine": describe(), "label": args.label, "selections": {}, "fits": {}}
    env = dict(os.environ)
    if args.source:
        env["BENCH_JAXGMM_SOURCE"] = str(Path(args.source).resolve())
    workloads = QUICK if args.quick else {w: WORKLOADS[w] for w in args.workloads}
    peers = [] if args.jaxgmm_only else ["sklearn", "mclust"]
    with tempfile.TemporaryDirectory(prefix="jaxgmm-selection-") as tmp_name:
        tmp = Path(tmp_name)
        cache = tmp / "programs"
        jaxgmm_env = env | {"JAXGMM_CACHE_DIR": str(cache)}
        for name, spec in workloads.items():
            row = {}
            shutil.rmtree(cache, ignore_errors=True)
            row["jaxgmm cold"] = _python(["select", "jaxgmm", name, "1"], jaxgmm_env, args.timeout)
            row["jaxgmm warm"] = _python(["select", "jaxgmm", name, "2"], jaxgmm_env, args.timeout)
            if "sklearn" in peers and spec[1] != "all":
                row["scikit-learn"] = _python(["select", "sklearn", name, "1"], env, args.timeout)
            if "mclust" in peers:
                mclust = _mclust(spec, tmp)
                if mclust is not None:
                    row["mclust"] = mclust
            results["selections"][name] = row
            print(name, json.dumps(row), flush=True)
        for name in () if args.quick else FITS:
            row = {}
            shutil.rmtree(cache, ignore_errors=True)
            row["jaxgmm cold"] = _python(["fit", "jaxgmm", name, "1"], jaxgmm_env, args.timeout)
            row["jaxgmm warm"] = _python(["fit", "jaxgmm", name, "3"], jaxgmm_env, args.timeout)
            if "sklearn" in peers:
                row["scikit-learn"] = _python(["fit", "sklearn", name, "3"], env, args.timeout)
            results["fits"][name] = row
            print(name, json.dumps(row), flush=True)
    return results


def _cell(result: dict | None, key: str = "first") -> str:
    if not result:
        return "-"
    if "error" in result:
        return "error"
    value = result.get(key)
    return "-" if value is None else f"{value:.3f}"


def report(results: dict, command: str, seconds: float) -> str:
    from bench.machine import header_lines

    label = f" ({results['label']})" if results.get("label") else ""
    lines = [f"# Model selection end to end (bench/selection.py){label}", ""]
    lines += header_lines(results["machine"], command, seconds)
    lines += [
        "",
        "Seconds, each in a fresh process, imports excluded. jaxgmm cold: no compiled program "
        "on disk; warm: a new process with the programs the cold run left; again: the same "
        "call repeated in that process. Ratios: the peer's time over jaxgmm's warm time.",
        "",
        "| workload | jaxgmm cold | warm | again | scikit-learn | mclust | sklearn / warm "
        "| mclust / warm | best: jaxgmm / sklearn / mclust |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, row in results["selections"].items():
        warm = row.get("jaxgmm warm", {})
        ratios = []
        for peer in ("scikit-learn", "mclust"):
            p = row.get(peer, {})
            ok = p.get("first") and warm.get("first")
            ratios.append(f"{p['first'] / warm['first']:.2f}" if ok else "-")
        best = " / ".join(
            f"{row[impl]['best']} ({row[impl]['bic']:.2f})"
            if row.get(impl, {}).get("best")
            else "-"
            for impl in ("jaxgmm warm", "scikit-learn", "mclust")
        )
        lines.append(
            f"| {name} | {_cell(row.get('jaxgmm cold'))} | {_cell(warm)} | "
            f"{_cell(warm, 'again')} | {_cell(row.get('scikit-learn'))} | "
            f"{_cell(row.get('mclust'))} | {ratios[0]} | {ratios[1]} | {best} |"
        )
    if results["fits"]:
        lines += [
            "",
            "| single fit | jaxgmm cold | warm | again | scikit-learn (again) | sklearn / again |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in results["fits"].items():
            warm, sk = row.get("jaxgmm warm", {}), row.get("scikit-learn", {})
            ratio = (
                f"{sk['again'] / warm['again']:.2f}"
                if sk.get("again") and warm.get("again")
                else "-"
            )
            lines.append(
                f"| {name} | {_cell(row.get('jaxgmm cold'))} | {_cell(warm)} | "
                f"{_cell(warm, 'again')} | {_cell(sk, 'again')} | {ratio} |"
            )
    lines += [
        "",
        "BIC in scikit-learn's sign (lower is better); mclust's printed with its sign flipped.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        worker(argv[1:])
        return
    parser = argparse.ArgumentParser(
        prog="python -m bench.selection", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--quick", action="store_true", help="one tiny grid, no peers' fits")
    parser.add_argument("--jaxgmm-only", action="store_true", help="no scikit-learn, no mclust")
    parser.add_argument("--source", help="time the jaxgmm of this checkout instead")
    parser.add_argument("--label", default="", help="a name for the report's title")
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.workloads = args.workloads.split(",")
    start = time.perf_counter()
    results = run(args)
    command = "python -m bench.selection " + " ".join(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report(results, command.strip(), time.perf_counter() - start))
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
