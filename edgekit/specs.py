"""Tensor specs (name, shape, dtype) and the parsers for the CLI's `--input`, `--dynamic`, `--feed`.

A shape holds ints for static dims and strings for named dynamic dims, exactly as in manifest.json.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from edgekit.errors import EdgekitError

Dim = Union[int, str]

# numpy dtype names are the manifest's dtype vocabulary.
DTYPES = ("float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[Dim, ...]
    dtype: str
    default: Any = field(default=None, compare=False)  # for scalar inputs such as exit thresholds
    range: tuple | None = field(default=None, compare=False)  # valid [min, max] values, e.g. step counts

    def to_json(self) -> dict:
        out = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.default is not None:
            out["default"] = self.default
        if self.range is not None:
            out["range"] = list(self.range)
        return out

    @classmethod
    def from_json(cls, data: dict) -> "TensorSpec":
        valid = tuple(data["range"]) if data.get("range") is not None else None
        return cls(data["name"], tuple(data["shape"]), data["dtype"], data.get("default"), valid)

    @property
    def is_float(self) -> bool:
        return self.dtype.startswith(("float", "bfloat"))

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.shape) if isinstance(d, str)}


def check_dtype(dtype: str, what: str) -> str:
    if dtype not in DTYPES:
        raise EdgekitError(f"{what}: unknown dtype {dtype!r} (valid: {', '.join(DTYPES)})")
    return dtype


_INPUT_RE = re.compile(r"^(?P<name>[A-Za-z_][\w.]*):(?P<shape>[^:]*)(?::(?P<dtype>\w+))?$")


def parse_input_spec(text: str) -> TensorSpec:
    """Parse `name:1x3x64x64:float32` (dtype optional, float32 by default; `1x3xHxW` names dims).

    A scalar is written with an empty shape: `threshold::float32`.
    """
    match = _INPUT_RE.match(text.strip())
    if not match:
        raise EdgekitError(
            f"--input {text!r}: expected NAME:SHAPE[:DTYPE], e.g. image:1x3x64x64:float32"
        )
    shape: list[Dim] = []
    if match["shape"]:
        for part in match["shape"].split("x"):
            if part.isdigit() and int(part) > 0:
                shape.append(int(part))
            elif re.fullmatch(r"[A-Za-z_]\w*", part):
                shape.append(part)
            else:
                raise EdgekitError(
                    f"--input {text!r}: dimension {part!r} is neither a positive int nor a name"
                )
    dtype = check_dtype(match["dtype"] or "float32", f"--input {text!r}")
    return TensorSpec(match["name"], tuple(shape), dtype)


def parse_dynamic_spec(text: str) -> tuple[str, list[int]]:
    """Parse `--dynamic image:2,3` into ("image", [2, 3])."""
    name, _, axes = text.partition(":")
    try:
        parsed = [int(a) for a in axes.split(",")] if axes else []
    except ValueError:
        parsed = []
    if not name or not parsed or any(a < 0 for a in parsed):
        raise EdgekitError(f"--dynamic {text!r}: expected NAME:AXIS[,AXIS...], e.g. image:2,3")
    return name, parsed


def parse_feed(text: str) -> tuple[str, float | int | bool]:
    """Parse `--feed threshold=0.5` / `num_steps=5` into a scalar override for one input."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise EdgekitError(f"--feed {text!r}: expected NAME=VALUE, e.g. threshold=0")
    for cast in (int, float):
        try:
            return name, cast(value)
        except ValueError:
            pass
    if value.lower() in ("true", "false"):
        return name, value.lower() == "true"
    raise EdgekitError(f"--feed {text!r}: {value!r} is not a number or true/false")


def apply_feeds(feed: dict[str, np.ndarray], overrides: dict[str, Any], specs: list[TensorSpec]) -> dict:
    """Return a copy of `feed` with scalar overrides cast to each input's dtype."""
    by_name = {s.name: s for s in specs}
    out = dict(feed)
    for name, value in overrides.items():
        if name not in by_name:
            raise EdgekitError(
                f"--feed {name}: the model has no input {name!r} (inputs: {', '.join(by_name)})"
            )
        spec = by_name[name]
        out[name] = np.asarray(value, dtype=np_dtype(spec.dtype)).reshape(
            feed[name].shape if name in feed else ()
        )
    return out


def np_dtype(dtype: str) -> np.dtype:
    if dtype == "bfloat16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(dtype)


def feed_problem(value: np.ndarray, spec: "TensorSpec") -> str | None:
    """What keeps `value` from feeding input `spec`, or None when it fits: its dtype ("is int32, the model
    expects int64"), its shape against the rank and static dims, or a value outside the input's valid range.
    The one check for every feed (runners, --data, --calib); callers prefix where the value came from."""
    # a bfloat16 input takes any float array: runners convert it (numpy has no native bfloat16)
    dtype_ok = value.dtype.kind == "f" if spec.dtype == "bfloat16" else value.dtype == np_dtype(spec.dtype)
    if not dtype_ok:
        return f"is {value.dtype}, the model expects {spec.dtype}"
    if value.ndim != len(spec.shape) or any(isinstance(d, int) and d != s for d, s in zip(spec.shape, value.shape)):
        return f"has shape {list(value.shape)}, the model expects {list(spec.shape)}"
    if spec.range is not None and value.size:
        low, high = spec.range
        if value.min() < low or value.max() > high:
            shown = value.item() if value.size == 1 else f"values {value.min()}..{value.max()}"
            return f"= {shown} is outside its valid range [{low}, {high}]"
    return None


def dtype_name(dtype: Any) -> str:
    """Manifest dtype name for a numpy or torch dtype."""
    text = str(dtype).replace("torch.", "")
    return {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int32"}.get(
        text, text
    )


def parse_profile_spec(text: str) -> tuple[str, tuple]:
    """`--trt-shape image:1x1x256x256` (a fixed shape) or `image:MIN,OPT,MAX` → (name, (min, opt, max))."""
    name, sep, shapes = text.partition(":")
    try:
        parsed = [tuple(int(d) for d in part.split("x")) for part in shapes.split(",")] if sep and name else []
    except ValueError:
        parsed = []
    if len(parsed) not in (1, 3) or any(d <= 0 for shape in parsed for d in shape):
        raise EdgekitError(f"--trt-shape {text!r}: expected NAME:SHAPE or NAME:MIN,OPT,MAX, e.g. image:1x1x256x256")
    return name, tuple(parsed * 3 if len(parsed) == 1 else parsed)
