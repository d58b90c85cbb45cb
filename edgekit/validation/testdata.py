"""Reference test I/O stored in a bundle (`testdata/`), readable without numpy or PyTorch.

Each tensor is a raw little-endian `.bin` file (C order); `testdata/index.json` lists the samples with
each tensor's file, shape and dtype, so a device or a C++ program can check an artifact on its own.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from edgekit import jsonsafe
from edgekit.errors import EdgekitError
from edgekit.specs import DTYPES, np_dtype

FORMAT = "edgekit.testdata/1"
INDEX = "index.json"


def write_testdata(root: Path, samples: list[tuple[dict, dict]]) -> dict:
    """Write (inputs, reference outputs) pairs under `root/testdata`; return the index written."""
    folder = root / "testdata"
    folder.mkdir(parents=True, exist_ok=True)
    index = {"format": FORMAT, "byte_order": "little", "layout": "C", "samples": []}
    for i, (inputs, outputs) in enumerate(samples):
        entry = {"inputs": {}, "outputs": {}}
        used: set[str] = set()
        for role, tensors in (("inputs", inputs), ("outputs", outputs)):
            for name, value in tensors.items():
                value = np.asarray(value)
                file = _unique(f"{i:03d}.{role[:-1]}.{_safe(name)}", used)
                data = value.astype(value.dtype.newbyteorder("<"), copy=False).tobytes()
                (folder / file).write_bytes(data)
                entry[role][name] = {"file": file, "shape": list(value.shape), "dtype": value.dtype.name,
                                     "sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
        index["samples"].append(entry)
    (folder / INDEX).write_text(jsonsafe.dumps(index, indent=1) + "\n")
    return index


def read_testdata(root: Path, verify: bool = True) -> list[tuple[dict, dict]]:
    """Read the (inputs, outputs) pairs of a bundle; an empty list if it has none.

    Every file must stay inside testdata/ and hold exactly shape × dtype bytes; with `verify`, files whose
    index entry has a sha256 must match it. Raises EdgekitError (only) for a malformed index or file.
    """
    folder = Path(root) / "testdata"
    if not (folder / INDEX).is_file():
        return []
    try:
        text = (folder / INDEX).read_text()
    except (OSError, ValueError) as exc:
        raise EdgekitError(f"{folder / INDEX}: unreadable testdata index ({type(exc).__name__}: {exc})") from None
    return samples_from_index(folder, text, verify)


def samples_from_index(folder: Path, text: str, verify: bool = True) -> list[tuple[dict, dict]]:
    """The samples an index's `text` lists, read from `folder` (testdata/). Raises EdgekitError only (fuzzed)."""
    try:
        index = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise EdgekitError(f"{folder / INDEX}: unreadable testdata index ({type(exc).__name__}: {exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise EdgekitError(f"{folder / INDEX}: unknown testdata format {found!r}")
    samples = index.get("samples")
    if not isinstance(samples, list):
        raise EdgekitError(f"{folder / INDEX}: 'samples' is not a list")
    return [(_read_tensors(folder, entry, "inputs", i, verify), _read_tensors(folder, entry, "outputs", i, verify))
            for i, entry in enumerate(samples)]


def _read_tensors(folder: Path, entry, role: str, i: int, verify: bool) -> dict[str, np.ndarray]:
    from edgekit.integrity import check_file, contained_path

    tensors = entry.get(role) if isinstance(entry, dict) else None
    if not isinstance(tensors, dict):
        raise EdgekitError(f"{folder / INDEX}: sample {i} has no {role} object")
    out = {}
    for name, meta in tensors.items():
        where = f"{folder / INDEX}: sample {i} {role[:-1]} {name!r}"
        if not isinstance(meta, dict):
            raise EdgekitError(f"{where}: not an object")
        dtype_name, shape = meta.get("dtype"), meta.get("shape")
        if dtype_name not in DTYPES:
            raise EdgekitError(f"{where}: dtype {dtype_name!r} is not one of {', '.join(DTYPES)}")
        if (not isinstance(shape, list) or len(shape) > 32
                or not all(isinstance(d, int) and not isinstance(d, bool) and 0 <= d < 2**31 for d in shape)):
            raise EdgekitError(f"{where}: shape {shape!r} is not a list of non-negative ints")
        what = f"testdata {role[:-1]} {name!r}"
        if verify and meta.get("sha256") is not None:
            path = check_file(folder, meta.get("file"), meta["sha256"], what, meta.get("size_bytes"))
        else:
            path = contained_path(folder, meta.get("file"), what)
        dtype = np_dtype(dtype_name).newbyteorder("<")
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise EdgekitError(f"{path}: {what} cannot be read ({exc.strerror or exc})") from None
        if size != expected:
            raise EdgekitError(f"{path}: {what} holds {size} bytes; shape {shape} {dtype_name} needs {expected} "
                               f"(truncated or corrupt)")
        data = np.fromfile(path, dtype=dtype)
        out[name] = data.reshape(shape).astype(dtype.newbyteorder("="))
    return out


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _unique(stem: str, used: set[str]) -> str:
    """`stem.bin`, or `stem-2.bin`, ... when another tensor of the sample (`out.1` vs `out_1`) took it."""
    file, n = f"{stem}.bin", 1
    while file.lower() in used:  # lower: case-insensitive file systems would merge `Out` and `out` too
        n += 1
        file = f"{stem}-{n}.bin"
    used.add(file.lower())
    return file
