"""Regenerate the Loihi golden traces in this folder with Lava 0.10 (needs ``.lava-venv``).

    python tests/golden/make_loihi_golden.py [--nir-lif-dir PATH/TO/NIR/paper/01_lif]

* ``loihi_golden_<name>.npz``: a network (the driver's ``"net"`` job format under ``j0/``, see
  deploy/lava_driver.py) and Lava's per-layer ``L{k}/{u,v,s}`` traces, ``(T, N)`` int32, row t = end of step
  t + 1. The networks are ``tests.lava_ref.random_case(seed, regimes, steps)`` with the fixed arguments in
  ``CASES`` below.
* ``loihi_nir_paper_lif.npz``: the NIR paper's LIF test (neuromorphs/NIR ``paper/01_lif``, files
  ``lif_lava_cpu_fixed.csv`` and ``lif_lava_loihi_fixed.csv``: columns input, v, spike; the chip file was
  recorded on a Loihi 2 chip). Stored as ``input``, ``v_cpu``, ``s_cpu``, ``v_chip``, ``s_chip``. With
  ``--nir-lif-dir`` the CSVs are (re)imported; either way the script checks that Lava 0.10 reproduces the
  CPU columns for ``Dense([[10]]) -> LIF(du=4095, dv=163, vth=25)``.

Outputs are written with ``np.savez_compressed``; the script is deterministic.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from tests.lava_ref import NetJob, encode_net, random_case, run_lava  # noqa: E402

# Seeds chosen so that every layer spikes (and "stress" saturates v and wraps u).
CASES = {
    "stress": (12, frozenset({"saturate", "low_bits", "du_edge", "bias_exp"}), 200),
    "negexp_signmode": (119, frozenset({"neg_exp", "sign_mode", "skip", "du_edge"}), 150),
    "recurrent_delays_reset": (6, frozenset({"recurrent", "delays", "reset", "du_edge"}), 150),
    "graded_direct": (6, frozenset({"graded", "direct", "recurrent", "bias_exp"}), 150),
}


def _nir_lif_job(inp: np.ndarray) -> NetJob:
    from snn_deploy.sim.loihi import DenseParams, LifParams, LoihiNetwork, Projection

    lif = LifParams(1, du=4095, dv=163, vth=25)
    net = LoihiNetwork(1, (lif,), (Projection(-1, 0, DenseParams(np.array([[10]]))),))
    return NetJob(net, inp.astype(np.int32)[:, None])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--nir-lif-dir", type=Path, help="NIR checkout's paper/01_lif folder (to import the CSVs)"
    )
    args = ap.parse_args(argv)

    jobs = {name: random_case(seed, regimes, steps) for name, (seed, regimes, steps) in CASES.items()}
    nir_path = HERE / "loihi_nir_paper_lif.npz"
    if args.nir_lif_dir:
        cpu = np.loadtxt(args.nir_lif_dir / "lif_lava_cpu_fixed.csv", delimiter=",")
        chip = np.loadtxt(args.nir_lif_dir / "lif_lava_loihi_fixed.csv", delimiter=",")
        if not np.array_equal(cpu[:, 0], chip[:, 0]):
            raise SystemExit("the CPU and chip CSVs have different inputs")
        nir = {
            "input": cpu[:, 0].astype(np.int8),
            "v_cpu": cpu[:, 1].astype(np.int32),
            "s_cpu": cpu[:, 2].astype(np.int32),
            "v_chip": chip[:, 1].astype(np.int32),
            "s_chip": chip[:, 2].astype(np.int32),
        }
    else:
        with np.load(nir_path) as z:
            nir = {k: z[k] for k in z.files}
    jobs["_nir_lif"] = _nir_lif_job(nir["input"])

    results = dict(zip(jobs, run_lava(list(jobs.values())), strict=True))
    lava_nir = results.pop("_nir_lif")
    jobs.pop("_nir_lif")
    if not (
        np.array_equal(lava_nir.v[0][:, 0], nir["v_cpu"])
        and np.array_equal(lava_nir.s[0][:, 0], nir["s_cpu"])
    ):
        raise SystemExit("Lava 0.10 does not reproduce the NIR paper's CPU CSV")
    np.savez_compressed(nir_path, **nir)
    print(f"wrote {nir_path.name} (Lava 0.10 reproduces the CPU CSV)")

    for name, job in jobs.items():
        res = results[name]
        arrays = encode_net(job)
        for k in range(len(res.u)):
            arrays[f"L{k}/u"], arrays[f"L{k}/v"], arrays[f"L{k}/s"] = res.u[k], res.v[k], res.s[k]
        path = HERE / f"loihi_golden_{name}.npz"
        np.savez_compressed(path, **arrays)
        spikes = [int(s.sum()) for s in res.s]
        print(f"wrote {path.name}: layers {[lp.size for lp in job.net.layers]}, spikes per layer {spikes}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
