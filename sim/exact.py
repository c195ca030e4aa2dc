"""Event-exact solvers (float64) for IF, LIF and CubaLIF layers and networks: the public API.

* :mod:`snn_deploy.sim.exact_core`: parameters (NIR conventions), the stable trajectory for every tau ratio,
  bracketing + safeguarded Newton (never early), IFT spike-time gradients (``custom_jvp``).
* :mod:`snn_deploy.sim.exact_layer`: fixed-buffer event loops for layers (delta, pulse or piecewise-constant input,
  optional zero-delay recurrence) and feed-forward networks; jit/vmap/grad safe. Two engines with the same spikes:
  ``restart`` (:mod:`snn_deploy.sim.exact_ff`, one round per spike of a neuron; default for feed-forward layers)
  and ``sequential`` (one scan step per event; recurrence and ``reset="none"``).
* :mod:`snn_deploy.sim.exact_graph`: the exact model of a whole graph (``snn-deploy exact``).
* :mod:`snn_deploy.sim.exact_closed`: closed forms (Lambert W, quadratic, constant drive, IF) used as test oracles.
* :mod:`snn_deploy.sim.timing`: teacher-forced comparison of discrete spike steps with exact times;
  :mod:`snn_deploy.sim.timing_graph`: the same for whole graphs on Xylo/Loihi/reference (``snn-deploy timing``).

x64: every public function enables 64-bit types itself (``jax.enable_x64(True)`` context); the global
``jax_enable_x64`` flag is not needed. When calling the lower-level functions (``coef``, ``next_crossing``,
``flow``) directly, do so inside ``with jax.enable_x64(True):``.
"""

from snn_deploy.sim.exact_core import (
    IF,
    LIF,
    Crossing,
    CubaLIF,
    ExactSolverError,
    Neuron,
    Seg,
    coef,
    extremum,
    flow,
    next_crossing,
    slope,
    validate,
    voltage,
)
from snn_deploy.sim.exact_layer import (
    Layer,
    SpikeTrain,
    pick_engine,
    simulate_layer,
    simulate_layer_piecewise,
    simulate_layer_pulse,
    simulate_network,
    to_events,
)

__all__ = [
    "IF",
    "LIF",
    "CubaLIF",
    "Crossing",
    "ExactSolverError",
    "Layer",
    "Neuron",
    "Seg",
    "SpikeTrain",
    "coef",
    "extremum",
    "flow",
    "next_crossing",
    "pick_engine",
    "simulate_layer",
    "simulate_layer_piecewise",
    "simulate_layer_pulse",
    "simulate_network",
    "slope",
    "to_events",
    "validate",
    "voltage",
]
