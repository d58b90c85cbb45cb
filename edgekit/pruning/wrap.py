"""Putting SPLoRA wrappers on a module's layers and taking them off again: `wrap_adapters` before pruning,
`adapter_masks` (the kept source channels, stored in the task file) and `fuse_adapters` after it.
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.pruning.adapters import SpLoRA, adapter_for, rank_of


def wrap_adapters(module: nn.Module, rank, skip: tuple = ()) -> list[str]:
    """Replace every layer SPLoRA fits (adapters.adapter_for) by its wrapper, in place; names wrapped."""
    wrapped = []

    def visit(parent, prefix):
        for name, child in list(parent.named_children()):
            if isinstance(child, skip):
                continue
            r = rank_of(rank, _out_features(child)) if _out_features(child) else rank
            adapter = adapter_for(child, min(r, _max_rank(child))) if _max_rank(child) else None
            if adapter is not None:
                adapter.source_channels = (adapter.weight.shape[adapter.out_dim], adapter.weight.shape[adapter.in_dim])
                setattr(parent, name, adapter)
                wrapped.append(prefix + name)
            else:
                visit(child, prefix + name + ".")

    visit(module, "")
    return wrapped


def _out_features(layer):
    return getattr(layer, "out_channels", None) or getattr(layer, "out_features", None)


def _max_rank(layer):
    outs, ins = _out_features(layer), getattr(layer, "in_channels", None) or getattr(layer, "in_features", None)
    return min(outs, ins) if outs and ins else None


def fuse_adapters(module: nn.Module) -> None:
    """Replace every SPLoRA wrapper by its fused plain layer, in place."""
    for name, child in list(module.named_children()):
        if isinstance(child, SpLoRA):
            setattr(module, name, child.fuse())
        else:
            fuse_adapters(child)


def adapter_masks(module: nn.Module) -> dict[str, torch.Tensor]:
    """Kept source channels of every wrapper as boolean masks: "<name>.out_mask", "<name>.in_mask"."""
    masks = {}
    for name, layer in module.named_modules():
        if isinstance(layer, SpLoRA):
            for kind, index, size in (("out", layer.out_index, layer.source_channels[0]),
                                      ("in", layer.in_index, layer.source_channels[1])):
                mask = torch.zeros(size, dtype=torch.bool)
                mask[index] = True
                masks[f"{name}.{kind}_mask"] = mask
    return masks
