"""`edgekit embed`: the commands that build and run the C++/C examples on a bundle here."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from edgekit.cli.common import JsonOut
from edgekit.ui import console


def embed_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    lang: str = typer.Option(..., "--lang", help="cpp (OpenVINO C++ API) or c (OpenVINO C API)."),
    build_dir: Optional[Path] = typer.Option(None, "--build-dir", help="CMake build folder (default: build/embed-LANG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan (argv lists and shell lines) as JSON on stdout."),
):
    """Print the commands that build the C++ or C example against this machine's OpenVINO and run it on
    BUNDLE: it feeds every testdata sample and checks each output against the stored reference."""
    from edgekit.native.embed import embed_plan

    json_out = JsonOut(as_json)
    plan = embed_plan(bundle_path, lang, build_dir)
    json_out.emit(plan.to_json())
    console.print(f"# {plan.lang} example {plan.source_dir} against OpenVINO in {plan.openvino_dir}", soft_wrap=True,
                  markup=False)
    for line in plan.commands():
        console.print(line, soft_wrap=True, markup=False)
