"""``GaussianMixture``: scikit-learn's estimator contract, as a thin shell over the core.

The estimator validates its inputs on the host, calls :func:`jaxgmm.fit`, and keeps the result as
NumPy attributes named as scikit-learn's. It has no mathematics of its own: every density,
responsibility and criterion comes from the core.

Precision: float32 data are fitted in float32; float64 data (scikit-learn's default, and what
integers and lists become) are fitted in float64 inside JAX's 64-bit context, whatever the global
setting, so nothing is ever silently cut to float32.
"""

from __future__ import annotations

import numbers
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from . import _model_file, _online
from ._covariance import covariance_unit
from ._criteria import entropy, from_sums, hard_label_cost, n_parameters
from ._em import densities
from ._fit import fit as core_fit
from ._fit import initialize
from ._init import INIT_METHODS
from ._matmul_precision import check_matmul_precision, matmul_precision_scope
from ._missing import check_missing, imputations
from ._noise import NOISE_LABEL, has_noise
from ._params import FitResult, GMMParams, Noise, RestartOutcome
from ._prior import check_prior
from ._progress import ProgressBar
from ._sklearn_api import (
    EstimatorParams,
    check_learning_rate,
    check_number,
    convergence_warning,
    feature_names_of,
    key_from,
    not_fitted_error,
    precision_context,
)
from ._validation import check_mixture, checked_array, to_device


def _distinct_rows_at_least(X: np.ndarray, count: int) -> int:
    """Number of distinct rows, looked at only as far as needed to know whether it reaches
    ``count`` (a full ``unique`` of millions of rows would cost seconds for nothing)."""
    for size in (4 * count + 16, 20 * count + 1000):  # most data answer from a few rows
        head = X[:size]
        distinct = len(np.unique(head, axis=0))
        if distinct >= count or len(head) == len(X):
            return distinct
    return len(np.unique(X, axis=0))


def _constant_columns(X: np.ndarray) -> list[int]:
    """Columns of ``X`` whose values are all equal (NaN equal to nothing). Only the columns
    constant over the first rows are read whole: ``numpy.ptp(X, axis=0)`` over the rows took
    3.5 ms of a 23 ms fit of 100,000 x 2 (2-core VM, 2026-12-06)."""
    head = X[:64]
    candidates = np.flatnonzero(np.all(head == head[:1], axis=0))
    return [int(j) for j in candidates if np.all(X[:, j] == X[0, j])]


def _identical_columns(X: np.ndarray) -> list[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i < j``, of columns of ``X`` equal to each other (NaN equal to NaN),
    ``i`` the first of its kind. Columns are grouped by their first rows, and only columns of a
    group compared whole: ``numpy.unique(X, axis=1)`` sorted whole columns, 0.55 s of a fit on
    100,000 x 16 (2-core VM, 2026-12-06)."""
    groups: dict[bytes, list[int]] = {}
    for j in range(X.shape[1]):
        groups.setdefault(np.ascontiguousarray(X[:64, j]).tobytes(), []).append(j)
    pairs = []
    for columns in groups.values():
        firsts: list[int] = []
        for j in columns:
            same = [i for i in firsts if np.array_equal(X[:, i], X[:, j], equal_nan=True)]
            if same:
                pairs.append((same[0], j))
            else:
                firsts.append(j)
    return sorted(pairs, key=lambda pair: pair[1])


class GaussianMixture(EstimatorParams):
    """Gaussian mixture fitted by EM in JAX, with scikit-learn's parameters and attributes.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : str, default="full"
        "full", "tied", "diag", "spherical", or one of mclust's models "EII", "EEI", "EVI",
        "EEV", "EVV" (see ``jaxgmm.COVARIANCE_TYPES``; mclust's VVV, EEE, VVI, VII name the four).
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound (mean log-likelihood per sample).
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance.
    max_iter : int, default=100
    n_init : int, default=1
        Restarts, fitted together in one compiled program; the best is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data", "hc"}, default="kmeans"
    weights_init : (n_components,) array, optional
    means_init : (n_components, n_features) array, optional
    precisions_init : array, optional
        Inverse covariances, shaped as ``covariances_`` for the covariance type. Whatever is
        not given comes from ``init_params``, restart by restart, as in scikit-learn.
    random_state : None, int, numpy RandomState/Generator or JAX key
    warm_start : bool, default=False
        Refit from the current parameters (one restart) when already fitted.
    verbose : int, default=0
        1 prints each restart's outcome after the fit, 2 also its lower bound every
        ``verbose_interval`` iterations.
    verbose_interval : int, default=10
    prefer_nondegenerate : bool, default=True
        Choose the best restart among those without a collapsed component (see
        :class:`jaxgmm.RestartOutcome`); ``False`` keeps the plain highest likelihood.
    progress : bool, default=False
        Draw a progress bar on stderr while fitting.
    devices : jax.sharding.Mesh or list of devices, optional
        Shard the data's rows over these devices while fitting (see :func:`jaxgmm.fit`). A
        clone shares them; a pickled estimator leaves them out.
    checkpoint : path, optional
        Checkpoint file for long fits: written as the fit goes, resumed when it exists (see
        :func:`jaxgmm.fit`).
    matmul_precision : {"highest", "high", "default"}, default="highest"
        Precision of float32 matrix products on accelerators (see :func:`jaxgmm.fit`): "high"
        and "default" are faster on NVIDIA GPUs and TPUs and about three digits less accurate.
    prior : {None, "default"}, default=None
        "default": mclust's conjugate prior (``jaxgmm._prior``): MAP estimates, and
        ``lower_bound_`` is then the log posterior per sample.
    noise : bool or (n_samples,) bool array, default=False
        Add mclust's noise component (``jaxgmm._noise``): a uniform density over the data's
        region, with its own weight, for points no Gaussian explains; they are labelled -1.
        An array is the initial noise mask of the data ``fit`` is given (mclust's
        ``initialization = list(noise = mask)``); True takes the sparsest 15% of the rows.
    missing : {"error", "em"}, default="error"
        "em": NaN marks a value missing at random, in fitting and in every method that reads
        data: EM uses each row's observed coordinates (``jaxgmm._missing``), ``predict``,
        ``predict_proba`` and ``score_samples`` the marginal density over them, and
        :meth:`impute` fills the missing ones. Rows missing every value are left out of the
        fit with a warning (``score_samples`` gives them 0, and the weights as probabilities).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        scikit-learn's shapes; float32 for float32 data, float64 otherwise.
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
    lower_bounds_ : ndarray
        Of shape ``(n_iter_,)``.
    restarts_ : RestartOutcome
        Every restart's final lower bound, trace, n_iter, converged, failed, degenerate and
        parameters, as NumPy arrays.
    best_restart_ : int
        Index of the chosen restart in ``restarts_``.
    interrupted_ : bool
        A Ctrl-C stopped the fit early (see :func:`jaxgmm.fit`); the model is the best so far.
    noise_weight_, noise_log_density_ : float or None
        With ``noise``: the noise component's weight (``weights_`` then sum to 1 less it) and
        its log density ``-log V``. ``predict_proba`` then has a last column for it, and
        ``predict`` labels its points -1.
    n_steps_ : int
        Mini-batches :meth:`partial_fit` has folded in.
    n_features_in_ : int
    feature_names_in_ : ndarray
        Of shape ``(n_features_in_,)``, only when fitted on a DataFrame with string column
        names.

    Examples
    --------
    >>> import numpy as np, jaxgmm
    >>> X, labels = jaxgmm.lesson_data(return_labels=True)
    >>> gm = jaxgmm.GaussianMixture(2, n_init=4, random_state=0).fit(X)
    >>> means = gm.means_[gm.means_[:, 0].argsort()]  # the lesson's truth: (-2, 0) and (2, 1)
    >>> np.allclose(means, [[-2, 0], [2, 1]], atol=0.1)
    True
    >>> agreement = np.mean(gm.predict(X) == labels)  # up to the components' order
    >>> bool(gm.converged_), bool(max(agreement, 1 - agreement) > 0.95)
    (True, True)
    >>> round(gm.bic(X), 1) < jaxgmm.GaussianMixture(3, random_state=0).fit(X).bic(X)
    True
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        n_init: int = 1,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        prefer_nondegenerate: bool = True,
        progress: bool = False,
        devices=None,
        checkpoint=None,
        matmul_precision: str = "highest",
        prior: str | None = None,
        noise=False,
        missing: str = "error",
        learning_offset: float = 10.0,
        learning_decay: float = 0.7,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.prefer_nondegenerate = prefer_nondegenerate
        self.progress = progress
        self.devices = devices
        self.checkpoint = checkpoint
        self.matmul_precision = matmul_precision
        self.prior = prior
        self.noise = noise
        self.missing = missing
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay

    # -- validation ------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        check_number(self.n_components, "n_components", integer=True, minimum=1)
        covariance_unit(self.covariance_type)
        check_number(self.tol, "tol", integer=False, minimum=0.0)
        check_number(self.reg_covar, "reg_covar", integer=False, minimum=0.0)
        check_number(self.max_iter, "max_iter", integer=True, minimum=0)
        check_number(self.n_init, "n_init", integer=True, minimum=1)
        check_number(self.verbose, "verbose", integer=True, minimum=0)
        check_number(self.verbose_interval, "verbose_interval", integer=True, minimum=1)
        if self.init_params not in INIT_METHODS:
            raise ValueError(f"init_params must be one of {INIT_METHODS}, got {self.init_params!r}")
        check_matmul_precision(self.matmul_precision)
        check_prior(self.prior, covariance_unit(self.covariance_type))
        check_missing(self.missing)
        check_learning_rate(self.learning_offset, self.learning_decay)

    def _check_init_arrays(self, n_features: int, dtype) -> dict[str, np.ndarray]:
        """The given initial weights, means and precisions, checked and cast to ``dtype``."""
        unit = covariance_unit(self.covariance_type)
        given = {
            kind: getattr(self, f"{kind}_init")
            for kind in ("weights", "means", "precisions")
            if getattr(self, f"{kind}_init") is not None
        }
        checked = check_mixture(
            given,
            unit=unit,
            n_components=self.n_components,
            n_features=n_features,
            names={"precisions": f"{unit.name} precision"},  # scikit-learn's names
        )
        return {f"{kind}_init": array.astype(dtype) for kind, array in checked.items()}

    def _validate_X(self, X, *, reset: bool, min_samples: int = 1):
        """``X`` as a finite 2-D array of its computation dtype, with scikit-learn's checks of
        feature names and counts against the fitted model."""
        names = feature_names_of(X)
        if reset:
            if names is None:
                self.__dict__.pop("feature_names_in_", None)
            else:
                self.feature_names_in_ = names
        else:
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and names is None:
                warnings.warn(
                    f"X does not have valid feature names, but {type(self).__name__} was "
                    "fitted with feature names",
                    UserWarning,
                    stacklevel=3,
                )
            elif fitted is None and names is not None:
                warnings.warn(
                    f"X has feature names, but {type(self).__name__} was fitted without "
                    "feature names",
                    UserWarning,
                    stacklevel=3,
                )
            elif fitted is not None and not np.array_equal(fitted, names):
                raise ValueError(
                    "The feature names should match those that were passed during fit. "
                    f"Fitted with {list(fitted)}, got {list(names)}"
                )
        missing = check_missing(self.missing)
        X, dtype = checked_array(X, min_samples=min_samples, wide=True, missing=missing)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input."
            )
        return X, dtype

    def _check_is_fitted(self) -> None:
        if not hasattr(self, "weights_"):
            raise not_fitted_error()(
                f"This {type(self).__name__} instance is not fitted yet. Call 'fit' with "
                "appropriate arguments before using this estimator."
            )

    def _warn_about_data(self, X) -> None:
        if not isinstance(X, np.ndarray):
            return
        n_samples, n_features = X.shape
        k = self.n_components
        if k > n_samples:
            raise ValueError(
                f"n_components={k} is larger than the number of samples (N={n_samples}); "
                "a mixture needs at least one sample per component"
            )
        distinct = _distinct_rows_at_least(X, k)
        if distinct < k:
            warnings.warn(
                f"n_components={k} is more than the {distinct} distinct points in X: some "
                "components will be empty or collapse onto repeated points",
                UserWarning,
                stacklevel=4,
            )
        unit = covariance_unit(self.covariance_type)
        if unit.poorly_determined(n_samples, k, n_features):
            warnings.warn(
                f"{n_features} features with about {n_samples / k:.1f} samples per component: "
                f"{unit.name} covariances will be poorly determined; consider "
                "covariance_type='diag' or fewer components",
                UserWarning,
                stacklevel=4,
            )
        names = getattr(self, "feature_names_in_", None)
        names = [str(n) for n in names] if names is not None else list(range(n_features))

        def shown(columns) -> str:  # by name, or as the list of their indices
            return ", ".join(map(repr, columns)) if names[:1] != [0] else str(list(columns))

        constant = [names[j] for j in _constant_columns(X)]
        if constant and n_samples > 1:
            warnings.warn(
                f"column{'s' * (len(constant) > 1)} {shown(constant)} of X "
                f"{'are' if len(constant) > 1 else 'is'} constant: its variance is only "
                "reg_covar",
                UserWarning,
                stacklevel=4,
            )
        if unit.correlated and n_features > 1:
            twins = [(names[i], names[j]) for i, j in _identical_columns(X)]
            if twins:
                pairs = ", ".join(f"{shown([a])} and {shown([b])}" for a, b in twins)
                warnings.warn(
                    f"columns {pairs} of X are identical: {unit.name} covariances of them are "
                    "singular, kept invertible by reg_covar only (every restart will be "
                    "degenerate); drop one of each pair",
                    UserWarning,
                    stacklevel=4,
                )

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Fit the mixture by EM (``n_init`` restarts, the best kept). Returns ``self``."""
        self._fit(X, sample_weight, fit_only=True)
        return self

    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit, then label each sample with its most probable component (a final E-step, so the
        labels equal ``fit(X).predict(X)``)."""
        return self._fit(X, sample_weight, fit_only=False)

    def partial_fit(self, X, y=None):
        """Fold one mini-batch into the model by online EM (``jaxgmm._online``): the first
        batch fits the model (as :meth:`fit`) unless it is fitted already, and sets the running
        statistics; each later one moves them by a decaying step. Data read once in batches
        reach about the full fit's likelihood at a fraction of its cost. Returns ``self``."""
        if self.prior is not None or self.noise is not False or self.missing != "error":
            raise ValueError("partial_fit fits plain mixtures: no prior, noise or missing values")
        if covariance_unit(self.covariance_type).name not in _online.TYPES:
            raise ValueError(f"partial_fit fits the covariance types {_online.TYPES}")
        fitted = hasattr(self, "weights_")
        if not fitted:
            self._fit(X, None, fit_only=True)
        self._check_parameters()
        X, dtype = self._validate_X(X, reset=False, min_samples=1)
        with precision_context(dtype), matmul_precision_scope(self.matmul_precision):
            self._running, params, log_lik = _online.online_update(
                getattr(self, "_running", None),
                self._host_params(dtype),
                X,
                unit=covariance_unit(self.covariance_type),
                reg_covar=self.reg_covar,
                learning_offset=self.learning_offset,
                learning_decay=self.learning_decay,
            )
        unit = covariance_unit(self.covariance_type)
        for name in ("weights", "means", "covariances", "precisions_cholesky"):
            setattr(self, f"{name}_", np.asarray(getattr(params, name)).astype(dtype))
        self.precisions_ = unit.precisions(self.precisions_cholesky_)
        self.lower_bound_ = log_lik
        self.n_steps_ = self._running.steps
        return self

    def _fit(self, X, sample_weight, *, fit_only: bool):
        self._check_parameters()
        X, dtype = self._validate_X(X, reset=True, min_samples=2)
        self._warn_about_data(X)
        inits = self._check_init_arrays(X.shape[1], dtype)
        with precision_context(dtype), matmul_precision_scope(self.matmul_precision):
            key = key_from(self.random_state)
            warm = self.warm_start and hasattr(self, "weights_")
            n_init = 1 if warm else self.n_init
            if warm:
                init = self._params(dtype)
            elif inits:
                init = self._initial_params(key, X, inits, n_init, sample_weight)
            else:
                init = self.init_params
            bar = ProgressBar(f"fit K={self.n_components}") if self.progress else None
            result = core_fit(
                key,
                X,
                self.n_components,
                covariance_type=self.covariance_type,
                n_init=n_init,
                max_iter=self.max_iter,
                tol=self.tol,
                reg_covar=self.reg_covar,
                init=init,
                sample_weight=sample_weight,
                prefer_nondegenerate=self.prefer_nondegenerate,
                callback=bar,
                devices=self.devices,
                checkpoint=self.checkpoint,
                previous_lower_bound=self.lower_bound_ if warm else None,
                prior=self.prior,
                noise=self.noise,
                missing=self.missing,
            )
            if bar is not None:
                bar.close()
            self._set_fitted(result, dtype)
            labels = None if fit_only else self._labels(self._densities(X)[0])
        self._report(result)
        self._warn_about_outcome("parameters")
        return labels

    def _warn_about_outcome(self, what: str) -> None:
        """A fit stopped by Ctrl-C, or whose best restart did not converge, warns (from the
        caller of ``fit``)."""
        if self.interrupted_:
            warnings.warn(
                f"Fit interrupted (Ctrl-C): the {what} are the best reached so far.",
                UserWarning,
                stacklevel=4,
            )
        elif not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                convergence_warning(),
                stacklevel=4,
            )

    def _initial_params(self, key, X, inits, n_init, sample_weight) -> GMMParams:
        """Initial parameters of every restart, on the host: from ``init_params``, with
        whatever was given in ``weights_init`` / ``means_init`` / ``precisions_init`` put in
        their place."""
        unit = covariance_unit(self.covariance_type)
        dtype = inits[next(iter(inits))].dtype
        given = {name[: -len("_init")]: array for name, array in inits.items()}
        if "precisions" in given:
            given["covariances"], given["precisions_cholesky"] = unit.from_precisions(
                given.pop("precisions")
            )
        if len(given) == 4:
            return GMMParams(**{name: a.astype(dtype) for name, a in given.items()})
        params = jax.device_get(
            initialize(
                key,
                X,
                self.n_components,
                covariance_type=self.covariance_type,
                n_init=n_init,
                init=self.init_params,
                reg_covar=self.reg_covar,
                sample_weight=sample_weight,
            )
        )
        return params._replace(
            **{
                name: np.broadcast_to(a, (n_init, *a.shape)).astype(dtype)
                for name, a in given.items()
            }
        )

    def _set_fitted(self, result, dtype, feature_names=None) -> None:
        """The fitted attributes, as NumPy arrays of ``dtype``, from a :class:`FitResult`;
        ``feature_names`` (when given) become ``feature_names_in_``."""
        unit = covariance_unit(self.covariance_type)

        def host(a):
            return np.asarray(a).astype(dtype) if np.asarray(a).dtype.kind == "f" else np.asarray(a)

        params = result.params
        self.weights_ = host(params.weights)
        self.means_ = host(params.means)
        self.covariances_ = host(params.covariances)
        self.precisions_cholesky_ = host(params.precisions_cholesky)
        self.precisions_ = unit.precisions(self.precisions_cholesky_)
        noise = params.noise
        self.noise_weight_ = None if noise is None else float(noise.weight)
        self.noise_log_density_ = None if noise is None else float(noise.log_density)
        self.best_restart_ = int(result.best_restart)
        self.interrupted_ = bool(result.interrupted)
        self.converged_ = bool(result.converged)
        self.n_iter_ = int(result.n_iter)
        self.lower_bound_ = float(result.lower_bound)
        self.lower_bounds_ = host(result.lower_bounds)
        outcome = result.restarts
        self.restarts_ = RestartOutcome(
            *(host(field) for field in outcome[:-1]),
            params=jax.tree_util.tree_map(host, outcome.params),
        )
        self.n_features_in_ = self.means_.shape[1]
        self.__dict__.pop("_running", None)  # a new fit: partial_fit starts again
        if feature_names is not None:
            self.feature_names_in_ = np.asarray([str(n) for n in feature_names], dtype=object)

    def _report(self, result) -> None:
        if not self.verbose:
            return
        outcome = result.restarts
        for i in range(len(outcome.n_iter)):
            status = (
                "failed"
                if outcome.failed[i]
                else "converged"
                if outcome.converged[i]
                else "did not converge"
            )
            print(
                f"Initialization {i}: {status} after {int(outcome.n_iter[i])} iterations, "
                f"lower bound {float(outcome.lower_bound[i]):.6f}"
                + (" (degenerate)" if outcome.degenerate[i] else "")
            )
            if self.verbose >= 2:
                trace = np.asarray(outcome.lower_bounds[i])
                for it in range(
                    self.verbose_interval - 1, int(outcome.n_iter[i]), self.verbose_interval
                ):
                    print(f"  Iteration {it + 1}: lower bound {trace[it]:.6f}")

    # -- inference -------------------------------------------------------------------------

    def _params(self, dtype) -> GMMParams:
        return jax.device_put(self._host_params(dtype))

    def _host_params(self, dtype) -> GMMParams:
        """The fitted parameters as NumPy arrays of ``dtype``."""
        noise = None
        if has_noise(self):
            noise = Noise(
                np.asarray(self.noise_weight_, dtype), np.asarray(self.noise_log_density_, dtype)
            )
        return GMMParams(
            *(
                np.asarray(a, dtype=dtype)
                for a in (self.weights_, self.means_, self.covariances_, self.precisions_cholesky_)
            ),
            noise=noise,
        )

    def _labels(self, log_resp) -> np.ndarray:
        """The most probable component of each row of ``log_resp``; -1 for the noise column."""
        labels = log_resp.argmax(axis=1)
        if not has_noise(self):
            return labels
        return np.where(labels == self.means_.shape[0], NOISE_LABEL, labels)

    def _prepared(self, X):
        self._check_is_fitted()
        X, dtype = self._validate_X(X, reset=False)
        return X, np.promote_types(dtype, self.means_.dtype)

    def _densities(self, X) -> tuple[np.ndarray, np.ndarray]:
        """``log_resp (N, K)`` and the log density ``(N,)`` of checked data, NumPy or JAX, in
        its computation dtype (``jaxgmm._em.densities``)."""
        dtype = np.dtype(X.dtype)
        # the most values missing in a row: the size of what each row factors
        missing = int(jnp.max(jnp.sum(jnp.isnan(X), axis=1))) if self.missing == "em" else 0
        if missing and has_noise(self):
            raise ValueError("a model with a noise component cannot score rows with missing values")
        params = self._host_params(dtype)
        return densities(X, params, covariance_unit(self.covariance_type), missing)

    def _on_data(self, X) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`_densities` of new data, checked against the fitted model."""
        X, dtype = self._prepared(X)
        with precision_context(dtype), matmul_precision_scope(self.matmul_precision):
            if isinstance(X, np.ndarray):
                X = X.astype(dtype, copy=False)
            else:
                X = to_device(X, dtype)
            return self._densities(X)

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities ``(N, K)``: the probability of each component given each sample
        (``(N, K + 1)`` with a noise component, its column last)."""
        return np.exp(self._on_data(X)[0])

    def predict(self, X) -> np.ndarray:
        """Most probable component of each sample, ``(N,)``; -1 for the noise component."""
        return self._labels(self._on_data(X)[0])

    def score_samples(self, X) -> np.ndarray:
        """Log density of the mixture at each sample, ``(N,)``."""
        return self._on_data(X)[1]

    def impute(self, X, n_draws: int | None = None, key=None) -> np.ndarray:
        """Fill the missing values (NaN) of ``X``: each with its conditional mean under the
        mixture given the row's observed values, ``(N, D)``; with ``n_draws``, that many
        multiple imputations instead, ``(n_draws, N, D)``: for each, a component drawn from the
        row's posterior, then the missing values from its conditional normal (``key``: a JAX
        key or seed; by default from ``random_state``). Observed values are kept as they are."""
        if self.missing != "em":
            raise ValueError('impute reads missing values: fit with missing="em"')
        if has_noise(self):
            raise ValueError("a model with a noise component cannot impute missing values")
        X, dtype = self._prepared(X)
        if n_draws is not None:
            check_number(n_draws, "n_draws", integer=True, minimum=1)
        with precision_context(dtype), matmul_precision_scope(self.matmul_precision):
            means, draws = jax.device_get(
                imputations(
                    to_device(X, dtype),
                    self._params(dtype),
                    key_from(self.random_state if key is None else key),
                    unit=covariance_unit(self.covariance_type),
                    n_draws=n_draws or 0,
                    width=max(int(np.max(np.sum(np.isnan(X), axis=1))), 1),
                )
            )
        return means if n_draws is None else draws

    def score(self, X, y=None) -> float:
        """Mean log-likelihood per sample."""
        return float(np.mean(self.score_samples(X)))

    def criteria(self, X) -> dict[str, float]:
        """``log_likelihood``, ``n_parameters``, ``bic``, ``aic``, ``icl`` and ``icl_soft`` of
        the model on ``X``, from one pass over it (lower criteria are better; see
        ``jaxgmm._criteria``)."""
        log_resp, log_norm = self._on_data(X)
        return from_sums(
            float(np.sum(log_norm, dtype=np.float64)),
            entropy(log_resp),
            hard_label_cost(log_resp),
            self._n_parameters(),
            len(log_norm),
        )

    def _n_parameters(self) -> int:
        """Free parameters of the fitted model (scikit-learn's name, which its users call)."""
        self._check_is_fitted()
        return n_parameters(self.covariance_type, *self.means_.shape, noise=has_noise(self))

    def bic(self, X) -> float:
        """Bayesian information criterion, ``-2 log L + p log N`` (lower is better)."""
        return self.criteria(X)["bic"]

    def aic(self, X) -> float:
        """Akaike information criterion, ``-2 log L + 2 p`` (lower is better)."""
        return self.criteria(X)["aic"]

    def icl(self, X) -> float:
        """Integrated completed likelihood criterion as mclust computes it: BIC minus twice the
        sum over samples of the log of the largest responsibility (lower is better; mclust
        reports its negative). ``criteria(X)["icl_soft"]`` is the variant with the entropy of
        the responsibilities."""
        return self.criteria(X)["icl"]

    def sample(self, n_samples: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n_samples`` points; returns ``(X, labels)``, grouped by component."""
        self._check_is_fitted()
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral):
            raise TypeError(f"n_samples must be an integer, got {n_samples!r}")
        if n_samples < 1:
            raise ValueError(f"Invalid value for 'n_samples': it must be >= 1, got {n_samples}")
        if has_noise(self):
            raise ValueError(
                "sample() cannot draw from a noise component: the model keeps its volume, not "
                "its region"
            )
        seed = np.asarray(jax.random.key_data(key_from(self.random_state))).ravel()
        rng = np.random.default_rng(seed.astype(np.uint64))
        k, d = self.means_.shape
        counts = rng.multinomial(
            n_samples, self.weights_.astype(np.float64) / self.weights_.astype(np.float64).sum()
        )
        cov = covariance_unit(self.covariance_type).dense(self.covariances_, k, d)
        parts = []
        for j in range(k):
            z = rng.standard_normal((counts[j], d))
            parts.append(self.means_[j] + z @ np.linalg.cholesky(cov[j]).T)
        X = np.concatenate(parts).astype(self.means_.dtype)
        return X, np.repeat(np.arange(k), counts)

    # -- saved models ----------------------------------------------------------------------

    def save(self, path) -> None:
        """Write the fitted model to ``path`` atomically, in the format of :func:`jaxgmm.load`
        (an ``.npz`` of arrays with a JSON metadata entry; no pickle)."""
        self._check_is_fitted()
        _model_file.write(self, path)


def fitted_model(
    result: FitResult, dtype, *, settings: dict, feature_names=None
) -> GaussianMixture:
    """A fitted :class:`GaussianMixture` from a :class:`FitResult`: how ``select``, the command
    line and :func:`load` make one (``fit`` fills itself the same way)."""
    model = GaussianMixture(**settings)
    model._set_fitted(result, dtype, feature_names)
    return model


def load(path) -> GaussianMixture:
    """Read a model written by ``GaussianMixture.save`` (or ``BayesianGaussianMixture.save``).

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    GaussianMixture
        Fitted (a :class:`jaxgmm.BayesianGaussianMixture` for a Bayesian model's file).

    Raises
    ------
    ModelFileError
        Naming the file and the problem, for a missing, corrupt or truncated file, a missing
        entry, a newer format version, or parameters that are not a valid mixture (non-finite,
        weights not summing to 1, covariances not symmetric positive definite). An older
        format version loads with a warning.
    """
    metadata, arrays = _model_file.read(path)
    if metadata.get("estimator") == "BayesianGaussianMixture":
        from .bayesian import loaded

        return loaded(metadata, arrays)
    defaults = GaussianMixture().get_params()
    settings = {k: v for k, v in metadata["settings"].items() if k in defaults and v is not None}
    settings["covariance_type"] = metadata["covariance_type"]
    trace = arrays["lower_bounds"]
    noise = None
    if "noise_weight" in arrays:
        noise = Noise(arrays["noise_weight"], arrays["noise_log_density"])
    params = GMMParams(*(arrays[name] for name in _model_file.PARAMETERS), noise=noise)
    one = np.ones(1, bool)
    restart = RestartOutcome(
        lower_bound=np.array([metadata.get("lower_bound", np.nan)], trace.dtype),
        lower_bounds=trace[None, :],
        n_iter=np.array([metadata.get("n_iter", len(trace))]),
        converged=one & bool(metadata.get("converged", False)),
        failed=~one,
        degenerate=one & bool(metadata.get("degenerate", False)),
        params=jax.tree_util.tree_map(lambda a: a[None], params),
    )
    result = FitResult(
        params=params,
        lower_bound=restart.lower_bound[0],
        lower_bounds=trace,
        n_iter=restart.n_iter[0],
        converged=restart.converged[0],
        best_restart=np.asarray(0),
        restarts=restart,
        interrupted=np.asarray(bool(metadata.get("interrupted", False))),
    )
    return fitted_model(
        result,
        arrays["means"].dtype,
        settings=settings,
        feature_names=metadata.get("feature_names") or None,
    )


__all__ = ["GaussianMixture", "fitted_model", "load"]


def __getattr__(name: str):
    # scikit-learn's exception classes, imported when first asked for (see _sklearn_api)
    if name == "NotFittedError":
        return not_fitted_error()
    if name == "ConvergenceWarning":
        return convergence_warning()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
