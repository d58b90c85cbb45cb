"""The sweep as a graph of stage tasks: cells that share an upstream stage share its task.

    prune(density) ──► export(density, precision) ──► measure(cell) ◄── baseline(feeds)
                        export(1.0, fp32) ──► torch(shape, feeds, device) ──┘

A task's key is the content hash of its inputs (cache.stage_key), which includes its upstream keys, so
the same key means the same work: within a run it is submitted once, across runs it is a cache hit.
`measure` and `torch` are device tasks (they time something); the others run anywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgekit import __version__
from edgekit.sweep.cache import stage_key
from edgekit.sweep.config import Cell, SweepConfig

DEVICE_KINDS = ("torch", "measure")


@dataclass
class Task:
    key: str
    kind: str  # prune | export | baseline | torch | measure
    label: str
    payload: dict
    deps: tuple[str, ...] = ()
    device: str | None = None  # device tasks: the label whose `device:<label>` resource they need


@dataclass
class PlannedCell:
    cell: Cell
    task: str | None  # the measure task's key; None when the cell cannot run (see `reason`)
    reason: str | None = None
    export: str | None = None
    prune: str | None = None


@dataclass
class SweepPlan:
    tasks: dict[str, Task] = field(default_factory=dict)  # in dependency order
    cells: list[PlannedCell] = field(default_factory=list)

    def add(self, task: Task) -> str:
        self.tasks.setdefault(task.key, task)
        return task.key


def build_plan(config: SweepConfig, source_sha: str, unroutable, metric_sha: str = "") -> SweepPlan:
    """The task graph of `config`. `unroutable(label)` returns why no host can run that device label's
    benchmarks (None when one can); those cells get no tasks and fail with that reason. `metric_sha`
    (the metric's data) keys the baseline and measure stages, not the exports."""
    plan = SweepPlan()
    common = {"source": config.source, "source_sha": source_sha, "edgekit": __version__,
              "cache": str(config.cache), "verify": config.verify}
    # native keys only when set: the stage keys (the cache) of sweeps without them stay what they were, and
    # the torch row, always timed in Python, is shared between native and Python sweeps
    python_bench = {k: v for k, v in asdict(config.bench).items() if not k.startswith("native")}
    bench = {**python_bench, **{k: v for k, v in asdict(config.bench).items() if k.startswith("native") and v}}
    reference_export = None
    for cell in config.cells():
        reason = unroutable(cell.device)
        if reason:
            plan.cells.append(PlannedCell(cell, None, reason))
            continue
        prune = _prune_task(plan, config, common, cell.density)
        export = _export_task(plan, config, common, cell.density, cell.precision, prune)
        reference_export = reference_export or _export_task(plan, config, common, 1.0, "fp32", None)
        feeds = dict(cell.feeds)
        baseline = plan.add(_task("baseline", f"baseline {_feeds_label(feeds)}".strip(), common,
                                  {"metric": config.metric, "metric_sha": metric_sha, "feeds": feeds}))
        torch = plan.add(_task("torch", f"torch {_where(cell)}", common,
                               {"export": reference_export, "shape": cell.shape, "feeds": feeds, "bench": python_bench},
                               deps=(reference_export,), device=cell.device))
        tune = None
        if config.tune is not None:  # timed on the runtime: on the cell's device, like its benchmark
            tune = plan.add(_task("tune", f"tune d={cell.density:g} {cell.precision} {cell.runtime} @{cell.device}", common,
                                  {"export": export, "runtime": cell.runtime, **asdict(config.tune)},
                                  deps=(export,), device=cell.device))
        measure = plan.add(_task("measure", cell_label(cell), common,
                                 {"export": export, "runtime": cell.runtime, "shape": cell.shape, "feeds": feeds,
                                  "metric": config.metric, "metric_sha": metric_sha, "baseline": baseline,
                                  "torch": torch, "bench": bench, "axes": cell.axes(),
                                  **({"tune": tune} if tune else {})},  # untuned keys as before: caches stay valid
                                 deps=(export, baseline, torch) + ((tune,) if tune else ()), device=cell.device))
        plan.cells.append(PlannedCell(cell, measure, export=export, prune=prune))
    return plan


def cell_label(cell: Cell) -> str:
    parts = [f"d={cell.density:g}", cell.precision, cell.runtime]
    if cell.shape:
        parts.append(cell.shape)
    if cell.feeds:
        parts.append(_feeds_label(dict(cell.feeds)))
    return " ".join(parts) + f" @{cell.device}"


def _prune_task(plan, config, common, density) -> str | None:
    if density >= 1.0:
        return None
    return plan.add(_task("prune", f"prune d={density:g}", common, {"density": density, **asdict(config.prune)}))


def _export_task(plan, config, common, density, precision, prune) -> str:
    inputs = {"precision": precision, "targets": list(config.targets()), "prune": prune,
              **asdict(config.export)}
    return plan.add(_task("export", f"export d={density:g} {precision}", common, inputs,
                          deps=(prune,) if prune else ()))


def _task(kind, label, common, inputs, deps=(), device=None) -> Task:
    # where results live and whether cached files are checked are not what they are: both stay out of the key;
    # where a device task runs is (before, two devices' torch rows were one task, timed on one of them)
    key = stage_key(kind, {k: v for k, v in common.items() if k not in ("cache", "verify")} | inputs
                    | ({"device": device} if device else {}))
    return Task(key, kind, label, {**common, **inputs, "kind": kind, "key": key, "label": label}, deps, device)


def _feeds_label(feeds: dict) -> str:
    return " ".join(f"{k}={v:g}" for k, v in sorted(feeds.items()))


def _where(cell: Cell) -> str:
    return " ".join(p for p in (cell.shape or "", _feeds_label(dict(cell.feeds)), f"@{cell.device}") if p)
