"""Every matrix product jaxgmm compiles states its precision (``jaxgmm._matmul_precision``).

On NVIDIA GPUs from Ampere on, a float32 product at JAX's default precision runs in TF32 (10-bit
mantissa). A CPU computes the same whatever the precision, so no numerical test here can see
the difference: these tests read the programs themselves, as lowered (StableHLO), and fail if
any ``dot_general`` in them runs at the default precision.
"""

from __future__ import annotations

import re

import jax
import numpy as np
import pytest
from helpers import ENGINE_TYPES, blobs

import jaxgmm
from jaxgmm import _programs

DOT = re.compile(r"stablehlo\.dot_general[^\n]*")


def precisions_of(text: str) -> list[str]:
    """The precision of every product in a lowered program ("DEFAULT" when not stated)."""
    found = []
    for line in DOT.findall(text):
        match = re.search(r"precision = \[(\w+), (\w+)\]", line)
        found.append("DEFAULT" if match is None else f"{match[1]},{match[2]}")
    return found


@pytest.fixture
def lowered(monkeypatch):
    """The text of every program jaxgmm lowers while the test runs (no program cached)."""
    texts = []
    original = _programs.Program.lower

    def recording(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        texts.append((self.name, result.as_text()))
        return result

    monkeypatch.setattr(_programs.Program, "lower", recording)
    monkeypatch.setenv("JAXGMM_CACHE_DIR", "")
    _programs.clear()
    yield texts
    _programs.clear()


def assert_all(texts, expected: str) -> None:
    assert texts, "no program was lowered"
    counted = 0
    for name, text in texts:
        precisions = precisions_of(text)
        wrong = [p for p in precisions if p != expected]
        assert not wrong, f"{name}: products at {sorted(set(wrong))}, expected {expected}"
        counted += len(precisions)
    assert counted > 0, "no matrix product found: the pattern no longer matches StableHLO"


def data(n_per=80):
    return blobs(n_per=n_per).astype(np.float32)


@pytest.mark.parametrize("statistics", ["exact", "expanded"])
@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_every_product_of_a_fit_is_full_float32(lowered, covariance_type, statistics):
    # 21,000 rows: the specialised programs (start, iterations, finish), not the small-fit one
    X = data(n_per=7_000)
    jaxgmm.fit(
        jax.random.key(0), X, 3, covariance_type=covariance_type, statistics=statistics, max_iter=2
    )
    assert_all(lowered, "HIGHEST,HIGHEST")


def test_small_fits_selection_and_the_estimator_are_full_float32(lowered):
    X = data()
    jaxgmm.select(X, [1, 2], n_init=2, random_state=0)
    model = jaxgmm.GaussianMixture(2, random_state=0).fit(X)
    model.predict_proba(X)
    assert_all(lowered, "HIGHEST,HIGHEST")


def test_the_fast_mode_is_what_the_user_asked_for_and_compiled_apart(lowered):
    X = data()
    jaxgmm.GaussianMixture(2, random_state=0, matmul_precision="high").fit(X).score(X)
    assert_all(lowered, "HIGH,HIGH")
    lowered.clear()
    jaxgmm.GaussianMixture(2, random_state=0).fit(X)  # same shapes: a program of its own
    assert_all(lowered, "HIGHEST,HIGHEST")


def test_pure_functions_and_a_fit_traced_by_the_caller():
    X = data()
    params = jaxgmm.fit(jax.random.key(0), X, 2).params
    texts = [
        ("e_step", jax.jit(lambda X, p: jaxgmm.e_step(X, p, covariance_type="full")).lower),
        ("m_step", jax.jit(lambda X, r: jaxgmm.m_step(X, r, covariance_type="full")).lower),
        ("log_prob", jax.jit(lambda X, p: jaxgmm.log_prob(X, p, covariance_type="full")).lower),
    ]
    resp = np.full((len(X), 2), 0.5, np.float32)
    arguments = {"e_step": (X, params), "m_step": (X, resp), "log_prob": (X, params)}
    programs = [(name, lower(*arguments[name]).as_text()) for name, lower in texts]
    traced = jax.jit(lambda key, X: jaxgmm.fit(key, X, 2, max_iter=3).params.means)
    programs.append(("fit under jit", traced.lower(jax.random.key(0), X).as_text()))
    assert_all(programs, "HIGHEST,HIGHEST")
    fast = jax.jit(
        lambda X, p: jaxgmm.log_prob(X, p, covariance_type="full", matmul_precision="default")
    )
    assert_all([("log_prob, default", fast.lower(X, params).as_text())], "DEFAULT,DEFAULT")


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        jaxgmm.fit(jax.random.key(0), data(), 2, matmul_precision="tf32")
    with pytest.raises(ValueError, match="matmul_precision must be one of"):
        jaxgmm.GaussianMixture(2, matmul_precision="fast").fit(data())
