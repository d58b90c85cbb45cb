"""Export stages: torch → ONNX (onnx.py), ONNX → OpenVINO IR (openvino.py), ONNX → TensorRT engines
(tensorrt.py), and the target registry (targets.py) that `edgekit export --target` chooses from."""
