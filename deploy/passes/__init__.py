"""Graph passes: pure ``Graph -> Graph`` functions, composed like Optax transforms.

    pipeline = chain(flatten, fold_scales, fuse_synapses, discretize(1e-3, "euler"))
    deployed = pipeline(graph)

Every pass returns a new :class:`~snn_deploy.graph.Graph` built through ``Graph.build`` (so all invariants are
re-verified after each pass) with one :class:`~snn_deploy.graph.PassRecord` appended to ``graph.history`` saying
what it changed. A pass that changes nothing still records that it ran.
"""

from __future__ import annotations

from collections.abc import Callable

from ..graph import Graph
from .structure import flatten, fold_scales, fuse_synapses
from .time import discretize, rescale_time

GraphPass = Callable[[Graph], Graph]


def chain(*passes: GraphPass) -> GraphPass:
    """Compose passes left to right into one pass."""

    def pipeline(graph: Graph) -> Graph:
        for p in passes:
            graph = p(graph)
            if not isinstance(graph, Graph):
                raise TypeError(
                    f"pass {getattr(p, '__name__', p)!r} returned {type(graph).__name__}, not a Graph"
                )
        return graph

    pipeline.__name__ = "chain(" + ", ".join(getattr(p, "__name__", repr(p)) for p in passes) + ")"
    return pipeline


__all__ = ["GraphPass", "chain", "discretize", "flatten", "fold_scales", "fuse_synapses", "rescale_time"]
