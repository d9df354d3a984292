"""Pure ONNX graph work: loading and normalising, shapes, exposing activations, receptive fields, probeable layers."""
