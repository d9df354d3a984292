"""Convolutions and pooling: windows along the spatial axes.

* Conv / ConvInteger / QLinearConv: kernel from ``kernel_shape`` or the weight's shape; strides,
  dilations, pads, auto_pad (SAME_* needs the input size from the shapes when stride > 1; VALID).
  ``size += (k-1)*d*stride_in``, ``offset -= pad_begin*stride_in``, ``stride *= s``. Weights that
  depend on the image -> unknown.
* ConvTranspose: output j sums inputs i with ``j = i*s - p + t*d``, i.e. i in
  ``[(j + p - (k-1)d)/s, (j + p)/s]``: ``stride /= s``, ``size += (k-1)*d*stride_in/s``,
  ``offset += (p - (k-1)*d)*stride_in/s``. Exact for s = 1; for s > 1 a superset (not every output
  phase touches every tap). ``output_shape``/SAME_* pads are used only when the total padding is even
  (the odd split differs between spec versions and runtimes) -> otherwise None.
* MaxPool/AveragePool/LpPool: like Conv on each channel (ceil_mode only adds units at the end, the
  formula for existing units is unchanged). Global*Pool -> non-spatial (spatial axes become size 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import onnx

from ..field import Geo, GiveUp, is_spatial
from ..registry import attr, register

if TYPE_CHECKING:
    from ..driver import Ctx


def _conv_params(ctx: Ctx, node: onnx.NodeProto, x_name: str, kernel: Sequence[int], transpose: bool = False):
    n = len(kernel)
    strides = list(attr(node, "strides", [1] * n))
    dilations = list(attr(node, "dilations", [1] * n))
    pads = list(attr(node, "pads", [0] * (2 * n)))
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise GiveUp
    auto_pad = attr(node, "auto_pad", "NOTSET")
    begins: list[float | None] = list(pads[:n])
    if auto_pad == "VALID":
        begins = [0] * n
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER") and not transpose:
        for t in range(n):
            span = (kernel[t] - 1) * dilations[t] + 1
            if strides[t] == 1:
                total = span - 1
            else:
                size = ctx.dim(x_name, 2 + t)
                if size is None:
                    begins[t] = None
                    continue
                out = -(-size // strides[t])
                total = max(0, (out - 1) * strides[t] + span - size)
            begins[t] = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
    elif auto_pad not in ("NOTSET", "", "VALID") and not transpose:
        raise GiveUp
    return strides, dilations, begins


def _apply_windows(ctx: Ctx, g: Geo, out_labels: list, kernel, strides, dilations, begins, transpose=False):
    rf = g.rf
    for t in range(len(kernel)):
        axis = 2 + t
        lab = g.labels[axis]
        if is_spatial(lab):
            if rf is None:
                continue
            if begins[t] is None:
                rf = None
                continue
            if transpose:
                k, s, d, p = kernel[t], strides[t], dilations[t], begins[t]
                rf = rf._envelope(lab, 1.0 / s, (p - (k - 1) * d) / s, p / s)
            else:
                rf = rf._window(lab, kernel[t], strides[t], dilations[t], begins[t])
        elif not (kernel[t] == 1 and strides[t] == 1 and (begins[t] or 0) == 0):
            out_labels[axis] = None  # windowing along a non-image axis: its role is lost
    return ctx.mk(out_labels, rf)


@register("Conv", "ConvInteger", "QLinearConv")
def _conv(ctx, node):
    x, g, kernel = _conv_geometry(ctx, node, 3 if node.op_type == "QLinearConv" else 1)
    strides, dilations, begins = _conv_params(ctx, node, x, kernel)
    out_labels = [g.labels[0], "C"] + list(g.labels[2:])
    return _apply_windows(ctx, g, out_labels, kernel, strides, dilations, begins)


def _conv_geometry(ctx: Ctx, node, w_index: int):
    """A convolution's data input, its geometry and the kernel's spatial size (the kernel_shape
    attribute, else the spatial dims of the shape of the weights, input `w_index`)."""
    ctx.only_dep(node, [0])
    x = node.input[0]
    g = ctx.geos[x]
    if g.rank < 3:
        raise GiveUp
    kernel = attr(node, "kernel_shape")
    if kernel is None:
        wshape = ctx.shape(node.input[w_index]) or ctx.const_shape(node.input[w_index])
        if wshape is None or any(d is None for d in wshape[2:]):
            raise GiveUp
        kernel = wshape[2:]
    kernel = list(kernel)
    if len(kernel) != g.rank - 2:
        raise GiveUp
    return x, g, kernel


@register("ConvTranspose")
def _conv_transpose(ctx, node):
    x, g, kernel = _conv_geometry(ctx, node, 1)
    n = len(kernel)
    strides, dilations, begins = _conv_params(ctx, node, x, kernel, transpose=True)
    auto_pad = attr(node, "auto_pad", "NOTSET")
    output_shape = attr(node, "output_shape")
    if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        out_pad = list(attr(node, "output_padding", [0] * n))
        begins = []
        for t in range(n):
            size = ctx.dim(x, 2 + t)
            if size is None:
                begins.append(None)
                continue
            out = list(output_shape)[-n:][t] if output_shape is not None else size * strides[t]
            total = strides[t] * (size - 1) + out_pad[t] + (kernel[t] - 1) * dilations[t] + 1 - out
            begins.append(total // 2 if total >= 0 and total % 2 == 0 else None)
    out_labels = [g.labels[0], "C"] + list(g.labels[2:])
    return _apply_windows(ctx, g, out_labels, kernel, strides, dilations, begins, transpose=True)


@register("MaxPool", "AveragePool", "LpPool")
def _pool(ctx, node):
    x = node.input[0]
    g = ctx.geos[x]
    kernel = attr(node, "kernel_shape")
    if kernel is None or len(kernel) != g.rank - 2:
        raise GiveUp
    kernel = list(kernel)
    strides, dilations, begins = _conv_params(ctx, node, x, kernel)
    out = _apply_windows(ctx, g, list(g.labels), kernel, strides, dilations, begins)
    return [out] * len(node.output)  # MaxPool's indices share the geometry


@register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(ctx, node):
    g = ctx.geos[node.input[0]]
    return ctx.mk(list(g.labels[:2]) + [None] * (g.rank - 2), None)
