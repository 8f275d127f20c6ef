"""The command line's shared steps: reading the data, writing the reports, labels, summary and
plots, and printing a model. Everything here is written atomically (``jaxgmm._files``)."""

from __future__ import annotations

import csv
import io
import json
import platform
import sys
from pathlib import Path

import numpy as np

from ._noise import NOISE_LABEL, has_noise


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
    table = read_table(
        args.data,
        delimiter=args.delimiter,
        header=args.header,
        columns=columns,
        missing=getattr(args, "missing", "error") == "em",
    )
    if table.header and args.header is None:
        log(f"{args.data}: first row taken as column names: {', '.join(table.names)}")
    n, d = table.data.shape
    if n < 2:
        raise CommandError(
            f"{args.data}: {n} row{'s' * (n != 1)} of data; a mixture needs at least 2"
        )
    largest_k = max(getattr(args, "k", None) or [getattr(args, "n_components", 1)])
    if largest_k > n:
        raise CommandError(
            f"{args.data}: {n} rows of data, fewer than the K={largest_k} components asked for"
        )
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


def labels_header(n_components: int, proba: bool = True, noise: bool = False) -> list[str]:
    """labels.csv's header: the label, then each component's probability (the noise
    component's last, ``p_noise``)."""
    columns = [f"p{k}" for k in range(n_components)] + ["p_noise"] * noise
    return ["label"] + (columns if proba else [])


def labels_rows(proba: np.ndarray, with_proba: bool = True, noise: bool = False):
    """Rows of labels.csv: the most probable component (-1 for the noise component, whose
    column is the last), and every probability."""
    labels = proba.argmax(axis=1)
    if noise:
        labels = np.where(labels == proba.shape[1] - 1, NOISE_LABEL, labels)
    for label, row in zip(labels, proba, strict=True):
        yield [int(label)] + ([f"{p:.6g}" for p in row] if with_proba else [])


def labels_csv(model, X) -> str:
    """labels.csv of a fitted model on ``X``."""
    proba, noise = model.predict_proba(X), has_noise(model)
    k = model.means_.shape[0]
    return csv_text(labels_header(k, noise=noise), labels_rows(proba, noise=noise))


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
    # criteria of a likelihood; a Bayesian model's posterior has none (``jaxgmm.bayesian``)
    scores = model.criteria(X) if hasattr(model, "criteria") else {}
    inits = ("weights_init", "means_init", "precisions_init")
    given = [name for name in inits if getattr(model, name, None) is not None]
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
        # what the fit started from: given parameters override init_params
        "initialization": (
            f"given ({', '.join(given)})"
            + (f", the rest {model.init_params}" if len(given) < 3 else "")
            if given
            else model.init_params
        ),
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        "interrupted": getattr(model, "interrupted_", False),
        "lower_bound": model.lower_bound_,
        "lower_bounds": [float(v) for v in model.lower_bounds_],
        **{name: scores[name] for name in ("bic", "aic", "icl") if name in scores},
        **(
            {"weight_concentration_prior_type": model.weight_concentration_prior_type}
            if hasattr(model, "weight_concentration_")
            else {}
        ),
        "weights": model.weights_.tolist(),
        **(
            {"noise": {"weight": model.noise_weight_, "log_density": model.noise_log_density_}}
            if has_noise(model)
            else {}
        ),
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


# Every figure the command line may write: with --no-plots, those of an earlier run are removed,
# so that a folder never mixes figures of another fit with this one's results.
PLOTS = (
    "responsibilities",
    "lower_bound",
    "ellipses",
    "uncertainty",
    "weights",
    "selection",
    "exercises",
)


def remove_stale_plots(out: Path) -> None:
    for name in PLOTS:
        (out / f"{name}.png").unlink(missing_ok=True)


def model_plots(model, X, out: Path) -> list[Path]:
    from . import plot

    written = []
    for name, figure in (
        ("responsibilities", lambda: plot.responsibilities(model, X)),
        ("lower_bound", lambda: plot.lower_bound_trace(model)),
        ("ellipses", lambda: plot.ellipses(model, X)),
        ("uncertainty", lambda: plot.uncertainty(model, X)),
        *(
            [("weights", lambda: plot.weights_posterior(model))]
            if hasattr(model, "weight_concentration_")
            else []
        ),
    ):
        path = out / f"{name}.png"
        plot.save(figure(), path)
        written.append(path)
    return written


def save_model_outputs(
    model, X, names, source, out: Path, timings: dict, plots: bool, extra_summary=None
):
    """model.npz and summary.json (with ``extra_summary``'s entries) first (quick, and all that
    an interrupted run needs), then labels.csv and the plots (which may take long for large
    data, and a second Ctrl-C stops); returns the paths written."""
    model.save(out / "model.npz")
    summary = summary_of(model, X, names, source, timings) | (extra_summary or {})
    write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    write_text(out / "labels.csv", labels_csv(model, X))
    written = [out / "model.npz", out / "summary.json", out / "labels.csv"]
    if plots:
        written += model_plots(model, X, out)
    else:
        remove_stale_plots(out)
    return written


def print_model(model, names) -> None:
    names = names or [f"x{j + 1}" for j in range(model.means_.shape[1])]
    trace = model.lower_bounds_
    state = "converged" if model.converged_ else "did NOT converge"
    variational = hasattr(model, "weight_concentration_")
    print(
        f"{'Variational inference' if variational else 'EM'} {state} after {model.n_iter_} "
        f"iterations (best of {len(model.restarts_.n_iter)} restarts)."
    )
    if len(trace):
        what = (
            "variational lower bound (a total, up to a constant)"
            if variational
            else "lower bound (mean log-likelihood per point)"
        )
        print(f"{what}: {trace[0]:.5f} at iteration 1 -> {trace[-1]:.5f} at iteration {len(trace)}")
    order = np.argsort(model.means_[:, 0])
    if variational:  # the components the data left keep the prior's mean: not worth a line
        order = order[model.weights_[order] > 0.01]
    print(f"{'component':>9} {'weight':>7}  mean ({', '.join(names)})")
    for k in order:
        mean = ", ".join(f"{v:.3f}" for v in model.means_[k])
        print(f"{k:>9} {model.weights_[k]:>7.3f}  ({mean})")
    if has_noise(model):
        print(f"{'noise':>9} {model.noise_weight_:>7.3f}  (uniform, label -1)")
    from ._covariance import covariance_unit

    d = model.means_.shape[1]
    if len(order) < model.means_.shape[0]:
        print(f"  ({model.means_.shape[0] - len(order)} components of weight under 1% not shown)")
    if len(order) * d * d > 64:  # a screenful at most; the files hold them all
        print("  covariances: in summary.json and model.npz")
    elif not covariance_unit(model.covariance_type).shared:
        for k in order:
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
    """The output folder, checked before anything slow; one this run creates is remembered, so
    that a run that fails before writing anything can remove it again."""
    from ._files import check_output_dir

    existed = Path(args.out).exists()
    path = check_output_dir(args.out)
    if not existed:
        args.created_out = path
    return path
