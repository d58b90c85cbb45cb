"""What pruning needs to know about a model: an all-branches trace function and its inputs, layers that
pass channels through untouched, and how to recover (train) between steps. Zoo models come with a
recipe (recipes.py); any other model can provide the hooks in `PRUNING_HOOKS`, read here.

torch-pruning builds its dependency graph from ONE traced forward pass: `torch.cond` cannot be traced
(UncapturedHigherOrderOpError), and a Python `if` would leave the untaken branch unpruned, so a model
with control flow must give a forward that runs every branch.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Callable

from edgekit.errors import EdgekitError

PRUNING_HOOKS = {
    "forward_all(*inputs)": "runs every branch/exit and returns all their outputs (used to trace channels)",
    "pruning_forward(*inputs)": "the same, under another name, when forward_all means something else",
    "trace_inputs()": "inputs for that function (default: the example inputs it takes)",
    "recovery(model, seconds)": "trains `model` in place for `seconds` between pruning steps",
    "pruning_loss(model)": "a scalar loss on one batch, for the gradient and taylor criteria",
    "pruning_channelwise()": "module types that scale channels with no per-channel weights (kept whole)",
}
CONTROL_FLOW_MARKERS = ("torch.cond", "cond(", "while_loop", "torch._higher_order_ops")
# How the channels to remove are shared among groups at the same parameter density (prune.allocation_weights)
ALLOCATIONS = ("uniform", "spatial")


@dataclass
class PruningPlan:
    trace: Callable  # (module, inputs) -> outputs of every branch
    trace_inputs: tuple
    channelwise: tuple = ()  # module types treated as channel-preserving leaves
    recover: Callable | None = None  # (module, seconds) -> None
    loss: Callable | None = None  # (module) -> scalar tensor
    recovery: str = "none"  # what recovery does, for the report


def plan_from_hooks(module, spec: str, example_inputs: tuple) -> PruningPlan:
    """The pruning plan from the module's own hooks (PRUNING_HOOKS). Raises EdgekitError for a model with
    control flow and no all-branches trace function."""
    trace_name = next((n for n in ("pruning_forward", "forward_all") if callable(getattr(module, n, None))), None)
    if trace_name is None:
        marker = _control_flow_marker(module)
        if marker:
            raise EdgekitError(
                f"{spec}: forward() has control flow ({marker}) and torch-pruning traces one path only: give "
                f"the model a forward_all(*inputs) (or pruning_forward) that runs every branch, plus "
                f"trace_inputs() if it takes other inputs than forward()")
        trace = lambda m, inputs: m(*inputs)  # noqa: E731
        inputs = tuple(example_inputs)
    else:
        trace = lambda m, inputs: getattr(m, trace_name)(*inputs)  # noqa: E731
        inputs = _trace_inputs(module, trace_name, example_inputs)
    hook = getattr(module, "recovery", None)
    loss = getattr(module, "pruning_loss", None)
    channelwise = tuple(module.pruning_channelwise()) if callable(getattr(module, "pruning_channelwise", None)) else ()
    return PruningPlan(trace=trace, trace_inputs=inputs, channelwise=channelwise,
                       recover=hook if callable(hook) else None, loss=loss if callable(loss) else None,
                       recovery="the model's recovery(model, seconds) hook" if callable(hook) else "none")


def _trace_inputs(module, name: str, example_inputs: tuple) -> tuple:
    if callable(getattr(module, "trace_inputs", None)):
        return tuple(module.trace_inputs())
    params = [p for p in inspect.signature(getattr(module, name)).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return tuple(example_inputs)[: len(params)]


def _control_flow_marker(module) -> str | None:
    """The first control-flow construct in the source of the model's class (and its bases)."""
    for cls in type(module).__mro__:
        if cls.__module__.startswith("torch."):
            break
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):
            continue
        for marker in CONTROL_FLOW_MARKERS:
            if marker in source:
                return marker.rstrip("(")
    return None
