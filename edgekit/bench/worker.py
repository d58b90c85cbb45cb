"""The child-process side of `edgekit bench`: one spawned process per row opens one runner, times it and
sends its `BenchResult` (with the process's own peak memory) back over a pipe. Started by
`edgekit.bench.measure_in_child`; nothing here runs in the CLI's process.
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
import time
import traceback

# Backends imported before the load timer starts, so load_ms is load/compile time, not `import torch`.
BACKEND_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "openvino": "openvino"}
# `device` of rows whose runner takes no device option (OpenVINO's rows carry its device name: CPU, GPU)
DEFAULT_DEVICE = {"torch": "cpu", "onnxruntime": "cpu", "ort-mobile": "cpu", "executorch": "cpu", "tensorrt": "cuda"}
PROGRESS_EVERY_S = 0.1  # throttle: a message per call would perturb the calls being timed


def run_case(bundle_path: str, case, settings, feed: dict, conn) -> None:
    """Entry point of the child: measure `case` and send ("result", BenchResult) over `conn`.

    Progress goes out as ("phase", text) and ("progress", fraction) messages. A failure is reported as a
    `failed` row (with the traceback on stderr for anything that is not an EdgekitError), never a hang.
    """
    from edgekit.bench.stats import BenchResult
    from edgekit.errors import EdgekitError

    result = BenchResult(case.runtime, "ok", case.precision, mode=case.mode, batch=settings.batch,
                         size_mb=case.size_mb, device=case.options.get("device") or DEFAULT_DEVICE.get(case.runtime),
                         artifact=case.artifact)
    try:
        _measure(bundle_path, case, settings, feed, result, lambda kind, value: conn.send((kind, value)))
    except EdgekitError as exc:
        result.status, result.reason = "failed", str(exc)
    except Exception as exc:  # a bug in a backend or here: keep the traceback, still report the row
        traceback.print_exc(file=sys.stderr)
        result.status, result.reason = "failed", f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
    result.pid = os.getpid()
    result.peak_rss_mb = peak_rss_mb()
    conn.send(("result", result))
    conn.close()


def _measure(bundle_path, case, settings, feed, result, send) -> None:
    from edgekit.bench.stats import WallClock, latency_stats, time_calls
    from edgekit.bundle import Bundle
    from edgekit.errors import BackendUnavailable
    from edgekit.runtimes import open_runner

    bundle = Bundle.load(bundle_path, verify=False)  # the parent verified the artifacts before any row
    result.rss_before_load_mb = current_rss_mb()
    send("phase", "loading")
    start = time.perf_counter_ns()
    _preimport(case.runtime)
    result.import_ms = (time.perf_counter_ns() - start) / 1e6
    start = time.perf_counter_ns()
    try:
        runner = open_runner(bundle, case.runtime, threads=settings.threads, **case.options)
    except BackendUnavailable as exc:
        result.status, result.reason = "unavailable", exc.reason
        return
    result.load_ms = (time.perf_counter_ns() - start) / 1e6
    result.runner = getattr(runner, "kind", None)
    tick = _progress(send, settings)
    with runner:
        if case.validate:
            send("phase", "validating")
            result.validation = _validate(bundle, runner, case.precision)
            if result.validation["status"] == "failed":
                result.status = "failed"
                result.reason = f"outside {case.precision} tolerance: {result.validation['failures'][0]}"
        send("phase", "timing")
        if case.mode == "throughput":
            samples, rate, result.requests = _time_openvino_async(runner, feed, settings, tick)
            result.throughput = rate * settings.batch
        else:
            clock = getattr(runner, "timing_clock", lambda: None)() or WallClock()
            result.clock = clock.name
            samples = time_calls(lambda: runner.run(feed), settings.warmup, settings.iters, settings.seconds,
                                 tick, clock, settings.min_iters)
    result.latency_ms = latency_stats(samples)
    result.iters = len(samples)
    result.samples_ms = samples
    if result.throughput is None:
        result.throughput = 1000.0 * settings.batch / result.latency_ms["mean"]


def _time_openvino_async(runner, feed, settings, tick) -> tuple[list[float], float, int]:
    """OpenVINO with PERFORMANCE_HINT=THROUGHPUT: keep its optimal number of requests in flight through an
    AsyncInferQueue. Returns per-request latencies (ms), completed requests per second, requests in flight.

    Latencies come from each request's own `latency` (start_async to completion), read when the request is
    idle again. No Python callback or userdata: destroying the compiled model joins OpenVINO's executor
    threads while holding the GIL, and a callback waiting for the GIL there deadlocked the process.
    """
    import openvino as ov

    from edgekit.errors import EdgekitError

    if runner.name != "openvino":
        raise EdgekitError(f"{runner.name}: throughput mode (async requests) is only implemented for openvino")
    jobs = int(runner.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
    queue = ov.AsyncInferQueue(runner.compiled, jobs)
    feed = runner.check_feed(feed)
    latencies: list[float] = []
    busy: set[int] = set()

    def submit() -> None:
        request = queue.get_idle_request_id()  # blocks until one of the requests is free
        if request in busy:
            latencies.append(float(queue[request].latency))
        queue.start_async(feed)
        busy.add(request)

    def drain() -> None:
        queue.wait_all()
        latencies.extend(float(queue[request].latency) for request in busy)
        busy.clear()

    for _ in range(max(settings.warmup, jobs)):
        submit()
    drain()
    latencies.clear()
    count, deadline = 0, time.perf_counter() + settings.seconds if settings.seconds else None
    start = time.perf_counter_ns()
    floor = max(1, settings.min_iters)
    while settings.iters is None or count < settings.iters:
        if deadline is not None and count >= floor and time.perf_counter() >= deadline:
            break
        submit()
        count += 1
        tick()
    drain()
    elapsed_s = (time.perf_counter_ns() - start) / 1e9
    del queue  # before the runner's compiled model goes
    return latencies, count / elapsed_s, jobs


def _validate(bundle, runner, precision: str) -> dict:
    """Parity of a precision-hint row against the reference outputs stored in the bundle's testdata."""
    from edgekit.validation.testdata import read_testdata
    from edgekit.validation.compare import DEFAULT_TOLERANCES, validate_runtime

    stored = read_testdata(bundle.path)
    if not stored:
        return {"status": "skipped", "reason": "the bundle has no testdata/ reference outputs"}
    m = bundle.manifest
    checked = validate_runtime(runner.name, runner.run, [i for i, _ in stored], [o for _, o in stored],
                               m.inputs, m.outputs, DEFAULT_TOLERANCES[precision], precision)
    return checked.to_json()


def _progress(send, settings):
    """A tick callback that reports the fraction done at most every PROGRESS_EVERY_S."""
    state = {"count": 0, "start": None, "last": 0.0}

    def tick() -> None:
        now = time.perf_counter()
        state["count"] += 1
        state["start"] = state["start"] or now
        if now - state["last"] < PROGRESS_EVERY_S:
            return
        state["last"] = now
        done = [state["count"] / settings.iters] if settings.iters else []
        if settings.seconds:  # with both (the default budget) the row ends at whichever comes first
            done.append((now - state["start"]) / settings.seconds)
        if done:
            send("progress", min(1.0, max(done)))

    return tick


def _preimport(runtime: str) -> None:
    module = BACKEND_MODULES.get(runtime)
    if module:
        try:
            importlib.import_module(module)
        except ImportError:
            pass  # the runner raises BackendUnavailable naming the extra to install


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: VmHWM from /proc/self/status. Not ru_maxrss: the kernel carries the pre-exec address space's
    high-water mark into ru_maxrss across exec, so a spawned child would report its parent's peak (seen:
    a 600 MB parent made an idle child report 614 MB via ru_maxrss, 15 MB via VmHWM).
    """
    value = _proc_status_kb("VmHWM")
    if value is not None:
        return value / 1024
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB elsewhere


def current_rss_mb() -> float | None:
    value = _proc_status_kb("VmRSS")
    return value / 1024 if value is not None else None


def _proc_status_kb(key: str) -> int | None:
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None
