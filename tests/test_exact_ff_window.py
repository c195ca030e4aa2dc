"""Restart engine: the windowed screen (skip table, windows without a candidate, D > 0, long refractory periods)
against the sequential event loop."""

from __future__ import annotations

import numpy as np
import pytest

from snn_deploy.sim.exact import LIF, CubaLIF, simulate_layer
from snn_deploy.sim.exact_ff import WINDOW


def _same(a, b):
    assert not bool(a.truncated) and not bool(b.truncated)
    np.testing.assert_array_equal(np.asarray(a.count), np.asarray(b.count))
    ta, tb = np.asarray(a.times), np.asarray(b.times)
    np.testing.assert_array_equal(np.isfinite(ta), np.isfinite(tb))
    fin = np.isfinite(ta)
    np.testing.assert_allclose(tb[fin], ta[fin], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.asarray(b.v_end), np.asarray(a.v_end), rtol=1e-9, atol=1e-9)


def _case(name: str, seed: int):
    rng = np.random.default_rng(seed)
    if name == "sparse":  # long stretches of inputs between spikes: windows without a candidate
        ev_t = np.sort(rng.uniform(0, 6, 160))
        w = rng.normal(0.09, 0.12, (3, 4))
        p = CubaLIF(1.0, 0.5, v_th=1.0)
    elif name == "near_miss":  # free V far above threshold for many segments while the reset V stays below
        ev_t = np.sort(np.concatenate([np.full(3, 0.05), rng.uniform(0.1, 4, 120)]))
        w = np.array([[2.0, 1.5, 1.2], [0.01, -0.01, 0.0]])
        p = CubaLIF(0.2, 2.0, v_th=1.0, bias=-0.6)
    elif name == "dense_tref":  # refractory periods spanning many input segments
        ev_t = np.sort(rng.uniform(0, 3, 160))
        w = rng.normal(0.5, 0.3, (3, 4))
        p = CubaLIF(1.0, 0.5, v_th=1.0, t_ref=0.2)
    else:  # V above the free trajectory (D > 0): inhibitory jumps dropped while refractory, V_f falls below
        ev_t = np.sort(rng.uniform(0, 3, 120))
        w = rng.normal(0.15, 0.6, (3, 4))
        p = LIF(0.5, v_th=1.0, v_reset=0.6, t_ref=0.15, reset="subtract")
    ev_ch = rng.integers(0, w.shape[0], ev_t.size).astype(np.int32)
    if name == "near_miss":
        ev_ch = np.where(ev_t < 0.06, 0, 1).astype(np.int32)
    return ev_t, ev_ch, w, p


@pytest.mark.parametrize("name", ["sparse", "near_miss", "dense_tref", "reset_above_free"])
def test_restart_window_paths_equal_sequential(name):
    ev_t, ev_ch, w, p = _case(name, 11)
    kw = dict(max_out=64, t_end=float(ev_t[-1]) + 1.0)
    seq = simulate_layer(ev_t, ev_ch, w, p, engine="sequential", **kw)
    rst = simulate_layer(ev_t, ev_ch, w, p, engine="restart", **kw)
    _same(seq, rst)
    times = np.asarray(seq.times)
    assert np.isfinite(times).sum() >= 3, "the case must produce spikes"
    if name in ("sparse", "near_miss"):
        # precondition: some neuron goes more than WINDOW input segments without a spike (the skip path runs)
        gaps = [
            np.diff(np.searchsorted(ev_t, np.concatenate([[0.0], t[np.isfinite(t)], [np.inf]]))).max()
            for t in times
        ]
        assert max(gaps) > WINDOW


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sparse", "near_miss", "dense_tref", "reset_above_free"])
@pytest.mark.parametrize("seed", range(8))
def test_restart_window_paths_equal_sequential_many(name, seed):
    ev_t, ev_ch, w, p = _case(name, seed)
    kw = dict(max_out=64, t_end=float(ev_t[-1]) + 1.0)
    _same(
        simulate_layer(ev_t, ev_ch, w, p, engine="sequential", **kw),
        simulate_layer(ev_t, ev_ch, w, p, engine="restart", **kw),
    )
