"""`edgekit tune`: fit a bundle's exit thresholds / step counts to a quality budget; the curve as a table
(stderr), JSON (stdout), a Markdown report and a plot."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.common import AsJson, JsonOut
from edgekit.errors import EdgekitError
from edgekit.ui import Reporter, console


def tune_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    data: Optional[str] = typer.Option(
        None, "--data", help="Tuning data: image/wav folder, feeds .npz or file.py:fn (default: a zoo model's own "
                             "task-metric data with ground truth)."),
    budget: Optional[float] = typer.Option(
        None, "--budget", help="Largest metric drop from the costliest setting (default: psnr 0.3, si_sdr 0.5, "
                               "cosine 0.01)."),
    floor: Optional[float] = typer.Option(None, "--floor", help="Also require the metric to be at least this."),
    metric: Optional[str] = typer.Option(
        None, help="psnr, si_sdr (zoo data), cosine or FILE.py:fn(reference_outputs, outputs) (with --data)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Runtime to measure on (default: openvino, "
                                                                          "else onnxruntime)."),
    samples: int = typer.Option(64, min=1, help="At most this many data samples."),
    validate: bool = typer.Option(True, "--validate/--no-validate", help="Re-validate at the chosen setting."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Measure and show, but leave manifest.json as it is."),
    as_json: AsJson = False,
    report: Optional[Path] = typer.Option(None, "--report", help="Write a Markdown report (the whole curve)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Write a PNG of metric vs expected latency."),
):
    """Run every knob setting (exit threshold, step count) on the data through the bundle's runtime, timing
    each call, and make the cheapest setting within the budget the bundle's default (manifest `tuning`)."""
    from edgekit.bundle import Bundle
    from edgekit.tuning.stage import tune_bundle

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path)
    if plot:
        _require_matplotlib()
    result = tune_bundle(bundle, data=data, budget=budget, metric=metric, runtime=runtime, floor=floor,
                         samples=samples, validate=validate, write=not dry_run, reporter=Reporter())
    json_out.emit(result)
    console.print(curve_table(result))
    chosen, ref = result["chosen"], result["reference"]
    console.print(f"[bold]chosen:[/] {_setting(chosen['setting'])} · {result['metric']} {chosen['metric']:.4f} "
                  f"(drop {chosen['drop']:.4f} ≤ {result['budget']:g}) · expected {chosen['expected_latency_ms']:.2f} ms "
                  f"vs {ref['expected_latency_ms']:.2f} ms at {_setting(ref['setting'])} "
                  f"({result['speedup']:.2f}×)", soft_wrap=True)
    if report:
        report.write_text(markdown(result))
        console.print(f"report: {report}")
    if plot:
        write_plot(plot, result)
        console.print(f"plot: {plot}")
    console.print(f"[green]manifest updated:[/] {bundle_path / 'manifest.json'}" if not dry_run else
                  "[yellow]--dry-run: manifest.json left as it was[/]")


def _setting(setting: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "-"


def _paths(paths: dict) -> str:
    return " · ".join(f"{name} " + "/".join(f"{v}:{n}" for v, n in hist.items()) for name, hist in paths.items())


def curve_table(result: dict) -> Table:
    table = Table(title=f"edgekit tune {result['bundle']} ({result['runtime']}, {result['data']['samples']} samples)")
    for col in ("setting", "paths (value:samples)", result["metric"], "drop", "expected ms", "×", ""):
        table.add_column(col)
    ref_ms = result["reference"]["expected_latency_ms"]
    for row in [*result["curve"], {**result["oracle"], "oracle": True}]:
        mark = ("[green]✓ chosen[/]" if row.get("setting") == result["chosen"]["setting"] else
                "oracle" if row.get("oracle") else "" if row["within_budget"] else "[dim]over budget[/]")
        speed = ref_ms / row["expected_latency_ms"] if row["expected_latency_ms"] else 0.0
        table.add_row("per sample" if row.get("oracle") else _setting(row["setting"]), _paths(row["paths"]),
                      f"{row['metric']:.4f}", f"{row['drop']:+.4f}", f"{row['expected_latency_ms']:.2f}",
                      f"{speed:.2f}", mark)
    return table


def markdown(result: dict) -> str:
    ref_ms = result["reference"]["expected_latency_ms"]
    lines = [f"# edgekit tune: `{result['bundle']}`", "",
             f"{result['date']} · runtime {result['runtime']} · data {result['data']['source']} "
             f"({result['data']['samples']} samples) · metric {result['metric']} · budget {result['budget']:g}", "",
             f"| setting | paths | {result['metric']} | drop | expected ms | × vs costliest | |", "|---|---|---:|---:|---:|---:|---|"]
    for row in [*result["curve"], {**result["oracle"], "oracle": True}]:
        mark = "**chosen**" if row.get("setting") == result["chosen"]["setting"] else (
            "oracle" if row.get("oracle") else "" if row["within_budget"] else "over budget")
        speed = ref_ms / row["expected_latency_ms"] if row["expected_latency_ms"] else 0.0
        lines.append(f"| {'per sample' if row.get('oracle') else _setting(row['setting'])} | {_paths(row['paths'])} | "
                     f"{row['metric']:.4f} | {row['drop']:+.4f} | {row['expected_latency_ms']:.2f} | {speed:.2f} | {mark} |")
    return "\n".join(lines) + "\n"


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise EdgekitError("--plot needs matplotlib: pip install 'edgekit[bench]'") from None


def write_plot(path: Path, result: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    rows = result["curve"]
    ax.scatter([r["expected_latency_ms"] for r in rows], [r["metric"] for r in rows],
               c=["tab:blue" if r["within_budget"] else "tab:gray" for r in rows], s=18, label="settings")
    for key, colour in (("chosen", "tab:green"), ("reference", "tab:red"), ("oracle", "tab:purple")):
        r = result[key]
        ax.scatter([r["expected_latency_ms"]], [r["metric"]], c=colour, s=70, marker="*", label=key)
    ax.axhline(result["reference"]["metric"] - result["budget"], color="tab:red", lw=0.8, ls="--", label="budget")
    ax.set_xlabel(f"expected latency per sample, ms ({result['runtime']})")
    ax.set_ylabel(result["metric"])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
