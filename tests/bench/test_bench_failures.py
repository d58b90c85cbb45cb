"""`edgekit bench` when rows go wrong (issue #22): a hung row times out, a crashed child is a failed row with
its signal, a failed row makes the exit code 1 after every row is printed and in --json, a tampered artifact
is refused before any row, and --seconds bounds each row by time."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import pytest

from conftest import run_cli

pytestmark = [pytest.mark.onnxruntime, pytest.mark.openvino]


def test_a_row_past_its_timeout_fails_with_the_reason_and_exit_1(toy_bundle):
    # 10^8 forced calls cannot finish in 0.3 s: the row is a hung one, whatever this machine's speed
    result = run_cli("bench", toy_bundle, "-r", "onnxruntime", "--iters", "100000000", "--timeout", "0.3", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    data = json.loads(result.stdout)  # --json still carries every row
    (row,) = data["results"]
    assert row["status"] == "failed" and row["reason"].startswith("timed out after 0.3 s")
    assert data["settings"]["timeout_s"] == 0.3 and data["settings"]["verified"] is True
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: 1 of 1 benchmark rows failed — onnxruntime fp32: timed out after 0.3 s: the benchmark "
                      "worker hung or was too slow (--timeout S)"]


def test_a_crashed_child_is_a_failed_row_naming_its_signal(toy_bundle):
    from edgekit.bench.parent import measure_in_child
    from edgekit.bench.plan import bench_feed
    from edgekit.bench.stats import BenchCase, BenchSettings
    from edgekit.bundle import Bundle

    def kill_it(kind, value):
        if kind == "phase":  # the child is alive and loading: kill it as the OOM killer would
            for child in multiprocessing.active_children():
                if child.name == "edgekit-bench":
                    os.kill(child.pid, signal.SIGKILL)

    bundle = Bundle.load(toy_bundle)
    result = measure_in_child(toy_bundle, BenchCase("onnxruntime", "fp32"), BenchSettings(0, 2),
                              bench_feed(bundle, {}, None), kill_it)
    assert result.status == "failed" and result.reason == "the benchmark worker was killed by SIGKILL before reporting"


def test_failed_rows_exit_1_after_every_row_is_reported(toy_bundle_copy):
    data = bytearray((toy_bundle_copy / "model.bin").read_bytes())
    data[: len(data) // 2] = b"\xff" * (len(data) // 2)  # weights OpenVINO cannot use as they are
    (toy_bundle_copy / "model.bin").write_bytes(bytes(data[: len(data) // 2]))
    refused = run_cli("bench", toy_bundle_copy, "-r", "onnxruntime,openvino", "--iters", "2", "--json")
    assert refused.returncode == 1 and refused.stdout == ""  # verified before any row: one error
    assert "model.bin: openvino weights does not match the manifest" in refused.stderr
    result = run_cli("bench", toy_bundle_copy, "-r", "onnxruntime,openvino", "--iters", "2", "--warmup", "0",
                     "--precision", "fp32", "--no-verify", "--json")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    data = json.loads(result.stdout)
    status = {(r["runtime"], r["mode"]): r["status"] for r in data["results"]}
    assert status[("onnxruntime", "latency")] == "ok"
    assert status[("openvino", "latency")] == "failed" and data["settings"]["verified"] is False
    assert "benchmark rows failed — openvino fp32: openvino:" in result.stderr.splitlines()[-1]


def test_seconds_bounds_each_row_by_time(toy_bundle):
    result = run_cli("bench", toy_bundle, "-r", "onnxruntime", "--seconds", "0.5", "--warmup", "0", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    (row,) = data["results"]
    assert data["settings"]["seconds"] == 0.5 and data["settings"]["iters"] is None
    timed_s = row["iters"] * row["latency_ms"]["mean"] / 1000
    # the calls stop once the budget is spent: at most one call past it, and far more than a forced count
    assert timed_s <= 0.5 + row["latency_ms"]["max"] / 1000 + 1e-3
    assert row["iters"] > 10 and timed_s > 0.05
