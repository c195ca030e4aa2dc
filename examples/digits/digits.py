"""sklearn's bundled 8x8 digits, pooled to 16 input channels (Xylo has 16), rate-coded, with an 8-neuron output code.

- Pooling: 2x2 sum pooling of the 8x8 image (pixel values 0..16) gives 4x4 = 16 channels, divided by 64 -> [0, 1].
- Coding: a deterministic regular rate code over ``STEPS`` steps: channel value ``f`` emits a spike in step ``t``
  when ``floor((t+1) f) > floor(t f)`` (at most one spike per step; ``f = 1`` spikes every step).
- Split: stratified 70/30 train/test split with ``random_state=0`` (1257 / 540 samples).
- Output code: 10 classes on 8 output neurons (XyloAudio 2 has 8). Each class owns a codeword of weight 4 from the
  extended Hamming [8,4,4] code (any two codewords differ in >= 4 neurons); class logits are
  ``counts @ (2*CODE - 1).T / 8``: spikes of the class's 4 neurons count for it, the other 4 against it.
"""

from __future__ import annotations

import itertools

import numpy as np

STEPS = 32


def hamming_code_words() -> np.ndarray:
    """The 10 lexicographically first weight-4 codewords of the extended Hamming [8,4,4] code, ``(10, 8)`` int."""
    gen = np.array(
        [
            [1, 0, 0, 0, 0, 1, 1, 1],
            [0, 1, 0, 0, 1, 0, 1, 1],
            [0, 0, 1, 0, 1, 1, 0, 1],
            [0, 0, 0, 1, 1, 1, 1, 0],
        ]
    )
    words = {tuple(np.array(m) @ gen % 2) for m in itertools.product((0, 1), repeat=4)}
    weight4 = sorted(w for w in words if sum(w) == 4)
    return np.array(weight4[:10], dtype=np.int64)


CODE = hamming_code_words()
#: (10, 8) class logits = counts @ READOUT.T: +1 for the class's neurons, -1 for the others, divided by 8 (a softmax
#: temperature that keeps the cross-entropy from saturating on spike counts of up to 32; argmax is unaffected)
READOUT = (2.0 * CODE - 1.0) / 8.0


def pooled_digits() -> tuple[np.ndarray, np.ndarray]:
    """Features ``(1797, 16)`` in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pooled = d.images.reshape(-1, 4, 2, 4, 2).sum(axis=(2, 4)).reshape(-1, 16) / 64.0
    return pooled, d.target.astype(np.int64)


def split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    x, y = pooled_digits()
    return tuple(train_test_split(x, y, test_size=0.3, random_state=0, stratify=y))  # x_tr, x_te, y_tr, y_te


def rate_code(features: np.ndarray, steps: int = STEPS) -> np.ndarray:
    """Regular rate code ``(N, steps, 16)`` float32 (see module docstring)."""
    t = np.arange(steps + 1)[None, :, None]
    counts = np.floor(t * np.asarray(features)[:, None, :] + 1e-9)
    return np.diff(counts, axis=1).astype(np.float32)
