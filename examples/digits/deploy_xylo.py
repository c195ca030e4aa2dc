"""The README's main job: deploy the project's digits model to XyloAudio 2 and measure what the chip would do.

Steps (each a real `snn-deploy` command, printed before it runs):
1. encode the 540 test digits (rate code, 32 steps) into ``out/digits/test_input.npz`` (integer spike counts);
2. ``snn-deploy --target xylo examples/digits/digits.nir --calibration ...`` writes ``out/digits/digits.xylo/``
   (``spec.npz`` for Rockpool's ``XyloSim.from_specification``, ``xylo.json``, ``report.json``);
3. ``snn-deploy simulate out/digits/digits.xylo --input ...`` runs our bit-exact emulator on every test digit;
4. decodes the 8 output neurons with the model's output code and prints the float and the Xylo test accuracy;
5. when Rockpool's XyloSim is installed, runs the artefact on it (the stand-in for a board) and checks bit-exactness.

Usage: python examples/digits/deploy_xylo.py [--out out/digits]
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

from digits import READOUT, rate_code, split  # noqa: E402


def run(cmd: list[str]) -> None:
    print("$ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True)


def accuracy(counts: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean((counts.sum(axis=1) @ READOUT.T).argmax(axis=1) == labels))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "digits")
    ap.add_argument(
        "--model", type=Path, default=HERE / "digits.nir", help="a digits model (default: the committed one)"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    snn = [str(Path(sys.executable).with_name("snn-deploy"))]
    if not Path(snn[0]).exists():
        snn = [sys.executable, "-m", "snn_deploy.cli"]

    _, x_te, _, y_te = split()
    spikes = rate_code(x_te).astype(np.int32)  # (540, 32, 16), 0/1 per step
    test_input = args.out / "test_input.npz"
    np.savez(test_input, input=spikes)
    model = args.model
    artefact = args.out / "digits.xylo"
    run([*snn, "--target", "xylo", str(model), "--calibration", str(test_input), "-o", str(artefact)])
    emu_out = args.out / "xylo_output.npz"
    run([*snn, "simulate", str(artefact), "--input", str(test_input), "-o", str(emu_out)])
    float_out = args.out / "float_output.npz"
    run([*snn, "simulate", str(model), "--input", str(test_input), "-o", str(float_out)])

    report = json.loads((artefact / "report.json").read_text())
    latency = report["agreement"]["latency_steps"]
    with np.load(emu_out) as z:
        xylo_counts = z["output"]
    with np.load(float_out) as z:
        float_counts = z["output"]
    acc_float = accuracy(float_counts, y_te)
    acc_xylo = accuracy(xylo_counts, y_te)
    # Xylo's readout lags the float model by `latency` steps; the same decision with the lag compensated:
    padded = np.concatenate([spikes, np.zeros((spikes.shape[0], latency, 16), np.int32)], axis=1)
    np.savez(args.out / "test_input_padded.npz", input=padded)
    run([*snn, "simulate", str(artefact), "--input", str(args.out / "test_input_padded.npz"), "-o",
         str(args.out / "xylo_output_padded.npz")])  # fmt: skip
    with np.load(args.out / "xylo_output_padded.npz") as z:
        acc_xylo_lag = accuracy(z["output"][:, latency:], y_te)

    print()
    print(f"digits test set: {len(y_te)} samples, 32 steps each; output latency on Xylo: {latency} step(s)")
    print(f"  float reference accuracy          {acc_float:.4f}")
    print(f"  Xylo emulator accuracy            {acc_xylo:.4f}")
    print(f"  Xylo, {latency} extra step(s) to drain  {acc_xylo_lag:.4f}")
    out_agree = report["agreement"]["output"]
    print(f"  output spikes agreement with the float model: overlap within 1 step {out_agree['overlap_1step']:.3f}, "
          f"count correlation {out_agree['count_corr']:.3f}")  # fmt: skip

    try:
        from snn_deploy.backends.xylo import XyloArtefact
        from snn_deploy.hil import DeviceUnavailable, XyloSimDevice, validate_xylo

        art = XyloArtefact.load(artefact)
        checks = [validate_xylo(art, spikes[i], XyloSimDevice()) for i in range(8)]
        exact = all(c["bit_exact"] for c in checks)
        print(f"  XyloSim (Rockpool) on 8 test digits: {'bit-exact' if exact else 'MISMATCH'} with our emulator "
              f"({', '.join(sorted(checks[0]['mismatches']))})")  # fmt: skip
        if not exact:
            return 1
    except DeviceUnavailable as e:
        print(f"  XyloSim check skipped: {e}")
    print(f"\nartefact: {artefact} (spec.npz, xylo.json, report.json)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
