"""Model sources that are files: a saved `torch.export` program (`model.pt2`) and an ONNX model (`model.onnx`,
compiled and validated with ONNX Runtime as the reference). The ONNX graph is read here once, without its
weights; the export copies the weights straight from the source file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.bundle import sha256_file
from edgekit.errors import SourceError
from edgekit.sources.model import ModelSource, example_from_spec, onnx_value_spec, spec_of, to_numpy


def load_program(path: Path, what: str):
    """torch.export.load of a .pt2, or SourceError naming `what`. A file that is not a zip archive is refused
    before torch sees it; torch's own fallback warning (a logged traceback) is kept off the user's screen."""
    import logging
    import zipfile

    import torch

    if not zipfile.is_zipfile(path):
        raise SourceError(f"{what}: not a readable torch.export program (not a .pt2 zip archive)")
    logger = logging.getLogger("torch.export")
    disabled, logger.disabled = logger.disabled, True
    try:
        return torch.export.load(str(path))
    except Exception as exc:
        reason = next((line for line in str(exc).splitlines() if line.strip()), "")[:300]
        raise SourceError(f"{what}: not a readable torch.export program ({type(exc).__name__}: {reason})") from None
    finally:
        logger.disabled = disabled


def from_pt2(spec, input_specs, dynamic) -> ModelSource:
    path = Path(spec)
    if not path.is_file():
        raise SourceError(f"{spec}: file does not exist")
    program = load_program(path, spec)
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
        examples = tuple(example_from_spec(s) for s in input_specs)
    elif getattr(program, "example_inputs", None):
        examples = tuple(program.example_inputs[0])
    if examples is None:
        raise SourceError(f"{spec}: the program carries no example inputs: pass --input for {', '.join(names)}")
    specs = [spec_of(n, t, dims.get(n, {})) for n, t in zip(names, examples)]
    return ModelSource(
        spec=spec, kind="pt2", sha256=sha256_file(path), inputs=specs, example_inputs=examples,
        exported=program, dynamic_shapes=dims,
    )


def from_onnx(spec, input_specs, fixes: dict[str, str] | None = None) -> ModelSource:
    """An ONNX file as a source; `fixes` ({name: value text}, `--fix`) pin scalar inputs (onnx_fix.py)."""
    from edgekit.export.controlflow import load_onnx
    from edgekit.sources.onnx_fix import check_tensor_boundaries, fixed_values, pin_inputs

    path = Path(spec)
    model = load_onnx(path, load_external_data=False)
    check_tensor_boundaries(model, spec)
    initializers = {i.name for i in model.graph.initializer}
    overrides = {s.name: s for s in input_specs}
    specs, examples = [], []
    for value in model.graph.input:
        if value.name in initializers:
            continue
        spec_ = overrides.get(value.name) or onnx_value_spec(value)
        specs.append(spec_)
        examples.append(to_numpy(example_from_spec(spec_)))
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        raise SourceError(f"{spec}: --input names {', '.join(sorted(unknown))} are not inputs of the model")
    pinned, pinned_ifs = [], 0
    if fixes:
        values = fixed_values(specs, fixes, spec)
        model, pinned_ifs = pin_inputs(model, path, values)
        pinned = [(s, values[s.name]) for s in specs if s.name in values]
        examples = [e for s, e in zip(specs, examples) if s.name not in values]
        specs = [s for s in specs if s.name not in values]
    return ModelSource(
        spec=spec, kind="onnx", sha256=sha256_file(path), inputs=specs, example_inputs=tuple(examples),
        onnx_path=path, onnx_model=model, output_names=[o.name for o in model.graph.output],
        pinned=pinned, pinned_ifs=pinned_ifs,
    )


def onnx_source_model(source: ModelSource):
    """The ONNX source with its weights, for copying into a bundle: the graph resolve_source read (not read
    again) plus the external data file's tensors. Returns (model, whether the source kept its weights in
    external data)."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    from edgekit.export.subgraph_types import fill_loop_input_ranks

    model = onnx.ModelProto()
    model.CopyFrom(source.onnx_model)  # graph only: cheap, and the source's own copy stays weight-free
    external = any(uses_external_data(t) for t in model.graph.initializer)
    if external:
        load_external_data_for_model(model, str(Path(source.onnx_path).parent))
    fill_loop_input_ranks(model)  # untyped Loop body inputs: OpenVINO needs their rank
    return model, external
