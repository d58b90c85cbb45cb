"""ONNX → ONNX Runtime Mobile (`model.ort`, ORT's flatbuffer format) with onnxruntime's own converter
(`onnxruntime.tools.convert_onnx_models_to_ort`), `If` and `Loop` kept.

The converter also writes the operator list an app needs for ORT's reduced-size builds
(`--include_ops_by_config`, `--enable_type_reduction`): kept beside the model as `model.ort.ops.config`
and listed in the manifest entry. The "Fixed" optimization style bakes the graph optimizations in for one
platform: `arm` (phones, the default) or `amd64` (x86). An `arm` .ort still runs on x86 (validation here
runs it), only slower than the `.onnx`; `amd64` matched the `.onnx`'s speed on this project's x86 CPUs.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from pathlib import Path

from edgekit.errors import ExportError, missing_extra

PLATFORMS = ("arm", "amd64")
ORT_FILE = "model.ort"
OPS_FILE = "model.ort.ops.config"


def ort_from_onnx(onnx_path: Path, root: Path, platform: str = "arm", log=lambda message: None) -> dict:
    """Convert `onnx_path` (and its external data) into `root/model.ort`; return the manifest entry."""
    if platform not in PLATFORMS:
        raise ExportError(f"--ort-platform {platform!r}: choose one of {', '.join(PLATFORMS)}")
    try:
        import onnxruntime as ort
        from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort
    except ImportError:
        raise missing_extra("ort-mobile", "onnxruntime", "onnxruntime") from None
    with tempfile.TemporaryDirectory(prefix="ort-mobile-", dir=root) as tmp:
        work = Path(tmp)
        # the converter takes every .onnx in a folder: give it one holding just this model (and its data)
        for file in (onnx_path, onnx_path.with_name(onnx_path.name + ".data")):
            if file.exists():
                shutil.copyfile(file, work / file.name)
        out = work / "out"
        printed = io.StringIO()
        logger = logging.getLogger("ort_format_model")  # the converter logs its config path at INFO
        level = logger.level
        logger.setLevel(logging.WARNING)
        try:
            with contextlib.redirect_stdout(printed):
                convert_onnx_models_to_ort(work / onnx_path.name, output_dir=out,
                                           optimization_styles=[OptimizationStyle.Fixed], target_platform=platform)
        except Exception as exc:  # ORT names the node and op it cannot convert: pass that on
            raise ExportError(f"ort-mobile: converting {onnx_path.name} failed: "
                              f"{' '.join(str(exc).split())[:400]}") from exc
        finally:
            logger.setLevel(level)
            for line in printed.getvalue().splitlines():
                log(f"ort-mobile: {line}")
        converted = sorted(out.glob("*.ort"))
        configs = sorted(out.glob("*.config"))
        if not converted:
            raise ExportError(f"ort-mobile: the converter wrote no .ort file for {onnx_path.name}")
        shutil.move(str(converted[0]), root / ORT_FILE)
        ops = []
        if configs:
            shutil.move(str(configs[0]), root / OPS_FILE)
            lines = (root / OPS_FILE).read_text().splitlines()
            # the converter names the temp file it read; the bundle's own .ort is what the list describes
            lines = [f"# - {ORT_FILE}" if line.startswith("# - ") else line for line in lines]
            (root / OPS_FILE).write_text("\n".join(lines) + "\n")
            ops = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    return {"path": ORT_FILE, "format": "ort", "optimization_style": "Fixed", "platform": platform,
            **({"ops_config": OPS_FILE} if ops else {}), "ops": ops, "onnxruntime_version": ort.__version__}
