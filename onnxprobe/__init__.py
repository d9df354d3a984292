"""onnxprobe: see what any convolutional network exported to ONNX has learned."""

__version__ = "0.1.0"
