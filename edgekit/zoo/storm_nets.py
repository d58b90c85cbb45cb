"""The two StoRM networks (Lemercier et al., TASLP 2023): a small NCSN++-style U-Net used as the
predictive model D(y) (no time input) and as the score model s(x_t, [y, D(y)], t) (Gaussian Fourier
time embedding). Plain Conv2d / GroupNorm / SiLU / nearest upsampling only, so both export to ONNX.

Simplifications against the paper's NCSN++ (nf=128, ch_mult (1,2,2,2), one ResBlock per level, no
attention; ~27.8 M parameters each): stride-2 convolutions instead of FIR down-sampling, nearest ×2
+ conv instead of FIR up-sampling, no progressive input/output branches. `nf` and `levels` scale it.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _groups(channels: int) -> int:
    # NCSN++ uses min(32, C // 4) groups; the same rule keeps ≥ 4 channels per group for tiny nets.
    return max(1, min(32, channels // 4))


class GaussianFourierEmbedding(nn.Module):
    """t → [sin(2π·W·log t), cos(2π·W·log t)], W ~ N(0, scale²) fixed (NCSN++ 'fourier', log input)."""

    def __init__(self, size: int, scale: float = 16.0):
        super().__init__()
        self.register_buffer("W", torch.randn(size // 2) * scale)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        proj = torch.log(t)[:, None] * self.W[None, :] * (2 * math.pi)
        return torch.cat([torch.sin(proj), torch.cos(proj)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-Conv ×2 with an optional time bias; output (h + skip)/√2 (NCSN++ skip_rescale)."""

    def __init__(self, cin: int, cout: int, temb_dim: int | None):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin, eps=1e-6)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb_dim, cout) if temb_dim else None
        self.norm2 = nn.GroupNorm(_groups(cout), cout, eps=1e-6)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # start as the identity path, as NCSN++'s init_scale=0
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        if self.temb is not None:
            h = h + self.temb(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.skip is None else self.skip(x)
        return (h + skip) * (1.0 / math.sqrt(2.0))


class UNet(nn.Module):
    """[B, in_ch, F, T] → [B, 2, F, T]; F and T must be multiples of 2**(levels-1).

    Channels per level: nf·(1, 2, 2, 2, …). One ResBlock per level down, one in the middle, one per
    level up (on the concatenated skip). `time_embedding=True` adds the Fourier embedding of t.
    """

    def __init__(self, in_ch: int, nf: int = 16, levels: int = 4, time_embedding: bool = False):
        super().__init__()
        if levels < 1:
            raise ValueError(f"levels must be >= 1, got {levels}")
        self.levels = levels
        mult = [1] + [2] * (levels - 1)
        chans = [nf * m for m in mult]
        temb_dim = 4 * nf if time_embedding else None
        if time_embedding:
            self.fourier = GaussianFourierEmbedding(nf)
            self.temb_mlp = nn.Sequential(nn.Linear(nf, temb_dim), nn.SiLU(), nn.Linear(temb_dim, temb_dim))
        self.stem = nn.Conv2d(in_ch, nf, 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = nf
        for level, ch in enumerate(chans):
            self.down_blocks.append(ResBlock(cin, ch, temb_dim))
            cin = ch
            if level < levels - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
        self.mid = ResBlock(cin, cin, temb_dim)
        self.up_blocks = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level in reversed(range(levels)):
            ch = chans[level]
            self.up_blocks.append(ResBlock(cin + ch, ch, temb_dim))
            cin = ch
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, chans[level - 1], 3, padding=1))
                cin = chans[level - 1]
        self.head_norm = nn.GroupNorm(_groups(cin), cin, eps=1e-6)
        self.head = nn.Conv2d(cin, 2, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        temb = None
        if hasattr(self, "fourier"):
            temb = self.temb_mlp(self.fourier(t))
        h = self.stem(x)
        skips = []
        for level, block in enumerate(self.down_blocks):
            h = block(h, temb)
            skips.append(h)
            if level < self.levels - 1:
                h = self.downsample[level](h)
        h = self.mid(h, temb)
        for i, block in enumerate(self.up_blocks):
            h = block(torch.cat([h, skips.pop()], dim=1), temb)
            if i < self.levels - 1:
                # scale_factor, not size=skip.shape: inside while_loop, torch 2.13 takes a symbolic size
                # from a carried tensor's stride (aten.sym_stride), which the ONNX exporter cannot lower.
                h = self.upsample[i](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.head(F.silu(self.head_norm(h)))
