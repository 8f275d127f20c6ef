"""The ``jaxgmm`` command: ``demo``, ``fit``, ``select`` and ``predict``.

Bad input (a missing or malformed data file, a broken model file, impossible settings) ends with a
one-line message on stderr and exit code 2, never a traceback; an unexpected internal error ends
with exit code 1 and a one-line message (``JAXGMM_DEBUG=1`` shows the traceback). Outputs are
written atomically, and the output folder is checked before any fitting starts.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """Bad input found by the command itself; the message is one line."""


# -- argument parsing --------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line (and exit code 2)."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not np.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number >= 0")
    return value


def _k_values(text: str) -> list[int]:
    """``"1..10"``, ``"2,3,5"`` or ``"4"``."""
    try:
        if ".." in text:
            low, high = (int(part) for part in text.split(".."))
            values = list(range(low, high + 1))
        else:
            values = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a list of K: use 1..10, or 2,3,5, or 4"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must give values of K that are at least 1")
    return values


def _covariance_types(text: str) -> list[str]:
    from . import COVARIANCE_TYPES

    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in COVARIANCE_TYPES]
    if not types or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: covariance types must be among {', '.join(COVARIANCE_TYPES)}"
        )
    return types


def _add_data_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reading the data")
    group.add_argument("--columns", help="columns to use, by name or 0-based index: a,b or 0,2")
    group.add_argument("--delimiter", help="field delimiter (default: from the file)")
    group.add_argument(
        "--header",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="whether the first row holds column names (default: yes when it is not numeric)",
    )
    group.add_argument(
        "--dtype",
        choices=("float64", "float32"),
        default="float64",
        help="precision of the fit (default float64; float32 is faster on GPUs)",
    )


def _add_fit_options(parser: argparse.ArgumentParser, *, single_k: bool) -> None:
    if single_k:
        parser.add_argument(
            "-k",
            "--n-components",
            type=_positive_int,
            default=2,
            help="number of components (default 2)",
        )
        parser.add_argument(
            "--covariance-type", default="full", choices=("full", "tied", "diag", "spherical")
        )
    parser.add_argument(
        "--n-init",
        type=_positive_int,
        default=4,
        help="random restarts, fitted together (default 4)",
    )
    parser.add_argument("--max-iter", type=_positive_int, default=100)
    parser.add_argument(
        "--tol",
        type=_non_negative_float,
        default=1e-3,
        help="convergence threshold on the lower bound (default 1e-3)",
    )
    parser.add_argument(
        "--reg-covar",
        type=_non_negative_float,
        default=1e-6,
        help="added to the diagonal of covariances (default 1e-6)",
    )
    parser.add_argument(
        "--init", default="kmeans", choices=("kmeans", "k-means++", "random", "random_from_data")
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    if single_k:
        parser.add_argument(
            "--stream",
            action="store_true",
            help="read a .npy file from disk in blocks, for data larger than memory",
        )
        parser.add_argument(
            "--checkpoint",
            metavar="FILE",
            help="save the fit's state to FILE as it goes, and resume from it if it exists",
        )


def _add_output_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out, help=f"output folder (default {default_out})")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar on stderr (default: when stderr is a terminal)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="jaxgmm",
        description="Gaussian mixture models fitted by EM in JAX.",
        epilog="Start with:  jaxgmm demo",
    )
    commands = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    demo = commands.add_parser(
        "demo",
        help="the lesson: two Gaussians in the plane, fitted and plotted",
        description="Fit the lesson's 200 points (two Gaussians at (-2, 0) and (2, 1), "
        "covariance 0.6 I) with K=2 full covariances, print the lower-bound trace and the "
        "parameters, write the plots, then the exercises: K=2 and 3, full and diag, with BIC.",
        epilog="example:  jaxgmm demo --out lesson",
    )
    _add_output_options(demo, "jaxgmm-demo")
    demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    demo.set_defaults(func=run_demo)

    fit = commands.add_parser(
        "fit",
        help="fit a mixture to a data file (CSV, TSV, NPY, Parquet)",
        description="Fit a Gaussian mixture to DATA (the lesson's data when DATA is omitted) "
        "and write the model, a summary, the labels and the plots to the output folder.",
        epilog="example:  jaxgmm fit data.csv -k 3 --covariance-type diag --out results",
    )
    fit.add_argument("data", nargs="?", help="CSV, TSV, NPY or Parquet file")
    _add_fit_options(fit, single_k=True)
    _add_data_options(fit)
    _add_output_options(fit, "jaxgmm-fit")
    fit.set_defaults(func=run_fit)

    select = commands.add_parser(
        "select",
        help="choose K and the covariance type by BIC, AIC or ICL",
        description="Fit every K and covariance type of the grid (one compiled program per "
        "covariance type), print the table, write it as CSV with the BIC/ICL plot, and save "
        "the best model.",
        epilog="example:  jaxgmm select data.csv --k 1..8 --covariance-types full,diag",
    )
    select.add_argument("data", nargs="?", help="CSV, TSV, NPY or Parquet file")
    select.add_argument(
        "--k",
        type=_k_values,
        default=list(range(1, 11)),
        help="values of K: 1..10 (default), 2,3,5 or 4",
    )
    select.add_argument(
        "--covariance-types",
        type=_covariance_types,
        default=["full", "tied", "diag", "spherical"],
        help="comma-separated (default: all four)",
    )
    select.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic")
    _add_fit_options(select, single_k=False)
    _add_data_options(select)
    _add_output_options(select, "jaxgmm-select")
    select.set_defaults(func=run_select)

    predict = commands.add_parser(
        "predict",
        help="label new data with a saved model",
        description="Assign each row of DATA to its most probable component of MODEL (a file "
        "written by fit or select); with --proba also write every component's probability.",
        epilog="example:  jaxgmm predict results/model.npz new.csv --proba --out labels.csv",
    )
    predict.add_argument("model", help="saved model (model.npz)")
    predict.add_argument("data", help="CSV, TSV, NPY or Parquet file")
    predict.add_argument("--proba", action="store_true", help="also write the probabilities")
    predict.add_argument("--out", help="CSV file to write (default: standard output)")
    _add_data_options(predict)
    predict.set_defaults(func=run_predict)
    return parser


# -- shared steps ------------------------------------------------------------------------------


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _show_progress(args) -> bool:
    return sys.stderr.isatty() if args.progress is None else args.progress


def _read_data(args) -> tuple[np.ndarray, list[str] | None, str]:
    """The data as an array of the requested dtype, its column names, and a description."""
    from ._io_data import read_table
    from .datasets import lesson_data

    if args.data is None:
        return (
            _named(lesson_data().astype(args.dtype), ["x1", "x2"]),
            ["x1", "x2"],
            ("the lesson's 200 points"),
        )
    columns = None
    if args.columns:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    table = read_table(args.data, delimiter=args.delimiter, header=args.header, columns=columns)
    if table.header and args.header is None:
        _log(f"{args.data}: first row taken as column names: {', '.join(table.names)}")
    n, d = table.data.shape
    return (
        _named(table.data.astype(args.dtype), table.names),
        table.names,
        (f"{args.data} ({n} rows, {d} columns)"),
    )


class _NamedArray(np.ndarray):
    """An array that carries column names the way a DataFrame does (``.columns``), so that the
    estimator records and checks them without pandas being installed."""

    columns: list[str]


def _named(X: np.ndarray, names: list[str] | None) -> np.ndarray:
    if not names:
        return X
    named = X.view(_NamedArray)
    named.columns = list(names)
    return named


def _write_text(path: Path, text: str) -> None:
    from ._io_data import atomic_write_text

    atomic_write_text(path, text)


def _csv_text(header: list[str], rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _labels_csv(model, X) -> str:
    proba = model.predict_proba(X)
    header = ["label"] + [f"p{k}" for k in range(proba.shape[1])]
    rows = (
        [int(label)] + [f"{p:.6g}" for p in row]
        for label, row in zip(proba.argmax(axis=1), proba, strict=True)
    )
    return _csv_text(header, rows)


def _versions() -> dict:
    import jax

    from . import __version__

    return {
        "jaxgmm": __version__,
        "jax": jax.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": str(jax.devices()[0].device_kind),
    }


def _summary(model, X, names, source: str, timings: dict) -> dict:
    names = names or [f"x{j + 1}" for j in range(X.shape[1])]
    return {
        "data": source,
        "n_samples": int(X.shape[0]),
        "features": names,
        "dtype": str(model.means_.dtype),
        "settings": {
            k: v
            for k, v in model.get_params().items()
            if isinstance(v, bool | int | float | str | type(None))
        },
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        "interrupted": getattr(model, "interrupted_", False),
        "lower_bound": model.lower_bound_,
        "lower_bounds": [float(v) for v in model.lower_bounds_],
        "bic": model.bic(X),
        "aic": model.aic(X),
        "icl": model.icl(X),
        "weights": model.weights_.tolist(),
        "means": [dict(zip(names, map(float, m), strict=True)) for m in model.means_],
        "covariances": np.asarray(model.covariances_).tolist(),
        "restarts": {
            "lower_bound": model.restarts_.lower_bound.tolist(),
            "n_iter": model.restarts_.n_iter.tolist(),
            "converged": model.restarts_.converged.tolist(),
            "failed": model.restarts_.failed.tolist(),
            "degenerate": model.restarts_.degenerate.tolist(),
        },
        "seconds": timings,
        "versions": _versions(),
    }


def _model_plots(model, X, out: Path, prefix: str = "") -> list[Path]:
    from . import plot

    written = []
    for name, figure in (
        ("responsibilities", lambda: plot.responsibilities(model, X)),
        ("lower_bound", lambda: plot.lower_bound_trace(model)),
        ("ellipses", lambda: plot.ellipses(model, X)),
        ("uncertainty", lambda: plot.uncertainty(model, X)),
    ):
        path = out / f"{prefix}{name}.png"
        plot.save(figure(), path)
        written.append(path)
    return written


def _save_model_outputs(model, X, names, source, out: Path, timings: dict, plots: bool):
    """model.npz, summary.json, labels.csv and the plots; returns the paths written."""
    start = time.perf_counter()
    model.save(out / "model.npz")
    _write_text(out / "labels.csv", _labels_csv(model, X))
    written = [out / "model.npz", out / "labels.csv"]
    if plots:
        written += _model_plots(model, X, out)
    timings["writing"] = round(time.perf_counter() - start, 3)
    summary = _summary(model, X, names, source, timings)
    _write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return [out / "summary.json", *written]


def _print_model(model, names) -> None:
    names = names or [f"x{j + 1}" for j in range(model.means_.shape[1])]
    trace = model.lower_bounds_
    state = "converged" if model.converged_ else "did NOT converge"
    print(
        f"EM {state} after {model.n_iter_} iterations "
        f"(best of {len(model.restarts_.n_iter)} restarts)."
    )
    if len(trace):
        print(
            f"lower bound (mean log-likelihood per point): {trace[0]:.5f} at iteration 1 "
            f"-> {trace[-1]:.5f} at iteration {len(trace)}"
        )
    print(f"{'component':>9} {'weight':>7}  mean ({', '.join(names)})")
    for k in np.argsort(model.means_[:, 0]):
        mean = ", ".join(f"{v:.3f}" for v in model.means_[k])
        print(f"{k:>9} {model.weights_[k]:>7.3f}  ({mean})")
    if model.covariance_type in ("full", "diag", "spherical"):
        for k in np.argsort(model.means_[:, 0]):
            cov = np.atleast_1d(model.covariances_[k])
            print(
                f"  covariance {k}: {np.array2string(cov, precision=3, separator=', ')}".replace(
                    "\n", " "
                )
            )
    else:
        print(
            f"  shared covariance: {np.array2string(model.covariances_, precision=3)}".replace(
                "\n", " "
            )
        )


def _print_written(paths) -> None:
    print("wrote:")
    for path in paths:
        print(f"  {path}")


def _output_dir(args) -> Path:
    from ._io_data import check_output_dir

    return check_output_dir(args.out)


# -- commands ----------------------------------------------------------------------------------


def run_fit(args) -> int:
    from . import GaussianMixture

    if args.stream:
        return _run_fit_stream(args)
    out = _output_dir(args)  # before anything slow
    timings = {}
    start = time.perf_counter()
    X, names, source = _read_data(args)
    timings["reading"] = round(time.perf_counter() - start, 3)
    print(f"Fitting K={args.n_components} ({args.covariance_type} covariances) to {source}.")
    model = GaussianMixture(
        args.n_components,
        covariance_type=args.covariance_type,
        tol=args.tol,
        reg_covar=args.reg_covar,
        max_iter=args.max_iter,
        n_init=args.n_init,
        init_params=args.init,
        random_state=args.seed,
        progress=_show_progress(args),
        checkpoint=args.checkpoint,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Fit interrupted")  # reported below
        model.fit(X)
    timings["fitting"] = round(time.perf_counter() - start, 3)
    if model.interrupted_:
        _log("interrupted: saving the best result so far (a second Ctrl-C aborts at once)")
    _print_model(model, names)
    print(f"BIC {model.bic(X):.3f}   AIC {model.aic(X):.3f}   ICL {model.icl(X):.3f}")
    written = _save_model_outputs(model, X, names, source, out, timings, not args.no_plots)
    _print_written(written)
    return EXIT_INTERRUPTED if model.interrupted_ else 0


def _run_fit_stream(args) -> int:
    """``fit --stream``: EM over a .npy file read in blocks from disk (never all in memory)."""
    from . import GaussianMixture, fit_stream
    from ._criteria import n_parameters
    from ._io_data import DataFileError, atomic_write_text

    if args.data is None or Path(args.data).suffix.lower() != ".npy":
        raise CommandError("--stream reads a .npy file (numpy.save); convert the data first")
    out = _output_dir(args)
    try:
        data = np.load(args.data, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise DataFileError(f"{args.data}: not a readable .npy file ({error})") from None
    if data.ndim != 2:
        raise DataFileError(f"{args.data}: expected a 2-D array, found shape {data.shape}")
    dtype = np.dtype(args.dtype)
    print(
        f"Fitting K={args.n_components} ({args.covariance_type} covariances) to {args.data} "
        f"({data.shape[0]} rows, {data.shape[1]} columns), streamed in blocks."
    )
    import jax

    start = time.perf_counter()
    context = jax.enable_x64(True) if dtype == np.float64 else contextlib.nullcontext()
    with context:
        result = fit_stream(
            jax.random.key(args.seed),
            lambda: _cast_blocks(data, dtype),
            args.n_components,
            covariance_type=args.covariance_type,
            n_init=args.n_init,
            max_iter=args.max_iter,
            tol=args.tol,
            reg_covar=args.reg_covar,
            init=args.init,
        )
        model = GaussianMixture(
            args.n_components,
            covariance_type=args.covariance_type,
            tol=args.tol,
            reg_covar=args.reg_covar,
            max_iter=args.max_iter,
            n_init=args.n_init,
            init_params=args.init,
            random_state=args.seed,
        )
        model._set_fitted(result, dtype)
        model.n_features_in_ = data.shape[1]
        fitted = time.perf_counter() - start
        # a second pass: labels, and the log-likelihood and entropy for the criteria
        lines, log_l, entropy = [], 0.0, 0.0
        for block in _cast_blocks(data, dtype):
            proba = model.predict_proba(block)
            log_l += float(np.sum(model.score_samples(block)))
            entropy -= float(
                np.sum(np.where(proba > 0, proba * np.log(np.where(proba > 0, proba, 1)), 0))
            )
            lines += [
                ",".join([str(int(k))] + [f"{p:.6g}" for p in row])
                for k, row in zip(proba.argmax(axis=1), proba, strict=True)
            ]
    header = ",".join(["label"] + [f"p{k}" for k in range(args.n_components)])
    atomic_write_text(out / "labels.csv", "\n".join([header, *lines]) + "\n")
    p = n_parameters(args.covariance_type, args.n_components, data.shape[1])
    bic = -2 * log_l + p * np.log(data.shape[0])
    _print_model(model, None)
    print(f"BIC {bic:.3f}   AIC {-2 * log_l + 2 * p:.3f}   ICL {bic + 2 * entropy:.3f}")
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
        "bic": bic,
        "aic": -2 * log_l + 2 * p,
        "icl": bic + 2 * entropy,
        "weights": model.weights_.tolist(),
        "means": model.means_.tolist(),
        "covariances": np.asarray(model.covariances_).tolist(),
        "seconds": {"fitting": round(fitted, 3)},
        "versions": _versions(),
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _print_written([out / "summary.json", out / "model.npz", out / "labels.csv"])
    return 0


def _cast_blocks(data, dtype, rows: int = 65_536):
    for start in range(0, data.shape[0], rows):
        yield np.asarray(data[start : start + rows], dtype=dtype)


def _selection_outputs(result, X, names, source, out: Path, timings, plots: bool):
    from . import plot

    rows = [[row[c] for c in result.COLUMNS] for row in result.rows]
    _write_text(out / "selection.csv", _csv_text(list(result.COLUMNS), rows))
    written = [out / "selection.csv"]
    if plots:
        plot.save(plot.selection(result), out / "selection.png")
        written.append(out / "selection.png")
    return written + _save_model_outputs(result.best, X, names, source, out, timings, plots)


def run_select(args) -> int:
    from . import select

    out = _output_dir(args)
    timings = {}
    start = time.perf_counter()
    X, names, source = _read_data(args)
    timings["reading"] = round(time.perf_counter() - start, 3)
    print(
        f"Selecting among K in {args.k} and covariance types {', '.join(args.covariance_types)}"
        f" by {args.criterion.upper()}, for {source}."
    )
    start = time.perf_counter()
    result = select(
        X,
        args.k,
        args.covariance_types,
        n_init=args.n_init,
        criterion=args.criterion,
        random_state=args.seed,
        max_iter=args.max_iter,
        tol=args.tol,
        reg_covar=args.reg_covar,
        init_params=args.init,
        progress=_show_progress(args),
    )
    timings["fitting"] = round(time.perf_counter() - start, 3)
    print(result)
    best = result.best_row
    print(
        f"best by {args.criterion.upper()}: K={best['n_components']}, "
        f"{best['covariance_type']} covariances"
    )
    _print_written(_selection_outputs(result, X, names, source, out, timings, not args.no_plots))
    return 0


def run_predict(args) -> int:
    from . import load
    from ._io_data import read_table

    model = load(args.model)
    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    table = read_table(args.data, delimiter=args.delimiter, header=args.header, columns=columns)
    data = table.data
    fitted_names = getattr(model, "feature_names_in_", None)
    if columns is None and table.header and fitted_names is not None:
        # pick the model's columns by name, so that their order in the file does not matter
        missing = [str(n) for n in fitted_names if str(n) not in table.names]
        if missing:
            raise CommandError(
                f"{args.data} has no column{'s' * (len(missing) > 1)} {', '.join(missing)}, "
                f"which {args.model} was fitted on (it has {', '.join(table.names)})"
            )
        data = data[:, [table.names.index(str(n)) for n in fitted_names]]
    if data.shape[1] != model.n_features_in_:
        raise CommandError(
            f"{args.model} expects {model.n_features_in_} features but {args.data} has "
            f"{data.shape[1]} columns; choose them with --columns"
        )
    X = data.astype(args.dtype)
    proba = model.predict_proba(X)
    header = ["label"] + ([f"p{k}" for k in range(proba.shape[1])] if args.proba else [])
    rows = (
        [int(label)] + ([f"{p:.6g}" for p in row] if args.proba else [])
        for label, row in zip(proba.argmax(axis=1), proba, strict=True)
    )
    text = _csv_text(header, rows)
    if args.out:
        _write_text(Path(args.out), text)
        _log(f"wrote {args.out} ({len(X)} rows)")
    else:
        sys.stdout.write(text)
    return 0


def run_demo(args) -> int:
    from . import GaussianMixture, lesson_data, select

    out = _output_dir(args)
    start = time.perf_counter()
    names = ["x1", "x2"]
    X = _named(lesson_data(), names)
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
        progress=_show_progress(args),
    ).fit(X)
    print("\nK=2, full covariances, EM from two random points:")
    _print_model(model, names)
    result = select(
        X, [2, 3], ("full", "diag"), n_init=4, random_state=args.seed, progress=_show_progress(args)
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
    written = _save_model_outputs(
        model, X, names, "the lesson's 200 points", out, timings, not args.no_plots
    )
    rows = [[row[c] for c in result.COLUMNS] for row in result.rows]
    _write_text(out / "exercises.csv", _csv_text(list(result.COLUMNS), rows))
    written.append(out / "exercises.csv")
    if not args.no_plots:
        from . import plot

        plot.save(plot.exercises(result, X), out / "exercises.png")
        written.append(out / "exercises.png")
    _print_written(written)
    print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


# -- entry point -------------------------------------------------------------------------------


def _use_compilation_cache() -> None:
    """Keep compiled programs on disk between runs (JAX's persistent cache): the second
    ``jaxgmm demo`` then starts in a second or two instead of compiling again. Set
    ``JAXGMM_CACHE_DIR`` to move the cache, or to an empty string to turn it off."""
    import jax

    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jaxgmm" / "xla"
    directory = os.environ.get("JAXGMM_CACHE_DIR", str(default))
    if not directory:
        return
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError:
        return  # no writable cache: compile every time, as without it
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)


def main(argv=None) -> int:
    from ._io_data import DataFileError
    from ._model_file import ModelFileError

    args = build_parser().parse_args(argv)
    _use_compilation_cache()

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"jaxgmm {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning
    try:
        return args.func(args)
    except (CommandError, DataFileError, ModelFileError, ValueError, TypeError) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"jaxgmm {args.command}: error: {message}", file=sys.stderr)
        if os.environ.get("JAXGMM_DEBUG"):
            raise
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"jaxgmm {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as error:  # a bug: say so in one line, keep the traceback on request
        if os.environ.get("JAXGMM_DEBUG"):
            raise
        print(
            f"jaxgmm {args.command}: internal error: {type(error).__name__}: {error} "
            "(set JAXGMM_DEBUG=1 to see the traceback, and please report it)",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
