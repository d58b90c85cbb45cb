"""`edgekit inspect`: what is inside a bundle or an ONNX file."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli.common import AsJson, JsonOut


def inspect_command(
    path: Path = typer.Argument(..., help="A bundle directory or an .onnx file."),
    as_json: AsJson = False,
):
    """Inputs/outputs, op histogram, If/Loop counts (through subgraphs), sizes, artifacts."""
    from edgekit.cli.render import print_inspect
    from edgekit.export.inspect import inspect_path

    json_out = JsonOut(as_json)
    info = inspect_path(path)
    json_out.emit(info)
    print_inspect(info)
