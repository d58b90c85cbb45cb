"""sweep.toml parsing: every mistake is one `error:` line naming the file and key, exit 1, no traceback."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from edgekit.bundle import Bundle
from edgekit.sweep.config import ConfigError, load_config
from conftest import run_cli
from sweep_helpers import TOY, write_sweep


def test_cells_are_the_product_of_the_axes(tmp_path):
    path = write_sweep(tmp_path, 'precision = ["fp32", "int8"]\nruntime = ["onnxruntime", "openvino"]\n'
                                 'device = ["local", "orin-nx"]\n[axes.feeds]\nnum_steps = [1, 4]')
    config = load_config(path)
    cells = config.cells()
    assert len(cells) == 2 * 2 * 2 * 2
    assert {c.device for c in cells} == {"local", "orin-nx"}
    assert {dict(c.feeds)["num_steps"] for c in cells} == {1, 4}
    assert config.targets() == ("onnx", "openvino")  # runtimes share one export with both artifacts
    assert config.cache == (tmp_path / "cache").resolve()
    assert config.export.calib == f"{tmp_path.resolve() / 'calib.py'}:feeds"  # relative to the config file


@pytest.mark.parametrize("axes, message", [
    ('colour = ["red"]', "[axes]: unknown axis 'colour'"),
    ("density = [2.0]", "axes.density = 2.0: a density is a fraction of channels kept, in (0, 1]"),
    ('precision = ["int4"]', "axes.precision = 'int4': expected one of fp32, fp16, bf16, int8, mixed, auto"),
    ('precision = ["mixed"]\nruntime = ["onnxruntime"]', "axes.precision = 'mixed': a precision of the openvino"),
    ('precision = ["auto"]\nruntime = ["openvino", "tensorrt"]', "runtime tensorrt can't be timed that way"),
    ('runtime = ["tflite"]', "axes.runtime = 'tflite': expected one of"),
    ('shape = ["1x3xHx32"]', "axes.shape = '1x3xHx32': expected a shape"),
    ('device = ["orin nx"]', "axes.device = 'orin nx': a device label"),
    ("precision = []", "axes.precision is empty"),
])
def test_bad_axes_are_named(tmp_path, axes, message):
    with pytest.raises(ConfigError) as info:
        load_config(write_sweep(tmp_path, axes))
    assert message in str(info.value)
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("axes, quantizer, message", [
    ('precision = ["int8"]\nruntime = ["openvino"]', "tflite", "export.quantizer = 'tflite': expected one of"),
    ('precision = ["fp32"]\nruntime = ["openvino"]', "nncf", "add int8 or mixed to [axes] precision"),
])
def test_bad_quantizer_is_named(tmp_path, axes, quantizer, message):
    path = write_sweep(tmp_path, axes)
    path.write_text(path.read_text().replace("[export]\n", f'[export]\nquantizer = "{quantizer}"\n'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)


def test_an_auto_cell_exports_the_fastest_validated_candidate(tmp_path, monkeypatch):
    from edgekit.export import precision_auto
    from edgekit.sweep.stages import export_stage

    monkeypatch.setattr(precision_auto, "candidate_precisions", lambda isa: [("fp32", None), ("int8", None)])
    path = write_sweep(tmp_path, 'precision = ["auto"]\nruntime = ["onnxruntime", "openvino"]')
    config = load_config(path)
    payload = {"source": config.source, "precision": "auto", "targets": list(config.targets()), **asdict(config.export)}
    result = export_stage(payload, tmp_path / "stage")
    record = Bundle.load(result["bundle"]).manifest.pipeline["precision_auto"]
    assert [c["precision"] for c in record["candidates"]][:2] == ["fp32", "int8"]
    passed = {c["precision"]: c["ms"] for c in record["candidates"] if c["status"] == "passed"}
    assert record["chosen"] == min(passed, key=passed.get)
    assert result["validation"]["openvino"]["status"] == "passed"


def test_bad_settings_are_named(tmp_path):
    path = write_sweep(tmp_path, "", extra="")
    path.write_text(path.read_text().replace("iters = 5", "iters = 0"))
    with pytest.raises(ConfigError, match=r"bench.iters = 0: expected a non-negative integer"):
        load_config(path)
    path.write_text(path.read_text().replace("budget = 0.5", 'budget = "small"'))
    with pytest.raises(ConfigError, match=r"metric.budget = 'small'"):
        load_config(path)
    path.write_text(path.read_text().replace('budget = "small"', "budget = 0.5").replace("iters = 0", "iters = 5")
                    + '\n[prune]\nallocation = "greedy"\n')
    with pytest.raises(ConfigError, match=r"prune.allocation = 'greedy': expected one of uniform, spatial"):
        load_config(path)
    path.write_text(path.read_text().replace('"greedy"', '"spatial"'))
    assert load_config(path).prune.allocation == "spatial"


def _assert_one_error_line(proc, *fragments):
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr.replace("\n", ""), proc.stderr
    assert proc.stdout == ""


def test_cli_missing_file(tmp_path):
    _assert_one_error_line(run_cli("sweep", tmp_path / "nope.toml", "--json"), "nope.toml: sweep config not found")


def test_cli_unknown_axis(tmp_path):
    path = write_sweep(tmp_path, 'colour = ["red"]')
    _assert_one_error_line(run_cli("sweep", path, "--json"), "unknown axis 'colour'", "sweep.toml")


def test_cli_bad_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text(f'source = "{TOY}"\n[axes\n')
    _assert_one_error_line(run_cli("sweep", path), "broken.toml: not valid TOML")


def test_cli_feed_that_is_not_a_scalar_input(tmp_path):
    path = write_sweep(tmp_path, "[axes.feeds]\nthreshhold = [0.5]")
    _assert_one_error_line(run_cli("sweep", path, "--json"), "axes.feeds.threshhold: not a scalar input",
                           "threshold, num_steps")
