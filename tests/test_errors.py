"""Every bad-input case gives its typed error (API) and one clean line with exit code 1 (CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from nir_files import edit, lif_chain, set_dataset, write

import snn_deploy as sd
from snn_deploy import errors


def _missing(tmp: Path) -> Path:
    return tmp / "nope.nir"


def _not_hdf5(tmp: Path) -> Path:
    p = tmp / "text.nir"
    p.write_text("this is not HDF5\n")
    return p


def _truncated(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "trunc.nir")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


def _corrupt(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "corrupt.nir")
    data = bytearray(p.read_bytes())
    for i in range(600, len(data), 7):  # keep the superblock, scramble the object headers behind it
        data[i] ^= 0xA5
    p.write_bytes(bytes(data))
    return p


def _hdf5_not_nir(tmp: Path) -> Path:
    p = tmp / "other.h5"
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(5)
    return p


def _unknown_node(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "unknown.nir")
    return edit(p, lambda f: set_dataset(f, "node/nodes/lif1/type", b"QuantumNeuron"))


def _shape_mismatch(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "shape.nir")
    return edit(p, lambda f: set_dataset(f, "node/nodes/fc2/weight", np.ones((2, 7))))


def _edge_to_missing(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "edge.nir")
    edges = np.array(
        [[b"input", b"fc1"], [b"fc1", b"lif1"], [b"lif1", b"fc2"], [b"fc2", b"lif2"], [b"lif2", b"ghost"]],
        dtype=object,
    )
    return edit(p, lambda f: set_dataset(f, "node/edges", edges))


def _nan_tau(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "nantau.nir")
    return edit(p, lambda f: set_dataset(f, "node/nodes/lif1/tau", np.array([0.01, np.nan, 0.01, 0.01])))


def _negative_tau(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "negtau.nir")
    return edit(p, lambda f: set_dataset(f, "node/nodes/lif2/tau_syn", np.array([0.005, -0.001])))


def _zero_tau(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "zerotau.nir")
    return edit(p, lambda f: set_dataset(f, "node/nodes/lif1/tau", np.zeros(4)))


def _inf_weight(tmp: Path) -> Path:
    p = write(lif_chain(), tmp / "infw.nir")

    def fn(f):
        w = f["node/nodes/fc1/weight"][()]
        w[1, 2] = np.inf
        set_dataset(f, "node/nodes/fc1/weight", w)

    return edit(p, fn)


CASES = [
    # (builder, exception, node, words the CLI line must contain)
    (_missing, errors.ModelNotFound, None, ["nope.nir", "no such file"]),
    (_not_hdf5, errors.NotHDF5, None, ["text.nir", "not an HDF5 file"]),
    (_truncated, errors.CorruptFile, None, ["trunc.nir", "truncated or damaged"]),
    (_corrupt, errors.CorruptFile, None, ["corrupt.nir", "truncated or damaged"]),
    (_hdf5_not_nir, errors.NotNIR, None, ["other.h5", "without a NIR graph"]),
    (_unknown_node, errors.UnsupportedNode, "lif1", ["unknown.nir", "node 'lif1'", "QuantumNeuron"]),
    (_shape_mismatch, errors.ShapeMismatch, "fc2", ["shape.nir", "node 'fc2'", "lif1 -> fc2"]),
    (_edge_to_missing, errors.MissingNode, "ghost", ["edge.nir", "node 'ghost'", "does not exist"]),
    (_nan_tau, errors.InvalidParameter, "lif1", ["nantau.nir", "node 'lif1'", "tau:", "not finite"]),
    (_negative_tau, errors.InvalidParameter, "lif2", ["negtau.nir", "node 'lif2'", "tau_syn:", "> 0"]),
    (_zero_tau, errors.InvalidParameter, "lif1", ["zerotau.nir", "node 'lif1'", "tau:", "> 0"]),
    (_inf_weight, errors.InvalidParameter, "fc1", ["infw.nir", "node 'fc1'", "weight:", "not finite"]),
]
IDS = [c[0].__name__.strip("_") for c in CASES]


@pytest.mark.parametrize(("build", "exc", "node", "words"), CASES, ids=IDS)
def test_api_raises_typed_error(tmp_path, build, exc, node, words):
    path = build(tmp_path)
    with pytest.raises(exc) as info:
        sd.load(path)
    assert isinstance(info.value, errors.SnnDeployError)
    assert info.value.file == str(path)
    assert info.value.node == node


@pytest.mark.parametrize(("build", "exc", "node", "words"), CASES, ids=IDS)
def test_cli_prints_one_line_and_exits_1(tmp_path, build, exc, node, words):
    path = build(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", "inspect", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_unknown_convention_is_a_user_error(tmp_path):
    path = write(lif_chain(), tmp_path / "m.nir")
    g = lif_chain()
    g.metadata["method"] = "rk4"
    bad = write(g, tmp_path / "meta.nir")
    with pytest.raises(errors.ConventionError):
        sd.load(bad)
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", "inspect", str(path), "--method", "rk4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
