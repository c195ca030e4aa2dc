"""One small frozen dataclass per NIR primitive (the node vocabulary of the Graph IR).

Conventions, shared with NIR 1.0:
- Shapes exclude the batch and time axes. Dense weights are ``(out, in)``; convolution weights ``(C_out, C_in, *K)``.
- Neuron parameters are continuous-time: time constants in seconds, ``tau * dv/dt = (v_leak - v) + r * I`` for LIF,
  ``tau_syn * dI/dt = -I + w_in * x`` for the synaptic current of CubaLIF/CubaLI. ``dt``, the discretisation method
  and the reset convention are not part of a node: they live in :class:`snn_deploy.conventions.Conventions`.
- ``input_shape``/``output_shape`` are filled in by the graph's shape inference; nodes are built without them.

Arrays are stored as read-only numpy float64 (parameters) so that a node cannot be changed in place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

Shape = tuple[int, ...]


def frozen_array(x: Any, dtype: Any = np.float64) -> np.ndarray:
    """A read-only copy of ``x`` (so a frozen node is really immutable)."""
    a = np.array(x, dtype=dtype, copy=True)
    a.setflags(write=False)
    return a


def as_shape(x: Any) -> Shape:
    """A shape as a tuple of Python ints (accepts numpy arrays, lists, scalars)."""
    return tuple(int(v) for v in np.atleast_1d(np.asarray(x)).ravel())


@dataclass(frozen=True, eq=False)
class Node:
    """Base of all IR nodes.

    Attributes:
        name: the node's (flattened, dotted) name in the graph.
        input_shape/output_shape: filled by shape inference; None before.
        metadata: the NIR node's metadata, passed through.
    """

    name: str
    input_shape: Shape | None = field(default=None, kw_only=True)
    output_shape: Shape | None = field(default=None, kw_only=True)
    metadata: dict = field(default_factory=dict, kw_only=True, repr=False)

    #: names of array parameters, in NIR's spelling (used for I/O, validation, reports)
    array_params: ClassVar[tuple[str, ...]] = ()
    #: parameters that are time constants (seconds, must be finite and > 0)
    time_constants: ClassVar[tuple[str, ...]] = ()
    #: True for stateful spiking or integrating neuron nodes
    is_neuron: ClassVar[bool] = False
    #: True for neuron nodes that emit spikes (threshold + reset)
    spiking: ClassVar[bool] = False

    def __post_init__(self) -> None:
        # Store every array parameter as a read-only float64 copy: nodes are values, never edited in place.
        for p in self.array_params:
            v = getattr(self, p)
            if v is not None and not (
                isinstance(v, np.ndarray) and v.dtype == np.float64 and not v.flags.writeable
            ):
                object.__setattr__(self, p, frozen_array(v))

    @property
    def type_name(self) -> str:
        """The NIR type name of this node (``LIF``, ``Affine``, ...)."""
        return type(self).__name__

    def params(self) -> dict[str, np.ndarray]:
        """The node's array parameters by name."""
        return {p: getattr(self, p) for p in self.array_params}

    def replace(self, **changes: Any) -> Node:
        """A copy with some fields changed (nodes are immutable)."""
        return dataclasses.replace(self, **changes)

    def own_output_shape(self, input_shape: Shape | None) -> Shape | None:
        """Output shape implied by the node's parameters (and its input shape), or None if it just passes it on."""
        return input_shape

    def own_input_shape(self) -> Shape | None:
        """Input shape implied by the node's parameters, or None when it takes any shape."""
        return None


# --- boundary -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Input(Node):
    """Graph input; ``shape`` excludes batch and time."""

    shape: Shape = ()

    def own_output_shape(self, input_shape: Shape | None) -> Shape:
        return self.shape

    def own_input_shape(self) -> Shape:
        return self.shape


@dataclass(frozen=True, eq=False)
class Output(Node):
    """Graph output; ``shape`` as declared in the file (None: take the shape of what feeds it)."""

    shape: Shape | None = ()

    def own_input_shape(self) -> Shape | None:
        return self.shape

    def own_output_shape(self, input_shape: Shape | None) -> Shape | None:
        return self.shape if self.shape is not None else input_shape


# --- synapses -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Linear(Node):
    """``y = W x``; weight shape ``(out, in)``."""

    weight: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("weight",)

    def own_input_shape(self) -> Shape:
        return (int(self.weight.shape[1]),)

    def own_output_shape(self, input_shape: Shape | None) -> Shape:
        return (int(self.weight.shape[0]),)


@dataclass(frozen=True, eq=False)
class Affine(Linear):
    """``y = W x + b``; weight ``(out, in)``, bias ``(out,)``."""

    bias: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("weight", "bias")


@dataclass(frozen=True, eq=False)
class Conv1d(Node):
    """1-d convolution over ``(C_in, N)``; weight ``(C_out, C_in, K)``; integer stride/padding/dilation/groups."""

    weight: np.ndarray = None  # type: ignore[assignment]
    bias: np.ndarray = None  # type: ignore[assignment]
    stride: Shape = (1,)
    padding: Shape = (0,)
    dilation: Shape = (1,)
    groups: int = 1
    spatial_shape: Shape | None = None
    array_params: ClassVar[tuple[str, ...]] = ("weight", "bias")

    def own_input_shape(self) -> Shape | None:
        if self.spatial_shape is None:
            return None
        return (int(self.weight.shape[1]) * self.groups, *self.spatial_shape)

    def own_output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is None:
            return None
        spatial = []
        kernel = self.weight.shape[2:]
        for i, n in enumerate(input_shape[1:]):
            k, s, p, d = kernel[i], self.stride[i], self.padding[i], self.dilation[i]
            spatial.append((n + 2 * p - d * (k - 1) - 1) // s + 1)
        return (int(self.weight.shape[0]), *spatial)


@dataclass(frozen=True, eq=False)
class Conv2d(Conv1d):
    """2-d convolution over ``(C_in, H, W)``; weight ``(C_out, C_in, KH, KW)``."""

    stride: Shape = (1, 1)
    padding: Shape = (0, 0)
    dilation: Shape = (1, 1)


@dataclass(frozen=True, eq=False)
class Flatten(Node):
    """Flatten dims ``start_dim..end_dim`` of the (batch-free) input shape, as NIR 1.0 defines it."""

    start_dim: int = 0
    end_dim: int = -1

    def own_output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is None:
            return None
        n = len(input_shape)
        start, end = self.start_dim % n, self.end_dim % n
        merged = int(np.prod(input_shape[start : end + 1]))
        return (*input_shape[:start], merged, *input_shape[end + 1 :])


@dataclass(frozen=True, eq=False)
class SumPool2d(Node):
    """Sum pooling over ``(C, H, W)``; kernel/stride/padding are (H, W) pairs."""

    kernel_size: Shape = (1, 1)
    stride: Shape = (1, 1)
    padding: Shape = (0, 0)

    def own_output_shape(self, input_shape: Shape | None) -> Shape | None:
        if input_shape is None:
            return None
        c, *spatial = input_shape
        out = [
            (n + 2 * p - k) // s + 1
            for n, k, s, p in zip(spatial, self.kernel_size, self.stride, self.padding, strict=True)
        ]
        return (c, *out)


@dataclass(frozen=True, eq=False)
class AvgPool2d(SumPool2d):
    """Average pooling over ``(C, H, W)``."""


@dataclass(frozen=True, eq=False)
class Scale(Node):
    """Element-wise ``y = scale * x``."""

    scale: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("scale",)

    def own_input_shape(self) -> Shape:
        return tuple(self.scale.shape)


@dataclass(frozen=True, eq=False)
class Delay(Node):
    """Element-wise delay ``y(t) = x(t - delay)``; ``delay`` in seconds."""

    delay: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("delay",)

    def own_input_shape(self) -> Shape:
        return tuple(self.delay.shape)


@dataclass(frozen=True, eq=False)
class Threshold(Node):
    """Element-wise Heaviside ``y = H(x - threshold)``."""

    threshold: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("threshold",)

    def own_input_shape(self) -> Shape:
        return tuple(self.threshold.shape)


# --- neurons ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NeuronNode(Node):
    """Common base of neuron nodes; the neuron array's shape is the shape of its parameters."""

    is_neuron: ClassVar[bool] = True

    def own_input_shape(self) -> Shape:
        return tuple(getattr(self, self.array_params[0]).shape)


@dataclass(frozen=True, eq=False)
class Integrator(NeuronNode):
    """NIR ``I``: ``dv/dt = r * x`` (no leak, no spikes)."""

    r: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("r",)


@dataclass(frozen=True, eq=False)
class IF(NeuronNode):
    """Integrate-and-fire: ``dv/dt = r * x``; spike when ``v > v_threshold``, then reset."""

    r: np.ndarray = None  # type: ignore[assignment]
    v_threshold: np.ndarray = None  # type: ignore[assignment]
    v_reset: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("r", "v_threshold", "v_reset")
    spiking: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class LI(NeuronNode):
    """Leaky integrator: ``tau dv/dt = (v_leak - v) + r x`` (no spikes)."""

    tau: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = None  # type: ignore[assignment]
    v_leak: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("tau", "r", "v_leak")
    time_constants: ClassVar[tuple[str, ...]] = ("tau",)


@dataclass(frozen=True, eq=False)
class LIF(NeuronNode):
    """Leaky integrate-and-fire: ``tau dv/dt = (v_leak - v) + r x``; spike when ``v > v_threshold``."""

    tau: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = None  # type: ignore[assignment]
    v_leak: np.ndarray = None  # type: ignore[assignment]
    v_threshold: np.ndarray = None  # type: ignore[assignment]
    v_reset: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("tau", "r", "v_leak", "v_threshold", "v_reset")
    time_constants: ClassVar[tuple[str, ...]] = ("tau",)
    spiking: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class CubaLI(NeuronNode):
    """Current-based leaky integrator: ``tau_syn dI/dt = -I + w_in x``, ``tau_mem dv/dt = (v_leak - v) + r I``."""

    tau_mem: np.ndarray = None  # type: ignore[assignment]
    tau_syn: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = None  # type: ignore[assignment]
    v_leak: np.ndarray = None  # type: ignore[assignment]
    w_in: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = ("tau_mem", "tau_syn", "r", "v_leak", "w_in")
    time_constants: ClassVar[tuple[str, ...]] = ("tau_mem", "tau_syn")


@dataclass(frozen=True, eq=False)
class CubaLIF(NeuronNode):
    """Current-based LIF: CubaLI dynamics plus threshold ``v > v_threshold`` and reset."""

    tau_mem: np.ndarray = None  # type: ignore[assignment]
    tau_syn: np.ndarray = None  # type: ignore[assignment]
    r: np.ndarray = None  # type: ignore[assignment]
    v_leak: np.ndarray = None  # type: ignore[assignment]
    v_threshold: np.ndarray = None  # type: ignore[assignment]
    v_reset: np.ndarray = None  # type: ignore[assignment]
    w_in: np.ndarray = None  # type: ignore[assignment]
    array_params: ClassVar[tuple[str, ...]] = (
        "tau_mem",
        "tau_syn",
        "r",
        "v_leak",
        "v_threshold",
        "v_reset",
        "w_in",
    )
    time_constants: ClassVar[tuple[str, ...]] = ("tau_mem", "tau_syn")
    spiking: ClassVar[bool] = True


@dataclass(frozen=True, eq=False)
class Subgraph(Node):
    """A nested NIR graph before flattening; only ever present between loading and the ``flatten`` pass."""

    nodes: tuple[Node, ...] = ()
    edges: tuple[tuple[str, str], ...] = ()


#: NIR type name -> IR class, for every NIR 1.0 primitive (NIR calls the integrator ``I``)
NODE_TYPES: dict[str, type[Node]] = {
    "Input": Input,
    "Output": Output,
    "Linear": Linear,
    "Affine": Affine,
    "Conv1d": Conv1d,
    "Conv2d": Conv2d,
    "Flatten": Flatten,
    "SumPool2d": SumPool2d,
    "AvgPool2d": AvgPool2d,
    "Scale": Scale,
    "Delay": Delay,
    "Threshold": Threshold,
    "I": Integrator,
    "IF": IF,
    "LI": LI,
    "LIF": LIF,
    "CubaLI": CubaLI,
    "CubaLIF": CubaLIF,
}

NIR_NAME: dict[type[Node], str] = {cls: name for name, cls in NODE_TYPES.items()}
