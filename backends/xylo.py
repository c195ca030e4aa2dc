"""SynSense Xylo target: limits, lowering (xylo_lower), artefact read/write, emulator.

Artefact directory ``MODEL.xylo/``:
- ``spec.npz``: exactly the keyword arguments of Rockpool's ``XyloSim.from_specification`` except ``aliases``:
  ``XyloSim.from_specification(**dict(np.load("spec.npz")))`` runs it unchanged.
- ``xylo.json``: variant, core version, dt, conventions, which NIR node maps to which hidden/output range, latency
  per layer in steps, quantisation scales, aliases, output mode.
- ``report.json``: see :mod:`snn_deploy.report`.
- ``samna_config.json`` only when samna is importable (not on machines without the SDK).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snn_deploy.artefact import atomic_directory, json_bytes, npz_bytes, write_files
from snn_deploy.backends import Target, register
from snn_deploy.errors import ArtefactError
from snn_deploy.graph import Graph
from snn_deploy.sim.xylo_spec import VARIANTS, XyloSpec

from .xylo_lower import XyloLowering, lower

ARTEFACT_VERSION = 1
SPEC_KEYS = (
    "weights_in", "weights_rec", "weights_out", "dash_mem", "dash_syn", "dash_syn_2", "dash_mem_out", "dash_syn_out",
    "threshold", "threshold_out", "bias", "bias_out", "weight_shift_in", "weight_shift_rec", "weight_shift_out",
)  # fmt: skip

#: target name -> Rockpool sub-package (chip)
XYLO_TARGETS = {
    "xylo-audio2": "syns61201",
    "xylo-imu": "syns63300",
    "xylo-audio3": "syns65302",
    "xylo-v1": "syns61300",
}


@dataclass(frozen=True)
class XyloArtefact:
    """A deployed Xylo network read back from its directory."""

    spec: XyloSpec
    meta: dict[str, Any]
    path: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> XyloArtefact:
        """Read ``spec.npz`` + ``xylo.json`` (aliases and variant live in the JSON)."""
        path = Path(path)
        spec_file, meta_file = path / "spec.npz", path / "xylo.json"
        if not spec_file.is_file() or not meta_file.is_file():
            raise ArtefactError(
                "not a Xylo artefact directory (needs spec.npz and xylo.json)",
                file=str(path),
                fix="deploy with snn-deploy --target xylo MODEL.nir",
            )
        meta = json.loads(meta_file.read_text())
        with np.load(spec_file, allow_pickle=False) as z:
            kw = {k: z[k] for k in SPEC_KEYS if k in z}
        for k in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
            kw[k] = int(kw[k])
        spec = XyloSpec(**kw, aliases=meta.get("aliases"), version=meta["version"], variant=meta["variant"])
        return cls(spec, meta, path)


def spec_arrays(spec: XyloSpec) -> dict[str, np.ndarray]:
    """The ``from_specification`` keyword arrays, with int8 weights and int16 thresholds/biases as the chip has them."""
    kw = spec.from_specification_kwargs()
    out: dict[str, np.ndarray] = {}
    for k in SPEC_KEYS:
        v = np.asarray(kw[k])
        if k.startswith("weights_"):
            v = v.astype(np.int8)
        elif k.startswith(("threshold", "bias")):
            v = v.astype(np.int16)
        elif k.startswith("dash"):
            v = v.astype(np.uint8)
        else:
            v = np.asarray(int(v), dtype=np.int64)
        out[k] = v
    return out


def xylo_meta(graph: Graph, lowering: XyloLowering, target: str) -> dict[str, Any]:
    spec = lowering.spec
    return {
        "artefact_version": ARTEFACT_VERSION,
        "target": target,
        "variant": spec.variant,
        "version": spec.version,
        "dt": lowering.dt,
        "conventions": graph.conventions.to_dict(),
        "output_mode": lowering.output_mode,
        "aliases": [list(a) for a in spec.aliases],
        "n_inputs": spec.n_in,
        "n_hidden": spec.n_hidden,
        "n_outputs": spec.n_out,
        "layers": [
            {
                "node": m.node,
                "kind": m.kind,
                "range": [m.start, m.start + m.size],
                "latency_steps": m.latency,
                "scale": m.scale,
                "dash_syn": m.dash_syn,
                "dash_mem": m.dash_mem,
            }
            for m in lowering.layers
        ],
        "weight_shifts": {
            "in": spec.weight_shift_in,
            "rec": spec.weight_shift_rec,
            "out": spec.weight_shift_out,
        },
    }


def _samna_files(spec: XyloSpec) -> dict[str, bytes]:
    """A samna configuration, when samna is importable (import-guarded: samna is closed source, not on PyPI)."""
    try:
        import samna  # noqa: F401
        from rockpool.devices.xylo.syns61201 import (
            config_from_specification,  # pragma: no cover - needs samna
        )
    except ImportError:
        return {}
    config, ok, msg = config_from_specification(**spec.from_specification_kwargs())  # pragma: no cover
    if not ok:  # pragma: no cover
        raise ArtefactError(f"samna rejected the configuration: {msg}")
    return {"samna_config.json": config.to_json().encode()}  # pragma: no cover


def deploy(
    graph: Graph,
    out_dir: Path,
    *,
    target: str,
    calibration: str | None = None,
    allow_approximate: bool = False,
    model_path: str | None = None,
    **_: Any,
) -> dict:
    """Lower, emulate, compare with the float reference, and write the artefact directory atomically."""
    from snn_deploy.inputs import calibration_counts
    from snn_deploy.report import reference_run, reset_approximation, timing_report, xylo_report

    variant = XYLO_TARGETS[target]
    inputs, input_source = calibration_counts(graph, calibration)
    # Calibration scales need the float run before lowering; otherwise run it after, once the network fits.
    ref = reference_run(graph, inputs) if calibration else None
    peaks = _calibration_peaks(graph, ref) if ref is not None else None
    lowering = lower(
        graph, target=target, variant=variant, allow_approximate=allow_approximate, calibration_peaks=peaks
    )
    ref = ref if ref is not None else reference_run(graph, inputs)
    meta = xylo_meta(graph, lowering, target)
    report = xylo_report(graph, lowering, meta, inputs, ref, input_source, model_path)
    if (effect := reset_approximation(graph, inputs, ref, "subtract")) is not None:
        report["warnings"].append(effect)
    if calibration is not None:
        report["timing"] = timing_report(graph, "xylo", lowering, inputs)
    files = {"spec.npz": npz_bytes(spec_arrays(lowering.spec)), "xylo.json": json_bytes(meta)}
    files.update(_samna_files(lowering.spec))
    with atomic_directory(out_dir) as tmp:
        hashes = write_files(tmp, files)
        report["artefact"] = {"path": str(out_dir), "sha256": hashes}
        write_files(tmp, {"report.json": json_bytes(report)})
    return report


def _calibration_peaks(graph: Graph, res: Any) -> dict[str, np.ndarray]:
    """Largest |membrane| and |current in Xylo form| per neuron in the float reference run ``res`` on the
    calibration input."""
    from snn_deploy.discretize import step_coefficients

    peaks = {}
    dt, method = float(graph.conventions.dt.value), str(graph.conventions.method.value)
    for name, v in res.v.items():
        p = np.max(np.abs(np.asarray(v)), axis=(0, 1))
        if name in res.i:
            co = step_coefficients(graph.node(name), dt, method)
            g = np.ravel(co.k_i) / np.where(np.ravel(co.a_syn) > 0, np.ravel(co.a_syn), 1.0)
            p = np.maximum(p, np.max(np.abs(np.asarray(res.i[name])), axis=(0, 1)) * np.abs(g))
        peaks[name] = np.ravel(p)
    return peaks


def _limits(variant: str) -> dict[str, Any]:
    v = VARIANTS[variant]
    lim = {
        "inputs": v.max_in,
        "hidden": v.max_hidden,
        "outputs": v.max_out,
        "synapses_per_neuron": v.n_syn,
        "weight_bits": 8,
        "threshold_bits": 16,
        "dash": "0..15",
        "weight_shift": "0..7",
        "bias": v.has_bias,
    }
    if v.max_ien:
        lim["input_expansion"] = v.max_ien
        lim["output_expansion"] = v.max_oen
    if v.max_fanout:
        lim["fan_out"] = v.max_fanout
    return lim


_DESCRIPTIONS = {
    "xylo-audio2": "SynSense XyloAudio 2 (syns61201, core v2)",
    "xylo-imu": "SynSense XyloIMU (syns63300, core v2, 1 synapse per neuron)",
    "xylo-audio3": "SynSense XyloAudio 3 (syns65302, core v2)",
    "xylo-v1": "Xylo core v1 (syns61300, no bias)",
}

for _name, _variant in XYLO_TARGETS.items():
    register(
        Target(
            name=_name,
            description=_DESCRIPTIONS[_name],
            limits=_limits(_variant),
            deploy=lambda graph, out_dir, _t=_name, **kw: deploy(graph, Path(out_dir), target=_t, **kw),
            aliases=("xylo",) if _name == "xylo-audio2" else (),
        )
    )
