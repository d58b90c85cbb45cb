"""The commands as a user runs them: --json prints only JSON, human output stays on stderr."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import onnx
import pytest

from conftest import manifest_of, run_cli

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]


def test_export_json_prints_the_manifest_only(tmp_path):
    out = tmp_path / "toy"
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)  # nothing but JSON on stdout
    assert manifest == manifest_of(out)
    assert manifest["control_flow"] == {"If": 1, "Loop": 1}
    assert "torch.onnx" not in result.stdout and "validation" in result.stderr
    for runtime in ("onnxruntime", "openvino"):
        assert manifest["validation"][runtime]["status"] == "passed"
        assert manifest["validation"][runtime]["paths"]["exit_index"] == [0, 1]
    index = json.loads((out / "testdata" / "index.json").read_text())
    assert len(index["samples"]) == manifest["validation"]["openvino"]["samples"]


def test_validate_json_with_feed_and_inspect_json(toy_bundle_copy):
    result = run_cli("validate", toy_bundle_copy, "--feed", "threshold=-1", "--samples", "6", "--json")
    assert result.returncode == 0, result.stderr
    block = json.loads(result.stdout)
    assert set(block) == {"onnxruntime", "openvino"}
    assert block["openvino"]["status"] == "passed" and block["openvino"]["paths"]["exit_index"] == [0]
    assert manifest_of(toy_bundle_copy)["validation"]["openvino"] == block["openvino"]
    info = json.loads(run_cli("inspect", toy_bundle_copy, "--json").stdout)
    assert info["onnx"]["control_flow"] == {"If": 1, "Loop": 1}
    assert info["onnx"]["ops"]["Conv"] >= 4  # counted inside the If branches and the Loop body
    assert info["manifest"]["source"]["spec"].startswith("zoo:toy")


def test_inspect_plain_onnx_file(toy_bundle):
    result = run_cli("inspect", toy_bundle / "model.onnx", "--json")
    info = json.loads(result.stdout)["onnx"]
    assert [i["name"] for i in info["inputs"]] == ["image", "threshold", "num_steps"]
    assert info["inputs"][0]["shape"] == [1, 3, "height", "width"]
    assert info["parameters"] > 0 and info["if_nesting_depth"] == 1
    assert "If 1" in result.stderr


def test_bench_json_has_a_row_per_runtime_and_ratios(toy_bundle):
    result = run_cli("bench", toy_bundle, "--iters", "5", "--warmup", "1", "--feed", "num_steps=2", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {r["runtime"]: r for r in data["results"]}
    assert set(rows) == {"torch", "onnxruntime", "openvino"}
    assert all(r["status"] == "ok" and r["iters"] == 5 for r in rows.values())
    assert rows["torch"]["vs_torch"] == pytest.approx(1.0)
    assert rows["openvino"]["latency_ms"]["p50"] > 0 and data["feed"] == {"num_steps": 2}


def test_env_json():
    info = json.loads(run_cli("env", "--json").stdout)
    assert info["backends"]["torch"].startswith("2.") and "visible" in info["gpu"]


def test_failed_validation_exits_nonzero_and_records_failed(toy_bundle_copy):
    # Plant a fault: perturb a conv weight in the bundle's ONNX, then re-validate ONNX Runtime.
    path = toy_bundle_copy / "model.onnx"
    model = onnx.load(str(path))
    weight = next(t for t in model.graph.initializer if len(t.dims) == 4)
    array = onnx.numpy_helper.to_array(weight).copy()
    array.flat[0] += 0.5
    weight.CopyFrom(onnx.numpy_helper.from_array(array, weight.name))
    onnx.save(model, str(path))
    refused = run_cli("validate", toy_bundle_copy, "--runtime", "onnxruntime", "--json")
    assert refused.returncode == 1 and refused.stdout == ""  # the changed file no longer matches its sha256
    assert "model.onnx: onnx does not match the manifest: sha256" in refused.stderr
    result = run_cli("validate", toy_bundle_copy, "--runtime", "onnxruntime", "--no-verify", "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["onnxruntime"]["status"] == "failed"
    assert "validation failed — onnxruntime: output 'output'" in result.stderr
    record = manifest_of(toy_bundle_copy)["validation"]["onnxruntime"]
    assert record["status"] == "failed" and record["verified"] is False


def test_kill_9_during_export_leaves_no_bundle(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "edgekit.cli", "export", "zoo:toy", "--out", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(tmp_path.glob(".killed.partial-*/model.onnx")):
        time.sleep(0.05)
    assert list(tmp_path.glob(".killed.partial-*")), "export never started writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
