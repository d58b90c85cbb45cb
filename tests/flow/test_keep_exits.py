"""`--keep-exits` (export/keep_exits.py, validation/kept_exits.py) on the tiny 3-exit chain: the graph keeps
exactly the chosen exits, every feed ends where the reduced chain sends it with eager's output for that
exit, the export validates and records it, and bad requests fail with one clear error."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest
import torch

from edgekit.errors import EdgekitError
from edgekit.export.controlflow import control_flow_counts
from edgekit.export.keep_exits import exit_chain, exit_values, keep_exits, stage_keep_exits
from edgekit.ui import SILENT
from edgekit.validation.kept_exits import rerouted_failures, split_rerouted
from tiny_models import build_chain

pytestmark = [pytest.mark.onnxruntime]


@pytest.fixture(scope="module")
def chain():
    return build_chain()


@pytest.fixture(scope="module")
def chain_onnx(tmp_path_factory, chain):
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    out = tmp_path_factory.mktemp("keep") / "full"
    spec = f"{__file__.rsplit('/', 1)[0]}/tiny_models.py:build_chain"
    export_bundle(resolve_source(spec), out, ExportOptions(targets=("onnx",), validate=False))
    return out / "model.onnx"


def _feeds(chain, seed=0):
    rng = np.random.default_rng(seed)
    feeds = [{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32), "threshold": np.array(t, np.float32)}
             for t in (0.0, 0.34, 0.36, 0.4, 0.5, 0.7, 1.1)]
    return feeds + [{k: v.numpy() for k, v in f.items()} for f in chain.validation_feeds()]


def _route(eager_exit: int, scores: list[float], threshold: float, keep: list[int]) -> int:
    """Where the reduced chain goes: the first kept exit (below the deepest kept) whose score reaches the
    threshold, else the deepest kept exit."""
    for k in keep[:-1]:
        if np.float32(scores[k]) >= np.float32(threshold):
            return k
    return keep[-1]


@pytest.mark.parametrize("keep, ifs", [([0, 2], 1), ([1, 2], 1), ([0, 1], 1), ([2], 0), ([0], 0), ([0, 1, 2], 2)])
def test_reduced_graph_follows_the_kept_exits(chain, chain_onnx, keep, ifs):
    import onnxruntime as ort

    model = onnx.load(str(chain_onnx))
    assert exit_values(exit_chain(model, "exit_index")) == [0, 1, 2]
    record = keep_exits(model, "exit_index", keep)
    onnx.checker.check_model(model, full_check=True)
    assert control_flow_counts(model)["If"] == ifs
    assert record["kept"] == keep and record["dropped"] == [e for e in (0, 1, 2) if e not in keep]
    assert record["if_removed"] == 2 - ifs
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    rerouted = 0
    for feed in _feeds(chain):
        x, t = torch.from_numpy(feed["x"]), float(feed["threshold"])
        outs = chain.run_all_exits(x)
        scores = [float(s) for s in chain.exit_scores(x)]
        eager_exit = int(chain(x, torch.tensor(t))[1])
        output, got = session.run(None, {k: v for k, v in feed.items() if k in names})
        expected = eager_exit if eager_exit in keep else _route(eager_exit, scores, t, keep)
        rerouted += eager_exit not in keep
        assert int(got) == expected, (t, scores)
        np.testing.assert_allclose(output, outs[expected].numpy(), rtol=1e-5, atol=1e-6)
    assert rerouted > 0 or keep == [0, 1, 2]


def test_export_records_and_validates_the_kept_exits(tmp_path):
    from edgekit.bundle import Bundle
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source
    from edgekit.validation.parity import revalidate_bundle

    spec = f"{__file__.rsplit('/', 1)[0]}/tiny_models.py:build_chain"
    bundle = export_bundle(resolve_source(spec), tmp_path / "b",
                           ExportOptions(targets=("onnx", "openvino"), keep_exits=(0, 2)))
    m = bundle.manifest
    assert m.artifacts["onnx"]["kept_exits"] == {"path_output": "exit_index", "kept": [0, 2], "dropped": [1],
                                                 "if_removed": 1}
    assert m.control_flow["If"] == 1
    for runtime in ("onnxruntime", "openvino"):
        record = m.validation[runtime]
        assert record["status"] == "passed" and record["rerouted"] >= 1
        assert set(record["paths"]["exit_index"]) == {0, 2}
    again = revalidate_bundle(Bundle.load(tmp_path / "b"), ["onnxruntime"], 12, None, [], {})
    assert again["onnxruntime"].status == "passed" and again["onnxruntime"].rerouted is not None


def test_rerouted_samples_must_end_at_a_kept_exit_deep_enough():
    record = {"path_output": "exit_index", "kept": [0, 3], "dropped": [1, 2], "if_removed": 2}
    samples = [{"i": k} for k in range(4)]
    references = [{"exit_index": np.int64(k)} for k in (0, 1, 2, 3)]
    kept, refs, rerouted = split_rerouted(samples, references, record)
    assert [s["i"] for s in kept] == [0, 3] and [r for _, r in rerouted] == [1, 2]
    assert rerouted_failures(lambda f: {"exit_index": np.int64(3)}, rerouted, record) == []
    wrong = rerouted_failures(lambda f: {"exit_index": np.int64(0)}, rerouted, record)
    assert len(wrong) == 2 and "at 0; expected 3 (kept: 0, 3)" in wrong[0]
    deeper = {"path_output": "exit_index", "kept": [0, 1], "dropped": [2], "if_removed": 1}
    _, _, rerouted = split_rerouted(samples, references, deeper)
    assert [r for _, r in rerouted] == [2, 3]
    assert rerouted_failures(lambda f: {"exit_index": np.int64(1)}, rerouted, deeper) == []
    assert len(rerouted_failures(lambda f: {"exit_index": np.int64(0)}, rerouted, deeper)) == 2


def test_bad_requests_fail_with_one_clear_error(chain_onnx, tmp_path):
    from edgekit.cli.export import parse_exits
    from edgekit.tuning.knobs import Knob

    model = onnx.load(str(chain_onnx))
    with pytest.raises(EdgekitError, match=r"takes the values 0,1,2; 5 is not one"):
        keep_exits(model, "exit_index", [0, 5])
    with pytest.raises(EdgekitError, match="neither branch returns a constant 'output'"):
        keep_exits(model, "output", [0])
    from onnx import TensorProto, helper

    plain = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "plain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])]))
    with pytest.raises(EdgekitError, match=r"output 'y' does not come from an If \(found Relu\)"):
        keep_exits(plain, "y", [0])
    for text in ("a", ",", "1.5"):
        with pytest.raises(EdgekitError, match="--keep-exits"):
            parse_exits(text)
    assert parse_exits("4, 0") == (0, 4)
    shutil.copyfile(chain_onnx, tmp_path / "model.onnx")
    before = (tmp_path / "model.onnx").read_bytes()
    with pytest.raises(EdgekitError, match="declares no exit knob"):
        stage_keep_exits(tmp_path, {"onnx": {}}, [Knob("steps", "steps", (1, 2), 2)], (0,), SILENT)
    assert (tmp_path / "model.onnx").read_bytes() == before
