"""zoo:rbqe (shipped checkpoint, width 32) pruned to density 0.5: SPLoRA-r8 vs fine-pruning (all weights
trained) after the same recovery budget, with the channels removed uniformly and with `--allocate
spatial`. Measures params, MACs (all exits), OpenVINO fp32 latency at 1×1×256×256 with threshold=2
(always exit 5), held-out ΔPSNR, learned-parameter counts.

    .venv/bin/python benchmarks/prune_rbqe.py [--recover-minutes 3.5] [--steps 10] [--allocations uniform,spatial]

Writes benchmarks/results/prune_rbqe.json and prints a Markdown table (pasted into benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results" / "prune_rbqe.json"
SPEC = "zoo:rbqe"


def quality(model) -> dict:
    """Held-out ΔPSNR (dB, mean over QF 10..50): exit 5 and the early-exit output at the default threshold."""
    from edgekit.zoo.rbqe_train import evaluate

    report = evaluate(model, model.threshold)
    per_qf = report["per_qf"].values()
    return {"delta_psnr_exit5": float(np.mean([q["delta_psnr_per_exit"][-1] for q in per_qf])),
            "delta_psnr_early_exit": float(np.mean([q["delta_psnr"] for q in per_qf])),
            "exit_histogram": report["exit_histogram"]}


def fresh_source():
    from edgekit.sources.model import state_sha256
    from edgekit.zoo.rbqe import build_rbqe

    module = build_rbqe()
    return module, state_sha256(module)


def openvino_latency(bundles: dict[str, Path], rounds: int, threads: int) -> dict:
    """Median latency (ms) per bundle, interleaved round by round so load on the shared machine hits both."""
    import openvino as ov

    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    compiled = {k: core.compile_model(str(p / "model.xml"), "CPU", config) for k, p in bundles.items()}
    rng = np.random.default_rng(0)
    feed = {"image": rng.random((1, 1, 256, 256), dtype=np.float32), "threshold": np.array(2.0, np.float32)}
    requests = {k: c.create_infer_request() for k, c in compiled.items()}
    exits = {}
    for k, r in requests.items():
        for _ in range(5):
            r.infer(feed)
        exits[k] = int(r.get_output_tensor(1).data)
    times = {k: [] for k in requests}
    for _ in range(rounds):
        for k, r in requests.items():
            start = time.perf_counter()
            r.infer(feed)
            times[k].append((time.perf_counter() - start) * 1e3)
    return {k: {"median_ms": statistics.median(v), "p90_ms": float(np.percentile(v, 90)), "runs": len(v),
                "exit_index": exits[k]} for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recover-minutes", type=float, default=3.5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--importance", default="magnitude")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--ov-threads", type=int, default=1)
    parser.add_argument("--allocations", default="uniform,spatial")
    args = parser.parse_args()
    allocations = args.allocations.split(",")
    torch.set_num_threads(1)

    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.pruning import apply_adapter, prune_model
    from edgekit.sources import resolve_source
    from edgekit.ui import Reporter

    started = time.time()
    reporter = Reporter()
    source = resolve_source(SPEC)
    work = Path(tempfile.mkdtemp(prefix="prune-rbqe-"))
    rows, models = {}, {}
    with reporter.stage("held-out PSNR: unpruned"):
        rows["unpruned"] = {"method": "unpruned", **quality(source.module),
                            "params": sum(p.numel() for p in source.module.parameters()), "learned_parameters": 0}
    for allocation in allocations:
        for method in ("splora", "finetune"):
            key = method if allocation == "uniform" else f"{method}-{allocation}"
            report = prune_model(source, work / key, density=0.5, importance=args.importance, adapter=method,
                                 rank=args.rank, steps=args.steps, recover_minutes=args.recover_minutes,
                                 allocation=allocation, reporter=reporter)
            module, sha = fresh_source()
            module, _ = apply_adapter(module, work / key / "adapter.safetensors", sha)
            models[key] = module
            with reporter.stage(f"held-out PSNR: {key}"):
                rows[key] = {"method": method, "allocation": allocation, **quality(module),
                             "params": report["params_after"], "macs_ratio": report["macs_ratio"],
                             "learned_parameters": report["learned_parameters"],
                             "recovery_steps": report["recovery"]["steps"], "report": report}
    unpruned_report = rows[next(k for k in rows if k != "unpruned")]["report"]
    bundles = {}
    pruned = [(("pruned" if a == "uniform" else f"pruned-{a}"), models["splora" if a == "uniform" else f"splora-{a}"])
              for a in allocations]
    for name, module in (("unpruned", source.module), *pruned):
        with reporter.stage(f"export {name} → onnx + openvino"):
            bundles[name] = work / f"bundle-{name}"
            export_bundle(replace(source, module=module), bundles[name],
                          ExportOptions(targets=("onnx", "openvino"), validate=False))
    with reporter.stage(f"OpenVINO latency, {args.rounds} interleaved rounds"):
        latency = openvino_latency(bundles, args.rounds, args.ov_threads)
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpu": platform.processor() or platform.machine(),
                                                       "torch_threads": 1, "openvino_threads": args.ov_threads,
                                                       "note": "2-core CPU, quiet (no other jobs)"},
        "settings": vars(args), "density": 0.5,
        "macs_before": unpruned_report["macs_before"], "params_before": unpruned_report["params_before"],
        "latency": latency,
        "speedup": {k: latency["unpruned"]["median_ms"] / v["median_ms"] for k, v in latency.items() if k != "unpruned"},
        "rows": {k: {kk: vv for kk, vv in v.items() if kk != "report"} for k, v in rows.items()},
        "wall_seconds": round(time.time() - started),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(r: dict) -> str:
    lat = r["latency"]
    lines = [f"OpenVINO fp32 latency at 1×1×256×256, threshold=2 (exit 5), median of {lat['unpruned']['runs']} "
             f"interleaved runs: unpruned {lat['unpruned']['median_ms']:.1f} ms; "
             + "; ".join(f"{k} (SPLoRA) {lat[k]['median_ms']:.1f} ms (**{r['speedup'][k]:.2f}×**)"
                         for k in r["speedup"]), "",
             "| model | allocation | params | MACs ratio | learned params | recovery steps | ΔPSNR exit 5 (dB) | "
             "ΔPSNR early exit (dB) |", "|---|---|---|---|---|---|---|---|"]
    labels = {"unpruned": "unpruned (shipped)", "splora": f"SPLoRA r{r['settings']['rank']}",
              "finetune": "fine-pruning (all weights)"}
    for key, row in r["rows"].items():
        lines.append(f"| {labels[row['method']]} | {row.get('allocation', '-')} | {row['params']:,} | "
                     f"{row.get('macs_ratio', 1.0):.3f} | {row['learned_parameters']:,} | "
                     f"{row.get('recovery_steps', '-')} | {row['delta_psnr_exit5']:+.3f} | "
                     f"{row['delta_psnr_early_exit']:+.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
