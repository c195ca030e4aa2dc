"""``snn-deploy simulate``: run a model on recorded input and save every neuron's trace.

``snn-deploy simulate MODEL --input IN.npz [--dt DT] [--method euler|exact] [--reset ...] -o OUT.npz``

- ``IN.npz`` holds ``input`` with shape ``(T, *input_shape)`` or ``(B, T, *input_shape)`` (graphs with several
  Input nodes: ``input.<name>`` for each).
- ``OUT.npz`` holds ``output`` (the graph output, same leading axes; ``output.<name>`` for several Outputs) and, for
  every neuron node, ``spikes.<node>`` (spiking nodes), ``v.<node>`` and ``i.<node>`` (CubaLIF/CubaLI).

What is simulated depends on what MODEL is: a ``.nir`` file runs the float reference (:mod:`snn_deploy.sim.reference`).
Other model kinds (deployed artefacts, run by a target's bit-accurate emulator) plug in with
:func:`register_model_kind`; the first kind whose ``matches(path)`` is true runs.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np

from .conventions import METHODS, RESETS
from .errors import InputError

Progress = Callable[[int, int], None]  # (steps done, steps total)


@dataclass(frozen=True)
class SimulateOptions:
    """What the command line said (None: take it from the model)."""

    dt: float | None = None
    method: str | None = None
    reset: str | None = None
    chunk: int = 1000


@dataclass(frozen=True)
class ModelKind:
    """One kind of model ``simulate`` can run: ``run(path, inputs, options, progress) -> {key: array}``."""

    name: str
    matches: Callable[[Path], bool]
    run: Callable[[Path, dict[str, np.ndarray], SimulateOptions, Progress], dict[str, np.ndarray]]


_KINDS: list[ModelKind] = []


def register_model_kind(kind: ModelKind, *, first: bool = True) -> None:
    """Add a model kind; ``first`` puts it before the NIR fallback (artefact kinds should match first)."""
    global _KINDS
    _KINDS = [k for k in _KINDS if k.name != kind.name]
    _KINDS.insert(0, kind) if first else _KINDS.append(kind)


def model_kinds() -> list[ModelKind]:
    return list(_KINDS)


# ---------------------------------------------------------------------------------------------- NIR: float reference


def _run_nir(path: Path, inputs: dict[str, np.ndarray], opts: SimulateOptions, progress: Progress) -> dict:
    """Float reference over time chunks of ``opts.chunk`` steps (state carried across chunks)."""
    from snn_deploy.io import load
    from snn_deploy.sim.reference import extract_params, prepare_inputs, resolve_config, simulator

    graph = load(path, dt=opts.dt, method=opts.method, reset=opts.reset)
    if len(graph.inputs) == 1 and set(inputs) == {"input"}:
        inputs = {graph.inputs[0].name: inputs["input"]}
    batched, has_batch = prepare_inputs(graph, inputs)
    sim = simulator(
        graph, resolve_config(graph, dt=opts.dt, method=opts.method, reset=opts.reset), record=True
    )
    params = extract_params(graph)
    steps = next(iter(batched.values())).shape[1]
    state = None
    pieces: list[dict[str, np.ndarray]] = []
    for t0 in range(0, steps, max(1, opts.chunk)):
        t1 = min(steps, t0 + max(1, opts.chunk))
        res, state = sim(params, {k: v[:, t0:t1] for k, v in batched.items()}, state)
        flat = {f"output.{k}": v for k, v in res.outputs.items()}
        for field in ("spikes", "v", "i"):
            flat.update({f"{field}.{k}": v for k, v in getattr(res, field).items()})
        pieces.append({k: np.asarray(v) for k, v in flat.items()})
        progress(t1, steps)
    out = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
    if not has_batch:
        out = {k: v[0] for k, v in out.items()}
    if len(graph.outputs) == 1:
        out["output"] = out.pop(f"output.{graph.outputs[0].name}")
    return out


register_model_kind(ModelKind("nir", lambda p: p.is_file(), _run_nir), first=False)


# ---------------------------------------------------------------------------------------------- files


def read_inputs(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """``input`` (or ``input.<name>`` entries) of an ``.npz`` file, as float arrays keyed ``input``/``<name>``."""
    from .inputs import load_input, load_npz

    data = load_npz(path)
    if "input" in data or not any(k.startswith("input.") for k in data):
        return {"input": load_input(path).astype(np.float32)}
    arrays = {k[len("input.") :]: v for k, v in data.items() if k.startswith("input.")}
    for k, v in arrays.items():
        if not (np.issubdtype(v.dtype, np.number) or v.dtype == bool):
            raise InputError(f"input {k!r} has dtype {v.dtype}, not numeric", file=str(path))
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> Path:
    """Write ``arrays`` to ``path`` atomically (temp file + rename)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def run_simulation(
    model: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    opts: SimulateOptions,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """Dispatch ``model`` to the first matching model kind."""
    path = Path(model)
    for kind in _KINDS:
        if kind.matches(path):
            return kind.run(path, inputs, opts, progress or (lambda done, total: None))
    from .errors import ModelNotFound

    raise ModelNotFound("no such model file or artefact", file=str(path), fix="check the path")


# ---------------------------------------------------------------------------------------------- command


@click.command("simulate")
@click.argument("model", type=click.Path())
@click.option(
    "--input",
    "-i",
    "input_path",
    required=True,
    type=click.Path(dir_okay=False),
    help="Input .npz with key 'input': (T, *input_shape) or (B, T, *input_shape).",
)
@click.option(
    "--dt", type=float, default=None, help="Time step in seconds (default: graph metadata or inferred)."
)
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default=None,
    help="Discretisation: euler (forward Euler, as snnTorch/Rockpool/Lava export) or exact.",
)
@click.option(
    "--reset",
    type=click.Choice(RESETS),
    default=None,
    help="Reset: zero (to v_reset), subtract (in the firing step) or subtract-next (snnTorch).",
)
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output .npz.")
@click.option(
    "--chunk",
    type=click.IntRange(min=1),
    default=1000,
    show_default=True,
    help="Time steps per chunk (progress granularity; memory per chunk).",
)
def simulate_command(
    model: str,
    input_path: str,
    dt: float | None,
    method: str | None,
    reset: str | None,
    out_path: str,
    chunk: int,
) -> None:
    """Simulate MODEL on IN.npz and write output, spikes.<node>, v.<node> (and i.<node>) to OUT.npz."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    inputs = read_inputs(input_path)
    opts = SimulateOptions(dt=dt, method=method, reset=reset, chunk=chunk)
    console = Console(stderr=True)
    with Progress(
        TextColumn("simulating"),
        BarColumn(),
        TaskProgressColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("simulate", total=None)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        arrays = run_simulation(model, inputs, opts, progress)
    write_npz(out_path, arrays)
    summary = ", ".join(
        f"{k[7:]}: {int(v.sum())} spikes" for k, v in arrays.items() if k.startswith("spikes.")
    )
    click.echo(f"wrote {out_path} ({len(arrays)} arrays{'; ' + summary if summary else ''})")


# ---------------------------------------------------------------------------------------------- target artefacts


def _counts(inputs: dict[str, np.ndarray], what: str) -> np.ndarray:
    """The single ``input`` array as integer spike counts (the artefact emulators take integers)."""
    from .inputs import as_counts

    if set(inputs) != {"input"}:
        raise InputError(f"{what} artefacts take one array named 'input'", param="input")
    return as_counts(inputs["input"], what=f"{what} input")


def _chunks(steps: int, chunk: int):
    for t0 in range(0, steps, max(1, chunk)):
        yield t0, min(steps, t0 + max(1, chunk))


def _run_xylo(path: Path, inputs: dict[str, np.ndarray], opts: SimulateOptions, progress: Progress) -> dict:
    """Our bit-exact Xylo emulator on a ``MODEL.xylo/`` artefact; keys and layout as XyloSim's record."""
    from snn_deploy.backends.xylo import XyloArtefact
    from snn_deploy.sim import xylo as xylo_sim

    art = XyloArtefact.load(path)
    x = _counts(inputs, "Xylo")
    if x.ndim not in (2, 3) or x.shape[-1] > art.spec.n_in:
        raise InputError(
            f"input shape {list(x.shape)} is not (T, N_in) or (B, T, N_in) with N_in <= {art.spec.n_in}",
            file=str(path),
            param="input",
        )
    steps = x.shape[-2]
    state, pieces = None, []
    for t0, t1 in _chunks(steps, opts.chunk):
        out, state, rec = xylo_sim.evolve(
            art.spec, x[..., t0:t1, :], state, record=True, output_mode=art.meta.get("output_mode", "Spike")
        )
        pieces.append({"output": np.asarray(out), **{k: np.asarray(v) for k, v in rec.items()}})
        progress(t1, steps)
    axis = x.ndim - 2
    return {k: np.concatenate([p[k] for p in pieces], axis=axis) for k in pieces[0]}


def _is_loihi(p: Path) -> bool:
    return (p.is_dir() and (p / "network.net").is_file()) or (p.is_file() and p.suffix == ".net")


def _run_loihi(path: Path, inputs: dict[str, np.ndarray], opts: SimulateOptions, progress: Progress) -> dict:
    """Our bit-exact Loihi emulator on a netx file or ``MODEL.loihi2/``: ``u.<i>``, ``v.<i>``, ``s.<i>`` per netx
    layer index ``i`` with a neuron (conv layers flattened in Lava's W-H-C order), and ``output``."""
    from snn_deploy.backends.loihi_netx import read_netx, to_loihi_network
    from snn_deploy.sim import loihi as loihi_sim

    net_file = path / "network.net" if path.is_dir() else path
    model = read_netx(net_file)
    net = to_loihi_network(model)
    x = inputs["input"] if set(inputs) == {"input"} else None
    if x is None:
        raise InputError("Loihi artefacts take one array named 'input'", param="input")
    if x.ndim >= 4:  # (T, C, H, W) or (B, T, C, H, W) in the file's C-H-W order, as the emulator flattens it
        x = x.reshape(*x.shape[:-3], -1)
    if x.shape[-1] != net.n_in:
        raise InputError(
            f"input has {x.shape[-1]} values per step, the network takes {net.n_in}", param="input"
        )
    x = _counts({"input": x}, "Loihi")
    trace = loihi_sim.simulate(net, x)
    progress(x.shape[-2], x.shape[-2])
    indices = [
        i
        for i, layer in enumerate(model.layers)
        if layer.kind in ("dense", "dense_rec", "conv")
        or (layer.kind == "input" and layer.neuron is not None)
    ]
    out: dict[str, np.ndarray] = {}
    for k, i in enumerate(indices):
        layer = model.layers[i]
        for name in ("u", "v", "s"):
            arr = np.asarray(getattr(trace, name)[k])
            if layer.kind == "conv":  # emulator keeps torch (C, H, W); Lava's process holds (W, H, C)
                c, h, w = layer.shape
                arr = arr.reshape(*arr.shape[:-1], c, h, w)
                arr = np.moveaxis(arr, (-3, -2, -1), (-1, -2, -3)).reshape(*arr.shape[:-3], -1)
            out[f"{name}.{i}"] = arr
    out["output"] = out[f"s.{indices[-1]}"]
    return out


register_model_kind(ModelKind("xylo", lambda p: p.is_dir() and (p / "xylo.json").is_file(), _run_xylo))
register_model_kind(ModelKind("loihi2", _is_loihi, _run_loihi))
