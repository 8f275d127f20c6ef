"""The implementations compared, behind one small interface.

Each runner holds the data and offers:

``prepare(init, covariance_type)``  the implementation's own form of the initial parameters (done
                                    once, outside the timing);
``fixed(state, n_iter)``            EM for exactly ``n_iter`` iterations (tol=0) from them, every
                                    restart, blocking until the result is ready;
``restarts(raw)``                   the result of ``fixed`` as one :class:`Restart` per restart;
``end_to_end(cov, k, n_init, seed)`` a default fit including initialisation, the best restart.

Libraries are imported inside the runners, so that a worker loads only what it measures.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .workloads import COVARIANCE_TYPES, Case


class Restart(NamedTuple):
    """Final parameters of one restart (scikit-learn shapes, NumPy) and what the library said."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    lower_bound: float  # the library's own last lower bound
    n_iter: int


@dataclass(frozen=True)
class Impl:
    name: str
    dtype: str  # "float32" or "float64": the dtype of the data it is given
    module: str  # the package that must be importable
    covariance_types: tuple[str, ...] = COVARIANCE_TYPES
    select: str | None = None  # why it sits out the model-selection grid, if it does
    # jaxgmm with the rows sharded over one CPU device per core (see environment())
    host_devices: bool = False

    @property
    def uses_jax(self) -> bool:
        return self.module in ("jaxgmm", "gmmx")

    def environment(self) -> dict[str, str]:
        """The worker's environment: XLA's CPU client split into one device per core for
        ``host_devices`` (it must be set before JAX starts)."""
        env = dict(os.environ)
        if self.host_devices:
            flag = f"--xla_force_host_platform_device_count={os.cpu_count() or 1}"
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
        return env


IMPLS: dict[str, Impl] = {
    "jaxgmm": Impl("jaxgmm", "float32", "jaxgmm"),
    # In float64 the grid's 48 compilations take minutes again and teach nothing new.
    "jaxgmm64": Impl("jaxgmm64", "float64", "jaxgmm", select="the grid runs in float32 only"),
    # On a CPU whose per-block products run on one core (large D), sharding the rows over the
    # cores is jaxgmm's own way to use them all: fit(devices=jax.devices()).
    "jaxgmm-cores": Impl("jaxgmm-cores", "float32", "jaxgmm", host_devices=True),
    "sklearn64": Impl("sklearn64", "float64", "sklearn"),
    "sklearn32": Impl("sklearn32", "float32", "sklearn"),
    "gmmx": Impl(
        "gmmx",
        "float32",
        "gmmx",
        covariance_types=("full", "diag"),
        select="gmmx has no tied/spherical covariances nor restarts",
    ),
}

# Names accepted by --peers; "sklearn" means both of its dtypes.
PEER_ALIASES = {"sklearn": ["sklearn64", "sklearn32"]}


def available(impl: Impl) -> bool:
    return importlib.util.find_spec(impl.module) is not None


def skip_reason(impl: Impl, case: Case) -> str | None:
    """Why ``impl`` does not run ``case``, or None when it does."""
    if not available(impl):
        return f"{impl.module} is not importable"
    if case.kind == "select" and impl.select:
        return impl.select
    if case.gpu_only and impl.dtype != "float32":
        return "gpu-large is a float32 workload"
    if case.gpu_only and impl.module == "sklearn":
        # About 15 s per iteration even on 16 cores: a measurement would take an hour.
        return "scikit-learn runs on the CPU only: far too slow at this size"
    if case.kind == "fixed" and case.covariance_type not in impl.covariance_types:
        return f"{impl.name} has no {case.covariance_type} covariance"
    return None


def _precisions(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    if covariance_type in ("full", "tied"):
        return np.linalg.inv(covariances)
    return 1.0 / covariances


class JaxgmmRunner:
    def __init__(self, X: np.ndarray, host_devices: bool = False) -> None:
        import jax

        import jaxgmm

        self.jax, self.jaxgmm = jax, jaxgmm
        self.X = jax.device_put(X)
        self.key = jax.random.key(0)
        self.devices = jax.devices() if host_devices else None

    def prepare(self, init: dict[str, np.ndarray], covariance_type: str) -> Any:
        # One GMMParams whose fields all have a leading n_init axis: the batched init of fit.
        dtype = self.X.dtype
        params = self.jaxgmm.params_from_covariances(
            *(init[f].astype(dtype) for f in ("weights", "means", "covariances")),
            covariance_type=covariance_type,
        )
        return params, covariance_type

    def fixed(self, state: Any, n_iter: int) -> Any:
        params, covariance_type = state
        n_init, k = params.weights.shape
        result = self.jaxgmm.fit(
            self.key,
            self.X,
            k,
            covariance_type=covariance_type,
            n_init=n_init,
            init=params,
            max_iter=n_iter,
            tol=0.0,
            devices=self.devices,
        )
        return self.jax.block_until_ready(result)

    def restarts(self, raw: Any) -> list[Restart]:
        p = raw.restarts.params
        w, m, c = (np.asarray(a) for a in (p.weights, p.means, p.covariances))
        bounds, n_iter = np.asarray(raw.restarts.lower_bound), np.asarray(raw.restarts.n_iter)
        return [Restart(w[i], m[i], c[i], float(bounds[i]), int(n_iter[i])) for i in range(len(w))]

    def end_to_end(self, covariance_type: str, k: int, n_init: int, seed: int) -> Restart:
        r = self.jaxgmm.fit(
            self.jax.random.key(seed),
            self.X,
            k,
            covariance_type=covariance_type,
            n_init=n_init,
            devices=self.devices,
        )
        p = r.params
        return Restart(
            np.asarray(p.weights),
            np.asarray(p.means),
            np.asarray(p.covariances),
            float(r.lower_bound),
            int(r.n_iter),
        )

    def grid(self, ks: tuple[int, ...], n_init: int, seed: int) -> list[tuple[str, int, Restart]]:
        """The whole grid through jaxgmm.select: one compiled program per covariance type."""
        result = self.jaxgmm.select(
            self.X, ks, COVARIANCE_TYPES, n_init=n_init, random_state=seed, devices=self.devices
        )
        rows = []
        for row in result.rows:
            model = result.models[(row["covariance_type"], row["n_components"])]
            fitted = Restart(
                model.weights_,
                model.means_,
                model.covariances_,
                float(model.lower_bound_),
                int(model.n_iter_),
            )
            rows.append((row["covariance_type"], row["n_components"], fitted))
        return rows


class SklearnRunner:
    def __init__(self, X: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture

        # tol=0 never converges by design; the warning would only be noise.
        warnings.filterwarnings("ignore", category=ConvergenceWarning)
        self.GaussianMixture = GaussianMixture
        self.X = X

    def prepare(self, init: dict[str, np.ndarray], covariance_type: str) -> Any:
        dtype = self.X.dtype  # float32 inits keep scikit-learn in float32 throughout
        return [
            dict(
                n_components=len(w),
                covariance_type=covariance_type,
                weights_init=w.astype(dtype),
                means_init=m.astype(dtype),
                precisions_init=_precisions(c, covariance_type).astype(dtype),
            )
            for w, m, c in zip(init["weights"], init["means"], init["covariances"], strict=True)
        ]

    def fixed(self, state: Any, n_iter: int) -> Any:
        # random_from_data: the cheapest built-in init, so that no k-means runs before the given
        # parameters replace it (it still costs one M-step-like pass per call).
        return [
            self.GaussianMixture(
                **kwargs, max_iter=n_iter, tol=0.0, init_params="random_from_data", random_state=0
            ).fit(self.X)
            for kwargs in state
        ]

    @staticmethod
    def _restart(g: Any) -> Restart:
        return Restart(g.weights_, g.means_, g.covariances_, float(g.lower_bound_), int(g.n_iter_))

    def restarts(self, raw: Any) -> list[Restart]:
        return [self._restart(g) for g in raw]

    def end_to_end(self, covariance_type: str, k: int, n_init: int, seed: int) -> Restart:
        g = self.GaussianMixture(
            k, covariance_type=covariance_type, n_init=n_init, random_state=seed
        ).fit(self.X)
        return self._restart(g)


class GmmxRunner:
    def __init__(self, X: np.ndarray) -> None:
        import jax
        from gmmx import EMFitter, GaussianMixtureModelJax

        self.jax, self.EMFitter, self.Model = jax, EMFitter, GaussianMixtureModelJax
        self.X_host = X
        self.X = jax.device_put(X)

    def prepare(self, init: dict[str, np.ndarray], covariance_type: str) -> Any:
        # from_squeezed adds gmmx's singleton axes: weights (1, K, 1, 1), means (1, K, D, 1),
        # covariances (1, K, D, D) or (1, K, D, 1) for diag.
        return [
            self.Model.from_squeezed(
                means=m.astype(np.float32),
                covariances=c.astype(np.float32),
                weights=w.astype(np.float32),
                covariance_type=covariance_type,
            )
            for w, m, c in zip(init["weights"], init["means"], init["covariances"], strict=True)
        ]

    def fixed(self, state: Any, n_iter: int) -> Any:
        # max_iter and tol are static fields of EMFitter (each n_iter compiles once); with tol=0
        # its while_loop condition |change| >= tol holds until max_iter. Its fit calls
        # block_until_ready inside jit, where that does nothing: the result must be waited for.
        fitter = self.EMFitter(max_iter=n_iter, tol=0.0, reg_covar=1e-6)
        return self.jax.block_until_ready([fitter.fit(self.X, model) for model in state])

    @staticmethod
    def _restart(r: Any) -> Restart:
        g = r.gmm
        return Restart(
            g.weights_numpy,
            g.means_numpy,
            g.covariances.values_numpy,
            float(r.log_likelihood),
            int(r.n_iter),
        )

    def restarts(self, raw: Any) -> list[Restart]:
        return [self._restart(r) for r in raw]

    def end_to_end(self, covariance_type: str, k: int, n_init: int, seed: int) -> Restart:
        # What GaussianMixtureSKLearn.fit does (scikit-learn KMeans with n_init=10, then EM with
        # tol=1e-3, max_iter=100), called directly to see n_iter; gmmx has no restarts, so loop.
        fitter = self.EMFitter()
        best = None
        for i in range(n_init):
            model = self.Model.from_k_means(
                self.X_host, k, covariance_type=covariance_type, random_state=seed + i
            )
            r = self.jax.block_until_ready(fitter.fit(self.X, model))
            if best is None or float(r.log_likelihood) > float(best.log_likelihood):
                best = r
        return self._restart(best)


def make_runner(impl: Impl, X: np.ndarray) -> JaxgmmRunner | SklearnRunner | GmmxRunner:
    if impl.module == "jaxgmm":
        return JaxgmmRunner(X, impl.host_devices)
    return {"sklearn": SklearnRunner, "gmmx": GmmxRunner}[impl.module](X)


def import_libraries(impl: Impl) -> None:
    """Import what ``impl`` needs and start JAX's backend, so that the baseline RSS taken after
    this includes the libraries themselves."""
    if impl.uses_jax:
        import jax

        if impl.dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        jax.devices()
    if impl.module == "jaxgmm":
        import jaxgmm  # noqa: F401
    elif impl.module == "gmmx":
        import gmmx  # noqa: F401
    else:
        import sklearn.mixture  # noqa: F401
