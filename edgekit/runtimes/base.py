"""The Runner protocol (DESIGN.md §4): one interface over PyTorch, ONNX Runtime, OpenVINO, TensorRT.

A runner is opened from a bundle with `open_runner(bundle, name)`, is a context manager, and maps a feed
dict of numpy arrays to a dict of numpy outputs. Backends are imported lazily inside each runner module.
"""

from __future__ import annotations

from typing import Mapping, Protocol, runtime_checkable

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.specs import TensorSpec, feed_problem


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
        """Check names, then each input with `specs.feed_problem` (dtype, shape, range) before running; one clear
        error naming the input."""
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
            problem = feed_problem(value, spec)
            if problem:
                raise EdgekitError(f"{self.name}: input {name!r} {problem}")
            # not np.ascontiguousarray: it turns 0-d scalars (thresholds, step counts) into shape (1,)
            checked[name] = value if value.flags.c_contiguous else value.copy(order="C")
        return checked
