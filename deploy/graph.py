"""The Graph IR: immutable, flat, topologically ordered, with recurrent edges marked and every shape known.

A :class:`Graph` is built with :meth:`Graph.build`, which checks every invariant and raises a typed error naming the
node (and parameter) at fault. Passes never mutate a graph; they build a new one (``graph.evolve(...)``).

Topological order is deterministic: a depth-first search from the Input nodes (by name), visiting successors by
name; an edge that closes a cycle (points at a node still on the search stack) is a *recurrent* edge. Recurrent
edges carry last step's value in every simulator (one step of latency); all other edges are same-step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .conventions import Conventions
from .errors import GraphError, InvalidParameter, MissingNode, ShapeMismatch
from .nodes import Input, Node, Output, Shape, Subgraph

Edge = tuple[str, str]


@dataclass(frozen=True)
class PassRecord:
    """What one pass did: its name, its arguments, and a list of human-readable changes."""

    name: str
    args: Mapping[str, Any] = field(default_factory=dict)
    changes: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "args": dict(self.args),
            "changes": list(self.changes),
            "metrics": dict(self.metrics),
        }


@dataclass(frozen=True, eq=False)
class Graph:
    """An immutable NIR-derived graph. Build it with :meth:`Graph.build`, not the constructor.

    Attributes:
        nodes: nodes in topological order (file order when the graph still holds subgraphs).
        edges: ``(src, dst)`` pairs, sorted.
        recurrent: the subset of ``edges`` that close a cycle (one step of latency).
        conventions: dt, discretisation method and reset convention with their sources.
        metadata: the NIR graph's top-level metadata.
        history: one :class:`PassRecord` per pass applied (loading counts as passes too).
        warnings: every warning raised on the way (repairs, inferred conventions), for reports.
    """

    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    recurrent: frozenset[Edge] = frozenset()
    conventions: Conventions = Conventions()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    history: tuple[PassRecord, ...] = ()
    warnings: tuple[str, ...] = ()

    # ------------------------------------------------------------------ construction

    @classmethod
    def build(
        cls,
        nodes: Iterable[Node],
        edges: Iterable[Edge],
        *,
        conventions: Conventions = Conventions(),  # noqa: B008 -- frozen, immutable default
        metadata: Mapping[str, Any] | None = None,
        history: Iterable[PassRecord] = (),
        warnings: Iterable[str] = (),
    ) -> Graph:
        """Check structure and parameters, order the nodes, mark recurrent edges and infer every shape."""
        nodes = tuple(nodes)
        edges = tuple(sorted({(str(a), str(b)) for a, b in edges}))
        common = dict(
            conventions=conventions,
            metadata=dict(metadata or {}),
            history=tuple(history),
            warnings=tuple(warnings),
        )
        if any(isinstance(n, Subgraph) for n in nodes):
            # Nested graphs are only legal until the flatten pass; their dotted edge names resolve there.
            return cls(nodes=nodes, edges=edges, **common)
        by_name = _unique_names(nodes)
        for src, dst in edges:
            for end in (src, dst):
                if end not in by_name:
                    raise MissingNode(
                        f"edge {src} -> {dst} refers to a node that does not exist",
                        node=end,
                        fix="remove the edge or add the node",
                    )
        for node in nodes:
            _check_parameters(node)
        order, recurrent = _topological_order(by_name, edges)
        shaped = _infer_shapes(by_name, order, edges, recurrent)
        return cls(
            nodes=tuple(shaped[n] for n in order), edges=edges, recurrent=frozenset(recurrent), **common
        )

    def evolve(
        self,
        *,
        nodes: Iterable[Node] | None = None,
        edges: Iterable[Edge] | None = None,
        record: PassRecord | None = None,
        conventions: Conventions | None = None,
        warnings: Iterable[str] = (),
    ) -> Graph:
        """A new, re-verified graph with some parts replaced, the pass record and warnings appended."""
        return Graph.build(
            nodes if nodes is not None else [_unshaped(n) for n in self.nodes],
            edges if edges is not None else self.edges,
            conventions=conventions or self.conventions,
            metadata=self.metadata,
            history=self.history + ((record,) if record else ()),
            warnings=self.warnings + tuple(warnings),
        )

    # ------------------------------------------------------------------ queries

    @property
    def is_flat(self) -> bool:
        return not any(isinstance(n, Subgraph) for n in self.nodes)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise MissingNode(f"no node named {name!r}", node=name)

    def __contains__(self, name: str) -> bool:
        return any(n.name == name for n in self.nodes)

    def predecessors(self, name: str, *, recurrent: bool | None = None) -> list[str]:
        """Sources of edges into ``name``; ``recurrent=True/False`` selects only recurrent/feed-forward ones."""
        return [
            a
            for a, b in self.edges
            if b == name and (recurrent is None or ((a, b) in self.recurrent) == recurrent)
        ]

    def successors(self, name: str) -> list[str]:
        return [b for a, b in self.edges if a == name]

    @property
    def inputs(self) -> list[Input]:
        return [n for n in self.nodes if isinstance(n, Input)]

    @property
    def outputs(self) -> list[Output]:
        return [n for n in self.nodes if isinstance(n, Output)]

    @property
    def neurons(self) -> list[Node]:
        return [n for n in self.nodes if n.is_neuron]

    def summary(self) -> dict:
        """Nodes, edges, conventions and warnings as plain JSON-able data (the ``inspect --json`` object)."""
        return {
            "nodes": [
                {"name": n.name, "type": n.type_name, "shape": list(n.output_shape or ())} for n in self.nodes
            ],
            "edges": [[a, b] for a, b in self.edges],
            "conventions": self.conventions.to_dict(),
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------- helpers


def _unshaped(node: Node) -> Node:
    return dataclasses.replace(node, input_shape=None, output_shape=None)


def _unique_names(nodes: tuple[Node, ...]) -> dict[str, Node]:
    by_name: dict[str, Node] = {}
    for n in nodes:
        if n.name in by_name:
            raise GraphError("two nodes share this name", node=n.name, fix="rename one of them")
        by_name[n.name] = n
    return by_name


def _check_parameters(node: Node) -> None:
    """Finite parameters, positive time constants, and one neuron shape across a neuron's parameters."""
    for p, value in node.params().items():
        if value is None:
            raise InvalidParameter("parameter is missing", node=node.name, param=p)
        if value.size and not np.all(np.isfinite(value)):
            bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
            raise InvalidParameter(
                f"{bad} of {value.size} values are not finite (NaN or inf)",
                node=node.name,
                param=p,
                fix="re-export the model; check the training run for divergence",
            )
    for p in node.time_constants:
        value = getattr(node, p)
        if np.any(value <= 0):
            raise InvalidParameter(
                f"time constants must be > 0 seconds, got min {float(np.min(value)):g}",
                node=node.name,
                param=p,
                fix="use positive time constants in seconds",
            )
    if node.is_neuron:
        shapes = {p: v.shape for p, v in node.params().items()}
        if len(set(shapes.values())) > 1:
            raise ShapeMismatch(
                f"parameter shapes disagree: {shapes}",
                node=node.name,
                fix="give every parameter the neuron shape",
            )
    if node.type_name == "Affine" and node.bias.shape != (node.weight.shape[0],):
        raise ShapeMismatch(
            f"bias shape {node.bias.shape} does not match weight rows {node.weight.shape[0]}",
            node=node.name,
            param="bias",
        )


def _topological_order(by_name: dict[str, Node], edges: tuple[Edge, ...]) -> tuple[list[str], set[Edge]]:
    succ: dict[str, list[str]] = {n: [] for n in by_name}
    for a, b in edges:
        succ[a].append(b)
    for s in succ.values():
        s.sort()
    roots = sorted(n for n, node in by_name.items() if isinstance(node, Input))
    if not roots:
        raise GraphError("the graph has no Input node", fix="add an Input node feeding the first layer")
    if not any(isinstance(n, Output) for n in by_name.values()):
        raise GraphError("the graph has no Output node", fix="add an Output node after the last layer")
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    postorder: list[str] = []
    recurrent: set[Edge] = set()
    for root in roots:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        state[root] = 1
        while stack:
            name, i = stack[-1]
            if i < len(succ[name]):
                stack[-1] = (name, i + 1)
                nxt = succ[name][i]
                if state.get(nxt) == 1:
                    recurrent.add((name, nxt))
                elif nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
            else:
                state[name] = 2
                postorder.append(name)
                stack.pop()
    unreachable = sorted(set(by_name) - set(state))
    if unreachable:
        raise GraphError(
            "node is not reachable from any Input",
            node=unreachable[0],
            fix="connect it or remove it"
            + (f" (also: {', '.join(unreachable[1:])})" if unreachable[1:] else ""),
        )
    for name, node in by_name.items():
        if isinstance(node, Input) and any(b == name for _, b in edges):
            raise GraphError("an Input node has incoming edges", node=name)
        if isinstance(node, Output) and succ[name]:
            raise GraphError("an Output node has outgoing edges", node=name)
    return postorder[::-1], recurrent


def _infer_shapes(
    by_name: dict[str, Node], order: list[str], edges: tuple[Edge, ...], recurrent: set[Edge]
) -> dict[str, Node]:
    out_shape: dict[str, Shape | None] = {}
    shaped: dict[str, Node] = {}
    for name in order:
        node = by_name[name]
        incoming = [(a, b) for a, b in edges if b == name and (a, b) not in recurrent]
        in_shape: Shape | None = node.own_input_shape()
        for a, b in incoming:
            s = out_shape[a]
            if in_shape is None:
                in_shape = s
            elif s is not None and tuple(s) != tuple(in_shape):
                raise ShapeMismatch(
                    f"edge {a} -> {b}: {a} outputs shape {list(s)} but {b} expects {list(in_shape)}",
                    node=b,
                    fix="check the weight orientation (NIR uses (out, in)) and the layer sizes",
                )
        if in_shape is None:
            raise ShapeMismatch("cannot infer the input shape", node=name, fix="give the node an input_shape")
        shape = node.own_output_shape(in_shape)
        out_shape[name] = shape
        shaped[name] = dataclasses.replace(node, input_shape=tuple(in_shape), output_shape=shape)
    for a, b in recurrent:
        if out_shape[a] != shaped[b].input_shape:
            raise ShapeMismatch(
                f"recurrent edge {a} -> {b}: shape {list(out_shape[a] or ())} does not match "
                f"{list(shaped[b].input_shape or ())}",
                node=b,
            )
    return shaped
