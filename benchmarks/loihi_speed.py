"""Speed of the Loihi 2 JAX emulator vs Lava 0.10's CPU fixed-point simulation, same network, same run.

    python benchmarks/loihi_speed.py [--steps 2000] [--batches 1 64 256] [--no-lava]

Network: 16 -> 128 -> 8 Dense/LIF (random MIXED 8-bit weights, bias, du/dv/vth fixed by seed 0), input
Bernoulli(0.2) spikes. Lava runs one sample (it has no batch axis) with Loihi2SimCfg(select_tag="fixed_pt"),
no Monitors, the output spikes collected by a sink RingBuffer: the cheapest Lava run that still yields
the network's output. Lava's time includes building, compiling and spawning its processes, as any user
pays it (``run_seconds`` also excludes the Python-side process construction). The emulator is timed after
compilation (the compile time is printed separately), recording the output layer's spikes, and also with
u, v, s of every layer recorded. The output spikes of both are checked to be identical.
Throughput unit: sample-steps per second (batch x steps / seconds).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snn_deploy.sim.loihi import DenseParams, LifParams, LoihiNetwork, Projection, make_runner  # noqa: E402


def network(seed: int = 0) -> LoihiNetwork:
    rng = np.random.default_rng(seed)
    sizes = (16, 128, 8)
    layers, projs = [], []
    for k in range(2):
        n_out, n_in = sizes[k + 1], sizes[k]
        layers.append(
            LifParams(n_out, du=400, dv=300, vth=40, bias_mant=rng.integers(-2, 3, n_out), bias_exp=6)
        )
        projs.append(Projection(k - 1, k, DenseParams(rng.integers(-128, 128, (n_out, n_in)))))
    return LoihiNetwork(16, tuple(layers), tuple(projs))


def time_emulator(net, x: np.ndarray, record, repeats: int = 3) -> tuple[float, float, dict]:
    run = make_runner(net, record=record)
    xj = jnp.asarray(x)
    t0 = time.perf_counter()
    out = jax.block_until_ready(run(xj))
    compile_s = time.perf_counter() - t0
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(run(xj))
        best = min(best, time.perf_counter() - t0)
    return compile_s, best, out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 64, 256])
    ap.add_argument("--no-lava", action="store_true", help="skip the Lava run (no .lava-venv needed)")
    args = ap.parse_args(argv)

    net = network()
    rng = np.random.default_rng(1)
    xs = (rng.random((max(args.batches), args.steps, 16)) < 0.2).astype(np.int32)
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), "
        f"16-128-8, {args.steps} steps"
    )

    lava_rate = None
    if not args.no_lava:
        from tests.lava_ref import NetJob, lava_python, run_lava

        if lava_python() is None:
            print("Lava env .lava-venv missing: build it with `python -m tests.lava_env` (or pass --no-lava)")
            return 1
        (res,) = run_lava([NetJob(net, xs[0], monitors=False)])
        lava_rate = args.steps / res.seconds
        print(
            f"Lava fixed_pt CPU, batch 1: {res.seconds:.2f} s total ({res.run_seconds:.2f} s compile+run) "
            f"-> {lava_rate:,.0f} sample-steps/s"
        )
        _, _, out = time_emulator(net, xs[:1], record=("s",), repeats=1)
        same = np.array_equal(np.asarray(out["s"][1][0]), res.s[0])
        print(f"output spikes identical to Lava: {same} ({int(res.s[0].sum())} spikes)")
        if not same:
            return 1

    print(f"{'batch':>6} {'record':>8} {'compile s':>10} {'run s':>8} {'sample-steps/s':>16} {'vs Lava':>9}")
    for batch in args.batches:
        for record in (("s",), ("u", "v", "s")):
            compile_s, run_s, _ = time_emulator(net, xs[:batch], record)
            rate = batch * args.steps / run_s
            ratio = f"{rate / lava_rate:,.0f}x" if lava_rate else "-"
            print(
                f"{batch:>6} {'+'.join(record):>8} {compile_s:>10.2f} {run_s:>8.3f} {rate:>16,.0f} {ratio:>9}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
