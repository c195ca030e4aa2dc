"""Quantisation fidelity on Xylo: our per-neuron quantiser vs Rockpool's ``channel_quantize``, same float model.

Both quantisers get the identical float network in Xylo form (``XyloLowering.float_spec``: weights with every gain
folded in, thresholds, biases, dashes); both integer networks run on our bit-exact emulator (equal to XyloSim) on the
same input; each is compared with the float reference simulation of the NIR graph. Printed per model: weight error,
hidden-layer and output spike agreement (overlap within one step, count correlation), and readout argmax agreement.

    python benchmarks/xylo_quantisation.py [--model PATH.nir --reset subtract] [--samples 32 --steps 200]
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")

import snn_deploy as sd  # noqa: E402
from snn_deploy.backends.xylo_lower import lower  # noqa: E402
from snn_deploy.errors import SnnDeployError  # noqa: E402
from snn_deploy.report import argmax_agreement, raster_agreement  # noqa: E402
from snn_deploy.sim import xylo as xylo_sim  # noqa: E402
from snn_deploy.sim.reference import simulate  # noqa: E402
from snn_deploy.sim.xylo_spec import XyloSpec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def rockpool_spec(lowering) -> XyloSpec | str:
    """Rockpool's channel_quantize applied to our float model; a string says why it could not run."""
    from rockpool.transform.quantize_methods import channel_quantize

    f = lowering.float_spec
    q = channel_quantize(**{k: np.array(v, dtype=np.float64) for k, v in f.items()})
    spec = lowering.spec
    try:
        return XyloSpec(
            weights_in=np.asarray(q["weights_in"]).astype(np.int64),
            weights_rec=np.asarray(q["weights_rec"]).astype(np.int64),
            weights_out=np.asarray(q["weights_out"]).astype(np.int64),
            threshold=np.asarray(q["threshold"]).astype(np.int64),
            threshold_out=np.asarray(q["threshold_out"]).astype(np.int64),
            bias=np.asarray(q.get("bias", np.zeros(spec.n_hidden))).astype(np.int64),
            bias_out=np.asarray(q.get("bias_out", np.zeros(spec.n_out))).astype(np.int64),
            dash_mem=spec.dash_mem, dash_syn=spec.dash_syn, dash_syn_2=spec.dash_syn_2,
            dash_mem_out=spec.dash_mem_out, dash_syn_out=spec.dash_syn_out,
            version=spec.version, variant=spec.variant,
        )  # fmt: skip
    except SnnDeployError as e:  # e.g. unclipped weights outside int8: XyloSim would raise TypeError too
        return f"invalid spec: {e}"


def fidelity(graph, lowering, spec: XyloSpec, x: np.ndarray, ref) -> dict:
    out, _, rec = xylo_sim.evolve(spec, x, output_mode=lowering.output_mode)
    b, t = x.shape[:2]
    res = {}
    for m in lowering.layers:
        if m.kind == "hidden":
            r = np.asarray(ref.spikes[m.node]).reshape(b, t, -1)[:, : t - m.latency]
            e = np.asarray(rec["Spikes"])[:, m.latency :, m.start : m.start + m.size]
            res[m.node] = raster_agreement(r, e)
    lat = lowering.layers[-1].latency
    r = np.asarray(ref.output).reshape(b, t, -1)[:, : t - lat]
    e = np.asarray(out)[:, lat:]
    res["output"] = raster_agreement(r, e) if lowering.output_mode == "Spike" else {}
    res["output"]["argmax_agreement"] = argmax_agreement(r, e)
    return res


def models(args) -> list[tuple[str, Path, dict]]:
    if args.model:
        return [(Path(args.model).stem, Path(args.model), {"reset": args.reset, "dt": args.dt})]
    out = []
    for p in sorted((ROOT / "examples").glob("*/*.nir")):
        out.append((p.stem, p, {}))
    braille = ROOT.parent / "shared" / "nir-zoo" / "braille_noDelay_noBias_subtract.nir"
    if braille.exists():
        out.append(("braille (NIR paper)", braille, {"reset": "subtract"}))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model")
    ap.add_argument("--reset", default="subtract")
    ap.add_argument("--dt", type=float, default=None)
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--rate", type=float, default=0.1)
    ap.add_argument(
        "--input", help="an .npz with 'input' counts (B, T, N_in) to use instead of random spikes"
    )
    args = ap.parse_args()
    rows = []
    for name, path, conv in models(args):
        graph = sd.load(path, **{k: v for k, v in conv.items() if v is not None})
        low = lower(graph, target="xylo", variant="syns61201")
        n_in = low.spec.n_in
        if args.input:
            x = np.load(args.input)["input"].astype(np.int32)
        else:
            x = (np.random.default_rng(0).random((args.samples, args.steps, n_in)) < args.rate).astype(
                np.int32
            )
        ref = simulate(graph, x.astype(np.float32))
        ours = fidelity(graph, low, low.spec, x, ref)
        theirs_spec = rockpool_spec(low)
        theirs = (
            fidelity(graph, low, theirs_spec, x, ref) if isinstance(theirs_spec, XyloSpec) else theirs_spec
        )
        rows.append((name, ours, theirs))
    source = (
        args.input or f"Bernoulli({args.rate}) spikes, {args.samples} samples x {args.steps} steps, seed 0"
    )
    print(
        f"input: {source}; agreement with the float reference (overlap within 1 step / count corr / argmax)"
    )
    for name, ours, theirs in rows:
        print(f"\n== {name}")
        for key in ours:
            o = ours[key]
            line = f"  {key:>12}  ours: {o.get('overlap_1step', float('nan')):.3f} / {o.get('count_corr', float('nan')):.3f}"
            if key == "output":
                line += f" / {o['argmax_agreement']:.3f}"
            if isinstance(theirs, dict):
                t = theirs[key]
                line += (
                    f"   rockpool channel_quantize: {t.get('overlap_1step', float('nan')):.3f} / "
                    f"{t.get('count_corr', float('nan')):.3f}"
                )
                if key == "output":
                    line += f" / {t['argmax_agreement']:.3f}"
            else:
                line += f"   rockpool channel_quantize: {theirs}"
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
