"""Integer network specification for the Xylo SNN core (the arguments of Rockpool's ``XyloSim.from_specification``).

:class:`XyloSpec` holds exactly the keyword arguments of ``XyloSim.from_specification`` (Rockpool 3.1.0, xylosim
0.1.3) plus the core ``version`` (``'v1'`` or ``'v2'``) and the chip ``variant`` whose limits apply. Defaults equal
``from_specification``'s: missing dashes, thresholds and biases are **0** (so a neuron with default threshold fires
the maximum every step, and ``dash_syn = 0`` discards all input), missing ``weights_rec`` are zeros.

Validation in ``__post_init__`` accepts what xylosim accepts, except where xylosim's behaviour is C++ undefined
behaviour: dashes and weight shifts must be 0..31 (xylosim accepts 0..255 and -128..127; a shift by >= 32 bits or
by a negative amount is UB). :meth:`XyloSpec.check_hardware` applies the stricter silicon limits of the variant.

Array conventions: ``weights_in`` (Nin, IEN, 2), ``weights_rec`` (Nh, Nh, 2) as ``[pre, post, synapse]``,
``weights_out`` (OEN, Nout) whose row k is driven by hidden neuron ``Nh - OEN + k``. 2-D ``weights_in`` and
``weights_rec`` are stored with a zero second synapse, as xylosim sees them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from snn_deploy.errors import DoesNotFit, InputError, SnnDeployError

__all__ = [
    "VARIANTS",
    "XyloHardwareLimitError",
    "XyloInputError",
    "XyloSpec",
    "XyloSpecError",
    "XyloVariant",
]

I16_MIN, I16_MAX = -32768, 32767
MAX_SHIFT = 31  # xylosim shifts by `int8 weight_shift`; shifts >= 32 or < 0 are C++ UB, so we reject them
MAX_DASH = 31  # decay() shifts an int by `int8 dash`; >= 32 is C++ UB (xylosim accepts up to 255)
# int32 headroom of the delivery sums: |n * w'| <= 31 * 2**15 per source, summed over Nin + Nh sources.
MAX_SOURCES = (2**31 - 1) // (31 * 2**15)


class XyloSpecError(SnnDeployError):
    """A Xylo specification field is malformed or outside the range xylosim can simulate."""


class XyloHardwareLimitError(DoesNotFit):
    """A Xylo specification is valid for xylosim but exceeds a limit of the chosen silicon variant."""


class XyloInputError(InputError):
    """Input counts for the Xylo emulator have the wrong dtype, shape or range."""


@dataclass(frozen=True)
class XyloVariant:
    """Static facts of one Xylo chip (xylo.md section 1).

    Attributes:
        name: Rockpool sub-package name (``syns61201`` ...).
        version: xylosim core (``'v1'`` or ``'v2'``).
        max_in, max_hidden, max_out: neuron counts.
        n_syn: synapses per hidden neuron on silicon.
        max_ien, max_oen: input/output expansion limits (``None``: all hidden neurons).
        has_bias: whether the core supports a membrane bias.
        records_isyn2: whether Rockpool's ``XyloSim`` wrapper returns the ``Isyn2`` record.
        max_fanout: documented per-hidden-neuron fan-out (``None`` when undocumented).
    """

    name: str
    version: str
    max_in: int
    max_hidden: int
    max_out: int
    n_syn: int
    max_ien: int | None
    max_oen: int | None
    has_bias: bool
    records_isyn2: bool
    max_fanout: int | None


VARIANTS: dict[str, XyloVariant] = {
    v.name: v
    for v in (
        XyloVariant("syns61300", "v1", 16, 1000, 8, 2, None, None, False, True, None),
        XyloVariant("syns61201", "v2", 16, 1000, 8, 2, None, None, True, True, 64),
        XyloVariant("syns63300", "v2", 16, 496, 16, 1, 128, 128, True, False, 512),
        XyloVariant("syns65302", "v2", 16, 992, 32, 2, 128, 128, True, False, 1024),
    )
}
_DEFAULT_VARIANT = {"v1": "syns61300", "v2": "syns61201"}

_ARRAY_FIELDS = (
    "weights_in",
    "weights_out",
    "weights_rec",
    "dash_mem",
    "dash_mem_out",
    "dash_syn",
    "dash_syn_2",
    "dash_syn_out",
    "threshold",
    "threshold_out",
    "bias",
    "bias_out",
)
_SCALAR_FIELDS = ("weight_shift_in", "weight_shift_rec", "weight_shift_out")


def _int_array(name: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise XyloSpecError(
            f"dtype {arr.dtype} is not an integer type (xylosim rejects non-integer parameters)",
            param=name,
            fix="quantise the parameter and pass an integer array",
        )
    return arr.astype(np.int64)


def _check_range(name: str, arr: np.ndarray, lo: int, hi: int, why: str) -> None:
    if arr.size and (arr.min() < lo or arr.max() > hi):
        bad = arr.min() if arr.min() < lo else arr.max()
        raise XyloSpecError(
            f"value {int(bad)} outside [{lo}, {hi}] ({why})",
            param=name,
            fix=f"clip or rescale into [{lo}, {hi}]",
        )


def _check_shape(name: str, arr: np.ndarray, shape: tuple[int, ...]) -> None:
    if arr.shape != shape:
        raise XyloSpecError(
            f"shape {arr.shape} != expected {shape}", param=name, fix=f"pass an array of {shape}"
        )


@dataclass(frozen=True, eq=False)
class XyloSpec:
    """An integer Xylo network, exactly as ``XyloSim.from_specification`` takes it (see the module docstring).

    Every ``None`` field is filled with ``from_specification``'s default in ``__post_init__``; afterwards all
    array fields are int64 numpy arrays, ``aliases`` is a tuple of tuples, and ``variant`` is resolved.
    """

    weights_in: np.ndarray
    weights_out: np.ndarray
    weights_rec: np.ndarray | None = None
    dash_mem: np.ndarray | None = None
    dash_mem_out: np.ndarray | None = None
    dash_syn: np.ndarray | None = None
    dash_syn_2: np.ndarray | None = None
    dash_syn_out: np.ndarray | None = None
    threshold: np.ndarray | None = None
    threshold_out: np.ndarray | None = None
    bias: np.ndarray | None = None
    bias_out: np.ndarray | None = None
    weight_shift_in: int = 0
    weight_shift_rec: int = 0
    weight_shift_out: int = 0
    aliases: Any = None
    version: str = "v2"
    variant: str | None = None

    # --- construction and validation -------------------------------------------------------------------------

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.version not in ("v1", "v2"):
            raise XyloSpecError(
                f"unknown core version {self.version!r}", param="version", fix="use 'v1' or 'v2'"
            )
        variant = self.variant if self.variant is not None else _DEFAULT_VARIANT[self.version]
        if variant not in VARIANTS:
            raise XyloSpecError(
                f"unknown variant {variant!r}", param="variant", fix=f"use one of {sorted(VARIANTS)}"
            )
        if VARIANTS[variant].version != self.version:
            raise XyloSpecError(
                f"variant {variant} uses core {VARIANTS[variant].version}, not {self.version}",
                param="version",
                fix=f"pass version={VARIANTS[variant].version!r}",
            )
        set_(self, "variant", variant)

        w_in = _int_array("weights_in", self.weights_in)
        w_out = _int_array("weights_out", self.weights_out)
        if w_in.ndim == 2:
            w_in = w_in[:, :, None]
        if w_in.ndim != 3 or w_in.shape[2] not in (1, 2):
            raise XyloSpecError(f"shape {w_in.shape} is not (Nin, IEN[, 1|2])", param="weights_in")
        if w_out.ndim != 2:
            raise XyloSpecError(f"shape {w_out.shape} is not (OEN, Nout)", param="weights_out")
        n_in, ien = w_in.shape[:2]
        oen, n_out = w_out.shape
        if self.weights_rec is None:
            n_h = ien  # from_specification: RSN = IEN when weights_rec is None
            w_rec = np.zeros((n_h, n_h, 2), np.int64)
        else:
            w_rec = _int_array("weights_rec", self.weights_rec)
            if w_rec.ndim == 2:
                w_rec = w_rec[:, :, None]
            if w_rec.ndim != 3 or w_rec.shape[0] != w_rec.shape[1] or w_rec.shape[2] not in (1, 2):
                raise XyloSpecError(f"shape {w_rec.shape} is not (Nh, Nh[, 1|2])", param="weights_rec")
            n_h = w_rec.shape[0]
        # xylosim only reads the second synapse plane when the last axis has length 2; pad with zeros.
        w_in = np.concatenate([w_in, np.zeros_like(w_in)], axis=2)[:, :, :2] if w_in.shape[2] == 1 else w_in
        w_rec = (
            np.concatenate([w_rec, np.zeros_like(w_rec)], axis=2)[:, :, :2] if w_rec.shape[2] == 1 else w_rec
        )
        if min(n_in, n_h, n_out) < 1:
            raise XyloSpecError(f"empty network (Nin={n_in}, Nh={n_h}, Nout={n_out})", param="weights_in")
        if ien > n_h:
            raise XyloSpecError(
                f"IEN {ien} > Nh {n_h}", param="weights_in", fix="weights_in has one column per IEN"
            )
        if oen > n_h:
            raise XyloSpecError(
                f"OEN {oen} > Nh {n_h}", param="weights_out", fix="weights_out has one row per OEN"
            )
        if n_in + n_h > MAX_SOURCES:
            raise XyloSpecError(
                f"Nin + Nh = {n_in + n_h} > {MAX_SOURCES} (int32 headroom of the emulator's delivery sums)",
                param="weights_rec",
            )
        for name, arr in (("weights_in", w_in), ("weights_rec", w_rec), ("weights_out", w_out)):
            _check_range(name, arr, -128, 127, "xylosim stores weights as int8")
        set_(self, "weights_in", w_in)
        set_(self, "weights_rec", w_rec)
        set_(self, "weights_out", w_out)

        vectors = {
            "dash_mem": (n_h, 0, MAX_DASH, "dash"),
            "dash_syn": (n_h, 0, MAX_DASH, "dash"),
            "dash_syn_2": (n_h, 0, MAX_DASH, "dash"),
            "dash_mem_out": (n_out, 0, MAX_DASH, "dash"),
            "dash_syn_out": (n_out, 0, MAX_DASH, "dash"),
            "threshold": (n_h, I16_MIN, I16_MAX, "int16"),
            "threshold_out": (n_out, I16_MIN, I16_MAX, "int16"),
            "bias": (n_h, I16_MIN, I16_MAX, "int16"),
            "bias_out": (n_out, I16_MIN, I16_MAX, "int16"),
        }
        for name, (n, lo, hi, kind) in vectors.items():
            value = getattr(self, name)
            arr = np.zeros(n, np.int64) if value is None else _int_array(name, value).reshape(-1)
            _check_shape(name, arr, (n,))
            why = (
                "shifts >= 32 are C++ undefined behaviour in xylosim's decay()"
                if kind == "dash"
                else "xylosim stores it as int16"
            )
            _check_range(name, arr, lo, hi, why)
            set_(self, name, arr)
        if self.version == "v1" and (self.bias.any() or self.bias_out.any()):
            raise XyloSpecError(
                "core v1 has no membrane bias", param="bias", fix="zero bias/bias_out or use version='v2'"
            )

        for name in _SCALAR_FIELDS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise XyloSpecError(f"{value!r} is not an int", param=name)
            if not 0 <= int(value) <= MAX_SHIFT:
                raise XyloSpecError(
                    f"value {int(value)} outside [0, {MAX_SHIFT}] (xylosim's `w << shift` is C++ UB beyond)",
                    param=name,
                    fix="use 0..7 (the hardware range)",
                )
            set_(self, name, int(value))

        aliases = [[] for _ in range(n_h)] if self.aliases is None else self.aliases
        if len(aliases) != n_h:
            raise XyloSpecError(f"{len(aliases)} lists for {n_h} hidden neurons", param="aliases")
        norm = []
        for src, targets in enumerate(aliases):
            targets = tuple(int(a) for a in np.asarray(targets, dtype=np.int64).reshape(-1))
            for a in targets:
                if not 0 <= a < n_h:
                    raise XyloSpecError(
                        f"neuron {src} aliases to {a}, outside 0..{n_h - 1}",
                        param="aliases",
                        fix="alias targets are hidden-neuron indices",
                    )
            norm.append(targets)
        set_(self, "aliases", tuple(norm))
        for name in _ARRAY_FIELDS:
            getattr(self, name).setflags(write=False)

    # --- derived facts ----------------------------------------------------------------------------------------

    @property
    def n_in(self) -> int:
        """Number of input channels (rows of ``weights_in``)."""
        return int(self.weights_in.shape[0])

    @property
    def n_hidden(self) -> int:
        """Number of hidden neurons Nh."""
        return int(self.weights_rec.shape[0])

    @property
    def n_out(self) -> int:
        """Number of output neurons."""
        return int(self.weights_out.shape[1])

    @property
    def ien(self) -> int:
        """Input expansion: hidden neurons 0..IEN-1 receive input weights."""
        return int(self.weights_in.shape[1])

    @property
    def oen(self) -> int:
        """Output expansion: hidden neurons Nh-OEN..Nh-1 drive the readout."""
        return int(self.weights_out.shape[0])

    @property
    def has_bias(self) -> bool:
        """xylosim's global ``has_bias`` flag: any hidden or output bias is non-zero."""
        return bool(self.bias.any() or self.bias_out.any())

    @property
    def variant_info(self) -> XyloVariant:
        """The :class:`XyloVariant` whose limits apply."""
        return VARIANTS[self.variant]

    def from_specification_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for Rockpool's ``XyloSim.from_specification`` (copies; aliases as lists)."""
        kw: dict[str, Any] = {name: np.array(getattr(self, name)) for name in _ARRAY_FIELDS}
        kw.update({name: getattr(self, name) for name in _SCALAR_FIELDS})
        kw["aliases"] = [list(a) for a in self.aliases]
        return kw

    # --- hardware limits --------------------------------------------------------------------------------------

    def hardware_violations(self) -> list[str]:
        """Every silicon limit of ``variant`` this spec breaks (xylo.md section 1), as readable strings."""
        v = self.variant_info
        out = []

        def lim(what: str, got: int, most: int | None) -> None:
            if most is not None and got > most:
                out.append(f"{what}: {got} > {most} on {v.name}")

        lim("inputs", self.n_in, v.max_in)
        lim("hidden neurons", self.n_hidden, v.max_hidden)
        lim("output neurons", self.n_out, v.max_out)
        lim("input expansion neurons (IEN)", self.ien, v.max_ien)
        lim("output expansion neurons (OEN)", self.oen, v.max_oen)
        for name in ("weight_shift_in", "weight_shift_rec", "weight_shift_out"):
            lim(name, getattr(self, name), 7)
        for name in ("dash_mem", "dash_syn", "dash_syn_2", "dash_mem_out", "dash_syn_out"):
            lim(f"max {name}", int(getattr(self, name).max()), 15)
        if v.n_syn == 1 and (self.weights_in[:, :, 1].any() or self.weights_rec[:, :, 1].any()):
            out.append(f"synapses per hidden neuron: 2 > 1 on {v.name} (second-synapse weights are non-zero)")
        if not v.has_bias and self.has_bias:
            out.append(f"bias: {v.name} has no bias")
        lim("max aliases per neuron", max((len(a) for a in self.aliases), default=0), 1)
        if v.max_fanout is not None:
            fanout_out = np.count_nonzero(self.weights_out, axis=1)
            fanout_all = np.count_nonzero(self.weights_rec, axis=(1, 2))
            fanout_all[self.n_hidden - self.oen :] += fanout_out
            fanout = int(fanout_all.max(initial=0))
            lim("max fan-out per hidden neuron", fanout, v.max_fanout)
        return out

    def check_hardware(self) -> None:
        """Raise :class:`XyloHardwareLimitError` naming every violated silicon limit (no-op when it fits)."""
        bad = self.hardware_violations()
        if bad:
            raise XyloHardwareLimitError(
                "; ".join(bad), param="variant", fix="shrink or requantise the network"
            )

    # --- files ------------------------------------------------------------------------------------------------

    def to_npz(self, path: str | os.PathLike) -> None:
        """Write the spec to ``path`` (``.npz``) atomically (temp file + ``os.replace``), deterministically.

        Arrays are stored under their field names; shifts as 0-d int arrays; ``version``/``variant`` as 0-d
        unicode arrays; ``aliases`` in CSR form (``alias_ptr``, ``alias_idx``) so that no pickling is needed.
        """
        path = Path(path)
        data: dict[str, np.ndarray] = {name: np.asarray(getattr(self, name)) for name in _ARRAY_FIELDS}
        data.update({name: np.asarray(getattr(self, name), np.int64) for name in _SCALAR_FIELDS})
        data["version"] = np.asarray(self.version)
        data["variant"] = np.asarray(self.variant)
        data["alias_ptr"] = np.cumsum([0] + [len(a) for a in self.aliases]).astype(np.int64)
        data["alias_idx"] = np.asarray([t for a in self.aliases for t in a], np.int64)
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez_compressed(fh, **data)
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)  # mkstemp creates 0600; give the file the usual permissions
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def from_npz(cls, path: str | os.PathLike) -> XyloSpec:
        """Read a spec written by :meth:`to_npz` (validated again on construction)."""
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in (*_ARRAY_FIELDS, *_SCALAR_FIELDS, "alias_ptr", "alias_idx") if k not in z]
            if missing:
                raise XyloSpecError(
                    f"{path}: missing arrays {missing}", param="npz", fix="write it with to_npz"
                )
            kw: dict[str, Any] = {name: z[name] for name in _ARRAY_FIELDS}
            kw.update({name: int(z[name]) for name in _SCALAR_FIELDS})
            ptr, idx = z["alias_ptr"], z["alias_idx"]
            kw["aliases"] = [idx[ptr[i] : ptr[i + 1]].tolist() for i in range(len(ptr) - 1)]
            kw["version"] = str(z["version"]) if "version" in z else "v2"
            kw["variant"] = str(z["variant"]) if "variant" in z else None
        return cls(**kw)

    def __repr__(self) -> str:
        return (
            f"XyloSpec({self.variant}/{self.version}: Nin={self.n_in}, Nh={self.n_hidden}, Nout={self.n_out}, "
            f"IEN={self.ien}, OEN={self.oen}, shifts=({self.weight_shift_in}, {self.weight_shift_rec}, "
            f"{self.weight_shift_out}), bias={self.has_bias}, aliases={sum(map(len, self.aliases))})"
        )
