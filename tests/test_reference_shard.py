"""Batch sharding over all JAX devices: sharded results equal unsharded ones (2 fake CPU devices, subprocess)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import jax, numpy as np, jax.numpy as jnp
    assert len(jax.devices()) == 2, jax.devices()
    from snn_deploy.conventions import Conventions, Setting
    from snn_deploy.graph import Graph
    from snn_deploy.nodes import Input, Linear, LIF, CubaLIF, Output
    from snn_deploy.sim.reference import simulate, simulate_params, extract_params

    rng = np.random.default_rng(0)
    one = lambda v, n: np.full(n, float(v))
    nodes = [Input("in", shape=(4,)), Linear("fc1", weight=rng.normal(size=(6, 4)) * 2),
             CubaLIF("h", tau_mem=one(0.01, 6), tau_syn=one(0.005, 6), r=one(1, 6), v_leak=one(0, 6),
                     v_threshold=one(0.3, 6), v_reset=one(0, 6), w_in=one(1, 6)),
             Linear("rec", weight=rng.normal(size=(6, 6))), Linear("fc2", weight=rng.normal(size=(3, 6))),
             LIF("o", tau=one(0.01, 3), r=one(1, 3), v_leak=one(0, 3), v_threshold=one(0.2, 3), v_reset=one(0, 3)),
             Output("out", shape=None)]
    edges = [("in", "fc1"), ("fc1", "h"), ("h", "rec"), ("rec", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")]
    conv = Conventions(Setting(1e-3, "cli"), Setting("euler", "cli"), Setting("subtract", "cli"))
    g = Graph.build(nodes, edges, conventions=conv)
    for batch in (8, 7):  # 7: padded to a multiple of the device count, then cut back
        x = (rng.random((batch, 50, 4)) < 0.3).astype(np.float32)
        sharded = simulate(g, x, shard=True)
        plain = simulate(g, x, shard=False)
        assert sharded.output.shape == plain.output.shape == (batch, 50, 3)
        assert float(plain.spikes["h"].sum()) > 0
        for a, b in zip(jax.tree_util.tree_leaves(sharded), jax.tree_util.tree_leaves(plain)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)
    x = (rng.random((8, 50, 4)) < 0.3).astype(np.float32)
    sharded = simulate(g, x, shard=True)
    assert len(sharded.output.sharding.device_set) == 2, sharded.output.sharding
    p = extract_params(g)
    loss = lambda p, s: jnp.sum(simulate_params(g, p, x, shard=s, record=False).output)
    ga, gb = jax.grad(loss)(p, True), jax.grad(loss)(p, False)
    for a, b in zip(jax.tree_util.tree_leaves(ga), jax.tree_util.tree_leaves(gb)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-5)
    print("OK")
    """
)


def test_sharded_equals_unsharded():
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2").strip()
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("OK")
