"""`edgekit testdata`: a bundle's reference inputs and outputs in another tool's format (Polygraphy), so a
device with TensorRT or ONNX Runtime but without edgekit can check the bundle's model."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import AsJson, JsonOut
from edgekit.errors import EdgekitError
from edgekit.ui import console

FORMATS = ("polygraphy",)


def testdata_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    format: str = typer.Option("polygraphy", "--format", help="polygraphy: --load-inputs JSON + RunResults JSON."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Folder to write (default: BUNDLE-polygraphy)."),
    as_json: AsJson = False,
):
    """Write BUNDLE's testdata as Polygraphy input data and RunResults, and print the `polygraphy run`
    commands that check its model.onnx with ONNX Runtime (--onnxrt) or TensorRT (--trt)."""
    from edgekit.bundle import Bundle
    from edgekit.validation.polygraphy_data import polygraphy_from_bundle

    if format not in FORMATS:
        raise EdgekitError(f"--format {format}: not one of {', '.join(FORMATS)}")
    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path)
    out = out or bundle_path.with_name(bundle_path.name + "-polygraphy")
    data = polygraphy_from_bundle(bundle, out)
    json_out.emit(data.to_json())
    console.print(f"# {data.samples} samples → {data.inputs}, {data.outputs}", soft_wrap=True, markup=False)
    for runner, argv in data.commands.items():
        console.print(f"# {runner}:\n{shlex.join(argv)}", soft_wrap=True, markup=False)
