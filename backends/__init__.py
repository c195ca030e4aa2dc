"""Deployment targets, registered by name.

A target module (``backends/<target>.py``) defines a :class:`Target` (data: name, limits, dt options, numeric
format) with ``lower(graph, **options) -> Artefact`` and ``emulator(artefact)``, and registers it with
:func:`register`. Target modules are imported lazily by :func:`get_target` so that ``import snn_deploy`` stays light.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from snn_deploy.errors import SnnDeployError


class UnknownTarget(SnnDeployError):
    """No target of that name is registered."""


@dataclass(frozen=True)
class Target:
    """A deployment target: what it is (data) and how to lower a graph to it (functions).

    Attributes:
        name: registry name (``xylo-audio2``).
        description: one line for ``snn-deploy targets``.
        limits: the hardware limits checked by mapping (name -> value), for reports and ``targets``.
        deploy: ``deploy(graph, out_dir, **options) -> dict`` writes the artefact directory atomically and returns
            the report.
        aliases: other names for the same target (``xylo`` for ``xylo-audio2``).
    """

    name: str
    description: str
    limits: dict[str, Any]
    deploy: Callable[..., dict]
    aliases: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)


_REGISTRY: dict[str, Target] = {}
#: modules that register targets when imported
_TARGET_MODULES: tuple[str, ...] = ("snn_deploy.backends.xylo", "snn_deploy.backends.loihi")


def register(target: Target) -> Target:
    """Add a target (and its aliases) to the registry."""
    for name in (target.name, *target.aliases):
        _REGISTRY[name] = target
    return target


def _load_all() -> None:
    for mod in _TARGET_MODULES:
        importlib.import_module(mod)


def available_targets() -> list[Target]:
    """Every registered target once (aliases folded), by name."""
    _load_all()
    unique = {t.name: t for t in _REGISTRY.values()}
    return [unique[k] for k in sorted(unique)]


def get_target(name: str) -> Target:
    """The target called ``name`` (or one of its aliases)."""
    _load_all()
    if name not in _REGISTRY:
        names = sorted(_REGISTRY) or ["(none registered yet)"]
        raise UnknownTarget(
            f"no target named {name!r}", param="--target", fix=f"choose one of {', '.join(names)}"
        )
    return _REGISTRY[name]
