"""Strict JSON for everything edgekit writes (manifest.json, testdata/index.json, --json, caches).

The C/C++ bundle readers (cJSON, nlohmann) and most JSON parsers refuse `NaN`/`Infinity`, so JSON is
written with `allow_nan=False`; a non-finite float becomes `null` and its key gains a sibling
`<key>_nonfinite: "nan" | "inf" | "-inf"` saying why it is missing.
"""

from __future__ import annotations

import json
import math
from typing import Any


def finite_json(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (dict entries also get `<key>_nonfinite`)."""
    value = _plain(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            item = _plain(item)
            if isinstance(item, float) and not math.isfinite(item):
                out[f"{key}_nonfinite"] = str(item)
            out[key] = finite_json(item)
        return out
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    """numpy scalars as Python ones (np.float32 is not a float)."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", None) == 0 else value


def dumps(value: Any, **options) -> str:
    """json.dumps with allow_nan=False after `finite_json` (so it never raises on NaN/Inf)."""
    return json.dumps(finite_json(value), allow_nan=False, **options)
