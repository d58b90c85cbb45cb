"""Human output: everything goes to stderr through rich, so `--json` keeps stdout for JSON alone."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import time
from typing import Iterator

from rich.console import Console


class _Stderr:
    """A file over a duplicate of the process's original stderr, so progress stays on the terminal
    while `quiet_fds` sends library noise (exporter prints, C++ logs) on fds 1 and 2 to a log file."""

    def __init__(self):
        self._file = None

    def _target(self):
        if self._file is None:
            try:
                self._file = os.fdopen(os.dup(sys.stderr.fileno()), "w", buffering=1)
            except (AttributeError, OSError, ValueError):  # stderr without a real fd (test runners)
                return sys.stderr
        return self._file

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()

    def fileno(self) -> int:
        return self._target().fileno()


def _width() -> int | None:
    """Rich assumes 80 columns off a terminal; logs and CI read better wider."""
    columns = os.environ.get("COLUMNS", "")
    return int(columns) if columns.isdigit() else (None if sys.stderr.isatty() else 140)


console = Console(file=_Stderr(), highlight=False, width=_width())


@contextlib.contextmanager
def quiet_fds(log) -> Iterator[None]:
    """Point fds 1 and 2 at `log` (an open file) for the duration; restore them afterwards."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        console.file.write("")  # make sure the console holds its own fd before the swap
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)


@contextlib.contextmanager
def discard_output() -> Iterator[None]:
    """Drop what Python prints and what native code writes to fds 1 and 2 meanwhile (library chatter)."""
    with tempfile.TemporaryFile("w+") as sink, contextlib.redirect_stdout(sink), quiet_fds(sink):
        yield


class Reporter:
    """Progress for long work: a spinner per stage and a ✓ line with its duration when it ends."""

    def __init__(self, quiet: bool = False):
        self.quiet = quiet

    @contextlib.contextmanager
    def stage(self, label: str) -> Iterator["StageProgress"]:
        """A spinner while the block runs; the block may report `progress(done, total)` on what it yields."""
        start = time.perf_counter()
        if self.quiet:
            yield StageProgress(None, label)
            return
        with console.status(f"{label}…") as status:
            yield StageProgress(status, label)
        console.print(f"[green]✓[/] {label} [dim]({time.perf_counter() - start:.1f} s)[/]")

    def note(self, message: str) -> None:
        if not self.quiet:
            console.print(message)


class StageProgress:
    """What a stage yields: `progress(done, total)` shows the count on its spinner (no-op when quiet)."""

    def __init__(self, status, label: str):
        self._status, self._label = status, label

    def progress(self, done: int, total: int) -> None:
        if self._status is not None:
            self._status.update(f"{self._label}… {done}/{total}")


SILENT = Reporter(quiet=True)
