"""Stage times of one `edgekit export` (issue #26): source build, torch.export, ONNX decomposition,
translation and onnxscript optimizer, save, model.pt2, OnnxSlim, each target build and each validation.

    .venv/bin/python benchmarks/profile_export.py zoo:rbqe --target onnx --target openvino --target tensorrt
    .venv/bin/python benchmarks/profile_export.py zoo:rbqe ... --cache DIR   # run twice: cold, then cached

The torch exporter's internal steps are timed by wrapping its functions for the duration of the run only
(`_timed`, a context manager); nothing is patched at import time. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

TIMES: dict[str, float] = {}


def _add(label: str, seconds: float) -> None:
    TIMES[label] = TIMES.get(label, 0.0) + seconds


@contextlib.contextmanager
def _timed(owner, attr: str, label: str):
    original = getattr(owner, attr)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            _add(label, time.perf_counter() - start)

    with mock.patch.object(owner, attr, wrapper):
        yield


class TimingReporter:
    """A Reporter that records each stage's wall time."""

    quiet = True

    @contextlib.contextmanager
    def stage(self, label: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            _add(label, time.perf_counter() - start)
            print(f"  {time.perf_counter() - start:7.1f} s  {label}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", nargs="?", default="zoo:rbqe")
    parser.add_argument("--target", action="append", default=None)
    parser.add_argument("--trt-arch", default="sm86,sm89")
    parser.add_argument("--cache", default=None, help="export cache dir (default: none, i.e. --no-cache)")
    parser.add_argument("--json", default=None, help="write the stage times here")
    args = parser.parse_args()
    targets = tuple(args.target or ("onnx", "openvino", "tensorrt"))

    import torch
    from torch.onnx._internal.exporter import _core, _onnx_program

    from edgekit.export import onnx as edgekit_onnx
    from edgekit.pipeline import ExportOptions, export_bundle
    from edgekit.sources import resolve_source

    start_all = time.perf_counter()
    start = time.perf_counter()
    source = resolve_source(args.source)
    _add("source: build the model", time.perf_counter() - start)
    options = ExportOptions(targets=targets, force=True,
                            target_options={"trt_arch": args.trt_arch.split(",")} if "tensorrt" in targets else {})
    # --cache DIR: the export cache in DIR (run twice: cold, then cached); without it, no cache at all
    os.environ["EDGEKIT_CACHE"] = str(Path(args.cache).resolve()) if args.cache else "off"
    with contextlib.ExitStack() as stack:
        stack.enter_context(_timed(torch.export, "export", "  torch.export.export"))
        stack.enter_context(_timed(_core, "_prepare_exported_program_for_export", "  onnx: decompositions"))
        stack.enter_context(_timed(_core, "_exported_program_to_onnx_program", "  onnx: translation"))
        stack.enter_context(_timed(_onnx_program.ONNXProgram, "optimize", "  onnx: onnxscript optimizer"))
        stack.enter_context(_timed(_onnx_program.ONNXProgram, "save", "  onnx: save"))
        stack.enter_context(_timed(torch.export, "save", "torch.export.save (model.pt2)"))
        from edgekit.export.cache import ExportCache

        stack.enter_context(_timed(ExportCache, "onnx_key", "cache: key (weights + code hash)"))
        stack.enter_context(_timed(ExportCache, "get", "cache: look up / restore"))
        stack.enter_context(_timed(ExportCache, "put", "cache: store"))
        with tempfile.TemporaryDirectory() as tmp:
            export_bundle(source, Path(tmp) / "bundle", options, TimingReporter())
    total = time.perf_counter() - start_all
    _add("total (source → bundle)", total)
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    print(f"\n{args.source} → {', '.join(targets)} on {model} ({os.cpu_count()} cores), "
          f"torch {torch.__version__}, load {os.getloadavg()[0]:.1f}\n")
    print("| stage | s |\n|---|---:|")
    for label, seconds in TIMES.items():
        print(f"| {label} | {seconds:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"source": args.source, "targets": targets, "cpu": model,
                                               "python": platform.python_version(), "times": TIMES}, indent=2))


if __name__ == "__main__":
    main()
