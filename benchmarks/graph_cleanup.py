"""Should `export` clean the ONNX graph (constant folding, dead nodes, op fusion) before compiling?

    python benchmarks/graph_cleanup.py [--reps 20]

For zoo:rbqe (4 nested If) and zoo:storm (one Loop), compares the exported ONNX with its OnnxSlim
(`onnxslim.slim`) and Polygraphy (`polygraphy surgeon sanitize --fold-constants`) versions: nodes (through
subgraphs), If/Loop kept, outputs equal to the original on ONNX Runtime, OpenVINO compile time and
latency, ONNX Runtime latency, and TensorRT-RTX engine build time (SM86, fixed shapes; engines can't run
here). Writes results/graph_cleanup.json and prints a Markdown table; the decision is in README.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def count_nodes(model) -> tuple[int, int, int]:
    from edgekit.export.surface import walk_graphs

    nodes = [n for _, g in walk_graphs(model.graph) for n in g.node]
    return len(nodes), sum(n.op_type == "If" for n in nodes), sum(n.op_type == "Loop" for n in nodes)


def variants(onnx_path: Path, work: Path) -> dict[str, Path]:
    import onnx
    import onnxslim

    out = {"exported": onnx_path}
    slim = work / f"{onnx_path.parent.name}-onnxslim.onnx"
    onnx.save(onnxslim.slim(onnx.load(str(onnx_path))), str(slim))
    out["onnxslim"] = slim
    sanitized = work / f"{onnx_path.parent.name}-polygraphy.onnx"
    result = subprocess.run([str(Path(sys.executable).parent / "polygraphy"), "surgeon", "sanitize", str(onnx_path),
                             "--fold-constants", "-o", str(sanitized)], capture_output=True, text=True)
    if result.returncode == 0:
        out["polygraphy"] = sanitized
    else:
        print(f"polygraphy sanitize failed on {onnx_path}: {result.stderr.strip().splitlines()[-1:]}")
    return out


def measure(name: str, paths: dict[str, Path], feed: dict, trt_shapes: dict, reps: int) -> list[dict]:
    import onnx
    import onnxruntime as ort
    import openvino as ov

    from edgekit.export.tensorrt import engine_from_onnx

    rows, runs, reference = [], {}, None
    for variant, path in paths.items():
        nodes, ifs, loops = count_nodes(onnx.load(str(path)))
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        out = session.run(None, feed)[0]
        reference = out if reference is None else reference
        start = time.perf_counter()
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        ov_compile = time.perf_counter() - start
        request = compiled.create_infer_request()
        runs[(variant, "onnxruntime")] = lambda f, s=session: s.run(None, f)
        runs[(variant, "openvino")] = lambda f, r=request: r.infer(f)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                engine_from_onnx(path, Path(tmp) / "m.engine", "SM86", shape_hints=trt_shapes)
                trt_build = time.perf_counter() - start
        except Exception as exc:
            trt_build = f"failed: {str(exc).splitlines()[0][:120]}"
        rows.append({"model": name, "variant": variant, "nodes": nodes, "if": ifs, "loop": loops,
                     "max_abs_diff_vs_exported": float(np.abs(out - reference).max()),
                     "openvino_compile_s": ov_compile, "tensorrt_build_s": trt_build})
    times = {key: [] for key in runs}
    for run in runs.values():
        run(feed)
    for _ in range(reps):
        for key, run in runs.items():
            start = time.perf_counter()
            run(feed)
            times[key].append(time.perf_counter() - start)
    for row in rows:
        for runtime in ("onnxruntime", "openvino"):
            row[f"{runtime}_ms"] = float(np.median(times[(row["variant"], runtime)])) * 1e3
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args()
    from edgekit.env import environment
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.zoo.storm import storm_feed

    work = Path(tempfile.mkdtemp(prefix="edgekit-cleanup-"))
    rows = []
    rbqe = export_bundle(resolve_source("zoo:rbqe"), work / "rbqe", ExportOptions(targets=("onnx",), validate=False))
    image = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    rows += measure("rbqe", variants(rbqe.artifact_path("onnx"), work),
                    {"image": image, "threshold": np.array(2.0, np.float32)}, {"image": [(1, 1, 256, 256)] * 3},
                    args.reps)
    source = resolve_source("zoo:storm")
    storm = export_bundle(source, work / "storm", ExportOptions(targets=("onnx",), validate=False))
    spec = (0.3 * np.random.default_rng(0).standard_normal((1, 2, 256, 64))).astype(np.float32)
    feed = storm_feed(source.module, spec, 10, seed=1)
    rows += measure("storm", variants(storm.artifact_path("onnx"), work), feed,
                    {"noisy_spec": [(1, 2, 256, 64)] * 3, "noise": [tuple(feed["noise"].shape)] * 3}, args.reps)
    result = {"rows": rows, "machine": {**environment(), "date": time.strftime("%Y-%m-%d")}}
    (HERE / "results" / "graph_cleanup.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("| model | graph | nodes | If/Loop | max |Δ| vs exported | ORT ms | OpenVINO ms | OV compile s | TRT-RTX build s |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        build = r["tensorrt_build_s"]
        build = f"{build:.1f}" if isinstance(build, float) else build
        print(f"| {r['model']} | {r['variant']} | {r['nodes']} | {r['if']}/{r['loop']} | {r['max_abs_diff_vs_exported']:.1e} | "
              f"{r['onnxruntime_ms']:.1f} | {r['openvino_ms']:.1f} | {r['openvino_compile_s']:.2f} | {build} |")


if __name__ == "__main__":
    main()
