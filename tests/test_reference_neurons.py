"""Hand-computed traces of every neuron primitive in the float reference, both methods, all resets."""

from __future__ import annotations

import decimal

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import a, chain

from snn_deploy.discretize import cuba_input_gain, exact_k, step_coefficients
from snn_deploy.nodes import IF, LI, LIF, CubaLI, CubaLIF, Integrator
from snn_deploy.sim.reference import simulate
from snn_deploy.sim.reference_ops import coefficients


def lif(tau=0.01, r=1.0, v_leak=0.0, thr=1.0, v_reset=0.0):
    return LIF("n", tau=a(tau), r=a(r), v_leak=a(v_leak), v_threshold=a(thr), v_reset=a(v_reset))


def run(graph, x):
    res = simulate(graph, np.asarray(x, dtype=np.float64).reshape(len(x), -1))
    return (
        res,
        np.asarray(res.v["n"])[:, 0],
        (np.asarray(res.spikes["n"])[:, 0] if "n" in res.spikes else None),
    )


# --- LIF, euler: a = 1 - dt/tau = 0.9, gain 0.1; input 5 per step adds 0.5 ---------------------------------


def test_lif_euler_reset_zero():
    _, v, s = run(chain((1,), lif(), dt=1e-3, reset="zero"), [5] * 5)
    # 0.5, 0.95, 1.355 -> spike, reset to 0; 0.5, 0.95
    np.testing.assert_allclose(v, [0.5, 0.95, 0.0, 0.5, 0.95], atol=1e-6)
    np.testing.assert_array_equal(s, [0, 0, 1, 0, 0])


def test_lif_euler_reset_zero_to_v_reset():
    _, v, s = run(chain((1,), lif(v_reset=0.25), dt=1e-3, reset="zero"), [5] * 4)
    # 0.5, 0.95, 1.355 -> 0.25, then 0.9*0.25 + 0.5 = 0.725
    np.testing.assert_allclose(v, [0.5, 0.95, 0.25, 0.725], atol=1e-6)


def test_lif_euler_reset_subtract():
    _, v, s = run(chain((1,), lif(), dt=1e-3, reset="subtract"), [5] * 5)
    # 1.355 - 1 = 0.355; 0.3195 + 0.5 = 0.8195; 0.73755 + 0.5 = 1.23755 - 1 = 0.23755
    np.testing.assert_allclose(v, [0.5, 0.95, 0.355, 0.8195, 0.23755], atol=1e-6)
    np.testing.assert_array_equal(s, [0, 0, 1, 0, 1])


def test_lif_euler_reset_subtract_next():
    _, v, s = run(chain((1,), lif(), dt=1e-3, reset="subtract-next"), [5] * 5)
    # 1.355 fires and stays; next: 0.9*1.355 + 0.5 - 1 = 0.7195; 0.64755 + 0.5 = 1.14755 fires
    np.testing.assert_allclose(v, [0.5, 0.95, 1.355, 0.7195, 1.14755], atol=1e-6)
    np.testing.assert_array_equal(s, [0, 0, 1, 0, 1])


def test_threshold_is_strict():
    # IF with dt*r = 0.5: v reaches exactly 1.0 (representable) and does not fire at equality
    node = IF("n", r=a(500.0), v_threshold=a(1.0), v_reset=a(0.0))
    _, v, s = run(chain((1,), node, dt=1e-3), [1, 1, 1])
    np.testing.assert_array_equal(v, [0.5, 1.0, 0.0])
    np.testing.assert_array_equal(s, [0, 0, 1])


def test_lif_exact_with_leak():
    # exact: v' = e^-0.1 v + (1 - e^-0.1) (r x + v_leak); r=2, v_leak=0.5, x=1 -> drive 2.5
    g = chain((1,), lif(r=2.0, v_leak=0.5, thr=10.0), dt=1e-3, method="exact")
    _, v, _ = run(g, [1, 1, 0])
    d = np.exp(-0.1)
    v1 = (1 - d) * 2.5
    v2 = d * v1 + (1 - d) * 2.5
    v3 = d * v2 + (1 - d) * 0.5
    np.testing.assert_allclose(v, [v1, v2, v3], rtol=1e-6)


# --- IF, Integrator, LI ---------------------------------------------------------------------------------------


def test_if_zero_reset_to_v_reset():
    node = IF("n", r=a(1000.0), v_threshold=a(1.0), v_reset=a(0.1))  # dt*r = 1: v += x
    _, v, s = run(chain((1,), node, dt=1e-3), [0.4, 0.4, 0.4, 0.4])
    np.testing.assert_allclose(v, [0.4, 0.8, 0.1, 0.5], atol=1e-6)
    np.testing.assert_array_equal(s, [0, 0, 1, 0])


def test_if_same_in_both_methods():
    node = IF("n", r=a(500.0), v_threshold=a(1.0), v_reset=a(0.0))
    x = [1, 0.3, 2, 0, 1]
    _, v1, _ = run(chain((1,), node, dt=1e-3, method="euler", reset="subtract"), x)
    _, v2, _ = run(chain((1,), node, dt=1e-3, method="exact", reset="subtract"), x)
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_allclose(v1, [0.5, 0.65, 0.65, 0.65, 0.15], atol=1e-6)


def test_integrator_output_is_v():
    node = Integrator("n", r=a(2.0))
    res, v, _ = run(chain((1,), node, dt=0.5), [1, 2, -1])  # v += 0.5 * 2 * x
    np.testing.assert_allclose(v, [1, 3, 2], atol=1e-6)
    np.testing.assert_allclose(np.asarray(res.output)[:, 0], v)
    assert "n" not in res.spikes


@pytest.mark.parametrize("method", ["euler", "exact"])
def test_li(method):
    node = LI("n", tau=a(0.004), r=a(3.0), v_leak=a(-0.2))
    _, v, _ = run(chain((1,), node, dt=1e-3, method=method), [1, 0, 0])
    d = 0.75 if method == "euler" else np.exp(-0.25)
    v1 = (1 - d) * (3.0 - 0.2)
    v2 = d * v1 + (1 - d) * (-0.2)
    v3 = d * v2 + (1 - d) * (-0.2)
    np.testing.assert_allclose(v, [v1, v2, v3], rtol=1e-6)


# --- Cuba neurons ---------------------------------------------------------------------------------------------


def cuba(cls=CubaLIF, thr=10.0, **kw):
    p = dict(tau_mem=a(0.004), tau_syn=a(0.002), r=a(1.0), v_leak=a(0.0), w_in=a(1.0))
    p.update({k: a(v) for k, v in kw.items()})
    if cls is CubaLIF:
        p.update(v_threshold=a(thr), v_reset=a(0.0))
    return cls("n", **p)


@pytest.mark.parametrize("cls", [CubaLIF, CubaLI])
def test_cuba_euler_pulse(cls):
    # a_syn = 0.5, dt/tau_syn*w_in = 0.5, a_mem = 0.75, dt/tau_mem*r = 0.25; input pulse 4 at t=0
    res, v, _ = run(chain((1,), cuba(cls), dt=1e-3), [4, 0, 0, 0])
    np.testing.assert_allclose(np.asarray(res.i["n"])[:, 0], [2, 1, 0.5, 0.25], atol=1e-6)
    # v[t] = 0.75 v + 0.25 i[t] (the updated current: snnTorch/Lava/Xylo order)
    np.testing.assert_allclose(v, [0.5, 0.625, 0.59375, 0.5078125], atol=1e-6)


def test_cuba_lif_euler_subtract_and_spikes():
    res, v, s = run(chain((1,), cuba(thr=1.0), dt=1e-3, reset="subtract"), [8, 0, 0])
    # i = 4, 2, 1; v = 1.0 (not > 1), 0.75 + 0.5 = 1.25 -> spike -> 0.25; 0.1875 + 0.25 = 0.4375
    np.testing.assert_allclose(v, [1.0, 0.25, 0.4375], atol=1e-6)
    np.testing.assert_array_equal(s, [0, 1, 0])


def _ode_reference(node, dt, x, substeps=20000):
    """Fine forward-Euler integration of the continuous CubaLIF ODE (inputs held over each step)."""
    h = dt / substeps
    i = v = 0.0
    out = []
    for xt in x:
        for _ in range(substeps):
            i_new = i + h / node.tau_syn[0] * (-i + node.w_in[0] * xt)
            v = v + h / node.tau_mem[0] * (node.v_leak[0] - v + node.r[0] * i)
            i = i_new
        out.append(v)
    return np.array(out)


@pytest.mark.parametrize("tau_syn", [0.002, 0.004])  # tau_syn == tau_mem exercises phi(0)
def test_cuba_exact_matches_ode(tau_syn):
    node = cuba(tau_syn=tau_syn, r=1.5, v_leak=0.3, w_in=2.0)
    x = [3.0, 0.0, -1.0, 0.0, 0.0]
    with jax.enable_x64(True):
        _, v, _ = run(chain((1,), node, dt=1e-3, method="exact"), x)
    np.testing.assert_allclose(v, _ode_reference(node, 1e-3, x), atol=2e-4)


# --- coefficients: JAX twin == numpy statement ----------------------------------------------------------------

pos = st.floats(1e-4, 1.0)


@settings(max_examples=40, deadline=None)
@given(
    tau_mem=pos,
    tau_syn=pos,
    r=st.floats(-5, 5),
    w_in=st.floats(-5, 5),
    v_leak=st.floats(-2, 2),
    dt=st.floats(1e-5, 1e-2),
    method=st.sampled_from(["euler", "exact"]),
)
def test_coefficients_match_discretize(tau_mem, tau_syn, r, w_in, v_leak, dt, method):
    nodes = [
        CubaLIF(
            "n",
            tau_mem=a(tau_mem),
            tau_syn=a(tau_syn),
            r=a(r),
            v_leak=a(v_leak),
            v_threshold=a(1.0),
            v_reset=a(0.0),
            w_in=a(w_in),
        ),
        CubaLI("n", tau_mem=a(tau_mem), tau_syn=a(tau_syn), r=a(r), v_leak=a(v_leak), w_in=a(w_in)),
        LIF("n", tau=a(tau_mem), r=a(r), v_leak=a(v_leak), v_threshold=a(1.0), v_reset=a(0.0)),
        LI("n", tau=a(tau_mem), r=a(r), v_leak=a(v_leak)),
        IF("n", r=a(r), v_threshold=a(1.0), v_reset=a(0.0)),
        Integrator("n", r=a(r)),
    ]
    with jax.enable_x64(True):
        for node in nodes:
            want = step_coefficients(node, dt, method).as_dict()
            got = coefficients(type(node), {k: np.asarray(v) for k, v in node.params().items()}, dt, method)
            for k in want:
                np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-12, atol=1e-15, err_msg=k)


# --- exact CubaLIF gains: full relative precision against 40-digit decimal arithmetic ----------------------------


def _decimal_gains(x: float, y: float) -> tuple[float, float]:
    """``K`` and ``1 - exp(-x) - K`` in 40-digit decimal arithmetic (the limit ``x*exp(-x)`` where ``x == y``)."""
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        dx, dy = decimal.Decimal(x), decimal.Decimal(y)
        k = dx * (-dx).exp() if x == y else dx * ((-dy).exp() - (-dx).exp()) / (dx - dy)
        return float(k), float(1 - (-dx).exp() - k)


# dt/tau pairs: the hypothesis case that broke the old ``1 - a_mem - K`` (7e-11 relative), dt << tau, the tie
# tau_mem == tau_syn, near-ties, one step longer than tau (halved and composed back), and dt >> tau_syn.
GAIN_CASES = [
    (1.26e-3 / 0.49, 1.26e-3 / 1.0),
    (1e-5, 3e-6),
    (2e-4, 2e-4),
    (0.7, 0.7 * (1 + 1e-9)),
    (3.0, 3.0),
    (3.0, 0.5),
    (1e-5, 80.0),
    (40.0, 1e-3),
    (513.0, 2.5),
]


@pytest.mark.parametrize("x, y", GAIN_CASES)
def test_exact_cuba_gains_full_precision(x, y):
    k_want, gain_want = _decimal_gains(x, y)
    assert exact_k(np.float64(x), np.float64(y)) == pytest.approx(k_want, rel=4e-15)
    assert cuba_input_gain(np.float64(x), np.float64(y)) == pytest.approx(gain_want, rel=4e-15)
    with jax.enable_x64(True):
        assert float(cuba_input_gain(jnp.float64(x), jnp.float64(y), jnp)) == pytest.approx(
            gain_want, rel=4e-15
        )
    # float32 keeps float32 precision (the old difference lost up to all of it for dt << tau)
    got32 = float(cuba_input_gain(jnp.float32(x), jnp.float32(y), jnp))
    assert got32 == pytest.approx(_decimal_gains(float(np.float32(x)), float(np.float32(y)))[1], rel=2e-6)
