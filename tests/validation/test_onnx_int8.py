"""An ONNX source at int8 (issue #22): its int8 model.onnx replaced the graph the reference runs, so ONNX
Runtime must validate it (it was skipped as "the reference") and `edgekit validate` must take the kept
fp32 graph (`onnx_fp32`) as the reference, not the int8 file. Calibrated at 48×48 while the example is
32×32: calibration at a size other than the example's."""

from __future__ import annotations

import json

import pytest

from conftest import manifest_of, run_cli

pytestmark = [pytest.mark.onnxruntime, pytest.mark.slow]

CALIB_48 = '''
import numpy as np


def feeds():
    rng = np.random.default_rng(0)
    for i in range(8):
        yield {"image": rng.standard_normal((1, 3, 48, 48)).astype(np.float32),
               "threshold": np.array(-1.0 if i % 2 else 2.0, np.float32),
               "num_steps": np.array(1 + i % 4, np.int64)}
'''


def test_onnx_source_at_int8_is_validated_against_its_fp32_graph(toy_bundle, tmp_path):
    (tmp_path / "calib.py").write_text(CALIB_48)
    out = tmp_path / "int8"
    result = run_cli("export", toy_bundle / "model.onnx", "--target", "onnx", "--precision", "int8", "--calib",
                     f"{tmp_path / 'calib.py'}:feeds", "--calib-samples", "8", "--samples", "4", "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    m = manifest_of(out)
    assert m["artifacts"]["onnx"]["precision"] == "int8" and m["pipeline"]["quantize"]["samples"] == 8
    ort = m["validation"]["onnxruntime"]
    assert ort["status"] == "passed" and ort["samples"] == 4 and ort["precision"] == "int8"  # not "skipped"
    assert 0 < ort["max_rel_l2"] < 5e-2 and ort["metric"]["metric"] == "cosine"  # int8 really differs from fp32
    again = run_cli("validate", out, "--samples", "4", "--json")
    assert again.returncode == 0, again.stderr[-3000:]
    block = json.loads(again.stdout)["onnxruntime"]
    # against the int8 file itself the error would be exactly 0
    assert block["status"] == "passed" and block["max_rel_l2"] > 0 and block["precision"] == "int8"
    assert manifest_of(out)["validation"]["onnxruntime"]["metric"] == ort["metric"]  # evidence kept
