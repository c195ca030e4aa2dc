"""``snn-deploy exact`` / ``snn-deploy timing`` and the timing check on the zoo graphs (skipped without ../shared)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from nir_files import zoo_path
from reference_helpers import a, chain

from snn_deploy.cli import main
from snn_deploy.cli_exact import exact_command, timing_command
from snn_deploy.io import load, save
from snn_deploy.nodes import LIF, Linear

DT = 1e-4


@pytest.fixture()
def model(tmp_path):
    rng = np.random.default_rng(0)
    g = chain(
        (3,),
        Linear("fc", weight=rng.normal(0.4, 0.2, (2, 3))),
        LIF(
            "l",
            tau=a(2.5e-3, 2.5e-3),
            r=a(1.0, 1.0),
            v_leak=a(0.0, 0.0),
            v_threshold=a(0.1, 0.1),
            v_reset=a(0.0, 0.0),
        ),
        dt=DT,
    )
    path = save(g, tmp_path / "m.nir")
    x = (rng.random((2, 200, 3)) < 0.3).astype(np.int64)
    np.savez(tmp_path / "in.npz", input=x)
    np.savez(tmp_path / "one.npz", input=x[0])
    return path, tmp_path


def test_exact_cli_writes_times_and_neurons(model):
    path, tmp = model
    r = CliRunner().invoke(
        exact_command,
        [str(path), "--input", str(tmp / "one.npz"), "--dt", str(DT), "-o", str(tmp / "out.npz")],
    )
    assert r.exit_code == 0, r.output
    with np.load(tmp / "out.npz") as z:
        assert set(z.files) == {"times.l", "neurons.l"}
        t, n = z["times.l"], z["neurons.l"]
    assert t.dtype == np.float64 and len(t) == len(n) > 5 and np.all(np.diff(t) >= 0)
    r = CliRunner().invoke(
        exact_command,
        [
            str(path),
            "--input",
            str(tmp / "in.npz"),
            "--dt",
            str(DT),
            "--input-semantics",
            "pulse",
            "-o",
            str(tmp / "b.npz"),
        ],
    )
    assert r.exit_code == 0, r.output
    with np.load(tmp / "b.npz") as z:
        assert "sample.l" in z.files and set(np.unique(z["sample.l"])) == {0, 1}


def test_timing_cli_json(model):
    path, tmp = model
    r = CliRunner().invoke(
        timing_command,
        [str(path), "--target", "reference", "--input", str(tmp / "in.npz"), "--dt", str(DT), "--json"],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    for k in ("spikes", "matched", "marginal", "unexplained", "layers"):
        assert k in rep
    assert rep["spikes"] > 5 and rep["matched"] == rep["spikes"]  # Euler LIF = exact with matched tau
    assert "l" in rep["layers"] and rep["layers"]["l"]["latency_steps"] == 0


def test_cli_errors_are_one_line_exit_1(model, capsys):
    path, tmp = model
    np.savez(tmp / "bad.npz", other=np.zeros(3))
    with pytest.raises(SystemExit) as e:
        main(["exact", str(path), "--input", str(tmp / "bad.npz"), "--dt", str(DT), "-o", str(tmp / "o.npz")])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "input" in err[0]


_SLOW = pytest.mark.slow
CASES = [
    pytest.param("braille_noDelay_noBias_subtract.nir", "subtract", "xylo", marks=_SLOW),
    pytest.param("braille_noDelay_noBias_subtract.nir", "zero", "loihi2", marks=_SLOW),
    pytest.param("braille_noDelay_noBias_subtract.nir", "subtract", "reference", marks=_SLOW),
    ("two_lif_neurons.nir", None, "loihi2"),
    ("two_lif_neurons.nir", None, "reference"),
    ("lif_rockpool.nir", None, "loihi2"),
    ("lif_rockpool.nir", None, "reference"),
]


@pytest.mark.parametrize(("name", "reset", "target"), CASES)
def test_zoo_timing_every_spike_classified(name, reset, target):
    from snn_deploy.sim.timing_graph import timing_check

    path = zoo_path(name)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = load(path, dt=DT, reset=reset)
    x = (np.random.default_rng(0).random((2, 300, int(g.inputs[0].shape[0]))) < 0.2).astype(np.int64)
    rep = timing_check(g, target, x)
    assert rep["spikes"] > 0
    # every emulator spike and every missed exact spike carries exactly one label
    assert rep["matched"] + rep["marginal"] + rep["unexplained"] == rep["spikes"] + rep["missed"]
    assert rep["unexplained"] == 0
    for lay in rep["layers"].values():
        for m in lay["mismatches"]:
            assert m["label"] in ("marginal", "unexplained")
