"""XNNPACK inside `cond` branches and `scan` bodies (see `edgekit.export.executorch`).

ExecuTorch lowers tagged nodes in control-flow submodules, but its XNNPACK partitioner tags the top graph
only, and the weights a branch uses arrive as operands, which XNNPACK must have as constants to pack. So:
`inline_branch_constants` moves parameter/buffer/constant operands into the branch graphs as `get_attr`
constants (after `to_edge`, which would trace such graphs again and fail), and `DeepPartitioner` runs the
wrapped partitioner on each branch graph too, merging the tags.
"""

from __future__ import annotations


# Ops left on portable kernels (their XNNPACK configs are not offered to the partitioner). `clone`: XNNPACK
# drops copies, and a partition whose output was a copy of its input then fails ("Output node ... is already
# in the inputs"; zoo:storm's prior state).
UNTAGGED = ("CloneConfig", "CloneDimOrderConfig")
# How deep in nested `cond`s branch graphs are partitioned (a loop body's `cond` counts once: `scan` does not):
# all of them; 0 (the top graph only) is `pte_from_program`'s fallback when the lowered program fails its check.
MAX_COND_DEPTH = 64


def _operand_slot(node):
    """(branch-graph attribute names, index of the operand tuple in node.args, placeholders before it)."""
    import torch

    hop = torch.ops.higher_order
    if node.target is hop.cond:
        return [node.args[1].target, node.args[2].target], 3, 0
    if node.target is hop.scan:  # combine(carry..., xs..., additional...)
        return [node.args[0].target], 3, len(node.args[1]) + len(node.args[2])
    return None


def _inline(graph_module, constant_of) -> None:
    import torch

    for node in list(graph_module.graph.nodes):
        slot = _operand_slot(node) if node.op == "call_function" else None
        if slot is None:
            continue
        names, index, offset = slot
        operands = list(node.args[index])
        constants = {k: constant_of(op) for k, op in enumerate(operands) if isinstance(op, torch.fx.Node)}
        constants = {k: t for k, t in constants.items() if t is not None}
        if not constants:
            continue
        for name in names:
            branch = getattr(graph_module, name)
            placeholders = [n for n in branch.graph.nodes if n.op == "placeholder"]
            for k, (attr, tensor) in constants.items():
                placeholder = placeholders[offset + k]
                if not hasattr(branch, attr):
                    # as a Parameter, whatever it was: with ExecuTorch 1.5.1 an XNNPACK conv inside a branch whose
                    # weight was a plain tensor (a buffer: RBQE's IQAM filters) read a tensor of the wrong shape
                    # ((1, 128, 1, 1) for (1, 128, 7, 7)); the same conv with a Parameter ran correctly
                    branch.register_buffer(attr, torch.nn.Parameter(tensor, requires_grad=False), persistent=False)
                # one get_attr per use: a constant shared by two partitions would join them into a cycle
                for use in list(placeholder.users):
                    with branch.graph.inserting_before(use):
                        constant = branch.graph.get_attr(attr)
                    constant.meta = dict(placeholder.meta)
                    use.replace_input_with(placeholder, constant)
                branch.graph.erase_node(placeholder)
            branch.recompile()
            fold_constants(branch)
            _inline(branch, lambda n, branch=branch: _attr_tensor(branch, n))
        args = list(node.args)
        kept = [op for k, op in enumerate(operands) if k not in constants]
        args[index] = type(node.args[index])(kept)
        node.args = tuple(args)
    graph_module.recompile()


def fold_constants(graph_module) -> None:
    """Compute the ops of a branch graph whose inputs are all constants (RBQE slices its conv weights,
    `weight[start:end]`: left in, XNNPACK delegated the slice and the conv, now with a run-time weight, stayed
    on portable kernels, 9.3 s at exit 5) and keep their results as constants."""
    import torch

    graph = graph_module.graph
    for node in list(graph.nodes):
        if node.op != "call_function" or not node.all_input_nodes or isinstance(node.target, torch._ops.HigherOrderOperator):
            continue
        if node.target.__module__ == "_operator" or any(w in str(node.target) for w in ("rand", "normal", "bernoulli")):
            continue
        if not all(_attr_tensor(graph_module, n) is not None for n in node.all_input_nodes):
            continue
        args, kwargs = torch.fx.node.map_arg((node.args, node.kwargs), lambda n: getattr(graph_module, n.target))
        try:
            value = node.target(*args, **kwargs)
        except Exception:  # not computable here: leave it to the runtime
            continue
        if not isinstance(value, torch.Tensor):
            continue
        attr = f"_edgekit_folded_{node.name}"
        graph_module.register_buffer(attr, torch.nn.Parameter(value.contiguous(), requires_grad=False), persistent=False)
        for use in list(node.users):  # one get_attr per use, as in _inline
            with graph.inserting_before(use):
                constant = graph.get_attr(attr)
            constant.meta = dict(node.meta)
            use.replace_input_with(node, constant)
        graph.erase_node(node)
    graph.eliminate_dead_code()
    graph_module.recompile()


def _attr_tensor(graph_module, node):
    import torch

    if node.op != "get_attr":
        return None
    value = getattr(graph_module, node.target, None)
    return (node.target, value) if isinstance(value, torch.Tensor) else None


def inline_branch_constants(program) -> None:
    """Move the constant operands of every cond/scan (nested too) into their branch graphs, in place."""
    signature = program.graph_signature
    tensors = {**program.state_dict, **program.constants}
    by_placeholder = {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
                      **signature.inputs_to_lifted_tensor_constants}

    def constant_of(node):
        name = by_placeholder.get(node.name) if node.op == "placeholder" else None
        # named after the program's own name for it (not the branch placeholder's, `arg3_1`, which recurs in
        # nested branches), so a constant has one name in every branch graph that uses it
        return ("_edgekit_const_" + name.replace(".", "_"), tensors[name]) if name in tensors else None

    _inline(program.graph_module, constant_of)


class _BranchView:
    """What a partitioner reads of an ExportedProgram, over one branch graph. A real ExportedProgram would
    validate the graph (refusing tensor get_attr) and take ownership of it, so the tags would land on a copy."""

    def __init__(self, graph_module):
        import torch
        from torch.export.graph_signature import (ExportGraphSignature, InputKind, InputSpec, OutputKind,
                                                  OutputSpec, TensorArgument)

        nodes = graph_module.graph.nodes
        inputs = [InputSpec(InputKind.USER_INPUT, TensorArgument(n.name), None) for n in nodes if n.op == "placeholder"]
        outputs = [OutputSpec(OutputKind.USER_OUTPUT, TensorArgument(a.name), None)
                   for a in graph_module.graph.output_node().args[0] if isinstance(a, torch.fx.Node)]
        self.graph_module, self.graph = graph_module, graph_module.graph
        self.graph_signature = ExportGraphSignature(inputs, outputs)
        self.state_dict, self.constants, self.range_constraints, self.module_call_graph = {}, {}, {}, []


def _partitioner_base():
    from executorch.exir.backend.partitioner import Partitioner

    return Partitioner


class DeepPartitioner(_partitioner_base()):
    """XNNPACK's partitioner on the program and on the control-flow branch graphs up to `max_depth` nested
    conds (0: the top graph only)."""

    def __init__(self, max_depth: int = MAX_COND_DEPTH):
        super().__init__()
        self.max_depth = max_depth

    def partition(self, program):
        import torch
        from executorch.exir.backend.partitioner import PartitionResult
        from executorch.exir.graph_module import get_control_flow_submodules

        result = xnnpack_partitioner().partition(program)
        tags = dict(result.partition_tags)

        def walk(graph_module, conds: int):
            for _, branch, node in get_control_flow_submodules(graph_module):
                depth = conds + (node.target is torch.ops.higher_order.cond)
                if depth <= self.max_depth:
                    renamed = {}
                    view = _BranchView(branch)
                    for tag, spec in xnnpack_partitioner().partition(view).partition_tags.items():
                        renamed[tag] = f"branch{len(tags)}_{tag}"
                        tags[renamed[tag]] = spec
                    for inner in branch.graph.nodes:
                        if inner.meta.get("delegation_tag") in renamed:
                            inner.meta["delegation_tag"] = renamed[inner.meta["delegation_tag"]]
                walk(branch, depth)

        walk(program.graph_module, 0)
        return PartitionResult(tagged_exported_program=program, partition_tags=tags)

    def ops_to_not_decompose(self, program):
        return xnnpack_partitioner().ops_to_not_decompose(program)


def xnnpack_partitioner(untagged=UNTAGGED):
    from executorch.backends.xnnpack.partition.config import ALL_PARTITIONER_CONFIGS
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

    return XnnpackPartitioner(configs=[c for c in ALL_PARTITIONER_CONFIGS if c.__name__ not in untagged])


def delegated_ops(graph_module) -> dict:
    """Delegate calls, and the ops left on portable kernels by name, in the graph and the branch graphs it runs
    (not `modules()`: the partitions fused before lowering stay behind as unused submodules)."""
    import torch
    from executorch.exir.graph_module import get_control_flow_submodules

    portable: dict[str, int] = {}
    delegated = 0
    graphs = [graph_module]
    while graphs:
        module = graphs.pop()
        graphs.extend(branch for _, branch, _ in get_control_flow_submodules(module))
        for node in module.graph.nodes:
            if node.op != "call_function" or node.target.__module__ == "_operator":
                continue
            if node.target is torch.ops.higher_order.executorch_call_delegate:
                delegated += 1
            elif not isinstance(node.target, torch._ops.HigherOrderOperator):
                name = ".".join(str(getattr(node.target, "_name", None) or node.target).split(".")[:2])
                portable[name] = portable.get(name, 0) + 1
    return {"delegated": delegated, "portable": sum(portable.values()),
            "portable_ops": dict(sorted(portable.items(), key=lambda kv: -kv[1]))}
