"""zoo:storm's feeds: the step-count and frame checks, the `noise` input and a validated feed dict for any
runner. Kept apart from the model (storm.py) so the INT8 hooks (storm_task.py) can build feeds without
importing the model module back.
"""

from __future__ import annotations

import numpy as np
import torch

from edgekit.errors import EdgekitError
from edgekit.zoo import storm_audio as audio


def check_num_steps(num_steps, max_steps: int) -> int:
    """Return N as an int, or raise EdgekitError for a non-integer, a non-int64 array or N ∉ [1, max]."""
    value = num_steps
    if isinstance(value, (torch.Tensor, np.ndarray, np.generic)):
        dtype = value.dtype
        if dtype not in (torch.int64, np.dtype("int64")):
            raise EdgekitError(f"zoo:storm: num_steps must be an int64 scalar, got dtype {dtype}")
        count = value.numel() if isinstance(value, torch.Tensor) else value.size
        if count != 1:
            raise EdgekitError(f"zoo:storm: num_steps must be a scalar, got shape {tuple(value.shape)}")
        value = int(value.item())
    elif isinstance(value, bool) or not isinstance(value, int):
        raise EdgekitError(f"zoo:storm: num_steps must be an integer, got {type(value).__name__} {value!r}")
    if not 1 <= value <= max_steps:
        raise EdgekitError(f"zoo:storm: num_steps must be in [1, {max_steps}] (max_steps), got {value}")
    return value


def check_frames(frames: int, multiple: int) -> None:
    """Raise EdgekitError unless `frames` is a multiple of `multiple` and at least 2·multiple."""
    if frames % multiple or frames < 2 * multiple:
        raise EdgekitError(
            f"zoo:storm: frames must be a multiple of {multiple} and >= {2 * multiple}, got {frames} "
            "(pad with storm_audio.spec_from_wave(..., frame_multiple=model.frame_multiple))"
        )


def make_noise(max_steps: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Standard normal `noise` input [max_steps + 1, 2, 2, 256, frames] drawn from `seed`."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(max_steps + 1, 2, 2, audio.N_BINS, frames, generator=gen)


def storm_feed(model, noisy_spec, num_steps, seed: int = 0) -> dict[str, np.ndarray]:
    """A validated feed dict for any runner (ONNX Runtime, OpenVINO, …)."""
    n = check_num_steps(num_steps, model.max_steps)
    spec = np.asarray(noisy_spec, dtype=np.float32)
    check_frames(spec.shape[-1], model.frame_multiple)
    noise = make_noise(model.max_steps, spec.shape[-1], seed).numpy()
    return {"noisy_spec": spec, "num_steps": np.array(n, dtype=np.int64), "noise": noise}
