"""The data and the timing primitives of `edgekit bench`, shared by the parent (`plan.py`, `parent.py`) and the
child process (`worker.py`): rows (`BenchResult`), what to measure (`BenchCase`, `BenchSettings`), clocks,
the timing loop and its statistics.

Timing discipline: warm-up calls excluded, `perf_counter_ns` per call (or CUDA events for GPU runners, via
a runner's `timing_clock()`), median reported with its spread.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

# The default row budget (`edgekit bench` without --iters or --seconds): 200 calls or 20 s, whichever comes
# first, but at least 10 calls; a slow model (zoo:storm at N = 50, seconds per call) stops after 20 s
# instead of taking 200 calls' worth of minutes.
DEFAULT_ITERS = 200
DEFAULT_SECONDS = 20.0
DEFAULT_MIN_ITERS = 10
ROW_TIMEOUT_S = 600.0


@dataclass
class BenchResult:
    runtime: str
    status: str  # ok | unavailable | failed
    precision: str = "fp32"
    reason: str | None = None
    iters: int = 0
    load_ms: float | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # min p50 p90 p99 mean max stdev
    throughput: float | None = None  # inferences (samples) / s
    vs_torch: float | None = None  # time per inference / torch p50 (< 1: faster than PyTorch eager)
    mode: str = "latency"  # latency: one request at a time · throughput: async requests in flight · static:
    # latency with the model compiled at the feed's shapes (OpenVINO, `bench --static-shapes`)
    batch: int = 1
    requests: int = 1  # requests in flight (OpenVINO THROUGHPUT: its optimal number)
    size_mb: float | None = None  # artifact size from the manifest's size_bytes
    import_ms: float | None = None  # importing the backend module, kept out of load_ms
    peak_rss_mb: float | None = None  # peak resident memory of the child process running this row
    rss_before_load_mb: float | None = None  # the child's resident memory before opening the runner
    pid: int | None = None  # the child process that measured this row
    clock: str = "perf_counter_ns"
    validation: dict | None = None  # for precision hints (bf16): parity vs the testdata reference outputs
    samples_ms: list[float] = field(default_factory=list, repr=False)
    runner: str | None = None  # what the runner executed, when it says (torch: eager module or model.pt2)
    api: str = "python"  # the binding that made the calls: python, or c++ / c (the native runners' --bench)
    device: str | None = None  # where it ran: CPU (OpenVINO's device name), cpu, cuda
    artifact: str | None = None  # the bundle file the runner loaded (manifest path), None for eager torch

    def __bool__(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        precision = "" if self.precision == "-" else f" {self.precision}"
        return f"{self.name}{precision}" + ("" if self.mode == "latency" else f" ({self.mode})")

    @property
    def name(self) -> str:
        """The runtime, with the binding when it is not Python: `openvino`, `openvino (c++)`."""
        return self.runtime if self.api == "python" else f"{self.runtime} ({self.api})"

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("samples_ms")
        return out


@dataclass(frozen=True)
class BenchCase:
    """One row to measure: a runtime at one precision in one mode, with the options to open its runner."""

    runtime: str
    precision: str
    mode: str = "latency"
    options: dict = field(default_factory=dict)  # passed to open_runner (device, precision hint, hint)
    validate: bool = False  # check outputs against the testdata reference (precision hints)
    size_mb: float | None = None
    unavailable: str | None = None  # known before starting a child (no artifact, no bf16 on this CPU)
    artifact: str | None = None  # the manifest path of the file the row's runner loads


@dataclass(frozen=True)
class BenchSettings:
    """How long to time a row: `iters` calls, or until `seconds` pass, or whichever comes first when both
    are set (the default); never fewer than `min_iters` calls when a time budget is set."""

    warmup: int = 10
    iters: int | None = DEFAULT_ITERS  # None: run for `seconds`
    seconds: float | None = None
    threads: int | None = None
    batch: int = 1
    min_iters: int = 1
    timeout_s: float | None = None  # a row's child is stopped (a failed row) after this; None: row_timeout_s()

    @classmethod
    def from_options(cls, warmup: int, iters: int | None, seconds: float | None, threads: int | None = None,
                     batch: int = 1, timeout_s: float | None = None) -> "BenchSettings":
        """The CLI's rule: --iters forces a count, --seconds a time budget, neither the bounded default."""
        if iters is not None:
            return cls(warmup, iters, None, threads, batch, timeout_s=timeout_s)
        if seconds is not None:
            return cls(warmup, None, seconds, threads, batch, timeout_s=timeout_s)
        return cls(warmup, DEFAULT_ITERS, DEFAULT_SECONDS, threads, batch, DEFAULT_MIN_ITERS, timeout_s)

    def row_timeout_s(self) -> float:
        """How long one row's child may run: --timeout, else 10 min (a TensorRT engine or a large IR can take
        minutes to load) plus three times the time budget."""
        return self.timeout_s or ROW_TIMEOUT_S + 3 * (self.seconds or 0)


class WallClock:
    """Host wall time of one call, in ms: the clock for CPU runners, whose `run` returns when done."""

    name = "perf_counter_ns"

    def time_ms(self, call: Callable[[], object]) -> float:
        start = time.perf_counter_ns()
        call()
        return (time.perf_counter_ns() - start) / 1e6


class CudaEventClock:
    """GPU time of one call between two CUDA events on the runner's stream: the hook GPU runners return
    from `timing_clock()` (TensorRT), so launch jitter on the host does not count as inference time."""

    name = "cuda_events"

    def __init__(self, torch, stream):
        self._torch, self._stream = torch, stream

    def time_ms(self, call: Callable[[], object]) -> float:
        start = self._torch.cuda.Event(enable_timing=True)
        end = self._torch.cuda.Event(enable_timing=True)
        start.record(self._stream)
        call()
        end.record(self._stream)
        end.synchronize()
        return float(start.elapsed_time(end))


def latency_stats(samples_ms: list[float]) -> dict[str, float]:
    data = np.asarray(samples_ms)
    return {
        "min": float(data.min()), "p50": float(np.percentile(data, 50)), "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)), "mean": float(data.mean()), "max": float(data.max()),
        "stdev": float(statistics.pstdev(samples_ms)) if len(samples_ms) > 1 else 0.0,
    }


def time_calls(call: Callable[[], object], warmup: int, iters: int | None, seconds: float | None,
               tick: Callable[[], None] = lambda: None, clock: WallClock | CudaEventClock | None = None,
               min_iters: int = 1) -> list[float]:
    """Per-call time in ms after `warmup` untimed calls: `iters` calls, or until `seconds` have passed, or
    whichever comes first when both are given; at least `min_iters` calls (and one) whatever the time."""
    clock = clock or WallClock()
    for _ in range(warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds if seconds else None
    floor = max(1, min_iters)
    while iters is None or len(samples) < iters:
        if deadline is not None and len(samples) >= floor and time.perf_counter() >= deadline:
            break
        samples.append(clock.time_ms(call))
        tick()
        if iters is None and deadline is None:
            break
    return samples


def add_torch_ratios(results: list[BenchResult]) -> None:
    """vs_torch = time per inference / torch's p50 latency in the same run (throughput rows: 1 / rate)."""
    torch_p50 = next((r.latency_ms["p50"] for r in results if r.runtime == "torch" and r.mode == "latency" and r), None)
    for r in results:
        if r and torch_p50:
            per_call = r.latency_ms["p50"] if r.mode != "throughput" else 1000.0 * r.batch / r.throughput
            r.vs_torch = per_call / torch_p50
