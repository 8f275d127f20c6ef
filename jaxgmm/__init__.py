"""jaxgmm: Gaussian mixture models fitted by EM in JAX."""

from ._bootstrap import BootstrapLRTResult, BootstrapResult, bootstrap, bootstrap_lrt
from ._covariance import COVARIANCE_TYPES
from ._criteria import n_parameters
from ._em import component_log_prob, e_step, em_step, log_prob, m_step
from ._engine import DEGENERATE_RTOL, best_restart
from ._fit import fit, initialize
from ._host_loop import Progress
from ._init import INIT_METHODS, kmeans_plusplus
from ._model_file import ModelFileError
from ._params import (
    FitResult,
    GMMParams,
    RestartOutcome,
    params_from_covariances,
    params_from_precisions,
)
from ._prior import Prior, default_prior
from ._select import SelectionResult, select
from ._stream import fit_stream
from .bayesian import BayesianGaussianMixture
from .datasets import lesson_data
from .estimator import GaussianMixture, load

__version__ = "0.1.0"

__all__ = [
    "COVARIANCE_TYPES",
    "ConvergenceWarning",
    "DEGENERATE_RTOL",
    "INIT_METHODS",
    "ModelFileError",
    "Progress",
    "NotFittedError",
    "FitResult",
    "GaussianMixture",
    "GMMParams",
    "Prior",
    "RestartOutcome",
    "SelectionResult",
    "component_log_prob",
    "default_prior",
    "best_restart",
    "bootstrap",
    "bootstrap_lrt",
    "BootstrapLRTResult",
    "BootstrapResult",
    "BayesianGaussianMixture",
    "e_step",
    "em_step",
    "fit",
    "fit_stream",
    "initialize",
    "kmeans_plusplus",
    "lesson_data",
    "load",
    "log_prob",
    "m_step",
    "n_parameters",
    "params_from_covariances",
    "params_from_precisions",
    "select",
]


def __getattr__(name: str):
    # scikit-learn's NotFittedError and ConvergenceWarning, imported on first use: importing
    # scikit-learn costs most of a second (see jaxgmm._sklearn_api)
    if name in ("NotFittedError", "ConvergenceWarning"):
        from . import estimator

        return getattr(estimator, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
