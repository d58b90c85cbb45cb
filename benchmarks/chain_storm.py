"""Issue #19 §3, zoo:storm: the chain against the model as given, on the held-out mixtures, one run.

    python benchmarks/chain_storm.py [--rounds 2] [--int8 BUNDLE]

Baseline: PyTorch eager fp32 at the shipped N = 50. Steps: the fp32 OpenVINO export at N = 50, then at the
N fitted to the data (the fewest steps whose mean SI-SDR is within 0.5 dB of the baseline's), and the int8
OpenVINO bundle at that N (`--int8`: an `edgekit quantize` of the fp32 bundle). Data: zoo:storm's own task
metric (8 held-out mixtures, fixed noise per mixture). Timing as in chain_rbqe.py: interleaved, median per
sample over rounds, mean over samples. Writes results/chain_storm.json and prints the Markdown table.
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
BUDGET_DB = 0.5
SHIPPED = 50
CANDIDATES = (1, 2, 3, 5, 8, 10, 15, 20, 30, 50)


def runners(fp32: Path, int8: Path | None, module) -> dict:
    import openvino as ov
    import torch

    def eager(f):
        with torch.no_grad():
            return module(*(torch.from_numpy(f[k]) for k in ("noisy_spec", "num_steps", "noise"))).numpy()

    core = ov.Core()

    def compiled(path: Path):
        request = core.compile_model(str(path / "model.xml"), "CPU",
                                     {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        return lambda f: request.infer(f)["enhanced_spec"]

    out = {"eager": eager, "openvino fp32": compiled(fp32)}
    if int8 is not None:
        out["openvino int8"] = compiled(int8)
    return out


def measure(run, metric, steps: int, times: list | None) -> float:
    """Mean SI-SDR of `run` at `steps` over the metric's feeds; appends per-sample ms to `times`."""
    scores = []
    for i, (feed, target) in enumerate(zip(metric.feeds, metric.targets)):
        feed = {**feed, "num_steps": np.array(steps, np.int64)}
        start = time.perf_counter()
        out = run(feed)
        if times is not None:
            times[i].append((time.perf_counter() - start) * 1e3)
        scores.append(metric.score({"enhanced_spec": out}, target))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--fp32", type=Path, default=RESULTS / "bundles" / "tune-storm")
    parser.add_argument("--int8", type=Path, default=None)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from edgekit.env import environment
    from edgekit.sources import resolve_source
    from edgekit.zoo.storm_task import task_metric

    module = resolve_source("zoo:storm").module.eval()
    metric = task_metric(module, SHIPPED)
    run = runners(args.fp32, args.int8, module)
    curve = {n: measure(run["openvino fp32"], metric, n, None) for n in CANDIDATES}  # quality only
    baseline = measure(run["eager"], metric, SHIPPED, None)
    fitted = min(n for n in CANDIDATES if curve[n] >= baseline - BUDGET_DB)
    variants = [("baseline: PyTorch eager fp32", "eager", SHIPPED), ("export: OpenVINO fp32", "openvino fp32", SHIPPED),
                ("tuned: OpenVINO fp32", "openvino fp32", fitted)]
    if args.int8 is not None:
        variants.append(("int8 + tuned: OpenVINO int8", "openvino int8", fitted))
    times = {name: [[] for _ in metric.feeds] for name, _, _ in variants}
    scores = {}
    for _ in range(args.rounds):
        for name, runner, steps in variants:
            scores[name] = measure(run[runner], metric, steps, times[name])
    rows = [{"step": name, "num_steps": steps, "si_sdr": scores[name],
             "expected_ms": float(np.mean([statistics.median(t) for t in times[name]]))}
            for name, _, steps in variants]
    for r in rows:
        r["si_sdr_vs_baseline"] = r["si_sdr"] - rows[0]["si_sdr"]
        r["speedup"] = rows[0]["expected_ms"] / r["expected_ms"]
    payload = {"machine": {**environment(), "date": time.strftime("%Y-%m-%d")}, "samples": len(metric.feeds),
               "rounds": args.rounds, "budget_db": BUDGET_DB, "fitted_steps": fitted, "rows": rows,
               "curve": {str(n): s for n, s in curve.items()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chain_storm.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("| step | N | SI-SDR dB | vs baseline dB | expected ms | × vs baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['step']} | {r['num_steps']} | {r['si_sdr']:.3f} | {r['si_sdr_vs_baseline']:+.3f} | "
              f"{r['expected_ms']:.0f} | {r['speedup']:.2f} |")


if __name__ == "__main__":
    main()
