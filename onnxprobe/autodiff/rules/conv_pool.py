"""Convolutions and pooling. Every windowed op's adjoint is a ConvTranspose with EXPLICIT pads
(auto_pad is turned into pads here; the emitted ConvTranspose never uses auto_pad/output_shape).
MaxPool scatters through its Indices output (ScatterElements, reduction add), never MaxUnpool.

Measured and rejected in ONNX Runtime 1.31 (CPU), re-run with bench/bench_adjoints.py: MaxPool's
gradient without Indices (equality masks per kernel offset, first match, depthwise ConvTranspose)
takes about twice as long; a stride-2 Conv's input gradient as one polyphase Conv + DepthToSpace
takes 1.25x (7x7/2, 3 input channels) to 5x (1x1/2) the ConvTranspose's time (the zero taps of
the common kernel, and DepthToSpace alone costs 5-9 elementwise passes over its tensor); a 1x1/2
one as a 1x1 Conv + zero-insertion (a 6-d Pad) 3x.
"""

from __future__ import annotations

import numpy as np
from onnx import helper

from ...graph.opsem import SAME, kernel_shape, transposed_window, window_pads
from ..registry import Ctx, register


def _ints(c: Ctx, name: str, n: int, default: int) -> list[int]:
    v = c.attr(name)
    return list(v) if v else [default] * n


def _kernel(c: Ctx, w: str | None = None) -> list[int]:
    kernel = kernel_shape(c.attr, c.t.info.shape(w) if w else None)
    if kernel is None:
        c.fail("the kernel shape is unknown (no kernel_shape attribute, weights not constant)")
    return kernel


def explicit_pads(c: Ctx, kernel, strides, dilations) -> tuple[list[int], list[int]]:
    """Forward pads (begin, end) per spatial axis, turning auto_pad into numbers (graph/opsem.py)."""
    dims = c.dims()
    if c.attr("auto_pad") in SAME and (not dims or any(d is None for d in dims[2:])):
        c.fail(f"auto_pad={c.attr('auto_pad')} needs static spatial sizes of the input")
    try:
        return window_pads(c.attr, kernel, strides, dilations, dims[2:] if dims else None)
    except ValueError as e:
        c.fail(str(e))


def adjoint_window(c: Ctx, g: str, w: str, x: str, strides, dilations, group: int, pb, kernel,
                   g_dims=None, static: bool = True) -> str:
    """The adjoint of a strided window op (Conv/pool with forward begin pads `pb`) applied to g.

    ConvTranspose with begin pads `pb` yields the gradient for input positions 0 .. L-pb-1 where
    L = s*(Ho-1) + d*(k-1) + 1 is the extent the windows cover; positions past the end of the
    input are cropped and uncovered trailing positions get zeros. With static sizes this is done
    with pads_end / output_padding attributes; otherwise with Slice + Pad at run time.
    """
    t = c.t
    n = len(kernel)
    x_dims = t.info.shape(x)
    g_dims = t.info.shape(g) if g_dims is None else g_dims
    h_in = x_dims[2:] if x_dims else None
    h_out = g_dims[2:] if g_dims else None
    if static and h_in and h_out and all(v is not None for v in list(h_in) + list(h_out)) and len(h_in) == n:
        pe, op = [], []
        for h, ho, k, s, d, b in zip(h_in, h_out, kernel, strides, dilations, pb):
            covered = s * (ho - 1) + d * (k - 1) + 1 - b
            pe.append(max(0, covered - h))
            op.append(max(0, h - covered))
        if all(o < max(s, d) for o, s, d in zip(op, strides, dilations)):
            return t.op("ConvTranspose", g, w, strides=strides, dilations=dilations, group=group,
                        pads=list(pb) + pe, output_padding=op if any(op) else None)
    y = t.op("ConvTranspose", g, w, strides=strides, dilations=dilations, group=group,
             pads=list(pb) + [0] * n)
    axes = t.i64(list(range(2, 2 + n)))
    want = t.shape(x, start=2)
    y = t.op("Slice", y, t.i64([0] * n), want, axes)
    short = t.op("Max", t.op("Sub", want, t.shape(y, start=2)), t.i64([0] * n))
    pads = t.op("Concat", t.i64([0] * (n + 2)), t.i64([0, 0]), short, axis=0)
    return t.op("Pad", y, pads)


@register("Conv")
def _conv(c: Ctx):
    w = c.x(1)
    kernel = _kernel(c, w)
    n = len(kernel)
    strides, dilations = _ints(c, "strides", n, 1), _ints(c, "dilations", n, 1)
    group = c.attr("group", 1)
    pb, pe = explicit_pads(c, kernel, strides, dilations)
    weights = c.const(1)
    reach = [d * (k - 1) for k, d in zip(kernel, dilations)]
    if weights is not None and all(s == 1 for s in strides) and all(p <= r for p, r in zip(pb + pe, reach + reach)):
        # Stride 1 with constant weights: the adjoint is a plain Conv with flipped, in/out-swapped
        # weights, which ONNX Runtime runs 2-3x faster than the equivalent ConvTranspose.
        flipped = c.t.const(_adjoint_weights(weights, group), hint="w_adj")
        pads = [r - p for r, p in zip(reach, pb)] + [r - p for r, p in zip(reach, pe)]
        return [c.t.op("Conv", c.g(), flipped, dilations=dilations, group=group, pads=pads), None, None]
    return [adjoint_window(c, c.g(), w, c.x(), strides, dilations, group, pb, kernel), None, None]


def _adjoint_weights(weights: np.ndarray, group: int) -> np.ndarray:
    """(Cout, Cin/g, k...) -> (Cin, Cout/g, k...): swap in/out channels within each group, flip space."""
    cout = weights.shape[0]
    per_group = np.split(weights, group, axis=0) if group > 1 else [weights]
    swapped = [np.swapaxes(part, 0, 1) for part in per_group]
    flipped = np.concatenate(swapped, axis=0)[(slice(None), slice(None)) + (slice(None, None, -1),) * (weights.ndim - 2)]
    assert flipped.shape[1] == cout // group
    return np.ascontiguousarray(flipped)


@register("ConvTranspose")
def _conv_transpose(c: Ctx):
    """ConvTranspose's adjoint is Conv with the same weights and the (explicit) forward pads."""
    t, w = c.t, c.x(1)
    kernel = _kernel(c, w)
    n = len(kernel)
    strides, dilations = _ints(c, "strides", n, 1), _ints(c, "dilations", n, 1)
    out_pad = _ints(c, "output_padding", n, 0)
    dims = c.dims()
    try:
        win = transposed_window(c.attr, kernel, dims[2:] if dims else None)
    except ValueError as e:
        c.fail(str(e))
    if None in win.begins:
        c.fail("output_shape/auto_pad need static spatial sizes of the input")
    pb, pe = list(win.begins), list(win.ends)
    if win.derived:  # a negative total (output_shape past the windows' reach) pads nothing
        pb, pe = [max(0, p) for p in pb], [max(0, p) for p in pe]
    gx = t.op("Conv", c.g(), w, strides=strides, dilations=dilations, group=c.attr("group", 1), pads=pb + pe)
    if any(op >= s for op, s in zip(out_pad, strides)):
        gx = t.op("Slice", gx, t.i64([0] * n), t.shape(c.x(), start=2), t.i64(list(range(2, 2 + n))))
    return [gx, None, None]


@register("MaxPool")
def _max_pool(c: Ctx):
    """Re-run the pool with its Indices output and scatter-add G there (keeps switches in all modes)."""
    t, x = c.t, c.x()
    if c.attr("storage_order", 0):
        c.fail("storage_order=1 is not supported")
    attrs = {k: v for k, v in c.attrs.items()}
    node = helper.make_node("MaxPool", [x], [t.fresh("maxpool_y"), t.fresh("maxpool_idx")],
                            name=t.fresh("maxpool"), **attrs)
    t.nodes.append(node)
    idx = node.output[1]
    zeros = t.op("ConstantOfShape", t.op("Reshape", t.op("Size", x), t.i64([1])),
                 value=helper.make_tensor("value", t.elem(x), [1], [0]))
    flat = t.op("ScatterElements", zeros, t.flat(idx), t.flat(c.g()), axis=0, reduction="add")
    return [t.reshape_like(flat, x)]


def _window_counts(c: Ctx, x: str, g: str, kernel, strides, dilations, pb, pe, include_pad: bool) -> str:
    """Divisor of each output position of an AveragePool, computed at run time with a Conv over ones.

    include_pad: windows count the pad cells inside the padded extent (not the ceil-mode overhang).
    The extra end padding (stride - 1) creates the ceil-mode windows; the result is cropped to G.
    """
    t = c.t
    n = len(kernel)
    one = helper.make_tensor("value", t.elem(x), [1], [1])
    ones = t.op("ConstantOfShape", t.op("Concat", t.i64([1, 1]), t.shape(x, start=2), axis=0), value=one)
    extra = [s - 1 for s in strides]
    if include_pad:
        ones = t.op("Pad", ones, t.i64([0, 0] + list(pb) + [0, 0] + list(pe)), t.scalar(1, x))
        pads = [0] * n + extra
    else:
        pads = list(pb) + [p + e for p, e in zip(pe, extra)]
    kern = t.const(np.ones([1, 1] + list(kernel), dtype=t.np_dtype(x)))
    counts = t.op("Conv", ones, kern, strides=strides, dilations=dilations, pads=pads)
    return t.op("Slice", counts, t.i64([0] * n), t.shape(g, start=2), t.i64(list(range(2, 2 + n))))


@register("AveragePool")
def _average_pool(c: Ctx):
    t, x, g = c.t, c.x(), c.g()
    kernel = list(c.attr("kernel_shape"))
    n = len(kernel)
    strides, dilations = _ints(c, "strides", n, 1), _ints(c, "dilations", n, 1)
    pb, pe = explicit_pads(c, kernel, strides, dilations)
    ceil, cip = c.attr("ceil_mode", 0), c.attr("count_include_pad", 0)
    padded = any(pb) or any(pe)
    if not ceil and (cip or not padded):
        scaled = t.op("Mul", g, t.scalar(1.0 / float(np.prod(kernel)), x))
    else:
        scaled = t.op("Div", g, _window_counts(c, x, g, kernel, strides, dilations, pb, pe, bool(cip)))
    # depthwise adjoint without knowing C: fold channels into the batch axis
    g_dims = t.info.shape(g)
    folded = t.op("Reshape", scaled, t.op("Concat", t.i64([-1, 1]), t.shape(g, start=2), axis=0))
    kern = t.const(np.ones([1, 1] + kernel, dtype=t.np_dtype(x)))
    gx = adjoint_window(c, folded, kern, x, strides, dilations, 1, pb, kernel,
                        g_dims=None if not g_dims else [None, 1] + list(g_dims[2:]),
                        static=not ceil)  # ceil-mode output sizes differ between ONNX and runtimes
    return [t.reshape_like(gx, x)]


@register("GlobalAveragePool")
def _global_average_pool(c: Ctx):
    t, x, g = c.t, c.x(), c.g()
    count = t.cast_like(t.op("Div", t.op("Size", x), t.op("Size", g)), x)
    return [t.op("Div", t.op("Expand", g, t.shape(x)), count)]


def spatial_axes(c: Ctx, x: str) -> str:
    r = c.rank(x)
    if r is not None:
        return c.t.i64(list(range(2, r)))
    return c.t.op("Range", c.t.i64(2), c.t.op("Size", c.t.shape(x)), c.t.i64(1))


@register("GlobalMaxPool")
def _global_max_pool(c: Ctx):
    """Gradient to the maxima of each map; ties share it evenly."""
    t, x, y, g = c.t, c.x(), c.y(), c.g()
    mask = t.mask(t.op("Equal", x, y), x)
    share = t.op("Div", mask, t.op("ReduceSum", mask, spatial_axes(c, x), keepdims=1))
    return [t.op("Mul", g, share)]
