"""zoo:rbqe's building blocks: efficient channel attention (Eca), the conv/separable stacks and the per-edge
up-sampling node (Up) of the nested UNet++. The model that wires them and its exits live in rbqe.py.
"""

from __future__ import annotations

import torch
from torch import nn


class Eca(nn.Module):
    """Efficient channel attention: global average pool → 1-D conv (k=3) across channels → sigmoid gate.

    `groups` ECAs over a concatenation of `groups` equal-width edges run as one grouped convolution, each
    group with its own kernel and zero padding at its borders: the same maths as separate ECAs in ~1/groups
    of the graph nodes (each nested torch.cond level re-traces its branches, so node count sets export time).
    """

    def __init__(self, groups: int = 1):
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv2d(groups, groups, (3, 1), padding=(1, 0), groups=groups, bias=False)

    def forward(self, x):
        return x * self.weights(self.pool(x))

    @staticmethod
    def pool(x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, C, 1, 1) global mean."""
        # Sum over W, then mean over H (÷ W): the global mean, written so OpenVINO keeps two reductions.
        # Its CPU plugin merges consecutive same-type reduces, and one mean over H·W on a conv's blocked
        # output came out ~2e-4 off at 128×192 (localised with `edgekit debug`; ONNX Runtime: 1e-7),
        # which left RBQE outside fp32 parity; as ReduceSum + ReduceMean it stays at ~1e-7. W is counted
        # with tensor ops: dividing by x.shape[3] puts symbolic arithmetic inside the torch.cond, which
        # torch.export.save (the bundle's model.pt2) cannot serialize.
        width = torch.ones_like(x[:1, :1, :1, :]).sum(dim=3, keepdim=True)
        return x.sum(dim=3, keepdim=True).mean(dim=2, keepdim=True) / width

    def weights(self, pooled: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, 1) pooled → (B, C, 1, 1) gate in (0, 1)."""
        b, c = pooled.shape[0], pooled.shape[1]
        grouped = pooled.view(b, self.groups, c // self.groups, 1)
        return torch.sigmoid(self.conv(grouped)).view(b, c, 1, 1)


def conv_relu(cin, cout, stride=1):
    return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.ReLU()]


def separable(cin, cout):
    # no depthwise bias: the pointwise conv's bias absorbs it (same function class, fewer graph inputs)
    return nn.Sequential(nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1))


class Up(nn.Module):
    """Node x[i, j>0]: the row's earlier nodes (dense skips) and the lower node x[i+1, j-1] upsampled by a
    2×2 stride-2 transposed conv, concatenated, each edge gated by its own ECA, then two separable convs.

    The paper gates the lower edge before upsampling; gating it after lets one grouped ECA serve all
    j + 1 edges of the node: fewer graph nodes, so a faster export (see `Eca`).
    """

    per_edge_export = True  # False: export the concatenated form (benchmarks/rbqe_concat.py compares them)

    def __init__(self, skips: int, width: int):
        super().__init__()
        self.up = nn.Sequential(nn.ConvTranspose2d(width, width, 2, stride=2), nn.ReLU())
        self.gate = Eca(groups=skips + 1)
        cin = (skips + 1) * width
        self.fuse = nn.Sequential(separable(cin, width), nn.ReLU(), separable(width, width), nn.ReLU())

    def forward(self, skips: list[torch.Tensor], lower: torch.Tensor) -> torch.Tensor:
        edges = [*skips, self.up(lower)]
        if self.per_edge_export and torch.compiler.is_exporting():
            return self._forward_per_edge(edges)
        return self.fuse(self.gate(torch.cat(edges, dim=1)))

    def _forward_per_edge(self, edges: list[torch.Tensor]) -> torch.Tensor:
        """The same maths with no concatenation, for the exported graph: ECA gates and the depthwise conv
        run per edge (the gate is a per-channel scale and the depthwise conv has no bias, so gating after
        it is exact), and the 1×1 conv over the concatenation becomes a sum of 1×1 convs over the edges.

        Why: OpenVINO's CPU plugin keeps a channel Concat in plain NCHW (in place, free) and then reorders
        the whole gated concatenation to NHWC for the depthwise conv: at 256² that reorder took a third of
        an `Up` node (one node at the last exit: 79 ms with the Concat, 45 ms without, 1 thread). Slicing
        the weights here keeps the module (and state dict, pruning, training) in the concatenated form.
        """
        depthwise, pointwise = self.fuse[0][0], self.fuse[0][1]
        widths = [e.shape[1] for e in edges]
        pooled = torch.cat([self.gate.pool(e) for e in edges], dim=1)
        gates = self.gate.weights(pooled)
        out, start = None, 0
        for edge, width in zip(edges, widths):
            end = start + width
            d = nn.functional.conv2d(edge, depthwise.weight[start:end], padding=1, groups=width)
            d = d * gates[:, start:end]
            bias = pointwise.bias if out is None else None
            o = nn.functional.conv2d(d, pointwise.weight[:, start:end], bias)
            out = o if out is None else out + o
            start = end
        return self.fuse[3](self.fuse[2](self.fuse[1](out)))
