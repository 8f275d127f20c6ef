"""Plain NumPy EM, in float64, for a Gaussian mixture with mclust's noise component: the oracle
for a JAX implementation of ``Mclust(X, initialization = list(noise = mask))``.

The mixture has G Gaussians and one more component, uniform over the data's region, of density
``Vinv = 1 / V`` everywhere (V is mclust's ``hypvol``, ``jaxgmm._noise.hypvol``, fixed)::

    p(x) = sum_k w_k N(x | mu_k, S_k) + w_0 Vinv,        sum_k w_k + w_0 = 1.

Conventions are mclust's (``me``, ``mstep``, ``estep`` with ``Vinv``; Fraley & Raftery 1998,
2002), not the rest of jaxgmm's:

* responsibilities are ``(N, G + 1)``: the G Gaussians' columns first, the noise column last;
* the M-step takes the means and covariances from the Gaussian columns only (a shared
  covariance, as EEE's or EII's, is divided by the Gaussians' total mass ``sum_k n_k``, not by
  N), and every proportion, the noise one included, from its column: ``w_k = n_k / N``;
* the E-step weighs the log densities of the Gaussians and ``log Vinv`` for the noise column by
  the log proportions; a zero proportion drops its component;
* the log-likelihood is the total over the samples (mclust's ``loglik``), not a mean;
* EM stops when ``|l_t - l_(t-1)| / (1 + |l_t|) <= tol`` (``emControl(tol)[1]``);
* no regularisation: a component with mass at most ``sqrt(eps)`` is an error, as in mclust;
* a sample's label is its most probable column, the noise one reported as -1 (mclust: 0);
  mclust's labels minus one are these.

``params.weights`` holds the G Gaussian proportions (they sum to ``1 - noise_weight``);
``params.covariances`` has scikit-learn's shape for the covariance type, as in
:mod:`jaxgmm.reference`, whose covariance models (``reference.MODELS``) are used here. mclust's
names VVV, EEE, VVI and VII are accepted for full, tied, diag and spherical. The tests compare
VVV, EEE, VVI and EII with mclust 6.0.0; a one-off comparison found every other model equal
to mclust too (log-likelihood to 1e-13, same iteration count) except VVE, which mclust's
M-step does not maximise (see ``reference._VVE``).
"""

from __future__ import annotations

import numpy as np

from jaxgmm import reference
from jaxgmm._noise import hypvol  # noqa: F401  (data geometry, shared with the library)
from jaxgmm.reference import Params

MCLUST_NAMES = {"VVV": "full", "EEE": "tied", "VVI": "diag", "VII": "spherical"}
NOISE_LABEL = -1


def _model_name(covariance_type: str) -> str:
    """``reference.MODELS``' key for a covariance type, given by jaxgmm's or mclust's name."""
    name = MCLUST_NAMES.get(covariance_type, covariance_type)
    if name not in reference.MODELS:
        raise ValueError(f"unknown covariance type {covariance_type!r}")
    return name


def e_step(X, params: Params, noise_weight: float, Vinv: float, covariance_type: str):
    """Returns ``log_resp (N, G + 1)`` (noise column last) and the total log-likelihood
    ``sum_n log(sum_k w_k N(x_n | mu_k, S_k) + w_0 Vinv)``."""
    X = np.asarray(X, dtype=np.float64)
    gaussian = reference.component_log_prob(X, params, _model_name(covariance_type))
    weights = np.append(np.asarray(params.weights, dtype=np.float64), noise_weight)
    with np.errstate(divide="ignore"):  # a zero proportion: log 0 = -inf, its column drops
        log_weights = np.log(weights)
    log_densities = np.column_stack([gaussian, np.full(len(X), np.log(Vinv))])
    weighted = log_densities + log_weights
    top = np.max(weighted, axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.sum(np.exp(weighted - top), axis=1))
    return weighted - log_norm[:, None], float(np.sum(log_norm))


def m_step(X, resp, covariance_type: str):
    """mclust's M-step with a noise column: ``resp (N, G + 1)``, the noise column last, rows
    summing to 1. Returns ``(params, noise_weight)``."""
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = resp.shape[1] - 1
    mass = resp.sum(axis=0)  # n_1 .. n_G, then the noise column's
    nk = mass[:n_components]
    if np.any(nk <= np.sqrt(np.finfo(np.float64).eps)):
        raise ValueError("a Gaussian component's mass fell below sqrt(eps)")  # mclust: NA
    means = np.empty((n_components, n_features))
    scatters = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        means[k] = resp[:, k] @ X / nk[k]
        diff = X - means[k]
        scatters[k] = (diff * resp[:, k, None]).T @ diff
    model = reference.MODELS[_model_name(covariance_type)]
    covariances = model.from_scatters(scatters, nk, 0.0)  # divides by sum(nk), not N
    return Params(nk / n_samples, means, covariances), float(mass[-1] / n_samples)


def labels(log_resp) -> np.ndarray:
    """The most probable column per sample: 0..G-1 for a Gaussian, -1 for the noise."""
    log_resp = np.asarray(log_resp)
    best = np.argmax(log_resp, axis=1)
    return np.where(best == log_resp.shape[1] - 1, NOISE_LABEL, best)


def fit(
    X,
    resp0,
    covariance_type: str,
    Vinv: float,
    tol: float = 1e-5,
    max_iter: int = 10_000,
    history: list | None = None,
):
    """mclust's ``me(X, model, z = resp0, Vinv = Vinv)``: from the responsibilities ``resp0``
    (N, G + 1), alternate an M-step and an E-step until the log-likelihood's relative change
    ``|l_t - l_(t-1)| / (1 + |l_t|)`` is at most ``tol``. Returns ``(params, noise_weight,
    loglik, n_iter)``: the last M-step's parameters, their log-likelihood and the number of
    M-steps (mclust's iteration count; reaching ``max_iter`` is not flagged). ``history``, if
    a list, receives every iteration's log-likelihood."""
    resp = np.asarray(resp0, dtype=np.float64)
    previous, n_iter = np.inf, 0
    while True:
        params, noise_weight = m_step(X, resp, covariance_type)
        log_resp, loglik = e_step(X, params, noise_weight, Vinv, covariance_type)
        resp = np.exp(log_resp)
        n_iter += 1
        if history is not None:
            history.append(loglik)
        change = abs(loglik - previous) / (1 + abs(loglik))
        previous = loglik
        if change <= tol or n_iter >= max_iter:
            return params, noise_weight, loglik, n_iter
