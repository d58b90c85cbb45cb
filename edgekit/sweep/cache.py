"""The sweep's stage cache: one directory per stage result, named by a content hash of the stage's inputs.

`<cache>/<kind>/<key>/` holds the stage's files (a pruned adapter, a bundle) and `result.json`, written
last and atomically: a directory without it is an interrupted run and is redone. Nothing records
"which cells ran": a re-run recomputes the keys and finds what is already there, so it resumes after a
crash, after a config edit (only the changed cells' stages are new) and across sweeps sharing a cache.
`runs.jsonl` logs every stage actually executed (not cache hits), one JSON line each.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import time
from pathlib import Path

from edgekit.bundle import write_json_atomic

RESULT = "result.json"
RUNS = "runs.jsonl"


def stage_key(kind: str, inputs: dict) -> str:
    """sha256 (first 16 hex digits) of the stage kind and its inputs as canonical JSON."""
    text = json.dumps({"kind": kind, **inputs}, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class StageCache:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def dir(self, kind: str, key: str) -> Path:
        return self.root / kind / key

    def get(self, kind: str, key: str) -> dict | None:
        """The stored result, or None when the stage has not completed (or failed: failures are not kept)."""
        path = self.dir(kind, key) / RESULT
        try:
            result = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError):  # missing, unreadable or corrupt: the stage is redone
            return None
        return result if isinstance(result, dict) and result.get("status") == "ok" else None

    def fresh_dir(self, kind: str, key: str) -> Path:
        """An empty directory for a stage about to run (left-overs of an interrupted run removed)."""
        path = self.dir(kind, key)
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    def put(self, kind: str, key: str, result: dict) -> None:
        """Written last, atomically and fsynced (write_json_atomic): a killed worker leaves no result.json,
        never half of one, so its directory is redone by the next run."""
        write_json_atomic(self.dir(kind, key) / RESULT, result)

    def record_run(self, kind: str, key: str, seconds: float, status: str) -> None:
        """Append one line to runs.jsonl. One short O_APPEND write: concurrent workers' lines don't interleave."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"kind": kind, "key": key, "status": status, "seconds": round(seconds, 2),
                           "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}) + "\n"
        fd = os.open(self.root / RUNS, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def runs(self) -> list[dict]:
        path = self.root / RUNS
        if not path.exists():
            return []
        runs = []
        for line in path.read_text(errors="replace").splitlines():
            try:
                runs.append(json.loads(line))
            except ValueError:  # a line cut short by a killed worker: the log is advisory, skip it
                continue
        return [r for r in runs if isinstance(r, dict)]
