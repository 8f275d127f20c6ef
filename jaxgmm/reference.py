"""Plain NumPy EM for Gaussian mixtures, in float64: the oracle the JAX code is tested against.

Written to be read, not to be fast: loops over components, full covariance matrices everywhere,
densities from ``numpy.linalg.slogdet`` and ``numpy.linalg.solve`` (a different route from the JAX
code's precision Cholesky factor). Conventions are the JAX core's, which are scikit-learn's:

* ``lower_bound`` is the (weighted) mean over samples of ``log sum_k w_k N(x | mu_k, S_k)``;
* component masses get ``10 * eps`` added, covariances get ``reg_covar`` on their diagonal;
* an empty component (mass below ``10 * eps`` times the largest sample weight) keeps the previous
  mean and covariance, or, without previous parameters, takes those of the whole data.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

TINY = 10 * np.finfo(np.float64).eps


class Params(NamedTuple):
    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray  # scikit-learn's shape for the covariance type


class _Full:
    """One (D, D) covariance per component."""

    @staticmethod
    def dense(c, n_components, n_features):
        return c

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        """Covariances from each component's scatter around its new mean ``(K, D, D)``."""
        eye = np.eye(scatters.shape[-1])
        return np.stack([scatters[k] / nk[k] + reg_covar * eye for k in range(len(nk))])

    @staticmethod
    def component(matrix):
        """One component's parameter from a dense covariance (None: shared by all)."""
        return matrix


class _Tied:
    """One (D, D) covariance shared by all components."""

    @staticmethod
    def dense(c, n_components, n_features):
        return np.stack([c] * n_components)

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        return scatters.sum(axis=0) / nk.sum() + reg_covar * np.eye(scatters.shape[-1])

    @staticmethod
    def component(matrix):
        return None


class _Diag:
    """A variance per component and feature."""

    @staticmethod
    def dense(c, n_components, n_features):
        return np.stack([np.diag(c[k]) for k in range(n_components)])

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        return np.stack([np.diag(m) for m in _Full.from_scatters(scatters, nk, reg_covar)])

    @staticmethod
    def component(matrix):
        return np.diag(matrix)


class _Spherical:
    """One variance per component."""

    @staticmethod
    def dense(c, n_components, n_features):
        return np.stack([c[k] * np.eye(n_features) for k in range(n_components)])

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        full = _Full.from_scatters(scatters, nk, reg_covar)
        return np.array([np.mean(np.diag(m)) for m in full])

    @staticmethod
    def component(matrix):
        return np.mean(np.diag(matrix))


# mclust's closed-form models (Celeux & Govaert 1995), from the scatters W_k around the new
# means and n = sum_k n_k; every component's parameters stored, equal ones repeated.


class _EII(_Spherical):
    """lambda I."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        variance = np.trace(scatters.sum(axis=0)) / (nk.sum() * scatters.shape[-1])
        return np.full(len(nk), variance + reg_covar)


class _EEI(_Diag):
    """lambda A, A diagonal."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        shared = np.diag(scatters.sum(axis=0)) / nk.sum()
        return np.stack([shared + reg_covar] * len(nk))


class _EVI(_Diag):
    """lambda A_k, A_k diagonal with det 1."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        diagonals = [np.diag(w) for w in scatters]
        volumes = [np.prod(b) ** (1 / len(b)) for b in diagonals]
        lam = sum(volumes) / nk.sum()
        with np.errstate(invalid="ignore"):  # 0 / 0 for an empty component, replaced later
            return np.stack(
                [lam * b / v + reg_covar for b, v in zip(diagonals, volumes, strict=True)]
            )


class _EEV(_Full):
    """lambda D_k A D_k^T."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        pairs = [np.linalg.eigh(w) for w in scatters]  # eigenvalues in ascending order
        shape_volume = sum(values for values, _ in pairs) / nk.sum()  # lambda A
        eye = np.eye(scatters.shape[-1])
        return np.stack([v @ np.diag(shape_volume) @ v.T + reg_covar * eye for _, v in pairs])


class _EVV(_Full):
    """lambda C_k, det C_k = 1."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        d = scatters.shape[-1]
        volumes = [np.linalg.det(w) ** (1 / d) for w in scatters]
        lam = sum(volumes) / nk.sum()
        eye = np.eye(d)
        with np.errstate(invalid="ignore"):  # 0 / 0 for an empty component, replaced later
            return np.stack(
                [lam * w / v + reg_covar * eye for w, v in zip(scatters, volumes, strict=True)]
            )


# mclust's models with an iterative M-step: the inner loop alternates the closed-form minimisation
# over each part of the covariances given the others (Celeux & Govaert 1995), with Browne &
# McNicholas' majorisation steps for a shared orientation, until nothing moves (``_converge``).
# (jaxgmm turns the orientation by sweeps of plane rotations instead: two algorithms, one point.)
# An empty component (its scatter 0) takes no part in a shared parameter.


def _converge(step, state, max_iter=100_000):
    """Apply ``step`` to the tuple ``state`` until it stops changing (to 1e-15 relative)."""
    for _ in range(max_iter):
        new = step(state)
        moved = max(
            np.max(np.abs(n - o) / (1 + np.abs(n))) for o, n in zip(state, new, strict=True)
        )
        state = new
        if moved <= 1e-15:
            break
    return state


def _unit_product(values):
    """``values`` scaled to product 1 (ones for a vector with a zero: an empty component)."""
    values = np.asarray(values, dtype=np.float64)
    if np.any(values <= 0):
        return np.ones_like(values)
    return values / np.exp(np.mean(np.log(values)))


def _vei_shape(variances, counts, shape):
    """The shared shape ``a`` of ``lambda_k diag(a)`` for variances ``(K, D)`` along fixed axes,
    and the volumes ``lambda_k = sum_j v_kj / a_j / counts_k`` (``counts``: ``D n_k``, with a
    prior's degrees of freedom added)."""

    def volumes(a):
        return np.array([np.sum(v / a) / c for v, c in zip(variances, counts, strict=True)])

    def step(state):
        lam = volumes(state[0])
        return (
            _unit_product(sum(v / vol for v, vol in zip(variances, lam, strict=True) if vol > 0)),
        )

    (a,) = _converge(step, (shape,))
    return a, volumes(a)


def _orientation_step(scatters, axes, inverse_shapes):
    """Browne & McNicholas' two majorisation steps for a shared orientation (columns: axes)."""

    def polar(m):
        u, _, vt = np.linalg.svd(m)
        return u @ vt

    eye = np.eye(scatters.shape[-1])
    h = sum(
        (np.linalg.eigvalsh(w)[-1] * eye - w) @ axes @ np.diag(lam)
        for w, lam in zip(scatters, inverse_shapes, strict=True)
    )
    axes = polar(h)
    h = sum(
        w @ axes @ np.diag(lam.max() - lam) for w, lam in zip(scatters, inverse_shapes, strict=True)
    )
    return polar(h)


class _VEI(_Diag):
    """lambda_k A, A diagonal with det 1."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        variances = np.stack([np.diag(w) for w in scatters])
        a, lam = _vei_shape(variances, scatters.shape[-1] * nk, np.ones(scatters.shape[-1]))
        return np.stack([vol * a + reg_covar for vol in lam])


class _VEV(_Full):
    """lambda_k D_k A D_k^T."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        pairs = [np.linalg.eigh(w) for w in scatters]  # eigenvalues in ascending order
        eigenvalues = np.stack([values for values, _ in pairs])
        counts = scatters.shape[-1] * nk
        a, lam = _vei_shape(eigenvalues, counts, _unit_product(eigenvalues.sum(axis=0)))
        eye = np.eye(scatters.shape[-1])
        return np.stack(
            [
                vol * v @ np.diag(a) @ v.T + reg_covar * eye
                for (_, v), vol in zip(pairs, lam, strict=True)
            ]
        )


class _VEE(_Full):
    """lambda_k C, det C = 1."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        d = scatters.shape[-1]

        def shared(lam):
            total = sum(w / vol for w, vol in zip(scatters, lam, strict=True) if vol > 0)
            return total / np.linalg.det(total) ** (1 / d)

        def step(state):
            c_inv = np.linalg.inv(shared(state[0]))
            return (
                np.array(
                    [np.trace(w @ c_inv) / (d * n) for w, n in zip(scatters, nk, strict=True)]
                ),
            )

        (lam,) = _converge(step, (np.ones(len(nk)),))
        c = shared(lam)
        return np.stack([vol * c + reg_covar * np.eye(d) for vol in lam])


class _EVE(_Full):
    """lambda D A_k D^T, A_k diagonal with det 1."""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        d = scatters.shape[-1]

        def along(axes):
            return np.stack([np.diag(axes.T @ w @ axes) for w in scatters])

        def step(state):
            axes = _orientation_step(scatters, state[0], 1 / state[1])
            return axes, np.stack([_unit_product(v) for v in along(axes)])

        axes, shapes = _converge(step, (np.eye(d), np.ones((len(nk), d))))
        lam = np.sum(along(axes) / shapes) / (nk.sum() * d)
        return np.stack([lam * axes @ np.diag(a) @ axes.T + reg_covar * np.eye(d) for a in shapes])


class _VVE(_Full):
    """lambda_k D A_k D^T. (mclust 6's M-step leaves the volumes out of the orientation's
    update, so its fits stop below the likelihood's maximum; this one does not.)"""

    @staticmethod
    def from_scatters(scatters, nk, reg_covar):
        d = scatters.shape[-1]

        def along(axes):
            return np.stack(
                [np.diag(axes.T @ w @ axes) / n for w, n in zip(scatters, nk, strict=True)]
            )

        def step(state):
            with np.errstate(divide="ignore"):
                inverse = np.where(state[1] > 0, 1 / state[1], 0.0)
            axes = _orientation_step(scatters, state[0], inverse)
            return axes, along(axes)

        axes, diagonals = _converge(step, (np.eye(d), along(np.eye(d))))
        return np.stack([axes @ np.diag(c) @ axes.T + reg_covar * np.eye(d) for c in diagonals])


# The counterpart of every covariance model of ``jaxgmm.COVARIANCE_TYPES``, by the same name.
MODELS = {
    "full": _Full,
    "tied": _Tied,
    "diag": _Diag,
    "spherical": _Spherical,
    "EII": _EII,
    "EEI": _EEI,
    "EVI": _EVI,
    "EEV": _EEV,
    "EVV": _EVV,
    "VEI": _VEI,
    "VEE": _VEE,
    "EVE": _EVE,
    "VVE": _VVE,
    "VEV": _VEV,
}


def full_covariances(covariances, covariance_type: str, n_components: int, n_features: int):
    """Any covariance model's parameters as ``(K, D, D)`` matrices."""
    c = np.asarray(covariances, dtype=np.float64)
    return MODELS[covariance_type].dense(c, n_components, n_features)


def component_log_prob(X, params: Params, covariance_type: str) -> np.ndarray:
    """``(N, K)``: log N(x_n | mu_k, S_k)."""
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = len(params.weights)
    covs = full_covariances(params.covariances, covariance_type, n_components, n_features)
    out = np.empty((n_samples, n_components))
    for k in range(n_components):
        diff = X - params.means[k]
        sign, logdet = np.linalg.slogdet(covs[k])
        if sign <= 0:
            out[:, k] = np.nan
            continue
        maha = np.sum(diff * np.linalg.solve(covs[k], diff.T).T, axis=1)
        out[:, k] = -0.5 * (n_features * np.log(2 * np.pi) + logdet + maha)
    return out


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    top = np.max(a, axis=1, keepdims=True)
    return top[:, 0] + np.log(np.sum(np.exp(a - top), axis=1))


def log_prob(X, params: Params, covariance_type: str) -> np.ndarray:
    """``(N,)``: log of the mixture density at each sample."""
    return _logsumexp_rows(component_log_prob(X, params, covariance_type) + np.log(params.weights))


def e_step(X, params: Params, covariance_type: str, sample_weight=None):
    """Returns ``log_resp (N, K)`` and the (weighted) mean log-likelihood."""
    weighted = component_log_prob(X, params, covariance_type) + np.log(params.weights)
    log_norm = _logsumexp_rows(weighted)
    w = np.ones(len(log_norm)) if sample_weight is None else np.asarray(sample_weight, float)
    return weighted - log_norm[:, None], float(np.sum(w * log_norm) / np.sum(w))


def m_step(
    X,
    log_resp,
    covariance_type: str,
    reg_covar=1e-6,
    sample_weight=None,
    previous: Params | None = None,
) -> Params:
    """Textbook M-step, covariances from data centred on the new means."""
    X = np.asarray(X, dtype=np.float64)
    n_samples, n_features = X.shape
    resp = np.exp(np.asarray(log_resp, dtype=np.float64))
    w = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, float)
    wr = resp * w[:, None]
    mass = wr.sum(axis=0)
    n_components = len(mass)
    nk = mass + TINY
    empty = mass < TINY * w.max()

    data_mean = w @ X / w.sum()
    data_cov = (X - data_mean).T @ ((X - data_mean) * w[:, None]) / w.sum()

    means = np.empty((n_components, n_features))
    scatters = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        means[k] = wr[:, k] @ X / nk[k]
        diff = X - means[k]
        scatters[k] = (diff * wr[:, k, None]).T @ diff

    model = MODELS[covariance_type]
    covariances = model.from_scatters(scatters, nk, reg_covar)
    pooled = model.component(data_cov + reg_covar * np.eye(n_features))
    for k in np.flatnonzero(empty):
        if previous is not None:
            means[k] = previous.means[k]
            if pooled is not None:  # a shared covariance takes nothing from an empty component
                covariances[k] = previous.covariances[k]
        else:
            means[k] = data_mean
            if pooled is not None:
                covariances[k] = pooled
    return Params(nk / nk.sum(), means, covariances)


def map_step(X, log_resp, covariance_type: str, prior: dict, reg_covar=0.0, sample_weight=None):
    """The MAP M-step under mclust's conjugate prior (Fraley & Raftery 2007; ``jaxgmm._prior``):
    ``prior`` has ``shrinkage`` (kappa), ``mean``, ``dof`` (nu) and ``covariance`` (the scale
    before its factor ``K^(-2/D)``). Models: full, tied, diag, spherical, EII, EEI, VEI, EVI,
    EEV, VEV."""
    X = np.asarray(X, dtype=np.float64)
    n_samples, d = X.shape
    resp = np.exp(np.asarray(log_resp, dtype=np.float64))
    w = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, float)
    kappa, nu = float(prior["shrinkage"]), float(prior["dof"])
    mu_p, scale = np.asarray(prior["mean"], float), np.asarray(prior["covariance"], float)
    k_count = resp.shape[1]
    fac = k_count ** (-2 / d)
    lam, s2 = fac * scale, fac * np.trace(scale) / d  # dense and diagonal scales
    nk = (resp * w[:, None]).sum(axis=0)
    n = nk.sum()
    xbar, W, offsets, pull = [], [], [], []
    for k in range(k_count):
        wr = resp[:, k] * w
        xbar.append(wr @ X / nk[k])
        diff = X - xbar[k]
        W.append((diff * wr[:, None]).T @ diff)
        offsets.append(xbar[k] - mu_p)
        pull.append(kappa * nk[k] / (kappa + nk[k]) * np.outer(offsets[k], offsets[k]))
    eye = np.eye(d)
    if covariance_type == "full":
        cov = np.stack([(lam + W[k] + pull[k]) / (nu + nk[k] + d + 2) for k in range(k_count)])
    elif covariance_type == "tied":
        cov = (lam + sum(W) + sum(pull)) / (nu + n + d + 1 + k_count)
    elif covariance_type == "diag":
        cov = np.stack([(s2 + np.diag(W[k] + pull[k])) / (nu + nk[k] + 3) for k in range(k_count)])
    elif covariance_type == "spherical":
        cov = np.array(
            [(s2 + np.trace(W[k] + pull[k])) / (nu + nk[k] * d + d + 2) for k in range(k_count)]
        )
    elif covariance_type == "EII":
        total = s2 + sum(np.trace(W[k] + pull[k]) for k in range(k_count))
        cov = np.full(k_count, total / (nu + n * d + k_count * d + 2))
    elif covariance_type == "EEI":
        total = s2 + sum(np.diag(W[k] + pull[k]) for k in range(k_count))
        cov = np.stack([total / (nu + n + k_count + 2)] * k_count)
    # mclust 6's steps for these four (msveip, msevip, mseevp, msvevp)
    elif covariance_type == "VEI":
        b = np.stack([s2 + np.diag(W[k] + pull[k]) for k in range(k_count)])
        a, lam = _vei_shape(b, nu + nk * d + 3, np.ones(d))
        cov = np.stack([lam[k] * a for k in range(k_count)])
    elif covariance_type == "EVI":
        b = [s2 + np.diag(W[k] + pull[k]) for k in range(k_count)]
        volumes = [np.exp(np.mean(np.log(v))) for v in b]
        lam = sum(volumes) / (nu + n + k_count + 2)
        cov = np.stack([lam * v / g for v, g in zip(b, volumes, strict=True)])
    elif covariance_type == "EEV":
        pairs = [np.linalg.eigh(lam + W[k] + pull[k]) for k in range(k_count)]
        scaled = sum(values for values, _ in pairs) / (nu + d + 2 + n)
        cov = np.stack([v @ np.diag(scaled) @ v.T for _, v in pairs])
    elif covariance_type == "VEV":
        pairs = [np.linalg.eigh(lam + W[k] + pull[k]) for k in range(k_count)]
        eigenvalues = np.stack([values for values, _ in pairs])
        a, volumes = _vei_shape(eigenvalues, d * nk, _unit_product(eigenvalues.sum(axis=0)))
        cov = np.stack([g * v @ np.diag(a) @ v.T for (_, v), g in zip(pairs, volumes, strict=True)])
    else:
        raise ValueError(f"no prior for {covariance_type}")
    cov = cov + reg_covar * (eye if cov.ndim == 3 or covariance_type == "tied" else 1.0)
    means = np.stack([mu_p + offsets[k] * nk[k] / (nk[k] + kappa) for k in range(k_count)])
    return Params(nk / n, means, cov)


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
    where ``lower_bounds[i]`` is computed in the E-step of iteration ``i``."""
    lower_bounds = []
    previous_bound = -np.inf
    for _ in range(max_iter):
        log_resp, bound = e_step(X, params, covariance_type, sample_weight)
        params = m_step(X, log_resp, covariance_type, reg_covar, sample_weight, previous=params)
        lower_bounds.append(bound)
        if abs(bound - previous_bound) < tol:
            return params, np.array(lower_bounds), len(lower_bounds), True
        previous_bound = bound
    return params, np.array(lower_bounds), len(lower_bounds), False
