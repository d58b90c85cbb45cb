"""GroupNorm without the 3-D detour: `Reshape → InstanceNormalization → Reshape` rewritten in 4-D (#20).

torch.onnx exports `nn.GroupNorm` on an (N, C, H, W) tensor as Reshape to (N, G, -1), InstanceNormalization
(unit scale, zero bias) and Reshape back, then the affine Mul/Add. OpenVINO's CPU plugin runs the convs
around it in a channel-blocked layout and the 3-D reshape needs a planar one, so every GroupNorm costs a
pair of reorders (39% of StoRM's time on OpenVINO; benchmarks/README.md "StoRM against PyTorch eager").
The rewrite computes the same thing on the 4-D tensor: per-channel means over (H, W), averaged over each
group's channels (equal counts per channel, so the group mean is exact), x − mean, the same for the
variance, then x · 1/√(var + ε). Only tiny (N, C, 1, 1) tensors are reshaped.
"""

from __future__ import annotations

import itertools

import numpy as np


def rewrite_group_norms(model) -> int:
    """Rewrite every matching GroupNorm in `model` (If/Loop bodies included), in place; returns how many.
    Models below opset 18 (ReduceMean's axes became an input there) are left as they are."""
    from onnx import numpy_helper

    from edgekit.export.surface import walk_graphs

    if next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0) < 18:
        return 0

    graphs = [graph for _, graph in walk_graphs(model.graph)]
    # names are unique across scopes (a subgraph can't shadow an outer name): one table serves every body,
    # whose shape constants often live in the main graph
    consts = {i.name: i for g in graphs for i in g.initializer}
    consts.update({n.output[0]: n.attribute[0].t for g in graphs for n in g.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})

    def value(name: str):
        return numpy_helper.to_array(consts[name]) if name in consts else None

    typed = {v.name: v for g in graphs for v in (*g.value_info, *g.input, *g.output)}

    def channels(name: str) -> int | None:
        """C of a rank-4 tensor whose channel count the exporter recorded, else None."""
        dims = typed[name].type.tensor_type.shape.dim if name in typed else []
        return dims[1].dim_value or None if len(dims) == 4 else None

    counter = itertools.count()  # the exporter repeats node names across bodies: new names get a number
    return sum(_rewrite_graph(graph, value, channels, counter) for graph in graphs)


def _rewrite_graph(graph, value, channels, counter) -> int:
    from onnx import helper, numpy_helper

    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    done = 0
    for norm in [n for n in graph.node if n.op_type == "InstanceNormalization"]:
        down = producer.get(norm.input[0])
        ups = consumers.get(norm.output[0], [])
        if down is None or down.op_type != "Reshape" or len(ups) != 1 or ups[0].op_type != "Reshape":
            continue
        up, x = ups[0], down.input[0]
        shape_in, scale, bias = value(down.input[1]), value(norm.input[1]), value(norm.input[2])
        width = channels(x)  # the rewrite reduces over axes 2, 3: x must be (N, C, H, W)
        if any(v is None for v in (shape_in, scale, bias, width)) or norm.output[0] in outputs:
            continue
        shape_out = value(up.input[1])  # back to x's shape: a constant, or Shape(x) when sizes are dynamic
        back = producer.get(up.input[1])
        restores = (shape_out is not None and len(shape_out) == 4 and int(shape_out[1]) == width) or (
            back is not None and back.op_type == "Shape" and back.input[0] == x
            and all(a.name == "start" and a.i == 0 for a in back.attribute))
        groups = len(scale)
        if (not restores or shape_in.tolist()[1:] != [groups, -1] or width % groups
                or not (np.all(scale == 1) and np.all(bias == 0)) or len(consumers[down.output[0]]) != 1):
            continue
        eps = next((a.f for a in norm.attribute if a.name == "epsilon"), 1e-5)
        y, tag = up.output[0], f"{norm.name or norm.output[0]}_gn{next(counter)}"
        consts = {"axes_hw": np.array([2, 3], np.int64), "axis_c": np.array([2], np.int64),
                  "grouped": np.array([0, groups, -1], np.int64),
                  "spread": np.array([1, 1, width // groups], np.int64),
                  "per_channel": np.array([0, width, 1, 1], np.int64), "eps": np.array(eps, np.float32)}
        names = {k: f"{tag}/gn4d_{k}" for k in consts}
        for k, v in consts.items():
            graph.initializer.append(numpy_helper.from_array(v, names[k]))

        def group_mean(tensor: str, what: str) -> tuple[list, str]:
            p = f"{tag}/gn4d_{what}"
            nodes = [helper.make_node("ReduceMean", [tensor, names["axes_hw"]], [f"{p}_c"], keepdims=1),
                     helper.make_node("Reshape", [f"{p}_c", names["grouped"]], [f"{p}_g"]),
                     helper.make_node("ReduceMean", [f"{p}_g", names["axis_c"]], [f"{p}_gm"], keepdims=1),
                     helper.make_node("Expand", [f"{p}_gm", names["spread"]], [f"{p}_e"]),
                     helper.make_node("Reshape", [f"{p}_e", names["per_channel"]], [f"{p}_m"])]
            return nodes, f"{p}_m"

        mean_nodes, mean = group_mean(x, "mean")
        centred = f"{tag}/gn4d_centred"
        var_nodes, var = group_mean(f"{tag}/gn4d_sq", "var")
        new = [*mean_nodes, helper.make_node("Sub", [x, mean], [centred]),
               helper.make_node("Mul", [centred, centred], [f"{tag}/gn4d_sq"]), *var_nodes,
               helper.make_node("Add", [var, names["eps"]], [f"{tag}/gn4d_ve"]),
               helper.make_node("Sqrt", [f"{tag}/gn4d_ve"], [f"{tag}/gn4d_std"]),
               helper.make_node("Div", [centred, f"{tag}/gn4d_std"], [y])]
        position = list(graph.node).index(down)  # x exists there; y's readers all come after `up`
        for old in (down, norm, up):
            graph.node.remove(old)
        for k, node in enumerate(new):
            node.name = f"{tag}/gn4d_{k}"
            graph.node.insert(position + k, node)
        done += 1
    return done
