"""`edgekit sweep`: every cell of a sweep config, its table, Pareto front and recommendation."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape

from edgekit.cli.common import JsonOut, NoVerify
from edgekit import jsonsafe
from edgekit.errors import EdgekitError
from edgekit.ui import console


def sweep_command(
    config_path: Path = typer.Argument(..., metavar="SWEEP.TOML", help="The sweep: source, axes, metric, budget."),
    ray: Optional[str] = typer.Option(
        None, "--ray", help="Run the cells as Ray tasks: auto (the cluster `ray start` made), ADDRESS, or local "
                            "(start an instance here that declares this machine's device label)."),
    jobs: Optional[int] = typer.Option(None, "--jobs", "-j", min=1, help="Local worker processes (default: half the cores)."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write a Markdown report (+ a PNG scatter beside it)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write the latency-vs-metric scatter (PNG)."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", min=1,
        help="Seconds one stage may run (locally or as a Ray task) before it fails as hung (default 4 h)."),
    no_verify: NoVerify = False,
    as_json: bool = typer.Option(False, "--json", help="Print the sweep result as JSON on stdout."),
):
    """Export, validate and benchmark every cell of a sweep (density × precision × runtime × shape × feeds ×
    device), sharing stages through a cache; show the Pareto front and the variant to ship per device."""
    from edgekit.env import environment
    from edgekit.sweep import load_config, run_sweep
    from edgekit.sweep.executors import TASK_TIMEOUT_S, LocalExecutor, RayExecutor
    from edgekit.sweep.report import failure_notes, markdown, require_matplotlib, rich_table, write_plot

    json_out = JsonOut(as_json)
    config = load_config(config_path)
    config.verify = not no_verify
    if plot:
        require_matplotlib()  # fail before the sweep, not after
    timeout_s = timeout or TASK_TIMEOUT_S
    executor = RayExecutor(ray, config.local_device, timeout_s=timeout_s) if ray else LocalExecutor(jobs, timeout_s)
    progress = _Progress()
    try:
        with console.status("sweep: checking the model and planning…") as status:
            progress.status = status
            result = run_sweep(config, executor, progress.done, progress.planned)
    finally:
        executor.close()
    result.machine = environment()
    config.out.mkdir(parents=True, exist_ok=True)
    (config.out / "sweep.json").write_text(jsonsafe.dumps(result.to_json(), indent=2, default=str) + "\n")
    json_out.emit(result.to_json())
    console.print(rich_table(result))
    for note in failure_notes(result):
        console.print(f"  [red]✗[/] {escape(note)}", soft_wrap=True)
    for device, cell in result.recommended.items():
        console.print(f"[bold]recommended on {escape(device)}:[/] {escape(cell)}")
    if plot:
        write_plot(plot, result)
        console.print(f"plot: {plot}")
    if report:
        png = report.with_suffix(".png")
        try:
            write_plot(png, result)
        except EdgekitError:  # the plot is optional in a report; the table is the content
            png = None
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(f"# edgekit sweep {result.name}\n\n" + markdown(result, png))
        console.print(f"report: {report}")
    console.print(f"results: {config.out / 'sweep.json'}")
    failed = [c for c in result.cells if c.status == "failed" and not c.unavailable]
    if failed:  # after printing everything; cells that cannot run on this machine are not failures
        raise EdgekitError(f"{config_path}: {len(failed)} of {len(result.cells)} cells failed — "
                           f"{failed[0].id}: {failed[0].reason}" + (" (+ more above)" if len(failed) > 1 else ""))


class _Progress:
    """One line per finished stage (cache hits dimmed, failures in red) under a spinner counting tasks."""

    def __init__(self):
        self.status = None
        self.total = 0
        self.finished = 0

    def planned(self, plan) -> None:
        self.total = len(plan.tasks)
        kinds = {}
        for task in plan.tasks.values():
            kinds[task.kind] = kinds.get(task.kind, 0) + 1
        console.print(f"sweep: {len(plan.cells)} cells → {self.total} tasks "
                      f"({', '.join(f'{n} {k}' for k, n in kinds.items())})")
        self._update()

    def done(self, task, result: dict) -> None:
        self.finished += 1
        if result.get("skipped"):
            pass  # the upstream failure was already reported; the cell shows the reason
        elif result.get("status") != "ok":
            console.print(f"[red]✗[/] {escape(task.label)}: {escape(str(result.get('reason')))}", soft_wrap=True)
        elif result.get("cached"):
            console.print(f"[dim]· {escape(task.label)} (cached)[/]")
        else:
            console.print(f"[green]✓[/] {escape(task.label)} [dim]({result.get('seconds', 0):.1f} s)[/]")
        self._update()

    def _update(self) -> None:
        if self.status is not None:
            self.status.update(f"sweep: {self.finished}/{self.total} tasks done…")
