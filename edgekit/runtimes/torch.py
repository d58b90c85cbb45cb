"""The PyTorch reference runner: a live module (at export) or the bundle's `model.pt2` program."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from edgekit.errors import EdgekitError
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
        try:
            with torch.inference_mode():
                result = self._module(*args)
        except Exception as exc:  # the model's own error on this feed: one line naming it, not a traceback
            raise EdgekitError(f"torch: the model raised {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())[:300]}") from exc
        if isinstance(result, torch.Tensor):
            result = (result,)
        values = [r.detach().cpu().numpy() for r in result]
        if len(values) != len(self._outputs):
            names = ", ".join(s.name for s in self._outputs)
            raise EdgekitError(f"torch: the model returned {len(values)} outputs, expected {names}")
        return {s.name: v for s, v in zip(self._outputs, values)}


def runner_from_bundle(bundle, threads: int | None = None, eager: bool = True, **_) -> TorchRunner:
    """PyTorch eager on the bundle's model. With `eager`, a zoo model is rebuilt as users run it (its
    Python control flow; the exported program's cond/while_loop recompile on every eager call, ~1 s for
    a sampler) when its weights hash matches the manifest; otherwise the saved `model.pt2` runs."""
    m = bundle.manifest
    if eager:
        from edgekit.sources import zoo_source_of

        source = zoo_source_of(m.source)  # None unless an installed zoo model (bundles never run code)
        if source is not None and source.sha256 == m.source.get("sha256"):
            module = source.module
            if (m.pipeline or {}).get("prune"):
                from edgekit.pruning import apply_adapter

                module, _ = apply_adapter(module, bundle.artifact_path("adapter"), source.sha256)
            return TorchRunner(module, m.inputs, m.outputs, threads=threads, kind="eager module")
    from edgekit.sources.files import load_program

    path = bundle.artifact_path("torch")
    program = load_program(path, str(path))
    return TorchRunner(program.module(), m.inputs, m.outputs, threads=threads, kind="model.pt2")
