"""#20 "StoRM faster than PyTorch": zoo:storm at N = 20 on OpenVINO against PyTorch eager fp32, same run.

    python benchmarks/storm_speed.py [--rounds 5] [--rebuild] [--static]

Bundles (results/bundles/storm-speed-<precision>, not committed; made when missing or with --rebuild):
`edgekit export zoo:storm --precision fp32|bf16|int8|mixed` (int8/mixed: the model's own 32 calibration
feeds), each validated by the export (SI-SDR budget + step counts for bf16/int8/mixed). Variants: eager fp32
(torch, 2 threads), ONNX Runtime fp32 (model.onnx), OpenVINO fp32 from the exporter's GroupNorm (model.onnx
converted as is: the form before `export/groupnorm.py`), and each bundle's OpenVINO IR at its own inference
precision. Feeds: the example input (24 frames) and 256 frames, random spectrogram and noise (seed 0),
num_steps = 20. `--static` adds each bundle's IR compiled at the feed's shapes through edgekit's runner
(`OpenVINORunner(static_shapes=True)`, what `edgekit bench --static-shapes` times; its feed check and output
copy included). Every variant runs once per round, interleaved; medians over rounds.
Writes results/storm_speed.json (with --static: storm_speed_static.json) and prints the Markdown table.
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
PRECISIONS = ("fp32", "bf16", "int8", "mixed")
STEPS = 20


def _bundles(rebuild: bool) -> dict[str, Path]:
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.ui import Reporter

    out = {}
    for precision in PRECISIONS:
        path = BUNDLES / f"storm-speed-{precision}"
        if rebuild or not (path / "manifest.json").is_file():
            options = ExportOptions(precision=precision, calib_samples=32, force=True)
            export_bundle(resolve_source("zoo:storm"), path, options, Reporter())
        out[precision] = path
    return out


def _feed(frames: int) -> dict:
    rng = np.random.default_rng(0)
    return {"noisy_spec": rng.standard_normal((1, 2, 256, frames)).astype(np.float32),
            "num_steps": np.array(STEPS, np.int64),
            "noise": rng.standard_normal((51, 2, 2, 256, frames)).astype(np.float32)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--static", action="store_true")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    sys.path.insert(0, str(HERE))
    from timing_loop import interleaved
    import onnxruntime as ort
    import openvino as ov
    import torch

    from edgekit.bundle import Bundle
    from edgekit.env import environment
    from edgekit.runtimes.openvino import runner_from_bundle
    from edgekit.sources import resolve_source

    torch.set_num_threads(2)
    bundles = _bundles(args.rebuild)
    manifests = {p: json.loads((b / "manifest.json").read_text()) for p, b in bundles.items()}
    module = resolve_source("zoo:storm").module.eval()
    core = ov.Core()

    def eager(f):
        with torch.no_grad():
            return module(*(torch.from_numpy(f[k]) for k in ("noisy_spec", "num_steps", "noise"))).numpy()

    def compiled(model, hint: str):
        request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint}).create_infer_request()
        return lambda f: request.infer(f)["enhanced_spec"]

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(bundles["fp32"] / "model.onnx"), options, providers=["CPUExecutionProvider"])
    runs = {"PyTorch eager fp32": eager,
            "ONNX Runtime fp32": lambda f: session.run(["enhanced_spec"], f)[0],
            "OpenVINO fp32, exporter's GroupNorm": compiled(core.read_model(str(bundles["fp32"] / "model.onnx")), "f32")}
    for precision, path in bundles.items():
        hint = manifests[precision]["artifacts"]["openvino"].get("inference_precision", "fp32")
        runs[f"OpenVINO {precision}"] = compiled(core.read_model(str(path / "model.xml")), "f32" if hint == "fp32" else hint)
    for precision, path in bundles.items() if args.static else ():
        runner = runner_from_bundle(Bundle.load(path), static_shapes=True)  # the artifact's own precision hint
        runs[f"OpenVINO {precision}, static shapes"] = lambda f, runner=runner: runner.run(f)["enhanced_spec"]
    results = {"env": environment(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "steps": STEPS,
               "rounds": args.rounds, "validation": {p: {k: v.get("status") for k, v in m["validation"].items()}
                                                     for p, m in manifests.items()},
               "rewrites": manifests["fp32"]["artifacts"]["openvino"].get("rewrites"), "tables": {}}
    for frames in (24, 256):
        feed = _feed(frames)
        reference = eager(feed)
        error = {k: float(np.linalg.norm(run(feed) - reference) / np.linalg.norm(reference)) for k, run in runs.items()}
        times = interleaved({k: (lambda run=run: run(feed)) for k, run in runs.items()}, args.rounds)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med["PyTorch eager fp32"]
        results["tables"][str(frames)] = [{"variant": k, "ms": med[k], "x_eager": med[k] / base, "rel_l2_vs_eager": error[k]}
                                          for k in runs]
        print(f"\n{frames} frames, N = {STEPS}\n\n| variant | ms | × eager | rel-L2 vs eager |\n|---|---:|---:|---:|")
        for row in results["tables"][str(frames)]:
            print(f"| {row['variant']} | {row['ms']:.1f} | {row['x_eager']:.3f} | {row['rel_l2_vs_eager']:.1e} |")
    if args.static:  # the task metric of each compiled form (static: one compile per mixture length)
        from edgekit.zoo.storm_task import task_metric

        metric = task_metric(module)
        scores = {k: metric.mean_score(lambda f, run=run: {"enhanced_spec": run(f)}) for k, run in runs.items()
                  if k.startswith("OpenVINO") and "exporter" not in k}
        base = metric.mean_score(lambda f: {"enhanced_spec": eager(f)})
        results["si_sdr_db"] = {"PyTorch eager fp32": base, **scores}
        print(f"\nSI-SDR, {len(metric.feeds)} held-out mixtures, N = {STEPS}: eager {base:.3f} dB")
        for k, v in scores.items():
            print(f"| {k} | {v:.3f} | {v - base:+.3f} |")
    print("\nvalidation:", results["validation"], "rewrites:", results["rewrites"])
    name = "storm_speed_static.json" if args.static else "storm_speed.json"
    (HERE / "results" / name).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
