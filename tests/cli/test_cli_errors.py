"""Bad input: one clear line naming the thing at fault, exit code ≠ 0, no traceback, no bundle."""

from __future__ import annotations

import textwrap

import pytest

from conftest import run_cli


def _fails_cleanly(result, *needles, out=None):
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1, result.stderr
    for needle in needles:
        assert needle in error_lines[0], error_lines[0]
    if out is not None:
        assert not out.exists(), "a failed export must not leave a bundle"
        assert not list(out.parent.glob(f".{out.name}.partial-*")), "staging dir left behind"
    return error_lines[0]


def test_nonexistent_file(tmp_path):
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", tmp_path / "nope.py:build", "--out", out), "nope.py does not exist", out=out)


def test_file_without_the_named_factory(tmp_path):
    (tmp_path / "m.py").write_text("def make():\n    pass\n")
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", f"{tmp_path / 'm.py'}:build", "--out", out), "has no 'build'", "make", out=out)


def test_factory_raising(tmp_path):
    (tmp_path / "m.py").write_text("def build():\n    raise ValueError('checkpoint path not set')\n")
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", f"{tmp_path / 'm.py'}:build", "--out", out),
                   "factory raised ValueError: checkpoint path not set", out=out)


def test_wrong_input_syntax(tmp_path):
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", "zoo:toy", "--input", "image=1x3x8x8", "--out", out),
                   "--input 'image=1x3x8x8'", "NAME:SHAPE", out=out)


def test_missing_inputs_are_asked_for(tmp_path):
    (tmp_path / "m.py").write_text("import torch\ndef build():\n    return torch.nn.Linear(3, 2)\n")
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", f"{tmp_path / 'm.py'}:build", "--out", out), "pass --input", "input", out=out)


@pytest.mark.parametrize("content", [b"this is not onnx at all", "truncated"])
def test_truncated_or_non_onnx_file(tmp_path, toy_bundle, content):
    bad = tmp_path / "bad.onnx"
    if content == "truncated":
        data = (toy_bundle / "model.onnx").read_bytes()
        content = data[: len(data) // 2]
    bad.write_bytes(content)
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", bad, "--target", "openvino", "--out", out), "bad.onnx", "not a valid ONNX", out=out)


def test_existing_output_dir_is_refused_without_force(tmp_path, toy_bundle):
    result = run_cli("export", "zoo:toy", "--out", toy_bundle)
    _fails_cleanly(result, "already exists", "--force")


def test_unknown_target_lists_valid_ones(tmp_path):
    out = tmp_path / "b"
    _fails_cleanly(run_cli("export", "zoo:toy", "--target", "tflite", "--out", out),
                   "unknown target 'tflite'", "valid: executorch, onnx, openvino, ort-mobile, tensorrt", out=out)


def test_unknown_zoo_model_and_spec_kind(tmp_path):
    _fails_cleanly(run_cli("export", "zoo:resnet", "--out", tmp_path / "b"), "unknown zoo model 'resnet'", "toy")
    _fails_cleanly(run_cli("export", "mymodel", "--out", tmp_path / "b"), "not a model spec")


def test_export_failure_shows_the_reason_and_the_log(tmp_path):
    (tmp_path / "m.py").write_text(textwrap.dedent('''
        import torch
        class DataDependent(torch.nn.Module):
            def forward(self, x):
                if x.sum() > 0:  # Python branching on data: torch.export cannot capture it
                    return x * 2
                return x - 1
        def build():
            return DataDependent(), (torch.ones(2, 3),)
    '''))
    out = tmp_path / "b"
    line = _fails_cleanly(run_cli("export", f"{tmp_path / 'm.py'}:build", "--out", out),
                          "torch.export failed", "full log:", out=out)
    log = line.rsplit("full log: ", 1)[1].rstrip(")")
    assert "Traceback" in open(log).read(), "the full log keeps the exporter's traceback"


def test_bad_bundle_path_for_validate_bench_inspect(tmp_path):
    for command in ("validate", "bench", "inspect"):
        _fails_cleanly(run_cli(command, tmp_path / "missing"), "missing")
