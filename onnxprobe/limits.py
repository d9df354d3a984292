"""The size limits on what onnxprobe reads (one home): inputs that are merely huge are refused
from their headers, before anything is allocated, with the limit in the message."""

from __future__ import annotations

import math

# One input tensor (without the batch axis): 2**27 float32 values = 512 MiB, e.g. 3x6000x7000.
MAX_INPUT_ELEMENTS = 2 ** 27
# A decoded image: 2**27 pixels (e.g. 11585x11585); OpenCV's own cap is 2**30.
MAX_IMAGE_PIXELS = 2 ** 27
# A .npy array given as an input tensor or a baseline: 2**28 values.
MAX_ARRAY_ELEMENTS = 2 ** 28
# Integrated gradients' quadrature points: the Riemann rules stream their points through the
# gradient batch, so the limit is one of time (2**20 forward and backward passes); Gauss-Legendre's
# nodes cost n**3 to compute and gain nothing past a few hundred points.
MAX_QUADRATURE_POINTS = 2 ** 20
MAX_GAUSS_LEGENDRE_POINTS = 2 ** 10
# SmoothGrad's noisy copies, streamed through the gradient batch likewise: a limit of time.
MAX_NOISE_SAMPLES = 2 ** 20


def _count(shape) -> int:
    return math.prod(int(d) for d in shape)


def input_shape_problem(shape) -> str | None:
    """Why a model input shape (batch included) cannot be used, or None."""
    dims = [int(d) for d in shape]
    if any(d == 0 for d in dims):
        return f"input shape {tuple(dims)} has a zero-size dimension"
    if any(d < 0 for d in dims):
        return f"input shape {tuple(dims)} has a negative dimension"
    elements = _count(dims[1:])
    if elements > MAX_INPUT_ELEMENTS:
        return (f"input shape {tuple(dims)} has {elements:,} values per image, more than the limit of "
                f"{MAX_INPUT_ELEMENTS:,} (onnxprobe.limits.MAX_INPUT_ELEMENTS)")
    return None


def image_size_problem(height: int, width: int) -> str | None:
    if height <= 0 or width <= 0:
        return f"its header declares an empty image ({width}x{height})"
    if height * width > MAX_IMAGE_PIXELS:
        return (f"its header declares {width}x{height} = {height * width:,} pixels, more than the limit of "
                f"{MAX_IMAGE_PIXELS:,} (onnxprobe.limits.MAX_IMAGE_PIXELS)")
    return None


def array_size_problem(shape) -> str | None:
    elements = _count(shape)
    if elements > MAX_ARRAY_ELEMENTS:
        return (f"its header declares shape {tuple(shape)} = {elements:,} values, more than the limit of "
                f"{MAX_ARRAY_ELEMENTS:,} (onnxprobe.limits.MAX_ARRAY_ELEMENTS)")
    return None
