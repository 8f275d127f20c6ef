"""Scale: several devices (in a subprocess with 4 CPU devices), blocks, float32 accumulation."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, devices: int = 4, timeout: int = 600) -> str:
    env = os.environ | {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=timeout)
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
        for ct in ["full", "tied", "diag", "spherical"]:
            for init in ["kmeans", "random"]:
                kw = dict(covariance_type=ct, n_init=2, init=init, sample_weight=w,
                          block_size=40, tol=1e-8)
                one = jaxgmm.fit(jax.random.key(1), X, 3, **kw)
                four = jaxgmm.fit(jax.random.key(1), X, 3, devices=jax.devices(), **kw)
                assert (np.asarray(one.restarts.n_iter) == np.asarray(four.restarts.n_iter)).all()
                for a, b in zip(jax.tree_util.tree_leaves(one.restarts.params),
                                jax.tree_util.tree_leaves(four.restarts.params)):
                    a, b = np.asarray(a), np.asarray(b)
                    worst = max(worst, np.max(np.abs(a - b)) / np.max(np.abs(b)))
        mesh = jax.sharding.Mesh(np.array(jax.devices()), ("rows",))
        est = jaxgmm.GaussianMixture(3, random_state=0, devices=mesh).fit(X)
        ref = jaxgmm.GaussianMixture(3, random_state=0).fit(X)
        worst = max(worst, np.max(np.abs(est.means_ - ref.means_)) / np.max(np.abs(ref.means_)))
        print(worst)
    """)
    assert float(out.split()[-1]) < 1e-10


RESUMABLE_FIT = """
import sys
import jax, numpy as np
jax.config.update("jax_enable_x64", True)
import jaxgmm
rng = np.random.default_rng(0)
X = rng.normal(size=(20000, 6)) + rng.integers(0, 3, size=(20000, 1)) * 1.5
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
    resumed = subprocess.run([*run, str(tmp_path / "resumed.npy")], cwd=ROOT,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    chunks_after_resume = int(resumed.stdout.split()[0])
    assert chunks_after_resume <= (300 - steps) // 10 + 1  # it continued, it did not restart
    fresh = subprocess.run([sys.executable, str(script), "-", str(tmp_path / "fresh.npy")],
                           cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert fresh.returncode == 0, fresh.stderr
    np.testing.assert_allclose(np.load(tmp_path / "resumed.npy"), np.load(tmp_path / "fresh.npy"),
                               rtol=0, atol=1e-12)


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
        [sys.executable, "-m", "jaxgmm", "fit", str(data), "-k", "5", "--max-iter", "100000",
         "--tol", "0", "--init", "random", "--n-init", "2", "--progress", "--no-plots",
         "--out", str(out)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
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
