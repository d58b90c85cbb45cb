"""benchmarks/gpu/run_gpu_bench.py: its CPU half (arguments, model specs, ratios and the Markdown table from
synthetic rows, the one-line refusal without a CUDA device, a refused export recorded as a row) and, on a
GPU, the whole run on tiny zoo:toy. No test here asserts a timing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu" / "run_gpu_bench.py"


@pytest.fixture(scope="module")
def gpu_bench():
    spec = importlib.util.spec_from_file_location("run_gpu_bench", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_args_defaults_and_repeats(gpu_bench):
    args = gpu_bench.parse_args([])
    assert args.models is None and not args.tiny and args.precisions == ["fp32", "fp16"]
    assert (args.warmup, args.iters, args.out_dir) == (20, 200, ROOT / "benchmarks" / "results" / "gpu")
    args = gpu_bench.parse_args(["--model", "zoo:toy", "--model", "m.py:build", "--tiny", "--precision", "fp16",
                                 "--precision", "fp16", "--iters", "5", "--out-dir", "x"])
    assert args.models == ["zoo:toy", "m.py:build"] and args.tiny and args.precisions == ["fp16"]
    assert args.iters == 5 and args.out_dir == Path("x")
    for bad in (["--precision", "int8"], ["--iters", "0"]):
        with pytest.raises(SystemExit):
            gpu_bench.parse_args(bad)


def test_model_specs_defaults_and_tiny(gpu_bench):
    zoo = {"toy": {"width": 4, "max_steps": 4}, "storm": {"nf": 4}}
    assert gpu_bench.model_specs(None, False, zoo) == ["zoo:toy", "zoo:storm"]  # rbqe not registered here
    assert gpu_bench.model_specs(None, True, zoo) == ["zoo:toy?width=4,max_steps=4", "zoo:storm?nf=4"]
    # the spec's own parameters win over the tiny ones; non-zoo specs pass through
    assert gpu_bench.model_specs(["zoo:toy?width=8", "m.py:build"], True, zoo) == [
        "zoo:toy?width=8,max_steps=4", "m.py:build"]


def _result(runtime, precision, p50, p90, status="ok", reason=None, validation=None):
    from edgekit.bench.stats import BenchResult

    latency = {"p50": p50, "p90": p90} if p50 is not None else {}
    return BenchResult(runtime, status, precision, reason=reason, latency_ms=latency, validation=validation)


def test_ratios_and_markdown_table(gpu_bench):
    results = [
        _result("torch", "fp32", 4.0, 5.0),
        _result("tensorrt", "fp32", 1.0, 1.5, validation={"status": "passed", "max_rel_l2": 2e-7}),
        _result("tensorrt+io", "fp32", 2.0, 2.5, validation={"status": "passed", "max_rel_l2": 2e-7}),
        _result("tensorrt", "fp16", 0.5, 0.8, validation={"status": "failed", "max_rel_l2": 0.5}),
        _result("tensorrt+io", "fp16", None, None, "unavailable",
                "model.sm90.engine was built for SM90, this GPU is SM86"),
    ]
    rows = gpu_bench.result_rows("zoo:toy", results)
    assert [r["vs_torch"] for r in rows] == [1.0, 0.25, 0.5, 0.125, None]
    assert [r["speedup"] for r in rows] == [1.0, 4.0, 2.0, 8.0, None]
    assert all(r["model"] == "zoo:toy" for r in rows) and json.loads(json.dumps(rows)) == rows
    table = gpu_bench.markdown_table(rows).splitlines()
    assert table[0] == "| " + " | ".join(gpu_bench.COLUMNS) + " |"
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:7]]
    assert cells[0] == ["`zoo:toy`", "torch", "fp32", "ok", "4.000", "5.000", "1.00", "1.0×", "-"]
    assert cells[1] == ["`zoo:toy`", "tensorrt", "fp32", "ok", "1.000", "1.500", "0.25", "4.0×", "passed, rel L2 2.0e-07"]
    assert cells[2][4:8] == ["2.000", "2.500", "0.50", "2.0×"]
    assert cells[3][4:] == ["0.500", "0.800", "0.12", "8.0×", "failed, rel L2 5.0e-01"]
    assert cells[4][3:8] == ["unavailable", "-", "-", "-", "-"]
    # the refusal is quoted exactly under the table
    assert table[-1] == ("- `zoo:toy` tensorrt+io fp16: unavailable: model.sm90.engine was built for SM90, "
                         "this GPU is SM86")


def test_markdown_report_names_the_machine(gpu_bench):
    rows = gpu_bench.result_rows("zoo:toy", [_result("torch", "fp32", 3.0, 4.0)])
    machine = {"cuda": {"device": "NVIDIA H100", "compute_capability": "SM90", "driver": "570.1",
                        "torch_cuda": "12.8"}, "tensorrt_builder": "tensorrt_rtx 1.2", "edgekit": "0.1.0",
               "python": "3.12", "platform": "Linux", "backends": {"torch": "2.13.0", "openvino": None}}
    report = gpu_bench.markdown_report({"machine": machine, "results": rows,
                                        "settings": {"warmup": 3, "iters": 7}})
    assert report.startswith("# TensorRT vs PyTorch eager on NVIDIA H100 (SM90)")
    assert "driver 570.1" in report and "tensorrt_rtx 1.2" in report and "torch 2.13.0" in report
    assert "openvino" not in report and "3 warm-up calls, then 7 timed calls" in report
    assert "| `zoo:toy` | torch | fp32 | ok | 3.000 | 4.000 | 1.00 | 1.0× | - |" in report


def test_no_cuda_device_is_one_clear_line(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # hides any GPU from the CUDA driver
    result = subprocess.run([sys.executable, str(SCRIPT), "--out-dir", str(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == ("run_gpu_bench: no CUDA device visible (the CUDA driver reports none); "
                                     "this benchmark needs an NVIDIA GPU")
    assert result.stdout == "" and not list(tmp_path.iterdir())


def test_refused_export_and_torch_are_recorded_rows(gpu_bench, tmp_path):
    """Without a GPU the `current` arch is refused (or TensorRT is missing) and torch cannot move to CUDA:
    each becomes a row with the exact message, and the model's benchmark still completes."""
    from edgekit.export import trt_compat
    from edgekit.ui import SILENT

    if trt_compat.cuda_device_available():
        pytest.skip("a CUDA device is visible: the refusals under test would not happen")
    args = gpu_bench.parse_args(["--precision", "fp32", "--iters", "1", "--warmup", "0", "--samples", "1"])
    rows = gpu_bench.bench_model("zoo:toy?width=4,max_steps=4", args, tmp_path, SILENT)
    assert [(r.runtime, r.precision, r.status) for r in rows] == [
        ("torch", "fp32", "failed"), ("tensorrt", "fp32", "failed"), ("tensorrt+io", "fp32", "failed")]
    assert rows[0].reason and not rows[0].latency_ms
    assert rows[1].reason == rows[2].reason and rows[1].reason.startswith("export: ")
    assert "no CUDA device" in rows[1].reason or "not installed" in rows[1].reason


@pytest.mark.gpu
@pytest.mark.tensorrt
def test_end_to_end_tiny_toy_on_gpu(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--model", "zoo:toy", "--tiny", "--warmup", "3",
                             "--iters", "20", "--out-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode in (0, 1), result.stderr
    [json_path] = tmp_path.glob("gpu_bench_sm*.json")
    payload = json.loads(json_path.read_text())
    assert json_path.with_suffix(".md").read_text().startswith("# TensorRT vs PyTorch eager on ")
    assert payload["machine"]["cuda"]["compute_capability"].startswith("SM")
    rows = {(r["runtime"], r["precision"]): r for r in payload["results"]}
    assert set(rows) == {("torch", "fp32"), ("tensorrt", "fp32"), ("tensorrt+io", "fp32"),
                         ("tensorrt", "fp16"), ("tensorrt+io", "fp16")}
    assert rows["torch", "fp32"]["status"] == "ok" and rows["torch", "fp32"]["vs_torch"] == 1.0
    # on a GPU every row must run: a TensorRT row that fails, however well it says why, fails this test
    for row in payload["results"]:
        assert row["status"] == "ok", row
        assert row["latency_ms"]["p50"] > 0 and row["iters"] == 20 and row["clock"] == "cuda_events"
        assert row["vs_torch"] == pytest.approx(row["latency_ms"]["p50"] / rows["torch", "fp32"]["latency_ms"]["p50"])
        if row["runtime"].startswith("tensorrt"):
            assert row["validation"]["status"] == "passed", row["validation"]
            assert row["validation"]["samples"] >= 1
    assert result.returncode == 0, result.stderr
    assert "| model | runtime |" in result.stdout
