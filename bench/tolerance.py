"""How ``select`` should stop: its BIC table against mclust's, and the iterations it costs, for
a range of tolerances.

    python -m bench.tolerance      # about a minute on 2 cores (float64, CPU)

For R's faithful and iris data (jaxgmm/data), jaxgmm's selection over mclust's 14 models and
K = 1..6 from mclust's start (``init_params="hc"``, one restart, ``reg_covar=0``: mclust has no
regularisation), float64, once per ``tol`` (jaxgmm's stop: the change of the mean log-likelihood
per row). Each row's BIC is compared with mclust's own table (``tests/data/mclust/
*_mclustBIC.csv``, ``mclustBIC(X, G = 1:6)``, mclust 6.0.0, whose EM stops when the change of the
log-likelihood relative to its size is below 1e-5). Reported per tolerance: how far jaxgmm's BIC
falls short of mclust's (the largest shortfall, the median, the rows more than 0.1 and 1 short), the
rows where jaxgmm ends higher (a better optimum, or mclust stopping earlier), the best model,
the EM iterations summed over the grid, and the time of the selection (the second of two
identical calls in the process). Rows where one of the two failed are left out.

The report, with the machine (bench/machine.py), goes to ``bench/results/tolerance.md`` and is
printed.
"""

from __future__ import annotations

import argparse
import csv
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MCLUST = HERE.parent / "tests" / "data" / "mclust"
DEFAULT_OUT = HERE / "results" / "tolerance.md"
TOLERANCES = (1e-3, 1e-4, 1e-5, 1e-6, 1e-8)
KS = range(1, 7)


def mclust_bic(name: str) -> dict[tuple[str, int], float]:
    """mclust's BIC per (model, G), in jaxgmm's sign (lower is better)."""
    with open(MCLUST / f"{name}_mclustBIC.csv") as f:
        return {
            (r["model"], int(r["G"])): -float(r["bic"])
            for r in csv.DictReader(f)
            if r["bic"] != "NA"
        }


def one_tolerance(X, tol: float, reference: dict) -> dict:
    import jaxgmm

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return jaxgmm.select(
                X, KS, "all", init_params="hc", tol=tol, reg_covar=0.0, random_state=0
            )

    run()
    start = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - start
    by_row = {}  # jaxgmm's BIC minus mclust's: > 0 where jaxgmm stopped short or elsewhere
    for row in result.rows:
        key = (row["covariance_type"], row["n_components"])
        if key in reference and not row["failed"] and np.isfinite(row["bic"]):
            by_row[key] = row["bic"] - reference[key]
    shortfall = np.asarray(list(by_row.values()))
    far = {key: value for key, value in by_row.items() if value > 1.0}
    best = result.best_row
    return {
        "tol": tol,
        "rows": len(shortfall),
        "worst": float(shortfall.max()),
        "median": float(np.median(shortfall)),
        "short": int(np.sum(shortfall > 0.1)),
        "far": int(np.sum(shortfall > 1.0)),
        "far_rows": ", ".join(f"{k[0]} K={k[1]} {v:+.2f}" for k, v in far.items()),
        "higher": int(np.sum(shortfall < -0.1)),
        "best": f"{best['covariance_type']}, K={best['n_components']}",
        "best_bic": float(best["bic"]),
        "iterations": int(sum(row["n_iter"] for row in result.rows)),
        "seconds": seconds,
    }


def report(results: dict, machine: dict, seconds: float) -> str:
    from .machine import header_lines

    lines = ["# When `select` should stop: BIC against mclust's, by tolerance", ""]
    lines += header_lines(machine, "python -m bench.tolerance", seconds)
    for name, (rows, best) in results.items():
        lines += [
            "",
            f"## {name}: mclust's best {best[0]}, K={best[1]}, BIC {best[2]:.3f} (jaxgmm's sign)",
            "",
            "| tol | rows | worst shortfall | median | rows > 0.1 short | rows > 1 short "
            "| rows > 0.1 higher | best | its BIC | EM iterations | select again (s) |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {r['tol']:g} | {r['rows']} | {r['worst']:.3f} | {r['median']:.2g} | {r['short']} "
            f"| {r['far']} | {r['higher']} | {r['best']} | {r['best_bic']:.3f} | {r['iterations']} "
            f"| {r['seconds']:.2f} |"
            for r in rows
        ]
        lines += ["", "Rows more than 1 short, at the tightest tolerance: " + rows[-1]["far_rows"]]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    import jax

    jax.config.update("jax_enable_x64", True)
    from .machine import describe
    from .selection import load

    machine = describe()
    start = time.perf_counter()
    results = {}
    for name in ("faithful", "iris"):
        X = np.asarray(load(name), np.float64)
        reference = mclust_bic(name)
        best = min(reference, key=reference.get)
        rows = [one_tolerance(X, tol, reference) for tol in TOLERANCES]
        results[name] = (rows, (*best, reference[best]))
    text = report(results, machine, time.perf_counter() - start)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
