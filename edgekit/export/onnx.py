"""torch → ONNX: `torch.export` to an ExportedProgram, then the dynamo-based `torch.onnx.export`, which
keeps `torch.cond` as ONNX `If` and `while_loop` as `Loop` (DESIGN.md §6). The ExportedProgram is kept:
it is saved in the bundle as `model.pt2`, the PyTorch reference that later validation runs."""

from __future__ import annotations

import contextlib
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.errors import ExportError
from edgekit.hints import hint_for_exception
from edgekit.sources import ModelSource
from edgekit.ui import quiet_fds

DEFAULT_OPSET = 18
# Above this many bytes of weights the ONNX file keeps its tensors in `model.onnx.data` beside it
# (protobuf cannot hold more than 2 GiB; well below that, a separate file still loads faster).
EXTERNAL_DATA_THRESHOLD = 512 << 20


@dataclass
class OnnxExport:
    path: Path
    data_path: Path | None
    opset: int
    output_names: list[str]
    exported: Any  # torch.export.ExportedProgram
    torch_control_flow: dict[str, int]


def exported_program_from_torch(source: ModelSource, log) -> Any:
    """`torch.export.export` the source module with its dynamic dims (or return the loaded .pt2)."""
    import torch

    module = source.module
    if source.exported is not None:
        if not torch_control_flow(source.exported)["Loop"]:
            return source.exported
        # torch 2.13 drops a while_loop's unbacked symbols when it loads a .pt2 ("Symbol u0 did not appear
        # in the graph that was deserialized"), and torch.onnx.export then fails on the loaded program
        # ("expected sympy.Symbol"). Re-tracing the program's own module restores them.
        module = source.exported.module()
    with _exporter_output(log):
        try:
            return torch.export.export(
                module, tuple(source.example_inputs),
                dynamic_shapes=_torch_dynamic_shapes(source), strict=False,
            )
        except Exception as exc:
            raise _export_error("torch.export", source.spec, exc, log) from exc


def onnx_from_torch(
    source: ModelSource,
    path: Path,
    log_path: Path,
    opset: int = DEFAULT_OPSET,
    external_data_threshold: int = EXTERNAL_DATA_THRESHOLD,
) -> OnnxExport:
    """Export `source` to `path` (an `.onnx` file, plus `.onnx.data` for large models).

    Exporter chatter goes to `log_path`; a failure raises ExportError with the exporter's one-line
    reason and the log's location.
    """
    import torch

    with open(log_path, "a") as log:
        program = exported_program_from_torch(source, log)
        with _exporter_output(log):
            try:
                onnx_program = torch.onnx.export(
                    program, (), None, dynamo=True, opset_version=opset,
                    input_names=[s.name for s in source.inputs],
                    output_names=source.output_names,
                    dynamic_shapes=_named_dynamic_shapes(source),
                    verbose=False,
                )
            except Exception as exc:
                raise _export_error("torch.onnx.export", source.spec, exc, log) from exc
        weight_bytes = sum(t.numel() * t.element_size() for t in program.state_dict.values())
        external = weight_bytes > external_data_threshold
        _drop_stack_traces(onnx_program.model)
        onnx_program.save(str(path), external_data=external)
    outputs = [o.name for o in onnx_program.model_proto.graph.output]
    data = path.with_name(path.name + ".data")
    return OnnxExport(path, data if data.exists() else None, opset, outputs, program,
                      torch_control_flow(program))


# Per-node metadata the exporter attaches: the Python stack trace of every node (kilobytes each; a
# sampler's Loop body made StoRM's ONNX 22.8 MB for 1.8 MB of weights). Module scopes are kept:
# `edgekit debug` and users read them to map nodes back to the PyTorch modules.
DROPPED_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")


def _drop_stack_traces(model) -> None:
    """Remove DROPPED_METADATA from every node of an onnx_ir model, subgraphs included."""
    graphs = [model.graph]
    while graphs:
        graph = graphs.pop()
        for node in graph:
            for key in DROPPED_METADATA:
                node.metadata_props.pop(key, None)
            for attr in node.attributes.values():
                value = attr.value
                if hasattr(value, "__iter__") and not isinstance(value, (str, bytes)) and attr.type.name == "GRAPHS":
                    graphs.extend(value)
                elif attr.type.name == "GRAPH":
                    graphs.append(value)


def torch_control_flow(program) -> dict[str, int]:
    """How many `torch.cond` / `while_loop` calls an ExportedProgram holds, through nested branches."""
    import torch

    counts = {"If": 0, "Loop": 0}
    ops = {torch.ops.higher_order.cond: "If", torch.ops.higher_order.while_loop: "Loop"}
    for module in program.graph_module.modules():
        graph = getattr(module, "graph", None)
        for node in getattr(graph, "nodes", ()):
            if node.op == "call_function" and node.target in ops:
                counts[ops[node.target]] += 1
    return counts


def _torch_dynamic_shapes(source: ModelSource) -> dict | None:
    """{input: {axis: torch.export.Dim}} for torch.export."""
    import torch

    if not source.dynamic_shapes:
        return None
    shapes = {}
    for spec in source.inputs:
        axes = source.dynamic_shapes.get(spec.name)
        if not axes:
            shapes[spec.name] = None
            continue
        # a named dim becomes Dim.DYNAMIC: torch.export infers its constraints (RBQE's H and W must be
        # multiples of 32; a strict Dim("height") is refused as "constraints violated"). The names reach
        # the ONNX through torch.onnx.export's renaming (_named_dynamic_shapes).
        shapes[spec.name] = {axis: (torch.export.Dim.DYNAMIC if isinstance(d, str) else d) for axis, d in axes.items()}
    return shapes


def _named_dynamic_shapes(source: ModelSource) -> dict | None:
    """The same dims as names, so the ONNX inputs carry `height`/`width` rather than `s73`."""
    if not source.dynamic_shapes:
        return None
    return {
        s.name: {axis: d for axis, d in s.dynamic_axes.items()} or None for s in source.inputs
    }


@contextlib.contextmanager
def _exporter_output(log):
    """Send the exporter's prints, warnings and logging to the export log, not the user's terminal.

    torch's loggers hold their own stderr handlers and the exporter prints progress to stdout, so the
    redirect happens at the file-descriptor level (which also catches C++ output).
    """
    with contextlib.redirect_stdout(log), quiet_fds(log):
        yield


def _export_error(stage: str, spec: str, exc: Exception, log) -> ExportError:
    log.write(f"\n{stage} failed:\n{traceback.format_exc()}\n")
    log.flush()
    reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    error = ExportError(f"{spec}: {stage} failed: {type(exc).__name__}: {reason} (full log: {log.name})")
    error.hint = hint_for_exception(exc)
    return error
