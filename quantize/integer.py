"""Integer weight formats shared by the targets: signed n-bit mantissas times a power of two per block.

Convention: a block of float weights ``w`` (rows = target neurons) is stored as ``q * 2**shift`` with
``q = clip(round(s_j * w / 2**shift), -2**(bits-1), 2**(bits-1) - 1)``, where ``s_j`` is the per-neuron scale
(integer units per float unit of that neuron's membrane) and ``shift`` is shared by the whole block (Xylo's
IWBS/RWBS/OWBS, Loihi's weight exponent). Rounding is half to even (numpy's ``round``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np


def int_range(bits: int) -> tuple[int, int]:
    """(min, max) of a signed ``bits``-bit integer."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def quantise_rows(w: np.ndarray, scale: np.ndarray, shift: int, bits: int = 8) -> np.ndarray:
    """Integer mantissas of ``w * scale[:, None] / 2**shift``, rounded and clipped to ``bits`` (int64)."""
    lo, hi = int_range(bits)
    return np.clip(np.round(w * scale[:, None] / 2.0**shift), lo, hi).astype(np.int64)


def relative_error(w: np.ndarray, scale: np.ndarray, shift: int, bits: int = 8) -> float:
    """``||q 2^shift - s w|| / ||s w||`` over the block (0 for an all-zero block)."""
    ideal = w * scale[:, None]
    den = np.linalg.norm(ideal)
    if den == 0:
        return 0.0
    return float(np.linalg.norm(quantise_rows(w, scale, shift, bits) * 2.0**shift - ideal) / den)


def row_scales(
    blocks: Sequence[tuple[np.ndarray, int]],
    caps: Sequence[np.ndarray],
    bits: int = 8,
) -> np.ndarray:
    """The largest per-row scale such that every block's mantissas fit ``bits`` at its shift, and below every cap.

    ``blocks``: ``(w, shift)`` pairs whose rows are the same neurons; ``caps``: per-neuron upper bounds (for the
    threshold or bias range, or calibration headroom). Rows with no constraint get scale 1.
    """
    hi = float(int_range(bits)[1])  # the largest |w| maps to exactly hi: rounding can never push it past
    s = np.full(len(caps[0]), np.inf)
    for cap in caps:
        s = np.minimum(s, cap)
    for w, shift in blocks:
        m = np.max(np.abs(w), axis=1) if w.size else np.zeros(len(s))
        with np.errstate(over="ignore"):  # |w| ~ 1e-307 overflows the ratio: cap it instead of losing the row
            fit = np.minimum(hi * 2.0**shift / np.where(m > 0, m, 1.0), np.finfo(np.float64).max)
        s = np.minimum(s, np.where(m > 0, fit, np.inf))
    return np.where(np.isfinite(s), s, 1.0)  # rows no block or cap constrains (all-zero weights, no cap)


def search_shifts(
    block_groups: Sequence[Sequence[np.ndarray]],
    caps: Sequence[np.ndarray],
    theta: np.ndarray,
    max_shift: int,
    bits: int = 8,
) -> tuple[tuple[int, ...], np.ndarray, float]:
    """Choose one shift per group of blocks (all combinations of 0..max_shift) and the per-row scales.

    The cost is the sum of the blocks' relative weight errors plus the mean threshold resolution ``1/thr_int``
    (a coarse membrane makes decays and thresholds round badly). Ties go to the smaller shifts.
    Returns ``(shifts, scales, cost)``.
    """
    best: tuple[tuple[int, ...], np.ndarray, float] | None = None
    for shifts in itertools.product(range(max_shift + 1), repeat=len(block_groups)):
        blocks = [(w, shifts[g]) for g, ws in enumerate(block_groups) for w in ws]
        s = row_scales(blocks, caps, bits)
        thr = np.floor(s * theta) + 1
        cost = sum(relative_error(w, s, sh, bits) for w, sh in blocks) + float(
            np.mean(1.0 / np.maximum(thr, 1))
        )
        if best is None or cost < best[2] - 1e-12:
            best = (shifts, s, cost)
    assert best is not None
    return best
