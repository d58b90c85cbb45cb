"""Feeds from files, in the layouts people already have: the one loader behind `--data` (validation),
`--calib` (calibration) and `--tune-data`, so every message names the flag the user typed.

Layouts (each array is checked against the model's inputs with `specs.feed_problem`):
- `.npz`, one array per input with a leading sample axis (`x: [16, 1, 3, 256, 256]` for input `x:
  [1, 3, 256, 256]`; what NNCF and Polygraphy data loaders write); an array of the input's own rank is
  shared by every sample (e.g. a `threshold` scalar);
- `.npz` with keys `NAME` (one feed) or `K/NAME` (feed K);
- `.npy` for the model's only input, or its only non-scalar one (the scalars keep their defaults), with or
  without the leading sample axis;
- a folder of `.npz`/`.npy` files, read in sorted order.
Inputs a file leaves out take `defaults` (e.g. the example feed), else the input's manifest default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec, feed_problem, np_dtype

FEED_SUFFIXES = (".npz", ".npy")


def is_feed_path(path: Path) -> bool:
    """A `.npz`/`.npy` file, or a folder holding some (and so readable by `load_feed_file`)."""
    path = Path(path)
    if path.is_dir():
        return any(p.suffix.lower() in FEED_SUFFIXES for p in path.rglob("*"))
    return path.suffix.lower() in FEED_SUFFIXES


def load_feed_file(path: Path, inputs: list[TensorSpec], flag: str,
                   defaults: Mapping[str, np.ndarray] | None = None) -> list[dict[str, np.ndarray]]:
    """Every feed in `path` (a .npz, a .npy or a folder of them), complete and checked against `inputs`.

    flag: the option the path came from (`--data`, `--calib`, `--tune-data`), first word of every error.
    Raises EdgekitError naming the flag, the file, the input (and sample) at fault.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in FEED_SUFFIXES)
        if not files:
            raise EdgekitError(f"{flag} {path}: no .npz or .npy files in the folder")
        feeds = [feed for f in files for feed in _load_one(f, inputs, flag, defaults)]
    elif not path.exists():
        raise EdgekitError(f"{flag} {path}: file does not exist")
    elif path.suffix.lower() not in FEED_SUFFIXES:
        raise EdgekitError(f"{flag} {path}: expected a .npz, a .npy or a folder of them")
    else:
        feeds = _load_one(path, inputs, flag, defaults)
    if not feeds:
        raise EdgekitError(f"{flag} {path}: no arrays in the file")
    return feeds


def _load_one(path: Path, inputs, flag, defaults) -> list[dict]:
    where = f"{flag} {path}"
    try:
        loaded = np.load(path, allow_pickle=False)
        arrays = dict(loaded) if path.suffix.lower() == ".npz" else {None: loaded}
    except Exception as exc:
        kind = path.suffix.lower().lstrip(".")
        raise EdgekitError(f"{where}: not a readable .{kind} ({type(exc).__name__}: {exc})") from exc
    by_name = {s.name: s for s in inputs}
    if not arrays:
        return []
    if None in arrays:
        spec = _npy_input(inputs, where)
        labelled = _split_samples({spec.name: arrays[None]}, by_name, where)
    elif any("/" in key for key in arrays):
        labelled = _indexed(arrays, by_name, where)
    else:
        labelled = _split_samples(arrays, by_name, where)
    return [_complete(feed, label, by_name, where, defaults) for label, feed in labelled]


def _npy_input(inputs: list[TensorSpec], where: str) -> TensorSpec:
    """The input a bare array feeds: the only input, else the only non-scalar one."""
    tensors = [s for s in inputs if len(s.shape) > 0]
    if len(inputs) == 1:
        return inputs[0]
    if len(tensors) == 1:
        return tensors[0]
    raise EdgekitError(f"{where}: a .npy feeds a model with one tensor input; this one has "
                       f"{', '.join(s.name for s in tensors)}: use a .npz with one array per input "
                       f"(e.g. np.savez(path, {', '.join(f'{s.name}=...' for s in tensors)}))")


def _indexed(arrays: dict, by_name: dict, where: str) -> list[tuple[str, dict]]:
    """`K/NAME` keys (a bare `NAME` is feed 0's): one feed per K, in numeric order."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        index, _, name = key.rpartition("/")
        _check_name(name, by_name, f"{where}: {key}")
        groups.setdefault(index, {})[name] = value
    return [(f"feed {k or 0}", groups[k]) for k in sorted(groups, key=lambda k: (len(k), k))]


def _split_samples(arrays: dict, by_name: dict, where: str) -> list[tuple[str, dict]]:
    """One array per input: with a leading sample axis (one rank more than the input) they are split into
    samples; arrays of the input's own rank are shared by every sample (or make a single feed)."""
    stacked, shared = {}, {}
    for name, value in arrays.items():
        spec = _check_name(name, by_name, f"{where}: {name}")
        (stacked if value.ndim == len(spec.shape) + 1 else shared)[name] = value
    counts = {name: value.shape[0] for name, value in stacked.items()}
    if len(set(counts.values())) > 1:
        raise EdgekitError(f"{where}: the arrays hold different sample counts on their first axis "
                           f"({', '.join(f'{k}: {v}' for k, v in counts.items())})")
    if not stacked:
        return [("", shared)]
    count = next(iter(counts.values()))
    return [(f"sample {i}", {**shared, **{k: v[i] for k, v in stacked.items()}}) for i in range(count)]


def _check_name(name: str, by_name: dict, label: str) -> TensorSpec:
    spec = by_name.get(name)
    if spec is None:
        raise EdgekitError(f"{label}: the model has no input {name!r} (inputs: {', '.join(by_name)})")
    return spec


def _complete(feed: dict, label: str, by_name: dict, where: str, defaults) -> dict:
    out = {}
    prefix = f"{where}: {label + ': ' if label else ''}"
    missing = []
    for name, spec in by_name.items():
        if name in feed:
            value = np.asarray(feed[name])
        elif defaults is not None and name in defaults:
            value = np.asarray(defaults[name])
        elif spec.default is not None and len(spec.shape) == 0:
            value = np.asarray(spec.default, dtype=np_dtype(spec.dtype))
        else:
            missing.append(name)
            continue
        problem = feed_problem(value, spec)
        if problem:
            raise EdgekitError(f"{prefix}{name} {problem}{_layout_hint(value, spec)}")
        out[name] = value
    if missing:
        raise EdgekitError(f"{prefix}lacks input(s) {', '.join(missing)}")
    return out


def _layout_hint(value: np.ndarray, spec: TensorSpec) -> str:
    """A wrong shape of the input's rank may be several samples stacked on the batch axis."""
    if value.ndim != len(spec.shape) or value.ndim == 0 or value.dtype.kind not in "fiub":
        return ""
    if spec.shape[0] == 1 and value.shape[0] > 1 and all(
            not isinstance(d, int) or d == s for d, s in zip(spec.shape[1:], value.shape[1:])):
        return (f" (several samples? put them on a new leading axis: shape "
                f"{[value.shape[0], 1, *value.shape[1:]]})")
    return ""
