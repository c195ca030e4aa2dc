"""Training front end: readouts, losses, fitting tiny problems, trainable selection, export round trip."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import snn_deploy as sd
from snn_deploy.errors import InputError
from snn_deploy.sim.reference import simulate
from snn_deploy.sim.train import accuracy, export, feedforward, first_spike_steps, fit, logits


def test_first_spike_steps_value_and_gradient():
    s = jnp.zeros((1, 6, 3)).at[0, 2, 0].set(1).at[0, 4, 0].set(1).at[0, 0, 1].set(1)
    np.testing.assert_array_equal(np.asarray(first_spike_steps(s))[0], [2, 0, 6])  # never fires -> T
    g = jax.grad(lambda s: first_spike_steps(s)[0, 0])(s)
    assert float(g[0, 1, 0]) < 0 and float(g[0, 3, 0]) == 0  # earlier spike -> earlier time; after: no effect


def test_logits_with_readout_matrix():
    out = jnp.array([[[1.0, 0, 1], [1, 0, 0]]])  # (B=1, T=2, n=3): counts (2, 0, 1)
    np.testing.assert_allclose(np.asarray(logits(out, "rate")), [[2, 0, 1]])
    m = np.array([[1, -1, 1], [-1, 1, -1]])
    np.testing.assert_allclose(np.asarray(logits(out, "rate", m)), [[3, -3]])
    np.testing.assert_allclose(np.asarray(logits(out, "integral")), [[1, 0, 0.5]])
    with pytest.raises(InputError):
        logits(out, "nope")


def _toy(n=64, steps=20, seed=0):
    """Class k: input channel k fires every other step, the other channel rarely."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.random((n, steps, 2)) < 0.1).astype(np.float32)
    x[np.arange(n), ::2, y] = 1.0
    return x, y


@pytest.mark.parametrize("loss,readout", [("rate", "CubaLIF"), ("integral", "LI"), ("first_spike", "LIF")])
def test_fit_learns_a_toy_problem(loss, readout):
    x, y = _toy()
    g = feedforward([2, 8, 2], dt=1e-3, tau_mem=8e-3, tau_syn=4e-3, readout=readout, seed=1, gain=0.3)
    before = accuracy(g, x, y, loss=loss)
    res = fit(g, x, y, loss=loss, epochs=30, batch_size=16, learning_rate=3e-2, seed=0)
    after = accuracy(res.graph, x, y, loss=loss)
    assert after >= 0.95 and after > before, (before, after, res.history[-1])
    assert res.history[-1]["loss"] < res.history[0]["loss"]


def test_trainable_selection_and_determinism():
    x, y = _toy(32)
    g = feedforward([2, 6, 2], dt=1e-3, tau_mem=8e-3, tau_syn=4e-3, seed=2)
    a = fit(g, x, y, epochs=2, batch_size=16, learning_rate=1e-2, seed=3)
    b = fit(g, x, y, epochs=2, batch_size=16, learning_rate=1e-2, seed=3)
    for k in ("fc1", "fc2"):
        np.testing.assert_array_equal(a.graph.node(k).weight, b.graph.node(k).weight)
    assert not np.allclose(a.graph.node("fc1").weight, g.node("fc1").weight)
    np.testing.assert_array_equal(a.graph.node("lif1").tau_mem, g.node("lif1").tau_mem)  # not trainable
    c = fit(g, x, y, epochs=2, batch_size=16, learning_rate=1e-4, trainable=("tau_mem",), seed=3)
    np.testing.assert_allclose(c.graph.node("fc1").weight, g.node("fc1").weight.astype(np.float32), rtol=1e-7)
    assert not np.allclose(c.graph.node("lif1").tau_mem, g.node("lif1").tau_mem)
    with pytest.raises(InputError, match="no trainable"):
        fit(g, x, y, epochs=1, trainable=("nonexistent",))


def test_export_round_trip(tmp_path):
    x, y = _toy(16)
    g = feedforward([2, 5, 2], dt=1e-3, tau_mem=8e-3, tau_syn=4e-3, seed=4)
    res = fit(g, x, y, epochs=1, batch_size=8, seed=0)
    path = export(res, tmp_path / "m.nir", metadata={"example": "toy"})
    loaded = sd.load(path)
    assert loaded.conventions.dt.value == 1e-3 and loaded.conventions.reset.value == "subtract"
    assert loaded.metadata["example"] == "toy"
    np.testing.assert_array_equal(
        np.asarray(simulate(loaded, x).output), np.asarray(simulate(res.graph, x).output)
    )
