"""INT8 activation ranges (MSE clip from histograms) and the input-layer rule."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgekit.calibration.qdq import input_layers
from edgekit.calibration.quantize import HISTOGRAM_BINS, AbsHistogram, activation_ranges, mse_clip


def _int8_mse(x: np.ndarray, clip: float) -> float:
    step = clip / 127
    return float(np.mean((np.clip(np.round(x / step), -127, 127) * step - x) ** 2))


def test_mse_clip_beats_absmax_on_heavy_tails_and_keeps_a_uniform_range():
    rng = np.random.default_rng(1)
    heavy = rng.laplace(size=200_000).astype(np.float32)
    absmax = float(np.abs(heavy).max())
    clip = mse_clip(np.histogram(np.abs(heavy), HISTOGRAM_BINS, (0, absmax))[0], absmax)
    assert clip < 0.8 * absmax
    assert _int8_mse(heavy, clip) < 0.7 * _int8_mse(heavy, absmax)  # measured on the data, not the histogram model
    assert _int8_mse(heavy, clip) <= min(_int8_mse(heavy, f * absmax) for f in (0.5, 0.6, 0.9))
    uniform = rng.uniform(-3, 3, 200_000)
    top = float(np.abs(uniform).max())
    assert mse_clip(np.histogram(np.abs(uniform), HISTOGRAM_BINS, (0, top))[0], top) > 0.97 * top


def _conv_model(in_channels: int):
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, in_channels, 3, 3)).astype(np.float32), "w")
    w2 = numpy_helper.from_array(rng.standard_normal((4, 4, 3, 3)).astype(np.float32), "w2")
    nodes = [helper.make_node("Conv", ["x", "w"], ["y"], name="first", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["y"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["out"], name="second", pads=[1, 1, 1, 1])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, 8, 8])
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], [w, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_only_a_few_channel_conv_on_a_model_input_stays_float():
    assert list(input_layers(_conv_model(3))) == ["first"]
    assert "reads model input 'x' (3 channel(s))" in input_layers(_conv_model(3))["first"]
    assert input_layers(_conv_model(16)) == {}  # a wide input conv is real compute: quantized


@pytest.mark.onnxruntime
def test_activation_ranges_clip_within_the_observed_range():
    model = _conv_model(3)
    rng = np.random.default_rng(2)
    feeds = [{"x": rng.laplace(size=(1, 3, 8, 8)).astype(np.float32)} for _ in range(16)]
    absmax, n = activation_ranges(model, feeds, ["x", "r"], method="absmax")
    clipped, _ = activation_ranges(model, iter(feeds), ["x", "r"])  # a one-shot iterator: two passes still work
    assert n == 16 and absmax["x"] == pytest.approx(max(float(np.abs(f["x"]).max()) for f in feeds))
    assert all(0 < clipped[k] <= absmax[k] for k in absmax) and clipped["x"] < absmax["x"]


def test_one_pass_histogram_grows_its_range_exactly():
    rng = np.random.default_rng(3)
    parts = [rng.laplace(scale=s, size=50_000).astype(np.float32) for s in (0.1, 1.0, 4.0)]  # the max grows
    grown = AbsHistogram()
    for part in parts:
        grown.add(part)
    everything = np.abs(np.concatenate(parts))
    assert grown.absmax == float(everything.max()) and grown.counts.sum() == everything.size
    direct = np.histogram(everything, HISTOGRAM_BINS, (0, grown.top))[0]
    assert np.abs(grown.counts - direct).sum() <= 2 * 3, "merged bins match a histogram of all values"
    assert grown.mse_clip() == pytest.approx(mse_clip(direct.astype(float), grown.top, grown.absmax), rel=0.01)


@pytest.mark.onnxruntime
def test_loop_body_tensors_keep_their_absmax(toy_bundle):
    import onnx

    from edgekit.calibration.qdq import activation_names
    from edgekit.export.surface import defining_graphs
    from edgekit.validation.testdata import read_testdata

    model = onnx.load(str(toy_bundle / "model.onnx"))
    names = activation_names(model)
    where = defining_graphs(model)
    in_loop = [n for n in names if str(where[n]).endswith(".body")]
    outside = [n for n in names if n not in in_loop]
    assert in_loop and outside
    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    absmax, _ = activation_ranges(model, feeds, names, method="absmax")
    mse, _ = activation_ranges(model, feeds, names)
    assert all(mse[n] == absmax[n] for n in in_loop if n in absmax), "a sampler's noisy first steps stay in range"
    assert all(mse[n] <= absmax[n] for n in outside if n in absmax)
    assert any(mse[n] < absmax[n] for n in outside if n in absmax)
