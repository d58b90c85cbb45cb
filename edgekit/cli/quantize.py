"""`edgekit quantize`: INT8 for an existing fp32 bundle.

It reuses the bundle's ONNX (no second torch.export) and rebuilds its compiled targets from the Q/DQ graph;
the source model is taken from the manifest (zoo models keep their calibration data and task metric).
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from edgekit.cli.common import (AsJson, Calib, CalibSamples, Force, JsonOut, MaxDrop, Metric, NoVerify, Quantizer,
                                Samples, TrtArch, UseCache, apply_cache_flag, check_max_drop, check_metric, export_and_report)
from edgekit.errors import EdgekitError
from edgekit.ui import Reporter


def quantize_command(
    bundle_path: Path = typer.Argument(..., metavar="BUNDLE", help="An fp32 bundle (edgekit export)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="New bundle (default: BUNDLE-int8)."),
    calib: Calib = None,
    calib_samples: CalibSamples = 64,
    max_drop: MaxDrop = None,
    metric: Metric = None,
    quantizer: Quantizer = "edgekit",
    target: Optional[List[str]] = typer.Option(
        None, "--target", "-t", help="Targets to build (default: the bundle's compiled targets)."),
    trt_arch: TrtArch = None,
    samples: Samples = 8,
    force: Force = False,
    cache: UseCache = True,
    no_verify: NoVerify = False,
    as_json: AsJson = False,
):
    """Quantize an exported fp32 bundle to INT8 (If/Loop bodies included), validated against fp32 PyTorch."""
    from edgekit.bundle import Bundle, check_destination
    from edgekit.pipeline import ExportOptions, check_quantizer, check_targets, source_from_bundle

    json_out = JsonOut(as_json)
    apply_cache_flag(cache)
    check_max_drop(max_drop)
    bundle = Bundle.load(bundle_path, verify=not no_verify)
    compiled = [k for k in bundle.manifest.artifacts if k in ("openvino", "tensorrt")]
    targets = check_targets(["onnx", *(target or compiled)], "int8")
    check_quantizer(quantizer, "int8", targets)
    out = out or bundle_path.with_name(f"{bundle_path.name}-int8")
    if out.resolve() == bundle_path.resolve():
        raise EdgekitError(f"--out {out}: is the input bundle; write the int8 bundle elsewhere")
    check_destination(out, force)
    reporter = Reporter()
    with reporter.stage(f"source of {bundle_path}"):
        source, adapter = source_from_bundle(bundle)
    check_metric(metric, source.module)
    options = ExportOptions(
        targets=targets, precision="int8", samples=samples, force=force, calib=calib, calib_samples=calib_samples,
        max_drop=max_drop, metric=metric, adapter=adapter, reuse=bundle_path, quantizer=quantizer,
        target_options={"trt_arch": trt_arch} if trt_arch else {}, cache=cache, verify=not no_verify,
    )
    export_and_report(source, out, options, reporter, json_out, what="int8 bundle")
