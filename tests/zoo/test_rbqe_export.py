"""zoo:rbqe through the pipeline: exits kept as >= 4 nested If, every exit validated on every runtime
with the same exit path as PyTorch, dynamic height/width, threshold feeds, TensorRT with a fixed profile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import manifest_of, run_cli
from edgekit.bundle import Bundle
from edgekit.runtimes import open_runner

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime, pytest.mark.slow]


def test_exits_stay_nested_if_and_every_exit_matches_pytorch(rbqe_bundle):
    m = manifest_of(rbqe_bundle)
    assert m["control_flow"]["If"] >= 4 and m["control_flow"]["Loop"] == 0
    info = json.loads(run_cli("inspect", rbqe_bundle, "--json").stdout)
    assert info["onnx"]["if_nesting_depth"] >= 4, "a chain of exits is a chain of nested If"
    image = next(i for i in m["inputs"] if i["name"] == "image")
    assert all(isinstance(d, str) for d in image["shape"][2:]), "height and width are dynamic"
    assert next(i for i in m["inputs"] if i["name"] == "threshold")["default"] == pytest.approx(0.79)
    for runtime in ("onnxruntime", "openvino"):
        block = m["validation"][runtime]
        assert block["status"] == "passed", block
        assert block["paths"]["exit_index"] == [0, 1, 2, 3, 4]
        assert block["max_rel_l2"] <= 1e-5 and block["max_abs_err"] <= 1e-4
    if "tensorrt" in m["artifacts"]:
        engine = m["artifacts"]["tensorrt"][0]
        assert engine["layers"]["CONDITION"] >= 4
        profile = engine["profile"]["image"]
        if "profile_note" in engine:  # the dynamic range failed: one fixed shape, the example's
            assert profile["min"] == profile["max"] == [1, 1, 64, 64] and "--trt-shape" in engine["profile_note"]
        else:
            assert profile["min"] != profile["max"]
        assert m["validation"]["tensorrt"]["status"] in ("skipped", "passed")


def test_threshold_feed_selects_the_exit_on_every_runtime(rbqe_bundle):
    bundle = Bundle.load(rbqe_bundle)
    rng = np.random.default_rng(0)
    image = rng.random((1, 1, 96, 64), dtype=np.float32)  # a size no sample had: dims really are dynamic
    for threshold, exit_index in ((0.0, 0), (2.0, 4)):
        feed = {"image": image, "threshold": np.array(threshold, np.float32)}
        outputs = {}
        for runtime in ("torch", "onnxruntime", "openvino"):
            with open_runner(bundle, runtime) as runner:
                outputs[runtime] = runner.run(feed)
            assert int(outputs[runtime]["exit_index"]) == exit_index, runtime
        ref = outputs["torch"]["enhanced"]
        for runtime in ("onnxruntime", "openvino"):
            assert np.abs(outputs[runtime]["enhanced"] - ref).max() < 1e-4
