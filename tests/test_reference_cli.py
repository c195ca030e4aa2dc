"""``snn-deploy simulate``: npz in, npz out, chunked runs equal one run, errors are one line."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from reference_helpers import a, chain

from snn_deploy.cli_simulate import simulate_command
from snn_deploy.errors import InputError
from snn_deploy.io import save
from snn_deploy.nodes import LIF, CubaLIF, Linear
from snn_deploy.sim.reference import simulate


@pytest.fixture()
def model(tmp_path):
    rng = np.random.default_rng(0)
    g = chain(
        (3,),
        Linear("fc1", weight=rng.normal(size=(4, 3)) * 3),
        CubaLIF(
            "h",
            tau_mem=a(*[0.01] * 4),
            tau_syn=a(*[0.005] * 4),
            r=a(*[1.0] * 4),
            v_leak=a(*[0.0] * 4),
            v_threshold=a(*[0.3] * 4),
            v_reset=a(*[0.0] * 4),
            w_in=a(*[1.0] * 4),
        ),
        Linear("fc2", weight=rng.normal(size=(2, 4))),
        LIF(
            "o",
            tau=a(0.01, 0.01),
            r=a(1.0, 1.0),
            v_leak=a(0.0, 0.0),
            v_threshold=a(0.1, 0.1),
            v_reset=a(0.0, 0.0),
        ),
        dt=1e-3,
        reset="subtract",
    )
    path = tmp_path / "m.nir"
    save(g, path)
    return g, path


@pytest.mark.parametrize("batched", [False, True])
def test_simulate_writes_all_traces_and_chunks_agree(model, tmp_path, batched):
    g, path = model
    rng = np.random.default_rng(1)
    x = (rng.random((2, 50, 3) if batched else (50, 3)) < 0.4).astype(np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    runner = CliRunner()
    res = runner.invoke(
        simulate_command,
        [str(path), "--input", str(tmp_path / "in.npz"), "-o", str(tmp_path / "out.npz"), "--chunk", "7"],
    )
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "out.npz") as z:
        got = dict(z)
    assert set(got) == {"output", "spikes.h", "v.h", "i.h", "spikes.o", "v.o"}
    want = simulate(g, x)
    lead = x.shape[:-1]
    assert got["output"].shape == (*lead, 2)
    assert got["spikes.h"].sum() > 0
    np.testing.assert_array_equal(got["spikes.h"], np.asarray(want.spikes["h"]))
    np.testing.assert_allclose(got["v.o"], np.asarray(want.v["o"]), atol=1e-5)


def test_simulate_overrides_conventions(model, tmp_path):
    g, path = model
    x = np.ones((20, 3), np.float32)
    np.savez(tmp_path / "in.npz", input=x)
    res = CliRunner().invoke(
        simulate_command,
        [
            str(path),
            "-i",
            str(tmp_path / "in.npz"),
            "-o",
            str(tmp_path / "o.npz"),
            "--dt",
            "5e-4",
            "--method",
            "exact",
        ],
    )
    assert res.exit_code == 0, res.output
    with np.load(tmp_path / "o.npz") as z:
        v = z["v.h"]
    np.testing.assert_allclose(v, np.asarray(simulate(g, x, dt=5e-4, method="exact").v["h"]), atol=1e-5)


def test_bad_input_is_a_typed_error(model, tmp_path):
    _, path = model
    np.savez(tmp_path / "bad.npz", data=np.zeros((5, 3)))
    res = CliRunner().invoke(
        simulate_command, [str(path), "-i", str(tmp_path / "bad.npz"), "-o", str(tmp_path / "o.npz")]
    )
    assert isinstance(res.exception, InputError) and "no 'input' array" in str(res.exception)
    np.savez(tmp_path / "shape.npz", input=np.zeros((5, 4)))
    res = CliRunner().invoke(
        simulate_command, [str(path), "-i", str(tmp_path / "shape.npz"), "-o", str(tmp_path / "o.npz")]
    )
    assert isinstance(res.exception, InputError) and "expected (T, 3)" in str(res.exception)
    assert not (tmp_path / "o.npz").exists()


def test_main_cli_reports_one_line(model, tmp_path):
    from snn_deploy.cli import main

    _, path = model
    np.savez(tmp_path / "shape.npz", input=np.zeros((5, 4)))
    with pytest.raises(SystemExit) as e:
        main(["simulate", str(path), "-i", str(tmp_path / "shape.npz"), "-o", str(tmp_path / "o.npz")])
    assert e.value.code == 1
