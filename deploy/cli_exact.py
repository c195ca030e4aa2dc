"""``snn-deploy exact`` and ``snn-deploy timing``: event-exact spike times and the timing check from the shell.

``snn-deploy exact MODEL.nir --input IN.npz --dt DT --input-semantics pulse|delta -o OUT.npz`` writes, for every
neuron node, ``times.<node>`` (float64 seconds, sorted) and ``neurons.<node>`` (int64 neuron index, same length);
with batch input ``(B, T, N_in)`` also ``sample.<node>`` (int64 sample index; rows sorted by sample, then time).

``snn-deploy timing MODEL.nir --target xylo|loihi2|reference --input IN.npz --dt DT [--json]`` runs the target
(Xylo / Loihi 2 emulator, or the float reference) and the exact model on the same input and prints the
teacher-forced timing report (:mod:`snn_deploy.sim.timing_graph`, which states the step convention and the error
bound); ``--json`` prints one object with ``spikes``, ``matched``, ``marginal``, ``unexplained`` and per-layer details.

``IN.npz`` holds ``input``: spike counts ``(T, N_in)`` or ``(B, T, N_in)``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import click
import numpy as np

from .errors import InputError


def _read_input(path: str) -> np.ndarray:
    from .inputs import as_counts, load_input

    x = load_input(path)
    if x.ndim not in (2, 3):
        raise InputError("input must be (T, N_in) or (B, T, N_in)", file=path, param="input")
    return as_counts(x, file=path)


def _load(model: str, dt: float, reset: str | None):
    from snn_deploy.io import load

    return load(model, dt=dt, reset=reset)


@click.command("exact")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option(
    "--input", "input_path", required=True, type=click.Path(dir_okay=False), help="IN.npz ('input')."
)
@click.option("--dt", type=float, required=True, help="Bin width of the input counts, seconds.")
@click.option("--input-semantics", type=click.Choice(["pulse", "delta"]), default="pulse", show_default=True)
@click.option("--reset", type=click.Choice(["zero", "subtract", "subtract-next"]), default=None)
@click.option("--max-spikes", type=int, default=None, help="Spike buffer per neuron (default 2 T).")
@click.option("-o", "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Output .npz.")
def exact_command(model, input_path, dt, input_semantics, reset, max_spikes, out_path) -> None:
    """Exact (continuous-time, float64) spike times of every neuron node."""
    from snn_deploy.sim.exact_graph import simulate_graph, to_npz_dict

    graph = _load(model, dt, reset)
    x = _read_input(input_path)
    res = simulate_graph(graph, x, dt=dt, semantics=input_semantics, max_out=max_spikes)
    arrays = to_npz_dict(res, batched=x.ndim == 3)
    out = Path(out_path)
    fd, tmp = tempfile.mkstemp(dir=out.parent if str(out.parent) else ".", suffix=".npz")
    os.close(fd)
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    n = sum(len(v) for k, v in arrays.items() if k.startswith("times."))
    click.echo(f"{out}: {n} spikes in {len(res[0])} neuron nodes ({input_semantics} semantics, dt={dt:g} s)")


@click.command("timing")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", type=click.Choice(["xylo", "loihi2", "reference"]), required=True)
@click.option(
    "--input", "input_path", required=True, type=click.Path(dir_okay=False), help="IN.npz ('input')."
)
@click.option("--dt", type=float, required=True, help="Seconds per step.")
@click.option("--reset", type=click.Choice(["zero", "subtract", "subtract-next"]), default=None)
@click.option(
    "--time-constants",
    type=click.Choice(["deployed", "matched", "nir"]),
    default=None,
    help="Exact model: 'deployed' (xylo default: the continuous network the chip is configured as), 'matched' "
    "(default otherwise: the graph's network, time constants matched to the method's per-step decays) or 'nir'.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
def timing_command(model, target, input_path, dt, reset, time_constants, as_json) -> None:
    """Teacher-forced timing check of a target against the exact model."""
    from snn_deploy.sim.timing_graph import timing_check

    graph = _load(model, dt, reset)
    rep = timing_check(graph, target, _read_input(input_path), dt=dt, time_constants=time_constants)
    if as_json:
        click.echo(json.dumps(rep, default=float))
        return
    c = rep["convention"]
    click.echo(
        f"{target}: {rep['spikes']} spikes, {rep['matched']} matched, {rep['marginal']} marginal, "
        f"{rep['unexplained']} unexplained, {rep['missed']} missed"
    )
    click.echo(
        f"convention: {c['interval']}; recurrent delay {c['recurrent_delay_steps']} step; method {c['method']}; "
        f"exact model: {c['time_constants']}"
    )
    for name, lay in rep["layers"].items():
        k = lay["counts"]
        click.echo(
            f"  {name}: latency {lay['latency_steps']}, tol_v <= {lay['tol_v_max']:.3g}"
            + (
                f" (rounding alone {lay['tol_v_rounding_only']:.3g}, {lay['saturated_neuron_steps']} clamped "
                f"neuron-steps)"
                if "tol_v_rounding_only" in lay
                else ""
            )
            + f", spikes {k['spikes']}, "
            f"match {k['match']}, marginal {k['marginal']}, unexplained {k['unexplained']}, missed {k['missed']}"
        )
