"""Exact (event-time, float64) model of a whole graph: feed-forward stacks of Linear/Affine -> IF/LIF/CubaLIF.

Input: spike counts ``(T, N_in)`` or ``(B, T, N_in)`` in bins of ``dt`` seconds starting at t = 0. Semantics:

* ``pulse`` (the NIR paper's exact reference): a count ``s`` in bin k is a current ``w * s`` held over
  [k dt, (k+1) dt). Hidden spikes at exact times t are pulses of amplitude ``w`` over [t, t + dt) (the same
  charge as one input spike), so a layer sees the same kind of input as the first one.
* ``delta``: a count ``s`` in bin k is ``s`` Dirac spikes at t = k dt (NIR delta scaling: ``I += w_in w/tau_syn``
  or ``V += r w/tau``); hidden spikes are Dirac spikes at their exact times.

An Affine bias is a constant input held from t = 0 (through the synapse for CubaLIF). Recurrent weights are
zero-delay Dirac spikes (``delta`` only; the sequential engine). Reset: graph convention ``zero`` -> reset to
``v_reset`` at the crossing, ``subtract``/``subtract-next`` -> V -= v_th - v_reset (identical for
current-driven crossings in continuous time). Simulation ends at T dt.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from snn_deploy.errors import SnnDeployError
from snn_deploy.graph import Graph
from snn_deploy.layers import layer_stack
from snn_deploy.nodes import IF as IFNode
from snn_deploy.nodes import LIF as LIFNode
from snn_deploy.nodes import CubaLIF as CubaNode
from snn_deploy.sim.exact_core import IF, LIF, CubaLIF, Neuron
from snn_deploy.sim.exact_layer import simulate_layer, simulate_layer_piecewise

Semantics = Literal["pulse", "delta"]
SEMANTICS = ("pulse", "delta")


class ExactGraphError(SnnDeployError):
    """The graph or input cannot be run by the exact solver."""


@dataclass(frozen=True)
class ExactLayer:
    """One layer for the exact solver: ``w`` [n_in, n] (solver orientation), bias [n], recurrent [n, n] or None."""

    name: str
    w: np.ndarray
    bias: np.ndarray
    w_rec: np.ndarray | None
    neuron: Neuron


def _reset_mode(graph: Graph) -> str:
    return "hard" if str(graph.conventions.reset.value) == "zero" else "subtract"


def neuron_of(node: Any, reset: str) -> Neuron:
    """The exact-solver :class:`Neuron` of a graph neuron node (NIR parameters, per neuron)."""
    f = lambda a: np.asarray(a, np.float64).reshape(-1)  # noqa: E731
    if isinstance(node, CubaNode):
        return CubaLIF(
            f(node.tau_mem),
            f(node.tau_syn),
            v_th=f(node.v_threshold),
            r=f(node.r),
            v_leak=f(node.v_leak),
            v_reset=f(node.v_reset),
            w_in=f(node.w_in),
            reset=reset,
        )
    if isinstance(node, LIFNode):
        return LIF(
            f(node.tau),
            v_th=f(node.v_threshold),
            r=f(node.r),
            v_leak=f(node.v_leak),
            v_reset=f(node.v_reset),
            reset=reset,
        )
    if isinstance(node, IFNode):
        return IF(v_th=f(node.v_threshold), r=f(node.r), v_reset=f(node.v_reset), reset=reset)
    raise ExactGraphError(
        f"{node.type_name} has no exact spike-time model",
        node=node.name,
        fix="use IF, LIF or CubaLIF neurons",
    )


def exact_layers(graph: Graph) -> list[ExactLayer]:
    """The graph's layer stack in solver form (raises UnsupportedNode / ExactGraphError naming the node)."""
    reset = _reset_mode(graph)
    out = []
    for lay in layer_stack(graph, "the exact solver"):
        w_rec = None if lay.w_rec is None else np.asarray(lay.w_rec, np.float64).T
        out.append(
            ExactLayer(
                lay.name,
                np.asarray(lay.w_ff, np.float64).T,
                np.asarray(lay.b_ff, np.float64),
                w_rec,
                neuron_of(lay.neuron, reset),
            )
        )
    return out


def _pulse_rows(
    times: np.ndarray, chans: np.ndarray, w: np.ndarray, bias: np.ndarray, width: float
) -> tuple[np.ndarray, np.ndarray]:
    """Edges and input rows for spikes as pulses of ``width`` (switch on at t, off at t + width), plus bias."""
    t = np.concatenate([[0.0], times, times + width])
    d = np.concatenate([bias[None], w[chans], -w[chans]])
    order = np.argsort(t, kind="stable")
    return t[order], np.cumsum(d[order], axis=0)


def _train_to_events(tr: Any) -> tuple[np.ndarray, np.ndarray]:
    times = np.asarray(tr.times)
    nn, kk = np.nonzero(np.isfinite(times))
    t = times[nn, kk]
    order = np.lexsort((nn, t))
    return t[order], nn[order].astype(np.int32)


def simulate_sample(
    layers: list[ExactLayer],
    counts: np.ndarray,
    *,
    dt: float,
    semantics: Semantics,
    max_out: int | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Exact spikes of every layer for one sample ``counts`` (T, N_in): {layer: (times sorted, neuron ids)}.

    Raises:
        ExactGraphError: unknown semantics, pulse semantics with recurrence, or a spike buffer overflow.
    """
    if semantics not in SEMANTICS:
        raise ExactGraphError(f"unknown input semantics {semantics!r}", fix="use 'pulse' or 'delta'")
    n_steps = counts.shape[0]
    t_end = n_steps * dt
    mo = max_out or max(16, 2 * n_steps)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    ev_t = ev_ch = None
    for j, lay in enumerate(layers):
        if lay.w_rec is not None and semantics == "pulse":
            raise ExactGraphError(
                "recurrent layers have an exact model only with delta semantics (zero-delay Dirac recurrence)",
                node=lay.name,
                fix="run with --input-semantics delta, or check timing with 'snn-deploy timing' "
                "(teacher-forced: recurrence comes from the observed spikes)",
            )
        if j == 0:
            kk, ch = np.nonzero(counts > 0)
            reps = counts[kk, ch].astype(int)
            ev_t, ev_ch = np.repeat(kk * dt, reps), np.repeat(ch, reps).astype(np.int32)
        if semantics == "pulse":
            if j == 0:
                edges = np.arange(n_steps) * dt
                x = counts.astype(np.float64) @ lay.w + lay.bias
            else:
                edges, x = _pulse_rows(ev_t, ev_ch, lay.w, lay.bias, dt)
            tr = simulate_layer_piecewise(edges, x, lay.neuron, max_out=mo, t_end=t_end)
        else:
            if ev_t.size == 0:
                ev_t, ev_ch = np.array([np.inf]), np.array([-1], np.int32)
            tr = simulate_layer(
                ev_t, ev_ch, lay.w, lay.neuron, max_out=mo, t_end=t_end, w_rec=lay.w_rec, x_const=lay.bias
            )
        if bool(np.any(np.asarray(tr.overflow))) or bool(tr.truncated):
            raise ExactGraphError(
                f"more than {mo} spikes of one neuron",
                node=lay.name,
                param="max_out",
                fix="raise --max-spikes",
            )
        ev_t, ev_ch = _train_to_events(tr)
        out[lay.name] = (ev_t, ev_ch)
    return out


def simulate_graph(
    graph: Graph, inputs: np.ndarray, *, dt: float, semantics: Semantics = "pulse", max_out: int | None = None
) -> list[dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Exact spikes for ``inputs`` (T, N_in) or (B, T, N_in): one dict per sample (see :func:`simulate_sample`)."""
    x = np.asarray(inputs)
    if x.ndim == 2:
        x = x[None]
    layers = exact_layers(graph)
    n_in = layers[0].w.shape[0]
    if x.ndim != 3 or x.shape[-1] != n_in:
        raise ExactGraphError(
            f"input shape {list(np.shape(inputs))} is not (T, {n_in}) or (B, T, {n_in})",
            param="input",
            fix="save spike counts as (T, N_in) or (B, T, N_in)",
        )
    if not dt > 0:
        raise ExactGraphError("dt must be > 0", param="dt", fix="pass --dt in seconds")
    return [simulate_sample(layers, s, dt=dt, semantics=semantics, max_out=max_out) for s in x]


def to_npz_dict(
    results: list[dict[str, tuple[np.ndarray, np.ndarray]]], batched: bool
) -> dict[str, np.ndarray]:
    """OUT.npz layout: ``times.<node>`` (float64 s, sorted), ``neurons.<node>`` (int64); batched input adds
    ``sample.<node>`` (int64 sample index; sorted by sample, then time)."""
    out: dict[str, np.ndarray] = {}
    for name in results[0]:
        ts = [r[name][0] for r in results]
        out[f"times.{name}"] = np.concatenate(ts).astype(np.float64)
        out[f"neurons.{name}"] = np.concatenate([r[name][1] for r in results]).astype(np.int64)
        if batched:
            out[f"sample.{name}"] = np.concatenate([np.full(len(t), b, np.int64) for b, t in enumerate(ts)])
    return out
