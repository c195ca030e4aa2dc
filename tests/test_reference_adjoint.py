"""Hand-derived adjoint of the layer-wise neuron loop (sim/reference_adjoint.py) against JAX's autodiff of the plain
loop (``adjoint=False``): identical forward values, same gradients (to float32 rounding) for every neuron kind,
reset, detach_reset setting, surrogate and discretisation, including initial-state and final-state cotangents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import conv

from snn_deploy.errors import ConventionError
from snn_deploy.graph import Graph
from snn_deploy.nodes import IF, LI, LIF, Affine, CubaLI, CubaLIF, Input, Integrator, Linear, Output
from snn_deploy.sim.reference import extract_params, resolve_config, simulator
from snn_deploy.sim.reference_adjoint import linear_neuron_scan
from snn_deploy.sim.reference_ops import SURROGATES, NeuronStep, Surrogate

KINDS = ("LIF", "CubaLIF", "IF", "LI", "CubaLI", "Integrator")
RESETS = ("zero", "subtract", "subtract-next")
DT = 1e-3


def _neuron(kind: str, name: str, n: int, rng: np.random.Generator):
    u = lambda lo, hi: rng.uniform(lo, hi, n)  # noqa: E731
    thr = dict(v_threshold=u(0.3, 1.0), v_reset=u(-0.2, 0.1))
    if kind == "LIF":
        return LIF(name, tau=u(2e-3, 2e-2), r=u(2.0, 8.0), v_leak=u(-0.1, 0.1), **thr)
    if kind == "LI":
        return LI(name, tau=u(2e-3, 2e-2), r=u(0.5, 2.0), v_leak=u(-0.1, 0.1))
    if kind == "IF":
        return IF(name, r=u(100.0, 600.0), **thr)
    if kind == "Integrator":
        return Integrator(name, r=u(100.0, 600.0))
    cuba = dict(
        tau_mem=u(2e-3, 2e-2), tau_syn=u(1e-3, 1e-2), r=u(2.0, 8.0), v_leak=u(-0.1, 0.1), w_in=u(1.0, 3.0)
    )
    return CubaLIF(name, **cuba, **thr) if kind == "CubaLIF" else CubaLI(name, **cuba)


def _graph(chains: tuple[tuple[str, ...], ...], method: str, reset: str, seed: int) -> Graph:
    """in(4) -> one branch per chain, each ``(Affine -> neuron)`` per kind in it, to its own Output.

    The first neuron of a branch is fed by a hoisted Affine of the Input (kinds without a synapse: fused with it,
    ``linear_neuron_scan``; Cuba kinds: input gradient written batch-major), later ones by a Linear of a
    time-major series. Neurons are 5 wide, then 3.
    """
    rng = np.random.default_rng(seed)
    nodes, edges, outs = [Input("in", shape=(4,))], [], []
    for c, kinds in enumerate(chains):
        prev, n_in = "in", 4
        for j, kind in enumerate(kinds):
            n = 5 if j == 0 else 3
            lin, neu = f"fc{c}_{j}", f"n{c}_{j}"
            nodes += [
                Affine(lin, weight=rng.normal(size=(n, n_in)) * 1.5, bias=rng.normal(size=n) * 0.2),
                _neuron(kind, neu, n, rng),
            ]
            edges += [(prev, lin), (lin, neu)]
            prev, n_in = neu, n
        outs.append((prev, f"out{c}"))
    g = Graph.build(
        [*nodes, *(Output(o, shape=None) for _, o in outs)],
        [*edges, *outs],
        conventions=conv(DT, method, reset),
    )
    declared = [Output(o, shape=g.node(o).input_shape) for _, o in outs]
    return Graph.build([*nodes, *declared], [*edges, *outs], conventions=conv(DT, method, reset))


def _run_both(g: Graph, surrogate: Surrogate, detach: bool, seed: int, steps: int = 12, batch: int = 3):
    """Forward results and gradients (params, input, initial state) of a random loss, both ways."""
    rng = np.random.default_rng(seed + 1)
    x = {"in": jnp.asarray(rng.normal(size=(batch, steps, 4)) * 1.5, jnp.float32)}
    params = extract_params(g)
    sims = {
        adj: simulator(
            g,
            resolve_config(g, surrogate=surrogate, detach_reset=detach, adjoint=adj),
            record=True,
            shard=False,
        )
        for adj in (True, False)
    }
    st0 = jax.tree_util.tree_map(
        lambda z: jnp.asarray(rng.normal(size=z.shape) * 0.3, z.dtype), sims[True].init_state(batch)
    )
    # a random linear functional of every result and of the final state: every cotangent path is exercised
    res_shape, state_shape = jax.eval_shape(lambda: sims[True](params, x, st0))
    wts = jax.tree_util.tree_map(
        lambda s: jnp.asarray(rng.normal(size=s.shape), jnp.float32), (res_shape, state_shape)
    )

    def loss(p, x, st, sim):
        out = sim(p, x, st)
        return sum(
            jnp.sum(w * o)
            for w, o in zip(jax.tree_util.tree_leaves(wts), jax.tree_util.tree_leaves(out), strict=True)
        )

    outs = {adj: sims[adj](params, x, st0) for adj in (True, False)}
    grads = {adj: jax.grad(loss, argnums=(0, 1, 2))(params, x, st0, sims[adj]) for adj in (True, False)}
    return outs, grads


def _assert_close_tree(got, want, rtol=2e-4):
    paths = jax.tree_util.tree_flatten_with_path(want)[0]
    for (path, w), g in zip(paths, jax.tree_util.tree_leaves(got), strict=True):
        w, g = np.asarray(w, np.float64), np.asarray(g, np.float64)
        scale = max(np.max(np.abs(w)), 1e-6) if w.size else 1.0
        err = np.max(np.abs(g - w)) if w.size else 0.0
        assert err <= rtol * scale + 1e-6, (
            f"{jax.tree_util.keystr(path)}: max |diff| {err:.3g}, scale {scale:.3g}"
        )


def _check(chains, method, reset, surrogate, detach, seed):
    g = _graph(chains, method, reset, seed)
    outs, grads = _run_both(g, surrogate, detach, seed)
    for a_leaf, b_leaf in zip(
        jax.tree_util.tree_leaves(outs[True]), jax.tree_util.tree_leaves(outs[False]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a_leaf), np.asarray(b_leaf))  # bit-identical forward
    assert jax.tree_util.tree_structure(grads[True]) == jax.tree_util.tree_structure(grads[False])
    _assert_close_tree(grads[True], grads[False])
    return outs


@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [True, False])
def test_adjoint_matches_autodiff_every_kind_and_reset(reset, detach):
    """Every kind fed by a hoisted Linear, and every kind fed by a spiking layer (time-major input gradient)."""
    chains = tuple((k,) for k in KINDS) + (
        ("LIF", "CubaLIF", "IF"),
        ("CubaLIF", "LI", "Integrator", "CubaLI"),
    )
    outs = _check(chains, "euler", reset, Surrogate(), detach, seed=3)
    for name in ("n0_0", "n1_0", "n2_0", "n6_1"):  # spikes and silences, or the reset paths are not exercised
        s = np.asarray(outs[True][0].spikes[name])
        assert 0 < s.mean() < 1, name


@pytest.mark.parametrize(
    ("surrogate", "method"),
    [(s, m) for s, m in zip(SURROGATES, ["exact", "euler"] * 3, strict=False)],
)
def test_adjoint_matches_autodiff_every_surrogate_and_method(surrogate, method):
    _check((("CubaLIF", "IF"), ("LIF",)), method, "subtract", Surrogate(surrogate), False, seed=5)


def _random_graphs(max_chains: int) -> dict:
    """Hypothesis strategies for :func:`_check`: chains of neuron kinds, method, reset, surrogate, detach, seed."""
    kinds = st.lists(st.sampled_from(KINDS), min_size=1, max_size=3).map(tuple)
    return dict(
        chains=st.lists(kinds, min_size=1, max_size=max_chains).map(tuple),
        method=st.sampled_from(["euler", "exact"]),
        reset=st.sampled_from(RESETS),
        surrogate=st.sampled_from(SURROGATES),
        scale=st.none() | st.floats(0.5, 10.0),
        detach=st.booleans(),
        seed=st.integers(0, 2**16),
    )


@settings(max_examples=4, deadline=None)
@given(**_random_graphs(2))
def test_adjoint_matches_autodiff_random_graphs(chains, method, reset, surrogate, scale, detach, seed):
    _check(chains, method, reset, Surrogate(surrogate, scale), detach, seed)


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(**_random_graphs(3))
def test_adjoint_matches_autodiff_random_graphs_many(chains, method, reset, surrogate, scale, detach, seed):
    _check(chains, method, reset, Surrogate(surrogate, scale), detach, seed)


def test_no_record_and_unused_state_matches_autodiff():
    """The training case: no record, final state unused (symbolic-zero cotangents), gradient of the weights only."""
    g = _graph((("CubaLIF", "LIF"),), "exact", "subtract-next", seed=11)
    params = extract_params(g)
    x = jnp.asarray(np.random.default_rng(0).normal(size=(4, 20, 4)) * 2, jnp.float32)

    def loss(p, adj):
        sim = simulator(g, resolve_config(g, adjoint=adj), record=False, shard=False)
        return jnp.sum(sim(p, {"in": x})[0].output ** 2)

    want = jax.grad(loss)(params, False)
    got = jax.grad(loss)(params, True)
    _assert_close_tree(got, want)
    assert np.max(np.abs(np.asarray(want["fc0_0"]["weight"]))) > 0  # a non-trivial gradient was compared


def _fused_graph(reset: str, seed: int) -> Graph:
    """in(4) -> bias-free Linear -> LIF, and in -> Linear -> LI: both run as one fused Linear + neuron op."""
    rng = np.random.default_rng(seed)
    nodes = [
        Input("in", shape=(4,)),
        Linear("fc_a", weight=rng.normal(size=(5, 4)) * 1.5),
        _neuron("LIF", "lif", 5, rng),
        Linear("fc_b", weight=rng.normal(size=(3, 4))),
        _neuron("LI", "li", 3, rng),
        Output("out_a", shape=(5,)),
        Output("out_b", shape=(3,)),
    ]
    edges = [
        ("in", "fc_a"),
        ("fc_a", "lif"),
        ("lif", "out_a"),
        ("in", "fc_b"),
        ("fc_b", "li"),
        ("li", "out_b"),
    ]
    return Graph.build(nodes, edges, conventions=conv(DT, "exact", reset))


@pytest.mark.parametrize("reset", RESETS)
def test_fused_linear_without_bias_matches_autodiff(reset):
    """linear_neuron_scan: bias-free Linear, spiking and non-spiking kinds, with and without the record."""
    g = _fused_graph(reset, seed=7)
    assert simulator(g, resolve_config(g), shard=False).fused_neurons == {"lif", "li"}
    assert not simulator(g, resolve_config(g, adjoint=False), shard=False).fused_neurons
    outs = _check_graph(g, reset)
    s = np.asarray(outs[True][0].spikes["lif"])
    assert 0 < s.mean() < 1  # spikes and silences

    params = extract_params(g)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(3, 16, 4)) * 2, jnp.float32)

    def loss(p, x, adj):  # the training case: no record, final state unused
        sim = simulator(g, resolve_config(g, adjoint=adj), record=False, shard=False)
        out = sim(p, {"in": x})[0].outputs
        return jnp.sum(out["out_a"] * x[..., :1]) + jnp.sum(out["out_b"] ** 2)

    want = jax.grad(loss, argnums=(0, 1))(params, x, False)
    got = jax.grad(loss, argnums=(0, 1))(params, x, True)
    _assert_close_tree(got, want)
    assert np.max(np.abs(np.asarray(want[0]["fc_a"]["weight"]))) > 0


def _check_graph(g: Graph, reset: str):
    outs, grads = _run_both(g, Surrogate(), detach=False, seed=2)
    for a_leaf, b_leaf in zip(
        jax.tree_util.tree_leaves(outs[True]), jax.tree_util.tree_leaves(outs[False]), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a_leaf), np.asarray(b_leaf))  # bit-identical forward
    _assert_close_tree(grads[True], grads[False])
    return outs


def test_fused_op_refuses_synapse_kinds():
    step = NeuronStep(CubaLIF, "zero", Surrogate(), True)
    z = jnp.zeros((1, 2))
    with pytest.raises(ConventionError, match="neuron_scan"):
        linear_neuron_scan(
            step, {}, {"v": z, "i": z}, jnp.zeros((1, 3, 2)), jnp.zeros((2, 2)), None, keep=False
        )


def _chained_graph(kind: str, reset: str, seed: int, affine: bool) -> Graph:
    """in(4) -> Linear/Affine -> ``kind`` (5) -> Linear/Affine -> LIF (3) -> out: the first neuron and both Linears
    run as one op (``linear_neuron_scan(next_linear=...)``) when nothing records that neuron."""
    rng = np.random.default_rng(seed)

    def lin(name, n_out, n_in):
        w = rng.normal(size=(n_out, n_in)) * 1.5
        return Affine(name, weight=w, bias=rng.normal(size=n_out) * 0.2) if affine else Linear(name, weight=w)

    nodes = [
        Input("in", shape=(4,)),
        lin("fc1", 5, 4),
        _neuron(kind, "hid", 5, rng),
        lin("fc2", 3, 5),
        _neuron("LIF", "lif", 3, rng),
        Output("out", shape=(3,)),
    ]
    edges = [("in", "fc1"), ("fc1", "hid"), ("hid", "fc2"), ("fc2", "lif"), ("lif", "out")]
    return Graph.build(nodes, edges, conventions=conv(DT, "exact", reset))


@pytest.mark.parametrize("kind", ["LIF", "IF", "LI", "Integrator"])
@pytest.mark.parametrize("reset", RESETS)
@pytest.mark.parametrize("detach", [True, False])
def test_chained_linears_match_autodiff(kind, reset, detach):
    """Linear -> neuron -> Linear as one op: bit-identical forward, gradients of every parameter, of the input and
    of the initial state equal to autodiff's (the loss reads the output and the final state); Affine pairs with a
    batch of 6 (two groups of 3), Linear with 5 (prime: one group)."""
    affine, batch = detach, (6 if detach else 5)
    g = _chained_graph(kind, reset, seed=3, affine=affine)
    cfg = {a: resolve_config(g, detach_reset=detach, adjoint=a) for a in (True, False)}
    sims = {a: simulator(g, cfg[a], record=False, shard=False) for a in (True, False)}
    assert sims[True].chained == {"hid": "fc2"} and not sims[False].chained
    assert not simulator(g, cfg[True], record=True, shard=False).chained  # recorded: its series is needed
    rng = np.random.default_rng(batch)
    x = jnp.asarray(rng.normal(size=(batch, 14, 4)) * 2, jnp.float32)
    params = extract_params(g)
    st0 = jax.tree_util.tree_map(
        lambda z: jnp.asarray(rng.normal(size=z.shape) * 0.3, z.dtype), sims[True].init_state(batch)
    )
    w_out = jnp.asarray(rng.normal(size=(batch, 14, 3)), jnp.float32)
    w_st = jax.tree_util.tree_map(lambda z: jnp.asarray(rng.normal(size=z.shape), z.dtype), st0)

    def loss(p, x, st, adj):
        res, st1 = sims[adj](p, {"in": x}, st)
        terms = jax.tree_util.tree_map(lambda w, s: jnp.sum(w * s), w_st, st1)
        return jnp.sum(w_out * res.output) + sum(jax.tree_util.tree_leaves(terms))

    outs = {a: jax.tree_util.tree_leaves(sims[a](params, {"in": x}, st0)) for a in (True, False)}
    for got, want in zip(outs[True], outs[False], strict=True):
        np.testing.assert_array_equal(np.asarray(got), np.asarray(want))  # bit-identical forward
    grads = {a: jax.grad(loss, argnums=(0, 1, 2))(params, x, st0, a) for a in (True, False)}
    _assert_close_tree(grads[True], grads[False])
    assert np.max(np.abs(np.asarray(grads[False][0]["fc2"]["weight"]))) > 0
    assert np.max(np.abs(np.asarray(grads[False][0]["fc1"]["weight"]))) > 0
