"""The stage functions of a sweep cell, run in a worker (a process-pool process or a Ray task).

They call edgekit's Python stage functions (`prune_model`, `export_bundle`, `measure_in_child`,
`resolve_metric`) rather than the CLI in a subprocess: the worker already is the isolation boundary a
subprocess would give (own process, own imports), a failure arrives as a typed `EdgekitError` with its
one-line message instead of stderr to parse, and each stage skips a second torch import. Timing stays as
isolated as `edgekit bench`'s: each benchmark row runs in its own spawned child (`measure_in_child`).

`run_task` never raises: a failure (its own or an upstream stage's) is a result with a one-line reason,
so one bad cell never stops the sweep.
"""

from __future__ import annotations

import os
import socket
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from edgekit.errors import BackendUnavailable, EdgekitError
from edgekit.sweep.cache import StageCache
from edgekit.sweep.cell import bench_cell, bench_input, cell_feeds, evaluate, reference_runner, sweep_metric, visible


def run_task(payload: dict, *upstream: dict) -> dict:
    """Run one stage (payload["kind"]) unless its result is cached; `upstream`: its dependencies' results."""
    kind, key = payload["kind"], payload["key"]
    # the torch row only gives `× vs torch`: a cell whose PyTorch eager run fails is still measured
    broken = next((u for u in upstream if u.get("status") != "ok" and u.get("kind") != "torch"), None)
    if broken is not None:
        reason = broken["reason"] if broken.get("skipped") else f"{broken.get('label', 'a stage')}: {broken['reason']}"
        return {"status": "failed", "skipped": True, "reason": reason, "kind": kind, "label": payload["label"]}
    cache = StageCache(payload["cache"])
    hit = cache.get(kind, key)
    if hit is not None and _intact(hit, payload.get("verify", True)):
        return {**hit, "cached": True}
    start = time.perf_counter()
    try:
        result = {"status": "ok", **STAGES[kind](payload, cache.fresh_dir(kind, key), *upstream)}
    except BackendUnavailable as exc:
        result = {"status": "failed", "reason": _one_line(str(exc)), "unavailable": True}
    except EdgekitError as exc:
        result = {"status": "failed", "reason": _one_line(str(exc))}
    except Exception as exc:  # a bug or a backend crash: keep its traceback for the JSON, one line for the table
        result = {"status": "failed", "reason": _one_line(f"{type(exc).__name__}: {exc}"),
                  "traceback": traceback.format_exc(limit=8)}
    seconds = time.perf_counter() - start
    result.update(kind=kind, key=key, label=payload["label"], seconds=round(seconds, 2), where=where_am_i())
    cache.record_run(kind, key, seconds, result["status"])
    if result["status"] == "ok":  # failures are not cached: a re-run tries them again
        cache.put(kind, key, result)
    return {**result, "cached": False}


def _intact(hit: dict, verify: bool = True) -> bool:
    """A cached bundle still matches its manifest (a corrupt cache entry is redone, not used or fatal);
    with verify=False (`sweep --no-verify`) only its manifest must still load."""
    if "bundle" not in hit:
        return True
    from edgekit.bundle import Bundle

    try:
        bundle = Bundle.load(hit["bundle"], verify=verify)
        if verify:
            bundle.verify_artifacts()
    except EdgekitError:
        return False
    return True


def where_am_i() -> dict:
    """Host and process, and under Ray the node and the resources the scheduler assigned this task."""
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        info.update(node=context.get_node_id(), resources=context.get_assigned_resources())
    return info


# --- stages --------------------------------------------------------------------------------------


def prune_stage(payload: dict, out: Path) -> dict:
    from edgekit.pruning import prune_model
    from edgekit.sources import resolve_source

    options = {k: payload[k] for k in ("importance", "adapter", "rank", "steps", "recover_minutes", "allocation")
               if payload.get(k) is not None}
    report = prune_model(resolve_source(payload["source"]), out / "pruned", density=payload["density"],
                         force=True, **options)
    adapter = Path(report.get("adapter") or out / "pruned" / "adapter.safetensors")
    return {"adapter": str(adapter), "report": report}


def export_stage(payload: dict, out: Path, prune: dict | None = None) -> dict:
    from edgekit.bundle import Bundle
    from edgekit.errors import ValidationFailed
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    precision = payload["precision"]
    quantized = precision in ("int8", "mixed")
    options = ExportOptions(
        targets=tuple(payload["targets"]), precision="fp32" if precision == "auto" else precision,
        validate=payload["validate"], samples=payload["samples"], opset=payload["opset"], calib=payload["calib"],
        calib_samples=payload["calib_samples"], adapter=Path(prune["adapter"]) if prune else None, force=True,
        max_drop=payload.get("max_drop") if quantized or precision == "auto" else None,
        quantizer=payload.get("quantizer", "edgekit") if quantized else "edgekit",
    )
    error = None
    try:
        if precision == "auto":  # every candidate exported and validated, the fastest here kept
            from edgekit.export.precision_auto import export_auto
            from edgekit.ui import SILENT

            bundle = export_auto(resolve_source(payload["source"]), out / "bundle", options, SILENT)
        else:
            bundle = export_bundle(resolve_source(payload["source"]), out / "bundle", options)
    except ValidationFailed as exc:  # the bundle is written; the cells of the failing runtimes fail
        bundle, error = Bundle.load(out / "bundle"), str(exc)
    sizes = {k: v.get("size_bytes") for k, v in bundle.manifest.artifacts.items() if isinstance(v, dict)}
    return {"bundle": str(bundle.path), "validation": bundle.manifest.validation, "validation_error": error,
            "sizes": sizes, "prune": bundle.manifest.pipeline.get("prune")}


def baseline_stage(payload: dict, out: Path) -> dict:
    """The metric of the fp32 unpruned source, once per sweep (and feeds): every cell's drop is from it."""
    from edgekit.validation.metrics import TaskMetric
    from edgekit.sources import resolve_source

    source = resolve_source(payload["source"])
    metric = sweep_metric(source, payload["metric"], payload["feeds"])
    reference = reference_runner(source)
    if isinstance(metric, TaskMetric):
        return {"metric": metric.name, "baseline": metric.mean_score(reference.run), "samples": len(metric.feeds)}
    outputs = [reference.run(feed) for feed in metric.feeds]
    path = out / "reference.npz"
    np.savez(path, **{f"{i}/{k}": v for i, o in enumerate(outputs) for k, v in o.items()})
    baseline = float(np.mean([metric.fn(o, o) for o in outputs]))
    return {"metric": metric.name, "baseline": baseline, "samples": len(outputs), "reference": str(path)}


def torch_stage(payload: dict, out: Path, export: dict) -> dict:
    """PyTorch eager on the fp32 unpruned model at the cell's shape and feeds: the `× vs torch` denominator."""
    from edgekit.bench.stats import BenchCase
    from edgekit.bundle import Bundle

    bundle = Bundle.load(export["bundle"], verify=payload.get("verify", True))
    result = bench_cell(bundle, BenchCase("torch", "fp32"), payload)
    return {"bench": result}


def tune_stage(payload: dict, out: Path, export: dict) -> dict:
    """`edgekit tune` on the cell's bundle and runtime (timed on the device): the setting it is measured at."""
    from edgekit.bundle import Bundle
    from edgekit.tuning.stage import tune_bundle

    bundle = Bundle.load(visible(export["bundle"]), verify=payload.get("verify", True))
    result = tune_bundle(bundle, data=payload["data"], budget=payload["budget"], metric=payload["metric"],
                         runtime=payload["runtime"], samples=payload["samples"], validate=False, write=False,
                         data_flag="tune.data")
    chosen = result["chosen"]
    return {"setting": chosen["setting"], "metric": result["metric"], "drop": chosen["drop"],
            "speedup": result["speedup"], "budget": result["budget"]}


def measure_stage(payload: dict, out: Path, export: dict, baseline: dict, torch: dict,
                  tune: dict | None = None) -> dict:
    """One cell: the metric through the cell's runtime, then its latency, on the device; with [tune], at the
    tuned setting (the cell's own `feeds` axis still wins, as `bench --feed` does over tuned defaults)."""
    from edgekit.bench.plan import plan_cases
    from edgekit.bundle import Bundle
    from edgekit.runtimes import RUNNERS, open_runner
    from edgekit.sources import resolve_source

    runtime = payload["runtime"]
    payload = {**payload, "feeds": cell_feeds(payload["feeds"], tune)}
    bundle = Bundle.load(visible(export["bundle"]), verify=payload.get("verify", True))
    checked = export["validation"].get(runtime) or {}
    if checked.get("status") == "failed":
        raise EdgekitError(f"validation failed on {runtime}: {(checked.get('failures') or ['out of tolerance'])[0]}")
    case = plan_cases(bundle, [runtime], "CPU", [], [])[0]  # the latency row at the artifact's precision
    if case.unavailable:  # not this cell's failure: it cannot run on this machine
        raise BackendUnavailable(runtime, case.unavailable)
    bench_input(bundle, payload["shape"], payload["feeds"])  # a bad shape fails here, before any work

    source = resolve_source(payload["source"])
    metric = sweep_metric(source, payload["metric"], payload["feeds"])
    with open_runner(bundle, runtime, **case.options) as runner:
        scored = evaluate(metric, runner.run, baseline)
    timed = bench_cell(bundle, case, payload)
    torch_p50 = torch["bench"]["latency_ms"]["p50"] if torch.get("status") == "ok" else None
    entry = bundle.manifest.artifacts.get(RUNNERS.get(runtime).artifact) or {}
    entry = entry[0] if isinstance(entry, list) else entry
    return {"metric": scored.to_json(), "bench": timed, "p50_ms": timed["latency_ms"]["p50"],
            "vs_torch": timed["latency_ms"]["p50"] / torch_p50 if torch_p50 else None,
            "size_mb": entry["size_bytes"] / 1e6 if entry.get("size_bytes") else None,
            "validation": checked.get("status"), "precision": case.precision,
            "torch_reason": None if torch_p50 else torch.get("reason"),
            "tuned": tune["setting"] if tune else None}


STAGES = {"prune": prune_stage, "export": export_stage, "baseline": baseline_stage, "torch": torch_stage,
          "tune": tune_stage, "measure": measure_stage}


# --- helpers -------------------------------------------------------------------------------------


def _one_line(text: str) -> str:
    line = next((part.strip() for part in text.splitlines() if part.strip()), "failed")
    return line[:400]
