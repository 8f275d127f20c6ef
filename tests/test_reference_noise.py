"""The NumPy reference EM with mclust's noise component (jaxgmm/reference_noise.py) against R's
mclust itself.

The figures were recorded by ``tests/data/mclust/make_noise_reference.R`` (mclust 6.0.0):
faithful with 60 uniform points added, an initial noise mask, mclust's start (hierarchical
clustering of the non-noise rows, the mask as the noise column) and, from it, ``Mclust``'s fit
with a noise component for VVV, EEE, VVI and EII at G = 2, 3. The tests read them; they never
need R.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from helpers import read_matrix

from jaxgmm import reference, reference_noise
from jaxgmm._hc import hc_partitions
from jaxgmm.datasets import DATA_DIR

DATA = Path(__file__).parent / "data" / "mclust"
BENCH_DATA = DATA_DIR


def read_rows(name: str) -> list[dict[str, str]]:
    with open(DATA / name) as f:
        return list(csv.DictReader(f))


X = read_matrix(DATA / "faithful_noise_data.csv")
START = read_rows("faithful_noise_start.csv")
EM = read_rows("faithful_noise_em.csv")
CLASSIFICATION = read_rows("faithful_noise_classification.csv")
INITIAL_NOISE = np.array([row["init_noise"] == "TRUE" for row in START])


def start_resp(groups: int) -> np.ndarray:
    """mclust's starting z: one-hot, the G Gaussians' columns, then the noise column."""
    labels = np.array([int(row[f"G{groups}"]) for row in START])  # 0 = noise, 1..G
    resp = np.zeros((len(labels), groups + 1))
    resp[np.arange(len(labels)), np.where(labels == 0, groups, labels - 1)] = 1.0
    return resp


def mclust_parameter_count(model: str, d: int, groups: int) -> int:
    """mclust's nMclustParams(model, d, G, noise = TRUE): means, covariances, G - 1 Gaussian
    proportions, and 2 for the noise (its proportion, and Vinv counted as one more)."""
    covariance = {
        "VVV": groups * d * (d + 1) // 2,
        "EEE": d * (d + 1) // 2,
        "VVI": groups * d,
        "EII": 1,
    }[model]
    return groups * d + covariance + (groups - 1) + 2


def test_data_and_start_are_as_recorded():
    assert X.shape == (332, 2)
    assert INITIAL_NOISE.sum() == 50
    for groups in (2, 3):
        labels = np.array([int(row[f"G{groups}"]) for row in START])
        np.testing.assert_array_equal(labels == 0, INITIAL_NOISE)
        assert set(labels[~INITIAL_NOISE]) == set(range(1, groups + 1))


def test_jaxgmm_hierarchical_start_on_the_non_noise_rows_is_mclusts():
    """mclust clusters only the rows not initially noise: jaxgmm's hc gives the same cut."""
    _, labels = hc_partitions(X[~INITIAL_NOISE], [2, 3])
    for i, groups in enumerate((2, 3)):
        recorded = np.array([int(row[f"G{groups}"]) for row in START])[~INITIAL_NOISE]
        np.testing.assert_array_equal(labels[i], recorded - 1)


@pytest.mark.parametrize(
    "name, data",
    [
        ("faithful_noise", X),
        ("faithful", read_matrix(BENCH_DATA / "faithful.csv")),
        ("iris", read_matrix(BENCH_DATA / "iris.csv")),
    ],
)
def test_hypvol_is_mclusts(name, data):
    """The smaller box: the bounding box with the uniform points, the principal components'
    for faithful and iris alone."""
    (row,) = [r for r in read_rows("faithful_noise_hypvol.csv") if r["data"] == name]
    assert row["mclust_version"] == "6.0.0"
    assert float(row["hypvol"]) == min(float(row["bounding_box"]), float(row["principal_box"]))
    np.testing.assert_allclose(reference_noise.hypvol(data), float(row["hypvol"]), rtol=1e-13)
    np.testing.assert_allclose(
        reference_noise.hypvol(data, reciprocal=True), float(row["Vinv"]), rtol=1e-13
    )


def test_one_dimensional_hypvol_is_the_range():
    assert reference_noise.hypvol(np.array([3.0, -1.0, 2.0])) == 4.0
    assert reference_noise.hypvol(np.array([[3.0], [-1.0]]), reciprocal=True) == 0.25


def test_m_step_takes_the_gaussians_from_their_columns_and_every_proportion_from_its_own():
    rng = np.random.default_rng(0)
    resp = rng.dirichlet(np.ones(4), size=len(X))
    params, noise_weight = reference_noise.m_step(X, resp, "VVV")
    np.testing.assert_allclose(params.weights, resp[:, :3].mean(axis=0), rtol=1e-14)
    assert noise_weight == pytest.approx(resp[:, 3].mean(), rel=1e-14)
    # the Gaussians' means and covariances are those of the Gaussian columns alone
    alone = reference.m_step(X, np.log(resp[:, :3]), "full", reg_covar=0.0)
    np.testing.assert_allclose(params.means, alone.means, rtol=1e-12)
    np.testing.assert_allclose(params.covariances, alone.covariances, rtol=1e-12)


@pytest.mark.parametrize("row", EM, ids=lambda r: f"{r['model']}-G{r['G']}")
def test_em_from_mclusts_start_gives_mclusts_fit(row):
    model, groups, vinv = row["model"], int(row["G"]), float(row["Vinv"])
    assert row["mclust_version"] == "6.0.0"
    assert vinv == reference_noise.hypvol(X, reciprocal=True)
    history = []
    params, noise_weight, loglik, n_iter = reference_noise.fit(
        X, start_resp(groups), model, vinv, tol=1e-11, max_iter=10_000, history=history
    )
    # mclust's log-likelihood (it agrees to ~1e-15), proportions and iteration count
    assert loglik == pytest.approx(float(row["loglik"]), rel=1e-10)
    assert noise_weight == pytest.approx(float(row["noise_pro"]), rel=1e-9)
    pro = np.array([float(p) for p in row["pro"].split(";")])
    np.testing.assert_allclose(params.weights, pro, rtol=1e-9)
    assert abs(n_iter - int(row["iterations"])) <= 1
    # its BIC: 2 loglik - df log n, the noise counting two parameters
    df = mclust_parameter_count(model, X.shape[1], groups)
    assert df == int(row["df"])
    assert 2 * loglik - df * np.log(len(X)) == pytest.approx(float(row["bic"]), rel=1e-10)
    # its classification: the final E-step's most probable column, noise -1 (mclust's 0)
    log_resp, final = reference_noise.e_step(X, params, noise_weight, vinv, model)
    assert final == loglik
    labels = reference_noise.labels(log_resp)
    mclust_labels = np.array([int(r[f"{model}_G{groups}"]) for r in CLASSIFICATION])
    np.testing.assert_array_equal(labels, mclust_labels - 1)
    assert np.sum(labels == -1) == int(row["n_noise"])
    # EM never lowers the log-likelihood
    assert len(history) == n_iter and history[-1] == loglik
    assert np.all(np.diff(history) >= -1e-12 * abs(loglik))
