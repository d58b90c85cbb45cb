"""The units channels are removed in, and the torch-pruning pruners edgekit adds: a GroupNorm loses whole
groups (with num_groups lowered to match), and channel-wise modules (attention gates with no
per-channel weights) pass channels through untouched."""

from __future__ import annotations

import torch
from torch import nn

from edgekit.errors import EdgekitError


def channel_blocks(group, channels: int) -> list[list[int]]:
    """The root's channels in the units they can be removed in, in channel order: single channels,
    except that a GroupNorm (num_groups > 1) loses whole groups, so the root channels feeding one of
    its groups form one block. Channels feeding a group that other roots feed too (a concat not on a
    group boundary) cannot go and are left out."""
    parent = list(range(channels))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    pinned = set()
    for item in group:
        norm = item.dep.target.module
        if not isinstance(norm, nn.GroupNorm) or norm.num_groups == 1:
            continue
        size = norm.num_channels // norm.num_groups
        members: dict[int, list] = {}
        for idx, root in zip(item.idxs, item.root_idxs):
            members.setdefault(int(idx) // size, []).append((int(idx), root))
        for pairs in members.values():
            roots = [r for _, r in pairs if r is not None]
            if len({i for i, _ in pairs}) < size or len(roots) < len(pairs):
                pinned.update(roots)
            for r in roots[1:]:
                parent[find(r)] = find(roots[0])
    blocks: dict[int, list[int]] = {}
    for c in range(channels):
        blocks.setdefault(find(c), []).append(c)
    return [b for b in blocks.values() if not pinned.intersection(b)]


def lowest_blocks(blocks: list[list[int]], scores: torch.Tensor, drop: int, channels: int) -> list[int]:
    """Channels of the lowest-scored blocks (mean score) adding up to the nearest to `drop`, never all
    `channels`, lowest first. With single-channel blocks: argsort(scores)[:drop]."""
    block_scores = torch.stack([scores[b].float().mean() for b in blocks]) if blocks else torch.zeros(0)
    chosen: list[int] = []
    for i in torch.argsort(block_scores).tolist():
        if len(chosen) + len(blocks[i]) / 2 > drop or len(chosen) + len(blocks[i]) >= channels:
            break
        chosen += blocks[i]
    return chosen



def group_norm_pruner():
    import torch_pruning as tp

    class WholeGroupNormPruner(tp.pruner.function.GroupNormPruner):
        """Removes whole groups and lowers num_groups with them (torch-pruning's own keeps num_groups, so
        a cut not a multiple of it breaks the layer, and any cut changes what the kept groups average
        over). prune_step cuts GroupNorm channels only group by group (channel_blocks)."""

        def prune_out_channels(self, layer: nn.GroupNorm, idxs):
            if layer.num_groups > 1:
                size = layer.num_channels // layer.num_groups
                cut = sorted({int(i) for i in idxs})
                groups = {i // size for i in cut}
                if len(cut) != len(groups) * size:
                    raise EdgekitError(f"GroupNorm({layer.num_groups}, {layer.num_channels}): cutting channels "
                                       f"{cut[:8]} would split its groups of {size}")
                layer.num_groups -= len(groups)
            return super().prune_out_channels(layer, idxs)

        prune_in_channels = prune_out_channels

    return WholeGroupNormPruner()


def channelwise_pruner():
    import torch_pruning as tp

    class ChannelwisePruner(tp.pruner.BasePruningFunc):
        """A layer that scales channels with no per-channel weights: nothing to cut, channels pass
        through (prune_in = prune_out couples its input and output channels in the graph)."""

        TARGET_MODULES = None

        def prune_out_channels(self, layer, idxs):
            return layer

        prune_in_channels = prune_out_channels

        def get_out_channels(self, layer):
            return None

        def get_in_channels(self, layer):
            return None

    return ChannelwisePruner()
