"""Structured pruning with Structured Pruning Adapters (SPLoRA) on torch-pruning's DepGraph: the
`[prune]` stage before torch.export (DESIGN.md §1).

- `prune_model(source, out, ...)`: what `edgekit prune` runs; writes model.pt2, adapter.safetensors,
  report.json into `out` and returns the report.
- `apply_adapter(module, adapter_path, source_sha256)`: rebuild the pruned model from its source and a
  task file (`edgekit export --adapter`).

A model with control flow in forward() needs an all-branches trace function (`forward_all`, or
`pruning_forward` + `trace_inputs()`); see `edgekit.pruning.hooks.PRUNING_HOOKS` for every hook.
Heavy imports (torch, torch-pruning, safetensors) happen inside the functions.
"""

from __future__ import annotations

from pathlib import Path


def prune_model(source, out: Path, *, density: float, importance: str = "magnitude", adapter: str = "splora",
                rank: float = 8, steps: int = 10, recover_minutes: float = 0.0, allocation: str = "uniform",
                force: bool = False, reporter=None) -> dict:
    """See `edgekit.pruning.stage.prune_model`."""
    from edgekit.pruning.stage import prune_model as run
    from edgekit.ui import SILENT

    return run(source, out, density=density, importance=importance, adapter=adapter, rank=rank, steps=steps,
               recover_minutes=recover_minutes, allocation=allocation, force=force, reporter=reporter or SILENT)


def apply_adapter(module, adapter_path: Path, source_sha256: str):
    """Prune `module` in place from the task file; returns (module, manifest `pipeline.prune` block).
    See `edgekit.pruning.stage.apply_adapter`."""
    from edgekit.pruning.stage import apply_adapter as run

    return run(module, adapter_path, source_sha256)
