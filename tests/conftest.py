"""Shared fixtures and the marker → skip logic: a test marked for a backend that is not installed,
or for a GPU that is not there, is skipped with the reason printed (`-ra`)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The export cache (edgekit/export/cache.py) of a test run: a fresh folder per session, never the user's
# ~/.cache, so no result depends on an earlier run; CLI subprocesses (run_cli) inherit it. Tests of the cache
# itself point EDGEKIT_CACHE at their tmp_path.
SESSION_CACHE = tempfile.mkdtemp(prefix="edgekit-test-cache-")
os.environ["EDGEKIT_CACHE"] = SESSION_CACHE


def pytest_unconfigure(config):
    shutil.rmtree(SESSION_CACHE, ignore_errors=True)


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _cuda_reason() -> str | None:
    from edgekit.env import gpu_info

    info = gpu_info()
    return None if info["visible"] else f"no CUDA device ({info['reason']})"


SKIPS = {
    "openvino": lambda: None if _has("openvino") else "openvino not installed (pip install 'edgekit[openvino]')",
    "onnxruntime": lambda: None if _has("onnxruntime") else "onnxruntime not installed",
    "tensorrt": lambda: None if (_has("tensorrt") or _has("tensorrt_rtx")) else
    "neither tensorrt nor tensorrt_rtx installed (pip install 'edgekit[tensorrt]')",
    "quantize": lambda: None if _has("nncf") else "nncf not installed (pip install 'edgekit[quantize]')",
    "prune": lambda: None if _has("torch_pruning") else "torch-pruning not installed (pip install 'edgekit[prune]')",
    "ray": lambda: None if _has("ray") else "ray not installed (pip install 'edgekit[sweep]')",
    "executorch": lambda: None if _has("executorch") else "executorch not installed (pip install 'edgekit[executorch]')",
    "gpu": _cuda_reason,
    "cpp": lambda: None if shutil.which("cmake") and (shutil.which("c++") or shutil.which("g++"))
    else "cmake or a C++ compiler not found",
}


def pytest_collection_modifyitems(config, items):
    reasons: dict[str, str | None] = {}
    for item in items:
        for marker in item.iter_markers():
            if marker.name in SKIPS:
                if marker.name not in reasons:
                    reasons[marker.name] = SKIPS[marker.name]()
                if reasons[marker.name]:
                    item.add_marker(pytest.mark.skip(reason=reasons[marker.name]))


def run_cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `edgekit ARGS` as a user would (own process: real exit codes, stdout/stderr separate)."""
    return subprocess.run([sys.executable, "-m", "edgekit.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="session")
def toy_bundle(tmp_path_factory) -> Path:
    """zoo:toy (tiny) exported once to ONNX + OpenVINO, validated; shared by read-only tests."""
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    out = tmp_path_factory.mktemp("bundles") / "toy"
    export_bundle(resolve_source("zoo:toy?width=4,max_steps=4"), out, ExportOptions(targets=("onnx", "openvino")))
    return out


@pytest.fixture(scope="session")
def et_toy_bundle(tmp_path_factory) -> Path:
    """zoo:toy (tiny) exported with `edgekit export --target onnx --target executorch`, as a user would;
    shared by the ExecuTorch export tests and the C++ runner's tests."""
    out = tmp_path_factory.mktemp("et-bundle") / "toy"
    result = run_cli("export", "zoo:toy?width=4,max_steps=4", "--target", "onnx", "--target", "executorch",
                     "--out", out, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def bundle_copy(bundle: Path, tmp_path: Path) -> Path:
    """A private copy of a shared bundle, for a test that modifies it."""
    dst = tmp_path / bundle.name
    shutil.copytree(bundle, dst)
    return dst


@pytest.fixture
def toy_bundle_copy(toy_bundle, tmp_path) -> Path:
    """A private copy of the toy bundle for tests that modify it."""
    return bundle_copy(toy_bundle, tmp_path)


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


@pytest.fixture(scope="session")
def rbqe_bundle(tmp_path_factory):
    """zoo:rbqe (tiny, random) exported once to ONNX + OpenVINO (+ a TensorRT engine where it builds);
    shared by the RBQE export tests and the tuning tests."""
    out = tmp_path_factory.mktemp("rbqe") / "rbqe"
    targets = ["--target", "onnx", "--target", "openvino"]
    from edgekit.export.trt_compat import cuda_device_available, import_tensorrt, names_archs

    try:
        named = names_archs(import_tensorrt())
    except Exception:  # no TensorRT here: the other targets are still checked
        named = False
    if named and not cuda_device_available():
        # TensorRT-RTX 1.7.1's builder fails on RBQE's nested If with any shape *range* (internal Myelin
        # error "CHECK(i < op->input_size())"); without --trt-shape, export falls back to the fixed example
        # shape and says so in the manifest (asserted in tests/zoo/test_rbqe_export.py).
        targets += ["--target", "tensorrt", "--trt-arch", "sm86"]
    result = run_cli("export", "zoo:rbqe?width=4,weights=none", *targets, "--out", out, "--json", timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def storm_bundle(tmp_path_factory):
    """zoo:storm (tiny, random) exported once to ONNX + OpenVINO, validated at N = 1, 2, 4."""
    out = tmp_path_factory.mktemp("storm") / "storm"
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    export_bundle(resolve_source("zoo:storm?nf=4,levels=2,max_steps=4,weights=none"), out, ExportOptions())
    return out
