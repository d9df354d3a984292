"""Reverse-mode gradient graphs for ONNX models, built from standard default-domain ops only.

    from onnxprobe.autodiff import build_gradient_model, seed_name, grad_name, differentiable_tensors

See docs/architecture.md "The gradient-graph contract".
"""

import importlib

from ..errors import UnsupportedOpsError

# what the package exports, by the module that holds it: imported on first use, so that naming
# BackMode (the command line's parsers do) does not import the graph library
_HOMES = {"build_gradient_model": "driver", "differentiable_tensors": "driver", "grad_name": "driver",
          "seed_name": "driver", "unsupported_ops": "driver", "REGISTRY": "registry", "MODES": "modes",
          "BackMode": "modes"}

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


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
