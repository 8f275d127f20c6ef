"""Time to a first result: shape buckets, one program for every model of a small fit, the
compiled-programs cache (bounded in memory, kept on disk), and what they must not change."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import ENGINE_TYPES, assert_close, blobs, random_weights, starting_params

import jaxgmm
from jaxgmm import _programs, _shapes

ROOT = Path(__file__).resolve().parents[1]


def _compiles(caplog, call) -> list[str]:
    with jax.log_compiles(True), caplog.at_level(logging.WARNING):
        caplog.clear()
        call()
    return [r.getMessage() for r in caplog.records if "Compiling" in r.getMessage()]


# -- what the small-fit programs must not change -----------------------------------------------


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("covariance_type", ENGINE_TYPES)
def test_small_fit_equals_the_specialised_fit(covariance_type, monkeypatch):
    """The small path (rows and K padded, every model as dense covariances in one program)
    gives the specialised, unpadded fit, from the same start, with sample weights."""
    X = blobs()
    p = starting_params(X, 3, covariance_type)
    init = jaxgmm.params_from_covariances(*p, covariance_type=covariance_type)
    kwargs = dict(
        covariance_type=covariance_type,
        init=init,
        max_iter=15,
        tol=0.0,
        sample_weight=random_weights(len(X)),
    )
    small = jaxgmm.fit(jax.random.key(0), X, 3, **kwargs)
    monkeypatch.setattr("jaxgmm._fit.is_small", lambda n_rows, n_features: False)
    specialised = jaxgmm.fit(jax.random.key(0), X, 3, **kwargs)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        got, expected = getattr(small.params, name), getattr(specialised.params, name)
        assert np.shape(got) == np.shape(expected), name
        assert_close(got, expected, 1e-10, name)
    assert_close(small.lower_bounds, specialised.lower_bounds, 1e-12, "lower bounds")
    np.testing.assert_array_equal(small.restarts.degenerate, specialised.restarts.degenerate)


@pytest.mark.usefixtures("x64")
def test_small_select_equals_the_specialised_select(monkeypatch):
    X = blobs(n_per=40)
    kwargs = dict(n_init=2, random_state=0)
    small = jaxgmm.select(X, [1, 2, 3], **kwargs)
    monkeypatch.setattr("jaxgmm._fit.is_small", lambda n_rows, n_features: False)
    specialised = jaxgmm.select(X, [1, 2, 3], **kwargs)
    for a, b in zip(small.rows, specialised.rows, strict=True):
        assert a["covariance_type"] == b["covariance_type"]
        assert a["n_components"] == b["n_components"]
        assert a["bic"] == pytest.approx(b["bic"], rel=1e-9), a
        assert a["icl"] == pytest.approx(b["icl"], rel=1e-9), a
        assert (a["degenerate"], a["n_iter"]) == (b["degenerate"], b["n_iter"]), a


@pytest.mark.usefixtures("x64")
def test_dense_programs_pooled_covariance_is_each_models_projection():
    """A start's covariance for an empty component, the data's, as the dense program takes it
    for each model (by its family: the matrix, its diagonal or its mean variance), equals the
    model's own projection of it (inner loops included), which it stands in for."""
    from jaxgmm._covariance import ALL_MODELS, Full

    a = np.random.default_rng(0).normal(size=(4, 4))
    data_cov = jnp.asarray(a @ a.T + np.eye(4))
    for index, unit in enumerate(ALL_MODELS.units):
        got = ALL_MODELS.bound(jnp.int32(index)).pooled(data_cov, 3)
        expected = unit.project(Full.pooled(data_cov, 3), jnp.ones(3))
        assert_close(got, expected, 1e-10, unit.name)


def test_padded_shapes():
    assert _shapes.is_small(272, 2) and _shapes.padded_rows(272) == 512
    assert _shapes.padded_rows(3) == _shapes.MIN_ROWS
    assert [_shapes.padded_components(k) for k in (1, 4, 5, 9)] == [4, 4, 8, 16]
    assert not _shapes.is_small(20_000, 2)  # more rows than PADDED_ROWS_MAX
    assert _shapes.is_small(150, 4)  # iris
    assert not _shapes.is_small(10_000, 8)  # 16384 x 8^2 above SMALL_WORK
    assert not _shapes.is_small(200, 24)


# -- compiling less ----------------------------------------------------------------------------


def test_a_new_k_or_model_of_small_data_compiles_nothing(caplog):
    X = jaxgmm.lesson_data()[:150]
    jaxgmm.GaussianMixture(3, covariance_type="tied", random_state=0).fit(X).predict(X)
    for k, covariance_type in ((4, "tied"), (2, "full"), (3, "spherical"), (4, "diag")):

        def fit(k=k, covariance_type=covariance_type):
            model = jaxgmm.GaussianMixture(k, covariance_type=covariance_type, random_state=0)
            model.fit(X[: 120 + 9 * k])  # N changes too, within its bucket
            model.predict_proba(X[:140])

        assert _compiles(caplog, fit) == [], (k, covariance_type)


def test_keys_from_integer_seeds_are_jax_keys():
    from jaxgmm._sklearn_api import key_from

    for seed in (0, 1, 42, 2**31 + 5, 2**32 - 1):
        np.testing.assert_array_equal(
            jax.random.key_data(key_from(seed)), jax.random.key_data(jax.random.key(seed))
        )


def test_fold_in_by_a_kept_program_is_jaxs():
    from jaxgmm._random import fold_in

    for key in (jax.random.key(0), jax.random.key(2**31 + 5), jax.random.key(3, impl="rbg")):
        for data in (0, 1, 65539, 2**32 - 1):
            np.testing.assert_array_equal(
                jax.random.key_data(fold_in(key, data)),
                jax.random.key_data(jax.random.fold_in(key, data)),
            )


# -- the programs cache ----------------------------------------------------------------------


def _maps() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux's /proc")
def test_executables_in_memory_are_bounded_and_released(monkeypatch):
    """A long process meeting many shapes keeps at most max_programs() executables, and an
    evicted one gives its memory back (every executable holds memory mappings of its own)."""
    monkeypatch.setenv("JAXGMM_MAX_PROGRAMS", "4")
    monkeypatch.setenv("JAXGMM_CACHE_DIR", "")
    square = _programs.Program(lambda x: jnp.cumsum(jnp.sin(x) @ x.T, axis=0))
    for n in range(2, 8):  # warm up what any compilation allocates once
        square(jnp.ones((n, n)))
    before = _maps()
    for n in range(8, 48):
        square(jnp.ones((n, n)))
        assert len(_programs._memory) <= 4
    grown = _maps() - before
    # 40 programs kept alive would add hundreds of mappings (measured: ~20 each)
    assert grown < 200, grown


def test_programs_are_loaded_from_disk_by_another_process(tmp_path):
    script = textwrap.dedent("""
        import numpy as np, jaxgmm
        from jaxgmm import _programs
        lowered = []
        original = _programs.Program.lower
        def counting(self, *args, **kwargs):
            lowered.append(self.name)
            return original(self, *args, **kwargs)
        _programs.Program.lower = counting
        model = jaxgmm.GaussianMixture(3, covariance_type="diag", random_state=0)
        model.fit(jaxgmm.lesson_data())
        print(len(lowered), float(model.lower_bound_))
    """)
    env = os.environ | {"JAXGMM_CACHE_DIR": str(tmp_path / "programs")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    (first_lowered, first_bound), (again_lowered, again_bound) = (
        run.stdout.split() for run in runs
    )
    assert int(first_lowered) >= 3 and int(again_lowered) == 0
    assert first_bound == again_bound
    assert list((tmp_path / "programs").glob("*.jaxgmm-program"))


def test_a_program_from_disk_runs_in_a_process_of_several_devices(tmp_path):
    """A program kept on disk runs on one device, also where the process has several (JAX loads
    a serialised executable onto every device unless told which: a second process of a
    several-GPU machine could not run a single fit)."""
    script = textwrap.dedent("""
        import jax, jax.numpy as jnp
        from jaxgmm import _programs
        assert len(jax.devices()) == 4
        double = _programs.Program(lambda x: 2 * x + 1)
        print(double(jnp.arange(3.0)).tolist())
    """)
    flags = os.environ.get("XLA_FLAGS", "")
    env = os.environ | {
        "JAXGMM_CACHE_DIR": str(tmp_path),
        "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=4",
    }
    for _ in range(2):  # the first compiles and stores, the second loads
        run = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stderr[-2000:]
        assert run.stdout.split("\n")[0] == "[1.0, 3.0, 5.0]"
    assert list(tmp_path.glob("*.jaxgmm-program"))


def test_the_programs_that_followed_last_time_are_loaded_ahead(tmp_path, monkeypatch):
    """Each program on disk names the ones needed after it (a fit: start, iterations, finish);
    a process that loads it loads those in a background thread, and uses them."""
    monkeypatch.setenv("JAXGMM_CACHE_DIR", str(tmp_path))
    _programs.clear()
    X = np.random.default_rng(3).normal(size=(40, 2)).astype(np.float32)

    def fitted():
        model = jaxgmm.GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
        return model.means_

    first = fitted()
    assert list(tmp_path.glob("*.next"))
    loaded_by = []
    original = _programs._load

    def recording(path):
        loaded_by.append(threading.current_thread().name)
        return original(path)

    monkeypatch.setattr(_programs, "_load", recording)
    _programs.clear()  # a new process, as far as the programs go
    np.testing.assert_array_equal(fitted(), first)
    assert any(name.startswith("jaxgmm-load") for name in loaded_by), loaded_by
    assert not _programs._ahead  # every program loaded ahead was used
    _programs.clear()


def test_a_fits_programs_are_compiled_ahead_once_each(tmp_path, monkeypatch):
    """A new fit lowers its iterations' and its finish's programs while its start compiles,
    and compiles them in background threads (``Program.compile_ahead``): each program is
    lowered and compiled once, so the ones compiled ahead are the ones the fit calls."""
    monkeypatch.setenv("JAXGMM_CACHE_DIR", str(tmp_path))
    _programs.clear()
    lowered, compiled_by = [], []
    lower, compile_ = _programs.Program.lower, _programs._compile

    def recording_lower(self, *args, **kwargs):
        lowered.append(self.name.rpartition(".")[2])
        return lower(self, *args, **kwargs)

    def recording_compile(*args):
        compiled_by.append(threading.current_thread().name)
        return compile_(*args)

    monkeypatch.setattr(_programs.Program, "lower", recording_lower)
    monkeypatch.setattr(_programs, "_compile", recording_compile)
    X = np.random.default_rng(4).normal(size=(40, 2)).astype(np.float32)
    jaxgmm.fit(jax.random.key(0), X, 2, covariance_type="diag")
    assert sorted(lowered) == ["advance", "finish", "start"]
    assert len(compiled_by) == 3
    assert all(name.startswith("jaxgmm-compile") for name in compiled_by), compiled_by
    assert not _programs._compiling  # every program compiled ahead was used
    _programs.clear()


def test_a_program_called_from_threads_at_once_is_compiled_once(monkeypatch):
    """The bootstrap calls a program from one thread per shard of its replicates: the first
    call compiles it, the others wait for that executable."""
    monkeypatch.setenv("JAXGMM_CACHE_DIR", "")
    compiled, compile_ = [], _programs._compile
    started = threading.Barrier(3)

    def slow_compile(*args):
        compiled.append(args)
        threading.Event().wait(0.3)  # the other threads call meanwhile
        return compile_(*args)

    monkeypatch.setattr(_programs, "_compile", slow_compile)
    shifted = _programs.Program(lambda x, y: jnp.cumsum(x) + y)
    results = [None] * 3

    def call(i):
        started.wait()
        results[i] = shifted(jnp.arange(5.0), jnp.float32(i))

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(compiled) == 1
    for i, result in enumerate(results):
        np.testing.assert_array_equal(result, np.cumsum(np.arange(5.0)) + i)
    assert not _programs._obtaining


def test_a_damaged_cache_file_is_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXGMM_CACHE_DIR", str(tmp_path))
    double = _programs.Program(lambda x: 2 * x + 1)
    x = jnp.arange(3.0)
    double(x)
    (path,) = tmp_path.glob("*.jaxgmm-program")
    path.write_bytes(b"not an executable")
    _programs.clear()
    np.testing.assert_array_equal(double(x), 2 * x + 1)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_cache_folder_others_may_write_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("JAXGMM_CACHE_DIR", str(shared))
    assert _programs.cache_dir() is None
    monkeypatch.setenv("JAXGMM_CACHE_DIR", "")
    assert _programs.cache_dir() is None
    monkeypatch.setenv("JAXGMM_CACHE_DIR", str(tmp_path / "mine"))
    assert _programs.cache_dir() == tmp_path / "mine"


def test_cpu_compile_options_are_used_and_an_unknown_one_is_dropped(monkeypatch):
    """Programs of small fits compile with ``CPU_OPTIONS`` where jaxlib knows them, and without
    them, with the same result, where it does not (an older or newer jaxlib)."""
    monkeypatch.setenv("JAXGMM_CACHE_DIR", "")
    monkeypatch.setattr(_programs, "_cpu_options_known", [True])
    x = jnp.arange(5.0)

    def affine(x):  # programs are named by their functions: one name each
        return 3 * x - 1

    def shifted(x):
        return x + 7

    np.testing.assert_array_equal(_programs.Program(affine)(x, small=True), 3 * x - 1)
    assert _programs._cpu_options_known == [True]  # this jaxlib knows them
    monkeypatch.setattr(_programs, "CPU_OPTIONS", {"xla_cpu_no_such_option": False})
    np.testing.assert_array_equal(_programs.Program(shifted)(x, small=True), x + 7)
    assert _programs._cpu_options_known == [False]
