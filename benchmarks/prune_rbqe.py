"""zoo:rbqe (shipped checkpoint, width 32) pruned to density 0.5: SPLoRA-r8 vs fine-pruning (all weights
trained) after the same recovery budget. Measures params, MACs (all exits), OpenVINO fp32 latency at
1×1×256×256 with threshold=2 (always exit 5), held-out ΔPSNR, learned-parameter counts.

    .venv/bin/python benchmarks/prune_rbqe.py [--recover-minutes 3.5] [--steps 10]

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
    from edgekit.sources import _state_sha256
    from edgekit.zoo.rbqe import build_rbqe

    module = build_rbqe()
    return module, _state_sha256(module)


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
    args = parser.parse_args()
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
    for method in ("splora", "finetune"):
        report = prune_model(source, work / method, density=0.5, importance=args.importance, adapter=method,
                             rank=args.rank, steps=args.steps, recover_minutes=args.recover_minutes, reporter=reporter)
        module, sha = fresh_source()
        module, _ = apply_adapter(module, work / method / "adapter.safetensors", sha)
        models[method] = module
        with reporter.stage(f"held-out PSNR: {method}"):
            rows[method] = {"method": method, **quality(module), "params": report["params_after"],
                            "learned_parameters": report["learned_parameters"],
                            "recovery_steps": report["recovery"]["steps"], "report": report}
    unpruned_report = rows["splora"]["report"]
    bundles = {}
    for name, module in (("unpruned", source.module), ("pruned", models["splora"])):
        with reporter.stage(f"export {name} → onnx + openvino"):
            bundles[name] = work / f"bundle-{name}"
            export_bundle(replace(source, module=module), bundles[name],
                          ExportOptions(targets=("onnx", "openvino"), validate=False))
    with reporter.stage(f"OpenVINO latency, {args.rounds} interleaved rounds"):
        latency = openvino_latency(bundles, args.rounds, args.ov_threads)
    result = {
        "date": time.strftime("%Y-%m-%d"), "machine": {"cpu": platform.processor() or platform.machine(),
                                                       "torch_threads": 1, "openvino_threads": args.ov_threads,
                                                       "note": "2-core CPU shared with other jobs"},
        "settings": vars(args), "density": 0.5,
        "macs_before": unpruned_report["macs_before"], "macs_after": unpruned_report["macs_after"],
        "macs_ratio": unpruned_report["macs_after"] / unpruned_report["macs_before"],
        "params_before": unpruned_report["params_before"], "params_after": unpruned_report["params_after"],
        "latency": latency,
        "speedup": latency["unpruned"]["median_ms"] / latency["pruned"]["median_ms"],
        "rows": {k: {kk: vv for kk, vv in v.items() if kk != "report"} for k, v in rows.items()},
        "wall_seconds": round(time.time() - started),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


def markdown(r: dict) -> str:
    lat = r["latency"]
    lines = [
        f"MACs after/before (all 5 exits): **{r['macs_ratio']:.3f}** · params {r['params_before']:,} → "
        f"{r['params_after']:,} · OpenVINO fp32 latency at 1×1×256×256, threshold=2 (exit 5): "
        f"{lat['unpruned']['median_ms']:.1f} ms → {lat['pruned']['median_ms']:.1f} ms (**{r['speedup']:.2f}×**, "
        f"median of {lat['pruned']['runs']} interleaved runs)", "",
        "| model | params | learned params | recovery steps | ΔPSNR exit 5 (dB) | ΔPSNR early exit (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (("unpruned", "unpruned (shipped)"), ("splora", f"SPLoRA r{r['settings']['rank']}"),
                       ("finetune", "fine-pruning (all weights)")):
        row = r["rows"][key]
        lines.append(f"| {label} | {row['params']:,} | {row['learned_parameters']:,} | {row.get('recovery_steps', '-')} | "
                     f"{row['delta_psnr_exit5']:+.3f} | {row['delta_psnr_early_exit']:+.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
