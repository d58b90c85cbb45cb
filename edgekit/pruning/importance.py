"""Channel importance criteria: one-method strategies `__call__(group) -> scores` (Torch-Pruning's
`Importance` shape) that score a torch-pruning group's channels from the *fused* weights W + U·V.

Each layer's scores are normalised by their mean before the layers of a group are averaged, so a wide
layer with large weights does not outvote the others (SPLoRA paper: criteria "normalised per layer").
"""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError
from edgekit.pruning.adapters import SpLoRA

EPS = 1e-12


def _weight_and_dims(layer: nn.Module):
    """(weight, its gradient or None, out-channel axis, in-channel axis) of a prunable layer, else None."""
    if isinstance(layer, SpLoRA):
        # dL/dW' = dL/dW: the forward is x·Wᵀ + (x·Vᵀ)·Uᵀ = x·W'ᵀ, so W's grad (enabled while scoring)
        # is the fused weight's
        return layer.fused_weight().detach(), layer.weight.grad, layer.out_dim, layer.in_dim
    if isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        return layer.weight.detach(), layer.weight.grad, 0, 1
    if isinstance(layer, nn.ConvTranspose2d):
        return layer.weight.detach(), layer.weight.grad, 1, 0
    return None


def _is_depthwise(layer) -> bool:
    return isinstance(layer, (nn.Conv1d, nn.Conv2d)) and layer.groups > 1 and layer.groups == layer.in_channels


class _GroupImportance:
    """Average over the group's layers of a per-channel score, each layer normalised by its mean."""

    needs_gradients = False

    def channel_scores(self, weight, grad, dim) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor:
        total, count = None, 0
        for i, (dep, idxs) in enumerate(group):
            found = _weight_and_dims(dep.target.module)
            if found is None:
                continue
            weight, grad, out_dim, in_dim = found
            if self.needs_gradients and grad is None:
                continue
            # A depthwise conv's one weight axis is both its in and out channel.
            dim = out_dim if ("out" in dep.handler.__name__ or _is_depthwise(dep.target.module)) else in_dim
            channels = [int(k) for k in idxs]
            root = group[i].root_idxs
            if any(r is None for r in root):
                continue
            scores = self.channel_scores(weight, grad, dim)[channels].float()
            scores = scores / (scores.mean() + EPS)
            if total is None:
                total = torch.zeros(len(group[0].idxs))
            total.scatter_add_(0, torch.tensor(root, dtype=torch.long), scores)
            count += 1
        return None if total is None else total / count


def _per_channel(t: torch.Tensor, dim: int) -> torch.Tensor:
    return t.movedim(dim, 0).reshape(t.shape[dim], -1)


class MagnitudeImportance(_GroupImportance):
    """L2 norm of each channel's fused weights."""

    def channel_scores(self, weight, grad, dim):
        return _per_channel(weight, dim).norm(dim=1)


class GradientImportance(_GroupImportance):
    """L2 norm of the loss gradient w.r.t. each channel's fused weights."""

    needs_gradients = True

    def channel_scores(self, weight, grad, dim):
        return _per_channel(grad, dim).norm(dim=1)


class TaylorImportance(_GroupImportance):
    """|Σ W'·∂L/∂W'| per channel: first-order estimate of the loss change when the channel is removed."""

    needs_gradients = True

    def channel_scores(self, weight, grad, dim):
        return _per_channel(weight * grad, dim).sum(dim=1).abs()


IMPORTANCES = {"magnitude": MagnitudeImportance, "gradient": GradientImportance, "taylor": TaylorImportance}


def importance_named(name: str) -> _GroupImportance:
    """The criterion `name`; EdgekitError listing the known ones otherwise."""
    if name not in IMPORTANCES:
        raise EdgekitError(f"--importance {name}: unknown criterion (known: {', '.join(IMPORTANCES)})")
    return IMPORTANCES[name]()
