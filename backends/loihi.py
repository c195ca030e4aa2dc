"""Intel Loihi 2 target through lava-dl netx HDF5 (targets/loihi.md): limits, lowering, artefact, emulator.

Mapping (forward-Euler order, loihi.md section 5.1), per layer of the graph's layer stack, from the per-step
coefficients of :func:`snn_deploy.discretize.step_coefficients`:

- ``iDecay = round(4096 (1 - a_syn))`` (CubaLIF/CubaLI), ``4096`` for LIF/LI/IF (Lava then clears ``u`` every step,
  so ``u`` is this step's input: exact); ``vDecay = round(4096 (1 - a_mem))``.
- Lava's ``u`` stands for ``g * i`` with ``g = k_i / a_syn`` (``dt/tau_mem * r`` in euler); the file weight is
  ``round(K g b_syn W)`` (CubaLIF) or ``round(K k_x W)`` (LIF), the bias ``round(K c)`` (``v_leak``) plus the
  Affine bias's membrane drive (exact for LIF; its steady state for CubaLIF, with a warning), the threshold
  ``vThMant = round(K v_threshold)``. One integer scale ``K`` per layer, the largest that keeps every weight
  (forward and recurrent: netx gives them one exponent) in [-128, 127], ``vThMant <= 131071`` and
  ``|bias| <= 4095``: no weight is clamped, ever; the report gives each layer's weight and threshold error.
- Shared neuron parameters: ``iDecay``, ``vDecay`` and ``vThMant`` are one value per netx layer; a layer whose
  neurons differ is refused with an error naming the parameter and its range.
- Reset: Lava sets ``v = 0``: ``zero`` reset with ``v_reset = 0`` is exact; subtraction is approximated only with
  ``--allow-approximate``.
- Latency: every dense layer adds one step: layer k (0-based) spikes ``k + 1`` steps after the float model.

Artefact directory ``MODEL.loihi2/``: ``network.net`` (netx HDF5), ``loihi.json``, ``report.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snn_deploy.artefact import atomic_directory, json_bytes, write_files
from snn_deploy.backends import Target, register
from snn_deploy.discretize import step_coefficients
from snn_deploy.errors import ArtefactError, ConventionError, DoesNotFit, UnsupportedNode
from snn_deploy.graph import Graph
from snn_deploy.infer import require_dt
from snn_deploy.layers import Layer, layer_stack
from snn_deploy.nodes import LI, CubaLI, CubaLIF, Integrator
from snn_deploy.passes import fold_scales

from .loihi_netx import NetxLayer, NetxModel, NetxNeuron, read_netx, to_loihi_network, write_netx

TARGET = "loihi2"
VTH_MAX = 131071  # 17-bit threshold mantissa
BIAS_MAX = 4095  # 13-bit bias mantissa
W_MAX = 127  # MIXED 8-bit weights, exactly representable


@dataclass(frozen=True)
class LoihiLayerMap:
    node: str
    latency: int
    scale: float
    i_decay: int
    v_decay: int
    vth: int
    weight_rel_error: float
    threshold_rel_error: float
    decay_error_syn: float | None
    decay_error_mem: float
    readout: bool
    approximations: tuple[str, ...]


@dataclass(frozen=True)
class LoihiLowering:
    model: NetxModel
    layers: tuple[LoihiLayerMap, ...]
    dt: float
    warnings: tuple[str, ...]


def _uniform(node: str, name: str, values: np.ndarray) -> float:
    v = np.ravel(values)
    if not np.allclose(v, v[0], rtol=1e-9, atol=0.0):
        raise UnsupportedNode(
            f"{name} differs between neurons ({v.min():.6g}..{v.max():.6g}); a netx layer shares one value",
            node=node,
            param=name,
            fix="split the layer by parameter value, or make the parameter uniform",
        )
    return float(v[0])


def _lower_layer(
    layer: Layer, k: int, dt: float, method: str, allow_approximate: bool
) -> tuple[NetxLayer, LoihiLayerMap]:
    n = layer.neuron
    if isinstance(n, (Integrator,)) or (not n.spiking and not isinstance(n, (LI, CubaLI))):
        raise UnsupportedNode(f"{n.type_name} cannot be mapped to a Loihi CUBA neuron", node=n.name)
    co = step_coefficients(n, dt, method)
    approx: list[str] = []
    cuba = isinstance(n, (CubaLIF, CubaLI))
    if cuba:
        a_syn = _uniform(n.name, "synaptic decay", co.a_syn)
        i_decay = int(round(4096 * (1.0 - a_syn)))
        g = np.ravel(co.k_i) / a_syn if a_syn > 0 else np.ravel(co.k_x)
        w_gain = g * np.ravel(co.b_syn)
        if method == "exact":
            approx.append("exact-convention CubaLIF: Lava integrates the updated current (Euler order)")
        drive = np.ravel(co.k_i) * np.ravel(co.b_syn) / max(1.0 - a_syn, 1e-300) + np.ravel(co.k_x)
        if np.any(layer.b_ff):
            approx.append("Affine bias mapped to the membrane bias at its steady state (transient differs)")
        err_syn = abs((1.0 - i_decay / 4096) - a_syn)
    else:
        i_decay = 4096  # du = 4095: u holds only this step's input
        w_gain = np.ravel(co.k_x)
        drive = np.ravel(co.k_x)
        err_syn = None
    a_mem = _uniform(n.name, "membrane decay", co.a_mem)
    if a_mem < 0:
        raise ConventionError(
            f"membrane decay {a_mem:.3g} < 0 per step (dt > tau_mem)",
            node=n.name,
            fix="use a smaller --dt or --method exact",
        )
    v_decay = int(round(4096 * (1.0 - a_mem)))
    readout = not n.spiking
    theta = 1.0 if readout else _uniform(n.name, "v_threshold", n.v_threshold)
    if not readout:
        if np.any(np.ravel(n.v_reset) != 0):
            raise UnsupportedNode("v_reset != 0: Loihi resets v to 0", node=n.name, param="v_reset")
        if theta <= 0:
            raise UnsupportedNode("v_threshold <= 0 cannot be represented", node=n.name, param="v_threshold")
    w = layer.w_ff * w_gain[:, None]
    w_rec = None if layer.w_rec is None else layer.w_rec * w_gain[:, None]
    bias = np.ravel(co.c) + drive * layer.b_ff
    wmax = max(np.max(np.abs(w)), np.max(np.abs(w_rec)) if w_rec is not None else 0.0)
    if wmax == 0:
        raise UnsupportedNode(
            "all weights are zero (netx cannot encode an all-zero matrix)", node=layer.ff_node
        )
    caps = [W_MAX / wmax, VTH_MAX / theta]
    if np.any(bias):
        caps.append(BIAS_MAX / np.max(np.abs(bias)))
    scale = float(min(caps))
    q = np.round(w * scale).astype(np.int64)
    q_rec = None if w_rec is None else np.round(w_rec * scale).astype(np.int64)
    vth = VTH_MAX if readout else max(1, int(round(theta * scale)))
    q_bias = np.round(bias * scale).astype(np.int64)
    ideal = np.concatenate([np.ravel(w), np.ravel(w_rec) if w_rec is not None else []]) * scale
    got = np.concatenate([np.ravel(q), np.ravel(q_rec) if q_rec is not None else []])
    werr = float(np.linalg.norm(got - ideal) / np.linalg.norm(ideal))
    terr = 0.0 if readout else abs(vth - theta * scale) / (theta * scale)
    netx_layer = NetxLayer(
        kind="dense_rec" if q_rec is not None else "dense",
        shape=(layer.size,),
        weight=q,
        weight_rec=q_rec,
        bias=q_bias if np.any(q_bias) else None,
        neuron=NetxNeuron(i_decay, v_decay, vth),
    )
    lmap = LoihiLayerMap(
        n.name,
        k + 1,
        scale,
        i_decay,
        v_decay,
        vth,
        werr,
        terr,
        err_syn,
        abs((1.0 - v_decay / 4096) - a_mem),
        readout,
        tuple(approx),
    )
    return netx_layer, lmap


def lower(graph: Graph, *, allow_approximate: bool = False) -> LoihiLowering:
    """Map the graph's layer stack to netx layers (see the module docstring)."""
    dt = require_dt(graph)
    method = str(graph.conventions.method.value)
    graph = fold_scales(graph)
    warns: list[str] = []
    reset = graph.conventions.reset
    if reset.value != "zero":
        msg = (
            f"Loihi resets v to 0; the graph uses reset '{reset.value}' (from {reset.source}), which Lava's "
            "CUBA neuron cannot do"
        )
        if not allow_approximate:
            raise ConventionError(
                msg,
                param="reset",
                fix="pass --reset zero if the model was trained that way, or "
                "--allow-approximate to deploy with reset to zero anyway",
            )
        warns.append(msg + "; deployed with reset to zero (--allow-approximate): see the agreement figures")
    layers = layer_stack(graph, TARGET)
    for lay in layers[:-1]:
        if not lay.neuron.spiking:
            raise UnsupportedNode(f"hidden layer {lay.neuron.type_name} does not spike", node=lay.name)
    lowered = [_lower_layer(lay, k, dt, method, allow_approximate) for k, lay in enumerate(layers)]
    for _, m in lowered:
        warns += [f"layer '{m.node}': {a}" for a in m.approximations]
    attrs = {"snn_deploy_dt": dt, "snn_deploy_method": method, "snn_deploy_latency": len(layers)}
    model = NetxModel(tuple(layer for layer, _ in lowered), attrs)
    return LoihiLowering(model, tuple(m for _, m in lowered), dt, tuple(warns))


def loihi_meta(graph: Graph, lowering: LoihiLowering) -> dict[str, Any]:
    return {
        "artefact_version": 1,
        "target": TARGET,
        "dt": lowering.dt,
        "conventions": graph.conventions.to_dict(),
        "n_inputs": int(graph.inputs[0].shape[0]),
        "layers": [
            {
                "node": m.node,
                "netx_layer": i,
                "latency_steps": m.latency,
                "scale": m.scale,
                "iDecay": m.i_decay,
                "vDecay": m.v_decay,
                "vThMant": m.vth,
                "readout": m.readout,
            }
            for i, m in enumerate(lowering.layers)
        ],
    }


def deploy(
    graph: Graph,
    out_dir: Path,
    *,
    calibration: str | None = None,
    allow_approximate: bool = False,
    model_path: str | None = None,
    **_: Any,
) -> dict:
    """Lower, write ``network.net``, read it back as Lava would, emulate, compare, write the directory atomically."""
    from snn_deploy.inputs import calibration_counts
    from snn_deploy.report import loihi_report, reference_run, reset_approximation, timing_report

    inputs, source = calibration_counts(graph, calibration)
    lowering = lower(graph, allow_approximate=allow_approximate)
    meta = loihi_meta(graph, lowering)
    with atomic_directory(out_dir) as tmp:
        write_netx(lowering.model, tmp / "network.net")
        net = to_loihi_network(read_netx(tmp / "network.net"))  # what netx builds from the file we wrote
        ref = reference_run(graph, inputs)
        report = loihi_report(graph, lowering, net, meta, inputs, ref, source, model_path)
        if (effect := reset_approximation(graph, inputs, ref, "zero")) is not None:
            report["warnings"].append(effect)
        if calibration is not None:
            report["timing"] = timing_report(graph, "loihi2", lowering, inputs)
        hashes = write_files(tmp, {"loihi.json": json_bytes(meta)})
        from snn_deploy.artefact import sha256

        hashes["network.net"] = sha256((tmp / "network.net").read_bytes())
        report["artefact"] = {"path": str(out_dir), "sha256": dict(sorted(hashes.items()))}
        write_files(tmp, {"report.json": json_bytes(report)})
    return report


def load_artefact(path: str | Path) -> tuple[Any, dict]:
    """``(LoihiNetwork, meta)`` from an artefact directory or a bare ``.net`` file (meta empty then)."""
    path = Path(path)
    net_file = path / "network.net" if path.is_dir() else path
    if not net_file.is_file():
        raise ArtefactError(
            "no netx file (network.net) here",
            file=str(path),
            fix="deploy with snn-deploy --target loihi2 MODEL.nir",
        )
    meta_file = net_file.parent / "loihi.json"
    meta = json.loads(meta_file.read_text()) if path.is_dir() and meta_file.is_file() else {}
    return to_loihi_network(read_netx(net_file)), meta


def _limits() -> dict[str, Any]:
    return {
        "weight_bits": 8,
        "threshold_mantissa": VTH_MAX,
        "bias_mantissa": BIAS_MAX,
        "decay": "0..4096",
        "reset": "zero",
        "layer_parameters": "shared per layer",
    }


register(
    Target(
        name=TARGET,
        description="Intel Loihi 2 via lava-dl netx HDF5 (Lava 0.10 CUBA fixed-point)",
        limits=_limits(),
        deploy=lambda graph, out_dir, **kw: deploy(graph, Path(out_dir), **kw),
        aliases=("loihi",),
    )
)

__all__ = ["DoesNotFit", "LoihiLowering", "deploy", "load_artefact", "lower"]
