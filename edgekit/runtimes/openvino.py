"""OpenVINO runner. Parity runs compute in f32: the CPU plugin would otherwise pick bf16 on CPUs with
avx512_bf16 and be ~4e-3 off (DESIGN.md §4); `precision="bf16"` asks for it explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.openvino import import_openvino
from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec

INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}


class OpenVINORunner(BaseRunner):
    name = "openvino"

    def __init__(self, xml_path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 device: str = "CPU", precision: str = "fp32", threads: int | None = None,
                 hint: str = "LATENCY"):
        super().__init__(inputs, outputs)
        ov = import_openvino()
        if precision not in INFERENCE_PRECISION:
            raise EdgekitError(f"openvino: precision {precision!r} is not one of {', '.join(INFERENCE_PRECISION)}")
        self.precision = precision
        self.device = device
        config = {"INFERENCE_PRECISION_HINT": INFERENCE_PRECISION[precision], "PERFORMANCE_HINT": hint}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        if device.split(".")[0] not in core.available_devices and device not in ("AUTO", "MULTI", "HETERO"):
            raise EdgekitError(f"openvino: device {device!r} not available (have: {', '.join(core.available_devices)})")
        try:
            self.compiled = core.compile_model(str(xml_path), device, config)
        except Exception as exc:
            raise EdgekitError(f"openvino: cannot compile {xml_path.name} for {device}: "
                               f"{' '.join(str(exc).split())[:300]}") from exc
        self._request = self.compiled.create_infer_request()
        self._ports = [(o, o.get_any_name()) for o in self.compiled.outputs]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = self.check_feed(feed)
        try:
            result = self._request.infer(feed)
        except Exception as exc:  # OpenVINO's internal exception text: one line, not a traceback
            raise EdgekitError(f"openvino: inference failed: {' '.join(str(exc).split())[:300]}") from exc
        # copy: OpenVINO returns views of its own output buffers, which the next request overwrites
        return {name: np.array(result[port]) for port, name in self._ports}


def runner_from_bundle(bundle, device: str = "CPU", precision: str | None = None, threads: int | None = None,
                       hint: str = "LATENCY", **_) -> OpenVINORunner:
    """hint: OpenVINO's PERFORMANCE_HINT (LATENCY, or THROUGHPUT for async requests in `edgekit bench`).
    precision: the inference precision hint; default the artifact's `inference_precision` (bf16 and mixed
    exports), else fp32."""
    m = bundle.manifest
    if precision is None:
        precision = bundle.artifact("openvino").get("inference_precision", "fp32")
    return OpenVINORunner(bundle.artifact_path("openvino"), m.inputs, m.outputs, device=device,
                          precision=precision, threads=threads, hint=hint)
