"""Train the digits example: 16 rate-coded inputs -> 64 CubaLIF -> 8 CubaLIF outputs (10 classes by output code).

Data, coding and output code: see digits.py. Network: Linear(16->64) -> CubaLIF(64) -> Linear(64->8) -> CubaLIF(8);
dt = 1 ms, tau_mem = 8 ms, tau_syn = 4 ms (Euler decays 1 - 1/8, 1 - 1/4: exact bit shifts on Xylo), threshold 1,
reset by subtraction, unit gains, no biases: it fits XyloAudio 2 (16 inputs, <= 1000 hidden, 8 outputs).
Loss: softmax cross-entropy of the code logits of the output spike counts ("rate" loss with a readout matrix), plus an
activity regulariser that keeps hidden firing rates near 10 % per step: a neuron driven far above threshold fires once
per step in the float model but several times in one step on Xylo, so a sparse model is one that deploys faithfully
(without it: float 91.9 %, Xylo emulator 58 %; with it: 90.0 % and 90.0 %).
Deterministic (fixed seeds); well under a minute on 2 CPU cores. Writes digits.nir and results.json here.

Run: python examples/digits/train.py [--epochs 300] [--lr 5e-3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optax
from digits import CODE, READOUT, STEPS, rate_code, split

from snn_deploy.sim.train import accuracy, export, feedforward, fit

HERE = Path(__file__).resolve().parent
HIDDEN, DT = 64, 1e-3


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the digits example model.")
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--activity", type=float, default=1.0)
    ap.add_argument("--activity-target", type=float, default=0.1)
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    x_tr, x_te, y_tr, y_te = split()
    X_tr, X_te = rate_code(x_tr), rate_code(x_te)
    graph = feedforward(
        [16, HIDDEN, 8],
        dt=DT,
        tau_mem=8 * DT,
        tau_syn=4 * DT,
        readout="CubaLIF",
        reset="subtract",
        method="euler",
        seed=0,
    )
    steps_per_epoch = len(X_tr) // 32
    opt = optax.adam(optax.cosine_decay_schedule(args.lr, args.epochs * steps_per_epoch))
    t0 = time.perf_counter()
    result = fit(
        graph,
        X_tr,
        y_tr,
        loss="rate",
        readout=READOUT,
        epochs=args.epochs,
        batch_size=32,
        optimizer=opt,
        seed=0,
        log=lambda r: print(r) if r["epoch"] % 25 == 0 else None,
        activity=args.activity,
        activity_target=args.activity_target,
    )
    seconds = time.perf_counter() - t0
    train_acc = accuracy(result.graph, X_tr, y_tr, loss="rate", readout=READOUT)
    test_acc = accuracy(result.graph, X_te, y_te, loss="rate", readout=READOUT)
    print(f"train accuracy {train_acc:.4f}, test accuracy {test_acc:.4f} ({seconds:.0f} s)")
    meta = {
        "example": "digits",
        "coding": f"regular rate code, {STEPS} steps, 2x2-sum-pooled 8x8 digits / 64",
        "readout": "rate with output code: argmax of spike_counts @ (2*output_code - 1).T / 8",
        "learning_rate": args.lr,
        "activity_regulariser": {"weight": args.activity, "target_rate": args.activity_target},
        "output_code": ["".join(map(str, row)) for row in CODE],
        "steps": STEPS,
    }
    export(
        result,
        args.out / "digits.nir",
        metadata={k: v for k, v in meta.items() if k != "output_code"} | {"output_code": CODE},
    )
    (args.out / "results.json").write_text(
        json.dumps(
            {
                **meta,
                "train_samples": len(X_tr),
                "test_samples": len(X_te),
                "split": "stratified 70/30, random_state=0",
                "epochs": args.epochs,
                "float_train_accuracy": round(train_acc, 4),
                "float_test_accuracy": round(test_acc, 4),
                "training_seconds": round(seconds, 1),
                "hidden": HIDDEN,
                "outputs": 8,
                "classes": 10,
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
