"""Issue #22's review findings on validation: NaN/Inf never pass, integers compare as integers, zero samples is
an error, runner errors are collected (not tracebacks), JSON is strict, testdata names never collide, and
`edgekit validate` never overwrites evidence with less evidence."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.jsonsafe import dumps, finite_json
from edgekit.specs import TensorSpec
from edgekit.validation.compare import DEFAULT_TOLERANCES, compare_output, validate_runtime
from edgekit.validation.metrics import MetricResult
from edgekit.validation.parity import merge_validation
from edgekit.validation.testdata import read_testdata, write_testdata

FP32, FP16 = DEFAULT_TOLERANCES["fp32"], DEFAULT_TOLERANCES["fp16"]


@pytest.mark.parametrize("tol", [FP32, FP16], ids=["fp32", "fp16"])
def test_nan_in_the_reference_fails_naming_count_and_index(tol):
    ref = np.array([[1.0, 2.0], [np.nan, 4.0]], np.float32)
    result = compare_output("y", ref, np.nan_to_num(ref), tol, 3)  # the output is finite: only the reference fails
    assert not result
    assert result.failures == ["output 'y' sample 3: the reference has 1 non-finite value(s) (1 NaN, 0 Inf; "
                               "first at index [1, 0]: nan)"]
    assert len(compare_output("y", ref, ref.copy(), tol, 3).failures) == 2  # NaN == NaN is no pass either


@pytest.mark.parametrize("tol", [FP32, FP16], ids=["fp32", "fp16"])
def test_inf_in_the_reference_no_longer_makes_rel_l2_zero(tol):
    ref = np.array([np.inf, 1.0, 2.0], np.float32)
    got = np.array([np.inf, 100.0, 2.0], np.float32)  # 99 off: rel-L2 was 99 / inf = 0 before
    result = compare_output("y", ref, got, tol, 0)
    assert not result and "the reference has 1 non-finite value(s) (0 NaN, 1 Inf" in result.failures[0]
    assert math.isinf(result.max_rel_l2)


def test_inf_in_the_output_fails():
    result = compare_output("y", np.zeros(4, np.float32), np.array([0, 0, -np.inf, 0], np.float32), FP16, 0)
    assert not result and "the output has 1 non-finite value(s)" in result.failures[0] and "[2]" in result.failures[0]


def test_integer_output_is_not_truncated():
    assert not compare_output("exit_index", np.array(2), np.array(2.7), FP32, 0)  # passed before: int(2.7) == 2
    assert not compare_output("exit_index", np.array(2.7), np.array(2), FP32, 0)
    assert not compare_output("exit_index", np.array(2), np.array(np.nan), FP32, 0)
    assert compare_output("exit_index", np.array(2), np.array(2.0), FP32, 0)
    assert compare_output("exit_index", np.array([1, 2], np.int64), np.array([1, 2], np.int32), FP32, 0)


def _specs():
    return [TensorSpec("x", (2,), "float32")], [TensorSpec("y", (2,), "float32")]


def test_zero_samples_is_an_error():
    inputs, outputs = _specs()
    with pytest.raises(EdgekitError, match="zero samples"):
        validate_runtime("onnxruntime", lambda f: f, [], [], inputs, outputs, FP32)
    with pytest.raises(EdgekitError, match="1 samples but 0 reference"):
        validate_runtime("onnxruntime", lambda f: f, [{"x": np.zeros(2, np.float32)}], [], inputs, outputs, FP32)


def test_a_runner_error_fails_its_sample_and_the_others_still_run():
    inputs, outputs = _specs()
    calls = []

    def run(feed):
        calls.append(feed)
        if len(calls) == 1:
            raise EdgekitError("onnxruntime: run failed: bad shape")
        return {"y": feed["x"]}

    feeds = [{"x": np.full(2, i, np.float32)} for i in range(3)]
    result = validate_runtime("onnxruntime", run, feeds, [{"y": f["x"]} for f in feeds], inputs, outputs, FP32)
    assert len(calls) == 3 and result.status == "failed"
    assert result.failures == ["sample 0: onnxruntime: run failed: bad shape"]


def test_json_is_strict_and_says_why_a_value_is_missing():
    data = {"a": float("nan"), "b": [1.0, float("inf")], "c": np.float32(-np.inf), "d": 2.5}
    text = dumps(data)
    assert json.loads(text) == {"a_nonfinite": "nan", "a": None, "b": [1.0, None], "c_nonfinite": "-inf",
                                "c": None, "d": 2.5}
    assert "NaN" not in text and "Infinity" not in text
    assert finite_json({"x": {"y": float("nan")}}) == {"x": {"y_nonfinite": "nan", "y": None}}


def test_metric_record_with_a_nan_score_serialises_and_fails():
    result = MetricResult("psnr", 30.0, float("nan"), 4)
    assert not result.within(0.3)
    record = result.to_json()
    assert record["value"] is None and record["value_nonfinite"] == "nan" and record["drop"] is None
    json.dumps(record, allow_nan=False)


def test_testdata_names_that_sanitise_alike_get_their_own_files(tmp_path):
    a, b = np.arange(3, dtype=np.float32), np.arange(3, dtype=np.float32) + 10
    write_testdata(tmp_path, [({"in": a}, {"out.1": a, "out_1": b})])
    (_, outputs), = read_testdata(tmp_path)
    np.testing.assert_array_equal(outputs["out.1"], a)
    np.testing.assert_array_equal(outputs["out_1"], b)
    assert len(list((tmp_path / "testdata").glob("*.bin"))) == 3


def test_testdata_corruption_is_caught(tmp_path):
    write_testdata(tmp_path, [({"x": np.arange(4, dtype=np.float32)}, {"y": np.ones(2, np.int64)})])
    file = next((tmp_path / "testdata").glob("000.output.*.bin"))
    data = bytearray(file.read_bytes())
    data[0] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(EdgekitError, match="testdata output 'y' does not match the manifest: sha256"):
        read_testdata(tmp_path)
    file.write_bytes(file.read_bytes()[:-1])
    with pytest.raises(EdgekitError, match="holds 15 bytes; shape \\[2\\] int64 needs 16"):
        read_testdata(tmp_path, verify=False)


def test_validate_keeps_evidence():
    old = {"tensorrt": {"status": "passed", "samples": 8}, "onnxruntime": {"status": "passed", "metric": {"drop": 0.1}},
           "openvino": {"status": "passed"}}
    new = {"tensorrt": {"status": "skipped", "reason": "no CUDA device"},
           "onnxruntime": {"status": "passed", "samples": 4},
           "openvino": {"status": "failed"}}
    merged = merge_validation(old, new)
    assert merged["tensorrt"] == old["tensorrt"]  # a CPU host's skip does not erase a GPU host's pass
    assert merged["onnxruntime"] == {"status": "passed", "samples": 4, "metric": {"drop": 0.1}}
    assert merged["openvino"] == {"status": "failed"}  # new evidence replaces old evidence
