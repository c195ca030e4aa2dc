"""Timing check of a deployed Xylo network against the exact continuous-time model *of that deployment*.

Xylo's per-step update without rounding (xylo.md section 3; integer units, dashes ``ds``, ``dm``)::

    P_k = I_{k-1} + W x_k            (delivery: input counts of step k, hidden counts of step k-1)
    I_k = a_s P_k                    (a_s = 1 - 2^-ds: Isyn decays after delivery, in the same step)
    V_k = a_m V_{k-1} + I_k + bias   (a_m = 1 - 2^-dm), then V -= thr per spike while V >= thr

is *exactly* the step-end sampling of a continuous CuBa-LIF (NIR conventions, :class:`~snn_deploy.sim.exact_core.Neuron`)
driven by current jumps (delta input) at the start of each step, with

    tau_syn = -dt / ln a_s,  tau_mem = -dt / ln a_m,  w_in = tau_syn (a jump of w / tau_syn * w_in = w),
    r = a_s / G,  G = (a_s - a_m) tau_syn / (tau_syn - tau_mem)  (G = a_m dt / tau_mem when tau_syn = tau_mem),
    v_leak = bias / (1 - a_m),  v_th = thr,  v_reset = 0,  reset by subtraction.

(G is the membrane's step-end response to a unit current at the step start.) So the chip is compared with the
continuous network it was configured as, not with the float model before quantisation: the quantisation of
weights and decays is the deployment's business (the report's agreement figures); what is left between the two
is what the timing check should judge: the integer rounding of the decays, saturation, and the step-end threshold
check.

Step convention: step k covers [k dt, (k+1) dt); input counts of step k (capped at 15, as the core does) land at
k dt, hidden counts of step k (capped at 31) at (k+1) dt (hidden -> hidden and hidden -> output latency 1);
threshold and reset at the step end. Teacher-forced: each layer is driven by the observed counts.

Error bound (integer units, per step and neuron; :func:`error_bound`): each decay ``x - (x >> d)`` (with
Xylo's "at least 1" rule for positive x) differs from ``a x`` by less than one unit, so
``E_I,k = a_s E_I,k-1 + 1`` bounds the synaptic error and ``E_V,k = a_m E_V,k-1 + 1 + E_I,k`` the membrane's.
Saturation: where an int16 clamp can act, the excess it injected (measured from the recorded states, see
:func:`saturation_excess`) is added to the bound; the report counts those neuron-steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from snn_deploy.errors import SnnDeployError
from snn_deploy.sim import xylo as xylo_sim
from snn_deploy.sim.exact_core import CubaLIF, Neuron
from snn_deploy.sim.timing import LayerTally, StepConvention, teacher_forced, totals

MAX_INPUT_COUNT = 15  # the core caps input counts per step (xylo.md 3: n_in = min(x, 15))
MAX_HIDDEN_COUNT = 31  # hidden neurons emit at most 31 spikes per step


class XyloTimingError(SnnDeployError):
    """The deployed Xylo network uses a feature the deployed-model timing check does not model."""


@dataclass(frozen=True)
class DeployedLayer:
    """One layer of the deployed network as a continuous model: rows of ``w`` are the sources
    ``[input channels (Nin), hidden neurons (Nh)]`` in integer units; ``cols`` its neurons' Xylo indices."""

    name: str
    kind: str  # "hidden" or "output"
    cols: slice
    w: np.ndarray
    neuron: Neuron
    latency: int
    dash_syn: np.ndarray  # int
    dash_mem: np.ndarray
    thr: np.ndarray
    bias: np.ndarray

    @property
    def a_syn(self) -> np.ndarray:
        """Per-step synaptic decay without rounding, 1 - 2^-dash_syn."""
        return 1 - 2.0 ** -self.dash_syn.astype(np.float64)

    @property
    def a_mem(self) -> np.ndarray:
        """Per-step membrane decay without rounding, 1 - 2^-dash_mem."""
        return 1 - 2.0 ** -self.dash_mem.astype(np.float64)


def _effective(w: np.ndarray, shift: int) -> np.ndarray:
    """Effective int16 weights ``wrap16(w << shift)`` as int64 (the C++ truncates the shifted weight to int16)."""
    return xylo_sim._raw_effective(np.asarray(w, np.int64), shift).astype(np.int64) << int(shift)


def continuous_neuron(
    dash_syn: np.ndarray, dash_mem: np.ndarray, thr: np.ndarray, bias: np.ndarray, dt: float
) -> Neuron:
    """The CuBa-LIF whose step-end samples under delta input at step starts equal Xylo's unrounded update.

    Raises:
        XyloTimingError: a dash of 0 (decay to zero in one step: no finite time constant).
    """
    ds, dm = np.asarray(dash_syn, np.float64), np.asarray(dash_mem, np.float64)
    if np.any(ds < 1) or np.any(dm < 1):
        raise XyloTimingError(
            "a dash of 0 has no continuous-time equivalent", param="dash", fix="deploy with dashes >= 1"
        )
    a_s, a_m = 1 - 2.0**-ds, 1 - 2.0**-dm
    tau_s, tau_m = -dt / np.log(a_s), -dt / np.log(a_m)
    same = np.isclose(tau_s, tau_m, rtol=1e-12, atol=0)
    gain = np.where(
        same, a_m * dt / tau_m, (a_s - a_m) * tau_s / np.where(same, 1.0, tau_s - tau_m)
    )  # step-end membrane response to a unit current at the step start
    return CubaLIF(
        tau_m,
        tau_s,
        v_th=np.asarray(thr, np.float64),
        r=a_s / gain,
        v_leak=np.asarray(bias, np.float64) / (1 - a_m),
        v_reset=0.0,
        w_in=tau_s,
        reset="subtract",
    )


def deployed_layers(lowering: Any) -> list[DeployedLayer]:
    """The deployed network of a :class:`~snn_deploy.backends.xylo_lower.XyloLowering`, layer by layer."""
    spec = lowering.spec
    if spec.aliases and any(len(a) for a in spec.aliases):
        raise XyloTimingError("aliases are not modelled by the timing check", param="aliases")
    n_in, n_h = spec.weights_in.shape[0], spec.weights_rec.shape[0]
    w_in = np.zeros((n_in, n_h, 2), np.int64)
    w_in[:, : spec.weights_in.shape[1]] = _effective(spec.weights_in, spec.weight_shift_in)
    w_rec = _effective(spec.weights_rec, spec.weight_shift_rec)
    w_out = np.zeros((n_h, spec.weights_out.shape[1]), np.int64)
    w_out[n_h - spec.weights_out.shape[0] :] = _effective(spec.weights_out, spec.weight_shift_out)
    layers = []
    for m in lowering.layers:
        if m.kind == "hidden":
            cols = slice(m.start, m.start + m.size)
            if np.any(w_in[:, cols, 1]) or np.any(w_rec[:, cols, 1]):
                raise XyloTimingError(
                    f"layer {m.node} uses the second synapse",
                    param="weights_rec",
                    fix="one synapse per neuron",
                )
            w = np.concatenate([w_in[:, cols, 0], w_rec[:, cols, 0]])
            dash = (spec.dash_syn[cols], spec.dash_mem[cols], spec.threshold[cols], spec.bias[cols])
        else:
            cols = slice(0, m.size)
            w = np.concatenate([np.zeros((n_in, m.size), np.int64), w_out[:, cols]])
            dash = (
                spec.dash_syn_out[cols],
                spec.dash_mem_out[cols],
                spec.threshold_out[cols],
                spec.bias_out[cols],
            )
        p = continuous_neuron(*dash, lowering.dt)
        ints = [np.asarray(a, np.int64) for a in dash]
        layers.append(DeployedLayer(m.node, m.kind, cols, w.astype(np.float64), p, int(m.latency), *ints))
    return layers


def _dec(v: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Xylo's decay amount: ``v >> d`` (floor), replaced by 1 when that is 0 and v > 0 (xylo.md 2)."""
    q = v >> d
    return np.where((q == 0) & (v > 0), 1, q)


def _pre_decay(i_rec: np.ndarray, target: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The int16 value P nearest ``target`` with ``P - dec(P, d) == i_rec`` (the delivered, pre-decay Isyn).

    ``P -> P - dec(P, d)`` is monotone with slope >= 1/2 for d >= 1, so the solutions lie within a few units of
    ``i_rec / (1 - 2^-d)``; returns ``target`` itself whenever it is a solution.
    """
    a = 1 - 2.0 ** -d.astype(np.float64)
    guess = np.rint(i_rec / a).astype(np.int64)
    best = np.where(target - _dec(target, d) == i_rec, target, np.iinfo(np.int64).max // 4)
    for off in range(-3, 4):
        c = np.clip(guess + off, -(2**15), 2**15 - 1)
        ok = (c - _dec(c, d)) == i_rec
        best = np.where(ok & (np.abs(c - target) < np.abs(best - target)), c, best)
    return best


def saturation_excess(
    lay: DeployedLayer, src: np.ndarray, v_rec: np.ndarray, i_rec: np.ndarray, spikes: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-step error (integer units, [T, n]) that int16 clamping injected into Isyn and Vmem of one sample.

    ``src`` [T, Nin + Nh]: the counts delivered in each step (capped input counts of step k, capped hidden counts of
    step k - 1); ``v_rec``, ``i_rec``, ``spikes``: the recorded Vmem (after reset), Isyn (after decay), counts.
    A clamp can only act where an intermediate sum leaves the int16 range (every positive delivery before every
    negative one, or the reverse; ``-dec(V) + S``, ``+ bias``, ``V + dv``); there the excess is the distance between
    the unclamped integer update and the recorded one. Elsewhere it is 0 by construction, so an emulator that
    computes something else is not excused by this term.
    """
    lo, hi = -(2**15), 2**15 - 1
    i_prev = np.concatenate([np.zeros_like(i_rec[:1]), i_rec[:-1]]).astype(np.int64)
    v_prev = np.concatenate([np.zeros_like(v_rec[:1]), v_rec[:-1]]).astype(np.int64)
    w = lay.w.astype(np.int64)
    p_unc = i_prev + src @ w
    pos, neg = i_prev + src @ np.maximum(w, 0), i_prev + src @ np.minimum(w, 0)
    sat_i = (pos > hi) | (neg < lo)
    p_act = _pre_decay(i_rec.astype(np.int64), np.clip(p_unc, lo, hi), lay.dash_syn)
    ex_i = np.where(sat_i, np.abs(p_unc - p_act), 0)
    dv = -_dec(v_prev, lay.dash_mem) + i_rec.astype(np.int64)  # S after decay (one synapse)
    pre_unc = v_prev + dv + lay.bias
    sat_v = (
        (dv < lo) | (dv > hi) | (dv + lay.bias < lo) | (dv + lay.bias > hi) | (pre_unc < lo) | (pre_unc > hi)
    )
    pre_act = v_rec.astype(np.int64) + spikes.astype(np.int64) * lay.thr  # undo the subtractive resets
    ex_v = np.where(sat_v, np.abs(pre_unc - pre_act), 0)
    return ex_i.astype(np.float64), ex_v.astype(np.float64)


def error_bound(lay: DeployedLayer, ex_i: np.ndarray, ex_v: np.ndarray) -> np.ndarray:
    """Per-step bound [T, n] (integer units) on |V_chip - V_continuous|: rounding (each decay is within one unit
    of ``a x``) plus the measured clamp excess, propagated by the decays:
    ``E_I,k = a_s E_I,k-1 + 1 + ex_I,k``, ``E_V,k = a_m E_V,k-1 + 1 + E_I,k + ex_V,k``. Without saturation it
    grows from 0 towards ``(1 + 1/(1 - a_s)) / (1 - a_m)``."""
    e_i, e_v = np.zeros_like(lay.a_syn), np.zeros_like(lay.a_mem)
    out = np.empty(ex_v.shape)
    for k in range(ex_v.shape[0]):
        e_i = lay.a_syn * e_i + 1.0 + ex_i[k]
        e_v = lay.a_mem * e_v + 1.0 + e_i + ex_v[k]
        out[k] = e_v
    return out


def delivered(lay: DeployedLayer, x: np.ndarray, hidden: np.ndarray) -> np.ndarray:
    """Counts [T, Nin + Nh] delivered to ``lay`` in each step of one sample: the input counts of step k (capped at
    15; output layers have no input weights) and the hidden counts of step k - 1 (capped at 31)."""
    x_k = np.minimum(x, MAX_INPUT_COUNT) if lay.kind == "hidden" else np.zeros_like(x)
    h = np.minimum(hidden, MAX_HIDDEN_COUNT)
    return np.concatenate([x_k, np.concatenate([np.zeros_like(h[:1]), h[:-1]])], axis=1).astype(np.int64)


def _events(src: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """One delta event per delivered spike: ``src[k, c]`` events on channel c at the start of step k, k dt
    (time-sorted: np.nonzero walks the rows in order)."""
    k, c = np.nonzero(src)
    reps = src[k, c]
    return np.repeat(k * dt, reps), np.repeat(c, reps)


def timing_check_deployed(lowering: Any, inputs: np.ndarray) -> dict[str, Any]:
    """Teacher-forced timing of the Xylo emulator on ``inputs`` (B, T, Nin) counts against the deployment's own
    continuous model; same report layout as :func:`snn_deploy.sim.timing_graph.timing_check`."""
    x = np.asarray(inputs)
    x = x[None] if x.ndim == 2 else x
    dt = float(lowering.dt)
    out, _, rec = xylo_sim.evolve(lowering.spec, x.astype(np.int32), record=True, output_mode="Spike")
    hidden = np.asarray(rec["Spikes"]).astype(np.int64)
    states = {
        "hidden": (np.asarray(rec["Vmem"]), np.asarray(rec["Isyn"])),
        "output": (np.asarray(rec["Vmem_out"]), np.asarray(rec["Isyn_out"])),
    }
    n_b, n_t = x.shape[:2]
    per_layer: dict[str, Any] = {}
    for lay in deployed_layers(lowering):
        own_all = (hidden[..., lay.cols] if lay.kind == "hidden" else np.asarray(out)[..., lay.cols]).astype(
            np.int64
        )
        v_all, i_all = (s[..., lay.cols] for s in states[lay.kind])
        tally = LayerTally()
        tol_max, sat_steps, sat_max = 0.0, 0, 0.0
        for b in range(n_b):
            src = delivered(lay, x[b], hidden[b])
            ex_i, ex_v = saturation_excess(lay, src, v_all[b], i_all[b], own_all[b])
            tol = error_bound(lay, ex_i, ex_v)
            tol_max = max(tol_max, float(tol.max()))
            sat_steps += int(np.sum((ex_i > 0) | (ex_v > 0)))
            sat_max = max(sat_max, float(max(ex_i.max(), ex_v.max())))
            rep = teacher_forced(
                own_all[b], lay.w, lay.neuron, StepConvention(dt), tol_v=tol, ev=_events(src, dt)
            )
            tally.add(rep, (own_all[b] > 0).sum(), b)
        per_layer[lay.name] = {
            "latency_steps": lay.latency,
            "tol_v_max": tol_max,
            "tol_v_rounding_only": float(np.max((1 + 1 / (1 - lay.a_syn)) / (1 - lay.a_mem))),
            "tol_units": "integer membrane units",
            "threshold_min": float(np.min(lay.neuron.v_th)),
            "tau_syn_s": [float(np.min(lay.neuron.tau_syn)), float(np.max(lay.neuron.tau_syn))],
            "tau_mem_s": [float(np.min(lay.neuron.tau_mem)), float(np.max(lay.neuron.tau_mem))],
            "saturated_neuron_steps": sat_steps,
            "saturation_excess_max": sat_max,
            "counts": tally.counts,
            "mismatches": tally.mismatches,
        }
    return {
        "target": "xylo",
        **totals(per_layer),
        "convention": {
            "dt": dt,
            "steps_checked": n_t,
            "interval": "Xylo step k covers [k dt, (k+1) dt); threshold and reset at the step end",
            "input_semantics": "delta at the step start (input counts of step k at k dt, hidden counts at (k+1) dt)",
            "recurrent_delay_steps": 1,
            "method": "xylo integer update (deployed dashes, weights, thresholds)",
            "teacher_forced": True,
            "time_constants": "deployed",
        },
        "layers": per_layer,
        "notes": [
            f"{name}: int16 clamping in {lay['saturated_neuron_steps']} neuron-steps (excess up to "
            f"{lay['saturation_excess_max']:.0f} units, included in tol_v)"
            for name, lay in per_layer.items()
            if lay["saturated_neuron_steps"]
        ],
    }
