"""The benchmarks' timing loop: variants run in turn, round after round, so a noisy shared machine slows
them alike (edgekit bench times one row per process instead; this is for variants in one process)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


def interleaved(runs: Mapping[str, Callable[[], object]], rounds: int, iters: int = 1) -> dict[str, list[float]]:
    """Per variant, the wall time in ms of each of its rounds × iters calls. No warm-up: call each once before
    (the outputs of that call are what the scripts compare)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            for _ in range(iters):
                start = time.perf_counter_ns()
                run()
                times[name].append((time.perf_counter_ns() - start) / 1e6)
    return times
