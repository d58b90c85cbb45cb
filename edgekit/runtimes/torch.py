"""The PyTorch reference runner: a live module (at export) or the bundle's `model.pt2` program."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec


class TorchRunner(BaseRunner):
    name = "torch"

    def __init__(self, module, inputs: list[TensorSpec], outputs: list[TensorSpec], threads: int | None = None):
        super().__init__(inputs, outputs)
        self._module = module
        if threads:
            import torch

            torch.set_num_threads(threads)

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        feed = self.check_feed(feed)
        args = [torch.from_numpy(np.array(feed[s.name])) for s in self._inputs]
        with torch.inference_mode():
            result = self._module(*args)
        if isinstance(result, torch.Tensor):
            result = (result,)
        values = [r.detach().cpu().numpy() for r in result]
        if len(values) != len(self._outputs):
            names = ", ".join(s.name for s in self._outputs)
            raise ValueError(f"torch: the model returned {len(values)} outputs, expected {names}")
        return {s.name: v for s, v in zip(self._outputs, values)}


def runner_from_bundle(bundle, threads: int | None = None, **_) -> TorchRunner:
    import torch

    program = torch.export.load(str(bundle.artifact_path("torch")))
    m = bundle.manifest
    return TorchRunner(program.module(), m.inputs, m.outputs, threads=threads)
