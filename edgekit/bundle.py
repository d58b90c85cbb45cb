"""The bundle: one directory per export holding the artifacts and `manifest.json` (DESIGN.md §5).

Bundles are written into a temporary directory beside the destination and renamed into place only
when complete, so an interrupted export (even kill -9) never leaves a partial bundle at `--out`.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edgekit import __version__
from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec

SCHEMA = "edgekit.bundle/1"
MANIFEST = "manifest.json"
REQUIRED_KEYS = ("schema", "edgekit_version", "source", "inputs", "outputs", "control_flow", "pipeline",
                 "artifacts", "validation")


@dataclass
class Manifest:
    source: dict
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    control_flow: dict = field(default_factory=lambda: {"If": 0, "Loop": 0})
    pipeline: dict = field(default_factory=lambda: {"prune": None, "quantize": None})
    artifacts: dict = field(default_factory=dict)
    validation: dict = field(default_factory=dict)
    reference: dict = field(default_factory=dict)
    knobs: list = field(default_factory=list)  # run-time knobs the model declares (tuning.knobs)
    tuning: dict | None = None  # the fitted policy `edgekit tune` wrote
    schema: str = SCHEMA
    edgekit_version: str = __version__

    def to_json(self) -> dict:
        return {
            "schema": self.schema,
            "edgekit_version": self.edgekit_version,
            "source": self.source,
            "inputs": [s.to_json() for s in self.inputs],
            "outputs": [s.to_json() for s in self.outputs],
            "control_flow": self.control_flow,
            "pipeline": self.pipeline,
            "artifacts": self.artifacts,
            "validation": self.validation,
            "reference": self.reference,
            **({"knobs": self.knobs} if self.knobs else {}),
            **({"tuning": self.tuning} if self.tuning else {}),
        }

    @classmethod
    def from_json(cls, data: dict, where: str = MANIFEST) -> "Manifest":
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise EdgekitError(f"{where}: not an edgekit manifest (missing {', '.join(missing)})")
        if data["schema"] != SCHEMA:
            raise EdgekitError(f"{where}: schema {data['schema']!r} is not supported (expected {SCHEMA})")
        return cls(
            source=data["source"],
            inputs=[TensorSpec.from_json(s) for s in data["inputs"]],
            outputs=[TensorSpec.from_json(s) for s in data["outputs"]],
            control_flow=data["control_flow"],
            pipeline=data["pipeline"],
            artifacts=data["artifacts"],
            validation=data["validation"],
            reference=data.get("reference", {}),
            knobs=data.get("knobs", []),
            tuning=data.get("tuning"),
            schema=data["schema"],
            edgekit_version=data["edgekit_version"],
        )


class Bundle:
    """A bundle directory on disk: its manifest and the paths of its artifacts."""

    def __init__(self, path: Path, manifest: Manifest):
        self.path = Path(path)
        self.manifest = manifest

    @classmethod
    def load(cls, path: str | Path) -> "Bundle":
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise EdgekitError(f"{path}: not a bundle (no {MANIFEST})")
        try:
            data = json.loads(manifest_path.read_text())
        except (OSError, ValueError) as exc:
            raise EdgekitError(f"{manifest_path}: unreadable manifest ({exc})") from exc
        return cls(path, Manifest.from_json(data, str(manifest_path)))

    def artifact(self, key: str) -> dict | list:
        try:
            return self.manifest.artifacts[key]
        except KeyError:
            have = ", ".join(self.manifest.artifacts) or "none"
            raise EdgekitError(f"{self.path}: the bundle has no {key} artifact (it has: {have})") from None

    def artifact_path(self, key: str) -> Path:
        entry = self.artifact(key)
        if isinstance(entry, list):
            raise EdgekitError(f"{self.path}: {key} has several artifacts; pick one")
        return self.path / entry["path"]

    def save_manifest(self) -> None:
        """Rewrite manifest.json atomically (validate updates its block in place)."""
        write_json_atomic(self.path / MANIFEST, self.manifest.to_json())


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def check_destination(out: Path, force: bool) -> None:
    """Refuse an existing output unless `force`; fail early, before any work is done."""
    if out.exists() and not force:
        raise EdgekitError(f"{out}: already exists (use --force to replace it)")
    if out.exists() and not (out / MANIFEST).is_file() and any(out.iterdir()):
        raise EdgekitError(f"{out}: exists and is not a bundle; refusing to replace it even with --force")


@contextlib.contextmanager
def staged_bundle(out: Path, force: bool = False, check=check_destination) -> Iterator[Path]:
    """Yield a temp dir beside `out`; on success rename it to `out`, on any failure delete it.
    `check(out, force)` refuses a destination it must not replace (default: a non-bundle)."""
    out = Path(out)
    check(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; a bundle should get normal permissions
    try:
        yield staging
        if out.exists():
            check(out, force)
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def finalize_artifacts(root: Path, artifacts: dict) -> dict:
    """Add sha256 and size to every artifact entry (and its sidecar files) from the files in `root`."""
    def fill(entry: dict) -> dict:
        entry = dict(entry)
        file = root / entry["path"]
        entry["sha256"] = sha256_file(file)
        entry["size_bytes"] = file.stat().st_size
        for side in ("weights", "data"):
            if entry.get(side):
                entry[f"{side}_sha256"] = sha256_file(root / entry[side])
                entry["size_bytes"] += (root / entry[side]).stat().st_size
        return entry

    return {k: [fill(e) for e in v] if isinstance(v, list) else fill(v) for k, v in artifacts.items()}
