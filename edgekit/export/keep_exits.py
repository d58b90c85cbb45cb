"""Early exits a run-time policy never takes, dropped from the graph (`--keep-exits`).

A model with early exits exports as a chain of nested `If`s (DESIGN.md §6): the `If` deciding exit k has
a branch that returns exit k's output with a constant exit index, and a branch that goes on to the next
`If` (the last `If` chooses between the last two exits). `keep_exits` walks that chain from the output the
model's exit knob names (`path_output`) and, for every exit not kept, replaces its `If` by the branch that
runs instead: the `If` of an exit below the deepest kept one by its going-on branch, the `If` of the
deepest kept exit by its exit branch (nothing deeper is ever run). The exit index keeps its values, so
tuned policies, histograms and apps read it as before.

Why: on OpenVINO's CPU plugin every `If` a call crosses costs layout reorders at its ports, about as much
as the network itself at RBQE's exit 5 (benchmarks/README.md, "Where the `If` time goes"); an exit the
policy never takes costs that boundary and its decision for nothing.

Hand-written: onnx's inliner inlines functions, not control flow, and onnxslim keeps `If`s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError
from edgekit.export.surface import _all_names, _fresh, walk_graphs


@dataclass
class ExitLevel:
    graph: object  # the GraphProto holding the If
    node: object  # the If
    exits: dict  # branch attribute ("then_branch"/"else_branch") → the exit index that branch returns


def exit_chain(model, path_output: str, strict: bool = True) -> list[ExitLevel]:
    """The nested `If`s that decide `path_output`, outermost first. EdgekitError when the output does not
    come out of such a chain (a constant index, or one computed otherwise); with `strict=False` an output
    that no `If` decides (every exit but one dropped) gives []."""
    levels, graph, name, scopes = [], model.graph, path_output, [model.graph]
    while True:
        node, name = _producer(graph, name)
        if node is None or node.op_type != "If":
            if not levels:
                if not strict:
                    return []
                raise EdgekitError(f"--keep-exits: output {path_output!r} does not come from an If "
                                   f"(found {node.op_type if node is not None else 'no node'}): no exits to drop")
            raise EdgekitError(f"--keep-exits: {levels[-1].node.name}: a branch of the exit chain computes "
                               f"{path_output!r} with {node.op_type if node is not None else 'no node'}, "
                               f"not a constant or a nested If")
        position = list(node.output).index(name)
        branches = {a.name: a.g for a in node.attribute if a.name in ("then_branch", "else_branch")}
        exits = {}
        for attr, body in branches.items():
            value = _constant(body.output[position].name, [*scopes, body])
            if value is not None:
                exits[attr] = value
        if not exits:
            raise EdgekitError(f"--keep-exits: {node.name}: neither branch returns a constant {path_output!r}")
        levels.append(ExitLevel(graph, node, exits))
        if len(exits) == 2:
            return levels
        going_on = next(a for a in branches if a not in exits)
        graph, name = branches[going_on], branches[going_on].output[position].name
        scopes = [*scopes, graph]


def exit_values(levels: list[ExitLevel]) -> list[int]:
    return sorted({v for level in levels for v in level.exits.values()})


def keep_exits(model, path_output: str, keep) -> dict:
    """Drop every exit not in `keep` (values of `path_output`) from `model`, in place.
    Returns {"path_output", "kept", "dropped", "if_removed"}."""
    levels = exit_chain(model, path_output)
    exits = exit_values(levels)
    keep = sorted({int(k) for k in keep})
    unknown = [k for k in keep if k not in exits]
    if not keep or unknown:
        raise EdgekitError(f"--keep-exits {','.join(map(str, keep))}: the model's {path_output} takes the values "
                           f"{','.join(map(str, exits))}" + (f"; {','.join(map(str, unknown))} is not one" if unknown else ""))
    before = _count_ifs(model.graph)
    inlined = 0
    while True:
        step = _next_inline(exit_chain(model, path_output, strict=False), keep)
        if step is None:
            break
        _inline(model, *step)
        inlined += 1
    if inlined:
        _drop_dead(model)
    return {"path_output": path_output, "kept": keep, "dropped": [e for e in exits if e not in keep],
            "if_removed": before - _count_ifs(model.graph)}


def keep_exits_file(path: Path, path_output: str, keep) -> dict:
    """`keep_exits` on an ONNX file, rewritten in place (weights stay where they are)."""
    from edgekit.export.controlflow import load_onnx, save_onnx_in_place

    model = load_onnx(Path(path))
    record = keep_exits(model, path_output, keep)
    save_onnx_in_place(model, path)
    return record


def stage_keep_exits(root: Path, artifacts: dict, knobs, keep, reporter) -> dict:
    """The export stage: `keep_exits` on root/model.onnx with the path output of the model's exit knob;
    records `artifacts["onnx"]["kept_exits"]` and returns the new control-flow counts."""
    from edgekit.export.controlflow import control_flow_counts, load_onnx

    knob = next((k for k in knobs if k.kind == "exit_threshold"), None)
    if knob is None:
        raise EdgekitError("--keep-exits: the model declares no exit knob (a tuning_knobs() entry of kind "
                           "exit_threshold naming its path_output): it has no exits to choose from")
    with reporter.stage(f"onnx: keep exits {','.join(map(str, keep))} ({knob.path_output})"):
        record = keep_exits_file(Path(root) / "model.onnx", knob.path_output, keep)
    artifacts["onnx"] = {**artifacts["onnx"], "kept_exits": record}
    return control_flow_counts(load_onnx(Path(root) / "model.onnx", load_external_data=False))


def _next_inline(levels: list[ExitLevel], keep: list[int]):
    """(graph, If, branch to inline) for the outermost `If` that `keep` makes pointless, or None."""
    deepest = max(keep)
    for level in levels:
        if len(level.exits) == 2:  # the last If: two exits
            kept = [a for a, v in level.exits.items() if v in keep]
            return (level.graph, level.node, kept[0]) if len(kept) == 1 else None
        (attr, value), = level.exits.items()
        going_on = "else_branch" if attr == "then_branch" else "then_branch"
        if value not in keep:
            return level.graph, level.node, going_on
        if value == deepest:
            return level.graph, level.node, attr
    return None


def _inline(model, graph, node, attr: str) -> None:
    """Replace `node` (an If in `graph`) by the nodes of its branch `attr`; the branch's names that clash
    with a name elsewhere in the model are renamed, and its outputs feed Identity nodes named as the If's."""
    from onnx import helper

    body = next(a.g for a in node.attribute if a.name == attr)
    inside = {n for _, g in walk_graphs(body) for n in _all_names(g)}
    outside = set(node.output) | set(_names_outside(model.graph, node))
    defined = [*(o for n in body.node for o in n.output), *(t.name for t in body.initializer)]
    used = outside | inside
    renames = {n: _fresh(n, used) for n in defined if n in outside}
    for _, g in walk_graphs(body):
        for n in g.node:
            n.input[:] = [renames.get(x, x) for x in n.input]
            n.output[:] = [renames.get(x, x) for x in n.output]
        for v in [*g.output, *g.value_info]:
            v.name = renames.get(v.name, v.name)
        for t in g.initializer:
            t.name = renames.get(t.name, t.name)
    outs = [helper.make_node("Identity", [b.name], [o], name=f"{node.name}/{attr}/out{i}")
            for i, (o, b) in enumerate(zip(node.output, body.output))]
    initializers, value_info = [_copy(t) for t in body.initializer], [_copy(v) for v in body.value_info]
    index = next(i for i, n in enumerate(graph.node) if list(n.output) == list(node.output))
    nodes = [_copy(n) for n in [*graph.node[:index], *body.node, *outs, *graph.node[index + 1:]]]
    del graph.node[:]  # the If (and the branch `body` points into) goes; everything else was copied
    graph.node.extend(nodes)
    graph.initializer.extend(initializers)
    graph.value_info.extend(value_info)


def _names_outside(graph, skip):
    """Every name in `graph` and its subgraphs, except in the subgraphs of the node `skip`."""
    yield from _all_names(graph)
    for n in graph.node:
        if list(n.output) == list(skip.output):
            continue
        for a in n.attribute:
            if a.HasField("g"):
                yield from _names_outside(a.g, skip)


def _copy(message):
    copy = type(message)()
    copy.CopyFrom(message)
    return copy


def _drop_dead(model) -> None:
    """Remove nodes and initializers nothing reads any more (the dropped exits' heads and decisions), in
    every graph; a subgraph's reads of outer names count as uses."""
    while True:
        uses = set()
        for _, g in walk_graphs(model.graph):
            uses.update(x for n in g.node for x in n.input)
            uses.update(v.name for v in g.output)
        removed = 0
        for _, g in walk_graphs(model.graph):
            live = [n for n in g.node if any(o in uses for o in n.output if o)]
            removed += len(g.node) - len(live)
            if len(live) != len(g.node):
                kept = [_copy(n) for n in live]
                del g.node[:]
                g.node.extend(kept)
            dead = [t for t in g.initializer if t.name not in uses]
            for t in dead:
                g.initializer.remove(t)
        if not removed:
            return


def _count_ifs(graph) -> int:
    return sum(n.op_type == "If" for _, g in walk_graphs(graph) for n in g.node)


def _producer(graph, name: str):
    """(the node of `graph` that outputs `name`, the output's name), looking through Identity nodes."""
    by_output = {o: n for n in graph.node for o in n.output}
    node = by_output.get(name)
    while node is not None and node.op_type == "Identity" and node.input[0] in by_output:
        name = node.input[0]
        node = by_output[name]
    return node, name


def _constant(name: str, scopes: list) -> int | None:
    """The integer value of `name` if it is a constant: an initializer or a Constant node's output in the
    innermost graph that defines it (through Identity nodes), else None."""
    from onnx import numpy_helper

    for graph in reversed(scopes):
        for tensor in graph.initializer:
            if tensor.name == name:
                return _scalar(numpy_helper.to_array(tensor))
        for node in graph.node:
            if name in node.output:
                if node.op_type == "Identity":
                    return _constant(node.input[0], scopes[:scopes.index(graph) + 1])
                if node.op_type == "Constant":
                    attr = next((a for a in node.attribute if a.name == "value"), None)
                    return _scalar(numpy_helper.to_array(attr.t)) if attr is not None else None
                return None
    return None


def _scalar(array) -> int | None:
    return int(array.reshape(-1)[0]) if array.size == 1 and array.dtype.kind in "iu" else None
