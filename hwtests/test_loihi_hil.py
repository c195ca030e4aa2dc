"""Loihi 2 in the loop: the netx artefact runs on a chip through Lava-Loihi when present (never here), else on
Lava's bit-accurate CPU model in the Python 3.10 reference environment; u, v and s must equal our emulator's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from test_loihi_backend import deploy, net  # noqa: E402

from snn_deploy.hil import DeviceUnavailable, open_loihi_device, validate_loihi  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_device_equals_emulator(tmp_path):
    try:
        device = open_loihi_device()
    except DeviceUnavailable as e:
        pytest.skip(str(e))
    deploy(net(tmp_path, bias=True), tmp_path / "m.loihi2")
    x = (np.random.default_rng(11).random((120, 10)) < 0.2).astype(np.int32)
    result = validate_loihi(tmp_path / "m.loihi2", x, device)
    assert result["bit_exact"], result
    assert set(result["mismatches"]) == {"u.0", "v.0", "s.0", "u.1", "v.1", "s.1"}
