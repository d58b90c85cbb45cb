"""--target ort-mobile: ONNX Runtime Mobile's `.ort` with If/Loop kept, validated on every exit and step count,
and its operator list for reduced ORT builds."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from conftest import manifest_of, run_cli
from edgekit.errors import ExportError
from edgekit.export.ort_mobile import ort_from_onnx
from edgekit.validation.testdata import read_testdata

pytestmark = [pytest.mark.onnxruntime]


def test_toy_exports_an_ort_that_validates_every_branch_and_step(tmp_path):
    out = tmp_path / "toy"
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--target", "onnx", "--target", "ort-mobile",
                     "--ort-platform", "amd64", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    m = json.loads(result.stdout)
    entry = m["artifacts"]["ort-mobile"]
    assert entry["path"] == "model.ort" and entry["platform"] == "amd64" and len(entry["sha256"]) == 64
    assert any("If" in line and "Loop" in line for line in entry["ops"])
    assert (out / entry["ops_config"]).read_text().count("ai.onnx;") >= 1
    block = m["validation"]["ort-mobile"]
    assert block["status"] == "passed" and block["max_rel_l2"] <= 1e-5
    assert block["paths"]["exit_index"] == [0, 1] and block["paths"]["num_steps"] == [1, 2, 3, 4]
    assert "tmp" not in (out / entry["ops_config"]).read_text()  # no temp path leaks into the bundle


@pytest.mark.parametrize("name", ["rbqe", "storm"])
def test_zoo_models_as_ort_match_their_stored_references(request, tmp_path, name):
    """The session's tiny zoo bundles, converted for phones (arm) and run on the stored testdata: every
    exit of RBQE and N = 1, 2, 4 of StoRM, exact paths, fp32 tolerance."""
    import onnxruntime as ort

    bundle = request.getfixturevalue(f"{name}_bundle")
    entry = ort_from_onnx(bundle / "model.onnx", tmp_path, "arm")
    assert entry["platform"] == "arm" and any(("If" if name == "rbqe" else "Loop") in line for line in entry["ops"])
    session = ort.InferenceSession(str(tmp_path / "model.ort"))
    names = [o.name for o in session.get_outputs()]
    paths = set()
    for feed, reference in read_testdata(bundle):
        got = dict(zip(names, session.run(names, feed)))
        for key, want in reference.items():
            if np.issubdtype(want.dtype, np.integer):
                assert np.array_equal(got[key], want), key
            else:
                assert np.linalg.norm(got[key] - want) <= 1e-5 * max(np.linalg.norm(want), 1e-12), key
        paths.add(int(got["exit_index"]) if name == "rbqe" else int(feed["num_steps"]))
    assert paths == ({0, 1, 2, 3, 4} if name == "rbqe" else {1, 2, 4})


def test_an_op_ort_cannot_take_is_named(tmp_path):
    node = onnx.helper.make_node("Frobnicate", ["x"], ["y"], domain="com.example")
    graph = onnx.helper.make_graph([node], "g", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
                                   [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1])])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18),
                                                         onnx.helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(ExportError, match="Frobnicate"):
        ort_from_onnx(tmp_path / "model.onnx", tmp_path, "arm")
    assert not (tmp_path / "model.ort").exists()


def test_bad_platform_is_refused_before_the_export(tmp_path):
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--target", "ort-mobile", "--ort-platform", "x86",
                     "--out", tmp_path / "b")
    assert result.returncode == 1 and "--ort-platform 'x86'" in result.stderr
    assert not (tmp_path / "b").exists()
