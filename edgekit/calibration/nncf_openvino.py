"""INT8 for the openvino target with NNCF (`export --precision int8|mixed --quantizer nncf`, #20).

NNCF quantizes the OpenVINO IR converted from the fp32 ONNX graph, on the same calibration feeds as
edgekit's Q/DQ. Its OpenVINO backend splits every `If` and quantizes both branches, each calibrated on the
feeds that take it; it does not enter `Loop` bodies, which stay float (the manifest's `quantized` counts
say how many compute ops that leaves). edgekit's Q/DQ stays the method for model.onnx (ONNX Runtime,
TensorRT) and for Loop bodies.

NNCF's defaults would quantize what edgekit deliberately keeps float: convs that only decide a branch
(RBQE's IQAM: −1.3 dB and flipped exits on zoo:rbqe) and a few-channel conv reading a model input. The
nodes edgekit's calibration excluded (`calibration.quantize.int8_from_onnx`, named in the fp32 graph the
IR is converted from) become NNCF's ignored scope, so both methods keep the same layers in float.

NNCF also puts FakeQuantize before element-wise ops (Add, Multiply, Concat, ReduceSum, ...). Only compute
ops (`OPENVINO_COMPUTE`) are left to it, as in edgekit's Q/DQ: measured 2026-12-07 on zoo:rbqe
`--keep-exits 4` (25 held-out crops, AMD EPYC), NNCF defaults: −0.848 dB PSNR vs fp32 at 0.541× fp32's
time; compute ops only: +0.003 dB at the same 0.541× (edgekit's Q/DQ: −0.011 dB at 0.591×). On the plain
U-Net the default quantized the residual `image + ...` add at the calibration images' range (rel-L2 0.75).
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
from pathlib import Path

from edgekit.errors import ExportError, missing_extra

def import_nncf():
    try:
        import nncf
    except ImportError:
        raise missing_extra("nncf", "nncf", "quantize") from None
    nncf.set_log_level(logging.ERROR)
    return nncf


def ignored_patterns(excluded: dict[str, str]) -> list[str]:
    """NNCF ignored-scope patterns for ONNX node names: OpenVINO names a Conv node's convolution `NAME/...`
    (e.g. `NAME/WithoutBiases`) and its bias add `NAME`."""
    return [f"^{re.escape(name)}(/.*)?$" for name in sorted(excluded)]


def non_compute_types(model) -> set[str]:
    """Op types in `model` (If/Loop bodies included) other than the compute ops edgekit quantizes."""
    from edgekit.calibration.quantize import OPENVINO_COMPUTE

    types: set[str] = set()
    for op in model.get_ordered_ops():
        types.add(op.get_type_name())
        if op.get_type_name() == "If":
            for i in (0, 1):
                types |= non_compute_types(op.get_function(i))
        elif op.get_type_name() in ("Loop", "TensorIterator"):
            types |= non_compute_types(op.get_function())
    return types - set(OPENVINO_COMPUTE)


def nncf_ir(fp32_onnx: Path, xml_path: Path, feeds: list[dict], excluded: dict[str, str],
            precision: str = "int8") -> dict:
    """Write the NNCF-quantized IR of `fp32_onnx` to `xml_path`; return the manifest artifact entry."""
    from edgekit.calibration.quantize import openvino_quant_counts
    from edgekit.export.openvino import import_openvino, ir_from_onnx

    ov = import_openvino()
    nncf = import_nncf()
    # from the IR on disk, not convert_model's graph: the ONNX frontend shares Constant nodes between the
    # main graph and If bodies, and NNCF's graph builder, following their edges into the bodies, fails
    # ("Could not find a node ... in NNCFGraph", zoo:rbqe); a read IR has its own constants per graph
    xml_path = Path(xml_path)
    fp32_xml = xml_path.with_name(xml_path.stem + ".nncf-in.xml")
    try:
        converted = ir_from_onnx(Path(fp32_onnx), fp32_xml, "fp32")
        model = ov.Core().read_model(str(fp32_xml))
    finally:
        fp32_xml.unlink(missing_ok=True)
        fp32_xml.with_suffix(".bin").unlink(missing_ok=True)
    names = {p.get_friendly_name() for p in model.get_parameters()}
    items = [{k: v for k, v in feed.items() if k in names} for feed in feeds]
    scope = nncf.IgnoredScope(patterns=ignored_patterns(excluded), types=sorted(non_compute_types(model)),
                              validate=False)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws progress bars on stdout (breaks --json)
            quantized = nncf.quantize(model, nncf.Dataset(items), subset_size=len(items), ignored_scope=scope)
    except Exception as exc:  # NNCF names the node/statistic it failed on
        reason = " ".join(str(exc).split())[:400] or type(exc).__name__
        raise ExportError(f"openvino: NNCF quantization of {Path(fp32_onnx).name} failed: {reason}") from exc
    ov.save_model(quantized, str(xml_path), compress_to_fp16=False)
    counts = openvino_quant_counts(Path(xml_path))
    entry = {"path": Path(xml_path).name, "weights": Path(xml_path).with_suffix(".bin").name, "precision": "int8",
             "openvino_version": ov.get_version().split("-")[0], "quantizer": "nncf",
             "nncf_version": nncf.__version__, "quantized": counts.to_json()}
    if precision == "mixed":
        entry["inference_precision"] = "bf16"
    if "rewrites" in converted:
        entry["rewrites"] = converted["rewrites"]
    return entry

