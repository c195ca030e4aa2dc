"""Float reference at graph level: recurrent latency, cycle scan == layer-wise run, batching, chunks, gradients."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import a, conv

from snn_deploy.graph import Graph
from snn_deploy.nodes import IF, LI, LIF, CubaLIF, Input, Linear, Output
from snn_deploy.sim.reference import (
    extract_params,
    params_to_graph,
    resolve_config,
    simulate,
    simulate_params,
    simulator,
)


def test_recurrent_edge_has_one_step_latency():
    nodes = [
        Input("in", shape=(1,)),
        IF("n", r=a(1000.0), v_threshold=a(0.5), v_reset=a(0.0)),  # dt*r = 1: v += x
        Linear("rec", weight=np.array([[0.3]])),
        Output("out", shape=None),
    ]
    g = Graph.build(nodes, [("in", "n"), ("n", "rec"), ("rec", "n"), ("n", "out")], conventions=conv(1e-3))
    assert g.recurrent == frozenset({("rec", "n")})
    res = simulate(g, np.array([[1.0], [0], [0], [0]]))
    np.testing.assert_array_equal(np.asarray(res.spikes["n"])[:, 0], [1, 0, 0, 0])
    # the spike of step 0 arrives at step 1 through the recurrent weight, not in step 0
    np.testing.assert_allclose(np.asarray(res.v["n"])[:, 0], [0, 0.3, 0.3, 0.3], atol=1e-7)


def _net(rng, method, reset, with_loop):
    """in(3) -> fc1 -> CubaLIF(5) -> fc2 -> LIF(4) -> out, optionally with a zero-weight loop LIF -> CubaLIF."""
    nodes = [
        Input("in", shape=(3,)),
        Linear("fc1", weight=rng.normal(size=(5, 3)) * 2),
        CubaLIF(
            "h",
            tau_mem=a(*rng.uniform(2e-3, 2e-2, 5)),
            tau_syn=a(*rng.uniform(1e-3, 1e-2, 5)),
            r=a(*rng.uniform(0.5, 2, 5)),
            v_leak=a(*rng.uniform(-0.1, 0.1, 5)),
            v_threshold=a(*[0.2] * 5),
            v_reset=a(*[0.0] * 5),
            w_in=a(*rng.uniform(0.5, 2, 5)),
        ),
        Linear("fc2", weight=rng.normal(size=(4, 5))),
        LIF(
            "o",
            tau=a(*rng.uniform(2e-3, 2e-2, 4)),
            r=a(*[1.0] * 4),
            v_leak=a(*[0.0] * 4),
            v_threshold=a(*[0.1] * 4),
            v_reset=a(*[0.0] * 4),
        ),
        Output("out", shape=None),
    ]
    edges = [("in", "fc1"), ("fc1", "h"), ("h", "fc2"), ("fc2", "o"), ("o", "out")]
    if with_loop:
        nodes.append(Linear("back", weight=np.zeros((5, 4))))
        edges += [("o", "back"), ("back", "h")]
    return Graph.build(nodes, edges, conventions=conv(1e-3, method, reset))


def _check_cycle_equals_layerwise(seed, method, reset):
    rng = np.random.default_rng(seed)
    x = (rng.random((2, 30, 3)) < 0.3).astype(np.float64)
    with jax.enable_x64(True):
        ff = simulate(_net(np.random.default_rng(seed), method, reset, False), x)
        loop = simulate(_net(np.random.default_rng(seed), method, reset, True), x)
    assert (
        simulator(_net(rng, method, reset, True), resolve_config(_net(rng, method, reset, True)))
        .plan[2]
        .cyclic
    )
    for k in ("h", "o"):
        np.testing.assert_array_equal(np.asarray(ff.spikes[k]), np.asarray(loop.spikes[k]))
        np.testing.assert_allclose(np.asarray(ff.v[k]), np.asarray(loop.v[k]), rtol=1e-10, atol=1e-12)


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    method=st.sampled_from(["euler", "exact"]),
    reset=st.sampled_from(["zero", "subtract", "subtract-next"]),
)
def test_joint_cycle_scan_equals_layerwise(seed, method, reset):
    _check_cycle_equals_layerwise(seed, method, reset)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    method=st.sampled_from(["euler", "exact"]),
    reset=st.sampled_from(["zero", "subtract", "subtract-next"]),
)
def test_joint_cycle_scan_equals_layerwise_many(seed, method, reset):
    _check_cycle_equals_layerwise(seed, method, reset)


def test_batch_equals_single_samples_and_chunks_continue():
    g = _net(np.random.default_rng(1), "euler", "subtract", True)
    x = (np.random.default_rng(2).random((3, 40, 3)) < 0.4).astype(np.float32)
    full = simulate(g, x)
    assert float(full.spikes["h"].sum()) > 0
    for b in range(3):
        one = simulate(g, x[b])
        np.testing.assert_allclose(np.asarray(one.v["h"]), np.asarray(full.v["h"][b]), rtol=1e-5, atol=1e-6)
    sim = simulator(g, resolve_config(g))
    params = extract_params(g)
    r1, state = sim(params, {"in": x[:, :25]})
    r2, _ = sim(params, {"in": x[:, 25:]}, state)
    np.testing.assert_allclose(
        np.concatenate([np.asarray(r1.v["o"]), np.asarray(r2.v["o"])], axis=1),
        np.asarray(full.v["o"]),
        atol=1e-6,
    )


def test_gradient_of_non_spiking_readout_matches_finite_differences():
    nodes = [
        Input("in", shape=(2,)),
        Linear("fc", weight=np.array([[0.5, -1.0]])),
        LI("li", tau=a(0.005), r=a(1.0), v_leak=a(0.0)),
        Output("out", shape=None),
    ]
    g = Graph.build(nodes, [("in", "fc"), ("fc", "li"), ("li", "out")], conventions=conv(1e-3, "exact"))
    x = np.random.default_rng(0).normal(size=(20, 2))
    with jax.enable_x64(True):
        params = extract_params(g)

        def loss(p):
            return jnp.sum(simulate_params(g, p, x, record=False).output ** 2)

        grads = jax.grad(loss)(params)
        for name, key, idx, eps in [("fc", "weight", (0, 1), 1e-6), ("li", "tau", (0,), 1e-8)]:

            def bumped(d, name=name, key=key, idx=idx):
                q = {k: dict(v) for k, v in params.items()}
                q[name][key] = params[name][key].at[idx].add(d)
                return q

            fd = (loss(bumped(eps)) - loss(bumped(-eps))) / (2 * eps)  # central difference
            np.testing.assert_allclose(float(grads[name][key][idx]), float(fd), rtol=1e-6)


@pytest.mark.parametrize("surrogate", ["fast_sigmoid", "arctan", "sigmoid", "triangle", "straight_through"])
def test_grad_flows_through_spikes(surrogate):
    g = _net(np.random.default_rng(3), "euler", "subtract", True)
    x = (np.random.default_rng(4).random((2, 30, 3)) < 0.4).astype(np.float32)
    params = extract_params(g)

    def loss(p):
        return jnp.sum(simulate_params(g, p, x, surrogate=surrogate, record=False).output)

    grads = jax.grad(loss)(params)
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in leaves)
    assert float(jnp.abs(grads["fc1"]["weight"]).sum()) > 0  # through two spiking layers
    assert float(jnp.abs(grads["back"]["weight"]).sum()) > 0  # through the recurrent edge


def test_params_round_trip_into_graph():
    g = _net(np.random.default_rng(5), "euler", "zero", False)
    p = extract_params(g)
    p["fc1"]["weight"] = p["fc1"]["weight"] * 2
    g2 = params_to_graph(g, p, note="test")
    np.testing.assert_allclose(g2.node("fc1").weight, 2 * g.node("fc1").weight, rtol=1e-6)
    assert g2.history[-1].name == "test"
    np.testing.assert_array_equal(g2.node("h").tau_mem, g.node("h").tau_mem.astype(np.float32))
