"""Event-exact neuron dynamics in continuous time (float64): parameters, flow, slope, first crossing.

Model (NIR continuous-time conventions, https://neuroir.org/docs/primitives.html), per neuron::

    LIF / CubaLIF:  tau_mem * dV/dt = (v_leak - V) + r * (I + bias)
    IF:                       dV/dt =               r * (I + bias)
    synapse:        tau_syn * dI/dt = -I + w_in * S(t)        (CubaLIF / CubaIF only)

``bias`` is a constant current (same units as ``I``). Without a synapse (LIF, IF) the input ``S`` drives the
membrane directly (``I = S``). Input kinds (see :mod:`snn_deploy.sim.exact_layer`):

* delta input ``S = w * delta(t - t_j)``: a jump ``I += w_in * w / tau_syn`` (with synapse) or
  ``V += r * w / tau_mem`` (LIF) / ``V += r * w`` (IF) at ``t_j``;
* pulse input: ``S = x`` held constant over a time bin (``x = w * s_k`` for a spike count ``s_k`` in bin ``k``).

Internally a neuron is described by rates ``lam_m = 1/tau_mem`` (0 for IF), ``kap_m`` (the gain of the drive on
dV/dt: ``1/tau_mem`` for LIF, 1 for IF) and ``lam_s = 1/tau_syn``. Between events, with constant input ``x``, the
drive on dV/dt is ``c + G0 * exp(-lam_s d)`` with ``c = r kap_m (I_inf + bias)``, ``G0 = r kap_m (I0 - I_inf)``,
``I_inf = w_in x``. The trajectory (one formula for every tau ratio, no cancellation at tau_mem = tau_syn)::

    V(d) = V0 + (V0 - v_leak) expm1(-lam_m d) + c d phi(-lam_m d) + G0 k(d)
    k(d) = d exp(-min(lam_m, lam_s) d) phi(-|lam_m - lam_s| d),   phi(x) = expm1(x) / x

``k(d) = (exp(-lam_s d) - exp(-lam_m d)) / (lam_m - lam_s)`` is the synaptic kernel written without overflow.

All arithmetic is float64. Every public entry point runs inside ``jax.enable_x64(True)`` itself, so the caller does
not need to switch x64 on globally; results are float64 arrays.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

from snn_deploy.errors import SnnDeployError

F64 = jnp.float64
EPS = float(np.finfo(np.float64).eps)
MAX_ITERS = 100  # cap on safeguarded-Newton iterations (bisection to adjacent floats needs <= ~75)
_SERIES_X = 1e-3  # |x| below which phi/psi use their Taylor series (truncation error < 3e-22)

ResetMode = Literal["hard", "subtract", "none"]
_RESET_CODES = {"hard": 0, "subtract": 1, "none": 2}

T = TypeVar("T", bound=Callable[..., Any])


class ExactSolverError(SnnDeployError):
    """Invalid parameters or inputs for the event-exact solvers."""


def x64(fn: T) -> T:
    """Run ``fn`` with 64-bit JAX types enabled (no global ``jax_enable_x64`` needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with jax.enable_x64(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class Neuron:
    """Parameters of one population (scalars or arrays broadcast to the population), NIR conventions.

    Attributes:
        kind: ``"lif"`` (tau_mem * dV/dt = v_leak - V + r (I + bias)) or ``"if"`` (dV/dt = r (I + bias)).
        tau_mem: membrane time constant (time units of the inputs); ignored for ``kind="if"``.
        tau_syn: synaptic time constant, or ``None`` for no synapse (input drives the membrane directly).
        r: resistance; v_leak, v_th, v_reset: leak, threshold and reset potentials (v_reset < v_th).
        bias: constant input current (units of I). w_in: synaptic input weight (ignored without synapse).
        t_ref: absolute refractory period: after a spike V is frozen at its post-reset value and voltage jumps
            are dropped for ``t_ref``; the synaptic current keeps integrating.
        reset: ``"hard"`` (V <- v_reset), ``"subtract"`` (V <- V - (v_th - v_reset)) or ``"none"`` (no reset; the
            neuron re-arms once V has fallen below v_th). With continuous V (current input) hard and subtract
            coincide because V = v_th exactly at the crossing; they differ only after voltage jumps.
    """

    kind: Literal["lif", "if"] = "lif"
    tau_mem: Any = 1.0
    tau_syn: Any = None
    r: Any = 1.0
    v_leak: Any = 0.0
    v_th: Any = 1.0
    v_reset: Any = 0.0
    bias: Any = 0.0
    w_in: Any = 1.0
    t_ref: Any = 0.0
    reset: ResetMode = "hard"

    def __post_init__(self) -> None:
        if self.kind not in ("lif", "if"):
            raise ExactSolverError(f"unknown neuron kind {self.kind!r}", fix="use kind='lif' or kind='if'")
        if self.reset not in _RESET_CODES:
            raise ExactSolverError(f"unknown reset {self.reset!r}", fix="use 'hard', 'subtract' or 'none'")


jax.tree_util.register_dataclass(
    Neuron,
    data_fields=["tau_mem", "tau_syn", "r", "v_leak", "v_th", "v_reset", "bias", "w_in", "t_ref"],
    meta_fields=["kind", "reset"],
)


def LIF(tau: Any, v_th: Any = 1.0, **kw: Any) -> Neuron:
    """NIR LIF: ``tau dV/dt = v_leak - V + r I`` (delta input jumps V by ``r w / tau``)."""
    return Neuron(kind="lif", tau_mem=tau, tau_syn=None, v_th=v_th, **kw)


def CubaLIF(tau_mem: Any, tau_syn: Any, v_th: Any = 1.0, **kw: Any) -> Neuron:
    """NIR CubaLIF (delta input jumps I by ``w_in w / tau_syn``)."""
    return Neuron(kind="lif", tau_mem=tau_mem, tau_syn=tau_syn, v_th=v_th, **kw)


def IF(v_th: Any = 1.0, tau_syn: Any = None, **kw: Any) -> Neuron:
    """NIR IF ``dV/dt = r I`` (delta input jumps V by ``r w``); with ``tau_syn`` an IF behind an exp. synapse."""
    return Neuron(kind="if", tau_mem=np.inf, tau_syn=tau_syn, v_th=v_th, **kw)


class Coef(NamedTuple):
    """Per-neuron float64 coefficients derived from :class:`Neuron` (all arrays of shape [n])."""

    lam_m: jax.Array  # 1/tau_mem (0 for IF)
    kap_m: jax.Array  # gain of r*I on dV/dt: 1/tau_mem (LIF) or 1 (IF)
    lam_s: jax.Array  # 1/tau_syn (1 where there is no synapse: unused there)
    syn: jax.Array  # 1.0 with synapse, 0.0 without
    r: jax.Array
    w_in: jax.Array
    v_leak: jax.Array
    v_th: jax.Array
    v_reset: jax.Array
    bias: jax.Array
    t_ref: jax.Array


def coef(p: Neuron, n: int) -> Coef:
    """Broadcast ``p`` to ``n`` neurons as float64 :class:`Coef` (call inside an x64 context)."""
    b = lambda a: jnp.broadcast_to(jnp.asarray(a, F64), (n,))  # noqa: E731
    if p.kind == "lif":
        tau_m = b(p.tau_mem)
        lam_m, kap_m = 1.0 / tau_m, 1.0 / tau_m
    else:
        lam_m, kap_m = jnp.zeros((n,), F64), jnp.ones((n,), F64)
    if p.tau_syn is None:
        lam_s, syn = jnp.ones((n,), F64), jnp.zeros((n,), F64)
    else:
        lam_s, syn = 1.0 / b(p.tau_syn), jnp.ones((n,), F64)
    return Coef(
        lam_m,
        kap_m,
        lam_s,
        syn,
        b(p.r),
        b(p.w_in),
        b(p.v_leak),
        b(p.v_th),
        b(p.v_reset),
        b(p.bias),
        b(p.t_ref),
    )


def validate(p: Neuron) -> None:
    """Check concrete parameter values (skipped for traced values, e.g. under jit or grad).

    Raises:
        ExactSolverError: a time constant is not positive, v_reset >= v_th (would fire forever) or t_ref < 0.
    """
    try:
        vals = {
            k: np.asarray(getattr(p, k), dtype=np.float64) for k in ("tau_mem", "v_th", "v_reset", "t_ref")
        }
        tau_s = None if p.tau_syn is None else np.asarray(p.tau_syn, dtype=np.float64)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return
    if p.kind == "lif" and not np.all(vals["tau_mem"] > 0):
        raise ExactSolverError("tau_mem must be > 0", param="tau_mem", fix="pass positive time constants")
    if tau_s is not None and not np.all(tau_s > 0):
        raise ExactSolverError(
            "tau_syn must be > 0", param="tau_syn", fix="pass tau_syn > 0 or None (no synapse)"
        )
    if p.reset != "none" and not np.all(vals["v_reset"] < vals["v_th"]):
        raise ExactSolverError(
            "v_reset must be below v_th", param="v_reset", fix="lower v_reset (or reset='none')"
        )
    if not np.all(vals["t_ref"] >= 0):
        raise ExactSolverError(
            "t_ref must be >= 0", param="t_ref", fix="pass a non-negative refractory period"
        )


class Seg(NamedTuple):
    """A segment: state at absolute time ``t0`` and the constant input ``x`` until the next event ([n] arrays)."""

    t0: jax.Array
    v0: jax.Array
    i0: jax.Array
    x: jax.Array
    c: Coef


def phi(x: jax.Array) -> jax.Array:
    """expm1(x)/x with phi(0) = 1, accurate and autodiff-safe (Taylor series for |x| < 1e-3)."""
    small = jnp.abs(x) < _SERIES_X
    xs = jnp.where(small, x, 0.0)
    ser = 1 + xs * (1 / 2 + xs * (1 / 6 + xs * (1 / 24 + xs * (1 / 120 + xs * (1 / 720 + xs / 5040)))))
    xb = jnp.where(small, 1.0, x)
    return jnp.where(small, ser, jnp.expm1(xb) / xb)


def psi(x: jax.Array) -> jax.Array:
    """log1p(x)/x with psi(0) = 1 (Taylor series for |x| < 1e-3); x > -1."""
    small = jnp.abs(x) < _SERIES_X
    xs = jnp.where(small, x, 0.0)
    ser = 1 + xs * (-1 / 2 + xs * (1 / 3 + xs * (-1 / 4 + xs * (1 / 5 + xs * (-1 / 6 + xs / 7)))))
    xb = jnp.where(small, 1.0, x)
    return jnp.where(small, ser, jnp.log1p(xb) / xb)


def _drive(s: Seg) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(c, G0, I_inf): constant and decaying parts of the drive on dV/dt, asymptotic synaptic current."""
    c = s.c
    i_inf = jnp.where(c.syn > 0, c.w_in * s.x, 0.0)
    const_in = jnp.where(c.syn > 0, i_inf, s.x)  # without synapse the input current is x itself
    drive_c = c.r * c.kap_m * (const_in + c.bias)
    g0 = c.syn * c.r * c.kap_m * (s.i0 - i_inf)
    return drive_c, g0, i_inf


def _kernel(d: jax.Array, c: Coef) -> jax.Array:
    """k(d) = int_0^d exp(-lam_m (d-s)) exp(-lam_s s) ds, overflow-free for every tau ratio."""
    lo = jnp.minimum(c.lam_m, c.lam_s)
    return d * jnp.exp(-lo * d) * phi(-jnp.abs(c.lam_m - c.lam_s) * d)


def terms(d: jax.Array, s: Seg) -> tuple[jax.Array, ...]:
    """The summands of V(d) (for value and conditioning estimates)."""
    c = s.c
    drive_c, g0, _ = _drive(s)
    u = s.v0 - c.v_leak
    return (s.v0, u * jnp.expm1(-c.lam_m * d), drive_c * d * phi(-c.lam_m * d), g0 * _kernel(d, c))


def voltage(d: jax.Array, s: Seg) -> jax.Array:
    """V at time t0 + d (d >= 0); exact identity at d = 0."""
    a, b, cc, g = terms(d, s)
    return a + b + cc + g


def slope(d: jax.Array, s: Seg) -> jax.Array:
    """dV/dt at t0 + d: exp(-lam_m d) (c - lam_m u + G0) - G0 lam_s k(d)."""
    c = s.c
    drive_c, g0, _ = _drive(s)
    u = s.v0 - c.v_leak
    return jnp.exp(-c.lam_m * d) * (drive_c - c.lam_m * u + g0) - g0 * c.lam_s * _kernel(d, c)


def current(d: jax.Array, s: Seg) -> jax.Array:
    """Synaptic current I at t0 + d (0 without synapse)."""
    _, _, i_inf = _drive(s)
    return jnp.where(s.c.syn > 0, s.i0 + (s.i0 - i_inf) * jnp.expm1(-s.c.lam_s * d), 0.0)


def extremum(s: Seg) -> tuple[jax.Array, jax.Array]:
    """(d_e, rising_first): the unique d > 0 with dV/dt = 0 (inf if V is monotone on (0, inf)).

    dV/dt = exp(-lam_m d) (s0 - G0 lam_s d phi((lam_m - lam_s) d)) changes sign at most once, at
    d phi(eps d) = q = s0 / (G0 lam_s), i.e. d_e = q psi(eps q), valid when q > 0 and 1 + eps q > 0.
    ``rising_first`` is dV/dt(0) >= 0 (then d_e, if finite, is a maximum; else a minimum).
    """
    c = s.c
    drive_c, g0, _ = _drive(s)
    s0 = drive_c - c.lam_m * (s.v0 - c.v_leak) + g0
    den = g0 * c.lam_s
    ok_den = den != 0
    q = s0 / jnp.where(ok_den, den, 1.0)
    eq = (c.lam_m - c.lam_s) * q
    valid = ok_den & (q > 0) & (1 + eq > 0)
    d_e = jnp.where(valid, q * psi(jnp.where(valid, eq, 0.0)), jnp.inf)
    return d_e, s0 >= 0


def flow(s: Seg, d: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(V, I) after ``d`` (>= 0) time units without reset; exact identity at d = 0."""
    return voltage(d, s), current(d, s)


class Crossing(NamedTuple):
    """First upward threshold crossing of each neuron in [t_start, t_stop] (arrays [n]).

    ``t`` is inf where ``has`` is False. ``t`` is the upper end of the final bracket: the computed V(t) >= v_th
    and V < v_th one float earlier (or at the bracket's lower end), so the spike is never early.
    ``immediate``: V >= v_th already at t_start (after a voltage jump); then t = t_start.
    ``slope``: dV/dt(t-); ``cond``: time uncertainty eps * sum|V terms| / |dV/dt|; ``grazing``: |dV/dt| tiny
    relative to the voltage scale (spike-time gradients are unreliable there); ``iters``: solver iterations.
    """

    has: jax.Array
    t: jax.Array
    immediate: jax.Array
    slope: jax.Array
    cond: jax.Array
    grazing: jax.Array
    iters: jax.Array


def bracket(
    s: Seg, horizon: jax.Array, armed: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Find the bracket of the first armed upward crossing in [t0, horizon] (absolute times).

    Returns (has, immediate, lo, hi) with computed f(lo) < 0 <= f(hi). V has at most one extremum d_e:
    rising first -> the only candidate bracket is [0, min(d_e, H)]; falling first -> [d_e, H] (f(d_e) < 0 arms a
    neuron that is disarmed because reset='none' left it above threshold).
    """
    th = s.c.v_th
    span = jnp.maximum(horizon - s.t0, 0.0)
    f0 = s.v0 - th
    d_e, rising = extremum(s)
    immediate = armed & (f0 >= 0)
    # rising first: maximum on [0, H] at m = min(d_e, H)
    m = jnp.minimum(d_e, span)
    hi_r = jnp.where(jnp.isfinite(horizon), s.t0 + m, s.t0)
    has_r = rising & armed & (f0 < 0) & (voltage(hi_r - s.t0, s) >= th)
    # falling first: minimum at d_e < H, then rising to H
    de_fin = jnp.where(jnp.isfinite(d_e), d_e, 0.0)
    lo_f = s.t0 + de_fin
    f_min = voltage(lo_f - s.t0, s) - th
    has_f = (~rising) & (d_e < span) & (f_min < 0) & (voltage(horizon - s.t0, s) >= th)
    has_f = has_f & jnp.isfinite(horizon)
    lo = jnp.where(has_f, lo_f, s.t0)
    hi = jnp.where(has_f, horizon, hi_r)
    has = (has_r | has_f) & ~immediate
    return has, immediate, lo, hi


def _f(t: jax.Array, s: Seg) -> jax.Array:
    return voltage(t - s.t0, s) - s.c.v_th


def _rtsafe(s: Seg, lo: jax.Array, hi: jax.Array, active: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Safeguarded Newton on f(t) = V(t - t0) - v_th over brackets with f(lo) < 0 <= f(hi) (lanes ``active``).

    Newton steps are taken when they land strictly inside the bracket and shrink fast enough, else bisection;
    a converged Newton iterate is pushed one float across the root to close the bracket. Stops when lo and hi
    are adjacent floats (or after MAX_ITERS). Returns (hi, iterations).
    """
    flo, fhi = _f(lo, s), _f(hi, s)
    w = jnp.where(fhi - flo > 0, -flo / jnp.where(fhi - flo > 0, fhi - flo, 1.0), 0.5)
    t = jnp.clip(lo + w * (hi - lo), lo, hi)  # regula-falsi start
    done = ~active | (jnp.nextafter(lo, jnp.inf) >= hi)
    big = jnp.full_like(lo, jnp.inf)

    def cond(st: tuple) -> jax.Array:
        return jnp.any(~st[4]) & (st[5] < MAX_ITERS)

    def body(st: tuple) -> tuple:
        lo, hi, t, dx_old, done, it, nit = st
        f = _f(t, s)
        fp = slope(t - s.t0, s)
        up = f >= 0
        lo2 = jnp.where(up, lo, t)
        hi2 = jnp.where(up, t, hi)
        newton = t - f / jnp.where(fp != 0, fp, 1.0)
        step = jnp.abs(newton - t)
        ok = (fp != 0) & (newton > lo2) & (newton < hi2) & (step <= 0.5 * dx_old)
        # Newton converged below/above the root: push one float across it to close the bracket
        stalled = (fp != 0) & (step <= 2 * EPS * jnp.abs(t))
        push = jnp.where(up, jnp.nextafter(hi2, -jnp.inf), jnp.nextafter(lo2, jnp.inf))
        mid = lo2 + 0.5 * (hi2 - lo2)
        nxt = jnp.where(stalled, push, jnp.where(ok, newton, mid))
        nxt = jnp.clip(nxt, jnp.nextafter(lo2, jnp.inf), jnp.nextafter(hi2, -jnp.inf))
        dx = jnp.where(ok, step, 0.5 * (hi2 - lo2))
        conv = (jnp.nextafter(lo2, jnp.inf) >= hi2) | (f == 0)
        keep = done
        lo_n = jnp.where(keep, lo, lo2)
        hi_n = jnp.where(keep, hi, hi2)
        t_n = jnp.where(keep, t, nxt)
        nit_n = jnp.where(keep, nit, nit + 1)
        return lo_n, hi_n, t_n, jnp.where(keep, dx_old, dx), done | conv, it + 1, nit_n

    init = (lo, hi, t, big, done, jnp.int32(0), jnp.zeros(lo.shape, jnp.int32))
    lo, hi, t, _, _, _, nit = jax.lax.while_loop(cond, body, init)
    return hi, nit


def _grazing_tol(s: Seg) -> jax.Array:
    """|dV/dt| below which a crossing counts as grazing: 1e-8 * voltage scale * fastest rate."""
    rate = jnp.maximum(jnp.maximum(s.c.lam_m, s.c.lam_s * s.c.syn), s.c.kap_m)
    scale = jnp.abs(s.c.v_th) + jnp.abs(s.c.v_th - s.c.v_reset) + jnp.abs(s.v0)
    return 1e-8 * scale * rate


@jax.custom_jvp
def root_time(s: Seg, lo: jax.Array, hi: jax.Array, active: jax.Array) -> jax.Array:
    """Crossing time in [lo, hi] (absolute), differentiable by the implicit function theorem.

    JVP: dt*/dp = -(dF/dp) / dV/dt(t*) with F = V(t* - t0; p) - v_th, including p = t0 (gives dt* = dt0).
    The slope is clamped away from 0 at grazing (sign kept) so tangents stay finite; such spikes are flagged.
    """
    return _rtsafe(s, lo, hi, active)[0]


@root_time.defjvp
def _root_time_jvp(primals: tuple, tangents: tuple) -> tuple[jax.Array, jax.Array]:
    s, lo, hi, active = primals
    s_dot = tangents[0]
    t = root_time(s, lo, hi, active)
    fp = slope(t - s.t0, s)
    tol = _grazing_tol(s)
    fp_c = jnp.where(jnp.abs(fp) >= tol, fp, jnp.where(fp < 0, -tol, tol))
    _, df = jax.jvp(lambda ss: _f(t, ss), (s,), (s_dot,))
    return t, jnp.where(active, -df / fp_c, 0.0)


def next_crossing(s: Seg, horizon: jax.Array, armed: jax.Array, *, with_iters: bool = False) -> Crossing:
    """First armed upward crossing of v_th in [t0, horizon] for every lane (no refractoriness handled here).

    Lanes with no crossing get t = inf. Differentiable in every field of ``s`` (IFT, see :func:`root_time`).
    The root solve is skipped (``lax.cond``) when no lane has a bracket. ``with_iters`` re-runs the solver
    (forward only) to report iteration counts.
    """
    has, immediate, lo, hi = bracket(s, horizon, armed)
    sg = jax.lax.stop_gradient
    lo_s, hi_s = sg(jnp.where(has, lo, s.t0)), sg(jnp.where(has, hi, s.t0))
    t_root = jax.lax.cond(jnp.any(has), lambda: root_time(s, lo_s, hi_s, has), lambda: jnp.zeros_like(lo))
    t = jnp.where(immediate, s.t0, jnp.where(has, t_root, jnp.inf))
    d = jnp.where(has, t_root - s.t0, 0.0)
    fp = slope(d, s)
    scale = sum(jnp.abs(a) for a in terms(d, s)) + jnp.abs(s.c.v_th)
    cond_t = jnp.where(has, EPS * scale / jnp.maximum(jnp.abs(fp), 1e-300), 0.0)
    grazing = has & (jnp.abs(fp) < _grazing_tol(s))
    if with_iters:
        iters = _rtsafe(jax.tree_util.tree_map(sg, s), lo_s, hi_s, has)[1]
    else:
        iters = jnp.zeros(has.shape, jnp.int32)
    return Crossing(has | immediate, t, immediate, jnp.where(has, fp, 0.0), cond_t, grazing, iters)
