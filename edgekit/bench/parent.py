"""The parent side of `edgekit bench`: each row runs in its own spawned child process (`worker.py`) so load
time and peak memory of one runtime never bleed into another's; rendering lives in `report.py`.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from typing import Callable

from edgekit.bench.stats import BenchCase, BenchResult, BenchSettings
from edgekit.bench.worker import run_case

EXIT_TIMEOUT_S = 30  # after a row's result arrives, how long its child may take to exit before it is stopped


def run_cases(bundle, cases: list[BenchCase], settings: BenchSettings, feed: dict,
              on_event: Callable[[int, str, object], None] = lambda i, kind, value: None) -> list[BenchResult]:
    """Measure every case, one child process at a time; `on_event(index, kind, value)` reports progress."""
    results = []
    for index, case in enumerate(cases):
        if case.unavailable:
            results.append(BenchResult(case.runtime, "unavailable", case.precision, reason=case.unavailable,
                                       mode=case.mode, batch=settings.batch, size_mb=case.size_mb,
                                       artifact=case.artifact))
        else:
            results.append(measure_in_child(bundle.path, case, settings, feed,
                                            lambda kind, value, i=index: on_event(i, kind, value)))
        on_event(index, "done", results[-1])
    return results


def measure_in_child(bundle_path, case: BenchCase, settings: BenchSettings, feed: dict,
                     on_event: Callable[[str, object], None] = lambda kind, value: None) -> BenchResult:
    """Run one case in a fresh spawned process (its own memory, its own imports) and return its row."""
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=run_case, args=(str(bundle_path), case, settings, feed, send), name="edgekit-bench")
    proc.start()
    send.close()  # the child holds the only writer now: EOF means it has exited
    result = None
    timeout = settings.row_timeout_s()
    deadline = time.monotonic() + timeout
    hung = False
    try:
        while result is None:
            if not receive.poll(max(0.0, deadline - time.monotonic())):
                hung = True  # a hung backend (or a row far slower than its budget) must not hang bench or a sweep
                break
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
            proc.join(timeout=5)
            if proc.is_alive():  # ignores SIGTERM (stuck in native code)
                proc.kill()
                proc.join()
        receive.close()
    if result is None:
        if hung:
            reason = f"timed out after {timeout:g} s: the benchmark worker hung or was too slow (--timeout S)"
        else:
            reason = f"the benchmark worker {_exit_reason(proc.exitcode)} before reporting"
        return BenchResult(case.runtime, "failed", case.precision, reason, mode=case.mode, batch=settings.batch,
                           size_mb=case.size_mb)
    return result


def _exit_reason(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with code {code}"


def failed_rows_message(results: list[BenchResult]) -> str | None:
    """One line for a run whose requested rows failed (bench exits 1 after printing everything), else None.
    `unavailable` rows (TensorRT without a GPU) are not failures."""
    failed = [r for r in results if r.status == "failed"]
    if not failed:
        return None
    first = failed[0]
    more = f" (+{len(failed) - 1} more)" if len(failed) > 1 else ""
    return f"{len(failed)} of {len(results)} benchmark rows failed — {first.label}: {first.reason}{more}"
