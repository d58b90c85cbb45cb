"""Ranks for `Loop` body inputs that an ONNX file leaves untyped.

ONNX lets a `Loop` body declare its carried inputs without a shape, and some exporters do. ONNX Runtime
runs such a file, but OpenVINO's converter gives the body a Parameter of unknown rank and fails on the
first op that needs one ("Conversion failed for Conv-18 ... While validating ONNX node"). Each such input
gets the rank of the value the loop starts from (found by ONNX shape inference), with every dimension left
dynamic, since a carried value may change shape from one iteration to the next; the iteration count and
condition get their scalar shape.
"""

from __future__ import annotations

from edgekit.export.surface import walk_graphs


def fill_loop_input_ranks(model) -> list[str]:
    """Rewrite `model` in place; return the body inputs given a rank (empty: nothing was missing)."""
    import onnx

    loops = [(graph, node) for _, graph in walk_graphs(model.graph) for node in graph.node
             if node.op_type == "Loop"]
    if not any(not i.type.tensor_type.HasField("shape") for _, node in loops for i in _body(node).input):
        return []
    ranks = _ranks(onnx.shape_inference.infer_shapes(model))
    filled = []
    for _, node in loops:
        body = _body(node)
        for k, value in enumerate(body.input):
            tensor = value.type.tensor_type
            if tensor.HasField("shape"):
                continue
            rank = 0 if k < 2 else ranks.get(node.input[k]) if k < len(node.input) else None
            if rank is None:
                continue
            tensor.shape.SetInParent()  # rank 0 is an empty (set) shape
            for _ in range(rank):
                tensor.shape.dim.add()
            filled.append(value.name)
    return filled


def _body(node):
    return next(a.g for a in node.attribute if a.name == "body")


def _ranks(model) -> dict[str, int]:
    """Name → rank of every value whose rank shape inference knows, in every graph."""
    ranks = {}
    for _, graph in walk_graphs(model.graph):
        for value in [*graph.input, *graph.value_info, *graph.output]:
            if value.type.tensor_type.HasField("shape"):
                ranks[value.name] = len(value.type.tensor_type.shape.dim)
        for tensor in graph.initializer:
            ranks[tensor.name] = len(tensor.dims)
    return ranks
