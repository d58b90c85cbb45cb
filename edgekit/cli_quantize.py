"""`edgekit quantize`: INT8 for an existing fp32 bundle, registered on the main app by cli.py.

It reuses the bundle's ONNX (no second torch.export) and rebuilds its compiled targets from the Q/DQ graph;
the source model is taken from the manifest (zoo models keep their calibration data and task metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.errors import EdgekitError
from edgekit.ui import Reporter


def quantize_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="An fp32 bundle (edgekit export)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="New bundle (default: BUNDLE-int8)."),
    calib: Optional[str] = typer.Option(None, help="Calibration data: image/wav folder, feeds .npz or file.py:fn."),
    calib_samples: int = typer.Option(64, min=1, help="Calibration samples (deterministic subset)."),
    max_drop: Optional[float] = typer.Option(
        None, "--max-drop", help="Keep the most sensitive layers in float until --metric drops at most this."),
    metric: Optional[str] = typer.Option(
        None, help="psnr, si_sdr, cosine or FILE.py:fn (default: the model's own metric, else cosine)."),
    target: Optional[List[str]] = typer.Option(
        None, "--target", "-t", help="Targets to build (default: the bundle's compiled targets)."),
    trt_arch: Optional[str] = typer.Option(None, "--trt-arch", help="TensorRT archs, e.g. sm86,sm89."),
    samples: int = typer.Option(8, min=1, help="Validation samples."),
    force: bool = typer.Option(False, "--force", help="Replace an existing bundle at --out."),
    as_json: bool = typer.Option(False, "--json", help="Print the new manifest as JSON on stdout."),
):
    """Quantize an exported fp32 bundle to INT8 (If/Loop bodies included), validated against fp32 PyTorch."""
    from edgekit.bundle import Bundle, check_destination
    from edgekit.cli import JsonOut, export_and_report
    from edgekit.pipeline import ExportOptions, check_targets, source_from_bundle

    json_out = JsonOut(as_json)
    if max_drop is not None and max_drop < 0:
        raise EdgekitError(f"--max-drop {max_drop:g}: must be ≥ 0")
    bundle = Bundle.load(bundle_path)
    compiled = [k for k in bundle.manifest.artifacts if k in ("openvino", "tensorrt")]
    targets = check_targets(["onnx", *(target or compiled)], "int8")
    out = out or bundle_path.with_name(f"{bundle_path.name}-int8")
    if out.resolve() == bundle_path.resolve():
        raise EdgekitError(f"--out {out}: is the input bundle; write the int8 bundle elsewhere")
    check_destination(out, force)
    reporter = Reporter()
    with reporter.stage(f"source of {bundle_path}"):
        source, adapter = source_from_bundle(bundle)
    if metric is not None:
        from edgekit.metrics import resolve_metric

        resolve_metric(metric, source.module, [])  # a bad --metric fails now, not after calibration
    options = ExportOptions(
        targets=targets, precision="int8", samples=samples, force=force, calib=calib, calib_samples=calib_samples,
        max_drop=max_drop, metric=metric, adapter=adapter, reuse=bundle_path,
        target_options={"trt_arch": trt_arch} if trt_arch else {},
    )
    export_and_report(source, out, options, reporter, json_out, what="int8 bundle")
