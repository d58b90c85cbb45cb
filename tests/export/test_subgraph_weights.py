"""export/subgraph_weights.py: weights a Loop body or If branch reads from the main graph are moved (or,
when small and shared, copied) into it, the outputs stay the same, and ONNX Runtime then optimizes the body
like the main graph (read from its optimized model, not from timings)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.export.subgraph_weights import COPY_LIMIT, localize_file, localize_initializers

C, H = 16, 12


def loop_model() -> onnx.ModelProto:
    """x → conv(w0) → Loop(n): s = relu(conv(s, w1) + bias) → If(flag): s·big[0] | s·big[1].
    w1 only the body reads (moved), bias the main graph and the body read (small: copied), big the two
    branches read (large and shared: left in the main graph)."""
    rng = np.random.default_rng(0)
    w0 = numpy_helper.from_array(rng.standard_normal((C, C, 3, 3)).astype(np.float32) * 0.1, "w0")
    w1 = numpy_helper.from_array(rng.standard_normal((C, C, 3, 3)).astype(np.float32) * 0.1, "w1")
    bias = numpy_helper.from_array(rng.standard_normal((1, C, 1, 1)).astype(np.float32), "bias")
    big = numpy_helper.from_array(np.linspace(0.5, 1.5, COPY_LIMIT // 4 + 8, dtype=np.float32), "big")
    idx = [numpy_helper.from_array(np.array(i, np.int64), f"i{i}") for i in (0, 1)]
    value = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, C, H, H])  # noqa: E731

    def branch(i: int):
        return helper.make_graph(
            [helper.make_node("Gather", ["big", f"i{i}"], [f"g{i}"]),
             helper.make_node("Mul", ["r", f"g{i}"], [f"o{i}"])], f"b{i}", [], [value(f"o{i}")], initializer=[idx[i]])

    body = helper.make_graph(
        [helper.make_node("Conv", ["s_in", "w1"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c", "bias"], ["a"]),
         helper.make_node("Relu", ["a"], ["r"]),
         helper.make_node("If", ["flag"], ["s_out"], then_branch=branch(0), else_branch=branch(1)),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []), value("s_in")],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), value("s_out")])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
         helper.make_node("Add", ["c0", "bias"], ["s0"]),
         helper.make_node("Loop", ["n", "", "s0"], ["y"], body=body)],
        "main",
        [value("x"), helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
        [value("y")], initializer=[w0, w1, bias, big])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    return model


def test_moves_copies_and_leaves_by_reader_and_size():
    model = loop_model()
    counts = localize_initializers(model)
    onnx.checker.check_model(model, full_check=True)  # no copy shadows an outer name
    assert counts == {"moved": 1, "copied": 1, "left": 1}
    top = {t.name for t in model.graph.initializer}
    body = model.graph.node[2].attribute[0].g
    assert top == {"w0", "bias", "big"}  # bias stays: the main graph reads it too
    assert "w1" in {t.name for t in body.initializer}
    copies = [t.name for t in body.initializer if t.name.startswith("bias__")]
    assert len(copies) == 1 and copies[0] in body.node[1].input
    assert localize_initializers(model) == {"moved": 0, "copied": 0, "left": 1}  # idempotent


@pytest.mark.onnxruntime
def test_same_outputs_and_the_body_gets_ort_layout_optimizations(tmp_path):
    import onnxruntime as ort

    def run(path, optimized):
        options = ort.SessionOptions()
        options.optimized_model_filepath = str(optimized)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        x = np.random.default_rng(7).standard_normal((1, C, H, H)).astype(np.float32)
        outs = [session.run(None, {"x": x, "n": np.array(n, np.int64), "flag": np.array(f)})[0]
                for n, f in ((1, True), (3, False))]
        main = onnx.load(str(optimized)).graph
        body = next(a.g for node in main.node if node.op_type == "Loop" for a in node.attribute if a.name == "body")
        domains = lambda graph: {node.domain for node in graph.node if "Conv" in node.op_type}  # noqa: E731
        return outs, domains(body), domains(main)

    path = tmp_path / "loop.onnx"
    onnx.save(loop_model(), path)
    before, before_domains, main_domains = run(path, tmp_path / "before_opt.onnx")
    assert localize_file(path) == {"moved": 1, "copied": 1, "left": 1}
    after, after_domains, _ = run(path, tmp_path / "after_opt.onnx")
    for a, b in zip(before, after):
        assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-6
    if "com.microsoft.nchwc" not in main_domains:
        pytest.skip("this CPU gives ONNX Runtime no NCHWc layout (needs AVX2 or later)")
    # the body's conv becomes ORT's blocked-layout conv only once its weight is the body's own constant
    assert "com.microsoft.nchwc" not in before_domains and after_domains == {"com.microsoft.nchwc"}


@pytest.mark.onnxruntime
def test_a_branch_returning_the_weight_itself(tmp_path):
    import onnxruntime as ort

    k = numpy_helper.from_array(np.full((1, C), 3.0, np.float32), "k")
    out = lambda name: helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, C])  # noqa: E731
    node = helper.make_node("If", ["flag"], ["y"],
                            then_branch=helper.make_graph([], "then", [], [out("k")]),
                            else_branch=helper.make_graph([helper.make_node("Mul", ["x", "k"], ["m"])], "else",
                                                          [], [out("m")]))
    graph = helper.make_graph([node], "main", [out("x"), helper.make_tensor_value_info("flag", TensorProto.BOOL, [])],
                              [out("y")], initializer=[k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert localize_initializers(model) == {"moved": 0, "copied": 1, "left": 0}
    onnx.checker.check_model(model, full_check=True)
    assert not model.graph.initializer  # the main graph no longer needs it
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.arange(C, dtype=np.float32).reshape(1, C)
    assert np.array_equal(session.run(None, {"x": x, "flag": np.array(True)})[0], np.full((1, C), 3.0))
    assert np.array_equal(session.run(None, {"x": x, "flag": np.array(False)})[0], 3.0 * x)


def test_inspect_counts_the_weights_wherever_they_live(tmp_path):
    from edgekit.export.inspect import inspect_onnx

    path = tmp_path / "m.onnx"
    onnx.save(loop_model(), path)
    before = inspect_onnx(path)["parameters"]
    localize_file(path)
    assert inspect_onnx(path)["parameters"] == before + C  # + the body's copy of `bias`


def test_file_without_captured_weights_is_left_alone(tmp_path):
    model = loop_model()
    localize_initializers(model)
    model.graph.node[2].attribute[0].g.node[3].CopyFrom(
        helper.make_node("Identity", ["r"], ["s_out"]))  # no branch reads `big` any more
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    before = path.read_bytes()
    assert localize_file(path) is None and path.read_bytes() == before
