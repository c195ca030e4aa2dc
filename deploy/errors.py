"""The exception hierarchy of snn-deploy.

Every error a user can cause derives from :class:`SnnDeployError` and carries the file, node and parameter it is
about, so that the CLI can print one line (``FILE: node 'lif1': tau: ... (fix: ...)``) and exit with code 1.
Anything else escaping to the CLI is an internal error (exit code 2).
"""

from __future__ import annotations


class SnnDeployError(Exception):
    """Base class of all user-facing errors.

    Attributes:
        file: the model or artefact path the error is about, when known.
        node: the graph node the error is about, when known.
        param: the parameter (or limit) the error is about, when known.
        fix: a short hint telling the user how to fix it.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        node: str | None = None,
        param: str | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.file = file
        self.node = node
        self.param = param
        self.fix = fix

    def with_file(self, file: str) -> SnnDeployError:
        """Attach the file path (the loader knows it, the graph code does not)."""
        if self.file is None:
            self.file = str(file)
        return self

    def one_line(self) -> str:
        """The single line the CLI prints: file, node, parameter, message and fix."""
        parts = []
        if self.file:
            parts.append(f"{self.file}:")
        if self.node is not None:
            parts.append(f"node '{self.node}':")
        if self.param is not None:
            parts.append(f"{self.param}:")
        parts.append(self.message)
        line = " ".join(parts)
        if self.fix:
            line += f" (fix: {self.fix})"
        return " ".join(line.split())

    def __str__(self) -> str:
        return self.one_line()


# --- reading files -------------------------------------------------------------------------------------------


class ModelFileError(SnnDeployError):
    """The model file cannot be read as NIR."""


class ModelNotFound(ModelFileError):
    """The path does not exist or is not a file."""


class NotHDF5(ModelFileError):
    """The file is not an HDF5 file at all."""


class CorruptFile(ModelFileError):
    """The file is HDF5 but truncated or damaged."""


class NotNIR(ModelFileError):
    """The file is valid HDF5 but does not hold a NIR graph."""


# --- graph structure -----------------------------------------------------------------------------------------


class GraphError(SnnDeployError):
    """The graph is structurally invalid."""


class UnsupportedNode(GraphError):
    """A node type that snn-deploy (or the chosen target) does not support."""


class ShapeMismatch(GraphError):
    """Shapes disagree along an edge or inside a node."""


class MissingNode(GraphError):
    """An edge refers to a node that does not exist."""


class InvalidParameter(GraphError):
    """A parameter value is out of its domain (non-finite, non-positive time constant, ...)."""


# --- conventions and passes ----------------------------------------------------------------------------------


class ConventionError(SnnDeployError):
    """The discretisation or reset convention is missing, contradictory or unsupported."""


class DoesNotFit(SnnDeployError):
    """The network exceeds a hardware limit of the target; the message names the limit and the numbers."""


class InputError(SnnDeployError):
    """Simulation or calibration input has the wrong shape, dtype or keys."""


class ArtefactError(SnnDeployError):
    """An artefact file or directory is missing, damaged or of the wrong kind."""
