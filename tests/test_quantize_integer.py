"""Integer weight formats: rounding, clipping, scale caps and the shift search."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from snn_deploy.quantize.integer import int_range, quantise_rows, relative_error, row_scales, search_shifts


def test_int_range():
    assert int_range(8) == (-128, 127)
    assert int_range(16) == (-32768, 32767)


def test_quantise_rounds_half_to_even_and_clips():
    w = np.array([[0.5, 1.5, 2.5, -0.5, 1000.0, -1000.0]])
    np.testing.assert_array_equal(quantise_rows(w, np.ones(1), 0), [[0, 2, 2, 0, 127, -128]])
    np.testing.assert_array_equal(quantise_rows(w, np.ones(1), 1), [[0, 1, 1, 0, 127, -128]])


@settings(max_examples=60, deadline=None)
@given(
    # Weights in the range a network has (|w| >= 1e-6 or 0); far smaller ones make the scale overflow float64.
    arrays(
        np.float64,
        (4, 7),
        elements=st.floats(-5, 5, allow_nan=False).filter(lambda v: v == 0 or abs(v) > 1e-6),
    ),
    st.integers(0, 7),
)
def test_row_scales_fit_int8_and_error_is_bounded(w, shift):
    s = row_scales([(w, shift)], [np.full(4, np.inf)])
    q = quantise_rows(w, s, shift)
    assert q.min() >= -128 and q.max() <= 127
    unclipped = np.round(w * s[:, None] / 2.0**shift)
    np.testing.assert_array_equal(q, unclipped)  # the scale never forces clipping
    # Rounding error is at most half a step per weight.
    assert np.all(np.abs(q * 2.0**shift - w * s[:, None]) <= 2.0 ** (shift - 1) + 1e-9)
    if np.any(w != 0):  # the largest weight of every non-zero row uses the full int8 range
        rows = np.max(np.abs(w), axis=1) > 0
        assert np.all(np.max(np.abs(q[rows]), axis=1) == 127)


def test_caps_bound_the_scale():
    w = np.array([[1.0, -2.0], [0.0, 0.0]])
    s = row_scales([(w, 0)], [np.array([10.0, 5.0])])
    np.testing.assert_allclose(s, [10.0, 5.0])


def test_search_prefers_precise_shift():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 9))
    theta = np.ones(6)
    shifts, s, cost = search_shifts([[w]], [np.full(6, 8000.0)], theta, 7)
    # With a threshold cap of 8000 units, shift 0 would keep the weights tiny relative to the threshold.
    assert shifts[0] > 0
    best_other = min(
        relative_error(w, row_scales([(w, k)], [np.full(6, 8000.0)]), k)
        + float(np.mean(1 / np.maximum(np.floor(row_scales([(w, k)], [np.full(6, 8000.0)]) * theta) + 1, 1)))
        for k in range(8)
    )
    assert cost <= best_other + 1e-12


def test_tiny_weights_do_not_fall_back_to_unit_scale():
    w = np.full((1, 3), 1e-300)
    assert quantise_rows(w, row_scales([(w, 7)], [np.array([np.inf])]), 7).max() == 127
    tiny = np.full((1, 3), 1e-307)  # the ratio overflows: the scale is capped at the largest float, not reset to 1
    assert row_scales([(tiny, 7)], [np.array([np.inf])])[0] == np.finfo(np.float64).max
