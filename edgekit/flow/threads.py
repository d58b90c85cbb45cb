"""Training helpers for small models built with edgekit.flow."""

from __future__ import annotations

import contextlib
from typing import Iterator


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the block on one torch thread: on a small model more threads mostly wait on each other (training
    the flow examples was 10× slower with torch's default thread count on a loaded 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
