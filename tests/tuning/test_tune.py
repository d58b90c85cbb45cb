"""`edgekit tune` end to end: a user model with a planted exit (the right threshold is known), zoo:toy through
the CLI, zoo:rbqe and zoo:storm on their own task data, and the errors that must leave the manifest alone."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import manifest_of, run_cli

pytestmark = [pytest.mark.onnxruntime]

# A user model with one early exit. `score` (an input) decides the exit; the early exit reproduces the deep
# output only where sign = +1; the deep branch runs 40 chained 96×96 matmuls (milliseconds, not microseconds), so
# the choice the test expects rests on a cost gap of one to two orders of magnitude, not on fine timings; no
# latency figure is asserted.
USER_MODEL = textwrap.dedent('''
    import torch
    from torch import nn


    class Planted(nn.Module):
        input_names = ("x", "score", "threshold")
        output_names = ("y", "exit_index")

        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.eye(96) * 0.999, requires_grad=False)

        def forward(self, x, score, threshold):
            def early(x):
                return x[:, :1] * x[:, 1:2] * 0.999 ** 40, torch.full((), 0, dtype=torch.int64)

            def deep(x):
                h = x[:, :1]
                for _ in range(40):
                    h = h @ self.w
                return h, torch.full((), 1, dtype=torch.int64)

            return torch.cond(score >= threshold, early, deep, (x,))

        def example_inputs(self):
            return torch.ones(1, 2, 96, 96), torch.tensor(0.5), torch.tensor(0.5)

        def tuning_knobs(self):
            return [{"input": "threshold", "kind": "exit_threshold", "path_output": "exit_index",
                     "candidates": [round(0.1 * i, 1) for i in range(11)] + [2.0], "costliest": 2.0}]


    def build():
        return Planted().eval()
''')


def _planted_data(path):
    """Four samples: scores 0.1, 0.3, 0.7, 0.9; the early exit is exact only for the last two."""
    rng = np.random.default_rng(0)
    arrays = {}
    for i, (score, sign) in enumerate(((0.1, -1.0), (0.3, -1.0), (0.7, 1.0), (0.9, 1.0))):
        x = np.ones((1, 2, 96, 96), np.float32)
        x[:, :1] = rng.random((1, 1, 96, 96)) + 0.5
        x[:, 1:2] = sign
        arrays[f"{i}/x"] = x
        arrays[f"{i}/score"] = np.array(score, np.float32)
    np.savez(path, **arrays)


def test_a_user_model_gets_the_planted_threshold(tmp_path):
    (tmp_path / "planted.py").write_text(USER_MODEL)
    _planted_data(tmp_path / "data.npz")
    bundle = tmp_path / "bundle"
    # export and tune in one go (export --tune-data); then `edgekit tune --dry-run` re-measures the same choice
    result = run_cli("export", f"{tmp_path / 'planted.py'}:build", "--target", "onnx", "--out", bundle,
                     "--tune-data", tmp_path / "data.npz", "--tune-budget", "0.001", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["tuning"]["chosen"]["paths"]["exit_index"] == {"0": 2, "1": 2}
    assert manifest_of(bundle)["knobs"][0]["input"] == "threshold"
    tuned = (bundle / "manifest.json").read_bytes()
    result = run_cli("tune", bundle, "--data", tmp_path / "data.npz", "--budget", "0.001", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    assert (bundle / "manifest.json").read_bytes() == tuned
    out = json.loads(result.stdout)
    threshold = out["chosen"]["setting"]["threshold"]
    # exactly the two samples whose early exit is free stop early: any threshold in (0.3, 0.7]
    assert 0.3 < threshold <= 0.7 and out["chosen"]["paths"]["exit_index"] == {"0": 2, "1": 2}
    assert out["chosen"]["drop"] <= 1e-6
    assert out["reference"]["setting"] == {"threshold": 2.0}
    m = manifest_of(bundle)
    threshold = m["tuning"]["chosen"]["setting"]["threshold"]
    assert 0.3 < threshold <= 0.7
    assert next(i for i in m["inputs"] if i["name"] == "threshold")["default"] == threshold
    assert m["tuning"]["chosen"]["setting"] == {"threshold": threshold} and m["tuning"]["validation"]["status"] == "passed"
    assert m["tuning"]["data"]["samples"] == 4 and len(m["tuning"]["curve"]) == 12
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev extra")
    import edgekit

    schema = json.loads((Path(edgekit.__file__).parent / "schemas" / "manifest.schema.json").read_text())
    jsonschema.validate(m, schema)


def test_toy_through_the_cli_writes_defaults_bench_uses(toy_bundle_copy, tmp_path):
    from edgekit.bench.plan import bench_feed
    from edgekit.bundle import Bundle

    rng = np.random.default_rng(1)
    np.savez(tmp_path / "d.npz", **{f"{i}/image": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
                                    for i in range(3)})
    before = (toy_bundle_copy / "manifest.json").read_bytes()
    dry = run_cli("tune", toy_bundle_copy, "--data", tmp_path / "d.npz", "--runtime", "onnxruntime", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert (toy_bundle_copy / "manifest.json").read_bytes() == before
    result = run_cli("tune", toy_bundle_copy, "--data", tmp_path / "d.npz", "--runtime", "onnxruntime",
                     "--report", tmp_path / "t.md", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["curve"]) == 12 * 4 and out["chosen"]["within_budget"]
    assert "**chosen**" in (tmp_path / "t.md").read_text()
    chosen = out["chosen"]["setting"]
    feed = bench_feed(Bundle.load(toy_bundle_copy), {})
    assert float(feed["threshold"]) == pytest.approx(chosen["threshold"]) and int(feed["num_steps"]) == chosen["num_steps"]
    assert int(bench_feed(Bundle.load(toy_bundle_copy), {"num_steps": 1})["num_steps"]) == 1  # --feed still wins


@pytest.mark.parametrize("args, message", [
    (["--data", "missing.npz"], "missing.npz"),
    (["--budget", "-1"], "must be ≥ 0"),
    (["--data", "{data}", "--floor", "2"], "no knob setting reaches cosine ≥ 2"),
    (["--data", "{data}", "--metric", "psnr"], "needs ground truth"),
    (["--runtime", "nope"], "nope"),
])
def test_bad_tuning_requests_fail_cleanly_and_leave_the_manifest(toy_bundle_copy, tmp_path, args, message):
    np.savez(tmp_path / "d.npz", image=np.zeros((1, 3, 32, 32), np.float32))
    before = (toy_bundle_copy / "manifest.json").read_bytes()
    argv = [a.replace("{data}", str(tmp_path / "d.npz")) for a in args]
    result = run_cli("tune", toy_bundle_copy, *argv, cwd=tmp_path)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
    assert (toy_bundle_copy / "manifest.json").read_bytes() == before


def test_a_bundle_without_knobs_is_refused(toy_bundle_copy):
    path = toy_bundle_copy / "manifest.json"
    data = json.loads(path.read_text())
    data.pop("knobs", None)
    path.write_text(json.dumps(data))
    before = path.read_bytes()
    result = run_cli("tune", toy_bundle_copy, "--data", "x.npz")
    assert result.returncode == 1 and "declares no run-time knobs" in result.stderr
    assert path.read_bytes() == before


@pytest.mark.parametrize("name, metric, values", [("rbqe", "psnr", 22), ("storm", "si_sdr", 4)])
def test_zoo_models_tune_on_their_own_task_data(request, name, metric, values):
    from edgekit.bundle import Bundle
    from edgekit.tuning.stage import tune_bundle

    path = request.getfixturevalue(f"{name}_bundle")  # the session's tiny zoo bundles, read only here
    bundle = Bundle.load(path)
    result = tune_bundle(bundle, runtime="onnxruntime", samples=6, validate=False, write=False)
    assert result["metric"] == metric and len(result["curve"]) == values and result["data"]["samples"] == 6
    reference = result["reference"]
    # the reference is the costliest setting: the deepest exit on every sample, or the most steps
    assert reference["paths"] == ({"exit_index": {"4": 6}} if name == "rbqe" else {"num_steps": {"4": 6}})
    assert result["chosen"]["drop"] <= result["budget"] + 1e-9
    assert all(np.isfinite(r["metric"]) for r in result["curve"])
    assert "tuning" not in json.loads((path / "manifest.json").read_text())


def test_an_unknown_source_needs_data(toy_bundle_copy):
    result = run_cli("tune", toy_bundle_copy)
    assert result.returncode == 1 and "has no task_metric() with ground truth" in result.stderr


def test_keep_exits_auto_drops_the_exit_the_tuned_policy_never_takes(tmp_path):
    (tmp_path / "planted.py").write_text(USER_MODEL)
    _planted_data(tmp_path / "data.npz")
    with np.load(tmp_path / "data.npz") as data:  # every sample's early exit is exact: the policy stops early
        arrays = {k: v for k, v in data.items()}
    for i in range(4):
        arrays[f"{i}/x"][:, 1:2] = 1.0
    np.savez(tmp_path / "early.npz", **arrays)
    bundle = tmp_path / "bundle"
    result = run_cli("export", f"{tmp_path / 'planted.py'}:build", "--target", "onnx", "--out", bundle,
                     "--tune-data", tmp_path / "early.npz", "--tune-budget", "0.001", "--keep-exits", "auto")
    assert result.returncode == 0, result.stderr
    assert "the tuned policy takes exit(s) 0" in result.stderr
    m = manifest_of(bundle)
    assert m["artifacts"]["onnx"]["kept_exits"] == {"path_output": "exit_index", "kept": [0], "dropped": [1],
                                                   "if_removed": 1}
    assert m["control_flow"]["If"] == 0 and m["validation"]["onnxruntime"]["status"] == "passed"
    assert m["tuning"]["chosen"]["paths"]["exit_index"] == {"0": 4}
    refused = run_cli("export", f"{tmp_path / 'planted.py'}:build", "--target", "onnx", "--out", tmp_path / "b2",
                      "--keep-exits", "auto")
    assert refused.returncode == 1 and "--keep-exits auto: keeps the exits the tuned policy takes" in refused.stderr
    assert not (tmp_path / "b2").exists()
