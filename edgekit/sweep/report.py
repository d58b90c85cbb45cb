"""A sweep's result: one row per cell, the Pareto front (latency vs metric) per device and the recommended
variant per device, rendered as JSON, a rich table, Markdown and a scatter plot (matplotlib, lazily).
Nothing here runs a stage; `run.py` builds the result from the stages' outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgekit.errors import EdgekitError

OK, OVER, FAILED = "ok", "over budget", "failed"


@dataclass
class CellResult:
    id: str
    axes: dict
    status: str  # ok | over budget | failed
    reason: str | None = None
    size_mb: float | None = None
    metric: str | None = None
    baseline: float | None = None
    value: float | None = None
    drop: float | None = None
    p50_ms: float | None = None
    vs_torch: float | None = None
    validation: str | None = None  # the cell runtime's export validation status
    pareto: bool = False
    recommended: bool = False
    stages: dict = field(default_factory=dict)  # kind → ran | cached | failed | skipped
    where: dict = field(default_factory=dict)  # host/pid (Ray: node, assigned resources) of the benchmark
    unavailable: bool = False  # failed because its runtime/device cannot run here (not a sweep failure)
    api: str | None = None  # who made the timed calls: python, or c++ / c ([bench] native)
    tuned: dict | None = None  # [tune]: the knob setting the cell was measured at

    @property
    def measured(self) -> bool:
        return self.status != FAILED and self.p50_ms is not None and self.value is not None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class SweepResult:
    name: str
    source: str
    executor: str
    metric: str | None
    budget: float | None
    cells: list[CellResult]
    stages: dict  # kind → {"ran": n, "cached": n, "failed": n, "skipped": n}
    cache: str
    date: str
    machine: dict = field(default_factory=dict)
    verified: bool = True  # False: `--no-verify`, cached bundles used without checking their sha256

    @property
    def recommended(self) -> dict[str, str]:
        return {c.axes["device"]: c.id for c in self.cells if c.recommended}

    def __bool__(self) -> bool:
        return any(c.status != FAILED for c in self.cells)

    def to_json(self) -> dict:
        return {"name": self.name, "source": self.source, "executor": self.executor, "metric": self.metric,
                "budget": self.budget, "date": self.date, "cache": self.cache, "stages": self.stages,
                "recommended": self.recommended, "machine": self.machine,
                "cells": [c.to_json() for c in self.cells], **({} if self.verified else {"verified": False})}


def pareto_front(points: list[tuple[float, float]]) -> list[bool]:
    """For (latency, metric) points, whether each is on the front: no other point is at least as fast and
    at least as accurate, and strictly better in one. Equal points are all kept."""
    return [not any(lj <= li and mj >= mi and (lj < li or mj > mi) for lj, mj in points) for li, mi in points]


def mark_front_and_recommend(cells: list[CellResult], budget: float | None) -> None:
    """Per device: the Pareto front over measured cells, and the fastest cell within the budget (no budget:
    the fastest measured cell). A cell whose validation failed never gets here: it is `failed`."""
    for device in dict.fromkeys(c.axes["device"] for c in cells):
        measured = [c for c in cells if c.axes["device"] == device and c.measured]
        for cell, front in zip(measured, pareto_front([(c.p50_ms, c.value) for c in measured])):
            cell.pareto = front
        eligible = [c for c in measured if c.status == OK]
        if eligible:
            min(eligible, key=lambda c: c.p50_ms).recommended = True


# --- rendering -----------------------------------------------------------------------------------

COLUMNS = ("cell", "status", "size MB", "metric", "drop", "p50 ms", "× torch", "")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def row_cells(c: CellResult) -> list[str]:
    mark = ("★ " if c.recommended else "") + ("◆" if c.pareto else "")
    tuned = " · tuned " + ", ".join(f"{k}={v:g}" for k, v in c.tuned.items()) if c.tuned else ""
    return [c.id + tuned, c.status, _num(c.size_mb, ".2f"), _num(c.value, ".6g"), _num(None if c.drop is None else round(c.drop, 4) + 0.0, "+.3g"),
            _num(c.p50_ms, ".3f"), _num(c.vs_torch, ".3g"), mark.strip()]


def rich_table(result: SweepResult):
    from rich.table import Table

    budget = "no budget" if result.budget is None else f"budget: drop ≤ {result.budget:g}"
    table = Table(title=f"edgekit sweep {result.name} ({result.source}, {result.executor})",
                  caption=f"metric {result.metric or '-'} vs the fp32 unpruned reference ({budget}); ◆ Pareto "
                          f"front (p50 vs metric, per device); ★ recommended: fastest within the budget")
    colours = {OK: "green", OVER: "yellow", FAILED: "red"}
    for col in COLUMNS:
        table.add_column(col, justify="right" if col in ("size MB", "metric", "drop", "p50 ms", "× torch") else "left")
    for c in result.cells:
        cells = row_cells(c)
        cells[1] = f"[{colours[c.status]}]{c.status}[/]"
        table.add_row(*cells)
    return table


def failure_notes(result: SweepResult) -> list[str]:
    return [f"{c.id}: {c.reason}" for c in result.cells if c.reason]


def markdown(result: SweepResult, plot: Path | None = None) -> str:
    budget = "none" if result.budget is None else f"drop ≤ {result.budget:g}"
    lines = [f"Sweep `{result.name}` of `{result.source}` ({result.executor}), {result.date}. Metric: "
             f"{result.metric or '-'} vs the fp32 unpruned reference; budget: {budget}.", "",
             "| cell | status | size MB | metric | drop | p50 ms | × vs torch | |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for c in result.cells:
        cells = row_cells(c)
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "◆ on the Pareto front (p50 latency vs metric, per device) · ★ recommended (fastest within "
                  "the budget)", ""]
    for device, cell in result.recommended.items():
        lines.append(f"- recommended on `{device}`: `{cell}`")
    notes = failure_notes(result)
    if notes:
        lines += ["", "Failed cells:", ""] + [f"- {n}" for n in notes]
    runs = ", ".join(f"{k}: {v['ran']} ran / {v['cached']} cached" for k, v in result.stages.items())
    lines += ["", f"Stages: {runs}."]
    if plot is not None:
        lines += ["", f"![latency vs {result.metric}]({plot.name})"]
    return "\n".join(lines) + "\n"


def require_matplotlib():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgekitError("the sweep plot needs matplotlib (pip install 'edgekit[bench]')") from None
    return plt


def write_plot(path: Path, result: SweepResult) -> None:
    """Scatter of p50 latency vs metric, one colour per device, the Pareto front joined, ★ on the pick."""
    plt = require_matplotlib()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for device in dict.fromkeys(c.axes["device"] for c in result.cells):
        cells = [c for c in result.cells if c.axes["device"] == device and c.measured]
        if not cells:
            continue
        dots = ax.scatter([c.p50_ms for c in cells], [c.value for c in cells], label=device, zorder=3)
        front = sorted((c for c in cells if c.pareto), key=lambda c: c.p50_ms)
        ax.plot([c.p50_ms for c in front], [c.value for c in front], "--", color=dots.get_facecolor()[0], zorder=2)
        for c in cells:
            ax.annotate(c.id.rsplit(" @", 1)[0], (c.p50_ms, c.value), fontsize=7, xytext=(4, 3),
                        textcoords="offset points")
            if c.recommended:
                ax.scatter([c.p50_ms], [c.value], marker="*", s=250, color="gold", edgecolor="black", zorder=4)
    if result.budget is not None:
        baselines = {c.baseline for c in result.cells if c.baseline is not None}
        if len(baselines) == 1:  # one reference (no feeds axis): the budget is one line
            ax.axhline(baselines.pop() - result.budget, color="grey", lw=0.8, ls=":", label="budget")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel(result.metric or "metric")
    ax.set_title(f"edgekit sweep {result.name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
