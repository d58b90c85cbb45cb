"""ONNX → OpenVINO IR (`model.xml` + `model.bin`) with `openvino.convert_model` and `save_model`.

`fp16` compresses the weights to half precision (OpenVINO's `compress_to_fp16`); the runtime still
computes at the precision its hint asks for, which parity checks set to f32 (DESIGN.md §4). GroupNorms are
converted in 4-D (`export.groupnorm`), recorded as the entry's `rewrites`."""

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
    source, rewritten = _rewritten_for_openvino(Path(onnx_path), Path(xml_path))
    try:
        model = ov.convert_model(str(source))
    except Exception as exc:  # OpenVINO names the node and op it could not convert: pass it on
        reason = " ".join(str(exc).split())[:400]
        raise ExportError(f"openvino: converting {onnx_path.name} failed: {reason}") from exc
    finally:
        if source != Path(onnx_path):
            source.unlink(missing_ok=True)
            source.with_name(source.name + ".data").unlink(missing_ok=True)
    ov.save_model(model, str(xml_path), compress_to_fp16=(precision == "fp16"))
    entry = {
        "path": xml_path.name,
        "weights": xml_path.with_suffix(".bin").name,
        "precision": precision,
        "openvino_version": ov.get_version().split("-")[0],
    }
    if rewritten:
        entry["rewrites"] = {"group_norm_4d": rewritten}
    return entry


def _rewritten_for_openvino(onnx_path: Path, xml_path: Path) -> tuple[Path, int]:
    """The ONNX file to convert: `onnx_path`, or a temporary copy beside the IR with its GroupNorms in 4-D
    (`export.groupnorm`: 0.59× of the time for zoo:storm on OpenVINO; ONNX Runtime was 9% slower with it,
    so model.onnx keeps the exporter's form). Returns (path, GroupNorms rewritten)."""
    import onnx

    from edgekit.export.controlflow import load_onnx
    from edgekit.export.groupnorm import rewrite_group_norms

    model = load_onnx(onnx_path, load_external_data=False)
    if not any(n.op_type == "InstanceNormalization" for g in _graphs(model) for n in g.node):
        return onnx_path, 0
    model = load_onnx(onnx_path)  # with its weights: the copy is a standalone file
    count = rewrite_group_norms(model)
    if not count:
        return onnx_path, 0
    copy = xml_path.with_name(xml_path.stem + ".gn4d.onnx")
    onnx.save_model(model, str(copy), save_as_external_data=True, location=copy.name + ".data")
    return copy, count


def _graphs(model):
    from edgekit.export.surface import walk_graphs

    return [graph for _, graph in walk_graphs(model.graph)]
