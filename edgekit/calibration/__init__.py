"""Calibration data sets and INT8 post-training quantization that reaches inside If/Loop subgraphs."""
