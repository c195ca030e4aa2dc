"""Deployed-model timing check of Xylo (sim/timing_xylo.py): the continuous model, the error bound, the labels."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_deploy import load
from snn_deploy.backends.xylo_lower import lower
from snn_deploy.sim import xylo as xylo_sim
from snn_deploy.sim.timing import StepConvention, teacher_forced
from snn_deploy.sim.timing_xylo import (
    DeployedLayer,
    continuous_neuron,
    delivered,
    deployed_layers,
    error_bound,
    saturation_excess,
    timing_check_deployed,
)

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits" / "digits.nir"
DT = 1e-3


def _unrounded(w, src, a_s, a_m, bias, thr, n_max):
    """Xylo's update in exact arithmetic (no rounding, no clamps): returns counts [T, n] and V after reset."""
    n_t, n = src.shape[0], w.shape[1]
    i, v = np.zeros(n), np.zeros(n)
    counts, vs = np.zeros((n_t, n), np.int64), np.zeros((n_t, n))
    for k in range(n_t):
        i = a_s * (i + src[k] @ w)
        v = a_m * v + i + bias
        c = np.where(v >= thr, np.minimum(np.floor(v / thr), n_max), 0).astype(np.int64)
        v = v - c * thr
        counts[k], vs[k] = c, v
    return counts, vs


@settings(max_examples=4, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    ds=st.integers(1, 6),
    dm=st.integers(1, 6),
    n_max=st.sampled_from([1, 31]),
)
def test_continuous_neuron_is_the_unrounded_xylo_update(seed, ds, dm, n_max):
    """Xylo without rounding is exactly the step-end sampling of the continuous model under delta input at step
    starts: the unrounded recursion, as an 'emulator', has every spike matched within float round-off."""
    rng = np.random.default_rng(seed)
    n_in, n, n_t = 5, 4, 60
    w = rng.integers(-60, 120, (n_in, n)).astype(np.float64)
    x = rng.poisson(0.6, (n_t, n_in)).astype(np.float64)
    thr = rng.integers(150, 400, n).astype(np.float64)
    bias = rng.integers(-3, 6, n).astype(np.float64)
    a_s, a_m = 1 - 2.0**-ds, 1 - 2.0**-dm
    counts, _ = _unrounded(w, x, a_s, a_m, bias, thr, n_max)
    p = continuous_neuron(np.full(n, ds), np.full(n, dm), thr, bias, DT)
    k, c = np.nonzero(x)
    reps = x[k, c].astype(int)
    ev = (np.repeat(k * DT, reps), np.repeat(c, reps))
    rep = teacher_forced(counts, w, p, StepConvention(DT), tol_v=1e-9 * thr.max(), ev=ev)
    assert rep.counts["unexplained"] == 0, rep.to_dict()["mismatches"]
    # labels other than match only where the exact model crosses inside an interval and falls back below
    # threshold by its end (invisible to a step-end sampler): their sampled overshoot is <= 0
    assert np.all(rep.overshoot[rep.label == "marginal"] <= 1e-9 * thr.max())


def _digits_lowering():
    if not DIGITS.exists():
        pytest.skip(f"{DIGITS} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lower(load(DIGITS), target="xylo", variant="syns61201")


@pytest.mark.parametrize("gain", [1, 6])  # gain 6 drives many more states into the int16 clamps
def test_error_bound_holds_on_the_emulator(gain):
    """|V_chip - V_unrounded| <= error_bound at every step and neuron, teacher-forced with the chip's spikes,
    with and without saturation (the clamp excess is part of the bound)."""
    low = _digits_lowering()
    rng = np.random.default_rng(gain)
    x = np.minimum(rng.poisson(0.4 * gain, (3, 40, 16)), 15).astype(np.int64)
    out, _, rec = xylo_sim.evolve(low.spec, x.astype(np.int32), record=True)
    hidden = np.asarray(rec["Spikes"]).astype(np.int64)
    saturated = 0
    for lay in deployed_layers(low):
        hid = lay.kind == "hidden"
        v_all = np.asarray(rec["Vmem" if hid else "Vmem_out"])[..., lay.cols].astype(np.int64)
        i_all = np.asarray(rec["Isyn" if hid else "Isyn_out"])[..., lay.cols].astype(np.int64)
        own = (hidden if hid else np.asarray(out))[..., lay.cols].astype(np.int64)
        for b in range(x.shape[0]):
            src = delivered(lay, x[b], hidden[b])
            ex_i, ex_v = saturation_excess(lay, src, v_all[b], i_all[b], own[b])
            saturated += int(np.sum(ex_v > 0) + np.sum(ex_i > 0))
            tol = error_bound(lay, ex_i, ex_v)
            i, v = np.zeros(lay.w.shape[1]), np.zeros(lay.w.shape[1])
            for k in range(src.shape[0]):
                i = lay.a_syn * (i + src[k] @ lay.w)
                v = lay.a_mem * v + i + lay.bias - own[b, k] * lay.thr  # teacher-forced resets
                assert np.all(np.abs(v - v_all[b, k]) <= tol[k] + 1e-6), (lay.name, b, k)
    if gain > 1:
        assert saturated > 0


def test_bound_without_saturation_is_tight():
    """The pure rounding bound is (1 + 2^ds) 2^dm units: small against the deployed thresholds."""
    low = _digits_lowering()
    for lay in deployed_layers(low):
        assert isinstance(lay, DeployedLayer)
        zero = np.zeros((200, lay.a_mem.size))
        bound = error_bound(lay, zero, zero)[-1]
        np.testing.assert_allclose(bound, (1 + 2.0**lay.dash_syn) * 2.0**lay.dash_mem, rtol=1e-6)
        assert np.all(bound < 0.05 * lay.thr)


def test_digits_on_xylo_has_no_unexplained_spike():
    low = _digits_lowering()
    x = (np.random.default_rng(0).random((2, 60, 16)) < 0.1).astype(np.int64)
    rep = timing_check_deployed(low, x)
    assert rep["spikes"] > 100 and rep["unexplained"] == 0
    assert rep["matched"] + rep["marginal"] + rep["unexplained"] == rep["spikes"] + rep["missed"]
    assert rep["convention"]["time_constants"] == "deployed"


def _late_hidden(real):
    def evolve(*a, **k):  # hidden spikes reported one step late
        out, st_, rec = real(*a, **k)
        s = np.asarray(rec["Spikes"])
        return out, st_, {**rec, "Spikes": np.concatenate([np.zeros_like(s[:, :1]), s[:, :-1]], axis=1)}

    return evolve


def _wrong_thresholds(real):
    def evolve(spec, *a, **k):  # a chip configured with thresholds 10 % off
        thr, thr_o = (spec.threshold * 1.1).astype(np.int64), (spec.threshold_out * 0.9).astype(np.int64)
        return real(dataclasses.replace(spec, threshold=thr, threshold_out=thr_o), *a, **k)

    return evolve


@pytest.mark.parametrize("fault", [_late_hidden, _wrong_thresholds])
def test_a_chip_with_wrong_timing_is_caught(monkeypatch, fault):
    """The check is not vacuous: a chip that reports hidden spikes one step late, or runs thresholds 10 % off,
    gives unexplained mismatches for a large share of its spikes (the correct chip: none)."""
    low = _digits_lowering()
    x = (np.random.default_rng(0).random((2, 60, 16)) < 0.1).astype(np.int64)
    monkeypatch.setattr(xylo_sim, "evolve", fault(xylo_sim.evolve))
    lay = timing_check_deployed(low, x)["layers"]["lif1"]["counts"]
    assert lay["unexplained"] > 0.2 * lay["spikes"]
