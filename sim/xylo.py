"""Bit-exact JAX emulator of the Xylo SNN core: xylosim 0.1.3 as wrapped by Rockpool 3.1.0's ``XyloSim``.

Covers core v2 (XyloAudio 2 ``syns61201``, XyloIMU ``syns63300``, XyloAudio 3 ``syns65302``) and core v1
(``syns61300``). Facts and derivations: ``targets/xylo.md``; every integer operation lives in :mod:`.xylo_ops`.

Conventions
    Time is in steps (the simulator has no dt). One step (``XyloLayer::evolve``):

    1. input counts, capped at 15, are delivered to hidden synapses; then the hidden counts of the *previous*
       step, capped at 31, to hidden synapses and to the readout. Every single add saturates, in source order
       (inputs 0..Nin-1, then hidden 0..Nh-1). So input->hidden has latency 0, hidden->hidden and hidden->output 1.
    2. hidden neurons: Isyn decays (after delivery, same step), Vmem integrates (v1 or v2 formula), spikes while
       ``v >= thr`` with subtractive reset, up to 31 per step, counting alias spikes received from lower-index
       neurons; then deposits its count on its alias targets (capped at 31).
    3. output neurons: the same with one synapse, no aliases, at most 1 spike.

    Effective weights are ``wrap16(w << shift)`` per block (in / rec / out); ``weights_out`` row k is driven by
    hidden neuron ``Nh - OEN + k``.

Records (``record=True``) equal XyloSim's: ``Vmem``, ``Isyn``, ``Isyn2`` (omitted for syns63300/syns65302, like
Rockpool's IMU wrapper), ``Spikes`` (hidden counts incl. aliases), ``Vmem_out``, ``Isyn_out``; each (T, N) for one
sample or (B, T, N) for a batch; Isyn after decay, Vmem after reset. Arrays are int32 (XyloSim returns int64).

Delivery modes (both bit-exact; xylo.md 4): ``"exact"`` folds every (sample, target) pair in source order.
``"auto"`` (default) adds plain sums, computed with an exact float GEMM (:func:`.xylo_ops.count_dot`), wherever
interval bounds prove that no partial sum can leave int16 (tier 1: a per-sample O(B*P) bound; tier 2: the exact
per-pair sum of positive increments), and folds only the targets with a risky sample exactly (gathered columns,
a few static sizes), or everything when most targets are risky. The fold visits only sources that spike.

Batches are split over all local JAX devices (``jax.shard_map``, parameters replicated); on CPU, run with
``XLA_FLAGS=--xla_force_host_platform_device_count=<cores>`` to use every core (``benchmarks/xylo_speed.py``).
"""

from __future__ import annotations

import functools
import weakref
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from snn_deploy.sim.xylo_ops import (
    I16_MAX,
    I16_MIN,
    clamp16,
    count_dot,
    decayed,
    fire,
    fold_tree,
    membrane,
)
from snn_deploy.sim.xylo_spec import (
    VARIANTS,
    XyloHardwareLimitError,
    XyloInputError,
    XyloSpec,
    XyloSpecError,
    XyloVariant,
)

__all__ = [
    "VARIANTS",
    "XyloEmulator",
    "XyloHardwareLimitError",
    "XyloInputError",
    "XyloSpec",
    "XyloSpecError",
    "XyloState",
    "XyloVariant",
    "evolve",
    "initial_state",
]

MAX_IN_SPIKES = 15  # MAX_NUM_INP_SPIKES (XyloIAFNeuron.h): input counts are capped, not wrapped
MAX_SPIKES = 31  # MAX_NUM_SPIKES: hidden counts per step
MAX_OUT_SPIKES = 1  # MAX_NUM_OUT_SPIKES: readout spikes per step
OutputMode = Literal["Spike", "Vmem", "Isyn"]
Delivery = Literal["auto", "exact"]
ExactImpl = Literal["scan", "tree"]
_EXACT_CHUNK_ELEMENTS = 1 << 22  # int32 elements per lax.map chunk of the exact delivery (memory bound)


class XyloState(NamedTuple):
    """Emulator state (a JAX pytree); leading batch axis optional. All int32 holding int16 values.

    Attributes:
        isyn: (..., 2*Nh) hidden synaptic currents, synapse 1 in ``[:Nh]``, synapse 2 in ``[Nh:]``.
        vmem: (..., Nh) hidden membranes.
        isyn_out, vmem_out: (..., Nout) readout synaptic currents and membranes.
        spikes: (..., Nh) hidden counts of the last step (0..31, aliases included), delivered next step.
        spikes_out: (..., Nout) readout spikes of the last step (0/1); informational only.
    """

    isyn: jax.Array
    vmem: jax.Array
    isyn_out: jax.Array
    vmem_out: jax.Array
    spikes: jax.Array
    spikes_out: jax.Array


def initial_state(spec: XyloSpec, batch_size: int | None = None) -> XyloState:
    """All-zero state, as after ``XyloSim.reset_state()`` or construction; batched when ``batch_size`` is given."""
    lead = () if batch_size is None else (int(batch_size),)
    nh, no = spec.n_hidden, spec.n_out
    z = functools.partial(jnp.zeros, dtype=jnp.int32)
    return XyloState(
        z((*lead, 2 * nh)), z((*lead, nh)), z((*lead, no)), z((*lead, no)), z((*lead, nh)), z((*lead, no))
    )


# --- parameters ----------------------------------------------------------------------------------------------


class _Params(NamedTuple):
    """Device arrays derived from a spec (see :func:`_prepare`).

    Delivery targets are the U = 2*Nh + Nout synaptic states in the order hidden synapse 1 (Nh), hidden synapse 2
    (Nh), readout (Nout); sources are the P = Nin + Nh spike counts in delivery order (inputs, then hidden). The
    readout columns of the input block are zero (inputs do not reach the readout), which leaves the ordered
    saturating fold unchanged: adding 0 to an in-range state is the identity.
    """

    w_in: jax.Array  # (Nin, U) int8 raw effective weights (see _raw_effective)
    w_rec: jax.Array  # (Nh, U) the same for hidden sources (recurrent and readout columns)
    w_in2: jax.Array  # [w_in | max(w_in, 0)] (the positive part of r << s is max(r, 0) << s)
    w_rec2: jax.Array  # [w_rec | max(w_rec, 0)]
    shift_in: jax.Array  # (U,) int32 left shift of each input-block column (IWBS)
    shift_rec: jax.Array  # (U,) int32: RWBS for hidden columns, OWBS for readout columns
    src_max: jax.Array  # (P,) int32: per source, the largest positive effective weight (0 if none)
    src_min: jax.Array  # (P,) int32: per source, the most negative effective weight (0 if none)
    w_eff: jax.Array  # (P, U) int32 effective weights wrap16(w << shift), for the exact ordered fold
    dash_syn: jax.Array  # (U,) synaptic dashes: syn 1, syn 2, readout
    dash_mem: jax.Array  # (Nh + Nout,) neurons: hidden then readout
    thr: jax.Array  # (Nh + Nout,)
    bias: jax.Array  # (Nh + Nout,) zeros when has_bias is false (adding 0 is then a no-op)
    max_spikes: jax.Array  # (Nh + Nout,): 31 (MAX_NUM_SPIKES) for hidden, 1 (MAX_NUM_OUT_SPIKES) for readout
    fwd_src: jax.Array  # alias edges s -> a with a > s (act in the same step, propagate)
    fwd_dst: jax.Array
    bwd_src: jax.Array  # alias edges with a <= s (land after the target evolved, do not propagate)
    bwd_dst: jax.Array
    fwd_depth: jax.Array  # longest forward alias chain (Jacobi iterations needed; 0 without forward aliases)
    has_bwd: jax.Array  # bool: some backward or self alias exists
    nonpos_thr: jax.Array  # bool: some threshold <= 0 (hidden or readout; needs the exact spike loop)


@dataclass(frozen=True)
class _Static:
    """Everything that changes the traced program (the jit cache key besides shapes)."""

    version: str
    n_h: int
    record: bool
    records_isyn2: bool
    output_mode: str
    delivery: str
    exact_impl: str


def _raw_effective(w: np.ndarray, shift: int) -> np.ndarray:
    """int8 ``r`` with ``r << shift == wrap16(w << shift)`` (C++: int8 weight << shift, truncated to int16_t).

    ``wrap16(w * 2**s) = wrap_{16-s}(w) * 2**s``: only the low 16-s bits of w survive, read as a signed
    (16-s)-bit number. For s <= 8 that is w itself; for s >= 16 every weight becomes 0.
    """
    if shift >= 16:
        return np.zeros_like(w, dtype=np.int8)
    bits = 16 - shift
    if bits >= 8:
        return w.astype(np.int8)
    half = 1 << (bits - 1)
    return (((w + half) % (1 << bits)) - half).astype(np.int8)


def _forward_depth(n_h: int, src: np.ndarray, dst: np.ndarray) -> int:
    """Longest path (in edges) of the forward alias DAG (edges go to higher indices)."""
    depth = np.zeros(n_h, np.int64)
    order = np.argsort(src, kind="stable")
    for s, d in zip(src[order], dst[order], strict=True):
        depth[d] = max(depth[d], depth[s] + 1)
    return int(depth.max(initial=0))


_MIN_EDGES = 32  # alias edge lists are padded to max(32, next power of two): one program for most networks


def _pad_edges(src: np.ndarray, dst: np.ndarray, n_h: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad an edge list (fewer recompilations); padding edges point at index n_h, which the scatter drops
    (``mode="drop"``), so they change nothing."""
    size = max(_MIN_EDGES, 1 << max(0, src.size - 1).bit_length())
    pad = size - src.size
    return np.concatenate([src, np.zeros(pad, np.int32)]), np.concatenate([dst, np.full(pad, n_h, np.int32)])


def _prepare(spec: XyloSpec) -> _Params:
    nh, no, n_in = spec.n_hidden, spec.n_out, spec.n_in
    s_in, s_rec, s_out = (
        min(s, 16) for s in (spec.weight_shift_in, spec.weight_shift_rec, spec.weight_shift_out)
    )
    # raw int8 weights per block, targets [syn1 0..Nh-1 | syn2 0..Nh-1 | readout 0..No-1]
    r_in = np.zeros((n_in, 2 * nh + no), np.int8)
    w_in = np.zeros((n_in, 2, nh), np.int64)
    w_in[:, :, : spec.ien] = spec.weights_in.transpose(0, 2, 1)  # column j targets hidden j (IEN <= Nh)
    r_in[:, : 2 * nh] = _raw_effective(w_in.reshape(n_in, 2 * nh), s_in)
    r_rec = np.zeros((nh, 2 * nh + no), np.int8)
    r_rec[:, : 2 * nh] = _raw_effective(spec.weights_rec.transpose(0, 2, 1).reshape(nh, 2 * nh), s_rec)
    w_out = np.zeros((nh, no), np.int64)
    w_out[nh - spec.oen :] = spec.weights_out  # row k of weights_out = hidden Nh-OEN+k
    r_rec[:, 2 * nh :] = _raw_effective(w_out, s_out)
    col_shift_rec = np.r_[np.full(2 * nh, s_rec), np.full(no, s_out)]
    # r << s == wrap16(w << s) fits int16, so the effective weights are exact in int32
    w_eff = np.concatenate([r_in.astype(np.int32) << s_in, r_rec.astype(np.int32) << col_shift_rec])

    src = np.array([s for s, t in enumerate(spec.aliases) for _ in t], np.int32)
    dst = np.array([a for t in spec.aliases for a in t], np.int32)
    fwd = dst > src
    depth = _forward_depth(nh, src[fwd], dst[fwd])
    fwd_src, fwd_dst = _pad_edges(src[fwd], dst[fwd], nh)
    bwd_src, bwd_dst = _pad_edges(src[~fwd], dst[~fwd], nh)
    thr = np.concatenate([spec.threshold, spec.threshold_out])
    i32 = functools.partial(jnp.asarray, dtype=jnp.int32)
    return _Params(
        w_in=jnp.asarray(r_in),
        w_rec=jnp.asarray(r_rec),
        w_in2=jnp.asarray(np.concatenate([r_in, np.maximum(r_in, 0)], axis=1)),
        w_rec2=jnp.asarray(np.concatenate([r_rec, np.maximum(r_rec, 0)], axis=1)),
        shift_in=i32(np.full(2 * nh + no, s_in)),
        shift_rec=i32(col_shift_rec),
        src_max=i32(np.maximum(w_eff, 0).max(axis=1)),
        src_min=i32(np.minimum(w_eff, 0).min(axis=1)),
        w_eff=i32(w_eff),
        dash_syn=i32(np.concatenate([spec.dash_syn, spec.dash_syn_2, spec.dash_syn_out])),
        dash_mem=i32(np.concatenate([spec.dash_mem, spec.dash_mem_out])),
        thr=i32(thr),
        bias=i32(np.concatenate([spec.bias, spec.bias_out])),
        max_spikes=i32(np.r_[np.full(nh, MAX_SPIKES), np.full(no, MAX_OUT_SPIKES)]),
        fwd_src=i32(fwd_src),
        fwd_dst=i32(fwd_dst),
        bwd_src=i32(bwd_src),
        bwd_dst=i32(bwd_dst),
        fwd_depth=i32(depth),
        has_bwd=jnp.asarray(bool((~fwd).any())),
        nonpos_thr=jnp.asarray(bool((thr <= 0).any())),
    )


_PARAM_CACHE: weakref.WeakKeyDictionary[XyloSpec, _Params] = weakref.WeakKeyDictionary()


def _params(spec: XyloSpec) -> _Params:
    if spec not in _PARAM_CACHE:
        _PARAM_CACHE[spec] = _prepare(spec)
    return _PARAM_CACHE[spec]


# --- delivery ---------------------------------------------------------------------------------------------------

_FOLD_GROUP = 8  # sources per iteration of the exact fold on CPU (manual unrolling, same arithmetic)


def _fold(st: _Static, x: jax.Array, counts_t: jax.Array, w: jax.Array) -> jax.Array:
    """Exact ordered saturating delivery (xylo.md 4.1): x (B, T) states, counts_t (P, B) int32, w (P, T) int32
    effective weights; returns ``clamp16(... clamp16(x + n_0 w_0) ... + n_{P-1} w_{P-1})`` per (sample, target).

    ``"scan"`` (CPU) visits only the sources that spike in some sample of the batch, in index order: a source
    with n = 0 everywhere adds 0, and ``clamp16(y + 0) = y`` for in-range y, so skipping it changes nothing.
    The visited list is padded with an all-zero source to a multiple of ``_FOLD_GROUP``.
    """
    if st.exact_impl == "scan":
        n_src = w.shape[0]
        active = jnp.any(counts_t > 0, axis=1)
        (order,) = jnp.nonzero(active, size=n_src, fill_value=n_src)  # active sources first, in index order
        c_pad = jnp.concatenate(
            [counts_t, jnp.zeros((1, counts_t.shape[1]), counts_t.dtype)]
        )  # row P: no spikes
        w_pad = jnp.concatenate([w, jnp.zeros((1, w.shape[1]), w.dtype)])
        order = jnp.concatenate([order, jnp.full(_FOLD_GROUP, n_src, order.dtype)])

        def body(i, y):
            for j in range(_FOLD_GROUP):
                q = order[i * _FOLD_GROUP + j]
                y = clamp16(y + c_pad[q][:, None] * w_pad[q][None, :])  # one safe_add per source, in order
            return y

        n_iter = (jnp.sum(active) + _FOLD_GROUP - 1) // _FOLD_GROUP
        return lax.fori_loop(0, n_iter, body, x)
    # clamp-map tree (xylo.md 4.2); lax.map over sample chunks bounds the (P, chunk, T) temporaries
    chunk = max(1, _EXACT_CHUNK_ELEMENTS // max(1, w.size))
    return lax.map(lambda xc: fold_tree(xc[0], xc[1][:, None] * w), (x, counts_t.T), batch_size=chunk)


def _compact_sizes(n_targets: int) -> tuple[int, ...]:
    """Static column counts of the compacted exact paths: about U/32, U/8 and U/2 (distinct, below U)."""
    return tuple(sorted({max(1, n_targets >> s) for s in (5, 3, 1)} - {n_targets}))


def _deliver(p: _Params, st: _Static, x: jax.Array, n_in: jax.Array, n_rec: jax.Array) -> jax.Array:
    """Ordered saturating delivery of one step for a batch: x (B, U) synaptic states before delivery (hidden
    synapse 1, synapse 2, readout), n_in (B, Nin) and n_rec (B, Nh) int8 counts; returns the new (B, U) states.

    ``"exact"`` folds every (sample, target) pair in source order. ``"auto"`` computes the plain sums
    ``Σ n (r << s) = (Σ n r) << s`` with an exact GEMM (:func:`count_dot`; |Σ n r| <= 1016 * 31 * 128 and, for
    s >= 9, |r| <= 2**(15-s), so every value stays below 2**31), which equal the ordered fold wherever no
    partial sum can leave int16 (then no safe_add clamps). Every partial sum lies between x + (sum of negative
    increments) and x + (sum of positive ones). Tier 1, O(B*P): per sample, bound those sums with each source's
    extreme weight over all targets; if every pair passes, the plain sums are returned. Tier 2: the exact
    per-pair sum of positive increments (a second GEMM) marks the risky pairs; the targets with at least one
    risky sample are gathered (up to a static number of columns, :func:`_compact_sizes`) and folded exactly for
    the whole batch, or all pairs are folded when more targets are risky. Every branch is bit-exact.
    """
    counts_t = jnp.concatenate([n_in, n_rec], axis=1).astype(jnp.int32).T  # (P, B), delivery order
    if st.delivery == "exact":
        return _fold(st, x, counts_t, p.w_eff)
    up = (p.src_max @ counts_t)[:, None]  # (B, 1) >= the positive part of every pair of the sample
    down = (p.src_min @ counts_t)[:, None]
    tier1 = jnp.all((x + up <= I16_MAX) & (x + down >= I16_MIN))

    def plain() -> jax.Array:
        total = _block_sums(p, n_in, n_rec, p.w_in, p.w_rec)
        return x + total  # exact: tier 1 proved that no partial sum leaves int16

    return lax.cond(tier1, plain, lambda: _deliver_tier2(p, st, x, n_in, n_rec, counts_t))


def _shifted(sums: jax.Array, shift: jax.Array) -> jax.Array:
    """Per-column left shift of raw sums by the block shift IWBS/RWBS/OWBS, tiled over [r | max(r, 0)].

    ``Σ n (r << s) == (Σ n r) << s``: the C++ weight ``w << shift`` truncated to int16 (XyloLayer.cpp:276) is
    ``r << s`` exactly (see :func:`_raw_effective`), so shifting the sum afterwards changes nothing.
    """
    return jnp.left_shift(sums, jnp.tile(shift, sums.shape[1] // shift.shape[0]))  # < 2**31, see _deliver


def _block_sums(
    p: _Params, n_in: jax.Array, n_rec: jax.Array, w_in: jax.Array, w_rec: jax.Array
) -> jax.Array:
    """``Σ_p n_p (r_p << s)`` per (sample, column): one exact GEMM per weight block (input, hidden)."""
    return _shifted(count_dot(n_in, w_in), p.shift_in) + _shifted(count_dot(n_rec, w_rec), p.shift_rec)


def _deliver_tier2(p: _Params, st: _Static, x, n_in, n_rec, counts_t) -> jax.Array:
    """Tier 2 of :func:`_deliver`: exact per-pair bounds, then exact folds of the risky targets."""
    u = x.shape[1]
    both = _block_sums(p, n_in, n_rec, p.w_in2, p.w_rec2)
    total, pos = both[:, :u], both[:, u:]
    risky = jnp.any((x + pos > I16_MAX) | (x + (total - pos) < I16_MIN), axis=0)  # (U,) targets
    direct = x + total
    sizes = _compact_sizes(u)

    def compact(k: int):
        def run() -> jax.Array:
            # the first k risky columns in index order; padding slots get index u, dropped by the scatter
            (cols,) = jnp.nonzero(risky, size=k, fill_value=u)
            safe = jnp.minimum(cols, u - 1)
            y = _fold(st, x[:, safe], counts_t, p.w_eff[:, safe])
            return direct.at[:, cols].set(y, mode="drop")

        return run

    n_risky = jnp.sum(risky)
    branch = jnp.sum(n_risky > jnp.asarray((0, *sizes)))  # 0: none risky, i: fits sizes[i-1], last: all
    return lax.switch(
        branch, [lambda: direct, *(compact(k) for k in sizes), lambda: _fold(st, x, counts_t, p.w_eff)]
    )


def _neurons(p: _Params, st: _Static, syn: jax.Array, vmem: jax.Array):
    """All neurons of a batch after delivery (XyloLayer::evolve_neurons for hidden, then readout).

    Args:
        syn: (B, U) delivered synaptic states (hidden syn 1, syn 2, readout); vmem: (B, Nh + Nout) membranes.

    Returns:
        (syn after decay, membranes after reset, hidden counts incl. aliases (B, Nh), readout spikes (B, Nout)).
    """
    nh = st.n_h
    syn = decayed(syn, p.dash_syn)  # every synapse decays after delivery, in the same step
    s = jnp.concatenate([syn[:, :nh] + syn[:, nh : 2 * nh], syn[:, 2 * nh :]], axis=1)  # S = Isyn1 + Isyn2
    v = membrane(vmem, s, p.dash_mem, p.bias, st.version)  # S is a C++ `long`: not saturated

    def fire_from(n0_hidden: jax.Array) -> tuple[jax.Array, jax.Array]:
        n0 = jnp.pad(n0_hidden, ((0, 0), (0, v.shape[1] - nh)))  # readout neurons start from n0 = 0
        return fire(v, p.thr, n0, p.max_spikes, p.nonpos_thr)

    def scatter(total: jax.Array, src: jax.Array, dst: jax.Array) -> jax.Array:
        # Σ over edges s -> a of total[s], per target a; padding edges (dst = Nh) are dropped
        return jnp.zeros_like(total).at[:, dst].add(total[:, src], mode="drop")

    # Forward aliases (a > s) fill a's buffer before a evolves and propagate along chains; buffer adds are
    # `min(buf + n, 31)`, all non-negative, so a target's n0 is min(31, Σ totals of its sources). Jacobi
    # iteration over the DAG reaches the sequential result after `depth` rounds (0 rounds without aliases).
    def jacobi(_, n0_):
        total = fire_from(n0_)[0][:, :nh]
        return jnp.minimum(scatter(total, p.fwd_src, p.fwd_dst), MAX_SPIKES)  # alias buffer cap 31

    n0 = lax.fori_loop(0, p.fwd_depth, jacobi, jnp.zeros((v.shape[0], nh), jnp.int32))
    total, v = fire_from(n0)
    hidden = total[:, :nh]
    # Backward/self aliases (a <= s) land after a evolved: they add to a's count (cap 31), never propagate.
    hidden = lax.cond(
        p.has_bwd,
        lambda: jnp.minimum(hidden + scatter(hidden, p.bwd_src, p.bwd_dst), MAX_SPIKES),
        lambda: hidden,
    )
    return syn, v, hidden, total[:, nh:]


class _Carry(NamedTuple):
    """Scan carry: the state in the fused layout of :func:`_step` (see :func:`_to_carry`)."""

    syn: jax.Array  # (B, U): isyn syn 1, syn 2, isyn_out
    vmem: jax.Array  # (B, Nh + Nout): vmem, vmem_out
    spikes: jax.Array  # (B, Nh)
    spikes_out: jax.Array  # (B, Nout)


def _to_carry(s: XyloState) -> _Carry:
    return _Carry(
        jnp.concatenate([s.isyn, s.isyn_out], axis=1),
        jnp.concatenate([s.vmem, s.vmem_out], axis=1),
        s.spikes,
        s.spikes_out,
    )


def _from_carry(c: _Carry, nh: int) -> XyloState:
    return XyloState(
        c.syn[:, : 2 * nh], c.vmem[:, :nh], c.syn[:, 2 * nh :], c.vmem[:, nh:], c.spikes, c.spikes_out
    )


def _step(p: _Params, st: _Static, c: _Carry, x: jax.Array):
    nh = st.n_h
    n_in = jnp.minimum(x, MAX_IN_SPIKES).astype(jnp.int8)  # deliver_spikes caps input counts at 15
    n_rec = jnp.minimum(c.spikes, MAX_SPIKES).astype(jnp.int8)  # ... and hidden counts at 31
    # inputs 0..Nin-1, then hidden 0..Nh-1 (t-1 counts), to hidden synapses and readout in one ordered fold
    syn = _deliver(p, st, c.syn, n_in, n_rec)
    syn, vmem, spikes, out = _neurons(p, st, syn, c.vmem)
    ys: dict[str, jax.Array] = {
        "out": {"Spike": out, "Vmem": vmem[:, nh:], "Isyn": syn[:, 2 * nh :]}[st.output_mode]
    }
    if st.record:
        ys.update(
            Vmem=vmem[:, :nh],
            Isyn=syn[:, :nh],
            Spikes=spikes,
            Vmem_out=vmem[:, nh:],
            Isyn_out=syn[:, 2 * nh :],
        )
        if st.records_isyn2:
            ys["Isyn2"] = syn[:, nh : 2 * nh]
    return _Carry(syn, vmem, spikes, out), ys


def _run_unjitted(p: _Params, st: _Static, state: XyloState, x: jax.Array):
    """x: (B, T, Nin) int32 -> (output (B, T, No), final state, records (B, T, N))."""
    final, ys = lax.scan(lambda c, xt: _step(p, st, c, xt), _to_carry(state), jnp.swapaxes(x, 0, 1))
    ys = {k: jnp.swapaxes(v, 0, 1) for k, v in ys.items()}
    return ys.pop("out"), _from_carry(final, st.n_h), ys


_run = jax.jit(_run_unjitted, static_argnames=("st",))


@functools.lru_cache(maxsize=32)
def _sharded(st: _Static, n: int):
    """``_run`` with the batch axis split over the first ``n`` local devices (parameters replicated): each device
    scans its own samples, and the auto delivery picks its branch per device (every branch is exact)."""
    mesh = Mesh(np.array(jax.local_devices()[:n]), ("batch",))
    batch = PartitionSpec("batch")
    run = jax.shard_map(
        lambda p, state, x: _run_unjitted(p, st, state, x),
        mesh=mesh,
        in_specs=(PartitionSpec(), batch, batch),
        out_specs=batch,
        check_vma=False,
    )
    return jax.jit(run)


def _run_sharded(p: _Params, st: _Static, state: XyloState, x: jax.Array):
    """Run on all local devices when there are several (JAX's own sharding, DESIGN.md): the batch is padded
    with all-zero samples to a multiple of the device count and the padding is dropped from the results."""
    b = x.shape[0]
    n = min(jax.local_device_count(), b)
    if n <= 1:
        return _run(p, st, state, x)
    pad = -b % n
    if pad:
        x = jnp.pad(x, ((0, pad), (0, 0), (0, 0)))
        state = XyloState(*(jnp.pad(s, ((0, pad), (0, 0))) for s in state))
    out, final, rec = _sharded(st, n)(p, state, x)
    if pad:
        out, final, rec = out[:b], XyloState(*(s[:b] for s in final)), {k: v[:b] for k, v in rec.items()}
    return out, final, rec


# --- public API ------------------------------------------------------------------------------------------------


def _check_input(spec: XyloSpec, counts: Any) -> np.ndarray:
    x = np.asarray(counts)
    if x.dtype == bool:
        x = x.astype(np.int32)
    if not np.issubdtype(x.dtype, np.integer):
        raise XyloInputError(
            f"input dtype {x.dtype} is not integer (XyloSim would truncate floats silently)",
            param="input_counts",
            fix="pass integer spike counts per step and channel",
        )
    if x.ndim not in (2, 3):
        raise XyloInputError(f"input shape {x.shape} is not (T, Nin) or (B, T, Nin)", param="input_counts")
    if x.shape[-1] > spec.n_in:
        raise XyloInputError(
            f"{x.shape[-1]} input channels > Nin = {spec.n_in}",
            param="input_counts",
            fix="drop extra channels",
        )
    if x.size and (x.min() < 0 or x.max() > 255):
        raise XyloInputError(
            f"count {int(x.min() if x.min() < 0 else x.max())} outside 0..255 (xylosim takes uint8 counts)",
            param="input_counts",
            fix="counts above 15 are clipped to 15 by the core anyway; clip to 0..15",
        )
    if x.shape[-1] < spec.n_in:  # XyloSim accepts fewer channels: the missing ones get no input
        pad = [(0, 0)] * (x.ndim - 1) + [(0, spec.n_in - x.shape[-1])]
        x = np.pad(x, pad)
    return x.astype(np.int32)


def evolve(
    spec: XyloSpec,
    input_counts: Any,
    state: XyloState | None = None,
    record: bool = True,
    *,
    output_mode: OutputMode = "Spike",
    delivery: Delivery = "auto",
    exact_impl: ExactImpl | None = None,
) -> tuple[jax.Array, XyloState, dict[str, jax.Array]]:
    """Run the emulator.

    Args:
        spec: the network.
        input_counts: integer spike counts per step and channel, (T, Nin) or (B, T, Nin), values 0..255
            (the core caps them at 15). Fewer than Nin channels are zero-padded, as XyloSim does.
        state: state to continue from (from a previous call); ``None`` starts from zeros. An unbatched state is
            broadcast over a batch.
        record: return the internal traces (keys as XyloSim's record dict); ``False`` returns ``{}``.
        output_mode: what the returned output is: ``"Spike"`` (readout spikes), ``"Vmem"`` or ``"Isyn"``
            (readout membrane / synaptic current), like ``XyloSim(output_mode=...)``.
        delivery: ``"auto"`` or ``"exact"`` (see the module docstring); both are bit-exact.
        exact_impl: how exact folds run: ``"scan"`` (one saturating add per source in a loop; default on CPU) or
            ``"tree"`` (clamp-map composition, xylo.md 4.2; default on accelerators); both are bit-exact.

    Returns:
        (output (T, Nout) or (B, T, Nout), final state, record dict), int32 JAX arrays.

    With several local devices a batch is split over them (padded with zero samples to a multiple of the
    device count; the padding never reaches the results).
    """
    if output_mode not in ("Spike", "Vmem", "Isyn"):
        raise XyloInputError(
            f"unknown output_mode {output_mode!r}", param="output_mode", fix="Spike, Vmem or Isyn"
        )
    if exact_impl not in (None, "scan", "tree"):
        raise XyloInputError(
            f"unknown exact_impl {exact_impl!r}", param="exact_impl", fix="use 'scan' or 'tree'"
        )
    if delivery not in ("auto", "exact"):
        raise XyloInputError(f"unknown delivery {delivery!r}", param="delivery", fix="use 'auto' or 'exact'")
    x = _check_input(spec, input_counts)
    single = x.ndim == 2
    if single:
        x = x[None]
    b = x.shape[0]
    if state is None:
        state = initial_state(spec, b)
    else:
        state = XyloState(*(jnp.broadcast_to(jnp.asarray(s, jnp.int32), (b, *s.shape[-1:])) for s in state))
    p = _params(spec)
    st = _Static(
        version=spec.version,
        n_h=spec.n_hidden,
        record=bool(record),
        records_isyn2=spec.variant_info.records_isyn2,
        output_mode=output_mode,
        delivery=delivery,
        exact_impl=exact_impl or ("scan" if jax.default_backend() == "cpu" else "tree"),
    )
    out, final, rec = _run_sharded(p, st, state, jnp.asarray(x))
    if single:
        out = out[0]
        final = XyloState(*(s[0] for s in final))
        rec = {k: v[0] for k, v in rec.items()}
    return out, final, rec


class XyloEmulator:
    """Stateful convenience wrapper with XyloSim's calling convention: ``evolve(input, record) -> (out, {}, rec)``.

    State persists across calls until :meth:`reset_state`, like XyloSim. Outputs are numpy arrays.
    """

    def __init__(
        self, spec: XyloSpec, output_mode: OutputMode = "Spike", delivery: Delivery = "auto"
    ) -> None:
        self.spec = spec
        self.output_mode = output_mode
        self.delivery = delivery
        self.state: XyloState | None = None

    def evolve(
        self, input_raster: Any, record: bool = False
    ) -> tuple[np.ndarray, dict, dict[str, np.ndarray]]:
        """Evolve from the stored state; returns (output, {}, record) as numpy arrays, like ``XyloSim.evolve``."""
        out, self.state, rec = evolve(
            self.spec, input_raster, self.state, record, output_mode=self.output_mode, delivery=self.delivery
        )
        return np.asarray(out), {}, {k: np.asarray(v) for k, v in rec.items()}

    def reset_state(self) -> XyloEmulator:
        """Zero every state variable (``XyloSim.reset_state``)."""
        self.state = None
        return self
