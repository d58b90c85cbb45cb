"""Why RBQE's int8 exit paths differ from fp32: how far sub-LSB noise on an exit's output moves its IQAM
score, against the noise int8 actually adds.

    python benchmarks/rbqe_iqam_noise.py [--reuse]

On the held-out evaluation crops (zoo:rbqe's task metric, paper threshold 0.79), Gaussian noise of
standard deviation σ is added to each of exits 1–4's fp32 outputs (PyTorch) and the IQAM score recomputed:
mean and largest score change, and the share of crops whose exit (first score ≥ threshold) changes. The
int8 noise is the standard deviation of (int8 − fp32) `enhanced` on ONNX Runtime for exit 1 (threshold 0)
and exit 5 (threshold 2), from the all-int8 bundle of benchmarks/int8.py (built if missing or without
--reuse). Writes results/rbqe_iqam_noise.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
SIGMAS = (1e-4, 3e-4, 1e-3, 3e-3)  # one 8-bit step is 1/255 ≈ 3.9e-3


def first_exit(scores: list[float], threshold: float) -> int:
    return next((k for k, s in enumerate(scores) if s >= threshold), len(scores))


def noise_sweep(model, feeds: list[dict], threshold: float) -> tuple[list[dict], list[list[float]]]:
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        outputs = [model.forward_all(torch.from_numpy(f["image"]))[:-1] for f in feeds]
        clean = [[float(model.iqam(o).min()) for o in outs] for outs in outputs]
        rows = []
        for sigma in SIGMAS:
            noisy = [[float(model.iqam(o + sigma * torch.randn(o.shape, generator=generator)).min()) for o in outs]
                     for outs in outputs]
            delta = np.array(noisy) - np.array(clean)
            flips = [first_exit(n, threshold) != first_exit(c, threshold) for n, c in zip(noisy, clean)]
            rows.append({"sigma": sigma, "mean_delta_score": float(delta.mean()),
                         "max_delta_score": float(np.abs(delta).max()), "exit_changed": float(np.mean(flips))})
    return rows, clean


def int8_noise(model, feeds: list[dict], reuse: bool) -> dict:
    sys.path.insert(0, str(HERE))
    import int8  # noqa: E402  (benchmarks/int8.py builds and caches the bundles)

    from edgekit.calibration.accuracy import ort_run

    int8.REUSE = reuse
    fp32 = int8.export("zoo:rbqe", "int8-rbqe-fp32", "fp32", ("onnx",), validate=False)
    quantized = int8.export("zoo:rbqe", "int8-rbqe-int8", "int8", ("onnx",))
    run32, run8 = ort_run(fp32.artifact_path("onnx")), ort_run(quantized.artifact_path("onnx"))
    result = {}
    for name, threshold in (("exit1", 0.0), ("exit5", 2.0)):
        diffs = []
        for f in feeds:
            feed = {**f, "threshold": np.array(threshold, np.float32)}
            diffs.append((run8(feed)["enhanced"] - run32(feed)["enhanced"]).ravel())
        result[name] = float(np.concatenate(diffs).std())
    return result


def markdown(r: dict) -> str:
    lines = [f"Int8 noise on `enhanced` (σ of int8 − fp32, ONNX Runtime): exit 1 {r['int8_noise']['exit1']:.1e}, "
             f"exit 5 {r['int8_noise']['exit5']:.1e}. {r['crops']} held-out crops, threshold {r['threshold']}.", "",
             "| σ added to exits 1–4 | in 8-bit steps | mean Δ IQAM | largest Δ IQAM | exit changed |",
             "|---:|---:|---:|---:|---:|"]
    for row in r["noise"]:
        lines.append(f"| {row['sigma']:.0e} | {row['sigma'] * 255:.2f} | {row['mean_delta_score']:+.3f} | "
                     f"{row['max_delta_score']:.3f} | {row['exit_changed']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reuse", action="store_true", help="take the int8 bundles of an earlier int8.py run")
    args = parser.parse_args()

    from edgekit.zoo.rbqe import build_rbqe

    model = build_rbqe()
    feeds = model.task_metric().feeds
    at_threshold = [f for f in feeds if abs(float(f["threshold"]) - model.threshold) < 1e-6]
    rows, clean = noise_sweep(model, at_threshold, model.threshold)
    result = {"threshold": model.threshold, "crops": len(at_threshold), "noise": rows,
              "clean_scores_exit1_to_4": clean, "int8_noise": int8_noise(model, at_threshold, args.reuse)}
    out = HERE / "results" / "rbqe_iqam_noise.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))


if __name__ == "__main__":
    main()
