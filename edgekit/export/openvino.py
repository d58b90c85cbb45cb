"""ONNX → OpenVINO IR (`model.xml` + `model.bin`) with `openvino.convert_model` and `save_model`.

`fp16` compresses the weights to half precision (OpenVINO's `compress_to_fp16`); the runtime still
computes at the precision its hint asks for, which parity checks set to f32 (DESIGN.md §4)."""

from __future__ import annotations

from pathlib import Path

from edgekit.errors import ExportError, missing_extra

IR_PRECISIONS = ("fp32", "fp16", "int8")  # int8: converted from a Q/DQ graph (FakeQuantize)


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise missing_extra("openvino", "openvino", "openvino") from None
    return openvino


def ir_from_onnx(onnx_path: Path, xml_path: Path, precision: str = "fp32") -> dict:
    """Convert `onnx_path` to an IR at `xml_path`; return the manifest artifact entry (without sha256)."""
    if precision not in IR_PRECISIONS:
        raise ExportError(f"openvino: precision {precision!r} is not one of {', '.join(IR_PRECISIONS)}")
    ov = import_openvino()
    try:
        model = ov.convert_model(str(onnx_path))
    except Exception as exc:  # OpenVINO names the node and op it could not convert: pass it on
        reason = " ".join(str(exc).split())[:400]
        raise ExportError(f"openvino: converting {onnx_path.name} failed: {reason}") from exc
    ov.save_model(model, str(xml_path), compress_to_fp16=(precision == "fp16"))
    return {
        "path": xml_path.name,
        "weights": xml_path.with_suffix(".bin").name,
        "precision": precision,
        "openvino_version": ov.get_version().split("-")[0],
    }
