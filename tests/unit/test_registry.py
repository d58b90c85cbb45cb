import pytest

from edgekit.errors import EdgekitError
from edgekit.export.targets import TARGETS
from edgekit.registry import Registry
from edgekit.runtimes import RUNNERS


def test_unknown_name_lists_valid_ones():
    with pytest.raises(EdgekitError, match=r"unknown target 'tflite' \(valid: executorch, onnx, openvino, ort-mobile, tensorrt\)"):
        TARGETS.get("tflite")
    with pytest.raises(EdgekitError, match="valid: executorch, onnxruntime, openvino, ort-mobile, tensorrt, torch"):
        RUNNERS.get("tvm")


def test_duplicates_are_rejected():
    registry = Registry("thing")
    registry.add("a", 1)
    with pytest.raises(ValueError, match="duplicate thing 'a'"):
        registry.add("a", 2)
