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
  membrane picks up ``r * K * i[t-1]`` with ``K = x * (exp(-y) - exp(-x)) / (x - y)`` (``x = dt/tau_mem``,
  ``y = dt/tau_syn``; :func:`exact_k`, stable for ``tau_mem == tau_syn``) and ``r*w_in*(1 - a_mem - K) * x[t]``
  (:func:`cuba_input_gain`, free of that difference's cancellation); ``1 - a`` is ``-expm1(-dt/tau)``.
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


def exact_k(x, y, xp=np):
    """``K = x * (exp(-y) - exp(-x)) / (x - y)`` (numpy or jax.numpy), ``x = dt/tau_mem``, ``y = dt/tau_syn``: the
    membrane's gain over one exact step from the synaptic current at its start.

    Written as ``x * exp(-min(x, y)) * h(|x - y|)`` with ``h(d) = -expm1(-d)/d``: neither factor overflows and
    ``h`` keeps full precision as ``d -> 0``; within 1e-8 of ``tau_mem == tau_syn`` the first-order series
    ``x * exp(-y) * (1 - d/2)`` (error ``d**2/6``) keeps the gradient smooth across the tie.
    """
    d = x - y
    small = xp.abs(d) < 1e-8
    far = xp.where(small, 1.0, xp.abs(d))
    return x * xp.where(
        small, xp.exp(-y) * (1.0 - d / 2.0), xp.exp(-xp.minimum(x, y)) * -xp.expm1(-far) / far
    )


#: Terms of the series of :func:`cuba_input_gain` for ``max(x, y) <= 1``: the n-th is at most (n+1)/(n+2)!, so 20
#: terms leave < 4e-19 of a sum >= 1/6.
_SERIES_TERMS = 20
#: Halvings :func:`cuba_input_gain` may need: enough for ``dt/tau`` up to 2**64 (beyond it every decay is 0).
_MAX_HALVINGS = 64


def cuba_input_gain(x, y, xp=np):
    """``(1 - a_mem - K) / (r * w_in)`` of the exact CubaLIF step, free of cancellation (numpy or ``xp=jax.numpy``).

    ``x = dt/tau_mem``, ``y = dt/tau_syn``. The gain equals ``x*y*P(x, y)`` with
    ``P = sum_n (-1)^n h_n(x, y) / (n+2)!`` (``h_n`` the complete homogeneous polynomial of degree n): for
    ``x, y <= 1`` its terms fall fast from 1/2 and the sum keeps full relative precision, whereas
    ``1 - exp(-x) - K`` loses about ``log10(1/(x*y))`` digits (2e-3 -> 7e-11 relative in float64, percent-level in
    float32). Larger steps are halved until ``max(x, y) <= 1`` and the half-step coefficients composed back; the
    composition ``g2 = g*(1 + a_mem) + K*(1 - a_syn)`` adds only positive terms, so it keeps the precision.
    """
    halvings = xp.clip(xp.ceil(xp.log2(xp.maximum(xp.maximum(x, y), 1.0))), 0, _MAX_HALVINGS)
    scale = xp.exp2(-halvings)
    x, y = x * scale, y * scale
    total, h_n, sign, factorial = 0.0, xp.ones_like(x), 1.0, 2.0
    for n in range(_SERIES_TERMS):
        total = total + sign * h_n / factorial
        h_n = y ** (n + 1) + x * h_n  # h_{n+1}(x, y) = y^(n+1) + x h_n(x, y)
        sign, factorial = -sign, factorial * (n + 3)
    gain = x * y * total

    def double(j, gain):
        # Compose two steps of the current length: gain2 = gain*(1 + a_mem) + K*(1 - a_syn), positive terms only.
        # The coefficients are evaluated afresh at each length (repeated squaring would grow their error 2^j-fold).
        xj, yj = x * xp.exp2(j), y * xp.exp2(j)
        doubled = gain * (1.0 + xp.exp(-xj)) + exact_k(xj, yj, xp) * -xp.expm1(-yj)
        return xp.where(j < halvings, doubled, gain)

    if xp is np:
        for j in range(int(np.max(halvings, initial=0))):
            gain = double(float(j), gain)
        return gain
    import jax  # JAX callers only: one compact loop instead of _MAX_HALVINGS unrolled steps in the traced graph

    return jax.lax.fori_loop(0, _MAX_HALVINGS, lambda j, g: double(j.astype(g.dtype), g), gain)


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
        # 1 - decay; exact: by expm1, free of the cancellation of 1 - exp(-dt/tau) for dt << tau (euler keeps the
        # complement of its rounded decay, as every committed model and golden trace was made with)
        gain = 1.0 - decay if method == "euler" else -np.expm1(-dt / node.tau)
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
        x, y = dt / node.tau_mem, dt / node.tau_syn
        return StepCoefficients(
            np.exp(-y),
            -np.expm1(-y) * node.w_in,  # 1 - a_syn without its cancellation for dt << tau_syn
            np.exp(-x),
            node.r * exact_k(x, y),
            node.r * node.w_in * cuba_input_gain(x, y),
            -np.expm1(-x) * node.v_leak,
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
