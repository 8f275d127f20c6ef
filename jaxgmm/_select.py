"""Model selection over the number of components and the covariance type, ranked by BIC, AIC or
ICL.

For each covariance type the whole grid of K runs as one compiled program: every model is padded
to the largest K, with its trailing components switched off (weight exactly 0, which EM keeps at
0), and all models and their restarts are fitted together under ``vmap``. Restart i of every
model uses the key ``fold_in(key, i)``, so each row equals a separate ``fit`` with that K.

The criteria (BIC, AIC, ICL; lower is better) are those of :mod:`jaxgmm._criteria`, computed on
the final parameters of each model's best restart.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence

import numpy as np

from ._blocks import as_mesh
from ._covariance import COVARIANCE_TYPES, DEFAULT_SELECTION, covariance_unit, has_prior
from ._criteria import from_sums, n_parameters
from ._engine import EMSettings
from ._fit import run_models, with_missing, with_noise, with_prior
from ._init import INIT_METHODS
from ._matmul_precision import current_matmul_precision, with_matmul_precision
from ._missing import check_missing, rows_to_fit
from ._prior import check_prior
from ._progress import ProgressBar
from ._sklearn_api import feature_names_of, key_from, precision_context
from ._validation import as_sample_weight, check_float, check_int, checked_array, to_device
from .estimator import fitted_model

CRITERIA = ("bic", "aic", "icl")
_COLUMNS = (
    "covariance_type",
    "n_components",
    "log_likelihood",
    "n_parameters",
    "bic",
    "aic",
    "icl",
    "icl_soft",
    "converged",
    "degenerate",
    "failed",
    "n_iter",
)


class SelectionResult:
    """The outcome of :func:`select`.

    Attributes
    ----------
    rows : list of dict
        One per (covariance type, K), with the keys of ``COLUMNS``. A row whose every restart
        failed has NaN criteria and ``failed=True``.
    criterion : str
    models : dict
        The fitted :class:`GaussianMixture` of every row that did not fail, keyed by
        ``(covariance_type, n_components)``.
    best : GaussianMixture
        The fitted model with the lowest criterion (among non-degenerate rows when any exists).
    best_row : dict
    prefer_nondegenerate : bool
        Whether ``best`` was chosen among the non-degenerate rows (when any exists).
    """

    COLUMNS = _COLUMNS

    def __init__(
        self,
        rows: list[dict],
        criterion: str,
        models: dict,
        best_row: dict,
        *,
        prefer_nondegenerate: bool = True,
    ):
        self.rows = rows
        self.criterion = criterion
        self.models = models
        self.best_row = best_row
        self.best = models[(best_row["covariance_type"], best_row["n_components"])]
        self.prefer_nondegenerate = prefer_nondegenerate

    def top(self, n: int = 3) -> list[dict]:
        """The ``n`` best rows by ``criterion``, best first, as mclust's
        ``summary(mclustBIC(X))`` lists them (but lower is better): dicts with the keys
        ``covariance_type``, ``n_components``, ``value`` (the criterion) and ``difference``
        (``value`` minus the best's: 0 for the first, >= 0 after). Rows whose criterion is not
        finite (failed fits) are skipped, and so are degenerate rows when ``best`` was chosen
        among the non-degenerate ones, so that the first is always ``best_row``."""
        n = check_int(n, "n", 1)
        skip_degenerate = self.prefer_nondegenerate and not self.best_row["degenerate"]
        ranked = sorted(  # stable: ties keep the table's order, as select's min does
            (
                row
                for row in self.rows
                if math.isfinite(row[self.criterion])
                and not (skip_degenerate and row["degenerate"])
            ),
            key=lambda row: row[self.criterion],
        )[:n]
        if not ranked:
            return []
        best = float(ranked[0][self.criterion])
        return [
            {
                "covariance_type": row["covariance_type"],
                "n_components": int(row["n_components"]),
                "value": float(row[self.criterion]),
                "difference": float(row[self.criterion]) - best,
            }
            for row in ranked
        ]

    def to_dataframe(self):
        """The table as a pandas DataFrame (pandas must be installed)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.COLUMNS))

    def __str__(self) -> str:
        header = (
            f"{'covariance':<10} {'K':>3} {'log L':>12} {'params':>6} {'BIC':>12} "
            f"{'AIC':>12} {'ICL':>12}  notes"
        )
        lines = [header]
        for row in self.rows:
            notes = ", ".join(
                word
                for word, flag in (
                    ("failed", row["failed"]),
                    ("degenerate", row["degenerate"]),
                    ("not converged", not row["converged"]),
                )
                if flag
            )
            mark = "  <- best" if row is self.best_row else ""
            lines.append(
                f"{row['covariance_type']:<10} {row['n_components']:>3} "
                f"{row['log_likelihood']:>12.3f} {row['n_parameters']:>6} {row['bic']:>12.3f} "
                f"{row['aic']:>12.3f} {row['icl']:>12.3f}  {notes}{mark}"
            )
        return "\n".join(lines + self._top_lines())

    def _top_lines(self, n: int = 3) -> list[str]:
        """The block after the table: the best models and their distance from the best, which
        is how mclust users read a selection (a difference under about 2 is weak evidence)."""
        top = self.top(n)
        labels = [f"{t['covariance_type']}, K={t['n_components']}" for t in top]
        values = [f"{t['value']:.3f}" for t in top]
        diffs = [f"+{t['difference']:.3f}" if i else "" for i, t in enumerate(top)]
        wl, wv, wd = (max(map(len, column), default=0) for column in (labels, values, diffs))
        lines = [f"top {len(top)} by {self.criterion.upper()} (lower is better):"]
        lines += [
            f"  {label:<{wl}}  {value:>{wv}}  {diff:>{wd}}".rstrip()
            for label, value, diff in zip(labels, values, diffs, strict=True)
        ]
        return [""] + lines


def selection_types(covariance_types, prior=None) -> tuple[str, ...]:
    """The covariance types a selection fits: scikit-learn's four for None, every model of
    ``COVARIANCE_TYPES`` for "all" (with a prior, every model that has one)."""
    if covariance_types is None:
        return DEFAULT_SELECTION
    if covariance_types == "all":
        return tuple(
            name for name, unit in COVARIANCE_TYPES.items() if prior is None or has_prior(unit)
        )
    if isinstance(covariance_types, str):
        return (covariance_types,)
    return tuple(covariance_types)


@with_matmul_precision
def select(
    X,
    n_components: Iterable[int] = range(1, 11),
    covariance_types: Sequence[str] | None = None,
    *,
    n_init: int = 4,
    criterion: str = "bic",
    random_state=None,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init_params: str = "kmeans",
    sample_weight=None,
    prefer_nondegenerate: bool = True,
    progress: bool = False,
    devices=None,
    prior: str | None = None,
    noise=False,
    missing: str = "error",
) -> SelectionResult:
    """Fit a grid of Gaussian mixtures, every K with every covariance type, and rank them.

    Parameters
    ----------
    X : (N, D) array-like
        What :class:`GaussianMixture` accepts (float32 stays float32; float64 is fitted in
        float64).
    n_components : iterable of int
        The values of K.
    covariance_types : sequence of str, or "all", optional
        Names of ``jaxgmm.COVARIANCE_TYPES``; by default scikit-learn's four, "full", "tied",
        "diag" and "spherical"; "all" for every one (with ``prior``, those that have one).
    n_init : int
        Restarts per model; each row is the best of its restarts.
    criterion : {"bic", "aic", "icl"}
        What ranks the models; lower is better.
    random_state : int, numpy Generator or None
    max_iter, tol, reg_covar, init_params, prefer_nondegenerate
        As in :class:`GaussianMixture`.
    sample_weight : (N,) array, optional
    progress : bool
        Draw a progress bar per covariance type on stderr.
    devices : jax.sharding.Mesh or list of devices, optional
        Shard the rows over these devices, as :func:`jaxgmm.fit`.
    prior : {None, "default"}
        mclust's conjugate prior (:func:`jaxgmm.default_prior`).
    noise : bool or (N,) bool array
        Add mclust's noise component to every model, from one initial noise mask.
    missing : {"error", "em"}
        "em" fits data with values missing at random (NaN), as :func:`jaxgmm.fit` does.

    Returns
    -------
    SelectionResult
        The table (log-likelihood, parameters, BIC, AIC, ICL per model), the fitted models
        and the best one.

    Examples
    --------
    >>> import jaxgmm
    >>> result = jaxgmm.select(jaxgmm.lesson_data(), [1, 2, 3], ["full", "diag"],
    ...                        random_state=0)
    >>> best = result.best
    >>> best.covariance_type, best.n_components
    ('diag', 2)
    >>> [(row["covariance_type"], row["n_components"]) for row in result.top(2)]
    [('diag', 2), ('full', 2)]
    """
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    units = [covariance_unit(t) for t in selection_types(covariance_types, prior)]
    if not units:
        raise ValueError("covariance_types is empty")
    for unit in units:
        check_prior(prior, unit)
    ks = sorted({check_int(k, "n_components", 1) for k in n_components})
    if not ks:
        raise ValueError("n_components is empty; give the values of K to try")
    n_init = check_int(n_init, "n_init", 1)
    settings = EMSettings(
        reg_covar=check_float(reg_covar, "reg_covar"),
        tol=check_float(tol, "tol"),
        max_iter=check_int(max_iter, "max_iter", 0),
    )
    if init_params not in INIT_METHODS:
        raise ValueError(f"init_params must be one of {INIT_METHODS}, got {init_params!r}")
    mesh = as_mesh(devices)
    names = feature_names_of(X)
    fill_missing = check_missing(missing)
    X, dtype = checked_array(X, min_samples=2, wide=True, missing=fill_missing)
    missing_width = 0
    if fill_missing:
        sample_weight = None if sample_weight is None else np.asarray(sample_weight)
        X, sample_weight, missing_width = rows_to_fit(X, sample_weight)
    n_samples = X.shape[0]
    if ks[-1] > n_samples:
        raise ValueError(
            f"n_components={ks[-1]} is larger than the number of samples (N={n_samples})"
        )

    with precision_context(dtype):
        Xd = to_device(X, dtype)
        w = as_sample_weight(sample_weight, n_samples, dtype)
        settings = with_missing(settings, missing_width, "auto")
        settings = with_prior(settings, prior, units[0], Xd, w)
        settings, noise_mask = with_noise(settings, noise, X, w)
        n_samples_weighted = (
            n_samples if w is None else float(np.asarray(sample_weight, np.float64).sum())
        )
        n_features = X.shape[1]
        key = key_from(random_state)
        models = [(unit, k) for unit in units for k in ks]
        bar = ProgressBar(f"{len(models)} models") if progress else None
        fits = run_models(
            key,
            Xd,
            w,
            models,
            n_init=n_init,
            init=init_params,
            settings=settings,
            callback=bar,
            mesh=mesh,
            prefer_nondegenerate=prefer_nondegenerate,
            scores=True,
            noise_mask=noise_mask,
        )
        if bar is not None:
            bar.close()
    rows = [
        _row(n_samples_weighted, n_features, unit.name, k, fitted, noise_mask is not None)
        for (unit, k), fitted in zip(models, fits, strict=True)
    ]
    fits = [fitted.result for fitted in fits]

    candidates = [i for i, row in enumerate(rows) if not row["failed"]]
    if not candidates:
        raise ValueError("every model of the grid failed; try a larger reg_covar or scaling X")
    if prefer_nondegenerate and any(not rows[i]["degenerate"] for i in candidates):
        candidates = [i for i in candidates if not rows[i]["degenerate"]]
    best = min(candidates, key=lambda i: rows[i][criterion])
    _warn_at_the_edge(rows[best]["n_components"], ks, n_samples, criterion)
    models = {}
    for row, result in zip(rows, fits, strict=True):
        if row["failed"]:
            continue
        settings_of_row = dict(
            n_components=row["n_components"],
            covariance_type=row["covariance_type"],
            tol=tol,
            reg_covar=reg_covar,
            max_iter=max_iter,
            n_init=n_init,
            init_params=init_params,
            random_state=random_state,
            prefer_nondegenerate=prefer_nondegenerate,
            matmul_precision=current_matmul_precision(),
            prior=prior,
            noise=noise,
            missing=missing,
        )
        models[(row["covariance_type"], row["n_components"])] = fitted_model(
            result, dtype, settings=settings_of_row, feature_names=names
        )
    return SelectionResult(
        rows, criterion, models, rows[best], prefer_nondegenerate=prefer_nondegenerate
    )


def _row(n_samples, n_features, covariance_type: str, k: int, fitted, noise: bool) -> dict:
    result = fitted.result
    row = {
        "covariance_type": covariance_type,
        "n_components": k,
        "n_parameters": n_parameters(covariance_type, k, n_features, noise),
        "converged": bool(result.converged),
        "degenerate": bool(result.restarts.degenerate[int(result.best_restart)]),
        "failed": bool(np.all(result.restarts.failed)),
        "n_iter": int(result.n_iter),
    }
    if row["failed"]:
        return row | dict.fromkeys(("log_likelihood", "bic", "aic", "icl", "icl_soft"), math.nan)
    return row | from_sums(
        fitted.log_likelihood, fitted.entropy, fitted.hard_cost, row["n_parameters"], n_samples
    )


def _warn_at_the_edge(k: int, ks: list[int], n_samples: int, criterion: str) -> None:
    """The best K at an end of the grid (but 1, or all the samples) may be a K the grid cut
    short: say so, and which range to try."""
    if len(ks) < 2:
        return
    if k == ks[-1] and k < n_samples:
        wider = f"{ks[0]}..{min(2 * k, n_samples)}"
        side = "largest"
    elif k == ks[0] and k > 1:
        wider = f"1..{ks[-1]}"
        side = "smallest"
    else:
        return
    warnings.warn(
        f"the best model by {criterion.upper()} has K={k}, the {side} K of the grid: a K "
        f"beyond it may be better; try K in {wider}",
        UserWarning,
        stacklevel=4,  # the caller of select, past its matmul_precision wrapper
    )
