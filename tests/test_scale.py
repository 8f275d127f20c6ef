"""Scale: several devices (in a subprocess with 4 CPU devices), blocks, float32 accumulation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import jaxgmm

ROOT = Path(__file__).resolve().parents[1]


def with_devices(devices: int) -> dict:
    """The environment with ``devices`` CPU devices, keeping the suite's quick-compilation
    XLA flags (conftest.py)."""
    flags = os.environ.get("XLA_FLAGS", "")
    return os.environ | {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count={devices}"}


def run_python(code: str, devices: int = 4, timeout: int = 600) -> str:
    env = with_devices(devices)
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_sharded_fit_equals_one_device():
    out = run_python("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        import jaxgmm
        assert len(jax.devices()) == 4
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(size=(101, 3)) + c
                            for c in ([0, 0, 0], [4, 4, 0], [0, 5, 5])])  # 303 rows: padded
        w = rng.uniform(0.5, 2, len(X))
        worst = 0.0
        # both kinds of start (a start is the same code for every family), a noise component,
        # and the statistics of a dense, a shared and a diagonal covariance (spherical's are
        # diag's, fewer of them: the sharded pass sums whatever statistics a family has)
        cases = [("full", "kmeans", None), ("diag", "random", None),
                 ("tied", "kmeans", np.arange(len(X)) % 10 == 0)]
        for ct, init, noise in cases:
            kw = dict(covariance_type=ct, n_init=2, init=init, sample_weight=w,
                      block_size=40, tol=1e-8, noise=noise)
            one = jaxgmm.fit(jax.random.key(1), X, 3, **kw)
            four = jaxgmm.fit(jax.random.key(1), X, 3, devices=jax.devices(), **kw)
            assert (np.asarray(one.restarts.n_iter) == np.asarray(four.restarts.n_iter)).all()
            for a, b in zip(jax.tree_util.tree_leaves(one.restarts.params),
                            jax.tree_util.tree_leaves(four.restarts.params)):
                a, b = np.asarray(a), np.asarray(b)
                worst = max(worst, np.max(np.abs(a - b)) / np.max(np.abs(b)))
        holes = np.where(rng.uniform(size=X.shape) < 0.2, np.nan, X)  # missing values
        holes[np.isnan(holes).all(axis=1), 0] = 0.0
        kw = dict(n_init=2, sample_weight=w, block_size=40, tol=1e-8, missing="em")
        one = jaxgmm.fit(jax.random.key(1), holes, 3, **kw)
        four = jaxgmm.fit(jax.random.key(1), holes, 3, devices=jax.devices(), **kw)
        for a, b in zip(jax.tree_util.tree_leaves(one.restarts.params),
                        jax.tree_util.tree_leaves(four.restarts.params)):
            worst = max(worst, np.max(np.abs(a - b)) / np.max(np.abs(b)))
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("rows",))
        est = jaxgmm.GaussianMixture(3, random_state=0, devices=mesh).fit(X)
        ref = jaxgmm.GaussianMixture(3, random_state=0).fit(X)
        worst = max(worst, np.max(np.abs(est.means_ - ref.means_)) / np.max(np.abs(ref.means_)))
        print(worst)
    """)
    assert float(out.split()[-1]) < 1e-10


def test_sharded_fit_of_many_features_on_few_cores_does_not_hang():
    # jaxlib's batched LAPACK kernels (trsm, potrf, syevd) split their batch over XLA's intra-op
    # thread pool and wait for it; with one program per CPU device, as many devices as cores
    # fill that pool with waiting threads and the fit hangs (seen from D = 32 on 2 cores). The
    # sharded programs must not call them.
    code = """
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        import jaxgmm
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(size=(200, 40)) + 3 * c for c in range(3)])
        worst = 0.0
        for ct in ["full", "tied"]:
            kw = dict(covariance_type=ct, n_init=2, max_iter=4, tol=0.0)
            one = jaxgmm.fit(jax.random.key(0), X, 3, **kw)
            two = jaxgmm.fit(jax.random.key(0), X, 3, devices=jax.devices(), **kw)
            same = np.asarray(one.restarts.degenerate) == np.asarray(two.restarts.degenerate)
            assert same.all()
            for a, b in zip(jax.tree_util.tree_leaves(one.restarts.params),
                            jax.tree_util.tree_leaves(two.restarts.params)):
                a, b = np.asarray(a), np.asarray(b)
                worst = max(worst, np.max(np.abs(a - b)) / np.max(np.abs(b)))
        print(worst)
    """
    try:
        out = run_python(code, devices=min(os.cpu_count() or 2, 8), timeout=240)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            "a sharded fit with D = 40 hung (LAPACK in the sharded program)"
        ) from None
    assert float(out.split()[-1]) < 1e-10


RESUMABLE_FIT = """
import sys
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxgmm
rng = np.random.default_rng(0)
X = rng.normal(size=(8000, 6)) + rng.integers(0, 3, size=(8000, 1)) * 1.5
chunks = []
result = jaxgmm.fit(jax.random.key(0), X, 6, n_init=4, init="random", max_iter=300, tol=0.0,
                    checkpoint=sys.argv[1] if sys.argv[1] != "-" else None,
                    callback=chunks.append)
np.save(sys.argv[2], np.asarray(result.restarts.params.means))
print(len(chunks), int(result.n_iter))
"""


def test_killed_fit_resumes_from_its_checkpoint(tmp_path):
    import signal
    import time

    import numpy as np

    script = tmp_path / "fit.py"
    script.write_text(RESUMABLE_FIT)
    checkpoint = tmp_path / "fit.ckpt"
    run = [sys.executable, str(script), str(checkpoint)]
    victim = subprocess.Popen([*run, str(tmp_path / "killed.npy")], cwd=ROOT)
    deadline = time.monotonic() + 300
    steps = 0
    while time.monotonic() < deadline and victim.poll() is None:
        if checkpoint.exists():
            try:
                with np.load(checkpoint) as saved:
                    steps = len(saved["traces"])
            except (OSError, ValueError, KeyError):
                pass  # never seen half-written (atomic rename), but be safe
            if steps >= 30:
                break
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert 30 <= steps < 300, steps
    assert not (tmp_path / "killed.npy").exists()
    resumed = subprocess.run(
        [*run, str(tmp_path / "resumed.npy")], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr
    chunks_after_resume = int(resumed.stdout.split()[0])
    assert chunks_after_resume <= (300 - steps) // 10 + 1  # it continued, it did not restart
    fresh = subprocess.run(
        [sys.executable, str(script), "-", str(tmp_path / "fresh.npy")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr
    np.testing.assert_allclose(
        np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "fresh.npy"), rtol=0, atol=1e-12
    )


def test_checkpoint_of_another_fit_is_refused(tmp_path):
    import jax
    import numpy as np
    import pytest

    import jaxgmm

    X = jaxgmm.lesson_data().astype(np.float32)
    path = tmp_path / "c.ckpt"
    jaxgmm.fit(jax.random.key(0), X, 2, checkpoint=path)
    again = jaxgmm.fit(jax.random.key(0), X, 2, checkpoint=path)  # same fit: resumes, done
    assert int(again.n_iter) >= 1
    with pytest.raises(ValueError, match="belongs to another fit"):
        jaxgmm.fit(jax.random.key(0), X + 1, 2, checkpoint=path)
    with pytest.raises(ValueError, match="belongs to another fit"):
        jaxgmm.fit(jax.random.key(0), X, 2, tol=1e-5, checkpoint=path)
    # given starting parameters are part of the fit's fingerprint (arrays, not JSON)
    given = jaxgmm.initialize(jax.random.key(1), X, 2)
    other = tmp_path / "given.ckpt"
    first = jaxgmm.fit(jax.random.key(0), X, 2, init=given, checkpoint=other)
    again = jaxgmm.fit(jax.random.key(0), X, 2, init=given, checkpoint=other)
    np.testing.assert_allclose(again.params.means, first.params.means, atol=1e-6)  # float32
    moved = given._replace(means=given.means + 0.1)
    with pytest.raises(ValueError, match="belongs to another fit"):
        jaxgmm.fit(jax.random.key(0), X, 2, init=moved, checkpoint=other)


def test_first_ctrl_c_saves_the_best_so_far_and_exits_130(tmp_path):
    import json
    import signal
    import time

    import numpy as np

    rng = np.random.default_rng(0)
    data = tmp_path / "data.npy"
    np.save(data, rng.normal(size=(100_000, 4)) + rng.integers(0, 4, size=(100_000, 1)))
    out = tmp_path / "out"
    env = os.environ | {"JAXGMM_CACHE_DIR": ""}
    cli = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jaxgmm",
            "fit",
            str(data),
            "-k",
            "5",
            "--max-iter",
            "100000",
            "--tol",
            "0",
            "--init",
            "random",
            "--n-init",
            "2",
            "--progress",
            "--no-plots",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until a first chunk of iterations has been reported, then press Ctrl-C once
    seen = ""
    deadline = time.monotonic() + 300
    while "iterations" not in seen and time.monotonic() < deadline:
        seen += cli.stderr.read(1)
    cli.send_signal(signal.SIGINT)
    stdout, stderr = cli.communicate(timeout=300)
    assert cli.returncode == 130, (stdout, seen + stderr)
    assert "interrupted" in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] is True
    assert 0 < summary["n_iter"] < 100000
    assert (out / "model.npz").exists()


def _three_clusters(n, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)) + rng.integers(0, 3, size=(n, 1)) * 2.0


def test_streamed_fit_of_a_memmap_equals_the_in_memory_fit(tmp_path, x64):
    import jax
    import numpy as np
    from helpers import assert_close

    import jaxgmm

    X = _three_clusters(5003)
    np.save(tmp_path / "x.npy", X)
    data = np.load(tmp_path / "x.npy", mmap_mode="r")
    for covariance_type in ("full", "spherical"):
        init = jaxgmm.initialize(
            jax.random.key(0),
            X,
            3,
            covariance_type=covariance_type,
            n_init=2,
            init="random_from_data",
        )
        kwargs = dict(covariance_type=covariance_type, n_init=2, init=init, tol=0.0, max_iter=25)
        memory = jaxgmm.fit(jax.random.key(0), X, 3, **kwargs)
        streamed = jaxgmm.fit_stream(jax.random.key(0), data, 3, block_size=700, **kwargs)
        assert_close(streamed.restarts.params.means, memory.restarts.params.means, 1e-10)
        assert_close(
            streamed.restarts.params.covariances, memory.restarts.params.covariances, 1e-10
        )
        assert_close(streamed.restarts.lower_bounds, memory.restarts.lower_bounds, 1e-12)


def test_streamed_fit_with_missing_values_and_the_prior_equals_the_in_memory_fit(x64):
    """missing="em" and prior="default" streamed (the prior's covariance from the first
    pass's sums, the statistics of the missing values' form) give the in-memory fit."""
    import jax
    import numpy as np
    from helpers import assert_close

    import jaxgmm

    X = _three_clusters(3001)
    X[np.random.default_rng(1).uniform(size=X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.5
    init = jaxgmm.initialize(jax.random.key(0), np.nan_to_num(X), 3, n_init=2)
    for kwargs in (dict(missing="em"), dict(missing="em", prior="default")):
        kwargs |= dict(n_init=2, init=init, tol=0.0, max_iter=6)
        memory = jaxgmm.fit(jax.random.key(0), X, 3, **kwargs)
        streamed = jaxgmm.fit_stream(jax.random.key(0), X, 3, block_size=700, **kwargs)
        assert_close(
            streamed.restarts.params.covariances, memory.restarts.params.covariances, 1e-10
        )
        assert_close(streamed.restarts.lower_bounds, memory.restarts.lower_bounds, 1e-12)


def test_streamed_fit_of_blocks_from_a_function():
    import jax
    import numpy as np

    import jaxgmm

    X = _three_clusters(6000).astype(np.float32)
    passes = []

    def blocks():
        passes.append(1)
        return (X[i : i + 1000] for i in range(0, len(X), 1000))

    result = jaxgmm.fit_stream(jax.random.key(0), blocks, 3, n_init=2, subsample=2000)
    centres = np.sort(np.asarray(result.params.means)[:, 0])
    np.testing.assert_allclose(centres, [0.0, 2.0, 4.0], atol=0.15)
    assert len(passes) == 1 + int(result.restarts.n_iter.max())  # first pass + one per iteration


def test_streamed_fit_names_the_first_bad_value():
    import jax
    import numpy as np
    import pytest

    import jaxgmm

    X = _three_clusters(3000).astype(np.float32)
    X[2500, 1] = np.nan
    with pytest.raises(ValueError, match=r"row 2500, column 1.*missing=\"em\""):
        jaxgmm.fit_stream(jax.random.key(0), X, 3, block_size=1000)
    X[2600, 2] = np.inf
    with pytest.raises(ValueError, match=r"1 infinite values .* row 2600, column 2"):
        jaxgmm.fit_stream(jax.random.key(0), X, 3, block_size=1000, missing="em")


def test_cli_streams_an_npy_file(tmp_path):
    import json

    import numpy as np

    np.save(tmp_path / "x.npy", _three_clusters(4000).astype(np.float32))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxgmm",
            "fit",
            str(tmp_path / "x.npy"),
            "-k",
            "3",
            "--stream",
            "--dtype",
            "float32",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"JAXGMM_CACHE_DIR": ""},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["streamed"] and summary["n_samples"] == 4000
    assert len((tmp_path / "out" / "labels.csv").read_text().splitlines()) == 4001


TWO_HOST_WORKER = """
import sys
import jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_enable_x64", True)
process, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=2,
                           process_id=process)
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import jaxgmm
rng = np.random.default_rng(0)
X = rng.normal(size=(400, 3)) + rng.integers(0, 3, size=(400, 1)) * 2.0
mesh = Mesh(np.array(jax.devices()), ("data",))
mine = X[process * 200 : (process + 1) * 200]  # each process reads only its own rows
rows = jax.make_array_from_process_local_data(NamedSharding(mesh, P("data")), mine, X.shape)
result = jaxgmm.fit(jax.random.key(0), rows, 3, n_init=2, devices=mesh)
if process == 0:
    alone = jaxgmm.fit(jax.random.key(0), X, 3, n_init=2)
    # restart by restart (the chosen one may differ when two reach the same optimum)
    difference = np.max(np.abs(np.asarray(result.restarts.params.means)
                               - np.asarray(alone.restarts.params.means)))
    print("processes", jax.process_count(), "devices", len(jax.devices()), "diff", difference)
"""


def test_two_processes_with_jax_distributed(tmp_path):
    """Two hosts simulated by two processes on this machine (2 CPU devices each, gloo
    collectives): each reads half the rows; the fit equals one process's on all rows."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    script = tmp_path / "worker.py"
    script.write_text(TWO_HOST_WORKER)
    env = with_devices(2)
    workers = [
        subprocess.Popen(
            [sys.executable, str(script), str(i), port],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]
    words = next(line for line in outputs[0][0].splitlines() if line.startswith("processes"))
    words = words.split()
    assert words[:4] == ["processes", "2", "devices", "4"]
    assert float(words[-1]) < 1e-10


# --- memory: no array of N x K x D, and one copy of X at most ----------------------------------


def _temp_bytes(lowered) -> int:
    return lowered.compile().memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize(
    "platform, n, d, k",
    [("cpu", 2_000_000, 16, 64), ("gpu", 10_000_000, 32, 64)],  # mid-16 at scale; gpu-large
)
def test_compiled_fit_holds_one_copy_of_the_data_and_blocks(platform, n, d, k):
    """Compiled memory of the programs behind fit, with the block size of ``platform``'s row of
    the block table (the GPU's compiled here on the CPU, so that its shapes are checked before a
    GPU is at hand), float32: the centred copy of X is the only array of X's size; everything
    else is O(block x K x D), and every product of an iteration reads a whole block."""
    import jax
    import jax.numpy as jnp

    from jaxgmm import _engine
    from jaxgmm._blocks import Blocks, default_block_size
    from jaxgmm._covariance import covariance_unit
    from jaxgmm._engine import EMSettings
    from jaxgmm._matmul_precision import matmul_precision_scope
    from jaxgmm._statistics import STATISTICS_FORMS

    x_bytes = n * d * 4
    X = jax.ShapeDtypeStruct((n, d), jnp.float32)
    block = default_block_size(n, k, d, platform=platform)
    assert block == {"cpu": 512, "gpu": 32_768}[platform]  # the table's row, for these shapes
    small = 8 * block * k * d * 4  # a few (K, block, D) intermediates
    assert small < x_bytes / 4 or platform == "gpu"  # a GPU wants big steps: 268 MB each here
    params = jaxgmm.params_from_covariances(
        np.full(k, 1 / k, np.float32),
        np.zeros((k, d), np.float32),
        np.stack([np.eye(d, dtype=np.float32)] * k),
        covariance_type="full",
    )
    unit = covariance_unit("full")
    settings = EMSettings(reg_covar=1e-6, tol=0.0, max_iter=10)
    static = dict(unit=unit, n_components=k, n_init=1, init="given", blocks=Blocks(block))
    start = _engine.start.lower(jax.random.key(0), None, X, None, settings, params, None, **static)
    assert _temp_bytes(start) < small
    state = jax.eval_shape(
        lambda X: _engine.start(jax.random.key(0), None, X, None, settings, params, None, **static)[
            3
        ],
        X,
    )
    forms = STATISTICS_FORMS.values() if platform == "cpu" else [STATISTICS_FORMS["exact"]]
    for form in forms:
        block, small = block_and_budget = (block, small)
        if form.name == "missing":  # each row's (K, D, D) masked factors: blocks D times shorter
            block = default_block_size(n, k, d * d, platform=platform)
            small = 8 * block * k * d * d * 4
        with matmul_precision_scope():
            advance = _engine.advance.lower(
                state,
                X,
                None,
                settings.with_form(form),
                unit=unit,
                blocks=Blocks(block),
                n_steps=10,
            )
        assert _temp_bytes(advance) < small, form.name
        # the products over rows read whole blocks (and the tail), never all N rows; every
        # product, the small ones of the parameters included, at full float32 precision
        products = re.findall(r"stablehlo\.dot_general[^\n]*", advance.as_text())
        sizes = {int(m) for p in products for m in re.findall(r"(?<![0-9])([0-9]+)x", p)}
        assert {block, n % block} <= sizes and n not in sizes, (form.name, sorted(sizes))
        assert all("precision = [HIGHEST, HIGHEST]" in p for p in products), form.name
        block, small = block_and_budget
    finish = _engine.finish.lower(
        state,
        X,
        None,
        jnp.ones(d, jnp.float32),
        jnp.zeros(d, jnp.float32),
        settings,
        unit=unit,
        blocks=Blocks(block),
        prefer_nondegenerate=True,
        scores=True,
    )
    assert _temp_bytes(finish) < small


def test_densities_of_many_samples_are_computed_in_blocks():
    import jax
    import jax.numpy as jnp

    n, d, k = 2_000_000, 16, 64
    X = jax.ShapeDtypeStruct((n, d), jnp.float32)
    params = jaxgmm.params_from_covariances(
        np.full(k, 1 / k, np.float32),
        np.zeros((k, d), np.float32),
        np.stack([np.eye(d, dtype=np.float32)] * k),
        covariance_type="full",
    )
    output = n * k * 4
    for function in (jaxgmm.log_prob, jaxgmm.component_log_prob, jaxgmm.e_step):
        temp = _temp_bytes(function.lower(X, params, covariance_type="full"))
        assert temp < 2 * output, function.__name__  # not the (K, N, D) differences: 16 x output


def test_sharded_variational_fit_equals_one_device():
    """BayesianGaussianMixture with its rows over 4 devices (303 rows: padded with rows of
    weight zero) equals the one-device fit, iteration counts included."""
    out = run_python("""
        import jax, numpy as np
        jax.config.update("jax_enable_x64", True)
        import jaxgmm
        rng = np.random.default_rng(0)
        X = np.concatenate([rng.normal(size=(101, 3)) + c
                            for c in ([0, 0, 0], [4, 4, 0], [0, 5, 5])])
        worst = 0.0
        # a dense and a shared covariance; diag's and spherical's statistics are summed over
        # devices by the same pass (test_sharded_fit_equals_one_device)
        for ct in ("full", "tied"):
            kw = dict(n_components=5, covariance_type=ct, n_init=2, random_state=0, tol=1e-8,
                      max_iter=300)
            one = jaxgmm.BayesianGaussianMixture(**kw).fit(X)
            four = jaxgmm.BayesianGaussianMixture(devices=jax.devices(), **kw).fit(X)
            assert one.n_iter_ == four.n_iter_, (ct, one.n_iter_, four.n_iter_)
            for name in ("means_", "covariances_", "weights_", "degrees_of_freedom_"):
                a, b = getattr(four, name), getattr(one, name)
                worst = max(worst, np.max(np.abs(a - b)) / np.max(np.abs(b)))
        print(worst)
    """)
    assert float(out) < 1e-9
