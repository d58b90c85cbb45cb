"""Edge-graph rewrites before XNNPACK partitioning (see `edgekit.export.executorch`), in every control-flow
branch too.

`global_means`: zoo:rbqe's ECA pools write the global spatial mean as `x.sum(3).mean(2) / W`, with W counted
as `ones_like(x[:1, :1, :1, :]).sum(3)` (`zoo.rbqe_blocks.Eca.pool`: two reductions so OpenVINO's CPU plugin
does not merge them into one imprecise mean, and W from tensor ops so torch.export can save the program).
XNNPACK delegates none of that form, so each pool left 9 ops on ExecuTorch's single-threaded portable kernels
(3 slices, full_like, 2 sums, mean, div; 60 pools at RBQE's exit 5). As `mean(x, [2, 3], keepdim)` it is
one op that XNNPACK takes. Measured in benchmarks/README.md ("ExecuTorch").

`precise_group_norms`: ExecuTorch's portable `native_group_norm` sums each group in one float32 pass (and takes
the variance as E[x²] − E[x]²); XNNPACK's `mean` also sums sequentially. On zoo:storm's norms (up to 24,576
elements a group) either is 1.3–2.7e-6 rel L2 from float64, against PyTorch's 5–7e-8, and StoRM's Tweedie step
amplifies it: the full `.pte` missed the 1e-5 fp32 gate at N = 1 (1.77e-5; ONNX Runtime 2.9e-6). Each 4-D
GroupNorm is decomposed on the program (branches included) into a two-pass form whose means run in three
short XNNPACK reductions (over W, then H, then the group's channels): 0.8–1.7e-7 a layer, and all of it
delegated. Measured in benchmarks/README.md ("StoRM's GroupNorms: the `.pte` within the fp32 gate").
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


def precise_group_norms(program):
    """`program` (an ExportedProgram) with every GroupNorm of a 4-D input decomposed as described in the module
    docstring, in its cond/scan branches too, and how many; the program unchanged when it has none."""
    import torch

    aten = torch.ops.aten
    targets = (aten.group_norm.default, aten.native_group_norm.default)
    count = sum(1 for module in program.graph_module.modules() if isinstance(module, torch.fx.GraphModule)
                for node in module.graph.nodes
                if node.op == "call_function" and node.target in targets and _rank(node.args[0]) == 4)
    if not count:
        return program, 0
    return program.run_decompositions({aten.native_group_norm.default: _native_group_norm,
                                       aten.group_norm.default: _group_norm}), count


def _rank(node) -> int | None:
    value = getattr(node, "meta", {}).get("val")
    return None if value is None else value.dim()


def _group_mean(v, n, g, d, h, w):
    """The mean of each group of `v` (n, g·d, h, w), shape (n, g, 1, 1): over w, then h, then d, each a mean
    over the last two dims of a 4-D view (the form XNNPACK delegates) of at most max(w, h, d) elements."""
    m = v.reshape(n, g * d * h, w, 1).mean([2, 3], keepdim=True)
    m = m.reshape(n, g * d, h, 1).mean([2, 3], keepdim=True)
    return m.reshape(n, g, d, 1).mean([2, 3], keepdim=True)


def _native_group_norm(x, weight, bias, N, C, HxW, group, eps):
    import torch

    if x.dim() != 4:  # NotImplemented: not decomposed; rank-3/5 norms keep the kernel (only 4-D was measured)
        return NotImplemented
    n, c, h, w = x.shape
    d = c // group
    mean = _group_mean(x, n, group, d, h, w)
    centred = x.reshape(n, group, d * h, w) - mean
    rstd = torch.rsqrt(_group_mean(centred * centred, n, group, d, h, w) + eps)
    y = (centred * rstd).reshape(n, c, h, w)
    if weight is not None:
        y = y * weight.reshape(1, c, 1, 1)
    if bias is not None:
        y = y + bias.reshape(1, c, 1, 1)
    return y, mean.reshape(n, group), rstd.reshape(n, group)


def _group_norm(x, num_groups, weight=None, bias=None, eps=1e-5, cudnn_enabled=True):
    if x.dim() != 4:
        return NotImplemented
    return _native_group_norm(x, weight, bias, None, None, None, num_groups, eps)[0]
