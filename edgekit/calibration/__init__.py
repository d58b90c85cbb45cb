"""INT8 post-training quantization that reaches inside If/Loop subgraphs: calibration data sets
(datasets.py), ranges and Q/DQ placement (qdq.py), the quantize stage (quantize.py) and accuracy control
(accuracy.py: --max-drop, sensitivity). Import from the modules."""
