"""The command line's commands: ``fit`` (in memory or streamed), ``select``, ``predict``,
``impute``, ``demo``, ``bootstrap-lrt`` and ``bootstrap``. Each returns its exit code;
``jaxgmm.cli.main`` turns errors into one-line messages."""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from ._cli_io import (
    CommandError,
    csv_text,
    labels_header,
    labels_rows,
    log,
    named,
    output_dir,
    print_model,
    print_written,
    read_data,
    save_model_outputs,
    show_progress,
    versions,
    write_text,
)
from ._noise import has_noise

EXIT_INTERRUPTED = 130


def run_fit(args) -> int:
    from . import BayesianGaussianMixture, GaussianMixture

    if args.bayesian:
        _check_bayesian_options(args)
    if args.stream:
        return _run_fit_stream(args)
    out = output_dir(args)  # before anything slow
    timings = {}
    start = time.perf_counter()
    X, names, source = read_data(args)
    timings["reading"] = round(time.perf_counter() - start, 3)
    common = dict(
        n_components=args.n_components,
        covariance_type=args.covariance_type,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        n_init=args.n_init,
        init_params=args.init,
        random_state=args.seed,
        progress=show_progress(args),
        matmul_precision=args.matmul_precision,
    )
    if args.bayesian:
        print(
            f"Fitting a Bayesian mixture of at most K={args.n_components} components "
            f"({args.covariance_type} covariances, {args.bayesian} prior) to {source}."
        )
        model = BayesianGaussianMixture(
            weight_concentration_prior_type=args.bayesian.replace("-", "_"), **common
        )
    else:
        print(f"Fitting K={args.n_components} ({args.covariance_type} covariances) to {source}.")
        model = GaussianMixture(
            checkpoint=args.checkpoint,
            prior=prior_of(args),
            noise=args.noise,
            missing=args.missing,
            **common,
        )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Fit interrupted")  # reported below
        model.fit(X)
    timings["fitting"] = round(time.perf_counter() - start, 3)
    if model.interrupted_:
        log(
            "interrupted: saving the best result so far, model and summary first (a second "
            "Ctrl-C stops the rest)"
        )
    # the files first: a reader of the printout that goes away (| head) must not lose them
    written = save_model_outputs(model, X, names, source, out, timings, not args.no_plots)
    print_model(model, names)
    _print_scores(model, {} if args.bayesian else model.criteria(X), args.n_components)
    print_written(written)
    return EXIT_INTERRUPTED if model.interrupted_ else 0


def _print_scores(model, scores: dict, n_components: int) -> None:
    """The criteria of a fit by EM; how many components a Bayesian model kept."""
    if scores:
        print(f"BIC {scores['bic']:.3f}   AIC {scores['aic']:.3f}   ICL {scores['icl']:.3f}")
    else:
        kept = int(np.sum(model.weights_ > 0.01))
        print(f"{kept} of {n_components} components kept (expected weight over 1%)")


def _check_bayesian_options(args) -> None:
    refused = {
        "--checkpoint": args.checkpoint,
        "--noise": args.noise,
        "--prior default": args.prior != "none",
        "--missing em": args.missing != "error",
        "--init hc": args.init == "hc",
    }
    given = [option for option, on in refused.items() if on]
    if given:
        raise CommandError(f"--bayesian does not combine with {', '.join(given)}")
    if args.covariance_type not in ("full", "tied", "diag", "spherical"):
        raise CommandError(
            "--bayesian fits scikit-learn's covariance types: full, tied, diag, spherical"
        )


def _run_fit_stream(args) -> int:
    """``fit --stream``: EM over a .npy file read in blocks from disk (never all in memory)."""
    import jax

    from . import BayesianGaussianMixture, fit_stream
    from ._criteria import entropy, from_sums, hard_label_cost, n_parameters
    from ._files import DataFileError
    from ._stream import DEFAULT_BLOCK_ROWS, read_blocks
    from .estimator import fitted_model

    if args.data is None or Path(args.data).suffix.lower() != ".npy":
        raise CommandError("--stream reads a .npy file (numpy.save); convert the data first")
    out = output_dir(args)
    try:
        data = np.load(args.data, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataFileError(f"{args.data}: not a readable .npy file ({error})") from None
    if data.ndim != 2:
        raise DataFileError(f"{args.data}: expected a 2-D array, found shape {data.shape}")
    dtype = np.dtype(args.dtype)
    if args.noise:
        raise CommandError("--noise is not available with --stream yet; fit without --stream")
    print(
        f"Fitting K={args.n_components} ({args.covariance_type} covariances) to {args.data} "
        f"({data.shape[0]} rows, {data.shape[1]} columns), streamed in blocks."
    )
    settings = dict(
        n_components=args.n_components,
        covariance_type=args.covariance_type,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        n_init=args.n_init,
        matmul_precision=args.matmul_precision,
        prior=prior_of(args),
        missing=args.missing,
    )

    def blocks():
        return read_blocks(data, DEFAULT_BLOCK_ROWS, dtype)

    start = time.perf_counter()
    context = jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext()
    with context:
        if args.bayesian:
            model = BayesianGaussianMixture(
                weight_concentration_prior_type=args.bayesian.replace("-", "_"),
                init_params=args.init,
                random_state=args.seed,
                **{k: v for k, v in settings.items() if k not in ("prior", "missing")},
            ).fit_stream(blocks)
        else:
            result = fit_stream(jax.random.key(args.seed), blocks, init=args.init, **settings)
            model = fitted_model(
                result,
                dtype,
                settings=settings | {"init_params": args.init, "random_state": args.seed},
            )
        fitted = time.perf_counter() - start
        # a second pass: labels, and the log-likelihood, entropy and hard-label cost for the
        # criteria
        lines, log_l, total_entropy, hard_cost = [], 0.0, 0.0, 0.0
        for block in blocks():
            proba = model.predict_proba(block)
            log_l += float(np.sum(model.score_samples(block)))
            with np.errstate(divide="ignore"):  # log 0 = -inf: no entropy
                log_proba = np.log(proba)
            total_entropy += entropy(log_proba)
            hard_cost += hard_label_cost(log_proba)
            lines.append(csv_text(None, labels_rows(proba)))
    header = csv_text(labels_header(args.n_components), [])
    write_text(out / "labels.csv", header + "".join(lines))
    scores = {}  # criteria of a likelihood; a Bayesian model's posterior has none
    if not args.bayesian:
        scores = from_sums(
            log_l,
            total_entropy,
            hard_cost,
            n_parameters(args.covariance_type, args.n_components, data.shape[1]),
            data.shape[0],
        )
    model.save(out / "model.npz")
    summary = {
        "data": str(args.data),
        "n_samples": int(data.shape[0]),
        "streamed": True,
        "dtype": str(dtype),
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        "lower_bound": model.lower_bound_,
        "lower_bounds": [float(v) for v in model.lower_bounds_],
        **{name: scores[name] for name in ("bic", "aic", "icl") if name in scores},
        "weights": model.weights_.tolist(),
        "means": model.means_.tolist(),
        "covariances": np.asarray(model.covariances_).tolist(),
        "seconds": {"fitting": round(fitted, 3)},
        "versions": versions(),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    print_model(model, None)
    _print_scores(model, scores, args.n_components)
    print_written([out / "summary.json", out / "model.npz", out / "labels.csv"])
    return 0


def selection_outputs(result, X, names, source, out: Path, timings, plots: bool):
    from . import plot

    rows = [[row[c] for c in result.COLUMNS] for row in result.rows]
    write_text(out / "selection.csv", csv_text(list(result.COLUMNS), rows))
    written = [out / "selection.csv"]
    # summary.json describes the best model, and the runners-up, as mclust's summary of a
    # selection shows them, so that a close second is not lost
    selection = {"selection": {"criterion": result.criterion, "top": result.top(3)}}
    written += save_model_outputs(result.best, X, names, source, out, timings, plots, selection)
    if plots:
        plot.save(plot.selection(result), out / "selection.png")
        written.append(out / "selection.png")
    return written


def run_select(args) -> int:
    from . import select
    from ._select import selection_types

    out = output_dir(args)
    timings = {}
    start = time.perf_counter()
    X, names, source = read_data(args)
    timings["reading"] = round(time.perf_counter() - start, 3)
    types = selection_types(args.covariance_types, prior_of(args))
    print(
        f"Selecting among K in {args.k} and covariance types {', '.join(types)}"
        f" by {args.criterion.upper()}, for {source}."
    )
    start = time.perf_counter()
    result = select(
        X,
        args.k,
        types,
        n_init=args.n_init,
        criterion=args.criterion,
        random_state=args.seed,
        max_iter=args.max_iter,
        tol=args.tol,
        reg_covar=args.reg_covar,
        init_params=args.init,
        progress=show_progress(args),
        matmul_precision=args.matmul_precision,
        prior=prior_of(args),
        noise=args.noise,
        missing=args.missing,
    )
    timings["fitting"] = round(time.perf_counter() - start, 3)
    written = selection_outputs(result, X, names, source, out, timings, not args.no_plots)
    print(result)
    best = result.best_row
    print(
        f"best by {args.criterion.upper()}: K={best['n_components']}, "
        f"{best['covariance_type']} covariances"
    )
    print_written(written)
    return 0


def _model_and_data(args, missing: bool = False):
    """The saved model ``args.model`` and ``args.data`` read for it: its columns picked by the
    model's feature names when the file has a header, named as the model's. ``missing`` reads
    missing values as NaN (always for a model fitted with ``missing="em"``)."""
    from . import load
    from ._io_data import read_table

    if args.out:  # before anything slow
        from ._files import check_output_dir

        check_output_dir(Path(args.out).parent)
    model = load(args.model)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    table = read_table(
        args.data,
        delimiter=args.delimiter,
        header=args.header,
        columns=columns,
        missing=missing or model.missing == "em",
    )
    data = table.data
    fitted_names = getattr(model, "feature_names_in_", None)
    names = table.names if table.header else None
    if columns is None and table.header and fitted_names is not None:
        # pick the model's columns by name, so that their order in the file does not matter
        absent = [str(n) for n in fitted_names if str(n) not in table.names]
        if absent:
            raise CommandError(
                f"{args.data} has no column{'s' * (len(absent) > 1)} {', '.join(absent)}, "
                f"which {args.model} was fitted on (it has {', '.join(table.names)})"
            )
        data = data[:, [table.names.index(str(n)) for n in fitted_names]]
        names = [str(n) for n in fitted_names]
    if data.shape[1] != model.n_features_in_:
        raise CommandError(
            f"{args.model} expects {model.n_features_in_} features but {args.data} has "
            f"{data.shape[1]} columns; choose them with --columns"
        )
    if fitted_names is not None and names is None:
        log(
            f"{args.data}: no column names; its columns are taken as the model's "
            f"{', '.join(map(str, fitted_names))}, in that order"
        )
        names = [str(n) for n in fitted_names]
    return model, named(data.astype(args.dtype), names if fitted_names is not None else None)


def _write_or_print(args, text: str, n_rows: int) -> None:
    if args.out:
        write_text(Path(args.out), text)
        log(f"wrote {args.out} ({n_rows} rows)")
    else:
        sys.stdout.write(text)


def run_predict(args) -> int:
    model, X = _model_and_data(args)
    proba, noise = model.predict_proba(X), has_noise(model)
    text = csv_text(
        labels_header(model.means_.shape[0], args.proba, noise),
        labels_rows(proba, args.proba, noise),
    )
    _write_or_print(args, text, len(X))
    return 0


def run_impute(args) -> int:
    model, X = _model_and_data(args, missing=True)
    if model.missing != "em":
        raise CommandError(f"{args.model} was fitted without --missing em; refit with it to impute")
    names = list(getattr(X, "columns", None) or [f"x{j + 1}" for j in range(X.shape[1])])
    if args.draws is None:
        rows = ([f"{v:.10g}" for v in row] for row in model.impute(X))
        text = csv_text(names, rows)
    else:
        draws = model.impute(X, n_draws=args.draws, key=args.seed)
        rows = (
            [str(m)] + [f"{v:.10g}" for v in row] for m, draw in enumerate(draws) for row in draw
        )
        text = csv_text(["draw", *names], rows)
    _write_or_print(args, text, len(X) * (args.draws or 1))
    return 0


def run_demo(args) -> int:
    from . import GaussianMixture, lesson_data, select

    out = output_dir(args)
    start = time.perf_counter()
    names = ["x1", "x2"]
    X = named(lesson_data(), names)
    print("The lesson: 200 points from two Gaussians at (-2, 0) and (2, 1), covariance 0.6 I.")
    # The textbook start, so that the trace shows EM at work: two data points drawn at random as
    # means, the data's covariance for both components, equal weights.
    rng = np.random.default_rng(args.seed)
    precision = np.linalg.inv(np.cov(np.asarray(X), rowvar=False))
    model = GaussianMixture(
        2,
        max_iter=200,
        tol=1e-6,
        means_init=np.asarray(X)[rng.choice(len(X), 2, replace=False)],
        weights_init=np.full(2, 0.5),
        precisions_init=np.stack([precision, precision]),
        random_state=args.seed,
        progress=show_progress(args),
    ).fit(X)
    print("\nK=2, full covariances, EM from two random points, tol=1e-6 (tighter than the")
    print("default 1e-3 of fit and select, to show the whole climb):")
    print_model(model, names)
    with warnings.catch_warnings():
        # the exercises are K = 2 and 3 by design: K = 2 at the edge of that grid is no news
        warnings.filterwarnings("ignore", message="the best model by")
        result = select(
            X,
            [2, 3],
            ("full", "diag"),
            n_init=4,
            random_state=args.seed,
            progress=show_progress(args),
        )
    fitted = time.perf_counter() - start
    print("\nThe exercises, K=2 and 3, full and diagonal covariances (lower BIC is better):")
    print(f"{'covariance':<10} {'K':>2} {'BIC':>10} {'lower bound':>12} {'iterations':>10}")
    for row in result.rows:
        m = result.models[(row["covariance_type"], row["n_components"])]
        print(
            f"{row['covariance_type']:<10} {row['n_components']:>2} {row['bic']:>10.2f} "
            f"{m.lower_bound_:>12.5f} {m.n_iter_:>10}"
        )
    timings = {"fitting": round(fitted, 3)}
    written = save_model_outputs(
        model, X, names, "the lesson's 200 points", out, timings, not args.no_plots
    )
    rows = [[row[c] for c in result.COLUMNS] for row in result.rows]
    write_text(out / "exercises.csv", csv_text(list(result.COLUMNS), rows))
    written.append(out / "exercises.csv")
    if not args.no_plots:
        from . import plot

        plot.save(plot.exercises(result, X, like=model), out / "exercises.png")
        written.append(out / "exercises.png")
    print_written(written)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


def prior_of(args):
    return None if args.prior == "none" else args.prior


def run_bootstrap_lrt(args) -> int:
    from . import bootstrap_lrt, plot

    out = output_dir(args)
    X, _, source = read_data(args)
    print(
        f"Bootstrap likelihood-ratio tests of {args.covariance_type} mixtures, "
        f"{args.n_boot} replicates per test, for {source}."
    )
    result = bootstrap_lrt(
        np.asarray(X),
        covariance_type=args.covariance_type,
        max_components=args.max_k,
        n_boot=args.n_boot,
        level=args.level,
        n_init=args.n_init,
        random_state=args.seed,
        tol=args.tol,
        max_iter=args.max_iter,
        reg_covar=args.reg_covar,
        prior=prior_of(args),
        progress=show_progress(args),
    )
    print(result)
    tests = [f"{k} vs {k + 1}" for k in result.components]
    rows = zip(tests, result.statistic, result.p_values, result.n_failed, strict=True)
    written = [out / "lrt.csv", out / "replicates.csv"]
    write_text(
        written[0],
        csv_text(
            ["test", "statistic", "p_value", "failed"],
            ([t, f"{s:.10g}", f"{p:.6g}", str(f)] for t, s, p, f in rows),
        ),
    )
    write_text(written[1], csv_text(tests, ([f"{v:.10g}" for v in row] for row in result.boot)))
    if not args.no_plots:
        written.append(out / "lrt.png")
        plot.save(plot.bootstrap_lrt(result), written[-1])
    print_written(written)
    return 0


def run_bootstrap(args) -> int:
    from . import bootstrap, plot

    out = output_dir(args)
    model, X = _model_and_data(args)
    print(
        f"{args.n_boot} {args.method} bootstrap replicates of {args.model} "
        f"({model.n_components} {model.covariance_type} components) on {args.data}."
    )
    result = bootstrap(
        model,
        np.asarray(X),
        n_boot=args.n_boot,
        method=args.method,
        random_state=args.seed,
        tol=args.tol,
        max_iter=args.max_iter,
        progress=show_progress(args),
    )
    print(result)
    errors, intervals = result.standard_errors(), result.intervals(args.level)
    estimates = {
        "weights": result.model_weights,
        "means": result.model_means,
        "covariances": result.model_covariances,
    }
    rows = []
    for name, estimate in estimates.items():
        lower, upper = intervals[name]
        for index in np.ndindex(estimate.shape):
            values = (estimate, errors[name], lower, upper)
            rows.append([name, " ".join(map(str, index))] + [f"{a[index]:.10g}" for a in values])
    written = [out / "standard_errors.csv"]
    level = f"{100 * args.level:g}%"
    write_text(
        written[0],
        csv_text(["parameter", "index", "estimate", "se", f"lo {level}", f"hi {level}"], rows),
    )
    if not args.no_plots:
        for what in ("weights", "means"):
            written.append(out / f"bootstrap_{what}.png")
            plot.save(plot.bootstrap(result, what=what), written[-1])
    print_written(written)
    return 0
