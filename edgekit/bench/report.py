"""Rendering of `edgekit bench` results: the rich table (stderr), the Markdown report with the machine it
ran on, the latency-distribution plot (matplotlib, imported lazily) and the progress bar. Measurement
lives in `stats.py` and `worker.py`; nothing here times anything.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

from edgekit.bench.stats import BenchCase, BenchResult
from edgekit.errors import EdgekitError

COLUMNS = ("runtime", "mode", "precision", "status", "size MB", "load ms", "p50 ms", "p90 ms", "p99 ms",
           "± ms", "inf/s", "peak MB", "× torch")
TERMINAL_COLUMNS = tuple(c for c in COLUMNS if c != "p90 ms")  # the report keeps p90; 140 columns don't


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def row_cells(r: BenchResult) -> list[str]:
    """The table cells of one row, shared by the terminal table and the Markdown report."""
    status = r.status + (" ✓" if (r.validation or {}).get("status") == "passed" else "")
    lat = r.latency_ms or {}
    mode = r.mode if r.mode != "throughput" else f"{r.mode} ×{r.requests}"
    return [r.name, mode, r.precision, status, _num(r.size_mb, ".2f"), _num(r.load_ms, ".0f"),
            _num(lat.get("p50"), ".3f"), _num(lat.get("p90"), ".3f"), _num(lat.get("p99"), ".3f"),
            _num(lat.get("stdev"), ".3f"), _num(r.throughput, ".1f"), _num(r.peak_rss_mb, ".0f"),
            _num(r.vs_torch, ".2f")]


def notes(results: list[BenchResult]) -> list[str]:
    """Why a row is unavailable or failed, and the parity of validated (precision-hint) rows."""
    out = []
    for r in results:
        if r.reason:
            out.append(f"{r.label}: {r.status}: {r.reason}")
        checked = r.validation or {}
        if checked.get("status") == "passed":
            out.append(f"{r.label}: ✓ validated against the testdata reference outputs, rel L2 "
                       f"{checked['max_rel_l2']:.2e} ≤ {checked['max_rel_l2_allowed']:g}")
    if any(r.mode == "static" for r in results):
        out.append("static: OpenVINO compiled at this feed's shapes (the first call of each new shape compiles; "
                   "in Python runner_from_bundle(bundle, static_shapes=True), in C++ model->reshape before compile)")
    return out


def results_table(results: list[BenchResult], title: str):
    from rich.table import Table

    table = Table(title=title, caption="p50 = median after warm-up; ± = stdev; × torch = time per inference "
                                       "/ PyTorch eager p50 (< 1 is faster); each row measured in its own process")
    for col in COLUMNS:
        if col in TERMINAL_COLUMNS:
            numeric = col.endswith(("MB", "ms", "/s", "torch"))
            table.add_column(col, justify="right" if numeric else "left", no_wrap=numeric,
                             min_width=len("unavailable") if col == "status" else None)
    colours = {"ok": "green", "unavailable": "yellow", "failed": "red"}
    for r in results:
        cells = row_cells(r)
        cells[3] = f"[{colours.get(r.status, 'white')}]{cells[3]}[/]"
        table.add_row(*(c for col, c in zip(COLUMNS, cells) if col in TERMINAL_COLUMNS))
    return table


def markdown_report(payload: dict, results: list[BenchResult]) -> str:
    """The report: machine (CPU, cores, ISA flags, GPU, versions), settings, the table and reasons."""
    machine, settings = payload["machine"], payload["settings"]
    cpu, gpu = machine["cpu"], machine["gpu"]
    gpus = ", ".join(f"{d['name']} ({d['compute_capability']})" for d in gpu.get("devices", []))
    lines = [f"# edgekit bench: `{payload['bundle']}`", "", "## Machine", "", "| | |", "|---|---|",
             f"| CPU | {cpu['model']} |", f"| cores | {cpu['cores']} |",
             f"| ISA flags | {' '.join(cpu['isa']) or '-'} |",
             f"| GPU | {gpus if gpu['visible'] else 'none (' + str(gpu.get('reason')) + ')'} |",
             f"| platform | {machine['platform']} |", f"| python | {machine['python']} |",
             f"| edgekit | {machine['edgekit']} |"]
    lines += [f"| {name} | {version} |" for name, version in machine["backends"].items() if version]
    budget = f"{settings['seconds']} s per row" if settings.get("seconds") else f"{settings['iters']} iterations"
    lines += ["", "## Settings", "",
              f"- source: `{payload.get('source', '-')}`",
              "- inputs: " + ", ".join(f"`{k}` {v['shape']} {v['dtype']}" for k, v in payload["inputs"].items()),
              f"- feed overrides: {payload['feed'] or 'none'}; batch {settings['batch']}; "
              f"threads {settings['threads'] or 'runtime default'}; device {settings['device']}",
              f"- timing: {settings['warmup']} warm-up calls excluded, then {budget}; median (p50) reported with "
              "p90/p99 and stdev; `perf_counter_ns` per call (CUDA events for GPU runners); each row in its own "
              "spawned process, peak memory = that process's peak resident set",
              "", "## Results", "",
              "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row_cells(r)) + " |" for r in results]
    lines += [""] + [f"- {note}" for note in notes(results)]
    lines += ["", "× torch: this row's time per inference divided by PyTorch eager's p50 in the same run "
                  "(< 1 is faster); throughput rows use 1 / throughput.", ""]
    return "\n".join(lines)


def write_report(path: Path, payload: dict, results: list[BenchResult]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown_report(payload, results))


def require_matplotlib():
    """Import matplotlib's Agg canvas, or say which extra provides it (checked before any timing)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise EdgekitError("--plot needs matplotlib: pip install 'edgekit[bench]'") from None
    return Figure, FigureCanvasAgg


def write_plot(path: Path, results: list[BenchResult], title: str) -> None:
    """A PNG with one box per measured row (whiskers p1–p99, median marked): the latency distribution."""
    figure_cls, canvas_cls = require_matplotlib()
    measured = [r for r in results if r.samples_ms]
    if not measured:
        raise EdgekitError(f"--plot {path}: no runtime produced timings to plot")
    figure = figure_cls(figsize=(8, 1.2 + 0.6 * len(measured)), dpi=100)
    canvas_cls(figure)  # attaches the Agg canvas; no pyplot, no global backend switch
    axes = figure.add_subplot()
    data, labels = [r.samples_ms for r in measured], [r.label for r in measured]
    if _new_boxplot_api():
        axes.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=False, tick_labels=labels)
    else:
        axes.boxplot(data, vert=False, whis=(1, 99), showfliers=False, labels=labels)
    for y, r in enumerate(measured, start=1):
        axes.annotate(f"p50 {r.latency_ms['p50']:.3f} ms", (r.latency_ms["p50"], y - 0.3), fontsize=8, ha="center")
    axes.invert_yaxis()
    low = min(min(r.samples_ms) for r in measured)
    if low > 0 and max(r.latency_ms["p99"] for r in measured) / low > 30:
        axes.set_xscale("log")  # runtimes an order of magnitude apart stay readable
    axes.set_xlabel("latency per request (ms); box p25–p75, whiskers p1–p99")
    axes.set_title(title, fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def _new_boxplot_api() -> bool:
    import matplotlib

    major, minor = (int(p) for p in matplotlib.__version__.split(".")[:2])
    return (major, minor) >= (3, 10)  # `orientation=` and `tick_labels=` replace `vert=` and `labels=`


@contextlib.contextmanager
def bench_progress(console, cases: list[BenchCase]) -> Iterator[Callable[[int, str, object], None]]:
    """A rich progress bar on stderr, one line per row; yields the `on_event` callback for `run_cases`."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        tasks: dict[int, int] = {}

        def on_event(index: int, kind: str, value) -> None:
            case = cases[index]
            label = f"{case.runtime} {case.precision}" + ("" if case.mode == "latency" else f" ({case.mode})")
            if index not in tasks:
                tasks[index] = progress.add_task(label, total=1.0)
            if kind == "phase":
                progress.update(tasks[index], description=f"{label}: {value}")
            elif kind == "progress":
                progress.update(tasks[index], completed=float(value))
            elif kind == "done":
                progress.update(tasks[index], completed=1.0, description=f"{label}: {value.status}")

        yield on_event
