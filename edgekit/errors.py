"""The one exception family for everything a user can fix (DESIGN.md, STYLE.md "Errors").

The CLI catches `EdgekitError`, prints its message on one line and exits non-zero; anything else is a
bug and keeps its traceback.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """A problem the user can fix: bad spec, bad shape, missing backend, failed parity.

    `hint`, when set, is one line on what to change (edgekit.hints); the CLI prints it under the error."""

    exit_code = 1
    hint: str | None = None


class SourceError(EdgekitError):
    """A model spec that cannot be resolved to a model."""


class ExportError(EdgekitError):
    """The exporter or a compiler refused the model."""


class BackendUnavailable(EdgekitError):
    """An optional backend cannot run here; the message says why ("no CUDA device", which extra)."""

    def __init__(self, backend: str, reason: str):
        super().__init__(f"{backend}: {reason}")
        self.backend = backend
        self.reason = reason


class ValidationFailed(EdgekitError):
    """A runtime's outputs left tolerance; carries the results so callers can still report them."""

    def __init__(self, message: str, results=None):
        super().__init__(message)
        self.results = results


def missing_extra(backend: str, module: str, extra: str) -> BackendUnavailable:
    """The error for an optional dependency that is not installed."""
    error = BackendUnavailable(backend, f"{module} not installed (pip install 'edgekit[{extra}]')")
    error.hint = f"install the extra: pip install 'edgekit[{extra}]'"
    return error
