"""`run_sweep`: check the config against the model, plan the task graph, run it on an executor and turn
the stage results into a `SweepResult`. The CLI (`cli/sweep.py`) only parses, calls this and renders."""

from __future__ import annotations

import time
from typing import Callable

from edgekit.errors import EdgekitError
from edgekit.sweep.checks import ConfigError, parse_shape
from edgekit.sweep.config import SweepConfig
from edgekit.sweep.plan import PlannedCell, SweepPlan, Task, build_plan, cell_label
from edgekit.sweep.report import FAILED, OK, OVER, CellResult, SweepResult, mark_front_and_recommend

STAGE_KINDS = ("prune", "export", "baseline", "torch", "tune", "measure")


def check_against_model(config: SweepConfig):
    """Resolve the source once (its content hash keys the cache) and check the axes that name its inputs
    and the metric, so a wrong name fails now, not in every cell. Returns the ModelSource and the
    metric's fingerprint."""
    from edgekit.validation.metrics import resolve_metric
    from edgekit.sources import resolve_source

    source = resolve_source(config.source)
    inputs = {s.name: s for s in source.inputs}
    for name in config.feeds:
        spec = inputs.get(name)
        if spec is None or spec.shape:
            scalars = ", ".join(s.name for s in source.inputs if not s.shape) or "none"
            raise ConfigError(f"{config.path}: axes.feeds.{name}: not a scalar input of {config.source} "
                              f"(its scalar inputs: {scalars})")
    for shape in config.shape:
        name = parse_shape(shape)[0] if shape else None
        if name is not None and name not in inputs:
            raise ConfigError(f"{config.path}: axes.shape {shape!r}: {config.source} has no input {name!r} "
                              f"(inputs: {', '.join(inputs)})")
    if any(d < 1 for d in config.density) and source.module is None:
        raise ConfigError(f"{config.path}: axes.density < 1 needs a PyTorch module source to prune "
                          f"({config.source} is {source.kind})")
    try:
        metric = resolve_metric(config.metric, source.module, list(source.validation_feeds) or [source.example_feed()])
    except EdgekitError as exc:
        raise ConfigError(f"{config.path}: metric.name: {exc}") from None
    return source, metric_fingerprint(metric)


def metric_fingerprint(metric) -> str:
    """sha256 of the metric's name, feeds and ground truth: part of the baseline and measure keys, so a
    model whose evaluation data changed (crop size, images) is scored again instead of against a stale
    cached baseline."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256(metric.name.encode())
    for item in list(metric.feeds) + list(getattr(metric, "targets", [])):
        for name, value in sorted(item.items()) if isinstance(item, dict) else [("", item)]:
            value = np.ascontiguousarray(value)
            digest.update(f"{name}:{value.dtype}:{value.shape}".encode())
            digest.update(value.tobytes())
    return digest.hexdigest()[:16]


def run_sweep(config: SweepConfig, executor, on_done: Callable[[Task, dict], None] = lambda t, r: None,
              on_plan: Callable[[SweepPlan], None] = lambda plan: None) -> SweepResult:
    """Run every cell of `config` on `executor` (LocalExecutor or RayExecutor); a failed cell is a row
    with its reason, never an exception. Raises ConfigError/EdgekitError before any task starts."""
    source, metric_sha = check_against_model(config)
    plan = build_plan(config, source.sha256, lambda label: executor.unroutable(label, config.local_device),
                      metric_sha)
    on_plan(plan)
    config.cache.mkdir(parents=True, exist_ok=True)
    results = executor.run(plan, on_done) if plan.tasks else {}
    cells = [_cell_result(planned, plan, results) for planned in plan.cells]
    for cell in cells:
        if cell.status != FAILED and config.budget is not None and cell.drop is not None and cell.drop > config.budget:
            cell.status = OVER
    mark_front_and_recommend(cells, config.budget)
    metric = next((c.metric for c in cells if c.metric), config.metric)
    return SweepResult(config.name, config.source, executor.name, metric, config.budget, cells,
                       _stage_counts(plan, results), str(config.cache), time.strftime("%Y-%m-%d %H:%M"),
                       verified=config.verify)


def _cell_result(planned: PlannedCell, plan: SweepPlan, results: dict) -> CellResult:
    cell = planned.cell
    out = CellResult(cell_label(cell), cell.axes(), FAILED)
    if planned.task is None:  # no host declares the cell's device: it cannot run here
        out.reason, out.unavailable = planned.reason, True
        return out
    for kind, key in (("prune", planned.prune), ("export", planned.export), ("measure", planned.task)):
        if key is not None:
            out.stages[kind] = _stage_state(results.get(key, {}))
    result = results.get(planned.task) or {"status": "failed", "reason": "not run"}
    if result.get("status") != "ok":
        out.reason, out.unavailable = result.get("reason"), bool(result.get("unavailable"))
        return out
    metric = result["metric"]
    out.status, out.size_mb, out.p50_ms, out.vs_torch = OK, result["size_mb"], result["p50_ms"], result["vs_torch"]
    out.metric, out.baseline, out.value, out.drop = metric["metric"], metric["baseline"], metric["value"], metric["drop"]
    out.validation, out.where = result.get("validation"), result.get("where", {})
    out.api = result.get("bench", {}).get("api", "python")
    out.tuned = result.get("tuned")
    return out


def _stage_state(result: dict) -> str:
    if result.get("skipped"):
        return "skipped"
    if result.get("status") != "ok":
        return "failed"
    return "cached" if result.get("cached") else "ran"


def _stage_counts(plan: SweepPlan, results: dict) -> dict:
    counts = {k: {"ran": 0, "cached": 0, "failed": 0, "skipped": 0} for k in STAGE_KINDS}
    for key, task in plan.tasks.items():
        counts[task.kind][_stage_state(results.get(key, {}))] += 1
    return {k: v for k, v in counts.items() if any(v.values())}
