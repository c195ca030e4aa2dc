"""NIR graph -> Xylo integer specification: mapping, discretisation and quantisation (targets/xylo.md section 7).

The float model each layer must match is the per-step update of :func:`snn_deploy.discretize.step_coefficients`:

    i[t] = a_syn i[t-1] + b_syn x[t]        v[t] = a_mem v[t-1] + k_i i[t-1] + k_x x[t] + c

Xylo runs, per neuron, ``I <- (I + W x) (1 - 2^-ds)`` (the new input decays in the same step) and
``v <- v (1 - 2^-dm) + I + bias``, fires while ``v >= thr`` and subtracts ``thr`` each time.

- **Decays.** ``ds = round(-log2(1 - a_syn))`` clamped to 1..15 (ds = 0 would discard every input),
  ``dm = round(-log2(1 - a_mem))`` clamped to 0..15. In ``euler`` this is ``round(log2(tau/dt))``. The decay error
  ``|(1 - 2^-d) - a|`` is reported per layer.
- **Gains.** Xylo's ``I`` stands for ``g * i`` with ``g = k_i / a_syn`` (``dt/tau_mem * r`` in ``euler``), so a float
  weight ``W`` becomes ``W_eff = g * b_syn * W / (1 - 2^-ds)`` before integer scaling; in ``euler`` CubaLIF (with
  ``subtract`` reset) this reproduces the float model up to rounding. LIF/LI/IF have no synaptic current: they are
  approximated with ``ds = 1`` (which delivers the full charge ``k_x * W`` over a few steps) and need
  ``--allow-approximate``.
- **Bias.** ``v_leak`` gives ``c`` per step; an Affine bias ``b`` gives its steady-state membrane drive
  ``k_i b_syn b / (1 - a_syn) + k_x b``; both go to Xylo's membrane bias (v2 only), rounded to int8 (the hardware
  bias width is unconfirmed, xylo.md section 1).
- **Quantisation.** Each neuron j gets its own scale ``s_j`` (integer units per float unit of membrane): weights
  ``round(s_j W_eff / 2^shift)`` in int8 with one shift per block (input, recurrent, output) chosen from 0..7 to
  minimise the relative weight error plus the threshold resolution; thresholds ``floor(s_j theta) + 1`` so that the
  integer test ``v >= thr`` equals the float test ``v > theta``; ``s_j`` is capped so that thresholds keep headroom
  (``thr <= 32767 / headroom``) or, with calibration data, so that the largest float membrane and current seen stay
  below 90 % of int16.
- **Layout.** Hidden layers are consecutive blocks of the recurrent population; layer 1 is fed by ``weights_in``
  (IEN = its size), later layers by blocks of ``weights_rec``, the last hidden layer drives ``weights_out``
  (OEN = its size, the last rows of the population). Latency: hidden layer k spikes k-1 steps after the float
  model, the readout ``n_hidden_layers`` steps after it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from snn_deploy.discretize import step_coefficients
from snn_deploy.errors import ConventionError, DoesNotFit, UnsupportedNode
from snn_deploy.graph import Graph
from snn_deploy.infer import require_dt
from snn_deploy.layers import Layer, layer_stack
from snn_deploy.nodes import LI, CubaLI, CubaLIF
from snn_deploy.passes import fold_scales
from snn_deploy.quantize.integer import quantise_rows, relative_error, search_shifts
from snn_deploy.sim.xylo_spec import VARIANTS, XyloSpec

I16_MAX = 32767
MAX_SHIFT = 7  # 3-bit weight-shift fields IWBS/RWBS/OWBS
MAX_DASH = 15  # 4-bit dash fields

#: recurrent weight memory per chip (xylo.md section 1): XyloAudio 2 1000 x 32 entries, IMU and Audio 3 31 744
RECURRENT_BUDGET = {"syns61201": 32000, "syns63300": 31744, "syns65302": 31744}

EXACT_TYPES = (CubaLIF, CubaLI)
READOUT_TYPES = (CubaLI, LI)  # non-spiking readouts: read Vmem_out


@dataclass(frozen=True)
class LayerMap:
    """How one NIR neuron node was placed and scaled (for xylo.json and the report)."""

    node: str
    kind: str  # "hidden" or "output"
    start: int  # first hidden (or output) index
    size: int
    latency: int  # steps after the float model
    dash_syn: np.ndarray
    dash_mem: np.ndarray
    scale: np.ndarray  # s_j, integer units per float unit of membrane
    decay_error_syn: float
    decay_error_mem: float
    weight_rel_error: float
    threshold_rel_error: float
    approximations: tuple[str, ...] = ()


@dataclass(frozen=True)
class XyloLowering:
    spec: XyloSpec
    layers: tuple[LayerMap, ...]
    output_mode: str
    dt: float
    warnings: tuple[str, ...] = field(default=())
    #: the float network in Xylo form before integer scaling, in Rockpool's mapper layout (weights_in (Nin, IEN),
    #: weights_rec (Nh, Nh) [pre, post], weights_out (OEN, Nout), thresholds, biases, dashes), so that other
    #: quantisers (e.g. Rockpool's channel_quantize) can be compared on exactly the same model
    float_spec: dict = field(default_factory=dict, repr=False)


@dataclass
class _Float:
    """A layer's float model in Xylo form, before integer scaling."""

    layer: Layer
    dash_syn: np.ndarray
    dash_mem: np.ndarray
    w_ff: np.ndarray  # W_eff rows = target neurons
    w_rec: np.ndarray | None
    bias: np.ndarray  # per-step membrane drive
    theta: np.ndarray
    approx: list[str]
    err_syn: float
    err_mem: float


def _dash(decay: np.ndarray, lo: int) -> np.ndarray:
    with np.errstate(divide="ignore"):
        d = np.round(-np.log2(np.clip(1.0 - decay, 1e-300, None)))
    return np.clip(np.nan_to_num(d, posinf=MAX_DASH), lo, MAX_DASH).astype(np.int64)


def _xylo_decay(d: np.ndarray) -> np.ndarray:
    return 1.0 - 2.0 ** (-d.astype(np.float64)) * (d > 0) - (d == 0)  # d = 0 zeroes the state: decay factor 0


def _float_layer(layer: Layer, dt: float, method: str, target: str, allow_approximate: bool) -> _Float:
    n = layer.neuron
    co = step_coefficients(n, dt, method)
    approx: list[str] = []
    theta = np.ravel(getattr(n, "v_threshold", np.full(layer.size, np.inf)))
    if isinstance(n, EXACT_TYPES):
        ds = _dash(np.ravel(co.a_syn), 1)
        g = np.ravel(co.k_i) / np.where(np.ravel(co.a_syn) > 0, np.ravel(co.a_syn), 1.0)
        if np.any(np.ravel(co.a_syn) <= 0):
            approx.append("synaptic decay <= 0 per step (dt >= tau_syn)")
        if method == "exact":
            approx.append("exact-convention CubaLIF: Xylo integrates the updated current (Euler order)")
        w_scale = g * np.ravel(co.b_syn) / (1.0 - 2.0 ** (-ds.astype(np.float64)))
        a_syn = np.ravel(co.a_syn)
        steady = np.ravel(co.k_i) * np.ravel(co.b_syn) / np.where(a_syn < 1, 1 - a_syn, np.inf) + np.ravel(
            co.k_x
        )
    else:
        if not allow_approximate:
            raise UnsupportedNode(
                f"{n.type_name} has no synaptic current; {target} always filters its input through one, so it "
                "can only be approximated (ds = 1)",
                node=n.name,
                fix="use CubaLIF/CubaLI, or pass --allow-approximate",
            )
        approx.append(f"{n.type_name} approximated with dash_syn = 1 (input delivered over ~2 steps)")
        ds = np.ones(layer.size, np.int64)
        w_scale = np.ravel(co.k_x)
        a_syn = np.zeros(layer.size)
        steady = np.ravel(co.k_x)
    dm = _dash(np.ravel(co.a_mem), 0)
    bias = np.ravel(co.c) + steady * layer.b_ff
    if np.any(layer.b_ff != 0) and isinstance(n, EXACT_TYPES):
        approx.append("Affine bias mapped to the membrane bias at its steady state (transient differs)")
    w_rec = None if layer.w_rec is None else layer.w_rec * w_scale[:, None]
    err_syn = float(np.max(np.abs(_xylo_decay(ds) - a_syn))) if isinstance(n, EXACT_TYPES) else float("nan")
    err_mem = float(np.max(np.abs(_xylo_decay(dm) - np.ravel(co.a_mem))))
    return _Float(layer, ds, dm, layer.w_ff * w_scale[:, None], w_rec, bias, theta, approx, err_syn, err_mem)


def _check_reset(graph: Graph, target: str, allow_approximate: bool) -> list[str]:
    reset = graph.conventions.reset
    if reset.value == "subtract":
        return []
    what = {
        "zero": "reset to v_reset",
        "subtract-next": "snnTorch's next-step subtraction",
    }[str(reset.value)]
    msg = (
        f"{target} only resets by subtracting the threshold in the firing step; the graph uses {what} "
        f"(reset '{reset.value}', from {reset.source})"
    )
    if not allow_approximate:
        raise ConventionError(
            msg,
            param="reset",
            fix="pass --reset subtract if the model was trained that way, or "
            "--allow-approximate to deploy with Xylo's subtraction anyway",
        )
    return [
        msg + "; deployed with subtraction (--allow-approximate): see the agreement figures in the report"
    ]


def _check_sizes(target: str, variant: str, n_in: int, hidden: list[int], n_out: int) -> None:
    v = VARIANTS[variant]
    problems = []
    if n_in > v.max_in:
        problems.append(f"inputs: {n_in} > {v.max_in}")
    if sum(hidden) > v.max_hidden:
        problems.append(f"hidden neurons: {sum(hidden)} > {v.max_hidden}")
    if n_out > v.max_out:
        problems.append(f"output neurons: {n_out} > {v.max_out}")
    if v.max_ien is not None and hidden and hidden[0] > v.max_ien:
        problems.append(f"input expansion (neurons fed by the inputs): {hidden[0]} > {v.max_ien}")
    if v.max_oen is not None and hidden and hidden[-1] > v.max_oen:
        problems.append(f"output expansion (neurons feeding the readout): {hidden[-1]} > {v.max_oen}")
    if problems:
        raise DoesNotFit(
            "; ".join(problems) + f" on {target}",
            param="limits",
            fix="shrink the network or pick a larger variant (snn-deploy targets)",
        )


def lower(
    graph: Graph,
    *,
    target: str,
    variant: str,
    allow_approximate: bool = False,
    headroom: float = 4.0,
    calibration_peaks: dict[str, np.ndarray] | None = None,
) -> XyloLowering:
    """Map a graph onto a Xylo variant (see the module docstring). ``calibration_peaks`` maps a neuron node to the
    largest |float membrane or Xylo-form current| seen on calibration data, per neuron."""
    v = VARIANTS[variant]
    dt = require_dt(graph)
    method = str(graph.conventions.method.value)
    graph = fold_scales(graph)
    warns = _check_reset(graph, target, allow_approximate)
    layers = layer_stack(graph, target)
    if len(layers) < 2:
        raise UnsupportedNode(f"{target} needs at least one hidden and one output layer", node=layers[0].name)
    hidden, out = layers[:-1], layers[-1]
    if out.w_rec is not None:
        raise UnsupportedNode(f"{target} readout neurons cannot be recurrent", node=out.rec_node)
    n_in = int(graph.inputs[0].shape[0])
    sizes = [lay.size for lay in hidden]
    _check_sizes(target, variant, n_in, sizes, out.size)
    if not v.has_bias and any(np.any(lay.b_ff) or np.any(getattr(lay.neuron, "v_leak", 0)) for lay in layers):
        raise DoesNotFit(
            f"bias: {target} (core v1) has no bias, the graph has Affine biases or v_leak",
            param="bias",
            fix="retrain without bias, or use a v2 variant",
        )
    floats = [_float_layer(lay, dt, method, target, allow_approximate) for lay in layers]
    for f in floats[:-1]:
        if not f.layer.neuron.spiking:
            raise UnsupportedNode(
                f"hidden layer {f.layer.neuron.type_name} does not spike", node=f.layer.name
            )
        if np.any(f.theta <= 0):
            raise UnsupportedNode(
                "v_threshold <= 0 cannot be represented (Xylo fires 31 spikes per step)",
                node=f.layer.name,
                param="v_threshold",
            )
    readout = isinstance(out.neuron, READOUT_TYPES)
    if not readout and np.any(floats[-1].theta <= 0):
        raise UnsupportedNode("v_threshold <= 0 cannot be represented", node=out.name, param="v_threshold")
    for f in floats:
        warns += [f"layer '{f.layer.name}': {a}" for a in f.approx]

    nh = sum(sizes)
    starts = np.cumsum([0] + sizes)[:-1]
    # Hidden population: blocks; input block feeds layer 0; recurrent block holds inter-layer and recurrent weights.
    theta_h = np.concatenate([f.theta for f in floats[:-1]])
    bias_h = np.concatenate([f.bias for f in floats[:-1]])
    cap_h = np.full(nh, I16_MAX / headroom) / np.maximum(theta_h, 1e-300)
    w_in_rows = np.zeros((nh, n_in))
    w_in_rows[: sizes[0]] = floats[0].w_ff
    w_rec_rows = np.zeros((nh, nh))  # [post, pre]
    for k, f in enumerate(floats[:-1]):
        a, b = starts[k], starts[k] + sizes[k]
        if k > 0:
            w_rec_rows[a:b, starts[k - 1] : starts[k - 1] + sizes[k - 1]] = f.w_ff
        if f.w_rec is not None:
            w_rec_rows[a:b, a:b] = f.w_rec
    if calibration_peaks:
        peaks = np.concatenate(
            [np.ravel(calibration_peaks.get(f.layer.name, np.zeros(f.layer.size))) for f in floats[:-1]]
        )
        cap_h = np.where(
            peaks > 0, np.minimum(0.9 * I16_MAX / np.where(peaks > 0, peaks, 1), I16_MAX / 1.0), cap_h
        )
    (sh_in, sh_rec), s_h, _ = search_shifts(
        [[w_in_rows], [w_rec_rows]], _caps(cap_h, theta_h, bias_h), theta_h, MAX_SHIFT
    )

    fo = floats[-1]
    theta_o = fo.theta if not readout else np.ones(out.size)
    cap_o = np.full(out.size, I16_MAX / headroom) / np.maximum(theta_o, 1e-300)
    if calibration_peaks and out.name in calibration_peaks:
        p = np.ravel(calibration_peaks[out.name])
        cap_o = np.where(p > 0, 0.9 * I16_MAX / np.where(p > 0, p, 1), cap_o)
    w_out_rows = np.zeros((out.size, sizes[-1]))
    w_out_rows[:] = fo.w_ff
    (sh_out,), s_o, _ = search_shifts([[w_out_rows]], _caps(cap_o, theta_o, fo.bias), theta_o, MAX_SHIFT)

    w_in = quantise_rows(w_in_rows, s_h, sh_in)[: sizes[0]].T  # (Nin, IEN)
    w_rec = quantise_rows(w_rec_rows, s_h, sh_rec).T  # (pre, post)
    w_out = quantise_rows(w_out_rows, s_o, sh_out).T  # (OEN, Nout)
    thr_h = np.floor(s_h * theta_h) + 1
    thr_o = np.full(out.size, I16_MAX) if readout else np.floor(s_o * fo.theta) + 1
    bias_h_int = np.round(s_h * bias_h).astype(np.int64)
    bias_o_int = np.round(s_o * fo.bias).astype(np.int64)
    for name, arr in (("bias", bias_h_int), ("bias_out", bias_o_int)):
        if np.any(np.abs(arr) > 127):
            raise DoesNotFit(
                f"{name}: |{int(np.max(np.abs(arr)))}| > 127 (int8 bias)",
                param=name,
                fix="reduce v_leak or Affine biases",
            )

    spec = XyloSpec(
        weights_in=np.stack([w_in, np.zeros_like(w_in)], axis=-1),
        weights_rec=np.stack([w_rec, np.zeros_like(w_rec)], axis=-1),
        weights_out=w_out,
        dash_mem=np.concatenate([f.dash_mem for f in floats[:-1]]),
        dash_syn=np.concatenate([f.dash_syn for f in floats[:-1]]),
        dash_syn_2=np.ones(nh, np.int64),  # unused second synapse (no weights); 1 keeps it quiet
        dash_mem_out=fo.dash_mem,
        dash_syn_out=fo.dash_syn,
        threshold=thr_h.astype(np.int64),
        threshold_out=thr_o.astype(np.int64),
        bias=bias_h_int,
        bias_out=bias_o_int,
        weight_shift_in=sh_in,
        weight_shift_rec=sh_rec,
        weight_shift_out=sh_out,
        aliases=[[] for _ in range(nh)],
        version=v.version,
        variant=variant,
    )
    violations = spec.hardware_violations()
    n_rec = int(np.count_nonzero(spec.weights_rec))
    if variant in RECURRENT_BUDGET and n_rec > RECURRENT_BUDGET[variant]:
        violations.append(f"recurrent synapses: {n_rec} > {RECURRENT_BUDGET[variant]} on {variant}")
    if violations:
        raise DoesNotFit(
            "; ".join(violations).replace(f"on {variant}", f"on {target}"),
            param="limits",
            fix="shrink the network or its fan-out",
        )

    maps = []
    for k, f in enumerate(floats[:-1]):
        a, b = starts[k], starts[k] + sizes[k]
        sl = slice(a, b)
        maps.append(
            _layer_map(
                f,
                "hidden",
                int(a),
                k,
                s_h[sl],
                [(w_in_rows[sl], sh_in)] if k == 0 else [(w_rec_rows[sl], sh_rec)],
                thr_h[sl],
                theta_h[sl],
            )
        )
    maps.append(_layer_map(fo, "output", 0, len(hidden), s_o, [(w_out_rows, sh_out)], thr_o, theta_o))
    float_spec = {
        "weights_in": w_in_rows[: sizes[0]].T,
        "weights_rec": w_rec_rows.T,
        "weights_out": w_out_rows.T,
        "threshold": theta_h,
        "threshold_out": theta_o,
        "bias": bias_h,
        "bias_out": fo.bias,
        "dash_mem": spec.dash_mem,
        "dash_syn": spec.dash_syn,
        "dash_syn_2": spec.dash_syn_2,
        "dash_mem_out": spec.dash_mem_out,
        "dash_syn_out": spec.dash_syn_out,
    }
    return XyloLowering(spec, tuple(maps), "Vmem" if readout else "Spike", dt, tuple(warns), float_spec)


def _caps(cap: np.ndarray, theta: np.ndarray, bias: np.ndarray) -> list[np.ndarray]:
    """Per-neuron scale caps: headroom or calibration, int16 threshold, int8 bias."""
    with np.errstate(divide="ignore"):
        thr_cap = np.where(theta > 0, (I16_MAX - 1) / np.where(theta > 0, theta, 1), np.inf)
        bias_cap = np.where(np.abs(bias) > 0, 127.0 / np.where(bias != 0, np.abs(bias), 1), np.inf)
    return [cap, thr_cap, bias_cap]


def _layer_map(f: _Float, kind: str, start: int, latency: int, s: np.ndarray, blocks, thr, theta) -> LayerMap:
    werr = float(np.sqrt(np.mean([relative_error(w, s, sh) ** 2 for w, sh in blocks])))
    with np.errstate(divide="ignore", invalid="ignore"):
        terr = float(np.max(np.abs(thr - 1 - s * theta) / np.where(s * theta > 0, s * theta, 1)))
    return LayerMap(
        node=f.layer.name,
        kind=kind,
        start=start,
        size=f.layer.size,
        latency=latency,
        dash_syn=f.dash_syn,
        dash_mem=f.dash_mem,
        scale=s,
        decay_error_syn=f.err_syn,
        decay_error_mem=f.err_mem,
        weight_rel_error=werr,
        threshold_rel_error=terr,
        approximations=tuple(f.approx),
    )
