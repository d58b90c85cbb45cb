"""`edgekit env`: versions of every backend and whether a GPU is visible — the first thing a bug report
needs. Each backend is probed in isolation so one broken install does not hide the others."""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import subprocess

BACKENDS = {
    "torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript",
    "openvino": "openvino", "nncf": "nncf", "torch-pruning": "torch_pruning",
    "tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx", "polygraphy": "polygraphy", "executorch": "executorch",
}
DISTRIBUTIONS = {"tensorrt-rtx": "tensorrt_rtx_cu12", "torch-pruning": "torch-pruning"}


def backend_versions() -> dict[str, str | None]:
    """Distribution versions without importing the (heavy) packages."""
    out = {}
    for name in BACKENDS:
        try:
            out[name] = importlib.metadata.version(DISTRIBUTIONS.get(name, name))
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def gpu_info() -> dict:
    """GPU visibility via nvidia-smi (no CUDA import needed)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return {"visible": False, "reason": "nvidia-smi not found"}
    try:
        text = subprocess.run([smi, "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"visible": False, "reason": str(exc)}
    gpus = [dict(zip(("name", "compute_capability", "driver"), (p.strip() for p in line.split(","))))
            for line in text.splitlines() if line.strip()]
    return {"visible": bool(gpus), "devices": gpus} if gpus else {"visible": False, "reason": "no GPU listed"}


def cpu_info() -> dict:
    model, flags = platform.processor() or "unknown", []
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and model in ("unknown", ""):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    break
    except OSError:
        pass
    import os

    isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "avx_vnni") if f in flags]
    return {"model": model, "cores": os.cpu_count(), "isa": isa}


def environment() -> dict:
    from edgekit import __version__

    return {
        "edgekit": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_info(),
        "backends": backend_versions(),
        "gpu": gpu_info(),
    }
