"""ONNX Runtime Mobile: `.ort` (arm and amd64 optimizations) against the `.onnx` it came from, same session
options, same process, interleaved rounds.

    python benchmarks/ort_mobile.py [--rounds 7] [--iters 5]

Uses zoo:rbqe (exit 5: threshold 2, 256² input) and zoo:storm (N = 20, its example input) from the bundles of
benchmarks/tune_zoo.py (exported there if missing). Each round times `--iters` calls of every variant in turn
(1 warm-up call each first); the table gives the median per-call latency over all rounds and the ratio to the
`.onnx`. Writes results/ort_mobile.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def feeds(model: str, bundle) -> dict:
    from edgekit.bench.plan import bench_feed

    if model == "rbqe":
        image = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
        return {"image": image, "threshold": np.array(2.0, np.float32)}
    return bench_feed(bundle, {"num_steps": 20})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(HERE.parent))
    from timing_loop import interleaved
    import onnxruntime as ort

    from edgekit.bundle import Bundle
    from edgekit.export.ort_mobile import ort_from_onnx
    from tune_zoo import bundle_for

    rows = []
    for model in ("rbqe", "storm"):
        path = bundle_for(model, reuse=True)
        feed = feeds(model, Bundle.load(path))
        with tempfile.TemporaryDirectory() as tmp:
            files = {"onnx": path / "model.onnx"}
            for platform in ("amd64", "arm"):
                (Path(tmp) / platform).mkdir()
                ort_from_onnx(path / "model.onnx", Path(tmp) / platform, platform)
                files[f"ort {platform}"] = Path(tmp) / platform / "model.ort"
            sessions = {name: ort.InferenceSession(str(file), providers=["CPUExecutionProvider"])
                        for name, file in files.items()}
            outputs = {}
            for name, session in sessions.items():
                outputs[name] = session.run(None, feed)  # warm-up, and the outputs to compare
            times = interleaved({name: (lambda s=s: s.run(None, feed)) for name, s in sessions.items()},
                                args.rounds, args.iters)
        base = statistics.median(times["onnx"])
        for name, samples in times.items():
            diff = max(float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))
                       for a, b in zip(outputs[name], outputs["onnx"]))
            rows.append({"model": model, "artifact": name, "p50_ms": statistics.median(samples),
                         "vs_onnx": statistics.median(samples) / base, "calls": len(samples), "max_abs_vs_onnx": diff})
    report(rows, "ort_mobile.json")


def report(rows: list[dict], name: str) -> None:
    """Write results/NAME (rows + this machine) and print the rows as a markdown table."""
    from edgekit.env import environment

    result = {"rows": rows, "machine": {**environment(), "date": time.strftime("%Y-%m-%d")}}
    (RESULTS / name).write_text(json.dumps(result, indent=2) + "\n")
    print("| model | artifact | p50 ms | × vs .onnx | max abs vs .onnx |\n|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['artifact']} | {r['p50_ms']:.1f} | {r['vs_onnx']:.2f} | {r['max_abs_vs_onnx']:.1e} |")


if __name__ == "__main__":
    main()
