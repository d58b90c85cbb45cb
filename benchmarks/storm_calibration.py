"""zoo:storm int8 calibration: time and quality per calibration set (#20: "calibration ≤ 60 s").

    python benchmarks/storm_calibration.py   (needs results/bundles/storm-mixed: edgekit export zoo:storm
                                              --precision mixed -o results/bundles/storm-mixed)

Each set is `count` training mixtures cycling the step counts `steps`; the bundle's fp32 graph is calibrated
and Q/DQ'd with edgekit's int8_from_onnx (timed), then the int8 graph's SI-SDR on the 8 held-out mixtures at
N = 5 and 20 through ONNX Runtime is compared with the fp32 graph's (drop > 0: worse). Writes
results/storm_calibration.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SETS = (("24 × (5, 10, 20)", 24, (5, 10, 20)), ("32 × (5, 10, 20)", 32, (5, 10, 20)),
        ("24 × (5, 20, 50)", 24, (5, 20, 50)), ("64 × (5, 20, 50)", 64, (5, 20, 50)))


def sisdr(module, path: str, steps: int) -> float:
    import onnxruntime as ort

    import edgekit.zoo.storm_task as task

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    metric = task.task_metric(module, steps)
    scores = [metric.score({"enhanced_spec": session.run(["enhanced_spec"], {k: v for k, v in f.items() if k in names})[0]}, t)
              for f, t in zip(metric.feeds, metric.targets)]
    return float(np.mean(scores))


def main() -> None:
    sys.path.insert(0, str(HERE.parent))
    import edgekit.zoo.storm_task as task
    from edgekit.calibration.quantize import int8_from_onnx
    from edgekit.sources import resolve_source

    module = resolve_source("zoo:storm").module
    fp32 = str(HERE / "results" / "bundles" / "storm-mixed" / "model.fp32.onnx")
    base = {n: sisdr(module, fp32, n) for n in (5, 20)}
    results = {"fp32": base}
    out = str(Path(tempfile.mkdtemp()) / "int8.onnx")
    for name, count, steps in SETS:
        task.CALIB_STEPS, task.CALIB_MAX_FEEDS = steps, count
        feeds = task.calibration_feeds(module, count)
        start = time.perf_counter()
        int8_from_onnx(fp32, out, feeds)
        seconds = time.perf_counter() - start
        drops = {n: base[n] - sisdr(module, out, n) for n in (5, 20)}
        results[name] = {"seconds": seconds, "drop": drops}
        print(f"| {name} | {seconds:.1f} | {drops[5]:+.3f} | {drops[20]:+.3f} |", flush=True)
    (HERE / "results" / "storm_calibration.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
