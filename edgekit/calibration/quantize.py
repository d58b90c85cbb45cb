"""INT8 post-training quantization of a bundle's ONNX graph with calibration feeds.

Statistics come from the real control-flow execution: ONNX Runtime runs the fp32 graph with every
quantizable node's input surfaced as an output (`export.surface`), so a conv inside an early-exit branch
is calibrated on the inputs that actually reach it, and a conv in a sampler's Loop body on every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from edgekit.calibration.qdq import QuantCounts, activation_names, qdq_from_onnx, quantized_counts
from edgekit.errors import EdgekitError
from edgekit.export.surface import surface_tensors


@dataclass
class Int8Result:
    path: Path
    samples: int
    counts: QuantCounts
    excluded: dict[str, str] = field(default_factory=dict)  # node → why it stayed float
    ranges: dict[str, float] = field(default_factory=dict)


def activation_ranges(model, feeds: Iterable[dict], names: list[str]) -> tuple[dict[str, float], int]:
    """Absolute maximum of each named tensor over every calibration feed (and every Loop iteration)."""
    import onnxruntime as ort

    surfaced, outputs = surface_tensors(model, names)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(surfaced.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = list(outputs.values())
    inputs = {i.name for i in session.get_inputs()}
    ranges = {name: 0.0 for name in names}
    seen = {name: False for name in names}
    count = 0
    for feed in feeds:
        missing = inputs - set(feed)
        if missing:
            raise EdgekitError(f"calibration feed lacks input(s) {', '.join(sorted(missing))}")
        values = session.run(wanted, {k: v for k, v in feed.items() if k in inputs})
        for name, value in zip(outputs, values):
            if value.size:
                ranges[name] = max(ranges[name], float(np.abs(value).max()))
                seen[name] = True
        count += 1
    if not count:
        raise EdgekitError("calibration data is empty")
    return {n: r for n, r in ranges.items() if seen[n]}, count


def int8_from_onnx(onnx_path: Path, out_path: Path, feeds: Iterable[dict],
                   exclude: dict[str, str] | None = None) -> Int8Result:
    """Calibrate and write the symmetric INT8 Q/DQ graph of `onnx_path` to `out_path`.

    A quantizable node that no calibration feed reached (a branch never taken) is kept in float and
    listed in `excluded` with that reason: a scale guessed without data would be worse than none. So is a
    node that only computes a branch condition (`qdq.decision_nodes`), and every node in `exclude`.
    """
    import onnx

    from edgekit.calibration.qdq import QUANTIZABLE, initializers, quantizable_nodes
    from edgekit.export.controlflow import load_onnx

    from edgekit.calibration.qdq import decision_nodes, unique_node_names

    model = load_onnx(Path(onnx_path))
    unique_node_names(model)  # exclusions name nodes (callers that keep the fp32 graph rename it the same way)
    exclude = dict(exclude or {})
    for name in decision_nodes(model):
        exclude.setdefault(name, "only decides a branch (If condition): int8 error would flip the exit path")
    names = activation_names(model, set(exclude))
    ranges, samples = activation_ranges(model, feeds, names)
    inits = initializers(model)
    for _, node in quantizable_nodes(model):
        if node.name in exclude:
            continue
        acts, weight, _ = QUANTIZABLE[node.op_type]
        needed = [node.input[i] for i in (*acts, weight) if node.input[i] not in inits]
        if any(n not in ranges for n in needed):
            exclude[node.name] = "not reached by any calibration sample"
    quantized = qdq_from_onnx(model, ranges, set(exclude))
    onnx.save(quantized, str(out_path))
    return Int8Result(Path(out_path), samples, quantized_counts(quantized), exclude, ranges)


# OpenVINO op types that do the work of Conv/ConvTranspose/MatMul/Gemm
OPENVINO_COMPUTE = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData",
                    "MatMul")


def openvino_quant_counts(xml_path: Path) -> QuantCounts:
    """Compute ops in an IR and how many take a FakeQuantize'd activation, through If/Loop bodies."""
    from edgekit.export.openvino import import_openvino

    ov = import_openvino()
    counts = QuantCounts()

    def visit(model, where: str, depth: int) -> None:
        for op in model.get_ordered_ops():
            kind = op.get_type_name()
            if kind in OPENVINO_COMPUTE:
                counts.total += 1
                counts.in_subgraphs += depth > 0
                source = op.input_value(0).get_node()
                if source.get_type_name() == "FakeQuantize":
                    counts.quantized += 1
                    counts.quantized_in_subgraphs += depth > 0
                else:
                    counts.unquantized.append(f"{where}:{op.get_friendly_name()} ({kind})")
            if kind == "If":
                for i, branch in enumerate(("then", "else")):
                    visit(op.get_function(i), f"{where}/{op.get_friendly_name()}.{branch}", depth + 1)
            elif kind in ("Loop", "TensorIterator"):
                visit(op.get_function(), f"{where}/{op.get_friendly_name()}.body", depth + 1)

    visit(ov.Core().read_model(str(xml_path)), "main", 0)
    return counts
