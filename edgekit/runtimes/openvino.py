"""OpenVINO runner. Parity runs compute in f32: the CPU plugin would otherwise pick bf16 on CPUs with
avx512_bf16 and be ~4e-3 off (DESIGN.md §4); `precision="bf16"` asks for it explicitly.

`static_shapes=True` compiles the model once per input-shape signature, reshaped to the feed's shapes (the
compiled models of the last `STATIC_CACHE` signatures are kept). With dynamic dims the CPU plugin does not fuse
element-wise chains into Snippets subgraphs, inside a `Loop` body either: zoo:storm's sampler step took 7.7 ms
dynamic against 5.4 ms static in int8 (benchmarks/README.md "StoRM at a fixed frame count"). It is what an app
that always feeds one size should do; `edgekit bench --static-shapes` times it."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import EdgekitError
from edgekit.export.openvino import import_openvino
from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec

INFERENCE_PRECISION = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
STATIC_CACHE = 4


class OpenVINORunner(BaseRunner):
    name = "openvino"

    def __init__(self, xml_path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 device: str = "CPU", precision: str = "fp32", threads: int | None = None,
                 hint: str = "LATENCY", static_shapes: bool = False):
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
        self._core, self._path, self._config, self.static_shapes = core, Path(xml_path), config, static_shapes
        self._static: dict[tuple, tuple] = {}  # shape signature → (compiled, request, ports), oldest first
        self.compiled = None  # static_shapes: each shape's model is compiled on its first call
        if not static_shapes:
            self.compiled = self._compile(str(xml_path))
            self._request = self.compiled.create_infer_request()
            self._ports = [(o, o.get_any_name()) for o in self.compiled.outputs]

    def _compile(self, model):
        try:
            return self._core.compile_model(model, self.device, self._config)
        except Exception as exc:
            raise EdgekitError(f"openvino: cannot compile {self._path.name} for {self.device}: "
                               f"{' '.join(str(exc).split())[:300]}") from exc

    def _static_request(self, feed: Mapping[str, np.ndarray]):
        """The request of the model compiled at `feed`'s shapes (compiled on first use of a signature)."""
        signature = tuple((name, tuple(np.shape(value))) for name, value in sorted(feed.items()))
        if signature not in self._static:
            model = self._core.read_model(str(self._path))
            try:
                model.reshape({name: list(shape) for name, shape in signature})
            except Exception as exc:
                raise EdgekitError(f"openvino: cannot fix the input shapes to {dict(signature)}: "
                                   f"{' '.join(str(exc).split())[:300]}") from exc
            compiled = self._compile(model)
            if len(self._static) >= STATIC_CACHE:
                self._static.pop(next(iter(self._static)))
            self._static[signature] = (compiled, compiled.create_infer_request(),
                                       [(o, o.get_any_name()) for o in compiled.outputs])
        return self._static[signature][1:]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = self.check_feed(feed)
        request, ports = self._static_request(feed) if self.static_shapes else (self._request, self._ports)
        try:
            result = request.infer(feed)
        except Exception as exc:  # OpenVINO's internal exception text: one line, not a traceback
            raise EdgekitError(f"openvino: inference failed: {' '.join(str(exc).split())[:300]}") from exc
        # copy: OpenVINO returns views of its own output buffers, which the next request overwrites
        return {name: np.array(result[port]) for port, name in ports}


def runner_from_bundle(bundle, device: str = "CPU", precision: str | None = None, threads: int | None = None,
                       hint: str = "LATENCY", static_shapes: bool = False, **_) -> OpenVINORunner:
    """hint: OpenVINO's PERFORMANCE_HINT (LATENCY, or THROUGHPUT for async requests in `edgekit bench`).
    precision: the inference precision hint; default the artifact's `inference_precision` (bf16 and mixed
    exports), else fp32. static_shapes: compile at each feed's shapes (see the module docstring)."""
    m = bundle.manifest
    if precision is None:
        precision = bundle.artifact("openvino").get("inference_precision", "fp32")
    return OpenVINORunner(bundle.artifact_path("openvino"), m.inputs, m.outputs, device=device,
                          precision=precision, threads=threads, hint=hint, static_shapes=static_shapes)
