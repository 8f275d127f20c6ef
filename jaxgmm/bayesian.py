"""``BayesianGaussianMixture``: scikit-learn's variational estimator, on jaxgmm's engine.

The shell is :class:`jaxgmm.GaussianMixture`'s (validation, inference, sampling); the fit is
``jaxgmm._variational``'s. Inference reads the variational E-step: ``predict_proba``,
``predict`` and ``score_samples`` are those of a mixture with unnormalised weights
``exp(E[log w_k] + ...)`` (``jaxgmm._variational.e_step_params``), as scikit-learn's are, and
``sample`` draws from ``weights_``, ``means_`` and ``covariances_``, as scikit-learn does.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from . import _model_file, _online, _variational
from ._covariance import covariance_unit
from ._fit import initialize
from ._init import INIT_METHODS
from ._matmul_precision import check_matmul_precision, matmul_precision_scope
from ._params import GMMParams
from ._progress import ProgressBar
from ._sklearn_api import (
    check_learning_rate,
    check_number,
    key_from,
    precision_context,
)
from .estimator import GaussianMixture

# one dispatch rather than an operation at a time (prediction calls it for every batch)
_e_step_log_weights = jax.jit(_variational.e_step_log_weights, static_argnames="weight_type")


def _not_variational(name: str):
    def absent(self):
        raise AttributeError(
            f"{type(self).__name__} has no {name}: criteria of one fitted likelihood do not "
            "apply to a variational posterior (compare lower_bound_ instead)"
        )

    return property(absent)


class BayesianGaussianMixture(GaussianMixture):
    """Variational Bayesian Gaussian mixture, with scikit-learn's parameters, attributes and
    definitions (``sklearn.mixture.BayesianGaussianMixture``), fitted in JAX.

    The weights have a Dirichlet-process prior (stick-breaking, truncated at ``n_components``)
    or a Dirichlet-distribution prior; each component's mean and precision a Gaussian-Wishart
    prior. Components the data do not need end with weights near zero.

    Parameters
    ----------
    n_components : int, default=1
        The most components (the truncation level).
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound (a total over the samples, as
        scikit-learn's). A change within the bound's rounding (16 eps times its size) counts
        as converged too: in float32 that exceeds 1e-3 from a few thousand samples.
    reg_covar : float, default=1e-6
    max_iter : int, default=100
    n_init : int, default=1
        Restarts, run together in one compiled program; the highest lower bound is kept.
    init_params : {"kmeans", "k-means++", "random", "random_from_data"}, default="kmeans"
        The starting responsibilities (as :class:`jaxgmm.GaussianMixture`'s).
    weight_concentration_prior_type : {"dirichlet_process", "dirichlet_distribution"}, \
default="dirichlet_process"
    weight_concentration_prior : float, optional
        Default ``1 / n_components``.
    mean_precision_prior : float, optional
        Default 1.
    mean_prior : (n_features,) array, optional
        Default the data's mean.
    degrees_of_freedom_prior : float, optional
        Default ``n_features``; must exceed ``n_features - 1``.
    covariance_prior : float or array, optional
        Full and tied ``(n_features, n_features)``, diag ``(n_features,)``, spherical a float.
        Default the data's covariance (unbiased), its diagonal, or the diagonal's mean.
    random_state : None, int, numpy RandomState/Generator or JAX key
    warm_start : bool, default=False
        Continue from the current posterior (one restart) when already fitted.
    verbose : int, default=0
        1 prints each restart's final lower bound.
    verbose_interval : int, default=10
        Kept for scikit-learn's signature.
    progress : bool, default=False
        Draw a progress bar on stderr while fitting.
    matmul_precision : {"highest", "high", "default"}, default="highest"
        As :class:`jaxgmm.GaussianMixture`'s.
    learning_offset : float, default=10.0
    learning_decay : float, default=0.7
        :meth:`partial_fit`'s step sizes, ``(t + learning_offset) ** -learning_decay`` after
        ``t`` mini-batches; ``learning_decay`` in (0.5, 1].
    total_samples : float, optional
        The size of the data :meth:`partial_fit` reads in batches (the ``N`` of stochastic
        variational inference); by default the rows seen so far.
    devices : jax.sharding.Mesh or list of devices, optional
        Shard the data's rows over these devices while fitting (as
        :class:`jaxgmm.GaussianMixture`'s; the start runs on one).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_ : ndarray
        scikit-learn's meanings: the expected weights, the posterior's means, and the inverse
        of the expected precisions.
    weight_concentration_ : ndarray or tuple of two ndarrays
        The weights' posterior: Dirichlet parameters, or the sticks' Beta parameters.
    mean_precision_, degrees_of_freedom_ : ndarray
    weight_concentration_prior_, mean_precision_prior_, degrees_of_freedom_prior_ : float
    mean_prior_, covariance_prior_ : ndarray or float
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        scikit-learn's lower bound (up to its constant), of the chosen restart.
    lower_bounds_ : ndarray
        Its trace, one value per iteration.
    restarts_ : RestartOutcome
        Every restart's final lower bound, trace, n_iter, converged and failed (``params``
        is None: only the chosen posterior is kept; none is marked degenerate).
    best_restart_ : int
    n_steps_ : int
        Mini-batches :meth:`partial_fit` has folded in.
    n_features_in_ : int
    feature_names_in_ : ndarray
        Only when fitted on a DataFrame with string column names.

    Examples
    --------
    The lesson's two clusters, offered ten components: the data keep two.

    >>> import numpy as np, jaxgmm
    >>> X = jaxgmm.lesson_data()
    >>> bgm = jaxgmm.BayesianGaussianMixture(n_components=10, max_iter=500, random_state=0)
    >>> bgm = bgm.fit(X)
    >>> int(np.sum(bgm.weights_ > 0.05))
    2
    """

    missing = "error"  # read by the shared validation; no missing values here

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
        weight_concentration_prior_type: str = "dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        progress: bool = False,
        matmul_precision: str = "highest",
        learning_offset: float = 10.0,
        learning_decay: float = 0.7,
        total_samples=None,
        devices=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.progress = progress
        self.matmul_precision = matmul_precision
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.total_samples = total_samples
        self.devices = devices

    bic = _not_variational("bic")
    aic = _not_variational("aic")
    icl = _not_variational("icl")
    criteria = _not_variational("criteria")
    impute = _not_variational("impute")

    def save(self, path) -> None:
        """Write the fitted model to ``path`` atomically (``jaxgmm.load`` reads it back): the
        posterior, the prior and the trace, in the format of ``GaussianMixture.save``."""
        self._check_is_fitted()
        _model_file.write(self, path)

    # -- validation ------------------------------------------------------------------------

    def _check_parameters(self) -> None:
        check_number(self.n_components, "n_components", integer=True, minimum=1)
        if self.covariance_type not in _variational.COVARIANCE_TYPES:
            raise ValueError(
                f"covariance_type must be one of {_variational.COVARIANCE_TYPES}, got "
                f"{self.covariance_type!r}"
            )
        check_number(self.tol, "tol", integer=False, minimum=0.0)
        check_number(self.reg_covar, "reg_covar", integer=False, minimum=0.0)
        check_number(self.max_iter, "max_iter", integer=True, minimum=0)
        check_number(self.n_init, "n_init", integer=True, minimum=1)
        check_number(self.verbose, "verbose", integer=True, minimum=0)
        check_number(self.verbose_interval, "verbose_interval", integer=True, minimum=1)
        if self.init_params not in INIT_METHODS or self.init_params == "hc":
            methods = tuple(m for m in INIT_METHODS if m != "hc")
            raise ValueError(f"init_params must be one of {methods}, got {self.init_params!r}")
        if self.weight_concentration_prior_type not in _variational.WEIGHT_PRIORS:
            raise ValueError(
                "weight_concentration_prior_type must be one of "
                f"{_variational.WEIGHT_PRIORS}, got {self.weight_concentration_prior_type!r}"
            )
        for name in ("weight_concentration_prior", "mean_precision_prior"):
            if getattr(self, name) is not None:
                check_number(getattr(self, name), name, integer=False, minimum=0.0)
                if getattr(self, name) <= 0:
                    raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        check_matmul_precision(self.matmul_precision)
        check_learning_rate(self.learning_offset, self.learning_decay)
        if self.total_samples is not None:
            check_number(self.total_samples, "total_samples", integer=False, minimum=1.0)

    def _prior(self, X: np.ndarray) -> _variational.Prior:
        """The prior on ``X`` (float64, on the host): the given parts checked, the rest
        scikit-learn's defaults."""
        X64 = np.asarray(X, np.float64)
        return self._prior_from(X64.mean(axis=0), np.atleast_2d(np.cov(X64.T)))

    def _prior_from(self, data_mean: np.ndarray, data_cov: np.ndarray) -> _variational.Prior:
        """The prior of data of this mean and (unbiased) covariance."""
        n_features = len(data_mean)
        concentration = self.weight_concentration_prior
        if concentration is None:
            concentration = 1.0 / self.n_components
        mean_precision = 1.0 if self.mean_precision_prior is None else self.mean_precision_prior
        if self.mean_prior is None:
            mean = np.asarray(data_mean, np.float64)
        else:
            mean = np.asarray(self.mean_prior, np.float64)
            if mean.shape != (n_features,):
                raise ValueError(f"mean_prior must have shape ({n_features},), got {mean.shape}")
        dof = self.degrees_of_freedom_prior
        if dof is None:
            dof = float(n_features)
        elif not dof > n_features - 1.0:
            raise ValueError(
                "The parameter 'degrees_of_freedom_prior' should be greater than "
                f"{n_features - 1}, but got {dof:.3f}."
            )
        return _variational.Prior(
            np.float64(concentration),
            np.float64(mean_precision),
            mean,
            np.float64(dof),
            self._covariance_prior(np.asarray(data_cov, np.float64)),
        )

    def _covariance_prior(self, data_cov: np.ndarray) -> np.ndarray:
        n_features = data_cov.shape[0]
        kind = self.covariance_type
        if self.covariance_prior is None:
            variances = np.diag(data_cov).copy()
            if kind in ("full", "tied"):
                return data_cov
            return variances if kind == "diag" else np.float64(variances.mean())
        given = np.asarray(self.covariance_prior, np.float64)
        expected = {"full": (n_features,) * 2, "tied": (n_features,) * 2, "diag": (n_features,)}
        shape = expected.get(kind, ())
        if given.shape != shape:
            raise ValueError(
                f"covariance_prior for {kind} covariances must have shape {shape}, got "
                f"{given.shape}"
            )
        if given.ndim == 2:
            symmetric = np.allclose(given, given.T)
            if not symmetric or np.any(np.linalg.eigvalsh((given + given.T) / 2) <= 0):
                raise ValueError(
                    f"covariance_prior for {kind} covariances must be symmetric, positive-definite"
                )
        elif np.any(given <= 0):
            raise ValueError(f"covariance_prior for {kind} covariances must be positive")
        return given

    # -- fitting ---------------------------------------------------------------------------

    def fit(self, X, y=None):
        """Fit the variational posterior (``n_init`` restarts, the best kept). Returns
        ``self``."""
        self._fit(X, fit_only=True)
        return self

    def fit_predict(self, X, y=None) -> np.ndarray:
        """Fit, then label each sample with its most probable component (a final E-step, so the
        labels equal ``fit(X).predict(X)``)."""
        return self._fit(X, fit_only=False)

    def partial_fit(self, X, y=None):
        """Fold one mini-batch into the posterior by stochastic variational inference
        (natural-gradient steps, ``jaxgmm._online``): the first batch fits the posterior (as
        :meth:`fit`) unless it is fitted already, and sets the running statistics; each later
        one moves them by a decaying step. ``lower_bound_`` is then the batch's mean log
        normaliser of the variational E-step. Returns ``self``."""
        fitted = hasattr(self, "weight_concentration_")
        if not fitted:
            self._fit(X, fit_only=True)
        self._check_parameters()
        X, dtype = self._validate_X(X, reset=False, min_samples=1)
        prior = self._fitted_prior()
        with precision_context(dtype), matmul_precision_scope(self.matmul_precision):
            self._running, post, log_norm = _online.online_update(
                getattr(self, "_running", None),
                self._host_params(dtype),
                X,
                unit=covariance_unit(self.covariance_type),
                reg_covar=self.reg_covar,
                learning_offset=self.learning_offset,
                learning_decay=self.learning_decay,
                weight_type=self.weight_concentration_prior_type,
                prior=prior,
                total_samples=self.total_samples,
            )
        self._set_posterior_only(post, dtype)
        self.lower_bound_ = log_norm
        self.n_steps_ = self._running.steps
        return self

    def fit_stream(self, data, *, block_size: int = 65_536, subsample: int = 100_000):
        """Fit to data that need not fit in memory, read in blocks, one pass per iteration
        (as :func:`jaxgmm.fit_stream` runs EM): a NumPy memmap (``numpy.load(path,
        mmap_mode="r")``), an HDF5 dataset, or a function that starts a fresh pass each time
        it is called and yields 2-D arrays. The first pass checks the data and gives their
        mean and covariance (the default prior's) and a uniform subsample of ``subsample`` rows,
        which ``init_params`` starts from. Returns ``self``."""
        from ._stream import fit_stream_variational

        self._check_parameters()
        dtypes = {}

        def prior_of(first):
            dtypes["data"] = first.dtype
            return self._prior_from(first.mean, np.atleast_2d(first.covariance))

        with matmul_precision_scope(self.matmul_precision):
            key = key_from(self.random_state)
            probe = next(iter(data() if callable(data) else [np.asarray(data[:1])]))
            dtype = np.promote_types(np.asarray(probe).dtype, np.float32)
            with precision_context(dtype):
                bar = ProgressBar(f"fit K={self.n_components}") if self.progress else None
                result, prior = fit_stream_variational(
                    key,
                    data,
                    self.n_components,
                    covariance_type=self.covariance_type,
                    weight_type=self.weight_concentration_prior_type,
                    prior_of=prior_of,
                    n_init=self.n_init,
                    max_iter=self.max_iter,
                    tol=self.tol,
                    reg_covar=self.reg_covar,
                    init=self.init_params,
                    block_size=block_size,
                    subsample=subsample,
                    callback=bar,
                )
                if bar is not None:
                    bar.close()
        self._set_posterior(result, prior, dtypes["data"])
        self.n_features_in_ = self.means_.shape[1]
        self.__dict__.pop("feature_names_in_", None)
        self._warn_about_outcome("posterior's parameters")
        return self

    def _fitted_prior(self) -> _variational.Prior:
        return _variational.Prior(
            np.float64(self.weight_concentration_prior_),
            np.float64(self.mean_precision_prior_),
            np.asarray(self.mean_prior_, np.float64),
            np.float64(self.degrees_of_freedom_prior_),
            np.asarray(self.covariance_prior_, np.float64),
        )

    def _fit(self, X, *, fit_only: bool):
        self._check_parameters()
        X, dtype = self._validate_X(X, reset=True, min_samples=2)
        self._warn_about_data(X)
        prior = self._prior(np.asarray(X))
        with precision_context(dtype), matmul_precision_scope(self.matmul_precision):
            key = key_from(self.random_state)
            warm = self.warm_start and hasattr(self, "weight_concentration_")
            if warm:
                start = self._posterior(dtype)
            else:
                start = initialize(
                    key,
                    X,
                    self.n_components,
                    covariance_type=self.covariance_type,
                    n_init=self.n_init,
                    init=self.init_params,
                    reg_covar=self.reg_covar,
                )
            bar = ProgressBar(f"fit K={self.n_components}") if self.progress else None
            result = _variational.fit_variational(
                X,
                start,
                prior,
                covariance_type=self.covariance_type,
                weight_type=self.weight_concentration_prior_type,
                reg_covar=self.reg_covar,
                tol=self.tol,
                max_iter=self.max_iter,
                start_lower_bound=self.lower_bound_ if warm else -np.inf,
                callback=bar,
                interruptible=True,
                devices=self.devices,
            )
            if bar is not None:
                bar.close()
            self._set_posterior(result, prior, dtype)
            labels = None if fit_only else self._labels(self._densities(X)[0])
        if self.verbose:
            for i, bound in enumerate(result.restarts.lower_bound):
                print(f"Initialization {i}: lower bound {float(bound):.6f}")
        self._warn_about_outcome("posterior's parameters")
        return labels

    def _set_posterior(self, result, prior: _variational.Prior, dtype) -> None:
        self._set_posterior_only(result.posterior, dtype)
        self.weight_concentration_prior_ = float(prior.weight_concentration)
        self.mean_precision_prior_ = float(prior.mean_precision)
        self.mean_prior_ = prior.mean.astype(dtype)
        self.degrees_of_freedom_prior_ = float(prior.degrees_of_freedom)
        self.covariance_prior_ = (
            prior.covariance.astype(dtype) if prior.covariance.ndim else float(prior.covariance)
        )
        self.converged_ = result.converged
        self.n_iter_ = result.n_iter
        self.lower_bound_ = float(result.lower_bound)
        self.lower_bounds_ = np.asarray(result.lower_bounds).astype(dtype)
        outcome = result.restarts
        self.restarts_ = outcome._replace(
            lower_bound=outcome.lower_bound.astype(dtype),
            lower_bounds=outcome.lower_bounds.astype(dtype),
        )
        self.best_restart_ = result.best_restart
        self.interrupted_ = result.interrupted
        self.noise_weight_ = None
        self.__dict__.pop("_running", None)  # a new fit: partial_fit starts again

    def _set_posterior_only(self, post: _variational.Posterior, dtype) -> None:
        """The posterior's attributes (and ``weights_``, scikit-learn's expected weights)."""
        unit = covariance_unit(self.covariance_type)

        def host(a):
            return np.asarray(a).astype(dtype)

        concentration = host(post.weight_concentration)
        if self.weight_concentration_prior_type == "dirichlet_process":
            a, b = concentration.astype(np.float64)
            sticks = a / (a + b) * np.concatenate([[1.0], np.cumprod(b / (a + b))[:-1]])
            self.weight_concentration_ = (concentration[0], concentration[1])
        else:
            sticks = concentration.astype(np.float64)
            self.weight_concentration_ = concentration
        self.weights_ = (sticks / sticks.sum()).astype(dtype)
        self.mean_precision_ = host(post.mean_precision)
        self.means_ = host(post.means)
        self.degrees_of_freedom_ = host(post.degrees_of_freedom)
        self.covariances_ = host(post.covariances)
        self.precisions_cholesky_ = host(post.precisions_cholesky)
        self.precisions_ = unit.precisions(self.precisions_cholesky_)

    def _posterior(self, dtype) -> _variational.Posterior:
        """The fitted posterior, from the public attributes (a warm start's)."""
        concentration = self.weight_concentration_
        if isinstance(concentration, tuple):
            concentration = np.stack(concentration)
        post = _variational.Posterior(
            concentration,
            self.mean_precision_,
            self.means_,
            self.degrees_of_freedom_,
            self.covariances_,
            self.precisions_cholesky_,
        )
        return jax.tree_util.tree_map(lambda a: np.asarray(a, dtype)[None], post)

    # -- inference -------------------------------------------------------------------------

    def _host_params(self, dtype) -> GMMParams:
        """The mixture whose E-step is the variational one (unscaled weights, so that
        ``score_samples`` is scikit-learn's)."""
        post = jax.tree_util.tree_map(lambda a: a[0], self._posterior(np.float64))
        with precision_context(np.float64):
            log_weights = _e_step_log_weights(
                jax.tree_util.tree_map(jnp.asarray, post),
                weight_type=self.weight_concentration_prior_type,
            )
        return GMMParams(
            np.exp(np.asarray(log_weights)).astype(dtype),
            *(
                np.asarray(a, dtype)
                for a in (post.means, post.covariances, post.precisions_cholesky)
            ),
        )


__all__ = ["BayesianGaussianMixture"]


def loaded(metadata: dict, arrays: dict) -> BayesianGaussianMixture:
    """A fitted model from a checked file's entries (``jaxgmm.load``)."""
    from ._params import RestartOutcome

    defaults = BayesianGaussianMixture().get_params()
    settings = {k: v for k, v in metadata["settings"].items() if k in defaults and v is not None}
    model = BayesianGaussianMixture(**settings)
    dtype = arrays["means"].dtype
    model._set_posterior_only(
        _variational.Posterior(
            *(arrays[name] for name in _model_file.VARIATIONAL[:2]),
            arrays["means"],
            arrays["degrees_of_freedom"],
            arrays["covariances"],
            arrays["precisions_cholesky"],
        ),
        dtype,
    )
    for name, value in metadata["priors"].items():
        setattr(model, name + "_", float(value))
    model.mean_prior_ = arrays["mean_prior"]
    prior = arrays["covariance_prior"]
    model.covariance_prior_ = prior if prior.ndim else float(prior)
    trace = arrays["lower_bounds"]
    model.converged_ = bool(metadata.get("converged", False))
    model.n_iter_ = int(metadata.get("n_iter", len(trace)))
    model.lower_bound_ = float(metadata.get("lower_bound", np.nan))
    model.lower_bounds_ = trace
    one = np.ones(1, bool)
    model.restarts_ = RestartOutcome(
        np.array([model.lower_bound_], dtype),
        trace[None],
        np.array([model.n_iter_]),
        one & model.converged_,
        ~one,
        ~one,
        None,
    )
    model.best_restart_ = 0
    model.interrupted_ = bool(metadata.get("interrupted", False))
    model.noise_weight_ = None
    model.n_features_in_ = model.means_.shape[1]
    if metadata.get("feature_names"):
        model.feature_names_in_ = np.asarray(metadata["feature_names"], dtype=object)
    return model
