"""Builders of small NIR files for tests: good ones, the kinds older exporters write, and broken ones.

Everything is written with nir and h5py, so the tests do not depend on ../shared.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import nir
import numpy as np

ZOO = Path(__file__).resolve().parents[1].parent / "shared" / "nir-zoo"
ZOO_FILES = (
    "braille_noDelay_noBias_subtract.nir",
    "cnn_sinabs.nir",
    "lif_rockpool.nir",
    "two_lif_neurons.nir",
)


def zoo_path(name: str) -> Path:
    """Path of a zoo graph; the caller skips when it is absent."""
    return ZOO / name


def lif_chain(n_in: int = 3, n_hidden: int = 4, n_out: int = 2, seed: int = 0) -> nir.NIRGraph:
    """Input -> Affine -> LIF -> Linear -> CubaLIF -> Output, valid in strict NIR."""
    rng = np.random.default_rng(seed)
    return nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n_in])}),
            "fc1": nir.Affine(weight=rng.normal(size=(n_hidden, n_in)), bias=rng.normal(size=n_hidden)),
            "lif1": nir.LIF(
                tau=np.full(n_hidden, 0.01),
                r=np.full(n_hidden, 10.0),
                v_leak=np.zeros(n_hidden),
                v_threshold=np.ones(n_hidden),
                v_reset=np.zeros(n_hidden),
            ),
            "fc2": nir.Linear(weight=rng.normal(size=(n_out, n_hidden))),
            "lif2": nir.CubaLIF(
                tau_mem=np.full(n_out, 0.02),
                tau_syn=np.full(n_out, 0.005),
                r=np.full(n_out, 2.0),
                v_leak=np.zeros(n_out),
                v_threshold=np.ones(n_out),
                v_reset=np.zeros(n_out),
                w_in=np.full(n_out, 3.0),
            ),
            "output": nir.Output(output_type={"output": np.array([n_out])}),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")],
    )


def write(graph: nir.NIRGraph, path: Path) -> Path:
    nir.write(path, graph)
    return path


def edit(path: Path, fn) -> Path:
    """Apply ``fn(h5py.File)`` to a written file in place."""
    with h5py.File(path, "r+") as f:
        fn(f)
    return path


def set_dataset(f: h5py.File, key: str, value) -> None:
    del f[key]
    f[key] = value


def old_rockpool_output(path: Path) -> Path:
    """Like Rockpool's old export: Output declares [1, 1, 1] after a [1] LIF (strict nir.read rejects it)."""
    g = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([1])}),
            "lin": nir.Linear(weight=np.array([[0.04]])),
            "lif": nir.LIF(
                tau=np.array([0.0025]),
                r=np.array([24.0]),
                v_leak=np.zeros(1),
                v_threshold=np.array([0.1]),
                v_reset=np.zeros(1),
            ),
            "output": nir.Output(output_type={"output": np.array([1])}),
        },
        edges=[("input", "lin"), ("lin", "lif"), ("lif", "output")],
    )
    write(g, path)
    return edit(path, lambda f: set_dataset(f, "node/nodes/output/shape", np.array([1, 1, 1])))


def nested_dotted(path: Path, n_in: int = 3, n: int = 5) -> Path:
    """snnTorch-style recurrent block as a nested subgraph whose top-level edges use dotted names (``lif1.lif``)."""
    rng = np.random.default_rng(1)
    cuba = dict(
        tau_mem=np.full(n, 1e-3),
        tau_syn=np.full(n, 5e-4),
        r=np.full(n, 10.0),
        v_leak=np.zeros(n),
        v_threshold=np.ones(n),
        v_reset=np.zeros(n),
        w_in=np.full(n, 5.0),
    )
    inner = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n])}),
            "lif": nir.CubaLIF(**cuba),
            "w_rec": nir.Linear(weight=rng.normal(size=(n, n))),
            "output": nir.Output(output_type={"output": np.array([n])}),
        },
        edges=[("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")],
        type_check=False,
    )
    outer = nir.NIRGraph(
        nodes={
            "input": nir.Input(input_type={"input": np.array([n_in])}),
            "fc1": nir.Linear(weight=rng.normal(size=(n, n_in))),
            "lif1": inner,
            "fc2": nir.Linear(weight=rng.normal(size=(2, n))),
            "output": nir.Output(output_type={"output": np.array([2])}),
        },
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "output")],
        type_check=False,
    )
    write(outer, path)
    # snnTorch writes edges to the inner nodes by dotted name.
    edges = np.array(
        [[b"input", b"fc1"], [b"fc1", b"lif1.lif"], [b"lif1.lif", b"fc2"], [b"fc2", b"output"]], dtype=object
    )
    return edit(path, lambda f: set_dataset(f, "node/edges", edges))
