"""`edgekit inspect --runtime openvino`: the control-flow boundary profile (edgekit.runtimes.openvino_boundary).
Structure only (which nodes, branches, iterations, hand-over sizes and inserted reorders); never timings."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli

pytestmark = pytest.mark.openvino

C, H = 16, 24


def _conv(name: str, x: str, out: str, seed: int) -> tuple[onnx.NodeProto, onnx.TensorProto]:
    weight = np.random.default_rng(seed).standard_normal((C, C, 3, 3)).astype(np.float32) * 0.1
    return (helper.make_node("Conv", [x, f"{name}_w"], [out], pads=[1, 1, 1, 1], name=name),
            numpy_helper.from_array(weight, f"{name}_w"))


def nested_if_model(path) -> None:
    """y = conv(x); If c1: relu(y) else: z = conv(y); If c2: relu(z) else: z + y (y captured twice)."""
    conv0, w0 = _conv("conv0", "x", "y", 0)
    conv1, w1 = _conv("conv1", "y", "z", 1)
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, C, H, H])
    inner = helper.make_node(
        "If", ["c2"], ["inner_out"], name="inner_if",
        then_branch=helper.make_graph([helper.make_node("Relu", ["z"], ["t2"])], "then2", [],
                                      [helper.make_tensor_value_info("t2", TensorProto.FLOAT, [1, C, H, H])]),
        else_branch=helper.make_graph([helper.make_node("Add", ["z", "y"], ["e2"])], "else2", [],
                                      [helper.make_tensor_value_info("e2", TensorProto.FLOAT, [1, C, H, H])]))
    outer = helper.make_node(
        "If", ["c1"], ["out"], name="outer_if",
        then_branch=helper.make_graph([helper.make_node("Relu", ["y"], ["t1"])], "then1", [],
                                      [helper.make_tensor_value_info("t1", TensorProto.FLOAT, [1, C, H, H])]),
        else_branch=helper.make_graph([conv1, inner], "else1", [],
                                      [helper.make_tensor_value_info("inner_out", TensorProto.FLOAT, [1, C, H, H])],
                                      initializer=[w1]))
    graph = helper.make_graph(
        [conv0, outer], "nested",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, H, H]),
         helper.make_tensor_value_info("c1", TensorProto.BOOL, []),
         helper.make_tensor_value_info("c2", TensorProto.BOOL, [])],
        [out], initializer=[w0])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def profile(path, c1: bool, c2: bool) -> dict:
    from edgekit.runtimes.openvino_boundary import boundary_profile

    feed = {"x": np.random.default_rng(2).standard_normal((1, C, H, H)).astype(np.float32),
            "c1": np.array(c1), "c2": np.array(c2)}
    return boundary_profile(path, feed, rounds=2)


def test_nested_ifs_each_boundary_on_the_taken_path(tmp_path):
    path = tmp_path / "nested.onnx"
    nested_if_model(path)
    y_mib = C * H * H * 4 / 2**20

    deep = profile(path, c1=False, c2=False)
    # OpenVINO's ONNX frontend names each If after its output tensor
    assert [(b["outputs"], b["depth"], b["branch"]) for b in deep["boundaries"]] == [
        (["out"], 0, "else"), (["inner_out"], 1, "else")]
    outer, inner = deep["boundaries"]
    assert inner["where"] == f"main/{outer['node']}.else"
    assert outer["handed_in"]["tensors"] == 2  # y, and c2 for the nested If
    assert outer["handed_in"]["mib"] == pytest.approx(y_mib, abs=1e-3)
    assert inner["handed_in"]["tensors"] == 2  # z, and y once more
    assert inner["handed_in"]["mib"] == pytest.approx(2 * y_mib, abs=1e-3)
    for b in deep["boundaries"]:
        assert b["iterations"] == 1 and b["body_ms"] > 0 and b["ms"] > 0
        assert b["overhead_ms"] == pytest.approx(b["ms"] - b["body_ms"])
        for reorder in b["reorders_outside"] + b["reorders_inside"]:
            assert reorder["from"] != reorder["to"] and reorder["ms"] >= 0
    # The CPU plugin pins If ports to plain layout: the conv's output is reordered before it is handed over
    # and the branch's conv reorders it back (read from OpenVINO's runtime model).
    assert outer["reorders_outside"] and all(r["to"] == "abcd" for r in outer["reorders_outside"])
    assert any(r["from"] == "abcd" for r in outer["reorders_inside"])
    assert deep["boundary_ms"] == pytest.approx(deep["handover_ms"] + deep["reorder_ms"])

    shallow = profile(path, c1=True, c2=False)
    assert [(b["outputs"], b["branch"]) for b in shallow["boundaries"]] == [(["out"], "then")]


def test_cli_profiles_the_toy_bundle_if_and_loop(toy_bundle):
    result = run_cli("inspect", toy_bundle, "--runtime", "openvino", "--feed", "threshold=2",
                     "--feed", "num_steps=3", "--rounds", "2", "--json")
    assert result.returncode == 0, result.stderr
    prof = json.loads(result.stdout)["profile"]
    assert prof["artifact"].endswith("model.xml") and prof["feed"] == {"threshold": 2.0, "num_steps": 3}
    rows = {b["op"]: b for b in prof["boundaries"]}
    assert rows["If"]["branch"] == "else" and rows["Loop"]["iterations"] == 3  # counted by stepping the body
    assert "control-flow boundaries" in result.stderr and "hand-over" in result.stderr

    cheap = json.loads(run_cli("inspect", toy_bundle, "--runtime", "openvino", "--feed", "threshold=0",
                               "--feed", "num_steps=1", "--rounds", "1", "--json").stdout)["profile"]
    rows = {b["op"]: b for b in cheap["boundaries"]}
    assert rows["If"]["branch"] == "then" and rows["Loop"]["iterations"] == 1

    big = run_cli("inspect", toy_bundle, "--runtime", "openvino", "--shape", "image:1x3x48x40", "--rounds", "1",
                  "--json")
    prof = json.loads(big.stdout)["profile"]
    assert prof["shapes"]["image"] == [1, 3, 48, 40]
    # the If hands the stem's features (width 4) and the image to its branch, at the new size
    assert next(b for b in prof["boundaries"] if b["op"] == "If")["handed_in"]["mib"] == pytest.approx(
        (4 + 3) * 48 * 40 * 4 / 2**20, abs=1e-3)


def test_cli_profile_errors_are_one_line(toy_bundle, tmp_path):
    wrong = run_cli("inspect", toy_bundle, "--runtime", "tensorrt")
    assert wrong.returncode == 1 and "boundary profiles are for openvino" in wrong.stderr
    assert "Traceback" not in wrong.stderr
    loose = run_cli("inspect", toy_bundle, "--feed", "threshold=1")
    assert loose.returncode == 1 and "need --runtime" in loose.stderr
    result = run_cli("inspect", toy_bundle, "--runtime", "openvino", "--shape", "image:1x3x40")
    assert result.returncode == 1 and "rank 4, not 3" in result.stderr and "Traceback" not in result.stderr
    from edgekit.errors import EdgekitError
    from edgekit.export.inspect import reshaped_feed

    feed = {"image": np.zeros((1, 3, 8, 8), np.float32)}
    for bad, words in (("nope:1x2", "no input 'nope'"), ("image:1xAx2x2", "NAME:DIMS")):  # the same parser, in-process
        with pytest.raises(EdgekitError, match=words):
            reshaped_feed(feed, [bad])
    dynamic = run_cli("inspect", toy_bundle / "model.onnx", "--runtime", "openvino")
    assert dynamic.returncode == 1 and "dynamic dims" in dynamic.stderr and "Traceback" not in dynamic.stderr
