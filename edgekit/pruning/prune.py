"""Structured pruning of a torch module, in place: wrap layers with SPLoRA adapters → trace channel
dependencies with torch-pruning's DepGraph (all branches) → iterative schedule (score on fused weights,
drop the lowest channels of every group, recover) → fuse into plain, physically smaller layers.

The file written by `edgekit prune` (task_file.py) stores what `replay_pruning` needs to rebuild the
same module from the source: the pruning history and the learned tensors.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.pruning.adapters import SpLoRA, adapter_pruners
from edgekit.pruning.blocks import channel_blocks, channelwise_pruner, group_norm_pruner, lowest_blocks
from edgekit.pruning.hooks import ALLOCATIONS, PruningPlan
from edgekit.pruning.stats import output_layers
from edgekit.pruning.wrap import adapter_masks, fuse_adapters, wrap_adapters

METHODS = ("splora", "finetune")
# How the channels to remove are shared among groups at the same parameter density (plan.ALLOCATIONS):
# uniform: every group keeps the same share (the SPLoRA paper).
# spatial: a group keeps a share ∝ (its output positions / the largest)^-SPATIAL_EXPONENT, capped at 1, so
#   full-resolution layers lose more. On a CPU a conv net at high resolution is memory-bound: time follows
#   channels × positions, not MACs (RBQE on OpenVINO: 0.5 density uniform 1.47×, width 16 2.46×), while a
#   layer's parameters do not grow with its resolution.
SPATIAL_EXPONENT = 0.125  # RBQE at density 0.5: full-resolution groups keep 16 of 32 channels, 1/4-resolution 22


@dataclass
class PruneSettings:
    density: float  # fraction of the model's parameters kept (the SPLoRA paper's "density")
    importance: str = "magnitude"
    method: str = "splora"  # splora | finetune (all weights trained: fine-pruning)
    rank: int | float = 8
    steps: int = 10
    recover_seconds: float = 0.0
    allocation: str = "uniform"  # ALLOCATIONS


@dataclass
class PruneResult:
    module: nn.Module  # the pruned, fused plain module (the input object, changed in place)
    keep_ratio: float  # fraction of channels kept in every pruned group (spatial: in the largest-map groups)
    history: list  # torch-pruning's pruning history: (layer name, out?, indices) per pruned group
    learned: dict[str, torch.Tensor]  # the trained tensors by parameter name (wrapped names for SPLoRA)
    masks: dict[str, torch.Tensor]  # "<layer>.out_mask"/"<layer>.in_mask" over the source channels
    recovery: list[dict] = field(default_factory=list)


def prune_module(module: nn.Module, plan: PruningPlan, settings: PruneSettings, importance,
                 on_step=None) -> PruneResult:
    """Prune `module` in place to `settings.density`; `importance` is a criterion object (importance.py).
    `on_step(step, steps)` is called after each pruning step, before its recovery."""
    if importance.needs_gradients and plan.loss is None:
        raise EdgekitError(f"--importance {settings.importance} needs a loss: the model has no recipe and "
                           f"no pruning_loss(model) hook (use --importance magnitude)")
    frozen, was_training = not any(p.requires_grad for p in module.parameters()), module.training
    weights = allocation_weights(module, plan, settings.allocation)
    keep = keep_ratio_for(module, plan, settings.density, weights)
    if settings.method == "splora":
        wrap_adapters(module, settings.rank, plan.channelwise)
    _set_trainable(module, settings.method)
    graph = dependency_graph(module, plan)
    initial = {m: _out_channels(graph, m) for m in root_layers(graph)}
    recovery = []
    for step in range(1, settings.steps + 1):
        with _gradients(module, plan, importance.needs_gradients):
            prune_step(graph, initial, keep, importance, weights, progress=step / settings.steps)
        _set_trainable(module, settings.method)  # pruned layers are new Parameters
        if on_step:
            on_step(step, settings.steps)
        if plan.recover is not None and settings.recover_seconds > 0:
            recovery.append(plan.recover(module, settings.recover_seconds / settings.steps) or {})
    learned = {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}
    masks = adapter_masks(module)
    fuse_adapters(module)
    module.train(was_training)
    module.requires_grad_(not frozen)
    return PruneResult(module, keep, [list(h) for h in graph.pruning_history()], learned, masks, recovery)


def replay_pruning(module: nn.Module, plan: PruningPlan, method: str, rank, history: list,
                   learned: dict[str, torch.Tensor], masks: dict[str, torch.Tensor], where: str) -> nn.Module:
    """Rebuild a pruned module in place from its source: wrap, replay `history` through torch-pruning,
    check the masks, load the learned tensors, fuse. Raises EdgekitError if they do not fit."""
    frozen, was_training = not any(p.requires_grad for p in module.parameters()), module.training
    if method == "splora":
        wrap_adapters(module, rank, plan.channelwise)
    graph = dependency_graph(module, plan)
    try:
        graph.load_pruning_history(history)
    except (AttributeError, AssertionError, IndexError, RuntimeError) as exc:
        raise EdgekitError(f"{where}: its pruning history does not fit this source model ({exc})") from None
    found = adapter_masks(module)
    bad = sorted(k for k in masks if k not in found or not torch.equal(found[k], masks[k].bool()))
    if bad:
        raise EdgekitError(f"{where}: masks do not match the replayed pruning ({', '.join(bad[:3])})")
    state = module.state_dict()
    misfit = sorted(k for k, t in learned.items() if k not in state or state[k].shape != t.shape)
    if misfit:
        raise EdgekitError(f"{where}: tensors that do not fit the pruned source: {', '.join(misfit[:3])}")
    with torch.no_grad():
        params = dict(module.named_parameters())
        for name, tensor in learned.items():
            params[name].copy_(tensor)
    fuse_adapters(module)
    module.train(was_training)
    module.requires_grad_(not frozen)
    return module


# --- steps ---------------------------------------------------------------------------------------


def dependency_graph(module: nn.Module, plan: PruningPlan):
    """torch-pruning's DepGraph of `module`, traced through `plan.trace` (every branch)."""
    import torch_pruning as tp

    pruners = {**adapter_pruners(), nn.GroupNorm: group_norm_pruner(),
               **{t: channelwise_pruner() for t in plan.channelwise}}
    with _all_require_grad(module):  # the trace follows grad_fns; zoo models come frozen
        try:
            graph = tp.DependencyGraph().build_dependency(
                module, example_inputs=plan.trace_inputs, forward_fn=plan.trace, customized_pruners=pruners,
                verbose=False)
        except Exception as exc:
            raise EdgekitError(f"tracing the model's channel dependencies failed: {type(exc).__name__}: "
                               f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    # read by root_layers: the layers whose results are model outputs (stats.output_layers)
    graph.edgekit_output_layers = output_layers(module, plan.trace, plan.trace_inputs)
    return graph


def root_layers(graph) -> list[nn.Module]:
    """One layer per group of coupled channels, producers first; groups that reach a model output are
    left out (the model's output channels stay as they are): through an op after the last layer
    (torch-pruning's output node), or a layer whose result is returned as is (`edgekit_output_layers`).

    Written here rather than torch-pruning's get_all_groups: that takes roots in trace order, and a
    depthwise conv met first becomes the root of a group spanning every edge of the concat feeding it,
    so the edges lose different numbers of channels (RBQE's grouped ECA then breaks).
    """
    import torch_pruning as tp

    candidates = [m for m in graph.module2node if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d,
                                                                 nn.Linear, SpLoRA))]
    candidates = [m for m in candidates if not (isinstance(m, (nn.Conv1d, nn.Conv2d)) and m.groups > 1)]
    roots, visited = [], set()
    protected = getattr(graph, "edgekit_output_layers", set())  # set by dependency_graph
    for layer in candidates:
        if layer in visited:
            continue
        group = graph.get_pruning_group(layer, graph.get_pruner_of_module(layer).prune_out_channels,
                                        list(range(_out_channels(graph, layer))))
        outs = [dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)]
        visited.update(outs)
        if not any(isinstance(m, tp.ops._OutputOp) or m in protected for m in outs):
            roots.append(layer)
    return roots


def prune_step(graph, initial: dict, keep: float, importance=None, weights: dict[str, float] | None = None,
               progress: float = 1.0) -> None:
    """Bring every root's group `progress` of the way to round(initial × k) channels, k = min(1, keep ×
    its allocation weight), dropping the lowest-scored blocks (channel_blocks; the last ones when
    `importance` is None: sizing trials)."""
    # without grouped norms every block is one channel: the sizing trials skip building the groups
    grouped = any(isinstance(m, nn.GroupNorm) and m.num_groups > 1 for m in graph.module2node)
    for layer, start in initial.items():
        fn = graph.get_pruner_of_module(layer).prune_out_channels
        current = _out_channels(graph, layer)
        share = min(1.0, keep * (weights or {}).get(graph._module2name.get(layer), 1.0))
        drop = current - max(1, round(start * (1 - (1 - share) * progress)))
        if drop <= 0:
            continue
        needs_group = grouped or importance is not None
        group = graph.get_pruning_group(layer, fn, list(range(current))) if needs_group else None
        if importance is None:
            scores = -torch.arange(current, dtype=torch.float32)
        else:
            scores = importance(group)
            if scores is None:
                raise EdgekitError(f"{graph._module2name.get(layer, layer)}: the criterion found nothing to score "
                                   f"(no weight gradient reached it? is it used by the loss?)")
        blocks = channel_blocks(group, current) if grouped else [[c] for c in range(current)]
        idxs = lowest_blocks(blocks, scores, drop, current)
        if idxs:
            graph.get_pruning_group(layer, fn, idxs).prune()


def allocation_weights(module: nn.Module, plan: PruningPlan, allocation: str) -> dict[str, float] | None:
    """{layer name: weight on the keep ratio} for `allocation` (ALLOCATIONS); None for uniform."""
    from edgekit.pruning.stats import output_positions

    if allocation not in ALLOCATIONS:
        raise EdgekitError(f"--allocate {allocation}: unknown (known: {', '.join(ALLOCATIONS)})")
    if allocation == "uniform":
        return None
    positions = output_positions(module, plan.trace, plan.trace_inputs)
    largest = max(positions.values(), default=1.0)
    return {name: (size / largest) ** -SPATIAL_EXPONENT for name, size in positions.items() if size > 0}


def keep_ratio_for(module: nn.Module, plan: PruningPlan, density: float,
                   weights: dict[str, float] | None = None) -> float:
    """The channel keep ratio whose pruning (uniform, or scaled per group by `weights`) leaves `density` of
    the parameters (bisection on copies: the parameter count is a step function of the channel counts)."""
    total = count_parameters(module)

    def density_at(keep: float) -> float:
        trial = copy.deepcopy(module)
        graph = dependency_graph(trial, plan)
        prune_step(graph, {m: _out_channels(graph, m) for m in root_layers(graph)}, keep, weights=weights)
        return count_parameters(trial) / total

    if density >= 1.0:
        return 1.0
    low, high = 0.0, 1.0
    for _ in range(12):
        mid = (low + high) / 2
        if density_at(mid) > density:
            high = mid
        else:
            low = mid
    # the closer of the two sides of the step (a narrow model cannot hit the density exactly)
    return high if abs(density_at(high) - density) < abs(density_at(low) - density) else max(low, 1e-6)


# --- helpers -------------------------------------------------------------------------------------


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _out_channels(graph, layer) -> int:
    return graph.get_pruner_of_module(layer).get_out_channels(layer)


def _set_trainable(module: nn.Module, method: str) -> None:
    """SPLoRA: U, V and every bias; fine-pruning: everything."""
    for name, p in module.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        p.requires_grad_(method == "finetune" or leaf in ("lora_u", "lora_v", "bias"))


@contextlib.contextmanager
def _all_require_grad(module: nn.Module):
    saved = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in saved:
        p.requires_grad_(True)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


@contextlib.contextmanager
def _gradients(module: nn.Module, plan: PruningPlan, needed: bool):
    """With `needed`, fill every weight's .grad from one batch of the plan's loss (frozen W included:
    its gradient is the fused weight's), and clear them afterwards."""
    if not needed:
        yield
        return
    with _all_require_grad(module):
        module.zero_grad(set_to_none=True)
        module.train()
        plan.loss(module).backward()
        module.eval()
        try:
            yield
        finally:
            module.zero_grad(set_to_none=True)
