"""INT8 accuracy control: decision-path layers stay float, `--max-drop` keeps sensitive layers in float,
`edgekit quantize` turns an fp32 bundle into a validated int8 one, task metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from conftest import run_cli
from edgekit.calibration.qdq import decision_nodes, unique_node_names
from edgekit.errors import EdgekitError
from edgekit.validation.metrics import TaskMetric, cosine, psnr, resolve_metric
from edgekit.validation.testdata import read_testdata


def _branch(name: str, value: str, out: str):
    return helper.make_graph([helper.make_node("Identity", [value], [out], name=f"{name}_id")], name, [],
                             [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)])


def _gated_model():
    """x → conv → y; score = MatMul(x, P) → ReduceMean → Greater(t) decides If(then: y, else: y2)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((2, 1, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal((8, 8)).astype(np.float32), "p"),
             numpy_helper.from_array(np.array(0.0, np.float32), "t")]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], name="data_conv", pads=[1, 1, 1, 1]),
        helper.make_node("MatMul", ["x", "p"], ["m"], name="score_matmul"),
        helper.make_node("ReduceMean", ["m"], ["s"], name="score_mean", keepdims=0),
        helper.make_node("Greater", ["s", "t"], ["c"], name="gate"),
        helper.make_node("Neg", ["y"], ["y2"], name="neg"),
        # the then-branch returns the outer tensor y with no node of its own: still a data use of data_conv
        helper.make_node("If", ["c"], ["out"], name="exit", then_branch=helper.make_graph(
            [], "then", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]),
            else_branch=_branch("else", "y2", "y3")),
    ]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_only_layers_that_merely_decide_a_branch_are_decision_nodes():
    model = _gated_model()
    assert decision_nodes(model) == {"score_matmul"}
    # once the score is also an output, it is data: no longer decision-only
    model.graph.output.append(helper.make_tensor_value_info("m", TensorProto.FLOAT, None))
    assert decision_nodes(model) == set()


def test_repeated_node_names_across_subgraphs_are_made_unique():
    model = _gated_model()
    else_graph = next(a.g for a in model.graph.node[-1].attribute if a.name == "else_branch")
    else_graph.node[0].name = "data_conv"  # the torch exporter reuses names across bodies like this
    assert unique_node_names(model) == 1
    names = [model.graph.node[0].name, else_graph.node[0].name]
    assert names[0] == "data_conv" and names[1] != "data_conv"
    assert unique_node_names(model) == 0


def test_metrics_measure_what_they_say():
    a = np.linspace(0, 1, 100, dtype=np.float32)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 0.1) == pytest.approx(20.0, abs=1e-3)  # mse 0.01 → 20 dB at peak 1
    assert cosine(a, 2 * a) == pytest.approx(1.0) and cosine(a, -a) == pytest.approx(-1.0)
    metric = TaskMetric("psnr", [{"x": a}], [a], lambda outputs, target: psnr(outputs["y"], target))
    result = metric.evaluate(lambda feed: {"y": feed["x"] + 0.1}, baseline=30.0)
    assert result.drop == pytest.approx(10.0, abs=1e-3) and not result.within(0.3)


def test_metric_specs_are_checked(tmp_path):
    with pytest.raises(EdgekitError, match="needs ground truth"):
        resolve_metric("psnr", object(), [])
    with pytest.raises(EdgekitError, match="expected one of"):
        resolve_metric("l1", None, [])
    (tmp_path / "m.py").write_text("def neg_mae(ref, out):\n    return -float(abs(ref['y'] - out['y']).mean())\n")
    metric = resolve_metric(f"{tmp_path / 'm.py'}:neg_mae", None, [{"x": np.ones(3, np.float32)}])
    result = metric.evaluate(lambda f: {"y": f["x"] * 1.5}, lambda f: {"y": f["x"]})
    assert result.drop == pytest.approx(0.5)
    with pytest.raises(EdgekitError, match="has no function"):
        resolve_metric(f"{tmp_path / 'm.py'}:missing", None, [])


@pytest.mark.onnxruntime
@pytest.mark.openvino
def test_quantize_bundle_fits_a_budget_by_keeping_sensitive_layers_float(toy_bundle, tmp_path):
    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    np.savez(tmp_path / "calib.npz", **{f"{i}/{k}": v for i, f in enumerate(feeds) for k, v in f.items()})
    plain = run_cli("quantize", toy_bundle, "--calib", tmp_path / "calib.npz", "--out", tmp_path / "all", "--json")
    assert plain.returncode == 0, plain.stderr
    manifest = json.loads(plain.stdout)
    all_int8 = manifest["pipeline"]["quantize"]
    assert manifest["artifacts"]["onnx"]["quantized"]["quantized"] == 4
    assert list(all_int8["excluded"]) == ["node_conv2d"]  # the input conv (qdq.input_layers)
    drop = manifest["validation"]["onnxruntime"]["metric"]["drop"]
    assert manifest["validation"]["onnxruntime"]["metric"]["metric"] == "cosine" and drop > 0

    budget = drop / 10  # tighter than all-int8 reaches: some layers must go back to float
    tight = run_cli("quantize", toy_bundle, "--calib", tmp_path / "calib.npz", "--max-drop", budget,
                    "--out", tmp_path / "tight", "--json")
    assert tight.returncode == 0, tight.stderr
    manifest = json.loads(tight.stdout)
    control = manifest["pipeline"]["quantize"]["accuracy_control"]
    kept = [k["node"] for k in control["kept_float"]]
    assert kept and control["drop"] <= budget and control["drop_all_int8"] > budget
    excluded = manifest["pipeline"]["quantize"]["excluded"]
    assert set(kept) == set(excluded) - {"node_conv2d"}
    assert all("accuracy control" in excluded[node] for node in kept)
    for entry in manifest["artifacts"]["onnx"]["quantized"]["unquantized"]:
        assert entry.split(":")[1].split(" ")[0] in excluded, f"{entry} left float without a reason"
    for runtime in ("onnxruntime", "openvino"):
        assert manifest["validation"][runtime]["metric"]["drop"] <= budget


@pytest.mark.onnxruntime
def test_quantize_refuses_bad_input(toy_bundle, tmp_path):
    cases = [
        (("--max-drop", "-1"), "must be ≥ 0"),
        (("--metric", "psnr"), "needs ground truth"),
        (("--out", toy_bundle), "is the input bundle"),
    ]
    for args, message in cases:
        result = run_cli("quantize", toy_bundle, *args, "--calib", tmp_path / "missing.npz", "--out", tmp_path / "x")
        if "--out" in args:
            result = run_cli("quantize", toy_bundle, *args)
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
        assert not (tmp_path / "x").exists()
