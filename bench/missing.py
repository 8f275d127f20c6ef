"""Values missing at random (``missing="em"``): what they cost and what they give back.

    python -m bench.missing           # N = 100,000: about 12 minutes on 2 idle cores
    python -m bench.missing --quick   # N = 5,000, 1 and 4 iterations: about a minute

1. **Speed**: the mid-16 workload of bench/workloads.py (D = 16, K = 16, full and diag, its data
   and perturbed start, float32) with 0%, 10% and 30% of values removed completely at random.
   Each fit is ``jaxgmm.fit(..., missing="em", max_iter=T, tol=0.0, init=start)`` from the same
   start; the first call compiles, the second (the median of ``--repeats``) is timed, for T1 and
   T2 iterations, and time per iteration is ``(t(T2) - t(T1)) / (T2 - T1)`` (compilation and
   start-up cancel). With nothing missing, ``missing="em"`` takes the complete-data path. Rows:
   covariance type, fraction, distinct missingness patterns, s/iter, ratio to the 0% fit.
2. **Recovery** (tests/test_missing.py::test_recovery_beats_complete_rows_and_mean_imputation):
   a known 3-component 4-D mixture, N = 3000, 10%, 20% and 30% removed; EM with the missing
   values, a fit of the complete rows alone, and a fit after mean imputation (n_init=3,
   random_state=0, tol=1e-6). Largest distance of a fitted mean from its true one, largest
   relative Frobenius error of a covariance (components matched by nearest mean).
3. **Iris**: 15% of its 600 values removed (seed 0); ``GaussianMixture(3, "VEV" / "full",
   missing="em", n_init=4, random_state=0)`` in float64: label accuracy against the species
   (best of the 6 permutations), that of a fit on the complete data, RMSE of ``impute`` against
   the removed values and of mean imputation, and the coverage of the 90% interval (5-95%
   quantiles) of 200 multiple imputations.

The report, with the machine (bench/machine.py) and the date, goes to
``bench/results/missing.md`` (``--quick``: ``missing-quick.md``) and is printed.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import jax
import numpy as np

import jaxgmm

from .machine import describe, header_lines
from .workloads import _perturbed, _sample, _true_mixture, as_covariance_type

RESULTS = Path(__file__).resolve().parent / "results"
FRACTIONS = (0.0, 0.10, 0.30)


def holes(X, fraction: float, seed: int) -> np.ndarray:
    """``X`` with ``fraction`` of its values removed completely at random; a row left with no
    value gets its first one back (as tests/test_missing.py does)."""
    rng = np.random.default_rng(seed)
    out = np.array(X, copy=True)
    out[rng.uniform(size=out.shape) < fraction] = np.nan
    empty = np.isnan(out).all(axis=1)
    out[empty, 0] = np.asarray(X)[empty, 0]
    return out


def n_patterns(X) -> int:
    return len(np.unique(np.isnan(X), axis=0))


# --- 1. speed ---------------------------------------------------------------------------------


def _timed_fit(X, start, covariance_type: str, n_iter: int, repeats: int) -> float:
    def once() -> float:
        t0 = time.perf_counter()
        result = jaxgmm.fit(
            jax.random.key(0),
            X,
            16,
            covariance_type=covariance_type,
            missing="em",
            max_iter=n_iter,
            tol=0.0,
            init=start,
        )
        jax.block_until_ready(result)
        assert int(result.n_iter) == n_iter, (int(result.n_iter), n_iter)
        return time.perf_counter() - t0

    once()  # compile
    return float(np.median([once() for _ in range(repeats)]))


def speed(n: int, iterations: tuple[int, int], repeats: int) -> list[dict]:
    rng = np.random.default_rng(4)  # the seed of mid-16 in bench/workloads.py
    truth = _true_mixture(rng, 16, 16)
    X = _sample(rng, n, *truth).astype(np.float32)
    weights, means, covariances = _perturbed(rng, *truth)
    t1, t2 = iterations
    rows = []
    for covariance_type in ("full", "diag"):
        start = jaxgmm.params_from_covariances(
            weights.astype(np.float32),
            means.astype(np.float32),
            as_covariance_type(covariances, covariance_type).astype(np.float32),
            covariance_type=covariance_type,
        )
        for fraction in FRACTIONS:
            Xm = holes(X, fraction, seed=10) if fraction else X
            times = [_timed_fit(Xm, start, covariance_type, t, repeats) for t in (t1, t2)]
            per_iter = (times[1] - times[0]) / (t2 - t1)
            rows.append(
                dict(
                    covariance_type=covariance_type,
                    fraction=fraction,
                    missing=float(np.isnan(Xm).mean()),
                    patterns=n_patterns(Xm),
                    times=times,
                    per_iter=per_iter,
                )
            )
            print(
                f"speed {covariance_type} {fraction:.0%}: {per_iter * 1e3:.1f} ms/iter "
                f"({rows[-1]['patterns']} patterns)",
                flush=True,
            )
    for row in rows:
        base = next(
            r for r in rows if r["covariance_type"] == row["covariance_type"] and not r["fraction"]
        )
        row["ratio"] = row["per_iter"] / base["per_iter"]
    return rows


# --- 2. recovery ------------------------------------------------------------------------------


def _known_mixture():
    """The mixture and sample of test_recovery_beats_complete_rows_and_mean_imputation."""
    rng = np.random.default_rng(0)
    true_means = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 1.0, -2.0, 3.0], [-3.0, 4.0, 2.0, -1.0]])
    base = np.array([[1.0, 0.6, 0.3, 0.0], [0.6, 1.0, 0.5, 0.2], [0.3, 0.5, 1.0, 0.4]])
    true_covariances = np.stack(
        [np.eye(4) + 0.5 * np.outer(b, b) * s for b, s in zip(base, [1.0, 2.0, 0.5], strict=True)]
    )
    labels = rng.integers(0, 3, 3000)
    X = np.stack([rng.multivariate_normal(true_means[k], true_covariances[k]) for k in labels])
    return X, true_means, true_covariances


def _matched_error(means, covariances, true_means, true_covariances) -> tuple[float, float]:
    order = [int(np.argmin(np.linalg.norm(means - m, axis=1))) for m in true_means]
    mean_error = max(np.linalg.norm(means[o] - m) for o, m in zip(order, true_means, strict=True))
    cov_error = max(
        np.linalg.norm(covariances[o] - c) / np.linalg.norm(c)
        for o, c in zip(order, true_covariances, strict=True)
    )
    return float(mean_error), float(cov_error)


def recovery() -> list[dict]:
    X, true_means, true_covariances = _known_mixture()
    settings = dict(n_init=3, random_state=0, tol=1e-6)
    rows = []
    for fraction in (0.10, 0.20, 0.30):
        Xm = holes(X, fraction, seed=1)
        complete_rows = Xm[~np.isnan(Xm).any(axis=1)]
        filled = np.where(np.isnan(Xm), np.nanmean(Xm, axis=0), Xm)
        fits = {
            "EM with missing values": jaxgmm.GaussianMixture(3, missing="em", **settings).fit(Xm),
            f"complete rows only ({len(complete_rows)})": jaxgmm.GaussianMixture(3, **settings).fit(
                complete_rows
            ),
            "mean imputation": jaxgmm.GaussianMixture(3, **settings).fit(filled),
        }
        for method, model in fits.items():
            mean_error, cov_error = _matched_error(
                model.means_, model.covariances_, true_means, true_covariances
            )
            rows.append(dict(fraction=fraction, method=method, mean=mean_error, cov=cov_error))
        print(f"recovery {fraction:.0%} done", flush=True)
    return rows


# --- 3. iris ----------------------------------------------------------------------------------


def _accuracy(labels, species) -> float:
    return max(
        float(np.mean(np.asarray(perm)[labels] == species))
        for perm in itertools.permutations(range(3))
    )


def iris() -> tuple[list[dict], dict]:
    from sklearn.datasets import load_iris

    data = load_iris()
    X, species = data.data.astype(np.float64), data.target
    rng = np.random.default_rng(0)
    removed = np.zeros(X.size, dtype=bool)
    removed[rng.choice(X.size, size=round(0.15 * X.size), replace=False)] = True
    removed = removed.reshape(X.shape)
    removed[removed.all(axis=1), 0] = False  # no row left empty
    Xm = np.where(removed, np.nan, X)
    mean_filled = np.where(removed, np.nanmean(Xm, axis=0), Xm)
    info = dict(
        removed=int(removed.sum()),
        incomplete_rows=int(removed.any(axis=1).sum()),
        patterns=n_patterns(Xm),
        mean_rmse=float(np.sqrt(np.mean((mean_filled - X)[removed] ** 2))),
    )
    rows = []
    for covariance_type in ("VEV", "full"):
        settings = dict(covariance_type=covariance_type, n_init=4, random_state=0)
        model = jaxgmm.GaussianMixture(3, missing="em", **settings).fit(Xm)
        complete = jaxgmm.GaussianMixture(3, **settings).fit(X)
        imputed = model.impute(Xm)
        draws = model.impute(Xm, n_draws=200, key=0)
        low, high = np.quantile(draws, [0.05, 0.95], axis=0)
        inside = (X >= low) & (X <= high)
        rows.append(
            dict(
                covariance_type=covariance_type,
                accuracy=_accuracy(model.predict(Xm), species),
                accuracy_complete=_accuracy(complete.predict(X), species),
                rmse=float(np.sqrt(np.mean((imputed - X)[removed] ** 2))),
                coverage=float(inside[removed].mean()),
            )
        )
        print(f"iris {covariance_type} done", flush=True)
    return rows, info


# --- report -----------------------------------------------------------------------------------


def report(machine, args, speed_rows, recovery_rows, iris_rows, iris_info, seconds) -> str:
    t1, t2 = args.iterations
    lines = [
        f'# Values missing at random (`missing="em"`){" — quick run" if args.quick else ""}',
        "",
        *header_lines(machine, f"python -m bench.missing{' --quick' * args.quick}", seconds),
        "",
        "## 1. Time per EM iteration, mid-16",
        "",
        f"N = {args.n:,}, D = 16, K = 16, float32, the data and start of bench/workloads.py; "
        f"values removed completely at random. s/iter = (t({t2}) - t({t1})) / {t2 - t1}, each "
        f"t the median of {args.repeats} timed call(s) after a compiling one. At 0%, "
        '`missing="em"` takes the complete-data path.',
        "",
        "| covariance | missing | distinct patterns | ms/iter | ratio to 0% |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for r in speed_rows:
        lines.append(
            f"| {r['covariance_type']} | {r['missing']:.1%} | {r['patterns']:,} | "
            f"{r['per_iter'] * 1e3:.2f} | {r['ratio']:.2f} |"
        )
    lines += [
        "",
        "## 2. Recovery of a known mixture",
        "",
        "3 components, D = 4, N = 3000 (tests/test_missing.py); n_init=3, random_state=0, "
        "tol=1e-6. Errors: largest distance of a fitted mean from its true mean, largest "
        "relative Frobenius error of a covariance (components matched by nearest mean).",
        "",
        "| missing | fit | mean error | covariance error |",
        "| ---: | --- | ---: | ---: |",
    ]
    for r in recovery_rows:
        lines.append(f"| {r['fraction']:.0%} | {r['method']} | {r['mean']:.3f} | {r['cov']:.3f} |")
    lines += [
        "",
        "## 3. Iris",
        "",
        f"{iris_info['removed']} of the 600 values removed at random (seed 0; "
        f"{iris_info['incomplete_rows']} incomplete rows, {iris_info['patterns']} patterns); "
        '`GaussianMixture(3, covariance_type=..., missing="em", n_init=4, random_state=0)`, '
        "float64. Accuracy: labels against the species, best of the 6 permutations. RMSE over "
        "the removed values; coverage: fraction of removed values inside the 5-95% quantiles "
        f"of 200 multiple imputations. Mean imputation RMSE: {iris_info['mean_rmse']:.3f}.",
        "",
        "| covariance | accuracy (15% missing) | accuracy (complete data) | impute RMSE "
        "| mean-imputation RMSE | 90% coverage |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in iris_rows:
        lines.append(
            f"| {r['covariance_type']} | {r['accuracy']:.3f} | {r['accuracy_complete']:.3f} | "
            f"{r['rmse']:.3f} | {iris_info['mean_rmse']:.3f} | {r['coverage']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 5,000 for the speed table")
    parser.add_argument("--n", type=int, help="rows of the speed table (default 100,000)")
    parser.add_argument("--iterations", type=int, nargs=2, help="T1 T2 (default 2 7; --quick: 1 4)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per T (median)")
    parser.add_argument("--out", type=Path, help="markdown report")
    args = parser.parse_args()
    args.n = args.n or (5_000 if args.quick else 100_000)
    args.iterations = args.iterations or ((1, 4) if args.quick else (2, 7))
    out = args.out or RESULTS / ("missing-quick.md" if args.quick else "missing.md")
    started = time.perf_counter()
    machine = describe()
    speed_rows = speed(args.n, tuple(args.iterations), args.repeats)
    recovery_rows = recovery()
    iris_rows, iris_info = iris()
    text = report(
        machine,
        args,
        speed_rows,
        recovery_rows,
        iris_rows,
        iris_info,
        time.perf_counter() - started,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
