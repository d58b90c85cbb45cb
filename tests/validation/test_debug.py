"""A planted fault (one perturbed weight in the OpenVINO IR) is named by `edgekit debug`: at top level,
inside an If branch and inside a Loop body; bisection finds it in ~log2(n) probes; INT8 sensitivity."""

from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest

from conftest import run_cli
from edgekit.bundle import Bundle
from edgekit.validation.debug import bisect_main_graph, localise, topological_tensors

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]


def plant_fault(bundle_dir, constant: str, delta: float = 0.5) -> None:
    """Add `delta` to the first element of the IR constant named `constant`, wherever it is."""
    import openvino as ov
    from openvino import opset13 as ops

    model = ov.Core().read_model(str(bundle_dir / "model.xml"))

    def find(m):
        for op in m.get_ordered_ops():
            kind = op.get_type_name()
            if kind == "Constant" and op.get_friendly_name() == constant:
                return op
            bodies = [op.get_function(0), op.get_function(1)] if kind == "If" else [op.get_function()] if kind == "Loop" else []
            for body in bodies:
                hit = find(body)
                if hit is not None:
                    return hit
        return None

    const = find(model)
    assert const is not None, f"no constant {constant} in the IR"
    data = const.get_data().copy()
    data.flat[0] += delta
    const.output(0).replace(ops.constant(data).output(0))
    ov.save_model(model, str(bundle_dir / "planted.xml"), compress_to_fp16=False)
    del model, const  # the IR's weights are memory-mapped: release before replacing them
    os.replace(bundle_dir / "planted.xml", bundle_dir / "model.xml")
    os.replace(bundle_dir / "planted.bin", bundle_dir / "model.bin")


@pytest.mark.parametrize("constant, node, graph", [
    ("stem.0.weight", "node_conv2d", "main"),
    ("exit0.weight", "node_conv2d_2", "then_branch"),
    ("deep.0.weight", "node_conv2d_3", "else_branch"),
    ("refine.weight", "node_conv2d_4", "body"),
])
def test_debug_names_the_planted_node(toy_bundle, tmp_path, constant, node, graph):
    bundle_dir = tmp_path / "faulty"
    shutil.copytree(toy_bundle, bundle_dir)
    plant_fault(bundle_dir, constant)
    bundle = Bundle.load(bundle_dir, verify=False)
    results = [localise(bundle, "openvino", s) for s in range(4)]
    found = [r for r in results if r.first is not None]
    assert found, "the fault was not detected on any sample"
    for r in found:
        assert r.first.node == node and r.first.graph.endswith(graph) and r.first.op == "Conv"
        assert r.first.rel_l2 > 1e-2
        assert all(d.ok for d in r.inputs), "the bad node's inputs still agree: the fault is in the node itself"
    assert localise(Bundle.load(toy_bundle), "openvino", found[0].sample).first is None, "a clean bundle has no mismatch"


def test_bisect_uses_log_probes(toy_bundle, tmp_path):
    bundle_dir = tmp_path / "faulty"
    shutil.copytree(toy_bundle, bundle_dir)
    plant_fault(bundle_dir, "stem.0.weight")
    first, probes = bisect_main_graph(Bundle.load(bundle_dir, verify=False), "openvino", 0)
    assert first is not None and first.node == "node_conv2d"
    import onnx

    main_tensors = [t for t in topological_tensors(onnx.load(str(toy_bundle / "model.onnx"))) if t[3] == "main"]
    assert probes <= math.ceil(math.log2(len(main_tensors))) + 1


def test_debug_cli_json_and_int8_sensitivity(toy_bundle, tmp_path):
    bundle_dir = tmp_path / "faulty"
    shutil.copytree(toy_bundle, bundle_dir)
    plant_fault(bundle_dir, "refine.weight")
    refused = run_cli("debug", bundle_dir, "--runtime", "openvino")  # the planted fault changed model.bin
    assert refused.returncode == 1 and "openvino does not match the manifest: sha256" in refused.stderr
    result = run_cli("debug", bundle_dir, "--runtime", "openvino", "--no-verify", "--json", "--report",
                     tmp_path / "r.md")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["first"]["node"] == "node_conv2d_4" and data["first"]["graph"].endswith(".body")
    assert "node_conv2d_4" in (tmp_path / "r.md").read_text() and (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"

    from edgekit.validation.testdata import read_testdata

    feeds = [inputs for inputs, _ in read_testdata(toy_bundle)]
    np.savez(tmp_path / "calib.npz", **{f"{i}/{k}": v for i, f in enumerate(feeds) for k, v in f.items()})
    int8 = tmp_path / "int8"
    assert run_cli("export", "zoo:toy?width=4,max_steps=4", "--precision", "int8", "--calib", tmp_path / "calib.npz",
                   "--target", "onnx", "--out", int8).returncode == 0
    result = run_cli("debug", int8, "--sensitivity", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["layers"]) == 4 and data["int8_rel_l2"] > 0  # the input conv stays float
    assert {layer["graph"].split(".")[-1] for layer in data["layers"]} >= {"body", "then_branch"}
    keys = [(layer["paths_fixed"], layer["gain_same_path"]) for layer in data["layers"]]
    assert keys == sorted(keys, reverse=True)
    assert all(layer["rel_l2_float"] <= data["int8_rel_l2"] + 1e-6 for layer in data["layers"][:1])
