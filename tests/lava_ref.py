"""Project-side access to the Lava 0.10 reference (runs ``deploy/lava_driver.py`` in ``.lava-venv``).

``run_lava(jobs)`` writes the jobs to a temporary .npz, runs the driver with the Python 3.10 Lava
environment in a subprocess, and returns per-job traces. Tests call :func:`require_lava` (or use the
``lava_python`` helper) so that they skip with a clear reason when the environment was not built
(``python -m tests.lava_env`` builds it).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from snn_deploy.sim.loihi import ConvParams, LoihiNetwork

REPO_ROOT = Path(__file__).resolve().parent.parent
DRIVER = REPO_ROOT / "deploy" / "lava_driver.py"
VENV_PYTHON = REPO_ROOT / ".lava-venv" / "bin" / "python"


def lava_python() -> Path | None:
    """The Lava env's interpreter, or None when ``.lava-venv`` has not been built."""
    return VENV_PYTHON if VENV_PYTHON.exists() else None


def require_lava() -> Path:
    """Return the Lava interpreter or skip the calling test with the reason and the fix."""
    import pytest

    py = lava_python()
    if py is None:
        pytest.skip("Lava reference env .lava-venv missing (build it with `python -m tests.lava_env`)")
    return py


@dataclass(frozen=True)
class NetJob:
    """An explicit network (built from Lava processes by the driver) and its ``(T, n_in)`` input."""

    net: LoihiNetwork
    inputs: np.ndarray
    monitors: bool = True  # False: speed mode, only the last layer's spikes come back (as layer 0)


@dataclass(frozen=True)
class NetxJob:
    """A netx HDF5 file loaded with ``netx.hdf5.Network`` and its ``(T, n_in)`` input."""

    path: str
    inputs: np.ndarray
    input_message_bits: int = 0
    reset_interval: int = 0
    reset_offset: int = 0
    input_bias: np.ndarray | None = None


@dataclass(frozen=True)
class LavaResult:
    """Per-layer ``(T, N)`` int32 traces from Lava's Monitors and the run's wall time in seconds."""

    u: tuple[np.ndarray, ...]
    v: tuple[np.ndarray, ...]
    s: tuple[np.ndarray, ...]
    seconds: float
    run_seconds: float | None = None


def _encode_net(prefix: str, job: NetJob, arrays: dict) -> None:
    net = job.net
    arrays[prefix + "kind"] = np.array("net")
    arrays[prefix + "n_layers"] = np.int64(len(net.layers))
    arrays[prefix + "n_proj"] = np.int64(len(net.projections))
    for k, lp in enumerate(net.layers):
        p = f"{prefix}L{k}/"
        for name in ("size", "du", "dv", "vth", "reset_interval", "reset_offset"):
            arrays[p + name] = np.int64(getattr(lp, name))
        arrays[p + "bias_mant"] = lp.bias_mant.astype(np.int16)
        arrays[p + "bias_exp"] = lp.bias_exp.astype(np.int16)
    for j, proj in enumerate(net.projections):
        p = f"{prefix}P{j}/"
        arrays[p + "src"] = np.int64(proj.src)
        arrays[p + "dst"] = np.int64(proj.dst)
        syn = proj.synapse
        arrays[p + "direct"] = np.int64(syn is None)
        if syn is None:
            continue
        if isinstance(syn, ConvParams):
            raise NotImplementedError("conv projections are compared through netx jobs (NetxJob)")
        arrays[p + "weight"] = syn.weight.astype(np.int32)
        arrays[p + "weight_exp"] = np.int64(syn.weight_exp)
        arrays[p + "num_weight_bits"] = np.int64(syn.num_weight_bits)
        arrays[p + "sign_mode"] = np.int64(int(syn.sign_mode))
        arrays[p + "num_message_bits"] = np.int64(syn.num_message_bits)
        if syn.delays is not None:
            arrays[p + "delays"] = syn.delays.astype(np.int32)


def run_lava(jobs: list[NetJob | NetxJob], timeout: float = 1800.0) -> list[LavaResult]:
    """Run all ``jobs`` in one Lava subprocess (amortises interpreter start-up and imports)."""
    py = require_lava()
    arrays: dict[str, np.ndarray] = {"n_jobs": np.int64(len(jobs))}
    for i, job in enumerate(jobs):
        prefix = f"j{i}/"
        arrays[prefix + "input"] = np.asarray(job.inputs, dtype=np.int32)
        if isinstance(job, NetJob):
            _encode_net(prefix, job, arrays)
            arrays[prefix + "monitors"] = np.int64(job.monitors)
        else:
            arrays[prefix + "kind"] = np.array("netx")
            arrays[prefix + "path"] = np.array(str(Path(job.path).resolve()))
            arrays[prefix + "input_message_bits"] = np.int64(job.input_message_bits)
            arrays[prefix + "reset_interval"] = np.int64(job.reset_interval)
            arrays[prefix + "reset_offset"] = np.int64(job.reset_offset)
            if job.input_bias is not None:
                arrays[prefix + "input_bias"] = np.asarray(job.input_bias, dtype=np.int64)
    with tempfile.TemporaryDirectory(prefix="snn-lava-") as tmp:
        jobs_path, out_path = os.path.join(tmp, "jobs.npz"), os.path.join(tmp, "results.npz")
        np.savez(jobs_path, **arrays)
        proc = subprocess.run(
            [str(py), str(DRIVER), jobs_path, out_path],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"Lava driver failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        with np.load(out_path) as z:
            results = []
            for i in range(len(jobs)):
                prefix = f"j{i}/"
                n = int(z[prefix + "n_layers"])
                results.append(
                    LavaResult(
                        u=tuple(z[f"{prefix}L{k}/u"] for k in range(n) if f"{prefix}L{k}/u" in z.files),
                        v=tuple(z[f"{prefix}L{k}/v"] for k in range(n) if f"{prefix}L{k}/v" in z.files),
                        s=tuple(z[f"{prefix}L{k}/s"] for k in range(n)),
                        seconds=float(z[prefix + "seconds"]),
                        run_seconds=float(z[prefix + "run_seconds"])
                        if prefix + "run_seconds" in z.files
                        else None,
                    )
                )
    return results


# ------------------------------------------------------------------------------------------------------
# Serialisation of explicit networks (also the golden-trace format) and random reference cases
# ------------------------------------------------------------------------------------------------------


def encode_net(job: NetJob, prefix: str = "j0/") -> dict[str, np.ndarray]:
    """Flat npz arrays describing ``job`` (the driver's ``"net"`` job format, see lava_driver.py)."""
    arrays: dict[str, np.ndarray] = {prefix + "input": np.asarray(job.inputs, dtype=np.int32)}
    _encode_net(prefix, job, arrays)
    return arrays


def decode_net(z, prefix: str = "j0/") -> NetJob:
    """Inverse of :func:`encode_net` (works on an open ``np.load`` result)."""
    from snn_deploy.sim.loihi import DenseParams, LifParams, Projection, SignMode

    def scalar(key):
        return int(z[prefix + key][()])

    layers = []
    for k in range(scalar("n_layers")):
        p = f"L{k}/"
        layers.append(
            LifParams(
                size=scalar(p + "size"),
                du=scalar(p + "du"),
                dv=scalar(p + "dv"),
                vth=scalar(p + "vth"),
                bias_mant=z[prefix + p + "bias_mant"],
                bias_exp=z[prefix + p + "bias_exp"],
                reset_interval=scalar(p + "reset_interval"),
                reset_offset=scalar(p + "reset_offset"),
            )
        )
    projs = []
    for j in range(scalar("n_proj")):
        p = f"P{j}/"
        syn = None
        if not scalar(p + "direct"):
            syn = DenseParams(
                weight=z[prefix + p + "weight"],
                weight_exp=scalar(p + "weight_exp"),
                num_weight_bits=scalar(p + "num_weight_bits"),
                sign_mode=SignMode(scalar(p + "sign_mode")),
                num_message_bits=scalar(p + "num_message_bits"),
                delays=z[prefix + p + "delays"] if prefix + p + "delays" in z.files else None,
            )
        projs.append(Projection(scalar(p + "src"), scalar(p + "dst"), syn))
    inputs = np.asarray(z[prefix + "input"])
    return NetJob(LoihiNetwork(n_in=inputs.shape[1], layers=tuple(layers), projections=tuple(projs)), inputs)


#: Regimes a random case can switch on; each one targets a quirk of the fixed-point models.
REGIMES = (
    "saturate",  # large weights/exponents: v saturation at +-(2**23 - 1), u wrap-around
    "neg_exp",  # negative weight_exp: floor of the summed activation
    "low_bits",  # num_weight_bits < 8: LSB truncation
    "du_edge",  # du in {-1, 0, 4095}, dv in {0, 4095, 4096}
    "bias_exp",  # random bias exponents, negative ones floor
    "recurrent",  # a recurrent projection
    "delays",  # DelayDense projections
    "reset",  # LIFReset
    "graded",  # graded input payloads into the first synapse
    "direct",  # input wired straight into the first layer's a_in
    "sign_mode",  # forced sign modes (clip to the mode's range)
    "skip",  # a projection skipping a layer
)


def random_case(seed: int, regimes: frozenset[str] | set[str], steps: int = 40) -> NetJob:
    """A random network and input exercising ``regimes`` (see :data:`REGIMES`); deterministic in ``seed``."""
    from snn_deploy.sim.loihi import DenseParams, LifParams, Projection, SignMode

    rng = np.random.default_rng(seed)
    n_layers = int(rng.integers(1, 4))
    sizes = [int(rng.integers(1, 9)) for _ in range(n_layers + 1)]
    if "direct" in regimes:
        sizes[1] = sizes[0]
    layers = []
    for k in range(n_layers):
        n = sizes[k + 1]
        du, dv = int(rng.integers(0, 4096)), int(rng.integers(0, 4097))
        if "du_edge" in regimes:
            du = int(rng.choice([-1, 0, 4095, du]))
            dv = int(rng.choice([0, 4095, 4096, dv]))
        vth = int(rng.choice([int(rng.integers(0, 64)), int(rng.integers(64, 4000)), 131071, 131072]))
        bias_mant = rng.integers(-30, 31, n) if rng.random() < 0.5 else np.zeros(n, int)
        bias_exp = np.full(n, 6) if rng.random() < 0.5 else rng.integers(0, 8, n)
        if "bias_exp" in regimes:
            bias_mant = rng.integers(-4096, 4096, n)
            bias_exp = rng.integers(-10, 11, n)
        interval = offset = 0
        if "reset" in regimes and rng.random() < 0.7:
            interval, offset = int(rng.integers(1, 12)), int(rng.integers(0, 20))
        layers.append(LifParams(n, du, dv, vth, bias_mant, bias_exp, interval, offset))

    def dense(n_out: int, n_in: int, first: bool) -> DenseParams:
        lo, hi = [(-300, 300), (0, 256), (-255, 1), (-128, 128)][int(rng.integers(0, 4))]
        w = rng.integers(lo, hi, (n_out, n_in))
        exp = int(rng.integers(-2, 3))
        if "neg_exp" in regimes:
            exp = int(rng.integers(-8, 0))
        if "saturate" in regimes:
            exp = int(rng.integers(4, 14))
        nwb = int(rng.integers(1, 9)) if "low_bits" in regimes else 8
        mode = SignMode.AUTO
        if "sign_mode" in regimes:
            mode = SignMode(int(rng.integers(0, 4)))
        delays = None
        if "delays" in regimes and rng.random() < 0.6:
            delays = rng.integers(0, int(rng.integers(1, 8)), (n_out, n_in))
        graded = 8 if (first and "graded" in regimes) else 0
        return DenseParams(w, exp, nwb, mode, graded, delays)

    projs = []
    for k in range(n_layers):
        if k == 0 and "direct" in regimes:
            projs.append(Projection(-1, 0, None))
        else:
            projs.append(Projection(k - 1, k, dense(sizes[k + 1], sizes[k], k == 0)))
    if "recurrent" in regimes:
        k = int(rng.integers(0, n_layers))
        projs.append(Projection(k, k, dense(sizes[k + 1], sizes[k + 1], False)))
    if "skip" in regimes and n_layers >= 2:
        projs.append(Projection(-1, n_layers - 1, dense(sizes[-1], sizes[0], True)))
    net = LoihiNetwork(n_in=sizes[0], layers=tuple(layers), projections=tuple(projs))
    density = float(rng.uniform(0.05, 0.8))
    x = (rng.random((steps, sizes[0])) < density).astype(np.int64)
    if "graded" in regimes or "direct" in regimes:
        x = x * rng.integers(-3000, 3000, x.shape)
    return NetJob(net, x.astype(np.int32))


def compare(net: LoihiNetwork, inputs: np.ndarray, ref: LavaResult) -> list[str]:
    """Run the emulator and list every (variable, layer) that differs from ``ref`` (empty: bit-exact)."""
    from snn_deploy.sim.loihi import simulate

    trace = simulate(net, inputs)
    problems = []
    for name in ("u", "v", "s"):
        for k, (ours, theirs) in enumerate(zip(getattr(trace, name), getattr(ref, name), strict=True)):
            if ours.shape != theirs.shape:
                problems.append(f"{name}[{k}]: shape {ours.shape} != Lava {theirs.shape}")
            elif not np.array_equal(ours, theirs):
                t, i = np.argwhere(ours != theirs)[0]
                problems.append(
                    f"{name}[{k}]: first difference at step row {t}, neuron {i}: "
                    f"emulator {ours[t, i]} != Lava {theirs[t, i]} "
                    f"({int(np.sum(ours != theirs))} differing entries)"
                )
    return problems
