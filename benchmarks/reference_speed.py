"""Forward + backward speed of the float reference against Spyx 1.0 on the same 700-256-20 LIF network and data.

Network: Input(700) -> Linear(256) -> LIF(256) -> Linear(20) -> LIF(20), no biases, decay beta = 0.9 (snnTorch-style
unit gains: ``v[t] = beta v[t-1] + W x[t] - theta s[t-1]``, threshold 1), batch 64, 256 steps, random input spikes
(rate 5 % per step), loss = softmax cross-entropy of the output spike counts, gradients with respect to the weights
and the decay (Spyx: its ``beta`` parameters; here: ``tau``). Both run float32 under ``jax.jit`` with the same
surrogate (SuperSpike, k = 25) and JAX's default matmul precision, on the same device, in this one process.

Spyx's LIF fires on the membrane of the previous step (its spikes lag one step behind ours); the work per step is
the same. As a check that both sides run the same network, the first layer's final membranes are compared.

Our side differentiates its neuron loops with the hand-derived adjoint (``sim/reference_adjoint.py``, the default;
the first layer and the second Linear run as one fused Linear + LIF + Linear op, ``linear_neuron_scan`` with
``next_linear``, which keeps the program's temporaries under 32 MiB so that no call faults in fresh pages);
``--autodiff`` also times JAX's autodiff of the plain loop (``adjoint=False``) in the same run.

Both wall-clock and process CPU time are printed, and the minor page faults per call: on CPU a call whose
temporary block (one per XLA program) exceeds 32 MiB, glibc's largest mmap threshold, gets fresh pages every
time, one fault per 4 KiB (Spyx: ~25k per call; ours before the Linear + LIF + Linear op: ~14k, ~15 ms), a large
part of the non-GEMM time. On a machine whose second core is busy the GEMMs (multi-threaded)
lose most and the ratio drops (measured 1.13-1.16x with one free core, 1.3-1.4x with two).

``--hugepages`` re-runs the script with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc >= 2.35, transparent huge
pages in ``madvise`` or ``always`` mode): malloc then backs large blocks with 2 MiB pages and the faults all but
vanish, for both sides alike (an environment setting of the process, not of either library).

Run: ``python benchmarks/reference_speed.py [--repeats 20] [--autodiff] [--hugepages]``; prints both times (median)
and the ratio.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from snn_deploy.sim.reference import extract_params, simulate_params
from snn_deploy.sim.train import feedforward

N_IN, N_HID, N_OUT, BATCH, STEPS, BETA, DT = 700, 256, 20, 64, 256, 0.9, 1e-3


def ours(seed: int, adjoint: bool = True):
    graph = feedforward(
        [N_IN, N_HID, N_OUT], dt=DT, tau_mem=DT / (1 - BETA), readout="LIF", reset="subtract-next", seed=seed
    )
    params = extract_params(graph)
    diff = {n: {k: v for k, v in d.items() if k in ("weight", "tau")} for n, d in params.items()}
    frozen = {n: {k: v for k, v in d.items() if k not in ("weight", "tau")} for n, d in params.items()}

    def loss(p, x, y):
        merged = {n: {**frozen[n], **p.get(n, {})} for n in frozen}
        out = simulate_params(
            graph, merged, x, record=False, precision=None, shard=False, adjoint=adjoint
        ).output
        return optax.softmax_cross_entropy_with_integer_labels(out.sum(1), y).mean()

    return graph, diff, jax.jit(jax.value_and_grad(loss))


def spyx_model(graph, seed: int):
    import spyx
    from flax import nnx

    rngs = nnx.Rngs(seed)
    model = spyx.nn.Sequential(
        nnx.Linear(N_IN, N_HID, use_bias=False, rngs=rngs),
        spyx.nn.LIF((N_HID,), beta=BETA, rngs=rngs),
        nnx.Linear(N_HID, N_OUT, use_bias=False, rngs=rngs),
        spyx.nn.LIF((N_OUT,), beta=BETA, rngs=rngs),
    )
    # the same weights as ours (nnx.Linear stores (in, out))
    model.layers[0].kernel[...] = jnp.asarray(graph.node("fc1").weight.T, jnp.float32)
    model.layers[2].kernel[...] = jnp.asarray(graph.node("fc2").weight.T, jnp.float32)
    graphdef, state = nnx.split(model)

    def loss(st, x, y):
        m = nnx.merge(graphdef, st)
        out, _ = spyx.nn.run(m, x, batch_major=True)
        return optax.softmax_cross_entropy_with_integer_labels(out.sum(1), y).mean()

    return model, state, jax.jit(jax.value_and_grad(loss))


def timeit(fn, *args, repeats: int) -> tuple[float, float, float]:
    """Median wall-clock and process CPU time (seconds) and minor page faults of one call, after compile and warm-up.

    CPU time is the steadier figure on a shared machine (it does not count time spent waiting for a core).
    """
    jax.block_until_ready(fn(*args))  # compile + warm-up
    jax.block_until_ready(fn(*args))
    wall, cpu, faults = [], [], []
    for _ in range(repeats):
        f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn(*args))
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
    return statistics.median(wall), statistics.median(cpu), statistics.median(faults)


def check_same_network(graph, model, x) -> float:
    """Max |difference| between both first layers' membranes after the last step (0 up to float32 rounding)."""
    import spyx

    from snn_deploy.sim.reference import simulate

    ref = np.asarray(simulate(graph, x, record=["lif1"], precision=None, shard=False).v["lif1"])
    first = spyx.nn.Sequential(model.layers[0], model.layers[1])
    _, state = spyx.nn.run(first, x, batch_major=True)  # state = [None (Linear), membrane (LIF)]
    return float(np.max(np.abs(ref[:, -1] - np.asarray(state[1]))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--autodiff", action="store_true", help="also time adjoint=False (JAX autodiff of the loop)"
    )
    ap.add_argument(
        "--hugepages", action="store_true", help="re-run with glibc malloc on transparent huge pages"
    )
    args = ap.parse_args()
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if args.hugepages and "glibc.malloc.hugetlb" not in tunables:
        env = dict(os.environ, GLIBC_TUNABLES=":".join(t for t in (tunables, "glibc.malloc.hugetlb=1") if t))
        os.execve(
            sys.executable, [sys.executable, *sys.argv], env
        )  # malloc reads its tunables at process start
    if tunables:
        print(f"GLIBC_TUNABLES={tunables}")
    rng = np.random.default_rng(args.seed)
    x = jnp.asarray((rng.random((BATCH, STEPS, N_IN)) < 0.05).astype(np.float32))
    y = jnp.asarray(rng.integers(0, N_OUT, BATCH))
    graph, p_ours, f_ours = ours(args.seed)
    print(f"devices: {jax.devices()}; jax {jax.__version__}")
    print(f"network {N_IN}-{N_HID}-{N_OUT} LIF, batch {BATCH}, {STEPS} steps, forward + backward")
    try:
        import spyx
    except ImportError:
        t, _, _ = timeit(f_ours, p_ours, x, y, repeats=args.repeats)
        print(f"snn-deploy reference: {t * 1e3:.2f} ms; spyx is not installed (pip install spyx), no ratio")
        return
    model, s_spyx, f_spyx = spyx_model(graph, args.seed)
    print(
        f"spyx {getattr(spyx, '__version__', '?')}; first-layer membrane max |diff| at the last step: "
        f"{check_same_network(graph, model, x):.2e}"
    )
    sides = {"spyx": (f_spyx, s_spyx), "snn-deploy reference": (f_ours, p_ours)}
    if args.autodiff:
        sides["snn-deploy, autodiff loop"] = (ours(args.seed, adjoint=False)[2], p_ours)
    acc = {name: [0.0, 0.0, 0.0] for name in sides}
    for _ in range(2):  # interleaved rounds, so that load changes on a shared machine hit every side
        for name, (fn, params) in sides.items():
            for k, v in enumerate(timeit(fn, params, x, y, repeats=args.repeats)):
                acc[name][k] += v / 2
    print(
        f"per forward+backward (median of {args.repeats}, 2 interleaved rounds): wall ms / CPU ms / page faults"
    )
    for name, (w, c, f) in acc.items():
        print(f"{name + ':':27s} {w * 1e3:8.2f} / {c * 1e3:8.2f} / {f:7.0f}")
    (w_spyx, c_spyx, _), (w_ours, c_ours, _) = acc["spyx"], acc["snn-deploy reference"]
    print(
        f"speed ratio (spyx time / ours): wall {w_spyx / w_ours:.2f}x, CPU time {c_spyx / c_ours:.2f}x "
        "(goal >= 1.5x)"
    )


if __name__ == "__main__":
    main()
