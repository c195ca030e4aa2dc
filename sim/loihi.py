"""Bit-exact JAX emulator of Lava 0.10's fixed-point (``fixed_pt``) CUBA LIF, Dense, DelayDense and Conv.

The reference is Lava 0.10.0's CPU models selected by ``Loihi2SimCfg(select_tag="fixed_pt")``:
``PyLifModelBitAcc`` / ``PyLifResetModelBitAcc`` (``lava/proc/lif/models.py``), ``PyDenseModelBitAcc`` and
``PyDelayDenseModelBitAcc`` (``lava/proc/dense/models.py``), ``PyConvModelBitAcc`` (``lava/proc/conv``),
with weights prepared by ``lava/utils/weightutils.py``. Everything here reproduces those models bit for bit,
including their quirks (see ``shared/targets/loihi.md``).

Conventions
-----------
* Time is discrete; one step of this emulator is one Lava time step (``dt`` is whatever the network was
  designed for). Lava's step counter starts at 1; input row ``i`` (``inputs[:, i]``) is what Lava's source
  ``RingBuffer`` emits at step ``i + 1``, and record row ``i`` is the state at the end of step ``i + 1``,
  after the spike reset, as a Lava ``Monitor`` reports it.
* Latency: every synapse (Dense, DelayDense, Conv) adds exactly one step: a spike sent at step t reaches
  the neuron at step ``t + 1 + delay``. A ``direct`` projection (netx ``input`` layer with a neuron) feeds
  the raw input into ``a_in`` in the same step.
* Units: ``u``, ``v`` are the 24-bit registers (mantissa units x 64); weights, ``vth`` and the bias with
  ``bias_exp = 6`` are in mantissa units (an 8-bit weight of 1 equals ``vth = 1``).
* Integers only: all state is int32 and wraps in two's complement exactly where Lava's numpy code wraps.
  The decay product, which Lava computes in int64, is computed exactly in 32 bits (see :func:`decay`).
  Every shift, clip and wrap below carries a comment naming the Lava behaviour it reproduces.

Public API: the parameter dataclasses (:class:`LifParams`, :class:`DenseParams`, :class:`ConvParams`,
:class:`Projection`, :class:`LoihiNetwork`), :func:`prepare_weights`, :func:`simulate` (numpy in, numpy
out) and :func:`make_runner` (a jitted, batched JAX function for repeated use).
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from snn_deploy.errors import InputError, SnnDeployError

__all__ = [
    "ConvParams",
    "DenseParams",
    "LifParams",
    "LoihiNetwork",
    "LoihiParameterError",
    "LoihiTrace",
    "Projection",
    "SignMode",
    "decay",
    "make_runner",
    "prepare_weights",
    "resolve_sign_mode",
    "simulate",
]

#: u and v are 24-bit signed registers: M = 2**23 (Lava ``max_uv_val``).
UV_MAX = 1 << 23
#: Decay constants are 12-bit fractions of 4096 (Lava ``decay_shift``/``decay_unity``).
DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
#: Activation and threshold are MSB-aligned by 6 bits (Lava ``act_shift``/``vth_shift``).
ACT_SHIFT = 6
VTH_SHIFT = 6
#: DelayDense accepts delays 0..63 (Lava raises above 63; netx clips file delays to 62).
MAX_DELAY = 63
INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


class LoihiParameterError(SnnDeployError):
    """A Loihi emulator parameter is outside the range Lava's fixed-point models handle."""


class SignMode(enum.IntEnum):
    """Synapse sign mode, numbered as ``lava.utils.weightutils.SignMode``; ``AUTO`` lets Lava decide."""

    AUTO = 0
    MIXED = 1
    EXCITATORY = 2
    INHIBITORY = 3


def _int_array(x, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise LoihiParameterError(
                f"{name} must hold integers, got dtype {arr.dtype}",
                param=name,
                fix="quantise the parameter to integers before building the Loihi network",
            )
    arr = arr.astype(np.int64)
    if shape is not None and arr.shape != shape:
        if arr.ndim == 0:
            arr = np.broadcast_to(arr, shape).copy()
        else:
            raise LoihiParameterError(f"{name} has shape {arr.shape}, expected {shape}", param=name)
    return arr


def _check_range(value, lo: int, hi: int, name: str, fix: str) -> None:
    arr = np.asarray(value)
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise LoihiParameterError(
            f"{name} must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]", param=name, fix=fix
        )


@dataclass(frozen=True, eq=False)
class LifParams:
    """One population of Lava ``LIF`` (or ``LIFReset`` when ``reset_interval > 0``) neurons, fixed point.

    Attributes:
        size: number of neurons.
        du: current decay, Lava's ``du`` (the model uses ``4096 - (du + 1)``); -1 (netx ``iDecay = 0``)
            makes u a perfect integrator. Range [-1, 4095].
        dv: voltage decay (multiplier ``4096 - dv``). Range [0, 4096].
        vth: threshold mantissa; the neuron spikes when ``v > vth << 6``. Range [0, 2**25 - 1].
        bias_mant: per-neuron bias mantissa (int16 in Lava).
        bias_exp: per-neuron bias exponent; negative values shift right (floor). Range [-31, 31].
        reset_interval: 0 for plain LIF; else u and v are zeroed before the update on every step t
            (t = 1, 2, ...) with ``t % reset_interval == reset_offset % reset_interval``.
        reset_offset: see ``reset_interval``.
    """

    size: int
    du: int
    dv: int
    vth: int
    bias_mant: np.ndarray = field(default=None)  # type: ignore[assignment]
    bias_exp: np.ndarray = field(default=None)  # type: ignore[assignment]
    reset_interval: int = 0
    reset_offset: int = 0

    def __post_init__(self) -> None:
        n = int(self.size)
        if n < 1:
            raise LoihiParameterError(f"size must be >= 1, got {self.size}", param="size")
        object.__setattr__(self, "size", n)
        for name in ("du", "dv", "vth", "reset_interval", "reset_offset"):
            object.__setattr__(self, name, int(_int_array(getattr(self, name), name)))
        bm = 0 if self.bias_mant is None else self.bias_mant
        be = 0 if self.bias_exp is None else self.bias_exp
        object.__setattr__(self, "bias_mant", _int_array(bm, "bias_mant", (n,)))
        object.__setattr__(self, "bias_exp", _int_array(be, "bias_exp", (n,)))
        _check_range(self.du, -1, DECAY_UNITY - 1, "du", "use du in [-1, 4095] (netx: iDecay - 1)")
        _check_range(self.dv, 0, DECAY_UNITY, "dv", "use dv in [0, 4096]")
        _check_range(self.vth, 0, (1 << 25) - 1, "vth", "thresholds >= 131072 never fire anyway")
        _check_range(self.bias_mant, -(1 << 15), (1 << 15) - 1, "bias_mant", "Lava stores bias_mant as int16")
        _check_range(self.bias_exp, -31, 31, "bias_exp", "use bias exponents in [-31, 31] (nominal 0..7)")
        _check_range(self.reset_interval, 0, INT32_MAX, "reset_interval", "use 0 for no reset")


@dataclass(frozen=True, eq=False)
class DenseParams:
    """A Lava ``Dense`` (or ``DelayDense`` when ``delays`` is given) synapse, fixed point.

    Attributes:
        weight: ``(out, in)`` integer weights as passed to Lava (before clipping/truncation, which
            :func:`prepare_weights` applies as Lava does on the first step).
        weight_exp: exponent applied to the summed activation: ``<< e`` or, for e < 0, ``>> -e`` (floor).
        num_weight_bits: weight precision; Lava truncates ``8 - num_weight_bits (+1 if MIXED)`` LSBs.
        sign_mode: forced sign mode, or ``AUTO`` (Lava's ``determine_sign_mode``).
        num_message_bits: 0 for binary spikes (any nonzero input counts as 1), > 0 for graded
            input (the untruncated integer payload multiplies the weights, int32 wrap-around).
        delays: optional ``(out, in)`` integers in [0, 63]; delay d arrives ``1 + d`` steps after the spike.
    """

    weight: np.ndarray
    weight_exp: int = 0
    num_weight_bits: int = 8
    sign_mode: SignMode = SignMode.AUTO
    num_message_bits: int = 0
    delays: np.ndarray | None = None

    def __post_init__(self) -> None:
        w = _int_array(self.weight, "weight")
        if w.ndim != 2 or 0 in w.shape:
            raise LoihiParameterError(f"weight must be a non-empty (out, in) matrix, got shape {w.shape}")
        _check_range(w, INT32_MIN, INT32_MAX, "weight", "weights are cast to int32 by Lava")
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "weight_exp", int(self.weight_exp))
        object.__setattr__(self, "num_weight_bits", int(self.num_weight_bits))
        object.__setattr__(self, "num_message_bits", int(self.num_message_bits))
        object.__setattr__(self, "sign_mode", SignMode(self.sign_mode))
        _check_range(
            self.weight_exp, -31, 31, "weight_exp", "use weight exponents in [-31, 31] (nominal -8..7)"
        )
        _check_range(self.num_message_bits, 0, 32, "num_message_bits", "0 = binary spikes")
        mixed = int(resolve_sign_mode(self) == SignMode.MIXED)
        _check_range(
            8 - self.num_weight_bits + mixed,
            0,
            16,
            "8 - num_weight_bits + is_mixed",
            "use num_weight_bits in [1, 8] (9 allowed for MIXED weights)",
        )
        if self.delays is not None:
            d = _int_array(self.delays, "delays", w.shape)
            _check_range(d, 0, MAX_DELAY, "delays", "Lava's DelayDense accepts delays 0..63")
            object.__setattr__(self, "delays", d)

    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)``."""
        return tuple(self.weight.shape)  # type: ignore[return-value]

    @property
    def max_delay(self) -> int:
        """Largest delay (0 without delays)."""
        return 0 if self.delays is None else int(self.delays.max())


@dataclass(frozen=True, eq=False)
class ConvParams:
    """A Lava ``Conv`` synapse (bit-accurate model), torch layout and torch cross-correlation semantics.

    Input and output activations are flattened in torch ``(C, H, W)`` C-order. Lava's bit-accurate Conv
    neither clips nor truncates the weights, never applies a weight exponent, and wraps the activation
    to 24 bits (``signed_clamp`` in ``lava/proc/conv/utils.py``).

    Attributes:
        weight: ``(out_c, in_c // groups, kH, kW)`` integer weights.
        in_shape: input ``(C, H, W)``.
        stride, padding, dilation: ``(H, W)`` pairs.
        groups: number of groups.
        num_message_bits: 0 binary, > 0 graded (as for Dense).
    """

    weight: np.ndarray
    in_shape: tuple[int, int, int]
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    num_message_bits: int = 0

    def __post_init__(self) -> None:
        w = _int_array(self.weight, "weight")
        if w.ndim != 4:
            raise LoihiParameterError(f"conv weight must be (out, in/groups, kH, kW), got shape {w.shape}")
        _check_range(w, -(1 << 15), (1 << 15) - 1, "conv weight", "conv weights must be valid 8-bit integers")
        object.__setattr__(self, "weight", w)
        for name in ("in_shape", "stride", "padding", "dilation"):
            object.__setattr__(self, name, tuple(int(x) for x in getattr(self, name)))
        object.__setattr__(self, "groups", int(self.groups))
        object.__setattr__(self, "num_message_bits", int(self.num_message_bits))
        c_in = self.in_shape[0]
        if c_in % self.groups or w.shape[0] % self.groups or w.shape[1] * self.groups != c_in:
            raise LoihiParameterError(
                f"conv weight {w.shape} with groups={self.groups} does not fit input channels {c_in}"
            )
        if min(self.out_shape) < 1:
            raise LoihiParameterError(f"conv output shape {self.out_shape} is empty")

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Output ``(C, H, W)`` (torch formula)."""
        _, h, w = self.in_shape
        kh, kw = self.weight.shape[2:]
        oh = (h + 2 * self.padding[0] - self.dilation[0] * (kh - 1) - 1) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - self.dilation[1] * (kw - 1) - 1) // self.stride[1] + 1
        return (self.weight.shape[0], oh, ow)

    @property
    def shape(self) -> tuple[int, int]:
        """``(out, in)`` flattened sizes."""
        return (int(np.prod(self.out_shape)), int(np.prod(self.in_shape)))

    @property
    def max_delay(self) -> int:
        return 0


@dataclass(frozen=True, eq=False)
class Projection:
    """A connection into layer ``dst`` from layer ``src`` (``-1``: the network input).

    ``synapse=None`` is a direct connection (only from the input): the raw input enters ``a_in`` in the
    same step, as in a netx ``input`` layer with a neuron.
    """

    src: int
    dst: int
    synapse: DenseParams | ConvParams | None


@dataclass(frozen=True, eq=False)
class LoihiNetwork:
    """A network of LIF populations connected by projections (chains, recurrence, skips, delays).

    All populations update in parallel each step from the activations their synapses computed in the
    previous step, as Lava's processes do.
    """

    n_in: int
    layers: tuple[LifParams, ...]
    projections: tuple[Projection, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "projections", tuple(self.projections))
        if not self.layers:
            raise LoihiParameterError("a Loihi network needs at least one LIF layer")
        for i, p in enumerate(self.projections):
            n_src = self.n_in if p.src == -1 else None
            if not -1 <= p.src < len(self.layers) or not 0 <= p.dst < len(self.layers):
                raise LoihiParameterError(f"projection {i}: src {p.src} / dst {p.dst} out of range")
            if n_src is None:
                n_src = self.layers[p.src].size
            n_dst = self.layers[p.dst].size
            if p.synapse is None:
                if p.src != -1 or n_src != n_dst:
                    raise LoihiParameterError(
                        f"projection {i}: a direct projection must come from the input and match the layer "
                        f"size ({n_src} != {n_dst})"
                    )
            elif p.synapse.shape != (n_dst, n_src):
                raise LoihiParameterError(
                    f"projection {i} ({p.src} -> {p.dst}): synapse shape {p.synapse.shape} != "
                    f"(out, in) = {(n_dst, n_src)}"
                )


# --------------------------------------------------------------------------------------------------------
# Weight preparation (numpy, once; lava/utils/weightutils.py)
# --------------------------------------------------------------------------------------------------------


def resolve_sign_mode(dense: DenseParams) -> SignMode:
    """Lava's ``determine_sign_mode`` unless forced: EXC if min >= 0, else INH if max <= 0, else MIXED."""
    if dense.sign_mode != SignMode.AUTO:
        return dense.sign_mode
    if dense.weight.min() >= 0:
        return SignMode.EXCITATORY
    if dense.weight.max() <= 0:
        return SignMode.INHIBITORY
    return SignMode.MIXED


def prepare_weights(dense: DenseParams) -> np.ndarray:
    """The int32 weights Lava's bit-accurate Dense uses: ``clip_weights`` then ``truncate_weights``.

    Reproduces ``weightutils.clip_weights(num_bits=8)``: MIXED -> [-256, 255], EXCITATORY -> [0, 255],
    INHIBITORY -> negate, clip to [0, 255], negate; then ``truncate_weights``: drop
    ``k = 8 - num_weight_bits + is_mixed`` LSBs with an arithmetic shift (negative MIXED weights floor,
    INHIBITORY truncates the magnitude).
    """
    mode = resolve_sign_mode(dense)
    w = dense.weight.astype(np.int64)
    mixed = int(mode == SignMode.MIXED)
    if mode == SignMode.INHIBITORY:
        w = -w  # clip_weights/truncate_weights work on the magnitude of inhibitory weights
    w = np.clip(w, -256 * mixed, 255)  # clip_weights: 8-bit range, [-256, 255] only when MIXED
    k = 8 - dense.num_weight_bits + mixed
    w = (w >> k) << k  # truncate_weights: arithmetic shift, floors negative MIXED weights
    if mode == SignMode.INHIBITORY:
        w = -w
    return w.astype(np.int32)


def _delay_weights(dense: DenseParams) -> np.ndarray:
    """``(D + 1, out, in)`` int32: weights split by delay (DelayDense ``get_delay_wgts_mat``)."""
    w = prepare_weights(dense)
    if dense.delays is None:
        return w[None]
    return np.stack([np.where(dense.delays == k, w, 0) for k in range(dense.max_delay + 1)]).astype(np.int32)


# --------------------------------------------------------------------------------------------------------
# Integer kernels (JAX, int32)
# --------------------------------------------------------------------------------------------------------


def decay(x: jax.Array, mult: jax.Array) -> jax.Array:
    """``sign(x) * ((|x| * mult) >> 12)`` for int32 x and 0 <= mult <= 4096, exact, in 32-bit arithmetic.

    Lava computes the product in int64 and rounds toward zero (``np.sign(p) * (np.abs(p) >> 12)``), then
    casts to int32. Here ``|x|`` is split as ``hi * 4096 + lo``: ``(|x| * m) >> 12 = hi * m + ((lo * m) >> 12)``
    exactly; with |x| <= 2**31 and m <= 4096 every term fits in uint32 (the magnitude 2**31, reached only for
    x = -2**31 and m = 4096, wraps back to -2**31 on negation, which is Lava's int32 cast of the same value).
    """
    mag = jnp.abs(x).astype(jnp.uint32)  # abs(-2**31) wraps to -2**31, which reads as 2**31 in uint32
    m = mult.astype(jnp.uint32)
    hi = jnp.right_shift(mag, jnp.uint32(DECAY_SHIFT)) * m
    lo = jnp.right_shift(jnp.bitwise_and(mag, jnp.uint32(DECAY_UNITY - 1)) * m, jnp.uint32(DECAY_SHIFT))
    res = (hi + lo).astype(jnp.int32)  # round toward zero: shift the magnitude, then restore the sign
    return jnp.where(x < 0, -res, res)


def _shift_exp(acc: jax.Array, exp: jax.Array) -> jax.Array:
    """Dense ``weight_exp`` on the summed activation: ``acc << e`` if e > 0 else ``acc >> -e``.

    Lava shifts the int64 sum and sends it on an int32 channel: identical to an int32 left shift with
    wrap-around; the right shift is arithmetic (floor), as numpy's ``right_shift`` on signed integers.
    """
    left = jnp.left_shift(acc, jnp.maximum(exp, 0))  # int32 wrap = int64 shift cast to int32
    right = jnp.right_shift(acc, jnp.maximum(-exp, 0))  # arithmetic: floors negative sums
    return jnp.where(exp > 0, left, right)


def _lif_update(a_in, u, v, t, p):
    """One ``run_spk`` of PyLifModelBitAcc / PyLifResetModelBitAcc; returns (u, v, s)."""
    interval = p["reset_interval"]
    do_reset = (interval > 0) & (jnp.remainder(t, jnp.maximum(interval, 1)) == p["reset_offset"])
    u = jnp.where(do_reset, 0, u)  # LIFReset: u = v = 0 before the update (a_in still enters)
    v = jnp.where(do_reset, 0, v)
    # u = trunc0(u * (4096 - (du + 1))) + (a << 6); shift and add in int32 (Lava: wrap-around).
    u = decay(u, p["u_mult"]) + jnp.left_shift(a_in, ACT_SHIFT)
    # Lava's "modulo 2**23" wrap: one correction only; +2**23 stays, -2**23 becomes +2**23.
    u = jnp.where(u > UV_MAX, u - 2 * UV_MAX, jnp.where(u <= -UV_MAX, u + 2 * UV_MAX, u))
    # v = clip(trunc0(v * (4096 - dv)) + u + bias, +-(2**23 - 1)); the sum is int32 (wraps) before clip.
    v = jnp.clip(decay(v, p["v_mult"]) + u + p["bias"], -(UV_MAX - 1), UV_MAX - 1)
    s = v > p["vth_e"]  # strict threshold against vth << 6 (latched on step 1)
    v = jnp.where(s, 0, v)  # reset to 0; u untouched, no refractory period in the bit-accurate model
    return u, v, s.astype(jnp.int32)


def _conv(x_flat, w, cp: ConvParams):
    """Conv activation for one sample, torch layout, int32 accumulate, 24-bit wrap (Lava signed_clamp)."""
    x = x_flat.reshape((1,) + cp.in_shape)
    y = jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=cp.stride,
        padding=[(cp.padding[0], cp.padding[0]), (cp.padding[1], cp.padding[1])],
        rhs_dilation=cp.dilation,
        feature_group_count=cp.groups,
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        preferred_element_type=jnp.int32,
    ).reshape(-1)
    # signed_clamp(x, 24) in lava/proc/conv/utils.py: ((x + 2**23) & (2**24 - 1)) - 2**23, a wrap.
    return jnp.bitwise_and(y + UV_MAX, 2 * UV_MAX - 1) - UV_MAX


@dataclass(frozen=True)
class _Structure:
    """The static (shape-determining) part of a network: the jit cache key."""

    n_in: int
    sizes: tuple[int, ...]
    # per projection: (src, dst, kind, max_delay, graded, conv params or None);
    # kind: "direct" | "dense" (int32 dot) | "dense_f32" (exact float32 dot) | "conv"
    projs: tuple[tuple, ...]


def _split(net: LoihiNetwork) -> tuple[_Structure, dict]:
    layers = []
    for lp in net.layers:
        interval = lp.reset_interval
        layers.append(
            {
                "u_mult": np.int32(DECAY_UNITY - (lp.du + 1)),  # current decay uses du + ds_offset(1)
                "v_mult": np.int32(DECAY_UNITY - lp.dv),  # voltage decay offset is 0
                # bias_mant (int16) copied to int32, then << bias_exp or >> -bias_exp (floor), as scale_bias()
                "bias": np.where(
                    lp.bias_exp >= 0,
                    np.left_shift(lp.bias_mant.astype(np.int32), np.maximum(lp.bias_exp, 0).astype(np.int32)),
                    np.right_shift(
                        lp.bias_mant.astype(np.int32), np.maximum(-lp.bias_exp, 0).astype(np.int32)
                    ),
                ).astype(np.int32),
                "vth_e": np.int32(lp.vth << VTH_SHIFT),  # vth < 2**25, so vth << 6 fits int32
                "reset_interval": np.int32(interval),
                "reset_offset": np.int32(lp.reset_offset % interval if interval > 0 else 0),
            }
        )
    projs, pparams = [], []
    for p in net.projections:
        syn = p.synapse
        if syn is None:
            projs.append((p.src, p.dst, "direct", 0, True, None))
            pparams.append({})
        elif isinstance(syn, ConvParams):
            projs.append((p.src, p.dst, "conv", 0, syn.num_message_bits > 0, syn))
            pparams.append({"w": syn.weight.astype(np.int32)})
        else:
            graded = syn.num_message_bits > 0
            w = _delay_weights(syn)
            # Binary input: every partial sum is an integer of magnitude <= max|w| * n_in. Below 2**24 it is
            # exact in float32 in any summation order, so the dot runs as a float32 GEMM (much faster than
            # XLA's integer dot) and is cast back to int32 without rounding. Otherwise: int32 dot.
            exact_f32 = not graded and int(np.abs(w).max(initial=0)) * w.shape[-1] < (1 << 24)
            kind = "dense_f32" if exact_f32 else "dense"
            projs.append((p.src, p.dst, kind, syn.max_delay, graded, None))
            pparams.append({"w": w.astype(np.float32) if exact_f32 else w, "exp": np.int32(syn.weight_exp)})
    struct = _Structure(net.n_in, tuple(lp.size for lp in net.layers), tuple(projs))
    return struct, {"layers": layers, "projs": pparams}


def _step_fn(struct: _Structure, params, record: tuple[str, ...], chip_v: bool):
    n_layers = len(struct.sizes)

    def step(carry, x):
        us, vs, bufs, t = carry
        t = t + 1  # Lava's time_step: 1 on the first step
        a_in = [jnp.zeros((n,), jnp.int32) for n in struct.sizes]
        for (_, dst, kind, *_), buf in zip(struct.projs, bufs, strict=True):
            # a_in is the int32 sum of every connected sender's message (PyInPortVectorDense.recv).
            a_in[dst] = a_in[dst] + (x if kind == "direct" else buf[0])
        new_u, new_v, spikes = [], [], []
        for k in range(n_layers):
            u, v, s = _lif_update(a_in[k], us[k], vs[k], t, params["layers"][k])
            new_u.append(u)
            new_v.append(v)
            spikes.append(s)
        new_bufs = []
        for (src, _, kind, _, graded, cp), buf, pp in zip(struct.projs, bufs, params["projs"], strict=True):
            if kind == "direct":
                new_bufs.append(buf)
                continue
            pre = x if src == -1 else spikes[src]
            if not graded:
                pre = (pre != 0).astype(jnp.int32)  # binary synapse: any nonzero input is a spike
            if kind == "conv":
                act = _conv(pre, pp["w"], cp)[None]
            elif kind == "dense_f32":
                # (D+1, out) per delay slot; exact (see _split), HIGHEST precision forbids TF32/bf16 passes.
                act = jnp.einsum(
                    "doi,i->do", pp["w"], pre.astype(jnp.float32), precision=jax.lax.Precision.HIGHEST
                ).astype(jnp.int32)
                act = _shift_exp(act, pp["exp"])
            else:
                # (D+1, out): activation per delay slot, int32 (graded dot wraps like Lava's int32 dot)
                act = jnp.einsum("doi,i->do", pp["w"], pre, preferred_element_type=jnp.int32)
                act = _shift_exp(act, pp["exp"])
            # Dense sends last step's buffer, then stores this step's activation; DelayDense rolls its
            # (out, D+1) buffer by one slot and adds slot d for arrival d steps later.
            rolled = jnp.concatenate([buf[1:], jnp.zeros_like(buf[:1])], axis=0)
            new_bufs.append(rolled + act)
        rec = {}
        if "u" in record:
            rec["u"] = tuple(new_u)
        if "v" in record:
            rec["v"] = tuple(
                jnp.where(s > 0, 128, v) if chip_v else v for v, s in zip(new_v, spikes, strict=True)
            )  # chip_v: Loihi 2 reports 128 * refDelay on a spike step (CPU model: 0)
        if "s" in record:
            rec["s"] = tuple(spikes)
        return (tuple(new_u), tuple(new_v), tuple(new_bufs), t), rec

    return step


def _init_carry(struct: _Structure):
    us = tuple(jnp.zeros((n,), jnp.int32) for n in struct.sizes)
    vs = tuple(jnp.zeros((n,), jnp.int32) for n in struct.sizes)
    bufs = []
    for _, dst, kind, max_delay, _, _ in struct.projs:
        rows = 1 if kind == "direct" else max_delay + 1
        bufs.append(jnp.zeros((rows, struct.sizes[dst]), jnp.int32))
    return us, vs, tuple(bufs), jnp.int32(0)


@functools.partial(jax.jit, static_argnames=("struct", "record", "chip_v"))
def _run(params, inputs, *, struct: _Structure, record: tuple[str, ...], chip_v: bool):
    """inputs: (B, T, n_in) int32 -> dict of per-layer (B, T, N) int32 traces.

    One ``lax.scan`` over time whose step is ``vmap``-ed over the batch (state carried as (B, ...)).
    """
    step = jax.vmap(
        _step_fn(struct, params, record, chip_v), in_axes=((0, 0, 0, None), 0), out_axes=((0, 0, 0, None), 0)
    )
    us, vs, bufs, t0 = _init_carry(struct)
    batch = inputs.shape[0]

    def bcast(a):
        return jnp.broadcast_to(a, (batch,) + a.shape)

    carry = (tuple(map(bcast, us)), tuple(map(bcast, vs)), tuple(map(bcast, bufs)), t0)
    _, rec = jax.lax.scan(step, carry, jnp.swapaxes(inputs, 0, 1))
    return jax.tree_util.tree_map(lambda a: jnp.swapaxes(a, 0, 1), rec)


def make_runner(net: LoihiNetwork, record: Sequence[str] = ("u", "v", "s"), chip_v: bool = False):
    """A jitted function ``inputs (B, T, n_in) int32 -> {"u"|"v"|"s": tuple of (B, T, N_k) int32}``.

    ``record`` selects the recorded variables (recording fewer is faster). ``chip_v=True`` reports
    ``v = 128`` on spike steps like the Loihi 2 chip does with refDelay 1 (the dynamics are unchanged).
    """
    record = tuple(r for r in ("u", "v", "s") if r in record)
    struct, params = _split(net)
    params = jax.tree_util.tree_map(jnp.asarray, params)

    def run(inputs: jax.Array) -> dict:
        return _run(params, inputs, struct=struct, record=record, chip_v=chip_v)

    return run


@dataclass(frozen=True)
class LoihiTrace:
    """Recorded states: per layer, ``(B, T, N)`` int32 arrays (row t = end of Lava step t + 1)."""

    u: tuple[np.ndarray, ...]
    v: tuple[np.ndarray, ...]
    s: tuple[np.ndarray, ...]


def _check_inputs(net: LoihiNetwork, inputs) -> tuple[np.ndarray, bool]:
    x = np.asarray(inputs)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != net.n_in:
        raise InputError(
            f"Loihi input must be (T, {net.n_in}) or (B, T, {net.n_in}), got shape {x.shape}",
            fix="pass integer spike counts/payloads with the network's input size as the last axis",
        )
    if x.dtype.kind not in "biu":
        raise InputError(
            f"Loihi input must be integer or bool, got dtype {x.dtype}", fix="cast spikes to int32"
        )
    if x.size and (x.min() < INT32_MIN or x.max() > INT32_MAX):
        raise InputError("Loihi input values must fit int32 (Lava's source RingBuffer is int32)")
    return x.astype(np.int32), single


def simulate(
    net: LoihiNetwork, inputs, record: Sequence[str] = ("u", "v", "s"), chip_v: bool = False
) -> LoihiTrace:
    """Run ``net`` on integer ``inputs`` of shape ``(T, n_in)`` or ``(B, T, n_in)``; numpy in, numpy out.

    Returns a :class:`LoihiTrace` whose arrays have shape ``(T, N)`` or ``(B, T, N)`` like the input;
    variables not in ``record`` are empty tuples.
    """
    x, single = _check_inputs(net, inputs)
    rec = make_runner(net, record, chip_v)(jnp.asarray(x))
    out = {}
    for name in ("u", "v", "s"):
        arrs = tuple(np.asarray(a) for a in rec.get(name, ()))
        out[name] = tuple(a[0] for a in arrs) if single else arrs
    return LoihiTrace(**out)
