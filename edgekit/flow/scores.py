"""Exit scores for `edgekit.flow.exit_chain`: head output → one scalar confidence; the chain exits when
score ≥ threshold (DESIGN.md §6). Any callable or nn.Module with that contract works (a learned
confidence, zoo:rbqe's IQAM reduced over the batch); these are the common classifier ones.

A score must reduce over the batch to a 0-d tensor: one `If` decides for the whole batch. Both built-ins
take the batch minimum, so the least confident sample decides (as zoo:rbqe does with IQAM).
"""

from __future__ import annotations

import math

import torch


def max_softmax(logits: torch.Tensor) -> torch.Tensor:
    """The batch minimum of the largest softmax probability, in (0, 1]. `logits` is [B, classes]."""
    return torch.softmax(logits, dim=-1).amax(dim=-1).min()


def entropy_confidence(logits: torch.Tensor) -> torch.Tensor:
    """1 − H(softmax)/log(classes), in [0, 1] (1: one-hot, 0: uniform): entropy turned into a score that
    grows with confidence, so "exit when score ≥ threshold" holds; batch minimum. `logits` is [B, classes]."""
    log_p = torch.log_softmax(logits, dim=-1)
    entropy = -(log_p.exp() * log_p).sum(dim=-1)
    return (1.0 - entropy / math.log(logits.shape[-1])).min()
