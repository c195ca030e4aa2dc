"""netx HDF5 reader/writer (snn_deploy.backends.loihi_netx); Lava-backed checks need ``.lava-venv``."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from snn_deploy.backends.loihi_netx import (
    NetxFormatError,
    NetxLayer,
    NetxModel,
    NetxNeuron,
    UnsupportedNetxLayer,
    netx_optimize_weight_bits,
    read_netx,
    to_loihi_network,
    write_netx,
)
from snn_deploy.sim.loihi import ConvParams, simulate
from tests.lava_ref import NetxJob, compare, run_lava


def _neuron(rng) -> NetxNeuron:
    return NetxNeuron(int(rng.integers(0, 4097)), int(rng.integers(0, 4096)), int(rng.integers(1, 60)))


def dense_model(seed: int) -> NetxModel:
    rng = np.random.default_rng(seed)
    return NetxModel(
        layers=(
            NetxLayer(
                "dense",
                (6,),
                weight=rng.integers(-128, 128, (6, 5)),
                bias=rng.integers(-20, 20, 6),
                neuron=_neuron(rng),
            ),
            NetxLayer(
                "dense_rec",
                (4,),
                weight=2 * rng.integers(-128, 128, (4, 6)),
                weight_rec=2 * rng.integers(-100, 100, (4, 4)),
                neuron=_neuron(rng),
            ),
            NetxLayer(
                "dense",
                (3,),
                weight=rng.integers(-128, 0, (3, 4)),
                delay=rng.integers(0, 5, (3,)),
                neuron=_neuron(rng),
            ),
            NetxLayer(
                "dense",
                (2,),
                weight=rng.integers(0, 256, (2, 3)),
                delay=rng.integers(0, 3, (2, 3)),
                neuron=_neuron(rng),
            ),
        ),
        attrs={"K": 64.0, "dt": 1e-3, "latency": 4},
    )


def conv_model(seed: int) -> NetxModel:
    rng = np.random.default_rng(seed)
    return NetxModel(
        layers=(
            NetxLayer("input", (2, 6, 7)),
            NetxLayer(
                "conv",
                (4, 3, 3),
                weight=rng.integers(-40, 40, (4, 1, 3, 3)),
                bias=rng.integers(-3, 3, 4),
                neuron=_neuron(rng),
                stride=(2, 3),
                padding=(1, 1),
                dilation=(1, 1),
                groups=2,
            ),
            NetxLayer("flatten", (36,)),
            NetxLayer("dense", (5,), weight=rng.integers(-60, 60, (5, 36)), neuron=_neuron(rng)),
        )
    )


def test_roundtrip_and_deterministic_bytes(tmp_path):
    m = dense_model(0)
    a, b = write_netx(m, tmp_path / "a.net"), write_netx(m, tmp_path / "b.net")
    assert hashlib.sha256(a.read_bytes()).digest() == hashlib.sha256(b.read_bytes()).digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.net", "b.net"]  # no temporary files left
    back = read_netx(a)
    assert back.attrs["latency"] == 4 and len(back.layers) == 4
    for x, y in zip(m.layers, back.layers, strict=True):
        assert x.kind == y.kind and x.shape == y.shape and x.neuron == y.neuron
        for key in ("weight", "weight_rec", "bias", "delay"):
            assert (getattr(x, key) is None) == (getattr(y, key) is None)
            if getattr(x, key) is not None:
                assert np.array_equal(getattr(x, key), getattr(y, key))


def test_conversion_follows_netx_rules(tmp_path):
    net = to_loihi_network(read_netx(write_netx(dense_model(0), tmp_path / "m.net")), reset_interval=8)
    assert [lp.du for lp in net.layers] == [
        n.i_decay - 1 for n in (layer.neuron for layer in dense_model(0).layers)
    ]
    assert all((lp.bias_exp == 6).all() for lp in net.layers)
    assert [lp.reset_offset for lp in net.layers] == [1, 2, 3, 4]  # staggered by the pipeline
    kinds = [(p.src, p.dst) for p in net.projections]
    assert kinds == [(-1, 0), (0, 1), (1, 1), (1, 2), (2, 3)]  # dense_rec adds a self projection
    cnet = to_loihi_network(conv_model(1))
    assert isinstance(cnet.projections[0].synapse, ConvParams) and cnet.layers[0].size == 36


def test_optimize_weight_bits_examples():
    w, nwb, exp = netx_optimize_weight_bits(np.array([[-114, 92, 2]]))
    assert (nwb, exp) == (7, -1) and w.tolist() == [[-228, 184, 4]]  # NIR network.net layer 1 pattern
    w, nwb, exp = netx_optimize_weight_bits(np.array([[-198, 198, 2]]))
    assert (nwb, exp) == (8, 0) and w.tolist() == [[-198, 198, 2]]
    with pytest.raises(NetxFormatError, match="all-zero"):
        netx_optimize_weight_bits(np.zeros((2, 2)))


def test_reads_slayer_style_file(tmp_path):
    """slayer writes S10 types, float32 weights, a vlen 'CUBA' string and extra keys netx ignores."""
    path = tmp_path / "slayer.net"
    rng = np.random.default_rng(3)
    w = (2 * rng.integers(-99, 99, (4, 3))).astype(np.float32)
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g["type"] = np.array([b"dense"], dtype="S10")
        g["shape"] = np.array([4])
        g["weight"] = w
        g["inFeatures"], g["outFeatures"] = 3, 4
        n = g.create_group("neuron")
        n["type"] = "CUBA"
        n["iDecay"], n["vDecay"], n["vThMant"], n["refDelay"], n["gradedSpike"] = 4096, 414, 6, 1, False
    model = read_netx(path)
    assert model.layers[0].neuron == NetxNeuron(4096, 414, 6)
    assert np.array_equal(model.layers[0].weight, w.astype(int))
    net = to_loihi_network(model)
    assert net.n_in == 3 and net.layers[0].du == 4095


def test_errors_name_the_layer(tmp_path):
    path = tmp_path / "pool.net"
    with h5py.File(path, "w") as f:
        f.create_group("layer/0")["type"] = np.array([b"pool"], dtype="S10")
    with pytest.raises(UnsupportedNetxLayer, match="layer/0.*'pool'"):
        read_netx(path)
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g["type"], g["shape"], g["weight"] = np.array([b"dense"], dtype="S10"), [1], [[1]]
        n = g.create_group("neuron")
        n["type"], n["iDecay"], n["vDecay"], n["vThMant"], n["messageBits"] = "CUBA", 1, 1, 1, 0
    with pytest.raises(NetxFormatError, match="messageBits"):
        read_netx(path)
    with h5py.File(path, "w") as f:
        g = f.create_group("layer/0")
        g["type"], g["shape"] = np.array([b"dense"], dtype="S10"), [1]
        g.create_group("neuron")["type"] = "SDNN"
    with pytest.raises(UnsupportedNetxLayer, match="SDNN"):
        read_netx(path)
    bad = NetxModel(
        (NetxLayer("dense", (2,), weight=np.array([[3, -3], [1, 1]]) * 61, neuron=NetxNeuron(1, 1, 1)),)
    )
    with pytest.raises(NetxFormatError, match="not exactly representable"):
        write_netx(bad, tmp_path / "bad.net")
    assert not (tmp_path / "bad.net").exists()
    with pytest.raises(NetxFormatError, match="no /layer"):
        h5py.File(tmp_path / "empty.net", "w").close()
        read_netx(tmp_path / "empty.net")


@pytest.mark.lava
def test_written_files_run_in_netx_equal_to_emulator(tmp_path):
    """Our files load in lava-dl's netx.hdf5.Network and run in Lava bit-identically to the emulator."""
    rng = np.random.default_rng(11)
    jobs, nets = [], []
    cases = [(dense_model(s), {}) for s in range(3)] + [(conv_model(s), {}) for s in range(2)]
    cases.append((dense_model(5), {"reset_interval": 9, "reset_offset": 2}))
    cases.append((dense_model(6), {"input_message_bits": 8}))
    bias_in = rng.integers(0, 4, (2, 5, 5))
    input_model = NetxModel(
        (
            NetxLayer("input", (2, 5, 5), neuron=NetxNeuron(4096, 100, 3)),
            NetxLayer(
                "conv", (3, 3, 3), weight=rng.integers(-30, 30, (3, 2, 3, 3)), neuron=NetxNeuron(2000, 50, 8)
            ),
        )
    )
    for i, (model, opts) in enumerate(cases + [(input_model, {"input_bias": bias_in})]):
        path = write_netx(model, tmp_path / f"m{i}.net")
        net = to_loihi_network(read_netx(path), **opts)
        x = (rng.random((40, net.n_in)) < 0.35).astype(np.int32)
        if opts.get("input_message_bits"):
            x = x * rng.integers(-100, 100, x.shape).astype(np.int32)
        if "input_bias" in opts:
            x = np.zeros_like(x)
        jobs.append(NetxJob(str(path), x, **opts))
        nets.append(net)
    failures = []
    for i, (job, net, ref) in enumerate(zip(jobs, nets, run_lava(jobs), strict=True)):
        assert sum(int(s.sum()) for s in ref.s) > 0, f"file {i}: no spikes at all, the check would be weak"
        problems = compare(net, job.inputs, ref)
        if problems:
            failures.append(f"file {i}: " + "; ".join(problems))
    assert not failures, "\n".join(failures)


def test_emulator_runs_conv_model():
    net = to_loihi_network(conv_model(2))
    x = (np.random.default_rng(0).random((10, net.n_in)) < 0.5).astype(np.int32)
    trace = simulate(net, x)
    assert trace.s[0].shape == (10, 36) and trace.s[1].shape == (10, 5)
