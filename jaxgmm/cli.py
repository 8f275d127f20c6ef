"""The ``jaxgmm`` command: ``demo``, ``fit``, ``select``, ``predict``, ``impute``,
``bootstrap-lrt`` and ``bootstrap``.

Bad input (a missing or malformed data file, a broken model file, impossible settings) ends with a
one-line message on stderr and exit code 2, never a traceback; an unexpected internal error ends
with exit code 1 and a one-line message (``JAXGMM_DEBUG=1`` shows the traceback). Outputs are
written atomically, and the output folder is checked before any fitting starts.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

import numpy as np

from ._cli_commands import (
    EXIT_INTERRUPTED,
    run_bootstrap,
    run_bootstrap_lrt,
    run_demo,
    run_fit,
    run_impute,
    run_predict,
    run_select,
)
from ._cli_io import CommandError
from ._init import INIT_METHODS
from ._matmul_precision import MATMUL_PRECISIONS

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


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
    if ".." in text and not values:
        raise argparse.ArgumentTypeError(
            f"{text!r} is an empty range: write the smaller K first, as {high}..{low}"
        )
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must give values of K that are at least 1")
    return values


def _covariance_choices() -> list[str]:
    """Every covariance type's name, then mclust's names of scikit-learn's four."""
    from ._covariance import COVARIANCE_TYPES, MCLUST_ALIASES

    return [*COVARIANCE_TYPES, *MCLUST_ALIASES]


def _default_selection() -> tuple[str, ...]:
    from ._covariance import DEFAULT_SELECTION

    return DEFAULT_SELECTION


def _covariance_types(text: str) -> list[str] | str:
    if text.strip() == "all":
        return "all"  # every model (with --prior, every model that has one): see run_select
    types = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in types if t not in _covariance_choices()]
    if not types or unknown:
        raise argparse.ArgumentTypeError(
            f"{text!r}: covariance types must be 'all' or among {', '.join(_covariance_choices())}"
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
            "--covariance-type",
            default="full",
            choices=tuple(_covariance_choices()),
            help="covariance model (default full)",
        )
    parser.add_argument(
        "--n-init",
        type=_positive_int,
        default=4,
        help="random restarts, fitted together (default 4)",
    )
    parser.add_argument(
        "--max-iter", type=_positive_int, default=100, help="EM iterations at most (default 100)"
    )
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
        "--init",
        default="kmeans",
        choices=INIT_METHODS,
        help="how each restart starts (default kmeans); hc: mclust's hierarchical clustering, "
        "one start (one restart) for every K",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--prior",
        default="none",
        choices=("none", "default"),
        help="default: mclust's conjugate prior (MAP estimates; every model but VEE, EVE, VVE, "
        "EVV) (default none)",
    )
    parser.add_argument(
        "--missing",
        default="error",
        choices=("error", "em"),
        help="em: fit with missing values (empty fields, NA, NaN, ?) by EM over the observed "
        "ones (default error: refuse them)",
    )
    parser.add_argument(
        "--noise",
        action="store_true",
        help="add mclust's noise component: a uniform density over the data's region for "
        "points no Gaussian explains, labelled -1 (its start: the sparsest 15%% of the rows)",
    )
    parser.add_argument(
        "--matmul-precision",
        default="highest",
        choices=MATMUL_PRECISIONS,
        help="float32 matrix products on GPUs and TPUs: highest (full float32, default), or high "
        "and default (TF32 / bfloat16 passes: faster, about three digits less accurate)",
    )
    if single_k:
        parser.add_argument(
            "--bayesian",
            choices=("dirichlet-process", "dirichlet-distribution"),
            help="fit scikit-learn's variational Bayesian mixture with this prior on the "
            "weights: -k is then the most components, and those the data do not need end with "
            "weights near zero (plot: weights.png)",
        )
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
    _add_verbose_option(parser)


def _add_verbose_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="let JAX and XLA log to stderr (default: their errors only when fatal)",
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
        "--models",
        type=_covariance_types,
        default=list(_default_selection()),
        help="comma-separated, or all (default: full,tied,diag,spherical; all: mclust's 14, "
        "where VVV, EEE, VVI and VII name the first four)",
    )
    select.add_argument(
        "--criterion",
        choices=("bic", "aic", "icl"),
        default="bic",
        help="what ranks the models, lower is better (default bic)",
    )
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
    _add_verbose_option(predict)
    predict.set_defaults(func=run_predict)

    impute = commands.add_parser(
        "impute",
        help="fill the missing values of a data file with a saved model",
        description="Fill each missing value of DATA (empty fields, NA, NaN, ?) with its "
        "conditional mean under MODEL (fitted with --missing em) given the row's observed "
        "values; with --draws M, write M multiple imputations instead, drawn from the "
        "conditional mixture, numbered in a first column 'draw'.",
        epilog="example:  jaxgmm impute results/model.npz data.csv --out filled.csv",
    )
    impute.add_argument("model", help="saved model (model.npz), fitted with --missing em")
    impute.add_argument("data", help="CSV, TSV, NPY or Parquet file")
    impute.add_argument("--out", help="CSV file to write (default: standard output)")
    impute.add_argument(
        "--draws", type=_positive_int, help="multiple imputations to draw (default: none)"
    )
    impute.add_argument("--seed", type=int, default=0, help="random seed of the draws")
    _add_data_options(impute)
    _add_verbose_option(impute)
    impute.set_defaults(func=run_impute)

    lrt = commands.add_parser(
        "bootstrap-lrt",
        help="how many components: mclust's bootstrap likelihood-ratio test",
        description="Test K against K + 1 components for K = 1, 2, ... (mclust's "
        "mclustBootstrapLRT): the observed statistic 2 (logL(K+1) - logL(K)) against its "
        "distribution over data sets drawn from the fitted K-component model, every replicate "
        "refitted in one batched program; stop at the first test that is not significant, or "
        "test every K up to --max-k. Writes lrt.csv, replicates.csv and lrt.png.",
        epilog="example:  jaxgmm bootstrap-lrt data.csv --covariance-type tied --max-k 4",
    )
    lrt.add_argument("data", nargs="?", help="CSV, TSV, NPY or Parquet file")
    lrt.add_argument(
        "--covariance-type",
        default="full",
        choices=tuple(_covariance_choices()),
        help="covariance model (default full)",
    )
    lrt.add_argument(
        "--max-k", type=_positive_int, help="test every K up to this (default: sequential)"
    )
    lrt.add_argument("--level", type=_non_negative_float, default=0.05, help="(default 0.05)")
    _add_bootstrap_options(lrt)
    lrt.add_argument(
        "--n-init",
        type=_positive_int,
        default=4,
        help="k-means restarts of each observed fit, beside mclust's hc start (default 4)",
    )
    lrt.add_argument(
        "--reg-covar",
        type=_non_negative_float,
        default=1e-6,
        help="added to the diagonal of covariances (default 1e-6)",
    )
    lrt.add_argument(
        "--prior",
        default="none",
        choices=("none", "default"),
        help="default: mclust's conjugate prior (default none)",
    )
    _add_data_options(lrt)
    _add_output_options(lrt, "jaxgmm-bootstrap-lrt")
    lrt.set_defaults(func=run_bootstrap_lrt)

    boot = commands.add_parser(
        "bootstrap",
        help="standard errors and intervals of a saved model's parameters",
        description="Refit MODEL (a file written by fit or select) to bootstrap replicates of "
        "DATA, its data, all in one batched program (mclust's MclustBootstrap), and write the "
        "standard errors and percentile intervals of its weights, means and covariances "
        "(standard_errors.csv) with histograms of the replicates.",
        epilog="example:  jaxgmm bootstrap results/model.npz data.csv --method weighted",
    )
    boot.add_argument("model", help="saved model (model.npz)")
    boot.add_argument("data", help="the data the model was fitted to")
    boot.add_argument(
        "--method",
        default="nonparametric",
        choices=("nonparametric", "weighted", "parametric"),
        help="rows drawn with replacement, Dirichlet row weights, or rows drawn from the model "
        "(default nonparametric)",
    )
    boot.add_argument(
        "--level", type=_non_negative_float, default=0.95, help="of the intervals (default 0.95)"
    )
    _add_bootstrap_options(boot)
    _add_data_options(boot)
    _add_output_options(boot, "jaxgmm-bootstrap")
    boot.set_defaults(func=run_bootstrap)
    return parser


def _add_bootstrap_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--n-boot", type=_positive_int, default=999, help="replicates (default 999)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--tol",
        type=_non_negative_float,
        default=1e-5,
        help="every refit's convergence threshold on the mean log-likelihood (default 1e-5)",
    )
    parser.add_argument(
        "--max-iter",
        type=_positive_int,
        default=1000,
        help="EM iterations of a refit at most (default 1000)",
    )


# -- entry point -------------------------------------------------------------------------------


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a Unix tool whose reader went away


def _quiet_logs() -> None:
    """XLA's own log lines (a slow compilation's alarm, say) are not for the user's terminal:
    only fatal ones unless --verbose."""
    import jax

    jax.config.update("jax_logging_level", "CRITICAL")


def _stdout_gone() -> int:
    """The reader of standard output went away (``| head``, a pager closed): stop quietly,
    and keep Python from failing again when it flushes standard output at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


def _remove_if_empty(folder) -> None:
    """A folder this run created and wrote nothing to (a refused run) is removed again."""
    if folder is not None:
        try:
            folder.rmdir()  # only if empty
        except OSError:
            pass


def main(argv=None) -> int:
    from ._files import DataFileError
    from ._model_file import ModelFileError

    args = build_parser().parse_args(argv)
    args.created_out = None
    if not getattr(args, "verbose", False):
        _quiet_logs()

    def show_warning(message, category, filename, lineno, file=None, line=None):
        print(f"jaxgmm {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show_warning
    try:
        return args.func(args)
    except BrokenPipeError:
        return _stdout_gone()
    except (CommandError, DataFileError, ModelFileError, ValueError, TypeError) as error:
        _remove_if_empty(args.created_out)
        message = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        print(f"jaxgmm {args.command}: error: {message}", file=sys.stderr)
        if os.environ.get("JAXGMM_DEBUG"):
            raise
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        _remove_if_empty(args.created_out)
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
