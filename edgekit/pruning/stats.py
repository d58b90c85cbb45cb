"""Size of a model for the prune report: parameters, multiply-accumulates over every branch, and the
channels of each layer."""

from __future__ import annotations

import torch
from torch import nn

LAYERS = (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


@torch.no_grad()
def count_macs(module: nn.Module, trace, inputs: tuple) -> int:
    """MACs of the conv/linear layers over one call of `trace(module, inputs)` (the all-branches forward).

    Counted with hooks rather than torch-pruning's count_ops_and_params, which calls module(*inputs)
    and so counts only the branch that input takes through a model with early exits.
    """
    total = 0

    def count(layer, args, output):
        nonlocal total
        if isinstance(layer, nn.ConvTranspose2d):
            total += args[0].numel() * layer.weight[0].numel()  # (out/groups)·k² per input element
        else:
            total += output.numel() * layer.weight[0].numel()  # (in/groups)·k² per output element

    _trace_with_hook(module, trace, inputs, count)
    return int(total)


def layer_channels(module: nn.Module) -> dict[str, tuple[int, int]]:
    """{layer name: (in channels, out channels)} of the conv/linear layers."""
    out = {}
    for name, layer in module.named_modules():
        if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)):
            out[name] = (layer.in_channels, layer.out_channels)
        elif isinstance(layer, nn.Linear):
            out[name] = (layer.in_features, layer.out_features)
    return out


@torch.no_grad()
def output_positions(module: nn.Module, trace, inputs: tuple) -> dict[str, float]:
    """{layer name: output elements per channel} of the conv/linear layers over one call of `trace`
    (H·W of a 2-D conv's output; summed when a layer runs more than once)."""
    sizes: dict[str, float] = {}
    names = {layer: name for name, layer in module.named_modules()}

    def record(layer, args, output):
        channels = output.shape[-1] if isinstance(layer, nn.Linear) else output.shape[1]
        sizes[names[layer]] = sizes.get(names[layer], 0.0) + output.numel() / max(1, channels)

    _trace_with_hook(module, trace, inputs, record)
    return sizes


@torch.no_grad()
def output_layers(module: nn.Module, trace, inputs: tuple) -> set[nn.Module]:
    """The submodules whose output tensor `trace(module, inputs)` returns as is (a model output).

    torch-pruning puts no output node in the group of a layer whose result is returned directly, so
    without this a model ending in a conv would lose that conv's output channels, i.e. its outputs.
    """
    produced: dict[int, tuple[torch.Tensor, list[nn.Module]]] = {}  # the tensor is kept: ids stay unique

    def record(layer, args, output):
        if isinstance(output, torch.Tensor):
            produced.setdefault(id(output), (output, []))[1].append(layer)

    result = _trace_with_hook(module, trace, inputs, record, nn.Module)
    leaves = torch.utils._pytree.tree_leaves(result)
    return {layer for leaf in leaves if id(leaf) in produced for layer in produced[id(leaf)][1]}


def _trace_with_hook(module: nn.Module, trace, inputs: tuple, hook, types=LAYERS):
    """Run `trace(module, inputs)` with `hook` as a forward hook on every submodule of `types` (conv/linear
    layers by default); return what it returns."""
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, types)]
    try:
        return trace(module, inputs)
    finally:
        for handle in handles:
            handle.remove()
