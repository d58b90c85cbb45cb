"""`edgekit debug`: where a runtime departs from ONNX Runtime fp32, or which INT8 layers cost the most."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from edgekit.cli.common import JsonOut, NoVerify
from edgekit.errors import EdgekitError
from edgekit.ui import Reporter, console


def debug_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    runtime: str = typer.Option("openvino", "--runtime", "-r", help="openvino or onnxruntime."),
    sample: Optional[int] = typer.Option(None, help="Testdata sample (default: the first one that mismatches)."),
    bisect: bool = typer.Option(False, "--bisect", help="Binary search on the main graph (large models)."),
    sensitivity: bool = typer.Option(False, "--sensitivity", help="INT8: rank quantized layers by the error they add."),
    precision: Optional[str] = typer.Option(None, help="Only int8 (with --sensitivity)."),
    top: int = typer.Option(10, help="Rows of the sensitivity table."),
    report: Optional[Path] = typer.Option(None, help="Write a Markdown report (+ a PNG of the error along the graph)."),
    no_verify: NoVerify = False,
    as_json: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
):
    """Find the first tensor where a runtime departs from ONNX Runtime fp32 (If/Loop bodies included),
    or with --sensitivity, which INT8 layers cost the most accuracy."""
    from edgekit.bundle import Bundle
    from edgekit.validation.debug import bisect_main_graph, int8_sensitivity, localise
    from edgekit.validation.testdata import read_testdata

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path, verify=not no_verify)
    reporter = Reporter()
    if sensitivity or precision == "int8":
        with reporter.stage("int8 sensitivity: one layer back in float at a time"):
            base, ranked = int8_sensitivity(bundle, top)
        json_out.emit({"int8_rel_l2": base, "layers": [vars(r) for r in ranked]})
        table = Table(title=f"INT8 sensitivity (all-int8 output rel L2 {base:.3e})")
        for col in ("#", "layer", "op", "graph", "rel L2 with it in float", "gain", "paths fixed",
                    "gain, same-path samples"):
            table.add_column(col)
        for i, r in enumerate(ranked, 1):
            table.add_row(str(i), r.node, r.op, r.graph, f"{r.rel_l2_float:.3e}", f"{r.gain:+.3e}",
                          str(r.paths_fixed), f"{r.gain_same_path:+.3e}")
        console.print(table)
        if report:
            _write_sensitivity_report(report, bundle_path, base, ranked)
        return
    count = len(read_testdata(bundle.path, bundle.verify))
    candidates = [sample] if sample is not None else list(range(count))
    if bisect:
        with reporter.stage(f"bisect {runtime} vs onnxruntime fp32"):
            for s in candidates:
                first, probes = bisect_main_graph(bundle, runtime, s)
                if first is not None:
                    break
        json_out.emit({"runtime": runtime, "sample": s, "probes": probes, "first": first and vars(first)})
        console.print(f"{probes} probes · " + (f"first mismatch: [bold]{first.node}[/] ({first.op}) → {first.tensor}, "
                                              f"rel L2 {first.rel_l2:.2e}" if first else "no mismatch on the main graph"))
        return
    with reporter.stage(f"compare every tensor: {runtime} vs onnxruntime fp32"):
        for s in candidates:
            result = localise(bundle, runtime, s)
            if not result:
                break
    json_out.emit(result.to_json())
    _print_localisation(result)
    if report:
        _write_localisation_report(report, bundle_path, result)


def _print_localisation(result) -> None:
    if result.first is None:
        console.print(f"[green]no mismatch[/]: {result.compared} tensors agree with onnxruntime fp32 "
                      f"(last sample checked: {result.sample})")
        return
    f = result.first
    console.print(f"[bold red]first mismatch[/] on sample {result.sample}: node [bold]{f.node}[/] ({f.op}) in "
                  f"{f.graph}, tensor {f.tensor}: max abs {f.max_abs_err:.3e}, rel L2 {f.rel_l2:.3e}")
    table = Table(title="its inputs, then what follows it")
    for col in ("", "tensor", "node", "op", "graph", "max abs", "rel L2"):
        table.add_column(col)
    for role, diffs in (("input", result.inputs), ("after", result.after)):
        for d in diffs:
            table.add_row(role, d.tensor, d.node, d.op, d.graph, f"{d.max_abs_err:.2e}",
                          f"[{'green' if d.ok else 'red'}]{d.rel_l2:.2e}[/]")
    console.print(table)


def _write_localisation_report(path: Path, bundle_path: Path, result) -> None:
    lines = [f"# edgekit debug: {bundle_path} ({result.runtime})", ""]
    if result.first:
        f = result.first
        lines += [f"First mismatch on sample {result.sample}: `{f.node}` ({f.op}) in `{f.graph}`, tensor `{f.tensor}`, "
                  f"max abs {f.max_abs_err:.3e}, rel L2 {f.rel_l2:.3e}.", ""]
    else:
        lines += [f"No mismatch: {result.compared} tensors agree.", ""]
    lines += ["| # | tensor | node | op | graph | rel L2 |", "|---|---|---|---|---|---|"]
    lines += [f"| {i} | {d.tensor} | {d.node} | {d.op} | {d.graph} | {d.rel_l2:.2e} |" for i, d in enumerate(result.trace)]
    png = _plot([d.rel_l2 for d in result.trace], [d.tensor for d in result.trace], path.with_suffix(".png"))
    if png:
        lines += ["", f"![error along the graph]({png.name})"]
    path.write_text("\n".join(lines) + "\n")


def _write_sensitivity_report(path: Path, bundle_path: Path, base: float, ranked) -> None:
    lines = [f"# INT8 sensitivity: {bundle_path}", "", f"All layers int8: output rel L2 {base:.3e}.", "",
             "Ranked by exit paths restored, then by the error removed on samples whose path int8 kept.", "",
             "| # | layer | op | graph | rel L2 with it in float | gain | paths fixed | gain, same-path samples |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {i} | {r.node} | {r.op} | {r.graph} | {r.rel_l2_float:.3e} | {r.gain:+.3e} | {r.paths_fixed} | "
              f"{r.gain_same_path:+.3e} |" for i, r in enumerate(ranked, 1)]
    path.write_text("\n".join(lines) + "\n")


def _plot(values: list[float], labels: list[str], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EdgekitError("--report's plot needs matplotlib (pip install 'edgekit[bench]')") from None
    fig, ax = plt.subplots(figsize=(10, 3.5))
    ax.semilogy(range(len(values)), [max(v, 1e-12) for v in values], marker=".")
    ax.set_xlabel("tensor (execution order)")
    ax.set_ylabel("relative L2 vs onnxruntime fp32")
    step = max(1, len(labels) // 20)
    ax.set_xticks(range(0, len(labels), step), labels[::step], rotation=60, fontsize=7, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
