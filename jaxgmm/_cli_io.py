"""The command line's shared steps: reading the data, writing the reports, labels, summary and
plots, and printing a model. Everything here is written atomically (``jaxgmm._files``)."""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np


class CommandError(Exception):
    """Bad input found by the command itself; the message is one line."""


def log(message: str) -> None:
    print(message, file=sys.stderr)


def show_progress(args) -> bool:
    return sys.stderr.isatty() if args.progress is None else args.progress


def read_data(args) -> tuple[np.ndarray, list[str] | None, str]:
    """The data as an array of the requested dtype, its column names, and a description."""
    from ._io_data import read_table
    from .datasets import lesson_data

    if args.data is None:
        return (
            named(lesson_data().astype(args.dtype), ["x1", "x2"]),
            ["x1", "x2"],
            ("the lesson's 200 points"),
        )
    columns = None
    if args.columns:
        columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    table = read_table(args.data, delimiter=args.delimiter, header=args.header, columns=columns)
    if table.header and args.header is None:
        log(f"{args.data}: first row taken as column names: {', '.join(table.names)}")
    n, d = table.data.shape
    return (
        named(table.data.astype(args.dtype), table.names),
        table.names,
        (f"{args.data} ({n} rows, {d} columns)"),
    )


class NamedArray(np.ndarray):
    """An array that carries column names the way a DataFrame does (``.columns``), so that the
    estimator records and checks them without pandas being installed."""

    columns: list[str]


def named(X: np.ndarray, names: list[str] | None) -> np.ndarray:
    if not names:
        return X
    named = X.view(NamedArray)
    named.columns = list(names)
    return named


def write_text(path: Path, text: str) -> None:
    from ._files import atomic_write_text

    atomic_write_text(path, text)


def csv_text(header: list[str] | None, rows) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header is not None:
        writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def labels_header(n_components: int, proba: bool = True) -> list[str]:
    return ["label"] + ([f"p{k}" for k in range(n_components)] if proba else [])


def labels_rows(proba: np.ndarray, with_proba: bool = True):
    """Rows of labels.csv: the most probable component, and every probability."""
    for label, row in zip(proba.argmax(axis=1), proba, strict=True):
        yield [int(label)] + ([f"{p:.6g}" for p in row] if with_proba else [])


def labels_csv(model, X) -> str:
    proba = model.predict_proba(X)
    return csv_text(labels_header(proba.shape[1]), labels_rows(proba))


def versions() -> dict:
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


def summary_of(model, X, names, source: str, timings: dict) -> dict:
    names = names or [f"x{j + 1}" for j in range(X.shape[1])]
    scores = model.criteria(X)
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
        **{name: scores[name] for name in ("bic", "aic", "icl")},
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
        "versions": versions(),
    }


def model_plots(model, X, out: Path, prefix: str = "") -> list[Path]:
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


def save_model_outputs(model, X, names, source, out: Path, timings: dict, plots: bool):
    """model.npz, summary.json, labels.csv and the plots; returns the paths written."""
    start = time.perf_counter()
    model.save(out / "model.npz")
    write_text(out / "labels.csv", labels_csv(model, X))
    written = [out / "model.npz", out / "labels.csv"]
    if plots:
        written += model_plots(model, X, out)
    timings["writing"] = round(time.perf_counter() - start, 3)
    summary = summary_of(model, X, names, source, timings)
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return [out / "summary.json", *written]


def print_model(model, names) -> None:
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
    from ._covariance import covariance_unit

    if not covariance_unit(model.covariance_type).shared:
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


def print_written(paths) -> None:
    print("wrote:")
    for path in paths:
        print(f"  {path}")


def output_dir(args) -> Path:
    from ._files import check_output_dir

    return check_output_dir(args.out)
