"""Training front end: fit a Graph's float parameters with optax through the float reference, export to NIR.

Readouts and losses (``output`` is the graph output, ``(B, T, n_out)``; labels are class indices):

- ``"rate"``: logits = spike count of each output neuron over the whole run (``sum_t s[t]``), softmax
  cross-entropy. For spiking readouts (LIF/CubaLIF/IF outputs); the class is the neuron that fires most.
- ``"integral"``: logits = time average of a non-spiking readout's membrane, ``(1/(T dt)) * integral v dt =
  mean_t v[t]`` (LI/CubaLI/Integrator outputs), softmax cross-entropy.
- ``"first_spike"``: logits = ``-t_first / tau`` with ``t_first`` the first-spike step of each output neuron (``T``
  when it never fires), differentiable through the surrogate: ``t_first = sum_t prod_{t' <= t} (1 - s[t'])``.
  The class is the neuron that fires first. ``tau`` (steps) is ``first_spike_tau``.

An optional ``readout`` matrix ``M`` ``(n_classes, n_out)`` maps the per-neuron scores to class logits
(``logits = scores @ M.T``): this is how a 10-class problem is read from 8 output neurons with an output code.
Predictions use the same logits (argmax), so what is trained is what is evaluated.

Everything is deterministic given ``seed`` (parameter-free shuffling with ``numpy.random.default_rng(seed)``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from snn_deploy.conventions import Conventions, Setting
from snn_deploy.errors import InputError
from snn_deploy.graph import Graph
from snn_deploy.nodes import LI, LIF, CubaLI, CubaLIF, Input, Linear, Output

from .reference import Params, extract_params, params_to_graph, simulate_params

LOSSES = ("rate", "integral", "first_spike")
Array = jax.Array


# ---------------------------------------------------------------------------------------------- readouts


def first_spike_steps(spikes: Array) -> Array:
    """Differentiable first-spike step of ``spikes`` ``(..., T, n)``: ``T`` for a neuron that never fires."""
    alive = jnp.cumprod(1.0 - spikes, axis=-2)  # 1 until (and excluding) the first spike
    return jnp.sum(alive, axis=-2)


def scores(output: Array, loss: str, first_spike_tau: float = 5.0) -> Array:
    """Per-neuron scores ``(B, n_out)`` of an output ``(B, T, n_out)`` under ``loss`` (see module docstring)."""
    if loss == "rate":
        return jnp.sum(output, axis=-2)
    if loss == "integral":
        return jnp.mean(output, axis=-2)
    if loss == "first_spike":
        return -first_spike_steps(output) / first_spike_tau
    raise InputError(f"unknown loss {loss!r}", fix=f"use one of {', '.join(LOSSES)}")


def logits(output: Array, loss: str, readout: Array | None = None, first_spike_tau: float = 5.0) -> Array:
    """Class logits ``(B, n_classes)``: scores, mapped through ``readout`` when given."""
    s = scores(output, loss, first_spike_tau)
    return s if readout is None else s @ jnp.asarray(readout, s.dtype).T


# ---------------------------------------------------------------------------------------------- building


def feedforward(
    sizes: Sequence[int],
    *,
    dt: float,
    tau_mem: float,
    tau_syn: float | None = None,
    readout: str = "CubaLIF",
    threshold: float = 1.0,
    reset: str = "subtract",
    method: str = "euler",
    seed: int = 0,
    gain: float = 1.0,
    unit_gains: bool = True,
) -> Graph:
    """A fresh feed-forward graph ``Input -> (Linear -> neurons) * n`` with He-style random weights.

    Hidden layers are CubaLIF (``tau_syn`` given) or LIF; the last layer is ``readout`` (``CubaLIF``, ``LIF``,
    ``LI`` or ``CubaLI``). With ``unit_gains`` the neurons get snnTorch's export gains (``r = tau_mem/dt``,
    ``w_in = tau_syn/dt``) so that in ``euler`` the per-step update is ``i = a_syn i + W x``, ``v = a_mem v + i``:
    integer-friendly, and the natural mapping onto Xylo/Loihi's ``v += i``. Weights ``N(0, gain*threshold/sqrt(fan_in))``.
    """
    rng = np.random.default_rng(seed)
    nodes: list[Any] = [Input("input", shape=(int(sizes[0]),))]
    edges = []
    prev = "input"
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        last = k == len(sizes) - 2
        kind = readout if last else ("CubaLIF" if tau_syn is not None else "LIF")
        w = rng.normal(size=(n_out, n_in)) * gain * threshold / np.sqrt(n_in)
        lin, neu = f"fc{k + 1}", ("output_layer" if last else f"lif{k + 1}")
        nodes.append(Linear(lin, weight=w))
        nodes.append(_neuron(kind, neu, n_out, dt, tau_mem, tau_syn, threshold, unit_gains))
        edges += [(prev, lin), (lin, neu)]
        prev = neu
    nodes.append(Output("output", shape=(int(sizes[-1]),)))
    edges.append((prev, "output"))
    conv = Conventions(Setting(dt, "cli"), Setting(method, "cli"), Setting(reset, "cli"))
    return Graph.build(nodes, edges, conventions=conv)


def _neuron(kind, name, n, dt, tau_mem, tau_syn, threshold, unit_gains):
    full = lambda v: np.full(n, float(v))  # noqa: E731
    r = full(tau_mem / dt if unit_gains else 1.0)
    if kind in ("CubaLIF", "CubaLI"):
        if tau_syn is None:
            raise InputError(f"{kind} needs tau_syn", fix="pass tau_syn=")
        common = dict(
            tau_mem=full(tau_mem),
            tau_syn=full(tau_syn),
            r=r,
            v_leak=full(0),
            w_in=full(tau_syn / dt if unit_gains else 1.0),
        )
        if kind == "CubaLI":
            return CubaLI(name, **common)
        return CubaLIF(name, **common, v_threshold=full(threshold), v_reset=full(0))
    if kind == "LIF":
        return LIF(name, tau=full(tau_mem), r=r, v_leak=full(0), v_threshold=full(threshold), v_reset=full(0))
    if kind == "LI":
        return LI(name, tau=full(tau_mem), r=r, v_leak=full(0))
    raise InputError(f"unknown neuron kind {kind!r}", fix="use CubaLIF, LIF, LI or CubaLI")


# ---------------------------------------------------------------------------------------------- fitting


@dataclass
class FitResult:
    """The trained graph (float64 parameters), its parameter pytree and the per-epoch history."""

    graph: Graph
    params: Params
    history: list[dict[str, float]] = field(default_factory=list)


def _split(params: Params, trainable: Sequence[str] | Callable[[str, str], bool]):
    pick = trainable if callable(trainable) else (lambda node, p: p in trainable)
    train = {n: {k: v for k, v in d.items() if pick(n, k)} for n, d in params.items()}
    train = {n: d for n, d in train.items() if d}
    frozen = {n: {k: v for k, v in d.items() if not pick(n, k)} for n, d in params.items()}
    if not train:
        raise InputError("no trainable parameters selected", fix="check trainable=")
    return train, frozen


def _merge(train: Params, frozen: Params) -> Params:
    return {n: {**frozen.get(n, {}), **train.get(n, {})} for n in set(frozen) | set(train)}


def make_loss(
    graph: Graph,
    frozen: Params,
    *,
    loss: str,
    readout: Array | None = None,
    first_spike_tau: float = 5.0,
    activity: float = 0.0,
    activity_target: float = 0.05,
    **sim: Any,
) -> Callable[[Params, Array, Array], tuple[Array, Array]]:
    """``(train_params, x, y) -> (loss, logits)``: cross-entropy on the readout logits.

    ``activity`` > 0 adds ``activity * mean((rate - activity_target)_+^2)`` over the hidden spiking nodes' firing
    rates (spikes per step), a mild regulariser that keeps hidden layers sparse (cheaper on every target).
    """
    hidden = [
        n.name
        for n in graph.nodes
        if n.spiking and not any(isinstance(graph.node(s), Output) for s in graph.successors(n.name))
    ]

    def fn(train: Params, x: Array, y: Array) -> tuple[Array, Array]:
        res = simulate_params(graph, _merge(train, frozen), x, record=hidden if activity else False, **sim)
        lg = logits(res.output, loss, readout, first_spike_tau)
        ce = optax.softmax_cross_entropy_with_integer_labels(lg, y).mean()
        if activity:
            rates = [jnp.mean(res.spikes[h], axis=-2) for h in hidden]
            ce = ce + activity * sum(jnp.mean(jnp.maximum(r - activity_target, 0) ** 2) for r in rates)
        return ce, lg

    return fn


def fit(
    graph: Graph,
    x: np.ndarray,
    y: np.ndarray,
    *,
    loss: str = "rate",
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: optax.GradientTransformation | None = None,
    learning_rate: float = 1e-3,
    trainable: Sequence[str] | Callable[[str, str], bool] = ("weight", "bias"),
    readout: np.ndarray | None = None,
    seed: int = 0,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    log: Callable[[dict[str, float]], None] | None = None,
    **loss_kwargs: Any,
) -> FitResult:
    """Fit ``graph``'s parameters on inputs ``x`` ``(N, T, *in)`` and integer labels ``y`` ``(N,)``.

    ``trainable`` selects parameters by NIR name (``weight``, ``bias``, ``tau_mem``, ...) or by a predicate
    ``(node, param) -> bool``. Remaining keyword arguments go to :func:`make_loss` (``first_spike_tau``,
    ``activity``, and simulation options ``surrogate``, ``dt``, ``method``, ``reset``, ``unroll``...).
    Returns the trained graph (export it with :func:`export`), the final parameters and the history
    (``epoch``, ``loss``, ``train_acc``, ``val_acc`` when validation data is given, ``seconds``).
    """
    if loss not in LOSSES:
        raise InputError(f"unknown loss {loss!r}", fix=f"use one of {', '.join(LOSSES)}")
    x, y = np.asarray(x, np.float32), np.asarray(y, np.int32)
    if len(x) != len(y):
        raise InputError(f"{len(x)} inputs but {len(y)} labels")
    train, frozen = _split(extract_params(graph), trainable)
    opt = optimizer or optax.adam(learning_rate)
    opt_state = opt.init(train)
    loss_fn = make_loss(graph, frozen, loss=loss, readout=readout, **loss_kwargs)

    @jax.jit
    def step(train, opt_state, xb, yb):
        (value, lg), grads = jax.value_and_grad(loss_fn, has_aux=True)(train, xb, yb)
        updates, opt_state = opt.update(grads, opt_state, train)
        acc = jnp.mean(jnp.argmax(lg, -1) == yb)
        return optax.apply_updates(train, updates), opt_state, value, acc

    rng = np.random.default_rng(seed)
    history = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        order = rng.permutation(len(x))
        losses, accs = [], []
        for k in range(0, len(x) - batch_size + 1, batch_size):  # drop the ragged tail: one compiled shape
            idx = order[k : k + batch_size]
            train, opt_state, value, acc = step(train, opt_state, x[idx], y[idx])
            losses.append(float(value))
            accs.append(float(acc))
        rec = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "train_acc": float(np.mean(accs))}
        if x_val is not None:
            rec["val_acc"] = accuracy(
                graph,
                x_val,
                y_val,
                loss=loss,
                params=_merge(train, frozen),
                readout=readout,
                **_sim_only(loss_kwargs),
            )
        rec["seconds"] = time.perf_counter() - t0
        history.append(rec)
        if log:
            log(rec)
    # only the trained parameters are written back: frozen ones keep their exact float64 values
    return FitResult(params_to_graph(graph, train, note="train"), _merge(train, frozen), history)


def _sim_only(kw: dict) -> dict:
    return {k: v for k, v in kw.items() if k not in ("activity", "activity_target")}


def predict(
    graph: Graph,
    x: np.ndarray,
    *,
    loss: str = "rate",
    params: Params | None = None,
    readout: np.ndarray | None = None,
    batch_size: int = 256,
    first_spike_tau: float = 5.0,
    **sim: Any,
) -> np.ndarray:
    """Predicted class of every sample of ``x`` ``(N, T, *in)`` (argmax of the training logits)."""
    params = extract_params(graph) if params is None else params
    out = []
    for k in range(0, len(x), batch_size):
        res = simulate_params(
            graph, params, np.asarray(x[k : k + batch_size], np.float32), record=False, **sim
        )
        out.append(np.asarray(jnp.argmax(logits(res.output, loss, readout, first_spike_tau), -1)))
    return np.concatenate(out)


def accuracy(graph: Graph, x: np.ndarray, y: np.ndarray, **kw: Any) -> float:
    """Fraction of samples whose :func:`predict` class equals ``y``."""
    return float(np.mean(predict(graph, x, **kw) == np.asarray(y)))


def export(result: FitResult | Graph, path: str | Path, metadata: dict | None = None) -> Path:
    """Write the trained graph to a NIR file (conventions stored in its metadata; ``metadata`` merged in)."""
    from snn_deploy.io import save

    graph = result.graph if isinstance(result, FitResult) else result
    if metadata:
        graph = Graph.build(
            [n.replace(input_shape=None, output_shape=None) for n in graph.nodes],
            graph.edges,
            conventions=graph.conventions,
            metadata={**graph.metadata, **metadata},
            history=graph.history,
            warnings=graph.warnings,
        )
    return save(graph, path)
