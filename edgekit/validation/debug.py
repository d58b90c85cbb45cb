"""`edgekit debug`: find the first tensor where a runtime departs from the reference, inside If/Loop
bodies too, and which quantized layers cost an INT8 model its accuracy.

The graph-level reference is ONNX Runtime on the fp32 ONNX (itself validated against PyTorch), with
every tensor surfaced as an output (`export.surface`). OpenVINO runs the bundle's IR with extra outputs
on the main graph; an If branch or Loop body is compiled on its own and fed the reference's values for
its inputs, so each body is compared branch by branch (Loop bodies at their first iteration).
Polygraphy does the main-graph half of this between ONNX Runtime and TensorRT; none of it reaches into
subgraphs or compares with PyTorch's graph, hence this module.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgekit.bundle import Bundle
from edgekit.calibration.accuracy import LayerSensitivity
from edgekit.errors import EdgekitError
from edgekit.export.surface import walk_graphs
from edgekit.validation.compare import DEFAULT_TOLERANCES, Tolerance, compare_output


@dataclass
class TensorDiff:
    tensor: str
    node: str
    op: str
    graph: str  # "main" or the If/Loop path, e.g. "node_cond__1.else_branch"
    max_abs_err: float
    rel_l2: float
    ok: bool


@dataclass
class Localisation:
    runtime: str
    sample: int
    compared: int
    first: TensorDiff | None
    inputs: list[TensorDiff] = field(default_factory=list)  # the first bad node's inputs
    after: list[TensorDiff] = field(default_factory=list)  # tensors downstream of it, in order
    trace: list[TensorDiff] = field(default_factory=list)  # every compared tensor (for plots)

    def __bool__(self) -> bool:
        return self.first is None

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("trace")
        out["error_along_graph"] = [[d.tensor, d.rel_l2] for d in self.trace]
        return out


def topological_tensors(model) -> list[tuple[str, str, str, str]]:
    """(tensor, node, op, graph) for every node output, in execution order, bodies at their node's place."""
    import onnx

    order = []

    def visit(graph, where: str) -> None:
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    visit(attr.g, f"{where}/{node.name}.{attr.name}" if where != "main" else f"{node.name}.{attr.name}")
            order.extend((out, node.name, node.op_type, where) for out in node.output if out)

    visit(model.graph, "main")
    return order


def reference_values(model, feed: dict) -> dict[str, np.ndarray]:
    """Every tensor of `model` on `feed` from ONNX Runtime; Loop body tensors at their first iteration."""
    import onnxruntime as ort

    from edgekit.export.surface import surface_tensors

    names = [t for t, _, op, _ in topological_tensors(model) if op != "Constant"]
    surfaced, outputs = surface_tensors(model, names)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(surfaced.SerializeToString(), options, providers=["CPUExecutionProvider"])
    wanted = list(outputs.values())
    values = dict(zip(wanted, session.run(wanted, feed)))
    loop_bodies = {str(ref) for ref, _ in walk_graphs(model.graph) if ref.path and ref.path[-1][1] == "body"}
    where = {t: g for t, _, _, g in topological_tensors(model)}
    out = {}
    for name, surfaced_name in outputs.items():
        value = values[surfaced_name]
        if value.size == 0:
            continue  # an If branch that did not run
        depth = sum(part in loop_bodies for part in _prefixes(where.get(name, "main")))
        for _ in range(depth):  # stacked over iterations by each enclosing Loop: take iteration 0
            value = value[0]
        out[name] = value
    return out


def openvino_values(xml_path: Path, feed: dict, reference: dict) -> dict[str, np.ndarray]:
    """Every named tensor of the IR on `feed`; If/Loop bodies run alone on the reference's inputs."""
    from edgekit.export.openvino import import_openvino

    ov = import_openvino()
    core = ov.Core()
    values: dict[str, np.ndarray] = {}

    def run(model, inputs: dict) -> None:
        for name, value in inputs.items():
            values.setdefault(name, np.asarray(value))
        ports = [o for op in model.get_ordered_ops() if op.get_type_name() not in ("Parameter", "Constant", "Result")
                 for o in op.outputs() if o.get_names()]
        if ports:
            model.add_outputs(ports)
        compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled.create_infer_request().infer(inputs)
        for port, value in result.items():
            for name in port.get_names():
                values.setdefault(name, np.array(value))
        for op in model.get_ordered_ops():
            kind = op.get_type_name()
            if kind == "If":
                cond = _value_of(op.input_value(0), values, reference)
                taken = 0 if bool(np.asarray(cond).reshape(-1)[0]) else 1
                body = op.get_function(taken)
                feeds = {body.get_parameters()[d.body_parameter_index]: _value_of(op.input_value(d.input_index),
                                                                                  values, reference)
                         for d in op.get_input_descriptions(taken)}
                run(body.clone(), {p.output(0).get_any_name(): v for p, v in feeds.items()})
            elif kind == "Loop":
                body = op.get_function()
                params = body.get_parameters()
                feeds = {params[d.body_parameter_index].output(0).get_any_name():
                         _value_of(op.input_value(d.input_index), values, reference)
                         for d in op.get_input_descriptions()}
                iteration_index = op.get_special_body_ports()[0]  # [current_iteration_input, condition_output]
                if iteration_index >= 0:
                    param = params[iteration_index]
                    feeds[param.output(0).get_any_name()] = np.zeros(
                        [d.get_length() for d in param.get_partial_shape()], param.get_element_type().to_dtype())
                run(body.clone(), feeds)

    run(core.read_model(str(xml_path)), feed)
    return values


def _value_of(output, values: dict, reference: dict):
    node = output.get_node()
    if node.get_type_name() == "Constant":
        return node.get_data()
    for name in output.get_names():
        if name in values:
            return values[name]
        if name in reference:
            return reference[name]
    raise EdgekitError(f"debug: no value for {node.get_friendly_name()} (names {sorted(output.get_names())})")


def _prefixes(where: str) -> list[str]:
    parts = where.split("/") if where != "main" else []
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def localise(bundle: Bundle, runtime: str, sample: int = 0, tolerance: Tolerance | None = None) -> Localisation:
    """Compare `runtime` with ONNX Runtime fp32 tensor by tensor on testdata sample `sample`."""
    import onnx

    from edgekit.validation.testdata import read_testdata

    samples = read_testdata(bundle.path, bundle.verify)
    if not samples:
        raise EdgekitError(f"{bundle.path}: no testdata/ to debug with")
    if not 0 <= sample < len(samples):
        raise EdgekitError(f"--sample {sample}: the bundle has samples 0..{len(samples) - 1}")
    feed = samples[sample][0]
    fp32_path = bundle.artifact_path("onnx_fp32" if "onnx_fp32" in bundle.manifest.artifacts else "onnx")
    fp32 = onnx.load(str(fp32_path))
    reference = reference_values(fp32, feed)
    if runtime == "openvino":
        candidate = openvino_values(bundle.artifact_path("openvino"), feed, reference)
        precision = bundle.artifact("openvino").get("precision", "fp32")
    elif runtime == "onnxruntime":
        candidate = reference_values(onnx.load(str(bundle.artifact_path("onnx"))), feed)
        precision = bundle.artifact("onnx").get("precision", "fp32")
    else:
        raise EdgekitError(f"debug: runtime {runtime!r} is not supported (openvino, onnxruntime)")
    tolerance = tolerance or DEFAULT_TOLERANCES.get(precision, DEFAULT_TOLERANCES["fp32"])
    order = topological_tensors(fp32)
    producers = {t: (n, op, g) for t, n, op, g in order}
    node_inputs = {n.name: list(n.input) for _, g in walk_graphs(fp32.graph) for n in g.node}
    result = Localisation(runtime, sample, 0, None)
    for tensor, node, op, graph in order:
        if tensor not in reference or tensor not in candidate or op == "Constant":
            continue
        diff = _diff(tensor, node, op, graph, reference[tensor], candidate[tensor], tolerance)
        if diff is None:
            continue
        result.compared += 1
        result.trace.append(diff)
        if result.first is None and not diff.ok:
            result.first = diff
            for name in node_inputs.get(node, []):
                if name in reference and name in candidate and name in producers:
                    d = _diff(name, *producers[name], reference[name], candidate[name], tolerance)
                    if d:
                        result.inputs.append(d)
        elif result.first is not None and len(result.after) < 8:
            result.after.append(diff)
    return result


def _diff(tensor, node, op, graph, ref, got, tolerance) -> TensorDiff | None:
    ref, got = np.asarray(ref), np.asarray(got)
    if ref.shape != got.shape:
        if ref.size == got.size:
            got = got.reshape(ref.shape)
        else:
            return None
    if ref.dtype.kind not in "fc":
        return TensorDiff(tensor, node, op, graph, float(np.abs(ref.astype(np.int64) - got.astype(np.int64)).max(initial=0)),
                          0.0, bool(np.array_equal(ref, got)))
    cmp = compare_output(tensor, ref, got, tolerance, 0)
    return TensorDiff(tensor, node, op, graph, cmp.max_abs_err, cmp.max_rel_l2, bool(cmp))


def bisect_main_graph(bundle: Bundle, runtime: str, sample: int = 0, tolerance: Tolerance | None = None):
    """Binary search over the main graph's tensors: ~log2(n) probes of one extra output each, for graphs
    too large to surface every tensor at once. Returns (first bad TensorDiff or None, probes used).

    Assumes an error, once it appears, persists downstream (true for a corrupted weight or a lossy op;
    an error that cancels out later can hide from it, so `localise` stays the thorough default).
    """
    import onnx
    import onnxruntime as ort

    from edgekit.export.openvino import import_openvino
    from edgekit.export.surface import surface_tensors
    from edgekit.validation.testdata import read_testdata

    if runtime != "openvino":
        raise EdgekitError("debug --bisect: only openvino is supported")
    feed = read_testdata(bundle.path, bundle.verify)[sample][0]
    fp32 = onnx.load(str(bundle.artifact_path("onnx_fp32" if "onnx_fp32" in bundle.manifest.artifacts else "onnx")))
    ov = import_openvino()
    core = ov.Core()
    ir = core.read_model(str(bundle.artifact_path("openvino")))
    named = {n for op in ir.get_ordered_ops() for o in op.outputs() for n in o.get_names()}
    order = [(t, n, op, g) for t, n, op, g in topological_tensors(fp32) if g == "main" and t in named and op != "Constant"]
    tolerance = tolerance or DEFAULT_TOLERANCES.get(bundle.artifact("openvino").get("precision", "fp32"),
                                                    DEFAULT_TOLERANCES["fp32"])
    probes = 0

    def probe(index: int) -> TensorDiff:
        nonlocal probes
        probes += 1
        tensor, node, op, graph = order[index]
        surfaced, outputs = surface_tensors(fp32, [tensor])
        ref = ort.InferenceSession(surfaced.SerializeToString()).run([outputs[tensor]], feed)[0]
        model = ir.clone()
        port = next(o for o2 in model.get_ordered_ops() for o in o2.outputs() if tensor in o.get_names())
        model.add_outputs([port])
        result = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(feed)
        got = next(v for p, v in result.items() if tensor in p.get_names())
        return _diff(tensor, node, op, graph, ref, got, tolerance)

    lo, hi, bad = 0, len(order) - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        diff = probe(mid)
        if diff is not None and not diff.ok:
            bad, hi = diff, mid - 1
        else:
            lo = mid + 1
    return bad, probes


# --- INT8 sensitivity ----------------------------------------------------------------------------


def int8_sensitivity(bundle: Bundle, top: int | None = None) -> tuple[float, list[LayerSensitivity]]:
    """For each quantized layer of an INT8 bundle: the output error vs the fp32 reference when only that
    layer is left in float. Returns (all-int8 error, layers ranked by gain). The error is the relative L2
    over every float output of every testdata sample (samples whose exit path changed count as 1.0)."""
    import onnx

    from edgekit.calibration.accuracy import layer_sensitivity
    from edgekit.validation.testdata import read_testdata

    if bundle.artifact("onnx").get("precision") != "int8":
        raise EdgekitError(f"{bundle.path}: not an int8 bundle (export with --precision int8 first)")
    model = onnx.load(str(bundle.artifact_path("onnx")))
    fp32 = onnx.load(str(bundle.artifact_path("onnx_fp32")))
    base, ranked = layer_sensitivity(model, fp32, read_testdata(bundle.path, bundle.verify))
    return base, ranked[:top] if top else ranked


