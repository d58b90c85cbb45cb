"""Every model source kind exports to a validated bundle (DESIGN.md §3)."""

from __future__ import annotations

import textwrap

import numpy as np
import onnx
import pytest
import torch

from conftest import manifest_of
from edgekit.errors import ExportError
from edgekit.export.controlflow import check_control_flow_kept, control_flow_counts
from edgekit.pipeline import ExportOptions, export_bundle
from edgekit.sources import resolve_source

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]

GATE = textwrap.dedent('''
    import torch

    class Gate(torch.nn.Module):
        """Takes branch 0 or 1 depending on the sign of the input's sum (a torch.cond → ONNX If)."""

        def __init__(self):
            super().__init__()
            self.a = torch.nn.Linear(8, 8)
            self.b = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Tanh())

        def forward(self, x):
            def positive(x):
                return self.a(x), torch.full((), 0, dtype=torch.int64)

            def negative(x):
                return self.b(x), torch.full((), 1, dtype=torch.int64)

            return torch.cond(x.sum() > 0, positive, negative, (x,))

    def build():
        torch.manual_seed(0)
        return Gate(), (torch.randn(2, 8),)
''')


@pytest.fixture
def gate_file(tmp_path):
    path = tmp_path / "gate.py"
    path.write_text(GATE)
    return path


def _passed(manifest, runtime):
    block = manifest["validation"][runtime]
    assert block["status"] == "passed", block
    return block


def test_user_file_with_torch_cond_exports_with_if_and_validates_both_branches(gate_file, tmp_path):
    out = tmp_path / "gate"
    export_bundle(resolve_source(f"{gate_file}:build"), out, ExportOptions(samples=12))
    m = manifest_of(out)
    assert m["control_flow"]["If"] >= 1
    assert m["source"]["kind"] == "file" and len(m["source"]["sha256"]) == 64
    assert [o["name"] for o in m["outputs"]] == ["output_0", "output_1"]
    for runtime in ("onnxruntime", "openvino"):
        block = _passed(m, runtime)
        assert block["paths"]["output_1"] == [0, 1], "validation must drive both branches"
        assert block["max_abs_err"] < 1e-4
    assert sorted(m["artifacts"]) == ["onnx", "openvino", "testdata", "torch"]


def test_module_path_source_with_input_spec_and_dynamic_axis(tmp_path, monkeypatch):
    pkg = tmp_path / "usermodels"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(textwrap.dedent('''
        import torch
        class TinyMLP(torch.nn.Module):
            def __init__(self):
                super().__init__()
                torch.manual_seed(1)
                self.fc = torch.nn.Linear(6, 3)
            def forward(self, features):
                return torch.relu(self.fc(features))
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    from edgekit.specs import parse_input_spec

    source = resolve_source("usermodels.nets:TinyMLP", [parse_input_spec("features:4x6:float32")], {"features": [0]})
    out = tmp_path / "mlp"
    export_bundle(source, out, ExportOptions())
    m = manifest_of(out)
    assert m["inputs"] == [{"name": "features", "shape": ["features_0", 6], "dtype": "float32"}]
    _passed(m, "openvino")
    # the dynamic batch axis really is dynamic in the artifacts
    from edgekit.bundle import Bundle
    from edgekit.runtimes import open_runner

    x = np.random.default_rng(0).standard_normal((9, 6)).astype(np.float32)
    with open_runner(Bundle.load(out), "openvino") as runner:
        got = runner.run({"features": x})["output"]
    ref = source.module(torch.from_numpy(x)).detach().numpy()
    assert got.shape == (9, 3) and np.abs(got - ref).max() < 1e-5


def test_pt2_source_keeps_dynamic_dims(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    height = torch.export.Dim("h", min=4, max=256)
    program = torch.export.export(model, (torch.randn(1, 3, 16, 16),), dynamic_shapes=({2: height},))
    torch.export.save(program, str(tmp_path / "net.pt2"))
    source = resolve_source(str(tmp_path / "net.pt2"))
    assert source.kind == "pt2" and isinstance(source.inputs[0].shape[2], str)
    out = tmp_path / "net"
    export_bundle(source, out, ExportOptions())
    m = manifest_of(out)
    _passed(m, "onnxruntime")
    _passed(m, "openvino")
    assert isinstance(m["inputs"][0]["shape"][2], str) and m["inputs"][0]["shape"][3] == 16


def test_onnx_source_is_validated_against_onnxruntime(toy_bundle, tmp_path):
    out = tmp_path / "from_onnx"
    source = resolve_source(str(toy_bundle / "model.onnx"))
    assert source.reference_runtime == "onnxruntime"
    export_bundle(source, out, ExportOptions(targets=("openvino",)))
    m = manifest_of(out)
    assert m["reference"]["runtime"] == "onnxruntime" and "torch" not in m["artifacts"]
    assert m["validation"]["onnxruntime"]["status"] == "skipped"
    block = _passed(m, "openvino")
    assert m["control_flow"] == {"If": 1, "Loop": 1}
    assert block["samples"] == 8


def test_onnx_source_with_external_data_is_read_once_and_copied_whole(toy_bundle, tmp_path):
    import onnxruntime as ort
    from onnx.external_data_helper import uses_external_data

    src = tmp_path / "src"
    src.mkdir()
    proto = onnx.load(str(toy_bundle / "model.onnx"))
    onnx.save_model(proto, str(src / "net.onnx"), save_as_external_data=True, location="weights.bin",
                    size_threshold=0)
    source = resolve_source(str(src / "net.onnx"))
    # resolve_source reads the graph only: the weights stay in weights.bin until the export copies them
    assert all(uses_external_data(t) and not t.raw_data for t in source.onnx_model.graph.initializer)
    out = tmp_path / "bundle"
    export_bundle(source, out, ExportOptions(targets=("openvino",)))
    m = manifest_of(out)
    assert m["artifacts"]["onnx"]["data"] == "model.onnx.data" and (out / "model.onnx.data").stat().st_size > 0
    _passed(m, "openvino")
    feed = {k: np.asarray(v) for k, v in source.example_feed().items()}
    feed["image"] = np.random.default_rng(3).standard_normal(feed["image"].shape).astype(np.float32)
    want = ort.InferenceSession(str(src / "net.onnx")).run(None, feed)
    got = ort.InferenceSession(str(out / "model.onnx")).run(None, feed)
    for w, g in zip(want, got):
        assert np.array_equal(w, g)


def test_large_models_use_external_data_kept_beside_the_onnx(tmp_path):
    from edgekit.export.onnx import onnx_from_torch

    source = resolve_source("zoo:toy?width=4,max_steps=2")
    result = onnx_from_torch(source, tmp_path / "model.onnx", tmp_path / "log.txt", external_data_threshold=0)
    assert result.data_path is not None and result.data_path.stat().st_size > 0
    proto = onnx.load(str(tmp_path / "model.onnx"), load_external_data=False)
    assert any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    import onnxruntime as ort

    session = ort.InferenceSession(str(tmp_path / "model.onnx"))
    feed = source.example_feed()
    ref = source.module(*source.example_inputs)[0].detach().numpy()
    assert np.abs(session.run(None, feed)[0] - ref).max() < 1e-5


def test_export_refuses_a_model_whose_control_flow_was_lost():
    static = onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Relu", ["x"], ["y"])], "g",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])]))
    assert control_flow_counts(static) == {"If": 0, "Loop": 0}
    with pytest.raises(ExportError, match="no If node .*unrolled or constant-folded"):
        check_control_flow_kept({"If": 2, "Loop": 0}, static, "zoo:x")
