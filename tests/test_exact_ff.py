"""Restart engine (feed-forward layers) against the sequential event loop: same spikes on random inputs."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_deploy.sim.exact import IF, LIF, CubaLIF, ExactSolverError, simulate_layer, simulate_layer_pulse


def _same(a, b, rtol=1e-12):
    assert not bool(a.truncated) and not bool(b.truncated)
    np.testing.assert_array_equal(np.asarray(a.count), np.asarray(b.count))
    np.testing.assert_array_equal(np.asarray(a.overflow), np.asarray(b.overflow))
    ta, tb = np.asarray(a.times), np.asarray(b.times)
    np.testing.assert_array_equal(np.isfinite(ta), np.isfinite(tb))
    fin = np.isfinite(ta)
    np.testing.assert_allclose(tb[fin], ta[fin], rtol=rtol, atol=1e-15)
    np.testing.assert_allclose(np.asarray(b.v_end), np.asarray(a.v_end), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(np.asarray(b.i_end), np.asarray(a.i_end), rtol=1e-9, atol=1e-9)


_NEURONS = {
    "cuba": lambda r, reset, t_ref: CubaLIF(0.5 * r, 0.5, v_th=1.0, reset=reset, t_ref=t_ref, bias=0.3),
    "lif": lambda r, reset, t_ref: LIF(0.4 * r, v_th=1.0, reset=reset, t_ref=t_ref, v_leak=0.2),
    "if": lambda r, reset, t_ref: IF(v_th=1.0, reset=reset, t_ref=t_ref, bias=-0.05),
    "cuba_if": lambda r, reset, t_ref: IF(v_th=1.0, tau_syn=0.3 * r, reset=reset, t_ref=t_ref),
}


@given(
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(sorted(_NEURONS)),
    ratio=st.sampled_from([0.5, 1.0, 2.0, 3.3]),
    reset=st.sampled_from(["hard", "subtract"]),
    t_ref=st.sampled_from([0.0, 0.07]),
)
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_restart_equals_sequential_delta(seed, kind, ratio, reset, t_ref):
    _check_delta(seed, kind, ratio, reset, t_ref)


@pytest.mark.slow
@given(
    seed=st.integers(0, 2**31),
    kind=st.sampled_from(sorted(_NEURONS)),
    ratio=st.sampled_from([0.5, 1.0, 2.0, 3.3]),
    reset=st.sampled_from(["hard", "subtract"]),
    t_ref=st.sampled_from([0.0, 0.07]),
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_restart_equals_sequential_delta_many(seed, kind, ratio, reset, t_ref):
    _check_delta(seed, kind, ratio, reset, t_ref)


def _check_delta(seed, kind, ratio, reset, t_ref):
    rng = np.random.default_rng(seed)
    n_in, n, n_ev = 5, 4, 50
    ev_t = np.sort(rng.uniform(0, 3, n_ev))
    ev_t[5:8] = ev_t[5]  # simultaneous inputs
    ev_ch = rng.integers(0, n_in, n_ev).astype(np.int32)
    ev_ch[-3:] = -1  # padding
    ev_t[-3:] = np.inf
    w = rng.normal(0.3, 0.5, (n_in, n))
    p = _NEURONS[kind](ratio, reset, t_ref)
    kw = dict(max_out=200, t_end=3.0, v0=rng.uniform(-0.5, 0.9, n))
    seq = simulate_layer(ev_t, ev_ch, w, p, engine="sequential", **kw)
    rst = simulate_layer(ev_t, ev_ch, w, p, engine="restart", **kw)
    _same(seq, rst)


@given(seed=st.integers(0, 2**31), reset=st.sampled_from(["hard", "subtract"]))
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_restart_equals_sequential_pulse(seed, reset):
    _check_pulse(seed, reset)


@pytest.mark.slow
@given(seed=st.integers(0, 2**31), reset=st.sampled_from(["hard", "subtract"]))
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_restart_equals_sequential_pulse_many(seed, reset):
    _check_pulse(seed, reset)


def _check_pulse(seed, reset):
    rng = np.random.default_rng(seed)
    s = (rng.random((80, 6)) < 0.3).astype(float)
    w = rng.normal(0.05, 0.08, (6, 5))
    for p in (LIF(2.5e-3, v_th=0.1, reset=reset), CubaLIF(2.5e-3, 1e-3, v_th=0.1, reset=reset, t_ref=3e-4)):
        seq = simulate_layer_pulse(s, 1e-4, w, p, max_out=64, engine="sequential")
        rst = simulate_layer_pulse(s, 1e-4, w, p, max_out=64, engine="restart")
        _same(seq, rst)


def test_restart_overflow_keeps_first_spikes_and_other_neurons():
    rng = np.random.default_rng(3)
    ev_t, ev_ch = np.sort(rng.uniform(0, 3, 40)), rng.integers(0, 3, 40).astype(np.int32)
    w = np.abs(rng.normal(1.0, 0.2, (3, 3)))
    w[:, 2] = 0.05  # neuron 2 stays quiet
    p = CubaLIF(1.0, 0.5)
    full = simulate_layer(ev_t, ev_ch, w, p, max_out=128, t_end=3.0, engine="restart")
    small = simulate_layer(ev_t, ev_ch, w, p, max_out=3, t_end=3.0, engine="restart")
    np.testing.assert_array_equal(np.asarray(small.times), np.asarray(full.times[:, :3]))
    assert np.array_equal(np.asarray(small.overflow), np.asarray(full.count) > 3)


def test_restart_under_jit_vmap_and_grad():
    rng = np.random.default_rng(5)
    ev_t = np.sort(rng.uniform(0, 2, (3, 30)), axis=1)
    ev_ch = rng.integers(0, 4, (3, 30)).astype(np.int32)
    w = rng.normal(0.8, 0.3, (4, 3))
    p = CubaLIF(1.0, 0.5)
    with jax.enable_x64(True):
        run = lambda t, ch: simulate_layer(t, ch, w, p, max_out=8, t_end=2.0, engine="restart")  # noqa: E731
        batched = jax.jit(jax.vmap(run))(jax.numpy.asarray(ev_t), jax.numpy.asarray(ev_ch))
        for b in range(3):
            np.testing.assert_array_equal(
                np.asarray(batched.times[b]), np.asarray(run(ev_t[b], ev_ch[b]).times)
            )

        def total(w_):
            tr = simulate_layer(ev_t[0], ev_ch[0], w_, p, max_out=8, t_end=2.0, engine="restart")
            return jax.numpy.sum(jax.numpy.where(jax.numpy.isfinite(tr.times), tr.times, 0.0))

        g = np.asarray(jax.jit(jax.grad(total))(jax.numpy.asarray(w)))
        h = 1e-6
        e = np.zeros_like(w)
        e[1, 0] = h
        fd = (float(total(w + e)) - float(total(w - e))) / (2 * h)
    assert abs(g[1, 0] - fd) <= 1e-6 * max(1.0, abs(fd))


def test_restart_rejects_what_it_does_not_cover():
    with pytest.raises(ExactSolverError, match="restart engine"):
        simulate_layer(
            [0.0], [0], [[1.0]], CubaLIF(1.0, 0.5, reset="none"), max_out=2, t_end=1.0, engine="restart"
        )
    with pytest.raises(ExactSolverError, match="restart engine"):
        simulate_layer(
            [0.0], [0], [[1.0]], CubaLIF(1.0, 0.5), max_out=2, t_end=1.0, w_rec=[[0.0]], engine="restart"
        )
