"""The bundle: one directory per export holding the artifacts and `manifest.json` (DESIGN.md §5).

Bundles are written into a temporary directory beside the destination and renamed into place only
when complete, so an interrupted export (even kill -9) never leaves a partial bundle at `--out`.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from edgekit import __version__, jsonsafe
from edgekit.errors import EdgekitError
from edgekit.integrity import check_entry, contained_path
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
        """Raises EdgekitError (never anything else) for a manifest of another shape or schema."""
        if not isinstance(data, dict):
            raise EdgekitError(f"{where}: not an edgekit manifest (a JSON {type(data).__name__}, not an object)")
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            raise EdgekitError(f"{where}: not an edgekit manifest (missing {', '.join(missing)})")
        if data["schema"] != SCHEMA:
            raise EdgekitError(f"{where}: schema {data['schema']!r} is not supported (expected {SCHEMA})")
        try:
            return cls._parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EdgekitError(f"{where}: malformed manifest ({type(exc).__name__}: {exc})") from None

    @classmethod
    def _parse(cls, data: dict) -> "Manifest":
        for key in ("source", "control_flow", "artifacts", "validation"):
            if not isinstance(data[key], dict):
                raise TypeError(f"{key} is a {type(data[key]).__name__}, not an object")
        for key in ("inputs", "outputs"):
            if not isinstance(data[key], list) or not all(isinstance(s, dict) for s in data[key]):
                raise TypeError(f"{key} is not a list of tensor objects")
        return cls(
            source=data["source"],
            inputs=[TensorSpec.from_json(s) for s in data["inputs"]],
            outputs=[TensorSpec.from_json(s) for s in data["outputs"]],
            control_flow=data["control_flow"],
            pipeline=data["pipeline"],
            artifacts=data["artifacts"],
            validation=data["validation"],
            reference=data.get("reference") if isinstance(data.get("reference"), dict) else {},
            knobs=data.get("knobs", []),
            tuning=data.get("tuning"),
            schema=data["schema"],
            edgekit_version=data["edgekit_version"],
        )


class Bundle:
    """A bundle directory on disk: its manifest and the paths of its artifacts."""

    def __init__(self, path: Path, manifest: Manifest, verify: bool = False):
        """verify: check each artifact against its manifest sha256/size before use (loaded bundles; a
        bundle being staged has no digests yet). Paths are always kept inside the bundle."""
        self.path = Path(path)
        self.manifest = manifest
        self.verify = verify

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> "Bundle":
        """Read BUNDLE/manifest.json. Raises EdgekitError for a missing, unreadable or foreign manifest."""
        path = Path(path)
        manifest_path = path / MANIFEST
        if not manifest_path.is_file():
            raise EdgekitError(f"{path}: not a bundle (no {MANIFEST})")
        try:
            text = manifest_path.read_text()
        except (OSError, ValueError) as exc:
            raise EdgekitError(f"{manifest_path}: unreadable manifest ({type(exc).__name__}: {exc})") from None
        return cls.from_text(path, text, verify)

    @classmethod
    def from_text(cls, path: str | Path, text: str, verify: bool = True) -> "Bundle":
        """The bundle at `path` with `text` as its manifest. Raises EdgekitError, nothing else (fuzzed)."""
        manifest_path = Path(path) / MANIFEST
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise EdgekitError(f"{manifest_path}: unreadable manifest ({type(exc).__name__}: {exc})") from None
        return cls(Path(path), Manifest.from_json(data, str(manifest_path)), verify=verify)

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
        return self.verified_path(entry, key)

    def verified_path(self, entry: dict, what: str) -> Path:
        """The path of one artifact entry, inside the bundle and (with self.verify) matching its sha256 and
        size, sidecar files included. Raises IntegrityError naming the file and both digests."""
        return check_entry(self.path, entry, what, self.verify)

    def verify_artifacts(self, keys=None) -> None:
        """Check every entry of the artifacts named in `keys` (default: all) before handing them out."""
        for key, entry in self.manifest.artifacts.items():
            if keys is None or key in keys:
                for e in entry if isinstance(entry, list) else [entry]:
                    self.verified_path(e, key)

    def file(self, relative: str, what: str) -> Path:
        """A path named by the manifest or testdata index, refused unless it resolves inside the bundle."""
        return contained_path(self.path, relative, what)

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
    """Write JSON (strict: no NaN/Inf, see edgekit.jsonsafe) to a temp file, fsync it, rename it over `path`:
    a reader sees the old file or the new one, never half of one, even after a kill or a power cut."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as handle:
        handle.write(jsonsafe.dumps(data, indent=2) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
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
    reap_stale(out)
    # the pid in the name lets a later run tell a dead export's leftovers from a live concurrent one
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(staging, 0o777 & ~umask)  # mkdtemp makes it 0700; a bundle should get normal permissions
    try:
        yield staging
        try:
            if out.exists():
                check(out, force)
                trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
                os.replace(out, trash / out.name)
                os.replace(staging, out)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(staging, out)
        except OSError as exc:  # another run renamed its bundle into place between our check and our rename
            raise EdgekitError(f"{out}: another run wrote a bundle there at the same time; this one was "
                               f"discarded ({exc.strerror or exc})") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def reap_stale(out: Path) -> list[Path]:
    """Remove `.NAME.partial-*` / `.NAME.old-*` / `.NAME.auto-*` (`--precision auto` scratch) siblings of `out`
    left by runs that were killed: those whose pid is dead (or that carry no pid: written before pids were
    recorded). Returns what was removed."""
    removed = []
    for sibling in Path(out).parent.glob(f".{glob.escape(Path(out).name)}.*-*"):
        kind, _, rest = sibling.name[len(Path(out).name) + 2:].partition("-")
        if kind not in ("partial", "old", "auto") or not sibling.is_dir():
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and "-" in rest and _alive(int(pid)):
            continue
        shutil.rmtree(sibling, ignore_errors=True)
        removed.append(sibling)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


TESTDATA_INDEX = "testdata/index.json"


def finalize_artifacts(root: Path, artifacts: dict) -> dict:
    """Add sha256 and size to every artifact entry (and its sidecar files) from the files in `root`; a
    bundle with testdata/ gets `artifacts.testdata` for its index (which holds each .bin file's sha256)."""
    artifacts = dict(artifacts)
    if (root / TESTDATA_INDEX).is_file():
        artifacts["testdata"] = {"path": TESTDATA_INDEX}
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
