"""End to end: `edgekit export tests/flow/tiny_models.py:build_*` with no flags beyond the targets validates
every exit / step count the flow helpers' hooks drive, and the ONNX matches eager on every path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import manifest_of, run_cli
from tiny_models import build_chain, build_sampler

HERE = Path(__file__).parent
pytestmark = [pytest.mark.onnxruntime, pytest.mark.openvino]


def _export(tmp_path_factory, factory: str) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("flow") / factory
    result = run_cli("export", f"{HERE / 'tiny_models.py'}:{factory}", "--target", "onnx", "--target", "openvino",
                     "--out", out, "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, json.loads(result.stdout)


@pytest.fixture(scope="module")
def chain_bundle(tmp_path_factory):
    return _export(tmp_path_factory, "build_chain")


@pytest.fixture(scope="module")
def sampler_bundle(tmp_path_factory):
    return _export(tmp_path_factory, "build_sampler")


def _session(bundle: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(bundle / "model.onnx"), providers=["CPUExecutionProvider"])


def test_chain_export_validates_every_exit(chain_bundle):
    bundle, printed = chain_bundle
    manifest = manifest_of(bundle)
    assert printed["validation"] == manifest["validation"]
    assert manifest["control_flow"]["If"] == 2
    for runtime in ("onnxruntime", "openvino"):
        block = manifest["validation"][runtime]
        assert block["status"] == "passed", block
        assert sorted(block["paths"]["exit_index"]) == [0, 1, 2]
    (knob,) = manifest["knobs"]
    assert knob["input"] == "threshold" and knob["path_output"] == "exit_index"
    assert [o["name"] for o in manifest["outputs"]] == ["output", "exit_index"]


def test_chain_onnx_matches_eager_on_every_exit(chain_bundle):
    chain, session = build_chain(), _session(chain_bundle[0])
    for feed in chain.validation_feeds():
        out, index = chain(feed["x"], feed["threshold"])
        got_out, got_index = session.run(None, {k: v.numpy() for k, v in feed.items()})
        assert got_index.dtype == np.int64 and int(got_index) == int(index)
        np.testing.assert_allclose(got_out, out.numpy(), rtol=1e-4, atol=1e-5)


def test_sampler_export_validates_n_1_mid_max(sampler_bundle):
    manifest = manifest_of(sampler_bundle[0])
    assert manifest["control_flow"]["Loop"] == 1
    for runtime in ("onnxruntime", "openvino"):
        block = manifest["validation"][runtime]
        assert block["status"] == "passed", block
        assert sorted(block["paths"]["num_steps"]) == [1, 2, 4]
    (num_steps,) = [i for i in manifest["inputs"] if i["name"] == "num_steps"]
    assert num_steps["dtype"] == "int64" and num_steps["range"] == [1, 4]
    assert manifest["knobs"][0]["input"] == "num_steps"


def test_sampler_onnx_matches_eager_for_n_1_to_max(sampler_bundle):
    model, session = build_sampler(), _session(sampler_bundle[0])
    x, _, noise = model.example_inputs()
    for n in range(1, model.max_steps + 1):
        want = model(x, torch.tensor(n), noise).numpy()
        (got,) = session.run(None, {"x": x.numpy(), "num_steps": np.array(n, dtype=np.int64), "noise": noise.numpy()})
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_branchy_example_exports_with_every_exit_validated(tmp_path):
    """`edgekit export examples/python/branchy.py:build` as the README says (ONNX only, to stay cheap)."""
    example = HERE.parents[1] / "examples" / "python" / "branchy.py"
    result = run_cli("export", f"{example}:build", "--target", "onnx", "--out", tmp_path / "b", "--json", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    block = json.loads(result.stdout)["validation"]["onnxruntime"]
    assert block["status"] == "passed" and sorted(block["paths"]["exit_index"]) == [0, 1, 2], block
