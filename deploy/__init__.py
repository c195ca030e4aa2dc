"""snn-deploy: deploy NIR spiking neural networks to neuromorphic chips, with bit-accurate JAX emulators.

Public API (stable names):
    load(path, dt=None, method=None, reset=None) -> Graph
    save(graph, path)
    Graph, passes (chain, flatten, fold_scales, fuse_synapses, discretize, rescale_time), errors
"""

from .errors import SnnDeployError
from .graph import Graph, PassRecord
from .io import load, save

__version__ = "0.1.0"

__all__ = ["Graph", "PassRecord", "SnnDeployError", "__version__", "load", "save"]
