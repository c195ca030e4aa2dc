"""Train the Yin-Yang example: 4 latency-coded inputs -> 100 CubaLIF -> 3 CubaLI readout, float reference in JAX.

Data: the published Yin-Yang definition (see yinyang.py): 5000 training samples (seed 42), 1000 test (seed 40).
Coding: each of the 4 features (x, y, 1-x, 1-y) is one input spike at step round(30 * feature) of 40 steps.
Network: Linear(4->100) -> CubaLIF(100) -> Linear(100->3) -> CubaLI(3); dt = 1 ms, tau_mem = 8 ms, tau_syn = 4 ms
(Euler decays 1 - 1/8 and 1 - 1/4: exact bit shifts on Xylo), threshold 1, reset by subtraction, unit gains.
Readout and loss: the class is the readout neuron with the largest time-averaged membrane ("integral" loss).
Deterministic (fixed seeds); about 20 seconds on 2 CPU cores. Writes yinyang.nir and results.json next to this file.

Run: python examples/yinyang/train.py [--epochs 200]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optax
from yinyang import latency_code, yinyang

from snn_deploy.sim.train import accuracy, export, feedforward, fit

HERE = Path(__file__).resolve().parent
STEPS, T_MAX, HIDDEN, DT = 40, 30, 100, 1e-3


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the Yin-Yang example model.")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    x_tr, y_tr = yinyang(5000, seed=42)
    x_te, y_te = yinyang(1000, seed=40)
    X_tr, X_te = latency_code(x_tr, STEPS, T_MAX), latency_code(x_te, STEPS, T_MAX)
    graph = feedforward(
        [4, HIDDEN, 3],
        dt=DT,
        tau_mem=8 * DT,
        tau_syn=4 * DT,
        readout="CubaLI",
        reset="subtract",
        method="euler",
        seed=0,
    )
    steps_per_epoch = len(X_tr) // 64
    opt = optax.adam(optax.cosine_decay_schedule(1e-2, args.epochs * steps_per_epoch))
    t0 = time.perf_counter()
    result = fit(
        graph,
        X_tr,
        y_tr,
        loss="integral",
        epochs=args.epochs,
        batch_size=64,
        optimizer=opt,
        seed=0,
        log=lambda r: print(r) if r["epoch"] % 20 == 0 else None,
    )
    seconds = time.perf_counter() - t0
    train_acc = accuracy(result.graph, X_tr, y_tr, loss="integral")
    test_acc = accuracy(result.graph, X_te, y_te, loss="integral")
    print(f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} ({seconds:.0f} s)")
    meta = {
        "example": "yinyang",
        "coding": f"latency: 1 spike per input at step round({T_MAX}*feature) of {STEPS}",
        "readout": "integral: argmax of the time-averaged CubaLI membrane",
        "steps": STEPS,
    }
    export(result, args.out / "yinyang.nir", metadata=meta)
    (args.out / "results.json").write_text(
        json.dumps(
            {
                **meta,
                "train_samples": 5000,
                "test_samples": 1000,
                "train_seed": 42,
                "test_seed": 40,
                "epochs": args.epochs,
                "float_train_accuracy": round(train_acc, 4),
                "float_test_accuracy": round(test_acc, 4),
                "training_seconds": round(seconds, 1),
                "hidden": HIDDEN,
                "dt": DT,
                "method": "euler",
                "reset": "subtract",
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
