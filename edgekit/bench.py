"""Latency, throughput and memory of runners on a bundle (`edgekit bench`): the parent-side plan and timing
primitives. Each row runs in its own spawned child process (`bench_worker.py`) so load time and peak memory
of one runtime never bleed into another's; rendering lives in `bench_report.py`.

Timing discipline: warm-up calls excluded, `perf_counter_ns` per call (or CUDA events for GPU runners, via
a runner's `timing_clock()`), median reported with its spread.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np

from edgekit.errors import EdgekitError

# CPU flags with native bf16 math; on these OpenVINO's CPU plugin runs INFERENCE_PRECISION_HINT=bf16 fast.
BF16_ISA = ("avx512_bf16", "amx_bf16")
EXIT_TIMEOUT_S = 30  # after a row's result arrives, how long its child may take to exit before it is stopped


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
    mode: str = "latency"  # latency: one request at a time · throughput: async requests in flight
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

    def __bool__(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        precision = "" if self.precision == "-" else f" {self.precision}"
        return f"{self.runtime}{precision}" + ("" if self.mode == "latency" else f" ({self.mode})")

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


@dataclass(frozen=True)
class BenchSettings:
    warmup: int = 10
    iters: int | None = 200  # None: run for `seconds`
    seconds: float | None = None
    threads: int | None = None
    batch: int = 1


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
               tick: Callable[[], None] = lambda: None, clock: WallClock | CudaEventClock | None = None) -> list[float]:
    """Per-call time in ms after `warmup` untimed calls, for `iters` calls or until `seconds` have passed."""
    clock = clock or WallClock()
    for _ in range(warmup):
        call()
    samples: list[float] = []
    deadline = time.perf_counter() + seconds if seconds else None
    while (iters is None or len(samples) < iters) and (deadline is None or time.perf_counter() < deadline or not samples):
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
            r.vs_torch = (r.latency_ms["p50"] if r.mode == "latency" else 1000.0 * r.batch / r.throughput) / torch_p50


def bench_feed(bundle, overrides: dict, batch: int | None = None) -> dict[str, np.ndarray]:
    """The feed to time: the bundle's first testdata sample (or one made from the input specs), with
    `--feed` scalar overrides applied and inputs with a dynamic first dim tiled to `batch`.

    Raises EdgekitError for an unknown `--feed` name, or `batch` on a static batch dim.
    """
    from edgekit.specs import apply_feeds
    from edgekit.testdata import read_testdata

    specs = bundle.manifest.inputs
    stored = read_testdata(bundle.path)
    feed = stored[0][0] if stored else feed_from_specs(specs, batch or 1, bundle.path)
    feed = apply_feeds(feed, overrides, specs)
    return tile_batch(feed, specs, batch) if batch else feed


def feed_from_specs(specs, batch: int, where) -> dict[str, np.ndarray]:
    """A deterministic feed from the specs alone: normal floats, zero ints, scalar defaults."""
    from edgekit.specs import np_dtype

    rng = np.random.default_rng(0)
    feed = {}
    for spec in specs:
        named = [d for i, d in enumerate(spec.shape) if isinstance(d, str) and i > 0]
        if named:
            raise EdgekitError(f"{where}: no testdata/ and input {spec.name!r} has dynamic dims "
                               f"({', '.join(named)}); re-export the bundle to store testdata")
        shape = tuple(batch if isinstance(d, str) else d for d in spec.shape)
        if not shape:
            value = np.asarray(spec.default if spec.default is not None else 0, dtype=np_dtype(spec.dtype))
        elif spec.is_float:
            value = rng.standard_normal(shape).astype(np_dtype(spec.dtype))
        else:
            value = np.zeros(shape, dtype=np_dtype(spec.dtype))
        feed[spec.name] = value
    return feed


def tile_batch(feed: dict[str, np.ndarray], specs, batch: int) -> dict[str, np.ndarray]:
    """Repeat the sample along axis 0 to `batch` for inputs whose first dim is dynamic."""
    ranked = [s for s in specs if s.shape]
    dynamic = [s for s in ranked if isinstance(s.shape[0], str)]
    static = [s for s in ranked if not isinstance(s.shape[0], str) and s.shape[0] != batch]
    if not dynamic and static:
        s = static[0]
        raise EdgekitError(f"--batch {batch}: input {s.name!r} has a static batch dimension {s.shape[0]} "
                           f"(shape {list(s.shape)}); re-export with --dynamic {s.name}:0 to benchmark other batches")
    if not ranked:
        raise EdgekitError(f"--batch {batch}: the model has only scalar inputs, nothing to batch")
    out = dict(feed)
    for spec in dynamic:
        value = np.asarray(feed[spec.name])
        out[spec.name] = np.take(value, np.arange(batch) % value.shape[0], axis=0)
    return out


# --- the plan and the parent side ----------------------------------------------------------------


def plan_cases(bundle, runtimes: list[str], device: str = "CPU", precisions: list[str] | None = None,
               isa: list[str] | None = None) -> list[BenchCase]:
    """The rows to measure: each runtime × each artifact precision; OpenVINO also in THROUGHPUT mode and,
    on CPUs with bf16 math (or with `precisions`), at each requested inference precision hint."""
    from edgekit.runtimes import RUNNERS
    from edgekit.runtimes.openvino import INFERENCE_PRECISION

    unknown = [p for p in precisions or [] if p not in INFERENCE_PRECISION]
    if unknown:
        raise EdgekitError(f"--precision {','.join(unknown)}: OpenVINO precision hints are {', '.join(INFERENCE_PRECISION)}")
    cases: list[BenchCase] = []
    for runtime in runtimes:
        key = RUNNERS.get(runtime).artifact
        entry = bundle.manifest.artifacts.get(key)
        if entry is None:
            have = ", ".join(bundle.manifest.artifacts) or "none"
            cases.append(BenchCase(runtime, "-", unavailable=f"the bundle has no {key} artifact (it has: {have})"))
            continue
        entries = entry if isinstance(entry, list) else [entry]
        by_precision = {e.get("precision", "fp32"): e for e in entries}
        for precision, e in by_precision.items():
            size = e["size_bytes"] / 1e6 if "size_bytes" in e else None
            options = {"precision": precision} if runtime == "tensorrt" and len(by_precision) > 1 else {}
            if runtime != "openvino":
                cases.append(BenchCase(runtime, precision, options=options, size_mb=size))
                continue
            ov = {"device": device}
            cases.append(BenchCase(runtime, precision, options=ov, size_mb=size))
            cases.append(BenchCase(runtime, precision, "throughput", {**ov, "hint": "THROUGHPUT"}, size_mb=size))
            cases.extend(_precision_hint_cases(precision, size, ov, device, precisions, isa))
    return cases


def _precision_hint_cases(artifact_precision, size, options, device, precisions, isa) -> list[BenchCase]:
    has_bf16 = any(f in (isa or []) for f in BF16_ISA)
    wanted = precisions if precisions is not None else (["bf16"] if has_bf16 and device == "CPU" else [])
    cases = []
    for hint in dict.fromkeys(p for p in wanted if p != artifact_precision):
        reason = None
        if hint == "bf16" and device == "CPU" and not has_bf16:
            reason = f"this CPU has none of {', '.join(BF16_ISA)}"
        cases.append(BenchCase("openvino", hint, options={**options, "precision": hint}, validate=True,
                               size_mb=size, unavailable=reason))
    return cases


def run_cases(bundle, cases: list[BenchCase], settings: BenchSettings, feed: dict,
              on_event: Callable[[int, str, object], None] = lambda i, kind, value: None) -> list[BenchResult]:
    """Measure every case, one child process at a time; `on_event(index, kind, value)` reports progress."""
    results = []
    for index, case in enumerate(cases):
        if case.unavailable:
            results.append(BenchResult(case.runtime, "unavailable", case.precision, reason=case.unavailable,
                                       mode=case.mode, batch=settings.batch, size_mb=case.size_mb))
        else:
            results.append(measure_in_child(bundle.path, case, settings, feed,
                                            lambda kind, value, i=index: on_event(i, kind, value)))
        on_event(index, "done", results[-1])
    return results


def measure_in_child(bundle_path, case: BenchCase, settings: BenchSettings, feed: dict,
                     on_event: Callable[[str, object], None] = lambda kind, value: None) -> BenchResult:
    """Run one case in a fresh spawned process (its own memory, its own imports) and return its row."""
    from edgekit.bench_worker import run_case

    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=run_case, args=(str(bundle_path), case, settings, feed, send), name="edgekit-bench")
    proc.start()
    send.close()  # the child holds the only writer now: EOF means it has exited
    result = None
    try:
        while result is None:
            try:
                kind, value = receive.recv()
            except EOFError:  # the child died without reporting (crash, kill)
                break
            if kind == "result":
                result = value
            else:
                on_event(kind, value)
        proc.join(timeout=EXIT_TIMEOUT_S)  # a backend hanging in its teardown must not hang the benchmark
    finally:
        if proc.is_alive():
            proc.terminate()
            proc.join()
        receive.close()
    if result is None:
        reason = f"the benchmark worker exited with code {proc.exitcode} before reporting"
        return BenchResult(case.runtime, "failed", case.precision, reason, mode=case.mode, batch=settings.batch)
    return result
