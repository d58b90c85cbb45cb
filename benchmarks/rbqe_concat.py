"""zoo:rbqe's exported Up nodes: per edge (edgekit's export) vs one concatenation (the eager form), on
OpenVINO fp32 at 1×1×256×256.

    python benchmarks/rbqe_concat.py [--rounds 20]

Both graphs come from the shipped checkpoint through the same exporter (`torch.onnx.export`, dynamo,
static 256²), differing only in `Up.per_edge_export`. Timed interleaved round by round at 1 and 2
threads, exit 5 (threshold 2) and exit 1 (threshold 0); outputs compared. Writes
results/rbqe_concat.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent


def export(per_edge: bool, path: Path) -> Path:
    import openvino as ov

    from edgekit.zoo.rbqe import Up, build_rbqe

    model = build_rbqe()
    Up.per_edge_export = per_edge
    try:
        torch.onnx.export(model, (torch.rand(1, 1, 256, 256), torch.tensor(2.0)), str(path), dynamo=True,
                          input_names=["image", "threshold"], output_names=["enhanced", "exit_index"], verbose=False)
    finally:
        Up.per_edge_export = True
    xml = path.with_suffix(".xml")
    ov.save_model(ov.convert_model(str(path)), str(xml))
    return xml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    import openvino as ov

    work = Path(tempfile.mkdtemp(prefix="rbqe-concat-"))
    graphs = {"concat": export(False, work / "concat.onnx"), "per_edge": export(True, work / "per_edge.onnx")}
    image = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    core = ov.Core()
    result = {"date": time.strftime("%Y-%m-%d"), "openvino": ov.get_version(), "rounds": args.rounds, "rows": []}
    for threads in (1, 2):
        config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
        requests = {k: core.compile_model(str(x), "CPU", config).create_infer_request() for k, x in graphs.items()}
        for threshold in (2.0, 0.0):
            feed = {"image": image, "threshold": np.array(threshold, np.float32)}
            outputs = {k: r.infer(feed) for k, r in requests.items()}
            enhanced = {k: o[0].copy() for k, o in outputs.items()}
            times = {k: [] for k in requests}
            for _ in range(args.rounds):
                for k, r in requests.items():
                    start = time.perf_counter()
                    r.infer(feed)
                    times[k].append((time.perf_counter() - start) * 1e3)
            ms = {k: statistics.median(v) for k, v in times.items()}
            result["rows"].append({"threads": threads, "exit": 5 if threshold == 2.0 else 1, "ms": ms,
                                   "per_edge_over_concat": ms["per_edge"] / ms["concat"],
                                   "max_abs_diff": float(np.abs(enhanced["per_edge"] - enhanced["concat"]).max())})
    (HERE / "results" / "rbqe_concat.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| threads | exit | concat ms | per edge ms | per edge / concat | max abs diff |", "|---:|---:|---:|---:|---:|---:|"]
    for row in result["rows"]:
        lines.append(f"| {row['threads']} | {row['exit']} | {row['ms']['concat']:.1f} | {row['ms']['per_edge']:.1f} | "
                     f"{row['per_edge_over_concat']:.2f} | {row['max_abs_diff']:.1e} |")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
