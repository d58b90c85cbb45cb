"""zoo:storm through the whole pipeline to a TensorRT(-RTX) engine: the sampler's Loop becomes TensorRT
loop layers and the engine keeps a dynamic number of frames. Running it needs a GPU (skipped here)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli


@pytest.mark.tensorrt
@pytest.mark.onnxruntime
def test_storm_exports_to_a_tensorrt_engine_with_its_loop(tmp_path):
    result = run_cli("export", "zoo:storm?nf=4,levels=2,max_steps=4,weights=none", "--target", "onnx",
                     "--target", "tensorrt", "--trt-arch", "sm86", "--out", tmp_path / "storm", "--json")
    assert result.returncode == 0, result.stderr
    manifest = json.loads(result.stdout)
    assert manifest["control_flow"] == {"If": 0, "Loop": 1}
    (engine,) = manifest["artifacts"]["tensorrt"]
    assert engine["compute_capability"] == "SM86" and (tmp_path / "storm" / engine["path"]).stat().st_size > 0
    assert engine["layers"]["TRIP_LIMIT"] == 1 and engine["layers"]["LOOP_OUTPUT"] >= 1
    frames = engine["profile"]["noisy_spec"]
    assert frames["min"][3] < frames["max"][3], "the engine keeps a dynamic number of frames"
    assert manifest["validation"]["onnxruntime"]["paths"]["num_steps"] == [1, 2, 4]
    tensorrt = manifest["validation"]["tensorrt"]
    assert tensorrt["status"] in ("passed", "skipped"), tensorrt
