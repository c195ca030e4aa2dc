"""Execution plan of the float reference: which nodes run layer by layer and which must share one time loop.

A graph without cycles can run *layer-wise*: every stateless node is applied to the whole ``(T, B, ...)`` time
series at once (one big matmul instead of T small ones) and every stateful node runs its own ``lax.scan`` over
time. This is exact, because feed-forward edges carry same-step values. Nodes on a cycle (a strongly connected
component containing a recurrent edge) depend on each other's previous step, so each such component runs in one
joint ``lax.scan`` in which recurrent edges read last step's value. Components run in topological order.
"""

from __future__ import annotations

from dataclasses import dataclass

from snn_deploy.graph import Graph


@dataclass(frozen=True)
class Component:
    """A set of nodes run together: ``cyclic`` False means a single node run layer-wise."""

    nodes: tuple[str, ...]
    cyclic: bool


def _reach(succ: dict[str, list[str]], start: str) -> set[str]:
    seen: set[str] = set()
    stack = list(succ[start])
    while stack:
        n = stack.pop()
        if n not in seen:
            seen.add(n)
            stack.extend(succ[n])
    return seen


def components(graph: Graph) -> list[Component]:
    """Strongly connected components of ``graph`` in a topological order of the condensation.

    Nodes inside a component keep the graph's topological order (feed-forward edges point forward in it).
    """
    order = [n.name for n in graph.nodes]
    pos = {n: i for i, n in enumerate(order)}
    succ: dict[str, list[str]] = {n: [] for n in order}
    for a, b in graph.edges:
        succ[a].append(b)
    reach = {n: _reach(succ, n) for n in order}
    comp_of: dict[str, int] = {}
    comps: list[list[str]] = []
    for n in order:
        if n in comp_of:
            continue
        members = [m for m in order if m == n or (m in reach[n] and n in reach[m])]
        for m in members:
            comp_of[m] = len(comps)
        comps.append(members)
    # Kahn's algorithm on the condensation, ties broken by the position of the component's first node.
    deps: dict[int, set[int]] = {c: set() for c in range(len(comps))}
    for a, b in graph.edges:
        if comp_of[a] != comp_of[b]:
            deps[comp_of[b]].add(comp_of[a])
    done: list[int] = []
    remaining = set(range(len(comps)))
    while remaining:
        ready = [c for c in remaining if deps[c] <= set(done)]
        c = min(ready, key=lambda k: pos[comps[k][0]])
        done.append(c)
        remaining.remove(c)
    out = []
    for c in done:
        members = comps[c]
        cyclic = len(members) > 1 or any(a == b == members[0] for a, b in graph.edges)
        out.append(Component(tuple(members), cyclic))
    return out
