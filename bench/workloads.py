"""The workloads of GUIDE section 6: sizes, seeded data and initial parameters.

Data are drawn from a mixture with well-separated components, so that every implementation,
started from the same parameters, follows the same EM path; the initial parameters are the true
ones, perturbed deterministically from a seed.

``python -m bench.workloads SPEC.json DIR`` writes, for each case of the spec, the data (float64
and float32 ``.npy``) and the initial parameters (``.npz``) into DIR. It runs in a subprocess so
that the driver never holds large arrays (see ``bench/worker.py`` on peak memory).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@dataclass(frozen=True)
class Case:
    """One measured combination: a workload at a size with one covariance type.

    ``kind`` is ``"fixed"`` (fixed-iteration EM from given parameters, plus an end-to-end fit) or
    ``"select"`` (the model-selection grid, end-to-end only).
    """

    workload: str
    n: int
    d: int
    k: int
    covariance_type: str
    n_init: int = 1
    kind: str = "fixed"
    seed: int = 0
    true_k: int = 0  # components of the generating mixture (select only; else k)
    ks: tuple[int, ...] = ()  # select: the grid of component counts
    gpu_only: bool = False

    @property
    def label(self) -> str:
        return f"{self.workload}/{self.covariance_type}"

    @property
    def data_key(self) -> str:
        """Cases of one workload share their data (mid-16 full and diag fit the same X)."""
        return self.workload


def cases(quick: bool) -> list[Case]:
    """All cases, at the sizes of GUIDE section 6, or tiny ones for ``--quick``."""
    if quick:
        return [
            Case("lesson", 200, 2, 2, "full", seed=1),
            Case("small-2d", 500, 2, 3, "full", seed=2),
            Case("big-2d", 2_000, 2, 5, "full", seed=3),
            Case("mid-16", 2_000, 16, 16, "full", seed=4),
            Case("mid-16", 2_000, 16, 16, "diag", seed=4),
            Case("wide-64", 2_000, 64, 8, "full", seed=5),
            Case("restarts", 1_000, 8, 8, "full", n_init=4, seed=6),
            Case("select", 1_000, 8, 2, "all", n_init=2, kind="select", seed=7, true_k=2, ks=(2,)),
            Case("gpu-large", 5_000, 32, 8, "full", seed=8, gpu_only=True),
        ]
    return [
        Case("lesson", 200, 2, 2, "full", seed=1),
        Case("small-2d", 100_000, 2, 3, "full", seed=2),
        Case("big-2d", 1_000_000, 2, 5, "full", seed=3),
        Case("mid-16", 100_000, 16, 16, "full", seed=4),
        Case("mid-16", 100_000, 16, 16, "diag", seed=4),
        Case("wide-64", 100_000, 64, 8, "full", seed=5),
        Case("restarts", 20_000, 8, 8, "full", n_init=32, seed=6),
        Case(
            "select",
            20_000,
            8,
            12,
            "all",
            n_init=4,
            kind="select",
            seed=7,
            true_k=6,
            ks=tuple(range(1, 13)),
        ),
        Case("gpu-large", 10_000_000, 32, 64, "full", seed=8, gpu_only=True),
    ]


def workload_names() -> list[str]:
    return list(dict.fromkeys(c.workload for c in cases(quick=False)))


# --quick runs these by default: at tiny sizes small-2d, big-2d and wide-64 take exactly the
# code path of lesson and mid-16, and each (case, implementation) costs a process start and a
# compilation, which is where a quick run's time goes.
QUICK_WORKLOADS = ("lesson", "mid-16", "restarts", "select")


# --- data ------------------------------------------------------------------------------------


def _true_mixture(rng: np.random.Generator, k: int, d: int):
    """Weights, means and full covariances of a mixture whose components are far apart: means
    at least 10 apart while covariance eigenvalues lie in [0.3, 2] (std below 1.5)."""
    weights = rng.uniform(0.5, 1.5, k)
    weights /= weights.sum()
    spread = 8.0
    while True:  # deterministic: the same seed draws the same sequence
        means = rng.normal(0.0, spread, (k, d))
        gaps = np.linalg.norm(means[:, None] - means[None], axis=-1) + 1e9 * np.eye(k)
        if gaps.min() >= 10.0:
            break
        spread *= 1.2
    rotations = np.linalg.qr(rng.normal(size=(k, d, d)))[0]
    eigenvalues = rng.uniform(0.3, 2.0, (k, d))
    covariances = np.einsum("kij,kj,klj->kil", rotations, eigenvalues, rotations)
    return weights, means, covariances


def _sample(rng: np.random.Generator, n: int, weights, means, covariances) -> np.ndarray:
    labels = rng.choice(len(weights), size=n, p=weights)
    chol = np.linalg.cholesky(covariances)
    z = rng.standard_normal((n, means.shape[1]))
    return means[labels] + np.einsum("nij,nj->ni", chol[labels], z)


def _perturbed(rng: np.random.Generator, weights, means, covariances):
    """A starting point near the truth, far enough to take several EM iterations to settle."""
    w = weights * rng.uniform(0.7, 1.3, weights.shape)
    m = means + rng.normal(0.0, 0.5, means.shape)
    c = covariances * rng.uniform(0.6, 1.6, (len(weights), 1, 1))
    return w / w.sum(), m, c


def as_covariance_type(covariances: np.ndarray, covariance_type: str) -> np.ndarray:
    """Full ``(..., K, D, D)`` covariances reduced to the shapes of ``covariance_type``."""
    if covariance_type == "full":
        return covariances
    if covariance_type == "diag":
        return np.diagonal(covariances, axis1=-2, axis2=-1).copy()
    raise ValueError(f"no fixed-iteration case uses {covariance_type!r}")


def prepare(case_list: list[Case], directory: Path) -> None:
    """Write each case's data (once per workload) and initial parameters into ``directory``."""
    done: set[str] = set()
    for case in case_list:
        rng = np.random.default_rng(case.seed)
        if case.workload == "lesson":
            import jaxgmm  # only here: the lesson's data are the library's own
            from jaxgmm.datasets import LESSON_COVARIANCE, LESSON_MEANS

            X = jaxgmm.lesson_data()
            truth = (np.full(2, 0.5), LESSON_MEANS, np.stack([LESSON_COVARIANCE] * 2))
        else:
            truth = _true_mixture(rng, case.true_k or case.k, case.d)
            X = _sample(rng, case.n, *truth)
        if case.data_key not in done:
            np.save(directory / f"{case.data_key}-float64.npy", X)
            np.save(directory / f"{case.data_key}-float32.npy", X.astype(np.float32))
            done.add(case.data_key)
        if case.kind == "fixed":
            starts = [_perturbed(rng, *truth) for _ in range(case.n_init)]
            w, m, c = (np.stack(a) for a in zip(*starts, strict=True))
            np.savez(
                directory / f"{case.data_key}-{case.covariance_type}-init.npz",
                weights=w,
                means=m,
                covariances=as_covariance_type(c, case.covariance_type),
            )


def data_path(directory: Path, case: Case, dtype: str) -> Path:
    return directory / f"{case.data_key}-{dtype}.npy"


def init_path(directory: Path, case: Case) -> Path:
    return directory / f"{case.data_key}-{case.covariance_type}-init.npz"


def case_from_dict(d: dict) -> Case:
    return Case(**{**d, "ks": tuple(d["ks"])})


def case_to_dict(case: Case) -> dict:
    return asdict(case)


if __name__ == "__main__":
    spec = json.loads(Path(sys.argv[1]).read_text())
    prepare([case_from_dict(c) for c in spec], Path(sys.argv[2]))
