"""`edgekit tune` on the shipped zoo models: the threshold/step curve, the chosen setting and its saving.

    python benchmarks/tune_zoo.py [--model rbqe|storm|all] [--runtime openvino] [--reuse]

Exports zoo:rbqe and zoo:storm (fp32, ONNX + OpenVINO; bundles under benchmarks/results/bundles, not
committed), then tunes each on its own held-out task data (RBQE: PSNR on 128² centre crops of the held-out
photos at JPEG QF 10–50, budget 0.3 dB; StoRM: SI-SDR on the held-out mixtures, budget 0.5 dB) with every
call timed on the runtime. Writes results/tune_<model>.json (the whole curve, the machine) and prints the
table for benchmarks/README.md. Latencies are per-sample medians on a shared 2-core machine: read the
ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BUDGETS = {"rbqe": 0.3, "storm": 0.5}


def bundle_for(model: str, reuse: bool) -> Path:
    from edgekit.bundle import Bundle
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.ui import Reporter

    out = RESULTS / "bundles" / f"tune-{model}"
    if reuse and (out / "manifest.json").is_file():
        return out
    export_bundle(resolve_source(f"zoo:{model}"), out, ExportOptions(targets=("onnx", "openvino"), force=True),
                  Reporter())
    Bundle.load(out)
    return out


def table(result: dict) -> str:
    ref_ms = result["reference"]["expected_latency_ms"]
    lines = [f"| setting | paths | {result['metric']} | drop | expected ms | × vs costliest |",
             "|---|---|---:|---:|---:|---:|"]
    rows = [*result["curve"], {**result["oracle"], "oracle": True}]
    for row in rows:
        setting = "oracle (per sample)" if row.get("oracle") else ", ".join(f"{k}={v}" for k, v in row["setting"].items())
        if row.get("setting") == result["chosen"]["setting"]:
            setting = f"**{setting} (chosen)**"
        paths = " · ".join("/".join(f"{v}:{n}" for v, n in h.items()) for h in row["paths"].values())
        lines.append(f"| {setting} | {paths} | {row['metric']:.3f} | {row['drop']:+.3f} | "
                     f"{row['expected_latency_ms']:.1f} | {ref_ms / row['expected_latency_ms']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("rbqe", "storm", "all"), default="all")
    parser.add_argument("--runtime", default="openvino")
    parser.add_argument("--reuse", action="store_true", help="tune the bundles of an earlier run (no re-export)")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    from edgekit.bundle import Bundle
    from edgekit.env import environment
    from edgekit.tuning.stage import tune_bundle
    from edgekit.ui import Reporter

    for model in ("rbqe", "storm") if args.model == "all" else (args.model,):
        path = bundle_for(model, args.reuse)
        result = tune_bundle(Bundle.load(path), runtime=args.runtime, budget=BUDGETS[model], validate=False,
                             write=False, reporter=Reporter())
        result["machine"] = {**environment(), "date": time.strftime("%Y-%m-%d")}
        (RESULTS / f"tune_{model}.json").write_text(json.dumps(result, indent=2) + "\n")
        chosen = result["chosen"]
        print(f"\n### zoo:{model} ({args.runtime}, {result['data']['samples']} samples, budget {result['budget']:g})\n")
        print(table(result))
        print(f"\nchosen {chosen['setting']}: {result['metric']} {chosen['metric']:.3f} (drop {chosen['drop']:+.3f}), "
              f"{result['speedup']:.2f}× faster than the costliest setting")


if __name__ == "__main__":
    main()
