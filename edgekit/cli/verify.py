"""`edgekit verify`: check a whole bundle against its manifest (DESIGN.md §8): every artifact's sha256 and
size (sidecar files included), every path kept inside the bundle, the testdata index and each of its files.
Exit 0 when everything matches, 1 otherwise (every problem listed, one line each)."""

from __future__ import annotations

from pathlib import Path

import typer

from edgekit.cli.common import AsJson, JsonOut
from edgekit.errors import EdgekitError
from edgekit.ui import console


def verify_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE"),
    as_json: AsJson = False,
):
    """Check every artifact and testdata file of a bundle against the manifest's sha256 and size."""
    from edgekit.bundle import Bundle
    from edgekit.validation.integrity_report import verify_bundle

    json_out = JsonOut(as_json)
    bundle = Bundle.load(bundle_path)
    report = verify_bundle(bundle)
    json_out.emit({"bundle": str(bundle_path), **report.to_json()})
    for label in report.checked:
        console.print(f"  [green]ok[/] {label}")
    for problem in report.problems:
        console.print(f"  [red]bad[/] {problem}", soft_wrap=True)
    if report:
        console.print(f"[green]verified:[/] {bundle_path} ({len(report.checked)} checks)")
        return
    raise EdgekitError(f"{bundle_path}: {len(report.problems)} problem(s); first: {report.problems[0]}")
