"""The export cache: the slow, deterministic stages of `edgekit export` keyed by everything they read, so
`quantize`, sweep cells, re-exports to more targets and repeated tries of export settings reuse them.

Entries (each a folder of files plus `entry.json`, written to a temp dir and renamed into place):
- `onnx/<key>`: model.onnx (+ .data), model.pt2 and their manifest entries; key: the source (spec, weights
  hash, code of every Python file defining its modules, inputs, dynamic dims, output names), opset, slim,
  edgekit's own exporter code and the torch/onnx/onnxscript/onnxslim versions;
- `target/<key>`: the files a target build wrote (OpenVINO IR, TensorRT engines) and its manifest entry;
  key: the ONNX bytes, target, precision, target options, builder code and backend versions;
- `reference/<key>`: the reference outputs for the validation samples; key: the onnx key and the samples.

Location: `$EDGEKIT_CACHE`, else `$XDG_CACHE_HOME/edgekit`, else `~/.cache/edgekit`; `--no-cache` (or
EDGEKIT_CACHE=off) bypasses it. Nothing is trusted beyond its key: a torn entry is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import numpy as np

FORMAT = "edgekit.cache/1"
ENTRY = "entry.json"
# our own code that shapes each kind of entry: an edit to it must miss the cache
_EXPORT_CODE = ("export/onnx.py", "export/cleanup.py", "export/controlflow.py", "export/subgraph_weights.py")
# (a target is cached only once it has an entry here and in _VERSIONS: its builder code and backend)
TARGET_CODE = {"openvino": ("export/openvino.py", "export/groupnorm.py", "export/targets.py"),
               "tensorrt": ("export/tensorrt.py", "export/trt_compat.py", "export/fp16.py", "export/targets.py")}
_VERSIONS = {"onnx": ("torch", "onnx", "onnxscript", "onnx-ir", "onnxslim"), "openvino": ("openvino",),
             "tensorrt": ("tensorrt", "tensorrt-rtx-cu12", "tensorrt_rtx_cu12", "tensorrt-cu12")}


def default_cache_dir() -> Path | None:
    """Where the cache lives, or None when EDGEKIT_CACHE is `off`/`0`/empty-string-disabled."""
    env = os.environ.get("EDGEKIT_CACHE")
    if env is not None:
        return None if env.strip().lower() in ("", "0", "off", "none", "false") else Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgekit"


@dataclass(frozen=True)
class ExportCache:
    root: Path
    source_key: str | None = None  # the onnx key of the export in progress (keys its reference outputs)

    @classmethod
    def open(cls, enabled: bool = True) -> "ExportCache | None":
        folder = default_cache_dir() if enabled else None
        return cls(folder) if folder is not None else None

    # --- keys ---------------------------------------------------------------------------------------

    def onnx_key(self, source, opset: int, slim: bool, adapter: Path | None) -> str:
        digest = Digest("onnx")
        digest.add(source.spec, source.kind, source.sha256, opset, slim)
        if source.module is not None:
            from edgekit.sources.model import state_sha256

            digest.add(state_sha256(source.module))  # the weights actually exported (an adapter changes them)
            for path in sorted(module_files(source.module)):
                digest.add_file(path)
        digest.add([s.to_json() for s in source.inputs], source.output_names, repr(source.dynamic_shapes))
        digest.add([(tuple(t.shape), str(t.dtype)) for t in source.example_inputs])
        if adapter is not None:
            digest.add_file(Path(adapter))
        digest.add_code(_EXPORT_CODE)
        digest.add_versions(_VERSIONS["onnx"])
        return digest.hex()

    def target_key(self, name: str, onnx_path: Path, precision: str, options: dict) -> str:
        digest = Digest("target")
        digest.add(name, precision, json.dumps(options, sort_keys=True, default=str))
        for path in (onnx_path, onnx_path.with_name(onnx_path.name + ".data")):
            if path.exists():
                digest.add_file(path)
        digest.add_code(TARGET_CODE.get(name, ("export/targets.py",)))
        digest.add_versions(_VERSIONS.get(name, ()))
        return digest.hex()

    def reference_key(self, onnx_key: str, samples: list[dict]) -> str:
        digest = Digest("reference")
        digest.add(onnx_key)
        for feed in samples:
            for name in sorted(feed):
                value = np.ascontiguousarray(feed[name])
                digest.add(name, value.dtype.str, value.shape)
                digest.update(value.tobytes())
        return digest.hex()

    # --- entries ------------------------------------------------------------------------------------

    def get(self, kind: str, key: str, dest: Path) -> dict | None:
        """Copy an entry's files into `dest` and return its metadata, or None on a miss."""
        folder = self.root / kind / key
        meta = _complete_entry(folder)
        if meta is None:
            return None
        try:
            dest.mkdir(parents=True, exist_ok=True)
            for name in meta["files"]:
                shutil.copyfile(folder / name, dest / name)
        except OSError:  # removed under us (a concurrent writer, a user clearing the cache): a miss
            return None
        return meta["data"]

    def put(self, kind: str, key: str, src: Path, files: list[str], data) -> None:
        """Store `files` (names inside `src`) and `data` (JSON) as an entry; a failure only skips caching."""
        folder, tmp = self.root / kind / key, None
        try:
            (self.root / kind).mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=self.root / kind))
            for name in files:  # copies, never links: later stages rewrite bundle files in place
                shutil.copyfile(src / name, tmp / name)
            (tmp / ENTRY).write_text(json.dumps({"format": FORMAT, "files": files, "data": data}, default=str))
            if _complete_entry(folder) is not None:  # a concurrent export stored the same key first
                shutil.rmtree(tmp, ignore_errors=True)
                return
            shutil.rmtree(folder, ignore_errors=True)  # a torn entry
            os.replace(tmp, folder)
        except OSError:  # a full disk or a concurrent writer: this run just does not cache
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)

    def get_arrays(self, kind: str, key: str) -> list[dict] | None:
        path = self.root / kind / key / "arrays.npz"
        try:
            with np.load(path, allow_pickle=False) as arrays:
                groups: dict[int, dict] = {}
                for k in arrays.files:
                    index, _, name = k.partition("/")
                    groups.setdefault(int(index), {})[name] = arrays[k]
        except (OSError, ValueError):
            return None
        return [groups[i] for i in sorted(groups)]

    def put_arrays(self, kind: str, key: str, feeds: list[dict]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            np.savez(Path(tmp) / "arrays.npz", **{f"{i}/{k}": np.asarray(v) for i, f in enumerate(feeds)
                                                  for k, v in f.items()})
            self.put(kind, key, Path(tmp), ["arrays.npz"], {})


def _complete_entry(folder: Path) -> dict | None:
    """An entry's metadata when it and every file it lists are there, else None (torn or absent)."""
    try:
        meta = json.loads((folder / ENTRY).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    return meta if all((folder / f).is_file() for f in meta.get("files", [])) else None


class Digest:
    """sha256 over a kind tag, edgekit's version, JSON values, files, our own code and package versions."""

    def __init__(self, kind: str):
        from edgekit import __version__

        self._h = hashlib.sha256(f"{FORMAT}:{kind}:{__version__}:{sys.version_info[:2]}".encode())

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def add(self, *values) -> None:
        for value in values:
            self._h.update(json.dumps(value, sort_keys=True, default=str).encode() + b"\0")

    def add_file(self, path: Path) -> None:
        self.add(str(path.name))
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                self._h.update(chunk)

    def add_code(self, relative: tuple[str, ...]) -> None:
        package = Path(__file__).resolve().parents[1]
        for rel in relative:
            self.add_file(package / rel)

    def add_versions(self, distributions: tuple[str, ...]) -> None:
        for name in distributions:
            try:
                self.add(name, metadata.version(name))
            except metadata.PackageNotFoundError:
                self.add(name, None)

    def hex(self) -> str:
        return self._h.hexdigest()


def module_files(module) -> set[Path]:
    """The Python files that define the classes of `module` and its submodules and their base classes (the
    model's code: zoo:rbqe's forward is edgekit.flow's ExitChain); inside edgekit every file of that package,
    since forward code calls helpers in sibling modules."""
    package = Path(__file__).resolve().parents[1]
    files = set()
    for sub in module.modules():
        for cls in type(sub).__mro__:
            file = getattr(sys.modules.get(cls.__module__), "__file__", None)
            if not file or "site-packages" in file:
                continue
            path = Path(file).resolve()
            files.update(path.parent.glob("*.py") if package in path.parents else [path])
    return files
