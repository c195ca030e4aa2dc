"""Structural passes: inline subgraphs, fold Scale nodes, fuse synapse gains into weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import MissingNode, UnsupportedNode
from ..graph import Edge, Graph, PassRecord
from ..nodes import (
    IF,
    LI,
    LIF,
    Affine,
    Conv1d,
    CubaLI,
    CubaLIF,
    Input,
    Integrator,
    Linear,
    Node,
    Output,
    Scale,
    Subgraph,
)

# ---------------------------------------------------------------------- flatten


@dataclass
class _Level:
    """One (possibly nested) graph level being inlined: its flat nodes/edges and how its names resolve."""

    prefix: str
    nested: bool
    local: dict[str, Node]
    subs: dict[str, _Level] = field(default_factory=dict)
    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    entry: list[str] = field(default_factory=list)  # flat names fed by this level's Input nodes
    exit: list[str] = field(default_factory=list)  # flat names feeding this level's Output nodes

    def resolve(self, ref: str, role: str) -> list[str] | str:
        """Flat names an edge end ``ref`` stands for (``role`` 'src' or 'dst'); 'IN'/'OUT' for nested boundaries."""
        if ref in self.local:
            node = self.local[ref]
            if isinstance(node, Subgraph):
                sub = self.subs[ref]
                return sub.entry if role == "dst" else sub.exit
            if self.nested and isinstance(node, Input):
                return "IN"
            if self.nested and isinstance(node, Output):
                return "OUT"
            return [self.prefix + ref]
        # Dotted reference into a nested graph (``lif1.lif``), as snnTorch writes edges.
        for i, ch in enumerate(ref):
            if ch == "." and ref[:i] in self.subs:
                got = self.subs[ref[:i]].resolve(ref[i + 1 :], role)
                if isinstance(got, str):  # the nested graph's own Input/Output: same as naming the subgraph
                    return self.resolve(ref[:i], role)
                return got
        raise MissingNode(f"edge end {self.prefix + ref!r} names no node", node=self.prefix + ref)


def _inline(nodes: tuple[Node, ...], edges: tuple[Edge, ...], prefix: str, nested: bool) -> _Level:
    level = _Level(prefix, nested, {n.name: n for n in nodes})
    for n in nodes:
        if isinstance(n, Subgraph):
            sub = _inline(n.nodes, n.edges, f"{prefix}{n.name}.", True)
            level.subs[n.name] = sub
            level.nodes += sub.nodes
            level.edges += sub.edges
        elif not (nested and isinstance(n, (Input, Output))):
            level.nodes.append(n.replace(name=prefix + n.name, input_shape=None, output_shape=None))
    for a, b in edges:
        src, dst = level.resolve(a, "src"), level.resolve(b, "dst")
        if src == "IN" and dst == "OUT":
            raise UnsupportedNode("nested graph connects its Input straight to its Output", node=prefix + a)
        if src == "IN":
            level.entry += dst  # type: ignore[arg-type]
        elif dst == "OUT":
            level.exit += src  # type: ignore[arg-type]
        else:
            level.edges += [(s, d) for s in src for d in dst]
    return level


def flatten(graph: Graph) -> Graph:
    """Inline nested subgraphs; their nodes are named ``<subgraph>.<node>`` (edges may use those dotted names)."""
    if graph.is_flat:
        return graph.evolve(record=PassRecord("flatten", changes=("graph was already flat",)))
    level = _inline(graph.nodes, graph.edges, "", False)
    subs = [n.name for n in graph.nodes if isinstance(n, Subgraph)]
    record = PassRecord("flatten", changes=tuple(f"inlined subgraph '{s}'" for s in subs))
    return graph.evolve(nodes=level.nodes, edges=level.edges, record=record)


# ---------------------------------------------------------------------- fold_scales

_SYNAPSES = (Linear, Conv1d)  # Affine and Conv2d are subclasses


def _input_gain_param(node: Node) -> str | None:
    """The parameter a neuron multiplies its input by (before any internal state)."""
    if isinstance(node, (CubaLIF, CubaLI)):
        return "w_in"
    if isinstance(node, (LIF, LI, IF, Integrator)):
        return "r"
    return None


def _scale_columns(node: Node, s: np.ndarray) -> Node | None:
    """``node`` applied to ``s * x``, as a node of the same type; None if not expressible."""
    if isinstance(node, Linear):
        return node.replace(weight=node.weight * s.reshape(1, -1))
    if isinstance(node, Conv1d):
        per_channel = s.reshape(s.shape[0], -1)
        if not np.all(per_channel == per_channel[:, :1]):
            return None
        return node.replace(
            weight=node.weight * per_channel[:, 0].reshape(1, -1, *([1] * (node.weight.ndim - 2)))
        )
    return None


def fold_scales(graph: Graph) -> Graph:
    """Remove ``Scale`` nodes by folding them into the next synapse (columns), the previous one (rows and bias),
    or the input gain of the neuron they feed. Scales in a recurrent loop or with mixed consumers are kept."""
    nodes = {n.name: n for n in graph.nodes}
    edges = set(graph.edges)
    changes: list[str] = []
    for s_node in [n for n in graph.nodes if isinstance(n, Scale)]:
        name = s_node.name
        ins = [e for e in edges if e[1] == name]
        outs = [e for e in edges if e[0] == name]
        if any(e in graph.recurrent for e in ins + outs) or not outs:
            changes.append(f"kept Scale '{name}' (recurrent or unused)")
            continue
        s = np.asarray(s_node.scale)
        succ = [nodes[b] for _, b in outs]
        preds = [nodes[a] for a, _ in ins]
        new: dict[str, Node] | None = None
        if all(isinstance(n, _SYNAPSES) for n in succ):
            folded = {n.name: _scale_columns(n, s) for n in succ}
            new = folded if all(v is not None for v in folded.values()) else None  # type: ignore[assignment]
            where = "columns of " + ", ".join(folded)
        if new is None and len(preds) == 1 and isinstance(preds[0], Linear) and len(outs) >= 1:
            p = preds[0]
            if [e for e in edges if e[0] == p.name] == [(p.name, name)]:
                changes_p = {"weight": p.weight * s.reshape(-1, 1)}
                if isinstance(p, Affine):
                    changes_p["bias"] = p.bias * s
                new, where = {p.name: p.replace(**changes_p)}, f"rows of '{p.name}'"
        if new is None and all(_input_gain_param(n) for n in succ):
            if all([e for e in edges if e[1] == n.name] == [(name, n.name)] for n in succ):
                new = {
                    n.name: n.replace(**{_input_gain_param(n): getattr(n, _input_gain_param(n)) * s})
                    for n in succ
                }
                where = "input gain of " + ", ".join(f"'{n.name}'" for n in succ)
        if new is None:
            changes.append(f"kept Scale '{name}' (no single synapse or neuron to fold it into)")
            continue
        nodes.update(new)
        del nodes[name]
        edges -= set(ins) | set(outs)
        edges |= {(a, b) for a, _ in ins for _, b in outs}
        changes.append(f"folded Scale '{name}' into {where}")
    if not any(isinstance(n, Scale) for n in graph.nodes):
        changes.append("no Scale nodes")
    record = PassRecord("fold_scales", changes=tuple(changes))
    return graph.evolve(
        nodes=[n.replace(input_shape=None, output_shape=None) for n in nodes.values()],
        edges=edges,
        record=record,
    )


# ---------------------------------------------------------------------- fuse_synapses


def fuse_synapses(graph: Graph) -> Graph:
    """Fold each neuron's input gains into the Linear/Affine/Conv nodes that feed it, so its gains become 1.

    LIF/LI/IF/I: ``r`` moves into the weights. CubaLIF/CubaLI: ``r * w_in`` moves into the weights (``r`` multiplies
    the synaptic current, which is linear in the input), so the neuron's synaptic current becomes ``r * I``;
    the spikes and membrane are unchanged. This is what integer targets need: their neurons add the synaptic
    current with gain 1. A neuron is fused only when every input comes from a synapse node that feeds only it
    (a shared synapse cannot take two different gains); convolutions need gains uniform per output channel.
    """
    nodes = {n.name: n for n in graph.nodes}
    changes: list[str] = []
    for neuron in graph.neurons:
        gain_params = ["r"] + (["w_in"] if isinstance(neuron, (CubaLIF, CubaLI)) else [])
        gain = np.prod([np.asarray(getattr(neuron, p)) for p in gain_params], axis=0)
        if np.all(gain == 1.0):
            continue
        preds = graph.predecessors(neuron.name)
        synapses = [nodes[p] for p in preds]
        reason = None
        if not synapses or not all(isinstance(s, _SYNAPSES) for s in synapses):
            reason = "an input does not come from a synapse node"
        elif any(graph.successors(s.name) != [neuron.name] for s in synapses):
            reason = "a synapse feeding it also feeds other nodes"
        fused: dict[str, Node] = {}
        for s in synapses if reason is None else []:
            if isinstance(s, Linear):
                upd = {"weight": s.weight * gain.reshape(-1, 1)}
            else:
                per_ch = gain.reshape(gain.shape[0], -1)
                if not np.all(per_ch == per_ch[:, :1]):
                    reason = "its gains vary inside a convolution channel"
                    break
                upd = {"weight": s.weight * per_ch[:, 0].reshape(-1, *([1] * (s.weight.ndim - 1)))}
            if isinstance(s, Affine) or (isinstance(s, Conv1d)):
                upd["bias"] = s.bias * (gain if isinstance(s, Linear) else per_ch[:, 0])
            fused[s.name] = s.replace(**upd)
        if reason is not None:
            changes.append(f"kept gains of '{neuron.name}': {reason}")
            continue
        nodes.update(fused)
        nodes[neuron.name] = neuron.replace(**{p: np.ones_like(getattr(neuron, p)) for p in gain_params})
        what = " * ".join(gain_params)
        changes.append(
            f"fused {what} of '{neuron.name}' (range {float(np.min(gain)):.4g}..{float(np.max(gain)):.4g}) into "
            + ", ".join(f"'{s}'" for s in fused)
            + ("; its synaptic current is now scaled by r" if "w_in" in gain_params else "")
        )
    if not changes:
        changes.append("all neuron gains already 1")
    record = PassRecord("fuse_synapses", changes=tuple(changes))
    return graph.evolve(
        nodes=[n.replace(input_shape=None, output_shape=None) for n in nodes.values()], record=record
    )
