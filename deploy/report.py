"""Deployment reports: one schema-versioned JSON document and a human summary.

Fields: ``schema_version``, ``target``, ``model``, ``conventions`` (value and source of dt, method, reset),
``resources`` (used vs limits), ``layers`` (placement, latency, per-layer quantisation error), ``agreement``
(emulator vs float reference on the calibration or random input), ``warnings``, ``passes`` (what each pass did) and
``artefact`` (file hashes). The schema is ``schemas/report.schema.json`` next to this module.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

import numpy as np

SCHEMA_VERSION = "1.0"


def schema() -> dict:
    """The JSON schema every report validates against."""
    return json.loads(resources.files("snn_deploy").joinpath("schemas/report.schema.json").read_text())


def validate(report: dict) -> None:
    import jsonschema

    jsonschema.validate(report, schema())


def raster_agreement(ref: np.ndarray, got: np.ndarray) -> dict[str, float]:
    """How alike two spike-count rasters of equal shape ``(B, T, N)`` are.

    ``overlap``: sum(min(ref, got)) / max(sum ref, sum got) (1 = identical counts at identical steps);
    ``overlap_1step``: the same with each raster's spikes allowed to match the other's within one step (the mean of
    both directions), which separates timing jitter from missing or extra spikes;
    ``count_corr``: Pearson correlation of per-sample, per-neuron totals; ``rate_rel_diff``: |total difference| /
    reference total.
    """
    ref = np.asarray(ref, np.float64)
    got = np.asarray(got, np.float64)
    tot_r, tot_g = ref.sum(), got.sum()
    overlap = float(np.minimum(ref, got).sum() / max(tot_r, tot_g)) if max(tot_r, tot_g) > 0 else 1.0
    near = (
        0.5 * (_within_one(ref, got) + _within_one(got, ref)) / max(tot_r, tot_g)
        if max(tot_r, tot_g) > 0
        else 1.0
    )
    cr, cg = ref.sum(axis=1).ravel(), got.sum(axis=1).ravel()
    corr = (
        float(np.corrcoef(cr, cg)[0, 1])
        if cr.std() > 0 and cg.std() > 0
        else (1.0 if np.array_equal(cr, cg) else 0.0)
    )
    return {
        "reference_spikes": float(tot_r),
        "emulator_spikes": float(tot_g),
        "overlap": overlap,
        "overlap_1step": float(near),
        "count_corr": corr,
        "rate_rel_diff": float(abs(tot_g - tot_r) / tot_r) if tot_r > 0 else float(tot_g > 0),
        # Xylo may fire several spikes in one step where the float model fires one per step: a structural difference
        "multi_spike_fraction": float(np.count_nonzero(got > 1) / max(np.count_nonzero(got), 1)),
    }


def _within_one(a: np.ndarray, b: np.ndarray) -> float:
    """Spikes of ``a`` that ``b`` has within one step (time axis 1)."""
    pad = np.pad(b, ((0, 0), (1, 1), (0, 0)))
    near = pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]
    return float(np.minimum(a, near).sum())


def argmax_agreement(ref: np.ndarray, got: np.ndarray) -> float:
    """Fraction of samples whose readout argmax (over time-summed outputs) agrees: the classification agreement."""
    a = np.asarray(ref).sum(axis=1).argmax(axis=-1)
    b = np.asarray(got).sum(axis=1).argmax(axis=-1)
    return float(np.mean(a == b))


def reference_run(graph, inputs: np.ndarray):
    """The float reference on the agreement input; every part of a deploy report compares with this one run."""
    from snn_deploy.sim.reference import simulate

    return simulate(graph, inputs.astype(np.float32))


def xylo_report(
    graph, lowering, meta: dict, inputs: np.ndarray, ref, input_source: str, model_path: str | None
) -> dict:
    """The deploy report of a Xylo lowering, including emulator-vs-reference agreement on ``inputs`` (B, T, N_in);
    ``ref`` is :func:`reference_run` on the same inputs."""
    from snn_deploy.backends.xylo import _limits
    from snn_deploy.sim import xylo as xylo_sim

    spec = lowering.spec
    out, _, rec = xylo_sim.evolve(spec, inputs, record=True, output_mode=lowering.output_mode)
    out = np.asarray(out)
    lat = max(m.latency for m in lowering.layers)
    t = inputs.shape[1]
    hidden = [m for m in lowering.layers if m.kind == "hidden"]
    emu_spikes = {m.node: np.asarray(rec["Spikes"])[..., m.start : m.start + m.size] for m in hidden}
    layer_agree = compare_layers(ref, emu_spikes, {m.node: m.latency for m in hidden}, inputs.shape[0], t)
    agreement: dict[str, Any] = {"input": input_source, "latency_steps": lat, "layers": layer_agree}
    ref_out = np.asarray(ref.output).reshape(inputs.shape[0], t, -1)[:, : t - lat]
    emu_out = out[:, lat:]
    if lowering.output_mode == "Spike":
        agreement["output"] = raster_agreement(ref_out, emu_out)
    else:
        s = lowering.layers[-1].scale
        a, b = (ref_out * s).ravel(), emu_out.astype(np.float64).ravel()
        agreement["output"] = {
            "vmem_corr": float(np.corrcoef(a, b)[0, 1]) if a.std() > 0 and b.std() > 0 else 0.0
        }
    agreement["output"]["argmax_agreement"] = argmax_agreement(ref_out, emu_out)
    used_rec = int(np.count_nonzero(spec.weights_rec))
    resources_ = {
        "used": {
            "inputs": spec.n_in,
            "hidden": spec.n_hidden,
            "outputs": spec.n_out,
            "input_synapses": int(np.count_nonzero(spec.weights_in)),
            "recurrent_synapses": used_rec,
            "output_synapses": int(np.count_nonzero(spec.weights_out)),
            "max_fan_out": int(
                max(
                    np.count_nonzero(spec.weights_rec, axis=(1, 2)).max(initial=0),
                    np.count_nonzero(spec.weights_out, axis=1).max(initial=0),
                )
            ),
        },
        "limits": _limits(spec.variant),
    }
    layers = [
        {
            "node": m.node,
            "kind": m.kind,
            "range": [m.start, m.start + m.size],
            "latency_steps": m.latency,
            "dash_syn": sorted({int(d) for d in m.dash_syn}),
            "dash_mem": sorted({int(d) for d in m.dash_mem}),
            "decay_error_syn": None if np.isnan(m.decay_error_syn) else m.decay_error_syn,
            "decay_error_mem": m.decay_error_mem,
            "weight_rel_error": m.weight_rel_error,
            "threshold_rel_error": m.threshold_rel_error,
            "scale_range": [float(np.min(m.scale)), float(np.max(m.scale))],
            "approximations": list(m.approximations),
        }
        for m in lowering.layers
    ]
    warnings = list(lowering.warnings)
    return assemble(
        graph,
        meta["target"],
        model_path,
        resources_,
        layers,
        agreement,
        warnings,
        {"weight_shifts": meta["weight_shifts"]},
    )


def assemble(
    graph,
    target: str,
    model_path: str | None,
    resources_: dict,
    layers: list[dict],
    agreement: dict,
    warnings: list[str],
    extra: dict | None = None,
) -> dict:
    """The report document every target writes (plain JSON types only)."""
    report = {
        "schema_version": SCHEMA_VERSION,
        "target": target,
        "model": model_path,
        "conventions": graph.conventions.to_dict(),
        "resources": resources_,
        "layers": layers,
        "agreement": agreement,
        "warnings": list(graph.warnings) + list(warnings),
        "passes": [r.to_dict() for r in graph.history],
        **(extra or {}),
    }
    return json.loads(json.dumps(report, default=_plain))


def compare_layers(
    ref, emu_spikes: dict[str, np.ndarray], latencies: dict[str, int], batch: int, steps: int
) -> dict:
    """Raster agreement of every emulated layer with the float reference, the emulator shifted by its latency."""
    out = {}
    for name, emu in emu_spikes.items():
        lat = latencies[name]
        ref_s = np.asarray(ref.spikes[name]).reshape(batch, steps, -1)
        out[name] = raster_agreement(ref_s[:, : steps - lat], np.asarray(emu)[:, lat:])
    return out


def _plain(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    return str(x)


def print_summary(report: dict, console) -> None:
    """Human summary of a deploy report (rich)."""
    from rich.table import Table

    console.print(
        f"[bold]{report['model']}[/bold] -> [bold]{report['target']}[/bold]  ({report['artefact']['path']})"
    )
    conv = report["conventions"]
    console.print("conventions: " + ", ".join(f"{k}={v['value']} ({v['source']})" for k, v in conv.items()))
    res = Table(title="resources")
    res.add_column("resource")
    res.add_column("used")
    res.add_column("limit")
    for k, v in report["resources"]["used"].items():
        res.add_row(k, str(v), str(report["resources"]["limits"].get(k, "")))
    console.print(res)
    lay = Table(title="layers")
    for col in (
        "node",
        "kind",
        "placement",
        "latency",
        "decays",
        "weight err",
        "threshold err",
        "agreement",
    ):
        lay.add_column(col)
    agree = report["agreement"]
    for m in report["layers"]:
        a = agree["layers"].get(m["node"]) if m["kind"] == "hidden" else agree["output"]
        a_txt = ", ".join(
            f"{k} {v:.3g}"
            for k, v in (a or {}).items()
            if k in ("overlap", "count_corr", "vmem_corr", "argmax_agreement")
        )
        placement = str(m["range"]) if "range" in m else f"netx layer {m.get('netx_layer')}"
        decays = (
            f"dash syn {m['dash_syn']} mem {m['dash_mem']}"
            if "dash_syn" in m
            else f"iDecay {m.get('iDecay')} vDecay {m.get('vDecay')}"
        )
        lay.add_row(
            m["node"],
            m["kind"],
            placement,
            str(m["latency_steps"]),
            decays,
            f"{m['weight_rel_error']:.3g}",
            f"{m['threshold_rel_error']:.3g}",
            a_txt,
        )
    console.print(lay)
    console.print(f"agreement input: {agree['input']}")
    if "timing" in report:
        t = report["timing"]
        console.print(
            f"timing vs the event-exact model ({t['convention']['time_constants']} network, "
            f"{t['samples_checked']} calibration samples): {t['spikes']} spikes, "
            f"{t['matched']} matched, {t['marginal']} marginal, {t['unexplained']} unexplained, {t['missed']} missed"
        )
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}")


def loihi_report(
    graph, lowering, net, meta: dict, inputs: np.ndarray, ref, input_source: str, model_path: str | None
) -> dict:
    """The deploy report of a Loihi lowering; ``net`` is the emulator network read back from the written file,
    ``ref`` is :func:`reference_run` on the same inputs."""
    from snn_deploy.backends.loihi import _limits
    from snn_deploy.sim import loihi as loihi_sim

    trace = loihi_sim.simulate(net, inputs)
    b, t = inputs.shape[:2]
    spiking = [m for m in lowering.layers if not m.readout]
    idx = {m.node: i for i, m in enumerate(lowering.layers)}
    emu = {m.node: trace.s[idx[m.node]] for m in spiking}
    layer_agree = compare_layers(ref, emu, {m.node: m.latency for m in spiking}, b, t)
    last = lowering.layers[-1]
    lat = last.latency
    ref_out = np.asarray(ref.output).reshape(b, t, -1)[:, : t - lat]
    if last.readout:
        emu_out = np.asarray(trace.v[-1])[:, lat:].astype(np.float64)
        a, c = (ref_out * last.scale * 64).ravel(), emu_out.ravel()
        out = {"vmem_corr": float(np.corrcoef(a, c)[0, 1]) if a.std() > 0 and c.std() > 0 else 0.0}
    else:
        emu_out = np.asarray(trace.s[-1])[:, lat:]
        out = dict(layer_agree.pop(last.node))
    out["argmax_agreement"] = argmax_agreement(ref_out, emu_out)
    agreement = {"input": input_source, "latency_steps": lat, "layers": layer_agree, "output": out}
    n_syn = sum(
        int(np.count_nonzero(layer.weight))
        + (int(np.count_nonzero(layer.weight_rec)) if layer.weight_rec is not None else 0)
        for layer in lowering.model.layers
    )
    resources_ = {
        "used": {
            "layers": len(lowering.layers),
            "neurons": int(sum(layer.shape[0] for layer in lowering.model.layers)),
            "synapses": n_syn,
        },
        "limits": _limits(),
    }
    layers = [
        {
            "node": m.node,
            "kind": "output" if i == len(lowering.layers) - 1 else "hidden",
            "netx_layer": i,
            "latency_steps": m.latency,
            "iDecay": m.i_decay,
            "vDecay": m.v_decay,
            "vThMant": m.vth,
            "scale": m.scale,
            "decay_error_syn": m.decay_error_syn,
            "decay_error_mem": m.decay_error_mem,
            "weight_rel_error": m.weight_rel_error,
            "threshold_rel_error": m.threshold_rel_error,
            "weights_clamped": 0,
            "approximations": list(m.approximations),
        }
        for i, m in enumerate(lowering.layers)
    ]
    return assemble(graph, meta["target"], model_path, resources_, layers, agreement, list(lowering.warnings))


def reset_approximation(graph, inputs: np.ndarray, ref, native: str) -> str | None:
    """When a target can only reset one way (``native``) and the graph uses another, say how much that alone
    changes the float model's output on ``inputs``: ``ref`` (:func:`reference_run`) against the float reference
    run with the target's reset."""
    used = str(graph.conventions.reset.value)
    if used == native:
        return None
    from snn_deploy.sim.reference import simulate

    a = np.asarray(ref.output)
    b = np.asarray(simulate(graph, inputs.astype(np.float32), reset=native).output)
    a, b = a.reshape(a.shape[0], a.shape[1], -1), b.reshape(b.shape[0], b.shape[1], -1)
    agree = raster_agreement(a, b)
    return (
        f"reset '{used}' deployed as '{native}': on the agreement input this alone changes the float model's "
        f"output spikes by overlap {agree['overlap']:.3f}, count correlation {agree['count_corr']:.3f}, "
        f"readout argmax agreement {argmax_agreement(a, b):.3f}"
    )


#: calibration samples the timing check runs on (the exact solver costs seconds per sample on a CPU)
TIMING_SAMPLES = 4


def timing_report(graph, target: str, lowering, inputs: np.ndarray) -> dict:
    """The report's timing section: the emulator's spike steps against the event-exact model, teacher-forced, each
    mismatch classified marginal or unexplained (:func:`snn_deploy.sim.timing_graph.timing_section`), on the first
    :data:`TIMING_SAMPLES` calibration samples."""
    from snn_deploy.sim.timing_graph import timing_section

    n = min(TIMING_SAMPLES, inputs.shape[0])
    section = timing_section(graph, target, lowering, inputs[:n])
    section["samples_checked"] = n
    return json.loads(json.dumps(section, default=_plain))
