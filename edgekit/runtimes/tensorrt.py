"""TensorRT runner: deserializes the bundle's engine for this GPU's compute capability and runs it on a
CUDA device, with torch's CUDA buffers and stream (torch is always installed; cuda-python would be a
second CUDA wrapper). Output memory comes from an IOutputAllocator, so outputs whose shape depends on
the data (NonZero, an early exit's result) work the same as static ones.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

from edgekit.errors import BackendUnavailable, EdgekitError
from edgekit.export.trt_compat import (cuda_device_available, cuda_device_count, current_compute_capability,
                                       import_tensorrt, is_rtx)
from edgekit.runtimes.base import BaseRunner
from edgekit.specs import TensorSpec


class TensorRTRunner(BaseRunner):
    name = "tensorrt"

    def __init__(self, engine_path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec], device: int | str = 0,
                 compute_capability: str | None = None, precision: str = "fp32"):
        """Open `engine_path` on CUDA device `device` (an index or "cuda:N").

        compute_capability: the arch the engine was built for (from the manifest); a different GPU is
        refused. Raises BackendUnavailable (no CUDA device, another arch, TensorRT or CUDA torch missing)
        before loading anything, EdgekitError if the engine cannot be deserialized.
        """
        super().__init__(inputs, outputs)
        self.precision = precision
        engine_path = Path(engine_path)
        index = _device_index(device)
        if not cuda_device_available():
            raise BackendUnavailable("tensorrt", "no CUDA device")
        gpu = current_compute_capability(index)
        if gpu is None:
            raise BackendUnavailable("tensorrt", f"no CUDA device {index} ({cuda_device_count()} visible)")
        if compute_capability and compute_capability.upper() != gpu:
            raise BackendUnavailable("tensorrt", f"{engine_path.name} was built for {compute_capability.upper()}, "
                                                 f"CUDA device {index} is {gpu}")
        trt = import_tensorrt()
        import torch

        if not torch.cuda.is_available():
            raise BackendUnavailable("tensorrt", f"torch {torch.__version__} has no CUDA support; install a CUDA "
                                                 "build of torch to run engines")
        self._trt, self._torch = trt, torch
        self._device = torch.device("cuda", index)
        data = engine_path.read_bytes()
        with torch.cuda.device(self._device):  # TensorRT works on the current CUDA device
            self._runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
            if is_rtx(trt):
                _check_validity(trt, self._runtime, data, engine_path.name, compute_capability, gpu)
            self._engine = self._runtime.deserialize_cuda_engine(data)
            if self._engine is None:
                raise EdgekitError(f"tensorrt: cannot deserialize {engine_path.name} (built by another TensorRT "
                                   "version, or for another GPU; see the TensorRT log above)")
            self._context = self._engine.create_execution_context()
            self._stream = torch.cuda.Stream(self._device)
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        self._input_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self._output_names = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self._allocator = _output_allocator(trt, torch, self._device)
        for name in self._output_names:
            self._context.set_output_allocator(name, self._allocator)

    def run(self, feed: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        feed = self.check_feed(feed)
        torch, engine, context = self._torch, self._engine, self._context
        keep_alive = []  # inputs must outlive the asynchronous execution
        with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
            for name in self._input_names:
                trt_dtype = engine.get_tensor_dtype(name)
                value = np.require(feed[name], _numpy_dtype(self._trt, trt_dtype), "C")
                if engine.is_shape_inference_io(name):  # shape tensors are read on the host
                    address = value.ctypes.data
                else:
                    value = torch.from_numpy(value).to(self._device, _torch_dtype(self._trt, torch, trt_dtype))
                    address = value.data_ptr()
                keep_alive.append(value)
                if not context.set_input_shape(name, value.shape):
                    low, _, high = engine.get_tensor_profile_shape(name, 0)
                    raise EdgekitError(f"tensorrt: input {name!r} has shape {list(value.shape)}; the engine "
                                       f"was built for {list(low)} to {list(high)} (rebuild with shape hints)")
                context.set_tensor_address(name, address)
            if not context.execute_async_v3(self._stream.cuda_stream):
                raise EdgekitError("tensorrt: execution failed (see the TensorRT log above)")
            self._stream.synchronize()
            return {name: self._allocator.read(name, _torch_dtype(self._trt, torch, engine.get_tensor_dtype(name)))
                    for name in self._output_names}

    def timing_clock(self):
        """The clock `edgekit bench` times this runner with: CUDA events on the runner's stream."""
        from edgekit.bench.stats import CudaEventClock

        return CudaEventClock(self._torch, self._stream)

    def close(self) -> None:
        # release in reverse order of creation: context, then engine, then runtime
        self._context = self._engine = self._runtime = None


def runner_from_bundle(bundle, device: int | str = 0, precision: str | None = None, **_) -> TensorRTRunner:
    """Open the bundle's engine built for this GPU (of `precision`, when the bundle has several);
    BackendUnavailable if there is no GPU or no such engine."""
    entries = bundle.artifact("tensorrt")
    entries = entries if isinstance(entries, list) else [entries]
    if precision:
        entries = [e for e in entries if e.get("precision", "fp32") == precision]
    index = _device_index(device)
    if not cuda_device_available():
        raise BackendUnavailable("tensorrt", "no CUDA device")
    gpu = current_compute_capability(index)
    match = [e for e in entries if str(e.get("compute_capability", "")).upper() == gpu]
    if not match:
        built = ", ".join(str(e.get("compute_capability")) for e in entries) or "none"
        raise BackendUnavailable("tensorrt", f"no engine for CUDA device {index} ({gpu}); the bundle has engines "
                                             f"for {built} (re-export with --trt-arch {gpu.lower()})")
    entry = match[0]
    m = bundle.manifest
    return TensorRTRunner(bundle.verified_path(entry, "tensorrt"), m.inputs, m.outputs, device=index,
                          compute_capability=entry["compute_capability"], precision=entry.get("precision", "fp32"))


def _device_index(device: int | str) -> int:
    text = str(device).lower().removeprefix("cuda").lstrip(":") or "0"
    if not text.isdigit():
        raise EdgekitError(f"tensorrt: device {device!r} is not a CUDA device (use an index or 'cuda:N')")
    return int(text)


def _check_validity(trt, runtime, data: bytes, name: str, built_for: str | None, gpu: str) -> None:
    """TensorRT-RTX can say why an engine will not load on this machine before deserializing it."""
    validity, diagnostics = runtime.get_engine_validity(data)
    if validity != trt.EngineValidity.INVALID:
        return
    if diagnostics & int(trt.EngineInvalidityDiagnostics.UNSUPPORTED_CC):
        raise BackendUnavailable("tensorrt", f"{name} was built for {built_for or 'another GPU'}, this GPU is {gpu}")
    reasons = [k for k, v in trt.EngineInvalidityDiagnostics.__members__.items() if diagnostics & int(v)]
    raise BackendUnavailable("tensorrt", f"{name} cannot run here ({', '.join(reasons) or 'invalid engine'})")


def _numpy_dtype(trt, dtype) -> np.dtype:
    return np.dtype(np.float32) if dtype == trt.DataType.BF16 else np.dtype(trt.nptype(dtype))


def _torch_dtype(trt, torch, dtype):
    if dtype == trt.DataType.BF16:
        return torch.bfloat16
    return torch.from_numpy(np.empty(0, dtype=trt.nptype(dtype))).dtype


def _output_allocator(trt, torch, device):
    """An IOutputAllocator keeping one growing uint8 CUDA buffer per output and the shape TensorRT reports."""

    class OutputAllocator(trt.IOutputAllocator):
        def __init__(self):
            trt.IOutputAllocator.__init__(self)
            self.buffers: dict = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output(self, tensor_name, memory, size, alignment):
            return self.reallocate_output_async(tensor_name, memory, size, alignment, None)

        def reallocate_output_async(self, tensor_name, memory, size, alignment, stream):
            # torch's caching allocator returns blocks aligned to at least 256 bytes, more than TensorRT asks for
            buffer = self.buffers.get(tensor_name)
            if buffer is None or buffer.numel() < size:
                buffer = torch.empty(max(int(size), 1), dtype=torch.uint8, device=device)
                self.buffers[tensor_name] = buffer
            return buffer.data_ptr()

        def notify_shape(self, tensor_name, shape):
            self.shapes[tensor_name] = tuple(shape)

        def read(self, name: str, dtype) -> np.ndarray:
            shape = self.shapes[name]
            count = int(np.prod(shape, dtype=np.int64))
            nbytes = count * dtype.itemsize
            tensor = self.buffers[name][:nbytes].view(dtype).reshape(shape).cpu()
            return (tensor.float() if dtype == torch.bfloat16 else tensor).numpy()

    return OutputAllocator()
