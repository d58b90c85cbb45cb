"""ONNX Runtime runner (CPU execution provider unless told otherwise)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import EdgekitError, missing_extra
from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec


class OnnxRuntimeRunner(BaseRunner):
    name = "onnxruntime"

    def __init__(self, path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec],
                 threads: int | None = None, providers: list[str] | None = None,
                 fixed: Mapping[str, np.ndarray] | None = None):
        """fixed: values added to every feed (the inputs an ONNX source pinned with `--fix`, for its
        reference: the original file still has them)."""
        super().__init__(inputs, outputs)
        self._fixed = dict(fixed or {})
        try:
            import onnxruntime as ort
        except ImportError:
            raise missing_extra("onnxruntime", "onnxruntime", "onnxruntime") from None
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:
            raise EdgekitError(f"onnxruntime: cannot load {path}: {' '.join(str(exc).split())[:300]}") from exc
        self._names = [o.name for o in self._session.get_outputs()]

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = self.check_feed({**feed, **self._fixed} if self._fixed else feed)
        try:
            return dict(zip(self._names, self._session.run(self._names, feed)))
        except Exception as exc:  # ORT's own exceptions (a bad graph, a shape it rejects): one line, not a traceback
            raise EdgekitError(f"onnxruntime: run failed: {' '.join(str(exc).split())[:300]}") from exc


def runner_from_bundle(bundle, threads: int | None = None, **_) -> OnnxRuntimeRunner:
    m = bundle.manifest
    return OnnxRuntimeRunner(bundle.artifact_path("onnx"), m.inputs, m.outputs, threads=threads)


def mobile_runner_from_bundle(bundle, threads: int | None = None, **_) -> OnnxRuntimeRunner:
    """The bundle's `model.ort` (ONNX Runtime Mobile's format) in this machine's ONNX Runtime: the same
    kernels a phone's ORT build runs, so its parity here is the artifact's parity there."""
    m = bundle.manifest
    runner = OnnxRuntimeRunner(bundle.artifact_path("ort-mobile"), m.inputs, m.outputs, threads=threads)
    runner.name = "ort-mobile"
    return runner
