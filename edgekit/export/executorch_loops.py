"""The program rewrite ExecuTorch needs before lowering (see `edgekit.export.executorch`):

- every `while_loop(cond, body, carry, extra)` becomes `scan` over `max_steps` iterations whose combine step is
  `cond(cond(carry), body, identity)`: the same result for any run that stops within `max_steps` steps (a
  request beyond it stops at `max_steps`);
- every `cond` output is copied once (ExecuTorch 1.5's memory planner otherwise reused a branch output's
  buffer for a later op);
- the program is traced again from its own module, with static shapes when it loops (ExecuTorch's `scan`
  cannot carry a dynamic-shape tensor) and bounded dynamic dims otherwise.
"""

from __future__ import annotations

from edgekit.errors import ExportError


def bounded_while(cond_graph, body_graph, carried, extra, max_steps: int):
    """`while_loop` as a fixed-length `scan` whose step runs the body only while the condition holds."""
    import torch
    from torch._higher_order_ops.scan import scan

    def keep(*carry):
        return tuple(t.clone() for t in carry)  # a branch may not return its inputs as they are

    def run(*carry):
        return tuple(body_graph(*carry, *extra))

    def combine(carry, _index):
        going = cond_graph(*carry, *extra)
        return list(torch.cond(going, run, keep, tuple(carry))), torch.zeros(())

    final, _ = scan(combine, list(carried), torch.zeros(max_steps))
    return tuple(final)


def bound_loops(program, max_steps: int | None, max_scale: int):
    """(the program traced again with its loops bounded, the shapes it takes per input for the manifest)."""
    import torch

    # no gradients: with them torch 2.13 fails to trace a scan ("outs_to_grad length (2) != tangents length (3)")
    module = program.module().requires_grad_(False)
    loops = _rewrite(module, max_steps)
    args, kwargs = program.example_inputs or ((), {})
    if kwargs:
        raise ExportError("executorch: the program was traced with keyword inputs; export with positional ones")
    names = [spec.arg.name for spec in program.graph_signature.input_specs if spec.kind.name == "USER_INPUT"]
    dynamic = _dynamic_axes(program, names)
    static = bool(loops)
    shapes = {}
    dims = []
    for name, value in zip(names, args):
        axes = {} if static else dynamic.get(name, {})
        dims.append({a: torch.export.Dim.DYNAMIC(max=int(value.shape[a]) * max_scale) for a in axes} or None)
        shape = list(value.shape)
        shapes[name] = {"shape": shape, **({"max": [d * max_scale if a in axes else d for a, d in enumerate(shape)]}
                                            if axes else {})}
    try:
        return torch.export.export(module, tuple(args), dynamic_shapes=tuple(dims) if any(dims) else None,
                                   strict=False), shapes
    except Exception as exc:
        reason = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ExportError(f"executorch: tracing the bounded program failed: {type(exc).__name__}: "
                          f"{reason[:300]}") from exc


def _rewrite(module, max_steps: int | None) -> int:
    """Bound the while_loops and copy the cond outputs in `module` and its branch graphs; count the loops."""
    import torch

    loops = 0
    for graph_module in [m for m in module.modules() if isinstance(m, torch.fx.GraphModule)]:
        graph = graph_module.graph
        for node in list(graph.nodes):
            if node.op != "call_function":
                continue
            if node.target is torch.ops.higher_order.while_loop:
                if not max_steps:
                    raise ExportError(
                        f"executorch: node {node.name!r} is a while_loop, which ExecuTorch cannot run; it becomes a "
                        f"scan over the loop's maximum step count, and the model declares none (give it an int "
                        f"`max_steps` attribute or pass --et-max-steps N)")
                node.target = bounded_while
                node.args = (*node.args, max_steps)
                loops += 1
            elif node.target is torch.ops.higher_order.cond:
                for user in list(node.users):
                    with graph.inserting_after(user):
                        copy = graph.call_function(torch.ops.aten.clone.default, (user,))
                    user.replace_all_uses_with(copy, delete_user_cb=lambda use, copy=copy: use is not copy)
        graph_module.recompile()
    return loops


def _dynamic_axes(program, names: list[str]) -> dict[str, list[int]]:
    """The axes of each user input that the program traced as symbols."""
    import torch

    placeholders = {n.name: n for n in program.graph.nodes if n.op == "placeholder"}
    axes = {}
    for name in names:
        value = placeholders[name].meta.get("val") if name in placeholders else None
        if value is not None:
            axes[name] = [i for i, d in enumerate(value.shape) if isinstance(d, torch.SymInt)]
    return axes
