"""The PyTorch reference runner: a live module (at export) or the bundle's `model.pt2` program."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec


class TorchRunner(BaseRunner):
    name = "torch"

    def __init__(self, module, inputs: list[TensorSpec], outputs: list[TensorSpec], threads: int | None = None,
                 kind: str = "module"):
        super().__init__(inputs, outputs)
        self._module = module
        self.kind = kind  # what runs: "eager module" or "model.pt2" (reported by `edgekit bench`)
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


def runner_from_bundle(bundle, threads: int | None = None, eager: bool = True, **_) -> TorchRunner:
    """PyTorch eager on the bundle's model. With `eager`, a zoo model is rebuilt as users run it (its
    Python control flow; the exported program's cond/while_loop recompile on every eager call, ~1 s for
    a sampler) when its weights hash matches the manifest; otherwise the saved `model.pt2` runs."""
    import torch

    m = bundle.manifest
    if eager and m.source.get("kind") == "zoo":
        from edgekit.sources import resolve_source

        try:
            source = resolve_source(m.source["spec"])
        except Exception:  # the zoo changed since the export: the saved program is the reference
            source = None
        if source is not None and source.sha256 == m.source.get("sha256"):
            module = source.module
            if (m.pipeline or {}).get("prune"):
                from edgekit.pruning import apply_adapter

                module, _ = apply_adapter(module, bundle.artifact_path("adapter"), source.sha256)
            return TorchRunner(module, m.inputs, m.outputs, threads=threads, kind="eager module")
    program = torch.export.load(str(bundle.artifact_path("torch")))
    return TorchRunner(program.module(), m.inputs, m.outputs, threads=threads, kind="model.pt2")
