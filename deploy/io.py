"""Reading and writing NIR files.

:func:`load` first asks ``nir.read`` to load the file strictly (type checking on). When that fails, it reads the
HDF5 tree itself and repairs what older exporters write, with one warning per repair that names it:

- an Output (or Input) whose declared shape differs from the shape that reaches it only by singleton axes
  (Rockpool's old export declares ``[1, 1, 1]`` after a ``[1]`` LIF);
- nested subgraphs whose edges use dotted names (``lif1.lif``, as snnTorch writes them), which nir 1.0.8 rejects.

Either way the result is converted by one converter into this project's :class:`Graph` and flattened.
:func:`save` writes a graph that ``nir.read`` accepts strictly; the conventions are stored in the graph metadata
(``dt``, ``method``, ``reset``) so that a saved graph reloads with the same conventions.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .errors import (
    CorruptFile,
    ModelNotFound,
    NotHDF5,
    NotNIR,
    ShapeMismatch,
    SnnDeployError,
    UnsupportedNode,
)
from .graph import Graph, PassRecord
from .nodes import NODE_TYPES, Input, Node, Output, Subgraph, as_shape, frozen_array


class RepairWarning(UserWarning):
    """A file was loaded leniently and something in it was repaired."""


def load(path: str | os.PathLike, **conventions: Any) -> Graph:
    """Load a NIR file into a flat, verified :class:`Graph`.

    Args:
        path: the ``.nir`` (HDF5) file.
        **conventions: optional ``dt``, ``method``, ``reset`` overrides (as from the command line); they are
            resolved with :func:`snn_deploy.infer.resolve_conventions` (metadata, inference, defaults).

    Raises:
        ModelNotFound, NotHDF5, CorruptFile, NotNIR: the file cannot be read as NIR.
        UnsupportedNode, ShapeMismatch, MissingNode, InvalidParameter, GraphError: the graph is invalid.
    """
    from .infer import resolve_conventions
    from .passes.structure import flatten

    path = Path(path)
    try:
        raw, strict_error = _read_raw(path)
        graph, repairs = _to_graph(raw, lenient=strict_error is not None)
        notes: list[str] = []
        if strict_error is not None:
            notes.append(
                f"nir.read rejected {path.name} ({strict_error}); loaded leniently"
                + (": " + "; ".join(repairs) if repairs else "")
            )
        for note in notes:
            warnings.warn(note, RepairWarning, stacklevel=2)
        record = PassRecord("load", {"path": str(path), "strict": strict_error is None}, tuple(notes))
        graph = Graph.build(
            graph.nodes,
            graph.edges,
            metadata=graph.metadata,
            history=(record,),
            warnings=notes,
        )
        graph = flatten(graph)
        return resolve_conventions(graph, source_name=path.name, **conventions)
    except SnnDeployError as err:
        raise err.with_file(str(path)) from None


def save(graph: Graph, path: str | os.PathLike) -> Path:
    """Write ``graph`` as a NIR file that ``nir.read`` accepts strictly (atomically: temp file + rename)."""
    import nir

    path = Path(path)
    metadata = dict(graph.metadata)
    for key in ("dt", "method", "reset"):
        setting = getattr(graph.conventions, key)
        if setting.value is not None:
            metadata[key] = setting.value
    nir_nodes = {n.name: _to_nir(n) for n in graph.nodes}
    nir_graph = nir.NIRGraph(nodes=nir_nodes, edges=[list(e) for e in graph.edges], metadata=metadata)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        nir.write(tmp, nir_graph)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is an ordinary, shareable file
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# ---------------------------------------------------------------------- reading


def _read_raw(path: Path) -> tuple[dict, str | None]:
    """The file's node tree as a dict, and nir.read's complaint (None when strict loading worked)."""
    import nir
    from nir.serialization import hdf2dict

    if not path.exists():
        raise ModelNotFound("no such file", fix="check the path")
    if not path.is_file():
        raise ModelNotFound("not a file (a directory?)", fix="give the path of a .nir file")
    if not h5py.is_hdf5(path):
        raise NotHDF5("not an HDF5 file, so not a NIR file", fix="export the model with nir.write")
    try:
        with h5py.File(path, "r") as f:
            if "node" not in f or not isinstance(f["node"], h5py.Group) or "type" not in f["node"]:
                raise NotNIR(
                    "HDF5 file without a NIR graph (no top-level 'node' group with a 'type')",
                    fix="export the model with nir.write",
                )
            raw = hdf2dict(f["node"])
    except SnnDeployError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as err:
        raise CorruptFile(
            f"HDF5 file is truncated or damaged ({_first_line(err)})", fix="re-export or re-copy the file"
        ) from None
    if _type(raw) != "NIRGraph":
        raise NotNIR(f"top-level node is a {_type(raw)!r}, not a NIRGraph")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nir.read(path)
        return raw, None
    except Exception as err:  # noqa: BLE001 -- any rejection by nir means: go lenient, and say why
        return raw, _first_line(err)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return (text[0] if text else type(err).__name__)[:200]


def _type(raw: dict) -> str:
    t = raw.get("type")
    return t.decode() if isinstance(t, bytes) else str(t)


def _to_graph(raw: dict, *, lenient: bool) -> tuple[Graph, list[str]]:
    """Convert a NIRGraph dict into an unflattened Graph (may hold Subgraph nodes); returns repairs made."""
    repairs: list[str] = []
    nodes = [_to_node(name, sub, lenient, repairs) for name, sub in sorted(raw.get("nodes", {}).items())]
    edges = _edges(raw)
    metadata = _plain(raw.get("metadata", {}))
    if not lenient or any(isinstance(n, Subgraph) for n in nodes):
        return Graph.build(nodes, edges, metadata=metadata), repairs
    # Lenient: let every Output take the shape that reaches it, then compare with what it declared.
    declared = {n.name: n.shape for n in nodes if isinstance(n, Output)}
    relaxed = [n.replace(shape=None) if isinstance(n, Output) else n for n in nodes]
    return _repair_boundary_shapes(Graph.build(relaxed, edges, metadata=metadata), declared, repairs), repairs


def _edges(raw: dict) -> list[tuple[str, str]]:
    edges = raw.get("edges", [])
    out = []
    for e in np.asarray(edges).reshape(-1, 2) if len(edges) else []:
        a, b = (x.decode() if isinstance(x, bytes) else str(x) for x in e)
        out.append((a, b))
    return out


def _plain(meta: Any) -> dict:
    if not isinstance(meta, dict):
        return {}
    out = {}
    for k, v in meta.items():
        v = v.decode() if isinstance(v, bytes) else v
        if isinstance(v, np.ndarray) and v.ndim == 0:
            v = v.item()
        if isinstance(v, np.generic):
            v = v.item()
        out[str(k)] = v
    return out


def _to_node(name: str, raw: dict, lenient: bool, repairs: list[str]) -> Node:
    kind = _type(raw)
    meta = _plain(raw.get("metadata", {}))
    if kind == "NIRGraph":
        inner, _ = _to_graph(raw, lenient=lenient)
        repairs.append(f"inlined nested subgraph '{name}' (its nodes are named '{name}.<node>')")
        return Subgraph(name, nodes=inner.nodes, edges=inner.edges, metadata=meta)
    cls = NODE_TYPES.get(kind)
    if cls is None:
        raise UnsupportedNode(
            f"unknown node type {kind!r}",
            node=name,
            fix=f"supported NIR primitives: {', '.join(sorted(NODE_TYPES))}",
        )
    get = raw.get
    if cls is Input:
        return Input(name, shape=as_shape(get("shape")), metadata=meta)
    if cls is Output:
        return Output(name, shape=as_shape(get("shape")), metadata=meta)
    if kind in ("Conv1d", "Conv2d"):
        nd = 1 if kind == "Conv1d" else 2
        weight = frozen_array(get("weight"))
        if isinstance(get("padding"), (str, bytes)):
            raise UnsupportedNode(
                f"string padding {get('padding')!r} is not supported",
                node=name,
                param="padding",
                fix="export numeric padding",
            )
        bias = get("bias")
        return cls(
            name,
            weight=weight,
            bias=frozen_array(
                np.zeros(weight.shape[0]) if bias is None else np.broadcast_to(bias, weight.shape[:1])
            ),
            stride=_tuple(get("stride", 1), nd),
            padding=_tuple(get("padding", 0), nd),
            dilation=_tuple(get("dilation", 1), nd),
            groups=int(np.asarray(get("groups", 1)).item()),
            spatial_shape=None if get("input_shape") is None else _tuple(get("input_shape"), nd),
            metadata=meta,
        )
    if kind == "Flatten":
        return cls(
            name,
            start_dim=int(np.asarray(get("start_dim", 1))),
            end_dim=int(np.asarray(get("end_dim", -1))),
            metadata=meta,
        )
    if kind in ("SumPool2d", "AvgPool2d"):
        return cls(
            name,
            kernel_size=_tuple(get("kernel_size"), 2),
            stride=_tuple(get("stride", get("kernel_size")), 2),
            padding=_tuple(get("padding", 0), 2),
            metadata=meta,
        )
    return _neuron_or_elementwise(cls, name, raw, meta)


def _neuron_or_elementwise(cls: type[Node], name: str, raw: dict, meta: dict) -> Node:
    params = {}
    for p in cls.array_params:
        if p in raw:
            params[p] = np.asarray(raw[p], dtype=np.float64)
        elif p == "v_reset" and "v_threshold" in raw:
            params[p] = np.zeros_like(np.asarray(raw["v_threshold"], dtype=np.float64))  # NIR's default
        elif p == "bias" and "weight" in raw:
            params[p] = np.zeros(np.asarray(raw["weight"]).shape[0])
        else:
            raise NotNIR(f"{cls.__name__} node lacks its parameter", node=name, param=p)
    if cls.is_neuron:
        # Exporters sometimes write scalars for per-neuron parameters; broadcast them to the neuron shape.
        shape = np.broadcast_shapes(*(v.shape for v in params.values()))
        params = {p: np.broadcast_to(v, shape) for p, v in params.items()}
    return cls(name, **{p: frozen_array(v) for p, v in params.items()}, metadata=meta)


def _tuple(x: Any, n: int) -> tuple[int, ...]:
    a = np.atleast_1d(np.asarray(x)).astype(int).ravel()
    if a.size == 1:
        a = np.repeat(a, n)
    return tuple(int(v) for v in a)


def _repair_boundary_shapes(graph: Graph, declared: dict[str, tuple], repairs: list[str]) -> Graph:
    """Give each Output the shape that reaches it when the declared one differs only by singleton axes."""
    nodes = []
    for n in graph.nodes:
        if isinstance(n, Output) and n.name in declared:
            got, want = tuple(n.input_shape), tuple(declared[n.name])
            if got != want:
                if int(np.prod(got)) != int(np.prod(want)):
                    raise ShapeMismatch(
                        f"Output declares shape {list(want)} but receives {list(got)}", node=n.name
                    )
                repairs.append(
                    f"Output '{n.name}' declared shape {list(want)} but receives {list(got)}: used {list(got)}"
                )
            n = n.replace(shape=got)
        nodes.append(n.replace(input_shape=None, output_shape=None))
    return Graph.build(nodes, graph.edges, metadata=graph.metadata)


# ---------------------------------------------------------------------- writing


def _to_nir(node: Node) -> Any:
    import nir

    meta = dict(node.metadata)
    kind = node.type_name
    if isinstance(node, Input):
        return nir.Input(input_type={"input": np.array(node.shape)}, metadata=meta)
    if isinstance(node, Output):
        shape = node.shape if node.shape is not None else node.output_shape  # None: the shape that reaches it
        return nir.Output(output_type={"output": np.array(shape)}, metadata=meta)
    if kind in ("Conv1d", "Conv2d"):
        nd = 1 if kind == "Conv1d" else 2
        spatial = node.input_shape[1:] if node.input_shape else node.spatial_shape
        return getattr(nir, kind)(
            input_shape=(int(spatial[0]) if nd == 1 else np.array(spatial)),
            weight=np.array(node.weight),
            stride=node.stride[0] if nd == 1 else np.array(node.stride),
            padding=node.padding[0] if nd == 1 else np.array(node.padding),
            dilation=node.dilation[0] if nd == 1 else np.array(node.dilation),
            groups=node.groups,
            bias=np.array(node.bias),
            metadata=meta,
        )
    if kind == "Flatten":
        return nir.Flatten(
            input_type={"input": np.array(node.input_shape)},
            start_dim=node.start_dim,
            end_dim=node.end_dim,
            metadata=meta,
        )
    if kind in ("SumPool2d", "AvgPool2d"):
        return getattr(nir, kind)(
            kernel_size=np.array(node.kernel_size),
            stride=np.array(node.stride),
            padding=np.array(node.padding),
        )
    nir_kind = "I" if kind == "Integrator" else kind
    return getattr(nir, nir_kind)(**{p: np.array(v) for p, v in node.params().items()}, metadata=meta)
