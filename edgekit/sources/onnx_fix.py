"""ONNX files from other exporters (issue #25): what edgekit cannot carry is refused naming the node, and a
scalar input that only selects a branch can be pinned (`export --fix NAME=VALUE`), folding its `If`s.

- Tensors only cross control-flow boundaries and model outputs: an `If`/`Loop`/`Scan` whose outputs (or
  whose body's loop-carried values) are ONNX sequences, maps or optionals has no OpenVINO or TensorRT
  form, and edgekit's specs describe tensors. Before this check such a file ended in a KeyError traceback
  after "onnx: copy source".
- `--fix`: the input becomes an initializer, then the graph's constants are folded with subgraph
  flattening (an `If` whose condition is now constant is replaced by the branch it takes). The folding is
  onnx-graphsurgeon's (the copy onnxslim vendors: no new dependency), not written here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgekit.errors import SourceError
from edgekit.specs import TensorSpec, np_dtype

CONTROL_FLOW = ("If", "Loop", "Scan")


def check_tensor_boundaries(model, spec: str) -> None:
    """Raise SourceError for a model output, or an If/Loop/Scan output or body value, that is not a tensor."""
    import onnx

    from edgekit.export.controlflow import iter_nodes

    for value in model.graph.output:
        if value.type.WhichOneof("value") != "tensor_type":
            raise SourceError(f"{spec}: output {value.name!r} is a {_type_name(value.type)}: "
                              f"edgekit exports tensor outputs only (make the model return tensors)")
    for index, node in enumerate(iter_nodes(model.graph)):
        if node.op_type not in CONTROL_FLOW:
            continue
        for attr in node.attribute:
            graphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
            for body in graphs:
                for value in list(body.input) + list(body.output):
                    kind = value.type.WhichOneof("value")
                    if kind not in (None, "tensor_type"):
                        name = node.name or f"#{index}"
                        raise SourceError(
                            f"{spec}: node {name!r} ({node.op_type}): {attr.name} value {value.name!r} is a "
                            f"{_type_name(value.type)}; OpenVINO and TensorRT carry only tensors "
                            f"across {node.op_type} boundaries (return a tensor, e.g. ConcatFromSequence inside "
                            f"the {attr.name})")


def _type_name(value_type) -> str:
    kind = value_type.WhichOneof("value")
    if kind == "sequence_type":
        return f"sequence of {_type_name(value_type.sequence_type.elem_type)}s"
    if kind == "optional_type":
        return f"optional {_type_name(value_type.optional_type.elem_type)}"
    return {"tensor_type": "tensor", "map_type": "map", "sparse_tensor_type": "sparse tensor"}.get(kind, str(kind))


def parse_fixes(items: list[str] | None) -> dict[str, str]:
    """`--fix NAME=VALUE` items → {name: value text}; one error for a malformed or repeated item."""
    fixes: dict[str, str] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise SourceError(f"--fix {item}: expected NAME=VALUE (a scalar input and the value to pin it to)")
        if name in fixes:
            raise SourceError(f"--fix {name}: given twice")
        fixes[name] = value
    return fixes


def fixed_values(specs: list[TensorSpec], fixes: dict[str, str], spec: str) -> dict[str, np.ndarray]:
    """The pinned values, typed like their inputs; each must name a scalar (or one-element) input."""
    by_name = {s.name: s for s in specs}
    values = {}
    for name, text in fixes.items():
        if name not in by_name:
            raise SourceError(f"{spec}: --fix {name}: not an input of the model "
                              f"(inputs: {', '.join(by_name) or 'none'})")
        input_spec = by_name[name]
        if any(not isinstance(d, int) for d in input_spec.shape) or int(np.prod(input_spec.shape)) != 1:
            raise SourceError(f"{spec}: --fix {name}: only a scalar input can be pinned; it has shape "
                              f"{list(input_spec.shape)}")
        dtype = np_dtype(input_spec.dtype)
        try:
            if dtype == np.bool_:
                lowered = text.lower()
                if lowered not in ("0", "1", "true", "false"):
                    raise ValueError(text)
                value = np.array(lowered in ("1", "true"))
            elif np.issubdtype(dtype, np.integer):
                value = np.array(int(text), dtype)
            else:
                value = np.array(float(text), dtype)
        except ValueError:
            raise SourceError(f"{spec}: --fix {name}={text}: not a {input_spec.dtype} value") from None
        values[name] = value.reshape(input_spec.shape)
    return values


def pin_inputs(model, path: Path, values: dict[str, np.ndarray]):
    """A copy of `model` (weights loaded) with each pinned input turned into an initializer and the constant
    parts folded: `If`s decided by a pinned input are replaced by the branch taken. Returns (model,
    number of If nodes removed)."""
    import onnx
    from onnx import numpy_helper
    from onnx.external_data_helper import load_external_data_for_model, uses_external_data

    from edgekit.export.controlflow import control_flow_counts

    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    if any(uses_external_data(t) for t in pinned.graph.initializer):
        load_external_data_for_model(pinned, str(Path(path).parent))
    before = control_flow_counts(pinned).get("If", 0)
    kept = [i for i in pinned.graph.input if i.name not in values]
    del pinned.graph.input[:]
    pinned.graph.input.extend(kept)
    pinned.graph.initializer.extend(numpy_helper.from_array(v, name) for name, v in values.items())
    try:
        from onnxslim.third_party import onnx_graphsurgeon as gs

        graph = gs.import_onnx(pinned)
        graph.fold_constants(flatten_subgraphs=True).cleanup().toposort()
        folded = gs.export_onnx(graph)
    except Exception as exc:  # the folder's own failures: one line naming what was being pinned
        raise SourceError(f"{path}: --fix {', '.join(values)}: folding the pinned graph failed: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    folded.ir_version = pinned.ir_version
    del folded.opset_import[:]
    folded.opset_import.extend(pinned.opset_import)
    return folded, before - control_flow_counts(folded).get("If", 0)


def pinned_record(source) -> dict:
    """The manifest's `source` fields for `--fix`: the pinned inputs' values and the If nodes folded away."""
    if not source.pinned:
        return {}
    return {"fixed": {s.name: v.item() for s, v in source.pinned}, "fixed_if_folded": source.pinned_ifs}
