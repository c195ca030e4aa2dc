"""Graph-level timing check: a target's spike rasters (emulator or float reference) against the exact model.

Per layer, teacher-forced (:func:`snn_deploy.sim.timing.teacher_forced`): the exact layer is driven by what the
target itself produced (the previous layer's observed raster, its own observed raster one step late through the
recurrent weights, the bias), so one flipped spike does not cascade.

Step convention (all targets): after removing the layer's pipeline latency ``L`` (steps after the float model, from
the lowering's LayerMap; 0 for the reference), step ``k`` integrates the input held over [k dt, (k+1) dt), compares
V with the threshold at the end of the step and resets there (``reset = step_end``); a spike at step ``k + L``
claims an exact crossing in [k dt, (k+1) dt). A recurrent spike of step k is input during step k + 1 (pulse over
[(k+1) dt, (k+2) dt)). Input semantics: pulse (a count s in bin k is a current w s over the bin).

Error bound ``tol_v`` (float membrane units), per layer, the sum of:

* ``disc``: the target's per-step coefficients (method ``euler`` or ``exact`` from the graph conventions; for
  Xylo/Loihi the decay errors of the LayerMap) against the exact zero-order-hold coefficients:
  per step ``|da_mem| V_max + |dk_i| I_max + |dk_x| X_max + |dc|`` plus the synaptic error ``(|da_syn| I_max +
  |db_syn| X_max) k_i / (1 - a_syn)``, accumulated by the membrane decay: ``/(1 - a_mem)``;
* ``quant`` (Xylo, Loihi): state rounding of one integer unit per step (floor) and weight rounding (relative error
  of the layer times X_max), converted by the layer's scale, accumulated the same way;
* ``roundoff``: 1e-9 (V_max + X_max) for float arithmetic.

``V_max = max|v_th, v_reset, v_leak|``; ``X_max`` = the largest |input row| the layer received; ``I_max = w_in X_max``.
A mismatch whose exact threshold margin (or overshoot) is below ``tol_v`` is ``marginal``, otherwise
``unexplained``. IF layers (no leak) have no finite accumulated bound: their tol_v is the one-step error.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from snn_deploy.graph import Graph
from snn_deploy.sim.exact_graph import ExactGraphError, ExactLayer, exact_layers
from snn_deploy.sim.timing import LayerTally, StepConvention, teacher_forced, totals

TARGETS = ("reference", "xylo", "loihi2")


@dataclass(frozen=True)
class Observed:
    """A target's per-layer rasters (B, T, n) in its own step time, with the latency and quantisation facts."""

    rasters: dict[str, np.ndarray]
    latency: dict[str, int]
    scale: dict[str, float]  # integer units per float membrane unit (0: float target)
    decay_err: dict[
        str, tuple[float, float]
    ]  # absolute error of the decays (a_syn, a_mem) vs the graph's method
    weight_err: dict[str, float]
    method: str
    notes: tuple[str, ...] = ()


def observe(graph: Graph, target: str, inputs: np.ndarray, lowering: Any = None) -> Observed:
    """Run ``target`` on ``inputs`` (B, T, N_in) and collect every spiking layer's raster.

    Raises:
        ExactGraphError: unknown target.
    """
    method = str(graph.conventions.method.value)
    names = [lay.name for lay in exact_layers(graph)]
    if target == "reference":
        from snn_deploy.sim.reference import simulate

        res = simulate(graph, inputs.astype(np.float64), record=True)
        ras = {n: np.asarray(res.spikes[n]).reshape(inputs.shape[0], inputs.shape[1], -1) for n in names}
        zero = dict.fromkeys(names, 0)
        return Observed(
            ras,
            zero,
            dict.fromkeys(names, 0.0),
            dict.fromkeys(names, (0.0, 0.0)),
            dict.fromkeys(names, 0.0),
            method,
        )
    if target == "xylo":
        from snn_deploy.backends.xylo_lower import lower
        from snn_deploy.sim import xylo as xylo_sim

        low = lowering or lower(graph, target="xylo", variant="syns61201")
        out, _, rec = xylo_sim.evolve(low.spec, inputs.astype(np.int32), record=True, output_mode="Spike")
        ras = {}
        for m in low.layers:
            src = np.asarray(rec["Spikes"]) if m.kind == "hidden" else np.asarray(out)
            ras[m.node] = src[..., m.start : m.start + m.size] if m.kind == "hidden" else src[..., : m.size]
        return Observed(
            ras,
            {m.node: m.latency for m in low.layers},
            {m.node: float(np.min(m.scale)) for m in low.layers},
            {m.node: (float(m.decay_error_syn), float(m.decay_error_mem)) for m in low.layers},
            {m.node: float(m.weight_rel_error) for m in low.layers},
            method,
        )
    if target == "loihi2":
        from snn_deploy.backends.loihi import lower
        from snn_deploy.backends.loihi_netx import to_loihi_network
        from snn_deploy.sim import loihi as loihi_sim

        low = lowering or lower(graph)
        trace = loihi_sim.simulate(to_loihi_network(low.model), inputs.astype(np.int32))
        ras = {m.node: np.asarray(trace.s[i]) for i, m in enumerate(low.layers) if not m.readout}
        return Observed(
            ras,
            {m.node: m.latency for m in low.layers},
            {m.node: float(m.scale) for m in low.layers},
            {m.node: (float(m.decay_error_syn or 0.0), float(m.decay_error_mem)) for m in low.layers},
            {m.node: float(m.weight_rel_error) for m in low.layers},
            method,
        )
    raise ExactGraphError(
        f"unknown timing target {target!r}", param="target", fix="use xylo, loihi2 or reference"
    )


def _coefs(lay: ExactLayer, dt: float, method: str) -> dict[str, np.ndarray]:
    """Per-step coefficients of the layer (reference_ops convention) in numpy."""
    p = lay.neuron
    r = np.asarray(p.r, float)
    if p.kind == "if":
        one = np.ones_like(r)
        return dict(a_syn=0 * one, b_syn=one, a_mem=one, k_i=0 * one, k_x=dt * r, c=0 * one)
    tm = np.asarray(p.tau_mem, float)
    vl = np.asarray(p.v_leak, float)
    if p.tau_syn is None:
        a = 1 - dt / tm if method == "euler" else np.exp(-dt / tm)
        return dict(a_syn=0 * a, b_syn=1 + 0 * a, a_mem=a, k_i=0 * a, k_x=(1 - a) * r, c=(1 - a) * vl)
    ts, w_in = np.asarray(p.tau_syn, float), np.asarray(p.w_in, float)
    if method == "euler":
        a_s, b_s, g = 1 - dt / ts, dt / ts * w_in, dt / tm
        return dict(a_syn=a_s, b_syn=b_s, a_mem=1 - g, k_i=g * r * a_s, k_x=g * r * b_s, c=g * vl)
    a_s, a_m = np.exp(-dt / ts), np.exp(-dt / tm)
    x = dt / tm - dt / ts
    phi = np.where(np.abs(x) < 1e-12, 1.0, np.expm1(x) / np.where(x == 0, 1.0, x))
    big_k = dt / tm * a_m * phi
    return dict(
        a_syn=a_s,
        b_syn=(1 - a_s) * w_in,
        a_mem=a_m,
        k_i=r * big_k,
        k_x=r * w_in * (1 - a_m - big_k),
        c=(1 - a_m) * vl,
    )


def matched(lay: ExactLayer, dt: float, method: str) -> ExactLayer:
    """The layer with time constants whose exact per-step decays equal the ``method``'s decays.

    ``euler``: ``exp(-dt/tau') = 1 - dt/tau``, i.e. ``tau' = -dt / log1p(-dt/tau)`` for tau_mem and tau_syn (r, w_in
    and v_leak unchanged: the Euler input gains dt/tau then equal the exact 1 - exp(-dt/tau')). A forward-Euler LIF
    is then *exactly* the step-end sampling of this continuous LIF; for CubaLIF the synapse is, and the membrane
    differs only by how the current is integrated within a step (bounded by :func:`error_trace`).
    ``exact``: unchanged.
    """
    p = lay.neuron
    if method != "euler" or p.kind != "lif":
        return lay
    conv = lambda tau: -dt / np.log1p(-dt / np.asarray(tau, float))  # noqa: E731
    tau_s = None if p.tau_syn is None else conv(p.tau_syn)
    return replace(lay, neuron=replace(p, tau_mem=conv(p.tau_mem), tau_syn=tau_s))


def error_trace(
    lay: ExactLayer,
    dt: float,
    obs: Observed,
    x: np.ndarray,
    own: np.ndarray,
    target_lay: ExactLayer | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Per-step voltage error bound tol[k, n] along this input (see the module docstring) and its parts' maxima.

    ``x`` [T, n]: the weighted input rows (pulse amplitudes); ``own`` [T, n]: the observed spikes (each adds
    |v_th - v_reset| to the |V| bound). Recursions (first order in the coefficient errors d*):
    ``I_k = a_s I_{k-1} + b_s x_k``; ``U_k = a_m U_{k-1} + |k_i I_{k-1}| + |k_x x_k| + |c|`` (+ reset jumps) bounds |V|;
    ``E^I_k = a_s' E^I_{k-1} + |da_s I_{k-1}| + |db_s x_k|``;
    ``E_k = a_m' E_{k-1} + |da_m| U_{k-1} + |dk_i I_{k-1}| + |dk_x x_k| + |dc| + |k_i'| E^I_{k-1} + q_k`` (primes:
    the target's coefficients, bounded by exact + d, since the error propagates with the target's decay), with the
    quantisation term ``q_k = 1/scale + weight_err |k_x x_k|`` (integer targets).
    """
    p = lay.neuron
    got, ex = _coefs(target_lay or lay, dt, obs.method), _coefs(lay, dt, "exact")
    # the target's decays differ from the method's by the LayerMap's absolute decay errors (sign not recorded:
    # take the worse one)
    de = dict(zip(("a_syn", "a_mem"), obs.decay_err[lay.name], strict=True))
    d = {k: np.abs(got[k] - ex[k]) + de.get(k, 0.0) for k in ex}
    n_t, n = x.shape
    jump = np.abs(np.broadcast_to(np.asarray(p.v_th, float) - np.asarray(p.v_reset, float), (n,)))
    s = obs.scale[lay.name]
    we = obs.weight_err[lay.name]
    a_m_hi = np.abs(ex["a_mem"]) + d["a_mem"]  # the target's decays are within d of the exact ones
    a_s_hi = np.abs(ex["a_syn"]) + d["a_syn"]
    k_i_hi = np.abs(ex["k_i"]) + d["k_i"]
    i_prev, u, ei, e = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n)
    tol = np.empty((n_t, n))
    disc_max = quant_max = 0.0
    for k in range(n_t):
        xa = np.abs(x[k])
        disc = d["a_mem"] * u + d["k_i"] * np.abs(i_prev) + d["k_x"] * xa + d["c"] + k_i_hi * ei
        quant = (1.0 / s + we * np.abs(ex["k_x"]) * xa) if s > 0 else 0.0 * xa
        # errors propagate with the target's decays (D_k = a_target D_{k-1} + (a_target - a_exact) V_exact + ...)
        e = a_m_hi * e + disc + quant
        ei = a_s_hi * ei + d["a_syn"] * np.abs(i_prev) + d["b_syn"] * xa
        u = np.abs(ex["a_mem"]) * u + np.abs(ex["k_i"] * i_prev) + np.abs(ex["k_x"]) * xa + np.abs(ex["c"])
        u = u + jump * (own[k] > 0)
        i_prev = ex["a_syn"] * i_prev + ex["b_syn"] * x[k]
        tol[k] = e + 1e-9 * (u + xa + 1.0)
        disc_max, quant_max = max(disc_max, float(np.max(disc))), max(quant_max, float(np.max(quant)))
    return tol, {
        "tol_v_max": float(tol.max()) if tol.size else 0.0,
        "disc_step_max": disc_max,
        "quant_step_max": quant_max,
    }


def _align(r: np.ndarray, lat: int, t: int) -> np.ndarray:
    """Raster in float-model time: row k = observed row k + lat (zeros past the end)."""
    out = np.zeros((t, r.shape[-1]), np.int64)
    out[: max(t - lat, 0)] = (np.asarray(r)[lat:t] > 0).astype(np.int64)
    return out


def timing_check(
    graph: Graph,
    target: str,
    inputs: np.ndarray,
    *,
    dt: float | None = None,
    lowering: Any = None,
    time_constants: str | None = None,
) -> dict[str, Any]:
    """Teacher-forced timing report of ``target`` on ``inputs`` ((T, N_in) or (B, T, N_in) spike counts).

    ``time_constants`` (which continuous model the target is judged against):

    * ``deployed`` (Xylo only; its default): the continuous network the chip was configured as, with the deployed
      integer weights, dashes, thresholds and biases (:mod:`snn_deploy.sim.timing_xylo`); the error bound is then
      the integer rounding alone. This answers "is the chip's timing right for what it runs".
    * ``matched`` (default otherwise): the graph's network with the time constants whose exact decays equal the
      graph method's decays (see :func:`matched`); for integer targets the bound adds the decay and weight
      quantisation to first order, so it is loose where decays are coarse (answers "how far is the chip from the
      float model's timing").
    * ``nir``: the graph's own continuous time constants.

    Returns a JSON-ready dict: ``spikes`` (target spikes), ``missed`` (exact spikes the target did not produce),
    ``matched``, ``marginal``, ``unexplained`` (labels; they sum to spikes + missed),
    ``convention`` and per-layer ``layers`` (counts, tol_v and its parts, latency, every mismatch).
    """
    x = np.asarray(inputs)
    x = x[None] if x.ndim == 2 else x
    dt = float(dt if dt is not None else graph.conventions.dt.value)
    if time_constants is None:
        time_constants = "deployed" if target == "xylo" else "matched"
    if time_constants not in ("deployed", "matched", "nir"):
        raise ExactGraphError(
            f"unknown time_constants {time_constants!r}", fix="use 'deployed', 'matched' or 'nir'"
        )
    if time_constants == "deployed":
        if target != "xylo":
            raise ExactGraphError(
                f"time_constants 'deployed' is implemented for xylo, not {target!r}",
                param="time_constants",
                fix="use 'matched' or 'nir'",
            )
        from snn_deploy.backends.xylo_lower import lower
        from snn_deploy.sim.timing_xylo import timing_check_deployed

        return timing_check_deployed(lowering or lower(graph, target="xylo", variant="syns61201"), x)
    nir_layers = exact_layers(graph)
    obs = observe(graph, target, x, lowering)
    layers = [matched(lay, dt, obs.method) if time_constants == "matched" else lay for lay in nir_layers]
    n_b, n_t = x.shape[:2]
    t_eff = n_t - max([obs.latency.get(lay.name, 0) for lay in layers] + [0])
    per_layer: dict[str, Any] = {}
    for j, lay in enumerate(layers):
        lat = obs.latency.get(lay.name, 0)
        ws = [lay.w]
        if lay.w_rec is not None:
            ws.append(lay.w_rec)
        if np.any(lay.bias != 0):
            ws.append(lay.bias[None])
        w = np.concatenate(ws)
        tally = LayerTally()
        parts: dict[str, float] = {}
        for b in range(n_b):
            own = _align(obs.rasters[lay.name][b], lat, n_t)[:t_eff]
            if j == 0:
                src = x[b, :t_eff].astype(np.float64)
            else:
                prev = layers[j - 1].name
                src = _align(obs.rasters[prev][b], obs.latency.get(prev, 0), n_t)[:t_eff].astype(np.float64)
            cols = [src]
            if lay.w_rec is not None:
                cols.append(np.concatenate([np.zeros((1, own.shape[1])), own[:-1]]))
            if np.any(lay.bias != 0):
                cols.append(np.ones((t_eff, 1)))
            pulse = np.concatenate(cols, axis=1)
            tol, pb = error_trace(lay, dt, obs, pulse @ w, own, nir_layers[j])
            parts = {k: max(parts.get(k, 0.0), v) for k, v in pb.items()}
            rep = teacher_forced(own, w, lay.neuron, StepConvention(dt), tol_v=tol, pulse=pulse)
            tally.add(rep, own.sum(), b)
        per_layer[lay.name] = {
            "latency_steps": lat,
            **parts,
            "counts": tally.counts,
            "mismatches": tally.mismatches,
        }
    return {
        "target": target,
        **totals(per_layer),
        "convention": {
            "dt": dt,
            "steps_checked": t_eff,
            "interval": "step k + latency covers [k dt, (k+1) dt); threshold and reset at the step end",
            "recurrent_delay_steps": 1,
            "input_semantics": "pulse",
            "method": obs.method,
            "teacher_forced": True,
            "time_constants": time_constants,
        },
        "layers": per_layer,
        "notes": list(obs.notes),
    }


def timing_section(graph: Graph, target: str, lowering: Any, inputs: np.ndarray) -> dict[str, Any]:
    """The deploy report's timing section (``target``: reference, xylo or loihi2; ``lowering`` from the
    backend's ``lower``; ``inputs`` the calibration counts (B, T, N_in)). Same content as :func:`timing_check`."""
    return timing_check(graph, target, inputs, lowering=lowering)
