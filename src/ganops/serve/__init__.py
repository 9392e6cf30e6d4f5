"""Serving the exported generator: ONNX Runtime session, micro-batching, HTTP API and demo page."""
