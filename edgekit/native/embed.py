"""Build-and-run plans for the C++ and C embedding examples (`examples/cpp`, `examples/c`).

`edgekit embed BUNDLE --lang cpp|c` prints the exact commands for this machine: CMake pointed at the
OpenVINO runtime that ships in the `openvino` wheel (headers, libs and `OpenVINOConfig.cmake`), the
build, and the run line that checks the bundle's artifact against its testdata from native code.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError, missing_extra

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# lang -> (example folder, executable, Debian packages, a header each JSON library installs)
LANGS = {
    "cpp": ("cpp", "edgekit_run", ("cmake", "g++", "nlohmann-json3-dev"), "nlohmann/json.hpp"),
    "c": ("c", "edgekit_run_c", ("cmake", "gcc", "libcjson-dev"), "cjson/cJSON.h"),
}
ALIASES = {"c++": "cpp", "cxx": "cpp"}


@dataclass
class EmbedPlan:
    """The commands that build one example and run it on a bundle; `argv` lists, plus shell lines."""

    lang: str
    bundle: Path
    source_dir: Path
    build_dir: Path
    executable: Path
    openvino_dir: Path
    lib_dir: Path
    env: dict = field(default_factory=dict)
    install: list = field(default_factory=list)  # apt-get line when build deps are missing, else empty
    configure: list = field(default_factory=list)
    build: list = field(default_factory=list)
    run: list = field(default_factory=list)

    def commands(self) -> list[str]:
        """Shell lines, in order, ready to paste."""
        env = " ".join(f"{k}={shlex.quote(v)}${{{k}:+:${k}}}" for k, v in self.env.items())
        lines = [shlex.join(self.install)] if self.install else []
        lines += [shlex.join(self.configure), shlex.join(self.build), f"{env} {shlex.join(self.run)}".strip()]
        return lines

    def to_json(self) -> dict:
        return {
            "lang": self.lang, "bundle": str(self.bundle), "source_dir": str(self.source_dir),
            "build_dir": str(self.build_dir), "executable": str(self.executable),
            "openvino_dir": str(self.openvino_dir), "lib_dir": str(self.lib_dir), "env": self.env,
            "install": self.install, "configure": self.configure, "build": self.build, "run": self.run,
            "commands": self.commands(),
        }


def openvino_dirs() -> tuple[Path, Path]:
    """(folder of OpenVINOConfig.cmake, folder of the runtime libraries) of the installed openvino wheel.

    Raises BackendUnavailable when openvino is not installed or ships no CMake package.
    """
    spec = importlib.util.find_spec("openvino")  # locates the package without importing the runtime
    if spec is None or not spec.submodule_search_locations:
        raise missing_extra("openvino", "openvino", "openvino")
    root = Path(next(iter(spec.submodule_search_locations)))
    cmake_dir, lib_dir = root / "cmake", root / "libs"
    if not (cmake_dir / "OpenVINOConfig.cmake").is_file():
        raise EdgekitError(f"{root}: this openvino package has no cmake/OpenVINOConfig.cmake "
                           "(install the pip wheel, or pass -DOpenVINO_DIR from an OpenVINO archive)")
    return cmake_dir, lib_dir


def _library_path_var() -> str:
    return {"darwin": "DYLD_LIBRARY_PATH", "win32": "PATH"}.get(sys.platform, "LD_LIBRARY_PATH")


def _missing_packages(packages: tuple[str, ...], header: str) -> list[str]:
    tools = {"cmake": "cmake", "g++": "g++", "gcc": "gcc"}
    missing = [p for p in packages if p in tools and shutil.which(tools[p]) is None]
    if not any(Path(root, header).is_file() for root in ("/usr/include", "/usr/local/include")):
        missing.append(packages[-1])
    return missing


def embed_plan(bundle_path: str | Path, lang: str, build_dir: str | Path | None = None,
               jobs: int | None = None) -> EmbedPlan:
    """Plan the build of the `lang` example ("cpp" or "c") and its run on `bundle_path`.

    Raises EdgekitError for an unknown language, a path that is not a bundle, a bundle with neither an
    OpenVINO nor an ONNX artifact, or examples/ missing (they ship with the source tree, not the wheel).
    """
    lang = ALIASES.get(lang.lower(), lang.lower())
    if lang not in LANGS:
        raise EdgekitError(f"--lang {lang!r}: choose one of {', '.join(LANGS)}")
    folder, exe_name, packages, header = LANGS[lang]
    bundle = Bundle.load(bundle_path)
    if not {"openvino", "onnx"} & set(bundle.manifest.artifacts):
        raise EdgekitError(f"{bundle_path}: the bundle has no openvino or onnx artifact to embed")
    source_dir = EXAMPLES / folder
    if not (source_dir / "CMakeLists.txt").is_file():
        raise EdgekitError(f"{source_dir}: the {lang} example is not there (it ships with the edgekit source tree)")
    openvino_dir, lib_dir = openvino_dirs()
    build = Path(build_dir or Path("build") / f"embed-{lang}").absolute()
    missing = _missing_packages(packages, header)
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return EmbedPlan(
        lang=lang, bundle=Path(bundle_path).absolute(), source_dir=source_dir, build_dir=build,
        executable=build / exe_name, openvino_dir=openvino_dir, lib_dir=lib_dir,
        # The build tree's RUNPATH already names lib_dir; the variable matters for a copied binary.
        env={_library_path_var(): str(lib_dir)},
        install=["apt-get", "install", "-y", "--no-install-recommends", *missing] if missing else [],
        configure=["cmake", "-S", str(source_dir), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                   f"-DOpenVINO_DIR={openvino_dir}"],
        build=["cmake", "--build", str(build), "--parallel", str(jobs)],
        run=[str(build / exe_name), str(Path(bundle_path).absolute()), "--device", "CPU"],
    )
