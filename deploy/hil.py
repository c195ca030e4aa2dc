"""Hardware in the loop: one ``Device`` interface for real chips and for the vendor simulators that stand in for them.

A device loads an artefact and runs integer input, returning a record with the vendor's keys. :func:`open_device`
returns the real chip when its SDK and a board are present, otherwise the vendor reference simulator, and says
which (``device.kind``). :func:`validate` runs the same input on the device and on our emulator and compares every
recorded array.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import SnnDeployError


class DeviceUnavailable(SnnDeployError):
    """Neither the hardware nor a reference simulator for this target is available here."""


class Device(Protocol):
    """A chip or a stand-in for it."""

    kind: str  # "hardware" or "reference-simulator"
    name: str

    def load(self, artefact: Any) -> None: ...

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]: ...


# ---------------------------------------------------------------------- Xylo


def rockpool_xylo_classes() -> dict[str, Any]:
    """Rockpool's ``XyloSim`` per chip, imported without samna (targets/xylo.md section 5.1).

    ``import rockpool.devices.xylo`` fails without samna in Rockpool 3.1 because one sub-package star-imports a samna
    module; registering bare package objects with the real ``__path__`` lets the guarded sub-packages import.
    """
    if importlib.util.find_spec("rockpool") is None or importlib.util.find_spec("xylosim") is None:
        raise DeviceUnavailable(
            "Rockpool and xylosim are not installed", fix="pip install 'snn-deploy[xylo]'"
        )
    import rockpool.devices

    base = Path(rockpool.devices.__file__).parent / "xylo"
    for name, path in (
        ("rockpool.devices.xylo", base),
        ("rockpool.devices.xylo.syns65302", base / "syns65302"),
    ):
        if name not in sys.modules:
            mod = types.ModuleType(name)
            mod.__path__ = [str(path)]  # type: ignore[attr-defined]
            mod.__package__ = name
            sys.modules[name] = mod
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # Rockpool warns that its torch-only parts are unavailable: not needed here
        a2 = importlib.import_module("rockpool.devices.xylo.syns61201.xylo_sim")
        imu = importlib.import_module("rockpool.devices.xylo.syns63300.xylo_sim")
    return {"syns61201": a2.XyloSim, "syns63300": imu.XyloSim, "syns65302": imu.XyloSim}


class XyloSimDevice:
    """Rockpool's XyloSim (xylosim) as the stand-in for a Xylo board."""

    kind = "reference-simulator"

    def __init__(self) -> None:
        self.name = "XyloSim (rockpool/xylosim)"
        self._sim = None

    def load(self, artefact: Any) -> None:
        spec = artefact.spec
        classes = rockpool_xylo_classes()
        if spec.variant not in classes:
            raise DeviceUnavailable(
                f"no XyloSim for {spec.variant} in Rockpool 3.1 (core v1 is not simulated there)"
            )
        kw = spec.from_specification_kwargs()
        if not any(kw["aliases"]):
            kw.pop("aliases")
        self._sim = classes[spec.variant].from_specification(
            **kw, output_mode=artefact.meta.get("output_mode", "Spike")
        )

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        if self._sim is None:
            raise DeviceUnavailable("load an artefact first")
        self._sim.reset_state()
        out, _, rec = self._sim.evolve(np.asarray(inputs, np.int64), record=True)
        return {"output": np.asarray(out), **{k: np.asarray(v) for k, v in rec.items()}}


class XyloBoardDevice:  # pragma: no cover - needs samna and a board
    """A Xylo board through samna and Rockpool's XyloSamna."""

    kind = "hardware"

    def __init__(self, board: Any) -> None:
        self.board = board
        self.name = f"Xylo board {board}"
        self._mod = None

    def load(self, artefact: Any) -> None:
        from rockpool.devices.xylo.syns61201 import XyloSamna, config_from_specification

        config, ok, msg = config_from_specification(**artefact.spec.from_specification_kwargs())
        if not ok:
            raise DeviceUnavailable(f"samna rejected the configuration: {msg}")
        self._mod = XyloSamna(self.board, config, dt=artefact.meta["dt"])

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        self._mod.reset_state()
        out, _, rec = self._mod.evolve(np.asarray(inputs, np.int64), record=True)
        return {"output": np.asarray(out), **{k: np.asarray(v) for k, v in rec.items()}}


def open_xylo_device() -> Any:
    """A Xylo board when samna finds one, else XyloSim."""
    if importlib.util.find_spec("samna") is not None:  # pragma: no cover - needs samna
        from rockpool.devices.device_utils import find_xylo_hdks

        hdks, _, _ = find_xylo_hdks()
        if hdks:
            return XyloBoardDevice(hdks[0])
    return XyloSimDevice()


def compare_records(device_rec: dict[str, np.ndarray], emu_rec: dict[str, np.ndarray]) -> dict[str, int]:
    """Mismatching element count per array the two records share (0 everywhere = bit-exact)."""
    out = {}
    for k in sorted(set(device_rec) & set(emu_rec)):
        a, b = np.asarray(device_rec[k]), np.asarray(emu_rec[k])
        out[k] = int(np.count_nonzero(a != b)) if a.shape == b.shape else int(max(a.size, b.size))
    return out


def validate_xylo(artefact: Any, inputs: np.ndarray, device: Any | None = None) -> dict[str, Any]:
    """Run ``inputs`` ``(T, N_in)`` on the device and on our emulator; report mismatches per recorded array."""
    from snn_deploy.sim import xylo as xylo_sim

    device = device or open_xylo_device()
    device.load(artefact)
    dev = device.run(inputs)
    out, _, rec = xylo_sim.evolve(
        artefact.spec, inputs, record=True, output_mode=artefact.meta.get("output_mode", "Spike")
    )
    emu = {"output": np.asarray(out), **{k: np.asarray(v) for k, v in rec.items()}}
    mism = compare_records(dev, emu)
    return {
        "device": device.name,
        "kind": device.kind,
        "steps": int(inputs.shape[0]),
        "mismatches": mism,
        "bit_exact": all(v == 0 for v in mism.values()) and bool(mism),
    }


# ---------------------------------------------------------------------- Loihi 2


def lava_python() -> Path | None:
    """The Python 3.10 interpreter of the Lava reference environment, if built.

    ``$SNN_DEPLOY_LAVA_PYTHON``, else ``.lava-venv/bin/python`` next to the package's source tree (as
    ``python tests/lava_env.py`` builds it for an editable install).
    """
    import os

    env = os.environ.get("SNN_DEPLOY_LAVA_PYTHON")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parent.parent / ".lava-venv" / "bin" / "python")
    return next((p for p in candidates if p.exists()), None)


class LavaCpuDevice:
    """Lava 0.10's bit-accurate CPU simulation (``Loihi2SimCfg(select_tag='fixed_pt')``) of a netx file, run in
    the Python 3.10 reference environment by subprocess: the stand-in for a Loihi 2 chip."""

    kind = "reference-simulator"

    def __init__(self, python: Path | None = None) -> None:
        self.python = python or lava_python()
        if self.python is None:
            raise DeviceUnavailable(
                "the Lava reference environment (.lava-venv) is not built", fix="python tests/lava_env.py"
            )
        self.name = f"Lava 0.10 fixed_pt CPU ({self.python})"
        self._net_file: Path | None = None

    def load(self, artefact: Any) -> None:
        path = Path(artefact)
        self._net_file = (path / "network.net" if path.is_dir() else path).resolve()

    def run(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        import subprocess
        import tempfile

        if self._net_file is None:
            raise DeviceUnavailable("load an artefact first")
        driver = Path(__file__).resolve().parent / "lava_driver.py"
        arrays = {
            "n_jobs": np.int64(1),
            "j0/kind": np.array("netx"),
            "j0/path": np.array(str(self._net_file)),
            "j0/input": np.asarray(inputs, np.int32),
            "j0/input_message_bits": np.int64(0),
            "j0/reset_interval": np.int64(0),
            "j0/reset_offset": np.int64(0),
        }
        with tempfile.TemporaryDirectory(prefix="snn-lava-") as tmp:
            jobs, results = Path(tmp) / "jobs.npz", Path(tmp) / "results.npz"
            np.savez(jobs, **arrays)
            proc = subprocess.run([str(self.python), str(driver), str(jobs), str(results)], capture_output=True,
                                  text=True, timeout=3600, check=False)  # fmt: skip
            if proc.returncode != 0:
                raise DeviceUnavailable(f"the Lava run failed: {proc.stderr.strip().splitlines()[-1:]}")
            with np.load(results) as z:
                n = int(z["j0/n_layers"])
                return {f"{v}.{k}": z[f"j0/L{k}/{v}"] for k in range(n) for v in ("u", "v", "s")}


def open_loihi_device() -> Any:
    """A Loihi 2 chip through Lava-Loihi when present (closed source; never here), else Lava's CPU model."""
    if (
        importlib.util.find_spec("lava") is not None
        and importlib.util.find_spec("lava.utils.loihi2_profiler") is not None
    ):  # pragma: no cover - Lava-Loihi (closed) in this interpreter
        raise DeviceUnavailable(
            "Lava-Loihi hardware runs are not wired up in this build", fix="use the CPU model"
        )
    return LavaCpuDevice()


def validate_loihi(artefact: str | Path, inputs: np.ndarray, device: Any | None = None) -> dict[str, Any]:
    """Run ``inputs`` ``(T, N_in)`` on the device and on our emulator; mismatches per layer variable."""
    from snn_deploy.backends.loihi import load_artefact
    from snn_deploy.sim import loihi as loihi_sim

    device = device or open_loihi_device()
    device.load(artefact)
    dev = device.run(inputs)
    net, _ = load_artefact(artefact)
    trace = loihi_sim.simulate(net, np.asarray(inputs, np.int32))
    emu = {f"{v}.{k}": np.asarray(getattr(trace, v)[k]) for k in range(len(trace.s)) for v in ("u", "v", "s")}
    mism = compare_records(dev, emu)
    return {
        "device": device.name,
        "kind": device.kind,
        "steps": int(np.shape(inputs)[0]),
        "mismatches": mism,
        "bit_exact": all(v == 0 for v in mism.values()) and bool(mism),
    }
