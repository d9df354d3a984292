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

from dataclasses import replace
from functools import partial

from ...opsem import Window, kernel_shape, transposed_window, window
from ..field import Geo, GiveUp, is_spatial
from ..registry import Ctx, attr, register


def _window(ctx: Ctx, node, kernel, transposed: bool = False) -> Window:
    sizes = [ctx.dim(node.input[0], 2 + t) for t in range(len(kernel))]
    return (transposed_window if transposed else window)(partial(attr, node), kernel, sizes)


def _apply_window(ctx: Ctx, g: Geo, out_labels: list, w: Window, transpose=False):
    rf = g.rf
    for t, (k, s, d, p) in enumerate(zip(w.kernel, w.strides, w.dilations, w.begins)):
        axis = 2 + t
        lab = g.labels[axis]
        if is_spatial(lab):
            if rf is None:
                continue
            if p is None:
                rf = None
                continue
            if transpose:
                rf = rf._envelope(lab, 1.0 / s, (p - (k - 1) * d) / s, p / s)
            else:
                rf = rf._window(lab, k, s, d, p)
        elif not (k == 1 and s == 1 and (p or 0) == 0):
            out_labels[axis] = None  # windowing along a non-image axis: its role is lost
    return ctx.mk(out_labels, rf)


@register("Conv", "ConvInteger", "QLinearConv")
def _conv(ctx, node):
    g, kernel = _conv_geometry(ctx, node, 3 if node.op_type == "QLinearConv" else 1)
    out_labels = [g.labels[0], "C"] + list(g.labels[2:])
    return _apply_window(ctx, g, out_labels, _window(ctx, node, kernel))


def _conv_geometry(ctx: Ctx, node, w_index: int):
    """A convolution's input geometry and the kernel's spatial size (the kernel_shape attribute,
    else the spatial dims of the shape of the weights, input `w_index`)."""
    g = ctx.data(node)
    if g.rank < 3:
        raise GiveUp
    w = node.input[w_index]
    kernel = kernel_shape(partial(attr, node), ctx.shape(w) or ctx.const_shape(w))
    if kernel is None or len(kernel) != g.rank - 2:
        raise GiveUp
    return g, kernel


@register("ConvTranspose")
def _conv_transpose(ctx, node):
    g, kernel = _conv_geometry(ctx, node, 1)
    w = _window(ctx, node, kernel, transposed=True)
    if w.derived:  # pads from output_shape / SAME_*: only an even, non-negative total splits the same everywhere
        w = replace(w, begins=tuple(b if b is not None and b == e and b >= 0 else None
                                    for b, e in zip(w.begins, w.ends)))
    out_labels = [g.labels[0], "C"] + list(g.labels[2:])
    return _apply_window(ctx, g, out_labels, w, transpose=True)


@register("MaxPool", "AveragePool", "LpPool")
def _pool(ctx, node):
    g = ctx.geos[node.input[0]]
    kernel = attr(node, "kernel_shape")
    if kernel is None or len(kernel) != g.rank - 2:
        raise GiveUp
    out = _apply_window(ctx, g, list(g.labels), _window(ctx, node, list(kernel)))
    return [out] * len(node.output)  # MaxPool's indices share the geometry


@register("GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool")
def _global_pool(ctx, node):
    g = ctx.geos[node.input[0]]
    return ctx.mk(list(g.labels[:2]) + [None] * (g.rank - 2), None)
