"""GroupNorm in 4-D for OpenVINO (export/groupnorm.py): the rewrite computes what the exporter's
Reshape → InstanceNormalization → Reshape computes, in the main graph and inside Loop bodies, with static
and dynamic spatial sizes, and the openvino target records and validates it."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from conftest import manifest_of
from edgekit.export.groupnorm import rewrite_group_norms
from edgekit.export.surface import walk_graphs

pytestmark = [pytest.mark.onnxruntime, pytest.mark.openvino]


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.out = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.Conv2d(8, 2, 1)
        with torch.no_grad():  # not the unit init: the affine part must survive the rewrite too
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return self.out(torch.nn.functional.silu(self.norm(self.conv(x))))


def _export(tmp_path, dynamic: bool) -> tuple[onnx.ModelProto, nn.Module]:
    torch.manual_seed(0)
    module = Block().eval()
    path = tmp_path / f"block{int(dynamic)}.onnx"
    shapes = {"x": {2: torch.export.Dim("h", min=4, max=64), 3: torch.export.Dim("w", min=4, max=64)}} if dynamic else None
    torch.onnx.export(module, (torch.randn(1, 3, 16, 12),), str(path), input_names=["x"], dynamo=True,
                      dynamic_shapes=shapes, opset_version=18)
    return onnx.load(str(path)), module


def _ops(model) -> list[str]:
    return [n.op_type for _, g in walk_graphs(model.graph) for n in g.node]


@pytest.mark.parametrize("dynamic", [False, True])
def test_rewrite_matches_the_exported_group_norm_on_fresh_inputs(tmp_path, dynamic):
    import onnxruntime as ort

    model, module = _export(tmp_path, dynamic)
    assert "InstanceNormalization" in _ops(model), "the exporter's form this rewrite targets"
    before = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert rewrite_group_norms(model) == 1
    onnx.checker.check_model(model, full_check=True)
    assert "InstanceNormalization" not in _ops(model)
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(4)
    for shape in ([(1, 3, 16, 12)] if not dynamic else [(1, 3, 16, 12), (1, 3, 24, 40)]):
        x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
        want = module(torch.from_numpy(x)).detach().numpy()
        got = after.run(None, {"x": x})[0]
        assert np.abs(got - before.run(None, {"x": x})[0]).max() < 1e-5
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-5


def test_no_match_is_left_alone(tmp_path):
    model, _ = _export(tmp_path, False)
    model.opset_import[0].version = 17  # ReduceMean's axes were an attribute then: not rewritten
    assert rewrite_group_norms(model) == 0 and "InstanceNormalization" in _ops(model)


def test_storm_ir_has_its_group_norms_in_4d_inside_the_loop_and_validates(storm_bundle):
    import openvino as ov

    m = manifest_of(storm_bundle)
    entry = m["artifacts"]["openvino"]
    onnx_model = onnx.load(str(storm_bundle / "model.onnx"), load_external_data=False)
    norms = _ops(onnx_model).count("InstanceNormalization")
    assert norms > 0, "model.onnx keeps the exporter's form (ONNX Runtime is faster with it)"
    assert entry["rewrites"] == {"group_norm_4d": norms}, "every GroupNorm, Loop body included"
    assert m["validation"]["openvino"]["status"] == "passed"
    ir = ov.Core().read_model(str(storm_bundle / "model.xml"))

    def kinds(model) -> list[str]:
        out = []
        for op in model.get_ordered_ops():
            out.append(op.get_type_name())
            if op.get_type_name() == "Loop":
                out += kinds(op.get_function())
        return out

    assert not {"MVN", "GroupNormalization"} & set(kinds(ir)), "no 3-D normalisation left in the IR"
