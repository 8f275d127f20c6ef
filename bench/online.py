"""``python -m bench.online``: ``partial_fit`` on data read once in mini-batches, against the
full fit of the same data (issue 25's online goal).

1,000,000 x 8 float32 rows from 8 components (``bench.workloads``' generator, shuffled), read
once in batches of 10,000 (100 steps): online EM (``GaussianMixture.partial_fit``) and
stochastic variational inference (``BayesianGaussianMixture.partial_fit`` with
``total_samples`` the data's size), each against the estimator's ``fit`` of all rows (k-means
start, default tolerance). Reported: the mean log-likelihood per row on all rows (``score``;
for the Bayesian model scikit-learn's, the variational E-step's log normaliser), and for the
Bayesian model also the lower bound per row after one full variational iteration from each
posterior (scikit-learn's bound is defined after an M-step), and the times (the second of two
runs in the process, so compilation is out; the first run's in brackets).

Writes ``bench/results/online.md`` (``--quick``: 100,000 rows in batches of 2,000, printed only).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from .machine import describe, header_lines
from .workloads import _sample, _true_mixture

RESULTS = Path(__file__).resolve().parent / "results" / "online.md"


def _twice(run):
    times = []
    for _ in range(2):
        start = time.perf_counter()
        model = run()
        times.append(time.perf_counter() - start)
    return model, times


def _bound_per_row(model, X) -> float:
    """The Bayesian model's lower bound per row after one more variational iteration on X."""
    from jaxgmm import _variational

    result = _variational.fit_variational(
        X,
        model._posterior(X.dtype),
        model._fitted_prior(),
        covariance_type=model.covariance_type,
        weight_type=model.weight_concentration_prior_type,
        reg_covar=model.reg_covar,
        tol=0.0,
        max_iter=1,
    )
    return float(result.lower_bound) / len(X)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import jaxgmm

    began = time.perf_counter()
    n, batch = (100_000, 2_000) if args.quick else (1_000_000, 10_000)
    rng = np.random.default_rng(7)
    X = _sample(rng, n, *_true_mixture(rng, 8, 8)).astype(np.float32)
    X = X[np.random.default_rng(0).permutation(n)]
    rows = []
    for name, make, extra in (
        ("GaussianMixture (online EM)", jaxgmm.GaussianMixture, {}),
        ("BayesianGaussianMixture (SVI)", jaxgmm.BayesianGaussianMixture, {"total_samples": n}),
    ):

        def full(make=make):
            return make(n_components=8, random_state=0).fit(X)

        def online(make=make, extra=extra):
            model = make(n_components=8, random_state=0, **extra)
            for start in range(0, n, batch):
                model.partial_fit(X[start : start + batch])
            return model

        full_model, full_times = _twice(full)
        online_model, online_times = _twice(online)
        bounds = ""
        if make is jaxgmm.BayesianGaussianMixture:
            b_full, b_online = _bound_per_row(full_model, X), _bound_per_row(online_model, X)
            bounds = f"{b_full:.5f} / {b_online:.5f} ({(b_online - b_full) / abs(b_full):+.2e})"
        s_full, s_online = full_model.score(X), online_model.score(X)
        rows.append(
            f"| {name} | {full_times[1]:.2f} ({full_times[0]:.2f}), {full_model.n_iter_} iter | "
            f"{online_times[1]:.2f} ({online_times[0]:.2f}), {online_model.n_steps_} batches | "
            f"{s_full:.5f} / {s_online:.5f} ({(s_online - s_full) / abs(s_full):+.2e}) | "
            f"{bounds or '-'} |"
        )
    machine = describe()
    command = "python -m bench.online" + (" --quick" if args.quick else "")
    text = "\n".join(
        [
            "# partial_fit: data read once in mini-batches, against the full fit",
            "",
            *header_lines(machine, command, time.perf_counter() - began),
            f"- data: {n:,} x 8 float32, 8 components, batches of {batch:,}",
            "",
            "| estimator | full fit, s | online, s | score per row: full / online (relative) | "
            "lower bound per row: full / online |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    print(text)
    if not args.quick:
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
