"""Restart engine: exact spikes of a feed-forward layer (no recurrence), one round per spike of each neuron.

Without recurrent weights the neurons of a layer are independent and the synaptic current ``I`` never depends on
the spikes. Let ``V_f`` be the free membrane trajectory (no resets, no refractoriness). The membrane equation is
linear in V, so after the last restart at ``t_r`` (the end of a reset and of its refractory period) the true
membrane is ``V(t) = V_f(t) + D exp(-(t - t_r)/tau_mem)`` with ``D = V(t_r) - V_f(t_r)`` (IF: ``D`` constant).
Hence:

1. one associative scan over the input segments gives ``V_f`` and ``I`` at every segment start;
2. each *round* screens a window of ``WINDOW`` segments of every neuron with an upper bound of V (see
   :func:`_round`), takes each neuron's first candidate segment, brackets it exactly
   (:func:`snn_deploy.sim.exact_core.bracket`) and root-solves it
   (:func:`snn_deploy.sim.exact_core.root_time`: never early, IFT gradients), applies the reset and restarts
   the neuron at ``t* + t_ref``.

Rounds = (most spikes of one neuron) + 1 (+ rounds for candidates that do not fire and for windows without a
candidate) instead of one sequential step per input event and per spike, which is what makes this engine fast
on CPU. Cost model on XLA:CPU (measured): a round is dominated by per-kernel launch costs (~0.2-0.3 us each)
and by any work on [segments, neurons] arrays (~5-10 ns per element), so a round only touches [WINDOW, n] and
[n] arrays; the loop state is packed into four arrays (each loop-carried array costs a copy per round).

Semantics equal the sequential engine of :mod:`snn_deploy.sim.exact_layer`: a crossing at an input time is
emitted before that input is applied; a voltage jump to ``>= v_th`` spikes at the jump time; voltage jumps inside
the refractory period are dropped, synaptic ones are not; hard or subtractive reset. Not covered (the sequential
engine handles them): recurrence and ``reset="none"``. Spikes beyond ``max_out`` set ``overflow`` and are not
simulated further (the neurons are independent, so no other neuron is affected; ``v_end``/``i_end`` of an
overflowing neuron are then not meaningful).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from snn_deploy.sim.exact_core import (
    EPS,
    F64,
    Coef,
    Neuron,
    Seg,
    _grazing_tol,
    _kernel,
    bracket,
    coef,
    current,
    extremum,
    phi,
    root_time,
    slope,
    terms,
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

    def compose(f1: jax.Array, f2: jax.Array) -> jax.Array:  # f2 after f1; maps packed on the last axis
        a1, g1, cv1, e1, ci1 = (f1[..., q] for q in range(5))
        a2, g2, cv2, e2, ci2 = (f2[..., q] for q in range(5))
        out = (a2 * a1, a2 * g1 + g2 * e1, a2 * cv1 + g2 * ci1 + cv2, e2 * e1, e2 * ci1 + ci2)
        return jnp.stack(out, axis=-1)

    # one packed [K-1, n, 5] array: each scan level is then a few kernels instead of a few per component
    packed = jax.lax.associative_scan(compose, jnp.stack([a[:-1], g[:-1], cv, e[:-1], ci], axis=-1))
    pa, pg, pcv, pe, pci = (packed[..., q] for q in range(5))
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
    """Round state, packed into few arrays (each loop-carried array costs a copy per round on XLA:CPU)."""

    f: jax.Array  # [4, n] float: restart time t_r, V(t_r), I(t_r) (the free current), D = V(t_r) - V_f(t_r)
    k: jax.Array  # [2, n] int32: restart segment r (n_seg: finished), stored spikes
    flag: jax.Array  # [n] bool: overflow (more spikes than max_out)
    rec: jax.Array  # [4, n, max_out] float: spike time, slope, cond, grazing (0/1)


# fields of the per-segment table (last axis of ``tab``, [K, n, 7])
_B0, _B1, _VF, _IF, _X, _VMAX, _ELEN = range(7)
WINDOW = 16  # segments screened per round and neuron (a neuron with no candidate in it skips past it)


def _rows(tab: jax.Array, k: jax.Array) -> jax.Array:
    """Rows ``k`` ([..., n] indices, clipped to the table) of the [K, n, F] table: one gather, [..., n, F]."""
    kk = jnp.clip(k, 0, tab.shape[0] - 1)
    flat = kk.reshape(-1, kk.shape[-1])
    return jnp.take_along_axis(tab, flat[:, :, None], axis=0).reshape(*kk.shape, tab.shape[2])


def _round(st: _R, b: jax.Array, tab: jax.Array, nxt: jax.Array, c: Coef, reset: int) -> _R:
    """Find, solve and apply the next spike of every unfinished neuron (see module docstring).

    Screen: on segment k >= r the true V is V_f + D_k exp(-lam_m d) with D_k = D exp(-lam_m (b_k - t_r)), so
    max V <= max V_f + max(D_k, D_k exp(-lam_m len_k)) (the reset term is monotone). The first segment passing
    this bound (with a relative slack of 1e-9 against round-off) gets the exact bracket and root solve; if it
    does not fire after all, the neuron restarts at the next segment with the same D (one more round).
    Only ``WINDOW`` segments are screened per round (work on [K, n] arrays costs ~10 ns per element on
    XLA:CPU, more than the rest of the round): from r, or with D <= 0 (V <= V_f) from ``nxt[r]``, the first
    segment whose free maximum reaches the threshold. A neuron without a candidate in its window restarts
    after it (one more round, no spike).
    """
    n_seg, n = tab.shape[0], tab.shape[1]
    t_r, v_r, i_r, d = st.f
    r, count = st.k
    lanes = jnp.arange(n)
    start = jnp.where(d > 0, r, nxt[jnp.minimum(r, n_seg), lanes])  # V <= V_f when D <= 0: skip ahead
    kw = start[None] + jnp.arange(WINDOW, dtype=jnp.int32)[:, None]  # [W, n]
    win = _rows(tab, kw)  # [W, n, F]
    bs, vmax, e_len = win[..., _B0], win[..., _VMAX], win[..., _ELEN]
    d_k = d * jnp.exp(-c.lam_m * jnp.maximum(bs - t_r, 0.0))
    bound = vmax + jnp.maximum(d_k, d_k * e_len)
    slack = 1e-9 * (jnp.abs(vmax) + jnp.abs(d_k) + jnp.abs(c.v_th))
    cand = (kw < n_seg) & (bound >= c.v_th - slack)
    j = jnp.argmax(cand, axis=0)  # first candidate in the window
    has_cand = jnp.any(cand, axis=0)
    first = jnp.where(has_cand, start + j, jnp.minimum(start + WINDOW, n_seg)).astype(jnp.int32)
    row = jnp.take_along_axis(win, j[None, :, None], axis=0)[0]  # [n, F]
    b0, b1, vf_k, if_k, x_k = (row[:, q] for q in (_B0, _B1, _VF, _IF, _X))
    at_r = first == r
    seg = Seg(
        jnp.where(at_r, t_r, b0),
        jnp.where(at_r, v_r, vf_k + d * jnp.exp(-c.lam_m * jnp.maximum(b0 - t_r, 0.0))),
        jnp.where(at_r, i_r, if_k),
        x_k,
        c,
    )
    has, immediate, lo, hi = bracket(seg, b1, has_cand)
    sg_ = jax.lax.stop_gradient
    t_root = root_time(seg, sg_(jnp.where(has, lo, seg.t0)), sg_(jnp.where(has, hi, seg.t0)), has)
    spike = has | immediate
    t_s = jnp.where(has, t_root, seg.t0)
    dd = t_s - seg.t0
    fp = jnp.where(has, slope(dd, seg), 0.0)
    scale = sum(jnp.abs(a) for a in terms(dd, seg)) + jnp.abs(c.v_th)
    cond_t = jnp.where(has, EPS * scale / jnp.maximum(jnp.abs(fp), 1e-300), 0.0)
    grazing = has & (jnp.abs(fp) < _grazing_tol(seg))
    # reset at the crossing: hard -> v_reset; subtract -> V - (v_th - v_reset) (the same for continuous V)
    v_after = c.v_reset if reset == 0 else voltage(dd, seg) - (c.v_th - c.v_reset)
    t_e = t_s + c.t_ref
    # restart segment: the one with b[r] < t_e <= b[r+1] (an input at exactly t_e is applied after the restart);
    # the crossing's own segment unless the refractory period runs past its end
    r_spk = jax.lax.cond(
        jnp.any(spike & (t_e > b1)),
        lambda: jnp.maximum(first, jnp.sum(b[:, None] < t_e[None], axis=0).astype(jnp.int32) - 1),
        lambda: first,
    )
    # no spike (no candidate in the window, or a candidate that does not fire): go on after it, same D
    r_new = jnp.where(spike, r_spk, jnp.where(has_cand, first + 1, first)).astype(jnp.int32)
    rn = _rows(tab, r_new)
    b_r, vf_r, if_r, x_r = (rn[:, q] for q in (_B0, _VF, _IF, _X))
    t_new = jnp.where(spike, t_e, b_r)
    fr = Seg(b_r, vf_r, if_r, x_r, c)
    vf_new, i_new = voltage(t_new - b_r, fr), current(t_new - b_r, fr)
    v_new = jnp.where(spike, v_after, vf_new + d * jnp.exp(-c.lam_m * (t_new - t_r)))
    m = st.rec.shape[2]
    store = spike & (count < m)
    overflow = st.flag | (spike & ~store)
    done = r >= n_seg
    r_out = jnp.where(done | overflow | (r_new >= n_seg), n_seg, r_new)
    f_new = jnp.stack([t_new, v_new, i_new, v_new - vf_new])
    new = jnp.stack([t_s, fp, cond_t, grazing.astype(F64)])  # [4, n]
    slot = jnp.where(store, count, m)  # out of range: dropped by the scatter
    return _R(
        f=jnp.where(done[None], st.f, f_new),
        k=jnp.stack([r_out, count + store.astype(jnp.int32)]),
        flag=overflow,
        rec=st.rec.at[:, lanes, slot].set(new, mode="drop"),
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
    bcast = lambda a: jnp.broadcast_to(a[:, None], (n_seg, n))  # noqa: E731
    tab = jnp.stack([bcast(sg.b[:-1]), bcast(sg.b[1:]), vf, if_, sg.x, vmax, e_len], axis=-1)  # [K, n, 7]
    # nxt[k]: first segment >= k whose free maximum reaches the threshold (n_seg if none); V <= V_f bounds the
    # true V when D <= 0, so such a neuron cannot fire before nxt[r] (slack 1e-9 against round-off)
    reach = vmax >= c.v_th - 1e-9 * (jnp.abs(vmax) + jnp.abs(c.v_th))
    kk = jnp.broadcast_to(jnp.arange(n_seg, dtype=jnp.int32)[:, None], (n_seg, n))
    nxt = jax.lax.cummin(jnp.where(reach, kk, n_seg), axis=0, reverse=True)
    nxt = jnp.concatenate([nxt, jnp.full((1, n), n_seg, jnp.int32)])  # [K + 1, n]
    z = jnp.zeros((n,), F64)
    st = _R(
        f=jnp.stack([jnp.broadcast_to(sg.b[0], (n,)), vf[0], if_[0], z]),
        k=jnp.zeros((2, n), jnp.int32),
        flag=jnp.zeros((n,), bool),
        rec=jnp.concatenate([jnp.full((1, n, max_out), jnp.inf, F64), jnp.zeros((3, n, max_out), F64)]),
    )

    def body(s: _R, _: None) -> tuple[_R, None]:
        return jax.lax.cond(
            jnp.all(s.k[0] >= n_seg), lambda q: q, lambda q: _round(q, sg.b, tab, nxt, c, reset), s
        ), None

    # rounds: one per spike, plus rounds whose candidates (bound passed) all turn out not to fire
    st, _ = jax.lax.scan(body, st, None, length=max_out + max_out // 2 + 4)
    t_end = sg.b[-1]
    t_r, v_r, _, d = st.f
    last = Seg(sg.b[n_seg - 1], vf[-1], if_[-1], sg.x[-1], c)
    vf_end = voltage(t_end - last.t0, last)
    i_end = current(t_end - last.t0, last)
    refr = t_end <= t_r  # still refractory (or spiked exactly at t_end): V frozen at its reset value
    v_end = jnp.where(refr, v_r, vf_end + d * jnp.exp(-c.lam_m * jnp.maximum(t_end - t_r, 0.0)))
    truncated = jnp.any(st.k[0] < n_seg)  # round budget exhausted: later spikes of some neuron are missing
    times, slp, cnd, graz = st.rec
    return (times, st.k[1], st.flag, truncated, slp, cnd, graz > 0, v_end, i_end)
