"""Resolve a model spec (DESIGN.md §3) to a `ModelSource`: the model, its example inputs and input specs.

Spec kinds: `zoo:NAME[?k=v,...]`, `path/to/file.py:factory`, `package.module:attr`, `model.pt2`
(a saved torch.export program) and `model.onnx` (compile/validate only; ONNX Runtime is the reference).

A factory returns a module or `(module, example_inputs)`. The module may carry these optional hooks:
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.errors import SourceError
from edgekit.specs import TensorSpec, dtype_name

MODEL_HOOKS = {
    "example_inputs()": "tuple of tensors used to trace the model and as a validation sample",
    "input_names / output_names": "names of the graph inputs and outputs (else forward()'s parameters, output_N)",
    "dynamic_shapes()": "{input: {axis: dim name or torch.export.Dim}} for dynamic dims",
    "validation_feeds()": "list of {input: tensor} feeds that drive every branch / step count",
    "input_ranges()": "{input: (min, max)} valid values (e.g. a step count), checked by every runner",
}
__doc__ += "".join(f"\n- `{k}`: {v}" for k, v in MODEL_HOOKS.items()) + "\n"

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
    output_names: list[str] | None = None
    dynamic_shapes: dict[str, dict[int, Any]] = field(default_factory=dict)
    validation_feeds: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def reference_runtime(self) -> str:
        return "onnxruntime" if self.kind == "onnx" else "torch"

    def example_feed(self) -> dict[str, np.ndarray]:
        return {s.name: _to_numpy(t) for s, t in zip(self.inputs, self.example_inputs)}


def resolve_source(
    spec: str,
    input_specs: list[TensorSpec] | None = None,
    dynamic: dict[str, list[int]] | None = None,
) -> ModelSource:
    """Resolve `spec` to a ModelSource.

    `input_specs` (from `--input`) override the example inputs; `dynamic` (from `--dynamic`) marks axes
    dynamic. Raises SourceError naming the file, factory or input at fault.
    """
    input_specs = list(input_specs or [])
    dynamic = dict(dynamic or {})
    if spec.startswith("zoo:"):
        return _from_zoo(spec, input_specs, dynamic)
    if spec.endswith(".onnx"):
        return _from_onnx(spec, input_specs)
    if spec.endswith(".pt2"):
        return _from_pt2(spec, input_specs, dynamic)
    target, sep, attr = spec.rpartition(":")
    if sep and target.endswith(".py"):
        return _from_file(spec, Path(target), attr, input_specs, dynamic)
    if sep and target and attr:
        return _from_module_path(spec, target, attr, input_specs, dynamic)
    raise SourceError(
        f"{spec}: not a model spec (expected zoo:NAME, path/file.py:factory, package.module:attr, "
        "model.pt2 or model.onnx)"
    )


# --- kinds ---------------------------------------------------------------------------------------


def _from_zoo(spec, input_specs, dynamic) -> ModelSource:
    from edgekit.zoo import load_zoo, parse_zoo_spec

    name, params = parse_zoo_spec(spec)
    entry = load_zoo().get(name)
    model = _call_factory(spec, lambda: entry.build(**params))
    return _from_built(spec, "zoo", model, input_specs, dynamic, sha256=None)


def _from_file(spec, path: Path, attr: str, input_specs, dynamic) -> ModelSource:
    if not path.is_file():
        raise SourceError(f"{spec}: file {path} does not exist")
    if not attr:
        raise SourceError(f"{spec}: name the factory after the colon, e.g. {path}:build")
    module_name = f"_edgekit_user_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:12]}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:  # the user's file failed to import: report it, it is theirs to fix
        raise SourceError(f"{spec}: importing {path} failed: {type(exc).__name__}: {exc}") from exc
    if not hasattr(module, attr):
        found = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")]
        raise SourceError(f"{spec}: {path} has no {attr!r} (callables there: {', '.join(found) or 'none'})")
    built = _call_factory(spec, lambda: _instantiate(getattr(module, attr)))
    return _from_built(spec, "file", built, input_specs, dynamic, sha256=_file_sha256(path))


def _from_module_path(spec, module_path: str, attr: str, input_specs, dynamic) -> ModelSource:
    try:
        module = importlib.import_module(module_path)
    except ImportError as exc:
        raise SourceError(f"{spec}: cannot import {module_path}: {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SourceError(f"{spec}: {module_path} has no attribute {attr!r}")
        obj = getattr(obj, part)
    built = _call_factory(spec, lambda: _instantiate(obj))
    return _from_built(spec, "module", built, input_specs, dynamic, sha256=None)


def _instantiate(obj):
    import torch

    if isinstance(obj, torch.nn.Module):
        return obj
    if callable(obj):
        return obj()
    raise SourceError(f"{obj!r} is neither a torch.nn.Module nor a factory")


def _call_factory(spec, build):
    try:
        return build()
    except SourceError:
        raise
    except Exception as exc:
        raise SourceError(f"{spec}: the factory raised {type(exc).__name__}: {exc}") from exc


def _from_built(spec, kind, built, input_specs, dynamic, sha256) -> ModelSource:
    import torch

    module, examples = built, None
    if isinstance(built, tuple) and len(built) == 2 and isinstance(built[0], torch.nn.Module):
        module, examples = built
    if not isinstance(module, torch.nn.Module):
        raise SourceError(f"{spec}: the factory returned {type(module).__name__}, not a torch.nn.Module")
    module.eval()
    names = list(getattr(module, "input_names", None) or _forward_params(module))
    if input_specs:
        examples = tuple(_example_from_spec(s) for s in input_specs)
        names = [s.name for s in input_specs]
    elif examples is None and callable(getattr(module, "example_inputs", None)):
        examples = module.example_inputs()
    if examples is None:
        raise SourceError(
            f"{spec}: no example inputs: pass --input NAME:SHAPE[:DTYPE] for each input "
            f"({', '.join(names)}), or give the model an example_inputs() method"
        )
    if isinstance(examples, torch.Tensor):
        examples = (examples,)
    examples = tuple(examples)
    if len(names) != len(examples):
        raise SourceError(
            f"{spec}: {len(examples)} example inputs for {len(names)} input names ({', '.join(names)})"
        )
    output_names = list(getattr(module, "output_names", None) or []) or _count_outputs(spec, module, examples)
    dims = _dynamic_dims(spec, module, names, examples, input_specs, dynamic)
    specs = [_spec_of(n, t, dims.get(n, {})) for n, t in zip(names, examples)]
    if callable(getattr(module, "input_ranges", None)):
        ranges = module.input_ranges() or {}
        unknown = set(ranges) - set(names)
        if unknown:
            raise SourceError(f"{spec}: input_ranges() names unknown inputs {', '.join(sorted(unknown))}")
        specs = [replace(s, range=tuple(ranges[s.name])) if s.name in ranges else s for s in specs]
    return ModelSource(
        spec=spec,
        kind=kind,
        sha256=sha256 or _state_sha256(module),
        inputs=specs,
        example_inputs=examples,
        module=module,
        output_names=output_names,
        dynamic_shapes=dims,
        validation_feeds=module_validation_feeds(module),
    )


def module_validation_feeds(module) -> list[dict[str, np.ndarray]]:
    """The module's `validation_feeds()` as numpy feeds ([] without the hook). They depend on the weights
    (RBQE picks thresholds from its own exit scores), so a pruned module asks again."""
    if not callable(getattr(module, "validation_feeds", None)):
        return []
    return [{k: _to_numpy(v) for k, v in f.items()} for f in module.validation_feeds()]


def _from_pt2(spec, input_specs, dynamic) -> ModelSource:
    import torch

    path = Path(spec)
    if not path.is_file():
        raise SourceError(f"{spec}: file does not exist")
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise SourceError(f"{spec}: not a readable torch.export program ({type(exc).__name__}: {exc})") from exc
    names = list(program.graph_signature.user_inputs)
    placeholders = {n.name: n.meta.get("val") for n in program.graph.nodes if n.op == "placeholder"}
    symbols: dict[str, str] = {}
    dims: dict[str, dict[int, Any]] = {}
    for name in names:
        for axis, size in enumerate(getattr(placeholders.get(name), "shape", ())):
            if not isinstance(size, int) and not str(size).isdigit():
                dims.setdefault(name, {})[axis] = symbols.setdefault(str(size), f"{name}_{axis}")
    examples = None
    if input_specs:
        examples = tuple(_example_from_spec(s) for s in input_specs)
    elif getattr(program, "example_inputs", None):
        examples = tuple(program.example_inputs[0])
    if examples is None:
        raise SourceError(f"{spec}: the program carries no example inputs: pass --input for {', '.join(names)}")
    specs = [_spec_of(n, t, dims.get(n, {})) for n, t in zip(names, examples)]
    return ModelSource(
        spec=spec, kind="pt2", sha256=_file_sha256(path), inputs=specs, example_inputs=examples,
        exported=program, dynamic_shapes=dims,
    )


def _from_onnx(spec, input_specs) -> ModelSource:
    from edgekit.export.controlflow import load_onnx

    path = Path(spec)
    model = load_onnx(path)
    initializers = {i.name for i in model.graph.initializer}
    overrides = {s.name: s for s in input_specs}
    specs, examples = [], []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        spec_ = overrides.get(value.name) or _onnx_value_spec(value)
        specs.append(spec_)
        examples.append(_to_numpy(_example_from_spec(spec_)))
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise SourceError(f"{spec}: --input names {', '.join(sorted(unknown))} are not inputs of the model")
    return ModelSource(
        spec=spec, kind="onnx", sha256=_file_sha256(path), inputs=specs, example_inputs=tuple(examples),
        onnx_path=path, output_names=[o.name for o in model.graph.output],
    )


# --- helpers -------------------------------------------------------------------------------------


def _count_outputs(spec, module, examples) -> list[str]:
    """Run the model once on its example inputs: names its outputs and catches a model that cannot run."""
    import torch

    try:
        with torch.no_grad():
            result = module(*examples)
    except Exception as exc:
        raise SourceError(f"{spec}: running the model on its example inputs failed: "
                          f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    count = len(result) if isinstance(result, (tuple, list)) else 1
    return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]


def _forward_params(module) -> list[str]:
    params = inspect.signature(module.forward).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _dynamic_dims(spec, module, names, examples, input_specs, dynamic) -> dict[str, dict[int, Any]]:
    dims: dict[str, dict[int, Any]] = {}
    if callable(getattr(module, "dynamic_shapes", None)) and not input_specs:
        for name, axes in (module.dynamic_shapes() or {}).items():
            dims[name] = dict(axes or {})
    for s in input_specs:
        if s.dynamic_axes:
            dims[s.name] = dict(s.dynamic_axes)
    by_name = dict(zip(names, examples))
    for name, axes in dynamic.items():
        if name not in by_name:
            raise SourceError(f"{spec}: --dynamic names {name!r}, which is not an input ({', '.join(names)})")
        rank = by_name[name].dim()
        for axis in axes:
            if axis >= rank:
                raise SourceError(f"{spec}: --dynamic {name}:{axis}: input {name!r} has only {rank} axes")
            dims.setdefault(name, {}).setdefault(axis, f"{name}_{axis}")
    unknown = set(dims) - set(names)
    if unknown:
        raise SourceError(f"{spec}: dynamic_shapes names unknown inputs {', '.join(sorted(unknown))}")
    return dims


def _spec_of(name, tensor, axes: dict[int, Any]) -> TensorSpec:
    shape = [axes[i] if i in axes else int(s) for i, s in enumerate(tensor.shape)]
    shape = [d if isinstance(d, (int, str)) else _dim_name(d) for d in shape]
    default = tensor.item() if tensor.dim() == 0 else None
    return TensorSpec(name, tuple(shape), dtype_name(tensor.dtype), default)


def _dim_name(dim) -> str:
    return getattr(dim, "__name__", None) or str(dim)


def _example_from_spec(spec: TensorSpec):
    """Example tensor for an input spec: random normal floats; ones for ints (counts, flags)."""
    import torch

    from edgekit.specs import np_dtype

    shape = [d if isinstance(d, int) else DEFAULT_DYNAMIC_SIZE for d in spec.shape]
    if spec.is_float:
        return torch.randn(shape, generator=torch.Generator().manual_seed(0)).to(
            getattr(torch, spec.dtype)
        )
    return torch.from_numpy(np.ones(shape, dtype=np_dtype(spec.dtype)))


def _onnx_value_spec(value) -> TensorSpec:
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


def _to_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _state_sha256(module) -> str:
    """Content hash of a module's parameters and buffers (names, dtypes, shapes, bytes)."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()
