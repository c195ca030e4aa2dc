"""Discretisation and reset conventions: the facts NIR does not store, made explicit.

A NIR graph is continuous-time. Running it needs three more choices, each with a recorded *source*:

- ``dt`` (seconds per step),
- ``method``: ``euler`` (forward Euler, as snnTorch, Rockpool and Lava export: ``v += dt/tau * (...)``) or ``exact``
  (exponential integration over each step with inputs held constant over the step),
- ``reset``: ``zero`` (reset to ``v_reset`` as NIR specifies, in the step that fires), ``subtract`` (``v -= v_threshold``
  in the step that fires, as Rockpool, Norse and Xylo do; the reduced value decays in the next step) or
  ``subtract-next`` (snnTorch's order: the threshold is subtracted, undecayed, from the *next* step's update:
  ``v[t] = beta v[t-1] + I[t] - theta s[t-1]``). ``--reset subtract`` on a graph that looks like an snnTorch export
  warns that ``subtract-next`` reproduces the training framework exactly.

Sources, in order of precedence: ``cli`` (the user said so), ``metadata`` (the graph says so: keys ``dt``,
``discretization``/``method`` and ``reset`` in the top-level metadata), ``inferred`` (recognised from the parameters,
with a warning), ``default`` (nothing said; a warning when the graph looks like it needs another value).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

METHODS = ("euler", "exact")
RESETS = ("zero", "subtract", "subtract-next")
SOURCES = ("cli", "metadata", "inferred", "default", "pass")


@dataclass(frozen=True)
class Setting:
    """One convention value and where it came from."""

    value: float | str | None
    source: str
    note: str = ""

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"unknown convention source {self.source!r}")


@dataclass(frozen=True)
class Conventions:
    """The conventions a graph is simulated and deployed under (see module docstring)."""

    dt: Setting = Setting(None, "default", "not set")
    method: Setting = Setting("euler", "default")
    reset: Setting = Setting("zero", "default")

    def to_dict(self) -> dict:
        """JSON-able form, as reports store it: ``{"dt": {"value":..., "source":..., "note":...}, ...}``."""
        return {k: asdict(v) for k, v in (("dt", self.dt), ("method", self.method), ("reset", self.reset))}

    @property
    def dt_value(self) -> float | None:
        return None if self.dt.value is None else float(self.dt.value)
