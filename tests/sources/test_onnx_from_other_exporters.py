"""ONNX files made elsewhere (issue #25): sequences across If boundaries are refused naming the node (they
were a KeyError traceback), `--fix NAME=VALUE` pins a branch-selecting scalar input: its If folds away,
the manifest records it, and the bundle is validated against the original file fed that value; a Loop body
whose carried input has no type converts for OpenVINO (export/subgraph_types.py)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h

from conftest import manifest_of, run_cli

pytestmark = [pytest.mark.onnxruntime]


def _save(graph, path):
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _branch(name, op, output_type="tensor"):
    nodes = [h.make_node(op, ["x"], [f"{name}_y"])]
    if output_type == "sequence":
        nodes.append(h.make_node("SequenceConstruct", [f"{name}_y", "x"], [f"{name}_out"]))
        out = h.make_tensor_sequence_value_info(f"{name}_out", T.FLOAT, None)
    else:
        nodes.append(h.make_node("Identity", [f"{name}_y"], [f"{name}_out"]))
        out = h.make_tensor_value_info(f"{name}_out", T.FLOAT, [1, 3, 8, 8])
    return h.make_graph(nodes, name, [], [out])


X = h.make_tensor_value_info("x", T.FLOAT, [1, 3, 8, 8])


def sequence_if(path, as_output: bool):
    """An If whose branches return a sequence: as the model's output, or joined by ConcatFromSequence."""
    cond = h.make_tensor_value_info("cond", T.BOOL, [])
    node = h.make_node("If", ["cond"], ["seq"], name="pick_seq", then_branch=_branch("then", "Relu", "sequence"),
                       else_branch=_branch("else", "Sigmoid", "sequence"))
    if as_output:
        return _save(h.make_graph([node], "g", [X, cond], [h.make_tensor_sequence_value_info("seq", T.FLOAT, None)]),
                     path)
    join = h.make_node("ConcatFromSequence", ["seq"], ["y"], axis=0)
    return _save(h.make_graph([node, join], "g", [X, cond], [h.make_tensor_value_info("y", T.FLOAT, [2, 3, 8, 8])]),
                 path)


def mode_switch(path):
    """y = relu(x) if mode == 1 else sigmoid(x): `mode` only selects a branch."""
    mode = h.make_tensor_value_info("mode", T.INT64, [])
    one = h.make_node("Constant", [], ["one"], value=h.make_tensor("one_v", T.INT64, [], [1]))
    equal = h.make_node("Equal", ["mode", "one"], ["cond"])
    node = h.make_node("If", ["cond"], ["y"], name="mode_if", then_branch=_branch("then", "Relu"),
                       else_branch=_branch("else", "Sigmoid"))
    out = h.make_tensor_value_info("y", T.FLOAT, [1, 3, 8, 8])
    return _save(h.make_graph([one, equal, node], "g", [X, mode], [out]), path)


@pytest.mark.parametrize("as_output, named", [(True, "output 'seq' is a sequence of tensors"),
                                              (False, "node 'pick_seq' (If): else_branch value 'else_out' is a "
                                                      "sequence of tensors")])
def test_sequences_across_an_if_are_one_clean_error_naming_it(tmp_path, as_output, named):
    path = sequence_if(tmp_path / "seq.onnx", as_output)
    result = run_cli("export", path, "--target", "onnx", "--out", tmp_path / "b")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1 and named in result.stderr, result.stderr
    assert not (tmp_path / "b").exists()


@pytest.mark.openvino
@pytest.mark.parametrize("mode, expect", [(1, lambda x: np.maximum(x, 0)), (0, lambda x: 1 / (1 + np.exp(-x)))])
def test_fix_folds_the_if_it_decides_and_validates_against_the_original(tmp_path, mode, expect):
    from edgekit.runtimes.onnxruntime import OnnxRuntimeRunner
    from edgekit.specs import TensorSpec

    path = mode_switch(tmp_path / "switch.onnx")
    out = tmp_path / "b"
    result = run_cli("export", path, "--target", "onnx", "--target", "openvino", "--fix", f"mode={mode}",
                     "--json", "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    manifest = manifest_of(out)
    assert manifest["source"]["fixed"] == {"mode": mode} and manifest["source"]["fixed_if_folded"] == 1
    assert manifest["control_flow"]["If"] == 0 and [i["name"] for i in manifest["inputs"]] == ["x"]
    assert json.loads(result.stdout)["source"]["fixed"] == {"mode": mode}
    assert all(v["status"] == "passed" for v in manifest["validation"].values()), manifest["validation"]
    folded = onnx.load(str(out / "model.onnx"))
    assert not [n for n in folded.graph.node if n.op_type == "If"]
    x = np.random.default_rng(7).standard_normal((1, 3, 8, 8)).astype(np.float32)  # a fresh input
    spec = TensorSpec("x", (1, 3, 8, 8), "float32")
    with OnnxRuntimeRunner(out / "model.onnx", [spec], [TensorSpec("y", (1, 3, 8, 8), "float32")]) as runner:
        y = runner.run({"x": x})["y"]
    np.testing.assert_allclose(y, expect(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("fix, message", [
    ("x=1", "--fix x: only a scalar input can be pinned; it has shape [1, 3, 8, 8]"),
    ("ghost=1", "--fix ghost: not an input of the model (inputs: x, mode)"),
    ("mode=one", "--fix mode=one: not a int64 value"),
    ("mode", "--fix mode: expected NAME=VALUE"),
])
def test_bad_fix_is_one_clean_error(tmp_path, fix, message):
    path = mode_switch(tmp_path / "switch.onnx")
    result = run_cli("export", path, "--target", "onnx", "--fix", fix, "--out", tmp_path / "b")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("error:") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "b").exists()


def test_fix_on_a_torch_source_is_refused():
    from edgekit.errors import SourceError
    from edgekit.sources import resolve_source

    with pytest.raises(SourceError, match="--fix mode: pins inputs of ONNX sources"):
        resolve_source("zoo:toy?width=4,max_steps=4", fixes={"mode": "1"})


def untyped_loop(path, with_if: bool = False):
    """y = conv^n(x) in a Loop whose body declares its carried input (and output) without a shape; with_if:
    each step is `conv(s) if max(s) > 0.5 else relu(s)`, the If's branch reading the untyped input."""
    weight = onnx.numpy_helper.from_array(np.random.rand(4, 4, 3, 3).astype(np.float32) * 0.1, "w")
    conv = h.make_node("Conv", ["s_in", "w"], ["s_out"], pads=[1, 1, 1, 1])
    nodes = [conv]
    if with_if:
        def branch(name, node):
            node.output[0] = f"{name}_o"
            return h.make_graph([node], name, [], [h.make_tensor_value_info(f"{name}_o", T.FLOAT, None)])

        half = h.make_node("Constant", [], ["half"], value=h.make_tensor("half_v", T.FLOAT, [], [0.5]))
        nodes = [h.make_node("ReduceMax", ["s_in"], ["top"], keepdims=0), half,
                 h.make_node("Greater", ["top", "half"], ["big"]),
                 h.make_node("If", ["big"], ["s_out"], name="step_if", then_branch=branch("then", conv),
                             else_branch=branch("else", h.make_node("Relu", ["s_in"], ["r"])))]
    nodes.append(h.make_node("Identity", ["c_in"], ["c_out"]))
    body = h.make_graph(nodes, "body", [h.make_tensor_value_info("i", T.INT64, []),
                                        h.make_tensor_value_info("c_in", T.BOOL, []),
                                        h.make_tensor_value_info("s_in", T.FLOAT, None)],
                        [h.make_tensor_value_info("c_out", T.BOOL, []),
                         h.make_tensor_value_info("s_out", T.FLOAT, None)], initializer=[weight])
    x = h.make_tensor_value_info("x", T.FLOAT, [1, 4, 8, 8])
    graph = h.make_graph([h.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="steps")], "g",
                         [x, h.make_tensor_value_info("n", T.INT64, [])],
                         [h.make_tensor_value_info("y", T.FLOAT, [1, 4, 8, 8])])
    return _save(graph, path)


def test_loop_input_ranks_come_from_the_start_value(tmp_path):
    from edgekit.export.subgraph_types import fill_loop_input_ranks

    def body_ranks(model):
        body = next(a.g for a in model.graph.node[0].attribute if a.name == "body")
        return [len(v.type.tensor_type.shape.dim) if v.type.tensor_type.HasField("shape") else None
                for v in body.input]

    model = onnx.load(str(untyped_loop(tmp_path / "a.onnx")))
    assert body_ranks(model) == [0, 0, None]
    assert fill_loop_input_ranks(model) == ["s_in"] and body_ranks(model) == [0, 0, 4]
    body = next(a.g for a in model.graph.node[0].attribute if a.name == "body")
    assert all(not d.HasField("dim_value") for d in body.input[2].type.tensor_type.shape.dim)  # dims stay free
    onnx.checker.check_model(model, full_check=True)
    assert fill_loop_input_ranks(model) == []  # nothing left to fill


@pytest.mark.openvino
@pytest.mark.parametrize("with_if", [False, True])
def test_a_loop_body_without_input_types_exports_to_openvino(tmp_path, with_if):
    from edgekit.bundle import Bundle
    from edgekit.runtimes import open_runner

    out = tmp_path / "b"
    result = run_cli("export", untyped_loop(tmp_path / "loop.onnx", with_if), "--target", "onnx", "--target",
                     "openvino", "--out", out)
    # was: "Conversion failed for Conv-18 ... The input data tensor's rank has to be known", in the If's branch too
    assert result.returncode == 0, result.stderr[-2000:]
    assert manifest_of(out)["validation"]["openvino"]["status"] == "passed"
    loop = next(n for n in onnx.load(str(out / "model.onnx")).graph.node if n.op_type == "Loop")
    body = next(a.g for a in loop.attribute if a.name == "body")
    assert [len(v.type.tensor_type.shape.dim) for v in body.input] == [0, 0, 4]
    feed = {"x": np.random.default_rng(9).standard_normal((1, 4, 8, 8)).astype(np.float32), "n": np.array(3)}
    bundle = Bundle.load(out)
    with open_runner(bundle, "onnxruntime") as ort_runner, open_runner(bundle, "openvino") as ov_runner:
        want, got = ort_runner.run(feed)["y"], ov_runner.run(feed)["y"]
    assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5
