"""ONNX op semantics that more than one analysis needs, written once: the windows of Conv, pooling
and ConvTranspose (kernel, strides, dilations, pads with auto_pad), and Resize's coordinate maps and
nearest modes. The geometry rules (graph/geometry/rules) and the backward rules (autodiff/rules)
both read them from here; graph/ may not import autodiff, so the shared home is graph/.

Functions take ``attr(name, default)``: the node's attribute value (strings decoded) or the default,
so both kinds of rule pass what they already read nodes with. Attribute values that no ONNX version
allows raise ValueError.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

Attr = Callable[..., object]  # attr(name, default=None) -> value
SAME = ("SAME_UPPER", "SAME_LOWER")


# ---- windows: Conv, ConvInteger, QLinearConv, MaxPool, AveragePool, LpPool, ConvTranspose -------

@dataclass(frozen=True)
class Window:
    """Per spatial axis: kernel, stride, dilation, begin/end pads (None where they depend on an
    input size that is unknown). ``derived``: the pads come from the sizes (auto_pad SAME_*, or
    ConvTranspose's output_shape), not from the ``pads`` attribute."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    dilations: tuple[int, ...]
    begins: tuple[int | None, ...]
    ends: tuple[int | None, ...]
    derived: bool = False


def _ints(attr: Attr, name: str, n: int, default: int) -> list[int]:
    value = attr(name, None)
    if not value:  # absent or empty: the default, as ONNX Runtime reads it
        return [default] * n
    value = [int(v) for v in value]
    if len(value) != n:
        raise ValueError(f"{name} has {len(value)} values, the window has {n} axes")
    return value


def kernel_shape(attr: Attr, weight_shape: Sequence[int | None] | None = None) -> list[int] | None:
    """The window's spatial size: ``kernel_shape``, else the spatial dims of the weights' shape (Conv,
    ConvTranspose); None where neither says."""
    kernel = attr("kernel_shape", None)
    if kernel:
        return [int(k) for k in kernel]
    if not weight_shape or any(d is None for d in weight_shape[2:]):
        return None
    return [int(d) for d in weight_shape[2:]]


def split_total(total: int, auto_pad: str) -> tuple[int, int]:
    """A total padding as (begin, end): SAME_UPPER puts the odd unit at the end, otherwise the beginning."""
    small, big = total // 2, total - total // 2
    return (small, big) if auto_pad == "SAME_UPPER" else (big, small)


def same_pads(auto_pad: str, size: int | None, kernel: int, stride: int, dilation: int) -> tuple[int, int] | None:
    """SAME_UPPER/SAME_LOWER pads of one axis: the output has ceil(size/stride) units. At stride 1 the
    total is (kernel-1)*dilation whatever the size; otherwise None while the size is unknown."""
    span = (kernel - 1) * dilation + 1
    if stride == 1:
        total = span - 1
    elif size is None:
        return None
    else:
        total = max(0, (-(-size // stride) - 1) * stride + span - size)
    return split_total(total, auto_pad)


def _auto_pad(attr: Attr) -> str:
    auto = attr("auto_pad", "NOTSET") or "NOTSET"
    if auto not in ("NOTSET", "VALID") + SAME:
        raise ValueError(f"auto_pad={auto} is not an ONNX padding mode")
    return auto


def window_pads(attr: Attr, kernel: Sequence[int], strides: Sequence[int], dilations: Sequence[int],
                sizes: Sequence[int | None] | None = None) -> tuple[list, list]:
    """Begin and end pads of a forward window op (Conv, pools) per spatial axis, auto_pad turned into
    numbers; ``sizes`` are the input's spatial sizes (None where unknown)."""
    n = len(kernel)
    auto = _auto_pad(attr)
    if auto == "VALID":
        return [0] * n, [0] * n
    if auto == "NOTSET":
        pads = _ints(attr, "pads", 2 * n, 0)
        return pads[:n], pads[n:]
    sizes = list(sizes) if sizes is not None and len(sizes) == n else [None] * n
    pairs = [same_pads(auto, *axis) or (None, None) for axis in zip(sizes, kernel, strides, dilations)]
    return [b for b, _ in pairs], [e for _, e in pairs]


def window(attr: Attr, kernel: Sequence[int], sizes: Sequence[int | None] | None = None) -> Window:
    """The window of Conv / ConvInteger / QLinearConv / MaxPool / AveragePool / LpPool."""
    n = len(kernel)
    strides, dilations = _ints(attr, "strides", n, 1), _ints(attr, "dilations", n, 1)
    begins, ends = window_pads(attr, kernel, strides, dilations, sizes)
    return Window(tuple(kernel), tuple(strides), tuple(dilations), tuple(begins), tuple(ends),
                  derived=_auto_pad(attr) in SAME)


def transposed_window(attr: Attr, kernel: Sequence[int], sizes: Sequence[int | None] | None = None) -> Window:
    """The window of ConvTranspose: output j sums inputs i with j = i*s - begin + t*d.

    With ``output_shape`` or SAME_*, the total padding ``s*(h-1) + output_padding + (k-1)*d + 1 - out``
    (out = output_shape, or h*s for SAME) is split by ``split_total`` (the spec's rule) and may be
    negative (an output larger than the windows reach): callers decide what that means.
    """
    n = len(kernel)
    strides, dilations = _ints(attr, "strides", n, 1), _ints(attr, "dilations", n, 1)
    auto = _auto_pad(attr)
    output_shape = attr("output_shape", None)
    if output_shape or auto in SAME:
        out_pad = _ints(attr, "output_padding", n, 0)
        sizes = list(sizes) if sizes is not None and len(sizes) == n else [None] * n
        targets = list(output_shape)[-n:] if output_shape else [None if h is None else h * s
                                                                 for h, s in zip(sizes, strides)]
        pairs = [(None, None) if h is None else split_total(s * (h - 1) + op + (k - 1) * d + 1 - out, auto)
                 for h, k, s, d, op, out in zip(sizes, kernel, strides, dilations, out_pad, targets)]
        return Window(tuple(kernel), tuple(strides), tuple(dilations), tuple(b for b, _ in pairs),
                      tuple(e for _, e in pairs), derived=True)
    if auto == "VALID":
        begins = ends = [0] * n
    else:
        pads = _ints(attr, "pads", 2 * n, 0)
        begins, ends = pads[:n], pads[n:]
    return Window(tuple(kernel), tuple(strides), tuple(dilations), tuple(begins), tuple(ends))


# ---- Resize -------------------------------------------------------------------------------------

def resize_coords(mode: str, out_size: int, in_size: int, scale: float) -> np.ndarray:
    """The input coordinate (float64) that every output index of one axis samples, for a
    coordinate_transformation_mode (tf_crop_and_resize needs the roi and is not here)."""
    j = np.arange(out_size, dtype=np.float64)
    if mode == "half_pixel":
        return (j + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        adjustment = out_size / (scale * in_size)
        return in_size / 2 * (1 - adjustment) + (j + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (j + 0.5) / scale - 0.5 if out_size > 1 else np.zeros_like(j)
    if mode == "align_corners":
        return j * (in_size - 1) / (out_size - 1) if out_size > 1 else np.zeros_like(j)
    if mode == "asymmetric":
        return j / scale
    if mode == "tf_half_pixel_for_nn":
        return (j + 0.5) / scale
    raise ValueError(f"coordinate_transformation_mode={mode} is not supported")


NEAREST: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "round_prefer_floor": lambda x: np.ceil(x - 0.5),
    "round_prefer_ceil": lambda x: np.floor(x + 0.5),
    "floor": np.floor,
    "ceil": np.ceil,
}


def nearest_index(nearest_mode: str, x: np.ndarray) -> np.ndarray:
    """The input index (unclipped, float) a nearest Resize picks for input coordinates ``x``."""
    if nearest_mode not in NEAREST:
        raise ValueError(f"nearest_mode={nearest_mode} is not an ONNX nearest mode")
    return NEAREST[nearest_mode](x)
