"""Layer-wise neuron time loop with a hand-derived adjoint (``jax.custom_vjp``): same values, faster gradients.

:func:`neuron_scan` runs one neuron node over a whole time-major input series ``x`` of shape ``(T, B, *n)`` and
returns exactly what a ``lax.scan`` of :class:`~snn_deploy.sim.reference_ops.NeuronStep` returns (final state,
output series, record), bit for bit: the forward loop performs the same float operations in the same order.

Why: JAX's autodiff of the scan stores every intermediate of every step and its backward loop replays the whole
step's transpose, with one batch reduction per carried constant per step. Here the forward loop emits the membrane
``m[t]`` just before the spike decision and the spikes (plus the synaptic current ``i[t]`` for Cuba nodes); the
backward loop recomputes spikes, post-reset membranes and surrogate derivatives from ``m[t]``, runs the element-wise
linear recurrence for the membrane adjoint ``mu[t] = dL/dm[t]``, writes the input gradient over the output's
cotangent series (in place: one ``(T, B, *n)`` buffer less; fresh memory costs a page fault per 4 KiB on every
call on CPU) and keeps the constants' gradients as running sums over batch and time (``(k, *n)``, so no
``(T, B, *n)`` product series is ever stored). Constants closed over by the loops keep their per-neuron shape.
Only the constants JAX marks as perturbed get gradients (``symbolic_zeros``); zero cotangents are skipped.

Adjoint (per element; ``a`` = a_mem, ``theta`` = v_threshold, ``s[t] = H(m[t] - theta)``, ``sg[t]`` its surrogate
derivative, ``r[t]`` = ``s[t]`` used in the reset, constant for the gradient when ``detach_reset``)::

    m[t]  = a v[t-1] + k_x x[t] + c + k_i i[t-1] (- theta s[t-1]  for subtract-next)
    v[t]  = m[t] + r[t] (v_reset - m[t])  |  m[t] - r[t] theta  |  m[t]       (zero | subtract | subtract-next)

    lam[t] = gv[t] + a mu[t+1]                          cotangent of v[t] (gv: direct cotangents of v[t])
    G[t]   = gs[t] + F mu[t+1] + Rv[t] lam[t]           cotangent of s[t] (gs: outputs; F = -theta for
                                                         subtract-next without detach, else 0)
    mu[t]  = Dv[t] lam[t] + sg[t] G[t]                  Dv = 1 - s (zero reset) or 1
    Rv     = v_reset - m (zero) | -theta (subtract) | 0  (0 whenever detach_reset)
    Cuba:  lam_i[t] = gi[t] + a_syn lam_i[t+1] + k_i mu[t+1]

    dx[t] = k_x mu[t] + b_syn lam_i[t];  d a = sum mu[t] v[t-1];  d k_x = sum mu[t] x[t];  d c = sum mu[t];
    d k_i = sum mu[t] i[t-1];  d a_syn = sum lam_i[t] i[t-1];  d b_syn = sum lam_i[t] x[t];
    d theta = -sum sg G - (subtract) sum lam s - (subtract-next) sum mu[t] s[t-1];  d v_reset = sum lam s (zero).

Measured (700-256-20 LIF, batch 64, 256 steps, jax 0.10.2, 2-core CPU; ``benchmarks/reference_speed.py``): the
hidden layer's loops take ~6 ms forward and ~9 ms backward (JAX autodiff of the plain step: ~35-50 ms together).

:func:`linear_neuron_scan` runs a Linear/Affine of an Input together with the (synapse-free) neuron it alone feeds:
its forward writes ``m`` over the Linear's product as it goes (no zero-filled ``m`` series, the product is not kept)
and its backward gets the weight, bias and ``k_x`` gradients from one GEMM of ``mu`` with the Input. Measured on the
same benchmark: ~4k page faults (one 16 MB series) and ~6 ms wall / ~10 ms CPU less per forward + backward.

With ``next_linear`` the neuron's only consumer, a Linear of it alone, joins that op (the Simulator does this for
unrecorded neurons: ``Simulator.chained``): the neuron's output series and its cotangent are never stored (the
forward recomputes the output from ``m`` batch group by batch group for the product; the backward forms the
output cotangent per step from the Linear's and writes ``mu`` over ``m``). On the benchmark this takes the
program's temporary memory from 51 MB (three ``(T, B, 256)`` series live at once) to 25 MB, under glibc's largest
reuse threshold (32 MiB): malloc then reuses the block on every call instead of mapping fresh pages, and the
~14k page faults per call (~15 ms) vanish; ~109 -> ~93 ms per forward + backward.

Coverage: every neuron kind the layer-wise path runs (LIF, CubaLIF, IF, LI, CubaLI, Integrator), every reset,
``detach_reset`` on and off, every surrogate, both discretisations (they only change the coefficients, which stay
ordinary JAX functions of the parameters outside this loop). Not covered, and therefore still differentiated by
JAX's autodiff of the plain step: neurons inside cyclic components (``Simulator._run_cycle``), and forward-mode
differentiation (``jax.jvp``/``jacfwd``; ``custom_vjp`` has no JVP): use ``SimConfig(adjoint=False)`` for those.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from snn_deploy.errors import ConventionError

from .reference_ops import NeuronStep

Array = jax.Array
State = dict[str, Array]


@dataclass(frozen=True)
class _Static:
    """The loop's static settings (hashable: the custom_vjp's non-differentiable argument)."""

    step: NeuronStep
    keep: bool
    unroll: int
    batch_major: bool
    precision: str | None = None  # the fused Linears' matmul precision (linear_neuron_scan only)
    chain: bool = False  # linear_neuron_scan with a next Linear: the loop emits no output series


def layer_constants(step: NeuronStep, coef: dict[str, Array], p: dict[str, Array]) -> dict[str, Array]:
    """The constants :meth:`NeuronStep.constants` selects, at their own (per-neuron) shape, not broadcast.

    The loops below close over per-neuron constants: this custom VJP reduces their gradients over time and batch
    itself, so the per-step batch reduction that makes closed-over constants slow under autodiff does not arise,
    and each step reads ``n`` values per constant instead of ``B * n``.
    """
    k = dict(coef)
    if step.spiking:
        k["v_threshold"] = p["v_threshold"]
        if step.reset == "zero":
            k["v_reset"] = p["v_reset"]
    if not step.has_synapse:
        for n in ("a_syn", "b_syn", "k_i"):
            k.pop(n, None)
    return k


def neuron_scan(
    step: NeuronStep,
    consts: dict[str, Array],
    st0: State,
    x: Array,
    *,
    keep: bool,
    unroll: int = 1,
    batch_major: bool = False,
) -> tuple[State, Array, dict[str, Array]]:
    """Run ``step`` over the time-major series ``x`` ``(T, B, *n)`` from state ``st0``.

    Args:
        step: the node's update (kind, reset, surrogate, detach_reset).
        consts: :func:`layer_constants`; each broadcastable to the state's ``(B, *n)`` shape.
        st0: initial state (:meth:`NeuronStep.init` layout).
        x: summed input per step, time-major.
        keep: also return the record ``{'spikes', 'v', 'i'}`` series (else ``{}``).
        unroll: ``lax.scan`` unroll factor of the forward loop (speed only; the backward loop is never unrolled:
            measured 10-30x slower unrolled by 2 or 4 on XLA CPU).
        batch_major: ``x`` is batch-major ``(B, T, *n)`` (its gradient then is too; the outputs stay time-major).
            Speed only: a Linear applied to a batch-major Input then needs no transposed copy of either the
            product or its gradient (each step reads and writes one strided ``(B, *n)`` slice).

    Returns:
        ``(final state, output series (T, B, *n), record)``, identical to ``lax.scan`` of ``step``.
    """
    return _scan(_Static(step, keep, unroll, batch_major), consts, st0, x)


def linear_neuron_scan(
    step: NeuronStep,
    consts: dict[str, Array],
    st0: State,
    inp: Array,
    weight: Array,
    bias: Array | None,
    *,
    keep: bool,
    unroll: int = 1,
    precision: str | None = None,
    next_linear: tuple[Array, Array | None] | None = None,
) -> tuple[State, Array, dict[str, Array]]:
    """A Linear (or Affine) of a batch-major Input ``inp`` ``(B, T, in)`` and the neuron it alone feeds, as one op.

    Forward: ``x = matmul(inp, weight.T, precision) (+ bias)`` (exactly the unfused Linear's ops) and then the loop
    of :func:`neuron_scan` over ``x`` read batch-major: bit-identical results. Backward: the product ``x``
    (``(B, T, n)``) is not kept for the gradient of ``k_x``; the loop writes the membrane adjoint ``mu`` and one
    GEMM ``G = mu^T inp`` gives ``d weight = k_x G``, ``d k_x = sum_in weight G (+ bias sum mu)`` and
    ``d bias = k_x sum mu`` (same values as autodiff to float32 rounding: ``k_x`` is applied after the GEMM).
    Speed only: one ``(B, T, n)`` buffer less at the peak (~4k page faults per call on CPU for 64 x 256 x 256) and
    no ``mu x`` product per step. Only for kinds without a synaptic current (x also feeds ``i`` in Cuba kinds).

    ``next_linear = (weight2, bias2)``: the neuron's only consumer, a Linear (Affine), joins the op, which then
    returns that Linear's time-major output ``(T, B, o)`` instead of the neuron's (``keep`` must be False). The
    neuron's output series is never stored: the forward recomputes it from ``m`` a batch group at a time for the
    product, the backward forms its cotangent per step as ``g2[t] @ weight2`` and writes ``mu`` over ``m``. The
    only ``(B, T, n)`` series then is ``m`` (three at the peak without it), so the op's temporary memory falls
    below glibc's largest reuse threshold (32 MiB) on the 700-256-20 benchmark and the page faults of fresh memory
    on every call vanish. Same values as the unfused ops (the product's sum order is the same per element).
    """
    if step.has_synapse:
        raise ConventionError(
            f"linear_neuron_scan takes neuron kinds without a synaptic current, got {step.kind.__name__}",
            fix="use neuron_scan on the Linear's product for CubaLIF/CubaLI",
        )
    if next_linear is not None and keep:
        raise ConventionError(
            "linear_neuron_scan with next_linear stores no neuron series to record",
            fix="pass keep=False or run the next Linear separately",
        )
    w2, b2 = next_linear if next_linear is not None else (None, None)
    spec = _Static(step, keep, unroll, True, precision, chain=next_linear is not None)
    return _fused(spec, consts, st0, inp, weight, bias, w2, b2)


# ---------------------------------------------------------------------------------------------- forward


def _forward_loop(
    spec: _Static, k: dict[str, Array], st0: State, x: Array, *, m_over_x: bool = False
) -> tuple[State, dict[str, Array]]:
    """The time loop: final state and the series ``m`` (membrane before the spike decision), ``s`` (spikes, for
    spiking kinds) and ``i`` (synaptic current, Cuba kinds).

    Same float operations, in the same order, as :meth:`NeuronStep.__call__` (so the results are bit-identical).
    ``m_over_x`` (batch-major ``x`` that nothing else reads): step t writes ``m[t]`` over the ``x[:, t]`` it has just
    read, so ``m`` comes back batch-major ``(B, T, *n)`` in ``x``'s buffer (one fresh, zero-filled ``(T, B, *n)``
    series less; speed only).
    """
    step = spec.step

    def body(carry, x_t: Array) -> tuple[State, dict[str, Array]]:
        st, buf = carry if m_over_x else (carry, x)
        t = x_t
        if spec.batch_major:  # x_t is the step index
            x_t = jax.lax.dynamic_index_in_dim(buf, t, axis=1, keepdims=False)
        v, new = step.membrane(k, st, x_t)  # NeuronStep's own expressions: bit-identical to the autodiff path
        ys: dict[str, Array] = {"m": v}
        if step.has_synapse:
            ys["i"] = new["i"]
        if step.spiking:
            s, v = step.fire(k, v)
            if not spec.chain:  # chain: the next Linear recomputes s from m (no (T, B, n) spike series)
                ys["s"] = s
            if step.reset == "subtract-next":
                new["s"] = s
        new["v"] = v
        if m_over_x:  # in place: XLA updates the carried buffer, x[:, t] is not read again
            return (new, jax.lax.dynamic_update_index_in_dim(buf, ys.pop("m"), t, axis=1)), ys
        return new, ys

    xs = jnp.arange(x.shape[1]) if spec.batch_major else x
    if not m_over_x:
        return jax.lax.scan(body, st0, xs, unroll=spec.unroll)
    (st, m), ys = jax.lax.scan(body, (st0, x), xs, unroll=spec.unroll)
    return st, {**ys, "m": m}


def _post_reset(step: NeuronStep, k: dict[str, Array], m: Array) -> Array:
    """Membrane after the reset, from ``m`` (the loop's own :meth:`NeuronStep.fire`, so bit-identical)."""
    return step.fire(k, m)[1] if step.spiking else m


def _outputs(spec: _Static, k, st, ys, m_bm: bool = False) -> tuple[State, Array, dict[str, Array]]:
    """The op's results from the loop's; ``m_bm``: ``ys['m']`` is batch-major (``_forward_loop(m_over_x=True)``)."""
    step = spec.step
    m = jnp.swapaxes(ys["m"], 0, 1) if m_bm and (spec.keep or not step.spiking) else ys["m"]
    out = ys["s"] if step.spiking else m
    rec: dict[str, Array] = {}
    if spec.keep:
        rec["v"] = _post_reset(step, k, m)
        if step.spiking:
            rec["spikes"] = ys["s"]
        if step.has_synapse:
            rec["i"] = ys["i"]
    return st, out, rec


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _scan(spec: _Static, consts: dict[str, Array], st0: State, x: Array):
    st, ys = _forward_loop(spec, consts, st0, x)
    return _outputs(spec, consts, st, ys)


def _scan_fwd(spec: _Static, consts, st0, x):
    # the constants that need a gradient, as the keys of a dict of None leaves (static, carried in the residuals)
    need = {n: None for n, c in consts.items() if c.perturbed}
    consts, st0, x = jax.tree_util.tree_map(lambda p: p.value, (consts, st0, x))
    st, ys = _forward_loop(spec, consts, st0, x)
    return _outputs(spec, consts, st, ys), (consts, st0, x, ys["m"], ys.get("i"), need)


# ---------------------------------------------------------------------------------------------- backward


def _nz(c: Any) -> Array | None:
    """A cotangent, or None when JAX says it is a symbolic zero."""
    return None if c is None or isinstance(c, SymbolicZero) else c


def _add(*terms: Array | None) -> Array | None:
    live = [t for t in terms if t is not None]
    if not live:
        return None
    out = live[0]
    for t in live[1:]:
        out = out + t
    return out


def _batch_sum(v: Array) -> Array:
    """``v.sum(0)`` as a tree of slice additions: element-wise loop kernels on XLA CPU, measured faster inside the
    time loop (hidden layer: ~9 vs ~14 ms) than a reduce, which XLA CPU hands to a library call per step."""
    while v.shape[0] > 1:
        half = v.shape[0] // 2
        rest = v[2 * half :]
        v = v[:half] + v[half : 2 * half]
        if rest.shape[0]:
            v = v.at[:1].add(rest)
    return v[0]


def _unbroadcast(g: Array, shape: tuple[int, ...]) -> Array:
    """Sum ``g`` (shape ``n``, already summed over time and batch) down to a constant's broadcastable ``shape``."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + j for j, d in enumerate(shape) if d == 1 and g.shape[lead + j] != 1
    )
    return jnp.sum(g, axis=axes).reshape(shape) if axes else g


def _scan_bwd(spec: _Static, res, ct):
    k, st0, x, m, i_ser, need = res
    sums, d_st0, d_x = _adjoint(spec, k, st0, x, m, i_ser, need, ct, fused=False)
    return {n: _unbroadcast(sums[n], k[n].shape) if n in sums else None for n in k}, d_st0, d_x


def _adjoint(spec: _Static, k, st0, x, m, i_ser, need, ct, *, fused: bool, next_linear=None):
    """The reverse loop. Returns the gradient sums over time and batch (``{name: (*n)}``, for the names in
    ``need``), the initial state's cotangents and the input gradient series; with ``fused`` (no synapse; ``x`` is
    None) it sums no ``k_x`` term, writes ``mu`` instead of the input gradient and sums ``mu`` as ``'_mu'``.

    ``next_linear = (g2, w2, want_w2)`` (fused with a next Linear, ``ct``'s output cotangent is then ``g2``, that
    Linear's ``(T, B, o)`` output cotangent, or None): step t takes its output cotangent as ``g2[t] @ w2``, adds
    ``g2[t]^T out[t]`` to the sum ``'_w2'`` (the next weight's gradient, with ``want_w2``) and writes ``mu[t]`` over
    ``m[:, t]`` (batch-major, in place), so no ``(T, B, n)`` series but ``m`` is ever live. (A product of ``g2``
    with the output recomputed from ``m`` before the loop would make XLA copy ``m`` for the in-place update.)"""
    ct_st, ct_out, ct_rec = ct
    chain = next_linear is not None
    g2, w2, want_w2 = next_linear if chain else (None, None, False)
    if chain:
        ct_out = None  # the layer's own output cotangent is g2 @ w2, formed per step below
    step = spec.step
    syn, spiking, reset, detach = step.has_synapse, step.spiking, step.reset, step.detach_reset
    zeros = jnp.zeros_like(st0["v"])
    g_out, g_rec = _nz(ct_out), {n: _nz(c) for n, c in ct_rec.items()}
    gs = _add(g_out, g_rec.get("spikes")) if spiking else None  # direct cotangent of s[t]
    gv = _add(g_rec.get("v"), None if spiking else g_out)  # direct cotangent of v[t]
    gi = g_rec.get("i") if syn else None  # direct cotangent of i[t]
    # cotangents of the final v, i, s enter the reverse loop as its initial carry
    ct_v, ct_i = _nz(ct_st["v"]), (_nz(ct_st["i"]) if syn else None)
    ct_s = _nz(ct_st["s"]) if "s" in ct_st else None
    a, theta = k["a_mem"], k.get("v_threshold")
    sub_next = spiking and reset == "subtract-next"
    # The largest cotangent series (of the output: spikes, or v for non-spiking kinds) is the loop's output buffer
    # too: step t reads its slice, then writes the input gradient over it. One (T, B, *n) series less in memory
    # (fresh memory costs page faults on every call on CPU).
    primary = gs if spiking else gv

    def at(series: Array | None, t: Array, axis: int = 0) -> Array | None:
        return None if series is None else jax.lax.dynamic_index_in_dim(series, t, axis=axis, keepdims=False)

    def body(carry, t):
        """Step t, backwards: carry holds the adjoints of step t+1, the running sums and ``extra``: the final
        state's cotangents (zero after the last step; absent when JAX knows them to be zero)."""
        mu_next, lam_i_next, extra, acc, buf = carry
        if chain:  # buf: the batch-major m that mu overwrites, m[t] (read from it by the previous step), d w2
            buf, m_t, acc_w2 = buf
        else:  # fused: m is batch-major
            m_t = at(m, t, axis=1 if fused else 0)
        i_t, gi_t = at(i_ser, t), at(gi, t)
        if chain:  # the next Linear's output cotangent, back through its weight
            p_t = None if g2 is None else jnp.matmul(at(g2, t), w2, precision=spec.precision)
        else:  # step t's cotangent of the output series comes from the buffer the gradient then overwrites
            p_t = at(buf, t) if primary is not None else None
        gs_t, gv_t = (p_t, at(gv, t)) if spiking else (None, p_t)
        x_t = None if fused else at(x, t, axis=1 if spec.batch_major else 0)
        h = a * mu_next if extra[0] is None else a * mu_next + extra[0]  # dL/dv[t] from step t+1 (+ final v)
        f = None  # dL/ds[t] from step t+1 (subtract-next without detach) and from the final state's s
        if sub_next and not detach:
            f = -theta * mu_next
        f = _add(f, extra[1])
        eta = None  # dL/di[t] from step t+1 (+ final i)
        if syn:
            eta = _add(k["a_syn"] * lam_i_next + k["k_i"] * mu_next, extra[2])
        lam = h if gv_t is None else gv_t + h  # dL/dv[t]
        d = {}
        if spiking:
            u = m_t - theta
            s = (u > 0).astype(m_t.dtype)  # the forward's spike, recomputed
            sg = step.surrogate.derivative(u)
            g = _add(gs_t, f)  # dL/ds[t] without the reset path
            dv = 1.0 - s if reset == "zero" else None  # dv[t]/dm[t] with the spike held fixed (None: 1)
            if not detach and reset == "zero":  # the reset path: dv[t]/ds[t] = v_reset - m[t]
                g = _add(g, (k["v_reset"] - m_t) * lam)
            elif not detach and reset == "subtract":  # dv[t]/ds[t] = -theta
                g = _add(g, -theta * lam)
            mu = lam if dv is None else dv * lam
            if g is not None:
                sgg = sg * g
                mu = mu + sgg
                d["v_threshold"] = -sgg
            if reset == "zero":
                d["v_reset"] = lam * s
                v_t = m_t + s * (k["v_reset"] - m_t)
            elif reset == "subtract":
                d["v_threshold"] = _add(d.get("v_threshold"), -lam * s)
                v_t = m_t - s * theta
            else:  # subtract-next: m[t+1] holds -theta s[t]
                d["v_threshold"] = _add(d.get("v_threshold"), -mu_next * s)
                v_t = m_t
        else:
            mu, v_t = lam, m_t
        d["a_mem"] = mu_next * v_t  # m[t+1] = a v[t] + ...
        if fused:
            d["_mu"] = dx = mu  # the GEMM after the loop pairs mu with the Linear's input
        else:
            d["k_x"] = mu * x_t
            dx = k["k_x"] * mu
        d["c"] = mu
        lam_i = None
        if syn:
            lam_i = eta if gi_t is None else gi_t + eta  # dL/di[t]
            d["k_i"] = mu_next * i_t  # m[t+1] holds k_i i[t]
            d["a_syn"] = lam_i_next * i_t  # i[t+1] = a_syn i[t] + ...
            d["b_syn"] = lam_i * x_t
            dx = dx + k["b_syn"] * lam_i
        if acc is not None:  # running sums over time and batch: (len(names), *n), one reduction per step
            acc = acc + _batch_sum(jnp.stack([d[n] if n in d else zeros for n in names], axis=1))
        if chain:
            if want_w2:  # the next Linear's weight gradient: g2[t]^T out[t]
                out_t = s if spiking else m_t
                acc_w2 = acc_w2 + jnp.matmul(at(g2, t).T, out_t, precision=spec.precision)
            buf = jax.lax.dynamic_update_index_in_dim(buf, dx, t, axis=1)
            # m[t-1] is read from the updated buffer: a read that follows the write, so XLA updates in place (a
            # read of m[t] by several fusions beside the write made it copy the whole buffer on every step)
            buf = (buf, at(buf, jnp.maximum(t - 1, 0), axis=1), acc_w2)
        else:
            buf = jax.lax.dynamic_update_index_in_dim(buf, dx, t, axis=0)
        extra = tuple(None if e is None else jnp.zeros_like(e) for e in extra)
        return (mu, lam_i, extra, acc, buf), None

    names = [n for n in (*k, "_mu") if n in need and not (fused and n == "k_x")]
    # (T, B, *n); the fused op's m is batch-major (written over the Linear's product, see _forward_loop)
    tm_shape = (m.shape[1], m.shape[0], *m.shape[2:]) if fused else m.shape
    # Carry: mu[t+1], lam_i[t+1], the final-state cotangents (used at the last step, zero after; None when JAX
    # passes symbolic zeros, as in training, where the final state is unused), the running sums, the buffer.
    init = (
        zeros,
        zeros if syn else None,
        (ct_v, ct_s, ct_i),
        jnp.zeros((len(names), *zeros.shape[1:]), zeros.dtype) if names else None,
        (
            (m, at(m, tm_shape[0] - 1, axis=1), jnp.zeros_like(w2) if want_w2 else None)
            if chain
            else jnp.zeros(tm_shape, m.dtype)
            if primary is None
            else primary
        ),
    )
    (mu0, lam_i0, _, acc, d_x), _ = jax.lax.scan(
        body,
        init,
        jnp.arange(tm_shape[0]),
        reverse=True,  # unroll > 1 measured 10-30x slower here
    )
    if chain:
        d_x, _, acc_w2 = d_x
    if spec.batch_major and not fused:
        d_x = jnp.swapaxes(d_x, 0, 1)
    acc = dict(zip(names, list(acc), strict=True)) if names else {}
    if chain and want_w2:
        acc["_w2"] = acc_w2
    # terms that pair step 0's adjoint with the initial state (the loop pairs mu[t+1] with step t's values)
    first = lambda a_, b_: jnp.sum(a_ * b_, axis=0)  # noqa: E731
    if "a_mem" in acc:
        acc["a_mem"] = acc["a_mem"] + first(mu0, st0["v"])
    if "k_i" in acc:
        acc["k_i"] = acc["k_i"] + first(mu0, st0["i"])
    if "a_syn" in acc:
        acc["a_syn"] = acc["a_syn"] + first(lam_i0, st0["i"])
    if sub_next and "v_threshold" in acc:
        acc["v_threshold"] = acc["v_threshold"] - first(mu0, st0["s"])
    d_st0: State = {"v": a * mu0}  # m[0] = a v0 + ...
    if syn:
        d_st0["i"] = k["a_syn"] * lam_i0 + k["k_i"] * mu0  # i[0] = a_syn i0 + ..., m[0] holds k_i i0
    if "s" in st0:
        d_st0["s"] = zeros if detach else -theta * mu0  # m[0] holds -theta s0
    return acc, d_st0, d_x


_scan.defvjp(_scan_fwd, _scan_bwd, symbolic_zeros=True)


# ---------------------------------------------------------------------------------------------- fused Linear


def _linear(spec: _Static, inp: Array, weight: Array, bias: Array | None) -> Array:
    """The unfused Linear's ops (``Simulator._run_layer``) on batch-major ``inp`` ``(B, T, in)``."""
    y = jnp.matmul(inp, weight.T, precision=spec.precision)
    return y if bias is None else y + bias


#: The chained op's products run over at most this many batch groups, one after the other (``lax.scan``): each
#: group's temporaries (the recomputed neuron output, a GEMM's operand copies) are live one at a time.
_GROUPS = 8


def _grouped(fn, init, *series: Array):
    """``fn(carry, *group_slices) -> (carry, y)`` over batch groups of batch-major ``series`` (a ``lax.scan`` over
    the largest divisor of the batch size that is <= ``_GROUPS``); returns ``(carry, ys)`` with ``ys`` of
    shape ``(groups, B/groups, ...)``."""
    b = series[0].shape[0]
    groups = max(g for g in range(1, min(_GROUPS, b) + 1) if b % g == 0)
    split = [x.reshape(groups, b // groups, *x.shape[1:]) for x in series]  # contiguous: no copy
    return jax.lax.scan(lambda c, xs: fn(c, *xs), init, split)


def _neuron_out(spec: _Static, k, m: Array) -> Array:
    """The neuron's output from its pre-spike membrane (the loop's own :meth:`NeuronStep.fire`: bit-identical)."""
    return spec.step.fire(k, m)[0] if spec.step.spiking else m


def _next_linear(spec: _Static, k, m: Array, w2: Array, b2: Array | None) -> Array:
    """The next Linear's time-major output ``(T, B, o)`` from the batch-major membrane ``m`` ``(B, T, n)``."""
    _, y = _grouped(lambda c, m_g: (c, _linear(spec, _neuron_out(spec, k, m_g), w2, b2)), None, m)
    return jnp.swapaxes(y.reshape(m.shape[0], m.shape[1], -1), 0, 1)


def _fused_primal(spec: _Static, consts, st0, inp, weight, bias, w2, b2):
    st, ys = _forward_loop(spec, consts, st0, _linear(spec, inp, weight, bias), m_over_x=True)
    if spec.chain:
        return (st, _next_linear(spec, consts, ys["m"], w2, b2), {}), ys["m"]
    return _outputs(spec, consts, st, ys, m_bm=True), ys["m"]


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def _fused(spec: _Static, consts, st0, inp, weight, bias, w2, b2):
    return _fused_primal(spec, consts, st0, inp, weight, bias, w2, b2)[0]


def _fused_fwd(spec: _Static, consts, st0, inp, weight, bias, w2, b2):
    need = {n: None for n, c in consts.items() if c.perturbed}
    pert = tuple(a is not None and a.perturbed for a in (inp, weight, bias, w2, b2))
    consts, st0, inp, weight, bias, w2, b2 = jax.tree_util.tree_map(
        lambda p: p.value, (consts, st0, inp, weight, bias, w2, b2)
    )
    out, m = _fused_primal(spec, consts, st0, inp, weight, bias, w2, b2)
    return out, (consts, st0, inp, weight, bias, w2, m, need, pert)


def _fused_bwd(spec: _Static, res, ct):
    k, st0, inp, weight, bias, w2, m, need, (p_inp, p_w, p_b, p_w2, p_b2) = res
    need_kx = "k_x" in need
    if p_b or (need_kx and bias is not None):  # sum of mu over time and batch: d bias, bias part of d k_x
        need = {**need, "_mu": None}
    d_w2 = d_b2 = next_linear = None
    if spec.chain:
        g2 = _nz(ct[1])  # (T, B, o)
        if g2 is not None and p_b2:
            d_b2 = jnp.sum(g2, axis=(0, 1))
        next_linear = (g2, w2, g2 is not None and p_w2)
    sums, d_st0, mu = _adjoint(spec, k, st0, None, m, None, need, ct, fused=True, next_linear=next_linear)
    d_w2 = sums.pop("_w2", None)
    mu_axes = "btn" if spec.chain else "tbn"  # chain: mu overwrote the batch-major m
    n = weight.shape[0]
    kx = jnp.broadcast_to(k["k_x"], (n,))
    d_consts = {c: _unbroadcast(sums[c], k[c].shape) if c in sums else None for c in k}
    d_w = d_b = d_inp = None
    if p_w or need_kx:  # G[j, i] = sum over t, b of mu[t, b, j] inp[b, t, i]
        if spec.chain:  # by batch groups: the GEMM's transposed copy of mu is a group's, not the whole series
            g, _ = _grouped(
                lambda acc, mu_g, inp_g: (
                    acc + jnp.einsum("btn,bti->ni", mu_g, inp_g, precision=spec.precision),
                    None,
                ),
                jnp.zeros_like(weight),
                mu,
                inp,
            )
        else:
            g = jnp.einsum("tbn,bti->ni", mu, inp, precision=spec.precision)
        d_w = kx[:, None] * g if p_w else None
        if need_kx:  # x = inp weight^T (+ bias), so sum mu x = sum_i weight G (+ bias sum mu)
            dk = jnp.sum(weight * g, axis=1)
            dk = dk if bias is None else dk + bias * sums["_mu"]
            d_consts["k_x"] = _unbroadcast(dk, k["k_x"].shape)
    if p_b:
        d_b = _unbroadcast(kx * sums["_mu"], bias.shape)
    if p_inp:
        d_inp = jnp.einsum(f"{mu_axes},ni->bti", kx * mu, weight, precision=spec.precision)
    return d_consts, d_st0, d_inp, d_w, d_b, d_w2, d_b2


_fused.defvjp(_fused_fwd, _fused_bwd, symbolic_zeros=True)
