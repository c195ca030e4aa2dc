"""Time passes: fix the discretisation (``discretize``) and move a model to another time step (``rescale_time``)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..conventions import METHODS, Setting
from ..discretize import StepCoefficients, euler_stability, step_coefficients
from ..errors import ConventionError
from ..graph import Graph, PassRecord
from ..nodes import IF, LI, LIF, CubaLI, CubaLIF, Integrator, Node


def _check(dt: float, method: str) -> None:
    if method not in METHODS:
        raise ConventionError(f"unknown method {method!r}", param="method", fix="use --method euler or exact")
    if not (isinstance(dt, (int, float)) and np.isfinite(dt) and dt > 0):
        raise ConventionError(
            f"dt must be a positive number of seconds, got {dt!r}", param="dt", fix="pass --dt"
        )


def discretize(dt: float, method: str = "euler") -> Callable[[Graph], Graph]:
    """Fix ``dt`` (seconds) and the method (``euler`` or ``exact``) every simulator and target will use.

    The graph's parameters stay continuous-time; the per-step coefficients follow from
    :func:`snn_deploy.discretize.step_coefficients`. The record lists each neuron node's per-step decays.
    """
    _check(dt, method)

    def discretize_pass(graph: Graph) -> Graph:
        conv = graph.conventions
        changes, warns = [], []
        for node in graph.neurons:
            co = step_coefficients(node, dt, method)
            if co.has_synapse:
                changes.append(
                    f"'{node.name}': synaptic decay {_range(co.a_syn)}, membrane decay {_range(co.a_mem)}"
                )
            else:
                changes.append(f"'{node.name}': membrane decay {_range(co.a_mem)}")
            if method == "euler":
                warns += euler_stability(node, dt)
        keep_dt = conv.dt if conv.dt.value == dt else Setting(dt, "pass", "set by discretize")
        keep_m = conv.method if conv.method.value == method else Setting(method, "pass", "set by discretize")
        record = PassRecord("discretize", {"dt": dt, "method": method}, tuple(changes + warns))
        return graph.evolve(
            conventions=type(conv)(keep_dt, keep_m, conv.reset), record=record, warnings=warns
        )

    discretize_pass.__name__ = f"discretize(dt={dt:g}, method={method})"
    return discretize_pass


def _range(a: np.ndarray) -> str:
    lo, hi = float(np.min(a)), float(np.max(a))
    return f"{lo:.6g}" if lo == hi else f"{lo:.6g}..{hi:.6g}"


def rescale_time(dt_train: float, dt_hw: float) -> Callable[[Graph], Graph]:
    """Move a model trained at ``dt_train`` to run at ``dt_hw`` under the graph's method.

    What is kept (per neuron node):
    - the decay per unit time: ``beta_hw = beta_train ** (dt_hw / dt_train)`` for membrane and synapse (in the
      ``exact`` convention this leaves ``tau`` unchanged; in ``euler`` ``tau`` is recomputed so that
      ``1 - dt_hw/tau' = beta_hw``);
    - the jump one input spike causes in the first state it reaches (``w_in`` for CubaLIF/CubaLI, ``r`` otherwise);
    - the steady-state membrane gain per unit synaptic current (CubaLIF/CubaLI keep ``r``).
    Input binning changes: ``dt_hw/dt_train`` training bins become one hardware bin (spike counts add up).
    The record's metric ``impulse_rel_error`` is the worst relative L2 difference, over neurons, between the
    membrane response to one input spike of the original model (sampled every ``dt_hw``) and of the rescaled one,
    over ``5 * max(tau)``.
    """
    _check(dt_train, "euler")
    _check(dt_hw, "euler")

    def rescale_pass(graph: Graph) -> Graph:
        method = graph.conventions.method.value
        if method not in METHODS:
            raise ConventionError("rescale_time needs the method (euler or exact)", fix="pass --method")
        k = dt_hw / dt_train
        new_nodes, changes, worst = [], [], 0.0
        for node in graph.nodes:
            if not node.is_neuron:
                new_nodes.append(node.replace(input_shape=None, output_shape=None))
                continue
            new = _rescale_node(node, dt_train, dt_hw, method)
            err = _impulse_error(node, new, dt_train, dt_hw, method)
            worst = max(worst, err)
            changes.append(f"'{node.name}': impulse response relative error {err:.3g}")
            new_nodes.append(new.replace(input_shape=None, output_shape=None))
        conv = graph.conventions
        conventions = type(conv)(
            Setting(dt_hw, "pass", f"rescaled from dt_train={dt_train:g}"), conv.method, conv.reset
        )
        record = PassRecord(
            "rescale_time",
            {"dt_train": dt_train, "dt_hw": dt_hw, "bins_per_hw_step": k},
            tuple(changes),
            {"impulse_rel_error": worst},
        )
        return graph.evolve(nodes=new_nodes, conventions=conventions, record=record)

    rescale_pass.__name__ = f"rescale_time(dt_train={dt_train:g}, dt_hw={dt_hw:g})"
    return rescale_pass


def _tau_for_decay(decay: np.ndarray, dt: float, method: str) -> np.ndarray:
    if method == "exact":
        return -dt / np.log(decay)
    if np.any(decay <= 0) or np.any(decay >= 1):
        raise ConventionError("rescaled forward-Euler decay leaves (0, 1)", fix="use --method exact")
    return dt / (1.0 - decay)


def _rescale_node(node: Node, dt_train: float, dt_hw: float, method: str) -> Node:
    k = dt_hw / dt_train
    old = step_coefficients(node, dt_train, method)
    if isinstance(node, (IF, Integrator)):
        return node.replace(r=node.r * dt_train / dt_hw)  # same jump per spike: dt * r constant
    if isinstance(node, (LIF, LI)):
        tau = _tau_for_decay(old.a_mem**k, dt_hw, method)
        probe = step_coefficients(node.replace(tau=tau, r=np.ones_like(tau)), dt_hw, method)
        return node.replace(tau=tau, r=old.k_x / probe.k_x)
    if isinstance(node, (CubaLIF, CubaLI)):
        tau_mem = _tau_for_decay(old.a_mem**k, dt_hw, method)
        tau_syn = _tau_for_decay(old.a_syn**k, dt_hw, method)
        probe = step_coefficients(
            node.replace(tau_mem=tau_mem, tau_syn=tau_syn, w_in=np.ones_like(tau_mem)), dt_hw, method
        )
        return node.replace(tau_mem=tau_mem, tau_syn=tau_syn, w_in=old.b_syn / probe.b_syn)
    return node


def _membrane_impulse(co: StepCoefficients, steps: int) -> np.ndarray:
    """Membrane (no threshold, v_leak ignored) after one unit input in step 0; shape (steps, n)."""
    i = np.zeros(co.a_mem.size)
    v = np.zeros(co.a_mem.size)
    out = np.empty((steps, co.a_mem.size))
    for t in range(steps):
        x = 1.0 if t == 0 else 0.0
        i_new = co.a_syn.ravel() * i + co.b_syn.ravel() * x
        v = co.a_mem.ravel() * v + co.k_i.ravel() * i + co.k_x.ravel() * x
        i = i_new
        out[t] = v
    return out


def _impulse_error(old: Node, new: Node, dt_train: float, dt_hw: float, method: str) -> float:
    taus = [np.max(getattr(old, p)) for p in old.time_constants] or [100 * dt_hw]
    horizon = 5.0 * float(max(taus))
    n_hw = max(2, int(np.ceil(horizon / dt_hw)))
    k = dt_hw / dt_train
    n_train = int(np.ceil(n_hw * k)) + 1
    ref = _membrane_impulse(step_coefficients(old, dt_train, method), n_train)
    idx = np.minimum(np.round(np.arange(n_hw) * k).astype(int), n_train - 1)
    got = _membrane_impulse(step_coefficients(new, dt_hw, method), n_hw)
    num = np.linalg.norm(got - ref[idx], axis=0)
    den = np.maximum(np.linalg.norm(ref[idx], axis=0), 1e-300)
    return float(np.max(num / den))
