"""Build the Python 3.10 Lava reference environment ``.lava-venv/`` in the repository root.

lava-nc 0.10.0 and lava-dl 0.6.0 need Python 3.10 and numpy < 2, so they cannot live in the project's
own environment. This script finds a Python 3.10 interpreter (``$SNN_DEPLOY_PY310``, then
``$(pyenv root)/versions/3.10.*/bin/python``, then ``python3.10`` on PATH), creates ``.lava-venv/`` with
it and installs the pinned, dependency-closed set in ``tests/lava-requirements.txt`` with
``pip install --no-deps``. It is idempotent: a marker file in the venv stores a hash of the requirements
file and of the interpreter version; when it matches, nothing is done.

Run as ``python -m tests.lava_env`` or ``python tests/lava_env.py``. Exit code 0 when the environment
is ready or when no Python 3.10 exists (a message says so; Lava tests then skip), 1 when the
build failed.
"""

from __future__ import annotations

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
VENV_DIR = REPO_ROOT / ".lava-venv"
REQUIREMENTS = Path(__file__).resolve().parent / "lava-requirements.txt"
MARKER_NAME = "snn-deploy-lava-env.sha256"
ENV_VAR = "SNN_DEPLOY_PY310"


def venv_python(venv: Path = VENV_DIR) -> Path:
    """Path of the interpreter inside the Lava venv (POSIX layout)."""
    return venv / "bin" / "python"


def _is_py310(exe: str) -> bool:
    try:
        out = subprocess.run(
            [exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and out.stdout.strip() == "3.10"


def find_python310() -> str | None:
    """Return a Python 3.10 executable, or None when none is installed.

    Order: ``$SNN_DEPLOY_PY310``, pyenv versions ``3.10.*`` (newest first), ``python3.10`` on PATH.
    """
    candidates: list[str] = []
    if os.environ.get(ENV_VAR):
        candidates.append(os.environ[ENV_VAR])
    roots = []
    if os.environ.get("PYENV_ROOT"):
        roots.append(os.environ["PYENV_ROOT"])
    if shutil.which("pyenv"):
        try:
            root = subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, timeout=30, check=False
            ).stdout.strip()
            if root:
                roots.append(root)
        except (OSError, subprocess.TimeoutExpired):
            pass
    roots.append(str(Path.home() / ".pyenv"))
    for root in roots:
        found = glob.glob(os.path.join(root, "versions", "3.10.*", "bin", "python"))
        found.sort(key=lambda p: [int(x) for x in Path(p).parent.parent.name.split(".") if x.isdigit()])
        candidates.extend(reversed(found))
    on_path = shutil.which("python3.10")
    if on_path:
        candidates.append(on_path)
    for exe in candidates:
        if _is_py310(exe):
            return exe
    return None


def requirements_hash(python: str) -> str:
    """Hash of the requirements file and the exact interpreter version (the marker's content)."""
    version = subprocess.run(
        [python, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    digest = hashlib.sha256(REQUIREMENTS.read_bytes())
    digest.update(version.encode())
    return digest.hexdigest()


def is_ready(venv: Path = VENV_DIR) -> bool:
    """True when ``venv`` holds an environment built from the current requirements file."""
    marker = venv / MARKER_NAME
    py = venv_python(venv)
    if not (marker.is_file() and py.exists()):
        return False
    try:
        return marker.read_text().strip() == requirements_hash(str(py))
    except (OSError, subprocess.CalledProcessError):
        return False


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def build(python: str, venv: Path = VENV_DIR) -> None:
    """(Re)create ``venv`` with ``python`` and install the pinned requirements without dependencies."""
    if venv.exists():
        print(f"removing stale {venv}", flush=True)
        shutil.rmtree(venv)
    _run([python, "-m", "venv", str(venv)])
    py = str(venv_python(venv))
    _run(
        [
            py,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "-r",
            str(REQUIREMENTS),
        ]
    )
    # Smoke test: the fixed-point LIF/Dense models and the netx loader (with stand-ins) import.
    _run([py, str(Path(__file__).resolve().parent.parent / "deploy" / "lava_driver.py"), "--self-test"])
    (venv / MARKER_NAME).write_text(requirements_hash(py) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    force = "--force" in argv
    if not force and is_ready():
        print(f"Lava reference environment up to date: {VENV_DIR}")
        return 0
    python = find_python310()
    if python is None:
        print(
            "No Python 3.10 interpreter found (set SNN_DEPLOY_PY310, or `pyenv install 3.10`); "
            "the Lava reference tests will be skipped."
        )
        return 0
    print(f"building Lava reference environment in {VENV_DIR} with {python}", flush=True)
    t0 = time.perf_counter()
    try:
        build(python)
    except subprocess.CalledProcessError as exc:
        print(f"Lava environment build failed: {exc}", file=sys.stderr)
        return 1
    print(f"Lava reference environment ready in {time.perf_counter() - t0:.1f} s: {VENV_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
