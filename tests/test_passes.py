"""Passes: purity, records, invariants, and the numbers each one must produce."""

from __future__ import annotations

import json
import subprocess
import sys

import nir
import numpy as np
import pytest
from nir_files import lif_chain, nested_dotted, write, zoo_path

import snn_deploy as sd
from snn_deploy.discretize import step_coefficients
from snn_deploy.errors import ConventionError
from snn_deploy.nodes import CubaLIF
from snn_deploy.passes import chain, discretize, flatten, fold_scales, fuse_synapses, rescale_time

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _graph(tmp_path, g=None, **conv):
    return sd.load(write(g or lif_chain(), tmp_path / "m.nir"), **conv)


def test_chain_records_every_pass_and_leaves_input_untouched(tmp_path):
    g = _graph(tmp_path, dt=1e-3)
    before = [np.array(v) for n in g.nodes for v in n.params().values()]
    out = chain(flatten, fold_scales, fuse_synapses, discretize(1e-3, "exact"))(g)
    assert [r.name for r in out.history[-4:]] == ["flatten", "fold_scales", "fuse_synapses", "discretize"]
    after = [np.array(v) for n in g.nodes for v in n.params().values()]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    assert out.conventions.method.value == "exact"
    with pytest.raises(ValueError):
        out.node("fc1").weight[0, 0] = 1.0  # arrays are read-only


def test_fold_scale_into_next_synapse(tmp_path):
    g = lif_chain()
    s = np.array([2.0, -1.0, 0.5, 3.0])
    g.nodes["scale"] = nir.Scale(scale=s)
    g.edges = [e for e in g.edges if e != ("lif1", "fc2")] + [("lif1", "scale"), ("scale", "fc2")]
    graph = _graph(tmp_path, g, dt=1e-3)
    folded = fold_scales(graph)
    assert "scale" not in folded and ("lif1", "fc2") in folded.edges
    np.testing.assert_allclose(folded.node("fc2").weight, graph.node("fc2").weight * s[None, :])
    assert "folded Scale 'scale'" in folded.history[-1].changes[0]


def test_fuse_synapses_moves_gains_and_keeps_dynamics(tmp_path):
    graph = _graph(tmp_path, dt=1e-3)
    fused = fuse_synapses(graph)
    lif2 = fused.node("lif2")
    assert isinstance(lif2, CubaLIF) and np.all(lif2.r == 1) and np.all(lif2.w_in == 1)
    np.testing.assert_allclose(fused.node("fc2").weight, graph.node("fc2").weight * 6.0)  # r=2 * w_in=3
    np.testing.assert_allclose(fused.node("fc1").bias, graph.node("fc1").bias * 10.0)  # LIF r=10
    # Same membrane response to the same input: v is unchanged, only the synaptic state scales by r.
    for name in ("lif1", "lif2"):
        for method in ("euler", "exact"):
            a = step_coefficients(graph.node(name), 1e-3, method)
            b = step_coefficients(fused.node(name), 1e-3, method)
            gain = graph.node(name).r * (graph.node(name).w_in if name == "lif2" else 1.0)
            np.testing.assert_allclose(a.k_x, b.k_x * gain)
            np.testing.assert_allclose(a.a_mem, b.a_mem)


def test_fuse_keeps_shared_synapse(tmp_path):
    g = lif_chain()
    g.nodes["lif1b"] = nir.LIF(
        tau=np.full(4, 0.01),
        r=np.full(4, 3.0),
        v_leak=np.zeros(4),
        v_threshold=np.ones(4),
        v_reset=np.zeros(4),
    )
    g.nodes["out2"] = nir.Output(output_type={"output": np.array([4])})
    g.edges += [("fc1", "lif1b"), ("lif1b", "out2")]
    fused = fuse_synapses(_graph(tmp_path, g, dt=1e-3))
    assert np.all(fused.node("lif1").r == 10.0)
    assert any("also feeds other nodes" in c for c in fused.history[-1].changes)


def test_discretize_exact_cuba_matches_matrix_exponential(tmp_path):
    graph = _graph(tmp_path, dt=1e-3)
    node = graph.node("lif2")
    dt = 1e-3
    co = step_coefficients(node, dt, "exact")
    ts, tm, r, w = node.tau_syn[0], node.tau_mem[0], node.r[0], node.w_in[0]
    # Augmented linear system [I, v, x]: expm by scaling and squaring of a Taylor series (float64).
    a = np.array([[-1 / ts, 0, w / ts], [r / tm, -1 / tm, 0], [0, 0, 0]]) * dt
    m = np.eye(3)
    term = np.eye(3)
    small = a / 2**10
    for k in range(1, 20):
        term = term @ small / k
        m = m + term
    for _ in range(10):
        m = m @ m
    assert co.a_syn[0] == pytest.approx(m[0, 0], rel=1e-12)
    assert co.b_syn[0] == pytest.approx(m[0, 2], rel=1e-12)
    assert co.a_mem[0] == pytest.approx(m[1, 1], rel=1e-12)
    assert co.k_i[0] == pytest.approx(m[1, 0], rel=1e-10)
    assert co.k_x[0] == pytest.approx(m[1, 2], rel=1e-10)


def test_discretize_equal_time_constants_is_stable():
    node = CubaLIF(
        "n",
        tau_mem=[1e-3],
        tau_syn=[1e-3],
        r=[1.0],
        v_leak=[0.0],
        v_threshold=[1.0],
        v_reset=[0.0],
        w_in=[1.0],
    )
    co = step_coefficients(node, 1e-4, "exact")
    assert co.k_i[0] == pytest.approx(0.1 * np.exp(-0.1), rel=1e-14)  # K = dt/tau * exp(-dt/tau) when equal


def test_discretize_rejects_bad_dt():
    with pytest.raises(ConventionError):
        discretize(-1.0, "euler")
    with pytest.raises(ConventionError):
        discretize(1e-3, "rk4")


def test_rescale_time_exact_keeps_tau_and_reports_error(tmp_path):
    graph = _graph(tmp_path, dt=1e-3, method="exact")
    out = rescale_time(1e-3, 2e-3)(graph)
    np.testing.assert_allclose(out.node("lif1").tau, graph.node("lif1").tau)
    assert out.conventions.dt.value == 2e-3
    err = out.history[-1].metrics["impulse_rel_error"]
    assert 0.0 < err < 1.0


def test_rescale_time_euler_compounds_decay(tmp_path):
    graph = _graph(tmp_path, dt=1e-3, method="euler")
    out = rescale_time(1e-3, 4e-3)(graph)
    beta_train = step_coefficients(graph.node("lif1"), 1e-3, "euler").a_mem
    beta_hw = step_coefficients(out.node("lif1"), 4e-3, "euler").a_mem
    np.testing.assert_allclose(beta_hw, beta_train**4, rtol=1e-12)
    # One input spike gives the same jump at both step sizes.
    np.testing.assert_allclose(
        step_coefficients(out.node("lif1"), 4e-3, "euler").k_x,
        step_coefficients(graph.node("lif1"), 1e-3, "euler").k_x,
    )
    # Identity rescale changes nothing.
    same = rescale_time(1e-3, 1e-3)(graph)
    assert same.history[-1].metrics["impulse_rel_error"] < 1e-12


def test_flatten_is_idempotent_on_flat_graphs(tmp_path):
    graph = sd.load(nested_dotted(tmp_path / "n.nir"), dt=1e-4)
    again = flatten(graph)
    assert [n.name for n in again.nodes] == [n.name for n in graph.nodes]
    assert again.history[-1].changes == ("graph was already flat",)


def test_inspect_json_is_one_object(tmp_path):
    path = zoo_path("braille_noDelay_noBias_subtract.nir")
    if not path.exists():
        pytest.skip(f"{path} is absent")
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", "inspect", str(path), "--json"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert set(doc) == {"nodes", "edges", "conventions", "warnings"}
    assert {"name": "lif1.lif", "type": "CubaLIF", "shape": [40]} in doc["nodes"]
    assert ["lif1.w_rec", "lif1.lif"] in doc["edges"]
    assert doc["conventions"]["dt"] == {
        "value": 0.0001,
        "source": "inferred",
        "note": "every neuron has r == tau/dt (snnTorch's forward-Euler export)",
    }
    assert any("subtract" in w for w in doc["warnings"])


@pytest.mark.parametrize("command", ["inspect", "targets", "deploy", "doctor", "simulate", "validate"])
def test_every_command_has_help(command):
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", command, "--help"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Usage" in proc.stdout


def test_version():
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", "--version"], capture_output=True, text=True
    )
    assert proc.returncode == 0 and sd.__version__ in proc.stdout
