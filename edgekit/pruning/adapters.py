"""Structured Pruning Adapters (SPLoRA, Hedegaard et al. 2023): a frozen source weight W plus a learned
low-rank update U·V, pruned together, fused into a plain (smaller) layer for inference.

The prune stage (prune.py) wraps a model's layers with these, lets torch-pruning remove channels through
the `PRUNERS` hooks below, trains U, V and biases between steps, then calls `fuse()`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

INIT_RANGE = 1e-4  # U ~ uniform(±1e-4): the task weight starts at the source weight (paper, §3)


class SpLoRA(nn.Module):
    """Base of the adapter layers: `weight` (frozen), `lora_u` (d_out × r), `lora_v` (r × d_in), `bias`.

    Masks are the kept source channels: `out_index`/`in_index` (buffers, pruned with W, U and V) say
    which rows and columns of the source layer survive.
    """

    out_dim = 0  # the axis of `weight` holding output channels
    in_dim = 1

    def _init_adapter(self, layer: nn.Module, rank: int | float):
        super().__init__()
        self.weight = nn.Parameter(layer.weight.detach().clone(), requires_grad=False)
        self.bias = None if layer.bias is None else nn.Parameter(layer.bias.detach().clone())
        d_out, d_in = self.weight.shape[self.out_dim], self.weight.shape[self.in_dim]
        r = rank_of(rank, d_out)
        self.lora_u = nn.Parameter(torch.empty(d_out, r).uniform_(-INIT_RANGE, INIT_RANGE))
        # V as an ordinary layer init (LoRA's A): with both factors at ±1e-4 the gradient reaching U
        # (∝ V) would be ~1e-4 too and the adapter would barely move in a few minutes of recovery.
        self.lora_v = nn.Parameter(torch.empty(r, d_in))
        nn.init.kaiming_uniform_(self.lora_v, a=math.sqrt(5))
        self.register_buffer("out_index", torch.arange(d_out), persistent=False)
        self.register_buffer("in_index", torch.arange(d_in), persistent=False)

    @property
    def rank(self) -> int:
        return self.lora_u.shape[1]

    def update(self) -> torch.Tensor:
        """U·V, (d_out × d_in)."""
        return self.lora_u @ self.lora_v

    def fused_weight(self) -> torch.Tensor:
        raise NotImplementedError

    def fuse(self) -> nn.Module:
        raise NotImplementedError

    def learned_parameters(self) -> int:
        return self.lora_u.numel() + self.lora_v.numel() + (0 if self.bias is None else self.bias.numel())


def rank_of(rank: int | float, d_out: int) -> int:
    """An integer rank, or a fraction of d_out (at least 1)."""
    if isinstance(rank, float) and rank < 1:
        return max(1, round(rank * d_out))
    return int(rank)


class SpLoRALinear(SpLoRA):
    def __init__(self, layer: nn.Linear, rank: int | float):
        self._init_adapter(layer, rank)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias) + F.linear(F.linear(x, self.lora_v), self.lora_u)

    def fused_weight(self):
        return self.weight + self.update()

    def fuse(self) -> nn.Linear:
        out, inp = self.weight.shape
        layer = nn.Linear(inp, out, bias=self.bias is not None)
        _copy(layer, self.fused_weight(), self.bias)
        return layer


class _SpLoRAConvNd(SpLoRA):
    """Conv1d/Conv2d: U·V added at the kernel's centre tap only, i.e. a parallel 1×1 path V then U with
    the conv's stride. Square odd kernels, groups=1, zero padding at least dilation·(k//2) per side
    (then the 1×1 path's own padding keeps its outputs on the centre tap's grid)."""

    conv = None  # F.conv1d / F.conv2d
    plain = None

    def __init__(self, layer, rank: int | float):
        self._init_adapter(layer, rank)
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.kernel_size = layer.kernel_size
        self.centre = tuple(k // 2 for k in layer.kernel_size)
        self.path_padding = tuple(p - d * c for p, d, c in zip(layer.padding, layer.dilation, self.centre))

    @staticmethod
    def fits(layer) -> bool:
        if layer.groups != 1 or layer.padding_mode != "zeros" or isinstance(layer.padding, str):
            return False
        ks = layer.kernel_size
        if len(set(ks)) != 1 or ks[0] % 2 == 0:
            return False
        return all(p >= d * (k // 2) for p, d, k in zip(layer.padding, layer.dilation, ks))

    def _point(self, matrix):
        return matrix.reshape(*matrix.shape, *(1,) * len(self.kernel_size))

    def forward(self, x):
        main = type(self).conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation)
        low = type(self).conv(x, self._point(self.lora_v), None, self.stride, self.path_padding)
        return main + type(self).conv(low, self._point(self.lora_u))

    def fused_weight(self):
        weight = self.weight.clone()
        weight[(slice(None), slice(None), *self.centre)] += self.update()
        return weight

    def fuse(self):
        out, inp = self.weight.shape[:2]
        layer = type(self).plain(inp, out, self.kernel_size, stride=self.stride, padding=self.padding,
                                 dilation=self.dilation, bias=self.bias is not None)
        _copy(layer, self.fused_weight(), self.bias)
        return layer


class SpLoRAConv1d(_SpLoRAConvNd):
    conv = staticmethod(F.conv1d)
    plain = nn.Conv1d


class SpLoRAConv2d(_SpLoRAConvNd):
    conv = staticmethod(F.conv2d)
    plain = nn.Conv2d


class SpLoRAConvTranspose2d(SpLoRA):
    """ConvTranspose2d (weight: in × out × kh × kw): an even kernel has no centre tap, so U·V is added at
    every tap, i.e. a parallel path 1×1 V then the transposed conv with kernel U at every tap (for
    RBQE's 2×2 stride-2 up-sampling: a low-rank update, nearest-upsampled). groups=1."""

    out_dim, in_dim = 1, 0

    def __init__(self, layer: nn.ConvTranspose2d, rank: int | float):
        self._init_adapter(layer, rank)
        self.stride, self.padding, self.dilation = layer.stride, layer.padding, layer.dilation
        self.output_padding, self.kernel_size = layer.output_padding, layer.kernel_size

    @staticmethod
    def fits(layer) -> bool:
        return layer.groups == 1 and layer.padding_mode == "zeros"

    def _transpose(self, x, weight, bias):
        return F.conv_transpose2d(x, weight, bias, self.stride, self.padding, self.output_padding, 1,
                                  self.dilation)

    def forward(self, x):
        low = F.conv2d(x, self.lora_v[:, :, None, None])
        taps = self.lora_u.t()[:, :, None, None].expand(-1, -1, *self.kernel_size)
        return self._transpose(x, self.weight, self.bias) + self._transpose(low, taps, None)

    def fused_weight(self):
        return self.weight + self.update().t()[:, :, None, None]

    def fuse(self) -> nn.ConvTranspose2d:
        inp, out = self.weight.shape[:2]
        layer = nn.ConvTranspose2d(inp, out, self.kernel_size, stride=self.stride, padding=self.padding,
                                   output_padding=self.output_padding, dilation=self.dilation,
                                   bias=self.bias is not None)
        _copy(layer, self.fused_weight(), self.bias)
        return layer


def _copy(layer, weight, bias):
    with torch.no_grad():
        layer.weight.copy_(weight)
        if bias is not None:
            layer.bias.copy_(bias)


ADAPTERS = {nn.Linear: SpLoRALinear, nn.Conv1d: SpLoRAConv1d, nn.Conv2d: SpLoRAConv2d,
            nn.ConvTranspose2d: SpLoRAConvTranspose2d}


def adapter_for(layer: nn.Module, rank: int | float) -> SpLoRA | None:
    """The SPLoRA wrapper of `layer`, or None for a layer it does not fit (depthwise/grouped convs,
    even or non-square kernels): those stay plain and frozen, pruned by their masks only."""
    cls = ADAPTERS.get(type(layer))
    if cls is None or (hasattr(cls, "fits") and not cls.fits(layer)):
        return None
    return cls(layer, rank)


# --- torch-pruning hooks ---------------------------------------------------------------------------


def _keep(n: int, idxs) -> torch.Tensor:
    drop = set(int(i) for i in idxs)
    return torch.tensor([i for i in range(n) if i not in drop], dtype=torch.long)


def _select(param: nn.Parameter, dim: int, keep: torch.Tensor) -> nn.Parameter:
    # .grad goes along (as torch-pruning's own pruners do): the gradient and Taylor criteria read it
    # after other groups' pruning has already cut this layer's other axis.
    pruned = nn.Parameter(param.data.index_select(dim, keep).contiguous(), requires_grad=param.requires_grad)
    if param.grad is not None:
        pruned.grad = param.grad.index_select(dim, keep).contiguous()
    return pruned


def _pruner_class():
    import torch_pruning as tp

    class SpLoRAPruner(tp.pruner.BasePruningFunc):
        """Removes rows (out) or columns (in) of W, U and V together, and the kept-channel indices."""

        TARGET_MODULES = SpLoRA

        def prune_out_channels(self, layer: SpLoRA, idxs):
            keep = _keep(layer.weight.shape[layer.out_dim], idxs)
            layer.weight = _select(layer.weight, layer.out_dim, keep)
            layer.lora_u = _select(layer.lora_u, 0, keep)
            if layer.bias is not None:
                layer.bias = _select(layer.bias, 0, keep)
            layer.out_index = layer.out_index[keep]
            return layer

        def prune_in_channels(self, layer: SpLoRA, idxs):
            keep = _keep(layer.weight.shape[layer.in_dim], idxs)
            layer.weight = _select(layer.weight, layer.in_dim, keep)
            layer.lora_v = _select(layer.lora_v, 1, keep)
            layer.in_index = layer.in_index[keep]
            return layer

        def get_out_channels(self, layer: SpLoRA):
            return layer.weight.shape[layer.out_dim]

        def get_in_channels(self, layer: SpLoRA):
            return layer.weight.shape[layer.in_dim]

    return SpLoRAPruner


def adapter_pruners() -> dict:
    """`customized_pruners=` for torch-pruning: one pruner instance for every SPLoRA layer type."""
    pruner = _pruner_class()()
    return {cls: pruner for cls in ADAPTERS.values()}
