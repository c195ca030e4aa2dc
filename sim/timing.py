"""Timing check: discrete spike steps (emulator or device) against exact continuous-time spike times.

Step convention (:class:`StepConvention`): exact interval ``j`` is ``[t0 + j dt, t0 + (j+1) dt)``. An emulator
spike reported at step ``k`` claims a crossing in interval ``j = k + step_offset - latency_steps``:
``step_offset = 0`` when step k integrates [k dt, (k+1) dt) and reports at its end (NIR exact csv, Norse,
snnTorch); ``latency_steps`` is the layer's pipeline/synaptic delay (Lava's Dense -> LIF: 1).

Teacher forcing (:func:`teacher_forced`): the exact model never resets itself; it is reset where the emulator
spiked, either at the end of the claimed interval (``reset="step_end"``) or at the exact crossing inside it
(``reset="crossing"``; falls back to the interval end when the exact model does not cross there). This keeps one
flipped spike from desynchronising everything after it. Per emulator spike it reports the exact first crossing
since the previous forced reset, the residual in steps and in time, and threshold margins.

Sampling (``StepConvention.sampling``): ``step_end`` (every target here: the emulator compares V with the
threshold only at the end of each step, so an exact crossing that falls back below threshold inside the same
interval is invisible to it) or ``continuous`` (an event-driven device that would fire at any crossing). The
*sampled* exact voltage of interval j is V(end of j) for ``step_end`` and max V over j for ``continuous``.

Labels: ``match`` (exact first crossing in the claimed interval); ``marginal`` (mismatch explained by the stated
voltage error bound ``tol_v``: for an early emulator spike the sampled exact voltage of the claimed interval is
within tol_v below threshold; for a late or missed one the sampled exact overshoot over the skipped intervals is
below tol_v); ``unexplained`` otherwise. ``tol_v`` must bound the emulator's voltage error; :func:`voltage_error_bound` gives the
bound for round-off of a leaky integrator plus an explicit discretisation term.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np

from snn_deploy.sim.exact_core import (
    F64,
    ExactSolverError,
    Neuron,
    Seg,
    coef,
    current,
    extremum,
    next_crossing,
    validate,
    voltage,
    x64,
)


@dataclass(frozen=True)
class StepConvention:
    """How a discrete step index maps to continuous time (see module docstring)."""

    dt: float
    t0: float = 0.0
    step_offset: int = 0
    latency_steps: int = 0
    reset: Literal["step_end", "crossing"] = "step_end"
    sampling: Literal["step_end", "continuous"] = "step_end"

    def __post_init__(self) -> None:
        if not self.dt > 0:
            raise ExactSolverError("dt must be > 0", param="dt", fix="pass the emulator's time step")
        if self.sampling not in ("step_end", "continuous"):
            raise ExactSolverError(
                f"unknown sampling {self.sampling!r}", fix="use 'step_end' or 'continuous'"
            )
        if self.reset not in ("step_end", "crossing"):
            raise ExactSolverError(f"unknown reset {self.reset!r}", fix="use 'step_end' or 'crossing'")

    def interval(self, step: np.ndarray) -> np.ndarray:
        """Exact interval index claimed by emulator step ``step``."""
        return np.asarray(step) + self.step_offset - self.latency_steps


def voltage_error_bound(
    q: float,
    dt: float,
    tau_mem: float,
    *,
    rounding: Literal["nearest", "floor"] = "nearest",
    disc: float = 0.0,
) -> float:
    """Bound on |V_emulator - V_exact| for a leaky integrator with per-step rounding, plus ``disc``.

    Rounding each step to the grid ``q`` adds at most q/2 (round to nearest) or q (floor/truncation); decayed by
    beta = exp(-dt/tau_mem) per step these errors sum to at most err/(1 - beta) (for IF, tau_mem = inf, this is
    unbounded and the caller must pass its own bound). ``disc`` is the caller's discretisation error bound (e.g.
    |input gain - (1 - beta)| * max|x| / (1 - beta) for a forward-Euler gain).
    """
    per_step = q / 2 if rounding == "nearest" else q
    beta = math.exp(-dt / tau_mem)
    if beta >= 1:
        raise ExactSolverError(
            "no finite round-off bound without leak", param="tau_mem", fix="pass tol_v directly"
        )
    return per_step / (1 - beta) + disc


@dataclass
class TimingReport:
    """Per-spike results (numpy arrays, one entry per emulator spike followed by the missed exact spikes).

    neuron, step (emulator step; -1 for missed), interval (claimed exact interval), t_exact (first exact crossing
    since the previous forced reset; inf if none before the forced reset), residual_steps (claimed interval minus
    the exact crossing's interval; >0 emulator late, <0 early, nan if the exact model never crossed), residual_t (seconds outside the claimed interval,
    signed), margin (v_th - sampled exact V of the claimed interval, see the module docstring; <= 0 when the exact
    model is at/above threshold there), overshoot (max sampled exact V - v_th over the intervals the emulator
    skipped; nan for early spikes), label.
    """

    convention: StepConvention
    tol_v: float
    neuron: np.ndarray
    step: np.ndarray
    interval: np.ndarray
    t_exact: np.ndarray
    residual_steps: np.ndarray
    residual_t: np.ndarray
    margin: np.ndarray
    overshoot: np.ndarray
    label: np.ndarray
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (conventions, counts, and every non-matching spike)."""
        bad = np.nonzero(self.label != "match")[0]
        c = self.convention
        return {
            "convention": {
                "dt": c.dt,
                "t0": c.t0,
                "step_offset": c.step_offset,
                "latency_steps": c.latency_steps,
                "reset": c.reset,
            },
            "tol_v": self.tol_v,
            "counts": dict(self.counts),
            "mismatches": [
                {
                    "neuron": int(self.neuron[i]),
                    "step": int(self.step[i]),
                    "t_exact": float(self.t_exact[i]),
                    "residual_steps": float(self.residual_steps[i]),
                    "margin": float(self.margin[i]),
                    "overshoot": float(self.overshoot[i]),
                    "label": str(self.label[i]),
                }
                for i in bad
            ],
        }


def _max_on_segment(s: Seg, span: jax.Array) -> jax.Array:
    """max V over [t0, t0 + span]: at the ends or at the unique interior extremum."""
    d_e, _ = extremum(s)
    inner = jnp.where((d_e > 0) & (d_e < span), voltage(jnp.where(d_e < span, d_e, 0.0), s), -jnp.inf)
    return jnp.maximum(jnp.maximum(s.v0, voltage(span, s)), inner)


def _scan_ticks(
    ticks_t: jax.Array,
    ticks_kind: jax.Array,
    ticks_ch: jax.Array,
    ticks_x: jax.Array,
    w: jax.Array | None,
    forced: jax.Array,
    p: Neuron,
    n: int,
    at_crossing: bool,
    t_start: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Scan over merged ticks (kind 0: interval edge, 1: delta event, 2: pulse input change)."""
    c = coef(p, n)

    def body(st: tuple, tick: tuple) -> tuple[tuple, tuple]:
        t, v, i, x, armed, t_first, vmax, j, done_reset = st
        tt, kind, ch, xk = tick
        seg = Seg(jnp.broadcast_to(t, v.shape), v, i, x, c)
        span = tt - t
        vmax = jnp.maximum(vmax, _max_on_segment(seg, jnp.broadcast_to(span, v.shape)))
        cr = next_crossing(seg, jnp.broadcast_to(tt, v.shape), armed)
        n_f = forced[jnp.clip(j, 0, forced.shape[0] - 1)] * ((j >= 0) & (j < forced.shape[0]))
        fj = n_f > 0
        t_first = jnp.where(cr.has & ~jnp.isfinite(t_first), cr.t, t_first)
        v_end, i_end = voltage(span, seg), current(span, seg)
        if at_crossing:
            rs = fj & cr.has & ~done_reset
            tc = jnp.where(rs, cr.t, t)
            i_c = current(tc - t, seg)
            seg_r = Seg(tc, c.v_reset, i_c, x, c)
            v_end = jnp.where(rs, voltage(tt - tc, seg_r), v_end)
            i_end = jnp.where(rs, current(tt - tc, seg_r), i_end)
            done_reset = done_reset | rs
            armed = jnp.where(rs, True, armed & ~cr.has)
        else:
            armed = armed & ~cr.has
        armed = armed | (v_end < c.v_th)
        edge = kind == 0
        out = (edge, j, vmax, t_first, v_end)
        # interval edge: forced reset at step end, clear the first-crossing record, start the next interval
        rst = edge & fj
        if (
            p.reset == "subtract"
        ):  # discrete subtractive reset keeps the overshoot: V -= count (v_th - v_reset)
            v_n = jnp.where(rst & ~done_reset, v_end - n_f * (c.v_th - c.v_reset), v_end)
        else:
            v_n = jnp.where(rst & ~done_reset, c.v_reset, v_end)
        t_first = jnp.where(rst, jnp.inf, t_first)
        armed = jnp.where(rst, True, armed | (v_n < c.v_th))
        vmax = jnp.where(edge, -jnp.inf, vmax)
        done_reset = jnp.where(edge, False, done_reset)
        j = j + edge.astype(jnp.int32)
        # delta event: NIR jump; pulse change: new constant input
        if w is not None:
            row = jnp.where((kind == 1) & (ch >= 0), w[jnp.maximum(ch, 0)], 0.0)
            i_end = i_end + c.syn * c.w_in * c.lam_s * row
            v_n = v_n + (1 - c.syn) * c.r * c.kap_m * row
            armed = armed | (v_n < c.v_th)
        x = jnp.where(kind == 2, xk, x)
        return (tt, v_n, i_end, x, armed, t_first, vmax, j, done_reset), out

    z = jnp.zeros((n,), F64)
    st0 = (
        t_start,
        z,
        z,
        z,
        jnp.ones((n,), bool),
        jnp.full((n,), jnp.inf),
        jnp.full((n,), -jnp.inf),
        jnp.int32(-1),
        jnp.zeros((n,), bool),
    )
    st, out = jax.lax.scan(body, st0, (ticks_t, ticks_kind, ticks_ch, ticks_x))
    edge, j, vmax, t_first, v_end = out
    return (edge, j, vmax, t_first, v_end), st[5], st[7]


@x64
def teacher_forced(
    emu: Any,
    w: Any,
    p: Neuron,
    conv: StepConvention,
    *,
    tol_v: float | np.ndarray,
    ev: tuple[Any, Any] | None = None,
    pulse: Any = None,
) -> TimingReport:
    """Teacher-forced timing check of one layer.

    Args:
        emu: [T, n] emulator spike raster (counts > 0 mean a spike; T steps). w: [n_in, n] weights.
        p: exact neuron parameters (v0 = 0, I0 = 0 at conv.t0). conv: step convention. tol_v: voltage error bound
            of the emulator (see :func:`voltage_error_bound`): a scalar, or [T, n] per step and neuron (a
            trajectory-dependent bound; rows past T repeat the last one).
        ev: delta input (ev_t, ev_ch) or pulse: [T_in, n_in] counts in bins of conv.dt starting at conv.t0.
    """
    validate(p)
    emu = np.asarray(emu)
    w = jnp.asarray(w, F64)
    n_steps, n = emu.shape
    if w.shape[1] != n or (ev is None) == (pulse is None):
        raise ExactSolverError(
            "need w [n_in, n] matching emu [T, n] and exactly one of ev/pulse",
            fix="pass ev=(times, channels) or pulse=counts",
        )
    steps, neurons = np.nonzero(emu > 0)
    j_claim = conv.interval(steps)
    n_int = int(max(n_steps, (j_claim.max() + 1) if j_claim.size else 0))
    forced = np.zeros((n_int, n), np.float64)  # spikes per step (multi-spike emulators subtract per spike)
    ok = (j_claim >= 0) & (j_claim < n_int)
    forced[j_claim[ok], neurons[ok]] = emu[steps[ok], neurons[ok]]
    edges = conv.t0 + np.arange(n_int + 1) * conv.dt
    # tick list: edge j closes interval j-1 (the first edge only opens interval 0)
    kinds = [np.zeros(n_int + 1, np.int32)]
    times = [edges]
    chans = [np.full(n_int + 1, -1, np.int32)]
    xs = [np.zeros((n_int + 1, n))]
    if ev is not None:
        et, ec = np.asarray(ev[0], np.float64), np.asarray(ev[1], np.int32)
        keep = np.isfinite(et) & (et < edges[-1])
        times.append(et[keep]), kinds.append(np.ones(keep.sum(), np.int32)), chans.append(ec[keep])
        xs.append(np.zeros((keep.sum(), n)))
        w_ev = w
    else:
        s = np.asarray(pulse, np.float64)
        xk = np.asarray(jnp.asarray(s, F64) @ w)
        tb = conv.t0 + np.arange(s.shape[0]) * conv.dt
        keep = tb < edges[-1]
        (
            times.append(tb[keep]),
            kinds.append(np.full(keep.sum(), 2, np.int32)),
            chans.append(np.full(keep.sum(), -1, np.int32)),
        )
        xs.append(xk[keep])
        w_ev = None
    tt, kk, cc, xx = (np.concatenate(a) for a in (times, kinds, chans, xs))
    order = np.lexsort(
        (kk, tt)
    )  # edges before events at equal times (an event at an edge opens the interval)
    args = (jnp.asarray(tt[order]), jnp.asarray(kk[order]), jnp.asarray(cc[order]), jnp.asarray(xx[order]))
    (edge, jj, vmax, t_first, v_end), t_left, _ = _scan_ticks(
        *args, w_ev, jnp.asarray(forced), p, n, conv.reset == "crossing", jnp.asarray(conv.t0, F64)
    )
    edge = np.asarray(edge)
    jj = np.asarray(jj)[edge]
    sel = jj >= 0  # the first edge opens interval 0 and closes nothing
    vmax_i = np.asarray(vmax)[edge][sel]  # [n_int, n]
    # what a step-end sampler compares with the threshold: V at the end of each interval, before its reset
    sampled = vmax_i if conv.sampling == "continuous" else np.asarray(v_end)[edge][sel]
    tfirst_i = np.asarray(t_first)[edge][sel]
    tol = np.asarray(tol_v, np.float64)
    if tol.ndim == 2:
        tol = np.concatenate([tol, np.repeat(tol[-1:], max(n_int - tol.shape[0], 0), axis=0)])[:n_int]
    return _classify(
        conv,
        np.broadcast_to(tol, (n_int, n)),
        np.broadcast_to(np.asarray(coef(p, n).v_th), (n,)),
        steps,
        neurons,
        j_claim,
        vmax_i,
        sampled,
        tfirst_i,
        np.asarray(t_left),
        forced,
    )


LABELS = ("match", "marginal", "unexplained", "missed")


@dataclass
class LayerTally:
    """One layer's counts (``spikes`` and the labels) and mismatches summed over the samples of a batch."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("spikes", *LABELS), 0))
    mismatches: list[dict[str, Any]] = field(default_factory=list)

    def add(self, rep: TimingReport, spikes: int, sample: int) -> None:
        """Add the report of one sample whose target emitted ``spikes`` spikes (spike-steps)."""
        self.counts["spikes"] += int(spikes)
        for k in LABELS:
            self.counts[k] += rep.counts[k]
        self.mismatches += [{"sample": sample, **m} for m in rep.to_dict()["mismatches"]]


def totals(layers: dict[str, dict[str, Any]]) -> dict[str, int]:
    """Report totals over the per-layer ``counts``: spikes, matched, marginal, unexplained, missed."""
    names = {
        "spikes": "spikes",
        "matched": "match",
        "marginal": "marginal",
        "unexplained": "unexplained",
        "missed": "missed",
    }
    return {k: sum(lay["counts"][c] for lay in layers.values()) for k, c in names.items()}


def _interval_of(t: np.ndarray, conv: StepConvention) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(t), np.floor((t - conv.t0) / conv.dt), np.inf)


def _classify(
    conv: StepConvention,
    tol: np.ndarray,
    v_th: np.ndarray,
    steps: np.ndarray,
    neurons: np.ndarray,
    j_claim: np.ndarray,
    vmax: np.ndarray,
    sampled: np.ndarray,
    tfirst: np.ndarray,
    t_left: np.ndarray,
    forced: np.ndarray,
) -> TimingReport:
    n_int = vmax.shape[0]
    rows: list[tuple] = []
    for s, nn, j in zip(steps, neurons, j_claim, strict=True):
        if not 0 <= j < n_int:
            rows.append((nn, s, j, np.nan, np.nan, np.nan, np.nan, np.nan, "unexplained"))
            continue
        te = tfirst[j, nn]
        jx = _interval_of(np.asarray(te), conv)
        margin = v_th[nn] - sampled[j, nn]
        a, b = conv.t0 + j * conv.dt, conv.t0 + (j + 1) * conv.dt
        if jx == j:
            rows.append((nn, s, j, te, 0.0, 0.0, margin, np.nan, "match"))
        elif not np.isfinite(te) or jx > j:  # emulator early (exact did not cross by the end of interval j)
            lab = "marginal" if margin < tol[j, nn] else "unexplained"
            res = float(j - jx) if np.isfinite(jx) else np.nan  # nan: no exact crossing before the reset
            rows.append((nn, s, j, te, res, te - a if np.isfinite(te) else np.nan, margin, np.nan, lab))
        else:  # emulator late: exact crossed in an earlier interval jx
            over = float(np.max(sampled[int(jx) : j, nn]) - v_th[nn])
            lab = "marginal" if over < np.max(tol[int(jx) : j + 1, nn]) else "unexplained"
            rows.append((nn, s, j, te, float(j - jx), te - b, margin, over, lab))
    # missed: exact crossing after the neuron's last forced reset
    for nn in np.nonzero(np.isfinite(t_left))[0]:
        jx = int(_interval_of(t_left[nn], conv))
        if jx >= n_int:
            continue
        over = float(np.max(sampled[jx:, nn]) - v_th[nn])
        rows.append(
            (
                nn,
                -1,
                jx,
                t_left[nn],
                np.nan,
                np.nan,
                np.nan,
                over,
                "marginal" if over < np.max(tol[jx:, nn]) else "unexplained",
            )
        )
    cols = list(zip(*rows, strict=True)) if rows else [[] for _ in range(9)]
    lab = np.asarray(cols[8], dtype=object)
    counts = {k: int(np.sum(lab == k)) for k in ("match", "marginal", "unexplained")}
    counts["missed"] = int(sum(1 for r in rows if r[1] == -1))
    del forced
    return TimingReport(
        conv,
        float(np.max(tol)) if tol.size else 0.0,
        np.asarray(cols[0], int),
        np.asarray(cols[1], int),
        np.asarray(cols[2], float),
        np.asarray(cols[3], float),
        np.asarray(cols[4], float),
        np.asarray(cols[5], float),
        np.asarray(cols[6], float),
        np.asarray(cols[7], float),
        lab,
        counts,
    )
