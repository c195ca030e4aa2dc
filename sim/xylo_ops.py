"""Integer primitives of the Xylo core, reproducing xylosim 0.1.3 (``src/v{1,2}/cpp``) bit for bit in JAX.

All values are int32 JAX arrays whose contents stay inside int16 unless stated; every clip, shift and wrap names
the C++ statement it reproduces. ``>>`` is JAX's arithmetic (floor) right shift on signed integers, as gcc's.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

I16_MIN, I16_MAX = -32768, 32767
IDENTITY_LO, IDENTITY_HI = I16_MIN, I16_MAX


def clamp16(x: jax.Array) -> jax.Array:
    """``safe_add``'s saturation (XyloIAFNeuron.h): for in-range operands ``safe_add(x, y) == clamp16(x + y)``."""
    return jnp.clip(x, I16_MIN, I16_MAX)


def wrap16(x: jax.Array) -> jax.Array:
    """Conversion of an int result to ``int16_t`` (gcc: modulo 2**16, two's complement)."""
    return ((x + 32768) & 0xFFFF) - 32768


def decay_amount(x: jax.Array, dash: jax.Array) -> jax.Array:
    """``decay(v, dash)`` (XyloIAFNeuron.cpp): ``v >> dash`` (arithmetic), bumped to 1 when it is 0 and v > 0.

    For v < 0 the floor shift is never 0 (dash <= 31), so the C++ ``v < 0 -> -1`` branch is dead; dash = 0 returns
    v itself (the state is zeroed); dash >= 16 returns +-1 (linear decay by 1 per step).
    """
    sh = jnp.right_shift(x, dash)  # C++ `v >> dash` on an int16 promoted to int: arithmetic shift
    return jnp.where((sh == 0) & (x > 0), 1, sh)  # C++ `if (dv == 0) { if (v > 0) dv = 1; ... }`


def decayed(x: jax.Array, dash: jax.Array) -> jax.Array:
    """``x -= decay(x, dash)``; the result always fits int16 (moves toward 0), so there is nothing to wrap."""
    return x - decay_amount(x, dash)


def membrane(vmem: jax.Array, s: jax.Array, dash_mem: jax.Array, bias: jax.Array, version: str) -> jax.Array:
    """Membrane integration before spiking. ``s`` = Isyn1 + Isyn2 (unsaturated ``long`` in C++).

    v1 (src/v1/cpp/XyloIAFNeuron.cpp): ``v -= decay(v)`` then ``v = safe_add((long) v, s)``.
    v2: ``dv = int16(-decay(v))`` (wraps -(-32768) to -32768), ``dv = safe_add((long) dv, s)``,
    ``dv = safe_add(dv, bias)`` (only when has_bias; with has_bias false every bias is 0, so adding it is a no-op),
    ``v = safe_add(v, dv)``.
    """
    if version == "v1":
        return clamp16(decayed(vmem, dash_mem) + s)  # safe_add((long)(v_mem), i_syn, 16)
    dv = wrap16(-decay_amount(vmem, dash_mem))  # int16_t dv_mem = -decay(...): int16 truncation wraps 32768
    dv = clamp16(dv + s)  # safe_add((long)(dv_mem), i_syn, BITS_STATE)
    dv = clamp16(dv + bias)  # safe_add(dv_mem, bias, BITS_STATE)
    return clamp16(vmem + dv)  # v_mem = safe_add(v_mem, dv_mem, BITS_STATE)


def fire(
    v: jax.Array,
    thr: jax.Array,
    n0: jax.Array,
    max_spikes: int | jax.Array,
    nonpos_thr: bool | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """The spike loop ``while (v >= thr) { if (n < max) { ++n; v -= thr; } else break; }`` (XyloIAFNeuron.cpp).

    Args:
        v: membrane after integration; thr: thresholds; n0: spikes already in the buffer (aliases), <= max_spikes.
        max_spikes: 31 (hidden) or 1 (output), MAX_NUM_SPIKES / MAX_NUM_OUT_SPIKES in XyloIAFNeuron.h; an int or
            a per-neuron array with values in 1..31.
        nonpos_thr: True when some thr <= 0, which needs the exact loop (thr < 0 wraps v); a Python bool selects
            the program statically, a traced bool selects it with ``lax.cond``.

    Returns:
        (n, v): total spike count including n0, and the membrane after the subtractive resets.
    """
    top = max_spikes if isinstance(max_spikes, int) else 31  # static bound on the spike count
    # thr > 0: k = min(floor(v / thr), max - n0) (0 for v < thr), found bit by bit (k <= 31 < 2**5), which
    # avoids a vector integer division; v - k*thr >= 0 never wraps.
    k = jnp.zeros_like(v)
    for bit in (16, 8, 4, 2, 1)[5 - max(1, top.bit_length()) :]:
        k = jnp.where((k + bit) * thr <= v, k + bit, k)  # (k+bit)*thr <= 31*32767: no int32 overflow
    k = jnp.minimum(k, max_spikes - n0)
    n_pos, v_pos = n0 + k, v - k * thr

    def with_loop() -> tuple[jax.Array, jax.Array]:
        def body(_, nv):
            n, vv = nv
            go = (vv >= thr) & (n < max_spikes)
            return n + go, jnp.where(go, wrap16(vv - thr), vv)  # `v_mem -= v_th` on int16: wraps for thr < 0

        n_loop, v_loop = lax.fori_loop(0, top, body, (n0, v))
        pos = thr > 0
        return jnp.where(pos, n_pos, n_loop), jnp.where(pos, v_pos, v_loop)

    if isinstance(nonpos_thr, bool):
        return with_loop() if nonpos_thr else (n_pos, v_pos)
    return lax.cond(nonpos_thr, with_loop, lambda: (n_pos, v_pos))


# --- ordered saturating delivery -----------------------------------------------------------------------------


def compose_clamp_maps(a: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Compose the maps ``f_p(x) = clamp16(x + a[p])`` in order p = 0, 1, ... (axis 0) into one map.

    xylosim delivers each source's ``n`` spikes as ``n`` calls of ``safe_add`` (XyloLayer.cpp ``deliver_spikes``),
    sources in ascending index; n equal adds equal one ``clamp16(x + n*w)``. Maps ``x -> clamp(x + A, lo, hi)``
    are closed under composition (g after f: ``A = Af + Ag``, ``lo = clamp(lo_f + Ag, lo_g, hi_g)``,
    ``hi = clamp(hi_f + Ag, lo_g, hi_g)``), an associative, order-preserving reduction done here as a tree
    (an odd element at the end of a level is carried up unchanged).

    Args:
        a: int32 (P, ...) per-source increments ``n_p * w'_p``.

    Returns:
        (A, lo, hi) of shape ``a.shape[1:]``.
    """
    lo = jnp.full_like(a, IDENTITY_LO)
    hi = jnp.full_like(a, IDENTITY_HI)
    while a.shape[0] > 1:
        m = a.shape[0] // 2 * 2
        af, ag, lof, log_, hif, hig = a[0:m:2], a[1:m:2], lo[0:m:2], lo[1:m:2], hi[0:m:2], hi[1:m:2]
        na = af + ag
        nlo = jnp.clip(lof + ag, log_, hig)
        nhi = jnp.clip(hif + ag, log_, hig)
        if m < a.shape[0]:  # carry the odd last map (it is applied last, after the pairs)
            na, nlo, nhi = (jnp.concatenate([u, v[m:]]) for u, v in ((na, a), (nlo, lo), (nhi, hi)))
        a, lo, hi = na, nlo, nhi
    return a[0], lo[0], hi[0]


def fold_tree(x: jax.Array, a: jax.Array) -> jax.Array:
    """``clamp16(... clamp16(clamp16(x + a[0]) + a[1]) ...)`` via :func:`compose_clamp_maps`; x (...), a (P, ...)."""
    big_a, lo, hi = compose_clamp_maps(a)
    return jnp.clip(x + big_a, lo, hi)


def fold_scan(x: jax.Array, a: jax.Array) -> jax.Array:
    """The same fold as :func:`fold_tree`, one saturating add per source in a loop (cheaper on CPU)."""

    def body(p, y):
        return clamp16(y + a[p])  # safe_add after every add, in source order

    return lax.fori_loop(0, a.shape[0], body, x, unroll=1)


MAX_EXACT_SOURCES = (1 << 24) // (31 * 128)  # 4228: beyond this a float32 partial sum could exceed 2**24


def count_dot(counts: jax.Array, w: jax.Array) -> jax.Array:
    """Exact ``counts @ w`` (B, P) x (P, T) -> (B, T) int32 for int8 counts in 0..31 and int8 weights.

    On CPU, XLA has no fast integer GEMM, so this runs as a bfloat16 x bfloat16 -> float32 GEMM (the fastest
    exact choice measured on a 2-core AMD EPYC: about 1.5x the int8 -> int32 dot), which is exact by
    construction: counts (5 bits) and int8 weights (8 bits) are exact in bfloat16 (8 significant bits); each
    product |n * w| <= 31 * 128 < 2**12 is exact in float32, and every partial sum is an integer of magnitude
    <= P * 3968 < 2**24 for P <= MAX_EXACT_SOURCES (4228; Xylo has at most 16 + 1000 sources), so float32
    accumulation never rounds, in any order. On other backends (GPU), whose matrix units may accumulate
    with fewer bits, it is an int8 x int8 -> int32 dot: integer arithmetic, exact everywhere.

    XLA CPU (jaxlib 0.10.2) runs the bfloat16 dot in its fused dot emitter, into which the int8 -> bfloat16
    conversions fuse. When an operand is produced by a gather (``jnp.take(..., mode="fill")``), the conversion
    cannot fuse and XLA's fallback DotThunk rejects BF16 x BF16 = F32 with an UNIMPLEMENTED error: a loud
    failure, never a wrong number. Pass plain arrays (the emulator does; its tests cover every call site).
    """
    if counts.shape[-1] > MAX_EXACT_SOURCES:
        raise ValueError(
            f"count_dot is exact for at most {MAX_EXACT_SOURCES} sources, got {counts.shape[-1]}"
        )
    dims = (((1,), (0,)), ((), ()))
    if jax.default_backend() != "cpu":
        return lax.dot_general(counts, w, dims, preferred_element_type=jnp.int32)
    out = lax.dot_general(
        counts.astype(jnp.bfloat16), w.astype(jnp.bfloat16), dims, preferred_element_type=jnp.float32
    )
    return out.astype(jnp.int32)  # integer-valued float32 below 2**24: the conversion is exact
