"""Closed-form first-crossing times (numpy, float64): test oracles for the general solver.

Convention of this module (as jaxsnn and Eventax; J is the synaptic current in voltage units): from rest at
``v_leak = 0`` with no bias, ``tau_m dV/dt = -V + J``, ``tau_s dJ/dt = -J``, state (V0, J0) at t = 0, threshold
``theta``. In the NIR parameters of :class:`snn_deploy.sim.exact_core.Neuron` (r = 1, v_leak = 0) J = I.
Every function returns +inf where there is no crossing.
"""

from __future__ import annotations

import numpy as np


def lambert_w0(z: np.ndarray) -> np.ndarray:
    """Principal branch W0 for real z >= -1/e (Halley iterations; NaN below -1/e)."""
    z = np.asarray(z, np.float64)
    w = np.where(z < 1, np.log1p(np.maximum(z, -1 / np.e + 1e-300)), np.log(np.maximum(z, 1e-300)))
    near = z < -0.3  # branch-point series seed: W = -1 + p - p^2/3, p = sqrt(2 (e z + 1))
    p = np.sqrt(np.maximum(2 * (np.e * z + 1), 0.0))
    w = np.where(near, -1 + p - p * p / 3 + 11 / 72 * p**3, w)
    for _ in range(30):
        ew = np.exp(w)
        f = w * ew - z
        den = ew * (w + 1) - (w + 2) * f / (2 * w + 2 + 1e-300)
        step = np.where(den != 0, f / np.where(den != 0, den, 1.0), 0.0)
        w = w - step
    return np.where(z >= -1 / np.e, w, np.nan)


def t_equal_tau(v0: np.ndarray, j0: np.ndarray, theta: float, tau: float) -> np.ndarray:
    """tau_m = tau_s = tau: (V0 + J0 x) e^{-x} = theta with x = t / tau and J0 the coefficient of x.

    t* = tau (-V0/J0 - W0(z)), z = -(theta/J0) e^{-V0/J0}; a crossing exists iff J0 > 0, z >= -1/e, t* > 0.
    (With tau_m dV/dt = -V + J the coefficient of x is J0 itself because tau_m = tau_s.)
    """
    v0, j0 = np.asarray(v0, np.float64), np.asarray(j0, np.float64)
    with np.errstate(all="ignore"):
        z = -(theta / j0) * np.exp(-v0 / j0)
        t = tau * (-v0 / j0 - lambert_w0(z))
    ok = (j0 > 0) & (z >= -1 / np.e) & (t > 0) & (v0 < theta)
    return np.where(ok, t, np.inf)


def t_double_tau(v0: np.ndarray, j0: np.ndarray, theta: float, tau_m: float) -> np.ndarray:
    """tau_m = 2 tau_s: with x = e^{-t/tau_m}, V = (V0 + J0) x - J0 x^2 (k = tau_s/(tau_s - tau_m) = -1).

    The earliest crossing solves J0 x^2 - a2 x + theta = 0 with a2 = V0 + J0 and is the largest root x <= 1:
    x+ = (a2 + sqrt(disc)) / (2 J0), written cancellation-free for either sign of a2.
    """
    v0, j0 = np.asarray(v0, np.float64), np.asarray(j0, np.float64)
    a2 = v0 + j0
    disc = a2 * a2 - 4 * j0 * theta
    with np.errstate(all="ignore"):
        sq = np.sqrt(disc)
        # earliest crossing = largest root x+ in (0, 1); x+ = (a2 + sq)/(2 J0) = 2 theta/(a2 - sq)
        x = np.where(a2 >= 0, (a2 + sq) / (2 * j0), 2 * theta / (a2 - sq))
        t = -tau_m * np.log(x)
    ok = (disc >= 0) & (j0 > 0) & (x > 0) & (x < 1) & (v0 < theta)
    return np.where(ok, t, np.inf)


def t_lif_const(v0: np.ndarray, v_inf: np.ndarray, theta: float, tau: float) -> np.ndarray:
    """LIF with constant drive: t* = tau ln((V_inf - V0)/(V_inf - theta)) iff V_inf > theta > V0."""
    v0, v_inf = np.asarray(v0, np.float64), np.asarray(v_inf, np.float64)
    with np.errstate(all="ignore"):
        t = tau * np.log((v_inf - v0) / (v_inf - theta))
    return np.where((v_inf > theta) & (theta > v0), t, np.inf)


def t_if_exp(v0: np.ndarray, j0: np.ndarray, theta: float, tau_s: float) -> np.ndarray:
    """IF behind an exponential synapse (dV/dt = J): t* = -tau_s ln(1 - (theta - V0)/(J0 tau_s))."""
    v0, j0 = np.asarray(v0, np.float64), np.asarray(j0, np.float64)
    with np.errstate(all="ignore"):
        t = -tau_s * np.log1p(-(theta - v0) / (j0 * tau_s))
    return np.where((j0 * tau_s > theta - v0) & (theta > v0), t, np.inf)
