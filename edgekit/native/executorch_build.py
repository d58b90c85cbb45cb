"""Build the ExecuTorch C++ runner (`examples/executorch`, edgekit_et_run) against the runtime that ships in
the `executorch` pip wheel: its headers, libexecutorch.so (with the Module, data-loader and tensor
extensions), the optimized kernels, the XNNPACK delegate and its CMake package. The runner then checks a
bundle's model.pte against its testdata from native code, as the OpenVINO runner (native/embed.py) does.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
from pathlib import Path

from edgekit.errors import BackendUnavailable, EdgekitError, missing_extra
from edgekit.native.build import _check
from edgekit.native.embed import EXAMPLES

EXECUTABLE = "edgekit_et_run"
# What the runner links from the wheel's lib/ (examples/executorch/CMakeLists.txt names the same four).
LIBRARIES = ("libexecutorch.so", "libexecutorch_kernels_optimized.so", "libexecutorch_backend_xnnpack.so",
             "libexecutorch_threadpool.so")
JSON_HEADER = "nlohmann/json.hpp"  # Debian/Ubuntu: nlohmann-json3-dev


def executorch_dirs() -> tuple[Path, Path]:
    """(folder of executorch-config.cmake, folder of the runtime libraries) of the installed executorch wheel.

    Located without importing executorch (that loads torch). Raises BackendUnavailable when executorch is
    not installed or this wheel lacks the CMake package or a library the runner links.
    """
    spec = importlib.util.find_spec("executorch")
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra("executorch C++ runner", "executorch", "executorch")
    root = Path(next(iter(spec.submodule_search_locations)))
    cmake_dir, lib_dir = root / "share" / "cmake", root / "lib"
    if not (cmake_dir / "executorch-config.cmake").is_file():
        raise BackendUnavailable("executorch C++ runner", f"{cmake_dir}/executorch-config.cmake not found: this "
                                 "executorch package ships no CMake package for C++ builds")
    missing = [name for name in LIBRARIES if not (lib_dir / name).is_file()]
    if missing:
        raise BackendUnavailable("executorch C++ runner", f"this executorch package ships no {', '.join(missing)} "
                                 f"in {lib_dir} (the Linux pip wheels do)")
    return cmake_dir, lib_dir


def _missing_tools() -> list[str]:
    """Debian packages for what is missing of cmake, a C++ compiler and nlohmann-json's header."""
    missing = [] if shutil.which("cmake") else ["cmake"]
    if not (shutil.which("c++") or shutil.which("g++")):
        missing.append("g++")
    if not any(Path(root, JSON_HEADER).is_file() for root in ("/usr/include", "/usr/local/include")):
        missing.append("nlohmann-json3-dev")
    return missing


def build_et_runner(build_dir: str | Path, jobs: int | None = None) -> Path:
    """Configure (first time only) and build edgekit_et_run in `build_dir`; returns the executable's path.

    A second call on the same folder only re-runs the incremental build. Raises BackendUnavailable when
    cmake, a C++ compiler, nlohmann-json or the executorch wheel (or its CMake package and libraries) is
    missing, with the install line as the reason, and EdgekitError when CMake fails (its last lines are the
    message) or the sources are not there (they ship with the edgekit source tree, not the wheel).
    """
    missing = _missing_tools()
    if missing:
        install = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        raise BackendUnavailable("executorch C++ runner", f"missing build dependencies: {shlex.join(install)}")
    cmake_dir, _ = executorch_dirs()
    source_dir = EXAMPLES / "executorch"
    if not (source_dir / "CMakeLists.txt").is_file():
        raise EdgekitError(f"{source_dir}: the ExecuTorch example is not there (it ships with the edgekit source tree)")
    build = Path(build_dir).absolute()
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not (build / "CMakeCache.txt").is_file():
        _check(["cmake", "-S", str(source_dir), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                f"-Dexecutorch_DIR={cmake_dir}"], "cmake configure (executorch runner)")
    _check(["cmake", "--build", str(build), "--parallel", str(jobs)], "cmake build (executorch runner)")
    executable = build / EXECUTABLE
    if not executable.is_file():
        raise EdgekitError(f"{executable}: the executorch build finished without the runner")
    return executable
