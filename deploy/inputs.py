"""Reading simulation, calibration and validation input: ``.npz`` files with an ``input`` array.

One reader for every command, so that every command fails the same way (an :class:`InputError` naming the file
and what to do) on a missing file, a file numpy cannot read, a missing key or a non-numeric array.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .errors import InputError


def load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file (no pickles), or an InputError saying why not."""
    path = Path(path)
    if not path.is_file():
        raise InputError("input file not found", file=str(path), fix="give an .npz file with key 'input'")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # noqa: BLE001 -- any failure to read means: not a usable npz
        raise InputError(
            f"cannot read as .npz ({type(e).__name__})",
            file=str(path),
            fix="save it with numpy.savez(path, input=array)",
        ) from None


def load_input(path: str | os.PathLike) -> np.ndarray:
    """The ``input`` array of an ``.npz`` file (numeric), as stored."""
    data = load_npz(path)
    if "input" not in data:
        raise InputError(
            f"no 'input' array (keys: {sorted(data)})",
            file=str(path),
            fix="save it with numpy.savez(path, input=array)",
        )
    x = data["input"]
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool):
        raise InputError(f"input has dtype {x.dtype}, not numeric", file=str(path), param="input")
    return x


def as_counts(x: np.ndarray, *, file: str | None = None, what: str = "the input") -> np.ndarray:
    """``x`` as int32 spike counts; non-negative integer values are required (integer chips take counts)."""
    x = np.asarray(x)
    if x.size and (np.any(x < 0) or np.any(x != np.round(x))):
        raise InputError(f"{what} must be non-negative integer spike counts", file=file, param="input")
    return x.astype(np.int32)


def calibration_counts(graph, calibration: str | None) -> tuple[np.ndarray, str]:
    """Calibration input of a deployment as integer counts ``(B, T, N_in)`` and a description of it; without a
    file, seeded random Bernoulli(0.1) spikes (16 samples x 200 steps) so that every report has agreement figures."""
    n_in = int(graph.inputs[0].shape[0])
    if calibration is None:
        x = (np.random.default_rng(0).random((16, 200, n_in)) < 0.1).astype(np.int32)
        return x, "random Bernoulli(0.1), 16 x 200 steps, seed 0"
    x = load_input(calibration)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != n_in:
        raise InputError(
            f"input shape {list(x.shape)} is not (T, {n_in}) or (B, T, {n_in})",
            file=calibration,
            param="input",
        )
    x = as_counts(x, file=calibration, what="calibration input (Xylo and Loihi take spike counts)")
    return x, f"calibration file {calibration}"
