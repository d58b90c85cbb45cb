"""Issue #19 §3, zoo:storm: the chain against the model as given, on the held-out mixtures, one run.

    python benchmarks/chain_storm.py [--rounds 2] [--int8 BUNDLE] [--bf16]

Baseline: PyTorch eager fp32 at the shipped N = 50. Steps: the fp32 OpenVINO export at N = 50, then at the
N fitted to the data (the fewest steps whose mean SI-SDR is within 0.5 dB of the baseline's), and the int8
OpenVINO bundle at that N (`--int8`: an `edgekit quantize` of the fp32 bundle). Data: zoo:storm's own task
metric (8 held-out mixtures, fixed noise per mixture). Timing as in chain_rbqe.py: interleaved, median per
sample over rounds, mean over samples. `--bf16` adds the last bundle compiled with OpenVINO's bf16 inference
hint (int8 layers stay int8, the rest runs in bf16: #20's mixed int8/bf16), tuned on its own curve.
Writes results/chain_storm.json and prints the Markdown table.
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


def runners(bundles: dict, module) -> dict:
    import openvino as ov
    import torch

    def eager(f):
        with torch.no_grad():
            return module(*(torch.from_numpy(f[k]) for k in ("noisy_spec", "num_steps", "noise"))).numpy()

    core = ov.Core()

    def compiled(path: Path, hint: str):
        request = core.compile_model(str(path / "model.xml"), "CPU",
                                     {"INFERENCE_PRECISION_HINT": hint}).create_infer_request()
        return lambda f: request.infer(f)["enhanced_spec"]

    return {"eager": eager, **{name: compiled(path, "bf16" if name.endswith("bf16 hint") else "f32")
                               for name, path in bundles.items()}}


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
    parser.add_argument("--pruned", type=Path, default=None)
    parser.add_argument("--int8", type=Path, default=None)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from edgekit.env import environment
    from edgekit.sources import resolve_source
    from edgekit.zoo.storm_task import task_metric

    module = resolve_source("zoo:storm").module.eval()
    metric = task_metric(module, SHIPPED)
    bundles = {"OpenVINO fp32": args.fp32}
    if args.pruned is not None:
        bundles["OpenVINO pruned fp32"] = args.pruned
    if args.int8 is not None:
        bundles["OpenVINO " + ("pruned " if args.pruned else "") + "int8"] = args.int8
    if args.bf16:
        bundles[f"{list(bundles)[-1]}, bf16 hint"] = list(bundles.values())[-1]
    run = runners(bundles, module)
    baseline = measure(run["eager"], metric, SHIPPED, None)
    curves = {}
    for name in dict.fromkeys(["OpenVINO fp32", *list(bundles)[-2 if args.bf16 else -1:]]):  # quality only
        curves[name] = {n: measure(run[name], metric, n, None) for n in CANDIDATES}
    # a bundle no N brings within the budget is reported with its curve and not tuned
    fitted = {name: min(ok) for name, c in curves.items() if (ok := [n for n in CANDIDATES
                                                                     if c[n] >= baseline - BUDGET_DB])}
    for name, c in curves.items():
        print(f"{name}: SI-SDR by N " + ", ".join(f"{n}: {v:.2f}" for n, v in c.items())
              + f" (baseline {baseline:.2f}; fitted N {fitted.get(name, 'none within the budget')})")
    variants = [("baseline: PyTorch eager fp32", "eager", SHIPPED)]
    variants += [(name, name, SHIPPED) for name in bundles]
    variants += [(f"{name}, tuned", name, n) for name, n in fitted.items()]
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
               "rounds": args.rounds, "budget_db": BUDGET_DB, "bundles": {k: str(v) for k, v in bundles.items()},
               "fitted_steps": fitted, "rows": rows,
               "curves": {name: {str(n): v for n, v in c.items()} for name, c in curves.items()}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "chain_storm.json").write_text(json.dumps(payload, indent=2) + "\n")
    print("| step | N | SI-SDR dB | vs baseline dB | expected ms | × vs baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['step']} | {r['num_steps']} | {r['si_sdr']:.3f} | {r['si_sdr_vs_baseline']:+.3f} | "
              f"{r['expected_ms']:.0f} | {r['speedup']:.2f} |")


if __name__ == "__main__":
    main()
