"""The Runner protocol (DESIGN.md §4): one interface over PyTorch, ONNX Runtime, OpenVINO, TensorRT.

A runner is opened from a bundle with `open_runner(bundle, name)`, is a context manager, and maps a feed
dict of numpy arrays to a dict of numpy outputs. Backends are imported lazily inside each runner module.
"""

from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec


@runtime_checkable
class Runner(Protocol):
    name: str

    def inputs(self) -> list[TensorSpec]: ...

    def outputs(self) -> list[TensorSpec]: ...

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


class BaseRunner:
    """Shared behaviour: context management, feed checking against the input specs."""

    name = "base"
    precision = "fp32"

    def __init__(self, inputs: list[TensorSpec], outputs: list[TensorSpec]):
        self._inputs = list(inputs)
        self._outputs = list(outputs)

    def inputs(self) -> list[TensorSpec]:
        return list(self._inputs)

    def outputs(self) -> list[TensorSpec]:
        return list(self._outputs)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def check_feed(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check names, ranks, static dims and dtypes before running; one clear error naming the input."""
        expected = {s.name: s for s in self._inputs}
        missing = [n for n in expected if n not in feed]
        extra = [n for n in feed if n not in expected]
        if missing or extra:
            raise EdgekitError(
                f"{self.name}: feed does not match the model inputs "
                f"(missing: {', '.join(missing) or '-'}; unexpected: {', '.join(extra) or '-'})"
            )
        checked = {}
        for name, spec in expected.items():
            value = np.asarray(feed[name])
            if value.ndim != len(spec.shape):
                raise EdgekitError(
                    f"{self.name}: input {name!r} has rank {value.ndim}, the model expects "
                    f"{len(spec.shape)} {list(spec.shape)}"
                )
            for axis, (got, want) in enumerate(zip(value.shape, spec.shape)):
                if isinstance(want, int) and got != want:
                    raise EdgekitError(
                        f"{self.name}: input {name!r} axis {axis} is {got}, the model expects {want}"
                    )
            if value.dtype.name != spec.dtype and spec.dtype != "bfloat16":
                raise EdgekitError(
                    f"{self.name}: input {name!r} is {value.dtype.name}, the model expects {spec.dtype}"
                )
            if spec.range is not None and value.size:
                low, high = spec.range
                if value.min() < low or value.max() > high:
                    shown = value.item() if value.size == 1 else f"values {value.min()}..{value.max()}"
                    raise EdgekitError(
                        f"{self.name}: input {name!r} = {shown} is outside its valid range [{low}, {high}]"
                    )
            # not np.ascontiguousarray: it turns 0-d scalars (thresholds, step counts) into shape (1,)
            checked[name] = value if value.flags.c_contiguous else value.copy(order="C")
        return checked
