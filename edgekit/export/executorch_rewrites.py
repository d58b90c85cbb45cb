"""Edge-graph rewrites before XNNPACK partitioning (see `edgekit.export.executorch`), in every control-flow
branch too.

`global_means`: zoo:rbqe's ECA pools write the global spatial mean as `x.sum(3).mean(2) / W`, with W counted
as `ones_like(x[:1, :1, :1, :]).sum(3)` (`zoo.rbqe_blocks.Eca.pool`: two reductions so OpenVINO's CPU plugin
does not merge them into one imprecise mean, and W from tensor ops so torch.export can save the program).
XNNPACK delegates none of that form, so each pool left 9 ops on ExecuTorch's single-threaded portable kernels
(3 slices, full_like, 2 sums, mean, div; 60 pools at RBQE's exit 5). As `mean(x, [2, 3], keepdim)` it is
one op that XNNPACK takes. Measured in benchmarks/README.md ("ExecuTorch").
"""

from __future__ import annotations


def global_means(graph_module) -> int:
    """Rewrite each `sum(x, [3]).mean([2]) / sum(full_like(slices of x, 1), [3])` (keepdim) into
    `mean(x, [2, 3], keepdim=True)`, in the graph and its cond/scan branch graphs; returns how many."""
    from executorch.exir.dialects._ops import ops as exir_ops
    from executorch.exir.graph_module import get_control_flow_submodules

    aten = exir_ops.edge.aten
    count = 0
    for node in list(graph_module.graph.nodes):
        if node.op != "call_function" or node.target is not aten.div.Tensor:
            continue
        x = _pooled_input(node, aten)
        if x is None:
            continue
        with graph_module.graph.inserting_before(node):
            mean = graph_module.graph.call_function(aten.mean.dim, (x, [2, 3], True))
        mean.meta = dict(node.meta)
        node.replace_all_uses_with(mean)
        graph_module.graph.erase_node(node)
        count += 1
    if count:
        graph_module.graph.eliminate_dead_code()
        graph_module.recompile()
    for _, branch, _ in get_control_flow_submodules(graph_module):
        count += global_means(branch)
    return count


def _pooled_input(div, aten):
    """x when `div` is the written-out global mean of x (see the module docstring), else None."""
    numerator, denominator = div.args
    if not (_is(numerator, aten.mean.dim, [2]) and _is(numerator.args[0], aten.sum.dim_IntList, [3])):
        return None
    x = numerator.args[0].args[0]
    if not _is(denominator, aten.sum.dim_IntList, [3]):
        return None
    ones = denominator.args[0]
    if getattr(ones, "target", None) is not aten.full_like.default or ones.args[1] != 1:
        return None
    source = ones.args[0]
    while getattr(source, "target", None) is aten.slice_copy.Tensor and _keeps_width(source):
        source = source.args[0]
    if source is not x or len(x.meta["val"].shape) != 4:
        return None
    return x


def _keeps_width(node) -> bool:
    """A slice of N, C or H, or a whole-width slice of W (`[:]` on a dynamic W exports as 0:INT64_MAX)."""
    dim, start, end, step = (list(node.args[1:]) + [0, None, None, 1][len(node.args) - 1:])[:4]
    if dim in (0, 1, 2):
        return True
    return dim in (3, -1) and start in (0, None) and (end is None or (isinstance(end, int) and end >= 2**62)) \
        and step == 1


def _is(node, target, dims) -> bool:
    """`node` is target(input, dims, keepdim=True)."""
    return (getattr(node, "op", None) == "call_function" and node.target is target and list(node.args[1]) == dims
            and (node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)) is True)
