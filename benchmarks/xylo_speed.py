"""Speed of the JAX Xylo emulator vs Rockpool's XyloSim (xylosim 0.1.3), measured in the same run.

Network: 16 inputs, 128 hidden (2 synapses), 8 outputs, dense int8 weights ~ U[-127, 127], shifts 0, dashes
mem 4 / syn 3 / out 5, Bernoulli(0.1) input counts (xylo.md section 8). Activity is set by the hidden threshold:
low 6000 (~3 hidden spikes per step), moderate 5500 (~100), high 3000 (~400), matching the activity levels of
xylo.md section 8 (measured with this seed; the transition between 6000 and 5000 is sharp).

For every activity level: XyloSim runs ``--ref-samples`` samples one after another (reset between samples, as it
has no batch axis; record=False), the emulator runs batches of 1, 64 and 256 samples (compile excluded, best of
``--repeats``). Before timing, the emulator's output and every recorded array are checked equal to XyloSim's on the
benchmarked samples (the script exits with status 1 on any mismatch). Throughput is sample-steps per second;
XyloSim's rate is per sample and is extrapolated linearly (it is single-threaded and has no batch).

XLA settings, set here explicitly and printed: ``--host-devices N`` (default: the number of CPU cores) sets
``XLA_FLAGS=--xla_force_host_platform_device_count=N``, so the emulator shards the batch over N CPU devices (one
thread each; :func:`snn_deploy.sim.xylo.evolve` splits the batch over all local devices). ``--host-devices 1``
gives the single-device numbers. The load average is printed before and after, since other processes on the
machine slow both simulators (XyloSim, single-threaded, less so).

Run: ``python benchmarks/xylo_speed.py`` (about a minute on 2 CPU cores); ``--help`` for options.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

from snn_deploy.sim.xylo_spec import XyloSpec

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from xylo_ref import make_reference, reference_available  # noqa: E402

ACTIVITY = {"low": 6000, "moderate": 5500, "high": 3000}


def make_spec(threshold: int, seed: int = 0) -> XyloSpec:
    """The benchmark network at the given hidden threshold."""
    rng = np.random.default_rng(seed)
    n_in, n_h, n_out = 16, 128, 8
    return XyloSpec(
        weights_in=rng.integers(-127, 128, (n_in, n_h, 2)),
        weights_rec=rng.integers(-127, 128, (n_h, n_h, 2)),
        weights_out=rng.integers(-127, 128, (n_h, n_out)),
        dash_mem=np.full(n_h, 4),
        dash_syn=np.full(n_h, 3),
        dash_syn_2=np.full(n_h, 3),
        dash_mem_out=np.full(n_out, 5),
        dash_syn_out=np.full(n_out, 5),
        threshold=np.full(n_h, threshold),
        threshold_out=np.full(n_out, 3000),
    )


def best_time(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=500, help="time steps per sample")
    ap.add_argument("--ref-samples", type=int, default=8, help="samples XyloSim runs (timed and verified)")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--delivery", choices=["auto", "exact"], default="auto")
    ap.add_argument("--activity", nargs="+", choices=list(ACTIVITY), default=list(ACTIVITY))
    ap.add_argument(
        "--host-devices",
        type=int,
        default=os.cpu_count() or 1,
        help="XLA CPU devices the batch is sharded over (sets --xla_force_host_platform_device_count)",
    )
    args = ap.parse_args(argv)
    # before anything initialises a JAX backend (importing jax alone does not)
    flag = f"--xla_force_host_platform_device_count={args.host_devices}"
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
    ok, why = reference_available()
    if not ok:
        print(f"XyloSim unavailable: {why}")
        return 2
    import jax  # noqa: PLC0415

    from snn_deploy.sim.xylo import evolve  # noqa: PLC0415

    if jax.default_backend() == "cpu" and jax.local_device_count() != args.host_devices:
        print(
            f"warning: {jax.local_device_count()} CPU devices, not {args.host_devices} (backend started early)"
        )
    print(
        f"JAX {jax.__version__} on {jax.devices()[0].platform} x{jax.local_device_count()}; "
        f"XLA_FLAGS={os.environ['XLA_FLAGS']!r}; {args.steps} steps/sample; delivery={args.delivery}; {_load()}"
    )
    rng = np.random.default_rng(1)
    n_max = max(max(args.batches), args.ref_samples)
    x_all = (rng.random((n_max, args.steps, 16)) < 0.1).astype(np.int32)
    failed = False
    header = f"{'activity':>9} {'spk/step':>8} {'XyloSim':>10} " + " ".join(
        f"{'B=' + str(b):>10}" for b in args.batches
    )
    rows = []
    for level in args.activity:
        spec = make_spec(ACTIVITY[level])
        ref = make_reference(spec)
        # --- verify bit-exactness on the benchmarked samples (every record array) ---
        out_e, _, rec_e = evolve(spec, x_all[: args.ref_samples], record=True, delivery=args.delivery)
        spk = []
        for i in range(args.ref_samples):
            ref.reset_state()
            out_r, _, rec_r = ref.evolve(x_all[i], record=True)
            bad = [k for k in rec_r if not np.array_equal(np.asarray(rec_e[k][i]), rec_r[k])]
            if not np.array_equal(np.asarray(out_e[i]), out_r):
                bad.append("output")
            if bad:
                print(f"MISMATCH at activity {level}, sample {i}: {bad}")
                failed = True
            spk.append(rec_r["Spikes"].sum(axis=1).mean())

        # --- XyloSim timing (record=False), per sample, sequential ---
        def run_ref(ref=ref) -> None:
            for i in range(args.ref_samples):
                ref.reset_state()
                ref.evolve(x_all[i], record=False)

        t_ref = best_time(run_ref, args.repeats)
        rate_ref = args.ref_samples * args.steps / t_ref
        rates = []
        for b in args.batches:
            xb = x_all[:b]
            out_b, _, _ = evolve(spec, xb, record=False, delivery=args.delivery)  # compile
            if not np.array_equal(
                np.asarray(out_b[: min(b, args.ref_samples)]), np.asarray(out_e[: min(b, args.ref_samples)])
            ):
                print(f"MISMATCH between batch {b} and the verified run at activity {level}")
                failed = True
            t = best_time(
                lambda xb=xb, spec=spec: jax.block_until_ready(
                    evolve(spec, xb, record=False, delivery=args.delivery)
                ),
                args.repeats,
            )
            rates.append(b * args.steps / t)
        rows.append((level, float(np.mean(spk)), rate_ref, rates))
    print(header)
    for level, spk, rate_ref, rates in rows:
        cells = " ".join(f"{r:>10.3g}" for r in rates)
        print(f"{level:>9} {spk:>8.1f} {rate_ref:>10.3g} {cells}   (sample-steps/s)")
        ratios = " ".join(f"{r / rate_ref:>9.1f}x" for r in rates)
        print(f"{'':>9} {'':>8} {'ratio':>10} {ratios}")
    print("bit-exact on all benchmarked samples" if not failed else "BIT-EXACTNESS FAILED")
    print(_load())
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
