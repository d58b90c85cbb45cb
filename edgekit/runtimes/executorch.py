"""ExecuTorch runner: the bundle's `model.pte` through `executorch.runtime` (the same C++ runtime and XNNPACK
kernels an app links), so its parity here is the artifact's parity on a phone's CPU."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import BackendUnavailable, EdgekitError
from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec
from edgekit.ui import discard_output


class ExecuTorchRunner(BaseRunner):
    name = "executorch"

    def __init__(self, path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec], entry: dict):
        super().__init__(inputs, outputs)
        try:
            import torch

            with discard_output():  # its import prints torchao's library load failures
                from executorch.runtime import Runtime
        except ImportError:
            raise BackendUnavailable("executorch", "executorch is not installed (pip install 'edgekit[executorch]')") \
                from None
        self._torch = torch
        self._shapes = entry.get("shapes", {})
        try:
            with discard_output():  # XNNPACK's cpuinfo logs what it cannot read about this CPU, on every load
                self._method = Runtime.get().load_program(str(path)).load_method(entry.get("method", "forward"))
        except Exception as exc:
            raise EdgekitError(f"executorch: cannot load {path.name}: {' '.join(str(exc).split())[:300]}") from exc

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = self.check_feed(feed)
        for spec in self._inputs:
            problem = shape_problem(np.shape(feed[spec.name]), self._shapes.get(spec.name))
            if problem:
                raise EdgekitError(f"executorch: input {spec.name!r} {problem}")
        values = [self._torch.from_numpy(np.array(feed[s.name])) for s in self._inputs]
        try:
            results = self._method.execute(values)
        except Exception as exc:  # the runtime's error code; its log names the failing kernel
            raise EdgekitError(f"executorch: run failed: {' '.join(str(exc).split())[:300]}") from exc
        return {spec.name: np.array(value) for spec, value in zip(self._outputs, results)}


def shape_problem(shape, declared: dict | None) -> str | None:
    """Why `shape` cannot run on a .pte planned for `declared` ({"shape": traced, "max": bound}), or None."""
    if not declared:
        return None
    traced, bound = list(declared["shape"]), declared.get("max")
    if bound is None and list(shape) != traced:
        return (f"has shape {list(shape)}; this model.pte was built for {traced} only (a program with a loop "
                f"is built with static shapes for ExecuTorch)")
    if bound is not None and (len(shape) != len(bound) or any(s > b for s, b in zip(shape, bound))):
        return f"has shape {list(shape)}; this model.pte takes at most {bound} (memory is planned for that bound)"
    return None


def runner_from_bundle(bundle, **_) -> ExecuTorchRunner:
    m = bundle.manifest
    return ExecuTorchRunner(bundle.artifact_path("executorch"), m.inputs, m.outputs, m.artifacts["executorch"])
