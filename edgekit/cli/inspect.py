"""`edgekit inspect`: what is inside a bundle or an ONNX file; with `--runtime openvino`, what each
control-flow boundary costs on OpenVINO's CPU plugin."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.common import AsJson, Feed, JsonOut, feeds_from
from edgekit.errors import EdgekitError


def inspect_command(
    path: Path = typer.Argument(..., help="A bundle directory or an .onnx file."),
    runtime: Optional[str] = typer.Option(
        None, "--runtime", help="openvino: profile each If/Loop boundary (hand-over copies, inserted reorders) "
                                "on the path the feed takes (knobs at their costliest unless --feed sets them)."),
    feed: Feed = None,
    shape: Optional[List[str]] = typer.Option(
        None, "--shape", help="With --runtime: NAME:1x1x256x256 profiles at a deployment's input size "
                              "(the sample's values repeated to fill it; repeatable)."),
    rounds: int = typer.Option(10, min=1, help="Timed rounds per graph with --runtime (medians)."),
    threads: Optional[int] = typer.Option(None, min=1, help="OpenVINO threads with --runtime."),
    as_json: AsJson = False,
):
    """Inputs/outputs, op histogram, If/Loop counts (through subgraphs), sizes, artifacts."""
    from edgekit.cli.render import print_boundaries, print_inspect
    from edgekit.export.inspect import inspect_path, profile_boundaries

    json_out = JsonOut(as_json)
    info = inspect_path(path)
    if runtime is not None:
        info["profile"] = profile_boundaries(path, runtime, feeds_from(feed), rounds, threads, shape)
    elif feed or shape:
        raise EdgekitError("--feed and --shape need --runtime (they set what is profiled)")
    json_out.emit(info)
    print_inspect(info)
    if runtime is not None:
        print_boundaries(info["profile"])
