"""Moved to onnxprobe.graph.geometry (laid out like the backward rules); this name stays importable."""

from .geometry import ReceptiveField, TensorGeometry, analyze_geometry

__all__ = ["ReceptiveField", "TensorGeometry", "analyze_geometry"]
