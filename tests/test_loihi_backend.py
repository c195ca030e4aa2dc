"""Loihi 2 backend: mapping, shared-parameter and reset rules, netx artefact, agreement, Lava round trip."""

from __future__ import annotations

import h5py
import nir
import numpy as np
import pytest
from nir_files import zoo_path

import snn_deploy as sd
from snn_deploy import errors
from snn_deploy.backends import get_target
from snn_deploy.backends.loihi import load_artefact
from snn_deploy.report import validate
from snn_deploy.sim import loihi as loihi_sim

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DT = 1e-3


def _cuba(n, tm=16 * DT, ts=4 * DT, thr=1.0, v_leak=0.0):
    return nir.CubaLIF(
        tau_mem=np.full(n, tm), tau_syn=np.full(n, ts), r=np.full(n, tm / DT), v_leak=np.full(n, v_leak),
        v_threshold=np.full(n, thr), v_reset=np.zeros(n), w_in=np.full(n, ts / DT),
    )  # fmt: skip


def net(
    tmp_path,
    n_in=10,
    n_h=24,
    n_out=5,
    rec=True,
    bias=False,
    hidden=None,
    name="m.nir",
    seed=5,
    rec_bias=False,
):
    rng = np.random.default_rng(seed)
    fc1 = (
        nir.Affine(weight=rng.normal(0, 0.3, (n_h, n_in)), bias=rng.normal(0, 0.02, n_h))
        if bias
        else nir.Linear(weight=rng.normal(0, 0.3, (n_h, n_in)))
    )
    nodes = {
        "input": nir.Input(input_type={"input": np.array([n_in])}),
        "fc1": fc1,
        "lif1": hidden if hidden is not None else _cuba(n_h),
        "fc2": nir.Linear(weight=rng.normal(0, 0.3, (n_out, n_h))),
        "lif2": _cuba(n_out, 8 * DT, 2 * DT),
        "output": nir.Output(output_type={"output": np.array([n_out])}),
    }
    edges = [("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"), ("lif2", "output")]
    if rec:
        w_rec = rng.normal(0, 0.05, (n_h, n_h))
        nodes["rec"] = (
            nir.Affine(weight=w_rec, bias=np.full(n_h, 0.01)) if rec_bias else nir.Linear(weight=w_rec)
        )
        edges += [("lif1", "rec"), ("rec", "lif1")]
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def deploy(path, out, **kw):
    conv = {k: kw.pop(k) for k in ("dt", "method", "reset") if k in kw}
    conv.setdefault("reset", "zero")
    return get_target("loihi2").deploy(sd.load(path, **conv), out, **kw)


def test_netx_file_layout_and_ranges(tmp_path):
    report = deploy(net(tmp_path, bias=True), tmp_path / "m.loihi2")
    validate(report)
    with h5py.File(tmp_path / "m.loihi2" / "network.net", "r") as f:
        assert sorted(f["layer"]) == ["0", "1"]
        l0 = f["layer/0"]
        assert l0["type"][0] == b"dense_rec"
        w, wr = l0["weight"][()], l0["weight_rec"][()]
        assert w.shape == (24, 10) and wr.shape == (24, 24)
        assert -128 <= min(w.min(), wr.min()) and max(w.max(), wr.max()) <= 127  # nothing clamped: in range
        assert "bias" in l0 and np.any(l0["bias"][()])  # the Affine bias is kept
        assert l0["neuron/iDecay"][()] == 1024  # 4096 * dt/tau_syn = 4096/4
        assert l0["neuron/vDecay"][()] == 256  # 4096/16
        assert "messageBits" not in l0["neuron"]
    assert all(layer["weights_clamped"] == 0 for layer in report["layers"])


def test_emulator_agrees_with_float_reference(tmp_path):
    report = deploy(net(tmp_path, rec=False), tmp_path / "m.loihi2")
    agree = report["agreement"]
    assert agree["latency_steps"] == 2  # one step per dense layer
    for name, a in [*agree["layers"].items(), ("output", agree["output"])]:
        assert a["reference_spikes"] > 30, name
        assert a["count_corr"] > 0.98, (name, a)
        assert a["overlap_1step"] > 0.85, (name, a)


def test_artefact_reads_back(tmp_path):
    deploy(net(tmp_path), tmp_path / "m.loihi2")
    network, meta = load_artefact(tmp_path / "m.loihi2")
    assert meta["layers"][0]["latency_steps"] == 1 and meta["layers"][1]["latency_steps"] == 2
    x = (np.random.default_rng(0).random((60, 10)) < 0.2).astype(np.int32)
    trace = loihi_sim.simulate(network, x)
    assert trace.s[1].shape == (60, 5)
    bare, _ = load_artefact(tmp_path / "m.loihi2" / "network.net")
    np.testing.assert_array_equal(loihi_sim.simulate(bare, x).v[0], trace.v[0])


def test_heterogeneous_time_constants_are_refused(tmp_path):
    cuba = _cuba(24)
    cuba.tau_mem[3] = 20 * DT
    with pytest.raises(errors.UnsupportedNode, match="membrane decay differs"):
        deploy(net(tmp_path, hidden=cuba), tmp_path / "x.loihi2", dt=DT)
    assert not (tmp_path / "x.loihi2").exists()


def test_subtract_reset_needs_allow_approximate(tmp_path):
    path = net(tmp_path)
    with pytest.raises(errors.ConventionError, match="resets v to 0"):
        deploy(path, tmp_path / "x.loihi2", reset="subtract")
    report = deploy(path, tmp_path / "x.loihi2", reset="subtract", allow_approximate=True)
    assert any("--allow-approximate" in w for w in report["warnings"])
    assert any("changes the float model" in w and "overlap" in w for w in report["warnings"])


def test_braille_deploys_in_range():
    path = zoo_path("braille_noDelay_noBias_subtract.nir")
    if not path.exists():
        pytest.skip(f"{path} is absent")
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        report = deploy(path, Path(d) / "b.loihi2")
        with h5py.File(Path(d) / "b.loihi2" / "network.net", "r") as f:
            w = np.concatenate([f["layer/0/weight"][()].ravel(), f["layer/0/weight_rec"][()].ravel()])
            assert w.min() >= -128 and w.max() <= 127
    validate(report)
    assert report["layers"][0]["weights_clamped"] == 0


def test_written_netx_runs_in_lava_equal_to_emulator(tmp_path):
    lava_ref = pytest.importorskip("lava_ref")
    lava_ref.require_lava()
    deploy(net(tmp_path, bias=True), tmp_path / "m.loihi2")
    network, _ = load_artefact(tmp_path / "m.loihi2")
    x = (np.random.default_rng(3).random((80, 10)) < 0.25).astype(np.int32)
    (ref,) = lava_ref.run_lava([lava_ref.NetxJob(str(tmp_path / "m.loihi2" / "network.net"), x)])
    assert lava_ref.compare(network, x, ref) == []


def test_recurrent_bias_is_kept(tmp_path):
    """The NIR paper's Lava path dropped the recurrent Affine bias; it must reach the neuron bias here."""
    with_bias = deploy(net(tmp_path, rec_bias=True, name="a.nir"), tmp_path / "a.loihi2")
    without = deploy(net(tmp_path, rec_bias=False, name="b.nir"), tmp_path / "b.loihi2")
    with h5py.File(tmp_path / "a.loihi2" / "network.net", "r") as f:
        bias = f["layer/0/bias"][()]
    assert np.all(bias > 0)  # 0.01 per step of recurrent bias, scaled to mantissa units
    with h5py.File(tmp_path / "b.loihi2" / "network.net", "r") as f:
        assert "bias" not in f["layer/0"]
    assert any("steady state" in w for w in with_bias["warnings"])  # CubaLIF: mapped at its steady state
    assert not any("steady state" in w for w in without["warnings"])
