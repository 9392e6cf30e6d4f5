"""Export of the generator to ONNX and its checks."""
