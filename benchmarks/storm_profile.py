"""#20 "StoRM speed": where one sampler step spends its time on OpenVINO CPU, per precision.

    python benchmarks/storm_profile.py [--rounds 5] [--frames 24]

The bundles of benchmarks/storm_speed.py (results/bundles/storm-speed-<precision>; made there when missing),
each IR at its own inference precision (fp32, bf16 hint, int8, mixed = int8 + bf16 hint), zoo:storm at
N = 20 on storm_speed's random feed. `edgekit.runtimes.openvino_boundary.boundary_profile` (what `edgekit
inspect --runtime openvino` prints) profiles the main graph (the predictive U-Net, the prior) and the `Loop`
body run alone on its first iteration's values: OpenVINO reports a Loop as one opaque node. The table gives
one step's op time by type, so what int8/bf16 leave in float is visible. Each IR is profiled as exported
(dynamic frames) and reshaped to the feed's shapes ("static", what `OpenVINORunner(static_shapes=True)` compiles):
with static shapes the CPU plugin fuses the element-wise chains into Snippets `Subgraph` nodes.
Writes results/storm_profile.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# OpenVINO CPU node types, grouped by what they compute
GROUPS = {**dict.fromkeys(("Convolution", "GroupConvolution", "Deconvolution", "MatMul", "FullyConnected",
                           "FullyConnectedQuantizedLegacy"), "conv"),
          **dict.fromkeys(("Eltwise", "Subgraph", "Multiply", "Add", "Subtract", "Divide", "PowerStatic", "MulAdd",
                           "SwishCPU", "Sqrt"), "element-wise"),
          **dict.fromkeys(("MVN", "Reduce", "ReduceMean"), "norm statistics"),
          **dict.fromkeys(("Concat", "Broadcast", "Gather", "Reshape", "Convert", "Interpolate"), "copies"),
          "FakeQuantize": "quantize", "Reorder": "reorder"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--frames", type=int, default=24)
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from storm_speed import PRECISIONS, STEPS, _bundles, _feed

    from edgekit.bundle import Bundle
    from edgekit.env import environment
    from edgekit.runtimes.openvino_boundary import boundary_profile

    import openvino as ov

    bundles = _bundles(rebuild=False)
    feed = _feed(args.frames)
    work = Path(tempfile.mkdtemp(prefix="storm-profile-"))
    rows = {}
    for precision, shapes in ((p, s) for p in PRECISIONS for s in ("dynamic", "static")):
        path = bundles[precision] / "model.xml"
        if shapes == "static":
            model = ov.Core().read_model(str(path))
            model.reshape({name: list(value.shape) for name, value in feed.items()})
            path = work / f"{precision}.xml"
            ov.save_model(model, str(path), compress_to_fp16=False)
        # each IR at the inference precision it was exported for (bf16 and mixed: bf16), as edgekit's runner
        hint = Bundle.load(bundles[precision]).artifact("openvino").get("inference_precision", "fp32")
        prof = boundary_profile(path, feed, rounds=args.rounds, precision=hint)
        precision = f"{precision} {shapes}"
        loop = next(b for b in prof["boundaries"] if b["op"] in ("Loop", "TensorIterator"))
        step = loop["body_ops_ms"]
        grouped: dict[str, float] = {}
        for op, ms in step.items():
            group = GROUPS.get(op, "other")
            grouped[group] = grouped.get(group, 0.0) + ms
        rows[precision] = {"wall_ms": prof["wall_ms"], "loop_ms": loop["ms"], "iterations": loop["iterations"],
                           "step_ms": loop["body_ms"] / loop["iterations"], "step_ops_ms": step,
                           "step_groups_ms": grouped, "main_ops_ms": prof["ops_ms"],
                           "handover_ms": loop["overhead_ms"]}
        print(f"{precision}: wall {prof['wall_ms']:.1f} ms, loop {loop['ms']:.1f} ms, "
              f"{loop['iterations']} steps of {rows[precision]['step_ms']:.2f} ms", flush=True)
    result = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "environment": environment(),
              "frames": args.frames, "num_steps": STEPS, "rounds": args.rounds, "precisions": rows}
    (HERE / "results" / "storm_profile.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nzoo:storm, N = {STEPS}, {args.frames} frames: whole call and one step (the Loop body alone), ms\n")
    print("| precision | call | Loop | one step | " + " | ".join(_group_names(rows)) + " |")
    print("|---|---:|---:|---:|" + "---:|" * len(_group_names(rows)))
    for precision, row in rows.items():
        groups, total = row["step_groups_ms"], sum(row["step_groups_ms"].values())
        shares = " | ".join(f"{groups.get(g, 0.0):.2f} ({groups.get(g, 0.0) / total:.0%})" for g in _group_names(rows))
        print(f"| {precision} | {row['wall_ms']:.1f} | {row['loop_ms']:.1f} | {row['step_ms']:.2f} | {shares} |")


def _group_names(rows: dict) -> list[str]:
    names = {g for row in rows.values() for g in row["step_groups_ms"]}
    return sorted(names, key=lambda g: -rows["fp32 dynamic"]["step_groups_ms"].get(g, 0.0))


if __name__ == "__main__":
    main()
