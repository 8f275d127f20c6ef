"""``python -m bench.bootstrap``: bootstrap inference end to end, jaxgmm against R's mclust.

Each jaxgmm figure is a whole call in a fresh process (cold: an empty program cache; warm: the
cache the cold run filled, and the same call again in that process, "again"); mclust's is
``system.time`` of the same call in R (skipped without ``Rscript`` and mclust). Workloads, all
on faithful: the likelihood-ratio test of EEE mixtures as ``mclustBootstrapLRT`` runs it
(sequential, 999 replicates per test: mclust stops after K = 3, jaxgmm, whose fits of four
components reach a better optimum, after K = 4), the same three tests as mclust's
(``max_components=3``), and 999 nonparametric and weighted-likelihood replicates of the EEE,
K = 3 fit (``MclustBootstrap``).

``--source DIR`` times the jaxgmm of another checkout (a before/after in one run: ``git worktree
add /tmp/before <rev>``, then ``--source /tmp/before``); ``--no-mclust`` skips R.
``--calibration N`` runs only the LRT's calibration: N data sets drawn from faithful's EEE
K = 2 fit, each tested (2 against 3, 99 replicates), and the rejections at levels 0.05 and 0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAITHFUL = ROOT / "jaxgmm" / "data" / "faithful.csv"

JAXGMM = """
import sys, time, json
from pathlib import Path
if {source!r}:  # another checkout's jaxgmm, ahead of an editable install's import hook
    sys.path.insert(0, {source!r})
import numpy as np, jax
jax.config.update("jax_enable_x64", True)
import jaxgmm
assert not {source!r} or Path(jaxgmm.__file__).resolve().is_relative_to(Path({source!r}))
X = np.loadtxt({data!r}, delimiter=",", skiprows=1)
n_boot = {n_boot}
def lrt(max_components=None):
    return jaxgmm.bootstrap_lrt(X, covariance_type="EEE", n_boot=n_boot, random_state=0,
                                max_components=max_components)
def replicates(method):
    model = jaxgmm.GaussianMixture(3, covariance_type="EEE", init_params="hc").fit(X)
    return jaxgmm.bootstrap(model, X, n_boot=n_boot, method=method, random_state=0)
work = {{"lrt": lrt, "lrt-3": lambda: lrt(3), "nonparametric": lambda: replicates("nonparametric"),
        "weighted": lambda: replicates("weighted")}}[sys.argv[1]]
times = []
for _ in range(2):
    start = time.perf_counter()
    result = work()
    times.append(time.perf_counter() - start)
print(json.dumps({{"first": times[0], "again": times[1], "summary": str(result)}}))
"""

MCLUST = """
suppressMessages(library(mclust))
X <- as.matrix(faithful)
n_boot <- {n_boot}
fit <- Mclust(X, G = 3, modelNames = "EEE", verbose = FALSE)
t_lrt <- system.time(mclustBootstrapLRT(X, modelName = "EEE", nboot = n_boot,
                                        verbose = FALSE))[["elapsed"]]
t_bs <- system.time(MclustBootstrap(fit, nboot = n_boot, type = "bs",
                                    verbose = FALSE))[["elapsed"]]
t_wlbs <- system.time(MclustBootstrap(fit, nboot = n_boot, type = "wlbs",
                                      verbose = FALSE))[["elapsed"]]
cat(sprintf('{{"lrt": %f, "nonparametric": %f, "weighted": %f}}\\n', t_lrt, t_bs, t_wlbs))
"""

WORKLOADS = {
    "lrt": "faithful, EEE, sequential LRT (mclust: 3 tests; jaxgmm: 4), 999 replicates each",
    "lrt-3": "faithful, EEE, LRT of K = 1, 2, 3 against K + 1 (`max_components=3`), 999 each",
    "nonparametric": "faithful, EEE, K = 3: 999 nonparametric replicates",
    "weighted": "faithful, EEE, K = 3: 999 weighted-likelihood replicates",
}


def run_jaxgmm(workload: str, n_boot: int, cache: str, source: str = "") -> dict:
    script = JAXGMM.format(data=str(FAITHFUL), n_boot=n_boot, source=source)
    env = os.environ | {"JAXGMM_CACHE_DIR": cache}
    proc = subprocess.run(
        [sys.executable, "-c", script, workload], env=env, capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_mclust(n_boot: int) -> dict | None:
    if shutil.which("Rscript") is None:
        return None
    proc = subprocess.run(
        ["Rscript", "-e", MCLUST.format(n_boot=n_boot)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


CALIBRATION = """
import sys, json
if {source!r}:
    sys.path.insert(0, {source!r})
import numpy as np, jax
jax.config.update("jax_enable_x64", True)
import jaxgmm
X = np.loadtxt({data!r}, delimiter=",", skiprows=1)
null = jaxgmm.GaussianMixture(2, covariance_type="EEE", init_params="hc", tol=1e-6).fit(X)
factor = np.linalg.cholesky(null.covariances_)
rng = np.random.default_rng(123)
p_values = []
for seed in range({n_sets}):
    labels = rng.choice(2, size=len(X), p=null.weights_)
    data = null.means_[labels] + rng.standard_normal((len(X), 2)) @ factor.T
    result = jaxgmm.bootstrap_lrt(data, covariance_type="EEE", max_components=2, n_boot=99,
                                  random_state=seed)
    p_values.append(float(result.p_values[1]))
print(json.dumps(p_values))
"""


def calibration(n_sets: int, source: str) -> None:
    """The LRT's rejections of a true null: ``n_sets`` data sets of faithful's size drawn from
    its EEE K = 2 fit, each tested (2 against 3 components, 99 replicates) at levels 0.05 and
    0.1; a calibrated test rejects at about those rates."""
    import numpy as np

    script = CALIBRATION.format(source=source, data=str(FAITHFUL), n_sets=n_sets)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    p = np.array(json.loads(proc.stdout.strip().splitlines()[-1]))
    for level in (0.05, 0.1):
        sd = (level * (1 - level) * n_sets) ** 0.5
        print(
            f"level {level}: {int((p <= level).sum())} of {n_sets} rejected "
            f"({level * n_sets:.0f} +- {sd:.1f} expected)"
        )
    print("p-value quartiles:", np.quantile(p, [0.25, 0.5, 0.75]).round(3))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=999)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "bootstrap.md"))
    parser.add_argument("--source", default="", help="time the jaxgmm of this checkout")
    parser.add_argument("--no-mclust", action="store_true", help="skip R's mclust")
    parser.add_argument(
        "--calibration", type=int, metavar="N", help="only the LRT's calibration on N null sets"
    )
    args = parser.parse_args(argv)
    source = str(Path(args.source).resolve()) if args.source else ""
    if args.calibration:
        return calibration(args.calibration, source)
    import time

    from bench.machine import describe, header_lines

    machine, started = describe(), time.perf_counter()
    mclust = None if args.no_mclust else run_mclust(args.n_boot)
    rows = []
    for workload, description in WORKLOADS.items():
        with tempfile.TemporaryDirectory() as cache:
            cold = run_jaxgmm(workload, args.n_boot, cache, source)
            warm = run_jaxgmm(workload, args.n_boot, cache, source)
        # mclust's sequential test stops after K = 3 (its 3 against 4 is not significant)
        theirs = None if mclust is None else mclust[workload.replace("lrt-3", "lrt")]
        rows.append((description, cold["first"], warm["first"], warm["again"], theirs))
        print(cold["summary"], flush=True)
    lines = [
        "# Bootstrap inference end to end (`python -m bench.bootstrap`)",
        "",
        *header_lines(
            machine,
            "python -m bench.bootstrap" + (f" --source {source}" if source else ""),
            time.perf_counter() - started,
        ),
        "",
        "| workload | jaxgmm cold s | jaxgmm warm s | jaxgmm again s | mclust s |",
        "| --- | --- | --- | --- | --- |",
    ]
    for description, cold, warm, again, theirs in rows:
        shown = "-" if theirs is None else f"{theirs:.2f}"
        lines.append(f"| {description} | {cold:.2f} | {warm:.2f} | {again:.2f} | {shown} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
