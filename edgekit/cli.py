"""The `edgekit` command line. It parses arguments, calls the stage functions and renders results:
human output on stderr (rich), `--json` output alone on stdout, one red line and exit 1 for any
`EdgekitError`."""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from edgekit.errors import EdgekitError, ValidationFailed
from edgekit.cli_render import print_inspect, print_validation
from edgekit.ui import Reporter, console

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Take a PyTorch model to the edge: export, compile, validate, benchmark.",
)


class JsonOut:
    """With --json, fd 1 is pointed at stderr for the whole command (libraries print to stdout) and
    the JSON is written to a private duplicate of the real stdout."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._file = None
        if enabled:
            sys.stdout.flush()
            self._file = os.fdopen(os.dup(1), "w")
            os.dup2(2, 1)

    def emit(self, data) -> None:
        if self._file is not None:
            self._file.write(json.dumps(data, indent=2, default=str) + "\n")
            self._file.flush()


def command(func):
    """Run a command body, turning EdgekitError into one red line and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except EdgekitError as exc:
            console.print(f"[bold red]error:[/] {exc}", soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper


def _split(values: Optional[List[str]]) -> list[str]:
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def _feeds(values: Optional[List[str]]) -> dict:
    from edgekit.specs import parse_feed

    return dict(parse_feed(v) for v in values or [])


def _tolerance(atol, rtol, rel_l2):
    from edgekit.validate import Tolerance

    if atol is None and rtol is None and rel_l2 is None:
        return None
    return Tolerance(atol if atol is not None else 1e-4, rtol if rtol is not None else 1e-3,
                     rel_l2 if rel_l2 is not None else 1e-5)


# --- commands ------------------------------------------------------------------------------------


@app.command()
@command
def env(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")):
    """Versions of Python and every backend, CPU ISA flags, and whether a GPU is visible."""
    from edgekit.env import environment

    out = JsonOut(as_json)
    info = environment()
    out.emit(info)
    table = Table(title="edgekit env", show_header=False)
    for key in ("edgekit", "python", "platform"):
        table.add_row(key, info[key])
    table.add_row("cpu", f"{info['cpu']['model']} · {info['cpu']['cores']} cores · {' '.join(info['cpu']['isa'])}")
    for name, version in info["backends"].items():
        table.add_row(name, version or "[dim]not installed[/]")
    gpu = info["gpu"]
    table.add_row("gpu", ", ".join(f"{d['name']} ({d['compute_capability']})" for d in gpu["devices"])
                  if gpu["visible"] else f"[dim]none ({gpu['reason']})[/]")
    console.print(table)


@app.command()
@command
def zoo(as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout.")):
    """List the built-in reference models (use them as `zoo:NAME[?key=value,...]`)."""
    from edgekit.zoo import load_zoo

    out = JsonOut(as_json)
    registry = load_zoo()
    rows = []
    for name in registry:
        entry = registry.get(name)
        params = {k: (None if p.default is p.empty else p.default) for k, p in entry.parameters().items()}
        rows.append({"name": name, "description": entry.description, "parameters": params})
    out.emit(rows)
    table = Table(title="edgekit zoo")
    for col in ("model", "description", "parameters"):
        table.add_column(col)
    for row in rows:
        table.add_row(f"zoo:{row['name']}", row["description"],
                      ", ".join(f"{k}={v}" for k, v in row["parameters"].items()))
    console.print(table)


@app.command()
@command
def export(
    source: str = typer.Argument(..., help="zoo:NAME, file.py:factory, package.module:attr, model.pt2 or model.onnx"),
    target: Optional[List[str]] = typer.Option(None, "--target", "-t", help="onnx, openvino, tensorrt (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Bundle directory (default: bundles/<name>)."),
    input: Optional[List[str]] = typer.Option(None, "--input", "-i", help="NAME:1x3xHxW:float32 (repeatable)."),
    dynamic: Optional[List[str]] = typer.Option(None, "--dynamic", help="NAME:AXIS[,AXIS] makes axes dynamic."),
    precision: str = typer.Option("fp32", help="fp32, fp16 (compiled targets) or int8 (needs calibration data)."),
    calib: Optional[str] = typer.Option(None, help="int8 calibration data: image/wav folder, feeds .npz or file.py:fn."),
    calib_samples: int = typer.Option(64, min=1, help="Calibration samples (deterministic subset)."),
    max_drop: Optional[float] = typer.Option(
        None, "--max-drop", help="int8: keep the most sensitive layers in float until --metric drops at most this."),
    metric: Optional[str] = typer.Option(
        None, help="int8 budget metric: psnr, si_sdr, cosine or FILE.py:fn (default: the model's own, else cosine)."),
    adapter: Optional[Path] = typer.Option(
        None, "--adapter", help="Pruning task file (edgekit prune): export the pruned model it describes."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Check every artifact against the reference."),
    slim: bool = typer.Option(True, "--slim/--no-slim", help="Clean the ONNX with OnnxSlim (If/Loop kept) before compiling."),
    samples: int = typer.Option(8, min=1, help="Validation samples."),
    atol: Optional[float] = typer.Option(None, help="Absolute tolerance (default by precision)."),
    rtol: Optional[float] = typer.Option(None, help="Relative tolerance (default by precision)."),
    rel_l2: Optional[float] = typer.Option(None, "--rel-l2", help="Max relative L2 error (default by precision)."),
    data: Optional[Path] = typer.Option(None, help=".npz with validation feeds (keys NAME or K/NAME)."),
    trt_arch: Optional[str] = typer.Option(None, "--trt-arch", help="TensorRT archs, e.g. sm86,sm89 or current."),
    trt_shape: Optional[List[str]] = typer.Option(
        None, "--trt-shape", help="TensorRT profile: NAME:SHAPE (fixed) or NAME:MIN,OPT,MAX (repeatable)."),
    opset: int = typer.Option(18, help="ONNX opset."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON on stdout."),
):
    """Export a model to a bundle: ONNX plus compiled targets, validated against the reference."""
    from edgekit.bundle import check_destination
    from edgekit.pipeline import ExportOptions, check_targets
    from edgekit.sources import resolve_source
    from edgekit.specs import parse_dynamic_spec, parse_input_spec, parse_profile_spec
    from edgekit.validate import load_npz_feeds

    json_out = JsonOut(as_json)
    targets = check_targets(_split(target), precision)
    if (max_drop is not None or metric is not None) and precision != "int8":
        raise EdgekitError("--max-drop/--metric apply to --precision int8")
    if max_drop is not None and max_drop < 0:
        raise EdgekitError(f"--max-drop {max_drop:g}: must be ≥ 0")
    inputs = [parse_input_spec(s) for s in input or []]
    dynamic_axes = dict(parse_dynamic_spec(s) for s in dynamic or [])
    out = out or Path("bundles") / _default_name(source)
    check_destination(out, force)
    if "tensorrt" in targets and trt_arch:
        from edgekit.export.trt_compat import parse_arch_list

        parse_arch_list(trt_arch)  # a bad arch fails now, not after the export
    reporter = Reporter()
    with reporter.stage(f"resolve {source}"):
        model = resolve_source(source, inputs, dynamic_axes)
    if metric is not None:
        from edgekit.metrics import resolve_metric

        resolve_metric(metric, model.module, [])  # a bad --metric fails now, not after calibration
    options = ExportOptions(
        targets=targets, precision=precision, validate=validate, samples=samples,
        tolerance=_tolerance(atol, rtol, rel_l2), force=force, opset=opset,
        extra_feeds=load_npz_feeds(data, model.inputs) if data else [],
        target_options={**({"trt_arch": trt_arch} if trt_arch else {}),
                        **({"trt_shapes": dict(parse_profile_spec(t) for t in trt_shape)} if trt_shape else {})},
        calib=calib, calib_samples=calib_samples, max_drop=max_drop, metric=metric, adapter=adapter, slim=slim,
    )
    export_and_report(model, out, options, reporter, json_out)


def export_and_report(source, out: Path, options, reporter, json_out: JsonOut, what: str = "bundle") -> None:
    """Run the export pipeline and show the result: the manifest as JSON (with --json) and the validation
    table, also when validation failed (the bundle is written, then ValidationFailed goes on up)."""
    from edgekit.bundle import Bundle
    from edgekit.pipeline import export_bundle

    try:
        bundle = export_bundle(source, out, options, reporter)
    except ValidationFailed:
        bundle = Bundle.load(out)
        json_out.emit(bundle.manifest.to_json())
        print_validation(bundle.manifest.validation)
        raise
    json_out.emit(bundle.manifest.to_json())
    print_validation(bundle.manifest.validation)
    console.print(f"[green]{what} written:[/] {out}")


@app.command("validate")
@command
def validate_cmd(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Runtimes (default: every artifact's)."),
    samples: int = typer.Option(8, min=1),
    atol: Optional[float] = typer.Option(None),
    rtol: Optional[float] = typer.Option(None),
    rel_l2: Optional[float] = typer.Option(None, "--rel-l2"),
    data: Optional[Path] = typer.Option(None, help=".npz with extra feeds."),
    feed: Optional[List[str]] = typer.Option(None, "--feed", help="NAME=VALUE for a scalar input (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the validation block as JSON on stdout."),
):
    """Re-validate a bundle's artifacts against its reference on stored and fresh inputs."""
    from edgekit.bundle import Bundle
    from edgekit.parity import revalidate_bundle
    from edgekit.runtimes import RUNNERS, runtimes_for
    from edgekit.validate import load_npz_feeds

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path)
    runtimes = _split(runtime) or runtimes_for(bundle)
    for name in runtimes:
        RUNNERS.get(name)
    extra = load_npz_feeds(data, bundle.manifest.inputs) if data else []
    results = revalidate_bundle(bundle, runtimes, samples, _tolerance(atol, rtol, rel_l2), extra,
                                _feeds(feed), Reporter())
    block = {k: v.to_json() for k, v in results.items()}
    bundle.manifest.validation.update(block)
    bundle.save_manifest()
    json_out.emit(block)
    print_validation(block)
    failed = [v for v in results.values() if not v]
    if failed:
        from edgekit.parity import failure_message

        raise ValidationFailed(failure_message(failed), results)


@app.command()
@command
def inspect(
    path: Path = typer.Argument(..., help="A bundle directory or an .onnx file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
):
    """Inputs/outputs, op histogram, If/Loop counts (through subgraphs), sizes, artifacts."""
    from edgekit.inspect import inspect_path

    json_out = JsonOut(as_json)
    info = inspect_path(path)
    json_out.emit(info)
    print_inspect(info)


@app.command()
@command
def bench(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: Optional[List[str]] = typer.Option(None, "--runtime", "-r", help="Comma list (default: all in the bundle)."),
    device: str = typer.Option("CPU", help="Device for OpenVINO (CPU, GPU, ...)."),
    warmup: int = typer.Option(10, min=0, help="Untimed calls before timing."),
    iters: Optional[int] = typer.Option(200, min=1, help="Timed iterations per row."),
    seconds: Optional[float] = typer.Option(None, min=0.001, help="Time budget per row instead of --iters."),
    threads: Optional[int] = typer.Option(None, min=1, help="Threads per runtime."),
    batch: Optional[int] = typer.Option(None, min=1, help="Tile the sample to this batch (dynamic batch dim only)."),
    precision: Optional[List[str]] = typer.Option(
        None, "--precision", help="OpenVINO inference precision hints to time, e.g. bf16 (default: the artifact's, "
                                  "plus bf16 on CPUs with avx512_bf16/amx)."),
    feed: Optional[List[str]] = typer.Option(None, "--feed", help="NAME=VALUE for a scalar input (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the benchmark results as JSON on stdout."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a Markdown report (machine + table)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of the latency distributions."),
):
    """Time every runtime on the bundle, each in its own process: latency p50/p90/p99, throughput, load
    time, peak memory, ratio to PyTorch eager."""
    from edgekit.bench import BenchSettings, add_torch_ratios, bench_feed, plan_cases, run_cases
    from edgekit.bench_report import (bench_progress, notes, require_matplotlib, results_table, write_plot,
                                       write_report)
    from edgekit.bundle import Bundle
    from edgekit.env import cpu_info, environment
    from edgekit.runtimes import RUNNERS, runtimes_for

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path)
    runtimes = _split(runtime) or runtimes_for(bundle)
    for name in runtimes:
        RUNNERS.get(name)
    if plot:
        require_matplotlib()  # fail before minutes of timing, not after
    overrides = _feeds(feed)
    data = bench_feed(bundle, overrides, batch)
    settings = BenchSettings(warmup, None if seconds else iters, seconds, threads, batch or 1)
    cases = plan_cases(bundle, runtimes, device, _split(precision) or None, cpu_info()["isa"])
    with bench_progress(console, cases) as on_event:
        results = run_cases(bundle, cases, settings, data, on_event)
    add_torch_ratios(results)
    payload = {
        "bundle": str(bundle_path), "source": bundle.manifest.source.get("spec"), "feed": overrides,
        "inputs": {k: {"shape": list(v.shape), "dtype": v.dtype.name} for k, v in data.items()},
        "settings": {"warmup": warmup, "iters": settings.iters, "seconds": seconds, "threads": threads,
                     "batch": settings.batch, "device": device},
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


@app.command()
@command
def embed(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    lang: str = typer.Option(..., "--lang", help="cpp (OpenVINO C++ API) or c (OpenVINO C API)."),
    build_dir: Optional[Path] = typer.Option(None, "--build-dir", help="CMake build folder (default: build/embed-LANG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (argv lists and shell lines) as JSON on stdout."),
):
    """Print the commands that build the C++ or C example against this machine's OpenVINO and run it on
    BUNDLE: it feeds every testdata sample and checks each output against the stored reference."""
    from edgekit.embed import embed_plan

    json_out = JsonOut(as_json)
    plan = embed_plan(bundle_path, lang, build_dir)
    json_out.emit(plan.to_json())
    console.print(f"# {plan.lang} example {plan.source_dir} against OpenVINO in {plan.openvino_dir}", soft_wrap=True,
                  markup=False)
    for line in plan.commands():
        console.print(line, soft_wrap=True, markup=False)


# --- rendering -----------------------------------------------------------------------------------


def _default_name(spec: str) -> str:
    if spec.startswith("zoo:"):
        return spec[4:].split("?")[0]
    base = spec.rsplit(":", 1)[0] if not spec.endswith((".onnx", ".pt2")) else spec
    return Path(base).stem.replace(".", "_") or "model"


def main() -> None:
    app()


def _register_commands() -> None:
    from edgekit.cli_debug import debug_command
    from edgekit.cli_prune import prune_command
    from edgekit.cli_quantize import quantize_command
    from edgekit.cli_sweep import sweep_command

    app.command("debug")(command(debug_command))
    app.command("prune")(command(prune_command))
    app.command("quantize")(command(quantize_command))
    app.command("sweep")(command(sweep_command))


_register_commands()


if __name__ == "__main__":
    main()
