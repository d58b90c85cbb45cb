"""`edgekit inspect`: what is inside a bundle or an ONNX file — inputs/outputs, op histogram, If/Loop
counts through subgraphs, sizes, and each artifact's own facts (engine arch, precision, layers)."""

from __future__ import annotations

from pathlib import Path

from edgekit.bundle import Bundle
from edgekit.errors import EdgekitError
from edgekit.export.controlflow import control_flow_counts, load_onnx, max_if_depth, op_histogram


def inspect_onnx(path: Path) -> dict:
    """Facts about one ONNX file (weights are not loaded)."""
    from edgekit.pipeline import output_specs
    from edgekit.sources.model import onnx_value_spec

    model = load_onnx(Path(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    params = 0
    for init in model.graph.initializer:
        count = 1
        for d in init.dims:
            count *= d
        params += count
    data = Path(path).with_name(Path(path).name + ".data")
    return {
        "path": str(path),
        "size_bytes": Path(path).stat().st_size + (data.stat().st_size if data.exists() else 0),
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "inputs": [onnx_value_spec(v).to_json() for v in model.graph.input if v.name not in initializers],
        "outputs": [s.to_json() for s in output_specs(model)],
        "parameters": params,
        "control_flow": control_flow_counts(model),
        "if_nesting_depth": max_if_depth(model.graph),
        "ops": op_histogram(model),
    }


def inspect_path(path: Path) -> dict:
    """Inspect a bundle directory or an `.onnx` file."""
    path = Path(path)
    if path.is_dir():
        bundle = Bundle.load(path)
        m = bundle.manifest
        info = {"bundle": str(path), "manifest": m.to_json()}
        if "onnx" in m.artifacts:
            info["onnx"] = inspect_onnx(bundle.artifact_path("onnx"))
        return info
    if path.suffix == ".onnx":
        return {"onnx": inspect_onnx(path)}
    if not path.exists():
        raise EdgekitError(f"{path}: does not exist")
    raise EdgekitError(f"{path}: not a bundle directory or an .onnx file")
