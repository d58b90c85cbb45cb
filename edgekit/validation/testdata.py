"""Reference test I/O stored in a bundle (`testdata/`), readable without numpy or PyTorch.

Each tensor is a raw little-endian `.bin` file (C order); `testdata/index.json` lists the samples with
each tensor's file, shape and dtype, so a device or a C++ program can check an artifact on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.specs import np_dtype

FORMAT = "edgekit.validation.testdata/1"
INDEX = "index.json"


def write_testdata(root: Path, samples: list[tuple[dict, dict]]) -> dict:
    """Write (inputs, reference outputs) pairs under `root/testdata`; return the index written."""
    folder = root / "testdata"
    folder.mkdir(parents=True, exist_ok=True)
    index = {"format": FORMAT, "byte_order": "little", "layout": "C", "samples": []}
    for i, (inputs, outputs) in enumerate(samples):
        entry = {"inputs": {}, "outputs": {}}
        for role, tensors in (("inputs", inputs), ("outputs", outputs)):
            for name, value in tensors.items():
                value = np.asarray(value)
                file = f"{i:03d}.{role[:-1]}.{_safe(name)}.bin"
                value.astype(value.dtype.newbyteorder("<"), copy=False).tofile(folder / file)
                entry[role][name] = {"file": file, "shape": list(value.shape), "dtype": value.dtype.name}
        index["samples"].append(entry)
    (folder / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    return index


def read_testdata(root: Path) -> list[tuple[dict, dict]]:
    """Read the (inputs, outputs) pairs of a bundle; an empty list if it has none."""
    folder = Path(root) / "testdata"
    if not (folder / INDEX).is_file():
        return []
    index = json.loads((folder / INDEX).read_text())
    if index.get("format") != FORMAT:
        raise EdgekitError(f"{folder / INDEX}: unknown testdata format {index.get('format')!r}")
    samples = []
    for entry in index["samples"]:
        pair = []
        for role in ("inputs", "outputs"):
            tensors = {}
            for name, meta in entry[role].items():
                dtype = np_dtype(meta["dtype"]).newbyteorder("<")
                data = np.fromfile(folder / meta["file"], dtype=dtype)
                tensors[name] = data.reshape(meta["shape"]).astype(dtype.newbyteorder("="))
            pair.append(tensors)
        samples.append(tuple(pair))
    return samples


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
