"""Shared by the tests in tests/embed: the C and C++ examples built once per session with the argv
`edgekit embed` plans (`executables`), a runner that expects exactly one JSON line (`run_example`), and
gcc builds of tests/embed's C helpers, under ASan/UBSan (`build_c_program`)."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT

LANGS = ("cpp", "c")
# Test modules import the `executables` fixture, so each gets its own fixture definition: the build is
# cached here so a session still builds once.
_BUILT: dict[str, Path] = {}


def _check(cmd: list[str], what: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="session")
def executables(toy_bundle) -> dict[str, Path]:
    """Both examples, configured and built once per session with the exact argv `edgekit embed` plans, in
    the folder `edgekit bench --native` uses ($EDGEKIT_CACHE/native: the session's cache), so the CLI
    tests reuse this build."""
    from edgekit.errors import BackendUnavailable
    from edgekit.native.build import build_runner

    if not _BUILT:
        for lang in LANGS:
            start = time.perf_counter()
            try:
                plan = build_runner(toy_bundle, lang)
            except BackendUnavailable as exc:
                pytest.skip(f"{exc.reason} (make cpp-deps)")
            print(f"\n{lang} example configured and built in {time.perf_counter() - start:.1f} s")
            assert plan.executable.is_file()
            _BUILT[lang] = plan.executable
    return dict(_BUILT)


def run_example(executable: Path, bundle: Path, *flags: str) -> tuple[int, dict, str]:
    """Run one example; it must print exactly one JSON line on stdout."""
    proc = subprocess.run([str(executable), str(bundle), *flags], capture_output=True, text=True, timeout=120)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


C_EXAMPLE = ROOT / "examples" / "c"
# float-cast-overflow is not in gcc's `undefined` group; a JSON number cast to int64 is exactly that bug.
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer", "-g", "-O1"]


def build_c_program(sources: list[Path], out: Path, *, cxx: bool = False, sanitize: bool = True) -> Path:
    """Compile `sources` with examples/c/include on the include path (gcc, or g++ -x c++ when `cxx`), with
    the sanitizers unless `sanitize` is false; skips when the compiler or cJSON's header is missing."""
    compiler = "g++" if cxx else "gcc"
    if shutil.which(compiler) is None:
        pytest.skip(f"{compiler} not found (make cpp-deps)")
    cmd = [compiler, *(["-x", "c++", "-std=c++17"] if cxx else ["-std=gnu11"]), "-Wall", "-Wextra",
           *(SANITIZE if sanitize else ["-O2"]), f"-I{C_EXAMPLE / 'include'}", *map(str, sources), "-o", str(out)]
    if any(s.parent == C_EXAMPLE / "src" for s in sources):
        if not Path("/usr/include/cjson/cJSON.h").is_file():
            pytest.skip("cjson/cJSON.h not found: libcjson-dev (make cpp-deps)")
        cmd += ["-lcjson", "-lm"]
    _check(cmd, f"{compiler} {' '.join(s.name for s in sources)}")
    return out


def corrupt_reference(bundle: Path, output: str) -> None:
    """Change sample 0's stored reference for `output` in place."""
    index = json.loads((bundle / "testdata" / "index.json").read_text())
    meta = index["samples"][0]["outputs"][output]
    file = bundle / "testdata" / meta["file"]
    data = np.fromfile(file, dtype=np.dtype(meta["dtype"]).newbyteorder("<"))
    if data.dtype.kind == "f":
        data[len(data) // 2] += 0.5
    else:
        data[0] = 1 - data[0]  # the other exit
    data.tofile(file)


def count_samples(bundle: Path) -> int:
    """How many samples the bundle's testdata holds."""
    return len(json.loads((bundle / "testdata" / "index.json").read_text())["samples"])
