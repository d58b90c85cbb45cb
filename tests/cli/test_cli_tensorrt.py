"""Issue 3's done-when, as a user runs it on a machine without a GPU: engines for two archs from a model
with torch.cond and while_loop, CONDITION and loop layers in the manifest, validation skipped with the
reason, and an fp16 variant."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli

pytestmark = [pytest.mark.tensorrt, pytest.mark.onnxruntime]


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_export_tensorrt_json_on_cpu(tmp_path, precision):
    from edgekit.export.trt_compat import cuda_device_available, import_tensorrt, names_archs

    if cuda_device_available() or not names_archs(import_tensorrt()):
        pytest.skip("checks the no-GPU path, which needs TensorRT-RTX's named-arch builder and no GPU")
    out = tmp_path / f"toy-{precision}"
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--target", "tensorrt", "--trt-arch", "sm86,sm89",
                     "--precision", precision, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    engines = manifest["artifacts"]["tensorrt"]
    assert [e["compute_capability"] for e in engines] == ["SM86", "SM89"]
    for engine in engines:
        assert engine["precision"] == precision and engine["builder"].startswith("tensorrt")
        assert {"CONDITION", "TRIP_LIMIT", "LOOP_OUTPUT"} <= set(engine["layers"])
        assert (out / engine["path"]).stat().st_size == engine["size_bytes"] > 0
        assert not (out / engine["path"]).read_bytes().startswith(b"{"), "plain engine bytes, no metadata prefix"
    if precision == "fp16":
        assert engines[0]["layers"].get("CAST", 0) > 0, "fp16 engines come from an fp16 graph with fp32 I/O"
    assert manifest["validation"]["tensorrt"] == {"status": "skipped", "reason": "no CUDA device"}
    assert manifest["validation"]["onnxruntime"]["status"] == "passed"
    shown = run_cli("inspect", out)
    assert "model.sm89.engine" in shown.stderr and "CONDITION" in shown.stderr


def test_bad_trt_arch_lists_valid_ones(tmp_path):
    result = run_cli("export", "zoo:toy", "--target", "tensorrt", "--trt-arch", "sm99", "--out", tmp_path / "b")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "SM86" in result.stderr and "sm99" in result.stderr.lower()
    assert not (tmp_path / "b").exists()
