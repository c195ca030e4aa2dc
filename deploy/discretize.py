"""Per-step coefficients of every neuron node under a discretisation convention (numpy, float64).

One linear update covers all NIR neuron types. With ``x[t]`` the summed input of step ``t`` (a spike is a pulse of
amplitude 1 held over the step ``[t*dt, (t+1)*dt)``, as the NIR paper's reference defines it):

    i[t] = a_syn * i[t-1] + b_syn * x[t]                       (CubaLIF/CubaLI; others have no i: a_syn = 0, b_syn = 1)
    v[t] = a_mem * v[t-1] + k_i * i[t-1] + k_x * x[t] + c      (membrane, before threshold and reset)

- ``euler`` (forward Euler in snnTorch's, Lava's and Xylo's order: the synaptic current is updated first and the
  membrane integrates the *updated* current): ``a_syn = 1 - dt/tau_syn``, ``b_syn = dt/tau_syn * w_in``,
  ``a_mem = 1 - dt/tau_mem``, ``v += dt/tau_mem * (v_leak + r * i[t])``. With snnTorch's export
  (``r = tau_mem/dt``, ``w_in = tau_syn/dt``) the gains are exactly 1.
- ``exact``: the ODEs integrated exactly over the step with ``x`` held constant: ``a = exp(-dt/tau)``; for CubaLIF the
  membrane picks up ``r * K * i[t-1]`` with ``K = dt/tau_mem * exp(-dt/tau_mem) * phi(dt/tau_mem - dt/tau_syn)``
  and ``phi(z) = expm1(z)/z`` (stable for ``tau_mem == tau_syn``), and ``r*w_in*(1 - a_mem - K) * x[t]``.
- ``IF``/``I`` (no leak): ``v += dt * r * x[t]`` in both conventions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import METHODS
from .errors import ConventionError
from .nodes import IF, LI, LIF, CubaLI, CubaLIF, Integrator, Node


@dataclass(frozen=True)
class StepCoefficients:
    """Per-neuron float64 arrays of the linear step update (see module docstring); all of the neuron shape."""

    a_syn: np.ndarray
    b_syn: np.ndarray
    a_mem: np.ndarray
    k_i: np.ndarray
    k_x: np.ndarray
    c: np.ndarray
    has_synapse: bool

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("a_syn", "b_syn", "a_mem", "k_i", "k_x", "c")}


def _phi(z: np.ndarray) -> np.ndarray:
    """expm1(z)/z with phi(0) = 1, accurate near 0."""
    z = np.asarray(z, dtype=np.float64)
    small = np.abs(z) < 1e-8
    safe = np.where(small, 1.0, z)
    return np.where(small, 1.0 + z / 2.0, np.expm1(safe) / safe)


def step_coefficients(node: Node, dt: float, method: str) -> StepCoefficients:
    """The per-step coefficients of a neuron node at time step ``dt`` (seconds) under ``method``."""
    if method not in METHODS:
        raise ConventionError(
            f"unknown discretisation method {method!r}", node=node.name, fix="use euler or exact"
        )
    if not (dt is not None and np.isfinite(dt) and dt > 0):
        raise ConventionError(
            f"dt must be a positive number of seconds, got {dt!r}", node=node.name, fix="pass --dt"
        )
    dt = float(dt)
    if isinstance(node, (IF, Integrator)):
        shape = node.r.shape
        one, zero = np.ones(shape), np.zeros(shape)
        return StepCoefficients(zero, one, one, zero, dt * node.r, zero, False)
    if isinstance(node, (LIF, LI)):
        decay = 1.0 - dt / node.tau if method == "euler" else np.exp(-dt / node.tau)
        gain = 1.0 - decay  # euler: dt/tau; exact: 1 - exp(-dt/tau)
        zero = np.zeros_like(decay)
        return StepCoefficients(
            zero, np.ones_like(decay), decay, zero, gain * node.r, gain * node.v_leak, False
        )
    if isinstance(node, (CubaLIF, CubaLI)):
        if method == "euler":
            a_syn = 1.0 - dt / node.tau_syn
            b_syn = dt / node.tau_syn * node.w_in
            a_mem = 1.0 - dt / node.tau_mem
            g = dt / node.tau_mem
            return StepCoefficients(
                a_syn, b_syn, a_mem, g * node.r * a_syn, g * node.r * b_syn, g * node.v_leak, True
            )
        a_syn = np.exp(-dt / node.tau_syn)
        a_mem = np.exp(-dt / node.tau_mem)
        big_k = dt / node.tau_mem * a_mem * _phi(dt / node.tau_mem - dt / node.tau_syn)
        return StepCoefficients(
            a_syn,
            (1.0 - a_syn) * node.w_in,
            a_mem,
            node.r * big_k,
            node.r * node.w_in * (1.0 - a_mem - big_k),
            (1.0 - a_mem) * node.v_leak,
            True,
        )
    raise ConventionError(f"{node.type_name} is not a neuron node", node=node.name)


def euler_stability(node: Node, dt: float) -> list[str]:
    """Warnings for time constants that forward Euler at ``dt`` turns into negative or zero decays."""
    out = []
    for p in node.time_constants:
        tau = getattr(node, p)
        ratio = float(np.max(dt / tau))
        if ratio >= 1.0:
            out.append(
                f"node '{node.name}': dt/{p} = {ratio:.3g} >= 1, forward Euler decay 1 - dt/{p} <= 0 "
                "(oscillating or unstable); use --method exact or a smaller --dt"
            )
    return out
