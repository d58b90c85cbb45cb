"""Build the C++/C runners (`examples/cpp`, `examples/c`) once per machine and reuse them: the cached
build folder behind `edgekit bench --native` and `edgekit pack`. The argv are the ones `edgekit embed`
plans; only the folder (and, for a pack, the RUNPATH) differ.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
from pathlib import Path

from edgekit.errors import BackendUnavailable, EdgekitError
from edgekit.native.embed import EmbedPlan, embed_plan

BUILD_TIMEOUT_S = 900
# A packed runner finds the runtime's libraries next to it, never in this machine's site-packages.
PACK_RPATH = ["-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON", "-DCMAKE_INSTALL_RPATH=$ORIGIN/lib",
              "-DCMAKE_INSTALL_RPATH_USE_LINK_PATH=OFF"]


def build_root() -> Path:
    """$EDGEKIT_CACHE/native (the export cache's folder), else build/native in the working directory."""
    from edgekit.export.cache import default_cache_dir

    cache = default_cache_dir()
    return (cache / "native") if cache else Path("build/native").absolute()


def build_runner(bundle_path, lang: str, *, packed: bool = False, root: Path | None = None) -> EmbedPlan:
    """Configure (first time only) and build the `lang` runner; returns the plan, whose `executable` exists.

    The folder is keyed by language, OpenVINO installation and `packed` (RUNPATH `$ORIGIN/lib` instead of
    this machine's library folder), so a second call only re-runs the incremental build.
    Raises BackendUnavailable when compilers or headers are missing (the apt-get line is the reason) and
    EdgekitError when CMake fails (its last lines are the message).
    """
    probe = embed_plan(bundle_path, lang)
    key = hashlib.sha256(f"{probe.openvino_dir}|{packed}".encode()).hexdigest()[:12]
    folder = (root or build_root()) / f"{probe.lang}{'-packed' if packed else ''}-{key}"
    plan = embed_plan(bundle_path, lang, folder)
    if plan.install:
        raise BackendUnavailable(f"native {plan.lang}", f"missing build dependencies: {shlex.join(plan.install)}")
    if not (folder / "CMakeCache.txt").is_file():
        _check([*plan.configure, *(PACK_RPATH if packed else [])], f"cmake configure ({plan.lang} runner)")
    _check(plan.build, f"cmake build ({plan.lang} runner)")
    if not plan.executable.is_file():
        raise EdgekitError(f"{plan.executable}: the {plan.lang} build finished without the runner")
    return plan


def _check(argv: list[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except FileNotFoundError as exc:
        raise BackendUnavailable("native", f"{what}: {exc.filename} not found") from None
    except subprocess.TimeoutExpired:
        raise EdgekitError(f"{what}: still running after {BUILD_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()][-3:]
        raise EdgekitError(f"{what} failed: {' / '.join(tail) or f'exit {proc.returncode}'}")
