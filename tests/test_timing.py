"""Timing check: teacher-forced comparison of discrete spike steps with exact spike times."""

from __future__ import annotations

import numpy as np
import pytest

from snn_deploy.sim.exact import LIF, ExactSolverError
from snn_deploy.sim.timing import StepConvention, teacher_forced, voltage_error_bound

DT, TAU, TH = 1e-4, 2.5e-3, 0.1


def _setup(seed=0, steps=300, n_in=10, n=6):
    rng = np.random.default_rng(seed)
    s = (rng.random((steps, n_in)) < 0.2).astype(float)
    w = rng.normal(0.08, 0.1, (n_in, n))
    return s, w


def _emulate(s, w, gain, delay=0):
    """Discrete LIF, exact decay, configurable input gain, reset to 0 at step end, optional pipeline delay."""
    b = np.exp(-DT / TAU)
    v = np.zeros(w.shape[1])
    out = np.zeros((s.shape[0], w.shape[1]), int)
    for k in range(s.shape[0]):
        v = b * v + gain * (s[k] @ w)
        f = v >= TH
        out[k] = f
        v[f] = 0.0
    return np.roll(out, delay, axis=0) if delay else out


def test_exact_discretisation_matches():
    s, w = _setup()
    emu = _emulate(s, w, 1 - np.exp(-DT / TAU))  # exact zero-order-hold discretisation of the pulse input
    rep = teacher_forced(emu, w, LIF(TAU, v_th=TH), StepConvention(DT), tol_v=1e-9, pulse=s)
    assert emu.sum() > 20
    assert rep.counts["match"] == emu.sum() and rep.counts["unexplained"] == 0 and rep.counts["missed"] == 0
    assert np.all(rep.margin[rep.label == "match"] <= 0)


def test_forward_euler_gain_is_marginal_within_its_bound():
    """Rockpool/Sinabs-style gain dt/tau (~2 % high): early spikes, all explained by the stated bound."""
    s, w = _setup(1)
    emu = _emulate(s, w, DT / TAU)
    beta = np.exp(-DT / TAU)
    x_max = np.max(np.abs(s @ w))
    bound = voltage_error_bound(0.0, DT, TAU, disc=abs(DT / TAU - (1 - beta)) * x_max / (1 - beta))
    rep = teacher_forced(emu, w, LIF(TAU, v_th=TH), StepConvention(DT), tol_v=bound, pulse=s)
    assert rep.counts["unexplained"] == 0 and rep.counts["marginal"] > 0
    early = rep.label == "marginal"
    assert np.all((rep.margin[early] > 0) & (rep.margin[early] < bound))
    # with a too-tight bound the same spikes are unexplained
    tight = teacher_forced(emu, w, LIF(TAU, v_th=TH), StepConvention(DT), tol_v=1e-12, pulse=s)
    assert tight.counts["unexplained"] == rep.counts["marginal"]


def test_pipeline_latency_convention():
    s, w = _setup(2)
    emu = _emulate(s, w, 1 - np.exp(-DT / TAU), delay=1)  # Lava-style one-step Dense -> LIF delay
    lif = LIF(TAU, v_th=TH)
    ok = teacher_forced(emu, w, lif, StepConvention(DT, latency_steps=1), tol_v=1e-9, pulse=s)
    assert ok.counts["unexplained"] == 0 and ok.counts["match"] == emu.sum()
    bad = teacher_forced(emu, w, lif, StepConvention(DT), tol_v=1e-9, pulse=s)
    assert bad.counts["unexplained"] > 0
    late = bad.residual_steps[bad.label == "unexplained"]
    assert np.all((late > 0) | np.isnan(late))
    d = bad.to_dict()
    assert (
        d["convention"]["latency_steps"] == 0
        and len(d["mismatches"]) == bad.counts["unexplained"] + bad.counts["marginal"]
    )


def test_missed_spike_and_delta_input():
    """An emulator that drops a spike: the exact crossing is reported as missed and unexplained."""
    s, w = _setup(3)
    emu = _emulate(s, w, 1 - np.exp(-DT / TAU))
    k, nn = np.argwhere(emu)[-1]
    emu[k, nn] = 0
    rep = teacher_forced(emu, w, LIF(TAU, v_th=TH), StepConvention(DT), tol_v=1e-9, pulse=s)
    assert rep.counts["missed"] >= 1 and "unexplained" in set(rep.label[rep.step == -1])
    # delta input: crossings happen only at input times (LIF voltage jumps), the emulator sees them in that step
    ev_t, ev_ch = np.array([0.00015, 0.00035]), np.array([0, 0], np.int32)
    emu_d = np.zeros((5, 1), int)
    emu_d[1, 0] = emu_d[3, 0] = 1
    rep = teacher_forced(
        emu_d, np.array([[TAU * 0.2]]), LIF(TAU, v_th=TH), StepConvention(DT), tol_v=1e-9, ev=(ev_t, ev_ch)
    )
    assert rep.counts["match"] == 2


def test_bad_convention():
    with pytest.raises(ExactSolverError):
        StepConvention(0.0)
    with pytest.raises(ExactSolverError):
        voltage_error_bound(1.0, 1e-3, np.inf)
