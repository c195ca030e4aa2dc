"""Graph-level exact model (sim/exact_graph.py): closed forms, layer composition, semantics, reference agreement."""

from __future__ import annotations

import numpy as np
import pytest
from reference_helpers import a, chain

from snn_deploy.nodes import LIF, Affine, CubaLIF, Linear
from snn_deploy.sim import exact_closed as cf
from snn_deploy.sim.exact import CubaLIF as ExCuba
from snn_deploy.sim.exact import simulate_layer
from snn_deploy.sim.exact_graph import ExactGraphError, exact_layers, simulate_graph, to_npz_dict
from snn_deploy.sim.timing_graph import timing_check

DT = 1e-4


def _lif(name, n, tau=2.5e-3, th=0.1, r=1.0):
    return LIF(
        name,
        tau=a(*[tau] * n),
        r=a(*[r] * n),
        v_leak=a(*[0.0] * n),
        v_threshold=a(*[th] * n),
        v_reset=a(*[0.0] * n),
    )


def _cuba(name, n, tm=1e-3, ts=5e-4, th=1.0):
    return CubaLIF(
        name,
        tau_mem=a(*[tm] * n),
        tau_syn=a(*[ts] * n),
        r=a(*[1.0] * n),
        v_leak=a(*[0.0] * n),
        v_threshold=a(*[th] * n),
        v_reset=a(*[0.0] * n),
        w_in=a(*[1.0] * n),
    )


def _two_layer(method="euler", reset="zero", seed=0, gain=1.0):
    """Two layers; ``gain`` scales the weights (delta semantics needs charge-sized weights, ~dt x pulse ones)."""
    rng = np.random.default_rng(seed)
    return chain(
        (4,),
        Affine("fc1", weight=gain * rng.normal(0.3, 0.2, (5, 4)), bias=a(*rng.normal(0.0, 0.02, 5))),
        _lif("h", 5),
        Linear("fc2", weight=gain * rng.normal(0.1, 0.05, (3, 5))),
        _cuba("o", 3, th=0.02),
        dt=DT,
        method=method,
        reset=reset,
    )


def test_single_lif_constant_pulse_matches_closed_form():
    """Pulse semantics: a constant count is a constant current; LIF fires every tau ln(V_inf/(V_inf - th))."""
    g = chain((1,), Linear("fc", weight=np.array([[0.5]])), _lif("l", 1), dt=DT)
    res = simulate_graph(g, np.ones((400, 1), int), dt=DT, semantics="pulse")[0]
    t, nn = res["l"]
    period = float(cf.t_lif_const(0.0, 0.5, 0.1, 2.5e-3))
    assert len(t) == int(400 * DT / period) and np.all(nn == 0)
    np.testing.assert_allclose(t, period * np.arange(1, len(t) + 1), rtol=1e-12)


def test_delta_semantics_composes_layers():
    g = _two_layer(gain=DT)
    x = (np.random.default_rng(1).random((150, 4)) < 0.3).astype(int)
    res = simulate_graph(g, x, dt=DT, semantics="delta")[0]
    lay = exact_layers(g)
    kk, ch = np.nonzero(x)
    tr = simulate_layer(
        kk * DT,
        ch.astype(np.int32),
        lay[0].w,
        lay[0].neuron,
        max_out=300,
        t_end=150 * DT,
        x_const=lay[0].bias,
    )
    np.testing.assert_array_equal(np.sort(np.asarray(tr.times)[np.isfinite(tr.times)]), res["h"][0])
    assert len(res["h"][0]) > 0


def test_pulse_graph_agrees_with_exact_discretised_reference():
    """The float reference with method 'exact' samples the same ODE at step ends: teacher-forced, no mismatch
    outside the round-off bound (all spikes matched or marginal within ~1e-9)."""
    g = _two_layer(method="exact")
    x = (np.random.default_rng(2).random((2, 200, 4)) < 0.3).astype(int)
    rep = timing_check(g, "reference", x)
    assert rep["spikes"] > 40
    assert rep["unexplained"] == 0 and rep["missed"] == 0
    assert rep["matched"] + rep["marginal"] == rep["spikes"] + rep["missed"]
    assert rep["matched"] >= 0.95 * rep["spikes"]


def test_euler_lif_is_exact_with_matched_time_constants():
    """A forward-Euler LIF is the step-end sampling of a continuous LIF with tau' = -dt/log(1 - dt/tau)."""
    g = chain(
        (4,), Linear("fc", weight=np.random.default_rng(3).normal(0.3, 0.2, (3, 4))), _lif("l", 3), dt=DT
    )
    x = (np.random.default_rng(4).random((300, 4)) < 0.3).astype(int)
    rep = timing_check(g, "reference", x)
    assert rep["spikes"] > 20 and rep["matched"] == rep["spikes"]
    nir_tc = timing_check(g, "reference", x, time_constants="nir")
    assert (
        nir_tc["matched"] <= rep["matched"] and nir_tc["unexplained"] == 0
    )  # Euler effects stay within bound


def test_batch_layout_and_errors():
    g = _two_layer()
    x = (np.random.default_rng(5).random((2, 60, 4)) < 0.3).astype(int)
    res = simulate_graph(g, x, dt=DT)
    arr = to_npz_dict(res, batched=True)
    assert set(arr) == {f"{k}.{n}" for k in ("times", "neurons", "sample") for n in ("h", "o")}
    for n in ("h", "o"):
        assert len(arr[f"times.{n}"]) == len(arr[f"neurons.{n}"]) == len(arr[f"sample.{n}"])
        for b in range(2):
            t = arr[f"times.{n}"][arr[f"sample.{n}"] == b]
            assert np.all(np.diff(t) >= 0)
    with pytest.raises(ExactGraphError, match="input shape"):
        simulate_graph(g, np.zeros((10, 3)), dt=DT)
    with pytest.raises(ExactGraphError, match="semantics"):
        simulate_graph(g, np.zeros((10, 4)), dt=DT, semantics="bogus")


def test_recurrent_layer_needs_delta_semantics():
    from snn_deploy.graph import Graph
    from snn_deploy.nodes import Input, Output

    rng = np.random.default_rng(6)
    from reference_helpers import conv

    nodes = [
        Input("in", shape=(3,)),
        Linear("fc", weight=rng.normal(1.0, 0.2, (2, 3)) * 2e-4),  # charge-sized (delta)
        _cuba("h", 2),
        Linear("rec", weight=np.array([[0.0, 0.0], [-0.5, 0.0]]) * 5e-4),  # NIR (out, in): 0 inhibits 1
        Output("out", shape=(2,)),
    ]
    edges = [("in", "fc"), ("fc", "h"), ("h", "rec"), ("rec", "h"), ("h", "out")]
    g = Graph.build(nodes, edges, conventions=conv(DT))
    x = (rng.random((50, 3)) < 0.3).astype(int)
    with pytest.raises(ExactGraphError, match="delta"):
        simulate_graph(g, x, dt=DT, semantics="pulse")
    res = simulate_graph(g, x, dt=DT, semantics="delta")[0]
    lay = exact_layers(g)[0]
    assert lay.w_rec is not None
    kk, ch = np.nonzero(x)
    free = simulate_layer(kk * DT, ch.astype(np.int32), lay.w, ExCuba(1e-3, 5e-4), max_out=200, t_end=50 * DT)
    assert len(res["h"][0]) > 0
    n_free = int(np.asarray(free.count)[1])
    assert (
        np.sum(res["h"][1] == 1) <= n_free
    )  # inhibition from neuron 0 can only remove/delay neuron 1's spikes
