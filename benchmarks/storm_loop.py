"""Per-step cost of StoRM's ONNX `Loop` against an unrolled reference (issue: within 10%).

    python benchmarks/storm_loop.py [--frames 64] [--steps 4 12] [--reps 15]

The Loop graph is edgekit's export of zoo:storm (one Loop, num_steps an input, its weights inside the body:
export/subgraph_weights.py); "captured" is the same graph with the weights back in the main graph, read
from the outer scope as torch.onnx writes them, timed in the same run. The references are the same
sampler traced with a fixed step count as straight-line code (`StoRM.forward_unrolled`), one ONNX per
step count. Per-step cost = (t(N2) − t(N1)) / (N2 − N1) on each graph, so the predictive pass and the
graph's fixed costs cancel; both graphs must give the same output for the same noise (checked). Medians
of interleaved repetitions; runtimes at their default threads; OpenVINO with an f32 hint. Writes
results/storm_loop.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def export_unrolled(model, frames: int, steps: int, path: Path) -> None:
    import torch

    from edgekit.zoo.storm import make_noise

    class Unrolled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, noisy_spec, noise):
            return self.model.forward_unrolled(noisy_spec, noise, steps)

    spec = torch.randn(1, 2, 256, frames)
    torch.onnx.export(Unrolled(), (spec, make_noise(model.max_steps, frames)), str(path), dynamo=True,
                      input_names=["noisy_spec", "noise"], output_names=["enhanced_spec"], opset_version=18,
                      verbose=False)


def captured(path: Path, out: Path) -> Path:
    """The graph at `path` with every subgraph initializer moved to the main graph (torch.onnx's layout)."""
    import onnx

    from edgekit.export.surface import walk_graphs

    model = onnx.load(str(path))
    for ref, graph in list(walk_graphs(model.graph)):
        if ref.path:
            model.graph.initializer.extend(graph.initializer)
            del graph.initializer[:]
    onnx.save(model, str(out))
    return out


def sessions(path: Path, loop: bool, feed: dict):
    """{runtime: feed → output} for one ONNX file, its dynamic dims pinned to `feed`'s shapes: the
    unrolled references are exported static, so the Loop graph is compiled static too (else the
    comparison would measure dynamic-shape overhead, not the Loop)."""
    import onnx
    import onnxruntime as ort
    import openvino as ov

    options = ort.SessionOptions()
    for value in onnx.load(str(path), load_external_data=False).graph.input:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param:
                options.add_free_dimension_override_by_name(dim.dim_param, int(np.shape(feed[value.name])[axis]))
    ort_session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    model = ov.Core().read_model(str(path))
    model.reshape({port.get_any_name(): list(np.shape(feed[port.get_any_name()])) for port in model.inputs})
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    names = ["noisy_spec", "num_steps", "noise"] if loop else ["noisy_spec", "noise"]

    def ov_run(feed):
        request.infer({k: feed[k] for k in names})
        return request.get_output_tensor(0).data.copy()

    return {"onnxruntime": lambda feed: ort_session.run(None, {k: feed[k] for k in names})[0],
            "openvino": ov_run}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--steps", type=int, nargs=2, default=(4, 12))
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()

    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.zoo.storm import storm_feed

    n1, n2 = args.steps
    source = resolve_source("zoo:storm")
    model = source.module
    work = Path(tempfile.mkdtemp(prefix="storm-loop-"))
    export_bundle(source, work / "loop", ExportOptions(targets=("onnx",), validate=False))
    for n in (n1, n2):
        export_unrolled(model, args.frames, n, work / f"unrolled{n}.onnx")
    rng = np.random.default_rng(0)
    spec = (0.3 * rng.standard_normal((1, 2, 256, args.frames))).astype(np.float32)
    feeds = {n: storm_feed(model, spec, n, seed=1) for n in (n1, n2)}
    captured_path = captured(work / "loop" / "model.onnx", work / "captured.onnx")
    graphs = {"loop": sessions(work / "loop" / "model.onnx", loop=True, feed=feeds[n1]),
              "captured": sessions(captured_path, loop=True, feed=feeds[n1]),
              **{f"unrolled{n}": sessions(work / f"unrolled{n}.onnx", loop=False, feed=feeds[n])
                 for n in (n1, n2)}}
    rows = []
    for runtime in ("onnxruntime", "openvino"):
        runs = {(form, n): (graphs[form][runtime], feeds[n]) for form in ("loop", "captured") for n in (n1, n2)}
        runs.update({("unrolled", n): (graphs[f"unrolled{n}"][runtime], feeds[n]) for n in (n1, n2)})
        for n in (n1, n2):  # same sampler, same noise: the graphs must agree before their times mean anything
            b = runs[("unrolled", n)][0](feeds[n])
            for form in ("loop", "captured"):
                a = runs[(form, n)][0](feeds[n])
                rel = float(np.linalg.norm(a - b) / np.linalg.norm(b))
                assert rel < 1e-4, f"{runtime}: {form} and unrolled graphs differ at N={n} (rel L2 {rel:.2e})"
        times = {key: [] for key in runs}
        for key, (run, feed) in runs.items():
            run(feed)  # warm-up
        for _ in range(args.reps):  # interleaved, so drifting machine load hits every graph alike
            for key, (run, feed) in runs.items():
                start = time.perf_counter()
                run(feed)
                times[key].append(time.perf_counter() - start)
        med = {key: float(np.median(v)) * 1e3 for key, v in times.items()}
        per_loop = (med[("loop", n2)] - med[("loop", n1)]) / (n2 - n1)
        per_unrolled = (med[("unrolled", n2)] - med[("unrolled", n1)]) / (n2 - n1)
        per_captured = (med[("captured", n2)] - med[("captured", n1)]) / (n2 - n1)
        rows.append({"runtime": runtime, "loop_ms": {n1: med[("loop", n1)], n2: med[("loop", n2)]},
                     "captured_ms": {n1: med[("captured", n1)], n2: med[("captured", n2)]},
                     "per_step_captured_ms": per_captured, "captured_ratio": per_captured / per_unrolled,
                     "unrolled_ms": {n1: med[("unrolled", n1)], n2: med[("unrolled", n2)]},
                     "per_step_loop_ms": per_loop, "per_step_unrolled_ms": per_unrolled,
                     "ratio": per_loop / per_unrolled})
    from edgekit.env import environment

    result = {"frames": args.frames, "steps": [n1, n2], "reps": args.reps, "rows": rows,
              "machine": {**environment(), "date": time.strftime("%Y-%m-%d")}}
    (HERE / "results" / "storm_loop.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"| runtime | Loop N={n1} ms | Loop N={n2} ms | unrolled N={n1} ms | unrolled N={n2} ms | "
          "per step: Loop ms | per step: unrolled ms | Loop / unrolled | captured: per step ms | "
          "captured / unrolled |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['runtime']} | {r['loop_ms'][n1]:.1f} | {r['loop_ms'][n2]:.1f} | {r['unrolled_ms'][n1]:.1f} | "
              f"{r['unrolled_ms'][n2]:.1f} | {r['per_step_loop_ms']:.2f} | {r['per_step_unrolled_ms']:.2f} | "
              f"{r['ratio']:.3f} | {r['per_step_captured_ms']:.2f} | {r['captured_ratio']:.3f} |")


if __name__ == "__main__":
    main()
