"""Latency measurement of runners on a bundle: warm-up excluded, `perf_counter_ns`, median and spread.

Timing results are data (`BenchResult`) with ratios to the PyTorch reference measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np


@dataclass
class BenchResult:
    runtime: str
    status: str  # ok | unavailable | failed
    precision: str = "fp32"
    reason: str | None = None
    iters: int = 0
    load_ms: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # min p50 p90 p99 mean max
    throughput: float | None = None  # inferences / s at batch 1, sequential
    vs_torch: float | None = None  # p50 / torch p50
    samples_ms: list[float] = field(default_factory=list, repr=False)

    def __bool__(self) -> bool:
        return self.status == "ok"

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("samples_ms")
        return out


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    data = np.asarray(samples_ms)
    return {
        "min": float(data.min()), "p50": float(np.percentile(data, 50)), "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)), "mean": float(data.mean()), "max": float(data.max()),
        "stdev": float(statistics.pstdev(samples_ms)) if len(samples_ms) > 1 else 0.0,
    }


def time_calls(call: Callable[[], object], warmup: int, iters: int | None, seconds: float | None,
               tick: Callable[[], None] = lambda: None) -> list[float]:
    """Per-call wall time in ms after `warmup` calls, for `iters` calls or until `seconds` have passed."""
    for _ in range(warmup):
        call()
    samples = []
    deadline = time.perf_counter() + seconds if seconds else None
    while (iters is None or len(samples) < iters) and (deadline is None or time.perf_counter() < deadline or not samples):
        start = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - start) / 1e6)
        tick()
        if iters is None and deadline is None:
            break
    return samples


def add_torch_ratios(results: list[BenchResult]) -> None:
    torch_p50 = next((r.latency_ms["p50"] for r in results if r.runtime == "torch" and r), None)
    for r in results:
        if r and torch_p50:
            r.vs_torch = r.latency_ms["p50"] / torch_p50


def bench_feed(bundle, overrides: dict) -> dict[str, np.ndarray]:
    """The feed to time: the bundle's first stored sample, with `--feed` scalar overrides applied."""
    from edgekit.errors import EdgekitError
    from edgekit.specs import apply_feeds
    from edgekit.testdata import read_testdata

    stored = read_testdata(bundle.path)
    if not stored:
        raise EdgekitError(f"{bundle.path}: the bundle has no testdata/ to take a benchmark input from")
    return apply_feeds(stored[0][0], overrides, bundle.manifest.inputs)


def bench_runtime(bundle, runtime: str, feed: dict, warmup: int = 10, iters: int | None = 100,
                  seconds: float | None = None, threads: int | None = None, device: str = "CPU",
                  tick: Callable[[], None] = lambda: None) -> BenchResult:
    """Open `runtime` on the bundle and time it; an unavailable runtime is a row with its reason."""
    from edgekit.errors import BackendUnavailable, EdgekitError
    from edgekit.runtimes import RUNNERS, open_runner

    entry = bundle.manifest.artifacts.get(RUNNERS.get(runtime).artifact)
    precision = (entry[0] if isinstance(entry, list) and entry else entry or {}).get("precision", "fp32")
    start = time.perf_counter_ns()
    try:
        runner = open_runner(bundle, runtime, threads=threads, device=device)
    except BackendUnavailable as exc:
        return BenchResult(runtime, "unavailable", precision, reason=exc.reason)
    except EdgekitError as exc:
        return BenchResult(runtime, "failed", precision, reason=str(exc))
    load_ms = (time.perf_counter_ns() - start) / 1e6
    with runner:
        samples = time_calls(lambda: runner.run(feed), warmup, iters, seconds, tick)
    stats = latency_stats(samples)
    return BenchResult(runtime, "ok", precision, iters=len(samples), load_ms=load_ms, latency_ms=stats,
                       throughput=1000.0 / stats["mean"], samples_ms=samples)
