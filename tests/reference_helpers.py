"""Small graph builders shared by the reference-simulator tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from snn_deploy.conventions import Conventions, Setting
from snn_deploy.graph import Graph
from snn_deploy.nodes import Input, Node, Output

ZOO = Path(__file__).resolve().parents[1] / ".." / "shared" / "nir-zoo"


def conv(dt: float, method: str = "euler", reset: str = "zero") -> Conventions:
    return Conventions(Setting(dt, "cli"), Setting(method, "cli"), Setting(reset, "cli"))


def chain(
    in_shape: tuple[int, ...], *nodes: Node, dt: float = 1e-3, method: str = "euler", reset: str = "zero"
) -> Graph:
    """Input -> nodes... -> Output, in that order."""
    names = ["in", *(n.name for n in nodes), "out"]
    all_nodes = [Input("in", shape=tuple(in_shape)), *nodes, Output("out", shape=None)]
    edges = list(zip(names[:-1], names[1:], strict=True))
    g = Graph.build(all_nodes, edges, conventions=conv(dt, method, reset))
    # declare the Output's shape (as a file would) so that the graph can be saved
    declared = [Output("out", shape=g.node("out").input_shape) if n.name == "out" else n for n in all_nodes]
    return Graph.build(declared, edges, conventions=conv(dt, method, reset))


def a(*x: float) -> np.ndarray:
    return np.array(x, dtype=np.float64)
