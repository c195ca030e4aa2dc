"""Building blocks of the float reference simulator (JAX): surrogate spikes, per-step coefficients, node updates.

Conventions (shared with :mod:`snn_deploy.discretize`, which is the numpy statement of the same update):

- Time is discrete, ``dt`` seconds per step. ``x[t]`` is a node's summed input during step ``t``; an input spike is a
  pulse of amplitude 1 held over the step.
- Neuron update of step ``t`` (``i`` only for CubaLIF/CubaLI)::

      i[t] = a_syn * i[t-1] + b_syn * x[t]
      v'   = a_mem * v[t-1] + k_i * i[t-1] + k_x * x[t] + c
      v'  -= theta * s[t-1]                       (reset "subtract-next" only: snnTorch's order)
      s[t] = H(v' - theta)                         (strict: spike when v' > v_threshold)
      v[t] = v_reset if s[t] else v'               (reset "zero")
      v[t] = v' - theta * s[t]                     (reset "subtract")
      v[t] = v'                                    (reset "subtract-next"; the subtraction happens next step)

  Non-spiking neurons (LI, CubaLI, Integrator) output ``v[t] = v'``; spiking ones output ``s[t]``.
- ``H`` has a surrogate derivative (:class:`Surrogate`) so that ``jax.grad`` passes through spikes. The reset term
  uses ``stop_gradient(s)`` when ``detach_reset`` is set (snnTorch's and Spyx's default), which is the usual choice.

Every array op here accepts arbitrary leading axes (time, batch) in front of the node's own shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from snn_deploy.discretize import cuba_input_gain, exact_k
from snn_deploy.errors import ConventionError
from snn_deploy.nodes import (
    IF,
    LI,
    LIF,
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    CubaLI,
    CubaLIF,
    Flatten,
    Input,
    Integrator,
    Linear,
    Node,
    Output,
    Scale,
    SumPool2d,
    Threshold,
)

Array = jax.Array
Params = dict[str, Array]

# ---------------------------------------------------------------------------------------------- surrogates

SURROGATES = ("fast_sigmoid", "arctan", "sigmoid", "triangle", "straight_through")
_DEFAULT_SCALE = {
    "fast_sigmoid": 25.0,
    "arctan": 2.0,
    "sigmoid": 25.0,
    "triangle": 1.0,
    "straight_through": 1.0,
}


@dataclass(frozen=True)
class Surrogate:
    """Pseudo-derivative of the Heaviside step used in the backward pass (the forward pass is always exact).

    ``u = v - v_threshold`` (in membrane units). ``scale`` defaults follow snnTorch's surrogate defaults:

    - ``fast_sigmoid`` (SuperSpike, Zenke & Ganguli 2018): ``1 / (1 + scale*|u|)^2``, scale 25
    - ``arctan``: ``(scale/2) / (1 + (pi/2 * scale * u)^2)``, scale 2
    - ``sigmoid``: ``scale * sig(scale*u) * (1 - sig(scale*u))``, scale 25
    - ``triangle``: ``max(0, 1 - |u|/scale) / scale``, half-width ``scale`` (1)
    - ``straight_through``: ``1`` everywhere
    """

    name: str = "fast_sigmoid"
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.name not in SURROGATES:
            raise ConventionError(
                f"unknown surrogate gradient {self.name!r}", fix=f"use one of {', '.join(SURROGATES)}"
            )

    @property
    def k(self) -> float:
        return float(_DEFAULT_SCALE[self.name] if self.scale is None else self.scale)

    def derivative(self, u: Array) -> Array:
        k = self.k
        if self.name == "fast_sigmoid":
            return 1.0 / (1.0 + k * jnp.abs(u)) ** 2
        if self.name == "arctan":
            return (k / 2.0) / (1.0 + (jnp.pi / 2.0 * k * u) ** 2)
        if self.name == "sigmoid":
            sg = jax.nn.sigmoid(k * u)
            return k * sg * (1.0 - sg)
        if self.name == "triangle":
            return jnp.maximum(0.0, 1.0 - jnp.abs(u) / k) / k
        return jnp.ones_like(u)


def as_surrogate(s: str | Surrogate | None) -> Surrogate:
    """Accept a name, a :class:`Surrogate` or None (the default fast sigmoid)."""
    if s is None:
        return Surrogate()
    return s if isinstance(s, Surrogate) else Surrogate(str(s))


@partial(jax.custom_jvp, nondiff_argnums=(0,))
def heaviside(surrogate: Surrogate, u: Array) -> Array:
    """``1.0 where u > 0 else 0.0`` (strict, as NIR's ``v > v_threshold``), with a surrogate derivative."""
    return (u > 0).astype(u.dtype)


@heaviside.defjvp
def _heaviside_jvp(surrogate: Surrogate, primals: tuple, tangents: tuple) -> tuple[Array, Array]:
    (u,), (du,) = primals, tangents
    return heaviside(surrogate, u), surrogate.derivative(u) * du


# ---------------------------------------------------------------------------------------------- coefficients

COEFF_KEYS = ("a_syn", "b_syn", "a_mem", "k_i", "k_x", "c")


def coefficients(kind: type[Node], p: Params, dt: float, method: str) -> dict[str, Array]:
    """JAX twin of :func:`snn_deploy.discretize.step_coefficients` (differentiable in the node's parameters).

    A test checks that both agree to float64 rounding for every neuron type and both methods.
    """
    if issubclass(kind, (IF, Integrator)):
        one = jnp.ones_like(p["r"])
        return dict(a_syn=0 * one, b_syn=one, a_mem=one, k_i=0 * one, k_x=dt * p["r"], c=0 * one)
    if issubclass(kind, (LIF, LI)):
        decay = 1.0 - dt / p["tau"] if method == "euler" else jnp.exp(-dt / p["tau"])
        gain = 1.0 - decay if method == "euler" else -jnp.expm1(-dt / p["tau"])  # as step_coefficients
        zero = jnp.zeros_like(decay)
        return dict(
            a_syn=zero,
            b_syn=jnp.ones_like(decay),
            a_mem=decay,
            k_i=zero,
            k_x=gain * p["r"],
            c=gain * p["v_leak"],
        )
    if issubclass(kind, (CubaLIF, CubaLI)):
        if method == "euler":
            a_syn = 1.0 - dt / p["tau_syn"]
            b_syn = dt / p["tau_syn"] * p["w_in"]
            g = dt / p["tau_mem"]
            return dict(
                a_syn=a_syn,
                b_syn=b_syn,
                a_mem=1.0 - g,
                k_i=g * p["r"] * a_syn,
                k_x=g * p["r"] * b_syn,
                c=g * p["v_leak"],
            )
        x, y = dt / p["tau_mem"], dt / p["tau_syn"]
        return dict(
            a_syn=jnp.exp(-y),
            b_syn=-jnp.expm1(-y) * p["w_in"],
            a_mem=jnp.exp(-x),
            k_i=p["r"] * exact_k(x, y, jnp),
            k_x=p["r"] * p["w_in"] * cuba_input_gain(x, y, jnp),
            c=-jnp.expm1(-x) * p["v_leak"],
        )
    raise ConventionError(f"{kind.__name__} is not a neuron node")


# ---------------------------------------------------------------------------------------------- stateless ops

#: On XLA's CPU backend a product whose output is written time-major from a batch-major input (``bti,oi->tbo``)
#: runs about 3.5x slower than the same product with a row-major output (measured: 16384x700 @ 700x256 takes
#: ~120 ms as one einsum and ~34 ms in blocks of a few hundred rows, each transposed while it is in cache;
#: jax 0.10.2, 2 cores). :func:`dense_to_time_major` therefore works in blocks on CPU.
DENSE_BLOCK_ROWS = 256


def dense(x: Array, w: Array, precision: str | None = None) -> Array:
    """``x @ w.T`` over any leading axes (``w`` is NIR's ``(out, in)``).

    One plain product: on jax 0.10.2's CPU backend it is as fast as or faster than a blocked one for every shape
    measured (16384 rows; 700->256 equal, 256->256 1.2x, 256->20 and 20->256 2x faster), gradients included.
    """
    return jnp.matmul(x, w.T, precision=precision)


def dense_to_time_major(x: Array, w: Array, precision: str | None = None) -> Array:
    """``(B, T, in) -> (T, B, out)``: ``x @ w.T`` with the batch/time transpose folded into the product.

    Used where a wide Input feeds a Linear: transposing the raw input to time-major would cost more than the
    product on CPU. On CPU the product runs in time blocks of about ``DENSE_BLOCK_ROWS`` rows, each transposed
    while it is in cache; elsewhere it is one ``einsum`` and XLA picks the layout.
    """
    batch, steps = x.shape[:2]
    if jax.default_backend() != "cpu" or batch * steps < 8 * DENSE_BLOCK_ROWS:
        return jnp.einsum("bti,oi->tbo", x, w, precision=precision)
    return _dense_tm(x, w, precision)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def _dense_tm(x: Array, w: Array, precision: str | None) -> Array:
    batch, steps, n_in = x.shape
    tb = max(1, DENSE_BLOCK_ROWS // batch)
    pad = (-steps) % tb
    xp = jnp.pad(x, ((0, 0), (0, pad), (0, 0)))

    def block(i):
        xb = jax.lax.dynamic_slice_in_dim(xp, i * tb, tb, axis=1)  # (B, tb, in)
        return jnp.swapaxes(jnp.matmul(xb, w.T, precision=precision), 0, 1)  # (tb, B, out)

    y = jax.lax.map(block, jnp.arange((steps + pad) // tb))
    return y.reshape(steps + pad, batch, w.shape[0])[:steps]


def _dense_tm_fwd(x, w, precision):
    return _dense_tm(x, w, precision), (x, w)


def _dense_tm_bwd(precision, res, g):
    x, w = res
    g_bm = jnp.swapaxes(g, 0, 1)  # (B, T, out): the narrow side is the cheap one to transpose
    dw = jnp.matmul(g_bm.reshape(-1, w.shape[0]).T, x.reshape(-1, x.shape[-1]), precision=precision)
    dx = dense(g_bm, w.T, precision)  # dead code unless the input needs a gradient
    return dx, dw


_dense_tm.defvjp(_dense_tm_fwd, _dense_tm_bwd)


def _lead(x: Array, n_own: int) -> tuple[tuple[int, ...], Array]:
    """Split leading axes off and merge them into one batch axis (for conv/pool primitives)."""
    lead = x.shape[: x.ndim - n_own]
    return lead, x.reshape((-1, *x.shape[x.ndim - n_own :]))


def apply_stateless(node: Node, p: Params, x: Array, surrogate: Surrogate, precision: str | None) -> Array:
    """Output of a stateless node for input ``x`` of shape ``(..., *node.input_shape)``."""
    if isinstance(node, (Input, Output)):
        return x
    if isinstance(node, Linear):  # Affine derives from Linear
        y = dense(x, p["weight"], precision)
        return y + p["bias"] if isinstance(node, Affine) else y
    if isinstance(node, Conv1d):  # Conv2d derives from Conv1d
        nd = 2 if isinstance(node, Conv2d) else 1
        lead, xb = _lead(x, nd + 1)
        dims = ("NCH", "OIH", "NCH") if nd == 1 else ("NCHW", "OIHW", "NCHW")
        y = jax.lax.conv_general_dilated(
            xb,
            p["weight"],
            window_strides=node.stride,
            padding=[(int(q), int(q)) for q in node.padding],
            rhs_dilation=node.dilation,
            feature_group_count=node.groups,
            dimension_numbers=dims,
            precision=precision,
        )
        y = y + p["bias"].reshape((-1,) + (1,) * nd)
        return y.reshape((*lead, *y.shape[1:]))
    if isinstance(node, SumPool2d):  # AvgPool2d derives from SumPool2d
        lead, xb = _lead(x, 3)
        kh, kw = node.kernel_size
        y = jax.lax.reduce_window(
            xb,
            jnp.array(0, xb.dtype),
            jax.lax.add,
            (1, 1, kh, kw),
            (1, 1, *node.stride),
            [(0, 0), (0, 0), *((int(q), int(q)) for q in node.padding)],
        )
        if isinstance(node, AvgPool2d):
            y = y / (kh * kw)  # zero padding counts in the average (PyTorch's count_include_pad=True)
        return y.reshape((*lead, *y.shape[1:]))
    if isinstance(node, Flatten):
        lead = x.shape[: x.ndim - len(node.input_shape)]
        return x.reshape((*lead, *node.output_shape))
    if isinstance(node, Scale):
        return x * p["scale"]
    if isinstance(node, Threshold):
        return heaviside(surrogate, x - p["threshold"])
    raise ConventionError(f"{node.type_name} is not a stateless node", node=node.name)


# ---------------------------------------------------------------------------------------------- neurons


@dataclass(frozen=True)
class NeuronStep:
    """Static description of one neuron node's update (see module docstring)."""

    kind: type[Node]
    reset: str
    surrogate: Surrogate
    detach_reset: bool

    @property
    def spiking(self) -> bool:
        return self.kind.spiking

    @property
    def has_synapse(self) -> bool:
        return issubclass(self.kind, (CubaLIF, CubaLI))

    def init(self, shape: tuple[int, ...], dtype: jnp.dtype) -> dict[str, Array]:
        """Zero state: ``v`` (and ``i`` for Cuba nodes, ``s`` for subtract-next), as NIR's reference starts."""
        st = {"v": jnp.zeros(shape, dtype)}
        if self.has_synapse:
            st["i"] = jnp.zeros(shape, dtype)
        if self.spiking and self.reset == "subtract-next":
            st["s"] = jnp.zeros(shape, dtype)
        return st

    def constants(self, coef: dict[str, Array], p: Params, shape: tuple[int, ...]) -> dict[str, Array]:
        """Per-step constants (coefficients, threshold, reset value) broadcast to the state's ``(B, *n)`` shape.

        Time loops carry these through ``lax.scan`` instead of closing over them: the gradient of a carried value
        accumulates element-wise each step and is reduced over the batch once at the end, whereas a closed-over
        per-neuron constant costs a batch reduction in every step of the backward loop (about 2x slower on CPU).
        """
        k = dict(coef)
        if self.spiking:
            k["v_threshold"] = p["v_threshold"]
            if self.reset == "zero":
                k["v_reset"] = p["v_reset"]
        used = ("a_syn", "b_syn", "k_i") if self.has_synapse else ()
        keys = [n for n in k if n not in ("a_syn", "b_syn", "k_i") or n in used]
        return {n: jnp.broadcast_to(k[n], shape) for n in keys}

    def membrane(
        self, coef: dict[str, Array], state: dict[str, Array], x: Array
    ) -> tuple[Array, dict[str, Array]]:
        """The membrane before the spike decision (after snnTorch's next-step subtraction) and the new synaptic
        current (``{'i': ...}`` for Cuba nodes, else ``{}``)."""
        v = coef["a_mem"] * state["v"] + coef["k_x"] * x + coef["c"]
        new: dict[str, Array] = {}
        if self.has_synapse:
            v = v + coef["k_i"] * state["i"]
            new["i"] = coef["a_syn"] * state["i"] + coef["b_syn"] * x
        if self.spiking and self.reset == "subtract-next":
            s_prev = jax.lax.stop_gradient(state["s"]) if self.detach_reset else state["s"]
            v = (
                v - coef["v_threshold"] * s_prev
            )  # snnTorch: mem = beta*mem + syn - reset*threshold, reset from last step
        return v, new

    def fire(self, coef: dict[str, Array], m: Array) -> tuple[Array, Array]:
        """Spikes from the pre-spike membrane ``m`` and the membrane after the reset (spiking nodes only)."""
        theta = coef["v_threshold"]
        s = heaviside(self.surrogate, m - theta)
        r = jax.lax.stop_gradient(s) if self.detach_reset else s
        if self.reset == "zero":
            return s, m + r * (coef["v_reset"] - m)
        if self.reset == "subtract":
            return s, m - r * theta
        return s, m  # subtract-next: subtracted at the next step (see :meth:`membrane`)

    def __call__(
        self, coef: dict[str, Array], state: dict[str, Array], x: Array
    ) -> tuple[dict[str, Array], Array, dict[str, Array]]:
        """One step with :meth:`constants` ``coef``: returns (new state, node output, record {'spikes','v','i'})."""
        v, new = self.membrane(coef, state, x)
        if not self.spiking:
            new["v"] = v
            return new, v, dict(new)
        s, v = self.fire(coef, v)
        if self.reset == "subtract-next":
            new["s"] = s
        new["v"] = v
        rec = {"spikes": s, "v": v}
        if self.has_synapse:
            rec["i"] = new["i"]
        return new, s, rec


def delay_steps(delay_seconds: np.ndarray, dt: float) -> np.ndarray:
    """NIR Delay in seconds -> whole steps: ``round(delay / dt)`` (half to even), as an int array."""
    return np.rint(np.asarray(delay_seconds, dtype=np.float64) / dt).astype(np.int64)


def delay_step(steps: np.ndarray, hist: Array, x: Array) -> tuple[Array, Array]:
    """One step of an element-wise delay line: ``y[t] = x[t - d]`` (zero before the start).

    ``hist[k]`` holds ``x[t-1-k]`` for ``k < D`` (D = max delay), with the element axes last and any batch axes in
    between; an element with ``d = 0`` passes ``x`` through in the same step.
    """
    d = jnp.asarray(steps)
    idx = jnp.broadcast_to(jnp.maximum(d - 1, 0), x.shape)[None]
    past = jnp.take_along_axis(hist, idx, axis=0)[0]
    y = jnp.where(d == 0, x, past)
    return jnp.concatenate([x[None], hist[:-1]], axis=0), y


def make_spike_fn(surrogate: str | Surrogate | None = None) -> Callable[[Array], Array]:
    """``u -> H(u)`` with the chosen surrogate derivative (for user code and tests)."""
    sur = as_surrogate(surrogate)
    return lambda u: heaviside(sur, u)
