"""`edgekit bench`: time every runtime on a bundle, each in its own process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.common import AsJson, Feed, JsonOut, NoVerify, feeds_from, split_values
from edgekit.errors import EdgekitError
from edgekit.ui import console


def bench_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Comma list (default: all in the bundle)."),
    device: str = typer.Option("CPU", help="Device for OpenVINO (CPU, GPU, ...)."),
    warmup: int = typer.Option(10, min=0, help="Untimed calls before timing."),
    iters: Optional[int] = typer.Option(
        None, min=1, help="Timed iterations per row, however long they take (default: 200 or 20 s per row, "
                          "whichever comes first, at least 10)."),
    seconds: Optional[float] = typer.Option(None, min=0.001, help="Time budget per row instead of --iters."),
    threads: Optional[int] = typer.Option(None, min=1, help="Threads per runtime."),
    batch: Optional[int] = typer.Option(None, min=1, help="Tile the sample to this batch (dynamic batch dim only)."),
    precision: Optional[List[str]] = typer.Option(
        None, "--precision", help="OpenVINO inference precision hints to time, e.g. bf16 (default: the artifact's, "
                                  "plus bf16 on CPUs with avx512_bf16/amx)."),
    static_shapes: bool = typer.Option(
        False, "--static-shapes", help="Also time OpenVINO compiled at the feed's shapes (mode static): faster "
                                       "for models with dynamic dims that an app always feeds at one size."),
    feed: Feed = None,
    timeout: Optional[float] = typer.Option(
        None, min=0.1, help="Seconds a row may take before its process is stopped and the row fails "
                            "(default: 600 + 3 × --seconds)."),
    native: Optional[List[str]] = typer.Option(
        None, "--native", help="Also time the C++ and/or C OpenVINO runner (cpp, c; comma list), built once and "
                               "cached: rows with api c++/c next to the Python rows."),
    no_verify: NoVerify = False,
    as_json: AsJson = False,
    report: Optional[Path] = typer.Option(None, "--report", help="Write a Markdown report (machine + table)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of the latency distributions."),
):
    """Time every runtime on the bundle, each in its own process: latency p50/p90/p99, throughput, load
    time, peak memory, ratio to PyTorch eager."""
    from edgekit.bench.parent import failed_rows_message, run_cases
    from edgekit.bench.plan import bench_feed, plan_cases
    from edgekit.bench.report import (bench_progress, notes, require_matplotlib, results_table, write_plot,
                                      write_report)
    from edgekit.bench.stats import BenchSettings, add_torch_ratios
    from edgekit.bundle import Bundle
    from edgekit.env import cpu_info, environment
    from edgekit.native.bench import native_langs, native_results
    from edgekit.runtimes import RUNNERS, runtimes_for

    json_out = JsonOut(as_json)
    langs = native_langs(split_values(native)) if native else []
    bundle = Bundle.load(bundle_path, verify=not no_verify)
    runtimes = split_values(runtime) or runtimes_for(bundle)
    for name in runtimes:
        RUNNERS.get(name)
    if plot:
        require_matplotlib()  # fail before minutes of timing, not after
    overrides = feeds_from(feed)
    data = bench_feed(bundle, overrides, batch)
    settings = BenchSettings.from_options(warmup, iters, seconds, threads, batch or 1, timeout)
    cases = plan_cases(bundle, runtimes, device, split_values(precision) or None, cpu_info()["isa"], static_shapes)
    # once here, not in each row's child (whose load time it would inflate); --no-verify: containment only
    planned = {RUNNERS.get(c.runtime).artifact for c in cases if not c.unavailable}
    bundle.verify_artifacts(planned | ({"adapter", "testdata"} & set(bundle.manifest.artifacts)))
    with bench_progress(console, cases) as on_event:
        results = run_cases(bundle, cases, settings, data, on_event)
    if langs:
        with console.status("native runners") as status:
            results += native_results(bundle_path, langs, settings, overrides, device, not no_verify,
                                      lambda text: status.update(text))
    add_torch_ratios(results)
    payload = {
        "bundle": str(bundle_path), "source": bundle.manifest.source.get("spec"), "feed": overrides,
        "inputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in data.items()},
        "native": langs,
        "settings": {"warmup": warmup, "iters": settings.iters, "seconds": settings.seconds, "threads": threads,
                     "batch": settings.batch, "device": device, "min_iters": settings.min_iters,
                     "timeout_s": settings.row_timeout_s(), "verified": not no_verify,
                     "static_shapes": static_shapes},
        "pid": os.getpid(), "machine": environment(), "results": [r.to_json() for r in results],
    }
    json_out.emit(payload)
    title = f"edgekit bench {bundle_path}"
    console.print(results_table(results, title))
    for note in notes(results):
        console.print(f"  {note}", soft_wrap=True)
    if report:
        write_report(report, payload, results)
        console.print(f"report: {report}")
    if plot:
        write_plot(plot, results, title)
        console.print(f"plot: {plot}")
    failed = failed_rows_message(results)
    if failed:  # after printing everything: scripts can trust the exit code, --json still has every row
        raise EdgekitError(failed)
