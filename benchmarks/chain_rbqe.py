"""Issue #19 §3, zoo:rbqe: the chain against the model as given, on held-out photos, one run.

    python benchmarks/chain_rbqe.py [--rounds 3] [--pruned BUNDLE] [--int8 BUNDLE]

Baseline: PyTorch eager fp32 at the shipped threshold (0.79). Then each step of the chain at 0.79: the fp32
OpenVINO export, the pruned bundle (`--pruned`: `edgekit prune` + `export --adapter`), the int8 bundle
(`--int8`: `edgekit quantize` of the last bundle before it); and the last bundle at the threshold fitted
to the data on that bundle (the shallowest mean exit whose mean PSNR is within 0.3 dB of the baseline's),
plus the fp32 export at its own fitted threshold. Data: the 5 held-out photos at JPEG QF 10–50, one 256²
centre crop each (25 samples). Every variant runs every sample once per round, interleaved, `--rounds`
rounds; a sample's latency is its median over rounds, a variant's expected latency the mean over samples
(each sample takes its own exit). OpenVINO runs with its default threads and the f32 hint. Writes
results/chain_rbqe.json and prints the Markdown table for benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
CROP = 256
BUDGET_DB = 0.3
SHIPPED = 0.79
CANDIDATES = [round(0.05 * i, 2) for i in range(21)]


def samples() -> list[tuple[np.ndarray, np.ndarray, int]]:
    from edgekit.zoo.rbqe_data import QUALITY_FACTORS, compressed_pairs

    out = []
    for qf in QUALITY_FACTORS:
        for _, comp, clean in compressed_pairs(qf, "heldout"):
            h, w = comp.shape
            y, x = (h - CROP) // 2 // 8 * 8, (w - CROP) // 2 // 8 * 8  # on the JPEG block grid
            out.append((comp[y:y + CROP, x:x + CROP], clean[y:y + CROP, x:x + CROP], qf))
    return out


def psnr(enhanced: np.ndarray, clean: np.ndarray) -> float:
    from edgekit.validation.metrics import psnr as metric

    return metric(np.clip(enhanced[0, 0], 0.0, 1.0), clean)


def feed(image: np.ndarray, threshold: float) -> dict:
    return {"image": image[None, None].astype(np.float32), "threshold": np.array(threshold, np.float32)}


def runners(bundles: dict[str, Path]) -> dict:
    """name → run(feed) → (enhanced, exit_index): "eager" and one OpenVINO request per bundle."""
    import openvino as ov
    import torch

    from edgekit.sources import resolve_source

    module = resolve_source("zoo:rbqe").module.eval()

    def eager(f):
        with torch.no_grad():
            out, index = module(torch.from_numpy(f["image"]), torch.from_numpy(f["threshold"]))
        return out.numpy(), int(index)

    core = ov.Core()

    def compiled(path: Path):
        model = core.compile_model(str(path / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        request = model.create_infer_request()

        def run(f):
            result = request.infer(f)
            return result["enhanced"], int(result["exit_index"])
        return run

    return {"eager": eager, **{name: compiled(path) for name, path in bundles.items()}}


def fit(run, data, floor: float) -> tuple[float, dict]:
    """The threshold curve of `run` (quality and exits, untimed) and the fitted threshold."""
    curve = {}
    for t in CANDIDATES:
        scores, exits = measure(run, data, t, [[] for _ in data])
        curve[t] = (float(np.mean(scores)), exits)
    fitted = min((t for t in CANDIDATES if curve[t][0] >= floor), key=lambda t: (np.mean(curve[t][1]), -t))
    return fitted, curve


def measure(run, data, threshold: float, rounds_ms: list) -> tuple[list, list]:
    """One round of `run` at `threshold` over `data`: per-sample (psnr, exit), appending times to rounds_ms."""
    scores, exits = [], []
    for i, (comp, clean, _) in enumerate(data):
        f = feed(comp, threshold)
        start = time.perf_counter()
        enhanced, index = run(f)
        rounds_ms[i].append((time.perf_counter() - start) * 1e3)
        scores.append(psnr(enhanced, clean))
        exits.append(index + 1)
    return scores, exits


def row(name, threshold, scores, exits, times) -> dict:
    per_sample = [statistics.median(t) for t in times]
    hist = {k: exits.count(k) for k in sorted(set(exits))}
    return {"step": name, "threshold": threshold, "psnr": float(np.mean(scores)), "exits": hist,
            "expected_ms": float(np.mean(per_sample))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fp32", type=Path, default=RESULTS / "bundles" / "tune-rbqe")
    parser.add_argument("--pruned", type=Path, default=None)
    parser.add_argument("--int8", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from edgekit.env import environment

    data = samples()
    bundles = {"OpenVINO fp32": args.fp32}
    if args.pruned is not None:
        bundles["OpenVINO pruned fp32"] = args.pruned
    if args.int8 is not None:
        bundles["OpenVINO " + ("pruned " if args.pruned else "") + "int8"] = args.int8
    run = runners(bundles)
    base_scores, _ = measure(run["eager"], data, SHIPPED, [[] for _ in data])
    floor = float(np.mean(base_scores)) - BUDGET_DB
    last = list(bundles)[-1]
    fitted, curve = fit(run[last], data, floor)
    variants = [("baseline: PyTorch eager fp32", "eager", SHIPPED)]
    variants += [(f"{name}", name, SHIPPED) for name in bundles]
    if last != "OpenVINO fp32":
        variants.append(("OpenVINO fp32, tuned", "OpenVINO fp32", fit(run["OpenVINO fp32"], data, floor)[0]))
    variants.append((f"{last}, tuned", last, fitted))
    times = {name: [[] for _ in data] for name, _, _ in variants}
    results = {}
    for _ in range(args.rounds):
        for name, runner, threshold in variants:
            results[name] = measure(run[runner], data, threshold, times[name])
    rows = [row(name, threshold, *results[name], times[name]) for name, _, threshold in variants]
    base = rows[0]
    for r in rows:
        r["psnr_vs_baseline"] = r["psnr"] - base["psnr"]
        r["speedup"] = base["expected_ms"] / r["expected_ms"]
    payload = {"machine": {**environment(), "date": time.strftime("%Y-%m-%d")}, "crop": CROP, "samples": len(data),
               "rounds": args.rounds, "budget_db": BUDGET_DB, "bundles": {k: str(v) for k, v in bundles.items()},
               "fitted_threshold": fitted, "fitted_on": last, "rows": rows,
               "curve": {str(t): {"psnr": p, "exits": {k: e.count(k) for k in sorted(set(e))}}
                         for t, (p, e) in curve.items()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chain_rbqe.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("| step | threshold | exits (1–5) | PSNR dB | vs baseline dB | expected ms | × vs baseline |")
    print("|---|---:|---|---:|---:|---:|---:|")
    for r in rows:
        hist = "/".join(str(r["exits"].get(k, 0)) for k in range(1, 6))
        print(f"| {r['step']} | {r['threshold']:g} | {hist} | {r['psnr']:.3f} | {r['psnr_vs_baseline']:+.3f} | "
              f"{r['expected_ms']:.1f} | {r['speedup']:.2f} |")


if __name__ == "__main__":
    main()
