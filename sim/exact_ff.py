"""Restart engine: exact spikes of a feed-forward layer (no recurrence), one round per spike of each neuron.

Without recurrent weights the neurons of a layer are independent and the synaptic current ``I`` never depends on
the spikes. Let ``V_f`` be the free membrane trajectory (no resets, no refractoriness). The membrane equation is
linear in V, so after the last restart at ``t_r`` (the end of a reset and of its refractory period) the true
membrane is ``V(t) = V_f(t) + D exp(-(t - t_r)/tau_mem)`` with ``D = V(t_r) - V_f(t_r)`` (IF: ``D`` constant).
Hence:

1. one ``lax.scan`` over the input segments gives ``V_f`` and ``I`` at every segment start (cheap body);
2. each *round* tests every remaining segment of every neuron with the exact bracket of
   :func:`snn_deploy.sim.exact_core.bracket` (vectorised over [segments, neurons]), takes each neuron's first
   segment that fires, root-solves only those (:func:`snn_deploy.sim.exact_core.next_crossing`: never early,
   IFT gradients), applies the reset and restarts the neuron at ``t* + t_ref``.

Rounds = (most spikes of one neuron) + 1 instead of one sequential step per input event and per spike, which is
what makes this engine fast on CPU. Semantics equal the sequential engine of :mod:`snn_deploy.sim.exact_layer`:
a crossing at an input time is emitted before that input is applied; a voltage jump to ``>= v_th`` spikes at the
jump time; voltage jumps inside the refractory period are dropped, synaptic ones are not; hard or subtractive
reset. Not covered (the sequential engine handles them): recurrence and ``reset="none"``. Spikes beyond
``max_out`` set ``overflow`` and are not simulated further (the neurons are independent, so no other neuron is
affected; ``v_end``/``i_end`` of an overflowing neuron are then not meaningful).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from snn_deploy.sim.exact_core import (
    F64,
    Coef,
    Neuron,
    Seg,
    _kernel,
    coef,
    current,
    extremum,
    next_crossing,
    phi,
    voltage,
)


class Segments(NamedTuple):
    """Piecewise description of a layer's input: segment k is [b[k], b[k+1]] (b: [K+1], b[0] = t_start,
    b[K] = t_end, non-decreasing); at b[k] the jumps ``jv[k]`` (on V) and ``ji[k]`` (on I) are applied, then
    the constant input ``x[k]`` drives the segment ([K, n] each)."""

    b: jax.Array
    jv: jax.Array
    ji: jax.Array
    x: jax.Array


def delta_segments(
    ev_t: jax.Array,
    ev_ch: jax.Array,
    w: jax.Array,
    c: Coef,
    t_start: jax.Array,
    t_end: jax.Array,
    x_const: jax.Array | None = None,
) -> Segments:
    """Segments of a delta input stream (NIR scaling: I += w_in w / tau_syn, else V += r kap_m w), plus an
    optional constant input ``x_const`` [n] held throughout (e.g. an Affine bias).

    Events after ``t_end`` or with channel -1 (padding) are dropped; their boundary collapses to ``t_end``.
    """
    n = w.shape[1]
    ok = (ev_ch >= 0) & (ev_t <= t_end)
    row = jnp.where(ok[:, None], w[jnp.maximum(ev_ch, 0)], 0.0)
    z = jnp.zeros((1, n), F64)
    jv = jnp.concatenate([z, (1 - c.syn) * c.r * c.kap_m * row])
    ji = jnp.concatenate([z, c.syn * c.w_in * c.lam_s * row])
    b = jnp.concatenate([t_start[None], jnp.minimum(ev_t, t_end), t_end[None]])
    x = jnp.zeros_like(jv) if x_const is None else jnp.broadcast_to(x_const, jv.shape)
    return Segments(b, jv, ji, x)


def pulse_segments(
    x: jax.Array, edges: jax.Array, t_end: jax.Array, x_last: jax.Array | None = None
) -> Segments:
    """Segments of pulse input: ``x`` [T, n] held over [edges[k], edges[k+1]), then ``x_last`` (default 0) until
    ``t_end`` (edges: [T + 1])."""
    n = x.shape[1]
    b = jnp.concatenate([jnp.minimum(edges, t_end), t_end[None]])
    tail = jnp.zeros((1, n), F64) if x_last is None else x_last[None]
    xx = jnp.concatenate([x, tail])
    z = jnp.zeros_like(xx)
    return Segments(b, z, z, xx)


def _free_states(sg: Segments, v0: jax.Array, i0: jax.Array, c: Coef) -> tuple[jax.Array, ...]:
    """Reset-free V and I at every segment start b[k] (after the jumps at b[k]) and the maximum of the free V
    over each segment ([K, n] each). The maximum is at an end or at the unique interior extremum."""

    # Each segment plus the jumps at its end is an affine map of (V, I) with an upper-triangular matrix
    # [[a, g], [0, e]] and offset (cv, ci); the segment start states are its prefix compositions, computed by an
    # associative scan (log depth: a sequential scan costs one loop step, i.e. kernel launches, per segment).
    v_first, i_first = v0 + sg.jv[0], i0 * c.syn + sg.ji[0]
    span = sg.b[1:, None] - sg.b[:-1, None]  # [K, 1]
    em = jnp.exp(-c.lam_m * span)
    es = jnp.expm1(-c.lam_s * span)
    i_inf = jnp.where(c.syn > 0, c.w_in * sg.x, 0.0)
    const_in = jnp.where(c.syn > 0, i_inf, sg.x)
    drive_c = c.r * c.kap_m * (const_in + c.bias)
    gk = c.syn * c.r * c.kap_m * _kernel(span, c)
    a = em
    g = gk
    cv = -c.v_leak * jnp.expm1(-c.lam_m * span) + drive_c * span * phi(-c.lam_m * span) - gk * i_inf
    e = jnp.where(c.syn > 0, 1.0 + es, 0.0)
    ci = jnp.where(c.syn > 0, -i_inf * es, 0.0)
    cv, ci = cv[:-1] + sg.jv[1:], ci[:-1] + sg.ji[1:]

    def compose(f1: tuple, f2: tuple) -> tuple:  # f2 after f1
        a1, g1, cv1, e1, ci1 = f1
        a2, g2, cv2, e2, ci2 = f2
        return a2 * a1, a2 * g1 + g2 * e1, a2 * cv1 + g2 * ci1 + cv2, e2 * e1, e2 * ci1 + ci2

    pa, pg, pcv, pe, pci = jax.lax.associative_scan(compose, (a[:-1], g[:-1], cv, e[:-1], ci))
    vf = jnp.concatenate([v_first[None], pa * v_first + pg * i_first + pcv])
    if_ = jnp.concatenate([i_first[None], pe * i_first + pci])
    seg_all = Seg(jnp.broadcast_to(sg.b[:-1, None], vf.shape), vf, if_, sg.x, c)
    v_ends = voltage(jnp.broadcast_to(span, vf.shape), seg_all)
    seg = seg_all
    d_e, _ = extremum(seg)
    inside = (d_e > 0) & (d_e < span)
    v_e = jnp.where(inside, voltage(jnp.where(inside, d_e, 0.0), seg), -jnp.inf)
    return vf, if_, jnp.maximum(jnp.maximum(vf, v_ends), v_e)


class _R(NamedTuple):
    r: jax.Array  # restart segment index [n]
    t_r: jax.Array  # restart time
    v_r: jax.Array  # V at the restart
    i_r: jax.Array  # I at the restart (the free current: spikes do not change I)
    d: jax.Array  # V(t_r) - V_f(t_r)
    done: jax.Array
    times: jax.Array
    count: jax.Array
    overflow: jax.Array
    slope: jax.Array
    cond: jax.Array
    grazing: jax.Array


def _select(mask: jax.Array, *arrays: jax.Array) -> list[jax.Array]:
    """Row ``k[n]`` of each float [K, n] array where ``mask = (kk == k)``: one masked sum over a stacked array
    (a single reduction; per-array gathers or reductions each cost a kernel launch on XLA:CPU)."""
    stacked = jnp.stack(arrays)  # [A, K, n]
    out = jnp.sum(jnp.where(mask[None], stacked, 0.0), axis=1)
    return list(out)


def _round(
    st: _R,
    sg: Segments,
    vf: jax.Array,
    if_: jax.Array,
    vmax: jax.Array,
    e_len: jax.Array,
    c: Coef,
    reset: int,
) -> _R:
    """Find, solve and apply the next spike of every unfinished neuron (see module docstring).

    Screen: on segment k >= r the true V is V_f + D_k exp(-lam_m d) with D_k = D exp(-lam_m (b_k - t_r)), so
    max V <= max V_f + max(D_k, D_k exp(-lam_m len_k)) (the reset term is monotone). The first segment passing
    this bound (with a relative slack of 1e-9 against round-off) gets the exact bracket and root solve; if it
    does not fire after all, the neuron restarts at the next segment with the same D (one more round).
    """
    n_seg, n = vf.shape
    kk = jnp.arange(n_seg)[:, None]
    bs = jnp.broadcast_to(sg.b[:-1, None], (n_seg, n))
    be = jnp.broadcast_to(sg.b[1:, None], (n_seg, n))
    live = (kk >= st.r[None]) & ~st.done[None]
    d_k = st.d[None] * jnp.exp(-c.lam_m * jnp.where(live, bs - st.t_r[None], 0.0))
    bound = vmax + jnp.maximum(d_k, d_k * e_len)
    slack = 1e-9 * (jnp.abs(vmax) + jnp.abs(d_k) + jnp.abs(c.v_th))
    cand = live & (bound >= c.v_th - slack)
    first = jnp.min(jnp.where(cand, kk, n_seg), axis=0).astype(jnp.int32)
    has_cand = first < n_seg
    b0, b1, vf_k, dk_k, if_k, x_k = _select(kk == first[None], bs, be, vf, d_k, if_, sg.x)
    at_r = first == st.r
    seg = Seg(
        jnp.where(at_r, st.t_r, b0),
        jnp.where(at_r, st.v_r, vf_k + dk_k),
        jnp.where(at_r, st.i_r, if_k),
        x_k,
        c,
    )
    cr = next_crossing(seg, b1, has_cand)
    spike = has_cand & cr.has
    t_s = jnp.where(spike, cr.t, seg.t0)
    v_at = voltage(t_s - seg.t0, seg)
    # reset at the crossing: hard -> v_reset; subtract -> V - (v_th - v_reset) (the same for continuous V)
    v_after = c.v_reset if reset == 0 else v_at - (c.v_th - c.v_reset)
    t_e = t_s + c.t_ref
    # restart segment: the one with b[r] < t_e <= b[r+1] (an input at exactly t_e is applied after the restart)
    r_spk = jnp.maximum(first, jnp.sum(sg.b[:, None] < t_e[None], axis=0) - 1)
    # a candidate that does not fire: continue at the next segment with the same D
    r_new = jnp.where(spike, r_spk, first + 1).astype(jnp.int32)
    b_r, vf_r, if_r, x_r = _select(kk == r_new[None], bs, vf, if_, sg.x)
    t_new = jnp.where(spike, t_e, b_r)
    fr = Seg(b_r, vf_r, if_r, x_r, c)
    vf_new, i_new = voltage(t_new - b_r, fr), current(t_new - b_r, fr)
    v_new = jnp.where(spike, v_after, vf_new + st.d * jnp.exp(-c.lam_m * (t_new - st.t_r)))
    m = st.times.shape[1]
    store = spike & (st.count < m)
    rec = jax.nn.one_hot(jnp.minimum(st.count, m - 1), m, dtype=bool) & store[:, None]
    overflow = st.overflow | (spike & ~store)
    keep = st.done | ~has_cand
    upd = lambda new, old: jnp.where(keep, old, new)  # noqa: E731
    return _R(
        r=upd(r_new, st.r),
        t_r=upd(t_new, st.t_r),
        v_r=upd(v_new, st.v_r),
        i_r=upd(i_new, st.i_r),
        d=upd(v_new - vf_new, st.d),
        done=keep | overflow | (r_new >= n_seg),
        times=jnp.where(rec, t_s[:, None], st.times),
        count=st.count + store.astype(jnp.int32),
        overflow=overflow,
        slope=jnp.where(rec, cr.slope[:, None], st.slope),
        cond=jnp.where(rec, cr.cond[:, None], st.cond),
        grazing=jnp.where(rec, cr.grazing[:, None], st.grazing),
    )


@functools.partial(jax.jit, static_argnames=("max_out",))
def run_delta(
    ev_t: jax.Array,
    ev_ch: jax.Array,
    w: jax.Array,
    p: Neuron,
    v0: jax.Array,
    i0: jax.Array,
    t_start: jax.Array,
    t_end: jax.Array,
    x_const: jax.Array,
    *,
    max_out: int,
) -> tuple[jax.Array, ...]:
    """Restart engine on delta input (see :func:`delta_segments`); fields of ``SpikeTrain`` in order."""
    sg = delta_segments(ev_t, ev_ch, w, coef(p, w.shape[1]), t_start, t_end, x_const)
    return run_restart(sg, p, v0, i0, max_out=max_out)


@functools.partial(jax.jit, static_argnames=("max_out",))
def run_pulse(
    s: jax.Array,
    w: jax.Array,
    edges: jax.Array,
    p: Neuron,
    v0: jax.Array,
    i0: jax.Array,
    t_end: jax.Array,
    *,
    max_out: int,
    x_last: jax.Array | None = None,
) -> tuple[jax.Array, ...]:
    """Restart engine on pulse input (see :func:`pulse_segments`); fields of ``SpikeTrain`` in order."""
    return run_restart(pulse_segments(s @ w, edges, t_end, x_last), p, v0, i0, max_out=max_out)


def run_restart(
    sg: Segments, p: Neuron, v0: jax.Array, i0: jax.Array, *, max_out: int
) -> tuple[jax.Array, ...]:
    """Run the restart engine (trace inside ``jit``); fields of ``SpikeTrain`` in order."""
    n_seg, n = sg.x.shape
    c = coef(p, n)
    reset = {"hard": 0, "subtract": 1}[p.reset]
    vf, if_, vmax = _free_states(sg, v0, i0, c)
    e_len = jnp.exp(-c.lam_m * (sg.b[1:, None] - sg.b[:-1, None]))  # decay of the reset term over a segment
    zf = jnp.zeros((n, max_out), F64)
    st = _R(
        r=jnp.zeros((n,), jnp.int32),
        t_r=jnp.broadcast_to(sg.b[0], (n,)),
        v_r=vf[0],
        i_r=if_[0],
        d=jnp.zeros((n,), F64),
        done=jnp.zeros((n,), bool),
        times=jnp.full((n, max_out), jnp.inf, F64),
        count=jnp.zeros((n,), jnp.int32),
        overflow=jnp.zeros((n,), bool),
        slope=zf,
        cond=zf,
        grazing=jnp.zeros((n, max_out), bool),
    )

    def body(s: _R, _: None) -> tuple[_R, None]:
        return jax.lax.cond(
            jnp.all(s.done), lambda q: q, lambda q: _round(q, sg, vf, if_, vmax, e_len, c, reset), s
        ), None

    # rounds: one per spike, plus rounds whose candidates (bound passed) all turn out not to fire
    st, _ = jax.lax.scan(body, st, None, length=max_out + max_out // 2 + 4)
    t_end = sg.b[-1]
    last = Seg(sg.b[n_seg - 1], vf[-1], if_[-1], sg.x[-1], c)
    vf_end = voltage(t_end - last.t0, last)
    i_end = current(t_end - last.t0, last)
    refr = t_end <= st.t_r  # still refractory (or spiked exactly at t_end): V frozen at its reset value
    v_end = jnp.where(refr, st.v_r, vf_end + st.d * jnp.exp(-c.lam_m * jnp.maximum(t_end - st.t_r, 0.0)))
    truncated = jnp.any(~st.done)  # round budget exhausted: later spikes of some neuron are missing
    return (st.times, st.count, st.overflow, truncated, st.slope, st.cond, st.grazing, v_end, i_end)
