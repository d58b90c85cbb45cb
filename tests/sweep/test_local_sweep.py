"""A local sweep of zoo:toy (tiny): 2 precisions × 2 runtimes × 2 device labels, through the CLI.

One module-scoped run (exports take a while on a small machine) and checks on what it left: every cell
that can run here measured, the cells of a device label this machine lacks failed alone, runtimes share
their export, a re-run is all cache hits, and another sweep over the same cache reuses the export.
"""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from sweep_helpers import write_sweep

pytestmark = [pytest.mark.slow, pytest.mark.onnxruntime, pytest.mark.openvino]

AXES = 'precision = ["fp32", "int8"]\nruntime = ["onnxruntime", "openvino"]\ndevice = ["local", "orin-nx"]'


def _runs(root, kind):
    lines = (root / "cache" / "runs.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep")
    path = write_sweep(root, AXES)
    proc = run_cli("sweep", path, "--json", "--jobs", "2", "--report", root / "report.md", timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, path, json.loads(proc.stdout), proc.stderr


def test_every_local_cell_is_measured(sweep):
    _, _, result, _ = sweep
    local = [c for c in result["cells"] if c["axes"]["device"] == "local"]
    assert len(result["cells"]) == 8 and len(local) == 4
    assert {(c["axes"]["precision"], c["axes"]["runtime"]) for c in local} == {
        ("fp32", "onnxruntime"), ("fp32", "openvino"), ("int8", "onnxruntime"), ("int8", "openvino")}
    for c in local:
        assert c["status"] in ("ok", "over budget"), c
        assert c["p50_ms"] > 0 and c["vs_torch"] > 0 and c["size_mb"] > 0
        assert c["metric"] == "cosine" and c["baseline"] == pytest.approx(1.0)
        assert -1e-9 <= c["drop"] and 0.9 < c["value"] <= 1.0 + 1e-9  # cosine similarity to the fp32 outputs
        assert c["where"]["pid"] > 0
    fp32 = [c for c in local if c["axes"]["precision"] == "fp32"]
    int8 = [c for c in local if c["axes"]["precision"] == "int8"]
    assert all(c["drop"] < 1e-4 for c in fp32)  # fp32 runtimes match the fp32 reference
    assert all(c["drop"] > max(f["drop"] for f in fp32) for c in int8)  # INT8 costs something
    assert all(1e-7 < c["drop"] < 0.05 for c in int8)  # ... a real, bounded cost: not 0, not garbage


def test_a_device_label_this_machine_lacks_fails_alone(sweep):
    _, _, result, stderr = sweep
    remote = [c for c in result["cells"] if c["axes"]["device"] == "orin-nx"]
    assert len(remote) == 4
    assert all(c["status"] == "failed" and "no host with device:orin-nx" in c["reason"] for c in remote)
    assert "Traceback" not in stderr


def test_runtimes_share_one_export_per_precision(sweep):
    root, _, result, _ = sweep
    assert len(_runs(root, "export")) == 2  # two runtimes × two precisions, two exports
    assert result["stages"]["export"] == {"ran": 2, "cached": 0, "failed": 0, "skipped": 0}
    assert result["stages"]["measure"]["ran"] == 4
    assert result["stages"]["baseline"]["ran"] == 1  # the fp32 reference, once per sweep


def test_front_recommendation_and_report(sweep):
    root, _, result, _ = sweep
    local = [c for c in result["cells"] if c["axes"]["device"] == "local"]
    within = [c for c in local if c["status"] == "ok"]
    assert within, "the budget should admit the fp32 cells"
    fastest = min(within, key=lambda c: c["p50_ms"])
    assert result["recommended"] == {"local": fastest["id"]}
    assert fastest["pareto"]
    front = [c for c in local if c["pareto"]]
    for c in local:  # nothing off the front beats a front point on both axes
        if not c["pareto"]:
            assert any(f["p50_ms"] <= c["p50_ms"] and f["value"] >= c["value"] for f in front)
    report = (root / "report.md").read_text()
    assert f"- recommended on `local`: `{fastest['id']}`" in report
    assert "no host with device:orin-nx" in report
    saved = json.loads((root / "sweep" / "sweep.json").read_text())
    assert saved["cells"] == result["cells"]


def test_rerun_resumes_from_the_cache(sweep):
    root, path, first, _ = sweep
    proc = run_cli("sweep", path, "--json", "--jobs", "2", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = json.loads(proc.stdout)
    assert len(_runs(root, "export")) == 2  # no new export ran
    assert again["stages"]["export"] == {"ran": 0, "cached": 2, "failed": 0, "skipped": 0}
    assert again["stages"]["measure"] == {"ran": 0, "cached": 4, "failed": 0, "skipped": 0}
    assert [c["p50_ms"] for c in again["cells"]] == [c["p50_ms"] for c in first["cells"]]


def test_an_impossible_shape_fails_alone_and_reuses_the_export(sweep):
    root, _, _, _ = sweep
    exports_before = len(_runs(root, "export"))
    path = write_sweep(root, 'runtime = ["onnxruntime", "openvino"]\nshape = ["1x3x16x16", "1x4x16x16"]',
                       name="shapes")
    proc = run_cli("sweep", path, "--json", "--jobs", "2", timeout=600)
    # a failed cell fails the run (issue #22), after every cell is reported and the JSON written
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr.splitlines()[-1].startswith(f"error: {path}: 2 of 4 cells failed — ")
    assert "axis 1 is fixed at 3" in proc.stderr.splitlines()[-1]
    result = json.loads(proc.stdout)
    by_shape = {}
    for c in result["cells"]:
        by_shape.setdefault(c["axes"]["shape"], []).append(c)
    assert all(c["status"] == "ok" and c["p50_ms"] > 0 for c in by_shape["1x3x16x16"])
    for c in by_shape["1x4x16x16"]:
        assert c["status"] == "failed"
        assert "shape 1x4x16x16: input 'image' axis 1 is fixed at 3" in c["reason"]
    assert len(_runs(root, "export")) == exports_before  # same source, precision and targets: cached
    assert result["stages"]["export"]["cached"] == 1
