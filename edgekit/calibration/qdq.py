"""Symmetric INT8 Q/DQ for ONNX graphs, inside `If` branches and `Loop` bodies too.

Written here rather than taken from NNCF or onnxruntime.quantization because both quantize the main
graph only (convs in If branches and Loop bodies stay fp32, and a sampler spends ~all its time in its
Loop body), and NNCF's ONNX path uses UINT8 activations with zero points, which TensorRT(-RTX)
reinterprets as INT8. One symmetric signed-INT8 graph serves ONNX Runtime, OpenVINO (which turns
Q/DQ into FakeQuantize) and TensorRT alike.

Activations: per-tensor scale clip/127, the clip from calibration statistics
(`quantize.activation_ranges`). Weights: per-output-channel int8 initializers with DequantizeLinear.
Bias and every other op stay fp32.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

from edgekit.export.subgraph_weights import localize_initializers
from edgekit.export.surface import GraphRef, walk_graphs

# op type → (activation input indices, weight input index, weight channel axis)
QUANTIZABLE = {
    "Conv": ((0,), 1, 0),
    "ConvTranspose": ((0,), 1, 1),
    "MatMul": ((0,), 1, 1),
    "Gemm": ((0,), 1, 0),  # axis fixed below from transB
}
COUNTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")


@dataclass
class QuantCounts:
    total: int = 0
    quantized: int = 0
    in_subgraphs: int = 0
    quantized_in_subgraphs: int = 0
    unquantized: list[str] = field(default_factory=list)  # "graph:node (op)"

    def to_json(self) -> dict:
        return {"total": self.total, "quantized": self.quantized, "in_subgraphs": self.in_subgraphs,
                "quantized_in_subgraphs": self.quantized_in_subgraphs, "unquantized": self.unquantized}


def unique_node_names(model) -> int:
    """Rename nodes whose name repeats in another (sub)graph; return how many were renamed.

    The torch exporter reuses node names across If/Loop bodies, and int8 exclusions, sensitivity and
    debug reports name nodes: a name must point at one node.
    """
    seen: set[str] = set()
    renamed = 0
    for graph_index, (_, graph) in enumerate(walk_graphs(model.graph)):
        for node in graph.node:
            if node.name and node.name in seen:
                base, k = f"{node.name}__g{graph_index}", 0
                while f"{base}_{k}" in seen:
                    k += 1
                node.name = f"{base}_{k}" if k else base
                renamed += 1
            seen.add(node.name)
    return renamed


def quantizable_nodes(model) -> list[tuple[GraphRef, object]]:
    """Every Conv/ConvTranspose/MatMul/Gemm, in the main graph and in every subgraph."""
    return [(ref, node) for ref, graph in walk_graphs(model.graph) for node in graph.node
            if node.op_type in QUANTIZABLE]


def initializers(model) -> dict[str, object]:
    return {t.name: t for _, g in walk_graphs(model.graph) for t in g.initializer}


def activation_names(model, exclude: set[str] = frozenset()) -> list[str]:
    """The tensors whose ranges calibration must measure: quantizable nodes' non-constant inputs."""
    inits = initializers(model)
    names = []
    for _, node in quantizable_nodes(model):
        if node.name in exclude:
            continue
        acts, weight, _ = QUANTIZABLE[node.op_type]
        indices = list(acts) + ([weight] if node.input[weight] not in inits else [])
        names += [node.input[i] for i in indices]
    return list(dict.fromkeys(names))


def qdq_from_onnx(model, ranges: dict[str, float], exclude: set[str] = frozenset()):
    """Return a copy of `model` with symmetric INT8 Q/DQ before every quantizable node not in `exclude`.

    `ranges` maps each activation name (see `activation_names`) to its absolute maximum.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = copy.deepcopy(model)
    inits = initializers(model)
    main = model.graph
    used = {n for _, g in walk_graphs(main) for n in [*(x for node in g.node for x in (*node.input, *node.output)),
                                                       *(t.name for t in g.initializer)]}
    counter = [0]

    def fresh(base: str) -> str:
        while True:
            counter[0] += 1
            name = f"{base}__q{counter[0]}"
            if name not in used:
                used.add(name)
                return name

    def constant(name: str, array: np.ndarray) -> str:
        main.initializer.append(numpy_helper.from_array(array, name))  # main graph: visible in every subgraph
        return name

    act_cache: dict[tuple[int, str], str] = {}
    for graph_index, (_ref, graph) in enumerate(walk_graphs(main)):
        new_nodes = []
        for node in graph.node:
            if node.op_type not in QUANTIZABLE or node.name in exclude:
                new_nodes.append(node)
                continue
            acts, weight_index, axis = QUANTIZABLE[node.op_type]
            if node.op_type == "Gemm":
                trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
                axis = 0 if trans_b else 1
            weight_name = node.input[weight_index]
            act_indices = list(acts) + ([weight_index] if weight_name not in inits else [])
            for i in act_indices:
                source = node.input[i]
                key = (graph_index, source)
                if key not in act_cache:  # one Q/DQ pair per tensor per graph, shared by its consumers
                    if source not in ranges:
                        raise KeyError(f"no calibration range for {source!r} (input of {node.name})")
                    scale = np.float32(max(float(ranges[source]), 1e-8) / 127.0)
                    s = constant(fresh(f"{source}_scale"), np.array(scale, np.float32))
                    z = constant(fresh(f"{source}_zero"), np.array(0, np.int8))
                    q, dq = fresh(f"{source}_q"), fresh(f"{source}_dq")
                    new_nodes.append(helper.make_node("QuantizeLinear", [source, s, z], [q], name=fresh("Q")))
                    new_nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [dq], name=fresh("DQ")))
                    act_cache[key] = dq
                node.input[i] = act_cache[key]
            if weight_name in inits:
                w = numpy_helper.to_array(inits[weight_name]).astype(np.float32)
                w_axis = axis if w.ndim > 1 else 0
                reduce = tuple(d for d in range(w.ndim) if d != w_axis)
                absmax = np.abs(w).max(axis=reduce) if reduce else np.abs(w)
                scale = (np.maximum(absmax, 1e-12) / 127.0).astype(np.float32)
                shape = [1] * w.ndim
                shape[w_axis] = -1
                w_q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
                wq = constant(fresh(f"{weight_name}_int8"), w_q)
                ws = constant(fresh(f"{weight_name}_scale"), scale)
                wz = constant(fresh(f"{weight_name}_zero"), np.zeros_like(scale, dtype=np.int8))
                wdq = fresh(f"{weight_name}_dq")
                new_nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz], [wdq], name=fresh("DQ"),
                                                  axis=w_axis))
                node.input[weight_index] = wdq
            new_nodes.append(node)
        del graph.node[:]
        graph.node.extend(new_nodes)
    _drop_unused_initializers(main)
    # the int8 weights were added to the main graph: into the bodies that read them, as the fp32 export does
    localize_initializers(model)
    model.graph.doc_string = "edgekit int8: symmetric Q/DQ (activations per-tensor, weights per-channel)"
    onnx.checker.check_model(model)
    return model


def quantized_counts(model) -> QuantCounts:
    """Conv/MatMul/Gemm ops and how many read DequantizeLinear outputs, through subgraphs."""
    producers = {o: n.op_type for _, g in walk_graphs(model.graph) for n in g.node for o in n.output}
    counts = QuantCounts()
    for ref, node in quantizable_nodes(model):
        sub = bool(ref.path)
        counts.total += 1
        counts.in_subgraphs += sub
        acts, weight, _ = QUANTIZABLE[node.op_type]
        if all(producers.get(node.input[i]) == "DequantizeLinear" for i in (*acts, weight)):
            counts.quantized += 1
            counts.quantized_in_subgraphs += sub
        else:
            counts.unquantized.append(f"{ref}:{node.name} ({node.op_type})")
    return counts


# A consumer (op type, input index) whose tensor only steers control flow: If's condition, Loop's M and cond.
CONTROL_INPUTS = {("If", 0), ("Loop", 0), ("Loop", 1)}


def decision_nodes(model, every_op: bool = False) -> set[str]:
    """Quantizable nodes (`every_op`: nodes of any type) whose results only decide control flow (RBQE's
    IQAM before each exit's If).

    Such a node does little compute but sits on a threshold: INT8 error there flips branches (exit paths
    matched fp32 on 80% of held-out RBQE inputs with IQAM's MatMuls quantized), so int8 keeps it in float.
    A node is decision-only when every consumer of every output is a control input or decision-only;
    a use from inside a subgraph (outer-scope reference) or as a graph output counts as data.
    """
    import onnx

    names: set[str] = set()
    for _, graph in walk_graphs(model.graph):
        nodes = list(graph.node)  # indices, not id(): protobuf wrappers are transient and ids get reused
        consumers: dict[str, list[tuple[int, int]]] = {}  # tensor → [(consumer index, input index)]
        for k, node in enumerate(nodes):
            for i, name in enumerate(node.input):
                consumers.setdefault(name, []).append((k, i))
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    for _, sub in walk_graphs(attr.g):  # a branch may return an outer tensor as is
                        for name in [x for inner in sub.node for x in inner.input] + [o.name for o in sub.output]:
                            consumers.setdefault(name, []).append((k, -1))
        outputs = {o.name for o in graph.output}
        decided: set[int] = set()
        changed = True
        while changed:
            changed = False
            for k, node in enumerate(nodes):
                if k in decided or not node.output or any(o in outputs for o in node.output):
                    continue
                uses = [c for o in node.output for c in consumers.get(o, [])]
                if uses and all((nodes[c].op_type, i) in CONTROL_INPUTS or c in decided for c, i in uses):
                    decided.add(k)
                    changed = True
        names |= {nodes[k].name for k in decided if every_op or nodes[k].op_type in QUANTIZABLE}
    return names


# A conv reading a model input with at most this many channels stays float (see `input_layers`).
INPUT_LAYER_MAX_CHANNELS = 4


def input_layers(model) -> dict[str, str]:
    """Convs of the main graph that read a model input with ≤ INPUT_LAYER_MAX_CHANNELS channels → why
    they stay float.

    Per-tensor symmetric int8 of a model input is coarser than the data itself: an image in [0, 1] gets
    steps of 1/127, two 8-bit grey levels, and that error reaches every later layer. Such a layer's
    compute is tiny (≤ 4 input channels against 32+ elsewhere). Measured on zoo:rbqe: with only the
    stem's first conv in float, exit paths matched fp32 on 92% of held-out inputs instead of 78%.
    """
    graph_inputs = {i.name for i in model.graph.input}
    inits = {t.name: t for t in model.graph.initializer}
    found = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "ConvTranspose") or node.input[0] not in graph_inputs:
            continue
        weight = inits.get(node.input[1])
        if weight is None:
            continue
        dims = list(weight.dims)
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        channels = dims[1] * group if node.op_type == "Conv" else dims[0]
        if channels <= INPUT_LAYER_MAX_CHANNELS:
            found[node.name] = (f"reads model input {node.input[0]!r} ({channels} channel(s)): int8 steps of "
                                f"its range would be coarser than the data, and its compute is small")
    return found


def _drop_unused_initializers(main) -> None:
    """In every graph: a float weight the export had moved into a body is unused once its int8 twin exists."""
    used = {x for _, g in walk_graphs(main)
            for x in [*(x for n in g.node for x in n.input), *(o.name for o in g.output)]}
    for _, graph in walk_graphs(main):
        keep = [t for t in graph.initializer if t.name in used]
        del graph.initializer[:]
        graph.initializer.extend(keep)
