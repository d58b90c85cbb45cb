"""INT8 results for the zoo models: what got quantized (through If/Loop), the task-metric drop against
fp32 PyTorch, and OpenVINO latency fp32 vs int8 — the numbers behind benchmarks/README.md's INT8 section.

    python benchmarks/int8.py [--model rbqe|storm|both] [--reps 20] [--reuse]

RBQE: PSNR against the clean held-out photos (the model's task metric), exit-path agreement, OpenVINO
latency at 1×1×256×256 for exit 5 (threshold 2) and exit 1 (threshold 0), and the TensorRT(-RTX) layer
histogram of the int8 network (Q/DQ inside CONDITION). StoRM: SI-SDR on held-out mixtures per step count N
(fp32 ONNX Runtime vs int8 ONNX Runtime and OpenVINO) and latency at N=20. Bundles are written under
results/bundles/ (not committed); results to results/int8_<model>.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BUNDLES = HERE / "results" / "bundles"
REUSE = False  # --reuse: take the bundles of an earlier run (re-time on a quieter machine)


def export(spec: str, name: str, precision: str, targets: tuple[str, ...], **options):
    """The bundle, validated; one that fails validation is still returned (its manifest says why)."""
    from edgekit.bundle import Bundle
    from edgekit.errors import ValidationFailed
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.ui import Reporter

    if REUSE and (BUNDLES / name / "manifest.json").exists():
        return Bundle.load(BUNDLES / name)
    try:
        return export_bundle(resolve_source(spec), BUNDLES / name,
                             ExportOptions(targets=targets, precision=precision, force=True, **options), Reporter())
    except ValidationFailed as exc:
        print(f"{name}: {exc}")
        return Bundle.load(BUNDLES / name)


def ov_timer(xml: Path):
    import openvino as ov

    compiled = ov.Core().compile_model(str(xml), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda feed: request.infer(feed)


def interleaved(runs: dict, reps: int) -> dict:
    """Median ms per key; every round runs every key once, so drifting load hits all alike."""
    times = {key: [] for key in runs}
    for run, feed in runs.values():
        run(feed)
    for _ in range(reps):
        for key, (run, feed) in runs.items():
            start = time.perf_counter()
            run(feed)
            times[key].append(time.perf_counter() - start)
    return {key: float(np.median(v)) * 1e3 for key, v in times.items()}


def counts(manifest, key: str) -> dict:
    q = manifest.artifacts[key]["quantized"]
    return {k: q[k] for k in ("total", "quantized", "in_subgraphs", "quantized_in_subgraphs")}


def rbqe(reps: int) -> dict:
    from edgekit.export.tensorrt import layers_from_onnx

    bundles = {"fp32": export("zoo:rbqe", "int8-rbqe-fp32", "fp32", ("onnx", "openvino"), validate=False),
               # every quantizable layer in int8 (but the IQAM decision convs)
               "int8": export("zoo:rbqe", "int8-rbqe-int8", "int8", ("onnx", "openvino")),
               # --max-drop 0.3: sensitive layers back in float until PSNR and exit paths hold
               "int8 --max-drop 0.3": export("zoo:rbqe", "int8-rbqe-budget", "int8", ("onnx", "openvino"),
                                             max_drop=0.3)}
    image = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    feeds = {t: {"image": image, "threshold": np.array(t, np.float32)} for t in (2.0, 0.0)}
    runs = {(p, t): (ov_timer(b.artifact_path("openvino")), feeds[t]) for p, b in bundles.items() for t in feeds}
    latency = interleaved(runs, reps)
    variants = {}
    for name, bundle in bundles.items():
        m = bundle.manifest
        entry = {"openvino_ms": {"exit5": latency[(name, 2.0)], "exit1": latency[(name, 0.0)]}}
        if name != "fp32":
            try:
                entry["tensorrt_layers"] = layers_from_onnx(bundle.artifact_path("onnx"))
            except Exception as exc:  # no TensorRT(-RTX) here
                entry["tensorrt_layers"] = {"error": str(exc)}
            entry.update(
                quantized={"onnx": counts(m, "onnx"), "openvino": counts(m, "openvino")},
                excluded=m.pipeline["quantize"]["excluded"],
                accuracy_control=m.pipeline["quantize"].get("accuracy_control"),
                validation={r: {"status": v["status"], "metric": v.get("metric"),
                                "path_agreement": v.get("path_agreement")} for r, v in m.validation.items()})
        variants[name] = entry
    return {"variants": variants}


def storm(reps: int, steps=(1, 5, 10, 20, 30, 50)) -> dict:
    from edgekit.calibration.accuracy import ort_run
    from edgekit.sources import resolve_source
    from edgekit.zoo.storm_task import task_metric

    fp32 = export("zoo:storm", "int8-storm-fp32", "fp32", ("onnx", "openvino"), validate=False)
    int8 = export("zoo:storm", "int8-storm-int8", "int8", ("onnx", "openvino"))
    model = resolve_source("zoo:storm").module
    runs = {"fp32 onnxruntime": ort_run(fp32.artifact_path("onnx")),
            "int8 onnxruntime": ort_run(int8.artifact_path("onnx"))}
    import openvino as ov

    compiled = ov.Core().compile_model(str(int8.artifact_path("openvino")), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    runs["int8 openvino"] = lambda feed: {"enhanced_spec": compiled(feed)[0]}
    per_n = {}
    for n in steps:
        metric = task_metric(model, n)
        scores = {name: metric.mean_score(run) for name, run in runs.items()}
        per_n[n] = {**scores, "drop_onnxruntime": scores["fp32 onnxruntime"] - scores["int8 onnxruntime"],
                    "drop_openvino": scores["fp32 onnxruntime"] - scores["int8 openvino"]}
        print(f"N={n}: " + ", ".join(f"{k} {v:.3f}" for k, v in per_n[n].items()), flush=True)
    feed = task_metric(model, 20, count=1).feeds[0]
    latency = interleaved({p: (ov_timer(b.artifact_path("openvino")), feed) for p, b in (("fp32", fp32), ("int8", int8))},
                          reps)
    m = int8.manifest
    return {"quantized": {"onnx": counts(m, "onnx"), "openvino": counts(m, "openvino")},
            "excluded": m.pipeline["quantize"]["excluded"], "si_sdr_per_n": per_n,
            "validation": {r: {"status": v["status"], "metric": v.get("metric")} for r, v in m.validation.items()},
            "openvino_ms_n20": latency}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("rbqe", "storm", "both"), default="both")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--reuse", action="store_true", help="reuse the bundles of an earlier run")
    args = parser.parse_args()
    global REUSE
    REUSE = args.reuse
    from edgekit.env import environment

    for name, fn in (("rbqe", rbqe), ("storm", storm)):
        if args.model in (name, "both"):
            result = {**fn(args.reps), "machine": {**environment(), "date": time.strftime("%Y-%m-%d")}}
            (HERE / "results" / f"int8_{name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
            print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1, default=str))


if __name__ == "__main__":
    main()
