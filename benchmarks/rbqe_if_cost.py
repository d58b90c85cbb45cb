"""What zoo:rbqe's nested `If` costs on OpenVINO, in fp32 and int8: the exported graph against the same
graph with every `If` replaced by its else branch (the exit-5 path, inlined), and a synthetic `If`.

    python benchmarks/rbqe_if_cost.py [--rounds 15] [--reuse]

Takes the fp32 and all-int8 RBQE bundles of benchmarks/int8.py (results/bundles/int8-rbqe-*; built if
missing or without --reuse). Each ONNX graph is compiled as exported (dynamic H, W) and reshaped to a
static 1×1×256×256, and so is its inlined copy; all eight run at threshold 2 (exit 5), interleaved round by
round, medians; outputs of each inlined graph are checked against its `If` graph. The synthetic test times
an `If` whose branch sums 8 outer tensors of 1×32×256×256 against the same Sum without the `If`: what the
CPU plugin spends handing tensors to a branch. Also OpenVINO's per-op-type profile of the two static inlined
graphs. Writes results/rbqe_if_cost.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def inline_else_branches(model):
    """A copy of `model` in which every If (nested too) is replaced by its else branch's nodes.

    Hand-written (a few lines) because onnx's inliner inlines functions, not control flow. Tensor names
    local to a branch get the If's name as a prefix; the branch's outputs feed Identity nodes named as the
    If's outputs. Only valid for inputs that take every else branch (RBQE at threshold 2).
    """
    import onnx
    from onnx import helper

    initializers = []

    def inline(nodes, renames: dict, prefix: str) -> list:
        out = []
        for original in nodes:
            node = onnx.NodeProto()
            node.CopyFrom(original)
            node.input[:] = [renames.get(x, x) for x in node.input]
            if node.op_type != "If":
                node.output[:] = [renames.get(x, x) for x in node.output]
                out.append(node)
                continue
            body = next(a.g for a in node.attribute if a.name == "else_branch")
            scope = f"{prefix}{node.name}/"
            local = {o for b in body.node for o in b.output} | {t.name for t in body.initializer}
            inner = {**renames, **{x: scope + x for x in local}}
            for tensor in body.initializer:
                copy = onnx.TensorProto()
                copy.CopyFrom(tensor)
                copy.name = scope + tensor.name
                initializers.append(copy)
            out += inline(body.node, inner, scope)
            out += [helper.make_node("Identity", [inner.get(b.name, b.name)], [renames.get(o, o)], name=f"{scope}out{i}")
                    for i, (o, b) in enumerate(zip(node.output, body.output))]
        return out

    flat = onnx.ModelProto()
    flat.CopyFrom(model)
    nodes = inline(list(model.graph.node), {}, "")
    del flat.graph.node[:]
    flat.graph.node.extend(nodes)
    flat.graph.initializer.extend(initializers)
    return flat


def synthetic_if(path: Path, with_if: bool, tensors: int = 8) -> Path:
    import onnx
    from onnx import TensorProto, helper

    names = [f"x{i}" for i in range(tensors)]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 32, 256, 256]) for n in names]
    inputs.append(helper.make_tensor_value_info("c", TensorProto.BOOL, []))

    def branch(op: str, out: str):
        return helper.make_graph([helper.make_node(op, names, [out])], op, [],
                                 [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])

    node = (helper.make_node("If", ["c"], ["y"], then_branch=branch("Sum", "s"), else_branch=branch("Max", "m"))
            if with_if else helper.make_node("Sum", names, ["y"]))
    graph = helper.make_graph([node], "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def timed(requests: dict, feeds: dict, rounds: int) -> dict:
    for key, request in requests.items():
        request.infer(feeds[key])
    times = {key: [] for key in requests}
    for _ in range(rounds):
        for key, request in requests.items():
            start = time.perf_counter()
            request.infer(feeds[key])
            times[key].append((time.perf_counter() - start) * 1000)
    return {key: statistics.median(v) for key, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--reuse", action="store_true", help="reuse benchmarks/int8.py's bundles")
    args = parser.parse_args()
    import onnx
    import openvino as ov

    import int8 as int8_bench  # benchmarks/int8.py: the same bundles

    int8_bench.REUSE = args.reuse
    bundles = {"fp32": int8_bench.export("zoo:rbqe", "int8-rbqe-fp32", "fp32", ("onnx", "openvino"), validate=False),
               "int8": int8_bench.export("zoo:rbqe", "int8-rbqe-int8", "int8", ("onnx", "openvino"))}
    work = Path(tempfile.mkdtemp(prefix="rbqe-if-"))
    graphs = {}
    for precision, bundle in bundles.items():
        graphs[(precision, "If")] = bundle.artifact_path("onnx")
        flat = work / f"{precision}_inlined.onnx"
        onnx.save(inline_else_branches(onnx.load(str(graphs[(precision, "If")]))), str(flat))
        graphs[(precision, "inlined")] = flat
    image = np.random.default_rng(0).random((1, 1, 256, 256), dtype=np.float32)
    feed = {"image": image, "threshold": np.array(2.0, np.float32)}
    core = ov.Core()
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    requests, feeds = {}, {}
    for (precision, form), path in graphs.items():
        for shapes in ("dynamic", "static"):
            model = core.read_model(str(path))
            if shapes == "static":
                model.reshape({"image": [1, 1, 256, 256]})
            requests[(precision, form, shapes)] = core.compile_model(model, "CPU", config).create_infer_request()
            feeds[(precision, form, shapes)] = feed
    agreement = {}
    for precision in bundles:
        for shapes in ("dynamic", "static"):
            with_if = requests[(precision, "If", shapes)].infer(feed)[0]
            inlined = requests[(precision, "inlined", shapes)].infer(feed)[0]
            rel = float(np.linalg.norm(with_if - inlined) / np.linalg.norm(with_if))
            agreement[f"{precision}/{shapes}"] = rel
            # fp32: the same maths; int8: OpenVINO fuses FakeQuantize differently without the If, so a
            # value may land one int8 step away (the all-int8 graph's own error vs fp32 is ~1e-2)
            assert rel < (1e-6 if precision == "fp32" else 1e-2), f"{precision}/{shapes}: inlined differs, {rel:.2e}"
    latency = timed(requests, feeds, args.rounds)

    profile = {}  # per OpenVINO op type on the static inlined graphs: where int8 saves time and where not
    for precision in bundles:
        model = core.read_model(str(graphs[(precision, "inlined")]))
        model.reshape({"image": [1, 1, 256, 256]})
        request = core.compile_model(model, "CPU", {**config, "PERF_COUNT": True}).create_infer_request()
        totals: dict[str, list[float]] = {}
        for i in range(args.rounds):
            request.infer(feed)
            for op in request.profiling_info:
                key = op.node_type
                if key == "Convolution":  # 1×1 and 3×3 kernels run different code in both precisions
                    key += " 1×1" if "1x1" in op.exec_type else " k×k"
                totals.setdefault(key, [0.0] * args.rounds)[i] += op.real_time.total_seconds() * 1000
        profile[precision] = {k: statistics.median(v) for k, v in totals.items() if statistics.median(v) >= 0.05}

    synthetic = {k: core.compile_model(str(synthetic_if(work / f"{k}.onnx", k == "if")), "CPU", config)
                 .create_infer_request() for k in ("plain", "if")}
    tensors = {f"x{i}": np.random.default_rng(i).random((1, 32, 256, 256), dtype=np.float32) for i in range(8)}
    tensors["c"] = np.array(True)
    synthetic_ms = timed(synthetic, {k: tensors for k in synthetic}, args.rounds)

    rows = [{"precision": p, "graph": f, "shapes": s, "ms": ms} for (p, f, s), ms in latency.items()]
    result = {"date": time.strftime("%Y-%m-%d"), "openvino": ov.get_version(), "rounds": args.rounds, "rows": rows,
              "inlined_vs_if_rel_l2": agreement, "synthetic_if_ms": synthetic_ms, "inlined_static_profile_ms": profile}
    (HERE / "results" / "rbqe_if_cost.json").write_text(json.dumps(result, indent=1) + "\n")
    print("| precision | shapes | with `If` ms | inlined ms | `If` / inlined |\n|---|---|---:|---:|---:|")
    for precision in bundles:
        for shapes in ("dynamic", "static"):
            a, b = latency[(precision, "If", shapes)], latency[(precision, "inlined", shapes)]
            print(f"| {precision} | {shapes} | {a:.1f} | {b:.1f} | {a / b:.2f} |")
    for shapes in ("dynamic", "static"):
        for form in ("If", "inlined"):
            ratio = latency[("int8", form, shapes)] / latency[("fp32", form, shapes)]
            print(f"int8 / fp32, {form}, {shapes}: {ratio:.2f}")
    print("\n| OpenVINO op (inlined, static) | fp32 ms | int8 ms |\n|---|---:|---:|")
    for op in sorted(set(profile["fp32"]) | set(profile["int8"]), key=lambda k: -profile["fp32"].get(k, 0.0)):
        print(f"| {op} | {profile['fp32'].get(op, 0.0):.2f} | {profile['int8'].get(op, 0.0):.2f} |")
    print(f"synthetic: Sum of 8 × 1×32×256×256 {synthetic_ms['plain']:.1f} ms, inside an If {synthetic_ms['if']:.1f} ms")


if __name__ == "__main__":
    main()
