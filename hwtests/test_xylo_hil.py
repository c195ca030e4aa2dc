"""Xylo in the loop: the artefact runs on a Xylo board when samna finds one, else on XyloSim, through one Device
interface; every recorded array must equal our emulator's."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_xylo_backend import deploy, net  # noqa: E402

from snn_deploy.backends.xylo import XyloArtefact  # noqa: E402
from snn_deploy.hil import DeviceUnavailable, XyloSimDevice, open_xylo_device, validate_xylo  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _device():
    try:
        dev = open_xylo_device()
        if isinstance(dev, XyloSimDevice):
            from snn_deploy.hil import rockpool_xylo_classes

            rockpool_xylo_classes()
        return dev
    except DeviceUnavailable as e:
        pytest.skip(str(e))


@pytest.mark.parametrize("target", ["xylo-audio2", "xylo-imu", "xylo-audio3"])
def test_device_equals_emulator(tmp_path, target):
    dev = _device()
    deploy(net(tmp_path, hidden=(24, 16), rec=True), tmp_path / "m.xylo", target=target)
    art = XyloArtefact.load(tmp_path / "m.xylo")
    x = (np.random.default_rng(7).random((400, 10)) < 0.15).astype(np.int32)
    result = validate_xylo(art, x, dev)
    assert result["bit_exact"], result
    assert {"Spikes", "Vmem", "Isyn", "Vmem_out", "Isyn_out", "output"} <= set(result["mismatches"])


@pytest.mark.skipif(
    importlib.util.find_spec("samna") is None, reason="samna (Xylo SDK) is not installed here"
)
def test_real_board_is_used_when_present():  # pragma: no cover - needs samna and a board
    dev = open_xylo_device()
    if dev.kind != "hardware":
        pytest.skip("samna is installed but no Xylo board is connected")
    assert dev.kind == "hardware"


def test_cli_simulate_and_validate_artefact(tmp_path):
    import subprocess

    _device()
    deploy(net(tmp_path), tmp_path / "m.xylo")
    x = (np.random.default_rng(3).random((2, 60, 10)) < 0.2).astype(np.int32)
    np.savez(tmp_path / "in.npz", input=x)
    np.savez(tmp_path / "in1.npz", input=x[0])
    cli = [sys.executable, "-m", "snn_deploy.cli"]
    proc = subprocess.run([*cli, "simulate", str(tmp_path / "m.xylo"), "--input", str(tmp_path / "in.npz"), "-o",
                           str(tmp_path / "out.npz")], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "out.npz") as z:
        assert {"Spikes", "Vmem", "Isyn", "Isyn2", "Vmem_out", "Isyn_out", "output"} <= set(z.files)
        assert z["Vmem"].shape == (2, 60, 30) and z["output"].shape == (2, 60, 5)
    proc = subprocess.run([*cli, "validate", str(tmp_path / "m.xylo"), "--input", str(tmp_path / "in1.npz"),
                           "--json"], capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert '"bit_exact": true' in proc.stdout
