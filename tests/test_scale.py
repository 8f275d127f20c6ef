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
