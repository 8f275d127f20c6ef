"""``python -m bench.variational``: ``BayesianGaussianMixture``, jaxgmm against scikit-learn.

Per iteration: the difference between a fit of ``LONG`` and one of ``SHORT`` iterations
(``tol=0``, the same start method, best of ``REPEATS``), divided by the iterations between, so
that the start and the call's fixed cost cancel; jaxgmm's in a warm process (its programs
compiled by a first call). End to end: a default fit (``tol=1e-3``, k-means start), jaxgmm's
cold (its first call in the process, programs from the disk cache when it holds them) and
again. Data: the bench's mid-16 workload (``bench.workloads``: 100,000 x 16, 16 well-separated
components), float64 for scikit-learn, float64 and float32 for jaxgmm.

Writes ``bench/results/variational.md`` (``--quick``: 10,000 rows, printed only).
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np

from .machine import describe, header_lines
from .workloads import _sample, _true_mixture

RESULTS = Path(__file__).resolve().parent / "results" / "variational.md"
SHORT, LONG, REPEATS = 2, 22, 3


def _data(n: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    return _sample(rng, n, *_true_mixture(rng, 16, 16))


def _timed(make, X, max_iter: int) -> tuple[float, object]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        model = make(max_iter).fit(X)
        return time.perf_counter() - start, model


def _per_iteration(make, X) -> float:
    best = {}
    for max_iter in (SHORT, LONG):
        best[max_iter] = min(_timed(make, X, max_iter)[0] for _ in range(REPEATS))
    return (best[LONG] - best[SHORT]) / (LONG - SHORT)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    from sklearn.mixture import BayesianGaussianMixture as Sklearn

    import jaxgmm

    began = time.perf_counter()
    X = _data(10_000 if args.quick else 100_000)
    rows = []
    for covariance_type in ("full", "diag"):

        def ours(max_iter, tol=0.0, init="random_from_data", covariance_type=covariance_type):
            return jaxgmm.BayesianGaussianMixture(
                n_components=16,
                covariance_type=covariance_type,
                max_iter=max_iter,
                tol=tol,
                init_params=init,
                random_state=0,
            )

        def theirs(max_iter, tol=0.0, init="random_from_data", covariance_type=covariance_type):
            return Sklearn(
                n_components=16,
                covariance_type=covariance_type,
                max_iter=max_iter,
                tol=tol,
                init_params=init,
                random_state=0,
            )

        cold, _ = _timed(lambda m: ours(m, 1e-3, "kmeans"), X, 500)
        again, model = _timed(lambda m: ours(m, 1e-3, "kmeans"), X, 500)
        sk_time, sk_model = _timed(lambda m: theirs(m, 1e-3, "kmeans"), X, 500)
        per = {"scikit-learn float64": _per_iteration(theirs, X)}
        for dtype in (np.float64, np.float32):
            _timed(ours, X.astype(dtype), SHORT)  # compile
            per[f"jaxgmm {np.dtype(dtype).name}"] = _per_iteration(ours, X.astype(dtype))
        rows.append((covariance_type, per, cold, again, model, sk_time, sk_model))

    machine = describe()
    command = "python -m bench.variational" + (" --quick" if args.quick else "")
    lines = [
        "# BayesianGaussianMixture: jaxgmm against scikit-learn",
        "",
        *header_lines(machine, command, time.perf_counter() - began),
        f"- data: mid-16 ({len(X):,} x 16, 16 components), K = 16, Dirichlet process",
        "",
        "Per iteration (ms; the difference of fits of "
        f"{LONG} and {SHORT} iterations, best of {REPEATS}):",
        "",
        "| covariance | scikit-learn float64 | jaxgmm float64 | jaxgmm float32 | ratio f64 | "
        "ratio f32 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for covariance_type, per, *_ in rows:
        sk = per["scikit-learn float64"]
        j64, j32 = per["jaxgmm float64"], per["jaxgmm float32"]
        lines.append(
            f"| {covariance_type} | {1e3 * sk:.1f} | {1e3 * j64:.1f} | {1e3 * j32:.1f} | "
            f"{sk / j64:.1f}x | {sk / j32:.1f}x |"
        )
    lines += [
        "",
        "End to end, a default fit (k-means start, tol 1e-3), float64, seconds; lower bound and "
        "iterations:",
        "",
        "| covariance | jaxgmm cold | jaxgmm again | scikit-learn | jaxgmm bound (n_iter) | "
        "scikit-learn bound (n_iter) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for covariance_type, _, cold, again, model, sk_time, sk_model in rows:
        lines.append(
            f"| {covariance_type} | {cold:.2f} | {again:.2f} | {sk_time:.2f} | "
            f"{model.lower_bound_:.1f} ({model.n_iter_}) | "
            f"{float(np.ravel(sk_model.lower_bound_)[0]):.1f} ({sk_model.n_iter_}) |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.write_text(text)


if __name__ == "__main__":
    main()
