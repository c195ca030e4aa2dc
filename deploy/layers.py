"""Recognising the layer stack a neuromorphic core can run: Input -> (synapse -> neurons [+ recurrence])* -> Output.

Targets with a fixed architecture (Xylo, Loihi's dense netx layers) accept graphs of this shape:

    Input -> Linear|Affine -> neuron [-> Linear -> (same neuron), recurrent] -> Linear|Affine -> neuron ... -> Output

Each :class:`Layer` holds the feed-forward weight (``(n, n_source)``, NIR's ``(out, in)``), its bias, the optional
recurrent weight ``(n, n)`` and the neuron node. ``Scale`` nodes must have been folded (``fold_scales``) first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import UnsupportedNode
from .graph import Graph
from .nodes import Affine, Linear, Node, Output


@dataclass(frozen=True)
class Layer:
    """One synapse + neuron layer. Weights are float64 numpy arrays in NIR orientation ``(out, in)``; ``b_ff`` is the
    total constant input per step (forward Affine bias plus a recurrent Affine's bias)."""

    neuron: Node
    w_ff: np.ndarray
    b_ff: np.ndarray
    w_rec: np.ndarray | None
    ff_node: str
    rec_node: str | None

    @property
    def name(self) -> str:
        return self.neuron.name

    @property
    def size(self) -> int:
        return int(np.prod(self.neuron.output_shape))


def _only(items: list[str], what: str, at: str, hint: str) -> str:
    if len(items) != 1:
        raise UnsupportedNode(
            f"{what}: expected exactly one, found {len(items)} ({', '.join(items) or 'none'})",
            node=at,
            fix=hint,
        )
    return items[0]


def layer_stack(graph: Graph, target: str) -> list[Layer]:
    """The graph as a list of layers, input first, or an UnsupportedNode error naming the node that breaks the shape."""
    hint = f"{target} runs Input -> (Linear/Affine -> neuron [+ recurrent Linear])* -> Output stacks"
    inputs = graph.inputs
    if len(inputs) != 1:
        raise UnsupportedNode(f"{len(inputs)} Input nodes; {target} takes one", node=None, fix=hint)
    if len(inputs[0].shape) != 1:
        raise UnsupportedNode(
            f"input shape {list(inputs[0].shape)} is not a vector",
            node=inputs[0].name,
            fix="flatten the input",
        )
    layers: list[Layer] = []
    current: Node = inputs[0]
    while True:
        succ = graph.successors(current.name)
        outputs = [s for s in succ if isinstance(graph.node(s), Output)]
        rest = [s for s in succ if not isinstance(graph.node(s), Output)]
        rec_name = None
        w_rec = None
        if layers:  # a neuron: a successor Linear that feeds back into it is its recurrence
            loops = [s for s in rest if (s, current.name) in graph.recurrent]
            if loops:
                rec_name = _only(loops, "recurrent synapse", current.name, hint)
                rec = graph.node(rec_name)
                if not isinstance(rec, Linear) or graph.successors(rec_name) != [current.name]:
                    raise UnsupportedNode(
                        "recurrent synapse must be a Linear/Affine feeding only this neuron",
                        node=rec_name,
                        fix=hint,
                    )
                w_rec = np.array(rec.weight)
                rest = [s for s in rest if s != rec_name]
                # A recurrent Affine's bias reaches the neuron every step, exactly like the forward bias: keep it
                # (lava-dl's converter dropped it and lost the NIR paper's braille accuracy on Loihi).
                b_rec = np.array(rec.bias) if isinstance(rec, Affine) else 0.0
                prev = layers[-1]
                layers[-1] = Layer(prev.neuron, prev.w_ff, prev.b_ff + b_rec, w_rec, prev.ff_node, rec_name)
        if outputs:
            if rest or not layers:
                raise UnsupportedNode(
                    "the output must be read from the last neuron layer only", node=outputs[0], fix=hint
                )
            return layers
        syn_name = _only(rest, "synapse after this node", current.name, hint)
        syn = graph.node(syn_name)
        if not isinstance(syn, Linear):
            raise UnsupportedNode(f"{syn.type_name} is not supported here", node=syn_name, fix=hint)
        neuron_name = _only(graph.successors(syn_name), "node after this synapse", syn_name, hint)
        neuron = graph.node(neuron_name)
        if not neuron.is_neuron:
            raise UnsupportedNode(
                f"{neuron.type_name} after a synapse; a neuron node is needed", node=neuron_name, fix=hint
            )
        ff_preds = graph.predecessors(neuron_name, recurrent=False)
        if ff_preds != [syn_name]:
            raise UnsupportedNode("neuron has more than one feed-forward input", node=neuron_name, fix=hint)
        bias = np.array(syn.bias) if isinstance(syn, Affine) else np.zeros(syn.weight.shape[0])
        layers.append(Layer(neuron, np.array(syn.weight), bias, None, syn_name, None))
        current = neuron
