"""Loading: strict NIR, lenient repairs, the zoo, save/reload round trip."""

from __future__ import annotations

import warnings

import nir
import numpy as np
import pytest
from nir_files import ZOO_FILES, lif_chain, nested_dotted, old_rockpool_output, write, zoo_path

import snn_deploy as sd
from snn_deploy.io import RepairWarning


def test_strict_graph_loads_without_repair(tmp_path):
    g = sd.load(write(lif_chain(), tmp_path / "m.nir"), dt=1e-3)
    assert [n.name for n in g.nodes] == ["input", "fc1", "lif1", "fc2", "lif2", "output"]
    assert g.node("lif1").output_shape == (4,)
    assert g.node("fc1").input_shape == (3,)
    assert not any("leniently" in w for w in g.warnings)
    assert g.history[0].args["strict"] is True


def test_old_rockpool_output_shape_is_repaired_with_warning(tmp_path):
    path = old_rockpool_output(tmp_path / "old.nir")
    with pytest.raises(ValueError):
        nir.read(path)  # the premise: strict NIR rejects it
    with pytest.warns(RepairWarning, match=r"Output 'output' declared shape \[1, 1, 1\]"):
        g = sd.load(path)
    assert g.node("output").output_shape == (1,)


def test_nested_subgraph_with_dotted_edges(tmp_path):
    path = nested_dotted(tmp_path / "nested.nir")
    with pytest.raises(ValueError, match="lif1.lif"):
        nir.read(path)  # the premise: strict nir 1.0.8 rejects dotted edge names
    with pytest.warns(RepairWarning, match="inlined nested subgraph 'lif1'"):
        g = sd.load(path)
    names = [n.name for n in g.nodes]
    assert "lif1.lif" in names and "lif1.w_rec" in names
    assert not any(n.endswith(("lif1.input", "lif1.output")) for n in names)
    assert ("lif1.w_rec", "lif1.lif") in g.recurrent
    assert ("fc1", "lif1.lif") in g.edges and ("lif1.lif", "fc2") in g.edges
    assert g.is_flat


def test_save_writes_strict_nir_and_round_trips(tmp_path):
    g = sd.load(nested_dotted(tmp_path / "nested.nir"), dt=1e-4, method="exact", reset="subtract")
    out = sd.save(g, tmp_path / "saved.nir")
    strict = nir.read(out)  # strict type checking must accept it
    assert set(strict.nodes) == {n.name for n in g.nodes}
    again = sd.load(out)
    assert again.conventions.dt.value == pytest.approx(1e-4) and again.conventions.dt.source == "metadata"
    assert again.conventions.method.value == "exact" and again.conventions.reset.value == "subtract"
    for a, b in zip(g.nodes, again.nodes, strict=True):
        assert a.name == b.name and a.type_name == b.type_name
        for p, v in a.params().items():
            np.testing.assert_array_equal(v, b.params()[p])
    assert again.recurrent == g.recurrent


@pytest.mark.parametrize("name", ZOO_FILES)
def test_zoo_graphs_load(name):
    path = zoo_path(name)
    if not path.exists():
        pytest.skip(f"{path} is absent (the NIR zoo lives in ../shared/nir-zoo)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = sd.load(path)
    assert g.is_flat and g.inputs and g.outputs
    assert all(n.output_shape is not None for n in g.nodes)


def test_zoo_braille_conventions_inferred():
    path = zoo_path("braille_noDelay_noBias_subtract.nir")
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with pytest.warns(UserWarning) as rec:
        g = sd.load(path)
    assert g.conventions.dt.value == pytest.approx(1e-4) and g.conventions.dt.source == "inferred"
    assert g.conventions.method.value == "euler" and g.conventions.method.source == "inferred"
    assert g.conventions.reset.source == "default"
    assert any("subtract" in str(w.message) for w in rec)
    assert ("lif1.w_rec", "lif1.lif") in g.recurrent


def test_zoo_cnn_shapes():
    path = zoo_path("cnn_sinabs.nir")
    if not path.exists():
        pytest.skip(f"{path} is absent")
    g = sd.load(path, dt=1e-3)
    assert g.node("0").output_shape == (16, 16, 16)
    assert g.node("4").output_shape == (16, 8, 8)
    assert g.node("8").output_shape == (128,)
    assert g.node("output").output_shape == (10,)


def test_cli_conventions_override_metadata(tmp_path):
    g = lif_chain()
    g.metadata["dt"] = 0.5e-3
    path = write(g, tmp_path / "m.nir")
    assert sd.load(path).conventions.dt.source == "metadata"
    loaded = sd.load(path, dt=2e-3)
    assert loaded.conventions.dt.value == 2e-3 and loaded.conventions.dt.source == "cli"


def test_save_fills_undeclared_output_shape_and_is_world_readable(tmp_path):
    g = sd.load(write(lif_chain(), tmp_path / "m.nir"), dt=1e-3)
    out = g.node("output")
    nodes = [
        n.replace(shape=None, input_shape=None, output_shape=None)
        if n is out
        else n.replace(input_shape=None, output_shape=None)
        for n in g.nodes
    ]
    g2 = sd.Graph.build(nodes, g.edges, conventions=g.conventions)
    path = sd.save(g2, tmp_path / "s.nir")
    assert nir.read(path).nodes["output"].output_type["output"].tolist() == [2]
    assert (path.stat().st_mode & 0o777) == 0o644
