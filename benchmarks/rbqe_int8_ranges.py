"""zoo:rbqe int8 on ONNX Runtime: how the activation ranges and the input conv change the exit paths.

    python benchmarks/rbqe_int8_ranges.py [--reuse]

From the fp32 RBQE graph of benchmarks/int8.py (results/bundles/int8-rbqe-fp32, built if missing or
without --reuse), calibrated on zoo:rbqe's 64 calibration crops as `edgekit export --precision int8` does,
every variant quantizes all convs except IQAM's decision convs and the ones it names:
- activation ranges absmax vs MSE-optimal clip (`calibration.quantize.activation_ranges`);
- the stem's first conv (reads the 1-channel image; `qdq.input_layers`) int8 vs float;
- everything up to exit 1 (the main graph) in float, to see where the remaining flips go.
Measured on the task metric's 50 held-out feeds: exit paths identical to fp32, PSNR drop, and the standard
deviation of (int8 − fp32) `enhanced` where the path matched. Then, for the default variant, each feed
whose path differs with its fp32 IQAM scores at exits 1–4 (paper threshold 0.79). Writes
results/rbqe_int8_ranges.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="reuse benchmarks/int8.py's fp32 bundle")
    args = parser.parse_args()
    import torch

    import int8 as int8_bench  # benchmarks/int8.py: the same bundle
    from edgekit.calibration.accuracy import ort_run
    from edgekit.calibration.qdq import (activation_names, decision_nodes, input_layers, qdq_from_onnx,
                                         quantizable_nodes, quantized_counts, unique_node_names)
    from edgekit.calibration.quantize import activation_ranges
    from edgekit.export.controlflow import load_onnx
    from edgekit.zoo.rbqe import build_rbqe
    from edgekit.zoo.rbqe_task import calibration_feeds, task_metric

    int8_bench.REUSE = args.reuse
    bundle = int8_bench.export("zoo:rbqe", "int8-rbqe-fp32", "fp32", ("onnx", "openvino"), validate=False)
    model = load_onnx(bundle.artifact_path("onnx"))
    unique_node_names(model)
    decision = set(decision_nodes(model))
    stem = set(input_layers(model))
    exit1 = {n.name for ref, n in quantizable_nodes(model) if not ref.path}  # the main graph: up to exit 1
    names = activation_names(model, decision)
    feeds = calibration_feeds(64, build_rbqe().threshold)
    ranges = {method: activation_ranges(model, feeds, names, method)[0] for method in ("absmax", "mse")}
    metric = task_metric(build_rbqe().threshold)
    reference = ort_run(model)
    refs = [reference(feed) for feed in metric.feeds]

    def measure(label: str, method: str, float_nodes: set[str]) -> tuple[dict, list[int]]:
        quantized = qdq_from_onnx(model, ranges[method], decision | float_nodes)
        run = ort_run(quantized)
        same, drops, noise, flipped, exits = 0, [], [], [], []
        for i, (feed, target, ref) in enumerate(zip(metric.feeds, metric.targets, refs)):
            got = run(feed)
            if int(got["exit_index"]) == int(ref["exit_index"]):
                same += 1
                noise.append(float(np.std(got["enhanced"] - ref["enhanced"])))
            else:
                flipped.append(i)
                exits.append([i, int(ref["exit_index"]) + 1, int(got["exit_index"]) + 1])
            drops.append(metric.score(ref, target) - metric.score(got, target))
        counts = quantized_counts(quantized)
        row = {"variant": label, "ranges": method, "int8_convs": counts.quantized, "convs": counts.total,
               "paths_identical": same / len(refs), "psnr_drop": float(np.mean(drops)),
               "noise_std": float(np.mean(noise)), "flips_feed_fp32_exit_int8_exit": exits}
        print(f"{label}: {row}", flush=True)
        return row, flipped

    rows = []
    for method in ("absmax", "mse"):
        rows.append(measure("all convs", method, set())[0])
        row, flipped = measure("input conv float (default)", method, stem)
        rows.append(row)
    rows.append(measure("everything up to exit 1 float", "mse", stem | exit1)[0])

    rbqe = build_rbqe()
    flips = []
    with torch.no_grad():
        for i in flipped:  # the default (MSE, input conv float) variant's
            outputs = rbqe.forward_all(torch.from_numpy(metric.feeds[i]["image"]))[:-1]
            flips.append({"feed": i, "fp32_exit": int(refs[i]["exit_index"]) + 1,
                          "fp32_iqam_exits_1_to_4": [round(float(rbqe.iqam(o).min()), 3) for o in outputs]})
    result = {"date": time.strftime("%Y-%m-%d"), "feeds": len(refs), "rows": rows, "flipped_default": flips}
    (HERE / "results" / "rbqe_int8_ranges.json").write_text(json.dumps(result, indent=1) + "\n")
    print("\n| variant | activation ranges | convs int8 | exit paths = fp32 | PSNR drop (dB) | output noise σ |")
    print("|---|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['variant']} | {r['ranges']} | {r['int8_convs']}/{r['convs']} | {r['paths_identical']:.0%} | "
              f"{r['psnr_drop']:+.4f} | {r['noise_std']:.2e} |")
    for r in rows:
        print(f"{r['variant']} ({r['ranges']}): flips (feed, fp32 exit, int8 exit) {r['flips_feed_fp32_exit_int8_exit']}")
    print("\n| feed | fp32 exit | fp32 IQAM at exits 1–4 |\n|---:|---:|---|")
    for f in flips:
        print(f"| {f['feed']} | {f['fp32_exit']} | {', '.join(map(str, f['fp32_iqam_exits_1_to_4']))} |")


if __name__ == "__main__":
    main()
