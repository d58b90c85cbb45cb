"""`--quantizer nncf` (calibration/nncf_openvino.py): NNCF quantizes the openvino IR inside If branches (counted
in the manifest), keeps edgekit's float layers float through its ignored scope, leaves Loop bodies float (and
says so), and the bundle validates against PyTorch like any int8 export."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import manifest_of, run_cli
from edgekit.calibration.nncf_openvino import nncf_ir
from edgekit.export.surface import walk_graphs
from edgekit.validation.testdata import read_testdata

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime, pytest.mark.quantize]
TOY = "zoo:toy?width=4,max_steps=4"


@pytest.fixture(scope="module")
def toy_calib(toy_bundle, tmp_path_factory):
    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    path = tmp_path_factory.mktemp("nncf-calib") / "calib.npz"
    np.savez(path, **{f"{i}/{k}": v for i, f in enumerate(feeds) for k, v in f.items()})
    return path


@pytest.fixture(scope="module")
def nncf_export(toy_calib, tmp_path_factory):
    """zoo:toy exported with `--precision int8 --quantizer nncf` through the CLI: (bundle, CLI result)."""
    out = tmp_path_factory.mktemp("nncf") / "nncf"
    result = run_cli("export", TOY, "--precision", "int8", "--quantizer", "nncf", "--calib", toy_calib,
                     "--target", "openvino", "--out", out, "--json")
    return out, result


def test_export_nncf_quantizes_if_branches_and_says_what_stays_float(nncf_export):
    out, result = nncf_export
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout)  # NNCF's progress bars must not reach stdout
    entry = m["artifacts"]["openvino"]
    assert entry["quantizer"] == "nncf" and entry["precision"] == "int8"
    q = entry["quantized"]
    # zoo:toy: a stem conv, 3 convs in the If's branches, 1 in the Loop body
    assert q["total"] == 5 and q["in_subgraphs"] == 4
    assert q["quantized_in_subgraphs"] == q["quantized"] == 3, q
    float_ops = sorted(u.split(" ")[0] for u in q["unquantized"])
    assert float_ops == ["main/output.body:node_conv2d_4/WithoutBiases", "main:node_conv2d/WithoutBiases"]
    nncf = m["pipeline"]["quantize"]["openvino"]
    assert nncf["method"] == "nncf" and nncf["loop_body_ops_float"] == 1
    # edgekit's float input conv, and every op that only computes the If's (and Loop's) condition
    assert nncf["ignored_scope"] == ["node_ReduceMean_0", "node_conv2d", "node_ge", "node_lt", "node_mean",
                                     "node_neg", "node_sigmoid"]
    assert m["pipeline"]["quantize"]["method"] == "edgekit-qdq", "model.onnx stays edgekit's Q/DQ graph"
    assert m["artifacts"]["onnx"]["quantized"]["quantized_in_subgraphs"] == 4, "Q/DQ reaches the Loop body"
    assert "NNCF does not quantize Loop bodies: 1 compute op(s)" in result.stderr
    assert _fake_quantize_consumers(out / "model.xml") == {"Convolution"}, "element-wise ops stay float"
    v = m["validation"]["openvino"]
    assert v["status"] == "passed" and v["precision"] == "int8" and v["path_agreement"] >= 0.95
    assert 0 < v["max_rel_l2"] < 0.05, "int8 is close to, but not identical with, fp32"
    shown = run_cli("inspect", out)  # a person reading the bundle sees who quantized what
    # rich tables go to stderr, a long cell wrapped over lines whose other cells are empty: compare the cell's text
    text = "".join(shown.stderr.replace("│", "").split())
    assert shown.returncode == 0 and "quantizer=nncf;int83/5computeops(3inIf/Loopbodies)" in text, shown.stderr
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev extra")
    from pathlib import Path

    import edgekit

    schema = json.loads((Path(edgekit.__file__).parent / "schemas" / "manifest.schema.json").read_text())
    jsonschema.validate(manifest_of(out), schema)


def _fake_quantize_consumers(xml) -> set[str]:
    import openvino as ov

    kinds: set[str] = set()

    def visit(model):
        for op in model.get_ordered_ops():
            if op.get_type_name() == "FakeQuantize":
                kinds.update(t.get_node().get_type_name() for t in op.output(0).get_target_inputs())
            if op.get_type_name() == "If":
                visit(op.get_function(0))
                visit(op.get_function(1))
            elif op.get_type_name() == "Loop":
                visit(op.get_function())

    visit(ov.Core().read_model(str(xml)))
    return kinds


def test_nncf_ir_matches_pytorch_on_fresh_inputs(nncf_export):
    import torch

    from edgekit.bundle import Bundle
    from edgekit.runtimes import open_runner
    from edgekit.sources import resolve_source

    out, result = nncf_export
    assert result.returncode == 0, result.stderr
    module = resolve_source(TOY).module.eval()
    rng = np.random.default_rng(11)
    runner = open_runner(Bundle.load(out), "openvino")
    try:
        for threshold in (-1.0, 2.0):  # both branches of the If
            feed = {"image": rng.standard_normal((1, 3, 16, 16)).astype(np.float32),
                    "threshold": np.array(threshold, np.float32), "num_steps": np.array(2, np.int64)}
            with torch.no_grad():
                ref = module(*(torch.from_numpy(v) for v in feed.values()))
            got = runner.run(feed)
            want = ref[0].numpy()
            rel = float(np.linalg.norm(got["output"] - want) / np.linalg.norm(want))
            assert 0 < rel < 0.05, (threshold, rel)
            assert int(got["exit_index"]) == int(ref[1])
    finally:
        runner.close()


def test_ignored_scope_keeps_a_branch_conv_float(toy_bundle, toy_calib, tmp_path):
    model = onnx.load(str(toy_bundle / "model.onnx"))
    branch_convs = [n.name for ref, g in walk_graphs(model.graph) if ref.path and ref.path[-1][1] != "body"
                    for n in g.node if n.op_type == "Conv"]
    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    entry = nncf_ir(toy_bundle / "model.onnx", tmp_path / "m.xml", feeds, {branch_convs[0]: "planted"})
    float_ops = [u for u in entry["quantized"]["unquantized"] if f":{branch_convs[0]}/" in u]
    assert len(float_ops) == 1 and (".then:" in float_ops[0] or ".else:" in float_ops[0]), entry["quantized"]
    assert entry["quantized"]["quantized"] == 3, "the stem and the other branch convs are quantized"


@pytest.mark.parametrize("args, message", [
    (["--quantizer", "nncf"], "--quantizer nncf: quantizes the openvino target's IR (needs --precision int8"),
    (["--quantizer", "nncf", "--precision", "int8", "--target", "onnx"], "--quantizer nncf: quantizes the openvino"),
    (["--quantizer", "tflite", "--precision", "int8"], "--quantizer tflite: not one of edgekit, nncf"),
    (["--quantizer", "nncf", "--precision", "auto"], "--quantizer: --precision auto tries both"),
])
def test_quantizer_misuse_is_one_line_and_writes_nothing(args, message, tmp_path):
    result = run_cli("export", TOY, *args, "--out", tmp_path / "b")
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "b").exists()
