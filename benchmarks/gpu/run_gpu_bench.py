"""GPU benchmark of the TensorRT target: export each model to fp32 and fp16 engines for this GPU (validated
against PyTorch by `export_bundle`), time each engine against PyTorch eager on the same GPU, and write
benchmarks/results/gpu/gpu_bench_<sm>.{json,md}. Usage: benchmarks/gpu/README.md.

Rows per model: `torch` (eager, model and tensor inputs on the GPU, inference_mode), `tensorrt` (the engine
alone: inputs already on the GPU, execute_async_v3 only) and `tensorrt+io` (the edgekit TensorRT runner:
numpy in and out, host↔device copies included); CUDA events after warm-up, p50 = median.
Exit status: 0 all rows ok and validated, 1 some row failed or was refused (recorded), 2 cannot run here.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgekit.bench.stats import BenchResult, BenchSettings, CudaEventClock, add_torch_ratios, latency_stats, time_calls
from edgekit.errors import BackendUnavailable, EdgekitError, ValidationFailed
from edgekit.export.trt_compat import builder_name, cuda_device_available, current_compute_capability, import_tensorrt

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "gpu"
OPTIONAL_ZOO = ("rbqe", "storm")  # benchmarked by default when registered
PRECISIONS = ("fp32", "fp16")
COLUMNS = ("model", "runtime", "precision", "status", "p50 ms", "p90 ms", "× torch", "speedup", "validation")
TORCH_CUDA_NOTE = ("install a CUDA build of torch, e.g. pip install torch --index-url "
                   "https://download.pytorch.org/whl/cu128")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", dest="models", metavar="SPEC",
                   help="model spec (repeatable); default: zoo:toy, plus zoo:rbqe and zoo:storm when registered")
    p.add_argument("--tiny", action="store_true", help="use each zoo entry's tiny parameters (smoke test)")
    p.add_argument("--precision", action="append", dest="precisions", choices=PRECISIONS,
                   help="engine precision (repeatable; default: fp32 and fp16)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls before timing (default 20)")
    p.add_argument("--iters", type=int, default=200, help="timed calls per row (default 200)")
    p.add_argument("--samples", type=int, default=8, help="validation samples per export (default 8)")
    p.add_argument("--out-dir", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})")
    p.add_argument("--bundle-dir", type=Path, help="keep the exported bundles here (default: a temp folder)")
    args = p.parse_args(argv)
    if args.warmup < 0 or args.iters < 1:
        p.error("--warmup must be ≥ 0 and --iters ≥ 1")
    args.precisions = list(dict.fromkeys(args.precisions or PRECISIONS))
    return args


def model_specs(models: list[str] | None, tiny: bool, zoo_tiny: dict[str, dict]) -> list[str]:
    """The specs to benchmark; with `tiny`, zoo specs get `zoo_tiny[name]` (zoo name → its entry's tiny
    parameters) under the spec's own parameters."""
    from edgekit.zoo.registry import parse_zoo_spec

    specs = models or ["zoo:toy"] + [f"zoo:{n}" for n in OPTIONAL_ZOO if n in zoo_tiny]
    if not tiny:
        return specs
    out = []
    for spec in specs:
        if spec.startswith("zoo:"):
            name, params = parse_zoo_spec(spec)
            params = {**zoo_tiny.get(name, {}), **params}
            spec = f"zoo:{name}" + ("?" + ",".join(f"{k}={v}" for k, v in params.items()) if params else "")
        out.append(spec)
    return out


def preflight() -> str | None:
    """Why this machine cannot run the benchmark (one line), or None. Checks the cheap things first."""
    if not cuda_device_available():
        return "no CUDA device visible (the CUDA driver reports none); this benchmark needs an NVIDIA GPU"
    import torch

    if not torch.cuda.is_available():
        return f"torch {torch.__version__} has no CUDA support; {TORCH_CUDA_NOTE}"
    try:
        import_tensorrt()
    except BackendUnavailable as exc:
        return f"{exc} (or pip install tensorrt for full TensorRT)"
    return None


def describe(exc: BaseException) -> str:
    """What an exception said, exactly: EdgekitError messages as they are, others with their type."""
    return str(exc) if isinstance(exc, EdgekitError) else f"{type(exc).__name__}: {exc}"


def timed(result: BenchResult, settings: BenchSettings, setup, *args) -> BenchResult:
    """Time the call `setup(stack, *args)` returns (with its clock) into `result`; a refusal or an error
    becomes the row's status and reason instead of stopping the benchmark."""
    try:
        with contextlib.ExitStack() as stack:
            call, clock = setup(stack, *args)
            samples = time_calls(call, settings.warmup, settings.iters, None, clock=clock)
        result.iters, result.latency_ms, result.clock = len(samples), latency_stats(samples), clock.name
    except BackendUnavailable as exc:
        result.status, result.reason = "unavailable", exc.reason
    except Exception as exc:  # noqa: BLE001 - record what the backend said, go on with the next row
        result.status, result.reason = "failed", describe(exc)
    return result


def torch_call(stack, source, feed: dict):
    """PyTorch eager on the GPU: tensor inputs on the device; 0-d scalars (thresholds, step counts) stay on
    the host, as a PyTorch caller would pass them."""
    import torch

    module = (source.module if source.module is not None else source.exported.module()).to("cuda").eval()
    args = [torch.from_numpy(np.array(feed[s.name])) for s in source.inputs]
    args = [a.to("cuda") if a.ndim else a for a in args]

    def call():
        with torch.inference_mode():
            module(*args)

    return call, CudaEventClock(torch, torch.cuda.current_stream())


def runner_call(stack, bundle, precision: str, feed: dict):
    """The edgekit TensorRT runner (numpy in and out: host↔device copies inside the timed call)."""
    from edgekit.runtimes import open_runner

    runner = stack.enter_context(open_runner(bundle, "tensorrt", precision=precision))
    return (lambda: runner.run(feed)), runner.timing_clock()


def engine_call(stack, bundle, precision: str, feed: dict):
    """The engine alone: inputs copied to the GPU once, then only execute_async_v3 is timed."""
    import torch

    from edgekit.runtimes import open_runner
    from edgekit.runtimes.tensorrt import _output_allocator  # the runner's, for data-dependent output shapes

    stack.enter_context(open_runner(bundle, "tensorrt", precision=precision))  # its arch and validity checks
    trt, gpu = import_tensorrt(), current_compute_capability(0)
    entries = bundle.artifact("tensorrt")
    entry = next(e for e in (entries if isinstance(entries, list) else [entries])
                 if e.get("precision", "fp32") == precision and e["compute_capability"].upper() == gpu)
    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine((bundle.path / entry["path"]).read_bytes())
    if engine is None:
        raise EdgekitError(f"tensorrt: cannot deserialize {entry['path']} (see the TensorRT log above)")
    context = engine.create_execution_context()
    stream, allocator, keep = torch.cuda.Stream(), _output_allocator(trt, torch, torch.device("cuda", 0)), []
    for name in (engine.get_tensor_name(i) for i in range(engine.num_io_tensors)):
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            context.set_output_allocator(name, allocator)
            continue
        value = np.require(np.asarray(feed[name]), trt.nptype(engine.get_tensor_dtype(name)), "C")
        if not engine.is_shape_inference_io(name):  # shape tensors are read on the host
            value = torch.from_numpy(value).to("cuda")
        keep.append(value)
        if not context.set_input_shape(name, tuple(value.shape)):
            raise EdgekitError(f"tensorrt: input {name!r} shape {list(value.shape)} is outside the engine's profile")
        context.set_tensor_address(name, value.ctypes.data if isinstance(value, np.ndarray) else value.data_ptr())

    def call():
        if not context.execute_async_v3(stream.cuda_stream):
            raise EdgekitError("tensorrt: execution failed (see the TensorRT log above)")

    call.keep = (runtime, engine, context, keep, allocator)  # alive as long as the call
    return call, CudaEventClock(torch, stream)


def bench_model(spec: str, args, bundle_root: Path, reporter) -> list[BenchResult]:
    """Export `spec` per precision, then time torch eager and each engine; the rows in table order."""
    from edgekit.bundle import Bundle
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    settings, source, bundles = BenchSettings(warmup=args.warmup, iters=args.iters), resolve_source(spec), {}
    feed = source.example_feed()
    for precision in args.precisions:
        out = bundle_root / f"{re.sub(r'[^A-Za-z0-9_.=-]+', '_', spec)}.{precision}"
        options = ExportOptions(targets=("onnx", "tensorrt"), precision=precision, samples=args.samples,
                                target_options={"trt_arch": "current"}, force=True)
        try:
            export_bundle(source, out, options, reporter)
        except ValidationFailed:  # the bundle is written, with the failed validation block: time it anyway
            pass
        except Exception as exc:  # noqa: BLE001 - a builder or exporter refusal is a result
            bundles[precision] = describe(exc)
            continue
        bundles[precision] = Bundle.load(out)
    # torch eager last: it moves the module to the GPU, and export validation needs it on the CPU
    rows = [timed(BenchResult("torch", "ok", "fp32"), settings, torch_call, source, feed)]
    for precision, bundle in bundles.items():
        for runtime, setup in (("tensorrt", engine_call), ("tensorrt+io", runner_call)):
            if isinstance(bundle, str):
                rows.append(BenchResult(runtime, "failed", precision, reason=f"export: {bundle}"))
                continue
            result = BenchResult(runtime, "ok", precision, validation=bundle.manifest.validation.get("tensorrt"))
            rows.append(timed(result, settings, setup, bundle, precision, feed))
    return rows


def result_rows(model: str, results: list[BenchResult]) -> list[dict]:
    """JSON rows of one model: each result with the model and its speedup over torch eager (1 / × torch)."""
    add_torch_ratios(results)
    return [{"model": model, **r.to_json(), "speedup": 1 / r.vs_torch if r.vs_torch else None} for r in results]


def _validation_cell(v: dict | None) -> str:
    err = (v or {}).get("max_rel_l2")
    if not v or v.get("status") == "skipped":
        return f"skipped ({v.get('reason')})" if v else "-"
    return v["status"] + (f", rel L2 {err:.1e}" if isinstance(err, (int, float)) else "")


def _num(value, fmt: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, fmt) + suffix


def markdown_table(rows: list[dict]) -> str:
    """The results table (JSON rows in, Markdown out), followed by each refused or failed row's message."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for r in rows:
        lat = r.get("latency_ms") or {}
        cells = [f"`{r['model']}`", r["runtime"], r["precision"], r["status"], _num(lat.get("p50"), ".3f"),
                 _num(lat.get("p90"), ".3f"), _num(r.get("vs_torch"), ".2f"), _num(r.get("speedup"), ".1f", "×"),
                 _validation_cell(r.get("validation"))]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    notes = [f"- `{r['model']}` {r['runtime']} {r['precision']}: {r['status']}: {r['reason']}"
             for r in rows if r.get("reason")]
    return "\n".join(lines + ([""] + notes if notes else []))


def markdown_report(payload: dict) -> str:
    """The Markdown file: the GPU and versions, the settings, the table and what the columns mean."""
    m, s, cuda = payload["machine"], payload["settings"], payload["machine"]["cuda"]
    versions = ", ".join(f"{k} {v}" for k, v in m["backends"].items() if v)
    return "\n".join([
        f"# TensorRT vs PyTorch eager on {cuda['device']} ({cuda['compute_capability']})", "",
        f"- driver {cuda['driver']}, torch CUDA {cuda['torch_cuda']}, builder {m['tensorrt_builder']}",
        f"- edgekit {m['edgekit']}, python {m['python']}, {m['platform']}; {versions}",
        f"- {s['warmup']} warm-up calls, then {s['iters']} timed calls per row with CUDA events; p50 = median",
        "", markdown_table(payload["results"]), "",
        "`tensorrt`: engine only, device-resident inputs · `tensorrt+io`: edgekit runner, numpy in/out (host "
        "copies included) · × torch: p50 / torch eager fp32 p50 in the same run (< 1 is faster) · speedup = "
        "1 / × torch · validation: the export's parity check of the engine against PyTorch.", ""])


def machine_info() -> dict:
    """edgekit.env's versions and nvidia-smi view, plus the CUDA device as torch and TensorRT see it."""
    import torch

    from edgekit.env import environment

    info = environment()
    smi = (info["gpu"].get("devices") or [{}])[0]
    info["cuda"] = {"device": torch.cuda.get_device_name(0), "compute_capability": current_compute_capability(0),
                    "driver": smi.get("driver", "?"), "torch_cuda": torch.version.cuda,
                    "memory_gb": round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)}
    info["tensorrt_builder"] = builder_name(import_tensorrt())
    return info


def main(argv=None) -> int:
    args = parse_args(argv)
    if problem := preflight():
        print(f"run_gpu_bench: {problem}", file=sys.stderr)
        return 2
    from edgekit.ui import Reporter
    from edgekit.zoo import load_zoo

    zoo = load_zoo()
    specs = model_specs(args.models, args.tiny, {n: zoo.get(n).tiny for n in zoo.names()})
    rows: list[dict] = []
    with contextlib.ExitStack() as stack:
        bundle_root = args.bundle_dir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-bench-")))
        for spec in specs:
            try:
                results = bench_model(spec, args, bundle_root, Reporter())
            except Exception as exc:  # noqa: BLE001 - e.g. a bad spec: record it, go on with the next model
                results = [BenchResult("torch", "failed", "fp32", reason=describe(exc))]
            rows += result_rows(spec, results)
    machine = machine_info()
    payload = {"machine": machine, "models": specs, "results": rows,
               "settings": {"warmup": args.warmup, "iters": args.iters, "precisions": args.precisions,
                            "samples": args.samples}}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"gpu_bench_{machine['cuda']['compute_capability'].lower()}"
    stem.with_suffix(".json").write_text(json.dumps(payload, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown_report(payload))
    print(markdown_table(rows) + f"\n\nwrote {stem}.json and {stem}.md")
    bad = [r for r in rows if r["status"] != "ok" or (r.get("validation") or {}).get("status") == "failed"]
    return 1 if bad else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except EdgekitError as exc:
        print(f"run_gpu_bench: {exc}", file=sys.stderr)
        sys.exit(1)
