"""What every command module shares: JSON on stdout (`JsonOut`), argument helpers, the options that several
commands declare (one declaration each, as `Annotated` types), and the export-and-report path that
`export` and `quantize` both end in. Nothing here imports a command module, so none imports it back.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, List, Optional

import typer


from edgekit import jsonsafe
from edgekit.errors import EdgekitError, ValidationFailed
from edgekit.ui import console

# --- options declared once ------------------------------------------------------------------------

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
Force = Annotated[bool, typer.Option("--force", help="Replace an existing bundle at --out.")]
Samples = Annotated[int, typer.Option(min=1, help="Validation samples.")]
Calib = Annotated[Optional[str], typer.Option(
    help="int8 calibration data: image/wav folder, .npz/.npy feeds (or a folder of them) or file.py:fn.")]
CalibSamples = Annotated[int, typer.Option(min=1, help="Calibration samples (deterministic subset).")]
MaxDrop = Annotated[Optional[float], typer.Option(
    "--max-drop", help="int8: keep the most sensitive layers in float until --metric drops at most this.")]
Metric = Annotated[Optional[str], typer.Option(
    help="int8 budget metric: psnr, si_sdr, cosine or FILE.py:fn (default: the model's own, else cosine).")]
Quantizer = Annotated[str, typer.Option(
    "--quantizer", help="int8/mixed: who quantizes the openvino IR: edgekit (Q/DQ, If and Loop bodies) or nncf "
                        "(NNCF on the IR: If branches, not Loop bodies; same calibration feeds and float layers). "
                        "model.onnx is always edgekit's.")]
TrtArch = Annotated[Optional[str], typer.Option("--trt-arch", help="TensorRT archs, e.g. sm86,sm89 or current.")]
Feed = Annotated[Optional[List[str]], typer.Option("--feed", help="NAME=VALUE for a scalar input (repeatable).")]
Atol = Annotated[Optional[float], typer.Option(help="Absolute tolerance (default by precision).")]
Rtol = Annotated[Optional[float], typer.Option(help="Relative tolerance (default by precision).")]
NoVerify = Annotated[bool, typer.Option(
    "--no-verify", help="Use the artifacts without checking them against the manifest's sha256 (recorded).")]
RelL2 = Annotated[Optional[float], typer.Option("--rel-l2", help="Max relative L2 error (default by precision).")]
UseCache = Annotated[bool, typer.Option(
    "--cache/--no-cache", help="Reuse ONNX, engines and reference outputs from the export cache ($EDGEKIT_CACHE).")]


class JsonOut:
    """With --json, fd 1 is pointed at stderr for the whole command (libraries print to stdout) and
    the JSON is written to a private duplicate of the real stdout."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self._file = None
        if enabled:
            sys.stdout.flush()
            self._file = os.fdopen(os.dup(1), "w")
            os.dup2(2, 1)

    def emit(self, data) -> None:
        if self._file is not None:
            self._file.write(jsonsafe.dumps(data, indent=2, default=str) + "\n")
            self._file.flush()


# --- argument helpers -----------------------------------------------------------------------------


def split_values(values: Optional[List[str]]) -> list[str]:
    """Repeated and comma-separated option values as one flat list (`-r a,b -r c` → [a, b, c])."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def feeds_from(values: Optional[List[str]]) -> dict:
    """`--feed NAME=VALUE` options as a dict of scalars."""
    from edgekit.specs import parse_feed

    return dict(parse_feed(v) for v in values or [])


def tolerance_from(atol, rtol, rel_l2):
    """A Tolerance when any of the three was given (the others at their fp32 defaults), else None."""
    from edgekit.validation.compare import Tolerance

    if atol is None and rtol is None and rel_l2 is None:
        return None
    return Tolerance(atol if atol is not None else 1e-4, rtol if rtol is not None else 1e-3,
                     rel_l2 if rel_l2 is not None else 1e-5)


def apply_cache_flag(cache: bool) -> None:
    """--no-cache: this command neither reads nor writes the export cache, source hooks included
    (sources/feedcache.py reads EDGEKIT_CACHE), so the command's process sees EDGEKIT_CACHE=off."""
    if not cache:
        os.environ["EDGEKIT_CACHE"] = "off"


def check_max_drop(max_drop: Optional[float]) -> None:
    if max_drop is not None and max_drop < 0:
        raise EdgekitError(f"--max-drop {max_drop:g}: must be ≥ 0")


def check_metric(metric: Optional[str], module) -> None:
    """A bad --metric fails now, not after minutes of calibration."""
    if metric is not None:
        from edgekit.validation.metrics import resolve_metric

        resolve_metric(metric, module, [])


def default_name(spec: str) -> str:
    """The bundle name a source gets without --out: zoo:rbqe?width=4 → rbqe, path/m.py:build → m."""
    if spec.startswith("zoo:"):
        return spec[4:].split("?")[0]
    base = spec.rsplit(":", 1)[0] if not spec.endswith((".onnx", ".pt2")) else spec
    return Path(base).stem.replace(".", "_") or "model"


def export_and_report(source, out: Path, options, reporter, json_out: JsonOut, what: str = "bundle",
                      emit: bool = True) -> None:
    """Run the export pipeline and show the result: the manifest as JSON (with --json, unless `emit` is
    False: a later stage emits it) and the validation table, also when validation failed (the bundle is
    written, then ValidationFailed goes on up)."""
    from edgekit.bundle import Bundle
    from edgekit.cli.render import print_precision_auto, print_validation
    from edgekit.pipeline import export_bundle

    try:
        if options.precision == "auto":
            from edgekit.export.precision_auto import export_auto

            bundle = export_auto(source, out, options, reporter)
        else:
            bundle = export_bundle(source, out, options, reporter)
    except ValidationFailed:
        bundle = Bundle.load(out)
        json_out.emit(bundle.manifest.to_json())
        print_validation(bundle.manifest.validation)
        raise
    if emit:
        json_out.emit(bundle.manifest.to_json())
    print_validation(bundle.manifest.validation)
    print_precision_auto(bundle.manifest.pipeline.get("precision_auto"))
    console.print(f"[green]{what} written:[/] {out}")
