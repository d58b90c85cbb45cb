"""Where zoo:rbqe's `If` time goes on OpenVINO CPU, boundary by boundary (`edgekit inspect --runtime
openvino`'s profile), and one rewrite measured against it: handing 4-D tensors to the branches as NHWC.

    python benchmarks/rbqe_if_profile.py [--rounds 15]

Takes the fp32 RBQE bundle of benchmarks/tune_zoo.py (results/bundles/tune-rbqe; exported if missing).
At exit 5 (threshold 2), 1×1×256×256, f32: three graphs — as exported, "nhwc" (every 4-D value a branch
reads from an outer scope is transposed to NHWC where it is made and back at each use inside the branch, so
OpenVINO could cancel the transposes against the reorders it inserts at `If` ports), and "inlined"
(benchmarks/rbqe_if_cost.py: every `If` replaced by its else branch) — each compiled with dynamic H, W and
reshaped static, timed interleaved (medians), outputs checked against the exported graph; then the boundary
profile of the exported and nhwc graphs. Writes results/rbqe_if_profile.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def nhwc_handover(model):
    """Rewrite (in place) so each 4-D float value read by an `If` branch from an outer scope crosses the
    boundary as NHWC: Transpose(0,2,3,1) once where it is made, Transpose(0,3,1,2) at each use inside."""
    import onnx
    from onnx import helper, shape_inference

    ranks = {}

    def collect(graph):
        for vi in [*graph.value_info, *graph.input, *graph.output]:
            t = vi.type.tensor_type
            if t.HasField("shape") and t.elem_type == onnx.TensorProto.FLOAT:
                ranks[vi.name] = len(t.shape.dim)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    collect(attr.g)

    collect(shape_inference.infer_shapes(model).graph)
    counter = [0]

    def visit(graph, top: bool) -> set:
        local = {o for n in graph.node for o in n.output} | {i.name for i in [*graph.initializer, *graph.input]}
        need = set()
        if not top:
            direct = {x for n in graph.node for x in n.input} | {o.name for o in graph.output}
            need = {x for x in direct - local if x and ranks.get(x) == 4}
            back = []
            for node in graph.node:
                for j, x in enumerate(node.input):
                    if x in need:
                        counter[0] += 1
                        name = f"{x}__nchw{counter[0]}"
                        back.append(helper.make_node("Transpose", [x + "__nhwc"], [name], perm=[0, 3, 1, 2]))
                        node.input[j] = name
            for out in graph.output:
                if out.name in need:
                    counter[0] += 1
                    back.append(helper.make_node("Transpose", [out.name + "__nhwc"], [f"{out.name}__nchw{counter[0]}"],
                                                 perm=[0, 3, 1, 2]))
                    out.name = f"{out.name}__nchw{counter[0]}"
            nodes = back + list(graph.node)
            del graph.node[:]
            graph.node.extend(nodes)
        wanted = set(need)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    wanted |= visit(attr.g, False)
        mine = wanted & local
        if mine:
            to_nhwc = lambda x: helper.make_node("Transpose", [x], [x + "__nhwc"], perm=[0, 2, 3, 1])  # noqa: E731
            nodes = [to_nhwc(x) for x in sorted(mine & {i.name for i in graph.input})]
            for node in graph.node:
                nodes += [node] + [to_nhwc(o) for o in node.output if o in mine]
            del graph.node[:]
            graph.node.extend(nodes)
        return wanted - mine

    visit(model.graph, True)
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    import onnx
    import openvino as ov

    from rbqe_if_cost import inline_else_branches, timed  # benchmarks/rbqe_if_cost.py
    from edgekit.bundle import Bundle
    from edgekit.runtimes.openvino_boundary import boundary_profile

    path = HERE / "results" / "bundles" / "tune-rbqe"
    if not (path / "manifest.json").exists():
        from edgekit.pipeline import ExportOptions, export_bundle
        from edgekit.sources import resolve_source

        export_bundle(resolve_source("zoo:rbqe"), path, ExportOptions(targets=("onnx", "openvino")))
    exported = Bundle.load(path).artifact_path("onnx")
    work = Path(tempfile.mkdtemp(prefix="rbqe-if-profile-"))
    graphs = {"exported": exported, "nhwc": work / "nhwc.onnx", "inlined": work / "inlined.onnx"}
    onnx.save(nhwc_handover(onnx.load(str(exported))), str(graphs["nhwc"]))
    onnx.save(inline_else_branches(onnx.load(str(exported))), str(graphs["inlined"]))
    feed = {"image": np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32),
            "threshold": np.array(2.0, np.float32)}
    core = ov.Core()
    requests, static_paths = {}, {}
    for form, onnx_path in graphs.items():
        for shapes in ("dynamic", "static"):
            model = core.read_model(str(onnx_path))
            if shapes == "static":
                model.reshape({"image": [1, 1, 256, 256]})
                static_paths[form] = work / f"{form}_static.xml"
                ov.save_model(model, str(static_paths[form]), compress_to_fp16=False)
            requests[(form, shapes)] = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) \
                .create_infer_request()
    reference = requests[("exported", "dynamic")].infer(feed)[0]
    agreement = {}
    for key, request in requests.items():
        out = request.infer(feed)[0]
        agreement["/".join(key)] = float(np.linalg.norm(out - reference) / np.linalg.norm(reference))
        assert agreement["/".join(key)] < 1e-6, f"{key}: differs from the exported graph"
    latency = timed(requests, {k: feed for k in requests}, args.rounds)
    profiles = {}
    for form in graphs:
        for shapes, target in (("dynamic", graphs[form]), ("static", static_paths[form])):
            profiles[f"{form}/{shapes}"] = boundary_profile(target, feed, rounds=args.rounds)
    by_type = {key: flat_ops(prof) for key, prof in profiles.items()}

    result = {"date": time.strftime("%Y-%m-%d"), "openvino": ov.get_version(), "rounds": args.rounds,
              "latency_ms": {"/".join(k): v for k, v in latency.items()}, "rel_l2_vs_exported": agreement,
              "profiles": profiles, "op_ms_all_levels": by_type}
    (HERE / "results" / "rbqe_if_profile.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| graph | shapes | ms | / inlined |\n|---|---|---:|---:|")
    for shapes in ("dynamic", "static"):
        for form in graphs:
            ms = latency[(form, shapes)]
            print(f"| {form} | {shapes} | {ms:.1f} | {ms / latency[('inlined', shapes)]:.2f} |")
    print("\n| graph | boundary (depth) | If ms | branch alone ms | hand-over ms | in: tensors / MiB "
          "| reorders out n / ms | reorders in n / ms |\n|---|---|---:|---:|---:|---|---|---|")
    for key, prof in profiles.items():
        if not prof["boundaries"]:
            continue
        for b in prof["boundaries"]:
            out, inside = b["reorders_outside"], b["reorders_inside"]
            reorders = " | ".join(f"{len(rs)} / {sum(r['ms'] for r in rs):.1f}" for rs in (out, inside))
            print(f"| {key} | {b['depth']} | {b['ms']:.1f} | {b['body_ms']:.1f} | {b['overhead_ms']:.1f} | "
                  f"{b['handed_in']['tensors']} / {b['handed_in']['mib']:.1f} | {reorders} |")
        top = ", ".join(f"{k} {v:.1f}" for k, v in list(prof["ops_ms"].items())[:4])
        print(f"| {key} | total | wall {prof['wall_ms']:.1f} | | hand-over {prof['handover_ms']:.1f} | | "
              f"reorders {prof['reorder_ms']:.1f} | top level: {top} |")
    print("\nOpenVINO op time by type, every level added up (If/Loop nodes left out), ms:\n")
    keys = list(by_type)
    print("| op | " + " | ".join(keys) + " |\n|---|" + "---:|" * len(keys))
    for op in sorted(set().union(*by_type.values()), key=lambda k: -by_type["exported/dynamic"].get(k, 0.0)):
        if max(t.get(op, 0.0) for t in by_type.values()) >= 0.3:
            print(f"| {op} | " + " | ".join(f"{by_type[k].get(op, 0.0):.1f}" for k in keys) + " |")
    print("| sum | " + " | ".join(f"{sum(by_type[k].values()):.1f}" for k in keys) + " |")


def flat_ops(profile: dict) -> dict[str, float]:
    """Op time by type over the top level and every branch run alone, control-flow nodes left out (they
    contain their branches)."""
    total: dict[str, float] = {}
    for ops in [profile["ops_ms"], *(b["body_ops_ms"] for b in profile["boundaries"])]:
        for op, ms in ops.items():
            if op not in ("If", "Loop", "TensorIterator"):
                total[op] = total.get(op, 0.0) + ms
    return total


if __name__ == "__main__":
    main()
