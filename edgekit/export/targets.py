"""Export targets (`edgekit export --target NAME`): what each builds from the bundle's ONNX file and
which runtime validates it. A registry, so an unknown name lists the valid ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from edgekit.registry import Registry


@dataclass(frozen=True)
class BuildContext:
    """What a target's builder gets: the staging dir, the ONNX file in it, and the user's options."""

    root: Path
    onnx_path: Path
    precision: str = "fp32"
    options: dict = field(default_factory=dict)
    log: Callable[[str], None] = lambda message: None


@dataclass(frozen=True)
class Target:
    name: str
    runtime: str  # the runner that validates this target's artifact
    build: Callable[[BuildContext], dict | list | None]  # → manifest artifact entry (without sha256)
    precisions: tuple[str, ...] = ("fp32",)


def _build_onnx(ctx: BuildContext) -> None:
    return None  # the ONNX file is written for every bundle; nothing more to build


def _build_openvino(ctx: BuildContext) -> dict:
    from edgekit.export.openvino import ir_from_onnx

    # bf16: the fp32 IR computed in bf16; mixed: the int8 (FakeQuantize) IR with everything else in bf16.
    # OpenVINO keeps the choice in the compile-time hint, so the entry records it (inference_precision)
    ir_precision = {"bf16": "fp32", "mixed": "int8"}.get(ctx.precision, ctx.precision)
    entry = ir_from_onnx(ctx.onnx_path, ctx.root / "model.xml", precision=ir_precision)
    if ctx.precision in ("bf16", "mixed"):
        entry.update(precision="bf16" if ctx.precision == "bf16" else "int8", inference_precision="bf16")
    if ir_precision == "int8":
        from edgekit.calibration.quantize import openvino_quant_counts

        entry["quantized"] = openvino_quant_counts(ctx.root / "model.xml").to_json()
    return entry


def _build_tensorrt(ctx: BuildContext) -> list:
    from edgekit.export.tensorrt import engines_from_onnx

    return engines_from_onnx(ctx)


def _build_ort_mobile(ctx: BuildContext) -> dict:
    from edgekit.export.ort_mobile import ort_from_onnx

    return ort_from_onnx(ctx.onnx_path, ctx.root, ctx.options.get("ort_platform", "arm"), log=ctx.log)


def _build_executorch(ctx: BuildContext) -> dict:
    from edgekit.errors import ExportError
    from edgekit.export.executorch import DEFAULT_MAX_SCALE, pte_from_program

    program = ctx.root / "model.pt2"
    if not program.is_file():
        raise ExportError("executorch: the target is lowered from the torch.export program (model.pt2); an ONNX "
                          "source has none: export the PyTorch model")
    return pte_from_program(program, ctx.root, ctx.options.get("et_max_steps"),
                            ctx.options.get("et_max_scale", DEFAULT_MAX_SCALE), log=ctx.log)


TARGETS: Registry[Target] = Registry("target")
TARGETS.add("onnx", Target("onnx", "onnxruntime", _build_onnx, ("fp32", "int8")))
TARGETS.add("openvino", Target("openvino", "openvino", _build_openvino, ("fp32", "fp16", "bf16", "int8", "mixed")))
TARGETS.add("tensorrt", Target("tensorrt", "tensorrt", _build_tensorrt, ("fp32", "fp16", "int8")))
TARGETS.add("ort-mobile", Target("ort-mobile", "ort-mobile", _build_ort_mobile, ("fp32", "int8")))
TARGETS.add("executorch", Target("executorch", "executorch", _build_executorch, ("fp32",)))
