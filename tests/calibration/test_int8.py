"""INT8 Q/DQ reaches inside If branches and Loop bodies, on every target."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import run_cli
from edgekit.calibration.qdq import quantized_counts
from edgekit.calibration.quantize import int8_from_onnx
from edgekit.export.surface import surface_tensors, walk_graphs
from edgekit.validation.testdata import read_testdata

pytestmark = [pytest.mark.onnxruntime, pytest.mark.openvino]


def test_surfaced_subgraph_tensors_match_their_values(toy_bundle):
    import onnxruntime as ort

    model = onnx.load(str(toy_bundle / "model.onnx"))
    body_inputs = [n.input[0] for ref, g in walk_graphs(model.graph) if ref.path for n in g.node if n.op_type == "Conv"]
    surfaced, names = surface_tensors(model, body_inputs)
    session = ort.InferenceSession(surfaced.SerializeToString())
    outputs = [o.name for o in session.get_outputs()]
    feed, _ = read_testdata(toy_bundle)[0]
    feed = {**feed, "num_steps": np.array(3, np.int64)}
    values = dict(zip(outputs, session.run(None, feed)))
    loop_input = next(v for k, v in names.items() if "subgraph_in" in k)
    assert values[loop_input].shape[0] == 3, "a Loop body tensor comes out stacked over the 3 iterations"
    plain = ort.InferenceSession(str(toy_bundle / "model.onnx")).run(None, feed)
    assert np.array_equal(values["output"], plain[0]), "surfacing must not change the model's outputs"


def test_every_subgraph_conv_is_quantized_or_listed_as_excluded(toy_bundle, tmp_path):
    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    result = int8_from_onnx(toy_bundle / "model.onnx", tmp_path / "int8.onnx", feeds)
    counts = result.counts
    assert counts.in_subgraphs == 4 and counts.total == 5
    listed = set(result.excluded)
    for entry in counts.unquantized:
        assert entry.split(":")[1].split(" ")[0] in listed, f"{entry} left in float without a reason"
    assert counts.quantized_in_subgraphs == 4
    # the stem reads the 3-channel model input: float, and says so (qdq.input_layers)
    assert counts.quantized == 4 and list(result.excluded) == ["node_conv2d"]
    assert "reads model input 'image' (3 channel(s))" in result.excluded["node_conv2d"]
    # a branch no calibration sample reaches stays float and says why
    only_exit0 = [{**f, "threshold": np.array(-1.0, np.float32)} for f in feeds]
    partial = int8_from_onnx(toy_bundle / "model.onnx", tmp_path / "partial.onnx", only_exit0)
    assert partial.counts.quantized < counts.quantized
    unreached = {n for n, why in partial.excluded.items() if why == "not reached by any calibration sample"}
    assert unreached and set(partial.excluded) == unreached | {"node_conv2d"}
    assert all(e.split(":")[1].split(" ")[0] in partial.excluded for e in partial.counts.unquantized)
    assert quantized_counts(onnx.load(str(tmp_path / "int8.onnx"))).quantized == 4


def test_export_int8_cli_quantizes_inside_if_and_loop_for_onnx_and_openvino(toy_bundle, tmp_path):
    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    np.savez(tmp_path / "calib.npz", **{f"{i}/{k}": v for i, f in enumerate(feeds) for k, v in f.items()})
    out = tmp_path / "int8"
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--precision", "int8", "--calib", tmp_path / "calib.npz",
                     "--target", "openvino", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout)
    assert m["pipeline"]["quantize"]["precision"] == "int8" and m["pipeline"]["quantize"]["samples"] == len(feeds)
    for key in ("onnx", "openvino"):
        q = m["artifacts"][key]["quantized"]
        assert q["total"] == 5 and q["quantized"] == q["quantized_in_subgraphs"] == 4, (key, q)
    assert list(m["pipeline"]["quantize"]["excluded"]) == ["node_conv2d"], "only the input conv stays float"
    for runtime in ("onnxruntime", "openvino"):
        v = m["validation"][runtime]
        assert v["status"] == "passed" and v["precision"] == "int8" and v["path_agreement"] >= 0.95
        assert 0 < v["max_rel_l2"] < 0.05, "int8 is close to, but not identical with, fp32"


@pytest.mark.tensorrt
def test_tensorrt_int8_engine_has_qdq_layers_inside_control_flow(toy_bundle, tmp_path):
    from edgekit.export.tensorrt import layers_from_onnx

    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    int8_from_onnx(toy_bundle / "model.onnx", tmp_path / "int8.onnx", feeds)
    layers = layers_from_onnx(tmp_path / "int8.onnx")
    assert layers["QUANTIZE"] == 4 and layers["DEQUANTIZE"] == 8  # 4 convs: activation + weight each
    assert {"CONDITION", "TRIP_LIMIT"} <= set(layers)
