"""Float reference on real exported graphs (../shared/nir-zoo): snnTorch's RSynaptic and the closed-form LIF."""

from __future__ import annotations

import warnings

import jax
import numpy as np
import pytest
from reference_helpers import ZOO

import snn_deploy as sd
from snn_deploy.sim.reference import simulate

BRAILLE = ZOO / "braille_noDelay_noBias_subtract.nir"
TWO_LIF = ZOO / "two_lif_neurons.nir"


def _load(path, **kw):
    if not path.exists():
        pytest.skip(f"{path.name} not found in ../shared/nir-zoo (the shared NIR zoo is not checked out)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sd.load(path, **kw)


def _snntorch_braille(g, x):
    """snnTorch's RSynaptic (layer 1, all-to-all recurrence) and Synaptic (layer 2), as its docs write them.

    Per step, with reset = H(mem[t-1] - thr) (subtract mechanism) and spk = H(mem[t] - thr):
        syn[t] = alpha * syn[t-1] + W x[t] (+ V spk1[t-1] for the recurrent layer)
        mem[t] = beta * mem[t-1] + syn[t] - reset * thr
    alpha = 1 - dt/tau_syn, beta = 1 - dt/tau_mem (snnTorch's NIR export writes tau = dt / (1 - decay)).
    """
    dt = 1e-4
    l1, l2 = g.node("lif1.lif"), g.node("lif2")
    w1, v1, w2 = g.node("fc1").weight, g.node("lif1.w_rec").weight, g.node("fc2").weight
    a1, b1, a2, b2 = 1 - dt / l1.tau_syn, 1 - dt / l1.tau_mem, 1 - dt / l2.tau_syn, 1 - dt / l2.tau_mem
    th1, th2 = l1.v_threshold, l2.v_threshold
    batch, steps = x.shape[:2]
    syn1, mem1, spk1 = np.zeros((batch, 40)), np.zeros((batch, 40)), np.zeros((batch, 40))
    syn2, mem2 = np.zeros((batch, 7)), np.zeros((batch, 7))
    out1, out2, mems = [], [], []
    for t in range(steps):
        reset1 = (mem1 - th1 > 0).astype(float)
        syn1 = a1 * syn1 + x[:, t] @ w1.T + spk1 @ v1.T
        mem1 = b1 * mem1 + syn1 - reset1 * th1
        spk1 = (mem1 - th1 > 0).astype(float)
        reset2 = (mem2 - th2 > 0).astype(float)
        syn2 = a2 * syn2 + spk1 @ w2.T
        mem2 = b2 * mem2 + syn2 - reset2 * th2
        out1.append(spk1)
        out2.append((mem2 - th2 > 0).astype(float))
        mems.append(mem2)
    return np.stack(out1, 1), np.stack(out2, 1), np.stack(mems, 1)


def test_braille_matches_snntorch_spike_for_spike():
    g = _load(BRAILLE, dt=1e-4, method="euler", reset="subtract-next")
    rng = np.random.default_rng(0)
    x = (rng.random((8, 300, 12)) < rng.uniform(0.05, 0.5, size=(8, 1, 12))).astype(np.float64)
    with jax.enable_x64(True):
        res = simulate(g, x)
    s1, s2, mem2 = _snntorch_braille(g, x)
    assert s1.sum() > 100 and s2.sum() > 10, "the test must exercise spikes in both layers"
    np.testing.assert_array_equal(np.asarray(res.spikes["lif1.lif"]), s1)
    np.testing.assert_array_equal(np.asarray(res.output), s2)
    np.testing.assert_allclose(np.asarray(res.v["lif2"]), mem2, rtol=1e-9, atol=1e-9)


def test_braille_float32_spike_for_spike_too():
    g = _load(BRAILLE, dt=1e-4, method="euler", reset="subtract-next")
    rng = np.random.default_rng(1)
    x = (rng.random((4, 200, 12)) < 0.2).astype(np.float64)
    s1, s2, _ = _snntorch_braille(g, x)
    res = simulate(g, x.astype(np.float32))
    np.testing.assert_array_equal(np.asarray(res.output), s2)
    np.testing.assert_array_equal(np.asarray(res.spikes["lif1.lif"]), s1)


def test_two_lif_neurons_exact_matches_closed_form():
    g = _load(TWO_LIF, dt=1e-4, method="exact", reset="zero")
    dt, steps = 1e-4, 1000
    with jax.enable_x64(True):
        res = simulate(g, np.zeros((steps, 1)))
    v1, s1 = np.asarray(res.v["lif1"])[:, 0], np.asarray(res.spikes["lif1"])[:, 0]
    v2 = np.asarray(res.v["lif2"])[:, 0]
    # Neuron 1: tau v' = 1.2 - v from v = 0; it crosses 1 at t* = tau ln 6, is reset to 0 at the end of that step
    # and starts again. v[k] is the value at time (k+1) dt.
    tau = 0.01
    t_star = tau * np.log(6.0)
    first = int(np.ceil(t_star / dt)) - 1  # the first step whose end time passes t*: 179
    want_spikes = np.arange(first, steps, first + 1)  # after a reset at the end of a step, the same again
    np.testing.assert_array_equal(np.nonzero(s1)[0], want_spikes)
    k = np.arange(steps)
    last = np.full(steps, -1)
    for sp in want_spikes:
        last[k > sp] = sp
    closed1 = 1.2 * (1 - np.exp(-(k - last) * dt / tau))
    closed1[want_spikes] = 0.0
    np.testing.assert_allclose(v1, closed1, atol=1e-9, rtol=0)
    # Neuron 2 (r = 1, weight 1): each spike is a unit pulse over one step; tau v' = -v + x, v(0) = 0
    closed2 = np.zeros(steps)
    for sp in want_spikes:
        after = k >= sp
        closed2[after] += (1 - np.exp(-dt / tau)) * np.exp(-(k[after] - sp) * dt / tau)
    np.testing.assert_allclose(v2, closed2, atol=1e-9, rtol=0)
    assert np.asarray(res.spikes["lif2"]).sum() == 0
