"""Graph cleanup before compiling (export/cleanup.py): OnnxSlim runs by default, keeps If/Loop, and a
cleanup that would change the control flow is discarded."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from edgekit.export.cleanup import slim_onnx
from edgekit.export.controlflow import control_flow_counts

pytest.importorskip("onnxslim")


def _branch(name: str, op: str):
    return helper.make_graph([helper.make_node(op, ["h"], [f"y_{name}"])], name, [],
                             [helper.make_tensor_value_info(f"y_{name}", TensorProto.FLOAT, [2])])


def _model(condition_from_input: bool):
    """h = x · (1 + 1) (foldable); If on (sum(x) > 0) or on a constant True."""
    two = [numpy_helper.from_array(np.array(1.0, np.float32), "one")]
    nodes = [helper.make_node("Add", ["one", "one"], ["two"]), helper.make_node("Mul", ["x", "two"], ["h"])]
    if condition_from_input:
        nodes += [helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
                  helper.make_node("Greater", ["s", "one"], ["c"])]
    else:
        nodes += [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array(True)))]
    nodes.append(helper.make_node("If", ["c"], ["y"], then_branch=_branch("t", "Relu"), else_branch=_branch("e", "Neg")))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], two)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_slim_folds_constants_and_keeps_the_if(tmp_path):
    import onnxruntime as ort

    path = tmp_path / "m.onnx"
    onnx.save(_model(condition_from_input=True), str(path))
    x = np.array([0.5, -2.0], np.float32)
    before = ort.InferenceSession(str(path)).run(None, {"x": x})[0]
    info = slim_onnx(path)
    assert info is not None and info["nodes_after"] < info["nodes_before"]
    model = onnx.load(str(path))
    assert control_flow_counts(model) == {"If": 1, "Loop": 0}
    assert np.array_equal(ort.InferenceSession(str(path)).run(None, {"x": x})[0], before)


def test_a_cleanup_that_removes_an_if_is_discarded(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(_model(condition_from_input=False), str(path))  # OnnxSlim folds an If on a constant away
    original = path.read_bytes()
    notes = []
    assert slim_onnx(path, log=notes.append) is None
    assert path.read_bytes() == original and "If/Loop" in notes[0]


@pytest.mark.onnxruntime
def test_export_records_the_cleanup_and_no_slim_skips_it(toy_bundle, tmp_path):
    manifest = json.loads((toy_bundle / "manifest.json").read_text())
    assert manifest["artifacts"]["onnx"]["cleanup"]["tool"].startswith("onnxslim")
    assert manifest["control_flow"] == {"If": 1, "Loop": 1}
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--target", "onnx", "--no-slim",
                     "--out", tmp_path / "plain", "--json")
    assert result.returncode == 0, result.stderr
    plain = json.loads(result.stdout)
    assert "cleanup" not in plain["artifacts"]["onnx"] and plain["validation"]["onnxruntime"]["status"] == "passed"
