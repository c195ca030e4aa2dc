"""Xylo backend: mapping correctness, limits, artefact files, report, CLI."""

from __future__ import annotations

import subprocess
import sys
import warnings

import nir
import numpy as np
import pytest
from nir_files import zoo_path

import snn_deploy as sd
from snn_deploy import errors
from snn_deploy.backends import get_target
from snn_deploy.backends.xylo import SPEC_KEYS, XyloArtefact
from snn_deploy.report import validate
from snn_deploy.sim import xylo as xylo_sim

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
DT = 1e-3


def _cuba(n: int, tm: float, ts: float, thr: float = 1.0, v_leak: float = 0.0) -> nir.CubaLIF:
    # snnTorch-style gains (r = tau_mem/dt, w_in = tau_syn/dt): forward-Euler gains exactly 1.
    return nir.CubaLIF(
        tau_mem=np.full(n, tm), tau_syn=np.full(n, ts), r=np.full(n, tm / DT), v_leak=np.full(n, v_leak),
        v_threshold=np.full(n, thr), v_reset=np.zeros(n), w_in=np.full(n, ts / DT),
    )  # fmt: skip


def net(tmp_path, n_in=10, hidden=(30,), n_out=5, seed=3, rec=True, out_node=None, name="m.nir", **neuron_kw):
    """Input -> (Linear -> CubaLIF [+ recurrent Linear])* -> Linear -> readout -> Output, decays exactly 1 - 2^-k."""
    rng = np.random.default_rng(seed)
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges = []
    prev, prev_n = "input", n_in
    for k, n in enumerate(hidden):
        nodes[f"fc{k}"] = nir.Linear(weight=rng.normal(0, 0.5 / np.sqrt(prev_n), (n, prev_n)))
        nodes[f"lif{k}"] = _cuba(n, 16 * DT, 4 * DT, **neuron_kw)
        edges += [(prev, f"fc{k}"), (f"fc{k}", f"lif{k}")]
        if rec:
            nodes[f"rec{k}"] = nir.Linear(weight=rng.normal(0, 0.05, (n, n)))
            edges += [(f"lif{k}", f"rec{k}"), (f"rec{k}", f"lif{k}")]
        prev, prev_n = f"lif{k}", n
    nodes["fco"] = nir.Linear(weight=rng.normal(0, 0.3, (n_out, prev_n)))
    nodes["out"] = out_node if out_node is not None else _cuba(n_out, 8 * DT, 2 * DT)
    nodes["output"] = nir.Output(output_type={"output": np.array([n_out])})
    edges += [(prev, "fco"), ("fco", "out"), ("out", "output")]
    path = tmp_path / name
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=edges))
    return path


def xylosim_from_npz(path, variant):
    """Exactly what a Rockpool user runs: ``XyloSim.from_specification(**dict(np.load("spec.npz")))``."""
    xylo_ref = pytest.importorskip("xylo_ref")
    xylo_ref.require_reference()
    xylosim = xylo_ref.xylosim_classes()[variant]
    return xylosim.from_specification(**dict(np.load(path, allow_pickle=False)))


def deploy(path, out, target="xylo", **kw):
    conv = {k: kw.pop(k) for k in ("dt", "method", "reset") if k in kw}
    conv.setdefault("reset", "subtract")
    return get_target(target).deploy(sd.load(path, **conv), out, **kw)


@pytest.mark.parametrize(
    ("hidden", "rec"),
    [((30,), False), ((20, 12), False), ((30,), True)],
    ids=["one-hidden", "two-hidden", "recurrent"],
)
def test_representable_decays_give_close_agreement(tmp_path, hidden, rec):
    """With tau/dt = 2^k the decays are exact; what remains is int8 weight rounding, floor-shift decay rounding and
    Xylo's multi-spike steps. Rates must agree closely (a wrong gain, e.g. a missing (1 - 2^-ds) factor, moves them
    by 25 % or more); spike timing agrees mostly (near-threshold flips shift single spikes)."""
    report = deploy(net(tmp_path, hidden=hidden, rec=rec), tmp_path / "m.xylo")
    validate(report)
    agree = report["agreement"]
    assert agree["latency_steps"] == len(hidden)
    for name, a in [*agree["layers"].items(), ("output", agree["output"])]:
        assert a["reference_spikes"] > 50, name  # the test net is active
        assert a["count_corr"] > (0.99 if not rec else 0.95), (name, a)
        assert a["rate_rel_diff"] < (0.05 if not rec else 0.1), (name, a)
        if not rec:
            assert a["overlap_1step"] > 0.8, (name, a)  # a wrong latency gives ~0.5
    for layer in report["layers"]:
        assert layer["decay_error_mem"] == 0.0
        assert layer["weight_rel_error"] < 0.02


def test_artefact_reads_back_and_is_deterministic(tmp_path):
    path = net(tmp_path)
    deploy(path, tmp_path / "a.xylo")
    deploy(path, tmp_path / "b.xylo")
    for f in ("spec.npz", "xylo.json", "report.json"):
        a, b = (tmp_path / "a.xylo" / f).read_bytes(), (tmp_path / "b.xylo" / f).read_bytes()
        if f == "report.json":  # it names its own directory
            a = a.replace(b"a.xylo", b"b.xylo")
        assert a == b, f
    art = XyloArtefact.load(tmp_path / "a.xylo")
    with np.load(tmp_path / "a.xylo" / "spec.npz", allow_pickle=False) as z:
        assert set(z.files) == set(SPEC_KEYS)
        assert z["weights_in"].dtype == np.int8 and z["weights_in"].ndim == 3
    x = (np.random.default_rng(1).random((50, 10)) < 0.2).astype(np.int32)
    out_a, _, rec_a = xylo_sim.evolve(art.spec, x)
    assert np.asarray(out_a).shape == (50, 5)
    assert art.meta["layers"][0]["node"] == "lif0" and art.meta["layers"][-1]["latency_steps"] == 1


def test_spec_npz_runs_in_xylosim_unchanged(tmp_path):
    deploy(net(tmp_path), tmp_path / "m.xylo")
    sim = xylosim_from_npz(tmp_path / "m.xylo" / "spec.npz", "syns61201")
    art = XyloArtefact.load(tmp_path / "m.xylo")
    x = (np.random.default_rng(2).random((100, 10)) < 0.3).astype(np.int64)
    out_ref, _, rec_ref = sim.evolve(x, record=True)
    out, _, rec = xylo_sim.evolve(art.spec, x)
    np.testing.assert_array_equal(np.asarray(out), out_ref)
    for key in ("Spikes", "Vmem", "Isyn", "Vmem_out", "Isyn_out"):
        np.testing.assert_array_equal(np.asarray(rec[key]), rec_ref[key], err_msg=key)


def test_braille_deploys_and_xylosim_equals_emulator(tmp_path):
    path = zoo_path("braille_noDelay_noBias_subtract.nir")
    if not path.exists():
        pytest.skip(f"{path} is absent")
    report = deploy(path, tmp_path / "b.xylo")
    validate(report)
    spec = XyloArtefact.load(tmp_path / "b.xylo").spec
    assert spec.n_in == 12 and spec.n_hidden == 40 and spec.n_out == 7
    assert [lay["dash_mem"] for lay in report["layers"]] == [
        [3],
        [2],
    ]  # log2(tau/dt) rounded: 6.67 -> 3, 3.33 -> 2
    sim = xylosim_from_npz(tmp_path / "b.xylo" / "spec.npz", "syns61201")
    x = (np.random.default_rng(4).random((300, 12)) < 0.2).astype(np.int64)
    out_ref, _, rec_ref = sim.evolve(x, record=True)
    out, _, rec = xylo_sim.evolve(spec, x)
    np.testing.assert_array_equal(np.asarray(out), out_ref)
    for key in ("Spikes", "Vmem", "Isyn", "Vmem_out", "Isyn_out"):
        np.testing.assert_array_equal(np.asarray(rec[key]), rec_ref[key], err_msg=key)


@pytest.mark.parametrize(
    ("kwargs", "target", "exc", "words"),
    [
        (dict(n_in=17), "xylo", errors.DoesNotFit, "inputs: 17 > 16 on xylo-audio2"),
        (
            dict(hidden=(600, 500), rec=False),
            "xylo",
            errors.DoesNotFit,
            "hidden neurons: 1100 > 1000 on xylo-audio2",
        ),
        (dict(n_out=9), "xylo", errors.DoesNotFit, "output neurons: 9 > 8 on xylo-audio2"),
        (dict(hidden=(200,), rec=False), "xylo-imu", errors.DoesNotFit, "200 > 128"),
        (dict(v_leak=0.1), "xylo-v1", errors.DoesNotFit, "has no bias"),
        (dict(hidden=(200,), rec=True), "xylo", errors.DoesNotFit, r"recurrent synapses: \d+ > 32000"),
        (dict(hidden=(70,), rec=True), "xylo", errors.DoesNotFit, r"fan-out per hidden neuron: \d+ > 64"),
    ],
    ids=["inputs", "hidden", "outputs", "imu-expansion", "v1-bias", "recurrent-budget", "fan-out"],
)
def test_limits_raise_does_not_fit(tmp_path, kwargs, target, exc, words):
    path = net(tmp_path, **kwargs)
    with pytest.raises(exc, match=words.replace("(", r"\(")):
        deploy(path, tmp_path / "x.xylo", target=target)
    assert not (tmp_path / "x.xylo").exists()  # nothing half-written


def test_reset_zero_needs_allow_approximate(tmp_path):
    path = net(tmp_path)
    with pytest.raises(errors.ConventionError, match="only resets by subtracting"):
        deploy(path, tmp_path / "x.xylo", reset="zero")
    report = deploy(path, tmp_path / "x.xylo", reset="zero", allow_approximate=True)
    assert any("--allow-approximate" in w for w in report["warnings"])
    assert any("changes the float model" in w and "overlap" in w for w in report["warnings"])


def test_lif_needs_allow_approximate(tmp_path):
    lif = nir.LIF(
        tau=np.full(5, 8 * DT),
        r=np.full(5, 8.0),
        v_leak=np.zeros(5),
        v_threshold=np.ones(5),
        v_reset=np.zeros(5),
    )
    path = net(tmp_path, out_node=lif)
    with pytest.raises(errors.UnsupportedNode, match="no synaptic current"):
        deploy(path, tmp_path / "x.xylo", dt=DT)
    report = deploy(path, tmp_path / "x.xylo", dt=DT, allow_approximate=True)
    assert report["layers"][-1]["approximations"]


def test_cli_deploy_and_errors(tmp_path):
    path = net(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", "--target", "xylo", str(path), "--reset", "subtract", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "m.xylo" / "spec.npz").exists()
    big = net(tmp_path, n_in=20, name="big.nir")
    proc = subprocess.run(
        [sys.executable, "-m", "snn_deploy.cli", "--target", "xylo", str(big), "--reset", "subtract"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "big.nir" in lines[0] and "inputs: 20 > 16" in lines[0], proc.stderr


def test_unknown_target(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(errors.SnnDeployError, match="no target named"):
            get_target("spinnaker9")


def test_calibration_sets_scales_and_adds_timing_section(tmp_path):
    path = net(tmp_path, rec=False)
    x = (np.random.default_rng(5).random((3, 80, 10)) < 0.15).astype(np.int32)
    np.savez(tmp_path / "cal.npz", input=x)
    report = deploy(path, tmp_path / "c.xylo", calibration=str(tmp_path / "cal.npz"))
    validate(report)
    assert report["agreement"]["input"].startswith("calibration file")
    timing = report["timing"]
    assert timing["samples_checked"] == 3 and timing["spikes"] > 0
    # every observed spike and every missed one gets exactly one label
    assert (
        timing["matched"] + timing["marginal"] + timing["unexplained"] == timing["spikes"] + timing["missed"]
    )
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.full((10, 10), 0.5))
    with pytest.raises(errors.InputError, match="integer spike counts"):
        deploy(path, tmp_path / "d.xylo", calibration=str(bad))
