"""`--keep-exits` on zoo:rbqe (#19 §1, #20's RBQE target): what dropping the exits a policy never takes buys
on OpenVINO, against PyTorch eager fp32 in the same run.

    python benchmarks/keep_exits_rbqe.py [--rounds 5]

Bundles (made first, not timed; results/bundles/, not committed):
    edgekit export zoo:rbqe -o ke-rbqe-fp32                 edgekit quantize ke-rbqe-fp32 -o ke-rbqe-int8
    edgekit export zoo:rbqe --keep-exits 4 -o ke-rbqe-fp32-k4 ... and -k0 (exit_index 0 = exit 1 only)
    edgekit export zoo:rbqe --keep-exits 4 --precision mixed -o ke-rbqe-mixed-k4 (and -k0): int8 + bf16 hint
    edgekit quantize ke-rbqe-fp32 --quantizer nncf --target openvino -o ke-rbqe-nncf (NNCF on the IR, #20)
    edgekit export zoo:rbqe --keep-exits 4 --precision int8|mixed --quantizer nncf -o ke-rbqe-nncf-k4 / -nncf-mixed-k4
    (and --keep-exits 0 --precision int8 --quantizer nncf -o ke-rbqe-nncf-k0)
Two policies on the 25 held-out 256² crops (5 photos × JPEG QF 10–50): threshold 2 (every crop to exit 5,
the issue's "exit 5" target) and threshold 0.6 (every crop to exit 1: the fitted policy of
benchmarks/README.md's chain table). Every variant runs every crop once per round, interleaved; a crop's
latency is its median over rounds, a variant's the mean over crops. OpenVINO: f32 hint, default threads.
Writes results/keep_exits_rbqe.json and prints the Markdown table.
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
BUNDLES = HERE / "results" / "bundles"
VARIANTS = {  # name → (bundle, threshold)
    "exit 5": [("OpenVINO fp32, 5 exits", "ke-rbqe-fp32"), ("OpenVINO fp32, --keep-exits 4", "ke-rbqe-fp32-k4"),
               ("OpenVINO int8, 5 exits", "ke-rbqe-int8"), ("OpenVINO int8, --keep-exits 4", "ke-rbqe-int8-k4"),
               ("OpenVINO mixed (int8 + bf16), --keep-exits 4", "ke-rbqe-mixed-k4"),
               ("OpenVINO int8 NNCF, 5 exits", "ke-rbqe-nncf"), ("OpenVINO int8 NNCF, --keep-exits 4", "ke-rbqe-nncf-k4"),
               ("OpenVINO mixed NNCF, --keep-exits 4", "ke-rbqe-nncf-mixed-k4")],
    "exit 1": [("PyTorch eager fp32 at the shipped threshold 0.79 (#19's baseline)", "eager@0.79"),
               ("OpenVINO fp32, 5 exits", "ke-rbqe-fp32"), ("OpenVINO fp32, --keep-exits 0", "ke-rbqe-fp32-k0"),
               ("OpenVINO int8, 5 exits", "ke-rbqe-int8"), ("OpenVINO int8, --keep-exits 0", "ke-rbqe-int8-k0"),
               ("OpenVINO mixed (int8 + bf16), --keep-exits 0", "ke-rbqe-mixed-k0"),
               ("OpenVINO int8 NNCF, --keep-exits 0", "ke-rbqe-nncf-k0")],
}
THRESHOLD = {"exit 5": 2.0, "exit 1": 0.6}


def _bf16_runner(path: Path):
    import openvino as ov

    request = ov.Core().compile_model(str(path / "model.xml"), "CPU",
                                      {"INFERENCE_PRECISION_HINT": "bf16"}).create_infer_request()

    def run(f):
        result = request.infer(f)
        return result["enhanced"], int(result["exit_index"])
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from chain_rbqe import feed, psnr, runners, samples  # benchmarks/chain_rbqe.py

    from edgekit.env import environment

    data = samples()
    names = sorted({b for rows in VARIANTS.values() for _, b in rows if not b.startswith("eager")})
    run = runners({b: BUNDLES / b for b in names})
    run["eager@0.79"] = lambda f: run["eager"]({**f, "threshold": np.array(0.79, np.float32)})
    for b in names:  # a bundle exported with --precision bf16/mixed runs with the hint it records
        if json.loads((BUNDLES / b / "manifest.json").read_text())["artifacts"]["openvino"].get("inference_precision") == "bf16":
            run[b] = _bf16_runner(BUNDLES / b)
    validation = {b: {k: v.get("status") for k, v in json.loads((BUNDLES / b / "manifest.json").read_text())
                      ["validation"].items()} for b in names}
    results = {"env": environment(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "rounds": args.rounds, "tables": {}}
    for policy, rows in VARIANTS.items():
        threshold = THRESHOLD[policy]
        keys = ["eager", *(b for _, b in rows)]
        times = {k: [[] for _ in data] for k in keys}
        scores, exits = {k: [] for k in keys}, {k: [] for k in keys}
        for r in range(args.rounds):
            for i, (comp, clean, _) in enumerate(data):
                f = feed(comp, threshold)
                for k in keys:
                    start = time.perf_counter()
                    enhanced, index = run[k](f)
                    times[k][i].append((time.perf_counter() - start) * 1e3)
                    if r == 0:
                        scores[k].append(psnr(enhanced, clean))
                        exits[k].append(index + 1)
        expected = {k: float(np.mean([statistics.median(t) for t in times[k]])) for k in keys}
        table = []
        for label, key in [("PyTorch eager fp32", "eager"), *rows]:
            table.append({"variant": label, "bundle": key, "threshold": threshold,
                          "exits": {e: exits[key].count(e) for e in sorted(set(exits[key]))},
                          "psnr": float(np.mean(scores[key])),
                          "vs_eager_db": float(np.mean(scores[key]) - np.mean(scores["eager"])),
                          "expected_ms": expected[key], "x_eager": expected[key] / expected["eager"],
                          "validation": validation.get(key, {})})
        results["tables"][policy] = table
        print(f"\n{policy} (threshold {threshold:g})\n")
        print("| variant | exits (1–5) | PSNR dB | vs eager dB | ms | × eager | validation |\n|---|---|---:|---:|---:|---:|---|")
        for row in table:
            hist = "/".join(str(row["exits"].get(e, 0)) for e in range(1, 6))
            status = ", ".join(f"{k} {v}" for k, v in row["validation"].items()) or "–"
            print(f"| {row['variant']} | {hist} | {row['psnr']:.3f} | {row['vs_eager_db']:+.3f} | "
                  f"{row['expected_ms']:.1f} | {row['x_eager']:.3f} | {status} |")
    (HERE / "results" / "keep_exits_rbqe.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
