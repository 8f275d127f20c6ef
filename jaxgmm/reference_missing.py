"""Plain NumPy EM, in float64, for a Gaussian mixture fitted to data with values missing at
random: the oracle for a JAX implementation. NaN marks a missing value; ``inf`` is an error.

Each row ``x_n`` splits into its observed coordinates ``o`` and its missing ones ``m``
(Ghahramani & Jordan 1994; McLachlan & Krishnan 2008, ch. 2). Under component k the observed
part has the marginal density ``N(x_o | mu_o, S_oo)`` (the sub-vector of the mean, the
sub-block of the dense covariance), and the missing part, given the observed one, is normal::

    E[x_m | x_o, k]   = mu_m + S_mo S_oo^-1 (x_o - mu_o)
    Cov[x_m | x_o, k] = S_mm - S_mo S_oo^-1 S_om                       (Schur complement)

* E-step: responsibilities from the observed parts' densities; ``lower_bound`` is the
  (weighted) mean over rows of ``log sum_k w_k N(x_o | mu_k,o, S_k,oo)``, the observed-data
  log-likelihood per row, which EM never decreases.
* Expected sufficient statistics: with ``xhat_nk`` row n completed by its conditional mean under
  component k and ``C_nk`` its conditional covariance (in the missing-missing block, zeros
  elsewhere), component k has mass ``n_k = sum_n w_n r_nk``, mean
  ``m_k = sum_n w_n r_nk xhat_nk / n_k`` and scatter around it
  ``W_k = sum_n w_n r_nk [(xhat_nk - m_k)(xhat_nk - m_k)^T + C_nk]``. The expected complete-data
  log-likelihood depends on the data only through them, whatever constraint ties the
  covariances, so every covariance model's M-step is its complete-data one on these
  statistics: ``reference.MODELS[type].from_scatters(W, n, reg_covar)``.
* M-step conventions are :mod:`jaxgmm.reference`'s: masses get ``10 * eps`` added, covariances
  ``reg_covar`` on their diagonal, and an empty component keeps its previous mean and
  covariance (the M-step always has previous parameters here: the E-step's). With nothing
  missing every function equals its :mod:`jaxgmm.reference` counterpart.
* Imputation: a missing value's conditional mean under the mixture, ``sum_k r_nk xhat_nk``, or
  multiple imputations: a component drawn from the row's posterior, then the missing values
  from that component's conditional normal.

The reference refuses what it cannot fit: a row with every value missing (the JAX code drops
such rows with a warning) and, in the estimating functions, a column missing in every row
(its parameters would never be informed by data).

Written to be read, not to be fast: rows are grouped by their pattern of missing values, and
each pattern and component is handled in turn with ``numpy.linalg.solve`` and ``slogdet``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from jaxgmm import reference
from jaxgmm.reference import TINY, Params


class Statistics(NamedTuple):
    """Expected complete-data sufficient statistics of each component."""

    nk: np.ndarray  # (K,): sum_n w_n r_nk, plus TINY (reference.m_step's masses)
    means: np.ndarray  # (K, D): sum_n w_n r_nk xhat_nk / nk
    scatters: np.ndarray  # (K, D, D): around ``means``, conditional covariances included


class RowConditional(NamedTuple):
    """One row's posterior and, per component, the normal law of its missing values."""

    resp: np.ndarray  # (K,): posterior component probabilities given the observed values
    missing: np.ndarray  # (D,) bool: the row's missing coordinates, in order
    means: np.ndarray  # (K, M): E[x_m | x_o, k]
    covariances: np.ndarray  # (K, M, M): Cov[x_m | x_o, k]


# --- input checks -----------------------------------------------------------------------------


def _check_data(X, columns: bool = True) -> np.ndarray:
    """``X`` as a float64 (N, D) array; ValueError for ``inf``, for a row with every value missing
    and (``columns``) for a column missing in every row."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (samples, features), got shape {X.shape}")
    infinite = np.argwhere(np.isinf(X))
    if len(infinite):
        row, col = infinite[0]
        raise ValueError(
            f"X has {len(infinite)} infinite value(s), the first at row {row}, column {col}; "
            "only NaN marks a missing value"
        )
    missing = np.isnan(X)
    empty_rows = np.flatnonzero(missing.all(axis=1))
    if len(empty_rows):
        raise ValueError(f"row(s) {empty_rows.tolist()} of X have every value missing")
    if columns:
        empty_columns = np.flatnonzero(missing.all(axis=0))
        if len(empty_columns):
            raise ValueError(f"column(s) {empty_columns.tolist()} of X are missing in every row")
    return X


def _sample_weight(sample_weight, n_samples: int) -> np.ndarray:
    if sample_weight is None:
        return np.ones(n_samples)
    return np.asarray(sample_weight, dtype=np.float64)


# --- one pattern of missing values under one component ----------------------------------------


def _patterns(X: np.ndarray):
    """``(observed (D,) bool, rows)`` for each distinct pattern of observed values in ``X``."""
    observed = ~np.isnan(X)
    patterns, inverse = np.unique(observed, axis=0, return_inverse=True)
    inverse = np.ravel(inverse)
    return [(pattern, np.flatnonzero(inverse == i)) for i, pattern in enumerate(patterns)]


def _under_component(rows: np.ndarray, observed: np.ndarray, mean: np.ndarray, cov: np.ndarray):
    """For rows ``(n, D)`` sharing the pattern ``observed`` and one component ``(mean, cov)``:
    ``log N(x_o | mu_o, S_oo)`` ``(n,)`` (NaN if ``S_oo`` is not positive definite), the rows
    completed by their conditional means ``xhat`` ``(n, D)``, and the conditional covariance
    placed in the missing-missing block of a ``(D, D)`` zero matrix (the same for every row of
    the pattern)."""
    o, m = observed, ~observed
    diff = rows[:, o] - mean[o]
    s_oo = cov[np.ix_(o, o)]
    s_mo = cov[np.ix_(m, o)]
    sign, logdet = np.linalg.slogdet(s_oo)
    solved = np.linalg.solve(s_oo, diff.T).T  # S_oo^-1 (x_o - mu_o), one row per sample
    if sign <= 0:
        log_density = np.full(len(rows), np.nan)
    else:
        maha = np.sum(diff * solved, axis=1)
        log_density = -0.5 * (np.count_nonzero(o) * np.log(2 * np.pi) + logdet + maha)
    xhat = rows.copy()
    xhat[:, m] = mean[m] + solved @ s_mo.T
    conditional_cov = np.zeros_like(cov)
    conditional_cov[np.ix_(m, m)] = cov[np.ix_(m, m)] - s_mo @ np.linalg.solve(s_oo, s_mo.T)
    return log_density, xhat, conditional_cov


def _dense(params: Params, covariance_type: str, n_features: int) -> np.ndarray:
    return reference.full_covariances(
        params.covariances, covariance_type, len(params.weights), n_features
    )


# --- EM ---------------------------------------------------------------------------------------


def component_log_prob(X, params: Params, covariance_type: str) -> np.ndarray:
    """``(N, K)``: log N(x_n,o | mu_k,o, S_k,oo), each row's marginal over its observed values."""
    X = _check_data(X, columns=False)
    n_samples, n_features = X.shape
    covs = _dense(params, covariance_type, n_features)
    out = np.empty((n_samples, len(params.weights)))
    for observed, rows in _patterns(X):
        for k in range(len(params.weights)):
            out[rows, k], _, _ = _under_component(X[rows], observed, params.means[k], covs[k])
    return out


def e_step(X, params: Params, covariance_type: str, sample_weight=None):
    """Returns ``log_resp (N, K)`` and the (weighted) mean observed-data log-likelihood."""
    weighted = component_log_prob(X, params, covariance_type) + np.log(params.weights)
    log_norm = reference._logsumexp_rows(weighted)
    w = _sample_weight(sample_weight, len(log_norm))
    return weighted - log_norm[:, None], float(np.sum(w * log_norm) / np.sum(w))


def expected_statistics(
    X, log_resp, params: Params, covariance_type: str, sample_weight=None
) -> Statistics:
    """The expected complete-data sufficient statistics given the observed values, under the
    responsibilities ``log_resp`` and the parameters ``params`` of the E-step that gave them."""
    X = _check_data(X)
    n_samples, n_features = X.shape
    resp = np.exp(np.asarray(log_resp, dtype=np.float64))
    w = _sample_weight(sample_weight, n_samples)
    wr = resp * w[:, None]
    n_components = wr.shape[1]
    nk = wr.sum(axis=0) + TINY
    covs = _dense(params, covariance_type, n_features)

    # every row completed under every component, and sum_n w_n r_nk C_nk
    completed = np.empty((n_components, n_samples, n_features))
    conditional_scatter = np.zeros((n_components, n_features, n_features))
    for observed, rows in _patterns(X):
        for k in range(n_components):
            _, completed[k, rows], c = _under_component(X[rows], observed, params.means[k], covs[k])
            conditional_scatter[k] += wr[rows, k].sum() * c

    means = np.empty((n_components, n_features))
    scatters = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        means[k] = wr[:, k] @ completed[k] / nk[k]
        diff = completed[k] - means[k]
        scatters[k] = (diff * wr[:, k, None]).T @ diff + conditional_scatter[k]
    return Statistics(nk, means, scatters)


def m_step(
    X, log_resp, params: Params, covariance_type: str, reg_covar=1e-6, sample_weight=None
) -> Params:
    """The M-step on the expected statistics; ``params`` are the E-step's parameters (the
    conditional laws of the missing values come from them) and an empty component keeps them."""
    X = _check_data(X)
    stats = expected_statistics(X, log_resp, params, covariance_type, sample_weight)
    w = _sample_weight(sample_weight, len(X))
    mass = (np.exp(np.asarray(log_resp, dtype=np.float64)) * w[:, None]).sum(axis=0)
    empty = mass < TINY * w.max()

    model = reference.MODELS[covariance_type]
    means = stats.means.copy()
    covariances = model.from_scatters(stats.scatters, stats.nk, reg_covar)
    shared = model.component(np.eye(X.shape[1])) is None  # tied: nothing per component
    for k in np.flatnonzero(empty):
        means[k] = params.means[k]
        if not shared:
            covariances[k] = params.covariances[k]
    return Params(stats.nk / stats.nk.sum(), means, covariances)


def fit(
    X,
    params: Params,
    covariance_type: str,
    max_iter=100,
    tol=1e-3,
    reg_covar=1e-6,
    sample_weight=None,
):
    """EM from given initial parameters. Returns ``(params, lower_bounds, n_iter, converged)``
    where ``lower_bounds[i]`` is computed in the E-step of iteration ``i``, as
    :func:`jaxgmm.reference.fit`."""
    X = _check_data(X)
    lower_bounds = []
    previous_bound = -np.inf
    for _ in range(max_iter):
        log_resp, bound = e_step(X, params, covariance_type, sample_weight)
        params = m_step(X, log_resp, params, covariance_type, reg_covar, sample_weight)
        lower_bounds.append(bound)
        if abs(bound - previous_bound) < tol:
            return params, np.array(lower_bounds), len(lower_bounds), True
        previous_bound = bound
    return params, np.array(lower_bounds), len(lower_bounds), False


# --- conditional laws and imputation ------------------------------------------------------------


def conditional(x_row, params: Params, covariance_type: str) -> RowConditional:
    """One row's (D,) posterior component probabilities given its observed values and, per
    component, the conditional mean and covariance of its missing values."""
    x = _check_data(np.asarray(x_row, dtype=np.float64)[None, :], columns=False)
    log_resp, _ = e_step(x, params, covariance_type)
    observed = ~np.isnan(x[0])
    covs = _dense(params, covariance_type, x.shape[1])
    means, covariances = [], []
    for k in range(len(params.weights)):
        _, xhat, c = _under_component(x, observed, params.means[k], covs[k])
        means.append(xhat[0, ~observed])
        covariances.append(c[np.ix_(~observed, ~observed)])
    return RowConditional(np.exp(log_resp[0]), ~observed, np.stack(means), np.stack(covariances))


def impute(X, params: Params, covariance_type: str) -> np.ndarray:
    """``X`` with each missing value replaced by its conditional mean under the mixture,
    ``sum_k r_nk xhat_nk``; observed values are returned unchanged."""
    X = _check_data(X, columns=False)
    resp = np.exp(e_step(X, params, covariance_type)[0])
    covs = _dense(params, covariance_type, X.shape[1])
    out = X.copy()
    for observed, rows in _patterns(X):
        if observed.all():
            continue
        total = np.zeros((len(rows), np.count_nonzero(~observed)))
        for k in range(len(params.weights)):
            _, xhat, _ = _under_component(X[rows], observed, params.means[k], covs[k])
            total += resp[rows, k, None] * xhat[:, ~observed]
        out[np.ix_(rows, ~observed)] = total
    return out


def impute_draws(X, params: Params, covariance_type: str, n_draws: int, rng=None) -> np.ndarray:
    """``(n_draws, N, D)`` multiple imputations: in each draw and row, a component drawn from the
    row's posterior ``r_n``, then the missing values from that component's conditional normal.
    ``rng``: a ``numpy.random.Generator`` or anything ``numpy.random.default_rng`` takes."""
    X = _check_data(X, columns=False)
    rng = np.random.default_rng(rng)
    resp = np.exp(e_step(X, params, covariance_type)[0])
    covs = _dense(params, covariance_type, X.shape[1])
    n_components = len(params.weights)
    out = np.broadcast_to(X, (n_draws, *X.shape)).copy()
    for n in range(len(X)):
        missing = np.isnan(X[n])
        if not missing.any():
            continue
        # component per draw: inverse CDF of the posterior (clipped against rounding)
        cumulative = np.cumsum(resp[n])
        ks = np.minimum(
            np.searchsorted(cumulative, rng.uniform(size=n_draws) * cumulative[-1]),
            n_components - 1,
        )
        for k in np.unique(ks):
            _, xhat, c = _under_component(X[n : n + 1], ~missing, params.means[k], covs[k])
            c_mm = c[np.ix_(missing, missing)]
            draws = np.flatnonzero(ks == k)
            z = rng.standard_normal((len(draws), np.count_nonzero(missing)))
            rows = np.tile(X[n], (len(draws), 1))
            rows[:, missing] = xhat[0, missing] + z @ np.linalg.cholesky(c_mm).T
            out[draws, n] = rows
    return out
