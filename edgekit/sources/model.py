"""The resolved model (`ModelSource`) and the helpers every source kind shares: tensors ↔ numpy, input specs
from tensors or ONNX values, example inputs from specs, content hashes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.specs import TensorSpec, dtype_name

MODEL_HOOKS = {
    "example_inputs()": "tuple of tensors used to trace the model and as a validation sample",
    "input_names / output_names": "names of the graph inputs and outputs (else forward()'s parameters, output_N)",
    "dynamic_shapes()": "{input: {axis: dim name or torch.export.Dim}} for dynamic dims",
    "validation_feeds()": "list of {input: tensor} feeds that drive every branch / step count",
    "input_ranges()": "{input: (min, max)} valid values (e.g. a step count), checked by every runner",
    "tuning_knobs()": "[{input, kind: exit_threshold|steps, candidates, costliest, path_output}] for `edgekit tune`",
}

# Size given to a named dynamic dim when the example input has to be generated from `--input`.
DEFAULT_DYNAMIC_SIZE = 64


@dataclass
class ModelSource:
    spec: str
    kind: str  # zoo | file | module | pt2 | onnx
    sha256: str
    inputs: list[TensorSpec]
    example_inputs: tuple  # torch tensors (numpy arrays for onnx sources)
    module: Any = None  # torch.nn.Module
    exported: Any = None  # torch.export.ExportedProgram
    onnx_path: Path | None = None
    onnx_model: Any = None  # onnx.ModelProto read once by resolve_source (graph only; weights stay on disk)
    output_names: list[str] | None = None
    dynamic_shapes: dict[str, dict[int, Any]] = field(default_factory=dict)
    validation_feeds: list[dict[str, np.ndarray]] = field(default_factory=list)
    knobs: list = field(default_factory=list)  # tuning.knobs.Knob: run-time knobs from tuning_knobs()
    # ONNX sources with `--fix NAME=VALUE`: the pinned inputs (spec, value), no longer inputs of onnx_model,
    # fed to the original file by the reference; and how many If nodes pinning removed
    pinned: list[tuple[TensorSpec, np.ndarray]] = field(default_factory=list)
    pinned_ifs: int = 0

    @property
    def reference_runtime(self) -> str:
        return "onnxruntime" if self.kind == "onnx" else "torch"

    def example_feed(self) -> dict[str, np.ndarray]:
        return {s.name: to_numpy(t) for s, t in zip(self.inputs, self.example_inputs)}


def spec_of(name, tensor, axes: dict[int, Any]) -> TensorSpec:
    shape = [axes[i] if i in axes else int(s) for i, s in enumerate(tensor.shape)]
    shape = [d if isinstance(d, (int, str)) else _dim_name(d) for d in shape]
    default = tensor.item() if tensor.dim() == 0 else None
    return TensorSpec(name, tuple(shape), dtype_name(tensor.dtype), default)


def _dim_name(dim) -> str:
    return getattr(dim, "__name__", None) or str(dim)


def example_from_spec(spec: TensorSpec):
    """Example tensor for an input spec: random normal floats; ones for ints (counts, flags)."""
    import torch

    from edgekit.specs import np_dtype

    shape = [d if isinstance(d, int) else DEFAULT_DYNAMIC_SIZE for d in spec.shape]
    if spec.is_float:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(
            getattr(torch, spec.dtype)
        )
    return torch.from_numpy(np.ones(shape, dtype=np_dtype(spec.dtype)))


def onnx_value_spec(value) -> TensorSpec:
    import onnx

    tensor_type = value.type.tensor_type
    dtype = dtype_name(onnx.helper.tensor_dtype_to_np_dtype(tensor_type.elem_type))
    shape = []
    for axis, dim in enumerate(tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            shape.append(int(dim.dim_value))
        else:
            shape.append(dim.dim_param or f"{value.name}_{axis}")
    return TensorSpec(value.name, tuple(shape), dtype)


def to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def state_sha256(module) -> str:
    """Content hash of a module's parameters and buffers (names, dtypes, shapes, bytes)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()
