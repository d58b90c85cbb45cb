"""`edgekit prune`: structured channel pruning with SPLoRA adapters, and its report table."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.common import JsonOut, default_name
from edgekit.ui import Reporter, console


def prune_command(
    source: str = typer.Argument(..., help="zoo:NAME, file.py:factory or package.module:attr"),
    density: float = typer.Option(0.5, help="Fraction of the parameters kept, in (0, 1]."),
    importance: str = typer.Option("magnitude", help="magnitude, gradient or taylor (on the fused weights)."),
    adapter: str = typer.Option("splora", help="splora (train U, V, biases) or none/finetune (train all)."),
    rank: float = typer.Option(8, help="SPLoRA rank: an integer, or a fraction of each layer's d_out below 1."),
    steps: int = typer.Option(10, help="Pruning steps (equal shares of the channels to remove)."),
    recover_minutes: float = typer.Option(2.0, "--recover-minutes", help="Recovery training, spread over the steps."),
    allocate: str = typer.Option("uniform", "--allocate", help="uniform (every group keeps the same share) or "
                                 "spatial (full-resolution layers lose more: faster on CPUs, same density)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output directory (default: pruned/<name>)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output at --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
):
    """Prune channels with SPLoRA adapters: writes model.pt2 (fused, smaller), adapter.safetensors (the task
    file for `edgekit export SOURCE --adapter`) and report.json into --out."""
    from edgekit.pruning.stage import check_prune_destination, check_prune_options, prune_model
    from edgekit.sources import resolve_source

    json_out = JsonOut(as_json)
    check_prune_options(density, importance, adapter, rank, steps, recover_minutes, allocate)
    out = out or Path("pruned") / default_name(source)
    check_prune_destination(out, force)
    reporter = Reporter()
    with reporter.stage(f"resolve {source}"):
        model = resolve_source(source)
    report = prune_model(model, out, density=density, importance=importance, adapter=adapter, rank=rank,
                         steps=steps, recover_minutes=recover_minutes, allocation=allocate, force=force,
                         reporter=reporter)
    json_out.emit(report)
    _print_report(report)
    console.print(f"[green]pruned model written:[/] {out}")


def _print_report(report: dict) -> None:
    table = Table(title=f"edgekit prune {report['source']['spec']} ({report['method']})")
    for col in ("", "before", "after", "ratio"):
        table.add_column(col)
    for key in ("params", "macs"):
        b, a = report[f"{key}_before"], report[f"{key}_after"]
        table.add_row(key, f"{b:,}", f"{a:,}", f"{a / b:.3f}" if b else "-")
    table.add_row("learned parameters", "", f"{report['learned_parameters']:,}", "")
    console.print(table)
    recovery = report["recovery"]
    kept = (f"channels kept per group: {report['keep_ratio']:.3f}" if report["allocation"] == "uniform" else
            f"channels kept in the full-resolution groups: {report['keep_ratio']:.3f} (--allocate spatial)")
    console.print(f"  {kept} · recovery: "
                  f"{recovery.get('note') or recovery['recipe']}", soft_wrap=True)
