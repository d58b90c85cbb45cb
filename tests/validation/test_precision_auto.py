"""`export --precision auto` (export/precision_auto.py): every candidate is exported and validated, only a
validated one can win, the fastest does, and the manifest says why; failures leave nothing at --out."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import edgekit
from edgekit.errors import EdgekitError, ValidationFailed
from edgekit.export import precision_auto
from edgekit.export.precision_auto import Candidate, export_auto, pick
from edgekit.pipeline import ExportOptions
from edgekit.sources import resolve_source
from edgekit.ui import SILENT

pytestmark = [pytest.mark.openvino, pytest.mark.onnxruntime]
TOY = "zoo:toy?width=4,max_steps=4"


def test_pick_is_budget_first_then_fastest():
    planted = [Candidate("fp32", "passed", ms=10.0), Candidate("bf16", "passed", ms=6.0),
               Candidate("int8", "failed", "metric over budget", ms=1.0), Candidate("mixed", "skipped", "no data")]
    assert pick(planted).precision == "bf16"
    assert pick([Candidate("fp32", "passed", ms=5.0), Candidate("int8", "passed", ms=5.0)]).precision == "fp32"
    assert pick([Candidate("int8", "failed", "x", ms=1.0)]) is None


def test_the_table_marks_the_chosen_quantizer_not_every_candidate_of_its_precision():
    from edgekit.cli.render import print_precision_auto
    from edgekit.ui import console

    record = {"runtime": "openvino", "rounds": 3, "chosen": "mixed", "quantizer": "nncf", "why": "planted",
              "candidates": [{"precision": "mixed", "status": "passed", "ms": 2.0},
                             {"precision": "mixed", "quantizer": "nncf", "status": "passed", "ms": 1.0}]}
    with console.capture() as captured:
        print_precision_auto(record)
    rows = [line for line in captured.get().splitlines() if "mixed" in line]
    assert len(rows) == 2 and "chosen" not in rows[0] and "mixed+nncf ← chosen" in rows[1]


@pytest.fixture
def calib(tmp_path) -> str:
    rng = np.random.default_rng(3)
    feeds = {}
    for i in range(6):
        feeds[f"{i}/image"] = rng.standard_normal((1, 3, 32, 32)).astype(np.float32)
        feeds[f"{i}/threshold"] = np.array(0.5 if i % 2 else 2.0, np.float32)
        feeds[f"{i}/num_steps"] = np.array(1 + i % 4, np.int64)
    np.savez(tmp_path / "calib.npz", **feeds)
    return str(tmp_path / "calib.npz")


def test_auto_never_picks_a_candidate_that_failed_validation(tmp_path, calib, monkeypatch):
    import edgekit.pipeline as pipeline

    real = pipeline.export_bundle

    def int8_fails(source, out, options, reporter=SILENT):
        bundle = real(source, out, options, reporter)
        if options.precision == "int8":  # planted: written, then over budget, as a failed validation is
            raise ValidationFailed("validation failed — openvino: psnr drops 9 (planted)", {})
        return bundle

    monkeypatch.setattr(pipeline, "export_bundle", int8_fails)
    out = tmp_path / "b"
    options = ExportOptions(calib=calib, calib_samples=6, auto_shapes=("image:1x3x48x40",))
    bundle = export_auto(resolve_source(TOY), out, options, SILENT, rounds=3)
    record = bundle.manifest.pipeline["precision_auto"]
    assert record["feed"] == "image [1, 3, 48, 40]"  # timed at --auto-shape, not at the 32² example
    by = {c["precision"] + ("+" + c["quantizer"] if "quantizer" in c else ""): c for c in record["candidates"]}
    assert list(by) == ["fp32", "bf16", "int8", "mixed", "int8+nncf", "mixed+nncf"]
    for name in ("int8+nncf", "mixed+nncf"):  # zoo:toy has a Loop: NNCF would leave its body float
        assert by[name]["status"] == "skipped" and "NNCF does not quantize Loop bodies" in by[name]["reason"]
    assert by["int8"]["status"] == "failed" and "planted" in by["int8"]["reason"] and "ms" not in by["int8"]
    passed = {p: c["ms"] for p, c in by.items() if c["status"] == "passed"}
    assert "fp32" in passed and record["chosen"] == min(passed, key=passed.get) != "int8"
    assert record["chosen"] in record["why"] and bundle.manifest.validation["openvino"]["status"] == "passed"
    entry = bundle.manifest.artifacts["openvino"]
    assert entry["precision"] == {"fp32": "fp32", "bf16": "bf16", "mixed": "int8"}[record["chosen"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "calib.npz"]  # no scratch left beside --out
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev extra")
    schema = json.loads((Path(edgekit.__file__).parent / "schemas" / "manifest.schema.json").read_text())
    jsonschema.validate(json.loads((out / "manifest.json").read_text()), schema)


def test_auto_times_nncf_twins_of_int8_on_a_model_without_loop(tmp_path, monkeypatch):
    chain = str(Path(__file__).parents[1] / "flow" / "tiny_models.py") + ":build_chain"
    rng = np.random.default_rng(5)
    feeds = {}
    for i in range(6):
        feeds[f"{i}/x"] = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
        feeds[f"{i}/threshold"] = np.array([0.0, 0.5, 2.0][i % 3], np.float32)
    np.savez(tmp_path / "calib.npz", **feeds)
    monkeypatch.setattr(precision_auto, "candidate_precisions", lambda isa: [("fp32", None), ("int8", None)])
    out = tmp_path / "b"
    options = ExportOptions(calib=str(tmp_path / "calib.npz"), calib_samples=6)
    bundle = export_auto(resolve_source(chain), out, options, SILENT, rounds=3)
    record = bundle.manifest.pipeline["precision_auto"]
    cands = record["candidates"]
    assert [(c["precision"], c.get("quantizer")) for c in cands] == [("fp32", None), ("int8", None), ("int8", "nncf")]
    assert cands[2]["status"] != "skipped", cands[2]  # exported and validated: no Loop to leave float
    assert all("ms" in c for c in cands if c["status"] == "passed")
    timed = {(c["precision"], c.get("quantizer", "edgekit")): c["ms"] for c in cands if c["status"] == "passed"}
    best = min(timed, key=timed.get)
    assert (record["chosen"], record.get("quantizer", "edgekit")) == best, record["why"]
    if best == ("int8", "nncf"):
        assert "int8+nncf" in record["why"] and bundle.manifest.artifacts["openvino"]["quantizer"] == "nncf"
        assert bundle.manifest.pipeline["quantize"]["openvino"]["method"] == "nncf"
    if record["chosen"] == "int8":
        assert bundle.manifest.artifacts["openvino"]["quantized"]["quantized_in_subgraphs"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "calib.npz"]


def test_no_candidate_passing_is_one_error_and_nothing_written(tmp_path, monkeypatch):
    import edgekit.pipeline as pipeline

    def fails(source, out, options, reporter=SILENT):
        raise ValidationFailed(f"validation failed — openvino: planted for {options.precision}", {})

    monkeypatch.setattr(pipeline, "export_bundle", fails)
    monkeypatch.setattr(precision_auto, "candidate_precisions", lambda isa: [("fp32", None), ("bf16", None)])
    with pytest.raises(EdgekitError, match=r"no candidate passed validation \(fp32: .*planted for fp32; bf16:"):
        export_auto(resolve_source(TOY), tmp_path / "b", ExportOptions(), SILENT)
    assert list(tmp_path.iterdir()) == []


def test_auto_refuses_targets_it_cannot_time_here(tmp_path):
    with pytest.raises(EdgekitError, match="target\\(s\\) tensorrt can't be timed here"):
        export_auto(resolve_source(TOY), tmp_path / "b", ExportOptions(targets=("onnx", "tensorrt")), SILENT)
    assert list(tmp_path.iterdir()) == []
