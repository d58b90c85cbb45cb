"""`--precision bf16` and `--precision mixed` (openvino): the IR, the inference precision the bundle records
and its runner uses, the gate (task metric where there is one), and the requests that are refused."""

from __future__ import annotations

import numpy as np
import pytest

from edgekit.errors import EdgekitError
from edgekit.pipeline import ExportOptions, check_targets, export_bundle
from edgekit.sources import resolve_source

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]
TOY = "zoo:toy?width=4,max_steps=4"


def _has_bf16_math() -> bool:
    from edgekit.bench.plan import BF16_ISA
    from edgekit.env import environment

    return any(f in environment()["cpu"]["isa"] for f in BF16_ISA)


def _calib(tmp_path) -> str:
    rng = np.random.default_rng(3)
    feeds = {}
    for i in range(6):
        feeds[f"{i}/image"] = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)  # as validation draws
        feeds[f"{i}/threshold"] = np.array(0.5 if i % 2 else 2.0, np.float32)
        feeds[f"{i}/num_steps"] = np.array(1 + i % 4, np.int64)
    np.savez(tmp_path / "calib.npz", **feeds)
    return str(tmp_path / "calib.npz")


def test_bf16_runs_the_fp32_ir_in_bf16_and_says_so(tmp_path):
    from edgekit.runtimes import open_runner

    bundle = export_bundle(resolve_source(TOY), tmp_path / "b", ExportOptions(precision="bf16"))
    m = bundle.manifest
    entry = m.artifacts["openvino"]
    assert entry["precision"] == "bf16" and entry["inference_precision"] == "bf16"
    assert m.artifacts["onnx"].get("precision", "fp32") == "fp32"
    assert m.validation["onnxruntime"]["precision"] == "fp32"  # the ONNX graph is the fp32 one
    ov = m.validation["openvino"]
    assert ov["status"] == "passed" and ov["precision"] == "bf16" and ov["max_rel_l2_allowed"] == 2e-2
    with open_runner(bundle, "openvino") as runner:
        assert runner.precision == "bf16"
    with open_runner(bundle, "openvino", precision="fp32") as runner:
        assert runner.precision == "fp32"
    if _has_bf16_math():  # computed in bf16: ~1e-3 off fp32, not the ~1e-7 of an f32 run
        assert ov["max_rel_l2"] > 1e-5


def test_mixed_is_the_int8_ir_with_the_rest_in_bf16(tmp_path):
    options = ExportOptions(precision="mixed", calib=_calib(tmp_path), calib_samples=6)
    bundle = export_bundle(resolve_source(TOY), tmp_path / "b", options)
    m = bundle.manifest
    entry = m.artifacts["openvino"]
    assert entry["precision"] == "int8" and entry["inference_precision"] == "bf16"
    assert entry["quantized"]["quantized"] > 0 and m.artifacts["onnx"]["precision"] == "int8"
    assert m.pipeline["quantize"]["precision"] == "mixed"
    assert m.validation["openvino"]["status"] == "passed" and m.validation["openvino"]["precision"] == "int8"
    from edgekit.runtimes import open_runner

    with open_runner(bundle, "openvino") as runner:
        assert runner.precision == "bf16"


def test_reduced_precision_with_a_task_metric_gates_on_the_metric():
    from edgekit.validation.parity import gate_tolerance

    for precision in ("bf16", "int8"):
        assert gate_tolerance(precision, None, task_metric=True).elementwise is False
        assert gate_tolerance(precision, None, task_metric=False).elementwise is True
        assert gate_tolerance(precision, None, task_metric=True).path_agreement == 0.95
    assert gate_tolerance("fp32", None, task_metric=True).elementwise is True


@pytest.mark.parametrize("targets, precision, message", [
    (["onnx", "tensorrt"], "mixed", "target tensorrt supports"),
    (["onnx"], "bf16", "a precision of the openvino target"),
    (["onnx", "ort-mobile"], "bf16", "target ort-mobile supports"),
])
def test_bf16_and_mixed_are_refused_where_openvino_is_not_built(targets, precision, message):
    with pytest.raises(EdgekitError, match=message):
        check_targets(targets, precision)


TASK_MODEL = '''
import numpy as np
import torch
from torch import nn


class Denoise(nn.Module):
    input_names = ("x",)
    output_names = ("y",)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(2, 2, 3, padding=1)

    def forward(self, x):
        return x - 0.1 * self.conv(x)

    def example_inputs(self):
        return (torch.randn(1, 2, 16, 16),)

    def task_metric(self):
        from edgekit.validation.metrics import TaskMetric

        rng = np.random.default_rng(1)
        feeds = [{"x": rng.standard_normal((1, 2, 16, 16)).astype(np.float32)} for _ in range(3)]
        return TaskMetric("neg_mse", feeds, [f["x"] for f in feeds],
                          lambda out, target: -float(np.mean((out["y"] - target) ** 2)))


def build():
    return Denoise().eval()
'''


def test_bf16_gates_openvino_on_the_metric_and_keeps_fp32_onnx_on_fp32_samples(tmp_path):
    (tmp_path / "task.py").write_text(TASK_MODEL)
    bundle = export_bundle(resolve_source(f"{tmp_path / 'task.py'}:build"), tmp_path / "b",
                           ExportOptions(precision="bf16", samples=6))
    ov, ort = bundle.manifest.validation["openvino"], bundle.manifest.validation["onnxruntime"]
    assert ov["status"] == "passed" and ov["gate"] == "metric" and ov["metric"]["metric"] == "neg_mse"
    assert ov["samples"] == 6  # the example, the metric's 3 feeds, random ones up to --samples
    assert ort["status"] == "passed" and ort["precision"] == "fp32" and "gate" not in ort and "metric" not in ort
    assert ort["max_rel_l2_allowed"] == 1e-5 and ort["samples"] == 6
