"""Reverse-mode gradient graphs for ONNX models, built from standard default-domain ops only.

    from onnxprobe.autodiff import build_gradient_model, seed_name, grad_name, differentiable_tensors

See docs/architecture.md "The gradient-graph contract".
"""

from ..errors import UnsupportedOpsError
from .driver import build_gradient_model, differentiable_tensors, grad_name, seed_name, unsupported_ops
from .registry import MODES, REGISTRY, BackMode

__all__ = [
    "MODES",
    "BackMode",
    "REGISTRY",
    "UnsupportedOpsError",
    "build_gradient_model",
    "differentiable_tensors",
    "grad_name",
    "seed_name",
    "unsupported_ops",
]
