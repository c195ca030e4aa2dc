"""Event-exact simulation of layers and networks with fixed-size buffers (jit/vmap/grad safe).

A layer is one population (neurons as an array axis) driven by a sorted input event stream. One ``lax.scan``
step processes the earliest pending event: either the next input event or the earliest threshold crossing of
any neuron before it (found exactly by :func:`snn_deploy.sim.exact_core.next_crossing`). The scan has a fixed
length ``n_inputs + max_spike_steps``; once everything up to ``t_end`` is processed the remaining steps are skipped
with ``lax.cond``. Buffers: output times ``[n, max_out]`` padded with +inf, counts ``[n]``, per-neuron overflow
flags (spikes beyond ``max_out`` are simulated but not stored) and a ``truncated`` flag (step budget exhausted
before ``t_end``: results after the last processed event are missing; raise ``max_spike_steps``).

Event policy (documented tie-break):
* a crossing at exactly the time of an input event is emitted before the input is applied;
* all neurons whose crossing time equals the earliest one spike together; with recurrent weights, all of them are
  reset first, then their recurrent jumps are delivered at the same time (zero delay);
* a voltage jump that lifts V to >= v_th produces a spike at the jump time (``immediate``), then the reset.

Input kinds:
* delta: ``ev_t`` (float, sorted, +inf padded) and ``ev_ch`` (int32 source channel, -1 padded); each event adds
  row ``W[ch]`` with NIR delta scaling (I += w_in w / tau_syn, or V += r w / tau_mem (LIF), V += r w (IF));
* pulse: spike counts ``S[k, i]`` in bins of width ``dt`` starting at ``t_start``; over
  [t_start + k dt, t_start + (k+1) dt) the input current is ``x = S[k] @ W`` (NIR: S(t) = x held constant).
"""

from __future__ import annotations

import functools
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp

from snn_deploy.sim.exact_core import (
    F64,
    Coef,
    ExactSolverError,
    Neuron,
    Seg,
    coef,
    current,
    next_crossing,
    validate,
    voltage,
    x64,
)
from snn_deploy.sim.exact_ff import run_delta, run_pulse

Engine = Literal["auto", "sequential", "restart"]


def pick_engine(engine: Engine, p: Neuron, w_rec: Any, max_spike_steps: int | None) -> str:
    """Resolve ``engine``: ``"restart"`` (:mod:`snn_deploy.sim.exact_ff`, one round per spike of a neuron; fast)
    needs a feed-forward layer (no ``w_rec``) with reset ``hard``/``subtract``; ``"sequential"`` (one scan step per
    input event and per spike) handles everything. ``"auto"`` takes restart where it applies, unless an explicit
    ``max_spike_steps`` budget (a sequential-engine setting) is given. Both give the same spikes.

    Raises:
        ExactSolverError: ``engine="restart"`` requested for a layer it does not cover.
    """
    ok = w_rec is None and p.reset in ("hard", "subtract")
    if engine == "restart" and not ok:
        raise ExactSolverError(
            "the restart engine needs a feed-forward layer with reset 'hard' or 'subtract'",
            param="engine",
            fix="use engine='sequential' (or 'auto') for recurrent layers and reset='none'",
        )
    if engine not in ("auto", "sequential", "restart"):
        raise ExactSolverError(f"unknown engine {engine!r}", fix="use 'auto', 'sequential' or 'restart'")
    if engine == "auto":
        return "restart" if ok and max_spike_steps is None else "sequential"
    return engine


class SpikeTrain(NamedTuple):
    """Output of one layer (arrays over neurons n and buffer slots max_out).

    times: [n, max_out] spike times, +inf padded. count: [n] stored spikes. overflow: [n] more spikes than
    max_out occurred. truncated: scalar, the step budget ran out before t_end. slope: [n, max_out] dV/dt at the
    crossing (0 for immediate spikes caused by voltage jumps). cond: [n, max_out] time uncertainty from
    round-off. grazing: [n, max_out] near-tangential crossings. v_end, i_end: state at t_end.
    """

    times: jax.Array
    count: jax.Array
    overflow: jax.Array
    truncated: jax.Array
    slope: jax.Array
    cond: jax.Array
    grazing: jax.Array
    v_end: jax.Array
    i_end: jax.Array


class _State(NamedTuple):
    t: jax.Array
    v: jax.Array
    i: jax.Array
    x: jax.Array
    ref: jax.Array
    armed: jax.Array
    k: jax.Array
    done: jax.Array
    times: jax.Array
    count: jax.Array
    overflow: jax.Array
    slope: jax.Array
    cond: jax.Array
    grazing: jax.Array


def _segments(st: _State, c: Coef) -> tuple[Seg, Seg]:
    """(seg at st.t, seg at the end of refractoriness clipped to >= st.t): V frozen while refractory."""
    seg0 = Seg(jnp.broadcast_to(st.t, st.v.shape), st.v, st.i, st.x, c)
    ts = jnp.maximum(st.t, st.ref)
    i_ts = current(ts - st.t, seg0)
    return seg0, Seg(ts, st.v, i_ts, st.x, c)


def _advance(seg0: Seg, seg1: Seg, t_to: jax.Array) -> tuple[jax.Array, jax.Array]:
    """State at ``t_to``: refractory lanes (t_to <= end of refractoriness) keep V and only flow I."""
    refr = t_to <= seg1.t0
    d1 = jnp.where(refr, 0.0, t_to - seg1.t0)
    v1, i1 = voltage(d1, seg1), current(d1, seg1)
    i_r = current(jnp.where(refr, t_to - seg0.t0, 0.0), seg0)
    return jnp.where(refr, seg0.v0, v1), jnp.where(refr, i_r, i1)


def _step(st: _State, inp: dict[str, Any], c: Coef, reset: int, kind: str, t_end: jax.Array) -> _State:
    ev_t = inp["t"]
    n_ev = ev_t.shape[0]
    t_in = jnp.where(st.k < n_ev, ev_t[jnp.minimum(st.k, n_ev - 1)], jnp.inf)
    horizon = jnp.minimum(t_in, t_end)
    seg0, seg1 = _segments(st, c)
    cr = next_crossing(seg1, jnp.broadcast_to(horizon, st.v.shape), st.armed)
    t_min = jnp.min(cr.t)
    fire = cr.has & (cr.t <= horizon)
    spike_now = jnp.any(fire)
    spikers = fire & (cr.t == t_min)
    # every lane moves to the event time; spikers use their own (identical) crossing time for gradients
    t_ev = jnp.where(spike_now, t_min, horizon)
    t_lane = jnp.where(spikers, cr.t, t_ev)
    v, i = _advance(seg0, seg1, t_lane)
    # --- spike branch: record, reset, refractoriness, recurrent jumps
    max_out = st.times.shape[1]
    slot = jax.nn.one_hot(jnp.minimum(st.count, max_out - 1), max_out, dtype=bool) & spikers[:, None]
    store = st.count < max_out
    rec = slot & store[:, None]
    times = jnp.where(rec, t_lane[:, None], st.times)
    slope = jnp.where(rec, cr.slope[:, None], st.slope)
    cnd = jnp.where(rec, cr.cond[:, None], st.cond)
    graz = jnp.where(rec, cr.grazing[:, None], st.grazing)
    count = st.count + (spikers & store).astype(jnp.int32)
    overflow = st.overflow | (spikers & ~store)
    if reset == 0:
        v_sp = jnp.where(spikers, c.v_reset, v)
    elif reset == 1:
        v_sp = jnp.where(spikers, v - (c.v_th - c.v_reset), v)
    else:
        v_sp = v
    armed_sp = jnp.where(spikers, reset != 2, st.armed | (v < c.v_th))
    ref_sp = jnp.where(spikers, t_lane + c.t_ref, st.ref)
    i_sp = i
    w_rec = inp.get("w_rec")
    if w_rec is not None:
        jump = spikers.astype(F64) @ w_rec
        v_sp, i_sp = _deliver(jump, v_sp, i_sp, ref_sp, t_ev, c)
        armed_sp = armed_sp | (v_sp < c.v_th)
    # --- input branch (no spike before the horizon)
    has_in = (~spike_now) & (t_in <= t_end) & (st.k < n_ev)
    armed_in = st.armed | (v < c.v_th)
    if kind == "delta":
        ch = inp["ch"][jnp.minimum(st.k, n_ev - 1)]
        row = jnp.where(ch >= 0, inp["w"][jnp.maximum(ch, 0)], 0.0)
        v_in, i_in = _deliver(jnp.where(has_in, row, 0.0), v, i, st.ref, t_ev, c)
        x_in = st.x
    else:
        v_in, i_in = v, i
        x_in = jnp.where(has_in, inp["x"][jnp.minimum(st.k, n_ev - 1)], st.x)
    armed_in = armed_in | (v_in < c.v_th)
    done = (~spike_now) & ~has_in
    pick = lambda a, b: jnp.where(spike_now, a, b)  # noqa: E731
    return _State(
        t=t_ev,
        v=pick(v_sp, v_in),
        i=pick(i_sp, i_in),
        x=pick(st.x, x_in),
        ref=pick(ref_sp, st.ref),
        armed=pick(armed_sp, armed_in),
        k=st.k + has_in.astype(jnp.int32),
        done=done,
        times=times,
        count=count,
        overflow=overflow,
        slope=slope,
        cond=cnd,
        grazing=graz,
    )


def _deliver(
    w: jax.Array, v: jax.Array, i: jax.Array, ref: jax.Array, t: jax.Array, c: Coef
) -> tuple[jax.Array, jax.Array]:
    """Delta input of weight ``w`` at time t: I += w_in w / tau_syn (synapse), else V += r kap_m w.

    Voltage jumps arriving during the absolute refractory period (t < ref) are dropped.
    """
    i_new = i + c.syn * c.w_in * c.lam_s * w
    dv = (1 - c.syn) * c.r * c.kap_m * w
    v_new = v + jnp.where(t < ref, 0.0, dv)
    return v_new, i_new


@functools.partial(jax.jit, static_argnames=("n", "max_out", "max_spike_steps", "kind"))
def _run(
    inp: dict[str, Any],
    p: Neuron,
    n: int,
    *,
    max_out: int,
    max_spike_steps: int,
    t_end: jax.Array,
    v0: jax.Array,
    i0: jax.Array,
    t_start: jax.Array,
    kind: str,
    x0: jax.Array | None = None,
) -> SpikeTrain:
    c = coef(p, n)
    reset = {"hard": 0, "subtract": 1, "none": 2}[p.reset]
    st = _State(
        t=jnp.asarray(t_start, F64),
        v=v0,
        i=i0 * c.syn,
        x=jnp.zeros((n,), F64) if x0 is None else x0,
        ref=jnp.full((n,), -jnp.inf, F64),
        armed=jnp.ones((n,), bool),
        k=jnp.int32(0),
        done=jnp.asarray(False),
        times=jnp.full((n, max_out), jnp.inf, F64),
        count=jnp.zeros((n,), jnp.int32),
        overflow=jnp.zeros((n,), bool),
        slope=jnp.zeros((n, max_out), F64),
        cond=jnp.zeros((n, max_out), F64),
        grazing=jnp.zeros((n, max_out), bool),
    )
    n_steps = inp["t"].shape[0] + max_spike_steps + 1

    def body(st: _State, _: None) -> tuple[_State, None]:
        return jax.lax.cond(st.done, lambda s: s, lambda s: _step(s, inp, c, reset, kind, t_end), st), None

    st, _ = jax.lax.scan(body, st, None, length=n_steps)
    # flow everything to t_end (the last step stops at t_end already unless truncated)
    seg0, seg1 = _segments(st, c)
    v_end, i_end = _advance(seg0, seg1, jnp.broadcast_to(jnp.maximum(t_end, st.t), st.v.shape))
    return SpikeTrain(st.times, st.count, st.overflow, ~st.done, st.slope, st.cond, st.grazing, v_end, i_end)


def _init_state(n: int, v0: Any, i0: Any) -> tuple[jax.Array, jax.Array]:
    v = jnp.broadcast_to(jnp.asarray(0.0 if v0 is None else v0, F64), (n,))
    i = jnp.broadcast_to(jnp.asarray(0.0 if i0 is None else i0, F64), (n,))
    return v, i


@x64
def simulate_layer(
    ev_t: Any,
    ev_ch: Any,
    w: Any,
    p: Neuron,
    *,
    max_out: int,
    t_end: Any,
    w_rec: Any = None,
    v0: Any = None,
    i0: Any = None,
    t_start: Any = 0.0,
    max_spike_steps: int | None = None,
    engine: Engine = "auto",
    x_const: Any = None,
) -> SpikeTrain:
    """Exact spikes of a layer driven by delta input events (see module docstring for conventions).

    Args:
        ev_t: [N] sorted input times (+inf padding). ev_ch: [N] int32 input channel (-1 padding).
        w: [n_in, n] weights. p: neuron parameters. max_out: spike slots per neuron. t_end: end of simulation.
        w_rec: optional [n, n] recurrent weights (zero delay, delta scaling as for inputs).
        v0, i0: initial state (default 0). t_start: initial time (inputs before it are an error of the caller).
        max_spike_steps: scan steps reserved for output spikes (default n * max_out); sequential engine only.
        engine: see :func:`pick_engine`.
        x_const: optional [n] constant input held for the whole run besides the events (an Affine bias).
    """
    w = jnp.asarray(w, F64)
    if w.ndim != 2:
        raise ExactSolverError(
            f"w must be [n_in, n], got shape {w.shape}", param="w", fix="pass a 2-D matrix"
        )
    n = w.shape[1]
    ev_t = jnp.asarray(ev_t, F64)
    ev_ch = jnp.asarray(ev_ch, jnp.int32)
    if ev_t.shape != ev_ch.shape or ev_t.ndim != 1:
        raise ExactSolverError(
            "ev_t and ev_ch must be 1-D with equal shapes", fix="pad both to the same length"
        )
    validate(p)
    v, i = _init_state(n, v0, i0)
    xc = None if x_const is None else jnp.broadcast_to(jnp.asarray(x_const, F64), (n,))
    if pick_engine(engine, p, w_rec, max_spike_steps) == "restart":
        t0, te = jnp.asarray(t_start, F64), jnp.asarray(t_end, F64)
        xc = jnp.zeros((n,), F64) if xc is None else xc
        return SpikeTrain(*run_delta(ev_t, ev_ch, w, p, v, i, t0, te, xc, max_out=max_out))
    inp = {"t": ev_t, "ch": ev_ch, "w": w}
    if w_rec is not None:
        inp["w_rec"] = jnp.asarray(w_rec, F64)
    steps = n * max_out if max_spike_steps is None else max_spike_steps
    return _run(
        inp,
        p,
        n,
        max_out=max_out,
        max_spike_steps=steps,
        t_end=jnp.asarray(t_end, F64),
        v0=v,
        i0=i,
        t_start=jnp.asarray(t_start, F64),
        kind="delta",
        x0=xc,
    )


@x64
def simulate_layer_pulse(
    spikes: Any,
    dt: float,
    w: Any,
    p: Neuron,
    *,
    max_out: int,
    t_end: Any = None,
    w_rec: Any = None,
    v0: Any = None,
    i0: Any = None,
    t_start: Any = 0.0,
    max_spike_steps: int | None = None,
    engine: Engine = "auto",
) -> SpikeTrain:
    """Exact spikes of a layer driven by pulse input: bin k of ``spikes`` [T, n_in] is the current
    ``spikes[k] @ w`` held over [t_start + k dt, t_start + (k+1) dt). Default t_end = t_start + T dt."""
    s = jnp.asarray(spikes, F64)
    w = jnp.asarray(w, F64)
    if s.ndim != 2 or w.ndim != 2 or s.shape[1] != w.shape[0]:
        raise ExactSolverError(
            f"spikes {s.shape} and w {w.shape} must be [T, n_in] and [n_in, n]",
            fix="transpose or reshape the inputs",
        )
    n_bins, n = s.shape[0], w.shape[1]
    t0 = jnp.asarray(t_start, F64)
    # bin edges; the event at t_start + T dt switches the input off
    edges = t0 + jnp.arange(n_bins + 1, dtype=F64) * dt
    x = jnp.concatenate([s @ w, jnp.zeros((1, n), F64)], axis=0)
    validate(p)
    v, i = _init_state(n, v0, i0)
    te = edges[-1] if t_end is None else jnp.asarray(t_end, F64)
    if pick_engine(engine, p, w_rec, max_spike_steps) == "restart":
        return SpikeTrain(*run_pulse(s, w, edges, p, v, i, te, max_out=max_out))
    inp = {"t": edges, "x": x}
    if w_rec is not None:
        inp["w_rec"] = jnp.asarray(w_rec, F64)
    steps = n * max_out if max_spike_steps is None else max_spike_steps
    return _run(
        inp, p, n, max_out=max_out, max_spike_steps=steps, t_end=te, v0=v, i0=i, t_start=t0, kind="pulse"
    )


@x64
def simulate_layer_piecewise(
    edges: Any,
    x: Any,
    p: Neuron,
    *,
    max_out: int,
    t_end: Any,
    w_rec: Any = None,
    v0: Any = None,
    i0: Any = None,
    engine: Engine = "auto",
) -> SpikeTrain:
    """Exact spikes of a layer driven by a piecewise-constant input: ``x[k]`` ([E, n], already weighted) holds
    from ``edges[k]`` to ``edges[k+1]`` (``edges`` [E] sorted; the last value holds until ``t_end``); starts at
    ``edges[0]``. Pulse input with arbitrary switching times (e.g. spikes as pulses of width dt)."""
    e = jnp.asarray(edges, F64)
    xx = jnp.asarray(x, F64)
    if e.ndim != 1 or xx.ndim != 2 or xx.shape[0] != e.shape[0]:
        raise ExactSolverError(
            f"edges {e.shape} and x {xx.shape} must be [E] and [E, n]", fix="one input row per edge"
        )
    n = xx.shape[1]
    validate(p)
    v, i = _init_state(n, v0, i0)
    te = jnp.asarray(t_end, F64)
    if pick_engine(engine, p, w_rec, None) == "restart":
        eye = jnp.eye(n, dtype=F64)
        return SpikeTrain(*run_pulse(xx[:-1], eye, e, p, v, i, te, max_out=max_out, x_last=xx[-1]))
    inp = {"t": e, "x": xx}
    if w_rec is not None:
        inp["w_rec"] = jnp.asarray(w_rec, F64)
    return _run(
        inp,
        p,
        n,
        max_out=max_out,
        max_spike_steps=n * max_out + e.shape[0],
        t_end=te,
        v0=v,
        i0=i,
        t_start=e[0],
        kind="pulse",
    )


def to_events(train: SpikeTrain) -> tuple[jax.Array, jax.Array]:
    """Merge a layer's spike buffer into a sorted (times, channels) stream, +inf / -1 padded (``lax.sort``)."""
    n, m = train.times.shape
    t = train.times.reshape(-1)
    ch = jnp.repeat(jnp.arange(n, dtype=jnp.int32), m)
    t_s, ch_s = jax.lax.sort((t, ch), num_keys=1)
    return t_s, jnp.where(jnp.isfinite(t_s), ch_s, -1)


class Layer(NamedTuple):
    """One layer of a network: input weights [n_in, n], neuron parameters, optional recurrent weights [n, n]."""

    w: Any
    p: Neuron
    w_rec: Any = None
    max_out: int = 16


@x64
def simulate_network(
    inputs: tuple[Any, Any] | Any,
    layers: list[Layer],
    *,
    t_end: Any,
    input_kind: Literal["delta", "pulse"] = "delta",
    dt: float | None = None,
) -> list[SpikeTrain]:
    """Feed-forward stack of (optionally self-recurrent) layers, simulated layer by layer.

    ``inputs`` is ``(ev_t, ev_ch)`` for delta input, or the [T, n_in] count array for pulse input (then ``dt``
    is required); layer outputs are merged with :func:`to_events` and drive the next layer as delta input.
    """
    out: list[SpikeTrain] = []
    for j, lay in enumerate(layers):
        if j == 0 and input_kind == "pulse":
            if dt is None:
                raise ExactSolverError("pulse input needs dt", param="dt", fix="pass dt=<bin width>")
            tr = simulate_layer_pulse(
                inputs, dt, lay.w, lay.p, max_out=lay.max_out, t_end=t_end, w_rec=lay.w_rec
            )
        else:
            ev_t, ev_ch = inputs if j == 0 else to_events(out[-1])
            tr = simulate_layer(ev_t, ev_ch, lay.w, lay.p, max_out=lay.max_out, t_end=t_end, w_rec=lay.w_rec)
        out.append(tr)
    return out
