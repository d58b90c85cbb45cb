"""`edgekit pack`: a bundle and the native runner that checks and benchmarks it, as one self-contained
folder or tarball for a device with no Python: the runner (RUNPATH `$ORIGIN/lib`), the OpenVINO shared
libraries, plugin and frontend it loads (from the `openvino` wheel), the model files, manifest and
testdata, and `run.sh`. Linux only (libraries are resolved with `ldd`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.bundle import Bundle, reap_stale
from edgekit.errors import EdgekitError
from edgekit.integrity import contained_path

RUNTIMES = ("openvino",)
# Part of every Linux userland the runner targets (glibc, the C++ runtime); everything else travels.
SYSTEM_LIBS = re.compile(r"^(linux-vdso|linux-gate|ld-linux.*|libc|libm|libdl|libpthread|librt|libgcc_s|libstdc\+\+)"
                         r"\.so")
# Loaded by name at run time, so ldd cannot see them: the device plugin, the model's frontend, TBB's binder.
PLUGINS = {"CPU": "libopenvino_intel_cpu_plugin.so", "GPU": "libopenvino_intel_gpu_plugin.so",
           "NPU": "libopenvino_intel_npu_plugin.so"}
FRONTENDS = {".xml": "libopenvino_ir_frontend.so", ".onnx": "libopenvino_onnx_frontend.so"}
OPTIONAL = ("libtbbbind_2_5.so", "libhwloc.so")

RUN_SH = """#!/bin/sh
# edgekit pack: check {name} against its testdata, then benchmark it, with nothing but this folder
# (no Python, no LD_LIBRARY_PATH: the runner's RUNPATH is $ORIGIN/lib). Prints one JSON document.
# usage: ./run.sh [--iters N | --seconds S] [--warmup N] [--threads N] [--sample K] [--feed NAME=VALUE]...
case "$0" in */*) here="${{0%/*}}" ;; *) here=. ;; esac
exec "$here/{runner}" "$here/bundle" --device {device} --bench "$@"
"""


@dataclass
class PackResult:
    out: Path
    lang: str
    runner: str
    files: list[str] = field(default_factory=list)  # relative to the pack's root folder
    libs: list[str] = field(default_factory=list)
    size_bytes: int = 0  # the tarball, or the folder's files
    unpacked_bytes: int = 0

    def to_json(self) -> dict:
        return {"out": str(self.out), "lang": self.lang, "runner": self.runner, "files": self.files,
                "libs": self.libs, "size_bytes": self.size_bytes, "unpacked_bytes": self.unpacked_bytes,
                "run": "./run.sh"}


def is_tarball(path: Path) -> bool:
    return path.name.endswith((".tar.gz", ".tgz"))


def pack_bundle(bundle_path, lang: str = "cpp", runtime: str = "openvino", out: Path | None = None,
                device: str = "CPU", force: bool = False) -> PackResult:
    """Build the `lang` runner with RUNPATH `$ORIGIN/lib` and write the pack to `out` (a folder, or a
    tarball when it ends in .tar.gz/.tgz; default `<bundle>-<runtime>-<lang>.tar.gz`), atomically.

    Raises EdgekitError for a runtime other than openvino, a bundle that fails its integrity check, an `out`
    that exists (without `force`), or a library ldd cannot resolve.
    """
    from edgekit.native.build import build_runner
    from edgekit.native.embed import ALIASES, LANGS

    lang = ALIASES.get(lang.lower(), lang.lower())
    if lang not in LANGS:
        raise EdgekitError(f"--lang {lang!r}: choose one of {', '.join(LANGS)}")
    if runtime not in RUNTIMES:
        raise EdgekitError(f"--runtime {runtime}: edgekit pack ships {', '.join(RUNTIMES)} (a TensorRT device has "
                           "its own libraries: build examples/cpp/tensorrt there)")
    if device.split(".")[0] not in PLUGINS:
        raise EdgekitError(f"--device {device}: choose one of {', '.join(PLUGINS)}")
    bundle = Bundle.load(bundle_path, verify=True)
    name = Path(bundle_path).resolve().name
    out = Path(out or f"{name}-{runtime}-{lang}.tar.gz").absolute()
    if (out.exists() or out.is_symlink()) and not force:
        raise EdgekitError(f"{out}: already exists (--force replaces it)")
    plan = build_runner(bundle_path, lang, packed=True)
    model = _model_files(bundle)
    out.parent.mkdir(parents=True, exist_ok=True)
    reap_stale(out)  # staging dirs of packs that were killed (DESIGN.md §8), named as bundle staging is
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent) as tmp:
        root = Path(tmp) / out.name.removesuffix(".tar.gz").removesuffix(".tgz")
        (root / "lib").mkdir(parents=True)
        shutil.copy2(plan.executable, root / plan.executable.name)
        libs = _copy_libs(plan.executable, plan.lib_dir, root / "lib", device, Path(model[0]).suffix)
        for rel in [*model, "manifest.json", *_testdata_files(bundle)]:
            (root / "bundle" / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(contained_path(bundle.path, rel, "a file to pack"), root / "bundle" / rel)
        run_sh = root / "run.sh"
        run_sh.write_text(RUN_SH.format(name=name, runner=plan.executable.name, device=device))
        run_sh.chmod(0o755)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        unpacked = sum((root / f).stat().st_size for f in files)
        result = PackResult(out, plan.lang, plan.executable.name, files, libs, unpacked_bytes=unpacked)
        if is_tarball(out):
            staged = Path(tmp) / "pack.tar.gz"
            with tarfile.open(staged, "w:gz", compresslevel=6) as tar:
                tar.add(root, arcname=root.name)
        else:
            staged = root
        if force and (out.exists() or out.is_symlink()):
            shutil.rmtree(out) if out.is_dir() and not out.is_symlink() else out.unlink()
        os.replace(staged, out)
    result.size_bytes = out.stat().st_size if out.is_file() else unpacked
    return result


def _model_files(bundle: Bundle) -> list[str]:
    """The files the runner loads: the OpenVINO IR (xml + bin), else the ONNX model (+ external data)."""
    artifacts = bundle.manifest.artifacts
    entry = artifacts.get("openvino") or artifacts.get("onnx")
    if not entry:
        raise EdgekitError(f"{bundle.path}: the bundle has no openvino or onnx artifact to pack")
    return [entry[k] for k in ("path", "weights", "data") if isinstance(entry.get(k), str)]


def _testdata_files(bundle: Bundle) -> list[str]:
    """testdata/index.json and the files its samples name (nothing else in the folder travels)."""
    index = bundle.path / "testdata" / "index.json"
    if not index.is_file():
        return []
    samples = json.loads(index.read_text()).get("samples", [])
    files = {f"testdata/{meta['file']}" for s in samples for role in ("inputs", "outputs")
             for meta in s.get(role, {}).values()}
    return ["testdata/index.json", *sorted(files)]


def _copy_libs(executable: Path, lib_dir: Path, dest: Path, device: str, model_suffix: str) -> list[str]:
    """Copy the runner's shared libraries (ldd's closure) and the plugin, frontend and optional TBB
    binder OpenVINO opens by name, with their own closures; glibc and libstdc++ stay the device's."""
    wanted = [executable]
    for stem in (PLUGINS[device.split(".")[0]], FRONTENDS.get(model_suffix, FRONTENDS[".xml"]), *OPTIONAL):
        found = sorted(lib_dir.glob(stem + "*"))
        if not found and stem not in OPTIONAL:
            raise EdgekitError(f"{lib_dir}: no {stem} in this OpenVINO installation")
        wanted += found[:1]
    copied: dict[str, Path] = {}
    for binary in wanted:
        if binary != executable:
            copied.setdefault(binary.name, binary)
        for soname, path in _ldd(binary, lib_dir):
            if not SYSTEM_LIBS.match(soname):
                copied.setdefault(soname, path)
    for soname, path in copied.items():
        shutil.copy2(path, dest / soname)  # follows symlinks: the file under its SONAME
    return sorted(copied)


def _ldd(binary: Path, lib_dir: Path) -> list[tuple[str, Path]]:
    env = {**os.environ, "LD_LIBRARY_PATH": str(lib_dir)}
    try:
        proc = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, env=env, timeout=60)
    except FileNotFoundError:
        raise EdgekitError("ldd not found: edgekit pack resolves shared libraries on Linux only") from None
    pairs, missing = [], []
    for line in proc.stdout.splitlines():
        match = re.match(r"\s*(\S+) => (.+?) \(0x", line)
        if match and match.group(2) == "not found":
            missing.append(match.group(1))
        elif match:
            pairs.append((match.group(1), Path(match.group(2))))
        elif "not found" in line:
            missing.append(line.split()[0])
    if missing or proc.returncode != 0:
        raise EdgekitError(f"{binary.name}: ldd cannot resolve {', '.join(missing) or proc.stderr.strip()}")
    return pairs
