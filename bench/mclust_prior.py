"""jaxgmm against R's mclust 6.0.0 with mclust's default conjugate prior (``prior="default"``).

    python -m bench.mclust_prior      # about 4 minutes on 2 shared cores (float64, CPU)

For R's faithful and iris data (jaxgmm/data), each of the ten models that have a prior (all of
mclust's but VEE, EVE, VVE and EVV) and K = 1..6, wherever mclust's own fit with the prior
converged, jaxgmm's log-likelihood minus mclust's (recorded by tests/data/mclust/make_reference.R:
``me()`` from mclust's hierarchical-clustering start, ``priorControl()``, tolerance 1e-11 on
the relative change of the log-likelihood), from three fits, each one ``jaxgmm.select`` over
the whole grid with ``prior="default"`` and ``reg_covar=0`` (mclust has no regularisation; the
prior keeps every covariance positive definite), in float64:

A. **mclust's start**: ``init_params="hc"`` (jaxgmm's hierarchical clustering, whose partitions
   equal mclust's, tests/test_hc.py), one restart, ``tol=1e-14``: EM as mclust's ``me``.
B. **jaxgmm's own start**: k-means, ``n_init=4``, ``random_state=0``, ``tol=1e-8``: the
   selection a user would run. Timed: the first call for the data set (compilation included:
   the script turns jaxgmm's disk cache of compiled programs off) and a second, identical call.
C. The same start as B with ``tol=1e-14``: separates a stop short of the optimum (B) from
   another local optimum (C).

The log-likelihood is that of the MAP estimate (the rows' ``log_likelihood``; EM's lower bound
is the log posterior). ``tol`` is on the change of the lower bound per sample: 1e-14 is about
mclust's 1e-11 relative to the total at this N, tightened until the flat directions of the
posterior no longer move the log-likelihood by 1e-4.

By design jaxgmm differs from mclust 6 for EII (mclust leaves the prior's scale out of the
variance), EEI (its EM does not pull the means, and counts no degrees of freedom for the means'
priors) and EVI (no degrees of freedom for the means' priors): jaxgmm takes the posterior's mode
(README, jaxgmm/_prior.py). Then the BIC-best model with the prior: jaxgmm's own-start selection
(B) against the best of mclust's recorded fits with the prior (from mclust's start: mclust's own
BIC table, ``*_mclustBIC.csv``, was recorded without a prior).

The report, with the machine (bench/machine.py) and the date, goes to
``bench/results/mclust_prior.md`` and is printed.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import time
import warnings
from pathlib import Path

import jax
import numpy as np

import jaxgmm

from .machine import describe, header_lines

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "jaxgmm" / "data"
MCLUST = ROOT / "tests" / "data" / "mclust"
RESULTS = Path(__file__).resolve().parent / "results"
DATA_SETS = ("faithful", "iris")
KS = range(1, 7)
# the ten models with a prior, in mclust's order, and jaxgmm's names of four of them
MODELS = ("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
JAXGMM_NAME = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
MCLUST_NAME = {v: k for k, v in JAXGMM_NAME.items()}
BY_DESIGN = {
    "EII": "by design: mclust leaves the prior's scale out of the variance",
    "EEI": "by design: mclust does not pull the means, no dof for the means' priors",
    "EVI": "by design: mclust counts no dof for the means' priors",
}
TIGHT = 1e-14
LOOSE = 1e-8
MAX_ITER = 20_000
ABS, REL = 1e-4, 1e-6  # "within": |difference| <= ABS, |difference| / |mclust's| <= REL
OPTIMUM = 1e-3  # own start (C) vs mclust's start (A) further apart than this: another optimum
RUNS = {
    "A": f"mclust's start, tol {TIGHT:.0e}",
    "B": f"own start, tol {LOOSE:.0e}",
    "C": f"own start, tol {TIGHT:.0e}",
}


def read_data(name: str) -> np.ndarray:
    return np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1, dtype=np.float64)


def mclust_with_prior(name: str) -> dict[tuple[str, int], dict[str, float]]:
    """mclust's log-likelihood and BIC (its sign) with the prior, where its fit converged."""
    with open(MCLUST / f"{name}_em.csv") as f:
        return {
            (r["model"], int(r["G"])): {"loglik": float(r["loglik"]), "bic": float(r["bic"])}
            for r in csv.DictReader(f)
            if r["prior"] == "TRUE" and r["loglik"] != "NA" and r["model"] in MODELS
        }


def mclust_bic_table_has_prior(name: str) -> bool:
    """Whether Mclust's own BIC table was recorded with a prior (make_reference.R calls
    ``mclustBIC(X, G = 1:6)``, without one: its header has no prior column)."""
    with open(MCLUST / f"{name}_mclustBIC.csv") as f:
        return "prior" in next(csv.reader(f))


def mclust_best_without_prior(name: str) -> tuple[str, int, float]:
    with open(MCLUST / f"{name}_mclustBIC.csv") as f:
        rows = [r for r in csv.DictReader(f) if r["bic"] != "NA"]
    best = max(rows, key=lambda r: float(r["bic"]))
    return best["model"], int(best["G"]), float(best["bic"])


def run_select(X, start: str, tol: float):
    """jaxgmm's selection over the ten models and K = 1..6 with the prior: rows keyed by
    (mclust's model name, K), the result and the seconds it took."""
    hc = start == "hc"
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "the best K is at the edge of the grid": reported
        result = jaxgmm.select(
            X,
            KS,
            [JAXGMM_NAME.get(m, m) for m in MODELS],
            prior="default",
            init_params=start,
            n_init=1 if hc else 4,
            random_state=0,
            tol=tol,
            reg_covar=0.0,
            max_iter=MAX_ITER,
        )
    seconds = time.perf_counter() - started
    rows = {
        (MCLUST_NAME.get(r["covariance_type"], r["covariance_type"]), r["n_components"]): r
        for r in result.rows
    }
    return rows, result, seconds


def compare(name: str) -> dict:
    X = read_data(name)
    reference = mclust_with_prior(name)
    own, own_result, cold = run_select(X, "kmeans", LOOSE)
    _, _, warm = run_select(X, "kmeans", LOOSE)
    own_tight, _, _ = run_select(X, "kmeans", TIGHT)
    hc, hc_result, hc_seconds = run_select(X, "hc", TIGHT)
    runs = {"A": hc, "B": own, "C": own_tight}
    fits = []
    for model in MODELS:
        for k in KS:
            if (model, k) not in reference:
                continue
            expected = reference[model, k]["loglik"]
            ll = {run: float(rows[model, k]["log_likelihood"]) for run, rows in runs.items()}
            fits.append(
                dict(
                    model=model,
                    k=k,
                    mclust=expected,
                    ll=ll,
                    diff={run: value - expected for run, value in ll.items()},
                    n_iter={run: int(rows[model, k]["n_iter"]) for run, rows in runs.items()},
                    converged={
                        run: bool(rows[model, k]["converged"]) for run, rows in runs.items()
                    },
                )
            )
    missing = [
        (model, k, float(hc[model, k]["log_likelihood"]))
        for model in MODELS
        for k in KS
        if (model, k) not in reference
    ]
    not_converged = {
        run: sum(not r["converged"] for r in rows.values()) for run, rows in runs.items()
    }
    return dict(
        name=name,
        shape=X.shape,
        reference=reference,
        fits=fits,
        missing=missing,
        not_converged=not_converged,
        own=own,
        own_best=own_result.best_row,
        hc=hc,
        hc_best=hc_result.best_row,
        seconds=dict(cold=cold, warm=warm, hc=hc_seconds),
        bic_table_has_prior=mclust_bic_table_has_prior(name),
        best_without_prior=mclust_best_without_prior(name),
    )


def within(fit: dict, run: str) -> tuple[bool, bool]:
    d = abs(fit["diff"][run])
    return d <= ABS, d <= REL * abs(fit["mclust"])


def reason(fit: dict) -> str:
    """Why a fit differs from mclust's, where known."""
    reasons = [BY_DESIGN[fit["model"]]] if fit["model"] in BY_DESIGN else []
    gap = fit["ll"]["C"] - fit["ll"]["A"]
    if abs(gap) > OPTIMUM:
        side = "higher" if gap > 0 else "lower"
        reasons.append(f"own start: another local optimum, {side} by {abs(gap):.3g}")
    elif fit["model"] not in BY_DESIGN:
        if abs(fit["diff"]["C"]) > ABS:
            reasons.append(f"own start: a stop along a flat direction ({fit['n_iter']['C']} it.)")
        elif abs(fit["diff"]["B"]) > ABS:
            reasons.append(f"own start: tol {LOOSE:.0e} stops short")
    if fit["model"] not in BY_DESIGN and abs(fit["diff"]["A"]) > ABS:
        reasons.append(f"mclust's start: a stop along a flat direction ({fit['n_iter']['A']} it.)")
    return "; ".join(reasons) or "?"


def fmt(x: float) -> str:
    return f"{x:+.2e}"


def mclust_bic(row: dict) -> float:
    return -float(row["bic"])


def section(c: dict) -> list[str]:
    fits = c["fits"]
    n, d = c["shape"]
    lines = [
        f"## {c['name']} (N = {n}, D = {d})",
        "",
        f"{len(fits)} fits compared: the ten models x K = 1..6 where mclust's fit with the prior "
        f"converged. Not converged within {MAX_ITER:,} iterations: "
        + ", ".join(f"{run} {count}" for run, count in c["not_converged"].items())
        + ".",
        "",
        "| run | within 1e-4 | within 1e-6 rel. | smallest difference | largest difference |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for run, label in RUNS.items():
        ok = [within(f, run) for f in fits]
        diffs = [f["diff"][run] for f in fits]
        lines.append(
            f"| {run}: {label} | {sum(a for a, _ in ok)}/{len(fits)} | "
            f"{sum(r for _, r in ok)}/{len(fits)} | {fmt(min(diffs))} | {fmt(max(diffs))} |"
        )
    others = [f for f in fits if f["model"] not in BY_DESIGN]
    lines += [
        "",
        f"Without EII, EEI and EVI ({len(others)} fits): "
        + "; ".join(
            f"{run} {sum(within(f, run)[0] for f in others)} within 1e-4, "
            f"{sum(within(f, run)[1] for f in others)} within 1e-6 rel."
            for run in RUNS
        ),
        "",
        "Largest |jaxgmm - mclust| per model:",
        "",
        "| model | fits | A | B | C | note |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for model in MODELS:
        mine = [f for f in fits if f["model"] == model]
        if not mine:
            lines.append(f"| {model} | 0 | | | | mclust failed at every K |")
            continue
        worst = {run: max(abs(f["diff"][run]) for f in mine) for run in RUNS}
        note = BY_DESIGN.get(model, "")
        lines.append(
            f"| {model} | {len(mine)} | {worst['A']:.2e} | {worst['B']:.2e} | "
            f"{worst['C']:.2e} | {note} |"
        )
    differing = [f for f in fits if any(not within(f, run)[0] for run in RUNS)]
    lines += [
        "",
        f"Fits that differ by more than 1e-4 in any run ({len(differing)}), jaxgmm - mclust:",
        "",
        "| model | K | mclust log L | A | B | C | reason |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for f in differing:
        lines.append(
            f"| {f['model']} | {f['k']} | {f['mclust']:.4f} | {fmt(f['diff']['A'])} | "
            f"{fmt(f['diff']['B'])} | {fmt(f['diff']['C'])} | {reason(f)} |"
        )
    if c["missing"]:
        lines += [
            "",
            "mclust's fit with the prior failed from its start (not compared); jaxgmm's "
            "log-likelihood from the same start: "
            + ", ".join(f"{m} K={k} {ll:.4f}" for m, k, ll in c["missing"])
            + ".",
        ]
    lines += ["", *bic_section(c)]
    return lines


def bic_section(c: dict) -> list[str]:
    reference = c["reference"]
    (m_model, m_k), m = max(reference.items(), key=lambda item: item[1]["bic"])
    own, hc = c["own_best"], c["hc_best"]
    own_key = (MCLUST_NAME.get(own["covariance_type"], own["covariance_type"]), own["n_components"])
    hc_key = (MCLUST_NAME.get(hc["covariance_type"], hc["covariance_type"]), hc["n_components"])
    mclust_of_own = reference.get(own_key, {}).get("bic", math.nan)
    b_model, b_k, b_bic = c["best_without_prior"]
    table_note = (
        "has rows with the prior"
        if c["bic_table_has_prior"]
        else "was recorded without the prior (``mclustBIC(X, G = 1:6)``), so it is not compared"
    )
    lines = [
        "### BIC-best model with the prior",
        "",
        f"Mclust's own BIC table ({c['name']}_mclustBIC.csv) {table_note}; its best without the "
        f"prior is {b_model}, K = {b_k}, BIC {b_bic:.3f} (mclust's sign). mclust's best with "
        "the prior is the best of its recorded `me()` fits with the prior, from its start.",
        "",
        "| selection | model | K | BIC (jaxgmm: lower is better) | BIC (mclust's sign) | "
        "the other's BIC of it (mclust's sign) |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
        f"| jaxgmm, own start (B) | {own_key[0]} | {own_key[1]} | {own['bic']:.3f} | "
        f"{mclust_bic(own):.3f} | mclust: {mclust_of_own:.3f} |",
        f"| jaxgmm, mclust's start (A) | {hc_key[0]} | {hc_key[1]} | {hc['bic']:.3f} | "
        f"{mclust_bic(hc):.3f} | mclust: {reference.get(hc_key, {}).get('bic', math.nan):.3f} |",
        f"| mclust 6.0.0, its start | {m_model} | {m_k} | {-m['bic']:.3f} | {m['bic']:.3f} | "
        f"jaxgmm (B): {mclust_bic(c['own'][m_model, m_k]):.3f} |",
    ]
    slowest = max(r["n_iter"] for r in c["own"].values())
    top_own = sorted(
        (r for r in c["own"].values() if math.isfinite(r["bic"])), key=lambda r: r["bic"]
    )[:3]
    top_mclust = sorted(reference.items(), key=lambda item: -item[1]["bic"])[:3]
    lines += [
        "",
        "Top three (mclust's sign): jaxgmm (B) "
        + ", ".join(
            f"{MCLUST_NAME.get(r['covariance_type'], r['covariance_type'])},"
            f"{r['n_components']} {mclust_bic(r):.3f}"
            for r in top_own
        )
        + "; mclust "
        + ", ".join(f"{model},{k} {v['bic']:.3f}" for (model, k), v in top_mclust)
        + ".",
        "",
        f"Time of jaxgmm's selection with the prior (10 models x K = 1..6, own start, n_init=4, "
        f"tol {LOOSE:.0e}, up to {slowest} EM iterations): {c['seconds']['cold']:.1f} s the "
        f"first call (compilation included, jaxgmm's disk cache of programs off), "
        f"{c['seconds']['warm']:.1f} s the second (compiled); from mclust's start (tol "
        f"{TIGHT:.0e}, compilation included): {c['seconds']['hc']:.1f} s.",
        "",
    ]
    return lines


def report(machine: dict, results: list[dict], seconds: float) -> str:
    lines = [
        "# jaxgmm against mclust 6.0.0 with the default prior",
        "",
        *header_lines(machine, "python -m bench.mclust_prior", seconds),
        "",
        "jaxgmm's log-likelihood (at its MAP estimate) minus mclust's, `prior=\"default\"`, "
        "float64, `reg_covar=0`, every run a `jaxgmm.select` over the ten models with a prior "
        f"and K = 1..6 (max_iter {MAX_ITER:,}):",
        "",
        f'- **A**: {RUNS["A"]} (`init_params="hc"`, one restart), as mclust\'s `me()`;',
        f"- **B**: {RUNS['B']} (k-means, `n_init=4`, `random_state=0`): the selection a user "
        "would run;",
        f"- **C**: {RUNS['C']}: B's start run to convergence, to tell a stop short of the optimum "
        "from another optimum.",
        "",
        "mclust's figures: tests/data/mclust/*_em.csv (`me()` from its hierarchical start with "
        "`priorControl()`, tolerance 1e-11 relative). Within: |difference| <= 1e-4, and "
        "|difference| / |mclust's| <= 1e-6. EII, EEI and EVI differ by design (jaxgmm takes the "
        "posterior's mode where mclust 6's EM step does not; README). Another optimum: C's "
        f"log-likelihood more than {OPTIMUM:.0e} from A's.",
        "",
    ]
    for c in results:
        lines += section(c)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "mclust_prior.md")
    args = parser.parse_args()
    jax.config.update("jax_enable_x64", True)
    # jaxgmm's disk cache of compiled programs off: the first call of each selection then
    # compiles, as in a fresh environment (later calls use the programs kept in memory)
    os.environ["JAXGMM_CACHE_DIR"] = ""
    started = time.perf_counter()
    machine = describe()
    results = [compare(name) for name in DATA_SETS]
    text = report(machine, results, time.perf_counter() - started)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
