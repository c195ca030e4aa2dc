"""lava-dl ``netx`` HDF5 files: read (ours or slayer-written), write (h5py), convert to the Loihi emulator.

The file format and what ``lava.lib.dl.netx.hdf5.Network`` (lava-dl 0.6.0) does with it are described in
``shared/targets/loihi.md`` section 4. This module reproduces netx's interpretation exactly, so that
:func:`to_loihi_network` gives the :class:`snn_deploy.sim.loihi.LoihiNetwork` Lava builds from the same file:

* ``neuron/`` ``CUBA``/``LOIHI``: ``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_exp = 6``,
  ``bias_mant = int(bias)`` (truncated toward zero, as netx's ``astype(int)``).
* ``dense``/``dense_rec`` weights go through netx's ``optimize_weight_bits`` (clip, exponent, bit width;
  reproduced by :func:`netx_optimize_weight_bits`); Lava's Dense then determines the sign mode itself.
* Every dense/conv layer adds one step of latency; an ``input`` layer with a neuron feeds the raw input
  into that neuron's ``a_in`` in the same step; layer k (counting the layers netx builds) resets at
  ``t % interval == (reset_offset + 1 + k) % interval`` when a reset interval is given.
* Conv weights are torch ``(out, in/groups, kH, kW)`` cross-correlation kernels; the emulator keeps conv
  activity flattened in torch ``(C, H, W)`` order, which is also what netx's ``flatten`` feeds the next
  dense layer.

Writing is atomic (temporary file + ``os.replace``) and deterministic (same model -> same bytes).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from snn_deploy.errors import ArtefactError
from snn_deploy.sim.loihi import (
    ConvParams,
    DenseParams,
    LifParams,
    LoihiNetwork,
    Projection,
)

__all__ = [
    "NetxFormatError",
    "NetxLayer",
    "NetxModel",
    "NetxNeuron",
    "UnsupportedNetxLayer",
    "netx_optimize_weight_bits",
    "read_netx",
    "to_loihi_network",
    "write_netx",
]

LAYER_KINDS = ("input", "dense", "dense_rec", "conv", "flatten")
#: netx clips file delays to 62 (``max_delay = 62`` in netx/blocks/process.py).
NETX_MAX_DELAY = 62
#: Neuron used by netx for a dense layer without ``neuron/`` (``1 << 18 - 1`` is ``1 << 17``: never fires).
DEFAULT_NEURON_VTH = 1 << 17


class NetxFormatError(ArtefactError):
    """A netx HDF5 file (or a model to be written as one) is malformed or violates netx's rules."""


class UnsupportedNetxLayer(NetxFormatError):
    """A netx layer or neuron kind that the Loihi emulator does not support."""


@dataclass(frozen=True)
class NetxNeuron:
    """A netx ``CUBA`` neuron group: decays in 1/4096 (``iDecay`` is the true decay; netx subtracts 1)."""

    i_decay: int
    v_decay: int
    vth_mant: int


@dataclass(frozen=True, eq=False)
class NetxLayer:
    """One ``/layer/<i>`` group.

    Attributes:
        kind: ``input``, ``dense``, ``dense_rec``, ``conv`` or ``flatten``.
        shape: output shape in torch order (dense ``(N,)``, conv/input ``(C, H, W)`` or ``(N,)``).
        weight: dense ``(out, in)`` or conv ``(out, in/groups, kH, kW)`` integer weights (file units).
        weight_rec: ``dense_rec`` recurrent ``(out, out)`` weights.
        bias: ``(out,)`` or conv per-channel bias in mantissa units (applied as ``bias << 6``), or None.
        delay: dense delays (scalar, ``(out,)``, ``(in,)`` or ``(out, in)``), or None.
        neuron: CUBA neuron, or None (dense: netx's default never-firing neuron; input: shape only).
        stride, padding, dilation, groups: conv geometry in torch ``(H, W)`` order.
    """

    kind: str
    shape: tuple[int, ...]
    weight: np.ndarray | None = None
    weight_rec: np.ndarray | None = None
    bias: np.ndarray | None = None
    delay: np.ndarray | None = None
    neuron: NetxNeuron | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1


@dataclass(frozen=True, eq=False)
class NetxModel:
    """A netx network: the layers in feed-forward order and root attributes (ignored by netx)."""

    layers: tuple[NetxLayer, ...]
    attrs: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------------


def _read_str(ds: h5py.Dataset) -> str:
    """netx ``NetDict`` string rule: ``value[0]`` if the dataset has a shape, else ``value[()]``."""
    value = ds[0] if len(ds.shape) > 0 else ds[()]
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _pair(x) -> tuple[int, int]:
    arr = np.asarray(x).astype(int).ravel()
    return (int(arr[0]), int(arr[0])) if arr.size == 1 else (int(arr[0]), int(arr[1]))


def _read_neuron(group: h5py.Group, where: str) -> NetxNeuron:
    kind = _read_str(group["type"])
    if kind not in ("CUBA", "LOIHI"):
        raise UnsupportedNetxLayer(
            f"{where}: neuron type {kind!r} is not supported by the Loihi emulator (only CUBA/LOIHI)",
            node=where,
            fix="export CUBA LIF neurons, or run SDNN/RF networks in Lava itself",
        )
    if "messageBits" in group:
        raise NetxFormatError(
            f"{where}: neuron/messageBits is set; lava-dl 0.6.0 netx reads it as a group and fails at run time",
            node=where,
            fix="remove neuron/messageBits from the file",
        )
    try:
        return NetxNeuron(int(group["iDecay"][()]), int(group["vDecay"][()]), int(group["vThMant"][()]))
    except KeyError as exc:
        raise NetxFormatError(f"{where}: neuron lacks {exc}", node=where) from None


def read_netx(path: str | os.PathLike) -> NetxModel:
    """Read a netx HDF5 file (written by this module or by lava-dl/slayer) into a :class:`NetxModel`.

    Raises :class:`UnsupportedNetxLayer` naming the layer for kinds other than input, dense, dense_rec,
    conv, flatten (netx itself raises for pool/convT/unpool/average/concat and silently skips unknown
    strings; we refuse both), and :class:`NetxFormatError` for malformed files.
    """
    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise NetxFormatError(f"cannot open {path} as HDF5: {exc}", file=str(path)) from None
    with f:
        if "layer" not in f:
            raise NetxFormatError(
                "no /layer group", file=str(path), fix="write layers as /layer/0 .. /layer/N-1"
            )
        names = list(f["layer"].keys())
        if sorted(names, key=lambda s: (len(s), s)) != [str(i) for i in range(len(names))]:
            raise NetxFormatError(f"/layer must hold exactly 0..N-1, found {sorted(names)}", file=str(path))
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        layers = tuple(_read_layer(f["layer"][str(i)], f"layer/{i}", path) for i in range(len(names)))
    return NetxModel(layers=layers, attrs=attrs)


def _read_layer(g: h5py.Group, where: str, path: Path) -> NetxLayer:
    if "type" not in g:
        raise NetxFormatError(f"{where} has no 'type'", file=str(path), node=where)
    kind = _read_str(g["type"])
    if kind not in LAYER_KINDS:
        raise UnsupportedNetxLayer(
            f"{where}: layer type {kind!r} is not supported (supported: {', '.join(LAYER_KINDS)})",
            file=str(path),
            node=where,
            fix="export the network with dense/conv/flatten layers of CUBA neurons",
        )
    shape = tuple(int(x) for x in np.asarray(g["shape"][()]).ravel()) if "shape" in g else ()
    neuron = _read_neuron(g["neuron"], where) if "neuron" in g else None

    def copy(key):  # NetDict copy_keys: astype(int), i.e. truncation toward zero
        return np.asarray(g[key][()]).astype(np.int64) if key in g else None

    if kind == "input":
        return NetxLayer(kind, shape, neuron=neuron)
    if kind == "flatten":
        return NetxLayer(kind, shape)
    if "weight" not in g:
        raise NetxFormatError(f"{where}: {kind} layer has no weight", file=str(path), node=where)
    if kind == "conv":
        w = copy("weight")
        w = w.reshape(w.shape[:4])  # slayer may append a trailing time-kernel axis of size 1
        return NetxLayer(
            kind,
            shape,
            weight=w,
            bias=copy("bias"),
            neuron=neuron,
            stride=_pair(g["stride"][()]) if "stride" in g else (1, 1),
            padding=_pair(g["padding"][()]) if "padding" in g else (0, 0),
            dilation=_pair(g["dilation"][()]) if "dilation" in g else (1, 1),
            groups=int(np.asarray(g["groups"][()]).ravel()[0]) if "groups" in g else 1,
        )
    delay = np.asarray(g["delay"][()]) if "delay" in g else None
    return NetxLayer(
        kind,
        shape,
        weight=copy("weight"),
        weight_rec=copy("weight_rec"),
        bias=copy("bias"),
        delay=delay,
        neuron=neuron,
    )


# ------------------------------------------------------------------------------------------------------
# netx weight re-encoding and conversion to the emulator
# ------------------------------------------------------------------------------------------------------


def netx_optimize_weight_bits(weight: np.ndarray) -> tuple[np.ndarray, int, int]:
    """netx ``utils.optimize_weight_bits``: (weights << scale_bits, num_weight_bits, weight_exp).

    Clips to [-256, 254] when a mixed-sign matrix exceeds it (netx prints a warning; we warn), picks
    the sign (INH if max < 0, EXC if min >= 0, else MIXED), ``scale_bits = floor(log2 scale) + is_mixed``
    and the bit width from the largest power of two dividing every weight.
    """
    w = np.asarray(weight).astype(np.int64)
    wmax, wmin = w.max(), w.min()
    if (wmax > 254 and wmin < 0) or (wmin < -256 and wmax > 0):
        warnings.warn(f"netx clips mixed-sign weights in [{wmin}, {wmax}] to [-256, 254]", stacklevel=3)
        w = np.clip(w, -256, 254)
        wmax, wmin = w.max(), w.min()
    if wmax == 0 and wmin == 0:
        raise NetxFormatError(
            "all-zero weight matrix: netx's optimize_weight_bits fails on it (infinite scale)",
            fix="drop the layer or give it at least one nonzero weight",
        )
    if wmax < 0:
        mixed, scale = 0, -256 / wmin
    elif wmin >= 0:
        mixed, scale = 0, 255 / wmax
    else:
        mixed, scale = 1, min(127 / float(wmax) if wmax > 0 else np.inf, -128 / float(wmin))
    scale_bits = int(np.floor(np.log2(scale))) + mixed
    n = 8
    while n > 0 and np.sum(np.abs(w / 2**n - np.round(w / 2**n))) != 0:
        n -= 1
    n -= mixed
    num_weight_bits = 8 - scale_bits - n
    # netx: np.left_shift(weight.astype(int32), scale_bits); a negative count is a C shift by a
    # negative amount (the "garbage" case of EXC weights > 255), which we refuse instead.
    if scale_bits < 0:
        raise NetxFormatError(
            f"weights in [{wmin}, {wmax}] exceed the 8-bit range netx can encode",
            fix="keep excitatory weights <= 255 and inhibitory weights >= -256",
        )
    return (w.astype(np.int32) << scale_bits).astype(np.int64), int(num_weight_bits), int(-scale_bits)


def _expand_delay(delay: np.ndarray, out_in: tuple[int, int], where: str) -> np.ndarray:
    d = np.asarray(delay)
    if d.max() > NETX_MAX_DELAY:
        warnings.warn(f"{where}: netx clamps delays above {NETX_MAX_DELAY}", stacklevel=3)
        d = np.clip(d, 0, NETX_MAX_DELAY)
    if d.ndim == 0:
        return np.full(out_in, int(d))
    if d.ndim == 1:
        if d.size == out_in[0]:
            return np.repeat(d.reshape(-1, 1), out_in[1], axis=1)
        if d.size == out_in[1]:
            return np.repeat(d.reshape(1, -1), out_in[0], axis=0)
        raise NetxFormatError(f"{where}: delay of shape {d.shape} does not fit weight {out_in}", node=where)
    return d.reshape(out_in)


def _lif(neuron: NetxNeuron | None, size: int, bias, reset: tuple[int, int]) -> LifParams:
    n = neuron or NetxNeuron(0, 4096, DEFAULT_NEURON_VTH)
    bias_mant = np.zeros(size, np.int64) if bias is None else np.broadcast_to(np.asarray(bias), (size,))
    return LifParams(
        size=size,
        du=n.i_decay - 1,  # netx: du = iDecay - 1 (Lava adds the 1 back)
        dv=n.v_decay,
        vth=n.vth_mant,
        bias_mant=bias_mant,
        bias_exp=np.full(size, 6),  # netx: bias_exp = 6 (bias in vThMant units)
        reset_interval=reset[0],
        reset_offset=reset[1],
    )


def to_loihi_network(
    model: NetxModel,
    input_message_bits: int = 0,
    reset_interval: int | None = None,
    reset_offset: int = 0,
    input_shape: tuple[int, ...] | None = None,
    input_bias: np.ndarray | None = None,
) -> LoihiNetwork:
    """The network ``netx.hdf5.Network(path, input_message_bits, reset_interval, reset_offset)`` builds.

    The emulator's input is netx's ``net.inp`` flattened in torch order; its layers are the layers netx
    instantiates (flatten and shape-only input layers build nothing), in order. ``input_bias`` (torch
    order, flattened) is the ``bias_mant`` of an ``input`` layer's neuron (``bias_exp`` 6), the only way
    such a neuron receives drive in lava-dl 0.6.0.
    """
    layers: list[LifParams] = []
    projs: list[Projection] = []
    shapes: list[tuple[int, ...]] = []  # torch-order output shape per emulator layer
    in_shape = tuple(input_shape) if input_shape is not None else None
    msg_bits = int(input_message_bits)
    interval = int(reset_interval or 0)

    def reset() -> tuple[int, int]:
        return (interval, reset_offset + 1 + len(layers)) if interval else (0, 0)

    for i, layer in enumerate(model.layers):
        where = f"layer/{i}"
        src = len(layers) - 1
        prev_shape = shapes[-1] if shapes else in_shape
        if layer.kind == "flatten":
            continue
        if layer.kind == "input":
            if layer.neuron is None:
                in_shape = layer.shape
                continue
            # lava-dl 0.6.0's Input block never connects its InPort to the neuron: the neuron is driven
            # only by its bias (lava-dl's own tests set ``in_layer.neuron.bias_mant``); network input
            # sent to ``net.inp`` makes Lava's compiler fail. So: no projection, bias = input_bias.
            size = int(np.prod(layer.shape))
            in_shape = layer.shape
            bias = None if input_bias is None else np.asarray(input_bias).reshape(-1)
            if bias is not None and bias.size != size:
                raise NetxFormatError(f"input_bias has {bias.size} values, input layer has {size} neurons")
            layers.append(_lif(layer.neuron, size, bias, reset()))
            shapes.append(layer.shape)
            msg_bits = 0
            continue
        if prev_shape is None:
            if layer.kind == "conv":
                raise NetxFormatError(
                    f"{where}: conv input shape unknown", node=where, fix="add an input layer with its shape"
                )
            prev_shape = (int(np.asarray(layer.weight).reshape(int(np.prod(layer.shape)), -1).shape[1]),)
            in_shape = prev_shape
        n_in = int(np.prod(prev_shape))
        if layer.kind == "conv":
            if layer.neuron is None:
                raise NetxFormatError(f"{where}: conv layers need a neuron group", node=where)
            cp = ConvParams(
                weight=layer.weight,
                in_shape=tuple(prev_shape),  # type: ignore[arg-type]
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
                groups=layer.groups,
                num_message_bits=msg_bits,
            )
            out_shape = cp.out_shape
            if layer.shape and tuple(layer.shape) != out_shape:
                raise NetxFormatError(
                    f"{where}: conv shape {tuple(layer.shape)} != computed output (C, H, W) {out_shape}",
                    node=where,
                )
            size = int(np.prod(out_shape))
            bias = None
            if layer.bias is not None:
                b = np.asarray(layer.bias).ravel()
                bias = np.repeat(b, size // out_shape[0]) if b.size == out_shape[0] else b
            layers.append(_lif(layer.neuron, size, bias, reset()))
            projs.append(Projection(src, len(layers) - 1, cp))
            shapes.append(out_shape)
            msg_bits = 0
            continue
        size = int(np.prod(layer.shape))
        w = (
            np.asarray(layer.weight).reshape(size, -1)
            if np.ndim(layer.weight) == 1
            else np.asarray(layer.weight)
        )
        if w.shape != (size, n_in):
            raise NetxFormatError(
                f"{where}: weight {w.shape} does not match (out, in) = {(size, n_in)}", node=where
            )
        if layer.kind == "dense_rec":
            if layer.delay is not None:
                raise UnsupportedNetxLayer(
                    f"{where}: dense_rec with delay: lava-dl 0.6.0 drops weight_exp and reuses the forward "
                    "delays for the recurrent synapse",
                    node=where,
                    fix="write recurrent layers without delays",
                )
            wr = np.asarray(layer.weight_rec).reshape(size, -1)
            both, nwb, exp = netx_optimize_weight_bits(np.hstack([w, wr]))  # one shared exponent/width
            fwd, rec = both[:, : w.shape[1]], both[:, w.shape[1] :]
        else:
            fwd, nwb, exp = netx_optimize_weight_bits(w)
            rec = None
        delays = None if layer.delay is None else _expand_delay(layer.delay, fwd.shape, where)
        layers.append(_lif(layer.neuron, size, layer.bias, reset()))
        k = len(layers) - 1
        projs.append(Projection(src, k, DenseParams(fwd, exp, nwb, num_message_bits=msg_bits, delays=delays)))
        if rec is not None:
            projs.append(Projection(k, k, DenseParams(rec, exp, nwb, num_message_bits=msg_bits)))
        shapes.append((size,))
        msg_bits = 0
    if not layers:
        raise NetxFormatError("the netx file has no layer that builds neurons")
    n_in = int(np.prod(in_shape)) if in_shape is not None else layers[0].size
    return LoihiNetwork(n_in=n_in, layers=tuple(layers), projections=tuple(projs))


# ------------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------------


def _check_dense_weight(w: np.ndarray, where: str) -> None:
    if not np.any(w):
        raise NetxFormatError(f"{where}: all-zero weight matrix (netx raises OverflowError)", node=where)
    if w.min() >= 0:
        ok = w.max() <= 255
    elif w.max() < 0:
        ok = w.min() >= -255
    else:
        ok = (w.min() >= -128 and w.max() <= 127) or (
            w.min() >= -256 and w.max() <= 254 and not np.any(w % 2)
        )
    if not ok:
        raise NetxFormatError(
            f"{where}: weights in [{w.min()}, {w.max()}] are not exactly representable by netx",
            node=where,
            fix="use MIXED weights in [-128, 127] (or even in [-256, 254]), EXC in [0, 255], INH in [-255, -1]",
        )


def _validate_for_write(model: NetxModel) -> None:
    for i, layer in enumerate(model.layers):
        where = f"layer/{i}"
        if layer.kind not in LAYER_KINDS:
            raise UnsupportedNetxLayer(f"{where}: unknown layer kind {layer.kind!r}", node=where)
        n = layer.neuron
        if n is not None:
            for name, v, lo, hi in (
                ("iDecay", n.i_decay, 0, 4096),
                ("vDecay", n.v_decay, 0, 4096),
                ("vThMant", n.vth_mant, 1, 131071),
            ):
                if not lo <= v <= hi:
                    raise NetxFormatError(
                        f"{where}: {name} = {v} outside [{lo}, {hi}]", node=where, param=name
                    )
        if layer.kind in ("dense", "dense_rec"):
            w = np.asarray(layer.weight)
            if layer.kind == "dense_rec":
                if layer.delay is not None:
                    raise NetxFormatError(f"{where}: dense_rec cannot carry delays in netx", node=where)
                w = np.hstack([w, np.asarray(layer.weight_rec)])
            _check_dense_weight(w, where)
        if layer.kind == "conv":
            w = np.asarray(layer.weight)
            if n is None:
                raise NetxFormatError(f"{where}: conv layers need a neuron", node=where)
            if w.min() < -256 or w.max() > 255:
                raise NetxFormatError(
                    f"{where}: conv weights must be 8-bit integers (netx does not re-encode them)"
                )
        if layer.bias is not None and np.abs(np.asarray(layer.bias)).max(initial=0) > 4095:
            raise NetxFormatError(f"{where}: |bias| > 4095 (13-bit bias mantissa)", node=where, param="bias")
        if layer.delay is not None:
            d = np.asarray(layer.delay)
            if d.min() < 0 or d.max() > NETX_MAX_DELAY:
                raise NetxFormatError(f"{where}: delays must lie in [0, {NETX_MAX_DELAY}]", node=where)
        if layer.kind == "input" and i != 0:
            raise NetxFormatError(f"{where}: an input layer must be layer 0", node=where)


def _write_str(g: h5py.Group, key: str, value: str) -> None:
    g.create_dataset(key, data=np.array([value.encode("ascii")], dtype="S10"), track_times=False)


def _write_int(g: h5py.Group, key: str, value) -> None:
    g.create_dataset(key, data=np.asarray(value, dtype=np.int64), track_times=False)


def write_netx(model: NetxModel, path: str | os.PathLike) -> Path:
    """Validate ``model`` against netx's rules and write it to ``path`` atomically and deterministically.

    Layout: ``/layer/<i>/{type (S10[1]), shape, weight, weight_rec, bias, delay, stride, padding, dilation,
    groups}`` and ``neuron/{type 'CUBA', iDecay, vDecay, vThMant, refDelay 1, gradedSpike 0}``; root
    attributes from ``model.attrs`` (netx ignores them). Integers are stored as int64.
    """
    _validate_for_write(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        # libver 'earliest' + track_times=False + fixed creation order: byte-identical output.
        with h5py.File(tmp, "w", libver="earliest", track_order=False) as f:
            for key in sorted(model.attrs):
                f.attrs[key] = model.attrs[key]
            root = f.create_group("layer")
            for i, layer in enumerate(model.layers):
                g = root.create_group(str(i))
                _write_str(g, "type", layer.kind)
                _write_int(g, "shape", list(layer.shape))
                for key in ("weight", "weight_rec", "bias", "delay"):
                    value = getattr(layer, key)
                    if value is not None:
                        _write_int(g, key, value)
                if layer.kind == "conv":
                    for key in ("stride", "padding", "dilation"):
                        _write_int(g, key, list(getattr(layer, key)))
                    _write_int(g, "groups", layer.groups)
                if layer.neuron is not None:
                    ng = g.create_group("neuron")
                    _write_str(ng, "type", "CUBA")
                    _write_int(ng, "iDecay", layer.neuron.i_decay)
                    _write_int(ng, "vDecay", layer.neuron.v_decay)
                    _write_int(ng, "vThMant", layer.neuron.vth_mant)
                    _write_int(ng, "refDelay", 1)
                    _write_int(ng, "gradedSpike", 0)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
