"""Polygraphy interop (issue #26): `edgekit testdata BUNDLE --format polygraphy` writes files that
`polygraphy run model.onnx --onnxrt --load-inputs … --load-outputs …` accepts and passes on, and fails on
when an output is off — the device-side check without edgekit (with --trt on a Jetson)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli

pytest.importorskip("polygraphy", reason="polygraphy not installed (pip install 'edgekit[polygraphy]')")
pytestmark = pytest.mark.onnxruntime


def _polygraphy(argv: list[str]) -> subprocess.CompletedProcess:
    exe = shutil.which("polygraphy") or str(Path(sys.executable).with_name("polygraphy"))
    return subprocess.run([exe, *argv[1:]], capture_output=True, text=True, timeout=300)


def _check(bundle: Path, tmp_path: Path) -> dict:
    result = run_cli("testdata", bundle, "--format", "polygraphy", "--out", tmp_path / "pg", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert "polygraphy run" in result.stderr and "--trt" in result.stderr
    run = _polygraphy(data["commands"]["onnxrt"].split())
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "PASSED" in run.stdout + run.stderr
    return data


def test_toy_if_and_loop_pass_polygraphy_onnxrt_and_a_wrong_output_fails(toy_bundle, tmp_path):
    from edgekit.validation.polygraphy_data import write_polygraphy_files
    from edgekit.validation.testdata import read_testdata

    data = _check(toy_bundle, tmp_path)
    samples = read_testdata(toy_bundle)
    assert data["samples"] == len(samples) >= 4
    assert {int(out["exit_index"]) for _, out in samples} == {0, 1}  # both branches of the If are checked
    # the same check on outputs that are off by 1e-2 in one sample must fail
    bad = [(i, {k: (v + np.float32(1e-2) if v.dtype.kind == "f" and n == 2 else v) for k, v in o.items()})
           for n, (i, o) in enumerate(samples)]
    inputs, outputs = write_polygraphy_files(bad, tmp_path / "bad")
    argv = data["commands"]["onnxrt"].split()
    argv[argv.index("--load-outputs") + 1] = str(outputs)
    run = _polygraphy(argv)
    assert run.returncode != 0 and "FAILED" in run.stdout + run.stderr


@pytest.mark.slow
@pytest.mark.openvino
def test_rbqe_nested_ifs_pass_polygraphy_onnxrt(rbqe_bundle, tmp_path):
    from edgekit.validation.testdata import read_testdata

    data = _check(rbqe_bundle, tmp_path)  # the session's zoo:rbqe?width=4 bundle (conftest)
    exits = {int(out["exit_index"]) for _, out in read_testdata(rbqe_bundle)}
    assert data["samples"] >= 5 and exits == {0, 1, 2, 3, 4}


def test_testdata_errors_name_the_problem(toy_bundle, tmp_path):
    result = run_cli("testdata", toy_bundle, "--format", "nvtx", "--out", tmp_path / "x")
    assert result.returncode == 1 and "--format nvtx: not one of polygraphy" in result.stderr
