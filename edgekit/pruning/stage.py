"""The prune stage of the pipeline: `prune_model` (source → out/ with model.pt2, adapter.safetensors,
report.json, written atomically) and `apply_adapter` (source module + task file → the pruned module,
for `edgekit export --adapter`)."""

from __future__ import annotations

import copy
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from edgekit import jsonsafe
from edgekit.errors import EdgekitError
from edgekit.ui import SILENT, Reporter

ADAPTERS = {"splora": "splora", "none": "finetune", "finetune": "finetune"}
REPORT_SCHEMA = "edgekit.prune/1"


def check_prune_options(density: float, importance: str, adapter: str, rank: float, steps: int,
                        recover_minutes: float, allocation: str = "uniform") -> tuple[str, int | float]:
    """Validate the options before any work; returns (method, rank). Raises EdgekitError."""
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.hooks import ALLOCATIONS

    if allocation not in ALLOCATIONS:
        raise EdgekitError(f"--allocate {allocation}: unknown (known: {', '.join(ALLOCATIONS)})")

    if not 0 < density <= 1:
        raise EdgekitError(f"--density {density}: must be in (0, 1] (the fraction of parameters kept)")
    importance_named(importance)
    if adapter not in ADAPTERS:
        raise EdgekitError(f"--adapter {adapter}: unknown (known: {', '.join(ADAPTERS)})")
    if not rank > 0:
        raise EdgekitError(f"--rank {rank}: must be > 0 (an integer rank, or a fraction of d_out below 1)")
    if steps < 1:
        raise EdgekitError(f"--steps {steps}: must be at least 1")
    if recover_minutes < 0:
        raise EdgekitError(f"--recover-minutes {recover_minutes}: must be >= 0")
    rank = int(rank) if rank >= 1 and float(rank).is_integer() else float(rank)
    if rank >= 1 and not float(rank).is_integer():
        raise EdgekitError(f"--rank {rank}: an integer, or a fraction of d_out below 1")
    return ADAPTERS[adapter], rank


def check_prune_destination(out: Path, force: bool) -> None:
    out = Path(out)
    if out.exists() and not force:
        raise EdgekitError(f"{out}: already exists (use --force to replace it)")
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise EdgekitError(f"{out}: exists and is not an edgekit prune output; refusing to replace it even "
                           f"with --force")


def prune_model(source, out: Path, *, density: float, importance: str = "magnitude", adapter: str = "splora",
                rank: float = 8, steps: int = 10, recover_minutes: float = 0.0, allocation: str = "uniform",
                force: bool = False, reporter: Reporter = SILENT) -> dict:
    """Prune `source` (a ModelSource with a module) to `density` of its parameters and write `out/`:
    model.pt2 (the fused pruned model, torch.export), adapter.safetensors (the task file) and
    report.json. Returns the report plus absolute `model`/`adapter` paths. Raises EdgekitError for bad
    options, an existing `out` without `force`, or a model that cannot be traced on every branch."""
    from edgekit.pruning.importance import importance_named
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import PruneSettings, count_parameters, prune_module
    from edgekit.pruning.stats import count_macs, layer_channels
    from edgekit.pruning.task_file import input_shapes, write_task_file

    method, rank = check_prune_options(density, importance, adapter, rank, steps, recover_minutes, allocation)
    out = Path(out)
    check_prune_destination(out, force)
    if source.module is None:
        raise EdgekitError(f"{source.spec}: pruning needs a PyTorch module source (zoo:, file.py:fn or "
                           f"package.module:attr), not a {source.kind} file")
    module = copy.deepcopy(source.module)
    plan = plan_for(module, source.spec, tuple(source.example_inputs))
    settings = PruneSettings(density, importance, method, rank, steps, recover_minutes * 60, allocation)
    before = (count_parameters(module), count_macs(module, plan.trace, plan.trace_inputs), layer_channels(module))
    label = f"prune to density {density} ({method}, {importance}, {steps} steps"
    label += f", {recover_minutes:g} min recovery)" if plan.recover else ", no recovery hook)"
    with reporter.stage(label):
        result = prune_module(module, plan, settings, importance_named(importance))
    try:  # torch-pruning can leave layers that no longer fit together (a LayerNorm on a model input's channels)
        after = (count_parameters(module), count_macs(module, plan.trace, plan.trace_inputs), layer_channels(module))
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise EdgekitError(f"{source.spec}: the pruned model no longer runs: {type(exc).__name__}: {first}") from exc
    if after[0] >= before[0]:  # exit 0 with an unpruned "pruned" model would be a quiet lie
        raise EdgekitError(f"{source.spec}: --density {density:g} removed nothing ({before[0]:,} parameters kept): "
                           f"no prunable channel group; most parameters are in {_unprunable(module)}")
    learned = sum(t.numel() for t in result.learned.values())
    meta = {
        "source": {"spec": source.spec, "sha256": source.sha256}, "method": method, "density": density,
        "keep_ratio": round(result.keep_ratio, 6), "allocation": allocation,
        "rank": rank if method == "splora" else None,
        "importance": importance, "steps": steps, "params_before": before[0], "params_after": after[0],
        "macs_before": before[1], "macs_after": after[1], "learned_parameters": learned,
        "trace_inputs": input_shapes(plan.trace_inputs),
        "history": [[name, bool(is_out), [int(i) for i in idxs]] for name, is_out, idxs in result.history],
    }
    from edgekit.bundle import sha256_file, staged_bundle

    with staged_bundle(out, force, check=check_prune_destination) as staging:
        write_task_file(staging / "adapter.safetensors", result.learned, result.masks, meta)
        with reporter.stage("torch.export the pruned model → model.pt2"):
            _save_program(replace(source, module=module), staging / "model.pt2")
        report = _report(source, meta, plan, result, before, after, recover_minutes,
                         sha256_file(staging / "adapter.safetensors"))
        (staging / "report.json").write_text(jsonsafe.dumps(report, indent=2) + "\n")
    return {**report, "model": str((out / "model.pt2").resolve()), "adapter": str((out / "adapter.safetensors").resolve())}


def _unprunable(module) -> str:
    """The largest layers edgekit prune does not cut (not Conv/Linear), for the error that names them."""
    from torch import nn

    sizes = [(sum(p.numel() for p in m.parameters(recurse=False)), name, type(m).__name__)
             for name, m in module.named_modules() if not isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    top = sorted((s for s in sizes if s[0]), reverse=True)[:3]
    return ", ".join(f"{name or 'the model'} ({kind}, {count:,})" for count, name, kind in top) or "no layer"


def apply_adapter(module, adapter_path: Path, source_sha256: str):
    """Prune `module` (the source model) in place as the task file at `adapter_path` says and return it
    (fused, physically smaller, same class and hooks) with the manifest's `pipeline.prune` block.
    Raises EdgekitError when the file was made from another source (sha256 mismatch) or does not fit."""
    from edgekit.bundle import sha256_file
    from edgekit.pruning.plan import plan_for
    from edgekit.pruning.prune import count_parameters, replay_pruning
    from edgekit.pruning.task_file import inputs_from_shapes, read_task_file

    adapter_path = Path(adapter_path)
    learned, masks, meta = read_task_file(adapter_path)
    made_from = meta["source"]["sha256"]
    if made_from != source_sha256:
        raise EdgekitError(f"{adapter_path}: made from source sha256 {made_from} ({meta['source']['spec']}), but "
                           f"this source's sha256 is {source_sha256}")
    plan = plan_for(module, meta["source"]["spec"], inputs_from_shapes(meta["trace_inputs"]))
    replay_pruning(module, plan, meta["method"], meta["rank"], meta["history"], learned, masks, str(adapter_path))
    if count_parameters(module) != meta["params_after"]:
        raise EdgekitError(f"{adapter_path}: the rebuilt model has {count_parameters(module)} parameters, the "
                           f"file says {meta['params_after']}")
    block = {k: meta[k] for k in ("method", "density", "rank", "importance", "params_before", "params_after",
                                  "macs_before", "macs_after", "learned_parameters")}
    block["allocation"] = meta.get("allocation", "uniform")  # task files from before --allocate: uniform
    return module, {**block, "adapter_sha256": sha256_file(adapter_path)}


def _report(source, meta, plan, result, before, after, recover_minutes, adapter_sha) -> dict:
    layers = {name: {"in": [b[0], after[2].get(name, b)[0]], "out": [b[1], after[2].get(name, b)[1]]}
              for name, b in before[2].items()}
    recovery = {"minutes": recover_minutes, "recipe": plan.recovery,
                "ran": bool(plan.recover) and recover_minutes > 0,
                "steps": sum(r.get("steps", 0) for r in result.recovery)}
    if not plan.recover:
        recovery["note"] = "no recovery: the model has no recipe and no recovery(model, seconds) hook"
    return {
        "schema": REPORT_SCHEMA, **{k: v for k, v in meta.items() if k not in ("history", "trace_inputs")},
        "macs_ratio": after[1] / before[1] if before[1] else None,
        "params_ratio": after[0] / before[0] if before[0] else None,
        "macs_input": meta["trace_inputs"], "recovery": recovery, "layers": layers,
        "adapter_sha256": adapter_sha, "files": ["model.pt2", "adapter.safetensors", "report.json"],
    }


def _save_program(source, path: Path) -> None:
    import torch

    from edgekit.export.onnx import exported_program_from_torch

    log_dir = Path(tempfile.gettempdir()) / "edgekit-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"prune-export-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log", "w") as log:
        program = exported_program_from_torch(source, log)
    torch.export.save(program, str(path))
