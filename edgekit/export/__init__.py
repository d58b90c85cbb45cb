"""Export stages: torch → ONNX (onnx.py), graph cleanup (cleanup.py, OnnxSlim), If/Loop checks and counts
(controlflow.py), ONNX → OpenVINO IR (openvino.py), ONNX → TensorRT engines (tensorrt.py, trt_compat.py),
fp16 (fp16.py), the target registry (targets.py) that `edgekit export --target` chooses from, and what a
bundle or ONNX file holds (inspect.py, `edgekit inspect`)."""
