"""Float reference simulator of the Graph IR in JAX: the "what the model should do" side of every comparison.

Semantics (the update of every neuron is in :mod:`snn_deploy.sim.reference_ops`; its coefficients are the JAX
twin of :func:`snn_deploy.discretize.step_coefficients`):

- ``inputs[t]`` is the value of every Input during step ``t`` (a spike is a pulse of amplitude 1 held for one step).
- Feed-forward edges carry the same step's value (zero latency); recurrent edges (``graph.recurrent``) carry the
  previous step's value (zero at ``t = 0``). Nodes with several inputs sum them.
- ``method`` ``euler``/``exact`` and ``reset`` ``zero``/``subtract``/``subtract-next`` come from the graph's
  conventions unless given; ``dt`` (seconds) likewise. Spikes fire when ``v > v_threshold`` (strict).
- Delay: ``delay`` seconds become ``round(delay / dt)`` whole steps (half to even); the first steps output zero.
- AvgPool2d divides by the full kernel size (zero padding counts, PyTorch's default).
- All state starts at zero.

Shapes: an input is ``(T, *input_shape)`` (one sample) or ``(B, T, *input_shape)``; every recorded array has the same
leading axes. Parameters are a pytree ``{node: {param: array}}`` (:func:`extract_params`), so ``jax.grad`` of any
function of :func:`simulate_params` gives gradients for weights, biases, time constants, thresholds, ...
When more than one JAX device is present the batch axis is sharded over all of them (``jax.sharding.Mesh`` named
``batch``), parameters replicated.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from snn_deploy.conventions import METHODS, RESETS
from snn_deploy.errors import ConventionError, InputError
from snn_deploy.graph import Graph, PassRecord
from snn_deploy.nodes import Affine, Delay, Input, Linear, Node, Output, frozen_array

from .reference_adjoint import layer_constants, linear_neuron_scan, neuron_scan
from .reference_ops import (
    NeuronStep,
    Surrogate,
    apply_stateless,
    as_surrogate,
    coefficients,
    delay_step,
    delay_steps,
    dense_to_time_major,
)
from .reference_plan import Component, components

Array = jax.Array
Params = dict[str, dict[str, Array]]


# ---------------------------------------------------------------------------------------------- config, params


@dataclass(frozen=True)
class SimConfig:
    """Static settings of a simulation.

    Attributes:
        dt: seconds per step.
        method: ``euler`` or ``exact`` (see :mod:`snn_deploy.discretize`).
        reset: ``zero``, ``subtract`` or ``subtract-next`` (see :mod:`snn_deploy.conventions`).
        surrogate: spike pseudo-derivative for the backward pass.
        detach_reset: no gradient through the reset term (snnTorch's default).
        precision: matmul/conv precision (``"highest"``: true float32 on GPUs too; None: JAX's default).
        unroll: ``lax.scan`` unroll factor (speed only).
        adjoint: differentiate layer-wise neuron loops with the hand-derived adjoint of
            :mod:`snn_deploy.sim.reference_adjoint` (same values and gradients, faster); False: JAX's autodiff of
            the plain loop (needed for forward-mode ``jax.jvp``/``jacfwd``).
    """

    dt: float
    method: str = "euler"
    reset: str = "zero"
    surrogate: Surrogate = Surrogate()
    detach_reset: bool = True
    precision: str | None = "highest"
    unroll: int = 1
    adjoint: bool = True


def resolve_config(
    graph: Graph,
    *,
    dt: float | None = None,
    method: str | None = None,
    reset: str | None = None,
    surrogate: str | Surrogate | None = None,
    detach_reset: bool = True,
    precision: str | None = "highest",
    unroll: int = 1,
    adjoint: bool = True,
) -> SimConfig:
    """The graph's conventions, overridden by the arguments that are not None; checked."""
    conv = graph.conventions
    dt = conv.dt_value if dt is None else float(dt)
    if dt is None or not np.isfinite(dt) or dt <= 0:
        raise ConventionError(
            f"dt must be a positive number of seconds, got {dt!r}",
            fix="pass dt= (CLI: --dt) or store 'dt' in the graph metadata",
        )
    method = str(conv.method.value) if method is None else method
    reset = str(conv.reset.value) if reset is None else reset
    if method not in METHODS:
        raise ConventionError(f"unknown method {method!r}", fix=f"use one of {', '.join(METHODS)}")
    if reset not in RESETS:
        raise ConventionError(f"unknown reset {reset!r}", fix=f"use one of {', '.join(RESETS)}")
    return SimConfig(
        dt, method, reset, as_surrogate(surrogate), detach_reset, precision, int(unroll), bool(adjoint)
    )


def _float_dtype(dtype: Any = None) -> jnp.dtype:
    return jnp.dtype(dtype) if dtype is not None else jnp.result_type(float)


def extract_params(graph: Graph, dtype: Any = None) -> Params:
    """The graph's continuous-time parameters as a pytree ``{node: {param: jnp array}}``.

    Every node with array parameters is included except Delay (its delays are rounded to whole steps, so they are
    static). ``dtype`` defaults to JAX's float (float32, or float64 under ``jax_enable_x64``).
    """
    dt = _float_dtype(dtype)
    return {
        n.name: {k: jnp.asarray(v, dtype=dt) for k, v in n.params().items()}
        for n in graph.nodes
        if n.array_params and not isinstance(n, Delay)
    }


def params_to_graph(
    graph: Graph, params: Mapping[str, Mapping[str, Any]], note: str = "set parameters"
) -> Graph:
    """A new Graph with ``params`` written into its nodes (float64); the pass history records ``note``."""
    by_name = {n.name: n for n in graph.nodes}
    unknown = sorted(set(params) - set(by_name))
    if unknown:
        raise InputError(f"parameters for nodes not in the graph: {unknown}", fix="use extract_params(graph)")
    nodes = []
    changed = []
    for n in graph.nodes:
        new = params.get(n.name)
        if new:
            fields = {}
            for k, v in new.items():
                a = np.asarray(v, dtype=np.float64)
                if a.shape != getattr(n, k).shape:
                    raise InputError(
                        f"parameter shape {a.shape} != {getattr(n, k).shape}", node=n.name, param=k
                    )
                fields[k] = frozen_array(a)
            n = n.replace(**fields)
            changed.append(n.name)
        nodes.append(n.replace(input_shape=None, output_shape=None))
    return graph.evolve(nodes=nodes, record=PassRecord(note, {"nodes": changed}))


# ---------------------------------------------------------------------------------------------- results


class Result(NamedTuple):
    """Simulation record. Arrays have the input's leading axes: ``(B, T, ...)`` or ``(T, ...)``.

    Attributes:
        outputs: value of every Output node, by name.
        spikes: spikes (0/1) of every recorded spiking neuron node.
        v: membrane state at the end of each step (after reset) of every recorded neuron node.
        i: synaptic current (after this step's input) of every recorded CubaLIF/CubaLI node.
    """

    outputs: dict[str, Array]
    spikes: dict[str, Array]
    v: dict[str, Array]
    i: dict[str, Array]

    @property
    def output(self) -> Array:
        """The value of the graph's only Output node."""
        if len(self.outputs) != 1:
            raise InputError(
                f"the graph has {len(self.outputs)} Output nodes", fix="use result.outputs[name]"
            )
        return next(iter(self.outputs.values()))


# ---------------------------------------------------------------------------------------------- the simulator


class Simulator:
    """A compiled simulation of one graph under one :class:`SimConfig` (build with :func:`simulator`).

    ``sim(params, inputs, state=None) -> (Result, state)`` takes batch-major inputs ``{input: (B, T, ...)}``; it is
    pure and differentiable, and the returned state continues the simulation in a next call (time chunks).
    """

    def __init__(self, graph: Graph, config: SimConfig, record: frozenset[str], shard: bool) -> None:
        if not graph.is_flat:
            raise ConventionError(
                "the graph still holds subgraphs", fix="load it with snn_deploy.load (flattens)"
            )
        self.graph = graph
        self.config = config
        self.record = record
        self.nodes: dict[str, Node] = {n.name: n for n in graph.nodes}
        self.plan: list[Component] = components(graph)
        self.comp_of = {m: c for c in self.plan for m in c.nodes}
        self.delays = {n.name: delay_steps(n.delay, config.dt) for n in graph.nodes if isinstance(n, Delay)}
        self.steps = {
            n.name: NeuronStep(type(n), config.reset, config.surrogate, config.detach_reset)
            for n in graph.nodes
            if n.is_neuron
        }
        # neurons fed only by a Linear of an Input that feeds nothing else: the product stays batch-major (one
        # plain matmul) and the adjoint's neuron loop reads it (and writes its gradient) in that layout
        self.bm_neurons = frozenset(
            c.nodes[0] for c in self.plan if not c.cyclic and self._fed_by_private_input_linear(c.nodes[0])
        )
        self.bm_linears = frozenset(self.graph.predecessors(n, recurrent=False)[0] for n in self.bm_neurons)
        # of those, the ones the adjoint runs with their Linear as one op (linear_neuron_scan: the product is not
        # kept for the backward pass); the Linear itself then computes nothing
        self.fused_neurons = frozenset(
            n for n in self.bm_neurons if config.adjoint and not self.steps[n].has_synapse
        )
        self.fused_linears = frozenset(
            self.graph.predecessors(n, recurrent=False)[0] for n in self.fused_neurons
        )
        # of those, the unrecorded ones whose only consumer is a Linear they alone feed: that Linear joins the op
        # (its output comes out of it; the neuron's own series is never stored)
        self.chained = {
            n: nxt
            for n in self.fused_neurons
            if n not in record and (nxt := self._private_next_linear(n)) is not None
        }
        devices = jax.devices()
        self.mesh = Mesh(np.array(devices), ("batch",)) if shard and len(devices) > 1 else None
        self._jit = jax.jit(self._run)

    def _fed_by_private_input_linear(self, name: str) -> bool:
        """A neuron whose only input is a Linear that reads one Input and feeds only this neuron."""
        srcs = self.graph.predecessors(name, recurrent=False)
        if name not in self.steps or len(srcs) != 1 or not isinstance(self.nodes[srcs[0]], Linear):
            return False
        lin = srcs[0]
        lin_srcs = self.graph.predecessors(lin, recurrent=False)
        only_succ = list(self.graph.successors(lin)) == [name]
        return only_succ and len(lin_srcs) == 1 and isinstance(self.nodes[lin_srcs[0]], Input)

    def _weight_bias(self, name: str, params: Params) -> tuple[Array, Array | None]:
        """A Linear's weight and its bias (None for a Linear that is not an Affine)."""
        p = params[name]
        return p["weight"], p["bias"] if isinstance(self.nodes[name], Affine) else None

    def _private_next_linear(self, name: str) -> str | None:
        """The Linear that is ``name``'s only successor and has ``name`` as its only (feed-forward) input."""
        succ = self.graph.successors(name)
        if len(succ) != 1 or not isinstance(self.nodes[succ[0]], Linear):
            return None
        nxt = succ[0]
        if (name, nxt) in self.graph.recurrent or self.graph.predecessors(nxt) != [name]:
            return None
        return None if self.comp_of[nxt].cyclic else nxt

    # ------------------------------------------------------------------ state

    def init_state(self, batch: int, dtype: Any = None) -> dict[str, Any]:
        """Zero state for ``batch`` samples: neuron states, delay lines, last outputs on recurrent edges."""
        dt = _float_dtype(dtype)
        nodes: dict[str, Any] = {}
        for name, node in self.nodes.items():
            if name in self.steps:
                nodes[name] = self.steps[name].init((batch, *node.output_shape), dt)
            elif name in self.delays and self.delays[name].size and self.delays[name].max() > 0:
                nodes[name] = jnp.zeros((int(self.delays[name].max()), batch, *node.output_shape), dt)
        prev = {a: jnp.zeros((batch, *self.nodes[a].output_shape), dt) for a, _ in self.graph.recurrent}
        return {"nodes": nodes, "prev": prev}

    # ------------------------------------------------------------------ running

    def __call__(
        self, params: Params, inputs: Mapping[str, Array], state: dict | None = None
    ) -> tuple[Result, dict]:
        return self._jit(params, dict(inputs), state)

    def _run(self, params: Params, inputs: dict[str, Array], state: dict | None) -> tuple[Result, dict]:
        dtype = _float_dtype()
        inputs = {k: jnp.asarray(v, dtype) for k, v in inputs.items()}
        if self.mesh is not None:
            batch_sh = NamedSharding(self.mesh, PartitionSpec("batch"))
            inputs = jax.lax.with_sharding_constraint(inputs, batch_sh)
            params = jax.lax.with_sharding_constraint(params, NamedSharding(self.mesh, PartitionSpec()))
        batch = next(iter(inputs.values())).shape[0]
        if state is None:
            state = self.init_state(batch, dtype)
        # Values are time-major (T, B, ...) inside, except the raw inputs, which stay batch-major: a Linear fed by
        # an Input folds the transpose into its product (the raw input is often the widest array).
        vals: dict[str, Array] = {}
        recs: dict[str, dict[str, Array]] = {}
        new_nodes = dict(state["nodes"])
        new_prev = dict(state["prev"])
        for comp in self.plan:
            if comp.cyclic:
                self._run_cycle(comp, params, inputs, vals, recs, state, new_nodes, new_prev)
            else:
                self._run_layer(comp.nodes[0], params, inputs, vals, recs, state, new_nodes)
        bm = _tm  # back to batch-major
        result = Result(
            outputs={n.name: bm(vals[n.name]) for n in self.graph.nodes if isinstance(n, Output)},
            spikes={k: bm(r["spikes"]) for k, r in recs.items() if "spikes" in r},
            v={k: bm(r["v"]) for k, r in recs.items()},
            i={k: bm(r["i"]) for k, r in recs.items() if "i" in r},
        )
        return result, {"nodes": new_nodes, "prev": new_prev}

    def _ff_input(
        self, name: str, vals: dict[str, Array], inputs: dict[str, Array], exclude: Iterable[str] = ()
    ) -> Array | None:
        """Time-major sum of the feed-forward predecessors' series of ``name`` (None when there are none)."""
        srcs = [a for a in self.graph.predecessors(name, recurrent=False) if a not in set(exclude)]
        if not srcs:
            return None
        return functools.reduce(jnp.add, (vals[a] if a in vals else _tm(inputs[a]) for a in srcs))

    def _run_layer(self, name, params, inputs, vals, recs, state, new_nodes) -> None:
        node = self.nodes[name]
        if isinstance(node, Input):
            if name not in inputs:
                raise InputError(f"no input given for Input node {name!r}", node=name)
            return  # read from ``inputs`` (batch-major) by its successors
        p = params.get(name, {})
        srcs = self.graph.predecessors(name, recurrent=False)
        if name in self.fused_linears or name in self.chained.values():  # inside its neuron's op
            return
        if name in self.bm_linears:  # batch-major (B, T, out), read only by its neuron (see bm_neurons)
            y = jnp.matmul(inputs[srcs[0]], p["weight"].T, precision=self.config.precision)
            vals[name] = y + p["bias"] if isinstance(node, Affine) else y
            return
        if isinstance(node, Linear) and len(srcs) == 1 and srcs[0] not in vals:
            y = dense_to_time_major(inputs[srcs[0]], p["weight"], self.config.precision)
            vals[name] = y + p["bias"] if isinstance(node, Affine) else y
            return
        x = None if name in self.fused_neurons else self._ff_input(name, vals, inputs)
        if name in self.steps:
            step = self.steps[name]
            st0 = state["nodes"][name]
            keep = name in self.record
            if self.config.adjoint:
                k = layer_constants(step, coefficients(type(node), p, self.config.dt, self.config.method), p)
                if name in self.fused_neurons:
                    lin, nxt = srcs[0], self.chained.get(name)
                    new_nodes[name], vals[nxt or name], rec = linear_neuron_scan(
                        step,
                        k,
                        st0,
                        inputs[self.graph.predecessors(lin, recurrent=False)[0]],
                        *self._weight_bias(lin, params),
                        keep=keep,
                        unroll=self.config.unroll,
                        precision=self.config.precision,
                        next_linear=None if nxt is None else self._weight_bias(nxt, params),
                    )
                else:
                    new_nodes[name], vals[name], rec = neuron_scan(
                        step,
                        k,
                        st0,
                        x,
                        keep=keep,
                        unroll=self.config.unroll,
                        batch_major=name in self.bm_neurons,
                    )
                if keep:
                    recs[name] = rec
                return
            consts = step.constants(
                coefficients(type(node), p, self.config.dt, self.config.method), p, st0["v"].shape
            )
            x = _tm(x) if name in self.bm_neurons else x

            def body(carry, x_t):
                st, k = carry
                st, out, rec = step(k, st, x_t)
                return (st, k), (out, rec if keep else {})

            (new_nodes[name], _), (vals[name], rec) = jax.lax.scan(
                body, (st0, consts), x, unroll=self.config.unroll
            )
            if keep:
                recs[name] = rec
        elif name in self.delays:
            if name not in state["nodes"]:  # every delay rounds to 0 steps: identity
                vals[name] = x
                return
            steps = self.delays[name]
            new_nodes[name], vals[name] = jax.lax.scan(
                lambda h, x_t: delay_step(steps, h, x_t), state["nodes"][name], x, unroll=self.config.unroll
            )
        else:
            vals[name] = apply_stateless(node, p, x, self.config.surrogate, self.config.precision)

    def _run_cycle(self, comp, params, inputs, vals, recs, state, new_nodes, new_prev) -> None:
        members = comp.nodes
        inside = set(members)
        ext = {m: s for m in members if (s := self._ff_input(m, vals, inputs, exclude=inside)) is not None}
        coefs = {
            m: self.steps[m].constants(
                coefficients(type(self.nodes[m]), params.get(m, {}), self.config.dt, self.config.method),
                params.get(m, {}),
                state["nodes"][m]["v"].shape,
            )
            for m in members
            if m in self.steps
        }
        rec_srcs = sorted({a for a, b in self.graph.recurrent if b in inside})
        leaving = [m for m in members if any(b not in inside for b in self.graph.successors(m))]
        batch = next(iter(inputs.values())).shape[0]
        dtype = _float_dtype()

        def body(carry, ext_t):
            st, prev, coefs = carry
            st = dict(st)
            cur: dict[str, Array] = {}
            out_rec: dict[str, dict[str, Array]] = {}
            for m in members:
                node = self.nodes[m]
                terms = [ext_t[m]] if m in ext_t else []
                terms += [cur[a] for a in self.graph.predecessors(m, recurrent=False) if a in inside]
                terms += [prev[a] for a in self.graph.predecessors(m, recurrent=True)]
                x = (
                    functools.reduce(jnp.add, terms)
                    if terms
                    else jnp.zeros((batch, *node.input_shape), dtype)
                )
                p = params.get(m, {})
                if m in self.steps:
                    st[m], cur[m], rec = self.steps[m](coefs[m], st[m], x)
                    if m in self.record:
                        out_rec[m] = rec
                elif m in self.delays and m in st:
                    st[m], cur[m] = delay_step(self.delays[m], st[m], x)
                elif m in self.delays:
                    cur[m] = x
                else:
                    cur[m] = apply_stateless(node, p, x, self.config.surrogate, self.config.precision)
            new_p = {a: cur[a] for a in rec_srcs}
            return (st, new_p, coefs), ({m: cur[m] for m in leaving}, out_rec)

        st0 = {m: state["nodes"][m] for m in members if m in state["nodes"]}
        prev0 = {a: state["prev"][a] for a in rec_srcs}
        (st, prev, _), (outs, rec) = jax.lax.scan(body, (st0, prev0, coefs), ext, unroll=self.config.unroll)
        new_nodes.update(st)
        new_prev.update(prev)
        vals.update(outs)
        recs.update(rec)


def _tm(x: Array) -> Array:
    """Swap the first two axes: batch-major (B, T, ...) <-> time-major (T, B, ...)."""
    return jnp.swapaxes(x, 0, 1)


def _record_set(graph: Graph, record: bool | Iterable[str]) -> frozenset[str]:
    neurons = {n.name for n in graph.nodes if n.is_neuron}
    if record is True:
        return frozenset(neurons)
    if record is False or record is None:
        return frozenset()
    names = frozenset(record)
    bad = sorted(names - neurons)
    if bad:
        raise InputError(f"cannot record {bad}: not neuron nodes", fix=f"choose from {sorted(neurons)}")
    return names


@functools.lru_cache(maxsize=32)
def _cached(graph: Graph, config: SimConfig, record: frozenset[str], shard: bool) -> Simulator:
    return Simulator(graph, config, record, shard)


def simulator(
    graph: Graph, config: SimConfig, *, record: bool | Iterable[str] = True, shard: bool | None = None
) -> Simulator:
    """A (cached) :class:`Simulator`; ``shard`` None means: shard the batch when more than one device is present."""
    shard = len(jax.devices()) > 1 if shard is None else bool(shard)
    return _cached(graph, config, _record_set(graph, record), shard)


# ---------------------------------------------------------------------------------------------- public API


def prepare_inputs(graph: Graph, inputs: Any) -> tuple[dict[str, Array], bool]:
    """Inputs as ``{input_name: (B, T, *shape)}`` and whether the caller gave a batch axis.

    ``inputs`` is one array (graphs with one Input) or a mapping by Input name; each array is
    ``(T, *input_shape)`` or ``(B, T, *input_shape)``. All Inputs must agree on B and T.
    """
    ins = graph.inputs
    if not isinstance(inputs, Mapping):
        if len(ins) != 1:
            raise InputError(f"the graph has {len(ins)} Input nodes", fix="pass a dict {input name: array}")
        inputs = {ins[0].name: inputs}
    names = {n.name for n in ins}
    if set(inputs) != names:
        raise InputError(f"inputs given for {sorted(inputs)}, graph inputs are {sorted(names)}")
    out, batched_flags = {}, set()
    for node in ins:
        a = inputs[node.name]
        a = a if isinstance(a, jax.Array) else np.asarray(a)
        shape = tuple(node.output_shape)
        k = a.ndim - len(shape)
        if k not in (1, 2) or tuple(a.shape[k:]) != shape:
            raise InputError(
                f"input array has shape {list(a.shape)}, expected (T, {', '.join(map(str, shape))}) "
                f"or (B, T, {', '.join(map(str, shape))})",
                node=node.name,
                fix="reshape the input to (time, *input_shape) with an optional leading batch axis",
            )
        if a.shape[k - 1] == 0:
            raise InputError("input has zero time steps", node=node.name)
        batched_flags.add(k == 2)
        out[node.name] = a if k == 2 else a[None]
    if len(batched_flags) > 1:
        raise InputError(
            "some inputs have a batch axis and others not", fix="give every input the same leading axes"
        )
    lead = {v.shape[:2] for v in out.values()}
    if len(lead) > 1:
        raise InputError(f"inputs disagree on (batch, time): {sorted(lead)}")
    return out, batched_flags.pop()


def simulate_params(
    graph: Graph,
    params: Params,
    inputs: Any,
    *,
    dt: float | None = None,
    method: str | None = None,
    reset: str | None = None,
    surrogate: str | Surrogate | None = None,
    record: bool | Iterable[str] = True,
    shard: bool | None = None,
    **config: Any,
) -> Result:
    """Simulate ``graph`` with parameters ``params`` (differentiable in ``params``; usable inside ``jax.grad``).

    Extra keyword arguments go to :class:`SimConfig` (``detach_reset``, ``precision``, ``unroll``, ``adjoint``).
    """
    cfg = resolve_config(graph, dt=dt, method=method, reset=reset, surrogate=surrogate, **config)
    sim = simulator(graph, cfg, record=record, shard=shard)
    batched_inputs, batched = prepare_inputs(graph, inputs)
    batch = next(iter(batched_inputs.values())).shape[0]
    pad = (-batch) % (sim.mesh.size if sim.mesh is not None else 1)
    if pad:  # sharding needs a batch divisible by the device count: pad with silent samples, drop them after
        batched_inputs = {
            k: jnp.concatenate([v, jnp.zeros((pad, *v.shape[1:]), v.dtype)])
            for k, v in batched_inputs.items()
        }
    if sim.mesh is not None and not any(isinstance(v, jax.core.Tracer) for v in batched_inputs.values()):
        sh = NamedSharding(sim.mesh, PartitionSpec("batch"))
        batched_inputs = {
            k: jax.device_put(jnp.asarray(v, _float_dtype()), sh) for k, v in batched_inputs.items()
        }
    result, _ = sim(params, batched_inputs)
    if pad:
        result = jax.tree_util.tree_map(lambda a: a[:batch], result)
    if not batched:
        result = jax.tree_util.tree_map(lambda a: a[0], result)
    return result


def simulate(
    graph: Graph,
    inputs: Any,
    *,
    dt: float | None = None,
    method: str | None = None,
    reset: str | None = None,
    record: bool | Iterable[str] = True,
    surrogate: str | Surrogate | None = None,
    shard: bool | None = None,
    params: Params | None = None,
    **config: Any,
) -> Result:
    """Simulate ``graph`` on ``inputs`` ``(T, *in)`` or ``(B, T, *in)`` (numpy or JAX arrays).

    ``dt``/``method``/``reset`` default to the graph's conventions. ``params`` defaults to the graph's own
    (:func:`extract_params`). Returns a :class:`Result` of JAX arrays with the input's leading axes.
    """
    if params is None:
        params = extract_params(graph)
    return simulate_params(
        graph,
        params,
        inputs,
        dt=dt,
        method=method,
        reset=reset,
        surrogate=surrogate,
        record=record,
        shard=shard,
        **config,
    )
