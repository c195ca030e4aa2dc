"""Writing artefacts: atomically (a whole directory appears at once or not at all) and deterministically
(the same input gives the same bytes: fixed zip timestamps, sorted JSON keys)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest zip timestamp: keeps npz bytes independent of the clock


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` (uncompressed, readable by ``np.load(allow_pickle=False)``) with fixed timestamps, keys sorted."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for key in sorted(arrays):
            arr = np.asarray(arrays[key])
            if arr.dtype == object:
                raise TypeError(f"array {key!r} has dtype object; artefacts never need pickling")
            body = io.BytesIO()
            np.lib.format.write_array(body, arr, allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            z.writestr(info, body.getvalue())
    return buf.getvalue()


def json_bytes(doc: Any) -> bytes:
    """Deterministic JSON (sorted keys, 2-space indent, trailing newline); numpy scalars and arrays converted."""
    return (json.dumps(doc, indent=2, sort_keys=True, default=_jsonable) + "\n").encode()


def _jsonable(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON-serialisable: {type(x).__name__}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def atomic_directory(dest: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``dest``; on success it replaces ``dest`` in one rename.

    On any exception the temporary directory is removed and ``dest`` is left as it was: nothing half-written.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
            os.rmdir(old)
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_files(directory: Path, files: Mapping[str, bytes]) -> dict[str, str]:
    """Write ``name -> bytes`` into ``directory``; returns ``name -> sha256`` for the report."""
    hashes = {}
    for name in sorted(files):
        (directory / name).write_bytes(files[name])
        hashes[name] = sha256(files[name])
    return hashes
