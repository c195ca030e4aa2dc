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

Delivery modes: ``"exact"`` always composes the clamp maps (xylo.md 4.2); ``"auto"`` (default) adds the sums
directly when interval bounds prove no intermediate add can saturate for the whole batch in that step (a cheap
per-sample bound first, then a per-target bound), and falls back to the exact composition otherwise. Both are
bit-exact; ``auto`` is faster when saturation is rare.
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
from snn_deploy.sim.xylo_ops import (
    I16_MAX,
    I16_MIN,
    clamp16,
    decayed,
    fire,
    fold_scan,
    fold_tree,
    int8_dot,
    membrane,
    wrap16,
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
    """Device arrays derived from a spec (see :func:`_prepare`)."""

    w_in: jax.Array  # (Nin, 2Nh) int8 raw effective weights, target index syn*Nh + post
    w_rec: jax.Array  # (Nh, 2Nh) int8
    w_out: jax.Array  # (Nh, Nout) int8, zero rows for hidden 0..Nh-OEN-1
    w_in_pos: jax.Array  # positive parts, for the per-target no-saturation bound
    w_rec_pos: jax.Array
    w_out_pos: jax.Array
    bound_in: jax.Array  # (2, Nin) int32: per-source max positive and min negative raw weight
    bound_rec: jax.Array  # (2, Nh)
    bound_out: jax.Array  # (2, Nh)
    shifts: jax.Array  # (3,) int32 left shifts for in / rec / out (after the int8 wrap, see _raw_effective)
    dash_syn: jax.Array  # (2Nh,)
    dash_mem: jax.Array
    thr: jax.Array
    bias: jax.Array
    dash_syn_out: jax.Array
    dash_mem_out: jax.Array
    thr_out: jax.Array
    bias_out: jax.Array
    fwd_src: jax.Array  # alias edges s -> a with a > s (act in the same step, propagate)
    fwd_dst: jax.Array
    bwd_src: jax.Array  # alias edges with a <= s (land after the target evolved, do not propagate)
    bwd_dst: jax.Array
    fwd_depth: jax.Array  # longest forward alias chain (Jacobi iterations needed)
    nonpos_thr: jax.Array  # bool: some hidden threshold <= 0 (needs the exact spike loop)


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
    nh, no = spec.n_hidden, spec.n_out
    w_in = np.zeros((spec.n_in, 2, nh), np.int64)
    w_in[:, :, : spec.ien] = spec.weights_in.transpose(0, 2, 1)  # column j targets hidden j (IEN <= Nh)
    w_in = _raw_effective(w_in.reshape(spec.n_in, 2 * nh), spec.weight_shift_in)
    w_rec = _raw_effective(spec.weights_rec.transpose(0, 2, 1).reshape(nh, 2 * nh), spec.weight_shift_rec)
    w_out = np.zeros((nh, no), np.int64)
    w_out[nh - spec.oen :] = spec.weights_out  # row k of weights_out = hidden Nh-OEN+k
    w_out = _raw_effective(w_out, spec.weight_shift_out)

    def bound(w: np.ndarray) -> np.ndarray:
        return np.stack([np.maximum(w, 0).max(axis=1), np.minimum(w, 0).min(axis=1)]).astype(np.int32)

    src = np.array([s for s, t in enumerate(spec.aliases) for _ in t], np.int32)
    dst = np.array([a for t in spec.aliases for a in t], np.int32)
    fwd = dst > src
    depth = _forward_depth(nh, src[fwd], dst[fwd])
    fwd_src, fwd_dst = _pad_edges(src[fwd], dst[fwd], nh)
    bwd_src, bwd_dst = _pad_edges(src[~fwd], dst[~fwd], nh)
    i32 = functools.partial(jnp.asarray, dtype=jnp.int32)
    return _Params(
        w_in=jnp.asarray(w_in),
        w_rec=jnp.asarray(w_rec),
        w_out=jnp.asarray(w_out),
        w_in_pos=jnp.asarray(np.maximum(w_in, 0)),
        w_rec_pos=jnp.asarray(np.maximum(w_rec, 0)),
        w_out_pos=jnp.asarray(np.maximum(w_out, 0)),
        bound_in=i32(bound(w_in)),
        bound_rec=i32(bound(w_rec)),
        bound_out=i32(bound(w_out)),
        shifts=i32(
            [min(s, 16) for s in (spec.weight_shift_in, spec.weight_shift_rec, spec.weight_shift_out)]
        ),
        dash_syn=i32(np.concatenate([spec.dash_syn, spec.dash_syn_2])),
        dash_mem=i32(spec.dash_mem),
        thr=i32(spec.threshold),
        bias=i32(spec.bias),
        dash_syn_out=i32(spec.dash_syn_out),
        dash_mem_out=i32(spec.dash_mem_out),
        thr_out=i32(spec.threshold_out),
        bias_out=i32(spec.bias_out),
        fwd_src=i32(fwd_src),
        fwd_dst=i32(fwd_dst),
        bwd_src=i32(bwd_src),
        bwd_dst=i32(bwd_dst),
        fwd_depth=i32(depth),
        nonpos_thr=jnp.asarray(bool((spec.threshold <= 0).any())),
    )


_PARAM_CACHE: weakref.WeakKeyDictionary[XyloSpec, _Params] = weakref.WeakKeyDictionary()


def _params(spec: XyloSpec) -> _Params:
    if spec not in _PARAM_CACHE:
        _PARAM_CACHE[spec] = _prepare(spec)
    return _PARAM_CACHE[spec]


# --- one step --------------------------------------------------------------------------------------------------


class _Block(NamedTuple):
    """One source block of a delivery: counts (B, P) int8, raw weights and positive parts (P, T) int8,
    per-source bounds (2, P) int32, and the block's left shift."""

    counts: jax.Array
    w: jax.Array
    w_pos: jax.Array
    bound: jax.Array
    shift: jax.Array


def _fold_all(st: _Static, x: jax.Array, counts: jax.Array, w_eff: jax.Array) -> jax.Array:
    """Exact ordered delivery for the whole batch: x (B, T), counts (B, P) int32, w_eff (P, T) int32."""
    if st.exact_impl == "scan":
        c_t = counts.T

        def body(p, y):
            return clamp16(y + c_t[p][:, None] * w_eff[p][None, :])  # one safe_add per source, in order

        return lax.fori_loop(0, w_eff.shape[0], body, x, unroll=1)
    # lax.map in chunks bounds the (P, T) temporaries of the tree to _EXACT_CHUNK_ELEMENTS per chunk
    chunk = max(1, _EXACT_CHUNK_ELEMENTS // max(1, w_eff.size))
    return lax.map(lambda xc: fold_tree(xc[0], xc[1][:, None] * w_eff), (x, counts), batch_size=chunk)


def _fold_pairs(st: _Static, x: jax.Array, a: jax.Array) -> jax.Array:
    """Exact ordered delivery for K gathered (sample, target) pairs: x (K,), a (P, K) increments."""
    return fold_scan(x, a) if st.exact_impl == "scan" else fold_tree(x, a)


def _deliver(
    st: _Static, x: jax.Array, blocks: list[_Block], w_eff: jax.Array, w_eff_t: jax.Array
) -> jax.Array:
    """Ordered saturating delivery for a batch (xylo.md 4): returns the new (B, T) synaptic state.

    Args:
        x: (B, T) state before delivery; blocks: sources in delivery order;
        w_eff, w_eff_t: the blocks' effective int32 weights ``wrap16(w << shift)`` stacked, (P, T) and (T, P).
    """
    b, t = x.shape
    counts = jnp.concatenate([blk.counts.astype(jnp.int32) for blk in blocks], axis=1)
    if st.delivery == "exact":
        return _fold_all(st, x, counts, w_eff)
    # Σ n * (r << s) = (Σ n * r) << s exactly (int8 x int8 -> int32 dot, then the block's shift).
    total = sum(jnp.left_shift(int8_dot(blk.counts, blk.w), blk.shift) for blk in blocks)

    def direct() -> jax.Array:
        return x + total  # proven below: no partial sum leaves int16, so no safe_add clamps and order is moot

    # Tier 1, per sample in O(P): every target's prefix sums lie within x + Σ n*max_t(w+) and x + Σ n*min_t(w-).
    c32 = [(blk.counts.astype(jnp.int32), blk.bound, blk.shift) for blk in blocks]
    up = sum(jnp.left_shift(c @ bd[0], s) for c, bd, s in c32)
    down = sum(jnp.left_shift(c @ bd[1], s) for c, bd, s in c32)
    ok1 = jnp.all((x + up[:, None] <= I16_MAX) & (x + down[:, None] >= I16_MIN))

    def tier2() -> jax.Array:
        # Tier 2, per target: the sums of positive and of negative increments bound every prefix. Only the
        # (sample, target) pairs that fail it ("risky") get the exact ordered fold, k pairs per loop iteration.
        pos = sum(jnp.left_shift(int8_dot(blk.counts, blk.w_pos), blk.shift) for blk in blocks)
        risky = ((x + pos > I16_MAX) | (x + (total - pos) < I16_MIN)).reshape(-1)
        rank = jnp.cumsum(risky) - 1  # position of each risky pair among the risky ones
        k = max(1, b * t // 32)  # static chunk size of the compacted exact path

        def chunk(j, flat):
            take = risky & (rank // k == j)
            idx = (
                jnp.full(k, b * t, jnp.int32)
                .at[jnp.where(take, rank % k, k)]
                .set(jnp.arange(b * t), mode="drop")
            )
            # padding slots (index b*t) read pair b*t-1; their results are dropped by the scatter below
            safe = jnp.minimum(idx, b * t - 1)
            a = (counts[safe // t] * w_eff_t[safe % t]).T  # (P, k) increments n_p * w'_p of each pair
            y = _fold_pairs(st, x.reshape(-1)[safe], a)
            return flat.at[idx].set(y, mode="drop")

        n_chunks = (jnp.sum(risky) + k - 1) // k
        return lax.fori_loop(0, n_chunks, chunk, direct().reshape(-1)).reshape(b, t)

    return lax.cond(ok1, direct, tier2)


def _hidden_update(p: _Params, st: _Static, isyn: jax.Array, vmem: jax.Array):
    """One sample's hidden neurons after delivery: decay, integrate, spike, aliases (XyloLayer::evolve_neurons)."""
    nh = st.n_h
    isyn = decayed(isyn, p.dash_syn)  # both synapses decay after delivery, in the same step
    s = isyn[:nh] + isyn[nh:]  # S = Isyn1 + Isyn2, not saturated (a C++ `long`)
    v = membrane(vmem, s, p.dash_mem, p.bias, st.version)
    zeros = jnp.zeros(nh, jnp.int32)

    # Forward aliases (a > s) fill a's buffer before a evolves and propagate along chains; buffer adds are
    # `min(buf + n, 31)`, all non-negative, so a target's n0 is min(31, Σ totals of its sources). Jacobi
    # iteration over the DAG reaches the sequential result after `depth` rounds (0 rounds without aliases).
    def jacobi(_, n0_):
        total, _v = fire(v, p.thr, n0_, MAX_SPIKES, p.nonpos_thr)
        return jnp.minimum(zeros.at[p.fwd_dst].add(total[p.fwd_src], mode="drop"), MAX_SPIKES)  # alias cap

    n0 = lax.fori_loop(0, p.fwd_depth, jacobi, zeros)
    total, v = fire(v, p.thr, n0, MAX_SPIKES, p.nonpos_thr)
    # Backward/self aliases (a <= s) land after a evolved: they add to a's count (cap 31), never propagate.
    spikes = jnp.minimum(total + zeros.at[p.bwd_dst].add(total[p.bwd_src], mode="drop"), MAX_SPIKES)
    return isyn, v, spikes


def _output_update(p: _Params, st: _Static, isyn_o: jax.Array, vmem_o: jax.Array):
    """One sample's readout: one synapse, no aliases, n0 = 0, at most one spike (MAX_NUM_OUT_SPIKES)."""
    isyn_o = decayed(isyn_o, p.dash_syn_out)
    v = membrane(vmem_o, isyn_o, p.dash_mem_out, p.bias_out, st.version)
    go = v >= p.thr_out  # one pass of the spike loop with max_spikes = 1
    v = jnp.where(go, wrap16(v - p.thr_out), v)  # `v_mem -= v_th` on int16 (wraps only for thr < 0)
    return isyn_o, v, go.astype(jnp.int32)


def _effective(p: _Params) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """int32 effective weights ``r << shift`` (= ``wrap16(w << shift)``): hidden (P, 2Nh), readout (Nh, No),
    and their transposes, for the exact delivery paths."""
    w_hid = jnp.concatenate(
        [
            jnp.left_shift(p.w_in.astype(jnp.int32), p.shifts[0]),
            jnp.left_shift(p.w_rec.astype(jnp.int32), p.shifts[1]),
        ]
    )
    w_out = jnp.left_shift(p.w_out.astype(jnp.int32), p.shifts[2])
    return w_hid, w_hid.T, w_out, w_out.T


def _step(p: _Params, st: _Static, eff: tuple, state: XyloState, x: jax.Array):
    n_in = jnp.minimum(x, MAX_IN_SPIKES).astype(jnp.int8)  # deliver_spikes caps input counts at 15
    n_rec = jnp.minimum(state.spikes, MAX_SPIKES).astype(jnp.int8)  # ... and hidden counts at 31
    s_in, s_rec, s_out = p.shifts[0], p.shifts[1], p.shifts[2]
    w_hid, w_hid_t, w_out, w_out_t = eff
    hid_blocks = [
        _Block(n_in, p.w_in, p.w_in_pos, p.bound_in, s_in),
        _Block(n_rec, p.w_rec, p.w_rec_pos, p.bound_rec, s_rec),
    ]
    isyn = _deliver(st, state.isyn, hid_blocks, w_hid, w_hid_t)  # inputs 0..Nin-1, then hidden 0..Nh-1
    out_blocks = [_Block(n_rec, p.w_out, p.w_out_pos, p.bound_out, s_out)]
    isyn_o = _deliver(st, state.isyn_out, out_blocks, w_out, w_out_t)
    isyn, vmem, spikes = jax.vmap(lambda i, v: _hidden_update(p, st, i, v))(isyn, state.vmem)
    isyn_o, vmem_o, out = jax.vmap(lambda i, v: _output_update(p, st, i, v))(isyn_o, state.vmem_out)
    new = XyloState(isyn, vmem, isyn_o, vmem_o, spikes, out)
    ys: dict[str, jax.Array] = {"out": {"Spike": out, "Vmem": vmem_o, "Isyn": isyn_o}[st.output_mode]}
    if st.record:
        ys.update(Vmem=vmem, Isyn=isyn[:, : st.n_h], Spikes=spikes, Vmem_out=vmem_o, Isyn_out=isyn_o)
        if st.records_isyn2:
            ys["Isyn2"] = isyn[:, st.n_h :]
    return new, ys


@functools.partial(jax.jit, static_argnames=("st",))
def _run(p: _Params, st: _Static, state: XyloState, x: jax.Array):
    """x: (B, T, Nin) int32 -> (output (B, T, No), final state, records (B, T, N))."""
    eff = _effective(p)
    final, ys = lax.scan(lambda c, xt: _step(p, st, eff, c, xt), state, jnp.swapaxes(x, 0, 1))
    ys = {k: jnp.swapaxes(v, 0, 1) for k, v in ys.items()}
    return ys.pop("out"), final, ys


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
    out, final, rec = _run(p, st, state, jnp.asarray(x))
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
