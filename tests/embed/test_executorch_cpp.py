"""examples/executorch: edgekit_et_run, built against the executorch wheel by build_et_runner, runs a bundle's
model.pte through ExecuTorch's C++ Module API; it must reproduce the testdata (outputs and exit paths) and
fail with a non-zero exit when a reference disagrees or the program cannot load."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from conftest import bundle_copy, manifest_of
from native_build import corrupt_reference, count_samples, run_example

pytestmark = [pytest.mark.cpp, pytest.mark.executorch]


@pytest.fixture(scope="module")
def et_runner(tmp_path_factory) -> Path:
    """edgekit_et_run, configured and built once for this module (about 10 s on 8 cores)."""
    from edgekit.errors import BackendUnavailable
    from edgekit.native.executorch_build import build_et_runner

    start = time.perf_counter()
    try:
        executable = build_et_runner(tmp_path_factory.mktemp("et-build"))
    except BackendUnavailable as exc:
        pytest.skip(exc.reason)
    print(f"\nexecutorch runner configured and built in {time.perf_counter() - start:.1f} s")
    return executable


@pytest.fixture
def et_bundle(et_toy_bundle) -> Path:
    """zoo:toy (tiny) exported with `edgekit export --target executorch` (the session's, from conftest)."""
    assert manifest_of(et_toy_bundle)["artifacts"]["executorch"]["path"] == "model.pte"
    return et_toy_bundle


@pytest.fixture
def et_bundle_copy(et_bundle, tmp_path) -> Path:
    return bundle_copy(et_bundle, tmp_path)


def test_et_runner_reproduces_reference_outputs_and_paths(et_runner, et_bundle):
    rc, report, stderr = run_example(et_runner, et_bundle)
    assert rc == 0, (report, stderr)
    assert report["status"] == "passed" and report["mismatches"] == 0
    assert report["runtime"] == "executorch" and report["api"] == "c++" and report["device"] == "CPU"
    assert report["model"] == "model.pte" and report["verified"] is True
    assert report["samples"] == count_samples(et_bundle) >= 4
    assert report["max_abs_err"] <= 1e-4
    # Every branch and step count went through the native program, as in the Python validation.
    assert report["paths"] == {"num_steps": [1, 2, 3, 4], "exit_index": [0, 1]}
    validation = manifest_of(et_bundle).get("validation", {}).get("executorch")
    if validation and validation.get("paths"):
        assert report["paths"] == validation["paths"]


@pytest.mark.parametrize("output, expected", [
    ("output", "sample 0 output 'output': 1/3072 elements out of tolerance"),
    ("exit_index", "sample 0 output 'exit_index': got "),
])
def test_corrupted_reference_is_a_mismatch_and_a_failing_exit(output, expected, et_runner, et_bundle_copy):
    corrupt_reference(et_bundle_copy, output)
    rc, report, stderr = run_example(et_runner, et_bundle_copy)
    assert rc == 1
    assert report["status"] == "failed" and report["mismatches"] == 1
    assert report["samples"] == count_samples(et_bundle_copy)
    assert len(report["failures"]) == 1 and report["failures"][0].startswith(expected), report["failures"]
    assert "mismatch: sample 0" in stderr


def test_load_errors_exit_2_with_one_error_line(et_runner, et_bundle_copy):
    pte = et_bundle_copy / "model.pte"
    data = bytearray(pte.read_bytes())
    data[4:8] = b"XXXX"  # the flatbuffer's file identifier ("ET12")
    pte.write_bytes(bytes(data))
    rc, report, stderr = run_example(et_runner, et_bundle_copy)
    assert rc == 2 and report["status"] == "error" and "model.pte: sha256 mismatch" in report["error"]
    # Unverified, ExecuTorch itself refuses it; its log is folded into the one error line.
    rc, report, stderr = run_example(et_runner, et_bundle_copy, "--no-verify")
    assert rc == 2 and "cannot load the program: Error::InvalidProgram" in report["error"], report
    assert stderr.strip().splitlines() == [f"error: {report['error']}"]
    manifest = manifest_of(et_bundle_copy)
    del manifest["artifacts"]["executorch"]
    (et_bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    rc, report, _ = run_example(et_runner, et_bundle_copy)
    assert rc == 2 and "the bundle has no executorch artifact" in report["error"]
