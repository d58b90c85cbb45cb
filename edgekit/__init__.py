"""edgekit: take a PyTorch model to the edge — export, compile, validate and benchmark.

Importing the package is cheap: torch, onnxruntime, openvino and tensorrt are imported lazily
by the functions that need them.
"""

__version__ = "0.1.0"

from edgekit.errors import BackendUnavailable, EdgekitError  # noqa: E402,F401
