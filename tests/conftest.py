"""Shared fixtures: JAX's 64-bit mode per test, never at import; a compiled-program cache of
the test session's own."""

from __future__ import annotations

import os

# Compilation is most of the suite's time. The tests run XLA's CPU backend with its older
# fusion emitters and without LLVM's optimisations, which halves it, and compile each program in
# one piece (the workers of pytest-xdist already fill the cores: the suite 7:32 -> 6:17 on a
# 2-core machine, with one test's data cut to 8,000 rows); the results differ from the
# defaults' only in rounding, on which no test may depend. The subprocess tests of several host
# devices add their flag to these (test_scale.with_devices); the whole suite compiles with XLA's
# defaults when XLA_FLAGS is set before it starts. Set before JAX starts its backend.
os.environ.setdefault(
    "XLA_FLAGS",
    "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"
    " --xla_cpu_parallel_codegen_split_count=1",
)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def program_cache(tmp_path_factory):
    """jaxgmm's disk cache of compiled programs in a folder of this test run (inherited by the
    command-line subprocesses), so that no run depends on what an earlier one left; shared by
    the run's pytest-xdist workers, so that a program one compiled the others load."""
    previous = os.environ.get("JAXGMM_CACHE_DIR")
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # each worker's folder is in the run's
        base = base.parent
    folder = base / "programs"
    folder.mkdir(mode=0o700, exist_ok=True)
    os.environ["JAXGMM_CACHE_DIR"] = str(folder)
    yield
    if previous is None:
        os.environ.pop("JAXGMM_CACHE_DIR", None)
    else:
        os.environ["JAXGMM_CACHE_DIR"] = previous


@pytest.fixture
def x64():
    """Run the test with JAX's 64-bit mode on, and restore the previous mode afterwards."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


# scikit-learn's fixtures, which its test modules run here read (test_sklearn_*suite.py)


@pytest.fixture
def global_dtype():
    """scikit-learn's fixture: float64 by default."""
    return np.float64


@pytest.fixture
def global_random_seed():
    """scikit-learn's fixture: 42 by default."""
    return 42
