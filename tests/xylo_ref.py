"""Reference Xylo simulators for tests: Rockpool 3.1.0's ``XyloSim`` (xylosim 0.1.3), without samna.

``import rockpool.devices.xylo`` fails without the closed-source samna (``syns65302/__init__`` star-imports
``afe_samna_pdm``, which imports samna). The workaround (xylo.md section 5.1): before any Rockpool Xylo import,
register bare module objects for ``rockpool.devices.xylo`` and ``rockpool.devices.xylo.syns65302`` whose
``__path__`` is the real package directory, then import the sub-packages, whose ``__init__``\\ s guard samna.

Core v1 (``syns61300``): Rockpool's ``from_specification`` is broken without samna, so :class:`V1Reference` builds
``xylosim.v1.XyloLayer`` directly, mirroring Rockpool's synapse ordering and record conventions, and keeps the
``XyloSynapse`` objects alive (the C++ layer stores raw pointers to them).

Use :func:`require_reference` in tests: it calls ``pytest.skip`` with the reason when rockpool/xylosim are absent.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

import numpy as np


def reference_available() -> tuple[bool, str]:
    """(True, '') when rockpool's XyloSim classes and xylosim are importable, else (False, reason)."""
    for pkg in ("xylosim", "rockpool"):
        if importlib.util.find_spec(pkg) is None:
            return False, f"{pkg} is not installed (pip install 'snn-deploy[xylo]')"
    try:
        xylosim_classes()
    except Exception as exc:  # an incompatible Rockpool version: report why
        return False, f"cannot import Rockpool's XyloSim without samna: {exc!r}"
    return True, ""


def require_reference() -> None:
    """Skip the calling test when the reference simulators are unavailable."""
    import pytest

    ok, why = reference_available()
    if not ok:
        pytest.skip(why)


def xylosim_classes() -> dict[str, Any]:
    """Rockpool's XyloSim class per variant, imported without samna (the workaround lives in snn_deploy.hil)."""
    from snn_deploy.hil import rockpool_xylo_classes

    return rockpool_xylo_classes()


class V1Reference:
    """``xylosim.v1.XyloLayer`` with Rockpool's ``XyloSim`` interface: ``evolve(inp, record) -> (out, {}, rec)``."""

    def __init__(self, spec: Any, output_mode: str = "Spike") -> None:
        from xylosim.v1 import XyloLayer, XyloSynapse

        def lists(w: np.ndarray) -> list[list[Any]]:
            # Rockpool's order: per pre, syn-0 targets ascending, then syn-1 targets; zero weights skipped.
            out = []
            for pre in range(w.shape[0]):
                row = [XyloSynapse(int(q), 0, int(w[pre, q, 0])) for q in np.flatnonzero(w[pre, :, 0])]
                row += [XyloSynapse(int(q), 1, int(w[pre, q, 1])) for q in np.flatnonzero(w[pre, :, 1])]
                out.append(row)
            return out

        nh, oen = spec.n_hidden, spec.oen
        self._syn_in = lists(spec.weights_in)
        self._syn_rec = lists(spec.weights_rec)
        self._syn_out = [[] for _ in range(nh - oen)]
        self._syn_out += [
            [XyloSynapse(int(k), 0, int(row[k])) for k in np.flatnonzero(row)] for row in spec.weights_out
        ]
        self.output_mode = output_mode
        self._layer = XyloLayer(
            synapses_in=self._syn_in,
            synapses_rec=self._syn_rec,
            synapses_out=self._syn_out,
            aliases=[list(a) for a in spec.aliases],
            threshold=spec.threshold.tolist(),
            threshold_out=spec.threshold_out.tolist(),
            weight_shift_inp=spec.weight_shift_in,
            weight_shift_rec=spec.weight_shift_rec,
            weight_shift_out=spec.weight_shift_out,
            dash_mem=spec.dash_mem.tolist(),
            dash_mem_out=spec.dash_mem_out.tolist(),
            dash_syns=[[int(a), int(b)] for a, b in zip(spec.dash_syn, spec.dash_syn_2, strict=True)],
            dash_syns_out=[[int(d)] for d in spec.dash_syn_out],
            name="v1_reference",
        )

    def evolve(self, input_raster: np.ndarray, record: bool = False) -> tuple[np.ndarray, dict, dict]:
        """Same conventions as ``rockpool.devices.xylo.syns61300.XyloSim.evolve``."""
        lay = self._layer
        spikes = np.array(lay.evolve(np.asarray(input_raster).astype(int).tolist()))
        out = {
            "Spike": spikes,
            "Vmem": np.array(lay.rec_v_mem_out).T,
            "Isyn": np.array(lay.rec_i_syn_out).T,
        }[self.output_mode]
        rec = {}
        if record:
            rec = {
                "Vmem": np.array(lay.rec_v_mem).T,
                "Isyn": np.array(lay.rec_i_syn).T,
                "Isyn2": np.array(lay.rec_i_syn2).T,
                "Spikes": np.array(lay.rec_recurrent_spikes),
                "Vmem_out": np.array(lay.rec_v_mem_out).T,
                "Isyn_out": np.array(lay.rec_i_syn_out).T,
            }
        return out, {}, rec

    def reset_state(self) -> V1Reference:
        self._layer.reset_all()
        return self


def make_reference(spec: Any, output_mode: str = "Spike") -> Any:
    """The vendor reference simulator for ``spec`` (an :class:`snn_deploy.sim.xylo.XyloSpec`)."""
    if spec.version == "v1":
        return V1Reference(spec, output_mode)
    cls = xylosim_classes()[spec.variant]
    return cls.from_specification(**spec.from_specification_kwargs(), output_mode=output_mode)
