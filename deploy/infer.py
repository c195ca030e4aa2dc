"""Resolving the conventions (dt, method, reset) of a loaded graph, never silently.

Precedence for each: the command line (``cli``), the graph's metadata (``metadata``), recognition from the
parameters (``inferred``, always with a warning), a default (``default``, with a warning when the graph looks like
it wants another value).

Recognised exports:
- snnTorch writes ``r = tau_mem/dt`` (and ``w_in = tau_syn/dt`` for CubaLIF) so that its forward-Euler gains are
  exactly 1. When every neuron node gives the same ``dt`` this way, ``dt`` and ``method=euler`` are inferred. snnTorch
  neurons subtract the threshold on reset by default (in the next step: ``subtract-next``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .conventions import METHODS, RESETS, Conventions, Setting
from .errors import ConventionError
from .graph import Graph, PassRecord
from .nodes import LIF, CubaLIF


class ConventionWarning(UserWarning):
    """A convention was inferred or defaulted; the message says which and how to set it."""


def infer_euler_dt(graph: Graph) -> float | None:
    """The ``dt`` for which every LIF/CubaLIF has ``r == tau_mem/dt`` (and ``w_in == tau_syn/dt``), if one exists."""
    candidates = []
    for n in graph.neurons:
        if isinstance(n, CubaLIF):
            c = [n.tau_mem / n.r, n.tau_syn / n.w_in]
        elif isinstance(n, LIF):
            c = [n.tau / n.r]
        else:
            continue
        candidates += [np.ravel(x) for x in c]
    if not candidates:
        return None
    allc = np.concatenate(candidates)
    if not np.all(np.isfinite(allc)) or np.any(allc <= 0):
        return None
    dt = float(np.median(allc))
    if not np.allclose(allc, dt, rtol=1e-5, atol=0.0):
        return None
    # Exporters use round time steps (1e-4, 5e-4, 1e-3): accept only a value with <= 3 significant digits (up to
    # float32 storage error), so that an arbitrary r on a single neuron does not pass for a time step.
    snapped = float(f"{dt:.3g}")
    if abs(snapped - dt) > 1e-5 * dt:
        return None
    # r == 1 everywhere would give dt == tau (a decay of 0): not an snnTorch export, just unit gains.
    taus = np.concatenate(
        [
            np.ravel(n.tau_mem if isinstance(n, CubaLIF) else n.tau)
            for n in graph.neurons
            if isinstance(n, (LIF, CubaLIF))
        ]
    )
    if snapped >= float(np.min(taus)):
        return None
    return snapped


def _metadata_value(graph: Graph, *keys: str) -> Any:
    for k in keys:
        if k in graph.metadata:
            return graph.metadata[k]
    return None


def resolve_conventions(
    graph: Graph,
    *,
    dt: float | None = None,
    method: str | None = None,
    reset: str | None = None,
    source_name: str = "",
) -> Graph:
    """Return ``graph`` with its conventions resolved and recorded (a ``conventions`` history entry)."""
    notes: list[str] = []
    inferred_dt = infer_euler_dt(graph)
    snntorch_like = inferred_dt is not None

    if dt is not None:
        dt_s = Setting(float(dt), "cli")
    elif (m := _metadata_value(graph, "dt")) is not None:
        dt_s = Setting(float(m), "metadata")
    elif inferred_dt is not None:
        dt_s = Setting(
            inferred_dt, "inferred", "every neuron has r == tau/dt (snnTorch's forward-Euler export)"
        )
        notes.append(
            f"dt inferred as {inferred_dt:g} s because every neuron has r == tau_mem/dt (and w_in == tau_syn/dt), as "
            "snnTorch exports; pass --dt to override"
        )
    else:
        dt_s = Setting(None, "default", "not given; commands that simulate or deploy need --dt")

    if method is not None:
        method_s = Setting(_checked(method, METHODS, "method"), "cli")
    elif (m := _metadata_value(graph, "method", "discretization", "discretisation")) is not None:
        method_s = Setting(_checked(str(m), METHODS, "method"), "metadata")
    elif snntorch_like:
        method_s = Setting("euler", "inferred", "snnTorch-style gains imply forward Euler")
        notes.append("method inferred as euler (snnTorch-style gains); pass --method to override")
    else:
        method_s = Setting(
            "euler", "default", "NIR exporters (snnTorch, Rockpool, Lava) discretise with forward Euler"
        )
        if graph.neurons:
            notes.append("no discretisation method given; using euler (pass --method euler|exact)")

    subtract_hint = _subtract_hint(graph, source_name, snntorch_like)
    if reset is not None:
        reset_s = Setting(_checked(reset, RESETS, "reset"), "cli")
        if reset == "subtract" and snntorch_like:
            notes.append(
                "reset 'subtract' subtracts in the firing step; snnTorch subtracts in the next step: "
                "--reset subtract-next reproduces the training framework exactly"
            )
    elif (m := _metadata_value(graph, "reset", "reset_mechanism")) is not None:
        reset_s = Setting(_checked(str(m), RESETS, "reset"), "metadata")
    else:
        reset_s = Setting("zero", "default", "NIR's reset to v_reset")
        if subtract_hint and any(n.spiking for n in graph.neurons):
            notes.append(
                f"reset defaults to 'zero' (NIR), but the graph looks like a subtracting export ({subtract_hint}); "
                "pass --reset subtract or subtract-next if it was trained that way"
            )
    conventions = Conventions(dt_s, method_s, reset_s)
    for note in notes:
        warnings.warn(note, ConventionWarning, stacklevel=3)
    record = PassRecord("conventions", conventions.to_dict(), tuple(notes))
    return graph.evolve(conventions=conventions, record=record, warnings=notes)


def _checked(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise ConventionError(f"unknown {what} {value!r}", param=what, fix=f"use one of {', '.join(allowed)}")
    return value


def _subtract_hint(graph: Graph, source_name: str, snntorch_like: bool) -> str:
    if "subtract" in source_name.lower():
        return f"the file name {source_name!r} says 'subtract'"
    if snntorch_like:
        return "snnTorch-style gains; snnTorch subtracts by default"
    return ""


def require_dt(graph: Graph) -> float:
    """The graph's dt, or a ConventionError telling the user to pass --dt."""
    if graph.conventions.dt.value is None:
        raise ConventionError(
            "no time step: the graph's metadata has no 'dt' and none could be inferred",
            param="dt",
            fix="pass --dt SECONDS",
        )
    return float(graph.conventions.dt.value)
