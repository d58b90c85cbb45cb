"""Load a function named in a `file.py:fn` option (`--calib`, `--metric`), with one-line errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Callable

from edgekit.errors import EdgekitError


def function_from_file(path: Path, name: str, option: str) -> Callable:
    """`name` from the Python file `path`; raises EdgekitError naming `option`, the file and the function."""
    path = Path(path)
    if not path.is_file():
        raise EdgekitError(f"{option} {path}:{name}: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_edgekit_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise EdgekitError(f"{option} {path}: importing failed: {type(exc).__name__}: {exc}") from exc
    fn = getattr(module, name, None)
    if not callable(fn):
        raise EdgekitError(f"{option} {path}:{name}: {path} has no function {name!r}")
    return fn
