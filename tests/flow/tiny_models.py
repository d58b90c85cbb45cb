"""Tiny models built with edgekit.flow for the tests: `build_chain` (3 exits, max-softmax score) and
`build_sampler` (a conv step with noise, max_steps 4). Also exported through the CLI as
`tests/flow/tiny_models.py:build_chain` / `:build_sampler`."""

from __future__ import annotations

import torch
from torch import nn

from edgekit.flow import exit_chain, max_softmax, sampler

CLASSES = 3


def _head(width: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, CLASSES))


def build_chain(width: int = 4, score=max_softmax, seed: int = 0):
    torch.manual_seed(seed)
    stages = [nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU()),
              nn.Sequential(nn.Conv2d(width, width, 3, stride=2, padding=1), nn.ReLU()),
              nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())]
    heads = [_head(width) for _ in stages]
    return exit_chain(stages, heads, score, example_input=torch.randn(1, 3, 8, 8), threshold=0.5,
                      dynamic_shapes={2: "height", 3: "width"})


class ConvStep(nn.Module):
    """x ← x + 0.1·tanh(conv(x))·(1 − t) + 0.05·t·z with t = i/n: a schedule from tensor ops."""

    def __init__(self, channels: int = 2):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, i, n, z):
        t = i.to(torch.float32) / n.to(torch.float32)
        return x + 0.1 * torch.tanh(self.conv(x)) * (1.0 - t) + 0.05 * t * z


def build_sampler(max_steps: int = 4, seed: int = 0):
    torch.manual_seed(seed)
    return sampler(ConvStep(), max_steps=max_steps, noise_shape=(1, 2, 8, 8), example_input=torch.randn(1, 2, 8, 8))
