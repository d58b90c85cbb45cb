"""Surface tensors that live inside `If` branches and `Loop` bodies as main-graph outputs, so a runtime
can report them: calibration statistics (INT8 scales for subgraph convs) and mismatch localisation.

ONNX Runtime and Polygraphy can mark any main-graph tensor as an output, but not one inside a subgraph.
A tensor in an If branch leaves through a new branch output (the other branch returns an empty tensor of
the same type); a tensor in a Loop body leaves as a new scan output, stacked over iterations. Nested
subgraphs thread the tensor up one level at a time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterable, Iterator

SURFACE_PREFIX = "edgekit_surface__"


@dataclass(frozen=True)
class GraphRef:
    """Where a graph sits: the chain of (node name, attribute name) from the main graph; () is the main graph."""

    path: tuple[tuple[str, str], ...]

    def __str__(self) -> str:
        return "/".join(f"{n}.{a}" for n, a in self.path) or "main"


def walk_graphs(graph, path=()) -> Iterator[tuple[GraphRef, object]]:
    """Every graph (the main one first) with its location."""
    import onnx

    yield GraphRef(tuple(path)), graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from walk_graphs(attr.g, (*path, (node.name, attr.name)))


def defining_graphs(model) -> dict[str, GraphRef]:
    """Tensor name → the graph that defines it (node output, graph input or initializer)."""
    where: dict[str, GraphRef] = {}
    for ref, graph in walk_graphs(model.graph):
        for name in [*(v.name for v in graph.input), *(t.name for t in graph.initializer),
                     *(o for n in graph.node for o in n.output)]:
            if name:
                where.setdefault(name, ref)
    return where


def surface_tensors(model, names: Iterable[str]):
    """Return (a copy of `model` whose main graph also outputs each tensor in `names`, {name: output name}).

    Main-graph tensors are output as they are; subgraph tensors come out of If nodes as-is (or empty when
    the other branch ran) and out of Loop nodes stacked along a new leading iteration axis.
    """
    import onnx

    model = copy.deepcopy(model)
    _name_control_flow_nodes(model)
    where = defining_graphs(model)
    graphs = {ref: graph for ref, graph in walk_graphs(model.graph)}
    types = _elem_types(model)
    used = {n for _, g in graphs.items() for n in _all_names(g)}
    out_names: dict[str, str] = {}
    for name in dict.fromkeys(names):
        if name not in where:
            raise KeyError(f"no tensor named {name!r} in the model")
        ref = where[name]
        current = _fresh(f"{SURFACE_PREFIX}{name}", used)
        graph = graphs[ref]
        graph.node.append(onnx.helper.make_node("Identity", [name], [current]))
        elem = types.get(name, onnx.TensorProto.FLOAT)
        # climb: add `current` as an output of each enclosing subgraph, then of its If/Loop node
        for depth in range(len(ref.path), 0, -1):
            node_name, attr_name = ref.path[depth - 1]
            parent = graphs[GraphRef(ref.path[: depth - 1])]
            node = next(n for n in parent.node if n.name == node_name)
            sub = graphs[GraphRef(ref.path[:depth])]
            sub.output.append(onnx.helper.make_tensor_value_info(current, elem, None))
            if node.op_type == "If":
                other = "else_branch" if attr_name == "then_branch" else "then_branch"
                sibling = graphs[GraphRef((*ref.path[: depth - 1], (node_name, other)))]
                empty = _fresh(f"{current}__empty", used)
                sibling.node.append(onnx.helper.make_node(
                    "Constant", [], [empty], value=onnx.helper.make_tensor(empty, elem, [0], [])))
                sibling.output.append(onnx.helper.make_tensor_value_info(empty, elem, None))
            elif node.op_type not in ("Loop", "Scan"):
                raise ValueError(f"cannot surface through {node.op_type} node {node_name!r}")
            lifted = _fresh(current, used)
            node.output.append(lifted)
            current = lifted
        model.graph.output.append(onnx.helper.make_tensor_value_info(current, elem, None))
        out_names[name] = current
    return model, out_names


def _name_control_flow_nodes(model) -> None:
    """Paths go through node names: give every unnamed node that holds a subgraph a unique one."""
    taken = {n.name for _, g in walk_graphs(model.graph) for n in g.node}
    for _, graph in walk_graphs(model.graph):
        for node in graph.node:
            if not node.name and any(a.type == a.GRAPH for a in node.attribute):
                node.name = _fresh(f"{node.op_type}_{len(taken)}", taken)


def _elem_types(model) -> dict[str, int]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for _, graph in walk_graphs(inferred.graph):
        for value in (*graph.input, *graph.output, *graph.value_info):
            if value.type.tensor_type.elem_type:
                types[value.name] = value.type.tensor_type.elem_type
        for init in graph.initializer:
            types[init.name] = init.data_type
    return types


def _all_names(graph) -> Iterator[str]:
    yield from (v.name for v in (*graph.input, *graph.output, *graph.value_info))
    yield from (t.name for t in graph.initializer)
    for node in graph.node:
        yield from node.input
        yield from node.output


def _fresh(base: str, used: set[str]) -> str:
    name, i = base, 1
    while name in used:
        name, i = f"{base}_{i}", i + 1
    used.add(name)
    return name
