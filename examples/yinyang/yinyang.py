"""The Yin-Yang data set (Kriener, Göltz, Petrovici, "The Yin-Yang dataset", NICE 2022), generated from its definition.

Points ``(x, y)`` are drawn uniformly from the disc of radius ``r_big = 0.5`` centred at ``(0.5, 0.5)``. Classes:

- ``dot`` (2): within ``r_small = 0.1`` of one of the two dots at ``(0.25, 0.5)`` and ``(0.75, 0.5)``;
- ``yin`` (0): within ``r_small`` of the right dot, or between ``r_small`` and ``r_big/2`` of the left dot, or in
  the upper half (``y > r_big``) and farther than ``r_big/2`` from the right dot;
- ``yang`` (1): everything else.

As in the published generator, every sample first draws its goal class uniformly (so the classes are balanced) and
then rejection-samples a point of that class. Features are ``(x, y, 1 - x, 1 - y)`` in ``[0, 1]``. The published
splits use 5000 training samples (seed 42), 1000 validation (seed 41) and 1000 test samples (seed 40).
"""

from __future__ import annotations

import numpy as np

R_BIG, R_SMALL = 0.5, 0.1


def which_class(x: float, y: float) -> int:
    """Class of a point inside the big circle (see module docstring)."""
    d_right = np.hypot(x - 1.5 * R_BIG, y - R_BIG)
    d_left = np.hypot(x - 0.5 * R_BIG, y - R_BIG)
    if d_right < R_SMALL or d_left < R_SMALL:
        return 2
    yin = d_right <= R_SMALL or (R_SMALL < d_left <= 0.5 * R_BIG) or (y > R_BIG and d_right > 0.5 * R_BIG)
    return 0 if yin else 1


def yinyang(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``size`` samples: features ``(size, 4)`` float64 in [0, 1] and labels ``(size,)`` int."""
    rng = np.random.RandomState(seed)
    feats, labels = [], []
    for _ in range(size):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * R_BIG
            if np.hypot(x - R_BIG, y - R_BIG) > R_BIG:
                continue
            if which_class(x, y) == goal:
                break
        feats.append((x, y, 1.0 - x, 1.0 - y))
        labels.append(goal)
    return np.array(feats), np.array(labels)


def latency_code(features: np.ndarray, steps: int, t_max: int) -> np.ndarray:
    """One spike per channel at step ``round(f * t_max)`` (early spike = small value): ``(N, steps, 4)`` float32."""
    t = np.rint(np.asarray(features) * t_max).astype(int)
    out = np.zeros((len(features), steps, features.shape[1]), np.float32)
    n, c = np.meshgrid(np.arange(len(features)), np.arange(features.shape[1]), indexing="ij")
    out[n, t, c] = 1.0
    return out
