"""The task file of `edgekit prune` (`adapter.safetensors`): what a pruned task adds to its source model.

Tensors: the learned ones by parameter name (SPLoRA: `<layer>.lora_u` = U[m_out], `<layer>.lora_v` =
V[:, m_in], `<layer>.bias`; fine-pruning: every weight) and each adapted layer's channel masks
(`<layer>.out_mask`, `<layer>.in_mask`, bool over the source's channels). Metadata `edgekit.prune`
(JSON): the source spec and sha256, method, rank, importance, density, sizes, and torch-pruning's
pruning history, which `apply_adapter` replays on the source to rebuild the pruned model bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from edgekit.errors import EdgekitError

FORMAT = "edgekit.prune/1"
MASK_SUFFIXES = (".out_mask", ".in_mask")


def write_task_file(path: Path, learned: dict, masks: dict, meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().clone() for k, v in {**learned, **masks}.items()}
    save_file(tensors, str(path), metadata={"format": FORMAT, "edgekit.prune": json.dumps(meta)})


def read_task_file(path: Path) -> tuple[dict, dict, dict]:
    """(learned tensors, masks, metadata); EdgekitError for a file that is not an edgekit task file."""
    from safetensors import safe_open

    if not Path(path).is_file():
        raise EdgekitError(f"{path}: adapter file does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            header = handle.metadata() or {}
            tensors = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:
        raise EdgekitError(f"{path}: not a readable safetensors file ({type(exc).__name__}: {exc})") from None
    if header.get("format") != FORMAT or "edgekit.prune" not in header:
        raise EdgekitError(f"{path}: not an edgekit prune task file (format {header.get('format')!r}, "
                           f"expected {FORMAT!r})")
    meta = json.loads(header["edgekit.prune"])
    masks = {k: v for k, v in tensors.items() if k.endswith(MASK_SUFFIXES)}
    learned = {k: v for k, v in tensors.items() if k not in masks}
    return learned, masks, meta


def input_shapes(inputs: tuple) -> list:
    return [[list(t.shape), str(t.dtype).removeprefix("torch.")] for t in inputs]


def inputs_from_shapes(shapes: list) -> tuple:
    """Stand-in trace inputs (tracing needs shapes, not values)."""
    return tuple(torch.rand(shape) if getattr(torch, dtype).is_floating_point else torch.ones(shape, dtype=getattr(torch, dtype))
                 for shape, dtype in shapes)
