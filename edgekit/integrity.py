"""Integrity and containment of bundle files (DESIGN.md §8): a bundle is trusted only as far as it matches
its manifest. Every path read from a manifest or a testdata index must resolve inside the bundle (no
absolute path, no `..`, no symlink leaving it), and every artifact used is checked against the sha256 and
size the manifest records. Digests are streamed and cached per process by (file, size, mtime, inode), so
a command that opens the same artifact twice hashes it once.

Used by `edgekit.bundle.Bundle` (artifact_path, verified_path, verify_all) and `edgekit verify`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from edgekit.errors import EdgekitError

SIDECARS = ("weights", "data")  # extra files of one artifact entry: OpenVINO's .bin, ONNX external data
# Per-process cache of file digests; keyed by what changes when a file is rewritten or replaced.
_DIGESTS: dict[tuple, str] = {}


class IntegrityError(EdgekitError):
    """A bundle file that does not match its manifest, or a path that leaves the bundle."""


def contained_path(root: Path, relative, what: str) -> Path:
    """`root / relative`, refused unless it stays inside `root` (DESIGN.md §8). Raises IntegrityError."""
    root = Path(root)
    if not isinstance(relative, str) or not relative or "\x00" in relative:
        raise IntegrityError(f"{root}: {what}: path {relative!r} is not a file name")
    parts = PurePosixPath(relative.replace("\\", "/"))
    if parts.is_absolute() or relative.startswith("~") or (len(relative) > 1 and relative[1] == ":"):
        raise IntegrityError(f"{root}: {what}: path {relative!r} is absolute; bundle paths are relative to the bundle")
    if ".." in parts.parts:
        raise IntegrityError(f"{root}: {what}: path {relative!r} leaves the bundle ('..')")
    path = root / relative
    try:
        real, real_root = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop
        raise IntegrityError(f"{root}: {what}: path {relative!r} cannot be resolved ({exc})") from None
    if real != real_root and real_root not in real.parents:
        raise IntegrityError(f"{root}: {what}: path {relative!r} is a symlink to {real}, outside the bundle")
    return path


def sha256_cached(path: Path) -> str:
    """The file's sha256, streamed in 1 MiB chunks; cached per process while the file is unchanged."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def check_file(root: Path, relative, expected_sha256, what: str, expected_size=None) -> Path:
    """The contained path of one file whose sha256 (and size, when given) match. Raises IntegrityError."""
    path = contained_path(root, relative, what)
    if not path.is_file():
        raise IntegrityError(f"{path}: {what} is missing from the bundle")
    if not isinstance(expected_sha256, str):
        raise IntegrityError(f"{path}: {what} has no sha256 in the manifest, so it cannot be verified "
                             f"(--no-verify uses it anyway)")
    try:
        size = path.stat().st_size
        actual = sha256_cached(path)
    except OSError as exc:
        raise IntegrityError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
    if actual != expected_sha256 or (expected_size is not None and size != expected_size):
        sizes = f"; {size} bytes, manifest says {expected_size}" if expected_size is not None else ""
        raise IntegrityError(f"{path}: {what} does not match the manifest: sha256 {actual}, manifest {expected_sha256}"
                             f"{sizes} (changed after export; --no-verify uses it anyway)")
    return path


def check_entry(root: Path, entry, what: str, verify: bool = True) -> Path:
    """An artifact entry's main file path after containment (and, with `verify`, sha256 + size) checks of
    the file and its sidecars (`weights`, `data`). `size_bytes` is the total of all of them."""
    if not isinstance(entry, dict):
        raise IntegrityError(f"{root}: {what}: the manifest entry is not an object")
    if not verify:
        for side in SIDECARS:
            if entry.get(side) is not None:
                contained_path(root, entry[side], f"{what} {side}")
        return contained_path(root, entry.get("path"), what)
    files = [(entry.get("path"), entry.get("sha256"), what)]
    files += [(entry[s], entry.get(f"{s}_sha256"), f"{what} {s}") for s in SIDECARS if entry.get(s) is not None]
    size = entry.get("size_bytes")
    expected_size = size if isinstance(size, int) and not isinstance(size, bool) and len(files) == 1 else None
    paths = [check_file(root, rel, digest, label, expected_size) for rel, digest, label in files]
    total = sum(p.stat().st_size for p in paths)
    if len(files) > 1 and size is not None and size != total:
        raise IntegrityError(f"{paths[0]}: {what} does not match the manifest: {total} bytes with its "
                             f"{'/'.join(s for s in SIDECARS if entry.get(s))}, manifest says {size} "
                             f"(changed after export; --no-verify uses it anyway)")
    return paths[0]


@dataclass
class VerifyReport:
    """What `edgekit verify` checked: files that match, and one problem line per file that does not."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"status": "passed" if self else "failed", "checked": self.checked, "problems": self.problems}

    def run(self, label: str, check) -> None:
        try:
            check()
            self.checked.append(label)
        except EdgekitError as exc:
            self.problems.append(str(exc))
