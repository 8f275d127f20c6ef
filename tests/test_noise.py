"""mclust's noise component in jaxgmm's EM (``noise=``; jaxgmm/_noise.py): against the NumPy
reference (jaxgmm/reference_noise.py), against R's mclust from its own start (figures recorded
by tests/data/mclust/make_noise_reference.R; the tests never need R), and through the
estimator, saved models, checkpoints and bad input."""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import read_matrix

import jaxgmm
from jaxgmm import reference, reference_noise
from jaxgmm._noise import default_noise_mask, hypvol
from jaxgmm._params import Noise

DATA = Path(__file__).parent / "data" / "mclust"
X = read_matrix(DATA / "faithful_noise_data.csv")
with open(DATA / "faithful_noise_start.csv") as f:
    START = list(csv.DictReader(f))
with open(DATA / "faithful_noise_em.csv") as f:
    EM = list(csv.DictReader(f))
with open(DATA / "faithful_noise_classification.csv") as f:
    CLASSIFICATION = list(csv.DictReader(f))
MASK = np.array([row["init_noise"] == "TRUE" for row in START])
JAXGMM_NAME = {"VVV": "full", "EEE": "tied", "VVI": "diag", "EII": "EII"}


def test_the_default_mask_is_the_rule_the_recorded_mask_was_made_by():
    """noise=True: the sparsest 15% by the distance to the 5th nearest neighbour, standardised
    (the R script's rule, so its mask comes out exactly)."""
    np.testing.assert_array_equal(default_noise_mask(X), MASK)


@pytest.mark.parametrize("row", EM, ids=lambda r: f"{r['model']}-G{r['G']}")
def test_from_mclusts_start_jaxgmm_gives_mclusts_fit(row, x64):
    """init="hc" with mclust's initial noise mask is mclust's start (hc on the other rows).
    jaxgmm's start is mclust's first M-step, so mclust's n M-steps are jaxgmm's n - 1
    iterations: then log-likelihood, proportions, BIC and classification are mclust's."""
    model, groups = row["model"], int(row["G"])
    settings = dict(
        covariance_type=JAXGMM_NAME[model],
        noise=MASK,
        tol=0.0,
        reg_covar=0.0,
        max_iter=int(row["iterations"]) - 1,
    )
    result = jaxgmm.fit(jax.random.key(0), X, groups, init="hc", **settings)
    # the lower bound of the last iteration belongs to the parameters before its M-step: mclust's
    # previous iteration, which its tolerance (1e-11 relative) leaves within 1e-10
    assert float(result.lower_bound) * len(X) == pytest.approx(float(row["loglik"]), rel=1e-10)
    assert float(result.params.noise.weight) == pytest.approx(float(row["noise_pro"]), rel=1e-9)
    pro = np.array([float(p) for p in row["pro"].split(";")])
    np.testing.assert_allclose(result.params.weights, pro, rtol=1e-9)
    assert np.exp(-float(result.params.noise.log_density)) == pytest.approx(float(row["hypvol"]))
    assert np.all(np.diff(np.asarray(result.lower_bounds)) > 0)  # EM climbs

    gmm = jaxgmm.GaussianMixture(groups, init_params="hc", **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "did not converge": tol=0 runs max_iter
        gmm.fit(X)
    # mclust reports -BIC, with 2 parameters more for the noise
    assert gmm._n_parameters() == int(row["df"])
    assert -gmm.bic(X) == pytest.approx(float(row["bic"]), rel=1e-10)
    mclust_labels = np.array([int(r[f"{model}_G{groups}"]) for r in CLASSIFICATION])
    np.testing.assert_array_equal(gmm.predict(X), mclust_labels - 1)  # noise: 0 -> -1


def _start(rng, covariance_type, n_components, n_features):
    """Parameters of a model as ``reference.Params``, valid for any model: the reference's
    M-step from random responsibilities of random data."""
    data = rng.normal(size=(60, n_features)) * np.array([1.0, 2.0, 0.5])[:n_features]
    resp = rng.dirichlet(np.ones(n_components), size=60)
    return reference.m_step(data, np.log(resp), covariance_type, reg_covar=0.1)


def _with_noise(params: reference.Params, noise_weight: float, log_density: float, model):
    """jaxgmm's parameters with a noise component, from the reference's Gaussians."""
    gaussians = jaxgmm.params_from_covariances(
        params.weights * (1 - noise_weight),
        params.means,
        params.covariances,
        covariance_type=model,
    )
    return gaussians._replace(noise=Noise(jnp.asarray(noise_weight), jnp.asarray(log_density)))


@pytest.mark.parametrize(
    "covariance_type",
    ["full", "tied", "diag", "spherical", "EII", "EEI", "EVI", "EEV", "EVV", "VEV"],
)
def test_em_iterations_equal_the_reference(covariance_type, x64):
    """Five iterations from the same parameters: the lower bound of each and every parameter
    after them to 1e-10 (float64); the shared covariances divide by the Gaussians' mass."""
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(size=(70, 3)), rng.uniform(-6, 6, size=(20, 3))])
    start = _start(rng, covariance_type, 3, 3)
    noise_weight, log_density = 0.2, -np.log(hypvol(data))
    result = jaxgmm.fit(
        jax.random.key(0),
        data,
        3,
        covariance_type=covariance_type,
        init=_with_noise(start, noise_weight, log_density, covariance_type),
        noise=True,
        max_iter=5,
        tol=0.0,
        reg_covar=0.0,
    )
    params = start._replace(weights=start.weights * (1 - noise_weight))
    bounds = []
    for _ in range(5):
        log_resp, loglik = reference_noise.e_step(
            data, params, noise_weight, np.exp(log_density), covariance_type
        )
        bounds.append(loglik / len(data))
        params, noise_weight = reference_noise.m_step(data, np.exp(log_resp), covariance_type)
    np.testing.assert_allclose(result.lower_bounds, bounds, rtol=1e-10)
    assert np.all(np.diff(bounds) > 0)
    np.testing.assert_allclose(result.params.weights, params.weights, rtol=1e-10)
    assert float(result.params.noise.weight) == pytest.approx(noise_weight, rel=1e-10)
    np.testing.assert_allclose(result.params.means, params.means, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.params.covariances, params.covariances, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_expanded_statistics_and_weights_as_repeated_rows(x64, covariance_type):
    """The expanded form's noise column equals the exact form's (tied: its one precision's
    quadratic term, shared by the Gaussians but not by the noise); an integer sample weight
    acts as repeating the row, the noise component's weight included."""
    rng = np.random.default_rng(2)
    data = np.concatenate([rng.normal(size=(80, 2)) * 0.5, rng.uniform(-5, 5, size=(20, 2))])
    counts = rng.integers(1, 3, size=len(data))
    start = _start(rng, covariance_type, 2, 2)
    start = _with_noise(start, 0.1, -np.log(hypvol(data)), covariance_type)
    common = dict(init=start, noise=True, max_iter=8, tol=0.0, covariance_type=covariance_type)
    exact = jaxgmm.fit(jax.random.key(0), data, 2, statistics="exact", **common)
    expanded = jaxgmm.fit(jax.random.key(0), data, 2, statistics="expanded", **common)
    for a, b in zip(
        jax.tree_util.tree_leaves(exact.params),
        jax.tree_util.tree_leaves(expanded.params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    weighted = jaxgmm.fit(jax.random.key(0), data, 2, sample_weight=counts, **common)
    repeated = jaxgmm.fit(jax.random.key(0), np.repeat(data, counts, axis=0), 2, **common)
    for a, b in zip(
        jax.tree_util.tree_leaves(weighted.params),
        jax.tree_util.tree_leaves(repeated.params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


def test_estimator_labels_noise_minus_one_and_round_trips(tmp_path):
    """float32 as users fit: predict_proba has the noise column last, predict labels it -1,
    score_samples counts it; a saved model reads back equal; sample() refuses."""
    data = X.astype(np.float32)
    gmm = jaxgmm.GaussianMixture(2, noise=True, n_init=2, random_state=0).fit(data)
    proba = gmm.predict_proba(data)
    assert proba.shape == (len(data), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    labels = gmm.predict(data)
    np.testing.assert_array_equal(labels, np.where(proba.argmax(1) == 2, -1, proba.argmax(1)))
    # most of the 60 uniform points (the last rows) end as noise, few of faithful's
    assert np.mean(labels[272:] == -1) > 0.6 and np.mean(labels[:272] == -1) < 0.1
    assert gmm.weights_.sum() + gmm.noise_weight_ == pytest.approx(1.0, abs=1e-6)
    params = reference.Params(gmm.weights_, gmm.means_, gmm.covariances_)
    _, total = reference_noise.e_step(
        X, params, gmm.noise_weight_, np.exp(gmm.noise_log_density_), "full"
    )
    assert float(np.sum(gmm.score_samples(data), dtype=np.float64)) == pytest.approx(
        total, rel=1e-5
    )
    gmm.save(tmp_path / "m.npz")
    loaded = jaxgmm.load(tmp_path / "m.npz")
    assert loaded.noise_weight_ == gmm.noise_weight_
    np.testing.assert_array_equal(loaded.predict(data), labels)
    with pytest.raises(ValueError, match="noise component"):
        gmm.sample(5)


@pytest.mark.filterwarnings("ignore:the best model")
def test_selection_counts_the_noise_parameters():
    result = jaxgmm.select(X, [1, 2], ["full"], noise=True, n_init=1, random_state=0)
    assert [row["n_parameters"] for row in result.rows] == [7, 13]  # 5 and 11, plus 2
    assert result.best.noise_weight_ is not None


def test_checkpoint_resumes_a_fit_with_noise(tmp_path):
    path = tmp_path / "fit.ckpt"
    common = dict(noise=True, tol=0.0, checkpoint=path)
    first = jaxgmm.fit(jax.random.key(3), X.astype(np.float32), 2, max_iter=5, **common)
    # a longer fit with the same settings would be another fit: resume exactly this one
    again = jaxgmm.fit(jax.random.key(3), X.astype(np.float32), 2, max_iter=5, **common)
    assert float(again.params.noise.weight) == float(first.params.noise.weight)
    assert path.exists()


@pytest.mark.parametrize(
    "noise, data, message",
    [
        (np.ones(len(X), bool), X, "every row"),
        (np.zeros(5, bool), X, "shape"),
        (np.zeros(len(X)), X, "boolean mask"),
        (True, np.column_stack([X[:, 0], np.ones(len(X))]), "positive volume"),
    ],
)
def test_bad_noise_is_refused_by_name(noise, data, message):
    with pytest.raises(ValueError, match=message):
        jaxgmm.fit(jax.random.key(0), data.astype(np.float32), 2, noise=noise)


def test_noise_is_refused_inside_jit():
    f = jax.jit(lambda x: jaxgmm.fit(jax.random.key(0), x, 2, noise=True).lower_bound)
    with pytest.raises(ValueError, match="inside jit"):
        f(jnp.asarray(X, jnp.float32))
