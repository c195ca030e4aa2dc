"""Float reference: synapse and element-wise primitives against hand-computed or loop-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from reference_helpers import a, chain

from snn_deploy.errors import ConventionError, InputError
from snn_deploy.nodes import (
    Affine,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Delay,
    Flatten,
    Linear,
    Scale,
    SumPool2d,
    Threshold,
)
from snn_deploy.sim.reference import simulate


def out(graph, x):
    return np.asarray(simulate(graph, np.asarray(x, dtype=np.float32)).output)


def test_linear_and_affine():
    w = np.array([[1.0, 2.0], [-1.0, 0.5], [0.0, 3.0]])
    x = np.array([[1.0, 1.0], [2.0, -1.0]])
    np.testing.assert_allclose(out(chain((2,), Linear("l", weight=w)), x), [[3, -0.5, 3], [0, -2.5, -3]])
    g = chain((2,), Affine("l", weight=w, bias=a(1, 2, 3)))
    np.testing.assert_allclose(out(g, x), [[4, 1.5, 6], [1, -0.5, 0]])


def _conv_loop(x, w, b, stride, pad, dil, groups):
    """Direct n-d cross-correlation (PyTorch's conv) written as loops over output positions."""
    nd = w.ndim - 2
    xp = np.pad(x, [(0, 0)] + [(p, p) for p in pad])
    c_out, cig = w.shape[:2]
    og = c_out // groups
    out_sp = [
        (x.shape[1 + d] + 2 * pad[d] - dil[d] * (w.shape[2 + d] - 1) - 1) // stride[d] + 1 for d in range(nd)
    ]
    y = np.zeros((c_out, *out_sp))
    for o in range(c_out):
        g = o // og
        for pos in np.ndindex(*out_sp):
            acc = b[o]
            for k in np.ndindex(*w.shape[2:]):
                idx = tuple(pos[d] * stride[d] + k[d] * dil[d] for d in range(nd))
                acc += np.dot(w[(o, slice(None), *k)], xp[(slice(g * cig, (g + 1) * cig), *idx)])
            y[(o, *pos)] = acc
    return y


@settings(max_examples=15, deadline=None)
@given(
    stride=st.integers(1, 2),
    pad=st.integers(0, 2),
    dil=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    seed=st.integers(0, 2**16),
)
def test_conv2d_matches_loops(stride, pad, dil, groups, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(4, 4 // groups, 3, 2))
    b = rng.normal(size=4)
    x = rng.normal(size=(2, 4, 7, 6))  # (T, C, H, W)
    node = Conv2d(
        "c", weight=w, bias=b, stride=(stride, stride), padding=(pad, pad), dilation=(dil, dil), groups=groups
    )
    got = out(chain((4, 7, 6), node), x)
    for t in range(2):
        np.testing.assert_allclose(
            got[t], _conv_loop(x[t], w, b, [stride] * 2, [pad] * 2, [dil] * 2, groups), rtol=1e-4, atol=1e-4
        )


def test_conv1d_matches_loops():
    rng = np.random.default_rng(0)
    w, b, x = rng.normal(size=(3, 2, 3)), rng.normal(size=3), rng.normal(size=(4, 2, 9))
    node = Conv1d("c", weight=w, bias=b, stride=(2,), padding=(1,), dilation=(1,), groups=1)
    got = out(chain((2, 9), node), x)
    assert got.shape == (4, 3, 5)
    for t in range(4):
        np.testing.assert_allclose(got[t], _conv_loop(x[t], w, b, [2], [1], [1], 1), rtol=1e-4, atol=1e-5)


def test_sum_and_avg_pool_with_padding():
    x = np.arange(1, 17, dtype=np.float64).reshape(1, 1, 4, 4)
    s = out(chain((1, 4, 4), SumPool2d("p", kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))), x)
    np.testing.assert_allclose(s[0, 0], [[14, 22], [46, 54]])
    avg = out(chain((1, 4, 4), AvgPool2d("p", kernel_size=(2, 2), stride=(2, 2), padding=(1, 1))), x)
    # padded corners: (1)/4, (2+3)/4, (4)/4 ... zero padding counts in the divisor
    np.testing.assert_allclose(avg[0, 0, 0], [1 / 4, 5 / 4, 4 / 4])
    np.testing.assert_allclose(avg[0, 0, 1], [(5 + 9) / 4, (6 + 7 + 10 + 11) / 4, (8 + 12) / 4])


def test_flatten_scale_threshold():
    x = np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    f = out(chain((2, 3), Flatten("f", start_dim=0, end_dim=-1)), x)
    np.testing.assert_allclose(f, [[0, 1, 2, 3, 4, 5]])
    sc = out(chain((3,), Scale("s", scale=a(2, -1, 0.5))), [[1, 2, 4]])
    np.testing.assert_allclose(sc, [[2, -2, 2]])
    th = out(chain((3,), Threshold("t", threshold=a(1, 1, 1))), [[0.5, 1.0, 1.5]])
    np.testing.assert_allclose(th, [[0, 0, 1]])  # strict: x == threshold does not fire


def test_delay_rounds_to_steps():
    node = Delay("d", delay=a(0.0, 2.4e-3, 2.6e-3))  # dt 1 ms: 0, 2, 3 steps
    x = np.zeros((6, 3))
    x[0] = [1, 2, 3]
    x[1] = [4, 5, 6]
    y = out(chain((3,), node, dt=1e-3), x)
    want = np.zeros((6, 3))
    want[0, 0], want[1, 0] = 1, 4
    want[2, 1], want[3, 1] = 2, 5
    want[3, 2], want[4, 2] = 3, 6
    np.testing.assert_allclose(y, want)


def test_input_shape_errors():
    g = chain((2,), Linear("l", weight=np.eye(2)))
    with pytest.raises(InputError, match=r"expected \(T, 2\)"):
        simulate(g, np.zeros((5, 3)))
    with pytest.raises(InputError):
        simulate(g, np.zeros((2,)))


def test_missing_dt_is_a_convention_error():
    from snn_deploy.conventions import Conventions
    from snn_deploy.graph import Graph

    g = chain((2,), Linear("l", weight=np.eye(2)))
    g = Graph.build(g.nodes, g.edges, conventions=Conventions())
    with pytest.raises(ConventionError, match="dt"):
        simulate(g, np.zeros((5, 2)))
    np.testing.assert_allclose(np.asarray(simulate(g, np.ones((1, 2)), dt=1e-3).output), [[1, 1]])


@pytest.mark.parametrize("batch,steps", [(8, 300), (3, 1000)])  # long enough for the blocked CPU paths
def test_dense_products_and_gradients_match_plain_matmul(batch, steps):
    import jax
    import jax.numpy as jnp

    from snn_deploy.sim.reference_ops import dense, dense_to_time_major

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(batch, steps, 7)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(5, 7)), jnp.float32)
    g = jnp.asarray(rng.normal(size=(steps, batch, 5)), jnp.float32)
    want = jnp.einsum("bti,oi->tbo", x, w, precision="highest")
    np.testing.assert_allclose(
        np.asarray(dense_to_time_major(x, w, "highest")), np.asarray(want), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        np.asarray(dense(x, w, "highest")), np.asarray(jnp.swapaxes(want, 0, 1)), rtol=1e-5, atol=1e-5
    )
    for fn in (
        lambda x, w: dense_to_time_major(x, w, "highest"),
        lambda x, w: jnp.swapaxes(dense(x, w, "highest"), 0, 1),
    ):
        gx, gw = jax.grad(lambda x, w, fn=fn: jnp.sum(fn(x, w) * g), argnums=(0, 1))(x, w)
        ex, ew = jax.grad(
            lambda x, w: jnp.sum(jnp.einsum("bti,oi->tbo", x, w, precision="highest") * g), argnums=(0, 1)
        )(x, w)
        np.testing.assert_allclose(np.asarray(gx), np.asarray(ex), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(np.asarray(gw), np.asarray(ew), rtol=1e-4, atol=1e-3)
