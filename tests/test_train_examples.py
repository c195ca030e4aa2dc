"""The committed example models: data definitions, target-friendly sizes, and their recorded float accuracies."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import snn_deploy as sd
from snn_deploy.sim.train import accuracy

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _module(rel: str):
    path = EXAMPLES / rel
    spec = importlib.util.spec_from_file_location(path.stem + "_example", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _load(path: Path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the examples carry their conventions: nothing inferred or defaulted
        return sd.load(path)


def test_yinyang_definition():
    yy = _module("yinyang/yinyang.py")
    assert yy.which_class(0.25, 0.5) == 2 and yy.which_class(0.75, 0.5) == 2  # the dots
    assert yy.which_class(0.5, 0.9) == 0 and yy.which_class(0.5, 0.1) == 1
    assert yy.which_class(0.25, 0.7) == 0  # ring around the left dot
    x, y = yy.yinyang(600, seed=1)
    assert x.shape == (600, 4) and np.allclose(x[:, 2], 1 - x[:, 0]) and np.allclose(x[:, 3], 1 - x[:, 1])
    assert np.all(np.hypot(x[:, 0] - 0.5, x[:, 1] - 0.5) <= 0.5)
    assert all(150 <= c <= 250 for c in np.bincount(y))
    assert all(yy.which_class(a, b) == c for (a, b, _, _), c in zip(x, y, strict=True))
    spikes = yy.latency_code(x[:5], 40, 30)
    assert np.all(spikes.sum(1) == 1)


def _check_fits(graph, n_in, max_out):
    inputs = graph.inputs[0].output_shape[0]
    hidden = sum(int(np.prod(n.output_shape)) for n in graph.neurons) - graph.outputs[0].output_shape[0]
    assert inputs == n_in <= 16 and hidden <= 128 and graph.outputs[0].output_shape[0] <= max_out


def test_yinyang_model_accuracy_is_as_recorded():
    yy = _module("yinyang/yinyang.py")
    rec = json.loads((EXAMPLES / "yinyang" / "results.json").read_text())
    g = _load(EXAMPLES / "yinyang" / "yinyang.nir")
    _check_fits(g, 4, 3)
    x, y = yy.yinyang(1000, seed=40)
    acc = accuracy(g, yy.latency_code(x, rec["steps"], 30), y, loss="integral")
    assert rec["float_test_accuracy"] >= 0.95
    assert abs(acc - rec["float_test_accuracy"]) <= 0.002, acc


def test_digits_model_accuracy_is_as_recorded():
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn's bundled data set")
    dg = _module("digits/digits.py")
    rec = json.loads((EXAMPLES / "digits" / "results.json").read_text())
    g = _load(EXAMPLES / "digits" / "digits.nir")
    _check_fits(g, 16, 8)
    np.testing.assert_array_equal(np.asarray(g.metadata["output_code"]), dg.CODE)
    words = dg.CODE
    dist = (words[:, None, :] != words[None, :, :]).sum(-1)
    assert dist[~np.eye(10, dtype=bool)].min() >= 4 and np.all(words.sum(1) == 4)
    _, x_te, _, y_te = dg.split()
    acc = accuracy(g, dg.rate_code(x_te), y_te, loss="rate", readout=dg.READOUT)
    assert rec["float_test_accuracy"] >= 0.85
    assert abs(acc - rec["float_test_accuracy"]) <= 0.002, acc


@pytest.mark.slow
def test_digits_training_is_reproducible(tmp_path):
    """Re-running the committed training script gives the committed accuracy (deterministic seeds; ~30 s)."""
    pytest.importorskip("sklearn", reason="the digits example needs scikit-learn's bundled data set")
    import subprocess

    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "digits" / "train.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    new = json.loads((tmp_path / "results.json").read_text())
    old = json.loads((EXAMPLES / "digits" / "results.json").read_text())
    assert new["float_test_accuracy"] == old["float_test_accuracy"]
