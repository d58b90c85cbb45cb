"""Shared fixtures and the marker → skip logic: a test marked for a backend that is not installed,
or for a GPU that is not there, is skipped with the reason printed (`-ra`)."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


@pytest.fixture
def toy_bundle_copy(toy_bundle, tmp_path) -> Path:
    """A private copy of the toy bundle for tests that modify it."""
    dst = tmp_path / "toy"
    shutil.copytree(toy_bundle, dst)
    return dst


def manifest_of(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())
