"""Generate the Xylo golden traces with the vendor simulator (Rockpool 3.1.0 XyloSim / xylosim 0.1.3).

For each variant (syns61300 = core v1 via ``xylosim.v1.XyloLayer``; syns61201, syns63300, syns65302 via Rockpool's
``XyloSim.from_specification``) it writes

- ``xylo_<variant>_spec.npz``: the network (``XyloSpec.to_npz``), a small net exercising saturation, aliases
  (forward chain, backward, self), bias (v2), thresholds <= 0, dashes 0 and >= 16, a wrapping weight shift and
  IEN/OEN < Nh;
- ``xylo_<variant>_trace.npz``: ``input`` (T, Nin), ``output`` (T, Nout) and ``rec_<key>`` for every record key.

Run from the repository root: ``python tests/golden/make_xylo_golden.py`` (needs rockpool and xylosim; no samna).
The output is deterministic (fixed seeds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from xylo_ref import make_reference  # noqa: E402

from snn_deploy.sim.xylo_spec import XyloSpec  # noqa: E402

T, N_IN, N_H, N_OUT = 40, 5, 12, 3


def golden_spec(variant: str, seed: int) -> XyloSpec:
    """A deterministic small network that hits the edge cases listed in the module docstring."""
    rng = np.random.default_rng(seed)
    v1 = variant == "syns61300"
    n_syn = 1 if variant == "syns63300" else 2
    ien, oen = N_H - 2, N_H - 3
    w_in = rng.integers(-128, 128, (N_IN, ien, n_syn)) * (rng.random((N_IN, ien, n_syn)) < 0.6)
    w_in[0, 0, 0], w_in[1, 0, 0] = 127, -128  # ordering-sensitive saturation on hidden 0
    w_rec = rng.integers(-128, 128, (N_H, N_H, n_syn)) * (rng.random((N_H, N_H, n_syn)) < 0.3)
    w_out = rng.integers(-128, 128, (oen, N_OUT)) * (rng.random((oen, N_OUT)) < 0.7)
    dash = lambda n: rng.choice([0, 1, 2, 3, 4, 6, 16, 25], n)  # noqa: E731
    thr = rng.integers(1, 3000, N_H)
    thr[[2, 5]] = [0, -25000]
    aliases = [[] for _ in range(N_H)]
    aliases[1], aliases[3], aliases[4], aliases[7], aliases[9] = [3], [4], [2], [7], [8, 0]
    return XyloSpec(
        weights_in=w_in,
        weights_rec=w_rec,
        weights_out=w_out,
        dash_mem=dash(N_H),
        dash_syn=dash(N_H),
        dash_syn_2=dash(N_H),
        dash_mem_out=dash(N_OUT),
        dash_syn_out=dash(N_OUT),
        threshold=thr,
        threshold_out=np.array([500, 0, 2000]),
        bias=None if v1 else rng.integers(-200, 200, N_H),
        bias_out=None if v1 else rng.integers(-200, 200, N_OUT),
        weight_shift_in=6,
        weight_shift_rec=10,  # wraps: wrap16(w << 10)
        weight_shift_out=3,
        aliases=aliases,
        version="v1" if v1 else "v2",
        variant=variant,
    )


def main() -> None:
    for seed, variant in enumerate(("syns61300", "syns61201", "syns63300", "syns65302")):
        spec = golden_spec(variant, seed)
        rng = np.random.default_rng(100 + seed)
        x = rng.integers(0, 20, (T, N_IN)) * (rng.random((T, N_IN)) < 0.4)
        out, _, rec = make_reference(spec).evolve(x, record=True)
        spec.to_npz(HERE / f"xylo_{variant}_spec.npz")
        arrays = {"input": x.astype(np.int16), "output": out.astype(np.int16)}
        arrays.update({f"rec_{k}": v.astype(np.int16) for k, v in rec.items()})
        np.savez_compressed(HERE / f"xylo_{variant}_trace.npz", **arrays)
        print(f"{variant}: {spec}, output spikes {int(out.sum())}, hidden spikes {int(rec['Spikes'].sum())}")


if __name__ == "__main__":
    main()
